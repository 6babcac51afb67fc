/*
 * test_kernels.c — every kernel of rt/kernels.h against a naive loop
 * that states its contract, bit for bit: each output element summed one
 * term at a time in increasing index order, from the bias or from 0,
 * skipping terms whose input is zero, each term added as acc + a·b
 * (strict) or fma(a, b, acc) (fma).
 *
 * The copies tested are those compiled into mlpc for tcc's code
 * (backend/kernels.c), found by name as jit.c finds them: float and
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
#include "../rt/rmath.h"

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

/* The kernel called name in copy c. */
static KernelFn find(const Copy *c, const char *name) {
  for (const RtKernel *k = c->table; k->name; k++)
    if (!strcmp(k->name, name))
      return k->fn;
  fail_msg("no kernel %s in the %s table", name, c->name);
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

/* act_tanh: for float, rt/rmath.h's rm_tanhf on every lane, equal
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
   1 to 70, labels spread over the classes, a tie for the maximum in row
   0: log_softmax as (z − m) − log Σ e^(z − m), PyTorch's. */
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
        double l = c->f64 ? log(s) : logf((float)s);
        assert_true(get(c->f64, lse, r) == l);
        correct_want += arg == y[r];
        for (int j = 0; j < K; j++) {
          double t = c->f64 ? (get(1, z, (long)r * K + j) - m) - l
                            : (float)((float)((float)get(0, z, (long)r * K + j) - (float)m) -
                                      (float)l);
          if (j == y[r])
            sum_want -= t;
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

/* A confident row (its label's logit 22 above the rest): its label's
   gradient, about −1.6e-10, as PyTorch's cross_entropy gives it in float64
   (log_softmax as (z − m) − lse, so that the small lse survives), to
   1e-12; through m + lse it was off by 3e-6. */
static void test_xent_confident(void **state_) {
  (void)state_;
  typedef double FwdFn(int, int, const void *, const unsigned char *, void *, void *, long *);
  typedef void BwdFn(int, int, const void *, const void *, const unsigned char *, void *);
  static const double want[6] = {-0x1.9f2e1ec660000p-18, 0x1.34cf79db6edcfp-32,
                                 0x1.9f294b886c8c5p-18,  0x1.52f63433cca88p-33,
                                 -0x1.5894400000000p-33, 0x1.67852a6e23f95p-39};
  double z[6] = {12.0, -9.3, 0.7, 3.1, 25.0, -1.0}, lse[2], e[6], dz[6];
  unsigned char y[2] = {0, 1};
  for (int k = 0; k < NELEM(copies); k++) {
    if (!copies[k].f64)
      continue;
    long correct = 0;
    double sum = ((FwdFn *)find(&copies[k], "xent_forward"))(2, 3, z, y, lse, e, &correct);
    assert_true(fabs(sum - 1.2373722833733153e-05) < 1e-12 * 1.2373722833733153e-05);
    ((BwdFn *)find(&copies[k], "xent_backward"))(2, 3, z, lse, y, dz);
    for (int i = 0; i < 6; i++)
      assert_true(fabs(dz[i] - want[i]) <= 1e-12 * fabs(want[i]));
  }
}

/* ---- convolutions, pooling and BatchNorm2d ----

   Each kernel against its textbook definition, summed in long double
   in the test: the result must lie within a bound of rounding errors,
   some units in the last place times the number of terms, of the exact
   sum. The convolutions also against their summation order (kernels.h)
   in the copy's own arithmetic, bit for bit but for the sign of zero;
   and the backward kernels against finite differences of the forward
   ones, in double. */

/* One convolution or pool: batch, channels in, image, channels out (a
   pool: C), kernel, stride, padding. */
typedef struct {
  int n, C, H, W, O, KH, KW, SH, SW, PH, PW;
} Shape;

typedef void ConvFwdFn(int, int, int, int, int, int, int, int, int, int, int, const void *,
                       const void *, const void *, void *, void *);
typedef void ConvBwdFn(int, int, int, int, int, int, int, int, int, int, int, const void *,
                       const void *, const void *, void *, void *, void *, void *, void *);
typedef void MaxFwdFn(int, int, int, int, int, int, int, int, const void *, void *, int *);
typedef void MaxBwdFn(int, int, int, int, int, int, int, int, const void *, const int *,
                      void *);
typedef void AvgFwdFn(int, int, int, int, int, int, int, int, const void *, void *);
typedef void AvgBwdFn(int, int, int, int, int, int, int, int, const void *, void *);
typedef void Bn2dFwdFn(int, int, int, int, double, double, const void *, const void *,
                       const void *, void *, void *, double *, double *, double *, void *,
                       void *);
typedef void Bn2dBwdFn(int, int, int, const void *, const void *, const void *,
                       const double *, double *, double *, void *, void *, void *);

static int out_h(const Shape *s) { return (s->H + 2 * s->PH - s->KH) / s->SH + 1; }
static int out_w(const Shape *s) { return (s->W + 2 * s->PW - s->KW) / s->SW + 1; }
static long in_len(const Shape *s) { return (long)s->n * s->C * s->H * s->W; }
static long out_len(const Shape *s) { return (long)s->n * s->O * out_h(s) * out_w(s); }
static long w_len(const Shape *s) { return (long)s->O * s->C * s->KH * s->KW; }
static long col_len(const Shape *s) {
  return (long)s->C * s->KH * s->KW * out_h(s) * out_w(s);
}

/* x[r][c][h][w] of the input (0 in the padding: h or w outside). */
static double pixel(const Copy *c, const Shape *s, const void *x, int r, int ch, int h, int w) {
  if (h < 0 || h >= s->H || w < 0 || w >= s->W)
    return 0;
  return get(c->f64, x, (((long)r * s->C + ch) * s->H + h) * s->W + w);
}

/* The unit roundoff of the copy's precision. */
static double unit(const Copy *c) { return c->f64 ? 0x1p-53 : 0x1p-24; }

/* Asserts that got is within terms units in the last place of the sum
   want whose terms' magnitudes add up to mag. */
static void near(const Copy *c, const char *what, const Shape *s, long e, double got,
                 long double want, long double mag, int terms) {
  long double bound = 2 * (terms + 2) * unit(c) * mag + 1e-300L;
  if (!(fabsl((long double)got - want) <= bound))
    fail_msg("%s %s, n %d C %d %dx%d O %d k %dx%d s %dx%d p %dx%d: element %ld is %a, "
             "the exact value %La (bound %Lg)", c->name, what, s->n, s->C, s->H, s->W, s->O,
             s->KH, s->KW, s->SH, s->SW, s->PH, s->PW, e, got, want, bound);
}

/* Asserts that got equals want (the sign of zero aside; NaN equals NaN). */
static void same(const Copy *c, const char *what, const Shape *s, long e, double got,
                 double want) {
  if (!(got == want || (isnan(got) && isnan(want))))
    fail_msg("%s %s, n %d C %d %dx%d O %d k %dx%d s %dx%d p %dx%d: element %ld is %a, "
             "the summation order gives %a", c->name, what, s->n, s->C, s->H, s->W, s->O,
             s->KH, s->KW, s->SH, s->SW, s->PH, s->PW, e, got, want);
}

/* A real rounded to the copy's precision. */
static double rnd(const Copy *c, double v) { return c->f64 ? v : (float)v; }

/* The lanes of kernels.h's vectors of tiles (WINO_V) in copy c. */
static int wino_lanes(const Copy *c) { return c->f64 ? 8 : 16; }

/* kernels.h's wino_scratch: reals of conv_wino's scratch. */
static long wino_scratch_of(const Copy *c, int C, int O) {
  return 16L * C * ((O + 15) / 16 * 16) + 16L * C * wino_lanes(c) + 16L * 16 * wino_lanes(c);
}

/* Whether kernels.h's conv2d_forward takes conv_wino (conv_by_wino). */
static int by_wino(const Copy *c, const Shape *s) {
  return s->KH == 3 && s->KW == 3 && s->SH == 1 && s->SW == 1 && s->C >= 8 && s->O >= 8 &&
         2 * ((out_w(s) + 1) / 2) + 2 <= wino_lanes(c) &&
         wino_scratch_of(c, s->C, s->O) <= col_len(s);
}

/* Whether its conv2d_backward's dx takes conv_wino (conv_dx_by_wino). */
static int dx_by_wino(const Copy *c, const Shape *s) {
  return s->KH == 3 && s->KW == 3 && s->SH == 1 && s->SW == 1 && s->PH <= 2 && s->PW <= 2 &&
         s->C >= 8 && s->O >= 8 && 2 * ((s->W + 1) / 2) + 2 <= wino_lanes(c) &&
         wino_scratch_of(c, s->O, s->C) <= col_len(s);
}

/* Output (di, dj) of a 2×2 tile of F(2×2, 3×3) as kernels.h's
   conv_wino computes it, in the copy's precision: the tile's 4×4 input
   d and 3×3 kernel g of each of cn channels; b added unless !hasb. */
static double wino_ref(const Copy *c, int cn, const double (*d)[16], const double (*g)[9],
                       int di, int dj, double b, int hasb) {
  double m[16] = {0};
  for (int ch = 0; ch < cn; ch++) {
    double t[4][3], u[16], e[4][4], v[16];
    const double *k = g[ch], *x = d[ch];
    for (int j = 0; j < 3; j++) { /* U = G·g·Gᵀ */
      t[0][j] = k[j];
      t[1][j] = rnd(c, rnd(c, rnd(c, k[j] + k[3 + j]) + k[6 + j]) * 0.5);
      t[2][j] = rnd(c, rnd(c, rnd(c, k[j] - k[3 + j]) + k[6 + j]) * 0.5);
      t[3][j] = k[6 + j];
    }
    for (int i = 0; i < 4; i++) {
      u[4 * i] = t[i][0];
      u[4 * i + 1] = rnd(c, rnd(c, rnd(c, t[i][0] + t[i][1]) + t[i][2]) * 0.5);
      u[4 * i + 2] = rnd(c, rnd(c, rnd(c, t[i][0] - t[i][1]) + t[i][2]) * 0.5);
      u[4 * i + 3] = t[i][2];
    }
    for (int j = 0; j < 4; j++) { /* V = Bᵀ·d·B */
      e[0][j] = rnd(c, x[j] - x[8 + j]), e[1][j] = rnd(c, x[4 + j] + x[8 + j]);
      e[2][j] = rnd(c, x[8 + j] - x[4 + j]), e[3][j] = rnd(c, x[4 + j] - x[12 + j]);
    }
    for (int i = 0; i < 4; i++) {
      v[4 * i] = rnd(c, e[i][0] - e[i][2]), v[4 * i + 1] = rnd(c, e[i][1] + e[i][2]);
      v[4 * i + 2] = rnd(c, e[i][2] - e[i][1]), v[4 * i + 3] = rnd(c, e[i][1] - e[i][3]);
    }
    for (int q = 0; q < 16; q++)
      m[q] = mac(c, m[q], u[q], v[q]);
  }
  double s[4]; /* row di of Aᵀ·M, then its column dj */
  for (int j = 0; j < 4; j++)
    s[j] = di ? rnd(c, rnd(c, m[4 + j] - m[8 + j]) - m[12 + j])
              : rnd(c, rnd(c, m[j] + m[4 + j]) + m[8 + j]);
  double y = dj ? rnd(c, rnd(c, s[1] - s[2]) - s[3]) : rnd(c, rnd(c, s[0] + s[1]) + s[2]);
  return hasb ? rnd(c, y + b) : y;
}

/* The magnitude F(2×2, 3×3)'s rounding errors are relative to: the
   transforms mix the whole tile, so every product of one of its 16
   inputs and one of its 9 weights, Σ_c Σ|d|·Σ|g|, plus |b|. */
static long double wino_mag(int cn, const double (*d)[16], const double (*g)[9], double b) {
  long double mag = fabsl((long double)b);
  for (int ch = 0; ch < cn; ch++) {
    long double sd = 0, sg = 0;
    for (int q = 0; q < 16; q++)
      sd += fabsl((long double)d[ch][q]);
    for (int e = 0; e < 9; e++)
      sg += fabsl((long double)g[ch][e]);
    mag += sd * sg;
  }
  return mag;
}

/* y against Σ w·x + b, exactly and in kernels.h's order (b first, then
   k = (c, i, j) increasing, each term with MAC; or F(2×2, 3×3)'s, its
   rounding bound relative to its tile's magnitude, wino_mag). */
static void check_conv_y(const Copy *c, const Shape *s, const void *x, const void *w,
                         const void *b, const void *y) {
  int OH = out_h(s), OW = out_w(s), K = s->C * s->KH * s->KW, wino = by_wino(c, s);
  double(*d)[16] = malloc(sizeof *d * (size_t)s->C), (*g)[9] = malloc(sizeof *g * (size_t)s->C);
  for (int r = 0; r < s->n; r++)
    for (int o = 0; o < s->O; o++)
      for (int p = 0; p < OH * OW; p++) {
        int oh = p / OW, ow = p % OW;
        double acc = b ? get(c->f64, b, o) : 0;
        long double exact = acc, mag = fabsl(exact);
        for (int k = 0; k < K; k++) {
          int ch = k / (s->KH * s->KW), i = k / s->KW % s->KH, j = k % s->KW;
          double xv = pixel(c, s, x, r, ch, oh * s->SH - s->PH + i, ow * s->SW - s->PW + j);
          double wv = get(c->f64, w, (long)o * K + k);
          acc = mac(c, acc, wv, xv);
          exact += (long double)wv * xv, mag += fabsl((long double)wv * xv);
        }
        long e = ((long)r * s->O + o) * OH * OW + p;
        if (wino) { /* F(2×2, 3×3): the tile's input and the kernels */
          for (int ch = 0; ch < s->C; ch++)
            for (int q = 0; q < 16; q++) {
              int th = oh / 2 * 2 + q / 4 - s->PH, tw = ow / 2 * 2 + q % 4 - s->PW;
              d[ch][q] = pixel(c, s, x, r, ch, th, tw);
              if (q < 9)
                g[ch][q] = get(c->f64, w, ((long)o * s->C + ch) * 9 + q);
            }
          acc = wino_ref(c, s->C, d, g, oh % 2, ow % 2, b ? get(c->f64, b, o) : 0, b != NULL);
          mag = wino_mag(s->C, d, g, b ? get(c->f64, b, o) : 0);
        }
        same(c, "conv2d_forward", s, e, get(c->f64, y, e), acc);
        near(c, "conv2d_forward", s, e, get(c->f64, y, e), exact, mag,
             wino ? s->C + 16 : K + 1);
      }
  free(d), free(g);
}

/* Whether kernels.h's conv2d_backward sums dw and db along the output
   rows in 16 partials (conv_dw_by_rows): stride 1 along the rows, rows
   of at least 8 columns, C·KH·KW <= 12, and its KW padded copies of a
   sample, rows of 16·⌈OW/16⌉ reals, and the partials fitting a
   sample's col. */
static int by_rows(const Shape *s) {
  int OW = out_w(s), K = s->C * s->KH * s->KW;
  long P = (long)out_h(s) * OW, row = (OW + 15) / 16 * 16;
  return s->SW == 1 && OW >= 8 && K <= 12 &&
         (long)s->KW * s->C * (s->H + 2 * s->PH) * row + 64 <= K * P &&
         (long)s->O * (K + 1) * 16 <= K * P;
}

/* The 16 partial sums p added in halves: l and l + 8, then l and l + 4,
   ... (kernels.h's conv_halves), in the copy's precision. */
static double halves(const Copy *c, double *p) {
  for (int w = 8; w; w /= 2)
    for (int l = 0; l < w; l++)
      p[l] = rnd(c, p[l] + p[l + w]);
  return p[0];
}

/* dw against Σ_batch Σ_p dy·x, db against Σ dy: exactly, and dw in
   kernels.h's order: along the batch, then p, or (by_rows) in 16
   partials, column ow's terms in partial ow mod 16, then halves; and db
   too in that case. */
static void check_conv_dw(const Copy *c, const Shape *s, const void *x, const void *dy,
                          const void *dw, const void *db) {
  int OH = out_h(s), OW = out_w(s), K = s->C * s->KH * s->KW, P = OH * OW, rows = by_rows(s);
  for (int o = 0; o < s->O; o++) {
    long double sum = 0, smag = 0;
    double part[16] = {0};
    for (int k = 0; k < K; k++) {
      int ch = k / (s->KH * s->KW), i = k / s->KW % s->KH, j = k % s->KW;
      double acc = 0, p[16] = {0};
      long double exact = 0, mag = 0;
      for (int r = 0; r < s->n; r++)
        for (int q = 0; q < P; q++) {
          int l = q % OW % 16; /* by_rows' partial */
          double g = get(c->f64, dy, ((long)r * s->O + o) * P + q);
          double xv = pixel(c, s, x, r, ch, q / OW * s->SH - s->PH + i,
                            q % OW * s->SW - s->PW + j);
          acc = mac(c, acc, g, xv);
          p[l] = mac(c, p[l], g, xv);
          exact += (long double)g * xv, mag += fabsl((long double)g * xv);
          if (k == 0)
            sum += g, smag += fabsl((long double)g), part[l] = rnd(c, part[l] + g);
        }
      if (rows)
        acc = halves(c, p);
      same(c, "conv2d_backward dw", s, (long)o * K + k, get(c->f64, dw, (long)o * K + k), acc);
      near(c, "conv2d_backward dw", s, (long)o * K + k, get(c->f64, dw, (long)o * K + k), exact,
           mag, s->n * P);
    }
    if (db && rows)
      same(c, "conv2d_backward db", s, o, get(c->f64, db, o), halves(c, part));
    if (db)
      near(c, "conv2d_backward db", s, o, get(c->f64, db, o), sum, smag, s->n * P);
  }
}

/* dx against Σ_o Σ_(i,j) w·dy exactly, and in kernels.h's order: for
   each (i, j) increasing, the sum over o rounded, then added; or that
   of F(2×2, 3×3) of dy padded by 2 − PH, 2 − PW with the kernels turned
   by 180° and the channels swapped. */
static void check_conv_dx(const Copy *c, const Shape *s, const void *w, const void *dy,
                          const void *dx) {
  int OH = out_h(s), OW = out_w(s), KK = s->KH * s->KW, K = s->C * KK, wino = dx_by_wino(c, s);
  double(*d)[16] = malloc(sizeof *d * (size_t)s->O), (*g)[9] = malloc(sizeof *g * (size_t)s->O);
  for (int r = 0; r < s->n; r++)
    for (int ch = 0; ch < s->C; ch++)
      for (int h = 0; h < s->H; h++)
        for (int x = 0; x < s->W; x++) {
          double acc = 0;
          long double exact = 0, mag = 0;
          for (int i = 0; i < s->KH; i++)
            for (int j = 0; j < s->KW; j++) {
              int th = h + s->PH - i, tw = x + s->PW - j;
              if (th < 0 || tw < 0 || th % s->SH || tw % s->SW || th / s->SH >= OH ||
                  tw / s->SW >= OW)
                continue;
              long p = th / s->SH * OW + tw / s->SW;
              double d = 0;
              for (int o = 0; o < s->O; o++) {
                double wv = get(c->f64, w, (long)o * K + ch * KK + i * s->KW + j);
                double g = get(c->f64, dy, ((long)r * s->O + o) * OH * OW + p);
                d = mac(c, d, wv, g);
                exact += (long double)wv * g, mag += fabsl((long double)wv * g);
              }
              acc = rnd(c, acc + d);
            }
          long e = (((long)r * s->C + ch) * s->H + h) * s->W + x;
          for (int o = 0; o < s->O && wino; o++)
            for (int q = 0; q < 16; q++) {
              int th = h / 2 * 2 + q / 4 - (2 - s->PH), tw = x / 2 * 2 + q % 4 - (2 - s->PW);
              d[o][q] = th < 0 || tw < 0 || th >= OH || tw >= OW
                          ? 0
                          : get(c->f64, dy, ((long)r * s->O + o) * OH * OW + (long)th * OW + tw);
              if (q < 9)
                g[o][q] = get(c->f64, w, (long)o * K + ch * KK + 8 - q);
            }
          if (wino)
            acc = wino_ref(c, s->O, d, g, h % 2, x % 2, 0, 0), mag = wino_mag(s->O, d, g, 0);
          same(c, "conv2d_backward dx", s, e, get(c->f64, dx, e), acc);
          near(c, "conv2d_backward dx", s, e, get(c->f64, dx, e), exact, mag,
               wino ? s->O + 16 : s->O + KK);
        }
  free(d), free(g);
}

/* col's scratch of one sample, then a guard of as many reals that no
   kernel may touch: the forward leaves junk there for the backward. */
static void check_conv_col(const Copy *c, const Shape *s, void *col, const void *guard,
                           const char *pass) {
  size_t size = (size_t)col_len(s) * (c->f64 ? 8 : 4);
  if (memcmp((char *)col + size, guard, size))
    fail_msg("%s: conv2d %s wrote past one sample's col", c->name, pass);
  memcpy(col, guard, size); /* the backward builds col again */
}

/* Runs one convolution forward and backward in copy c and checks all. */
static void check_conv(const Copy *c, const Shape *s) {
  /* x with many zeros, or few: conv2d_backward's weight gradient skips
     zero pixels where they are many (conv_dw_pixels) */
  void *x = values(c->f64, in_len(s), s->n % 2 ? 0.4 : 0.1), *w = values(c->f64, w_len(s), 0.05);
  void *b = values(c->f64, s->O, 0), *y = values(c->f64, out_len(s), 0);
  void *col = values(c->f64, 2 * col_len(s), 0), *dcol = values(c->f64, col_len(s), 0);
  void *guard = malloc((size_t)col_len(s) * (c->f64 ? 8 : 4) + 1);
  memcpy(guard, (char *)col + (size_t)col_len(s) * (c->f64 ? 8 : 4),
         (size_t)col_len(s) * (c->f64 ? 8 : 4));
  void *dy = values(c->f64, out_len(s), 0.3), *dw = values(c->f64, w_len(s), 0);
  void *db = values(c->f64, s->O, 0), *dx = values(c->f64, in_len(s), 0);
  int bias = (s->n + s->C) % 2; /* with and without a bias */
  ((ConvFwdFn *)find(c, "conv2d_forward"))(s->n, s->C, s->H, s->W, s->O, s->KH, s->KW, s->SH,
                                           s->SW, s->PH, s->PW, x, w, bias ? b : NULL, col, y);
  check_conv_y(c, s, x, w, bias ? b : NULL, y);
  check_conv_col(c, s, col, guard, "forward");
  ((ConvBwdFn *)find(c, "conv2d_backward"))(s->n, s->C, s->H, s->W, s->O, s->KH, s->KW, s->SH,
                                            s->SW, s->PH, s->PW, dy, x, w, col, dcol, dw,
                                            bias ? db : NULL, bias ? dx : NULL);
  check_conv_col(c, s, col, guard, "backward");
  check_conv_dw(c, s, x, dy, dw, bias ? db : NULL);
  if (bias)
    check_conv_dx(c, s, w, dy, dx);
  free(x), free(w), free(b), free(y), free(col), free(dcol), free(dy), free(dw), free(db);
  free(dx), free(guard);
}

/* The shapes of the tests: every combination of odd channel counts,
   kernels (square and not), strides, paddings and batch sizes on two
   images whose sizes no window divides; then the reference network's
   two convolutions and a few wider ones, which cross every block of
   the kernels. Calls fn on each with a valid output. */
static void each_shape(void (*fn)(const Copy *, const Shape *), const Copy *c, int pool) {
  static const int cs[] = {1, 3, 5}, ks[][2] = {{1, 1}, {2, 2}, {3, 3}, {5, 5}, {3, 5}};
  static const int ns[] = {1, 2, 7}, os[] = {1, 4, 17}, imgs[][2] = {{7, 9}, {12, 11}};
  static const Shape wide[] = {
    {3, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1}, {2, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1},
    {3, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1},
    {2, 3, 13, 30, 33, 3, 3, 1, 1, 1, 1}, {2, 7, 17, 19, 50, 5, 3, 2, 1, 2, 0},
    {1, 2, 40, 9, 9, 2, 2, 2, 2, 0, 0},
    /* F(2×2, 3×3) (the last two in double): odd tiles, outputs past a
       block of 16, paddings 0 to 2 */
    {2, 9, 13, 13, 17, 3, 3, 1, 1, 1, 1}, {1, 8, 14, 12, 8, 3, 3, 1, 1, 0, 2},
    {2, 11, 16, 10, 12, 3, 3, 1, 1, 2, 1}, {3, 8, 14, 6, 9, 3, 3, 1, 1, 1, 1},
    {2, 9, 15, 5, 8, 3, 3, 1, 1, 1, 1},
  };
  int q = 0;
  for (int a = 0; a < NELEM(cs); a++)
    for (int k = 0; k < NELEM(ks); k++)
      for (int st = 1; st <= 2; st++)
        for (int pd = 0; pd <= (pool ? 0 : 2); pd++)
          for (int r = 0; r < NELEM(ns); r++)
            for (int im = 0; im < NELEM(imgs); im++, q++) {
              Shape s = {ns[r], cs[a], imgs[im][0], imgs[im][1], pool ? cs[a] : os[q % 3],
                         ks[k][0], ks[k][1], st, st + (q % 4 == 3), pd, pd};
              if (out_h(&s) >= 1 && out_w(&s) >= 1)
                fn(c, &s);
            }
  for (int w = 0; w < NELEM(wide); w++) {
    Shape s = wide[w];
    if (pool)
      s.O = s.C, s.PH = s.PW = 0;
    fn(c, &s);
  }
}

/* conv2d_forward and conv2d_backward, every shape, every copy. */
static void test_conv(void **state_) {
  (void)state_;
  for (int k = 0; k < NELEM(copies); k++)
    each_shape(check_conv, &copies[k], 0);
}

/* An Inf pixel among many zeros: the weight gradient may skip the zero
   pixels, but a tap of the Inf pixel that reaches no output adds no term
   (x (1, 2, 1, 16), channel 1 all 0, one output, kernel 1×2, dy all 1:
   tap 0 sums Inf + 1, tap 1 reaches past the row from the Inf pixel and
   sums 1 alone). */
static void test_conv_inf_pixel(void **state_) {
  (void)state_;
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *x = values(c->f64, 32, 1), *dy = values(c->f64, 15, 0), *w = values(c->f64, 4, 0);
    void *col = values(c->f64, 60, 0), *dcol = values(c->f64, 60, 0), *dw = values(c->f64, 4, 0);
    put(c->f64, x, 0, INFINITY), put(c->f64, x, 1, 1);
    for (int p = 0; p < 15; p++)
      put(c->f64, dy, p, 1);
    ((ConvBwdFn *)find(c, "conv2d_backward"))(1, 2, 1, 16, 1, 1, 2, 1, 1, 0, 0, dy, x, w, col,
                                              dcol, dw, NULL, NULL);
    assert_true(get(c->f64, dw, 0) == INFINITY);
    if (get(c->f64, dw, 1) != 1)
      fail_msg("%s: conv2d_backward's tap 1 is %a, not 1", c->name, get(c->f64, dw, 1));
    assert_true(get(c->f64, dw, 2) == 0 && get(c->f64, dw, 3) == 0);
    free(x), free(dy), free(w), free(col), free(dcol), free(dw);
  }
}

/* conv_dw_rows' vectors run past the output row's end, where the
   padded copy holds the row's last pixels: an Inf there (x (1, 1, 4,
   20) at (1, 19), kernel 3×3, padding 1, two outputs) must add no term
   to the taps that do not reach it. */
static void test_conv_rows_inf(void **state_) {
  (void)state_;
  Shape s = {1, 1, 4, 20, 2, 3, 3, 1, 1, 1, 1};
  assert_true(by_rows(&s));
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *x = values(c->f64, in_len(&s), 0.2), *dy = values(c->f64, out_len(&s), 0);
    void *w = values(c->f64, w_len(&s), 0), *col = values(c->f64, col_len(&s), 0);
    void *dcol = values(c->f64, col_len(&s), 0), *dw = values(c->f64, w_len(&s), 0);
    void *db = values(c->f64, s.O, 0);
    put(c->f64, x, 1 * 20 + 19, INFINITY);
    ((ConvBwdFn *)find(c, "conv2d_backward"))(s.n, s.C, s.H, s.W, s.O, s.KH, s.KW, s.SH, s.SW,
                                              s.PH, s.PW, dy, x, w, col, dcol, dw, db, NULL);
    for (int e = 0; e < w_len(&s); e += 3) /* the taps (i, 0) reach column 18 at most */
      if (!isfinite(get(c->f64, dw, e)))
        fail_msg("%s: conv2d_backward's dw[%d] is %a", c->name, e, get(c->f64, dw, e));
    free(x), free(dy), free(w), free(col), free(dcol), free(dw), free(db);
  }
}

/* Max pooling against the textbook: each window's maximum and the index
   of its first occurrence; dx the sum of the dy that chose each pixel. */
static void check_maxpool(const Copy *c, const Shape *s) {
  int OH = out_h(s), OW = out_w(s);
  long len = (long)s->n * s->C * OH * OW;
  void *x = values(c->f64, in_len(s), 0.3), *y = values(c->f64, len, 0);
  void *dy = values(c->f64, len, 0), *dx = values(c->f64, in_len(s), 0);
  int *arg = malloc(sizeof(int) * len);
  long double *want = calloc(in_len(s), sizeof *want), *mag = calloc(in_len(s), sizeof *mag);
  ((MaxFwdFn *)find(c, "maxpool2d_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH, s->SW,
                                             x, y, arg);
  for (long q = 0; q < len; q++) {
    long plane = q / (OH * OW);
    int oh = q % (OH * OW) / OW, ow = q % OW, best = -1;
    for (int i = 0; i < s->KH; i++)
      for (int j = 0; j < s->KW; j++) {
        int e = (oh * s->SH + i) * s->W + ow * s->SW + j;
        if (best < 0 || get(c->f64, x, plane * s->H * s->W + e) >
                          get(c->f64, x, plane * s->H * s->W + best))
          best = e;
      }
    assert_int_equal(arg[q], best);
    assert_true(get(c->f64, y, q) == get(c->f64, x, plane * s->H * s->W + best));
    want[plane * s->H * s->W + best] += get(c->f64, dy, q);
    mag[plane * s->H * s->W + best] += fabsl((long double)get(c->f64, dy, q));
  }
  ((MaxBwdFn *)find(c, "maxpool2d_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                              s->SW, dy, arg, dx);
  for (long e = 0; e < in_len(s); e++)
    near(c, "maxpool2d_backward", s, e, get(c->f64, dx, e), want[e], mag[e], s->KH * s->KW);
  free(x), free(y), free(dy), free(dx), free(arg), free(want), free(mag);
}

/* Average pooling against the textbook: each window's mean; dx the sum
   of dy / (KH·KW) over the windows that hold each pixel. The forward
   also bit for bit as PyTorch computes it: the sum row by row in the
   copy's precision, divided. */
static void check_avgpool(const Copy *c, const Shape *s) {
  int OH = out_h(s), OW = out_w(s), KK = s->KH * s->KW;
  long len = (long)s->n * s->C * OH * OW;
  void *x = values(c->f64, in_len(s), 0.3), *y = values(c->f64, len, 0);
  void *dy = values(c->f64, len, 0), *dx = values(c->f64, in_len(s), 0);
  long double *want = calloc(in_len(s), sizeof *want), *mag = calloc(in_len(s), sizeof *mag);
  ((AvgFwdFn *)find(c, "avgpool2d_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                             s->SW, x, y);
  for (long q = 0; q < len; q++) {
    long plane = q / (OH * OW) * s->H * s->W;
    int oh = q % (OH * OW) / OW, ow = q % OW;
    double sum = 0;
    long double exact = 0, m = 0;
    for (int i = 0; i < s->KH; i++)
      for (int j = 0; j < s->KW; j++) {
        long e = plane + (oh * s->SH + i) * s->W + ow * s->SW + j;
        sum = rnd(c, sum + get(c->f64, x, e));
        exact += get(c->f64, x, e), m += fabsl((long double)get(c->f64, x, e));
        want[e] += (long double)get(c->f64, dy, q) / KK;
        mag[e] += fabsl((long double)get(c->f64, dy, q)) / KK;
      }
    same(c, "avgpool2d_forward", s, q, get(c->f64, y, q), rnd(c, sum / KK));
    near(c, "avgpool2d_forward", s, q, get(c->f64, y, q), exact / KK, m / KK, KK + 1);
  }
  ((AvgBwdFn *)find(c, "avgpool2d_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                              s->SW, dy, dx);
  for (long e = 0; e < in_len(s); e++)
    near(c, "avgpool2d_backward", s, e, get(c->f64, dx, e), want[e], mag[e], KK + 1);
  free(x), free(y), free(dy), free(dx), free(want), free(mag);
}

/* Runs bn2d_forward (train or not) on x (n, C, S) in copy c. */
static void run_bn2d(const Copy *c, int n, int C, int S, int train, const void *x,
                     const void *gamma, const void *beta, void *rm, void *rv, double *st,
                     void *xhat, void *y) {
  ((Bn2dFwdFn *)find(c, "bn2d_forward"))(n, C, S, train, 0.1, 1e-5, x, gamma, beta, rm, rv,
                                         st, st + C, st + 2 * C, xhat, y);
}

typedef void MaxBnFwdFn(int, int, int, int, int, int, int, int, const void *, const double *,
                        const double *, const void *, const void *, void *, void *, void *,
                        int *);

typedef void MaxReluBwdFn(int, int, int, int, int, int, int, int, const void *, const int *,
                          const void *, void *);

/* A copy of buf's reals from `from` to `to`, which untouched then
   compares with them (and frees). */
static void *kept_from(const Copy *c, const void *buf, long from, long to) {
  size_t sz = c->f64 ? 8 : 4;
  void *kept = malloc((size_t)(to - from) * sz + 1);
  memcpy(kept, (const char *)buf + from * sz, (size_t)(to - from) * sz);
  return kept;
}

/* Fails unless buf's reals from `from` to `to` are still those kept. */
static void untouched(const Copy *c, const char *what, void *kept, const void *buf, long from,
                      long to) {
  size_t sz = c->f64 ? 8 : 4;
  if (memcmp(kept, (const char *)buf + from * sz, (size_t)(to - from) * sz))
    fail_msg("%s: %s", c->name, what);
  free(kept);
}

typedef void MaxReluBnBwdFn(int, int, int, int, int, int, int, int, const void *, const int *,
                            const void *, const void *, const void *, const double *, double *,
                            double *, void *, void *, void *, void *);

/* maxpool2d_relu_forward and _backward against act_relu, maxpool2d_forward,
   maxpool2d_backward and act_relu_back run one after the other, bit for
   bit (the sign of zero too), on values with zeros of both signs, NaN and
   windows all negative or all zero. */
static void check_maxpool_relu(const Copy *c, const Shape *s) {
  typedef void FwdFn(int, const void *, void *);
  typedef void BwdFn(int, const void *, const void *, const void *, void *);
  long len = (long)s->n * s->C * out_h(s) * out_w(s), in = in_len(s);
  void *x = values(c->f64, in, 0.3), *r = values(c->f64, in, 0), *dy = values(c->f64, len, 0.1);
  void *y[2] = {values(c->f64, len, 0), values(c->f64, len, 0)};
  void *dx[2] = {values(c->f64, in, 0), values(c->f64, in, 0)}, *t = values(c->f64, in, 0);
  int *arg[2] = {malloc(sizeof(int) * len), malloc(sizeof(int) * len)};
  for (long e = 0; e < in; e++) /* −0, NaN, and runs of negatives and zeros */
    if (e % 7 == 3 || e % 13 == 5)
      put(c->f64, x, e, e % 7 == 3 ? -0.0 : e % 3 ? -1.0 : NAN);
    else if (e / 8 % 5 == 1)
      put(c->f64, x, e, -fabs(get(c->f64, x, e)));
  for (long q = 0; q < len; q += 9)
    put(c->f64, dy, q, -0.0);
  ((FwdFn *)find(c, "act_relu"))((int)in, x, r);
  ((MaxFwdFn *)find(c, "maxpool2d_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH, s->SW,
                                             r, y[0], arg[0]);
  ((MaxFwdFn *)find(c, "maxpool2d_relu_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                                  s->SW, x, y[1], arg[1]);
  same_bits(c, "maxpool2d_relu_forward", s->n, s->C, s->H, y[0], y[1], len);
  assert_memory_equal(arg[0], arg[1], sizeof(int) * len);
  ((MaxBwdFn *)find(c, "maxpool2d_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                              s->SW, dy, arg[0], t);
  ((BwdFn *)find(c, "act_relu_back"))((int)in, x, r, t, dx[0]);
  ((MaxReluBwdFn *)find(c, "maxpool2d_relu_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW,
                                                       s->SH, s->SW, dy, arg[1], y[1], dx[1]);
  same_bits(c, "maxpool2d_relu_backward", s->n, s->C, s->H, dx[0], dx[1], in);
  /* BatchNorm2d's forward (x̂ into t, y into r), then the same pooling;
     against its statistics alone (y null) and maxpool2d_bn_relu_forward
     (x̂ into dx[0], y a plane at a time into dx[1], the last one left) */
  int S = s->H * s->W;
  void *gamma = values(c->f64, s->C, 0), *beta = values(c->f64, s->C, 0);
  void *rm = values(c->f64, s->C, 0), *rv = values(c->f64, s->C, 0);
  double *st = malloc(sizeof(double) * 6 * s->C);
  for (int ch = 0; ch < s->C; ch++) /* γ of both signs, and 0: ties of ±0 */
    put(c->f64, gamma, ch, ch % 4 == 3 ? 0 : ch % 2 ? -1.5 : 0.75);
  for (long e = 0; e < in; e++) /* (a NaN would make its whole channel NaN) */
    if (isnan(get(c->f64, x, e)))
      put(c->f64, x, e, e % 2 ? 0.5 : -0.25);
  run_bn2d(c, s->n, s->C, S, 1, x, gamma, beta, rm, rv, st, t, r);
  ((MaxFwdFn *)find(c, "maxpool2d_relu_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                                  s->SW, r, y[0], arg[0]);
  run_bn2d(c, s->n, s->C, S, 1, x, gamma, beta, rm, rv, st + 3 * s->C, 0, 0);
  assert_memory_equal(st, st + 3 * s->C, sizeof(double) * 3 * s->C);
  void *kept = kept_from(c, dx[1], S, in); /* past the plane: not to be touched */
  ((MaxBnFwdFn *)find(c, "maxpool2d_bn_relu_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW,
                                                       s->SH, s->SW, x, st, st + 2 * s->C,
                                                       gamma, beta, dx[0], dx[1], y[1], arg[1]);
  same_bits(c, "maxpool2d_bn_relu_forward x̂", s->n, s->C, s->H, t, dx[0], in);
  int sz = c->f64 ? 8 : 4;
  same_bits(c, "maxpool2d_bn_relu_forward BatchNorm2d's y", 1, 1, s->H,
            (char *)r + (in - S) * sz, dx[1], S);
  untouched(c, "maxpool2d_bn_relu_forward wrote past its plane of y", kept, dx[1], S, in);
  same_bits(c, "maxpool2d_bn_relu_forward", s->n, s->C, s->H, y[0], y[1], len);
  assert_memory_equal(arg[0], arg[1], sizeof(int) * len);
  /* its backward: maxpool2d_relu_backward (into r), then bn2d_backward
     (into t), against maxpool2d_relu_bn_backward (into x, through n
     planes of scratch in dx[1]), x̂ being dx[0] */
  ((MaxReluBwdFn *)find(c, "maxpool2d_relu_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW,
                                                       s->SH, s->SW, dy, arg[1], y[1], r);
  void *g2[2][2] = {{values(c->f64, s->C, 0), values(c->f64, s->C, 0)},
                    {values(c->f64, s->C, 0), values(c->f64, s->C, 0)}};
  double *sums = malloc(sizeof(double) * 4 * s->C);
  ((Bn2dBwdFn *)find(c, "bn2d_backward"))(s->n, s->C, S, r, dx[0], gamma, st + 2 * s->C, sums,
                                          sums + s->C, g2[0][0], g2[0][1], t);
  kept = kept_from(c, dx[1], (long)s->n * S, in); /* past n planes: not to be touched */
  ((MaxReluBnBwdFn *)find(c, "maxpool2d_relu_bn_backward"))(
    s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH, s->SW, dy, arg[1], y[1], dx[0], gamma,
    st + 2 * s->C, sums + 2 * s->C, sums + 3 * s->C, g2[1][0], g2[1][1], dx[1], x);
  same_bits(c, "maxpool2d_relu_bn_backward dx", s->n, s->C, s->H, t, x, in);
  same_bits(c, "maxpool2d_relu_bn_backward dgamma", 1, 1, 1, g2[0][0], g2[1][0], s->C);
  same_bits(c, "maxpool2d_relu_bn_backward dbeta", 1, 1, 1, g2[0][1], g2[1][1], s->C);
  assert_memory_equal(sums, sums + 2 * s->C, sizeof(double) * 2 * s->C);
  untouched(c, "maxpool2d_relu_bn_backward wrote past its n planes of dy", kept, dx[1],
            (long)s->n * S, in);
  free(sums), free(g2[0][0]), free(g2[0][1]), free(g2[1][0]), free(g2[1][1]);
  free(x), free(r), free(dy), free(y[0]), free(y[1]), free(dx[0]), free(dx[1]), free(t);
  free(arg[0]), free(arg[1]), free(gamma), free(beta), free(rm), free(rv), free(st);
}

/* Both pools, and max pooling fused with relu, every shape without
   padding, every copy. */
static void test_pool(void **state_) {
  (void)state_;
  for (int k = 0; k < NELEM(copies); k++) {
    each_shape(check_maxpool, &copies[k], 1);
    each_shape(check_avgpool, &copies[k], 1);
    each_shape(check_maxpool_relu, &copies[k], 1);
  }
}

/* PyTorch's rules for the maximum: the first of equal maxima wins (ties
   of ReLU's zeros are common, −0 among them), a NaN wins over any number
   and a later NaN over an earlier one; then overlapping windows add
   their gradients at a shared maximum. */
static void test_maxpool_rules(void **state_) {
  (void)state_;
  enum { PLANES = 7 };
  /* 2x2 planes, one 2x2 window each */
  static const double planes[PLANES][4] = {
    {0, -0.0, 0, 0}, {1, 5, 5, 2}, {0, NAN, 7, NAN}, {9, 3, NAN, 1}, {NAN, 1, 2, 3},
    {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, {-0.0, 0, 0, 0}};
  static const int args[PLANES] = {0, 1, 3, 2, 0, 0, 0};
  for (int k = 0; k < NELEM(copies); k++) {
    const Copy *c = &copies[k];
    void *x = values(c->f64, 4 * PLANES, 0), *y = values(c->f64, PLANES, 0);
    int arg[PLANES];
    for (int e = 0; e < 4 * PLANES; e++)
      put(c->f64, x, e, planes[e / 4][e % 4]);
    ((MaxFwdFn *)find(c, "maxpool2d_forward"))(1, PLANES, 2, 2, 2, 2, 2, 2, x, y, arg);
    for (int q = 0; q < PLANES; q++) {
      assert_int_equal(arg[q], args[q]);
      double v = get(c->f64, y, q), want = planes[q][args[q]];
      assert_true(isnan(want) ? isnan(v) : v == want && signbit(v) == signbit(want));
    }
    /* a 1x3 plane, windows 1x2 at stride 1: both pick the 5 */
    void *dy = values(c->f64, 2, 0), *dx = values(c->f64, 3, 0);
    put(c->f64, x, 0, 1), put(c->f64, x, 1, 5), put(c->f64, x, 2, 2);
    put(c->f64, dy, 0, 0.25), put(c->f64, dy, 1, 0.5);
    ((MaxFwdFn *)find(c, "maxpool2d_forward"))(1, 1, 1, 3, 1, 2, 1, 1, x, y, arg);
    assert_int_equal(arg[0], 1), assert_int_equal(arg[1], 1);
    ((MaxBwdFn *)find(c, "maxpool2d_backward"))(1, 1, 1, 3, 1, 2, 1, 1, dy, arg, dx);
    assert_true(get(c->f64, dx, 0) == 0 && get(c->f64, dx, 1) == 0.75 &&
                get(c->f64, dx, 2) == 0);
    free(x), free(y), free(dx), free(dy);
  }
}

/* A channel's sum as bn2d_sum (rt/kernels.h) orders it: 32 partial
   sums in double, position s of each sample into partial s mod 32, then
   added in halves; terms x, (x − mean)² or x·x2 (the product rounded to
   the copy's precision). */
static double bn2d_order(const Copy *c, int n, int C, int S, int ch, int kind, const void *x,
                         const void *x2, double mean) {
  double p[32] = {0};
  for (int r = 0; r < n; r++)
    for (int q = 0; q < S; q++) {
      long e = ((long)r * C + ch) * S + q;
      double d = kind == 2 ? rnd(c, get(c->f64, x, e) * get(c->f64, x2, e))
                           : get(c->f64, x, e) - (kind ? mean : 0);
      p[q % 32] += kind == 1 ? d * d : d;
    }
  for (int w = 16; w; w /= 2)
    for (int l = 0; l < w; l++)
      p[l] += p[l + w];
  return p[0];
}

/* BatchNorm2d against its textbook definition in long double, in
   training and evaluation: the statistics of each channel over the batch
   and the plane; the running variance's unbiased factor N/(N − 1), N =
   n·S. The statistics are double: their error grows with N in units of
   double's roundoff, and the results' with a few of the copy's. */
static void check_bn2d(const Copy *c, int n, int C, int S) {
  long len = (long)n * C * S, N = (long)n * S;
  void *x = values(c->f64, len, 0.2), *gamma = values(c->f64, C, 0), *beta = values(c->f64, C, 0);
  void *rm = values(c->f64, C, 0), *rv = values(c->f64, C, 0), *xhat = values(c->f64, len, 0);
  void *y = values(c->f64, len, 0), *dy = values(c->f64, len, 0.1), *dx = values(c->f64, len, 0);
  void *dg = values(c->f64, C, 0), *dbt = values(c->f64, C, 0);
  double st[3 * 64], sc[3 * 64];
  Shape s = {n, C, S, 1, C, 1, 1, 1, 1, 0, 0};
  for (int ch = 0; ch < C; ch++)
    put(c->f64, rv, ch, 1 + get(c->f64, rv, ch) * get(c->f64, rv, ch));
  for (int train = 1; train >= 0; train--) {
    double rm0[64], rv0[64];
    for (int ch = 0; ch < C; ch++)
      rm0[ch] = get(c->f64, rm, ch), rv0[ch] = get(c->f64, rv, ch);
    run_bn2d(c, n, C, S, train, x, gamma, beta, rm, rv, st, xhat, y);
    for (int ch = 0; ch < C && train; ch++) { /* the statistics, in their order */
      double mean = bn2d_order(c, n, C, S, ch, 0, x, 0, 0) / N;
      same(c, "bn2d_forward mean", &s, ch, st[ch], mean);
      same(c, "bn2d_forward var", &s, ch, st[C + ch], bn2d_order(c, n, C, S, ch, 1, x, 0, mean) / N);
    }
    for (int ch = 0; ch < C; ch++) {
      long double mean = 0, var = 0, tol = 4 * (N + 8) * 0x1p-53L;
      for (long e = 0; e < N; e++)
        mean += get(c->f64, x, (e / S * C + ch) * S + e % S);
      mean /= N;
      for (long e = 0; e < N; e++) {
        long double d = get(c->f64, x, (e / S * C + ch) * S + e % S) - mean;
        var += d * d;
      }
      var /= N;
      if (train) {
        near(c, "bn2d_forward running mean", &s, ch, get(c->f64, rm, ch),
             0.9L * rm0[ch] + 0.1L * mean, fabsl(rm0[ch]) + fabsl(mean) + tol, 2);
        near(c, "bn2d_forward running var", &s, ch, get(c->f64, rv, ch),
             0.9L * rv0[ch] + 0.1L * var * N / (N - 1), rv0[ch] + var * (1 + tol), 3);
      } else
        mean = rm0[ch], var = rv0[ch];
      long double rstd = 1 / sqrtl(var + 1e-5L), g = get(c->f64, gamma, ch);
      for (long e = 0; e < N; e++) {
        long q = (e / S * C + ch) * S + e % S;
        long double xh = (get(c->f64, x, q) - mean) * rstd;
        long double mag = fabsl(g * xh) + fabsl((long double)get(c->f64, beta, ch)) + 1;
        near(c, "bn2d_forward xhat", &s, q, get(c->f64, xhat, q), xh, (fabsl(xh) + 1) * (1 + tol / unit(c)), 2);
        near(c, "bn2d_forward y", &s, q, get(c->f64, y, q), g * xh + get(c->f64, beta, ch),
             mag * (1 + tol / unit(c)), 4);
      }
    }
  }
  /* the backward, after a training forward, against its formula */
  run_bn2d(c, n, C, S, 1, x, gamma, beta, rm, rv, st, xhat, y);
  ((Bn2dBwdFn *)find(c, "bn2d_backward"))(n, C, S, dy, xhat, gamma, st + 2 * C, sc, sc + C,
                                          dg, dbt, dx);
  for (int ch = 0; ch < C; ch++) {
    same(c, "bn2d_backward Σdy", &s, ch, sc[ch], bn2d_order(c, n, C, S, ch, 0, dy, 0, 0));
    same(c, "bn2d_backward Σdy·xhat", &s, ch, sc[C + ch],
         bn2d_order(c, n, C, S, ch, 2, dy, xhat, 0));
  }
  for (int ch = 0; ch < C; ch++) {
    long double sdy = 0, sdyx = 0, mdy = 0, mdyx = 0, tol = 4 * (N + 8) * 0x1p-53L;
    for (long e = 0; e < N; e++) {
      long q = (e / S * C + ch) * S + e % S;
      long double d = get(c->f64, dy, q), xh = get(c->f64, xhat, q);
      sdy += d, sdyx += d * xh, mdy += fabsl(d), mdyx += fabsl(d * xh);
    }
    near(c, "bn2d_backward dbeta", &s, ch, get(c->f64, dbt, ch), sdy, mdy * (1 + tol / unit(c)), 1);
    near(c, "bn2d_backward dgamma", &s, ch, get(c->f64, dg, ch), sdyx, mdyx * (1 + tol / unit(c)), 1);
    long double k = get(c->f64, gamma, ch) * st[2 * C + ch] / N;
    for (long e = 0; e < N; e++) {
      long q = (e / S * C + ch) * S + e % S;
      long double d = get(c->f64, dy, q), xh = get(c->f64, xhat, q);
      long double mag = fabsl(k) * (N * fabsl(d) + mdy + fabsl(xh) * mdyx);
      near(c, "bn2d_backward dx", &s, q, get(c->f64, dx, q), k * (N * d - sdy - xh * sdyx),
           mag * (1 + tol / unit(c)), 4);
    }
  }
  free(x), free(gamma), free(beta), free(rm), free(rv), free(xhat), free(y), free(dy);
  free(dx), free(dg), free(dbt);
}

typedef void BnFwdFn(int, int, int, double, double, const void *, const void *, const void *,
                     void *, void *, double *, double *, double *, void *, void *);
typedef void BnBwdFn(int, int, const void *, const void *, const void *, const double *,
                     double *, double *, void *, void *, void *);

/* Whether element ea of a and eb of b hold the same bits. */
static int same_at(const Copy *c, const void *a, long ea, const void *b, long eb) {
  size_t sz = c->f64 ? 8 : 4;
  return !memcmp((const char *)a + ea * sz, (const char *)b + eb * sz, sz);
}

/* With one position (S = 1), (n, C, S) is BatchNorm1d's (n, C), and
   bn2d sums each channel in one partial, in bn_forward's order: the same
   bits, forward and backward. */
static void check_bn2d_as_1d(const Copy *c, int n, int C, int S) {
  enum { X, DY, XHAT, Y, DX, RM, RV, DG, DB, NT };
  long len = (long)n * C * S;
  void *t[2][NT]; /* bn2d's, then bn_forward's */
  double st[2][6 * 64];
  for (int v = 0; v < 2; v++)
    for (int a = 0; a < NT; a++)
      t[v][a] = values(c->f64, a < RM ? len : C, 0);
  void *gamma = values(c->f64, C, 0), *beta = values(c->f64, C, 0);
  for (long e = 0; e < len; e++) { /* (r, c, s) to (r·S + s, c) */
    long r = e / (C * S), ch = e / S % C, p = e % S, f = (r * S + p) * C + ch;
    double xv = uniform() < 0.2 ? 0 : 2 * uniform() - 1, g = 2 * uniform() - 1;
    put(c->f64, t[0][X], e, xv), put(c->f64, t[1][X], f, xv);
    put(c->f64, t[0][DY], e, g), put(c->f64, t[1][DY], f, g);
  }
  for (int v = 0; v < 2; v++)
    for (int ch = 0; ch < C; ch++)
      put(c->f64, t[v][RM], ch, 0.5), put(c->f64, t[v][RV], ch, 2);
  ((Bn2dFwdFn *)find(c, "bn2d_forward"))(n, C, S, 1, 0.1, 1e-5, t[0][X], gamma, beta,
                                         t[0][RM], t[0][RV], st[0], st[0] + C, st[0] + 2 * C,
                                         t[0][XHAT], t[0][Y]);
  ((BnFwdFn *)find(c, "bn_forward"))(n * S, C, 1, 0.1, 1e-5, t[1][X], gamma, beta, t[1][RM],
                                     t[1][RV], st[1], st[1] + C, st[1] + 2 * C, t[1][XHAT],
                                     t[1][Y]);
  ((Bn2dBwdFn *)find(c, "bn2d_backward"))(n, C, S, t[0][DY], t[0][XHAT], gamma, st[0] + 2 * C,
                                          st[0] + 3 * C, st[0] + 4 * C, t[0][DG], t[0][DB],
                                          t[0][DX]);
  ((BnBwdFn *)find(c, "bn_backward"))(n * S, C, t[1][DY], t[1][XHAT], gamma, st[1] + 2 * C,
                                      st[1] + 3 * C, st[1] + 4 * C, t[1][DG], t[1][DB],
                                      t[1][DX]);
  for (long e = 0; e < len; e++) {
    long r = e / (C * S), ch = e / S % C, p = e % S, f = (r * S + p) * C + ch;
    for (int a = XHAT; a <= DX; a++)
      if (!same_at(c, t[0][a], e, t[1][a], f))
        fail_msg("%s bn2d, n %d C %d S %d: tensor %d element %ld differs from bn_forward's",
                 c->name, n, C, S, a, e);
  }
  for (int ch = 0; ch < C; ch++)
    for (int a = RM; a < NT; a++)
      if (!same_at(c, t[0][a], ch, t[1][a], ch))
        fail_msg("%s bn2d, n %d C %d S %d: tensor %d channel %d differs from bn_forward's",
                 c->name, n, C, S, a, ch);
  for (int v = 0; v < 2; v++)
    for (int a = 0; a < NT; a++)
      free(t[v][a]);
  free(gamma), free(beta);
}

/* BatchNorm2d, both checks, on odd shapes: one position (BatchNorm1d's
   own case), fewer positions than partial sums, a 28x28 plane, one
   sample. */
static void test_bn2d(void **state_) {
  (void)state_;
  static const int shapes[][3] = {{7, 3, 1}, {40, 2, 1}, {2, 5, 9}, {1, 1, 17}, {3, 16, 49}, {2, 3, 784}};
  for (int k = 0; k < NELEM(copies); k++)
    for (int q = 0; q < NELEM(shapes); q++) {
      check_bn2d(&copies[k], shapes[q][0], shapes[q][1], shapes[q][2]);
      if (shapes[q][2] == 1)
        check_bn2d_as_1d(&copies[k], shapes[q][0], shapes[q][1], shapes[q][2]);
    }
}

/* ---- finite differences ---- */

/* A layer whose gradients are checked: kind (conv, maxpool, avgpool,
   bn2d), shape, inputs and parameters, and g, the upstream gradient:
   the loss is L = Σ g·y. */
enum { FD_CONV, FD_MAXPOOL, FD_AVGPOOL, FD_BN2D };
typedef struct {
  const Copy *c;
  int kind;
  Shape s;
  double *x, *w, *b, *g; /* b: conv's bias, bn2d's beta; w: bn2d's gamma */
} Fd;

/* Runs f's layer forward (training) on its current values; returns L. */
static long double fd_loss(const Fd *f) {
  const Shape *s = &f->s;
  long len = f->kind == FD_BN2D ? in_len(s) : out_len(s);
  double *y = calloc(len, 8), *col = calloc(s->n * col_len(s) + 1, 8), st[3 * 64];
  double rm[64] = {0}, rv[64] = {0};
  int *arg = calloc(len, sizeof(int));
  if (f->kind == FD_CONV)
    ((ConvFwdFn *)find(f->c, "conv2d_forward"))(s->n, s->C, s->H, s->W, s->O, s->KH, s->KW,
                                                s->SH, s->SW, s->PH, s->PW, f->x, f->w, f->b,
                                                col, y);
  else if (f->kind == FD_MAXPOOL)
    ((MaxFwdFn *)find(f->c, "maxpool2d_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                                  s->SW, f->x, y, arg);
  else if (f->kind == FD_AVGPOOL)
    ((AvgFwdFn *)find(f->c, "avgpool2d_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                                  s->SW, f->x, y);
  else
    run_bn2d(f->c, s->n, s->C, s->H * s->W, 1, f->x, f->w, f->b, rm, rv, st, col, y);
  long double sum = 0;
  for (long e = 0; e < len; e++)
    sum += (long double)f->g[e] * y[e];
  free(y), free(col), free(arg);
  return sum;
}

/* Central differences of L at 7 elements of p (len) against grad. */
static void fd_check(const Fd *f, const char *what, double *p, long len, const double *grad) {
  const double h = 1e-6;
  for (int q = 0; q < 7; q++) {
    long e = (len - 1) * q / 6;
    double v = p[e];
    p[e] = v + h;
    long double up = fd_loss(f);
    p[e] = v - h;
    long double down = fd_loss(f);
    p[e] = v;
    double fd = (double)((up - down) / (2 * h));
    if (!(fabs(fd - grad[e]) <= 1e-6 * (1 + fabs(fd))))
      fail_msg("%s %s: element %ld of the gradient is %.12g, finite differences %.12g",
               f->c->name, what, e, grad[e], fd);
  }
}

/* The gradients of one layer by its backward kernel, against finite
   differences of its forward one; its inputs have no zeros, so no ties
   for a maximum (where max pooling has no derivative). */
static void check_fd(const Copy *c, int kind, const Shape *s) {
  long nw = kind == FD_BN2D ? s->C : w_len(s), ny = kind == FD_BN2D ? in_len(s) : out_len(s);
  Fd f = {c, kind, *s, values(1, in_len(s), 0), values(1, nw, 0), values(1, s->O, 0),
          values(1, ny, 0)};
  double *dx = calloc(in_len(s), 8), *dw = calloc(nw, 8), *db = calloc(s->O, 8);
  double *y = calloc(ny, 8), *col = calloc(s->n * col_len(s) + 1, 8), st[6 * 64];
  double rm[64] = {0}, rv[64] = {0}, *dcol = calloc(col_len(s), 8);
  int *arg = calloc(ny, sizeof(int));
  if (kind == FD_CONV) {
    ((ConvFwdFn *)find(c, "conv2d_forward"))(s->n, s->C, s->H, s->W, s->O, s->KH, s->KW, s->SH,
                                             s->SW, s->PH, s->PW, f.x, f.w, f.b, col, y);
    ((ConvBwdFn *)find(c, "conv2d_backward"))(s->n, s->C, s->H, s->W, s->O, s->KH, s->KW,
                                              s->SH, s->SW, s->PH, s->PW, f.g, f.x, f.w, col,
                                              dcol, dw, db, dx);
  } else if (kind == FD_MAXPOOL) {
    ((MaxFwdFn *)find(c, "maxpool2d_forward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                               s->SW, f.x, y, arg);
    ((MaxBwdFn *)find(c, "maxpool2d_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                                s->SW, f.g, arg, dx);
  } else if (kind == FD_AVGPOOL)
    ((AvgBwdFn *)find(c, "avgpool2d_backward"))(s->n, s->C, s->H, s->W, s->KH, s->KW, s->SH,
                                                s->SW, f.g, dx);
  else {
    run_bn2d(c, s->n, s->C, s->H * s->W, 1, f.x, f.w, f.b, rm, rv, st, col, y);
    ((Bn2dBwdFn *)find(c, "bn2d_backward"))(s->n, s->C, s->H * s->W, f.g, col, f.w,
                                            st + 2 * s->C, st + 3 * s->C, st + 4 * s->C,
                                            dw, db, dx);
  }
  fd_check(&f, "dx", f.x, in_len(s), dx);
  if (kind == FD_CONV || kind == FD_BN2D) {
    fd_check(&f, "dw", f.w, nw, dw);
    fd_check(&f, "db", f.b, s->O, db);
  }
  free(f.x), free(f.w), free(f.b), free(f.g), free(dx), free(dw), free(db), free(y);
  free(col), free(arg), free(dcol);
}

/* Every backward kernel against finite differences, in the double copies. */
static void test_conv_fd(void **state_) {
  (void)state_;
  static const Shape convs[] = {{2, 3, 7, 9, 4, 3, 5, 2, 1, 1, 2}, {3, 2, 8, 8, 5, 2, 2, 2, 2, 2, 0},
                                {1, 1, 6, 5, 3, 1, 1, 1, 1, 0, 1}};
  static const Shape pools[] = {{2, 3, 7, 9, 3, 3, 2, 2, 2, 0, 0}, {1, 2, 6, 6, 2, 2, 2, 1, 1, 0, 0},
                                {3, 4, 5, 7, 4, 1, 1, 1, 1, 0, 0}};
  for (int k = 0; k < NELEM(copies); k++) {
    if (!copies[k].f64)
      continue;
    for (int q = 0; q < 3; q++) {
      check_fd(&copies[k], FD_CONV, &convs[q]);
      check_fd(&copies[k], FD_MAXPOOL, &pools[q]);
      check_fd(&copies[k], FD_AVGPOOL, &pools[q]);
      check_fd(&copies[k], FD_BN2D, &pools[q]);
    }
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
    cmocka_unit_test(test_xent_confident),
    cmocka_unit_test(test_conv),
    cmocka_unit_test(test_conv_inf_pixel),
    cmocka_unit_test(test_conv_rows_inf),
    cmocka_unit_test(test_pool),
    cmocka_unit_test(test_maxpool_rules),
    cmocka_unit_test(test_bn2d),
    cmocka_unit_test(test_conv_fd),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
