/* Bump arenas with a counting dry run; not a general allocator (no per-block free). */
#include "lb_core.h"

#include <stdlib.h>
#include <string.h>

#define LB_ALIGN 64

static size_t round_up(size_t n) {
    return (n + LB_ALIGN - 1) & ~(size_t)(LB_ALIGN - 1);
}

void lb_arena_init_counting(lb_arena *a) {
    a->base = NULL;
    a->cap = 0;
    a->used = 0;
}

lb_status lb_arena_reserve(lb_arena *a, size_t bytes) {
    bytes = round_up(bytes ? bytes : LB_ALIGN);
    void *p = aligned_alloc(LB_ALIGN, bytes);
    if (!p) return lb_error_set(LB_ENOMEM, "cannot allocate %zu bytes", bytes);
    memset(p, 0, bytes);
    a->base = p;
    a->cap = bytes;
    a->used = 0;
    return LB_OK;
}

void *lb_arena_alloc(lb_arena *a, size_t bytes) {
    size_t n = round_up(bytes);
    if (!a->base) {
        a->used += n;
        return NULL;
    }
    if (a->used + n > a->cap) return NULL;
    void *p = a->base + a->used;
    a->used += n;
    return p;
}

float *lb_arena_floats(lb_arena *a, size_t n) {
    return lb_arena_alloc(a, n * sizeof(float));
}

void lb_arena_reset(lb_arena *a) {
    a->used = 0;
}

void lb_arena_release(lb_arena *a) {
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}
