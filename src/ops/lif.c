/* The leaky integrate-and-fire neuron over T time steps: forward and backpropagation through
 * time, with arctangent or fast-sigmoid surrogate gradients, fixed or learned decay and an
 * optional quantized membrane. Not the encodings or the readout (spike_io.c). */
#include "lb_ops.h"

#include <math.h>
#include <string.h>

#define LB_PI_F 3.14159265358979323846f

float lb_lif_mem_step(const lb_lif_desc *d) {
    return ldexpf(d->theta, -(d->mem_bits - 2));
}

/* dS/dU at U - theta = x: snnTorch's ATan (alpha/2 / (1 + (pi/2 alpha x)^2)) and FastSigmoid
 * (1 / (slope |x| + 1)^2). */
static inline float surrogate(const lb_lif_desc *d, float x) {
    if (d->surr == LB_SG_FSIG) {
        float a = d->slope * fabsf(x) + 1.0f;
        return 1.0f / (a * a);
    }
    float a = LB_PI_F / 2 * d->slope * x;
    return d->slope / 2 / (1 + a * a);
}

/* The primitive of surrogate() (lb_lif_desc.smooth). */
static inline float smooth_step(const lb_lif_desc *d, float x) {
    if (d->surr == LB_SG_FSIG) return 0.5f + x / (1.0f + d->slope * fabsf(x));
    return 0.5f + atanf(LB_PI_F / 2 * d->slope * x) / LB_PI_F;
}

static inline float beta_of(const lb_lif_desc *d, const float *beta, int c) {
    return d->beta_per_channel ? beta[c] : beta[0];
}

/* One plane (sample n, channel c) through all steps: t outer, the plane's elements inner, so the
 * inner loops are plain vector loops over contiguous memory (U[t-1] and S[t-1] are read back from
 * mem and spk). The reference runs the planes in order, the fast kernel in parallel: the same
 * arithmetic per element, hence the same bits. */
static void lif_fwd_plane(const lb_lif_desc *d, long pl, const float *beta, const float *x,
                          float *spk, float *mem) {
    const size_t stride = (size_t)d->n * d->c * d->hw, base = (size_t)pl * d->hw;
    const int hw = d->hw, zero = d->reset == LB_RESET_ZERO;
    const float b = beta_of(d, beta, (int)(pl % d->c)), th = d->theta;
    const float step = d->mem_bits ? lb_lif_mem_step(d) : 1.0f;
    const float lo = d->mem_bits ? -ldexpf(1.0f, d->mem_bits - 1) : 0;
    const float hi = d->mem_bits ? ldexpf(1.0f, d->mem_bits - 1) - 1 : 0;
    for (int t = 0; t < d->t; t++) {
        const float *xt = x + (size_t)t * stride + base;
        float *mt = mem + (size_t)t * stride + base, *st = spk + (size_t)t * stride + base;
        const float *mp = t ? mt - stride : NULL, *sp = t ? st - stride : NULL;
        for (int p = 0; p < hw; p++) {
            float u = t ? mp[p] : 0.0f, s = t ? sp[p] : 0.0f;
            float up = zero ? (1 - s) * u : u;
            float v = b * up + xt[p];
            if (!zero) v = v - s * th;
            if (d->mem_bits) {
                float m = rintf(v / step);
                m = m < lo ? lo : m > hi ? hi : m;
                v = m * step;
            }
            mt[p] = v;
            st[p] = d->smooth ? smooth_step(d, v - th) : v > th ? 1.0f : 0.0f;
        }
    }
}

void lb_lif_forward_ref(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                        float *mem) {
    long planes = (long)d->n * d->c;
    for (long pl = 0; pl < planes; pl++) lif_fwd_plane(d, pl, beta, x, spk, mem);
}

void lb_lif_forward(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                    float *mem) {
    long planes = (long)d->n * d->c;
    size_t stride = (size_t)planes * d->hw;
#pragma omp parallel for schedule(static) if (stride >= 16384)
    for (long pl = 0; pl < planes; pl++) lif_fwd_plane(d, pl, beta, x, spk, mem);
}

size_t lb_lif_scratch_floats(const lb_lif_desc *d) {
    /* per-plane partial dbeta, then one step of dL/d(membrane) carried backwards */
    return (size_t)d->n * d->c * (1 + (size_t)d->hw);
}

/* dbeta from per-plane partials summed in plane order: the same bits for any thread count. */
static void reduce_dbeta(const lb_lif_desc *d, const float *part, float *dbeta) {
    int nb = d->beta_per_channel ? d->c : 1;
    for (int k = 0; k < nb; k++) dbeta[k] = 0;
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->c; c++) dbeta[d->beta_per_channel ? c : 0] += part[n * d->c + c];
}

/* The reverse recurrence of one plane, t outer (descending) and elements inner; gv holds
 * dL/d(pre-grid membrane) of step t+1 for each element, the only state carried backwards. */
static void lif_bwd_plane(const lb_lif_desc *d, long pl, const float *beta, const float *spk,
                          const float *mem, const float *dspk, float *dx, int dx_acc,
                          float *scratch, int want_db) {
    const size_t stride = (size_t)d->n * d->c * d->hw, base = (size_t)pl * d->hw;
    const int hw = d->hw, zero = d->reset == LB_RESET_ZERO, detach = d->detach_reset;
    const float b = beta_of(d, beta, (int)(pl % d->c)), th = d->theta;
    const float step = d->mem_bits ? lb_lif_mem_step(d) : 1.0f;
    const float lo = d->mem_bits ? -ldexpf(1.0f, d->mem_bits - 1) : 0;
    const float hi = d->mem_bits ? ldexpf(1.0f, d->mem_bits - 1) - 1 : 0;
    float *gv = scratch + (size_t)d->n * d->c + base;
    float db = 0;
    for (int p = 0; p < hw; p++) gv[p] = 0;
    for (int t = d->t - 1; t >= 0; t--) {
        const size_t o = (size_t)t * stride + base;
        const float *ut = mem + o, *st = spk + o, *gt = dspk + o;
        float *xt = dx + o;
        const float *um = t ? ut - stride : NULL, *sm = t ? st - stride : NULL;
        for (int p = 0; p < hw; p++) {
            float u = ut[p], s = st[p], gn = gv[p];
            float gs = gt[p];
            if (!detach) gs += zero ? -b * u * gn : -th * gn;
            float carry = zero ? b * (1 - s) * gn : b * gn;
            float g = gs * surrogate(d, u - th) + carry;
            if (d->mem_bits) {
                float m = u / step;
                if (m <= lo || m >= hi) g = 0;
            }
            xt[p] = dx_acc ? xt[p] + g : g;
            if (want_db && t > 0) {
                float up = um[p];
                if (zero) up *= 1 - sm[p];
                db += g * up;
            }
            gv[p] = g;
        }
    }
    if (want_db) scratch[pl] = db;
}

void lb_lif_backward_ref(const lb_lif_desc *d, const float *beta, const float *spk,
                         const float *mem, const float *dspk, float *dx, int dx_acc, float *dbeta,
                         float *scratch) {
    long planes = (long)d->n * d->c;
    for (long pl = 0; pl < planes; pl++)
        lif_bwd_plane(d, pl, beta, spk, mem, dspk, dx, dx_acc, scratch, dbeta != NULL);
    if (dbeta) reduce_dbeta(d, scratch, dbeta);
}

void lb_lif_backward(const lb_lif_desc *d, const float *beta, const float *spk, const float *mem,
                     const float *dspk, float *dx, int dx_acc, float *dbeta, float *scratch) {
    long planes = (long)d->n * d->c;
    size_t stride = (size_t)d->n * d->c * d->hw;
#pragma omp parallel for schedule(static) if (stride >= 16384)
    for (long pl = 0; pl < planes; pl++)
        lif_bwd_plane(d, pl, beta, spk, mem, dspk, dx, dx_acc, scratch, dbeta != NULL);
    if (dbeta) reduce_dbeta(d, scratch, dbeta);
}
