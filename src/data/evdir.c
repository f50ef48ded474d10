/* Event folders as a data set of frames: the N-MNIST (Train|Test/<class>/<n>.bin), N-Caltech101
 * (<class>/<n>.bin) and CIFAR10-DVS (<class>/<n>.aedat) layouts, held-out splits, parallel reading
 * and binning. Not the file formats (events.c) nor the binning itself (evbin.c). */
#include "events_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define PATH_CAP 4096
#define EVDIR_TAG 0x6576646972ull /* "evdir": the held-out split's stream */

char **lb_names_dup(char *const *names, int n) {
    size_t bytes = (size_t)n * sizeof(char *);
    for (int i = 0; i < n; i++) bytes += strlen(names[i]) + 1;
    char **v = malloc(bytes ? bytes : 1);
    if (!v) return NULL;
    char *p = (char *)(v + n);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(p, names[i], l);
        v[i] = p;
        p += l;
    }
    return v;
}

typedef struct strs {
    char **v;
    int n, cap;
} strs;

static void strs_free(strs *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int strs_push(strs *s, const char *x) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 16;
        char **nv = realloc(s->v, (size_t)nc * sizeof *nv);
        if (!nv) return 0;
        s->v = nv;
        s->cap = nc;
    }
    if (!(s->v[s->n] = strdup(x))) return 0;
    s->n++;
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* 1 for *.bin, 2 for *.aedat (any case), else 0: the lb_events.format values. */
static int event_kind(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot) return 0;
    return !strcasecmp(dot, ".bin") ? LB_EV_BIN : !strcasecmp(dot, ".aedat") ? LB_EV_AEDAT : 0;
}

/* The visible folders (want_dirs) or event files of dir, sorted bytewise. */
static lb_status list_dir(const char *dir, int want_dirs, strs *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return lb_error_set(LB_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char p[PATH_CAP];
    lb_status st = LB_OK;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) {
            st = lb_error_set(LB_EINVAL, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        int ok = want_dirs ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode) && event_kind(e->d_name);
        if (ok && !strs_push(out, e->d_name))
            st = lb_error_set(LB_ENOMEM, "%s: out of memory", dir);
    }
    closedir(d);
    if (st)
        strs_free(out);
    else if (out->n)
        qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return st;
}

typedef struct item {
    char *path;
    const char *file;
    int label;
} item;

typedef struct items {
    item *v;
    int n, cap;
    int kinds; /* bit LB_EV_BIN / LB_EV_AEDAT: which formats were seen */
} items;

static void items_free(items *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i].path);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int items_push(items *s, const char *dir, const char *cls, const char *file, int label) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        item *nv = realloc(s->v, (size_t)nc * sizeof *nv);
        if (!nv) return 0;
        s->v = nv;
        s->cap = nc;
    }
    item *it = &s->v[s->n];
    size_t len = strlen(dir) + strlen(cls) + strlen(file) + 3;
    if (!(it->path = malloc(len))) return 0;
    snprintf(it->path, len, "%s/%s/%s", dir, cls, file);
    it->file = it->path + strlen(dir) + strlen(cls) + 2;
    it->label = label;
    s->kinds |= event_kind(file);
    s->n++;
    return 1;
}

/* File name, then class, as image folders order their samples. */
static int cmp_item(const void *a, const void *b) {
    const item *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : (x->label > y->label) - (x->label < y->label);
}

static lb_status collect(const char *root, const strs *classes, items *out) {
    strs present;
    lb_status st = list_dir(root, 1, &present);
    if (st) return st;
    if (!present.n) {
        strs_free(&present);
        return lb_error_set(
            LB_EFORMAT, "%s: no class folders (expected %s/<class>/*.bin or *.aedat)", root, root);
    }
    for (int i = 0; i < present.n && !st; i++) {
        const char *c = present.v[i];
        char **hit = bsearch(&c, classes->v, (size_t)classes->n, sizeof *classes->v, cmp_str);
        if (!hit) {
            st = lb_error_set(LB_EFORMAT, "%s/%s: class '%s' has no training folder", root, c, c);
            break;
        }
        char p[PATH_CAP];
        snprintf(p, sizeof p, "%s/%s", root, c);
        strs files;
        if ((st = list_dir(p, 0, &files))) break;
        if (!files.n)
            st = lb_error_set(LB_EFORMAT, "%s: empty class folder (no .bin or .aedat files)", p);
        for (int k = 0; k < files.n && !st; k++)
            if (!items_push(out, root, c, files.v[k], (int)(hit - classes->v)))
                st = lb_error_set(LB_ENOMEM, "%s: out of memory", p);
        strs_free(&files);
    }
    strs_free(&present);
    return st;
}

/* imgdir.c's held-out split (docs/data.md) with its own stream: per class, a Fisher-Yates
 * permutation of the class's files in name order, the first round(frac n) to test. */
static lb_status hold_out(items *s, int classes, float frac, uint64_t seed, int train) {
    int *idx = malloc((size_t)s->n * sizeof *idx + 1);
    char *test = calloc((size_t)s->n + 1, 1);
    if (!idx || !test) {
        free(idx);
        free(test);
        return lb_error_set(LB_ENOMEM, "out of memory splitting %d files", s->n);
    }
    for (int c = 0; c < classes; c++) {
        int n = 0;
        for (int i = 0; i < s->n; i++)
            if (s->v[i].label == c) idx[n++] = i;
        lb_rng r;
        lb_rng_derive(&r, seed, EVDIR_TAG, (uint64_t)c);
        for (int i = n - 1; i > 0; i--) {
            int j = (int)lb_rng_below(&r, (uint32_t)i + 1), t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        int nt = (int)(frac * n + 0.5f);
        for (int i = 0; i < nt; i++) test[idx[i]] = 1;
    }
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        if (test[i] == !train)
            s->v[k++] = s->v[i];
        else
            free(s->v[i].path);
    }
    s->n = k;
    free(idx);
    free(test);
    return LB_OK;
}

/* DIR/<Name> or DIR/<name>: the first that is a folder, in dst; 0 when neither. */
static int find_split(char *dst, const char *dir, const char *upper, const char *lower) {
    snprintf(dst, PATH_CAP, "%s/%s", dir, upper);
    if (is_dir(dst)) return 1;
    snprintf(dst, PATH_CAP, "%s/%s", dir, lower);
    return is_dir(dst);
}

static lb_status check_opts(const char *dir, const lb_event_opts *o) {
    if (o->frames < 0 || o->frames > LB_EV_MAX_FRAMES)
        return lb_error_set(LB_EINVAL, "%s: %d event frames: need 1..%d", dir, o->frames,
                            LB_EV_MAX_FRAMES);
    if (o->mode != LB_EVBIN_TIME && o->mode != LB_EVBIN_COUNT)
        return lb_error_set(LB_EINVAL, "%s: event binning mode %d: need time or count", dir,
                            o->mode);
    if (o->h < 0 || o->w < 0 || (!o->h) != (!o->w) || o->h > 4096 || o->w > 4096)
        return lb_error_set(LB_EINVAL, "%s: frame size %dx%d: need both sides in 1..4096", dir,
                            o->h, o->w);
    if (o->sensor_h < 0 || o->sensor_w < 0 || (!o->sensor_h) != (!o->sensor_w))
        return lb_error_set(LB_EINVAL, "%s: sensor %dx%d: give both sides", dir, o->sensor_h,
                            o->sensor_w);
    if (!(o->test_split >= 0 && o->test_split < 1))
        return lb_error_set(LB_EINVAL, "%s: test split %g: need a fraction in [0, 1)", dir,
                            (double)o->test_split);
    return LB_OK;
}

/* The first failing file in sample order, read again on this thread for its message (errors
 * are thread-local), so the error does not depend on the thread count. */
static lb_status first_error(const item *it, const lb_event_opts *o, uint8_t *dst) {
    lb_events ev = {0};
    lb_status st = lb_events_load(it->path, o->sensor_w, o->sensor_h, &ev);
    if (!st) st = lb_events_bin(&ev, o->frames, o->mode, o->h, o->w, dst);
    lb_events_free(&ev);
    if (st) return st;
    return lb_error_set(LB_EIO, "%s: failed to read, then read fine (did the file change?)",
                        it->path);
}

lb_status lb_events_load_dir(const char *dir, int train, const lb_event_opts *opts,
                             lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_events_load_dir: out is NULL");
    memset(out, 0, sizeof *out);
    if (!dir || !dir[0]) return lb_error_set(LB_EINVAL, "lb_events_load_dir: no folder given");
    lb_event_opts o = {0};
    if (opts) o = *opts;
    lb_status st = check_opts(dir, &o);
    if (st) return st;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return lb_error_set(LB_EIO, "%s: cannot open event folder: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return lb_error_set(LB_EIO, "%s: not a directory", dir);
    if (strlen(dir) > PATH_CAP - 64) return lb_error_set(LB_EINVAL, "%s: path too long", dir);

    char root[PATH_CAP], test[PATH_CAP];
    const int split = find_split(root, dir, "Train", "train");
    if (!split) snprintf(root, sizeof root, "%s", dir);
    if (!split || !find_split(test, dir, "Test", "test")) test[0] = 0;

    strs cls;
    items tr = {0}, te = {0};
    if ((st = list_dir(root, 1, &cls))) return st;
    if (!cls.n) {
        strs_free(&cls);
        return lb_error_set(LB_EFORMAT,
                            "%s: no class folders (expected %s/<class>/*.bin or *.aedat, or "
                            "Train/ and Test/ of them)",
                            root, root);
    }
    st = collect(root, &cls, &tr);
    if (!st && test[0]) st = collect(test, &cls, &te);
    const int kinds = tr.kinds | te.kinds;
    if (!st && kinds == (LB_EV_BIN | LB_EV_AEDAT))
        st = lb_error_set(LB_EFORMAT, "%s: mixes .bin and .aedat files (one format per folder)",
                          dir);
    /* The sensor of each shipped layout (docs/events.md); an override replaces it. */
    if (!o.sensor_h) {
        o.sensor_h = kinds == LB_EV_AEDAT ? LB_EV_AEDAT_SIDE : split ? 34 : 180;
        o.sensor_w = kinds == LB_EV_AEDAT ? LB_EV_AEDAT_SIDE : split ? 34 : 240;
    }
    if (!o.h) {
        o.h = o.sensor_h;
        o.w = o.sensor_w;
    }
    if (!o.frames) o.frames = LB_EV_FRAMES_DEFAULT;
    if (!o.test_split) o.test_split = LB_IMG_TEST_SPLIT;
    items *s = train ? &tr : &te;
    if (!st && !test[0]) {
        if (!train) {
            items t = tr;
            tr = te;
            te = t;
        }
        st = hold_out(s, cls.n, o.test_split, o.seed, train);
    }
    if (!st && s->n == 0)
        st = lb_error_set(LB_EFORMAT, "%s: no %s files (held-out fraction %g)",
                          test[0] && !train ? test : root, train ? "training" : "test",
                          (double)o.test_split);
    const size_t per = (size_t)o.frames * 2 * o.h * o.w;
    if (!st && (size_t)s->n > SIZE_MAX / per)
        st = lb_error_set(LB_ENOMEM, "%s: %d samples of %zu bytes do not fit memory", dir, s->n,
                          per);
    if (!st) {
        qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_item);
        out->images = malloc((size_t)s->n * per);
        out->labels = malloc((size_t)s->n * sizeof *out->labels);
        out->class_names = lb_names_dup(cls.v, cls.n);
        if (!out->images || !out->labels || !out->class_names)
            st = lb_error_set(LB_ENOMEM, "%s: cannot allocate %d samples of %d frames %dx%d", dir,
                              s->n, o.frames, o.h, o.w);
    }
    if (!st) {
        int bad = s->n;
#pragma omp parallel reduction(min : bad)
        {
            lb_events ev = {0}; /* per thread, its buffer reused for every file */
#pragma omp for schedule(dynamic, 16)
            for (int i = 0; i < s->n; i++) {
                uint8_t *dst = out->images + (size_t)i * per;
                lb_status e = lb_events_load(s->v[i].path, o.sensor_w, o.sensor_h, &ev);
                if (!e) e = lb_events_bin(&ev, o.frames, o.mode, o.h, o.w, dst);
                out->labels[i] = s->v[i].label;
                if (e) bad = i < bad ? i : bad;
            }
            lb_events_free(&ev);
        }
        if (bad < s->n) st = first_error(&s->v[bad], &o, out->images);
    }
    if (!st) {
        out->n = s->n;
        out->c = 2;
        out->h = o.h;
        out->w = o.w;
        out->frames = o.frames;
        out->classes = cls.n;
    }
    items_free(&tr);
    items_free(&te);
    strs_free(&cls);
    if (st) lb_dataset_free(out);
    return st;
}
