/* safetensors reader: loads a file (or memory buffer) and validates every header field against
 * the data section before handing out tensors. Not the writer (st_write.c), not model mapping. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "lb_ckpt.h"
#include "st_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct lb_st_file {
    unsigned char *buf; /* the whole file; tensor data points into it */
    size_t size;
    lb_st_tensor *t; /* nt, in data-offset order */
    int *by_name;    /* indices into t sorted by name, for lb_st_find */
    int nt;
    lb_st_meta *meta; /* nmeta, in header order */
    int nmeta;
    char *pool; /* names, keys and values */
};

static const char *const g_dtype_names[] = {"F32", "I32", "U8", "I8", "U64"};
static const size_t g_dtype_sizes[] = {4, 4, 1, 1, 8};
#define N_DTYPES ((int)(sizeof g_dtype_sizes / sizeof g_dtype_sizes[0]))

size_t lb_dtype_size(lb_dtype t) {
    return (int)t >= 0 && (int)t < N_DTYPES ? g_dtype_sizes[t] : 0;
}

const char *lb_dtype_name(lb_dtype t) {
    return (int)t >= 0 && (int)t < N_DTYPES ? g_dtype_names[t] : NULL;
}

size_t lb_st__utf8_check(const unsigned char *s, size_t n, int header) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            /* Raw control characters are never valid JSON outside whitespace. */
            if (header && c < 0x20 && c != '\t' && c != '\n' && c != '\r') return i;
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

lb_st__pname lb_st__printable(const char *s) {
    lb_st__pname p;
    size_t i = 0, o = 0;
    const size_t max = 60;
    while (s[i] && o < max) {
        unsigned char c = (unsigned char)s[i++];
        p.s[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i]) {
        while (o > 0 && ((unsigned char)p.s[o - 1] & 0xC0) == 0x80) o--; /* whole characters */
        if (o > 0 && (unsigned char)p.s[o - 1] >= 0xC0) o--;
        memcpy(p.s + o, "...", 3);
        o += 3;
    }
    p.s[o] = '\0';
    return p;
}

void lb_st__shape_str(char *dst, size_t cap, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(dst, cap, "[");
    for (int d = 0; d < ndim && o < cap; d++)
        o += (size_t)snprintf(dst + o, cap - o, d ? ",%lld" : "%lld", (long long)shape[d]);
    if (o < cap) snprintf(dst + o, cap - o, "]");
}

/* ---- reading ------------------------------------------------------------------------------- */

/* One tensor entry while the header is being checked; names stay in the cJSON tree. */
typedef struct rec {
    const char *name;
    lb_dtype dtype;
    int ndim;
    int64_t shape[LB_ST_MAXDIM];
    uint64_t begin, end;
    size_t idx; /* header order, breaks ties between zero-size tensors at one offset */
    int pos;    /* final index in data order */
} rec;

static lb_status bad(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static lb_status bad(const char *file, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lb_error_set(LB_EFORMAT, "%s: %s", file, msg);
}

/* Only inside one full expression: the temporary dies at its end. */
#define PN(str) (lb_st__printable(str).s)

/* A JSON number that is an exact non-negative integer no larger than 2^53 (beyond that a double
 * no longer tells integers apart). */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= (double)LB_ST__MAX_INT)) return 0;
    uint64_t u = (uint64_t)d;
    if ((double)u != d) return 0;
    *out = u;
    return 1;
}

static void json_num_str(const cJSON *v, char *dst, size_t cap) {
    if (cJSON_IsNumber(v))
        snprintf(dst, cap, "%.17g", v->valuedouble);
    else
        snprintf(dst, cap, "a non-number");
}

static lb_status parse_entry(const char *file, const cJSON *e, rec *r) {
    lb_st__pname pnm = lb_st__printable(r->name);
    const char *nm = pnm.s;
    if (!cJSON_IsObject(e)) return bad(file, "tensor '%s': entry is not a JSON object", nm);
    const cJSON *dt = NULL, *sh = NULL, *off = NULL;
    for (const cJSON *c = e->child; c; c = c->next) {
        const cJSON **slot = NULL;
        if (!c->string) return bad(file, "tensor '%s': entry field without a name", nm);
        if (!strcmp(c->string, "dtype"))
            slot = &dt;
        else if (!strcmp(c->string, "shape"))
            slot = &sh;
        else if (!strcmp(c->string, "data_offsets"))
            slot = &off;
        else
            return bad(file, "tensor '%s': unknown field '%s'", nm, PN(c->string));
        if (*slot) return bad(file, "tensor '%s': field '%s' appears twice", nm, c->string);
        *slot = c;
    }
    if (!dt) return bad(file, "tensor '%s': missing \"dtype\"", nm);
    if (!sh) return bad(file, "tensor '%s': missing \"shape\"", nm);
    if (!off) return bad(file, "tensor '%s': missing \"data_offsets\"", nm);

    if (!cJSON_IsString(dt)) return bad(file, "tensor '%s': dtype is not a string", nm);
    int k = 0;
    while (k < N_DTYPES && strcmp(dt->valuestring, g_dtype_names[k])) k++;
    if (k == N_DTYPES)
        return bad(file, "tensor '%s': unsupported dtype '%s' (expected F32, I32, U8, I8 or U64)",
                   nm, PN(dt->valuestring));
    r->dtype = (lb_dtype)k;

    if (!cJSON_IsArray(sh)) return bad(file, "tensor '%s': shape is not an array", nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > LB_ST_MAXDIM)
        return bad(file, "tensor '%s': shape has %d dimensions, more than %d", nm, nd,
                   LB_ST_MAXDIM);
    r->ndim = 0;
    uint64_t nelem = 1;
    int overflow = 0;
    for (const cJSON *c = sh->child; c; c = c->next) {
        uint64_t v;
        if (!json_uint(c, &v)) {
            char num[40];
            json_num_str(c, num, sizeof num);
            return bad(file, "tensor '%s': shape[%d] is %s, not a non-negative integer <= 2^53", nm,
                       r->ndim, num);
        }
        r->shape[r->ndim++] = (int64_t)v;
        overflow |= __builtin_mul_overflow(nelem, v, &nelem);
    }
    uint64_t nbytes = 0;
    overflow |= __builtin_mul_overflow(nelem, (uint64_t)g_dtype_sizes[k], &nbytes);
    char shs[LB_ST__SHAPE_STR];
    lb_st__shape_str(shs, sizeof shs, r->ndim, r->shape);
    if (overflow) return bad(file, "tensor '%s': shape %s: byte size overflows", nm, shs);

    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return bad(file, "tensor '%s': data_offsets is not an array of two integers", nm);
    for (int i = 0; i < 2; i++) {
        const cJSON *c = cJSON_GetArrayItem(off, i);
        if (!json_uint(c, i ? &r->end : &r->begin)) {
            char num[40];
            json_num_str(c, num, sizeof num);
            return bad(file, "tensor '%s': data_offsets[%d] is %s, not a non-negative integer", nm,
                       i, num);
        }
    }
    if (r->begin > r->end)
        return bad(file, "tensor '%s': data_offsets [%llu, %llu] begin after end", nm,
                   (unsigned long long)r->begin, (unsigned long long)r->end);
    if (r->end - r->begin != nbytes)
        return bad(file,
                   "tensor '%s': data_offsets [%llu, %llu] do not match shape %s %s (%llu bytes)",
                   nm, (unsigned long long)r->begin, (unsigned long long)r->end, shs,
                   g_dtype_names[k], (unsigned long long)nbytes);
    return LB_OK;
}

static lb_status parse_meta(const char *file, const cJSON *m) {
    if (!cJSON_IsObject(m)) return bad(file, "__metadata__ is not a JSON object");
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!c->string) return bad(file, "__metadata__ entry without a key");
        if (!cJSON_IsString(c))
            return bad(file, "__metadata__ value of '%s' is not a string", PN(c->string));
    }
    return LB_OK;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const rec *const *)a)->name, (*(const rec *const *)b)->name);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_offset(const void *a, const void *b) {
    const rec *x = *(const rec *const *)a, *y = *(const rec *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Checks that the tensors, sorted by offset, tile [0, data_size) exactly. */
static lb_status check_layout(const char *file, rec **ord, size_t nt, uint64_t data_size) {
    uint64_t at = 0;
    for (size_t i = 0; i < nt; i++) {
        const rec *r = ord[i];
        if (r->end > data_size)
            return bad(
                file,
                "tensor '%s': data_offsets [%llu, %llu] extend past the %llu-byte data section",
                PN(r->name), (unsigned long long)r->begin, (unsigned long long)r->end,
                (unsigned long long)data_size);
    }
    for (size_t i = 0; i < nt; i++) {
        const rec *r = ord[i];
        if (r->begin < at) {
            const rec *p = ord[i - 1]; /* at > 0 only after a tensor */
            char pnm[sizeof(lb_st__pname)];
            snprintf(pnm, sizeof pnm, "%s", PN(p->name));
            return bad(file, "tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap", pnm,
                       (unsigned long long)p->begin, (unsigned long long)p->end, PN(r->name),
                       (unsigned long long)r->begin, (unsigned long long)r->end);
        }
        if (r->begin > at)
            return bad(file,
                       "hole in the data section: bytes [%llu, %llu) before tensor '%s' belong to "
                       "no tensor",
                       (unsigned long long)at, (unsigned long long)r->begin, PN(r->name));
        at = r->end;
    }
    if (at != data_size)
        return bad(file,
                   "hole in the data section: its last bytes [%llu, %llu) belong to no tensor",
                   (unsigned long long)at, (unsigned long long)data_size);
    return LB_OK;
}

static void file_free(lb_st_file *f) {
    if (!f) return;
    free(f->buf);
    free(f->t);
    free(f->by_name);
    free(f->meta);
    free(f->pool);
    free(f);
}

/* Copies the checked header (ord sorted by offset) into `f`, which owns buf already; leaves ord
 * sorted by name and each rec's pos set to its index in f->t. */
static lb_status build(const char *file, lb_st_file *f, rec **ord, size_t nt, const cJSON *meta) {
    size_t nmeta = 0, pool = 0;
    for (size_t i = 0; i < nt; i++) pool += strlen(ord[i]->name) + 1;
    for (const cJSON *c = meta ? meta->child : NULL; c; c = c->next, nmeta++)
        pool += strlen(c->string) + strlen(c->valuestring) + 2;
    f->t = calloc(nt ? nt : 1, sizeof *f->t);
    f->by_name = calloc(nt ? nt : 1, sizeof *f->by_name);
    f->meta = calloc(nmeta ? nmeta : 1, sizeof *f->meta);
    f->pool = malloc(pool ? pool : 1);
    if (!f->t || !f->by_name || !f->meta || !f->pool)
        return lb_error_set(LB_ENOMEM, "%s: out of memory for the header", file);
    char *p = f->pool;
    for (size_t i = 0; i < nt; i++) {
        const rec *r = ord[i];
        lb_st_tensor *t = &f->t[i];
        size_t len = strlen(r->name) + 1;
        memcpy(p, r->name, len);
        t->name = p;
        p += len;
        t->dtype = r->dtype;
        t->ndim = r->ndim;
        memcpy(t->shape, r->shape, sizeof t->shape);
        ord[i]->pos = (int)i;
    }
    for (const cJSON *c = meta ? meta->child : NULL; c; c = c->next) {
        lb_st_meta *m = &f->meta[f->nmeta++];
        size_t kl = strlen(c->string) + 1, vl = strlen(c->valuestring) + 1;
        memcpy(p, c->string, kl);
        m->key = p;
        p += kl;
        memcpy(p, c->valuestring, vl);
        m->value = p;
        p += vl;
    }
    f->nt = (int)nt;
    qsort(ord, nt, sizeof *ord, cmp_name);
    for (size_t i = 0; i < nt; i++) f->by_name[i] = ord[i]->pos;
    return LB_OK;
}

/* Parses `buf` (size bytes), taking ownership of it whatever the outcome. */
static lb_status parse_owned(unsigned char *buf, size_t size, const char *file, lb_st_file **out) {
    *out = NULL;
    lb_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        free(buf);
        return lb_error_set(LB_ENOMEM, "%s: out of memory", file);
    }
    f->buf = buf;
    f->size = size;
    cJSON *root = NULL;
    rec *recs = NULL;
    rec **ord = NULL;
    lb_status st = LB_OK;

    if (size < 8) {
        st = bad(file, "file is %zu bytes, too short for the 8-byte header size", size);
        goto done;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    if (n > LB_ST_MAX_HEADER) {
        st = bad(file, "header size %llu exceeds the limit of %u bytes", (unsigned long long)n,
                 LB_ST_MAX_HEADER);
        goto done;
    }
    if (n > size - 8) {
        st = bad(file, "header size %llu exceeds the %zu bytes after the size field (truncated?)",
                 (unsigned long long)n, size - 8);
        goto done;
    }
    const char *hdr = (const char *)buf + 8;
    if (n == 0 || hdr[0] != '{') {
        st = bad(file, "header does not start with '{'");
        goto done;
    }
    size_t badbyte = lb_st__utf8_check((const unsigned char *)hdr, n, 1);
    if (badbyte != n) {
        st = bad(file, "header is not valid UTF-8 JSON text (bad byte 0x%02x at header offset %zu)",
                 (unsigned char)hdr[badbyte], badbyte);
        goto done;
    }
    /* cJSON would decode \u0000 into a NUL that silently cuts a name short. Backslashes occur
     * only inside strings in valid JSON, so skipping escape pairs finds every real one. */
    for (size_t q = 0; q + 1 < n; q++) {
        if (hdr[q] != '\\') continue;
        if (hdr[q + 1] == 'u' && n - q >= 6 && !memcmp(hdr + q + 2, "0000", 4)) {
            st = bad(file, "header contains \\u0000, which names and values cannot hold");
            goto done;
        }
        q++;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!root) {
        st = bad(file, "header is not valid JSON");
        goto done;
    }
    for (const char *q = end; q < hdr + n; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            st = bad(file, "header has trailing characters after the JSON object (offset %zu)",
                     (size_t)(q - hdr));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        st = bad(file, "header is not a JSON object");
        goto done;
    }
    size_t nent = 0;
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string) {
            st = bad(file, "header entry without a name");
            goto done;
        }
        if (!strcmp(c->string, "__metadata__")) {
            if (meta) {
                st = bad(file, "__metadata__ appears twice");
                goto done;
            }
            meta = c;
        } else {
            nent++;
        }
    }
    if (nent > (size_t)INT32_MAX) {
        st = bad(file, "too many tensors");
        goto done;
    }
    if (meta && (st = parse_meta(file, meta)) != LB_OK) goto done;
    recs = calloc(nent ? nent : 1, sizeof *recs);
    ord = calloc(nent ? nent : 1, sizeof *ord);
    if (!recs || !ord) {
        st = lb_error_set(LB_ENOMEM, "%s: out of memory for %zu tensors", file, nent);
        goto done;
    }
    size_t i = 0;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (c == meta) continue;
        recs[i].name = c->string;
        recs[i].idx = i;
        if ((st = parse_entry(file, c, &recs[i])) != LB_OK) goto done;
        ord[i] = &recs[i];
        i++;
    }
    /* Names unique: sort by name, compare neighbours. */
    qsort(ord, nent, sizeof *ord, cmp_name);
    for (i = 1; i < nent; i++) {
        if (!strcmp(ord[i - 1]->name, ord[i]->name)) {
            st = bad(file, "tensor name '%s' appears twice", PN(ord[i]->name));
            goto done;
        }
    }
    if (meta) {
        size_t nm = (size_t)cJSON_GetArraySize(meta);
        const char **keys = calloc(nm ? nm : 1, sizeof *keys);
        if (!keys) {
            st = lb_error_set(LB_ENOMEM, "%s: out of memory", file);
            goto done;
        }
        size_t k = 0;
        for (const cJSON *c = meta->child; c && k < nm; c = c->next) keys[k++] = c->string;
        qsort(keys, k, sizeof *keys, cmp_str);
        for (size_t j = 1; j < k; j++) {
            if (!strcmp(keys[j - 1], keys[j])) {
                st = bad(file, "__metadata__ key '%s' appears twice", PN(keys[j]));
                break;
            }
        }
        free(keys);
        if (st != LB_OK) goto done;
    }
    qsort(ord, nent, sizeof *ord, cmp_offset);
    uint64_t data_size = (uint64_t)(size - 8 - n);
    if ((st = check_layout(file, ord, nent, data_size)) != LB_OK) goto done;
    if ((st = build(file, f, ord, nent, meta)) != LB_OK) goto done;
    /* build() re-sorted ord by name; data pointers go by final position. */
    const unsigned char *data = buf + 8 + n;
    for (i = 0; i < nent; i++) f->t[recs[i].pos].data = data + recs[i].begin;

done:
    cJSON_Delete(root);
    free(recs);
    free(ord);
    if (st != LB_OK) {
        file_free(f);
        return st;
    }
    *out = f;
    return LB_OK;
}

lb_status lb_st_read_mem(const void *buf, size_t n, const char *name_for_errors, lb_st_file **out) {
    const char *file = name_for_errors ? name_for_errors : "(memory)";
    if (!out) return lb_error_set(LB_EINVAL, "%s: lb_st_read_mem: out is NULL", file);
    *out = NULL;
    if (!buf && n) return lb_error_set(LB_EINVAL, "%s: lb_st_read_mem: buffer is NULL", file);
    unsigned char *copy = malloc(n ? n : 1);
    if (!copy) return lb_error_set(LB_ENOMEM, "%s: out of memory for %zu bytes", file, n);
    if (n) memcpy(copy, buf, n);
    return parse_owned(copy, n, file, out);
}

lb_status lb_st_read(const char *path, lb_st_file **out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_st_read: out is NULL");
    *out = NULL;
    if (!path) return lb_error_set(LB_EINVAL, "lb_st_read: path is NULL");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return lb_error_set(LB_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return lb_error_set(LB_EIO, "%s: not a regular file", path);
    }
    if (sb.st_size < 0 || (uint64_t)sb.st_size > (uint64_t)SIZE_MAX - 1) {
        close(fd);
        return lb_error_set(LB_EIO, "%s: file too large", path);
    }
    size_t size = (size_t)sb.st_size, got = 0;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return lb_error_set(LB_ENOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            if (r == 0) return lb_error_set(LB_EIO, "%s: file shrank while being read", path);
            return lb_error_set(LB_EIO, "%s: read failed: %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    return parse_owned(buf, size, path, out);
}

int lb_st_count(const lb_st_file *f) {
    return f ? f->nt : 0;
}

const lb_st_tensor *lb_st_get(const lb_st_file *f, int i) {
    return f && i >= 0 && i < f->nt ? &f->t[i] : NULL;
}

const lb_st_tensor *lb_st_find(const lb_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->nt - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const lb_st_tensor *t = &f->t[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *lb_st_meta_get(const lb_st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

int lb_st_meta_count(const lb_st_file *f) {
    return f ? f->nmeta : 0;
}

const lb_st_meta *lb_st_meta_at(const lb_st_file *f, int i) {
    return f && i >= 0 && i < f->nmeta ? &f->meta[i] : NULL;
}

void lb_st_free(lb_st_file *f) {
    file_free(f);
}
