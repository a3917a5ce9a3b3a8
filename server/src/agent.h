/* server/src/agent.h — agent drivers: run an agent program (claude, codex, any command under a PTY), turn what it
 * says into Corral events (DESIGN §2) and actions into what it understands (DESIGN §7). Everything runs on one
 * uv_loop_t; nothing here blocks. */
#ifndef HOST_AGENT_H
#define HOST_AGENT_H

#include "corral/buf.h"
#include "corral/mp.h"
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

typedef struct st_host_agent_t host_agent_t;

typedef enum host_agent_kind_t { HOST_AGENT_CLAUDE, HOST_AGENT_CODEX, HOST_AGENT_SHELL } host_agent_kind_t;

typedef struct st_host_agent_opts_t {
    host_agent_kind_t kind;
    /* claude: config agent.claude_cmd; codex: agent.codex_cmd (both may carry arguments, split like a shell does
     * with quotes and backslashes, and are found on PATH); shell: the command line, run with /bin/sh -c */
    const char *program;
    const char *cwd;          /* the session's worktree; must exist */
    const char *const *env;   /* extra KEY=VALUE (CORRAL_SESSION, CORRAL_TOKEN, ...), NULL-terminated, may be NULL */
    const char *prompt;       /* the task; NULL when resuming without new input */
    const char *resume_id;    /* claude session_id / codex thread id to resume, or NULL */
    const char *instructions; /* extra system text (identity), may be NULL: claude --append-system-prompt, codex
                                 the thread's developerInstructions; a shell ignores it */
} host_agent_opts_t;

typedef struct st_host_agent_cb_t {
    /* An event for the session: kind is a Corral event kind, body the msgpack map of its body (valid during the
     * call only; every body passes cr_body_validate), pri 0/1/2 as DESIGN §2:
     *   session.state {state:"running"} pri 1 when a turn starts (the host reports idle/waiting from on_turn_end);
     *   agent.message {text} pri 1 (≤ 4 KiB; a subagent's text pri 0; a failed turn "Error: ...");
     *   agent.tool {tool, summary} pri 1 when a tool is called, and pri 0 {tool, summary, output, is_error} with
     *     its result (claude: every tool; codex: commands);
     *   approval.request {rid, tool, summary, input} pri 2; question {rid, text} pri 2 at the end of a turn whose
     *     last text ends with '?'. */
    void (*on_event)(host_agent_t *a, const char *kind, int pri, const char *body, size_t len, void *data);
    /* The claude session_id / codex thread id, once known (again after each start). May be NULL. */
    void (*on_resume_id)(host_agent_t *a, const char *id, void *data);
    /* A turn ended and the agent is idle: the host may start a queued task or compute the diff. asked_question is 1
     * when the turn ended with a question (a "question" event came just before). May be NULL. */
    void (*on_turn_end)(host_agent_t *a, int asked_question, void *data);
    /* The process ended (after its output was read): exit_status, or term_signal when a signal killed it, and the
     * last lines of its stderr (at most 20 lines / 4 KiB, "" when none; a PTY has no separate stderr). Runs once. */
    void (*on_exit)(host_agent_t *a, int exit_status, int term_signal, const char *stderr_tail, void *data);
} host_agent_cb_t;

/* Starts the agent program of opts->kind in opts->cwd and, for claude and codex, hands it opts->prompt. The
 * environment is corrald's own without any CORRAL_* variable (those are corrald's configuration and may hold its
 * secrets), plus opts->env. opts and cb are copied. On success *out is the agent (freed with host_agent_free) and
 * the callbacks run from the loop. Returns 0, CR_ENOTFOUND (the program or the working directory does not exist:
 * "agent program not found: X"), or -1 (CR_EIO and others); cr_error_last() says why, and no callback ever runs. */
int host_agent_start(host_agent_t **out, uv_loop_t *loop, const host_agent_opts_t *opts, const host_agent_cb_t *cb,
                     void *data);

/* Sends the next user input: the answer to a question, a follow-up task. claude and codex queue it when a turn is
 * running (it starts the next turn); a shell gets it typed on its terminal followed by Enter. Returns 0, or -1
 * when the agent has ended or its input is closed (cr_error_last says which). */
int host_agent_reply(host_agent_t *a, const char *text);

/* Answers the approval.request `rid`: allow (claude: updatedInput is the input as asked; codex: "accept"), or deny
 * with message (claude: the message goes to the model; codex: "decline"; message may be NULL). Returns 0,
 * CR_ENOTFOUND when rid is not pending (already answered, cancelled by the agent, or unknown), or -1. */
int host_agent_approve(host_agent_t *a, const char *rid, int allow, const char *message);

/* Interrupts the running turn (claude: control_request interrupt; codex: turn/interrupt; shell: ^C on the
 * terminal). A turn end follows. Returns 0 (also when nothing runs), or -1 when the agent has ended. */
int host_agent_interrupt(host_agent_t *a);

/* Asks the agent to end cleanly (its stdin closed and SIGTERM; a shell's process group gets SIGHUP and SIGTERM),
 * and kills its process group with SIGKILL after grace_ms. on_exit follows. Idempotent. */
void host_agent_stop(host_agent_t *a, int grace_ms);

/* Frees the agent: after on_exit, or to abandon a running one (its process group is killed). Callbacks never run
 * again. The memory goes when the loop has run the handles' close callbacks: run the loop before uv_loop_close.
 * May be called from inside a callback. a may be NULL. */
void host_agent_free(host_agent_t *a);

/* 1 while a turn runs (claude, codex) or the command runs (shell), else 0. */
int host_agent_busy(const host_agent_t *a);

/* The child's pid, 0 once it has been reaped. For logs and tests. */
pid_t host_agent_pid(const host_agent_t *a);

/* ---- for the drivers (agent_claude.c, agent_codex.c, agent_shell.c) only ------------------------------------- */

#define HOST_AGENT_MAX_LINE (1024 * 1024) /* a longer line from an agent is dropped with a warning */
#define HOST_AGENT_MAX_TEXT 4096          /* agent.message text */
#define HOST_AGENT_MAX_SUMMARY 1024       /* agent.tool / approval.request summary */
#define HOST_AGENT_MAX_QUEUE 64           /* replies waiting for a turn, approvals pending */

typedef struct st_host_agent_driver_t {
    /* Adds the driver's arguments after the program's words (argv has room for `room` more entries). NULL for the
     * shell, which has its own spawn. */
    int (*args)(host_agent_t *a, const host_agent_opts_t *opts, const char **argv, size_t room, size_t *n);
    /* Called once the process runs: the first messages (initialize, the prompt). 0 or -1 (start fails). */
    int (*begin)(host_agent_t *a, const host_agent_opts_t *opts);
    /* One line of stdout, without its newline (NUL-terminated, may be modified). */
    void (*on_line)(host_agent_t *a, char *line, size_t len);
    int (*reply)(host_agent_t *a, const char *text);
    int (*approve)(host_agent_t *a, const char *rid, int allow, const char *message);
    int (*interrupt)(host_agent_t *a);
    /* The process is gone (before on_exit): forget pending requests. May be NULL. */
    void (*ended)(host_agent_t *a);
    /* Frees the driver's state (a->priv). May be NULL. */
    void (*dispose)(host_agent_t *a);
} host_agent_driver_t;

extern const host_agent_driver_t host_agent_claude_driver;
extern const host_agent_driver_t host_agent_codex_driver;

typedef struct st_host_agent_lines_t {
    cr_buf_t buf;
    size_t limit;     /* longest line kept */
    int split;        /* 1: a line reaching limit is handed over in pieces (PTY); 0: it is dropped */
    int dropping;     /* inside a dropped line */
} host_agent_lines_t;

struct st_host_agent_t {
    uv_loop_t *loop;
    host_agent_kind_t kind;
    const host_agent_driver_t *drv;
    host_agent_cb_t cb;
    void *data;
    char *cwd;       /* as given */
    char *cwd_real;  /* realpath, to show paths relative to the worktree */
    pid_t pid;
    /* pipes (claude, codex) */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    /* pty (shell) */
    int pty_fd;
    uv_poll_t poll;
    uv_signal_t sigchld;
    cr_buf_t pty_outq;  /* bytes waiting for the pty to take them */
    /* common */
    uv_timer_t timer;  /* SIGKILL after the grace period, then the drain after exit */
    host_agent_lines_t out_lines;
    void (*line_cb)(host_agent_t *a, char *line, size_t len); /* what gets each line of out_lines */
    cr_buf_t err_tail;  /* the end of stderr (and notes of our own) */
    char rbuf[64 * 1024];
    int open_handles;
    int exit_status, term_signal;
    unsigned handles; /* HOST_AGENT_H_* of the handles initialised and not yet closed */
    unsigned exited : 1, out_eof : 1, err_eof : 1, finished : 1, freed : 1, stopping : 1, kill_sent : 1;
    int busy;
    void *priv;  /* the driver's state */
};

enum {
    HOST_AGENT_H_TIMER = 1 << 0,
    HOST_AGENT_H_IN = 1 << 1,
    HOST_AGENT_H_OUT = 1 << 2,
    HOST_AGENT_H_ERR = 1 << 3,
    HOST_AGENT_H_PROC = 1 << 4,
    HOST_AGENT_H_POLL = 1 << 5,
    HOST_AGENT_H_SIG = 1 << 6,
};

/* Runs a user callback unless the agent was freed. */
void host_agent__event(host_agent_t *a, const char *kind, int pri, const cr_buf_t *body);
void host_agent__resume_id(host_agent_t *a, const char *id, size_t len);
void host_agent__turn_end(host_agent_t *a, int asked);

/* Emits agent.message {text} (cut to HOST_AGENT_MAX_TEXT at a UTF-8 boundary; nothing for empty text). */
void host_agent__message(host_agent_t *a, int pri, const char *text, size_t len);
/* Emits agent.tool {tool, summary}. */
void host_agent__tool(host_agent_t *a, const char *tool, size_t tlen, const char *summary, size_t slen);
/* Emits session.state {state}. */
void host_agent__state(host_agent_t *a, const char *state);
/* At the end of a turn: when `last` (the turn's last assistant text) ends with '?' after trimming, emits question
 * {rid, text} with pri 2; then runs on_turn_end. */
void host_agent__turn_done(host_agent_t *a, const char *last, size_t len);

/* Writes bytes to the agent's stdin (copied). Returns 0 or -1 (stdin closed, write failed). */
int host_agent__write(host_agent_t *a, const char *p, size_t len);
/* Writes the msgpack value mp[0..len) as one JSON line. Returns 0 or -1. */
int host_agent__send(host_agent_t *a, const char *mp, size_t len);
/* Parses a JSON line into msgpack (appended to out, which the caller has initialised). Returns 0 or -1. */
int host_agent__parse(host_agent_t *a, cr_buf_t *out, const char *line, size_t len);
/* Adds a line of our own to the stderr tail ("corral: ..."), so on_exit tells why the driver gave up. */
void host_agent__note(host_agent_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes stdin, SIGTERM to the child: the driver gives up on a broken agent. */
void host_agent__abort(host_agent_t *a);

/* Msgpack helpers over checked values. host_agent__get finds a dotted path ("message.content") of maps. */
int host_agent__get(cr_span_t v, const char *path, cr_span_t *out);
/* The str at path: 0 with its bytes in *s, or -1 when absent or not a str. */
int host_agent__str(cr_span_t v, const char *path, cr_span_t *s);
/* A malloc'd NUL-terminated copy of the str at path, or NULL. */
char *host_agent__strdup(cr_span_t v, const char *path);
/* Appends a copy of the value at v to out with every str cut to max_str bytes and nesting cut at depth (deeper
 * containers become nil), so the copy fits an event body. Returns 0 or a cr_buf error. */
int host_agent__copy_trimmed(cr_buf_t *out, cr_span_t v, size_t max_str, int depth);
/* The length of s[0..len) cut to at most max bytes at a UTF-8 boundary. */
size_t host_agent__utf8_cut(const char *s, size_t len, size_t max);
/* A short text for a tool call: the command, the path (relative to the worktree), the pattern or url, else the
 * input as JSON; appended to out, at most HOST_AGENT_MAX_SUMMARY bytes. */
void host_agent__summary(host_agent_t *a, cr_buf_t *out, const char *tool, size_t tlen, cr_span_t input);
/* Appends path, relative to the worktree when it lies inside it. */
void host_agent__relpath(host_agent_t *a, cr_buf_t *out, const char *path, size_t len);

/* The shell driver's start (agent_shell.c); host_agent_start calls it for HOST_AGENT_SHELL. */
int host_agent__shell_start(host_agent_t *a, const host_agent_opts_t *opts, char **envp);
int host_agent__shell_reply(host_agent_t *a, const char *text);
int host_agent__shell_interrupt(host_agent_t *a);
void host_agent__shell_stop(host_agent_t *a);
void host_agent__shell_close(host_agent_t *a);

/* Common pieces the shell driver shares. */
void host_agent__lines_feed(host_agent_t *a, host_agent_lines_t *lr, const char *p, size_t n,
                            void (*on_line)(host_agent_t *a, char *line, size_t len));
/* Opens the timer every agent has (call it once the arguments are checked, before any other handle). */
void host_agent__init_timer(host_agent_t *a);
void host_agent__child_exited(host_agent_t *a, int exit_status, int term_signal);
void host_agent__maybe_finish(host_agent_t *a);
/* Closes the handle of bit `which` if it is open (the memory goes when the last one has closed after free). */
void host_agent__close(host_agent_t *a, unsigned which, uv_handle_t *h);

#endif
