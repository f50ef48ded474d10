/* Runs the integer form of a spiking network one image at a time (docs/snn.md, "Integer"): the
 * layers before the encoding once, the others every step, LIF state kept across the steps. The
 * exported C (emit_snn.c) states the same rules; the suite holds them equal. Convolutions over
 * spikes are event-driven: only the inputs that fired add their weights. */
#include "int_snn.h"
#include "int_internal.h"

#include <stdlib.h>
#include <string.h>

uint64_t lb_isnn_isqrt(uint64_t v) {
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > v) bit >>= 2;
    while (bit) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

#define AT(ws, L, T) ((T *)((ws) + (L)->off))

static int32_t load(const lb_isnn_layer *S, const unsigned char *ws, size_t i) {
    switch (S->ty) {
    case LB_ISN_SPK:
    case LB_ISN_PIX:
        return ((const uint8_t *)(ws + S->off))[i];
    default:
        return ((const int32_t *)(ws + S->off))[i];
    }
}

/* acc[co][oy][ox] = sum of w * x; a spike input adds the weights of the inputs that fired. */
static void conv(const lb_isnn_layer *L, const lb_isnn_layer *S, unsigned char *ws, int32_t *acc) {
    int cpg = L->cin / L->groups, opg = L->c / L->groups, k = L->k;
    size_t K = (size_t)cpg * k * k, plane = (size_t)L->h * L->w;
    memset(acc, 0, (size_t)L->c * plane * sizeof *acc);
    for (int ci = 0; ci < L->cin; ci++) {
        int g = ci / cpg, cl = ci % cpg;
        for (int iy = 0; iy < L->ih; iy++)
            for (int ix = 0; ix < L->iw; ix++) {
                int32_t x = load(S, ws, ((size_t)ci * L->ih + iy) * L->iw + ix);
                if (!x) continue;
                for (int ky = 0; ky < k; ky++) {
                    int oy = iy + L->pad - ky;
                    if (oy < 0 || oy % L->stride) continue;
                    oy /= L->stride;
                    if (oy >= L->h) continue;
                    for (int kx = 0; kx < k; kx++) {
                        int ox = ix + L->pad - kx;
                        if (ox < 0 || ox % L->stride) continue;
                        ox /= L->stride;
                        if (ox >= L->w) continue;
                        for (int co = g * opg; co < (g + 1) * opg; co++)
                            acc[(size_t)co * plane + (size_t)oy * L->w + ox] +=
                                x * L->wc[(size_t)co * K + ((size_t)cl * k + ky) * k + kx];
                    }
                }
            }
    }
}

/* Per-frame layer norm of accumulators into Q(frac) currents, exactly as a rational where it can
 * be: d = n*a - sum (n times the deviation, no rounded mean), scaled into 17 bits (the norm is
 * scale-invariant), the variance of those in Q12 with eps, its square root in Q6, then a rounded
 * division. Every product fits int64 for frames of up to 65535 elements. */
static void layer_norm(const lb_isnn_layer *L, const int32_t *a, int32_t *y, int frac) {
    size_t n = (size_t)L->c * L->h * L->w;
    int64_t sum = 0, big = 0, nn = (int64_t)n;
    for (size_t i = 0; i < n; i++) sum += a[i];
    for (size_t i = 0; i < n; i++) {
        int64_t d = nn * a[i] - sum;
        big = d < 0 ? (-d > big ? -d : big) : (d > big ? d : big);
    }
    int r = 0;
    while ((big >> r) >= ((int64_t)1 << 17)) r++;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t e = r ? lb_int_rshift_rne(nn * a[i] - sum, r) : nn * a[i] - sum;
        v += (uint64_t)(e * e);
    }
    /* eps in the same units, Q12: eps' * n^2 / 4^r * 2^12, eps' = eps_m * 2^eps_e */
    int64_t eps = L->eps_m * nn * nn; /* < 2^62 */
    int sh = 2 * r - L->eps_e - 12;
    if (sh > 62)
        eps = 0;
    else if (sh > 0)
        eps = lb_int_rshift_rne(eps, sh);
    else if (sh < 0)
        eps = -sh >= 62 || eps > (INT64_MAX >> -sh) ? INT64_MAX / 4 : eps << -sh;
    uint64_t var = ((v << 12) / n) + (uint64_t)eps; /* v < 2^51: fits */
    int64_t sd = (int64_t)lb_isnn_isqrt(var);       /* Q6, in units of 2^r deviations */
    if (sd < 1) sd = 1;
    /* y = d * 2^(frac+6) / (sd * 2^r) with the exact d: the numerator shifted up as far as int64
     * allows, the denominator down by the rest (it has ~2^49 of precision to spare) */
    int bl = 0;
    while (bl < 63 && (big >> bl)) bl++;
    int up = 62 - bl, q = frac + 6, down = q - up;
    if (up > q) up = q, down = 0;
    int64_t den = sd;
    if (r - down > 0)
        den = den << (r - down);
    else if (r - down < 0)
        den = lb_int_rshift_rne(den, down - r);
    if (den < 1) den = 1;
    for (size_t i = 0; i < n; i++)
        y[i] = (int32_t)lb_int_div_rne((nn * a[i] - sum) * ((int64_t)1 << up), den);
}

static void lif(const lb_isnn_layer *L, const int32_t *cur, uint8_t *spk, int32_t *u) {
    size_t plane = (size_t)L->h * L->w;
    for (int c = 0; c < L->c; c++)
        for (size_t p = 0; p < plane; p++) {
            size_t i = (size_t)c * plane + p;
            int s = spk[i];
            int64_t up = L->reset == LB_RESET_ZERO && s ? 0 : u[i];
            int64_t v;
            if (L->mem_bits) { /* codes; the current is in membrane steps / 2^8 */
                v = lb_int_rshift_rne((int64_t)L->beta_q[c] * up * 256, 15) + cur[i];
                if (L->reset == LB_RESET_SUB && s) v -= (int64_t)L->theta_q * 256;
                v = lb_int_rshift_rne(v, 8);
                v = v < L->mlo ? L->mlo : v > L->mhi ? L->mhi : v;
            } else {
                v = lb_int_rshift_rne((int64_t)L->beta_q[c] * up, 15) + cur[i];
                if (L->reset == LB_RESET_SUB && s) v -= L->theta_q;
                v = v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v;
            }
            u[i] = (int32_t)v;
            spk[i] = v > L->theta_q;
        }
}

static void maxpool(const lb_isnn_layer *L, const lb_isnn_layer *S, unsigned char *ws) {
    for (int c = 0; c < L->c; c++)
        for (int oy = 0; oy < L->h; oy++)
            for (int ox = 0; ox < L->w; ox++) {
                int32_t best = INT32_MIN;
                for (int ky = 0; ky < L->pk; ky++)
                    for (int kx = 0; kx < L->pk; kx++) {
                        int32_t v = load(S, ws,
                                         ((size_t)c * S->h + oy * L->pstride + ky) * S->w +
                                             ox * L->pstride + kx);
                        best = v > best ? v : best;
                    }
                size_t o = ((size_t)c * L->h + oy) * L->w + ox;
                if (L->ty == LB_ISN_SPK)
                    AT(ws, L, uint8_t)[o] = (uint8_t)best;
                else
                    AT(ws, L, int32_t)[o] = best;
            }
}

static void run_layer(const struct lb_isnn *m, int i, const uint8_t *img, int t,
                      unsigned char *ws) {
    const lb_isnn_layer *L = &m->l[i], *S = L->in[0] >= 0 ? &m->l[L->in[0]] : NULL;
    size_t n = (size_t)L->c * L->h * L->w;
    switch (L->kind) {
    case LB_ISK_INPUT: {
        size_t all = (size_t)m->in_c * m->in_h * m->in_w, plane = (size_t)m->in_h * m->in_w;
        for (size_t j = 0; j < all; j++) {
            if (L->ty == LB_ISN_PIX)
                AT(ws, L, uint8_t)[j] = img[j];
            else
                AT(ws, L, int32_t)[j] = m->lut[(j / plane) % (size_t)m->pol][img[j]];
        }
        break;
    }
    case LB_ISK_ENCODE:
        if (L->enc == LB_ENC_RATE) {
            for (size_t j = 0; j < n; j++) {
                uint64_t k = load(S, ws, j);
                uint64_t h = lb_spike_hash(LB_RATE_EVAL_KEY, (uint64_t)t * n + j);
                AT(ws, L, uint8_t)[j] = (h >> 40) * 255 < (k << 24);
            }
        } else if (L->enc == LB_ENC_EVENTS) {
            memcpy(AT(ws, L, int32_t), AT(ws, S, int32_t) + (size_t)t * n, n * sizeof(int32_t));
        }
        break; /* direct: the input's frame itself */
    case LB_ISK_CONV: {
        int32_t *acc = AT(ws, L, int32_t);
        conv(L, S, ws, acc);
        if (L->to_cur) {
            size_t plane = (size_t)L->h * L->w;
            for (size_t j = 0; j < n; j++)
                acc[j] = lb_int_requant(acc[j], &L->rq[j / plane], INT32_MIN, INT32_MAX);
        }
        break;
    }
    case LB_ISK_MAXPOOL:
        maxpool(L, S, ws);
        break;
    case LB_ISK_LN:
        layer_norm(L, AT(ws, S, int32_t), AT(ws, L, int32_t), m->frac);
        break;
    case LB_ISK_BN: {
        size_t plane = (size_t)L->h * L->w;
        for (size_t j = 0; j < n; j++) AT(ws, L, int32_t)
        [j] = lb_int_requant(AT(ws, S, int32_t)[j], &L->rq[j / plane], INT32_MIN, INT32_MAX);
        break;
    }
    case LB_ISK_LIF:
        lif(L, AT(ws, S, int32_t), AT(ws, L, uint8_t), (int32_t *)(ws + L->state_off));
        break;
    case LB_ISK_ADD: {
        const lb_isnn_layer *B = &m->l[L->in[1]];
        for (size_t j = 0; j < n; j++) {
            int64_t b = B->ty == LB_ISN_SPK ? (int64_t)AT(ws, B, uint8_t)[j] << m->frac
                                            : AT(ws, B, int32_t)[j];
            int64_t v = AT(ws, S, int32_t)[j] + b;
            AT(ws, L, int32_t)
            [j] = (int32_t)(v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : v);
        }
        break;
    }
    case LB_ISK_SHORTCUT: {
        int pad = (L->c - S->c) / 2;
        memset(AT(ws, L, uint8_t), 0, n);
        for (int c = 0; c < S->c; c++)
            for (int y = 0; y < L->h; y++)
                for (int x = 0; x < L->w; x++) AT(ws, L, uint8_t)
        [((size_t)(c + pad) * L->h + y) * L->w + x] =
            AT(ws, S, uint8_t)[((size_t)c * S->h + y * L->pstride) * S->w + x * L->pstride];
        break;
    }
    case LB_ISK_GAP: {
        size_t plane = (size_t)S->h * S->w;
        for (int c = 0; c < L->c; c++) {
            int32_t s = 0;
            for (size_t p = 0; p < plane; p++) s += AT(ws, S, uint8_t)[(size_t)c * plane + p];
            AT(ws, L, int32_t)[c] = s;
        }
        break;
    }
    case LB_ISK_TSUM:
        for (int k = 0; k < m->classes; k++) AT(ws, L, int32_t)
        [k] += S->ty == LB_ISN_SPK ? AT(ws, S, uint8_t)[k] : AT(ws, S, int32_t)[k];
        break;
    default:
        break;
    }
}

void lb_isnn_run_image(const struct lb_isnn *m, const uint8_t *img, int32_t *logits,
                       unsigned char *ws) {
    memset(ws, 0, m->ws_bytes); /* membranes, last spikes and the readout start at zero */
    for (int i = 0; i < m->nl; i++)
        if (!m->l[i].timed) run_layer(m, i, img, 0, ws);
    for (int t = 0; t < m->steps; t++)
        for (int i = 0; i < m->nl; i++)
            if (m->l[i].timed) run_layer(m, i, img, t, ws);
    memcpy(logits, ws + m->l[m->nl - 1].off, (size_t)m->classes * sizeof *logits);
}
