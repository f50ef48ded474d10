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

/* One element's recurrence; stride = n*c*hw between its time steps. */
static inline void lif_fwd_elem(const lb_lif_desc *d, size_t stride, float beta, float step,
                                const float *x, float *spk, float *mem) {
    const float lo = -ldexpf(1.0f, d->mem_bits - 1), hi = ldexpf(1.0f, d->mem_bits - 1) - 1;
    float u = 0, s = 0;
    for (int t = 0; t < d->t; t++) {
        size_t o = (size_t)t * stride;
        float up = d->reset == LB_RESET_ZERO ? (1 - s) * u : u;
        float v = beta * up + x[o];
        if (d->reset == LB_RESET_SUB) v = v - s * d->theta;
        if (d->mem_bits) {
            float m = rintf(v / step);
            m = m < lo ? lo : m > hi ? hi : m;
            v = m * step;
        }
        u = v;
        s = d->smooth ? smooth_step(d, u - d->theta) : u > d->theta ? 1.0f : 0.0f;
        mem[o] = u;
        spk[o] = s;
    }
}

/* Reverse recurrence for one element; returns its contribution to dbeta. gv is dL/d(pre-grid
 * membrane) at t+1, the only state carried backwards. */
static inline float lif_bwd_elem(const lb_lif_desc *d, size_t stride, float beta, float step,
                                 const float *spk, const float *mem, const float *dspk, float *dx,
                                 int dx_acc) {
    const float lo = -ldexpf(1.0f, d->mem_bits - 1), hi = ldexpf(1.0f, d->mem_bits - 1) - 1;
    float gv = 0, db = 0;
    for (int t = d->t - 1; t >= 0; t--) {
        size_t o = (size_t)t * stride;
        float u = mem[o], s = spk[o];
        float gs = dspk[o];
        if (!d->detach_reset) gs += d->reset == LB_RESET_SUB ? -d->theta * gv : -beta * u * gv;
        float carry = d->reset == LB_RESET_SUB ? beta * gv : beta * (1 - s) * gv;
        float g = gs * surrogate(d, u - d->theta) + carry;
        if (d->mem_bits) {
            float m = u / step;
            if (m <= lo || m >= hi) g = 0;
        }
        dx[o] = dx_acc ? dx[o] + g : g;
        if (t > 0) {
            float up = mem[o - stride];
            if (d->reset == LB_RESET_ZERO) up *= 1 - spk[o - stride];
            db += g * up;
        }
        gv = g;
    }
    return db;
}

static inline float beta_of(const lb_lif_desc *d, const float *beta, int c) {
    return d->beta_per_channel ? beta[c] : beta[0];
}

void lb_lif_forward_ref(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                        float *mem) {
    size_t stride = (size_t)d->n * d->c * d->hw;
    float step = d->mem_bits ? lb_lif_mem_step(d) : 1.0f;
    for (size_t i = 0; i < stride; i++) {
        float b = beta_of(d, beta, (int)(i / (size_t)d->hw % (size_t)d->c));
        lif_fwd_elem(d, stride, b, step, x + i, spk + i, mem + i);
    }
}

/* Planes (n, c) in parallel; every element's arithmetic is the reference's, so the bits match. */
void lb_lif_forward(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                    float *mem) {
    size_t stride = (size_t)d->n * d->c * d->hw;
    long planes = (long)d->n * d->c;
    float step = d->mem_bits ? lb_lif_mem_step(d) : 1.0f;
#pragma omp parallel for schedule(static) if (stride >= 16384)
    for (long pl = 0; pl < planes; pl++) {
        float b = beta_of(d, beta, (int)(pl % d->c));
        size_t base = (size_t)pl * d->hw;
        for (int p = 0; p < d->hw; p++)
            lif_fwd_elem(d, stride, b, step, x + base + p, spk + base + p, mem + base + p);
    }
}

size_t lb_lif_scratch_floats(const lb_lif_desc *d) {
    return (size_t)d->n * d->c;
}

/* dbeta from per-plane partials summed in plane order: the same bits for any thread count. */
static void reduce_dbeta(const lb_lif_desc *d, const float *part, float *dbeta) {
    int nb = d->beta_per_channel ? d->c : 1;
    for (int k = 0; k < nb; k++) dbeta[k] = 0;
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->c; c++) dbeta[d->beta_per_channel ? c : 0] += part[n * d->c + c];
}

static void lif_bwd_plane(const lb_lif_desc *d, long pl, const float *beta, const float *spk,
                          const float *mem, const float *dspk, float *dx, int dx_acc,
                          float *scratch) {
    size_t stride = (size_t)d->n * d->c * d->hw;
    float step = d->mem_bits ? lb_lif_mem_step(d) : 1.0f;
    float b = beta_of(d, beta, (int)(pl % d->c));
    size_t base = (size_t)pl * d->hw;
    float db = 0;
    for (int p = 0; p < d->hw; p++)
        db += lif_bwd_elem(d, stride, b, step, spk + base + p, mem + base + p, dspk + base + p,
                           dx + base + p, dx_acc);
    if (scratch) scratch[pl] = db;
}

void lb_lif_backward_ref(const lb_lif_desc *d, const float *beta, const float *spk,
                         const float *mem, const float *dspk, float *dx, int dx_acc, float *dbeta,
                         float *scratch) {
    long planes = (long)d->n * d->c;
    for (long pl = 0; pl < planes; pl++)
        lif_bwd_plane(d, pl, beta, spk, mem, dspk, dx, dx_acc, dbeta ? scratch : NULL);
    if (dbeta) reduce_dbeta(d, scratch, dbeta);
}

void lb_lif_backward(const lb_lif_desc *d, const float *beta, const float *spk, const float *mem,
                     const float *dspk, float *dx, int dx_acc, float *dbeta, float *scratch) {
    long planes = (long)d->n * d->c;
    size_t stride = (size_t)d->n * d->c * d->hw;
#pragma omp parallel for schedule(static) if (stride >= 16384)
    for (long pl = 0; pl < planes; pl++)
        lif_bwd_plane(d, pl, beta, spk, mem, dspk, dx, dx_acc, dbeta ? scratch : NULL);
    if (dbeta) reduce_dbeta(d, scratch, dbeta);
}
