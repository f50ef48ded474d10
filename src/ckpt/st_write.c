/* safetensors writer: checks the arguments, builds the JSON header and writes the file atomically
 * (temporary file, fsync, rename, fsync of the directory). Not the reader (safetensors.c). */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "lb_ckpt.h"
#include "st_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tensor data goes to the file exactly as it lies in memory, and safetensors is little-endian. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "lowbit needs a little-endian host");

/* Only inside one full expression: the temporary dies at its end. */
#define PN(str) (lb_st__printable(str).s)

/* A growing string for the header; `oom` sticks so callers check once at the end. */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

static void sb_u64(sbuf *b, uint64_t v) {
    char tmp[24];
    int k = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string: quotes, backslashes and control characters escaped, UTF-8 passed through. */
static void sb_jstr(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* NULL if all of s[0..n) differ, else one that repeats. */
static const char *find_duplicate(const char **s, size_t n) {
    qsort(s, n, sizeof *s, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(s[i - 1], s[i])) return s[i];
    return NULL;
}

static int valid_utf8(const char *s) {
    size_t n = strlen(s);
    return lb_st__utf8_check((const unsigned char *)s, n, 0) == n;
}

/* Checks the arguments and fills nbytes[i]; LB_EINVAL naming the path and the problem. */
static lb_status check_args(const char *path, const lb_st_tensor *t, int nt, const lb_st_meta *meta,
                            int nmeta, uint64_t *nbytes) {
    for (int i = 0; i < nt; i++) {
        const lb_st_tensor *x = &t[i];
        if (!x->name) return lb_error_set(LB_EINVAL, "%s: tensor %d has no name", path, i);
        lb_st__pname pnm = lb_st__printable(x->name);
        const char *nm = pnm.s;
        if (!valid_utf8(x->name))
            return lb_error_set(LB_EINVAL, "%s: tensor name '%s' is not valid UTF-8", path, nm);
        if (!strcmp(x->name, "__metadata__"))
            return lb_error_set(LB_EINVAL, "%s: a tensor may not be named __metadata__", path);
        size_t es = lb_dtype_size(x->dtype);
        if (!es)
            return lb_error_set(LB_EINVAL, "%s: tensor '%s': invalid dtype %d", path, nm,
                                (int)x->dtype);
        if (x->ndim < 0 || x->ndim > LB_ST_MAXDIM)
            return lb_error_set(LB_EINVAL, "%s: tensor '%s': ndim %d not in [0, %d]", path, nm,
                                x->ndim, LB_ST_MAXDIM);
        uint64_t ne = 1;
        int overflow = 0;
        for (int d = 0; d < x->ndim; d++) {
            if (x->shape[d] < 0 || (uint64_t)x->shape[d] > LB_ST__MAX_INT)
                return lb_error_set(LB_EINVAL, "%s: tensor '%s': shape[%d] = %lld out of range",
                                    path, nm, d, (long long)x->shape[d]);
            overflow |= __builtin_mul_overflow(ne, (uint64_t)x->shape[d], &ne);
        }
        overflow |= __builtin_mul_overflow(ne, (uint64_t)es, &nbytes[i]);
        if (overflow || nbytes[i] > LB_ST__MAX_INT)
            return lb_error_set(LB_EINVAL, "%s: tensor '%s': byte size overflows", path, nm);
        if (nbytes[i] && !x->data)
            return lb_error_set(LB_EINVAL, "%s: tensor '%s': data is NULL", path, nm);
    }
    for (int i = 0; i < nmeta; i++) {
        if (!meta[i].key || !meta[i].value)
            return lb_error_set(LB_EINVAL, "%s: metadata entry %d has a NULL key or value", path,
                                i);
        if (!valid_utf8(meta[i].key) || !valid_utf8(meta[i].value))
            return lb_error_set(LB_EINVAL, "%s: metadata '%s' is not valid UTF-8", path,
                                PN(meta[i].key));
    }
    size_t most = (size_t)(nt > nmeta ? nt : nmeta);
    const char **names = malloc((most ? most : 1) * sizeof *names);
    if (!names) return lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    const char *dup;
    for (int i = 0; i < nt; i++) names[i] = t[i].name;
    if ((dup = find_duplicate(names, (size_t)nt))) {
        lb_status st = lb_error_set(LB_EINVAL, "%s: tensor name '%s' appears twice", path, PN(dup));
        free(names);
        return st;
    }
    for (int i = 0; i < nmeta; i++) names[i] = meta[i].key;
    if ((dup = find_duplicate(names, (size_t)nmeta))) {
        lb_status st =
            lb_error_set(LB_EINVAL, "%s: metadata key '%s' appears twice", path, PN(dup));
        free(names);
        return st;
    }
    free(names);
    return LB_OK;
}

/* {"__metadata__":{...},"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},...} padded
 * with spaces to a multiple of 8 so that 8 + header length keeps the data section 8-aligned. */
static lb_status build_header(const char *path, const lb_st_tensor *t, int nt,
                              const lb_st_meta *meta, int nmeta, const uint64_t *nbytes, sbuf *b) {
    sb_puts(b, "{");
    if (nmeta > 0) {
        sb_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i) sb_puts(b, ",");
            sb_jstr(b, meta[i].key);
            sb_puts(b, ":");
            sb_jstr(b, meta[i].value);
        }
        sb_puts(b, "}");
    }
    uint64_t at = 0;
    for (int i = 0; i < nt; i++) {
        if (i || nmeta > 0) sb_puts(b, ",");
        sb_jstr(b, t[i].name);
        sb_puts(b, ":{\"dtype\":\"");
        sb_puts(b, lb_dtype_name(t[i].dtype));
        sb_puts(b, "\",\"shape\":[");
        for (int d = 0; d < t[i].ndim; d++) {
            if (d) sb_puts(b, ",");
            sb_u64(b, (uint64_t)t[i].shape[d]);
        }
        sb_puts(b, "],\"data_offsets\":[");
        sb_u64(b, at);
        sb_puts(b, ",");
        at += nbytes[i];
        sb_u64(b, at);
        sb_puts(b, "]}");
    }
    sb_puts(b, "}");
    while (!b->oom && b->n % 8) sb_puts(b, " ");
    if (b->oom) return lb_error_set(LB_ENOMEM, "%s: out of memory for the header", path);
    if (b->n > LB_ST_MAX_HEADER)
        return lb_error_set(LB_EINVAL, "%s: header of %zu bytes exceeds the limit of %u", path,
                            b->n, LB_ST_MAX_HEADER);
    return LB_OK;
}

/* fsync of the directory holding `path`, so the rename itself survives a crash. Filesystems that
 * cannot sync directories (EINVAL/ENOTSUP) are accepted as they are. */
static int sync_dir(const char *path, int *err) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = strdup(".");
    } else {
        size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
        }
    }
    if (!dir) {
        *err = ENOMEM;
        return -1;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    int rc = fsync(fd);
    *err = errno;
    close(fd);
    if (rc != 0 && (*err == EINVAL || *err == ENOTSUP)) rc = 0;
    return rc;
}

lb_status lb_st_write(const char *path, const lb_st_tensor *t, int nt, const lb_st_meta *meta,
                      int nmeta) {
    if (!path || !*path) return lb_error_set(LB_EINVAL, "lb_st_write: empty path");
    if (nt < 0 || nmeta < 0 || (nt > 0 && !t) || (nmeta > 0 && !meta))
        return lb_error_set(LB_EINVAL, "%s: lb_st_write: bad tensor or metadata list", path);
    uint64_t *nbytes = malloc((nt ? (size_t)nt : 1) * sizeof *nbytes);
    if (!nbytes) return lb_error_set(LB_ENOMEM, "%s: out of memory", path);
    sbuf hb = {0};
    char *tmp = NULL;
    FILE *fp = NULL;
    int created = 0, err = 0;
    const char *what = NULL;
    lb_status st = check_args(path, t, nt, meta, nmeta, nbytes);
    if (st == LB_OK) st = build_header(path, t, nt, meta, nmeta, nbytes, &hb);
    if (st != LB_OK) goto out;

    size_t tlen = strlen(path) + 32;
    tmp = malloc(tlen);
    if (!tmp) {
        st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    /* "x": never truncate a file someone else owns under that name. */
    fp = fopen(tmp, "wbx");
    if (!fp) {
        err = errno;
        what = "cannot create temporary file";
        goto fail;
    }
    created = 1;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)hb.n >> (8 * i));
    errno = 0;
    if (fwrite(le, 1, 8, fp) != 8 || fwrite(hb.p, 1, hb.n, fp) != hb.n) {
        err = errno;
        what = "cannot write";
        goto fail;
    }
    for (int i = 0; i < nt; i++) {
        if (!nbytes[i]) continue;
        errno = 0;
        if (fwrite(t[i].data, 1, (size_t)nbytes[i], fp) != (size_t)nbytes[i]) {
            err = errno;
            what = "cannot write";
            goto fail;
        }
    }
    if (fflush(fp) != 0) {
        err = errno;
        what = "cannot write";
        goto fail;
    }
    if (fsync(fileno(fp)) != 0) {
        err = errno;
        what = "cannot sync";
        goto fail;
    }
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) {
        err = errno;
        what = "cannot close";
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        what = "cannot rename the temporary file over it";
        goto fail;
    }
    created = 0; /* the temporary is now the file */
    if (sync_dir(path, &err) != 0) {
        what = "written, but cannot sync its directory";
        goto fail;
    }
    goto out;

fail:
    if (fp) fclose(fp);
    if (created) remove(tmp);
    st = lb_error_set(LB_EIO, "%s: %s: %s", path, what, err ? strerror(err) : "short write");
out:
    free(nbytes);
    free(hb.p);
    free(tmp);
    return st;
}
