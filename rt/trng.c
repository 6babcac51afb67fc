/*
 * trng.c — PyTorch's CPU generator, draw for draw: "rng": "torch".
 *
 * With it the initial weights are bitwise those of
 *
 *   torch.manual_seed(seed)
 *   model = the module (every nn.Linear built in order, then the norms)
 *   init_fn(model)
 *
 * in PyTorch 1.13 on an x86-64 CPU with AVX2 (docs/semantics.md gives the
 * module and the init functions). The generator is mt19937; a float32
 * draw takes 24 bits of one 32-bit output, a float64 draw 53 bits of two.
 * tensor.uniform_(a, b) is x·(b−a)+a, fused (PyTorch's kernel is built
 * with FMA contraction). tensor.normal_ on 16 or more elements fills them
 * with uniforms and turns each 16 into normals by Box–Muller, pairing
 * element j with j+8; a tail that is not a whole 16 recomputes the last 16
 * from fresh uniforms. For float32 that step runs PyTorch's AVX2 kernel,
 * whose log, sin and cos are the Cephes polynomials of avx_mathfun.h,
 * mirrored here one rounding at a time (fmaf where the compiler fused a
 * multiply into the following add). Fewer than 16 elements take one
 * double Box–Muller draw each, with the generator caching the second
 * value of each pair for the next call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

/* ---- mt19937 ---- */

enum { TRNG_N = 624, TRNG_M = 397 };

/* torch.manual_seed(seed): the state from the low 32 bits, cache empty. */
void rt_trng_seed(RtTorchRng *r, uint64_t seed) {
  r->state[0] = (uint32_t)seed;
  for (int j = 1; j < TRNG_N; j++)
    r->state[j] = 1812433253u * (r->state[j - 1] ^ (r->state[j - 1] >> 30)) + (uint32_t)j;
  r->left = 1;
  r->next = 0;
  r->has_normal = 0;
}

/* Mixes the top bit of u with the low bits of v and twists. */
static uint32_t trng_twist(uint32_t u, uint32_t v) {
  uint32_t y = (u & 0x80000000u) | (v & 0x7fffffffu);
  return (y >> 1) ^ (v & 1 ? 0x9908b0dfu : 0);
}

/* Regenerates the 624 words of state. */
static void trng_refill(RtTorchRng *r) {
  uint32_t *s = r->state;
  for (int j = 0; j < TRNG_N; j++)
    s[j] = s[(j + TRNG_M) % TRNG_N] ^ trng_twist(s[j], s[(j + 1) % TRNG_N]);
  r->left = TRNG_N;
  r->next = 0;
}

/* The next 32 bits (CPUGeneratorImpl::random). */
uint32_t rt_trng_u32(RtTorchRng *r) {
  if (--r->left == 0)
    trng_refill(r);
  uint32_t y = r->state[r->next++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  return y ^ (y >> 18);
}

/* The next 64 bits: the first 32-bit output is the high half. */
uint64_t rt_trng_u64(RtTorchRng *r) {
  uint64_t hi = rt_trng_u32(r);
  return hi << 32 | rt_trng_u32(r);
}

/* ---- uniform ---- */

/* A float32 draw in [from, to). */
static float trng_uniform_f(RtTorchRng *r, float from, float to) {
  float x = (float)(rt_trng_u32(r) & 0xffffffu) * 0x1p-24f;
  return fmaf(x, to - from, from);
}

/* A float64 draw in [from, to). */
static double trng_uniform_d(RtTorchRng *r, double from, double to) {
  double x = (double)(rt_trng_u64(r) & 0x1fffffffffffffULL) * 0x1p-53;
  return fma(x, to - from, from);
}

/* tensor.uniform_(from, to) on n elements of dtype RT_F32 or RT_F64; the
   bounds are first rounded to the tensor's type, as PyTorch does. */
void rt_trng_uniform(RtTorchRng *r, void *data, int dtype, long n, double from, double to) {
  for (long i = 0; i < n; i++)
    if (dtype == RT_F32)
      ((float *)data)[i] = trng_uniform_f(r, (float)from, (float)to);
    else
      ((double *)data)[i] = trng_uniform_d(r, from, to);
}

/* ---- normal: float32, 16 at a time (avx_mathfun.h's log256_ps and
   sincos256_ps, one lane) ---- */

static float trng_bits_f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint32_t trng_f_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

/* Natural log of x in (0, 1] (log256_ps). */
static float trng_logf(float x) {
  static const float p[9] = {
    (float)7.0376836292E-2, (float)-1.1514610310E-1, (float)1.1676998740E-1,
    (float)-1.2420140846E-1, (float)1.4249322787E-1, (float)-1.6668057665E-1,
    (float)2.0000714765E-1, (float)-2.4999993993E-1, (float)3.3333331174E-1,
  };
  int32_t ex = (int32_t)(trng_f_bits(x) >> 23) - 0x7f;
  x = trng_bits_f((trng_f_bits(x) & ~0x7f800000u) | trng_f_bits(0.5f)); /* [0.5, 1) */
  float e = (float)ex + 1.0f;
  int small = x < (float)0.707106781186547524;
  float add = small ? x : 0.0f;
  x = x - 1.0f;
  e = e - (small ? 1.0f : 0.0f);
  x = x + add;
  float z = x * x, y = p[0];
  for (int k = 1; k < 9; k++)
    y = fmaf(y, x, p[k]);
  y = y * x;
  y = fmaf(y, z, e * (float)-2.12194440e-4);
  y = y - z * 0.5f;
  x = x + y;
  return x + e * (float)0.693359375;
}

/* sin and cos of x >= 0 (sincos256_ps). */
static void trng_sincosf(float x, float *s, float *c) {
  float y = x * (float)1.27323954473516; /* 4/pi */
  int32_t j = ((int32_t)y + 1) & ~1;
  y = (float)j;
  uint32_t sign_sin = (uint32_t)(j & 4) << 29;
  uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
  int poly_sin = (j & 2) == 0;
  x = fmaf(y, (float)-0.78515625, x);
  x = fmaf(y, (float)-2.4187564849853515625e-4, x);
  x = fmaf(y, (float)-3.77489497744594108e-8, x);
  float z = x * x;
  float yc = fmaf((float)2.443315711809948E-005, z, (float)-1.388731625493765E-003);
  yc = fmaf(yc, z, (float)4.166664568298827E-002);
  yc = yc * z;
  yc = fmaf(yc, z, -(z * 0.5f)) + 1.0f;
  float ys = fmaf((float)-1.9515295891E-4, z, (float)8.3321608736E-3);
  ys = fmaf(ys, z, (float)-1.6666654611E-1);
  ys = ys * z;
  ys = fmaf(ys, x, x);
  float sin_part = poly_sin ? ys : 0.0f, cos_part = poly_sin ? 0.0f : yc;
  float vs = cos_part + sin_part, vc = (yc - cos_part) + (ys - sin_part);
  *s = trng_bits_f(trng_f_bits(vs) ^ sign_sin);
  *c = trng_bits_f(trng_f_bits(vc) ^ sign_cos);
}

/* Sixteen uniforms to sixteen normals of standard deviation std. */
static void trng_fill16_f(float *d, float std) {
  const float two_pi = (float)(2.0f * 3.14159265358979323846);
  for (int j = 0; j < 8; j++) {
    float radius = sqrtf(-2.0f * trng_logf(1.0f - d[j]));
    float s, c;
    trng_sincosf(two_pi * d[j + 8], &s, &c);
    d[j] = radius * c * std;
    d[j + 8] = radius * s * std;
  }
}

/* ---- normal: float64, 16 at a time ---- */

static void trng_fill16_d(double *d, double std) {
  for (int j = 0; j < 8; j++) {
    double radius = sqrt(-2 * log(1 - d[j]));
    double theta = 2.0f * 3.14159265358979323846 * d[j + 8];
    d[j] = radius * cos(theta) * std;
    d[j + 8] = radius * sin(theta) * std;
  }
}

/* ---- normal: one at a time, in double, caching the pair's second ---- */

static double trng_normal1(RtTorchRng *r, double std) {
  if (r->has_normal) {
    r->has_normal = 0;
    return r->normal * std;
  }
  double u1 = trng_uniform_d(r, 0, 1), u2 = trng_uniform_d(r, 0, 1);
  double radius = sqrt(-2.0 * log(1.0 - u2));
  double theta = 2.0 * 3.14159265358979323846 * u1;
  r->has_normal = 1;
  r->normal = radius * sin(theta);
  return radius * cos(theta) * std;
}

/* Fills d[0..n) with uniforms in [0, 1) of dtype. */
static void trng_fill_uniform(RtTorchRng *r, void *d, int dtype, long n) {
  rt_trng_uniform(r, d, dtype, n, 0, 1);
}

/* Box–Muller on the 16 elements from i. */
static void trng_fill16(void *d, int dtype, long i, double std) {
  if (dtype == RT_F32)
    trng_fill16_f((float *)d + i, (float)std);
  else
    trng_fill16_d((double *)d + i, std);
}

/* tensor.normal_(0, std) on n elements of dtype RT_F32 or RT_F64. */
void rt_trng_normal(RtTorchRng *r, void *data, int dtype, long n, double std) {
  if (n < 16) {
    for (long i = 0; i < n; i++)
      if (dtype == RT_F32)
        ((float *)data)[i] = (float)trng_normal1(r, std);
      else
        ((double *)data)[i] = trng_normal1(r, std);
    return;
  }
  int size = dtype == RT_F32 ? 4 : 8;
  trng_fill_uniform(r, data, dtype, n);
  for (long i = 0; i + 16 <= n; i += 16)
    trng_fill16(data, dtype, i, std);
  if (n % 16) {
    trng_fill_uniform(r, (char *)data + (n - 16) * size, dtype, 16);
    trng_fill16(data, dtype, n - 16, std);
  }
}

/* ---- the model's initial weights ---- */

/* The tensor named like w with ".bias" for ".weight" (fc2.weight → fc2.bias). */
static const RtTensor *trng_bias_of(const RtNet *net, const RtTensor *w) {
  size_t n = strlen(w->name) - strlen("weight");
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    if (t->kind == RT_BIAS && !strncmp(t->name, w->name, n) && !strcmp(t->name + n, "bias"))
      return t;
  }
  return 0;
}

/* Where the row-major draws for t go: its data, or, for a tensor stored
   transposed, a buffer that trng_store copies in. */
static void *trng_rows(const RtTensor *t) {
  if (!t->transposed)
    return t->data;
  void *rows = malloc((size_t)rt_numel(t) * (t->dtype == RT_F32 ? 4 : 8));
  if (!rows) {
    fprintf(stderr, "mlpc: error: out of memory\n");
    exit(1);
  }
  return rows;
}

/* Puts the draws in rows into t's storage. */
static void trng_store(const RtTensor *t, void *rows) {
  if (rows != t->data) {
    rt_copy_rows(t, rows, 0);
    free(rows);
  }
}

/* nn.Linear's reset_parameters: kaiming_uniform_(W, a=√5), then
   b ~ U(−1/√fan_in, 1/√fan_in), the bounds computed as Python does. */
static void trng_linear(RtTorchRng *r, const RtNet *net, const RtTensor *w) {
  double a = sqrt(5.0);
  double gain = sqrt(2.0 / (1 + pow(a, 2)));
  double bound = sqrt(3.0) * (gain / sqrt((double)w->fan_in));
  void *rows = trng_rows(w);
  rt_trng_uniform(r, rows, w->dtype, rt_numel(w), -bound, bound);
  trng_store(w, rows);
  const RtTensor *b = trng_bias_of(net, w);
  double bb = 1 / sqrt((double)w->fan_in);
  if (b)
    rt_trng_uniform(r, b->data, b->dtype, rt_numel(b), -bb, bb);
}

/* The standard deviation of an init scheme's weights, as torch.nn.init
   computes it (kaiming: gain √2 over √fan_in, not √(2/fan_in)). */
static double trng_std(int scheme, const RtTensor *w) {
  if (scheme == RT_INIT_KAIMING)
    return sqrt(2.0) / sqrt((double)w->fan_in);
  return 1.0 * sqrt(2.0 / (double)(w->fan_in + w->fan_out));
}

/* The init functions after construction, each tensor by its scheme.
   normal: every parameter N(0, 1) in model.parameters() order; in the
   shorthand's module (net->sequential 0) the Linear layers' come first,
   then the norms'; in nn.Sequential's, layer after layer.
   kaiming_normal, xavier_normal: each weight in turn (biases stay 0). */
static void trng_scheme(RtTorchRng *r, const RtNet *net) {
  for (int pass = 0; pass < (net->sequential ? 1 : 2); pass++)
    for (int k = 0; k < net->ntensors; k++) {
      const RtTensor *t = &net->tensors[k];
      int linear = t->kind == RT_WEIGHT || t->kind == RT_BIAS;
      int norm = t->kind == RT_GAMMA || t->kind == RT_BETA;
      int now = net->sequential ? linear || norm : pass ? norm : linear;
      double std = -1;
      if (t->init == RT_INIT_NORMAL && now)
        std = 1.0;
      if ((t->init == RT_INIT_KAIMING || t->init == RT_INIT_XAVIER) && now &&
          t->kind == RT_WEIGHT)
        std = trng_std(t->init, t);
      if (std < 0)
        continue;
      void *rows = trng_rows(t);
      rt_trng_normal(r, rows, t->dtype, rt_numel(t), std);
      trng_store(t, rows);
    }
}

/* Draws the parameters as torch.manual_seed(seed), the module's
   construction and the init functions would; leaves everything else. */
void rt_trng_init(const RtNet *net, uint64_t seed) {
  RtTorchRng r;
  rt_trng_seed(&r, seed);
  for (int k = 0; k < net->ntensors; k++)
    if (net->tensors[k].kind == RT_WEIGHT)
      trng_linear(&r, net, &net->tensors[k]);
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    if (t->kind == RT_BIAS && (t->init == RT_INIT_KAIMING || t->init == RT_INIT_XAVIER))
      memset(t->data, 0, (size_t)rt_numel(t) * (t->dtype == RT_F32 ? 4 : 8));
  }
  trng_scheme(&r, net);
}
