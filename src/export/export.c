/* Writes an exported model directory atomically: every file goes into a fresh temporary directory
 * beside the destination, which is renamed into place only when all of them are complete, so a
 * failed export never leaves a directory that looks finished. The C text itself is emit_c.c's. */
#include "export_internal.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const g_files[] = {"model.h", "model_data.h", "model.c", "main.c",
                                      "lowbit-export.txt"};
#define NFILES (int)(sizeof g_files / sizeof g_files[0])
#define MANIFEST "lowbit-export.txt"

/* Removes the files this exporter writes, then the directory (best effort). */
static void remove_export_dir(const char *dir) {
    char p[8400];
    for (int i = 0; i < NFILES; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, g_files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* A previous export moved aside: everything in it goes (also what was built there). */
static void remove_tree(const char *dir) {
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_manifest(FILE *f, const lb_int_model *m, const lb_export_plan *p,
                          const char *source) {
    fprintf(f,
            "lowbit export\nsource: %s\ninput: %dx%dx%d uint8 pixels\nclasses: %d\n"
            "logit_frac_bits: %d\nstatic buffers: %zu bytes\n"
            "files: model.h model_data.h model.c main.c\n"
            "host:     cc -std=c99 -O2 -Wall -Wextra -Werror -pedantic model.c main.c -o model\n"
            "          ./model t10k-images-idx3-ubyte [N]\n"
            "cortex-m4: arm-none-eabi-gcc -std=c99 -mcpu=cortex-m4 -mthumb -Os -c model.c\n"
            "          arm-none-eabi-size model.o\n",
            source, m->in_c, m->in_h, m->in_w, m->classes, m->logit_frac_bits,
            lb_export_plan_bytes(p));
    return 0;
}

static lb_status write_one(const char *dir, const char *name, const lb_int_model *m,
                           const lb_export_plan *p, const char *source) {
    char path[8400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot create: %s", path, strerror(errno));
    int r;
    if (m->snn && strcmp(name, "model_data.h") == 0)
        r = lb_emit_snn_data_h(f, m, source);
    else if (m->snn && strcmp(name, "model.c") == 0)
        r = lb_emit_snn_c(f, m, source);
    else if (strcmp(name, "model.h") == 0)
        r = lb_emit_model_h(f, m, source);
    else if (strcmp(name, "model_data.h") == 0)
        r = lb_emit_model_data_h(f, m, p, source);
    else if (strcmp(name, "model.c") == 0)
        r = lb_emit_model_c(f, m, p, source);
    else if (strcmp(name, "main.c") == 0)
        r = lb_emit_main_c(f, m);
    else
        r = write_manifest(f, m, p, source);
    if (r != 0) {
        fclose(f);
        return LB_EINVAL; /* message set by the emitter */
    }
    int bad = ferror(f) || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    if (fclose(f) != 0 || bad)
        return lb_error_set(LB_EIO, "%s: write failed: %s", path, strerror(bad ? e : errno));
    return LB_OK;
}

/* 1 if dir holds nothing but . and .. */
static int dir_empty(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(dp)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(dp);
    return n == 0;
}

lb_status lb_int_export(const lb_int_model *m, const char *dir, const char *source,
                        size_t *static_bytes) {
    char d[4096], parent[4096], tmp[8300], old[8300];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof d) return lb_error_set(LB_EINVAL, "export: bad output directory");
    memcpy(d, dir, n + 1);
    while (n > 1 && d[n - 1] == '/') d[--n] = 0;
    const char *slash = strrchr(d, '/');
    const char *base = slash ? slash + 1 : d;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return lb_error_set(LB_EINVAL, "%s: name a new directory to export into", dir);
    if (slash == d)
        snprintf(parent, sizeof parent, "/");
    else if (slash)
        snprintf(parent, sizeof parent, "%.*s", (int)(slash - d), d);
    else
        snprintf(parent, sizeof parent, ".");
    struct stat pst;
    if (stat(parent, &pst) != 0)
        return lb_error_set(LB_EIO, "%s: parent directory '%s' does not exist", dir, parent);
    if (!S_ISDIR(pst.st_mode))
        return lb_error_set(LB_EIO, "%s: '%s' is not a directory", dir, parent);
    if (access(parent, W_OK) != 0)
        return lb_error_set(LB_EIO, "%s: parent directory '%s' is not writable: %s", dir, parent,
                            strerror(errno));
    struct stat st;
    int exists = lstat(d, &st) == 0, empty = 0;
    if (exists) {
        char mf[8300];
        snprintf(mf, sizeof mf, "%s/%s", d, MANIFEST);
        if (!S_ISDIR(st.st_mode))
            return lb_error_set(LB_EIO, "%s: exists and is not a directory", dir);
        if (access(mf, F_OK) != 0) {
            if (!(empty = dir_empty(d)))
                return lb_error_set(LB_EIO,
                                    "%s: exists and is not a lowbit export (no %s); refusing to "
                                    "replace it",
                                    dir, MANIFEST);
        }
    }
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX", parent, base);
    if (!mkdtemp(tmp))
        return lb_error_set(LB_EIO, "%s: cannot create a temporary directory in '%s': %s", dir,
                            parent, strerror(errno));
    lb_export_plan plan;
    memset(&plan, 0, sizeof plan); /* a spiking model's buffers are its own (emit_snn.c) */
    lb_status s = m->snn ? LB_OK : lb_export_plan_make(m, &plan);
    /* the manifest last: a directory with it is complete */
    for (int i = 0; i < NFILES && s == LB_OK; i++) s = write_one(tmp, g_files[i], m, &plan, source);
    if (static_bytes && s == LB_OK) *static_bytes = lb_export_plan_bytes(&plan);
    if (static_bytes && s == LB_OK && m->snn) {
        size_t wb;
        lb_snn_export_bytes(m, &wb, static_bytes);
    }
    lb_export_plan_free(&plan);
    if (s != LB_OK) {
        remove_export_dir(tmp);
        return s;
    }
    chmod(tmp, 0755);
    if (empty && rmdir(d) != 0) {
        int e = errno;
        remove_export_dir(tmp);
        return lb_error_set(LB_EIO, "%s: cannot replace the empty directory: %s", dir, strerror(e));
    }
    if (empty) exists = 0;
    if (exists) {
        /* move the previous export aside, put the new one in place, then delete the old */
        snprintf(old, sizeof old, "%s/.%s.old.XXXXXX", parent, base);
        if (!mkdtemp(old) || rmdir(old) != 0 || rename(d, old) != 0) {
            int e = errno;
            remove_export_dir(tmp);
            return lb_error_set(LB_EIO, "%s: cannot move the previous export aside: %s", dir,
                                strerror(e));
        }
    }
    if (rename(tmp, d) != 0) {
        int e = errno;
        if (exists) rename(old, d);
        remove_export_dir(tmp);
        return lb_error_set(LB_EIO, "%s: cannot rename the export into place: %s", dir,
                            strerror(e));
    }
    if (exists) remove_tree(old);
    return LB_OK;
}

lb_status lb_int_export_bytes(const lb_int_model *m, size_t *weight_bytes,
                              size_t *activation_bytes) {
    if (m->snn) {
        lb_snn_export_bytes(m, weight_bytes, activation_bytes);
        return LB_OK;
    }
    lb_export_plan p;
    lb_status st = lb_export_plan_make(m, &p);
    if (st != LB_OK) return st;
    /* the same sizes emit_c.c writes into the array declarations */
    size_t wb = 0;
    int any_conv = 0, wide = 0;
    for (int i = 0; i < m->nops; i++) {
        const lb_int_op *op = &m->ops[i];
        if (op->kind == LB_IOP_INPUT) wb += 2 * (size_t)op->cin * 256;
        if (op->kind != LB_IOP_CONV) continue;
        any_conv = 1;
        wide |= op->wbits > 8;
        size_t K = (size_t)op->cin / op->groups * op->k * op->k;
        int sb = lb_emit_storage_bits(op->ibits ? op->ibits : op->wbits);
        size_t rows = lb_emit_row_bytes(op); /* sliced: each row at its own width */
        wb += rows ? rows : lb_emit_packed_bytes((size_t)op->cout * K, sb);
        if (op->ibits) wb += 2 * (size_t)op->ntab * ((size_t)1 << op->ibits);
        wb += (size_t)op->cout * (4 + 1 + 8); /* int32 m, signed char s, int64 b */
    }
    size_t ab = p.elems[0] + 2 * p.elems[1] + 4 * p.elems[2];
    if (any_conv) ab += 4 * p.acc + p.wbuf * (wide ? 2 : 1);
    lb_export_plan_free(&p);
    *weight_bytes = wb;
    *activation_bytes = ab;
    return LB_OK;
}
