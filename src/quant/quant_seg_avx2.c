/* Quantizer segment kernels compiled for AVX2+FMA (the Makefile adds -mavx2 -mfma to *_avx2.c);
 * the code is quant_seg_impl.h, chosen at run time by quant_seg.c. No intrinsics on purpose. */
#define LB_QS_SUFFIX avx2
#include "quant_seg_impl.h"
