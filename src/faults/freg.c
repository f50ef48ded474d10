/* The fault-aware, variability-aware and QFALT regularizers (methods.md sec. 3) over one slice
 * of a coded weight tensor: values and gradients w.r.t. the weights and the level vector R. Not
 * their use in the trainer nor the map itself (fmap.c); docs/faults.md has the formulas and the
 * reading of QFALT. Single-threaded on purpose: the caller (trainer) runs slices (layers,
 * channels) in parallel and adds their double partials in a fixed order. */
#include "lb_faults.h"

#include <math.h>
#include <string.h>

#define MAXL (1 << LB_FMAX_BITS)

lb_fslice lb_fslice_of(const lb_flayer *L, size_t off) {
    lb_fslice s = {0};
    if (!L) return s;
    s.sa0 = L->sa0 + off;
    s.sa1 = L->sa1 + off;
    s.var = L->var ? L->var + off * (size_t)L->spec.bits : NULL;
    s.enc = L->spec.enc;
    return s;
}

/* One weight's contribution to the MSE form, shared by the reference and the fast path so that
 * dw and the loss are the same bits: adds d^2 to *loss, cf*d to *dw, and the R gradient. */
static inline void mse_term(float w, const float *a, int p, const float *v, int b, lb_fenc enc,
                            float cf, double coefR, double *loss, float *dw, double *dR) {
    float d = w - a[p];
    *loss += (double)d * (double)d;
    if (dw) *dw += cf * d;
    if (!dR) return;
    /* a signmag sign cell's R is in no level: it gets no gradient */
    double sg = lb_fault_sign((unsigned)p, b, enc);
    int top = lb_fault_value_cells(b, enc);
    for (int j = 0; j < top; j++)
        if ((p >> j) & 1) dR[j] -= coefR * (double)d * sg * (v ? (double)v[j] : 1.0);
    dR[b] += coefR * (double)d;
}

double lb_freg_mse_ref(const float *w, size_t n, size_t n_layer, const float *R, int bits,
                       lb_fslice mk, double lambda, float *dw, double *dR) {
    double qn = (double)((1 << bits) - 1) / (double)(n_layer ? n_layer : 1), loss = 0;
    double coefR = lambda * 2.0 * qn;
    float cf = (float)coefR, a[MAXL];
    for (size_t i = 0; i < n; i++) {
        const float *v = mk.var ? mk.var + i * (size_t)bits : NULL;
        unsigned s0 = mk.sa0 ? mk.sa0[i] : 0, s1 = mk.sa1 ? mk.sa1[i] : 0;
        lb_fault_levels(R, bits, mk.enc, v, a);
        int p = lb_fault_nearest_level(w[i], a, bits, s0, s1);
        mse_term(w[i], a, p, v, bits, mk.enc, cf, coefR, &loss, dw ? dw + i : NULL, dR);
    }
    return lambda * qn * loss;
}

/* Position in the sorted table t[0..n) (n a power of two) of the nearest level, reg's rule
 * (src/quant/reg_kern.c): clamp, largest t[j] <= w, the upper neighbour only when strictly
 * nearer, back over equal levels to the smallest index. */
static inline int near_sorted(const float *t, int n, float w) {
    float wc = w < t[0] ? t[0] : w > t[n - 1] ? t[n - 1] : w;
    int lo = 0;
    for (int h = n >> 1; h > 0; h >>= 1) lo = t[lo + h] <= wc ? lo + h : lo;
    int hi = lo + 1 < n ? lo + 1 : lo;
    if (fabsf(wc - t[hi]) < fabsf(wc - t[lo])) lo = hi;
    while (lo > 0 && t[lo - 1] == t[lo]) lo--;
    return lo;
}

/* Fast path: without multipliers the levels are shared, so they are computed and sorted once and
 * the healthy weights (most of them: at rate p a 4-bit weight is healthy with (1-p)^4) take the
 * b-step binary search; faulty weights scan the 2^b levels. With multipliers every weight has
 * its own levels and this is the reference loop. */
double lb_freg_mse(const float *w, size_t n, size_t n_layer, const float *R, int bits, lb_fslice mk,
                   double lambda, float *dw, double *dR) {
    if (mk.var) return lb_freg_mse_ref(w, n, n_layer, R, bits, mk, lambda, dw, dR);
    double qn = (double)((1 << bits) - 1) / (double)(n_layer ? n_layer : 1), loss = 0;
    double coefR = lambda * 2.0 * qn;
    float cf = (float)coefR, a[MAXL], t[MAXL];
    unsigned char ix[MAXL];
    int nl = 1 << bits;
    lb_fault_levels(R, bits, mk.enc, NULL, a);
    for (int k = 0; k < nl; k++) { /* stable insertion sort by value: equal levels keep k order */
        int j = k;
        while (j > 0 && t[j - 1] > a[k]) t[j] = t[j - 1], ix[j] = ix[j - 1], j--;
        t[j] = a[k], ix[j] = (unsigned char)k;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned s0 = mk.sa0 ? mk.sa0[i] : 0, s1 = mk.sa1 ? mk.sa1[i] : 0;
        int p = (s0 | s1) == 0 ? ix[near_sorted(t, nl, w[i])]
                               : lb_fault_nearest_level(w[i], a, bits, s0, s1);
        mse_term(w[i], a, p, NULL, bits, mk.enc, cf, coefR, &loss, dw ? dw + i : NULL, dR);
    }
    return lambda * qn * loss;
}

double lb_freg_qfalt(const float *w, size_t n, const float *R, int bits, lb_fslice mk,
                     double lambda, double sigma, float *dw, double *dR) {
    double is2 = 1.0 / (sigma * sigma), loss = 0;
    float a[MAXL];
    unsigned m = (1u << bits) - 1;
    if (!mk.var) lb_fault_levels(R, bits, mk.enc, NULL, a);
    for (size_t i = 0; i < n; i++) {
        const float *v = mk.var ? mk.var + i * (size_t)bits : NULL;
        unsigned s0 = mk.sa0 ? mk.sa0[i] & m : 0, s1 = mk.sa1 ? mk.sa1[i] & m : 0;
        if (v) lb_fault_levels(R, bits, mk.enc, v, a);
        double gw = 0;
        for (unsigned p = 0; p <= m; p++) {
            if (!lb_fault_reachable(p, s0, s1)) continue;
            double d = (double)w[i] - (double)a[p], e = exp(-d * d * is2);
            loss += e;
            /* dL/da_p = -lambda * e * 2d/sigma^2; dL/dw is its negative. */
            double ga = -lambda * e * 2.0 * d * is2;
            gw -= ga;
            if (!dR) continue;
            double sg = lb_fault_sign(p, bits, mk.enc);
            int top = lb_fault_value_cells(bits, mk.enc);
            for (int j = 0; j < top; j++)
                if ((p >> j) & 1) dR[j] += ga * sg * (v ? (double)v[j] : 1.0);
            dR[bits] -= ga;
        }
        if (dw) dw[i] += (float)gw;
    }
    return -lambda * loss;
}
