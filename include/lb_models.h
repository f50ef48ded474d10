/* lb_models: the model zoo as lb_nn graphs (cnn, resnet20, resnet18, mobilenetv1/v2,
 * efficientnet-lite0; 1 or 3 channels, any input size from 28) and the quantization plan that
 * assigns quantizers to their conv/linear layers: W/A bits for the body, separate bits for the
 * first and last layer, per-layer overrides, signed or unsigned activations decided by whether the
 * layer input is known non-negative. */
#ifndef LB_MODELS_H
#define LB_MODELS_H

#include "lb_data.h"
#include "lb_nn.h"
#include "lb_quant.h"

typedef struct lb_quant_plan {
    lb_qkind kind; /* --quant: LB_Q_NONE float32; REG: weights reg, activations LSQ; DOREFA:
                    * weights DoReFa, activations PACT; other kinds: both */
    /* --wquant / --aquant: 0 follows `kind`, else 1 + the lb_qkind of the weights / activations
     * (lb_quant_plan_wkind/_akind resolve them) */
    int wquant, aquant;
    int wbits, abits; /* body */
    int first_bits;   /* first layer weights (its input, the image, stays float) */
    int last_bits;    /* last layer weights and input activation */
    int per_channel;  /* per-output-channel weight steps */
    int po2;          /* --po2: LSQ weight and activation steps are powers of two */
    /* msqe-po2 / grad-po2 (docs/quantizers.md), copied into their lb_qcfg: --msqe-outlier off and
     * --msqe-moments off as LB_PO2X_NO_MASK / _NO_MOMENTS, --po2-round, --po2-stable-after */
    int po2_flags, po2_round, stable_after;
    /* "name=W/A,name=W/A": per-layer bits, e.g. "conv2=2/4"; learned bit-widths record every
     * layer's here (docs/mixed.md), hence the room for resnet18's 21 layers */
    char overrides[1024];
    /* LB_Q_REG only (docs/reg.md): the weight quantizers' levels and regularizer form, and the
     * lambda schedule the trainer applies (lb_reg_lambda: lambda0 until the fraction reg_ramp of
     * the epochs, then geometric growth to reg_lambda_max in the last epoch). */
    lb_reg_levels reg_levels;
    lb_reg_form reg_form;
    float reg_lambda0, reg_lambda_max, reg_ramp;
    /* roundclip (MaQD, docs/quantizers.md) body layers: --wstates (2K+1, odd, 3..255) and
     * --astates (K+1, 2..256; on an input that may be negative the grid is mirrored, -K..K);
     * 0: the states of the bits. First/last layers and --layer-bits take the states of their
     * bits (2^b-1 weights, 2^b activations). surrogate: dQ/dx of the round. */
    int wstates, astates;
    lb_surrogate surrogate;
    /* --layer-states "name=W/A,...": per-layer round-clip states (first/last layers too) */
    char layer_states[512];
} lb_quant_plan;

/* Spiking models (arch snn-vgg, snn-resnet; docs/snn.md). */
typedef enum lb_readout { LB_READ_COUNT = 0, LB_READ_MEMBRANE } lb_readout;
typedef enum lb_loss { LB_LOSS_CE = 0, LB_LOSS_MSE_COUNT } lb_loss;
typedef enum lb_snn_norm { LB_SNN_LN = 0, LB_SNN_BN } lb_snn_norm;
typedef struct lb_snn_cfg {
    int timesteps;        /* T, 1..256 */
    lb_encoding encoding; /* direct / rate for images, events for event frames */
    lb_lif_cfg lif;       /* every LIF layer's neuron */
    lb_readout readout;   /* spike count of the output LIF, or mean of the last layer over time */
    lb_loss loss;         /* cross-entropy on the readout, or snnTorch's MSE count loss */
    float rate_on, rate_off; /* MSE count targets: floor(T*on) for the label, floor(T*off) */
    lb_snn_norm norm;        /* after each conv: layer norm over (C,H,W) (seed 000) or BN */
    float dropout;           /* in the head, between its two linear layers */
} lb_snn_cfg;

/* Largest graph description (arch "graph") a model config holds: ~150 bytes a node. */
#define LB_GRAPH_MAX 49152

typedef struct lb_model_cfg {
    char arch[32]; /* cnn | resnet20 | resnet18 | mobilenetv1 | mobilenetv2 | efficientnet-lite0 |
                    * snn-vgg | snn-resnet | graph (imported) */
    int in_c, in_h, in_w, classes;
    float width_mult; /* MobileNets' and EfficientNet-Lite0's channel multiplier (docs/models.md);
                       * 1 for the others */
    lb_quant_plan q;
    /* The input normalization the model is trained with: a fresh training run sets it from
     * the training split (lb_dataset_norm), a resumed or --init run takes the checkpoint's.
     * Every evaluation and export uses it; unset only for checkpoints written before it was
     * recorded (see lb_ckpt_info). */
    lb_norm norm;
    lb_snn_cfg snn; /* arch snn-*: the spiking model's neurons, encoding, readout and loss */
    /* MaQD (docs/models.md "--norm"): norm_layer 1 = every BN node runs as Layer-Batch Norm
     * (0: batch norm); weight_std: every conv standardizes its weights per output channel before
     * its weight quantizer. Refused by lb_model_build: lbn on a model without BN, weight_std
     * with --quant reg (its regularizer reads the raw weights). */
    int norm_layer, weight_std;
    /* arch "graph": the network as JSON (docs/onnx.md; checkpoint metadata lowbit.graph) */
    char graph[LB_GRAPH_MAX];
} lb_model_cfg;

/* Defaults: fp32 plan, first/last 8 bits, W4A4 body when kind is set, normalization unset; reg:
 * fixed levels, MSE, lambda 100 -> 1000 from half the run (methods.md's reference schedule). */
void lb_model_cfg_default(lb_model_cfg *c);
lb_status lb_model_build(const lb_model_cfg *cfg, lb_net **out);
/* The weight and activation quantizers the plan gives the body (LB_Q_NONE: float). */
int lb_qkind_is_po2x(lb_qkind k); /* msqe-po2 or grad-po2 */
lb_qkind lb_quant_plan_wkind(const lb_quant_plan *q);
lb_qkind lb_quant_plan_akind(const lb_quant_plan *q);
/* LB_EINVAL naming the option for a quantizer on the wrong side: pact on weights; dorefa or reg
 * on activations; reg weights without --quant reg (its lambda schedule belongs to --quant reg);
 * --wstates/--astates out of range or without a roundclip side. */
lb_status lb_quant_plan_check(const lb_quant_plan *q);
/* Applies cfg->q to an already built (unplanned) net (lb_quant_plan_check first). */
lb_status lb_quant_plan_apply(const lb_quant_plan *q, lb_net *n);
/* Builds the nodes a graph description lists into n (fresh from lb_net_new); `what` names the
 * source in errors (LB_EFORMAT for a malformed description, the builder's status otherwise). */
lb_status lb_graph_build(const char *json, const char *what, lb_net *n);
/* Names of the spiking options' values, in enum order, NULL-terminated (CLI and checkpoint
 * metadata use the same words). */
extern const char *const lb_encoding_names[];   /* direct rate events */
extern const char *const lb_reset_names[];      /* subtract zero */
extern const char *const lb_spike_grad_names[]; /* atan fast-sigmoid */
extern const char *const lb_readout_names[];    /* count membrane */
extern const char *const lb_loss_names[];       /* ce mse-count */
extern const char *const lb_snn_norm_names[];   /* ln bn */
extern const char *const lb_learn_beta_names[]; /* off layer channel */
/* Index of s in names, -1 when absent. */
int lb_name_index(const char *const *names, const char *s);
/* 1 for the spiking architectures (snn-*). */
int lb_model_is_snn(const lb_model_cfg *c);
/* 1 for a spiking model with event input (--encoding events: T x polarity planes). */
int lb_model_reads_events(const lb_model_cfg *c);
/* LB_EINVAL naming the option for a spiking configuration out of range (T, beta, threshold,
 * slope, membrane bits, rates, dropout) or a readout/loss/encoding pair that cannot work. */
lb_status lb_snn_cfg_check(const lb_snn_cfg *s);
/* Names of the architectures, NULL-terminated. */
const char *const *lb_model_archs(void);

#endif
