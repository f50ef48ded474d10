/* Tests of the robustness rules (docs/robust.md): the collapse watch on hand-made loss streams
 * and on real networks (a dead layer, all-zero codes, a step driven to its floor, non-finite
 * steps), the chance bound, and the defaults that adapt to the data (epochs, warm-up, lr) with
 * the schedule errors. End to end on the CLI: tests/cli/collapse.sh. */
#include "../src/train/train_internal.h"
#include "../src/train/watch.h"
#include "lb_models.h"
#include "lb_ops.h"
#include "lb_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int has_event(const lb_watch *w, lb_collapse_kind k, const char *layer, const char *word) {
    for (int i = 0; i < w->n; i++)
        if (w->ev[i].kind == k && (!layer || strcmp(w->ev[i].layer, layer) == 0) &&
            strncmp(w->ev[i].message, "collapse:", 9) == 0 &&
            (!word || strstr(w->ev[i].message, word)))
            return 1;
    return 0;
}

static void test_chance_bound(void) {
    /* 10 balanced classes on 10,000 images: 0.1 + 3*sqrt(0.09/10000) = 0.109 */
    CHECK_NEAR(lb_watch_chance_bound(10, 0.1, 10000), 0.109, 1e-12, 0, "10 classes");
    /* a majority class of 30% raises the bar */
    CHECK_NEAR(lb_watch_chance_bound(10, 0.3, 10000), 0.3 + 3 * sqrt(0.21 / 10000), 1e-12, 0,
               "majority 0.3");
    CHECK(lb_watch_chance_bound(10, 0.1, 297) > 0.15, "few images: a wide bound");
}

/* The loss window: a constant ln(C) with chance accuracy is "chance", a loss far above it
 * "diverging", a learning run nothing; nothing before quiet_until; each kind reported once. */
static void test_loss_window(void) {
    lb_watch w;
    float ln10 = (float)log(10.0);
    CHECK(lb_watch_init(&w, 10, 20, 50, 0.02f) == LB_OK, "init");
    for (long s = 0; s < 200; s++) {
        lb_watch_step(&w, NULL, s, ln10, 13, 128, 0, 0, 0);
        if (s < 50) CHECK(w.n == 0, "quiet before step 50 (step %ld)", s);
    }
    CHECK(w.n == 1 && has_event(&w, LB_CK_CHANCE, "", "ln(10)"), "chance reported once (%d)", w.n);
    lb_watch_free(&w);

    CHECK(lb_watch_init(&w, 10, 20, 0, 0.02f) == LB_OK, "init");
    for (long s = 0; s < 40; s++) lb_watch_step(&w, NULL, s, 9.0f, 20, 128, 0, 0, 0);
    CHECK(has_event(&w, LB_CK_DIVERGING, "", "diverging"), "diverging");
    CHECK(!has_event(&w, LB_CK_CHANCE, NULL, NULL), "not also chance");
    lb_watch_free(&w);

    /* a run that learns: loss falling from ln 10, accuracy rising */
    CHECK(lb_watch_init(&w, 10, 20, 0, 0.02f) == LB_OK, "init");
    for (long s = 0; s < 300; s++)
        lb_watch_step(&w, NULL, s, ln10 * (float)exp(-s / 50.0),
                      (int)(12 + s / 3 > 128 ? 128 : 12 + s / 3), 128, 0, 0, 0);
    CHECK(w.n == 0, "a learning run is not warned about (%d)", w.n);
    /* non-finite steps: reported once per epoch, counted */
    lb_watch_nonfinite(&w, 7, NULL);
    lb_watch_nonfinite(&w, 8, "conv2.weight");
    CHECK(w.n == 1 && has_event(&w, LB_CK_NONFINITE, "", "loss is not finite at step 7"),
          "the first non-finite step is reported");
    CHECK(w.nonfinite_epoch == 2, "both counted");
    lb_watch_epoch_start(&w);
    w.n = 0;
    lb_watch_nonfinite(&w, 9, "conv2.weight");
    CHECK(has_event(&w, LB_CK_NONFINITE, "conv2.weight", "gradient of 'conv2.weight'"),
          "names the tensor, again in a new epoch");
    /* epoch verdicts: at chance only after quiet_until (the last window at ln 10) */
    for (long s = 300; s < 320; s++) lb_watch_step(&w, NULL, s, ln10, 13, 128, 0, 0, 0);
    w.n = 0;
    w.quiet_until = 100;
    CHECK(lb_watch_epoch_end(&w, 1, 50, 0.1f, 0.1, 10000, 0.1f, 60000) == 0, "too early");
    CHECK(lb_watch_epoch_end(&w, 2, 100, 0.1f, 0.1, 10000, 0.1f, 60000) == 1, "at chance");
    CHECK(lb_watch_epoch_end(&w, 3, 150, 0.5f, 0.1, 10000, 0.1f, 60000) == 0, "not at chance");
    CHECK(has_event(&w, LB_CK_EPOCH_CHANCE, "", "epoch 2 ends at chance"), "epoch event");
    /* a training epoch at 99% with a test at chance: an evaluation problem, warned, no stop */
    CHECK(lb_watch_epoch_end(&w, 4, 200, 0.106f, 0.1, 500, 0.99f, 500) == 0, "eval mismatch");
    CHECK(has_event(&w, LB_CK_EVAL_CHANCE, "", "training accuracy is 0.9900"), "eval event");
    /* an epoch at chance on both sides whose last window learns (a slow start): no stop */
    for (long s = 320; s < 340; s++) lb_watch_step(&w, NULL, s, 1.5f, 13, 128, 0, 0, 0);
    w.n = 0;
    CHECK(lb_watch_epoch_end(&w, 5, 250, 0.1f, 0.1, 10000, 0.1f, 60000) == 0, "learning late");
    CHECK(has_event(&w, LB_CK_EVAL_CHANCE, "", "training loss 1.5000 over the last 20 steps"),
          "late-learning event");
    lb_watch_free(&w);
}

/* Imbalanced classes (90/10): a network that predicts the class shares sits at their entropy
 * (0.325, not ln 2) with the majority's accuracy; that is chance, and a run clearly above it
 * is not. */
static void test_imbalanced(void) {
    int32_t lab[1000];
    for (int i = 0; i < 1000; i++) lab[i] = i % 10 == 3;
    const double h = -(0.9 * log(0.9) + 0.1 * log(0.1));
    lb_watch w;
    CHECK(lb_watch_init(&w, 2, 20, 0, 0.02f) == LB_OK, "init");
    CHECK(lb_watch_set_prior(&w, lab, 1000) == LB_OK, "prior");
    CHECK_NEAR(w.chance_loss, h, 1e-12, 0, "entropy of the shares");
    CHECK_NEAR(w.train_major, 0.9, 1e-12, 0, "majority share");
    for (long s = 0; s < 40; s++) lb_watch_step(&w, NULL, s, (float)h, 115, 128, 0, 0, 0);
    CHECK(w.n == 1 && has_event(&w, LB_CK_CHANCE, "", "entropy of the training split's class"),
          "stuck at the shares' entropy with the majority's accuracy: chance (%d)", w.n);
    lb_watch_free(&w);
    /* the same loss with accuracy well above the majority: learning, no verdict */
    CHECK(lb_watch_init(&w, 2, 20, 0, 0.02f) == LB_OK, "init");
    CHECK(lb_watch_set_prior(&w, lab, 1000) == LB_OK, "prior");
    for (long s = 0; s < 40; s++) lb_watch_step(&w, NULL, s, (float)h, 125, 128, 0, 0, 0);
    CHECK(w.n == 0, "accuracy above the majority share is not chance (%d)", w.n);
    /* without the prior the old rule would not see it: ln 2 is far from 0.325 */
    CHECK(fabs(h - log(2.0)) > 0.05 * log(2.0), "the two levels differ");
    /* epoch verdicts: a training accuracy at the majority share is chance, above it is not */
    for (long s = 40; s < 60; s++) lb_watch_step(&w, NULL, s, (float)h, 115, 128, 0, 0, 0);
    w.n = 0;
    CHECK(lb_watch_epoch_end(&w, 1, 60, 0.9f, 0.9, 5000, 0.9f, 1000) == 1,
          "test and training accuracy at the majorities: at chance");
    CHECK(has_event(&w, LB_CK_EPOCH_CHANCE, "", "0.9000 in the training split"), "epoch event");
    CHECK(lb_watch_epoch_end(&w, 2, 80, 0.9f, 0.9, 5000, 0.99f, 1000) == 0,
          "training accuracy above the majority: not at chance");
    lb_watch_free(&w);
    /* balanced labels give back ln(classes) and the old messages */
    for (int i = 0; i < 1000; i++) lab[i] = i % 10;
    CHECK(lb_watch_init(&w, 10, 20, 0, 0.02f) == LB_OK, "init");
    CHECK(lb_watch_set_prior(&w, lab, 1000) == LB_OK, "prior");
    CHECK_NEAR(w.chance_loss, log(10.0), 1e-12, 0, "balanced: ln 10");
    for (long s = 0; s < 40; s++) lb_watch_step(&w, NULL, s, (float)log(10.0), 13, 128, 0, 0, 0);
    CHECK(has_event(&w, LB_CK_CHANCE, "", "ln(10) = 2.303"), "balanced message");
    lb_watch_free(&w);
}

static lb_net *cnn(lb_qkind kind) {
    lb_model_cfg mc;
    lb_model_cfg_default(&mc);
    mc.q.kind = kind;
    lb_net *n = NULL;
    if (lb_model_build(&mc, &n) != LB_OK || lb_net_plan(n, 8, 1) != LB_OK) {
        lb_net_free(n);
        return NULL;
    }
    lb_net_init(n, 3);
    return n;
}

static int node_of(const lb_net *n, const char *name) {
    for (int i = 0; i < n->nnodes; i++)
        if (strcmp(n->nodes[i].name, name) == 0) return i;
    return -1;
}

/* On the cnn: a healthy forward is quiet; an LSQ step pushed below zero lands on its floor and is
 * reported with the layer's name; weights far inside half a step quantize to all-zero codes;
 * zeroed conv weights kill the layer after them. */
static void test_on_network(void) {
    lb_net *n = cnn(LB_Q_LSQ);
    CHECK(n != NULL, "cnn: %s", lb_error_msg());
    if (!n) return;
    float x[8 * 28 * 28];
    for (int i = 0; i < 8 * 28 * 28; i++) x[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;
    lb_watch w;
    CHECK(lb_watch_init(&w, 10, 10, 0, 0.02f) == LB_OK, "init");
    lb_net_forward(n, x, 8, 1);
    lb_watch_forward(&w, n, 8, 0);
    CHECK(w.n == 0, "a healthy forward is quiet (%s)", w.n ? w.ev[0].message : "");
    int node = -1, isw = -1;
    CHECK(lb_net_project(n, &node, &isw) == 0 && node == 0, "fresh steps inside");

    /* the fc weight step driven below zero: projected to its floor, reported */
    int fc = node_of(n, "fc");
    float s0 = n->nodes[fc].wq.param[0];
    n->nodes[fc].wq.param[0] = -3.88f;
    int at = lb_net_project(n, &node, &isw);
    CHECK(at == 1 && node == fc && isw == 1, "floor: %d channel at node %d (weight %d)", at, node,
          isw);
    CHECK(n->nodes[fc].wq.param[0] == LB_LSQ_FLOOR * s0, "fc step on its floor");
    lb_watch_step(&w, n, 5, 2.0f, 30, 128, at, node, isw);
    CHECK(has_event(&w, LB_CK_FLOOR, "fc", "weight step of layer 'fc'"), "floor event names fc");

    /* fc weights far inside half a step: every weight code 0 */
    n->nodes[fc].wq.param[0] = s0;
    float *wfc = n->param + n->params[n->nodes[fc].pw].off;
    size_t nw = n->params[n->nodes[fc].pw].n;
    for (size_t i = 0; i < nw; i++) wfc[i] *= 1e-4f;
    /* a nonzero bias, so the logits are not all zero (that would be a dead layer first) */
    float *bfc = n->param + n->params[n->nodes[fc].pb].off;
    for (int k = 0; k < n->nodes[fc].c; k++) bfc[k] = 0.1f * (float)(k + 1);
    lb_net_forward(n, x, 8, 0);
    lb_watch_forward(&w, n, 8, 6);
    CHECK(has_event(&w, LB_CK_ZERO_CODES, "fc", "every weight code of layer 'fc' is 0"),
          "zero codes in fc");

    /* conv2's weights all zero: its BN sees a constant, its ReLU output is all zero */
    w.reported = 0;
    w.n = 0;
    int c2 = node_of(n, "conv2");
    float *wc = n->param + n->params[n->nodes[c2].pw].off;
    memset(wc, 0, n->params[n->nodes[c2].pw].n * sizeof *wc);
    lb_net_forward(n, x, 8, 1);
    lb_watch_forward(&w, n, 8, 7);
    CHECK(w.n >= 1 && w.ev[0].kind == LB_CK_DEAD && strstr(w.ev[0].message, "outputs only zeros"),
          "dead layer after conv2: %s", w.n ? w.ev[0].message : "none");
    lb_watch_free(&w);
    lb_net_free(n);
}

/* Epochs from the data set's size, the warm-up share and floor, the lr for the model and batch,
 * and the schedules that leave nothing to train. */
static void test_resolve(void) {
    lb_train_cfg c;
    lb_sched s;
    char note[512];
    lb_train_cfg_default(&c);
    c.sched.base = lb_train_default_lr("cnn", c.batch);
    CHECK(c.epochs == 0 && c.warmup_epochs < 0 && c.aug.hflip == 0, "auto defaults, no flip");
    /* Fashion-MNIST: 469 steps an epoch -> 15 epochs, warm-up 5% = 351 steps */
    CHECK(lb_train_resolve(&c, 60000, 469, &s, note, sizeof note) == LB_OK, "fmnist: %s",
          lb_error_msg());
    CHECK(c.epochs == 15 && s.total == 7035 && s.warmup == 351, "fmnist %d %ld %ld", c.epochs,
          s.total, s.warmup);
    CHECK(strstr(note, "15 epochs x 469 steps") != NULL, "note: %s", note);
    /* 1,500 images: 12 steps an epoch -> 84 epochs (1008 steps), warm-up at least 100 */
    lb_train_cfg_default(&c);
    c.sched.base = 0.02f;
    CHECK(lb_train_resolve(&c, 1500, 12, &s, NULL, 0) == LB_OK, "digits");
    CHECK(c.epochs == 84 && s.total == 1008 && s.warmup == 100, "digits %d %ld %ld", c.epochs,
          s.total, s.warmup);
    /* the default batch: 128 while an epoch has >= 32 steps, halved down to 16 below that */
    CHECK(lb_train_default_batch(60000) == 128 && lb_train_default_batch(4096) == 128,
          "big sets keep 128");
    CHECK(lb_train_default_batch(4095) == 64 && lb_train_default_batch(2048) == 64, "64");
    CHECK(lb_train_default_batch(1500) == 32 && lb_train_default_batch(1024) == 32, "32");
    CHECK(lb_train_default_batch(1023) == 16 && lb_train_default_batch(500) == 16 &&
              lb_train_default_batch(10) == 16,
          "floor 16: %d", lb_train_default_batch(500));
    /* 10 images, one step an epoch: capped */
    lb_train_cfg_default(&c);
    c.sched.base = 0.02f;
    CHECK(lb_train_resolve(&c, 10, 1, &s, NULL, 0) == LB_OK && c.epochs == LB_MAX_AUTO_EPOCHS,
          "cap %d", c.epochs);
    /* a short explicit run: a tenth of it as warm-up */
    lb_train_cfg_default(&c);
    c.sched.base = 0.02f;
    c.epochs = 2;
    CHECK(lb_train_resolve(&c, 512, 16, &s, NULL, 0) == LB_OK && s.warmup == 3, "short %ld",
          s.warmup);
    /* errors */
    c.epochs = 2;
    c.warmup_epochs = 2;
    CHECK(lb_train_resolve(&c, 512, 16, &s, NULL, 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "--warmup"),
          "warm-up as long as the run: %s", lb_error_msg());
    c.warmup_epochs = 0;
    c.sched.kind = LB_SCHED_STEP;
    c.sched.step_every = 2;
    CHECK(lb_train_resolve(&c, 512, 16, &s, NULL, 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "--step-epochs"),
          "step schedule that never steps: %s", lb_error_msg());
    /* the default rates, linear in the batch */
    CHECK(lb_train_default_lr("cnn", 128) == 0.02f && lb_train_default_lr("cnn", 32) == 0.005f &&
              lb_train_default_lr("resnet20", 256) == 0.2f,
          "default rates");
    lb_on_collapse oc;
    CHECK(lb_on_collapse_parse("warn", &oc) == LB_OK && oc == LB_ON_COLLAPSE_WARN, "warn");
    CHECK(lb_on_collapse_parse("stop", &oc) == LB_OK && oc == LB_ON_COLLAPSE_STOP, "stop");
    CHECK(lb_on_collapse_parse("maybe", &oc) == LB_EINVAL, "maybe");
}

static const float *param_of(const lb_net *n, const char *name, float **grad) {
    int i = lb_net_find_param(n, name);
    if (i < 0) return NULL;
    if (grad) *grad = n->grad + n->params[i].off;
    return n->param + n->params[i].off;
}

/* The float phase (--quant-delay): with quant_off an LSQ cnn computes what the same float cnn
 * computes, bit for bit, forward and backward; its quantizers neither initialize nor get a
 * gradient, and the watch does not read their (empty) codes. Once on, the first training forward
 * initializes them from the weights reached. */
static void test_quant_off(void) {
    lb_net *q = cnn(LB_Q_LSQ), *f = cnn(LB_Q_NONE);
    CHECK(q && f, "cnn: %s", lb_error_msg());
    if (!q || !f) {
        lb_net_free(q);
        lb_net_free(f);
        return;
    }
    float x[8 * 28 * 28], dl[8 * 10];
    for (int i = 0; i < 8 * 28 * 28; i++) x[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;
    for (int i = 0; i < 8 * 10; i++) dl[i] = (float)((i * 31) % 17) / 17.0f - 0.5f;
    int fc = node_of(q, "fc");
    q->nodes[fc].wq.dparam[0] = 123.0f; /* a stale gradient the float phase must clear */
    q->quant_off = 1;
    const float *yq = lb_net_forward(q, x, 8, 1), *yf = lb_net_forward(f, x, 8, 1);
    CHECK(memcmp(yq, yf, 8 * 10 * sizeof(float)) == 0, "float phase: the float logits");
    CHECK(lb_net_backward(q, dl) == LB_OK && lb_net_backward(f, dl) == LB_OK, "backward");
    const char *names[] = {"conv1.weight", "conv2.weight", "fc.weight", "fc.bias"};
    for (int k = 0; k < 4; k++) {
        float *gq = NULL, *gf = NULL;
        param_of(q, names[k], &gq);
        param_of(f, names[k], &gf);
        int i = lb_net_find_param(f, names[k]);
        CHECK(gq && gf && i >= 0 && memcmp(gq, gf, f->params[i].n * sizeof(float)) == 0,
              "float phase: %s's gradient is the float net's", names[k]);
    }
    int inited = 0, graded = 0;
    for (int i = 1; i < q->nnodes; i++) {
        const lb_node *d = &q->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        inited += d->wq.state[0] != 0 || (d->aqcfg.kind != LB_Q_NONE && d->aq.state[0] != 0);
        for (int j = 0; j < d->wq.nparam; j++) graded += d->wq.dparam[j] != 0;
        for (int j = 0; j < d->aq.nparam; j++) graded += d->aq.dparam[j] != 0;
    }
    CHECK(inited == 0 && graded == 0, "float phase: %d quantizers initialized, %d gradients",
          inited, graded);
    CHECK(lb_net_reg(q) == 0.0f, "no regularizer in the float phase");
    lb_watch w;
    CHECK(lb_watch_init(&w, 10, 10, 0, 0.02f) == LB_OK, "init");
    lb_watch_forward(&w, q, 8, 0);
    CHECK(w.n == 0, "float phase: no codes to judge (%s)", w.n ? w.ev[0].message : "");
    /* the quantizers start: initialized from the weights as they are now */
    float *wfc = (float *)param_of(q, "fc.weight", NULL);
    for (size_t i = 0; i < q->params[q->nodes[fc].pw].n; i++) wfc[i] *= 2.0f;
    q->quant_off = 0;
    lb_net_forward(q, x, 8, 1);
    CHECK(q->nodes[fc].wq.state[0] == 1.0f, "initialized on the first quantized forward");
    double m = 0;
    size_t nw = q->params[q->nodes[fc].pw].n;
    for (size_t i = 0; i < nw; i++) m += fabs((double)wfc[i]);
    float want = (float)(2.0 * (m / (double)nw) / sqrt((double)q->nodes[fc].wq.qp));
    CHECK(fabsf(q->nodes[fc].wq.param[0] - want) <= 1e-5f * want,
          "fc step from the weights reached: %g, LSQ's init %g", (double)q->nodes[fc].wq.param[0],
          (double)want);
    CHECK(memcmp(lb_net_forward(q, x, 8, 0), yf, 8 * 10 * sizeof(float)) != 0,
          "quantized now: other logits");
    lb_watch_free(&w);
    lb_net_free(q);
    lb_net_free(f);
}

/* Which runs get a float phase by default, the explicit option, and its errors. */
static void test_resolve_quant_delay(void) {
    lb_train_cfg c;
    lb_sched s;
    char note[768];
    lb_train_cfg_default(&c);
    c.sched.base = 0.02f;
    c.model.q.kind = LB_Q_LSQ;
    CHECK(lb_train_resolve(&c, 60000, 469, &s, note, sizeof note) == LB_OK, "%s", lb_error_msg());
    CHECK(c.quant_delay == s.warmup && c.quant_delay == 351, "LSQ from scratch: the warm-up %ld",
          c.quant_delay);
    CHECK(strstr(note, "quantizers off for the first 351 steps") != NULL, "note: %s", note);
    CHECK(c.quant_delay_open == 1 && isnan(c.quant_delay_ema) && strstr(note, "90% of chance"),
          "auto LSQ from scratch: open (%d), note %s", c.quant_delay_open, note);
    const char *why[] = {"float", "reg", "init", "learn-bits"};
    for (int k = 0; k < 4; k++) {
        lb_train_cfg_default(&c);
        c.sched.base = 0.02f;
        c.model.q.kind = k == 0 ? LB_Q_NONE : k == 1 ? LB_Q_REG : LB_Q_LSQ;
        if (k == 2) strcpy(c.init, "fp32.safetensors");
        c.learn_bits = k == 3;
        CHECK(lb_train_resolve(&c, 60000, 469, &s, note, sizeof note) == LB_OK &&
                  c.quant_delay == 0 && !strstr(note, "quantizers off"),
              "%s: no float phase by default (%ld)", why[k], c.quant_delay);
    }
    lb_train_cfg_default(&c);
    c.sched.base = 0.02f;
    c.model.q.kind = LB_Q_REG;
    c.quant_delay_epochs = 0.5f;
    CHECK(lb_train_resolve(&c, 60000, 469, &s, note, sizeof note) == LB_OK &&
              c.quant_delay == 234 && strstr(note, "(--quant-delay)") && c.quant_delay_open == 0,
          "explicit: half an epoch, a fixed phase (%ld, open %d)", c.quant_delay,
          c.quant_delay_open);
    c.quant_delay_epochs = 15;
    CHECK(lb_train_resolve(&c, 60000, 469, &s, NULL, 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "never start"),
          "as long as the run: %s", lb_error_msg());
    c.quant_delay_epochs = 1;
    c.model.q.kind = LB_Q_NONE;
    CHECK(lb_train_resolve(&c, 60000, 469, &s, NULL, 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "no quantizers"),
          "float model: %s", lb_error_msg());
    c.model.q.kind = LB_Q_LSQ;
    c.learn_bits = 1;
    CHECK(lb_train_resolve(&c, 60000, 469, &s, NULL, 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "--learn-bits"),
          "learned widths: %s", lb_error_msg());
    /* a resumed run keeps what it recorded, whatever the option now resolves to */
    lb_train_cfg_default(&c);
    c.sched.base = 0.02f;
    c.model.q.kind = LB_Q_LSQ;
    strcpy(c.resume, "run.safetensors");
    c.quant_delay = 77;
    CHECK(lb_train_resolve(&c, 60000, 469, &s, NULL, 0) == LB_OK && c.quant_delay == 77,
          "resume keeps %ld", c.quant_delay);
}

/* The open auto phase: it ends at the warm-up where the net learns by then, runs on while the
 * loss stays at chance (to half the run at most), and a config written and read back mid-phase
 * (a checkpoint) decides as the uninterrupted run. */
static long run_phase(lb_train_cfg *c, long from, long to, double (*loss)(long), int *how) {
    for (long t = from; t < to; t++) {
        int h = lb_float_phase_step(c, t, (float)loss(t), 10, log(10.0), 1000, 100);
        if (h) *how = h;
    }
    return c->quant_delay;
}
static double loss_fast(long t) {
    return t < 50 ? 2.30 : 1.0;
}
static double loss_late(long t) {
    return t < 200 ? 2.31 : 1.5;
}
static double loss_never(long t) {
    return 2.30 + 0.01 * (double)(t % 3);
}

static void test_open_phase(void) {
    lb_train_cfg c;
    char note[768];
    int how = 0;
    lb_train_cfg_default(&c);
    c.quant_delay = 100, c.quant_delay_open = 1;
    CHECK(run_phase(&c, 0, 1000, loss_fast, &how) == 100 && how == 0 && !c.quant_delay_open,
          "learned by the warm-up: ends there (%ld, how %d)", c.quant_delay, how);
    lb_train_cfg_default(&c);
    c.quant_delay = 100, c.quant_delay_open = 1, how = 0;
    long end = run_phase(&c, 0, 1000, loss_late, &how);
    /* the loss falls at step 200; a 10-step average crosses 0.9 ln 10 = 2.07 two steps later */
    CHECK(end > 200 && end < 215 && how == 1 && !c.quant_delay_open,
          "slow start: ends once learning (%ld, how %d)", end, how);
    lb_float_phase_note(&c, how, log(10.0), note, sizeof note);
    CHECK(strstr(note, "below 90% of chance") && strstr(note, "after step"), "note: %s", note);
    lb_train_cfg_default(&c);
    c.quant_delay = 100, c.quant_delay_open = 1, how = 0;
    CHECK(run_phase(&c, 0, 1000, loss_never, &how) == 500 && how == 2 && !c.quant_delay_open,
          "never learning: half the run (%ld, how %d)", c.quant_delay, how);
    /* a checkpoint at step 150 of the slow start, resumed: the same end */
    lb_train_cfg a, b;
    lb_train_cfg_default(&a);
    a.quant_delay = 100, a.quant_delay_open = 1;
    run_phase(&a, 0, 150, loss_late, &how);
    char *js = lb_train_cfg_to_json(&a);
    lb_train_cfg_default(&b);
    CHECK(js && lb_train_cfg_from_json(js, "mid.ckpt", &b) == LB_OK, "%s", lb_error_msg());
    CHECK(b.quant_delay_open == 1 && b.quant_delay == a.quant_delay &&
              b.quant_delay_ema == a.quant_delay_ema,
          "round trip: open %d, %ld, ema %.17g vs %.17g", b.quant_delay_open, b.quant_delay,
          b.quant_delay_ema, a.quant_delay_ema);
    free(js);
    CHECK(run_phase(&b, 150, 1000, loss_late, &how) == end, "resumed: %ld vs %ld", b.quant_delay,
          end);
    /* a closed phase records nothing more; a damaged value is refused */
    js = lb_train_cfg_to_json(&b);
    CHECK(js && !strstr(js, "quant_delay_open") && !strstr(js, "quant_delay_ema"), "closed: %s",
          js ? js : "");
    free(js);
    js = lb_train_cfg_to_json(&a);
    char *at = js ? strstr(js, "\"quant_delay_open\":") : NULL;
    CHECK(at != NULL, "open phase recorded");
    if (at) {
        at[strlen("\"quant_delay_open\":")] = '7';
        lb_train_cfg_default(&b);
        CHECK(lb_train_cfg_from_json(js, "bad.ckpt", &b) == LB_EFORMAT &&
                  strstr(lb_error_msg(), "bad.ckpt") && strstr(lb_error_msg(), "quant_delay_open"),
              "damaged: %s", lb_error_msg());
    }
    free(js);
    js = lb_train_cfg_to_json(&a);
    at = js ? strstr(js, "\"quant_delay\":") : NULL;
    CHECK(at != NULL, "phase steps recorded");
    if (at) {
        memcpy(at + strlen("\"quant_delay\":"), "0", 1);
        char *e = at + strlen("\"quant_delay\":") + 1;
        while (*e >= '0' && *e <= '9') *e++ = ' ';
        lb_train_cfg_default(&b);
        CHECK(lb_train_cfg_from_json(js, "bad.ckpt", &b) == LB_EFORMAT &&
                  strstr(lb_error_msg(), "quant_delay_open"),
              "open without a phase: %s", lb_error_msg());
    }
    free(js);
}

int main(void) {
    test_chance_bound();
    test_loss_window();
    test_imbalanced();
    test_on_network();
    test_resolve();
    test_quant_off();
    test_resolve_quant_delay();
    test_open_phase();
    TEST_MAIN_END("test_robust");
}
