/* store.c — corrald's on-disk state under <repo>/.corral/: sessions, transcripts, tasks, activity and the durable
 * outbox (formats in store.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "store.h"
#include "corral/seal.h"
#include "corral/fs.h"
#include "corral/buf.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define REC_HEADER 8
#define REC_MAX (64u << 20) /* a record longer than this is corruption */

/* ---- the outbox's types ------------------------------------------------------------------------------------------ */

typedef struct st_store_seg_t {
    uint64_t first; /* global index of its first record: the file's name */
    uint64_t size;  /* bytes of whole records */
} store_seg_t;

typedef struct st_store_rec_t {
    uint64_t seg; /* the segment's first index */
    uint64_t off; /* of the record header in the segment */
    uint64_t seq;
    uint32_t len; /* of the envelope */
    uint32_t sid; /* index into sids; UINT32_MAX: unreadable, counts as acknowledged */
} store_rec_t;

typedef struct st_store_sid_t {
    char sid[HOST_STORE_SID_MAX + 1];
    uint64_t acked;
    uint64_t max_seq;
} store_sid_t;

struct st_host_store_outbox_t {
    char dir[PATH_MAX];
    store_seg_t *segs;
    size_t nsegs, capsegs;
    store_rec_t *recs;
    size_t nrecs, caprecs;
    store_sid_t *sids;
    size_t nsids, capsids;
    size_t cursor;  /* recs[0..cursor) were handed out (or acked) */
    size_t durable; /* recs[0..durable) are fsync'd */
    int acked_dirty; /* an ack not yet written to outbox/acked */
    uint64_t next_index;
    int fd; /* the last segment, open for appending; -1 */
    int rfd;
    uint64_t rfd_first;
    cr_buf_t batch;
    /* the bytes last appended to the last segment (records with their headers), from tail_off on, so that a batch of
     * what was just written is not read back from the file (a pread per event): bounded, dropped when handed out */
    cr_buf_t tail;
    uint64_t tail_seg, tail_off;
    /* NOSYNC records not written yet (the end of the last segment): written in one write(2) when 64 KiB gather, on
     * host_store_outbox_flush (corrald's flush timer, within HOST_TRANSCRIPT_FLUSH_MS), before a sync, a new segment
     * and at close; a write per event was a fifth of corrald's system calls at 1,000 events/s */
    cr_buf_t wbuf;
};

#define OB_TAIL_MAX (4u << 20)
#define OB_WBUF_FLUSH (64u * 1024)  /* unwritten bytes that make an append write them */
#define OB_WBUF_MAX (4u << 20)      /* unwritten bytes kept while writes fail; beyond, appends fail */

struct st_host_store_t {
    char dir[PATH_MAX]; /* <repo>/.corral */
    host_store_outbox_t *outbox;
    size_t tfds; /* transcripts kept open (at most STORE_TFDS_MAX: the others open and close per event) */
    unsigned char *seal_key; /* K in sodium memory while bodies are sealed for the outbox (NULL: plain) */
    char seal_team[128];
};

#define STORE_TFDS_MAX 64

/* ---- small helpers ----------------------------------------------------------------------------------------------- */

static int io_error(const char *what, const char *path)
{
    return cr_error_set(CR_EIO, NULL, "%s %s: %s", what, path, strerror(errno));
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_atomic(const char *dir, const char *name, const char *data, size_t len)
{
    return cr_write_atomic(dir, name, data, len, 0644, 1);
}


static int mkdir_p1(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return io_error("mkdir", path);
    return 0;
}

static uint32_t crc_table[256];

static uint32_t crc32_ieee(const void *p, size_t n)
{
    const unsigned char *b = p;
    if (crc_table[1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    }
    uint32_t c = 0xFFFFFFFFu;
    while (n-- > 0)
        c = crc_table[(c ^ *b++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap != 0 ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (p == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    *arr = p;
    *cap = n;
    return 0;
}

/* ---- states ----------------------------------------------------------------------------------------------------- */

static const char *const state_names[] = {"starting", "running", "waiting", "idle", "suspended", "done", "failed"};

const char *host_store_state_name(host_store_state_t s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "failed";
}

int host_store_state_parse(host_store_state_t *out, const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
        if (strlen(state_names[i]) == len && memcmp(state_names[i], s, len) == 0) {
            *out = (host_store_state_t)i;
            return 0;
        }
    }
    return CR_ENOTFOUND;
}

/* ---- the outbox ------------------------------------------------------------------------------------------------- */

static uint32_t ob_sid_find(const host_store_outbox_t *ob, const char *sid, size_t len)
{
    for (size_t i = 0; i < ob->nsids; i++)
        if (strlen(ob->sids[i].sid) == len && memcmp(ob->sids[i].sid, sid, len) == 0)
            return (uint32_t)i;
    return UINT32_MAX;
}

/* Finds or adds a session; UINT32_MAX when memory runs out or the id is bad. */
static uint32_t ob_sid_get(host_store_outbox_t *ob, const char *sid, size_t len)
{
    uint32_t i = ob_sid_find(ob, sid, len);
    if (i != UINT32_MAX)
        return i;
    if (!cr_id_valid(sid, len) || grow((void **)&ob->sids, &ob->capsids, ob->nsids + 1, sizeof(*ob->sids)) != 0)
        return UINT32_MAX;
    store_sid_t *s = &ob->sids[ob->nsids];
    memset(s, 0, sizeof(*s));
    memcpy(s->sid, sid, len);
    return (uint32_t)ob->nsids++;
}

static int rec_acked(const host_store_outbox_t *ob, const store_rec_t *r)
{
    return r->sid == UINT32_MAX || r->seq <= ob->sids[r->sid].acked;
}

static int seg_path(char *out, size_t outlen, const host_store_outbox_t *ob, uint64_t first)
{
    int n = snprintf(out, outlen, "%s/%020" PRIu64 ".seg", ob->dir, first);
    if (n < 0 || (size_t)n >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long: %s", ob->dir);
    return 0;
}

static int ob_add_rec(host_store_outbox_t *ob, uint64_t seg, uint64_t off, const char *env, uint32_t len)
{
    cr_event_t ev;
    store_rec_t r = {seg, off, 0, len, UINT32_MAX};
    if (grow((void **)&ob->recs, &ob->caprecs, ob->nrecs + 1, sizeof(*ob->recs)) != 0)
        return CR_ENOMEM;
    if (cr_event_decode(&ev, env, len, NULL) == 0) {
        r.seq = ev.seq;
        if ((r.sid = ob_sid_get(ob, ev.sid.base, ev.sid.len)) != UINT32_MAX && ob->sids[r.sid].max_seq < ev.seq)
            ob->sids[r.sid].max_seq = ev.seq;
    } else {
        cr_log(CR_LOG_WARN, "outbox: record at %020" PRIu64 ".seg+%" PRIu64 " is not an event (%s); skipped", seg, off,
               cr_error_last()->message);
    }
    ob->recs[ob->nrecs++] = r;
    return 0;
}

/* Reads one segment's records, truncating it at the first torn or corrupt one. */
static int ob_load_segment(host_store_outbox_t *ob, uint64_t first, int is_last)
{
    char path[PATH_MAX], *data = NULL;
    size_t len = 0, off = 0;
    int rc;
    if ((rc = seg_path(path, sizeof(path), ob, first)) != 0)
        return rc;
    if ((rc = cr_read_whole(&data, &len, path, (size_t)HOST_STORE_SEGMENT_MAX + 2 * (size_t)REC_MAX)) != 0)
        return rc;
    while (off < len) {
        const unsigned char *h = (const unsigned char *)data + off;
        const char *why = NULL;
        uint32_t rlen = 0;
        if (len - off < REC_HEADER)
            why = "a short header";
        else if ((rlen = get_u32le(h)) == 0 || rlen > REC_MAX)
            why = "a bad length";
        else if (len - off - REC_HEADER < rlen)
            why = "a short record";
        else if (crc32_ieee(data + off + REC_HEADER, rlen) != get_u32le(h + 4))
            why = "a crc mismatch";
        if (why != NULL) {
            cr_log(CR_LOG_WARN, "outbox: %s has %s at offset %zu (of %zu bytes); truncating it there%s", path, why, off,
                   len, is_last ? "" : " (not the last segment)");
            if (truncate(path, (off_t)off) != 0) {
                rc = io_error("truncate", path);
                goto done;
            }
            break;
        }
        if ((rc = ob_add_rec(ob, first, off, data + off + REC_HEADER, rlen)) != 0)
            goto done;
        off += REC_HEADER + rlen;
    }
    if ((rc = grow((void **)&ob->segs, &ob->capsegs, ob->nsegs + 1, sizeof(*ob->segs))) != 0)
        goto done;
    ob->segs[ob->nsegs++] = (store_seg_t){first, off};
done:
    free(data);
    return rc;
}

static int ob_load_acked(host_store_outbox_t *ob)
{
    char path[PATH_MAX], *data = NULL, *line, *save = NULL;
    int rc;
    if ((rc = cr_path_join(path, sizeof(path), ob->dir, "acked")) != 0)
        return rc;
    if ((rc = cr_read_whole(&data, NULL, path, HOST_STORE_JSON_MAX)) != 0)
        return rc == CR_ENOTFOUND ? 0 : rc;
    for (line = strtok_r(data, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *sp = strchr(line, ' '), *end;
        uint32_t i;
        if (sp == NULL)
            goto bad;
        errno = 0;
        unsigned long long seq = strtoull(sp + 1, &end, 10);
        if (errno != 0 || *end != '\0' || (i = ob_sid_get(ob, line, (size_t)(sp - line))) == UINT32_MAX)
            goto bad;
        ob->sids[i].acked = seq;
        if (ob->sids[i].max_seq < seq)
            ob->sids[i].max_seq = seq;
        continue;
    bad:
        cr_log(CR_LOG_WARN, "outbox: %s has a bad line; ignored", path);
    }
    free(data);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int host_store_outbox_open(host_store_outbox_t **out, const char *dir)
{
    host_store_outbox_t *ob = calloc(1, sizeof(*ob));
    uint64_t *firsts = NULL;
    size_t nfirsts = 0, capfirsts = 0;
    DIR *d = NULL;
    struct dirent *e;
    int rc;
    *out = NULL;
    if (ob == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    ob->fd = ob->rfd = -1;
    cr_buf_init(&ob->batch, SIZE_MAX);
    cr_buf_init(&ob->tail, OB_TAIL_MAX);
    cr_buf_init(&ob->wbuf, OB_WBUF_MAX + 64 * 1024 + REC_HEADER);
    ob->tail_seg = UINT64_MAX;
    if (strlen(dir) >= sizeof(ob->dir)) {
        rc = cr_error_set(CR_EIO, NULL, "path too long: %s", dir);
        goto done;
    }
    strcpy(ob->dir, dir);
    if ((rc = mkdir_p1(dir)) != 0 || (rc = ob_load_acked(ob)) != 0)
        goto done;
    if ((d = opendir(dir)) == NULL) {
        rc = io_error("opendir", dir);
        goto done;
    }
    while ((e = readdir(d)) != NULL) {
        char *end;
        if (strlen(e->d_name) != 24 || strcmp(e->d_name + 20, ".seg") != 0)
            continue;
        uint64_t first = strtoull(e->d_name, &end, 10);
        if (end != e->d_name + 20)
            continue;
        if ((rc = grow((void **)&firsts, &capfirsts, nfirsts + 1, sizeof(*firsts))) != 0)
            goto done;
        firsts[nfirsts++] = first;
    }
    if (nfirsts > 0)
        qsort(firsts, nfirsts, sizeof(*firsts), cmp_u64);
    for (size_t i = 0; i < nfirsts; i++)
        if ((rc = ob_load_segment(ob, firsts[i], i + 1 == nfirsts)) != 0)
            goto done;
    if (ob->nsegs > 0) {
        uint64_t count = 0;
        for (size_t i = 0; i < ob->nrecs; i++)
            count += ob->recs[i].seg == ob->segs[ob->nsegs - 1].first;
        ob->next_index = ob->segs[ob->nsegs - 1].first + count;
    }
    ob->durable = ob->nrecs;
    *out = ob;
    ob = NULL;
done:
    if (d != NULL)
        closedir(d);
    free(firsts);
    host_store_outbox_close(ob);
    return rc;
}

void host_store_outbox_close(host_store_outbox_t *ob)
{
    if (ob == NULL)
        return;
    if (host_store_outbox_save_acked(ob) != 0)
        cr_log(CR_LOG_WARN, "outbox: %s (the relay will be sent those events again)", cr_error_last()->message);
    if (host_store_outbox_flush(ob) != 0)
        cr_log(CR_LOG_ERROR, "%s: %zu bytes of events lost", cr_error_last()->message, ob->wbuf.len);
    if (ob->fd >= 0) {
        if (ob->durable < ob->nrecs)
            (void)fdatasync(ob->fd);
        close(ob->fd);
    }
    if (ob->rfd >= 0)
        close(ob->rfd);
    cr_buf_free(&ob->batch);
    cr_buf_free(&ob->tail);
    cr_buf_free(&ob->wbuf);
    free(ob->segs);
    free(ob->recs);
    free(ob->sids);
    free(ob);
}

int host_store_outbox_flush(host_store_outbox_t *ob)
{
    size_t off = 0;
    int rc = 0;
    while (off < ob->wbuf.len) {
        ssize_t w = ob->fd >= 0 ? write(ob->fd, ob->wbuf.base + off, ob->wbuf.len - off) : (errno = EBADF, -1);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) { /* kept, and tried again at the next flush: nothing is handed out before it is durable */
            rc = cr_error_set(CR_EIO, NULL, "outbox: write to %s failed: %s", ob->dir, w < 0 ? strerror(errno) : "no progress");
            break;
        }
        off += (size_t)w;
    }
    if (off > 0) {
        memmove(ob->wbuf.base, ob->wbuf.base + off, ob->wbuf.len - off);
        ob->wbuf.len -= off;
    }
    return rc;
}

size_t host_store_outbox_buffered(const host_store_outbox_t *ob)
{
    return ob->wbuf.len;
}

int host_store_outbox_sync(host_store_outbox_t *ob)
{
    int rc;
    if (ob->durable == ob->nrecs)
        return 0;
    if ((rc = host_store_outbox_flush(ob)) != 0)
        return rc;
    if (ob->fd >= 0 && fdatasync(ob->fd) != 0)
        return io_error("fdatasync", ob->dir);
    ob->durable = ob->nrecs;
    return 0;
}

/* Opens the last segment for appending, or starts a new one when there is none or it is full. */
static int ob_writable(host_store_outbox_t *ob, size_t need)
{
    char path[PATH_MAX];
    int rc;
    store_seg_t *last = ob->nsegs > 0 ? &ob->segs[ob->nsegs - 1] : NULL;
    if (last != NULL && (last->size == 0 || last->size + need <= HOST_STORE_SEGMENT_MAX)) {
        if (ob->fd >= 0)
            return 0;
        if ((rc = seg_path(path, sizeof(path), ob, last->first)) != 0)
            return rc;
        if ((ob->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0)
            return io_error("open", path);
        return 0;
    }
    if (ob->fd >= 0) { /* the full segment: make it durable before it is left */
        if ((rc = host_store_outbox_sync(ob)) != 0)
            return rc;
        close(ob->fd);
        ob->fd = -1;
    }
    if ((rc = grow((void **)&ob->segs, &ob->capsegs, ob->nsegs + 1, sizeof(*ob->segs))) != 0)
        return rc;
    if ((rc = seg_path(path, sizeof(path), ob, ob->next_index)) != 0)
        return rc;
    if ((ob->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return io_error("create", path);
    if ((rc = cr_fsync_dir(ob->dir)) != 0) {
        close(ob->fd);
        ob->fd = -1;
        unlink(path);
        return rc;
    }
    ob->segs[ob->nsegs++] = (store_seg_t){ob->next_index, 0};
    return 0;
}

int host_store_outbox_append(host_store_outbox_t *ob, const char *env, size_t len, int flags)
{
    cr_event_t ev;
    unsigned char h[REC_HEADER];
    int rc;
    if ((rc = cr_event_decode(&ev, env, len, NULL)) != 0)
        return rc;
    if ((rc = ob_writable(ob, REC_HEADER + len)) != 0)
        return rc;
    if ((rc = grow((void **)&ob->recs, &ob->caprecs, ob->nrecs + 1, sizeof(*ob->recs))) != 0)
        return rc;
    store_seg_t *seg = &ob->segs[ob->nsegs - 1];
    put_u32le(h, (uint32_t)len);
    put_u32le(h + 4, crc32_ieee(env, len));
    if (ob->wbuf.len + REC_HEADER + len > OB_WBUF_MAX && host_store_outbox_flush(ob) != 0)
        return cr_error_last()->code;
    size_t wlen0 = ob->wbuf.len;
    if (cr_buf_append(&ob->wbuf, h, REC_HEADER) != 0 || cr_buf_append(&ob->wbuf, env, len) != 0) {
        ob->wbuf.len = wlen0;
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }
    if ((rc = ob_add_rec(ob, seg->first, seg->size, env, (uint32_t)len)) != 0)
        return rc; /* cannot happen: room was made above */
    if (ob->tail_seg != seg->first || ob->tail_off + ob->tail.len != seg->size || ob->tail.len + REC_HEADER + len > OB_TAIL_MAX) {
        cr_buf_reset(&ob->tail);
        ob->tail_seg = seg->first;
        ob->tail_off = seg->size;
    }
    if (cr_buf_append(&ob->tail, h, REC_HEADER) != 0 || cr_buf_append(&ob->tail, env, len) != 0) {
        cr_buf_reset(&ob->tail); /* no room: read back from the file */
        ob->tail_off = seg->size + REC_HEADER + len;
    }
    seg->size += REC_HEADER + len;
    ob->next_index++;
    if ((flags & HOST_STORE_SYNC) != 0)
        return host_store_outbox_sync(ob);
    if (ob->wbuf.len >= OB_WBUF_FLUSH)
        return host_store_outbox_flush(ob);
    return 0;
}

int host_store_outbox_next_batch(host_store_outbox_t *ob, cr_span_t *out, size_t *n, size_t max_events,
                                 size_t max_bytes)
{
    size_t count = 0, bytes = 0;
    char path[PATH_MAX];
    int rc;
    *n = 0;
    cr_buf_reset(&ob->batch);
    while (ob->cursor < ob->durable && count < max_events) {
        store_rec_t *r = &ob->recs[ob->cursor];
        if (rec_acked(ob, r)) {
            ob->cursor++;
            continue;
        }
        if (count > 0 && bytes + r->len > max_bytes)
            break;
        if (r->seg == ob->tail_seg && r->off >= ob->tail_off && r->off + REC_HEADER + r->len <= ob->tail_off + ob->tail.len) {
            if ((rc = cr_buf_append(&ob->batch, ob->tail.base + (r->off - ob->tail_off) + REC_HEADER, r->len)) != 0)
                return rc;
            out[count].base = NULL;
            out[count].len = r->len;
            bytes += r->len;
            count++;
            ob->cursor++;
            continue;
        }
        if (ob->rfd < 0 || ob->rfd_first != r->seg) {
            if (ob->rfd >= 0)
                close(ob->rfd);
            if ((rc = seg_path(path, sizeof(path), ob, r->seg)) != 0)
                return rc;
            if ((ob->rfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return io_error("open", path);
            ob->rfd_first = r->seg;
        }
        if ((rc = cr_buf_reserve(&ob->batch, r->len)) != 0)
            return rc;
        ssize_t got = pread(ob->rfd, ob->batch.base + ob->batch.len, r->len, (off_t)(r->off + REC_HEADER));
        if (got != (ssize_t)r->len)
            return cr_error_set(CR_EIO, NULL, "outbox: cannot read back a record of %020" PRIu64 ".seg: %s", r->seg,
                                got < 0 ? strerror(errno) : "short read");
        out[count].base = NULL; /* set below, once the buffer stops moving */
        out[count].len = r->len;
        ob->batch.len += r->len;
        bytes += r->len;
        count++;
        ob->cursor++;
    }
    if (ob->cursor == ob->nrecs && ob->tail.len > 0) { /* all handed out: the tail starts afresh at the end */
        ob->tail_off += ob->tail.len;
        cr_buf_reset(&ob->tail);
    }
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        out[i].base = ob->batch.base + off;
        off += out[i].len;
    }
    *n = count;
    return 0;
}

void host_store_outbox_rewind(host_store_outbox_t *ob)
{
    ob->cursor = 0;
}

static int ob_write_acked(host_store_outbox_t *ob)
{
    cr_buf_t b;
    int rc = 0;
    cr_buf_init(&b, SIZE_MAX);
    for (size_t i = 0; i < ob->nsids && rc == 0; i++)
        if (ob->sids[i].acked > 0)
            rc = cr_buf_appendf(&b, "%s %" PRIu64 "\n", ob->sids[i].sid, ob->sids[i].acked);
    if (rc == 0)
        rc = write_atomic(ob->dir, "acked", b.base != NULL ? b.base : "", b.len);
    cr_buf_free(&b);
    return rc;
}

int host_store_outbox_ack(host_store_outbox_t *ob, const char *sid, uint64_t seq)
{
    return host_store_outbox_ack_lazy(ob, sid, seq, 1);
}

int host_store_outbox_save_acked(host_store_outbox_t *ob)
{
    int rc;
    if (!ob->acked_dirty)
        return 0;
    if ((rc = ob_write_acked(ob)) == 0)
        ob->acked_dirty = 0;
    return rc;
}

int host_store_outbox_ack_lazy(host_store_outbox_t *ob, const char *sid, uint64_t seq, int save)
{
    size_t len = strlen(sid);
    if (!cr_id_valid(sid, len))
        return cr_error_set(CR_EBADNAME, "sid", "not a valid session id");
    uint32_t i = ob_sid_get(ob, sid, len);
    if (i == UINT32_MAX)
        return CR_ENOMEM;
    if (seq <= ob->sids[i].acked)
        return 0;
    uint64_t old = ob->sids[i].acked;
    ob->sids[i].acked = seq;
    if (ob->sids[i].max_seq < seq)
        ob->sids[i].max_seq = seq;
    ob->acked_dirty = 1;
    if (!save)
        return 0;
    int rc = host_store_outbox_save_acked(ob);
    if (rc != 0)
        ob->sids[i].acked = old;
    return rc;
}

int host_store_outbox_compact(host_store_outbox_t *ob)
{
    char path[PATH_MAX];
    size_t ri = 0, keep_segs = 0, keep_recs = 0, new_cursor = 0, new_durable = 0;
    int deleted = 0, rc;
    /* records of a segment that is not durable yet are never acked: the relay never saw them */
    for (size_t si = 0; si < ob->nsegs; si++) {
        store_seg_t seg = ob->segs[si];
        size_t start = ri;
        int all = 1;
        for (; ri < ob->nrecs && ob->recs[ri].seg == seg.first; ri++)
            all = all && rec_acked(ob, &ob->recs[ri]);
        all = all && ri <= ob->durable;
        if (all) {
            if ((rc = seg_path(path, sizeof(path), ob, seg.first)) != 0)
                return rc;
            if (ob->rfd >= 0 && ob->rfd_first == seg.first) {
                close(ob->rfd);
                ob->rfd = -1;
            }
            if (si + 1 == ob->nsegs && ob->fd >= 0) {
                close(ob->fd);
                ob->fd = -1;
            }
            if (unlink(path) != 0 && errno != ENOENT)
                return io_error("unlink", path);
            deleted++;
            continue;
        }
        for (size_t k = start; k < ri; k++) {
            if (k < ob->cursor)
                new_cursor++;
            if (k < ob->durable)
                new_durable++;
            ob->recs[keep_recs++] = ob->recs[k];
        }
        ob->segs[keep_segs++] = seg;
    }
    ob->nsegs = keep_segs;
    ob->nrecs = keep_recs;
    ob->cursor = new_cursor;
    ob->durable = new_durable;
    if (deleted > 0 && (rc = cr_fsync_dir(ob->dir)) != 0)
        return rc;
    return deleted;
}

size_t host_store_outbox_pending(const host_store_outbox_t *ob)
{
    size_t n = 0;
    for (size_t i = 0; i < ob->nrecs; i++)
        n += !rec_acked(ob, &ob->recs[i]);
    return n;
}

size_t host_store_outbox_segments(const host_store_outbox_t *ob)
{
    return ob->nsegs;
}

uint64_t host_store_outbox_max_seq(const host_store_outbox_t *ob, const char *sid)
{
    uint32_t i = ob_sid_find(ob, sid, strlen(sid));
    return i == UINT32_MAX ? 0 : ob->sids[i].max_seq;
}

/* ---- the store -------------------------------------------------------------------------------------------------- */

/* Adds ".corral/" to <repo>/.git/info/exclude when .git is a directory and the line is missing. */
static int ensure_exclude(const char *repo)
{
    char gitdir[PATH_MAX], info[PATH_MAX], path[PATH_MAX], *data = NULL;
    struct stat st;
    size_t len = 0;
    int rc;
    if ((rc = cr_path_join(gitdir, sizeof(gitdir), repo, ".git")) != 0)
        return rc;
    if (stat(gitdir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0; /* not a plain repository (a linked worktree's .git is a file): .corral/.gitignore does the job */
    if ((rc = cr_path_join(info, sizeof(info), gitdir, "info")) != 0 || (rc = mkdir_p1(info)) != 0 ||
        (rc = cr_path_join(path, sizeof(path), info, "exclude")) != 0)
        return rc;
    rc = cr_read_whole(&data, &len, path, HOST_STORE_JSON_MAX);
    if (rc != 0 && rc != CR_ENOTFOUND)
        return rc;
    rc = 0;
    int found = 0;
    for (char *p = data; p != NULL && *p != '\0' && !found;) {
        char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
        found = (l == 8 && memcmp(p, ".corral/", 8) == 0) || (l == 7 && memcmp(p, ".corral", 7) == 0) ||
                (l == 9 && memcmp(p, "/.corral/", 9) == 0) || (l == 8 && memcmp(p, "/.corral", 8) == 0);
        p = nl != NULL ? nl + 1 : NULL;
    }
    if (!found) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        const char *line = (len > 0 && data[len - 1] != '\n') ? "\n.corral/\n" : ".corral/\n";
        if (fd < 0 || write_all(fd, line, strlen(line)) != 0)
            rc = io_error("write", path);
        if (fd >= 0)
            close(fd);
    }
    free(data);
    return rc;
}

int host_store_open(host_store_t **out, const char *repo_dir)
{
    host_store_t *st = NULL;
    char path[PATH_MAX], real[PATH_MAX];
    struct stat sb;
    int rc;
    *out = NULL;
    if (realpath(repo_dir, real) == NULL || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cr_error_set(CR_ENOTFOUND, "repo", "no such directory: %s", repo_dir);
    if ((st = calloc(1, sizeof(*st))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    if ((rc = cr_path_join(st->dir, sizeof(st->dir), real, HOST_STORE_DIR)) != 0 || (rc = mkdir_p1(st->dir)) != 0)
        goto done;
    if ((rc = cr_path_join(path, sizeof(path), st->dir, ".gitignore")) != 0)
        goto done;
    if (access(path, F_OK) != 0 && (rc = write_atomic(st->dir, ".gitignore", "*\n", 2)) != 0)
        goto done;
    if ((rc = ensure_exclude(real)) != 0)
        goto done;
    if ((rc = cr_path_join(path, sizeof(path), st->dir, "sessions")) != 0 || (rc = mkdir_p1(path)) != 0)
        goto done;
    if ((rc = cr_path_join(path, sizeof(path), st->dir, "outbox")) != 0 ||
        (rc = host_store_outbox_open(&st->outbox, path)) != 0)
        goto done;
    *out = st;
    st = NULL;
done:
    host_store_close(st);
    return rc;
}

void host_store_close(host_store_t *st)
{
    if (st == NULL)
        return;
    host_store_outbox_close(st->outbox);
    if (st->seal_key != NULL)
        sodium_free(st->seal_key);
    free(st);
}

int host_store_seal(host_store_t *st, const unsigned char *key, const char *team)
{
    if (key == NULL) {
        if (st->seal_key != NULL)
            sodium_free(st->seal_key);
        st->seal_key = NULL;
        st->seal_team[0] = '\0';
        return 0;
    }
    if (team == NULL || strlen(team) >= sizeof(st->seal_team))
        return cr_error_set(CR_EBODY, "team", "not a team name");
    if (sodium_init() < 0)
        return cr_error_set(CR_ERR, NULL, "libsodium cannot start");
    if (st->seal_key == NULL && (st->seal_key = sodium_malloc(CR_SEAL_KEYBYTES)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    memcpy(st->seal_key, key, CR_SEAL_KEYBYTES);
    snprintf(st->seal_team, sizeof(st->seal_team), "%s", team);
    return 0;
}

int host_store_sealing(const host_store_t *st)
{
    return st->seal_key != NULL;
}

const char *host_store_dir(const host_store_t *st)
{
    return st->dir;
}

host_store_outbox_t *host_store_outbox(host_store_t *st)
{
    return st->outbox;
}

static const cr_limits_t *store_limits(void)
{
    static cr_limits_t lim;
    if (lim.max_string == 0) {
        lim = cr_limits_default;
        lim.max_string = HOST_STORE_JSON_MAX;
        lim.max_envelope = HOST_STORE_JSON_MAX;
    }
    return &lim;
}

/* ---- session.json ----------------------------------------------------------------------------------------------- */

static int session_dir(char *out, size_t outlen, const host_store_t *st, const char *sid)
{
    int n = snprintf(out, outlen, "%s/sessions/%s", st->dir, sid);
    if (n < 0 || (size_t)n >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long: %s/sessions/%s", st->dir, sid);
    return 0;
}

static int session_file(char *out, size_t outlen, const host_store_session_t *s, const char *name)
{
    int n = snprintf(out, outlen, "%s/sessions/%s/%s", s->_store->dir, s->sid, name);
    if (n < 0 || (size_t)n >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long: %s/sessions/%s/%s", s->_store->dir, s->sid, name);
    return 0;
}

static int mpw_kv_str(cr_buf_t *b, const char *key, const char *v)
{
    return cr_mpw_str(b, key, strlen(key)) || cr_mpw_str(b, v, strlen(v));
}

static int mpw_kv_uint(cr_buf_t *b, const char *key, uint64_t v)
{
    return cr_mpw_str(b, key, strlen(key)) || cr_mpw_uint(b, v);
}

static int mpw_kv_int(cr_buf_t *b, const char *key, int v)
{
    if (v >= 0)
        return mpw_kv_uint(b, key, (uint64_t)v);
    unsigned char x[9] = {0xd3};
    uint64_t u = (uint64_t)(int64_t)v;
    for (int i = 0; i < 8; i++)
        x[1 + i] = (unsigned char)(u >> (56 - 8 * i));
    return cr_mpw_str(b, key, strlen(key)) || cr_buf_append(b, x, 9);
}

/* Re-indents compact JSON (as cr_json_from_msgpack writes it) with two spaces, one member a line. */
static int json_pretty(cr_buf_t *out, const char *j, size_t len)
{
    int depth = 0, in_str = 0, rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        char c = j[i];
        if (in_str) {
            rc = cr_buf_append(out, &c, 1);
            if (c == '\\' && i + 1 < len)
                rc = rc || cr_buf_append(out, &j[++i], 1);
            else if (c == '"')
                in_str = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            rc = cr_buf_append(out, &c, 1);
            break;
        case '{':
        case '[':
            if (i + 1 < len && (j[i + 1] == '}' || j[i + 1] == ']')) {
                rc = cr_buf_append(out, &c, 1) || cr_buf_append(out, &j[++i], 1);
                break;
            }
            depth++;
            rc = cr_buf_appendf(out, "%c\n%*s", c, depth * 2, "");
            break;
        case '}':
        case ']':
            depth--;
            rc = cr_buf_appendf(out, "\n%*s%c", depth * 2, "", c);
            break;
        case ',':
            rc = cr_buf_appendf(out, ",\n%*s", depth * 2, "");
            break;
        case ':':
            rc = cr_buf_append(out, ": ", 2);
            break;
        default:
            rc = cr_buf_append(out, &c, 1);
        }
    }
    return rc || cr_buf_append(out, "\n", 1);
}

/* Keeps the "options" array of map (a question body, or the saved needs), if it has a well-formed one of strings;
 * NULL, or anything else, forgets the last. */
static void needs_opts_set(host_store_session_t *s, const char *map, size_t len)
{
    cr_span_t v;
    cr_mp_item_t it;
    size_t used;
    free(s->needs_opts);
    s->needs_opts = NULL;
    s->needs_opts_len = 0;
    if (map == NULL || cr_mp_map_get(map, len, "options", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_ARRAY || it.count == 0 || cr_mp_check(v.base, v.len, store_limits(), v.len, NULL, &used) != 0 ||
        used != v.len || (s->needs_opts = malloc(v.len)) == NULL)
        return;
    memcpy(s->needs_opts, v.base, v.len);
    s->needs_opts_len = v.len;
}

static int session_to_json(cr_buf_t *json, const host_store_session_t *s)
{
    cr_buf_t mp;
    uint32_t n = 13; /* sid name task agent base branch base_commit worktree state created updated last_seq aids */
    int rc;
    cr_buf_init(&mp, HOST_STORE_JSON_MAX);
    n += (s->cmd != NULL) + (s->identity[0] != '\0') + (s->resume_id != NULL) + (s->has_exit != 0) +
         (s->has_needs != 0);
    rc = cr_mpw_map(&mp, n) || mpw_kv_str(&mp, "sid", s->sid) || mpw_kv_str(&mp, "name", s->git.name) ||
         mpw_kv_str(&mp, "task", s->task != NULL ? s->task : "") || mpw_kv_str(&mp, "agent", s->agent);
    if (rc == 0 && s->cmd != NULL)
        rc = mpw_kv_str(&mp, "cmd", s->cmd);
    if (rc == 0 && s->identity[0] != '\0')
        rc = mpw_kv_str(&mp, "identity", s->identity);
    rc = rc || mpw_kv_str(&mp, "base", s->git.base) || mpw_kv_str(&mp, "branch", s->git.branch) ||
         mpw_kv_str(&mp, "base_commit", s->git.base_commit) || mpw_kv_str(&mp, "worktree", s->git.worktree) ||
         mpw_kv_str(&mp, "state", host_store_state_name(s->state));
    if (rc == 0 && s->resume_id != NULL)
        rc = mpw_kv_str(&mp, "resume_id", s->resume_id);
    rc = rc || mpw_kv_uint(&mp, "created", s->created) || mpw_kv_uint(&mp, "updated", s->updated) ||
         mpw_kv_uint(&mp, "last_seq", s->last_seq);
    if (rc == 0 && s->has_exit)
        rc = CR_MPW_LIT(&mp, "exit") || cr_mpw_map(&mp, 2) || mpw_kv_int(&mp, "status", s->exit_status) ||
             mpw_kv_int(&mp, "signal", s->exit_signal);
    if (rc == 0 && s->has_needs)
        rc = CR_MPW_LIT(&mp, "needs") || cr_mpw_map(&mp, s->needs_opts != NULL ? 4 : 3) ||
             mpw_kv_str(&mp, "k", s->needs_k) || mpw_kv_uint(&mp, "seq", s->needs_seq) ||
             mpw_kv_str(&mp, "rid", s->needs_rid) ||
             (s->needs_opts != NULL &&
              (CR_MPW_LIT(&mp, "options") || cr_buf_append(&mp, s->needs_opts, s->needs_opts_len)));
    rc = rc || CR_MPW_LIT(&mp, "applied_aids") || cr_mpw_array(&mp, (uint32_t)s->naids);
    for (size_t i = 0; rc == 0 && i < s->naids; i++)
        rc = cr_mpw_str(&mp, s->aids[i], strlen(s->aids[i]));
    if (rc == 0) {
        cr_buf_t compact;
        cr_buf_init(&compact, HOST_STORE_JSON_MAX);
        rc = cr_json_from_msgpack(&compact, mp.base, mp.len, store_limits());
        if (rc == 0)
            rc = json_pretty(json, compact.base, compact.len);
        cr_buf_free(&compact);
    }
    cr_buf_free(&mp);
    return rc != 0 ? (rc < 0 ? rc : CR_ENOMEM) : 0;
}

/* Reads the str member `key` of the map mp: copies it into dst (cap bytes with the NUL) or, when dst is NULL,
 * malloc's it into *dup. Returns 0, 1 when absent and optional, or CR_EJSON naming the file and field. */
static int get_str(const char *mp, size_t len, const char *key, int required, char *dst, size_t cap, char **dup,
                   const char *file)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0)
        return required ? cr_error_set(CR_EJSON, key, "%s: \"%s\" is missing", file, key) : 1;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return cr_error_set(CR_EJSON, key, "%s: \"%s\" must be a string", file, key);
    if (dst != NULL) {
        if (it.bytes.len >= cap || memchr(it.bytes.base, '\0', it.bytes.len) != NULL)
            return cr_error_set(CR_EJSON, key, "%s: \"%s\" is too long", file, key);
        memcpy(dst, it.bytes.base, it.bytes.len);
        dst[it.bytes.len] = '\0';
        return 0;
    }
    if ((*dup = cr_strndup(it.bytes.base, it.bytes.len)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    return 0;
}

static int get_uint(const char *mp, size_t len, const char *key, int required, uint64_t *out, const char *file)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0)
        return required ? cr_error_set(CR_EJSON, key, "%s: \"%s\" is missing", file, key) : 1;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cr_error_set(CR_EJSON, key, "%s: \"%s\" must be a non-negative integer", file, key);
    *out = it.u;
    return 0;
}

static int get_int(const char *mp, size_t len, const char *key, int *out, const char *file)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0)
        return cr_error_set(CR_EJSON, key, "%s: \"%s\" is missing", file, key);
    if (cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_POSITIVE_INTEGER && it.u <= INT32_MAX)
        *out = (int)it.u;
    else if (cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
             it.i >= INT32_MIN)
        *out = (int)it.i;
    else
        return cr_error_set(CR_EJSON, key, "%s: \"%s\" must be an integer", file, key);
    return 0;
}

static int session_from_json(host_store_session_t *s, const char *json, size_t jlen, const char *file)
{
    cr_buf_t mp;
    cr_span_t v;
    cr_mp_item_t it;
    char state[16];
    int rc;
    cr_buf_init(&mp, HOST_STORE_JSON_MAX);
    if ((rc = cr_json_to_msgpack(&mp, json, jlen, store_limits())) != 0) {
        char why[sizeof(cr_error_last()->message)];
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        rc = cr_error_set(CR_EJSON, NULL, "%s is not valid JSON: %s", file, why);
        goto done;
    }
    if (cr_mp_read(mp.base, mp.base + mp.len, &it) == 0 || it.type != MSGPACK_OBJECT_MAP) {
        rc = cr_error_set(CR_EJSON, NULL, "%s is not a JSON object", file);
        goto done;
    }
    const char *m = mp.base;
    size_t ml = mp.len;
    char sid[HOST_STORE_SID_MAX + 1];
    if ((rc = get_str(m, ml, "sid", 1, sid, sizeof(sid), NULL, file)) != 0)
        goto done;
    if (strcmp(sid, s->sid) != 0) {
        rc = cr_error_set(CR_EJSON, "sid", "%s: \"sid\" is %s, not the directory's name", file, sid);
        goto done;
    }
    if ((rc = get_str(m, ml, "name", 1, s->git.name, sizeof(s->git.name), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "task", 1, NULL, 0, &s->task, file)) != 0 ||
        (rc = get_str(m, ml, "agent", 1, s->agent, sizeof(s->agent), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "cmd", 0, NULL, 0, &s->cmd, file)) < 0 ||
        (rc = get_str(m, ml, "identity", 0, s->identity, sizeof(s->identity), NULL, file)) < 0 ||
        (rc = get_str(m, ml, "base", 1, s->git.base, sizeof(s->git.base), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "branch", 1, s->git.branch, sizeof(s->git.branch), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "base_commit", 1, s->git.base_commit, sizeof(s->git.base_commit), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "worktree", 1, s->git.worktree, sizeof(s->git.worktree), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "state", 1, state, sizeof(state), NULL, file)) != 0 ||
        (rc = get_str(m, ml, "resume_id", 0, NULL, 0, &s->resume_id, file)) < 0 ||
        (rc = get_uint(m, ml, "created", 1, &s->created, file)) != 0 ||
        (rc = get_uint(m, ml, "updated", 1, &s->updated, file)) != 0 ||
        (rc = get_uint(m, ml, "last_seq", 1, &s->last_seq, file)) != 0)
        goto done;
    rc = 0;
    if (host_store_state_parse(&s->state, state, strlen(state)) != 0) {
        rc = cr_error_set(CR_EJSON, "state", "%s: \"state\" is not a session state: %s", file, state);
        goto done;
    }
    if (cr_mp_map_get(m, ml, "exit", &v) == 0) {
        s->has_exit = 1;
        if ((rc = get_int(v.base, v.len, "status", &s->exit_status, file)) != 0 ||
            (rc = get_int(v.base, v.len, "signal", &s->exit_signal, file)) != 0)
            goto done;
    }
    if (cr_mp_map_get(m, ml, "needs", &v) == 0) {
        cr_mp_read(v.base, v.base + v.len, &it);
        if (it.type != MSGPACK_OBJECT_NIL) {
            s->has_needs = 1;
            if ((rc = get_str(v.base, v.len, "k", 1, s->needs_k, sizeof(s->needs_k), NULL, file)) != 0 ||
                (rc = get_uint(v.base, v.len, "seq", 1, &s->needs_seq, file)) != 0 ||
                (rc = get_str(v.base, v.len, "rid", 0, s->needs_rid, sizeof(s->needs_rid), NULL, file)) < 0)
                goto done;
            rc = 0;
            needs_opts_set(s, v.base, v.len);
        }
    }
    if (cr_mp_map_get(m, ml, "applied_aids", &v) == 0) {
        size_t hl = cr_mp_read(v.base, v.base + v.len, &it);
        if (hl == 0 || it.type != MSGPACK_OBJECT_ARRAY) {
            rc = cr_error_set(CR_EJSON, "applied_aids", "%s: \"applied_aids\" must be an array", file);
            goto done;
        }
        const char *p = v.base + hl, *end = v.base + v.len;
        uint32_t count = it.count;
        for (uint32_t i = 0; i < count; i++) {
            cr_mp_item_t a;
            if (cr_mp_read(p, end, &a) == 0 || a.type != MSGPACK_OBJECT_STR || !cr_id_valid(a.bytes.base, a.bytes.len)) {
                rc = cr_error_set(CR_EJSON, "applied_aids", "%s: \"applied_aids\" must hold action ids", file);
                goto done;
            }
            char aid[HOST_STORE_SID_MAX + 1];
            memcpy(aid, a.bytes.base, a.bytes.len);
            aid[a.bytes.len] = '\0';
            host_store_aid_add(s, aid);
            p = cr_mp_skip(p, end);
        }
    }
done:
    cr_buf_free(&mp);
    return rc;
}

static host_store_session_t *session_alloc(host_store_t *st)
{
    host_store_session_t *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->_store = st;
        cr_buf_init(&s->_tbuf, 64u << 20);
    }
    return s;
}

void host_store_session_free(host_store_session_t *s)
{
    if (s == NULL)
        return;
    free(s->needs_opts);
    free(s->task);
    free(s->cmd);
    free(s->resume_id);
    free(s->aids);
    if (host_store_transcript_flush(s) != 0)
        cr_log_sid(CR_LOG_ERROR, s->sid, "transcript: %s", cr_error_last()->message);
    cr_buf_free(&s->_tbuf);
    if (s->_tfd > 0) {
        close(s->_tfd - 1);
        if (s->_store != NULL)
            s->_store->tfds--;
    }
    free(s);
}

static int session_save(host_store_session_t *s, int durable)
{
    char dir[PATH_MAX];
    cr_buf_t json;
    int rc;
    if ((rc = session_dir(dir, sizeof(dir), s->_store, s->sid)) != 0)
        return rc;
    s->updated = cr_now_ms();
    cr_buf_init(&json, HOST_STORE_JSON_MAX);
    if ((rc = session_to_json(&json, s)) == 0)
        rc = cr_write_atomic(dir, "session.json", json.base, json.len, 0644, durable);
    else
        rc = cr_error_set(CR_EIO, NULL, "cannot write session %s: its JSON is too large (%d)", s->sid, rc);
    cr_buf_free(&json);
    return rc;
}

int host_store_session_save(host_store_session_t *s)
{
    return session_save(s, 1);
}

/* The seq on the last complete line of transcript.jsonl; 0 when none. */
static uint64_t transcript_last_seq(const host_store_session_t *s)
{
    char path[PATH_MAX];
    uint64_t seq = 0;
    if (session_file(path, sizeof(path), s, "transcript.jsonl") != 0)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    size_t want = 4u << 20;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        goto done;
    if ((uint64_t)st.st_size < want)
        want = (size_t)st.st_size;
    if ((buf = malloc(want + 1)) == NULL)
        goto done;
    ssize_t got = pread(fd, buf, want, st.st_size - (off_t)want);
    if (got <= 0)
        goto done;
    /* walk back over lines until one parses (a torn last line is skipped) */
    size_t end = (size_t)got;
    while (end > 0) {
        if (buf[end - 1] != '\n') { /* a torn line: drop it */
            while (end > 0 && buf[end - 1] != '\n')
                end--;
            continue;
        }
        size_t start = end - 1;
        while (start > 0 && buf[start - 1] != '\n')
            start--;
        cr_buf_t mp;
        cr_span_t v;
        cr_mp_item_t it;
        cr_buf_init(&mp, HOST_STORE_JSON_MAX);
        int okp = cr_json_to_msgpack(&mp, buf + start, end - 1 - start, store_limits()) == 0 &&
                  cr_mp_map_get(mp.base, mp.len, "seq", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
                  it.type == MSGPACK_OBJECT_POSITIVE_INTEGER;
        if (okp)
            seq = it.u;
        cr_buf_free(&mp);
        if (okp || start == 0)
            break;
        end = start;
    }
done:
    free(buf);
    close(fd);
    return seq;
}

int host_store_session_load(host_store_session_t **out, host_store_t *st, const char *sid)
{
    char dir[PATH_MAX], path[PATH_MAX], *json = NULL;
    size_t jlen = 0;
    host_store_session_t *s = NULL;
    int rc;
    *out = NULL;
    if (sid == NULL || !cr_id_valid(sid, strlen(sid)) || strcmp(sid, ".") == 0 || strcmp(sid, "..") == 0)
        return cr_error_set(CR_EBADNAME, "sid", "not a valid session id: %s", sid != NULL ? sid : "(null)");
    if ((rc = session_dir(dir, sizeof(dir), st, sid)) != 0 || (rc = cr_path_join(path, sizeof(path), dir, "session.json")) != 0)
        return rc;
    if ((rc = cr_read_whole(&json, &jlen, path, HOST_STORE_JSON_MAX)) != 0) {
        if (rc == CR_ENOTFOUND)
            return cr_error_set(CR_ENOTFOUND, "sid", "no such session: %s", sid);
        if (rc == CR_ETOOLARGE)
            rc = CR_EJSON;
        return rc;
    }
    if ((s = session_alloc(st)) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto done;
    }
    strcpy(s->sid, sid);
    if ((rc = session_from_json(s, json, jlen, path)) != 0)
        goto done;
    uint64_t seq = transcript_last_seq(s);
    if (seq > s->last_seq)
        s->last_seq = seq;
    seq = host_store_outbox_max_seq(st->outbox, sid);
    if (seq > s->last_seq)
        s->last_seq = seq;
    *out = s;
    s = NULL;
done:
    free(json);
    host_store_session_free(s);
    return rc;
}

static int agent_valid(const char *a)
{
    return a != NULL && (strcmp(a, "claude") == 0 || strcmp(a, "codex") == 0 || strcmp(a, "shell") == 0);
}

int host_store_session_create(host_store_session_t **out, host_store_t *st, const host_store_session_opts_t *o)
{
    char dir[PATH_MAX], path[PATH_MAX], ulid[CR_ULID_LEN + 1];
    host_store_session_t *s = NULL, **list = NULL;
    size_t n = 0;
    int rc, made = 0;
    *out = NULL;
    const char *sid = o->sid;
    if (sid == NULL) {
        cr_ulid_new(ulid);
        sid = ulid;
    }
    if (!cr_id_valid(sid, strlen(sid)) || strcmp(sid, ".") == 0 || strcmp(sid, "..") == 0)
        return cr_error_set(CR_EBADNAME, "sid", "not a valid session id: %s", sid);
    if (!agent_valid(o->agent))
        return cr_error_set(CR_ECONFIG, "agent", "agent must be claude, codex or shell");
    if (o->git == NULL || o->git->name[0] == '\0')
        return cr_error_set(CR_EBADNAME, "name", "a session needs a name");
    if (o->identity != NULL && o->identity[0] != '\0' && !cr_id_valid(o->identity, strlen(o->identity)))
        return cr_error_set(CR_EBADNAME, "identity", "not a valid identity name: %s", o->identity);
    if ((rc = host_store_session_list(&list, &n, st)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i]->git.name, o->git->name) == 0) {
            rc = cr_error_set(CR_EEXISTS, "name", "a session named %s exists already (%s)", o->git->name, list[i]->sid);
            goto done;
        }
    if ((rc = session_dir(dir, sizeof(dir), st, sid)) != 0)
        goto done;
    if (mkdir(dir, 0755) != 0) {
        rc = errno == EEXIST ? cr_error_set(CR_EEXISTS, "sid", "a session with id %s exists already", sid)
                             : io_error("mkdir", dir);
        goto done;
    }
    made = 1;
    if ((s = session_alloc(st)) == NULL || (s->task = strdup(o->task != NULL ? o->task : "")) == NULL ||
        (o->cmd != NULL && (s->cmd = strdup(o->cmd)) == NULL)) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto done;
    }
    strcpy(s->sid, sid);
    s->git = *o->git;
    snprintf(s->agent, sizeof(s->agent), "%s", o->agent);
    if (o->identity != NULL)
        snprintf(s->identity, sizeof(s->identity), "%s", o->identity);
    s->state = HOST_STORE_STARTING;
    s->created = cr_now_ms();
    s->last_seq = host_store_outbox_max_seq(st->outbox, sid); /* a reused id never reuses a seq */
    if ((rc = write_atomic(dir, "tasks.md", "", 0)) != 0 || (rc = host_store_session_save(s)) != 0)
        goto done;
    *out = s;
    s = NULL;
    made = 0;
done:
    if (made) {
        if (cr_path_join(path, sizeof(path), dir, "tasks.md") == 0)
            unlink(path);
        if (cr_path_join(path, sizeof(path), dir, "session.json") == 0)
            unlink(path);
        rmdir(dir);
    }
    host_store_session_free(s);
    host_store_session_list_free(list, n);
    return rc;
}

static int cmp_sessions(const void *a, const void *b)
{
    const host_store_session_t *x = *(host_store_session_t *const *)a, *y = *(host_store_session_t *const *)b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->sid, y->sid);
}

int host_store_session_list(host_store_session_t ***out, size_t *n, host_store_t *st)
{
    char dir[PATH_MAX];
    host_store_session_t **list = NULL;
    size_t cnt = 0, cap = 0;
    DIR *d;
    struct dirent *e;
    int rc = 0;
    *out = NULL;
    *n = 0;
    if ((rc = cr_path_join(dir, sizeof(dir), st->dir, "sessions")) != 0)
        return rc;
    if ((d = opendir(dir)) == NULL)
        return io_error("opendir", dir);
    while ((e = readdir(d)) != NULL) {
        host_store_session_t *s;
        if (e->d_name[0] == '.' || !cr_id_valid(e->d_name, strlen(e->d_name)))
            continue;
        int lr = host_store_session_load(&s, st, e->d_name);
        if (lr == CR_ENOMEM) {
            rc = lr;
            break;
        }
        if (lr != 0) {
            cr_log_sid(CR_LOG_WARN, e->d_name, "session skipped: %s", cr_error_last()->message);
            continue;
        }
        if ((rc = grow((void **)&list, &cap, cnt + 1, sizeof(*list))) != 0) {
            host_store_session_free(s);
            break;
        }
        list[cnt++] = s;
    }
    closedir(d);
    if (rc != 0) {
        host_store_session_list_free(list, cnt);
        return rc;
    }
    if (cnt > 0)
        qsort(list, cnt, sizeof(*list), cmp_sessions);
    *out = list;
    *n = cnt;
    return 0;
}

void host_store_session_list_free(host_store_session_t **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        host_store_session_free(list[i]);
    free(list);
}

int host_store_session_find(host_store_session_t **out, host_store_t *st, const char *key)
{
    host_store_session_t **list = NULL;
    size_t n = 0;
    int rc;
    *out = NULL;
    if (key != NULL && cr_id_valid(key, strlen(key))) {
        rc = host_store_session_load(out, st, key);
        if (rc != CR_ENOTFOUND)
            return rc;
    }
    if ((rc = host_store_session_list(&list, &n, st)) != 0)
        return rc;
    rc = cr_error_set(CR_ENOTFOUND, "session", "no session named %s", key != NULL ? key : "(null)");
    for (size_t i = 0; i < n; i++)
        if (key != NULL && strcmp(list[i]->git.name, key) == 0) {
            *out = list[i];
            list[i] = NULL; /* now owned by the caller */
            rc = 0;
            break;
        }
    host_store_session_list_free(list, n);
    return rc;
}

uint64_t host_store_next_seq(host_store_session_t *s)
{
    return ++s->last_seq;
}

int host_store_aid_seen(const host_store_session_t *s, const char *aid)
{
    for (size_t i = 0; i < s->naids; i++)
        if (strcmp(s->aids[i], aid) == 0)
            return 1;
    return 0;
}

void host_store_aid_add(host_store_session_t *s, const char *aid)
{
    if (!cr_id_valid(aid, strlen(aid)) || host_store_aid_seen(s, aid))
        return;
    if (s->aids == NULL && (s->aids = calloc(HOST_STORE_AIDS_MAX, sizeof(*s->aids))) == NULL)
        return;
    if (s->naids == HOST_STORE_AIDS_MAX) {
        memmove(s->aids, s->aids + 1, (HOST_STORE_AIDS_MAX - 1) * sizeof(*s->aids));
        s->naids--;
    }
    strcpy(s->aids[s->naids++], aid);
}

/* ---- events ----------------------------------------------------------------------------------------------------- */

/* Writes the buffered transcript lines to transcript.jsonl, whose descriptor stays open for the session's next
 * writes (an open and a close per event were a fifth of corrald's system calls at 1,000 events/s). */
int host_store_transcript_flush(host_store_session_t *s)
{
    char path[PATH_MAX];
    int rc;
    if (s->_tbuf.len == 0)
        return 0;
    if ((rc = session_file(path, sizeof(path), s, "transcript.jsonl")) != 0)
        return rc;
    int fd = s->_tfd - 1;
    if (fd < 0 && (fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) >= 0 && s->_store->tfds < STORE_TFDS_MAX) {
        s->_tfd = fd + 1;
        s->_store->tfds++;
    }
    rc = 0;
    if (fd < 0 || write_all(fd, s->_tbuf.base, s->_tbuf.len) != 0) {
        rc = io_error("append to", path);
        if (s->_tfd > 0) { /* opened again on the next write */
            s->_tfd = 0;
            s->_store->tfds--;
        }
    }
    if (fd >= 0 && s->_tfd == 0)
        close(fd);
    cr_buf_reset(&s->_tbuf);
    return rc;
}

void host_store_transcript_discard(host_store_session_t *s)
{
    cr_buf_reset(&s->_tbuf);
}

/* Adds the event's JSON line to the session's transcript: written now when `now` (what a human must see, session
 * changes) or when a lot is buffered, else at the caller's next host_store_transcript_flush. */
static int transcript_append(host_store_session_t *s, const char *env, size_t len, int now)
{
    int rc;
    size_t old = s->_tbuf.len;
    if ((rc = cr_json_from_msgpack(&s->_tbuf, env, len, store_limits())) != 0 || (rc = cr_buf_append(&s->_tbuf, "\n", 1)) != 0) {
        s->_tbuf.len = old;
        return rc;
    }
    if (now || s->_tbuf.len >= (256u << 10))
        return host_store_transcript_flush(s);
    return 0;
}

int host_store_emit(cr_buf_t *out, host_store_session_t *s, const char *kind, int pri, const char *body, size_t len,
                    const char *idn)
{
    cr_event_t ev;
    size_t old = out->len;
    int rc;
    if (kind == NULL || pri < 0 || pri > 2)
        return cr_error_set(CR_EENVELOPE, "pri", "pri must be 0, 1 or 2");
    memset(&ev, 0, sizeof(ev));
    ev.v = CR_PROTOCOL_VERSION;
    ev.kind = cr_kind_parse(kind, strlen(kind));
    ev.k = (cr_span_t){kind, strlen(kind)};
    ev.sid = (cr_span_t){s->sid, strlen(s->sid)};
    ev.seq = s->last_seq + 1;
    ev.ts = cr_now_ms();
    if (idn == NULL)
        idn = s->identity;
    ev.idn = (cr_span_t){idn, strlen(idn)};
    ev.pri = (uint8_t)pri;
    ev.b.raw = (cr_span_t){body, body != NULL ? len : 0};
    ev.b.sealed = len > 0 && body != NULL && ((unsigned char)body[0] >= 0xc4 && (unsigned char)body[0] <= 0xc6);
    if (cr_kind_is_action(ev.kind))
        return cr_error_set(CR_EENVELOPE, "k", "%s is an action, not an event", kind);
    if ((rc = cr_event_encode(out, &ev)) != 0)
        return rc;
    /* what a human must see (pri 2) and session changes are made durable now; the stream of messages and tool
     * output is synced in groups, before it is sent (host_relay.c syncs before each batch) — one fdatasync per
     * event was a sixth of corrald's CPU at 1,000 events/s */
    int sync_now = pri >= 2 || strncmp(kind, "session.", 8) == 0;
    if (s->_store->seal_key != NULL && !ev.b.sealed && ev.b.raw.len > 0) {
        /* the relay gets the body sealed with K; transcript.jsonl (out) keeps it plain for the human at the host */
        cr_buf_t bin, env;
        cr_event_t sev = ev;
        cr_buf_init(&bin, ev.b.raw.len + 64);
        cr_buf_init(&env, out->len - old + 128);
        if ((rc = cr_event_seal_body(&bin, s->_store->seal_key, s->_store->seal_team, &ev, ev.b.raw.base, ev.b.raw.len,
                                     NULL)) == 0) {
            sev.b.raw = (cr_span_t){bin.base, bin.len};
            sev.b.sealed = 1;
            if ((rc = cr_event_encode(&env, &sev)) == 0)
                rc = host_store_outbox_append(s->_store->outbox, env.base, env.len,
                                              sync_now ? HOST_STORE_SYNC : HOST_STORE_NOSYNC);
        }
        cr_buf_free(&bin);
        cr_buf_free(&env);
    } else {
        rc = host_store_outbox_append(s->_store->outbox, out->base + old, out->len - old,
                                      sync_now ? HOST_STORE_SYNC : HOST_STORE_NOSYNC);
    }
    if (rc != 0) {
        out->len = old;
        return rc;
    }
    s->last_seq = ev.seq; /* the event exists from here on */
    host_store_state_t old_state = s->state;
    int old_needs = s->has_needs;
    if (transcript_append(s, out->base + old, out->len - old, sync_now) != 0)
        cr_log_sid(CR_LOG_ERROR, s->sid, "transcript: %s", cr_error_last()->message);
    /* the session summary (DESIGN §5's sessions list): needs, state */
    if (!ev.b.sealed && ev.b.raw.len > 0) {
        cr_span_t v;
        cr_mp_item_t it;
        const char *b = ev.b.raw.base;
        size_t bl = ev.b.raw.len;
        if (ev.kind == CR_EV_APPROVAL_REQUEST || ev.kind == CR_EV_QUESTION || ev.kind == CR_EV_DIFF_READY) {
            s->has_needs = 1;
            snprintf(s->needs_k, sizeof(s->needs_k), "%s", kind);
            s->needs_seq = ev.seq;
            s->needs_rid[0] = '\0';
            needs_opts_set(s, b, bl);
            if (ev.kind != CR_EV_DIFF_READY && cr_mp_map_get(b, bl, "rid", &v) == 0 &&
                cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_STR &&
                it.bytes.len < sizeof(s->needs_rid)) {
                memcpy(s->needs_rid, it.bytes.base, it.bytes.len);
                s->needs_rid[it.bytes.len] = '\0';
            }
        } else if (ev.kind == CR_EV_SESSION_STATE && cr_mp_map_get(b, bl, "state", &v) == 0 &&
                   cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_STR) {
            host_store_state_parse(&s->state, it.bytes.base, it.bytes.len);
        }
    } else if (ev.b.sealed && (ev.kind == CR_EV_APPROVAL_REQUEST || ev.kind == CR_EV_QUESTION ||
                               ev.kind == CR_EV_DIFF_READY)) {
        s->has_needs = 1; /* a sealed body: the kind and seq are known, the rid is not */
        snprintf(s->needs_k, sizeof(s->needs_k), "%s", kind);
        s->needs_seq = ev.seq;
        s->needs_rid[0] = '\0';
    }
    if (ev.kind == CR_EV_ACTION_APPLIED) {
        s->has_needs = 0;
        needs_opts_set(s, NULL, 0);
    }
    int durable = s->state != old_state || s->has_needs != old_needs || (s->has_needs && s->needs_seq == ev.seq);
    /* last_seq alone is recovered on load (from the outbox and the transcript), so session.json is rewritten only
     * for a change of state or needs: a rewrite per event (a new inode each time) cost most of corrald's CPU at
     * 1,000 events/s */
    if (durable && session_save(s, 1) != 0)
        cr_log_sid(CR_LOG_ERROR, s->sid, "session.json: %s", cr_error_last()->message);
    return 0;
}

/* ---- tasks.md --------------------------------------------------------------------------------------------------- */

static int tasks_read(char **out, size_t *len, const host_store_session_t *s, char *path, size_t pathlen)
{
    int rc;
    if ((rc = session_file(path, pathlen, s, "tasks.md")) != 0)
        return rc;
    rc = cr_read_whole(out, len, path, HOST_STORE_JSON_MAX);
    if (rc == CR_ENOTFOUND) {
        *len = 0;
        if ((*out = strdup("")) == NULL)
            return cr_error_set(CR_ENOMEM, NULL, "out of memory");
        return 0;
    }
    return rc;
}

static int tasks_write(const host_store_session_t *s, const char *data, size_t len)
{
    char dir[PATH_MAX];
    int rc;
    if ((rc = session_dir(dir, sizeof(dir), s->_store, s->sid)) != 0)
        return rc;
    return write_atomic(dir, "tasks.md", data, len);
}

int host_store_task_add(host_store_session_t *s, const char *text)
{
    char path[PATH_MAX], *data = NULL;
    size_t len = 0;
    cr_buf_t b;
    int rc;
    if (text == NULL || text[0] == '\0')
        return cr_error_set(CR_EBODY, "text", "a task needs text");
    if ((rc = tasks_read(&data, &len, s, path, sizeof(path))) != 0)
        return rc;
    cr_buf_init(&b, HOST_STORE_JSON_MAX);
    rc = cr_buf_append(&b, data, len);
    if (rc == 0 && len > 0 && data[len - 1] != '\n')
        rc = cr_buf_append(&b, "\n", 1);
    rc = rc || cr_buf_append(&b, "- [ ] ", 6);
    for (const char *p = text; rc == 0 && *p != '\0'; p++) {
        if (*p == '\n')
            rc = cr_buf_append(&b, "\n  ", 3);
        else if (*p != '\r' || p[1] != '\n')
            rc = cr_buf_append(&b, p, 1);
    }
    rc = rc || cr_buf_append(&b, "\n", 1);
    if (rc != 0)
        rc = cr_error_set(CR_ETOOLARGE, "text", "tasks.md would be larger than %u bytes", HOST_STORE_JSON_MAX);
    else
        rc = tasks_write(s, b.base, b.len);
    cr_buf_free(&b);
    free(data);
    return rc;
}

/* Finds the first "- [ ] " item at or after p; sets *item_end past its continuation lines. */
static char *tasks_find(char *p, char **item_end, int *count)
{
    char *first = NULL;
    *count = 0;
    while (*p != '\0') {
        char *nl = strchr(p, '\n');
        char *next = nl != NULL ? nl + 1 : p + strlen(p);
        if (strncmp(p, "- [ ] ", 6) == 0) {
            (*count)++;
            if (first == NULL) {
                first = p;
                while (strncmp(next, "  ", 2) == 0) {
                    char *n2 = strchr(next, '\n');
                    next = n2 != NULL ? n2 + 1 : next + strlen(next);
                }
                *item_end = next;
            }
        }
        p = next;
    }
    return first;
}

int host_store_task_take(char **out, host_store_session_t *s)
{
    char path[PATH_MAX], *data = NULL, *end = NULL;
    size_t len = 0;
    int rc, count;
    *out = NULL;
    if ((rc = tasks_read(&data, &len, s, path, sizeof(path))) != 0)
        return rc;
    char *item = tasks_find(data, &end, &count);
    if (item == NULL) {
        free(data);
        return cr_error_set(CR_ENOTFOUND, NULL, "no task is queued");
    }
    /* the text: the first line after "- [ ] ", then each continuation line without its two spaces */
    cr_buf_t text;
    cr_buf_init(&text, HOST_STORE_JSON_MAX);
    for (char *p = item + 6; rc == 0 && p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        if (p != item + 6)
            rc = cr_buf_append(&text, "\n", 1) || cr_buf_append(&text, p + 2, l - 2);
        else
            rc = cr_buf_append(&text, p, l);
        p += l + (nl != NULL);
    }
    rc = rc || cr_buf_append(&text, "", 1) ? CR_ENOMEM : 0;
    if (rc == 0) {
        item[3] = 'x';
        if ((rc = tasks_write(s, data, len)) == 0) {
            *out = text.base;
            text.base = NULL; /* now owned by the caller */
        }
    }
    cr_buf_free(&text);
    free(data);
    return rc;
}

int host_store_task_count(host_store_session_t *s)
{
    char path[PATH_MAX], *data = NULL, *end;
    size_t len;
    int rc, count;
    if ((rc = tasks_read(&data, &len, s, path, sizeof(path))) != 0)
        return rc;
    tasks_find(data, &end, &count);
    free(data);
    return count;
}

/* ---- activity.csv ----------------------------------------------------------------------------------------------- */

static int csv_field(cr_buf_t *b, const char *v, int last)
{
    int rc = 0;
    if (v == NULL)
        v = "";
    if (strpbrk(v, ",\"\r\n") == NULL) {
        rc = cr_buf_append(b, v, strlen(v));
    } else {
        rc = cr_buf_append(b, "\"", 1);
        for (const char *p = v; rc == 0 && *p != '\0'; p++)
            rc = *p == '"' ? cr_buf_append(b, "\"\"", 2) : cr_buf_append(b, p, 1);
        rc = rc || cr_buf_append(b, "\"", 1);
    }
    return rc || cr_buf_append(b, last ? "\r\n" : ",", last ? 2 : 1);
}

int host_store_activity(host_store_t *st, const host_store_activity_t *a)
{
    char path[PATH_MAX], when[96];
    cr_buf_t b;
    struct tm tm;
    struct stat sb;
    int rc, fd;
    uint64_t t = a->time != 0 ? a->time : cr_now_ms();
    time_t secs = (time_t)(t / 1000);
    if ((rc = cr_path_join(path, sizeof(path), st->dir, "activity.csv")) != 0)
        return rc;
    gmtime_r(&secs, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(t % 1000));
    if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return io_error("open", path);
    cr_buf_init(&b, 1u << 20);
    rc = fstat(fd, &sb) != 0 ? -1 : 0;
    if (rc == 0 && sb.st_size == 0)
        rc = cr_buf_append(&b, "time,actor,session,identity,operation,detail,outcome\r\n", 54);
    rc = rc || csv_field(&b, when, 0) || csv_field(&b, a->actor, 0) || csv_field(&b, a->session, 0) ||
         csv_field(&b, a->identity, 0) || csv_field(&b, a->operation, 0) || csv_field(&b, a->detail, 0) ||
         csv_field(&b, a->outcome, 1);
    if (rc != 0)
        rc = cr_error_set(CR_ETOOLARGE, "detail", "an activity record is larger than 1 MiB");
    else if (write_all(fd, b.base, b.len) != 0)
        rc = io_error("append to", path);
    cr_buf_free(&b);
    close(fd);
    return rc;
}
