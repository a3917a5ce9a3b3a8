/* host.h — the core of corrald (DESIGN.md §7): one repository, its sessions (git worktree + store record + running
 * agent), the events the agents cause, and the actions that steer them. Everything runs on one uv loop. */
#ifndef HOST_HOST_H
#define HOST_HOST_H

#include "agent.h"
#include "git.h"
#include "store.h"
#include "corral/envelope.h"
#include <stdint.h>
#include <uv.h>

#define HOST_TOKEN_LEN 52       /* "cst_" + 48 hex digits */
#define HOST_STOP_GRACE_MS 5000 /* an agent asked to stop is killed after this long */
#define HOST_DIFF_FILES_MAX 200 /* files listed in a diff.ready event */
#define HOST_DIFF_PART (64u * 1024)          /* patch bytes per diff.full event (the protocol's patch limit) */
#define HOST_DIFF_FULL_MAX (4u * 1024 * 1024) /* the whole diff a `diff` action sends, at most */
#define HOST_INJECT_MAX 32      /* secrets injected into one agent's environment, at most */
#define HOST_TRANSCRIPT_FLUSH_MS 40 /* agent output reaches transcript.jsonl within this (readers flush first) */

typedef struct st_host_t host_t;
typedef struct st_host_session_t host_session_t;

/* What corrald is started with. Strings are copied. */
typedef struct st_host_opts_t {
    const char *repo;         /* a directory inside the repository; NULL: the current directory */
    const char *claude_cmd;   /* agent.claude_cmd */
    const char *codex_cmd;    /* agent.codex_cmd */
    const char *merge_policy; /* merge.policy: none|ff|squash|merge (NULL: ff) */
    const char *url;          /* what agents get in CORRAL_URL ("unix:/path/corrald.sock"); may be NULL */
    const char *home;         /* corrald's home (team.key, team.name); NULL: bodies are never sealed */
    const char *seal;         /* relay.seal: "auto" (NULL) seals bodies once the host is paired, "off" never */
    int no_spares;            /* worktree.spare = off: no spare worktree is kept (git.c) */
} host_opts_t;

/* One session: its record (rec, saved in session.json), its agent while one runs, and its token. */
struct st_host_session_t {
    host_t *host;
    host_store_session_t *rec;
    host_agent_t *agent;         /* NULL while no agent process runs */
    char token[HOST_TOKEN_LEN + 1]; /* the agent's CORRAL_TOKEN; "" while no agent runs */
    int stopping;                /* suspend or shutdown asked the agent to end: its exit means "suspended" */
    uint64_t last_diff_hash;     /* of the last diff.ready patch, so an unchanged diff is not announced again */
    char ask_rid[32];            /* a `corral ask` question waiting for its reply ("" none) */
    char *ask_answer;            /* the reply to the last ask (owned), until the asker took it */
    char ask_answer_rid[32];
    char *mask[HOST_INJECT_MAX]; /* injected secret values while its agent runs (sodium memory): masked in events */
    size_t nmask;
    host_session_t *next;
};

/* Hooks for other modules, all optional, all run on the loop. */
typedef struct st_host_hooks_t {
    /* An event was appended to the outbox (the relay link sends it). */
    void (*on_emitted)(int pri, void *data);
    void *emitted_data;
    /* An event of session s was emitted (the local API wakes its long polls). s may be freed right after. */
    void (*on_event)(host_session_t *s, void *data);
    void *event_data;
    /* The email address and phone number of identity name for a session's agent ("" none): CORRAL_EMAIL and
     * CORRAL_PHONE in its environment. */
    void (*identity_env)(const char *name, char *email, size_t email_len, char *phone, size_t phone_len, void *data);
    /* The secrets of identity name marked for injection: "KEY=VALUE" strings into env[0..max) and the values into
     * values[] (each sodium_malloc'd, freed by the caller with host_secure_free), the session's sid for the audit.
     * Returns how many. */
    size_t (*identity_secrets)(const char *name, const char *sid, char **env, char **values, size_t max, void *data);
    void *identity_data;
    /* Every agent has ended after host_shutdown. */
    void (*on_shutdown_done)(void *data);
    void *shutdown_data;
} host_hooks_t;

struct st_host_t {
    uv_loop_t *loop;
    host_git_repo_t *git;
    host_store_t *store;
    host_session_t *sessions; /* every session of the repository, oldest first */
    char *claude_cmd, *codex_cmd, *url;
    host_git_policy_t policy;
    host_hooks_t hooks;
    int shutting_down;
    uv_timer_t *shutdown_timer; /* while host_shutdown waits for the agents (freed when closed) */
    uv_timer_t *tflush;         /* writes the transcripts' buffered lines HOST_TRANSCRIPT_FLUSH_MS after an event */
    uint64_t shutdown_started;
    char *home;               /* NULL: no sealing */
    int seal_off;             /* relay.seal = off */
    uint64_t seal_checked;    /* when host_seal_refresh last looked (loop ms) */
    int no_spares;            /* worktree.spare = off */
    struct st_host_spare_job_t *spare_job; /* housekeeping running on the thread pool (NULL: none; host.c) */
    struct st_host_create_job_t *creating; /* sessions whose worktree is being made on the thread pool */
    int spare_again;          /* asked again while it ran: run once more (with a spare of spare_base if spare_want) */
    int spare_want;
    char spare_base[HOST_GIT_BRANCH_MAX];
};

/* Opens the repository (host_git_open) and its store (host_store_open), loads every session, and marks those whose
 * agent was running when corrald last stopped as suspended (resumable). On success *out is owned by the caller
 * (host_free). Returns 0, CR_ENOTFOUND ("not a git repository: DIR"), CR_ECONFIG, CR_EIO or -1. */
int host_new(host_t **out, uv_loop_t *loop, const host_opts_t *opts);

/* Frees the host: agents still running are abandoned (their process groups killed). Run the loop afterwards so
 * libuv can close their handles. NULL is fine. */
void host_free(host_t *h);

/* Asks every running agent to end cleanly; their sessions become suspended. hooks.on_shutdown_done runs once all
 * have ended (at most HOST_STOP_GRACE_MS + 2 s later). */
void host_shutdown(host_t *h);

/* Seals event bodies for the relay with the team key from now on when the host has K and knows its team
 * (<home>/team.key and team.name: made by pairing, or by the identity service) and relay.seal is not off.
 * Returns whether bodies are sealed. host_emit calls it itself every few seconds until they are. */
int host_seal_refresh(host_t *h);

/* Opens a sealed action body (a msgpack bin) into out with K and the team. Returns 0, CR_ESEAL (no key: the host
 * is not paired, or the box does not open) or a framing error. */
int host_open_action(host_t *h, cr_buf_t *out, const cr_action_t *a);

/* The session whose sid or name is key, or NULL. */
host_session_t *host_session_find(host_t *h, const char *key);

/* The session whose running agent holds token, or NULL (compared in constant time). */
host_session_t *host_session_by_token(host_t *h, const char *token);

/* What a new session is made of. */
typedef struct st_host_create_t {
    const char *task;     /* the prompt; required */
    const char *name;     /* required: [A-Za-z0-9._-], see host_git_check_name */
    const char *agent;    /* "claude" (NULL), "codex" or "shell" */
    const char *cmd;      /* shell: the command (NULL: the task); claude/codex: the program instead of the config's */
    const char *identity; /* may be NULL */
    const char *base;     /* the base branch; NULL: the branch checked out in the repository */
} host_create_t;

/* What host_session_create ends with, on the loop: the session (owned by the host) and 0, or NULL and an error code
 * with cr_error_last() naming the problem and its field. */
typedef void (*host_created_cb)(host_session_t *s, int rc, void *data);

/* Creates a session: checks the name and fields now, then creates branch corral/NAME and its worktree on libuv's
 * thread pool (the loop goes on meanwhile), then the store record, starts the agent with CORRAL_SESSION,
 * CORRAL_TOKEN, CORRAL_URL and CORRAL_IDENTITY, emits session.started and session.state, and calls cb. On failure
 * nothing is left behind (no branch, worktree or record). Returns 0 (cb will run, with the outcome), or CR_EBADNAME,
 * CR_EEXISTS (the name is a session's, or one being made), CR_EBODY (a bad field), CR_ECONFLICT (shutting down) or
 * CR_EIO at once (cb will not run). cb gets CR_ENOTFOUND (the base branch, or the agent program), CR_EEXISTS (the
 * branch or directory exists), CR_EIO or -1 besides. */
int host_session_create(host_t *h, const host_create_t *c, host_created_cb cb, void *data);

/* Removes a session: kills its agent, removes its worktree and (unless keep_branch) its branch, and deletes its
 * record under .corral/sessions/. s is freed. Returns 0 or -1 (the record is gone even then; the message says what
 * remained). */
int host_session_remove(host_t *h, host_session_t *s, int keep_branch);

/* What became of an action. */
typedef struct st_host_action_result_t {
    char aid[HOST_STORE_SID_MAX + 1];
    int ok;
    int duplicate; /* the aid was applied before; nothing was done again */
    char detail[1024];
    char commit[HOST_GIT_OID_HEX]; /* approve of a diff: the commit made ("" none) */
    char heard[512];               /* a voice reply: the words acted on ("" none) */
    char code[32];                 /* !ok: a stable word for why ("" none) */
} host_action_result_t;

/* Applies an action to session s once per aid (NULL: a fresh one): kind approve|reject|reply|task|interrupt|suspend|
 * resume with its body b (a msgpack map, may be NULL). When it is applied it is answered by an action.applied event
 * {aid, ok, detail, commit?} and *out says the same. Returns 0 (applied, ok or not: see out->ok; a duplicate too),
 * CR_EKIND (unknown kind), CR_EBODY (a missing or bad body field), CR_ECONFLICT (it does not apply now: the session
 * has finished, nothing waits for an approval, the agent is not running...; nothing was done, no event) or -1.
 * A merge conflict or a failed commit is applied with ok false and returns CR_ECONFLICT / -1 too. */
int host_action_apply(host_action_result_t *out, host_session_t *s, const char *kind, const char *aid, const char *b,
                      size_t blen);

/* Voice replies (DESIGN.md §7). A reply whose body has audio or a transcript and no text is a voice reply:
 * host_voice_keep keeps its audio with the session (<session>/audio/<aid>.wav or .ogg; path receives where);
 * host_voice_phrases lists what PocketSphinx may hear now (approve, reject, yes, no, allow, deny for an approval or
 * a diff; a question's options, "option one" ... "option N" (N <= 9), yes, no; nothing when nothing waits);
 * host_action_apply_voice acts on the words heard: for an approval or a diff, approve/yes/allow approve and
 * reject/no/deny reject; for a question with options, an option's text or "option N" answers with that option;
 * otherwise a transcript is the reply's text. What it cannot act on is answered with action.applied {ok false,
 * code not_understood}; host_action_refuse_voice answers {ok false, code, detail} for a recording nothing could make
 * out (code NULL: not_understood; bad_audio, unavailable). Both return as host_action_apply does. */
int host_voice_keep(host_session_t *s, const char *aid, const char *audio, size_t len, const char *mime, char *path,
                    size_t cap);
size_t host_voice_phrases(const host_session_t *s, char (*out)[96], size_t max);
int host_action_apply_voice(host_action_result_t *out, host_session_t *s, const char *aid, const char *b, size_t blen,
                            const char *heard, int from_grammar);
int host_action_refuse_voice(host_action_result_t *out, host_session_t *s, const char *aid, const char *code,
                             const char *detail);

/* `corral ask`: emits a question {rid, text, options?} (pri 2; at most 9 options of at most 200 bytes) for session s and remembers rid; the next reply to it sets
 * s->ask_answer. rid_out gets the rid (32 bytes). Returns 0, CR_EBODY or CR_EIO. */
int host_ask(char *rid_out, host_session_t *s, const char *text, const char *const *options, size_t noptions);

/* Emits an event of s (host_store_emit) and runs the hooks. Returns what host_store_emit returns. */
int host_emit(host_session_t *s, const char *kind, int pri, const char *body, size_t len);

/* The wire word of a file status letter of host_git_file_t: "added", "modified", "deleted", "renamed",
 * "typechange". */
const char *host_file_status_word(char status);

/* Path of a session's file under .corral/sessions/<sid>/ (name: "transcript.jsonl", "tasks.md"). */
void host_session_path(char *out, size_t outlen, host_session_t *s, const char *name);

#endif
