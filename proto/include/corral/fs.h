/* fs.h — file-system helpers the binaries share. */
#ifndef CORRAL_FS_H
#define CORRAL_FS_H

#include <sys/types.h>

/* Makes dir and every missing parent with mode (existing ones are left as they are), like `mkdir -p`. Returns 0, or
 * CR_EIO with cr_error_last() naming the directory that could not be made and why (errno is kept). */
int cr_mkdir_p(const char *dir, mode_t mode);

#endif
