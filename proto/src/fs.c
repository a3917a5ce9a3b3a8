/* fs.c — see corral/fs.h. */
#define _GNU_SOURCE /* mkostemp */
#include "corral/fs.h"
#include "corral/error.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
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
