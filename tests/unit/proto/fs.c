/* tests/unit/proto/fs.c — cr_mkdir_p: nested directories, existing ones, modes, a file in the way; cr_write_atomic;
 * cr_read_whole. */
#include "corral/error.h"
#include "corral/fs.h"
#include "harness.h"
#include "proc.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char tmp[PATH_MAX];

static void test_path_join(void)
{
    char out[8];
    ok(cr_path_join(out, sizeof(out), "ab", "cd") == 0);
    ok_str(out, "ab/cd");
    ok(cr_path_join(out, sizeof(out), "abc", "defg") == CR_EIO); /* 8 bytes with the NUL: one too many */
    ok_str(cr_error_last()->message, "path too long: abc/defg");
}

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

static void test_read_whole(void)
{
    char dir[PATH_MAX + 16], path[PATH_MAX + 32], *got = NULL;
    size_t len = 99;
    snprintf(dir, sizeof(dir), "%s/r", tmp);
    snprintf(path, sizeof(path), "%s/data", dir);
    ok(cr_mkdir_p(dir, 0700) == 0 && cr_write_atomic(dir, "data", "hello\0world", 11, 0600, 0) == 0);
    ok(cr_read_whole(&got, &len, path, 64) == 0 && len == 11 && got != NULL && memcmp(got, "hello\0world", 12) == 0);
    free(got);
    ok(cr_read_whole(&got, &len, path, 10) == CR_ETOOLARGE && got == NULL);
    ok(strstr(cr_error_last()->message, path) != NULL);
    snprintf(path, sizeof(path), "%s/none", dir);
    ok(cr_read_whole(&got, NULL, path, 64) == CR_ENOTFOUND && got == NULL);
    ok(cr_write_atomic(dir, "empty", "", 0, 0600, 0) == 0);
    snprintf(path, sizeof(path), "%s/empty", dir);
    ok(cr_read_whole(&got, &len, path, 64) == 0 && len == 0 && got != NULL && got[0] == '\0');
    free(got);
}

static void test_write_atomic(void)
{
    char path[PATH_MAX + 64], buf[64];
    struct stat st;
    FILE *fp;
    size_t n = 0;
    ok(cr_write_atomic(tmp, "f.txt", "one\n", 4, 0600, 1) == 0);
    ok(cr_write_atomic(tmp, "f.txt", "two\n", 4, 0600, 0) == 0); /* replaced whole */
    snprintf(path, sizeof(path), "%s/f.txt", tmp);
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    if ((fp = fopen(path, "r")) != NULL) {
        n = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
    }
    ok_bytes(buf, n, "two\n", 4);
    ok(cr_write_atomic(tmp, "g.txt", "", 0, 0644, 1) == 0);
    snprintf(path, sizeof(path), "%s/g.txt", tmp);
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644 && st.st_size == 0);
    ok(cr_write_atomic(tmp, "no/such/dir.txt", "x", 1, 0600, 1) == CR_EIO);
    ok(strstr(cr_error_last()->message, "no/such") != NULL);
    {
        /* no temp file left behind */
        char cmd[PATH_MAX + 64];
        snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -c tmp", tmp);
        fp = popen(cmd, "r");
        ok(fp != NULL && fgets(buf, sizeof(buf), fp) != NULL && strcmp(buf, "0\n") == 0);
        if (fp != NULL)
            pclose(fp);
    }
}

int main(void)
{
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "fs", 200) != 0 || cr_test_slot_add(tmp, 0) < 0)
        return 1;
    subtest("path join", test_path_join);
    subtest("mkdir -p", test_mkdir_p);
    subtest("atomic replace", test_write_atomic);
    subtest("read whole", test_read_whole);
    return done_testing();
}
