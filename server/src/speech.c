/* speech.c — the words of a voice reply, made out in a libuv worker thread so that the event loop never waits for
 * PocketSphinx (about a second to load its model, a few hundred ms per recording) or for an external transcriber. */
#define _GNU_SOURCE 1 /* pipe2 */
#include "speech.h"
#include "voice.h"
#include "corral/error.h"
#include "corral/fs.h"
#include "corral/log.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TRANSCRIPT_MAX 4096 /* bytes of a command's transcript kept */

typedef struct st_speech_job_t {
    uv_work_t work;
    host_speech_t *sp;
    char *path, *mime;
    char phrases[HOST_SPEECH_PHRASES_MAX][HOST_SPEECH_PHRASE_MAX];
    size_t nphrases;
    host_speech_cb cb;
    void (*dispose)(void *data);
    void *data;
    /* the outcome, written by the worker */
    int ok, from_grammar, which;
    char heard[TRANSCRIPT_MAX];
    const char *code;
    char message[512];
} speech_job_t;

struct st_host_speech_t {
    uv_loop_t *loop;
    char *command, *model_dir;
    host_voice_t *voice; /* made by the worker on first use, used only by it (one job at a time) */
    speech_job_t *job;   /* the running one */
    int freed;           /* host_speech_free ran while a job was running: its after-work frees sp */
};

static char *xstrdup(const char *s)
{
    char *d = s != NULL ? strdup(s) : NULL;
    if (s != NULL && d == NULL)
        abort();
    return d;
}

int host_speech_new(host_speech_t **out, uv_loop_t *loop, const host_speech_config_t *conf)
{
    host_speech_t *sp = calloc(1, sizeof(*sp));
    if ((*out = sp) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    sp->loop = loop;
    sp->command = conf->command != NULL && conf->command[0] != '\0' ? xstrdup(conf->command) : NULL;
    sp->model_dir = conf->model_dir != NULL && conf->model_dir[0] != '\0' ? xstrdup(conf->model_dir) : NULL;
    return 0;
}

static void speech_destroy(host_speech_t *sp)
{
    host_voice_free(sp->voice);
    free(sp->command);
    free(sp->model_dir);
    free(sp);
}

void host_speech_free(host_speech_t *sp)
{
    if (sp == NULL)
        return;
    if (sp->job != NULL) {
        sp->freed = 1;
        return;
    }
    speech_destroy(sp);
}

int host_speech_busy(const host_speech_t *sp)
{
    return sp->job != NULL;
}

static void fail(speech_job_t *j, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(speech_job_t *j, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof(j->message), fmt, ap);
    va_end(ap);
    j->ok = 0;
    j->code = code;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs `/bin/sh -c "<command> \"$1\"" corral-transcribe PATH` with stdout into j->heard; stderr goes to ours (the
 * daemon's log). posix_spawn, not fork: this runs in a worker thread of a multi-threaded process. */
static void run_command(speech_job_t *j)
{
    host_speech_t *sp = j->sp;
    char script[4200];
    int fds[2];
    pid_t pid;
    posix_spawn_file_actions_t fa;
    size_t got = 0;
    int status = 0, timed_out = 0;
    snprintf(script, sizeof(script), "%s \"$1\"", sp->command);
    char a0[] = "/bin/sh", a1[] = "-c", a3[] = "corral-transcribe";
    char *argv[] = {a0, a1, script, a3, j->path, NULL};
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fail(j, "unavailable", "cannot run transcribe.command: %s", strerror(errno));
        return;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    int rc = posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        fail(j, "unavailable", "cannot run transcribe.command: %s", strerror(rc));
        return;
    }
    uint64_t deadline = mono_ms() + HOST_SPEECH_TIMEOUT_MS;
    for (;;) {
        struct pollfd p = {fds[0], POLLIN, 0};
        uint64_t now = mono_ms();
        if (now >= deadline) {
            timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        int pr = poll(&p, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        char buf[1024];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < sizeof(j->heard) - 1 - got ? (size_t)n : sizeof(j->heard) - 1 - got;
        memcpy(j->heard + got, buf, take);
        got += take;
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    j->heard[got] = '\0';
    if (timed_out) {
        fail(j, "unavailable", "transcribe.command took longer than %d s and was stopped", HOST_SPEECH_TIMEOUT_MS / 1000);
        return;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail(j, "unavailable", "transcribe.command failed (%s %d)", WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return;
    }
    /* one line of words: whitespace folded, ends trimmed */
    char *w = j->heard;
    int space = 1;
    for (const char *r = j->heard; *r != '\0'; ++r) {
        int ws = *r == ' ' || *r == '\t' || *r == '\n' || *r == '\r';
        if (ws && !space)
            *w++ = ' ';
        else if (!ws)
            *w++ = *r;
        space = ws;
    }
    while (w > j->heard && w[-1] == ' ')
        --w;
    *w = '\0';
    if (j->heard[0] == '\0') {
        fail(j, "not_understood", "transcribe.command heard no words in the recording");
        return;
    }
    j->ok = 1;
    j->from_grammar = 0;
    j->which = -1;
}

static void run_grammar(speech_job_t *j)
{
    host_speech_t *sp = j->sp;
    char *data = NULL;
    size_t len = 0;
    int16_t *pcm = NULL;
    size_t n = 0;
    const char *phrases[HOST_SPEECH_PHRASES_MAX];
    if (j->nphrases == 0) {
        fail(j, "not_understood", "nothing in this session waits for an answer the host can recognise; type the reply");
        return;
    }
    if (cr_read_whole(&data, &len, j->path, HOST_VOICE_INPUT_MAX) != 0) {
        fail(j, "bad_audio", "%s", cr_error_last()->message);
        return;
    }
    if (host_voice_decode(data, len, j->mime, &pcm, &n) != 0) {
        fail(j, "bad_audio", "%s", cr_error_last()->message);
        free(data);
        return;
    }
    free(data);
    if (sp->voice == NULL && (sp->voice = host_voice_new(sp->model_dir)) == NULL) {
        fail(j, "unavailable", "offline speech recognition is not available: %s", cr_error_last()->message);
        free(pcm);
        return;
    }
    for (size_t i = 0; i < j->nphrases; ++i)
        phrases[i] = j->phrases[i];
    int which = -1;
    char heard[256] = "";
    if (host_voice_command(sp->voice, pcm, n, phrases, j->nphrases, &which, heard, sizeof(heard)) != 0) {
        fail(j, "not_understood", "%s", cr_error_last()->message);
    } else if (which < 0 || (size_t)which >= j->nphrases) {
        /* free speech: grammar mode would force it onto some command, so it is refused rather than guessed */
        fail(j, "not_understood",
             "the host could not make out a command in the recording (it understands only what the request accepts, "
             "such as approve, reject, yes, no or option N); type the reply, or use a phone with speech recognition");
    } else {
        j->ok = 1;
        j->from_grammar = 1;
        j->which = which;
        snprintf(j->heard, sizeof(j->heard), "%s", j->phrases[which]);
    }
    free(pcm);
}

static void on_work(uv_work_t *w)
{
    speech_job_t *j = w->data;
    if (j->sp->command != NULL)
        run_command(j);
    else
        run_grammar(j);
}

static void on_after_work(uv_work_t *w, int status)
{
    speech_job_t *j = w->data;
    host_speech_t *sp = j->sp;
    host_speech_result_t r = {0};
    sp->job = NULL;
    if (status != 0 && j->ok == 0 && j->code == NULL)
        fail(j, "unavailable", "the recognition was cancelled");
    r.ok = j->ok;
    r.from_grammar = j->from_grammar;
    r.which = j->ok ? j->which : -1;
    r.heard = j->heard;
    r.code = j->code;
    r.message = j->message;
    if (sp->freed) {
        speech_destroy(sp);
        if (j->dispose != NULL)
            j->dispose(j->data);
    } else
        j->cb(&r, j->data);
    free(j->path);
    free(j->mime);
    free(j);
}

int host_speech_start(host_speech_t *sp, const char *path, const char *mime, const char *const *phrases, size_t n,
                      host_speech_cb cb, void (*dispose)(void *data), void *data)
{
    speech_job_t *j;
    if (sp->job != NULL)
        return cr_error_set(CR_ECONFLICT, NULL, "a recording is being transcribed already");
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    j->sp = sp;
    j->path = xstrdup(path);
    j->mime = xstrdup(mime);
    for (size_t i = 0; i < n && j->nphrases < HOST_SPEECH_PHRASES_MAX; ++i)
        snprintf(j->phrases[j->nphrases++], HOST_SPEECH_PHRASE_MAX, "%s", phrases[i]);
    j->cb = cb;
    j->dispose = dispose;
    j->data = data;
    j->work.data = j;
    sp->job = j;
    if (uv_queue_work(sp->loop, &j->work, on_work, on_after_work) != 0) {
        sp->job = NULL;
        free(j->path);
        free(j->mime);
        free(j);
        return cr_error_set(CR_EIO, NULL, "cannot start a worker thread");
    }
    return 0;
}
