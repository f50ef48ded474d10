/* lb_quant: quantizers as differentiable parts that own learnable parameters. A quantizer sees a
 * tensor as [outer][ch][inner]; one set of parameters per `ch` (per-channel) or ch == 1
 * (per-tensor). Weights [cout][k]: outer = 1, ch = cout or 1. Activations [n][chw]: outer = n
 * (given per call), ch = 1. Parameters live in the network's parameter arena (so optimizers and
 * checkpoints see them as ordinary tensors); non-learned buffers (init flags, running values) in
 * its state arena. This header knows nothing of layers or graphs.
 *
 * Semantics of the uniform grid (methods.md section 1): q(v) = s * round(clip(v/s, -Qn, Qp)),
 * signed Qn = 2^(b-1), Qp = 2^(b-1)-1; unsigned Qn = 0, Qp = 2^b-1. The quotient is a true float
 * division v/s (not v * (1/s)) and round is round-half-to-even, as torch.round: C and PyTorch 1.13
 * agree bit for bit, ties included. The straight-through gradients are those PyTorch's autograd
 * gives for the peer formulation `round_pass(clamp(v/s, -Qn, Qp)) * s`: with u = v/s,
 *   dq/dv = 1 when -Qn <= u <= Qp (bounds included, as clamp's gradient), else 0;
 *   dq/ds = round(u) - u when -Qn <= u <= Qp (so exactly 0 AT a bound), else -Qn or Qp.
 * Everything below reads the bounds from q->qn / q->qp, never from the bit count, so a kind may set
 * other bounds (e.g. a number of states) in its reset hook.
 *
 * Calling order in a training step: forward(training = 1) -> backward (writes dx, OVERWRITES
 * dparam) -> reg (adds to dx and dparam) -> the optimizer updates param -> project (puts the
 * parameters back into their valid set: LSQ's step above its floor; ordered levels). Eval forwards
 * (training = 0) never change parameters or state. Reductions (step gradients, init means, maxima)
 * are split into chunks whose bounds depend on the shape only, and the per-chunk double partials
 * are summed in chunk order: results are bitwise identical for any thread count.
 *
 * How the methods still to come map onto this interface (methods.md):
 * - Power-of-two scales (sec. 1b, seed 003): BUILT for LSQ as lb_qcfg.po2 (lb_po2_step below):
 *   the learned s becomes s_eff = 2^round(log2 s) per channel, lb_quant_uniform_forward/_backward
 *   run with s_eff, then dparam[c] is scaled by s_eff/s (straight-through for the rounding of
 *   log2 s); step() returns s_eff, so integer export sees powers of two. The grid bounds stay
 *   LSQ's ([-2^(b-1), 2^(b-1)-1] signed). Other kinds refuse the flag (lb_qcfg_check).
 * - MSQE and gradient-based power-of-two scales (sec. 1b, seed 003): built, LB_Q_MSQE_PO2 and
 *   LB_Q_GRAD_PO2 below (docs/quantizers.md). Both run the uniform kernels at 2^E; their backward
 *   takes the reference's clip-after-round mask (lb_quant_grid_backward, po2x_internal.h).
 * - DoReFa weights, PACT activations (sec. 1): built, LB_Q_DOREFA and LB_Q_PACT below
 *   (docs/quantizers.md); AdaQAT changes their bits through lb_quant_set_bits.
 * - Regularization-based levels (sec. 2, seed 000): built, LB_Q_REG below (docs/reg.md). Per-weight
 *   data of the fault and variability models (stuck bits, multipliers) belong to the fault module,
 *   which would attach them through a borrowed pointer added here then; they are not quantizer
 *   state.
 * - Learned bit-widths (sec. 4): AdaQAT keeps its real-valued N outside and calls
 *   lb_quant_set_bits(q, ceil N) (bounds and gradient scale follow; parameters are kept), or
 *   lb_quant_set_bits_keep_range once a width changes for good. Seed
 *   004's tensor-sliced precision: BUILT as LB_Q_SLICED below (docs/mixed.md), a slice per
 *   channel with (d, xmax) as two parameters each and its own loops; the size penalty is the
 *   trainer's (src/train/sliced_train.c: it couples all quantizers through relu(S - T)), with
 *   the size and its gradient per quantizer from lb_quant_sliced_kb.
 * - MaQD (sec. 5): BUILT as LB_Q_ROUNDCLIP (below, docs/quantizers.md): this grid with s = 1/a,
 *   qn = K (signed) or 0, qp = K, K from lb_qcfg.states; weight standardization is a layer
 *   option (lb_node.wstd, lb_wstd_* in lb_ops.h) run before the weight quantizer. */
#ifndef LB_QUANT_H
#define LB_QUANT_H

#include <stddef.h>

#include "lb_core.h"

typedef enum lb_qkind {
    LB_Q_NONE = 0,  /* identity, no parameters */
    LB_Q_FIXED,     /* uniform, step = max|v| / Qp recomputed on every training forward */
    LB_Q_LSQ,       /* uniform, learned step (Esser et al. 2020) */
    LB_Q_REG,       /* regularization-based levels (methods.md sec. 2; weights only) */
    LB_Q_DOREFA,    /* DoReFa weights: tanh, normalize by max|tanh|, uniform on [-1,1] (weights) */
    LB_Q_PACT,      /* PACT activations: clip to [0, alpha], alpha learned (activations) */
    LB_Q_ROUNDCLIP, /* MaQD scaled round-clip clip(round(a x), -K, K)/a, a learned, K from states */
    LB_Q_MSQE_PO2,  /* power-of-two scale 2^E searched for the least (weighted) error every step */
    LB_Q_GRAD_PO2,  /* power-of-two scale 2^E from a learned log2 scale e (TQT-like) */
    LB_Q_SLICED,    /* learned step d and range xmax per slice, bits implied (Schaefer et al.) */
    LB_Q_COUNT
} lb_qkind;

/* LB_Q_REG: which levels (docs/reg.md). All have 2^b levels a_k = S[k] . R, k the stored index. */
typedef enum lb_reg_levels {
    LB_REG_FIXED = 0, /* R = s*[1, 2, .., 2^(b-1), (2^b-1)/2] frozen after the data-driven init */
    LB_REG_STEP,      /* LSQ grid alpha*(k - 2^(b-1)), alpha learned through LSQ's forward */
    LB_REG_LEARNED,   /* all b+1 entries of R learned (gradient from the regularizer only) */
    LB_REG_LEVELS_COUNT
} lb_reg_levels;

/* LB_Q_REG: the regularizer, per layer, d = distance to the nearest level, N the layer's weights,
 * Q = 2^b - 1: MSE L = (Q/N) sum d^2; GAUSS L = (Q/N) sum 1 - exp(-d^2/sigma^2), sigma one step. */
typedef enum lb_reg_form { LB_REG_MSE = 0, LB_REG_GAUSS, LB_REG_FORM_COUNT } lb_reg_form;

/* LB_Q_ROUNDCLIP: the surrogate gradient dQ/dx of the round (docs/quantizers.md, MaQD). */
typedef enum lb_surrogate {
    LB_SUR_STE = 0,  /* 1 inside the clip range [-K/a, K/a] (bounds included), 0 outside */
    LB_SUR_IDENTITY, /* 1 everywhere: straight through the round and the clip */
    LB_SUR_TRIANGLE, /* 4 min(t, 1-t), t = frac(a x): 2 at the jumps, mean 1; 0 outside */
    LB_SUR_COUNT
} lb_surrogate;

typedef struct lb_qcfg {
    lb_qkind kind;
    int bits;             /* 2..8 (ignored for LB_Q_NONE) */
    int is_signed;        /* signed: [-2^(b-1), 2^(b-1)-1]; unsigned: [0, 2^b-1] */
    int per_channel;      /* one step per `ch` */
    lb_reg_levels levels; /* LB_Q_REG only (0: fixed) */
    lb_reg_form form;     /* LB_Q_REG only (0: mse) */
    int po2;              /* LB_Q_LSQ, LB_Q_SLICED: power-of-two effective steps (below) */
    /* LB_Q_ROUNDCLIP only: the number of states (signed 2K+1, odd, 3..511; unsigned K+1, 2..256;
     * 0: the states of `bits`, K = 2^(b-1)-1 signed, 2^b-1 unsigned) and the surrogate. `bits`
     * is then the code width, ceil(log2(K+1)) (+1 signed), which lb_qcfg_roundclip sets. */
    int states;
    lb_surrogate surrogate;
    /* LB_Q_MSQE_PO2 / LB_Q_GRAD_PO2 (docs/quantizers.md; 0 everywhere is the reference's default):
     * po2_flags LB_PO2X_NO_MASK turns the outlier mask off, LB_PO2X_NO_MOMENTS the second-moment
     * weighting; po2_round (grad-po2) LB_PO2X_ROUND_MSQE or _CEIL; stable_after (grad-po2) freezes
     * the exponent at its running mean after that many training forwards (0: never). */
    int po2_flags, po2_round, stable_after;
    /* Elements of the tensor (weights: set by the graph planner before the counts are asked; 0
     * for activations). MSQE's second moments keep one running value per element, so they need
     * it; without it (activations) the moments are off. */
    long numel;
} lb_qcfg;

#define LB_PO2X_NO_MASK 1
#define LB_PO2X_NO_MOMENTS 2
#define LB_PO2X_ROUND_MSQE 0
#define LB_PO2X_ROUND_CEIL 1

typedef struct lb_quant lb_quant;

typedef struct lb_quant_vt {
    const char *name;
    /* Counts for a tensor of `ch` channels (ch steps when per-channel, else 1). */
    int (*nparam)(const lb_qcfg *cfg, int ch);
    int (*nstate)(const lb_qcfg *cfg, int ch);
    /* training != 0 may perform a data-driven initialization on first use. y may equal x. */
    void (*forward)(lb_quant *q, size_t outer, const float *x, float *y, int training);
    /* Writes dx (dx_acc: adds to it) and OVERWRITES q->dparam. x is the forward's input; dx
     * may equal dy when dx_acc is 0. */
    void (*backward)(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                     int dx_acc);
    /* Optional regularization loss added to the task loss; adds its gradient to dx (and to
     * dparam, after backward). NULL: none. */
    float (*reg)(lb_quant *q, size_t outer, const float *x, float *dx);
    /* Effective step of channel c after the last forward (integer export reads it). */
    float (*step)(const lb_quant *q, int c);
    /* Sets parameters and state to the kind's defaults (and may set qn/qp). NULL: nothing. */
    void (*reset)(lb_quant *q);
    /* After each optimizer update: moves the parameters back into their valid set (a projection,
     * so gradients are untouched) and returns how many channels sit on its boundary afterwards
     * (a step at its floor; 0: all strictly inside). A learned scale can never reach zero or
     * change sign this way. NULL: nothing to keep. */
    int (*project)(lb_quant *q);
    /* After a bit-width change that should keep the clipping range: scales the learned scale by
     * r = Qp_old / Qp_new (lb_quant_set_bits_keep_range). NULL: nothing learned to scale. */
    void (*rescale)(lb_quant *q, float r);
} lb_quant_vt;

struct lb_quant {
    const lb_quant_vt *vt;
    lb_qcfg cfg;
    int ch;                /* number of step sets: the tensor's channels if per-channel, else 1 */
    size_t inner;          /* floats per (outer, ch) block */
    size_t n_grad;         /* N of LSQ's gradient scale 1/sqrt(N*Qp) */
    int qn, qp;            /* clip bounds in steps: codes in [-qn, qp] */
    float gscale;          /* 1/sqrt(n_grad*qp) */
    float *param, *dparam; /* nparam learnable floats and their gradient */
    float *state;          /* nstate non-learned floats (checkpointed) */
    int nparam, nstate;
    float reg_weight; /* lambda of a reg hook (0 after bind; set by the trainer, LB_Q_REG) */
};

/* The built-in kinds. State layouts: NONE nothing; FIXED state[c] = step of channel c; LSQ
 * param[c] = step of channel c, state[0] = initialized flag (0 or 1), state[1 + c] = the step
 * channel c was initialized with (its floor is LB_LSQ_FLOOR times that). REG, nb = b+1, state[0] =
 * initialized flag in all three: fixed state[1 + c*nb + i] = R_i; step as LSQ (param[c] = alpha,
 * state[1 + c] = initial alpha); learned param[c*nb + i] = R_i, state[1 + c] = initial s (R_i >=
 * LB_LSQ_FLOOR * s * 2^i for i < b after project). */
#define LB_LSQ_FLOOR 0.01f
extern const lb_quant_vt lb_quant_vt_none, lb_quant_vt_fixed, lb_quant_vt_lsq, lb_quant_vt_reg;
/* DOREFA (docs/quantizers.md): no parameters, no state; qn = qp = 2^b-1, codes 2j-(2^b-1) (odd)
 * at step 1/(2^b-1), the max |tanh w| per channel (or per tensor) taken on every forward. PACT:
 * param[0] = alpha (per tensor only), state[0] = initialized flag, state[1] = the alpha of the
 * data-driven init (its floor is LB_LSQ_FLOOR times that); unsigned, qn = 0, qp = 2^b-1, step
 * alpha/(2^b-1). */
extern const lb_quant_vt lb_quant_vt_dorefa, lb_quant_vt_pact;
/* ROUNDCLIP (src/quant/roundclip.c, docs/quantizers.md "MaQD"): param[c] = a of channel c (the
 * scale, 1/step), state[0] = initialized flag, state[1 + c] = the a of the data-driven init (a
 * stays <= a0 / LB_LSQ_FLOOR after project: the step 1/a above LSQ's floor). qn = K signed (0
 * unsigned), qp = K; step() = 1/a. */
extern const lb_quant_vt lb_quant_vt_roundclip;
/* Fills cfg->bits from cfg->states for LB_Q_ROUNDCLIP (states 0: from bits, left as is) and
 * checks the states' range and parity for the side (is_signed). LB_EINVAL naming `what` (the
 * option or layer) otherwise. Other kinds: LB_OK, nothing changed. */
lb_status lb_qcfg_roundclip(lb_qcfg *cfg, const char *what);
/* K of a round-clip config (after lb_qcfg_roundclip): the largest code. */
int lb_roundclip_k(const lb_qcfg *cfg);
const char *lb_surrogate_name(lb_surrogate s); /* "ste", "identity", "triangle"; "?" */
lb_status lb_surrogate_parse(const char *s, lb_surrogate *out);
/* Scalar reference of the round-clip backward (every surrogate, plain loops, double sums): what
 * the kind's backward is tested against. Writes dx (dx_acc: adds) and q->dparam. */
void lb_quant_roundclip_backward_ref(lb_quant *q, size_t outer, const float *x, const float *dy,
                                     float *dx, int dx_acc);
/* MSQE_PO2 / GRAD_PO2 (src/quant/msqe_po2.c, grad_po2.c, shared passes in po2x.c): signed grids
 * are symmetric, qn = qp = 2^(b-1)-1 (QKeras' po2 quantizers); unsigned [0, 2^b-1]. The step of
 * channel c is 2^E[c], E an integer. Layouts, m = numel when the moments are on (else 0):
 *   MSQE_PO2 state = [initialized, E[ch], moments[m]]; no parameters.
 *   GRAD_PO2 param[c] = e (learned log2 scale); state = [initialized, E[ch], stable mean[ch],
 *            training forwards seen, moments[m]].
 * Moments start at 1 (as the reference's variable). */
extern const lb_quant_vt lb_quant_vt_msqe_po2, lb_quant_vt_grad_po2;
/* The exponents E lie in [LB_PO2X_EMIN, LB_PO2X_EMAX]: 2^E and x/2^E stay finite normal floats. */
#define LB_PO2X_EMIN (-64)
#define LB_PO2X_EMAX 64
/* round(log2 v) for v > 0 (exact, from the binary exponent, as lb_po2_step), clamped to the range
 * above; v <= 0 or NaN gives LB_PO2X_EMIN. */
int lb_po2_exponent(double v);

/* SLICED (src/quant/sliced.c, docs/mixed.md "Tensor-sliced"): param[c] = d, param[ch + c] = xmax of
 * slice c (a slice = a channel of the quantizer); state[0] = initialized flag. A weight quantizer
 * (cfg.numel > 0) keeps d in [LB_SLICED_DMIN, LB_SLICED_DMAX_W], an activation one in
 * [LB_SLICED_DMIN, LB_SLICED_DMAX_A]; xmax in [LB_SLICED_XMIN, LB_SLICED_XMAX]; d <= xmax
 * (project). cfg.bits is b0, the width the init starts from; cfg.po2 makes d a power of two
 * (2^round(log2 d), straight through). After every forward/project qp = the largest slice bound K,
 * qn = qp (signed) or 0. */
extern const lb_quant_vt lb_quant_vt_sliced;
#define LB_SLICED_DMIN 0.000244140625f /* 2^-12 */
#define LB_SLICED_DMAX_W 1.0f
#define LB_SLICED_DMAX_A 8.0f
#define LB_SLICED_XMIN 0.00390625f /* 2^-8 */
#define LB_SLICED_XMAX 127.0f
/* K = round(xmax/d) (half to even, as the forward), capped at 10^6; the slice's codes are -K..K
 * (signed) or 0..K. */
int lb_sliced_k(float d, float xmax);
/* methods.md's bit-width of a slice: ceil(log2(K + 1)) + 1 signed, ceil(log2(K + 1)) unsigned. */
int lb_sliced_bits(float d, float xmax, int is_signed);
float lb_sliced_dmax(const lb_quant *q);            /* the d ceiling of this side */
float lb_quant_sliced_d(const lb_quant *q, int c);  /* effective d (po2 applied) */
int lb_quant_sliced_k(const lb_quant *q, int c);    /* K of slice c */
int lb_quant_sliced_bits(const lb_quant *q, int c); /* bits of slice c */
/* The size in kB of n elements at this quantizer's widths, n * mean_c(b_c) / 8000 (methods.md;
 * weights: n = the tensor's elements; activations: per sample). With dd and dxmax (q->ch floats
 * each, may be NULL) also its straight-through gradient per slice: round and ceil pass the gradient
 * unchanged, b = log2(K + 1) (+1) differentiated at the rounded K (as autograd's x + (f(x) -
 * x).detach() does). */
double lb_quant_sliced_kb(const lb_quant *q, size_t n, float *dd, float *dxmax);
/* After parameters were loaded from a file: checks them (LB_EFORMAT naming `what` and the slice
 * when outside the ranges above) and sets qn/qp from them. LB_OK and nothing done for other
 * kinds. */
lb_status lb_quant_sliced_sync(lb_quant *q, const char *what);
/* The scalar references of the kind's forward (no init) and backward (double sums in the shared
 * chunk order); the kind runs SIMD kernels equal to them element for element (its two double sums
 * in lane order). The backward writes dx (dx_acc: adds) and OVERWRITES q->dparam (d then xmax). */
void lb_quant_sliced_forward_ref(lb_quant *q, size_t outer, const float *x, float *y);
void lb_quant_sliced_backward_ref(lb_quant *q, size_t outer, const float *x, const float *dy,
                                  float *dx, int dx_acc);

const lb_quant_vt *lb_quant_vt_for(lb_qkind kind); /* NULL for an unknown kind */
/* LB_EINVAL for an unknown kind, (quantizing kinds) bits outside 2..8, or po2 with a kind other
 * than LSQ (no learned scale to constrain). */
lb_status lb_qcfg_check(const lb_qcfg *cfg);
/* "none", "fixed", "lsq", "reg", "dorefa", "pact", "roundclip", "msqe-po2", "grad-po2", "sliced";
 * "?" when unknown */
const char *lb_qkind_name(lb_qkind kind);
lb_status lb_qkind_parse(const char *s, lb_qkind *out);
/* Per-tensor (per_channel == 0) counts as one channel whatever `ch` is. */
int lb_quant_nparam(const lb_qcfg *cfg, int ch);
int lb_quant_nstate(const lb_qcfg *cfg, int ch);
/* Binds a quantizer to its storage; param/dparam/state point into the network's arenas (may be
 * NULL when the counts are 0). Sets defaults (steps 1, not initialized). `ch` is the tensor's
 * channel count; per-tensor folds it into inner (q->ch = 1, q->inner = ch * inner). n_grad must
 * be >= 1 for LSQ and LB_Q_REG. */
lb_status lb_quant_bind(lb_quant *q, const lb_qcfg *cfg, int ch, size_t inner, size_t n_grad,
                        float *param, float *dparam, float *state);
/* Back to the defaults of bind (LSQ: steps 1, re-initializes on the next training forward). */
void lb_quant_reset(lb_quant *q);
/* Changes the bit-width of a bound quantizer (learned bit-widths): bounds and gradient scale
 * follow; parameters and state are kept. LB_EINVAL outside 2..8, for LB_Q_NONE and for LB_Q_REG
 * with fixed or learned levels (their tensors have b+1 entries per channel). */
lb_status lb_quant_set_bits(lb_quant *q, int bits);
/* The same for a change for good (AdaQAT's committed widths, docs/mixed.md): a kind with a
 * learned scale (LSQ) keeps its clipping range Qp * s, the scale times Qp_old / Qp_new. */
lb_status lb_quant_set_bits_keep_range(lb_quant *q, int bits);
void lb_quant_forward(lb_quant *q, size_t outer, const float *x, float *y, int training);
void lb_quant_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                       int dx_acc);
float lb_quant_reg(lb_quant *q, size_t outer, const float *x, float *dx); /* 0 without a hook */
int lb_quant_project(lb_quant *q); /* the kind's project hook; 0 without one */
/* 2^round(log2 s) for s > 0, computed exactly from the binary exponent (s = m 2^e, m in [0.5, 1):
 * 2^e when m >= sqrt(1/2), else 2^(e-1); no float log2 whose rounding could move the boundary).
 * s <= 0 or NaN is returned as it is. At most LB_PO2_MAX_CH channels per po2 quantizer. */
float lb_po2_step(float s);
#define LB_PO2_MAX_CH 8192
/* 0 for LB_Q_NONE (not quantized) and for LB_Q_REG with learned levels (not a uniform grid: read
 * lb_quant_levels instead). */
float lb_quant_step(const lb_quant *q, int c);

/* ---- building blocks shared by the uniform kinds (and the ones to come) ------------------------
 * All take the layout of q (ch, inner, qn, qp) and an outer count; `step` holds q->ch steps. They
 * run OpenMP over fixed chunks of each channel (static schedule, serial for small tensors). */
/* y = step[c] * round(clip(x/step[c], -qn, qp)); y may equal x. */
void lb_quant_uniform_forward(const lb_quant *q, size_t outer, const float *step, const float *x,
                              float *y);
/* dx = dy where -qn <= x/step[c] <= qp, else 0 (dx_acc: added). When dstep is not NULL,
 * dstep[c] = dscale * sum over channel c of dy * dq/ds (the LSQ formula above), accumulated in
 * double. One pass over x and dy. */
void lb_quant_uniform_backward(const lb_quant *q, size_t outer, const float *step, const float *x,
                               const float *dy, float *dx, int dx_acc, float *dstep, float dscale);
/* out[c] = mean |x| over channel c (summed in double), out[c] = max |x| over channel c. */
void lb_quant_absmean(const lb_quant *q, size_t outer, const float *x, float *out);
void lb_quant_absmax(const lb_quant *q, size_t outer, const float *x, float *out);

/* ---- LB_Q_DOREFA -------------------------------------------------------------------------------
 * The integer codes of the forward's values, c = 2*round((2^b-1)*w') - (2^b-1) in [-(2^b-1),
 * 2^b-1] (odd): the forward's value is c/(2^b-1) up to the last bit. The max |tanh| is that of x
 * itself (as the forward). LB_EINVAL for other kinds and for b > 7 (codes of 8 bits need 9). */
lb_status lb_quant_dorefa_codes(const lb_quant *q, size_t outer, const float *x,
                                signed char *codes);
/* DoReFa's scalar reference loops (three tanhf a weight in the backward); the kind computes tanhf
 * once an element, in threads, with the same results bit for bit. */
void lb_quant_dorefa_forward_ref(const lb_quant *q, size_t outer, const float *x, float *y);
void lb_quant_dorefa_backward_ref(const lb_quant *q, size_t outer, const float *x, const float *dy,
                                  float *dx, int dx_acc);
/* PACT's reference backward (a pass for the alpha sum, then the shared straight-through one); the
 * kind runs both in one SIMD pass, dx the same bits, the alpha sum in lane order. */
void lb_quant_pact_backward_ref(lb_quant *q, size_t outer, const float *x, const float *dy,
                                float *dx, int dx_acc);

/* ---- LB_Q_REG: regularization-based levels (src/quant/reg.c, reg_kern.c; docs/reg.md) ----------
 * Levels a_k = sum_i bit_i(k) R_i - R_b for the stored index k in [0, 2^b), R = b+1 entries per
 * channel; at init R = s*[2^0, .., 2^(b-1), (2^b-1)/2], s = 2*mean|w|/sqrt((2^b-1)/2) per channel
 * rounded to 16 significant bits, so that every R_i and level is exact in float and the grid is
 * exactly symmetric. Levels are computed in double from R and rounded to float once.
 *  fixed:   R in state; training forward = identity; eval forward snaps; no parameters.
 *           step() = s/2, codes 2k - (2^b-1) (odd, qn = qp = 2^b-1).
 *  step:    param = alpha; forward (training and eval) = LSQ's signed fake-quant with alpha
 *           (its levels alpha*(k - 2^(b-1)) ARE the grid; qn = 2^(b-1), qp = 2^(b-1)-1); the
 *           regularizer pulls w onto that grid and gives alpha no gradient. step() = alpha.
 *  learned: param = R; training forward = identity; eval forward snaps to the sorted table of
 *           the DEPLOYED levels (below); R gets gradient only from the regularizer; step() = 0
 *           (read lb_quant_levels_deployed).
 * Deployed levels (learned kind only; the other kinds deploy their levels as they are): R
 * rounded (half to even) to multiples of g = 2^(e - LB_REG_DEPLOY_BITS), 2^e the smallest power
 * of two >= sum_i |R_i|, so that every level is an integer multiple of g of magnitude <= about
 * 2^LB_REG_DEPLOY_BITS: the integer model holds those integers, exactly the levels the float
 * eval snaps to (docs/integer.md). The regularizer and the training see R itself; the rounding
 * moves a level by at most (b+1) g / 2, under 2^-12 of the level span.
 * Nearest level (table kinds): w is clamped into [a_min, a_max], the level with the smallest
 * float |w - a| wins, ties go to the lower level and equal levels to the smaller k; a NaN weight
 * stays NaN. Step kind: LSQ's rounding (half to even), i.e. exactly its forward. The distance
 * d = w - a uses the unclamped w. sigma of the Gaussian form = R_0 (table kinds) or alpha, held
 * constant in the gradient (a learned sigma would only widen the wells). */
/* b+1 entries of R for channel c (step kind: alpha*[2^0, .., 2^(b-1), 2^(b-1)]); returns b+1,
 * 0 for other kinds. */
int lb_quant_reg_R(const lb_quant *q, int c, float *R);
/* The same as deployed (learned kind: on its grid; the other kinds: lb_quant_reg_R). Levels
 * summed from it in double and rounded once are lb_quant_levels_deployed's, bit for bit. */
int lb_quant_reg_R_deployed(const lb_quant *q, int c, float *R);
/* The 2^b levels of channel c indexed by k (not sorted), as the regularizer sees them; returns
 * 2^b, 0 for other kinds. _deployed: as the eval forward, the indices and the integer model see
 * them (differs for learned levels only); *g (may be NULL) receives the grid they lie on (0: not
 * on a grid of LB_REG_DEPLOY_BITS). */
#define LB_REG_DEPLOY_BITS 12
int lb_quant_levels(const lb_quant *q, int c, float *out);
int lb_quant_levels_deployed(const lb_quant *q, int c, float *out, double *g);
/* The nearest-level index k of every element (what a memory stores). LB_EINVAL for other kinds. */
lb_status lb_quant_reg_codes(const lb_quant *q, size_t outer, const float *x, unsigned char *k);
/* Methods.md's clamping, for the trainer after each weight update: with the Gaussian form, w into
 * [a_min, a_max] (fixed levels) or [a_min - step/2, a_max + step/2] (step and learned levels,
 * step = alpha or R_0); nothing with MSE or other kinds. Returns how many weights moved. */
size_t lb_quant_reg_clamp(const lb_quant *q, size_t outer, float *w);
/* The scalar reference of the reg hook (a plain loop, linear search over the unsorted levels,
 * double sums): what the fast hook is tested against. */
float lb_quant_reg_ref(lb_quant *q, size_t outer, const float *x, float *dx);

/* The lambda schedule (methods.md sec. 2), pure. epoch counts from 0, of `epochs`.
 * E_s = lb_reg_ramp_epoch = round(ramp_start * epochs) (half away from zero, clamped to
 * [0, epochs]); lambda = lambda0 for epoch < E_s, then lambda0 * (lambda_max/lambda0)^((epoch -
 * E_s + 1)/(epochs - E_s)): multiplied by (lambda_max/lambda0)^(1/(E - E_s)) at the start of each
 * epoch from E_s on, reaching lambda_max exactly in the last one (epoch E-1); epochs past the run
 * stay at lambda_max. Needs lambda0 > 0 and lambda_max > 0 (otherwise returns lambda0). */
int lb_reg_ramp_epoch(double ramp_start, int epochs);
double lb_reg_lambda(double lambda0, double lambda_max, double ramp_start, int epoch, int epochs);

const char *lb_reg_levels_name(lb_reg_levels l); /* "fixed", "step", "learned"; "?" */
lb_status lb_reg_levels_parse(const char *s, lb_reg_levels *out);
const char *lb_reg_form_name(lb_reg_form f); /* "mse", "gauss"; "?" */
lb_status lb_reg_form_parse(const char *s, lb_reg_form *out);

#endif
