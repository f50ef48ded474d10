/* Microbenchmark of the quantizers' share of a resnet20 training step (issues 13, 14): for each
 * kind, the training forward and the backward of every activation and weight quantizer of
 * resnet20 on 28x28 inputs (per stage 6 activation tensors of the stage's shape after ReLU, and 6
 * weight tensors C x C x 3 x 3; W4A4, per tensor), nothing else. Prints per kind the best wall time
 * of BENCH_REPS steps. Not part of the test suite, and not the whole step (`lowbit bench` is).
 *
 * Wall time on a shared machine is noise; instruction counts are not: run one kind under callgrind
 * and count only the quantizer step (the function qstep):
 *   BENCH_KIND=sliced BENCH_REPS=1 valgrind --tool=callgrind --toggle-collect=qstep \
 *       /tmp/bench_quant 1 8
 * Build (from the repository root, after `make lib`):
 *   gcc -std=c11 -O2 -fopenmp -Iinclude bench/bench_quant.c build/release/liblowbit.a \
 *       $(pkg-config --libs openblas) -lcjson -lz -lm -o /tmp/bench_quant
 *   /tmp/bench_quant [threads [batch]]      default 2 threads, batch 128 */
#include "lb_core.h"
#include "lb_quant.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NSTAGE = 3, PER = 6, NQ = NSTAGE * PER };
static const int stage_c[NSTAGE] = {16, 32, 64}, stage_h[NSTAGE] = {28, 14, 7};

typedef struct kq {
    lb_quant q;
    float *p, *dp, *st;
} kq;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int bind(kq *k, lb_qkind kind, int weight, int ch, size_t inner, size_t n) {
    lb_qcfg c = {.kind = kind, .bits = 4, .is_signed = weight, .numel = weight ? (long)n : 0};
    int np = lb_quant_nparam(&c, 1), ns = lb_quant_nstate(&c, 1);
    k->p = calloc((size_t)np + 1, sizeof(float));
    k->dp = calloc((size_t)np + 1, sizeof(float));
    k->st = calloc((size_t)ns + 1, sizeof(float));
    return lb_quant_bind(&k->q, &c, ch, inner, n, k->p, k->dp, k->st) == LB_OK;
}

/* One step's quantizer work: forward (training) and backward of every quantizer. */
__attribute__((noinline)) static void qstep(kq *aq, kq *wq, int batch, float *const *ax,
                                            float *const *wx, float *y, const float *dy,
                                            float *dx) {
    for (int i = 0; i < NQ; i++) {
        lb_quant_forward(&aq[i].q, (size_t)batch, ax[i], y, 1);
        lb_quant_backward(&aq[i].q, (size_t)batch, ax[i], dy, dx, 0);
        lb_quant_forward(&wq[i].q, 1, wx[i], y, 1);
        lb_quant_backward(&wq[i].q, 1, wx[i], dy, dx, 0);
    }
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, batch = argc > 2 ? atoi(argv[2]) : 128;
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 5;
    const char *only = getenv("BENCH_KIND");
    omp_set_num_threads(threads);
    size_t amax = (size_t)batch * 16 * 28 * 28;
    float *ax[NQ], *wx[NQ], *y = malloc(amax * sizeof *y), *dy = malloc(amax * sizeof *dy);
    float *dx = malloc(amax * sizeof *dx);
    lb_rng r;
    lb_rng_seed(&r, 1);
    for (size_t i = 0; i < amax; i++) dy[i] = 1e-3f * lb_rng_normal(&r);
    for (int i = 0; i < NQ; i++) {
        int s = i / PER, c = stage_c[s], h = stage_h[s];
        size_t na = (size_t)batch * c * h * h, nw = (size_t)c * c * 9;
        ax[i] = malloc(na * sizeof(float));
        wx[i] = malloc(nw * sizeof(float));
        for (size_t j = 0; j < na; j++) {
            float v = lb_rng_normal(&r);
            ax[i][j] = v > 0 ? v : 0.0f;
        }
        for (size_t j = 0; j < nw; j++) wx[i][j] = 0.1f * lb_rng_normal(&r);
    }
    static const struct {
        const char *name;
        lb_qkind w, a;
    } kinds[] = {{"lsq", LB_Q_LSQ, LB_Q_LSQ},
                 {"roundclip", LB_Q_ROUNDCLIP, LB_Q_ROUNDCLIP},
                 {"grad-po2", LB_Q_GRAD_PO2, LB_Q_GRAD_PO2},
                 {"dorefa", LB_Q_DOREFA, LB_Q_PACT},
                 {"msqe-po2", LB_Q_MSQE_PO2, LB_Q_MSQE_PO2},
                 {"sliced", LB_Q_SLICED, LB_Q_SLICED}};
    printf("quantizer work of a resnet20 step (28x28, batch %d, %d threads, best of %d)\n", batch,
           threads, reps);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (only && strcmp(only, kinds[k].name) != 0) continue;
        kq aq[NQ], wq[NQ];
        for (int i = 0; i < NQ; i++) {
            int s = i / PER, c = stage_c[s], h = stage_h[s];
            if (!bind(&aq[i], kinds[k].a, 0, c, (size_t)h * h, (size_t)c * h * h) ||
                !bind(&wq[i], kinds[k].w, 1, c, (size_t)c * 9, (size_t)c * c * 9)) {
                fprintf(stderr, "bind %s: %s\n", kinds[k].name, lb_error_msg());
                return 1;
            }
        }
        for (int i = 0; i < NQ; i++) { /* the inits, outside qstep */
            lb_quant_forward(&aq[i].q, (size_t)batch, ax[i], y, 1);
            lb_quant_forward(&wq[i].q, 1, wx[i], y, 1);
        }
        double best = 1e30;
        for (int t = 0; t < reps; t++) {
            double t0 = now();
            qstep(aq, wq, batch, ax, wx, y, dy, dx);
            double dt = now() - t0;
            best = dt < best ? dt : best;
        }
        printf("%-10s %8.2f ms\n", kinds[k].name, 1e3 * best);
        for (int i = 0; i < NQ; i++) {
            free(aq[i].p), free(aq[i].dp), free(aq[i].st);
            free(wq[i].p), free(wq[i].dp), free(wq[i].st);
        }
    }
    return 0;
}
