/* libFuzzer target for the Pareto results JSON check of `lowbit plot pareto`; not a test. Input:
 * the file bytes. A refusal must name the file; an accepted file is re-checked equal. */
#include "pareto_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *t = malloc(size + 1);
    if (!t) return 0;
    memcpy(t, data, size);
    t[size] = 0;
    char why[512] = "";
    int ok = pareto_check("<pareto>", t, why, sizeof why);
    if (!ok && strncmp(why, "<pareto>: ", 10) != 0) __builtin_trap();
    if (ok && pareto_check("<pareto>", t, why, sizeof why) != 1) __builtin_trap();
    free(t);
    return 0;
}
