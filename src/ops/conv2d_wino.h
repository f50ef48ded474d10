/* Private interface between conv2d.c and the Winograd F(2x2, 3x3) kernels
 * (conv2d_wino_avx512.c). Not a public header.
 *
 * Why Winograd: on the target machine the direct kernels already run 3x3 convolutions at ~87% of
 * the FMA peak, so the only way to make them much faster is fewer multiplications. F(2x2, 3x3)
 * computes each 2x2 output tile from a 4x4 input tile with 16 products per channel pair instead
 * of 36 (2.25x fewer), at the price of cheap add-only transforms and last-bit differences from the
 * direct sum (|error| ~1e-6 relative, well inside the conv tests' tolerance). Used for the
 * forward, the input gradient (a forward pass on dY with the flipped, transposed weights) and the
 * weight gradient (F(3x3, 2x2), below) of 3x3 stride-1 pad-1 convolutions whose channel counts
 * are multiples of 8. */
#ifndef LB_CONV2D_WINO_H
#define LB_CONV2D_WINO_H

#include <stddef.h>

typedef struct lb_conv_wino {
    int cin, cout;     /* multiples of 8 */
    int h, w;          /* image size; the output has the same size */
    int g;             /* images in this block */
    size_t ldt;        /* tile stride of V and M: >= g * ceil(h/2) * ceil(w/2), multiple of 16 */
    const float *x;    /* g images x[g][cin][h][w] */
    const float *U;    /* transformed weights U[16][cout/8][cin][8] (lb_conv2d_wino_weights) */
    const float *bias; /* [cout] or NULL */
    float *y;          /* g images y[g][cout][h][w] */
    int acc;           /* y += conv instead of y = conv */
    float *V;          /* scratch: 16 planes [cin][ldt], lb_wino_xi_stride(cin, ldt) apart */
    float *M;          /* scratch: 16 planes [cout][ldt], lb_wino_xi_stride(cout, ldt) apart */
} lb_conv_wino;

/* Floats from one of the 16 transform planes to the next: 64 bytes more than the plane, because
 * c * ldt floats is a multiple of 2 KiB, and the transforms touch the same tile in all 16 planes
 * at once: unpadded, those 16 lines fall into one or two L1 sets and evict each other (measured
 * 3x slower input transform). With the pad they fall into 16 distinct sets. */
static inline size_t lb_wino_xi_stride(int c, size_t ldt) {
    return (size_t)c * ldt + 16;
}

/* Weight gradient by Winograd F(3x3, 2x2) over one block of images: the forward's bilinear form
 * Y = A^T [(G g G^T) .* (B^T d B)] A gives dg = G^T [sum over tiles (A dy A^T) .* (B^T d B)] G, so
 * the 16 transformed planes of x (V, as in the forward) and of dy (A dy A^T, in M) are multiplied
 * and summed over tiles into Mw (16 GEMMs with the tiles as depth), and G^T . G runs once at the
 * end (lb_conv2d_wino_dw_finish). Uses cin, cout, h, w, g, ldt, x, V, M of the job, plus: */
typedef struct lb_conv_wino_dw {
    lb_conv_wino j;
    const float *dy; /* g images dy[g][cout][h][w] */
    float *Mw;       /* accumulators, lb_wino_dw_acc_floats(cout, cin) */
} lb_conv_wino_dw;

static inline size_t lb_wino_dw_acc_floats(int cout, int cin) {
    return (size_t)16 * cout * cin;
}
void lb_conv2d_wino_dw_avx512(const lb_conv_wino_dw *j);
/* dw[co][ci][3][3] = G^T Mw G (overwrites dw) */
void lb_conv2d_wino_dw_finish(const float *Mw, int cout, int cin, float *dw);

/* U for a conv with `co` outputs and `ci` inputs. flip == 0: w[co][ci][3][3]; flip == 1: the dX
 * conv of a forward conv whose weights are w[ci][co][3][3] (transposed, rotated 180 degrees). */
void lb_conv2d_wino_weights(const float *w, int co, int ci, int flip, float *U);
void lb_conv2d_wino_avx512(const lb_conv_wino *j);

#endif
