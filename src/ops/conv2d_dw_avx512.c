/* Depthwise conv plane kernels compiled for AVX-512 (the Makefile adds the -mavx512* flags to
 * *_avx512.c); the code is conv2d_dw_impl.h, chosen at run time by conv2d.c. */
#define LB_DW_SUFFIX avx512
#include "conv2d_dw_impl.h"
