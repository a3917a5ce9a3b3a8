/* push_note.c — the provider-neutral side of a push: an event's notification text, device records and their filters,
 * the HTTP request struct, and the small JSON helpers the provider modules share (DESIGN.md §6). */
#include "push_note.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/json.h"
#include "push_jwt.h"
#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */
#define PIECE_MAX 1024          /* bytes of one text piece kept before the final cut (> any note field) */

/* ---- text ------------------------------------------------------------------------------------------------------- */

void relay_push_text_shorten(char *s, size_t max)
{
    size_t len = strlen(s), cut;
    if (len <= max)
        return;
    cut = max >= 3 ? max - 3 : max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80) /* never split a character */
        --cut;
    if (max >= 3) {
        memcpy(s + cut, ELLIPSIS, 3);
        cut += 3;
    }
    s[cut] = '\0';
}

/* A text being put together from pieces of peer data, at most PIECE_MAX bytes; the final cut comes later. */
typedef struct st_text_t {
    char s[PIECE_MAX + 1];
    size_t len;
} text_t;

static void tput(text_t *t, const char *p, size_t n)
{
    for (size_t i = 0; i < n && t->len < PIECE_MAX; ++i)
        t->s[t->len++] = p[i] == '\0' ? ' ' : p[i]; /* a NUL inside a msgpack str would end the C string */
    t->s[t->len] = '\0';
}

static void tputs(text_t *t, const char *s)
{
    tput(t, s, strlen(s));
}

static void tspan(text_t *t, cr_span_t s)
{
    tput(t, s.base, s.len);
}

/* Copies t into out[outlen] with the cut of relay_push_text_shorten. A piece cut at PIECE_MAX may end inside a
 * character; the final cut is always well before that. */
static void tcopy(char *out, size_t outlen, text_t *t)
{
    relay_push_text_shorten(t->s, outlen - 1);
    memcpy(out, t->s, strlen(t->s) + 1);
}

/* ---- notes ------------------------------------------------------------------------------------------------------ */

/* The string at key of the plain body, or an empty span. */
static cr_span_t body_str(const cr_event_t *ev, const char *key)
{
    cr_span_t v, none = {"", 0};
    cr_mp_item_t it;
    if (ev->b.sealed || cr_mp_map_get(ev->b.raw.base, ev->b.raw.len, key, &v) != 0 ||
        cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return none;
    return it.bytes;
}

static uint64_t body_uint(const cr_event_t *ev, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (ev->b.sealed || cr_mp_map_get(ev->b.raw.base, ev->b.raw.len, key, &v) != 0 ||
        cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return 0;
    return it.u;
}

static uint32_t body_count(const cr_event_t *ev, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (ev->b.sealed || cr_mp_map_get(ev->b.raw.base, ev->b.raw.len, key, &v) != 0 ||
        cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_ARRAY)
        return 0;
    return it.count;
}

/* "a: b", or whichever of the two is not empty. */
static void tpair(text_t *t, cr_span_t a, const char *sep, cr_span_t b)
{
    tspan(t, a);
    if (a.len != 0 && b.len != 0)
        tputs(t, sep);
    tspan(t, b);
}

/* The body text of a plain body. Never reads approval.request's input or an inbox message's otp. */
static void plain_body(text_t *t, const cr_event_t *ev)
{
    char num[96];
    switch (ev->kind) {
    case CR_EV_APPROVAL_REQUEST:
        tpair(t, body_str(ev, "tool"), ": ", body_str(ev, "summary"));
        break;
    case CR_EV_QUESTION:
        tspan(t, body_str(ev, "text"));
        break;
    case CR_EV_DIFF_READY: {
        uint32_t n = body_count(ev, "files");
        snprintf(num, sizeof(num), "%" PRIu32 " file%s changed, +%" PRIu64 " -%" PRIu64, n, n == 1 ? "" : "s",
                 body_uint(ev, "add"), body_uint(ev, "del"));
        tputs(t, num);
        break;
    }
    case CR_EV_AGENT_MESSAGE:
        tspan(t, body_str(ev, "text"));
        break;
    case CR_EV_AGENT_TOOL:
        tpair(t, body_str(ev, "tool"), ": ", body_str(ev, "summary"));
        break;
    case CR_EV_SESSION_STATE:
        tpair(t, body_str(ev, "state"), ": ", body_str(ev, "reason"));
        break;
    case CR_EV_SESSION_DONE:
        tspan(t, body_str(ev, "summary"));
        break;
    case CR_EV_ACTION_APPLIED:
        tspan(t, body_str(ev, "detail"));
        break;
    case CR_EV_INBOX_MESSAGE:
        tpair(t, body_str(ev, "from"), ": ", body_str(ev, "subject"));
        break;
    default:
        break;
    }
}

static int copy_id(char *out, size_t outlen, const char *s, const char *field)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n >= outlen)
        return cr_error_set(CR_ETOOLARGE, field, "%s is %zu bytes, at most %zu fit a push", field, n, outlen - 1);
    memcpy(out, s != NULL ? s : "", n);
    out[n] = '\0';
    return 0;
}

int relay_push_note_from_decoded(relay_push_note_t *out, const cr_event_t *ev, const char *stream_id, const char *host,
                                 const char *session_name, int64_t now_s)
{
    text_t who = {.len = 0}, body = {.len = 0};
    const char *suffix;
    char kind_suffix[80];
    int rc;

    memset(out, 0, sizeof(*out));
    if (ev->sid.len >= sizeof(out->sid) || ev->k.len >= sizeof(out->k))
        return cr_error_set(CR_EENVELOPE, ev->sid.len >= sizeof(out->sid) ? "sid" : "k", "too long for a push");
    if ((rc = copy_id(out->id, sizeof(out->id), stream_id, "stream_id")) != 0 ||
        (rc = copy_id(out->host, sizeof(out->host), host, "host")) != 0)
        return rc;
    memcpy(out->sid, ev->sid.base, ev->sid.len);
    memcpy(out->k, ev->k.base, ev->k.len);
    out->seq = ev->seq;
    out->expires_s = now_s + RELAY_PUSH_NOTE_TTL_S;

    switch (ev->kind) {
    case CR_EV_APPROVAL_REQUEST:
        suffix = " needs approval";
        out->category = "CORRAL_APPROVAL";
        break;
    case CR_EV_QUESTION:
        suffix = " asks a question";
        out->category = "CORRAL_QUESTION";
        break;
    case CR_EV_DIFF_READY:
        suffix = " has changes to review";
        out->category = "CORRAL_REVIEW";
        break;
    default:
        snprintf(kind_suffix, sizeof(kind_suffix), ": %s", out->k);
        suffix = kind_suffix;
        break;
    }
    if (ev->idn.len != 0)
        tspan(&who, ev->idn);
    else if (session_name != NULL && session_name[0] != '\0')
        tputs(&who, session_name);
    else
        tspan(&who, ev->sid);
    relay_push_text_shorten(who.s, sizeof(out->title) - 1 - strlen(suffix)); /* the "what" part always survives */
    {
        size_t wl = strlen(who.s), sl = strlen(suffix);
        memcpy(out->title, who.s, wl);
        memcpy(out->title + wl, suffix, sl + 1); /* wl + sl < sizeof(title): shortened above */
    }

    if (ev->b.sealed) {
        tputs(&body, RELAY_PUSH_SEALED_FALLBACK);
        out->sealed = (const uint8_t *)ev->b.box.base;
        out->sealed_len = ev->b.box.len;
    } else {
        plain_body(&body, ev);
    }
    tcopy(out->body, sizeof(out->body), &body);
    return 0;
}

int relay_push_note_from_event(relay_push_note_t *out, const char *env, size_t len, const char *stream_id,
                               const char *host, const char *session_name, int64_t now_s)
{
    cr_event_t ev;
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = cr_event_decode(&ev, env, len, NULL)) != 0)
        return rc;
    return relay_push_note_from_decoded(out, &ev, stream_id, host, session_name, now_s);
}

/* ---- device records and filters -------------------------------------------------------------------------------- */

/* Looks up key in the map mp[0..len): 1 when present with the given type (item and value span filled), 0 when absent
 * or nil, -1 when of another type. */
static int field(const char *mp, size_t len, const char *key, int type, cr_mp_item_t *it, cr_span_t *v)
{
    cr_span_t sp;
    if (cr_mp_map_get(mp, len, key, &sp) != 0 || cr_mp_read(sp.base, sp.base + sp.len, it) == 0 ||
        it->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (v != NULL)
        *v = sp;
    return it->type == type ? 1 : -1;
}

/* Copies the required (or optional) string field key into out[outlen]. Returns 1, 0 (absent, optional), or an error. */
static int str_into(char *out, size_t outlen, const char *mp, size_t len, const char *key, const char *path, int required)
{
    cr_mp_item_t it;
    int rc = field(mp, len, key, MSGPACK_OBJECT_STR, &it, NULL);
    if (rc < 0 || (rc == 0 && required))
        return cr_error_set(CR_EBODY, path, rc < 0 ? "%s must be a string" : "%s is missing", path);
    if (rc == 0)
        return 0;
    if (it.bytes.len >= outlen)
        return cr_error_set(CR_ETOOLARGE, path, "%s is %zu bytes, at most %zu are supported", path, it.bytes.len,
                            outlen - 1);
    if (memchr(it.bytes.base, '\0', it.bytes.len) != NULL)
        return cr_error_set(CR_EBODY, path, "%s holds a NUL byte", path);
    memcpy(out, it.bytes.base, it.bytes.len);
    out[it.bytes.len] = '\0';
    return 1;
}

/* Decodes the base64url key at key (padding tolerated) into exactly n bytes. */
static int key_into(uint8_t *out, size_t n, const char *mp, size_t len, const char *key, const char *path)
{
    cr_mp_item_t it;
    cr_buf_t b;
    cr_span_t s;
    int rc = field(mp, len, key, MSGPACK_OBJECT_STR, &it, NULL);
    if (rc <= 0)
        return cr_error_set(CR_EBODY, path, rc < 0 ? "%s must be a string" : "%s is missing", path);
    s = it.bytes;
    while (s.len > 0 && s.base[s.len - 1] == '=')
        --s.len;
    cr_buf_init(&b, n + 8);
    rc = s.len <= 4 * n ? cr_base64url_decode(&b, s.base, s.len) : CR_ETOOLARGE;
    if (rc == 0 && b.len == n)
        memcpy(out, b.base, n);
    else
        rc = cr_error_set(CR_EBODY, path, "%s must be base64url of %zu bytes", path, n);
    cr_buf_free(&b);
    return rc;
}

/* Checks that the optional filter key is an array of strings; *out gets its bytes (len 0 when absent). */
static int id_list(cr_span_t *out, const char *mp, size_t len, const char *key, const char *path)
{
    cr_mp_item_t it, el;
    cr_span_t v;
    const char *p, *end;
    int rc = field(mp, len, key, MSGPACK_OBJECT_ARRAY, &it, &v);
    out->base = NULL;
    out->len = 0;
    if (rc < 0)
        return cr_error_set(CR_EBODY, path, "%s must be an array", path);
    if (rc == 0)
        return 0;
    end = v.base + v.len;
    p = v.base + cr_mp_read(v.base, end, &it);
    for (uint32_t i = 0; i < it.count; ++i) {
        if (cr_mp_read(p, end, &el) == 0 || el.type != MSGPACK_OBJECT_STR)
            return cr_error_set(CR_EBODY, path, "%s must hold strings only", path);
        p = cr_mp_skip(p, end);
    }
    *out = v;
    return 0;
}

int relay_push_device_parse(relay_push_device_t *out, relay_push_filters_t *filters, const char *rec, size_t len)
{
    char provider[16], env[16] = "";
    cr_mp_item_t it;
    cr_span_t sub, keys, fil;
    size_t used;
    int rc;

    memset(out, 0, sizeof(*out));
    if (filters != NULL) {
        memset(filters, 0, sizeof(*filters));
        filters->min_pri = RELAY_PUSH_MIN_PRI_DEFAULT;
    }
    if ((rc = cr_mp_check(rec, len, NULL, RELAY_PUSH_DEVICE_RECORD_MAX, "device", &used)) != 0)
        return rc == CR_EAGAIN ? cr_error_set(CR_ETRUNCATED, "device", "the device record is cut short") : rc;
    if (used != len)
        return cr_error_set(CR_ETRAILING, "device", "bytes after the device record");
    if (cr_mp_read(rec, rec + len, &it) == 0 || it.type != MSGPACK_OBJECT_MAP)
        return cr_error_set(CR_EBODY, "device", "a device record is a map");
    if ((rc = str_into(out->id, sizeof(out->id), rec, len, "id", "id", 1)) < 0)
        return rc;
    if ((rc = str_into(provider, sizeof(provider), rec, len, "provider", "provider", 1)) < 0)
        return rc == CR_ETOOLARGE ? cr_error_set(CR_EBODY, "provider", "unknown provider") : rc;

    if (strcmp(provider, "apns") == 0 || strcmp(provider, "fcm") == 0) {
        out->provider = provider[0] == 'a' ? RELAY_PUSH_APNS : RELAY_PUSH_FCM;
        if ((rc = str_into(out->token, sizeof(out->token), rec, len, "token", "token", 1)) < 0)
            return rc;
        if (out->provider == RELAY_PUSH_APNS) {
            if ((rc = str_into(env, sizeof(env), rec, len, "env", "env", 0)) < 0)
                return rc == CR_ETOOLARGE ? cr_error_set(CR_EBODY, "env", "env must be sandbox or production") : rc;
            if (env[0] != '\0' && strcmp(env, "sandbox") != 0 && strcmp(env, "production") != 0)
                return cr_error_set(CR_EBODY, "env", "env must be sandbox or production");
            out->sandbox = strcmp(env, "sandbox") == 0;
        }
    } else if (strcmp(provider, "webpush") == 0) {
        out->provider = RELAY_PUSH_WEBPUSH;
        if (field(rec, len, "subscription", MSGPACK_OBJECT_MAP, &it, &sub) != 1)
            return cr_error_set(CR_EBODY, "subscription", "a webpush device needs subscription {endpoint, keys}");
        if ((rc = str_into(out->endpoint, sizeof(out->endpoint), sub.base, sub.len, "endpoint", "subscription.endpoint",
                           1)) < 0)
            return rc;
        if (field(sub.base, sub.len, "keys", MSGPACK_OBJECT_MAP, &it, &keys) != 1)
            return cr_error_set(CR_EBODY, "subscription.keys", "subscription.keys {p256dh, auth} is missing");
        if ((rc = key_into(out->p256dh, sizeof(out->p256dh), keys.base, keys.len, "p256dh", "subscription.keys.p256dh")) <
                0 ||
            (rc = key_into(out->auth, sizeof(out->auth), keys.base, keys.len, "auth", "subscription.keys.auth")) < 0)
            return rc;
        if (out->p256dh[0] != 0x04)
            return cr_error_set(CR_EBODY, "subscription.keys.p256dh", "p256dh must be an uncompressed P-256 point");
    } else if (strcmp(provider, "none") == 0) {
        out->provider = RELAY_PUSH_NONE;
    } else {
        return cr_error_set(CR_EBODY, "provider", "unknown provider %s", provider);
    }

    if (field(rec, len, "updated", MSGPACK_OBJECT_POSITIVE_INTEGER, &it, NULL) == 1 ||
        field(rec, len, "created", MSGPACK_OBJECT_POSITIVE_INTEGER, &it, NULL) == 1)
        out->created_ms = it.u;

    if ((rc = field(rec, len, "filters", MSGPACK_OBJECT_MAP, &it, &fil)) < 0)
        return cr_error_set(CR_EBODY, "filters", "filters must be a map");
    if (rc == 1 && filters != NULL) {
        if ((rc = id_list(&filters->hosts, fil.base, fil.len, "hosts", "filters.hosts")) < 0 ||
            (rc = id_list(&filters->identities, fil.base, fil.len, "identities", "filters.identities")) < 0 ||
            (rc = id_list(&filters->muted, fil.base, fil.len, "muted", "filters.muted")) < 0)
            return rc;
        if ((rc = field(fil.base, fil.len, "min_pri", MSGPACK_OBJECT_POSITIVE_INTEGER, &it, NULL)) < 0 ||
            (rc == 1 && it.u > 2))
            return cr_error_set(CR_EBODY, "filters.min_pri", "filters.min_pri must be 0, 1 or 2");
        if (rc == 1)
            filters->min_pri = (unsigned)it.u;
    }
    return 0;
}

/* Whether s is one of the strings of the array arr (checked by id_list). */
static bool listed(cr_span_t arr, cr_span_t s)
{
    const char *p = arr.base, *end = arr.base + arr.len;
    cr_mp_item_t it, el;
    size_t n = cr_mp_read(p, end, &it);
    if (n == 0 || it.type != MSGPACK_OBJECT_ARRAY)
        return false;
    p += n;
    for (uint32_t i = 0; i < it.count && p != NULL && p < end; ++i) {
        if (cr_mp_read(p, end, &el) != 0 && el.type == MSGPACK_OBJECT_STR && el.bytes.len == s.len &&
            memcmp(el.bytes.base, s.base, s.len) == 0)
            return true;
        p = cr_mp_skip(p, end);
    }
    return false;
}

bool relay_push_filter_match(const relay_push_filters_t *f, cr_span_t host, cr_span_t idn, unsigned pri, cr_span_t sid)
{
    if (pri < f->min_pri)
        return false;
    if (f->hosts.len != 0 && !listed(f->hosts, host))
        return false;
    if (f->identities.len != 0 && (idn.len == 0 || !listed(f->identities, idn)))
        return false;
    if (f->muted.len != 0 && listed(f->muted, sid))
        return false;
    return true;
}

/* ---- shared by the provider modules ------------------------------------------------------------------------------ */

int relay_push__json_kv(cr_buf_t *out, int comma, const char *key, const char *value)
{
    size_t old = out->len;
    int rc;
    if ((comma && (rc = cr_buf_append(out, ",", 1)) != 0) || (rc = relay_jwt__json_str(out, key)) != 0 ||
        (rc = cr_buf_append(out, ":", 1)) != 0 || (rc = relay_jwt__json_str(out, value)) != 0) {
        out->len = old;
        return rc;
    }
    return 0;
}

int relay_push__json_b64(cr_buf_t *out, int comma, const char *key, const void *p, size_t n)
{
    size_t old = out->len, enc = cr_base64_encoded_len(n);
    int rc;
    if ((comma && (rc = cr_buf_append(out, ",", 1)) != 0) || (rc = relay_jwt__json_str(out, key)) != 0 ||
        (rc = cr_buf_append(out, ":\"", 2)) != 0 || (rc = cr_buf_reserve(out, enc + 1)) != 0)
        goto fail;
    out->len += cr_base64_encode(out->base + out->len, p, n);
    if ((rc = cr_buf_append(out, "\"", 1)) == 0)
        return 0;
fail:
    out->len = old;
    return rc;
}

/* How many bytes of s (len bytes) to keep so that its JSON form shrinks by about excess bytes: escaped characters
 * take up to 6 bytes each, so the cut is scaled by the text's own escaping ratio (and the "…" it gains). The caller
 * loops until the payload fits; the result is always shorter than len. */
static size_t keep_for(const char *s, size_t len, size_t excess)
{
    size_t esc = 0, drop;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        esc += c == '"' || c == '\\' ? 2 : c < 0x20 ? 6 : 1;
    }
    drop = (excess * len + esc - 1) / esc + 3;
    return len > drop ? len - drop : 0;
}

int relay_push__fit(cr_buf_t *out, relay_push_note_t *work, const relay_push_note_t *note, size_t max,
                    relay_push__build_cb build, const void *ctx)
{
    int with_sealed = note->sealed != NULL && cr_base64_encoded_len(note->sealed_len) <= max, rc;
    *work = *note;
    for (;;) {
        size_t excess, blen = strlen(work->body), tlen = strlen(work->title);
        out->len = 0;
        rc = build(out, work, with_sealed, ctx);
        if (rc != 0 && rc != CR_ETOOLARGE)
            break;
        if (rc == 0 && out->len <= max)
            return 0;
        if (with_sealed) {
            with_sealed = 0; /* the fallback body stays; the app fetches the event */
            continue;
        }
        excess = rc == 0 ? out->len - max : 256;
        if (blen > 0)
            relay_push_text_shorten(work->body, keep_for(work->body, blen, excess));
        else if (tlen > 0)
            relay_push_text_shorten(work->title, keep_for(work->title, tlen, excess));
        else {
            rc = cr_error_set(CR_ETOOLARGE, NULL, "a push payload does not fit %zu bytes even without text", max);
            break;
        }
    }
    out->len = 0;
    return rc;
}

int relay_push__answer_mp(cr_buf_t *mp, const relay_push_answer_t *ans)
{
    cr_mp_item_t it;
    cr_buf_init(mp, 2 * RELAY_PUSH_ANSWER_MAX + 1024);
    if (ans->body == NULL || ans->body_len == 0 || ans->body_len > RELAY_PUSH_ANSWER_MAX ||
        cr_json_to_msgpack(mp, ans->body, ans->body_len, NULL) != 0 || cr_mp_read(mp->base, mp->base + mp->len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_MAP)
        return -1;
    return 0;
}

int relay_push__mp_text(char *out, size_t outlen, const char *mp, size_t len, const char *path)
{
    cr_span_t cur = {mp, len};
    cr_mp_item_t it;
    char key[64];
    out[0] = '\0';
    while (*path != '\0') {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(key))
            return -1;
        memcpy(key, path, n);
        key[n] = '\0';
        if (cr_mp_map_get(cur.base, cur.len, key, &cur) != 0)
            return -1;
        path += n + (path[n] == '.');
    }
    if (cr_mp_read(cur.base, cur.base + cur.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return -1;
    size_t n = it.bytes.len;
    if (n >= outlen) {
        n = outlen - 1;
        while (n > 0 && ((unsigned char)it.bytes.base[n] & 0xc0) == 0x80) /* never split a character */
            --n;
    }
    memcpy(out, it.bytes.base, n);
    out[n] = '\0';
    return 0;
}

void relay_push__reason(relay_push_outcome_t *out, const char *s)
{
    snprintf(out->reason, sizeof(out->reason), "%s", s);
}
