/* Shared by the ONNX reader's files: the decoding context, the ONNX values (activations and
 * constants) and the lowbit nodes being built. Not a public interface. */
#ifndef LB_ONNX_INTERNAL_H
#define LB_ONNX_INTERNAL_H

#include "lb_onnx.h"
#include "onnx.pb-c.h"

enum { OX_FLOAT = 1, OX_INT64 = 7 }; /* TensorProto.DataType values lowbit reads */

/* An ONNX tensor name and what it stands for: the output of lowbit node `node`, or a constant
 * (an initializer or a Constant node's value). */
typedef struct ox_val {
    const char *name; /* borrowed from the decoded protobuf */
    int node;         /* >= 0: activation; -1: constant */
    const Onnx__TensorProto *tp;
} ox_val;

typedef struct ox_node {
    lb_op op;
    char name[LB_NAME_MAX];
    const char *src; /* ONNX node name (or op type), for messages */
    int in[2];
    int c, h, w, rank; /* output shape of one sample; rank 4 (NCHW) or 2 (features) */
    int cout, k, stride, pad, groups, bias;
    int sh, sw; /* shortcut: subsampling per axis until both are known */
    float p;
    int keep; /* reaches the output */
} ox_node;

typedef struct ox_ctx {
    const char *file, *dir;
    Onnx__GraphProto *g;
    ox_val *v;
    int nv, vcap;
    int *uses; /* per value: how many node inputs / graph outputs read it */
    ox_node *nodes;
    int nn, ncap;
    lb_onnx_tensor *t;
    int nt, tcap;
    void **owned; /* constants folded by onnx_fold.c (tensors, dims, data) */
    int nowned;
} ox_ctx;

/* onnx_pb.c: values, constants and attributes. */
ox_val *ox_find(ox_ctx *c, const char *name);
lb_status ox_set(ox_ctx *c, const char *name, int node, const Onnx__TensorProto *tp);
/* The elements of a constant tensor as float (FLOAT) or int64 (INT64), malloc'd; dims and ndim
 * its shape (borrowed). */
lb_status ox_const_f(ox_ctx *c, const Onnx__NodeProto *nd, const char *name, float **out, size_t *n,
                     const int64_t **dims, int *ndim);
lb_status ox_const_i(ox_ctx *c, const Onnx__NodeProto *nd, const char *name, int64_t **out,
                     size_t *n);
const Onnx__AttributeProto *ox_attr(const Onnx__NodeProto *nd, const char *name);
/* A float attribute: writers omit a value of 0 but keep the type, so the type decides. */
static inline int ox_is_f(const Onnx__AttributeProto *a) {
    return a->has_f || a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
}
/* Every attribute of nd is in the comma-separated list, else LB_EINVAL naming it. */
lb_status ox_attrs_only(ox_ctx *c, const Onnx__NodeProto *nd, const char *allowed);
lb_status ox_node_err(ox_ctx *c, const Onnx__NodeProto *nd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
lb_status ox_add_tensor(ox_ctx *c, const char *node, const char *suffix, float *data, size_t n);

/* onnx_map.c: one ONNX node into lowbit nodes, and the pieces every op uses: a new lowbit node
 * taking in0's shape (-1: out of memory), the activation at input i (-1 with *st set), the
 * node's single output bound to lowbit node id, an integer attribute. */
lb_status ox_map_node(ox_ctx *c, const Onnx__NodeProto *nd);
int ox_new_node(ox_ctx *c, lb_op op, const Onnx__NodeProto *nd, int in0, int in1);
int ox_act_in(ox_ctx *c, const Onnx__NodeProto *nd, size_t i, lb_status *st);
lb_status ox_out1(ox_ctx *c, const Onnx__NodeProto *nd, int id);
int64_t ox_attr_i(const Onnx__NodeProto *nd, const char *k, int64_t def);
/* onnx_fold.c: a shape op (ConstantOfShape, Cast, Concat, Gather, Unsqueeze, Transpose,
 * Reshape, Slice) whose inputs are all constants, or Shape of an activation, is computed
 * (*done = 1) into a new constant. */
lb_status ox_fold(ox_ctx *c, const Onnx__NodeProto *nd, int *done);
/* onnx_shape.c: the ops that only move or combine activations (GlobalAveragePool, Add,
 * Flatten, Reshape, Dropout, Identity, Constant, Slice, Pad). */
lb_status ox_map_shape(ox_ctx *c, const Onnx__NodeProto *nd);

#endif
