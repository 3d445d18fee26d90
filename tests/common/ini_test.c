/* Tests for common/ini.c: the pgbouncer.ini-layout parser, %include and its error messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "common/common.h"

/* collects "section|key|value|line" lines */
typedef struct collect {
    char out[1 << 16];
    size_t n;
    const char *fail_key; /* the handler refuses this key */
    const char *fail_msg; /* with this message (NULL: leave err empty) */
    size_t longest;       /* length of the longest value seen */
} collect;

static int collect_cb(void *ctx, const char *section, const char *key, const char *value,
                      int lineno, char *err, size_t errlen)
{
    collect *c = ctx;
    if (c->fail_key && strcmp(key, c->fail_key) == 0) {
        if (c->fail_msg)
            snprintf(err, errlen, "%s", c->fail_msg);
        return -1;
    }
    size_t vl = strlen(value);
    if (vl > c->longest)
        c->longest = vl;
    if (vl > 100)
        value = "<long>";
    int n = snprintf(c->out + c->n, sizeof(c->out) - c->n, "%s|%s|%s|%d\n", section, key, value,
                     lineno);
    assert_true(n > 0 && (size_t)n < sizeof(c->out) - c->n);
    c->n += (size_t)n;
    return 0;
}

static void test_normal(void **state)
{
    const char *text = "\xef\xbb\xbf; pgbouncer config\n"
                       "[databases]\n"
                       "  MyDb = host=127.0.0.1 port=5432 dbname=tusk\n"
                       "\"odd name\" = host=h\n"
                       "\"say \"\"hi\"\"\"=dbname=x\n"
                       "* = host=fallback\n"
                       "\n"
                       "# another comment\n"
                       "[ PgBouncer ]   ; trailing comment\n"
                       "Listen_Port = 6432\r\n"
                       "auth_type=scram-sha-256\n"
                       "empty =\n"
                       "\t spaced   =   a b c   \n"
                       "[users]\n"
                       "Alice = pool_mode=session\n"
                       "url = postgres://x/y?a=b#frag\n";
    collect c = {0};
    char err[256];
    assert_int_equal(ini_parse_string(text, collect_cb, &c, err, sizeof(err)), 0);
    assert_string_equal(c.out, "databases|MyDb|host=127.0.0.1 port=5432 dbname=tusk|3\n"
                               "databases|odd name|host=h|4\n"
                               "databases|say \"hi\"|dbname=x|5\n"
                               "databases|*|host=fallback|6\n"
                               "pgbouncer|listen_port|6432|10\n"
                               "pgbouncer|auth_type|scram-sha-256|11\n"
                               "pgbouncer|empty||12\n"
                               "pgbouncer|spaced|a b c|13\n"
                               "users|Alice|pool_mode=session|15\n"
                               "users|url|postgres://x/y?a=b#frag|16\n");
    /* no trailing newline, empty text */
    collect d = {0};
    assert_int_equal(ini_parse_string("[a]\nk=v", collect_cb, &d, err, sizeof(err)), 0);
    assert_string_equal(d.out, "a|k|v|2\n");
    collect e = {0};
    assert_int_equal(ini_parse_string("", collect_cb, &e, err, sizeof(err)), 0);
    assert_int_equal(e.n, 0);
}

/* parsing text must fail with exactly want */
static void fails(const char *text, const char *want)
{
    collect c = {0};
    char err[512];
    int rc = ini_parse_string(text, collect_cb, &c, err, sizeof(err));
    if (rc != -1)
        fail_msg("accepted:\n%s", text);
    if (strcmp(err, want) != 0)
        fail_msg("error \"%s\", wanted \"%s\"", err, want);
}

static void test_errors(void **state)
{
    fails("k = v\n", "line 1: key outside of any section");
    fails("[db\n", "line 1: missing ']' in section header");
    fails("[]\n", "line 1: empty section name");
    fails("[ ]\n", "line 1: empty section name");
    fails("[a] b\n", "line 1: unexpected text after section header");
    fails("[a]\n\njust words\n", "line 3: expected \"key = value\"");
    fails("[a]\n = v\n", "line 2: missing key before '='");
    fails("[a]\nmy key = v\n", "line 2: space in key \"my key\" (quote database names)");
    fails("[databases]\n\"open = x\n", "line 2: unterminated quoted name");
    fails("[databases]\n\"name\" x = y\n", "line 2: expected '=' after quoted name");
    fails("[databases]\n\"\" = y\n", "line 2: empty name");
    fails("[a]\n%foo bar\n", "line 2: unknown directive \"%foo bar\"");
    fails("[a]\n%include\n", "line 2: %include needs a file name");
    fails("[a]\n%include /nonexistent/x.ini\n",
          "line 2: cannot include /nonexistent/x.ini: No such file or directory");
    char long_section[400];
    memset(long_section, 'x', sizeof(long_section));
    long_section[0] = '[';
    memcpy(long_section + sizeof(long_section) - 3, "]\n", 3);
    fails(long_section, "line 1: section name too long");

    /* handler errors get file:line, with the handler's message or a default one */
    collect c = {.fail_key = "pool_mode", .fail_msg = "pool_mode must be session or transaction"};
    char err[256];
    assert_int_equal(ini_parse_string("[pgbouncer]\nport=1\npool_mode = bogus\n", collect_cb, &c,
                                      err, sizeof(err)),
                     -1);
    assert_string_equal(err, "line 3: pool_mode must be session or transaction");
    collect d = {.fail_key = "port"};
    assert_int_equal(ini_parse_string("[pgbouncer]\nPORT=x\n", collect_cb, &d, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "line 2: invalid value for \"port\" in [pgbouncer]");
    /* a tiny error buffer is truncated, not overflowed */
    char tiny[8];
    assert_int_equal(ini_parse_string("k=v", collect_cb, &c, tiny, sizeof(tiny)), -1);
    assert_string_equal(tiny, "line 1:");
}

static void test_long_lines(void **state)
{
    size_t vl = 200000;
    char *text = malloc(vl + 64);
    assert_non_null(text);
    int n = snprintf(text, 64, "[databases]\nbig = ");
    memset(text + n, 'v', vl);
    strcpy(text + n + vl, "\nafter = 1\n");
    collect c = {0};
    char err[256];
    assert_int_equal(ini_parse_string(text, collect_cb, &c, err, sizeof(err)), 0);
    assert_int_equal(c.longest, vl);
    assert_string_equal(c.out, "databases|big|<long>|2\ndatabases|after|1|3\n");
    free(text);
}

/* write a file in dir */
static void put(const char *dir, const char *name, const char *text)
{
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_files_and_include(void **state)
{
    char dir[] = "/tmp/tusk_ini_testXXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/conf.d", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    put(dir, "main.ini", "[pgbouncer]\nlisten_port = 1\n%include conf.d/db.ini\nafter = 2\n");
    /* relative to the including file (conf.d), not to the working directory */
    put(sub, "db.ini", "[databases]\nTusk = dbname=tusk\n%include more.ini\n");
    put(sub, "more.ini", "Bench = dbname=bench\n[pgbouncer]\n");
    char path[700];
    snprintf(path, sizeof(path), "%s/main.ini", dir);
    collect c = {0};
    char err[1024];
    assert_int_equal(ini_parse_file(path, collect_cb, &c, err, sizeof(err)), 0);
    /* sections carry into and out of included files */
    assert_string_equal(c.out, "pgbouncer|listen_port|1|2\n"
                               "databases|Tusk|dbname=tusk|2\n"
                               "databases|Bench|dbname=bench|1\n"
                               "pgbouncer|after|2|4\n");

    /* errors name the file and line where they are */
    put(sub, "more.ini", "Bench = dbname=bench\n[broken\n");
    collect d = {0};
    assert_int_equal(ini_parse_file(path, collect_cb, &d, err, sizeof(err)), -1);
    char want[1024];
    snprintf(want, sizeof(want), "%s/conf.d/more.ini:2: missing ']' in section header", dir);
    assert_string_equal(err, want);

    put(sub, "more.ini", "%include missing.ini\n");
    collect e = {0};
    assert_int_equal(ini_parse_file(path, collect_cb, &e, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s/conf.d/more.ini:1: cannot include %s/conf.d/missing.ini: No such file or "
             "directory",
             dir, dir);
    assert_string_equal(err, want);

    /* a file including itself stops at the depth limit */
    put(dir, "loop.ini", "[a]\nk = v\n%include loop.ini\n");
    snprintf(path, sizeof(path), "%s/loop.ini", dir);
    collect f = {0};
    assert_int_equal(ini_parse_file(path, collect_cb, &f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "%include nested too deep"));
    assert_non_null(strstr(err, "loop.ini:3:"));

    /* missing top-level file */
    snprintf(path, sizeof(path), "%s/nope.ini", dir);
    assert_int_equal(ini_parse_file(path, collect_cb, &f, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s/nope.ini: No such file or directory", dir);
    assert_string_equal(err, want);

    /* NUL byte inside a file */
    snprintf(path, sizeof(path), "%s/nul.ini", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite("[a]\nk=v\0x\n", 1, 10, fp), 10);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(ini_parse_file(path, collect_cb, &f, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s/nul.ini:2: NUL byte in line", dir);
    assert_string_equal(err, want);

    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_files_and_include),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
