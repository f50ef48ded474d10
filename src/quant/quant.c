/* Quantizer dispatch, binding, names and parsing, plus the uniform-grid kernels shared by the
 * kinds (fake-quant forward, straight-through backward with the step reduction, init statistics).
 * The kinds themselves (none.c, fixed.c, lsq.c) hold only their policy, not these loops. */
#include "lb_quant.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* `omp simd` is a request; clang turns an unmet one into a warning (an error under -Werror) at
 * -O1, where it does not vectorize at all (the sanitizer build). Scalar code is still correct. */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

/* Work is split per channel into chunks of about LB_Q_CHUNK floats of that channel's
 * [outer][inner] elements; chunk bounds depend on the shape only, so the per-chunk partial sums
 * (in double, added in chunk order) do not depend on the thread count. At most LB_Q_MAXPART
 * partials live on the stack; with ch >= LB_Q_MAXPART a chunk is a whole channel. */
#define LB_Q_CHUNK 16384
#define LB_Q_MAXPART 256
#define LB_Q_PAR_MIN 32768 /* fewer floats than this: no threads (overhead exceeds the work) */

/* Adding then subtracting 1.5*2^23 rounds a float of magnitude < 2^22 to an integer under the
 * current (default: to nearest, ties to even) rounding mode, exactly as rintf/nearbyintf and
 * torch.round, but vectorizes with plain SSE2 (rintf would be a libm call per element without
 * SSE4.1). Inputs are clamped to [-128, 255] first. copysignf keeps rintf's sign of zero. */
#define LB_Q_MAGIC 12582912.0f

static inline float q_round(float c) {
    float r = (c + LB_Q_MAGIC) - LB_Q_MAGIC;
    return copysignf(r, c);
}

/* ---- contiguous segment kernels ------------------------------------------------------------
 * simdlen(8) on the double reductions: without it clang picks 2 lanes (the width of a double in
 * SSE2) and the backward runs about 2x slower; gcc is unaffected. */
static void seg_forward(const float *x, float *y, size_t n, float s, float lo, float hi) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float t = x[i] / s;
        t = t < lo ? lo : t;
        t = t > hi ? hi : t;
        y[i] = q_round(t) * s;
    }
}

/* m = 1 inside [lo, hi] (bounds included, like clamp's gradient), else 0; dx = dy*m. The step
 * term is dy*(r - m*c): r - t inside, the bound r outside (c is the clamped quotient, equal to t
 * inside; using c keeps an infinite t from making 0*inf). */
static double seg_backward_ds(const float *x, const float *dy, float *dx, size_t n, float s,
                              float lo, float hi, int dx_acc) {
    double acc = 0;
    if (dx_acc) {
#pragma omp simd simdlen(8) reduction(+ : acc)
        for (size_t i = 0; i < n; i++) {
            float t = x[i] / s;
            float c = t < lo ? lo : t;
            c = c > hi ? hi : c;
            float r = q_round(c);
            float m = (float)((t >= lo) & (t <= hi));
            float g = dy[i];
            dx[i] += g * m;
            acc += (double)(g * (r - m * c));
        }
    } else {
#pragma omp simd simdlen(8) reduction(+ : acc)
        for (size_t i = 0; i < n; i++) {
            float t = x[i] / s;
            float c = t < lo ? lo : t;
            c = c > hi ? hi : c;
            float r = q_round(c);
            float m = (float)((t >= lo) & (t <= hi));
            float g = dy[i];
            dx[i] = g * m;
            acc += (double)(g * (r - m * c));
        }
    }
    return acc;
}

static void seg_backward(const float *x, const float *dy, float *dx, size_t n, float s, float lo,
                         float hi, int dx_acc) {
    if (dx_acc) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float t = x[i] / s;
            dx[i] += dy[i] * (float)((t >= lo) & (t <= hi));
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float t = x[i] / s;
            dx[i] = dy[i] * (float)((t >= lo) & (t <= hi));
        }
    }
}

static double seg_abssum(const float *x, size_t n) {
    double acc = 0;
#pragma omp simd simdlen(8) reduction(+ : acc)
    for (size_t i = 0; i < n; i++) acc += (double)fabsf(x[i]);
    return acc;
}

/* Eight running maxima (no simd reduction pragma: clang cannot vectorize a max reduction with
 * NaN-preserving compares); the fixed-length inner loop is what both compilers vectorize. */
static float seg_absmax(const float *x, size_t n) {
    float mm[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            float a = fabsf(x[i + j]);
            mm[j] = a > mm[j] ? a : mm[j];
        }
    }
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        mm[0] = a > mm[0] ? a : mm[0];
    }
    float m = 0;
    for (int j = 0; j < 8; j++) m = mm[j] > m ? mm[j] : m;
    return m;
}

/* ---- chunk plan ------------------------------------------------------------------------------ */
typedef struct q_plan {
    size_t per_c;  /* floats of one channel: outer * inner */
    size_t groups; /* chunks per channel */
    size_t tasks;  /* ch * groups */
    int par;       /* use threads */
} q_plan;

static q_plan plan_of(const lb_quant *q, size_t outer) {
    q_plan p;
    size_t ch = (size_t)q->ch;
    p.per_c = outer * q->inner;
    size_t g = (p.per_c + LB_Q_CHUNK - 1) / LB_Q_CHUNK;
    size_t gmax = ch >= LB_Q_MAXPART ? 1 : LB_Q_MAXPART / ch;
    p.groups = g < 1 ? 1 : g > gmax ? gmax : g;
    p.tasks = ch * p.groups;
    p.par = p.per_c * ch >= LB_Q_PAR_MIN && p.tasks > 1;
    return p;
}

/* A contiguous run of a chunk: element offset and length. */
typedef struct q_run {
    size_t off, len;
} q_run;

/* Iterator over the runs of a chunk: channel c, per-channel flat range [j, j1). */
typedef struct q_iter {
    size_t j, j1, inner, ch, c;
} q_iter;

static q_iter iter_of(const lb_quant *q, const q_plan *p, size_t task) {
    q_iter it;
    size_t c = task / p->groups, g = task % p->groups;
    it.c = c;
    it.ch = (size_t)q->ch;
    it.inner = q->inner;
    it.j = p->per_c * g / p->groups;
    it.j1 = p->per_c * (g + 1) / p->groups;
    return it;
}

static int iter_next(q_iter *it, q_run *r) {
    if (it->j >= it->j1) return 0;
    size_t o = it->j / it->inner, i = it->j % it->inner;
    size_t len = it->inner - i;
    if (len > it->j1 - it->j) len = it->j1 - it->j;
    r->off = (o * it->ch + it->c) * it->inner + i;
    r->len = len;
    it->j += len;
    return 1;
}

/* ---- shared uniform kernels ------------------------------------------------------------------ */
void lb_quant_uniform_forward(const lb_quant *q, size_t outer, const float *step, const float *x,
                              float *y) {
    q_plan p = plan_of(q, outer);
    float lo = (float)(-q->qn), hi = (float)q->qp;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float s = step[it.c];
        q_run r;
        while (iter_next(&it, &r)) seg_forward(x + r.off, y + r.off, r.len, s, lo, hi);
    }
}

void lb_quant_uniform_backward(const lb_quant *q, size_t outer, const float *step, const float *x,
                               const float *dy, float *dx, int dx_acc, float *dstep, float dscale) {
    q_plan p = plan_of(q, outer);
    float lo = (float)(-q->qn), hi = (float)q->qp;
    if (!dstep) {
#pragma omp parallel for schedule(static) if (p.par)
        for (long t = 0; t < (long)p.tasks; t++) {
            q_iter it = iter_of(q, &p, (size_t)t);
            float s = step[it.c];
            q_run r;
            while (iter_next(&it, &r))
                seg_backward(x + r.off, dy + r.off, dx + r.off, r.len, s, lo, hi, dx_acc);
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
            acc += seg_backward_ds(x + r.off, dy + r.off, dx + r.off, r.len, s, lo, hi, dx_acc);
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
    q_plan p = plan_of(q, outer);
    double part[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        double acc = 0;
        q_run r;
        while (iter_next(&it, &r)) acc += seg_abssum(x + r.off, r.len);
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
    q_plan p = plan_of(q, outer);
    float part[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float m = 0;
        q_run r;
        while (iter_next(&it, &r)) {
            float a = seg_absmax(x + r.off, r.len);
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
    return lb_error_set(LB_EINVAL, "unknown quantizer '%s' (none, fixed, lsq)", s ? s : "(null)");
}

lb_status lb_qcfg_check(const lb_qcfg *cfg) {
    if (!lb_quant_vt_for(cfg->kind))
        return lb_error_set(LB_EINVAL, "unknown quantizer kind %d", (int)cfg->kind);
    if (cfg->kind != LB_Q_NONE && (cfg->bits < 2 || cfg->bits > 8))
        return lb_error_set(LB_EINVAL, "bits must be 2..8, got %d", cfg->bits);
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

/* Bounds and gradient scale from the bit count (kinds may override qn/qp in reset). */
static void set_bounds(lb_quant *q) {
    if (q->cfg.kind == LB_Q_NONE) {
        q->qn = q->qp = 0;
        q->gscale = 0;
        return;
    }
    int b = q->cfg.bits;
    q->qn = q->cfg.is_signed ? 1 << (b - 1) : 0;
    q->qp = q->cfg.is_signed ? (1 << (b - 1)) - 1 : (1 << b) - 1;
    q->gscale = (float)(1.0 / sqrt((double)q->n_grad * (double)q->qp));
}

lb_status lb_quant_bind(lb_quant *q, const lb_qcfg *cfg, int ch, size_t inner, size_t n_grad,
                        float *param, float *dparam, float *state) {
    lb_status st = lb_qcfg_check(cfg);
    if (st != LB_OK) return st;
    if (ch < 1 || inner < 1)
        return lb_error_set(LB_EINVAL, "quantizer %s: bad shape ch %d, inner %zu",
                            lb_qkind_name(cfg->kind), ch, inner);
    if (cfg->kind == LB_Q_LSQ && n_grad < 1)
        return lb_error_set(LB_EINVAL, "quantizer lsq: n_grad must be >= 1");
    memset(q, 0, sizeof *q);
    q->vt = lb_quant_vt_for(cfg->kind);
    q->cfg = *cfg;
    q->cfg.is_signed = cfg->is_signed != 0;
    q->cfg.per_channel = cfg->per_channel != 0;
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
    lb_status st = lb_qcfg_check(&c);
    if (st != LB_OK) return st;
    q->cfg = c;
    set_bounds(q);
    return LB_OK;
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

float lb_quant_step(const lb_quant *q, int c) {
    assert(c >= 0 && c < q->ch);
    return q->vt->step(q, c);
}
