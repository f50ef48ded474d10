/* Private to src/train: config <-> JSON for checkpoint metadata. */
#ifndef LB_TRAIN_INTERNAL_H
#define LB_TRAIN_INTERNAL_H

#include "lb_adaqat.h"
#include "lb_train.h"
#include "watch.h"

char *lb_model_cfg_to_json(const lb_model_cfg *m); /* malloc'd (cJSON) */
lb_status lb_model_cfg_from_json(const char *js, const char *path, lb_model_cfg *m);
/* The "snn" object of a spiking model's metadata (config_snn.c); obj is the model's cJSON. */
void lb_snn_cfg_to_json(void *obj, const lb_snn_cfg *s);
lb_status lb_snn_cfg_from_json(const void *obj, const char *path, lb_snn_cfg *s);
char *lb_train_cfg_to_json(const lb_train_cfg *c);
lb_status lb_train_cfg_from_json(const char *js, const char *path, lb_train_cfg *c);
/* lowbit.data (ckpt_data.c): the JSON for info->class_names (NULL when there are none), and
 * reading it back into info->train.img.test_split (absent: nothing changes). */
char *lb_ckpt_data_json(const lb_ckpt_info *info);
struct lb_st_file;
lb_status lb_ckpt_data_read(const struct lb_st_file *f, const char *path, lb_ckpt_info *info);

/* A run's planned resources (shared by the trainer and the benchmark). */
typedef struct run {
    lb_dataset train, test;
    lb_net *net;
    lb_optim opt;
    float *opt_state;
    lb_opt_segment *seg;
    int nseg;
    lb_loader *loader;
    float *x, *probs, *dlogits;
    int32_t *y;
    float *state_save; /* the state array before a step, restored when the step is skipped */
    int sync_loader;   /* set before lb_run_setup: prepare batches in lb_loader_next, no thread */
    int auto_batch;    /* set before lb_run_setup: c->batch may shrink for a small set (lb_train) */
    int ckpt_classes;  /* set before lb_run_setup: the classes of the checkpoint the weights come
                        * from (resume, --init, finetune), 0 for a fresh model */
    lb_adaqat *ada;    /* --learn-bits adaqat: the widths (NULL otherwise) */
    long ada_until;    /* the widths move in steps before this one (0: every step) */
    struct lb_sliced_run *sl; /* --quant sliced: phases, penalty, saved parameters (or NULL) */
    /* Fine-tuning for a chip (finetune.c), NULL otherwise: called in every step right after the
     * backward, before the quantizers' own regularizers and the update; returns a loss to add and
     * adds its gradients to net->grad (the fault-aware regularizers; the end of a fault
     * injection, which puts the float weights back under the gradient of the faulty ones). */
    double (*reg_hook)(void *ctx, lb_net *n);
    void *reg_hook_ctx;
    /* --head-lr (head_rate.c): the classifier node (-1: none), whether its scale is still to be
     * measured at the next step with a finite loss, the peak rate it is judged against, and
     * the measurement (resolved: set once, read and cleared by the trainer) */
    int head, head_pending, head_resolved;
    float head_lr_peak, head_scale;
    double head_lambda, head_bound;
    double *fire; /* spiking models: per node, the sum over samples of its mean firing rate */
    long fire_n;  /* samples in it */
} run;

lb_status lb_run_setup(run *r, lb_train_cfg *c);
/* The classifier's rate (head_rate.c, docs/robust.md). lb_head_node: the linear layer that
 * makes the logits (through flatten/dropout), -1 when there is none. lb_head_rate_bound: the
 * largest stable rate of the configured SGD along curvature lambda. lb_head_curvature: the top
 * eigenvalue of the loss's Hessian in the head's weights and bias on the batch of the last
 * forward (b samples, softmax probs[b][C]); NaN when the layer is too large to measure.
 * lb_head_rate_apply: lr_scale on the head's weight, bias and weight-quantizer segments. setup
 * resolves what it can before the first step (note: a start line, or ""); measure does the rest
 * after the first forward; note describes the measurement. */
int lb_head_node(const lb_net *n);
double lb_head_rate_bound(const lb_opt_cfg *o, double lambda);
lb_status lb_head_curvature(const lb_net *n, int node, int b, const float *probs, double *lambda);
/* The same for features x[b][d] (and a bias when bias != 0) and C classes, by power iteration
 * (lb_head_curvature's arithmetic, for the tests). */
lb_status lb_head_gn_top(const float *x, int b, int d, int bias, const float *probs, int C,
                         double *lambda);
void lb_head_rate_apply(const lb_net *n, int node, lb_opt_segment *seg, int nseg, float scale);
void lb_head_rate_setup(run *r, lb_train_cfg *c, float lr_peak, char *note, size_t cap);
lb_status lb_head_rate_measure(run *r, const lb_train_cfg *c, int b, const float *probs);
void lb_head_rate_note(const run *r, char *note, size_t cap);
/* --init sources (init_src.c): a checkpoint, or an ONNX file (name ending in .onnx) imported on
 * the fly; peek gives its model config (an ONNX model's: arch graph, pixel/255). */
int lb_init_is_onnx(const char *path);
lb_status lb_init_peek(const char *path, lb_ckpt_info *info);
lb_status lb_init_load(const char *path, lb_net *n);
/* One optimization step on the batch in r->x, r->y (size b), the trainer's and the benchmark's:
 * returns the loss (NaN when the step was skipped) and the hits in *nc. A step whose loss or
 * gradients are not finite changes nothing: the state array (BN running statistics, quantizer
 * flags) is restored and no update is applied; the watch hears of it, and of everything else it
 * checks. tm (may be NULL) gets the clock after the forward and after the backward. */
lb_status lb_train_step(run *r, const lb_train_cfg *c, lb_watch *w, long step, int b, float lr,
                        float *loss, int *nc, double *tm);
/* Resolves what the config leaves to the data (recipe.c): epochs (0), warm-up (< 0), and the
 * per-step schedule; errors for a schedule that leaves nothing to train. note (may be NULL)
 * gets a one-line summary. */
lb_status lb_train_resolve(lb_train_cfg *c, int n_train, int steps_per_epoch, lb_sched *sch,
                           char *note, size_t cap);
void lb_run_free(run *r);
/* The metrics JSON lines (metrics_log.c): an epoch's record (extra: more ,"key":value fields,
 * may be empty), and one record per pending collapse event of the watch, each also handed to fn
 * (may be NULL) as a warning; the watch's queue is emptied. */
lb_status lb_metrics_append_epoch(const char *path, const lb_train_cfg *c, const lb_progress *p,
                                  int collapses, long skipped, const char *extra);
lb_status lb_metrics_drain_events(lb_watch *w, const char *metrics, int epoch, lb_progress_fn fn,
                                  void *ctx);
/* --log-scales (scales_log.c): appends {"event":"scales","epoch","step","layers":[{"layer","q":
 * "w"|"a","kind","po2","log2_step":[per channel],"e" (grad-po2) or "s" (lsq)}]} to path. */
lb_status lb_scales_append(const char *path, const lb_net *n, int epoch, long step);

/* Spiking models in the trainer (snn_train.c): the firing-rate accumulators (no-op for other
 * models); the MSE count loss of counts[b][classes] against r->y, its gradient in r->dlogits; the
 * rates of the last forward added; the epoch's rates appended to a metrics fragment as
 * ,"firing_rate":{layer:rate,...} (their mean over layers in *mean) and reset. */
lb_status lb_snn_train_setup(run *r, const lb_train_cfg *c);
/* A fresh spiking run's defaults: AdamW, wd 1e-4 and lr 1e-3 unless the user chose them. */
void lb_snn_recipe(lb_train_cfg *c);
float lb_snn_loss(const run *r, const lb_train_cfg *c, int b, const float *counts);
void lb_snn_fire_accum(run *r, int b);
void lb_snn_fire_metrics(run *r, char *buf, size_t cap, float *mean);

/* --learn-bits in the trainer (adaqat_train.c): the options' check (LB_EINVAL naming the option),
 * and the widths of a planned run: from the model's quantizers on a fresh run, from the
 * checkpoint's lowbit.adaqat on --resume (r->ada stays NULL without --learn-bits). */
lb_status lb_adaqat_cfg_check(const lb_train_cfg *c);
lb_status lb_adaqat_setup(run *r, const lb_train_cfg *c);
/* The step from which --bits-until keeps the widths still, for a run of total steps (0: never). */
long lb_adaqat_until_step(const lb_train_cfg *c, long total);

/* --quant sliced in the trainer (sliced_train.c, docs/mixed.md). cfg_check: the options alone
 * (LB_EINVAL naming the option); setup: after the schedule is resolved and the net built (phases
 * against the epochs, budgets against the smallest possible model; r->sl NULL without sliced
 * quantizers). epoch_start sets the phase; before_update (after the backward) adds the size
 * penalty's gradient in the mixed phase, clips the quantizer gradients to [-d, d], saves the
 * parameters when this step must not move them and returns the penalty; after_update puts them
 * back. epoch_end re-estimates BN statistics after the last epoch. metrics: ,"phase",.. fields;
 * final: the exported model's bytes against the budgets (LB_EBUDGET saying by how much). */
typedef struct lb_sliced_run lb_sliced_run;
lb_status lb_sliced_cfg_check(const lb_train_cfg *c);
lb_status lb_sliced_setup(run *r, const lb_train_cfg *c, int steps_per_epoch);
/* The exported model's weight and activation bytes (lb_int_export_bytes of the net as it is). */
lb_status lb_sliced_export_bytes(const run *r, const lb_train_cfg *c, size_t *wb, size_t *ab);
/* A --budget-weights/--budget-acts value in kB as bytes, rounded to the byte (0: none). */
double lb_sliced_budget_bytes(double kb);
/* The epoch's phase; at the start of the fine-tune phase the weight budget is enforced
 * (lb_sliced_fit_budget), as it is at the end of a run without one (lb_sliced_epoch_end). */
lb_status lb_sliced_epoch_start(run *r, const lb_train_cfg *c, int epoch);
/* Lowers weight slices to the next storage width, least added quantization error per byte first,
 * until the exported weight bytes are within --budget-weights (sliced_budget.c). note: what was
 * done ("" when the model fitted already). */
lb_status lb_sliced_fit_budget(run *r, const lb_train_cfg *c, char *note, size_t cap);
double lb_sliced_before_update(run *r, long step);
void lb_sliced_after_update(run *r);
lb_status lb_sliced_epoch_end(run *r, const lb_train_cfg *c, int epoch);
void lb_sliced_metrics(const run *r, char *buf, size_t cap);
lb_status lb_sliced_final(const run *r, const lb_train_cfg *c, char *note, size_t cap);
void lb_sliced_free(run *r);

/* --quant reg in the trainer (reg_sched.c): the options' check (LB_EINVAL naming the option);
 * each epoch's lambda (lb_reg_lambda over the run's epochs), set on every reg weight quantizer
 * and returned (0 for other runs); the learned levels' rate at a step whose rate is lr; and the
 * metrics fields of an epoch (lambda, reg, level_dist_steps, near_level_share, snapped_acc,
 * float_acc; "" for other runs) as a JSON fragment starting with a comma. */
lb_status lb_reg_cfg_check(const lb_train_cfg *c);
float lb_reg_epoch_start(run *r, const lb_train_cfg *c, int epoch);
float lb_reg_levels_rate(const lb_train_cfg *c, float lr);
lb_status lb_reg_epoch_metrics(run *r, const lb_train_cfg *c, float lambda, float test_acc,
                               char *buf, size_t cap);

#endif
