/* Private interface between conv2d.c and the AVX-512 direct "same" convolution kernels
 * (conv2d_direct_avx512.c). Not a public header.
 *
 * The kernels see one group of one (packed) image block: channel planes of `npos` contiguous
 * positions (G images of h*w each, back to back). A stride-1 conv with pad (k-1)/2 keeps the
 * output grid equal to the input grid, so tap (kh, kw) reads position q + toff[t] with
 * toff[t] = (kh-pad)*w + (kw-pad); masks[v*ntaps + t] has bit l set when that read is inside the
 * image for position 16v+l (and zero past the block), so no im2col and no padded copy is needed:
 * masked-out lanes are neither read (AVX-512 masked loads suppress faults) nor used. */
#ifndef LB_CONV2D_DIRECT_H
#define LB_CONV2D_DIRECT_H

#include <stddef.h>
#include <stdint.h>

typedef struct lb_conv_direct {
    int cin, cout;         /* channels of this job (one group) */
    int k, ntaps;          /* kernel size, k*k */
    const int *toff;       /* [ntaps] */
    const uint16_t *masks; /* [ceil(npos/16)][ntaps], for the full block size */
    int npos;              /* positions in this block (<= the masks' block size) */
    const float *x;        /* input planes [cin][ldx] */
    size_t ldx;
    /* forward: y[co][q] (beta ? += : =) bias[co] + sum w*x; wp packed [cout/8][ntaps][cin][8] */
    float *y;
    size_t ldy;
    const float *wp, *bias;
    int beta;
    /* weight gradient: dw[co*ldw + ci*ntaps + t] += sum_q dy[co][q] * x[ci][q + toff[t]], summed
     * over nimg (>= 1) blocks ximg / dyimg floats apart */
    const float *dy;
    size_t lddy;
    int nimg;
    size_t ximg, dyimg;
    float *dw;
    size_t ldw;
    /* optional: memory the next block will read (the next images' x or dy), prefetched into L2 a
     * slice per tile so DRAM latency overlaps with the arithmetic */
    const float *pf[2];
    size_t pf_floats[2];
} lb_conv_direct;

void lb_conv2d_direct_fwd_avx512(const lb_conv_direct *j);
/* Stride 2: one h x w plane to its 4 phase planes (ld floats apart, oh x ow each) and back. */
void lb_conv2d_split_phases_avx512(const float *x, int h, int w, int oh, int ow, float *pk,
                                   size_t ld);
void lb_conv2d_merge_phases_avx512(const float *pk, size_t ld, int h, int w, int ow, float *dx,
                                   int acc);
void lb_conv2d_direct_dw_avx512(const lb_conv_direct *j);

/* Depthwise 3x3 stride 1 on one zero-padded plane (pw columns): the forward (acc: y +=) and the
 * weight gradient (dwk += ). */
void lb_conv2d_dw3_fwd_plane_avx512(const float *xp, int pw, const float *wk, float bias, int oh,
                                    int ow, float *y, int acc);
void lb_conv2d_dw3_dw_plane_avx512(const float *xp, int pw, const float *dy, int oh, int ow,
                                   float *dwk);

#endif
