/* Microbenchmark of the fast conv2d kernels on the conv shapes of the peer models (cnn, resnet20;
 * shared/peer/peer_models.py): forward, backward-data and backward-weights timed separately, in ms,
 * GFLOP/s and as a fraction of 194 GFLOP/s (OpenBLAS sgemm's 2-thread ceiling on the target
 * machine, shared/peer/RESULTS.md), then the conv time of one training step per model. Not part of
 * the test suite.
 *
 * Build (from the repository root; the Makefile does not build bench/), with the library's objects
 * (`make lib`, then link build/release/liblowbit.a) or standalone, giving the SIMD files the same
 * ISA flags the Makefile gives them:
 *   F="-std=c11 -O3 -g -D_GNU_SOURCE -fopenmp -Iinclude $(pkg-config --cflags openblas)"
 *   A5="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma"; O=/tmp/bench_conv.d; mkdir -p $O
 *   gcc $F $A5 -c src/ops/conv2d_direct_avx512.c -o $O/a.o
 *   gcc $F $A5 -c src/ops/conv2d_dw_avx512.c -o $O/b.o
 *   gcc $F $A5 -c src/ops/conv2d_wino_avx512.c -o $O/d.o
 *   gcc $F -mavx2 -mfma -c src/ops/conv2d_dw_avx2.c -o $O/c.o
 *   gcc $F bench/bench_conv.c src/core/arena.c src/core/error.c src/core/rng.c \
 *       src/core/threads.c src/ops/conv2d.c src/ops/conv2d_ref.c src/ops/linear.c $O/[abcd].o \
 *       -o /tmp/bench_conv $(pkg-config --libs openblas) -lm
 *   /tmp/bench_conv [threads [batch...]]     defaults: 2 threads, batches 128 and 32
 * Environment: BENCH_ONLY=<substring of a layer name>, BENCH_REPS=<timed calls per op>,
 * BENCH_CPU=1 (CPU time instead of wall time), BENCH_DW=1 (also MobileNet-style depthwise shapes),
 * LOWBIT_CONV_SIMD=0 (the GEMM formulation), LOWBIT_CONV_WINOGRAD=0 (direct kernels, no Winograd).
 * Wall times are the best of the timed calls; on a shared machine, run it several times. */
#include "lb_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CEILING 194.0

typedef struct layer {
    const char *model, *name;
    int cin, hw, cout, stride, count, first; /* first: no dX (the input is the image) */
    int groups;                              /* depthwise rows: groups = cin */
} layer;

static const layer layers[] = {
    {"cnn", "conv1 1->32 @28", 1, 28, 32, 1, 1, 1, 1},
    {"cnn", "conv2 32->32 @28", 32, 28, 32, 1, 1, 0, 1},
    {"cnn", "conv3 32->64 @14", 32, 14, 64, 1, 1, 0, 1},
    {"cnn", "conv4 64->64 @14", 64, 14, 64, 1, 1, 0, 1},
    {"resnet20", "stem 1->16 @28", 1, 28, 16, 1, 1, 1, 1},
    {"resnet20", "s1 16->16 @28 x6", 16, 28, 16, 1, 6, 0, 1},
    {"resnet20", "t2 16->32 s2 28->14", 16, 28, 32, 2, 1, 0, 1},
    {"resnet20", "s2 32->32 @14 x5", 32, 14, 32, 1, 5, 0, 1},
    {"resnet20", "t3 32->64 s2 14->7", 32, 14, 64, 2, 1, 0, 1},
    {"resnet20", "s3 64->64 @7 x5", 64, 7, 64, 1, 5, 0, 1},
    /* BENCH_DW=1: MobileNet-style 3x3 depthwise convs (not in the peer models) */
    {"depthwise", "dw 32 @112", 32, 112, 32, 1, 1, 0, 32},
    {"depthwise", "dw 64 s2 112->56", 64, 112, 64, 2, 1, 0, 64},
    {"depthwise", "dw 128 @56", 128, 56, 128, 1, 1, 0, 128},
    {"depthwise", "dw 256 @28", 256, 28, 256, 1, 1, 0, 256},
    {"depthwise", "dw 512 @14", 512, 14, 512, 1, 1, 0, 512},
};

/* BENCH_CPU=1 times CPU seconds instead of wall seconds (the calling thread's with 1 thread, the
 * process's otherwise): a kernel's per-core cost even while other jobs share the machine. */
static clockid_t clk = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* best-of seconds of `reps` calls of op 0 forward, 1 backward-data, 2 backward-weights */
static double time_op(int op, const lb_conv2d_desc *d, const float *x, const float *w, float *y,
                      const float *dy, float *dx, float *dw, float *sc, int reps) {
    double t[256];
    if (reps > 256) reps = 256;
    if (reps < 1) reps = 1;
    for (int r = -2; r < reps; r++) { /* two warm-up calls */
        double t0 = now();
        if (op == 0) lb_conv2d_forward(d, x, w, NULL, y, sc);
        if (op == 1) lb_conv2d_backward(d, x, w, dy, dx, 0, NULL, NULL, sc);
        if (op == 2) lb_conv2d_backward(d, x, w, dy, NULL, 0, dw, NULL, sc);
        if (r >= 0) t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmpd);
    return t[0]; /* the minimum: other jobs share this 2-core machine */
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 2;
    int batches[8] = {128, 32}, nb = 2;
    if (argc > 2) {
        nb = 0;
        for (int i = 2; i < argc && nb < 8; i++) batches[nb++] = atoi(argv[i]);
    }
    const char *only = getenv("BENCH_ONLY"); /* substring of a layer name */
    const char *cpu = getenv("BENCH_CPU");
    if (cpu && cpu[0] == '1')
        clk = threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_PROCESS_CPUTIME_ID;
    const char *re = getenv("BENCH_REPS"); /* timed calls per op (default 11, 21 below batch 128) */
    const char *dwe = getenv("BENCH_DW");
    const int with_dw = dwe && dwe[0] == '1';
    lb_threads_set(threads);
    lb_rng rng;
    lb_rng_seed(&rng, 7);
    for (int bi = 0; bi < nb; bi++) {
        const int batch = batches[bi];
        printf("batch %d, %d threads, %s time; GF/s and %% of %.0f GF/s\n", batch, threads,
               clk == CLOCK_MONOTONIC ? "wall" : "CPU", CEILING);
        printf("%-22s %22s %22s %22s\n", "layer", "forward ms GF/s %", "bwd-data ms GF/s %",
               "bwd-weights ms GF/s %");
        const char *model = "";
        double total = 0, flops_total = 0;
        for (size_t li = 0; li <= sizeof layers / sizeof layers[0]; li++) {
            const layer *L = li < sizeof layers / sizeof layers[0] ? &layers[li] : NULL;
            if ((!L || strcmp(L->model, model)) && model[0] && total > 0) {
                printf("%-22s total conv per step: %.1f ms, %.1f GF/s (%.0f%%)\n\n", model,
                       1e3 * total, flops_total / total * 1e-9,
                       100 * flops_total / total * 1e-9 / CEILING);
            }
            if (!L || strcmp(L->model, model)) total = flops_total = 0;
            if (!L) break;
            model = L->model;
            if (only && !strstr(L->name, only)) continue;
            if (L->groups > 1 && !with_dw) continue;
            lb_conv2d_desc d;
            if (lb_conv2d_desc_init(&d, batch, L->cin, L->hw, L->hw, L->cout, 3, L->stride, 1,
                                    L->groups) != LB_OK) {
                fprintf(stderr, "%s\n", lb_error_msg());
                return 1;
            }
            const size_t nx = (size_t)batch * d.cin * d.h * d.w,
                         ny = (size_t)batch * d.cout * d.oh * d.ow,
                         nw = (size_t)d.cout * (d.cin / d.groups) * 9;
            float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4),
                  *dy = malloc(ny * 4), *dx = malloc(nx * 4), *dw = malloc(nw * 4);
            float *sc = malloc(lb_conv2d_scratch_floats(&d, threads) * 4 + 64);
            for (size_t i = 0; i < nx; i++) x[i] = lb_rng_normal(&rng);
            for (size_t i = 0; i < ny; i++) dy[i] = lb_rng_normal(&rng);
            for (size_t i = 0; i < nw; i++) w[i] = lb_rng_normal(&rng);
            const double fl = 2.0 * batch * d.cout * d.oh * d.ow * (d.cin / d.groups) * 9;
            const int reps = re ? atoi(re) : batch >= 128 ? 11 : 21;
            printf("%-22s", L->name);
            for (int op = 0; op < 3; op++) {
                if (op == 1 && L->first) {
                    printf(" %22s", "-");
                    continue;
                }
                const double s = time_op(op, &d, x, w, y, dy, dx, dw, sc, reps);
                printf(" %7.2f %6.1f %5.0f%%", 1e3 * s, fl / s * 1e-9,
                       100 * fl / s * 1e-9 / CEILING);
                total += s * L->count;
                flops_total += fl * L->count;
            }
            printf("\n");
            free(x), free(w), free(y), free(dy), free(dx), free(dw), free(sc);
        }
    }
    return 0;
}
