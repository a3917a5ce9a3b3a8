/* web.c — the phone's web app (clients/web, built into web.root) served at /: files only (no directory listings, no
 * path outside the root: h2o's normalized path has no dot segments, and dot files are refused), precompressed .gz
 * when the browser takes it, ETag and Last-Modified from h2o, and the headers of DESIGN.md §10: a strict
 * Content-Security-Policy (scripts and styles from this origin only, no inline script, no eval), no sniffing, no
 * referrer, no framing. index.html and the service worker are revalidated on every load; everything under /assets/
 * (content-hashed names) is cached for a year. */
#include "relay.h"
#include "corral/log.h"
#include <h2o.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define CSP                                                                                                             \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; "            \
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; media-src 'self' blob:; base-uri 'none'; "             \
    "form-action 'none'; frame-ancestors 'none'"

static h2o_mimemap_t *mimemap;

static void add(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

int relay_web_serve(relay_t *relay, h2o_req_t *req)
{
    const char *root = cr_config_str(relay->conf, "web.root");
    char path[PATH_MAX];
    h2o_iovec_t p = req->path_normalized, ext = {NULL, 0};
    int head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (root == NULL || root[0] == '\0' || (!head && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))))
        return -1;
    if (p.len == 1 && p.base[0] == '/')
        p = h2o_iovec_init(H2O_STRLIT("/index.html"));
    for (size_t i = 0; i < p.len; ++i) /* no dot files or dot segments, nothing odd */
        if ((p.base[i] == '.' && i > 0 && p.base[i - 1] == '/') || (unsigned char)p.base[i] < 0x21 || p.base[i] == '\\')
            return -1;
    if ((size_t)snprintf(path, sizeof(path), "%s%.*s", root, (int)p.len, p.base) >= sizeof(path))
        return -1;
    for (size_t i = p.len; i > 0; --i) {
        if (p.base[i - 1] == '.') {
            ext = h2o_iovec_init(p.base + i, p.len - i);
            break;
        }
        if (p.base[i - 1] == '/')
            break;
    }
    if (mimemap == NULL)
        mimemap = h2o_mimemap_create();
    h2o_mimemap_type_t *mt = ext.len != 0 ? h2o_mimemap_get_type_by_extension(mimemap, ext) : h2o_mimemap_get_default_type(mimemap);
    h2o_iovec_t mime = mt->type == H2O_MIMEMAP_TYPE_MIMETYPE ? mt->data.mimetype : h2o_iovec_init(H2O_STRLIT("application/octet-stream"));
    if (h2o_memis(ext.base, ext.len, H2O_STRLIT("webmanifest")))
        mime = h2o_iovec_init(H2O_STRLIT("application/manifest+json"));
    /* a validator of our own (h2o_file_send answers every request whole): the file's mtime and size, and which
     * representation (the .gz one when it exists and the browser takes gzip) */
    struct stat st, gz;
    char gzpath[PATH_MAX + 4], etag[80];
    ssize_t ae = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT_ENCODING, -1), inm;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    snprintf(gzpath, sizeof(gzpath), "%s.gz", path);
    int use_gz = ae >= 0 && h2o_contains_token(req->headers.entries[ae].value.base, req->headers.entries[ae].value.len,
                                                H2O_STRLIT("gzip"), ',') &&
                 stat(gzpath, &gz) == 0 && S_ISREG(gz.st_mode);
    snprintf(etag, sizeof(etag), "\"%llx-%llx%s\"", (unsigned long long)st.st_mtime, (unsigned long long)st.st_size,
             use_gz ? "-gz" : "");
    add(req, "etag", etag);
    add(req, "content-security-policy", CSP);
    add(req, "x-content-type-options", "nosniff");
    add(req, "referrer-policy", "no-referrer");
    add(req, "x-frame-options", "DENY");
    add(req, "cache-control",
        p.len > 8 && memcmp(p.base, "/assets/", 8) == 0 ? "public, max-age=31536000, immutable" : "no-cache");
    if ((inm = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1)) >= 0 &&
        h2o_memis(req->headers.entries[inm].value.base, req->headers.entries[inm].value.len, etag, strlen(etag))) {
        req->res.status = 304;
        req->res.reason = "Not Modified";
        h2o_send_inline(req, NULL, 0);
        return 0;
    }
    if (h2o_file_send(req, 200, "OK", path, mime, H2O_FILE_FLAG_SEND_COMPRESSED | H2O_FILE_FLAG_NO_ETAG) != 0) {
        /* not a file: take the headers back, the caller answers 404 */
        req->res.headers = (h2o_headers_t){NULL, 0, 0};
        return -1;
    }
    return 0;
}
