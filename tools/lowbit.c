/* lowbit: the command-line entry point; dispatches to the subcommands. */
#include "cli.h"

#include "lb_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* OpenBLAS chose its kernels when it loaded; on a CPU it does not know they are SSE3 ones, 3-5x
 * slower. Start again with the right ones (docs/design.md, "Threads and BLAS"). A set
 * OPENBLAS_CORETYPE is the user's choice and is kept; if exec fails, lowbit runs as it is. */
static void blas_core_fix(char **argv) {
    const char *core = lb_blas_core_better();
    if (!core || setenv("OPENBLAS_CORETYPE", core, 1) != 0) return;
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE");
}

int main(int argc, char **argv) {
    blas_core_fix(argv);
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
