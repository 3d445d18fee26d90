/* Unit tests of proxy/config.c: pgbouncer.ini layout, defaults, databases with replicas,
 * unknown keys as warnings, bad values as errors, Debian's stock pgbouncer.ini. */
#include "proxy/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <math.h>

static void test_defaults(void **state)
{
    (void)state;
    char err[512];
    px_config *cfg = px_config_parse("[pgbouncer]\nlisten_addr = 127.0.0.1\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->listen_port, 6432);
    assert_int_equal(cfg->pool_mode, PM_SESSION);
    assert_int_equal(cfg->auth_type, AUTH_MD5);
    assert_int_equal(cfg->default_pool_size, 20);
    assert_int_equal(cfg->max_client_conn, 100);
    assert_int_equal(cfg->max_prepared_statements, 200);
    assert_string_equal(cfg->server_reset_query, "DISCARD ALL");
    assert_true(cfg->query_wait_timeout == 120.0);
    assert_true(cfg->workers >= 1);
    assert_int_equal(cfg->pipeline_reads, PX_PIPE_ON);
    assert_true(cfg->pipeline_fast_time == 0.001);
    assert_int_equal(cfg->pipeline_depth, 3);
    assert_true(fabs(cfg->busy_poll_time - 0.0001) < 1e-12);
    assert_int_equal(cfg->worker_pack_clients, 16);
    assert_int_equal(cfg->n_dbs, 0);
    px_config_unref(cfg);
}

/* pipeline_reads: off / queued / on, and the booleans it was before */
static void test_pipeline_reads(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int want;
    } cases[] = {{"off", PX_PIPE_OFF},       {"0", PX_PIPE_OFF},         {"false", PX_PIPE_OFF},
                 {"queued", PX_PIPE_QUEUED}, {"QUEUED", PX_PIPE_QUEUED}, {"on", PX_PIPE_ON},
                 {"1", PX_PIPE_ON},          {"true", PX_PIPE_ON}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[128], err[512];
        snprintf(text, sizeof(text), "[pgbouncer]\nlisten_addr = x\npipeline_reads = %s\n",
                 cases[i].value);
        px_config *cfg = px_config_parse(text, err, sizeof(err));
        assert_non_null(cfg);
        assert_int_equal(cfg->pipeline_reads, cases[i].want);
        px_config_unref(cfg);
    }
}

static void expect_error(const char *text, const char *needle);

/* busy_poll_time: seconds or a unit; 0 turns polling off; no negative times */
static void test_busy_poll_time(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        double want;
    } cases[] = {{"0", 0}, {"250us", 0.00025}, {"1ms", 0.001}, {"0.00005", 0.00005}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[128], err[512];
        snprintf(text, sizeof(text), "[pgbouncer]\nlisten_addr = x\nbusy_poll_time = %s\n",
                 cases[i].value);
        px_config *cfg = px_config_parse(text, err, sizeof(err));
        assert_non_null(cfg);
        assert_true(fabs(cfg->busy_poll_time - cases[i].want) < 1e-12);
        px_config_unref(cfg);
    }
    expect_error("[pgbouncer]\nlisten_addr=x\nbusy_poll_time = -1\n", "busy_poll_time");
    expect_error("[pgbouncer]\nlisten_addr=x\nbusy_poll_time = spin\n", "busy_poll_time");
}

static void test_full(void **state)
{
    (void)state;
    char err[512];
    const char *text =
        "[databases]\n"
        "app = host=10.0.0.1 port=5433 dbname=appdb pool_size=7 pool_mode=transaction "
        "replicas=10.0.0.2:5434,10.0.0.3\n"
        "forced = host=/var/run/postgresql user=svc password='p w' min_pool_size=2 "
        "client_encoding=UTF8 timezone=UTC\n"
        "* = host=127.0.0.1\n"
        "[pgbouncer]\n"
        "listen_addr = *\n"
        "listen_port = 7000\n"
        "auth_type = scram-sha-256\n"
        "pool_mode = session\n"
        "default_pool_size = 11\n"
        "query_wait_timeout = 250ms\n"
        "server_idle_timeout = 1.5\n"
        "ignore_startup_parameters = extra_float_digits, Options\n"
        "workers = 3\n"
        "max_prepared_statements = 0\n"
        "[users]\n"
        "bob = pool_mode=session max_user_connections=4\n";
    px_config *cfg = px_config_parse(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->n_dbs, 3);
    const px_db *app = px_config_find_db(cfg, "app");
    assert_non_null(app);
    assert_string_equal(app->dbname, "appdb");
    assert_int_equal(app->pool_size, 7);
    assert_int_equal(app->pool_mode, PM_TRANSACTION);
    assert_int_equal(app->n_nodes, 3);
    assert_string_equal(app->nodes[0].host, "10.0.0.1");
    assert_int_equal(app->nodes[0].port, 5433);
    assert_string_equal(app->nodes[1].host, "10.0.0.2");
    assert_int_equal(app->nodes[1].port, 5434);
    assert_string_equal(app->nodes[2].host, "10.0.0.3");
    assert_int_equal(app->nodes[2].port, 5433); /* the primary's port */
    const px_db *forced = px_config_find_db(cfg, "forced");
    assert_string_equal(forced->user, "svc");
    assert_string_equal(forced->password, "p w");
    assert_int_equal(forced->min_pool_size, 2);
    assert_string_equal(forced->nodes[0].host, "/var/run/postgresql");
    assert_string_equal(forced->timezone, "UTC");
    /* unknown names use the fallback */
    const px_db *other = px_config_find_db(cfg, "whatever");
    assert_non_null(other);
    assert_string_equal(other->name, "*");
    assert_int_equal(cfg->auth_type, AUTH_SCRAM);
    assert_int_equal(cfg->default_pool_size, 11);
    assert_true(cfg->query_wait_timeout > 0.2499 && cfg->query_wait_timeout < 0.2501);
    assert_true(cfg->server_idle_timeout == 1.5);
    assert_true(px_config_ignored_param(cfg, "extra_float_digits"));
    assert_true(px_config_ignored_param(cfg, "options"));
    assert_false(px_config_ignored_param(cfg, "extra"));
    assert_int_equal(cfg->workers, 3);
    assert_int_equal(cfg->max_prepared_statements, 0);
    const px_usercfg *bob = px_config_find_user(cfg, "bob");
    assert_non_null(bob);
    assert_int_equal(bob->pool_mode, PM_SESSION);
    assert_int_equal(bob->max_user_connections, 4);
    assert_null(px_config_find_user(cfg, "alice"));
    px_config_unref(cfg);
}

static void test_no_fallback(void **state)
{
    (void)state;
    char err[512];
    px_config *cfg =
        px_config_parse("[databases]\na = host=h\n[pgbouncer]\nlisten_addr=x\n", err, sizeof(err));
    assert_non_null(cfg);
    assert_null(px_config_find_db(cfg, "b"));
    assert_non_null(px_config_find_db(cfg, "a"));
    /* host without dbname: the entry name is the server database */
    assert_null(px_config_find_db(cfg, "a")->dbname);
    px_config_unref(cfg);
}

static void test_unknown_keys_warn(void **state)
{
    (void)state;
    char err[512];
    px_config *cfg = px_config_parse("[pgbouncer]\nlisten_addr = 1.2.3.4\n"
                                     "so_reuseport = 1\n"    /* known pgbouncer, unused */
                                     "totally_new_key = 5\n" /* unknown */
                                     "[peers]\n1 = host=x\n" /* unknown section */
                                     "[databases]\nd = host=h frobnicate=1\n",
                                     err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->n_warnings, 4);
    px_config_unref(cfg);
}

static void expect_error(const char *text, const char *needle)
{
    char err[512];
    px_config *cfg = px_config_parse(text, err, sizeof(err));
    if (cfg) {
        px_config_unref(cfg);
        fail_msg("config was accepted: %s", text);
    }
    if (!strstr(err, needle))
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("[pgbouncer]\nlisten_addr=x\nlisten_port = 70000\n", "listen_port");
    expect_error("[pgbouncer]\nlisten_addr=x\npool_mode = sometimes\n", "pool_mode");
    expect_error("[pgbouncer]\nlisten_addr=x\nauth_type = rot13\n", "auth_type");
    expect_error("[pgbouncer]\nlisten_addr=x\nlog_connections = maybe\n", "log_connections");
    expect_error("[pgbouncer]\nlisten_addr=x\nquery_wait_timeout = soon\n", "query_wait_timeout");
    expect_error("[pgbouncer]\nlisten_addr=x\npipeline_reads = always\n", "off, queued or on");
    expect_error("[pgbouncer]\nlisten_addr=x\npipeline_fast_time = quick\n", "pipeline_fast_time");
    expect_error("[pgbouncer]\nlisten_addr=x\npipeline_depth = 0\n", "pipeline_depth");
    expect_error("[pgbouncer]\nlisten_addr=x\npipeline_depth = 5\n", "pipeline_depth");
    expect_error("[pgbouncer]\nlisten_addr=x\ndefault_pool_size = -1\n", "default_pool_size");
    expect_error("[databases]\nd = host=h port=abc\n[pgbouncer]\nlisten_addr=x\n", "port");
    expect_error("[databases]\nd = host=h replicas=a:b\n[pgbouncer]\nlisten_addr=x\n", "replica");
    expect_error("[databases]\nd = host=h\nd = host=i\n[pgbouncer]\nlisten_addr=x\n", "twice");
    expect_error("[databases]\nd = host='unterminated\n[pgbouncer]\nlisten_addr=x\n", ":");
    expect_error("[pgbouncer]\nlisten_addr =\nunix_socket_dir =\n", "listen");
    expect_error("[pgbouncer]\nlisten_addr=x\nclient_tls_sslmode = require\n", "client_tls");
}

static void test_auth_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tusk-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *ul = "\"alice\" \"secret\"\n\"bob\" \"md5a3556571e93b0d20722ba62be61e8c2d\"\n";
    assert_int_equal(write(fd, ul, strlen(ul)), (ssize_t)strlen(ul));
    close(fd);
    char text[512], err[512];
    snprintf(text, sizeof(text), "[pgbouncer]\nlisten_addr=x\nauth_file = %s\n", path);
    px_config *cfg = px_config_parse(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_non_null(cfg->users_file);
    assert_string_equal(userlist_lookup(cfg->users_file, "alice"), "secret");
    assert_null(userlist_lookup(cfg->users_file, "carol"));
    px_config_unref(cfg);
    /* a missing auth_file is a warning: pgbouncer starts without one too */
    snprintf(text, sizeof(text), "[pgbouncer]\nlisten_addr=x\nauth_file = %s.missing\n", path);
    cfg = px_config_parse(text, err, sizeof(err));
    assert_non_null(cfg);
    assert_null(cfg->users_file);
    px_config_unref(cfg);
    unlink(path);
}

/* Debian's stock file (with every setting commented out but a few) loads unchanged */
static void test_debian_stock_file(void **state)
{
    (void)state;
    const char *path = "/etc/pgbouncer/pgbouncer.ini";
    if (access(path, R_OK) != 0)
        skip();
    char err[512];
    px_config *cfg = px_config_load(path, err, sizeof(err));
    if (!cfg)
        fail_msg("stock pgbouncer.ini rejected: %s", err);
    assert_int_equal(cfg->listen_port, 6432);
    assert_int_equal(cfg->auth_type, AUTH_MD5);
    px_config_unref(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),          cmocka_unit_test(test_full),
        cmocka_unit_test(test_no_fallback),       cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_bad_values),        cmocka_unit_test(test_auth_file),
        cmocka_unit_test(test_debian_stock_file), cmocka_unit_test(test_pipeline_reads),
        cmocka_unit_test(test_busy_poll_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
