/* Microbenchmark of the memory-bound passes of a resnet20 training step at batch 128: batch norm
 * (train forward with fused ReLU, backward with the ReLU mask) and the LSQ activation quantizer
 * (forward, backward with the step reduction), on the three stage shapes. Prints the best wall
 * time of BENCH_REPS calls and the bytes moved per second (each float read or written counted
 * once). Not part of the test suite; on a shared machine run it several times.
 *
 * Build (from the repository root, after `make lib`):
 *   gcc -std=c11 -O2 -fopenmp -Iinclude bench/bench_elem.c build/release/liblowbit.a \
 *       $(pkg-config --libs openblas) -lcjson -lz -lm -o /tmp/bench_elem
 *   /tmp/bench_elem [threads]      default 2 */
#include "lb_core.h"
#include "lb_ops.h"
#include "lb_quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define TIME(label, bytes, call)                                                                   \
    do {                                                                                           \
        double best = 1e30;                                                                        \
        for (int r = 0; r < reps; r++) {                                                           \
            double t0 = now();                                                                     \
            call;                                                                                  \
            double t = now() - t0;                                                                 \
            if (t < best) best = t;                                                                \
        }                                                                                          \
        printf("  %-22s %7.3f ms  %6.1f GB/s\n", label, best * 1e3, (bytes) / best * 1e-9);        \
    } while (0)

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    const int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 20;
    lb_threads_set(threads);
    const int N = 128, shapes[3][2] = {{16, 28}, {32, 14}, {64, 7}};
    for (int s = 0; s < 3; s++) {
        const int C = shapes[s][0], H = shapes[s][1];
        const size_t n = (size_t)N * C * H * H, B = n * sizeof(float);
        float *x = malloc(B), *y = malloc(B), *dy = malloc(B), *dx = malloc(B);
        float *par = calloc(8 * (size_t)C, sizeof(float));
        if (!x || !y || !dy || !dx || !par) return 1;
        uint64_t st = 1;
        for (size_t i = 0; i < n; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((st >> 40) % 2000) / 500.0f - 1.0f;
            dy[i] = (float)((st >> 20) % 2000) / 1000.0f - 1.0f;
        }
        float *gamma = par, *beta = par + C, *mean = par + 2 * C, *invstd = par + 3 * C;
        float *rm = par + 4 * C, *rv = par + 5 * C, *dg = par + 6 * C, *db = par + 7 * C;
        for (int c = 0; c < C; c++) gamma[c] = 1.0f, rv[c] = 1.0f;
        printf("%dx%dx%dx%d (%.1f MB a tensor), %d threads\n", N, C, H, H, B / 1e6, threads);
        lb_bn_desc d = {.n = N, .c = C, .hw = H * H, .eps = 1e-5f, .momentum = 0.1f, .act = 1};
        TIME("bn fwd train+relu", 3.0 * B,
             lb_bn_forward_train(&d, x, gamma, beta, y, mean, invstd, rm, rv));
        TIME("bn bwd +relu mask", 6.0 * B,
             lb_bn_backward_act(&d, x, y, gamma, mean, invstd, dy, dx, 0, dg, db));
        lb_quant q;
        lb_qcfg cfg = {.kind = LB_Q_LSQ, .bits = 4, .is_signed = 0, .per_channel = 0};
        float qp[2] = {0}, qd[2] = {0}, qs[2] = {0};
        if (lb_quant_bind(&q, &cfg, C, (size_t)H * H, n, qp, qd, qs) != LB_OK) return 1;
        lb_quant_forward(&q, N, y, dx, 1); /* initializes the step */
        TIME("lsq fwd", 2.0 * B, lb_quant_forward(&q, N, y, dx, 1));
        TIME("lsq bwd (+step grad)", 3.0 * B, lb_quant_backward(&q, N, y, dy, dx, 0));
        free(x), free(y), free(dy), free(dx), free(par);
    }
    return 0;
}
