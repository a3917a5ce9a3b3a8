/* voice.h — corrald's offline voice commands: audio (WAV, Ogg Opus) to 16 kHz PCM, and PocketSphinx grammar-mode
 * recognition of the few phrases a pending request accepts, rejecting speech that is none of them. */
#ifndef HOST_VOICE_H
#define HOST_VOICE_H

#include <stddef.h>
#include <stdint.h>

#define HOST_VOICE_RATE 16000            /* samples per second of the PCM host_voice_decode makes */
#define HOST_VOICE_SECONDS_MAX 60        /* audio longer than this is refused */
#define HOST_VOICE_INPUT_MAX (32u << 20) /* bytes of encoded audio taken, at most */
#define HOST_VOICE_PHRASES_MAX 64        /* phrases in one grammar, at most */
#define HOST_VOICE_PHRASE_MAX 128        /* bytes of one phrase, at most */

/* Decodes a voice recording into 16 kHz mono signed 16-bit PCM. mime names the format: "audio/wav", "audio/x-wav",
 * "audio/wave" (RIFF/WAVE: integer PCM of 8, 16, 24 or 32 bits, IEEE float of 32 bits, also in
 * WAVE_FORMAT_EXTENSIBLE; 1 or 2 channels; 8000 to 48000 Hz), "audio/ogg", "audio/ogg; codecs=opus", "audio/opus"
 * (Ogg Opus, through libopusfile); NULL sniffs "RIFF" or "OggS". Other rates are resampled with a windowed-sinc
 * low-pass, channels are averaged. On success *pcm is a malloc'd array of *n samples (n > 0) the caller frees.
 * Returns 0; CR_ETOOLARGE (field "audio": over HOST_VOICE_INPUT_MAX bytes or HOST_VOICE_SECONDS_MAX seconds); or -1
 * with cr_error_last() set to CR_EBODY (field "audio", a message naming the problem: an unknown type, a truncated
 * chunk or page, an unsupported encoding, no samples) or CR_ENOMEM. *pcm is NULL and *n 0 on failure. */
int host_voice_decode(const void *data, size_t len, const char *mime, int16_t **pcm, size_t *n);

typedef struct st_host_voice_t host_voice_t;

/* Loads the PocketSphinx acoustic model and dictionary from model_dir (a directory with en-us/ and
 * cmudict-en-us.dict; NULL: Debian's /usr/share/pocketsphinx/model/en-us). Slow (0.2 s, a second from a cold disk
 * cache): make one and keep it. Returns NULL with cr_error_last() set (CR_ENOTFOUND: the model is missing;
 * CR_ENOMEM; CR_ERR: PocketSphinx failed). One call at a time on one v; PocketSphinx's log goes to cr_log at debug
 * (warnings and errors only). */
host_voice_t *host_voice_new(const char *model_dir);

/* Frees v and its decoder. NULL is fine. */
void host_voice_free(host_voice_t *v);

/* Recognises which of phrases the audio says (pcm as host_voice_decode makes it: 16 kHz mono, n samples). Phrases
 * are words of the dictionary ("approve", "option two", "skip the tests"), taken lowercased and without punctuation;
 * a phrase with a word the dictionary lacks cannot be recognised and is skipped (logged at debug), and of two equal
 * phrases the first counts. Speech that is not one of the phrases as a whole (other words, a longer sentence, the
 * phrase inside a sentence), silence and sounds without speech are rejected: *which is -1. Otherwise *which is the
 * index (into phrases) of the phrase heard. heard (heardcap bytes, may be NULL) receives the words recognised: the
 * phrase, or for a rejection the best other words when there are some, else "". Takes up to a few hundred ms: the
 * first call with a new list of phrases builds its grammars, later calls with the same list reuse them.
 * Returns 0 when the audio was looked at (either way); -1 with cr_error_last() set: CR_EBODY ("phrases": none
 * given, over HOST_VOICE_PHRASES_MAX, or none usable), CR_ETOOLARGE ("audio": over HOST_VOICE_SECONDS_MAX),
 * CR_ENOMEM, or CR_ERR (PocketSphinx failed). */
int host_voice_command(host_voice_t *v, const int16_t *pcm, size_t n, const char *const *phrases, size_t nphrases,
                       int *which, char *heard, size_t heardcap);

/* What the last host_voice_command measured, for logs and tests. */
typedef struct st_host_voice_stats_t {
    int speech;        /* 1 when the energy detector found speech at all (else nothing was decoded) */
    int speech_frames; /* loud 10 ms frames */
    int grammar_hit;   /* the phrase (index into phrases) the phrase-only search chose before any rejection, or -1 */
    int silent_speech; /* the longest run of loud frames that search's path gives to silence or noise */
    double score;      /* nats: that path's score minus the best competing path's (other words; the phrase with other
                        * words around it; part of a phrase); INFINITY when no competitor reached the end, NAN when
                        * not measured (no speech, or already rejected for silent_speech) */
    double threshold;  /* the phrase is rejected when score is under this */
    int silent_max;    /* ... or when silent_speech is over this */
} host_voice_stats_t;

/* The measurements of the last host_voice_command on v (zeros before the first). */
const host_voice_stats_t *host_voice_last_stats(const host_voice_t *v);

#endif
