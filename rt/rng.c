/*
 * rng.c — the one random generator: xoshiro256** seeded by splitmix64;
 * and the one hash, FNV-1a.
 *
 * A run draws from two streams of its seed: stream 0 for the initial
 * weights, stream 1 for the batch order, so a change of initialisation
 * does not change the order of the batches; stream 2 holds out a
 * validation split (split.c). docs/determinism.md says how each draw is
 * made.
 */
#include <math.h>
#include "rt.h"

/* One step of splitmix64, used only to expand the seed. */
static uint64_t rng_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Seeds r from (seed, stream). */
void rt_rng_seed(RtRng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
  for (int i = 0; i < 4; i++)
    r->s[i] = rng_splitmix(&x);
}

static uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* The next 64 random bits (xoshiro256**). */
uint64_t rt_rng_next(RtRng *r) {
  uint64_t *s = r->s;
  uint64_t out = rng_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rng_rotl(s[3], 45);
  return out;
}

/* A double in [0, 1) from the top 53 bits. */
double rt_rng_uniform(RtRng *r) { return (rt_rng_next(r) >> 11) * 0x1p-53; }

/* N(0, 1) by Box–Muller, one draw per pair of uniforms (no caching). */
double rt_rng_normal(RtRng *r) {
  double u1 = 1.0 - rt_rng_uniform(r); /* (0, 1]: log is finite */
  double u2 = rt_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* An integer in [0, n) without bias (rejection of the short tail). */
uint64_t rt_rng_below(RtRng *r, uint64_t n) {
  uint64_t limit = -n % n; /* 2^64 mod n */
  uint64_t x;
  do
    x = rt_rng_next(r);
  while (x < limit);
  return x % n;
}

/* FNV-1a: each byte xored in, then multiplied by the 64-bit FNV prime. */
uint64_t rt_fnv(uint64_t h, const void *data, size_t len) {
  const unsigned char *p = data;
  for (size_t i = 0; i < len; i++)
    h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
