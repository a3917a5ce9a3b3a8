/* host.c — corrald's core: sessions (worktree, record, agent), the events agents cause, diffs at the end of a turn,
 * queued tasks, and the actions approve/reject/reply/task/interrupt/suspend/resume, each applied once by aid. */
#define _GNU_SOURCE
#include "host.h"
#include "pair.h"
#include "corral/seal.h"
#include "corral/error.h"
#include "corral/fs.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include <errno.h>
#include <sodium.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define BODY_MAX (512u << 10)

static char *xstrdup(const char *s)
{
    char *p = s != NULL ? strdup(s) : NULL;
    if (s != NULL && p == NULL)
        abort();
    return p;
}

/* ---- bodies -------------------------------------------------------------------------------------------------- */

static int mpw_kv(cr_buf_t *b, const char *k, const char *v)
{
    return cr_mpw_str(b, k, strlen(k)) || cr_mpw_str(b, v, strlen(v));
}

/* A NUL-terminated copy of the str at key in map b (malloc'd), NULL when absent or not a str. */
static char *body_str(const char *b, size_t len, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    char *s;
    if (b == NULL || len == 0 || cr_mp_map_get(b, len, key, &v) != 0)
        return NULL;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != 5 /* MSGPACK_OBJECT_STR */)
        return NULL;
    if ((s = malloc(it.bytes.len + 1)) == NULL)
        abort();
    memcpy(s, it.bytes.base, it.bytes.len);
    s[it.bytes.len] = '\0';
    return s;
}

static int body_bool(const char *b, size_t len, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (b == NULL || len == 0 || cr_mp_map_get(b, len, key, &v) != 0)
        return 0;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return 0;
    return (it.type == 1 /* BOOLEAN */ || it.type == 2 /* POSITIVE_INTEGER */) && it.u != 0;
}

/* ---- emitting ------------------------------------------------------------------------------------------------ */

/* Forgets the injected values of s's last agent. */
static void mask_clear(host_session_t *s)
{
    for (size_t i = 0; i < s->nmask; ++i)
        sodium_free(s->mask[i]);
    s->nmask = 0;
}

static void on_tflush(uv_timer_t *t)
{
    host_t *h = t->data;
    for (host_session_t *s = h->sessions; s != NULL; s = s->next)
        if (host_store_transcript_flush(s->rec) != 0)
            cr_log_sid(CR_LOG_ERROR, s->rec->sid, "transcript: %s", cr_error_last()->message);
    if (host_store_outbox_flush(host_store_outbox(h->store)) != 0) /* its NOSYNC events, likewise */
        cr_log(CR_LOG_ERROR, "%s", cr_error_last()->message);
}

int host_seal_refresh(host_t *h)
{
    unsigned char key[HOST_PAIR_KEY_LEN];
    char team[128];
    int have;
    h->seal_checked = uv_now(h->loop) + 1;
    if (h->home == NULL || h->seal_off)
        return 0;
    if ((have = host_team_seal_keys(h->home, key, team, sizeof(team))) < 0) {
        cr_log(CR_LOG_ERROR, "sealing: %s", cr_error_last()->message);
        return 0;
    }
    if (have == 1) {
        if (!host_store_sealing(h->store))
            cr_log(CR_LOG_INFO, "sealing event bodies for the relay with the team key of team %s", team);
        if (host_store_seal(h->store, key, team) != 0)
            have = 0;
        sodium_memzero(key, sizeof(key));
    }
    return have == 1;
}

int host_open_action(host_t *h, cr_buf_t *out, const cr_action_t *a)
{
    unsigned char key[HOST_PAIR_KEY_LEN];
    char team[128];
    int rc, have = h->home != NULL ? host_team_seal_keys(h->home, key, team, sizeof(team)) : 0;
    if (have < 0)
        return -1;
    if (have == 0)
        return cr_error_set(CR_ESEAL, "b", "a sealed body, and this host has no team key to open it (pair it first)");
    rc = cr_action_open_body(out, key, team, a, NULL);
    sodium_memzero(key, sizeof(key));
    return rc;
}

int host_emit(host_session_t *s, const char *kind, int pri, const char *body, size_t len)
{
    host_t *h = s->host;
    cr_buf_t out;
    char *masked = NULL;
    int rc;
    if (h->home != NULL && !h->seal_off && !host_store_sealing(h->store) && uv_now(h->loop) >= h->seal_checked + 5000)
        host_seal_refresh(h);
    /* an agent that prints an injected secret must not put it in an event: each occurrence becomes '*'s of the same
     * length, which keeps the msgpack (a str's bytes) valid */
    for (size_t i = 0; i < s->nmask && body != NULL; ++i) {
        size_t vl = strlen(s->mask[i]);
        const char *hit;
        if (vl < 4)
            continue;
        while ((hit = memmem(masked != NULL ? masked : body, len, s->mask[i], vl)) != NULL) {
            if (masked == NULL) {
                if ((masked = malloc(len)) == NULL)
                    return cr_error_set(CR_ENOMEM, NULL, "out of memory"), -1;
                memcpy(masked, body, len);
                hit = masked + (hit - body);
            }
            memset((char *)hit, '*', vl);
        }
    }
    if (masked != NULL)
        body = masked;
    cr_buf_init(&out, 1u << 20);
    rc = host_store_emit(&out, s->rec, kind, pri, body, len, NULL);
    if (masked != NULL) {
        explicit_bzero(masked, len);
        free(masked);
    }
    cr_buf_free(&out);
    if (rc != 0) {
        cr_log_sid(CR_LOG_ERROR, s->rec->sid, "cannot emit %s: %s", kind, cr_error_last()->message);
        return rc;
    }
    if ((s->rec->_tbuf.len > 0 || host_store_outbox_buffered(host_store_outbox(h->store)) > 0) && h->tflush != NULL &&
        !uv_is_active((uv_handle_t *)h->tflush))
        uv_timer_start(h->tflush, on_tflush, HOST_TRANSCRIPT_FLUSH_MS, 0);
    if (h->hooks.on_emitted != NULL)
        h->hooks.on_emitted(pri, h->hooks.emitted_data);
    if (h->hooks.on_event != NULL)
        h->hooks.on_event(s, h->hooks.event_data);
    return 0;
}


/* session.state {state, reason?, needs, rid?}: needs is what the session waits for from a person ("approval.request",
 * "question", "diff.ready"; "": nothing) and rid that request's id, so that a phone that saw the request keeps it
 * across state changes that raced it (a running state emitted after a question asked at a turn's start). */
static void emit_state(host_session_t *s, host_store_state_t st, const char *reason)
{
    cr_buf_t b;
    const char *name = host_store_state_name(st), *needs = "", *rid = "";
    if (s->rec->state == st && reason == NULL)
        return; /* the agent said so already */
    if (s->rec->has_needs)
        needs = s->rec->needs_k, rid = s->rec->needs_rid;
    else if (s->ask_rid[0] != '\0')
        needs = "question", rid = s->ask_rid;
    cr_buf_init(&b, BODY_MAX);
    cr_mpw_map(&b, (reason != NULL ? 3 : 2) + (rid[0] != '\0'));
    mpw_kv(&b, "state", name);
    mpw_kv(&b, "needs", needs);
    if (rid[0] != '\0')
        mpw_kv(&b, "rid", rid);
    if (reason != NULL) {
        size_t n = strlen(reason);
        CR_MPW_LIT(&b, "reason");
        cr_mpw_str(&b, reason, n > 4000 ? 4000 : n);
    }
    s->rec->state = st;
    host_emit(s, "session.state", 1, b.base, b.len);
    cr_buf_free(&b);
}

static void activity(host_session_t *s, const char *actor, const char *op, const char *detail, const char *outcome)
{
    host_store_activity_t a = {0, actor, s->rec->sid, s->rec->identity, op, detail, outcome};
    if (host_store_activity(s->host->store, &a) != 0)
        cr_log_sid(CR_LOG_WARN, s->rec->sid, "activity.csv: %s", cr_error_last()->message);
}

/* ---- sessions ------------------------------------------------------------------------------------------------ */

void host_session_path(char *out, size_t outlen, host_session_t *s, const char *name)
{
    snprintf(out, outlen, "%s/sessions/%s/%s", host_store_dir(s->host->store), s->rec->sid, name);
}

static void session_free(host_session_t *s)
{
    if (s == NULL)
        return;
    if (s->agent != NULL)
        host_agent_free(s->agent);
    host_store_session_free(s->rec);
    free(s->ask_answer);
    mask_clear(s);
    free(s);
}

static void session_link(host_t *h, host_session_t *s)
{
    host_session_t **pp = &h->sessions;
    while (*pp != NULL)
        pp = &(*pp)->next;
    s->next = NULL;
    *pp = s;
}

static void session_unlink(host_t *h, host_session_t *s)
{
    for (host_session_t **pp = &h->sessions; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            return;
        }
}

host_session_t *host_session_find(host_t *h, const char *key)
{
    if (key == NULL)
        return NULL;
    for (host_session_t *s = h->sessions; s != NULL; s = s->next)
        if (strcmp(s->rec->sid, key) == 0)
            return s;
    for (host_session_t *s = h->sessions; s != NULL; s = s->next)
        if (strcmp(s->rec->git.name, key) == 0)
            return s;
    return NULL;
}

host_session_t *host_session_by_token(host_t *h, const char *token)
{
    size_t n = token != NULL ? strlen(token) : 0;
    host_session_t *found = NULL;
    if (n != HOST_TOKEN_LEN)
        return NULL;
    for (host_session_t *s = h->sessions; s != NULL; s = s->next) {
        unsigned char diff = 0;
        if (s->token[0] == '\0')
            continue;
        for (size_t i = 0; i < HOST_TOKEN_LEN; ++i)
            diff |= (unsigned char)(s->token[i] ^ token[i]);
        if (diff == 0)
            found = s;
    }
    return found;
}

static void new_token(char *out)
{
    unsigned char r[24];
    static const char hex[] = "0123456789abcdef";
    size_t got = 0;
    while (got < sizeof(r)) {
        ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        CR_ASSERT(n > 0);
        got += (size_t)n;
    }
    memcpy(out, "cst_", 4);
    for (size_t i = 0; i < sizeof(r); ++i) {
        out[4 + 2 * i] = hex[r[i] >> 4];
        out[5 + 2 * i] = hex[r[i] & 15];
    }
    out[HOST_TOKEN_LEN] = '\0';
    explicit_bzero(r, sizeof(r));
}

/* ---- agents -------------------------------------------------------------------------------------------------- */

static void start_next_task(host_session_t *s);
static void on_agent_exit(host_agent_t *a, int exit_status, int term_signal, const char *stderr_tail, void *data);
static void housekeep(host_t *h, int spare, const char *base);
static void create_jobs_orphan(host_t *h);

static void on_agent_event(host_agent_t *a, const char *kind, int pri, const char *body, size_t len, void *data)
{
    host_session_t *s = data;
    (void)a;
    host_emit(s, kind, pri, body, len);
    if (strcmp(kind, "approval.request") == 0)
        emit_state(s, HOST_STORE_WAITING, NULL);
}

static void on_agent_resume_id(host_agent_t *a, const char *id, void *data)
{
    host_session_t *s = data;
    (void)a;
    if (s->rec->resume_id != NULL && strcmp(s->rec->resume_id, id) == 0)
        return;
    free(s->rec->resume_id);
    s->rec->resume_id = xstrdup(id);
    if (host_store_session_save(s->rec) != 0)
        cr_log_sid(CR_LOG_WARN, s->rec->sid, "cannot save the resume id: %s", cr_error_last()->message);
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t x = 1469598103934665603ULL;
    for (size_t i = 0; i < n; ++i)
        x = (x ^ (unsigned char)p[i]) * 1099511628211ULL;
    return x | 1; /* never 0, which means "none" */
}

/* Builds the diff.ready body of the session's changes against its base into b. Returns 0, or an error. */
static int diff_body(cr_buf_t *b, host_session_t *s, uint64_t *hash)
{
    host_t *h = s->host;
    host_git_diff_t d;
    int rc;
    if ((rc = host_git_diff(&d, h->git, &s->rec->git, HOST_GIT_SINCE_BASE, HOST_DIFF_FILES_MAX, 64 * 1024)) != 0)
        return rc;
    if (hash != NULL)
        *hash = fnv1a(d.patch.base != NULL ? d.patch.base : "", d.patch.len);
    rc = cr_mpw_map(b, 7) || mpw_kv(b, "base", s->rec->git.base) || mpw_kv(b, "head", s->rec->git.branch) ||
         CR_MPW_LIT(b, "files") || cr_mpw_array(b, (uint32_t)d.nfiles);
    for (size_t i = 0; rc == 0 && i < d.nfiles; ++i) {
        const char *st = host_file_status_word(d.files[i].status);
        rc = cr_mpw_map(b, 4) || mpw_kv(b, "path", d.files[i].path) || mpw_kv(b, "status", st) ||
             CR_MPW_LIT(b, "add") || cr_mpw_uint(b, d.files[i].additions) || CR_MPW_LIT(b, "del") ||
             cr_mpw_uint(b, d.files[i].deletions);
    }
    if (rc == 0)
        rc = CR_MPW_LIT(b, "add") || cr_mpw_uint(b, d.additions) || CR_MPW_LIT(b, "del") ||
             cr_mpw_uint(b, d.deletions) || CR_MPW_LIT(b, "patch") ||
             cr_mpw_str(b, d.patch.base != NULL ? d.patch.base : "", d.patch.len) || CR_MPW_LIT(b, "truncated") ||
             cr_mpw_bool(b, d.patch_truncated || d.files_truncated);
    host_git_diff_free(&d);
    return rc != 0 ? cr_error_set(CR_ETOOLARGE, "patch", "the diff does not fit an event") : 0;
}

const char *host_file_status_word(char status)
{
    switch (status) {
    case 'A': return "added";
    case 'D': return "deleted";
    case 'R': return "renamed";
    case 'T': return "typechange";
    default: return "modified";
    }
}

static int waiting_on_human(const host_session_t *s)
{
    return s->rec->has_needs || s->ask_rid[0] != '\0';
}

static void on_agent_turn_end(host_agent_t *a, int asked_question, void *data)
{
    host_session_t *s = data;
    host_t *h = s->host;
    int ch;
    (void)a;
    (void)asked_question;
    ch = host_git_has_changes(h->git, &s->rec->git, HOST_GIT_SINCE_HEAD);
    if (ch < 0)
        cr_log_sid(CR_LOG_WARN, s->rec->sid, "cannot look for changes: %s", cr_error_last()->message);
    if (ch == 1) {
        cr_buf_t b;
        uint64_t hash = 0;
        cr_buf_init(&b, BODY_MAX);
        if (diff_body(&b, s, &hash) != 0)
            cr_log_sid(CR_LOG_WARN, s->rec->sid, "cannot compute the diff: %s", cr_error_last()->message);
        else if (hash != s->last_diff_hash || !(s->rec->has_needs && strcmp(s->rec->needs_k, "diff.ready") == 0)) {
            s->last_diff_hash = hash;
            host_emit(s, "diff.ready", 2, b.base, b.len);
        }
        cr_buf_free(&b);
    }
    if (waiting_on_human(s)) {
        emit_state(s, HOST_STORE_WAITING, NULL);
        return;
    }
    if (host_store_task_count(s->rec) > 0) {
        start_next_task(s);
        return;
    }
    emit_state(s, HOST_STORE_IDLE, NULL);
}

/* Starts the agent of s in its worktree, resuming its conversation when it has a resume id. */
static int start_agent(host_session_t *s, const char *prompt)
{
    host_t *h = s->host;
    host_store_session_t *r = s->rec;
    host_agent_opts_t o = {0};
    host_agent_cb_t cb = {on_agent_event, on_agent_resume_id, on_agent_turn_end, on_agent_exit};
    char e_sid[96], e_tok[96], e_url[PATH_MAX + 32], e_idn[96], e_mail[320], e_phone[64];
    char *with_idn = NULL, *inject[HOST_INJECT_MAX];
    size_t ninject = 0;
    const char *env[7 + HOST_INJECT_MAX];
    size_t n = 0;
    int rc;

    if (strcmp(r->agent, "codex") == 0) {
        o.kind = HOST_AGENT_CODEX;
        o.program = r->cmd != NULL ? r->cmd : h->codex_cmd;
    } else if (strcmp(r->agent, "shell") == 0) {
        o.kind = HOST_AGENT_SHELL;
        o.program = r->cmd != NULL ? r->cmd : r->task;
    } else {
        o.kind = HOST_AGENT_CLAUDE;
        o.program = r->cmd != NULL ? r->cmd : h->claude_cmd;
    }
    new_token(s->token);
    snprintf(e_sid, sizeof(e_sid), "CORRAL_SESSION=%s", r->sid);
    snprintf(e_tok, sizeof(e_tok), "CORRAL_TOKEN=%s", s->token);
    env[n++] = e_sid;
    env[n++] = e_tok;
    if (h->url != NULL) {
        snprintf(e_url, sizeof(e_url), "CORRAL_URL=%s", h->url);
        env[n++] = e_url;
    }
    if (r->identity[0] != '\0') {
        char email[256] = "", phone[40] = "";
        snprintf(e_idn, sizeof(e_idn), "CORRAL_IDENTITY=%s", r->identity);
        env[n++] = e_idn;
        if (h->hooks.identity_env != NULL)
            h->hooks.identity_env(r->identity, email, sizeof(email), phone, sizeof(phone), h->hooks.identity_data);
        mask_clear(s);
        if (h->hooks.identity_secrets != NULL) {
            ninject = h->hooks.identity_secrets(r->identity, r->sid, inject, s->mask, HOST_INJECT_MAX, h->hooks.identity_data);
            s->nmask = ninject;
            for (size_t i = 0; i < ninject; ++i)
                env[n++] = inject[i];
        }
        snprintf(e_mail, sizeof(e_mail), "CORRAL_EMAIL=%s", email);
        snprintf(e_phone, sizeof(e_phone), "CORRAL_PHONE=%s", phone);
        env[n++] = e_mail;
        env[n++] = e_phone;
        if (prompt != NULL && o.kind != HOST_AGENT_SHELL) {
            /* the identity text (DESIGN.md §8): who the agent is when it signs up for things, and how it reads its mail */
            static const char fmt[] =
                "You work as the identity \"%s\": your own email address is %s%s%s. Use them (never a person's) when a "
                "service asks for an email address or a phone number. To read a verification mail or SMS, run "
                "`corral inbox --wait 120 --subject WORD` (the whole message) or `corral otp --wait 120` (just the "
                "code); `corral secret get KEY` and `corral secret set KEY VALUE` keep credentials in your own "
                "encrypted vault. Never print a secret's value.\n\nYour task:\n%s";
            size_t len = sizeof(fmt) + strlen(r->identity) + strlen(email) + strlen(phone) + strlen(prompt) + 32;
            if ((with_idn = malloc(len)) != NULL) {
                snprintf(with_idn, len, fmt, r->identity, email[0] != '\0' ? email : "(none yet)",
                         phone[0] != '\0' ? " and your phone number is " : "", phone, prompt);
                prompt = with_idn;
            }
        }
    }
    env[n] = NULL;
    o.cwd = r->git.worktree;
    o.env = env;
    o.prompt = o.kind == HOST_AGENT_SHELL ? NULL : prompt;
    o.resume_id = o.kind == HOST_AGENT_SHELL ? NULL : r->resume_id;
    s->stopping = 0;
    rc = host_agent_start(&s->agent, h->loop, &o, &cb, s);
    explicit_bzero(e_tok, sizeof(e_tok));
    free(with_idn);
    for (size_t i = 0; i < ninject; ++i)
        sodium_free(inject[i]);
    if (rc != 0) {
        s->agent = NULL;
        memset(s->token, 0, sizeof(s->token));
    }
    return rc;
}

static void on_agent_exit(host_agent_t *a, int exit_status, int term_signal, const char *stderr_tail, void *data)
{
    host_session_t *s = data;
    host_store_session_t *r = s->rec;
    char reason[4200];
    host_agent_free(a);
    s->agent = NULL;
    memset(s->token, 0, sizeof(s->token));
    s->ask_rid[0] = '\0'; /* the asker is gone with the agent */
    r->has_exit = 1;
    r->exit_status = exit_status;
    r->exit_signal = term_signal;
    cr_log_sid(CR_LOG_INFO, r->sid, "agent ended: status %d, signal %d", exit_status, term_signal);
    if (s->stopping) {
        s->stopping = 0;
        emit_state(s, HOST_STORE_SUSPENDED, s->host->shutting_down ? "corrald stopped" : "suspended");
    } else if (exit_status == 0 && term_signal == 0) {
        cr_buf_t b;
        cr_buf_init(&b, 4096);
        cr_mpw_map(&b, 1);
        mpw_kv(&b, "summary", "the agent finished");
        host_emit(s, "session.done", 1, b.base, b.len);
        cr_buf_free(&b);
        emit_state(s, HOST_STORE_DONE, NULL);
    } else {
        if (term_signal != 0)
            snprintf(reason, sizeof(reason), "the agent was killed by signal %d%s%s", term_signal,
                     stderr_tail[0] != '\0' ? ": " : "", stderr_tail);
        else
            snprintf(reason, sizeof(reason), "the agent exited with status %d%s%s", exit_status,
                     stderr_tail[0] != '\0' ? ": " : "", stderr_tail);
        emit_state(s, HOST_STORE_FAILED, reason);
    }
    if (s->host->shutting_down && s->host->hooks.on_event != NULL)
        s->host->hooks.on_event(s, s->host->hooks.event_data);
}

static void start_next_task(host_session_t *s)
{
    char *text = NULL;
    int rc;
    if (s->agent == NULL || host_agent_busy(s->agent) || waiting_on_human(s))
        return;
    if ((rc = host_store_task_take(&text, s->rec)) != 0) {
        if (rc != CR_ENOTFOUND)
            cr_log_sid(CR_LOG_WARN, s->rec->sid, "tasks.md: %s", cr_error_last()->message);
        return;
    }
    if (host_agent_reply(s->agent, text) != 0)
        cr_log_sid(CR_LOG_WARN, s->rec->sid, "cannot hand the task to the agent: %s", cr_error_last()->message);
    else
        emit_state(s, HOST_STORE_RUNNING, NULL);
    free(text);
}

/* ---- the host ------------------------------------------------------------------------------------------------ */

int host_new(host_t **out, uv_loop_t *loop, const host_opts_t *opts)
{
    host_t *h;
    host_store_session_t **list = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    h->loop = loop;
    if ((h->tflush = malloc(sizeof(*h->tflush))) != NULL) {
        uv_timer_init(loop, h->tflush);
        h->tflush->data = h;
    }
    h->claude_cmd = xstrdup(opts->claude_cmd != NULL ? opts->claude_cmd : "claude");
    h->codex_cmd = xstrdup(opts->codex_cmd != NULL ? opts->codex_cmd : "codex");
    h->url = xstrdup(opts->url);
    h->home = xstrdup(opts->home);
    h->seal_off = opts->seal != NULL && strcmp(opts->seal, "off") == 0;
    if (opts->seal != NULL && strcmp(opts->seal, "off") != 0 && strcmp(opts->seal, "auto") != 0) {
        rc = cr_error_set(CR_ECONFIG, "relay.seal", "relay.seal must be auto or off, not %s", opts->seal);
        goto done;
    }
    if ((rc = host_git_policy_parse(&h->policy, opts->merge_policy)) != 0)
        goto done;
    if ((rc = host_git_open(&h->git, opts->repo != NULL ? opts->repo : ".")) != 0)
        goto done;
    h->no_spares = opts->no_spares;
    host_git_set_spares(h->git, !h->no_spares);
    if ((rc = host_store_open(&h->store, host_git_workdir(h->git))) != 0)
        goto done;
    host_seal_refresh(h);
    if ((rc = host_store_session_list(&list, &n, h->store)) != 0)
        goto done;
    for (size_t i = 0; i < n; ++i) {
        host_session_t *s = calloc(1, sizeof(*s));
        if (s == NULL)
            abort();
        s->host = h;
        s->rec = list[i];
        list[i] = NULL; /* now owned by s */
        session_link(h, s);
        switch (s->rec->state) {
        case HOST_STORE_STARTING:
        case HOST_STORE_RUNNING:
        case HOST_STORE_WAITING:
        case HOST_STORE_IDLE:
            cr_log_sid(CR_LOG_INFO, s->rec->sid, "session %s was active when corrald stopped: suspended", s->rec->git.name);
            emit_state(s, HOST_STORE_SUSPENDED, "corrald restarted");
            break;
        default:
            break;
        }
    }
    housekeep(h, n > 0, NULL); /* trash left by the last run; a spare when the repository has sessions */
    rc = 0;
done:
    host_store_session_list_free(list, n);
    if (rc != 0) {
        host_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* ---- housekeeping on the thread pool ---------------------------------------------------------------------------
 *
 * Slow file work that must not stall the loop: deleting removed sessions' worktrees (host_git_trash_empty), and one
 * spare worktree of the base branch kept written ahead of time so that `corral new` takes it instead of writing every
 * file (host_git_spare_make; git.c). It runs after each session is created or removed, after an approved diff moved
 * base, and at start (the spare only when the repository has sessions); one job at a time, and a request that comes
 * while one runs makes it run once more. */

typedef struct st_host_spare_job_t {
    uv_work_t work;
    host_t *h; /* NULL once the host is freed: the job then only frees itself */
    char repo[PATH_MAX], base[HOST_GIT_BRANCH_MAX];
    int spare; /* make a spare too */
    int rc;
    char error[256];
} host_spare_job_t;

static void housekeep_work(uv_work_t *w)
{
    host_spare_job_t *j = w->data;
    if (host_git_trash_empty(j->repo) != 0)
        cr_log(CR_LOG_WARN, "removed worktrees: %s", cr_error_last()->message);
    if (j->spare && (j->rc = host_git_spare_make(j->repo, j->base[0] != '\0' ? j->base : NULL)) != 0)
        snprintf(j->error, sizeof(j->error), "%s", cr_error_last()->message);
}

static void housekeep_after(uv_work_t *w, int status)
{
    host_spare_job_t *j = w->data;
    host_t *h = j->h;
    if (h != NULL) {
        h->spare_job = NULL;
        if (status == 0 && j->rc != 0)
            cr_log(CR_LOG_WARN, "spare worktree not made: %s", j->error);
        if (h->spare_again) {
            h->spare_again = 0;
            housekeep(h, h->spare_want, h->spare_base);
        } else {
            malloc_trim(0); /* what libgit2 took for 10,000 files on the pool's threads goes back to the system */
        }
    }
    free(j);
}

/* Asks for the trash to be emptied and, with spare, for a spare of base ("" or NULL: the current branch). */
static void housekeep(host_t *h, int spare, const char *base)
{
    host_spare_job_t *j;
    spare = spare && !h->no_spares;
    if (h->shutting_down)
        return;
    if (h->spare_job != NULL) {
        h->spare_again = 1;
        if (spare) {
            h->spare_want = 1;
            snprintf(h->spare_base, sizeof(h->spare_base), "%s", base != NULL ? base : "");
        }
        return;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return;
    j->h = h;
    j->work.data = j;
    j->spare = spare;
    snprintf(j->repo, sizeof(j->repo), "%s", host_git_workdir(h->git));
    snprintf(j->base, sizeof(j->base), "%s", base != NULL ? base : "");
    h->spare_want = 0;
    if (uv_queue_work(h->loop, &j->work, housekeep_work, housekeep_after) != 0) {
        free(j);
        return;
    }
    h->spare_job = j;
}

void host_free(host_t *h)
{
    host_session_t *s;
    if (h == NULL)
        return;
    if (h->spare_job != NULL)
        h->spare_job->h = NULL;
    create_jobs_orphan(h);
    while ((s = h->sessions) != NULL) {
        h->sessions = s->next;
        session_free(s);
    }
    if (h->shutdown_timer != NULL)
        uv_close((uv_handle_t *)h->shutdown_timer, (uv_close_cb)free);
    if (h->tflush != NULL)
        uv_close((uv_handle_t *)h->tflush, (uv_close_cb)free);
    host_store_close(h->store);
    host_git_close(h->git);
    free(h->claude_cmd);
    free(h->codex_cmd);
    free(h->url);
    free(h->home);
    free(h);
}

static size_t agents_running(host_t *h)
{
    size_t n = 0;
    for (host_session_t *s = h->sessions; s != NULL; s = s->next)
        n += s->agent != NULL;
    return n;
}

static void on_shutdown_timer(uv_timer_t *t)
{
    host_t *h = t->data;
    size_t n = agents_running(h);
    if ((n > 0 || h->creating != NULL) && uv_now(h->loop) - h->shutdown_started < HOST_STOP_GRACE_MS + 2000)
        return; /* a session being made is finished (and refused, as corrald is stopping) before the loop ends */
    if (n > 0)
        cr_log(CR_LOG_WARN, "shutdown: %zu agents did not end; abandoning them", n);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    h->shutdown_timer = NULL;
    if (h->hooks.on_shutdown_done != NULL)
        h->hooks.on_shutdown_done(h->hooks.shutdown_data);
}

void host_shutdown(host_t *h)
{
    if (h->shutting_down)
        return;
    h->shutting_down = 1;
    for (host_session_t *s = h->sessions; s != NULL; s = s->next)
        if (s->agent != NULL) {
            s->stopping = 1;
            host_agent_stop(s->agent, HOST_STOP_GRACE_MS);
        }
    if ((h->shutdown_timer = malloc(sizeof(*h->shutdown_timer))) == NULL)
        abort();
    uv_timer_init(h->loop, h->shutdown_timer);
    h->shutdown_timer->data = h;
    h->shutdown_started = uv_now(h->loop);
    uv_timer_start(h->shutdown_timer, on_shutdown_timer, 0, 50);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        cr_log(CR_LOG_WARN, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void remove_record(host_session_t *s)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/sessions/%s", host_store_dir(s->host->store), s->rec->sid);
    host_store_transcript_discard(s->rec);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- creating a session: its worktree on the thread pool --------------------------------------------------------
 *
 * Taking the spare costs tens of milliseconds, but with none ready (the first session, a burst of them) writing every
 * file takes hundreds, and the loop serves every other session meanwhile: so the worktree is made on libuv's thread
 * pool, with a repository handle of the job's own (git.c's spare markers and git's lock files keep it apart from what
 * the loop does to other branches), and the rest — record, agent, events — follows on the loop. */

typedef struct st_host_create_job_t {
    uv_work_t work;
    host_t *h; /* NULL once the host is freed */
    struct st_host_create_job_t *next; /* in h->creating */
    host_created_cb cb;
    void *data;
    char *task, *name, *agent, *cmd, *identity, *base; /* copies ("" none) */
    char repo[PATH_MAX];
    int spares;
    host_git_session_t g;
    int rc;
    cr_error_t err;
    double git_ms;
} host_create_job_t;

/* The host is being freed: the jobs running only free themselves when they end. */
static void create_jobs_orphan(host_t *h)
{
    for (host_create_job_t *j = h->creating; j != NULL; j = j->next)
        j->h = NULL;
}

static void create_job_free(host_create_job_t *j)
{
    free(j->task), free(j->name), free(j->agent), free(j->cmd), free(j->identity), free(j->base);
    free(j);
}

static void create_work(uv_work_t *w)
{
    host_create_job_t *j = w->data;
    host_git_repo_t *repo = NULL;
    uint64_t t0 = uv_hrtime();
    if ((j->rc = host_git_open(&repo, j->repo)) == 0) {
        host_git_set_spares(repo, j->spares);
        j->rc = host_git_session_create(&j->g, repo, j->name, j->base[0] != '\0' ? j->base : NULL, NULL);
        host_git_close(repo);
    }
    if (j->rc != 0)
        j->err = *cr_error_last();
    j->git_ms = (double)(uv_hrtime() - t0) / 1e6;
}

/* The worktree is there: the record, the agent, the events. On failure the worktree and branch are removed. */
static int create_finish(host_session_t **out, host_t *h, host_create_job_t *j)
{
    host_session_t *s = NULL;
    host_git_session_t *g = &j->g;
    host_store_session_opts_t so = {0};
    int rc;

    *out = NULL;
    if (h->shutting_down) {
        rc = cr_error_set(CR_ECONFLICT, NULL, "corrald is shutting down");
        goto done;
    }
    so.task = j->task;
    so.agent = j->agent;
    so.cmd = j->cmd[0] != '\0' ? j->cmd : NULL;
    so.identity = j->identity;
    so.git = g;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        abort();
    s->host = h;
    if ((rc = host_store_session_create(&s->rec, h->store, &so)) != 0)
        goto done;
    if ((rc = start_agent(s, j->task)) != 0) {
        const cr_error_t *e = cr_error_last();
        if (e->field[0] == '\0')
            cr_error_set(rc, "agent", "%s", e->message);
        goto done;
    }
    session_link(h, s);
    {
        cr_buf_t b;
        size_t tlen = strlen(j->task);
        cr_buf_init(&b, BODY_MAX);
        cr_mpw_map(&b, 5);
        mpw_kv(&b, "name", g->name);
        mpw_kv(&b, "agent", j->agent);
        mpw_kv(&b, "branch", g->branch);
        mpw_kv(&b, "base", g->base);
        CR_MPW_LIT(&b, "prompt");
        cr_mpw_str(&b, j->task, tlen > 60000 ? 60000 : tlen);
        host_emit(s, "session.started", 1, b.base, b.len);
        cr_buf_free(&b);
    }
    if (strcmp(j->agent, "shell") == 0) /* claude and codex say so when their turn starts */
        emit_state(s, HOST_STORE_RUNNING, NULL);
    activity(s, "cli", "session.create", g->name, "ok");
    cr_log_sid(CR_LOG_INFO, s->rec->sid, "session %s started (%s) in %s, %s in %.0f ms", g->name, j->agent, g->worktree,
               g->from_spare ? "a spare worktree taken" : "worktree written", j->git_ms);
    housekeep(h, 1, g->base);
    *out = s;
    s = NULL;
    rc = 0;
done:
    if (rc != 0) {
        cr_error_t saved = *cr_error_last();
        if (s != NULL && s->rec != NULL)
            remove_record(s);
        host_git_session_remove(h->git, g, 0);
        housekeep(h, 1, g->base);
        session_free(s);
        cr_error_set(saved.code, saved.field, "%s", saved.message);
    }
    return rc;
}

static void create_after(uv_work_t *w, int status)
{
    host_create_job_t *j = w->data;
    host_t *h = j->h;
    host_session_t *s = NULL;
    int rc = j->rc;

    (void)status; /* never cancelled */
    if (h == NULL) {
        if (rc == 0)
            cr_log(CR_LOG_WARN, "corrald stopped while making session %s: its branch and worktree are left", j->name);
        create_job_free(j);
        return;
    }
    for (host_create_job_t **pp = &h->creating; *pp != NULL; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    if (rc != 0)
        cr_error_set(j->err.code, j->err.field, "%s", j->err.message);
    else
        rc = create_finish(&s, h, j);
    j->cb(s, rc, j->data);
    create_job_free(j);
    malloc_trim(0);
}

static char *dup_or_empty(const char *s)
{
    return xstrdup(s != NULL ? s : "");
}

int host_session_create(host_t *h, const host_create_t *c, host_created_cb cb, void *data)
{
    const char *agent = c->agent != NULL && c->agent[0] != '\0' ? c->agent : "claude";
    host_create_job_t *j;
    int rc;

    if (h->shutting_down)
        return cr_error_set(CR_ECONFLICT, NULL, "corrald is shutting down");
    if (c->task == NULL || c->task[0] == '\0')
        return cr_error_set(CR_EBODY, "task", "a task is needed");
    if (c->name == NULL || c->name[0] == '\0')
        return cr_error_set(CR_EBODY, "name", "a session name is needed (--name NAME)");
    if (strcmp(agent, "claude") != 0 && strcmp(agent, "codex") != 0 && strcmp(agent, "shell") != 0)
        return cr_error_set(CR_EBODY, "agent", "unknown agent '%s': use claude, codex or shell", agent);
    if ((rc = host_git_check_name(c->name)) != 0)
        return rc;
    if (host_session_find(h, c->name) != NULL)
        return cr_error_set(CR_EEXISTS, "name", "a session named %s exists already", c->name);
    for (host_create_job_t *p = h->creating; p != NULL; p = p->next)
        if (strcmp(p->name, c->name) == 0)
            return cr_error_set(CR_EEXISTS, "name", "a session named %s is being made", c->name);
    if (c->identity != NULL && c->identity[0] != '\0' && !cr_id_valid(c->identity, strlen(c->identity)))
        return cr_error_set(CR_EBADNAME, "identity", "not a valid identity name: %s", c->identity);
    if ((j = calloc(1, sizeof(*j))) == NULL)
        abort();
    j->h = h;
    j->cb = cb;
    j->data = data;
    j->work.data = j;
    j->task = dup_or_empty(c->task), j->name = dup_or_empty(c->name), j->agent = dup_or_empty(agent);
    j->cmd = dup_or_empty(c->cmd), j->identity = dup_or_empty(c->identity), j->base = dup_or_empty(c->base);
    j->spares = !h->no_spares;
    snprintf(j->repo, sizeof(j->repo), "%s", host_git_workdir(h->git));
    if (uv_queue_work(h->loop, &j->work, create_work, create_after) != 0) {
        create_job_free(j);
        return cr_error_set(CR_EIO, NULL, "cannot queue the session's worktree");
    }
    j->next = h->creating;
    h->creating = j;
    return 0;
}

int host_session_remove(host_t *h, host_session_t *s, int keep_branch)
{
    int rc;
    if (s->agent != NULL) {
        host_agent_free(s->agent);
        s->agent = NULL;
    }
    rc = host_git_session_remove(h->git, &s->rec->git, keep_branch);
    housekeep(h, 0, NULL);
    if (rc == CR_ENOTFOUND)
        rc = 0;
    activity(s, "cli", "session.remove", s->rec->git.name, rc == 0 ? "ok" : cr_error_last()->message);
    remove_record(s);
    session_unlink(h, s);
    session_free(s);
    return rc == 0 ? 0 : -1;
}

/* ---- actions ------------------------------------------------------------------------------------------------- */

static int finished(const host_session_t *s)
{
    return s->rec->state == HOST_STORE_DONE || s->rec->state == HOST_STORE_FAILED;
}

static int needs_is(const host_session_t *s, const char *k)
{
    return s->rec->has_needs && strcmp(s->rec->needs_k, k) == 0;
}

/* approve of a diff.ready: commit on the session branch as the identity, then merge into base by policy. */
static int approve_diff(host_action_result_t *out, host_session_t *s)
{
    host_t *h = s->host;
    host_store_session_t *r = s->rec;
    host_git_merge_result_t mr = {0};
    char who_name[HOST_STORE_SID_MAX + 16], who_email[HOST_STORE_SID_MAX + 64], msg[512], first[100];
    host_git_identity_t who = {who_name, who_email};
    size_t i;
    int rc;

    if (r->identity[0] != '\0')
        snprintf(who_name, sizeof(who_name), "%s", r->identity);
    else
        snprintf(who_name, sizeof(who_name), "%s-agent", r->git.name);
    snprintf(who_email, sizeof(who_email), "%s@corral.invalid", who_name);
    for (i = 0; r->task[i] != '\0' && r->task[i] != '\n' && i < sizeof(first) - 1; ++i)
        first[i] = r->task[i];
    first[i] = '\0';
    snprintf(msg, sizeof(msg), "%s: %s\n\nMade by a Corral session (%s, %s).\n", r->git.name, first, r->agent, r->sid);
    rc = host_git_commit(out->commit, h->git, &r->git, &who, msg);
    if (rc == HOST_GIT_NOTHING) {
        out->commit[0] = '\0';
    } else if (rc != 0) {
        out->commit[0] = '\0';
        snprintf(out->detail, sizeof(out->detail), "commit failed: %s", cr_error_last()->message);
        return -1;
    }
    rc = host_git_merge(&mr, h->git, &r->git, h->policy, &who, NULL);
    if (rc == 0) {
        housekeep(h, 1, r->git.base); /* base moved on: the spare follows */
        snprintf(out->detail, sizeof(out->detail), "committed %.12s on %.100s; merged into %.100s (%s)", out->commit,
                 r->git.branch, r->git.base, host_git_policy_name(h->policy));
    } else if (rc == HOST_GIT_NOTHING) {
        snprintf(out->detail, sizeof(out->detail), "committed %.12s on %.100s; not merged (policy %s)", out->commit,
                 r->git.branch, host_git_policy_name(h->policy));
        rc = 0;
    } else {
        snprintf(out->detail, sizeof(out->detail), "committed %.12s on %.100s; merge into %.100s failed: %.255s", out->commit,
                 r->git.branch, r->git.base, cr_error_last()->message);
        rc = rc == HOST_GIT_ECONFLICT || rc == HOST_GIT_ENOTFF || rc == HOST_GIT_EDIRTY ? CR_ECONFLICT : -1;
    }
    host_git_merge_result_free(&mr);
    if (host_store_session_save(r) != 0) /* base_commit moved */
        cr_log_sid(CR_LOG_WARN, r->sid, "cannot save: %s", cr_error_last()->message);
    return rc;
}

/* The `diff` action: the session's whole current diff as diff.full events {head, part, parts, patch, truncated?} of
 * at most HOST_DIFF_PART bytes each, cut after a newline where one is near (else before a UTF-8 lead byte), so that
 * each part is valid UTF-8 and the phone joins them in part order. */
static int send_full_diff(host_action_result_t *out, host_session_t *s)
{
    host_git_diff_t d;
    cr_buf_t b;
    size_t off = 0, nparts = 0, cuts[HOST_DIFF_FULL_MAX / (HOST_DIFF_PART / 2) + 2];
    int rc;
    if ((rc = host_git_diff(&d, s->host->git, &s->rec->git, HOST_GIT_SINCE_BASE, SIZE_MAX, HOST_DIFF_FULL_MAX)) != 0)
        return rc;
    const char *p = d.patch.base != NULL ? d.patch.base : "";
    size_t len = d.patch.len;
    cuts[nparts++] = 0;
    while (len - off > HOST_DIFF_PART && nparts < sizeof(cuts) / sizeof(cuts[0])) {
        size_t end = off + HOST_DIFF_PART, nl = end;
        while (nl > off + HOST_DIFF_PART / 2 && p[nl - 1] != '\n')
            --nl;
        if (p[nl - 1] == '\n')
            end = nl;
        else
            while (end > off + 1 && ((unsigned char)p[end] & 0xc0) == 0x80)
                --end;
        off = end;
        cuts[nparts++] = off;
    }
    cr_buf_init(&b, HOST_DIFF_PART + 256);
    for (size_t i = 0; i < nparts && rc == 0; ++i) {
        size_t from = cuts[i], to = i + 1 < nparts ? cuts[i + 1] : len;
        int last_trunc = i + 1 == nparts && (d.patch_truncated || d.files_truncated);
        cr_buf_reset(&b);
        rc = cr_mpw_map(&b, last_trunc ? 5 : 4) || mpw_kv(&b, "head", s->rec->git.branch) || CR_MPW_LIT(&b, "part") ||
             cr_mpw_uint(&b, i + 1) || CR_MPW_LIT(&b, "parts") || cr_mpw_uint(&b, nparts) || CR_MPW_LIT(&b, "patch") ||
             cr_mpw_str(&b, p + from, to - from) || (last_trunc && (CR_MPW_LIT(&b, "truncated") || cr_mpw_bool(&b, 1)));
        if (rc == 0 && host_emit(s, "diff.full", 1, b.base, b.len) != 0)
            rc = -1;
    }
    if (rc == 0)
        snprintf(out->detail, sizeof(out->detail), "sent the full diff: %zu bytes in %zu part%s%s", len, nparts,
                 nparts == 1 ? "" : "s", d.patch_truncated || d.files_truncated ? " (cut at the 4 MiB limit)" : "");
    cr_buf_free(&b);
    host_git_diff_free(&d);
    return rc;
}

static int apply(host_action_result_t *out, host_session_t *s, const char *kind, const char *b, size_t blen)
{
    host_store_session_t *r = s->rec;
    char *rid = body_str(b, blen, "rid"), *text = body_str(b, blen, "text"), *reason = body_str(b, blen, "reason");
    int rc = 0;

#define REFUSE(...) do { rc = cr_error_set(CR_ECONFLICT, NULL, __VA_ARGS__); goto done; } while (0)
    if (strcmp(kind, "resume") != 0 && strcmp(kind, "diff") != 0 && finished(s))
        REFUSE("session %s has ended (%s); start a new one", r->git.name, host_store_state_name(r->state));
    if (strcmp(kind, "approve") == 0 || strcmp(kind, "reject") == 0) {
        int allow = kind[0] == 'a';
        if (needs_is(s, "approval.request")) {
            if (s->agent == NULL)
                REFUSE("the agent of %s is not running (resume it first)", r->git.name);
            if (host_agent_approve(s->agent, rid != NULL ? rid : r->needs_rid, allow,
                                   allow ? NULL : reason != NULL ? reason : "The user denied this.") != 0)
                REFUSE("the request is no longer pending: %s", cr_error_last()->message);
            snprintf(out->detail, sizeof(out->detail), "%s %s", allow ? "approved" : "denied", r->needs_rid);
            out->ok = 1;
        } else if (needs_is(s, "diff.ready")) {
            if (allow) {
                rc = approve_diff(out, s);
                out->ok = rc == 0;
            } else {
                int discard = body_bool(b, blen, "discard");
                out->ok = 1;
                if (discard && host_git_discard(s->host->git, &r->git) != 0) {
                    out->ok = 0;
                    snprintf(out->detail, sizeof(out->detail), "discard failed: %s", cr_error_last()->message);
                    rc = -1;
                } else {
                    snprintf(out->detail, sizeof(out->detail), "diff rejected%s%s", discard ? "; worktree reset" : "",
                             reason != NULL ? "; reason sent to the agent" : "");
                    s->last_diff_hash = 0;
                }
                if (reason != NULL && s->agent != NULL && host_agent_reply(s->agent, reason) != 0)
                    cr_log_sid(CR_LOG_WARN, r->sid, "cannot send the reason: %s", cr_error_last()->message);
            }
        } else if (needs_is(s, "question") && !allow && s->agent != NULL) {
            if (host_agent_reply(s->agent, reason != NULL ? reason : "No.") != 0)
                REFUSE("the agent does not take input: %s", cr_error_last()->message);
            snprintf(out->detail, sizeof(out->detail), "answered no");
            out->ok = 1;
        } else {
            REFUSE("nothing in %s waits for %s", r->git.name, allow ? "an approval" : "a rejection");
        }
    } else if (strcmp(kind, "reply") == 0) {
        if (text == NULL || text[0] == '\0') {
            rc = cr_error_set(CR_EBODY, "text", "a reply needs text");
            goto done;
        }
        if (s->ask_rid[0] != '\0' && (rid == NULL || strcmp(rid, s->ask_rid) == 0)) {
            free(s->ask_answer);
            s->ask_answer = xstrdup(text);
            memcpy(s->ask_answer_rid, s->ask_rid, sizeof(s->ask_rid));
            s->ask_rid[0] = '\0';
            snprintf(out->detail, sizeof(out->detail), "answer given to corral ask");
        } else {
            if (s->agent == NULL)
                REFUSE("the agent of %s is not running (resume it first)", r->git.name);
            if (host_agent_reply(s->agent, text) != 0)
                REFUSE("the agent does not take input: %s", cr_error_last()->message);
            snprintf(out->detail, sizeof(out->detail), "sent to the agent");
        }
        out->ok = 1;
    } else if (strcmp(kind, "task") == 0) {
        if (text == NULL || text[0] == '\0') {
            rc = cr_error_set(CR_EBODY, "text", "a task needs text");
            goto done;
        }
        if ((rc = host_store_task_add(r, text)) != 0)
            goto done;
        snprintf(out->detail, sizeof(out->detail), "queued (%d in tasks.md)", host_store_task_count(r));
        out->ok = 1;
    } else if (strcmp(kind, "interrupt") == 0) {
        if (s->agent == NULL)
            REFUSE("the agent of %s is not running", r->git.name);
        if (host_agent_interrupt(s->agent) != 0)
            REFUSE("cannot interrupt: %s", cr_error_last()->message);
        snprintf(out->detail, sizeof(out->detail), "interrupted");
        out->ok = 1;
    } else if (strcmp(kind, "suspend") == 0) {
        if (r->state == HOST_STORE_SUSPENDED && s->agent == NULL)
            REFUSE("session %s is suspended already", r->git.name);
        snprintf(out->detail, sizeof(out->detail), "suspending; resume id %s", r->resume_id != NULL ? r->resume_id : "none");
        out->ok = 1;
    } else if (strcmp(kind, "resume") == 0) {
        if (s->agent != NULL)
            REFUSE("the agent of %s is running already", r->git.name);
        if (r->state == HOST_STORE_DONE)
            REFUSE("session %s is done; start a new one", r->git.name);
        if (s->host->shutting_down)
            REFUSE("corrald is shutting down");
        if ((rc = start_agent(s, text)) != 0)
            goto done;
        snprintf(out->detail, sizeof(out->detail), "resumed%s%s", r->resume_id != NULL ? " conversation " : "",
                 r->resume_id != NULL ? r->resume_id : "");
        out->ok = 1;
    } else if (strcmp(kind, "diff") == 0) {
        if ((rc = send_full_diff(out, s)) != 0)
            goto done;
        out->ok = 1;
    } else {
        rc = cr_error_set(CR_EKIND, "k", "unknown action '%s'", kind);
    }
#undef REFUSE
done:
    free(rid);
    free(text);
    free(reason);
    return rc;
}

/* Applies kind with body b once per aid and answers it with action.applied. heard: the words of a voice reply (may
 * be NULL). refuse: NULL, or the code with which the action is answered as failed without being applied, b then
 * holding the detail (a voice reply nothing could act on). */
static int action_apply(host_action_result_t *out, host_session_t *s, const char *kind, const char *aid, const char *b,
                        size_t blen, const char *heard, const char *refuse)
{
    host_store_session_t *r = s->rec;
    cr_buf_t ev;
    int rc, was_needs;

    memset(out, 0, sizeof(*out));
    if (heard != NULL)
        snprintf(out->heard, sizeof(out->heard), "%s", heard);
    if (aid != NULL && aid[0] != '\0') {
        if (!cr_id_valid(aid, strlen(aid)))
            return cr_error_set(CR_EBODY, "aid", "not a valid action id: %s", aid);
        snprintf(out->aid, sizeof(out->aid), "%s", aid);
    } else {
        cr_ulid_new(out->aid);
    }
    if (host_store_aid_seen(r, out->aid)) {
        out->ok = 1;
        out->duplicate = 1;
        snprintf(out->detail, sizeof(out->detail), "applied already");
        return 0;
    }
    was_needs = r->has_needs;
    if (refuse != NULL) {
        snprintf(out->code, sizeof(out->code), "%s", refuse);
        snprintf(out->detail, sizeof(out->detail), "%.*s", (int)blen, b);
        rc = CR_EBODY;
    } else {
        rc = apply(out, s, kind, b, blen);
    }
    if (!out->ok && out->code[0] == '\0' && out->detail[0] != '\0' && rc != 0)
        snprintf(out->code, sizeof(out->code), "%s", cr_err_code(rc));
    if (rc != 0 && !out->ok && out->detail[0] == '\0') /* not applicable: nothing happened, no event */
        return rc;
    {
        cr_error_t saved = *cr_error_last();
        host_store_aid_add(r, out->aid);
        cr_buf_init(&ev, 8192);
        cr_mpw_map(&ev, 3 + (out->commit[0] != '\0') + (out->heard[0] != '\0') + (out->code[0] != '\0'));
        mpw_kv(&ev, "aid", out->aid);
        CR_MPW_LIT(&ev, "ok");
        cr_mpw_bool(&ev, out->ok);
        mpw_kv(&ev, "detail", out->detail);
        if (out->commit[0] != '\0')
            mpw_kv(&ev, "commit", out->commit);
        if (out->heard[0] != '\0')
            mpw_kv(&ev, "heard", out->heard);
        if (out->code[0] != '\0')
            mpw_kv(&ev, "code", out->code);
        if (!out->ok || strcmp(kind, "task") == 0 || strcmp(kind, "interrupt") == 0 || strcmp(kind, "suspend") == 0 ||
            strcmp(kind, "resume") == 0 || strcmp(kind, "diff") == 0 || (strcmp(kind, "reply") == 0 && !needs_is(s, "question"))) {
            /* these answer no request, or failed to: keep what the session waits for */
            int hn = r->has_needs;
            char k[32], rd[HOST_STORE_SID_MAX + 1];
            uint64_t seq = r->needs_seq;
            memcpy(k, r->needs_k, sizeof(k));
            memcpy(rd, r->needs_rid, sizeof(rd));
            host_emit(s, "action.applied", 1, ev.base, ev.len);
            if (hn) {
                r->has_needs = 1;
                memcpy(r->needs_k, k, sizeof(k));
                memcpy(r->needs_rid, rd, sizeof(rd));
                r->needs_seq = seq;
                host_store_session_save(r);
            }
        } else {
            host_emit(s, "action.applied", 1, ev.base, ev.len);
        }
        cr_buf_free(&ev);
        activity(s, "cli", kind, out->detail, out->ok ? "ok" : "error");
        cr_error_set(saved.code, saved.field, "%s", saved.message);
    }
    /* what follows from the action */
    if (strcmp(kind, "suspend") == 0) {
        if (s->agent != NULL) {
            s->stopping = 1;
            host_agent_stop(s->agent, HOST_STOP_GRACE_MS);
        } else {
            emit_state(s, HOST_STORE_SUSPENDED, "suspended");
        }
    } else if (strcmp(kind, "resume") == 0 && out->ok) {
        emit_state(s, HOST_STORE_IDLE, NULL);
        start_next_task(s);
    } else if (out->ok && s->agent != NULL) {
        if (was_needs && (strcmp(kind, "approve") == 0 || strcmp(kind, "reject") == 0 || strcmp(kind, "reply") == 0) &&
            host_agent_busy(s->agent))
            emit_state(s, HOST_STORE_RUNNING, NULL);
        else if (!host_agent_busy(s->agent) && !waiting_on_human(s) && host_store_task_count(r) > 0)
            start_next_task(s);
        else if (!host_agent_busy(s->agent) && !waiting_on_human(s) && r->state == HOST_STORE_WAITING)
            emit_state(s, HOST_STORE_IDLE, NULL);
    }
    return rc;
}

int host_action_apply(host_action_result_t *out, host_session_t *s, const char *kind, const char *aid, const char *b,
                      size_t blen)
{
    return action_apply(out, s, kind, aid, b, blen, NULL, NULL);
}

/* ---- voice replies -------------------------------------------------------------------------------------------- */

int host_voice_keep(host_session_t *s, const char *aid, const char *audio, size_t len, const char *mime, char *path,
                    size_t cap)
{
    char dir[4096], name[96];
    int ogg = (mime != NULL && (strstr(mime, "ogg") != NULL || strstr(mime, "opus") != NULL)) ||
              (mime == NULL && len >= 4 && memcmp(audio, "OggS", 4) == 0);
    if (!cr_id_valid(aid, strlen(aid)))
        return cr_error_set(CR_EBODY, "aid", "not a valid action id");
    host_session_path(dir, sizeof(dir), s, "audio");
    snprintf(name, sizeof(name), "%s.%s", aid, ogg ? "ogg" : "wav");
    if (cr_mkdir_p(dir, 0700) != 0 || cr_write_atomic(dir, name, audio, len, 0600, 1) != 0)
        return CR_EIO;
    snprintf(path, cap, "%s/%s", dir, name);
    return 0;
}

static const char *const number_words[] = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};

/* Lowercase letters, digits and single spaces: what a transcript and a phrase are compared as. */
static void norm_words(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    int space = 1;
    for (; *in != '\0' && o + 1 < cap; ++in) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80 || c == '\'') {
            if (c == '\'')
                continue;
            out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            space = 0;
        } else if (!space) {
            out[o++] = ' ';
            space = 1;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        --o;
    out[o] = '\0';
}

/* The question's options (from needs), up to max, as malloc'd strings; returns how many. */
static size_t needs_options(const host_session_t *s, char **out, size_t max)
{
    cr_span_t v[9];
    size_t n = 0;
    if (s->rec->needs_opts != NULL)
        (void)cr_mp_str_array(s->rec->needs_opts, s->rec->needs_opts_len, v, max < 9 ? max : 9, &n); /* stored: valid */
    for (size_t i = 0; i < n; ++i) /* cr_strndup, not strndup: the spans are not NUL-terminated */
        if ((out[i] = cr_strndup(v[i].base, v[i].len)) == NULL)
            abort();
    return n;
}

size_t host_voice_phrases(const host_session_t *s, char (*out)[96], size_t max)
{
    static const char *const cmds[] = {"approve", "reject", "yes", "no", "allow", "deny"};
    char *opts[9];
    size_t n = 0, nopt;
#define ADD(str) do { if (n < max) snprintf(out[n++], 96, "%s", (str)); } while (0)
    if (needs_is(s, "approval.request") || needs_is(s, "diff.ready")) {
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); ++i)
            ADD(cmds[i]);
    } else if (needs_is(s, "question") || s->ask_rid[0] != '\0') {
        nopt = needs_options(s, opts, 9);
        for (size_t i = 0; i < nopt; ++i) {
            char w[96];
            norm_words(w, sizeof(w), opts[i]);
            if (w[0] != '\0')
                ADD(w);
            free(opts[i]);
        }
        for (size_t i = 0; i < nopt; ++i) {
            char w[32];
            snprintf(w, sizeof(w), "option %s", number_words[i]);
            ADD(w);
        }
        ADD("yes");
        ADD("no");
    }
#undef ADD
    return n;
}

/* "option two", "option 2", "number two", "two", "2" -> 2; 0 when it is none of these. */
static int option_number(const char *w)
{
    if (strncmp(w, "option ", 7) == 0)
        w += 7;
    else if (strncmp(w, "number ", 7) == 0)
        w += 7;
    if (strncmp(w, "number ", 7) == 0)
        w += 7;
    for (int i = 0; i < 9; ++i)
        if (strcmp(w, number_words[i]) == 0 || (w[0] == '1' + i && w[1] == '\0'))
            return i + 1;
    return 0;
}

static int word_in(const char *w, const char *const *set)
{
    for (; *set != NULL; ++set)
        if (strcmp(w, *set) == 0)
            return 1;
    return 0;
}

int host_action_refuse_voice(host_action_result_t *out, host_session_t *s, const char *aid, const char *code,
                             const char *detail)
{
    return action_apply(out, s, "reply", aid, detail, strlen(detail), NULL, code != NULL ? code : "not_understood");
}

int host_action_apply_voice(host_action_result_t *out, host_session_t *s, const char *aid, const char *b, size_t blen,
                            const char *heard, int from_grammar)
{
    static const char *const yes_words[] = {"approve", "yes", "allow", "accept", "approved", "yes please", "okay", "ok",
                                            "approve it", "go ahead", NULL};
    static const char *const no_words[] = {"reject", "no", "deny", "decline", "rejected", "denied", "reject it", NULL};
    char w[512], *opts[9], msg[700];
    char *rid = body_str(b, blen, "rid");
    const char *r_rid = rid != NULL ? rid : s->rec->needs_rid;
    cr_buf_t body;
    int rc;
    norm_words(w, sizeof(w), heard);
    cr_buf_init(&body, 1024);
    if (needs_is(s, "approval.request") || needs_is(s, "diff.ready")) {
        const char *kind = word_in(w, yes_words) ? "approve" : word_in(w, no_words) ? "reject" : NULL;
        if (kind == NULL) {
            snprintf(msg, sizeof(msg), "heard \"%.200s\", which is neither approve nor reject; say approve or reject, "
                     "or use the buttons", heard);
            rc = action_apply(out, s, "reply", aid, msg, strlen(msg), heard, "not_understood");
        } else {
            cr_mpw_map(&body, r_rid[0] != '\0' ? 1 : 0);
            if (r_rid[0] != '\0')
                mpw_kv(&body, "rid", r_rid);
            rc = action_apply(out, s, kind, aid, body.base, body.len, heard, NULL);
        }
    } else {
        /* a question (its options first), a `corral ask`, or words for the agent */
        size_t nopt = needs_options(s, opts, 9);
        const char *text = from_grammar ? w : heard;
        int num = option_number(w), chosen = num >= 1 && (size_t)num <= nopt ? num - 1 : -1;
        for (size_t i = 0; i < nopt && chosen < 0; ++i) {
            char o[512];
            norm_words(o, sizeof(o), opts[i]);
            if (strcmp(o, w) == 0)
                chosen = (int)i;
        }
        if (chosen >= 0)
            text = opts[chosen];
        if (nopt > 0 && num >= 1 && (size_t)num > nopt) {
            snprintf(msg, sizeof(msg), "heard \"%.200s\", but the question has %zu option%s", heard, nopt, nopt == 1 ? "" : "s");
            rc = action_apply(out, s, "reply", aid, msg, strlen(msg), heard, "not_understood");
        } else {
            cr_mpw_map(&body, rid != NULL ? 2 : 1);
            if (rid != NULL)
                mpw_kv(&body, "rid", rid);
            mpw_kv(&body, "text", text);
            rc = action_apply(out, s, "reply", aid, body.base, body.len, heard, NULL);
        }
        for (size_t i = 0; i < nopt; ++i)
            free(opts[i]);
    }
    cr_buf_free(&body);
    free(rid);
    return rc;
}

int host_ask(char *rid_out, host_session_t *s, const char *text, const char *const *options, size_t noptions)
{
    cr_buf_t b;
    int rc;
    char rid[32];
    if (text == NULL || text[0] == '\0')
        return cr_error_set(CR_EBODY, "text", "a question needs text");
    if (noptions > 9)
        return cr_error_set(CR_EBODY, "options", "a question offers at most 9 options");
    for (size_t i = 0; i < noptions; ++i)
        if (options[i] == NULL || options[i][0] == '\0' || strlen(options[i]) > 200)
            return cr_error_set(CR_EBODY, "options", "option %zu must be 1 to 200 bytes of text", i + 1);
    cr_ulid_new(rid);
    cr_buf_init(&b, BODY_MAX);
    rc = cr_mpw_map(&b, noptions > 0 ? 3 : 2) || mpw_kv(&b, "rid", rid) || CR_MPW_LIT(&b, "text") ||
         cr_mpw_str(&b, text, strlen(text) > 60000 ? 60000 : strlen(text));
    if (rc == 0 && noptions > 0) {
        rc = CR_MPW_LIT(&b, "options") || cr_mpw_array(&b, (uint32_t)noptions);
        for (size_t i = 0; rc == 0 && i < noptions; ++i)
            rc = cr_mpw_str(&b, options[i], strlen(options[i]));
    }
    if (rc == 0)
        rc = host_emit(s, "question", 2, b.base, b.len);
    cr_buf_free(&b);
    if (rc != 0)
        return rc;
    memcpy(s->ask_rid, rid, sizeof(rid));
    memcpy(rid_out, rid, sizeof(rid));
    activity(s, "agent", "ask", text, "ok");
    return 0;
}
