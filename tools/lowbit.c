/* lowbit: the command-line entry point; dispatches to the subcommands. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fputs("usage: lowbit <command> [options]\n"
          "commands:\n"
          "  train   train a model (FP32 or quantization-aware) and checkpoint it\n"
          "  eval    evaluate a checkpoint on a test set\n"
          "  info    describe a checkpoint\n"
          "  bench   measure training speed\n"
          "  export  write a checkpoint's integer model as C99\n"
          "  faults  fault maps of chips: map, convert, info (docs/faults.md)\n"
          "  predict classify image files with a checkpoint\n"
          "  finetune fine-tune a checkpoint for a faulty chip (docs/faults.md)\n"
          "  import  an ONNX model into an FP32 checkpoint (docs/onnx.md)\n"
          "  events  event-camera files: info, emulate a data set (docs/events.md)\n"
          "  plot    scales / bits / pareto: scale trajectories, learned bit-widths, accuracy\n"
          "          against exported bytes (docs/quantizers.md, docs/mixed.md)\n"
          "'lowbit <command> --help' describes each.\n",
          f);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *c = argv[1];
    if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 || strcmp(c, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(c, "train") == 0) return cmd_train(argc - 2, argv + 2);
    if (strcmp(c, "eval") == 0) return cmd_eval(argc - 2, argv + 2);
    if (strcmp(c, "info") == 0) return cmd_info(argc - 2, argv + 2);
    if (strcmp(c, "bench") == 0) return cmd_bench(argc - 2, argv + 2);
    if (strcmp(c, "export") == 0) return cmd_export(argc - 2, argv + 2);
    if (strcmp(c, "faults") == 0) return cmd_faults(argc - 2, argv + 2);
    if (strcmp(c, "predict") == 0) return cmd_predict(argc - 2, argv + 2);
    if (strcmp(c, "finetune") == 0) return cmd_finetune(argc - 2, argv + 2);
    if (strcmp(c, "import") == 0) return cmd_import(argc - 2, argv + 2);
    if (strcmp(c, "events") == 0) return cmd_events(argc - 2, argv + 2);
    if (strcmp(c, "plot") == 0) return cmd_plot(argc - 2, argv + 2);
    fprintf(stderr, "lowbit: unknown command '%s'\n", c);
    usage(stderr);
    return 2;
}
