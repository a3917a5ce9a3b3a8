/* server/src/agent_shell.c — the shell driver: any command under a pseudo-terminal (forkpty + uv_poll on the master);
 * each line it prints becomes agent.message, a reply is typed on its terminal. */
#include "agent.h"
#include "corral/error.h"
#include "corral/log.h"
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define READS_PER_WAKEUP 16 /* so one chatty command does not starve the loop */

/* Turns one line of terminal output into text: escape sequences (CSI, OSC, two-byte) and control characters go,
 * a carriage return keeps what was written over the line after it, bytes that are not UTF-8 become U+FFFD. */
static void clean_line(const char *s, size_t n, cr_buf_t *out)
{
    size_t i = 0;
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' '))
        --n;
    for (size_t k = n; k > 0; --k)
        if (s[k - 1] == '\r') {
            i = k;
            break;
        }
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0x1b) {
            if (i + 1 < n && s[i + 1] == '[') {
                for (i += 2; i < n && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e); ++i)
                    ;
                ++i;
            } else if (i + 1 < n && s[i + 1] == ']') {
                for (i += 2; i < n && s[i] != '\a' && !(s[i] == 0x1b && i + 1 < n && s[i + 1] == '\\'); ++i)
                    ;
                i += i < n && s[i] == 0x1b ? 2 : 1;
            } else {
                i += 2;
            }
            continue;
        }
        if (c < 0x20 || c == 0x7f) {
            if (c == '\t')
                (void)cr_buf_append(out, "\t", 1);
            ++i;
            continue;
        }
        size_t cl = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (cl <= n - i && cr_utf8_valid(s + i, cl)) {
            (void)cr_buf_append(out, s + i, cl);
            i += cl;
        } else {
            (void)cr_buf_append(out, "\xef\xbf\xbd", 3);
            ++i;
        }
    }
    while (out->len > 0 && (out->base[out->len - 1] == ' ' || out->base[out->len - 1] == '\t'))
        --out->len;
}

static void shell_line(host_agent_t *a, char *line, size_t len)
{
    cr_buf_t text;
    cr_buf_init(&text, 3 * HOST_AGENT_MAX_TEXT + 16);
    clean_line(line, len, &text);
    if (text.len != 0)
        host_agent__message(a, 1, text.base, text.len);
    cr_buf_free(&text);
}

static void set_events(host_agent_t *a);

static int flush_outq(host_agent_t *a)
{
    while (a->pty_outq.len > 0 && a->pty_fd >= 0) {
        ssize_t n = write(a->pty_fd, a->pty_outq.base, a->pty_outq.len);
        if (n > 0) {
            cr_buf_consume(&a->pty_outq, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            break;
        } else {
            cr_log(CR_LOG_WARN, "agent pid %ld: writing to its terminal: %s", (long)a->pid, strerror(errno));
            a->pty_outq.len = 0;
            return -1;
        }
    }
    return 0;
}

static void pty_eof(host_agent_t *a)
{
    a->out_eof = 1;
    host_agent__shell_close(a);
    host_agent__maybe_finish(a);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    host_agent_t *a = p->data;
    if (status < 0) {
        pty_eof(a);
        return;
    }
    if (events & UV_READABLE) {
        for (int i = 0; i < READS_PER_WAKEUP && a->pty_fd >= 0 && !a->freed; ++i) {
            ssize_t n = read(a->pty_fd, a->rbuf, sizeof(a->rbuf));
            if (n > 0) {
                host_agent__lines_feed(a, &a->out_lines, a->rbuf, (size_t)n, shell_line);
                if ((size_t)n < sizeof(a->rbuf))
                    break; /* drained for now; the poll is level-triggered, so more wakes it again (no EAGAIN read) */
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else if (n < 0 && errno == EAGAIN) {
                break;
            } else { /* 0 or EIO: every slave descriptor is closed */
                pty_eof(a);
                return;
            }
        }
    }
    if ((events & UV_WRITABLE) && a->pty_fd >= 0) {
        flush_outq(a);
        set_events(a);
    }
}

static void set_events(host_agent_t *a)
{
    if (a->handles & HOST_AGENT_H_POLL)
        uv_poll_start(&a->poll, UV_READABLE | (a->pty_outq.len > 0 ? UV_WRITABLE : 0), poll_cb);
}

static void sigchld_cb(uv_signal_t *s, int signum)
{
    host_agent_t *a = s->data;
    int st = 0;
    pid_t r;
    (void)signum;
    if (a->exited || a->pid <= 0)
        return;
    do
        r = waitpid(a->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r != a->pid)
        return;
    host_agent__close(a, HOST_AGENT_H_SIG, (uv_handle_t *)s);
    host_agent__child_exited(a, WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int host_agent__shell_start(host_agent_t *a, const host_agent_opts_t *opts, char **envp)
{
    const char *argv[] = {"sh", "-c", opts->program, NULL};
    struct winsize ws = {.ws_row = 50, .ws_col = 200};
    struct termios t;
    int master = -1, err;
    pid_t pid;

    /* a cooked terminal without echo: what the host types is not printed back as if the command had said it */
    memset(&t, 0, sizeof(t));
    t.c_iflag = ICRNL | IUTF8;
    t.c_oflag = OPOST | ONLCR;
    t.c_cflag = CS8 | CREAD | HUPCL;
    t.c_lflag = ISIG | ICANON | IEXTEN;
    t.c_cc[VINTR] = 3;
    t.c_cc[VQUIT] = 28;
    t.c_cc[VERASE] = 127;
    t.c_cc[VKILL] = 21;
    t.c_cc[VEOF] = 4;
    t.c_cc[VSUSP] = 26;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    cfsetispeed(&t, B38400);
    cfsetospeed(&t, B38400);

    host_agent__init_timer(a);
    /* watch SIGCHLD before the child exists, so a quick exit is not missed */
    uv_signal_init(a->loop, &a->sigchld);
    a->sigchld.data = a;
    a->handles |= HOST_AGENT_H_SIG;
    a->open_handles += 1;
    uv_signal_start(&a->sigchld, sigchld_cb, SIGCHLD);

    if ((pid = forkpty(&master, NULL, &t, &ws)) < 0)
        return cr_error_set(CR_EIO, NULL, "cannot open a terminal for the agent: %s", strerror(errno));
    if (pid == 0) {
        /* the child: only async-signal-safe calls until execve */
        struct sigaction sa;
        sigset_t none;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; ++s)
            sigaction(s, &sa, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir(opts->cwd) != 0) {
            static const char msg[] = "corral: cannot enter the working directory\n";
            (void)!write(2, msg, sizeof(msg) - 1);
            _exit(126);
        }
        execve("/bin/sh", (char *const *)argv, envp);
        static const char msg[] = "corral: cannot run /bin/sh\n";
        (void)!write(2, msg, sizeof(msg) - 1);
        _exit(127);
    }
    a->pid = pid;
    a->pty_fd = master;
    if (fcntl(master, F_SETFD, FD_CLOEXEC) != 0 || fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK) != 0)
        return cr_error_set(CR_EIO, NULL, "cannot set up the agent's terminal: %s", strerror(errno));
    if ((err = uv_poll_init(a->loop, &a->poll, master)) != 0)
        return cr_error_set(CR_EIO, NULL, "cannot watch the agent's terminal: %s", uv_strerror(err));
    a->poll.data = a;
    a->handles |= HOST_AGENT_H_POLL;
    a->open_handles += 1;
    a->line_cb = shell_line;
    a->busy = 1;
    set_events(a);
    cr_log(CR_LOG_INFO, "agent shell started: pid %ld in %s", (long)pid, opts->cwd);
    return 0;
}

int host_agent__shell_reply(host_agent_t *a, const char *text)
{
    size_t n = strlen(text);
    if (a->pty_fd < 0)
        return cr_error_set(CR_EIO, NULL, "the agent's terminal is closed");
    /* typed, then Enter */
    if (cr_buf_append(&a->pty_outq, text, n) != 0 || cr_buf_append(&a->pty_outq, "\r", 1) != 0)
        return cr_error_set(CR_ETOOLARGE, "text", "too much input is waiting for the agent's terminal");
    if (flush_outq(a) != 0)
        return cr_error_set(CR_EIO, NULL, "cannot write to the agent's terminal");
    set_events(a);
    return 0;
}

int host_agent__shell_interrupt(host_agent_t *a)
{
    if (a->pty_fd < 0)
        return 0;
    if (cr_buf_append(&a->pty_outq, "\x03", 1) != 0 || flush_outq(a) != 0)
        return cr_error_set(CR_EIO, NULL, "cannot write to the agent's terminal");
    set_events(a);
    return 0;
}

void host_agent__shell_stop(host_agent_t *a)
{
    if (a->pid <= 0 || a->exited)
        return;
    /* the whole session: the shell and what it started, as when a terminal is closed */
    kill(-a->pid, SIGHUP);
    kill(-a->pid, SIGTERM);
    kill(a->pid, SIGTERM);
}

void host_agent__shell_close(host_agent_t *a)
{
    host_agent__close(a, HOST_AGENT_H_POLL, (uv_handle_t *)&a->poll);
    if (a->pty_fd >= 0) {
        close(a->pty_fd);
        a->pty_fd = -1;
    }
    a->pty_outq.len = 0;
}
