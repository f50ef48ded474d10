/* --log-scales: one JSON line per logging step with every quantizer's scales, appended to the run's
 * metrics file (docs/quantizers.md, "Scale trajectories"); `lowbit plot scales` reads them. Not the
 * per-epoch metrics line (train.c) and not a plotter. */
#include "train_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A JSON array of n floats from f(q, c); %.9g keeps a float exact. */
static void arr(FILE *f, const char *key, const lb_quant *q, int n, int learned) {
    fprintf(f, ",\"%s\":[", key);
    for (int c = 0; c < n; c++) {
        double v = learned ? q->param[c] : log2((double)lb_quant_step(q, c));
        if (isfinite(v))
            fprintf(f, "%s%.9g", c ? "," : "", v);
        else
            fprintf(f, "%snull", c ? "," : "");
    }
    fputc(']', f);
}

static void one(FILE *f, int *first, const lb_node *d, const lb_quant *q, const char *side) {
    lb_qkind k = q->cfg.kind;
    if (k == LB_Q_NONE || lb_quant_step(q, 0) == 0.0f) return; /* no step: learned reg levels */
    fprintf(f, "%s{\"layer\":\"%s\",\"q\":\"%s\",\"kind\":\"%s\",\"po2\":%d", *first ? "" : ",",
            d->name, side, lb_qkind_name(k), k == LB_Q_LSQ ? q->cfg.po2 : lb_qkind_is_po2x(k));
    *first = 0;
    arr(f, "log2_step", q, q->ch, 0);
    if (k == LB_Q_GRAD_PO2) arr(f, "e", q, q->ch, 1); /* the learned log2 scale */
    if (k == LB_Q_LSQ) arr(f, "s", q, q->ch, 1);      /* the learned step (before po2) */
    fputc('}', f);
}

lb_status lb_scales_append(const char *path, const lb_net *n, int epoch, long step) {
    FILE *f = fopen(path, "a");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot append scales: %s", path, strerror(errno));
    fprintf(f, "{\"event\":\"scales\",\"epoch\":%d,\"step\":%ld,\"layers\":[", epoch, step);
    int first = 1;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        one(f, &first, d, &d->wq, "w");
        one(f, &first, d, &d->aq, "a");
    }
    fputs("]}\n", f);
    if (fclose(f) != 0) return lb_error_set(LB_EIO, "%s: write failed: %s", path, strerror(errno));
    return LB_OK;
}
