/* bench_voice.c — corrald's offline voice commands (server/src/voice.c): how long PocketSphinx takes to load, how
 * long one recording takes to decode and recognise (p50/p99 over many runs, and as a real-time factor), how often it
 * is right on espeak-ng speech, and what the recogniser costs in memory. Run on demand:
 *   build/rel/bench/bench_voice [--runs N]      (needs espeak-ng; prints a table)
 * Recordings are made with espeak-ng at start (two voices) for the approval phrases, the question phrases and free
 * speech that must be rejected. */
#include "bench_common.h"
#include "voice.h"
#include "corral/error.h"
#include "corral/fs.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *text;
    int grammar; /* 0: approval phrases, 1: question phrases */
    int want;    /* the phrase index expected, -1: must be rejected */
} sample_t;

static const char *const approval[] = {"approve", "reject", "yes", "no", "allow", "deny"};
static const char *const question[] = {"staging", "production", "skip the tests", "option one", "option two", "option three",
                                       "yes", "no"};

static const sample_t samples[] = {
    {"approve", 0, 0},        {"reject", 0, 1},        {"yes", 0, 2},          {"no", 0, 3},
    {"allow", 0, 4},          {"deny", 0, 5},          {"staging", 1, 0},      {"production", 1, 1},
    {"skip the tests", 1, 2}, {"option one", 1, 3},    {"option two", 1, 4},   {"option three", 1, 5},
    {"use the staging database", 1, -1},               {"please run the migrations first", 0, -1},
    {"what time is it", 0, -1},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *voices[] = {"en-us", "en-us+f3"};
    int runs = 5;
    char dir[] = "/tmp/bench-voice-XXXXXX";
    for (int i = 1; i < argc; ++i)
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
    if (runs < 1)
        runs = 1;
    bench_print_build(argv[0]);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    long rss0 = bench_rss_kib(getpid());
    uint64_t t0 = bench_now_ns();
    host_voice_t *v = host_voice_new(NULL);
    uint64_t load_ns = bench_now_ns() - t0;
    if (v == NULL) {
        fprintf(stderr, "bench_voice: %s\n", cr_error_last()->message);
        return 1;
    }
    long rss1 = bench_rss_kib(getpid());

    size_t total = runs * NSAMPLES * 2, k = 0, right = 0, rejected_ok = 0, n_reject = 0, n_accept = 0;
    uint64_t *lat = calloc(total, sizeof(*lat));
    double audio_s = 0, work_s = 0;
    for (size_t vi = 0; vi < 2; ++vi) {
        for (size_t si = 0; si < NSAMPLES; ++si) {
            char path[256], cmd[512];
            char *data = NULL;
            size_t len = 0;
            snprintf(path, sizeof(path), "%s/%zu-%zu.wav", dir, vi, si);
            snprintf(cmd, sizeof(cmd), "espeak-ng -v %s -w %s \"%s\" 2>/dev/null", voices[vi], path, samples[si].text);
            if (system(cmd) != 0 || cr_read_whole(&data, &len, path, 1u << 24) != 0) {
                fprintf(stderr, "bench_voice: espeak-ng is needed (apt-get install espeak-ng)\n");
                return 1;
            }
            for (int r = 0; r < runs; ++r) {
                int16_t *pcm = NULL;
                size_t n = 0;
                int which = -2;
                const char *const *ph = samples[si].grammar ? question : approval;
                size_t np = samples[si].grammar ? sizeof(question) / sizeof(question[0]) : sizeof(approval) / sizeof(approval[0]);
                uint64_t a = bench_now_ns();
                if (host_voice_decode(data, len, "audio/wav", &pcm, &n) != 0 ||
                    host_voice_command(v, pcm, n, ph, np, &which, NULL, 0) != 0) {
                    fprintf(stderr, "bench_voice: %s\n", cr_error_last()->message);
                    return 1;
                }
                uint64_t d = bench_now_ns() - a;
                lat[k++] = d;
                audio_s += (double)n / HOST_VOICE_RATE;
                work_s += d / 1e9;
                if (r == 0) {
                    if (samples[si].want < 0) {
                        ++n_reject;
                        rejected_ok += which == -1;
                    } else {
                        ++n_accept;
                        right += which == samples[si].want;
                    }
                }
                free(pcm);
            }
            unlink(path);
            free(data);
        }
    }
    rmdir(dir);
    qsort(lat, k, sizeof(*lat), cmp_u64);
    bench_row("model load", "", 1, "%.0f ms", load_ns / 1e6);
    bench_row("recognition p50 (decode + grammar + rejection)", "", 1, "%.0f ms", lat[k / 2] / 1e6);
    bench_row("recognition p99", "", 1, "%.0f ms", lat[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1] / 1e6);
    bench_row("real-time factor (work / audio)", "< 1", work_s < audio_s, "%.3f", work_s / audio_s);
    bench_row("commands recognised (espeak-ng, 2 voices)", "all", right == n_accept, "%zu / %zu", right, n_accept);
    bench_row("free speech rejected", "all", rejected_ok == n_reject, "%zu / %zu", rejected_ok, n_reject);
    bench_row("RSS of the loaded recogniser", "", 1, "%.1f MiB", (rss1 - rss0) / 1024.0);
    bench_print_table(48);
    host_voice_free(v);
    free(lat);
    return 0;
}
