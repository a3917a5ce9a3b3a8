/* fake_webpush.c — a Web Push service (RFC 8030 push, RFC 8292 VAPID) that also plays the browser: it makes the
 * subscriptions (P-256 key pair and auth secret) and decrypts what it receives (RFC 8291), answering with autopush's
 * statuses and error bodies. */
#include "fake.h"
#include "fake_crypto.h"
#include "fake_jwt.h"
#include "corral/codec.h"
#include "corral/error.h"
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUBS_MAX 100000
#define BODY_MAX 4096              /* RFC 8030 §7.2: a push service must accept at least 4096 bytes */
#define VAPID_EXP_MAX_S 86400      /* RFC 8292 §2: exp no more than 24 hours ahead */
#define TTL_MAX 5184000            /* autopush caps TTL at 60 days (silently) */
#define TOPIC_MAX 32
#define VAPID_CACHE 8
#define MORE_INFO "http://autopush.readthedocs.io/en/latest/http.html#error-codes"
#define LIT(b, s) cr_buf_append((b), (s), sizeof(s) - 1)

typedef struct st_fk_sub_t {
    char id[48];
    EVP_PKEY *key;          /* the "browser's" ECDH key pair */
    uint8_t pub[65];        /* p256dh */
    uint8_t auth[16];
    uint8_t server_key[65]; /* the applicationServerKey it was made with, when restricted */
    int restricted;
    int gone;               /* unsubscribed: 410 from now on */
} fk_sub_t;

static struct {
    fk_sub_t **subs;
    size_t n, cap;
    struct {
        char *header;       /* the whole Authorization value that verified */
        size_t len;
        double exp;
        uint8_t k[65];
        char *jwt_json;
        size_t jwt_json_len;
    } vapid[VAPID_CACHE];
    size_t nvapid;
    fk_jwt_t jwt;
    int jwt_init;
    cr_buf_t plain;
} wp;

void fk_webpush_dispose(void)
{
    for (size_t i = 0; i < wp.n; ++i) {
        EVP_PKEY_free(wp.subs[i]->key);
        OPENSSL_cleanse(wp.subs[i]->auth, sizeof(wp.subs[i]->auth));
        free(wp.subs[i]);
    }
    free(wp.subs);
    for (size_t i = 0; i < wp.nvapid; ++i) {
        free(wp.vapid[i].header);
        free(wp.vapid[i].jwt_json);
    }
    if (wp.jwt_init)
        fk_jwt_free(&wp.jwt);
    cr_buf_free(&wp.plain);
    memset(&wp, 0, sizeof(wp));
}

/* autopush's error document: {"code","errno","error","message","more_info"}. errno < 0 writes null. */
static void wp_error(fk_req_t *r, int status, int errnum, const char *message)
{
    cr_buf_t b;
    const char *phrase = status == 400   ? "Bad Request"
                         : status == 401 ? "Unauthorized"
                         : status == 403 ? "Forbidden"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 410 ? "Gone"
                         : status == 413 ? "Payload Too Large"
                         : status == 415 ? "Unsupported Media Type"
                         : status == 429 ? "Too Many Requests"
                         : status == 503 ? "Service Unavailable"
                                         : "Internal Server Error";
    char reason[160];
    cr_buf_init(&b, 4096);
    cr_buf_appendf(&b, "{\"code\":%d,\"errno\":", status);
    if (errnum >= 0)
        cr_buf_appendf(&b, "%d", errnum);
    else
        LIT(&b, "null");
    LIT(&b, ",\"error\":");
    fk_json_str(&b, phrase, strlen(phrase));
    LIT(&b, ",\"message\":");
    fk_json_str(&b, message, strlen(message));
    LIT(&b, ",\"more_info\":\"" MORE_INFO "\"}");
    if (status == 410)
        fk_add_header(r, "cache-control", H2O_STRLIT("max-age=86400"));
    snprintf(reason, sizeof(reason), "%s", message);
    fk_respond(r, status, reason, "application/json", b.base, b.len);
    cr_buf_free(&b);
}

static fk_sub_t *find_sub(const char *id, size_t len)
{
    size_t idx = 0, i = 0;
    while (i < len && i < 9 && id[i] >= '0' && id[i] <= '9')
        idx = idx * 10 + (size_t)(id[i++] - '0');
    if (i == 0 || i == len || id[i] != '_' || idx >= wp.n)
        return NULL;
    return strlen(wp.subs[idx]->id) == len && memcmp(wp.subs[idx]->id, id, len) == 0 ? wp.subs[idx] : NULL;
}

static int b64url_to(uint8_t *out, size_t outlen, const char *s, size_t n)
{
    cr_buf_t b;
    int ok;
    cr_buf_init(&b, 256);
    ok = cr_base64url_decode(&b, s, n) == 0 && b.len == outlen;
    if (ok)
        memcpy(out, b.base, outlen);
    cr_buf_free(&b);
    return ok ? 0 : -1;
}

void fk_webpush_subscribe(fk_req_t *r)
{
    h2o_req_t *req = r->req;
    fk_sub_t *s;
    cr_buf_t mp, out;
    cr_span_t ask;
    char p256dh[96], auth[32];
    cr_buf_init(&mp, 1 << 16);
    cr_buf_init(&out, 4096);
    if (wp.n == SUBS_MAX) {
        fk_respond(r, 503, NULL, "application/json", H2O_STRLIT("{\"error\":\"too many subscriptions\"}"));
        goto done;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        fk_respond(r, 500, NULL, "application/json", H2O_STRLIT("{\"error\":\"out of memory\"}"));
        goto done;
    }
    if (req->entity.len > 0) {
        uint8_t d[32];
        cr_span_t ua, au;
        int bad = fk_json_parse(&mp, req->entity.base, req->entity.len) != 0 ||
                  (fk_mp_str(mp.base, mp.len, "application_server_key", &ask) == 0 &&
                   (b64url_to(s->server_key, 65, ask.base, ask.len) != 0 || s->server_key[0] != 0x04));
        /* the browser's keys may be given, to replay a known message (RFC 8291's example) */
        if (!bad && fk_mp_str(mp.base, mp.len, "ua_private", &ua) == 0)
            bad = fk_mp_str(mp.base, mp.len, "auth", &au) != 0 || b64url_to(d, 32, ua.base, ua.len) != 0 ||
                  b64url_to(s->auth, 16, au.base, au.len) != 0 || (s->key = fk_p256_from_private(d)) == NULL;
        OPENSSL_cleanse(d, sizeof(d));
        if (bad) {
            EVP_PKEY_free(s->key);
            free(s);
            fk_respond(r, 400, NULL, "application/json",
                       H2O_STRLIT("{\"error\":\"the body is {} with optional application_server_key (base64url P-256 "
                                  "point) and ua_private (32 bytes) with auth (16 bytes), base64url\"}"));
            goto done;
        }
        s->restricted = s->server_key[0] == 0x04;
    }
    if ((s->key == NULL && ((s->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
                            RAND_bytes(s->auth, sizeof(s->auth)) != 1)) ||
        fk_p256_to_raw(s->key, s->pub) != 0) {
        EVP_PKEY_free(s->key);
        free(s);
        fk_respond(r, 500, NULL, "application/json", H2O_STRLIT("{\"error\":\"key generation failed\"}"));
        goto done;
    }
    if (wp.n == wp.cap) {
        size_t cap = wp.cap == 0 ? 64 : wp.cap * 2;
        fk_sub_t **subs = realloc(wp.subs, cap * sizeof(*subs));
        if (subs == NULL) {
            EVP_PKEY_free(s->key);
            free(s);
            fk_respond(r, 500, NULL, "application/json", H2O_STRLIT("{\"error\":\"out of memory\"}"));
            goto done;
        }
        wp.subs = subs; /* the old pointer is invalid now */
        wp.cap = cap;
    }
    {
        char rnd[32];
        fk_random_b64url(rnd, 16);
        snprintf(s->id, sizeof(s->id), "%zu_%s", wp.n, rnd);
    }
    wp.subs[wp.n++] = s;
    cr_base64url_encode(p256dh, s->pub, sizeof(s->pub));
    cr_base64url_encode(auth, s->auth, sizeof(s->auth));
    cr_buf_appendf(&out, "{\"id\":\"%s\",\"endpoint\":\"%s/push/%s\",\"expirationTime\":null,\"keys\":{\"p256dh\":\"%s\",\"auth\":\"%s\"}}",
                   s->id, fk_conf.origin, s->id, p256dh, auth);
    fk_respond(r, 201, NULL, "application/json", out.base, out.len);
done:
    cr_buf_free(&mp);
    cr_buf_free(&out);
}

void fk_webpush_unsubscribe(fk_req_t *r)
{
    cr_buf_t mp;
    cr_span_t id;
    fk_sub_t *s = NULL;
    cr_buf_init(&mp, 1 << 16);
    if (r->req->entity.len > 0 && fk_json_parse(&mp, r->req->entity.base, r->req->entity.len) == 0 &&
        fk_mp_str(mp.base, mp.len, "id", &id) == 0)
        s = find_sub(id.base, id.len);
    if (s == NULL) {
        fk_respond(r, 404, NULL, "application/json", H2O_STRLIT("{\"error\":\"no such subscription (give {\\\"id\\\": ...})\"}"));
    } else {
        s->gone = 1;
        fk_respond(r, 200, NULL, "application/json", H2O_STRLIT("{\"unsubscribed\":true}"));
    }
    cr_buf_free(&mp);
}

static int eq_ci(cr_span_t s, const char *lit)
{
    return s.len == strlen(lit) && strncasecmp(s.base, lit, s.len) == 0;
}

/* Finds parameter name ("t", "k") of "vapid t=..., k=..." (RFC 8292 §3: auth-params, spaces around allowed). */
static int vapid_param(h2o_iovec_t v, const char *name, cr_span_t *out)
{
    const char *p = v.base, *end = v.base + v.len;
    size_t n = strlen(name);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *stop = comma != NULL ? comma : end, *eq, *a, *b;
        while (p < stop && *p == ' ')
            ++p;
        if ((eq = memchr(p, '=', (size_t)(stop - p))) != NULL) {
            const char *kend = eq;
            while (kend > p && kend[-1] == ' ')
                --kend;
            if ((size_t)(kend - p) == n && strncasecmp(p, name, n) == 0) {
                a = eq + 1;
                b = stop;
                while (a < b && *a == ' ')
                    ++a;
                while (b > a && b[-1] == ' ')
                    --b;
                if (b - a >= 2 && *a == '"' && b[-1] == '"')
                    ++a, --b;
                *out = (cr_span_t){a, (size_t)(b - a)};
                return 0;
            }
        }
        p = stop + 1;
    }
    return -1;
}

/* Checks the VAPID Authorization of a push to s. Returns 0, or the status to refuse with (401, 403) and why. */
static int check_vapid(fk_req_t *r, const fk_sub_t *s, const char **why)
{
    h2o_iovec_t auth, params;
    cr_span_t t, k, aud, sub;
    uint8_t kraw[65];
    EVP_PKEY *key = NULL;
    fk_jwt_t *jwt = &wp.jwt;
    double exp;
    size_t slot;
    if (fk_header(r, "authorization", &auth) == 0) {
        *why = "Missing VAPID token";
        return 401;
    }
    if (auth.len < 6 || strncasecmp(auth.base, "vapid ", 6) != 0) {
        *why = "Unknown auth scheme";
        return 401;
    }
    for (size_t i = 0; i < wp.nvapid; ++i)
        if (wp.vapid[i].len == auth.len && memcmp(wp.vapid[i].header, auth.base, auth.len) == 0) {
            fk_rec_json(r, "jwt", wp.vapid[i].jwt_json, wp.vapid[i].jwt_json_len);
            if (wp.vapid[i].exp <= (double)r->now_s) {
                *why = "Invalid VAPID expiry";
                return 403;
            }
            if (s->restricted && memcmp(wp.vapid[i].k, s->server_key, 65) != 0) {
                *why = "VAPID public key mismatch";
                return 403;
            }
            return 0;
        }
    params = h2o_iovec_init(auth.base + 6, auth.len - 6);
    if (vapid_param(params, "t", &t) != 0) {
        *why = "Missing VAPID token";
        return 401;
    }
    if (vapid_param(params, "k", &k) != 0) {
        *why = "Missing VAPID public key";
        return 401;
    }
    if (!wp.jwt_init) {
        fk_jwt_init(jwt);
        wp.jwt_init = 1;
    }
    if (b64url_to(kraw, sizeof(kraw), k.base, k.len) != 0 || (key = fk_p256_from_raw(kraw, sizeof(kraw))) == NULL) {
        *why = "Invalid VAPID public key";
        return 403;
    }
    if (fk_jwt_decode(jwt, t.base, t.len) != 0) {
        fk_rec_str(r, "jwt_error", jwt->error, strlen(jwt->error));
        *why = "Invalid Authentication";
        goto refuse;
    }
    fk_rec_json(r, "jwt", jwt->json.base, jwt->json.len);
    if (strcmp(jwt->alg, "ES256") != 0 || !fk_verify_es256(key, t.base, jwt->signed_len, jwt->sig, jwt->sig_len)) {
        *why = "Invalid Authentication";
        goto refuse;
    }
    if (fk_jwt_str(jwt, "aud", &aud) != 0 || !cr_span_eq(aud, fk_conf.origin, strlen(fk_conf.origin))) {
        *why = "Invalid VAPID audience";
        goto refuse;
    }
    if (fk_jwt_num(jwt, "exp", &exp) != 0 || exp <= (double)r->now_s) {
        *why = "Invalid VAPID expiry";
        goto refuse;
    }
    if (exp > (double)(r->now_s + VAPID_EXP_MAX_S)) {
        *why = "The VAPID token expiration is too long";
        goto refuse;
    }
    if (fk_jwt_str(jwt, "sub", &sub) != 0 ||
        !((sub.len > 7 && memcmp(sub.base, "mailto:", 7) == 0) || (sub.len > 6 && memcmp(sub.base, "https:", 6) == 0))) {
        *why = "Invalid VAPID subject: it must be a mailto: or https: URI";
        goto refuse;
    }
    if (s->restricted && memcmp(kraw, s->server_key, 65) != 0) {
        *why = "VAPID public key mismatch";
        goto refuse;
    }
    EVP_PKEY_free(key);
    /* remember it: a sender reuses one token for many messages */
    slot = wp.nvapid < VAPID_CACHE ? wp.nvapid++ : (size_t)(r->t_ns % VAPID_CACHE);
    free(wp.vapid[slot].header);
    free(wp.vapid[slot].jwt_json);
    wp.vapid[slot].header = malloc(auth.len);
    wp.vapid[slot].jwt_json = malloc(jwt->json.len);
    if (wp.vapid[slot].header == NULL || wp.vapid[slot].jwt_json == NULL) {
        free(wp.vapid[slot].header);
        free(wp.vapid[slot].jwt_json);
        wp.vapid[slot].header = wp.vapid[slot].jwt_json = NULL;
        wp.vapid[slot].len = 0;
        return 0;
    }
    memcpy(wp.vapid[slot].header, auth.base, auth.len);
    wp.vapid[slot].len = auth.len;
    memcpy(wp.vapid[slot].jwt_json, jwt->json.base, jwt->json.len);
    wp.vapid[slot].jwt_json_len = jwt->json.len;
    wp.vapid[slot].exp = exp;
    memcpy(wp.vapid[slot].k, kraw, 65);
    return 0;
refuse:
    EVP_PKEY_free(key);
    return 403;
}

void fk_webpush_handle(fk_req_t *r)
{
    static const char *const logged[] = {"ttl", "urgency", "topic", "content-encoding", "content-type", NULL};
    h2o_req_t *req = r->req;
    h2o_iovec_t id = h2o_iovec_init(r->path.base + 6, r->path.len - 6), v, body = req->entity;
    fk_sub_t *s;
    const char *why = NULL;
    long long ttl = 0;
    int status;
    char err[160];
    fk_script_t sc;

    fk_rec_headers(r, logged);
    fk_rec_str(r, "id", id.base, id.len);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        wp_error(r, 405, -1, "Method Not Allowed");
        return;
    }
    if ((s = find_sub(id.base, id.len)) == NULL) {
        wp_error(r, 404, 102, "Invalid token");
        return;
    }
    if (s->gone) {
        wp_error(r, 410, 106, "No such subscription");
        return;
    }
    if ((status = check_vapid(r, s, &why)) != 0) {
        wp_error(r, status, 109, why);
        return;
    }
    if (fk_header(r, "ttl", &v) == 0 || v.len == 0 || v.len > 18) {
        wp_error(r, 400, 111, "Missing TTL value");
        return;
    }
    {
        size_t i = v.base[0] == '-';
        for (; i < v.len && v.base[i] >= '0' && v.base[i] <= '9'; ++i)
            ttl = ttl * 10 + (v.base[i] - '0');
        if (i != v.len || v.len == (size_t)(v.base[0] == '-')) {
            wp_error(r, 400, 111, "Missing TTL value");
            return;
        }
        if (v.base[0] == '-') {
            wp_error(r, 400, 114, "TTL must be greater than 0");
            return;
        }
        if (ttl > TTL_MAX)
            ttl = TTL_MAX;
    }
    if (body.len > 0) {
        if (fk_header(r, "content-encoding", &v) == 0) {
            wp_error(r, 415, 110, "Missing Content-Encoding header");
            return;
        }
        if (!eq_ci((cr_span_t){v.base, v.len}, "aes128gcm")) {
            wp_error(r, 415, 110, "Unknown Content-Encoding header");
            return;
        }
    }
    if (fk_header(r, "urgency", &v) != 0) {
        cr_span_t u = {v.base, v.len};
        if (!cr_span_eq(u, H2O_STRLIT("very-low")) && !cr_span_eq(u, H2O_STRLIT("low")) &&
            !cr_span_eq(u, H2O_STRLIT("normal")) && !cr_span_eq(u, H2O_STRLIT("high"))) {
            wp_error(r, 400, -1, "Urgency must be very-low, low, normal or high");
            return;
        }
    }
    if (fk_header(r, "topic", &v) != 0) {
        int ok = v.len > 0 && v.len <= TOPIC_MAX;
        for (size_t i = 0; ok && i < v.len; ++i) {
            char c = v.base[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        }
        if (!ok) {
            wp_error(r, 400, 113, "Topic must be no greater than 32 characters of the URL and Filename safe Base64 alphabet");
            return;
        }
    }
    fk_rec_int(r, "body_len", (long long)body.len);
    if (body.len > BODY_MAX) {
        wp_error(r, 413, 104, "Data payload too large");
        return;
    }
    if (wp.plain.limit == 0)
        cr_buf_init(&wp.plain, BODY_MAX);
    wp.plain.len = 0;
    if (body.len > 0 && fk_webpush_decrypt(&wp.plain, (const uint8_t *)body.base, body.len, s->key, s->pub, s->auth, err,
                                           sizeof(err)) != 0) {
        fk_rec_str(r, "decrypt_error", err, strlen(err));
        wp_error(r, 400, 110, err);
        return;
    }
    fk_rec_bytes(r, "payload", wp.plain.base != NULL ? wp.plain.base : "", wp.plain.len);
    OPENSSL_cleanse(wp.plain.base, wp.plain.len);
    if (fk_script_take(FK_WEBPUSH, id.base, id.len, &sc) && sc.status != 201 && sc.status != 200) {
        char ra[24];
        if (sc.retry_after >= 0 || sc.status == 503 || sc.status == 429) {
            int n = snprintf(ra, sizeof(ra), "%ld", sc.retry_after >= 0 ? sc.retry_after : 120L);
            fk_add_header(r, "retry-after", ra, (size_t)n);
        }
        wp_error(r, sc.status,
                 sc.status == 410 ? 106 : sc.status == 404 ? 102 : sc.status == 413 ? 104 : sc.status >= 500 || sc.status == 429 ? 201 : -1,
                 sc.reason[0] != '\0' ? sc.reason : sc.status == 410 ? "No such subscription" : "scripted error");
        return;
    }
    {
        char loc[256], ttl_s[24], msg[32];
        int n;
        fk_random_b64url(msg, 18);
        n = snprintf(loc, sizeof(loc), "%s/m/%s", fk_conf.origin, msg);
        fk_add_header(r, "location", loc, (size_t)n);
        n = snprintf(ttl_s, sizeof(ttl_s), "%lld", ttl);
        fk_add_header(r, "ttl", ttl_s, (size_t)n);
        fk_respond(r, 201, "", NULL, "", 0);
    }
}
