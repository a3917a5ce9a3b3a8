/* tests/unit/proto/fs.c — cr_mkdir_p: nested directories, existing ones, modes, a file in the way. */
#include "corral/error.h"
#include "corral/fs.h"
#include "harness.h"
#include "proc.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char tmp[PATH_MAX];

static void test_mkdir_p(void)
{
    char path[PATH_MAX + 64];
    struct stat st;
    FILE *fp;
    snprintf(path, sizeof(path), "%s/a/b/c", tmp);
    ok(cr_mkdir_p(path, 0700) == 0);
    ok(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    ok(cr_mkdir_p(path, 0700) == 0); /* already there */
    snprintf(path, sizeof(path), "%s/a/b/c/", tmp);
    ok(cr_mkdir_p(path, 0700) == 0); /* a trailing slash */
    snprintf(path, sizeof(path), "%s/file", tmp);
    ok((fp = fopen(path, "w")) != NULL);
    if (fp != NULL)
        fclose(fp);
    snprintf(path, sizeof(path), "%s/file/sub", tmp);
    ok(cr_mkdir_p(path, 0700) == CR_EIO && errno == ENOTDIR);
    ok(strstr(cr_error_last()->message, "/file/sub") != NULL);
    ok(cr_mkdir_p("", 0700) == CR_EIO);
}

int main(void)
{
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "fs", 200) != 0 || cr_test_slot_add(tmp, 0) < 0)
        return 1;
    subtest("mkdir -p", test_mkdir_p);
    return done_testing();
}
