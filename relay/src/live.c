/* live.c — which teams have live clients here, their subscriptions, and delivery of notices to them. */
#include "live.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "streamid.h"
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_relay_live_t {
    struct st_team_t {
        char team[65];
        h2o_linklist_t listeners;
        size_t count, nevents;           /* listeners, and those of them that want events */
        uint64_t gen;                    /* tells this team's Redis replies from those of an earlier entry of the name */
        char cursor[STREAM_ID_MAX + 1];  /* the last id of cr:{team}:ev delivered here */
        uint8_t subscribed;              /* Redis confirmed cr:live:{team} and the cursor is known: listeners are ready */
        uint8_t reading;                 /* an XRANGE from the cursor is in flight */
        uint8_t dirty;                   /* a notice came meanwhile: read again when it is back */
    } *teams;
    size_t nteams, cap;
    size_t total;
    uint64_t gen;
} live_t;

#define LIVE_READ_COUNT 512 /* entries per XRANGE of new events */

static live_t *get(relay_t *relay)
{
    if (relay->live == NULL)
        relay->live = calloc(1, sizeof(live_t));
    return relay->live;
}

static struct st_team_t *find_team(live_t *lv, const char *team)
{
    for (size_t i = 0; i < lv->nteams; ++i)
        if (strcmp(lv->teams[i].team, team) == 0)
            return &lv->teams[i];
    return NULL;
}

static void channel_of(char *out, size_t n, const char *team)
{
    snprintf(out, n, "cr:live:{%s}", team);
}

static void refresh_cursor(relay_t *relay, struct st_team_t *t);

void relay_live_add(relay_t *relay, relay_listener_t *l)
{
    live_t *lv = get(relay);
    struct st_team_t *t = find_team(lv, l->team);
    if (t == NULL) {
        char ch[96];
        if (lv->nteams == lv->cap) {
            size_t ncap = lv->cap ? lv->cap * 2 : 8;
            struct st_team_t *nt = realloc(lv->teams, ncap * sizeof(*nt));
            CR_ASSERT(nt != NULL);
            /* the list heads move: relink them */
            for (size_t i = 0; i < lv->nteams; ++i) {
                h2o_linklist_t *old = &lv->teams[i].listeners;
                if (h2o_linklist_is_empty(old)) {
                    h2o_linklist_init_anchor(&nt[i].listeners);
                } else {
                    nt[i].listeners.next->prev = &nt[i].listeners;
                    nt[i].listeners.prev->next = &nt[i].listeners;
                }
            }
            lv->teams = nt;
            lv->cap = ncap;
        }
        t = &lv->teams[lv->nteams++];
        snprintf(t->team, sizeof(t->team), "%s", l->team);
        h2o_linklist_init_anchor(&t->listeners);
        t->count = t->nevents = 0;
        t->gen = ++lv->gen;
        t->cursor[0] = '\0';
        t->subscribed = t->reading = t->dirty = 0;
        channel_of(ch, sizeof(ch), l->team);
        relay_rdb_subscribe(&relay->rdb, ch);
    }
    h2o_linklist_insert(&t->listeners, &l->_link);
    ++t->count;
    if (l->events && t->nevents++ == 0 && t->subscribed && !t->reading)
        refresh_cursor(relay, t); /* nobody read the team's events while only host downlinks listened */
    ++lv->total;
    l->_ready = 0;
    if (t->subscribed) {
        l->_ready = 1;
        if (l->on_ready != NULL)
            l->on_ready(l);
    }
}

void relay_live_remove(relay_t *relay, relay_listener_t *l)
{
    live_t *lv = get(relay);
    struct st_team_t *t;
    if (!h2o_linklist_is_linked(&l->_link))
        return;
    h2o_linklist_unlink(&l->_link);
    --lv->total;
    if ((t = find_team(lv, l->team)) == NULL)
        return;
    t->nevents -= l->events != 0;
    if (--t->count > 0)
        return;
    char ch[96];
    channel_of(ch, sizeof(ch), t->team);
    relay_rdb_unsubscribe(&relay->rdb, ch);
    /* move the last team into this slot, relinking its list head */
    size_t i = (size_t)(t - lv->teams), last = lv->nteams - 1;
    if (i != last) {
        struct st_team_t *src = &lv->teams[last];
        memcpy(t->team, src->team, sizeof(t->team));
        t->count = src->count;
        t->nevents = src->nevents;
        t->gen = src->gen;
        memcpy(t->cursor, src->cursor, sizeof(t->cursor));
        t->subscribed = src->subscribed;
        t->reading = src->reading;
        t->dirty = src->dirty;
        if (h2o_linklist_is_empty(&src->listeners)) {
            h2o_linklist_init_anchor(&t->listeners);
        } else {
            t->listeners = src->listeners;
            t->listeners.next->prev = &t->listeners;
            t->listeners.prev->next = &t->listeners;
        }
    }
    --lv->nteams;
}

size_t relay_live_count(relay_t *relay)
{
    return get(relay)->total;
}

/* Calls on_close for every listener matching (hash NULL = all). The listeners are collected first, because on_close
 * may remove them (and with the last of a team, the team). */
static void close_matching(relay_t *relay, const char *hash, const char *why)
{
    live_t *lv = get(relay);
    relay_listener_t **all = malloc((lv->total + 1) * sizeof(*all));
    size_t n = 0;
    CR_ASSERT(all != NULL);
    for (size_t i = 0; i < lv->nteams; ++i) {
        h2o_linklist_t *anchor = &lv->teams[i].listeners;
        for (h2o_linklist_t *node = anchor->next; node != anchor; node = node->next) {
            relay_listener_t *l = H2O_STRUCT_FROM_MEMBER(relay_listener_t, _link, node);
            if (hash == NULL || strcmp(l->token_hash, hash) == 0)
                all[n++] = l;
        }
    }
    for (size_t i = 0; i < n; ++i)
        all[i]->on_close(all[i], why);
    free(all);
}

/* "cr:live:{T}" -> T. Returns 0 or -1. */
static int team_of_channel(char *team, const char *channel, size_t channel_len)
{
    size_t tl;
    if (channel_len < 11 || memcmp(channel, "cr:live:{", 9) != 0 || channel[channel_len - 1] != '}' ||
        (tl = channel_len - 10) >= 65)
        return -1;
    memcpy(team, channel + 9, tl);
    team[tl] = '\0';
    return 0;
}

/* Passes a notice (msg) or new events (frames) to every listener of t that takes them. Listeners may remove
 * themselves (and the last one, the team): t is invalid afterwards. */
static void deliver(struct st_team_t *t, const char *msg, size_t len, const relay_live_frame_t *frames, size_t n)
{
    h2o_linklist_t *anchor = &t->listeners, *node = anchor->next;
    while (node != anchor) {
        relay_listener_t *l = H2O_STRUCT_FROM_MEMBER(relay_listener_t, _link, node);
        node = node->next;
        if (frames == NULL)
            l->on_notice(l, msg, len);
        else if (l->events)
            l->on_events(l, frames, n);
    }
}

/* Closes the listeners of one team (a Redis error while reading its events). */
static void close_team(relay_t *relay, const char *team, const char *why)
{
    live_t *lv = get(relay);
    struct st_team_t *t = find_team(lv, team);
    relay_listener_t **all;
    size_t n = 0;
    if (t == NULL)
        return;
    all = malloc((t->count + 1) * sizeof(*all));
    CR_ASSERT(all != NULL);
    for (h2o_linklist_t *node = t->listeners.next; node != &t->listeners; node = node->next)
        all[n++] = H2O_STRUCT_FROM_MEMBER(relay_listener_t, _link, node);
    for (size_t i = 0; i < n; ++i)
        all[i]->on_close(all[i], why);
    free(all);
}

/* What a Redis reply about a team needs to find it again: its name and generation (the team may be gone, or gone and
 * back, when the reply comes). */
typedef struct st_team_ref_t {
    relay_t *relay;
    uint64_t gen;
    char team[65];
} team_ref_t;

static team_ref_t *team_ref(relay_t *relay, struct st_team_t *t);

/* The team a reply is about, if it is still the same one; frees ref. */
static struct st_team_t *team_deref(team_ref_t *ref, char *name)
{
    live_t *lv = get(ref->relay);
    struct st_team_t *t = find_team(lv, ref->team);
    memcpy(name, ref->team, sizeof(ref->team));
    if (t != NULL && t->gen != ref->gen)
        t = NULL;
    free(ref);
    return t;
}

int relay_live_frame(cr_buf_t *b, const struct redisReply *entry, const char **id, size_t *idlen)
{
    const redisReply *rid, *fields, *host = NULL, *e = NULL;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || (rid = entry->element[0])->type != REDIS_REPLY_STRING ||
        (fields = entry->element[1])->type != REDIS_REPLY_ARRAY)
        return -1;
    *id = rid->str;
    *idlen = rid->len;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (k->len == 4 && memcmp(k->str, "host", 4) == 0)
            host = v;
        else if (k->len == 1 && k->str[0] == 'e')
            e = v;
    }
    if (host == NULL || e == NULL || e->len == 0)
        return -1;
    if (cr_mpw_map(b, 4) || CR_MPW_LIT(b, "k") || CR_MPW_LIT(b, "ev") || CR_MPW_LIT(b, "id") || cr_mpw_str(b, rid->str, rid->len) ||
        CR_MPW_LIT(b, "host") || cr_mpw_str(b, host->str, host->len) || CR_MPW_LIT(b, "e") || cr_buf_append(b, e->str, e->len))
        return -1;
    return 0;
}

static void read_new(relay_t *relay, struct st_team_t *t);

/* The team's new events: one notice 'e' + their frames to every listener, the cursor moved past them, and another
 * read when there may be more. */
static void on_read(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    relay_t *relay = ((team_ref_t *)data)->relay;
    char team[65];
    struct st_team_t *t = team_deref(data, team);
    cr_buf_t b;
    int more;
    if (t == NULL)
        return;
    t->reading = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        cr_log(CR_LOG_WARN, "live: reading the new events of team %s failed: %s", team,
               reply == NULL ? "redis went away" : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        close_team(relay, team, "unavailable");
        return;
    }
    more = reply->elements >= LIVE_READ_COUNT || t->dirty;
    t->dirty = 0;
    if (reply->elements > 0) {
        relay_live_frame_t *frames = malloc(reply->elements * sizeof(*frames));
        size_t n = 0;
        CR_ASSERT(frames != NULL);
        cr_buf_init(&b, (size_t)LIVE_READ_COUNT * (relay->limits.max_envelope + 256));
        /* the frames first, their pointers after: the buffer may move while it grows */
        for (size_t i = 0; i < reply->elements; ++i) {
            const char *id = NULL;
            size_t idlen = 0, mark = b.len;
            uint64_t ms, seq;
            if (relay_live_frame(&b, reply->element[i], &id, &idlen) != 0)
                b.len = mark; /* not one of ours (or too large): skipped, but passed */
            if (id == NULL || idlen >= sizeof(t->cursor) || relay_stream_id_parse(id, idlen, &ms, &seq) != 0)
                continue;
            memcpy(t->cursor, id, idlen);
            t->cursor[idlen] = '\0';
            if (b.len > mark)
                frames[n++] = (relay_live_frame_t){(const char *)(uintptr_t)mark, b.len - mark, ms, seq};
        }
        for (size_t i = 0; i < n; ++i)
            frames[i].p = b.base + (uintptr_t)frames[i].p;
        if (n > 0)
            deliver(t, NULL, 0, frames, n); /* t may be gone now */
        free(frames);
        cr_buf_free(&b);
        t = find_team(get(relay), team);
    }
    if (t != NULL && more)
        read_new(relay, t);
    (void)rdb;
}

/* Reads the events after the team's cursor (or notes that it must, once the read in flight is back). */
static void read_new(relay_t *relay, struct st_team_t *t)
{
    char key[96], start[STREAM_ID_MAX + 2], ref_team[65];
    team_ref_t *ref;
    memcpy(ref_team, t->team, sizeof(ref_team));
    if (t->nevents == 0)
        return; /* only host downlinks here: nobody to give events to (a phone that comes replays them) */
    if (!t->subscribed || t->reading) {
        t->dirty = 1;
        return;
    }
    snprintf(key, sizeof(key), "cr:{%s}:ev", t->team);
    snprintf(start, sizeof(start), "(%s", t->cursor);
    ref = team_ref(relay, t);
    if (relay_rdb_commandf(&relay->rdb, on_read, ref, "XRANGE %s %s + COUNT %d", key, start, LIVE_READ_COUNT) != 0) {
        free(ref);
        close_team(relay, ref_team, "unavailable");
        return;
    }
    t->reading = 1;
}

/* The cursor is known: the team's listeners are ready. */
static void on_cursor(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    relay_t *relay = ((team_ref_t *)data)->relay;
    char team[65];
    struct st_team_t *t = team_deref(data, team);
    relay_listener_t **ready;
    size_t n = 0;
    if (t == NULL)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        cr_log(CR_LOG_WARN, "live: reading the last event of team %s failed: %s", team,
               reply == NULL ? "redis went away" : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        close_team(relay, team, "unavailable");
        return;
    }
    t->reading = 0;
    snprintf(t->cursor, sizeof(t->cursor), "0-0");
    if (reply->elements == 1 && reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
        reply->element[0]->element[0]->type == REDIS_REPLY_STRING && reply->element[0]->element[0]->len < sizeof(t->cursor)) {
        memcpy(t->cursor, reply->element[0]->element[0]->str, reply->element[0]->element[0]->len);
        t->cursor[reply->element[0]->element[0]->len] = '\0';
    }
    if (t->subscribed) { /* a refresh (refresh_cursor): the listeners are ready already */
        if (t->dirty) {
            t->dirty = 0;
            read_new(relay, t);
        }
        return;
    }
    t->subscribed = 1;
    /* collected first: on_ready may remove listeners */
    ready = malloc((t->count + 1) * sizeof(*ready));
    CR_ASSERT(ready != NULL);
    for (h2o_linklist_t *node = t->listeners.next; node != &t->listeners; node = node->next) {
        relay_listener_t *l = H2O_STRUCT_FROM_MEMBER(relay_listener_t, _link, node);
        if (!l->_ready) {
            l->_ready = 1;
            ready[n++] = l;
        }
    }
    for (size_t i = 0; i < n; ++i)
        if (ready[i]->on_ready != NULL)
            ready[i]->on_ready(ready[i]);
    free(ready);
    if ((t = find_team(get(relay), team)) != NULL && t->dirty) {
        t->dirty = 0;
        read_new(relay, t);
    }
    (void)rdb;
}

/* Moves the cursor to the stream's last id (reads wait meanwhile). */
static void refresh_cursor(relay_t *relay, struct st_team_t *t)
{
    char key[96], team[65];
    team_ref_t *ref = team_ref(relay, t);
    memcpy(team, t->team, sizeof(team));
    snprintf(key, sizeof(key), "cr:{%s}:ev", team);
    if (relay_rdb_commandf(&relay->rdb, on_cursor, ref, "XREVRANGE %s + - COUNT 1", key) != 0) {
        free(ref);
        close_team(relay, team, "unavailable");
        return;
    }
    t->reading = 1;
}

static team_ref_t *team_ref(relay_t *relay, struct st_team_t *t)
{
    team_ref_t *ref = malloc(sizeof(*ref));
    CR_ASSERT(ref != NULL);
    ref->relay = relay;
    ref->gen = t->gen;
    memcpy(ref->team, t->team, sizeof(ref->team));
    return ref;
}

void relay_live_on_message(relay_t *relay, const char *channel, size_t channel_len, const char *msg, size_t len)
{
    live_t *lv = get(relay);
    if (channel_len == 9 && memcmp(channel, "cr:revoke", 9) == 0) {
        char hash[65];
        if (len != 64)
            return;
        memcpy(hash, msg, 64);
        hash[64] = '\0';
        close_matching(relay, hash, "revoked");
        return;
    }
    /* cr:live:{T} */
    char team[65];
    struct st_team_t *t;
    if (team_of_channel(team, channel, channel_len) != 0 || (t = find_team(lv, team)) == NULL || len == 0)
        return;
    if (msg[0] == RELAY_NOTICE_EVENT) {
        read_new(relay, t);
        return;
    }
    deliver(t, msg, len, NULL, 0);
}

void relay_live_on_subscribed(relay_t *relay, const char *channel, size_t channel_len)
{
    live_t *lv = get(relay);
    char team[65], key[96];
    struct st_team_t *t;
    team_ref_t *ref;
    if (team_of_channel(team, channel, channel_len) != 0 || (t = find_team(lv, team)) == NULL)
        return;
    /* every event stored from now on is announced; those before are the listeners' replay. The cursor starts at the
     * stream's last id, read after the confirmation so that nothing falls between the two. */
    snprintf(key, sizeof(key), "cr:{%s}:ev", team);
    ref = team_ref(relay, t);
    if (relay_rdb_commandf(&relay->rdb, on_cursor, ref, "XREVRANGE %s + - COUNT 1", key) != 0) {
        free(ref);
        close_team(relay, team, "unavailable");
    }
}

void relay_live_close_all(relay_t *relay, const char *why)
{
    live_t *lv = get(relay);
    for (size_t i = 0; i < lv->nteams; ++i)
        lv->teams[i].subscribed = 0;
    close_matching(relay, NULL, why);
}

void relay_live_shutdown(relay_t *relay)
{
    relay_live_close_all(relay, "shutdown");
}
