/* Image folders as a data set: walking DIR/{train,test}/<class>/ (or DIR/<class>/ with a held-out
 * fraction), choosing the default size and channels, decoding every image once into the uint8
 * tensor. Not the decoders or the resampling (image.c). */
#include "lb_data.h"
#include "classdir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot &&
           (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* The layout of a folder: root holding the training classes, and the test root ("" when the
 * test split is held out of root). */
typedef struct layout {
    char root[LB_PATH_CAP], test[LB_PATH_CAP];
} layout;

static lb_status find_layout(const char *dir, layout *L) {
    if (strlen(dir) > LB_PATH_CAP - 16) return lb_error_set(LB_EINVAL, "%s: path too long", dir);
    snprintf(L->root, sizeof L->root, "%s/train", dir);
    if (lb_is_dir(L->root)) {
        snprintf(L->test, sizeof L->test, "%s/test", dir);
        if (!lb_is_dir(L->test)) L->test[0] = 0;
    } else {
        snprintf(L->root, sizeof L->root, "%s", dir);
        L->test[0] = 0;
    }
    return LB_OK;
}

int lb_imgdir_detect(const char *dir) {
    layout L;
    if (!dir || find_layout(dir, &L) != LB_OK) return 0;
    if (L.root[strlen(dir)]) return 1; /* DIR/train/: an image folder, possibly a broken one */
    lb_strs cls;
    if (lb_list_dir(L.root, NULL, &cls) != LB_OK) return 0;
    int n = cls.n;
    lb_strs_free(&cls);
    return n > 0;
}

/* Class names go into checkpoint metadata, a JSON string that other tools (Python's safetensors)
 * parse strictly: only well-formed UTF-8 is accepted. */
static int utf8_ok(const unsigned char *p) {
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xe0) == 0xc0 ? 1
                : (*p & 0xf0) == 0xe0 ? 2
                : (*p & 0xf8) == 0xf0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *p < 0xc2) || *p > 0xf4) return 0; /* overlong, > U+10FFFF */
        for (int k = 1; k <= n; k++)
            if ((p[k] & 0xc0) != 0x80) return 0;
        /* overlong 3- and 4-byte forms, UTF-16 surrogates, past U+10FFFF */
        if ((*p == 0xe0 && p[1] < 0xa0) || (*p == 0xed && p[1] >= 0xa0) ||
            (*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] >= 0x90))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* Errors are set per thread (lb_error_set is thread-local): the first failing file in sample
 * order is read again on the calling thread for its message, so the error is the same for any
 * thread count. c == 0: a header-only probe; else a decode and conversion into dst. */
static lb_status first_error(const char *path, int c, int h, int w, uint8_t *dst) {
    lb_image im;
    lb_status st = lb_image_load(path, c == 0, &im);
    if (st == LB_OK && c) st = lb_image_convert(&im, c, h, w, dst);
    lb_image_free(&im);
    if (st != LB_OK) return st;
    return lb_error_set(LB_EIO, "%s: failed to read, then read fine (did the file change?)", path);
}

typedef struct size_count {
    int h, w;
} size_count;

static int cmp_size(const void *a, const void *b) {
    const size_count *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return (x->w > y->w) - (x->w < y->w);
}

/* Default size and channels from the headers of every image (both splits, so that training and
 * test get the same choice). */
static lb_status probe_defaults(const lb_items *all, int *h, int *w, int *c) {
    size_count *sz = malloc((size_t)all->n * sizeof *sz);
    if (!sz) return lb_error_set(LB_ENOMEM, "out of memory probing %d images", all->n);
    int colour = 0, bad = all->n;
#pragma omp parallel for schedule(dynamic, 64) reduction(| : colour) reduction(min : bad)
    for (int i = 0; i < all->n; i++) {
        lb_image im;
        if (lb_image_load(all->v[i].path, 1, &im) != LB_OK) {
            bad = i < bad ? i : bad;
            continue;
        }
        sz[i].h = im.h;
        sz[i].w = im.w;
        colour |= im.c == 3;
    }
    if (bad < all->n) {
        free(sz);
        return first_error(all->v[bad].path, 0, 0, 0, NULL);
    }
    qsort(sz, (size_t)all->n, sizeof *sz, cmp_size);
    int best = 0, bestn = 0;
    for (int i = 0; i < all->n;) {
        int j = i;
        while (j < all->n && !cmp_size(&sz[i], &sz[j])) j++;
        long area = (long)sz[i].h * sz[i].w, barea = (long)sz[best].h * sz[best].w;
        if (j - i > bestn || (j - i == bestn && area > barea)) {
            best = i;
            bestn = j - i;
        }
        i = j;
    }
    if (!*h) {
        *h = sz[best].h;
        *w = sz[best].w;
    }
    if (!*c) *c = colour ? 3 : 1;
    free(sz);
    return LB_OK;
}

/* class_names: one block, the pointer array followed by the strings. */
static char **names_block(const lb_strs *cls) {
    size_t bytes = (size_t)cls->n * sizeof(char *);
    for (int i = 0; i < cls->n; i++) bytes += strlen(cls->v[i]) + 1;
    char **v = malloc(bytes);
    if (!v) return NULL;
    char *p = (char *)(v + cls->n);
    for (int i = 0; i < cls->n; i++) {
        size_t l = strlen(cls->v[i]) + 1;
        memcpy(p, cls->v[i], l);
        v[i] = p;
        p += l;
    }
    return v;
}

lb_status lb_imgdir_load(const char *dir, int train, const lb_image_opts *opts, lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_imgdir_load: out is NULL");
    memset(out, 0, sizeof *out);
    lb_image_opts o = {0};
    if (opts) o = *opts;
    if (!dir) return lb_error_set(LB_EINVAL, "lb_imgdir_load: no folder given");
    if (o.h < 0 || o.w < 0 || (!o.h) != (!o.w) || o.h > 4096 || o.w > 4096)
        return lb_error_set(LB_EINVAL, "%s: image size %dx%d: need both sides in 1..4096", dir, o.h,
                            o.w);
    if (o.c != 0 && o.c != 1 && o.c != 3)
        return lb_error_set(LB_EINVAL, "%s: %d channels: need 1 (grey) or 3 (RGB)", dir, o.c);
    if (!(o.test_split >= 0 && o.test_split < 1))
        return lb_error_set(LB_EINVAL, "%s: test split %g: need a fraction in [0, 1)", dir,
                            (double)o.test_split);
    if (o.test_split == 0) o.test_split = LB_IMG_TEST_SPLIT;
    layout L;
    lb_status st = find_layout(dir, &L);
    if (st) return st;
    lb_strs cls;
    lb_items tr = {0}, te = {0};
    if ((st = lb_list_dir(L.root, NULL, &cls))) return st;
    if (!cls.n) {
        lb_strs_free(&cls);
        return lb_error_set(LB_EFORMAT, "%s: no class folders (expected %s/<class>/*.png|jpg)",
                            L.root, L.root);
    }
    for (int i = 0; i < cls.n; i++)
        if (!utf8_ok((const unsigned char *)cls.v[i])) {
            st = lb_error_set(LB_EFORMAT,
                              "%s/%s: class folder name is not UTF-8 (it is recorded in the "
                              "checkpoint as JSON): rename it",
                              L.root, cls.v[i]);
            lb_strs_free(&cls);
            return st;
        }
    st = lb_classdir_collect(L.root, &cls, is_image_name, "*.png|jpg",
                             "no .png, .jpg or .jpeg files", &tr);
    if (!st && L.test[0])
        st = lb_classdir_collect(L.test, &cls, is_image_name, "*.png|jpg",
                                 "no .png, .jpg or .jpeg files", &te);
    if (!st && !o.h) {
        lb_items all = tr; /* both splits, borrowed: not freed here */
        if (te.n) {
            all.v = malloc((size_t)(tr.n + te.n) * sizeof *all.v);
            if (!all.v)
                st = lb_error_set(LB_ENOMEM, "%s: out of memory", dir);
            else {
                memcpy(all.v, tr.v, (size_t)tr.n * sizeof *tr.v);
                memcpy(all.v + tr.n, te.v, (size_t)te.n * sizeof *te.v);
                all.n = tr.n + te.n;
            }
        }
        if (!st) st = probe_defaults(&all, &o.h, &o.w, &o.c);
        if (te.n) free(all.v);
    } else if (!st && !o.c) {
        int h = 1, w = 1; /* size given: only the channels to find */
        st = probe_defaults(&tr, &h, &w, &o.c);
        if (!st && o.c == 1 && te.n) st = probe_defaults(&te, &h, &w, &o.c);
    }
    lb_items *s = train ? &tr : &te;
    if (!st && !L.test[0]) {
        if (!train) { /* held out of the training folders */
            lb_items t = tr;
            tr = te;
            te = t;
        }
        st = lb_classdir_hold_out(s, cls.n, o.test_split, o.seed, 0x696d67646972ull /* "imgdir" */,
                                  train);
    }
    if (!st && s->n == 0 && train)
        st = lb_error_set(LB_EFORMAT, "%s: no training images left after holding out %g", L.root,
                          (double)o.test_split);
    if (!st && s->n == 0)
        st = lb_error_set(LB_EFORMAT, "%s: no test images (the held-out fraction is %g)",
                          L.test[0] ? L.test : L.root, (double)o.test_split);
    size_t per = (size_t)o.c * o.h * o.w;
    if (!st && (size_t)s->n > SIZE_MAX / per)
        st =
            lb_error_set(LB_ENOMEM, "%s: %d images of %zu bytes do not fit memory", dir, s->n, per);
    if (!st) {
        qsort(s->v, (size_t)s->n, sizeof *s->v, lb_item_cmp);
        out->images = malloc((size_t)s->n * per);
        out->labels = malloc((size_t)s->n * sizeof *out->labels);
        out->class_names = names_block(&cls);
        if (!out->images || !out->labels || !out->class_names)
            st = lb_error_set(LB_ENOMEM, "%s: cannot allocate %d images of %dx%dx%d", dir, s->n,
                              o.c, o.h, o.w);
    }
    if (!st) { /* decoding dominates start-up: in parallel, each image into its own slot */
        int bad = s->n;
#pragma omp parallel for schedule(dynamic, 16) reduction(min : bad)
        for (int i = 0; i < s->n; i++) {
            lb_image im;
            uint8_t *dst = out->images + (size_t)i * per;
            lb_status e = lb_image_load(s->v[i].path, 0, &im);
            if (e == LB_OK) e = lb_image_convert(&im, o.c, o.h, o.w, dst);
            lb_image_free(&im);
            out->labels[i] = s->v[i].label;
            if (e != LB_OK) bad = i < bad ? i : bad;
        }
        if (bad < s->n) st = first_error(s->v[bad].path, o.c, o.h, o.w, out->images);
    }
    if (!st) {
        out->n = s->n;
        out->c = o.c;
        out->h = o.h;
        out->w = o.w;
        out->classes = cls.n;
    }
    lb_items_free(&tr);
    lb_items_free(&te);
    lb_strs_free(&cls);
    if (st) lb_dataset_free(out);
    return st;
}
