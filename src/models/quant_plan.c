/* Assigns quantizers to the conv/linear layers of a built network (the "quantization plan"). With
 * --quant reg the weights get the reg quantizer (with the plan's levels and form) and the
 * activations LSQ, as in methods.md sec. 2; the plan's lambda schedule is the trainer's to apply.
 * --quant dorefa gives DoReFa weights and PACT activations (AdaQAT's pair, methods.md sec. 4);
 * --quant grad-po2 puts learned power-of-two scales on both sides; --quant msqe-po2 searched ones
 * on the weights and grad-po2's on the activations (methods.md 1b compares weight quantizers: the
 * two arms differ in the weights only; docs/quantizers.md);
 * --quant sliced learned (d, xmax) per slice on both sides (methods.md sec. 4, docs/mixed.md);
 * --wquant / --aquant choose each side on its own. */
#include "lb_models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Looks `name` up in "a=W/A,b=W/A"; returns 1 and the bits when present, -1 on a syntax error. */
static int find_override(const char *ov, const char *name, int *wb, int *ab) {
    const char *p = ov;
    while (p && *p) {
        const char *eq = strchr(p, '=');
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (!eq || eq > end) return -1;
        int w, a;
        char tail;
        char buf[32];
        size_t len = (size_t)(end - eq - 1);
        if (len >= sizeof buf) return -1;
        memcpy(buf, eq + 1, len);
        buf[len] = 0;
        if (sscanf(buf, "%d/%d%c", &w, &a, &tail) != 2) return -1;
        if ((size_t)(eq - p) == strlen(name) && strncmp(p, name, (size_t)(eq - p)) == 0) {
            *wb = w;
            *ab = a;
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* 1 when --layer-bits names this layer. */
static int ow_used(const lb_quant_plan *q, const char *name) {
    int w, a;
    return find_override(q->overrides, name, &w, &a) == 1;
}

/* Round-clip sides of one layer: --layer-states for the layers it names, else the body's
 * --wstates/--astates (first and last layers and --layer-bits overrides keep the states of their
 * bits), the surrogate, and the code width from the states. On an input that may be negative the
 * activation grid is mirrored: K = astates-1, codes -K..K (2K+1 states). *matched counts the
 * layers --layer-states names. */
static lb_status roundclip_states(const lb_quant_plan *q, const char *name, int edge, int over,
                                  lb_qcfg *w, lb_qcfg *a, int *matched) {
    char what[LB_NAME_MAX + 32];
    snprintf(what, sizeof what, "layer '%s'", name);
    int ws = edge || over ? 0 : q->wstates, as = edge || over ? 0 : q->astates;
    int lw, la;
    if (find_override(q->layer_states, name, &lw, &la) == 1) {
        (*matched)++;
        if (lw < 3 || lw > 255 || lw % 2 == 0 || la < 2 || la > 256)
            return lb_error_set(LB_EINVAL,
                                "--layer-states %s=%d/%d: weights 2K+1 states (odd, 3..255), "
                                "activations K+1 (2..256)",
                                name, lw, la);
        ws = lw, as = la;
    }
    if (w->kind == LB_Q_ROUNDCLIP) {
        w->surrogate = q->surrogate;
        w->states = ws;
        lb_status st = lb_qcfg_roundclip(w, what);
        if (st != LB_OK) return st;
    }
    if (a->kind == LB_Q_ROUNDCLIP) {
        a->surrogate = q->surrogate;
        if (as) a->states = a->is_signed ? 2 * (as - 1) + 1 : as;
        lb_status st = lb_qcfg_roundclip(a, what);
        if (st != LB_OK) return st;
    }
    return LB_OK;
}

int lb_qkind_is_po2x(lb_qkind k) {
    return k == LB_Q_MSQE_PO2 || k == LB_Q_GRAD_PO2;
}

lb_qkind lb_quant_plan_wkind(const lb_quant_plan *q) {
    return q->wquant ? (lb_qkind)(q->wquant - 1) : q->kind;
}

lb_qkind lb_quant_plan_akind(const lb_quant_plan *q) {
    if (q->aquant) return (lb_qkind)(q->aquant - 1);
    if (q->kind == LB_Q_REG) return LB_Q_LSQ;
    if (q->kind == LB_Q_DOREFA) return LB_Q_PACT;
    if (q->kind == LB_Q_MSQE_PO2) return LB_Q_GRAD_PO2;
    return q->kind;
}

lb_status lb_quant_plan_check(const lb_quant_plan *q) {
    if (q->wquant < 0 || q->wquant > LB_Q_COUNT || q->aquant < 0 || q->aquant > LB_Q_COUNT ||
        (unsigned)q->kind >= LB_Q_COUNT)
        return lb_error_set(LB_EINVAL, "quantization plan: unknown quantizer kind");
    lb_qkind w = lb_quant_plan_wkind(q), a = lb_quant_plan_akind(q);
    if (q->kind == LB_Q_PACT && !q->wquant)
        return lb_error_set(LB_EINVAL, "--quant pact: PACT quantizes activations only; use "
                                       "--aquant pact (or --quant dorefa: DoReFa weights, PACT "
                                       "activations)");
    if (w == LB_Q_PACT)
        return lb_error_set(LB_EINVAL, "--wquant pact: PACT quantizes activations (a clip at 0 and "
                                       "alpha), not weights; weights: none, fixed, lsq, dorefa");
    if (a == LB_Q_DOREFA || a == LB_Q_REG)
        return lb_error_set(LB_EINVAL,
                            "--aquant %s: %s quantizes weights only; activations: none, fixed, "
                            "lsq, pact",
                            lb_qkind_name(a), lb_qkind_name(a));
    if (q->po2 && w != LB_Q_LSQ && w != LB_Q_SLICED && !lb_qkind_is_po2x(w))
        return lb_error_set(LB_EINVAL,
                            "--po2: %s weights have no learned scale to make a power of two (use "
                            "--quant lsq or sliced; msqe-po2 and grad-po2 are powers of two "
                            "already)",
                            w == LB_Q_NONE ? "fp32" : lb_qkind_name(w));
    if (w == LB_Q_REG && q->kind != LB_Q_REG)
        return lb_error_set(LB_EINVAL, "--wquant reg: use --quant reg (its regularizer schedule "
                                       "comes with it; --aquant then picks the activations)");
    /* round-clip states: weights 2K+1 with codes -K..K in the integer model's int8, activations
     * K+1 with codes 0..K in its uint8 */
    if (q->wstates && (q->wstates < 3 || q->wstates > 255 || q->wstates % 2 == 0))
        return lb_error_set(LB_EINVAL,
                            "--wstates %d: round-clip weights have 2K+1 states, an odd number "
                            "3..255 (codes -K..K, K <= 127 in int8)",
                            q->wstates);
    if (q->astates && (q->astates < 2 || q->astates > 256))
        return lb_error_set(LB_EINVAL,
                            "--astates %d: round-clip activations have K+1 states, 2..256 "
                            "(codes 0..K, K <= 255 in uint8)",
                            q->astates);
    if (q->wstates && w != LB_Q_ROUNDCLIP)
        return lb_error_set(LB_EINVAL, "--wstates needs round-clip weights (--quant roundclip or "
                                       "--wquant roundclip; other kinds count bits: --wbits)");
    if (q->astates && a != LB_Q_ROUNDCLIP)
        return lb_error_set(LB_EINVAL, "--astates needs round-clip activations (--quant "
                                       "roundclip or --aquant roundclip; other kinds: --abits)");
    if (q->layer_states[0] && w != LB_Q_ROUNDCLIP && a != LB_Q_ROUNDCLIP)
        return lb_error_set(LB_EINVAL, "--layer-states needs a round-clip side (--quant "
                                       "roundclip, --wquant or --aquant roundclip)");
    if ((unsigned)q->surrogate >= LB_SUR_COUNT)
        return lb_error_set(LB_EINVAL, "--surrogate: unknown surrogate %d", (int)q->surrogate);
    return LB_OK;
}

lb_status lb_quant_plan_apply(const lb_quant_plan *q, lb_net *n) {
    lb_status st = lb_quant_plan_check(q);
    if (st != LB_OK) return st;
    lb_qkind wkind = lb_quant_plan_wkind(q), akind = lb_quant_plan_akind(q);
    int first = -1, last = -1;
    for (int i = 1; i < n->nnodes; i++)
        if (n->nodes[i].op == LB_OP_CONV || n->nodes[i].op == LB_OP_LINEAR) {
            if (first < 0) first = i;
            last = i;
        }
    if (find_override(q->overrides, "", &(int){0}, &(int){0}) < 0)
        return lb_error_set(LB_EINVAL, "--layer-bits '%s': expected name=W/A[,name=W/A...]",
                            q->overrides);
    if (wkind == LB_Q_NONE && akind == LB_Q_NONE) {
        if (q->overrides[0])
            return lb_error_set(LB_EINVAL, "--layer-bits needs a quantizer (--quant, --wquant or "
                                           "--aquant)");
        return LB_OK;
    }
    if (find_override(q->layer_states, "", &(int){0}, &(int){0}) < 0)
        return lb_error_set(LB_EINVAL, "--layer-states '%s': expected name=W/A[,name=W/A...]",
                            q->layer_states);
    int matched = 0, smatched = 0;
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        int wb = q->wbits, ab = q->abits;
        if (i == last) wb = ab = q->last_bits;
        if (i == first) wb = q->first_bits, ab = 0; /* the image input stays float */
        int ow, oa;
        if (find_override(q->overrides, d->name, &ow, &oa) == 1) {
            wb = ow;
            ab = (i == first) ? 0 : oa;
            matched++;
        }
        lb_qcfg w = {.kind = wkind,
                     .bits = wb,
                     .is_signed = 1,
                     .per_channel = q->per_channel,
                     .po2 = q->po2 && (wkind == LB_Q_LSQ || wkind == LB_Q_SLICED)};
        if (wkind == LB_Q_REG) w.levels = q->reg_levels, w.form = q->reg_form;
        /* spikes are exact one-bit activations: nothing to quantize */
        int spikes = n->nodes[d->in[0]].binary;
        if (spikes) ab = 0;
        if (lb_qkind_is_po2x(wkind))
            w.po2_flags = q->po2_flags, w.po2_round = q->po2_round,
            w.stable_after = q->stable_after;
        lb_qcfg a = {.kind = ab > 0 ? akind : LB_Q_NONE,
                     .bits = ab,
                     .is_signed = !n->nodes[d->in[0]].nonneg,
                     .po2 = ab > 0 && q->po2 && (akind == LB_Q_LSQ || akind == LB_Q_SLICED)};
        if (lb_qkind_is_po2x(akind))
            a.po2_flags = q->po2_flags, a.po2_round = q->po2_round,
            a.stable_after = q->stable_after;
        /* DoReFa weights span [-1, 1] whatever the fan-in: harmless before a BN, but the last
         * layer feeds the softmax directly and its logits would start ~sqrt(fan-in) too large
         * (cnn: loss 13, collapse within 40 steps). DoReFa's authors keep that layer float;
         * lowbit keeps it quantized for the integer model, with LSQ (docs/quantizers.md). The
         * first layer too: they keep it float, and at 8 bits DoReFa's odd codes need 9 (no
         * integer model: the default --first-bits 8 could not be exported). */
        if ((i == first || i == last) && wkind == LB_Q_DOREFA) w.kind = LB_Q_LSQ;
        /* reg: the reference keeps the first and last layers float and unregularized. Their
         * (Q/N) normalisation is the largest of the net (an 8-bit grid on a few hundred weights):
         * at lambda 1000 and lr 0.01 the pull on each weight overshoots its level (the cnn's first
         * conv: lr * lambda * 2Q/N ~ 18; SGD with momentum 0.9 needs < 3.8) and fine-tuning
         * diverged. lowbit keeps them quantized for the integer model, with LSQ (docs/reg.md). */
        if ((i == first || i == last) && wkind == LB_Q_REG)
            w.kind = LB_Q_LSQ, w.levels = 0, w.form = 0;
        if (wb <= 0) w.kind = LB_Q_NONE, w.po2 = 0;
        lb_status rs = roundclip_states(q, d->name, i == first || i == last, ow_used(q, d->name),
                                        &w, &a, &smatched);
        if (rs != LB_OK) return rs;
        lb_net_set_quant(n, i, &w, &a);
    }
    /* every override must name a real layer */
    int total = 0;
    for (const char *p = q->overrides; *p; p++) total += (*p == '=');
    if (total != matched)
        return lb_error_set(LB_EINVAL, "--layer-bits '%s': names a layer the model does not have",
                            q->overrides);
    total = 0;
    for (const char *p = q->layer_states; *p; p++) total += (*p == '=');
    if (total != smatched)
        return lb_error_set(LB_EINVAL, "--layer-states '%s': names a layer the model does not have",
                            q->layer_states);
    return n->err;
}
