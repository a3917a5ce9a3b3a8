/* h2o_uv_read.c — a workaround for h2o 2.2's libuv binding, linked into every executable that serves TLS with h2o
 * (corral-relay, corral-fake-push).
 *
 * libuv calls a read callback with nread == 0 when a read found nothing (EAGAIN): it happens whenever the read before
 * filled the buffer exactly. That is "nothing to do" in libuv's documentation, but h2o 2.2.5's on_read_ssl
 * (lib/common/socket/uv-binding.c.h) leaves its error at h2o_socket_error_io unless nread > 0, and so closes the TLS
 * connection: a client that sends more than h2o's 8 KiB read buffer at once — a phone's or a host's HTTP/2 streams in
 * one write, an APNs client's dozens — lost its connection at random, with neither GOAWAY nor TLS alert. Newer h2o
 * releases fixed it; Debian 12 has 2.2.5.
 *
 * h2o starts every read with uv_read_start, which this object defines in front of libuv's (an executable's own
 * definition comes first in the dynamic linker's lookup, for libh2o.so's calls too). A read callback that lies in
 * libh2o is called through a trampoline that passes data, EOF and errors on and drops the empty reads; every other
 * callback is libuv's business as before. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <string.h>
#include <uv.h>

#define H2O_CBS 4 /* h2o 2.2 has two read callbacks: on_read_tcp and on_read_ssl */
#define OTHER_CBS 8

static uv_read_cb h2o_cbs[H2O_CBS];
static uv_read_cb other_cbs[OTHER_CBS]; /* known not to be h2o's, so dladdr is asked once per callback */

#define TRAMPOLINE(i)                                                                                                  \
    static void trampoline_##i(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)                               \
    {                                                                                                                  \
        if (nread != 0)                                                                                                \
            h2o_cbs[i](stream, nread, buf);                                                                            \
    }
TRAMPOLINE(0)
TRAMPOLINE(1)
TRAMPOLINE(2)
TRAMPOLINE(3)
static const uv_read_cb trampolines[H2O_CBS] = {trampoline_0, trampoline_1, trampoline_2, trampoline_3};

static int in_libh2o(uv_read_cb cb)
{
    Dl_info info;
    void *p;
    memcpy(&p, &cb, sizeof(p));
    return dladdr(p, &info) != 0 && info.dli_fname != NULL && strstr(info.dli_fname, "libh2o") != NULL;
}

int uv_read_start(uv_stream_t *stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
    static int (*real)(uv_stream_t *, uv_alloc_cb, uv_read_cb);
    size_t i, j;

    if (real == NULL) {
        void *p = dlsym(RTLD_NEXT, "uv_read_start");
        if (p == NULL)
            return UV_ENOSYS;
        memcpy(&real, &p, sizeof(real));
    }
    if (read_cb == NULL)
        return real(stream, alloc_cb, read_cb);
    for (i = 0; i < H2O_CBS && h2o_cbs[i] != NULL; ++i)
        if (h2o_cbs[i] == read_cb)
            return real(stream, alloc_cb, trampolines[i]);
    for (j = 0; j < OTHER_CBS && other_cbs[j] != NULL; ++j)
        if (other_cbs[j] == read_cb)
            return real(stream, alloc_cb, read_cb);
    if (i < H2O_CBS && in_libh2o(read_cb)) {
        h2o_cbs[i] = read_cb;
        return real(stream, alloc_cb, trampolines[i]);
    }
    if (j < OTHER_CBS)
        other_cbs[j] = read_cb;
    return real(stream, alloc_cb, read_cb);
}
