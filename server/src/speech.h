/* speech.h — making out the words of a voice reply (DESIGN.md §7) off the event loop: with the configured external
 * command (transcribe.command) when there is one, else offline with PocketSphinx against the phrases the pending
 * request accepts (voice.h). One job at a time; the caller queues. */
#ifndef HOST_SPEECH_H
#define HOST_SPEECH_H

#include <stddef.h>
#include <uv.h>

#define HOST_SPEECH_PHRASES_MAX 24
#define HOST_SPEECH_PHRASE_MAX 96
#define HOST_SPEECH_TIMEOUT_MS 120000 /* transcribe.command is killed after this long */

typedef struct st_host_speech_t host_speech_t;

typedef struct st_host_speech_config_t {
    const char *command;   /* transcribe.command: run with the audio file's path as its last argument, prints the
                              transcript; NULL or "" for none */
    const char *model_dir; /* PocketSphinx's acoustic model and dictionary; NULL: Debian's pocketsphinx-en-us */
} host_speech_config_t;

/* What became of a job; valid during the callback only. */
typedef struct st_host_speech_result_t {
    int ok;           /* 1: heard is what was said */
    int from_grammar; /* heard is phrases[which] (PocketSphinx); 0: free text from the command */
    int which;        /* the phrase's index, -1 for free text */
    const char *heard;
    const char *code;    /* !ok: a stable word: not_understood (nothing it could make out), bad_audio, unavailable */
    const char *message; /* !ok: for the person */
} host_speech_result_t;

typedef void (*host_speech_cb)(const host_speech_result_t *r, void *data);

int host_speech_new(host_speech_t **out, uv_loop_t *loop, const host_speech_config_t *conf);

/* Frees sp; a job still running finishes in its thread and its callback is not called. */
void host_speech_free(host_speech_t *sp);

/* Starts a job: makes out the words of the audio in file path (a WAV or an Ogg Opus recording, mime may be NULL)
 * against phrases (copied; up to HOST_SPEECH_PHRASES_MAX). cb runs on the loop when it is done; when sp was freed
 * first, dispose(data) runs instead (may be NULL). Returns 0, or CR_ECONFLICT while another job runs. */
int host_speech_start(host_speech_t *sp, const char *path, const char *mime, const char *const *phrases, size_t n,
                      host_speech_cb cb, void (*dispose)(void *data), void *data);

/* Whether a job runs. */
int host_speech_busy(const host_speech_t *sp);

#endif
