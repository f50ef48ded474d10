/* Depthwise conv plane kernels compiled for AVX2+FMA (the Makefile adds -mavx2 -mfma to *_avx2.c);
 * the code is conv2d_dw_impl.h, chosen at run time by conv2d.c. No intrinsics on purpose. */
#define LB_DW_SUFFIX avx2
#include "conv2d_dw_impl.h"
