/* store.h — corrald's on-disk state under <repo>/.corral/ (DESIGN §7): sessions (session.json, transcript.jsonl,
 * tasks.md), the activity log (activity.csv) and the durable outbox of events (DESIGN §3).
 *
 * Formats (all readable with `cat` except the outbox):
 * - .corral/.gitignore holds "*" and ".corral/" is listed in .git/info/exclude, so git never sees the directory.
 * - sessions/<sid>/session.json: one pretty-printed JSON object (2-space indent), rewritten atomically (temp file,
 *   fsync, rename, fsync of the directory): {sid, name, task, agent, cmd?, identity?, base, branch, base_commit,
 *   worktree, state, resume_id?, created, updated, last_seq, exit?{status, signal}, needs?{k, seq, rid, options?},
 *   applied_aids[]} (times in ms since the epoch).
 * - sessions/<sid>/transcript.jsonl: every event of the session, one line each: the envelope as JSON (proto's
 *   msgpack -> JSON converter; a sealed body is {"$bin": base64}), appended with one write(2) (not fsync'd: the
 *   outbox is the durable copy).
 * - sessions/<sid>/tasks.md: a Markdown checklist, "- [ ] text" queued, "- [x] text" started. A task's text with
 *   newlines keeps its further lines as the item's continuation lines, each indented by two spaces (an empty line
 *   becomes "  "), which Markdown renders inside the same item and which read back to the same text. Lines that are
 *   no task (a heading a human wrote) are kept as they are.
 * - activity.csv: RFC 4180 (CRLF line ends, fields with a comma, quote, CR or LF quoted, quotes doubled), header
 *   "time,actor,session,identity,operation,detail,outcome", time as ISO 8601 UTC with milliseconds. Append-only.
 * - outbox/<first-index>.seg (20 decimal digits, the global number of the segment's first record): records
 *   u32le length, u32le crc32 (IEEE, of the bytes), the envelope's msgpack bytes; a new segment past 4 MiB.
 *   outbox/acked: text lines "<sid> <seq>", the highest acknowledged seq of each session, rewritten atomically.
 *
 * Sequence numbers are recovered, not pre-reserved: when a session is loaded its last_seq is the highest of
 * session.json's last_seq, the seq on transcript.jsonl's last complete line, the highest seq of its records in the
 * outbox and the outbox's acked seq for it. An event reaches the fsync'd outbox before it is counted, so a seq
 * that may have been sent is never handed out again, even when session.json was not rewritten before a crash.
 *
 * Nothing here is thread-safe: one thread (corrald's loop) uses a store. */
#ifndef HOST_STORE_H
#define HOST_STORE_H

#include "corral/buf.h"
#include "corral/mp.h"
#include "git.h"
#include <stddef.h>
#include <stdint.h>

#define HOST_STORE_DIR ".corral"
#define HOST_STORE_SID_MAX 64          /* bytes of a session id ([A-Za-z0-9._-]{1,64}) */
#define HOST_STORE_AIDS_MAX 1000       /* applied action ids remembered per session */
#define HOST_STORE_SEGMENT_MAX (4u << 20) /* an outbox segment takes no more records past this size */
#define HOST_STORE_JSON_MAX (8u << 20) /* bytes of session.json or tasks.md read back, at most */

typedef struct st_host_store_t host_store_t;
typedef struct st_host_store_outbox_t host_store_outbox_t;

typedef enum host_store_state_t {
    HOST_STORE_STARTING = 0,
    HOST_STORE_RUNNING,
    HOST_STORE_WAITING,
    HOST_STORE_IDLE,
    HOST_STORE_SUSPENDED,
    HOST_STORE_DONE,
    HOST_STORE_FAILED,
} host_store_state_t;

/* The name of a state ("running"), and its parse (returns 0 or CR_ENOTFOUND). */
const char *host_store_state_name(host_store_state_t s);
int host_store_state_parse(host_store_state_t *out, const char *s, size_t len);

/* One session's record: plain data that the caller reads and changes, then saves with host_store_session_save. */
typedef struct st_host_store_session_t {
    char sid[HOST_STORE_SID_MAX + 1];
    host_git_session_t git; /* name, branch, base, base_commit, worktree */
    char *task;             /* the task prompt (owned, malloc'd; never NULL after create/load) */
    char agent[16];         /* "claude", "codex" or "shell" */
    char *cmd;              /* the command (shell) or program override; owned, may be NULL */
    char identity[HOST_STORE_SID_MAX + 1]; /* "" when none */
    host_store_state_t state;
    char *resume_id; /* owned, may be NULL */
    uint64_t created, updated; /* ms since the epoch */
    uint64_t last_seq;         /* the seq of the last event emitted; the next one is last_seq + 1 */
    int has_exit;
    int exit_status, exit_signal;
    int has_needs; /* a request waits for a human: approval.request, question or diff.ready */
    char needs_k[32];
    uint64_t needs_seq;
    char needs_rid[HOST_STORE_SID_MAX + 1]; /* "" for diff.ready */
    char *needs_opts;      /* a question's options: the msgpack array as the event carried it (owned; NULL none) */
    size_t needs_opts_len;
    char (*aids)[HOST_STORE_SID_MAX + 1];   /* applied action ids, oldest first, at most HOST_STORE_AIDS_MAX */
    size_t naids;
    host_store_t *_store;
    int _tfd; /* transcript.jsonl kept open for appends, + 1 (0: not open) */
    cr_buf_t _tbuf; /* transcript lines not written yet (host_store_transcript_flush) */
} host_store_session_t;

/* What a new session is made of. */
typedef struct st_host_store_session_opts_t {
    const char *sid;      /* NULL: a new ULID */
    const char *task;     /* may be NULL ("") */
    const char *agent;    /* "claude", "codex" or "shell" */
    const char *cmd;      /* may be NULL */
    const char *identity; /* may be NULL */
    const host_git_session_t *git; /* the session's git state (git->name is the session's name); required */
} host_store_session_opts_t;

/* Opens (creating when needed) <repo_dir>/.corral/ with its .gitignore, sessions/ and outbox/, adds ".corral/" to
 * <repo_dir>/.git/info/exclude when it is a plain repository and the line is missing, and opens the outbox (a torn
 * tail is truncated with a warning). On success *out is owned by the caller (host_store_close). Returns 0,
 * CR_ENOTFOUND (repo_dir does not exist) or CR_EIO, with cr_error_last() naming the path. */
int host_store_open(host_store_t **out, const char *repo_dir);

/* Closes a store (NULL is fine). Sessions loaded from it must be freed before. */
void host_store_close(host_store_t *st);

/* The absolute path of <repo>/.corral. */
const char *host_store_dir(const host_store_t *st);

/* The store's outbox (owned by the store). */
host_store_outbox_t *host_store_outbox(host_store_t *st);

/* Creates a session: checks the id (CR_EBADNAME unless [A-Za-z0-9._-]{1,64}), the agent (CR_ECONFIG) and that
 * neither the sid nor the name is taken (CR_EEXISTS), makes sessions/<sid>/ and writes session.json (state
 * "starting", created = updated = now, last_seq 0) and an empty tasks.md. On success *out is owned by the caller
 * (host_store_session_free). Returns 0, CR_EBADNAME, CR_ECONFIG, CR_EEXISTS or CR_EIO. */
int host_store_session_create(host_store_session_t **out, host_store_t *st, const host_store_session_opts_t *opts);

/* Loads sessions/<sid>/session.json and recovers last_seq (see the top of this file). On success *out is owned by
 * the caller. Returns 0, CR_EBADNAME (not a valid id), CR_ENOTFOUND (no such session), CR_EJSON (session.json is
 * not a JSON object of the expected fields: the message names the file and the field; the file is left as it is)
 * or CR_EIO. */
int host_store_session_load(host_store_session_t **out, host_store_t *st, const char *sid);

/* Writes session.json atomically from *s (updated is set to now). Returns 0 or CR_EIO; on error the old file is
 * intact and no temp file is left. */
int host_store_session_save(host_store_session_t *s);

/* Frees a session record (NULL is fine). */
void host_store_session_free(host_store_session_t *s);

/* Loads every session of the repo, sorted by created (then sid). A session whose session.json does not load is
 * skipped with a warning in the log and left on disk. *out is an array of *n sessions, owned by the caller
 * (host_store_session_list_free). Returns 0 or CR_EIO. */
int host_store_session_list(host_store_session_t ***out, size_t *n, host_store_t *st);
void host_store_session_list_free(host_store_session_t **list, size_t n);

/* Loads the session whose sid or name is `key` (a sid wins). Returns 0, CR_ENOTFOUND or CR_EIO. */
int host_store_session_find(host_store_session_t **out, host_store_t *st, const char *key);

/* Hands out the next seq of the session (last_seq + 1), counting it as used. host_store_emit does this itself;
 * use this only for an event built elsewhere, then append it to the outbox before sending it. */
uint64_t host_store_next_seq(host_store_session_t *s);

/* Emits an event of the session: builds the envelope (v 1, sid, seq = last_seq + 1, ts now, idn (NULL: the
 * session's identity, "" none), pri, b = body, a msgpack map or a sealed bin) into out (appended; out's limit caps
 * it), appends it to the outbox (its body sealed when host_store_seal is on) (fsync'd now for pri 2 and session.* events, else before it is sent), then to
 * transcript.jsonl (written now for those, else buffered until host_store_transcript_flush), and updates the summary
 * in session.json:
 * last_seq and updated; approval.request and question set needs {k, seq, rid (the body's rid)}, diff.ready sets
 * needs {k, seq, rid ""}; action.applied clears needs; session.state sets state (a sealed body: needs without rid,
 * state unchanged — the caller sets s->state itself). session.json is rewritten atomically after every event, with
 * fsyncs only when state or needs changed (last_seq alone is recovered on load). The caller hands out's bytes to
 * the uplink. Returns 0, CR_EENVELOPE (a bad kind, pri or body), CR_ETOOLARGE or CR_EIO; unless the outbox append
 * succeeded the seq is not used and out keeps its length. A failure after it (transcript, session.json) is logged
 * and returns 0: the event exists. */
int host_store_emit(cr_buf_t *out, host_store_session_t *s, const char *kind, int pri, const char *body, size_t len,
                    const char *idn);

/* From now on host_store_emit seals event bodies with key K for team (DESIGN.md §2.1) in what goes to the outbox,
 * and so to the relay; out and transcript.jsonl keep them plain. key NULL: plain again. key is copied (sodium
 * memory). Returns 0, CR_EBODY or CR_ENOMEM. sealing says whether it is on. */
int host_store_seal(host_store_t *st, const unsigned char *key, const char *team);
int host_store_sealing(const host_store_t *st);

/* Writes the transcript lines host_store_emit buffered (agent output is written in groups: the caller flushes within
 * a few tens of ms, and before anything reads transcript.jsonl). Returns 0 or CR_EIO. discard drops them instead (the
 * session's files are being removed). */
int host_store_transcript_flush(host_store_session_t *s);
void host_store_transcript_discard(host_store_session_t *s);

/* Whether the action id was applied already (1) or not (0). */
int host_store_aid_seen(const host_store_session_t *s, const char *aid);

/* Remembers an applied action id (the oldest is forgotten past HOST_STORE_AIDS_MAX). Saved with the next save. */
void host_store_aid_add(host_store_session_t *s, const char *aid);

/* Queues a follow-up task: appends "- [ ] text" to tasks.md (atomic rewrite). Returns 0, CR_EBODY (empty text)
 * or CR_EIO. */
int host_store_task_add(host_store_session_t *s, const char *text);

/* Takes the first queued task: marks it "- [x]" (atomic rewrite) and gives its text in *out (malloc'd, caller
 * frees). Returns 0, CR_ENOTFOUND (nothing queued) or CR_EIO. */
int host_store_task_take(char **out, host_store_session_t *s);

/* How many tasks are queued (unchecked); negative on error. */
int host_store_task_count(host_store_session_t *s);

/* One line of activity.csv. Any field may be NULL (empty); time 0 means now. */
typedef struct st_host_store_activity_t {
    uint64_t time;
    const char *actor;     /* "device:01J…", "agent", "corrald", "cli:ana" */
    const char *session;   /* sid */
    const char *identity;
    const char *operation; /* "approve", "merge", "session.create" … */
    const char *detail;
    const char *outcome;   /* "ok", "error: …" */
} host_store_activity_t;

/* Appends one record to activity.csv (the header first when the file is new), with one write(2). Returns 0 or
 * CR_EIO. */
int host_store_activity(host_store_t *st, const host_store_activity_t *a);

/* ---- the durable outbox ---------------------------------------------------------------------------------------- */

/* Opens (creating) the outbox in `dir`: reads every segment, checks each record's length and crc, and truncates a
 * torn or corrupt tail (the records before it are kept) with a warning in the log. On success *out is owned by the
 * caller (host_store_outbox_close). Returns 0 or CR_EIO. */
int host_store_outbox_open(host_store_outbox_t **out, const char *dir);
void host_store_outbox_close(host_store_outbox_t *ob);

#define HOST_STORE_NOSYNC 0
#define HOST_STORE_SYNC 1

/* Appends one event envelope (it must decode: CR_EENVELOPE and the decoder's codes otherwise). With
 * HOST_STORE_SYNC it is written and fsync'd before the call returns; with HOST_STORE_NOSYNC it is buffered (written
 * when 64 KiB gather, by host_store_outbox_flush or _sync, at the latest at close) and not yet durable (group
 * commit: several appends, then host_store_outbox_sync). Only durable records are handed out by next_batch. Returns
 * 0, a decode error, CR_ENOMEM, or CR_EIO (a write failed: what was buffered is kept and written again at the next
 * flush; with 4 MiB waiting, appends are refused). */
int host_store_outbox_append(host_store_outbox_t *ob, const char *env, size_t len, int flags);

/* Writes the buffered NOSYNC records to the segment file (not synced). Returns 0 or CR_EIO (kept for the next try). */
int host_store_outbox_flush(host_store_outbox_t *ob);

/* Bytes of NOSYNC records appended and not written yet. */
size_t host_store_outbox_buffered(const host_store_outbox_t *ob);

/* Makes every appended record durable (written, then fdatasync of the open segment). Returns 0 or CR_EIO. */
int host_store_outbox_sync(host_store_outbox_t *ob);

/* Gives the next unacknowledged durable records after those already handed out, in append order: at most
 * max_events, and no more than max_bytes of envelopes (at least one record though). out[i] point into the
 * outbox's own buffer, valid until the next call of next_batch, rewind or close. Sets *n (0: nothing to send).
 * Returns 0 or CR_EIO. */
int host_store_outbox_next_batch(host_store_outbox_t *ob, cr_span_t *out, size_t *n, size_t max_events,
                                 size_t max_bytes);

/* Forgets what was handed out: the next batch starts again at the oldest unacknowledged record (after a failed
 * send or a reconnect). */
void host_store_outbox_rewind(host_store_outbox_t *ob);

/* Records the relay's acknowledgement of every event of `sid` up to `seq` (a lower seq than known is ignored) and
 * writes outbox/acked atomically. Returns 0, CR_EBADNAME or CR_EIO. */
int host_store_outbox_ack(host_store_outbox_t *ob, const char *sid, uint64_t seq);

/* The same, writing outbox/acked only when save is set; otherwise host_store_outbox_save_acked writes it later. An
 * ack lost in a crash before that only makes the events go again, which the relay acknowledges without storing
 * them twice. Returns 0, CR_EBADNAME or CR_EIO. */
int host_store_outbox_ack_lazy(host_store_outbox_t *ob, const char *sid, uint64_t seq, int save);

/* Writes outbox/acked if an ack changed it since it was last written. Returns 0 or CR_EIO. */
int host_store_outbox_save_acked(host_store_outbox_t *ob);

/* Deletes the segments all of whose durable records are acknowledged, the one being appended to included (the next
 * append then goes on in the last remaining segment or a new one). Returns the number deleted, or CR_EIO. */
int host_store_outbox_compact(host_store_outbox_t *ob);

/* Unacknowledged records in the outbox. */
size_t host_store_outbox_pending(const host_store_outbox_t *ob);

/* Segment files in the outbox. */
size_t host_store_outbox_segments(const host_store_outbox_t *ob);

/* The highest seq of `sid` the outbox has seen (in a record or an ack); 0 when none. */
uint64_t host_store_outbox_max_seq(const host_store_outbox_t *ob, const char *sid);

#endif
