/* lb_adaqat: AdaQAT's learned bit-widths (methods.md sec. 4, docs/mixed.md): real-valued widths
 * per layer (or one pair for the net), their finite-difference update from three losses on the
 * same batch, the floor and the freeze on oscillation, and the trainer's plumbing (probe forwards,
 * checkpoint metadata, metrics). It is not a quantizer: it only calls lb_quant_set_bits. */
#ifndef LB_ADAQAT_H
#define LB_ADAQAT_H

#include <stddef.h>
#include <stdint.h>

#include "lb_nn.h"

#define LB_ADAQAT_MAX 64       /* learned layers */
#define LB_ADAQAT_LR 0.1f      /* width learning rate (methods.md) */
#define LB_ADAQAT_LAMBDA 0.02f /* cost weight; halved (0.01) once every weight width is frozen */
#define LB_ADAQAT_FLOOR 1.5f   /* so that b = ceil(N) >= 2 */
#define LB_ADAQAT_MAXBITS 8
#define LB_ADAQAT_RISES 10 /* a width freezes once it rose back from one value more than this */
/* Share of a run's steps in which the widths move; the rest trains the weights at the widths
 * reached (our design, docs/mixed.md: a width that drops in the last steps, at a learning rate
 * near 0, leaves weights and BN statistics no time to follow). 1: the whole run. */
#define LB_ADAQAT_UNTIL (2.0f / 3.0f)

typedef enum lb_learn_bits { LB_LEARN_BITS_NONE = 0, LB_LEARN_BITS_ADAQAT } lb_learn_bits;
typedef enum lb_bits_scope { LB_BITS_LAYER = 0, LB_BITS_NET } lb_bits_scope;
lb_status lb_learn_bits_parse(const char *s, lb_learn_bits *out); /* "none", "adaqat" */
lb_status lb_bits_scope_parse(const char *s, lb_bits_scope *out); /* "layer", "net" */
const char *lb_learn_bits_name(lb_learn_bits m);
const char *lb_bits_scope_name(lb_bits_scope s);

/* One real-valued width: b = ceil(n) in 2..8; rises[v] counts the times b went from v to v+1. */
typedef struct lb_bitwidth {
    float n;
    int frozen;
    int rises[LB_ADAQAT_MAXBITS + 1];
} lb_bitwidth;

typedef struct lb_adaqat {
    lb_bits_scope scope;
    int nlayers;             /* learned layers (body conv/linear; not the first and last) */
    int node[LB_ADAQAT_MAX]; /* their node ids */
    int npairs;              /* 1 (net) or nlayers (layer): layer i uses pair (npairs>1 ? i : 0) */
    lb_bitwidth w[LB_ADAQAT_MAX], a[LB_ADAQAT_MAX];
    float lr, lambda;
} lb_adaqat;

int lb_bitwidth_bits(const lb_bitwidth *b); /* ceil(n) */
/* lambda, or lambda/2 once the weights have settled: every weight width frozen (as AdaQAT's code
 * switches 0.02 -> 0.01 when its list of layers still learning weight widths is empty). */
float lb_adaqat_lambda(const lb_adaqat *s);
/* Which pair a step probes and updates: step mod npairs (net scope: always 0). Per layer, a
 * finite difference needs its own lowered forward; to keep AdaQAT's three forwards per step, the
 * layers take turns (as AdaQAT's code re-picks the layer to update every step), so each layer's
 * width moves once every npairs steps. Derived from the step count: nothing to checkpoint. */
int lb_adaqat_turn(const lb_adaqat *s, long step);
/* One update of pair `turn` from the losses of the normal forward (L), the one with that pair's
 * weight width at b-1 (Lw) and the one with its activation width at b-1 (La). probed_w/probed_a
 * 0: that side was not lowered (frozen, or b = 2, where a 1-bit probe does not exist) and its
 * difference counts as 0. Weights first: g_w = (L - Lw) + lambda * b_a, then activations with the
 * updated b_w: g_a = (L - La) + lambda * b_w; N <- clamp(N - lr * g, floor, 8); a rise of b from v
 * counts in rises[v], the 11th freezes the width (at v+1). A non-finite loss skips its side.
 * Pure: no net, no I/O (unit-tested on a stub loss). */
void lb_adaqat_update(lb_adaqat *s, int turn, double L, double Lw, double La, int probed_w,
                      int probed_a);

/* The learned layers of a planned net (quantized weights and activations of a uniform kind:
 * lsq, fixed, dorefa, pact), widths starting at their quantizers' bits. LB_EINVAL when none. */
lb_status lb_adaqat_init(lb_adaqat *s, const lb_net *n, lb_bits_scope scope, float lr,
                         float lambda);
/* Sets every learned quantizer to b = ceil(N). */
lb_status lb_adaqat_apply(const lb_adaqat *s, lb_net *n);
/* The same after a width update, for good: an initialized LSQ quantizer whose bits change keeps
 * its range, its steps (and their floors) scaled by Qp_old / Qp_new (our design, docs/mixed.md;
 * the probes' lowered bits keep the step, as AdaQAT's code does). */
lb_status lb_adaqat_commit(const lb_adaqat *s, lb_net *n);
/* The two extra forwards for pair `turn` (training mode, same batch, same dropout masks; the
 * state array and RNG are restored after each, so only the normal forward moves BN statistics):
 * *Lw and *La, NaN when that side is not probed (*probed_w / *probed_a 0). state_save holds
 * n->nstate floats, probs b * classes (scratch). Ends with the widths applied. */
lb_status lb_adaqat_probe(const lb_adaqat *s, lb_net *n, int turn, const float *x, const int32_t *y,
                          int b, float label_smoothing, float *probs, float *state_save, double *Lw,
                          double *La, int *probed_w, int *probed_a);
/* "name=W/A,..." for every conv/linear of the net as it is now (a model config's layer_bits:
 * the checkpointed model builds with the learned bits). LB_EINVAL when cap is too small. */
lb_status lb_adaqat_layer_bits(const lb_net *n, char *buf, size_t cap);
/* Checkpoint metadata lowbit.adaqat (malloc'd JSON; floats round-trip exactly) and back: the
 * layers must be those of s (from lb_adaqat_init on the same model), widths in [floor, 8] with
 * ceil(N) equal to the bits the model was built with; else LB_EFORMAT naming path. */
char *lb_adaqat_to_json(const lb_adaqat *s, const lb_net *n);
lb_status lb_adaqat_from_json(const char *js, const char *path, const lb_net *n, lb_adaqat *s);
/* The metrics fields of an epoch as a JSON fragment starting with a comma ("" when s is NULL). */
void lb_adaqat_metrics(const lb_adaqat *s, const lb_net *n, char *buf, size_t cap);

#endif
