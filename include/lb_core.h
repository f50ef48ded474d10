/* lb_core: status codes and error messages, arenas, the deterministic RNG, threads and the
 * NaN/Inf debug trap. Everything else in lowbit builds on this; it knows nothing of tensors. */
#ifndef LB_CORE_H
#define LB_CORE_H

#include <stddef.h>
#include <stdint.h>

/* ---- status ------------------------------------------------------------------------------ */
typedef enum lb_status {
    LB_OK = 0,
    LB_EINVAL,    /* bad argument or option value */
    LB_EIO,       /* file could not be opened, read or written */
    LB_EFORMAT,   /* file exists but its content is malformed */
    LB_ENOMEM,    /* allocation failed */
    LB_ESHAPE,    /* shapes do not fit (e.g. checkpoint vs model) */
    LB_ENUMERIC,  /* NaN/Inf trapped */
    LB_ECOLLAPSE, /* training collapsed (stopped as --on-collapse stop asks) */
    LB_EBUDGET    /* the trained model misses its size budget (--quant sliced) */
} lb_status;

/* Records a message (printf-style) for the calling thread and returns `st`, so library code can
 * `return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));`. */
lb_status lb_error_set(lb_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *lb_error_msg(void);
const char *lb_status_name(lb_status st);

/* ---- arenas -------------------------------------------------------------------------------- */
/* A bump allocator. Sizes are planned once: an arena with base == NULL only counts (a dry run),
 * then lb_arena_reserve allocates exactly what the dry run counted. Every block is 64-byte aligned
 * so SIMD kernels may use aligned loads. */
typedef struct lb_arena {
    char *base;
    size_t cap, used;
} lb_arena;

void lb_arena_init_counting(lb_arena *a);
lb_status lb_arena_reserve(lb_arena *a, size_t bytes); /* allocates zeroed memory, used = 0 */
void *lb_arena_alloc(lb_arena *a, size_t bytes);       /* NULL when counting or out of space */
float *lb_arena_floats(lb_arena *a, size_t n);
void lb_arena_reset(lb_arena *a); /* used = 0, keeps memory */
void lb_arena_release(lb_arena *a);

/* ---- deterministic RNG (xoshiro256**) ------------------------------------------------------- */
typedef struct lb_rng {
    uint64_t s[4];
} lb_rng;

void lb_rng_seed(lb_rng *r, uint64_t seed);
uint64_t lb_rng_u64(lb_rng *r);
uint32_t lb_rng_below(lb_rng *r, uint32_t n); /* uniform in [0, n), unbiased */
float lb_rng_uniform(lb_rng *r);              /* [0, 1) */
float lb_rng_normal(lb_rng *r);               /* N(0, 1), Box-Muller */
/* A stream derived from (seed, a, b) without touching any other stream: used so per-sample
 * augmentation does not depend on thread timing. */
void lb_rng_derive(lb_rng *r, uint64_t seed, uint64_t a, uint64_t b);

/* ---- threads -------------------------------------------------------------------------------- */
/* Sets OpenMP's thread count and keeps BLAS single-threaded (lowbit parallelizes outside BLAS,
 * per image, so the BLAS calls stay cache-resident). Returns the count in force. */
int lb_threads_set(int n);
int lb_threads_get(void);

/* ---- BLAS kernels ---------------------------------------------------------------------------- */
/* OpenBLAS picks its kernels from the CPU model when it loads; on a CPU it does not know it falls
 * back to SSE3 ones, 3-5x slower. lb_blas_core: the kernels in use (NULL: not OpenBLAS).
 * lb_blas_core_better: the OPENBLAS_CORETYPE this CPU should have (NULL: nothing to change, or
 * the variable is set already); it takes effect only in a process started with it.
 * lb_blas_core_choice: the rule itself, for a core name and the CPU's features. */
const char *lb_blas_core(void);
const char *lb_blas_core_better(void);
const char *lb_blas_core_choice(const char *core, int avx2, int avx512, int avx512_bf16);

/* ---- numeric debug trap --------------------------------------------------------------------- */
/* When enabled (LOWBIT_TRAP_NAN=1 in the environment, or lb_trap_nan_set(1)), lb_check_finite
 * scans a buffer and reports the first NaN/Inf with the tag naming where it came from. */
void lb_trap_nan_set(int on);
int lb_trap_nan_enabled(void);
lb_status lb_check_finite(const char *tag, const float *x, size_t n);

#endif
