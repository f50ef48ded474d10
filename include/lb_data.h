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
} lb_dataset;

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
 * what was looked for. */
lb_status lb_dataset_load_dir(const char *dir, int train, lb_dataset *out);
void lb_dataset_free(lb_dataset *d);

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
 * Entries for channels beyond d->c are mean 0, std 1. */
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
/* Fills x[b][c][h][w] (normalized float) and y[b]; returns b (the last batch may be short; rows
 * past b are left untouched) or 0 at the end of the epoch. x and y must hold a full batch. */
int lb_loader_next(lb_loader *l, float *x, int32_t *y);
int lb_loader_batches(const lb_loader *l);
int lb_loader_samples(const lb_loader *l);
/* Stops and joins the prefetch thread (also mid-epoch) and frees everything. NULL is a no-op. */
void lb_loader_free(lb_loader *l);

#endif
