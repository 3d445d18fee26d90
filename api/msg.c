/*
 * Stream messages. A Redis pub/sub message is rendered once per process into every byte
 * sequence a client may need — a WebSocket text frame, an SSE event with and without HTTP
 * chunk framing — and the result is shared, by reference count, by every connection that
 * listens to the channel. Connections write slices of it; nothing is copied per listener
 * unless a socket is too slow to take it at once.
 *
 * Also here: the pure codecs of the streaming protocols (SSE framing, WebSocket frame header
 * and handshake accept value), kept apart so unit tests can reach them.
 */
#include "api/internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* take a reference */
void api_msg_ref(api_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

/* drop a reference; the last one frees */
void api_msg_unref(api_msg *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

static bool prefix(const char *s, size_t len, const char *p, size_t *plen)
{
    size_t l = strlen(p);
    *plen = l;
    return len >= l && memcmp(s, p, l) == 0;
}

static bool all_digits(const char *s, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Mastodon's stream names for a channel (streaming/index.js streamNameFromChannelName) */
bool api_stream_label(api_jw *w, const char *chan, size_t len)
{
    size_t pl;
    if (!prefix(chan, len, "timeline:", &pl))
        return false;
    const char *rest = chan + pl;
    size_t rl = len - pl;
    api_jw_arr(w);
    if (all_digits(rest, rl)) {
        api_jw_str(w, "user");
    } else if (rl > 14 && all_digits(rest, rl - 14) &&
               memcmp(rest + rl - 14, ":notifications", 14) == 0) {
        api_jw_str(w, "user:notification");
    } else if (prefix(rest, rl, "list:", &pl) && all_digits(rest + pl, rl - pl)) {
        api_jw_str(w, "list");
        api_jw_strn(w, rest + pl, rl - pl);
    } else if (prefix(rest, rl, "direct:", &pl) && all_digits(rest + pl, rl - pl)) {
        api_jw_str(w, "direct");
    } else if (prefix(rest, rl, "hashtag:", &pl) && rl > pl) {
        const char *tag = rest + pl;
        size_t tl = rl - pl;
        bool local = tl > 6 && memcmp(tag + tl - 6, ":local", 6) == 0;
        api_jw_str(w, local ? "hashtag:local" : "hashtag");
        api_jw_strn(w, tag, local ? tl - 6 : tl);
    } else if (prefix(rest, rl, "public", &pl) && (rl == pl || rest[pl] == ':')) {
        api_jw_strn(w, rest, rl);
    } else {
        return false;
    }
    api_jw_arr_end(w);
    return true;
}

/* "event: E\ndata: line\ndata: line\n\n", optionally as one HTTP chunk */
void api_sse_frame(api_buf *b, const char *event, const char *data, size_t len, bool chunked)
{
    size_t hdr_at = b->len;
    if (chunked)
        api_buf_append(b, "00000000\r\n", 10); /* patched below */
    size_t start = b->len;
    api_buf_puts(b, "event: ");
    api_buf_puts(b, event);
    api_buf_putc(b, '\n');
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r')
            j++;
        api_buf_append(b, "data: ", 6);
        api_buf_append(b, data + i, j - i);
        api_buf_putc(b, '\n');
        if (j >= len)
            break;
        if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    api_buf_putc(b, '\n');
    if (chunked) {
        size_t n = b->len - start;
        if (!b->oom) {
            char hex[9];
            snprintf(hex, sizeof(hex), "%08zx", n);
            memcpy(b->data + hdr_at, hex, 8);
        }
        api_buf_append(b, "\r\n", 2);
    }
}

/* header of an unmasked frame with FIN set */
size_t api_ws_frame_header(uint8_t out[10], int opcode, size_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

/* base64(SHA-1(key + GUID)) as RFC 6455 4.2.2 asks */
bool api_ws_accept(const char *key, size_t keylen, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t raw[32];
    if (keylen != 24 || b64_decode(key, keylen, raw, sizeof(raw)) != 16)
        return false;
    char buf[24 + sizeof(guid)];
    memcpy(buf, key, 24);
    memcpy(buf + 24, guid, sizeof(guid) - 1);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(buf, 24 + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        return false;
    return b64_encode(md, 20, out, 29) == 28;
}

/* render a pub/sub message for every kind of listener */
api_msg *api_msg_render(const char *chan, size_t chanlen, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &jerr);
    if (!root || !json_is_object(root)) {
        log_warning("pub/sub message on %.*s is not a JSON object: %s", (int)chanlen, chan,
                    root ? "not an object" : jerr.text);
        json_decref(root);
        return NULL;
    }
    const char *event = json_string_value(json_object_get(root, "event"));
    json_t *payload = json_object_get(root, "payload");
    if (!event || !*event || strpbrk(event, "\r\n") || !payload) {
        log_warning("pub/sub message on %.*s lacks event/payload", (int)chanlen, chan);
        json_decref(root);
        return NULL;
    }
    /* the client gets the payload as a JSON string: objects are serialized into it */
    char *dumped = NULL;
    const char *pl;
    size_t pllen;
    if (json_is_string(payload)) {
        pl = json_string_value(payload);
        pllen = json_string_length(payload);
    } else {
        dumped = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dumped) {
            json_decref(root);
            return NULL;
        }
        pl = dumped;
        pllen = strlen(dumped);
    }
    api_buf b = {0};
    api_buf_append(&b, chan, chanlen);
    /* WebSocket frame: room for the longest header; the real one ends where the body starts */
    api_buf_append(&b, "\0\0\0\0\0\0\0\0\0\0", 10);
    size_t body_at = b.len;
    api_jw w;
    api_jw_init(&w, &b);
    api_jw_obj(&w);
    api_jw_key(&w, "stream");
    bool labelled = api_stream_label(&w, chan, chanlen);
    api_jw_kstr(&w, "event", event);
    api_jw_key(&w, "payload");
    api_jw_strn(&w, pl, pllen);
    api_jw_obj_end(&w);
    size_t body_len = b.len - body_at;
    size_t sse_at = b.len;
    api_sse_frame(&b, event, pl, pllen, true);
    size_t sse_len = b.len - sse_at;
    free(dumped);
    json_decref(root);
    if (!labelled || b.oom || b.len > UINT32_MAX) {
        if (!labelled)
            log_warning("no stream name for channel %.*s", (int)chanlen, chan);
        api_buf_free(&b);
        return NULL;
    }
    uint8_t hdr[10];
    size_t hl = api_ws_frame_header(hdr, 1, body_len);
    memcpy(b.data + body_at - hl, hdr, hl);

    api_msg *m = malloc(sizeof(*m) + b.len);
    if (!m) {
        api_buf_free(&b);
        return NULL;
    }
    atomic_init(&m->refs, 1);
    memcpy(m->data, b.data, b.len);
    m->chan_len = (uint32_t)chanlen;
    m->ws_off = (uint32_t)(body_at - hl);
    m->ws_len = (uint32_t)(body_len + hl);
    m->sse_off = (uint32_t)sse_at;
    m->sse_len = (uint32_t)sse_len;
    m->raw_off = (uint32_t)(sse_at + 10);
    m->raw_len = (uint32_t)(sse_len - 12);
    api_buf_free(&b);
    return m;
}
