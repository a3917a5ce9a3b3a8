/* http_client.c — the tests' HTTP client on libcurl: one-shot requests (easy) and never-ending msgpack streams
 * (multi). */
#include "http_client.h"
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "corral/error.h"
#include "corral/limits.h"
#include "corral/mp.h"
#include "corral/reader.h"

#define TIMEOUT_MS 10000L
#define MAX_BODY (64u << 20)       /* a one-shot response body */
#define MAX_ERROR_BODY (64u << 10) /* a failed stream's body */
#define MAX_STREAM_BUFFER (256u << 20)
#define FEED_CHUNK (64u << 10)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void init_curl(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies a header's value (trimmed) when line is "Name: value\r\n" for this name. Returns 1 when it matched. */
static int header_value(const char *line, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name), vlen;
    const char *v;
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return 0;
    v = line + nlen + 1;
    vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t'))
        ++v, --vlen;
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        --vlen;
    snprintf(out, outlen, "%.*s", (int)vlen, v);
    return 1;
}

static int append(struct curl_slist **list, const char *line)
{
    struct curl_slist *n = curl_slist_append(*list, line);
    if (n == NULL)
        return -1;
    *list = n;
    return 0;
}

/* Adds "Authorization: Bearer TOKEN", Content-Type, Accept and the caller's headers to *list. Returns 0 or -1. */
static int add_headers(struct curl_slist **list, const char *token, const char *content_type,
                       const char *const *headers, int flags, int has_body)
{
    char line[512];
    if (token != NULL) {
        size_t len = strlen("Authorization: Bearer ") + strlen(token) + 1;
        char *auth = malloc(len);
        int rc;
        if (auth == NULL)
            return -1;
        snprintf(auth, len, "Authorization: Bearer %s", token);
        rc = append(list, auth);
        memset(auth, 0, len);
        free(auth);
        if (rc != 0)
            return -1;
    }
    if (content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        if (append(list, line) != 0)
            return -1;
    } else if (has_body && append(list, "Content-Type:") != 0) { /* not curl's form-urlencoded default */
        return -1;
    }
    if ((flags & CR_HTTP_ACCEPT_MSGPACK) && append(list, "Accept: application/msgpack") != 0)
        return -1;
    if (has_body && append(list, "Expect:") != 0) /* no 100-continue round trip */
        return -1;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; ++i)
        if (append(list, headers[i]) != 0)
            return -1;
    return 0;
}

/* A configured easy handle for one request, or NULL (out of memory). *list gets the headers to free afterwards. */
static CURL *new_easy(const char *method, const char *url, const char *token, const char *content_type,
                      const char *const *headers, const void *body, size_t body_len, int flags,
                      struct curl_slist **list, char *errbuf)
{
    CURL *e;
    int has_body = body != NULL;
    pthread_once(&curl_once, init_curl);
    *list = NULL;
    if ((e = curl_easy_init()) == NULL)
        return NULL;
    if (add_headers(list, token, content_type, headers, flags, has_body) != 0) {
        curl_slist_free_all(*list);
        *list = NULL;
        curl_easy_cleanup(e);
        return NULL;
    }
    errbuf[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, *list);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     !(flags & CR_HTTP_H2C)              ? (long)CURL_HTTP_VERSION_1_1
                     : strncasecmp(url, "https:", 6) == 0 ? (long)CURL_HTTP_VERSION_2TLS
                                                         : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    if (flags & CR_HTTP_INSECURE) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(method, "HEAD") == 0 && !has_body) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") == 0 && !has_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (has_body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? body_len : 0));
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, has_body ? body : "");
        }
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return e;
}

/* ---- one-shot requests ------------------------------------------------------------------------------------------ */

typedef struct {
    cr_buf_t body;
    cr_test_resp_t *resp;
} one_shot_t;

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    one_shot_t *o = data;
    return cr_buf_append(&o->body, p, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    one_shot_t *o = data;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new header block (after a 1xx): forget the last one's */
        o->resp->content_type[0] = '\0';
        o->resp->retry_after[0] = '\0';
    }
    if (!header_value(p, len, "Content-Type", o->resp->content_type, sizeof(o->resp->content_type)))
        header_value(p, len, "Retry-After", o->resp->retry_after, sizeof(o->resp->retry_after));
    return len;
}

static long version_of(CURL *e)
{
    long v = 0;
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &v);
    switch (v) {
    case CURL_HTTP_VERSION_1_0:
    case CURL_HTTP_VERSION_1_1:
        return 1;
    case CURL_HTTP_VERSION_2_0:
        return 2;
    case CURL_HTTP_VERSION_3:
        return 3;
    default:
        return 0;
    }
}

int cr_test_http_ex(cr_test_resp_t *resp, const char *method, const char *url, const char *token,
                    const char *content_type, const char *const *headers, const void *body, size_t body_len, int flags)
{
    one_shot_t o;
    struct curl_slist *list;
    char errbuf[CURL_ERROR_SIZE];
    CURL *e;
    CURLcode rc;
    memset(resp, 0, sizeof(*resp));
    o.resp = resp;
    cr_buf_init(&o.body, MAX_BODY + 1);
    if ((e = new_easy(method, url, token, content_type, headers, body, body_len, flags, &list, errbuf)) == NULL) {
        snprintf(resp->error, sizeof(resp->error), "out of memory");
        goto fail;
    }
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &o);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &o);
    rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        snprintf(resp->error, sizeof(resp->error), "%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
        if (rc == CURLE_WRITE_ERROR && o.body.len + CURL_MAX_WRITE_SIZE > MAX_BODY)
            snprintf(resp->error, sizeof(resp->error), "response body over %u bytes", MAX_BODY);
        curl_easy_cleanup(e);
        curl_slist_free_all(list);
        goto fail;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->http_version = version_of(e);
    curl_easy_cleanup(e);
    curl_slist_free_all(list);
    if (cr_buf_append(&o.body, "", 1) != 0) { /* the NUL */
        snprintf(resp->error, sizeof(resp->error), "response body over %u bytes", MAX_BODY);
        goto fail;
    }
    resp->body = o.body.base; /* now owned by resp */
    resp->body_len = o.body.len - 1;
    return 0;
fail:
    fprintf(stderr, "http_client: %s %s: %s\n", method, url, resp->error);
    cr_buf_free(&o.body);
    resp->status = 0;
    resp->http_version = 0;
    resp->content_type[0] = resp->retry_after[0] = '\0';
    resp->body = calloc(1, 1);
    resp->body_len = 0;
    return -1;
}

int cr_test_http(cr_test_resp_t *resp, const char *method, const char *url, const char *token, const char *content_type,
                 const void *body, size_t body_len, int flags)
{
    return cr_test_http_ex(resp, method, url, token, content_type, NULL, body, body_len, flags);
}

int cr_test_http_json(cr_test_resp_t *resp, const char *method, const char *url, const char *token,
                      const char *json_body)
{
    return cr_test_http(resp, method, url, token, json_body != NULL ? "application/json" : NULL, json_body,
                        json_body != NULL ? strlen(json_body) : 0, 0);
}

void cr_test_resp_free(cr_test_resp_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* ---- streams ---------------------------------------------------------------------------------------------------- */

struct st_cr_test_stream_t {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    cr_buf_t raw;    /* bytes of a 2xx body received and not yet fed to the reader, from raw_pos */
    size_t raw_pos;
    cr_reader_t reader;
    cr_buf_t errbody; /* the body of a non-2xx response */
    long status;      /* 0 until the headers are complete */
    int ended;        /* the transfer is over */
    int failed;       /* ended (or the reader refused the bytes) with a message already printed */
    CURLcode result;
    char error[CURL_ERROR_SIZE];
};

static size_t on_stream_header(char *p, size_t size, size_t n, void *data)
{
    cr_test_stream_t *s = data;
    size_t len = size * n;
    if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) { /* the end of a header block */
        long code = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200)
            s->status = code;
    }
    return len;
}

static size_t on_stream_data(char *p, size_t size, size_t n, void *data)
{
    cr_test_stream_t *s = data;
    size_t len = size * n;
    if (s->status >= 200 && s->status < 300) {
        if (s->raw_pos > 0 && s->raw_pos >= s->raw.len / 2) {
            cr_buf_consume(&s->raw, s->raw_pos);
            s->raw_pos = 0;
        }
        if (cr_buf_append(&s->raw, p, len) != 0) {
            fprintf(stderr, "http_client: stream: more than %u bytes received and not read\n", MAX_STREAM_BUFFER);
            return 0;
        }
    } else {
        size_t room = s->errbody.limit - 1 - s->errbody.len, take = len < room ? len : room;
        cr_buf_append(&s->errbody, p, take);
    }
    return len;
}

cr_test_stream_t *cr_test_stream_open(const char *url, const char *token, int flags)
{
    cr_test_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    cr_buf_init(&s->raw, MAX_STREAM_BUFFER);
    cr_buf_init(&s->errbody, MAX_ERROR_BODY);
    /* an act frame carries an action, audio included, plus its own few keys */
    cr_reader_init(&s->reader, cr_limits_max_action(&cr_limits_default) + 4096, NULL);
    if ((s->easy = new_easy("GET", url, token, NULL, NULL, NULL, 0, flags, &s->headers, s->error)) == NULL ||
        (s->multi = curl_multi_init()) == NULL) {
        cr_test_stream_close(s);
        return NULL;
    }
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_stream_data);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_stream_header);
    curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
    if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) {
        cr_test_stream_close(s);
        return NULL;
    }
    return s;
}

/* Lets curl work: waits up to wait_ms for the socket (0: not at all), then reads what is there. */
static void pump(cr_test_stream_t *s, int wait_ms)
{
    CURLMsg *m;
    int running, left;
    if (s->ended)
        return;
    if (wait_ms > 0)
        curl_multi_poll(s->multi, NULL, 0, wait_ms, NULL);
    curl_multi_perform(s->multi, &running);
    while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        s->ended = 1;
        s->result = m->data.result;
        if (s->result != CURLE_OK && !s->failed) {
            s->failed = 1;
            fprintf(stderr, "http_client: stream: %s\n", s->error[0] != '\0' ? s->error : curl_easy_strerror(s->result));
        }
    }
}

int cr_test_stream_next(cr_test_stream_t *s, cr_buf_t *out_frame, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int wait_ms = 0;
    for (;;) {
        cr_span_t v;
        int64_t left;
        int rc;
        pump(s, wait_ms);
        /* give out complete values first; feed the reader a chunk at a time so that it never holds more than one
         * value plus a chunk, however much arrived at once */
        while ((rc = cr_reader_next(&s->reader, &v)) == CR_EAGAIN && s->raw_pos < s->raw.len) {
            size_t n = s->raw.len - s->raw_pos < FEED_CHUNK ? s->raw.len - s->raw_pos : FEED_CHUNK;
            if ((rc = cr_reader_feed(&s->reader, s->raw.base + s->raw_pos, n)) != 0)
                break;
            s->raw_pos += n;
        }
        if (rc == 0) {
            if ((rc = cr_buf_append(out_frame, v.base, v.len)) != 0) {
                fprintf(stderr, "http_client: stream: a %zu-byte value does not fit the caller's buffer\n", v.len);
                return -1;
            }
            return 0;
        }
        if (rc != CR_EAGAIN) {
            if (!s->failed)
                fprintf(stderr, "http_client: stream: bad msgpack (%s): %s\n", cr_err_code(rc), cr_error_last()->message);
            s->failed = 1;
            return -1;
        }
        if (s->ended || s->failed)
            return -1;
        if ((left = deadline - now_ms()) <= 0) /* a non-2xx response never gives a value: waited for its body */
            return s->status != 0 && (s->status < 200 || s->status >= 300) ? -1 : CR_EAGAIN;
        wait_ms = left < 100 ? (int)left : 100;
    }
}

int cr_test_stream_wait_headers(cr_test_stream_t *s, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int wait_ms = 0;
    for (;;) {
        int64_t left;
        pump(s, wait_ms);
        if (s->status != 0)
            return 0;
        if (s->ended)
            return -1;
        if ((left = deadline - now_ms()) <= 0)
            return CR_EAGAIN;
        wait_ms = left < 100 ? (int)left : 100;
    }
}

long cr_test_stream_status(cr_test_stream_t *s)
{
    return s->status;
}

const char *cr_test_stream_body(cr_test_stream_t *s)
{
    if (s->errbody.base == NULL || cr_buf_reserve(&s->errbody, 1) != 0)
        return "";
    s->errbody.base[s->errbody.len] = '\0';
    return s->errbody.base;
}

int cr_test_stream_ended(cr_test_stream_t *s)
{
    pump(s, 0);
    return s->ended;
}

void cr_test_stream_close(cr_test_stream_t *s)
{
    if (s == NULL)
        return;
    if (s->multi != NULL && s->easy != NULL)
        curl_multi_remove_handle(s->multi, s->easy);
    if (s->easy != NULL)
        curl_easy_cleanup(s->easy);
    if (s->multi != NULL)
        curl_multi_cleanup(s->multi);
    curl_slist_free_all(s->headers);
    cr_reader_free(&s->reader);
    cr_buf_free(&s->raw);
    cr_buf_free(&s->errbody);
    free(s);
}
