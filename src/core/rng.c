/* xoshiro256** with splitmix64 seeding: fast, small state (saved in checkpoints), reproducible. */
#include "lb_core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void lb_rng_seed(lb_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t lb_rng_u64(lb_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t lb_rng_below(lb_rng *r, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)(uint32_t)(lb_rng_u64(r) >> 32) * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(lb_rng_u64(r) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float lb_rng_uniform(lb_rng *r) {
    return (float)(lb_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float lb_rng_normal(lb_rng *r) {
    double u1 = ((double)(lb_rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(lb_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void lb_rng_derive(lb_rng *r, uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed ^ 0x243F6A8885A308D3ull;
    uint64_t k = splitmix64(&x) ^ (a * 0x9E3779B97F4A7C15ull);
    k = splitmix64(&k) ^ (b * 0xC2B2AE3D27D4EB4Full);
    lb_rng_seed(r, k);
}
