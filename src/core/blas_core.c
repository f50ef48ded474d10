/* Which OpenBLAS kernels this process runs, and which it should. Not a BLAS: it only asks the
 * library linked in (through weak symbols, so any other CBLAS links and is left alone).
 *
 * Why: OpenBLAS picks its kernels once, when it is loaded, from the CPU's model number. A CPU
 * newer than the installed OpenBLAS (Debian 12 ships 0.3.21; Intel family 6 model 207, Emerald
 * Rapids, is unknown to it) gets the generic "Prescott" SSE3 kernels: sgemm runs 3-5x slower
 * than the AVX-512 ones on the same core (docs/design.md, "Threads and BLAS"). The choice can
 * only be changed before the library loads (OPENBLAS_CORETYPE), so the CLI re-executes itself
 * with the name returned here; library users set the variable themselves. */
#include "lb_core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char *openblas_get_corename(void) __attribute__((weak));

/* OpenBLAS targets without AVX2 kernels: the fallbacks it uses for CPUs it cannot name. */
static const char *const k_slow[] = {"Katmai",  "Coppermine", "Northwood",   "Prescott",
                                     "Banias",  "Core2",      "Penryn",      "Dunnington",
                                     "Nehalem", "Atom",       "Sandybridge", "Unknown"};

const char *lb_blas_core_choice(const char *core, int avx2, int avx512, int avx512_bf16) {
    if (!core) return NULL;
    int slow = 0;
    for (size_t i = 0; i < sizeof k_slow / sizeof *k_slow; i++)
        if (strcasecmp(core, k_slow[i]) == 0) slow = 1;
    if (!slow) return NULL;
    if (avx512) return avx512_bf16 ? "Cooperlake" : "SkylakeX";
    if (avx2) return "Haswell";
    return NULL;
}

const char *lb_blas_core(void) {
    return openblas_get_corename ? openblas_get_corename() : NULL;
}

const char *lb_blas_core_better(void) {
    const char *env = getenv("OPENBLAS_CORETYPE");
    if (env && env[0]) return NULL; /* the user's choice stands */
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    /* SkylakeX's kernels need the F, BW, VL, DQ and CD subsets */
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512cd");
    int bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
    return lb_blas_core_choice(lb_blas_core(), avx2, avx512, bf16);
}
