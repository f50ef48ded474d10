/* Fault maps in memory: creation for a model, drawing stuck-at faults and variability
 * multipliers from a seed, model checks and names. Not the files (fmap_io.c, fmap_text.c) nor
 * what the faults do to levels (fapply.c, freg.c). docs/faults.md has the model. */
#include "fmap_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a of a layer name: the stream of a layer follows its name, not its position, so adding
 * or reordering layers leaves the other layers' faults unchanged. */
uint64_t lb_fmap_name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

lb_status lb_fmap_check_spec(const char *file, const lb_flayer_spec *s, int i, lb_status code) {
    size_t len = strnlen(s->name, LB_FNAME_MAX);
    if (len == 0 || len >= LB_FNAME_MAX)
        return lb_error_set(code, "%s: layer %d: name empty or longer than %d bytes", file, i,
                            LB_FNAME_MAX - 1);
    if (s->bits < 1 || s->bits > LB_FMAX_BITS)
        return lb_error_set(code, "%s: layer '%s': %d bits (1..%d)", file, s->name, s->bits,
                            LB_FMAX_BITS);
    if ((unsigned)s->enc >= LB_FENC_COUNT)
        return lb_error_set(code, "%s: layer '%s': unknown encoding %d", file, s->name,
                            (int)s->enc);
    if (s->enc != LB_FENC_INDEX && s->bits < 2)
        return lb_error_set(code, "%s: layer '%s': %s needs >= 2 bits", file, s->name,
                            s->enc == LB_FENC_TWOS ? "two's complement" : "sign-magnitude");
    if (s->n > LB_FMAX_WEIGHTS)
        return lb_error_set(code, "%s: layer '%s': %llu weights (at most %llu)", file, s->name,
                            (unsigned long long)s->n, (unsigned long long)LB_FMAX_WEIGHTS);
    return LB_OK;
}

lb_status lb_fmap_create(lb_fmap *m, const char *arch, const lb_flayer_spec *specs, int nlayers,
                         int with_var) {
    memset(m, 0, sizeof *m);
    const char *who = "fault map";
    if (!arch || strnlen(arch, LB_FNAME_MAX) >= LB_FNAME_MAX)
        return lb_error_set(LB_EINVAL, "%s: architecture name missing or too long", who);
    if (nlayers < 0 || nlayers > LB_FMAX_LAYERS || (nlayers > 0 && !specs))
        return lb_error_set(LB_EINVAL, "%s: %d layers (0..%d)", who, nlayers, LB_FMAX_LAYERS);
    size_t bytes = 0;
    uint64_t total = 0;
    for (int i = 0; i < nlayers; i++) {
        lb_status st = lb_fmap_check_spec(who, &specs[i], i, LB_EINVAL);
        if (st != LB_OK) return st;
        for (int j = 0; j < i; j++)
            if (strcmp(specs[j].name, specs[i].name) == 0)
                return lb_error_set(LB_EINVAL, "%s: layer '%s' twice", who, specs[i].name);
        size_t n = (size_t)specs[i].n;
        if ((total += n) > LB_FMAX_WEIGHTS)
            return lb_error_set(LB_EINVAL, "%s: more than %llu weights in all", who,
                                (unsigned long long)LB_FMAX_WEIGHTS);
        bytes += (2 * n + 15) & ~(size_t)15;
        if (with_var) bytes += n * (size_t)specs[i].bits * sizeof(float);
    }
    m->layers = calloc(nlayers ? (size_t)nlayers : 1, sizeof *m->layers);
    m->mem = calloc(bytes ? bytes : 1, 1);
    if (!m->layers || !m->mem) {
        lb_fmap_free(m);
        return lb_error_set(LB_ENOMEM, "%s: out of memory (%zu bytes)", who, bytes);
    }
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->nlayers = nlayers;
    /* Floats first (4-aligned from the start of the block), then the byte masks. */
    char *p = m->mem;
    for (int i = 0; with_var && i < nlayers; i++) {
        lb_flayer *L = &m->layers[i];
        size_t nv = (size_t)specs[i].n * (size_t)specs[i].bits;
        L->var = (float *)(void *)p;
        for (size_t k = 0; k < nv; k++) L->var[k] = 1.0f;
        p += nv * sizeof(float);
    }
    for (int i = 0; i < nlayers; i++) {
        lb_flayer *L = &m->layers[i];
        L->spec = specs[i];
        size_t n = (size_t)specs[i].n;
        L->sa0 = (uint8_t *)p;
        L->sa1 = (uint8_t *)p + n;
        p += (2 * n + 15) & ~(size_t)15;
    }
    return LB_OK;
}

void lb_fmap_free(lb_fmap *m) {
    if (!m) return;
    free(m->layers);
    free(m->mem);
    memset(m, 0, sizeof *m);
}

lb_flayer *lb_fmap_find(const lb_fmap *m, const char *name) {
    for (int i = 0; i < m->nlayers; i++)
        if (strcmp(m->layers[i].spec.name, name) == 0) return &m->layers[i];
    return NULL;
}

/* A uniform double in [0, 1) with 53 random bits (a float's 24 bits would make rates below
 * 2^-24 impossible). */
static inline double u53(lb_rng *r) {
    return (double)(lb_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

#define TAG_FAULT 0x46415531ull /* streams of faults and of multipliers never coincide */
#define TAG_VAR 0x56415231ull

lb_status lb_fmap_draw_faults(lb_fmap *m, double rate, double sa1_share, uint64_t seed) {
    if (!(rate >= 0 && rate <= 1) || !(sa1_share >= 0 && sa1_share <= 1))
        return lb_error_set(LB_EINVAL, "fault map: rate %g and SA1 share %g must be in [0, 1]",
                            rate, sa1_share);
    for (int i = 0; i < m->nlayers; i++) {
        lb_flayer *L = &m->layers[i];
        uint64_t h = lb_fmap_name_hash(L->spec.name) ^ TAG_FAULT;
        size_t n = (size_t)L->spec.n, nch = (n + LB_FCHUNK - 1) / LB_FCHUNK;
        int b = L->spec.bits;
#pragma omp parallel for schedule(static)
        for (long c = 0; c < (long)nch; c++) {
            lb_rng r;
            lb_rng_derive(&r, seed, h, (uint64_t)c);
            size_t e = ((size_t)c + 1) * LB_FCHUNK < n ? ((size_t)c + 1) * LB_FCHUNK : n;
            for (size_t w = (size_t)c * LB_FCHUNK; w < e; w++) {
                unsigned s0 = 0, s1 = 0;
                for (int j = 0; j < b; j++) {
                    /* Two draws per cell whatever the outcome: the stream position of a weight
                     * does not depend on the rate, so maps of two rates are nested. */
                    double u = u53(&r), t = u53(&r);
                    if (u < rate) {
                        if (t < sa1_share)
                            s1 |= 1u << j;
                        else
                            s0 |= 1u << j;
                    }
                }
                L->sa0[w] = (uint8_t)s0;
                L->sa1[w] = (uint8_t)s1;
            }
        }
    }
    m->prov.fault_seed = seed;
    m->prov.rate = rate;
    m->prov.sa1_share = sa1_share;
    return LB_OK;
}

static lb_status alloc_var(lb_fmap *m) {
    /* Rebuild the block with multipliers: same layout as lb_fmap_create(.., with_var = 1). */
    lb_fmap t;
    lb_flayer_spec *specs = malloc((m->nlayers ? (size_t)m->nlayers : 1) * sizeof *specs);
    if (!specs) return lb_error_set(LB_ENOMEM, "fault map: out of memory");
    for (int i = 0; i < m->nlayers; i++) specs[i] = m->layers[i].spec;
    lb_status st = lb_fmap_create(&t, m->arch, specs, m->nlayers, 1);
    free(specs);
    if (st != LB_OK) return st;
    for (int i = 0; i < m->nlayers; i++) {
        size_t n = (size_t)m->layers[i].spec.n;
        memcpy(t.layers[i].sa0, m->layers[i].sa0, n);
        memcpy(t.layers[i].sa1, m->layers[i].sa1, n);
    }
    t.prov = m->prov;
    lb_fmap_free(m);
    *m = t;
    return LB_OK;
}

lb_status lb_fmap_draw_var(lb_fmap *m, lb_fvar kind, double ratio, uint64_t seed) {
    if ((unsigned)kind >= LB_FVAR_COUNT || !(ratio >= 0) || !isfinite(ratio))
        return lb_error_set(LB_EINVAL, "fault map: variability %d with sigma/mu %g (>= 0)",
                            (int)kind, ratio);
    if (m->nlayers > 0 && !m->layers[0].var) {
        lb_status st = alloc_var(m);
        if (st != LB_OK) return st;
    }
    double s = sqrt(log1p(ratio * ratio)), mu = -0.5 * s * s;
    for (int i = 0; i < m->nlayers; i++) {
        lb_flayer *L = &m->layers[i];
        uint64_t h = lb_fmap_name_hash(L->spec.name) ^ TAG_VAR;
        size_t n = (size_t)L->spec.n, nch = (n + LB_FCHUNK - 1) / LB_FCHUNK;
        int b = L->spec.bits;
#pragma omp parallel for schedule(static)
        for (long c = 0; c < (long)nch; c++) {
            lb_rng r;
            lb_rng_derive(&r, seed, h, (uint64_t)c);
            size_t e = ((size_t)c + 1) * LB_FCHUNK < n ? ((size_t)c + 1) * LB_FCHUNK : n;
            for (size_t k = (size_t)c * LB_FCHUNK * b; k < e * b; k++) {
                if (kind == LB_FVAR_NONE || ratio == 0) {
                    L->var[k] = 1.0f; /* exactly: no draw can disturb it */
                    continue;
                }
                double z = (double)lb_rng_normal(&r);
                L->var[k] =
                    kind == LB_FVAR_GAUSS ? (float)(1.0 + ratio * z) : (float)exp(mu + s * z);
            }
        }
    }
    m->prov.var_seed = seed;
    m->prov.var_kind = kind;
    m->prov.var_ratio = ratio;
    return LB_OK;
}

void lb_fmap_spare(lb_fmap *m, int first_last) {
    if (!first_last || m->nlayers <= 2) return;
    const int ends[2] = {0, m->nlayers - 1};
    for (int e = 0; e < 2; e++) {
        lb_flayer *L = &m->layers[ends[e]];
        size_t n = (size_t)L->spec.n;
        memset(L->sa0, 0, n);
        memset(L->sa1, 0, n);
        for (size_t k = 0; L->var && k < n * (size_t)L->spec.bits; k++) L->var[k] = 1.0f;
    }
}

lb_status lb_fmap_check_model(const lb_fmap *m, const char *file, const char *arch,
                              const lb_flayer_spec *specs, int nlayers) {
    if (strcmp(m->arch, arch) != 0)
        return lb_error_set(LB_ESHAPE, "%s: fault map is for model '%s', not '%s'", file, m->arch,
                            arch);
    if (m->nlayers != nlayers)
        return lb_error_set(LB_ESHAPE, "%s: fault map has %d coded layers, model '%s' has %d", file,
                            m->nlayers, arch, nlayers);
    for (int i = 0; i < nlayers; i++) {
        const lb_flayer_spec *a = &m->layers[i].spec, *b = &specs[i];
        if (strcmp(a->name, b->name) != 0)
            return lb_error_set(LB_ESHAPE,
                                "%s: coded layer %d is '%s' in the map, '%s' in the model", file, i,
                                a->name, b->name);
        if (a->n != b->n)
            return lb_error_set(LB_ESHAPE,
                                "%s: layer '%s': %llu weights in the map, %llu in the model", file,
                                a->name, (unsigned long long)a->n, (unsigned long long)b->n);
        if (a->bits != b->bits)
            return lb_error_set(LB_ESHAPE, "%s: layer '%s': %d bits in the map, %d in the model",
                                file, a->name, a->bits, b->bits);
        if (a->enc != b->enc && !(a->enc == LB_FENC_TWOS && b->twos_ok) &&
            !(a->enc == LB_FENC_SIGNMAG && b->signmag_ok))
            return lb_error_set(LB_ESHAPE,
                                "%s: layer '%s': encoding %s in the map, %s in the model", file,
                                a->name, lb_fenc_name(a->enc), lb_fenc_name(b->enc));
    }
    return LB_OK;
}

static const char *const g_enc[] = {"index", "twos", "signmag"};
static const char *const g_var[] = {"none", "gauss", "lognormal"};

const char *lb_fenc_name(lb_fenc e) {
    return (unsigned)e < LB_FENC_COUNT ? g_enc[e] : "?";
}

const char *lb_fvar_name(lb_fvar v) {
    return (unsigned)v < LB_FVAR_COUNT ? g_var[v] : "?";
}

lb_status lb_fenc_parse(const char *s, lb_fenc *out) {
    for (int i = 0; i < LB_FENC_COUNT; i++)
        if (s && strcmp(s, g_enc[i]) == 0) return *out = (lb_fenc)i, LB_OK;
    return lb_error_set(LB_EINVAL, "unknown code encoding '%s' (index, twos, signmag)",
                        s ? s : "(null)");
}

lb_status lb_fvar_parse(const char *s, lb_fvar *out) {
    for (int i = 0; i < LB_FVAR_COUNT; i++)
        if (s && strcmp(s, g_var[i]) == 0) return *out = (lb_fvar)i, LB_OK;
    return lb_error_set(LB_EINVAL, "unknown variability '%s' (none, gauss, lognormal)",
                        s ? s : "(null)");
}
