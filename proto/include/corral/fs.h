/* fs.h — file-system helpers the binaries share. */
#ifndef CORRAL_FS_H
#define CORRAL_FS_H

#include <stddef.h>
#include <sys/types.h>

/* Makes dir and every missing parent with mode (existing ones are left as they are), like `mkdir -p`. Returns 0, or
 * CR_EIO with cr_error_last() naming the directory that could not be made and why (errno is kept). */
int cr_mkdir_p(const char *dir, mode_t mode);

/* Replaces dir/name with data[0..len) whole: a temp file beside it (mode), then rename; with durable, the file and
 * then dir are fsync'd, so that after a crash the new content or the old one is there, never a part. No temp file
 * is left behind. Returns 0, or CR_EIO with cr_error_last() naming the file and why. */
int cr_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode, int durable);

/* Reads the whole file at path (at most max bytes) into *out, malloc'd and NUL-terminated (the caller frees it), and
 * its length into *outlen (may be NULL). Returns 0, CR_ENOTFOUND (no such file), CR_ETOOLARGE, CR_ENOMEM or CR_EIO,
 * cr_error_last() naming the file; *out is NULL then. */
int cr_read_whole(char **out, size_t *outlen, const char *path, size_t max);

/* Writes "a/b" into out. Returns 0, or CR_EIO ("path too long: a/b") when it does not fit. */
int cr_path_join(char *out, size_t outlen, const char *a, const char *b);

/* fsyncs a directory (after a rename or unlink in it). Returns 0 or CR_EIO. */
int cr_fsync_dir(const char *dir);

#endif
