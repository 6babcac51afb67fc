/*
 * test_kernels.c — every kernel of runtime/kernels.h against a naive loop
 * that states its contract, bit for bit: each output element summed one
 * term at a time in increasing index order, from the bias or from 0,
 * skipping terms whose input is zero, each term added as acc + a·b
 * (strict) or fma(a, b, acc) (fma).
 *
 * The copies tested are those compiled into mlpc for tcc's code
 * (runtime/kernels.c), found by name as jit.c finds them: float and
 * double, strict and fma; and the same built with MLPC_SCALAR, the plain
 * loops that targets without AVX-512 run instead of the vector paths. Sizes are odd and cross every block boundary
 * of the kernels (64 rows or columns of a mask, MM_OB = 128 float or 64
 * double outputs, 8-column tiles, 256-wide chunks); about half of the
 * inputs are zero, as pixels and ReLU outputs are.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "../runtime/rmath.h"

/* The sizes every kernel is run with: rows, inputs, outputs. */
static const int rows[] = {1, 3, 17, 64, 65, 130};
static const int widths[] = {1, 3, 5, 17, 37, 64, 65, 129, 257, 300};
#define MAX_WORK 1000000 /* n·O·I at most, to keep the naive loops quick */
#define NELEM(a) ((int)(sizeof a / sizeof a[0]))

/* One copy of the kernels: its table, precision and arithmetic. */
typedef struct {
  const RtKernel *table;
  int f64, fma;
  const char *name;
} Copy;

/* The same kernels built with MLPC_SCALAR: the plain loops only. */
extern const RtKernel test_scalar_f32[], test_scalar_f64[];
extern const RtKernel test_scalar_f32_fma[], test_scalar_f64_fma[];

static const Copy copies[] = {
  {rt_kernels_f32, 0, 0, "float strict"},
  {rt_kernels_f64, 1, 0, "double strict"},
  {rt_kernels_f32_fma, 0, 1, "float fma"},
  {rt_kernels_f64_fma, 1, 1, "double fma"},
  {test_scalar_f32, 0, 0, "float strict, plain loops"},
  {test_scalar_f64, 1, 0, "double strict, plain loops"},
  {test_scalar_f32_fma, 0, 1, "float fma, plain loops"},
  {test_scalar_f64_fma, 1, 1, "double fma, plain loops"},
};

/* The kernel called name (without the _fma suffix) in copy c. */
static KernelFn find(const Copy *c, const char *name) {
  char want[64];
  snprintf(want, sizeof want, "%s%s", name, c->fma ? "_fma" : "");
  for (const RtKernel *k = c->table; k->name; k++)
    if (!strcmp(k->name, want))
      return k->fn;
  fail_msg("no kernel %s in the %s table", want, c->name);
  return NULL;
}

/* ---- values ---- */

static uint64_t state = 88172645463325252ULL;

/* The next pseudo-random number in [0, 1) (xorshift64). */
static double uniform(void) {
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  return (state >> 11) * 0x1p-53;
}

/* len values in [-1, 1), a fraction `zeros` of them exactly 0, as float
   or double. */
static void *values(int f64, long len, double zeros) {
  void *p = malloc((size_t)(len ? len : 1) * (f64 ? 8 : 4));
  for (long k = 0; k < len; k++) {
    double v = uniform() < zeros ? 0 : 2 * uniform() - 1;
    if (f64)
      ((double *)p)[k] = v;
    else
      ((float *)p)[k] = (float)v;
  }
  return p;
}

/* Element k of an array of float or double. */
static double get(int f64, const void *p, long k) {
  return f64 ? ((const double *)p)[k] : ((const float *)p)[k];
}

/* acc + a·b in the copy's precision and arithmetic, rounded as C does
   (the build has -ffp-contract=off). */
static double mac(const Copy *c, double acc, double a, double b) {
  if (c->f64)
    return c->fma ? fma(a, b, acc) : acc + a * b;
  float fa = (float)acc, x = (float)a, y = (float)b;
  return c->fma ? fmaf(x, y, fa) : (float)(fa + x * y);
}

/* Stores v as element k, in the copy's precision. */
static void put(int f64, void *p, long k, double v) {
  if (f64)
    ((double *)p)[k] = v;
  else
    ((float *)p)[k] = (float)v;
}

/* Asserts that two arrays hold the same bits, naming the first mismatch. */
static void same_bits(const Copy *c, const char *what, int n, int O, int I, const void *want,
                      const void *got, long len) {
  size_t sz = c->f64 ? 8 : 4;
  for (long k = 0; k < len; k++)
    if (memcmp((const char *)want + k * sz, (const char *)got + k * sz, sz))
      fail_msg("%s %s, n %d, O %d, I %d: element %ld is %a, the contract gives %a", c->name,
               what, n, O, I, k, get(c->f64, got, k), get(c->f64, want, k));
}

/* ---- the kernels, each with its naive loop ---- */

typedef void XwFn(int, int, int, const void *, const void *, const void *, void *);
typedef void DwFn(int, int, int, const void *, const void *, void *);
typedef void DbFn(int, int, const void *, void *);

/* y = x·wt + b: y[r][o] = b[o] + Σ_i x[r][i]·wt[i][o], i increasing. */
static void check_xw(const Copy *c, int n, int O, int I) {
  void *x = values(c->f64, (long)n * I, 0.5), *wt = values(c->f64, (long)I * O, 0.1);
  void *b = values(c->f64, O, 0.1), *y = values(c->f64, (long)n * O, 0);
  void *want = values(c->f64, (long)n * O, 0);
  for (int r = 0; r < n; r++)
    for (int o = 0; o < O; o++) {
      double acc = get(c->f64, b, o);
      for (int i = 0; i < I; i++)
        if (get(c->f64, x, (long)r * I + i) != 0)
          acc = mac(c, acc, get(c->f64, x, (long)r * I + i), get(c->f64, wt, (long)i * O + o));
      put(c->f64, want, (long)r * O + o, acc);
    }
  ((XwFn *)find(c, "mm_xw"))(n, O, I, x, wt, b, y);
  same_bits(c, "mm_xw", n, O, I, want, y, (long)n * O);
  free(x), free(wt), free(b), free(y), free(want);
}

/* dwt = xᵀ·dy: dwt[i][o] = Σ_r x[r][i]·dy[r][o], r increasing; and
   mm_dw_sgd's weights after their update by that gradient. */
static void check_dw(const Copy *c, int n, int O, int I) {
  void *x = values(c->f64, (long)n * I, 0.5), *dy = values(c->f64, (long)n * O, 0.1);
  void *dwt = values(c->f64, (long)I * O, 0), *want = values(c->f64, (long)I * O, 0);
  for (int i = 0; i < I; i++)
    for (int o = 0; o < O; o++) {
      double acc = 0;
      for (int r = 0; r < n; r++)
        if (get(c->f64, x, (long)r * I + i) != 0)
          acc = mac(c, acc, get(c->f64, x, (long)r * I + i), get(c->f64, dy, (long)r * O + o));
      put(c->f64, want, (long)i * O + o, acc);
    }
  ((DwFn *)find(c, "mm_dw"))(n, O, I, dy, x, dwt);
  same_bits(c, "mm_dw", n, O, I, want, dwt, (long)I * O);
  /* mm_dw_sgd: wt + neg_lr·dwt, two roundings, as opt_sgd computes it */
  void *wt = values(c->f64, (long)I * O, 0.1), *wt_want = values(c->f64, (long)I * O, 0);
  double neg_lr = -0.0123;
  for (long k = 0; k < (long)I * O; k++)
    put(c->f64, wt_want, k,
        c->f64 ? get(1, wt, k) + neg_lr * get(1, want, k)
               : (float)((float)get(0, wt, k) + (float)neg_lr * (float)get(0, want, k)));
  if (c->f64)
    ((void (*)(int, int, int, const void *, const void *, void *, void *, double))find(
      c, "mm_dw_sgd"))(n, O, I, dy, x, dwt, wt, neg_lr);
  else
    ((void (*)(int, int, int, const void *, const void *, void *, void *, float))find(
      c, "mm_dw_sgd"))(n, O, I, dy, x, dwt, wt, (float)neg_lr);
  same_bits(c, "mm_dw_sgd", n, O, I, wt_want, wt, (long)I * O);
  free(x), free(dy), free(dwt), free(want), free(wt), free(wt_want);
}

/* dx = dy·wtᵀ: dx[r][i] = Σ_o dy[r][o]·wt[i][o], o increasing. */
static void check_dx(const Copy *c, int n, int O, int I) {
  void *dy = values(c->f64, (long)n * O, 0.5), *wt = values(c->f64, (long)I * O, 0.1);
  void *dx = values(c->f64, (long)n * I, 0), *want = values(c->f64, (long)n * I, 0);
  for (int r = 0; r < n; r++)
    for (int i = 0; i < I; i++) {
      double acc = 0;
      for (int o = 0; o < O; o++)
        if (get(c->f64, dy, (long)r * O + o) != 0)
          acc = mac(c, acc, get(c->f64, dy, (long)r * O + o), get(c->f64, wt, (long)i * O + o));
      put(c->f64, want, (long)r * I + i, acc);
    }
  ((DwFn *)find(c, "mm_dx"))(n, O, I, dy, wt, dx);
  same_bits(c, "mm_dx", n, O, I, want, dx, (long)n * I);
  free(dy), free(wt), free(dx), free(want);
}

/* db = Σ_r dy[r], r increasing, by plain additions. */
static void check_db(const Copy *c, int n, int O) {
  void *dy = values(c->f64, (long)n * O, 0.3), *db = values(c->f64, O, 0);
  void *want = values(c->f64, O, 0);
  for (int o = 0; o < O; o++) {
    double acc = 0;
    for (int r = 0; r < n; r++)
      acc = c->f64 ? acc + get(1, dy, (long)r * O + o)
                   : (float)((float)acc + (float)get(0, dy, (long)r * O + o));
    put(c->f64, want, o, acc);
  }
  ((DbFn *)find(c, "mm_db"))(n, O, dy, db);
  same_bits(c, "mm_db", n, O, 0, want, db, O);
  free(dy), free(db), free(want);
}

/* Every size of every dense kernel, in every copy. */
static void test_dense(void **state_) {
  (void)state_;
  for (int k = 0; k < NELEM(copies); k++)
    for (int a = 0; a < NELEM(rows); a++)
      for (int o = 0; o < NELEM(widths); o++) {
        check_db(&copies[k], rows[a], widths[o]);
        for (int i = 0; i < NELEM(widths); i++) {
          if ((long)rows[a] * widths[o] * widths[i] > MAX_WORK)
            continue;
          check_xw(&copies[k], rows[a], widths[o], widths[i]);
          check_dw(&copies[k], rows[a], widths[o], widths[i]);
          check_dx(&copies[k], rows[a], widths[o], widths[i]);
        }
      }
}

/* An empty batch: dwt and db are 0, and no row of y or dx is touched. */
static void test_empty(void **state_) {
  (void)state_;
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *x = values(c->f64, 3 * 5, 0), *dy = values(c->f64, 3 * 4, 0);
    void *dwt = values(c->f64, 5 * 4, 0), *db = values(c->f64, 4, 0);
    ((DwFn *)find(c, "mm_dw"))(0, 4, 5, dy, x, dwt);
    ((DbFn *)find(c, "mm_db"))(0, 4, dy, db);
    for (int e = 0; e < 5 * 4; e++)
      assert_true(get(c->f64, dwt, e) == 0);
    for (int e = 0; e < 4; e++)
      assert_true(get(c->f64, db, e) == 0);
    free(x), free(dy), free(dwt), free(db);
  }
}

/* mm_load: every byte value becomes byte / 255, correctly rounded. */
static void test_load(void **state_) {
  (void)state_;
  unsigned char bytes[256 + 7];
  for (int k = 0; k < 256 + 7; k++)
    bytes[k] = (unsigned char)(k * 7);
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *out = values(c->f64, 256 + 7, 0);
    ((void (*)(int, const unsigned char *, void *))find(c, "mm_load"))(256 + 7, bytes, out);
    for (int e = 0; e < 256 + 7; e++)
      assert_true(c->f64 ? get(1, out, e) == bytes[e] / 255.0
                         : get(0, out, e) == (float)bytes[e] / 255.0f);
    free(out);
  }
}

/* The float whose bits are u. */
static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* How many floats apart a and b are (both finite, same sign or zero). */
static long ulps(float a, float b) {
  int32_t ia, ib;
  memcpy(&ia, &a, 4), memcpy(&ib, &b, 4);
  return labs((long)ia - ib);
}

/* act_tanh: for float, runtime/rmath.h's rm_tanhf on every lane, equal
   to tanh computed in double and rounded (as it is for all 2^32 floats
   with glibc), odd, NaN kept; for double, the C library's tanh.
   The inputs: every 4099th bit pattern, which covers every exponent, and
   the edges. */
static void test_tanh(void **state_) {
  (void)state_;
  enum { N = (int)((1ull << 32) / 4099) + 1 };
  static const float edges[] = {0.0f, -0.0f, 0.125f, -0.125f, 0x1.fffffep-4f, 9.0f, 9.1f,
                                350.0f, 351.0f, INFINITY, -INFINITY, 0x1p-149f, -0x1p-149f};
  int n = N + NELEM(edges);
  float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
  double *xd = malloc(sizeof(double) * n), *yd = malloc(sizeof(double) * n);
  for (int k = 0; k < N; k++)
    x[k] = from_bits((uint32_t)((uint64_t)k * 4099));
  memcpy(x + N, edges, sizeof edges);
  for (int k = 0; k < n; k++)
    xd[k] = isnan(x[k]) ? x[k] : x[k] * 1.0000001;
  for (int c = 0; c < NELEM(copies); c++) {
    const Copy *cp = &copies[c];
    void (*fn)(int, const void *, void *) = (void (*)(int, const void *, void *))find(cp, "act_tanh");
    long differ = 0;
    if (cp->f64) {
      fn(n, xd, yd);
      for (int k = 0; k < n; k++)
        if (!(isnan(xd[k]) ? isnan(yd[k]) : yd[k] == tanh(xd[k])))
          fail_msg("%s: tanh(%a) is %a, not %a", cp->name, xd[k], yd[k], tanh(xd[k]));
      continue;
    }
    fn(n, x, y);
    for (int k = 0; k < n; k++) {
      float want = (float)tanh((double)x[k]);
      if (isnan(x[k])) {
        if (!isnan(y[k]))
          fail_msg("%s: tanh(NaN) is %a", cp->name, y[k]);
        continue;
      }
      if (memcmp(&y[k], &(float){rm_tanhf(x[k])}, 4))
        fail_msg("%s: lane %d gives %a, rm_tanhf(%a) %a", cp->name, k, y[k], x[k],
                 rm_tanhf(x[k]));
      if (signbit(y[k]) != signbit(x[k]) || ulps(y[k], want) > 1)
        fail_msg("%s: tanh(%a) is %a, not %a", cp->name, x[k], y[k], want);
      differ += y[k] != want;
    }
    assert_int_equal(differ, 0);
  }
  free(x), free(y), free(xd), free(yd);
}

/* act_relu, act_relu_back and act_tanh_back: their expressions in
   codegen/emit.c, element by element, on values around 0 (−0 and NaN
   among them). relu as PyTorch's: relu(NaN) is NaN, relu(−0) is −0, and
   the gradient at NaN is g (threshold_backward). */
static void test_act(void **state_) {
  (void)state_;
  typedef void FwdFn(int, const void *, void *);
  typedef void BwdFn(int, const void *, const void *, const void *, void *);
  enum { N = 37 };
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *x = values(c->f64, N, 0.2), *y = values(c->f64, N, 0), *g = values(c->f64, N, 0);
    void *dx = values(c->f64, N, 0);
    put(c->f64, x, 1, -0.0), put(c->f64, x, 2, NAN), put(c->f64, x, N - 1, NAN);
    ((FwdFn *)find(c, "act_relu"))(N, x, y);
    for (int i = 0; i < N; i++) {
      double v = get(c->f64, x, i), r = get(c->f64, y, i);
      if (isnan(v))
        assert_true(isnan(r));
      else
        assert_true(v < 0 ? r == 0 && !signbit(r) : r == v && signbit(r) == signbit(v));
    }
    ((BwdFn *)find(c, "act_relu_back"))(N, x, y, g, dx);
    for (int i = 0; i < N; i++)
      assert_true(get(c->f64, dx, i) == (get(c->f64, x, i) <= 0 ? 0 : get(c->f64, g, i)));
    ((BwdFn *)find(c, "act_tanh_back"))(N, x, x, g, dx);
    for (int i = 0; i < N; i++) {
      double v = get(c->f64, x, i), w = get(c->f64, g, i);
      double want = c->f64 ? w * (1 - v * v) : (float)((float)w * (float)(1 - (float)(v * v)));
      assert_true(isnan(v) ? isnan(get(c->f64, dx, i)) : get(c->f64, dx, i) == want);
    }
    free(x), free(y), free(g), free(dx);
  }
}

/* Every activation keeps NaN, as PyTorch's do: NaN in, NaN out, in
   every lane of the vector loops and in the scalar tail. */
static void test_act_nan(void **state_) {
  (void)state_;
  typedef void F32Fn(int, const float *, float *, float);
  typedef void F64Fn(int, const double *, double *, double);
  static const char *const acts[] = {"act_tanh", "act_relu", "act_leaky_relu", "act_sigmoid",
                                     "act_silu", "act_gelu", "act_elu"};
  enum { N = 37 };
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *x = values(c->f64, N, 0.2), *y = values(c->f64, N, 0);
    for (int i = 0; i < N; i += 3)
      put(c->f64, x, i, NAN);
    for (int a = 0; a < NELEM(acts); a++) {
      KernelFn fn = find(c, acts[a]);
      if (c->f64)
        ((F64Fn *)fn)(N, x, y, 0.5);
      else
        ((F32Fn *)fn)(N, x, y, 0.5f);
      for (int i = 0; i < N; i++)
        if (isnan(get(c->f64, x, i)) && !isnan(get(c->f64, y, i)))
          fail_msg("%s: %s(NaN) is %g in lane %d", c->name, acts[a], get(c->f64, y, i), i);
    }
    free(x), free(y);
  }
}

/* rm_expf: equal to exp computed in double and rounded, but for the two
   inputs rmath.h names, and saturating to 0 and infinity; NaN kept. */
static void test_expf(void **state_) {
  (void)state_;
  long differ = 0;
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) {
    float x = from_bits((uint32_t)u), got = rm_expf(x), want = (float)exp((double)x);
    if (isnan(x) ? !isnan(got) : memcmp(&got, &want, 4) && ulps(got, want) > 1)
      fail_msg("rm_expf(%a) is %a, not %a", x, got, want);
    differ += !isnan(x) && got != want;
  }
  assert_int_equal(differ, 0);
  assert_true(rm_expf(-0x1.03d5bep+0f) != (float)exp(-0x1.03d5bep+0));
  assert_true(rm_expf(1000) == INFINITY && rm_expf(-1000) == 0 && rm_expf(0) == 1);
  assert_true(rm_expf(-INFINITY) == 0 && rm_expf(INFINITY) == INFINITY);
}

/* e^x in a copy's precision, as the loss kernels compute it. */
static double copy_exp(const Copy *c, double x) {
  return c->f64 ? exp(x) : rm_expf((float)x);
}

/* xent_forward and xent_backward against their definitions, for K from
   1 to 70, labels spread
   over the classes, a tie for the maximum in row 0. */
static void test_xent(void **state_) {
  (void)state_;
  typedef double FwdFn(int, int, const void *, const unsigned char *, void *, void *, long *);
  typedef void BwdFn(int, int, const void *, const void *, const unsigned char *, void *);
  static const int ks[] = {1, 2, 10, 64, 70};
  for (int k = 0; k < NELEM(copies); k++)
    for (int q = 0; q < NELEM(ks); q++) {
      const Copy *c = &copies[k];
      int n = 9, K = ks[q];
      void *z = values(c->f64, (long)n * K, 0.1), *lse = values(c->f64, n, 0);
      void *dz = values(c->f64, (long)n * K, 0), *want = values(c->f64, (long)n * K, 0);
      void *scratch = values(c->f64, (long)n * K, 0);
      unsigned char y[9];
      for (int r = 0; r < n; r++)
        y[r] = (unsigned char)((r * 7) % K);
      if (K > 1)
        put(c->f64, z, 1, get(c->f64, z, 0));
      long correct = 0, correct_want = 0;
      double sum = ((FwdFn *)find(c, "xent_forward"))(n, K, z, y, lse, scratch, &correct), sum_want = 0;
      for (int r = 0; r < n; r++) {
        double m = get(c->f64, z, (long)r * K), s = 0;
        int arg = 0;
        for (int j = 1; j < K; j++)
          if (get(c->f64, z, (long)r * K + j) > m)
            m = get(c->f64, z, (long)r * K + j), arg = j;
        for (int j = 0; j < K; j++) {
          double e = copy_exp(c, c->f64 ? get(1, z, (long)r * K + j) - m
                                        : (float)((float)get(0, z, (long)r * K + j) - (float)m));
          s = c->f64 ? s + e : (float)((float)s + (float)e);
        }
        double l = c->f64 ? m + log(s) : (float)((float)m + logf((float)s));
        assert_true(get(c->f64, lse, r) == l);
        sum_want += c->f64 ? l - get(1, z, (long)r * K + y[r])
                           : (float)((float)l - (float)get(0, z, (long)r * K + y[r]));
        correct_want += arg == y[r];
        for (int j = 0; j < K; j++) {
          double t = c->f64 ? get(1, z, (long)r * K + j) - l
                            : (float)((float)get(0, z, (long)r * K + j) - (float)l);
          double e = copy_exp(c, t);
          put(c->f64, want, (long)r * K + j,
              c->f64 ? (e - (j == y[r])) / n : (float)((float)((float)e - (j == y[r])) / n));
        }
      }
      assert_true(sum == sum_want);
      assert_int_equal(correct, correct_want);
      ((BwdFn *)find(c, "xent_backward"))(n, K, z, lse, y, dz);
      same_bits(c, "xent_backward", n, K, 0, want, dz, (long)n * K);
      free(z), free(lse), free(dz), free(want), free(scratch);
    }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dense),
    cmocka_unit_test(test_empty),
    cmocka_unit_test(test_load),
    cmocka_unit_test(test_tanh),
    cmocka_unit_test(test_act),
    cmocka_unit_test(test_act_nan),
    cmocka_unit_test(test_expf),
    cmocka_unit_test(test_xent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
