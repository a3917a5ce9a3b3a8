/* voice.c — tests of server/src/voice.c: WAV and Ogg Opus recordings decode to 16 kHz PCM (resampled without
 * aliasing; bad and cut-off files refused with a clear error), and PocketSphinx hears each phrase a pending request
 * accepts, spoken by espeak-ng, while free speech, silence, a tone and noise are rejected. Prints the accuracy and the
 * score margins it measured. */
#include "corral/error.h"
#include "harness.h"
#include "proc.h"
#include "voice.h"
#include <fcntl.h>
#include <math.h>
#include <opus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[PATH_MAX], espeak[PATH_MAX];
static host_voice_t *voice;

/* ---- making recordings ------------------------------------------------------------------------------------------- */

typedef struct st_clip_t {
    unsigned rate, channels;
    size_t frames;
    int16_t *s; /* interleaved */
} clip_t;

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

/* A WAV file of the clip: format 1 (PCM, bits 8/16/24/32) or 3 (float, bits 32); extensible wraps it in
 * WAVE_FORMAT_EXTENSIBLE; an unknown "LIST" chunk comes before "fmt ". Returns a malloc'd buffer of *len bytes. */
static uint8_t *make_wav(const clip_t *c, unsigned format, unsigned bits, int extensible, size_t *len)
{
    static const uint8_t guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                          0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71};
    unsigned align = c->channels * bits / 8, fmtlen = extensible ? 40 : 16;
    size_t data = c->frames * align, total = 12 + 8 + 6 + 8 + fmtlen + 8 + data + (data & 1);
    uint8_t *w = calloc(1, total), *p = w;
    memcpy(p, "RIFF", 4), put32(p + 4, (uint32_t)(total - 8)), memcpy(p + 8, "WAVE", 4), p += 12;
    memcpy(p, "LIST", 4), put32(p + 4, 5), memcpy(p + 8, "INFO!", 5), p += 8 + 6; /* odd size: one pad byte */
    memcpy(p, "fmt ", 4), put32(p + 4, fmtlen);
    put16(p + 8, extensible ? 0xfffe : format), put16(p + 10, c->channels), put32(p + 12, c->rate);
    put32(p + 16, c->rate * align), put16(p + 20, align), put16(p + 22, bits);
    if (extensible) {
        put16(p + 24, 22), put16(p + 26, bits), put32(p + 28, c->channels == 1 ? 4 : 3);
        put16(p + 32, format), memcpy(p + 34, guid_tail, sizeof(guid_tail));
    }
    p += 8 + fmtlen;
    memcpy(p, "data", 4), put32(p + 4, (uint32_t)data), p += 8;
    for (size_t i = 0; i < c->frames * c->channels; ++i) {
        int v = c->s[i];
        if (format == 3) {
            float f = (float)v / 32768.0f;
            uint32_t u;
            memcpy(&u, &f, 4);
            put32(p, u), p += 4;
        } else if (bits == 8) {
            *p++ = (uint8_t)((v >> 8) + 128);
        } else if (bits == 16) {
            put16(p, (unsigned)v & 0xffff), p += 2;
        } else if (bits == 32) {
            put32(p, (uint32_t)v << 16), p += 4;
        } else {
            uint32_t u = (uint32_t)(v * 256);
            p[0] = (uint8_t)u, p[1] = (uint8_t)(u >> 8), p[2] = (uint8_t)(u >> 16), p += 3;
        }
    }
    *len = total;
    return w;
}

/* Reads the 16-bit mono WAV espeak-ng writes (the test's own reader: a check on the decoder, not a use of it). */
static int read_espeak_wav(const char *path, clip_t *c)
{
    size_t len, off = 12;
    uint8_t *w = (uint8_t *)cr_test_read_file(path, &len);
    memset(c, 0, sizeof(*c));
    if (w == NULL || len < 44 || memcmp(w, "RIFF", 4) != 0)
        return free(w), -1;
    while (off + 8 <= len) {
        uint32_t size = w[off + 4] | w[off + 5] << 8 | w[off + 6] << 16 | (uint32_t)w[off + 7] << 24;
        if (memcmp(w + off, "fmt ", 4) == 0) {
            c->channels = w[off + 10];
            c->rate = w[off + 12] | w[off + 13] << 8 | w[off + 14] << 16;
        } else if (memcmp(w + off, "data", 4) == 0) {
            if (size > len - off - 8)
                size = (uint32_t)(len - off - 8);
            c->frames = size / 2;
            c->s = malloc(c->frames * 2 + 2);
            for (size_t i = 0; i < c->frames; ++i)
                c->s[i] = (int16_t)(w[off + 8 + 2 * i] | w[off + 9 + 2 * i] << 8);
            break;
        }
        off += 8 + size + (size & 1);
    }
    free(w);
    return c->s != NULL && c->channels == 1 ? 0 : -1;
}

/* Speaks text with espeak-ng (voice, words per minute) into a WAV file; returns its path (static buffer). */
static const char *speak(const char *voice_name, int wpm, const char *text)
{
    static char path[PATH_MAX + 32];
    static unsigned serial;
    char speed[16];
    const char *argv[] = {"espeak-ng", "-v", voice_name, "-s", speed, "-w", path, text, NULL};
    int status = -1, fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    pid_t pid;
    snprintf(speed, sizeof(speed), "%d", wpm);
    snprintf(path, sizeof(path), "%s/%u.wav", tmp, serial++);
    pid = fd >= 0 ? cr_test_spawn(espeak, argv, NULL, fd, fd) : -1;
    if (fd >= 0)
        close(fd);
    if (pid < 0 || cr_test_reap(pid, 1, &status) != 1 || status != 0)
        return NULL;
    return path;
}

/* Decodes a file through host_voice_decode; returns the PCM (malloc'd) or NULL. */
static int16_t *decode_file(const char *path, const char *mime, size_t *n)
{
    size_t len;
    char *data = cr_test_read_file(path, &len);
    int16_t *pcm = NULL;
    *n = 0;
    if (data != NULL && host_voice_decode(data, len, mime, &pcm, n) != 0)
        pcm = NULL;
    free(data);
    return pcm;
}

/* ---- Ogg Opus, written here with libopus and a minimal Ogg muxer ------------------------------------------------- */

static uint32_t ogg_crc(const uint8_t *p, size_t n)
{
    uint32_t crc = 0;
    for (size_t i = 0; i < n; ++i) {
        crc ^= (uint32_t)p[i] << 24;
        for (int k = 0; k < 8; ++k)
            crc = crc & 0x80000000u ? crc << 1 ^ 0x04c11db7u : crc << 1;
    }
    return crc;
}

/* Appends one Ogg page holding one packet (< 255 * 255 bytes) to out. */
static void ogg_page(uint8_t *out, size_t *len, const uint8_t *packet, size_t plen, int flags, uint64_t granule,
                     uint32_t seq)
{
    uint8_t *p = out + *len;
    size_t nseg = plen / 255 + 1;
    memcpy(p, "OggS", 4);
    p[4] = 0, p[5] = (uint8_t)flags;
    for (int i = 0; i < 8; ++i)
        p[6 + i] = (uint8_t)(granule >> (8 * i));
    put32(p + 14, 0x436f7272), put32(p + 18, seq), put32(p + 22, 0);
    p[26] = (uint8_t)nseg;
    for (size_t i = 0; i < nseg; ++i)
        p[27 + i] = (uint8_t)(i + 1 < nseg ? 255 : plen % 255);
    memcpy(p + 27 + nseg, packet, plen);
    put32(p + 22, ogg_crc(p, 27 + nseg + plen));
    *len += 27 + nseg + plen;
}

/* Encodes 16 kHz mono PCM as an Ogg Opus file (20 ms packets, one per page). Returns a malloc'd buffer, or NULL. */
static uint8_t *make_opus(const int16_t *pcm, size_t n, size_t *len)
{
    int err = 0;
    OpusEncoder *enc = opus_encoder_create(16000, 1, OPUS_APPLICATION_VOIP, &err);
    opus_int32 lookahead = 0;
    size_t frames = (n + 319) / 320, olen = 0;
    uint8_t *out = malloc(1024 + frames * (27 + 2 + 1500)), head[19], tags[8 + 4 + 6 + 4], packet[1500];
    int16_t frame[320];
    uint32_t seq = 0;
    if (enc == NULL || out == NULL) {
        free(out);
        return NULL;
    }
    opus_encoder_ctl(enc, OPUS_SET_BITRATE(24000));
    opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD(&lookahead));
    memcpy(head, "OpusHead", 8), head[8] = 1, head[9] = 1, put16(head + 10, (unsigned)lookahead * 3);
    put32(head + 12, 16000), put16(head + 16, 0), head[18] = 0;
    ogg_page(out, &olen, head, sizeof(head), 2, 0, seq++);
    memcpy(tags, "OpusTags", 8), put32(tags + 8, 6), memcpy(tags + 12, "corral", 6), put32(tags + 18, 0);
    ogg_page(out, &olen, tags, sizeof(tags), 0, 0, seq++);
    for (size_t f = 0; f < frames; ++f) {
        int got;
        for (size_t i = 0; i < 320; ++i)
            frame[i] = f * 320 + i < n ? pcm[f * 320 + i] : 0;
        if ((got = opus_encode(enc, frame, 320, packet, sizeof(packet))) < 0) {
            free(out);
            opus_encoder_destroy(enc);
            return NULL;
        }
        /* granule positions count the pre-skip: 960 per packet, and on the last page where the input ends */
        ogg_page(out, &olen, packet, (size_t)got, f + 1 == frames ? 4 : 0,
                 f + 1 == frames ? (uint64_t)lookahead * 3 + n * 3 : (uint64_t)(f + 1) * 960, seq++);
    }
    opus_encoder_destroy(enc);
    *len = olen;
    return out;
}

/* ---- measuring ---------------------------------------------------------------------------------------------- */

/* The amplitude of the f Hz component of 16 kHz PCM (Goertzel over all of it, skipping the edges). */
static double amplitude(const int16_t *pcm, size_t n, double f)
{
    double re = 0, im = 0;
    size_t from = n / 10, to = n - n / 10;
    for (size_t i = from; i < to; ++i) {
        re += pcm[i] * cos(2 * M_PI * f * (double)i / HOST_VOICE_RATE);
        im += pcm[i] * sin(2 * M_PI * f * (double)i / HOST_VOICE_RATE);
    }
    return 2 * sqrt(re * re + im * im) / (double)(to - from) / 32768.0;
}

/* A tone of f Hz at amplitude a (of full scale), seconds long, as a clip at rate, channels. */
static clip_t tone(unsigned rate, unsigned channels, double f, double a, double seconds)
{
    clip_t c = {rate, channels, (size_t)(rate * seconds), NULL};
    c.s = malloc(c.frames * channels * sizeof(*c.s));
    for (size_t i = 0; i < c.frames; ++i)
        for (unsigned ch = 0; ch < channels; ++ch)
            c.s[i * channels + ch] = (int16_t)lrint(32767 * a * sin(2 * M_PI * f * (double)i / rate));
    return c;
}

static int decode_error(const void *data, size_t len, const char *mime, int code, const char *words)
{
    int16_t *pcm = (int16_t *)1;
    size_t n = 1;
    int rc = host_voice_decode(data, len, mime, &pcm, &n);
    const cr_error_t *e = cr_error_last();
    int pass = rc == (code == CR_ETOOLARGE ? CR_ETOOLARGE : -1) && pcm == NULL && n == 0 && e->code == code &&
               strcmp(e->field, "audio") == 0 && strstr(e->message, words) != NULL;
    if (!pass)
        note("decode gave %d, error %d \"%s\" (wanted %d with \"%s\")", rc, e->code, e->message, code, words);
    return pass;
}

/* ---- the decoder ------------------------------------------------------------------------------------------------- */

static void test_resampling(void)
{
    static const unsigned rates[] = {8000, 11025, 16000, 22050, 32000, 44100, 48000};
    for (size_t r = 0; r < sizeof(rates) / sizeof(rates[0]); ++r) {
        /* 1 kHz passes at its level; at 44.1 and 48 kHz a 9 kHz tone (above the 8 kHz Nyquist) must not fold
         * back to 7 kHz */
        clip_t c = tone(rates[r], 2, 1000, 0.5, 1.0);
        size_t len, n;
        uint8_t *w = make_wav(&c, 1, 16, 0, &len);
        int16_t *pcm = NULL;
        ok(host_voice_decode(w, len, "audio/wav", &pcm, &n) == 0);
        okf(n > HOST_VOICE_RATE - 3 && n <= HOST_VOICE_RATE, "%u Hz: %zu samples for 1 s", rates[r], n);
        okf(pcm != NULL && fabs(amplitude(pcm, n, 1000) - 0.5) < 0.01, "%u Hz: 1 kHz at %.3f", rates[r],
            pcm ? amplitude(pcm, n, 1000) : 0);
        free(pcm), free(w), free(c.s);
        if (rates[r] >= 44100) {
            double a;
            c = tone(rates[r], 1, 9000, 0.5, 1.0);
            w = make_wav(&c, 1, 16, 0, &len);
            ok(host_voice_decode(w, len, NULL, &pcm, &n) == 0);
            a = amplitude(pcm, n, 7000);
            okf(20 * log10(a / 0.5 + 1e-12) < -60, "%u Hz: 9 kHz folds to 7 kHz at %.1f dB", rates[r],
                20 * log10(a / 0.5 + 1e-12));
            note("%u Hz: a 9 kHz tone leaves %.1f dB at its 7 kHz alias", rates[r], 20 * log10(a / 0.5 + 1e-12));
            free(pcm), free(w), free(c.s);
        }
    }
}

/* The same recording as 16-bit mono at 22.05 kHz (espeak-ng's own file), 44.1 kHz stereo float, 8-bit, 24-bit
 * extensible and Ogg Opus decodes to nearly the same 16 kHz PCM. */
static void test_formats(void)
{
    const char *path = speak("en-us", 175, "skip the tests");
    clip_t mono, st;
    int16_t *ref, *pcm;
    size_t nref, n, len;
    uint8_t *w;
    if (!ok(path != NULL) || !ok(read_espeak_wav(path, &mono) == 0))
        return;
    ok(mono.rate == 22050);
    ref = decode_file(path, "audio/x-wav", &nref);
    okf(ref != NULL && nref == mono.frames * 16000 / 22050, "%zu samples from %zu", nref, mono.frames);

    /* stereo 44.1 kHz float: twice the samples (linear interpolation), the same in both channels */
    st.rate = 44100, st.channels = 2, st.frames = mono.frames * 2, st.s = malloc(st.frames * 2 * sizeof(int16_t));
    for (size_t i = 0; i < st.frames; ++i) {
        int a = mono.s[i / 2], b = i / 2 + 1 < mono.frames ? mono.s[i / 2 + 1] : a;
        st.s[2 * i] = st.s[2 * i + 1] = (int16_t)(i % 2 ? (a + b) / 2 : a);
    }
    struct {
        const char *what;
        const clip_t *c;
        unsigned format, bits;
        int ext;
        double tolerance; /* rms difference from the reference, in full scale */
    } v[] = {
        {"44.1 kHz stereo float", &st, 3, 32, 0, 0.01},
        {"44.1 kHz stereo float, extensible", &st, 3, 32, 1, 0.01},
        {"22.05 kHz 8-bit", &mono, 1, 8, 0, 0.01},
        {"22.05 kHz 24-bit, extensible", &mono, 1, 24, 1, 0.0001},
        {"22.05 kHz 32-bit integer", &mono, 1, 32, 0, 0.0001},
    };
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); ++k) {
        double sum = 0, ref2 = 0;
        w = make_wav(v[k].c, v[k].format, v[k].bits, v[k].ext, &len);
        pcm = NULL;
        okf(host_voice_decode(w, len, NULL, &pcm, &n) == 0, "%s: %s", v[k].what, cr_error_last()->message);
        okf(n + 2 >= nref && n <= nref + 2, "%s: %zu samples, %zu in the reference", v[k].what, n, nref);
        for (size_t i = 0; pcm != NULL && i < n && i < nref; ++i) {
            double d = (pcm[i] - ref[i]) / 32768.0;
            sum += d * d, ref2 += (ref[i] / 32768.0) * (ref[i] / 32768.0);
        }
        okf(pcm != NULL && sqrt(sum / (double)n) < v[k].tolerance, "%s: rms difference %.5f (signal %.4f)", v[k].what,
            sqrt(sum / (double)n), sqrt(ref2 / (double)n));
        free(pcm), free(w);
    }
    /* Ogg Opus: lossy, so only close in level and length */
    w = make_opus(ref, nref, &len);
    if (ok(w != NULL)) {
        double e1 = 0, e2 = 0;
        pcm = NULL;
        okf(host_voice_decode(w, len, "audio/ogg; codecs=opus", &pcm, &n) == 0, "%s", cr_error_last()->message);
        okf(n + 2 >= nref && n <= nref + 2, "Ogg Opus: %zu samples, %zu in the reference", n, nref);
        for (size_t i = 0; pcm != NULL && i < n && i < nref; ++i)
            e1 += (double)ref[i] * ref[i], e2 += (double)pcm[i] * pcm[i];
        okf(e2 > e1 * 0.7 && e2 < e1 * 1.3, "Ogg Opus: energy %.3g against %.3g", e2, e1);
        free(pcm);
        /* the same bytes by sniffing, and as audio/opus */
        ok(host_voice_decode(w, len, NULL, &pcm, &n) == 0), free(pcm);
        ok(host_voice_decode(w, len, "audio/opus", &pcm, &n) == 0), free(pcm);
        /* cut in the middle of a page */
        ok(decode_error(w, len - 7, "audio/ogg", CR_EBODY, "truncated Ogg Opus"));
        ok(decode_error(w, len, "audio/ogg; codecs=vorbis", CR_EBODY, "unsupported audio type"));
        ok(decode_error(w, len, "audio/wav", CR_EBODY, "not a WAV file"));
        w[40] ^= 0x55; /* inside the OpusHead page: its CRC no longer matches */
        ok(decode_error(w, len, "audio/ogg", CR_EBODY, "Ogg Opus"));
        free(w);
    }
    free(ref), free(mono.s), free(st.s);
}

static void test_bad_input(void)
{
    clip_t c = tone(16000, 1, 440, 0.3, 0.5);
    size_t len;
    uint8_t *w = make_wav(&c, 1, 16, 0, &len), *bad = malloc(len + 64);
    int16_t *pcm;
    size_t n;

    ok(decode_error(w, 0, NULL, CR_EBODY, "empty"));
    ok(decode_error("hello, world", 12, NULL, CR_EBODY, "unknown audio format"));
    ok(decode_error(w, len, "audio/mpeg", CR_EBODY, "unsupported audio type \"audio/mpeg\""));
    ok(decode_error(w, 20, NULL, CR_EBODY, "truncated WAV"));
    ok(decode_error(w, len - 100, "audio/wav", CR_EBODY, "truncated WAV: the data chunk declares"));
    ok(decode_error(w, 60, "audio/wave", CR_EBODY, "truncated WAV"));
    memcpy(bad, w, len), put16(bad + 12 + 14 + 8 + 2, 3); /* three channels */
    ok(decode_error(bad, len, NULL, CR_EBODY, "3 channels"));
    memcpy(bad, w, len), put32(bad + 12 + 14 + 8 + 4, 96000);
    ok(decode_error(bad, len, NULL, CR_EBODY, "96000 Hz"));
    memcpy(bad, w, len), put16(bad + 12 + 14 + 8, 2); /* ADPCM */
    ok(decode_error(bad, len, NULL, CR_EBODY, "unsupported WAV encoding 2"));
    memcpy(bad, w, len), put16(bad + 12 + 14 + 8 + 14, 12);
    ok(decode_error(bad, len, NULL, CR_EBODY, "12 bits"));
    memcpy(bad, w, len), memcpy(bad + 12 + 14, "data", 4); /* data before fmt */
    ok(decode_error(bad, len, NULL, CR_EBODY, "before the \"fmt \" chunk"));
    memcpy(bad, w, len), put32(bad + 12 + 14 + 8 + 16 + 4, 0); /* an empty data chunk */
    ok(decode_error(bad, len, NULL, CR_EBODY, "no samples"));
    free(c.s), free(w), free(bad);

    /* 61 s: too long, even as small 8 kHz 8-bit; 60 s is fine */
    c = tone(8000, 1, 300, 0.3, 61.0);
    w = make_wav(&c, 1, 8, 0, &len);
    ok(decode_error(w, len, NULL, CR_ETOOLARGE, "over the limit of 60 s"));
    free(w), free(c.s);
    c = tone(8000, 1, 300, 0.3, 60.0);
    w = make_wav(&c, 1, 8, 0, &len);
    ok(host_voice_decode(w, len, NULL, &pcm, &n) == 0 && n == 60 * HOST_VOICE_RATE);
    free(pcm), free(w), free(c.s);
    ok(decode_error("RIFF", HOST_VOICE_INPUT_MAX + 1, NULL, CR_ETOOLARGE, "over the limit"));
}

/* ---- recognition ------------------------------------------------------------------------------------------------- */

static const char *const approval[] = {"approve", "reject", "yes", "no", "allow", "deny"};
static const char *const question[] = {
    "staging", "production", "skip the tests", "option one", "option two", "option three", "yes", "no"};
static const struct {
    const char *name;
    int wpm;
} voices[] = {{"en-us", 175}, {"en-us+f3", 140}};

static int heard_total, heard_right, free_total, free_rejected, max_silent_accepted, min_silent_free = 1 << 30;
static double min_accepted = INFINITY, max_free = -INFINITY, last_threshold;
static int last_silent_max;

/* Speaks text and recognises it against phrases; returns which (or -2 when it could not run). */
static int hear(const char *vname, int wpm, const char *text, const char *const *phrases, size_t n, char *heard,
                size_t heardcap)
{
    const char *path = speak(vname, wpm, text);
    int16_t *pcm;
    size_t np;
    int which = -2;
    if (path == NULL || (pcm = decode_file(path, NULL, &np)) == NULL)
        return -2;
    if (host_voice_command(voice, pcm, np, phrases, n, &which, heard, heardcap) != 0)
        which = -2;
    free(pcm);
    return which;
}

static void say_each(const char *const *phrases, size_t n)
{
    for (size_t v = 0; v < sizeof(voices) / sizeof(voices[0]); ++v) {
        for (size_t i = 0; i < n; ++i) {
            char heard[128];
            int which = hear(voices[v].name, voices[v].wpm, phrases[i], phrases, n, heard, sizeof(heard));
            const host_voice_stats_t *st = host_voice_last_stats(voice);
            ++heard_total;
            heard_right += which == (int)i;
            if (which == (int)i && st->score < min_accepted)
                min_accepted = st->score;
            if (which == (int)i && st->silent_speech > max_silent_accepted)
                max_silent_accepted = st->silent_speech;
            okf(which == (int)i, "%s at %d wpm said \"%s\": heard %d (\"%s\"), margin %.1f nats, %d frames outside",
                voices[v].name, voices[v].wpm, phrases[i], which, heard, st->score, st->silent_speech);
            okf(which != (int)i || strcmp(heard, phrases[i]) == 0, "heard \"%s\"", heard);
            note("%-8s %3d wpm  %-16s -> %-16s margin %6.1f nats, %2d frames of speech outside the phrase",
                 voices[v].name, voices[v].wpm, phrases[i], which >= 0 ? phrases[which] : "(rejected)", st->score,
                 st->silent_speech);
        }
    }
}

static void test_approval(void)
{
    say_each(approval, sizeof(approval) / sizeof(approval[0]));
}

static void test_question(void)
{
    say_each(question, sizeof(question) / sizeof(question[0]));
}

static void test_free_speech(void)
{
    static const char *const speech[] = {"use the staging database", "please run the migrations first",
                                         "what time is it", "no, don't approve that yet", "approve it after lunch"};
    for (size_t v = 0; v < sizeof(voices) / sizeof(voices[0]); ++v) {
        for (size_t i = 0; i < sizeof(speech) / sizeof(speech[0]); ++i) {
            for (int set = 0; set < 2; ++set) {
                char heard[128] = "?";
                const char *const *phrases = set ? question : approval;
                size_t n = set ? sizeof(question) / sizeof(question[0]) : sizeof(approval) / sizeof(approval[0]);
                int which = hear(voices[v].name, voices[v].wpm, speech[i], phrases, n, heard, sizeof(heard));
                const host_voice_stats_t *st = host_voice_last_stats(voice);
                ++free_total;
                free_rejected += which == -1;
                if (st->silent_speech < min_silent_free)
                    min_silent_free = st->silent_speech;
                if (!isnan(st->score) && st->silent_speech <= st->silent_max && st->score > max_free)
                    max_free = st->score;
                okf(which == -1, "%s said \"%s\" to the %s: which %d, forced \"%s\", margin %.1f, %d frames outside",
                    voices[v].name, speech[i], set ? "question" : "approval", which,
                    st->grammar_hit >= 0 ? phrases[st->grammar_hit] : "", st->score, st->silent_speech);
                note("%-8s %-32s (%s) -> rejected: closest phrase \"%s\", margin %6.1f nats, %2d frames outside; "
                     "heard \"%s\"",
                     voices[v].name, speech[i], set ? "question" : "approval",
                     st->grammar_hit >= 0 ? phrases[st->grammar_hit] : "", st->score, st->silent_speech, heard);
            }
        }
    }
}

static void test_no_speech(void)
{
    size_t n = HOST_VOICE_RATE;
    int16_t *pcm = calloc(n, sizeof(*pcm));
    uint32_t seed = 12345;
    int which = 7;
    char heard[64] = "x";

    /* silence */
    ok(host_voice_command(voice, pcm, n, approval, 6, &which, heard, sizeof(heard)) == 0 && which == -1);
    ok(heard[0] == '\0');
    /* a 440 Hz tone */
    for (size_t i = 0; i < n; ++i)
        pcm[i] = (int16_t)(8000 * sin(2 * M_PI * 440 * (double)i / HOST_VOICE_RATE));
    which = 7;
    ok(host_voice_command(voice, pcm, n, approval, 6, &which, heard, sizeof(heard)) == 0 && which == -1);
    /* white noise */
    for (size_t i = 0; i < n; ++i) {
        seed = seed * 1103515245u + 12345u;
        pcm[i] = (int16_t)((int)(seed >> 16 & 0x7fff) - 16384) / 4;
    }
    which = 7;
    ok(host_voice_command(voice, pcm, n, question, 8, &which, heard, sizeof(heard)) == 0 && which == -1);
    /* a beep with silence around it: not steady, so it is decoded, and still no phrase */
    memset(pcm, 0, n * sizeof(*pcm));
    for (size_t i = n / 4; i < n / 2; ++i)
        pcm[i] = (int16_t)(8000 * sin(2 * M_PI * 1000 * (double)i / HOST_VOICE_RATE));
    which = 7;
    ok(host_voice_command(voice, pcm, n, approval, 6, &which, heard, sizeof(heard)) == 0 && which == -1);
    note("beep: speech %d, forced \"%s\", margin %.1f, %d frames outside", host_voice_last_stats(voice)->speech,
         host_voice_last_stats(voice)->grammar_hit >= 0 ? approval[host_voice_last_stats(voice)->grammar_hit] : "",
         host_voice_last_stats(voice)->score, host_voice_last_stats(voice)->silent_speech);
    free(pcm);
}

/* What the other formats decode to is heard as the same word; phrases are taken lowercased, without punctuation,
 * duplicates and unknown words; errors are clear. */
static void test_formats_heard(void)
{
    const char *path = speak("en-us", 175, "production");
    static const char *const options[] = {"Staging", "Production.", "skip the tests!", "production", "frobnicate zork"};
    clip_t mono, st;
    size_t len, n;
    uint8_t *w;
    int16_t *pcm;
    int which;
    char heard[64];
    if (!ok(path != NULL) || !ok(read_espeak_wav(path, &mono) == 0))
        return;
    st.rate = 44100, st.channels = 2, st.frames = mono.frames * 2, st.s = malloc(st.frames * 4);
    for (size_t i = 0; i < st.frames; ++i)
        st.s[2 * i] = st.s[2 * i + 1] = mono.s[i / 2];
    struct {
        const char *what;
        const clip_t *c;
        unsigned format, bits;
    } v[] = {{"44.1 kHz stereo float", &st, 3, 32}, {"8-bit", &mono, 1, 8}};
    for (size_t k = 0; k < 2; ++k) {
        w = make_wav(v[k].c, v[k].format, v[k].bits, 0, &len);
        ok(host_voice_decode(w, len, "audio/wav", &pcm, &n) == 0);
        which = -2;
        ok(host_voice_command(voice, pcm, n, options, 5, &which, heard, sizeof(heard)) == 0);
        okf(which == 1 && strcmp(heard, "production") == 0, "%s: heard %d \"%s\"", v[k].what, which, heard);
        free(pcm), free(w);
    }
    pcm = decode_file(path, NULL, &n);
    w = make_opus(pcm, n, &len);
    free(pcm);
    ok(w != NULL && host_voice_decode(w, len, "audio/ogg", &pcm, &n) == 0);
    which = -2;
    ok(host_voice_command(voice, pcm, n, options, 5, &which, heard, sizeof(heard)) == 0);
    okf(which == 1, "Ogg Opus: heard %d \"%s\" (margin %.1f)", which, heard, host_voice_last_stats(voice)->score);
    free(w);

    /* no phrase usable: an error, not a guess */
    {
        static const char *const junk[] = {"frobnicate zork", "", "  ,; ", "xyzzy plugh"};
        which = 5;
        ok(host_voice_command(voice, pcm, n, junk, 4, &which, heard, sizeof(heard)) == -1 && which == -1);
        okf(cr_error_last()->code == CR_EBODY && strstr(cr_error_last()->message, "none of the 4 phrases") != NULL,
            "%s", cr_error_last()->message);
        ok(host_voice_command(voice, pcm, n, junk, 0, &which, heard, sizeof(heard)) == -1);
        ok(host_voice_command(voice, pcm, n, junk, HOST_VOICE_PHRASES_MAX + 1, &which, heard, sizeof(heard)) == -1);
        okf(strstr(cr_error_last()->message, "over the limit") != NULL, "%s", cr_error_last()->message);
    }
    free(pcm);
    /* over a minute of PCM */
    pcm = calloc((size_t)61 * HOST_VOICE_RATE, sizeof(*pcm));
    ok(host_voice_command(voice, pcm, (size_t)61 * HOST_VOICE_RATE, approval, 6, &which, heard, sizeof(heard)) != 0);
    ok(cr_error_last()->code == CR_ETOOLARGE);
    free(pcm);
    free(mono.s), free(st.s);
}

int main(void)
{
    int64_t t0 = cr_test_now_ms(), t1, t2;
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "corral-voice", 200) != 0)
        return 1;
    cr_test_slot_add(tmp, 0);

    subtest("resampling", test_resampling);
    subtest("bad input", test_bad_input);
    if (!okf(cr_test_find_program(espeak, sizeof(espeak), "espeak-ng") == 0,
             "espeak-ng is needed (./deploy/install-deps.sh installs it)"))
        return done_testing();
    subtest("formats", test_formats);

    ok(host_voice_new("/nonexistent/model") == NULL && cr_error_last()->code == CR_ENOTFOUND &&
       strstr(cr_error_last()->message, "/nonexistent/model") != NULL);
    t1 = cr_test_now_ms();
    voice = host_voice_new(NULL);
    t2 = cr_test_now_ms();
    if (!okf(voice != NULL, "host_voice_new: %s", cr_error_last()->message))
        return done_testing();
    note("model loaded in %lld ms", (long long)(t2 - t1));
    subtest("formats heard", test_formats_heard);
    subtest("approval", test_approval);
    subtest("question", test_question);
    subtest("free speech", test_free_speech);
    subtest("no speech", test_no_speech);
    last_threshold = host_voice_last_stats(voice)->threshold;
    last_silent_max = host_voice_last_stats(voice)->silent_max;
    host_voice_free(voice);

    note("accuracy: %d/%d commands recognised, %d/%d free-speech recordings rejected", heard_right, heard_total,
         free_rejected, free_total);
    note("margins: commands scored at least %.1f nats over their best competitor and left at most %d loud frames "
         "outside the phrase; free speech: at most %.1f nats when it got that far, at least %d frames outside "
         "(rejected under %.1f nats or over %d frames)",
         min_accepted, max_silent_accepted, max_free, min_silent_free, last_threshold, last_silent_max);
    note("took %lld ms", (long long)(cr_test_now_ms() - t0));
    return done_testing();
}
