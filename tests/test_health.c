/*
 * test_health.c — the health figures (docs/health.md):
 *
 *   by_hand         tiny models (2-3-2, float64) whose weights are set so
 *                   that known units saturate or die, for each activation:
 *                   every layer figure against its value worked out by hand
 *   first_layer     an activation as a layer list's first layer: the figures
 *                   of the input and of its activation
 *   tensors_by_hand a 2-2 model: norms, gradient norms and the update ratio
 *                   of one SGD step, by hand; n/a before any step
 *   changes_nothing RtNet.health leaves every parameter, buffer and
 *                   optimizer state bitwise as it was (and a health that
 *                   forgets to put BatchNorm's buffers back is caught)
 *   same_training   mlpc --run with and without --health: the same epoch
 *                   lines and the same saved weights, byte for byte; the
 *                   standalone trainer's --health prints what mlpc's does
 *   output          the JSON lines parse, n/a is null, the table says n/a
 *   callbacks       RtOptions.on_health: every probe, in order
 *
 * tcc and gcc give bitwise the same figures for every model: that is
 * test_backends.c's bitwise test, on the objects it compiles anyway.
 *
 * Command-line checks run build/mlpc (MLPC_BIN, from CMake); gcc's
 * objects go to out/cache, as in test_backends.c.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <jansson.h>
#include "../mlpc.h"
#include "util.h"

static char tmp[64];                 /* the temporary directory            */
static RtSet mnist;                  /* data/mnist's training set          */

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

/* Compiles a model (gcc objects go to out/cache); `from` in the source is
   replaced by `to` when from is not NULL (a deliberate bug). */
static Jit *compile(const Model *m, int backend, const char *from, const char *to) {
  static Ir ir;
  Buf src = {0};
  ir_lower(m, &ir);
  emit_unit(&ir, backend, &src);
  if (from) {
    char *at = strstr(src.buf, from);
    if (!at)
      fail_msg("'%s' is not in the generated code: update the mutation", from);
    memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
    memcpy(at, to, strlen(to)); /* to is not longer than from */
  }
  Jit *j = util_jit(src.buf, backend, m->name);
  free(src.buf);
  return j;
}

/* Sets the values of a float64 tensor. */
static void set(const RtNet *net, const char *name, const double *v, int n) {
  const RtTensor *t = util_tensor(net, name);
  assert_int_equal(t->dtype, RT_F64);
  memcpy(t->data, v, sizeof(double) * n);
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
  assert_int_equal(net->health_na[0], na_sat << RT_SATURATED | na_dead << RT_DEAD);
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

/* An activation as a layer list's first layer: its figures are those of
   the input itself and of the activation of it. The probe is x = {(1, 0),
   (128/255, 0)} (pixels 255, 0 and 128, 0): unit 1 is 0 on both samples,
   so relu's is dead. */
static void test_first_layer(void **state) {
  (void)state;
  static const int acts[] = {ACT_TANH, ACT_RELU};
  unsigned char x[4] = {255, 0, 128, 0}, y[2] = {0, 1};
  double in[4] = {1, 0, 128.0 / 255, 0};
  for (int a = 0; a < 2; a++) {
    const char *path = util_path(tmp, "first.json");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"name\": \"first\", \"input\": 2, \"output\": 2, \"dtype\": \"float64\", "
            "\"batch_size\": 2, \"layers\": [\"%s\", {\"type\": \"linear\", \"out\": 2}]}\n",
            act_names[acts[a]]);
    fclose(f);
    static Model m;
    util_load(path, &m);
    Jit *j = compile(&m, BACKEND_TCC, NULL, NULL);
    const RtNet *net = jit_net(j);
    rt_init(net, 1);
    double out[RT_NLAYER_FIGURES], post[4], want[4];
    for (int i = 0; i < 4; i++)
      post[i] = act(acts[a], in[i]);
    moments(in, 4, &want[RT_PRE_MEAN], &want[RT_PRE_STD]);
    moments(post, 4, &want[RT_POST_MEAN], &want[RT_POST_STD]);
    assert_int_equal(net->nhidden, 1);
    net->health(2, x, y, out);
    static const char *const fig[] = {"pre_mean", "pre_std", "post_mean", "post_std"};
    for (int k = 0; k < 4; k++)
      close_to(fig[k], out[k], want[k]);
    if (acts[a] == ACT_TANH)
      close_to("saturated", out[RT_SATURATED], 0), close_to("dead", out[RT_DEAD], 0);
    else
      close_to("dead", out[RT_DEAD], 0.5);
    print_message("  %s first: pre mean %.4f, post mean %.4f, dead %.2f\n", act_names[acts[a]],
                  out[RT_PRE_MEAN], out[RT_POST_MEAN], out[RT_DEAD]);
    jit_free(j);
  }
}

/* A relu between a BatchNorm2d and a max pool, whose kernels keep the
   BatchNorm2d's output a plane at a time: its pre figures are those of
   γ·x̂ + β, whatever the convolution gives. Each channel's x̂ has mean 0
   and variance v/(v + eps) ≈ 1 over the batch's positions, so with γ
   (1, 2, 3) and β (0.5, −0.5, 1) the mean is that of β, 1/3, and the
   variance that of γ²·x̂ averaged, 14/3, plus that of β across the
   channels, 7/18. With momentum 0.1 and with a cumulative average (null),
   whose factor is no constant of the code. */
static void test_bn2d_pooled(void **state) {
  (void)state;
  for (int run = 0; run < 4; run++) { /* tcc, gcc; momentum 0.1, then null (cumulative) */
    int backend = run % 2;
    const char *path = util_path(tmp, "pooled.json");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"name\": \"pooled\", \"input\": [1, 6, 6], \"dtype\": \"float64\", "
            "\"batch_size\": 4, \"layers\": [{\"type\": \"conv2d\", \"out_channels\": 3, "
            "\"kernel_size\": 3, \"padding\": 1}, {\"type\": \"batchnorm2d\"%s}, \"relu\", "
            "{\"type\": \"maxpool2d\", \"kernel_size\": 2}, \"flatten\", "
            "{\"type\": \"linear\", \"out\": 2}]}\n", run < 2 ? "" : ", \"momentum\": null");
    fclose(f);
    static Model m;
    util_load(path, &m);
    Jit *j = compile(&m, backend ? BACKEND_GCC : BACKEND_TCC, NULL, NULL);
    const RtNet *net = jit_net(j);
    rt_init(net, 1);
    set(net, "1.weight", (double[3]){1, 2, 3}, 3);
    set(net, "1.bias", (double[3]){0.5, -0.5, 1}, 3);
    unsigned char x[4 * 36], y[4] = {0, 1, 1, 0};
    for (int i = 0; i < 4 * 36; i++)
      x[i] = (unsigned char)(i * 97 % 251);
    double out[RT_NLAYER_FIGURES];
    assert_int_equal(net->nhidden, 1);
    net->health(4, x, y, out);
    close_to("pre_mean", out[RT_PRE_MEAN], 1.0 / 3);
    double var = out[RT_PRE_STD] * out[RT_PRE_STD], want = 14.0 / 3 + 7.0 / 18;
    if (!(var <= want + 1e-9 && var > want - 0.01))
      fail_msg("pre_std² %.17g, expected just under %.17g", var, want);
    assert_true(out[RT_POST_MEAN] > 0 && out[RT_POST_STD] > 0);
    print_message("  batchnorm2d (momentum %s), relu, maxpool2d: pre mean %.4f, pre std %.4f\n",
                  run < 2 ? "0.1" : "null", out[RT_PRE_MEAN], out[RT_PRE_STD]);
    jit_free(j);
  }
}

/* The row of (layer, figure), or fails. */
static const RtFigure *row(const RtHealth *h, const char *layer, const char *figure) {
  for (int i = 0; i < h->nrows; i++)
    if (!strcmp(h->rows[i].layer, layer) && !strcmp(h->rows[i].figure, figure))
      return &h->rows[i];
  fail_msg("no row (%s, %s)", layer, figure);
  return NULL;
}

/* 2-2, every weight and bias 1, one sample (1, 0) of class 0: the logits
   are equal, so dz = (softmax - onehot) = (-1/2, 1/2), dW = dz·xᵀ has
   norm √½, and so has db. SGD with lr 0.1 moves W by 0.1·dW and b by
   0.1·db: ratios 0.1·√½ / 2 (‖W‖ = 2) and 0.1·√½ / √2 = 0.05. */
static void test_tensors_by_hand(void **state) {
  (void)state;
  static Model m;
  tiny_model(&m, ACT_TANH, 2, 0, 2, 1);
  Jit *j = compile(&m, BACKEND_TCC, NULL, NULL);
  const RtNet *net = jit_net(j);
  rt_init(net, 1);
  set(net, "fc1.weight", (double[4]){1, 1, 1, 1}, 4);
  set(net, "fc1.bias", (double[2]){1, 1}, 2);
  unsigned char x[2] = {255, 0}, y[1] = {0};
  RtHealth h;
  assert_int_equal(rt_health_alloc(&h, net), 0);
  assert_int_equal(h.nrows, 2 * RT_NTENSOR_FIGURES); /* no hidden layer */
  rt_health_probe(&h, net, 1, x, y);
  close_to("norm W", row(&h, "fc1.weight", "norm")->value, 2);
  close_to("norm b", row(&h, "fc1.bias", "norm")->value, sqrt(2));
  close_to("grad_norm W", row(&h, "fc1.weight", "grad_norm")->value, sqrt(0.5));
  close_to("grad_norm b", row(&h, "fc1.bias", "grad_norm")->value, sqrt(0.5));
  assert_true(row(&h, "fc1.weight", "update_ratio")->na); /* no step yet */
  rt_health_before_step(&h, net);
  net->train_step(1, x, y);
  rt_health_after_step(&h, net);
  rt_health_probe(&h, net, 1, x, y);
  assert_false(row(&h, "fc1.weight", "update_ratio")->na);
  close_to("update_ratio W", row(&h, "fc1.weight", "update_ratio")->value,
           0.1 * sqrt(0.5) / 2);
  close_to("update_ratio b", row(&h, "fc1.bias", "update_ratio")->value, 0.05);
  rt_health_probe(&h, net, 1, x, y);
  assert_true(row(&h, "fc1.bias", "update_ratio")->na); /* each step is reported once */
  /* a tensor that is 0 before the step has no ratio */
  set(net, "fc1.bias", (double[2]){0, 0}, 2);
  rt_health_before_step(&h, net);
  net->train_step(1, x, y);
  rt_health_after_step(&h, net);
  rt_health_probe(&h, net, 1, x, y);
  assert_true(row(&h, "fc1.bias", "update_ratio")->na);
  assert_false(row(&h, "fc1.weight", "update_ratio")->na);
  rt_health_free(&h);
  jit_free(j);
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
    size_t len = rt_numel(t) * elsize(t);
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
    if (!name && t->kind != RT_GRAD && memcmp(s->data[k], t->data, rt_numel(t) * elsize(t)))
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
  static char name[64]; /* the tensor names live in the compiled code */
  const char *t = changed(net, &saved);
  snprintf(name, sizeof name, "%s", t ? t : "");
  jit_free(j);
  return t ? name : NULL;
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

/* ---- the command line ---- */

/* Runs argv; fails, showing its stderr, unless it exits 0. */
static void run_ok(const char *const *argv, const char *out) {
  const char *err = util_path(tmp, "stderr");
  int status = util_run(argv, out, err);
  if (status) {
    size_t len;
    char *msg = util_slurp(err, &len);
    fail_msg("%s %s ... exited %d\n%s", argv[0], argv[1], status, msg ? msg : "");
  }
}

/* Removes each ', "KEY": VALUE' from JSON text in place, where VALUE is
   a number or an object (balanced braces). */
static void drop_key(char *text, const char *key) {
  char pat[64], *s;
  snprintf(pat, sizeof pat, ", \"%s\": ", key);
  while ((s = strstr(text, pat))) {
    char *e = s + strlen(pat);
    if (*e == '{')
      for (int depth = 0; *e; e++) {
        depth += (*e == '{') - (*e == '}');
        if (!depth) {
          e++;
          break;
        }
      }
    else
      e += strcspn(e, ",}");
    memmove(s, e, strlen(e) + 1);
  }
}

/* Removes the lines that start with prefix. */
static void drop_lines(char *text, const char *prefix) {
  char *s = text;
  while (*s) {
    char *nl = strchr(s, '\n');
    char *next = nl ? nl + 1 : s + strlen(s);
    if (!strncmp(s, prefix, strlen(prefix)))
      memmove(s, next, strlen(next) + 1);
    else
      s = next;
  }
}

/* The stdout of argv. */
static char *output(const char *const *argv) {
  const char *out = util_path(tmp, "stdout");
  run_ok(argv, out);
  size_t len;
  char *text = util_slurp(out, &len);
  assert_non_null(text);
  return text;
}

/* Fails showing both texts if they differ. */
static void same_text(const char *what, const char *a, const char *b) {
  if (strcmp(a, b))
    fail_msg("%s differ:\n--- first\n%s--- second\n%s", what, a, b);
}

/* Fails unless two files hold the same bytes. */
static void same_file(const char *a, const char *b) {
  size_t la, lb;
  char *fa = util_slurp(a, &la), *fb = util_slurp(b, &lb);
  assert_true(fa && fb);
  if (la != lb || memcmp(fa, fb, la))
    fail_msg("%s and %s differ", a, b);
  free(fa), free(fb);
}

/* A run of 3 epochs of 25 batches with --json, saving the weights to w,
   with --health if health, on a backend; its stdout. */
static char *json_run(const char *model, int health, const char *backend, const char *w) {
  const char *argv[] = {MLPC_BIN, model, "--run", "--backend", backend, "--max-batches", "25",
                        "--epochs", "3", "--json", "--save-weights", w,
                        health ? "--health" : NULL, NULL};
  return output(argv);
}

/* With and without --health: the same run, bit for bit. Then the same
   figures from tcc, gcc and the standalone trainer. */
static void test_same_training(void **state) {
  (void)state;
  static const char *const chosen[] = {
    "models/seed_base.json", "tests/models/f64_bn_cumulative_nesterov.json",
    "tests/models/ln_elu_rmsprop_centered.json", "tests/models/bn_leaky_adamw.json",
  };
  char w0[256], w1[256], c[256], exe[256]; /* kept across the loop: util_path's ring is reused */
  snprintf(w0, sizeof w0, "%s", util_path(tmp, "plain.safetensors"));
  snprintf(w1, sizeof w1, "%s", util_path(tmp, "health.safetensors"));
  snprintf(c, sizeof c, "%s", util_path(tmp, "trainer.c"));
  snprintf(exe, sizeof exe, "%s", util_path(tmp, "trainer"));
  for (size_t i = 0; i < sizeof chosen / sizeof chosen[0]; i++) {
    char *plain = json_run(chosen[i], 0, "gcc", w0);
    char *health = json_run(chosen[i], 1, "gcc", w1);
    assert_non_null(strstr(health, "\"health\": {\"probe\": 32, "));
    same_file(w0, w1);
    char *tcc = json_run(chosen[i], 1, "tcc", w1);
    drop_key(tcc, "seconds");
    drop_key(tcc, "train_seconds");
    const char *emit[] = {MLPC_BIN, chosen[i], "--emit", c, NULL};
    const char *cc[] = {"cc", "-O2", c, "-o", exe, "-lm", "-lz", NULL};
    const char *tr[] = {exe, "--max-batches", "25", "--epochs", "3", "--json", "--health",
                        NULL};
    run_ok(emit, NULL);
    run_ok(cc, NULL);
    char *trainer = output(tr);
    drop_key(trainer, "seconds");
    drop_key(trainer, "train_seconds");
    drop_key(health, "seconds");
    drop_key(health, "train_seconds");
    same_text("tcc and gcc with --health", tcc, health);
    same_text("the trainer and mlpc with --health", trainer, health);
    drop_lines(health, "{\"epoch\": 0, ");
    drop_key(health, "health");
    drop_key(plain, "seconds");
    drop_key(plain, "train_seconds");
    same_text("runs with and without --health", plain, health);
    print_message("  %-45s with --health == without; tcc == gcc == trainer\n", chosen[i]);
    free(plain), free(health), free(tcc), free(trainer);
  }
}

/* The value of a figure in a parsed JSON line (NULL: absent). */
static json_t *figure(json_t *line, const char *layer, const char *fig) {
  return json_object_get(json_object_get(json_object_get(line, "health"), layer), fig);
}

/* The JSON lines parse; the initial line is epoch 0 with health only;
   n/a figures are null, and "n/a" in the table. */
static void test_output(void **state) {
  (void)state;
  const char *model = "models/bn_relu.json";
  const char *argv[] = {MLPC_BIN, model, "--run", "--max-batches", "10", "--epochs", "2",
                        "--json", "--health", NULL};
  char *text = output(argv), *line = text;
  int nlines = 0;
  for (char *nl; (nl = strchr(line, '\n')); line = nl + 1, nlines++) {
    *nl = 0;
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (!j)
      fail_msg("line %d is not JSON: %s\n%s", nlines + 1, e.text, line);
    if (json_object_get(j, "summary")) {
      json_decref(j);
      continue;
    }
    int epoch = (int)json_integer_value(json_object_get(j, "epoch"));
    assert_int_equal(epoch, nlines);
    assert_true(!epoch == !json_object_get(j, "train_loss"));
    json_t *h = json_object_get(j, "health");
    assert_int_equal(json_integer_value(json_object_get(h, "probe")), 32);
    assert_int_equal(json_object_size(json_object_get(h, "hidden1")), RT_NLAYER_FIGURES);
    assert_true(json_is_null(figure(j, "hidden1", "saturated"))); /* relu */
    assert_true(json_is_number(figure(j, "hidden1", "dead")));
    assert_true(json_is_number(figure(j, "norm1.weight", "grad_norm")));
    assert_true(epoch ? json_is_number(figure(j, "fc2.bias", "update_ratio"))
                      : json_is_null(figure(j, "fc2.bias", "update_ratio")));
    json_decref(j);
  }
  assert_int_equal(nlines, 4); /* epochs 0, 1, 2 and the summary */
  free(text);
  const char *plain[] = {MLPC_BIN, model, "--run", "--max-batches", "10", "--epochs", "1",
                         "--health", NULL};
  text = output(plain);
  assert_non_null(strstr(text, "    0  (the initial weights)\n"));
  assert_non_null(strstr(text, "saturated         dead\n"));
  assert_non_null(strstr(text, "\n       hidden1    "));
  assert_non_null(strstr(text, "         n/a"));
  assert_non_null(strstr(text, "\n       norm1.bias "));
  free(text);
  /* a study takes it, and changes nothing: its runs always record them */
  const char *study[] = {MLPC_BIN, "models/seed_study.json", "--dump-study", "--health", NULL};
  const char *err = util_path(tmp, "stderr");
  assert_int_equal(util_run(study, NULL, err), 0);
}

/* A probe of one sample under BatchNorm cannot run (BatchNorm cannot
   train on one sample): its layer figures and gradient norms are n/a
   (null), not numbers drawn from nothing; the weights' norms stay. */
static void test_one_sample_probe(void **state) {
  (void)state;
  const char *data = util_path(tmp, "one"), *model = util_path(tmp, "one.json");
  char text[512];
  assert_int_equal(mkdir(data, 0700), 0);
  assert_int_equal(util_idx_set(data, 1, 4, 4), 0);
  snprintf(text, sizeof text, "{\"input\": 16, \"hidden\": [4], \"norm\": \"batchnorm\", "
           "\"epochs\": 1, \"data\": \"%s\"}\n", data);
  assert_int_equal(util_write(model, text, strlen(text)), 0);
  const char *argv[] = {MLPC_BIN, model, "--run", "--json", "--health", "--backend", "tcc",
                        NULL};
  char *out = output(argv), *nl = strchr(out, '\n');
  assert_non_null(nl);
  *nl = 0; /* epoch 0's line */
  json_t *j = json_loads(out, 0, NULL);
  assert_non_null(j);
  static const char *const figs[] = {"pre_mean", "pre_std", "post_mean", "post_std", "dead"};
  for (size_t f = 0; f < sizeof figs / sizeof figs[0]; f++)
    assert_true(json_is_null(figure(j, "hidden1", figs[f])));
  assert_true(json_is_null(figure(j, "fc1.weight", "grad_norm")));
  assert_true(json_is_number(figure(j, "fc1.weight", "norm")));
  json_decref(j);
  free(out);
}

/* ---- the training loop's callbacks ---- */

typedef struct {
  char calls[64];          /* "h0 h1 e1 ..."                              */
  int update_na[4];        /* fc1.weight's update_ratio n/a, per epoch    */
} Calls;

static void on_health(void *ctx, int epoch, const RtHealth *h) {
  Calls *c = ctx;
  snprintf(c->calls + strlen(c->calls), sizeof c->calls - strlen(c->calls), "h%d ", epoch);
  c->update_na[epoch] = row(h, "fc1.weight", "update_ratio")->na;
  assert_int_equal(h->probe, 32);
}

static void on_epoch(void *ctx, const RtEpoch *e) {
  Calls *c = ctx;
  snprintf(c->calls + strlen(c->calls), sizeof c->calls - strlen(c->calls), "e%d ", e->epoch);
}

/* A study's way in: RtOptions.on_health gets each probe's rows, epoch 0
   first, each before on_epoch's call for its epoch. */
static void test_callbacks(void **state) {
  (void)state;
  static Model m;
  char err[2048], dir[4096];
  if (fe_load("models/bn_relu.json", &m, err, sizeof err))
    fail_msg("%s", err);
  Jit *j = compile(&m, BACKEND_TCC, NULL, NULL);
  const RtNet *net = jit_net(j);
  rt_init(net, m.seed);
  Calls c = {0};
  RtOptions o = {.epochs = 2, .seed = 1, .max_batches = 5, .shuffle = 1,
                 .data = rt_data_dir("mnist", dir, sizeof dir), .on_epoch = on_epoch,
                 .ctx = &c, .health = 1, .on_health = on_health};
  assert_int_equal(rt_train(net, &o), 0);
  assert_string_equal(c.calls, "h0 h1 e1 h2 e2 ");
  assert_true(c.update_na[0]);
  assert_false(c.update_na[1] || c.update_na[2]);
  jit_free(j);
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

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_by_hand),
    cmocka_unit_test(test_first_layer),
    cmocka_unit_test(test_bn2d_pooled),
    cmocka_unit_test(test_tensors_by_hand),
    cmocka_unit_test(test_changes_nothing),
    cmocka_unit_test(test_same_training),
    cmocka_unit_test(test_output),
    cmocka_unit_test(test_one_sample_probe),
    cmocka_unit_test(test_callbacks),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
