/* Shared by the ONNX writers (onnx_export.c float, onnx_qdq.c QDQ, onnx_int.c integer ops): a
 * protobuf-c message under construction, every piece allocated in one list and freed at once.
 * Not a public interface and not the reader (onnx_internal.h). */
#ifndef LB_ONNX_BUILD_H
#define LB_ONNX_BUILD_H

#include "onnx_internal.h"

#include <stdint.h>

/* TensorProto.DataType values the writers use */
enum { OXT_FLOAT = 1, OXT_UINT8 = 2, OXT_INT8 = 3, OXT_INT32 = 6, OXT_INT64 = 7, OXT_DOUBLE = 11 };

typedef struct ox_b {
    void **mem;
    int nmem, cmem;
    Onnx__NodeProto **nodes;
    int nn, cn;
    Onnx__TensorProto **inits;
    int ni, ci;
    int oom;
    unsigned serial; /* for fresh tensor names (ox_b_tmp) */
} ox_b;

void *ox_b_alloc(ox_b *b, size_t n);
char *ox_b_str(ox_b *b, const char *s);
/* A fresh tensor name "<base>.<what><serial>", allocated in b. */
const char *ox_b_tmp(ox_b *b, const char *base, const char *what);
Onnx__AttributeProto *ox_b_attr_i(ox_b *b, const char *name, int64_t v);
Onnx__AttributeProto *ox_b_attr_f(ox_b *b, const char *name, float v);
/* INTS attribute of n copies of v. */
Onnx__AttributeProto *ox_b_attr_rep(ox_b *b, const char *name, int64_t v, int n);
/* A node: inputs and attributes are NULL-terminated lists (up to 8 each; "" is an omitted
 * optional input); one output. */
Onnx__NodeProto *ox_b_node(ox_b *b, const char *op, const char *name, const char *const *in,
                           const char *out, Onnx__AttributeProto *const *at);
/* An initializer of `type` with the given shape. Float data is borrowed (it must outlive the
 * write); every other type is copied. */
void ox_b_init(ox_b *b, const char *name, const void *data, int type, int ndim,
               const int64_t *dims);
/* Scalar and 1-D int64 initializers (copied). */
void ox_b_i64(ox_b *b, const char *name, const int64_t *v, int64_t n);
void ox_b_scalar(ox_b *b, const char *name, int type, double v);
/* A graph input or output [N, dims[1], ...] of elem_type (the batch symbolic "N"). */
Onnx__ValueInfoProto *ox_b_value(ox_b *b, const char *name, int elem_type, int ndim,
                                 const int64_t *dims);
/* Packs the model (opset `opset`, metadata key/value pairs, npairs of them) and writes `path`;
 * frees everything in b. LB_ENOMEM / LB_EIO naming the path. */
lb_status ox_b_write(ox_b *b, const char *path, int opset, Onnx__ValueInfoProto *in,
                     Onnx__ValueInfoProto *out, const char *const *meta, int npairs);
void ox_b_free(ox_b *b);

/* onnx_qdq.c: whether every conv/linear quantizer has a QDQ form (LB_EINVAL naming the layer;
 * also when nothing is quantized), a layer's input through Clip + QuantizeLinear +
 * DequantizeLinear and its weights as codes + DequantizeLinear (both return the name of the
 * dequantized tensor; NULL: out of memory). */
lb_status ox_qdq_check(const lb_net *n, const char *path);
const char *ox_qdq_act(ox_b *b, const lb_net *n, const lb_node *d, const char *x);
const char *ox_qdq_weight(ox_b *b, const lb_net *n, const lb_node *d);

#endif
