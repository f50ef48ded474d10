/* Runs the integer model image by image: the scalar reference kernels (the definition of every
 * op's result), the run-time choice of a fast implementation, and the per-thread workspaces.
 * The fast conv / requantization kernels live in int_avx2.c and int_vnni.c. */
#include "int_internal.h"
#include "int_snn.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- reference kernels ----------------------------------------------------------------------- */
/* acc[oh][ow] of output channel co: each weight times the input it meets, in-bounds taps only
 * (padding is code 0). One function per input type. */
#define CONV_ACC_FN(NAME, T)                                                                       \
    static void NAME(const lb_int_op *op, const T *x, const int16_t *w, int g, int32_t *acc) {     \
        const int cin_g = op->cin / op->groups, k = op->k, s = op->stride, pad = op->pad;          \
        memset(acc, 0, (size_t)op->oh * op->ow * sizeof *acc);                                     \
        for (int ci = 0; ci < cin_g; ci++) {                                                       \
            const T *xc = x + (size_t)(g * cin_g + ci) * op->ih * op->iw;                          \
            for (int ky = 0; ky < k; ky++)                                                         \
                for (int kx = 0; kx < k; kx++) {                                                   \
                    const int32_t wv = w[(ci * k + ky) * k + kx];                                  \
                    if (wv == 0) continue;                                                         \
                    /* output columns whose input column ox*s - pad + kx is inside */              \
                    int x0 = pad - kx > 0 ? (pad - kx + s - 1) / s : 0;                            \
                    int x1 = (op->iw - 1 + pad - kx) / s + 1;                                      \
                    x1 = op->iw - 1 + pad - kx < 0 ? 0 : x1 > op->ow ? op->ow : x1;                \
                    for (int oy = 0; oy < op->oh; oy++) {                                          \
                        int iy = oy * s - pad + ky;                                                \
                        if (iy < 0 || iy >= op->ih) continue;                                      \
                        const T *xr = xc + (size_t)iy * op->iw - pad + kx;                         \
                        int32_t *ar = acc + (size_t)oy * op->ow;                                   \
                        if (s == 1)                                                                \
                            for (int ox = x0; ox < x1; ox++) ar[ox] += wv * xr[ox];                \
                        else                                                                       \
                            for (int ox = x0; ox < x1; ox++) ar[ox] += wv * xr[ox * s];            \
                    }                                                                              \
                }                                                                                  \
        }                                                                                          \
    }
CONV_ACC_FN(acc_u8, uint8_t)
CONV_ACC_FN(acc_s8, int8_t)
CONV_ACC_FN(acc_s16, int16_t)

static void conv_ref(const lb_int_op *op, lb_int_type xt, const void *x, lb_int_type yt, void *y,
                     unsigned char *scratch) {
    const int K = op->cin / op->groups * op->k * op->k, cout_g = op->cout / op->groups;
    const size_t plane = (size_t)op->oh * op->ow;
    int32_t *acc = (int32_t *)scratch;
    for (int co = 0; co < op->cout; co++) {
        const int16_t *w = op->w + (size_t)co * K;
        int g = co / cout_g;
        if (xt == LB_IT_U8)
            acc_u8(op, x, w, g, acc);
        else if (xt == LB_IT_S8)
            acc_s8(op, x, w, g, acc);
        else
            acc_s16(op, x, w, g, acc);
        for (size_t p = 0; p < plane; p++)
            lb_int_store(y, yt, (size_t)co * plane + p,
                         lb_int_requant(acc[p], &op->rq[co], op->lo, op->hi));
    }
}

static void requant_row_ref(const int32_t *x, size_t n, const lb_int_rq *rq, int32_t lo, int32_t hi,
                            lb_int_type yt, void *y) {
    for (size_t i = 0; i < n; i++) lb_int_store(y, yt, i, lb_int_requant(x[i], rq, lo, hi));
}

const lb_int_kernels lb_int_kernels_ref = {conv_ref, requant_row_ref};
static const lb_int_kernels kernels_avx2 = {lb_int_conv_avx2, lb_int_requant_row_avx2};
static const lb_int_kernels kernels_vnni = {lb_int_conv_vnni, lb_int_requant_row_vnni};

void lb_int_scratch_plan(const lb_int_op *op, lb_int_scratch_layout *L) {
    size_t ph = (size_t)op->ih + 2 * op->pad, pw = (size_t)op->iw + 2 * op->pad;
    size_t xpad = ((size_t)op->cin * ph * pw * 2 + 128 + 63) / 64 * 64;
    L->rows = op->ow >= LB_INT_TILE ? 1 : LB_INT_TILE / op->ow;
    size_t npad = ((size_t)L->rows * op->ow + 31) / 32 * 32;
    size_t per = (size_t)op->kq > 2 * (size_t)op->k2 ? (size_t)op->kq : 2 * (size_t)op->k2;
    L->tile_off = xpad;
    L->koff_off = xpad + (per * npad + 128 + 63) / 64 * 64;
    L->total = L->koff_off + ((size_t)op->kq * sizeof(int32_t) + 63) / 64 * 64;
    size_t plane = (size_t)op->oh * op->ow * sizeof(int32_t) + 64; /* the reference's acc */
    if (L->total < plane) L->total = plane;
}

size_t lb_int_conv_scratch(const lb_int_op *op) {
    lb_int_scratch_layout L;
    lb_int_scratch_plan(op, &L);
    return L.total;
}

/* ---- the other ops (shared by every implementation: cheap next to the convs) ----------------- */
/* Max of the in-bounds codes of each window (padding never wins), one function per type. */
#define MAXPOOL_FN(NAME, T)                                                                        \
    static void NAME(const lb_int_op *op, const T *x, T *y) {                                      \
        for (int c = 0; c < op->cout; c++) {                                                       \
            const T *xc = x + (size_t)c * op->ih * op->iw;                                         \
            T *yc = y + (size_t)c * op->oh * op->ow;                                               \
            if (op->k == 2 && op->stride == 2 && op->pad == 0) {                                   \
                for (int oy = 0; oy < op->oh; oy++) {                                              \
                    const T *r0 = xc + (size_t)(2 * oy) * op->iw, *r1 = r0 + op->iw;               \
                    for (int ox = 0; ox < op->ow; ox++) {                                          \
                        T a = r0[2 * ox] > r0[2 * ox + 1] ? r0[2 * ox] : r0[2 * ox + 1];           \
                        T b = r1[2 * ox] > r1[2 * ox + 1] ? r1[2 * ox] : r1[2 * ox + 1];           \
                        yc[(size_t)oy * op->ow + ox] = a > b ? a : b;                              \
                    }                                                                              \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            for (int oy = 0; oy < op->oh; oy++)                                                    \
                for (int ox = 0; ox < op->ow; ox++) {                                              \
                    int first = 1;                                                                 \
                    T m = 0;                                                                       \
                    for (int ky = 0; ky < op->k; ky++) {                                           \
                        int iy = oy * op->stride - op->pad + ky;                                   \
                        if (iy < 0 || iy >= op->ih) continue;                                      \
                        for (int kx = 0; kx < op->k; kx++) {                                       \
                            int ix = ox * op->stride - op->pad + kx;                               \
                            if (ix < 0 || ix >= op->iw) continue;                                  \
                            T v = xc[(size_t)iy * op->iw + ix];                                    \
                            if (first || v > m) m = v;                                             \
                            first = 0;                                                             \
                        }                                                                          \
                    }                                                                              \
                    yc[(size_t)oy * op->ow + ox] = m;                                              \
                }                                                                                  \
        }                                                                                          \
    }
MAXPOOL_FN(maxpool_u8, uint8_t)
MAXPOOL_FN(maxpool_s8, int8_t)
MAXPOOL_FN(maxpool_s16, int16_t)
MAXPOOL_FN(maxpool_s32, int32_t)

static void maxpool(const lb_int_op *op, lb_int_type t, const void *x, void *y) {
    switch (t) {
    case LB_IT_U8:
        maxpool_u8(op, x, y);
        break;
    case LB_IT_S8:
        maxpool_s8(op, x, y);
        break;
    case LB_IT_S16:
        maxpool_s16(op, x, y);
        break;
    default:
        maxpool_s32(op, x, y);
        break;
    }
}

static void avgpool(const lb_int_op *op, const int32_t *x, int32_t *y) {
    for (int c = 0; c < op->cout; c++) {
        const int32_t *xc = x + (size_t)c * op->ih * op->iw;
        for (int oy = 0; oy < op->oh; oy++)
            for (int ox = 0; ox < op->ow; ox++) {
                int64_t s = 0;
                for (int ky = 0; ky < op->k; ky++) {
                    int iy = oy * op->stride - op->pad + ky;
                    if (iy < 0 || iy >= op->ih) continue;
                    for (int kx = 0; kx < op->k; kx++) {
                        int ix = ox * op->stride - op->pad + kx;
                        if (ix >= 0 && ix < op->iw) s += xc[(size_t)iy * op->iw + ix];
                    }
                }
                y[((size_t)c * op->oh + oy) * op->ow + ox] =
                    (int32_t)lb_int_div_rne(s, (int64_t)op->k * op->k);
            }
    }
}

static void gap(const lb_int_op *op, const int32_t *x, int32_t *y) {
    const size_t hw = (size_t)op->ih * op->iw;
    for (int c = 0; c < op->cout; c++) {
        int64_t s = 0;
        for (size_t j = 0; j < hw; j++) s += x[(size_t)c * hw + j];
        y[c] = (int32_t)lb_int_div_rne(s, (int64_t)hw);
    }
}

static void shortcut(const lb_int_op *op, lb_int_type t, const void *x, void *y) {
    const int before = (op->cout - op->cin) / 2;
    for (int c = 0; c < op->cout; c++) {
        int ci = c - before;
        for (int oy = 0; oy < op->oh; oy++)
            for (int ox = 0; ox < op->ow; ox++) {
                int32_t v = 0;
                if (ci >= 0 && ci < op->cin)
                    v = lb_int_load(x, t,
                                    ((size_t)ci * op->ih + (size_t)oy * op->stride) * op->iw +
                                        (size_t)ox * op->stride);
                lb_int_store(y, t, ((size_t)c * op->oh + oy) * op->ow + ox, v);
            }
    }
}

static void clamp(const lb_int_op *op, lb_int_type t, const void *x, void *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int32_t v = lb_int_load(x, t, i);
        lb_int_store(y, t, i, v < op->lo ? op->lo : v > op->hi ? op->hi : v);
    }
}

/* Each branch requantized to the output scale and saturated to int32, then summed and clamped. */
static void add(const lb_int_kernels *kf, const lb_int_op *op, const int32_t *a, const int32_t *b,
                int32_t *y, size_t n, unsigned char *scratch) {
    const int32_t *br[2] = {a, b};
    int32_t *tmp = (int32_t *)scratch;
    for (int j = 0; j < 2; j++)
        if (!op->rq_id[j]) {
            int32_t *dst = tmp + j * ((n + 15) / 16 * 16);
            kf->requant_row(br[j], n, &op->rq[j], INT32_MIN, INT32_MAX, LB_IT_S32, dst);
            br[j] = dst;
        }
    const int32_t *p = br[0], *q = br[1];
    const int64_t lo = op->lo, hi = op->hi;
    for (size_t i = 0; i < n; i++) {
        int64_t s = (int64_t)p[i] + q[i];
        y[i] = (int32_t)(s < lo ? lo : s > hi ? hi : s);
    }
}

static void run_image(const lb_int_model *m, const lb_int_kernels *kf, const uint8_t *img,
                      unsigned char *arena, unsigned char *scratch, int32_t *logits) {
    for (int i = 0; i < m->nops; i++) {
        const lb_int_op *op = &m->ops[i];
        const lb_int_tensor *to = &m->t[op->out];
        const lb_int_tensor *ti = op->in[0] >= 0 ? &m->t[op->in[0]] : NULL;
        void *y = arena + to->off;
        const void *x = ti ? arena + ti->off : NULL;
        size_t n = lb_int_numel(to);
        switch (op->kind) {
        case LB_IOP_INPUT: {
            size_t hw = (size_t)op->ih * op->iw;
            for (int c = 0; c < op->cin; c++) {
                const int16_t *lut = op->lut + c * 256;
                const uint8_t *px = img + c * hw;
                if (to->type == LB_IT_S16)
                    for (size_t j = 0; j < hw; j++) ((int16_t *)y)[c * hw + j] = lut[px[j]];
                else
                    for (size_t j = 0; j < hw; j++)
                        ((uint8_t *)y)[c * hw + j] = (uint8_t)lut[px[j]];
            }
            break;
        }
        case LB_IOP_CONV:
            /* VNNI multiplies int8 weights: wider codes (learned reg levels) take AVX2's int16 */
            if (op->wbits > 8 && kf == &kernels_vnni)
                kernels_avx2.conv(op, ti->type, x, to->type, y, scratch);
            else
                kf->conv(op, ti->type, x, to->type, y, scratch);
            break;
        case LB_IOP_MAXPOOL:
            maxpool(op, to->type, x, y);
            break;
        case LB_IOP_AVGPOOL:
            avgpool(op, x, y);
            break;
        case LB_IOP_GAP:
            gap(op, x, y);
            break;
        case LB_IOP_ADD:
            add(kf, op, x, (const int32_t *)(arena + m->t[op->in[1]].off), y, n, scratch);
            break;
        case LB_IOP_SHORTCUT:
            shortcut(op, to->type, x, y);
            break;
        case LB_IOP_QUANT:
            kf->requant_row(x, n, op->rq, op->lo, op->hi, to->type, y);
            break;
        case LB_IOP_CLAMP:
            clamp(op, to->type, x, y, n);
            break;
        default:
            break;
        }
    }
    memcpy(logits, arena + m->t[m->logits].off, (size_t)m->classes * sizeof *logits);
}

/* ---- dispatch -------------------------------------------------------------------------------- */
int lb_int_impl_available(lb_int_impl impl) {
    switch (impl) {
    case LB_INT_AUTO:
    case LB_INT_SCALAR:
        return 1;
    case LB_INT_AVX2:
        return __builtin_cpu_supports("avx2");
    case LB_INT_VNNI:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
    default:
        return 0;
    }
}

lb_int_impl lb_int_impl_best(void) {
    if (lb_int_impl_available(LB_INT_VNNI)) return LB_INT_VNNI;
    if (lb_int_impl_available(LB_INT_AVX2)) return LB_INT_AVX2;
    return LB_INT_SCALAR;
}

static const char *const g_impl_names[] = {"auto", "scalar", "avx2", "vnni"};

const char *lb_int_impl_name(lb_int_impl impl) {
    return (unsigned)impl < 4 ? g_impl_names[impl] : "?";
}

lb_status lb_int_impl_parse(const char *s, lb_int_impl *out) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, g_impl_names[i]) == 0) {
            *out = (lb_int_impl)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "unknown integer implementation '%s' (auto, scalar, avx2, vnni)",
                        s);
}

lb_status lb_int_run(lb_int_model *m, const uint8_t *images, int n, int32_t *logits, int32_t *preds,
                     lb_int_impl impl, int nthreads) {
    if (impl == LB_INT_AUTO) impl = lb_int_impl_best();
    if (!lb_int_impl_available(impl))
        return lb_error_set(LB_EINVAL, "integer implementation '%s' is not available on this CPU",
                            lb_int_impl_name(impl));
    const lb_int_kernels *kf = impl == LB_INT_VNNI   ? &kernels_vnni
                               : impl == LB_INT_AVX2 ? &kernels_avx2
                                                     : &lb_int_kernels_ref;
    if (nthreads < 1) nthreads = 1;
    if (n < nthreads) nthreads = n > 0 ? n : 1;
    const size_t per = (m->arena_bytes + m->scratch_bytes + 127) / 64 * 64;
    if (m->ws_threads < nthreads) {
        free(m->ws);
        m->ws = aligned_alloc(64, per * (size_t)nthreads);
        m->ws_threads = m->ws ? nthreads : 0;
        if (!m->ws) return lb_error_set(LB_ENOMEM, "out of memory for integer workspaces");
        memset(m->ws, 0, per * (size_t)nthreads);
    }
    const size_t chw = (size_t)m->in_c * m->in_h * m->in_w;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int i = 0; i < n; i++) {
        unsigned char *arena = m->ws + per * (size_t)omp_get_thread_num();
        unsigned char *scratch = arena + (m->arena_bytes + 63) / 64 * 64;
        int32_t *lg = logits + (size_t)i * m->classes;
        if (m->snn)
            lb_isnn_run_image(m->snn, images + chw * i, lg, arena);
        else
            run_image(m, kf, images + chw * i, arena, scratch, lg);
        if (preds) {
            int best = 0;
            for (int c = 1; c < m->classes; c++)
                if (lg[c] > lg[best]) best = c;
            preds[i] = best;
        }
    }
    return LB_OK;
}
