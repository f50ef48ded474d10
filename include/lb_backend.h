/* lb_backend: the backend-neutral op table a network runs on. lb_nn calls kernels only through
 * it, so a GPU backend is a second table (with device buffers behind the same pointers) rather
 * than a change to the graph code. Two CPU tables exist: "cpu" (the fast dispatching kernels)
 * and "cpu-ref" (the scalar reference kernels where one exists), which lets tests run a whole
 * network on the references. Descriptors and semantics are lb_ops'. */
#ifndef LB_BACKEND_H
#define LB_BACKEND_H

#include "lb_ops.h"

typedef struct lb_backend {
    const char *name;
    size_t (*conv2d_scratch_floats)(const lb_conv2d_desc *d, int nthreads);
    void (*conv2d_forward)(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                           float *y, float *scratch);
    void (*conv2d_backward)(const lb_conv2d_desc *d, const float *x, const float *w,
                            const float *dy, float *dx, int dx_acc, float *dw, float *db,
                            float *scratch);
    void (*linear_forward)(int n, int in, int out, const float *x, const float *w, const float *b,
                           float *y);
    void (*linear_backward)(int n, int in, int out, const float *x, const float *w, const float *dy,
                            float *dx, int dx_acc, float *dw, float *db);
    void (*bn_forward_train)(const lb_bn_desc *d, const float *x, const float *gamma,
                             const float *beta, float *y, float *mean, float *invstd,
                             float *run_mean, float *run_var);
    void (*bn_forward_eval)(const lb_bn_desc *d, const float *x, const float *gamma,
                            const float *beta, const float *run_mean, const float *run_var,
                            float *y);
    void (*bn_backward)(const lb_bn_desc *d, const float *x, const float *gamma, const float *mean,
                        const float *invstd, const float *dy, float *dx, int dx_acc, float *dgamma,
                        float *dbeta);
    void (*bn_backward_act)(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                            const float *mean, const float *invstd, float *dy, float *dx,
                            int dx_acc, float *dgamma, float *dbeta);
    void (*relu_forward)(size_t n, const float *x, float *y);
    void (*relu_backward)(size_t n, const float *y, const float *dy, float *dx, int dx_acc);
    void (*relu6_forward)(size_t n, const float *x, float *y);
    void (*relu6_backward)(size_t n, const float *y, const float *dy, float *dx, int dx_acc);
    void (*maxpool_forward)(const lb_pool_desc *d, const float *x, float *y, int32_t *argmax);
    void (*maxpool_backward)(const lb_pool_desc *d, const int32_t *argmax, const float *dy,
                             float *dx, int dx_acc);
    void (*avgpool_forward)(const lb_pool_desc *d, const float *x, float *y);
    void (*avgpool_backward)(const lb_pool_desc *d, const float *dy, float *dx, int dx_acc);
    void (*gap_forward)(int n, int c, int hw, const float *x, float *y);
    void (*gap_backward)(int n, int c, int hw, const float *dy, float *dx, int dx_acc);
    void (*add_forward)(size_t n, int act, const float *a, const float *b, float *y);
    void (*add_backward)(size_t n, int act, const float *y, float *dy, float *da, int da_acc,
                         float *db, int db_acc);
    void (*shortcut_forward)(int n, int cin, int h, int w, int cout, int stride, const float *x,
                             float *y);
    void (*shortcut_backward)(int n, int cin, int h, int w, int cout, int stride, const float *dy,
                              float *dx, int dx_acc);
    void (*dropout_forward)(size_t n, float p, const float *x, float *y, uint8_t *mask,
                            lb_rng *rng);
    void (*dropout_backward)(size_t n, float p, const uint8_t *mask, const float *dy, float *dx,
                             int dx_acc);
    void (*lif_forward)(const lb_lif_desc *d, const float *x, const float *beta, float *spk,
                        float *mem);
    void (*lif_backward)(const lb_lif_desc *d, const float *beta, const float *spk,
                         const float *mem, const float *dspk, float *dx, int dx_acc, float *dbeta,
                         float *scratch);
    /* Layer-Batch Norm's training passes (a mode of BN nodes; its eval is bn_forward_eval) */
    void (*lbn_forward_train)(const lb_bn_desc *d, const float *x, const float *gamma,
                              const float *beta, float *y, float *mean, float *invstd,
                              float *run_mean, float *run_var);
    void (*lbn_backward)(const lb_bn_desc *d, const float *x, const float *y, const float *gamma,
                         const float *mean, const float *invstd, float *dy, float *dx, int dx_acc,
                         float *dgamma, float *dbeta);
} lb_backend;

const lb_backend *lb_backend_cpu(void);
const lb_backend *lb_backend_cpu_ref(void);
/* "cpu" or "cpu-ref"; NULL if unknown. */
const lb_backend *lb_backend_find(const char *name);

#endif
