/* fuzz_voice_wav.c — libFuzzer target for host_voice_decode, corrald's decoder of the voice recordings a phone sends
 * (WAV, Ogg Opus): any bytes either decode into at most a minute of 16 kHz PCM or are refused with an "audio" error
 * naming the problem; nothing leaks or crashes. The first byte picks the declared type (none: sniffed). */
#include "../fuzz.h"
#include "corral/error.h"
#include "voice.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const mimes[] = {NULL, "audio/wav", "audio/ogg; codecs=opus", "audio/opus", "audio/x-wav"};
    const char *mime;
    int16_t *pcm = (int16_t *)&mime;
    size_t n = 1;
    int rc;

    if (size == 0)
        return 0;
    mime = mimes[data[0] % (sizeof(mimes) / sizeof(mimes[0]))];
    rc = host_voice_decode(data + 1, size - 1, mime, &pcm, &n);
    if (rc == 0) {
        int64_t sum = 0;
        CHECK(pcm != NULL && n > 0 && n <= (size_t)HOST_VOICE_SECONDS_MAX * HOST_VOICE_RATE + HOST_VOICE_RATE);
        for (size_t i = 0; i < n; ++i) /* every sample readable */
            sum += pcm[i];
        CHECK(sum >= -(int64_t)n * 32768);
        free(pcm);
    } else {
        const cr_error_t *e = cr_error_last();
        CHECK(pcm == NULL && n == 0);
        CHECK(rc == -1 || rc == CR_ETOOLARGE);
        CHECK(e->code == CR_EBODY || e->code == CR_ETOOLARGE || e->code == CR_ENOMEM);
        CHECK(strcmp(e->field, "audio") == 0 && e->message[0] != '\0');
    }
    return 0;
}
