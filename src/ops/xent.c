/* Softmax cross-entropy with label smoothing (batch mean), forward and backward. Not a general
 * softmax: the probabilities are saved only for this loss's backward. */
#include "lb_ops.h"

#include <assert.h>
#include <math.h>

/* Per sample, with z the logits, lse = log sum exp z and t = (1-eps)*onehot(y) + eps/K:
 *   loss = sum_k t_k (lse - z_k) = lse - (1-eps) z_y - (eps/K) sum_k z_k
 * computed in double from the max-shifted logits, so large logits neither overflow nor cancel. */
float lb_xent_forward(int n, int classes, const float *logits, const int32_t *labels,
                      float smoothing, float *probs, int *ncorrect) {
    double total = 0;
    int hits = 0;
    const double on = 1.0 - smoothing, off = (double)smoothing / classes;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * classes;
        const int32_t y = labels[i];
        assert(y >= 0 && y < classes);
        int am = 0;
        for (int k = 1; k < classes; k++)
            if (z[k] > z[am]) am = k;
        const double zmax = z[am];
        double se = 0, sz = 0;
        for (int k = 0; k < classes; k++) {
            se += exp(z[k] - zmax);
            sz += z[k] - zmax;
        }
        const double lse = log(se); /* of the shifted logits */
        total += lse - on * (z[y] - zmax) - off * sz;
        if (probs) {
            float *p = probs + (size_t)i * classes;
            for (int k = 0; k < classes; k++) p[k] = (float)(exp(z[k] - zmax - lse));
        }
        hits += am == y;
    }
    if (ncorrect) *ncorrect = hits;
    return n > 0 ? (float)(total / n) : 0.0f;
}

/* dloss/dz_k = (p_k - t_k) / n. dlogits is overwritten (logits are a leaf of the loss). */
void lb_xent_backward(int n, int classes, const float *probs, const int32_t *labels,
                      float smoothing, float *dlogits) {
    const float inv = 1.0f / (float)n;
    const float off = smoothing / (float)classes, on = 1.0f - smoothing + off;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * classes;
        float *g = dlogits + (size_t)i * classes;
        for (int k = 0; k < classes; k++) g[k] = (p[k] - off) * inv;
        g[labels[i]] = (p[labels[i]] - on) * inv;
    }
}
