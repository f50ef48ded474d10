/* idx readers for MNIST/Fashion-MNIST-style sets (ubyte 3-d images, 1-d ubyte labels, any class
 * count up to 256), raw or gzip, from a file or memory; not a general idx reader (no other
 * element types or ranks). */
#include "lb_data.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u
#define IDX_MAX_SIDE 4096u
#define IDX_MAX_BYTES ((uint64_t)1 << 34) /* 16 GiB of pixels: beyond any data set we train on */
#define IN_CHUNK ((size_t)1 << 16)
#define GROW_START ((size_t)1 << 16)
#define TRAIL_COUNT_MAX ((size_t)1 << 20) /* how far trailing bytes are counted for the message */

/* A byte source: a file or a memory block, passed through or inflated. Growing the output buffer
 * with the data actually read (never trusting a header's size for the allocation) keeps a
 * malicious header or a gzip bomb from allocating more than the data it really holds. */
typedef struct bsrc {
    const char *name;
    FILE *f;      /* file input, or NULL for memory */
    uint8_t *buf; /* file input chunk */
    const uint8_t *in;
    size_t in_len; /* unread input bytes at `in` */
    int in_eof;
    int gz, zinit;
    int member_done; /* the current gzip member ended (more input must be another member) */
    int new_member;  /* the current member started after a finished one */
    uint64_t out_total;
    z_stream zs;
} bsrc;

static lb_status bsrc_fill(bsrc *s) {
    if (s->in_len || s->in_eof) return LB_OK;
    if (!s->f) {
        s->in_eof = 1;
        return LB_OK;
    }
    size_t got = fread(s->buf, 1, IN_CHUNK, s->f);
    if (got == 0) {
        if (ferror(s->f))
            return lb_error_set(LB_EIO, "%s: read error: %s", s->name, strerror(errno));
        s->in_eof = 1;
    }
    s->in = s->buf;
    s->in_len = got;
    return LB_OK;
}

static lb_status bsrc_detect(bsrc *s) {
    lb_status st = bsrc_fill(s);
    if (st) return st;
    if (s->in_len >= 2 && s->in[0] == 0x1f && s->in[1] == 0x8b) {
        memset(&s->zs, 0, sizeof s->zs);
        int ret = inflateInit2(&s->zs, 16 + MAX_WBITS); /* gzip wrapper only */
        if (ret != Z_OK)
            return lb_error_set(ret == Z_MEM_ERROR ? LB_ENOMEM : LB_EIO,
                                "%s: cannot start zlib inflate (%d)", s->name, ret);
        s->gz = s->zinit = 1;
    }
    return LB_OK;
}

static lb_status bsrc_open_file(bsrc *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->name = path;
    s->f = fopen(path, "rb");
    if (!s->f) return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));
    s->buf = malloc(IN_CHUNK);
    if (!s->buf) return lb_error_set(LB_ENOMEM, "%s: cannot allocate read buffer", path);
    return bsrc_detect(s);
}

static lb_status bsrc_open_mem(bsrc *s, const char *name, const uint8_t *p, size_t n) {
    memset(s, 0, sizeof *s);
    s->name = name;
    s->in = p;
    s->in_len = p ? n : 0;
    return bsrc_detect(s);
}

static void bsrc_close(bsrc *s) {
    if (s->zinit) inflateEnd(&s->zs);
    if (s->f) fclose(s->f);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* Reads up to n bytes; *got < n only at the clean end of the data. A truncated or corrupt gzip
 * stream is an error. */
static lb_status bsrc_read(bsrc *s, uint8_t *dst, size_t n, size_t *got) {
    *got = 0;
    while (n) {
        lb_status st = bsrc_fill(s);
        if (st) return st;
        if (!s->gz) {
            if (!s->in_len) return LB_OK;
            size_t k = n < s->in_len ? n : s->in_len;
            memcpy(dst, s->in, k);
            s->in += k;
            s->in_len -= k;
            dst += k;
            n -= k;
            *got += k;
            continue;
        }
        if (!s->in_len) {
            if (s->member_done) return LB_OK;
            return lb_error_set(LB_EFORMAT,
                                "%s: truncated gzip stream: compressed data ends after %llu "
                                "inflated bytes",
                                s->name, (unsigned long long)s->out_total);
        }
        if (s->member_done) { /* more input after a complete member: must be another member */
            inflateReset(&s->zs);
            s->member_done = 0;
            s->new_member = 1;
        }
        uInt in_n = s->in_len > UINT_MAX ? UINT_MAX : (uInt)s->in_len;
        uInt out_n = n > UINT_MAX ? UINT_MAX : (uInt)n;
        s->zs.next_in = (Bytef *)s->in;
        s->zs.avail_in = in_n;
        s->zs.next_out = dst;
        s->zs.avail_out = out_n;
        int ret = inflate(&s->zs, Z_NO_FLUSH);
        size_t used = in_n - s->zs.avail_in, made = out_n - s->zs.avail_out;
        s->in += used;
        s->in_len -= used;
        dst += made;
        n -= made;
        *got += made;
        s->out_total += made;
        if (ret == Z_STREAM_END) {
            s->member_done = 1;
            continue;
        }
        if (ret == Z_OK || (ret == Z_BUF_ERROR && (used || made))) continue;
        if (ret == Z_MEM_ERROR) return lb_error_set(LB_ENOMEM, "%s: zlib out of memory", s->name);
        if (s->new_member && s->zs.total_out == 0 && ret == Z_DATA_ERROR)
            return lb_error_set(LB_EFORMAT, "%s: trailing garbage after the gzip stream", s->name);
        return lb_error_set(LB_EFORMAT, "%s: corrupt gzip data after %llu inflated bytes (%s)",
                            s->name, (unsigned long long)s->out_total,
                            s->zs.msg ? s->zs.msg : "no progress");
    }
    return LB_OK;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t bswap32(uint32_t x) {
    return (x >> 24) | ((x >> 8) & 0xff00u) | ((x << 8) & 0xff0000u) | (x << 24);
}

/* Reads one idx file of kind `magic` whole: dims[] (n, or n rows cols) and the payload. */
static lb_status idx_read(bsrc *s, uint32_t magic, uint32_t dims[3], uint8_t **data) {
    const int nd = (int)(magic & 0xff);
    const char *kind = magic == IDX_IMAGES ? "images" : "labels";
    const char *what = magic == IDX_IMAGES ? "pixel" : "label";
    uint8_t hdr[16];
    size_t hlen = 4 + 4 * (size_t)nd, got;
    *data = NULL;
    lb_status st = bsrc_read(s, hdr, 4, &got);
    if (st) return st;
    if (got == 0)
        return lb_error_set(LB_EFORMAT, "%s: empty file (expected idx %s)", s->name, kind);
    if (got < 4)
        return lb_error_set(LB_EFORMAT, "%s: truncated: idx header needs %zu bytes, got %zu",
                            s->name, hlen, got);
    uint32_t m = be32(hdr);
    if (m != magic) {
        const char *hint = m == (IDX_IMAGES ^ IDX_LABELS ^ magic) ? " (this is the other idx kind)"
                           : m == bswap32(magic) ? " (byte-swapped: idx is big-endian)"
                                                 : "";
        return lb_error_set(LB_EFORMAT, "%s: wrong magic 0x%08x, expected 0x%08x (idx %s)%s",
                            s->name, m, magic, kind, hint);
    }
    st = bsrc_read(s, hdr + 4, hlen - 4, &got);
    if (st) return st;
    if (got < hlen - 4)
        return lb_error_set(LB_EFORMAT, "%s: truncated: idx header needs %zu bytes, got %zu",
                            s->name, hlen, 4 + got);
    uint64_t total = 1;
    for (int i = 0; i < nd; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        total *= dims[i]; /* at most 2^31 * 2^12 * 2^12 after the checks below: no overflow */
        if (dims[i] == 0)
            return lb_error_set(LB_EFORMAT, "%s: dimension %d is 0 in the idx header", s->name, i);
        if (i == 0 && dims[0] > INT_MAX)
            return lb_error_set(LB_EFORMAT, "%s: implausible count %u in the idx header", s->name,
                                dims[0]);
        if (i > 0 && dims[i] > IDX_MAX_SIDE)
            return lb_error_set(LB_EFORMAT,
                                "%s: implausible image side %u in the idx header (max %u)", s->name,
                                dims[i], IDX_MAX_SIDE);
    }
    if (total > IDX_MAX_BYTES || total > SIZE_MAX)
        return lb_error_set(LB_EFORMAT, "%s: idx header declares %llu bytes, more than %llu",
                            s->name, (unsigned long long)total, (unsigned long long)IDX_MAX_BYTES);
    size_t need = (size_t)total, have = 0, cap = 0;
    uint8_t *p = NULL;
    while (have < need) {
        if (have == cap) {
            size_t ncap = cap ? cap * 2 : GROW_START;
            if (ncap > need) ncap = need;
            uint8_t *q = realloc(p, ncap);
            if (!q) {
                free(p);
                return lb_error_set(LB_ENOMEM, "%s: cannot allocate %zu bytes", s->name, ncap);
            }
            p = q;
            cap = ncap;
        }
        st = bsrc_read(s, p + have, cap - have, &got);
        if (st) {
            free(p);
            return st;
        }
        have += got;
        if (have < cap) break; /* clean end of data */
    }
    if (have < need) {
        free(p);
        return lb_error_set(LB_EFORMAT, "%s: truncated: expected %zu %s bytes, got %zu", s->name,
                            need, what, have);
    }
    /* The data must end here; count a bounded number of extra bytes for the message. */
    size_t extra = 0;
    uint8_t tmp[4096];
    do {
        st = bsrc_read(s, tmp, sizeof tmp, &got);
        if (st) {
            free(p);
            return st;
        }
        extra += got;
    } while (got == sizeof tmp && extra < TRAIL_COUNT_MAX);
    if (extra) {
        free(p);
        return lb_error_set(LB_EFORMAT, "%s: trailing garbage: %s%zu bytes after the %zu %s bytes",
                            s->name, got == sizeof tmp ? "at least " : "", extra, need, what);
    }
    *data = p;
    return LB_OK;
}

/* Combines the two parsed files; takes ownership of pix and lab. */
static lb_status idx_combine(const char *iname, const uint32_t idims[3], uint8_t *pix,
                             const char *lname, uint32_t nlab, uint8_t *lab, lb_dataset *out) {
    lb_status st = LB_OK;
    int32_t *labels = NULL;
    if (idims[0] != nlab) {
        st = lb_error_set(LB_EFORMAT, "%s has %u images but %s has %u labels", iname, idims[0],
                          lname, nlab);
        goto done;
    }
    /* the format names no class count: label k is class k, and a split has classes up to its
     * largest label (at least 2); a run takes the larger of its two splits (docs/data.md) */
    int classes = 2;
    for (uint32_t i = 0; i < nlab; i++)
        if (lab[i] + 1 > classes) classes = lab[i] + 1;
    labels = malloc((size_t)nlab * sizeof *labels);
    if (!labels) {
        st = lb_error_set(LB_ENOMEM, "%s: cannot allocate %u labels", lname, nlab);
        goto done;
    }
    for (uint32_t i = 0; i < nlab; i++) labels[i] = lab[i];
    out->n = (int)nlab;
    out->c = 1;
    out->h = (int)idims[1];
    out->w = (int)idims[2];
    out->classes = classes;
    out->images = pix;
    out->labels = labels;
    pix = NULL;
done:
    free(pix);
    free(lab);
    return st;
}

static lb_status idx_finish(bsrc *is, bsrc *ls, lb_dataset *out) {
    uint32_t idims[3] = {0}, ldims[3] = {0};
    uint8_t *pix = NULL, *lab = NULL;
    lb_status st = idx_read(ls, IDX_LABELS, ldims, &lab);
    if (!st) st = idx_read(is, IDX_IMAGES, idims, &pix);
    if (st) {
        free(lab);
        free(pix);
        return st;
    }
    return idx_combine(is->name, idims, pix, ls->name, ldims[0], lab, out);
}

lb_status lb_idx_load(const char *images_path, const char *labels_path, lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_idx_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!images_path || !labels_path) return lb_error_set(LB_EINVAL, "lb_idx_load: path is NULL");
    bsrc is, ls;
    memset(&is, 0, sizeof is);
    lb_status st = bsrc_open_file(&ls, labels_path);
    if (!st) st = bsrc_open_file(&is, images_path);
    if (!st) st = idx_finish(&is, &ls, out);
    bsrc_close(&is);
    bsrc_close(&ls);
    return st;
}

lb_status lb_idx_parse_mem(const char *images_name, const uint8_t *images, size_t images_len,
                           const char *labels_name, const uint8_t *labels, size_t labels_len,
                           lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_idx_parse_mem: out is NULL");
    memset(out, 0, sizeof *out);
    bsrc is, ls;
    memset(&is, 0, sizeof is);
    lb_status st = bsrc_open_mem(&ls, labels_name ? labels_name : "<labels>", labels, labels_len);
    if (!st) st = bsrc_open_mem(&is, images_name ? images_name : "<images>", images, images_len);
    if (!st) st = idx_finish(&is, &ls, out);
    bsrc_close(&is);
    bsrc_close(&ls);
    return st;
}
