/* lb_nn: a static graph of layers (nodes in topological order, each naming up to two producer
 * nodes, so skip connections are ordinary edges). Building records shapes and parameter sizes;
 * lb_net_plan then allocates everything once for a maximum batch: one contiguous parameter array,
 * one gradient array of the same layout, one state array (BN running statistics, quantizer
 * buffers) and one activation arena. Forward and backward are loops over the nodes calling lb_ops
 * kernels and lb_quant quantizers; nothing allocates per batch. Conv and linear nodes carry a
 * weight quantizer and an input-activation quantizer (LB_Q_NONE for float). */
#ifndef LB_NN_H
#define LB_NN_H

#include <stddef.h>
#include <stdint.h>

#include "lb_core.h"
#include "lb_ops.h"
#include "lb_optim.h"
#include "lb_quant.h"

typedef enum lb_op {
    LB_OP_INPUT = 0,
    LB_OP_CONV,
    LB_OP_LINEAR,
    LB_OP_BN,
    LB_OP_RELU,
    LB_OP_RELU6,
    LB_OP_MAXPOOL,
    LB_OP_AVGPOOL,
    LB_OP_GAP,
    LB_OP_ADD,
    LB_OP_SHORTCUT, /* ResNet option A: subsample + zero channel padding */
    LB_OP_FLATTEN,
    LB_OP_DROPOUT,
    LB_OP_ENCODE, /* spiking: a static input (or event frames) into T time steps */
    LB_OP_LIF,    /* spiking: leaky integrate-and-fire neurons over the T steps */
    LB_OP_LN,     /* layer norm over each frame's (c,h,w), no affine */
    LB_OP_TSUM,   /* spiking readout: sum (or mean) over the T steps */
    LB_OP_COUNT
} lb_op;

#define LB_NAME_MAX 48

/* How an LB_OP_ENCODE node turns its input into T steps (docs/snn.md). */
typedef enum lb_encoding {
    LB_ENC_DIRECT = 0, /* the same tensor every step */
    LB_ENC_RATE,       /* Bernoulli spikes with the pixel's intensity (input = pixel/255) */
    LB_ENC_EVENTS      /* input planes [T][c'] of event frames, reordered time-major */
} lb_encoding;
/* Key of the rate encoding's draws in evaluation: fixed, so every evaluation (float, integer,
 * exported C) sees the same spikes for an image, whatever its place in the batch. */
#define LB_RATE_EVAL_KEY 0x5A1E5EEDull

/* A LIF layer's neuron (lb_net_lif): the kernel's description (t, n, c, hw are filled per call)
 * plus its decay: fixed, or learned per layer or per channel (clamped to [0, 1] after each
 * update, as snnTorch clamps it in its forward). */
typedef struct lb_lif_cfg {
    lb_lif_desc k;
    float beta;
    int learn_beta; /* 0 fixed, 1 one per layer, 2 one per channel */
} lb_lif_cfg;

/* A named tensor in the parameter or state array. */
typedef struct lb_tensor_info {
    char name[LB_NAME_MAX + 16];
    int ndim;
    int shape[4];
    size_t off, n;
    lb_group group; /* parameters only */
} lb_tensor_info;

typedef struct lb_node {
    lb_op op;
    char name[LB_NAME_MAX];
    int in[2];   /* producer node ids, -1 when unused */
    int c, h, w; /* output shape of one sample */
    /* attributes */
    int k, stride, pad, groups, bias; /* conv (k also pool size) */
    float p;                          /* dropout rate */
    int nonneg;                       /* output known >= 0 (after ReLU etc.) */
    int binary;                       /* output known to be 0 or 1 (spikes) */
    int tm;                           /* frames per sample: 1, or T from an encode to a readout */
    lb_encoding enc;                  /* LB_OP_ENCODE */
    lb_lif_cfg lif;                   /* LB_OP_LIF (its learned beta is parameter pw) */
    float scale;                      /* LB_OP_TSUM: 1 (count) or 1/T (mean) */
    /* parameters: index into the parameter/state tables, -1 if none */
    int pw, pb;      /* conv/linear weight, bias; BN gamma, beta */
    int smean, svar; /* BN running statistics */
    int pwq, paq;    /* quantizer parameter tensors */
    int swq, saq;    /* quantizer state tensors */
    lb_qcfg wqcfg, aqcfg;
    lb_quant wq, aq;
    /* planned buffers */
    float *y, *dy;        /* output and its gradient, [max_batch][c][h][w] */
    float *xq;            /* conv/linear: quantized input (saved for backward) */
    float *wqbuf;         /* conv/linear: quantized weights */
    float *mean, *invstd; /* BN saved statistics */
    double *moments;      /* conv feeding a BN, and that BN: per-plane moments of the conv's output,
                             written by the conv's training forward, read by BN's (NULL: none) */
    float *mem;           /* LIF: membrane potential of every step (saved for backward) */
    float *part;          /* LIF with learned beta: per-plane partial gradients */
    int32_t *argmax;      /* maxpool */
    uint8_t *mask;        /* dropout */
    int consumers;        /* how many nodes read y */
    int alias;            /* y/dy share the producer's buffers (in-place ReLU, flatten, add) */
    int dx_inplace;       /* BN: dy is also the producer's dy (backward writes dx over dy) */
    int fused;            /* activation folded into its BN/add producer (which has act set), or
                             an add (with its activation) folded into its BN operand (res set) */
    int act;              /* BN, add: activation fused on the output (0, 1 ReLU, 2 ReLU6) */
    int res;              /* BN: node whose output its forward adds (an add folded in), 0 none */
    int dy_written;       /* during backward: dy already holds a contribution */
    /* MaQD (docs/models.md "--norm", docs/quantizers.md): norm on a BN node, 1 = Layer-Batch Norm
     * (per-sample statistics, lb_lbn_*; 0 batch norm); wstd on a conv/linear, weight
     * standardization before the weight quantizer, with its buffers (standardized weights, their
     * per-channel invstd) */
    int norm, wstd;
    float *wsbuf, *wsinv;
} lb_node;

struct lb_backend;

typedef struct lb_net {
    const struct lb_backend *be; /* op table (lb_backend.h); the fast CPU one by default */
    lb_node *nodes;
    int nnodes, cap;
    lb_tensor_info *params, *states;
    int nparams, nstates, pcap, scap;
    size_t nparam, nstate; /* float counts */
    float *param, *grad, *state;
    lb_arena act;
    float *scratch;
    size_t scratch_floats;
    float *dtmp;  /* quantized-input gradient before the activation quantizer */
    float *dwtmp; /* quantized-weight gradient before the weight quantizer */
    int max_batch, nthreads;
    int batch; /* batch of the last forward */
    int training;
    int reg_float; /* eval forwards leave LB_Q_REG weights unsnapped (lb_net_reg_float) */
    /* Every quantizer off (the float phase of --quant-delay, docs/robust.md): forwards and
     * backwards see the float inputs and weights, quantizer parameters get no gradient and
     * nothing initializes; regularizers on quantized weights are 0. */
    int quant_off;
    lb_rng rng; /* dropout */
    /* Eval-forward weight hook (borrowed, NULL: none): in an eval forward (training == 0), after
     * a conv/linear node with a weight quantizer has quantized its weights into wq (the node's
     * params[pw].n floats), wq_hook may rewrite them. The one place the fault module enters the
     * engine: a chip puts the weights as it holds them here (lb_chip_attach, lb_faults.h). */
    void (*wq_hook)(void *ctx, const struct lb_net *n, int node, float *wq);
    void *wq_hook_ctx;
    double *prof;  /* optional [2*nnodes] seconds per node (forward, backward), caller-owned */
    lb_status err; /* first error met while building (reported by lb_net_plan) */
} lb_net;

/* Building. Each call returns the new node id (or -1 after an error; the first error is
 * reported by lb_net_plan). Names must be unique; they prefix the parameter names
 * ("<name>.weight", "<name>.bias", "<name>.wq.step", ...). */
lb_net *lb_net_new(int c, int h, int w);
int lb_net_conv(lb_net *n, const char *name, int in, int cout, int k, int stride, int pad,
                int groups, int bias);
int lb_net_linear(lb_net *n, const char *name, int in, int out, int bias);
int lb_net_bn(lb_net *n, const char *name, int in);
int lb_net_act(lb_net *n, lb_op op, int in);                              /* RELU, RELU6, FLATTEN */
int lb_net_pool(lb_net *n, lb_op op, int in, int k, int stride, int pad); /* MAXPOOL, AVGPOOL */
int lb_net_gap(lb_net *n, int in);
int lb_net_add(lb_net *n, int a, int b);
int lb_net_shortcut(lb_net *n, int in, int cout, int stride);
int lb_net_dropout(lb_net *n, int in, float p);
/* Spiking pieces (docs/snn.md). encode: T >= 1 steps of the input (LB_ENC_EVENTS: the input has
 * T*c' planes, the output c'); every node after it runs on T*batch frames until a tsum. */
int lb_net_encode(lb_net *n, int in, lb_encoding enc, int t);
int lb_net_lif(lb_net *n, const char *name, int in, const lb_lif_cfg *cfg);
int lb_net_ln(lb_net *n, const char *name, int in);
int lb_net_tsum(lb_net *n, int in, int mean);
/* Runs the network on another op table (before lb_net_plan). */
void lb_net_set_backend(lb_net *n, const struct lb_backend *be);
/* Quantizers of a conv/linear node (before lb_net_plan). */
void lb_net_set_quant(lb_net *n, int node, const lb_qcfg *w, const lb_qcfg *a);

/* Allocates all arrays for batches up to max_batch with nthreads workers. Forward and backward
 * run with that many threads (they call lb_threads_set when the global count differs). */
lb_status lb_net_plan(lb_net *n, int max_batch, int nthreads);
/* Default initialization (Kaiming-normal fan_out for convs, PyTorch's default uniform for linear,
 * BN gamma 1 beta 0, running var 1), deterministic from seed. */
void lb_net_init(lb_net *n, uint64_t seed);
/* x[batch][c][h][w] -> logits (returned pointer into the last node's output). */
const float *lb_net_forward(lb_net *n, const float *x, int batch, int training);
/* From dlogits[batch][classes] of the last forward; fills n->grad. Returns a status so the NaN
 * trap can report. */
lb_status lb_net_backward(lb_net *n, const float *dlogits);
/* Sum of quantizer regularization losses (adds their gradients); 0 for LSQ/fixed. */
float lb_net_reg(lb_net *n);
/* After each optimizer update: every quantizer's projection (lb_quant_project). Returns how many
 * channels sit at a boundary (an LSQ step at its floor); the first such node in *node (0: none)
 * and whether it was its weight quantizer in *is_weight (both may be NULL). */
int lb_net_project(lb_net *n, int *node, int *is_weight);

/* ---- LB_Q_REG at the net level (src/nn/reg_net.c; docs/reg.md) ------------------------------
 * Sets every reg weight quantizer's reg_weight (the trainer's per-epoch lambda); returns how many
 * layers have one. */
int lb_net_reg_set_lambda(lb_net *n, float lambda);
/* methods.md's clamping after each weight update (lb_quant_reg_clamp on every reg weight
 * quantizer: only the Gaussian form moves weights). Returns how many weights moved. */
size_t lb_net_reg_clamp(lb_net *n);
/* on != 0: eval forwards use the float (unsnapped) weights of the table kinds (fixed, learned),
 * i.e. their training forward, for the float accuracy beside the snapped one; the step kind's
 * forward is LSQ's fake-quant either way. Quantizers not yet initialized still snap. */
void lb_net_reg_float(lb_net *n, int on);
/* Where the weights stand against their levels, over all reg weight quantizers: the regularizer
 * sum_l L_l without lambda (the loss term is lambda times it), the mean |w - nearest level| in
 * level spacings (R_0 of the table kinds, alpha of the step kind) and the share of weights within
 * a tenth of a spacing. Zeroes when the net has no initialized reg layer. */
typedef struct lb_reg_stats {
    int layers;
    double reg, dist_steps, near_share;
} lb_reg_stats;
lb_status lb_net_reg_stats(const lb_net *n, lb_reg_stats *out);
/* A loaded checkpoint's levels (initialized reg weight quantizers): every R entry and level
 * finite, the bit weights R_0..R_{b-1} positive (what the projection keeps), and the fixed and
 * step kinds' levels strictly increasing in k. LB_EFORMAT naming `path` and the layer otherwise.
 * (Learned levels need not be in k order: every search sorts them, docs/reg.md.) */
lb_status lb_net_reg_check(const lb_net *n, const char *path);

int lb_net_out(const lb_net *n); /* id of the output node */
int lb_net_classes(const lb_net *n);
/* Optimizer segments (one per parameter tensor); caller frees. */
lb_opt_segment *lb_net_segments(const lb_net *n, int *nseg);
int lb_net_find_param(const lb_net *n, const char *name);
int lb_net_find_state(const lb_net *n, const char *name);
/* Peak activation bytes planned, parameter count. */
size_t lb_net_act_bytes(const lb_net *n);
void lb_net_free(lb_net *n);
const char *lb_op_name(lb_op op);

#endif
