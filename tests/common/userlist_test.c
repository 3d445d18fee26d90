/* Tests for common/userlist.c: pgbouncer userlist.txt parsing, errors and large lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/common.h"

static void test_normal(void **state)
{
    const char *text =
        "; pgbouncer userlist\n"
        "\"tusk\" \"SCRAM-SHA-256$4096:1Tabod9uBLXUcMJFzilaNg==$LRGFzcK0SoZyXxiNX"
        "cx6UVR1/CgryncPKzfRwZ+cImY=:XCV8XNBdv0LsVuILXkvndg3GKH41ewsHgMBsLTlKqoc=\"\n"
        "\n"
        "   \"tusk_md5\"\t\"md5c7005eb66cb5c183f79f4dc8bf6312b7\"   \n"
        "# also a comment\n"
        "\"quo\"\"ted\" \"pa\"\"ss \"\"word\"\"\"\r\n"
        "\"empty\" \"\"\n"
        "\"Tusk\" \"upper\" extra fields ignored\n"
        "\"dup\" \"first\"\n"
        "\"dup\" \"second\"\n"
        "\"with space\" \"p w\"";
    char err[256];
    userlist *l = userlist_parse(text, err, sizeof(err));
    if (!l)
        fail_msg("%s", err);
    assert_int_equal(userlist_count(l), 7);
    assert_non_null(strstr(userlist_lookup(l, "tusk"), "SCRAM-SHA-256$4096:"));
    assert_string_equal(userlist_lookup(l, "tusk_md5"), "md5c7005eb66cb5c183f79f4dc8bf6312b7");
    assert_string_equal(userlist_lookup(l, "quo\"ted"), "pa\"ss \"word\"");
    assert_string_equal(userlist_lookup(l, "empty"), "");
    assert_string_equal(userlist_lookup(l, "Tusk"), "upper");
    assert_string_equal(userlist_lookup(l, "dup"), "second");
    assert_string_equal(userlist_lookup(l, "with space"), "p w");
    assert_null(userlist_lookup(l, "TUSK"));
    assert_null(userlist_lookup(l, "tus"));
    assert_null(userlist_lookup(l, "nobody"));
    assert_null(userlist_lookup(l, ""));
    assert_null(userlist_lookup(NULL, "tusk"));
    userlist_free(l);
    userlist_free(NULL);

    l = userlist_parse("", err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(userlist_count(l), 0);
    assert_null(userlist_lookup(l, "x"));
    userlist_free(l);
}

static void fails(const char *text, const char *want)
{
    char err[256];
    userlist *l = userlist_parse(text, err, sizeof(err));
    if (l) {
        userlist_free(l);
        fail_msg("accepted:\n%s", text);
    }
    if (strcmp(err, want) != 0)
        fail_msg("error \"%s\", wanted \"%s\"", err, want);
}

static void test_errors(void **state)
{
    fails("tusk \"pw\"\n", "line 1: user name: expected a double-quoted field");
    fails("\"a\" \"b\"\n\"tusk\"\n", "line 2: password: missing (expected a double-quoted field)");
    fails("\"tusk\"\r\n", "line 1: password: missing (expected a double-quoted field)");
    fails("\"tusk\" pw\n", "line 1: password: expected a double-quoted field");
    fails("\n\n\"tusk \"pw\"\n", "line 3: expected whitespace after the user name");
    fails("\"tusk\" \"pw\n", "line 1: password: missing closing double quote");
    fails("\"tusk\n\"pw\"", "line 1: user name: missing closing double quote");
    /* "" inside a field is a quote, so this is one field: tusk"pw */
    fails("\"tusk\"\"pw\"", "line 1: password: missing (expected a double-quoted field)");
    fails("\"\" \"pw\"\n", "line 1: empty user name");
    fails("\"a\" \"b\"x\n", "line 1: expected whitespace after the password");
}

static void test_file_and_many_users(void **state)
{
    char path[] = "/tmp/tusk_userlist_testXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    /* 20k users, written in an order that is not sorted */
    for (int i = 0; i < 20000; i++) {
        int k = (i * 7919) % 20000;
        fprintf(f, "\"user%05d\" \"md5%032d\"\n", k, k);
    }
    fprintf(f, "\"bad\" unquoted\n");
    assert_int_equal(fclose(f), 0);

    char err[512];
    userlist *l = userlist_load(path, err, sizeof(err));
    assert_null(l);
    char want[600];
    snprintf(want, sizeof(want), "%s:20001: password: expected a double-quoted field", path);
    assert_string_equal(err, want);

    /* drop the bad last line */
    assert_int_equal(truncate(path, 20000 * 50), 0);
    l = userlist_load(path, err, sizeof(err));
    if (!l)
        fail_msg("%s", err);
    assert_int_equal(userlist_count(l), 20000);
    for (int k = 0; k < 20000; k++) {
        char user[32];
        char pw[40];
        snprintf(user, sizeof(user), "user%05d", k);
        snprintf(pw, sizeof(pw), "md5%032d", k);
        const char *got = userlist_lookup(l, user);
        assert_non_null(got);
        assert_string_equal(got, pw);
    }
    assert_null(userlist_lookup(l, "user20000"));
    assert_null(userlist_lookup(l, "user"));
    userlist_free(l);

    /* a NUL byte can only come from a file */
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite("\"a\" \"b\"\n\"c\0\" \"d\"\n", 1, 18, f), 18);
    assert_int_equal(fclose(f), 0);
    assert_null(userlist_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:2: NUL byte in line", path);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path), 0);

    assert_null(userlist_load("/nonexistent/userlist.txt", err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/userlist.txt: No such file or directory");
}

static void test_long_lines(void **state)
{
    size_t n = 100000;
    char *text = malloc(2 * n + 16);
    assert_non_null(text);
    char *p = text;
    *p++ = '"';
    memset(p, 'u', n);
    p += n;
    memcpy(p, "\" \"", 3);
    p += 3;
    memset(p, 'p', n);
    p += n;
    strcpy(p, "\"\n");
    char err[256];
    userlist *l = userlist_parse(text, err, sizeof(err));
    assert_non_null(l);
    text[1 + n] = '\0';
    const char *pw = userlist_lookup(l, text + 1);
    assert_non_null(pw);
    assert_int_equal(strlen(pw), n);
    userlist_free(l);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_and_many_users),
        cmocka_unit_test(test_long_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
