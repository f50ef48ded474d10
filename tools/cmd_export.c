/* `lowbit export`: a checkpoint's integer model as self-contained C99 (docs/integer.md), also as
 * a faulty chip holds it (--chip, docs/faults.md). */
#include "cli.h"
#include "lb_faults.h"
#include "lb_int.h"
#include "lb_onnx.h"

#include <stdio.h>
#include <string.h>

/* --chip: the float weights become the values the chip holds, so the integer model derives the
 * chip's codes (fault application is idempotent; docs/faults.md). Exits before anything is
 * written on a map that does not fit or has variability (not integer codes). */
static void put_on_chip(const char *file, const char *map, lb_net *n, const lb_ckpt_info *info,
                        int nearest) {
    lb_chip chip;
    if (lb_chip_open(&chip, n, info->model.arch, map, nearest) != LB_OK) {
        lb_net_free(n);
        cli_die(1, "export", "%s: %s", file, lb_error_msg());
    }
    int l, bit;
    uint64_t w;
    if (lb_fmap_has_var(chip.map, &l, &w, &bit)) {
        char name[LB_FNAME_MAX];
        snprintf(name, sizeof name, "%s", chip.map->layers[l].spec.name);
        lb_chip_detach(&chip);
        lb_net_free(n);
        cli_die(1, "export",
                "--chip %s: layer '%s' weight %llu bit %d has a variability multiplier other "
                "than 1: a varying cell's value is not an integer code, so this chip has no "
                "integer model to export (docs/faults.md)",
                map, name, (unsigned long long)w, bit);
    }
    lb_chip_snap_weights(&chip);
    lb_chip_detach(&chip);
}

/* --onnx: the float model (docs/onnx.md); quantized ones have no ONNX form yet. */
static int export_onnx(const char *file, const char *path, int other) {
    if (other) cli_die(2, "export", "--onnx cannot be combined with -o or --chip");
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, 1, 1, &n, &info) != LB_OK)
        cli_die(1, "export", "%s", lb_error_msg());
    if (info.model.q.kind != LB_Q_NONE || !info.model.norm.set) {
        lb_net_free(n);
        cli_die(1, "export",
                "%s: --onnx takes FP32 checkpoints that record their normalization (this one: "
                "quant %s%s); quantized ONNX (QDQ) is not written yet",
                file, lb_qkind_name(info.model.q.kind), info.model.norm.set ? "" : ", no norm");
    }
    lb_status st = lb_onnx_export(n, &info.model.norm, path);
    lb_net_free(n);
    if (st != LB_OK) cli_die(1, "export", "%s", lb_error_msg());
    printf("exported %s (%s FP32) to %s: ONNX opset 13, input = (pixel/255 - mean) / std\n", file,
           info.model.arch, path);
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *file = NULL, *out = NULL, *chip_map = NULL, *onnx = NULL;
    int nearest = 0;
    char data[512] = "/usr/share/datasets/fashion-mnist";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts(
                "usage: lowbit export FILE -o DIR [--data DIR]\n"
                "Writes the integer model of checkpoint FILE as C99 into DIR: model.h,\n"
                "model_data.h, model.c (no malloc, no float, no libm) and a host main.c.\n"
                "  -o DIR       output directory (created; a previous export there is replaced)\n"
                "  --data DIR   only for checkpoints that record no input normalization\n"
                "               (older files): the data set whose test split's statistics\n"
                "               stand in for it (default /usr/share/datasets/fashion-mnist)\n"
                "  --chip MAP   export the codes as the chip of fault map MAP holds them (its\n"
                "               logits equal lowbit eval --integer --chip MAP); a map with\n"
                "               variability multipliers has no integer form and is refused\n"
                "  --nearest-reachable  with --chip: each weight takes the reachable code nearest\n"
                "               to its own instead of the faulty one\n"
                "Only fully quantized models (uniform lsq/fixed quantizers on every layer's\n"
                "weights and on every input but the image) can be exported.\n"
                "  --onnx FILE  instead: the float model (FP32 checkpoints) as ONNX opset 13; its\n"
                "               input is the normalized image (docs/onnx.md)");
            return 0;
        }
        if (strcmp(o, "-o") == 0 || strcmp(o, "--out") == 0)
            out = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--onnx") == 0)
            onnx = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--chip") == 0)
            chip_map = cli_value("export", argc, argv, &i);
        else if (strcmp(o, "--nearest-reachable") == 0)
            nearest = 1;
        else if (strcmp(o, "--data") == 0)
            cli_copy("export", o, data, sizeof data, cli_value("export", argc, argv, &i));
        else if (o[0] == '-')
            cli_die(2, "export", "unknown option '%s' (see lowbit export --help)", o);
        else if (file)
            cli_die(2, "export", "more than one checkpoint given ('%s', '%s')", file, o);
        else
            file = o;
    }
    if (!file) cli_die(2, "export", "no checkpoint FILE given (see lowbit export --help)");
    if (onnx) return export_onnx(file, onnx, out || chip_map);
    if (!out) cli_die(2, "export", "no output directory given (-o DIR)");
    if (nearest && !chip_map) cli_die(2, "export", "--nearest-reachable needs --chip MAP");
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, 1, 1, &n, &info) != LB_OK)
        cli_die(1, "export", "%s", lb_error_msg());
    char source[1100];
    snprintf(source, sizeof source, "%s", file);
    if (chip_map) {
        put_on_chip(file, chip_map, n, &info, nearest);
        snprintf(source, sizeof source, "%s on chip %s%s", file, chip_map,
                 nearest ? " (nearest reachable)" : "");
    }
    /* The normalization is the model's; only older checkpoints, which do not record it, need a
     * data set to stand in for it. */
    lb_dataset d;
    memset(&d, 0, sizeof d);
    if (!info.model.norm.set) {
        if (lb_dataset_load_dir(data, 0, &d) != LB_OK) {
            lb_net_free(n);
            cli_die(1, "export", "%s (needed for the input normalization)", lb_error_msg());
        }
        if (d.c != info.model.in_c || d.h != info.model.in_h || d.w != info.model.in_w) {
            lb_net_free(n);
            lb_dataset_free(&d);
            cli_die(1, "export", "%s: data set does not fit the model's %dx%dx%d input", data,
                    info.model.in_c, info.model.in_h, info.model.in_w);
        }
        fprintf(stderr,
                "lowbit export: note: %s records no input normalization (older checkpoint); "
                "using the statistics of %s's test split\n",
                file, data);
    }
    float mean[3], sd[3];
    lb_norm_resolve(&info.model.norm, &d, mean, sd);
    lb_dataset_free(&d);
    lb_int_model *m;
    lb_status st = lb_int_from_net(n, mean, sd, &m);
    lb_net_free(n);
    if (st != LB_OK) cli_die(1, "export", "%s: cannot export: %s", file, lb_error_msg());
    size_t ram = 0, wbytes = 0, abytes = 0;
    lb_int_shift_stats sh;
    lb_int_shift_count(m, &sh);
    st = lb_int_export_bytes(m, &wbytes, &abytes);
    if (st == LB_OK) st = lb_int_export(m, out, source, &ram);
    lb_int_free(m);
    if (st != LB_OK) cli_die(1, "export", "%s", lb_error_msg());
    printf("exported %s (%s %s W%dA%d) to %s: model.h model_data.h model.c main.c, "
           "static buffers %zu bytes\n",
           source, info.model.arch, lb_qkind_name(info.model.q.kind), info.model.q.wbits,
           info.model.q.abits, out, ram);
    printf("requantization by a power of two (a shift): %d of %d conv/linear layers, %d of %d "
           "add/quant ops (docs/integer.md)\n",
           sh.conv_shift, sh.convs, sh.other_shift, sh.other);
    printf("weight_bytes: %zu\nactivation_bytes: %zu\n", wbytes, abytes);
    return 0;
}
