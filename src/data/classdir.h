/* Private to src/data: a class-per-folder tree as the image-folder (imgdir.c) and event-folder
 * (evdir.c) loaders read it: sorted listings, the samples of a split with their labels, their
 * order, and the seeded held-out split of a folder without a test split. Not a public interface
 * and no file format. */
#ifndef LB_CLASSDIR_H
#define LB_CLASSDIR_H

#include <stdint.h>

#include "lb_core.h"

#define LB_PATH_CAP 4096

typedef struct lb_strs {
    char **v;
    int n, cap;
} lb_strs;

void lb_strs_free(lb_strs *s);
int lb_strs_push(lb_strs *s, const char *x);  /* 0: out of memory */
int lb_str_cmp(const void *a, const void *b); /* qsort/bsearch over char * */
int lb_is_dir(const char *p);

/* 1 for the names of the files a loader reads. */
typedef int (*lb_name_filter)(const char *name);

/* The visible entries of dir that are folders (keep == NULL) or regular files keep() accepts,
 * sorted bytewise (the order depends on neither the file system nor the locale). */
lb_status lb_list_dir(const char *dir, lb_name_filter keep, lb_strs *out);

typedef struct lb_item {
    char *path;       /* root/<class>/<file> */
    const char *file; /* inside path */
    int label;
} lb_item;

typedef struct lb_items {
    lb_item *v;
    int n, cap;
} lb_items;

void lb_items_free(lb_items *s);
/* File name, then class: a tree written from an ordered set with numbered names keeps that
 * set's order, whatever folder each sample is in. */
int lb_item_cmp(const void *a, const void *b);

/* The samples of root/<class>/: every class folder must be one of `classes` (sorted; its index
 * is the label) and hold at least one file keep() accepts. `pattern` ("*.png|jpg") and `empty`
 * ("no .png, .jpg or .jpeg files") word the errors. */
lb_status lb_classdir_collect(const char *root, const lb_strs *classes, lb_name_filter keep,
                              const char *pattern, const char *empty, lb_items *out);
/* Without a test folder: per class, a Fisher-Yates shuffle from (seed, tag, class) of the class's
 * samples in name order, the first round(frac * n) held out. Keeps the split's items. */
lb_status lb_classdir_hold_out(lb_items *s, int classes, float frac, uint64_t seed, uint64_t tag,
                               int train);

#endif
