/* Tests of the fault module (lb_faults.h): fault application and reachable sets on every small
 * case, nearest reachable codes and levels, variability levels, the "nothing changes" limits,
 * map statistics and determinism, the map file (round trip, every truncation and byte flip,
 * version/magic/model mismatches), the text form, finite-difference checks of the regularizers
 * and the network specs. Not the PyTorch comparison (test_torch_faults.c). */
#include "lb_faults.h"
#include "lb_nn.h"
#include "lb_quant.h"
#include "lb_test.h"

#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---- application, reachability, nearest code ---------------------------------------------- */
static void test_apply_all(void) {
    int bad = 0, badset = 0, badnear = 0, badfast = 0;
    for (int b = 2; b <= 4; b++) {
        unsigned m = (1u << b) - 1;
        for (unsigned s0 = 0; s0 <= m; s0++)
            for (unsigned s1 = 0; s1 <= m; s1++) {
                if (s0 & s1) continue;
                uint8_t set[256];
                int cnt = lb_fault_reachable_set(b, s0, s1, set);
                if (cnt != 1 << (b - __builtin_popcount(s0 | s1))) badset++;
                for (unsigned p = 0; p <= m; p++) {
                    unsigned want = 0; /* cell by cell: stuck cells read their value */
                    for (int j = 0; j < b; j++) {
                        unsigned bit = (s0 >> j) & 1 ? 0 : (s1 >> j) & 1 ? 1 : (p >> j) & 1;
                        want |= bit << j;
                    }
                    unsigned got = lb_fault_apply(p, s0, s1);
                    bad += got != want;
                    /* reachable <=> the chip stores p unchanged */
                    badset += lb_fault_reachable(p, s0, s1) != (got == p) || set[p] != (got == p);
                    for (int e = 0; e < LB_FENC_COUNT; e++) {
                        lb_fenc enc = (lb_fenc)e;
                        /* sign-magnitude's second zero (sign bit alone) is never written: the
                         * code 0 is stored as the all-0 pattern (checked at p = 0) */
                        if (enc == LB_FENC_SIGNMAG && p == 1u << (b - 1)) continue;
                        int code = lb_fault_value(p, b, enc);
                        bad += lb_fault_pattern(code, b, enc) != p;
                        bad += lb_fault_code(code, b, enc, s0, s1) != lb_fault_value(want, b, enc);
                        /* brute force: reachable code of least |distance|, ties to the lower */
                        int best = 0, bd = 1 << 20;
                        for (unsigned q = 0; q <= m; q++) {
                            int v = lb_fault_value(q, b, enc), d = abs(v - code);
                            if (set[q] && (d < bd || (d == bd && v < best))) bd = d, best = v;
                        }
                        int nc = lb_fault_nearest_code(code, b, enc, s0, s1);
                        /* a sign-magnitude 0 is held by either zero pattern */
                        int zero2 = enc == LB_FENC_SIGNMAG && nc == 0 &&
                                    lb_fault_reachable(1u << (b - 1), s0, s1);
                        badnear +=
                            nc != best ||
                            !(lb_fault_reachable(lb_fault_pattern(nc, b, enc), s0, s1) || zero2);
                        badnear += set[p] && nc != code; /* reachable codes stay */
                    }
                    /* the fast path on one weight */
                    lb_flayer L = {.spec = {.bits = b, .enc = LB_FENC_TWOS, .n = 1}};
                    uint8_t a0 = (uint8_t)s0, a1 = (uint8_t)s1, u = (uint8_t)p, uo;
                    int8_t ci = (int8_t)lb_fault_value(p, b, LB_FENC_TWOS), co;
                    L.sa0 = &a0, L.sa1 = &a1;
                    lb_fault_apply_u8(&L, 0, 1, &u, &uo);
                    lb_fault_apply_i8(&L, 0, 1, &ci, &co);
                    badfast += uo != want || co != lb_fault_value(want, b, LB_FENC_TWOS);
                }
            }
    }
    CHECK(bad == 0, "faulty pattern = cell by cell for every 2/3/4-bit pattern and mask (%d)", bad);
    CHECK(badset == 0, "reachable sets: count 2^(b-faulty) and <=> unchanged (%d)", badset);
    CHECK(badnear == 0, "nearest reachable code, index, two's complement, sign-magnitude (%d)",
          badnear);
    CHECK(badfast == 0, "fast path = scalar (%d)", badfast);
    /* hand-made: 3-bit index 5 = 101b, bit 2 stuck at 0, bit 1 stuck at 1 -> 011b = 3 */
    CHECK(lb_fault_code(5, 3, LB_FENC_INDEX, 4, 2) == 3, "5 -> 3");
    /* two's complement 4 bits: -1 = 1111b, sign bit stuck at 0 -> 0111b = 7 */
    CHECK(lb_fault_code(-1, 4, LB_FENC_TWOS, 8, 0) == 7, "-1 -> 7");
    /* reachable with bit 1 stuck at 1 (2 bits): {2, 3}; nearest to 0 is 2, to 1 is 2 */
    CHECK(lb_fault_nearest_code(0, 2, LB_FENC_INDEX, 0, 2) == 2, "nearest 0 -> 2");
    /* 3 bits, bit 0 stuck at 0: {0,2,4,6}; 3 ties between 2 and 4 -> 2 */
    CHECK(lb_fault_nearest_code(3, 3, LB_FENC_INDEX, 1, 0) == 2, "tie to the lower");
    /* sign-magnitude 4 bits: -3 = 1011b; the sign cell stuck at 0 flips it to +3; 5 = 0101b
     * with bit 2 stuck at 0 reads 1; -8 is held as -7 = 1111b; 0 = 0000b, bit 0 stuck at 1
     * reads 1; with the sign cell stuck at 1 the 0 still reaches 1000b = 0 */
    CHECK(lb_fault_code(-3, 4, LB_FENC_SIGNMAG, 8, 0) == 3, "signmag -3 -> 3");
    CHECK(lb_fault_code(5, 4, LB_FENC_SIGNMAG, 4, 0) == 1, "signmag 5 -> 1");
    CHECK(lb_fault_pattern(-8, 4, LB_FENC_SIGNMAG) == 15 &&
              lb_fault_value(15, 4, LB_FENC_SIGNMAG) == -7,
          "signmag -8 held as -7");
    CHECK(lb_fault_pattern(-2, 3, LB_FENC_SIGNMAG) == 6 &&
              lb_fault_value(6, 3, LB_FENC_SIGNMAG) == -2,
          "signmag 3 bits: -2 = 110b");
    CHECK(lb_fault_code(0, 4, LB_FENC_SIGNMAG, 0, 1) == 1, "signmag 0 -> 1");
    CHECK(lb_fault_code(0, 4, LB_FENC_SIGNMAG, 0, 8) == 0 &&
              lb_fault_value(8, 4, LB_FENC_SIGNMAG) == 0,
          "signmag 0, sign stuck at 1 -> 0");
    CHECK(lb_fault_nearest_code(2, 4, LB_FENC_SIGNMAG, 0, 8) == 0, "signmag: nearest to 2 of the "
                                                                   "negative half is 0");
    /* the fast path on sign-magnitude codes: every code of 4 bits, every mask */
    int badsm = 0;
    for (unsigned s0 = 0; s0 < 16; s0++)
        for (unsigned s1 = 0; s1 < 16; s1++)
            for (int c = -8; c <= 7 && !(s0 & s1); c++) {
                lb_flayer L = {.spec = {.bits = 4, .enc = LB_FENC_SIGNMAG, .n = 1}};
                uint8_t a0 = (uint8_t)s0, a1 = (uint8_t)s1;
                int8_t ci = (int8_t)c, co;
                L.sa0 = &a0, L.sa1 = &a1;
                lb_fault_apply_i8(&L, 0, 1, &ci, &co);
                /* cell by cell from the stored pattern */
                unsigned q = c < 0 ? 8u | (unsigned)(c < -7 ? 7 : -c) : (unsigned)c;
                q = (q & ~s0) | s1;
                int want = (q & 8 ? -1 : 1) * (int)(q & 7);
                badsm += co != want;
            }
    CHECK(badsm == 0, "signmag fast path = cell by cell (%d)", badsm);
}

/* ---- levels ---------------------------------------------------------------------------------- */
static void test_levels(void) {
    float R[3] = {1, 2, 1.5f}, v[2] = {2, 0.5f}, a[4];
    lb_fault_levels(R, 2, LB_FENC_INDEX, v, a);
    CHECK(a[0] == -1.5f && a[1] == 0.5f && a[2] == -0.5f && a[3] == 1.5f, "variability levels");
    lb_fault_levels(R, 2, LB_FENC_INDEX, NULL, a);
    CHECK(a[0] == -1.5f && a[1] == -0.5f && a[2] == 0.5f && a[3] == 1.5f, "plain levels");
    /* nearest reachable level: bit 1 stuck at 0 -> {p0 = -1.5, p1 = -0.5} */
    CHECK(lb_fault_nearest_level(1.2f, a, 2, 2, 0) == 1, "clamped to the reachable range");
    CHECK(lb_fault_nearest_level(-1.0f, a, 2, 2, 0) == 0, "tie to the lower level");
    CHECK(lb_fault_nearest_level(-1.0f, a, 2, 0, 0) == 0, "tie to the lower level, healthy");
    CHECK(lb_fault_nearest_level(0.3f, a, 2, 0, 1) == 1, "bit 0 stuck at 1: {-0.5, 1.5}");
    float nan = NAN;
    CHECK(lb_fault_nearest_level(nan, a, 2, 0, 1) == 1, "NaN: the lowest reachable level");
    /* two's complement R: a[p] = s * code(p) */
    float Rt[5], at[16];
    lb_fault_R_twos(0.25f, 4, Rt);
    lb_fault_levels(Rt, 4, LB_FENC_INDEX, NULL, at);
    int bad = 0;
    for (unsigned p = 0; p < 16; p++) bad += at[p] != 0.25f * lb_fault_value(p, 4, LB_FENC_TWOS);
    CHECK(bad == 0, "two's complement levels = s * code");
    /* sign-magnitude R: a[p] = s * code(p), zeros +0; the sign cell's multiplier is no factor */
    float Rs[5], as[16], vs[4] = {1.5f, 0.5f, 2.0f, NAN};
    lb_fault_R_signmag(0.25f, 4, Rs);
    lb_fault_levels(Rs, 4, LB_FENC_SIGNMAG, NULL, as);
    bad = signbit(as[8]) != 0;
    for (unsigned p = 0; p < 16; p++) bad += as[p] != 0.25f * lb_fault_value(p, 4, LB_FENC_SIGNMAG);
    CHECK(bad == 0, "sign-magnitude levels = s * code, +0 for both zeros");
    lb_fault_levels(Rs, 4, LB_FENC_SIGNMAG, vs, as);
    CHECK(as[0] == 0 && as[8] == 0 && !signbit(as[8]) && as[1] == 0.375f && as[9] == -0.375f &&
              as[7] == 0.25f * (1.5f + 1.0f + 8.0f) && as[15] == -as[7] &&
              lb_fault_level_at(Rs, 4, LB_FENC_SIGNMAG, vs, 13) == -0.25f * (1.5f + 8.0f),
          "sign-magnitude variability levels: sign * sum of the magnitude cells (%g %g)",
          (double)as[7], (double)as[15]);
    /* v = 1 gives the reg quantizer's levels bit for bit */
    lb_qcfg cfg = {.kind = LB_Q_REG, .bits = 4, .is_signed = 1, .levels = LB_REG_LEARNED};
    float param[5] = {0.013f, 0.027f, 0.051f, 0.11f, 0.097f}, dparam[5], state[2] = {1, 0.01f};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, 1, 8, 8, param, dparam, state) == LB_OK, "bind");
    memcpy(param, (float[]){0.013f, 0.027f, 0.051f, 0.11f, 0.097f}, sizeof param);
    float ar[16], af[16], ones[4] = {1, 1, 1, 1};
    lb_quant_levels(&q, 0, ar);
    lb_fault_levels(param, 4, LB_FENC_INDEX, ones, af);
    CHECK(memcmp(ar, af, sizeof ar) == 0, "v = 1: reg's levels bit for bit");
}

/* ---- maps: statistics, determinism, limits ----------------------------------------------------
 */
static lb_flayer_spec spec(const char *name, uint64_t n, int bits, lb_fenc enc) {
    lb_flayer_spec s = {.n = n, .bits = bits, .enc = enc};
    snprintf(s.name, sizeof s.name, "%s", name);
    return s;
}

static int maps_equal(const lb_fmap *a, const lb_fmap *b) {
    if (strcmp(a->arch, b->arch) || a->nlayers != b->nlayers) return 0;
    for (int i = 0; i < a->nlayers; i++) {
        const lb_flayer *x = &a->layers[i], *y = &b->layers[i];
        size_t n = (size_t)x->spec.n;
        if (memcmp(&x->spec, &y->spec, sizeof x->spec) || memcmp(x->sa0, y->sa0, n) ||
            memcmp(x->sa1, y->sa1, n) || !x->var != !y->var)
            return 0;
        if (x->var && memcmp(x->var, y->var, n * x->spec.bits * sizeof(float))) return 0;
    }
    return 1;
}

static void test_draw(void) {
    int quick = getenv("LOWBIT_QUICK") != NULL;
    size_t n = quick ? 20000 : 100000;
    lb_flayer_spec sp[2] = {spec("conv1", n, 4, LB_FENC_INDEX), spec("fc", 1000, 3, LB_FENC_TWOS)};
    lb_fmap m, m2;
    CHECK(lb_fmap_create(&m, "cnn", sp, 2, 0) == LB_OK, "create: %s", lb_error_msg());
    double rate = 0.02, share = 0.3;
    CHECK(lb_fmap_draw_faults(&m, rate, share, 7) == LB_OK, "draw");
    double cells = (double)n * 4, f = 0, f1 = 0;
    int badm = 0;
    for (size_t w = 0; w < n; w++) {
        f += __builtin_popcount(m.layers[0].sa0[w] | m.layers[0].sa1[w]);
        f1 += __builtin_popcount(m.layers[0].sa1[w]);
        badm += (m.layers[0].sa0[w] & m.layers[0].sa1[w]) ||
                (m.layers[0].sa0[w] | m.layers[0].sa1[w]) >= 16;
    }
    CHECK(badm == 0, "masks disjoint and within 4 bits (%d)", badm);
    /* binomial: 5 standard deviations (a false alarm about once in 3.5 million runs) */
    double sd = sqrt(cells * rate * (1 - rate)), sd1 = sqrt(f * share * (1 - share));
    CHECK(fabs(f - cells * rate) < 5 * sd, "fault count %g, expected %g +- %g", f, cells * rate,
          5 * sd);
    CHECK(fabs(f1 - f * share) < 5 * sd1, "SA1 count %g of %g, expected %g +- %g", f1, f, f * share,
          5 * sd1);
    /* determinism: same seed and a different thread count give the same map */
    lb_fmap_create(&m2, "cnn", sp, 2, 0);
    int nt = omp_get_max_threads();
    omp_set_num_threads(nt > 1 ? 1 : 2);
    lb_fmap_draw_faults(&m2, rate, share, 7);
    omp_set_num_threads(nt);
    CHECK(maps_equal(&m, &m2), "same seed, other thread count: same map");
    lb_fmap_draw_faults(&m2, rate, share, 8);
    CHECK(!maps_equal(&m, &m2), "another seed: another map");
    lb_fmap_free(&m2);
    /* a layer's faults depend on its name only */
    lb_fmap_create(&m2, "cnn", sp + 1, 1, 0);
    lb_fmap_draw_faults(&m2, rate, share, 7);
    CHECK(memcmp(m2.layers[0].sa0, m.layers[1].sa0, 1000) == 0, "stream of a layer by name");
    lb_fmap_free(&m2);
    /* nested maps: a higher rate keeps every fault of a lower one (same seed) */
    lb_fmap_create(&m2, "cnn", sp, 2, 0);
    lb_fmap_draw_faults(&m2, 0.1, share, 7);
    int nested = 1;
    for (size_t w = 0; w < n; w++)
        nested &= ((m.layers[0].sa0[w] | m.layers[0].sa1[w]) &
                   ~(m2.layers[0].sa0[w] | m2.layers[0].sa1[w])) == 0;
    CHECK(nested, "faults at 2%% are a subset of faults at 10%%");
    /* rate 0 and sigma/mu 0: nothing */
    lb_fmap_draw_faults(&m2, 0.0, 0.5, 3);
    lb_fmap_draw_var(&m2, LB_FVAR_GAUSS, 0.0, 3);
    int any = 0;
    for (size_t w = 0; w < n; w++) any |= m2.layers[0].sa0[w] | m2.layers[0].sa1[w];
    for (size_t k = 0; k < n * 4; k++) any |= m2.layers[0].var[k] != 1.0f;
    CHECK(!any, "rate 0, sigma 0: healthy map, multipliers exactly 1");
    /* variability statistics: mean 1, std/mean = r (both kinds) */
    for (int kind = LB_FVAR_GAUSS; kind <= LB_FVAR_LOGNORMAL; kind++) {
        double r = 0.4, s = 0, s2 = 0;
        lb_fmap_draw_var(&m2, (lb_fvar)kind, r, 11);
        for (size_t k = 0; k < n * 4; k++) s += m2.layers[0].var[k];
        double mean = s / (n * 4.0);
        for (size_t k = 0; k < n * 4; k++)
            s2 += (m2.layers[0].var[k] - mean) * (m2.layers[0].var[k] - mean);
        double sdv = sqrt(s2 / (n * 4.0 - 1));
        CHECK(fabs(mean - 1) < 5 * r / sqrt(n * 4.0), "%s mean %g", lb_fvar_name(kind), mean);
        CHECK(fabs(sdv / mean - r) < 0.03 * r, "%s std/mean %g vs %g", lb_fvar_name(kind),
              sdv / mean, r);
    }
    CHECK(lb_fmap_draw_faults(&m2, 1.5, 0, 1) == LB_EINVAL, "rate > 1 refused");
    CHECK(lb_fmap_draw_var(&m2, LB_FVAR_GAUSS, -1, 1) == LB_EINVAL, "negative sigma refused");
    lb_fmap_free(&m2);
    lb_fmap_free(&m);
    lb_flayer_spec dup[2] = {spec("a", 4, 2, 0), spec("a", 4, 2, 0)};
    CHECK(lb_fmap_create(&m, "x", dup, 2, 0) == LB_EINVAL && strstr(lb_error_msg(), "'a'"),
          "duplicate layer refused: %s", lb_error_msg());
    lb_fmap_free(&m);
    dup[1] = spec("b", 4, 9, 0);
    CHECK(lb_fmap_create(&m, "x", dup, 2, 0) == LB_EINVAL && strstr(lb_error_msg(), "'b'"),
          "9 bits refused: %s", lb_error_msg());
    lb_fmap_free(&m);
}

/* Sparing the first and last layers heals exactly them and leaves the body's draw alone; a net
 * of two coded layers has no body, so nothing is spared. */
static void test_spare(void) {
    lb_flayer_spec sp[3] = {spec("conv1", 300, 8, LB_FENC_TWOS),
                            spec("conv2", 2000, 4, LB_FENC_INDEX),
                            spec("fc", 500, 8, LB_FENC_TWOS)};
    lb_fmap m, ref;
    CHECK(lb_fmap_create(&m, "cnn", sp, 3, 0) == LB_OK &&
              lb_fmap_create(&ref, "cnn", sp, 3, 0) == LB_OK,
          "create: %s", lb_error_msg());
    lb_fmap_draw_faults(&m, 0.3, 0.5, 4);
    lb_fmap_draw_var(&m, LB_FVAR_GAUSS, 0.3, 4);
    lb_fmap_draw_faults(&ref, 0.3, 0.5, 4);
    lb_fmap_draw_var(&ref, LB_FVAR_GAUSS, 0.3, 4);
    lb_fmap_spare(&m, 0);
    CHECK(maps_equal(&m, &ref), "spare(0) changes nothing");
    lb_fmap_spare(&m, 1);
    int bad = 0;
    for (int l = 0; l < 3; l += 2) {
        const lb_flayer *L = &m.layers[l];
        for (uint64_t w = 0; w < L->spec.n; w++) bad += (L->sa0[w] | L->sa1[w]) != 0;
        for (uint64_t k = 0; k < L->spec.n * 8; k++) bad += L->var[k] != 1.0f;
    }
    CHECK(bad == 0, "first and last layers healthy after spare (%d faulty cells)", bad);
    const lb_flayer *a = &m.layers[1], *b = &ref.layers[1];
    CHECK(!memcmp(a->sa0, b->sa0, 2000) && !memcmp(a->sa1, b->sa1, 2000) &&
              !memcmp(a->var, b->var, 2000 * 4 * sizeof(float)),
          "the body's faults and multipliers are the drawn ones");
    int any = 0;
    for (int w = 0; w < 2000; w++) any |= a->sa0[w] | a->sa1[w];
    CHECK(any, "the body still has faults at 30%%");
    lb_fmap_free(&m);
    lb_fmap_free(&ref);
    lb_fmap_create(&m, "two", sp, 2, 0);
    lb_fmap_draw_faults(&m, 0.3, 0, 4);
    any = 0;
    lb_fmap_spare(&m, 1);
    for (int w = 0; w < 300; w++) any |= m.layers[0].sa0[w];
    CHECK(any, "two coded layers: nothing spared");
    lb_fmap_free(&m);
}

/* ---- files --------------------------------------------------------------------------------- */
static void small_map(lb_fmap *m, int with_var) {
    lb_flayer_spec sp[2] = {spec("c1", 5, 3, LB_FENC_INDEX), spec("fc", 3, 2, LB_FENC_TWOS)};
    lb_fmap_create(m, "tiny", sp, 2, with_var);
    lb_fmap_draw_faults(m, 0.3, 0.5, 5);
    if (with_var) lb_fmap_draw_var(m, LB_FVAR_LOGNORMAL, 0.1, 6);
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *b = malloc(1 << 16);
    *n = fread(b, 1, 1 << 16, f);
    fclose(f);
    return b;
}

static void test_file(void) {
    char dir[] = "/tmp/lb_faults_XXXXXX", path[256], path2[256];
    CHECK(mkdtemp(dir) != NULL, "tmpdir");
    snprintf(path, sizeof path, "%s/chip.lbf", dir);
    snprintf(path2, sizeof path2, "%s/bad.lbf", dir);
    for (int wv = 0; wv < 2; wv++) {
        lb_fmap m, r;
        small_map(&m, wv);
        CHECK(lb_fmap_write(path, &m) == LB_OK, "write: %s", lb_error_msg());
        CHECK(lb_fmap_read(path, &r) == LB_OK, "read: %s", lb_error_msg());
        CHECK(maps_equal(&m, &r), "round trip (var %d)", wv);
        CHECK(r.prov.rate == 0.3 && r.prov.sa1_share == 0.5 && r.prov.fault_seed == 5,
              "provenance kept");
        lb_fmap_free(&r);
        size_t n = 0;
        unsigned char *b = slurp(path, &n);
        CHECK(b != NULL && n > 32, "file written (%zu bytes)", n);
        if (!b) return;
        /* every truncation */
        int trunc_ok = 1, flip_ok = 1;
        for (size_t k = 0; k < n; k++) {
            lb_status st = lb_fmap_parse("t.lbf", b, k, &r);
            trunc_ok &= st == LB_EFORMAT && r.layers == NULL && strstr(lb_error_msg(), "t.lbf");
            lb_fmap_free(&r);
        }
        CHECK(trunc_ok, "every truncation of a %zu-byte file refused, naming it", n);
        /* every byte flipped (each of 3 patterns): header checks or the CRC catch it */
        for (size_t k = 0; k < n; k++)
            for (int x = 0; x < 3; x++) {
                unsigned char save = b[k];
                b[k] ^= (unsigned char[]){0x01, 0x80, 0xff}[x];
                lb_status st = lb_fmap_parse("f.lbf", b, n, &r);
                flip_ok &= st == LB_EFORMAT;
                lb_fmap_free(&r);
                b[k] = save;
            }
        CHECK(flip_ok, "every flipped byte refused");
        b[8] = 2;
        FILE *f = fopen(path2, "wb");
        fwrite(b, 1, n, f), fclose(f);
        CHECK(lb_fmap_read(path2, &r) == LB_EFORMAT && strstr(lb_error_msg(), "version 2") &&
                  strstr(lb_error_msg(), path2),
              "version: %s", lb_error_msg());
        b[8] = 1, b[0] = 'X';
        CHECK(lb_fmap_parse("m.lbf", b, n, &r) == LB_EFORMAT && strstr(lb_error_msg(), "magic"),
              "magic: %s", lb_error_msg());
        free(b);
        /* mismatching model */
        lb_flayer_spec ok[2] = {spec("c1", 5, 3, LB_FENC_INDEX), spec("fc", 3, 2, LB_FENC_TWOS)};
        lb_flayer_spec sp[2];
        CHECK(lb_fmap_read_for(path, "tiny", ok, 2, &r) == LB_OK, "fits: %s", lb_error_msg());
        lb_fmap_free(&r);
        CHECK(lb_fmap_read_for(path, "resnet20", ok, 2, &r) == LB_ESHAPE &&
                  strstr(lb_error_msg(), "resnet20") && strstr(lb_error_msg(), path),
              "arch: %s", lb_error_msg());
        CHECK(lb_fmap_read_for(path, "tiny", ok, 1, &r) == LB_ESHAPE, "layer count");
        const char *what[4] = {"'c2'", "weights", "bits", "encoding"};
        for (int t = 0; t < 4; t++) {
            memcpy(sp, ok, sizeof sp);
            if (t == 0) snprintf(sp[1].name, sizeof sp[1].name, "c2");
            if (t == 1) sp[1].n = 4;
            if (t == 2) sp[1].bits = 3;
            if (t == 3) sp[1].enc = LB_FENC_INDEX;
            CHECK(lb_fmap_read_for(path, "tiny", sp, 2, &r) == LB_ESHAPE &&
                      strstr(lb_error_msg(), what[t]) && r.layers == NULL,
                  "mismatch %s: %s", what[t], lb_error_msg());
        }
        lb_fmap_free(&m);
    }
    lb_fmap r;
    CHECK(lb_fmap_read("/nonexistent/x.lbf", &r) == LB_EIO, "missing file: LB_EIO");
    CHECK(lb_fmap_write("/nonexistent/x.lbf", &r) == LB_EIO, "unwritable: LB_EIO");
    remove(path), remove(path2), rmdir(dir);
}

static void test_text(void) {
    const char *t = "# measured on chip 3\nlowbit-faults 1\narch tiny\n"
                    "layer c1 5 3 index\n0 2 sa0\n4 0 sa1  # a comment\n"
                    "layer fc 3 2 twos\n2 1 sa0\nvar 1 0 1.25\n";
    lb_fmap m;
    CHECK(lb_fmap_parse_text("t.txt", t, strlen(t), &m) == LB_OK, "text: %s", lb_error_msg());
    CHECK(m.nlayers == 2 && !strcmp(m.arch, "tiny") && m.layers[0].sa0[0] == 4 &&
              m.layers[0].sa1[4] == 1 && m.layers[1].sa0[2] == 2 && m.layers[1].var[2] == 1.25f &&
              m.layers[1].var[3] == 1.0f && m.layers[1].spec.enc == LB_FENC_TWOS,
          "text content");
    lb_fmap_free(&m);
    const char *bad[][2] = {
        {"lowbit-faults 2\n", "version"},
        {"lowbit-faults 1\narch a\nlayer c 4 2 index\n4 0 sa0\n", ":4:"},
        {"lowbit-faults 1\narch a\nlayer c 4 2 index\n0 2 sa0\n", "outside"},
        {"lowbit-faults 1\narch a\nlayer c 4 2 index\n0 1 sa0\n0 1 sa1\n", "both"},
        {"lowbit-faults 1\narch a\nlayer c 4 2 grey\n", ":3:"},
        {"lowbit-faults 1\narch a\nlayer c 4 2 index\nvar 0 0 nan\n", "finite"},
        {"lowbit-faults 1\narch a\nlayer c -4 2 index\n", ":3:"},
        {"lowbit-faults 1\n0 0 sa0\n", "arch"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(lb_fmap_parse_text("b.txt", bad[i][0], strlen(bad[i][0]), &m) == LB_EFORMAT &&
                  strstr(lb_error_msg(), bad[i][1]) && strstr(lb_error_msg(), "b.txt"),
              "bad text %zu: %s", i, lb_error_msg());
}

/* ---- regularizers -----------------------------------------------------------------------------
 */
static void fill_w(float *w, size_t n, uint64_t seed, float scale) {
    lb_rng r;
    lb_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) w[i] = scale * lb_rng_normal(&r);
}

/* Central differences with the step actually taken (the float rounding of w +- h). */
enum { RN = 48, RB = 3 };

/* The regularizers' gradients by central differences and the fast MSE path against the
 * reference, on one map and one layer encoding (R in that encoding). */
static void reg_checks(const lb_fmap *m, lb_fenc enc, const float *R0, const float *w) {
    enum { N = RN, B = RB };
    float R[B + 1], dw[N];
    memcpy(R, R0, sizeof R);
    const char *names[3] = {enc == LB_FENC_SIGNMAG ? "signmag fault-aware" : "fault-aware",
                            enc == LB_FENC_SIGNMAG ? "signmag variability-aware"
                                                   : "variability-aware",
                            enc == LB_FENC_SIGNMAG ? "signmag both" : "both"};
    const char *qname = enc == LB_FENC_SIGNMAG ? "signmag qfalt" : "qfalt";
    for (int kind = 0; kind < 4; kind++) { /* 0..2 mse forms, 3 qfalt (both) */
        lb_fslice mk = lb_fslice_of(&m->layers[0], 0);
        mk.enc = enc;
        if (kind == 0) mk.var = NULL;
        if (kind == 1) mk.sa0 = mk.sa1 = NULL;
        double lam = 3.0, sig = 0.1, dR[B + 1] = {0};
        memset(dw, 0, sizeof dw);
#define LOSS(ww, RR)                                                                               \
    (kind < 3 ? lb_freg_mse(ww, N, N, RR, B, mk, lam, NULL, NULL)                                  \
              : lb_freg_qfalt(ww, N, RR, B, mk, lam, sig, NULL, NULL))
        double L0 = kind < 3 ? lb_freg_mse(w, N, N, R, B, mk, lam, dw, dR)
                             : lb_freg_qfalt(w, N, R, B, mk, lam, sig, dw, dR);
        if (kind < 3) {
            float dr[N] = {0};
            double dRr[B + 1] = {0};
            double Lr = lb_freg_mse_ref(w, N, N, R, B, mk, lam, dr, dRr);
            CHECK(Lr == L0 && !memcmp(dr, dw, sizeof dw), "%s: fast = reference bit for bit",
                  names[kind]);
        }
        int badw = 0;
        double worst = 0;
        for (int i = 0; i < N; i++) {
            float wp[N], wm[N];
            memcpy(wp, w, sizeof wp), memcpy(wm, w, sizeof wm);
            float h = 1e-3f;
            wp[i] += h, wm[i] -= h;
            double hh = ((double)wp[i] - (double)wm[i]) / 2;
            double fd = (LOSS(wp, R) - LOSS(wm, R)) / (2 * hh);
            double err = fabs(fd - dw[i]), tol = 2e-3 * fabs(fd) + 1e-4;
            /* a nearest-level switch inside [w-h, w+h] makes the MSE form's FD meaningless */
            if (kind < 3 && fabs(fd - dw[i]) > tol) {
                float a[8];
                lb_fault_levels(R, B, enc, mk.var ? mk.var + i * B : NULL, a);
                unsigned s0 = mk.sa0 ? mk.sa0[i] : 0, s1 = mk.sa1 ? mk.sa1[i] : 0;
                if (lb_fault_nearest_level(wp[i], a, B, s0, s1) !=
                    lb_fault_nearest_level(wm[i], a, B, s0, s1))
                    continue;
            }
            badw += err > tol;
            worst = err > worst ? err : worst;
        }
        CHECK(badw == 0, "%s: dL/dw by central differences (worst %g)",
              kind < 3 ? names[kind] : qname, worst);
        for (int j = 0; j <= B; j++) {
            float Rp[B + 1], Rm[B + 1];
            memcpy(Rp, R, sizeof Rp), memcpy(Rm, R, sizeof Rm);
            Rp[j] += 1e-4f, Rm[j] -= 1e-4f;
            double fd = (LOSS(w, Rp) - LOSS(w, Rm)) / ((double)Rp[j] - (double)Rm[j]);
            CHECK_NEAR(dR[j], fd, 1e-3, 2e-3, kind < 3 ? names[kind] : qname);
        }
        (void)L0;
#undef LOSS
    }
}

static void test_reg(void) {
    enum { N = RN, B = RB };
    lb_flayer_spec sp = spec("c", N, B, LB_FENC_INDEX);
    lb_fmap m;
    lb_fmap_create(&m, "x", &sp, 1, 1);
    lb_fmap_draw_faults(&m, 0.25, 0.4, 21);
    lb_fmap_draw_var(&m, LB_FVAR_LOGNORMAL, 0.2, 22);
    float w[N], R[B + 1] = {0.1f, 0.2f, 0.4f, 0.35f};
    fill_w(w, N, 3, 0.3f);
    reg_checks(&m, LB_FENC_INDEX, R, w);
    /* sign-magnitude: the sign cell's R is in no level (its dR is 0), an offset still counts */
    float Rs[B + 1] = {0.1f, 0.2f, 0.0f, 0.02f};
    reg_checks(&m, LB_FENC_SIGNMAG, Rs, w);
    /* limits: a healthy map and unit multipliers change nothing, and the fault-aware MSE of a
     * healthy map is the reg quantizer's regularizer bit for bit (learned levels, same R). */
    lb_fmap_draw_faults(&m, 0, 0, 1);
    lb_fmap_draw_var(&m, LB_FVAR_GAUSS, 0, 1);
    float d1[N] = {0}, d2[N] = {0}, d3[N] = {0};
    double l1 = lb_freg_mse(w, N, N, R, B, lb_fslice_of(&m.layers[0], 0), 2.0, d1, NULL);
    double l2 = lb_freg_mse(w, N, N, R, B, lb_fslice_of(NULL, 0), 2.0, d2, NULL);
    CHECK(l1 == l2 && !memcmp(d1, d2, sizeof d1), "rate 0 + sigma 0 = no map, bit for bit");
    lb_qcfg cfg = {.kind = LB_Q_REG, .bits = B, .is_signed = 1, .levels = LB_REG_LEARNED};
    float par[B + 1], dpar[B + 1] = {0}, st[2] = {1, 0.1f};
    lb_quant q;
    lb_quant_bind(&q, &cfg, 1, N, N, par, dpar, st);
    memcpy(par, R, sizeof par);
    st[0] = 1, q.reg_weight = 2.0f;
    float l3 = lb_quant_reg_ref(&q, 1, w, d3);
    CHECK(l3 == (float)l2 && !memcmp(d2, d3, sizeof d2), "= lb_quant_reg_ref: %g vs %g", l3, l2);
    lb_fmap_free(&m);
}

static void test_net(void) {
    lb_net *n = lb_net_new(1, 4, 4);
    int c = lb_net_conv(n, "c1", 0, 2, 3, 1, 1, 1, 0);
    int r = lb_net_act(n, LB_OP_RELU, c);
    int f = lb_net_act(n, LB_OP_FLATTEN, r);
    int l = lb_net_linear(n, "fc", f, 3, 1);
    lb_qcfg lsq = {.kind = LB_Q_LSQ, .bits = 4, .is_signed = 1}, none = {0};
    lb_qcfg reg = {.kind = LB_Q_REG, .bits = 3, .is_signed = 1};
    lb_net_set_quant(n, c, &lsq, &none);
    lb_net_set_quant(n, l, &reg, &none);
    CHECK(lb_net_plan(n, 2, 1) == LB_OK, "plan: %s", lb_error_msg());
    lb_flayer_spec sp[4];
    int cnt = 0;
    CHECK(lb_fmap_specs_of_net(n, sp, 4, &cnt) == LB_OK && cnt == 2, "two coded tensors (%d)", cnt);
    CHECK(!strcmp(sp[0].name, "c1") && sp[0].n == 18 && sp[0].bits == 4 &&
              sp[0].enc == LB_FENC_TWOS,
          "conv: LSQ, two's complement");
    CHECK(!strcmp(sp[1].name, "fc") && sp[1].n == 96 && sp[1].bits == 3 &&
              sp[1].enc == LB_FENC_INDEX,
          "linear: reg, index (%llu)", (unsigned long long)sp[1].n);
    lb_net_free(n);
}

int main(void) {
    test_apply_all();
    test_levels();
    test_draw();
    test_spare();
    test_file();
    test_text();
    test_reg();
    test_net();
    TEST_MAIN_END("test_faults");
}
