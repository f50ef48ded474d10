/* Thread control: OpenMP for lowbit's own loops, BLAS pinned to one thread per caller. */
#include "lb_core.h"

#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS-specific; weak so that any other CBLAS still links (then BLAS threading is the
 * library's own business, e.g. a serial reference BLAS). */
extern void openblas_set_num_threads(int) __attribute__((weak));

static int g_threads = 1;

int lb_threads_set(int n) {
    if (n < 1) n = 1;
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    n = 1;
#endif
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    g_threads = n;
    return n;
}

int lb_threads_get(void) {
    return g_threads;
}

static int g_trap = -1;

void lb_trap_nan_set(int on) {
    g_trap = on;
}

int lb_trap_nan_enabled(void) {
    if (g_trap < 0) {
        const char *e = getenv("LOWBIT_TRAP_NAN");
        g_trap = e && e[0] && e[0] != '0';
    }
    return g_trap;
}

lb_status lb_check_finite(const char *tag, const float *x, size_t n) {
    if (!lb_trap_nan_enabled()) return LB_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return lb_error_set(LB_ENUMERIC, "%s: non-finite value %g at index %zu", tag, x[i], i);
    return LB_OK;
}
