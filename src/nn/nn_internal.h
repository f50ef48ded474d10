/* Private to src/nn: table helpers shared by build.c, plan.c and the checkpoint mapping. */
#ifndef LB_NN_INTERNAL_H
#define LB_NN_INTERNAL_H

#include "lb_nn.h"

int lb_net_add_param(lb_net *n, int node, const char *suffix, int ndim, const int *shape,
                     lb_group g);
int lb_net_add_state(lb_net *n, int node, const char *suffix, int ndim, const int *shape);

static inline size_t lb_node_size(const lb_node *d) {
    return (size_t)d->c * d->h * d->w;
}

#endif
