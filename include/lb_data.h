/* lb_data: data sets held as uint8 images in memory (idx for MNIST/Fashion-MNIST, gzip or raw;
 * CIFAR-10/100 binary), augmentation, and a loader that prepares the next batch on a background
 * thread while the current one computes. Every random choice derives from (seed, epoch, sample) so
 * the batches are identical for any thread timing and a resumed run sees the same data. */
#ifndef LB_DATA_H
#define LB_DATA_H

#include <stdint.h>

#include "lb_core.h"

typedef struct lb_dataset {
    int n, c, h, w;   /* images[n][c][h][w], uint8 */
    int classes;
    uint8_t *images;
    int32_t *labels;  /* [n], each in [0, classes) */
} lb_dataset;

/* idx files (magic 0x00000803 images / 0x00000801 labels); ".gz" files or any gzip content are
 * inflated with zlib. Errors name the file and what is wrong. */
lb_status lb_idx_load(const char *images_path, const char *labels_path, lb_dataset *out);
/* CIFAR binary: records of <label byte>[<coarse byte>] 3072 pixel bytes. cifar100 selects the
 * two-label CIFAR-100 layout (fine label used, 100 classes). Reads all `paths`. */
lb_status lb_cifar_load(const char *const *paths, int npaths, int cifar100, lb_dataset *out);
/* A data directory: MNIST/Fashion-MNIST idx ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]),
 * CIFAR-10 (data_batch_1..5.bin / test_batch.bin, optionally under cifar-10-batches-bin/) or
 * CIFAR-100 (train.bin / test.bin, optionally under cifar-100-binary/). */
lb_status lb_dataset_load_dir(const char *dir, int train, lb_dataset *out);
void lb_dataset_free(lb_dataset *d);

/* Per-channel normalization constants for a data set: Fashion-MNIST 0.2860/0.3530, MNIST
 * 0.1307/0.3081, CIFAR the usual per-channel values; others computed from the data. */
void lb_dataset_norm(const lb_dataset *d, float mean[3], float std[3]);

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
} lb_loader_cfg;

lb_status lb_loader_new(const lb_dataset *d, const lb_loader_cfg *cfg, lb_loader **out);
/* Starts epoch `epoch` (permutation and augmentation derive from seed and epoch). */
void lb_loader_start(lb_loader *l, int epoch);
/* Fills x[b][c][h][w] (normalized float) and y[b]; returns b (the last batch may be short) or 0
 * at the end of the epoch. */
int lb_loader_next(lb_loader *l, float *x, int32_t *y);
int lb_loader_batches(const lb_loader *l);
int lb_loader_samples(const lb_loader *l);
void lb_loader_free(lb_loader *l);

#endif
