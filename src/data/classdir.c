/* A class-per-folder tree: listings, samples, order and the held-out split shared by the image
 * and event folder loaders (classdir.h). Not their decoding (imgdir.c, evdir.c). */
#include "classdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void lb_strs_free(lb_strs *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

int lb_strs_push(lb_strs *s, const char *x) {
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

int lb_str_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lb_is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

lb_status lb_list_dir(const char *dir, lb_name_filter keep, lb_strs *out) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) return lb_error_set(LB_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    struct dirent *e;
    char p[LB_PATH_CAP];
    lb_status st = LB_OK;
    while (!st && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) {
            st = lb_error_set(LB_EINVAL, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat sb;
        if (stat(p, &sb) != 0) continue; /* a dangling link is not a sample */
        int ok = !keep ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode) && keep(e->d_name);
        if (ok && !lb_strs_push(out, e->d_name))
            st = lb_error_set(LB_ENOMEM, "%s: out of memory", dir);
    }
    closedir(d);
    if (st)
        lb_strs_free(out);
    else if (out->n)
        qsort(out->v, (size_t)out->n, sizeof *out->v, lb_str_cmp);
    return st;
}

void lb_items_free(lb_items *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i].path);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int items_push(lb_items *s, const char *dir, const char *cls, const char *file, int label) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 256;
        lb_item *nv = realloc(s->v, (size_t)nc * sizeof *nv);
        if (!nv) return 0;
        s->v = nv;
        s->cap = nc;
    }
    lb_item *it = &s->v[s->n];
    size_t len = strlen(dir) + strlen(cls) + strlen(file) + 3;
    if (!(it->path = malloc(len))) return 0;
    snprintf(it->path, len, "%s/%s/%s", dir, cls, file);
    it->file = it->path + strlen(dir) + strlen(cls) + 2;
    it->label = label;
    s->n++;
    return 1;
}

int lb_item_cmp(const void *a, const void *b) {
    const lb_item *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : (x->label > y->label) - (x->label < y->label);
}

lb_status lb_classdir_collect(const char *root, const lb_strs *classes, lb_name_filter keep,
                              const char *pattern, const char *empty, lb_items *out) {
    lb_strs present;
    lb_status st = lb_list_dir(root, NULL, &present);
    if (st) return st;
    if (!present.n) {
        lb_strs_free(&present);
        return lb_error_set(LB_EFORMAT, "%s: no class folders (expected %s/<class>/%s)", root, root,
                            pattern);
    }
    for (int i = 0; i < present.n && !st; i++) {
        const char *c = present.v[i];
        char **hit = bsearch(&c, classes->v, (size_t)classes->n, sizeof *classes->v, lb_str_cmp);
        if (!hit) {
            st = lb_error_set(LB_EFORMAT,
                              "%s/%s: class '%s' has no training folder; the training classes "
                              "are the folders of the training split",
                              root, c, c);
            break;
        }
        char p[LB_PATH_CAP];
        snprintf(p, sizeof p, "%s/%s", root, c);
        lb_strs files;
        if ((st = lb_list_dir(p, keep, &files))) break;
        if (!files.n) st = lb_error_set(LB_EFORMAT, "%s: empty class folder (%s)", p, empty);
        for (int k = 0; k < files.n && !st; k++)
            if (!items_push(out, root, c, files.v[k], (int)(hit - classes->v)))
                st = lb_error_set(LB_ENOMEM, "%s: out of memory", p);
        lb_strs_free(&files);
    }
    lb_strs_free(&present);
    return st;
}

lb_status lb_classdir_hold_out(lb_items *s, int classes, float frac, uint64_t seed, uint64_t tag,
                               int train) {
    int *idx = malloc((size_t)s->n * sizeof *idx + 1);
    char *test = calloc((size_t)s->n + 1, 1);
    if (!idx || !test) {
        free(idx);
        free(test);
        return lb_error_set(LB_ENOMEM, "out of memory splitting %d samples", s->n);
    }
    for (int c = 0; c < classes; c++) {
        int n = 0;
        for (int i = 0; i < s->n; i++) /* collect() adds a class's files in name order */
            if (s->v[i].label == c) idx[n++] = i;
        lb_rng r;
        lb_rng_derive(&r, seed, tag, (uint64_t)c);
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
