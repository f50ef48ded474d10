/* The text form of a fault map (docs/faults.md, "Text form"): what a user writes from the
 * measurements of a chip, converted into a map. Not the binary file (fmap_io.c). Two passes over
 * the text: the layer lines size the map, then the cell lines fill it; every error names the
 * file and the line. */
#include "fmap_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXTOK 8
#define TOKLEN 128

typedef struct line {
    int ntok;
    char tok[MAXTOK][TOKLEN];
} line;

/* Splits one line (up to '#') into tokens; -1 when a token or the token count is too long. */
static int split(const char *p, const char *end, line *l) {
    l->ntok = 0;
    while (p < end && *p != '#') {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
        if (p >= end || *p == '#') break;
        const char *s = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r' && *p != '#') p++;
        size_t n = (size_t)(p - s);
        if (l->ntok == MAXTOK || n >= TOKLEN) return -1;
        memcpy(l->tok[l->ntok], s, n);
        l->tok[l->ntok++][n] = '\0';
    }
    return 0;
}

/* A non-negative decimal integer, digits only (strtoull alone would accept "-1" and " 1"). */
static int parse_u64(const char *s, uint64_t *out) {
    if (!*s || strlen(s) > 19) return 0;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return 0;
    *out = strtoull(s, NULL, 10);
    return 1;
}

typedef struct ctx {
    const char *fn;
    const char *buf;
    size_t n;
} ctx;

/* Calls f on every non-empty line with its number; stops at the first error. */
typedef lb_status (*line_fn)(const ctx *c, int ln, const line *l, void *arg);

static lb_status each_line(const ctx *c, line_fn f, void *arg) {
    const char *p = c->buf, *end = c->buf + c->n;
    line l;
    for (int ln = 1; p < end; ln++) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        if (memchr(p, '\0', (size_t)(e - p)))
            return lb_error_set(LB_EFORMAT, "%s:%d: NUL byte in a text fault map", c->fn, ln);
        if (split(p, e, &l) != 0)
            return lb_error_set(LB_EFORMAT,
                                "%s:%d: token longer than %d bytes or more than %d "
                                "tokens",
                                c->fn, ln, TOKLEN - 1, MAXTOK);
        if (l.ntok > 0) {
            lb_status st = f(c, ln, &l, arg);
            if (st != LB_OK) return st;
        }
        p = e + 1;
    }
    return LB_OK;
}

/* ---- pass 1: header and layers --------------------------------------------------------------- */
typedef struct head {
    int seen_magic, seen_arch, has_var;
    char arch[LB_FNAME_MAX];
    int nl;
    lb_flayer_spec specs[LB_FMAX_LAYERS];
} head;

static lb_status pass1(const ctx *c, int ln, const line *l, void *arg) {
    head *h = arg;
    const char *k = l->tok[0];
    if (!h->seen_magic) {
        if (strcmp(k, "lowbit-faults") != 0 || l->ntok != 2)
            return lb_error_set(LB_EFORMAT,
                                "%s:%d: not a text fault map (first line must be "
                                "'lowbit-faults 1')",
                                c->fn, ln);
        if (strcmp(l->tok[1], "1") != 0)
            return lb_error_set(LB_EFORMAT, "%s:%d: text fault map version %s, this lowbit reads 1",
                                c->fn, ln, l->tok[1]);
        h->seen_magic = 1;
        return LB_OK;
    }
    if (strcmp(k, "arch") == 0) {
        if (l->ntok != 2 || h->seen_arch || strlen(l->tok[1]) >= LB_FNAME_MAX)
            return lb_error_set(LB_EFORMAT, "%s:%d: 'arch <name>' once, name < %d bytes", c->fn, ln,
                                LB_FNAME_MAX);
        memcpy(h->arch, l->tok[1], strlen(l->tok[1]) + 1); /* length checked above */
        h->seen_arch = 1;
        return LB_OK;
    }
    if (strcmp(k, "layer") == 0) {
        uint64_t n, b;
        lb_fenc enc;
        if (l->ntok != 5 || !parse_u64(l->tok[2], &n) || !parse_u64(l->tok[3], &b) ||
            lb_fenc_parse(l->tok[4], &enc) != LB_OK)
            return lb_error_set(LB_EFORMAT,
                                "%s:%d: expected 'layer <name> <weights> <bits> "
                                "index|twos|signmag'",
                                c->fn, ln);
        if (h->nl == LB_FMAX_LAYERS)
            return lb_error_set(LB_EFORMAT, "%s:%d: more than %d layers", c->fn, ln,
                                LB_FMAX_LAYERS);
        if (strlen(l->tok[1]) >= LB_FNAME_MAX)
            return lb_error_set(LB_EFORMAT, "%s:%d: layer name longer than %d bytes", c->fn, ln,
                                LB_FNAME_MAX - 1);
        lb_flayer_spec *s = &h->specs[h->nl];
        memcpy(s->name, l->tok[1], strlen(l->tok[1]) + 1); /* length checked above */
        s->n = n;
        s->bits = b > LB_FMAX_BITS ? LB_FMAX_BITS + 1 : (int)b;
        s->enc = enc;
        lb_status st = lb_fmap_check_spec(c->fn, s, h->nl, LB_EFORMAT);
        if (st != LB_OK) return st;
        for (int j = 0; j < h->nl; j++)
            if (strcmp(h->specs[j].name, s->name) == 0)
                return lb_error_set(LB_EFORMAT, "%s:%d: layer '%s' twice", c->fn, ln, s->name);
        h->nl++;
        return LB_OK;
    }
    if (strcmp(k, "var") == 0) h->has_var = 1;
    if (!h->seen_arch)
        return lb_error_set(LB_EFORMAT, "%s:%d: 'arch <name>' must come before the layers", c->fn,
                            ln);
    if (h->nl == 0)
        return lb_error_set(LB_EFORMAT, "%s:%d: a cell line before any 'layer' line", c->fn, ln);
    return LB_OK;
}

/* ---- pass 2: cells --------------------------------------------------------------------------- */
typedef struct fill {
    lb_fmap *m;
    int cur; /* current layer */
} fill;

static lb_status pass2(const ctx *c, int ln, const line *l, void *arg) {
    fill *f = arg;
    const char *k = l->tok[0];
    if (strcmp(k, "lowbit-faults") == 0 || strcmp(k, "arch") == 0) return LB_OK;
    if (strcmp(k, "layer") == 0) {
        f->cur++;
        return LB_OK;
    }
    lb_flayer *L = &f->m->layers[f->cur];
    int is_var = strcmp(k, "var") == 0, o = is_var;
    uint64_t w, j;
    if (l->ntok != 3 + is_var || !parse_u64(l->tok[o], &w) || !parse_u64(l->tok[o + 1], &j))
        return lb_error_set(LB_EFORMAT,
                            "%s:%d: expected '<weight> <bit> sa0|sa1' or 'var <weight> "
                            "<bit> <multiplier>'",
                            c->fn, ln);
    if (w >= L->spec.n || j >= (uint64_t)L->spec.bits)
        return lb_error_set(LB_EFORMAT,
                            "%s:%d: layer '%s': cell (%llu, %llu) outside %llu "
                            "weights x %d bits",
                            c->fn, ln, L->spec.name, (unsigned long long)w, (unsigned long long)j,
                            (unsigned long long)L->spec.n, L->spec.bits);
    if (is_var) {
        char *end;
        errno = 0;
        double v = strtod(l->tok[3], &end);
        if (*end || end == l->tok[3] || !isfinite(v) || !isfinite((float)v))
            return lb_error_set(LB_EFORMAT, "%s:%d: multiplier '%s' is not a finite number", c->fn,
                                ln, l->tok[3]);
        L->var[w * (uint64_t)L->spec.bits + j] = (float)v;
        return LB_OK;
    }
    uint8_t bit = (uint8_t)(1u << j);
    int one = strcmp(l->tok[2], "sa1") == 0;
    if (!one && strcmp(l->tok[2], "sa0") != 0)
        return lb_error_set(LB_EFORMAT, "%s:%d: fault '%s' is neither sa0 nor sa1", c->fn, ln,
                            l->tok[2]);
    if ((one ? L->sa0[w] : L->sa1[w]) & bit)
        return lb_error_set(LB_EFORMAT,
                            "%s:%d: layer '%s' cell (%llu, %llu) listed as both sa0 "
                            "and sa1",
                            c->fn, ln, L->spec.name, (unsigned long long)w, (unsigned long long)j);
    (one ? L->sa1 : L->sa0)[w] |= bit;
    return LB_OK;
}

lb_status lb_fmap_parse_text(const char *fn, const char *buf, size_t n, lb_fmap *out) {
    memset(out, 0, sizeof *out);
    ctx c = {fn, buf, n};
    head *h = calloc(1, sizeof *h);
    if (!h) return lb_error_set(LB_ENOMEM, "%s: out of memory", fn);
    lb_status st = each_line(&c, pass1, h);
    if (st == LB_OK && !h->seen_magic)
        st = lb_error_set(LB_EFORMAT, "%s: empty text fault map (no 'lowbit-faults 1' line)", fn);
    if (st == LB_OK && !h->seen_arch) st = lb_error_set(LB_EFORMAT, "%s: no 'arch' line", fn);
    if (st == LB_OK) {
        st = lb_fmap_create(out, h->arch, h->specs, h->nl, h->has_var);
        if (st == LB_EINVAL) st = LB_EFORMAT;
    }
    free(h);
    fill f = {out, -1};
    if (st == LB_OK) st = each_line(&c, pass2, &f);
    if (st != LB_OK) lb_fmap_free(out);
    return st;
}

lb_status lb_fmap_read_text(const char *path, lb_fmap *out) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t n;
    lb_status st = lb_fmap_slurp(path, &buf, &n);
    if (st != LB_OK) return st;
    st = lb_fmap_parse_text(path, (const char *)buf, n, out);
    free(buf);
    return st;
}
