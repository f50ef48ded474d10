/* lb_int: the integer-only model derived from a trained QAT network (batch norm folded, weights as
 * integer codes, per-channel requantization as multiplier + shift, activations as integer codes),
 * its scalar reference runner with AVX2 / AVX-512 VNNI fast paths chosen at run time, evaluation
 * against the float QAT model, and the export of the model as self-contained C99. It is not a
 * training path and knows nothing of checkpoints: it reads a planned, loaded lb_net.
 *
 * Semantics (docs/integer.md has the reasoning):
 * - Tensors hold integer codes; the real value is code * scale. Codes of a conv/linear input are
 *   exactly the codes of that layer's activation quantizer (step, bits, sign); tensors feeding an
 *   add, shortcut, average pool or several differently quantized layers are "wide": int32 at a
 *   fine scale (the next quantizer's step / 2^k). The image enters as raw uint8 pixels through a
 *   per-channel table that folds the data set normalization: int16 values at scale 1/E when the
 *   first layer's input is float in the QAT model, or that layer's codes when it is quantized.
 * - Requantization of an int32 value v (accumulator or wide value) to the next domain:
 *   q = rshift_rne((int64)v * m + b, s), clamped to [lo, hi]. m is int32, b int64 (the folded
 *   batch-norm shift and bias, kept at the fixed-point scale 2^-s so no precision is lost), s in
 *   [1, 62]. rshift_rne divides by 2^s rounding half to even, as torch.round and the QAT
 *   quantizers do. ReLU / ReLU6 are the clamp bounds.
 * - Add: each branch is requantized to the output scale (bias 0) and saturated to int32, the sum
 *   (in int64) clamped to [lo, hi]. Average pool / global average pool: the int64 window sum
 *   divided by the window size (k*k, padding included, as PyTorch's default) rounding half to
 *   even. Max pool: the maximum of the codes in the window (requantization is monotone).
 * - The last layer gives int32 logits at scale 2^-logit_frac_bits (one scale for all classes).
 * Only uniform-grid quantizers (lsq, fixed) on every conv/linear weight and every conv/linear
 * input except the image become integer; lb_int_from_net names the first layer that does not. */
#ifndef LB_INT_H
#define LB_INT_H

#include <stddef.h>
#include <stdint.h>

#include "lb_core.h"
#include "lb_data.h"
#include "lb_nn.h"

typedef enum lb_int_type {
    LB_IT_U8 = 0, /* unsigned activation codes */
    LB_IT_S8,     /* signed activation codes */
    LB_IT_S16,    /* the normalized image (first layer with a float input) */
    LB_IT_S32     /* wide values and logits */
} lb_int_type;

typedef struct lb_int_tensor {
    char name[LB_NAME_MAX + 8];
    int c, h, w;
    lb_int_type type;
    double scale;    /* real value = code * scale */
    int32_t lo, hi;  /* range every code lies in */
    int bits;        /* code bits of an activation quantizer (U8/S8), else 16 / 32 */
    size_t off;      /* byte offset in the per-image arena */
    int def, last;   /* first op writing it, last op reading it (planning) */
    int pool;        /* export: arena by element type (0 chars, 1 int16, 2 int32) */
    size_t pool_off; /* export: offset in that arena, in elements */
} lb_int_tensor;

/* One requantization: q = rshift_rne((int64)v * m + b, s). */
typedef struct lb_int_rq {
    int32_t m;
    int32_t s;
    int64_t b;
} lb_int_rq;

typedef enum lb_int_opkind {
    LB_IOP_INPUT = 0, /* uint8 pixels -> lut[c][pixel] */
    LB_IOP_CONV,      /* conv (any stride, padding, groups) or linear, requant per channel */
    LB_IOP_MAXPOOL,
    LB_IOP_AVGPOOL,
    LB_IOP_GAP,
    LB_IOP_ADD,
    LB_IOP_SHORTCUT, /* option A: subsample + zero channel padding */
    LB_IOP_QUANT,    /* wide int32 -> activation codes of the consuming layer */
    LB_IOP_CLAMP,    /* a ReLU / ReLU6 that could not be fused into its producer */
    LB_IOP_COUNT
} lb_int_opkind;

typedef struct lb_int_op {
    lb_int_opkind kind;
    char name[LB_NAME_MAX]; /* the lb_net layer it implements */
    int in[2], out;         /* tensor ids (in[1] = -1 unless add) */
    /* input geometry as the op sees it (a linear layer sees [C*H*W][1][1]) */
    int cin, ih, iw;
    int cout, oh, ow;
    int k, stride, pad, groups, linear;
    int wbits; /* conv: weight code bits (2..8; 16: learned reg levels' fine codes) */
    /* conv with sliced weights, one slice per output channel: each channel's own code bits
     * ([cout]; wbits is their largest), so the export can pack each row at its width; NULL
     * otherwise */
    signed char *rbits;
    int16_t *w; /* conv: codes [cout][cin/groups][k][k], int8 range unless wbits > 8 */
    /* conv with reg fixed/learned levels: the memory holds the ibits-bit level index widx and
     * w = wtab[table][widx] (table = the output channel when ntab > 1, else 0); ibits 0: none */
    int ibits, ntab;
    unsigned char *widx; /* [cout][cin/groups][k][k] */
    int16_t *wtab;       /* [ntab][2^ibits] */
    lb_int_rq *rq;       /* conv: [cout]; quant: [1]; add: [2] (one per branch) */
    int rq_id[2];        /* add: branch already at the output scale (no requantization) */
    int32_t lo, hi;      /* output clamp */
    int16_t *lut;        /* input: [c][256] */
    /* fast paths (packed at derivation, read only) */
    int kq, k2;    /* K = cin/groups*k*k rounded up to a multiple of 4 / of 2 */
    int8_t *w4;    /* [cout][kq] s8, zero padded (VNNI; unused when wbits > 8) */
    int16_t *w2;   /* [cout][k2] s16, zero padded (AVX2) */
    int32_t *wsum; /* [cout] sum of codes (VNNI: signed inputs are shifted by 128) */
} lb_int_op;

typedef enum lb_int_impl {
    LB_INT_AUTO = 0, /* the fastest available */
    LB_INT_SCALAR,
    LB_INT_AVX2,
    LB_INT_VNNI /* AVX-512 F/BW/VL + VNNI */
} lb_int_impl;

typedef struct lb_int_model {
    lb_int_op *ops;
    int nops, opcap;
    lb_int_tensor *t;
    int nt, tcap;
    int in_c, in_h, in_w, classes;
    int input, logits;   /* tensor ids */
    int logit_frac_bits; /* logits are int32 at scale 2^-logit_frac_bits */
    float mean[3], std[3];
    size_t arena_bytes;   /* per image */
    size_t scratch_bytes; /* per thread, fast kernels */
    /* A spiking network's integer form (src/int/int_snn.h; docs/snn.md), NULL for the others:
     * then ops and tensors are empty and lb_int_run / lb_int_export use it. */
    struct lb_isnn *snn;
    /* workspaces of lb_int_run, grown on demand */
    unsigned char *ws;
    size_t ws_bytes;
    int ws_threads;
} lb_int_model;

/* Derives the integer model of a planned network whose parameters and quantizer state are loaded
 * (eval semantics: BN running statistics, current steps). mean/std: the input normalization the
 * network was trained with (its lb_model_cfg.norm), folded into the input table. Errors
 * (LB_EINVAL) name the layer and the reason: float weights or inputs, a quantizer kind without an
 * integer form, an op or arrangement with no integer rule, accumulators that could overflow. */
lb_status lb_int_from_net(const lb_net *n, const float mean[3], const float std[3],
                          lb_int_model **out);
void lb_int_free(lb_int_model *m);

/* Runs images[n][c][h][w] (uint8 pixels) -> logits[n][classes]; preds[n] (may be NULL) the
 * argmax (lowest index on ties). Images are split over nthreads OpenMP threads; results do not
 * depend on the thread count or the implementation (the fast paths are bit exact). LB_EINVAL if
 * the implementation is not available on this CPU. */
lb_status lb_int_run(lb_int_model *m, const uint8_t *images, int n, int32_t *logits, int32_t *preds,
                     lb_int_impl impl, int nthreads);
int lb_int_impl_available(lb_int_impl impl);
lb_int_impl lb_int_impl_best(void);
const char *lb_int_impl_name(lb_int_impl impl);
lb_status lb_int_impl_parse(const char *s, lb_int_impl *out);

/* ---- primitives (exposed for tests and for the exporter, which writes the same rules in C) --- */
/* floor(t / 2^s + 1/2) with ties to even; s in [1, 62]; t + 2^(s-1) must not overflow. */
int64_t lb_int_rshift_rne(int64_t t, int s);
/* How many requantizations are pure shifts (every multiplier m of the op a power of two; with
 * --po2 scales, docs/integer.md): conv/linear ops, and the others that requantize (add branches
 * not already at the output scale, QUANT). */
typedef struct lb_int_shift_stats {
    int convs, conv_shift;  /* conv/linear ops, those whose every channel's m is 2^k */
    int other, other_shift; /* add and quant ops, those whose every m is 2^k */
} lb_int_shift_stats;
void lb_int_shift_count(const lb_int_model *m, lb_int_shift_stats *out);
/* round(sum / n) with ties to even, n >= 1. */
int64_t lb_int_div_rne(int64_t sum, int64_t n);
/* clamp(rshift_rne((int64)v*m + b, s), lo, hi). */
int32_t lb_int_requant(int32_t v, const lb_int_rq *rq, int32_t lo, int32_t hi);
/* The rq closest to real multiplier `mult` and offset `off` (q ~ v*mult + off): the largest s
 * <= 62 with |m| < 2^31 and |b| < 2^60. LB_EINVAL when none (|mult| >= 2^30 or |off| >= 2^59). */
lb_status lb_int_rq_from_real(double mult, double off, lb_int_rq *rq);

/* ---- evaluation ------------------------------------------------------------------------------ */
typedef struct lb_int_eval {
    int n;                    /* images evaluated */
    int correct;              /* integer model */
    int float_correct, agree; /* with a float net: its hits, and equal predictions */
    double int_s, float_s;    /* forward-only seconds (integer run, float forwards) */
} lb_int_eval;

/* Evaluates the integer model on the first `limit` (0 = all) images of d in batches of `batch`.
 * logits (may be NULL) receives [n][classes]. With fnet != NULL (planned for `batch`) the float
 * QAT model runs on the same images (normalized as the loader does, with `norm`: the model's, the
 * same constants m was built with; NULL or unset: lb_dataset_norm(d)) and predictions are
 * compared. The float pass also runs alone (m == NULL) to time it. */
lb_status lb_int_evaluate(lb_int_model *m, lb_net *fnet, const lb_dataset *d, const lb_norm *norm,
                          int limit, int batch, lb_int_impl impl, int nthreads, int32_t *logits,
                          lb_int_eval *r);
/* Writes one line per image: the prediction, then the logits, space separated (the format of
 * the exported main.c). */
lb_status lb_int_write_logits(const char *path, const int32_t *logits, int n, int classes);

/* ---- export ---------------------------------------------------------------------------------- */
/* Writes self-contained C99 into `dir`: model.h (entry point, sizes), model_data.h (packed
 * weights, requantization constants, input table), model.c (integer kernels for the ops the
 * model uses, static buffers; no malloc, no float, no libm), main.c (host driver: idx file ->
 * one line per image, as lb_int_write_logits). Everything is written into a temporary directory
 * beside `dir` and renamed into place; an existing `dir` is replaced only if it holds a previous
 * export (its lowbit-export.txt), otherwise the call fails. `source` is recorded in the files;
 * *static_bytes (may be NULL) receives the size of model.c's static buffers. */
lb_status lb_int_export(const lb_int_model *m, const char *dir, const char *source,
                        size_t *static_bytes);
/* The two byte figures of the exported model (docs/mixed.md), from the exporter's own numbers:
 * *weight_bytes = every constant array model_data.h declares (packed weight codes, level tables,
 * requantization multipliers, shifts and offsets, the input table); *activation_bytes = every
 * static buffer model.c declares (the activation arenas as planned from the tensors' lifetimes,
 * the accumulator plane, the unpacked-codes row): the peak RAM of one inference. Descriptor
 * structs (a few dozen bytes a layer, ABI-dependent) are not counted. */
lb_status lb_int_export_bytes(const lb_int_model *m, size_t *weight_bytes,
                              size_t *activation_bytes);

#endif
