/* Event folders as a data set of frames: the N-MNIST (Train|Test/<class>/<n>.bin), N-Caltech101
 * (<class>/<n>.bin) and CIFAR10-DVS (<class>/<n>.aedat) layouts, held-out splits, parallel reading
 * and binning. Not the file formats (events.c) nor the binning itself (evbin.c). */
#include "classdir.h"
#include "events_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

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

/* 1 for *.bin, 2 for *.aedat (any case), else 0: the lb_events.format values. */
static int event_kind(const char *n) {
    const char *dot = strrchr(n, '.');
    if (!dot) return 0;
    return !strcasecmp(dot, ".bin") ? LB_EV_BIN : !strcasecmp(dot, ".aedat") ? LB_EV_AEDAT : 0;
}

/* Which formats a split holds: bit LB_EV_BIN and/or LB_EV_AEDAT. */
static int kinds_of(const lb_items *s) {
    int k = 0;
    for (int i = 0; i < s->n; i++) k |= event_kind(s->v[i].file);
    return k;
}

/* DIR/<Name> or DIR/<name>: the first that is a folder, in dst; 0 when neither. */
static int find_split(char *dst, const char *dir, const char *upper, const char *lower) {
    snprintf(dst, LB_PATH_CAP, "%s/%s", dir, upper);
    if (lb_is_dir(dst)) return 1;
    snprintf(dst, LB_PATH_CAP, "%s/%s", dir, lower);
    return lb_is_dir(dst);
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
static lb_status first_error(const lb_item *it, const lb_event_opts *o, uint8_t *dst) {
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
    if (strlen(dir) > LB_PATH_CAP - 64) return lb_error_set(LB_EINVAL, "%s: path too long", dir);

    char root[LB_PATH_CAP], test[LB_PATH_CAP];
    const int split = find_split(root, dir, "Train", "train");
    if (!split) snprintf(root, sizeof root, "%s", dir);
    if (!split || !find_split(test, dir, "Test", "test")) test[0] = 0;

    lb_strs cls;
    lb_items tr = {0}, te = {0};
    if ((st = lb_list_dir(root, NULL, &cls))) return st;
    if (!cls.n) {
        lb_strs_free(&cls);
        return lb_error_set(LB_EFORMAT,
                            "%s: no class folders (expected %s/<class>/*.bin or *.aedat, or "
                            "Train/ and Test/ of them)",
                            root, root);
    }
    st = lb_classdir_collect(root, &cls, event_kind, "*.bin or *.aedat", "no .bin or .aedat files",
                             &tr);
    if (!st && test[0])
        st = lb_classdir_collect(test, &cls, event_kind, "*.bin or *.aedat",
                                 "no .bin or .aedat files", &te);
    const int kinds = kinds_of(&tr) | kinds_of(&te);
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
    lb_items *s = train ? &tr : &te;
    if (!st && !test[0]) {
        if (!train) {
            lb_items t = tr;
            tr = te;
            te = t;
        }
        st = lb_classdir_hold_out(s, cls.n, o.test_split, o.seed, EVDIR_TAG, train);
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
        qsort(s->v, (size_t)s->n, sizeof *s->v, lb_item_cmp);
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
    lb_items_free(&tr);
    lb_items_free(&te);
    lb_strs_free(&cls);
    if (st) lb_dataset_free(out);
    return st;
}
