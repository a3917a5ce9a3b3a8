/* proc.c — children, temp dirs, ports and logs for the throwaway-server helpers, and their cleanup at exit. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "proc.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_MS 10
#define MAX_SLOTS 64

extern char **environ;

/* Every child and dir this process registered and has not stopped yet. Only async-signal-safe work touches it from
 * the signal handler; `owner` keeps forked children of a test (which inherit the atexit handler) off our servers. */
static struct {
    volatile sig_atomic_t used;
    pid_t owner;
    volatile pid_t pid;
    int grace_ms;
    char dir[PATH_MAX];
} slots[MAX_SLOTS];
static int hooks_installed;

void cr_test_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int64_t cr_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cr_test_free_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

int cr_test_reap(pid_t pid, int block, int *status)
{
    if (status != NULL)
        *status = -1;
    for (;;) {
        int st;
        pid_t got = waitpid(pid, &st, block ? 0 : WNOHANG);
        if (got == pid) {
            if (status != NULL)
                *status = st;
            return 1;
        }
        if (got < 0 && errno == ECHILD)
            return 1;
        if (got == 0)
            return 0;
        if (errno != EINTR)
            return 1;
    }
}

void cr_test_terminate(pid_t pid, int grace_ms)
{
    if (kill(pid, SIGTERM) != 0 && errno == ESRCH) {
        cr_test_reap(pid, 0, NULL);
        return;
    }
    for (int waited = 0; waited < grace_ms; waited += POLL_MS) {
        if (cr_test_reap(pid, 0, NULL))
            return;
        cr_test_sleep_ms(POLL_MS);
    }
    kill(pid, SIGKILL);
    cr_test_reap(pid, 1, NULL);
}

/* Removes everything inside the directory open as dfd (depth-limited). Uses getdents64 rather than opendir so that
 * it is async-signal-safe (no malloc). */
static void rm_contents(int dfd, int depth)
{
    char buf[4096] __attribute__((aligned(8)));
    int removed;
    do {
        ssize_t n;
        removed = 0;
        if (lseek(dfd, 0, SEEK_SET) < 0)
            return;
        while ((n = getdents64(dfd, buf, sizeof(buf))) > 0) {
            for (ssize_t off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(buf + off);
                const char *name = d->d_name;
                off += d->d_reclen;
                if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                    continue;
                if (unlinkat(dfd, name, 0) == 0) {
                    ++removed;
                } else if ((errno == EISDIR || errno == EPERM) && depth < 8) {
                    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (sub >= 0) {
                        rm_contents(sub, depth + 1);
                        close(sub);
                    }
                    if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
                        ++removed;
                }
            }
        }
    } while (removed > 0);
}

void cr_test_rm_rf(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0) {
        rm_contents(dfd, 0);
        close(dfd);
    }
    rmdir(dir);
}

/* Stops every slot this process owns: SIGTERM to all at once (so several servers shut down in parallel), each
 * waited for up to its grace, then SIGKILL; then removes the dirs. Async-signal-safe. */
static void stop_all(void)
{
    pid_t me = getpid();
    int64_t start = cr_test_now_ms();
    int pending;
    for (int i = 0; i < MAX_SLOTS; ++i)
        if (slots[i].used && slots[i].owner == me && slots[i].pid > 0 && kill(slots[i].pid, SIGTERM) != 0)
            slots[i].pid = 0; /* already reaped (a zombie still takes signals) */
    do {
        pending = 0;
        for (int i = 0; i < MAX_SLOTS; ++i) {
            pid_t pid = slots[i].pid;
            if (!slots[i].used || slots[i].owner != me || pid <= 0)
                continue;
            if (cr_test_reap(pid, 0, NULL)) {
                slots[i].pid = 0;
            } else if (cr_test_now_ms() - start >= slots[i].grace_ms) {
                kill(pid, SIGKILL);
                cr_test_reap(pid, 1, NULL);
                slots[i].pid = 0;
            } else {
                pending = 1;
            }
        }
        if (pending)
            cr_test_sleep_ms(POLL_MS);
    } while (pending);
    for (int i = 0; i < MAX_SLOTS; ++i) {
        if (!slots[i].used || slots[i].owner != me)
            continue;
        if (slots[i].dir[0] != '\0')
            cr_test_rm_rf(slots[i].dir);
        slots[i].dir[0] = '\0';
        slots[i].used = 0;
    }
}

static void on_signal(int sig)
{
    int saved = errno;
    stop_all();
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns: the process dies of the signal as it would have */
    errno = saved;
}

static void install_hooks(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE}; /* the last two: a closed terminal, `| head` */
    if (hooks_installed)
        return;
    hooks_installed = 1;
    atexit(stop_all);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); ++i) {
        struct sigaction old, sa;
        /* leave a handler the test installed itself alone */
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

int cr_test_slot_add(const char *dir, int grace_ms)
{
    size_t len = strlen(dir);
    if (len >= sizeof(slots[0].dir)) {
        fprintf(stderr, "proc: path too long: %s\n", dir);
        return -1;
    }
    for (int i = 0; i < MAX_SLOTS; ++i) {
        if (slots[i].used)
            continue;
        install_hooks();
        slots[i].owner = getpid();
        slots[i].pid = 0;
        slots[i].grace_ms = grace_ms;
        memcpy(slots[i].dir, dir, len + 1);
        slots[i].used = 1;
        return i + 1;
    }
    fprintf(stderr, "proc: more than %d servers at once\n", MAX_SLOTS);
    return -1;
}

void cr_test_slot_set_pid(int slot, pid_t pid)
{
    if (slot > 0 && slot <= MAX_SLOTS)
        slots[slot - 1].pid = pid;
}

void cr_test_slot_stop(int slot)
{
    int i = slot - 1;
    if (slot <= 0 || slot > MAX_SLOTS || !slots[i].used || slots[i].owner != getpid())
        return;
    if (slots[i].pid > 0) {
        cr_test_terminate(slots[i].pid, slots[i].grace_ms);
        slots[i].pid = 0;
    }
    if (slots[i].dir[0] != '\0')
        cr_test_rm_rf(slots[i].dir);
    slots[i].dir[0] = '\0';
    slots[i].used = 0;
}

int cr_test_make_temp_dir(char *out, size_t outlen, const char *name, size_t maxlen)
{
    const char *tmp = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) + strlen(name) + sizeof("/-XXXXXX") > maxlen)
        tmp = "/tmp";
    if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/%s-XXXXXX", tmp, name) >= sizeof(tmpl)) {
        fprintf(stderr, "proc: temp dir name too long\n");
        return -1;
    }
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "proc: mkdtemp %s: %s\n", tmpl, strerror(errno));
        return -1;
    }
    if (outlen < PATH_MAX || realpath(tmpl, out) == NULL || strlen(out) > maxlen) {
        fprintf(stderr, "proc: temp dir %s: cannot resolve it or it is longer than %zu bytes\n", tmpl, maxlen);
        rmdir(tmpl);
        if (outlen > 0)
            out[0] = '\0';
        return -1;
    }
    return 0;
}

int cr_test_find_program(char *out, size_t outlen, const char *name)
{
    const char *path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        const char *end = strchr(path, ':');
        size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
        if (n > 0 && (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, path, name) < outlen && access(out, X_OK) == 0)
            return 0;
        path = end != NULL ? end + 1 : NULL;
    }
    snprintf(out, outlen, "/usr/bin/%s", name);
    return access(out, X_OK) == 0 ? 0 : -1;
}

/* 1 when the environment entry e ("KEY=VALUE") sets the same KEY as one of env. */
static int overridden(const char *e, const char *const *env)
{
    size_t klen = strcspn(e, "=");
    for (size_t i = 0; env != NULL && env[i] != NULL; ++i)
        if (strncmp(env[i], e, klen) == 0 && env[i][klen] == '=')
            return 1;
    return 0;
}

pid_t cr_test_spawn(const char *exe, const char *const *argv, const char *const *env, int out_fd, int err_fd)
{
    size_t n = 0, k = 0;
    const char **envp;
    pid_t parent = getpid(), pid;
    int nullfd;
    /* built before fork: the child of a threaded test may only make async-signal-safe calls */
    for (char **e = environ; *e != NULL; ++e)
        ++n;
    for (size_t i = 0; env != NULL && env[i] != NULL; ++i)
        ++n;
    if ((envp = malloc((n + 1) * sizeof(*envp))) == NULL) {
        fprintf(stderr, "proc: out of memory\n");
        return -1;
    }
    for (char **e = environ; *e != NULL; ++e)
        if (!overridden(*e, env))
            envp[k++] = *e;
    for (size_t i = 0; env != NULL && env[i] != NULL; ++i)
        if (!overridden(env[i], env + i + 1)) /* the last of duplicates wins */
            envp[k++] = env[i];
    envp[k] = NULL;
    if ((nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "proc: /dev/null: %s\n", strerror(errno));
        free(envp);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        sigset_t all;
        /* die with the test, even when it crashes; the parent may already be gone before prctl took effect */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        for (int sig = 1; sig < NSIG; ++sig)
            if (sig != SIGKILL && sig != SIGSTOP)
                signal(sig, SIG_DFL);
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        /* out_fd/err_fd may sit at 0..2 themselves: move them out of the way first */
        if ((out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 3)) < 0 || (err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, 3)) < 0 ||
            dup2(nullfd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
            _exit(127);
        if (close_range(3, ~0U, 0) != 0)
            for (int fd = 3; fd < 1024; ++fd)
                close(fd);
        execve(exe, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    free(envp);
    close(nullfd);
    if (pid < 0) {
        fprintf(stderr, "proc: fork: %s\n", strerror(errno));
        return -1;
    }
    return pid;
}

off_t cr_test_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

char *cr_test_file_read(const char *path, off_t from, size_t max)
{
    char *buf;
    ssize_t n;
    int fd;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return NULL;
    if ((buf = malloc(max + 1)) == NULL) {
        close(fd);
        return NULL;
    }
    n = pread(fd, buf, max, from);
    close(fd);
    if (n <= 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

char *cr_test_file_tail(char *out, size_t outlen, const char *path)
{
    off_t size = cr_test_file_size(path), from;
    size_t max = outlen > 1 ? outlen - 1 : 0;
    char *text;
    const char *start;
    if (outlen == 0)
        return out;
    from = size > (off_t)max ? size - (off_t)max : 0;
    text = max > 0 ? cr_test_file_read(path, from, max) : NULL;
    start = text;
    if (text != NULL && from > 0 && strchr(text, '\n') != NULL && strchr(text, '\n')[1] != '\0')
        start = strchr(text, '\n') + 1; /* begin at a whole line */
    snprintf(out, outlen, "%s", start != NULL ? start : "(empty)");
    free(text);
    return out;
}

/* Adds to inodes (up to max) the inode of every listening socket on port in the /proc/net/tcp-format file path.
 * Returns the new count, or -1 when the file cannot be read. */
static int listening_inodes(const char *path, int port, unsigned long *inodes, int count, int max)
{
    char line[512];
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        unsigned lport, state;
        unsigned long inode;
        /* "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode" */
        if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%X %*[0-9A-Fa-f]:%*X %X %*s %*s %*s %*u %*u %lu", &lport, &state, &inode) ==
                3 &&
            lport == (unsigned)port && state == 0x0A /* TCP_LISTEN */ && count < max)
            inodes[count++] = inode;
    }
    fclose(fp);
    return count;
}

int cr_test_pid_listens(pid_t pid, int port)
{
    unsigned long inodes[8];
    char fddir[64], link[PATH_MAX], target[128];
    int n = 0, n6, found = 0;
    DIR *d;
    struct dirent *de;
    if ((n = listening_inodes("/proc/net/tcp", port, inodes, 0, 8)) < 0)
        return -1;
    if ((n6 = listening_inodes("/proc/net/tcp6", port, inodes, n, 8)) >= 0)
        n = n6;
    if (n == 0)
        return 0;
    snprintf(fddir, sizeof(fddir), "/proc/%d/fd", (int)pid);
    if ((d = opendir(fddir)) == NULL)
        return -1;
    while (!found && (de = readdir(d)) != NULL) {
        ssize_t len;
        unsigned long inode;
        if (de->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "%s/%s", fddir, de->d_name);
        if ((len = readlink(link, target, sizeof(target) - 1)) <= 0)
            continue;
        target[len] = '\0';
        if (sscanf(target, "socket:[%lu]", &inode) == 1)
            for (int i = 0; i < n; ++i)
                if (inodes[i] == inode)
                    found = 1;
    }
    closedir(d);
    return found;
}

int cr_test_slot_kill(int slot, pid_t *pid)
{
    if (*pid <= 0)
        return -1;
    kill(*pid, SIGKILL);
    cr_test_reap(*pid, 1, NULL);
    *pid = 0;
    cr_test_slot_set_pid(slot, 0);
    return 0;
}
