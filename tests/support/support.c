/* Test support: see support.h. */
#include "tests/support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *svc_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "skip: %s is not set; run through scripts/test\n", name);
        exit(77);
    }
    return v;
}

int svc_env_int(const char *name)
{
    return atoi(svc_env(name));
}

static bool port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Ports are claimed across the run's test processes with a lock on a file per port in
 * CLAIM_DIR, held while the claimer lives: a port that binds now may still be taken by
 * another test whose proxy has not bound it yet. The kernel drops the lock when the process
 * ends, however it ends; the files stay (unlinking a locked file would let two processes
 * lock two different files of one name). */
#define CLAIM_DIR "/tmp/tusk-test-ports"
#define MAX_CLAIMS 64

static struct {
    int port, fd;
} claims[MAX_CLAIMS];
static int n_claims;

bool svc_claim_port(int port)
{
    static bool dir_made;
    if (!dir_made) {
        mkdir(CLAIM_DIR, 01777);
        chmod(CLAIM_DIR, 01777);
        dir_made = true;
    }
    if (n_claims == MAX_CLAIMS || !port_is_free(port))
        return false;
    char path[128];
    snprintf(path, sizeof(path), CLAIM_DIR "/%d", port);
    /* close-on-exec: a proxy the test starts must not hold its own port's claim */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return false;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return false;
    }
    claims[n_claims].port = port;
    claims[n_claims++].fd = fd;
    return true;
}

void svc_release_port(int port)
{
    for (int i = 0; i < n_claims; i++) {
        if (claims[i].port == port) {
            close(claims[i].fd);
            claims[i] = claims[--n_claims];
            return;
        }
    }
}

int svc_free_port(void)
{
    static int next;
    int base = getenv("TUSK_FREE_PORT_BASE") ? atoi(getenv("TUSK_FREE_PORT_BASE")) : 40000;
    /* tests run in parallel: start processes apart by pid, so claims rarely meet */
    if (next == 0)
        next = base + (getpid() % 500) * 8;
    for (int i = 0; i < 4000; i++) {
        int p = next++;
        if (p > 65000)
            next = base;
        if (svc_claim_port(p))
            return p;
    }
    fprintf(stderr, "no free port found\n");
    exit(1);
}

char *svc_write_temp(const char *suffix, const char *text)
{
    char tmpl[256];
    snprintf(tmpl, sizeof(tmpl), "/tmp/tusk-test-XXXXXX%s", suffix ? suffix : "");
    int fd = mkstemps(tmpl, suffix ? (int)strlen(suffix) : 0);
    if (fd < 0) {
        perror("mkstemps");
        exit(1);
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        perror("write");
        exit(1);
    }
    close(fd);
    return strdup(tmpl);
}

int svc_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int svc_node(const char *action, const char *name)
{
    return svc_sh("'%s/scripts/services' node '%s' %s %s", svc_env("TUSK_SOURCE_DIR"),
                  svc_env("TUSK_SVC_DIR"), action, name);
}

double svc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static bool port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

void svc_dump_log(const svc_proc *proc)
{
    if (!proc->log_path)
        return;
    FILE *f = fopen(proc->log_path, "r");
    if (!f)
        return;
    char line[1024];
    fprintf(stderr, "---- %s ----\n", proc->log_path);
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

bool svc_start_role(svc_proc *proc, const char *role, const char *config_text, int port)
{
    memset(proc, 0, sizeof(*proc));
    proc->port = port;
    proc->config_path = svc_write_temp(".ini", config_text);
    char logp[256];
    snprintf(logp, sizeof(logp), "%s.log", proc->config_path);
    proc->log_path = strdup(logp);
    const char *bin = svc_env("TUSK_BIN");
    pid_t pid = fork();
    if (pid == 0) {
        FILE *lf = freopen(proc->log_path, "w", stderr);
        (void)lf;
        dup2(2, 1);
        execl(bin, bin, role, "-c", proc->config_path, (char *)NULL);
        perror("exec tusk");
        _exit(127);
    }
    proc->pid = pid;
    double deadline = svc_now_ms() + 10000;
    while (svc_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "tusk %s exited during start-up\n", role);
            svc_dump_log(proc);
            proc->pid = 0;
            return false;
        }
        if (port_accepts(port))
            return true;
        usleep(20000);
    }
    fprintf(stderr, "tusk %s did not listen on %d within 10 s\n", role, port);
    svc_dump_log(proc);
    return false;
}

int svc_stop_role(svc_proc *proc, int sig)
{
    if (proc->pid <= 0)
        return -1;
    kill(proc->pid, sig);
    int st = 0;
    double deadline = svc_now_ms() + 10000;
    while (svc_now_ms() < deadline) {
        if (waitpid(proc->pid, &st, WNOHANG) == proc->pid)
            goto done;
        usleep(10000);
    }
    fprintf(stderr, "tusk did not exit within 10 s of signal %d; killing it\n", sig);
    kill(proc->pid, SIGKILL);
    waitpid(proc->pid, &st, 0);
done:
    proc->pid = 0;
    unlink(proc->config_path);
    free(proc->config_path);
    proc->config_path = NULL;
    unlink(proc->log_path);
    free(proc->log_path);
    proc->log_path = NULL;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

char *svc_http_get(int port, const char *path, int *status)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    /* a role's HTTP endpoint opens just after its main port, which is what svc_start_role
     * waits for: a refused connection is tried again for up to 3 s */
    double deadline = svc_now_ms() + 3000;
    int fd;
    for (;;) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            break;
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (e != ECONNREFUSED || svc_now_ms() > deadline) {
            fprintf(stderr, "HTTP GET %s: cannot connect to port %d: %s\n", path, port,
                    strerror(e));
            return NULL;
        }
        usleep(20 * 1000);
    }
    char req[512];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    bool ok = buf && send(fd, req, (size_t)n, 0) == n;
    while (ok) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) {
            fprintf(stderr, "HTTP GET %s: no answer in 5 s\n", path);
            ok = false;
            break;
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len >= cap - 1) {
            fprintf(stderr, "HTTP GET %s: answer over %zu bytes\n", path, cap);
            ok = false;
        }
    }
    close(fd);
    char *body = NULL;
    if (ok) {
        buf[len] = '\0';
        body = strstr(buf, "\r\n\r\n");
        if (sscanf(buf, "HTTP/1.1 %d", status) != 1 || !body) {
            fprintf(stderr, "HTTP GET %s: not an HTTP answer\n", path);
            body = NULL;
        }
    }
    char *out = body ? strdup(body + 4) : NULL;
    free(buf);
    return out;
}

long long svc_admin_stat(int port, const char *what, const char *db, const char *col)
{
    char ci[160], sql[64];
    snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=pgbouncer user=tusk password=tusk",
             port);
    snprintf(sql, sizeof(sql), "SHOW %s", what);
    PGconn *a = PQconnectdb(ci);
    PGresult *r = PQstatus(a) == CONNECTION_OK ? PQexec(a, sql) : NULL;
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        int ci_col = PQfnumber(r, col), di = PQfnumber(r, "database");
        for (int i = 0; ci_col >= 0 && di >= 0 && i < PQntuples(r); i++)
            if (strcmp(PQgetvalue(r, i, di), db) == 0)
                v = atoll(PQgetvalue(r, i, ci_col));
    } else {
        fprintf(stderr, "%s on the admin console of port %d: %s", sql, port, PQerrorMessage(a));
    }
    PQclear(r);
    PQfinish(a);
    return v;
}
