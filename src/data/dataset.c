/* Data directories (format detection by file names), freeing, and normalization constants; the
 * file parsers themselves are in idx.c, cifar.c and imgdir.c. */
#include "lb_data.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_CAP 4096

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* snprintf into a PATH_CAP buffer; 0 when the path does not fit. */
static int path_fmt(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_fmt(char *dst, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, PATH_CAP, fmt, ap);
    va_end(ap);
    return k >= 0 && k < PATH_CAP;
}

/* dir/<split>-<kind>-ubyte.gz, else without .gz; 1 when found (path in dst). */
static int find_idx(char *dst, const char *dir, const char *split, const char *kind) {
    if (path_fmt(dst, "%s/%s-%s-ubyte.gz", dir, split, kind) && is_file(dst)) return 1;
    return path_fmt(dst, "%s/%s-%s-ubyte", dir, split, kind) && is_file(dst);
}

static lb_status load_cifar10(const char *base, int train, int *found, lb_dataset *out) {
    char paths[5][PATH_CAP];
    const char *ptrs[5];
    int n = train ? 5 : 1, have = 0, first_missing = -1;
    for (int i = 0; i < n; i++) {
        int ok = train ? path_fmt(paths[i], "%s/data_batch_%d.bin", base, i + 1)
                       : path_fmt(paths[i], "%s/test_batch.bin", base);
        ptrs[i] = paths[i];
        if (ok && is_file(paths[i]))
            have++;
        else if (first_missing < 0)
            first_missing = i;
    }
    *found = have > 0;
    if (!have) return LB_OK;
    if (have < n)
        return lb_error_set(LB_EIO, "%s: CIFAR-10 training set incomplete: %s missing", base,
                            paths[first_missing]);
    return lb_cifar_load(ptrs, n, 0, out);
}

static lb_status load_cifar100(const char *base, int train, int *found, lb_dataset *out) {
    char path[PATH_CAP];
    *found = path_fmt(path, "%s/%s.bin", base, train ? "train" : "test") && is_file(path);
    if (!*found) return LB_OK;
    const char *p = path;
    return lb_cifar_load(&p, 1, 1, out);
}

static int opts_given(const lb_image_opts *o) {
    return o && (o->h || o->w || o->c || o->test_split != 0);
}

/* The idx/CIFAR files have one size and no split to choose: image options would be ignored. */
static lb_status no_opts(const char *dir, const lb_image_opts *o, lb_status st) {
    if (st == LB_OK && opts_given(o))
        return lb_error_set(LB_EINVAL,
                            "%s: image size, channels and test split apply to image folders "
                            "only, not to idx or CIFAR files",
                            dir);
    return st;
}

int lb_dataset_dir_images(const char *dir) {
    char p[PATH_CAP];
    static const char *const files[] = {"train-images-idx3-ubyte.gz",
                                        "train-images-idx3-ubyte",
                                        "t10k-images-idx3-ubyte.gz",
                                        "t10k-images-idx3-ubyte",
                                        "data_batch_1.bin",
                                        "test_batch.bin",
                                        "cifar-10-batches-bin/data_batch_1.bin",
                                        "cifar-10-batches-bin/test_batch.bin",
                                        "train.bin",
                                        "test.bin",
                                        "cifar-100-binary/train.bin",
                                        "cifar-100-binary/test.bin"};
    if (!dir || strlen(dir) > PATH_CAP - 64) return 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (path_fmt(p, "%s/%s", dir, files[i]) && is_file(p)) return 0;
    return lb_imgdir_detect(dir);
}

lb_status lb_dataset_load_dir(const char *dir, int train, lb_dataset *out) {
    return lb_dataset_load_dir_opts(dir, train, NULL, out);
}

lb_status lb_dataset_load_dir_opts(const char *dir, int train, const lb_image_opts *opts,
                                   lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_dataset_load_dir: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0]) return lb_error_set(LB_EINVAL, "lb_dataset_load_dir: no directory given");
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return lb_error_set(LB_EIO, "%s: cannot open data directory: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return lb_error_set(LB_EIO, "%s: not a directory", dir);
    if (strlen(dir) > PATH_CAP - 64)
        return lb_error_set(LB_EINVAL, "%s: directory path too long", dir);

    const char *split = train ? "train" : "t10k";
    char img[PATH_CAP], lab[PATH_CAP], base[PATH_CAP];
    int hi = find_idx(img, dir, split, "images-idx3"),
        hl = find_idx(lab, dir, split, "labels-idx1");
    if (hi && hl) {
        lb_status st = no_opts(dir, opts, lb_idx_load(img, lab, out));
        if (st) lb_dataset_free(out);
        return st;
    }
    if (hi || hl)
        return lb_error_set(LB_EIO, "%s: found %s but no %s-%s-ubyte[.gz]", dir, hi ? img : lab,
                            split, hi ? "labels-idx1" : "images-idx3");

    static const char *const sub10[] = {"", "/cifar-10-batches-bin"};
    static const char *const sub100[] = {"", "/cifar-100-binary"};
    for (int i = 0; i < 2; i++) {
        int found;
        path_fmt(base, "%s%s", dir, sub10[i]);
        lb_status st = load_cifar10(base, train, &found, out);
        if (st || found) {
            if ((st = no_opts(dir, opts, st))) lb_dataset_free(out);
            return st;
        }
    }
    for (int i = 0; i < 2; i++) {
        int found;
        path_fmt(base, "%s%s", dir, sub100[i]);
        lb_status st = load_cifar100(base, train, &found, out);
        if (st || found) {
            if ((st = no_opts(dir, opts, st))) lb_dataset_free(out);
            return st;
        }
    }
    if (lb_imgdir_detect(dir)) return lb_imgdir_load(dir, train, opts, out);
    return lb_error_set(LB_EIO,
                        "%s: no %s data set found; looked for %s-images-idx3-ubyte[.gz] and "
                        "%s-labels-idx1-ubyte[.gz] (MNIST/Fashion-MNIST idx), %s (CIFAR-10, also "
                        "under cifar-10-batches-bin/), %s (CIFAR-100, also under "
                        "cifar-100-binary/), or image folders (train/<class>/*.png|jpg or "
                        "<class>/*.png|jpg)",
                        dir, train ? "training" : "test", split, split,
                        train ? "data_batch_1..5.bin" : "test_batch.bin",
                        train ? "train.bin" : "test.bin");
}

int lb_dataset_count(const lb_dataset *d, int limit) {
    return limit > 0 && limit < d->n ? limit : d->n;
}

void lb_dataset_free(lb_dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

static void set3(float dst[3], float a, float b, float c) {
    dst[0] = a;
    dst[1] = b;
    dst[2] = c;
}

/* Known data sets, recognised by their exact shape, size and pixel sum (an integer over every
 * byte of the split: a different set with the same mean does not match it), whose published
 * constants are kept so recipes and checkpoints trained with them stay the same. */
typedef struct known_set {
    const char *name;
    int n, c, h, w, classes;
    uint64_t pixel_sum;
    float mean, std;
} known_set;

static const known_set known_sets[] = {
    {"Fashion-MNIST train", 60000, 1, 28, 28, 10, 3431114169ull, 0.2860f, 0.3530f},
    {"Fashion-MNIST test", 10000, 1, 28, 28, 10, 573469082ull, 0.2860f, 0.3530f},
};

void lb_dataset_norm(const lb_dataset *d, float mean[3], float std[3]) {
    set3(mean, 0, 0, 0);
    set3(std, 1, 1, 1);
    if (!d || d->n <= 0 || d->c <= 0 || d->h <= 0 || d->w <= 0 || !d->images) return;
    /* Exact integer sums: the result does not depend on summation order. */
    size_t plane = (size_t)d->h * d->w;
    int nc = d->c < 3 ? d->c : 3;
    /* Event frames: every frame of a sample is a sample of its polarity channel. */
    const size_t frames = d->frames > 0 ? (size_t)d->frames : 1;
    uint64_t total = 0;
    for (int c = 0; c < nc; c++) {
        uint64_t s = 0, sq = 0;
        for (size_t i = 0; i < (size_t)d->n * frames; i++) {
            const uint8_t *p = d->images + (i * d->c + c) * plane;
            uint64_t ps = 0, psq = 0;
            for (size_t k = 0; k < plane; k++) {
                ps += p[k];
                psq += (uint32_t)p[k] * p[k];
            }
            s += ps;
            sq += psq;
        }
        total += s;
        double cnt = (double)d->n * frames * plane;
        double m = (double)s / (255.0 * cnt);
        double var = (double)sq / (255.0 * 255.0 * cnt) - m * m;
        double sd = var > 0 ? sqrt(var) : 0;
        mean[c] = (float)m;
        std[c] = sd > 1e-6 ? (float)sd : 1.0f;
    }
    for (size_t k = 0; k < sizeof known_sets / sizeof *known_sets; k++) {
        const known_set *ks = &known_sets[k];
        if (d->frames == 0 && d->n == ks->n && d->c == ks->c && d->h == ks->h && d->w == ks->w &&
            d->classes == ks->classes && total == ks->pixel_sum) {
            mean[0] = ks->mean;
            std[0] = ks->std;
        }
    }
}

void lb_norm_resolve(const lb_norm *n, const lb_dataset *d, float mean[3], float std[3]) {
    if (n && n->set) {
        memcpy(mean, n->mean, 3 * sizeof *mean);
        memcpy(std, n->std, 3 * sizeof *std);
        return;
    }
    lb_dataset_norm(d, mean, std);
}

lb_status lb_norm_check(const lb_norm *n, const char *what) {
    if (!n || !n->set) return LB_OK;
    for (int c = 0; c < 3; c++) {
        /* std <= 0 or non-finite would turn every input into inf/NaN without any other error */
        if (!isfinite(n->mean[c]) || !isfinite(n->std[c]) || !(n->std[c] > 0))
            return lb_error_set(LB_EINVAL,
                                "%s: bad input normalization for channel %d: mean %g, std %g "
                                "(need finite values and std > 0)",
                                what, c, (double)n->mean[c], (double)n->std[c]);
    }
    return LB_OK;
}
