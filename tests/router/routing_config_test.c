/*
 * Unit test of the routing keys of tusk proxy's configuration (proxy/config.c): defaults,
 * [pgbouncer] values, per-database overrides, and clear errors for bad values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/internal.h"

static px_config *parse(const char *text, char *err, size_t errlen)
{
    return px_config_parse(text, err, errlen);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[512];
    px_config *cfg = parse("[databases]\nd = host=127.0.0.1 port=5432 replicas=h1:5433,h2\n"
                           "[pgbouncer]\n",
                           err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->lag_poll_ms, 100);
    assert_int_equal(cfg->max_replica_lag_ms, 0);
    assert_int_equal(cfg->max_replica_lag_bytes, 0);
    assert_int_equal(cfg->replica_wait_ms, 50);
    assert_int_equal(cfg->primary_reads, PX_PRIMARY_READS_OVERFLOW);
    const px_db *d = px_config_find_db(cfg, "d");
    assert_non_null(d);
    assert_int_equal(d->n_nodes, 3);
    assert_int_equal(d->nodes[2].port, 5432);
    assert_int_equal(d->max_replica_lag_ms, -1);
    assert_int_equal(d->primary_reads, -1);
    assert_null(d->replica_weights);
    px_config_unref(cfg);
}

static void test_values(void **state)
{
    (void)state;
    char err[512];
    px_config *cfg = parse("[databases]\n"
                           "d = host=a replicas=b,c replica_weights=2,1 max_replica_lag_ms=250 "
                           "max_replica_lag_bytes=1000 replica_wait_ms=10 primary_reads=on\n"
                           "[pgbouncer]\nlag_poll_ms = 20\nmax_replica_lag_ms = 500\n"
                           "max_replica_lag_bytes = 65536\nreplica_wait_ms = 0\n"
                           "primary_reads = off\nunsafe_functions = audit_*, my.f\n"
                           "monitor_user = mon\nmonitor_password = secret\n",
                           err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->lag_poll_ms, 20);
    assert_int_equal(cfg->max_replica_lag_ms, 500);
    assert_int_equal(cfg->max_replica_lag_bytes, 65536);
    assert_int_equal(cfg->replica_wait_ms, 0);
    assert_int_equal(cfg->primary_reads, PX_PRIMARY_READS_OFF);
    assert_string_equal(cfg->unsafe_functions, "audit_*, my.f");
    assert_string_equal(cfg->monitor_user, "mon");
    assert_string_equal(cfg->monitor_password, "secret");
    const px_db *d = px_config_find_db(cfg, "d");
    assert_string_equal(d->replica_weights, "2,1");
    assert_int_equal(d->max_replica_lag_ms, 250);
    assert_int_equal(d->max_replica_lag_bytes, 1000);
    assert_int_equal(d->replica_wait_ms, 10);
    assert_int_equal(d->primary_reads, PX_PRIMARY_READS_ON);
    px_config_unref(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    char err[512];
    err[0] = '\0';
    assert_null(parse("[pgbouncer]\nprimary_reads = sometimes\n", err, sizeof(err)));
    assert_non_null(strstr(err, "primary_reads"));
    err[0] = '\0';
    assert_null(
        parse("[databases]\nd = host=a replicas=b primary_reads=maybe\n", err, sizeof(err)));
    assert_non_null(strstr(err, "primary_reads"));
    err[0] = '\0';
    assert_null(parse("[pgbouncer]\nlag_poll_ms = 0\n", err, sizeof(err)));
    assert_non_null(strstr(err, "lag_poll_ms"));
    err[0] = '\0';
    assert_null(parse("[databases]\nd = host=a max_replica_lag_ms=-5\n", err, sizeof(err)));
    assert_non_null(strstr(err, "max_replica_lag_ms"));
    assert_int_equal(px_parse_primary_reads("OVERFLOW"), PX_PRIMARY_READS_OVERFLOW);
    assert_int_equal(px_parse_primary_reads(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
