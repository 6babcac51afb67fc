/*
 * test_init.c — the initialisation schemes, by statistics and bit for bit.
 *
 * Statistics: rt_init on a hand-built net whose first weight has 10^6
 * elements; for each scheme, generator ("mlpc", "torch") and precision,
 * the sample standard deviation is within 1% of the definition, the mean
 * is near 0, uniform draws stay inside their bounds, biases, γ and β have
 * their constants, and buffers start at 0 and 1.
 *
 * Bit for bit: tests/reference/torch_rng.safetensors holds PyTorch's own
 * draws (written by tests/reference/gen.py) for a fixed sequence of
 * uniform_ and normal_ calls on one generator; rt_trng_uniform and
 * rt_trng_normal must give the same bits.
 *
 * The tensor kit the runtime shares: rt_numel counts the elements of 1-D
 * and 2-D tensors, and rt_fnv gives the published FNV-1a values, the same
 * whether the bytes come at once or in pieces.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../mlpc.h"

enum { OUT = 500, IN = 2000, N = OUT * IN };

static const char *const rngs[] = {
#define NAME_(e, s) s,
  RT_RNGS(NAME_)
#undef NAME_
};

/* A net of one linear layer (OUT, IN), a norm's γ and β, and its buffers. */
typedef struct {
  RtTensor t[6];
  RtNet net;
} Net;

/* Builds the net in dtype dt with the given scheme and generator. */
static Net *make_net(int dt, int init, int rng) {
  Net *n = calloc(1, sizeof *n);
  int sz = dt == RT_F32 ? 4 : 8;
  n->t[0] = (RtTensor){"fc1.weight", RT_WEIGHT, dt, 2, {OUT, IN}, IN, OUT, calloc(N, sz), 0, init};
  n->t[1] = (RtTensor){"fc1.bias", RT_BIAS, dt, 1, {OUT, 0}, IN, OUT, calloc(OUT, sz), 0, init};
  n->t[2] = (RtTensor){"norm1.weight", RT_GAMMA, dt, 1, {OUT, 0}, 0, 0, calloc(OUT, sz), 0, init};
  n->t[3] = (RtTensor){"norm1.bias", RT_BETA, dt, 1, {OUT, 0}, 0, 0, calloc(OUT, sz), 0, init};
  n->t[4] = (RtTensor){"norm1.running_var", RT_BUF_ONE, dt, 1, {OUT, 0}, 0, 0, calloc(OUT, sz), 0, init};
  n->t[5] = (RtTensor){"fc1.weight.grad", RT_GRAD, dt, 2, {OUT, IN}, 0, 0, malloc((size_t)N * sz), 0, init};
  memset(n->t[5].data, 0x7f, (size_t)N * sz);
  n->net = (RtNet){.name = "stat", .input = IN, .output = OUT, .batch = 1, .dtype = dt,
                   .init = init, .rng = rng, .ntensors = 6, .tensors = n->t};
  return n;
}

static void free_net(Net *n) {
  for (int i = 0; i < 6; i++)
    free(n->t[i].data);
  free(n);
}

/* Element i of t as a double. */
static double at(const RtTensor *t, long i) {
  return t->dtype == RT_F32 ? ((float *)t->data)[i] : ((double *)t->data)[i];
}

/* Mean and standard deviation of t's n elements; max |x| in *absmax. */
static void stats(const RtTensor *t, long n, double *mean, double *std, double *absmax) {
  double s = 0, v = 0;
  *absmax = 0;
  for (long i = 0; i < n; i++) {
    double x = at(t, i);
    s += x;
    *absmax = fmax(*absmax, fabs(x));
  }
  *mean = s / n;
  for (long i = 0; i < n; i++)
    v += (at(t, i) - *mean) * (at(t, i) - *mean);
  *std = sqrt(v / (n - 1));
}

/* Checks that t's draws have standard deviation want (1%) and mean ~0;
   with bound > 0, that every draw lies in [-bound, bound]. */
static void check_draws(const char *what, const RtTensor *t, long n, double want,
                        double bound) {
  double mean, std, absmax;
  stats(t, n, &mean, &std, &absmax);
  printf("  %-34s std %.6f (want %.6f, %+.3f%%), mean %+.2e, max |x| %.4f\n", what, std,
         want, 100 * (std / want - 1), mean, absmax);
  assert_true(fabs(std / want - 1) < 0.01);
  assert_true(fabs(mean) < 6 * want / sqrt((double)n));
  if (bound > 0)
    assert_true(absmax <= bound);
}

/* Checks that every element of t equals v. */
static void check_const(const RtTensor *t, double v) {
  for (long i = 0; i < t->shape[0]; i++)
    assert_true(at(t, i) == v);
}

/* One scheme under one generator and one precision. */
static void check_scheme(int dt, int init, int rng) {
  Net *n = make_net(dt, init, rng);
  char what[64];
  snprintf(what, sizeof what, "%s %s %s", init_names[init], rngs[rng],
           dt == RT_F32 ? "f32" : "f64");
  rt_init(&n->net, 1234);
  const RtTensor *t = n->t;
  if (init == RT_INIT_NORMAL) {
    check_draws(what, &t[0], N, 1, 0);
    double mean, std, absmax;
    for (int k = 1; k < 4; k++) { /* 500 draws each: loose */
      stats(&t[k], OUT, &mean, &std, &absmax);
      assert_true(fabs(std - 1) < 0.2 && fabs(mean) < 0.3);
    }
  } else if (init == RT_INIT_TORCH_DEFAULT) {
    double b = 1 / sqrt((double)IN);
    /* the bound is rounded to the tensor's type (PyTorch computes it by
       another route, sqrt(3)·gain/sqrt(fan_in), and casts it) */
    b *= 1 + (dt == RT_F32 ? 0x1p-23 : 0x1p-51);
    check_draws(what, &t[0], N, b / sqrt(3.0), b);
    double mean, std, absmax;
    stats(&t[1], OUT, &mean, &std, &absmax);
    assert_true(absmax <= b && std > 0.8 * b / sqrt(3.0) && std < 1.2 * b / sqrt(3.0));
  } else {
    double fan = init == RT_INIT_KAIMING ? IN / 2.0 : (IN + OUT) / 2.0;
    check_draws(what, &t[0], N, 1 / sqrt(fan), 0);
    check_const(&t[1], 0);
  }
  if (init != RT_INIT_NORMAL) {
    check_const(&t[2], 1);
    check_const(&t[3], 0);
  }
  check_const(&t[4], 1);
  assert_true(at(&t[5], 0) == 0 && at(&t[5], N - 1) == 0);
  free_net(n);
}

/* Every scheme × generator × precision. */
static void test_statistics(void **state) {
  (void)state;
  for (int rng = 0; rng < RT_NRNGS; rng++)
    for (int dt = RT_F32; dt <= RT_F64; dt++)
      for (int init = 0; init < RT_INIT_NSCHEMES; init++)
        check_scheme(dt, init, rng);
}

/* The same seed gives the same weights; another seed other weights. */
static void test_seeded(void **state) {
  (void)state;
  for (int rng = 0; rng < RT_NRNGS; rng++) {
    Net *a = make_net(RT_F32, RT_INIT_KAIMING, rng), *b = make_net(RT_F32, RT_INIT_KAIMING, rng);
    rt_init(&a->net, 7);
    rt_init(&b->net, 7);
    assert_memory_equal(a->t[0].data, b->t[0].data, (size_t)N * 4);
    rt_init(&b->net, 8);
    assert_memory_not_equal(a->t[0].data, b->t[0].data, (size_t)N * 4);
    free_net(a);
    free_net(b);
  }
}

/* ---- PyTorch's draws, bit for bit ---- */

/* The calls gen.py makes after torch.manual_seed(2024), in this order,
   once with float32 tensors and then (after re-seeding) float64: name,
   0 for uniform_(-a, a) or 1 for normal_(0, a), elements. */
static const struct {
  const char *name;
  int normal;
  double a;
  int n;
} draws[] = {
  {"uniform.1", 0, 1.0, 1},      {"uniform.37", 0, 0.125, 37},
  {"normal.1", 1, 1.0, 1},       {"normal.10", 1, 2.0, 10},
  {"normal.3", 1, 0.5, 3},       {"normal.15", 1, 1.0, 15},
  {"normal.16", 1, 1.0, 16},     {"normal.17", 1, 0.3, 17},
  {"normal.37", 1, 0.05, 37},    {"normal.1000", 1, 1.0, 1000},
  {"uniform.100", 0, 0.0357, 100}, {"normal.5", 1, 1.0, 5},
};
enum { NDRAWS = sizeof draws / sizeof draws[0] };

/* A net whose tensors are the expected draws of both precisions. */
static RtNet *draw_net(RtTensor *t, char names[][32]) {
  static RtNet net;
  for (int p = 0; p < 2; p++)
    for (int i = 0; i < NDRAWS; i++) {
      RtTensor *x = &t[p * NDRAWS + i];
      snprintf(names[p * NDRAWS + i], 32, "%s.%s", p ? "f64" : "f32", draws[i].name);
      *x = (RtTensor){names[p * NDRAWS + i], RT_WEIGHT, p ? RT_F64 : RT_F32, 1,
                      {draws[i].n, 0}, 0, 0, calloc(draws[i].n, 8), 0, 0};
    }
  net = (RtNet){.name = "torch_rng", .ntensors = 2 * NDRAWS, .tensors = t};
  return &net;
}

static void test_torch_bits(void **state) {
  (void)state;
  RtTensor t[2 * NDRAWS];
  char names[2 * NDRAWS][32], err[512];
  RtNet *net = draw_net(t, names);
  if (rt_load_weights(net, "tests/reference/torch_rng.safetensors", err, sizeof err))
    fail_msg("%s", err);
  for (int p = 0; p < 2; p++) {
    int dt = p ? RT_F64 : RT_F32;
    RtTorchRng r;
    rt_trng_seed(&r, 2024);
    for (int i = 0; i < NDRAWS; i++) {
      double got[1000];
      if (draws[i].normal)
        rt_trng_normal(&r, got, dt, draws[i].n, draws[i].a);
      else
        rt_trng_uniform(&r, got, dt, draws[i].n, -draws[i].a, draws[i].a);
      const RtTensor *x = &t[p * NDRAWS + i];
      long bad = 0;
      for (int k = 0; k < draws[i].n; k++)
        bad += memcmp((char *)got + k * (p ? 8 : 4), (char *)x->data + k * (p ? 8 : 4),
                      p ? 8 : 4) != 0;
      printf("  %-18s %4d draws, %ld differ from PyTorch's\n", x->name, draws[i].n, bad);
      assert_int_equal(bad, 0);
    }
  }
  for (int i = 0; i < 2 * NDRAWS; i++)
    free(t[i].data);
}

/* rt_numel of a vector, a matrix and a transposed matrix. */
static void test_numel(void **state) {
  (void)state;
  RtTensor v = {.ndim = 1, .shape = {7, 0}}, m = {.ndim = 2, .shape = {3, 5}};
  RtTensor w = {.ndim = 2, .shape = {OUT, IN}, .transposed = 1};
  assert_int_equal(rt_numel(&v), 7);
  assert_int_equal(rt_numel(&m), 15);
  assert_int_equal(rt_numel(&w), N);
}

/* rt_fnv against the FNV-1a 64-bit test vectors, whole and in pieces. */
static void test_fnv(void **state) {
  (void)state;
  assert_true(rt_fnv(RT_FNV_OFFSET, "", 0) == 0xcbf29ce484222325ULL);
  assert_true(rt_fnv(RT_FNV_OFFSET, "a", 1) == 0xaf63dc4c8601ec8cULL);
  assert_true(rt_fnv(RT_FNV_OFFSET, "foobar", 6) == 0x85944171f73967e8ULL);
  assert_true(rt_fnv(rt_fnv(RT_FNV_OFFSET, "foo", 3), "bar", 3) == 0x85944171f73967e8ULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_statistics),
    cmocka_unit_test(test_seeded),
    cmocka_unit_test(test_torch_bits),
    cmocka_unit_test(test_numel),
    cmocka_unit_test(test_fnv),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
