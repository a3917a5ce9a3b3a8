/* push_queue.c — the push worker every relay runs: jobs from cr:pushq:<n> through the consumer group "push", one
 * notification per matching device, outcomes recorded per device, retries delayed in cr:pushretry:<n>, the jobs of a
 * relay that died taken over with XAUTOCLAIM (DESIGN.md §5, §6).
 *
 * A job is one event to push: {t: team, id: its stream id, host, e: the envelope, n: the session's name} and, for a
 * retry, {dev: the one device, try: the attempt}. A job is acknowledged (XACK + XDEL) once every device it reaches
 * has a final outcome: sent, dead (the device is deleted), failed, or moved to a retry of its own. Each device done is
 * noted in cr:pushdone:<n>:<job> first, so a job taken over from a dead relay skips the devices already served. */
#include "push_queue.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "push.h"
#include "push_apns.h"
#include "push_fcm.h"
#include "push_http.h"
#include "push_jwt.h"
#include "push_note.h"
#include "push_webpush.h"
#include "webpush.h"
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char relay_lua_push_due[], relay_lua_push_dead[];
extern const size_t relay_lua_push_due_len, relay_lua_push_dead_len;
static relay_script_t due_script = {.name = "push_due"}, dead_script = {.name = "push_dead"};

#define GROUP "push"
#define SHARDS_MAX 64
#define FETCH_COUNT 64        /* jobs per XREADGROUP */
#define TICK_MS 100           /* how often due retries are moved onto the queues */
#define POLL_MS 1000          /* a fetch without a notice, in case one was missed */
#define CLAIM_EVERY_MS 2000   /* how often each queue is checked for jobs of dead relays */
#define DONE_TTL_S 86400
#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 300000

typedef struct st_push_t push_t;

typedef struct st_job_t {
    push_t *push;
    unsigned shard;
    int reclaimed;
    char entry[48];       /* its id in cr:pushq:<n> */
    char team[65], id[48], host[65], name[129], dev_only[65];
    unsigned attempt;     /* 0 for the first */
    char *e;              /* the envelope (copy) */
    size_t elen;
    cr_event_t ev;        /* e decoded (points into e) */
    relay_push_note_t note;
    size_t pending;       /* sends not finished */
    char **done;          /* device ids served before a takeover */
    size_t ndone;
} job_t;

typedef struct st_send_t {
    job_t *job;
    relay_push_device_t dev;
    char *rec;            /* the device record as read (push_dead.lua compares it) */
    size_t reclen;
    struct st_send_t *next; /* waiting for an FCM access token */
} send_t;

struct st_push_t {
    relay_t *relay;
    relay_push_http_t *http;
    unsigned shards, retry_max;
    uint64_t claim_idle_ms;
    uv_timer_t tick;
    int tick_on, ready, stopping;
    uint64_t last_poll_ms, last_claim_ms;
    uint8_t fetching[SHARDS_MAX], again[SHARDS_MAX], claiming[SHARDS_MAX];
    size_t jobs;
    /* providers; their settings are config strings (alive as long as the process) */
    int apns_on, fcm_on, vapid_ok;
    relay_jwt_key_t apns_key;
    relay_apns_auth_t apns_auth;
    const char *apns_topic, *apns_url, *apns_ca;
    relay_service_account_t fcm_sa;
    relay_fcm_token_t fcm_token;
    const char *fcm_url, *fcm_token_url, *fcm_ca;
    send_t *fcm_waiting, **fcm_waiting_tail;
    int fcm_token_pending;
    relay_vapid_t vapid;
    const char *webpush_subject, *webpush_ca;
    /* figures */
    uint64_t outcomes[4][4]; /* [provider][verdict] */
    uint64_t jobs_done, jobs_taken_over, retries, skipped, dead_deleted;
};

static push_t *push_of(relay_t *relay)
{
    return relay->push;
}

unsigned relay_push_shard(const relay_t *relay, const char *team)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    unsigned n = relay->push != NULL ? relay->push->shards : 1;
    for (const unsigned char *p = (const unsigned char *)team; *p != '\0'; ++p)
        h = (h ^ *p) * 16777619u;
    return n > 1 ? h % n : 0;
}

static const char *provider_name(relay_push_provider_t p)
{
    static const char *const names[] = {"none", "apns", "fcm", "webpush"};
    return (unsigned)p < 4 ? names[p] : "none";
}

static const char *verdict_name(relay_push_verdict_t v)
{
    static const char *const names[] = {"sent", "retry", "dead", "failed"};
    return (unsigned)v < 4 ? names[v] : "failed";
}

/* ---- jobs: taking, finishing ---------------------------------------------------------------------------------- */

static void fetch(push_t *p, unsigned shard);
static void job_load(job_t *job);

static void job_free(job_t *job)
{
    for (size_t i = 0; i < job->ndone; ++i)
        free(job->done[i]);
    free(job->done);
    free(job->e);
    --job->push->jobs;
    free(job);
}

/* Every device of the job has its outcome: the job is done (what was noted for it goes too). */
static void job_finish(job_t *job)
{
    relay_t *relay = job->push->relay;
    char q[32], done[96];
    snprintf(q, sizeof(q), "cr:pushq:%u", job->shard);
    snprintf(done, sizeof(done), "cr:pushdone:%u:%s", job->shard, job->entry);
    relay_rdb_commandf(&relay->rdb, NULL, NULL, "XACK %s " GROUP " %s", q, job->entry);
    relay_rdb_commandf(&relay->rdb, NULL, NULL, "XDEL %s %s", q, job->entry);
    relay_rdb_commandf(&relay->rdb, NULL, NULL, "DEL %s", done);
    ++job->push->jobs_done;
    job_free(job);
}

/* Reads one queue entry [id, [field, value, ...]] into a job. Returns NULL for an entry that is not a job (then it is
 * acknowledged and dropped here). */
static job_t *job_from_entry(push_t *p, unsigned shard, const redisReply *ent, int reclaimed)
{
    const redisReply *id, *f;
    job_t *job;
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || (id = ent->element[0])->type != REDIS_REPLY_STRING ||
        id->len >= sizeof(job->entry))
        return NULL;
    if ((job = calloc(1, sizeof(*job))) == NULL)
        return NULL;
    ++p->jobs;
    job->push = p;
    job->shard = shard;
    job->reclaimed = reclaimed;
    memcpy(job->entry, id->str, id->len);
    f = ent->element[1];
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        char *dst = NULL;
        size_t cap = 0;
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (k->len == 1 && k->str[0] == 't')
            dst = job->team, cap = sizeof(job->team);
        else if (k->len == 2 && memcmp(k->str, "id", 2) == 0)
            dst = job->id, cap = sizeof(job->id);
        else if (k->len == 4 && memcmp(k->str, "host", 4) == 0)
            dst = job->host, cap = sizeof(job->host);
        else if (k->len == 1 && k->str[0] == 'n')
            dst = job->name, cap = sizeof(job->name);
        else if (k->len == 3 && memcmp(k->str, "dev", 3) == 0)
            dst = job->dev_only, cap = sizeof(job->dev_only);
        else if (k->len == 3 && memcmp(k->str, "try", 3) == 0)
            job->attempt = (unsigned)strtoul(v->str, NULL, 10);
        else if (k->len == 1 && k->str[0] == 'e' && job->e == NULL && (job->e = malloc(v->len + 1)) != NULL)
            memcpy(job->e, v->str, v->len), job->elen = v->len;
        if (dst != NULL && v->len < cap)
            memcpy(dst, v->str, v->len), dst[v->len] = '\0';
    }
    if (job->team[0] == '\0' || job->id[0] == '\0' || job->e == NULL) {
        cr_log(CR_LOG_WARN, "push: job %s of cr:pushq:%u is not a job; dropped", job->entry, shard);
        job_finish(job);
        return NULL;
    }
    return job;
}

/* Starts the jobs of an XREADGROUP / XAUTOCLAIM entry list. */
static void take_entries(push_t *p, unsigned shard, const redisReply *entries, int reclaimed)
{
    for (size_t i = 0; i < entries->elements; ++i) {
        job_t *job = job_from_entry(p, shard, entries->element[i], reclaimed);
        if (job != NULL)
            job_load(job);
    }
}

typedef struct st_shard_ref_t {
    push_t *p;
    unsigned shard;
} shard_ref_t;

static shard_ref_t *shard_ref(push_t *p, unsigned shard)
{
    shard_ref_t *r = malloc(sizeof(*r));
    CR_ASSERT(r != NULL);
    r->p = p, r->shard = shard;
    return r;
}

static void on_fetched(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    shard_ref_t *ref = data;
    push_t *p = ref->p;
    unsigned shard = ref->shard;
    size_t n = 0;
    free(ref);
    p->fetching[shard] = 0;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0) /* the queue went (a flushed Redis): make it again */
            relay_rdb_commandf(rdb, NULL, NULL, "XGROUP CREATE cr:pushq:%u " GROUP " 0 MKSTREAM", shard);
        else
            cr_log(CR_LOG_WARN, "push: reading cr:pushq:%u failed: %s", shard, reply->str);
        return;
    }
    /* [[key, [entry, ...]]] or nil when there is nothing */
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = reply->element[0]->element[1];
        n = entries->elements;
        if (!p->stopping)
            take_entries(p, shard, entries, 0);
    }
    if (reply != NULL && !p->stopping && (n >= FETCH_COUNT || p->again[shard]))
        fetch(p, shard);
}

/* Takes new jobs of one queue (one read at a time per queue; a notice meanwhile reads again after it). */
static void fetch(push_t *p, unsigned shard)
{
    relay_t *relay = p->relay;
    if (!p->ready || p->stopping)
        return;
    if (p->fetching[shard]) {
        p->again[shard] = 1;
        return;
    }
    p->again[shard] = 0;
    shard_ref_t *ref = shard_ref(p, shard);
    if (relay_rdb_commandf(&relay->rdb, on_fetched, ref, "XREADGROUP GROUP " GROUP " %s COUNT %d STREAMS cr:pushq:%u >",
                           relay->relay_id, FETCH_COUNT, shard) != 0) {
        free(ref);
        return;
    }
    p->fetching[shard] = 1;
}

static void on_claimed(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    shard_ref_t *ref = data;
    push_t *p = ref->p;
    unsigned shard = ref->shard;
    free(ref);
    p->claiming[shard] = 0;
    /* XAUTOCLAIM: [next cursor, [entry, ...], [deleted ids]] (Redis 7) */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY || p->stopping)
        return;
    if (reply->element[1]->elements > 0) {
        cr_log(CR_LOG_INFO, "push: took over %zu job(s) of cr:pushq:%u from a relay that stopped working on them",
               reply->element[1]->elements, shard);
        p->jobs_taken_over += reply->element[1]->elements;
        take_entries(p, shard, reply->element[1], 1);
    }
    (void)rdb;
}

/* Takes over the jobs another relay took and has not finished for push.claim_idle_ms. */
static void claim(push_t *p, unsigned shard)
{
    relay_t *relay = p->relay;
    shard_ref_t *ref;
    if (p->claiming[shard])
        return;
    ref = shard_ref(p, shard);
    if (relay_rdb_commandf(&relay->rdb, on_claimed, ref, "XAUTOCLAIM cr:pushq:%u " GROUP " %s %" PRIu64 " 0-0 COUNT %d",
                           shard, relay->relay_id, p->claim_idle_ms, FETCH_COUNT) != 0) {
        free(ref);
        return;
    }
    p->claiming[shard] = 1;
}

static void on_tick(uv_timer_t *t)
{
    push_t *p = t->data;
    relay_t *relay = p->relay;
    uint64_t now = cr_now_ms();
    if (!p->ready || p->stopping)
        return;
    for (unsigned n = 0; n < p->shards; ++n) {
        char retry[32], q[32], now_s[24], shard_s[12];
        const char *argv[] = {retry, q, now_s, "256", shard_s};
        size_t lens[5];
        snprintf(retry, sizeof(retry), "cr:pushretry:%u", n);
        snprintf(q, sizeof(q), "cr:pushq:%u", n);
        snprintf(now_s, sizeof(now_s), "%" PRIu64, now);
        snprintf(shard_s, sizeof(shard_s), "%u", n);
        for (int i = 0; i < 5; ++i)
            lens[i] = strlen(argv[i]);
        relay_rdb_script(&relay->rdb, &due_script, NULL, NULL, 2, 5, argv, lens);
    }
    if (now - p->last_poll_ms >= POLL_MS) {
        p->last_poll_ms = now;
        for (unsigned n = 0; n < p->shards; ++n)
            fetch(p, n);
    }
    if (now - p->last_claim_ms >= CLAIM_EVERY_MS) {
        p->last_claim_ms = now;
        for (unsigned n = 0; n < p->shards; ++n)
            claim(p, n);
    }
}

/* ---- devices ------------------------------------------------------------------------------------------------- */

static void send_start(send_t *s);

static int is_done(const job_t *job, const char *dev)
{
    for (size_t i = 0; i < job->ndone; ++i)
        if (strcmp(job->done[i], dev) == 0)
            return 1;
    return 0;
}

/* Starts a send to one device of the job if its filters and this relay's providers allow. Returns 1 when started. */
static int consider_device(job_t *job, const char *dev_id, size_t dev_len, const char *rec, size_t reclen)
{
    push_t *p = job->push;
    send_t *s;
    relay_push_filters_t filters;
    if (dev_len == 0 || dev_len >= sizeof(s->dev.id))
        return 0;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return 0;
    if (relay_push_device_parse(&s->dev, &filters, rec, reclen) != 0) {
        cr_log(CR_LOG_WARN, "push: device %.*s of team %s has a record push cannot read (%s); skipped", (int)dev_len,
               dev_id, job->team, cr_error_last()->message);
        goto skip;
    }
    if (is_done(job, s->dev.id) ||
        !relay_push_filter_match(&filters, (cr_span_t){job->host, strlen(job->host)}, job->ev.idn, job->ev.pri, job->ev.sid))
        goto skip;
    if ((s->dev.provider == RELAY_PUSH_APNS && !p->apns_on) || (s->dev.provider == RELAY_PUSH_FCM && !p->fcm_on) ||
        (s->dev.provider == RELAY_PUSH_WEBPUSH && !p->vapid_ok) || s->dev.provider == RELAY_PUSH_NONE) {
        if (s->dev.provider != RELAY_PUSH_NONE)
            ++p->skipped; /* a provider this relay has no credentials for */
        goto skip;
    }
    if ((s->rec = malloc(reclen)) == NULL)
        goto skip;
    memcpy(s->rec, rec, reclen);
    s->reclen = reclen;
    s->job = job;
    ++job->pending;
    send_start(s);
    return 1;
skip:
    free(s);
    return 0;
}

static void on_devices(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    job_t *job = data;
    push_t *p = job->push;
    const char *name = job->name[0] != '\0' ? job->name : NULL;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR || p->stopping) {
        /* left pending in Redis: taken over later (by this relay too) */
        job_free(job);
        return;
    }
    if (cr_event_decode(&job->ev, job->e, job->elen, NULL) != 0 ||
        relay_push_note_from_decoded(&job->note, &job->ev, job->id, job->host, name, (int64_t)(cr_now_ms() / 1000)) != 0) {
        cr_log(CR_LOG_WARN, "push: job %s (event %s of team %s) has an envelope push cannot read: %s; dropped", job->entry,
               job->id, job->team, cr_error_last()->message);
        job_finish(job);
        return;
    }
    ++job->pending; /* held while the sends start: one that finishes at once must not finish the job */
    if (job->dev_only[0] != '\0') {
        if (reply->type == REDIS_REPLY_STRING)
            consider_device(job, job->dev_only, strlen(job->dev_only), reply->str, reply->len);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const redisReply *k = reply->element[i], *v = reply->element[i + 1];
            if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING)
                consider_device(job, k->str, k->len, v->str, v->len);
        }
    }
    if (--job->pending == 0)
        job_finish(job);
    (void)rdb;
}

static void read_devices(job_t *job)
{
    relay_t *relay = job->push->relay;
    int rc;
    if (job->dev_only[0] != '\0')
        rc = relay_rdb_commandf(&relay->rdb, on_devices, job, "HGET cr:{%s}:dev %s", job->team, job->dev_only);
    else
        rc = relay_rdb_commandf(&relay->rdb, on_devices, job, "HGETALL cr:{%s}:dev", job->team);
    if (rc != 0)
        job_free(job); /* Redis is away: the job stays pending there */
}

static void on_done_set(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    job_t *job = data;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        job_free(job);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 && (job->done = calloc(reply->elements, sizeof(char *))) != NULL) {
        for (size_t i = 0; i < reply->elements; ++i)
            if (reply->element[i]->type == REDIS_REPLY_STRING && (job->done[job->ndone] = strdup(reply->element[i]->str)) != NULL)
                ++job->ndone;
    }
    read_devices(job);
    (void)rdb;
}

static void job_load(job_t *job)
{
    relay_t *relay = job->push->relay;
    if (!job->reclaimed) {
        read_devices(job);
        return;
    }
    if (relay_rdb_commandf(&relay->rdb, on_done_set, job, "SMEMBERS cr:pushdone:%u:%s", job->shard, job->entry) != 0)
        job_free(job);
}

/* ---- outcomes ------------------------------------------------------------------------------------------------- */

static void send_free(send_t *s)
{
    free(s->rec);
    free(s);
}

/* Writes the retry member msgpack [t, id, host, e, n, dev, try]. Returns 0 or -1. */
static int retry_member(cr_buf_t *b, const send_t *s, unsigned attempt)
{
    const job_t *j = s->job;
    char tries[12];
    snprintf(tries, sizeof(tries), "%u", attempt);
    return cr_mpw_array(b, 7) || cr_mpw_str(b, j->team, strlen(j->team)) || cr_mpw_str(b, j->id, strlen(j->id)) ||
           cr_mpw_str(b, j->host, strlen(j->host)) || cr_mpw_str(b, j->e, j->elen) || cr_mpw_str(b, j->name, strlen(j->name)) ||
           cr_mpw_str(b, s->dev.id, strlen(s->dev.id)) || cr_mpw_str(b, tries, strlen(tries))
               ? -1
               : 0;
}

/* How long until the next attempt: what the provider asked for, else exponential backoff with full jitter. */
static uint64_t retry_delay_ms(unsigned attempt, int64_t asked_ms)
{
    uint64_t cap = BACKOFF_BASE_MS;
    if (asked_ms >= 0)
        return (uint64_t)asked_ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : (uint64_t)asked_ms;
    for (unsigned i = 0; i < attempt && cap < BACKOFF_MAX_MS; ++i)
        cap *= 2;
    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    return cap / 2 + randombytes_uniform((uint32_t)(cap / 2) + 1);
}

/* Records the outcome of one send, then lets its job go on. */
static void send_done(send_t *s, const relay_push_outcome_t *o)
{
    job_t *job = s->job;
    push_t *p = job->push;
    relay_t *relay = p->relay;
    relay_rdb_t *rdb = &relay->rdb;
    relay_push_verdict_t v = o->verdict;
    uint64_t now = cr_now_ms();
    char st[96], done[96], now_s[24];
    snprintf(st, sizeof(st), "cr:{%s}:devst", job->team);
    snprintf(done, sizeof(done), "cr:pushdone:%u:%s", job->shard, job->entry);
    snprintf(now_s, sizeof(now_s), "%" PRIu64, now);

    if (v == RELAY_PUSH_RETRY && job->attempt + 1 >= p->retry_max)
        v = RELAY_PUSH_FAILED; /* given up */
    ++p->outcomes[s->dev.provider & 3][v];
    cr_log(v == RELAY_PUSH_SENT ? CR_LOG_DEBUG : CR_LOG_INFO, "push: %s to device %s of team %s (event %s, attempt %u): %s%s%s",
           provider_name(s->dev.provider), s->dev.id, job->team, job->id, job->attempt + 1, verdict_name(v),
           o->reason[0] != '\0' ? " " : "", o->reason);
    switch (v) {
    case RELAY_PUSH_SENT:
        relay_rdb_commandf(rdb, NULL, NULL, "HSET %s %s:ok %s", st, s->dev.id, now_s);
        break;
    case RELAY_PUSH_DEAD: {
        char key[96], since[24], created[24];
        const char *argv[] = {key, st, s->dev.id, s->rec, since, created, o->reason, now_s};
        size_t lens[8];
        snprintf(key, sizeof(key), "cr:{%s}:dev", job->team);
        snprintf(since, sizeof(since), "%" PRId64, o->dead_since_ms);
        snprintf(created, sizeof(created), "%" PRIu64, s->dev.created_ms);
        for (int i = 0; i < 8; ++i)
            lens[i] = i == 3 ? s->reclen : strlen(argv[i]); /* the record is msgpack: no NUL to stop at */
        relay_rdb_script(rdb, &dead_script, NULL, NULL, 2, 8, argv, lens);
        ++p->dead_deleted;
        break;
    }
    case RELAY_PUSH_RETRY: {
        cr_buf_t m;
        char q[32];
        uint64_t due = now + retry_delay_ms(job->attempt + 1, o->retry_after_ms);
        cr_buf_init(&m, job->elen + 1024);
        snprintf(q, sizeof(q), "cr:pushretry:%u", job->shard);
        if (retry_member(&m, s, job->attempt + 1) == 0)
            relay_rdb_commandf(rdb, NULL, NULL, "ZADD %s %" PRIu64 " %b", q, due, m.base, m.len);
        cr_buf_free(&m);
        relay_rdb_commandf(rdb, NULL, NULL, "HSET %s %s:err %s %s", st, s->dev.id, o->reason[0] ? o->reason : "retry", now_s);
        ++p->retries;
        break;
    }
    default:
        relay_rdb_commandf(rdb, NULL, NULL, "HSET %s %s:err %s%s %s", st, s->dev.id,
                           job->attempt + 1 >= p->retry_max && o->verdict == RELAY_PUSH_RETRY ? "gave_up:" : "",
                           o->reason[0] ? o->reason : "failed", now_s);
        break;
    }
    relay_rdb_commandf(rdb, NULL, NULL, "SADD %s %s", done, s->dev.id);
    relay_rdb_commandf(rdb, NULL, NULL, "EXPIRE %s %d", done, DONE_TTL_S);
    send_free(s);
    if (--job->pending == 0)
        job_finish(job);
}

/* A send that could not even start (no memory, a request that cannot be built): failed, with why. */
static void send_fail(send_t *s, const char *reason)
{
    relay_push_outcome_t o = {.verdict = RELAY_PUSH_FAILED, .retry_after_ms = -1};
    snprintf(o.reason, sizeof(o.reason), "%s", reason);
    send_done(s, &o);
}

/* ---- providers ------------------------------------------------------------------------------------------------ */

static void on_answer(const relay_push_answer_t *a, void *data)
{
    send_t *s = data;
    push_t *p = s->job->push;
    relay_push_outcome_t o;
    switch (s->dev.provider) {
    case RELAY_PUSH_APNS:
        relay_apns_classify(&o, a);
        if (o.refresh_auth)
            relay_apns_auth_refused(&p->apns_auth, o.reason);
        else if (o.verdict == RELAY_PUSH_SENT)
            relay_apns_auth_accepted(&p->apns_auth);
        break;
    case RELAY_PUSH_FCM:
        relay_fcm_classify(&o, a);
        if (o.refresh_auth)
            relay_fcm_token_free(&p->fcm_token); /* the next send asks for a new one */
        break;
    default:
        relay_webpush_classify(&o, a);
        break;
    }
    send_done(s, &o);
}

static void submit(send_t *s, relay_push_req_t *req)
{
    push_t *p = s->job->push;
    if (relay_push_http_send(p->http, req, on_answer, s) != 0) {
        relay_push_req_free(req);
        relay_push_outcome_t o = {.verdict = RELAY_PUSH_RETRY, .retry_after_ms = -1};
        snprintf(o.reason, sizeof(o.reason), "client_busy");
        send_done(s, &o);
    }
}

static void fcm_flush(push_t *p, int have_token);

static void on_fcm_token(const relay_push_answer_t *a, void *data)
{
    push_t *p = data;
    relay_push_outcome_t o;
    int64_t now_s = (int64_t)(cr_now_ms() / 1000);
    p->fcm_token_pending = 0;
    if (relay_fcm_token_parse(&p->fcm_token, &o, a, now_s) != 0)
        cr_log(CR_LOG_WARN, "push: the FCM token endpoint refused an access token (status %ld): %s", a->status, o.reason);
    fcm_flush(p, relay_fcm_token_valid(&p->fcm_token, now_s));
}

/* Sends what waited for an FCM access token (or fails it over to a retry when there is none). */
static void fcm_flush(push_t *p, int have_token)
{
    send_t *s = p->fcm_waiting;
    p->fcm_waiting = NULL;
    p->fcm_waiting_tail = &p->fcm_waiting;
    while (s != NULL) {
        send_t *next = s->next;
        s->next = NULL;
        if (have_token) {
            send_start(s);
        } else {
            relay_push_outcome_t o = {.verdict = RELAY_PUSH_RETRY, .retry_after_ms = -1};
            snprintf(o.reason, sizeof(o.reason), "fcm_token_unavailable");
            send_done(s, &o);
        }
        s = next;
    }
}

static void send_start(send_t *s)
{
    job_t *job = s->job;
    push_t *p = job->push;
    relay_push_req_t req;
    int64_t now_s = (int64_t)(cr_now_ms() / 1000);
    memset(&req, 0, sizeof(req));
    switch (s->dev.provider) {
    case RELAY_PUSH_APNS: {
        const char *jwt, *base = p->apns_url[0] != '\0' ? p->apns_url
                                 : s->dev.sandbox       ? RELAY_APNS_SANDBOX_URL
                                                        : RELAY_APNS_PRODUCTION_URL;
        if (relay_apns_auth_token(&p->apns_auth, now_s, &jwt) < 0 ||
            relay_apns_request(&req, &job->note, &s->dev, base, p->apns_topic, jwt) != 0)
            goto bad;
        req.ca_file = p->apns_ca;
        break;
    }
    case RELAY_PUSH_FCM:
        if (!relay_fcm_token_valid(&p->fcm_token, now_s)) {
            *p->fcm_waiting_tail = s;
            p->fcm_waiting_tail = &s->next;
            if (!p->fcm_token_pending) {
                relay_push_req_t treq;
                memset(&treq, 0, sizeof(treq));
                if (relay_fcm_token_request(&treq, &p->fcm_sa, p->fcm_token_url, now_s) != 0) {
                    relay_push_req_free(&treq);
                    cr_log(CR_LOG_WARN, "push: cannot make the FCM token request: %s", cr_error_last()->message);
                    fcm_flush(p, 0);
                    return;
                }
                treq.ca_file = p->fcm_ca;
                if (relay_push_http_send(p->http, &treq, on_fcm_token, p) != 0) {
                    relay_push_req_free(&treq);
                    fcm_flush(p, 0);
                    return;
                }
                p->fcm_token_pending = 1;
            }
            return;
        }
        if (relay_fcm_request(&req, &job->note, &s->dev, p->fcm_url, p->fcm_sa.project_id, p->fcm_token.access_token, now_s) != 0)
            goto bad;
        req.ca_file = p->fcm_ca;
        break;
    case RELAY_PUSH_WEBPUSH:
        if (relay_webpush_request(&req, &job->note, &s->dev, &p->vapid, p->webpush_subject, now_s) != 0)
            goto bad;
        req.ca_file = p->webpush_ca;
        break;
    default:
        send_fail(s, "no_provider");
        return;
    }
    submit(s, &req);
    return;
bad:
    relay_push_req_free(&req);
    cr_log(CR_LOG_WARN, "push: cannot make the %s request for device %s of team %s: %s", provider_name(s->dev.provider),
           s->dev.id, job->team, cr_error_last()->message);
    send_fail(s, "bad_request");
}

/* ---- setup ---------------------------------------------------------------------------------------------------- */

static void on_vapid(relay_req_t *rr)
{
    push_t *p = push_of(rr->relay);
    cr_buf_t b;
    if (p == NULL || !p->vapid_ok) {
        relay_respond_error(rr, 404, "not_found", NULL, "this relay has no Web Push key");
        return;
    }
    cr_buf_init(&b, 256);
    if (cr_mpw_map(&b, 1) || CR_MPW_LIT(&b, "public_key") || cr_mpw_str(&b, p->vapid.public_b64, strlen(p->vapid.public_b64)))
        relay_respond_error(rr, 500, "internal", NULL, "cannot write the key");
    else
        relay_respond(rr, 200, b.base, b.len);
    cr_buf_free(&b);
}

static const char *empty_null(const char *s)
{
    return s[0] != '\0' ? s : NULL;
}

int relay_push_init(relay_t *relay)
{
    cr_config_t *conf = relay->conf;
    push_t *p = calloc(1, sizeof(*p));
    const char *s;
    if (p == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    relay->push = p;
    p->relay = relay;
    p->shards = (unsigned)cr_config_int(conf, "push.shards");
    p->retry_max = (unsigned)cr_config_int(conf, "push.retry_max");
    p->claim_idle_ms = (uint64_t)cr_config_int(conf, "push.claim_idle_ms");
    p->fcm_waiting_tail = &p->fcm_waiting;
    if (p->shards > SHARDS_MAX)
        p->shards = SHARDS_MAX;
    if (relay_push_http_new(&p->http, relay->loop) != 0)
        return -1;
    /* APNs */
    p->apns_topic = cr_config_str(conf, "apns.topic");
    p->apns_url = cr_config_str(conf, "apns.url");
    p->apns_ca = empty_null(cr_config_str(conf, "apns.ca_file"));
    if ((s = cr_config_str(conf, "apns.key_file"))[0] != '\0') {
        if (p->apns_topic[0] == '\0')
            return cr_error_set(CR_ECONFIG, "apns.topic", "apns.topic (the app's bundle id) is needed with apns.key_file");
        if (relay_jwt_key_load_file(&p->apns_key, s) != 0 ||
            relay_apns_auth_init(&p->apns_auth, &p->apns_key, cr_config_str(conf, "apns.key_id"), cr_config_str(conf, "apns.team_id")) != 0)
            return -1;
        p->apns_on = 1;
    }
    /* FCM */
    p->fcm_url = cr_config_str(conf, "fcm.url");
    if (p->fcm_url[0] == '\0')
        p->fcm_url = RELAY_FCM_URL;
    p->fcm_token_url = empty_null(cr_config_str(conf, "fcm.token_url"));
    p->fcm_ca = empty_null(cr_config_str(conf, "fcm.ca_file"));
    if ((s = cr_config_str(conf, "fcm.service_account"))[0] != '\0') {
        if (relay_service_account_load_file(&p->fcm_sa, s) != 0)
            return -1;
        p->fcm_on = 1;
    }
    /* Web Push: the key pair always (phones ask for it before subscribing); sending needs a subject */
    p->webpush_subject = cr_config_str(conf, "webpush.subject");
    p->webpush_ca = empty_null(cr_config_str(conf, "webpush.ca_file"));
    if ((s = cr_config_str(conf, "webpush.vapid_key"))[0] != '\0' ? relay_vapid_load_file(&p->vapid, s) != 0
                                                                     : relay_vapid_load_or_create(&p->vapid, cr_config_str(conf, "data_dir")) != 0)
        return -1;
    p->vapid_ok = p->webpush_subject[0] != '\0';
    uv_timer_init(relay->loop, &p->tick);
    p->tick.data = p;
    due_script.src = relay_lua_push_due, due_script.len = relay_lua_push_due_len;
    dead_script.src = relay_lua_push_dead, dead_script.len = relay_lua_push_dead_len;
    relay_rdb_add_script(&relay->rdb, &due_script);
    relay_rdb_add_script(&relay->rdb, &dead_script);
    relay_rdb_subscribe(&relay->rdb, "cr:pushn");
    relay_route(relay, "GET", "/v1/webpush/vapid", 0, on_vapid, "webpush.vapid");
    cr_log(CR_LOG_INFO, "push: %u queue(s); APNs %s, FCM %s, Web Push %s", p->shards, p->apns_on ? "on" : "off",
           p->fcm_on ? "on" : "off", p->vapid_ok ? "on" : "off (no webpush.subject)");
    return 0;
}

void relay_push_on_ready(relay_t *relay, int ready)
{
    push_t *p = push_of(relay);
    if (p == NULL || p->stopping)
        return;
    p->ready = ready;
    if (!ready)
        return;
    for (unsigned n = 0; n < p->shards; ++n) {
        /* BUSYGROUP when it exists: fine. Sent before the first read, on the same connection: ordered. */
        relay_rdb_commandf(&relay->rdb, NULL, NULL, "XGROUP CREATE cr:pushq:%u " GROUP " 0 MKSTREAM", n);
        fetch(p, n);
    }
    if (!p->tick_on) {
        uv_timer_start(&p->tick, on_tick, TICK_MS, TICK_MS);
        p->tick_on = 1;
    }
}

void relay_push_on_notice(relay_t *relay, const char *msg, size_t len)
{
    push_t *p = push_of(relay);
    char buf[12];
    unsigned long n;
    if (p == NULL || len == 0 || len >= sizeof(buf))
        return;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    n = strtoul(buf, NULL, 10);
    if (n < p->shards)
        fetch(p, (unsigned)n);
}

static void on_http_closed(void *data)
{
    (void)data;
}

void relay_push_shutdown(relay_t *relay)
{
    push_t *p = push_of(relay);
    if (p == NULL || p->stopping)
        return;
    p->stopping = 1;
    if (p->tick_on)
        uv_timer_stop(&p->tick);
    uv_close((uv_handle_t *)&p->tick, NULL);
}

size_t relay_push_busy(relay_t *relay)
{
    push_t *p = push_of(relay);
    return p != NULL ? p->jobs : 0;
}

void relay_push_close(relay_t *relay)
{
    push_t *p = push_of(relay);
    if (p == NULL || p->http == NULL)
        return;
    relay_push_http_close(p->http, on_http_closed, p); /* each send in flight ends now: its job stays pending */
    p->http = NULL;
}

void relay_push_metrics(relay_t *relay, cr_buf_t *b)
{
    push_t *p = push_of(relay);
    if (p == NULL)
        return;
    cr_buf_appendf(b, "# HELP corral_push_total Push notifications by provider and outcome.\n# TYPE corral_push_total counter\n");
    for (int pr = 1; pr < 4; ++pr)
        for (int v = 0; v < 4; ++v)
            cr_buf_appendf(b, "corral_push_total{provider=\"%s\",outcome=\"%s\"} %" PRIu64 "\n", provider_name(pr),
                           verdict_name(v), p->outcomes[pr][v]);
    cr_buf_appendf(b, "# HELP corral_push_jobs_done_total Push jobs finished (every device reached has an outcome).\n"
                      "# TYPE corral_push_jobs_done_total counter\ncorral_push_jobs_done_total %" PRIu64 "\n",
                   p->jobs_done);
    cr_buf_appendf(b, "# HELP corral_push_jobs_taken_over_total Push jobs taken over from a relay that stopped on them.\n"
                      "# TYPE corral_push_jobs_taken_over_total counter\ncorral_push_jobs_taken_over_total %" PRIu64 "\n",
                   p->jobs_taken_over);
    cr_buf_appendf(b, "# HELP corral_push_retries_total Pushes delayed for another attempt.\n"
                      "# TYPE corral_push_retries_total counter\ncorral_push_retries_total %" PRIu64 "\n",
                   p->retries);
    cr_buf_appendf(b, "# HELP corral_push_devices_deleted_total Devices deleted because their provider said the token is gone.\n"
                      "# TYPE corral_push_devices_deleted_total counter\ncorral_push_devices_deleted_total %" PRIu64 "\n",
                   p->dead_deleted);
    cr_buf_appendf(b, "# HELP corral_push_skipped_total Devices skipped: their provider is not configured on this relay.\n"
                      "# TYPE corral_push_skipped_total counter\ncorral_push_skipped_total %" PRIu64 "\n",
                   p->skipped);
    cr_buf_appendf(b, "# HELP corral_push_jobs_open Push jobs this relay is working on.\n# TYPE corral_push_jobs_open gauge\n"
                      "corral_push_jobs_open %zu\n",
                   p->jobs);
}
