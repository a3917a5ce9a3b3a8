/* push_fcm.c — FCM HTTP v1 requests, OAuth2 access tokens and answers (DESIGN.md §6; Google's "Authorize send
 * requests", "Send a message using FCM HTTP v1 API" and the FcmError codes). */
#include "push_fcm.h"
#include "corral/error.h"
#include "push_note.h"
#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIT(b, s) cr_buf_append((b), (s), sizeof(s) - 1)

#define GRANT_FORM "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion="
#define FORM_MAX (16 * 1024)

/* ---- the OAuth2 token --------------------------------------------------------------------------------------------- */

static int copy_url(char *out, size_t outlen, const char *base, const char *path_fmt, const char *arg)
{
    size_t blen = strlen(base);
    char fmt[64];
    int n;
    while (blen > 0 && base[blen - 1] == '/')
        --blen;
    snprintf(fmt, sizeof(fmt), "%%.*s%s", path_fmt);
    n = snprintf(out, outlen, fmt, (int)blen, base, arg);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int relay_fcm_token_request(relay_push_req_t *out, const relay_service_account_t *sa, const char *token_url,
                            int64_t now_s)
{
    int rc;
    memset(out, 0, sizeof(*out));
    cr_buf_init(&out->body, FORM_MAX);
    if (token_url == NULL || token_url[0] == '\0')
        token_url = sa->token_uri;
    if (token_url == NULL || strlen(token_url) >= sizeof(out->url))
        return cr_error_set(CR_ETOOLARGE, "fcm.token_url", "the token URL is missing or longer than %zu bytes",
                            sizeof(out->url) - 1);
    memcpy(out->url, token_url, strlen(token_url) + 1);
    out->method = "POST";
    if (relay_push_req_header(out, "content-type", "application/x-www-form-urlencoded") != 0 ||
        relay_push_req_header(out, "accept", "application/json") != 0) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    /* the assertion is base64url and dots: nothing to escape in a form */
    if ((rc = cr_buf_append(&out->body, GRANT_FORM, sizeof(GRANT_FORM) - 1)) != 0 ||
        (rc = relay_jwt_fcm_assertion(&out->body, sa, now_s)) != 0)
        goto fail;
    return 0;
fail:
    relay_push_req_free(out);
    return rc;
}

void relay_fcm_token_free(relay_fcm_token_t *t)
{
    if (t->access_token != NULL) {
        sodium_memzero(t->access_token, strlen(t->access_token));
        free(t->access_token);
    }
    t->access_token = NULL;
    t->valid_until_s = 0;
}

int relay_fcm_token_valid(const relay_fcm_token_t *t, int64_t now_s)
{
    return t->access_token != NULL && now_s < t->valid_until_s;
}

static int visible_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (s[i] <= 0x20 || s[i] >= 0x7f)
            return 0;
    return n > 0;
}

int relay_fcm_token_parse(relay_fcm_token_t *out, relay_push_outcome_t *outcome, const relay_push_answer_t *ans,
                          int64_t now_s)
{
    cr_buf_t mp = {0};
    cr_span_t v;
    cr_mp_item_t tok, exp;
    char text[64];
    int rc = -1;

    memset(outcome, 0, sizeof(*outcome));
    outcome->retry_after_ms = -1;
    if (ans->status == 0 || ans->status == 429 || (ans->status >= 500 && ans->status <= 599)) {
        outcome->verdict = RELAY_PUSH_RETRY;
        outcome->retry_after_ms = ans->status == 0 ? -1 : ans->retry_after_ms;
        if (ans->status == 0)
            relay_push__reason(outcome, "transport");
        else
            snprintf(outcome->reason, sizeof(outcome->reason), "http_%ld", ans->status);
        cr_error_set(CR_ERR, "fcm.token_url", "the OAuth token endpoint did not answer (%s)", outcome->reason);
        return -1;
    }
    outcome->verdict = RELAY_PUSH_FAILED;
    if (relay_push__answer_mp(&mp, ans) != 0) {
        snprintf(outcome->reason, sizeof(outcome->reason), ans->status == 200 ? "bad_token_answer" : "http_%ld",
                 ans->status);
        cr_error_set(CR_ECONFIG, "fcm.token_url", "the OAuth token endpoint answered %ld without JSON", ans->status);
        goto done;
    }
    if (ans->status != 200) {
        char desc[160];
        if (relay_push__mp_text(text, sizeof(text), mp.base, mp.len, "error") == 0)
            relay_push__reason(outcome, text);
        else
            snprintf(outcome->reason, sizeof(outcome->reason), "http_%ld", ans->status);
        relay_push__mp_text(desc, sizeof(desc), mp.base, mp.len, "error_description");
        cr_error_set(CR_ECONFIG, "fcm.service_account", "the OAuth token endpoint refused the service account: %ld %s (%s)",
                     ans->status, outcome->reason, desc);
        goto done;
    }
    relay_push__reason(outcome, "bad_token_answer");
    if (cr_mp_map_get(mp.base, mp.len, "access_token", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &tok) == 0 ||
        tok.type != MSGPACK_OBJECT_STR || tok.bytes.len > RELAY_FCM_ACCESS_TOKEN_MAX ||
        !visible_ascii(tok.bytes.base, tok.bytes.len) || cr_mp_map_get(mp.base, mp.len, "expires_in", &v) != 0 ||
        cr_mp_read(v.base, v.base + v.len, &exp) == 0 || exp.type != MSGPACK_OBJECT_POSITIVE_INTEGER || exp.u == 0 ||
        exp.u > 7 * 24 * 3600 ||
        (relay_push__mp_text(text, sizeof(text), mp.base, mp.len, "token_type") == 0 && strcasecmp(text, "Bearer") != 0)) {
        cr_error_set(CR_ECONFIG, "fcm.token_url", "the OAuth token answer lacks a Bearer access_token or expires_in");
        goto done;
    }
    relay_fcm_token_free(out);
    if ((out->access_token = malloc(tok.bytes.len + 1)) == NULL) {
        outcome->verdict = RELAY_PUSH_RETRY;
        relay_push__reason(outcome, "no_memory");
        goto done;
    }
    memcpy(out->access_token, tok.bytes.base, tok.bytes.len);
    out->access_token[tok.bytes.len] = '\0';
    {
        int64_t life = (int64_t)exp.u, keep = life - RELAY_FCM_TOKEN_MARGIN_S;
        out->valid_until_s = now_s + (keep > life / 2 ? keep : life / 2);
    }
    outcome->verdict = RELAY_PUSH_SENT;
    outcome->reason[0] = '\0';
    rc = 0;
done:
    if (mp.base != NULL)
        sodium_memzero(mp.base, mp.len); /* the access token was in there */
    cr_buf_free(&mp);
    return rc;
}

/* ---- messages:send ---------------------------------------------------------------------------------------------- */

typedef struct st_msg_ctx_t {
    const char *token;
    int64_t ttl_s;
} msg_ctx_t;

static int build_message(cr_buf_t *out, const relay_push_note_t *n, int with_sealed, const void *data)
{
    const msg_ctx_t *c = data;
    char seq[24], ttl[32];
    int rc;
    snprintf(seq, sizeof(seq), "%" PRIu64, n->seq);
    snprintf(ttl, sizeof(ttl), "%" PRId64 "s", c->ttl_s);
    if ((rc = LIT(out, "{\"message\":{")) != 0 || (rc = relay_push__json_kv(out, 0, "token", c->token)) != 0 ||
        (rc = LIT(out, ",\"data\":{")) != 0 || (rc = relay_push__json_kv(out, 0, "title", n->title)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "body", n->body)) != 0 || (rc = relay_push__json_kv(out, 1, "sid", n->sid)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "seq", seq)) != 0 || (rc = relay_push__json_kv(out, 1, "k", n->k)) != 0 ||
        (rc = relay_push__json_kv(out, 1, "host", n->host)) != 0 || (rc = relay_push__json_kv(out, 1, "id", n->id)) != 0 ||
        (n->category != NULL && (rc = relay_push__json_kv(out, 1, "category", n->category)) != 0) ||
        (with_sealed && (rc = relay_push__json_b64(out, 1, "e", n->sealed, n->sealed_len)) != 0) ||
        (rc = LIT(out, "},\"android\":{\"priority\":\"high\"")) != 0 ||
        (rc = relay_push__json_kv(out, 1, "collapse_key", n->sid)) != 0 || (rc = relay_push__json_kv(out, 1, "ttl", ttl)) != 0 ||
        (rc = LIT(out, "}}}")) != 0)
        return rc;
    return 0;
}

int relay_fcm_request(relay_push_req_t *out, const relay_push_note_t *note, const relay_push_device_t *dev,
                      const char *base_url, const char *project_id, const char *access_token, int64_t now_s)
{
    relay_push_note_t work;
    msg_ctx_t ctx = {dev->token, note->expires_s > now_s ? note->expires_s - now_s : 0};
    char hv[RELAY_FCM_ACCESS_TOKEN_MAX + 16];
    int rc, n;

    memset(out, 0, sizeof(*out));
    cr_buf_init(&out->body, RELAY_FCM_MESSAGE_MAX + 4096);
    if (dev->provider != RELAY_PUSH_FCM || dev->token[0] == '\0')
        return cr_error_set(CR_EBODY, "token", "device %s is not an FCM device with a token", dev->id);
    if (project_id == NULL || project_id[0] == '\0' || strpbrk(project_id, "/?#% ") != NULL)
        return cr_error_set(CR_ECONFIG, "fcm.project_id", "no usable FCM project id");
    if (access_token == NULL || access_token[0] == '\0' || strlen(access_token) > RELAY_FCM_ACCESS_TOKEN_MAX)
        return cr_error_set(CR_ECONFIG, "fcm.service_account", "no FCM access token");
    if (copy_url(out->url, sizeof(out->url), base_url != NULL && base_url[0] != '\0' ? base_url : RELAY_FCM_URL,
                 "/v1/projects/%s/messages:send", project_id) != 0)
        return cr_error_set(CR_ETOOLARGE, "fcm.url", "the FCM URL is longer than %zu bytes", sizeof(out->url) - 1);
    out->method = "POST";
    n = snprintf(hv, sizeof(hv), "Bearer %s", access_token);
    rc = relay_push_req_header(out, "authorization", hv);
    sodium_memzero(hv, (size_t)n < sizeof(hv) ? (size_t)n : sizeof(hv));
    if (rc != 0 || relay_push_req_header(out, "content-type", "application/json; charset=utf-8") != 0) {
        rc = cr_error_set(CR_ECONFIG, "fcm", "an FCM header value holds a line break");
        goto fail;
    }
    if ((rc = relay_push__fit(&out->body, &work, note, RELAY_FCM_MESSAGE_MAX, build_message, &ctx)) != 0)
        goto fail;
    return 0;
fail:
    relay_push_req_free(out);
    return rc;
}

/* ---- answers ---------------------------------------------------------------------------------------------------- */

/* The first details[].errorCode of Google's error document. */
static void error_code(char *out, size_t outlen, const char *mp, size_t len)
{
    cr_span_t err, det;
    cr_mp_item_t it = {0};
    const char *p, *end;
    out[0] = '\0';
    if (cr_mp_map_get(mp, len, "error", &err) != 0 || cr_mp_map_get(err.base, err.len, "details", &det) != 0)
        return;
    end = det.base + det.len;
    p = det.base + cr_mp_read(det.base, end, &it);
    if (it.type != MSGPACK_OBJECT_ARRAY)
        return;
    for (uint32_t i = 0; i < it.count && p < end; ++i) {
        const char *next = cr_mp_skip(p, end);
        if (next == NULL)
            return;
        if (relay_push__mp_text(out, outlen, p, (size_t)(next - p), "errorCode") == 0 && out[0] != '\0')
            return;
        p = next;
    }
}

void relay_fcm_classify(relay_push_outcome_t *out, const relay_push_answer_t *ans)
{
    cr_buf_t mp = {0};
    char code[sizeof(out->reason)] = "", status[sizeof(out->reason)] = "", message[256] = "";
    long st = ans->status;

    memset(out, 0, sizeof(*out));
    out->retry_after_ms = -1;
    if (st == 0) {
        out->verdict = RELAY_PUSH_RETRY;
        relay_push__reason(out, "transport");
        return;
    }
    if (relay_push__answer_mp(&mp, ans) == 0) {
        error_code(code, sizeof(code), mp.base, mp.len);
        relay_push__mp_text(status, sizeof(status), mp.base, mp.len, "error.status");
        relay_push__mp_text(message, sizeof(message), mp.base, mp.len, "error.message");
    }
    cr_buf_free(&mp);
    if (code[0] != '\0')
        relay_push__reason(out, code);
    else if (status[0] != '\0')
        relay_push__reason(out, status);
    else
        snprintf(out->reason, sizeof(out->reason), "http_%ld", st);

    if (st == 200) {
        out->verdict = RELAY_PUSH_SENT;
        out->reason[0] = '\0';
    } else if (strcmp(code, "UNREGISTERED") == 0 ||
               (st == 400 && strcmp(status, "INVALID_ARGUMENT") == 0 &&
                strstr(message, "not a valid FCM registration token") != NULL)) {
        out->verdict = RELAY_PUSH_DEAD;
    } else if (st == 401 && strcmp(code, "THIRD_PARTY_AUTH_ERROR") != 0) {
        out->verdict = RELAY_PUSH_RETRY; /* UNAUTHENTICATED: our access token expired or was revoked */
        out->refresh_auth = 1;
    } else if (st == 429 || (st >= 500 && st <= 599)) {
        out->verdict = RELAY_PUSH_RETRY;
        out->retry_after_ms = ans->retry_after_ms;
    } else {
        out->verdict = RELAY_PUSH_FAILED;
    }
}
