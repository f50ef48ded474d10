/* Spiking pieces: finite-difference gradient checks through time for the LIF neuron (both resets,
 * both surrogates, reset gradient on and off, learned beta per layer and per channel) on its
 * smooth stand-in, the fast kernel against the reference, the membrane grid, layer norm, the
 * encodings, the readout and the MSE count loss; then spiking models: build, plan, a whole net
 * on the fast and reference op tables, learned beta clamped, checkpoint config round trip, and
 * bad configurations. Against snnTorch / PyTorch values: test_torch_snn.c. */
#include "../src/train/train_internal.h"
#include "lb_backend.h"
#include "lb_models.h"
#include "lb_nn.h"
#include "lb_ops.h"
#include "lb_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float frand(lb_rng *r, float lo, float hi) {
    return lo + (hi - lo) * lb_rng_uniform(r);
}

/* L = sum r * S over every step with the smooth spike; its gradient by BPTT vs central
 * differences of x and beta (double sums of float forwards, step 1e-3). */
static double lif_loss(const lb_lif_desc *d, const float *x, const float *beta, const float *r,
                       float *spk, float *mem) {
    size_t n = (size_t)d->t * d->n * d->c * d->hw;
    lb_lif_forward_ref(d, x, beta, spk, mem);
    double L = 0;
    for (size_t i = 0; i < n; i++) L += (double)r[i] * spk[i];
    return L;
}

/* The same loss with the reset terms frozen at the spikes s0 of the unperturbed run: what a
 * detached reset (snnTorch's) differentiates. */
static double lif_loss_frozen(const lb_lif_desc *d, const float *x, const float *beta,
                              const float *r, const float *s0) {
    size_t stride = (size_t)d->n * d->c * d->hw;
    double L = 0;
    for (size_t i = 0; i < stride; i++) {
        float b = d->beta_per_channel ? beta[i / d->hw % d->c] : beta[0];
        float u = 0;
        for (int t = 0; t < d->t; t++) {
            size_t o = t * stride + i;
            float sp = t ? s0[o - stride] : 0;
            float up = d->reset == LB_RESET_ZERO ? (1 - sp) * u : u;
            float v = b * up + x[o];
            if (d->reset == LB_RESET_SUB) v = v - sp * d->theta;
            u = v;
            float z = u - d->theta;
            float s = d->surr == LB_SG_FSIG
                          ? 0.5f + z / (1.0f + d->slope * fabsf(z))
                          : 0.5f + atanf(3.14159265f / 2 * d->slope * z) / 3.14159265f;
            L += (double)r[o] * s;
        }
    }
    return L;
}

static double lif_fd_loss(const lb_lif_desc *d, const float *x, const float *beta, const float *r,
                          const float *s0, float *spk, float *mem) {
    return d->detach_reset ? lif_loss_frozen(d, x, beta, r, s0) : lif_loss(d, x, beta, r, spk, mem);
}

static void lif_gradcheck(lb_lif_reset reset, lb_spike_grad surr, int detach, int learn) {
    lb_lif_desc d = {.t = 5,
                     .n = 2,
                     .c = 3,
                     .hw = 4,
                     .theta = 1.0f,
                     .reset = reset,
                     .surr = surr,
                     .slope = surr == LB_SG_ATAN ? 2.0f : 5.0f,
                     .detach_reset = detach,
                     .beta_per_channel = learn == 2,
                     .smooth = 1};
    size_t n = (size_t)d.t * d.n * d.c * d.hw;
    lb_rng g;
    lb_rng_seed(&g, 7 + reset * 2 + surr * 4 + detach * 8 + learn * 16);
    float *x = malloc(n * sizeof *x), *r = malloc(n * sizeof *r), *spk = malloc(n * sizeof *spk);
    float *mem = malloc(n * sizeof *mem), *dx = malloc(n * sizeof *dx);
    float beta[3], dbeta[3], part[6 * 5];
    for (size_t i = 0; i < n; i++) x[i] = frand(&g, -0.5f, 1.5f), r[i] = frand(&g, -1, 1);
    for (int k = 0; k < 3; k++) beta[k] = frand(&g, 0.3f, 0.9f);
    lif_loss(&d, x, beta, r, spk, mem);
    lb_lif_backward_ref(&d, beta, spk, mem, r, dx, 0, learn ? dbeta : NULL, part);
    float *s0 = malloc(n * sizeof *s0);
    memcpy(s0, spk, n * sizeof *s0);
    const float h = 1e-3f;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + h;
        double lp = lif_fd_loss(&d, x, beta, r, s0, spk, mem);
        x[i] = x0 - h;
        double lm = lif_fd_loss(&d, x, beta, r, s0, spk, mem);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h), e = fabs(fd - dx[i]) / (fabs(fd) + 1e-2);
        worst = e > worst ? e : worst;
    }
    CHECK(worst < 2e-2, "LIF dx (reset %d, surrogate %d, detach %d): worst rel err %.3g", reset,
          surr, detach, worst);
    if (learn) {
        int nb = learn == 2 ? 3 : 1;
        for (int k = 0; k < nb; k++) {
            float b0 = beta[k];
            beta[k] = b0 + h;
            double lp = lif_fd_loss(&d, x, beta, r, s0, spk, mem);
            beta[k] = b0 - h;
            double lm = lif_fd_loss(&d, x, beta, r, s0, spk, mem);
            beta[k] = b0;
            double fd = (lp - lm) / (2 * h);
            CHECK_NEAR(dbeta[k], fd, 2e-2, 2e-2, "LIF dbeta (learned per layer/channel)");
        }
    }
    /* the fast kernel gives the reference's bits */
    float *spk2 = malloc(n * sizeof *spk2), *mem2 = malloc(n * sizeof *mem2);
    float *dx2 = malloc(n * sizeof *dx2), dbeta2[3];
    lb_lif_forward_ref(&d, x, beta, spk, mem);
    lb_lif_forward(&d, x, beta, spk2, mem2);
    lb_lif_backward_ref(&d, beta, spk, mem, r, dx, 0, learn ? dbeta : NULL, part);
    lb_lif_backward(&d, beta, spk2, mem2, r, dx2, 0, learn ? dbeta2 : NULL, part);
    CHECK(!memcmp(spk, spk2, n * 4) && !memcmp(mem, mem2, n * 4) && !memcmp(dx, dx2, n * 4),
          "LIF fast == reference");
    /* dx_acc adds */
    for (size_t i = 0; i < n; i++) dx2[i] = 1.0f;
    lb_lif_backward(&d, beta, spk2, mem2, r, dx2, 1, NULL, part);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= dx2[i] == 1.0f + dx[i];
    CHECK(ok, "LIF dx_acc accumulates");
    free(x), free(r), free(spk), free(mem), free(dx), free(spk2), free(mem2), free(dx2), free(s0);
}

/* The hard step: spikes are exactly U > theta; reset by subtraction and to zero by hand. */
static void lif_hand(void) {
    lb_lif_desc d = {.t = 4, .n = 1, .c = 1, .hw = 1, .theta = 1.0f, .slope = 2.0f};
    float x[4] = {0.6f, 0.6f, 0.6f, 0.0f}, beta = 0.5f, s[4], u[4];
    lb_lif_forward_ref(&d, x, &beta, s, u);
    /* U: 0.6, 0.9, 1.05 (spike), 0.525 - 1 = -0.475 */
    CHECK(s[0] == 0 && s[1] == 0 && s[2] == 1 && s[3] == 0, "LIF spikes at U > theta");
    CHECK_NEAR(u[3], 0.5f * 1.05f - 1.0f, 1e-6, 0, "reset by subtraction one step late");
    d.reset = LB_RESET_ZERO;
    lb_lif_forward_ref(&d, x, &beta, s, u);
    CHECK_NEAR(u[3], 0.0f, 1e-7, 0, "reset to zero");
    /* membrane grid: 4 bits, theta 1 -> step 0.25, codes -8..7 */
    d.reset = LB_RESET_SUB;
    d.mem_bits = 4;
    float big[4] = {3.0f, 0.1f, 0.0f, 0.0f};
    lb_lif_forward_ref(&d, big, &beta, s, u);
    CHECK_NEAR(lb_lif_mem_step(&d), 0.25f, 0, 0, "membrane step theta/2^(b-2)");
    CHECK(u[0] == 1.75f, "membrane clipped to the top code (7 * 0.25), got %g", u[0]);
    CHECK(u[1] == 0.0f, "0.875 + 0.1 - 1 = -0.025 rounds to code 0, got %g", u[1]);
    float dx[4], dy[4] = {1, 1, 1, 1}, scr[2];
    lb_lif_backward_ref(&d, &beta, s, u, dy, dx, 0, NULL, scr);
    CHECK(dx[0] == 0.0f, "no gradient through a clipped membrane");
}

static void ln_gradcheck(void) {
    int n = 3;
    size_t d = 20;
    lb_rng g;
    lb_rng_seed(&g, 3);
    float x[60], y[60], r[60], dx[60], mean[3], inv[3];
    for (int i = 0; i < 60; i++) x[i] = frand(&g, -2, 3), r[i] = frand(&g, -1, 1);
    lb_ln_forward(n, d, x, y, mean, inv);
    lb_ln_backward(n, d, y, inv, r, dx, 0);
    double worst = 0;
    for (int i = 0; i < 60; i++) {
        float x0 = x[i], yy[60], m2[3], i2[3];
        double lp = 0, lm = 0;
        x[i] = x0 + 1e-2f;
        lb_ln_forward(n, d, x, yy, m2, i2);
        for (int j = 0; j < 60; j++) lp += (double)r[j] * yy[j];
        x[i] = x0 - 1e-2f;
        lb_ln_forward(n, d, x, yy, m2, i2);
        for (int j = 0; j < 60; j++) lm += (double)r[j] * yy[j];
        x[i] = x0;
        double fd = (lp - lm) / 2e-2, e = fabs(fd - dx[i]) / (fabs(fd) + 1e-2);
        worst = e > worst ? e : worst;
    }
    CHECK(worst < 1e-2, "layer norm dx: worst rel err %.3g", worst);
    double s = 0, ss = 0;
    for (size_t j = 0; j < d; j++) s += y[j], ss += (double)y[j] * y[j];
    CHECK(fabs(s / d) < 1e-6 && fabs(ss / d - 1) < 1e-3, "layer norm: zero mean, unit variance");
}

static void io_ops(void) {
    /* repeat and its backward (sum over t) */
    float x[6] = {1, 2, 3, 4, 5, 6}, y[18], dx[6];
    lb_repeat_forward(3, 6, x, y);
    CHECK(y[0] == 1 && y[6] == 1 && y[17] == 6, "repeat");
    lb_repeat_backward(3, 6, y, dx, 0);
    CHECK(dx[0] == 3 && dx[5] == 18, "repeat backward sums over t");
    /* event frames [n][t][p][hw] -> [t][n][p][hw]: n 2, t 3, p 2, hw 1 */
    float ev[12], tm[12];
    for (int i = 0; i < 12; i++) ev[i] = (float)i;
    lb_frames_forward(3, 2, 2, 1, ev, tm);
    /* y[t=1][n=1][p=0] = x[n=1][t=1][p=0] = 6 + 2 = 8 */
    CHECK(tm[(1 * 2 + 1) * 2 + 0] == 8.0f && tm[1] == 1.0f, "event frames to time-major");
    /* readout: count and mean */
    float sp[6] = {1, 0, 1, 1, 0, 1}, c[2], dsp[6], dc[2] = {1, 2};
    lb_tsum_forward(3, 2, 1.0f, sp, c);
    CHECK(c[0] == 2 && c[1] == 2, "spike count");
    lb_tsum_backward(3, 2, 1.0f / 3, dc, dsp, 0);
    CHECK(dsp[4] == 1.0f / 3 && dsp[5] == 2.0f / 3, "mean readout backward");
    /* rate encoding: integer rule, mean rate = intensity, eval draws independent of position */
    enum { D = 4096, T = 8 };
    static float img[2 * D], spk[T * 2 * D], spk2[T * 2 * D];
    for (int i = 0; i < 2 * D; i++) img[i] = (float)(i % 256) / 255.0f;
    lb_rate_encode(T, 2, D, img, spk, 99, 0);
    double s0 = 0, want = 0;
    for (int i = 0; i < T * 2 * D; i++) s0 += spk[i];
    for (int i = 0; i < 2 * D; i++) want += img[i] * T;
    CHECK(fabs(s0 - want) / want < 0.02, "rate: %.0f spikes for an expected %.0f", s0, want);
    int same = 1;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) same &= spk[(t * 2 + 0) * D + i] == spk[(t * 2 + 1) * D + i];
    CHECK(same, "rate (eval): the same image gets the same spikes at any batch position");
    lb_rate_encode(T, 2, D, img, spk2, 99, 1);
    CHECK(memcmp(spk, spk2, sizeof spk) != 0, "rate (training): positions draw apart");
    int full = 1, none = 1;
    for (int t = 0; t < T; t++) full &= spk[t * 2 * D + 255] == 1, none &= spk[t * 2 * D] == 0;
    CHECK(full && none, "rate: pixel 255 always fires, pixel 0 never");
    uint64_t h = lb_spike_hash(99, 5);
    CHECK(h == lb_spike_hash(99, 5) && h != lb_spike_hash(99, 6), "counter hash");
}

static void count_loss(void) {
    /* T 10, targets 8 and 2 */
    float cnt[6] = {8, 2, 2, 5, 5, 5}, g[6];
    int32_t y[2] = {0, 2};
    int nc;
    float L = lb_mse_count_loss(2, 3, cnt, y, 10, 0.8f, 0.2f, g, &nc);
    /* sample 2: errors 3, 3, -3 */
    CHECK_NEAR(L, 27.0f / 6 / 10, 1e-6, 0, "mse count loss (divided by T, as snnTorch)");
    CHECK_NEAR(g[3], 2 * 3.0f / 6 / 10, 1e-7, 0, "mse count gradient");
    CHECK(nc == 1, "argmax on counts, ties to the lowest index (%d)", nc);
    /* floor of T*rate as snnTorch's int(): T 8 -> 6 and 1 */
    float c8[2] = {6, 1};
    int32_t y8 = 0;
    CHECK(lb_mse_count_loss(1, 2, c8, &y8, 8, 0.8f, 0.2f, NULL, NULL) == 0.0f,
          "targets floor(T r)");
}

static lb_model_cfg snn_cfg(const char *arch) {
    lb_model_cfg m;
    lb_model_cfg_default(&m);
    snprintf(m.arch, sizeof m.arch, "%s", arch);
    m.snn.timesteps = 3;
    return m;
}

static void models(void) {
    const int B = 4;
    lb_model_cfg m = snn_cfg("snn-vgg");
    m.snn.lif.learn_beta = 2;
    m.snn.readout = LB_READ_COUNT; /* an output LIF layer too */
    m.q.kind = LB_Q_LSQ;
    lb_net *n[2];
    for (int k = 0; k < 2; k++) {
        CHECK(lb_model_build(&m, &n[k]) == LB_OK, "snn-vgg builds: %s", lb_error_msg());
        if (k) lb_net_set_backend(n[k], lb_backend_cpu_ref());
        CHECK(lb_net_plan(n[k], B, 2) == LB_OK, "snn-vgg plans: %s", lb_error_msg());
        lb_net_init(n[k], 3);
    }
    int lif = 0, aq_after_spikes = 0;
    for (int i = 1; i < n[0]->nnodes; i++) {
        const lb_node *d = &n[0]->nodes[i];
        lif += d->op == LB_OP_LIF;
        if ((d->op == LB_OP_CONV || d->op == LB_OP_LINEAR) && n[0]->nodes[d->in[0]].binary)
            aq_after_spikes += d->aqcfg.kind != LB_Q_NONE;
    }
    CHECK(lif == 6, "snn-vgg 28x28: 4 conv LIFs + 2 head LIFs, got %d", lif);
    CHECK(aq_after_spikes == 0, "no activation quantizer on spike inputs");
    CHECK(lb_net_classes(n[0]) == 10 && n[0]->nodes[n[0]->nnodes - 1].tm == 1, "readout");
    static float x[4 * 784], dl[40];
    lb_rng g;
    lb_rng_seed(&g, 1);
    for (int i = 0; i < 4 * 784; i++) x[i] = frand(&g, -1, 2);
    for (int i = 0; i < 40; i++) dl[i] = frand(&g, -1, 1);
    const float *o0 = lb_net_forward(n[0], x, B, 1), *o1 = lb_net_forward(n[1], x, B, 1);
    CHECK(!memcmp(o0, o1, 40 * 4), "snn-vgg: fast and reference op tables give the same counts");
    CHECK(lb_net_backward(n[0], dl) == LB_OK && lb_net_backward(n[1], dl) == LB_OK, "backward");
    int p = lb_net_find_param(n[0], "lif1.beta");
    CHECK(p >= 0 && n[0]->params[p].n == 32, "per-channel beta of lif1");
    if (p >= 0) {
        double s = 0;
        for (int j = 0; j < 32; j++) s += fabs(n[0]->grad[n[0]->params[p].off + j]);
        CHECK(s > 0, "beta gets a gradient");
        n[0]->param[n[0]->params[p].off] = 1.5f;
        n[0]->param[n[0]->params[p].off + 1] = -0.5f;
        lb_net_project(n[0], NULL, NULL);
        CHECK(n[0]->param[n[0]->params[p].off] == 1.0f &&
                  n[0]->param[n[0]->params[p].off + 1] == 0.0f,
              "learned beta clamped to [0, 1]");
    }
    for (int k = 0; k < 2; k++) lb_net_free(n[k]);
    /* every variant builds and runs: resnet, rate, membrane readout, BN, 48x48 and 128x128 */
    const char *arch[] = {"snn-resnet", "snn-vgg", "snn-vgg", "snn-vgg", "snn-vgg"};
    for (int v = 0; v < 5; v++) {
        lb_model_cfg c = snn_cfg(arch[v]);
        c.snn.timesteps = 2;
        if (v == 1) c.snn.encoding = LB_ENC_RATE, c.snn.readout = LB_READ_MEMBRANE;
        if (v == 2) c.snn.norm = LB_SNN_BN, c.in_h = c.in_w = 48;
        if (v == 3) c.in_h = c.in_w = 128, c.snn.lif.k.mem_bits = 8;
        if (v == 4) c.snn.encoding = LB_ENC_EVENTS, c.in_c = 4, c.in_h = c.in_w = 34;
        lb_net *q;
        lb_status st = lb_model_build(&c, &q);
        CHECK(st == LB_OK, "variant %d builds: %s", v, lb_error_msg());
        if (st != LB_OK) continue;
        CHECK(lb_net_plan(q, 2, 2) == LB_OK, "variant %d plans: %s", v, lb_error_msg());
        lb_net_init(q, 1);
        size_t in = (size_t)2 * c.in_c * c.in_h * c.in_w;
        float *xi = malloc(in * sizeof *xi);
        for (size_t i = 0; i < in; i++) xi[i] = frand(&g, 0, 1);
        const float *o = lb_net_forward(q, xi, 2, 1);
        int fin = 1;
        for (int i = 0; i < 20; i++) fin &= isfinite(o[i]);
        CHECK(fin, "variant %d: finite outputs", v);
        float d2[20] = {0};
        CHECK(lb_net_backward(q, d2) == LB_OK, "variant %d backward", v);
        free(xi);
        lb_net_free(q);
    }
}

static void bad_configs(void) {
    lb_net *n;
    lb_model_cfg m = snn_cfg("snn-vgg");
    m.snn.timesteps = 0;
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "--timesteps"), "T = 0: %s",
          lb_error_msg());
    m = snn_cfg("snn-vgg");
    m.snn.loss = LB_LOSS_MSE_COUNT;
    m.snn.readout = LB_READ_MEMBRANE;
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "mse-count"),
          "mse-count with membrane readout: %s", lb_error_msg());
    m = snn_cfg("snn-vgg");
    m.snn.encoding = LB_ENC_EVENTS; /* a 1-channel image is not T x polarity planes */
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "events"),
          "events on images: %s", lb_error_msg());
    m = snn_cfg("snn-vgg");
    m.snn.lif.beta = 1.5f;
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "--beta"), "beta 1.5");
    /* a time-expanded net must end in a readout */
    m = snn_cfg("snn-vgg");
    lb_net *q = lb_net_new(1, 4, 4);
    int x = lb_net_encode(q, 0, LB_ENC_DIRECT, 2);
    x = lb_net_lif(q, "l", lb_net_conv(q, "c", x, 2, 3, 1, 1, 1, 0), &m.snn.lif);
    CHECK(lb_net_plan(q, 1, 1) == LB_EINVAL && strstr(lb_error_msg(), "readout"), "no readout: %s",
          lb_error_msg());
    lb_net_free(q);
}

static void config_roundtrip(void) {
    lb_model_cfg m = snn_cfg("snn-resnet"), back;
    m.snn.timesteps = 6;
    m.snn.encoding = LB_ENC_RATE;
    m.snn.lif.k.reset = LB_RESET_ZERO;
    m.snn.lif.k.surr = LB_SG_FSIG;
    m.snn.lif.k.slope = 25;
    m.snn.lif.k.mem_bits = 10;
    m.snn.lif.learn_beta = 1;
    m.snn.loss = LB_LOSS_MSE_COUNT;
    m.snn.readout = LB_READ_COUNT;
    m.snn.norm = LB_SNN_BN;
    char *js = lb_model_cfg_to_json(&m);
    CHECK(js && lb_model_cfg_from_json(js, "x", &back) == LB_OK, "snn config parses back");
    CHECK(!memcmp(&m.snn, &back.snn, sizeof m.snn), "snn config round trip");
    free(js);
    const char *bad = "{\"arch\":\"snn-vgg\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
                      "\"snn\":{\"surrogate\":\"relu\"}}";
    CHECK(lb_model_cfg_from_json(bad, "f.st", &back) == LB_EFORMAT &&
              strstr(lb_error_msg(), "surrogate"),
          "bad snn metadata: %s", lb_error_msg());
}

int main(void) {
    for (int reset = 0; reset < 2; reset++)
        for (int surr = 0; surr < 2; surr++)
            for (int detach = 0; detach < 2; detach++)
                lif_gradcheck((lb_lif_reset)reset, (lb_spike_grad)surr, detach, 0);
    lif_gradcheck(LB_RESET_SUB, LB_SG_ATAN, 1, 1);
    lif_gradcheck(LB_RESET_ZERO, LB_SG_FSIG, 0, 2);
    lif_hand();
    ln_gradcheck();
    io_ops();
    count_loss();
    models();
    bad_configs();
    config_roundtrip();
    TEST_MAIN_END("snn");
}
