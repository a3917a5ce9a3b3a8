/* fs.c — see corral/fs.h. */
#define _GNU_SOURCE /* mkostemp */
#include "corral/fs.h"
#include "corral/error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cr_mkdir_p(const char *dir, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return cr_error_set(CR_EIO, NULL, "cannot make directory %.200s: empty or too long a path", dir);
    }
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1;; ++p) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                int err = errno;
                cr_error_set(CR_EIO, NULL, "cannot make directory %s: %s", tmp, strerror(err));
                errno = err;
                return CR_EIO;
            }
            if ((*p = c) == '\0')
                break;
        }
    }
    return 0;
}

static int io_error(const char *what, const char *path)
{
    return cr_error_set(CR_EIO, NULL, "%s %s: %s", what, path, strerror(errno));
}

int cr_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;
    if (fd < 0)
        return io_error("open", dir);
    rc = fsync(fd) != 0 ? io_error("fsync", dir) : 0;
    close(fd);
    return rc;
}

int cr_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode, int durable)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    const char *p = data;
    int rc = 0, fd = -1;
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.XXXXXX", dir, name) >= (int)sizeof(tmp))
        return cr_error_set(CR_EIO, NULL, "path too long: %s/%s", dir, name);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) /* made 0600: nothing is readable by others before fchmod */
        return io_error("create", tmp);
    if (fchmod(fd, mode) != 0) {
        rc = io_error("chmod", tmp);
        goto done;
    }
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = io_error("write", tmp);
            goto done;
        }
        p += w;
        len -= (size_t)w;
    }
    if (durable && fsync(fd) != 0) {
        rc = io_error("fsync", tmp);
        goto done;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = io_error("rename to", path);
        goto done;
    }
    tmp[0] = '\0';
    rc = durable ? cr_fsync_dir(dir) : 0;
done:
    if (fd >= 0)
        close(fd);
    if (tmp[0] != '\0')
        unlink(tmp);
    return rc;
}

static int fs_error(const char *what, const char *path)
{
    return cr_error_set(CR_EIO, NULL, "%s %s: %s", what, path, strerror(errno));
}

int cr_path_join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long: %s/%s", a, b);
    return 0;
}

int cr_read_whole(char **out, size_t *outlen, const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int rc = 0;
    *out = NULL;
    if (fd < 0)
        return errno == ENOENT ? cr_error_set(CR_ENOTFOUND, NULL, "no such file: %s", path) : fs_error("open", path);
    if (fstat(fd, &st) != 0) {
        rc = fs_error("stat", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        rc = cr_error_set(CR_ETOOLARGE, NULL, "%s is larger than %zu bytes", path, max);
        goto done;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory reading %s", path);
        goto done;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = fs_error("read", path);
            goto done;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
    if (outlen != NULL)
        *outlen = got;
done:
    free(buf);
    close(fd);
    return rc;
}
