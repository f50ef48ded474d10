/* lb_ckpt: the safetensors file format (8-byte little-endian header size, a JSON header of
 * tensors {dtype, shape, data_offsets} plus "__metadata__" string pairs, then raw data), written
 * atomically (temporary file, fsync, rename, fsync of the directory) and read with validation of
 * every header field against the file size. Knows nothing of models: lb_nn maps networks to it. */
#ifndef LB_CKPT_H
#define LB_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "lb_core.h"

#define LB_ST_MAXDIM 8
/* Largest JSON header the reader accepts (the reference implementation's limit, 100 MB). */
#define LB_ST_MAX_HEADER 100000000u

typedef enum lb_dtype { LB_F32 = 0, LB_I32, LB_U8, LB_I8, LB_U64 } lb_dtype;

/* A tensor as the writer takes it and the reader returns it.
 * - ndim == 0 is a scalar (shape [] in the file, one element).
 * - Zero-size tensors (some shape[i] == 0) are supported: nbytes == 0, data may be NULL when
 *   writing; on reading it points into the file buffer but must not be dereferenced.
 * - Data is raw little-endian (the library requires a little-endian host).
 * - ALIGNMENT: on reading, data points into the file buffer at the tensor's offset. Files written
 *   by lb_st_write start the data section 8-aligned but lay tensors out contiguously in the order
 *   given, so a tensor after e.g. a 3-byte U8 tensor is misaligned; files from other writers may
 *   be misaligned anywhere. Readers must memcpy the data out, never cast the pointer. */
typedef struct lb_st_tensor {
    const char *name;
    lb_dtype dtype;
    int ndim;
    int64_t shape[LB_ST_MAXDIM];
    const void *data; /* nbytes = prod(shape) * size(dtype) */
} lb_st_tensor;

typedef struct lb_st_meta {
    const char *key, *value;
} lb_st_meta;

/* Writes `path` atomically: "<path>.tmp.<pid>" in the same directory, fsync, rename over `path`,
 * fsync of the directory. "__metadata__" (if nmeta > 0) comes first in the header, then the
 * tensors in the order given, whose data is laid out contiguously in that order; the header is
 * padded with spaces so the data section starts 8-aligned. Names and metadata keys must be unique,
 * valid UTF-8, and no tensor may be called "__metadata__" (else LB_EINVAL, nothing written). On an
 * i/o failure returns LB_EIO, removes the temporary file and leaves any existing `path` intact. */
lb_status lb_st_write(const char *path, const lb_st_tensor *t, int nt, const lb_st_meta *meta,
                      int nmeta);

typedef struct lb_st_file lb_st_file;

/* Reads the whole file into one buffer and validates it: header size within the file and
 * <= LB_ST_MAX_HEADER, a UTF-8 JSON object (trailing whitespace allowed), entries of known dtype,
 * shapes of <= LB_ST_MAXDIM non-negative integers (JSON numbers with an exact integer value
 * <= 2^53) whose byte size does not overflow, data_offsets [begin, end] matching the shape, unique
 * names, tensors neither overlapping nor leaving holes in the data section, string-valued
 * metadata, and no unknown fields in a tensor entry. LB_EIO when the file cannot be opened or read,
 * LB_EFORMAT for any content problem; the message names the file and the problem. */
lb_status lb_st_read(const char *path, lb_st_file **out);
/* The same over a memory buffer (copied; `buf` may be freed afterwards). `name_for_errors` stands
 * in for the path in messages. */
lb_status lb_st_read_mem(const void *buf, size_t n, const char *name_for_errors, lb_st_file **out);
/* Tensors are numbered in the order of their data in the file (for files from lb_st_write: the
 * order they were written in). lb_st_get returns NULL out of range; lb_st_find NULL if absent. */
int lb_st_count(const lb_st_file *f);
const lb_st_tensor *lb_st_get(const lb_st_file *f, int i);
const lb_st_tensor *lb_st_find(const lb_st_file *f, const char *name);
const char *lb_st_meta_get(const lb_st_file *f, const char *key); /* NULL if absent */
int lb_st_meta_count(const lb_st_file *f);                        /* in header order */
const lb_st_meta *lb_st_meta_at(const lb_st_file *f, int i);      /* NULL out of range */
size_t lb_dtype_size(lb_dtype t);                                 /* 0 for an invalid value */
const char *lb_dtype_name(lb_dtype t); /* "F32", "I32", "U8", "I8", "U64"; NULL if invalid */
void lb_st_free(lb_st_file *f);        /* NULL is fine */

#endif
