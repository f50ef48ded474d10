/* lb_quant: quantizers as differentiable parts that own learnable parameters. A quantizer sees a
 * tensor as [outer][ch][inner]; one set of parameters per `ch` (per-channel) or ch == 1
 * (per-tensor). Weights [cout][k]: outer = 1, ch = cout or 1. Activations [n][chw]: outer = n
 * (given per call), ch = 1. Parameters live in the network's parameter arena (so optimizers and
 * checkpoints see them as ordinary tensors); non-learned buffers (init flags, running values) in
 * its state arena. This header knows nothing of layers or graphs. */
#ifndef LB_QUANT_H
#define LB_QUANT_H

#include <stddef.h>

#include "lb_core.h"

typedef enum lb_qkind {
    LB_Q_NONE = 0, /* identity, no parameters */
    LB_Q_FIXED,    /* uniform, step = max|v| / Qp recomputed on every training forward */
    LB_Q_LSQ       /* uniform, learned step (Esser et al. 2020) */
} lb_qkind;

typedef struct lb_qcfg {
    lb_qkind kind;
    int bits;        /* 2..8 */
    int is_signed;   /* signed: [-2^(b-1), 2^(b-1)-1]; unsigned: [0, 2^b-1] */
    int per_channel; /* one step per `ch` */
} lb_qcfg;

typedef struct lb_quant lb_quant;

typedef struct lb_quant_vt {
    const char *name;
    int (*nparam)(const lb_qcfg *cfg, int ch);
    int (*nstate)(const lb_qcfg *cfg, int ch);
    /* training != 0 may perform a data-driven initialization on first use. */
    void (*forward)(lb_quant *q, size_t outer, const float *x, float *y, int training);
    /* Writes dx (per dx_acc) and OVERWRITES q->dparam. */
    void (*backward)(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                     int dx_acc);
    /* Optional regularization loss added to the task loss; adds its gradient to dx. NULL: none. */
    float (*reg)(lb_quant *q, size_t outer, const float *x, float *dx);
    /* Effective step of channel c after the last forward (integer export reads it). */
    float (*step)(const lb_quant *q, int c);
} lb_quant_vt;

struct lb_quant {
    const lb_quant_vt *vt;
    lb_qcfg cfg;
    int ch;
    size_t inner;
    size_t n_grad; /* N of LSQ's gradient scale 1/sqrt(N*Qp) */
    int qn, qp;    /* clip bounds in steps: codes in [-qn, qp] */
    float gscale;
    float *param, *dparam; /* nparam learnable floats and their gradient */
    float *state;          /* nstate non-learned floats (checkpointed) */
    int nparam, nstate;
};

const lb_quant_vt *lb_quant_vt_for(lb_qkind kind);
lb_status lb_qcfg_check(const lb_qcfg *cfg);
const char *lb_qkind_name(lb_qkind kind);
lb_status lb_qkind_parse(const char *s, lb_qkind *out);
int lb_quant_nparam(const lb_qcfg *cfg, int ch);
int lb_quant_nstate(const lb_qcfg *cfg, int ch);
/* Binds a quantizer to its storage; param/dparam/state point into the network's arenas (may be
 * NULL when the counts are 0). Sets defaults (steps 1, not initialized). */
lb_status lb_quant_bind(lb_quant *q, const lb_qcfg *cfg, int ch, size_t inner, size_t n_grad,
                        float *param, float *dparam, float *state);
void lb_quant_forward(lb_quant *q, size_t outer, const float *x, float *y, int training);
void lb_quant_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                       int dx_acc);
float lb_quant_reg(lb_quant *q, size_t outer, const float *x, float *dx);
float lb_quant_step(const lb_quant *q, int c);

#endif
