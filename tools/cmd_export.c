/* `lowbit export`: a checkpoint's integer model as self-contained C99 (docs/integer.md). */
#include "cli.h"
#include "lb_int.h"

#include <stdio.h>
#include <string.h>

int cmd_export(int argc, char **argv) {
    const char *file = NULL, *out = NULL;
    char data[512] = "/usr/share/datasets/fashion-mnist";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts("usage: lowbit export FILE -o DIR [--data DIR]\n"
                 "Writes the integer model of checkpoint FILE as C99 into DIR: model.h,\n"
                 "model_data.h, model.c (no malloc, no float, no libm) and a host main.c.\n"
                 "  -o DIR       output directory (created; a previous export there is replaced)\n"
                 "  --data DIR   only for checkpoints that record no input normalization\n"
                 "               (older files): the data set whose test split's statistics\n"
                 "               stand in for it (default /usr/share/datasets/fashion-mnist)\n"
                 "Only fully quantized models (uniform lsq/fixed quantizers on every layer's\n"
                 "weights and on every input but the image) can be exported.");
            return 0;
        }
        if (strcmp(o, "-o") == 0 || strcmp(o, "--out") == 0)
            out = cli_value("export", argc, argv, &i);
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
    if (!out) cli_die(2, "export", "no output directory given (-o DIR)");
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, 1, 1, &n, &info) != LB_OK)
        cli_die(1, "export", "%s", lb_error_msg());
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
    size_t ram = 0;
    st = lb_int_export(m, out, file, &ram);
    lb_int_free(m);
    if (st != LB_OK) cli_die(1, "export", "%s", lb_error_msg());
    printf("exported %s (%s %s W%dA%d) to %s: model.h model_data.h model.c main.c, "
           "static buffers %zu bytes\n",
           file, info.model.arch, lb_qkind_name(info.model.q.kind), info.model.q.wbits,
           info.model.q.abits, out, ram);
    return 0;
}
