/* `lowbit predict`: classify image files with a checkpoint, preprocessed as its training data was
 * (the model's size and channels, the same resampling, its recorded normalization), printing the
 * top classes with softmax probabilities. Not evaluation on a labelled set (cmd_eval.c). */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
    puts("usage: lowbit predict FILE IMAGE [IMAGE...] [--top K] [--threads T]\n"
         "Classifies PNG/JPEG images with checkpoint FILE: each is decoded, converted to the\n"
         "model's channels, resized to its input size (area when shrinking, bilinear when\n"
         "growing) and normalized with the checkpoint's constants, as training saw its images.\n"
         "Prints per image: IMAGE: class probability, ... (the K most likely, best first);\n"
         "class names come from the checkpoint (image-folder runs), else 'class N'.\n"
         "  --top K      how many classes per image (default 3, at most the model's classes)\n"
         "  --threads T  (default 2)");
}

int cmd_predict(int argc, char **argv) {
    const char *file = NULL;
    int top = 3, threads = 2, nimg = 0;
    const char **imgs = calloc((size_t)argc + 1, sizeof *imgs);
    if (!imgs) cli_die(1, "predict", "out of memory");
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            usage();
            free(imgs);
            return 0;
        }
        if (strcmp(o, "--top") == 0)
            top = cli_int("predict", o, cli_value("predict", argc, argv, &i), 1, 1 << 20);
        else if (strcmp(o, "--threads") == 0)
            threads = cli_int("predict", o, cli_value("predict", argc, argv, &i), 1, 1024);
        else if (o[0] == '-' && o[1])
            cli_die(2, "predict", "unknown option '%s' (see lowbit predict --help)", o);
        else if (!file)
            file = o;
        else
            imgs[nimg++] = o;
    }
    if (!file) cli_die(2, "predict", "no checkpoint FILE given (see lowbit predict --help)");
    if (!nimg) cli_die(2, "predict", "no IMAGE given (see lowbit predict --help)");
    lb_threads_set(threads);
    int batch = nimg < 64 ? nimg : 64;
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, batch, threads, &n, &info) != LB_OK)
        cli_die(1, "predict", "%s", lb_error_msg());
    const lb_model_cfg *m = &info.model;
    if (!m->norm.set)
        cli_die(1, "predict",
                "%s records no input normalization (older checkpoint): predict cannot know how "
                "training normalized its images",
                file);
    char **names;
    int nnames;
    if (lb_ckpt_class_names(file, &names, &nnames) != LB_OK)
        cli_die(1, "predict", "%s", lb_error_msg());
    /* all images decoded first: a file that cannot be read stops before anything is printed */
    size_t per = (size_t)m->in_c * m->in_h * m->in_w;
    lb_dataset d = {nimg, m->in_c, m->in_h, m->in_w, m->classes, NULL, NULL, NULL, 0};
    d.images = malloc((size_t)nimg * per);
    d.labels = calloc((size_t)nimg, sizeof *d.labels);
    float *logits = malloc((size_t)nimg * m->classes * sizeof *logits);
    int *order = malloc((size_t)m->classes * sizeof *order);
    if (!d.images || !d.labels || !logits || !order) cli_die(1, "predict", "out of memory");
    for (int i = 0; i < nimg; i++) {
        lb_image im;
        lb_status st = lb_image_load(imgs[i], 0, &im);
        if (st == LB_OK) st = lb_image_convert(&im, m->in_c, m->in_h, m->in_w, d.images + i * per);
        lb_image_free(&im);
        if (st != LB_OK) cli_die(1, "predict", "%s", lb_error_msg());
    }
    float loss, acc;
    if (lb_evaluate_logits(n, &d, &m->norm, 0, batch, logits, &loss, &acc) != LB_OK)
        cli_die(1, "predict", "%s", lb_error_msg());
    if (top > m->classes) top = m->classes;
    for (int i = 0; i < nimg; i++) {
        const float *l = logits + (size_t)i * m->classes;
        double mx = l[0], sum = 0;
        for (int k = 1; k < m->classes; k++) mx = l[k] > mx ? l[k] : mx;
        for (int k = 0; k < m->classes; k++) sum += exp(l[k] - mx);
        /* top K by selection: K passes over the classes, K is small */
        for (int k = 0; k < m->classes; k++) order[k] = k;
        printf("%s:", imgs[i]);
        for (int t = 0; t < top; t++) {
            int b = t;
            for (int k = t + 1; k < m->classes; k++)
                if (l[order[k]] > l[order[b]]) b = k;
            int tmp = order[t];
            order[t] = order[b];
            order[b] = tmp;
            int c = order[t];
            double p = exp(l[c] - mx) / sum;
            if (names)
                printf("%s %s %.4f", t ? "," : "", names[c], p);
            else
                printf("%s class %d %.4f", t ? "," : "", c, p);
        }
        putchar('\n');
    }
    free(order);
    free(logits);
    free(names);
    lb_dataset_free(&d);
    lb_net_free(n);
    free(imgs);
    return 0;
}
