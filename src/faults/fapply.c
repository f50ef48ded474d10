/* What stuck bits and variable cells do to stored codes and levels (methods.md sec. 3): the
 * scalar references (faulty code, reachable set, nearest reachable code and level, per-weight
 * levels) and the fast path applying a map to a tensor of codes. Not the regularizers (freg.c)
 * nor maps and files (fmap*.c). Rules are stated in lb_faults.h; docs/faults.md has the why. */
#include "lb_faults.h"

#include <math.h>
#include <stdlib.h>

int lb_fault_value(unsigned p, int bits, lb_fenc enc) {
    p &= (1u << bits) - 1;
    unsigned top = 1u << (bits - 1);
    if (enc == LB_FENC_SIGNMAG) return p & top ? -(int)(p & ~top) : (int)p;
    if (enc == LB_FENC_TWOS && (p & top)) return (int)p - (1 << bits);
    return (int)p;
}

unsigned lb_fault_pattern(int code, int bits, lb_fenc enc) {
    if (enc == LB_FENC_SIGNMAG) {
        int mx = (1 << (bits - 1)) - 1; /* the largest magnitude the b-1 cells hold */
        return code < 0 ? (1u << (bits - 1)) | (unsigned)(-code > mx ? mx : -code) : (unsigned)code;
    }
    /* two's complement of a code in range is its low b bits; an index is itself */
    return (unsigned)code & ((1u << bits) - 1);
}

int lb_fault_code(int code, int bits, lb_fenc enc, unsigned sa0, unsigned sa1) {
    unsigned m = (1u << bits) - 1;
    return lb_fault_value(lb_fault_apply(lb_fault_pattern(code, bits, enc), sa0 & m, sa1 & m), bits,
                          enc);
}

/* Linear over the 2^b patterns: the scalar reference (b <= 8). */
int lb_fault_nearest_code(int code, int bits, lb_fenc enc, unsigned sa0, unsigned sa1) {
    int best = 0, bd = -1;
    for (unsigned p = 0; p < (1u << bits); p++) {
        if (!lb_fault_reachable(p, sa0 & ((1u << bits) - 1), sa1 & ((1u << bits) - 1))) continue;
        int v = lb_fault_value(p, bits, enc), d = abs(v - code);
        if (bd < 0 || d < bd || (d == bd && v < best)) bd = d, best = v;
    }
    return best;
}

int lb_fault_reachable_set(int bits, unsigned sa0, unsigned sa1, uint8_t *out) {
    unsigned m = (1u << bits) - 1;
    int cnt = 0;
    for (unsigned p = 0; p <= m; p++)
        cnt += out[p] = (uint8_t)lb_fault_reachable(p, sa0 & m, sa1 & m);
    return cnt;
}

void lb_fault_R_twos(float s, int bits, float *R) {
    for (int j = 0; j < bits - 1; j++) R[j] = ldexpf(s, j);
    R[bits - 1] = -ldexpf(s, bits - 1);
    R[bits] = 0.0f;
}

void lb_fault_R_signmag(float s, int bits, float *R) {
    for (int j = 0; j < bits - 1; j++) R[j] = ldexpf(s, j);
    R[bits - 1] = 0.0f;
    R[bits] = 0.0f;
}

void lb_fault_R_uniform(float s, int bits, lb_fenc enc, float *R) {
    if (enc == LB_FENC_TWOS) {
        lb_fault_R_twos(s, bits, R);
    } else if (enc == LB_FENC_SIGNMAG) {
        lb_fault_R_signmag(s, bits, R);
    } else {
        for (int j = 0; j < bits; j++) R[j] = ldexpf(s, j);
        R[bits] = 0.0f;
    }
}

void lb_fault_R_reg_twos(const float *R, int bits, float *Rt) {
    for (int j = 0; j < bits - 1; j++) Rt[j] = R[j];
    Rt[bits - 1] = -R[bits - 1];
    Rt[bits] = R[bits] - R[bits - 1];
}

/* Same summation as the reg quantizer's lb_reg_levels_of (double, j ascending, one rounding):
 * with v == NULL or all 1 (R_j * 1 is exact) the levels are the same bits. A signmag sign cell
 * has R_{b-1} = 0 and is skipped, so no multiplier of it enters the sum (a stored 0 * a non-
 * finite multiplier would not be 0). */
float lb_fault_level_at(const float *R, int bits, lb_fenc enc, const float *v, unsigned p) {
    int sgn = lb_fault_sign(p, bits, enc), top = lb_fault_value_cells(bits, enc);
    double acc = 0;
    for (int j = 0; j < top; j++)
        if ((p >> j) & 1) acc += v ? (double)R[j] * (double)v[j] : (double)R[j];
    if (sgn < 0 && acc != 0) acc = -acc; /* a signmag zero stays +0 */
    return (float)(acc - (double)R[bits]);
}

void lb_fault_levels(const float *R, int bits, lb_fenc enc, const float *v, float *a) {
    for (unsigned p = 0; p < (1u << bits); p++) a[p] = lb_fault_level_at(R, bits, enc, v, p);
}

int lb_fault_nearest_level(float w, const float *a, int bits, unsigned sa0, unsigned sa1) {
    unsigned m = (1u << bits) - 1;
    sa0 &= m, sa1 &= m;
    float lo = INFINITY, hi = -INFINITY;
    int plo = -1;
    for (unsigned p = 0; p <= m; p++) {
        if (!lb_fault_reachable(p, sa0, sa1)) continue;
        if (a[p] < lo || plo < 0) lo = a[p], plo = (int)p;
        hi = a[p] > hi ? a[p] : hi;
    }
    if (w != w) return plo;
    float wc = w < lo ? lo : w > hi ? hi : w, bd = INFINITY;
    int best = plo;
    for (unsigned p = 0; p <= m; p++) {
        if (!lb_fault_reachable(p, sa0, sa1)) continue;
        float d = fabsf(wc - a[p]);
        if (d < bd || (d == bd && a[p] < a[best])) bd = d, best = (int)p;
    }
    return best;
}

/* The fast path: one AND-NOT and one OR per weight over contiguous bytes, which compilers
 * vectorize; two's complement codes are sign-extended from bit b-1 afterwards. */
void lb_fault_apply_u8(const lb_flayer *L, size_t off, size_t n, const uint8_t *in, uint8_t *out) {
    const uint8_t *s0 = L->sa0 + off, *s1 = L->sa1 + off;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)((in[i] & ~s0[i]) | s1[i]);
}

void lb_fault_apply_i8(const lb_flayer *L, size_t off, size_t n, const int8_t *in, int8_t *out) {
    const uint8_t *s0 = L->sa0 + off, *s1 = L->sa1 + off;
    int b = L->spec.bits;
    if (L->spec.enc == LB_FENC_SIGNMAG) { /* the scalar rule: not a hot path (stuck-only maps) */
        for (size_t i = 0; i < n; i++)
            out[i] = (int8_t)lb_fault_code(in[i], b, LB_FENC_SIGNMAG, s0[i], s1[i]);
        return;
    }
    uint8_t m = (uint8_t)((1u << b) - 1), sign = (uint8_t)(1u << (b - 1));
    for (size_t i = 0; i < n; i++) {
        uint8_t p = (uint8_t)((((uint8_t)in[i] & m) & ~s0[i]) | s1[i]);
        out[i] = (int8_t)((int)(p ^ sign) - (int)sign);
    }
}
