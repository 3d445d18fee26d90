/*
 * Password authentication: md5 (PostgreSQL's "md5" + md5(password || user) scheme) and
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677) on both sides of the proxy. The server side lets the proxy
 * authenticate clients against a pg_authid-style secret; the client side logs the proxy in to
 * PostgreSQL, either with a password or with the ClientKey recovered from a client's proof
 * (pass-through, as pgbouncer does), so the proxy never needs the plaintext password.
 *
 * Every message is parsed strictly: attribute order, base64, nonce prefix, lengths. Parsing
 * works on a NUL-terminated copy bounded by AUTH_SCRAM_MAX_MSG, so a hostile peer can neither
 * overflow a buffer nor make us read past its message. Failures leave a static reason in
 * st->error and move the state to -1, after which every call fails.
 */
#include "common/common.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SCRAM_RAW_NONCE_LEN 18 /* random bytes per nonce half, as PostgreSQL uses */
#define SCRAM_DEFAULT_SALT_LEN 16
#define SCRAM_MAX_ATTRS 32
/* a hostile server could ask for an absurd iteration count and stall a worker thread */
#define SCRAM_CLIENT_MAX_ITERATIONS 10000000

typedef struct scram_attr {
    char name;
    const char *val;
    size_t len;
    size_t start; /* offset of the attribute name in the message */
} scram_attr;

static bool saslprep(const char *in, char *out, size_t cap);
static int split_attrs(const char *msg, size_t len, scram_attr *attrs, int max);
static bool copy_message(const char *msg, size_t len, char *buf);
static bool valid_nonce(const char *s, size_t len);
static bool make_nonce(char *out, size_t cap);
static bool hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32]);
static bool sha256(const void *data, size_t len, uint8_t out[32]);
static bool salted_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        uint8_t client_key[32], uint8_t server_key[32]);
static bool parse_iterations(const char *s, size_t len, long long max, int *out);
static int emit(char *out, size_t cap, const char *s, size_t len);

/* ======================= digests and random bytes ======================= */

/*
 * OpenSSL 3 looks a digest up by name (locks, string compares, a parameter walk) every time
 * EVP_md5() or EVP_sha256() is used, and its DRBG re-keys a cipher on every RAND_bytes call.
 * Per login that was about 5 us of a proxy's ~95 us (perf, pgbench -C), so the digests are
 * fetched once and random bytes come from a per-thread buffer that RAND_bytes refills.
 */
static EVP_MD *md5_md, *sha256_md;
static pthread_once_t digests_once = PTHREAD_ONCE_INIT;

static void digests_init(void)
{
    md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* NULL only when the OpenSSL in use lacks the digest (a FIPS-only md5, say) */
static const EVP_MD *digest_md5(void)
{
    pthread_once(&digests_once, digests_init);
    return md5_md;
}

static const EVP_MD *digest_sha256(void)
{
    pthread_once(&digests_once, digests_init);
    return sha256_md;
}

/* one digest over up to two parts; false if the digest is unavailable */
static bool digest2(const EVP_MD *md, const void *a, size_t alen, const void *b, size_t blen,
                    uint8_t *out, unsigned int want)
{
    unsigned int dlen = 0;
    EVP_MD_CTX *ctx = md ? EVP_MD_CTX_new() : NULL;
    bool ok = ctx && EVP_DigestInit_ex2(ctx, md, NULL) == 1 &&
              EVP_DigestUpdate(ctx, a, alen) == 1 &&
              (!blen || EVP_DigestUpdate(ctx, b, blen) == 1) &&
              EVP_DigestFinal_ex(ctx, out, &dlen) == 1 && dlen == want;
    EVP_MD_CTX_free(ctx);
    return ok;
}

#define RANDOM_BUF_LEN 512
static _Thread_local uint8_t random_buf[RANDOM_BUF_LEN];
static _Thread_local size_t random_left;
static _Thread_local unsigned random_gen;
static unsigned random_fork_gen; /* bumped in a forked child: its copy of a buffer is stale */
static pthread_once_t random_once = PTHREAD_ONCE_INIT;

static void random_forked(void)
{
    random_fork_gen++;
}
static void random_init(void)
{
    pthread_atfork(NULL, NULL, random_forked);
}

bool auth_random_bytes(void *out, size_t n)
{
    pthread_once(&random_once, random_init);
    if (n > RANDOM_BUF_LEN / 4)
        return RAND_bytes(out, (int)n) == 1;
    if (random_gen != random_fork_gen) {
        random_left = 0;
        random_gen = random_fork_gen;
    }
    if (random_left < n) {
        if (RAND_bytes(random_buf, RANDOM_BUF_LEN) != 1)
            return false;
        random_left = RANDOM_BUF_LEN;
    }
    /* hand out from the end and wipe what was handed out: no byte is given twice */
    random_left -= n;
    memcpy(out, random_buf + random_left, n);
    OPENSSL_cleanse(random_buf + random_left, n);
    return true;
}

/* =========================== md5 =========================== */

/* "md5" + hex(md5(password || user)), as PostgreSQL stores md5 passwords */
void auth_md5_hash(const char *password, const char *user, char out[36])
{
    uint8_t digest[16];
    if (!digest2(digest_md5(), password, strlen(password), user, strlen(user), digest, 16)) {
        /* only an OpenSSL without md5 gets here; an unguessable value fails every compare */
        memset(out, 0, 36);
        return;
    }
    memcpy(out, "md5", 3);
    hex_encode(digest, 16, out + 3);
}

/* answer to AuthenticationMD5Password: "md5" + hex(md5(hex part of md5_hash || salt)) */
void auth_md5_salted(const char *md5_hash, const uint8_t salt[4], char out[36])
{
    uint8_t digest[16];
    if (strnlen(md5_hash, 35) != 35 ||
        !digest2(digest_md5(), md5_hash + 3, 32, salt, 4, digest, 16)) {
        memset(out, 0, 36);
        return;
    }
    memcpy(out, "md5", 3);
    hex_encode(digest, 16, out + 3);
}

/* is stored an "md5" + 32 lowercase/uppercase hex digits hash? */
bool auth_is_md5_hash(const char *stored)
{
    if (strncmp(stored, "md5", 3) != 0 || strlen(stored) != 35)
        return false;
    for (int i = 3; i < 35; i++) {
        char c = stored[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* does the client's md5 answer match the stored plaintext password or md5 hash? */
bool auth_md5_verify(const char *stored, const char *user, const uint8_t salt[4],
                     const char *response)
{
    char hash[36];
    char expected[36];
    if (auth_is_scram_secret(stored))
        return false; /* a SCRAM secret cannot answer an md5 challenge */
    if (auth_is_md5_hash(stored)) {
        /* PostgreSQL writes lowercase hex; fold so a hand-written uppercase hash works too */
        for (int i = 0; i < 35; i++)
            hash[i] = (char)(i < 3 ? stored[i] : (stored[i] | 0x20));
        hash[35] = '\0';
    } else {
        auth_md5_hash(stored, user, hash);
    }
    auth_md5_salted(hash, salt, expected);
    if (strnlen(response, 36) != 35 || expected[0] == '\0')
        return false;
    return CRYPTO_memcmp(expected, response, 35) == 0;
}

/* ======================== SCRAM secrets ======================== */

/* parse "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>" */
bool auth_scram_parse_secret(const char *text, auth_scram_secret *out)
{
    static const char prefix[] = "SCRAM-SHA-256$";
    auth_scram_secret s;
    memset(&s, 0, sizeof(s));
    if (strncmp(text, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *p = text + sizeof(prefix) - 1;
    const char *colon = strchr(p, ':');
    if (!colon || !parse_iterations(p, (size_t)(colon - p), INT_MAX, &s.iterations))
        return false;
    p = colon + 1;
    const char *dollar = strchr(p, '$');
    if (!dollar)
        return false;
    int n = b64_decode(p, (size_t)(dollar - p), s.salt, sizeof(s.salt));
    if (n <= 0)
        return false;
    s.salt_len = (size_t)n;
    p = dollar + 1;
    colon = strchr(p, ':');
    if (!colon || b64_decode(p, (size_t)(colon - p), s.stored_key, 32) != 32)
        return false;
    p = colon + 1;
    if (b64_decode(p, strlen(p), s.server_key, 32) != 32)
        return false;
    *out = s;
    return true;
}

/* is stored a parseable SCRAM-SHA-256 secret? */
bool auth_is_scram_secret(const char *stored)
{
    auth_scram_secret s;
    bool ok = auth_scram_parse_secret(stored, &s);
    OPENSSL_cleanse(&s, sizeof(s));
    return ok;
}

/* derive a secret (StoredKey, ServerKey) from a plaintext password, as CREATE ROLE would */
bool auth_scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                     int iterations, auth_scram_secret *out)
{
    auth_scram_secret s;
    uint8_t client_key[32];
    char prepped[AUTH_SCRAM_MAX_MSG + 1];
    memset(&s, 0, sizeof(s));
    if (iterations < 0)
        return false;
    s.iterations = iterations ? iterations : AUTH_SCRAM_DEFAULT_ITERATIONS;
    if (salt) {
        if (salt_len == 0 || salt_len > sizeof(s.salt))
            return false;
        memcpy(s.salt, salt, salt_len);
        s.salt_len = salt_len;
    } else {
        if (RAND_bytes(s.salt, SCRAM_DEFAULT_SALT_LEN) != 1)
            return false;
        s.salt_len = SCRAM_DEFAULT_SALT_LEN;
    }
    bool ok = saslprep(password, prepped, sizeof(prepped)) &&
              salted_keys(prepped, s.salt, s.salt_len, s.iterations, client_key, s.server_key) &&
              sha256(client_key, 32, s.stored_key);
    OPENSSL_cleanse(prepped, sizeof(prepped));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    if (ok)
        *out = s;
    OPENSSL_cleanse(&s, sizeof(s));
    return ok;
}

/* ClientKey and ServerKey from a password, for callers that cache them */
bool auth_scram_keys_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                   int iterations, uint8_t client_key[32], uint8_t server_key[32])
{
    char prepped[AUTH_SCRAM_MAX_MSG + 1];
    bool ok = salt_len > 0 && iterations > 0 && saslprep(password, prepped, sizeof(prepped)) &&
              salted_keys(prepped, salt, salt_len, iterations, client_key, server_key);
    OPENSSL_cleanse(prepped, sizeof(prepped));
    return ok;
}

/* format a secret as pg_authid stores it; length or -1 when cap is too small */
int auth_scram_format_secret(const auth_scram_secret *secret, char *out, size_t cap)
{
    char salt[B64_ENCODED_SIZE(64)];
    char stored[B64_ENCODED_SIZE(32)];
    char server[B64_ENCODED_SIZE(32)];
    if (secret->salt_len == 0 || secret->salt_len > sizeof(secret->salt) ||
        b64_encode(secret->salt, secret->salt_len, salt, sizeof(salt)) < 0 ||
        b64_encode(secret->stored_key, 32, stored, sizeof(stored)) < 0 ||
        b64_encode(secret->server_key, 32, server, sizeof(server)) < 0)
        return -1;
    int n =
        snprintf(out, cap, "SCRAM-SHA-256$%d:%s$%s:%s", secret->iterations, salt, stored, server);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

/* ======================== SCRAM server side ======================== */

/* start an exchange against a stored secret */
void auth_scram_server_init(auth_scram_server *st, const auth_scram_secret *secret)
{
    memset(st, 0, sizeof(*st));
    st->secret = *secret;
}

/* per-process key that makes mock salts stable for a name yet unpredictable */
static uint8_t mock_key[32];
static bool mock_key_ok;
static pthread_once_t mock_once = PTHREAD_ONCE_INIT;

static void mock_key_init(void)
{
    mock_key_ok = RAND_bytes(mock_key, sizeof(mock_key)) == 1;
}

/* start a doomed exchange for an unknown user */
void auth_scram_server_init_mock(auth_scram_server *st, const char *user)
{
    auth_scram_secret s;
    uint8_t mac[32];
    memset(&s, 0, sizeof(s));
    s.iterations = AUTH_SCRAM_DEFAULT_ITERATIONS;
    s.salt_len = SCRAM_DEFAULT_SALT_LEN;
    bool ok = pthread_once(&mock_once, mock_key_init) == 0 && mock_key_ok &&
              hmac_sha256(mock_key, sizeof(mock_key), user, strlen(user), mac) &&
              auth_random_bytes(s.stored_key, 32) && auth_random_bytes(s.server_key, 32);
    memcpy(s.salt, mac, SCRAM_DEFAULT_SALT_LEN);
    auth_scram_server_init(st, &s);
    st->mock = true;
    if (!ok) {
        /* the exchange fails either way; without randomness it fails at the first step */
        st->state = -1;
        st->error = "could not generate random data";
    }
}

/* tests: fixed server nonce instead of a random one */
void auth_scram_server_set_nonce(auth_scram_server *st, const char *nonce)
{
    if (!valid_nonce(nonce, strlen(nonce)) ||
        !str_copy(st->server_nonce_override, sizeof(st->server_nonce_override), nonce)) {
        st->state = -1;
        st->error = "invalid test nonce";
    }
}

/* client-first-message -> server-first-message */
int auth_scram_server_first(auth_scram_server *st, const char *msg, size_t len, char *out,
                            size_t cap)
{
    char buf[AUTH_SCRAM_MAX_MSG + 1];
    scram_attr attrs[SCRAM_MAX_ATTRS];
    if (st->state != 0) {
        if (st->state > 0)
            st->error = "unexpected SCRAM message";
        goto fail;
    }
    if (!copy_message(msg, len, buf)) {
        st->error = len > AUTH_SCRAM_MAX_MSG ? "SCRAM message too long"
                                             : "SCRAM message contains a NUL byte";
        goto fail;
    }
    /* gs2-header: cbind-flag "," [authzid] "," */
    switch (buf[0]) {
    case 'n':
    case 'y': /* client could bind but thinks we cannot: fine, we offer no -PLUS mechanism */
        break;
    case 'p':
        st->error = "channel binding is not supported (SCRAM-SHA-256-PLUS)";
        goto fail;
    default:
        st->error = "malformed SCRAM message (unexpected channel-binding flag)";
        goto fail;
    }
    if (buf[1] != ',') {
        st->error = "malformed SCRAM message (comma expected after channel-binding flag)";
        goto fail;
    }
    if (buf[2] == 'a') {
        st->error = "client uses authorization identity, which is not supported";
        goto fail;
    }
    if (buf[2] != ',') {
        st->error = "malformed SCRAM message (comma expected after gs2 header)";
        goto fail;
    }
    st->gs2_flag = buf[0];
    const char *bare = buf + 3;
    size_t bare_len = len - 3;
    int n = split_attrs(bare, bare_len, attrs, SCRAM_MAX_ATTRS);
    if (n < 0) {
        st->error = "malformed SCRAM message (bad attribute syntax)";
        goto fail;
    }
    if (n >= 1 && attrs[0].name == 'm') {
        st->error = "client requires an unsupported SCRAM extension";
        goto fail;
    }
    /* the user name is ignored, as in PostgreSQL: the startup packet already named the role */
    if (n < 2 || attrs[0].name != 'n' || attrs[1].name != 'r') {
        st->error = "malformed SCRAM message (expected n= and r= attributes)";
        goto fail;
    }
    if (attrs[1].len == 0 || attrs[1].len > AUTH_SCRAM_NONCE_MAX ||
        !valid_nonce(attrs[1].val, attrs[1].len)) {
        st->error = "malformed SCRAM message (invalid client nonce)";
        goto fail;
    }
    /* further attributes are extensions we do not support and may ignore */
    memcpy(st->client_first_bare, bare, bare_len + 1);

    char snonce[AUTH_SCRAM_NONCE_MAX + 1];
    if (st->server_nonce_override[0])
        memcpy(snonce, st->server_nonce_override, sizeof(snonce));
    else if (!make_nonce(snonce, sizeof(snonce))) {
        st->error = "could not generate a random nonce";
        goto fail;
    }
    memcpy(st->nonce, attrs[1].val, attrs[1].len);
    st->client_nonce_len = attrs[1].len;
    memcpy(st->nonce + attrs[1].len, snonce, strlen(snonce) + 1);

    char salt[B64_ENCODED_SIZE(sizeof(st->secret.salt))];
    if (st->secret.salt_len == 0 || st->secret.salt_len > sizeof(st->secret.salt) ||
        b64_encode(st->secret.salt, st->secret.salt_len, salt, sizeof(salt)) < 0) {
        st->error = "invalid stored SCRAM secret";
        goto fail;
    }
    int sl = snprintf(st->server_first, sizeof(st->server_first), "r=%s,s=%s,i=%d", st->nonce, salt,
                      st->secret.iterations);
    if (sl < 0 || (size_t)sl >= sizeof(st->server_first)) {
        st->error = "SCRAM message too long";
        goto fail;
    }
    if (emit(out, cap, st->server_first, (size_t)sl) < 0) {
        st->error = "output buffer too small";
        goto fail;
    }
    st->state = 1;
    return sl;
fail:
    st->state = -1;
    if (!st->error)
        st->error = "SCRAM exchange failed";
    return -1;
}

/* client-final-message -> server-final-message, after checking binding, nonce and proof */
int auth_scram_server_final(auth_scram_server *st, const char *msg, size_t len, char *out,
                            size_t cap)
{
    char buf[AUTH_SCRAM_MAX_MSG + 1];
    char auth_msg[3 * AUTH_SCRAM_MAX_MSG + 3];
    scram_attr attrs[SCRAM_MAX_ATTRS];
    uint8_t cbind[8];
    uint8_t proof[32];
    uint8_t client_sig[32];
    uint8_t client_key[32];
    uint8_t stored[32];
    uint8_t server_sig[32];
    char sig_b64[B64_ENCODED_SIZE(32)];
    if (st->state != 1) {
        if (st->state >= 0)
            st->error = "unexpected SCRAM message";
        goto fail;
    }
    if (!copy_message(msg, len, buf)) {
        st->error = len > AUTH_SCRAM_MAX_MSG ? "SCRAM message too long"
                                             : "SCRAM message contains a NUL byte";
        goto fail;
    }
    int n = split_attrs(buf, len, attrs, SCRAM_MAX_ATTRS);
    if (n < 0) {
        st->error = "malformed SCRAM message (bad attribute syntax)";
        goto fail;
    }
    if (n < 3 || attrs[0].name != 'c' || attrs[1].name != 'r' || attrs[n - 1].name != 'p') {
        st->error = "malformed SCRAM message (expected c=, r= ... p= attributes)";
        goto fail;
    }
    /* the channel binding attribute repeats the gs2 header of the first message */
    char gs2[4] = {st->gs2_flag, ',', ',', '\0'};
    int cb = b64_decode(attrs[0].val, attrs[0].len, cbind, sizeof(cbind));
    if (cb != 3 || memcmp(cbind, gs2, 3) != 0) {
        st->error = "SCRAM channel binding check failed";
        goto fail;
    }
    if (attrs[1].len != strlen(st->nonce) ||
        CRYPTO_memcmp(attrs[1].val, st->nonce, attrs[1].len) != 0) {
        st->error = "SCRAM nonce does not match";
        goto fail;
    }
    if (b64_decode(attrs[n - 1].val, attrs[n - 1].len, proof, sizeof(proof)) != 32) {
        st->error = "malformed SCRAM message (invalid proof)";
        goto fail;
    }
    size_t without_proof = attrs[n - 1].start - 1; /* drop ",p=..." */
    int al = snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%.*s", st->client_first_bare,
                      st->server_first, (int)without_proof, buf);
    if (al < 0 || (size_t)al >= sizeof(auth_msg)) {
        st->error = "SCRAM message too long";
        goto fail;
    }
    if (!hmac_sha256(st->secret.stored_key, 32, auth_msg, (size_t)al, client_sig)) {
        st->error = "SCRAM computation failed";
        goto fail;
    }
    for (int i = 0; i < 32; i++)
        client_key[i] = proof[i] ^ client_sig[i];
    if (!sha256(client_key, 32, stored) || CRYPTO_memcmp(stored, st->secret.stored_key, 32) != 0 ||
        st->mock) {
        st->error = "password authentication failed";
        goto fail;
    }
    if (!hmac_sha256(st->secret.server_key, 32, auth_msg, (size_t)al, server_sig) ||
        b64_encode(server_sig, 32, sig_b64, sizeof(sig_b64)) < 0) {
        st->error = "SCRAM computation failed";
        goto fail;
    }
    char final[4 + sizeof(sig_b64)];
    int fl = snprintf(final, sizeof(final), "v=%s", sig_b64);
    if (emit(out, cap, final, (size_t)fl) < 0) {
        st->error = "output buffer too small";
        goto fail;
    }
    memcpy(st->client_key, client_key, 32);
    OPENSSL_cleanse(client_key, sizeof(client_key));
    st->state = 2;
    return fl;
fail:
    OPENSSL_cleanse(client_key, sizeof(client_key));
    st->state = -1;
    if (!st->error)
        st->error = "SCRAM exchange failed";
    return -1;
}

/* ClientKey recovered from a successful exchange, for pass-through login; NULL otherwise */
const uint8_t *auth_scram_server_client_key(const auth_scram_server *st)
{
    return st->state == 2 ? st->client_key : NULL;
}

/* wipe the secret and recovered key */
void auth_scram_server_clear(auth_scram_server *st)
{
    OPENSSL_cleanse(st, sizeof(*st));
}

/* ======================== SCRAM client side ======================== */

/* start an exchange with a plaintext password */
void auth_scram_client_init_password(auth_scram_client *st, const char *password)
{
    memset(st, 0, sizeof(*st));
    if (!saslprep(password, st->password, sizeof(st->password))) {
        st->state = -1;
        st->error = "password too long";
        return;
    }
    st->have_password = true;
}

/* start an exchange with ClientKey and ServerKey instead of a password */
void auth_scram_client_init_keys(auth_scram_client *st, const uint8_t client_key[32],
                                 const uint8_t server_key[32])
{
    memset(st, 0, sizeof(*st));
    memcpy(st->client_key, client_key, 32);
    memcpy(st->server_key, server_key, 32);
}

/* tests: fixed client nonce */
void auth_scram_client_set_nonce(auth_scram_client *st, const char *nonce)
{
    if (!valid_nonce(nonce, strlen(nonce)) || !str_copy(st->nonce, sizeof(st->nonce), nonce)) {
        st->state = -1;
        st->error = "invalid test nonce";
    }
}

/* tests: user name to send, escaped as RFC 5802 saslname ("," -> "=2C", "=" -> "=3D") */
void auth_scram_client_set_user(auth_scram_client *st, const char *user)
{
    size_t o = 0;
    for (const char *p = user; *p; p++) {
        const char *rep = *p == ',' ? "=2C" : *p == '=' ? "=3D" : NULL;
        size_t n = rep ? 3 : 1;
        if (o + n >= sizeof(st->user)) {
            st->state = -1;
            st->error = "user name too long";
            return;
        }
        if (rep)
            memcpy(st->user + o, rep, 3);
        else
            st->user[o] = *p;
        o += n;
    }
    st->user[o] = '\0';
}

/* client-first-message "n,,n=,r=<nonce>" */
int auth_scram_client_first(auth_scram_client *st, char *out, size_t cap)
{
    if (st->state != 0) {
        if (st->state > 0)
            st->error = "SCRAM client-first already sent";
        goto fail;
    }
    if (!st->nonce[0] && !make_nonce(st->nonce, sizeof(st->nonce))) {
        st->error = "could not generate a random nonce";
        goto fail;
    }
    int bl = snprintf(st->client_first_bare, sizeof(st->client_first_bare), "n=%s,r=%s", st->user,
                      st->nonce);
    if (bl < 0 || (size_t)bl >= sizeof(st->client_first_bare)) {
        st->error = "SCRAM message too long";
        goto fail;
    }
    int n = snprintf(out, cap, "n,,%s", st->client_first_bare);
    if (n < 0 || (size_t)n >= cap) {
        st->error = "output buffer too small";
        goto fail;
    }
    st->state = 1;
    return n;
fail:
    st->state = -1;
    if (!st->error)
        st->error = "SCRAM exchange failed";
    return -1;
}

/* server-first-message -> client-final-message with our proof */
int auth_scram_client_final(auth_scram_client *st, const char *server_first, size_t len, char *out,
                            size_t cap)
{
    char buf[AUTH_SCRAM_MAX_MSG + 1];
    char without_proof[AUTH_SCRAM_MAX_MSG + 1];
    char auth_msg[3 * AUTH_SCRAM_MAX_MSG + 3];
    scram_attr attrs[SCRAM_MAX_ATTRS];
    uint8_t salt[AUTH_SCRAM_MAX_MSG];
    uint8_t stored[32];
    uint8_t client_sig[32];
    uint8_t proof[32];
    char proof_b64[B64_ENCODED_SIZE(32)];
    int iterations = 0;
    if (st->state != 1) {
        if (st->state >= 0)
            st->error = "unexpected SCRAM message";
        goto fail;
    }
    if (!copy_message(server_first, len, buf)) {
        st->error = len > AUTH_SCRAM_MAX_MSG ? "SCRAM message too long"
                                             : "SCRAM message contains a NUL byte";
        goto fail;
    }
    int n = split_attrs(buf, len, attrs, SCRAM_MAX_ATTRS);
    if (n < 0) {
        st->error = "malformed SCRAM server-first-message (bad attribute syntax)";
        goto fail;
    }
    if (n >= 1 && attrs[0].name == 'm') {
        st->error = "server requires an unsupported SCRAM extension";
        goto fail;
    }
    if (n < 3 || attrs[0].name != 'r' || attrs[1].name != 's' || attrs[2].name != 'i') {
        st->error = "malformed SCRAM server-first-message (expected r=, s=, i=)";
        goto fail;
    }
    size_t cn = strlen(st->nonce);
    if (attrs[0].len <= cn || memcmp(attrs[0].val, st->nonce, cn) != 0 ||
        !valid_nonce(attrs[0].val, attrs[0].len)) {
        st->error = "SCRAM server nonce does not extend the client nonce";
        goto fail;
    }
    int sl = b64_decode(attrs[1].val, attrs[1].len, salt, sizeof(salt));
    if (sl <= 0) {
        st->error = "malformed SCRAM server-first-message (invalid salt)";
        goto fail;
    }
    if (!parse_iterations(attrs[2].val, attrs[2].len, SCRAM_CLIENT_MAX_ITERATIONS, &iterations)) {
        st->error = "malformed SCRAM server-first-message (invalid iteration count)";
        goto fail;
    }
    if (st->have_password) {
        if (!salted_keys(st->password, salt, (size_t)sl, iterations, st->client_key,
                         st->server_key)) {
            st->error = "SCRAM computation failed";
            goto fail;
        }
        OPENSSL_cleanse(st->password, sizeof(st->password));
        st->have_password = false;
    }
    /* we never bind to a channel, so c= is always base64("n,,") */
    int wl = snprintf(without_proof, sizeof(without_proof), "c=biws,r=%.*s", (int)attrs[0].len,
                      attrs[0].val);
    if (wl < 0 || (size_t)wl >= sizeof(without_proof)) {
        st->error = "SCRAM message too long";
        goto fail;
    }
    int al =
        snprintf(auth_msg, sizeof(auth_msg), "%s,%s,%s", st->client_first_bare, buf, without_proof);
    if (al < 0 || (size_t)al >= sizeof(auth_msg)) {
        st->error = "SCRAM message too long";
        goto fail;
    }
    if (!sha256(st->client_key, 32, stored) ||
        !hmac_sha256(stored, 32, auth_msg, (size_t)al, client_sig) ||
        !hmac_sha256(st->server_key, 32, auth_msg, (size_t)al, st->server_signature)) {
        st->error = "SCRAM computation failed";
        goto fail;
    }
    for (int i = 0; i < 32; i++)
        proof[i] = st->client_key[i] ^ client_sig[i];
    if (b64_encode(proof, 32, proof_b64, sizeof(proof_b64)) < 0) {
        st->error = "SCRAM computation failed";
        goto fail;
    }
    int fl = snprintf(out, cap, "%s,p=%s", without_proof, proof_b64);
    if (fl < 0 || (size_t)fl >= cap) {
        st->error = "output buffer too small";
        goto fail;
    }
    st->state = 2;
    return fl;
fail:
    st->state = -1;
    if (!st->error)
        st->error = "SCRAM exchange failed";
    return -1;
}

/* check the server's signature; false (with the reason) if it is wrong or an error came back */
bool auth_scram_client_verify_server(auth_scram_client *st, const char *server_final, size_t len)
{
    char buf[AUTH_SCRAM_MAX_MSG + 1];
    scram_attr attrs[SCRAM_MAX_ATTRS];
    uint8_t sig[32];
    if (st->state != 2) {
        if (st->state >= 0)
            st->error = "unexpected SCRAM message";
        goto fail;
    }
    if (!copy_message(server_final, len, buf)) {
        st->error = len > AUTH_SCRAM_MAX_MSG ? "SCRAM message too long"
                                             : "SCRAM message contains a NUL byte";
        goto fail;
    }
    int n = split_attrs(buf, len, attrs, SCRAM_MAX_ATTRS);
    if (n < 1) {
        st->error = "malformed SCRAM server-final-message";
        goto fail;
    }
    if (attrs[0].name == 'e') {
        st->error = "server reported a SCRAM error";
        goto fail;
    }
    if (attrs[0].name != 'v' || b64_decode(attrs[0].val, attrs[0].len, sig, sizeof(sig)) != 32) {
        st->error = "malformed SCRAM server-final-message (expected v=)";
        goto fail;
    }
    if (CRYPTO_memcmp(sig, st->server_signature, 32) != 0) {
        st->error = "invalid SCRAM server signature";
        goto fail;
    }
    st->state = 3;
    return true;
fail:
    st->state = -1;
    if (!st->error)
        st->error = "SCRAM exchange failed";
    return false;
}

/* wipe password and keys */
void auth_scram_client_clear(auth_scram_client *st)
{
    OPENSSL_cleanse(st, sizeof(*st));
}

/* ======================== internals ======================== */

/* copy a length-delimited message into buf (AUTH_SCRAM_MAX_MSG + 1 bytes) with a NUL;
 * false if it is too long or carries a NUL of its own */
static bool copy_message(const char *msg, size_t len, char *buf)
{
    if (len > AUTH_SCRAM_MAX_MSG || memchr(msg, '\0', len))
        return false;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    return true;
}

/* split "a=x,b=y" into attributes; each needs a letter, '=' and no empty element.
 * Returns the count or -1 */
static int split_attrs(const char *msg, size_t len, scram_attr *attrs, int max)
{
    int n = 0;
    size_t i = 0;
    if (len == 0)
        return -1;
    for (;;) {
        if (n == max || i + 2 > len)
            return -1;
        char c = msg[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) || msg[i + 1] != '=')
            return -1;
        size_t v = i + 2;
        size_t e = v;
        while (e < len && msg[e] != ',')
            e++;
        attrs[n].name = c;
        attrs[n].val = msg + v;
        attrs[n].len = e - v;
        attrs[n].start = i;
        n++;
        if (e == len)
            return n;
        i = e + 1; /* a trailing comma leaves nothing to parse and fails above */
    }
}

/* printable ASCII except ',' (RFC 5802 "printable") */
static bool valid_nonce(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ',')
            return false;
    }
    return true;
}

/* 18 random bytes, base64: 24 printable chars and never a ',' */
static bool make_nonce(char *out, size_t cap)
{
    uint8_t raw[SCRAM_RAW_NONCE_LEN];
    if (!auth_random_bytes(raw, sizeof(raw)))
        return false;
    return b64_encode(raw, sizeof(raw), out, cap) > 0;
}

/* HMAC-SHA-256 (RFC 2104) over the fetched digest, keys up to 64 bytes: OpenSSL's HMAC() looks up a
 * MAC and a digest by name on every call, and a SCRAM exchange makes several */
static bool hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32])
{
    const EVP_MD *md = digest_sha256();
    uint8_t k[64] = {0}, pad[64], inner[32];
    if (key_len > sizeof(k))
        return false; /* SCRAM's keys are 32 bytes; longer ones would need hashing first */
    memcpy(k, key, key_len);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    bool ok = digest2(md, pad, sizeof(pad), data, len, inner, 32);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    ok = ok && digest2(md, pad, sizeof(pad), inner, sizeof(inner), out, 32);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    return ok;
}

/* SHA-256 */
static bool sha256(const void *data, size_t len, uint8_t out[32])
{
    return digest2(digest_sha256(), data, len, NULL, 0, out, 32);
}

/* SaltedPassword by PBKDF2, then ClientKey and ServerKey from it */
static bool salted_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        uint8_t client_key[32], uint8_t server_key[32])
{
    uint8_t salted[32];
    bool ok = salt_len <= INT_MAX &&
              PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
                                digest_sha256(), 32, salted) == 1 &&
              hmac_sha256(salted, 32, "Client Key", 10, client_key) &&
              hmac_sha256(salted, 32, "Server Key", 10, server_key);
    OPENSSL_cleanse(salted, sizeof(salted));
    return ok;
}

/* positive decimal iteration count up to max, digits only */
static bool parse_iterations(const char *s, size_t len, long long max, int *out)
{
    long long v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > max || v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

/* copy len bytes and a NUL into out; -1 if it does not fit */
static int emit(char *out, size_t cap, const char *s, size_t len)
{
    if (len + 1 > cap)
        return -1;
    memcpy(out, s, len);
    out[len] = '\0';
    return (int)len;
}

/* ---- SASLprep ---- */

/* decode one UTF-8 sequence strictly (no overlongs, surrogates or > U+10FFFF);
 * returns its length or 0 when invalid */
static int utf8_decode(const unsigned char *s, uint32_t *cp)
{
    unsigned char c = s[0];
    int n;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        n = 2;
        v = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        v = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* RFC 3454 table B.1: characters SASLprep maps to nothing */
static bool map_to_nothing(uint32_t c)
{
    return c == 0x00ad || c == 0x034f || c == 0x1806 || (c >= 0x180b && c <= 0x180d) ||
           (c >= 0x200b && c <= 0x200d) || c == 0x2060 || (c >= 0xfe00 && c <= 0xfe0f) ||
           c == 0xfeff;
}

/* RFC 3454 table C.1.2: non-ASCII spaces, mapped to U+0020 */
static bool non_ascii_space(uint32_t c)
{
    return c == 0x00a0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200b) || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* RFC 4013 prohibited output (tables C.2 to C.9; C.1.2 is mapped before this) */
static bool prohibited(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x06dd || c == 0x070f || c == 0x180e ||
           c == 0x2028 || c == 0x2029 || (c >= 0x2060 && c <= 0x2063) ||
           (c >= 0x206a && c <= 0x206f) || (c >= 0xfff9 && c <= 0xfffd) ||
           (c >= 0x1d173 && c <= 0x1d17a) || (c >= 0xe000 && c <= 0xf8ff) ||
           (c >= 0xf0000 && c <= 0xffffd) || (c >= 0x100000 && c <= 0x10fffd) ||
           (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe || (c >= 0x2ff0 && c <= 0x2ffb) ||
           c == 0x0340 || c == 0x0341 || c == 0x200e || c == 0x200f ||
           (c >= 0x202a && c <= 0x202e) || c == 0xe0001 || (c >= 0xe0020 && c <= 0xe007f);
}

/* SASLprep a password the way PostgreSQL uses it: the prepared form when preparation
 * succeeds, the original bytes when the password is not valid UTF-8 or contains prohibited
 * characters. ASCII passwords come out unchanged either way. For other UTF-8 we apply the
 * mapping steps and the prohibited-output check, but not NFKC normalisation, the unassigned
 * code point check or the bidi rules (they need Unicode tables): see common/README.md.
 * Returns false only when the result does not fit in cap. */
static bool saslprep(const char *in, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)in;
    bool ascii = true;
    for (const unsigned char *p = s; *p; p++)
        if (*p >= 0x80)
            ascii = false;
    if (ascii)
        return str_copy(out, cap, in);
    size_t o = 0;
    for (size_t i = 0; s[i];) {
        uint32_t cp;
        int n = utf8_decode(s + i, &cp);
        if (n == 0)
            return str_copy(out, cap, in);
        i += (size_t)n;
        if (map_to_nothing(cp))
            continue;
        if (non_ascii_space(cp))
            cp = ' ';
        if (prohibited(cp))
            return str_copy(out, cap, in);
        /* re-encode the (valid) code point */
        if (o + 5 > cap)
            return false;
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xc0 | cp >> 6);
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xe0 | cp >> 12);
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            out[o++] = (char)(0xf0 | cp >> 18);
            out[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
            out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    if (o >= cap)
        return false;
    out[o] = '\0';
    return true;
}
