/* CIFAR-10 / CIFAR-100 binary readers (raw record files, from disk or memory); not the python
 * pickle versions of the data sets. */
#include "lb_data.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIX 3072 /* 3 x 32 x 32, already channel-major (NCHW) in the file */
#define READ_RECS 64   /* records per fread */

static size_t rec_size(int cifar100) {
    return cifar100 ? CIFAR_PIX + 2 : CIFAR_PIX + 1;
}
static const char *kind(int cifar100) {
    return cifar100 ? "CIFAR-100" : "CIFAR-10";
}

/* Checks and unpacks nrec records; `first` is the index of the first one within its file. */
static lb_status unpack(const char *name, size_t first, const uint8_t *rec, size_t nrec,
                        int cifar100, uint8_t *img, int32_t *lab) {
    size_t rs = rec_size(cifar100);
    for (size_t i = 0; i < nrec; i++, rec += rs) {
        int label = rec[0];
        if (cifar100) {
            if (rec[0] >= 20)
                return lb_error_set(LB_EFORMAT,
                                    "%s: record %zu: coarse label %d out of range [0, 20)", name,
                                    first + i, rec[0]);
            label = rec[1];
        }
        int classes = cifar100 ? 100 : 10;
        if (label >= classes)
            return lb_error_set(LB_EFORMAT, "%s: record %zu: label %d out of range [0, %d)", name,
                                first + i, label, classes);
        lab[i] = label;
        memcpy(img + i * CIFAR_PIX, rec + rs - CIFAR_PIX, CIFAR_PIX);
    }
    return LB_OK;
}

static lb_status check_size(const char *name, unsigned long long size, int cifar100) {
    size_t rs = rec_size(cifar100);
    if (size == 0) return lb_error_set(LB_EFORMAT, "%s: empty %s file", name, kind(cifar100));
    if (size % rs)
        return lb_error_set(LB_EFORMAT,
                            "%s: size %llu is not a multiple of the %zu-byte %s record (%llu "
                            "records and %llu bytes left over)",
                            name, size, rs, kind(cifar100), size / rs, size % rs);
    return LB_OK;
}

static lb_status alloc_set(lb_dataset *out, size_t n, int cifar100, const char *name) {
    if (n > INT_MAX)
        return lb_error_set(LB_EFORMAT, "%s: %zu records, more than %d", name, n, INT_MAX);
    out->images = malloc(n * CIFAR_PIX);
    out->labels = malloc(n * sizeof *out->labels);
    if (!out->images || !out->labels) {
        lb_dataset_free(out);
        return lb_error_set(LB_ENOMEM, "%s: cannot allocate %zu CIFAR images", name, n);
    }
    out->n = (int)n;
    out->c = 3;
    out->h = out->w = 32;
    out->classes = cifar100 ? 100 : 10;
    return LB_OK;
}

lb_status lb_cifar_parse_mem(const char *name, const uint8_t *buf, size_t len, int cifar100,
                             lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_cifar_parse_mem: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "<cifar>";
    if (!buf) len = 0;
    lb_status st = check_size(name, len, cifar100);
    if (st) return st;
    size_t n = len / rec_size(cifar100);
    if ((st = alloc_set(out, n, cifar100, name))) return st;
    st = unpack(name, 0, buf, n, cifar100, out->images, out->labels);
    if (st) lb_dataset_free(out);
    return st;
}

/* Reads one file's records into img/lab (room for exactly `n`, known from its size). */
static lb_status read_file(const char *path, size_t n, int cifar100, uint8_t *buf, uint8_t *img,
                           int32_t *lab) {
    size_t rs = rec_size(cifar100);
    FILE *f = fopen(path, "rb");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));
    lb_status st = LB_OK;
    for (size_t done = 0; done < n && !st;) {
        size_t want = n - done < READ_RECS ? n - done : READ_RECS;
        size_t got = fread(buf, 1, want * rs, f);
        if (got != want * rs) {
            st = ferror(f) ? lb_error_set(LB_EIO, "%s: read error: %s", path, strerror(errno))
                           : lb_error_set(LB_EIO, "%s: file shrank while reading (record %zu)",
                                          path, done + got / rs);
            break;
        }
        st = unpack(path, done, buf, want, cifar100, img + done * CIFAR_PIX, lab + done);
        done += want;
    }
    if (!st && fgetc(f) != EOF) st = lb_error_set(LB_EIO, "%s: file grew while reading", path);
    fclose(f);
    return st;
}

lb_status lb_cifar_load(const char *const *paths, int npaths, int cifar100, lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_cifar_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!paths || npaths < 1) return lb_error_set(LB_EINVAL, "lb_cifar_load: no files given");
    size_t rs = rec_size(cifar100), total = 0;
    for (int i = 0; i < npaths; i++) {
        struct stat sb;
        if (!paths[i]) return lb_error_set(LB_EINVAL, "lb_cifar_load: path %d is NULL", i);
        if (stat(paths[i], &sb) != 0)
            return lb_error_set(LB_EIO, "%s: cannot open: %s", paths[i], strerror(errno));
        if (!S_ISREG(sb.st_mode)) return lb_error_set(LB_EIO, "%s: not a regular file", paths[i]);
        lb_status st = check_size(paths[i], (unsigned long long)sb.st_size, cifar100);
        if (st) return st;
        total += (size_t)sb.st_size / rs;
    }
    lb_status st = alloc_set(out, total, cifar100, paths[0]);
    if (st) return st;
    uint8_t *buf = malloc(READ_RECS * rs);
    if (!buf) {
        lb_dataset_free(out);
        return lb_error_set(LB_ENOMEM, "%s: cannot allocate read buffer", paths[0]);
    }
    size_t at = 0;
    for (int i = 0; i < npaths && !st; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0) {
            st = lb_error_set(LB_EIO, "%s: cannot open: %s", paths[i], strerror(errno));
            break;
        }
        size_t n = (size_t)sb.st_size / rs;
        if (at + n > total) {
            st = lb_error_set(LB_EIO, "%s: file grew while reading", paths[i]);
            break;
        }
        st = read_file(paths[i], n, cifar100, buf, out->images + at * CIFAR_PIX, out->labels + at);
        at += n;
    }
    if (!st && at != total) st = lb_error_set(LB_EIO, "%s: files shrank while reading", paths[0]);
    free(buf);
    if (st) lb_dataset_free(out);
    return st;
}
