/* lb_train: the training and evaluation driver (data -> train -> evaluate -> checkpoint ->
 * resume), the checkpoint mapping of a network + optimizer onto safetensors, and the speed
 * benchmark. It reports progress through a callback and never prints; the CLI draws the bar. */
#ifndef LB_TRAIN_H
#define LB_TRAIN_H

#include "lb_data.h"
#include "lb_faults.h"
#include "lb_models.h"
#include "lb_nn.h"
#include "lb_optim.h"

/* Defaults that adapt to the data (docs/robust.md). epochs == 0 means: at least
 * LB_DEFAULT_EPOCHS epochs and at least LB_MIN_STEPS optimizer steps (so a 1,500-image set trains
 * 84 epochs, Fashion-MNIST 15), at most LB_MAX_AUTO_EPOCHS; warmup_epochs < 0 means a linear
 * warm-up over the first LB_WARMUP_PCT percent of the steps, at least LB_WARMUP_MIN steps (a
 * tenth of a shorter run). */
#define LB_DEFAULT_EPOCHS 15
#define LB_MIN_STEPS 1000
#define LB_MAX_AUTO_EPOCHS 1000
#define LB_WARMUP_PCT 5
#define LB_WARMUP_MIN 100 /* steps (or a tenth of a shorter run) */
#define LB_LR_BATCH 128   /* the default rates are for this batch, scaled linearly */
/* The default batch: LB_LR_BATCH, halved (down to LB_MIN_AUTO_BATCH) while an epoch of the
 * training set would have fewer than LB_MIN_EPOCH_STEPS steps, so a small set's first epoch is
 * more than a few warm-up steps (docs/robust.md). */
#define LB_MIN_EPOCH_STEPS 32
#define LB_MIN_AUTO_BATCH 16
#define LB_LEVELS_LR 1e-6f /* methods.md sec. 2: R trains at 1e-6 (momentum 0.9, cosine) */
#define LB_STR_(x) #x
#define LB_STR(x) LB_STR_(x)

/* What the trainer does when it detects a collapse (docs/robust.md): stop after the first epoch
 * that ends at chance (non-zero exit, LB_ECOLLAPSE), or only warn. Warnings are printed and
 * recorded either way. */
typedef enum lb_on_collapse { LB_ON_COLLAPSE_STOP = 0, LB_ON_COLLAPSE_WARN } lb_on_collapse;
lb_status lb_on_collapse_parse(const char *s, lb_on_collapse *out);

typedef struct lb_train_cfg {
    lb_model_cfg model;
    char data_dir[512];
    lb_image_opts img; /* image folders: size, channels, held-out fraction (seed: .seed); zero
                        * fields take lb_imgdir_load's defaults, or on --resume the model's */
    char out[512];     /* checkpoint path (written atomically after every epoch) */
    char resume[512];  /* checkpoint to continue from ("" = fresh start) */
    char init[512];    /* checkpoint whose weights (and normalization) start a fresh run
                        * (fine-tuning), "" = none */
    char metrics[512]; /* JSON lines, one per epoch ("" = <out>.metrics.jsonl) */
    int epochs;        /* 0: chosen from the data set's size (LB_DEFAULT_EPOCHS, LB_MIN_STEPS) */
    int batch, threads;
    /* --batch came from the user. Otherwise a batch left at its default LB_LR_BATCH shrinks for
     * a small training set when lb_train_run starts (lb_train_default_batch); a caller that sets
     * another batch keeps it. */
    int batch_given;
    int batch_auto; /* set by the trainer: the batch was its default and adapted (printed) */
    int stop_after; /* stop (as if killed) after this epoch; 0 = run all */
    int train_limit, test_limit;
    uint64_t seed;
    lb_opt_cfg opt;
    lb_sched sched;      /* base rate, kind, warm-up; total filled from epochs */
    float warmup_epochs; /* converted to steps; < 0: LB_WARMUP_PCT percent of the run */
    /* --quant-delay (docs/robust.md, "The float phase"): the first steps train with every
     * quantizer off, so the quantizers initialize from weights and activations that have
     * started to learn. quant_delay_epochs < 0 (auto, the default): the warm-up's steps for a
     * run from random weights with LSQ on either side (not spiking, not --learn-bits or sliced),
     * else none; >= 0: that many epochs. quant_delay is the resolved step count a checkpoint
     * records (a resume keeps it); a checkpoint saved at step <= quant_delay has no quantizers
     * yet and is refused by eval and export. The auto phase is open-ended: at its planned end
     * (the warm-up) it goes on, one step at a time, while the training loss's moving average is
     * not below LB_FLOAT_PHASE_LEARNED of chance, at most to half the run (lb_float_phase_step).
     * quant_delay_open is 1 while it may still go on; quant_delay_ema is that average (NaN
     * before the first step). Both are recorded, so a resume inside the phase decides as the
     * uninterrupted run does. */
    float quant_delay_epochs;
    long quant_delay;
    int quant_delay_open;
    double quant_delay_ema;
    float qlr_scale; /* quantizer parameters' rate = lr * qlr_scale */
    /* --head-lr (docs/robust.md, "The classifier's rate"): the classifier layer's parameters
     * learn at lr * scale; head_lr < 0 (auto, the default) takes the scale from the curvature
     * of the loss at the first batch (SGD only), >= 0 is the scale itself. head_lr_scale is
     * the resolved scale a checkpoint records (0: not resolved yet), so a resume keeps it. */
    float head_lr, head_lr_scale;
    float levels_lr; /* peak rate of learned reg levels R (LB_GROUP_LEVELS), same schedule */
    float label_smoothing;
    lb_augment aug;
    lb_on_collapse on_collapse;
    int lr_given; /* sched.base came from the user (only for the printed summary) */
    /* --optimizer / --wd came from the user: otherwise a spiking model trains with its own
     * recipe (AdamW, wd 1e-4, lr 1e-3: seed 000's; docs/snn.md) */
    int opt_given, wd_given;
    /* --learn-bits (docs/mixed.md): 0 none, 1 AdaQAT; scope 0 per layer, 1 one pair for the net;
     * the widths' learning rate and cost weight lambda (halved once the weights settle), and
     * the share of the run's steps in which they move (--bits-until; 1: all) */
    int learn_bits, bits_scope;
    float bits_lr, bits_lambda, bits_until;
    /* --quant sliced (docs/mixed.md, methods.md sec. 4): --phases A,B,C epochs (fixed-bit QAT
     * with the quantizer parameters frozen, mixed phase with the size penalty, frozen fine-tune;
     * all 0: the whole run is the mixed phase), --budget-weights / --budget-acts in kB (1000
     * bytes; 0: none), and the period K of the quantizer updates (--sliced-every, 20). */
    int phases[3];
    double budget_w_kb, budget_a_kb; /* judged to the byte: lb_sliced_budget_bytes */
    int sliced_every;
    /* --log-scales N: every N optimizer steps, each quantizer's scales as one JSON line in the
     * metrics file (0: never). Like the paths, the caller's choice on --resume; not recorded. */
    int log_scales;
} lb_train_cfg;

#define LB_SLICED_EVERY 20 /* methods.md: quantizer gradients applied every 20 steps */
void lb_train_cfg_default(lb_train_cfg *c);
/* Learning rate used when the config leaves it 0: 0.02 for cnn, 0.1 for the ResNets, at batch
 * LB_LR_BATCH, scaled linearly with the batch. */
float lb_train_default_lr(const char *arch, int batch);
/* The default batch for a training set of n images (LB_MIN_EPOCH_STEPS, LB_MIN_AUTO_BATCH). */
int lb_train_default_batch(int n);

typedef struct lb_progress {
    int epoch, epochs; /* 1-based */
    int step, steps;   /* within the epoch */
    float loss, acc;   /* running means over the epoch so far */
    float img_per_s, eta_s;
    int done; /* 1 at the epoch's end, with test results filled */
    float test_loss, test_acc, epoch_s, lr;
    float fire_rate; /* spiking models, at the epoch's end: mean firing rate of the LIF layers */
    /* Not NULL: a line for the user instead of progress (the schedule at the start; with
     * warning set, a collapse warning, which starts with "collapse:"). */
    const char *note;
    int warning;
    int float_phase; /* at the epoch's end: evaluated with the quantizers off (--quant-delay) */
} lb_progress;

typedef void (*lb_progress_fn)(void *ctx, const lb_progress *p);

/* Trains per cfg; writes the checkpoint after each epoch and a metrics line per epoch (collapse
 * warnings as lines {"event":"collapse",...} between them). The final test accuracy lands in
 * *final_acc (may be NULL). A collapse with LB_ON_COLLAPSE_STOP returns LB_ECOLLAPSE after that
 * epoch's checkpoint and metrics are written. */
lb_status lb_train_run(const lb_train_cfg *cfg, lb_progress_fn fn, void *ctx, float *final_acc);

/* The data set a model reads from dir (train or test split): lb_dataset_load_dir_opts (img as
 * given: options for image folders, NULL otherwise), except for a spiking model with --encoding
 * events: an event folder (.bin / .aedat, docs/events.md) binned into its T frames by time,
 * img->h/w the frame size (0: the sensor's), or any static set turned into events by the DVS
 * emulator, seeded by seed, its first `limit` samples only (0: all). */
lb_status lb_model_data_load(const lb_model_cfg *m, const char *dir, int train,
                             const lb_image_opts *img, uint64_t seed, int limit, lb_dataset *out);

/* Evaluation of a planned network on a data set (eval mode), batch by batch, the images
 * normalized with `norm`: the model's (lb_model_cfg.norm); NULL or unset falls back to
 * lb_dataset_norm(d), right only for models trained on data with the same statistics. */
lb_status lb_evaluate(lb_net *n, const lb_dataset *d, const lb_norm *norm, int limit, int batch,
                      float *loss, float *acc);
/* The same, also copying the logits of every image evaluated, in data order, into `logits`
 * (min(limit, d->n) x classes floats; limit 0 = all; NULL = not wanted). */
lb_status lb_evaluate_logits(lb_net *n, const lb_dataset *d, const lb_norm *norm, int limit,
                             int batch, float *logits, float *loss, float *acc);

/* Checkpoints. A checkpoint holds every parameter and state tensor by name, optimizer state
 * ("optim.m.<name>", "optim.v.<name>"), and metadata: the model config (lowbit.model, JSON,
 * including the input normalization as "norm_mean"/"norm_std", 3 numbers each), the training
 * config (lowbit.train, JSON), epoch, step, optimizer step count and the RNG state. Reading
 * validates the normalization (finite, std > 0; LB_EFORMAT naming the file). Checkpoints written
 * before it was recorded have none: model.norm comes back unset and evaluation, export and a
 * resumed run fall back to lb_dataset_norm of the data they read (for resume, the training split,
 * which is what those runs used). */
typedef struct lb_ckpt_info {
    lb_model_cfg model;
    lb_train_cfg train; /* as recorded (paths excluded) */
    int epoch;          /* epochs completed */
    long step;
    float test_acc;
    int weights_only; /* lowbit.train, lowbit.epoch or lowbit.step missing (docs/checkpoint.md):
                       * no training state; absent training fields hold the defaults; for
                       * evaluation, export and --init, not --resume; lb_ckpt_save writes
                       * such a file when set (o must then be NULL) */
    /* lb_ckpt_save: the data's class names (image folders; borrowed, model.classes of them) or
     * NULL, recorded as metadata lowbit.data. Reading leaves it NULL: lb_ckpt_class_names. */
    char *const *class_names;
    /* lb_ckpt_save: JSON recorded as metadata lowbit.adaqat (borrowed) or NULL. Reading leaves it
     * NULL: lb_ckpt_meta. */
    const char *adaqat_json;
} lb_ckpt_info;

lb_status lb_ckpt_save(const char *path, const lb_net *n, const lb_optim *o,
                       const lb_ckpt_info *info);
/* Reads the metadata only (to build the right model). */
lb_status lb_ckpt_peek(const char *path, lb_ckpt_info *info);
/* Loads tensors into a planned network built from the same config (and the optimizer state when
 * o != NULL); every tensor must be present with its exact shape. A weights-only file (no
 * lowbit.train/epoch/step, no optim.* tensors; lowbit.format and lowbit.model suffice) loads with
 * o == NULL;
 * with o != NULL (resuming) it is refused with a message saying so. */
lb_status lb_ckpt_load(const char *path, lb_net *n, lb_optim *o, lb_ckpt_info *info);
/* Initializes a planned network from another run's checkpoint (e.g. FP32 weights for QAT
 * fine-tuning): weights, biases, BN parameters and running statistics must all be present with
 * matching shapes; quantizer parameters are left to their data-driven initialization. */
lb_status lb_ckpt_load_weights(const char *path, lb_net *n);
/* LB_EINVAL naming the file when it was saved in its float phase (step <= the recorded
 * --quant-delay steps): its quantizers are not initialized, no quantized model exists yet. */
lb_status lb_ckpt_check_started(const char *path, const lb_ckpt_info *info);
/* The auto float phase ends once the network has started to learn: the moving average of its
 * training loss is below this share of the chance level (ln(classes), or the entropy of the
 * training split's class shares). On a set that starts slowly, LSQ initializing from weights
 * that have learned nothing yet costs accuracy and can drive an 8-bit step to its floor
 * (docs/robust.md, "The float phase"). */
#define LB_FLOAT_PHASE_LEARNED 0.9
/* After optimizer step `step` (0-based) of a run inside its open float phase: updates the
 * loss's moving average (window steps; a non-finite loss is skipped) and, at the phase's planned
 * end, either moves the end one step on (not learning yet, and before half of `total`) or
 * closes it. Returns 1 when it closes after going past its planned length because the loss
 * fell, 2 when it closes at half the run without that, 0 otherwise (still open, or closed on
 * time). */
int lb_float_phase_step(lb_train_cfg *c, long step, float loss, int window, double chance_loss,
                        long total, long planned);
/* One line for the closing of an extended phase (what lb_float_phase_step returned as `how`). */
void lb_float_phase_note(const lb_train_cfg *c, int how, double chance_loss, char *note,
                         size_t cap);
/* After steps_done optimizer steps of a run with a float phase of quant_delay steps, its
 * quantizers have not initialized yet: they do on the first quantized training step. */
static inline int lb_in_float_phase(long quant_delay, long steps_done) {
    return quant_delay > 0 && steps_done <= quant_delay;
}
/* The class names a checkpoint records (models trained on image folders): *names is one
 * allocation (free() it), or NULL with *n = 0 when the file records none. A malformed lowbit.data
 * or a count other than the model's classes is LB_EFORMAT naming the file. */
lb_status lb_ckpt_class_names(const char *path, char ***names, int *n);
/* A metadata value of a checkpoint: *value is a malloc'd copy, or NULL when the key is absent. */
lb_status lb_ckpt_meta(const char *path, const char *key, char **value);
/* Loads a checkpoint into a freshly built and planned network for inference. */
lb_status lb_ckpt_open_model(const char *path, int max_batch, int threads, lb_net **out,
                             lb_ckpt_info *info);

typedef struct lb_bench_result {
    float img_per_s;                       /* median over steps */
    float step_ms, fwd_ms, bwd_ms, opt_ms; /* medians */
    float gflops;                          /* 3 x forward MAC FLOPs x img/s */
    double fwd_macs;                       /* per image */
} lb_bench_result;

/* Per-node mean milliseconds per step (forward, backward), reported by lb_bench_run. */
typedef void (*lb_bench_profile_fn)(void *ctx, const lb_node *node, double fwd_ms, double bwd_ms);
/* Trains `steps` timed steps (after `warmup`) on real data batches and reports medians; with
 * prof_fn, also the time of every node (the timing itself costs a clock read per node). */
lb_status lb_bench_run(const lb_train_cfg *cfg, int warmup, int steps, lb_bench_result *r,
                       lb_bench_profile_fn prof_fn, void *prof_ctx);
double lb_net_fwd_macs(const lb_net *n); /* conv + linear MACs per image */

/* ---- fine-tuning for a chip (src/train/finetune.c, ft_reg.c; docs/faults.md "Fine-tuning") -----
 * Methods (methods.md sec. 3): LOWBIT the fault-aware regularizer to each weight's nearest
 * reachable level (lb_freg_mse) in place of the plain reg regularizer, plus the periodic reset to
 * the chip's quantized faulty copy, from the nearest reachable snap (start_snap); with
 * multipliers the snaps program each weight's nearest own level (docs/faults.md); chip_forward
 * puts the chip's values in every training forward (straight-through to the floats); INJECT
 * plain QAT whose training forwards see a fresh random map per epoch (the chip's rate and SA1
 * share); QFALT the all-reachable-levels Gaussian regularizer (sigma shrinking, lambda growing over
 * the first half), weights clamped to the outer levels, periodic reset with a fresh optimizer.
 * Every evaluation is the chip's. */
typedef enum lb_ft_method { LB_FT_LOWBIT = 0, LB_FT_INJECT, LB_FT_QFALT, LB_FT_COUNT } lb_ft_method;
const char *lb_ft_method_name(lb_ft_method m); /* "lowbit", "inject", "qfalt"; "?" */
lb_status lb_ft_method_parse(const char *s, lb_ft_method *out);

#define LB_FT_LAMBDA 1000.0f /* lowbit's regularizer weight (the reg quantizer's lambda_max) */
/* lowbit's weight on a chip whose map has multipliers (lb_fmap_has_var): chosen on held-out cnn
 * chips at 40% variability, where 1000 held weights at their own levels too hard (docs/faults.md,
 * "The pull's strength on a chip with variability") */
#define LB_FT_LAMBDA_VAR 30.0f
#define LB_FT_QFALT_LAMBDA 1e-4f /* QFALT's final lambda (its loss has no Q/N: per weight) */
#define LB_FT_RESET_UNITS 20     /* the run is cut into this many units for the reset schedule */
#define LB_FT_RESET_F1 5         /* methods.md's reference periods, in units */
#define LB_FT_RESET_F2 4

typedef struct lb_ft_cfg {
    char ckpt[512], chip[512], out[512];
    char metrics[512]; /* "" = <out>.metrics.jsonl */
    char data_dir[512];
    lb_image_opts img;
    lb_ft_method method;
    int epochs; /* >= 1 (0 with eval_only) */
    int batch, threads, train_limit, test_limit;
    uint64_t seed;
    float lr;     /* 0: half of lb_train_default_lr (finetune.c says why) */
    float lambda; /* LOWBIT: lambda of lb_freg_mse; QFALT: its final lambda; 0: lb_ft_lambda */
    /* one method's lambda (--lambda lowbit=X,qfalt=Y): > 0 wins over `lambda` for that method, so a
     * sweep can hold lowbit at one value and leave QFALT at its own (lb_ft_cfg_lambda) */
    float lambda_of[LB_FT_COUNT];
    int reset_units; /* 0: one unit per epoch (the reference's epoch ends) */
    int reset_f1, reset_f2;
    int nearest; /* evaluate with the nearest reachable code (lb_chip_attach's option) */
    /* LOWBIT: start from the weights snapped to their nearest reachable codes, the point the
     * regularizer pulls to, so a short run does not spend its steps getting there (our design;
     * lb_ft_cfg_default sets it, --no-start-snap clears it) */
    int start_snap;
    int eval_only; /* evaluate CKPT on the chip and stop (no training, nothing written) */
    /* LOWBIT: every training forward sees the weights as the chip holds them (each at its
     * nearest reachable code, or own level with multipliers), the gradient applied to the float
     * weights (straight-through); lb_ft_cfg_default sets it, --no-chip-forward clears it */
    int chip_forward;
} lb_ft_cfg;
void lb_ft_cfg_default(lb_ft_cfg *c); /* lambda 0 = the method's default */
/* The lambda a fine-tune uses: `given` when > 0, else the method's default for the chip (LOWBIT:
 * LB_FT_LAMBDA_VAR when its map has multipliers, lb_fmap_has_var, else LB_FT_LAMBDA; QFALT:
 * LB_FT_QFALT_LAMBDA); INJECT: 0, it has no chip regularizer. Pure. */
float lb_ft_lambda(lb_ft_method m, float given, int has_var);
/* The lambda given for method m: c->lambda_of[m] when > 0, else c->lambda (0: the default). */
float lb_ft_cfg_lambda(const lb_ft_cfg *c, lb_ft_method m);
/* Parses the value of --lambda into c: a number >= 0 for every method that takes one (c->lambda),
 * or comma-separated method=X pairs, each method once (c->lambda_of; INJECT takes none). */
lb_status lb_ft_lambda_parse(const char *s, lb_ft_cfg *c);

/* The periodic reset (methods.md): at the end of unit u of `units`, when u % f1 == f1 - 1 in the
 * first half (2u < units) and u % f2 == f2 - 1 in the second. Pure. */
int lb_ft_reset_due(int unit, int units, int f1, int f2);
/* The step at whose end unit u of `units` ends, of a run of `total` steps (u+1)*total/units - 1. */
long lb_ft_unit_end(int unit, int units, long total);

typedef struct lb_ft_result {
    float acc_before, acc_after; /* on the chip, the test subset */
    double reg;                  /* the last epoch's mean regularizer value */
    int resets;
    double seconds;          /* fine-tuning wall time (without the evaluation before) */
    float lambda;            /* the regularizer weight used (lb_ft_lambda; QFALT: its final) */
    uint64_t changed, total; /* coded weights whose chip code differs, before fine-tuning */
} lb_ft_result;
/* Fine-tunes cfg->ckpt for the chip cfg->chip: writes cfg->out atomically after every epoch
 * (the trainer's checkpoint writer) and a metrics line per epoch (chip_acc, reg, lambda,
 * resets). `lowbit eval OUT --chip MAP` gives acc_after. */
lb_status lb_ft_run(const lb_ft_cfg *cfg, lb_progress_fn fn, void *ctx, lb_ft_result *res);

/* ---- sweeps over chips (src/train/sweep.c; docs/faults.md "Sweeps") ----------------------------
 * Per point (rate x variability) and chip: the map (seed ft.seed + chip, so one chip's maps are
 * nested in the rate), the chip's accuracy before fine-tuning (method "before") and after each
 * method. One small result file per cell (DIR/cells/<cell>.json, written atomically): a cell
 * that has one is not redone. Then DIR/sweep.csv and DIR/sweep.json (atomically). */
#define LB_SWEEP_MAX_POINTS 64
typedef struct lb_sweep_cfg {
    lb_ft_cfg ft; /* ckpt, data, limits, threads, seed, lr, lambda; epochs = fine-tune epochs */
    char dir[512];
    double rates[LB_SWEEP_MAX_POINTS], vars[LB_SWEEP_MAX_POINTS];
    int nrates, nvars, chips;
    double sa1_share;
    lb_fvar var_kind;
    lb_ft_method methods[LB_FT_COUNT];
    int nmethods;
    int keep;        /* keep the fine-tuned checkpoints (DIR/ckpt/) */
    int all_layers;  /* 0: the first and last coded layers are spared (lb_fmap_spare), 1: none */
    int reg_twos;    /* reg layers stored in two's complement (lb_fmap_specs_twos), 0: the index */
    int lsq_signmag; /* LSQ/fixed signed layers in sign-magnitude (lb_fmap_specs_signmag), 0: twos
                      */
    int collect;     /* compute nothing: every cell of the grid (and r0_v0_c0_before) must be in
                      * DIR/cells already, e.g. copied from sweeps run point by point */
} lb_sweep_cfg;
typedef struct lb_sweep_progress {
    int done, total, reused; /* cells; reused: found finished on disk */
    double eta_s;            /* < 0: unknown yet */
    const char *cell;        /* the cell just finished */
    float acc;
} lb_sweep_progress;
typedef void (*lb_sweep_fn)(void *ctx, const lb_sweep_progress *p);
lb_status lb_sweep_run(const lb_sweep_cfg *c, lb_sweep_fn fn, void *ctx);

#endif
