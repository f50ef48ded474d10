/* Quantizer segment kernels compiled for AVX-512 (the Makefile adds the -mavx512* flags to
 * *_avx512.c); the code is quant_seg_impl.h, chosen at run time by quant_seg.c. */
#define LB_QS_SUFFIX avx512
#include "quant_seg_impl.h"
