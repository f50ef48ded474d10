/* Assigns quantizers to the conv/linear layers of a built network (the "quantization plan"). With
 * --quant reg the weights get the reg quantizer (with the plan's levels and form) and the
 * activations LSQ, as in methods.md sec. 2; the plan's lambda schedule is the trainer's to apply.
 */
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

lb_status lb_quant_plan_apply(const lb_quant_plan *q, lb_net *n) {
    int first = -1, last = -1;
    for (int i = 1; i < n->nnodes; i++)
        if (n->nodes[i].op == LB_OP_CONV || n->nodes[i].op == LB_OP_LINEAR) {
            if (first < 0) first = i;
            last = i;
        }
    if (find_override(q->overrides, "", &(int){0}, &(int){0}) < 0)
        return lb_error_set(LB_EINVAL, "--layer-bits '%s': expected name=W/A[,name=W/A...]",
                            q->overrides);
    if (q->po2 && q->kind != LB_Q_LSQ)
        return lb_error_set(LB_EINVAL,
                            "--po2: --quant %s has no learned scale to make a power of two (use "
                            "--quant lsq)",
                            q->kind == LB_Q_NONE ? "fp32" : lb_qkind_name(q->kind));
    if (q->kind == LB_Q_NONE) {
        if (q->overrides[0])
            return lb_error_set(LB_EINVAL,
                                "--layer-bits needs a quantizer (--quant lsq|fixed|reg)");
        return LB_OK;
    }
    int matched = 0;
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
        lb_qkind akind = q->kind == LB_Q_REG ? LB_Q_LSQ : q->kind;
        lb_qcfg w = {.kind = q->kind,
                     .bits = wb,
                     .is_signed = 1,
                     .per_channel = q->per_channel,
                     .po2 = q->po2};
        if (q->kind == LB_Q_REG) w.levels = q->reg_levels, w.form = q->reg_form;
        lb_qcfg a = {.kind = ab > 0 ? akind : LB_Q_NONE,
                     .bits = ab,
                     .is_signed = !n->nodes[d->in[0]].nonneg,
                     .po2 = ab > 0 && q->po2};
        if (wb <= 0) w.kind = LB_Q_NONE, w.po2 = 0;
        lb_net_set_quant(n, i, &w, &a);
    }
    /* every override must name a real layer */
    int total = 0;
    for (const char *p = q->overrides; *p; p++) total += (*p == '=');
    if (total != matched)
        return lb_error_set(LB_EINVAL, "--layer-bits '%s': names a layer the model does not have",
                            q->overrides);
    return n->err;
}
