/* Unit tests of proxy/pktbuf.c: message building, header and body parsing, malformed input. */
#include "proxy/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void test_build_query(void **state)
{
    (void)state;
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    pkt_query(&b, "SELECT 1");
    assert_false(b.failed);
    assert_int_equal(b.len, 1 + 4 + 9);
    assert_int_equal(b.data[0], 'Q');
    assert_int_equal(pkt_get_u32(b.data + 1), 13);
    assert_memory_equal(b.data + 5, "SELECT 1", 9);
    uint8_t type;
    uint32_t total;
    assert_int_equal(pkt_header(b.data, b.len, &type, &total), 1);
    assert_int_equal(type, 'Q');
    assert_int_equal(total, b.len);
    pktbuf_free(&b);
}

static void test_build_untyped_and_several(void **state)
{
    (void)state;
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    pkt_begin(&b, 0);
    pkt_put_int32(&b, PX_PROTO_V3);
    pkt_put_str(&b, "user");
    pkt_put_str(&b, "alice");
    pkt_put_byte(&b, 0);
    pkt_end(&b);
    size_t first = b.len;
    assert_int_equal(pkt_get_u32(b.data), first);
    pkt_ready(&b, 'T');
    assert_int_equal(b.data[first], 'Z');
    assert_int_equal(pkt_get_u32(b.data + first + 1), 5);
    assert_int_equal(b.data[first + 5], 'T');
    pkt_cancel_request(&b, 42, 4242);
    assert_int_equal(pkt_get_u32(b.data + first + 6), 16);
    assert_int_equal(pkt_get_u32(b.data + first + 10), PX_CANCEL_REQUEST);
    assert_int_equal(pkt_get_u32(b.data + first + 14), 42);
    pktbuf_free(&b);
}

static void test_fixed_buffer_overflow(void **state)
{
    (void)state;
    uint8_t store[16];
    pktbuf b;
    pktbuf_init(&b, store, sizeof(store));
    pkt_query(&b, "SELECT a very long query that does not fit");
    assert_true(b.failed);
    pktbuf_reset(&b);
    assert_false(b.failed);
    pkt_simple(&b, 'S');
    assert_false(b.failed);
    assert_int_equal(b.len, 5);
}

static void test_error_response(void **state)
{
    (void)state;
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    pkt_error(&b, 'E', "FATAL", "28P01", "some detail", "password failed for \"%s\"", "bob");
    assert_int_equal(b.data[0], 'E');
    assert_int_equal(pkt_get_u32(b.data + 1), b.len - 1);
    const uint8_t *body = b.data + 5;
    size_t blen = b.len - 5;
    assert_string_equal(pkt_error_field(body, blen, 'C'), "28P01");
    assert_string_equal(pkt_error_field(body, blen, 'S'), "FATAL");
    assert_string_equal(pkt_error_field(body, blen, 'M'), "password failed for \"bob\"");
    assert_string_equal(pkt_error_field(body, blen, 'D'), "some detail");
    assert_null(pkt_error_field(body, blen, 'H'));
    /* truncated body: no field runs past the end */
    assert_null(pkt_error_field(body, 7, 'M'));
    pktbuf_free(&b);
}

static void test_header_lengths(void **state)
{
    (void)state;
    uint8_t type;
    uint32_t total;
    uint8_t m[5] = {'Q', 0, 0, 0, 4};
    assert_int_equal(pkt_header(m, 4, &type, &total), 0); /* incomplete header */
    assert_int_equal(pkt_header(m, 5, &type, &total), 1);
    assert_int_equal(total, 5);
    m[4] = 3; /* length below its own size */
    assert_int_equal(pkt_header(m, 5, &type, &total), -1);
    pkt_put_u32(m + 1, 0x80000000u); /* 2^31 */
    assert_int_equal(pkt_header(m, 5, &type, &total), -1);
    pkt_put_u32(m + 1, 0xffffffffu);
    assert_int_equal(pkt_header(m, 5, &type, &total), -1);
    pkt_put_u32(m + 1, PX_MAX_MSG_LEN + 1);
    assert_int_equal(pkt_header(m, 5, &type, &total), -1);
    pkt_put_u32(m + 1, PX_MAX_MSG_LEN);
    assert_int_equal(pkt_header(m, 5, &type, &total), 1);
    assert_int_equal(total, PX_MAX_MSG_LEN + 1);
}

static void test_reader_bounds(void **state)
{
    (void)state;
    const uint8_t body[] = {0, 2, 'a', 'b', 0, 0, 0, 0, 7};
    pkt_reader r;
    pkt_reader_init(&r, body, sizeof(body));
    assert_int_equal(pkt_read_int16(&r), 2);
    assert_string_equal(pkt_read_str(&r), "ab");
    assert_int_equal(pkt_read_int32(&r), 7);
    assert_false(r.bad);
    pkt_read_byte(&r);
    assert_true(r.bad);
    /* a string without NUL */
    const uint8_t nonul[] = {'x', 'y'};
    pkt_reader_init(&r, nonul, sizeof(nonul));
    assert_string_equal(pkt_read_str(&r), "");
    assert_true(r.bad);
    /* byte runs longer than the body */
    pkt_reader_init(&r, body, sizeof(body));
    assert_null(pkt_read_bytes(&r, 100));
    assert_true(r.bad);
}

typedef struct seen {
    int n;
    char names[8][32];
    char values[8][32];
} seen;

static bool collect(void *ctx, const char *name, const char *value)
{
    seen *s = ctx;
    if (s->n >= 8)
        return false;
    strncpy(s->names[s->n], name, 31);
    strncpy(s->values[s->n], value, 31);
    s->n++;
    return true;
}

static void test_startup_params(void **state)
{
    (void)state;
    const char ok[] = "user\0alice\0database\0db1\0\0";
    seen s = {0};
    assert_int_equal(pkt_startup_params((const uint8_t *)ok, sizeof(ok) - 1, collect, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.names[0], "user");
    assert_string_equal(s.values[1], "db1");
    /* missing final terminator */
    const char noterm[] = "user\0alice\0";
    memset(&s, 0, sizeof(s));
    assert_int_equal(pkt_startup_params((const uint8_t *)noterm, sizeof(noterm) - 1, collect, &s),
                     -1);
    /* a name without value */
    const char novalue[] = "user\0";
    assert_int_equal(pkt_startup_params((const uint8_t *)novalue, sizeof(novalue) - 1, collect, &s),
                     -1);
    /* bytes after the terminator */
    const char trailing[] = "user\0a\0\0junk";
    assert_int_equal(
        pkt_startup_params((const uint8_t *)trailing, sizeof(trailing) - 1, collect, &s), -1);
    /* empty packet */
    assert_int_equal(pkt_startup_params((const uint8_t *)"", 0, collect, &s), -1);
}

static void test_parse_message(void **state)
{
    (void)state;
    pktbuf b;
    pktbuf_init(&b, NULL, 0);
    const uint8_t types[8] = {0, 0, 0, 23, 0, 0, 0, 25};
    pkt_parse(&b, "T_1", "SELECT $1, $2", 13, 2, types);
    pkt_reader r;
    pkt_reader_init(&r, b.data + 5, b.len - 5);
    assert_string_equal(pkt_read_str(&r), "T_1");
    assert_string_equal(pkt_read_str(&r), "SELECT $1, $2");
    assert_int_equal(pkt_read_int16(&r), 2);
    assert_int_equal(pkt_read_int32(&r), 23);
    assert_int_equal(pkt_read_int32(&r), 25);
    assert_false(r.bad);
    assert_int_equal(r.pos, r.len);
    pktbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_query),
        cmocka_unit_test(test_build_untyped_and_several),
        cmocka_unit_test(test_fixed_buffer_overflow),
        cmocka_unit_test(test_error_response),
        cmocka_unit_test(test_header_lengths),
        cmocka_unit_test(test_reader_bounds),
        cmocka_unit_test(test_startup_params),
        cmocka_unit_test(test_parse_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
