/* The integer-op ONNX form of lowbit's integer model (docs/onnx.md): uint8 pixels in, the
 * integer model's int32 logits out, every op the integer arithmetic of src/int bit for bit
 * (ConvInteger / MatMulInteger accumulators, requantization in int64 Mul/Add with floor division
 * by Mod and Div and the tie-to-even correction, Clip). Not the float or QDQ forms
 * (onnx_export.c) and not a derivation: it writes an lb_int_model as it is. */
#include "onnx_build.h"
#include "lb_int.h"

#include <stdio.h>
#include <string.h>

/* A node with a fresh output name derived from base; returns that name. */
static const char *nd(ox_b *b, const char *base, const char *op, const char *const *in,
                      Onnx__AttributeProto *const *a) {
    const char *y = ox_b_tmp(b, base, op);
    if (y) ox_b_node(b, op, y, in, y, a);
    return y;
}

static const char *cast(ox_b *b, const char *base, const char *x, int to) {
    Onnx__AttributeProto *a[] = {ox_b_attr_i(b, "to", to), NULL};
    return nd(b, base, "Cast", (const char *[]){x, NULL}, a);
}

static const char *bin(ox_b *b, const char *base, const char *op, const char *x, const char *y) {
    return nd(b, base, op, (const char *[]){x, y, NULL}, NULL);
}

static const char *scalar(ox_b *b, const char *base, int type, double v) {
    const char *nm = ox_b_tmp(b, base, "k");
    if (nm) ox_b_scalar(b, nm, type, v);
    return nm;
}

/* An int64 constant of one value per channel, shaped to broadcast over [N, C, H, W] (rank 4)
 * or [N, C] (rank 2); a scalar when nc is 1. */
static const char *per_ch(ox_b *b, const char *base, const int64_t *v, int nc, int rank) {
    const char *nm = ox_b_tmp(b, base, "c");
    if (!nm) return NULL;
    if (nc == 1) {
        ox_b_init(b, nm, v, OXT_INT64, 0, NULL);
    } else {
        int64_t dims[4] = {1, nc, 1, 1};
        ox_b_init(b, nm, v, OXT_INT64, rank, dims);
    }
    return nm;
}

/* floor(u / D), minus 1 when u is an exact multiple of D and the quotient is odd: round half to
 * even of (u - D/2) / D, i.e. lb_int_rshift_rne (u = t + 2^(s-1), D = 2^s) and lb_int_div_rne
 * (u = 2 sum + n, D = 2n). ONNX's Div truncates toward zero and BitShift is unsigned only, so
 * the floor comes from Mod with fmod 0 (the remainder takes the divisor's sign: 0 <= r < D),
 * after which the division is exact. */
static const char *floor_tie_even(ox_b *b, const char *base, const char *u, const char *D) {
    Onnx__AttributeProto *a[] = {ox_b_attr_i(b, "fmod", 0), NULL};
    const char *r = nd(b, base, "Mod", (const char *[]){u, D, NULL}, a);
    const char *q0 = bin(b, base, "Div", bin(b, base, "Sub", u, r), D);
    const char *zero = scalar(b, base, OXT_INT64, 0), *two = scalar(b, base, OXT_INT64, 2);
    Onnx__AttributeProto *a2[] = {ox_b_attr_i(b, "fmod", 0), NULL};
    const char *odd = nd(b, base, "Mod", (const char *[]){q0, two, NULL}, a2);
    const char *tie = cast(b, base, bin(b, base, "Equal", r, zero), OXT_INT64);
    return bin(b, base, "Sub", q0, bin(b, base, "Mul", tie, odd));
}

/* clamp(rshift_rne(v * m + b, s), lo, hi) of an int64 tensor v, one rq per channel (nc) or one
 * for all; the int64 result. |v m + b + 2^(s-1)| < 2^31 2^31 + 2^60 + 2^61 < 2^63: no overflow. */
static const char *requant(ox_b *b, const char *base, const char *v, const lb_int_rq *rq, int nc,
                           int rank, int64_t lo, int64_t hi) {
    int64_t *M = ox_b_alloc(b, (size_t)nc * sizeof *M),
            *BH = ox_b_alloc(b, (size_t)nc * sizeof *BH);
    int64_t *D = ox_b_alloc(b, (size_t)nc * sizeof *D);
    if (!M || !BH || !D) return NULL;
    for (int c = 0; c < nc; c++) {
        M[c] = rq[c].m;
        BH[c] = rq[c].b + ((int64_t)1 << (rq[c].s - 1));
        D[c] = (int64_t)1 << rq[c].s;
    }
    const char *t = bin(b, base, "Mul", v, per_ch(b, base, M, nc, rank));
    const char *u = bin(b, base, "Add", t, per_ch(b, base, BH, nc, rank));
    const char *q = floor_tie_even(b, base, u, per_ch(b, base, D, nc, rank));
    const char *l = scalar(b, base, OXT_INT64, (double)lo);
    const char *h = scalar(b, base, OXT_INT64, (double)hi);
    return nd(b, base, "Clip", (const char *[]){q, l, h, NULL}, NULL);
}

/* A conv/linear input as ConvInteger / MatMulInteger take it: uint8 with a zero point (signed
 * codes shifted by 128, zero point 128, so padding, which ConvInteger fills with the zero point,
 * is code 0). */
static const char *as_u8(ox_b *b, const char *base, const char *x, int shift) {
    if (shift) x = bin(b, base, "Add", x, scalar(b, base, OXT_INT32, shift));
    return cast(b, base, x, OXT_UINT8);
}

/* The int64 accumulators of conv/linear op over uint8 input xu (zero point xzp) and the uint8
 * weights w (zero point wzp). */
static const char *int_mm(ox_b *b, const lb_int_op *op, const char *xu, const char *xzp,
                          const char *w, const char *wzp) {
    Onnx__AttributeProto *a[5] = {NULL};
    if (op->linear)
        return cast(b, op->name,
                    nd(b, op->name, "MatMulInteger", (const char *[]){xu, w, xzp, wzp, NULL}, NULL),
                    OXT_INT64);
    a[0] = ox_b_attr_rep(b, "kernel_shape", op->k, 2);
    a[1] = ox_b_attr_rep(b, "strides", op->stride, 2);
    a[2] = ox_b_attr_rep(b, "pads", op->pad, 4), a[3] = ox_b_attr_i(b, "group", op->groups);
    return cast(b, op->name,
                nd(b, op->name, "ConvInteger", (const char *[]){xu, w, xzp, wzp, NULL}, a),
                OXT_INT64);
}

/* Conv or linear: accumulators from ConvInteger/MatMulInteger, which take uint8 (and int8
 * only for MatMulInteger in onnxruntime): 8-bit codes as they are (signed ones shifted by 128
 * with zero point 128); the int16 image and the int16 weight codes of learned reg levels are
 * split into a signed high and an unsigned low byte, v = 256 hi + lo, and the partial
 * accumulators combined in int64: acc = sum over the parts of 256^(hi parts) acc(part). Each
 * partial sum is at most 255 * 255 * K in magnitude, exact in int32. Then the per-channel
 * requantization. */
static const char *conv(ox_b *b, const lb_int_model *m, const lb_int_op *op, const char *x,
                        int *rank) {
    const lb_int_tensor *ti = &m->t[op->in[0]];
    const int K = op->cin / op->groups * op->k * op->k;
    if (op->linear && *rank == 4) {
        Onnx__AttributeProto *a[] = {ox_b_attr_i(b, "axis", 1), NULL};
        x = nd(b, op->name, "Flatten", (const char *[]){x, NULL}, a);
    }
    *rank = op->linear ? 2 : 4;
    /* input parts: {uint8 tensor, zero point, factor} */
    const char *xp[2], *xz[2];
    int64_t xf[2];
    int nx = 1;
    if (ti->type == LB_IT_S16) {
        Onnx__AttributeProto *a[] = {ox_b_attr_i(b, "fmod", 0), NULL};
        const char *k256 = scalar(b, op->name, OXT_INT32, 256);
        const char *lo = nd(b, op->name, "Mod", (const char *[]){x, k256, NULL}, a);
        const char *hi = bin(b, op->name, "Div", bin(b, op->name, "Sub", x, lo), k256);
        xp[0] = as_u8(b, op->name, lo, 0), xz[0] = scalar(b, op->name, OXT_UINT8, 0), xf[0] = 1;
        xp[1] = as_u8(b, op->name, hi, 128), xz[1] = scalar(b, op->name, OXT_UINT8, 128);
        xf[1] = 256, nx = 2;
    } else {
        int sh = ti->type == LB_IT_S8 ? 128 : 0;
        xp[0] = as_u8(b, op->name, x, sh), xz[0] = scalar(b, op->name, OXT_UINT8, sh), xf[0] = 1;
    }
    /* weight parts: codes + 128 (zero point 128), or the low byte (zero point 0) and the high
     * byte + 128 of int16 codes; MatMulInteger takes [K][cout] */
    const char *wp[2], *wz[2];
    int64_t wf[2];
    int nw = op->wbits > 8 ? 2 : 1;
    int64_t dl[2] = {K, op->cout}, dc[4] = {op->cout, op->cin / op->groups, op->k, op->k};
    for (int j = 0; j < nw; j++) {
        uint8_t *wu = ox_b_alloc(b, (size_t)op->cout * K);
        if (!wu || !(wp[j] = ox_b_tmp(b, op->name, "wcode"))) return NULL;
        for (int co = 0; co < op->cout; co++)
            for (int k = 0; k < K; k++) {
                int w = op->w[(size_t)co * K + k], lo = ((w % 256) + 256) % 256;
                int v = nw == 1 ? w + 128 : j == 0 ? lo : (w - lo) / 256 + 128;
                wu[op->linear ? (size_t)k * op->cout + co : (size_t)co * K + k] = (uint8_t)v;
            }
        ox_b_init(b, wp[j], wu, OXT_UINT8, op->linear ? 2 : 4, op->linear ? dl : dc);
        wz[j] = scalar(b, op->name, OXT_UINT8, nw == 2 && j == 0 ? 0 : 128);
        wf[j] = nw == 2 && j == 1 ? 256 : 1;
    }
    const char *acc = NULL;
    for (int i = 0; i < nx; i++)
        for (int j = 0; j < nw; j++) {
            const char *p = int_mm(b, op, xp[i], xz[i], wp[j], wz[j]);
            if (xf[i] * wf[j] != 1)
                p = bin(b, op->name, "Mul", p,
                        scalar(b, op->name, OXT_INT64, (double)(xf[i] * wf[j])));
            acc = acc ? bin(b, op->name, "Add", acc, p) : p;
        }
    return requant(b, op->name, acc, op->rq, op->cout, *rank, op->lo, op->hi);
}

/* Round half to even of the int64 sums `s` divided by n (lb_int_div_rne). */
static const char *div_rne(ox_b *b, const char *base, const char *s, int64_t n) {
    const char *u = bin(b, base, "Add", bin(b, base, "Mul", s, scalar(b, base, OXT_INT64, 2)),
                        scalar(b, base, OXT_INT64, (double)n));
    return floor_tie_even(b, base, u, scalar(b, base, OXT_INT64, 2.0 * (double)n));
}

/* Average pool, padding counted: the zero-padded input's k*k strided slices summed in int64. */
static const char *avgpool(ox_b *b, const lb_int_op *op, const char *x64) {
    int64_t pads[8] = {0, 0, op->pad, op->pad, 0, 0, op->pad, op->pad}, ax[2] = {2, 3};
    int64_t st[2] = {op->stride, op->stride};
    const char *an = ox_b_tmp(b, op->name, "axes"), *sn = ox_b_tmp(b, op->name, "steps");
    if (!an || !sn) return NULL;
    ox_b_i64(b, an, ax, 2), ox_b_i64(b, sn, st, 2);
    const char *xp = x64, *sum = NULL;
    if (op->pad) {
        const char *pn = ox_b_tmp(b, op->name, "pads");
        if (pn) ox_b_i64(b, pn, pads, 8);
        xp = bin(b, op->name, "Pad", x64, pn);
    }
    for (int ky = 0; ky < op->k; ky++)
        for (int kx = 0; kx < op->k; kx++) {
            int64_t s0[2] = {ky, kx}, e0[2] = {ky + (int64_t)(op->oh - 1) * op->stride + 1,
                                               kx + (int64_t)(op->ow - 1) * op->stride + 1};
            const char *s = ox_b_tmp(b, op->name, "starts"), *e = ox_b_tmp(b, op->name, "ends");
            if (!s || !e) return NULL;
            ox_b_i64(b, s, s0, 2), ox_b_i64(b, e, e0, 2);
            const char *v =
                nd(b, op->name, "Slice", (const char *[]){xp, s, e, an, sn, NULL}, NULL);
            sum = sum ? bin(b, op->name, "Add", sum, v) : v;
        }
    return div_rne(b, op->name, sum, (int64_t)op->k * op->k);
}

/* One op of the integer model; names[t] is the int32 ONNX tensor of integer tensor t. */
static void emit(ox_b *b, const lb_int_model *m, const lb_int_op *op, const char **names,
                 int *rank) {
    const char *x = op->in[0] >= 0 ? names[op->in[0]] : NULL, *y = NULL;
    const lb_int_tensor *to = &m->t[op->out];
    int r = op->in[0] >= 0 ? rank[op->in[0]] : 4;
    Onnx__AttributeProto *a[5] = {NULL};
    switch (op->kind) {
    case LB_IOP_INPUT: { /* lut[c][pixel]: Gather on c*256 + pixel */
        int64_t *off = ox_b_alloc(b, (size_t)op->cin * sizeof *off);
        int32_t *lut = ox_b_alloc(b, (size_t)op->cin * 256 * sizeof *lut);
        const char *ln = ox_b_tmp(b, "input", "lut");
        if (!off || !lut || !ln) return;
        for (int c = 0; c < op->cin; c++) off[c] = 256 * c;
        for (int j = 0; j < op->cin * 256; j++) lut[j] = op->lut[j];
        int64_t nl = op->cin * 256;
        ox_b_init(b, ln, lut, OXT_INT32, 1, &nl);
        const char *idx = bin(b, "input", "Add", cast(b, "input", "image", OXT_INT64),
                              per_ch(b, "input", off, op->cin, 4));
        y = nd(b, "input", "Gather", (const char *[]){ln, idx, NULL}, NULL);
        break;
    }
    case LB_IOP_CONV:
        y = cast(b, op->name, conv(b, m, op, x, &r), OXT_INT32);
        break;
    case LB_IOP_MAXPOOL: { /* ONNX MaxPool: 8-bit types or float ones (double holds int32) */
        int t = to->type == LB_IT_U8 ? OXT_UINT8 : to->type == LB_IT_S8 ? OXT_INT8 : OXT_DOUBLE;
        a[0] = ox_b_attr_rep(b, "kernel_shape", op->k, 2);
        a[1] = ox_b_attr_rep(b, "strides", op->stride, 2);
        a[2] = ox_b_attr_rep(b, "pads", op->pad, 4);
        y = cast(b, op->name,
                 nd(b, op->name, "MaxPool", (const char *[]){cast(b, op->name, x, t), NULL}, a),
                 OXT_INT32);
        break;
    }
    case LB_IOP_AVGPOOL:
        y = cast(b, op->name, avgpool(b, op, cast(b, op->name, x, OXT_INT64)), OXT_INT32);
        break;
    case LB_IOP_GAP: {
        int64_t ax[2] = {2, 3};
        const char *an = ox_b_tmp(b, op->name, "axes");
        if (!an) return;
        ox_b_i64(b, an, ax, 2);
        a[0] = ox_b_attr_i(b, "keepdims", 1);
        const char *s = nd(b, op->name, "ReduceSum",
                           (const char *[]){cast(b, op->name, x, OXT_INT64), an, NULL}, a);
        y = cast(b, op->name, div_rne(b, op->name, s, (int64_t)op->ih * op->iw), OXT_INT32);
        break;
    }
    case LB_IOP_ADD: { /* branches to the output scale, saturated to int32, summed, clamped */
        const char *v[2];
        for (int j = 0; j < 2; j++) {
            v[j] = cast(b, op->name, names[op->in[j]], OXT_INT64);
            if (!op->rq_id[j])
                v[j] = requant(b, op->name, v[j], &op->rq[j], 1, r, INT32_MIN, INT32_MAX);
        }
        const char *l = scalar(b, op->name, OXT_INT64, op->lo);
        const char *h = scalar(b, op->name, OXT_INT64, op->hi);
        const char *s = bin(b, op->name, "Add", v[0], v[1]);
        y = cast(b, op->name, nd(b, op->name, "Clip", (const char *[]){s, l, h, NULL}, NULL),
                 OXT_INT32);
        break;
    }
    case LB_IOP_SHORTCUT: { /* x[:, :, ::s, ::s], then zero channels before and after */
        int64_t st[2] = {0, 0}, en[2] = {INT64_MAX, INT64_MAX}, ax[2] = {2, 3},
                sp[2] = {op->stride, op->stride};
        int lo = (op->cout - op->cin) / 2;
        int64_t pads[8] = {0, lo, 0, 0, 0, op->cout - op->cin - lo, 0, 0};
        const int64_t *vals[5] = {st, en, ax, sp, pads};
        const char *nm[5];
        for (int k = 0; k < 5; k++) {
            if (!(nm[k] = ox_b_tmp(b, op->name, "sc"))) return;
            ox_b_i64(b, nm[k], vals[k], k == 4 ? 8 : 2);
        }
        const char *s =
            nd(b, op->name, "Slice", (const char *[]){x, nm[0], nm[1], nm[2], nm[3], NULL}, NULL);
        y = bin(b, op->name, "Pad", s, nm[4]);
        break;
    }
    case LB_IOP_QUANT:
        y = cast(
            b, op->name,
            requant(b, op->name, cast(b, op->name, x, OXT_INT64), op->rq, 1, r, op->lo, op->hi),
            OXT_INT32);
        break;
    case LB_IOP_CLAMP: {
        const char *l = scalar(b, op->name, OXT_INT32, op->lo);
        const char *h = scalar(b, op->name, OXT_INT32, op->hi);
        y = nd(b, op->name, "Clip", (const char *[]){x, l, h, NULL}, NULL);
        break;
    }
    default:
        break;
    }
    if (!y) b->oom = 1;
    names[op->out] = y;
    rank[op->out] = r;
}

lb_status lb_onnx_export_int(const lb_int_model *m, const char *path) {
    if (m->snn)
        return lb_error_set(LB_EINVAL,
                            "%s: a spiking network has no ONNX form (time steps, membranes); "
                            "export it as C (lowbit export CKPT -o DIR, docs/snn.md)",
                            path);
    ox_b b;
    memset(&b, 0, sizeof b);
    const char **names = ox_b_alloc(&b, (size_t)m->nt * sizeof *names);
    int *rank = ox_b_alloc(&b, (size_t)m->nt * sizeof *rank);
    for (int i = 0; names && rank && i < m->nops && !b.oom; i++)
        emit(&b, m, &m->ops[i], names, rank);
    const char *lg = names && rank && !b.oom ? names[m->logits] : NULL;
    if (lg && rank[m->logits] == 4) {
        Onnx__AttributeProto *a[] = {ox_b_attr_i(&b, "axis", 1), NULL};
        lg = nd(&b, "logits", "Flatten", (const char *[]){lg, NULL}, a);
    }
    if (lg) ox_b_node(&b, "Identity", "logits", (const char *[]){lg, NULL}, "logits", NULL);
    int64_t di[4] = {0, m->in_c, m->in_h, m->in_w}, dout[2] = {0, m->classes};
    Onnx__ValueInfoProto *vi = ox_b_value(&b, "image", OXT_UINT8, 4, di);
    Onnx__ValueInfoProto *vo = ox_b_value(&b, "logits", OXT_INT32, 2, dout);
    char frac[32];
    snprintf(frac, sizeof frac, "%d", m->logit_frac_bits);
    const char *meta[] = {"lowbit.form", "int", "lowbit.logit_frac_bits", frac};
    if (!lg) b.oom = 1;
    return ox_b_write(&b, path, 13, vi, vo, meta, 2);
}
