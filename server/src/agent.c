/* server/src/agent.c — what the agent drivers share: spawning with pipes, the bounded line reader, the environment,
 * stop/kill with a grace period, the stderr tail, the end of a process, and the helpers that make events. */
#include "agent.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <errno.h>
#include <limits.h>
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define MAX_WORDS 64          /* words of agent.claude_cmd / agent.codex_cmd */
#define MAX_ARGS (MAX_WORDS + 16)
#define TAIL_KEEP 4096        /* bytes of stderr reported */
#define TAIL_LINES 20         /* lines of stderr reported */
#define DRAIN_MS 500          /* after the child exits, how long its pipes may stay open (a grandchild holding them) */

/* Limits for what agents send: one line is at most HOST_AGENT_MAX_LINE, so no string in it is longer. */
static const cr_limits_t agent_limits = {
    .max_envelope = 2 * HOST_AGENT_MAX_LINE,
    .max_string = HOST_AGENT_MAX_LINE,
    .max_bin = HOST_AGENT_MAX_LINE,
    .max_patch = HOST_AGENT_MAX_LINE,
    .max_audio = 0,
    .max_message_text = HOST_AGENT_MAX_LINE,
    .max_batch_events = 1,
    .max_batch_bytes = 2 * HOST_AGENT_MAX_LINE,
    .max_elements = 65536,
    .max_depth = 48,
};

/* ---- the command line and the environment ---------------------------------------------------------------------- */

/* Splits s into words the way a shell would for a plain command: blanks separate, '…' is literal, "…" keeps
 * blanks and takes \" \\ \$ \` escapes, a backslash outside quotes escapes the next character. The words live in
 * *storage (malloc'd, freed by the caller). Returns the number of words, or -1 (unterminated quote, too many). */
static int split_words(const char *s, char **storage, const char **words, size_t max)
{
    char *o = malloc(strlen(s) + 1);
    size_t n = 0;
    int in_word = 0;
    if (o == NULL)
        return -1;
    *storage = o;
    for (const char *p = s;; ++p) {
        char c = *p;
        if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
            if (in_word) {
                *o++ = '\0';
                in_word = 0;
            }
            if (c == '\0')
                break;
            continue;
        }
        if (!in_word) {
            if (n == max)
                return -1;
            words[n++] = o;
            in_word = 1;
        }
        if (c == '\'') {
            for (++p; *p != '\'' && *p != '\0'; ++p)
                *o++ = *p;
            if (*p == '\0')
                return -1;
        } else if (c == '"') {
            for (++p; *p != '"' && *p != '\0'; ++p) {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == '$' || p[1] == '`'))
                    ++p;
                *o++ = *p;
            }
            if (*p == '\0')
                return -1;
        } else if (c == '\\' && p[1] != '\0') {
            *o++ = *++p;
        } else {
            *o++ = c;
        }
    }
    return (int)n;
}

/* The value of KEY in env (NULL-terminated KEY=VALUE list), or NULL. */
static const char *env_find(const char *const *env, const char *key)
{
    size_t kl = strlen(key);
    for (; env != NULL && *env != NULL; ++env)
        if (strncmp(*env, key, kl) == 0 && (*env)[kl] == '=')
            return *env + kl + 1;
    return NULL;
}

/* Finds the program: a name with a slash is taken from corrald's working directory (made absolute, so the child's
 * chdir does not change its meaning), a bare name is searched on PATH. Returns a malloc'd path or NULL. */
static char *find_program(const char *name, const char *path_env)
{
    char *out;
    if (strchr(name, '/') != NULL) {
        if (access(name, X_OK) != 0)
            return NULL;
        return realpath(name, NULL);
    }
    if (path_env == NULL)
        path_env = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path_env;;) {
        const char *colon = strchr(p, ':');
        size_t dl = colon != NULL ? (size_t)(colon - p) : strlen(p);
        struct stat st;
        if ((out = malloc(dl + strlen(name) + 3)) == NULL)
            return NULL;
        if (dl == 0)
            sprintf(out, "./%s", name);
        else
            sprintf(out, "%.*s/%s", (int)dl, p, name);
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return out;
        free(out);
        if (colon == NULL)
            return NULL;
        p = colon + 1;
    }
}

/* corrald's environment without CORRAL_* (its configuration, which may hold its own tokens) and without the keys
 * `extra` sets, then `extra`. The array is malloc'd (the caller frees it); its strings are borrowed. */
static char **build_env(const char *const *extra, int kind)
{
    size_t n = 0, ne = 0, i = 0;
    char **env;
    for (char **e = environ; e != NULL && *e != NULL; ++e)
        ++n;
    for (const char *const *e = extra; e != NULL && *e != NULL; ++e)
        ++ne;
    if ((env = calloc(n + ne + 1, sizeof(*env))) == NULL)
        return NULL;
    for (char **e = environ; e != NULL && *e != NULL; ++e) {
        const char *eq = strchr(*e, '=');
        int drop = strncmp(*e, "CORRAL_", 7) == 0;
        /* Claude Code refuses to start inside another Claude Code session; corrald may itself run under one. */
        if (kind == HOST_AGENT_CLAUDE && strncmp(*e, "CLAUDECODE=", 11) == 0)
            drop = 1;
        for (const char *const *x = extra; !drop && eq != NULL && x != NULL && *x != NULL; ++x)
            if (strncmp(*x, *e, (size_t)(eq - *e) + 1) == 0)
                drop = 1;
        if (!drop)
            env[i++] = *e;
    }
    for (const char *const *x = extra; x != NULL && *x != NULL; ++x)
        if (strchr(*x, '=') != NULL)
            env[i++] = (char *)*x;
    env[i] = NULL;
    return env;
}

/* ---- handles and the end of a process ------------------------------------------------------------------------- */

static void deliver(host_agent_t *a, host_agent_lines_t *lr, void (*on_line)(host_agent_t *, char *, size_t));

static void real_free(host_agent_t *a)
{
    if (a->drv != NULL && a->drv->dispose != NULL)
        a->drv->dispose(a);
    cr_buf_free(&a->out_lines.buf);
    cr_buf_free(&a->err_tail);
    cr_buf_free(&a->pty_outq);
    free(a->cwd);
    free(a->cwd_real);
    free(a);
}

static void close_cb(uv_handle_t *h)
{
    host_agent_t *a = h->data;
    if (--a->open_handles == 0 && a->freed)
        real_free(a);
}

void host_agent__close(host_agent_t *a, unsigned which, uv_handle_t *h)
{
    if (!(a->handles & which))
        return;
    a->handles &= ~which;
    uv_close(h, close_cb);
}

static void close_io(host_agent_t *a)
{
    a->out_eof = a->err_eof = 1; /* nothing more is read */
    host_agent__close(a, HOST_AGENT_H_IN, (uv_handle_t *)&a->in);
    host_agent__close(a, HOST_AGENT_H_OUT, (uv_handle_t *)&a->out);
    host_agent__close(a, HOST_AGENT_H_ERR, (uv_handle_t *)&a->err);
    if (a->kind == HOST_AGENT_SHELL)
        host_agent__shell_close(a);
}

/* The last lines of stderr as a NUL-terminated string in out (valid UTF-8, at most TAIL_LINES / TAIL_KEEP; a byte
 * that is not part of a valid character, or a NUL, becomes '?'). outlen > TAIL_KEEP. */
static void tail_text(host_agent_t *a, char *out, size_t outlen)
{
    const char *s = a->err_tail.base, *end = s + a->err_tail.len, *start;
    size_t o = 0;
    int lines = 0;
    if (s == NULL) {
        out[0] = '\0';
        return;
    }
    while (end > s && (end[-1] == '\n' || end[-1] == '\r'))
        --end;
    for (start = end; start > s; --start)
        if (start[-1] == '\n' && ++lines == TAIL_LINES)
            break;
    if ((size_t)(end - start) > TAIL_KEEP)
        start = end - TAIL_KEEP;
    while (start < end && ((unsigned char)*start & 0xc0) == 0x80)
        ++start;
    for (const char *p = start; p < end && o + 1 < outlen;) {
        unsigned char c = (unsigned char)*p;
        size_t cl = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c != 0 && cl <= (size_t)(end - p) && o + cl < outlen && cr_utf8_valid(p, cl)) {
            memcpy(out + o, p, cl);
            o += cl;
            p += cl;
        } else {
            out[o++] = '?';
            ++p;
        }
    }
    out[o] = '\0';
}

static void finish(host_agent_t *a)
{
    char tail[TAIL_KEEP + 8];
    if (a->finished)
        return;
    a->finished = 1;
    uv_timer_stop(&a->timer);
    if (!a->out_lines.dropping && a->out_lines.buf.len != 0)
        deliver(a, &a->out_lines, a->line_cb); /* a last line without its newline */
    a->busy = 0;
    if (a->drv != NULL && a->drv->ended != NULL)
        a->drv->ended(a);
    close_io(a);
    if (a->freed) {
        host_agent__close(a, HOST_AGENT_H_TIMER, (uv_handle_t *)&a->timer);
        return;
    }
    tail_text(a, tail, sizeof(tail));
    cr_log(a->exit_status == 0 && a->term_signal == 0 ? CR_LOG_INFO : CR_LOG_WARN,
           "agent pid %ld ended: status %d, signal %d", (long)a->pid, a->exit_status, a->term_signal);
    if (a->cb.on_exit != NULL)
        a->cb.on_exit(a, a->exit_status, a->term_signal, tail, a->data);
}

static void drain_timeout(uv_timer_t *t)
{
    host_agent_t *a = t->data;
    cr_log(CR_LOG_DEBUG, "agent pid %ld: output still open %d ms after exit; giving up on it", (long)a->pid, DRAIN_MS);
    finish(a);
}

void host_agent__maybe_finish(host_agent_t *a)
{
    if (!a->exited || a->finished)
        return;
    if ((a->out_eof && (a->err_eof || a->kind == HOST_AGENT_SHELL)) || !(a->handles & HOST_AGENT_H_TIMER))
        finish(a);
    else
        uv_timer_start(&a->timer, drain_timeout, DRAIN_MS, 0);
}

void host_agent__child_exited(host_agent_t *a, int exit_status, int term_signal)
{
    a->exited = 1;
    a->exit_status = exit_status;
    a->term_signal = term_signal;
    uv_timer_stop(&a->timer); /* the SIGKILL is no longer needed */
    host_agent__maybe_finish(a);
}

static void proc_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
    host_agent_t *a = p->data;
    host_agent__close(a, HOST_AGENT_H_PROC, (uv_handle_t *)p);
    host_agent__child_exited(a, (int)exit_status, term_signal);
}

/* ---- reading -------------------------------------------------------------------------------------------------- */

static void deliver(host_agent_t *a, host_agent_lines_t *lr, void (*on_line)(host_agent_t *, char *, size_t))
{
    size_t len = lr->buf.len;
    if (cr_buf_reserve(&lr->buf, 1) != 0) { /* the buffer's limit keeps a byte for the NUL */
        lr->buf.len = 0;
        return;
    }
    lr->buf.base[len] = '\0';
    lr->buf.len = 0;
    if (on_line != NULL && !a->freed)
        on_line(a, lr->buf.base, len);
}

void host_agent__lines_feed(host_agent_t *a, host_agent_lines_t *lr, const char *p, size_t n,
                            void (*on_line)(host_agent_t *, char *, size_t))
{
    while (n > 0 && !a->freed) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - p) : n, step = take + (nl != NULL);
        if (lr->dropping) {
            lr->dropping = nl == NULL;
        } else if (lr->buf.len + take > lr->limit) {
            if (lr->split) {
                size_t room = lr->limit - lr->buf.len;
                if (cr_buf_append(&lr->buf, p, room) != 0)
                    lr->buf.len = 0;
                else
                    deliver(a, lr, on_line);
                p += room;
                n -= room;
                continue;
            }
            cr_log(CR_LOG_WARN, "agent pid %ld: a line of output is longer than %d bytes; dropped", (long)a->pid,
                   (int)lr->limit);
            host_agent__note(a, "corral: dropped a line of agent output longer than %d bytes", (int)lr->limit);
            lr->buf.len = 0;
            lr->dropping = nl == NULL;
        } else if (cr_buf_append(&lr->buf, p, take) != 0) {
            lr->buf.len = 0;
            lr->dropping = nl == NULL;
        } else if (nl != NULL) {
            deliver(a, lr, on_line);
        }
        p += step;
        n -= step;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    host_agent_t *a = h->data;
    (void)suggested;
    *buf = uv_buf_init(a->rbuf, sizeof(a->rbuf));
}

static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    host_agent_t *a = s->data;
    if (nread > 0) {
        host_agent__lines_feed(a, &a->out_lines, buf->base, (size_t)nread, a->line_cb);
    } else if (nread < 0) {
        a->out_eof = 1;
        host_agent__close(a, HOST_AGENT_H_OUT, (uv_handle_t *)s);
        host_agent__maybe_finish(a);
    }
}

static void tail_append(host_agent_t *a, const char *p, size_t n)
{
    if (n > TAIL_KEEP * 2) {
        p += n - TAIL_KEEP * 2;
        n = TAIL_KEEP * 2;
    }
    if (a->err_tail.len + n > TAIL_KEEP * 4)
        cr_buf_consume(&a->err_tail, a->err_tail.len + n - TAIL_KEEP * 2);
    (void)cr_buf_append(&a->err_tail, p, n);
}

static void err_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    host_agent_t *a = s->data;
    if (nread > 0) {
        tail_append(a, buf->base, (size_t)nread);
    } else if (nread < 0) {
        a->err_eof = 1;
        host_agent__close(a, HOST_AGENT_H_ERR, (uv_handle_t *)s);
        host_agent__maybe_finish(a);
    }
}

void host_agent__note(host_agent_t *a, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    n = (int)host_agent__utf8_cut(line, (size_t)n, (size_t)n);
    line[n++] = '\n';
    if (a->err_tail.len != 0 && a->err_tail.base[a->err_tail.len - 1] != '\n')
        tail_append(a, "\n", 1);
    tail_append(a, line, (size_t)n);
}

/* ---- writing -------------------------------------------------------------------------------------------------- */

typedef struct st_write_req_t {
    uv_write_t req;
    char data[];
} write_req_t;

static void write_cb(uv_write_t *req, int status)
{
    if (status < 0 && status != UV_ECANCELED)
        cr_log(CR_LOG_WARN, "agent stdin: %s", uv_strerror(status));
    free(req);
}

int host_agent__write(host_agent_t *a, const char *p, size_t len)
{
    write_req_t *w;
    uv_buf_t b;
    int rc;
    if (!(a->handles & HOST_AGENT_H_IN) || a->exited)
        return cr_error_set(CR_EIO, NULL, "the agent's input is closed");
    if ((w = malloc(sizeof(*w) + len)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    memcpy(w->data, p, len);
    b = uv_buf_init(w->data, (unsigned)len);
    if ((rc = uv_write(&w->req, (uv_stream_t *)&a->in, &b, 1, write_cb)) != 0) {
        free(w);
        return cr_error_set(CR_EIO, NULL, "writing to the agent: %s", uv_strerror(rc));
    }
    return 0;
}

int host_agent__send(host_agent_t *a, const char *mp, size_t len)
{
    cr_buf_t json;
    int rc;
    cr_buf_init(&json, 2 * HOST_AGENT_MAX_LINE);
    if ((rc = cr_json_from_msgpack(&json, mp, len, &agent_limits)) == 0 && (rc = cr_buf_append(&json, "\n", 1)) == 0)
        rc = host_agent__write(a, json.base, json.len);
    cr_buf_free(&json);
    return rc == 0 ? 0 : -1;
}

int host_agent__parse(host_agent_t *a, cr_buf_t *out, const char *line, size_t len)
{
    int rc;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        --len;
    if (len == 0)
        return -1;
    if ((rc = cr_json_to_msgpack(out, line, len, &agent_limits)) != 0) {
        cr_log(CR_LOG_WARN, "agent pid %ld: a line that is not JSON (%s): %.80s", (long)a->pid,
               cr_error_last()->message, line);
        return -1;
    }
    return 0;
}

void host_agent__abort(host_agent_t *a)
{
    host_agent__close(a, HOST_AGENT_H_IN, (uv_handle_t *)&a->in);
    if (a->pid > 0 && !a->exited)
        kill(a->pid, SIGTERM);
}

/* Callbacks never run again; a running child is killed and its process (or SIGCHLD) handle stays open until it is
 * reaped, then finish() closes the timer; otherwise every handle closes now. The memory goes with the last one. */
static void abandon(host_agent_t *a)
{
    a->freed = 1;
    if (!a->exited && a->pid > 0) {
        kill(-a->pid, SIGKILL);
        kill(a->pid, SIGKILL);
        close_io(a);
        uv_timer_stop(&a->timer);
        return;
    }
    close_io(a);
    host_agent__close(a, HOST_AGENT_H_PROC, (uv_handle_t *)&a->proc);
    host_agent__close(a, HOST_AGENT_H_SIG, (uv_handle_t *)&a->sigchld);
    host_agent__close(a, HOST_AGENT_H_TIMER, (uv_handle_t *)&a->timer);
    if (a->open_handles == 0)
        real_free(a);
}

/* ---- the public functions ------------------------------------------------------------------------------------- */

void host_agent__init_timer(host_agent_t *a)
{
    uv_timer_init(a->loop, &a->timer);
    a->timer.data = a;
    a->handles |= HOST_AGENT_H_TIMER;
    a->open_handles += 1;
}

static int spawn_pipes(host_agent_t *a, const host_agent_opts_t *opts, char **envp)
{
    const char *argv[MAX_ARGS + 1];
    char *storage = NULL, *exe = NULL;
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    size_t n;
    int w, rc = -1;

    if ((w = split_words(opts->program, &storage, argv, MAX_WORDS)) <= 0) {
        rc = cr_error_set(CR_ECONFIG, "program", "cannot read the agent command line: %s", opts->program);
        goto done;
    }
    if ((exe = find_program(argv[0], env_find((const char *const *)envp, "PATH"))) == NULL) {
        rc = cr_error_set(CR_ENOTFOUND, "program", "agent program not found: %s", argv[0]);
        goto done;
    }
    n = (size_t)w;
    if (a->drv->args(a, opts, argv + n, MAX_ARGS - n, &n) != 0)
        goto done;
    argv[n] = NULL;

    host_agent__init_timer(a);
    uv_pipe_init(a->loop, &a->in, 0);
    uv_pipe_init(a->loop, &a->out, 0);
    uv_pipe_init(a->loop, &a->err, 0);
    a->in.data = a->out.data = a->err.data = a;
    a->handles |= HOST_AGENT_H_IN | HOST_AGENT_H_OUT | HOST_AGENT_H_ERR;
    a->open_handles += 3;
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&a->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&a->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&a->err;
    memset(&po, 0, sizeof(po));
    po.exit_cb = proc_exit_cb;
    po.file = exe;
    po.args = (char **)argv;
    po.env = envp;
    po.cwd = opts->cwd;
    po.flags = UV_PROCESS_DETACHED; /* its own process group, so a kill reaches the tools it runs */
    po.stdio_count = 3;
    po.stdio = stdio;
    a->proc.data = a;
    rc = uv_spawn(a->loop, &a->proc, &po);
    a->handles |= HOST_AGENT_H_PROC; /* uv_spawn initialises the handle even when it fails */
    a->open_handles += 1;
    if (rc != 0) {
        rc = cr_error_set(rc == UV_ENOENT ? CR_ENOTFOUND : CR_EIO, "program", "cannot start the agent program %s: %s",
                          exe, uv_strerror(rc));
        goto done;
    }
    a->pid = a->proc.pid;
    uv_read_start((uv_stream_t *)&a->out, alloc_cb, out_read_cb);
    uv_read_start((uv_stream_t *)&a->err, alloc_cb, err_read_cb);
    cr_log(CR_LOG_INFO, "agent %s started: pid %ld in %s", exe, (long)a->pid, opts->cwd);
    rc = 0;
done:
    free(storage);
    free(exe);
    return rc;
}

int host_agent_start(host_agent_t **out, uv_loop_t *loop, const host_agent_opts_t *opts, const host_agent_cb_t *cb,
                     void *data)
{
    host_agent_t *a = NULL;
    char **envp = NULL;
    struct stat st;
    int rc = -1;

    *out = NULL;
    if (opts->program == NULL || opts->program[0] == '\0')
        return cr_error_set(CR_ECONFIG, "program", "no agent program configured");
    if (opts->cwd == NULL || stat(opts->cwd, &st) != 0 || !S_ISDIR(st.st_mode))
        return cr_error_set(CR_ENOTFOUND, "cwd", "the agent's working directory does not exist: %s",
                            opts->cwd != NULL ? opts->cwd : "(none)");
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    a->loop = loop;
    a->kind = opts->kind;
    a->cb = *cb;
    a->data = data;
    a->pty_fd = -1;
    a->drv = opts->kind == HOST_AGENT_CLAUDE ? &host_agent_claude_driver
             : opts->kind == HOST_AGENT_CODEX ? &host_agent_codex_driver
                                              : NULL;
    a->out_lines.limit = opts->kind == HOST_AGENT_SHELL ? HOST_AGENT_MAX_TEXT : HOST_AGENT_MAX_LINE;
    a->out_lines.split = opts->kind == HOST_AGENT_SHELL;
    cr_buf_init(&a->out_lines.buf, a->out_lines.limit + 1);
    cr_buf_init(&a->err_tail, TAIL_KEEP * 5);
    cr_buf_init(&a->pty_outq, HOST_AGENT_MAX_LINE);
    if ((a->cwd = strdup(opts->cwd)) == NULL || (a->cwd_real = realpath(opts->cwd, NULL)) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    if ((envp = build_env(opts->env, opts->kind)) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    a->line_cb = a->drv != NULL ? a->drv->on_line : NULL;
    if (opts->kind == HOST_AGENT_SHELL)
        rc = host_agent__shell_start(a, opts, envp);
    else if (a->drv != NULL)
        rc = spawn_pipes(a, opts, envp);
    else
        rc = cr_error_set(CR_ECONFIG, "kind", "unknown agent kind %d", (int)opts->kind);
    if (rc != 0)
        goto fail;
    if (a->drv != NULL && (rc = a->drv->begin(a, opts)) != 0)
        goto fail;
    free(envp);
    *out = a;
    return 0;

fail:
    free(envp);
    abandon(a);
    return rc;
}

int host_agent_reply(host_agent_t *a, const char *text)
{
    if (a->exited || a->finished || a->stopping)
        return cr_error_set(CR_EIO, NULL, "the agent has ended");
    if (a->kind == HOST_AGENT_SHELL)
        return host_agent__shell_reply(a, text);
    return a->drv->reply(a, text);
}

int host_agent_approve(host_agent_t *a, const char *rid, int allow, const char *message)
{
    if (a->kind == HOST_AGENT_SHELL)
        return cr_error_set(CR_ENOTFOUND, "rid", "a shell agent has no approval requests (rid %s)", rid);
    if (a->exited || a->finished)
        return cr_error_set(CR_EIO, NULL, "the agent has ended");
    return a->drv->approve(a, rid, allow, message);
}

int host_agent_interrupt(host_agent_t *a)
{
    if (a->exited || a->finished)
        return cr_error_set(CR_EIO, NULL, "the agent has ended");
    if (a->kind == HOST_AGENT_SHELL)
        return host_agent__shell_interrupt(a);
    return a->drv->interrupt(a);
}

static void kill_timeout(uv_timer_t *t)
{
    host_agent_t *a = t->data;
    if (a->exited || a->pid <= 0)
        return;
    cr_log(CR_LOG_WARN, "agent pid %ld did not end in time; killing it", (long)a->pid);
    a->kill_sent = 1;
    kill(-a->pid, SIGKILL);
    kill(a->pid, SIGKILL);
}

void host_agent_stop(host_agent_t *a, int grace_ms)
{
    if (a->stopping || a->exited || a->finished)
        return;
    a->stopping = 1;
    if (a->kind == HOST_AGENT_SHELL) {
        host_agent__shell_stop(a);
    } else {
        host_agent__close(a, HOST_AGENT_H_IN, (uv_handle_t *)&a->in);
        if (a->pid > 0)
            kill(a->pid, SIGTERM);
    }
    uv_timer_start(&a->timer, kill_timeout, grace_ms > 0 ? (uint64_t)grace_ms : 0, 0);
}

void host_agent_free(host_agent_t *a)
{
    if (a == NULL || a->freed)
        return;
    abandon(a);
}

int host_agent_busy(const host_agent_t *a)
{
    return a->busy;
}

pid_t host_agent_pid(const host_agent_t *a)
{
    return a->exited ? 0 : a->pid;
}

/* ---- events --------------------------------------------------------------------------------------------------- */

void host_agent__event(host_agent_t *a, const char *kind, int pri, const cr_buf_t *body)
{
    if (!a->freed && a->cb.on_event != NULL)
        a->cb.on_event(a, kind, pri, body->base, body->len, a->data);
}

void host_agent__resume_id(host_agent_t *a, const char *id, size_t len)
{
    char buf[256];
    if (len >= sizeof(buf) || a->freed || a->cb.on_resume_id == NULL)
        return;
    memcpy(buf, id, len);
    buf[len] = '\0';
    a->cb.on_resume_id(a, buf, a->data);
}

void host_agent__turn_end(host_agent_t *a, int asked)
{
    if (!a->freed && a->cb.on_turn_end != NULL)
        a->cb.on_turn_end(a, asked, a->data);
}

void host_agent__message(host_agent_t *a, int pri, const char *text, size_t len)
{
    cr_buf_t b;
    if (len == 0)
        return;
    len = host_agent__utf8_cut(text, len, HOST_AGENT_MAX_TEXT);
    cr_buf_init(&b, HOST_AGENT_MAX_TEXT + 64);
    if (cr_mpw_map(&b, 1) == 0 && CR_MPW_LIT(&b, "text") == 0 && cr_mpw_str(&b, text, len) == 0)
        host_agent__event(a, "agent.message", pri, &b);
    cr_buf_free(&b);
}

static int put_bounded_str(cr_buf_t *b, const char *s, size_t len, size_t max)
{
    return cr_mpw_str(b, s, host_agent__utf8_cut(s, len, max));
}

void host_agent__tool(host_agent_t *a, const char *tool, size_t tlen, const char *summary, size_t slen)
{
    cr_buf_t b;
    cr_buf_init(&b, 4 * HOST_AGENT_MAX_SUMMARY);
    if (cr_mpw_map(&b, 2) == 0 && CR_MPW_LIT(&b, "tool") == 0 && put_bounded_str(&b, tool, tlen, 256) == 0 &&
        CR_MPW_LIT(&b, "summary") == 0 && put_bounded_str(&b, summary, slen, HOST_AGENT_MAX_SUMMARY) == 0)
        host_agent__event(a, "agent.tool", 1, &b);
    cr_buf_free(&b);
}

void host_agent__state(host_agent_t *a, const char *state)
{
    cr_buf_t b;
    cr_buf_init(&b, 64);
    if (cr_mpw_map(&b, 1) == 0 && CR_MPW_LIT(&b, "state") == 0 && cr_mpw_str(&b, state, strlen(state)) == 0)
        host_agent__event(a, "session.state", 1, &b);
    cr_buf_free(&b);
}

void host_agent__turn_done(host_agent_t *a, const char *last, size_t len)
{
    char rid[CR_ULID_LEN + 1];
    cr_buf_t b;
    while (len > 0 && (last[len - 1] == ' ' || last[len - 1] == '\n' || last[len - 1] == '\t' || last[len - 1] == '\r'))
        --len;
    while (len > 0 && (*last == ' ' || *last == '\n' || *last == '\t' || *last == '\r'))
        ++last, --len;
    if (len == 0 || last[len - 1] != '?') {
        host_agent__turn_end(a, 0);
        return;
    }
    cr_ulid_new(rid);
    cr_buf_init(&b, 2 * HOST_AGENT_MAX_TEXT);
    if (cr_mpw_map(&b, 2) == 0 && CR_MPW_LIT(&b, "rid") == 0 && cr_mpw_str(&b, rid, CR_ULID_LEN) == 0 &&
        CR_MPW_LIT(&b, "text") == 0 && put_bounded_str(&b, last, len, HOST_AGENT_MAX_TEXT) == 0)
        host_agent__event(a, "question", 2, &b);
    cr_buf_free(&b);
    host_agent__turn_end(a, 1);
}

/* ---- msgpack and text helpers --------------------------------------------------------------------------------- */

int host_agent__get(cr_span_t v, const char *path, cr_span_t *out)
{
    char key[64];
    cr_span_t cur = v;
    while (*path != '\0') {
        const char *dot = strchr(path, '.');
        size_t kl = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (kl >= sizeof(key))
            return -1;
        memcpy(key, path, kl);
        key[kl] = '\0';
        if (cr_mp_map_get(cur.base, cur.len, key, &cur) != 0)
            return -1;
        path += kl + (dot != NULL);
    }
    *out = cur;
    return 0;
}

int host_agent__str(cr_span_t v, const char *path, cr_span_t *s)
{
    cr_mp_item_t it;
    if (host_agent__get(v, path, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_STR)
        return -1;
    *s = it.bytes;
    return 0;
}

char *host_agent__strdup(cr_span_t v, const char *path)
{
    cr_span_t s;
    char *out;
    if (host_agent__str(v, path, &s) != 0 || (out = malloc(s.len + 1)) == NULL)
        return NULL;
    memcpy(out, s.base, s.len);
    out[s.len] = '\0';
    return out;
}

static const char *copy_value(cr_buf_t *out, const char *p, const char *end, size_t max_str, int depth, int *rc)
{
    cr_mp_item_t it;
    size_t hl = cr_mp_read(p, end, &it);
    const char *next;
    if (hl == 0 || (next = cr_mp_skip(p, end)) == NULL) {
        *rc = CR_EMSGPACK;
        return end;
    }
    if (*rc != 0)
        return next;
    switch (it.type) {
    case MSGPACK_OBJECT_STR:
        *rc = put_bounded_str(out, it.bytes.base, it.bytes.len, max_str);
        break;
    case MSGPACK_OBJECT_BIN:
        *rc = cr_mpw_nil(out);
        break;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        if (depth <= 0) {
            *rc = cr_mpw_nil(out);
            break;
        }
        *rc = it.type == MSGPACK_OBJECT_ARRAY ? cr_mpw_array(out, it.count) : cr_mpw_map(out, it.count);
        p += hl;
        for (uint64_t i = 0; i < (uint64_t)it.count * (it.type == MSGPACK_OBJECT_MAP ? 2 : 1) && *rc == 0; ++i)
            p = copy_value(out, p, end, max_str, depth - 1, rc);
        break;
    default:
        *rc = cr_buf_append(out, p, (size_t)(next - p));
        break;
    }
    return next;
}

int host_agent__copy_trimmed(cr_buf_t *out, cr_span_t v, size_t max_str, int depth)
{
    int rc = 0;
    size_t old = out->len;
    copy_value(out, v.base, v.base + v.len, max_str, depth, &rc);
    if (rc != 0)
        out->len = old;
    return rc;
}

size_t host_agent__utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    /* step back over continuation bytes so the cut falls before a character's first byte */
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        --max;
    return max;
}

void host_agent__relpath(host_agent_t *a, cr_buf_t *out, const char *path, size_t len)
{
    const char *roots[2] = {a->cwd_real, a->cwd};
    for (int i = 0; i < 2; ++i) {
        size_t rl = roots[i] != NULL ? strlen(roots[i]) : 0;
        while (rl > 1 && roots[i][rl - 1] == '/')
            --rl;
        if (rl != 0 && len > rl + 1 && memcmp(path, roots[i], rl) == 0 && path[rl] == '/') {
            (void)cr_buf_append(out, path + rl + 1, len - rl - 1);
            return;
        }
    }
    (void)cr_buf_append(out, path, len);
}

void host_agent__summary(host_agent_t *a, cr_buf_t *out, const char *tool, size_t tlen, cr_span_t input)
{
    static const struct {
        const char *tool, *key;
        int path;
    } keys[] = {
        {"Bash", "command", 0},        {"Write", "file_path", 1}, {"Edit", "file_path", 1},
        {"MultiEdit", "file_path", 1}, {"Read", "file_path", 1},  {"NotebookEdit", "notebook_path", 1},
        {"Glob", "pattern", 0},        {"Grep", "pattern", 0},    {"WebFetch", "url", 0},
        {"WebSearch", "query", 0},     {"Task", "description", 0},
    };
    size_t old = out->len;
    cr_span_t s;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i) {
        if (strlen(keys[i].tool) != tlen || memcmp(keys[i].tool, tool, tlen) != 0)
            continue;
        if (host_agent__str(input, keys[i].key, &s) != 0)
            break;
        if (keys[i].path)
            host_agent__relpath(a, out, s.base, s.len);
        else
            (void)cr_buf_append(out, s.base, s.len);
        goto cut;
    }
    {
        cr_buf_t json;
        cr_buf_init(&json, 2 * HOST_AGENT_MAX_LINE);
        if (cr_json_from_msgpack(&json, input.base, input.len, &agent_limits) == 0) {
            size_t n = host_agent__utf8_cut(json.base, json.len, 200);
            (void)cr_buf_append(out, json.base, n);
            if (n < json.len)
                (void)cr_buf_append(out, "\xe2\x80\xa6", 3); /* … */
        }
        cr_buf_free(&json);
    }
cut:
    if (out->len - old > HOST_AGENT_MAX_SUMMARY)
        out->len = old + host_agent__utf8_cut(out->base + old, out->len - old, HOST_AGENT_MAX_SUMMARY);
}
