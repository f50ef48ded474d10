/* The data a model reads: what lb_dataset_load_dir_opts gives, except for a spiking model with
 * event input (--encoding events), which reads an event folder binned into its T frames, or a
 * static set turned into events by the DVS emulator (docs/events.md, docs/snn.md). Not the
 * readers themselves (src/data). */
#include "train_internal.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcasecmp(s + n - m, suf) == 0;
}

/* 1 when some class folder of dir (or of dir/Train, dir/train) holds a .bin or .aedat file. */
static int events_folder(const char *dir) {
    static const char *const sub[] = {"", "/Train", "/train"};
    for (int s = 0; s < 3; s++) {
        char top[1200];
        snprintf(top, sizeof top, "%s%s", dir, sub[s]);
        DIR *d = opendir(top);
        if (!d) continue;
        int found = 0;
        for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
            if (e->d_name[0] == '.') continue;
            char cls[1500];
            snprintf(cls, sizeof cls, "%s/%s", top, e->d_name);
            DIR *c = opendir(cls);
            if (!c) continue;
            for (struct dirent *f; !found && (f = readdir(c)) != NULL;)
                found = has_suffix(f->d_name, ".bin") || has_suffix(f->d_name, ".aedat");
            closedir(c);
        }
        closedir(d);
        if (found) return 1;
    }
    return 0;
}

lb_status lb_model_data_load(const lb_model_cfg *m, const char *dir, int train,
                             const lb_image_opts *img, uint64_t seed, int limit, lb_dataset *out) {
    memset(out, 0, sizeof *out);
    int events = lb_model_reads_events(m);
    if (!events) return lb_dataset_load_dir_opts(dir, train, img, out);
    lb_event_opts eo = {0};
    eo.frames = m->snn.timesteps;
    eo.mode = LB_EVBIN_TIME;
    eo.h = img ? img->h : 0;
    eo.w = img ? img->w : 0;
    eo.test_split = img ? img->test_split : 0;
    eo.seed = seed;
    if (events_folder(dir)) return lb_events_load_dir(dir, train, &eo, out);
    /* a static set: the DVS emulator's events of every image (seeded, deterministic) */
    lb_dataset st;
    lb_status s = lb_dataset_load_dir_opts(dir, train, NULL, &st);
    if (s != LB_OK) return s;
    if (st.c != 1 && st.c != 3) {
        lb_dataset_free(&st);
        return lb_error_set(LB_EINVAL, "%s: not images to emulate events from", dir);
    }
    if (limit > 0 && limit < st.n) st.n = limit; /* only what the run reads is emulated */
    lb_dvs_opts dv = {0};
    dv.seed = seed;
    lb_event_opts bo = eo;
    bo.h = bo.w = 0; /* the emulated sensor's own size */
    s = lb_dvs_dataset(&st, &dv, &bo, out);
    lb_dataset_free(&st);
    return s;
}
