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

typedef enum lb_dtype { LB_F32 = 0, LB_I32, LB_U8, LB_I8, LB_U64 } lb_dtype;

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

lb_status lb_st_write(const char *path, const lb_st_tensor *t, int nt, const lb_st_meta *meta,
                      int nmeta);

typedef struct lb_st_file lb_st_file;

lb_status lb_st_read(const char *path, lb_st_file **out);
int lb_st_count(const lb_st_file *f);
const lb_st_tensor *lb_st_get(const lb_st_file *f, int i);
const lb_st_tensor *lb_st_find(const lb_st_file *f, const char *name);
const char *lb_st_meta_get(const lb_st_file *f, const char *key); /* NULL if absent */
int lb_st_meta_count(const lb_st_file *f);
const lb_st_meta *lb_st_meta_at(const lb_st_file *f, int i);
size_t lb_dtype_size(lb_dtype t);
void lb_st_free(lb_st_file *f);

#endif
