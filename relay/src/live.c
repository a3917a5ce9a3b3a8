/* live.c — which teams have live clients here, their subscriptions, and delivery of notices to them. */
#include "live.h"
#include "corral/log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct st_relay_live_t {
    struct st_team_t {
        char team[65];
        h2o_linklist_t listeners;
        size_t count;
        int subscribed; /* Redis confirmed cr:live:{team} */
    } *teams;
    size_t nteams, cap;
    size_t total;
} live_t;

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
        t->count = 0;
        t->subscribed = 0;
        channel_of(ch, sizeof(ch), l->team);
        relay_rdb_subscribe(&relay->rdb, ch);
    }
    h2o_linklist_insert(&t->listeners, &l->_link);
    ++t->count;
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
    if ((t = find_team(lv, l->team)) == NULL || --t->count > 0)
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
        t->subscribed = src->subscribed;
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
    if (channel_len < 11 || memcmp(channel, "cr:live:{", 9) != 0 || channel[channel_len - 1] != '}')
        return;
    char team[65];
    size_t tl = channel_len - 10;
    if (tl >= sizeof(team))
        return;
    memcpy(team, channel + 9, tl);
    team[tl] = '\0';
    struct st_team_t *t = find_team(lv, team);
    if (t == NULL)
        return;
    h2o_linklist_t *anchor = &t->listeners, *node = anchor->next;
    while (node != anchor) {
        relay_listener_t *l = H2O_STRUCT_FROM_MEMBER(relay_listener_t, _link, node);
        node = node->next;
        l->on_notice(l, msg, len);
    }
}

void relay_live_on_subscribed(relay_t *relay, const char *channel, size_t channel_len)
{
    live_t *lv = get(relay);
    char team[65];
    struct st_team_t *t;
    size_t tl, n = 0;
    relay_listener_t **ready;
    if (channel_len < 11 || memcmp(channel, "cr:live:{", 9) != 0 || channel[channel_len - 1] != '}' ||
        (tl = channel_len - 10) >= sizeof(team))
        return;
    memcpy(team, channel + 9, tl);
    team[tl] = '\0';
    if ((t = find_team(lv, team)) == NULL)
        return;
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
