/* host_relay.c — corrald's glue between its core and the relay link: outbox -> uplink, downlink actions -> sessions,
 * the downlink cursor persisted in <repo>/.corral/relay.cursor. */
#include "host_relay.h"
#include "speech.h"
#include "corral/mp.h"
#include "corral/fs.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/log.h"
#include <errno.h>
#include <msgpack.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An action received, waiting for the loop's next turn: the link hands actions over from inside libcurl's callbacks,
 * where no new request can start, and applying one emits events (a new uplink batch) and acks its cursor. */
typedef struct st_host_relay_action_t {
    struct st_host_relay_action_t *next;
    char id[HOST_LINK_CURSOR_MAX];
    char note_idn[64];                        /* a note: the identity whose inbox has mail ("" for an action) */
    size_t len;
    char act[]; /* the envelope */
} host_relay_action_t;

struct st_host_relay_t {
    host_t *host;
    host_link_t *link;
    host_link_state_t last_state;
    uv_timer_t defer;                        /* runs the queued actions from the loop */
    uv_timer_t gather;                       /* events of the next HOST_RELAY_GATHER_MS go out in one batch */
    uint64_t acked_saved_ms;                 /* when outbox/acked was last written (loop time) */
    uint64_t compacted_ms;                   /* when the drained outbox last dropped its segments (loop time) */
    uint64_t batch_ms;                       /* when the last batch went out (loop time) */
    int urgent;                              /* a pri-2 event waits: the next batch goes at once */
    host_relay_action_t *queue, **queue_tail; /* oldest first */
    void (*on_inbox)(const char *idn, void *data); /* host_relay_on_inbox */
    void *inbox_data;
    int closing;                             /* handles still to close before r is freed */
    host_speech_t *speech;                   /* voice replies' words, made out in a worker thread */
    host_relay_action_t *voice;              /* the action whose recording is being made out (queue head) */
    char cursor_path[PATH_MAX];
};

/* ---- the downlink cursor on disk --------------------------------------------------------------------------------- */

static int cursor_ok(const char *s)
{
    size_t n = strlen(s), dash = 0;
    if (n == 0 || n >= HOST_LINK_CURSOR_MAX)
        return 0;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '-')
            ++dash;
        else if (s[i] < '0' || s[i] > '9')
            return 0;
    }
    return dash == 1 && s[0] != '-' && s[n - 1] != '-';
}

/* Reads the saved cursor into out ("" when there is none or it is bad). */
static void cursor_load(host_relay_t *r, char *out, size_t outlen)
{
    FILE *fp = fopen(r->cursor_path, "r");
    out[0] = '\0';
    if (fp == NULL) {
        if (errno != ENOENT)
            cr_log(CR_LOG_WARN, "relay: cannot read %s: %s; starting from the relay's record", r->cursor_path,
                   strerror(errno));
        return;
    }
    if (fgets(out, (int)outlen, fp) == NULL)
        out[0] = '\0';
    fclose(fp);
    out[strcspn(out, "\r\n")] = '\0';
    if (out[0] != '\0' && !cursor_ok(out)) {
        cr_log(CR_LOG_WARN, "relay: %s does not hold a stream id; starting from the relay's record", r->cursor_path);
        out[0] = '\0';
    }
}

/* Replaces the cursor file atomically. */
static void cursor_save(host_relay_t *r, const char *cursor)
{
    char line[HOST_LINK_CURSOR_MAX + 1];
    int n = snprintf(line, sizeof(line), "%s\n", cursor);
    if (cr_write_atomic(host_store_dir(r->host->store), HOST_RELAY_CURSOR_FILE, line, (size_t)n, 0600, 1) != 0)
        cr_log(CR_LOG_WARN, "relay: cannot save the downlink cursor: %s", cr_error_last()->message);
}

/* ---- the link's callbacks ----------------------------------------------------------------------------------------- */

static void on_gather(uv_timer_t *t);

static size_t on_next_batch(cr_span_t *out, size_t max, void *data)
{
    host_relay_t *r = data;
    host_store_outbox_t *ob = host_store_outbox(r->host->store);
    uint64_t now = uv_now(r->host->loop);
    size_t n = 0;
    /* Batches go at most once per HOST_RELAY_GATHER_MS unless a human waits (pri 2). The link asks again as soon as a
     * batch is acknowledged: under a steady stream that was a batch (an fdatasync and a request) per round trip, ~75/s
     * at 1,000 events/s; now it is 25/s, each larger. */
    if (!r->urgent && r->batch_ms != 0 && now - r->batch_ms < HOST_RELAY_GATHER_MS) {
        if (!uv_is_active((uv_handle_t *)&r->gather))
            uv_timer_start(&r->gather, on_gather, HOST_RELAY_GATHER_MS - (now - r->batch_ms), 0);
        return 0;
    }
    if (host_store_outbox_sync(ob) != 0) /* nothing leaves before it is durable here (store.c syncs some in groups) */
        cr_log(CR_LOG_ERROR, "relay: cannot sync the outbox: %s", cr_error_last()->message);
    host_store_outbox_rewind(ob); /* always from the oldest unacknowledged record */
    if (host_store_outbox_next_batch(ob, out, &n, max, HOST_LINK_BATCH_BYTES) != 0) {
        cr_log(CR_LOG_ERROR, "relay: cannot read the outbox: %s", cr_error_last()->message);
        return 0;
    }
    if (n > 0) {
        r->batch_ms = now;
        r->urgent = 0;
    }
    return n;
}

static void on_acked(const char *sid, uint64_t seq, void *data)
{
    host_relay_t *r = data;
    host_store_outbox_t *ob = host_store_outbox(r->host->store);
    uint64_t now = uv_now(r->host->loop);
    /* outbox/acked is rewritten at most once a second (a rewrite per batch was most of corrald's CPU under a steady
     * stream): an ack lost in a crash only makes the relay get those events again, and it stores them once */
    int save = now - r->acked_saved_ms >= 1000;
    if (host_store_outbox_ack_lazy(ob, sid, seq, save) != 0) {
        cr_log_sid(CR_LOG_ERROR, sid, "relay: cannot record the ack of seq %llu: %s", (unsigned long long)seq,
                   cr_error_last()->message);
        return;
    }
    if (save)
        r->acked_saved_ms = now;
    /* a drained outbox drops its segments, but at most once a second: under a steady stream it drains after every
     * batch, and a segment deleted and made again per batch (two directory fsyncs) was a third of corrald's fsyncs;
     * acknowledged records left a little longer are skipped on the next start */
    if (now - r->compacted_ms >= 1000 && host_store_outbox_pending(ob) == 0) {
        r->compacted_ms = now;
        if (host_store_outbox_compact(ob) < 0)
            cr_log(CR_LOG_WARN, "relay: cannot compact the outbox: %s", cr_error_last()->message);
    }
}

static void on_rejected(size_t index, const char *sid, uint64_t seq, const char *code, const char *message, void *data)
{
    (void)index;
    cr_log_sid(CR_LOG_ERROR, sid[0] != '\0' ? sid : NULL, "relay: the relay refused event seq %llu for good (%s: %s); dropped",
               (unsigned long long)seq, code, message);
    if (sid[0] != '\0')
        on_acked(sid, seq, data);
}

/* Answers an action that could not be applied at all with action.applied {aid, ok false, detail}, so the phone
 * learns what became of it, keeping what the session waits for, and remembers the aid so a resend is not answered
 * twice. */
static void refuse(host_session_t *s, const char *aid, const char *detail)
{
    host_store_session_t *rec = s->rec;
    int hn = rec->has_needs;
    char k[sizeof(rec->needs_k)], rid[sizeof(rec->needs_rid)];
    uint64_t seq = rec->needs_seq;
    cr_buf_t b;
    memcpy(k, rec->needs_k, sizeof(k));
    memcpy(rid, rec->needs_rid, sizeof(rid));
    host_store_aid_add(rec, aid);
    cr_buf_init(&b, 8192);
    if (cr_mpw_map(&b, 3) == 0 && CR_MPW_LIT(&b, "aid") == 0 && cr_mpw_str(&b, aid, strlen(aid)) == 0 &&
        CR_MPW_LIT(&b, "ok") == 0 && cr_mpw_bool(&b, 0) == 0 && CR_MPW_LIT(&b, "detail") == 0 &&
        cr_mpw_str(&b, detail, strlen(detail)) == 0)
        host_emit(s, "action.applied", 1, b.base, b.len);
    cr_buf_free(&b);
    if (hn && !rec->has_needs) { /* action.applied cleared it: nothing was answered */
        rec->has_needs = 1;
        memcpy(rec->needs_k, k, sizeof(k));
        memcpy(rec->needs_rid, rid, sizeof(rid));
        rec->needs_seq = seq;
        if (host_store_session_save(rec) != 0)
            cr_log_sid(CR_LOG_WARN, rec->sid, "cannot save: %s", cr_error_last()->message);
    }
}

static void span_str(char *out, size_t outlen, cr_span_t v)
{
    size_t n = v.len < outlen - 1 ? v.len : outlen - 1;
    memcpy(out, v.base, n);
    out[n] = '\0';
}

/* What a voice-reply action carries: its audio and transcript, when its body has audio or a transcript and no text
 * (then it is acted on by its words, host_action_apply_voice). */
typedef struct st_voice_body_t {
    cr_span_t audio;
    char mime[64];
    char *transcript; /* malloc'd, NULL none */
} voice_body_t;

static int voice_body(voice_body_t *v, const char *kind, const char *b, size_t blen)
{
    cr_span_t f;
    cr_mp_item_t it;
    memset(v, 0, sizeof(*v));
    if (strcmp(kind, "reply") != 0 || blen == 0 || cr_mp_map_get(b, blen, "text", &f) == 0)
        return 0;
    if (cr_mp_map_get(b, blen, "audio", &f) == 0 && cr_mp_read(f.base, f.base + f.len, &it) != 0 &&
        it.type == MSGPACK_OBJECT_BIN && it.bytes.len > 0)
        v->audio = (cr_span_t){it.bytes.base, it.bytes.len};
    if (cr_mp_map_get(b, blen, "mime", &f) == 0 && cr_mp_read(f.base, f.base + f.len, &it) != 0 &&
        it.type == MSGPACK_OBJECT_STR && it.bytes.len < sizeof(v->mime)) {
        memcpy(v->mime, it.bytes.base, it.bytes.len);
        v->mime[it.bytes.len] = '\0';
    }
    if (cr_mp_map_get(b, blen, "transcript", &f) == 0 && cr_mp_read(f.base, f.base + f.len, &it) != 0 &&
        it.type == MSGPACK_OBJECT_STR && it.bytes.len > 0) {
        if ((v->transcript = malloc(it.bytes.len + 1)) == NULL)
            abort();
        memcpy(v->transcript, it.bytes.base, it.bytes.len);
        v->transcript[it.bytes.len] = '\0';
    }
    return v->audio.len > 0 || v->transcript != NULL;
}

static void log_result(const char *sid, const char *id, const char *kind, const char *aid, const char *by, int rc,
                       const host_action_result_t *res)
{
    if (res->duplicate)
        cr_log_sid(CR_LOG_INFO, sid, "relay: action %s (%s, aid %s) was applied before", id, kind, aid);
    else
        cr_log_sid(CR_LOG_INFO, sid, "relay: action %s (%s, aid %s, by %s): %s%s%s%s", id, kind, aid,
                   by[0] != '\0' ? by : "?", res->ok ? "" : "failed: ", res->detail, res->heard[0] != '\0' ? "; heard " : "",
                   res->heard[0] != '\0' ? res->heard : "");
    (void)rc;
}

static void on_defer(uv_timer_t *t);

typedef struct st_voice_ctx_t {
    host_relay_t *r;
    char sid[HOST_STORE_SID_MAX + 1], aid[HOST_STORE_SID_MAX + 1], id[HOST_LINK_CURSOR_MAX], by[HOST_STORE_SID_MAX + 1];
    char *body;
    size_t blen;
} voice_ctx_t;

static void voice_ctx_free(void *data)
{
    voice_ctx_t *c = data;
    free(c->body);
    free(c);
}

/* The words of a recording are known (or not): act on them, then confirm the action and go on with the queue. */
static void on_voice(const host_speech_result_t *vr, void *data)
{
    voice_ctx_t *c = data;
    host_relay_t *r = c->r;
    host_relay_action_t *a = r->voice;
    host_session_t *s = host_session_find(r->host, c->sid);
    host_action_result_t res;
    int rc = 0;
    r->voice = NULL;
    if (s == NULL || strcmp(s->rec->sid, c->sid) != 0) {
        cr_log_sid(CR_LOG_WARN, c->sid, "relay: the session of voice reply %s is gone", c->aid);
    } else if (vr->ok) {
        rc = host_action_apply_voice(&res, s, c->aid, c->body, c->blen, vr->heard, vr->from_grammar);
        log_result(c->sid, c->id, "reply", c->aid, c->by, rc, &res);
    } else {
        rc = host_action_refuse_voice(&res, s, c->aid, vr->code, vr->message);
        cr_log_sid(CR_LOG_INFO, c->sid, "relay: voice reply %s (aid %s): %s (%s)", c->id, c->aid, vr->message, vr->code);
    }
    if (a != NULL && r->link != NULL) {
        if (host_link_ack(r->link, a->id) != 0)
            cr_log(CR_LOG_WARN, "relay: cannot confirm action %s: %s", a->id, cr_error_last()->message);
        if (r->queue == a && (r->queue = a->next) == NULL)
            r->queue_tail = &r->queue;
        free(a);
    }
    voice_ctx_free(c);
    if (!r->closing)
        uv_timer_start(&r->defer, on_defer, 0, 0);
}

/* Applies one action from the downlink. Returns 1 when it went on in the background (a recording to make out: the
 * queue waits for it), else 0 (applied, refused or skipped). */
static int apply_action(host_relay_t *r, const char *id, const char *act, size_t act_len)
{
    cr_action_t a;
    host_session_t *s;
    host_action_result_t res;
    char sid[HOST_STORE_SID_MAX + 1], aid[HOST_STORE_SID_MAX + 1], kind[32], by[HOST_STORE_SID_MAX + 1];
    cr_buf_t opened;
    const char *b;
    size_t blen;
    voice_body_t vb;
    int rc, pending = 0;

    if (cr_action_decode(&a, act, act_len, NULL) != 0) {
        cr_log(CR_LOG_WARN, "relay: action %s is not a valid envelope (%s, field %s); skipped", id,
               cr_error_last()->message, cr_error_last()->field);
        return 0;
    }
    span_str(sid, sizeof(sid), a.sid);
    span_str(aid, sizeof(aid), a.aid);
    span_str(kind, sizeof(kind), a.k);
    span_str(by, sizeof(by), a.by);
    if ((s = host_session_find(r->host, sid)) == NULL || strcmp(s->rec->sid, sid) != 0) {
        cr_log_sid(CR_LOG_WARN, sid, "relay: action %s (%s, aid %s, by %s) is for no session of this host; skipped", id,
                   kind, aid, by[0] != '\0' ? by : "?");
        return 0;
    }
    cr_buf_init(&opened, a.b.raw.len + 64);
    b = a.b.raw.base;
    blen = a.b.raw.len;
    if (a.b.sealed) {
        if (host_open_action(r->host, &opened, &a) != 0) {
            char detail[400];
            snprintf(detail, sizeof(detail), "sealed body: %s", cr_error_last()->message);
            cr_log_sid(CR_LOG_WARN, sid, "relay: action %s (%s, aid %s): %s", id, kind, aid, detail);
            if (!host_store_aid_seen(s->rec, aid))
                refuse(s, aid, detail);
            cr_buf_free(&opened);
            return 0;
        }
        b = opened.base;
        blen = opened.len;
    }
    if (!host_store_aid_seen(s->rec, aid) && voice_body(&vb, kind, b, blen)) {
        char path[4200] = "", phrases[HOST_SPEECH_PHRASES_MAX][96];
        const char *pp[HOST_SPEECH_PHRASES_MAX];
        size_t np = 0;
        if (vb.audio.len > 0 && host_voice_keep(s, aid, vb.audio.base, vb.audio.len, vb.mime[0] ? vb.mime : NULL, path,
                                                sizeof(path)) != 0)
            cr_log_sid(CR_LOG_WARN, sid, "relay: cannot keep the audio of %s: %s", aid, cr_error_last()->message);
        if (vb.transcript != NULL) { /* the phone's recogniser heard it: its words are the reply */
            rc = host_action_apply_voice(&res, s, aid, b, blen, vb.transcript, 0);
            log_result(sid, id, kind, aid, by, rc, &res);
        } else if (path[0] == '\0') {
            rc = host_action_refuse_voice(&res, s, aid, "unavailable", "the host could not keep the recording to make it out");
        } else {
            voice_ctx_t *c = calloc(1, sizeof(*c));
            if (c == NULL || (c->body = malloc(blen)) == NULL)
                abort();
            c->r = r;
            memcpy(c->sid, sid, sizeof(sid));
            memcpy(c->aid, aid, sizeof(aid));
            memcpy(c->by, by, sizeof(by));
            snprintf(c->id, sizeof(c->id), "%s", id);
            memcpy(c->body, b, blen);
            c->blen = blen;
            np = host_voice_phrases(s, phrases, HOST_SPEECH_PHRASES_MAX);
            for (size_t i = 0; i < np; ++i)
                pp[i] = phrases[i];
            if (host_speech_start(r->speech, path, vb.mime[0] ? vb.mime : NULL, pp, np, on_voice, voice_ctx_free, c) == 0) {
                pending = 1;
            } else {
                rc = host_action_refuse_voice(&res, s, aid, "unavailable", cr_error_last()->message);
                free(c->body);
                free(c);
            }
        }
        free(vb.transcript);
        cr_buf_free(&opened);
        return pending;
    }
    rc = host_action_apply(&res, s, kind, aid, b, blen);
    if (res.duplicate) {
        cr_log_sid(CR_LOG_INFO, sid, "relay: action %s (%s, aid %s) was applied before", id, kind, aid);
    } else if (rc != 0 && !res.ok && res.detail[0] == '\0') {
        /* not applicable: host_action_apply did nothing and emitted nothing */
        char detail[sizeof(cr_error_last()->message)];
        snprintf(detail, sizeof(detail), "%s", cr_error_last()->message);
        cr_log_sid(CR_LOG_WARN, sid, "relay: action %s (%s, aid %s, by %s) not applied: %s", id, kind, aid,
                   by[0] != '\0' ? by : "?", detail);
        refuse(s, aid, detail);
    } else {
        log_result(sid, id, kind, aid, by, rc, &res);
    }
    cr_buf_free(&opened);
    return 0;
}

static void on_defer(uv_timer_t *t)
{
    host_relay_t *r = t->data;
    host_relay_action_t *a;
    while (r->link != NULL && r->voice == NULL && (a = r->queue) != NULL) {
        if (a->note_idn[0] != '\0') {
            if (r->on_inbox != NULL)
                r->on_inbox(a->note_idn, r->inbox_data);
        } else if (apply_action(r, a->id, a->act, a->len)) {
            r->voice = a; /* stays at the head, unconfirmed, until on_voice */
            return;
        }
        if ((r->queue = a->next) == NULL)
            r->queue_tail = &r->queue;
        /* applied, refused or skipped: either way it must not block the stream */
        if (host_link_ack(r->link, a->id) != 0)
            cr_log(CR_LOG_WARN, "relay: cannot confirm action %s: %s", a->id, cr_error_last()->message);
        free(a);
    }
}

static void on_action(const char *id, const char *act, size_t act_len, void *data)
{
    host_relay_t *r = data;
    host_relay_action_t *a = malloc(sizeof(*a) + act_len);
    if (a == NULL) { /* not acked: the relay sends it again after the next reconnect */
        cr_log(CR_LOG_ERROR, "relay: out of memory for action %s", id);
        return;
    }
    a->next = NULL;
    a->note_idn[0] = '\0';
    snprintf(a->id, sizeof(a->id), "%s", id);
    a->len = act_len;
    memcpy(a->act, act, act_len);
    *r->queue_tail = a;
    r->queue_tail = &a->next;
    uv_timer_start(&r->defer, on_defer, 0, 0);
}

/* Mail for an identity: it joins the actions' queue so that cursors are confirmed in order; the fetch itself goes
 * by the identity's own inbox cursor, so a note confirmed before its mail was fetched loses nothing. */
static void on_note(const char *id, const char *n, const char *idn, const char *mid, void *data)
{
    host_relay_t *r = data;
    host_relay_action_t *a;
    (void)mid;
    if (strcmp(n, "inbox") != 0 || (a = calloc(1, sizeof(*a))) == NULL)
        return; /* not ours, or out of memory: a later ack covers it, and the next fetch of the inbox finds the mail */
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->note_idn, sizeof(a->note_idn), "%s", idn);
    *r->queue_tail = a;
    r->queue_tail = &a->next;
    uv_timer_start(&r->defer, on_defer, 0, 0);
}

void host_relay_on_inbox(host_relay_t *r, void (*cb)(const char *idn, void *data), void *data)
{
    r->on_inbox = cb;
    r->inbox_data = data;
}

static void on_cursor(const char *cursor, void *data)
{
    cursor_save(data, cursor);
}

static size_t on_backlog(void *data)
{
    host_relay_t *r = data;
    return host_store_outbox_pending(host_store_outbox(r->host->store));
}

static void on_state(void *data)
{
    static const char *const names[] = {"connecting", "connected", "refused", "stopped"};
    host_relay_t *r = data;
    host_link_status_t st;
    host_link_status(r->link, &st);
    if (st.state == r->last_state)
        return;
    r->last_state = st.state;
    if (st.state == HOST_LINK_CONNECTED || st.last_error[0] == '\0')
        cr_log(CR_LOG_INFO, "relay: link %s (backlog %zu)", (unsigned)st.state < 4 ? names[st.state] : "?", st.backlog);
    else
        cr_log(st.state == HOST_LINK_REFUSED ? CR_LOG_ERROR : CR_LOG_INFO, "relay: link %s: %s (backlog %zu)",
               (unsigned)st.state < 4 ? names[st.state] : "?", st.last_error, st.backlog);
}

/* ---- life cycle ---------------------------------------------------------------------------------------------------- */

int host_relay_new(host_relay_t **out, host_t *h, const host_relay_config_t *conf)
{
    static const host_link_cbs_t cbs = {
        .next_batch = on_next_batch,
        .on_acked = on_acked,
        .on_rejected = on_rejected,
        .on_action = on_action,
        .on_note = on_note,
        .on_cursor = on_cursor,
        .backlog = on_backlog,
        .on_state = on_state,
    };
    host_link_config_t lc = {0};
    char cursor[HOST_LINK_CURSOR_MAX + 2];
    host_relay_t *r;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory"), -1;
    r->host = h;
    r->queue_tail = &r->queue;
    r->last_state = HOST_LINK_CONNECTING;
    snprintf(r->cursor_path, sizeof(r->cursor_path), "%s/" HOST_RELAY_CURSOR_FILE, host_store_dir(h->store));
    cursor_load(r, cursor, sizeof(cursor));
    lc.url = conf->url;
    lc.token = conf->token;
    lc.ca_file = conf->ca_file != NULL && conf->ca_file[0] != '\0' ? conf->ca_file : NULL;
    lc.cursor = cursor;
    if (host_link_new(&r->link, h->loop, &lc, &cbs, r) != 0) {
        free(r);
        return -1;
    }
    {
        host_speech_config_t sc = {conf->transcribe_command, conf->voice_model};
        if (host_speech_new(&r->speech, h->loop, &sc) != 0) {
            host_link_free(r->link, NULL, NULL);
            free(r);
            return -1;
        }
    }
    uv_timer_init(h->loop, &r->defer);
    r->defer.data = r;
    uv_timer_init(h->loop, &r->gather);
    r->gather.data = r;
    cr_log(CR_LOG_INFO, "relay: %s, downlink after %s, %zu events waiting in the outbox", conf->url,
           cursor[0] != '\0' ? cursor : "(the relay's record)", host_store_outbox_pending(host_store_outbox(h->store)));
    host_link_start(r->link);
    *out = r;
    return 0;
}

static void on_gather(uv_timer_t *t)
{
    host_relay_t *r = t->data;
    if (r->link != NULL)
        host_link_kick(r->link);
}

void host_relay_kick(int pri, void *data)
{
    host_relay_t *r = data;
    if (r == NULL || r->link == NULL)
        return;
    /* agents write in bursts of lines: one POST per event cost corrald ~3x its CPU at 1,000 events/s; waiting a few
     * ms puts a burst in one batch (the link sends one batch at a time, so a backlog gathers by itself anyway); a
     * request for a human does not wait */
    if (pri >= 2) {
        r->urgent = 1;
        uv_timer_stop(&r->gather);
        on_gather(&r->gather);
    } else if (!uv_is_active((uv_handle_t *)&r->gather)) {
        uv_timer_start(&r->gather, on_gather, HOST_RELAY_GATHER_MS, 0);
    }
}

void host_relay_status(const host_relay_t *r, host_link_status_t *out)
{
    host_link_status(r->link, out);
}

static void relay_closed(host_relay_t *r)
{
    if (--r->closing > 0)
        return;
    while (r->queue != NULL) {
        host_relay_action_t *a = r->queue;
        r->queue = a->next;
        free(a);
    }
    free(r);
}

static void on_link_closed(void *data)
{
    relay_closed(data);
}

static void on_defer_closed(uv_handle_t *handle)
{
    relay_closed(handle->data);
}

void host_relay_free(host_relay_t *r)
{
    if (r == NULL)
        return;
    if (r->host->hooks.emitted_data == r) {
        r->host->hooks.on_emitted = NULL;
        r->host->hooks.emitted_data = NULL;
    }
    cr_log(CR_LOG_INFO, "relay: link stopped (%zu events wait in the outbox)",
           host_store_outbox_pending(host_store_outbox(r->host->store)));
    if (r->queue != NULL) /* not acked: the relay sends them again after the next start */
        cr_log(CR_LOG_INFO, "relay: actions received but not applied are left to the relay");
    r->closing = 3;
    host_speech_free(r->speech); /* a recording being made out finishes in its thread, unanswered: the relay sends
                                    the action again after the next start */
    r->speech = NULL;
    host_link_free(r->link, on_link_closed, r);
    r->link = NULL;
    uv_close((uv_handle_t *)&r->defer, on_defer_closed);
    uv_close((uv_handle_t *)&r->gather, on_defer_closed);
}
