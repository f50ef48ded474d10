/* `lowbit events info|emulate`: describes an event file; writes a static data set as an event
 * folder through the DVS emulator (docs/events.md). The formats and the emulator live in
 * src/data/; this file parses options, prints and lays out files. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 256 /* images emulated in parallel before their files are written in order */
#define TEST_NOISE (1ull << 32) /* the test split's noise streams start here */

static void usage(void) {
    puts("usage: lowbit events info FILE [--sensor HxW]\n"
         "       lowbit events emulate --data DIR --out OUT [--format bin|aedat] [--limit N]\n"
         "                             [--seed S] [--noise S] [--threshold C] [--threads T]\n"
         "info: format, events, sensor extent, duration and polarity counts of an N-MNIST /\n"
         "  N-Caltech101 .bin or CIFAR10-DVS .aedat file (--sensor: the declared sensor to check\n"
         "  coordinates against; default 304x240 for .bin, 128x128 for .aedat).\n"
         "emulate: every image of DIR (idx, CIFAR or an image folder, both splits) seen by a\n"
         "  simulated DVS during three saccades (docs/events.md), written as OUT/Train|Test/\n"
         "  <class>/<n>.bin (N-MNIST layout, default) or OUT/<class>/<n>.aedat (CIFAR10-DVS\n"
         "  layout, training then test images). Written into OUT.tmp, renamed to OUT at the end.\n"
         "  --limit N     the first N images of each split\n"
         "  --seed S      threshold-noise seed (default 1); --noise S relative threshold std\n"
         "                (default 0: none); --threshold C contrast per event (default 0.2)");
}

static void parse_hw(const char *cmd, const char *opt, const char *v, int *h, int *w) {
    char *end;
    long a = strtol(v, &end, 10), b = a;
    if (end != v && *end == 'x') b = strtol(end + 1, &end, 10);
    if (*end || a < 1 || b < 1 || a > 4096 || b > 4096)
        cli_die(2, cmd, "%s takes HxW or N (1..4096), got '%s'", opt, v);
    *h = (int)a;
    *w = (int)b;
}

static int events_info(int argc, char **argv) {
    const char *cmd = "events info", *file = NULL;
    int sh = 0, sw = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            return 0;
        }
        if (!strcmp(o, "--sensor"))
            parse_hw(cmd, o, cli_value(cmd, argc, argv, &i), &sh, &sw);
        else if (o[0] == '-')
            cli_die(2, cmd, "unknown option '%s' (see lowbit events --help)", o);
        else if (file)
            cli_die(2, cmd, "one file at a time ('%s' and '%s')", file, o);
        else
            file = o;
    }
    if (!file) cli_die(2, cmd, "FILE is required (--help)");
    lb_events e = {0};
    if (lb_events_load(file, sw, sh, &e) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    int mx = 0, my = 0;
    size_t on = 0;
    int64_t t0 = e.ev[0].t, t1 = e.ev[0].t;
    for (size_t i = 0; i < e.n; i++) {
        const lb_event *v = &e.ev[i];
        mx = v->x > mx ? v->x : mx;
        my = v->y > my ? v->y : my;
        on += v->p;
        t0 = v->t < t0 ? v->t : t0;
        t1 = v->t > t1 ? v->t : t1;
    }
    printf("%s\n", file);
    printf("  format:    %s\n", e.format == LB_EV_BIN ? "N-MNIST/N-Caltech101 .bin (5-byte records)"
                                                      : "CIFAR10-DVS .aedat (AEDAT 2.0)");
    printf("  events:    %zu (ON %zu, OFF %zu)", e.n, on, e.n - on);
    if (e.format == LB_EV_BIN) printf(", %zu timestamp-overflow markers", e.marks);
    printf("\n  extent:    x 0..%d, y 0..%d within the sensor's x 0..%d, y 0..%d\n", mx, my,
           e.w - 1, e.h - 1);
    printf("  time:      %lld..%lld us, duration %.3f ms\n", (long long)t0, (long long)t1,
           (double)(t1 - t0) / 1000.0);
    lb_events_free(&e);
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

typedef struct emu_run {
    const char *cmd, *tmp;
    int format, tty;
    long done, total;
    double t_start;
    int last_pct;
} emu_run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every failure after OUT.tmp exists removes it, so nothing half-written stays behind. */
_Noreturn static void emu_die(const emu_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
_Noreturn static void emu_die(const emu_run *r, const char *fmt, ...) {
    char m[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    nftw(r->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    cli_die(1, r->cmd, "%s (%s removed)", m, r->tmp);
}

static void emu_mkdir(const emu_run *r, const char *p) {
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        emu_die(r, "%s: cannot create folder: %s", p, strerror(errno));
}

static void progress(emu_run *r) {
    const double el = now_s() - r->t_start;
    const int pct = (int)(100 * r->done / r->total);
    if (!r->tty && r->done < r->total && pct / 10 == r->last_pct / 10) return;
    r->last_pct = pct;
    char eta[32] = "?";
    if (r->done > 0) {
        int t = (int)(el * (double)(r->total - r->done) / (double)r->done + 0.5);
        snprintf(eta, sizeof eta, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    }
    fprintf(stderr, "%semulate: %ld/%ld images (%d%%)  ETA %s%s", r->tty ? "\r\033[K" : "", r->done,
            r->total, pct, eta, r->tty && r->done < r->total ? "" : "\n");
}

/* Folder names of the classes: the data set's names, else the label in decimal, zero-padded so
 * that names sort (bytewise, as the event loader sorts them) in label order. */
static void class_name(const lb_dataset *d, int k, char *dst, size_t cap) {
    if (d->class_names) {
        snprintf(dst, cap, "%s", d->class_names[k]);
        return;
    }
    int digits = 1;
    for (int c = d->classes - 1; c >= 10; c /= 10) digits++;
    if (snprintf(dst, cap, "%0*d", digits, k) >= (int)cap) dst[0] = 0; /* cannot: < 11 digits */
}

/* One split into root/<class>/<first + i>.<ext>, in chunks emulated in parallel; image i draws
 * its threshold noise from stream noise + i (so the splits' streams differ). */
static void emulate_split(emu_run *r, const lb_dataset *d, int n, const char *root, long first,
                          uint64_t noise, int width, const lb_dvs_opts *o) {
    char p[4200], cls[256];
    emu_mkdir(r, root);
    for (int k = 0; k < d->classes; k++) {
        class_name(d, k, cls, sizeof cls);
        snprintf(p, sizeof p, "%s/%s", root, cls);
        emu_mkdir(r, p);
    }
    static lb_events ev[CHUNK]; /* buffers reused chunk after chunk */
    const size_t per = (size_t)d->c * d->h * d->w;
    const char *ext = r->format == LB_EV_BIN ? "bin" : "aedat";
    for (int c0 = 0; c0 < n; c0 += CHUNK) {
        const int m = n - c0 < CHUNK ? n - c0 : CHUNK;
        int bad = m;
#pragma omp parallel for schedule(dynamic, 4) reduction(min : bad)
        for (int j = 0; j < m; j++)
            if (lb_dvs_emulate(d->images + (size_t)(c0 + j) * per, d->c, d->h, d->w, o,
                               noise + (uint64_t)(c0 + j), &ev[j]) != LB_OK)
                bad = j < bad ? j : bad;
        if (bad < m) { /* again here for the message (errors are per thread) */
            lb_dvs_emulate(d->images + (size_t)(c0 + bad) * per, d->c, d->h, d->w, o,
                           noise + (uint64_t)(c0 + bad), &ev[bad]);
            emu_die(r, "%s", lb_error_msg());
        }
        for (int j = 0; j < m; j++) {
            class_name(d, d->labels[c0 + j], cls, sizeof cls);
            if (snprintf(p, sizeof p, "%s/%s/%0*ld.%s", root, cls, width, first + c0 + j, ext) >=
                (int)sizeof p)
                emu_die(r, "%s/%s: path too long", root, cls);
            if (lb_events_write(p, &ev[j], r->format) != LB_OK) emu_die(r, "%s", lb_error_msg());
        }
        r->done += m;
        progress(r);
    }
    for (int j = 0; j < CHUNK; j++) lb_events_free(&ev[j]);
}

static int events_emulate(int argc, char **argv) {
    const char *cmd = "events emulate", *data = NULL, *out = NULL;
    int format = LB_EV_BIN, limit = 0, threads = 0;
    lb_dvs_opts o = {0};
    o.seed = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!strcmp(a, "--data"))
            data = cli_value(cmd, argc, argv, &i);
        else if (!strcmp(a, "--out") || !strcmp(a, "-o"))
            out = cli_value(cmd, argc, argv, &i);
        else if (!strcmp(a, "--format")) {
            const char *v = cli_value(cmd, argc, argv, &i);
            if (!strcmp(v, "bin"))
                format = LB_EV_BIN;
            else if (!strcmp(v, "aedat"))
                format = LB_EV_AEDAT;
            else
                cli_die(2, cmd, "--format takes bin or aedat, got '%s'", v);
        } else if (!strcmp(a, "--limit"))
            limit = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 1, 1 << 30);
        else if (!strcmp(a, "--seed"))
            o.seed = (uint64_t)cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 0, 1L << 31);
        else if (!strcmp(a, "--noise"))
            o.noise = cli_float(cmd, a, cli_value(cmd, argc, argv, &i), 0, 1);
        else if (!strcmp(a, "--threshold"))
            o.threshold = cli_float(cmd, a, cli_value(cmd, argc, argv, &i), 0.01, 10);
        else if (!strcmp(a, "--threads"))
            threads = cli_int(cmd, a, cli_value(cmd, argc, argv, &i), 1, 1024);
        else
            cli_die(2, cmd, "unknown option '%s' (see lowbit events --help)", a);
    }
    if (!data || !out) cli_die(2, cmd, "--data DIR and --out OUT are required (--help)");
    if (threads) lb_threads_set(threads);
    struct stat sb;
    if (stat(out, &sb) == 0) cli_die(1, cmd, "%s: already exists (remove it or name another)", out);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp)
        cli_die(2, cmd, "%s: path too long", out);
    if (stat(tmp, &sb) == 0)
        cli_die(1, cmd, "%s: exists, left by an interrupted run? remove it first", tmp);

    lb_dataset sp[2];
    for (int s = 0; s < 2; s++)
        if (lb_dataset_load_dir(data, s == 0, &sp[s]) != LB_OK)
            cli_die(1, cmd, "%s", lb_error_msg());
    if (sp[0].c != 1 && sp[0].c != 3)
        cli_die(1, cmd, "%s: %d channels (1 or 3 needed)", data, sp[0].c);
    int n[2];
    for (int s = 0; s < 2; s++) n[s] = limit && limit < sp[s].n ? limit : sp[s].n;
    emu_run r = {cmd, tmp, format, isatty(2), 0, (long)n[0] + n[1], now_s(), -1};
    if (mkdir(tmp, 0755) != 0)
        cli_die(1, cmd, "%s: cannot create folder: %s", tmp, strerror(errno));
    int width = 5;
    for (long k = 100000; k <= r.total; k *= 10) width++;
    char root[4200];
    if (format == LB_EV_BIN) { /* N-MNIST: each split its own tree, numbered from 0 */
        for (int s = 0; s < 2; s++) {
            snprintf(root, sizeof root, "%s/%s", tmp, s == 0 ? "Train" : "Test");
            emulate_split(&r, &sp[s], n[s], root, 0, s == 0 ? 0 : TEST_NOISE, width, &o);
        }
    } else { /* CIFAR10-DVS: one tree; test images numbered after the training images */
        emulate_split(&r, &sp[0], n[0], tmp, 0, 0, width, &o);
        emulate_split(&r, &sp[1], n[1], tmp, n[0], TEST_NOISE, width, &o);
    }
    if (rename(tmp, out) != 0)
        emu_die(&r, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    printf("events emulate: %ld images of %dx%d -> %s (%s layout, sensor %dx%d)\n", r.total,
           sp[0].h, sp[0].w, out, format == LB_EV_BIN ? "N-MNIST" : "CIFAR10-DVS", sp[0].h + 6,
           sp[0].w + 6);
    for (int s = 0; s < 2; s++) lb_dataset_free(&sp[s]);
    return 0;
}

int cmd_events(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage();
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "info")) return events_info(argc - 1, argv + 1);
    if (!strcmp(argv[0], "emulate")) return events_emulate(argc - 1, argv + 1);
    cli_die(2, "events", "unknown subcommand '%s' (info, emulate)", argv[0]);
}
