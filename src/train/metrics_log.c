/* The trainer's metrics JSON lines: one per epoch and one per collapse event (docs/robust.md).
 * Not the scale trajectories (scales_log.c) nor a JSON library: a fixed record, appended. */
#include "train_internal.h"
#include "watch.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A JSON number, or null for NaN/Inf (a run whose every step was skipped has no loss). */
static void json_num(FILE *f, const char *key, double v) {
    if (isfinite(v))
        fprintf(f, ",\"%s\":%.6f", key, v);
    else
        fprintf(f, ",\"%s\":null", key);
}

lb_status lb_metrics_append_epoch(const char *path, const lb_train_cfg *c, const lb_progress *p,
                                  int collapses, long skipped, const char *extra) {
    FILE *f = fopen(path, "a");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot append metrics: %s", path, strerror(errno));
    fprintf(f,
            "{\"epoch\":%d,\"epochs\":%d,\"model\":\"%s\",\"quant\":\"%s\",\"wbits\":%d,"
            "\"abits\":%d",
            p->epoch, p->epochs, c->model.arch, lb_qkind_name(c->model.q.kind), c->model.q.wbits,
            c->model.q.abits);
    json_num(f, "train_loss", p->loss);
    json_num(f, "train_acc", p->acc);
    json_num(f, "test_loss", p->test_loss);
    json_num(f, "test_acc", p->test_acc);
    fprintf(f,
            ",\"img_per_s\":%.1f,\"epoch_s\":%.2f,\"lr\":%.6g,\"collapse_warnings\":%d,"
            "\"skipped_steps\":%ld%s%s}\n",
            p->img_per_s, p->epoch_s, p->lr, collapses, skipped,
            p->float_phase ? ",\"float_phase\":true" : "", extra);
    if (fclose(f) != 0) return lb_error_set(LB_EIO, "%s: write failed: %s", path, strerror(errno));
    return LB_OK;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
    fputc('"', f);
}

/* Reports the watch's pending events: one metrics line each, then the progress callback. */
lb_status lb_metrics_drain_events(lb_watch *w, const char *metrics, int epoch, lb_progress_fn fn,
                                  void *ctx) {
    for (int i = 0; i < w->n; i++) {
        const lb_collapse_event *e = &w->ev[i];
        FILE *f = fopen(metrics, "a");
        if (!f)
            return lb_error_set(LB_EIO, "%s: cannot append metrics: %s", metrics, strerror(errno));
        fprintf(f, "{\"event\":\"collapse\",\"kind\":\"%s\",\"epoch\":%d,\"step\":%ld,\"layer\":",
                lb_collapse_kind_name(e->kind), epoch, e->step);
        json_str(f, e->layer);
        fputs(",\"message\":", f);
        json_str(f, e->message);
        fputs("}\n", f);
        if (fclose(f) != 0)
            return lb_error_set(LB_EIO, "%s: write failed: %s", metrics, strerror(errno));
        if (fn) {
            lb_progress p = {0};
            p.epoch = epoch;
            p.note = e->message;
            p.warning = 1;
            fn(ctx, &p);
        }
    }
    w->n = 0;
    return LB_OK;
}
