/* Private to src/train: collapse detection, the trainer's watch over a run that has stopped
 * learning or has broken (docs/robust.md). It decides and words the warnings; the trainer
 * reports them (progress callback, metrics JSONL) and decides whether to stop. It does not print,
 * allocate per step, or change the run. */
#ifndef LB_WATCH_H
#define LB_WATCH_H

#include "lb_nn.h"

typedef enum lb_collapse_kind {
    LB_CK_NONFINITE = 0, /* loss or a gradient not finite: the update was skipped */
    LB_CK_CHANCE,        /* training loss at ln(classes) with chance accuracy over a window */
    LB_CK_DIVERGING,     /* training loss far above ln(classes) over a window */
    LB_CK_FLOOR,         /* a learned quantizer step held at its floor */
    LB_CK_ZERO_CODES,    /* every code of a weight or input-activation quantizer is 0 */
    LB_CK_DEAD,          /* a layer's output is all zero for a whole batch */
    LB_CK_EPOCH_CHANCE,  /* an epoch ends with training and test accuracy at chance */
    LB_CK_EVAL_CHANCE,   /* test accuracy at chance while training accuracy is not */
    LB_CK_COUNT
} lb_collapse_kind;

const char *lb_collapse_kind_name(lb_collapse_kind k); /* "nonfinite", "chance", ... */

typedef struct lb_collapse_event {
    lb_collapse_kind kind;
    long step;         /* optimizer steps done when it was seen */
    char layer[64];    /* "" when not about one layer */
    char message[640]; /* one line, starts with "collapse:" */
} lb_collapse_event;

#define LB_WATCH_MAX_EVENTS 8

typedef struct lb_watch {
    int classes;
    double ln_c;
    /* what a constant prediction of the training split's class shares scores: its cross-entropy
     * (the shares' entropy; ln_c when balanced) and accuracy (the majority share; 0: 1/classes).
     * lb_watch_set_prior sets them; without it the classes count as balanced. */
    double chance_loss, train_major;
    int window;       /* steps a training-loss verdict looks at */
    long quiet_until; /* no loss-window verdicts before this step (warm-up + one window) */
    float lr_hint;    /* the run's peak rate, quoted in the advice */
    /* ring of the last `window` steps: loss and hits/seen */
    double *loss;
    float *acc;
    int pos, fill;
    unsigned reported; /* bit per kind: reported once per run (nonfinite: once per epoch) */
    long nonfinite_epoch;
    int n;
    lb_collapse_event ev[LB_WATCH_MAX_EVENTS]; /* pending, drained by the trainer */
    int epoch_events;                          /* events of the current epoch */
} lb_watch;

/* window: steps per loss verdict; quiet_until: first step at which one may be given. Allocates
 * the two rings once. */
lb_status lb_watch_init(lb_watch *w, int classes, int window, long quiet_until, float lr);
void lb_watch_free(lb_watch *w);
/* The training split's labels (the n the run reads, each in [0, classes)): on an imbalanced set
 * a network that has stopped learning predicts the class shares, so its loss sits at their
 * entropy and its accuracy at the majority share, not at ln(classes) and 1/classes. */
lb_status lb_watch_set_prior(lb_watch *w, const int32_t *labels, long n);
/* The class shares of n labels (labels outside [0, classes) are not counted): the majority's
 * share, and their entropy if `entropy`; both 0 when n is 0. */
lb_status lb_label_shares(const int32_t *labels, long n, int classes, double *major,
                          double *entropy);
void lb_watch_epoch_start(lb_watch *w);

/* Upper bound of accuracies that are "at chance": the larger of 1/classes and the majority share
 * `major`, plus three binomial standard deviations for n samples. */
double lb_watch_chance_bound(int classes, double major, long n);

/* After a step's forward (training): dead layers and all-zero codes. The scans stop at the first
 * nonzero value, so a healthy layer costs a few loads. */
void lb_watch_forward(lb_watch *w, const lb_net *n, int batch, long step);
/* A step whose loss or gradient was not finite (layer: the first non-finite gradient's tensor,
 * or "" for the loss). */
void lb_watch_nonfinite(lb_watch *w, long step, const char *layer);
/* After a completed step: the loss window, and the projection's report (at: channels at a floor,
 * node/is_weight as lb_net_project returns them). */
void lb_watch_step(lb_watch *w, const lb_net *n, long step, float loss, int hits, int seen, int at,
                   int node, int is_weight);
/* At an epoch's end, once the run has had its fair share of steps (at least quiet_until): returns
 * 1 (and queues an epoch_at_chance event) when both the epoch's training accuracy (over n_train
 * images) and the test accuracy are at chance; a test accuracy at chance after a training epoch
 * that was not queues an eval_at_chance warning and returns 0 (the model learns; its evaluation
 * disagrees, e.g. batch-norm running statistics). */
int lb_watch_epoch_end(lb_watch *w, int epoch, long step, float test_acc, double major, long n_test,
                       float train_acc, long n_train);

#endif
