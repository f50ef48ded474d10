/* What goes into and out of a spiking network: time expansion of static inputs (direct, rate),
 * event frames to time-major order, the readout over time and snnTorch's MSE count loss. Not
 * the neuron (lif.c). */
#include "lb_ops.h"

#include <math.h>
#include <string.h>

void lb_repeat_forward(int t, size_t nd, const float *x, float *y) {
    for (int k = 0; k < t; k++) memcpy(y + (size_t)k * nd, x, nd * sizeof(float));
}

void lb_repeat_backward(int t, size_t nd, const float *dy, float *dx, int dx_acc) {
#pragma omp parallel for schedule(static) if (nd >= 65536)
    for (size_t i = 0; i < nd; i++) {
        float g = 0;
        for (int k = 0; k < t; k++) g += dy[(size_t)k * nd + i];
        dx[i] = dx_acc ? dx[i] + g : g;
    }
}

/* splitmix64's finalizer over key + counter * golden ratio: a counter-based generator, so any
 * element's draw is known without generating the ones before it (parallel, and reproducible on
 * a microcontroller one image at a time). */
uint64_t lb_spike_hash(uint64_t key, uint64_t counter) {
    uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void lb_rate_encode(int t, int n, size_t d, const float *x, float *y, uint64_t key,
                    int per_sample) {
    size_t nd = (size_t)n * d;
#pragma omp parallel for schedule(static) if (nd * (size_t)t >= 65536)
    for (size_t i = 0; i < nd; i++) {
        float v = rintf(x[i] * 255.0f);
        uint64_t k = v < 0 ? 0 : v > 255 ? 255 : (uint64_t)v;
        size_t s = i / d, j = i % d;
        for (int k2 = 0; k2 < t; k2++) {
            uint64_t c = ((uint64_t)k2 * (per_sample ? (uint64_t)n : 1) + (per_sample ? s : 0)) *
                             (uint64_t)d +
                         j;
            uint64_t h = lb_spike_hash(key, c);
            y[(size_t)k2 * nd + i] = (h >> 40) * 255 < (k << 24) ? 1.0f : 0.0f;
        }
    }
}

void lb_frames_forward(int t, int n, int p, size_t hw, const float *x, float *y) {
    size_t plane = (size_t)p * hw;
    for (int k = 0; k < t; k++)
        for (int i = 0; i < n; i++)
            memcpy(y + ((size_t)k * n + i) * plane, x + ((size_t)i * t + k) * plane,
                   plane * sizeof(float));
}

void lb_tsum_forward(int t, size_t nk, float scale, const float *x, float *y) {
    for (size_t i = 0; i < nk; i++) {
        float s = 0;
        for (int k = 0; k < t; k++) s += x[(size_t)k * nk + i];
        y[i] = s * scale;
    }
}

void lb_tsum_backward(int t, size_t nk, float scale, const float *dy, float *dx, int dx_acc) {
    for (int k = 0; k < t; k++)
        for (size_t i = 0; i < nk; i++) {
            float g = dy[i] * scale;
            float *o = dx + (size_t)k * nk + i;
            *o = dx_acc ? *o + g : g;
        }
}

float lb_mse_count_loss(int n, int k, const float *counts, const int32_t *labels, int t, float on,
                        float off, float *dcounts, int *ncorrect) {
    /* snnTorch converts the target rates with int(): floor for these non-negative values */
    float ton = floorf((float)t * on), toff = floorf((float)t * off);
    double loss = 0;
    int nc = 0;
    /* snnTorch divides the mean square error by T as well */
    float inv = 1.0f / (float)((size_t)n * k) / (float)t;
    for (int i = 0; i < n; i++) {
        const float *c = counts + (size_t)i * k;
        int best = 0;
        for (int j = 0; j < k; j++) {
            float e = c[j] - (j == labels[i] ? ton : toff);
            loss += (double)e * e;
            if (dcounts) dcounts[(size_t)i * k + j] = 2 * e * inv;
            if (c[j] > c[best]) best = j;
        }
        nc += best == labels[i];
    }
    if (ncorrect) *ncorrect = nc;
    return (float)(loss / ((double)n * k) / t);
}
