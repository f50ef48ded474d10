/* lb_models: the model zoo as lb_nn graphs (cnn, resnet20, resnet18; 1 or 3 input channels, any
 * input size from 28) and the quantization plan that assigns quantizers to their conv/linear
 * layers: W/A bits for the body, separate bits for the first and last layer, per-layer overrides,
 * signed or unsigned activations decided by whether the layer input is known non-negative. */
#ifndef LB_MODELS_H
#define LB_MODELS_H

#include "lb_data.h"
#include "lb_nn.h"
#include "lb_quant.h"

typedef struct lb_quant_plan {
    lb_qkind kind;       /* LB_Q_NONE: float32; LB_Q_REG: weights reg, activations LSQ */
    int wbits, abits;    /* body */
    int first_bits;      /* first layer weights (its input, the image, stays float) */
    int last_bits;       /* last layer weights and input activation */
    int per_channel;     /* per-output-channel weight steps */
    char overrides[256]; /* "name=W/A,name=W/A": per-layer bits, e.g. "conv2=2/4" */
    /* LB_Q_REG only (docs/reg.md): the weight quantizers' levels and regularizer form, and the
     * lambda schedule the trainer applies (lb_reg_lambda: lambda0 until the fraction reg_ramp of
     * the epochs, then geometric growth to reg_lambda_max in the last epoch). */
    lb_reg_levels reg_levels;
    lb_reg_form reg_form;
    float reg_lambda0, reg_lambda_max, reg_ramp;
} lb_quant_plan;

/* Largest graph description (arch "graph") a model config holds: ~150 bytes a node. */
#define LB_GRAPH_MAX 49152

typedef struct lb_model_cfg {
    char arch[32]; /* cnn | resnet20 | resnet18 | graph (an imported model, docs/onnx.md) */
    int in_c, in_h, in_w, classes;
    lb_quant_plan q;
    /* The input normalization the model is trained with: a fresh training run sets it from
     * the training split (lb_dataset_norm), a resumed or --init run takes the checkpoint's.
     * Every evaluation and export uses it; unset only for checkpoints written before it was
     * recorded (see lb_ckpt_info). */
    lb_norm norm;
    /* arch "graph": the network as JSON (docs/onnx.md; checkpoint metadata lowbit.graph) */
    char graph[LB_GRAPH_MAX];
} lb_model_cfg;

/* Defaults: fp32 plan, first/last 8 bits, W4A4 body when kind is set, normalization unset; reg:
 * fixed levels, MSE, lambda 100 -> 1000 from half the run (methods.md's reference schedule). */
void lb_model_cfg_default(lb_model_cfg *c);
lb_status lb_model_build(const lb_model_cfg *cfg, lb_net **out);
/* Applies cfg->q to an already built (unplanned) net. */
lb_status lb_quant_plan_apply(const lb_quant_plan *q, lb_net *n);
/* Builds the nodes a graph description lists into n (fresh from lb_net_new); `what` names the
 * source in errors (LB_EFORMAT for a malformed description, the builder's status otherwise). */
lb_status lb_graph_build(const char *json, const char *what, lb_net *n);
/* Names of the architectures, NULL-terminated. */
const char *const *lb_model_archs(void);

#endif
