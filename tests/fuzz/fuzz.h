/* fuzz.h — what the fuzz targets share: the libFuzzer entry point and CHECK, an assertion that stays on in every
 * build (a failed one aborts, which libFuzzer and the corpus replay report with the input). */
#ifndef CORRAL_FUZZ_H
#define CORRAL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define CHECK(x)                                                                                                       \
    do {                                                                                                               \
        if (!(x))                                                                                                      \
            abort();                                                                                                   \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
