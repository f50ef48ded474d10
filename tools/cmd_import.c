/* `lowbit import`: an ONNX model into a weights-only FP32 checkpoint (docs/onnx.md). The reading
 * and mapping live in src/interop/; this file only parses options and prints. */
#include "cli.h"
#include "lb_onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "M" or "M,M,M": one value for every channel or one per channel. */
static void three(const char *opt, const char *v, float dst[3], double lo, double hi) {
    char buf[128];
    cli_copy("import", opt, buf, sizeof buf, v);
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    int k = 0;
    for (; tok && k < 3; tok = strtok_r(NULL, ",", &save))
        dst[k++] = cli_float("import", opt, tok, lo, hi);
    if (tok || (k != 1 && k != 3))
        cli_die(2, "import", "%s takes one value or three (per channel), got '%s'", opt, v);
    if (k == 1) dst[1] = dst[2] = dst[0];
}

static void usage(void) {
    puts("usage: lowbit import MODEL.onnx -o OUT.safetensors [--mean M[,M,M]] [--std S[,S,S]]\n"
         "Reads an ONNX model (Conv, Gemm, MatMul+Add, BatchNormalization, Relu, Clip(0,6),\n"
         "MaxPool, AveragePool, GlobalAveragePool, Add, Flatten/Reshape, Dropout, Identity;\n"
         "docs/onnx.md) into a weights-only FP32 lowbit checkpoint: lowbit eval, train --init\n"
         "and export take it. lowbit train --init MODEL.onnx imports on the fly.\n"
         "  -o FILE      the checkpoint to write\n"
         "  --mean, --std  the normalization the model expects: it sees (pixel/255 - mean) / std\n"
         "               per channel (default: the file's lowbit.norm_mean/std metadata, which\n"
         "               lowbit export --onnx writes, else mean 0, std 1: pixel/255); recorded");
}

int cmd_import(int argc, char **argv) {
    const char *file = NULL, *out = NULL;
    lb_norm norm = {0, {0, 0, 0}, {1, 1, 1}};
    int has_mean = 0, has_std = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage();
            return 0;
        }
        if (strcmp(o, "-o") == 0 || strcmp(o, "--out") == 0)
            out = cli_value("import", argc, argv, &i);
        else if (strcmp(o, "--mean") == 0)
            three(o, cli_value("import", argc, argv, &i), norm.mean, -1e6, 1e6), has_mean = 1;
        else if (strcmp(o, "--std") == 0)
            three(o, cli_value("import", argc, argv, &i), norm.std, 1e-6, 1e6), has_std = 1;
        else if (o[0] == '-')
            cli_die(2, "import", "unknown option '%s' (see lowbit import --help)", o);
        else if (file)
            cli_die(2, "import", "one model at a time ('%s' and '%s')", file, o);
        else
            file = o;
    }
    if (!file || !out) cli_die(2, "import", "MODEL.onnx and -o OUT are required (--help)");
    norm.set = has_mean || has_std;
    lb_onnx_model *m;
    if (lb_onnx_read(file, &m) != LB_OK) cli_die(1, "import", "%s", lb_error_msg());
    lb_ckpt_info info;
    memset(&info, 0, sizeof info);
    lb_net *n = NULL;
    lb_status st = lb_onnx_model_cfg(m, &norm, &info.model);
    if (st == LB_OK) st = lb_model_build(&info.model, &n);
    if (st == LB_OK) st = lb_net_plan(n, 1, 1);
    if (st == LB_OK) {
        lb_net_init(n, 1);
        st = lb_onnx_load_weights(m, file, n);
    }
    lb_train_cfg_default(&info.train);
    info.weights_only = 1;
    if (st == LB_OK) st = lb_ckpt_save(out, n, NULL, &info);
    if (st != LB_OK) {
        lb_net_free(n);
        lb_onnx_free(m);
        cli_die(1, "import", "%s: %s", file, lb_error_msg());
    }
    int layers = 0;
    for (int i = 0; i < n->nnodes; i++)
        layers += n->nodes[i].op == LB_OP_CONV || n->nodes[i].op == LB_OP_LINEAR;
    printf("imported %s: input %dx%dx%d, %d classes, %d nodes (%d conv/linear), %zu parameters\n"
           "normalization: mean %g %g %g, std %g %g %g\ncheckpoint: %s\n",
           file, m->in_c, m->in_h, m->in_w, m->classes, n->nnodes - 1, layers, n->nparam,
           (double)info.model.norm.mean[0], (double)info.model.norm.mean[1],
           (double)info.model.norm.mean[2], (double)info.model.norm.std[0],
           (double)info.model.norm.std[1], (double)info.model.norm.std[2], out);
    lb_net_free(n);
    lb_onnx_free(m);
    return 0;
}
