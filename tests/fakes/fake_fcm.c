/* fake_fcm.c — Google's OAuth2 token endpoint for service accounts (POST /token, RFC 7523 JWT bearer grant, RS256)
 * and FCM HTTP v1 (POST /v1/projects/<project>/messages:send), answering with Google's error shapes and FCM's
 * error codes. */
#include "fake.h"
#include "fake_crypto.h"
#include "fake_jwt.h"
#include "corral/codec.h"
#include "corral/error.h"
#include <msgpack.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCOUNT_MAX (64 << 10)
#define TOKENS_MAX 1024       /* access tokens remembered; the oldest is forgotten first */
#define ASSERTION_LIFETIME_MAX 3600
#define CLOCK_SKEW_S 300
#define DATA_MAX 4096         /* FCM: payload data (keys and values) of a message to a token */
#define DATA_MAX_TOPIC 2048   /* ... and to a topic */
#define FCM_TOKEN_MAX 4096
#define SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define GRANT_TYPE "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define LIT(b, s) cr_buf_append((b), (s), sizeof(s) - 1)
#define AUTH_HELP "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."

static struct {
    struct {
        char token[64];
        int64_t expires_ns; /* CLOCK_MONOTONIC */
    } tokens[TOKENS_MAX];
    size_t next, count;
    uint64_t messages;
    fk_jwt_t jwt;
    int jwt_init;
} fcm;

void fk_fcm_reset(void)
{
    /* access tokens stay valid across /_fake/reset, as Google's would */
    if (fcm.jwt_init)
        fk_jwt_free(&fcm.jwt);
    fcm.jwt_init = 0;
}

static int span_copy(char *out, size_t outlen, cr_span_t s)
{
    if (s.len >= outlen || memchr(s.base, '\0', s.len) != NULL)
        return -1;
    memcpy(out, s.base, s.len);
    out[s.len] = '\0';
    return 0;
}

int fk_fcm_load_account(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *text = NULL;
    size_t n;
    cr_buf_t mp;
    cr_span_t key, v;
    int rc = -1;
    cr_buf_init(&mp, 4 * ACCOUNT_MAX);
    if (fp == NULL) {
        fprintf(stderr, "corral-fake-push: cannot open --fcm-account %s\n", path);
        goto done;
    }
    if ((text = malloc(ACCOUNT_MAX)) == NULL)
        goto done;
    n = fread(text, 1, ACCOUNT_MAX, fp);
    if (n == 0 || n == ACCOUNT_MAX || fk_json_parse(&mp, text, n) != 0) {
        fprintf(stderr, "corral-fake-push: --fcm-account %s is not a JSON service-account file\n", path);
        goto done;
    }
    if (fk_mp_str(mp.base, mp.len, "private_key", &key) != 0 ||
        fk_mp_str(mp.base, mp.len, "client_email", &v) != 0 || span_copy(fk_conf.fcm_client_email, sizeof(fk_conf.fcm_client_email), v) != 0 ||
        fk_mp_str(mp.base, mp.len, "token_uri", &v) != 0 || span_copy(fk_conf.fcm_token_uri, sizeof(fk_conf.fcm_token_uri), v) != 0) {
        fprintf(stderr, "corral-fake-push: --fcm-account %s needs private_key, client_email and token_uri\n", path);
        goto done;
    }
    if (fk_mp_str(mp.base, mp.len, "private_key_id", &v) == 0)
        span_copy(fk_conf.fcm_key_id, sizeof(fk_conf.fcm_key_id), v);
    if (fk_conf.fcm_project[0] == '\0' && fk_mp_str(mp.base, mp.len, "project_id", &v) == 0)
        span_copy(fk_conf.fcm_project, sizeof(fk_conf.fcm_project), v);
    if (fk_conf.fcm_project[0] == '\0') {
        fprintf(stderr, "corral-fake-push: --fcm-account has no project_id: give --fcm-project\n");
        goto done;
    }
    if ((fk_conf.fcm_key = fk_load_public_pem(key.base, key.len)) == NULL ||
        EVP_PKEY_get_base_id(fk_conf.fcm_key) != EVP_PKEY_RSA) {
        fprintf(stderr, "corral-fake-push: --fcm-account's private_key is not an RSA PEM key\n");
        goto done;
    }
    rc = 0;
done:
    if (mp.base != NULL)
        OPENSSL_cleanse(mp.base, mp.len);
    if (text != NULL) {
        OPENSSL_cleanse(text, ACCOUNT_MAX);
        free(text);
    }
    if (fp != NULL)
        fclose(fp);
    cr_buf_free(&mp);
    return rc;
}

/* ---- POST /token --------------------------------------------------------------------------------------------- */

static void oauth_error(fk_req_t *r, int status, const char *error, const char *description)
{
    cr_buf_t b;
    cr_buf_init(&b, 4096);
    LIT(&b, "{\"error\":");
    fk_json_str(&b, error, strlen(error));
    LIT(&b, ",\"error_description\":");
    fk_json_str(&b, description, strlen(description));
    LIT(&b, "}");
    fk_respond(r, status, error, "application/json; charset=utf-8", b.base, b.len);
    cr_buf_free(&b);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The form field `name` of an x-www-form-urlencoded body, decoded into out. Returns its length or -1 when absent
 * (or too long, or badly escaped). */
static long form_get(h2o_iovec_t body, const char *name, char *out, size_t outlen)
{
    const char *p = body.base, *end = body.base + body.len;
    size_t nlen = strlen(name);
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            size_t o = 0;
            for (const char *s = eq + 1; s < stop; ++s) {
                int c = (unsigned char)*s;
                if (c == '+')
                    c = ' ';
                else if (c == '%') {
                    if (stop - s < 3 || hexval(s[1]) < 0 || hexval(s[2]) < 0)
                        return -1;
                    c = hexval(s[1]) * 16 + hexval(s[2]);
                    s += 2;
                }
                if (o + 1 >= outlen)
                    return -1;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return (long)o;
        }
        p = stop + 1;
    }
    return -1;
}

static int has_scope(cr_span_t scopes, const char *want)
{
    size_t n = strlen(want);
    const char *p = scopes.base, *end = scopes.base + scopes.len;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p)), *stop = sp != NULL ? sp : end;
        if ((size_t)(stop - p) == n && memcmp(p, want, n) == 0)
            return 1;
        p = stop + 1;
    }
    return 0;
}

void fk_oauth_handle(fk_req_t *r)
{
    static const char *const logged[] = {"content-type", NULL};
    h2o_req_t *req = r->req;
    char grant[128], assertion[FK_JWT_MAX + 1], desc[1024];
    long alen;
    fk_jwt_t *jwt = &fcm.jwt;
    cr_span_t iss, aud, scope;
    double iat, exp;
    fk_script_t sc;

    fk_rec_headers(r, logged);
    if (fk_conf.fcm_key == NULL) {
        oauth_error(r, 404, "not_found", "this fake was started without --fcm-account");
        return;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        oauth_error(r, 405, "invalid_request", "Only POST is supported");
        return;
    }
    if (form_get(req->entity, "grant_type", grant, sizeof(grant)) < 0 || strcmp(grant, GRANT_TYPE) != 0) {
        snprintf(desc, sizeof(desc), "Invalid grant_type: %s", form_get(req->entity, "grant_type", grant, sizeof(grant)) < 0 ? "" : grant);
        oauth_error(r, 400, "unsupported_grant_type", desc);
        return;
    }
    if ((alen = form_get(req->entity, "assertion", assertion, sizeof(assertion))) <= 0) {
        oauth_error(r, 400, "invalid_request", "Missing required parameter: assertion");
        return;
    }
    if (!fcm.jwt_init) {
        fk_jwt_init(jwt);
        fcm.jwt_init = 1;
    }
    if (fk_jwt_decode(jwt, assertion, (size_t)alen) != 0) {
        fk_rec_str(r, "jwt_error", jwt->error, strlen(jwt->error));
        snprintf(desc, sizeof(desc), "Invalid JWT: %s", jwt->error);
        oauth_error(r, 400, "invalid_grant", desc);
        return;
    }
    fk_rec_json(r, "jwt", jwt->json.base, jwt->json.len);
    if (fk_jwt_str(jwt, "iss", &iss) != 0 || !cr_span_eq(iss, fk_conf.fcm_client_email, strlen(fk_conf.fcm_client_email))) {
        oauth_error(r, 400, "invalid_grant", "Invalid grant: account not found");
        return;
    }
    fk_rec_str(r, "id", iss.base, iss.len);
    if (strcmp(jwt->alg, "RS256") != 0 || (jwt->kid[0] != '\0' && strcmp(jwt->kid, fk_conf.fcm_key_id) != 0) ||
        !fk_verify_rs256(fk_conf.fcm_key, assertion, jwt->signed_len, jwt->sig, jwt->sig_len)) {
        oauth_error(r, 400, "invalid_grant", "Invalid JWT Signature.");
        return;
    }
    if (fk_jwt_str(jwt, "aud", &aud) != 0 || !cr_span_eq(aud, fk_conf.fcm_token_uri, strlen(fk_conf.fcm_token_uri))) {
        snprintf(desc, sizeof(desc), "Invalid JWT: Failed audience check. The right audience is %s", fk_conf.fcm_token_uri);
        oauth_error(r, 400, "invalid_grant", desc);
        return;
    }
    if (fk_jwt_num(jwt, "iat", &iat) != 0 || fk_jwt_num(jwt, "exp", &exp) != 0 || exp - iat > ASSERTION_LIFETIME_MAX ||
        exp < iat || exp <= (double)r->now_s || iat > (double)(r->now_s + CLOCK_SKEW_S)) {
        oauth_error(r, 400, "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat "
                    "and exp values in the JWT claim.");
        return;
    }
    if (fk_jwt_str(jwt, "scope", &scope) != 0 || !has_scope(scope, SCOPE)) {
        oauth_error(r, 400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.");
        return;
    }
    if (fk_script_take(FK_OAUTH, iss.base, iss.len, &sc) && sc.status != 200) {
        if (sc.retry_after >= 0) {
            char ra[24];
            int n = snprintf(ra, sizeof(ra), "%ld", sc.retry_after);
            fk_add_header(r, "retry-after", ra, (size_t)n);
        }
        oauth_error(r, sc.status, sc.reason[0] != '\0' ? sc.reason : sc.status >= 500 ? "internal_failure" : "invalid_grant",
                    "scripted answer");
        return;
    }
    {
        char body[256];
        size_t slot = fcm.next;
        int n;
        memcpy(fcm.tokens[slot].token, "ya29.c.", 7);
        fk_random_b64url(fcm.tokens[slot].token + 7, 32);
        fcm.tokens[slot].expires_ns = r->t_ns + fk_conf.fcm_token_ttl_s * 1000000000LL;
        fcm.next = (fcm.next + 1) % TOKENS_MAX;
        if (fcm.count < TOKENS_MAX)
            ++fcm.count;
        n = snprintf(body, sizeof(body), "{\"access_token\":\"%s\",\"expires_in\":%lld,\"token_type\":\"Bearer\"}",
                     fcm.tokens[slot].token, (long long)fk_conf.fcm_token_ttl_s);
        fk_respond(r, 200, "", "application/json; charset=utf-8", body, (size_t)n);
    }
}

/* ---- POST /v1/projects/<project>/messages:send ---------------------------------------------------------------- */

static const struct {
    const char *code;
    int http;
    const char *message;
} fcm_codes[] = {
    {"UNREGISTERED", 404, "Requested entity was not found."},
    {"INVALID_ARGUMENT", 400, "Request contains an invalid argument."},
    {"SENDER_ID_MISMATCH", 403, "SenderId mismatch"},
    {"QUOTA_EXCEEDED", 429, "Quota exceeded."},
    {"UNAVAILABLE", 503, "The service is currently unavailable."},
    {"INTERNAL", 500, "Internal error encountered."},
    {"THIRD_PARTY_AUTH_ERROR", 401, "Auth error from APNS or Web Push Service"},
    {"UNSPECIFIED_ERROR", 500, "Internal error encountered."},
};

/* google.rpc.Code's name for an HTTP status. */
static const char *rpc_status(int http)
{
    switch (http) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 501: return "UNIMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return http >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
    }
}

/* Google's error document: {"error":{"code","message","status","details":[...]}}; details carry an FcmError when
 * fcm_code is not NULL, a BadRequest field violation when field is not NULL. */
static void google_error(fk_req_t *r, int http, const char *message, const char *fcm_code, const char *field)
{
    cr_buf_t b;
    cr_buf_init(&b, 16384);
    cr_buf_appendf(&b, "{\"error\":{\"code\":%d,\"message\":", http);
    fk_json_str(&b, message, strlen(message));
    cr_buf_appendf(&b, ",\"status\":\"%s\"", rpc_status(http));
    if (fcm_code != NULL) {
        LIT(&b, ",\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":");
        fk_json_str(&b, fcm_code, strlen(fcm_code));
        LIT(&b, "}]");
    } else if (field != NULL) {
        LIT(&b, ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":");
        fk_json_str(&b, field, strlen(field));
        LIT(&b, ",\"description\":");
        fk_json_str(&b, message, strlen(message));
        LIT(&b, "}]}]");
    }
    LIT(&b, "}}");
    if (http == 401)
        fk_add_header(r, "www-authenticate", H2O_STRLIT("Bearer realm=\"https://accounts.google.com/\""));
    fk_respond(r, http, fcm_code != NULL ? fcm_code : rpc_status(http), "application/json; charset=UTF-8", b.base, b.len);
    cr_buf_free(&b);
}

static int token_valid(const char *tok, size_t len, int64_t now_ns)
{
    for (size_t k = 0; k < fcm.count; ++k) {
        size_t i = (fcm.next + TOKENS_MAX - 1 - k) % TOKENS_MAX; /* newest first */
        if (strlen(fcm.tokens[i].token) == len && memcmp(fcm.tokens[i].token, tok, len) == 0)
            return now_ns < fcm.tokens[i].expires_ns;
    }
    return 0;
}

static int key_in(cr_span_t key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i] != NULL; ++i)
        if (cr_span_eq(key, allowed[i], strlen(allowed[i])))
            return 1;
    return 0;
}

/* Checks that every key of the map at v is allowed; else answers "Unknown name" and returns -1. */
static int check_fields(fk_req_t *r, cr_span_t v, const char *const *allowed, const char *where)
{
    const char *p = v.base, *end = v.base + v.len;
    cr_mp_item_t it;
    size_t h = cr_mp_read(p, end, &it);
    char msg[512];
    p += h;
    for (uint32_t i = 0; i < it.count; ++i) {
        cr_mp_item_t k;
        cr_mp_read(p, end, &k);
        if (!key_in(k.bytes, allowed)) {
            if (where[0] != '\0')
                snprintf(msg, sizeof(msg), "Invalid JSON payload received. Unknown name \"%.*s\" at '%s': Cannot find field.",
                         (int)(k.bytes.len < 100 ? k.bytes.len : 100), k.bytes.base, where);
            else
                snprintf(msg, sizeof(msg), "Invalid JSON payload received. Unknown name \"%.*s\": Cannot find field.",
                         (int)(k.bytes.len < 100 ? k.bytes.len : 100), k.bytes.base);
            google_error(r, 400, msg, NULL, where[0] != '\0' ? where : "");
            return -1;
        }
        p = cr_mp_skip(p, end);
        p = cr_mp_skip(p, end);
    }
    return 0;
}

static int is_map(cr_span_t v, cr_mp_item_t *it)
{
    return cr_mp_read(v.base, v.base + v.len, it) != 0 && it->type == MSGPACK_OBJECT_MAP;
}

/* Checks a data map (string to string) at `where`, adding its keys' and values' bytes to *size. Returns 0 or answers
 * and returns -1. */
static int check_data(fk_req_t *r, cr_span_t v, const char *where, size_t *size)
{
    const char *p = v.base, *end = v.base + v.len;
    cr_mp_item_t it;
    char msg[512], field[128];
    if (!is_map(v, &it)) {
        snprintf(msg, sizeof(msg), "Invalid value at '%s' (type.googleapis.com/google.protobuf.Map), not an object", where);
        google_error(r, 400, msg, NULL, where);
        return -1;
    }
    p += cr_mp_read(p, end, &it);
    for (uint32_t i = 0; i < it.count; ++i) {
        cr_mp_item_t k, val;
        cr_mp_read(p, end, &k);
        p = cr_mp_skip(p, end);
        cr_mp_read(p, end, &val);
        if (val.type != MSGPACK_OBJECT_STR) {
            snprintf(field, sizeof(field), "%s[%u].value", where, i);
            snprintf(msg, sizeof(msg), "Invalid value at '%s' (TYPE_STRING), not a string", field);
            google_error(r, 400, msg, NULL, field);
            return -1;
        }
        if (cr_span_eq(k.bytes, H2O_STRLIT("from")) || cr_span_eq(k.bytes, H2O_STRLIT("message_type")) ||
            (k.bytes.len >= 6 && memcmp(k.bytes.base, "google", 6) == 0) ||
            (k.bytes.len >= 3 && memcmp(k.bytes.base, "gcm", 3) == 0)) {
            snprintf(msg, sizeof(msg), "Invalid data payload key: %.*s", (int)(k.bytes.len < 100 ? k.bytes.len : 100),
                     k.bytes.base);
            google_error(r, 400, msg, "INVALID_ARGUMENT", NULL);
            return -1;
        }
        *size += k.bytes.len + val.bytes.len;
        p = cr_mp_skip(p, end);
    }
    return 0;
}

/* "3.5s": a protobuf Duration in JSON. */
static int is_duration(cr_span_t s)
{
    size_t i = 0, digits = 0, frac = 0;
    while (i < s.len && s.base[i] >= '0' && s.base[i] <= '9')
        ++i, ++digits;
    if (i < s.len && s.base[i] == '.') {
        ++i;
        while (i < s.len && s.base[i] >= '0' && s.base[i] <= '9')
            ++i, ++frac;
        if (frac == 0 || frac > 9)
            return 0;
    }
    return digits > 0 && digits <= 12 && i + 1 == s.len && s.base[i] == 's';
}

static int valid_fcm_token(cr_span_t t)
{
    if (t.len == 0 || t.len > FCM_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < t.len; ++i) {
        char c = t.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == ':' ||
              c == '.'))
            return 0;
    }
    return 1;
}

void fk_fcm_handle(fk_req_t *r)
{
    static const char *const logged[] = {"content-type", NULL};
    static const char *const top_fields[] = {"message", "validate_only", "validateOnly", NULL};
    static const char *const message_fields[] = {"name", "data", "notification", "android", "webpush", "apns",
                                                 "fcm_options", "fcmOptions", "token", "topic", "condition", NULL};
    static const char *const android_fields[] = {"collapse_key", "collapseKey", "priority", "ttl", "restricted_package_name",
                                                 "restrictedPackageName", "data", "notification", "fcm_options", "fcmOptions",
                                                 "direct_boot_ok", "directBootOk", "bandwidth_constrained_ok",
                                                 "restricted_satellite_ok", NULL};
    h2o_req_t *req = r->req;
    h2o_iovec_t auth, project;
    const char *suffix = "/messages:send";
    size_t slen = strlen(suffix), plen = strlen("/v1/projects/"), data_size = 0;
    cr_buf_t mp;
    cr_span_t msg, v, token = {NULL, 0}, topic = {NULL, 0}, cond = {NULL, 0}, android;
    cr_mp_item_t it;
    char text[512];
    int recipients = 0, validate_only = 0;
    fk_script_t sc;

    fk_rec_headers(r, logged);
    cr_buf_init(&mp, 1 << 22);
    if (fk_conf.fcm_key == NULL || r->path.len <= plen + slen || memcmp(r->path.base + r->path.len - slen, suffix, slen) != 0 ||
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        google_error(r, 404, "Requested entity was not found.", NULL, NULL);
        goto done;
    }
    project = h2o_iovec_init(r->path.base + plen, r->path.len - plen - slen);
    /* authentication comes first */
    if (fk_header(r, "authorization", &auth) == 0 || auth.len <= 7 || strncasecmp(auth.base, "bearer ", 7) != 0) {
        google_error(r, 401, "Request is missing required authentication credential. " AUTH_HELP, NULL, NULL);
        goto done;
    }
    if (!token_valid(auth.base + 7, auth.len - 7, r->t_ns)) {
        google_error(r, 401, "Request had invalid authentication credentials. " AUTH_HELP, NULL, NULL);
        goto done;
    }
    if (project.len != strlen(fk_conf.fcm_project) || memcmp(project.base, fk_conf.fcm_project, project.len) != 0) {
        snprintf(text, sizeof(text),
                 "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/"
                 "projects/%.*s' (or it may not exist).",
                 (int)(project.len < 128 ? project.len : 128), project.base);
        google_error(r, 403, text, NULL, NULL);
        goto done;
    }
    if (req->entity.len > 0)
        fk_rec_bytes(r, "payload", req->entity.base, req->entity.len);
    if (fk_json_parse(&mp, req->entity.base != NULL ? req->entity.base : "", req->entity.len) != 0) {
        snprintf(text, sizeof(text), "Invalid JSON payload received. %s", cr_error_last()->message);
        google_error(r, 400, text, NULL, "");
        goto done;
    }
    if (!is_map((cr_span_t){mp.base, mp.len}, &it)) {
        google_error(r, 400, "Invalid JSON payload received. Expected an object.", NULL, "");
        goto done;
    }
    if (check_fields(r, (cr_span_t){mp.base, mp.len}, top_fields, "") != 0)
        goto done;
    if ((cr_mp_map_get(mp.base, mp.len, "validate_only", &v) == 0 || cr_mp_map_get(mp.base, mp.len, "validateOnly", &v) == 0) &&
        cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_BOOLEAN)
        validate_only = it.u != 0;
    if (cr_mp_map_get(mp.base, mp.len, "message", &msg) != 0 || !is_map(msg, &it)) {
        google_error(r, 400, "Request contains an invalid argument.", "INVALID_ARGUMENT", NULL);
        goto done;
    }
    if (check_fields(r, msg, message_fields, "message") != 0)
        goto done;
    if (fk_mp_str(msg.base, msg.len, "token", &token) == 0)
        ++recipients;
    if (fk_mp_str(msg.base, msg.len, "topic", &topic) == 0)
        ++recipients;
    if (fk_mp_str(msg.base, msg.len, "condition", &cond) == 0)
        ++recipients;
    if (recipients != 1) {
        google_error(r, 400, recipients == 0 ? "Recipient of the message is not set." : "Exactly one of token, topic or condition must be set.",
                     "INVALID_ARGUMENT", NULL);
        goto done;
    }
    if (token.base != NULL) {
        fk_rec_str(r, "id", token.base, token.len);
        if (!valid_fcm_token(token)) {
            google_error(r, 400, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT", NULL);
            goto done;
        }
    } else if (topic.base != NULL) {
        fk_rec_str(r, "id", topic.base, topic.len);
    }
    if (cr_mp_map_get(msg.base, msg.len, "data", &v) == 0 && check_data(r, v, "message.data", &data_size) != 0)
        goto done;
    if (cr_mp_map_get(msg.base, msg.len, "notification", &v) == 0) {
        static const char *const notif_fields[] = {"title", "body", "image", NULL};
        cr_span_t s;
        if (!is_map(v, &it)) {
            google_error(r, 400, "Invalid value at 'message.notification', not an object", NULL, "message.notification");
            goto done;
        }
        if (check_fields(r, v, notif_fields, "message.notification") != 0)
            goto done;
        for (size_t i = 0; notif_fields[i] != NULL; ++i)
            if (fk_mp_str(v.base, v.len, notif_fields[i], &s) == 0)
                data_size += s.len;
    }
    if (cr_mp_map_get(msg.base, msg.len, "android", &android) == 0) {
        cr_span_t s;
        int rc;
        if (!is_map(android, &it)) {
            google_error(r, 400, "Invalid value at 'message.android', not an object", NULL, "message.android");
            goto done;
        }
        if (check_fields(r, android, android_fields, "message.android") != 0)
            goto done;
        if ((rc = fk_mp_str(android.base, android.len, "priority", &s)) == 0) {
            fk_rec_str(r, "priority", s.base, s.len);
            if (!cr_span_eq(s, H2O_STRLIT("high")) && !cr_span_eq(s, H2O_STRLIT("normal")) &&
                !cr_span_eq(s, H2O_STRLIT("HIGH")) && !cr_span_eq(s, H2O_STRLIT("NORMAL")))
                rc = -2;
        }
        if (rc == -2) {
            google_error(r, 400,
                         "Invalid value at 'message.android.priority' "
                         "(type.googleapis.com/google.firebase.fcm.v1.AndroidMessagePriority)",
                         NULL, "message.android.priority");
            goto done;
        }
        if ((rc = fk_mp_str(android.base, android.len, "collapse_key", &s)) == 0 ||
            (rc = fk_mp_str(android.base, android.len, "collapseKey", &s)) == 0)
            fk_rec_str(r, "collapse_key", s.base, s.len);
        else if (rc == -2) {
            google_error(r, 400, "Invalid value at 'message.android.collapse_key' (TYPE_STRING)", NULL,
                         "message.android.collapse_key");
            goto done;
        }
        if ((rc = fk_mp_str(android.base, android.len, "ttl", &s)) == 0 ? !is_duration(s) : rc == -2) {
            google_error(r, 400, "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)", NULL,
                         "message.android.ttl");
            goto done;
        }
        if (rc == 0)
            fk_rec_str(r, "ttl", s.base, s.len);
        if (cr_mp_map_get(android.base, android.len, "data", &v) == 0 && check_data(r, v, "message.android.data", &data_size) != 0)
            goto done;
    }
    fk_rec_int(r, "data_size", (long long)data_size);
    if (data_size > (topic.base != NULL ? DATA_MAX_TOPIC : DATA_MAX)) {
        google_error(r, 400, "Message is too big", "INVALID_ARGUMENT", NULL);
        goto done;
    }
    if (!validate_only && fk_script_take(FK_FCM, token.base != NULL ? token.base : topic.base != NULL ? topic.base : "*",
                                         token.base != NULL ? token.len : topic.base != NULL ? topic.len : 1, &sc) &&
        sc.status != 200) {
        const char *code = sc.reason[0] != '\0' ? sc.reason : NULL, *message = "Internal error encountered.";
        size_t n = sizeof(fcm_codes) / sizeof(fcm_codes[0]);
        for (size_t i = 0; code == NULL && i < n; ++i)
            if (fcm_codes[i].http == sc.status)
                code = fcm_codes[i].code;
        if (code == NULL)
            code = "UNSPECIFIED_ERROR";
        for (size_t i = 0; i < n; ++i)
            if (strcmp(fcm_codes[i].code, code) == 0)
                message = fcm_codes[i].message;
        if (sc.retry_after >= 0) {
            char ra[24];
            int rn = snprintf(ra, sizeof(ra), "%ld", sc.retry_after);
            fk_add_header(r, "retry-after", ra, (size_t)rn);
        }
        google_error(r, sc.status, message, code, NULL);
        goto done;
    }
    {
        char body[512];
        int n;
        if (validate_only)
            n = snprintf(body, sizeof(body), "{\"name\":\"projects/%s/messages/fake_message_id\"}", fk_conf.fcm_project);
        else
            n = snprintf(body, sizeof(body), "{\"name\":\"projects/%s/messages/0:%lld%%%016llx\"}", fk_conf.fcm_project,
                         (long long)r->now_s * 1000, (unsigned long long)++fcm.messages);
        fk_respond(r, 200, "", "application/json; charset=UTF-8", body, (size_t)n);
    }
done:
    cr_buf_free(&mp);
}
