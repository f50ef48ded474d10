/* The binary fault-map file (docs/faults.md, "File format"): serialization, the validating
 * reader and the atomic writer (temporary file, fsync, rename, fsync of the directory, as
 * src/ckpt/st_write.c). Not the text form (fmap_text.c) nor drawing maps (fmap.c). Every field is
 * little-endian and read byte by byte, so the reader never casts into the buffer. */
#include "fmap_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char g_magic[8] = {'L', 'B', 'F', 'A', 'U', 'L', 'T', 'S'};
#define HDR 32
#define FLAG_VAR 1u

/* ---- little-endian helpers ----------------------------------------------------------------- */
static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_f64(unsigned char *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_le(p, u, 8);
}

static double get_f64(const unsigned char *p) {
    uint64_t u = get_le(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static uint32_t crc_of(const unsigned char *p, size_t n) {
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* zlib takes uInt lengths */
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

static size_t packed_bytes(const lb_flayer_spec *s) {
    return ((size_t)s->n * (size_t)s->bits + 7) / 8;
}

/* ---- writing --------------------------------------------------------------------------------- */
static size_t payload_size(const lb_fmap *m, int has_var) {
    size_t p = 2 + strlen(m->arch) + 4 + 48;
    for (int i = 0; i < m->nlayers; i++) {
        const lb_flayer_spec *s = &m->layers[i].spec;
        p += 2 + strlen(s->name) + 12 + 2 * packed_bytes(s);
        if (has_var) p += (size_t)s->n * (size_t)s->bits * 4;
    }
    return p;
}

static void pack(const uint8_t *mask, const lb_flayer_spec *s, unsigned char *out) {
    size_t nb = packed_bytes(s);
    memset(out, 0, nb);
    size_t bit = 0;
    for (size_t w = 0; w < (size_t)s->n; w++)
        for (int j = 0; j < s->bits; j++, bit++)
            if ((mask[w] >> j) & 1) out[bit >> 3] |= (unsigned char)(1u << (bit & 7));
}

static unsigned char *serialize(const lb_fmap *m, size_t *len) {
    int has_var = m->nlayers > 0 && m->layers[0].var != NULL;
    size_t P = payload_size(m, has_var);
    unsigned char *buf = malloc(HDR + P), *p = buf + HDR;
    if (!buf) return NULL;
    size_t al = strlen(m->arch);
    put_le(p, al, 2), memcpy(p + 2, m->arch, al), p += 2 + al;
    put_le(p, (uint64_t)m->nlayers, 4), p += 4;
    put_le(p, m->prov.fault_seed, 8), put_le(p + 8, m->prov.var_seed, 8);
    put_f64(p + 16, m->prov.rate), put_f64(p + 24, m->prov.sa1_share);
    put_f64(p + 32, m->prov.var_ratio), put_le(p + 40, (uint64_t)m->prov.var_kind, 4);
    put_le(p + 44, 0, 4), p += 48;
    for (int i = 0; i < m->nlayers; i++) {
        const lb_flayer_spec *s = &m->layers[i].spec;
        size_t nl = strlen(s->name);
        put_le(p, nl, 2), memcpy(p + 2, s->name, nl), p += 2 + nl;
        put_le(p, s->n, 8), p[8] = (unsigned char)s->bits, p[9] = (unsigned char)s->enc;
        put_le(p + 10, 0, 2), p += 12;
    }
    for (int i = 0; i < m->nlayers; i++) {
        const lb_flayer *L = &m->layers[i];
        size_t nb = packed_bytes(&L->spec);
        pack(L->sa0, &L->spec, p), p += nb;
        pack(L->sa1, &L->spec, p), p += nb;
        if (has_var) {
            size_t nv = (size_t)L->spec.n * (size_t)L->spec.bits;
            for (size_t k = 0; k < nv; k++) {
                uint32_t u;
                memcpy(&u, &L->var[k], 4);
                put_le(p, u, 4), p += 4;
            }
        }
    }
    memcpy(buf, g_magic, 8);
    put_le(buf + 8, LB_FMAP_VERSION, 4);
    put_le(buf + 12, has_var ? FLAG_VAR : 0, 4);
    put_le(buf + 16, P, 8);
    put_le(buf + 24, crc_of(buf + HDR, P), 4);
    put_le(buf + 28, 0, 4);
    *len = HDR + P;
    return buf;
}

/* fsync of the directory holding `path` so the rename survives a crash (st_write.c's rule:
 * filesystems that cannot sync directories are accepted). */
static int sync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd), err = errno;
    close(fd);
    errno = err;
    return rc != 0 && (err == EINVAL || err == ENOTSUP) ? 0 : rc;
}

lb_status lb_fmap_write(const char *path, const lb_fmap *m) {
    if (!path || !*path) return lb_error_set(LB_EINVAL, "lb_fmap_write: empty path");
    for (int i = 0; i < m->nlayers; i++) {
        lb_status st = lb_fmap_check_spec(path, &m->layers[i].spec, i, LB_EINVAL);
        if (st != LB_OK) return st;
        for (size_t w = 0; w < (size_t)m->layers[i].spec.n; w++)
            if (m->layers[i].sa0[w] & m->layers[i].sa1[w])
                return lb_error_set(LB_EINVAL, "%s: layer '%s' weight %zu: a cell stuck at 0 and 1",
                                    path, m->layers[i].spec.name, w);
    }
    size_t len;
    unsigned char *buf = serialize(m, &len);
    if (!buf) return lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    const char *what = NULL;
    int created = 0, err = 0;
    FILE *fp = fopen(tmp, "wbx"); /* never truncate a file someone else owns under that name */
    if (!fp) {
        err = errno, what = "cannot create temporary file";
        goto fail;
    }
    created = 1;
    errno = 0;
    if (fwrite(buf, 1, len, fp) != len || fflush(fp) != 0) {
        err = errno, what = "cannot write";
        goto fail;
    }
    if (fsync(fileno(fp)) != 0) {
        err = errno, what = "cannot sync";
        goto fail;
    }
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) {
        err = errno, what = "cannot close";
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        err = errno, what = "cannot rename the temporary file over it";
        goto fail;
    }
    created = 0;
    if (sync_dir(path) != 0) {
        err = errno, what = "written, but cannot sync its directory";
        goto fail;
    }
    free(buf);
    return LB_OK;
fail:
    if (fp) fclose(fp);
    if (created) remove(tmp);
    free(buf);
    return lb_error_set(LB_EIO, "%s: %s: %s", path, what, err ? strerror(err) : "short write");
}

/* ---- reading --------------------------------------------------------------------------------- */
typedef struct cur {
    const unsigned char *p, *end;
} cur;

static int take(cur *c, size_t n, const unsigned char **out) {
    if ((size_t)(c->end - c->p) < n) return 0;
    *out = c->p;
    c->p += n;
    return 1;
}

/* A length-prefixed name: 1..LB_FNAME_MAX-1 bytes, no NUL, printable ASCII or UTF-8 bytes. */
static int take_name(cur *c, char *out) {
    const unsigned char *q;
    if (!take(c, 2, &q)) return -1;
    size_t n = (size_t)get_le(q, 2);
    if (n == 0 || n >= LB_FNAME_MAX || !take(c, n, &q))
        return n == 0 || n >= LB_FNAME_MAX ? -2 : -1;
    for (size_t i = 0; i < n; i++)
        if (q[i] < 0x20 || q[i] == 0x7f) return -2;
    memcpy(out, q, n);
    out[n] = '\0';
    return 0;
}

#define BAD(...) (lb_fmap_free(out), lb_error_set(LB_EFORMAT, __VA_ARGS__))

lb_status lb_fmap_parse(const char *fn, const void *data, size_t size, lb_fmap *out) {
    memset(out, 0, sizeof *out);
    const unsigned char *b = data;
    if (size < HDR)
        return BAD("%s: truncated: %zu bytes, a fault map has a %d-byte header", fn, size, HDR);
    if (memcmp(b, g_magic, 8) != 0) return BAD("%s: not a lowbit fault map (bad magic)", fn);
    uint32_t ver = (uint32_t)get_le(b + 8, 4), flags = (uint32_t)get_le(b + 12, 4);
    if (ver != LB_FMAP_VERSION)
        return BAD("%s: fault map version %u, this lowbit reads version %d", fn, ver,
                   LB_FMAP_VERSION);
    if (flags & ~FLAG_VAR) return BAD("%s: unknown flags 0x%x in the header", fn, flags);
    if (get_le(b + 28, 4) != 0) return BAD("%s: reserved header field is not zero", fn);
    uint64_t P = get_le(b + 16, 8);
    if (P != size - HDR)
        return BAD("%s: %s: header says %llu payload bytes, the file has %zu", fn,
                   P > size - HDR ? "truncated" : "trailing bytes", (unsigned long long)P,
                   size - HDR);
    uint32_t crc = (uint32_t)get_le(b + 24, 4), got = crc_of(b + HDR, (size_t)P);
    if (crc != got)
        return BAD("%s: CRC32 mismatch (stored %08x, computed %08x): the file is corrupt", fn, crc,
                   got);
    int has_var = (flags & FLAG_VAR) != 0;
    cur c = {b + HDR, b + size};
    const unsigned char *q;
    char arch[LB_FNAME_MAX];
    if (take_name(&c, arch) != 0) return BAD("%s: bad or truncated architecture name", fn);
    if (!take(&c, 4 + 48, &q)) return BAD("%s: truncated model header", fn);
    uint32_t nl = (uint32_t)get_le(q, 4);
    lb_fprov pv = {.fault_seed = get_le(q + 4, 8),
                   .var_seed = get_le(q + 12, 8),
                   .rate = get_f64(q + 20),
                   .sa1_share = get_f64(q + 28),
                   .var_ratio = get_f64(q + 36),
                   .var_kind = (lb_fvar)get_le(q + 44, 4)};
    if (nl > LB_FMAX_LAYERS) return BAD("%s: %u layers (at most %d)", fn, nl, LB_FMAX_LAYERS);
    if ((uint32_t)pv.var_kind >= LB_FVAR_COUNT || get_le(q + 48, 4) != 0)
        return BAD("%s: bad variability kind %u or reserved field", fn, (unsigned)pv.var_kind);
    lb_flayer_spec *sp = calloc(nl ? nl : 1, sizeof *sp);
    if (!sp) return lb_error_set(LB_ENOMEM, "%s: out of memory", fn);
    lb_status st = LB_OK;
    size_t need = 0;
    for (uint32_t i = 0; i < nl && st == LB_OK; i++) {
        int r = take_name(&c, sp[i].name);
        if (r != 0) {
            st = BAD("%s: layer %u: %s name", fn, i, r == -1 ? "truncated" : "bad");
            break;
        }
        if (!take(&c, 12, &q)) {
            st = BAD("%s: layer '%s': truncated entry", fn, sp[i].name);
            break;
        }
        sp[i].n = get_le(q, 8), sp[i].bits = q[8], sp[i].enc = (lb_fenc)q[9];
        if (get_le(q + 10, 2) != 0) {
            st = BAD("%s: layer '%s': reserved field is not zero", fn, sp[i].name);
            break;
        }
        if ((st = lb_fmap_check_spec(fn, &sp[i], (int)i, LB_EFORMAT)) != LB_OK) break;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(sp[j].name, sp[i].name) == 0)
                st = BAD("%s: layer '%s' twice", fn, sp[i].name);
        need += 2 * packed_bytes(&sp[i]) + (has_var ? (size_t)sp[i].n * sp[i].bits * 4 : 0);
    }
    /* The data size is checked before allocating: a small corrupt file cannot ask for gigabytes. */
    if (st == LB_OK && need != (size_t)(c.end - c.p))
        st = BAD("%s: layer data is %zu bytes, the layer table needs %zu", fn,
                 (size_t)(c.end - c.p), need);
    if (st == LB_OK) st = lb_fmap_create(out, arch, sp, (int)nl, has_var);
    free(sp);
    if (st != LB_OK) {
        lb_fmap_free(out);
        return st == LB_EINVAL ? LB_EFORMAT : st;
    }
    out->prov = pv;
    for (int i = 0; i < out->nlayers; i++) {
        lb_flayer *L = &out->layers[i];
        size_t nb = packed_bytes(&L->spec), n = (size_t)L->spec.n;
        int bits = L->spec.bits;
        for (int t = 0; t < 2; t++) {
            uint8_t *mask = t ? L->sa1 : L->sa0;
            take(&c, nb, &q);
            size_t bit = 0;
            for (size_t w = 0; w < n; w++) {
                unsigned v = 0;
                for (int j = 0; j < bits; j++, bit++) v |= ((q[bit >> 3] >> (bit & 7)) & 1u) << j;
                mask[w] = (uint8_t)v;
            }
            if ((bit & 7) && (q[nb - 1] >> (bit & 7)))
                return BAD("%s: layer '%s': padding bits of the %s mask are not zero", fn,
                           L->spec.name, t ? "SA1" : "SA0");
        }
        for (size_t w = 0; w < n; w++)
            if (L->sa0[w] & L->sa1[w])
                return BAD("%s: layer '%s' weight %zu: a cell both stuck at 0 and at 1", fn,
                           L->spec.name, w);
        if (has_var) {
            size_t nv = n * (size_t)bits;
            take(&c, nv * 4, &q);
            for (size_t k = 0; k < nv; k++) {
                uint32_t u = (uint32_t)get_le(q + 4 * k, 4);
                memcpy(&L->var[k], &u, 4);
                if (!isfinite(L->var[k]))
                    return BAD("%s: layer '%s': multiplier %zu is not finite", fn, L->spec.name, k);
            }
        }
    }
    return LB_OK;
}

lb_status lb_fmap_slurp(const char *path, unsigned char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 65536;
            unsigned char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return lb_error_set(LB_ENOMEM, "%s: out of memory", path);
            }
            buf = nb, cap = nc;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return lb_error_set(LB_EIO, "%s: read error", path);
    }
    *data = buf;
    *len = n;
    return LB_OK;
}

lb_status lb_fmap_read(const char *path, lb_fmap *out) {
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t n;
    lb_status st = lb_fmap_slurp(path, &buf, &n);
    if (st != LB_OK) return st;
    st = lb_fmap_parse(path, buf, n, out);
    free(buf);
    return st;
}

lb_status lb_fmap_read_for(const char *path, const char *arch, const lb_flayer_spec *specs,
                           int nlayers, lb_fmap *out) {
    lb_status st = lb_fmap_read(path, out);
    if (st == LB_OK) st = lb_fmap_check_model(out, path, arch, specs, nlayers);
    if (st != LB_OK) lb_fmap_free(out);
    return st;
}
