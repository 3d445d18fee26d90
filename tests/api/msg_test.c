/* Unit tests of api/msg.c: WebSocket accept and frame headers, SSE framing, rendering of
 * pub/sub messages into client events. */
#include "api/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void test_ws_accept_rfc6455_example(void **state)
{
    char out[29];
    /* RFC 6455 section 1.3 */
    assert_true(api_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_false(api_ws_accept("short", 5, out));
    assert_false(api_ws_accept("dGhlIHNhbXBsZSBub25jZQ!=", 24, out)); /* not base64 */
    assert_false(
        api_ws_accept("dGhlIHNhbXBsZSBub25jZWE=", 24, out)); /* decodes to 17 bytes, not 16 */
}

static void test_ws_frame_header(void **state)
{
    uint8_t h[10];
    assert_int_equal(api_ws_frame_header(h, 1, 5), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 5);
    assert_int_equal(api_ws_frame_header(h, 9, 0), 2);
    assert_int_equal(h[0], 0x89);
    assert_int_equal(h[1], 0);
    assert_int_equal(api_ws_frame_header(h, 1, 125), 2);
    assert_int_equal(api_ws_frame_header(h, 1, 126), 4);
    assert_int_equal(h[1], 126);
    assert_int_equal(h[2], 0);
    assert_int_equal(h[3], 126);
    assert_int_equal(api_ws_frame_header(h, 1, 65535), 4);
    assert_int_equal(api_ws_frame_header(h, 2, 65536), 10);
    assert_int_equal(h[0], 0x82);
    assert_int_equal(h[1], 127);
    assert_int_equal(h[7], 1);
    assert_int_equal(h[8], 0);
    assert_int_equal(h[9], 0);
}

static void test_sse_frame(void **state)
{
    api_buf b = {0};
    api_sse_frame(&b, "update", "{\"id\":\"1\"}", 10, false);
    assert_string_equal(api_buf_cstr(&b), "event: update\ndata: {\"id\":\"1\"}\n\n");
    api_buf_reset(&b);
    api_sse_frame(&b, "delete", "a\nb\r\nc", 6, false);
    assert_string_equal(api_buf_cstr(&b), "event: delete\ndata: a\ndata: b\ndata: c\n\n");
    api_buf_reset(&b);
    api_sse_frame(&b, "x", "", 0, false);
    assert_string_equal(api_buf_cstr(&b), "event: x\ndata: \n\n");
    api_buf_reset(&b);
    api_sse_frame(&b, "delete", "123", 3, true);
    /* one HTTP chunk: hex size, CRLF, the event, CRLF */
    assert_string_equal(api_buf_cstr(&b), "00000019\r\nevent: delete\ndata: 123\n\n\r\n");
    assert_int_equal(strlen("event: delete\ndata: 123\n\n"), 0x19);
    api_buf_free(&b);
}

static char *label(const char *chan)
{
    static char out[128];
    api_buf b = {0};
    api_jw w;
    api_jw_init(&w, &b);
    bool ok = api_stream_label(&w, chan, strlen(chan));
    snprintf(out, sizeof(out), "%s", ok ? api_buf_cstr(&b) : "-");
    api_buf_free(&b);
    return out;
}

static void test_stream_labels(void **state)
{
    assert_string_equal(label("timeline:123"), "[\"user\"]");
    assert_string_equal(label("timeline:123:notifications"), "[\"user:notification\"]");
    assert_string_equal(label("timeline:list:77"), "[\"list\",\"77\"]");
    assert_string_equal(label("timeline:public"), "[\"public\"]");
    assert_string_equal(label("timeline:public:local"), "[\"public:local\"]");
    assert_string_equal(label("timeline:hashtag:cats"), "[\"hashtag\",\"cats\"]");
    assert_string_equal(label("timeline:hashtag:cats:local"), "[\"hashtag:local\",\"cats\"]");
    assert_string_equal(label("timeline:direct:5"), "[\"direct\"]");
    assert_string_equal(label("other"), "-");
    assert_string_equal(label("timeline:publicx"), "-");
}

static void test_render_update(void **state)
{
    const char *chan = "timeline:42";
    const char *text =
        "{\"event\":\"update\",\"payload\":{\"id\":\"9\",\"content\":\"<p>a \\\"q\\\"</p>\"}}";
    api_msg *m = api_msg_render(chan, strlen(chan), text, strlen(text));
    assert_non_null(m);
    assert_memory_equal(m->data, chan, m->chan_len);
    /* WebSocket: a text frame whose payload is the event with payload as a JSON string */
    const uint8_t *ws = (const uint8_t *)m->data + m->ws_off;
    assert_int_equal(ws[0], 0x81);
    size_t hl = ws[1] < 126 ? 2 : 4;
    size_t plen = ws[1] < 126 ? ws[1] : ((size_t)ws[2] << 8 | ws[3]);
    assert_int_equal(plen + hl, m->ws_len);
    json_t *ev = json_loadb((const char *)ws + hl, plen, 0, NULL);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_array_get(json_object_get(ev, "stream"), 0)),
                        "user");
    assert_string_equal(json_string_value(json_object_get(ev, "event")), "update");
    const char *payload = json_string_value(json_object_get(ev, "payload"));
    assert_non_null(payload);
    json_t *status = json_loads(payload, 0, NULL);
    assert_non_null(status);
    assert_string_equal(json_string_value(json_object_get(status, "id")), "9");
    assert_string_equal(json_string_value(json_object_get(status, "content")), "<p>a \"q\"</p>");
    json_decref(status);
    json_decref(ev);
    /* SSE: chunked and raw forms agree */
    char raw[512];
    snprintf(raw, sizeof(raw), "%.*s", (int)m->raw_len, m->data + m->raw_off);
    assert_true(strncmp(raw, "event: update\ndata: {\"id\":\"9\"", 29) == 0);
    assert_memory_equal(m->data + m->sse_off + 10, raw, m->raw_len);
    assert_memory_equal(m->data + m->sse_off + m->sse_len - 2, "\r\n", 2);
    api_msg_unref(m);
}

static void test_render_delete_and_list(void **state)
{
    const char *chan = "timeline:list:5";
    const char *text = "{\"event\":\"delete\",\"payload\":\"123\"}";
    api_msg *m = api_msg_render(chan, strlen(chan), text, strlen(text));
    assert_non_null(m);
    const char *ws = m->data + m->ws_off + 2;
    assert_memory_equal(ws,
                        "{\"stream\":[\"list\",\"5\"],\"event\":\"delete\",\"payload\":\"123\"}",
                        m->ws_len - 2);
    assert_memory_equal(m->data + m->raw_off, "event: delete\ndata: 123\n\n", m->raw_len);
    api_msg_ref(m);
    api_msg_unref(m);
    api_msg_unref(m);
}

static void test_render_rejects_junk(void **state)
{
    const char *chan = "timeline:1";
    assert_null(api_msg_render(chan, 10, "not json", 8));
    assert_null(api_msg_render(chan, 10, "[1]", 3));
    assert_null(api_msg_render(chan, 10, "{\"payload\":1}", 13));
    assert_null(api_msg_render(chan, 10, "{\"event\":\"a\\nb\",\"payload\":1}", 28));
    assert_null(api_msg_render("nochan", 6, "{\"event\":\"x\",\"payload\":1}", 25));
}

static void test_large_payload_uses_long_header(void **state)
{
    char text[70000];
    int n = snprintf(text, sizeof(text), "{\"event\":\"update\",\"payload\":{\"content\":\"");
    memset(text + n, 'x', 66000);
    n += 66000;
    n += snprintf(text + n, sizeof(text) - (size_t)n, "\"}}");
    api_msg *m = api_msg_render("timeline:1", 10, text, (size_t)n);
    assert_non_null(m);
    const uint8_t *ws = (const uint8_t *)m->data + m->ws_off;
    assert_int_equal(ws[1], 127);
    api_msg_unref(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_accept_rfc6455_example),
        cmocka_unit_test(test_ws_frame_header),
        cmocka_unit_test(test_sse_frame),
        cmocka_unit_test(test_stream_labels),
        cmocka_unit_test(test_render_update),
        cmocka_unit_test(test_render_delete_and_list),
        cmocka_unit_test(test_render_rejects_junk),
        cmocka_unit_test(test_large_payload_uses_long_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
