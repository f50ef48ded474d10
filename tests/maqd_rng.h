/* The MaQD tests' random numbers (test_maqd.c, test_maqd_nets.c): a small LCG, uniform and
 * Box-Muller normal, in double. Its own generator, not lb_rng, so the references these tests
 * compute do not depend on the library's code under test. Header-only, one state per binary. */
#ifndef LB_TEST_MAQD_RNG_H
#define LB_TEST_MAQD_RNG_H

#include <math.h>

static unsigned g_rng = 2002u;
static inline double urand(void) { /* [0, 1) */
    g_rng = g_rng * 1664525u + 1013904223u;
    return (g_rng >> 8) / 16777216.0;
}
static inline double nrand(void) {
    double u = urand() + 1e-12, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

#endif
