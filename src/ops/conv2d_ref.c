/* conv2d reference kernels: plain scalar loops with double accumulators, the ground truth the fast
 * kernels (conv2d.c) are tested against. Not meant to be fast; no scratch, no threads. */
#include "lb_ops.h"

#include <string.h>

void lb_conv2d_forward_ref(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                           float *y) {
    const int cig = d->cin / d->groups, cog = d->cout / d->groups, k = d->kh;
    for (int n = 0; n < d->n; n++)
        for (int co = 0; co < d->cout; co++) {
            const int g = co / cog;
            for (int oh = 0; oh < d->oh; oh++)
                for (int ow = 0; ow < d->ow; ow++) {
                    double s = b ? b[co] : 0.0;
                    for (int ci = 0; ci < cig; ci++) {
                        const float *xc =
                            x + ((size_t)n * d->cin + (size_t)g * cig + ci) * d->h * d->w;
                        const float *wc = w + ((size_t)co * cig + ci) * k * k;
                        for (int kh = 0; kh < k; kh++) {
                            const int ih = oh * d->stride - d->pad + kh;
                            if (ih < 0 || ih >= d->h) continue;
                            for (int kw = 0; kw < k; kw++) {
                                const int iw = ow * d->stride - d->pad + kw;
                                if (iw < 0 || iw >= d->w) continue;
                                s += (double)wc[kh * k + kw] * xc[(size_t)ih * d->w + iw];
                            }
                        }
                    }
                    y[(((size_t)n * d->cout + co) * d->oh + oh) * d->ow + ow] = (float)s;
                }
        }
    if (d->moments) /* the same values as the fast path's (a pure function of each plane) */
        for (size_t pl = 0; pl < (size_t)d->n * d->cout; pl++)
            lb_bn_plane_moments(y + pl * d->oh * d->ow, (size_t)d->oh * d->ow, d->moments + 2 * pl);
}

void lb_conv2d_backward_ref(const lb_conv2d_desc *d, const float *x, const float *w,
                            const float *dy, float *dx, int dx_acc, float *dw, float *db) {
    const int cig = d->cin / d->groups, cog = d->cout / d->groups, k = d->kh;
    const size_t ohw = (size_t)d->oh * d->ow, hw = (size_t)d->h * d->w;
    if (db)
        for (int co = 0; co < d->cout; co++) {
            double s = 0;
            for (int n = 0; n < d->n; n++)
                for (size_t p = 0; p < ohw; p++) s += dy[((size_t)n * d->cout + co) * ohw + p];
            db[co] = (float)s;
        }
    if (dw)
        for (int co = 0; co < d->cout; co++) {
            const int g = co / cog;
            for (int ci = 0; ci < cig; ci++)
                for (int kh = 0; kh < k; kh++)
                    for (int kw = 0; kw < k; kw++) {
                        double s = 0;
                        for (int n = 0; n < d->n; n++) {
                            const float *xc = x + ((size_t)n * d->cin + (size_t)g * cig + ci) * hw;
                            const float *dyc = dy + ((size_t)n * d->cout + co) * ohw;
                            for (int oh = 0; oh < d->oh; oh++) {
                                const int ih = oh * d->stride - d->pad + kh;
                                if (ih < 0 || ih >= d->h) continue;
                                for (int ow = 0; ow < d->ow; ow++) {
                                    const int iw = ow * d->stride - d->pad + kw;
                                    if (iw < 0 || iw >= d->w) continue;
                                    s += (double)dyc[(size_t)oh * d->ow + ow] *
                                         xc[(size_t)ih * d->w + iw];
                                }
                            }
                        }
                        dw[((size_t)co * cig + ci) * k * k + kh * k + kw] = (float)s;
                    }
        }
    if (!dx) return;
    /* Gather form: each dx element sums the outputs whose window covers it. */
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->cin; c++) {
            const int g = c / cig, ci = c % cig;
            for (int ih = 0; ih < d->h; ih++)
                for (int iw = 0; iw < d->w; iw++) {
                    double s = 0;
                    for (int kh = 0; kh < k; kh++) {
                        const int th = ih + d->pad - kh;
                        if (th < 0 || th % d->stride) continue;
                        const int oh = th / d->stride;
                        if (oh >= d->oh) continue;
                        for (int kw = 0; kw < k; kw++) {
                            const int tw = iw + d->pad - kw;
                            if (tw < 0 || tw % d->stride) continue;
                            const int ow = tw / d->stride;
                            if (ow >= d->ow) continue;
                            for (int cc = 0; cc < cog; cc++) {
                                const int co = g * cog + cc;
                                s += (double)w[((size_t)co * cig + ci) * k * k + kh * k + kw] *
                                     dy[(((size_t)n * d->cout + co) * d->oh + oh) * d->ow + ow];
                            }
                        }
                    }
                    float *p = dx + ((size_t)n * d->cin + c) * hw + (size_t)ih * d->w + iw;
                    *p = dx_acc ? *p + (float)s : (float)s;
                }
        }
}
