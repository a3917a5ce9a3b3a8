/* proc.h — what the throwaway-server helpers share: clocks, free loopback ports, temp dirs, children that die with
 * the test, their logs, and cleanup of children and dirs at exit and on SIGINT/SIGTERM/SIGHUP/SIGPIPE. */
#ifndef CORRAL_TEST_PROC_H
#define CORRAL_TEST_PROC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Sleeps ms milliseconds (through EINTR). */
void cr_test_sleep_ms(long ms);

/* Milliseconds on the monotonic clock. */
int64_t cr_test_now_ms(void);

/* A loopback TCP port nobody listens on right now. Another process may still take it before the server binds it,
 * so callers retry on "address in use". Returns the port or -1 (errno set). */
int cr_test_free_port(void);

/* Reaps pid if it has exited (waiting for it when block). Returns 1 when it is gone (reaped here, with its wait
 * status in *status when status is not NULL and it was reaped here, else -1 there), 0 while it runs. */
int cr_test_reap(pid_t pid, int block, int *status);

/* SIGTERM, up to grace_ms for pid to exit, then SIGKILL; reaps it. Async-signal-safe. */
void cr_test_terminate(pid_t pid, int grace_ms);

/* Removes dir and everything in it (depth-limited, never following symlinks). Async-signal-safe. */
void cr_test_rm_rf(const char *dir);

/* Makes a fresh directory "$TMPDIR/<name>-XXXXXX" (or under /tmp when TMPDIR is unset or would make the path longer
 * than maxlen bytes), resolved to an absolute path in out (outlen >= PATH_MAX). maxlen lets a caller keep room for
 * a unix socket's name (sun_path holds 107 bytes). Returns 0, or -1 with a message on stderr. */
int cr_test_make_temp_dir(char *out, size_t outlen, const char *name, size_t maxlen);

/* Cleanup slots: every child and temp dir registered here is stopped (SIGTERM, its grace, SIGKILL) and removed at
 * exit and on SIGINT/SIGTERM/SIGHUP/SIGPIPE (unless the test installed its own handler for that signal). Only the
 * process that registered a slot cleans it up, so forked children of a test leave it alone.
 *
 * cr_test_slot_add registers dir (copied; may be "") and returns the slot, 1-based, or -1 when all are taken. */
int cr_test_slot_add(const char *dir, int grace_ms);

/* Records the child now running for slot (0: none). */
void cr_test_slot_set_pid(int slot, pid_t pid);

/* Stops the slot's child (SIGTERM, its grace, SIGKILL), removes its dir and frees the slot. Idempotent for 0. */
void cr_test_slot_stop(int slot);

/* Kills a child of slot `slot` at once (SIGKILL, as a crash would), reaps it and sets *pid to 0; the slot keeps its
 * directory. Returns 0, or -1 when *pid is not running. */
int cr_test_slot_kill(int slot, pid_t *pid);

/* Finds an executable on PATH, then in /usr/bin. Returns 0 with its path in out, or -1. */
int cr_test_find_program(char *out, size_t outlen, const char *name);

/* Forks and execs exe with argv (argv[0] included, NULL-terminated). The child gets /dev/null on stdin, out_fd on
 * stdout and err_fd on stderr, no other descriptor, default signal dispositions, an empty signal mask, and dies
 * with SIGKILL when the thread that spawned it goes away (call it from the test's main thread). Its environment is
 * the test's, with each "KEY=VALUE" of env (NULL-terminated, may be NULL) added or replacing the same KEY
 * ("KEY=" sets it empty). Returns the child's pid, or -1 with a message on stderr. */
pid_t cr_test_spawn(const char *exe, const char *const *argv, const char *const *env, int out_fd, int err_fd);

/* The size of a file, 0 when it does not exist. */
off_t cr_test_file_size(const char *path);

/* Reads at most max bytes of path from offset from, NUL-terminated (malloc'd; the caller frees it). NULL when there
 * is nothing there. */
char *cr_test_file_read(const char *path, off_t from, size_t max);

/* Writes the last ~max bytes of path, starting at a line, into out (NUL-terminated, "(empty)" when there is
 * nothing). Returns out. */
char *cr_test_file_tail(char *out, size_t outlen, const char *path);

/* Whether process pid holds a listening TCP socket on port (IPv4 or IPv6), found through /proc: 1 yes, 0 no, -1
 * when /proc cannot tell (not mounted, not ours to read). Tells our server from a stranger that took its port. */
int cr_test_pid_listens(pid_t pid, int port);

#endif
