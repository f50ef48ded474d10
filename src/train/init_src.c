/* Where a fine-tuning run's initial weights come from (--init): a lowbit checkpoint, or an ONNX
 * model imported on the fly (docs/onnx.md). Not the checkpoint format (ckpt_io.c). */
#include "train_internal.h"
#include "lb_onnx.h"

#include <string.h>

int lb_init_is_onnx(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".onnx") == 0;
}

lb_status lb_init_peek(const char *path, lb_ckpt_info *info) {
    if (!lb_init_is_onnx(path)) return lb_ckpt_peek(path, info);
    memset(info, 0, sizeof *info);
    lb_onnx_model *m;
    lb_status st = lb_onnx_read(path, &m);
    if (st != LB_OK) return st;
    st = lb_onnx_model_cfg(m, NULL, &info->model); /* pixel/255: import for other constants */
    info->weights_only = 1;
    lb_onnx_free(m);
    return st;
}

lb_status lb_init_load(const char *path, lb_net *n) {
    if (!lb_init_is_onnx(path)) return lb_ckpt_load_weights(path, n);
    lb_onnx_model *m;
    lb_status st = lb_onnx_read(path, &m);
    if (st != LB_OK) return st;
    st = lb_onnx_load_weights(m, path, n);
    lb_onnx_free(m);
    return st;
}
