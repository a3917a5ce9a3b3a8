/* voice.c — corrald's offline voice commands: WAV / Ogg Opus to 16 kHz PCM, and PocketSphinx grammar recognition
 * that rejects what is not one of the phrases.
 *
 * Decoding. RIFF/WAVE (integer PCM of 8/16/24/32 bits, float of 32, also WAVE_FORMAT_EXTENSIBLE; 1 or 2 channels;
 * 8 to 48 kHz) is parsed here; Ogg Opus goes through libopusfile after a walk over the Ogg pages, so that a cut-off
 * upload is an error rather than a shorter recording. Channels are averaged and the rate changed with a
 * Blackman-windowed sinc (12 zero crossings, cutoff at 0.92 of the lower Nyquist frequency). Measured: flat to 6 kHz,
 * -2.7 dB at 7 kHz, and a 9 kHz tone at 44.1 or 48 kHz leaves -69.6 dB at its 7 kHz alias.
 *
 * Rejection. A grammar search always answers with one of its phrases, so each recording is decoded twice, with every
 * senone scored in every frame (-compallsen) so that the two path scores compare:
 *   "cmd": exactly one of the phrases;
 *   "alt": what else it could be: a run of the 1000 commonest words of PocketSphinx's US English language model (the
 *          phrases' own words and their homophones left out), a phrase with such words before or after it, the start
 *          or the end of a phrase of several words ("option" of "option two"), maybe with such words.
 * The phrase "cmd" found is accepted when (a) its path scores at least VOICE_MARGIN_MIN (4 nats) above the best "alt"
 * path and (b) that path gives no run of more than VOICE_SILENT_SPEECH_MAX (12) loud 10 ms frames to silence or noise
 * (the phrase must cover what was said: "approve it after lunch" aligned on "approve" leaves 35-42 loud frames over).
 * Before any decoding an energy detector turns away silence and steady sounds (a tone, hum, noise). Tried first and
 * dropped: a per-frame likelihood ratio against a free phone loop (with CI phones espeak's own commands scored down
 * to -44 nats a frame while "allow" forced onto "no" scored -19; with triphones it took 2 s per second of audio), and
 * one search with the other words as a weighted alternative (the same idea, but no margin to measure or tune).
 *
 * Measured with espeak-ng (voices en-us, en-us+f3, en-us+m3, en-gb at 175 and 140 words a minute, 22.05 kHz so through
 * the resampler; then again with pink noise at 20 and 10 dB SNR), against the approval phrases and those of a question
 * with three options (staging, production, skip the tests, option one to three, yes, no):
 *   - commands: 112/112 right, the lowest margin 11.0 nats, at most 7 loud frames outside the phrase; in noise 55/56
 *     (one rejected), the lowest margin 7.7;
 *   - sentences of three words or more ("use the staging database", "please run the migrations first", "what time is
 *     it", "no, don't approve that yet", ...): 348/348 rejected, most for loud frames outside the phrase (median 39,
 *     up to 100), the rest at margins of -56 nats or lower;
 *   - single words that are not a phrase: 443/468 rejected. Through come "skip" as "deny", "allow" as "no" (to the
 *     question, which has no "allow"), "option" and "option ten" as "option two", "not production" as "production",
 *     at margins of 5 to 115 nats: no threshold separates those from the commands. "yeah", "nope", "approved" pass
 *     as "yes", "no", "approve" about a third of the time;
 *   - a question with nine options (option one to nine): 65/84 right, 5 wrong (PocketSphinx hears espeak's "six" as
 *     "two", "five" as "nine"), 14 rejected;
 *   - silence, a 440 Hz tone, white noise, a lone beep: rejected.
 * A recording takes 0.1 to 0.3 s (worst seen 1.4 s, in noise) once the model is loaded (0.2 to 1 s).
 */
#include "voice.h"
#include "corral/error.h"
#include "corral/log.h"
#include <ctype.h>
#include <math.h>
#include <opusfile.h>
#include <pocketsphinx.h>
#include <sphinxbase/cmn.h>
#include <sphinxbase/err.h>
#include <sphinxbase/feat.h>
#include <sphinxbase/fsg_model.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- audio decoding ---------------------------------------------------------------------------------------------- */

#define VOICE_RATE_MIN 8000
#define VOICE_RATE_MAX 48000

static int voice__bad(const char *fmt, const char *detail)
{
    return cr_error_set(CR_EBODY, "audio", fmt, detail);
}

static uint32_t voice__le16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t voice__le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Windowed-sinc resampling of n mono samples at rate `from` to HOST_VOICE_RATE: a Blackman-windowed sinc low-pass
 * with its cutoff at 0.92 of the lower Nyquist frequency (anti-aliasing when downsampling, interpolation when
 * upsampling), 12 zero crossings each side, looked up in a table and normalised to unit DC gain per output sample.
 * Returns a malloc'd array of *nout samples, or NULL (out of memory). */
#define VOICE_RS_ZEROS 12
#define VOICE_RS_STEPS 128 /* table entries per zero crossing */
static float *voice__resample(const float *in, size_t n, unsigned from, size_t *nout)
{
    const unsigned to = HOST_VOICE_RATE;
    double cut = 0.92 * (from > to ? (double)to / from : 1.0); /* cutoff, as a fraction of the input Nyquist */
    double half = VOICE_RS_ZEROS / cut;                        /* filter half-width in input samples */
    size_t ntab = (size_t)VOICE_RS_ZEROS * VOICE_RS_STEPS + 2, m = (size_t)((uint64_t)n * to / from);
    float *tab, *out;

    if (from == to) {
        if ((out = malloc(n * sizeof(*out))) != NULL)
            memcpy(out, in, n * sizeof(*out));
        *nout = n;
        return out;
    }
    if (m == 0)
        m = 1;
    tab = malloc(ntab * sizeof(*tab));
    out = malloc(m * sizeof(*out));
    if (tab == NULL || out == NULL) {
        free(tab);
        free(out);
        return NULL;
    }
    /* tab[k]: the filter at k / VOICE_RS_STEPS zero crossings from its centre, i.e. at u = k / (VOICE_RS_STEPS * cut)
     * samples */
    for (size_t k = 0; k < ntab; ++k) {
        double x = (double)k / VOICE_RS_STEPS; /* in zero crossings */
        double s = k == 0 ? 1.0 : sin(M_PI * x) / (M_PI * x);
        double w = x >= VOICE_RS_ZEROS
                       ? 0.0
                       : 0.42 + 0.5 * cos(M_PI * x / VOICE_RS_ZEROS) + 0.08 * cos(2 * M_PI * x / VOICE_RS_ZEROS);
        tab[k] = (float)(s * w);
    }
    for (size_t i = 0; i < m; ++i) {
        double t = (double)i * from / to; /* where output sample i sits in input samples */
        long lo = (long)ceil(t - half), hi = (long)floor(t + half);
        double acc = 0, wsum = 0;
        if (lo < 0)
            lo = 0;
        if (hi > (long)n - 1)
            hi = (long)n - 1;
        for (long j = lo; j <= hi; ++j) {
            double pos = fabs(t - (double)j) * cut * VOICE_RS_STEPS;
            size_t k = (size_t)pos;
            double w;
            if (k + 1 >= ntab)
                continue;
            w = tab[k] + (tab[k + 1] - tab[k]) * (pos - (double)k);
            acc += w * in[j];
            wsum += w;
        }
        out[i] = wsum > 1e-6 ? (float)(acc / wsum) : 0.0f;
    }
    free(tab);
    *nout = m;
    return out;
}

/* Resamples mono float audio at `rate` into *pcm / *n, taking ownership of nothing. */
static int voice__finish(const float *mono, size_t frames, unsigned rate, int16_t **pcm, size_t *n)
{
    size_t m;
    float *rs;
    int16_t *out;
    if (frames == 0)
        return voice__bad("the %s holds no samples", "recording");
    if ((rs = voice__resample(mono, frames, rate, &m)) == NULL)
        return cr_error_set(CR_ENOMEM, "audio", "out of memory resampling %zu samples", frames);
    if ((out = malloc(m * sizeof(*out))) == NULL) {
        free(rs);
        return cr_error_set(CR_ENOMEM, "audio", "out of memory for %zu samples", m);
    }
    for (size_t i = 0; i < m; ++i) {
        float v = rs[i] * 32768.0f;
        out[i] = v >= 32767.0f ? 32767 : v <= -32768.0f ? -32768 : (int16_t)lrintf(v);
    }
    free(rs);
    *pcm = out;
    *n = m;
    return 0;
}

/* KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT after their first two bytes */
static const uint8_t voice__guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                             0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71};

static int voice__wav(const uint8_t *p, size_t len, int16_t **pcm, size_t *n)
{
    const uint8_t *fmt = NULL, *data = NULL;
    size_t datalen = 0, off = 12;
    unsigned format = 0, channels = 0, rate = 0, bits = 0, align = 0;
    uint64_t frames;
    float *mono;
    int rc;

    if (len < 12 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WAVE", 4) != 0)
        return voice__bad("not a WAV file: %s", len < 12 ? "too short for a RIFF header" : "no RIFF/WAVE header");
    while (data == NULL) {
        uint32_t size;
        if (len - off < 8)
            return voice__bad("truncated WAV: %s", fmt == NULL ? "no \"fmt \" chunk" : "no \"data\" chunk");
        size = voice__le32(p + off + 4);
        if (memcmp(p + off, "data", 4) == 0) {
            if (fmt == NULL)
                return voice__bad("bad WAV: %s", "the \"data\" chunk comes before the \"fmt \" chunk");
            data = p + off + 8;
            /* 0xFFFFFFFF: a streaming writer that never came back to fill in the size: the rest is data */
            if (size == 0xffffffffu)
                size = (uint32_t)(len - off - 8);
            if (size > len - off - 8)
                return cr_error_set(CR_EBODY, "audio", "truncated WAV: the data chunk declares %u bytes, %zu are there",
                                    (unsigned)size, len - off - 8);
            datalen = size;
            break;
        }
        if (size > len - off - 8)
            return cr_error_set(CR_EBODY, "audio", "truncated WAV: the \"%.4s\" chunk declares %u bytes, %zu are there",
                                isprint(p[off]) && isprint(p[off + 1]) && isprint(p[off + 2]) && isprint(p[off + 3])
                                    ? (const char *)p + off
                                    : "????",
                                (unsigned)size, len - off - 8);
        if (memcmp(p + off, "fmt ", 4) == 0) {
            if (size < 16)
                return voice__bad("bad WAV: %s", "the \"fmt \" chunk is shorter than 16 bytes");
            fmt = p + off + 8;
            format = voice__le16(fmt);
            if (format == 0xfffe) {
                if (size < 40 || voice__le16(fmt + 16) < 22)
                    return voice__bad("bad WAV: %s", "WAVE_FORMAT_EXTENSIBLE without its 22 extension bytes");
                if (memcmp(fmt + 26, voice__guid_tail, sizeof(voice__guid_tail)) != 0)
                    return voice__bad("unsupported WAV encoding: %s",
                                      "an extensible sub-format other than PCM or float");
                format = voice__le16(fmt + 24);
            }
            channels = voice__le16(fmt + 2);
            rate = voice__le32(fmt + 4);
            align = voice__le16(fmt + 12);
            bits = voice__le16(fmt + 14);
        }
        off += 8 + (size_t)size + (size & 1);
        if (off > len)
            off = len; /* an odd last chunk without its pad byte */
    }
    if (format != 1 && format != 3)
        return cr_error_set(CR_EBODY, "audio", "unsupported WAV encoding %u: only integer PCM (1) and float (3)",
                            format);
    if (channels != 1 && channels != 2)
        return cr_error_set(CR_EBODY, "audio", "unsupported WAV with %u channels: only mono or stereo", channels);
    if (rate < VOICE_RATE_MIN || rate > VOICE_RATE_MAX)
        return cr_error_set(CR_EBODY, "audio", "unsupported WAV sample rate %u Hz: %d to %d Hz", rate, VOICE_RATE_MIN,
                            VOICE_RATE_MAX);
    if (format == 1 ? bits != 8 && bits != 16 && bits != 24 && bits != 32 : bits != 32)
        return cr_error_set(CR_EBODY, "audio", "unsupported WAV %s of %u bits", format == 1 ? "integer PCM" : "float",
                            bits);
    if (align != channels * bits / 8)
        return cr_error_set(CR_EBODY, "audio", "bad WAV: block align %u for %u channels of %u bits", align, channels,
                            bits);
    frames = datalen / align;
    if (frames > (uint64_t)HOST_VOICE_SECONDS_MAX * rate)
        return cr_error_set(CR_ETOOLARGE, "audio", "the recording is %.1f s long, over the limit of %d s",
                            (double)frames / rate, HOST_VOICE_SECONDS_MAX);
    if (frames == 0)
        return voice__bad("the %s holds no samples", "WAV");
    if ((mono = malloc(frames * sizeof(*mono))) == NULL)
        return cr_error_set(CR_ENOMEM, "audio", "out of memory for %zu samples", (size_t)frames);
    for (size_t i = 0; i < frames; ++i) {
        float sum = 0;
        for (unsigned c = 0; c < channels; ++c) {
            const uint8_t *s = data + i * align + c * (bits / 8);
            float v;
            if (format == 3) {
                uint32_t u = voice__le32(s);
                memcpy(&v, &u, sizeof(v));
                if (!isfinite(v))
                    v = 0;
                v = v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
            } else if (bits == 8) {
                v = ((int)s[0] - 128) / 128.0f;
            } else if (bits == 16) {
                v = (int16_t)voice__le16(s) / 32768.0f;
            } else if (bits == 24) {
                v = (float)((int32_t)((uint32_t)s[0] << 8 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 24) /
                            2147483648.0);
            } else {
                v = (float)((int32_t)voice__le32(s) / 2147483648.0);
            }
            sum += v;
        }
        mono[i] = sum / (float)channels;
    }
    rc = voice__finish(mono, (size_t)frames, rate, pcm, n);
    free(mono);
    return rc;
}

static const char *voice__op_error(int err)
{
    switch (err) {
    case OP_HOLE:
        return "a gap or a corrupt page in the stream";
    case OP_EREAD:
        return "a read error";
    case OP_ENOTFORMAT:
        return "not an Ogg Opus stream";
    case OP_EBADHEADER:
        return "a bad Opus header";
    case OP_EVERSION:
        return "an unsupported Opus version";
    case OP_ENOTAUDIO:
        return "an Ogg stream that is not Opus";
    case OP_EBADPACKET:
        return "a bad Opus packet";
    case OP_EBADLINK:
        return "a bad link in a chained stream";
    case OP_EBADTIMESTAMP:
        return "a bad timestamp";
    case OP_EIMPL:
        return "an Opus feature libopusfile does not implement";
    default:
        return "a damaged stream";
    }
}

/* Walks the Ogg pages: every page must be whole and the last one must end where the data ends, so a cut-off upload
 * is reported instead of decoding its first part (libopusfile, built for streaming, would stop quietly). */
static int voice__ogg_pages(const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t nseg, body = 0;
        if (len - off < 27)
            return voice__bad("truncated Ogg Opus: %s", "the last page header is cut off");
        if (memcmp(p + off, "OggS", 4) != 0)
            return voice__bad("bad Ogg Opus: %s", "bytes between pages that are not an Ogg page");
        nseg = p[off + 26];
        if (len - off - 27 < nseg)
            return voice__bad("truncated Ogg Opus: %s", "the last page's segment table is cut off");
        for (size_t i = 0; i < nseg; ++i)
            body += p[off + 27 + i];
        if (len - off - 27 - nseg < body)
            return voice__bad("truncated Ogg Opus: %s", "the last page is cut off");
        off += 27 + nseg + body;
    }
    return 0;
}

#define OPUS_RATE 48000
static int voice__opus(const uint8_t *p, size_t len, int16_t **pcm, size_t *n)
{
    const size_t cap = (size_t)HOST_VOICE_SECONDS_MAX * OPUS_RATE;
    OggOpusFile *of;
    float *mono = NULL, buf[2 * 5760];
    size_t frames = 0, have = 0;
    int err = 0, rc = -1;

    if (len < 4 || memcmp(p, "OggS", 4) != 0)
        return voice__bad("not Ogg Opus: %s", "no \"OggS\" page at the start");
    if (voice__ogg_pages(p, len) != 0)
        return -1;
    if ((of = op_open_memory(p, len, &err)) == NULL)
        return voice__bad("bad Ogg Opus: %s", voice__op_error(err));
    for (;;) {
        int got = op_read_float_stereo(of, buf, (int)(sizeof(buf) / sizeof(buf[0])));
        if (got == 0)
            break;
        if (got < 0) {
            voice__bad("bad Ogg Opus: %s", voice__op_error(got));
            goto done;
        }
        if (frames + (size_t)got > cap) {
            cr_error_set(CR_ETOOLARGE, "audio", "the recording is over the limit of %d s", HOST_VOICE_SECONDS_MAX);
            goto done;
        }
        if (frames + (size_t)got > have) {
            size_t want = have == 0 ? OPUS_RATE : have * 2;
            float *grown;
            while (want < frames + (size_t)got)
                want *= 2;
            if (want > cap)
                want = cap;
            if ((grown = realloc(mono, want * sizeof(*mono))) == NULL) {
                cr_error_set(CR_ENOMEM, "audio", "out of memory for %zu samples", want);
                goto done;
            }
            mono = grown;
            have = want;
        }
        for (int i = 0; i < got; ++i)
            mono[frames + (size_t)i] = 0.5f * (buf[2 * i] + buf[2 * i + 1]);
        frames += (size_t)got;
    }
    rc = voice__finish(mono, frames, OPUS_RATE, pcm, n);
done:
    op_free(of);
    free(mono);
    return rc;
}

/* The format a MIME type names: 'w' WAV, 'o' Ogg Opus, 0 when mime is NULL, -1 for any other. */
static int voice__mime_kind(const char *mime)
{
    static const struct {
        const char *type;
        int kind;
    } types[] = {{"audio/wav", 'w'}, {"audio/x-wav", 'w'}, {"audio/wave", 'w'},     {"audio/vnd.wave", 'w'},
                 {"audio/ogg", 'o'}, {"audio/opus", 'o'},  {"application/ogg", 'o'}};
    size_t tlen;
    const char *params;
    if (mime == NULL)
        return 0;
    while (*mime == ' ' || *mime == '\t')
        ++mime;
    params = strchr(mime, ';');
    tlen = params != NULL ? (size_t)(params - mime) : strlen(mime);
    while (tlen > 0 && (mime[tlen - 1] == ' ' || mime[tlen - 1] == '\t'))
        --tlen;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
        if (strlen(types[i].type) != tlen || strncasecmp(mime, types[i].type, tlen) != 0)
            continue;
        /* audio/ogg may carry another codec: only "codecs=opus" (or none) is Opus */
        if (types[i].kind == 'o' && params != NULL) {
            const char *c = strstr(params, "codecs=");
            if (c == NULL)
                c = strstr(params, "CODECS=");
            if (c != NULL) {
                c += 7;
                if (*c == '"')
                    ++c;
                if (strncasecmp(c, "opus", 4) != 0)
                    return -1;
            }
        }
        return types[i].kind;
    }
    return -1;
}

int host_voice_decode(const void *data, size_t len, const char *mime, int16_t **pcm, size_t *n)
{
    const uint8_t *p = data;
    int kind = voice__mime_kind(mime), rc;

    *pcm = NULL;
    *n = 0;
    if (kind < 0)
        rc = cr_error_set(CR_EBODY, "audio",
                          "unsupported audio type \"%.60s\": WAV (audio/wav) or Ogg Opus (audio/ogg)", mime);
    else if (len > HOST_VOICE_INPUT_MAX)
        rc = cr_error_set(CR_ETOOLARGE, "audio", "the recording is %zu bytes, over the limit of %u", len,
                          HOST_VOICE_INPUT_MAX);
    else if (len == 0 || p == NULL)
        rc = voice__bad("empty %s", "recording");
    else if (kind == 'w' || (kind == 0 && len >= 4 && memcmp(p, "RIFF", 4) == 0))
        rc = voice__wav(p, len, pcm, n);
    else if (kind == 'o' || (kind == 0 && len >= 4 && memcmp(p, "OggS", 4) == 0))
        rc = voice__opus(p, len, pcm, n);
    else
        rc = voice__bad("unknown audio format: %s", "neither WAV (\"RIFF\") nor Ogg Opus (\"OggS\")");
    if (rc != 0) {
        *pcm = NULL;
        *n = 0;
        return cr_error_last()->code == CR_ETOOLARGE ? CR_ETOOLARGE : -1;
    }
    return 0;
}

/* ---- command recognition ----------------------------------------------------------------------------------------- */

#define VOICE_MODEL_DIR "/usr/share/pocketsphinx/model/en-us"
#define VOICE_FRAME 160    /* samples per 10 ms frame, PocketSphinx's frame rate */
#define VOICE_WORDS_MAX 16 /* words in one phrase, at most */
#define VOICE_PRON_MAX 8   /* pronunciations looked at per word ("no", "no(2)", ...) */

/* The tuning, measured on espeak-ng speech (see the top of this file). Probabilities are of the competing grammar;
 * PocketSphinx multiplies their logs by the language weight -lw (6.5). */
#define VOICE_P_GARBAGE 0.01       /* entering the loop of other words instead of a phrase */
#define VOICE_P_AROUND 0.01        /* other words before or after a phrase */
#define VOICE_P_WORD 0.0005        /* each other word */
#define VOICE_P_LOOP_END 0.5       /* leaving the loop */
#define VOICE_P_PART 0.01          /* the start or the end of a phrase of several words, with other words or alone */
#define VOICE_P_ALONE 1e-3         /* the phrase alone: a floor for the competitor's score */
#define VOICE_MARGIN_MIN 4.0       /* nats: the phrase must score at least this much over the best competitor */
#define VOICE_SILENT_SPEECH_MAX 12 /* frames: more loud audio in a row that the phrase path calls silence */

/* The competitors: the 1000 most probable words of en-us.lm.bin (PocketSphinx's US English language model), in that
 * order; a phrase's own words and their homophones are left out of each grammar. */
static const char voice__common_words[] =
    "the to i and a of you that in it is for but know was have they on like be not it's so with are one this he yeah "
    "just my we as what if do at or don't about i'm all think there would from two me people can your get out no "
    "that's said up more when an had right well hundred really has thousand will oh because how time them she been "
    "by some who their his were now then go good mean than going her see could much other you're five got three even "
    "too only want did him something very where here way which nine lot make say first years back any new our also "
    "over into ah i've they're year thing still four should work things those take us most didn't why these never "
    "twenty there's need after being can't okay little down kind point actually many day off come same six before "
    "last he's look sure eight money doing pretty around seven always guess life dollars long yes better probably "
    "every we're world does anything maybe school great find doesn't though made big feel through thirty cause game "
    "old put use different stuff ten home may might used am thought while best since man love own getting another "
    "fifty few bad give part percent live family i'll tell ever gonna again went someone help i'd keep everything "
    "try play hard done enough trying next end away its place far forty talk ninety both real says country kids "
    "times least person bit such million high exactly what's isn't told nothing friends believe let call having able "
    "show else watch ago job nice start once whole house government problem looking change children each without "
    "days found true saying between less week she's seen already wouldn't makes guy course care name second came "
    "sixty pay wasn't talking until making seems eighty thanks either idea seventy read yet definitely team working "
    "city mr wanted left remember huh fact night business months state number against called half public understand "
    "everyone whatever er almost run friend case took sometimes today must sorry god important wrong started heard "
    "haven't couple minutes hi set reason question system together car games women war hope states hey stop happened "
    "thank guys coming sort small won't fun hear york under let's quite during agree free wow buy close past food "
    "top anyone hours you've saw side news kinda myself cool mind thinking company deal whether comes happen "
    "interesting looks gets later taking young parents phone ask stay matter shit please we've united especially "
    "power health area american rather move open usually goes line fifteen sense using men wait story means couldn't "
    "however somebody fine leave become playing lost level water living full often t head funny yourself instead "
    "group college zero happy president easy ones others knew post month hit seem supposed age needs room experience "
    "v asked computer support turn outside issue 'em eat given movie likely hand aren't white possible face market "
    "everybody book wants weeks gone tried certain early police rest you'll future taken countries problems cost "
    "situation woman chance sounds information child twelve third anyway type mother girl fuck party players bring "
    "works check watching win worked basically black hour lives eleven middle worth hello husband added internet "
    "security based cut law son running control married soon body along paid season wife spend history fucking dog "
    "single learn behind example difficult front america themselves clear huge wanna shows obama order although per "
    "played price class death they've plan human jobs takes father local s south felt amount answer gave within "
    "music absolutely across schools we'll longer economy kill topic knows hold morning pick ok unless late pounds "
    "meet video office difference major town happens word hate companies needed known moment completely low large "
    "general mine enjoy killed national dead building involved wish totally died you'd walk air north education "
    "issues several political study certainly according places mom service fight community imagine hell billion "
    "crazy moved kid c heart short s. ready looked figure sit space cold ways lose sound students list baby gotta "
    "changed social drive street alone worse cannot reading light research turned perhaps reality they'll books hot "
    "current break spent amazing words sports energy lived simply boy process shot wonder california dad add "
    "obviously similar stand higher feeling personal iraq questions listen doctor university seeing risk strong "
    "average near decided relationship older die serious build daughter player online summer expect available "
    "awesome inside military media fire test fast save sex report hands private main oil financial n east minimum "
    "term u giving poor favorite who's expected finally program interest choice red continue movies send industry "
    "brother interested china common weird bought rate speak road attack itself sell door fall lol entire shouldn't "
    "due americans ahead allowed decision opinion west brought special economic anymore terms met nobody recently "
    "form forward worry de court starting view nearly telling position girls store attention consider football miss "
    "perfect site sent bill himself points waiting normal force easier trust sick damn film tax value series result "
    "worst fair act won vote action mm smoking stupid trade except born smoke anybody eighteen wage miles step "
    "return including changes evidence somewhere hurt members lots extra bank beautiful field share ground biggest "
    "moving asking picture total forget race edit safe fourteen watched plus ball card society uh became record "
    "mostly quality truth seriously super etc comment expensive create eyes paying simple global write d tough "
    "travel kept sign follow minute cat thirteen blood among fan lead meant data cases europe period increase "
    "trouble growing above sitting international calling putting offer weather british rules drink damage message "
    "size parts access personally technology glad seemed effect land families paper allow hospital english sixteen "
    "key quickly population willing opportunity happening art cancer date credit gotten sad depends reasons luck "
    "realize areas none project recent pass account beginning weight policy sleep role further provide sir gives "
    "weren't lower board compared particular numbers feet built focus cars piece drop round bush ";

typedef struct st_voice_word_t {
    char *word;
    char *prons; /* its pronunciations, each ended by '\n' */
} voice_word_t;

struct st_host_voice_t {
    ps_decoder_t *ps;
    voice_word_t *common;
    size_t ncommon;
    char *built;        /* the phrase list the two searches were built for ('\n'-separated), or NULL */
    char **phrase_text; /* the usable phrases of the last call, normalised */
    int *phrase_index;  /* their index in the caller's list */
    size_t nphrase;
    host_voice_stats_t last;
    mfcc_t *cmn_init; /* the live cepstral mean the model starts with (restored before each recording) */
    int32 cmn_len;
};

/* PocketSphinx logs through sphinxbase's err.h: warnings and errors go to our log at debug, the rest is dropped. */
static void voice__sphinx_log(void *user, err_lvl_t level, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    size_t len;
    (void)user;
    if (level < ERR_WARN || level == ERR_INFOCONT)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    cr_log(CR_LOG_DEBUG, "voice: pocketsphinx: %s", line);
}

/* The pronunciations of word in the dictionary, each followed by '\n' (malloc'd), or NULL when it has none. */
static char *voice__prons(ps_decoder_t *ps, const char *word)
{
    char *out = NULL;
    size_t len = 0;
    for (int alt = 1; alt <= VOICE_PRON_MAX; ++alt) {
        char name[HOST_VOICE_PHRASE_MAX + 8], *pron, *grown;
        size_t plen;
        if (alt == 1)
            snprintf(name, sizeof(name), "%s", word);
        else
            snprintf(name, sizeof(name), "%s(%d)", word, alt);
        if ((pron = ps_lookup_word(ps, name)) == NULL)
            break;
        plen = strlen(pron);
        if ((grown = realloc(out, len + plen + 2)) == NULL) {
            ckd_free(pron);
            free(out);
            return NULL;
        }
        out = grown;
        memcpy(out + len, pron, plen);
        out[len + plen] = '\n';
        out[len + plen + 1] = '\0';
        len += plen + 1;
        ckd_free(pron);
    }
    return out;
}

/* 1 when the '\n'-ended pronunciation lists a and b share one. */
static int voice__prons_meet(const char *a, const char *b)
{
    for (const char *p = a; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t plen = (size_t)(nl - p);
        for (const char *q = b; *q != '\0';) {
            const char *ql = strchr(q, '\n');
            if ((size_t)(ql - q) == plen && memcmp(p, q, plen) == 0)
                return 1;
            q = ql + 1;
        }
        p = nl + 1;
    }
    return 0;
}

host_voice_t *host_voice_new(const char *model_dir)
{
    char hmm[1024], dict[1024];
    const char *dir = model_dir != NULL ? model_dir : VOICE_MODEL_DIR;
    cmd_ln_t *config;
    host_voice_t *v;

    snprintf(hmm, sizeof(hmm), "%s/en-us", dir);
    snprintf(dict, sizeof(dict), "%s/cmudict-en-us.dict", dir);
    if (access(hmm, R_OK) != 0 || access(dict, R_OK) != 0) {
        cr_error_set(CR_ENOTFOUND, "voice",
                     "no PocketSphinx model in %s (en-us/ and cmudict-en-us.dict; Debian: "
                     "apt install pocketsphinx-en-us)",
                     dir);
        return NULL;
    }
    err_set_logfp(NULL); /* cmd_ln and ps_init print their whole configuration there */
    err_set_callback(voice__sphinx_log, NULL);
    /* -compallsen: every senone scored in every frame, so the scores of two searches over the same audio compare;
     * -bestpath no: the Viterbi path and its score; no VAD (-remove_silence): the whole recording is decoded;
     * -wbeam 1e-40 (default 7e-29): with the narrower beam the competing search often lost every path to its final
     * state; -maxhmmpf 10000 (default 30000) bounds the time that costs (measured: the same decisions). */
    config = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm, "-dict", dict, "-samprate", "16000", "-compallsen", "yes",
                         "-bestpath", "no", "-remove_silence", "no", "-wbeam", "1e-40", "-maxhmmpf", "10000", NULL);
    if (config == NULL) {
        cr_error_set(CR_ERR, "voice", "PocketSphinx refused its configuration");
        return NULL;
    }
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        cmd_ln_free_r(config);
        cr_error_set(CR_ENOMEM, "voice", "out of memory");
        return NULL;
    }
    v->ps = ps_init(config);
    cmd_ln_free_r(config); /* the decoder holds its own reference */
    if (v->ps == NULL) {
        free(v);
        cr_error_set(CR_ERR, "voice", "PocketSphinx could not load the model in %s", dir);
        return NULL;
    }
    {
        feat_t *fe = ps_get_feat(v->ps);
        if (fe != NULL && fe->cmn_struct != NULL && (v->cmn_init = malloc(fe->cmn_struct->veclen * sizeof(mfcc_t))) != NULL) {
            v->cmn_len = fe->cmn_struct->veclen;
            memcpy(v->cmn_init, fe->cmn_struct->cmn_mean, v->cmn_len * sizeof(mfcc_t));
        }
    }
    /* the competing words with their pronunciations, once */
    {
        size_t cap = 1024;
        const char *p = voice__common_words;
        if ((v->common = calloc(cap, sizeof(*v->common))) == NULL)
            goto oom;
        while (*p != '\0') {
            size_t wl = strcspn(p, " ");
            char word[64];
            if (wl > 0 && wl < sizeof(word) && v->ncommon < cap) {
                memcpy(word, p, wl);
                word[wl] = '\0';
                if ((v->common[v->ncommon].prons = voice__prons(v->ps, word)) != NULL) {
                    if ((v->common[v->ncommon].word = strdup(word)) == NULL) {
                        free(v->common[v->ncommon].prons);
                        goto oom;
                    }
                    ++v->ncommon;
                }
            }
            p += wl;
            while (*p == ' ')
                ++p;
        }
    }
    return v;
oom:
    host_voice_free(v);
    cr_error_set(CR_ENOMEM, "voice", "out of memory");
    return NULL;
}

static void voice__clear_phrases(host_voice_t *v)
{
    for (size_t i = 0; i < v->nphrase; ++i)
        free(v->phrase_text[i]);
    free(v->phrase_text);
    free(v->phrase_index);
    v->phrase_text = NULL;
    v->phrase_index = NULL;
    v->nphrase = 0;
}

void host_voice_free(host_voice_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->ncommon; ++i) {
        free(v->common[i].word);
        free(v->common[i].prons);
    }
    free(v->common);
    voice__clear_phrases(v);
    free(v->built);
    free(v->cmn_init);
    if (v->ps != NULL)
        ps_free(v->ps);
    free(v);
}

const host_voice_stats_t *host_voice_last_stats(const host_voice_t *v)
{
    return &v->last;
}

/* Normalises a phrase into out (lowercase words of letters, digits and apostrophes, single spaces). Returns the
 * number of words, or -1 when it has more than VOICE_WORDS_MAX or is too long. */
static int voice__normalise(const char *phrase, char *out, size_t outcap)
{
    size_t o = 0;
    int words = 0, inword = 0;
    for (const unsigned char *p = (const unsigned char *)phrase; *p != '\0'; ++p) {
        int c = *p;
        if (isalnum(c) || c == '\'' || c >= 0x80) {
            if (!inword && words > 0) {
                if (o + 1 >= outcap)
                    return -1;
                out[o++] = ' ';
            }
            if (!inword && ++words > VOICE_WORDS_MAX)
                return -1;
            inword = 1;
            if (o + 1 >= outcap)
                return -1;
            out[o++] = (char)tolower(c);
        } else {
            inword = 0;
        }
    }
    out[o] = '\0';
    return words;
}

/* Takes the usable phrases into v->phrase_text / v->phrase_index: normalised, every word in the dictionary, no
 * duplicates (the first index wins). Returns 0, or -1 (no phrase usable; out of memory). */
static int voice__phrases(host_voice_t *v, const char *const *phrases, size_t nphrases)
{
    voice__clear_phrases(v);
    if ((v->phrase_text = calloc(nphrases + 1, sizeof(*v->phrase_text))) == NULL ||
        (v->phrase_index = calloc(nphrases + 1, sizeof(*v->phrase_index))) == NULL)
        return cr_error_set(CR_ENOMEM, "phrases", "out of memory");
    for (size_t i = 0; i < nphrases; ++i) {
        char norm[HOST_VOICE_PHRASE_MAX + 1], words[HOST_VOICE_PHRASE_MAX + 1], *save = NULL;
        const char *missing = NULL;
        int dup = 0;
        if (phrases[i] == NULL || strlen(phrases[i]) > HOST_VOICE_PHRASE_MAX ||
            voice__normalise(phrases[i], norm, sizeof(norm)) <= 0) {
            cr_log(CR_LOG_DEBUG, "voice: phrase %zu is empty, too long or has too many words: skipped", i);
            continue;
        }
        for (size_t k = 0; k < v->nphrase; ++k)
            dup |= strcmp(v->phrase_text[k], norm) == 0;
        if (dup)
            continue;
        snprintf(words, sizeof(words), "%s", norm);
        for (char *w = strtok_r(words, " ", &save); w != NULL && missing == NULL; w = strtok_r(NULL, " ", &save)) {
            char *pron = ps_lookup_word(v->ps, w);
            if (pron == NULL)
                missing = w;
            ckd_free(pron);
        }
        if (missing != NULL) {
            cr_log(CR_LOG_DEBUG, "voice: phrase %zu has \"%s\", a word the dictionary lacks: skipped", i, missing);
            continue;
        }
        if ((v->phrase_text[v->nphrase] = strdup(norm)) == NULL)
            return cr_error_set(CR_ENOMEM, "phrases", "out of memory");
        v->phrase_index[v->nphrase++] = (int)i;
    }
    if (v->nphrase == 0)
        return cr_error_set(CR_EBODY, "phrases",
                            "none of the %zu phrases can be recognised (empty, or with words the English dictionary "
                            "lacks)",
                            nphrases);
    return 0;
}

/* Adds the words of phrase (normalised) as a chain of transitions from state `from` to state `to`, taking new states
 * from *next. */
static void voice__chain(fsg_model_t *fsg, const char *phrase, int32 from, int32 to, int32 *next)
{
    char buf[HOST_VOICE_PHRASE_MAX + 1];
    char *save = NULL, *w, *nw;
    snprintf(buf, sizeof(buf), "%s", phrase);
    w = strtok_r(buf, " ", &save);
    while (w != NULL) {
        int32 dst;
        nw = strtok_r(NULL, " ", &save);
        dst = nw == NULL ? to : (*next)++;
        fsg_model_trans_add(fsg, from, dst, 0, fsg_model_word_add(fsg, w));
        from = dst;
        w = nw;
    }
}

static int32 voice__logp(ps_decoder_t *ps, double p)
{
    return (int32)(logmath_log(ps_get_logmath(ps), p) * cmd_ln_float32_r(ps_get_config(ps), "-lw"));
}

/* Installs the two searches for the current phrases: "cmd", exactly one phrase; "alt", what competes with it: any
 * run of common words, or a phrase with common words before or after it. */
static int voice__build(host_voice_t *v)
{
    ps_decoder_t *ps = v->ps;
    logmath_t *lmath = ps_get_logmath(ps);
    float32 lw = cmd_ln_float32_r(ps_get_config(ps), "-lw");
    size_t words = 0, nstate = 0;
    char *key, *pw_prons = NULL;
    fsg_model_t *cmd = NULL, *alt = NULL;
    int rc = -1;
    int32 next;

    /* the key: the phrases as they are; nothing to do when they did not change */
    {
        size_t klen = 1;
        for (size_t i = 0; i < v->nphrase; ++i)
            klen += strlen(v->phrase_text[i]) + 1;
        if ((key = malloc(klen)) == NULL)
            return cr_error_set(CR_ENOMEM, "phrases", "out of memory");
        key[0] = '\0';
        for (size_t i = 0; i < v->nphrase; ++i) {
            strcat(key, v->phrase_text[i]);
            strcat(key, "\n");
        }
        if (v->built != NULL && strcmp(v->built, key) == 0) {
            free(key);
            return 0;
        }
        free(v->built);
        v->built = NULL;
    }
    for (size_t i = 0; i < v->nphrase; ++i) {
        ++words;
        for (const char *c = v->phrase_text[i]; *c != '\0'; ++c)
            words += *c == ' ';
    }
    /* every pronunciation of every phrase word: common words that sound the same are left out of "alt" */
    {
        size_t len = 0;
        for (size_t i = 0; i < v->nphrase; ++i) {
            char buf[HOST_VOICE_PHRASE_MAX + 1], *save = NULL;
            snprintf(buf, sizeof(buf), "%s", v->phrase_text[i]);
            for (char *w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
                char *p = voice__prons(ps, w), *grown;
                if (p == NULL)
                    continue;
                if ((grown = realloc(pw_prons, len + strlen(p) + 1)) == NULL) {
                    free(p);
                    cr_error_set(CR_ENOMEM, "phrases", "out of memory");
                    goto done;
                }
                pw_prons = grown;
                memcpy(pw_prons + len, p, strlen(p) + 1);
                len += strlen(p);
                free(p);
            }
        }
        if (pw_prons == NULL) {
            cr_error_set(CR_ERR, "phrases", "no pronunciation for the phrases");
            goto done;
        }
    }

    /* cmd: 0 -phrase-> 1 */
    nstate = 2 + words;
    cmd = fsg_model_init("cmd", lmath, lw, (int32)nstate);
    cmd->start_state = 0;
    cmd->final_state = 1;
    next = 2;
    for (size_t i = 0; i < v->nphrase; ++i)
        voice__chain(cmd, v->phrase_text[i], 0, 1, &next);

    /* alt, what competes with a phrase (w: a common word; phrase words and their homophones are not common words):
     *   0 -w-> 2 (-w-> 2)* -> 1                     common words only
     *   0 -w-> 3 (-w-> 3)* -> 4 -phrase-> 5 -> 1      words, then a phrase
     *   0 -> 6 -phrase-> 7 -w-> 8 (-w-> 8)* -> 1      a phrase, then words; 5 -w-> 8: words on both sides
     *   0 -prefix-> 9 (-w-> 8 ...) -> 1              the start of a phrase of several words, maybe then words
     *   0 -> 10 (-w-> 10)* -suffix-> 1               maybe words, then the end of a phrase of several words
     * 7 -> 1 (a phrase alone) costs VOICE_P_ALONE: a path that always reaches the end, so there is a score to
     * compare with even when every competitor falls out of the beam. */
    nstate = 11 + 3 * words + words * words;
    alt = fsg_model_init("alt", lmath, lw, (int32)nstate);
    alt->start_state = 0;
    alt->final_state = 1;
    next = 11;
    fsg_model_null_trans_add(alt, 2, 1, voice__logp(ps, VOICE_P_LOOP_END));
    fsg_model_null_trans_add(alt, 3, 4, 0);
    fsg_model_null_trans_add(alt, 5, 1, 0);
    fsg_model_null_trans_add(alt, 0, 6, 0);
    fsg_model_null_trans_add(alt, 7, 1, voice__logp(ps, VOICE_P_ALONE));
    fsg_model_null_trans_add(alt, 8, 1, 0);
    fsg_model_null_trans_add(alt, 9, 1, 0);
    fsg_model_null_trans_add(alt, 0, 10, voice__logp(ps, VOICE_P_PART));
    for (size_t i = 0; i < v->nphrase; ++i) {
        char buf[HOST_VOICE_PHRASE_MAX + 1], *w[VOICE_WORDS_MAX], *save = NULL;
        int nw = 0;
        voice__chain(alt, v->phrase_text[i], 4, 5, &next);
        voice__chain(alt, v->phrase_text[i], 6, 7, &next);
        snprintf(buf, sizeof(buf), "%s", v->phrase_text[i]);
        for (char *t = strtok_r(buf, " ", &save); t != NULL && nw < VOICE_WORDS_MAX; t = strtok_r(NULL, " ", &save))
            w[nw++] = t;
        /* prefixes w[0..j], j < nw - 1: one chain, leaving to 9 after each word */
        for (int j = 0, from = 0; j < nw - 1; ++j) {
            int32 to = next++;
            fsg_model_trans_add(alt, from, to, j == 0 ? voice__logp(ps, VOICE_P_PART) : 0,
                                fsg_model_word_add(alt, w[j]));
            fsg_model_null_trans_add(alt, to, 9, 0);
            from = to;
        }
        /* suffixes w[j..], j >= 1: from 10 */
        for (int j = 1; j < nw; ++j) {
            int32 from = 10;
            for (int k = j; k < nw; ++k) {
                int32 to = k == nw - 1 ? 1 : next++;
                fsg_model_trans_add(alt, from, to, 0, fsg_model_word_add(alt, w[k]));
                from = to;
            }
        }
    }
    for (size_t i = 0; i < v->ncommon; ++i) {
        int32 wid, pw = voice__logp(ps, VOICE_P_WORD), first = voice__logp(ps, VOICE_P_AROUND * VOICE_P_WORD);
        if (voice__prons_meet(v->common[i].prons, pw_prons))
            continue;
        wid = fsg_model_word_add(alt, v->common[i].word);
        fsg_model_trans_add(alt, 0, 2, voice__logp(ps, VOICE_P_GARBAGE * VOICE_P_WORD), wid);
        fsg_model_trans_add(alt, 2, 2, pw, wid);
        fsg_model_trans_add(alt, 0, 3, first, wid);
        fsg_model_trans_add(alt, 3, 3, pw, wid);
        fsg_model_trans_add(alt, 7, 8, first, wid);
        fsg_model_trans_add(alt, 5, 8, first, wid);
        fsg_model_trans_add(alt, 8, 8, pw, wid);
        fsg_model_trans_add(alt, 9, 8, pw, wid);
        fsg_model_trans_add(alt, 10, 10, pw, wid);
    }
    glist_free(fsg_model_null_trans_closure(alt, NULL));

    if (ps_set_fsg(ps, "cmd", cmd) != 0 || ps_set_fsg(ps, "alt", alt) != 0) {
        cr_error_set(CR_ERR, "phrases", "PocketSphinx refused the grammar");
        goto done;
    }
    v->built = key;
    key = NULL;
    rc = 0;
done:
    if (cmd != NULL)
        fsg_model_free(cmd); /* the searches hold their own references */
    if (alt != NULL)
        fsg_model_free(alt);
    free(pw_prons);
    free(key);
    return rc;
}

/* Frame energies (dB of the mean square, 10 ms frames) and the level above which a frame is loud: halfway from the
 * noise floor (10th percentile) to the peak (98th), and within 25 dB of the peak. Returns the frame count; *energy is
 * malloc'd (NULL when out of memory). */
static size_t voice__energy(const int16_t *pcm, size_t n, double **energy, double *floor_out, double *peak_out,
                            double *loud_out)
{
    enum { BUCKETS = 1001 }; /* 0 to 100 dB in steps of 0.1 dB: percentiles without sorting */
    size_t nf = n / VOICE_FRAME, want_lo = nf / 10, want_hi = nf - 1 - nf / 50, acc = 0, lo = 0, hi = 0;
    size_t *count;
    double *e;
    int seen_lo = 0;

    *energy = NULL;
    if (nf == 0)
        return 0;
    if ((e = malloc(nf * sizeof(*e))) == NULL || (count = calloc(BUCKETS, sizeof(*count))) == NULL) {
        free(e);
        return 0;
    }
    for (size_t i = 0; i < nf; ++i) {
        double sum = 0;
        size_t b;
        for (size_t k = 0; k < VOICE_FRAME; ++k) {
            double x = pcm[i * VOICE_FRAME + k];
            sum += x * x;
        }
        e[i] = 10.0 * log10(sum / VOICE_FRAME + 1.0);
        b = (size_t)(e[i] * 10.0);
        count[b < BUCKETS ? b : BUCKETS - 1]++;
    }
    for (size_t b = 0; b < BUCKETS; ++b) {
        if (!seen_lo && acc + count[b] > want_lo) {
            lo = b;
            seen_lo = 1;
        }
        if (acc + count[b] > want_hi) {
            hi = b;
            break;
        }
        acc += count[b];
    }
    free(count);
    *floor_out = (double)lo / 10.0;
    *peak_out = (double)hi / 10.0;
    *loud_out = *floor_out + 0.5 * (*peak_out - *floor_out);
    if (*loud_out < *peak_out - 25.0)
        *loud_out = *peak_out - 25.0;
    if (*loud_out < 30.0)
        *loud_out = 30.0;
    *energy = e;
    return nf;
}

/* Decodes pcm with the search `name`. Returns the hypothesis (owned by the decoder, valid until the next decode; ""
 * when the path holds no word) or NULL when no path reached the end of the grammar; *score is the path score. */
static const char *voice__decode(host_voice_t *v, const char *name, const int16_t *pcm, size_t n, int32 *score)
{
    const char *hyp;
    *score = 0;
    if (ps_set_search(v->ps, name) != 0 || ps_start_utt(v->ps) != 0)
        return NULL;
    if (ps_process_raw(v->ps, pcm, n, FALSE, TRUE) < 0) {
        ps_end_utt(v->ps);
        return NULL;
    }
    ps_end_utt(v->ps);
    hyp = ps_get_hyp(v->ps, score);
    return hyp;
}

/* The longest run of loud frames that the last decode's path gives to silence or noise rather than to a word. */
static int voice__silent_speech(host_voice_t *v, const double *energy, size_t nf, double loud)
{
    char *word = calloc(nf + 1, 1);
    int run = 0, longest = 0;
    if (word == NULL)
        return 0;
    for (ps_seg_t *seg = ps_seg_iter(v->ps); seg != NULL; seg = ps_seg_next(seg)) {
        const char *w = ps_seg_word(seg);
        int sf, ef;
        ps_seg_frames(seg, &sf, &ef);
        if (w[0] == '<' || w[0] == '[' || w[0] == '+' || strcmp(w, "(NULL)") == 0)
            continue;
        for (int f = sf < 0 ? 0 : sf; f <= ef && (size_t)f < nf; ++f)
            word[f] = 1;
    }
    for (size_t i = 0; i < nf; ++i) {
        if (energy[i] > loud && !word[i]) {
            if (++run > longest)
                longest = run;
        } else {
            run = 0;
        }
    }
    free(word);
    return longest;
}

/* PocketSphinx scores are logs in base 1.0001 shifted right by 10 bits (SENSCR_SHIFT) */
#define VOICE_NATS(score) ((double)(score)*1024.0 * log(1.0001))

static int voice__command_once(host_voice_t *v, const int16_t *pcm, size_t n, const char *const *phrases,
                               size_t nphrases, int *which, char *heard, size_t heardcap)
{
    double *energy = NULL, floor_db = 0, peak_db = 0, loud_db = 0;
    int16_t *dithered = NULL;
    const char *hyp;
    char *cmd_hyp = NULL;
    int32 cmd_score, alt_score;
    size_t nf;
    int rc = -1, hit = -1;

    *which = -1;
    if (heard != NULL && heardcap > 0)
        heard[0] = '\0';
    memset(&v->last, 0, sizeof(v->last));
    v->last.grammar_hit = -1;
    v->last.threshold = VOICE_MARGIN_MIN;
    v->last.silent_max = VOICE_SILENT_SPEECH_MAX;
    v->last.score = NAN;
    if (nphrases == 0 || phrases == NULL) {
        cr_error_set(CR_EBODY, "phrases", "no phrases to recognise");
        return -1;
    }
    if (nphrases > HOST_VOICE_PHRASES_MAX) {
        cr_error_set(CR_EBODY, "phrases", "%zu phrases, over the limit of %d", nphrases, HOST_VOICE_PHRASES_MAX);
        return -1;
    }
    if (n > (size_t)HOST_VOICE_SECONDS_MAX * HOST_VOICE_RATE) {
        cr_error_set(CR_ETOOLARGE, "audio", "the recording is %.1f s long, over the limit of %d s",
                     (double)n / HOST_VOICE_RATE, HOST_VOICE_SECONDS_MAX);
        return -1;
    }
    if (voice__phrases(v, phrases, nphrases) != 0 || voice__build(v) != 0)
        return -1;

    /* no speech at all (silence, a steady tone or hum, steady noise): nothing to decode */
    nf = voice__energy(pcm, n, &energy, &floor_db, &peak_db, &loud_db);
    if (nf < 10 || peak_db < 40.0 || peak_db - floor_db < 6.0) {
        cr_log(CR_LOG_DEBUG, "voice: no speech (%zu frames, floor %.1f dB, peak %.1f dB)", nf, floor_db, peak_db);
        rc = 0;
        goto done;
    }
    v->last.speech = 1;
    for (size_t i = 0; i < nf; ++i)
        v->last.speech_frames += energy[i] > loud_db;

    /* digital silence (runs of exact zeros) throws PocketSphinx's noise estimate off: a deterministic dither of -1, 0
     * or +1 (probabilities 1/4, 1/2, 1/4), the same for every call so the same audio always decodes the same */
    if ((dithered = malloc(n * sizeof(*dithered))) == NULL) {
        cr_error_set(CR_ENOMEM, "audio", "out of memory");
        goto done;
    }
    {
        uint32_t seed = 0x2545f491u;
        for (size_t i = 0; i < n; ++i) {
            int d;
            seed = seed * 1664525u + 1013904223u;
            d = (int)(seed >> 30) - 1;
            d = d > 1 ? 0 : d;
            dithered[i] = (int16_t)(pcm[i] + d > 32767 ? 32767 : pcm[i] + d < -32768 ? -32768 : pcm[i] + d);
        }
    }

    /* PocketSphinx's live cepstral mean carries from one recording to the next, so the same audio decoded differently
     * depending on what came before (measured: a Chromium recording of "option two" scored -1.2 nats as the first
     * utterance of a decoder and 18.4 after any other). Each recording starts from the model's initial mean and is
     * decoded once to adapt it to this voice and channel, then for real: the outcome depends on this audio alone. */
    if (v->cmn_init != NULL) {
        feat_t *fe = ps_get_feat(v->ps);
        if (fe != NULL && fe->cmn_struct != NULL)
            cmn_live_set(fe->cmn_struct, v->cmn_init);
        voice__decode(v, "cmd", dithered, n, &cmd_score);
    }
    if ((hyp = voice__decode(v, "cmd", dithered, n, &cmd_score)) == NULL || hyp[0] == '\0') {
        cr_log(CR_LOG_DEBUG, "voice: the phrase grammar found no path");
        rc = 0;
        goto done;
    }
    for (size_t i = 0; i < v->nphrase; ++i)
        if (strcmp(hyp, v->phrase_text[i]) == 0)
            hit = (int)i;
    if (hit < 0 || (cmd_hyp = strdup(hyp)) == NULL) {
        cr_error_set(hit < 0 ? CR_ERR : CR_ENOMEM, "audio", "PocketSphinx: unexpected hypothesis \"%.60s\"", hyp);
        goto done;
    }
    v->last.grammar_hit = v->phrase_index[hit];
    v->last.silent_speech = voice__silent_speech(v, energy, nf, loud_db);
    if (v->last.silent_speech > VOICE_SILENT_SPEECH_MAX) {
        /* the phrase covers only part of what was said: no need to look for a better explanation */
        v->last.score = NAN;
        cr_log(CR_LOG_DEBUG, "voice: \"%s\" rejected: %d frames of speech outside it", cmd_hyp, v->last.silent_speech);
        rc = 0;
        goto done;
    }

    hyp = voice__decode(v, "alt", dithered, n, &alt_score);
    v->last.score = hyp != NULL ? VOICE_NATS(cmd_score - alt_score) : INFINITY;
    if (hyp != NULL && strcmp(hyp, cmd_hyp) == 0)
        hyp = NULL; /* the floor: no competitor came close */
    if (heard != NULL && heardcap > 0)
        snprintf(heard, heardcap, "%s", hyp != NULL ? hyp : "");
    if (v->last.score >= VOICE_MARGIN_MIN && v->last.silent_speech <= VOICE_SILENT_SPEECH_MAX) {
        *which = v->phrase_index[hit];
        if (heard != NULL && heardcap > 0)
            snprintf(heard, heardcap, "%s", cmd_hyp);
    }
    cr_log(CR_LOG_DEBUG, "voice: \"%s\" %s (margin %.1f nats, %d frames of speech outside it); competitor \"%s\"",
           cmd_hyp, *which >= 0 ? "accepted" : "rejected", v->last.score, v->last.silent_speech,
           hyp != NULL ? hyp : "");
    rc = 0;
done:
    free(energy);
    free(dithered);
    free(cmd_hyp);
    return rc;
}

/* The 10 ms frames of the front end fall where the recording happens to start, and for some phrases the score
 * margin swings by tens of nats with that alignment (measured on espeak-ng's "option two": accepted at 2 of 5 starts
 * 32 samples apart, the same through Chromium's microphone; "option one", "yes", "no" at all 5). A phrase rejected on
 * its score alone (speech fully covered by the phrase, margin under the threshold) is tried again from four other
 * starts a fifth of a frame apart, and accepted when one of them accepts it; speech that is more than the phrase
 * (rejected for its loud frames outside it: free sentences) and silence are decided once. Measured: the free
 * sentences stay rejected at every start, and a bare "option" peaks at 2.6 nats, under the threshold of 4. */
int host_voice_command(host_voice_t *v, const int16_t *pcm, size_t n, const char *const *phrases, size_t nphrases,
                       int *which, char *heard, size_t heardcap)
{
    int rc = voice__command_once(v, pcm, n, phrases, nphrases, which, heard, heardcap);
    for (size_t shift = 32; rc == 0 && *which < 0 && shift <= 128 && n > shift + HOST_VOICE_RATE / 10; shift += 32) {
        const host_voice_stats_t *st = &v->last;
        if (!st->speech || st->grammar_hit < 0 || st->silent_speech > st->silent_max || !(st->score == st->score))
            break; /* rejected for what it is, not for a margin: no alignment changes that */
        rc = voice__command_once(v, pcm + shift, n - shift, phrases, nphrases, which, heard, heardcap);
    }
    return rc;
}
