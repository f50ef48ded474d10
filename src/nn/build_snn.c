/* Building the spiking pieces of a graph: time expansion, LIF neurons, per-frame layer norm and
 * the readout over time (docs/snn.md). Not their kernels (src/ops) nor the models (zoo_snn.c). */
#include "nn_internal.h"

#include <math.h>

#define LB_T_MAX 256 /* time steps: far beyond what BPTT memory allows at any useful batch */

int lb_net_encode(lb_net *n, int in, lb_encoding enc, int t) {
    int id = lb_net_node_new(n, LB_OP_ENCODE, NULL, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (t < 1 || t > LB_T_MAX)
        return lb_net_fail(n, LB_EINVAL, "time steps must be 1..256", d->name);
    if (d->tm != 1) return lb_net_fail(n, LB_EINVAL, "input is already time-expanded", d->name);
    if (enc == LB_ENC_EVENTS) {
        if (in != 0 || d->c % t)
            return lb_net_fail(n, LB_ESHAPE,
                               "event frames must be the network input with T*polarities planes",
                               d->name);
        d->c /= t;
    } else if (enc == LB_ENC_RATE) {
        if (in != 0)
            return lb_net_fail(n, LB_EINVAL, "rate encoding reads the input image", d->name);
        d->binary = d->nonneg = 1;
    } else if (enc != LB_ENC_DIRECT) {
        return lb_net_fail(n, LB_EINVAL, "unknown encoding", d->name);
    }
    d->enc = enc;
    d->tm = t;
    return id;
}

int lb_net_lif(lb_net *n, const char *name, int in, const lb_lif_cfg *cfg) {
    int id = lb_net_node_new(n, LB_OP_LIF, name, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (in == 0) return lb_net_fail(n, LB_EINVAL, "a LIF layer cannot read the input", d->name);
    if (!(cfg->beta >= 0 && cfg->beta <= 1))
        return lb_net_fail(n, LB_EINVAL, "beta (decay) must be in [0, 1]", d->name);
    if (!(cfg->k.theta > 0 && isfinite(cfg->k.theta)))
        return lb_net_fail(n, LB_EINVAL, "threshold must be > 0", d->name);
    if (!(cfg->k.slope > 0 && isfinite(cfg->k.slope)))
        return lb_net_fail(n, LB_EINVAL, "surrogate slope must be > 0", d->name);
    if (cfg->k.mem_bits && (cfg->k.mem_bits < 3 || cfg->k.mem_bits > 16))
        return lb_net_fail(n, LB_EINVAL, "membrane bits must be 3..16 (0: float)", d->name);
    if (cfg->learn_beta < 0 || cfg->learn_beta > 2)
        return lb_net_fail(n, LB_EINVAL, "learn_beta must be 0, 1 or 2", d->name);
    d->lif = *cfg;
    d->lif.k.beta_per_channel = cfg->learn_beta == 2;
    d->binary = d->nonneg = 1;
    if (cfg->learn_beta) {
        int nb = cfg->learn_beta == 2 ? d->c : 1;
        d->pw = lb_net_add_param(n, id, "beta", 1, &nb, LB_GROUP_NODECAY);
    }
    return id;
}

int lb_net_ln(lb_net *n, const char *name, int in) {
    int id = lb_net_node_new(n, LB_OP_LN, name, in, -1);
    if (id < 0) return -1;
    n->nodes[id].nonneg = n->nodes[id].binary = 0;
    return id;
}

int lb_net_tsum(lb_net *n, int in, int mean) {
    int id = lb_net_node_new(n, LB_OP_TSUM, NULL, in, -1);
    if (id < 0) return -1;
    lb_node *d = &n->nodes[id];
    if (d->tm < 1) return lb_net_fail(n, LB_EINVAL, "bad time steps", d->name);
    d->scale = mean ? 1.0f / (float)d->tm : 1.0f;
    d->k = d->tm; /* the steps it sums */
    d->tm = 1;
    d->binary = 0;
    return id;
}
