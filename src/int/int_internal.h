/* Private to src/int and src/export: the kernel table of one implementation (scalar reference,
 * AVX2, AVX-512 VNNI), scratch sizing and small element helpers. Not a public interface. */
#ifndef LB_INT_INTERNAL_H
#define LB_INT_INTERNAL_H

#include <math.h>

#include "lb_int.h"

/* Pixels per packed im2col tile of the fast conv kernels (a multiple of 32). */
#define LB_INT_TILE 128

typedef struct lb_int_kernels {
    /* One image: y = requant(conv(x, w)) per op (geometry, weights, rq, clamp from op). */
    void (*conv)(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                 unsigned char *scratch);
    /* y[i] = clamp(requant(x[i], rq), lo, hi) stored as yt (U8, S8 or S32). */
    void (*requant_row)(const int32_t *x, size_t n, const lb_int_rq *rq, int32_t lo, int32_t hi,
                        lb_int_type yt, void *y);
} lb_int_kernels;

extern const lb_int_kernels lb_int_kernels_ref;
/* Defined in int_avx2.c / int_vnni.c (compiled with their ISA flags; call only when the CPU has
 * them). */
void lb_int_conv_avx2(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                      unsigned char *scratch);
void lb_int_requant_row_avx2(const int32_t *x, size_t n, const lb_int_rq *rq, int32_t lo,
                             int32_t hi, lb_int_type yt, void *y);
void lb_int_conv_vnni(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                      unsigned char *scratch);
void lb_int_requant_row_vnni(const int32_t *x, size_t n, const lb_int_rq *rq, int32_t lo,
                             int32_t hi, lb_int_type yt, void *y);

/* Scratch of the fast conv kernels for one op: the zero-bordered input copy (int16 or bytes,
 * with slack for whole-vector reads past a row), the packed tile of `rows` output rows, the
 * im2col offsets. */
typedef struct lb_int_scratch_layout {
    int rows;
    size_t tile_off, koff_off, total;
} lb_int_scratch_layout;

void lb_int_scratch_plan(const lb_int_op *op, lb_int_scratch_layout *L);
size_t lb_int_conv_scratch(const lb_int_op *op); /* L.total */
/* Fills the fast-path layouts (kq, k2, w4, w2, wsum) of a conv op from op->w. */
lb_status lb_int_op_pack(lb_int_op *op);
/* int_store.c: the tables of a model under construction (-1 / NULL when out of memory), every
 * conv's fast layouts, and the per-image arena plan (lifetimes, first-fit offsets, scratch). */
int lb_int_tensor_new(lb_int_model *m, const char *name, int c, int h, int w, lb_int_type type,
                      double scale, int32_t lo, int32_t hi, int bits);
lb_int_op *lb_int_op_new(lb_int_model *m, lb_int_opkind kind, const char *name);
lb_status lb_int_pack_all(lb_int_model *m);
void lb_int_plan(lb_int_model *m);

static inline size_t lb_int_type_size(lb_int_type t) {
    return t == LB_IT_S32 ? 4 : t == LB_IT_S16 ? 2 : 1;
}

static inline size_t lb_int_numel(const lb_int_tensor *t) {
    return (size_t)t->c * t->h * t->w;
}

static inline int32_t lb_int_load(const void *x, lb_int_type t, size_t i) {
    switch (t) {
    case LB_IT_U8:
        return ((const uint8_t *)x)[i];
    case LB_IT_S8:
        return ((const int8_t *)x)[i];
    case LB_IT_S16:
        return ((const int16_t *)x)[i];
    default:
        return ((const int32_t *)x)[i];
    }
}

static inline void lb_int_store(void *y, lb_int_type t, size_t i, int32_t v) {
    switch (t) {
    case LB_IT_U8:
        ((uint8_t *)y)[i] = (uint8_t)v;
        break;
    case LB_IT_S8:
        ((int8_t *)y)[i] = (int8_t)v;
        break;
    case LB_IT_S16:
        ((int16_t *)y)[i] = (int16_t)v;
        break;
    default:
        ((int32_t *)y)[i] = v;
        break;
    }
}

/* ---- the derivation's shared helpers (int_model.c, int_weights.c) -----------------------------
 */
/* The float quantizer's code of v (lb_quant_uniform_forward: true division, clamp, round half
 * to even), so derived codes equal the QAT model's exactly. */
static inline int32_t lb_int_qcode(float v, float step, int qn, int qp) {
    float t = v / step;
    float lo = (float)-qn, hi = (float)qp;
    t = t < lo ? lo : t;
    t = t > hi ? hi : t;
    return (int32_t)rintf(t);
}

static inline int lb_int_is_reg_fixed(const lb_qcfg *c) {
    return c->kind == LB_Q_REG && c->levels == LB_REG_FIXED;
}
/* LB_EINVAL "layer 'name' (op): why"; LB_ENOMEM for the derivation. */
lb_status lb_int_fail_layer(const lb_node *d, const char *why);
lb_status lb_int_oom(void);

typedef struct lb_int_wcodes {
    int16_t *w;         /* [cout][K] codes */
    double *sw;         /* [cout] real value of one code step */
    unsigned char *idx; /* [cout][K] stored level index (table kinds), else NULL */
    int16_t *tab;       /* [ntab][2^ibits] code of each index, else NULL */
    int ntab, ibits;
    double sumabs; /* max over channels of sum |code| */
} lb_int_wcodes;
/* Table kinds: the stored index and a code table (reg fixed/learned levels, DoReFa). */
int lb_int_has_table(const lb_qcfg *c);
/* Codes of conv/linear d ([cout][K]); on error nothing is left allocated. */
lb_status lb_int_weight_codes(const lb_net *n, const lb_node *d, int K, lb_int_wcodes *o);
void lb_int_wcodes_free(lb_int_wcodes *o);

#endif
