/* fuzz_envelope.c — fuzz target: envelope and batch decoders, the streaming reader, and encode/decode round trips. */
#include "../fuzz.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/reader.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>


static int span_same(cr_span_t a, cr_span_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static void roundtrip_event(const cr_event_t *ev)
{
    cr_buf_t out;
    cr_event_t again;
    cr_buf_init(&out, 4 * 1024 * 1024);
    CHECK(cr_event_encode(&out, ev) == 0);
    CHECK(cr_event_decode(&again, out.base, out.len, NULL) == 0);
    CHECK(again.kind == ev->kind && again.seq == ev->seq && again.ts == ev->ts && again.pri == ev->pri);
    CHECK(span_same(again.sid, ev->sid) && span_same(again.k, ev->k) && span_same(again.idn, ev->idn));
    CHECK(span_same(again.b.raw, ev->b.raw));
    cr_buf_free(&out);
}

static void roundtrip_action(const cr_action_t *act)
{
    cr_buf_t out;
    cr_action_t again;
    cr_buf_init(&out, 4 * 1024 * 1024);
    CHECK(cr_action_encode(&out, act) == 0);
    CHECK(cr_action_decode(&again, out.base, out.len, NULL) == 0);
    CHECK(again.kind == act->kind && again.ref == act->ref && again.ts == act->ts);
    CHECK(span_same(again.sid, act->sid) && span_same(again.aid, act->aid) && span_same(again.by, act->by));
    CHECK(span_same(again.b.raw, act->b.raw));
    cr_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    cr_event_t ev;
    cr_action_t act;
    cr_batch_t batch;
    int rc;

    if ((rc = cr_event_decode(&ev, p, size, NULL)) == 0)
        roundtrip_event(&ev);
    else
        CHECK(rc < 0 && cr_error_last()->code == rc && cr_error_last()->message[0] != '\0');
    if ((rc = cr_action_decode(&act, p, size, NULL)) == 0)
        roundtrip_action(&act);
    else
        CHECK(rc < 0 && cr_error_last()->code == rc);

    if (cr_batch_open(&batch, p, size, NULL) == 0) {
        cr_span_t one;
        uint32_t n = 0;
        while (cr_batch_next(&batch, &one)) {
            CHECK(one.base >= p && one.base + one.len <= p + size);
            if (cr_event_decode(&ev, one.base, one.len, NULL) == 0)
                roundtrip_event(&ev);
            ++n;
        }
        CHECK(n == batch.count);
    }

    /* the streaming reader must give the same values whether fed whole or in pieces */
    if (size > 0) {
        cr_reader_t whole, pieces;
        size_t step = (size_t)data[0] % 7 + 1, off = 0, nwhole = 0, npieces = 0;
        cr_span_t v;
        int rw, rp;
        size_t lens[64];
        cr_reader_init(&whole, 64 * 1024, NULL);
        cr_reader_init(&pieces, 64 * 1024, NULL);
        if (cr_reader_feed(&whole, p, size) == 0)
            while (nwhole < 64 && (rw = cr_reader_next(&whole, &v)) == 0)
                lens[nwhole++] = v.len;
        while (off < size && npieces < nwhole) {
            size_t n = size - off < step ? size - off : step;
            if (cr_reader_feed(&pieces, p + off, n) != 0)
                break;
            off += n;
            while (npieces < nwhole && (rp = cr_reader_next(&pieces, &v)) == 0) {
                CHECK(v.len == lens[npieces]);
                ++npieces;
            }
        }
        CHECK(npieces == nwhole);
        cr_reader_free(&whole);
        cr_reader_free(&pieces);
    }
    return 0;
}
