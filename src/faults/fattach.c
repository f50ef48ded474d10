/* Which tensors of a network a fault map covers: the coded weight tensors of conv/linear layers
 * (methods.md sec. 3), named after their layer. Not the trainer's use of the map. Kept apart from
 * the map files so the file parsers build (and fuzz) without the network code. */
#include "lb_faults.h"
#include "lb_nn.h"

#include <stdio.h>

lb_status lb_fmap_specs_of_net(const struct lb_net *net, lb_flayer_spec *specs, int cap, int *n) {
    int cnt = 0;
    for (int i = 0; i < net->nnodes; i++) {
        const lb_node *nd = &net->nodes[i];
        if (nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR) continue;
        const lb_qcfg *q = &nd->wqcfg;
        /* Kinds that store codes: the reg kinds store the level index k; LSQ and fixed store
         * their signed code in two's complement (an unsigned grid's code is its own index). */
        if (q->kind != LB_Q_REG && q->kind != LB_Q_LSQ && q->kind != LB_Q_FIXED) continue;
        if (nd->pw < 0) continue;
        /* the chip codes and snaps the raw weights, but a standardized layer quantizes (w -
         * mean)/std: refused rather than a chip holding codes the model never computes */
        if (nd->wstd)
            return lb_error_set(LB_EINVAL,
                                "layer '%s': weight standardization (--weight-std) has no fault "
                                "map form yet (a chip would code the raw weights)",
                                nd->name);
        if (cnt < cap) {
            lb_flayer_spec *s = &specs[cnt];
            if (snprintf(s->name, sizeof s->name, "%s", nd->name) >= (int)sizeof s->name)
                return lb_error_set(LB_EINVAL, "layer '%s': name too long for a fault map",
                                    nd->name);
            s->n = (uint64_t)net->params[nd->pw].n;
            s->bits = q->bits;
            s->enc = q->kind == LB_Q_REG || !q->is_signed ? LB_FENC_INDEX : LB_FENC_TWOS;
            s->twos_ok = q->kind == LB_Q_REG && q->bits >= 2;
            s->signmag_ok = s->enc == LB_FENC_TWOS;
        }
        cnt++;
    }
    *n = cnt;
    if (cnt > cap)
        return lb_error_set(LB_EINVAL, "network has %d coded weight tensors, room for %d", cnt,
                            cap);
    return LB_OK;
}

int lb_fmap_specs_twos(lb_flayer_spec *specs, int n) {
    int changed = 0;
    for (int i = 0; i < n; i++)
        if (specs[i].twos_ok && specs[i].enc != LB_FENC_TWOS)
            specs[i].enc = LB_FENC_TWOS, changed++;
    return changed;
}

int lb_fmap_specs_signmag(lb_flayer_spec *specs, int n) {
    int changed = 0;
    for (int i = 0; i < n; i++)
        if (specs[i].signmag_ok && specs[i].enc != LB_FENC_SIGNMAG)
            specs[i].enc = LB_FENC_SIGNMAG, changed++;
    return changed;
}
