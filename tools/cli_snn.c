/* The spiking-network options of train and bench (docs/snn.md): parsed into lb_snn_cfg, each bad
 * value naming its option. Not the other model options (cli.c). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static int g_slope_given;
static const char *g_snn_opt; /* the first spiking option seen (cli_snn_check) */

static int pick(const char *cmd, const char *opt, const char *v, const char *const *names) {
    int i = lb_name_index(names, v);
    if (i < 0) {
        char m[128] = "";
        for (int k = 0; names[k]; k++)
            snprintf(m + strlen(m), sizeof m - strlen(m), "%s%s", k ? ", " : "", names[k]);
        cli_die(2, cmd, "%s: expected one of %s, got '%s'", opt, m, v);
    }
    return i;
}

int cli_snn_option(const char *cmd, int argc, char **argv, int *i, lb_snn_cfg *s) {
    const char *o = argv[*i];
#define IS(x) (strcmp(o, x) == 0)
#define VAL cli_value(cmd, argc, argv, i)
    if (IS("--timesteps")) {
        s->timesteps = cli_int(cmd, o, VAL, 1, 256);
    } else if (IS("--encoding")) {
        s->encoding = (lb_encoding)pick(cmd, o, VAL, lb_encoding_names);
    } else if (IS("--beta")) {
        s->lif.beta = cli_float(cmd, o, VAL, 0, 1);
    } else if (IS("--learn-beta")) {
        s->lif.learn_beta = pick(cmd, o, VAL, lb_learn_beta_names);
    } else if (IS("--threshold")) {
        s->lif.k.theta = cli_float(cmd, o, VAL, 1e-6, 1e6);
    } else if (IS("--reset")) {
        s->lif.k.reset = (lb_lif_reset)pick(cmd, o, VAL, lb_reset_names);
    } else if (IS("--reset-grad")) {
        static const char *const onoff[] = {"off", "on", NULL};
        s->lif.k.detach_reset = !pick(cmd, o, VAL, onoff);
    } else if (IS("--spike-grad")) {
        s->lif.k.surr = (lb_spike_grad)pick(cmd, o, VAL, lb_spike_grad_names);
        /* snnTorch's default slopes: atan alpha 2, fast sigmoid 25 */
        if (!g_slope_given) s->lif.k.slope = s->lif.k.surr == LB_SG_FSIG ? 25.0f : 2.0f;
    } else if (IS("--slope")) {
        s->lif.k.slope = cli_float(cmd, o, VAL, 1e-6, 1e6);
        g_slope_given = 1;
    } else if (IS("--mem-bits")) {
        s->lif.k.mem_bits = cli_int(cmd, o, VAL, 0, 16);
        if (s->lif.k.mem_bits > 0 && s->lif.k.mem_bits < 3)
            cli_die(2, cmd, "--mem-bits: 0 (float membrane) or 3..16, got %d", s->lif.k.mem_bits);
    } else if (IS("--readout")) {
        s->readout = (lb_readout)pick(cmd, o, VAL, lb_readout_names);
    } else if (IS("--loss")) {
        s->loss = (lb_loss)pick(cmd, o, VAL, lb_loss_names);
    } else if (IS("--count-rates")) {
        const char *v = VAL;
        float on, off;
        char tail;
        if (sscanf(v, "%f/%f%c", &on, &off, &tail) != 2 || !(on >= 0 && on <= 1) ||
            !(off >= 0 && off < on))
            cli_die(2, cmd,
                    "--count-rates: expected CORRECT/INCORRECT rates, 0 <= in < c <= 1, "
                    "got '%s'",
                    v);
        s->rate_on = on;
        s->rate_off = off;
    } else if (IS("--snn-norm")) {
        s->norm = (lb_snn_norm)pick(cmd, o, VAL, lb_snn_norm_names);
    } else if (IS("--snn-dropout")) {
        s->dropout = cli_float(cmd, o, VAL, 0, 0.99);
    } else {
        return 0;
    }
#undef IS
#undef VAL
    if (!g_snn_opt) g_snn_opt = o;
    return 1;
}

void cli_snn_check(const char *cmd, const lb_train_cfg *c) {
    if (g_snn_opt && !lb_model_is_snn(&c->model))
        cli_die(2, cmd, "%s is a spiking-network option: it needs --model snn-vgg or snn-resnet",
                g_snn_opt);
    if (lb_model_is_snn(&c->model) && lb_snn_cfg_check(&c->model.snn) != LB_OK)
        cli_die(2, cmd, "%s", lb_error_msg());
}

void cli_snn_usage(void) {
    fputs("  spiking models (--model snn-vgg | snn-resnet; docs/snn.md):\n"
          "  --timesteps T      time steps 1..256 (default 8)\n"
          "  --encoding E       direct | rate | events (default direct; events: event data)\n"
          "  --beta B           membrane decay in [0, 1] (default 0.5)\n"
          "  --learn-beta L     off | layer | channel: learn the decay (default off)\n"
          "  --threshold X      firing threshold (default 1)\n"
          "  --reset R          subtract | zero (default subtract)\n"
          "  --reset-grad on|off  let the reset carry gradient (default off, as snnTorch)\n"
          "  --spike-grad S     atan | fast-sigmoid surrogate (default atan); --slope X (2, 25)\n"
          "  --mem-bits B       integer membrane on a B-bit grid, 3..16 (default 0: float)\n"
          "  --readout R        membrane (mean of the last layer over time) | count (spikes of\n"
          "                     an output LIF layer, seed 000) (default membrane)\n"
          "  --loss L           ce | mse-count (snnTorch's, targets --count-rates 0.8/0.2)\n"
          "  --snn-norm N       ln (layer norm, seed 000) | bn (default ln)\n"
          "  --snn-dropout P    head dropout (default 0.5)\n",
          stdout);
}
