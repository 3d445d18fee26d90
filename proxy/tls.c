/*
 * TLS with OpenSSL on both sides: the context clients connect to (client_tls_*), the context
 * used towards servers (server_tls_*), and a non-blocking handshake step. Reads and writes
 * go through px_conn_recv/px_conn_send (io.c), which use SSL_read/SSL_write when a
 * connection has an SSL object.
 */
#include "proxy/internal.h"

#include <openssl/err.h>
#include <stdio.h>
#include <string.h>

static void tls_error(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", buf);
    ERR_clear_error();
}

static SSL_CTX *ctx_common(const SSL_METHOD *m, const char *ciphers, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(m);
    if (!ctx) {
        tls_error(err, errlen, "SSL_CTX_new", NULL);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (ciphers && *ciphers && strcmp(ciphers, "default") != 0 && strcmp(ciphers, "fast") != 0 &&
        strcmp(ciphers, "normal") != 0 && strcmp(ciphers, "secure") != 0 &&
        SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
        tls_error(err, errlen, "bad cipher list", ciphers);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* the context clients handshake with (we are the TLS server) */
SSL_CTX *px_tls_server_ctx(const px_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_common(TLS_server_method(), cfg->client_tls_ciphers, err, errlen);
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->client_tls_cert_file) != 1) {
        tls_error(err, errlen, "client_tls_cert_file", cfg->client_tls_cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->client_tls_key_file, SSL_FILETYPE_PEM) != 1) {
        tls_error(err, errlen, "client_tls_key_file", cfg->client_tls_key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error(err, errlen, "client TLS key does not match the certificate", NULL);
        goto fail;
    }
    if (cfg->client_tls_ca_file && *cfg->client_tls_ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->client_tls_ca_file, NULL) != 1) {
            tls_error(err, errlen, "client_tls_ca_file", cfg->client_tls_ca_file);
            goto fail;
        }
        /* with a CA, a certificate is asked for (auth cert, hba cert lines); verify-ca and
         * verify-full refuse clients without one */
        SSL_CTX_set_verify(ctx,
                           cfg->client_tls_sslmode >= TLS_VERIFY_CA
                               ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : SSL_VERIFY_PEER,
                           NULL);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->client_tls_ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* the context used towards servers (we are the TLS client) */
SSL_CTX *px_tls_client_ctx(const px_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = ctx_common(TLS_client_method(), cfg->server_tls_ciphers, err, errlen);
    if (!ctx)
        return NULL;
    if (cfg->server_tls_sslmode >= TLS_VERIFY_CA) {
        int ok = cfg->server_tls_ca_file && *cfg->server_tls_ca_file
                     ? SSL_CTX_load_verify_locations(ctx, cfg->server_tls_ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
            tls_error(err, errlen, "server_tls_ca_file", cfg->server_tls_ca_file);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (cfg->server_tls_cert_file && *cfg->server_tls_cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->server_tls_cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, cfg->server_tls_key_file, SSL_FILETYPE_PEM) != 1) {
            tls_error(err, errlen, "server_tls_cert_file/key_file", cfg->server_tls_cert_file);
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* one step of a non-blocking handshake: 1 done, 0 in progress, -1 failed */
int px_tls_handshake(px_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
        /* the write watcher feeds a read event back to the handshake */
        c->want_write_tls = true;
        ev_io_start(c->w->loop, &c->wio);
        return 0;
    }
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    log_info("TLS handshake failed: %s", buf);
    ERR_clear_error();
    return -1;
}
