/* Residual pieces (elementwise add, ResNet option-A shortcut) and inverted dropout, forward and
 * backward. Pointwise loops only; no parameters, no allocation. */
#include "lb_ops.h"

#include <assert.h>
#include <string.h>

/* Below this many elements a parallel region costs more than it saves. */
#define LB_MISC_PAR_MIN 65536
/* Dropout works in blocks of this many elements (even: a 64-bit draw covers two), mask first, then
 * a vectorized multiply. */
#define LB_DROPOUT_BLOCK 4096

/* No restrict: y may be a or b (in place); the compiler checks the overlap at run time. One loop
 * per activation keeps each a plain vectorizable select. */
void lb_add_forward(size_t n, int act, const float *a, const float *b, float *y) {
    if (act == 1) {
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = a[i] + b[i];
            y[i] = v < 0.0f ? 0.0f : v;
        }
    } else if (act == 2) {
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float v = a[i] + b[i];
            v = v < 0.0f ? 0.0f : v;
            y[i] = v > 6.0f ? 6.0f : v;
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
    }
}

/* The mask of lb_relu_backward / lb_relu6_backward, by the output. */
static inline float act_grad(int act, float y, float g) {
    if (act == 1) return y > 0.0f ? g : 0.0f;
    if (act == 2) return (y > 0.0f && y < 6.0f) ? g : 0.0f;
    return g;
}

#define AI static inline __attribute__((always_inline))

/* The general case, element by element in order (da == db for y = a + a: the second write then
 * accumulates onto the first, as two separate gradient contributions would). Rare: no restrict. */
AI void add_bwd_any(size_t i0, size_t i1, int act, const float *y, float *dy, float *da, int da_acc,
                    float *db, int db_acc) {
    for (size_t i = i0; i < i1; i++) {
        float g = act_grad(act, act ? y[i] : 0.0f, dy[i]);
        if (da) da[i] = da_acc ? da[i] + g : g;
        if (db) db[i] = db_acc ? db[i] + g : g;
    }
}

/* The residual block's case: the add ran in place over a (da is dy), db is another buffer. With
 * constant act / wdy / dbm (0 none, 1 store, 2 add) and distinct buffers this is one vector
 * loop; the generic loop above would fail the compiler's overlap check (da == dy) and run
 * scalar. */
AI void add_bwd_inplace(size_t i0, size_t i1, int act, const float *restrict y, float *restrict dy,
                        int wdy, float *restrict db, int dbm) {
    for (size_t i = i0; i < i1; i++) {
        float g = act_grad(act, act ? y[i] : 0.0f, dy[i]);
        if (wdy) dy[i] = g;
        if (dbm == 1) db[i] = g;
        if (dbm == 2) db[i] += g;
    }
}

#define LB_ADD_BLK 4096

void lb_add_backward(size_t n, int act, const float *y, float *dy, float *da, int da_acc, float *db,
                     int db_acc) {
    assert(!(da == dy && da_acc));
    const size_t nb = (n + LB_ADD_BLK - 1) / LB_ADD_BLK;
    if (da && da != dy) {
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t b = 0; b < nb; b++) {
            size_t e = (b + 1) * LB_ADD_BLK < n ? (b + 1) * LB_ADD_BLK : n;
            add_bwd_any(b * LB_ADD_BLK, e, act, y, dy, da, da_acc, db, db_acc);
        }
        return;
    }
    /* da is dy (masked in place when there is an activation) or absent */
    const int wdy = act != 0 && da == dy;
    const int dbm = db ? (db_acc ? 2 : 1) : 0;
    if (!wdy && !dbm) return;
    const int sel = (act * 2 + wdy) * 3 + dbm;
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * LB_ADD_BLK, e = (b + 1) * LB_ADD_BLK < n ? (b + 1) * LB_ADD_BLK : n;
        /* a table of macro cases, which clang-format 14 reflows differently on every pass */
        /* clang-format off */
        switch (sel) {
#define K(A, W, M)                                                                                 \
    case (A * 2 + W) * 3 + M:                                                                      \
        add_bwd_inplace(i0, e, A, y, dy, W, db, M);                                                \
        break;
            K(0, 0, 1) K(0, 0, 2)
            K(1, 0, 1) K(1, 0, 2) K(1, 1, 0) K(1, 1, 1) K(1, 1, 2)
            K(2, 0, 1) K(2, 0, 2) K(2, 1, 0) K(2, 1, 1) K(2, 1, 2)
#undef K
            default: break;
        }
        /* clang-format on */
    }
}

/* ---- option-A shortcut ----------------------------------------------------------------------- */

/* Output size of x[:, :, ::stride, ::stride]. */
static inline int sub_size(int h, int stride) {
    return (h + stride - 1) / stride;
}

void lb_shortcut_forward(int n, int cin, int h, int w, int cout, int stride, const float *x,
                         float *y) {
    assert(stride >= 1 && cout >= cin);
    const int oh = sub_size(h, stride), ow = sub_size(w, stride), before = (cout - cin) / 2;
    const size_t ohw = (size_t)oh * ow, hw = (size_t)h * w;
    const int planes = n * cout;
#pragma omp parallel for schedule(static) if ((size_t)planes * ohw >= LB_MISC_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        int i = p / cout, ci = p % cout - before;
        float *yp = y + (size_t)p * ohw;
        if (ci < 0 || ci >= cin) {
            for (size_t j = 0; j < ohw; j++) yp[j] = 0.0f;
            continue;
        }
        const float *xp = x + ((size_t)i * cin + ci) * hw;
        for (int oy = 0; oy < oh; oy++) {
            const float *row = xp + (size_t)oy * stride * w;
            float *yr = yp + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++) yr[ox] = row[(size_t)ox * stride];
        }
    }
}

void lb_shortcut_backward(int n, int cin, int h, int w, int cout, int stride, const float *dy,
                          float *dx, int dx_acc) {
    assert(stride >= 1 && cout >= cin);
    const int oh = sub_size(h, stride), ow = sub_size(w, stride), before = (cout - cin) / 2;
    const size_t ohw = (size_t)oh * ow, hw = (size_t)h * w;
    const int planes = n * cin;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= LB_MISC_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        int i = p / cin, ci = p % cin;
        float *dxp = dx + (size_t)p * hw;
        const float *dyp = dy + ((size_t)i * cout + ci + before) * ohw;
        if (stride == 1) {
            if (dx_acc)
                for (size_t j = 0; j < hw; j++) dxp[j] += dyp[j];
            else
                for (size_t j = 0; j < hw; j++) dxp[j] = dyp[j];
            continue;
        }
        if (!dx_acc)
            for (size_t j = 0; j < hw; j++) dxp[j] = 0.0f;
        for (int oy = 0; oy < oh; oy++) {
            float *row = dxp + (size_t)oy * stride * w;
            const float *dr = dyp + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++) row[(size_t)ox * stride] += dr[ox];
        }
    }
}

/* ---- dropout --------------------------------------------------------------------------------- */

/* splitmix64's finalizer: applied to a Weyl sequence it is a counter-based generator, so the
 * draw for element i depends on (seed, i) alone, never on the thread count or chunking. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The factor on kept elements; p <= 0 (or NaN) keeps everything, p >= 1 drops everything. */
static float keep_scale(float p) {
    if (!(p > 0.0f)) return 1.0f;
    return p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
}

/* Kept elements are multiplied (not selected) by mask*scale, as PyTorch does: a NaN or Inf that
 * is dropped still yields NaN, and the loops vectorize. */
void lb_dropout_forward(size_t n, float p, const float *x, float *y, uint8_t *mask, lb_rng *rng) {
    if (!(p > 0.0f) || p >= 1.0f) {
        const float v = keep_scale(p);
        const uint8_t keep = v != 0.0f;
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t i = 0; i < n; i++) y[i] = x[i] * v;
        if (mask) memset(mask, keep, n);
        return;
    }
    /* One draw from the caller's stream seeds the whole mask: the caller's rng advances by exactly
     * one step per call. Each 64-bit hash gives two 32-bit uniforms; keep when u >= p*2^32. */
    const uint64_t seed = lb_rng_u64(rng);
    const uint32_t thr = (uint32_t)((double)p * 4294967296.0);
    const float scale = keep_scale(p);
    const size_t blocks = (n + LB_DROPOUT_BLOCK - 1) / LB_DROPOUT_BLOCK;
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
    for (size_t b = 0; b < blocks; b++) {
        uint8_t local[LB_DROPOUT_BLOCK];
        const size_t s = b * LB_DROPOUT_BLOCK,
                     e = n - s < LB_DROPOUT_BLOCK ? n : s + LB_DROPOUT_BLOCK;
        uint8_t *mk = mask ? mask + s : local;
        size_t i = s;
        for (; i + 1 < e; i += 2) {
            uint64_t h = mix64(seed + (i / 2 + 1) * 0x9E3779B97F4A7C15ull);
            mk[i - s] = (uint32_t)h >= thr;
            mk[i + 1 - s] = (uint32_t)(h >> 32) >= thr;
        }
        if (i < e) mk[i - s] = (uint32_t)mix64(seed + (i / 2 + 1) * 0x9E3779B97F4A7C15ull) >= thr;
        for (i = s; i < e; i++) y[i] = x[i] * ((float)mk[i - s] * scale);
    }
}

void lb_dropout_backward(size_t n, float p, const uint8_t *mask, const float *dy, float *dx,
                         int dx_acc) {
    const float scale = keep_scale(p);
    if (dx_acc) {
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t i = 0; i < n; i++) dx[i] += dy[i] * ((float)mask[i] * scale);
    } else {
#pragma omp parallel for schedule(static) if (n >= LB_MISC_PAR_MIN)
        for (size_t i = 0; i < n; i++) dx[i] = dy[i] * ((float)mask[i] * scale);
    }
}
