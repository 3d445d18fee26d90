/*
 * Test support shared by integration tests: where the services of scripts/services are
 * (from the environment scripts/test exports), free ports, and starting/stopping a tusk
 * role with a config file written by the test.
 */
#ifndef TUSK_TEST_SUPPORT_H
#define TUSK_TEST_SUPPORT_H

#include <stdbool.h>
#include <sys/types.h>

/* value of an environment variable the services export; skips the test run (exit 77,
 * reported as skipped by ctest) when absent so unit-only runs still pass */
const char *svc_env(const char *name);
int svc_env_int(const char *name);

/* a port no other test of this run uses: TUSK_FREE_PORT_BASE + n + a per-process offset,
 * free now and claimed for this process until it exits (svc_claim_port) */
int svc_free_port(void);
/* port binds now and no other live test process has claimed it: claim it while this
 * process lives */
bool svc_claim_port(int port);
/* give back a port this process claimed and will not use */
void svc_release_port(int port);

/* path of a new temporary file holding text; caller frees */
char *svc_write_temp(const char *suffix, const char *text);

/* run a shell command, return its exit status */
int svc_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "scripts/services node DIR action name" */
int svc_node(const char *action, const char *name);

/* a running tusk role started by a test */
typedef struct svc_proc {
    pid_t pid;
    int port;
    char *config_path;
    char *log_path;
} svc_proc;

/* start "tusk ROLE -c config" with config text; waits until port accepts connections
 * (up to 10 s). Returns false and prints the role's log on failure. */
bool svc_start_role(svc_proc *proc, const char *role, const char *config_text, int port);
/* send a signal and wait for exit (up to 10 s, then SIGKILL); returns exit status */
int svc_stop_role(svc_proc *proc, int sig);
/* print the role's log to stderr (on failure) */
void svc_dump_log(const svc_proc *proc);

/* GET path from an HTTP server on 127.0.0.1:port (Connection: close); the body (caller
 * frees) and the status in *status, or NULL with the reason on stderr */
char *svc_http_get(int port, const char *path, int *status);

/* from tusk proxy's admin console on 127.0.0.1:port (user tusk, an admin_users entry): column
 * col of "SHOW what" in the row whose "database" is db, or -1 when there is none */
long long svc_admin_stat(int port, const char *what, const char *db, const char *col);

/* milliseconds since an arbitrary start */
double svc_now_ms(void);

#endif
