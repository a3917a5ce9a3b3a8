/* fake_push.c — starts and stops corral-fake-push for tests, and speaks its /_fake/ control API. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fake_push.h"
#include "certs.h"
#include "corral/codec.h"
#include "corral/json.h"
#include "mp_text.h"
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000
#define STOP_GRACE_MS 5000
#define POLL_MS 20
#define MAX_ATTEMPTS 5

static int find_exe(cr_test_fake_push_t *fp)
{
    const char *bin = getenv("CORRAL_FAKE_PUSH_BIN"), *dir = getenv("CORRAL_BINARY_DIR");
    if (bin != NULL && bin[0] != '\0') {
        snprintf(fp->exe, sizeof(fp->exe), "%s", bin);
    } else if (dir != NULL && dir[0] != '\0') {
        snprintf(fp->exe, sizeof(fp->exe), "%s/bin/corral-fake-push", dir);
    } else {
#ifdef CORRAL_BINARY_DIR_DEFAULT
        snprintf(fp->exe, sizeof(fp->exe), "%s/bin/corral-fake-push", CORRAL_BINARY_DIR_DEFAULT);
#else
        fprintf(stderr, "fake_push: where is corral-fake-push? Set CORRAL_FAKE_PUSH_BIN or CORRAL_BINARY_DIR\n");
        return -1;
#endif
    }
    if (access(fp->exe, X_OK) != 0) {
        fprintf(stderr, "fake_push: %s: %s (build the corral-fake-push target)\n", fp->exe, strerror(errno));
        return -1;
    }
    return 0;
}

/* n random characters of alphabet into out (NUL-terminated). */
static void random_chars(char *out, size_t n, const char *alphabet)
{
    unsigned char b[64];
    size_t k = strlen(alphabet);
    if (n > sizeof(b))
        n = sizeof(b);
    if (RAND_bytes(b, (int)n) != 1)
        abort();
    for (size_t i = 0; i < n; ++i)
        out[i] = alphabet[b[i] % k];
    out[n] = '\0';
}

/* Appends s as a JSON string. */
static void json_str(cr_buf_t *b, const char *s)
{
    cr_buf_append(b, "\"", 1);
    for (; *s != '\0'; ++s) {
        if (*s == '\n')
            cr_buf_append(b, "\\n", 2);
        else if (*s == '"' || *s == '\\')
            cr_buf_appendf(b, "\\%c", *s);
        else
            cr_buf_append(b, s, 1);
    }
    cr_buf_append(b, "\"", 1);
}

/* Writes the service-account file (its token_uri names the port, so it is rewritten for each port tried). */
static int write_service_account(cr_test_fake_push_t *fp, const char *rsa_pem, const char *key_id)
{
    cr_buf_t b;
    int rc;
    cr_buf_init(&b, 1 << 16);
    cr_buf_appendf(&b, "{\n  \"type\": \"service_account\",\n  \"project_id\": \"%s\",\n  \"private_key_id\": \"%s\",\n"
                       "  \"private_key\": ",
                   fp->fcm_project, key_id);
    json_str(&b, rsa_pem);
    cr_buf_appendf(&b, ",\n  \"client_email\": \"%s\",\n  \"client_id\": \"100000000000000000001\",\n"
                       "  \"auth_uri\": \"https://accounts.google.com/o/oauth2/auth\",\n  \"token_uri\": \"%s\",\n"
                       "  \"auth_provider_x509_cert_url\": \"https://www.googleapis.com/oauth2/v1/certs\",\n"
                       "  \"universe_domain\": \"googleapis.com\"\n}\n",
                   fp->fcm_client_email, fp->fcm_token_uri);
    rc = cr_buf_append(&b, "", 1) == 0 ? cr_test_write_secret(fp->service_account, b.base) : -1;
    OPENSSL_cleanse(b.base, b.len);
    cr_buf_free(&b);
    return rc;
}

static void set_port(cr_test_fake_push_t *fp, int port)
{
    fp->port = port;
    snprintf(fp->url, sizeof(fp->url), "https://127.0.0.1:%d", port);
    snprintf(fp->apns_url, sizeof(fp->apns_url), "%s", fp->url);
    snprintf(fp->fcm_token_uri, sizeof(fp->fcm_token_uri), "%s/token", fp->url);
    snprintf(fp->fcm_url, sizeof(fp->fcm_url), "%s/v1/projects/%s/messages:send", fp->url, fp->fcm_project);
}

static void print_tail(cr_test_fake_push_t *fp)
{
    fprintf(stderr, "fake_push: last lines of %s:\n%s\n", fp->log, cr_test_fake_push_log_tail(fp));
}

/* Waits until the child answers /_fake/health. Returns 0, 1 when it exited because its port was taken, or -1. */
static int wait_ready(cr_test_fake_push_t *fp, off_t log_from)
{
    int64_t deadline = cr_test_now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        int status;
        if (cr_test_reap(fp->pid, 0, &status)) {
            char *text = cr_test_file_read(fp->log, log_from, 1 << 20);
            int in_use = text != NULL && strcasestr(text, "address already in use") != NULL;
            free(text);
            fp->pid = 0;
            cr_test_slot_set_pid(fp->_slot, 0);
            if (in_use)
                return 1;
            fprintf(stderr, "fake_push: %s exited (status %d) before answering\n", fp->exe,
                    status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            print_tail(fp);
            return -1;
        }
        if (cr_test_pid_listens(fp->pid, fp->port) == 1) {
            cr_test_resp_t r = {0};
            int ok = cr_test_fake_push_control(fp, &r, "GET", "/_fake/health", NULL) == 0 && r.status == 200;
            cr_test_resp_free(&r);
            if (ok)
                return 0;
        }
        if (cr_test_now_ms() > deadline) {
            fprintf(stderr, "fake_push: %s on port %d did not answer within %d ms\n", fp->exe, fp->port, READY_TIMEOUT_MS);
            print_tail(fp);
            kill(fp->pid, SIGKILL);
            cr_test_reap(fp->pid, 1, NULL);
            fp->pid = 0;
            cr_test_slot_set_pid(fp->_slot, 0);
            return -1;
        }
        cr_test_sleep_ms(POLL_MS);
    }
}

int cr_test_fake_push_start(cr_test_fake_push_t *fp, const cr_test_fake_push_opts_t *opts)
{
    static const char upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", lower[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    cr_test_fake_push_opts_t o = {0};
    char *ec_pem = NULL, *rsa_pem = NULL, sa_key_id[41], suffix[7], interval[32], ttl[32], logsize[32];
    int rc = -1;
    if (opts != NULL)
        o = *opts;
    if (fp->pid > 0 || fp->_slot != 0) {
        fprintf(stderr, "fake_push: already started (stop it first)\n");
        return -1;
    }
    memset(fp, 0, sizeof(*fp));
    if (find_exe(fp) != 0 || cr_test_make_temp_dir(fp->dir, sizeof(fp->dir), "corral-fake-push", 200) != 0)
        return -1;
    if ((fp->_slot = cr_test_slot_add(fp->dir, STOP_GRACE_MS)) < 0) {
        fp->_slot = 0;
        cr_test_rm_rf(fp->dir);
        fp->dir[0] = '\0';
        return -1;
    }
    random_chars(fp->apns_key_id, 10, upper);
    random_chars(fp->apns_team_id, 10, upper);
    random_chars(suffix, 6, lower);
    random_chars(sa_key_id, 40, "0123456789abcdef");
    snprintf(fp->apns_topic, sizeof(fp->apns_topic), "%s", o.apns_topic != NULL ? o.apns_topic : "com.example.corral");
    snprintf(fp->fcm_project, sizeof(fp->fcm_project), "corral-test-%s", suffix);
    snprintf(fp->fcm_client_email, sizeof(fp->fcm_client_email), "corral-push@%s.iam.gserviceaccount.com", fp->fcm_project);
    if ((size_t)snprintf(fp->log, sizeof(fp->log), "%s/fake_push.log", fp->dir) >= sizeof(fp->log) ||
        (size_t)snprintf(fp->ca, sizeof(fp->ca), "%s/tls.crt", fp->dir) >= sizeof(fp->ca) ||
        (size_t)snprintf(fp->tls_key, sizeof(fp->tls_key), "%s/tls.key", fp->dir) >= sizeof(fp->tls_key) ||
        (size_t)snprintf(fp->p8, sizeof(fp->p8), "%s/AuthKey_%s.p8", fp->dir, fp->apns_key_id) >= sizeof(fp->p8) ||
        (size_t)snprintf(fp->service_account, sizeof(fp->service_account), "%s/service-account.json", fp->dir) >=
            sizeof(fp->service_account))
        goto done;
    if (cr_test_make_cert(fp->ca, fp->tls_key) != 0 || (ec_pem = cr_test_make_ec_pem()) == NULL ||
        cr_test_write_secret(fp->p8, ec_pem) != 0 || (rsa_pem = cr_test_make_rsa_pem(2048)) == NULL)
        goto done;
    snprintf(interval, sizeof(interval), "%ld",
             o.apns_token_min_interval_s == 0 ? 1200L : o.apns_token_min_interval_s < 0 ? 0L : o.apns_token_min_interval_s);
    snprintf(ttl, sizeof(ttl), "%ld", o.fcm_token_ttl_s > 0 ? o.fcm_token_ttl_s : 3599L);
    snprintf(logsize, sizeof(logsize), "%ld", o.log_size == 0 ? 10000L : o.log_size < 0 ? 0L : o.log_size);
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; ++attempt) {
        char listen[64];
        const char *argv[32];
        size_t a = 0;
        off_t from = cr_test_file_size(fp->log);
        int port = cr_test_free_port(), logfd, ready;
        if (port < 0) {
            fprintf(stderr, "fake_push: no free loopback port: %s\n", strerror(errno));
            goto done;
        }
        set_port(fp, port);
        if (write_service_account(fp, rsa_pem, sa_key_id) != 0)
            goto done;
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        argv[a++] = fp->exe;
        argv[a++] = "--listen", argv[a++] = listen;
        argv[a++] = "--cert", argv[a++] = fp->ca;
        argv[a++] = "--key", argv[a++] = fp->tls_key;
        argv[a++] = "--apns-key", argv[a++] = fp->p8;
        argv[a++] = "--apns-key-id", argv[a++] = fp->apns_key_id;
        argv[a++] = "--apns-team-id", argv[a++] = fp->apns_team_id;
        argv[a++] = "--apns-topic", argv[a++] = fp->apns_topic;
        argv[a++] = "--apns-token-min-interval", argv[a++] = interval;
        argv[a++] = "--fcm-account", argv[a++] = fp->service_account;
        argv[a++] = "--fcm-token-ttl", argv[a++] = ttl;
        argv[a++] = "--log-size", argv[a++] = logsize;
        if (o.verbose)
            argv[a++] = "--verbose";
        argv[a] = NULL;
        if ((logfd = open(fp->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
            fprintf(stderr, "fake_push: %s: %s\n", fp->log, strerror(errno));
            goto done;
        }
        fp->pid = cr_test_spawn(fp->exe, argv, NULL, logfd, logfd);
        close(logfd);
        if (fp->pid < 0) {
            fp->pid = 0;
            goto done;
        }
        cr_test_slot_set_pid(fp->_slot, fp->pid);
        if ((ready = wait_ready(fp, from)) == 0) {
            rc = 0;
            goto done;
        }
        if (ready < 0)
            goto done;
    }
    fprintf(stderr, "fake_push: no free port after %d attempts\n", MAX_ATTEMPTS);
done:
    if (ec_pem != NULL) {
        OPENSSL_cleanse(ec_pem, strlen(ec_pem));
        free(ec_pem);
    }
    if (rsa_pem != NULL) {
        OPENSSL_cleanse(rsa_pem, strlen(rsa_pem));
        free(rsa_pem);
    }
    if (rc != 0)
        cr_test_fake_push_stop(fp);
    return rc;
}

int cr_test_fake_push_stop(cr_test_fake_push_t *fp)
{
    int status = -1, result = -1;
    if (fp->pid > 0) {
        if (kill(fp->pid, SIGTERM) == 0) {
            int64_t deadline = cr_test_now_ms() + STOP_GRACE_MS;
            while (!cr_test_reap(fp->pid, 0, &status) && cr_test_now_ms() < deadline)
                cr_test_sleep_ms(POLL_MS);
            if (cr_test_now_ms() >= deadline && cr_test_reap(fp->pid, 0, &status) == 0) {
                kill(fp->pid, SIGKILL);
                cr_test_reap(fp->pid, 1, NULL);
                status = -1;
            }
        } else {
            cr_test_reap(fp->pid, 1, &status);
        }
        if (status >= 0 && WIFEXITED(status))
            result = WEXITSTATUS(status);
    }
    cr_test_slot_set_pid(fp->_slot, 0);
    if (fp->log[0] != '\0')
        cr_test_file_tail(fp->_tail, sizeof(fp->_tail), fp->log);
    if (fp->_slot > 0)
        cr_test_slot_stop(fp->_slot); /* removes the dir */
    else if (fp->dir[0] != '\0')
        cr_test_rm_rf(fp->dir);
    fp->pid = 0;
    fp->dir[0] = fp->log[0] = '\0';
    fp->_slot = 0;
    return result;
}

const char *cr_test_fake_push_log_tail(cr_test_fake_push_t *fp)
{
    if (fp->log[0] != '\0')
        cr_test_file_tail(fp->_tail, sizeof(fp->_tail), fp->log);
    else if (fp->_tail[0] == '\0')
        snprintf(fp->_tail, sizeof(fp->_tail), "(empty)");
    return fp->_tail;
}

int cr_test_fake_push_control(cr_test_fake_push_t *fp, cr_test_resp_t *resp, const char *method, const char *path,
                              const char *json_body)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", fp->url, path);
    return cr_test_http(resp, method, url, NULL, json_body != NULL ? "application/json" : NULL, json_body,
                        json_body != NULL ? strlen(json_body) : 0, CR_HTTP_INSECURE);
}

long long cr_test_fake_push_stat(cr_test_fake_push_t *fp, const char *path)
{
    cr_test_resp_t r = {0};
    char text[32];
    long long v = -1;
    if (cr_test_fake_push_control(fp, &r, "GET", "/_fake/stats", NULL) == 0 && r.status == 200)
        v = strtoll(cr_test_json_text(&r, path, text, sizeof(text)), NULL, 10);
    cr_test_resp_free(&r);
    return v;
}

static void entry_fill(cr_test_fake_push_entry_t *e)
{
    char num[32];
    cr_span_t v;
    cr_mp_item_t it;
    const char *mp = e->_mp;
    size_t len = e->_mp_len;
    e->n = strtoll(cr_test_mp_text(mp, len, "n", num, sizeof(num)), NULL, 10);
    e->status = atoi(cr_test_mp_text(mp, len, "status", num, sizeof(num)));
    e->t_ns = strtoll(cr_test_mp_text(mp, len, "t_ns", num, sizeof(num)), NULL, 10);
    e->http = atoi(cr_test_mp_text(mp, len, "http", num, sizeof(num)));
    cr_test_mp_text(mp, len, "provider", e->provider, sizeof(e->provider));
    cr_test_mp_text(mp, len, "method", e->method, sizeof(e->method));
    cr_test_mp_text(mp, len, "path", e->path, sizeof(e->path));
    cr_test_mp_text(mp, len, "id", e->id, sizeof(e->id));
    cr_test_mp_text(mp, len, "reason", e->reason, sizeof(e->reason));
    e->payload = NULL;
    e->payload_len = 0;
    if (cr_mp_map_get(mp, len, "payload", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
        it.type == MSGPACK_OBJECT_STR && (e->payload = malloc(it.bytes.len + 1)) != NULL) {
        memcpy(e->payload, it.bytes.base, it.bytes.len);
        e->payload_len = it.bytes.len;
    } else if (cr_mp_map_get(mp, len, "payload_b64", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
               it.type == MSGPACK_OBJECT_STR) {
        cr_buf_t raw;
        cr_buf_init(&raw, 1 << 20);
        if (cr_base64url_decode(&raw, it.bytes.base, it.bytes.len) == 0 && (e->payload = malloc(raw.len + 1)) != NULL) {
            memcpy(e->payload, raw.base, raw.len);
            e->payload_len = raw.len;
        }
        cr_buf_free(&raw);
    }
    if (e->payload == NULL && (e->payload = malloc(1)) != NULL)
        e->payload_len = 0;
    if (e->payload != NULL)
        e->payload[e->payload_len] = '\0';
}

int cr_test_fake_push_entries(cr_test_fake_push_t *fp, long long since, const char *provider, cr_test_fake_push_entry_t **out,
                              size_t *n)
{
    char path[128];
    cr_test_resp_t r = {0};
    cr_buf_t mp;
    cr_span_t arr;
    cr_mp_item_t it;
    const char *p, *end;
    int rc = -1;
    *out = NULL;
    *n = 0;
    snprintf(path, sizeof(path), "/_fake/log?since=%lld&limit=10000%s%s", since, provider != NULL ? "&provider=" : "",
             provider != NULL ? provider : "");
    cr_buf_init(&mp, 256 << 20);
    if (cr_test_fake_push_control(fp, &r, "GET", path, NULL) != 0 || r.status != 200 ||
        cr_json_to_msgpack(&mp, r.body, r.body_len, NULL) != 0 || cr_mp_map_get(mp.base, mp.len, "entries", &arr) != 0 ||
        cr_mp_read(arr.base, arr.base + arr.len, &it) == 0 || it.type != MSGPACK_OBJECT_ARRAY) {
        fprintf(stderr, "fake_push: GET %s failed (status %ld)\n", path, r.status);
        goto done;
    }
    if (it.count > 0 && (*out = calloc(it.count, sizeof(**out))) == NULL)
        goto done;
    end = arr.base + arr.len;
    p = arr.base + cr_mp_read(arr.base, end, &it);
    for (uint32_t i = 0; i < it.count; ++i) {
        const char *next = cr_mp_skip(p, end);
        cr_test_fake_push_entry_t *e = &(*out)[i];
        if ((e->_mp = malloc((size_t)(next - p))) == NULL) {
            cr_test_fake_push_entries_free(*out, i);
            *out = NULL;
            goto done;
        }
        memcpy(e->_mp, p, (size_t)(next - p));
        e->_mp_len = (size_t)(next - p);
        entry_fill(e);
        p = next;
    }
    *n = it.count;
    rc = 0;
done:
    cr_buf_free(&mp);
    cr_test_resp_free(&r);
    return rc;
}

void cr_test_fake_push_entries_free(cr_test_fake_push_entry_t *entries, size_t n)
{
    for (size_t i = 0; entries != NULL && i < n; ++i) {
        free(entries[i].payload);
        free(entries[i]._mp);
    }
    free(entries);
}

const char *cr_test_fake_push_entry_text(const cr_test_fake_push_entry_t *e, const char *path, char *out, size_t outlen)
{
    return cr_test_mp_text(e->_mp, e->_mp_len, path, out, outlen);
}

int cr_test_fake_push_script(cr_test_fake_push_t *fp, const char *provider, const char *match, int status,
                             const char *reason, long times, long retry_after, long long timestamp_ms)
{
    cr_buf_t b;
    cr_test_resp_t r = {0};
    int rc;
    cr_buf_init(&b, 4096);
    cr_buf_append(&b, "{\"provider\":", 12);
    json_str(&b, provider);
    cr_buf_append(&b, ",\"match\":", 9);
    json_str(&b, match != NULL ? match : "*");
    cr_buf_appendf(&b, ",\"status\":%d,\"times\":%ld", status, times);
    if (reason != NULL) {
        cr_buf_append(&b, ",\"reason\":", 10);
        json_str(&b, reason);
    }
    if (retry_after >= 0)
        cr_buf_appendf(&b, ",\"retry_after\":%ld", retry_after);
    if (timestamp_ms >= 0)
        cr_buf_appendf(&b, ",\"timestamp\":%lld", timestamp_ms);
    cr_buf_append(&b, "}", 2); /* with the NUL */
    rc = cr_test_fake_push_control(fp, &r, "POST", "/_fake/script", b.base) == 0 && r.status == 200 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "fake_push: POST /_fake/script %s -> %ld %s\n", b.base, r.status, r.body != NULL ? r.body : "");
    cr_test_resp_free(&r);
    cr_buf_free(&b);
    return rc;
}

static int subscribe(cr_test_fake_push_t *fp, cr_test_webpush_sub_t *out, const char *body)
{
    cr_test_resp_t r = {0};
    int rc = -1;
    memset(out, 0, sizeof(*out));
    if (cr_test_fake_push_control(fp, &r, "POST", "/_fake/webpush/subscribe", body) == 0 && r.status == 201) {
        cr_test_json_text(&r, "id", out->id, sizeof(out->id));
        cr_test_json_text(&r, "endpoint", out->endpoint, sizeof(out->endpoint));
        cr_test_json_text(&r, "keys.p256dh", out->p256dh, sizeof(out->p256dh));
        cr_test_json_text(&r, "keys.auth", out->auth, sizeof(out->auth));
        rc = out->id[0] != '\0' && out->p256dh[0] != '\0' && out->auth[0] != '\0' ? 0 : -1;
    }
    if (rc != 0)
        fprintf(stderr, "fake_push: POST /_fake/webpush/subscribe -> %ld %s\n", r.status, r.body != NULL ? r.body : "");
    cr_test_resp_free(&r);
    return rc;
}

int cr_test_fake_push_subscribe(cr_test_fake_push_t *fp, cr_test_webpush_sub_t *out, const char *application_server_key)
{
    char body[256];
    if (application_server_key != NULL)
        snprintf(body, sizeof(body), "{\"application_server_key\":\"%s\"}", application_server_key);
    else
        snprintf(body, sizeof(body), "{}");
    return subscribe(fp, out, body);
}

int cr_test_fake_push_subscribe_keys(cr_test_fake_push_t *fp, cr_test_webpush_sub_t *out, const char *ua_private,
                                     const char *auth)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"ua_private\":\"%s\",\"auth\":\"%s\"}", ua_private, auth);
    return subscribe(fp, out, body);
}

int cr_test_fake_push_unsubscribe(cr_test_fake_push_t *fp, const char *id)
{
    char body[160];
    cr_test_resp_t r = {0};
    int rc;
    snprintf(body, sizeof(body), "{\"id\":\"%s\"}", id);
    rc = cr_test_fake_push_control(fp, &r, "POST", "/_fake/unsubscribe", body) == 0 && r.status == 200 ? 0 : -1;
    cr_test_resp_free(&r);
    return rc;
}

int cr_test_fake_push_reset(cr_test_fake_push_t *fp)
{
    cr_test_resp_t r = {0};
    int rc = cr_test_fake_push_control(fp, &r, "POST", "/_fake/reset", NULL) == 0 && r.status == 200 ? 0 : -1;
    cr_test_resp_free(&r);
    return rc;
}
