/* fake_push.c — corral-fake-push is faithful: APNs over HTTP/2 with a provider token signed here takes a good
 * notification and refuses each kind of bad one with Apple's status and reason (and refuses HTTP/1.1), FCM grants an
 * access token for a service-account assertion and sends with it, a Web Push message encrypted by an independent
 * encoder (webpush_encrypt.py) decrypts to its plaintext, and scripted errors come back as the real services' own. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "certs.h"
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "fake_push.h"
#include "h2_burst.h"
#include "harness.h"
#include "http_client.h"
#include "mp_text.h"
#include "proc.h"

static cr_test_fake_push_t fp;
static EVP_PKEY *apns_key;   /* the .p8 the fake trusts */
static EVP_PKEY *other_ec;   /* a P-256 key nobody trusts */
static EVP_PKEY *sa_key;     /* the service account's RSA key */
static EVP_PKEY *other_rsa;
static EVP_PKEY *vapid_key;  /* the application server's VAPID key */
static char vapid_k[96];     /* its public point, base64url */
static char provider_token[1024];
static const char device[] = "a4f7c1e2b3d4a5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0";
static char tmp[PATH_MAX];
static const char *trust;    /* the CA file requests trust: fp.ca, unless a test says otherwise */

/* ---- HTTP ------------------------------------------------------------------------------------------------------- */

/* A response with the headers the push services answer with. */
typedef struct {
    long status; /* 0: no response */
    long http;   /* 1 or 2 */
    cr_buf_t body;
    char apns_id[64], retry_after[32], location[256], ttl[32], www_authenticate[128];
    char error[CURL_ERROR_SIZE];
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    resp_t *r = data;
    return cr_buf_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

static void keep_header(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    if (len > n + 1 && strncasecmp(line, name, n) == 0 && line[n] == ':') {
        const char *v = line + n + 1, *end = line + len;
        while (v < end && *v == ' ')
            ++v;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            --end;
        snprintf(out, outlen, "%.*s", (int)(end - v), v);
    }
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    resp_t *r = data;
    keep_header(p, size * n, "apns-id", r->apns_id, sizeof(r->apns_id));
    keep_header(p, size * n, "retry-after", r->retry_after, sizeof(r->retry_after));
    keep_header(p, size * n, "location", r->location, sizeof(r->location));
    keep_header(p, size * n, "ttl", r->ttl, sizeof(r->ttl));
    keep_header(p, size * n, "www-authenticate", r->www_authenticate, sizeof(r->www_authenticate));
    return size * n;
}

static void resp_free(resp_t *r)
{
    cr_buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

/* Sends one request over TLS, trusting only `trust` (fp.ca unless set): HTTP/2 (by ALPN) when http2, else
 * HTTP/1.1. headers: NULL-terminated "Name: value" lines. Returns the status, 0 when no response came. */
static long send_req(resp_t *r, const char *method, const char *url, const char *const *headers, const void *body,
                     size_t len, int http2)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    CURLcode rc;
    resp_free(r);
    cr_buf_init(&r->body, 16 << 20);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; ++i)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_CAINFO, trust != NULL ? trust : fp.ca);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if ((rc = curl_easy_perform(c)) == CURLE_OK) {
        long v = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &v);
        r->http = v == CURL_HTTP_VERSION_2_0 ? 2 : 1;
    } else if (r->error[0] == '\0') {
        snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(rc));
    }
    cr_buf_append(&r->body, "", 1);
    --r->body.len;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r->status;
}

/* A value of the JSON body at a dotted path, as text ("" when absent). */
static const char *body_at(const resp_t *r, const char *path)
{
    static char out[1024];
    cr_buf_t mp;
    out[0] = '\0';
    cr_buf_init(&mp, 1 << 20);
    if (r->body.len > 0 && cr_json_to_msgpack(&mp, r->body.base, r->body.len, NULL) == 0)
        cr_test_mp_text(mp.base, mp.len, path, out, sizeof(out));
    cr_buf_free(&mp);
    return out;
}

/* ---- JWTs, signed here with OpenSSL ------------------------------------------------------------------------------ */

static void b64url(char *out, const void *p, size_t n)
{
    cr_base64url_encode(out, p, n);
}

/* header.claims.signature: ES256 (raw R||S) when key is EC, RS256 when RSA. Returns out. */
static char *sign_jwt(char *out, size_t outlen, EVP_PKEY *key, const char *header, const char *claims)
{
    char h[1024], c[2048], sig64[1024];
    unsigned char der[1024], raw[512];
    size_t derlen = sizeof(der), rawlen;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    b64url(h, header, strlen(header));
    b64url(c, claims, strlen(claims));
    snprintf(out, outlen, "%s.%s", h, c);
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, der, &derlen, (const unsigned char *)out, strlen(out)) != 1) {
        EVP_MD_CTX_free(md);
        out[0] = '\0';
        return out;
    }
    EVP_MD_CTX_free(md);
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(es, &r, &s);
        BN_bn2binpad(r, raw, 32);
        BN_bn2binpad(s, raw + 32, 32);
        ECDSA_SIG_free(es);
        rawlen = 64;
    } else {
        memcpy(raw, der, derlen);
        rawlen = derlen;
    }
    b64url(sig64, raw, rawlen);
    snprintf(out + strlen(out), outlen - strlen(out), ".%s", sig64);
    return out;
}

static char *apns_jwt(char *out, size_t outlen, EVP_PKEY *key, const char *alg, const char *kid, const char *iss, long long iat)
{
    char header[256], claims[256];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"iat\":%lld}", iss, iat);
    return sign_jwt(out, outlen, key, header, claims);
}

static EVP_PKEY *load_key_file(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f != NULL)
        fclose(f);
    return k;
}

static EVP_PKEY *load_sa_key(const char *path)
{
    size_t len;
    char *text = cr_test_read_file(path, &len);
    cr_buf_t mp;
    cr_span_t v;
    cr_mp_item_t it;
    EVP_PKEY *k = NULL;
    cr_buf_init(&mp, 1 << 20);
    if (text != NULL && cr_json_to_msgpack(&mp, text, len, NULL) == 0 && cr_mp_map_get(mp.base, mp.len, "private_key", &v) == 0 &&
        cr_mp_read(v.base, v.base + v.len, &it) != 0) {
        BIO *bio = BIO_new_mem_buf(it.bytes.base, (int)it.bytes.len);
        k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    cr_buf_free(&mp);
    free(text);
    return k;
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* ---- APNs -------------------------------------------------------------------------------------------------------- */

static const char OMIT[] = "(omit)";

/* One APNs request: each field NULL for the good default, OMIT to leave the header out. */
typedef struct {
    const char *method, *path, *auth, *topic, *push_type, *priority, *expiration, *collapse, *apns_id, *extra;
    const char *payload;
    size_t payload_len;
    int http1;
} apns_req_t;

static long apns(resp_t *r, const apns_req_t *q)
{
    char url[512], auth[1200], topic[256], type[64], prio[64], exp[64], col[256], id[128];
    const char *headers[10];
    size_t n = 0;
    const char *payload = q->payload != NULL ? q->payload : "{\"aps\":{\"alert\":{\"title\":\"Build needs approval\"}}}";
    size_t plen = q->payload != NULL ? q->payload_len : strlen(payload);
#define HDR(buf, name, field, def)                                                                                      \
    if ((field) != OMIT) {                                                                                              \
        snprintf(buf, sizeof(buf), "%s: %s", name, (field) != NULL ? (field) : (def));                                  \
        headers[n++] = buf;                                                                                             \
    }
    HDR(auth, "authorization", q->auth, provider_token)
    HDR(topic, "apns-topic", q->topic, fp.apns_topic)
    HDR(type, "apns-push-type", q->push_type, "alert")
    HDR(prio, "apns-priority", q->priority, "10")
    HDR(exp, "apns-expiration", q->expiration, "0")
    HDR(col, "apns-collapse-id", q->collapse, "01JSESSION")
    HDR(id, "apns-id", q->apns_id, "3B1F6A8E-2C4D-4E5F-9A0B-1C2D3E4F5A6B")
#undef HDR
    if (q->extra != NULL)
        headers[n++] = q->extra;
    headers[n] = NULL;
    snprintf(url, sizeof(url), "%s%s", fp.url, q->path != NULL ? q->path : "/3/device/");
    if (q->path == NULL)
        strcat(url, device);
    return send_req(r, q->method != NULL ? q->method : "POST", url, headers, payload, plen, !q->http1);
}

/* Sends q and checks the status and Apple's {"reason"}. */
static void apns_expect(const char *what, const apns_req_t *q, long status, const char *reason)
{
    resp_t r = {0};
    long got = apns(&r, q);
    okf(got == status && strcmp(body_at(&r, "reason"), reason) == 0, "%s: want %ld %s, got %ld %s (%s)", what, status,
        reason, got, r.body.base != NULL ? r.body.base : "", r.error);
    okf(r.apns_id[0] != '\0', "%s: every APNs answer carries apns-id", what);
    resp_free(&r);
}

static void test_tls_trust(void)
{
    resp_t r = {0};
    ok(send_req(&r, "GET", fp.url, NULL, NULL, 0, 1) == 404); /* a verified TLS connection with fp.ca: the CA file works */
    ok(r.http == 2);
    resp_free(&r);
}

static void test_apns_good(void)
{
    resp_t r = {0};
    apns_req_t q = {0};
    cr_test_fake_push_entry_t *e = NULL;
    size_t n = 0;
    char v[256];
    long long since = cr_test_fake_push_stat(&fp, "log.last");
    ok(apns(&r, &q) == 200);
    ok(r.http == 2);
    ok_str(r.apns_id, "3B1F6A8E-2C4D-4E5F-9A0B-1C2D3E4F5A6B"); /* echoed */
    ok(r.body.len == 0);                                      /* success: an empty body */
    resp_free(&r);
    /* without apns-id, APNs makes a UUID up */
    q.apns_id = OMIT;
    ok(apns(&r, &q) == 200);
    ok(strlen(r.apns_id) == 36 && r.apns_id[8] == '-' && r.apns_id[14] == '4');
    resp_free(&r);
    /* what the fake saw */
    if (!ok(cr_test_fake_push_entries(&fp, since, "apns", &e, &n) == 0 && n == 2))
        goto done;
    ok_str(e[0].provider, "apns");
    ok_str(e[0].id, device);
    ok(e[0].status == 200 && e[0].http == 2 && e[0].reason[0] == '\0');
    ok_str(e[0].payload, "{\"aps\":{\"alert\":{\"title\":\"Build needs approval\"}}}");
    ok_str(cr_test_fake_push_entry_text(&e[0], "headers.apns-topic", v, sizeof(v)), fp.apns_topic);
    ok_str(cr_test_fake_push_entry_text(&e[0], "headers.apns-push-type", v, sizeof(v)), "alert");
    ok_str(cr_test_fake_push_entry_text(&e[0], "headers.apns-collapse-id", v, sizeof(v)), "01JSESSION");
    ok_str(cr_test_fake_push_entry_text(&e[0], "jwt.header.kid", v, sizeof(v)), fp.apns_key_id);
    ok_str(cr_test_fake_push_entry_text(&e[0], "jwt.claims.iss", v, sizeof(v)), fp.apns_team_id);
    ok(e[1].n == e[0].n + 1 && e[1].t_ns >= e[0].t_ns && e[0].t_ns > 0);
done:
    cr_test_fake_push_entries_free(e, n);
}

static void test_apns_checks(void)
{
    char jwt[1200], bad[1300], big[5200], collapse65[80];
    apns_req_t q;
    memset(collapse65, 'c', 65);
    collapse65[65] = '\0';

    /* the device token comes first: even without a provider token */
    q = (apns_req_t){.path = "/3/device/not-hex-at-all", .auth = OMIT};
    apns_expect("token not hex", &q, 400, "BadDeviceToken");
    q = (apns_req_t){.path = "/3/device/abc"};
    apns_expect("odd number of hex digits", &q, 400, "BadDeviceToken");
    q = (apns_req_t){.path = "/3/device/"};
    apns_expect("no token", &q, 400, "MissingDeviceToken");
    q = (apns_req_t){.path = "/3/devices/abcd"};
    apns_expect("bad path", &q, 404, "BadPath");
    q = (apns_req_t){.method = "GET"};
    apns_expect("GET", &q, 405, "MethodNotAllowed");
    q = (apns_req_t){.extra = "apns-topic: com.example.corral"};
    apns_expect("a header twice", &q, 400, "DuplicateHeaders");

    /* the provider token */
    q = (apns_req_t){.auth = OMIT};
    apns_expect("no authorization", &q, 403, "MissingProviderToken");
    q = (apns_req_t){.auth = "basic dXNlcjpwYXNz"};
    apns_expect("not a bearer token", &q, 403, "MissingProviderToken");
    q = (apns_req_t){.auth = "bearer not.a.jwt"};
    apns_expect("garbage token", &q, 403, "InvalidProviderToken");
    snprintf(bad, sizeof(bad), "bearer %s", apns_jwt(jwt, sizeof(jwt), apns_key, "ES384", fp.apns_key_id, fp.apns_team_id, now_s()));
    q = (apns_req_t){.auth = bad};
    apns_expect("alg not ES256", &q, 403, "InvalidProviderToken");
    snprintf(bad, sizeof(bad), "bearer %s", apns_jwt(jwt, sizeof(jwt), apns_key, "ES256", "WRONGKEYID", fp.apns_team_id, now_s()));
    apns_expect("another kid", &q, 403, "InvalidProviderToken");
    snprintf(bad, sizeof(bad), "bearer %s", apns_jwt(jwt, sizeof(jwt), apns_key, "ES256", fp.apns_key_id, "OTHERTEAM1", now_s()));
    apns_expect("another team", &q, 403, "InvalidProviderToken");
    snprintf(bad, sizeof(bad), "bearer %s", apns_jwt(jwt, sizeof(jwt), other_ec, "ES256", fp.apns_key_id, fp.apns_team_id, now_s()));
    apns_expect("signed by another key", &q, 403, "InvalidProviderToken");
    snprintf(bad, sizeof(bad), "bearer %s", apns_jwt(jwt, sizeof(jwt), apns_key, "ES256", fp.apns_key_id, fp.apns_team_id, now_s()));
    bad[strlen(bad) - 3] ^= 0x01; /* one bit of the signature */
    apns_expect("signature altered", &q, 403, "InvalidProviderToken");
    snprintf(bad, sizeof(bad), "bearer %s",
             apns_jwt(jwt, sizeof(jwt), apns_key, "ES256", fp.apns_key_id, fp.apns_team_id, now_s() - 3700));
    apns_expect("issued over an hour ago", &q, 403, "ExpiredProviderToken");

    /* headers */
    q = (apns_req_t){.topic = OMIT};
    apns_expect("no topic", &q, 400, "MissingTopic");
    q = (apns_req_t){.topic = "com.example.other"};
    apns_expect("another app's topic", &q, 400, "TopicDisallowed");
    q = (apns_req_t){.push_type = "banner"};
    apns_expect("unknown push type", &q, 400, "InvalidPushType");
    q = (apns_req_t){.push_type = "voip"};
    apns_expect("voip to the app's own topic", &q, 400, "TopicDisallowed");
    q = (apns_req_t){.push_type = "voip", .topic = "com.example.corral.voip"};
    apns_expect("voip to <topic>.voip", &q, 200, "");
    q = (apns_req_t){.push_type = "background", .priority = "5"};
    apns_expect("background, priority 5", &q, 200, "");
    q = (apns_req_t){.apns_id = "not-a-uuid"};
    apns_expect("apns-id not a UUID", &q, 400, "BadMessageId");
    q = (apns_req_t){.priority = "7"};
    apns_expect("priority 7", &q, 400, "BadPriority");
    q = (apns_req_t){.priority = "1"};
    apns_expect("priority 1", &q, 200, "");
    q = (apns_req_t){.expiration = "tomorrow"};
    apns_expect("expiration not a number", &q, 400, "BadExpirationDate");
    q = (apns_req_t){.expiration = "1893456000"};
    apns_expect("expiration a date", &q, 200, "");
    q = (apns_req_t){.collapse = collapse65};
    apns_expect("collapse id of 65 bytes", &q, 400, "BadCollapseId");
    collapse65[64] = '\0';
    q = (apns_req_t){.collapse = collapse65};
    apns_expect("collapse id of 64 bytes", &q, 200, "");

    /* the payload */
    q = (apns_req_t){.payload = "", .payload_len = 0};
    apns_expect("empty payload", &q, 400, "PayloadEmpty");
    memset(big, ' ', sizeof(big));
    memcpy(big, "{\"aps\":{}}", 10);
    q = (apns_req_t){.payload = big, .payload_len = 4096};
    apns_expect("4096 bytes", &q, 200, "");
    q = (apns_req_t){.payload = big, .payload_len = 4097};
    apns_expect("4097 bytes", &q, 413, "PayloadTooLarge");
    q = (apns_req_t){.payload = big, .payload_len = 5120, .push_type = "voip", .topic = "com.example.corral.voip"};
    apns_expect("voip: 5120 bytes", &q, 200, "");
    q = (apns_req_t){.payload = "{\"alert\":\"no aps\"}", .payload_len = 18};
    apns_expect("no aps dictionary", &q, 400, "BadPayload");
    q = (apns_req_t){.payload = "{\"aps\":", .payload_len = 7};
    apns_expect("not JSON", &q, 400, "BadPayload");
}

static void test_apns_token_updates(void)
{
    char jwt[1200], auth[1300];
    apns_req_t q;
    /* a second, newer token for the same key within 20 minutes of the first */
    snprintf(auth, sizeof(auth), "bearer %s",
             apns_jwt(jwt, sizeof(jwt), apns_key, "ES256", fp.apns_key_id, fp.apns_team_id, now_s() - 1));
    q = (apns_req_t){.auth = auth};
    apns_expect("new token within 20 min", &q, 429, "TooManyProviderTokenUpdates");
    q = (apns_req_t){0};
    apns_expect("the current token still works", &q, 200, "");
    /* after a reset the fake has seen no token: the new one is taken, and the old one is now "new" again */
    ok(cr_test_fake_push_reset(&fp) == 0);
    ok(cr_test_fake_push_stat(&fp, "providers.apns.total") == 0);
    q = (apns_req_t){.auth = auth};
    apns_expect("new token after reset", &q, 200, "");
    q = (apns_req_t){0};
    apns_expect("the old token is an update now", &q, 429, "TooManyProviderTokenUpdates");
    ok(cr_test_fake_push_reset(&fp) == 0);
    apns_expect("the old token again after reset", &q, 200, "");
}

static void test_apns_http1(void)
{
    resp_t r = {0};
    apns_req_t q = {.http1 = 1};
    cr_test_fake_push_entry_t *e = NULL;
    size_t n = 0;
    long long since = cr_test_fake_push_stat(&fp, "log.last");
    okf(apns(&r, &q) == 0, "HTTP/1.1 to APNs gets no HTTP response (got %ld)", r.status);
    okf(r.error[0] != '\0', "curl says: %s", r.error);
    resp_free(&r);
    if (ok(cr_test_fake_push_entries(&fp, since, NULL, &e, &n) == 0 && n == 1)) {
        ok_str(e[0].provider, "apns");
        ok(e[0].status == 0 && e[0].http == 1);
        ok_str(e[0].reason, "Http2Required");
    }
    cr_test_fake_push_entries_free(e, n);
    /* the same connection type works for the other services: /_fake/health over HTTP/1.1 */
    ok(send_req(&r, "GET", fp.url, NULL, NULL, 0, 0) == 404 && r.http == 1);
    resp_free(&r);
}

static void test_apns_scripts(void)
{
    resp_t r = {0};
    apns_req_t q = {0};
    /* 503 with Retry-After once, then back to normal */
    ok(cr_test_fake_push_script(&fp, "apns", device, 503, "ServiceUnavailable", 1, 2, -1) == 0);
    ok(apns(&r, &q) == 503);
    ok_str(body_at(&r, "reason"), "ServiceUnavailable");
    ok_str(r.retry_after, "2");
    ok(apns(&r, &q) == 200);
    /* 410 Unregistered with the time the token went stale */
    ok(cr_test_fake_push_script(&fp, "apns", device, 410, "Unregistered", 1, -1, 1700000000123LL) == 0);
    ok(apns(&r, &q) == 410);
    ok_str(body_at(&r, "reason"), "Unregistered");
    ok_str(body_at(&r, "timestamp"), "1700000000123");
    /* a script for another token leaves this one alone; a bad request gets its own error, not the script's */
    ok(cr_test_fake_push_script(&fp, "apns", "ffff", 500, NULL, -1, -1, -1) == 0);
    ok(apns(&r, &q) == 200);
    q.path = "/3/device/ffff";
    q.priority = "3";
    ok(apns(&r, &q) == 400 && strcmp(body_at(&r, "reason"), "BadPriority") == 0);
    q.priority = NULL;
    ok(apns(&r, &q) == 500 && strcmp(body_at(&r, "reason"), "InternalServerError") == 0);
    ok(apns(&r, &q) == 500); /* forever */
    ok(cr_test_fake_push_stat(&fp, "scripts") == 1);
    ok(cr_test_fake_push_reset(&fp) == 0);
    ok(cr_test_fake_push_stat(&fp, "scripts") == 0);
    ok(apns(&r, &q) == 200);
    resp_free(&r);
}

/* ---- FCM --------------------------------------------------------------------------------------------------------- */

static char *assertion(char *out, size_t outlen, EVP_PKEY *key, const char *iss, const char *aud, const char *scope,
                       long long iat, long long exp)
{
    char claims[1024];
    snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"scope\":\"%s\",\"aud\":\"%s\",\"iat\":%lld,\"exp\":%lld}", iss, scope,
             aud, iat, exp);
    return sign_jwt(out, outlen, key, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims);
}

#define SCOPE "https://www.googleapis.com/auth/firebase.messaging"

static long grant(resp_t *r, cr_test_fake_push_t *f, const char *grant_type, const char *jwt)
{
    char url[256], body[4096];
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    snprintf(url, sizeof(url), "%s/token", f->url);
    snprintf(body, sizeof(body), "grant_type=%s&assertion=%s", grant_type, jwt);
    return send_req(r, "POST", url, h, body, strlen(body), 1);
}

#define JWT_BEARER "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"

static long fcm_send(resp_t *r, const char *url, const char *token, const char *json)
{
    char auth[256] = "X-No-Authorization: 1";
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    if (token != NULL)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    return send_req(r, "POST", url, h, json, strlen(json), 1);
}

static void test_fcm(void)
{
    resp_t r = {0};
    char jwt[4096], access[256], url[256], big[6000], v[128];
    long long t = now_s();
    cr_test_fake_push_entry_t *e = NULL;
    size_t n = 0;
    long long since;

    /* the token endpoint */
    assertion(jwt, sizeof(jwt), sa_key, fp.fcm_client_email, fp.fcm_token_uri, SCOPE, t, t + 3600);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 200);
    ok(strncmp(body_at(&r, "access_token"), "ya29.", 5) == 0);
    ok_str(body_at(&r, "expires_in"), "3599");
    ok_str(body_at(&r, "token_type"), "Bearer");
    snprintf(access, sizeof(access), "%s", body_at(&r, "access_token"));
    ok(grant(&r, &fp, "client_credentials", jwt) == 400 && strcmp(body_at(&r, "error"), "unsupported_grant_type") == 0);
    ok(grant(&r, &fp, JWT_BEARER, "") == 400 && strcmp(body_at(&r, "error"), "invalid_request") == 0);
    assertion(jwt, sizeof(jwt), other_rsa, fp.fcm_client_email, fp.fcm_token_uri, SCOPE, t, t + 3600);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 400 && strcmp(body_at(&r, "error"), "invalid_grant") == 0);
    ok_str(body_at(&r, "error_description"), "Invalid JWT Signature.");
    assertion(jwt, sizeof(jwt), sa_key, "someone@else.iam.gserviceaccount.com", fp.fcm_token_uri, SCOPE, t, t + 3600);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 400 && strcmp(body_at(&r, "error"), "invalid_grant") == 0);
    assertion(jwt, sizeof(jwt), sa_key, fp.fcm_client_email, "https://oauth2.googleapis.com/token", SCOPE, t, t + 3600);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 400 && strstr(body_at(&r, "error_description"), "audience") != NULL);
    assertion(jwt, sizeof(jwt), sa_key, fp.fcm_client_email, fp.fcm_token_uri, SCOPE, t, t + 7200);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 400 && strstr(body_at(&r, "error_description"), "short-lived") != NULL);
    assertion(jwt, sizeof(jwt), sa_key, fp.fcm_client_email, fp.fcm_token_uri, SCOPE, t - 7200, t - 3600);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 400 && strcmp(body_at(&r, "error"), "invalid_grant") == 0);
    assertion(jwt, sizeof(jwt), sa_key, fp.fcm_client_email, fp.fcm_token_uri, "https://www.googleapis.com/auth/cloud-platform",
              t, t + 3600);
    ok(grant(&r, &fp, JWT_BEARER, jwt) == 400 && strcmp(body_at(&r, "error"), "invalid_scope") == 0);

    /* messages:send */
    since = cr_test_fake_push_stat(&fp, "log.last");
    ok(fcm_send(&r, fp.fcm_url, access,
                "{\"message\":{\"token\":\"fcm-token:APA91b_x\",\"data\":{\"sid\":\"01J\",\"k\":\"approval\"},"
                "\"android\":{\"priority\":\"high\",\"collapse_key\":\"01JSESSION\"}}}") == 200);
    snprintf(url, sizeof(url), "projects/%s/messages/", fp.fcm_project);
    ok(strncmp(body_at(&r, "name"), url, strlen(url)) == 0);
    if (ok(cr_test_fake_push_entries(&fp, since, "fcm", &e, &n) == 0 && n == 1)) {
        ok_str(e[0].id, "fcm-token:APA91b_x");
        ok_str(cr_test_fake_push_entry_text(&e[0], "priority", v, sizeof(v)), "high");
        ok_str(cr_test_fake_push_entry_text(&e[0], "collapse_key", v, sizeof(v)), "01JSESSION");
        ok(strstr(e[0].payload, "\"approval\"") != NULL);
    }
    cr_test_fake_push_entries_free(e, n);

    ok(fcm_send(&r, fp.fcm_url, NULL, "{\"message\":{\"token\":\"t\"}}") == 401);
    ok_str(body_at(&r, "error.status"), "UNAUTHENTICATED");
    ok(strstr(r.www_authenticate, "Bearer") == r.www_authenticate);
    ok(fcm_send(&r, fp.fcm_url, "ya29.c.made-up", "{\"message\":{\"token\":\"t\"}}") == 401);
    ok_str(body_at(&r, "error.code"), "401");
    snprintf(url, sizeof(url), "%s/v1/projects/someone-elses/messages:send", fp.url);
    ok(fcm_send(&r, url, access, "{\"message\":{\"token\":\"t\"}}") == 403);
    ok_str(body_at(&r, "error.status"), "PERMISSION_DENIED");
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"t\"},\"priority\":\"high\"}") == 400);
    ok_str(body_at(&r, "error.status"), "INVALID_ARGUMENT");
    ok(strstr(body_at(&r, "error.message"), "Unknown name \"priority\"") != NULL);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"t\",\"data\":{\"n\":1}}}") == 400);
    ok(strstr(body_at(&r, "error.message"), "message.data[0].value") != NULL);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"t\",\"android\":{\"priority\":\"urgent\"}}}") == 400);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"data\":{\"k\":\"v\"}}}") == 400);
    ok(strstr(r.body.base, "google.firebase.fcm.v1.FcmError") != NULL);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"has spaces\"}}") == 400);
    ok(strstr(r.body.base, "\"errorCode\":\"INVALID_ARGUMENT\"") != NULL);
    {
        static const char head[] = "{\"message\":{\"token\":\"t\",\"data\":{\"blob\":\"";
        memcpy(big, head, sizeof(head) - 1);
        memset(big + sizeof(head) - 1, 'x', 4093);
        strcpy(big + sizeof(head) - 1 + 4093, "\"}}}");
    }
    ok(fcm_send(&r, fp.fcm_url, access, big) == 400); /* 4 + 4093 bytes of data */
    ok(strstr(r.body.base, "\"errorCode\":\"INVALID_ARGUMENT\"") != NULL);

    /* scripted: the token went stale once, then a quota error with Retry-After */
    ok(cr_test_fake_push_script(&fp, "fcm", "fcm-stale", 404, "UNREGISTERED", 1, -1, -1) == 0);
    ok(cr_test_fake_push_script(&fp, "fcm", "fcm-busy", 429, "QUOTA_EXCEEDED", 1, 30, -1) == 0);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"fcm-stale\"}}") == 404);
    ok_str(body_at(&r, "error.status"), "NOT_FOUND");
    ok_str(body_at(&r, "error.message"), "Requested entity was not found.");
    ok(strstr(r.body.base, "\"errorCode\":\"UNREGISTERED\"") != NULL);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"fcm-stale\"}}") == 200);
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"fcm-busy\"}}") == 429);
    ok_str(body_at(&r, "error.status"), "RESOURCE_EXHAUSTED");
    ok_str(r.retry_after, "30");
    ok(cr_test_fake_push_stat(&fp, "providers.fcm.reason.UNREGISTERED") == 1);
    resp_free(&r);
}

static void test_fcm_token_expiry(void)
{
    cr_test_fake_push_t f2 = {0};
    cr_test_fake_push_opts_t o = {.fcm_token_ttl_s = 1};
    resp_t r = {0};
    EVP_PKEY *k;
    char jwt[4096], access[256];
    long long t = now_s();
    if (!ok(cr_test_fake_push_start(&f2, &o) == 0))
        return;
    k = load_sa_key(f2.service_account);
    assertion(jwt, sizeof(jwt), k, f2.fcm_client_email, f2.fcm_token_uri, SCOPE, t, t + 3600);
    okf(grant(&r, &f2, JWT_BEARER, jwt) == 0, "the first fake's CA does not vouch for the second: %s", r.error);
    trust = f2.ca;
    ok(grant(&r, &f2, JWT_BEARER, jwt) == 200);
    ok_str(body_at(&r, "expires_in"), "1");
    snprintf(access, sizeof(access), "%s", body_at(&r, "access_token"));
    ok(fcm_send(&r, f2.fcm_url, access, "{\"message\":{\"token\":\"t\"}}") == 200);
    cr_test_sleep_ms(1100);
    ok(fcm_send(&r, f2.fcm_url, access, "{\"message\":{\"token\":\"t\"}}") == 401);
    trust = NULL;
    /* one fake's token means nothing to another */
    ok(fcm_send(&r, fp.fcm_url, access, "{\"message\":{\"token\":\"t\"}}") == 401);
    EVP_PKEY_free(k);
    resp_free(&r);
    ok(cr_test_fake_push_stop(&f2) == 0);
}

/* ---- Web Push ---------------------------------------------------------------------------------------------------- */

/* Encrypts plaintext for sub with webpush_encrypt.py. Returns the body (malloc'd) and its length, or NULL. */
static char *encrypt(const cr_test_webpush_sub_t *sub, const char *plaintext, size_t *len, const char *args)
{
    char in[PATH_MAX + 16], out[PATH_MAX + 16], cmd[3 * PATH_MAX];
    FILE *f;
    int st;
    snprintf(in, sizeof(in), "%s/plain", tmp);
    snprintf(out, sizeof(out), "%s/body", tmp);
    if ((f = fopen(in, "wb")) == NULL)
        return NULL;
    fwrite(plaintext, 1, strlen(plaintext), f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "python3 '%s/tests/fakes/webpush_encrypt.py' '%s' '%s' %s < '%s' > '%s'",
             cr_test_source_dir(), sub->p256dh, sub->auth, args, in, out);
    st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return NULL;
    return cr_test_read_file(out, len);
}

static char *vapid(char *out, size_t outlen, EVP_PKEY *key, const char *aud, long long exp, const char *sub)
{
    char claims[512], jwt[1200], k[96];
    uint8_t pt[65];
    size_t ptlen = 0;
    snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"exp\":%lld,\"sub\":\"%s\"}", aud, exp, sub);
    sign_jwt(jwt, sizeof(jwt), key, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}", claims);
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &ptlen);
    b64url(k, pt, ptlen);
    snprintf(out, outlen, "Authorization: vapid t=%s, k=%s", jwt, k);
    return out;
}

static long push(resp_t *r, const char *endpoint, const char *auth, const char *ttl, const char *encoding, const char *urgency,
                 const char *topic, const void *body, size_t len)
{
    char t[64], e[64], u[64], tp[128];
    const char *h[8];
    size_t n = 0;
    if (auth != NULL)
        h[n++] = auth;
    if (ttl != NULL)
        snprintf(t, sizeof(t), "TTL: %s", ttl), h[n++] = t;
    if (encoding != NULL)
        snprintf(e, sizeof(e), "Content-Encoding: %s", encoding), h[n++] = e;
    if (urgency != NULL)
        snprintf(u, sizeof(u), "Urgency: %s", urgency), h[n++] = u;
    if (topic != NULL)
        snprintf(tp, sizeof(tp), "Topic: %s", topic), h[n++] = tp;
    h[n++] = "Content-Type: application/octet-stream";
    h[n] = NULL;
    return send_req(r, "POST", endpoint, h, body, len, 1);
}

static void test_webpush(void)
{
    static const char plaintext[] = "{\"sid\":\"01JSESSION\",\"k\":\"approval\",\"t\":\"Deploy to prod? ✓\"}";
    cr_test_webpush_sub_t sub, restricted;
    resp_t r = {0};
    char auth[2048], other_auth[2048], *body = NULL, *corrupt = NULL, big[5000], loc[300];
    size_t len = 0;
    cr_test_fake_push_entry_t *e = NULL;
    size_t n = 0;
    long long since, t = now_s();

    if (!ok(cr_test_fake_push_subscribe(&fp, &sub, NULL) == 0))
        return;
    ok(strncmp(sub.endpoint, fp.url, strlen(fp.url)) == 0 && strstr(sub.endpoint, "/push/") != NULL);
    ok(strlen(sub.p256dh) == 87 && strlen(sub.auth) == 22); /* 65 and 16 bytes */
    if (!ok((body = encrypt(&sub, plaintext, &len, "--pad 7")) != NULL))
        return;
    vapid(auth, sizeof(auth), vapid_key, fp.url, t + 3600, "mailto:ops@example.com");

    since = cr_test_fake_push_stat(&fp, "log.last");
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", "high", "session-01J", body, len) == 201);
    snprintf(loc, sizeof(loc), "%s/m/", fp.url);
    ok(strncmp(r.location, loc, strlen(loc)) == 0);
    ok_str(r.ttl, "60");
    if (ok(cr_test_fake_push_entries(&fp, since, "webpush", &e, &n) == 0 && n == 1)) {
        char v[256];
        ok_str(e[0].payload, plaintext); /* decrypted by the fake, as the browser would */
        ok_str(e[0].id, sub.id);
        ok_str(cr_test_fake_push_entry_text(&e[0], "headers.urgency", v, sizeof(v)), "high");
        ok_str(cr_test_fake_push_entry_text(&e[0], "headers.topic", v, sizeof(v)), "session-01J");
        ok_str(cr_test_fake_push_entry_text(&e[0], "jwt.claims.sub", v, sizeof(v)), "mailto:ops@example.com");
    }
    cr_test_fake_push_entries_free(e, n);

    /* split over several records (RFC 8188 §2: 0x01 delimiters, then 0x02 in the last) */
    {
        char *b4;
        size_t l4;
        since = cr_test_fake_push_stat(&fp, "log.last");
        if (ok((b4 = encrypt(&sub, plaintext, &l4, "--rs 40 --pad 3")) != NULL)) {
            ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, b4, l4) == 201);
            if (ok(cr_test_fake_push_entries(&fp, since, "webpush", &e, &n) == 0 && n == 1))
                ok_str(e[0].payload, plaintext);
            cr_test_fake_push_entries_free(e, n);
            e = NULL;
            n = 0;
            free(b4);
        }
    }
    /* a body that does not decrypt */
    corrupt = malloc(len);
    memcpy(corrupt, body, len);
    corrupt[len - 1] ^= 0x40;
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, corrupt, len) == 400);
    ok_str(body_at(&r, "errno"), "110");
    /* a message for another subscription does not decrypt with this one's keys */
    {
        cr_test_webpush_sub_t other;
        char *b2;
        size_t l2;
        if (ok(cr_test_fake_push_subscribe(&fp, &other, NULL) == 0) && ok((b2 = encrypt(&other, "x", &l2, "")) != NULL)) {
            ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, b2, l2) == 400);
            ok(push(&r, other.endpoint, auth, "0", "aes128gcm", NULL, NULL, b2, l2) == 201);
            free(b2);
        }
    }
    /* headers */
    ok(push(&r, sub.endpoint, auth, NULL, "aes128gcm", NULL, NULL, body, len) == 400);
    ok_str(body_at(&r, "errno"), "111");
    ok(push(&r, sub.endpoint, auth, "-5", "aes128gcm", NULL, NULL, body, len) == 400);
    ok(push(&r, sub.endpoint, auth, "60", "aesgcm", NULL, NULL, body, len) == 415);
    ok(push(&r, sub.endpoint, auth, "60", NULL, NULL, NULL, body, len) == 415);
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", "urgent", NULL, body, len) == 400);
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", "very-low", NULL, body, len) == 201);
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, "a-topic-that-is-longer-than-32-ch", body, len) == 400);
    ok_str(body_at(&r, "errno"), "113");
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, "not/base64url", body, len) == 400);
    ok(push(&r, sub.endpoint, auth, "60", NULL, NULL, NULL, NULL, 0) == 201); /* a tickle: no body, no encoding */
    memset(big, 0, sizeof(big));
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, big, 4097) == 413);
    ok_str(body_at(&r, "errno"), "104");
    /* VAPID */
    ok(push(&r, sub.endpoint, NULL, "60", "aes128gcm", NULL, NULL, body, len) == 401);
    ok_str(body_at(&r, "errno"), "109");
    ok(push(&r, sub.endpoint, "Authorization: WebPush abc", "60", "aes128gcm", NULL, NULL, body, len) == 401);
    vapid(other_auth, sizeof(other_auth), vapid_key, "https://push.example.net", t + 3600, "mailto:ops@example.com");
    ok(push(&r, sub.endpoint, other_auth, "60", "aes128gcm", NULL, NULL, body, len) == 403);
    ok_str(body_at(&r, "message"), "Invalid VAPID audience");
    vapid(other_auth, sizeof(other_auth), vapid_key, fp.url, t + 90000, "mailto:ops@example.com");
    ok(push(&r, sub.endpoint, other_auth, "60", "aes128gcm", NULL, NULL, body, len) == 403);
    vapid(other_auth, sizeof(other_auth), vapid_key, fp.url, t - 10, "mailto:ops@example.com");
    ok(push(&r, sub.endpoint, other_auth, "60", "aes128gcm", NULL, NULL, body, len) == 403);
    vapid(other_auth, sizeof(other_auth), vapid_key, fp.url, t + 3600, "ops@example.com");
    ok(push(&r, sub.endpoint, other_auth, "60", "aes128gcm", NULL, NULL, body, len) == 403);
    {
        /* t signed by one key, k naming another */
        char *k;
        vapid(other_auth, sizeof(other_auth), other_ec, fp.url, t + 3600, "https://relay.example.com");
        k = strstr(other_auth, ", k=");
        snprintf(k, sizeof(other_auth) - (size_t)(k - other_auth), ", k=%s", vapid_k);
        ok(push(&r, sub.endpoint, other_auth, "60", "aes128gcm", NULL, NULL, body, len) == 403);
    }
    /* a subscription restricted to our VAPID key refuses another key */
    if (ok(cr_test_fake_push_subscribe(&fp, &restricted, vapid_k) == 0)) {
        char *b3;
        size_t l3;
        if (ok((b3 = encrypt(&restricted, "restricted", &l3, "")) != NULL)) {
            vapid(other_auth, sizeof(other_auth), other_ec, fp.url, t + 3600, "https://relay.example.com");
            ok(push(&r, restricted.endpoint, other_auth, "60", "aes128gcm", NULL, NULL, b3, l3) == 403);
            ok_str(body_at(&r, "message"), "VAPID public key mismatch");
            ok(push(&r, restricted.endpoint, auth, "60", "aes128gcm", NULL, NULL, b3, l3) == 201);
            free(b3);
        }
    }

    /* scripted: 503 with Retry-After once, then delivered */
    ok(cr_test_fake_push_script(&fp, "webpush", sub.id, 503, NULL, 1, 7, -1) == 0);
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, body, len) == 503);
    ok_str(r.retry_after, "7");
    ok_str(body_at(&r, "code"), "503");
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, body, len) == 201);

    /* unknown and unsubscribed endpoints */
    snprintf(loc, sizeof(loc), "%s/push/0_nosuchsubscription", fp.url);
    ok(push(&r, loc, auth, "60", "aes128gcm", NULL, NULL, body, len) == 404);
    ok_str(body_at(&r, "errno"), "102");
    ok(cr_test_fake_push_unsubscribe(&fp, sub.id) == 0);
    ok(push(&r, sub.endpoint, auth, "60", "aes128gcm", NULL, NULL, body, len) == 410);
    ok_str(body_at(&r, "errno"), "106");
    ok(cr_test_fake_push_stat(&fp, "providers.webpush.status.201") >= 5);
    free(body);
    free(corrupt);
    resp_free(&r);
}

/* RFC 8291 §5: the example message, sent to a subscription holding the example's receiver keys, decrypts to the
 * example's plaintext. The encoder above and the fake's decoder were both written from the RFC; this vector is the
 * RFC's own. */
static void test_webpush_rfc8291(void)
{
    static const char body64[] = "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
                                 "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
                                 "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN";
    cr_test_webpush_sub_t sub;
    cr_buf_t body;
    resp_t r = {0};
    char auth[2048];
    cr_test_fake_push_entry_t *e = NULL;
    size_t n = 0;
    long long since;
    if (!ok(cr_test_fake_push_subscribe_keys(&fp, &sub, "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
                                             "BTBZMqHH6r4Tts7J_aSIgg") == 0))
        return;
    ok_str(sub.p256dh, "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4");
    cr_buf_init(&body, 4096);
    ok(cr_base64url_decode(&body, body64, strlen(body64)) == 0);
    vapid(auth, sizeof(auth), vapid_key, fp.url, now_s() + 600, "mailto:ops@example.com");
    since = cr_test_fake_push_stat(&fp, "log.last");
    ok(push(&r, sub.endpoint, auth, "10", "aes128gcm", NULL, NULL, body.base, body.len) == 201);
    if (ok(cr_test_fake_push_entries(&fp, since, "webpush", &e, &n) == 0 && n == 1))
        ok_str(e[0].payload, "When I grow up, I want to be a watermelon");
    cr_test_fake_push_entries_free(e, n);
    body.base[body.len - 1] ^= 1;
    ok(push(&r, sub.endpoint, auth, "10", "aes128gcm", NULL, NULL, body.base, body.len) == 400);
    cr_buf_free(&body);
    resp_free(&r);
}

static void test_burst_reads(void)
{
    static const size_t bursts[] = {4096, 8192, 8192, 16384, 12288, 32768};
    size_t n = sizeof(bursts) / sizeof(bursts[0]);
    int lived = cr_test_h2_tls_bursts(fp.port, fp.ca, bursts, n);
    okf(lived == (int)n, "the connection lived through %d of %zu bursts (4 to 32 KiB)", lived, n);
}

static void test_stats_and_log(void)
{
    cr_test_resp_t r = {0};
    ok(cr_test_fake_push_control(&fp, &r, "GET", "/_fake/nope", NULL) == 0 && r.status == 404);
    cr_test_resp_free(&r);
    ok(cr_test_fake_push_control(&fp, &r, "POST", "/_fake/script", "{\"provider\":\"apns\",\"status\":99}") == 0 &&
       r.status == 400);
    cr_test_resp_free(&r);
    ok(cr_test_fake_push_stat(&fp, "providers.apns.status.200") > 0);
    ok(cr_test_fake_push_stat(&fp, "total") >= cr_test_fake_push_stat(&fp, "providers.webpush.total"));
    ok(cr_test_fake_push_stat(&fp, "log.capacity") == 10000);
}

int main(void)
{
    int st;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!ok(cr_test_make_temp_dir(tmp, sizeof(tmp), "corral-test-fake-push", 200) == 0) ||
        !ok(cr_test_slot_add(tmp, 0) > 0) || !ok(cr_test_fake_push_start(&fp, NULL) == 0))
        return done_testing();
    apns_key = load_key_file(fp.p8);
    sa_key = load_sa_key(fp.service_account);
    other_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    other_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    vapid_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!ok(apns_key != NULL && sa_key != NULL && other_ec != NULL && other_rsa != NULL && vapid_key != NULL))
        goto done;
    {
        uint8_t pt[65];
        size_t ptlen = 0;
        EVP_PKEY_get_octet_string_param(vapid_key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &ptlen);
        b64url(vapid_k, pt, ptlen);
    }
    snprintf(provider_token, sizeof(provider_token), "bearer ");
    apns_jwt(provider_token + 7, sizeof(provider_token) - 7, apns_key, "ES256", fp.apns_key_id, fp.apns_team_id, now_s() - 60);

    subtest("TLS: the CA file verifies the fake", test_tls_trust);
    subtest("APNs: a good notification over HTTP/2", test_apns_good);
    subtest("APNs: each check with Apple's status and reason", test_apns_checks);
    subtest("APNs: a new provider token at most every 20 minutes", test_apns_token_updates);
    subtest("APNs: HTTP/1.1 refused", test_apns_http1);
    subtest("APNs: scripted 503 and 410", test_apns_scripts);
    subtest("FCM: token grant, send, Google's errors", test_fcm);
    subtest("FCM: access tokens expire", test_fcm_token_expiry);
    subtest("Web Push: encrypted, VAPID-signed, decrypted", test_webpush);
    subtest("Web Push: RFC 8291's example message", test_webpush_rfc8291);
    subtest("control: stats and errors", test_stats_and_log);
    subtest("TLS: bursts the size of the server's read buffer keep the connection", test_burst_reads);
done:
    st = cr_test_fake_push_stop(&fp);
    okf(st == 0, "the fake shut down cleanly on SIGTERM (exit status %d)", st);
    EVP_PKEY_free(apns_key);
    EVP_PKEY_free(sa_key);
    EVP_PKEY_free(other_ec);
    EVP_PKEY_free(other_rsa);
    EVP_PKEY_free(vapid_key);
    curl_global_cleanup();
    return done_testing();
}
