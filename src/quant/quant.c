/* Quantizer dispatch, binding, names and parsing, plus the uniform-grid passes shared by the kinds
 * (fake-quant forward, straight-through backward with the step reduction, init statistics): the
 * threading here, the chunk plan in quant_chunk.h, the per-segment loops in quant_seg_impl.h. The
 * kinds themselves (none.c, fixed.c, lsq.c, reg.c, dorefa.c, pact.c, roundclip.c, msqe_po2.c,
 * grad_po2.c) hold only their policy, not these loops; sliced.c keeps its own (per-slice
 * ranges). */
#include "lb_quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "quant_chunk.h"
#include "po2x_internal.h"
#include "quant_seg.h"

/* ---- shared uniform kernels ------------------------------------------------------------------ */
void lb_quant_uniform_forward(const lb_quant *q, size_t outer, const float *step, const float *x,
                              float *y) {
    const lb_qseg_kernels *K = lb_qseg_get();
    q_plan p = plan_of(q, outer);
    float lo = (float)(-q->qn), hi = (float)q->qp;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float s = step[it.c];
        q_run r;
        while (iter_next(&it, &r)) K->forward(x + r.off, y + r.off, r.len, s, lo, hi);
    }
}

void lb_quant_uniform_backward(const lb_quant *q, size_t outer, const float *step, const float *x,
                               const float *dy, float *dx, int dx_acc, float *dstep, float dscale) {
    lb_quant_grid_backward(q, outer, step, (float)(-q->qn), (float)q->qp, x, dy, dx, dx_acc, dstep,
                           dscale);
}

void lb_quant_grid_backward(const lb_quant *q, size_t outer, const float *step, float lo, float hi,
                            const float *x, const float *dy, float *dx, int dx_acc, float *dstep,
                            float dscale) {
    const lb_qseg_kernels *K = lb_qseg_get();
    q_plan p = plan_of(q, outer);
    if (!dstep) {
#pragma omp parallel for schedule(static) if (p.par)
        for (long t = 0; t < (long)p.tasks; t++) {
            q_iter it = iter_of(q, &p, (size_t)t);
            float s = step[it.c];
            q_run r;
            while (iter_next(&it, &r))
                K->backward(x + r.off, dy + r.off, dx + r.off, r.len, s, lo, hi, dx_acc);
        }
        return;
    }
    double part[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float s = step[it.c];
        double acc = 0;
        q_run r;
        while (iter_next(&it, &r))
            acc += K->backward_ds(x + r.off, dy + r.off, dx + r.off, r.len, s, lo, hi, dx_acc);
        if (p.groups == 1)
            dstep[it.c] = (float)(acc * dscale);
        else
            part[t] = acc;
    }
    if (p.groups > 1) {
        for (int c = 0; c < q->ch; c++) {
            double acc = 0;
            for (size_t g = 0; g < p.groups; g++) acc += part[(size_t)c * p.groups + g];
            dstep[c] = (float)(acc * dscale);
        }
    }
}

void lb_quant_absmean(const lb_quant *q, size_t outer, const float *x, float *out) {
    const lb_qseg_kernels *K = lb_qseg_get();
    q_plan p = plan_of(q, outer);
    double part[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        double acc = 0;
        q_run r;
        while (iter_next(&it, &r)) acc += K->abssum(x + r.off, r.len);
        if (p.groups == 1)
            out[it.c] = p.per_c ? (float)(acc / (double)p.per_c) : 0.0f;
        else
            part[t] = acc;
    }
    if (p.groups > 1) {
        for (int c = 0; c < q->ch; c++) {
            double acc = 0;
            for (size_t g = 0; g < p.groups; g++) acc += part[(size_t)c * p.groups + g];
            out[c] = (float)(acc / (double)p.per_c);
        }
    }
}

void lb_quant_absmax(const lb_quant *q, size_t outer, const float *x, float *out) {
    const lb_qseg_kernels *K = lb_qseg_get();
    q_plan p = plan_of(q, outer);
    float part[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float m = 0;
        q_run r;
        while (iter_next(&it, &r)) {
            float a = K->absmax(x + r.off, r.len);
            m = a > m ? a : m;
        }
        if (p.groups == 1)
            out[it.c] = m;
        else
            part[t] = m;
    }
    if (p.groups > 1) {
        for (int c = 0; c < q->ch; c++) {
            float m = 0;
            for (size_t g = 0; g < p.groups; g++) {
                float a = part[(size_t)c * p.groups + g];
                m = a > m ? a : m;
            }
            out[c] = m;
        }
    }
}

/* ---- kinds, names, parsing ------------------------------------------------------------------- */
const lb_quant_vt *lb_quant_vt_for(lb_qkind kind) {
    switch (kind) {
    case LB_Q_NONE:
        return &lb_quant_vt_none;
    case LB_Q_FIXED:
        return &lb_quant_vt_fixed;
    case LB_Q_LSQ:
        return &lb_quant_vt_lsq;
    case LB_Q_REG:
        return &lb_quant_vt_reg;
    case LB_Q_DOREFA:
        return &lb_quant_vt_dorefa;
    case LB_Q_PACT:
        return &lb_quant_vt_pact;
    case LB_Q_ROUNDCLIP:
        return &lb_quant_vt_roundclip;
    case LB_Q_MSQE_PO2:
        return &lb_quant_vt_msqe_po2;
    case LB_Q_GRAD_PO2:
        return &lb_quant_vt_grad_po2;
    case LB_Q_SLICED:
        return &lb_quant_vt_sliced;
    default:
        return NULL;
    }
}

const char *lb_qkind_name(lb_qkind kind) {
    const lb_quant_vt *vt = lb_quant_vt_for(kind);
    return vt ? vt->name : "?";
}

lb_status lb_qkind_parse(const char *s, lb_qkind *out) {
    for (int k = 0; k < LB_Q_COUNT; k++) {
        if (s && strcmp(s, lb_quant_vt_for((lb_qkind)k)->name) == 0) {
            *out = (lb_qkind)k;
            return LB_OK;
        }
    }
    return lb_error_set(LB_EINVAL,
                        "unknown quantizer '%s' (none, fixed, lsq, reg, dorefa, pact, roundclip, "
                        "msqe-po2, grad-po2, sliced)",
                        s ? s : "(null)");
}

lb_status lb_qcfg_check(const lb_qcfg *cfg) {
    if (!lb_quant_vt_for(cfg->kind))
        return lb_error_set(LB_EINVAL, "unknown quantizer kind %d", (int)cfg->kind);
    /* round-clip: the states (when given) decide the code width, which may reach 9 bits (a
     * mirrored activation grid -K..K, K <= 255: trainable in float; the integer model refuses
     * it, naming the layer) */
    int bits = cfg->bits, maxb = 8;
    if (cfg->kind == LB_Q_ROUNDCLIP) {
        lb_qcfg c = *cfg;
        if ((unsigned)cfg->surrogate >= LB_SUR_COUNT)
            return lb_error_set(LB_EINVAL, "quantizer roundclip: unknown surrogate %d",
                                (int)cfg->surrogate);
        lb_status st = lb_qcfg_roundclip(&c, "quantizer roundclip");
        if (st != LB_OK) return st;
        bits = c.bits;
        maxb = 9;
    }
    if (cfg->kind != LB_Q_NONE && (bits < 2 || bits > maxb))
        return lb_error_set(LB_EINVAL, "bits must be 2..%d, got %d", maxb, bits);
    if (cfg->kind == LB_Q_REG &&
        ((unsigned)cfg->levels >= LB_REG_LEVELS_COUNT || (unsigned)cfg->form >= LB_REG_FORM_COUNT))
        return lb_error_set(LB_EINVAL, "quantizer reg: unknown levels %d or form %d",
                            (int)cfg->levels, (int)cfg->form);
    if (cfg->kind == LB_Q_PACT && cfg->per_channel)
        return lb_error_set(LB_EINVAL, "quantizer pact: one alpha per tensor (as the paper), "
                                       "not per channel");
    if ((unsigned)cfg->po2_flags > (LB_PO2X_NO_MASK | LB_PO2X_NO_MOMENTS) ||
        (cfg->po2_round != LB_PO2X_ROUND_MSQE && cfg->po2_round != LB_PO2X_ROUND_CEIL) ||
        cfg->stable_after < 0 || cfg->numel < 0)
        return lb_error_set(LB_EINVAL, "quantizer %s: bad po2 flags %d, round %d, stable-after %d",
                            lb_qkind_name(cfg->kind), cfg->po2_flags, cfg->po2_round,
                            cfg->stable_after);
    if (cfg->po2 && cfg->kind != LB_Q_LSQ && cfg->kind != LB_Q_SLICED)
        return lb_error_set(LB_EINVAL,
                            "--po2: quantizer %s has no learned scale to make a power of two "
                            "(use --quant lsq or sliced)",
                            lb_qkind_name(cfg->kind));
    return LB_OK;
}

int lb_quant_nparam(const lb_qcfg *cfg, int ch) {
    const lb_quant_vt *vt = lb_quant_vt_for(cfg->kind);
    return vt ? vt->nparam(cfg, cfg->per_channel ? ch : 1) : 0;
}

int lb_quant_nstate(const lb_qcfg *cfg, int ch) {
    const lb_quant_vt *vt = lb_quant_vt_for(cfg->kind);
    return vt ? vt->nstate(cfg, cfg->per_channel ? ch : 1) : 0;
}

/* Bounds and gradient scale from the bit count (kinds may override qn/qp in reset). REG with a
 * level table: codes 2k - (2^b-1) at half its step, so qn = qp = 2^b-1 (odd codes only); REG step
 * kind: LSQ's signed grid. */
static void set_bounds(lb_quant *q) {
    if (q->cfg.kind == LB_Q_NONE) {
        q->qn = q->qp = 0;
        q->gscale = 0;
        return;
    }
    int b = q->cfg.bits;
    q->qn = q->cfg.is_signed ? 1 << (b - 1) : 0;
    q->qp = q->cfg.is_signed ? (1 << (b - 1)) - 1 : (1 << b) - 1;
    if (q->cfg.kind == LB_Q_REG && q->cfg.levels != LB_REG_STEP) q->qn = q->qp = (1 << b) - 1;
    if (q->cfg.kind == LB_Q_DOREFA) q->qn = q->qp = (1 << b) - 1; /* odd codes at step 1/(2^b-1) */
    if (q->cfg.kind == LB_Q_ROUNDCLIP) { /* K from the states (or the bits), codes -K..K / 0..K */
        q->qp = lb_roundclip_k(&q->cfg);
        q->qn = q->cfg.is_signed ? q->qp : 0;
    }
    /* QKeras' po2 quantizers: signed grids symmetric about 0 (4 bit: -7..7, no -8) */
    if ((q->cfg.kind == LB_Q_MSQE_PO2 || q->cfg.kind == LB_Q_GRAD_PO2) && q->cfg.is_signed)
        q->qn = q->qp;
    q->gscale = (float)(1.0 / sqrt((double)q->n_grad * (double)q->qp));
}

lb_status lb_quant_bind(lb_quant *q, const lb_qcfg *cfg, int ch, size_t inner, size_t n_grad,
                        float *param, float *dparam, float *state) {
    lb_status st = lb_qcfg_check(cfg);
    if (st != LB_OK) return st;
    if (ch < 1 || inner < 1)
        return lb_error_set(LB_EINVAL, "quantizer %s: bad shape ch %d, inner %zu",
                            lb_qkind_name(cfg->kind), ch, inner);
    if ((cfg->kind == LB_Q_LSQ || cfg->kind == LB_Q_REG || cfg->kind == LB_Q_ROUNDCLIP) &&
        n_grad < 1)
        return lb_error_set(LB_EINVAL, "quantizer %s: n_grad must be >= 1",
                            lb_qkind_name(cfg->kind));
    if ((cfg->kind == LB_Q_MSQE_PO2 || cfg->kind == LB_Q_GRAD_PO2) && cfg->per_channel && ch < 2)
        return lb_error_set(LB_EINVAL,
                            "quantizer %s: per-channel scales on a tensor of one channel (use "
                            "per-tensor scales for it)",
                            lb_qkind_name(cfg->kind));
    if ((cfg->po2 || cfg->kind == LB_Q_ROUNDCLIP || cfg->kind == LB_Q_MSQE_PO2 ||
         cfg->kind == LB_Q_GRAD_PO2) &&
        cfg->per_channel && ch > LB_PO2_MAX_CH)
        return lb_error_set(LB_EINVAL, "quantizer %s: %d channels, at most %d",
                            lb_qkind_name(cfg->kind), ch, LB_PO2_MAX_CH);
    memset(q, 0, sizeof *q);
    q->vt = lb_quant_vt_for(cfg->kind);
    q->cfg = *cfg;
    /* reg and dorefa levels are symmetric (weights, always signed); pact clips at 0 (unsigned) */
    q->cfg.is_signed = (cfg->is_signed != 0 || cfg->kind == LB_Q_REG || cfg->kind == LB_Q_DOREFA) &&
                       cfg->kind != LB_Q_PACT;
    q->cfg.per_channel = cfg->per_channel != 0;
    lb_qcfg_roundclip(&q->cfg, "quantizer roundclip"); /* bits from the states (checked above) */
    q->ch = q->cfg.per_channel ? ch : 1;
    q->inner = q->cfg.per_channel ? inner : inner * (size_t)ch;
    q->n_grad = n_grad;
    q->nparam = q->vt->nparam(&q->cfg, q->ch);
    q->nstate = q->vt->nstate(&q->cfg, q->ch);
    if ((q->nparam > 0 && (!param || !dparam)) || (q->nstate > 0 && !state))
        return lb_error_set(LB_EINVAL, "quantizer %s: storage missing (%d params, %d states)",
                            q->vt->name, q->nparam, q->nstate);
    q->param = param;
    q->dparam = dparam;
    q->state = state;
    set_bounds(q);
    lb_quant_reset(q);
    return LB_OK;
}

void lb_quant_reset(lb_quant *q) {
    if (q->nparam > 0) memset(q->dparam, 0, (size_t)q->nparam * sizeof *q->dparam);
    if (q->vt->reset) q->vt->reset(q);
}

lb_status lb_quant_set_bits(lb_quant *q, int bits) {
    lb_qcfg c = q->cfg;
    c.bits = bits;
    if (c.kind == LB_Q_NONE) return lb_error_set(LB_EINVAL, "quantizer none has no bit-width");
    if (c.kind == LB_Q_ROUNDCLIP)
        c.states = 0; /* a bit-width asked for: the states of those bits */
    if (c.kind == LB_Q_REG && c.levels != LB_REG_STEP && bits != q->cfg.bits)
        return lb_error_set(LB_EINVAL,
                            "quantizer reg: the %s level table has b+1 entries per "
                            "channel; its bit-width is fixed at bind",
                            lb_reg_levels_name(c.levels));
    lb_status st = lb_qcfg_check(&c);
    if (st != LB_OK) return st;
    q->cfg = c;
    set_bounds(q);
    return LB_OK;
}

lb_status lb_quant_set_bits_keep_range(lb_quant *q, int bits) {
    int qp = q->qp;
    lb_status st = lb_quant_set_bits(q, bits);
    if (st == LB_OK && q->vt->rescale && q->qp != qp) q->vt->rescale(q, (float)qp / (float)q->qp);
    return st;
}

/* ---- dispatch -------------------------------------------------------------------------------- */
void lb_quant_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    assert(q->vt);
    q->vt->forward(q, outer, x, y, training);
}

void lb_quant_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                       int dx_acc) {
    assert(q->vt && dx);
    q->vt->backward(q, outer, x, dy, dx, dx_acc);
}

float lb_quant_reg(lb_quant *q, size_t outer, const float *x, float *dx) {
    return q->vt->reg ? q->vt->reg(q, outer, x, dx) : 0.0f;
}

int lb_quant_project(lb_quant *q) {
    return q->vt->project ? q->vt->project(q) : 0;
}

float lb_quant_step(const lb_quant *q, int c) {
    assert(c >= 0 && c < q->ch);
    return q->vt->step(q, c);
}
