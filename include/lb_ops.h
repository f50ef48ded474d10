/* lb_ops: float32 NCHW kernels, each a forward/backward pair. Every op has a scalar reference
 * (`_ref`) and a dispatching fast entry point (OpenMP + BLAS + SIMD where it pays); tests hold the
 * fast one to the reference. Kernels never allocate: callers pass scratch sized by the matching
 * `_scratch_floats`. They know nothing of graphs, parameters or quantizers.
 *
 * Gradient conventions: parameter gradients (dw, db, dgamma, ...) are OVERWRITTEN; input
 * gradients dx are overwritten when dx_acc == 0 and accumulated (dx += ...) when dx_acc != 0, so a
 * tensor consumed twice (a residual input) needs no extra pass. A NULL gradient pointer skips that
 * gradient. */
#ifndef LB_OPS_H
#define LB_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "lb_core.h"

/* ---- conv2d ------------------------------------------------------------------------------ */
typedef struct lb_conv2d_desc {
    int n, cin, h, w;        /* input x[n][cin][h][w] */
    int cout, kh, kw;        /* weight w[cout][cin/groups][kh][kw] */
    int stride, pad, groups; /* same stride/pad on both axes */
    int oh, ow;              /* output y[n][cout][oh][ow], set by lb_conv2d_desc_init */
    /* Optional (NULL after lb_conv2d_desc_init): the fast forward also writes the moments of
     * every output plane (lb_bn_plane_moments) to moments[n][cout][2], while the plane is still
     * in cache, for a batch norm that reads y next (lb_bn_desc.moments). */
    double *moments;
} lb_conv2d_desc;

lb_status lb_conv2d_desc_init(lb_conv2d_desc *d, int n, int cin, int h, int w, int cout, int k,
                              int stride, int pad, int groups);
/* Scratch for the fast kernels with `nthreads` workers (the reference needs none). */
size_t lb_conv2d_scratch_floats(const lb_conv2d_desc *d, int nthreads);
/* y = conv(x, w) + b (b may be NULL). */
void lb_conv2d_forward(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                       float *y, float *scratch);
void lb_conv2d_backward(const lb_conv2d_desc *d, const float *x, const float *w, const float *dy,
                        float *dx, int dx_acc, float *dw, float *db, float *scratch);
void lb_conv2d_forward_ref(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                           float *y);
void lb_conv2d_backward_ref(const lb_conv2d_desc *d, const float *x, const float *w,
                            const float *dy, float *dx, int dx_acc, float *dw, float *db);

/* ---- linear: x[n][in], w[out][in], b[out], y[n][out] ---------------------------------------- */
void lb_linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y);
void lb_linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                        float *dx, int dx_acc, float *dw, float *db);
void lb_linear_forward_ref(int n, int in, int out, const float *x, const float *w, const float *b,
                           float *y);
void lb_linear_backward_ref(int n, int in, int out, const float *x, const float *w, const float *dy,
                            float *dx, int dx_acc, float *dw, float *db);

/* ---- batch norm over (n, hw) per channel c ----------------------------------------------------
 */
typedef struct lb_bn_desc {
    int n, c, hw;
    float eps;      /* 1e-5 */
    float momentum; /* 0.1, PyTorch convention: run = (1-m)*run + m*batch, unbiased running var */
    int act;        /* activation fused on the output: 0 none, 1 ReLU, 2 ReLU6 (zero-init: none) */
    /* Training forward: per-plane moments of x, [n][c][2] as lb_bn_plane_moments writes them
     * (e.g. by the conv that produced x, lb_conv2d_desc.moments), or NULL to compute them. */
    const double *moments;
    /* A residual add folded in (ResNet's bn2 + identity, then ReLU): forward y = act(BN(x) + res)
     * with lb_add_forward's arithmetic and comparisons; backward (act != 0 only) also writes the
     * masked gradient to dres (adds it with dres_acc), as lb_add_backward gives its operand b.
     * NULL: none. */
    const float *res;
    float *dres;
    int dres_acc;
} lb_bn_desc;

/* mean and M2 (sum of squared deviations from it) of one plane of hw floats, into out[0..1]. The
 * fast training forward merges these per channel in image order, wherever they were computed. */
void lb_bn_plane_moments(const float *p, size_t hw, double *out);

/* Training mode: batch statistics; saves mean[c] and invstd[c] for backward and updates the
 * running statistics (run_mean/run_var may be NULL to skip). */
void lb_bn_forward_train(const lb_bn_desc *d, const float *x, const float *gamma, const float *beta,
                         float *y, float *mean, float *invstd, float *run_mean, float *run_var);
void lb_bn_forward_eval(const lb_bn_desc *d, const float *x, const float *gamma, const float *beta,
                        const float *run_mean, const float *run_var, float *y);
/* dx may be dy itself when dx_acc is 0 (the graph runs BN's backward in place that way). */
void lb_bn_backward(const lb_bn_desc *d, const float *x, const float *gamma, const float *mean,
                    const float *invstd, const float *dy, float *dx, int dx_acc, float *dgamma,
                    float *dbeta);
/* Backward of BN followed by its fused activation (d->act): y is the activated output, dy the
 * gradient with respect to it, OVERWRITTEN with the masked gradient (the mask is applied plane by
 * plane while the plane is hot, instead of a separate pass of the activation's backward). */
void lb_bn_backward_act(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                        const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                        float *dgamma, float *dbeta);
void lb_bn_forward_train_ref(const lb_bn_desc *d, const float *x, const float *gamma,
                             const float *beta, float *y, float *mean, float *invstd,
                             float *run_mean, float *run_var);
void lb_bn_backward_ref(const lb_bn_desc *d, const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, int dx_acc, float *dgamma,
                        float *dbeta);

/* ---- Layer-Batch Norm (MaQD, methods.md sec. 5, our design; src/ops/lbn.c) ------------------
 * Training: statistics per SAMPLE over (c, hw): mu_n, var_n (biased), y = gamma_c (x - mu_n) /
 * sqrt(var_n + eps) + beta_c, with d->act / d->res as lb_bn_forward_train (d->moments is not
 * read); saves mean[n] and invstd[n] (batch entries, not channels; required) and moves EVERY
 * channel of
 * the running statistics by the batch average of mu_n and of the unbiased var_n (momentum as BN),
 * so that evaluation is lb_bn_forward_eval with them: a per-channel affine, folded like BN's. */
void lb_lbn_forward_train(const lb_bn_desc *d, const float *x, const float *gamma,
                          const float *beta, float *y, float *mean, float *invstd, float *run_mean,
                          float *run_var);
/* Backward; with d->act, y is the activated output and dy is OVERWRITTEN with the masked gradient
 * (and written to d->dres when a residual add is folded in), as lb_bn_backward_act. dx may be dy
 * itself when dx_acc is 0. dgamma/dbeta are overwritten (NULL: skipped). */
void lb_lbn_backward(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                     const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                     float *dgamma, float *dbeta);
/* The scalar references (serial, the same sums in the same order: the fast kernels above run
 * them over threads and must give the same bits). */
void lb_lbn_forward_train_ref(const lb_bn_desc *d, const float *x, const float *gamma,
                              const float *beta, float *y, float *mean, float *invstd,
                              float *run_mean, float *run_var);
void lb_lbn_backward_ref(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                         const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                         float *dgamma, float *dbeta);

/* ---- weight standardization (MaQD, our design; src/ops/wstd.c) --------------------------------
 * Per output channel of w[cout][k]: ws = (w - mean) / sqrt(var + LB_WSTD_EPS), var biased over
 * the k fan-in weights; saves mean/invstd [cout] (either may be NULL). Backward from dws (the
 * gradient with respect to ws) to dw, exact: dw = invstd (dws - mean(dws) - ws mean(dws ws)).
 * Scalar loops in double: weights are small next to activations. */
#define LB_WSTD_EPS 1e-5
void lb_wstd_forward(int cout, size_t k, const float *w, float *ws, float *mean, float *invstd);
void lb_wstd_backward(int cout, size_t k, const float *ws, const float *invstd, const float *dws,
                      float *dw);

/* ---- pointwise activations (backward reads the OUTPUT y, so they may run in place) ------------
 */
void lb_relu_forward(size_t n, const float *x, float *y);
void lb_relu_backward(size_t n, const float *y, const float *dy, float *dx, int dx_acc);
void lb_relu6_forward(size_t n, const float *x, float *y);
void lb_relu6_backward(size_t n, const float *y, const float *dy, float *dx, int dx_acc);

/* ---- pooling ----------------------------------------------------------------------------------
 */
typedef struct lb_pool_desc {
    int n, c, h, w, k, stride, pad;
    int oh, ow; /* set by lb_pool_desc_init (floor mode) */
} lb_pool_desc;

lb_status lb_pool_desc_init(lb_pool_desc *d, int n, int c, int h, int w, int k, int stride,
                            int pad);
/* argmax[n*c*oh*ow] holds the flat h*w index of each window's maximum (first on ties). Padding
 * counts as -inf. */
void lb_maxpool_forward(const lb_pool_desc *d, const float *x, float *y, int32_t *argmax);
void lb_maxpool_backward(const lb_pool_desc *d, const int32_t *argmax, const float *dy, float *dx,
                         int dx_acc);
/* Average over the window including padding (PyTorch count_include_pad=True). */
void lb_avgpool_forward(const lb_pool_desc *d, const float *x, float *y);
void lb_avgpool_backward(const lb_pool_desc *d, const float *dy, float *dx, int dx_acc);
/* Global average pool: x[n][c][hw] -> y[n][c]. */
void lb_gap_forward(int n, int c, int hw, const float *x, float *y);
void lb_gap_backward(int n, int c, int hw, const float *dy, float *dx, int dx_acc);

/* ---- residual pieces --------------------------------------------------------------------------
 */
/* y = act(a + b), act 0 (none), 1 (ReLU) or 2 (ReLU6) with lb_relu_forward's / lb_relu6_forward's
 * comparisons, so a fused add+activation gives the bits of the two ops run apart. y may be a or b.
 */
void lb_add_forward(size_t n, int act, const float *a, const float *b, float *y);
/* Backward of y = act(a + b) in one pass: g = dy masked by the activation (lb_relu_backward's
 * rule on y); da and db receive g (or accumulate it with *_acc); either may be NULL. da may be dy
 * itself (an add computed in place over a): then da_acc must be 0 and dy ends up holding g. */
void lb_add_backward(size_t n, int act, const float *y, float *dy, float *da, int da_acc, float *db,
                     int db_acc);
/* ResNet option-A shortcut: x[n][cin][h][w] subsampled by `stride` and zero-padded to cout
 * channels (pad cin..: (cout-cin)/2 channels before, the rest after). y[n][cout][oh][ow]. */
void lb_shortcut_forward(int n, int cin, int h, int w, int cout, int stride, const float *x,
                         float *y);
void lb_shortcut_backward(int n, int cin, int h, int w, int cout, int stride, const float *dy,
                          float *dx, int dx_acc);

/* ---- dropout (inverted: kept values scaled by 1/(1-p)) -------------------------------------- */
void lb_dropout_forward(size_t n, float p, const float *x, float *y, uint8_t *mask, lb_rng *rng);
void lb_dropout_backward(size_t n, float p, const uint8_t *mask, const float *dy, float *dx,
                         int dx_acc);

/* ---- softmax cross-entropy with label smoothing ---------------------------------------------- */
/* Loss is the batch mean of -sum_k t_k log p_k with t = (1-eps)*onehot + eps/classes. probs[n*k]
 * is saved for backward; *ncorrect counts argmax hits (ties: lowest index). */
float lb_xent_forward(int n, int classes, const float *logits, const int32_t *labels,
                      float smoothing, float *probs, int *ncorrect);
void lb_xent_backward(int n, int classes, const float *probs, const int32_t *labels,
                      float smoothing, float *dlogits);

/* ---- spiking networks (docs/snn.md) ---------------------------------------------------------
 * Time-major tensors: x[t][n][c][hw] for T steps of a batch of n samples, i.e. the T*n "frames"
 * a stateless layer (conv, norm, pool, linear) sees as one batch. Only the LIF neuron carries
 * state across t. */
typedef enum lb_lif_reset { LB_RESET_SUB = 0, LB_RESET_ZERO } lb_lif_reset;
typedef enum lb_spike_grad { LB_SG_ATAN = 0, LB_SG_FSIG } lb_spike_grad;

typedef struct lb_lif_desc {
    int t, n, c, hw;      /* x[t][n][c][hw] */
    float theta;          /* threshold: S = U > theta */
    lb_lif_reset reset;   /* by subtraction of theta (default) or to zero, one step late */
    lb_spike_grad surr;   /* dS/dU: atan (alpha = slope) or fast sigmoid (slope) */
    float slope;          /* atan: 2 (snnTorch's default alpha), fast sigmoid: 25 */
    int detach_reset;     /* 1: the reset term carries no gradient (snnTorch) */
    int beta_per_channel; /* beta[c] rather than beta[0] */
    int mem_bits;         /* 0: float membrane; b: U on a b-bit grid of theta/2^(b-2) */
    int smooth; /* gradient checks only: S is the surrogate's primitive of U - theta (atan:
                   1/2 + atan(pi/2 slope x)/pi, fast sigmoid: 1/2 + x/(1 + slope |x|)) in
                   place of the step, so finite differences see what BPTT differentiates */
} lb_lif_desc;

/* U[t] = beta*U'[t-1] + x[t] - theta*S[t-1] (reset by subtraction; to zero: U'[t-1] =
 * (1-S[t-1])*U[t-1] and no theta term), U[-1] = S[-1] = 0, S[t] = U[t] > theta. With mem_bits, U
 * is rounded to the grid (codes clipped to the b-bit signed range) after each update. spk gets
 * S, mem gets U (kept for backward). */
void lb_lif_forward(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                    float *mem);
void lb_lif_forward_ref(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                        float *mem);
/* Backpropagation through time. dbeta (NULL: beta fixed) is overwritten; scratch holds
 * lb_lif_scratch_floats(d) floats (partial sums and the gradient carried between steps). With
 * mem_bits, the gradient stops where a membrane code sits at either end of its range
 * (straight-through inside). */
size_t lb_lif_scratch_floats(const lb_lif_desc *d);
void lb_lif_backward(const lb_lif_desc *d, const float *beta, const float *spk, const float *mem,
                     const float *dspk, float *dx, int dx_acc, float *dbeta, float *scratch);
void lb_lif_backward_ref(const lb_lif_desc *d, const float *beta, const float *spk,
                         const float *mem, const float *dspk, float *dx, int dx_acc, float *dbeta,
                         float *scratch);
/* The membrane grid step theta / 2^(mem_bits-2): codes -2^(b-1)..2^(b-1)-1 span [-2 theta, 2
 * theta). */
float lb_lif_mem_step(const lb_lif_desc *d);

/* Layer norm over each sample's (c,h,w) without affine (seed 000's SNN): y = (x - mean) * invstd,
 * invstd = 1/sqrt(var + eps), population variance; mean[n] and invstd[n] are saved. */
#define LB_LN_EPS 1e-5f
void lb_ln_forward(int n, size_t d, const float *x, float *y, float *mean, float *invstd);
void lb_ln_backward(int n, size_t d, const float *y, const float *invstd, const float *dy,
                    float *dx, int dx_acc);

/* Time expansion of a static tensor x[n][d] into y[t][n][d] (direct encoding); the backward sums
 * dy over t. */
void lb_repeat_forward(int t, size_t nd, const float *x, float *y);
void lb_repeat_backward(int t, size_t nd, const float *dy, float *dx, int dx_acc);
/* Rate (Bernoulli) encoding of x[n][d] holding pixel/255: the pixel byte k = round(255 x) clamped
 * to 0..255 spikes at (t, n, i) iff (h >> 40) * 255 < k << 24, h = lb_spike_hash(key, counter),
 * counter = (t * (per_sample ? n : 1) + (per_sample ? sample : 0)) * d + i: exact integer
 * arithmetic, so the integer model and exported C draw the same spikes. */
uint64_t lb_spike_hash(uint64_t key, uint64_t counter);
void lb_rate_encode(int t, int n, size_t d, const float *x, float *y, uint64_t key, int per_sample);
/* Event frames x[n][t][p][hw] (the data set's layout) to time-major y[t][n][p][hw]. */
void lb_frames_forward(int t, int n, int p, size_t hw, const float *x, float *y);
/* Readout: y[n][k] = scale * sum_t x[t][n][k] (spike count with scale 1, mean membrane with
 * 1/T); the backward broadcasts scale*dy. */
void lb_tsum_forward(int t, size_t nk, float scale, const float *x, float *y);
void lb_tsum_backward(int t, size_t nk, float scale, const float *dy, float *dx, int dx_acc);
/* snnTorch's mse_count_loss: targets floor(T*on) for the label, floor(T*off) for the others;
 * loss = mean over n*k of (count - target)^2, divided by T. dcounts (NULL: not wanted) gets its
 * gradient; *ncorrect counts argmax hits (ties: lowest index). */
float lb_mse_count_loss(int n, int k, const float *counts, const int32_t *labels, int t, float on,
                        float off, float *dcounts, int *ncorrect);

#endif
