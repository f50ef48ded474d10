/* Private to src/nn: table helpers shared by build.c, plan.c and the checkpoint mapping. */
#ifndef LB_NN_INTERNAL_H
#define LB_NN_INTERNAL_H

#include "lb_nn.h"

int lb_net_add_param(lb_net *n, int node, const char *suffix, int ndim, const int *shape,
                     lb_group g);
int lb_net_add_state(lb_net *n, int node, const char *suffix, int ndim, const int *shape);

/* A new node reading in0 (and in1), shape and time steps copied from in0; -1 after an error. */
int lb_net_node_new(lb_net *n, lb_op op, const char *name, int in0, int in1);
/* Records the first building error (naming the layer) and returns -1. */
int lb_net_fail(lb_net *n, lb_status st, const char *msg, const char *name);

static inline size_t lb_node_size(const lb_node *d) {
    return (size_t)d->c * d->h * d->w;
}

/* Frames a node holds for a batch of B samples (T*B inside a spiking network). */
static inline int lb_node_frames(const lb_node *d, int B) {
    return B * d->tm;
}

#endif
