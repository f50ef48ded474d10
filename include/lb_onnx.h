/* lb_onnx: reading an ONNX model (protobuf-c over Debian's onnx.proto) into lowbit's graph
 * description and named float tensors, and writing a network as ONNX (float, QDQ, or the integer
 * model as integer ops). Not an ONNX runtime: only the ops lowbit's graph has (docs/onnx.md);
 * anything else is refused with one message naming the node. */
#ifndef LB_ONNX_H
#define LB_ONNX_H

#include <stddef.h>

#include "lb_core.h"
#include "lb_int.h"
#include "lb_models.h"
#include "lb_nn.h"

/* A tensor the imported model starts from, under lowbit's name ("<layer>.weight",
 * "<bn>.running_var", ...), in lowbit's layout (OIHW conv, [out][in] linear). */
typedef struct lb_onnx_tensor {
    char name[LB_NAME_MAX + 16];
    size_t n;
    float *data;
} lb_onnx_tensor;

typedef struct lb_onnx_model {
    int in_c, in_h, in_w, classes;
    char *graph;  /* the graph as lowbit's JSON description (docs/onnx.md), malloc'd */
    lb_norm norm; /* set when the file records lowbit.norm_mean/std (lowbit's own export) */
    lb_onnx_tensor *t;
    int nt;
} lb_onnx_model;

/* Reads and maps `path`. External-data tensors are read relative to the file's directory. Every
 * problem is LB_EIO (cannot read), LB_EFORMAT (not a valid ONNX protobuf, bad tensor data) or
 * LB_EINVAL (a valid model lowbit cannot represent), with a message naming the file and, where
 * there is one, the node and what lowbit supports. */
lb_status lb_onnx_read(const char *path, lb_onnx_model **out);
/* The same over a buffer; `dir` (NULL: none, external data refused) is where external data
 * lives; `name` stands in for the path in messages. */
lb_status lb_onnx_read_mem(const void *buf, size_t n, const char *name, const char *dir,
                           lb_onnx_model **out);
void lb_onnx_free(lb_onnx_model *m);

/* The model configuration of an imported model: arch "graph", its graph, input shape and classes,
 * the fp32 plan and `norm` (NULL or unset: the file's recorded normalization, else pixel/255,
 * i.e. mean 0, std 1). LB_EINVAL when the graph does not fit lb_model_cfg.graph. */
lb_status lb_onnx_model_cfg(const lb_onnx_model *m, const lb_norm *norm, lb_model_cfg *cfg);
/* Copies the imported tensors into a planned net built from that configuration (any quantization
 * plan): every weight, bias, BN parameter and running statistic must be found; quantizer tensors
 * keep their data-driven initialization. */
lb_status lb_onnx_load_weights(const lb_onnx_model *m, const char *path, lb_net *n);

/* Writes a float network (no quantizers: the caller checks) as ONNX opset 13 at `path`: the graph
 * node for node, parameters and BN statistics as initializers, input [N, C, H, W] = the image
 * normalized with `norm` (recorded as metadata lowbit.norm_mean / lowbit.norm_std), output
 * [N, classes]. LB_EIO / LB_ENOMEM naming the path. */
lb_status lb_onnx_export(const lb_net *n, const lb_norm *norm, const char *path);
/* The same graph for a quantized network, in QDQ form (docs/onnx.md): weights as int8 codes
 * (int32 where wider: learned reg levels) with DequantizeLinear, per-channel where the weight
 * quantizer has a step per channel; each quantized layer input through Clip (the code range),
 * QuantizeLinear and DequantizeLinear (uint8/int8, zero point 0, scale the step). BN, pools and
 * adds stay float: the graph lowbit's float (fake-quant) evaluation runs. LB_EINVAL naming the
 * layer when a quantizer has no step and codes, or its codes do not fit 8 bits (activations),
 * or nothing is quantized. */
lb_status lb_onnx_export_qdq(const lb_net *n, const lb_norm *norm, const char *path);
/* The integer model as ONNX integer ops (opset 13, docs/onnx.md): input "image" uint8
 * [N, C, H, W] raw pixels, output "logits" int32 [N, classes] equal to lb_int_run's bit for bit
 * (scale 2^-logit_frac_bits, recorded as metadata lowbit.logit_frac_bits). LB_EINVAL for a
 * spiking model (its integer form has time steps and membranes). */
lb_status lb_onnx_export_int(const lb_int_model *m, const char *path);

#endif
