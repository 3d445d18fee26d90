/*
 * common: what several parts of tusk share: logging, the pgbouncer.ini-layout config
 * parser, the userlist.txt parser, password hashing (md5, SCRAM-SHA-256), the admin_listen
 * HTTP server and small helpers.
 * This header is the interface of the folder.
 */
#ifndef TUSK_COMMON_H
#define TUSK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <strings.h>

#define TUSK_MUST_CHECK __attribute__((warn_unused_result))
#define TUSK_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- logging (log.c) ---- */
enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };
void log_set_level(int level);
int log_get_level(void);
void log_set_role(const char *role);
int log_set_file(const char *path);
int log_level_from_name(const char *name);
void log_write(int level, const char *fmt, ...) TUSK_PRINTF(2, 3);
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() <= LOG_DEBUG)                                                          \
            log_write(LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_fatal(...) log_write(LOG_FATAL, __VA_ARGS__)

/* ---- util.c: small helpers ---- */
/* base64 (RFC 4648, with padding) of len bytes into out; returns the length written (a NUL is
 * appended), -1 if out (cap bytes including the NUL) is too small */
int b64_encode(const void *src, size_t len, char *out, size_t cap) TUSK_MUST_CHECK;
/* strict base64 decode of len chars (padding required, no whitespace); returns the byte count,
 * -1 on invalid input or when the result does not fit in cap bytes */
int b64_decode(const char *src, size_t len, uint8_t *out, size_t cap) TUSK_MUST_CHECK;
/* base64url (RFC 4648 section 5) without padding, for ids in URLs: length written (plus a NUL),
 * -1 if out (cap bytes) is too small */
int b64url_encode(const void *src, size_t len, char *out, size_t cap) TUSK_MUST_CHECK;
/* base64url without padding; byte count, -1 on a bad character or length, or when it does
 * not fit in cap bytes */
int b64url_decode(const char *src, size_t len, uint8_t *out, size_t cap) TUSK_MUST_CHECK;
/* bytes needed by b64_encode for len input bytes, including the NUL */
#define B64_ENCODED_SIZE(len) ((((len) + 2) / 3) * 4 + 1)
/* lowercase hex of len bytes into out (2*len+1 bytes) */
void hex_encode(const void *src, size_t len, char *out);
/* copy src into dst (size cap), always NUL-terminated; returns false if it was truncated */
bool str_copy(char *dst, size_t cap, const char *src);
/* parse a whole decimal integer in [min, max]; false on junk, overflow or range */
bool str_to_int(const char *s, long long min, long long max, long long *out);
/* read a whole file (at most max bytes) into a malloc'd NUL-terminated buffer; NULL with
 * "path: reason" in err */
char *file_read_all(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* parse a boolean config value: 1/0, yes/no, on/off, true/false (any case); false if none */
bool str_to_bool(const char *s, bool *out);

/* ---- ini.c: pgbouncer.ini-layout parser ---- */
/* called for each key; section is lowercased ("databases", "pgbouncer", "users", ...);
 * keys are lowercased except in [databases] and [users], where names keep their case (and may be
 * written "double quoted", "" being a quote). Return 0 to go on, -1 to stop with an error: the
 * handler writes a plain message into err and the parser prefixes it with "file:line: ". */
typedef int (*ini_handler)(void *ctx, const char *section, const char *key, const char *value,
                           int lineno, char *err, size_t errlen);
/* parse a file (with %include relative to it, nested at most INI_MAX_DEPTH deep);
 * 0 on success, -1 with "file:line: message" in err */
int ini_parse_file(const char *path, ini_handler handler, void *ctx, char *err,
                   size_t errlen) TUSK_MUST_CHECK;
/* parse text in memory (%include paths relative to the working directory) */
int ini_parse_string(const char *text, ini_handler handler, void *ctx, char *err,
                     size_t errlen) TUSK_MUST_CHECK;
#define INI_MAX_DEPTH 10
/* libpq-style "key=value key='quoted \' value'" strings as in [databases] entries */
typedef int (*connstr_handler)(void *ctx, const char *key, const char *value, char *err,
                               size_t errlen);
/* call handler for each key=value pair; 0 on success, -1 with err filled (a handler's own
 * message is passed through unchanged) */
int connstr_parse(const char *text, connstr_handler handler, void *ctx, char *err,
                  size_t errlen) TUSK_MUST_CHECK;

/* ---- userlist.c: auth_file in pgbouncer's userlist.txt format ("user" "password-or-secret") ----
 */
typedef struct userlist userlist;
/* read an auth_file; NULL + "file:line: message" in err */
userlist *userlist_load(const char *path, char *err, size_t errlen);
/* parse userlist text in memory; NULL + "line N: message" in err */
userlist *userlist_parse(const char *text, char *err, size_t errlen);
/* the password or secret stored for user (exact match); NULL if absent */
const char *userlist_lookup(const userlist *list, const char *user);
/* number of users in the list */
size_t userlist_count(const userlist *list);
/* release a list (NULL is fine) */
void userlist_free(userlist *list);

/* ---- auth.c: md5 and SCRAM-SHA-256, both sides (OpenSSL) ---- */
#define AUTH_SCRAM_KEY_LEN 32
#define AUTH_SCRAM_MAX_MSG 1024 /* longest SASL message accepted or produced */
#define AUTH_SCRAM_NONCE_MAX 128
#define AUTH_SCRAM_DEFAULT_ITERATIONS 4096
/* n cryptographically strong random bytes (OpenSSL's DRBG through a per-thread buffer: salts,
 * nonces and cancel keys cost no DRBG call each); false if OpenSSL has none to give */
bool auth_random_bytes(void *out, size_t n);
/* "md5" + hex(md5(password || user)), 35 chars + NUL */
void auth_md5_hash(const char *password, const char *user, char out[36]);
/* AuthenticationMD5Password answer: "md5" + hex(md5(hex-part-of(md5_hash) || salt)) */
void auth_md5_salted(const char *md5_hash, const uint8_t salt[4], char out[36]);
/* does the client's md5 answer match what we store (plaintext password or "md5..." hash)?
 * constant time */
bool auth_md5_verify(const char *stored, const char *user, const uint8_t salt[4],
                     const char *response);
/* is stored an "md5" + 32 hex digits hash? */
bool auth_is_md5_hash(const char *stored);
/* is stored a parseable "SCRAM-SHA-256$..." secret? */
bool auth_is_scram_secret(const char *stored);

typedef struct auth_scram_secret {
    int iterations;
    uint8_t salt[64];
    size_t salt_len;
    uint8_t stored_key[32];
    uint8_t server_key[32];
} auth_scram_secret;
/* "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" as in pg_authid */
bool auth_scram_parse_secret(const char *text, auth_scram_secret *out);
/* derive a secret from a plaintext password (random salt when salt==NULL, 4096 iterations when 0)
 */
bool auth_scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                     int iterations, auth_scram_secret *out);
/* ClientKey and ServerKey of a password for a salt and iteration count (PBKDF2: costly, so a
 * proxy may cache them per server salt and log in with auth_scram_client_init_keys) */
bool auth_scram_keys_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                   int iterations, uint8_t client_key[32], uint8_t server_key[32]);
/* format a secret the way pg_authid stores it; length or -1 if cap is too small */
int auth_scram_format_secret(const auth_scram_secret *secret, char *out, size_t cap);

/* server side: the proxy authenticates a client. All messages are the SASL payloads only. */
typedef struct auth_scram_server {
    const char *error; /* static string: why the last call failed */
    int state;         /* internal: 0 init, 1 first sent, 2 done, -1 failed */
    auth_scram_secret secret;
    char nonce[AUTH_SCRAM_NONCE_MAX * 2 + 1]; /* client nonce + server nonce */
    size_t client_nonce_len;
    char gs2_flag; /* 'n' or 'y' from the client's gs2 header */
    bool mock;     /* unknown user: always fail */
    char server_nonce_override[AUTH_SCRAM_NONCE_MAX + 1]; /* tests only; "" = random */
    char client_first_bare[AUTH_SCRAM_MAX_MSG + 1];
    char server_first[AUTH_SCRAM_MAX_MSG + 1];
    uint8_t client_key[AUTH_SCRAM_KEY_LEN];
} auth_scram_server;
/* start an exchange against a stored secret */
void auth_scram_server_init(auth_scram_server *st, const auth_scram_secret *secret);
/* start an exchange for a user that does not exist: it runs like a real one (with a salt that
 * is stable per user name) and fails at the final step, so clients cannot probe user names */
void auth_scram_server_init_mock(auth_scram_server *st, const char *user);
/* tests: use this server nonce instead of a random one (printable, no ',') */
void auth_scram_server_set_nonce(auth_scram_server *st, const char *nonce);
/* client-first-message -> server-first-message into out; returns its length, -1 on malformed
 * input (st->error says why) */
int auth_scram_server_first(auth_scram_server *st, const char *msg, size_t len, char *out,
                            size_t cap);
/* client-final-message -> checks channel binding "biws"/nonce/proof; server-final-message
 * ("v=...") into out; -1 on failure */
int auth_scram_server_final(auth_scram_server *st, const char *msg, size_t len, char *out,
                            size_t cap);
/* after a successful exchange: ClientKey recovered from the proof (ClientProof XOR
 * ClientSignature), so the proxy can log in to servers holding the same secret without knowing
 * the password; NULL before success */
const uint8_t *auth_scram_server_client_key(const auth_scram_server *st);

/* client side: the proxy logs in to a PostgreSQL server */
typedef struct auth_scram_client {
    const char *error; /* static string: why the last call failed */
    int state;         /* internal: 0 init, 1 first sent, 2 final sent, 3 verified, -1 failed */
    bool have_password;
    char password[AUTH_SCRAM_MAX_MSG + 1]; /* SASLprep'ed */
    uint8_t client_key[AUTH_SCRAM_KEY_LEN];
    uint8_t server_key[AUTH_SCRAM_KEY_LEN];
    char nonce[AUTH_SCRAM_NONCE_MAX + 1]; /* client nonce */
    char user[256];                       /* SASL-escaped; PostgreSQL ignores it, "" normally */
    char client_first_bare[AUTH_SCRAM_MAX_MSG + 1];
    uint8_t server_signature[AUTH_SCRAM_KEY_LEN];
} auth_scram_client;
/* start an exchange with a plaintext password */
void auth_scram_client_init_password(auth_scram_client *st, const char *password);
/* pass-through: keys instead of a password (ClientKey from auth_scram_server_client_key,
 * ServerKey from the secret) */
void auth_scram_client_init_keys(auth_scram_client *st, const uint8_t client_key[32],
                                 const uint8_t server_key[32]);
/* tests: use this client nonce instead of a random one (printable, no ','); call before first */
void auth_scram_client_set_nonce(auth_scram_client *st, const char *nonce);
/* tests: send this user name in client-first (PostgreSQL takes the name from the startup packet) */
void auth_scram_client_set_user(auth_scram_client *st, const char *user);
/* "n,,n=,r=<nonce>" into out; length or -1 */
int auth_scram_client_first(auth_scram_client *st, char *out, size_t cap);
/* server-first-message -> client-final-message into out; -1 on bad server message */
int auth_scram_client_final(auth_scram_client *st, const char *server_first, size_t len, char *out,
                            size_t cap);
/* check the server's "v=" signature (or report its "e=" error); true if the server is genuine */
bool auth_scram_client_verify_server(auth_scram_client *st, const char *server_final, size_t len);
/* wipe keys and password from a state once done */
void auth_scram_client_clear(auth_scram_client *st);
void auth_scram_server_clear(auth_scram_server *st);

/* ---- admin_listen HTTP server (adminhttp.c) ---- */
struct ev_loop;
typedef struct admin_http admin_http;
/* what a handler answers: code (200 unless set), content type (text/plain unless set) and a
 * body grown with admin_http_put; failed after an allocation failure (the server sends 500) */
typedef struct admin_http_reply {
    int code;
    const char *ctype;
    char *body;
    size_t len, cap;
    bool failed;
} admin_http_reply;
/* answers GET / HEAD of path (the query string cut off); runs on the server's loop */
typedef void (*admin_http_handler)(void *arg, const char *path, admin_http_reply *r);
/* listens on spec (host:port, [v6]:port, *:port) with the loop; NULL and err when it cannot */
admin_http *admin_http_start(struct ev_loop *loop, const char *spec, admin_http_handler handler,
                             void *arg, char *err, size_t errlen);
/* closes the listener and every open connection; on the loop's thread */
void admin_http_stop(admin_http *s);
bool admin_http_put(admin_http_reply *r, const void *data, size_t len);
/* a whole text/plain answer */
void admin_http_text(admin_http_reply *r, int code, const char *text);

#endif
