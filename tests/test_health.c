/*
 * test_health.c — the health figures (docs/health.md):
 *
 *   by_hand         tiny models (2-3-2, float64) whose weights are set so
 *                   that known units saturate or die, for each activation:
 *                   every layer figure against its value worked out by hand
 *   changes_nothing RtNet.health leaves every parameter, buffer and
 *                   optimizer state bitwise as it was (and a health that
 *                   forgets to put BatchNorm's buffers back is caught)
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
#include "util.h"

static char tmp[64];                 /* the temporary directory            */
static RtSet mnist;                  /* data/mnist's training set          */

typedef struct {
  char s[160];
} Path;

/* A path in the temporary directory. */
static Path tmp_path(const char *name) {
  Path p;
  snprintf(p.s, sizeof p.s, "%s/%s", tmp, name);
  return p;
}

/* ---- models and tensors ---- */

/* A float64 model in-H-out (H = 0: no hidden layer), no norm, SGD. */
static void tiny_model(Model *m, int act, int in, int h, int out, int batch) {
  fe_defaults(m);
  snprintf(m->name, sizeof m->name, "health_%s", act_names[act]);
  m->input = in;
  m->output = out;
  m->nhidden = h > 0;
  m->hidden[0] = h;
  m->act.type = act;
  m->act.param = act == ACT_LEAKY ? 0.01 : act == ACT_ELU ? 1.0 : 0;
  m->batch_size = batch;
  m->dtype = DT_F64;
  m->opt.type = OPT_SGD;
  m->opt.lr = 0.1;
}

/* Compiles a model (gcc objects go to tmp/cache); `from` in the source is
   replaced by `to` when from is not NULL (a deliberate bug). */
static Jit *compile(const Model *m, int backend, const char *from, const char *to) {
  static Ir ir;
  Buf src = {0};
  char err[2048];
  ir_lower(m, &ir);
  emit_unit(&ir, backend, &src);
  if (from) {
    char *at = strstr(src.buf, from);
    if (!at)
      fail_msg("'%s' is not in the generated code: update the mutation", from);
    memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    memcpy(at, to, strlen(to)); /* to is not longer than from */
  }
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src.buf, m->dtype, err, sizeof err)
                                  : jit_gcc(src.buf, tmp_path("cache").s, err, sizeof err);
  free(src.buf);
  if (!j)
    fail_msg("%s: %s", m->name, err);
  return j;
}

/* The tensor named name, or fails. */
static const RtTensor *tensor(const RtNet *net, const char *name) {
  for (int k = 0; k < net->ntensors; k++)
    if (!strcmp(net->tensors[k].name, name))
      return &net->tensors[k];
  fail_msg("no tensor %s", name);
  return NULL;
}

/* Sets the values of a float64 tensor. */
static void set(const RtNet *net, const char *name, const double *v, int n) {
  const RtTensor *t = tensor(net, name);
  assert_int_equal(t->dtype, RT_F64);
  memcpy(t->data, v, sizeof(double) * n);
}

static long numel(const RtTensor *t) {
  return t->ndim == 1 ? t->shape[0] : (long)t->shape[0] * t->shape[1];
}

static size_t elsize(const RtTensor *t) {
  return t->dtype == RT_F32 ? 4 : 8;
}

/* Fails unless |a - b| <= 1e-12 · max(1, |b|). */
static void close_to(const char *what, double a, double b) {
  if (!(fabs(a - b) <= 1e-12 * fmax(1, fabs(b))))
    fail_msg("%s: %.17g, expected %.17g", what, a, b);
}

/* The population mean and standard deviation of n values. */
static void moments(const double *v, int n, double *mean, double *std) {
  double s = 0, ss = 0;
  for (int i = 0; i < n; i++)
    s += v[i];
  *mean = s / n;
  for (int i = 0; i < n; i++)
    ss += (v[i] - *mean) * (v[i] - *mean);
  *std = sqrt(ss / n);
}

/* ---- by hand ---- */

/* A case: 2-3-2 with hidden weights w (3, 2), bias 0, on the probe
   x = {(1, 0), (0, 1)} (pixels 255 and 0), and what to expect. */
typedef struct {
  int act;
  double w[6];
  double saturated, dead; /* NAN: not applicable */
} HandCase;

/* The activation in double, as docs/semantics.md defines it. */
static double act(int a, double x) {
  switch (a) {
  case ACT_TANH: return tanh(x);
  case ACT_RELU: return x > 0 ? x : 0;
  case ACT_LEAKY: return x > 0 ? x : 0.01 * x;
  case ACT_SIGMOID: return 1 / (1 + exp(-x));
  case ACT_ELU: return x > 0 ? x : exp(x) - 1;
  case ACT_SILU: return x / (1 + exp(-x));
  default: return x * 0.5 * (1 + erf(x * M_SQRT1_2));
  }
}

/* Runs net->health on a hand case and checks every figure. */
static void check_hand_case(const HandCase *c) {
  static Model m;
  tiny_model(&m, c->act, 2, 3, 2, 2);
  Jit *j = compile(&m, BACKEND_TCC, NULL, NULL);
  const RtNet *net = jit_net(j);
  rt_init(net, 1);
  set(net, "fc1.weight", c->w, 6);
  set(net, "fc1.bias", (double[3]){0, 0, 0}, 3);
  unsigned char x[4] = {255, 0, 0, 255}, y[2] = {0, 1};
  double out[RT_NLAYER_FIGURES], pre[6], post[6], want[4];
  for (int r = 0; r < 2; r++)
    for (int u = 0; u < 3; u++) {
      pre[r * 3 + u] = c->w[u * 2 + r]; /* sample r is the unit vector e_r */
      post[r * 3 + u] = act(c->act, pre[r * 3 + u]);
    }
  moments(pre, 6, &want[RT_PRE_MEAN], &want[RT_PRE_STD]);
  moments(post, 6, &want[RT_POST_MEAN], &want[RT_POST_STD]);
  net->health(2, x, y, out);
  static const char *const fig[] = {"pre_mean", "pre_std", "post_mean", "post_std"};
  for (int f = 0; f < 4; f++)
    close_to(fig[f], out[f], want[f]);
  int na_sat = isnan(c->saturated), na_dead = isnan(c->dead);
  assert_int_equal(net->health_na, na_sat << RT_SATURATED | na_dead << RT_DEAD);
  assert_int_equal(net->nhidden, 1);
  if (na_sat)
    assert_true(isnan(out[RT_SATURATED]));
  else
    close_to("saturated", out[RT_SATURATED], c->saturated);
  if (na_dead)
    assert_true(isnan(out[RT_DEAD]));
  else
    close_to("dead", out[RT_DEAD], c->dead);
  print_message("  %-10s saturated %.4f  dead %.4f\n", act_names[c->act], out[RT_SATURATED],
                out[RT_DEAD]);
  jit_free(j);
}

/* Each activation's flat regions, on units set to be in them. */
static void test_by_hand(void **state) {
  (void)state;
  /* Rows are units, columns the two samples' inputs. tanh: unit 0 is at
     10 on both samples (saturated: dead), unit 1 at 0, unit 2 at 10 on
     one: 3 of 6 values saturated, 1 of 3 units dead. */
  static const HandCase cases[] = {
    {ACT_TANH, {10, 10, 0, 0, 10, 0}, 0.5, 1.0 / 3},
    {ACT_TANH, {2, -3, 0.5, 0.1, -1, 1}, 1.0 / 6, 0}, /* tanh(-3) = -0.995 */
    /* sigmoid(-10) < 0.03, sigmoid(10) > 0.97, sigmoid(0) = 0.5 */
    {ACT_SIGMOID, {-10, -10, 0, 0, 10, 0}, 0.5, 1.0 / 3},
    /* relu: unit 0 negative on both samples, unit 2 exactly 0: both dead */
    {ACT_RELU, {-1, -1, 1, -1, 0, 0}, NAN, 2.0 / 3},
    {ACT_RELU, {1, 1, 1, -1, -1, 2}, NAN, 0},
    /* leaky_relu and elu: dead when x <= 0 on every sample */
    {ACT_LEAKY, {-1, -1, 1, -1, 0, 0}, NAN, 2.0 / 3},
    {ACT_ELU, {-1, -2, 1, -1, 3, 0}, NAN, 1.0 / 3},
    /* silu and gelu define neither */
    {ACT_SILU, {-1, -1, 1, -1, 0, 0}, NAN, NAN},
    {ACT_GELU, {-5, -5, 1, -1, 0, 0}, NAN, NAN},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_hand_case(&cases[i]);
}

/* ---- nothing changes ---- */

/* A copy of every tensor's bytes but the gradients'. */
typedef struct {
  int n;
  void *data[256];
} Saved;

static void save(const RtNet *net, Saved *s) {
  s->n = net->ntensors;
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    size_t len = numel(t) * elsize(t);
    s->data[k] = malloc(len);
    memcpy(s->data[k], t->data, len);
  }
}

/* The name of the first tensor (not a gradient) that differs from s, or
   NULL; frees s. */
static const char *changed(const RtNet *net, Saved *s) {
  const char *name = NULL;
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    if (!name && t->kind != RT_GRAD && memcmp(s->data[k], t->data, numel(t) * elsize(t)))
      name = t->name;
    free(s->data[k]);
  }
  return name;
}

/* A few steps of model m on mnist, then a probe; the tensor the probe
   changed, or NULL. */
static const char *probe_changes(const Model *m, const char *from, const char *to) {
  Jit *j = compile(m, BACKEND_TCC, from, to);
  const RtNet *net = jit_net(j);
  rt_init(net, m->seed);
  for (int s = 0; s < 3; s++)
    net->train_step(net->batch, mnist.images + (size_t)s * net->batch * net->input,
                    mnist.labels + s * net->batch);
  Saved saved;
  save(net, &saved);
  double out[MAX_HIDDEN * RT_NLAYER_FIGURES];
  net->health(net->batch, mnist.images + 640 * 784, mnist.labels + 640, out);
  const char *name = changed(net, &saved);
  jit_free(j);
  return name;
}

/* Every norm × activation, and the models in models/ and tests/models/. */
static void test_changes_nothing(void **state) {
  (void)state;
  static Model m;
  char err[2048], *files[UTIL_MAX_FILES];
  int n = util_models(files);
  for (int i = 0; i < n; i++) {
    if (fe_load(files[i], &m, err, sizeof err))
      fail_msg("%s", err);
    const char *name = probe_changes(&m, NULL, NULL);
    if (name)
      fail_msg("%s: the probe changed %s", files[i], name);
    free(files[i]);
  }
  for (int norm = 0; norm < NNORMS; norm++)
    for (int a = 0; a < NACTS; a++) {
      tiny_model(&m, a, 784, 16, 10, 8);
      m.nhidden = 2, m.hidden[1] = 12;
      m.norm.type = norm;
      m.opt.momentum = 0.9;
      const char *name = probe_changes(&m, NULL, NULL);
      if (name)
        fail_msg("%s, %s: the probe changed %s", norm_names[norm], act_names[a], name);
    }
  /* the check can fail: a health that does not put the buffers back */
  fe_load("tests/models/f64_bn_cumulative_nesterov.json", &m, err, sizeof err);
  const char *name = probe_changes(&m, "  health_restore_buffers();\n", "\n");
  assert_non_null(name);
  print_message("  without health_restore_buffers, the probe changes %s\n", name);
}

/* ---- main ---- */

static int setup(void **state) {
  (void)state;
  char err[1024];
  if (util_mkdtemp("health", tmp, sizeof tmp))
    return -1;
  if (rt_load_set("data/mnist", "train", 10, &mnist, err, sizeof err)) {
    fprintf(stderr, "%s (run scripts/data.sh)\n", err);
    return -1;
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  rt_free_set(&mnist);
  util_rmtree(tmp);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_by_hand),
    cmocka_unit_test(test_changes_nothing),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
