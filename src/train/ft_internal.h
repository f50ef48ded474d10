/* Private to src/train: the per-step side of fine-tuning for a chip (ft_reg.c), shared with its
 * driver (finetune.c). Not the schedule of the run nor its files. */
#ifndef LB_FT_INTERNAL_H
#define LB_FT_INTERNAL_H

#include "lb_faults.h"
#include "train_internal.h"

/* One regularizer slice: a channel of a coded layer (per-tensor quantizers: the whole layer). */
typedef struct ft_slice {
    int node, layer, ch;
} ft_slice;

typedef struct ft_state {
    lb_ft_method method;
    lb_net *net;
    const lb_chip *chip; /* the evaluation chip: its map and node -> layer table */
    ft_slice *sl;
    int nsl;
    double *loss, *dR;    /* per slice, planned once: no allocation per step */
    double lambda, sigma; /* the current lambda; QFALT's sigma in level spacings */
    double reg_sum;       /* sum of the regularizer over the steps of the epoch */
    long reg_steps;
    /* INJECT: a second chip (no eval hook) on a map redrawn every epoch, and the float weights
     * kept while a step sees the faulty ones */
    lb_fmap inj_map;
    lb_chip inj;
    float *saved;
    int snapped;
    double inj_rate, inj_share, inj_var;
    lb_fvar inj_kind;
    int inj_spare; /* the chip's first and last layers are healthy: so are the injected ones */
} ft_state;

lb_status lb_ft_state_init(ft_state *s, lb_ft_method m, lb_net *net, const lb_chip *chip,
                           const char *arch, int chip_forward);
void lb_ft_state_free(ft_state *s);
/* run.reg_hook: the method's regularizer over every slice (in parallel, summed in slice order),
 * or the end of an injection (the float weights back). */
double lb_ft_hook(void *ctx, lb_net *n);
/* INJECT: before a step, the weights as the injected chip holds them (the floats kept); after
 * a step that skipped the hook (non-finite loss), the floats back. */
lb_status lb_ft_inject_begin(ft_state *s);
/* LOWBIT with chip_forward: the same for the evaluation chip `c`, each weight at its nearest
 * reachable code (lb_ft_snap_reachable's rule). */
lb_status lb_ft_forward_begin(ft_state *s, lb_chip *c);
/* The float weights snapped to their nearest reachable codes (with multipliers: their nearest own
 * level, the chip's rule then), whatever rule c evaluates with. */
lb_status lb_ft_snap_reachable(lb_chip *c);
void lb_ft_inject_end(ft_state *s);
/* INJECT: a fresh random map at the chip's rate, SA1 share and variability. */
lb_status lb_ft_inject_draw(ft_state *s, uint64_t seed);
/* QFALT: every coded weight clamped into its channel's outer (healthy) levels. */
void lb_ft_clamp(ft_state *s);

#endif
