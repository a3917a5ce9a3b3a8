/* pair.c — the team key in <home>/team.key and pairing codes from the relay, turned into the link a phone opens. */
#include "pair.h"
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/http.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "corral/fs.h"
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st_host_pair_t {
    cr_http_t *http;
    char url[480]; /* the relay, no trailing "/" */
    char *token;                    /* sodium_malloc'd */
    char *ca_file;                  /* NULL: the system's */
    char *home;
};

typedef struct st_pair_call_t {
    host_pair_t *p;
    host_pair_cb cb;
    void *data;
} pair_call_t;

enum { MP_UINT = 2, MP_STR = 5, MP_MAP = 7 };

int host_pair_team_key(unsigned char out[HOST_PAIR_KEY_LEN], const char *home)
{
    char path[4096];
    ssize_t n;
    int fd;
    if ((size_t)snprintf(path, sizeof(path), "%s/team.key", home) >= sizeof(path))
        return cr_error_set(CR_ECONFIG, "home", "the path of team.key is too long");
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
        randombytes_buf(out, HOST_PAIR_KEY_LEN);
        n = write(fd, out, HOST_PAIR_KEY_LEN);
        if (n != HOST_PAIR_KEY_LEN || fsync(fd) != 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(path);
            sodium_memzero(out, HOST_PAIR_KEY_LEN);
            return cr_error_set(CR_EIO, "home", "cannot write the team key %s: %s", path, strerror(e));
        }
        close(fd);
        cr_log(CR_LOG_INFO, "pair: made a new team key in %s", path);
        return 0;
    }
    if (errno != EEXIST)
        return cr_error_set(CR_EIO, "home", "cannot create the team key %s: %s", path, strerror(errno));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return cr_error_set(CR_EIO, "home", "cannot read the team key %s: %s", path, strerror(errno));
    {
        unsigned char extra;
        n = read(fd, out, HOST_PAIR_KEY_LEN);
        if (n == HOST_PAIR_KEY_LEN && read(fd, &extra, 1) != 0)
            n = -2;
    }
    close(fd);
    if (n != HOST_PAIR_KEY_LEN) {
        sodium_memzero(out, HOST_PAIR_KEY_LEN);
        return cr_error_set(CR_ECONFIG, "home", "the team key %s is not %d bytes; remove it to make a new one (paired phones "
                            "must then be paired again)", path, HOST_PAIR_KEY_LEN);
    }
    return 0;
}

int host_team_name_save(const char *home, const char *team)
{
    char cur[128];
    if (team == NULL || !cr_id_valid(team, strlen(team)))
        return cr_error_set(CR_EBODY, "team", "not a team name");
    if (host_team_name_load(home, cur, sizeof(cur)) == 0 && strcmp(cur, team) == 0)
        return 0;
    return cr_write_atomic(home, "team.name", team, strlen(team), 0600, 1);
}

int host_team_name_load(const char *home, char *out, size_t cap)
{
    char path[4096];
    FILE *fp;
    out[0] = '\0';
    if ((size_t)snprintf(path, sizeof(path), "%s/team.name", home) >= sizeof(path) || (fp = fopen(path, "re")) == NULL)
        return cr_error_set(CR_ENOTFOUND, "home", "this host has not learned its team yet");
    if (fgets(out, (int)cap, fp) == NULL)
        out[0] = '\0';
    fclose(fp);
    out[strcspn(out, "\r\n")] = '\0';
    if (!cr_id_valid(out, strlen(out))) {
        out[0] = '\0';
        return cr_error_set(CR_ENOTFOUND, "home", "%s does not hold a team name", path);
    }
    return 0;
}

int host_team_seal_keys(const char *home, unsigned char key[HOST_PAIR_KEY_LEN], char *team, size_t cap)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/team.key", home) >= sizeof(path) || access(path, F_OK) != 0 ||
        host_team_name_load(home, team, cap) != 0)
        return 0;
    return host_pair_team_key(key, home) == 0 ? 1 : -1;
}

int host_pair_new(host_pair_t **out, uv_loop_t *loop, const host_pair_config_t *conf)
{
    host_pair_t *p;
    size_t ulen, tlen;
    *out = NULL;
    if (conf->relay_url == NULL || conf->relay_url[0] == '\0' || conf->token == NULL || conf->token[0] == '\0')
        return cr_error_set(CR_ECONFIG, "relay.url", "no relay configured: run corral up --relay URL --token TOKEN");
    if (strncmp(conf->relay_url, "http://", 7) != 0 && strncmp(conf->relay_url, "https://", 8) != 0)
        return cr_error_set(CR_ECONFIG, "relay.url", "relay.url must start with http:// or https://");
    ulen = strlen(conf->relay_url);
    while (ulen > 0 && conf->relay_url[ulen - 1] == '/')
        --ulen;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    if (ulen >= sizeof(p->url)) {
        free(p);
        return cr_error_set(CR_ECONFIG, "relay.url", "relay.url is too long");
    }
    memcpy(p->url, conf->relay_url, ulen);
    tlen = strlen(conf->token);
    p->token = sodium_malloc(tlen + 1);
    p->home = strdup(conf->home != NULL ? conf->home : ".");
    p->ca_file = conf->ca_file != NULL && conf->ca_file[0] != '\0' ? strdup(conf->ca_file) : NULL;
    if (p->token == NULL || p->home == NULL || (conf->ca_file != NULL && conf->ca_file[0] != '\0' && p->ca_file == NULL)) {
        host_pair_free(p);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }
    memcpy(p->token, conf->token, tlen + 1);
    if (cr_http_new(&p->http, loop) != 0) {
        host_pair_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

/* A str at key of the map mp into out (NUL-terminated); 0, or -1 when absent, not a str or too long. */
static int get_str(char *out, size_t outlen, const char *mp, size_t len, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MP_STR ||
        it.bytes.len >= outlen)
        return -1;
    memcpy(out, it.bytes.base, it.bytes.len);
    out[it.bytes.len] = '\0';
    return 0;
}

/* Whether s is a code we put in a link: [0-9A-Za-z-], 1..HOST_PAIR_CODE_MAX. */
static int code_fine(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HOST_PAIR_CODE_MAX)
        return 0;
    for (; *s != '\0'; ++s)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '-'))
            return 0;
    return 1;
}

static void on_answer(const cr_http_answer_t *a, void *data)
{
    pair_call_t *c = data;
    host_pair_t *p = c->p;
    host_pair_result_t r;
    cr_buf_t mp;
    char msg[512], base[512];
    unsigned char key[HOST_PAIR_KEY_LEN];
    char k64[64];
    memset(&r, 0, sizeof(r));
    r.status = a->status;
    r.message = msg;
    cr_buf_init(&mp, 4 * HOST_PAIR_ANSWER_MAX);
    if (a->status == 0) {
        snprintf(msg, sizeof(msg), "the relay %.200s did not answer: %.200s", p->url, a->error != NULL ? a->error : "?");
        goto done;
    }
    if (cr_json_to_msgpack(&mp, a->body, a->body_len, NULL) != 0 || mp.len == 0) {
        snprintf(msg, sizeof(msg), "the relay %.200s answered %ld with a body that is not JSON", p->url, a->status);
        goto done;
    }
    if (a->status != 200) {
        cr_span_t e;
        char m[300];
        if (cr_mp_map_get(mp.base, mp.len, "error", &e) == 0) {
            if (get_str(m, sizeof(m), e.base, e.len, "message") == 0) {
                snprintf(msg, sizeof(msg), "the relay refused: %s (HTTP %ld)", m, a->status);
                goto done;
            }
        }
        snprintf(msg, sizeof(msg), "the relay refused with HTTP %ld", a->status);
        goto done;
    }
    if (get_str(r.code, sizeof(r.code), mp.base, mp.len, "code") != 0 || !code_fine(r.code)) {
        snprintf(msg, sizeof(msg), "the relay's answer has no valid pairing code");
        goto done;
    }
    {
        cr_span_t v;
        cr_mp_item_t it;
        if (cr_mp_map_get(mp.base, mp.len, "expires", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
            it.type == MP_UINT)
            r.expires = it.u;
    }
    /* where phones reach the relay: its own idea (http.public_url or how we reached it), else our relay.url */
    if (get_str(base, sizeof(base), mp.base, mp.len, "url") != 0 ||
        (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) || strpbrk(base, "#?\"' <>") != NULL)
        snprintf(base, sizeof(base), "%s", p->url);
    for (size_t n = strlen(base); n > 0 && base[n - 1] == '/'; --n)
        base[n - 1] = '\0';
    if (host_pair_team_key(key, p->home) != 0) {
        snprintf(msg, sizeof(msg), "%s", cr_error_last()->message);
        goto done;
    }
    cr_base64url_encode(k64, key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    if ((size_t)snprintf(r.url, sizeof(r.url), "%s/#pair=%s&k=%s", base, r.code, k64) >= sizeof(r.url)) {
        snprintf(msg, sizeof(msg), "the pairing link is too long");
        goto done;
    }
    sodium_memzero(k64, sizeof(k64));
    {
        char team[128];
        if (get_str(team, sizeof(team), mp.base, mp.len, "team") == 0 && host_team_name_save(p->home, team) != 0)
            cr_log(CR_LOG_WARN, "pair: cannot keep the team name: %s", cr_error_last()->message);
    }
    r.ok = 1;
    r.message = NULL;
    cr_log(CR_LOG_INFO, "pair: the relay made a pairing code, valid until %llu", (unsigned long long)r.expires);
done:
    if (!r.ok)
        cr_log(CR_LOG_WARN, "pair: %s", msg);
    c->cb(&r, c->data);
    sodium_memzero(&r, sizeof(r));
    sodium_memzero(k64, sizeof(k64));
    if (mp.base != NULL)
        sodium_memzero(mp.base, mp.len);
    cr_buf_free(&mp);
    free(c);
}

int host_pair_request(host_pair_t *p, host_pair_cb cb, void *data, uint64_t *out_id)
{
    cr_http_req_t req;
    char auth[1024];
    pair_call_t *c;
    unsigned char key[HOST_PAIR_KEY_LEN];
    int rc;
    /* make the key now, so a bad team.key is reported before a code is spent */
    if ((rc = host_pair_team_key(key, p->home)) != 0)
        return rc;
    sodium_memzero(key, sizeof(key));
    if (strlen(p->token) + 8 > sizeof(auth))
        return cr_error_set(CR_ECONFIG, "relay.token", "relay.token is too long");
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    c->p = p;
    c->cb = cb;
    c->data = data;
    memset(&req, 0, sizeof(req));
    snprintf(req.url, sizeof(req.url), "%s/v1/host/pair", p->url);
    req.method = "POST";
    req.ca_file = p->ca_file;
    req.body_max = HOST_PAIR_ANSWER_MAX;
    cr_buf_init(&req.body, 16);
    snprintf(auth, sizeof(auth), "Bearer %s", p->token);
    rc = cr_http_req_header(&req, "Authorization", auth);
    sodium_memzero(auth, sizeof(auth));
    if (rc != 0 || cr_http_req_header(&req, "Accept", "application/json") != 0 ||
        cr_http_req_header(&req, "Content-Type", "application/json") != 0 || cr_buf_append(&req.body, "{}", 2) != 0) {
        cr_http_req_free(&req);
        free(c);
        return cr_error_set(CR_ECONFIG, "relay.token", "relay.token cannot go in a header");
    }
    if (cr_http_send(p->http, &req, on_answer, c, out_id) != 0) {
        cr_http_req_free(&req);
        free(c);
        return -1;
    }
    return 0;
}

void host_pair_cancel(host_pair_t *p, uint64_t id)
{
    cr_http_cancel(p->http, id);
}

void host_pair_free(host_pair_t *p)
{
    if (p == NULL)
        return;
    if (p->http != NULL)
        cr_http_close(p->http, NULL, NULL);
    if (p->token != NULL)
        sodium_free(p->token);
    free(p->ca_file);
    free(p->home);
    free(p);
}
