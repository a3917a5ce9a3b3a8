/* standalone.c — runs a libFuzzer target over files and directories, so corpora replay as ordinary tests under gcc. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (fp == NULL) {
        perror(path);
        return -1;
    }
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        free(buf);
        return -1;
    }
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

static int run_path(const char *path, int *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        int rc = 0;
        if (d == NULL)
            return -1;
        while ((e = readdir(d)) != NULL) {
            char child[4096];
            if (e->d_name[0] == '.')
                continue;
            snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
            if (run_path(child, count) != 0)
                rc = -1;
        }
        closedir(d);
        return rc;
    }
    ++*count;
    return run_file(path);
}

int main(int argc, char **argv)
{
    int count = 0, rc = 0;
    for (int i = 1; i < argc; ++i)
        if (run_path(argv[i], &count) != 0)
            rc = 1;
    printf("%s: %d inputs replayed%s\n", argv[0], count, rc ? " (with errors)" : "");
    return rc != 0 || count == 0;
}
