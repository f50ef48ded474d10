/* Sweeps of chips (issue 12, docs/faults.md "Sweeps"): per fault rate, variability and chip the
 * map, the chip's accuracy before fine-tuning and after each method, one result file per cell
 * (resumable), then the table as CSV and JSON. Not the fine-tuning (finetune.c) nor the plots
 * (scripts/plot_sweep.py, run by the CLI). */
#include "lb_faults.h"
#include "lb_train.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Temporary file, fsync, rename: a reader never sees half a table or half a cell. */
static lb_status write_atomic(const char *path, const char *buf, size_t n) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(buf, 1, n, f) != n || fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return lb_error_set(LB_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    return LB_OK;
}

static lb_status mkdir_p(const char *d) {
    if (mkdir(d, 0777) != 0 && errno != EEXIST)
        return lb_error_set(LB_EIO, "%s: cannot create directory: %s", d, strerror(errno));
    return LB_OK;
}

typedef struct cell {
    double rate, var;
    int chip;
    int method; /* -1: before fine-tuning */
} cell;

static const char *method_of(int m) {
    return m < 0 ? "before" : lb_ft_method_name((lb_ft_method)m);
}

static void cell_name(const cell *k, char *b, size_t cap) {
    snprintf(b, cap, "r%g_v%g_c%d_%s", k->rate, k->var, k->chip, method_of(k->method));
}

static const char *layers_of(int all) {
    return all ? "all" : "body";
}

static const char *enc_of(int twos) {
    return twos ? "twos" : "index";
}

static const char *lsq_enc_of(int signmag) {
    return signmag ? "signmag" : "twos";
}

/* The map file's suffix: the encodings that differ from the defaults (a map drawn for another
 * encoding is never reused). */
static const char *enc_suffix(const lb_sweep_cfg *c) {
    return c->reg_twos ? (c->lsq_signmag ? ".twos.signmag" : ".twos")
                       : (c->lsq_signmag ? ".signmag" : "");
}

/* A finished cell's JSON (NULL when absent or unreadable: then it is redone). */
static cJSON *read_cell(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (j && !cJSON_IsNumber(cJSON_GetObjectItem(j, "accuracy"))) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

/* The map of (rate, var, chip) on disk, drawn when missing (the same seed gives the same file). */
static lb_status ensure_map(const lb_sweep_cfg *c, const cell *k, const char *arch,
                            const lb_flayer_spec *specs, int ns, const char *path) {
    if (access(path, R_OK) == 0) return LB_OK;
    lb_fmap m;
    uint64_t seed = c->ft.seed + (uint64_t)k->chip;
    lb_status st = lb_fmap_create(&m, arch, specs, ns, 0);
    if (st == LB_OK) st = lb_fmap_draw_faults(&m, k->rate, c->sa1_share, seed);
    if (st == LB_OK && k->var > 0) st = lb_fmap_draw_var(&m, c->var_kind, k->var, seed);
    if (st == LB_OK) lb_fmap_spare(&m, !c->all_layers);
    if (st == LB_OK) st = lb_fmap_write(path, &m);
    lb_fmap_free(&m);
    return st;
}

static lb_status run_cell(const lb_sweep_cfg *c, const cell *k, const char *map, const char *name,
                          const char *path) {
    lb_ft_cfg f = c->ft;
    if (snprintf(f.chip, sizeof f.chip, "%s", map) >= (int)sizeof f.chip)
        return lb_error_set(LB_EINVAL, "%s: path too long", map);
    char ck[1100] = "";
    if (k->method < 0) {
        f.eval_only = 1;
    } else {
        f.method = (lb_ft_method)k->method;
        snprintf(ck, sizeof ck, "%s/ckpt/%s.ckpt", c->dir, name);
        int a = snprintf(f.out, sizeof f.out, "%s", ck);
        int b = snprintf(f.metrics, sizeof f.metrics, "%.300s/cells/%.180s.metrics.jsonl", c->dir,
                         name);
        if (a >= (int)sizeof f.out || b >= (int)sizeof f.metrics)
            return lb_error_set(LB_EINVAL, "%s: path too long", c->dir);
    }
    lb_ft_result r;
    lb_status st = lb_ft_run(&f, NULL, NULL, &r);
    if (st != LB_OK) return st;
    if (ck[0] && !c->keep) remove(ck);
    /* an eval-only cell trains nothing: no method's lambda stands in its record (r.lambda is
     * 0 there already) */
    double lam = k->method < 0 ? 0 : (double)lb_ft_cfg_lambda(&f, f.method);
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "{\"rate\":%.17g,\"variability\":%.17g,\"chip\":%d,\"seed\":%llu,"
                     "\"method\":\"%s\",\"accuracy\":%.6f,\"accuracy_before\":%.6f,"
                     "\"changed\":%llu,\"total\":%llu,\"epochs\":%d,\"seconds\":%.2f,"
                     "\"train_limit\":%d,\"test_limit\":%d,\"layers\":\"%s\","
                     "\"reg_encoding\":\"%s\",\"lsq_encoding\":\"%s\",\"chip_forward\":%d,"
                     "\"lr\":%.9g,\"lambda\":%.9g,\"lambda_used\":%.9g,\"batch\":%d}\n",
                     k->rate, k->var, k->chip, (unsigned long long)(c->ft.seed + k->chip),
                     method_of(k->method), (double)r.acc_after, (double)r.acc_before,
                     (unsigned long long)r.changed, (unsigned long long)r.total,
                     k->method < 0 ? 0 : f.epochs, r.seconds, c->ft.train_limit, c->ft.test_limit,
                     layers_of(c->all_layers), enc_of(c->reg_twos), lsq_enc_of(c->lsq_signmag),
                     c->ft.chip_forward, (double)c->ft.lr, lam, (double)r.lambda, c->ft.batch);
    return write_atomic(path, buf, (size_t)n);
}

static lb_status check(const lb_sweep_cfg *c) {
    if (!c->dir[0]) return lb_error_set(LB_EINVAL, "-o DIR is required");
    if (c->nrates < 1 || c->nvars < 1) return lb_error_set(LB_EINVAL, "no rates/variabilities");
    for (int i = 0; i < c->nrates; i++)
        if (!(c->rates[i] >= 0 && c->rates[i] <= 1))
            return lb_error_set(LB_EINVAL, "--rates: %g is outside [0, 1]", c->rates[i]);
    for (int i = 0; i < c->nvars; i++)
        if (!(c->vars[i] >= 0 && isfinite(c->vars[i])))
            return lb_error_set(LB_EINVAL, "--variability: %g is not >= 0", c->vars[i]);
    if (!(c->sa1_share >= 0 && c->sa1_share <= 1))
        return lb_error_set(LB_EINVAL, "--sa1-share must be in [0, 1]");
    if (c->chips < 1 || c->chips > 10000) return lb_error_set(LB_EINVAL, "--chips must be >= 1");
    if (c->ft.epochs < 1) return lb_error_set(LB_EINVAL, "--finetune-epochs must be >= 1");
    for (int m = 0; m < LB_FT_COUNT; m++) {
        int runs = 0;
        for (int k = 0; k < c->nmethods; k++) runs |= c->methods[k] == (lb_ft_method)m;
        if (c->ft.lambda_of[m] > 0 && !runs)
            return lb_error_set(LB_EINVAL, "--lambda names %s, which --methods does not run",
                                lb_ft_method_name((lb_ft_method)m));
    }
    return LB_OK;
}

/* The table from the cell files: one CSV row and one JSON object per cell, point by point. */
static lb_status write_tables(const lb_sweep_cfg *c, const cell *cells, int n, double fault_free) {
    size_t cap = (size_t)n * 160 + 256, len = 0;
    char *csv = malloc(cap);
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    if (!csv || !root || !arr) {
        free(csv);
        cJSON_Delete(root);
        cJSON_Delete(arr);
        return lb_error_set(LB_ENOMEM, "out of memory (sweep tables)");
    }
    len += (size_t)snprintf(csv, cap,
                            "rate,variability,chip,seed,method,accuracy,accuracy_before,changed,"
                            "total,epochs,seconds\n");
    cJSON_AddStringToObject(root, "checkpoint", c->ft.ckpt);
    cJSON_AddNumberToObject(root, "chips", c->chips);
    cJSON_AddNumberToObject(root, "finetune_epochs", c->ft.epochs);
    cJSON_AddNumberToObject(root, "sa1_share", c->sa1_share);
    cJSON_AddStringToObject(root, "var_dist", lb_fvar_name(c->var_kind));
    cJSON_AddStringToObject(root, "layers", layers_of(c->all_layers));
    cJSON_AddStringToObject(root, "reg_encoding", enc_of(c->reg_twos));
    cJSON_AddStringToObject(root, "lsq_encoding", lsq_enc_of(c->lsq_signmag));
    /* the fine-tune's rate, lambda and batch as given (0: finetune's defaults) */
    cJSON_AddNumberToObject(root, "lr", c->ft.lr);
    cJSON_AddNumberToObject(root, "lambda", c->ft.lambda);
    cJSON_AddNumberToObject(root, "lambda_lowbit", lb_ft_cfg_lambda(&c->ft, LB_FT_LOWBIT));
    cJSON_AddNumberToObject(root, "lambda_qfalt", lb_ft_cfg_lambda(&c->ft, LB_FT_QFALT));
    cJSON_AddNumberToObject(root, "batch", c->ft.batch);
    cJSON_AddBoolToObject(root, "chip_forward", c->ft.chip_forward);
    cJSON_AddNumberToObject(root, "fault_free_accuracy", fault_free);
    cJSON_AddItemToObject(root, "cells", arr);
    lb_status st = LB_OK;
    for (int i = 0; i < n && st == LB_OK; i++) {
        char name[256], path[1400];
        cell_name(&cells[i], name, sizeof name);
        snprintf(path, sizeof path, "%s/cells/%s.json", c->dir, name);
        cJSON *j = read_cell(path);
        if (!j) {
            st = lb_error_set(LB_EIO, "%s: missing or unreadable", path);
            break;
        }
#define NUM(k) cJSON_GetNumberValue(cJSON_GetObjectItem(j, k))
        len += (size_t)snprintf(
            csv + len, cap - len, "%g,%g,%d,%.0f,%s,%.6f,%.6f,%.0f,%.0f,%.0f,%.2f\n", cells[i].rate,
            cells[i].var, cells[i].chip, NUM("seed"), method_of(cells[i].method), NUM("accuracy"),
            NUM("accuracy_before"), NUM("changed"), NUM("total"), NUM("epochs"), NUM("seconds"));
#undef NUM
        cJSON_AddItemToArray(arr, j);
    }
    char p[1100];
    if (st == LB_OK) {
        snprintf(p, sizeof p, "%s/sweep.csv", c->dir);
        st = write_atomic(p, csv, len);
    }
    char *js = st == LB_OK ? cJSON_Print(root) : NULL;
    if (st == LB_OK && !js) st = lb_error_set(LB_ENOMEM, "out of memory (sweep.json)");
    if (st == LB_OK) {
        snprintf(p, sizeof p, "%s/sweep.json", c->dir);
        st = write_atomic(p, js, strlen(js));
    }
    free(js);
    free(csv);
    cJSON_Delete(root);
    return st;
}

lb_status lb_sweep_run(const lb_sweep_cfg *c, lb_sweep_fn fn, void *ctx) {
    lb_status st = check(c);
    if (st != LB_OK) return st;
    lb_net *net;
    lb_ckpt_info info;
    if ((st = lb_ckpt_open_model(c->ft.ckpt, 1, 1, &net, &info)) != LB_OK) return st;
    lb_flayer_spec *specs = malloc(LB_FMAX_LAYERS * sizeof *specs);
    int ns = 0;
    st = specs ? lb_fmap_specs_of_net(net, specs, LB_FMAX_LAYERS, &ns)
               : lb_error_set(LB_ENOMEM, "out of memory");
    lb_net_free(net);
    if (st == LB_OK && ns == 0)
        st = lb_error_set(LB_EINVAL,
                          "%s: no coded weights for a chip to hold: its weights are %s (chips "
                          "hold lsq, fixed and reg codes)",
                          c->ft.ckpt,
                          lb_quant_plan_wkind(&info.model.q) == LB_Q_NONE
                              ? "float (unquantized)"
                              : lb_qkind_name(lb_quant_plan_wkind(&info.model.q)));
    if (st == LB_OK && c->reg_twos && lb_fmap_specs_twos(specs, ns) == 0)
        st = lb_error_set(LB_EINVAL,
                          "--reg-encoding twos: %s has no reg-coded layer (LSQ and fixed layers "
                          "store their own encoding)",
                          c->ft.ckpt);
    if (st == LB_OK && c->lsq_signmag && lb_fmap_specs_signmag(specs, ns) == 0)
        st = lb_error_set(LB_EINVAL,
                          "--lsq-encoding signmag: %s has no signed LSQ or fixed layer (reg "
                          "layers store an index or two's complement: --reg-encoding)",
                          c->ft.ckpt);
    int per = 1 + c->nmethods, total = c->nrates * c->nvars * c->chips * per;
    cell *cells = st == LB_OK ? malloc((size_t)total * sizeof *cells) : NULL;
    if (st == LB_OK && !cells) st = lb_error_set(LB_ENOMEM, "out of memory");
    char sub[1100];
    struct stat sb;
    snprintf(sub, sizeof sub, "%s/cells", c->dir);
    if (st == LB_OK && c->collect && (stat(sub, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        st = lb_error_set(LB_EIO,
                          "%s: no such directory (--collect writes the tables of cells that are "
                          "there already)",
                          sub);
    const char *dirs[] = {"", "/cells", "/maps", "/ckpt"};
    for (int i = 0; i < 4 && st == LB_OK; i++) {
        snprintf(sub, sizeof sub, "%s%s", c->dir, dirs[i]);
        st = mkdir_p(sub);
    }
    if (st != LB_OK) goto out;
    int n = 0, healthy_in_grid = 0;
    for (int v = 0; v < c->nvars; v++)
        for (int r = 0; r < c->nrates; r++) {
            /* with no stuck cell and no variability every chip is the same healthy one, and
             * each method's fine-tune of it the same run: one chip there, not c->chips copies */
            int healthy = c->rates[r] == 0 && c->vars[v] == 0;
            healthy_in_grid |= healthy;
            for (int k = 0; k < (healthy ? 1 : c->chips); k++)
                for (int m = -1; m < c->nmethods; m++)
                    cells[n++] =
                        (cell){c->rates[r], c->vars[v], k, m < 0 ? -1 : (int)c->methods[m]};
        }
    double t0 = now_s();
    int computed = 0, missing = 0;
    char first_missing[256] = "";
    lb_sweep_progress p = {0, n, 0, -1, NULL, 0};
    for (int i = 0; i < n; i++) {
        char name[256], path[1400], map[1400];
        cell_name(&cells[i], name, sizeof name);
        snprintf(path, sizeof path, "%s/cells/%s.json", c->dir, name);
        cJSON *j = read_cell(path);
        if (j) { /* finished before: not redone, if it was made with these settings */
#define NUM(k) cJSON_GetNumberValue(cJSON_GetObjectItem(j, k))
            int ep = cells[i].method < 0 ? 0 : c->ft.epochs;
            /* cells from before --layers existed held every layer on the chip */
            const char *ly = cJSON_GetStringValue(cJSON_GetObjectItem(j, "layers"));
            if (!ly) ly = "all";
            /* and before --reg-encoding, the index */
            const char *en = cJSON_GetStringValue(cJSON_GetObjectItem(j, "reg_encoding"));
            if (!en) en = "index";
            /* and before --lsq-encoding, two's complement */
            const char *le = cJSON_GetStringValue(cJSON_GetObjectItem(j, "lsq_encoding"));
            if (!le) le = "twos";
            /* and before the chip was in lowbit's forward, without it; other methods ignore it */
            cJSON *cf = cJSON_GetObjectItem(j, "chip_forward");
            int fwd = cf ? (int)cJSON_GetNumberValue(cf) : 0;
            int want_fwd = cells[i].method == (int)LB_FT_LOWBIT ? c->ft.chip_forward : fwd;
            /* the rate, lambda and batch (0: finetune's defaults); cells from before they were
             * recorded are not checked for them, nor is an eval-only cell */
            cJSON *jl = cJSON_GetObjectItem(j, "lr"), *jm = cJSON_GetObjectItem(j, "lambda"),
                  *jb = cJSON_GetObjectItem(j, "batch"),
                  *ju = cJSON_GetObjectItem(j, "lambda_used");
            double lr = jl ? cJSON_GetNumberValue(jl) : c->ft.lr;
            lb_ft_method fm = cells[i].method < 0 ? LB_FT_LOWBIT : (lb_ft_method)cells[i].method;
            float given = lb_ft_cfg_lambda(&c->ft, fm);
            double lam = jm ? cJSON_GetNumberValue(jm) : given;
            double bat = jb ? cJSON_GetNumberValue(jb) : c->ft.batch;
            /* lambda is compared as used, since a default depends on the chip: cells from before
             * lambda_used was recorded (2026-12-06) ran lowbit's default at LB_FT_LAMBDA on every
             * chip, so an old default cell at a variability point is not today's default */
            double used = ju ? cJSON_GetNumberValue(ju) : lb_ft_lambda(fm, (float)lam, 0);
            double want_used = lb_ft_lambda(fm, given, cells[i].var > 0);
            int same_ft =
                cells[i].method < 0 ||
                ((float)lr == c->ft.lr && (float)used == want_used && (int)bat == c->ft.batch);
            if (NUM("epochs") != ep || NUM("train_limit") != c->ft.train_limit ||
                NUM("test_limit") != c->ft.test_limit || strcmp(ly, layers_of(c->all_layers)) ||
                strcmp(en, enc_of(c->reg_twos)) || strcmp(le, lsq_enc_of(c->lsq_signmag)) ||
                fwd != want_fwd || !same_ft) {
                st = lb_error_set(LB_EINVAL,
                                  "%s: made with other settings (epochs %g, train limit %g, test "
                                  "limit %g, layers %s, reg encoding %s, lsq encoding %s, chip "
                                  "forward %d, lr %g, lambda used %g, batch %g; now %d, %d, %d, "
                                  "%s, %s, %s, %d, %g, %g, %d; lr 0: the default): give another "
                                  "-o DIR or delete that sweep's cells",
                                  path, NUM("epochs"), NUM("train_limit"), NUM("test_limit"), ly,
                                  en, le, fwd, lr, used, bat, ep, c->ft.train_limit,
                                  c->ft.test_limit, layers_of(c->all_layers), enc_of(c->reg_twos),
                                  lsq_enc_of(c->lsq_signmag), want_fwd, (double)c->ft.lr, want_used,
                                  c->ft.batch);
                cJSON_Delete(j);
                goto out;
            }
#undef NUM
            p.acc = (float)cJSON_GetNumberValue(cJSON_GetObjectItem(j, "accuracy"));
            cJSON_Delete(j);
            p.reused++;
        } else if (c->collect) {
            if (!missing++) snprintf(first_missing, sizeof first_missing, "%s", name);
            continue;
        } else {
            cell mk = cells[i];
            mk.method = -1;
            char mname[256];
            cell_name(&mk, mname, sizeof mname);
            mname[strlen(mname) - strlen("_before")] = 0;
            /* the layer and encoding choices are in the name: a map drawn for another one is
             * never reused */
            snprintf(map, sizeof map, "%s/maps/%s.%s%s.lbmap", c->dir, mname,
                     layers_of(c->all_layers), enc_suffix(c));
            if ((st = ensure_map(c, &cells[i], info.model.arch, specs, ns, map)) != LB_OK) goto out;
            if ((st = run_cell(c, &cells[i], map, name, path)) != LB_OK) goto out;
            computed++;
            cJSON *d = read_cell(path);
            p.acc = d ? (float)cJSON_GetNumberValue(cJSON_GetObjectItem(d, "accuracy")) : 0;
            cJSON_Delete(d);
        }
        p.done = i + 1;
        p.cell = name;
        /* the cells left, at this session's mean time per computed cell */
        p.eta_s = computed ? (now_s() - t0) / computed * (n - p.done) : -1;
        if (fn) fn(ctx, &p);
    }
    /* the model on a healthy chip (the cell r0_v0_c0_before, computed when the grid lacks it):
     * the line the goals are measured from, in sweep.json and on the plots */
    double ff = 0;
    {
        cell k0 = {0, 0, 0, -1};
        char name[256], path[1400], map[1400];
        cell_name(&k0, name, sizeof name);
        snprintf(path, sizeof path, "%s/cells/%s.json", c->dir, name);
        cJSON *j = read_cell(path);
        /* in the grid, a missing r0_v0_c0_before was counted above */
        if (!j && c->collect && !healthy_in_grid && !missing++)
            snprintf(first_missing, sizeof first_missing, "%s", name);
        if (missing) {
            st = lb_error_set(LB_EINVAL,
                              "%s/cells: %d cell%s of the grid %s missing (the first: %s); "
                              "--collect computes nothing: copy them from the sweeps that made "
                              "them, or run without --collect",
                              c->dir, missing, missing == 1 ? "" : "s", missing == 1 ? "is" : "are",
                              first_missing);
            cJSON_Delete(j);
            goto out;
        }
        if (!j) {
            snprintf(map, sizeof map, "%s/maps/r0_v0_c0.%s%s.lbmap", c->dir,
                     layers_of(c->all_layers), enc_suffix(c));
            if ((st = ensure_map(c, &k0, info.model.arch, specs, ns, map)) != LB_OK) goto out;
            if ((st = run_cell(c, &k0, map, name, path)) != LB_OK) goto out;
            j = read_cell(path);
        }
        ff = j ? cJSON_GetNumberValue(cJSON_GetObjectItem(j, "accuracy")) : 0;
        cJSON_Delete(j);
    }
    st = write_tables(c, cells, n, ff);
out:
    free(cells);
    free(specs);
    return st;
}
