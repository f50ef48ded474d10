/* The end of the auto float phase (docs/robust.md, "The float phase"): whether a run from random
 * weights has started to learn, so that its LSQ quantizers may initialize. Not the phase's
 * switch in the network (lb_net.quant_off, set by the trainer) and not its resolution from the
 * options (recipe.c).
 *
 * Why open-ended: the phase exists so that LSQ's steps initialize from weights that carry
 * information. A fixed length (the warm-up) is enough where a set is learned within it, but on a
 * set that starts slowly (an image folder of 1,200 shapes: nothing learned in the first 200
 * steps) the quantizers started from an untrained network, its 8-bit head step fell to its floor
 * and a W2A2 resnet20 was stopped at chance. The decision needs only the loss's moving average,
 * a number the checkpoint records, so a resumed run decides as the uninterrupted one. */
#include <math.h>
#include <stdio.h>

#include "lb_train.h"

int lb_float_phase_step(lb_train_cfg *c, long step, float loss, int window, double chance_loss,
                        long total, long planned) {
    if (!c->quant_delay_open || step >= c->quant_delay) return 0;
    if (isfinite(loss)) {
        double a = window > 1 ? 1.0 / window : 1.0;
        c->quant_delay_ema =
            isnan(c->quant_delay_ema) ? loss : c->quant_delay_ema + a * (loss - c->quant_delay_ema);
    }
    if (step + 1 < c->quant_delay) return 0; /* not at the phase's end yet */
    int learned = c->quant_delay_ema < LB_FLOAT_PHASE_LEARNED * chance_loss;
    if (!learned && step + 2 <= total / 2) {
        c->quant_delay = step + 2; /* one more step with the quantizers off */
        return 0;
    }
    c->quant_delay_open = 0;
    if (c->quant_delay <= planned) return 0;
    return learned ? 1 : 2;
}

void lb_float_phase_note(const lb_train_cfg *c, int how, double chance_loss, char *note,
                         size_t cap) {
    if (how == 1)
        snprintf(note, cap,
                 "float phase: the training loss (moving average) is %.4g, below %.0f%% of chance "
                 "(%.4g): the quantizers start after step %ld, from weights that have started to "
                 "learn",
                 c->quant_delay_ema, 100 * LB_FLOAT_PHASE_LEARNED, chance_loss, c->quant_delay);
    else
        snprintf(note, cap,
                 "float phase: the training loss (moving average) is still %.4g, not below %.0f%% "
                 "of chance (%.4g), at half the run: the quantizers start after step %ld anyway",
                 c->quant_delay_ema, 100 * LB_FLOAT_PHASE_LEARNED, chance_loss, c->quant_delay);
}
