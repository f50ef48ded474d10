/* The regularization-based quantizer (LB_Q_REG, methods.md sec. 2): its three level kinds' policy
 * (counts, defaults, data-driven init, forwards, backward, step, projection), the accessors of its
 * levels, its names and the lambda schedule. Not the loops (reg_kern.c) and not the trainer's use
 * of lambda (it sets q->reg_weight per epoch from lb_reg_lambda). docs/reg.md has the why. */
#include "reg_internal.h"

#include <math.h>
#include <string.h>

#define LB_Q_MIN_STEP 1e-8f /* an all-zero layer still gets a usable (positive) step */

static int reg_nparam(const lb_qcfg *cfg, int ch) {
    if (cfg->levels == LB_REG_STEP) return ch;
    if (cfg->levels == LB_REG_LEARNED) return ch * (cfg->bits + 1);
    return 0;
}

static int reg_nstate(const lb_qcfg *cfg, int ch) {
    if (cfg->levels == LB_REG_FIXED) return 1 + ch * (cfg->bits + 1);
    return 1 + ch; /* initialized flag + the initial step of each channel (the floors) */
}

/* R = s*[2^0, .., 2^(b-1), (2^b-1)/2]; exact when s has at most 16 significant bits. */
static void set_R(float *R, int b, float s) {
    for (int i = 0; i < b; i++) R[i] = ldexpf(s, i);
    R[b] = (float)((double)s * (double)((1 << b) - 1) / 2.0);
}

static void reg_reset(lb_quant *q) {
    int b = q->cfg.bits;
    q->state[0] = 0.0f;
    for (int c = 0; c < q->ch; c++) {
        if (q->cfg.levels == LB_REG_FIXED) {
            set_R(reg_R(q, c), b, 1.0f);
            continue;
        }
        q->state[1 + c] = 1.0f;
        if (q->cfg.levels == LB_REG_STEP)
            q->param[c] = 1.0f;
        else
            set_R(reg_R(q, c), b, 1.0f);
    }
}

/* s = 2*mean|w|/sqrt((2^b-1)/2) in float, at least LB_Q_MIN_STEP, rounded to 16 significant bits
 * (relative change <= 2^-17): then s*k and s*(2^b-1)/2 are exact in float for every k < 2^8, so
 * the initial levels are exactly s*(k - (2^b-1)/2), symmetric, and S . R gives the same bits in
 * any summation order. */
static float init_step(float mean, int b) {
    float s = 2.0f * mean / (float)sqrt((double)((1 << b) - 1) / 2.0);
    if (!(s > LB_Q_MIN_STEP)) s = LB_Q_MIN_STEP;
    int e;
    float m = frexpf(s, &e);
    return ldexpf(rintf(ldexpf(m, 16)), e - 16);
}

/* First training forward: per channel mean |w| (in double, chunked as LSQ's), then R or alpha.
 * The means are written into the R storage first and spread out from the last channel down (R of
 * channel c starts at c*nb >= c, past every mean still to be read). */
static void reg_init(lb_quant *q, size_t outer, const float *x) {
    int b = q->cfg.bits, nb = b + 1;
    float *m = q->cfg.levels == LB_REG_FIXED ? q->state + 1 : q->param;
    lb_quant_absmean(q, outer, x, m);
    for (int c = q->ch - 1; c >= 0; c--) {
        float s = init_step(m[c], b);
        if (q->cfg.levels == LB_REG_STEP)
            q->param[c] = s;
        else
            set_R(m + (size_t)c * nb, b, s);
        if (q->cfg.levels != LB_REG_FIXED) q->state[1 + c] = s;
    }
    q->state[0] = 1.0f;
}

/* Training: the identity for the table kinds (the weights are not fake-quantized; the
 * regularizer pulls them), LSQ's fake-quant for the step kind (alpha is learned through it).
 * Eval: the nearest level. */
static void reg_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    if (training && q->state[0] == 0.0f) reg_init(q, outer, x);
    size_t n = outer * (size_t)q->ch * q->inner;
    if (q->cfg.levels == LB_REG_STEP)
        lb_quant_uniform_forward(q, outer, q->param, x, y);
    else if (!training)
        lb_reg_snap(q, outer, x, y);
    else if (y != x)
        memcpy(y, x, n * sizeof *y);
}

static void reg_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                         int dx_acc) {
    if (q->cfg.levels == LB_REG_STEP) {
        lb_quant_uniform_backward(q, outer, q->param, x, dy, dx, dx_acc, q->dparam, q->gscale);
        return;
    }
    size_t n = outer * (size_t)q->ch * q->inner;
    if (dx_acc)
        for (size_t j = 0; j < n; j++) dx[j] += dy[j];
    else if (dx != dy)
        memcpy(dx, dy, n * sizeof *dx);
    if (q->nparam > 0) memset(q->dparam, 0, (size_t)q->nparam * sizeof *q->dparam);
}

static float reg_hook(lb_quant *q, size_t outer, const float *x, float *dx) {
    return lb_reg_pass(q, outer, x, dx);
}

/* Fixed levels s*(k - (2^b-1)/2) = (s/2) * (2k - (2^b-1)): a uniform grid at s/2 with odd codes
 * (qn = qp = 2^b-1). Step kind: alpha. Learned levels: no uniform step (0). */
static float reg_step(const lb_quant *q, int c) {
    if (q->cfg.levels == LB_REG_STEP) return q->param[c];
    if (q->cfg.levels == LB_REG_FIXED) return 0.5f * reg_R(q, c)[0];
    return 0.0f;
}

/* Step kind: LSQ's floor. Learned: R_i >= LB_LSQ_FLOOR * s0 * 2^i for the bit weights (the step
 * R_0, also the Gaussian sigma, stays positive); a NaN offset goes back to its initial value. The
 * order of the levels is not restored here: every search sorts the table (docs/reg.md). */
static int reg_project(lb_quant *q) {
    if (q->state[0] == 0.0f || q->cfg.levels == LB_REG_FIXED) return 0;
    int at = 0, b = q->cfg.bits;
    for (int c = 0; c < q->ch; c++) {
        float s0 = q->state[1 + c];
        if (q->cfg.levels == LB_REG_STEP) {
            float lo = LB_LSQ_FLOOR * s0;
            if (!(q->param[c] > lo)) q->param[c] = lo, at++;
            continue;
        }
        float *R = reg_R(q, c);
        int hit = 0;
        for (int i = 0; i < b; i++) {
            float lo = ldexpf(LB_LSQ_FLOOR * s0, i);
            if (!(R[i] > lo)) R[i] = lo, hit = 1;
        }
        if (R[b] != R[b]) R[b] = (float)((double)s0 * (double)((1 << b) - 1) / 2.0), hit = 1;
        at += hit;
    }
    return at;
}

const lb_quant_vt lb_quant_vt_reg = {
    .name = "reg",
    .nparam = reg_nparam,
    .nstate = reg_nstate,
    .forward = reg_forward,
    .backward = reg_backward,
    .reg = reg_hook,
    .step = reg_step,
    .reset = reg_reset,
    .project = reg_project,
};

/* ---- accessors ------------------------------------------------------------------------------- */
int lb_quant_reg_R(const lb_quant *q, int c, float *R) {
    if (q->cfg.kind != LB_Q_REG || c < 0 || c >= q->ch) return 0;
    int b = q->cfg.bits;
    if (q->cfg.levels == LB_REG_STEP) {
        for (int i = 0; i < b; i++) R[i] = ldexpf(q->param[c], i);
        R[b] = ldexpf(q->param[c], b - 1);
    } else {
        memcpy(R, reg_R(q, c), (size_t)(b + 1) * sizeof *R);
    }
    return b + 1;
}

int lb_quant_reg_R_deployed(const lb_quant *q, int c, float *R) {
    int nb = lb_quant_reg_R(q, c, R);
    if (nb && q->cfg.levels == LB_REG_LEARNED) {
        double Rd[LB_REG_MAXNB];
        lb_reg_R_deployed(q, c, Rd);
        for (int i = 0; i < nb; i++) R[i] = (float)Rd[i];
    }
    return nb;
}

int lb_quant_levels(const lb_quant *q, int c, float *out) {
    if (q->cfg.kind != LB_Q_REG || c < 0 || c >= q->ch) return 0;
    lb_reg_levels_of(q, c, out);
    return 1 << q->cfg.bits;
}

int lb_quant_levels_deployed(const lb_quant *q, int c, float *out, double *g) {
    if (q->cfg.kind != LB_Q_REG || c < 0 || c >= q->ch) return 0;
    lb_reg_levels_deployed(q, c, out, g);
    return 1 << q->cfg.bits;
}

/* ---- the lambda schedule --------------------------------------------------------------------- */
int lb_reg_ramp_epoch(double ramp_start, int epochs) {
    if (epochs < 0) epochs = 0;
    double e = round(ramp_start * (double)epochs); /* 100/120 * 120 is 99.999..: round, not floor */
    if (!(e > 0)) return 0;
    return e > epochs ? epochs : (int)e;
}

double lb_reg_lambda(double lambda0, double lambda_max, double ramp_start, int epoch, int epochs) {
    int es = lb_reg_ramp_epoch(ramp_start, epochs);
    if (!(lambda0 > 0) || !(lambda_max > 0) || epoch < es || es >= epochs) return lambda0;
    if (epoch >= epochs - 1) return lambda_max;
    return lambda0 * pow(lambda_max / lambda0, (double)(epoch - es + 1) / (double)(epochs - es));
}

/* ---- names ----------------------------------------------------------------------------------- */
static const char *const g_levels[] = {"fixed", "step", "learned"};
static const char *const g_forms[] = {"mse", "gauss"};

const char *lb_reg_levels_name(lb_reg_levels l) {
    return (unsigned)l < LB_REG_LEVELS_COUNT ? g_levels[l] : "?";
}

const char *lb_reg_form_name(lb_reg_form f) {
    return (unsigned)f < LB_REG_FORM_COUNT ? g_forms[f] : "?";
}

lb_status lb_reg_levels_parse(const char *s, lb_reg_levels *out) {
    for (int i = 0; i < LB_REG_LEVELS_COUNT; i++)
        if (s && strcmp(s, g_levels[i]) == 0) {
            *out = (lb_reg_levels)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "unknown reg levels '%s' (fixed, step, learned)",
                        s ? s : "(null)");
}

lb_status lb_reg_form_parse(const char *s, lb_reg_form *out) {
    for (int i = 0; i < LB_REG_FORM_COUNT; i++)
        if (s && strcmp(s, g_forms[i]) == 0) {
            *out = (lb_reg_form)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "unknown reg form '%s' (mse, gauss)", s ? s : "(null)");
}
