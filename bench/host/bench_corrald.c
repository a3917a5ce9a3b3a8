/* bench_corrald.c — what corrald itself costs under load (issue 5): N fake agents (shell sessions whose command prints
 * R lines a second, each line one agent.message event) on a temp git repository; corrald's CPU and RSS over a steady
 * window, and the events it actually wrote. With --relay, the same with its uplink to a real corral-relay and Redis.
 * Targets: at most 5% of one core and 30 MiB RSS with 10 agents at 100 events/s each. Runs the Release corrald and
 * corral beside it (<build>/bin, or $CORRAL_BINARY_DIR/bin) on demand, never as a timed test.
 * With --files N the repository holds N more files of ~2 KiB (10 x 10 directories), so that the sessions' starts, one
 * after another, are a burst of creates on a real worktree (corrald keeps one spare; see README).
 * Usage: bench_corrald [--sessions N] [--rate R] [--seconds S] [--warmup S] [--files N] [--relay] [--perf FILE]
 *                      [--keep] [--verbose] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_common.h"
#include "corral/fs.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* paths here are a short temp dir plus short names: a cut path fails loudly anyway */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define MAX_SESSIONS 200

/* The fake agent: prints `rate` lines a second on an absolute schedule (no burst after a stall of more than a second)
 * until the stop file appears or `cap` seconds have passed. Each line is one agent.message of ~100 bytes. */
static const char emitter_py[] =
    "import os, sys, time\n"
    "n, rate, stop, cap = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], float(sys.argv[4])\n"
    "pad = 'abcdefghij' * 4\n"
    "t0 = time.monotonic()\n"
    "base, i = t0, 0\n"
    "while True:\n"
    "    t, now = base + i / rate, time.monotonic()\n"
    "    if t > now:\n"
    "        time.sleep(t - now)\n"
    "    elif now - t > 1.0:\n"
    "        base, i = now, 0\n"
    "    sys.stdout.write('agent %d event %d: building module %d of the project %s\\n' % (n, i, i % 97, pad))\n"
    "    sys.stdout.flush()\n"
    "    i += 1\n"
    "    if i % 20 == 0 and (os.path.exists(stop) or now - t0 > cap):\n"
    "        break\n";

static char tmp[PATH_MAX], repo[PATH_MAX + 16], home[PATH_MAX + 16], bindir[PATH_MAX], corrald_bin[PATH_MAX + 16],
    corral_bin[PATH_MAX + 16], stop_file[PATH_MAX + 16], script[PATH_MAX + 16], python[PATH_MAX], gitexe[PATH_MAX];
static char env_home[PATH_MAX + 16], env_chome[PATH_MAX + 32], env_rurl[128], env_rtok[128];
static const char *env[12];
static char *out; /* stdout of the last run() */
static int verbose;

/* Runs argv (NULL-terminated) with env, waits, and keeps its stdout in out. Prints its stderr when it fails. Returns
 * its exit status, -1 when it did not exit normally. */
static int run(const char *const *argv)
{
    char op[PATH_MAX + 16], ep[PATH_MAX + 16];
    int ofd, efd, status = 0;
    pid_t pid;
    free(out);
    out = NULL;
    snprintf(op, sizeof(op), "%s/run.out", tmp);
    snprintf(ep, sizeof(ep), "%s/run.err", tmp);
    ofd = open(op, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    efd = open(ep, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid = cr_test_spawn(argv[0], argv, env, ofd, efd);
    close(ofd);
    close(efd);
    if (pid < 0)
        return -1;
    cr_test_reap(pid, 1, &status);
    out = cr_test_file_read(op, 0, 1 << 20);
    if (out == NULL)
        out = strdup("");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char *e = cr_test_file_read(ep, 0, 1 << 16);
        fprintf(stderr, "%s %s: exit status %d\n%s", argv[0], argv[1] != NULL ? argv[1] : "",
                WIFEXITED(status) ? WEXITSTATUS(status) : -1, e != NULL ? e : "");
        free(e);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int git(const char *a1, const char *a2, const char *a3, const char *a4)
{
    const char *argv[] = {gitexe, "-C", repo, a1, a2, a3, a4, NULL};
    return run(argv);
}

/* Lines of every session's transcript.jsonl: all of them in *all, the agent.message ones returned. */
static long count_events(long *all)
{
    char dir[PATH_MAX + 32], path[2 * PATH_MAX];
    char *line = NULL;
    size_t cap = 0;
    long msgs = 0;
    struct dirent *de;
    DIR *d;
    *all = 0;
    snprintf(dir, sizeof(dir), "%s/.corral/sessions", repo);
    if ((d = opendir(dir)) == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        FILE *fp;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s/transcript.jsonl", dir, de->d_name);
        if ((fp = fopen(path, "r")) == NULL)
            continue;
        while (getline(&line, &cap, fp) > 0) {
            *all += 1;
            msgs += strstr(line, "\"agent.message\"") != NULL;
        }
        fclose(fp);
    }
    closedir(d);
    free(line);
    return msgs;
}

static long long du_bytes;
static int du_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)path, (void)f;
    if (flag == FTW_F)
        du_bytes += (long long)st->st_blocks * 512;
    return 0;
}

/* Bytes on disk under dir (files only). */
static long long du(const char *dir)
{
    du_bytes = 0;
    nftw(dir, du_one, 16, FTW_PHYS);
    return du_bytes;
}

static void sleep_until_ns(uint64_t t)
{
    uint64_t now = bench_now_ns();
    if (t > now)
        cr_test_sleep_ms((long)((t - now) / 1000000u));
}

/* Polls `corral ls` until no session is running (up to ms). Returns 1 when none was. */
static int wait_sessions_ended(long ms)
{
    const char *argv[] = {corral_bin, "ls", "--json", NULL};
    int64_t end = cr_test_now_ms() + ms;
    while (cr_test_now_ms() < end) {
        if (run(argv) == 0 && strstr(out, "\"state\":\"running\"") == NULL)
            return 1;
        cr_test_sleep_ms(200);
    }
    return 0;
}

/* Stops corrald gracefully (SIGTERM, up to 20 s, then SIGKILL). Returns its wait status, -1 when it was killed. */
static int stop_daemon(pid_t pid, int slot)
{
    int status = 0, gone = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 400 && !(gone = cr_test_reap(pid, 0, &status)); ++i)
        cr_test_sleep_ms(50);
    if (!gone)
        cr_test_terminate(pid, 100), status = -1;
    cr_test_slot_set_pid(slot, 0);
    return status;
}

/* Finds the build's bin directory: $CORRAL_BINARY_DIR/bin, else ../bin beside this program (<build>/bench). */
static int find_bindir(void)
{
    const char *b = getenv("CORRAL_BINARY_DIR");
    char self[PATH_MAX];
    ssize_t n;
    if (b != NULL && *b != '\0') {
        snprintf(bindir, sizeof(bindir), "%s/bin", b);
        return 0;
    }
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
        return -1;
    self[n] = '\0';
    for (int k = 0; k < 2; ++k) {
        char *s = strrchr(self, '/');
        if (s == NULL)
            return -1;
        *s = '\0';
    }
    snprintf(bindir, sizeof(bindir), "%s/bin", self);
    setenv("CORRAL_BINARY_DIR", self, 1); /* relay_proc.h finds corral-relay there */
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int sessions = 10, files = 0, seconds = 20, warmup = 3, with_relay = 0, keep = 0, slot = -1, rc = 1;
    double rate = 100;
    const char *perf_file = NULL;
    pid_t daemon = 0, perf = 0;
    cr_test_redis_t redis = {0};
    cr_test_relay_t relay = {0};
    char host_token[96] = "", name[32], cmd[4 * PATH_MAX], task[64], p[2 * PATH_MAX];
    double *cpu_sec = NULL, start_ms[MAX_SESSIONS];
    long *rss_sec = NULL;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--sessions") == 0 && i + 1 < argc)
            sessions = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
            rate = atof(argv[++i]);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--files") == 0 && i + 1 < argc)
            files = atoi(argv[++i]);
        else if (strcmp(argv[i], "--perf") == 0 && i + 1 < argc)
            perf_file = argv[++i];
        else if (strcmp(argv[i], "--relay") == 0)
            with_relay = 1;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else {
            fprintf(stderr, "usage: bench_corrald [--sessions N] [--rate R] [--seconds S] [--warmup S] [--files N] "
                            "[--relay] [--perf FILE] [--keep] [--verbose]\n");
            return 2;
        }
    }
    if (sessions < 1 || sessions > MAX_SESSIONS || rate <= 0 || rate > 100000 || seconds < 1 || seconds > 3600 ||
        warmup < 0 || warmup > 600 || files < 0 || files > 1000000) {
        fprintf(stderr, "bench_corrald: --sessions 1..%d, --rate > 0, --seconds 1..3600, --warmup 0..600\n", MAX_SESSIONS);
        return 2;
    }
    if (find_bindir() != 0 || cr_test_find_program(gitexe, sizeof(gitexe), "git") != 0) {
        fprintf(stderr, "bench_corrald: cannot find the build's bin directory or git\n");
        return 1;
    }
    /* the system's python, not a version manager's shim that forks on every start */
    if (access("/usr/bin/python3", X_OK) == 0)
        snprintf(python, sizeof(python), "/usr/bin/python3");
    else if (cr_test_find_program(python, sizeof(python), "python3") != 0) {
        fprintf(stderr, "bench_corrald: python3 not found\n");
        return 1;
    }
    snprintf(corrald_bin, sizeof(corrald_bin), "%s/corrald", bindir);
    snprintf(corral_bin, sizeof(corral_bin), "%s/corral", bindir);
    if (access(corrald_bin, X_OK) != 0 || access(corral_bin, X_OK) != 0) {
        fprintf(stderr, "bench_corrald: build corrald and corral first (%s)\n", bindir);
        return 1;
    }
    cpu_sec = calloc((size_t)seconds, sizeof(*cpu_sec));
    rss_sec = calloc((size_t)seconds, sizeof(*rss_sec));
    if (cpu_sec == NULL || rss_sec == NULL)
        goto done;

    if (with_relay) {
        const char *renv[] = {"CORRAL_LOG_LEVEL=info", NULL};
        if (cr_test_redis_start(&redis) != 0 || cr_test_relay_start(&relay, cr_test_redis_url(&redis), renv) != 0)
            goto done;
        if (cr_test_relay_admin(&relay, NULL, 0, "team", "create", "bench", NULL) != 0 ||
            cr_test_relay_admin(&relay, host_token, sizeof(host_token), "token", "create", "--team", "bench", "--kind",
                                "host", "--label", "bench-host", NULL) != 0) {
            fprintf(stderr, "bench_corrald: corral-relay admin failed:\n%s\n", cr_test_relay_log_tail(&relay));
            goto done;
        }
    }
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "bench-corrald", 60) != 0 || (slot = cr_test_slot_add(keep ? "" : tmp, 20000)) < 0)
        goto done;
    snprintf(repo, sizeof(repo), "%s/repo", tmp);
    snprintf(home, sizeof(home), "%s/home", tmp);
    snprintf(stop_file, sizeof(stop_file), "%s/stop", tmp);
    snprintf(script, sizeof(script), "%s/emit.py", tmp);
    snprintf(env_home, sizeof(env_home), "HOME=%s", tmp);
    snprintf(env_chome, sizeof(env_chome), "CORRAL_HOME=%s", home);
    snprintf(env_rurl, sizeof(env_rurl), "CORRAL_RELAY_URL=%s", with_relay ? relay.url : "");
    snprintf(env_rtok, sizeof(env_rtok), "CORRAL_RELAY_TOKEN=%s", host_token);
    env[0] = env_home;
    env[1] = env_chome;
    env[2] = "CORRAL_URL=";
    env[3] = "CORRAL_TOKEN=";
    env[4] = "GIT_CONFIG_NOSYSTEM=1";
    env[5] = env_rurl;
    env[6] = env_rtok;
    env[7] = NULL;
    {
        FILE *fp = fopen(script, "w");
        if (fp == NULL || fputs(emitter_py, fp) < 0 || fclose(fp) != 0) {
            perror(script);
            goto done;
        }
    }

    /* the repository: one commit */
    {
        const char *init[] = {gitexe, "init", "-q", "-b", "main", repo, NULL};
        FILE *fp;
        if (run(init) != 0 || git("config", "user.name", "Bench", NULL) != 0 ||
            git("config", "user.email", "bench@example.org", NULL) != 0)
            goto done;
        snprintf(p, sizeof(p), "%s/README", repo);
        if ((fp = fopen(p, "w")) == NULL)
            goto done;
        fputs("bench\n", fp);
        fclose(fp);
        for (int i = 0; i < files; ++i) {
            snprintf(p, sizeof(p), "%s/src/m%d/p%d", repo, i % 10, i / 10 % 10);
            if (i < 100 && cr_mkdir_p(p, 0755) != 0)
                goto done;
            snprintf(p, sizeof(p), "%s/src/m%d/p%d/f%06d.c", repo, i % 10, i / 10 % 10, i);
            if ((fp = fopen(p, "w")) == NULL)
                goto done;
            for (int line = 0; line < 64; ++line)
                fprintf(fp, "static int v_%d_%d = %d; /* padding text */\n", i, line, i * 64 + line);
            fclose(fp);
        }
        if (git("add", "-A", NULL, NULL) != 0 || git("commit", "-q", "-m", "init") != 0)
            goto done;
    }

    /* corrald */
    {
        const char *dargv[] = {corrald_bin, "--repo", repo, NULL};
        char logp[PATH_MAX + 16], sock[PATH_MAX + 32];
        int fd;
        int64_t end = cr_test_now_ms() + 10000;
        snprintf(logp, sizeof(logp), "%s/corrald.log", tmp);
        snprintf(sock, sizeof(sock), "%s/corrald.sock", home);
        fd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        daemon = cr_test_spawn(corrald_bin, dargv, env, fd, fd);
        close(fd);
        if (daemon < 0)
            goto done;
        cr_test_slot_set_pid(slot, daemon);
        while (cr_test_now_ms() < end && access(sock, F_OK) != 0)
            cr_test_sleep_ms(20);
        if (access(sock, F_OK) != 0) {
            char tail[4096];
            fprintf(stderr, "bench_corrald: corrald did not start; its log ends:\n%s\n", cr_test_file_tail(tail, sizeof(tail), logp));
            goto done;
        }
    }
    cr_test_sleep_ms(500);
    long rss_idle = bench_rss_kib(daemon);
    printf("corrald pid %d (%s), %d sessions x %g lines/s for %d s after %d s of warm-up%s; %ld CPUs online\n", (int)daemon,
           corrald_bin, sessions, rate, seconds, warmup, with_relay ? ", uplink to corral-relay" : "",
           sysconf(_SC_NPROCESSORS_ONLN));

    /* the sessions: each one's emitter runs until the stop file appears (capped, in case the bench dies) */
    for (int i = 0; i < sessions; ++i) {
        const char *nargv[] = {corral_bin, "new", task, "--name", name, "--agent", "shell", "--cmd", cmd, NULL};
        double t;
        snprintf(name, sizeof(name), "b%03d", i);
        snprintf(task, sizeof(task), "bench agent %d", i);
        snprintf(cmd, sizeof(cmd), "exec %s %s %d %g %s %d", python, script, i, rate, stop_file, 3 * (warmup + seconds) + 120);
        t = (double)bench_now_ns() / 1e6;
        if (run(nargv) != 0)
            goto done;
        start_ms[i] = (double)bench_now_ns() / 1e6 - t;
        if (verbose)
            printf("%s", out);
    }
    cr_test_sleep_ms(1000L * warmup);

    /* the steady window */
    long all0, all1, ev0, ev1, rss_end, hwm;
    long long relay_in0 = 0, relay_in1 = 0;
    double cpu0, cpu1, rcpu0 = 0, rcpu1 = 0, qcpu0 = 0, qcpu1 = 0, elapsed;
    uint64_t t0, t1;
    if (perf_file != NULL) {
        char pids[16], secs[16], perfexe[PATH_MAX];
        const char *pargv[] = {perfexe, "record", "-g", "-q", "-p", pids, "-o", perf_file, "--", "sleep", secs, NULL};
        snprintf(pids, sizeof(pids), "%d", (int)daemon);
        snprintf(secs, sizeof(secs), "%d", seconds);
        if (cr_test_find_program(perfexe, sizeof(perfexe), "perf") != 0 ||
            (perf = cr_test_spawn(perfexe, pargv, NULL, 1, 2)) < 0) {
            fprintf(stderr, "bench_corrald: cannot run perf\n");
            perf = 0;
        }
    }
    ev0 = count_events(&all0);
    if (with_relay) {
        relay_in0 = cr_test_relay_metric(&relay, "corral_events_in_total");
        rcpu0 = bench_cpu_s(relay.pid);
        qcpu0 = bench_cpu_s(redis.pid);
    }
    t0 = bench_now_ns();
    cpu0 = bench_cpu_s(daemon);
    double prev = cpu0;
    for (int k = 0; k < seconds; ++k) {
        double c;
        sleep_until_ns(t0 + (uint64_t)(k + 1) * 1000000000u);
        c = bench_cpu_s(daemon);
        cpu_sec[k] = (c - prev) * 100.0;
        prev = c;
        rss_sec[k] = bench_rss_kib(daemon);
        if (verbose)
            printf("  %2d s: corrald %5.1f%% of a core, RSS %ld KiB\n", k + 1, cpu_sec[k], rss_sec[k]);
    }
    cpu1 = bench_cpu_s(daemon);
    t1 = bench_now_ns();
    ev1 = count_events(&all1);
    rss_end = bench_rss_kib(daemon);
    hwm = bench_rss_peak_kib(daemon);
    if (with_relay) {
        rcpu1 = bench_cpu_s(relay.pid);
        qcpu1 = bench_cpu_s(redis.pid);
        relay_in1 = cr_test_relay_metric(&relay, "corral_events_in_total");
    }
    elapsed = (double)(t1 - t0) / 1e9;
    if (perf > 0) {
        cr_test_reap(perf, 1, NULL);
        printf("perf profile of corrald over the window: %s (perf report -i %s --no-children)\n", perf_file, perf_file);
    }

    /* the agents stop; with a relay, how long its uplink takes to catch up */
    {
        FILE *fp = fopen(stop_file, "w");
        if (fp != NULL)
            fclose(fp);
    }
    if (!wait_sessions_ended(15000))
        fprintf(stderr, "bench_corrald: some sessions still run 15 s after their agents were told to stop\n");
    long all_end, ev_end = count_events(&all_end);
    double catchup_s = -1;
    long long relay_end = 0;
    if (with_relay) {
        uint64_t s0 = bench_now_ns();
        /* every transcript line is one event sent up; the relay's counter also holds what came before the window */
        while ((double)(bench_now_ns() - s0) / 1e9 < 30) {
            relay_end = cr_test_relay_metric(&relay, "corral_events_in_total");
            if (relay_end >= all_end) {
                catchup_s = (double)(bench_now_ns() - s0) / 1e9;
                break;
            }
            cr_test_sleep_ms(100);
        }
    }
    snprintf(p, sizeof(p), "%s/.corral", repo);
    long long disk = du(p);
    snprintf(p, sizeof(p), "%s/.corral/outbox", repo);
    long long disk_outbox = du(p);
    snprintf(p, sizeof(p), "%s/corrald.log", tmp);
    off_t logsize = cr_test_file_size(p);

    /* the table */
    {
        double cpu_pct = (cpu1 - cpu0) / elapsed * 100.0, evrate = (double)(ev1 - ev0) / elapsed, sorted[3600], maxrss = 0;
        char target[32];
        int n = seconds;
        memcpy(sorted, cpu_sec, sizeof(double) * (size_t)n);
        qsort(sorted, (size_t)n, sizeof(double), cmp_double);
        for (int k = 0; k < n; ++k)
            maxrss = rss_sec[k] > maxrss ? (double)rss_sec[k] : maxrss;
        qsort(start_ms, (size_t)sessions, sizeof(double), cmp_double);
        snprintf(target, sizeof(target), "%g/s", rate * sessions);
        bench_row("agent.message events written /s", target, evrate >= 0.95 * rate * sessions, "%.0f (%ld in %.1f s)", evrate,
                  ev1 - ev0, elapsed);
        bench_row("corrald CPU, % of one core", "<= 5%", cpu_pct <= 5.0, "%.2f%%", cpu_pct);
        bench_row("  per 1-s sample: median / max", NULL, 0, "%.1f%% / %.1f%%", sorted[n / 2], sorted[n - 1]);
        bench_row("  CPU per event", NULL, 0, "%.1f us", ev1 > ev0 ? (cpu1 - cpu0) / (double)(ev1 - ev0) * 1e6 : 0);
        bench_row("corrald RSS at the end", "<= 30 MiB", rss_end >= 0 && rss_end <= 30 * 1024, "%.1f MiB", rss_end / 1024.0);
        bench_row("  max of 1-s samples / peak (VmHWM)", "<= 30 MiB", hwm >= 0 && hwm <= 30 * 1024, "%.1f / %.1f MiB",
                  maxrss / 1024.0, hwm / 1024.0);
        bench_row("  before any session", NULL, 0, "%.1f MiB", rss_idle / 1024.0);
        if (with_relay) {
            double rin = (double)(relay_in1 - relay_in0) / elapsed, wrote = (double)(all1 - all0) / elapsed;
            bench_row("relay: events received /s", NULL, 0, "%.0f (corrald wrote %.0f)", rin, wrote);
            if (catchup_s >= 0)
                bench_row("  uplink caught up after the agents stopped", NULL, 0, "in %.1f s", catchup_s);
            else
                bench_row("  uplink caught up after the agents stopped", NULL, 0, "NOT in 30 s (%lld of %ld)", relay_end, all_end);
            bench_row("relay CPU / RSS at the end", NULL, 0, "%.2f%% / %.1f MiB", (rcpu1 - rcpu0) / elapsed * 100.0,
                      bench_rss_kib(relay.pid) / 1024.0);
            bench_row("redis-server CPU / RSS at the end", NULL, 0, "%.2f%% / %.1f MiB", (qcpu1 - qcpu0) / elapsed * 100.0,
                      bench_rss_kib(redis.pid) / 1024.0);
        }
        bench_row("session start (corral new), median / max", NULL, 0, "%.0f / %.0f ms", start_ms[sessions / 2],
                  start_ms[sessions - 1]);
        bench_row("events in transcripts at the end", NULL, 0, "%ld agent.message, %ld in all", ev_end, all_end);
        bench_row(".corral on disk (of it the outbox)", NULL, 0, "%.1f MiB (%.1f MiB)", disk / 1048576.0,
                  disk_outbox / 1048576.0);
        bench_row("corrald log", NULL, 0, "%lld bytes", (long long)logsize);
        bench_print_table(44);
    }

    /* clean up: the sessions, corrald, the relay */
    for (int i = 0; i < sessions; ++i) {
        const char *rargv[] = {corral_bin, "rm", name, NULL};
        snprintf(name, sizeof(name), "b%03d", i);
        if (run(rargv) != 0)
            fprintf(stderr, "bench_corrald: corral rm %s failed\n", name);
    }
    {
        int st = stop_daemon(daemon, slot);
        daemon = 0;
        if (st != 0) {
            char tail[4096];
            snprintf(p, sizeof(p), "%s/corrald.log", tmp);
            fprintf(stderr, "bench_corrald: corrald ended with wait status %d; its log ends:\n%s\n", st,
                    cr_test_file_tail(tail, sizeof(tail), p));
            goto done;
        }
    }
    rc = 0;

done:
    if (daemon > 0)
        stop_daemon(daemon, slot);
    if (slot > 0) {
        if (keep)
            printf("kept %s\n", tmp);
        cr_test_slot_stop(slot);
    }
    cr_test_relay_stop(&relay);
    cr_test_redis_stop(&redis);
    free(cpu_sec);
    free(rss_sec);
    free(out);
    return rc;
}
