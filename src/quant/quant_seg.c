/* The baseline (SSE2) instance of the quantizer segment kernels and the run-time choice between
 * it and the AVX2 / AVX-512 builds of the same source (quant_seg_avx2.c, quant_seg_avx512.c). */
#define LB_QS_SUFFIX base
#include "quant_seg_impl.h"

#include <stdlib.h>

/* Measured on the target (Zen 4, 2 threads, hot in L3): the AVX-512 build runs the fake-quant
 * forward 2.5x and the backward 2x faster than SSE2; the division by the step is the bottleneck.
 * Chosen once; the answer cannot change while the process runs. */
const lb_qseg_kernels *lb_qseg_get(void) {
    static const lb_qseg_kernels *chosen;
    const lb_qseg_kernels *k = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (k) return k;
    const char *e = getenv("LOWBIT_QUANT_SIMD");
    if (e && e[0] == '0')
        k = &lb_qseg_base;
    else if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        k = &lb_qseg_avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        k = &lb_qseg_avx2;
    else
        k = &lb_qseg_base;
    __atomic_store_n(&chosen, k, __ATOMIC_RELEASE);
    return k;
}
