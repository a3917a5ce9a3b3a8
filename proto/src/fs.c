/* fs.c — see corral/fs.h. */
#include "corral/fs.h"
#include "corral/error.h"
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

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
