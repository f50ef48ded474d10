/* conv2d's AVX-512 formulations: the direct kernels (conv2d_direct_avx512.c) and Winograd
 * F(2x2, 3x3) (conv2d_wino_avx512.c), their weight and image packing and their scratch layout. Not
 * the plan (conv2d_plan.c) or the GEMM path (conv2d.c). */
#include "conv2d_direct.h"
#include "conv2d_internal.h"
#include "conv2d_wino.h"

#include <string.h>

/* ---- direct path (AVX-512) -------------------------------------------------------------------
 * Stride 1: planes are the images themselves (or G small images packed side by side).
 * Stride 2: each input channel is split into 4 phase planes x[c][a][b] = x[c][2i+a][2j+b] on the
 * output grid, so tap (kh, kw) reads phase ((kh-p) mod 2, (kw-p) mod 2) at a constant offset; dX is
 * computed per phase (only the taps of that phase reach it) and scattered back. */
typedef struct dpass {
    int ntaps;
    const int *toff;
    const uint16_t *masks; /* [nvec][ntaps] */
    const float *wp;       /* [groups][cout/8][ntaps][cin][8] */
    size_t wpg;            /* floats per group */
    size_t yoff;           /* dX: offset of this phase's plane in the output */
} dpass;

typedef struct dgeom {
    dpass fwd, dx[4];
    int ndx;
} dgeom;

static int floordiv(int a, int b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* Fills the tap offsets and validity masks of the forward and dX passes (weights are packed
 * separately, as forward or backward needs them). */
/* masks[v*nt + t] bit l: position q = 16v + l of the block lies in rows [rlo, rhi) and columns
 * [clo, chi) of its image (and inside the block) */
static void build_masks(const plan *p, int oh, int ow, int nt, const int *rlo, const int *rhi,
                        const int *clo, const int *chi, uint16_t *masks) {
    memset(masks, 0, p->nvec * nt * sizeof *masks);
    int r = 0, c = 0;
    for (size_t q = 0; q < p->ld; q++) {
        uint16_t *mv = masks + q / 16 * nt;
        const uint16_t bit = (uint16_t)(1u << (q % 16));
        for (int t = 0; t < nt; t++)
            if (r >= rlo[t] && r < rhi[t] && c >= clo[t] && c < chi[t]) mv[t] |= bit;
        if (++c == ow) {
            c = 0;
            if (++r == oh) r = 0;
        }
    }
}

/* Tap offsets and pass layout (cheap, every caller); the validity masks only where `build` asks:
 * bit 0 the forward/dW masks, bit 1 the dX passes' masks (one worker builds them). */
static dgeom direct_setup(const lb_conv2d_desc *d, const plan *p, float *scratch, int build) {
    dgeom g;
    memset(&g, 0, sizeof g);
    const int k = p->k, pad = d->pad, s = d->stride, kk = p->kk, ow = d->ow, oh = d->oh;
    uint16_t *masks = (uint16_t *)(scratch + p->wpack);
    int *toff = (int *)(scratch + p->wpack + round16(p->nvec * kk));
    int *dxoff = toff + kk;
    /* forward: tap t reads plane phase(t) at offset di*ow + dj (s = 1: the image, di = kh - pad) */
    int di[25], dj[25], ph[25];
    for (int t = 0; t < kk; t++) {
        const int eh = t / k - pad, ew = t % k - pad;
        di[t] = floordiv(eh, s), dj[t] = floordiv(ew, s);
        ph[t] = (eh - s * di[t]) * s + (ew - s * dj[t]);
        toff[t] = (int)(ph[t] * p->ld) + di[t] * ow + dj[t];
    }
    /* row/column ranges of the output grid where each tap reads inside the input */
    int rlo[25], rhi[25], clo[25], chi[25];
    for (int t = 0; t < kk; t++) {
        rlo[t] = rhi[t] = clo[t] = chi[t] = 0;
        for (int r = oh - 1; r >= 0; r--) {
            const int ih = s * r + t / k - pad;
            if (ih >= 0 && ih < d->h) rlo[t] = r, rhi[t] = rhi[t] ? rhi[t] : r + 1;
        }
        for (int c = ow - 1; c >= 0; c--) {
            const int iw = s * c + t % k - pad;
            if (iw >= 0 && iw < d->w) clo[t] = c, chi[t] = chi[t] ? chi[t] : c + 1;
        }
    }
    if (build & 1) build_masks(p, oh, ow, kk, rlo, rhi, clo, chi, masks);
    g.fwd.ntaps = kk, g.fwd.toff = toff, g.fwd.masks = masks;
    g.fwd.wp = scratch, g.fwd.wpg = (size_t)(p->cog + 7) / 8 * 8 * kk * p->cig;
    /* dX: per phase, the taps of that phase read dy at -(di*ow + dj), valid where that output
     * position exists */
    g.ndx = s * s;
    uint16_t *mdx = masks + p->nvec * kk;
    float *wdx = scratch + p->wfwd;
    int *o = dxoff;
    for (int f = 0; f < g.ndx; f++) {
        dpass *ps = &g.dx[f];
        ps->toff = o, ps->masks = mdx, ps->wp = wdx, ps->yoff = (size_t)f * p->ld;
        for (int t = 0; t < kk; t++)
            if (ph[t] == f) o[ps->ntaps++] = -(di[t] * ow + dj[t]);
        if (build & 2) {
            int n = 0;
            for (int t = 0; t < kk; t++) {
                if (ph[t] != f) continue;
                rlo[n] = di[t] > 0 ? di[t] : 0, rhi[n] = oh + di[t] < oh ? oh + di[t] : oh;
                clo[n] = dj[t] > 0 ? dj[t] : 0, chi[n] = ow + dj[t] < ow ? ow + dj[t] : ow;
                n++;
            }
            build_masks(p, oh, ow, ps->ntaps, rlo, rhi, clo, chi, mdx);
        }
        ps->wpg = (size_t)(p->cig + 7) / 8 * 8 * ps->ntaps * p->cog;
        o += ps->ntaps, mdx += p->nvec * ps->ntaps, wdx += d->groups * ps->wpg;
    }
    return g;
}

/* wp[g][cb][t][ci][8] = w[g*cog + 8cb + r][ci][t] (zero rows past cog) */
static void pack_fwd_weights(const lb_conv2d_desc *d, const plan *p, const float *w, float *wp) {
    const int cig = p->cig, cog = p->cog, kk = p->kk, cob = (cog + 7) / 8;
    for (int g = 0; g < d->groups; g++)
        for (int cb = 0; cb < cob; cb++)
            for (int t = 0; t < kk; t++)
                for (int ci = 0; ci < cig; ci++)
                    for (int r = 0; r < 8; r++) {
                        const int co = cb * 8 + r;
                        *wp++ = co < cog ? w[((size_t)(g * cog + co) * cig + ci) * kk + t] : 0.0f;
                    }
}

/* The dX pass of phase f: wp[g][cb][n][co][8] = w[g*cog + co][8cb + r][t_n], t_n its n-th tap */
static void pack_dx_weights(const lb_conv2d_desc *d, const plan *p, const dgeom *g,
                            const float *w) {
    const int cig = p->cig, cog = p->cog, kk = p->kk, k = p->k, s = d->stride;
    const int cib = (cig + 7) / 8;
    for (int f = 0; f < g->ndx; f++) {
        int taps[25], n = 0;
        for (int t = 0; t < kk; t++) {
            const int eh = t / k - d->pad, ew = t % k - d->pad;
            const int phase = (eh - s * floordiv(eh, s)) * s + (ew - s * floordiv(ew, s));
            if (phase == f) taps[n++] = t;
        }
        float *wp = (float *)g->dx[f].wp;
        for (int gr = 0; gr < d->groups; gr++)
            for (int cb = 0; cb < cib; cb++)
                for (int i = 0; i < n; i++)
                    for (int co = 0; co < cog; co++)
                        for (int r = 0; r < 8; r++) {
                            const int ci = cb * 8 + r;
                            *wp++ = ci < cig
                                        ? w[((size_t)(gr * cog + co) * cig + ci) * kk + taps[i]]
                                        : 0.0f;
                        }
    }
}

/* pk[c][i*hw + q] = t[n0 + i][c][q] for i < g; planes ld apart */
static void pack_images(const float *t, int ch, size_t hw, int n0, int g, size_t ld, float *pk) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < g; i++)
            memcpy(pk + (size_t)c * ld + i * hw, t + ((size_t)(n0 + i) * ch + c) * hw,
                   hw * sizeof *pk);
}

static void unpack_images(const float *pk, int ch, size_t hw, int n0, int g, size_t ld, float *t,
                          int acc) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < g; i++) {
            const float *src = pk + (size_t)c * ld + i * hw;
            float *dst = t + ((size_t)(n0 + i) * ch + c) * hw;
            if (acc)
                for (size_t q = 0; q < hw; q++) dst[q] += src[q];
            else
                memcpy(dst, src, hw * sizeof *dst);
        }
}

/* Stride 2: pk[c][a*2+b][i*ohw + r*ow + col] = x[n0+i][c][2r+a][2col+b] (0 past the edge) */
static void pack_phases(const lb_conv2d_desc *d, const plan *p, const float *x, int n0, int g,
                        float *pk) {
    for (int c = 0; c < d->cin; c++)
        for (int i = 0; i < g; i++)
            lb_conv2d_split_phases_avx512(x + ((size_t)(n0 + i) * d->cin + c) * p->hw, d->h, d->w,
                                          d->oh, d->ow, pk + (size_t)c * 4 * p->ld + i * p->ohw,
                                          p->ld);
}

/* The adjoint of pack_phases: dx[n0+i][c][2r+a][2col+b] (+)= pk[c][a*2+b][...] */
static void unpack_phases(const lb_conv2d_desc *d, const plan *p, const float *pk, int n0, int g,
                          float *dx, int acc) {
    for (int c = 0; c < d->cin; c++)
        for (int i = 0; i < g; i++)
            lb_conv2d_merge_phases_avx512(pk + (size_t)c * 4 * p->ld + i * p->ohw, p->ld, d->h,
                                          d->w, d->ow, dx + ((size_t)(n0 + i) * d->cin + c) * p->hw,
                                          acc);
}

static lb_conv_direct direct_job(const plan *p, const dpass *ps, int npos) {
    lb_conv_direct j;
    memset(&j, 0, sizeof j);
    j.k = p->k, j.ntaps = ps->ntaps;
    j.toff = ps->toff, j.masks = ps->masks;
    j.npos = npos;
    return j;
}

void lb_conv2d_direct_forward(const lb_conv2d_desc *d, const plan *p, const float *x,
                              const float *w, const float *b, float *y, float *scratch) {
    const dgeom geo = direct_setup(d, p, scratch, 0);
    const int nt = workers(p, d->n), G = p->G, cig = p->cig, cog = p->cog, s = d->stride;
    const size_t hw = p->hw, ohw = p->ohw, ld = p->ld, xch = (size_t)s * s * ld;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        /* per-call setup split between the first and the last worker */
        if (t == 0) direct_setup(d, p, scratch, 1);
        if (t == T - 1) pack_fwd_weights(d, p, w, scratch);
#pragma omp barrier
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        float *xpk = worker_col(p, scratch, t);
        float *ypk = xpk + round16(xch * d->cin) * 2;
        for (int nb = n0; nb < n1; nb += G) {
            const int g = n1 - nb < G ? n1 - nb : G;
            const float *xs = x + (size_t)nb * d->cin * hw;
            float *ys = y + (size_t)nb * d->cout * ohw;
            size_t ldx = hw, ldy = ohw;
            if (p->packed) {
                if (s == 2)
                    pack_phases(d, p, x, nb, g, xpk);
                else
                    pack_images(x, d->cin, hw, nb, g, ld, xpk);
                xs = xpk, ys = ypk, ldx = xch, ldy = ld;
            }
            /* prefetched while this block computes: the next block's input, and the output lines
             * written next (this block's y when it is unpacked after the kernel, else the next
             * block's), so neither the reads nor the stores wait on DRAM */
            const int gn = n1 - nb - g < G ? n1 - nb - g : G;
            const float *xn = gn > 0 ? x + (size_t)(nb + g) * d->cin * hw : NULL;
            const float *yn = p->packed ? y + (size_t)nb * d->cout * ohw
                              : gn > 0  ? y + (size_t)(nb + g) * d->cout * ohw
                                        : NULL;
            const size_t ynf = (size_t)(p->packed ? g : gn > 0 ? gn : 0) * d->cout * ohw;
            for (int gr = 0; gr < d->groups; gr++) {
                lb_conv_direct j = direct_job(p, &geo.fwd, g * (int)ohw);
                j.cin = cig, j.cout = cog;
                if (gr == 0) {
                    j.pf[0] = xn, j.pf_floats[0] = (size_t)(gn > 0 ? gn : 0) * d->cin * hw;
                    j.pf[1] = yn, j.pf_floats[1] = yn ? ynf : 0;
                }
                j.x = xs + (size_t)gr * cig * ldx, j.ldx = ldx;
                j.y = ys + (size_t)gr * cog * ldy, j.ldy = ldy;
                j.wp = geo.fwd.wp + gr * geo.fwd.wpg, j.bias = b ? b + (size_t)gr * cog : NULL;
                lb_conv2d_direct_fwd_avx512(&j);
            }
            if (p->packed) unpack_images(ypk, d->cout, ohw, nb, g, ld, y, 0);
            lb_conv2d_out_moments(d, y, nb, nb + g);
        }
    }
}

/* Images [n0, n0 + nimg) of t (ch channels) as Winograd units [unit][ch][h][wW]: p->wgh images
 * side by side, a zero column between, zero images past the end. */
static void wino_pack(const lb_conv2d_desc *d, const plan *p, const float *t, int ch, int n0,
                      int nimg, float *buf) {
    const int G = p->wgh, W = p->wW, h = d->h, w = d->w, units = (nimg + G - 1) / G;
    for (int u = 0; u < units; u++)
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < h; r++) {
                float *dst = buf + (((size_t)u * ch + c) * h + r) * W;
                for (int k = 0; k < G; k++, dst += w + 1) {
                    const int i = u * G + k;
                    if (i < nimg)
                        memcpy(dst, t + ((size_t)(n0 + i) * ch + c) * p->hw + (size_t)r * w,
                               (size_t)w * sizeof *buf);
                    else
                        memset(dst, 0, (size_t)w * sizeof *buf);
                    if (k < G - 1) dst[w] = 0.0f;
                }
            }
}

/* The adjoint layout move: t[n0 + i] (+)= image i of the units (separator columns dropped). */
static void wino_unpack(const lb_conv2d_desc *d, const plan *p, const float *buf, int ch, int n0,
                        int nimg, float *t, int acc) {
    const int G = p->wgh, W = p->wW, h = d->h, w = d->w;
    for (int i = 0; i < nimg; i++)
        for (int c = 0; c < ch; c++)
            for (int r = 0; r < h; r++) {
                const float *src =
                    buf + (((size_t)(i / G) * ch + c) * h + r) * W + (size_t)(i % G) * (w + 1);
                float *dst = t + ((size_t)(n0 + i) * ch + c) * p->hw + (size_t)r * w;
                if (acc)
                    for (int q = 0; q < w; q++) dst[q] += src[q];
                else
                    memcpy(dst, src, (size_t)w * sizeof *dst);
            }
}

/* A worker's Winograd scratch: V and M planes, dW accumulators, packed units (x, y, dy). */
typedef struct wino_ws {
    float *V, *M, *Mw, *px, *py, *pdy;
} wino_ws;

static wino_ws wino_scratch(const lb_conv2d_desc *d, const plan *p, float *scratch, int t) {
    const size_t cmax = (size_t)(d->cin > d->cout ? d->cin : d->cout);
    const size_t plane = 16 * lb_wino_xi_stride((int)cmax, p->wldt);
    wino_ws s;
    s.V = worker_col(p, scratch, t) + p->wofs, s.M = s.V + plane, s.Mw = s.M + plane;
    s.px = s.Mw + round16(lb_wino_dw_acc_floats(d->cout, d->cin));
    s.py = s.px + p->wpk, s.pdy = s.py + p->wpk;
    return s;
}

/* One Winograd conv over images [nb, nb + nimg) (at most a block): x (ci channels) into y (co
 * channels), y (+)= as acc says; `xin` is x already packed into units, or NULL. */
static void wino_conv(const lb_conv2d_desc *d, const plan *p, const wino_ws *ws, int ci, int co,
                      const float *U, const float *b, const float *x, const float *xin, float *y,
                      int acc, int nb, int nimg) {
    const int G = p->wgh, units = (nimg + G - 1) / G;
    lb_conv_wino j;
    j.cin = ci, j.cout = co, j.h = d->h, j.w = p->wW, j.g = units;
    j.ldt = round16((size_t)units * ((d->h + 1) / 2) * ((p->wW + 1) / 2));
    j.U = U, j.bias = b, j.V = ws->V, j.M = ws->M;
    if (G > 1) {
        if (!xin) wino_pack(d, p, x, ci, nb, nimg, ws->px), xin = ws->px;
        j.x = xin, j.y = ws->py, j.acc = 0;
    } else {
        j.x = x + (size_t)nb * ci * p->hw, j.y = y + (size_t)nb * co * p->hw, j.acc = acc;
    }
    lb_conv2d_wino_avx512(&j);
    if (G > 1) wino_unpack(d, p, ws->py, co, nb, nimg, y, acc);
}

void lb_conv2d_wino_forward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                            const float *b, float *y, float *scratch) {
    const int nt = workers(p, d->n);
    float *U = scratch + p->wU;
    lb_conv2d_wino_weights(w, d->cout, d->cin, 0, U);
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        const wino_ws ws = wino_scratch(d, p, scratch, t);
        const int per = p->wg * p->wgh;
        for (int nb = n0; nb < n1; nb += per) {
            const int nimg = n1 - nb < per ? n1 - nb : per;
            wino_conv(d, p, &ws, d->cin, d->cout, U, b, x, NULL, y, 0, nb, nimg);
            lb_conv2d_out_moments(d, y, nb, nb + nimg);
        }
    }
}

/* Winograd for both gradients: per block of p->wgd images, dW accumulates in the transformed
 * domain (per worker) and dX runs on the same images while their dy is in L2. */
void lb_conv2d_wino_backward(const lb_conv2d_desc *d, const plan *p, const float *x, const float *w,
                             const float *dy, float *dx, int dx_acc, float *dw, float *db,
                             float *scratch) {
    const int nt = workers(p, d->n), T2 = ((d->h + 1) / 2) * ((p->wW + 1) / 2);
    const size_t hw = p->hw, nw = (size_t)d->cout * p->kdim, bofs = round16(nw);
    float *const Udx = scratch + p->wU + round16((size_t)16 * d->cin * d->cout);
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        if (t == 0) used = T;
        if (t == T - 1 && dx) lb_conv2d_wino_weights(w, d->cin, d->cout, 1, Udx);
#pragma omp barrier
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        const wino_ws ws = wino_scratch(d, p, scratch, t);
        float *const Mw = ws.Mw, *pdw = worker_part(p, scratch, t);
        const int G = p->wgh, per = p->wgd * G;
        if (dw) memset(Mw, 0, lb_wino_dw_acc_floats(d->cout, d->cin) * sizeof *Mw);
        if (db) memset(pdw + bofs, 0, (size_t)d->cout * sizeof *pdw);
        for (int nb = n0; nb < n1; nb += per) {
            const int g = n1 - nb < per ? n1 - nb : per, units = (g + G - 1) / G;
            const float *dyin = NULL; /* dy of the block packed into units, when G > 1 */
            if (G > 1 && (dw || dx)) wino_pack(d, p, dy, d->cout, nb, g, ws.pdy), dyin = ws.pdy;
            if (db)
                for (int i = nb; i < nb + g; i++)
                    for (int c = 0; c < d->cout; c++)
                        pdw[bofs + c] += sum_floats(dy + ((size_t)i * d->cout + c) * hw, hw);
            if (dw) {
                lb_conv_wino_dw jd;
                memset(&jd, 0, sizeof jd);
                jd.j.cin = d->cin, jd.j.cout = d->cout, jd.j.h = d->h, jd.j.w = p->wW;
                jd.j.g = units, jd.j.ldt = round16((size_t)units * T2);
                if (G > 1) {
                    wino_pack(d, p, x, d->cin, nb, g, ws.px);
                    jd.j.x = ws.px, jd.dy = dyin;
                } else {
                    jd.j.x = x + (size_t)nb * d->cin * hw, jd.dy = dy + (size_t)nb * d->cout * hw;
                }
                jd.j.V = ws.V, jd.j.M = ws.M, jd.Mw = Mw;
                lb_conv2d_wino_dw_avx512(&jd);
            }
            /* on the same images while their dy is in L2 */
            if (dx) wino_conv(d, p, &ws, d->cout, d->cin, Udx, NULL, dy, dyin, dx, dx_acc, nb, g);
        }
        if (dw) lb_conv2d_wino_dw_finish(Mw, d->cout, d->cin, pdw);
#pragma omp barrier
        lb_conv2d_reduce_partials(p, scratch, used, nw, d->cout, dw, db);
    }
}

void lb_conv2d_direct_backward(const lb_conv2d_desc *d, const plan *p, const float *x,
                               const float *w, const float *dy, float *dx, int dx_acc, float *dw,
                               float *db, float *scratch) {
    const dgeom geo = direct_setup(d, p, scratch, 0);
    const int nt = workers(p, d->n), cig = p->cig, cog = p->cog, s = d->stride;
    const int B = p->packed ? p->G : p->dwb;
    const size_t hw = p->hw, ohw = p->ohw, ld = p->ld, xch = (size_t)s * s * ld;
    const size_t nw = (size_t)d->cout * p->kdim, bofs = round16(nw);
    int used = nt;
#pragma omp parallel num_threads(nt)
    {
        int t, T;
        team(&t, &T);
        if (t == 0) used = T, direct_setup(d, p, scratch, (dw ? 1 : 0) | (dx ? 2 : 0));
        if (t == T - 1 && dx) pack_dx_weights(d, p, &geo, w);
#pragma omp barrier
        int n0, n1;
        image_range(d->n, t, T, &n0, &n1);
        float *xpk = worker_col(p, scratch, t), *dxpk = xpk + round16(xch * d->cin);
        float *dypk = dxpk + round16(xch * d->cin), *pdw = worker_part(p, scratch, t);
        if (dw) memset(pdw, 0, nw * sizeof *pdw);
        if (db) memset(pdw + bofs, 0, (size_t)d->cout * sizeof *pdw);
        for (int nb = n0; nb < n1; nb += B) {
            const int g = n1 - nb < B ? n1 - nb : B;
            /* packed: one kernel call covers the block; unpacked: dW loops over the g images
             * inside each tile (one reduction per tile), dX runs per image */
            const int npos = p->packed ? g * (int)ohw : (int)ohw, nimg = p->packed ? 1 : g;
            const float *xs = x + (size_t)nb * d->cin * hw, *dys = dy + (size_t)nb * d->cout * ohw;
            float *dxs = dx ? dx + (size_t)nb * d->cin * hw : NULL;
            size_t ldx = hw, ldy = ohw;
            if (p->packed) {
                if (dw && s == 2) pack_phases(d, p, x, nb, g, xpk);
                if (dw && s == 1) pack_images(x, d->cin, hw, nb, g, ld, xpk);
                if (dw || dx) pack_images(dy, d->cout, ohw, nb, g, ld, dypk);
                xs = xpk, dys = dypk, dxs = dxpk, ldx = xch, ldy = ld;
            }
            if (db)
                for (int i = nb; i < nb + g; i++)
                    for (int c = 0; c < d->cout; c++)
                        pdw[bofs + c] += sum_floats(dy + ((size_t)i * d->cout + c) * ohw, ohw);
            const int gn = n1 - nb - g < B ? n1 - nb - g : B;
            const size_t xnf = gn > 0 ? (size_t)gn * d->cin * hw : 0;
            const size_t dynf = gn > 0 ? (size_t)gn * d->cout * ohw : 0;
            const float *xn = x + (size_t)(nb + g) * d->cin * hw;
            const float *dyn = dy + (size_t)(nb + g) * d->cout * ohw;
            for (int gr = 0; gr < d->groups; gr++) {
                if (dw) {
                    lb_conv_direct j = direct_job(p, &geo.fwd, npos);
                    j.cin = cig, j.cout = cog;
                    if (gr == 0 && gn > 0) {
                        j.pf[0] = xn, j.pf_floats[0] = xnf;
                        if (!dx) j.pf[1] = dyn, j.pf_floats[1] = dynf;
                    }
                    j.x = xs + (size_t)gr * cig * ldx, j.ldx = ldx;
                    j.dy = dys + (size_t)gr * cog * ldy, j.lddy = ldy;
                    j.nimg = nimg, j.ximg = (size_t)d->cin * hw, j.dyimg = (size_t)d->cout * ohw;
                    j.dw = pdw + (size_t)gr * cog * p->kdim, j.ldw = (size_t)p->kdim;
                    lb_conv2d_direct_dw_avx512(&j);
                }
                if (dx)
                    for (int i = 0; i < nimg; i++)
                        for (int f = 0; f < geo.ndx; f++) {
                            const dpass *ps = &geo.dx[f];
                            lb_conv_direct j = direct_job(p, ps, npos);
                            j.cin = cog, j.cout = cig;
                            if (gr == 0 && i == 0 && f == 0) {
                                if (gn > 0) j.pf[0] = dyn, j.pf_floats[0] = dynf;
                                /* the dx lines written next (as for y in the forward) */
                                if (p->packed)
                                    j.pf[1] = dx + (size_t)nb * d->cin * hw,
                                    j.pf_floats[1] = (size_t)g * d->cin * hw;
                                else if (gn > 0)
                                    j.pf[1] = dx + (size_t)(nb + g) * d->cin * hw,
                                    j.pf_floats[1] = (size_t)gn * d->cin * hw;
                            }
                            j.x = dys + (size_t)i * d->cout * ohw + (size_t)gr * cog * ldy;
                            j.y = dxs + (size_t)i * d->cin * hw + (size_t)gr * cig * ldx + ps->yoff;
                            j.ldx = ldy, j.ldy = ldx;
                            j.wp = ps->wp + gr * ps->wpg, j.beta = p->packed ? 0 : dx_acc;
                            lb_conv2d_direct_fwd_avx512(&j);
                        }
            }
            if (dx && p->packed) {
                if (s == 2)
                    unpack_phases(d, p, dxpk, nb, g, dx, dx_acc);
                else
                    unpack_images(dxpk, d->cin, hw, nb, g, ld, dx, dx_acc);
            }
        }
#pragma omp barrier
        lb_conv2d_reduce_partials(p, scratch, used, nw, d->cout, dw, db);
    }
}
