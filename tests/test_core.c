/* Tests of lb_core: arena planning, RNG determinism and range, error messages, NaN trap, and the
 * rule choosing OpenBLAS kernels. */
#include "lb_core.h"
#include "lb_test.h"

#include <string.h>

int main(void) {
    lb_arena a;
    lb_arena_init_counting(&a);
    CHECK(lb_arena_alloc(&a, 10) == NULL, "counting arena returns NULL");
    lb_arena_alloc(&a, 100);
    CHECK(a.used == 64 + 128, "counted %zu", a.used);
    size_t need = a.used;
    CHECK(lb_arena_reserve(&a, need) == LB_OK, "reserve");
    char *p = lb_arena_alloc(&a, 10), *q = lb_arena_alloc(&a, 100);
    CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "aligned");
    CHECK(lb_arena_alloc(&a, 1) == NULL, "overflow gives NULL");
    lb_arena_release(&a);

    lb_rng r1, r2;
    lb_rng_seed(&r1, 42);
    lb_rng_seed(&r2, 42);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= lb_rng_u64(&r1) == lb_rng_u64(&r2);
    CHECK(same, "same seed same stream");
    double sum = 0, sq = 0;
    int inrange = 1;
    for (int i = 0; i < 100000; i++) {
        float u = lb_rng_uniform(&r1);
        inrange &= u >= 0 && u < 1;
        float z = lb_rng_normal(&r1);
        sum += z;
        sq += z * z;
        inrange &= lb_rng_below(&r1, 7) < 7;
    }
    CHECK(inrange, "uniform in [0,1), below in range");
    CHECK(fabs(sum / 100000) < 0.02 && fabs(sq / 100000 - 1) < 0.02, "normal moments %g %g",
          sum / 100000, sq / 100000);
    lb_rng_derive(&r1, 1, 2, 3);
    lb_rng_derive(&r2, 1, 2, 4);
    CHECK(lb_rng_u64(&r1) != lb_rng_u64(&r2), "derived streams differ");

    CHECK(lb_error_set(LB_EIO, "%s: bad", "f.bin") == LB_EIO, "status returned");
    CHECK(strcmp(lb_error_msg(), "f.bin: bad") == 0, "message kept");

    float v[3] = {1, NAN, 2};
    lb_trap_nan_set(0);
    CHECK(lb_check_finite("t", v, 3) == LB_OK, "trap off");
    lb_trap_nan_set(1);
    CHECK(lb_check_finite("t", v, 3) == LB_ENUMERIC, "trap on");
    CHECK(strstr(lb_error_msg(), "index 1") != NULL, "names index: %s", lb_error_msg());

    /* the BLAS-kernel rule: only a pre-AVX2 fallback on a CPU that has more is replaced */
    const char *c;
    c = lb_blas_core_choice("Prescott", 1, 1, 1);
    CHECK(c && strcmp(c, "Cooperlake") == 0, "Prescott on AVX-512+BF16: %s", c ? c : "NULL");
    c = lb_blas_core_choice("Prescott", 1, 1, 0);
    CHECK(c && strcmp(c, "SkylakeX") == 0, "Prescott on AVX-512: %s", c ? c : "NULL");
    c = lb_blas_core_choice("prescott", 1, 0, 0);
    CHECK(c && strcmp(c, "Haswell") == 0, "prescott on AVX2: %s", c ? c : "NULL");
    c = lb_blas_core_choice("Sandybridge", 1, 0, 0);
    CHECK(c && strcmp(c, "Haswell") == 0, "Sandybridge on AVX2: %s", c ? c : "NULL");
    CHECK(lb_blas_core_choice("Prescott", 0, 0, 0) == NULL, "an SSE-only CPU keeps Prescott");
    CHECK(lb_blas_core_choice("SkylakeX", 1, 1, 1) == NULL, "a known core is kept");
    CHECK(lb_blas_core_choice("Zen", 1, 0, 0) == NULL, "Zen is kept");
    CHECK(lb_blas_core_choice(NULL, 1, 1, 1) == NULL, "not OpenBLAS: nothing to change");
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    CHECK(lb_blas_core_better() == NULL, "a set OPENBLAS_CORETYPE stands");
    unsetenv("OPENBLAS_CORETYPE");
    TEST_MAIN_END("test_core");
}
