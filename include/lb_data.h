/* lb_data: data sets held as uint8 images in memory (idx for MNIST/Fashion-MNIST, gzip or raw;
 * CIFAR-10/100 binary), augmentation, and a loader that prepares the next batch on a background
 * thread while the current one computes. Every random choice derives from (seed, epoch, sample) so
 * the batches are identical for any thread timing and a resumed run sees the same data. */
#ifndef LB_DATA_H
#define LB_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "lb_core.h"

typedef struct lb_dataset {
    int n, c, h, w; /* images[n][c][h][w], uint8 */
    int classes;
    uint8_t *images;
    int32_t *labels; /* [n], each in [0, classes) */
    /* Image folders only (NULL for idx/CIFAR): class_names[k] names label k (its folder). One
     * allocation, freed by lb_dataset_free. */
    char **class_names;
    /* Event frames (docs/events.md): 0 for static images, whose layout is images[n][c][h][w];
     * T > 0 for event data binned into T frames, laid out images[n][frames][c][h][w] with c = 2
     * (plane 0 OFF, plane 1 ON counts). Last so positional initializers stay valid. */
    int frames;
} lb_dataset;

/* uint8 planes per sample: c for static images, frames * c for event frames. */
static inline int lb_dataset_planes(const lb_dataset *d) {
    return d->frames > 0 ? d->frames * d->c : d->c;
}

/* idx files (magic 0x00000803 images / 0x00000801 labels); ".gz" files or any gzip content
 * (detected by the magic bytes 1f 8b, concatenated members allowed) are inflated with zlib as a
 * stream. Everything is checked: magic, dimensions (nonzero, sides <= 4096, n <= INT_MAX),
 * truncation, trailing bytes, a corrupt gzip stream, image/label count mismatch, labels in
 * [0, 10). Errors (LB_EIO for open/read failures, LB_EFORMAT for bad content) name the file and
 * what is wrong. On error *out is left zeroed and nothing is allocated. */
lb_status lb_idx_load(const char *images_path, const char *labels_path, lb_dataset *out);
/* The same from memory (raw or gzip bytes of each file); the names are used in messages. Used by
 * the fuzz targets. */
lb_status lb_idx_parse_mem(const char *images_name, const uint8_t *images, size_t images_len,
                           const char *labels_name, const uint8_t *labels, size_t labels_len,
                           lb_dataset *out);
/* CIFAR binary: records of <label byte>[<coarse byte>] 3072 pixel bytes. cifar100 selects the
 * two-label CIFAR-100 layout (<coarse byte><fine byte>; the fine label is used, 100 classes).
 * Reads all `paths` in order. Each file's size must be a nonzero multiple of the record size and
 * every label in range (coarse < 20, fine < 100; CIFAR-10 < 10). */
lb_status lb_cifar_load(const char *const *paths, int npaths, int cifar100, lb_dataset *out);
/* One CIFAR file's bytes from memory; `name` is used in messages. Used by the fuzz targets. */
lb_status lb_cifar_parse_mem(const char *name, const uint8_t *buf, size_t len, int cifar100,
                             lb_dataset *out);
/* A data directory: MNIST/Fashion-MNIST idx ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz],
 * the .gz name preferred), CIFAR-10 (data_batch_1..5.bin / test_batch.bin, optionally under
 * cifar-10-batches-bin/), CIFAR-100 (train.bin / test.bin, optionally under cifar-100-binary/)
 * or an image folder (lb_imgdir_load with default options), tried in that order. A missing
 * directory or one with none of these gives LB_EIO with a message naming the directory and listing
 * what was looked for. Event folders are not looked for: lb_events_load_dir reads them. */
lb_status lb_dataset_load_dir(const char *dir, int train, lb_dataset *out);
void lb_dataset_free(lb_dataset *d);
/* How many of d's samples a --train-limit/--test-limit of `limit` leaves: the first `limit`, or
 * all of them when limit <= 0 or larger than the set. */
int lb_dataset_count(const lb_dataset *d, int limit);

/* ---- image folders (docs/data.md) ---------------------------------------------------------- */
/* A decoded image, interleaved rows (HWC): c = 1 (grey) or 3 (RGB); alpha is dropped. */
typedef struct lb_image {
    int h, w, c;
    uint8_t *px;
} lb_image;

#define LB_IMG_MAX_SIDE 16384        /* larger images are refused (LB_EFORMAT) */
#define LB_IMG_MAX_PIXELS (1u << 26) /* and so are those with more pixels than this */
#define LB_IMG_TEST_SPLIT 0.2f       /* default held-out fraction of a folder without test/ */

/* PNG (any bit depth, palette, interlace; 16-bit rounded to 8) or JPEG (baseline/progressive,
 * grey or YCbCr), told apart by their magic bytes, not by the file name. header_only fills h, w
 * and c and leaves px NULL. Anything libpng or libjpeg complains about, warnings included
 * (truncation, bad CRC of a critical chunk, corrupt entropy data), is LB_EFORMAT naming `name`
 * and the library's message. On error *out is zeroed and nothing is allocated. */
lb_status lb_image_decode_mem(const char *name, const uint8_t *buf, size_t len, int header_only,
                              lb_image *out);
/* The same from a file (LB_EIO naming it when it cannot be read). */
lb_status lb_image_load(const char *path, int header_only, lb_image *out);
void lb_image_free(lb_image *im);
/* Writes im as dst[c][h][w] (uint8, CHW): grey from RGB by the BT.601 luma
 * (299 R + 587 G + 114 B + 500) / 1000, RGB from grey by copying; then each axis resized on its
 * own: area averaging when it shrinks, bilinear (pixel centres, edges clamped) when it grows,
 * an exact copy when it keeps its size; rounded to nearest. c must be 1 or 3. */
lb_status lb_image_convert(const lb_image *im, int c, int h, int w, uint8_t *dst);

/* How an image folder becomes a data set. Zero fields take the defaults below. */
typedef struct lb_image_opts {
    int h, w;         /* output size; 0: the most common size among all images of the folder
                       * (both splits; ties: the larger area) */
    int c;            /* 1 or 3; 0: 3 if any image of the folder has colour, else 1 */
    float test_split; /* layout without test/: held-out fraction per class (0: LB_IMG_TEST_SPLIT) */
    uint64_t seed;    /* layout without test/: which images are held out */
} lb_image_opts;

/* An image folder: DIR/train/<class>/ and DIR/test/<class>/, or DIR/<class>/ alone (also
 * DIR/train/ without DIR/test/), split per class by opts->test_split and seed. Classes are the
 * training split's folder names, sorted bytewise; a test folder must name one of them; a class
 * may have no test folder. Images are the *.png, *.jpg, *.jpeg files (any case) of a class
 * folder; hidden entries, other files and subfolders are skipped. Samples are ordered by file
 * name, then class. Errors name the file or folder: one that does not decode, an empty class
 * folder, a split without class folders, a test class unknown to train. */
lb_status lb_imgdir_load(const char *dir, int train, const lb_image_opts *opts, lb_dataset *out);
/* 1 when dir looks like an image folder (DIR/train/ exists, or DIR has a visible subfolder). */
int lb_imgdir_detect(const char *dir);
/* 1 when lb_dataset_load_dir would read dir as an image folder (no idx or CIFAR file of either
 * split there, and lb_imgdir_detect). */
int lb_dataset_dir_images(const char *dir);
/* lb_dataset_load_dir with options for image folders (NULL: defaults). For the other formats
 * opts must be NULL or all zero (LB_EINVAL naming the directory otherwise). */
lb_status lb_dataset_load_dir_opts(const char *dir, int train, const lb_image_opts *opts,
                                   lb_dataset *out);

/* Per-channel normalization constants (for pixel/255): the data's own mean and (population) std
 * per channel, std 1 where a channel is constant; except for the Fashion-MNIST training or test
 * split, recognised exactly (count, shape, classes and the sum of every pixel byte), which get the
 * published 0.2860 / 0.3530 (their own statistics rounded). No set is recognised by its mean or
 * shape alone: a 28x28 grey set with MNIST's mean is just a set with that mean.
 * Entries for channels beyond d->c are mean 0, std 1. Event frames (frames > 0): per polarity
 * channel, over every frame of every sample. */
void lb_dataset_norm(const lb_dataset *d, float mean[3], float std[3]);

/* The input normalization a model was trained with: value = (pixel/255 - mean[c]) / std[c].
 * It belongs to the model (lb_model_cfg.norm, recorded in checkpoints), not to the split being
 * read: a model trained on one split's statistics must see the same constants on any other.
 * set == 0 means unknown (a zeroed struct, or a checkpoint from before it was recorded); users
 * then fall back to lb_dataset_norm of the data at hand. Channels beyond the image's are mean 0,
 * std 1. */
typedef struct lb_norm {
    int set;
    float mean[3], std[3];
} lb_norm;

/* n's constants when n != NULL and n->set, else lb_dataset_norm(d). */
void lb_norm_resolve(const lb_norm *n, const lb_dataset *d, float mean[3], float std[3]);
/* LB_EINVAL unless every mean is finite and every std finite and > 0 (all three channels; an
 * unset n is valid). `what` names the source (file, option) at the start of the message. */
lb_status lb_norm_check(const lb_norm *n, const char *what);

typedef struct lb_augment {
    int crop_pad; /* random crop of the image zero-padded (in normalized black) by this; 0 = off */
    int hflip;    /* random horizontal flip */
} lb_augment;

typedef struct lb_loader lb_loader;

typedef struct lb_loader_cfg {
    int batch;
    int shuffle;
    int limit; /* use only the first `limit` samples (0 = all) */
    lb_augment aug;
    uint64_t seed;
    int prefetch; /* prepare the next batch on a background thread */
    lb_norm norm; /* the model's normalization; unset (zeroed): lb_dataset_norm(d) */
} lb_loader_cfg;

/* Samples and their randomness, exactly (so tests and resumed runs can reproduce them):
 *  - order: the identity, or with shuffle a Fisher-Yates permutation (for i = n-1 down to 1,
 *    swap i with lb_rng_below(r, i+1)) drawn from lb_rng_derive(r, seed, epoch, 0);
 *  - the sample at position p of the epoch draws from lb_rng_derive(r, seed, epoch, 1 + p):
 *    with crop_pad = P > 0, oy = lb_rng_below(r, 2P+1) then ox = lb_rng_below(r, 2P+1); then with
 *    hflip, flip = lb_rng_below(r, 2). Output pixel (c, y, x) is the source pixel
 *    (c, y + oy - P, (flip ? w-1-x : x) + ox - P), or 0 outside the image (crop, then flip);
 *  - value = (pixel/255 - mean[c]) / std[c] with cfg->norm's constants, or lb_dataset_norm's
 *    when cfg->norm is unset (LB_EINVAL when it is set but fails lb_norm_check).
 * The loader keeps a pointer to `d`, which must outlive it. d->c must be 1..3. The loader is
 * created at the start of epoch 0. All memory is allocated here; none per batch. */
lb_status lb_loader_new(const lb_dataset *d, const lb_loader_cfg *cfg, lb_loader **out);
/* Starts epoch `epoch` (permutation and augmentation derive from seed and epoch). Safe at any
 * time, also mid-epoch while a prefetch is running (it waits for that batch, then drops it). */
void lb_loader_start(lb_loader *l, int epoch);
/* Fills x[b][c][h][w] (normalized float; for event frames x[b][frames*c][h][w], plane i
 * normalized with channel i % c's constants, every plane of a sample cropped and flipped alike) and
 * y[b]; returns b (the last batch may be short; rows past b are left untouched) or 0 at the end of
 * the epoch. x and y must hold a full batch. */
int lb_loader_next(lb_loader *l, float *x, int32_t *y);
int lb_loader_batches(const lb_loader *l);
int lb_loader_samples(const lb_loader *l);
/* Stops and joins the prefetch thread (also mid-epoch) and frees everything. NULL is a no-op. */
void lb_loader_free(lb_loader *l);

/* ---- event cameras (docs/events.md) -------------------------------------------------------- */
/* One event: pixel (x, y) of the sensor, polarity p (1 ON: brighter, 0 OFF), time in
 * microseconds (64-bit: after the N-* overflow markers; relative to nothing in particular). */
typedef struct lb_event {
    int64_t t;
    uint16_t x, y;
    uint8_t p;
} lb_event;

enum { LB_EV_BIN = 1, LB_EV_AEDAT = 2 }; /* lb_events.format */

/* An event list in file order. w, h: the sensor extent the coordinates were checked against.
 * cap: allocated events (a list can be reused: parsers and the emulator keep its buffer). */
typedef struct lb_events {
    lb_event *ev;
    size_t n, cap;
    int w, h;
    int format;   /* LB_EV_BIN or LB_EV_AEDAT (0: made in memory) */
    size_t marks; /* .bin timestamp-overflow records seen (not events) */
} lb_events;

#define LB_EV_BIN_W 304 /* .bin without a declared sensor: the ATIS array, 304x240 */
#define LB_EV_BIN_H 240
#define LB_EV_AEDAT_SIDE 128        /* .aedat (DVS128): 128x128 */
#define LB_EV_TIME_TOL 1000         /* µs time may step back before it is an error */
#define LB_EV_MAX_EVENTS (1u << 28) /* larger files are refused (4 GiB of events in memory) */

/* N-MNIST / N-Caltech101 .bin: 5-byte records, x, y, then bit 7 polarity and a 23-bit
 * big-endian microsecond timestamp; a record with y == 240 is a timestamp-overflow marker that
 * adds 2^13 µs to every later timestamp (as Read_Ndataset.m and tonic do) and is not an event.
 * sensor_w/h: the declared sensor (0: LB_EV_BIN_W x LB_EV_BIN_H). Errors (LB_EFORMAT, naming
 * `name`, the byte offset and the event index): an empty file, a size that is not a multiple of
 * 5 (truncated record), a coordinate outside the sensor, time stepping back by more than
 * LB_EV_TIME_TOL µs. out must be zeroed or hold a previous list (whose buffer is reused); on
 * error out->n = 0. */
lb_status lb_events_parse_bin(const char *name, const uint8_t *buf, size_t len, int sensor_w,
                              int sensor_h, lb_events *out);
/* CIFAR10-DVS .aedat (AEDAT 2.0): header lines starting with '#' (the first "#!AER-DAT2.0",
 * each ending in "\n", "\r\n" in the files), then big-endian uint32 pairs (address, timestamp
 * in µs); x = (a & 0xFE) >> 1, y = (a & 0x7F00) >> 8, p = a & 1; address bits above 0x7FFF
 * (jAER's special events) are refused. sensor_w/h: 0 for 128x128. Errors as for .bin, plus a
 * missing or wrong first header line and data that is not a multiple of 8 bytes. */
lb_status lb_events_parse_aedat(const char *name, const uint8_t *buf, size_t len, int sensor_w,
                                int sensor_h, lb_events *out);
/* A file by its name: *.bin, *.aedat (any case), else by content ("#!AER-DAT" starts an .aedat).
 * LB_EIO naming the file when it cannot be read. */
lb_status lb_events_load(const char *path, int sensor_w, int sensor_h, lb_events *out);
void lb_events_free(lb_events *e);
/* Appends one event, growing the buffer (LB_ENOMEM). */
lb_status lb_events_push(lb_events *e, int x, int y, int p, int64_t t);
/* Encodes e in `format` into *buf (malloc'd, *len bytes): .bin with overflow markers wherever a
 * timestamp passes the 23-bit field (times must not decrease then), .aedat with the header
 * "#!AER-DAT2.0\r\n# written by lowbit\r\n". LB_EINVAL naming the event that does not fit the
 * format (x > 255 or y >= 240 for .bin, x or y >= 128 for .aedat, t < 0, t >= 2^32 for .aedat). */
lb_status lb_events_encode(const lb_events *e, int format, uint8_t **buf, size_t *len);
/* lb_events_encode, written to path (LB_EIO naming it). */
lb_status lb_events_write(const char *path, const lb_events *e, int format);

/* ---- binning events into frames (src/data/evbin.c) ---- */
enum { LB_EVBIN_TIME = 0, LB_EVBIN_COUNT = 1 };
#define LB_EV_MAX_FRAMES 1024

/* Counts of e's events in dst[frames][2][h][w] (uint8, saturating at 255; zeroed first).
 * LB_EVBIN_TIME: t0, t1 the least and largest time, D = t1 - t0 + 1; an event goes to frame
 * (t - t0) * frames / D (integer), so frame k is [t0 + k D / T, t0 + (k+1) D / T): an event
 * exactly on an edge starts the later frame. LB_EVBIN_COUNT: event i (file order) of n goes to
 * frame i * frames / n: equal counts, frames past n stay empty when n < frames.
 * Space: the sensor (e->w x e->h) is pooled by the smallest integer k with ceil(sw/k) <= w and
 * ceil(sh/k) <= h (k x k blocks summed), and the pooled sensor centred in h x w (offset
 * (h - ceil(sh/k)) / 2, likewise x); the rest stays 0. No event: all zero. */
lb_status lb_events_bin(const lb_events *e, int frames, int mode, int h, int w, uint8_t *dst);

/* How event data become a data set. Zero fields take the defaults. */
typedef struct lb_event_opts {
    int frames;             /* T; 0: 10 (docs/methods: 10 time bins) */
    int mode;               /* LB_EVBIN_TIME or LB_EVBIN_COUNT */
    int h, w;               /* output frame size; 0: the sensor's */
    int sensor_h, sensor_w; /* 0: by layout: 34x34 (Train/Test, N-MNIST), 180x240 (<class>/ of
                             * .bin, N-Caltech101), 128x128 (<class>/ of .aedat, CIFAR10-DVS) */
    float test_split;       /* <class>/ layouts: held-out fraction per class (0: 0.2) */
    uint64_t seed;          /* which files are held out */
} lb_event_opts;

/* An event folder as a data set of frames (images[n][T][2][h][w], frames = T, c = 2):
 * N-MNIST DIR/Train|train/<class>/<n>.bin + DIR/Test|test/<class>/<n>.bin; N-Caltech101
 * DIR/<class>/<n>.bin and CIFAR10-DVS DIR/<class>/<n>.aedat, split per class as lb_imgdir_load does
 * (Fisher-Yates from (seed, class), the first round(F n) of the name order held out). Classes
 * are the folder names sorted bytewise, class_names set; samples by file name, then class.
 * Files are read in parallel (OpenMP), the first failing one in sample order is named. Not
 * reached through lb_dataset_load_dir (whose formats stay as they are): call this. */
lb_status lb_events_load_dir(const char *dir, int train, const lb_event_opts *opts,
                             lb_dataset *out);

/* ---- DVS emulator (src/data/dvs_emu.c, docs/events.md) ---- */
/* Zero fields take the defaults (docs/events.md says why each). */
typedef struct lb_dvs_opts {
    float threshold; /* log-intensity contrast per event; 0: 0.2 */
    float noise;     /* relative std of each pixel's thresholds (seeded); 0: none */
    int steps;       /* micro-steps per saccade; 0: 40 */
    int margin;      /* sensor border around the image, px; 0: 3 (28x28 -> 34x34) */
    float amplitude; /* saccade vertex offset, px (< margin); 0: 2 */
    int saccade_us;  /* duration of one saccade; 0: 100000 */
    uint64_t seed;   /* threshold noise */
} lb_dvs_opts;

/* Events of one uint8 image (c = 1 grey, or 3 RGB turned grey by the BT.601 luma) seen by a
 * simulated DVS while it moves along three saccades (a triangle); sensor (h + 2m) x (w + 2m).
 * `index` selects the noise stream (lb_rng_derive(seed, "dvs", index)). Deterministic. out's
 * buffer is reused. */
lb_status lb_dvs_emulate(const uint8_t *img, int c, int h, int w, const lb_dvs_opts *o,
                         uint64_t index, lb_events *out);
/* A static data set (frames == 0) turned into event frames: each image emulated (noise index =
 * its sample index) and binned by bin (sensor fields must be 0); labels and class names copied.
 * OpenMP over images, each into its own slot: the same bytes for any thread count. */
lb_status lb_dvs_dataset(const lb_dataset *src, const lb_dvs_opts *o, const lb_event_opts *bin,
                         lb_dataset *out);

#endif
