/*
 * test_gradcheck.c — the generated backward passes against finite
 * differences of the loss, in float64, for every norm × activation the
 * code generator emits, a layer list with dropout, a bias-free layer
 * and BatchNorm after an activation, and two convolutional networks on
 * 2 x 6 x 5 images: every image layer kind, non-square kernels, strides
 * and paddings, a convolution without bias and one after another.
 *
 * Each case is a model 12-5-7-4 (the input is 12 random "pixels"),
 * compiled in memory with tcc, every parameter drawn from N(0, 1) so that
 * γ and β are not 1 and 0. net->grad gives the analytic gradient of the
 * batch's mean loss; then each parameter element is moved by ±h and ±2h
 * and the loss recomputed, and the fourth-order central difference
 *
 *   fd = (8·(L(w+h) − L(w−h)) − (L(w+2h) − L(w−2h))) / 12h,  h = 1e-4
 *
 * compared with the gradient. As llm.c's tests do, the largest error of
 * each tensor is printed; the check passes when every element satisfies
 *
 *   |g − fd| ≤ TOL · max(|g|, |fd|, FLOOR),  TOL = 1e-6, FLOOR = 1e-3
 *
 * Why these numbers: fd's truncation error is ~h⁴·|L⁽⁵⁾|/30, tiny here;
 * its rounding error is ~ε·|L|/h (the loss, ~5, carries a few ulps).
 * Rounding dominates: the largest error over all cases, measured, is
 * 1.5e-6 with the plain two-point difference at h = 1e-6, and with this
 * one 2.5e-7 at h = 1e-5, 2.5e-8 at h = 1e-4, 7.7e-9 at h = 3e-4. Below
 * FLOOR, gradients are compared absolutely, to 1e-9: some are exactly 0
 * (the bias of a linear layer that BatchNorm follows).
 *
 * ReLU and leaky ReLU have a kink at 0, where a difference straddling it
 * is wrong. A kink is crossed only if a pre-activation lies within about
 * 2h·|x| of 0; for these 2 × 12 × n pre-activations of spread ~3 that is a
 * chance of well under 1% per model, and if it happened the case would
 * fail, not pass silently. Inputs and weights are fixed (seeded), so the
 * outcome is the same on every run.
 *
 * BatchNorm's running statistics change on every call to grad; they do not
 * enter the training-mode loss, so the differences are unaffected.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

enum { IN = 12, H1 = 5, H2 = 7, OUT = 4, BATCH = 5, SMALL = 3 };
enum { IC = 2, IH = 6, IW = 5, IMAGE = IC * IH * IW }; /* the image cases' input */
#define STEP 1e-4  /* h of the central difference                    */
#define TOL 1e-6    /* relative error allowed                         */
#define FLOOR 1e-3  /* below this, errors count absolutely (× TOL)    */

/* One case: a norm and an activation, or no hidden layer at all. */
typedef struct {
  int norm, act, nohidden;
  char name[40];
  int list; /* a layer list instead: LIST_MLP, LIST_CNN, LIST_CNN2 */
} Case;
enum { LIST_NONE, LIST_MLP, LIST_CNN, LIST_CNN2 };

static Case cases[NNORMS * NACTS + 4];
static unsigned char x[BATCH * IMAGE], y[BATCH]; /* the fixed batch     */

/* ---- the model ---- */

/* The activation's default parameter (leaky_relu's slope, elu's alpha). */
static double act_default(int act) {
  static const double dflt[NACTS] = {
#define DFLT_(e, s, d, ...) d,
    ACTS(DFLT_)
#undef DFLT_
  };
  return dflt[act];
}

/* The model of a case: 12-5-7-4 (or 12-4), float64, every parameter
   ~ N(0, 1) (so that γ and β are not 1 and 0). */
static void make_model(const Case *c, Model *m) {
  fe_defaults(m);
  snprintf(m->name, sizeof m->name, "grad_%s_%s%s", norm_names[c->norm],
           act_names[c->act], c->nohidden ? "_nohidden" : "");
  m->input = IN;
  m->output = OUT;
  m->nhidden = c->nohidden ? 0 : 2;
  m->hidden[0] = H1;
  m->hidden[1] = H2;
  m->norm.type = c->norm;
  m->act.type = c->act;
  m->act.param = act_default(c->act);
  m->init = RT_INIT_NORMAL;
  m->batch_size = BATCH;
  m->dtype = DT_F64;
  m->seed = 7;
}

/* The layer-list case: 12 → linear 5 → tanh → dropout(0.4) → linear 7
   without bias → batchnorm → elu → linear 4, float64. The dropout mask
   is the same in every evaluation: the step does not move. */
static void make_list(Model *m) {
  static const Spec l[] = {
    {.kind = LK_LINEAR, .out = H1, .bias = 1, .init = -1},
    {.kind = LK_ACT + ACT_TANH},
    {.kind = LK_DROPOUT, .p = 0.4},
    {.kind = LK_LINEAR, .out = H2, .bias = 0, .init = -1},
    {.kind = LK_BATCHNORM, .norm = {NORM_BATCH, 1e-5, 0.1, 0}},
    {.kind = LK_ACT + ACT_ELU, .act = {ACT_ELU, 1.0}},
    {.kind = LK_LINEAR, .out = OUT, .bias = 1, .init = -1},
  };
  m->nlayers = (int)(sizeof l / sizeof l[0]);
  memcpy(m->layers, l, sizeof l);
  snprintf(m->name, sizeof m->name, "grad_list");
}

/* The first image case: conv2d(3, [3, 2], stride [1, 2], padding 1) →
   batchnorm2d → tanh → maxpool2d(2) → flatten → linear 4. */
static void make_cnn(Model *m) {
  static const Spec l[] = {
    {.kind = LK_CONV2D, .out = 3, .bias = 1, .init = -1, .kernel = {3, 2}, .stride = {1, 2},
     .padding = {1, 1}},
    {.kind = LK_BATCHNORM2D, .norm = {NORM_BATCH, 1e-5, 0.1, 0}},
    {.kind = LK_ACT + ACT_TANH},
    {.kind = LK_MAXPOOL2D, .kernel = {2, 2}, .stride = {2, 2}},
    {.kind = LK_FLATTEN},
    {.kind = LK_LINEAR, .out = OUT, .bias = 1, .init = -1},
  };
  m->nlayers = (int)(sizeof l / sizeof l[0]);
  memcpy(m->layers, l, sizeof l);
  snprintf(m->name, sizeof m->name, "grad_cnn");
}

/* The second: conv2d(3, 3, stride 2, padding 2, no bias) → elu →
   avgpool2d([2, 1], stride 1) → dropout(0.3) → conv2d(2, 1) → sigmoid →
   flatten → linear 4. */
static void make_cnn2(Model *m) {
  static const Spec l[] = {
    {.kind = LK_CONV2D, .out = 3, .bias = 0, .init = -1, .kernel = {3, 3}, .stride = {2, 2},
     .padding = {2, 2}},
    {.kind = LK_ACT + ACT_ELU, .act = {ACT_ELU, 1.0}},
    {.kind = LK_AVGPOOL2D, .kernel = {2, 1}, .stride = {1, 1}},
    {.kind = LK_DROPOUT, .p = 0.3},
    {.kind = LK_CONV2D, .out = 2, .bias = 1, .init = -1, .kernel = {1, 1}, .stride = {1, 1}},
    {.kind = LK_ACT + ACT_SIGMOID},
    {.kind = LK_FLATTEN},
    {.kind = LK_LINEAR, .out = OUT, .bias = 1, .init = -1},
  };
  m->nlayers = (int)(sizeof l / sizeof l[0]);
  memcpy(m->layers, l, sizeof l);
  snprintf(m->name, sizeof m->name, "grad_cnn2");
}

/* Replaces the first `from` in src by `to` (a deliberate bug). */
static char *mutate(char *src, const char *from, const char *to) {
  char *at = strstr(src, from);
  if (!at)
    fail_msg("'%s' is not in the generated code: update the mutation", from);
  size_t head = at - src, lf = strlen(from), lt = strlen(to);
  char *out = malloc(strlen(src) - lf + lt + 1);
  memcpy(out, src, head);
  strcpy(out + head, to);
  strcat(out + head, at + lf);
  free(src);
  return out;
}

/* Compiles a model with tcc, with `from` replaced by `to` if from. */
static Jit *compile(const Model *m, const char *from, const char *to) {
  static Ir ir;
  Buf src = {0};
  char err[2048];
  ir_lower(m, &ir);
  emit_unit(&ir, BACKEND_TCC, &src);
  if (from)
    src.buf = mutate(src.buf, from, to);
  Jit *j = jit_tcc(src.buf, err, sizeof err);
  free(src.buf);
  if (!j)
    fail_msg("%s", err);
  return j;
}

/* ---- the check ---- */

/* The error of g against fd, relative above FLOOR. */
static double rel_err(double g, double fd) {
  double scale = fmax(fmax(fabs(g), fabs(fd)), FLOOR);
  return fabs(g - fd) / scale;
}

/* The loss with *w set to v. */
static double loss_at(const RtNet *net, int n, double *w, double v) {
  double old = *w;
  *w = v;
  double loss = net->grad(n, x, y);
  *w = old;
  return loss;
}

/* dL/dw by the fourth-order central difference
   (8·(L(w+h) − L(w−h)) − (L(w+2h) − L(w−2h))) / 12h. */
static double difference(const RtNet *net, int n, double *w) {
  double v = *w;
  double d1 = loss_at(net, n, w, v + STEP) - loss_at(net, n, w, v - STEP);
  double d2 = loss_at(net, n, w, v + 2 * STEP) - loss_at(net, n, w, v - 2 * STEP);
  return (8 * d1 - d2) / (12 * STEP);
}

/* Checks one parameter tensor on n samples; returns its largest error. */
static double check_tensor(const RtNet *net, const RtTensor *p, int n) {
  char gname[128];
  snprintf(gname, sizeof gname, "%s.grad", p->name);
  const RtTensor *d = util_tensor(net, gname);
  assert_int_equal(d->dtype, RT_F64);
  assert_int_equal(rt_numel(d), rt_numel(p));
  long len = rt_numel(p);
  double *w = p->data, *g = malloc(sizeof(double) * len), worst = 0;
  int shown = 0;
  net->grad(n, x, y);
  memcpy(g, d->data, sizeof(double) * len);
  for (long i = 0; i < len; i++) {
    double fd = difference(net, n, &w[i]), e = rel_err(g[i], fd);
    if (e > TOL && shown++ < 3)
      print_message("    %s[%ld]: gradient %.12g, finite difference %.12g\n", p->name, i,
                    g[i], fd);
    worst = fmax(worst, e);
  }
  free(g);
  return worst;
}

/* The largest error over every trained tensor of the case's model on n
   samples, with the generated code mutated if from. */
static double model_error(const Case *c, int n, const char *from, const char *to) {
  Model m;
  make_model(c, &m);
  if (c->list == LIST_MLP)
    make_list(&m);
  if (c->list == LIST_CNN || c->list == LIST_CNN2) {
    (c->list == LIST_CNN ? make_cnn : make_cnn2)(&m);
    m.input = IMAGE;
    m.shape[0] = IC, m.shape[1] = IH, m.shape[2] = IW;
  }
  Jit *j = compile(&m, from, to);
  const RtNet *net = jit_net(j);
  rt_init(net, m.seed);
  double worst = 0;
  int checked = 0, grads = 0;
  for (int i = 0; i < net->ntensors; i++) {
    const RtTensor *t = &net->tensors[i];
    grads += t->kind == RT_GRAD;
    if (t->kind > RT_BETA)
      continue;
    double e = check_tensor(net, t, n);
    print_message("  %-20s n=%d %-14s max rel error %.3g\n", c->name, n, t->name, e);
    worst = fmax(worst, e);
    checked++;
  }
  jit_free(j);
  /* fc1..fc3 weight and bias, and γ, β of two norm layers; the lists':
     weights, biases, γ and β */
  static const int in_list[] = {0, 7, 6, 5};
  assert_int_equal(checked, c->list ? in_list[c->list]
                            : c->nohidden ? 2 : c->norm == NORM_NONE ? 6 : 10);
  assert_int_equal(grads, checked); /* no gradient left unchecked */
  print_message("  %-20s n=%d whole model    max rel error %.3g\n", c->name, n, worst);
  return worst;
}

/* A full batch and a short one (n < B). */
static void test_case(void **state) {
  const Case *c = *state;
  const int sizes[] = {BATCH, SMALL};
  for (int i = 0; i < 2; i++) {
    double e = model_error(c, sizes[i], NULL, NULL);
    if (e > TOL)
      fail_msg("%s, n=%d: gradient and finite difference differ by %.3g > %g", c->name,
               sizes[i], e, TOL);
  }
}

/* The check is not vacuous: deliberate bugs in the generated backward
   code are caught. The mutations name emitted text, so they must follow
   changes to codegen/emit.c. */
static void test_catches_bugs(void **state) {
  (void)state;
  static const struct {
    int norm, act;
    const char *from, *to, *what;
  } bugs[] = {
    {NORM_NONE, ACT_SIGMOID, "act_sigmoid_back(n * ", "act_silu_back(n * ", "sigmoid' is silu's"},
    {NORM_BATCH, ACT_SILU, "norm2_rstd, norm2_sdy", "norm2_var, norm2_sdy",
     "BatchNorm dx with var for 1/sqrt(var + eps)"},
    {NORM_LAYER, ACT_GELU, "dnorm2_weight, dnorm2_bias", "dnorm2_bias, dnorm2_weight",
     "LayerNorm's dγ and dβ swapped"},
    {NORM_NONE, ACT_LEAKY, "act_leaky_relu_back(n * ", "act_relu_back(n * ",
     "leaky_relu' = 0 below 0"},
    {NORM_NONE, ACT_SIGMOID, "xent_backward(n, ", "xent_backward(n - 1, ",
     "loss' without its last row"},
  };
  for (size_t i = 0; i < sizeof bugs / sizeof bugs[0]; i++) {
    Case c = {bugs[i].norm, bugs[i].act, 0, "", 0};
    snprintf(c.name, sizeof c.name, "bug: %s", bugs[i].what);
    double e = model_error(&c, BATCH, bugs[i].from, bugs[i].to);
    if (!(e > 1e-3))
      fail_msg("%s: not caught (max rel error %.3g)", bugs[i].what, e);
  }
  assert_true(rel_err(0.25, 0.25 * (1 + 1e-5)) > TOL);
  assert_true(rel_err(0, 2e-9) > TOL);
  assert_true(rel_err(0.25, 0.25 * (1 + 1e-8)) <= TOL);
}

/* The fixed batch: bytes from a small LCG (the flat cases read the first
   BATCH·IN of them), labels covering all classes. */
static void make_batch(void) {
  unsigned s = 12345;
  for (int i = 0; i < BATCH * IMAGE; i++) {
    s = s * 1103515245u + 12345u;
    x[i] = (unsigned char)(s >> 16);
  }
  for (int r = 0; r < BATCH; r++)
    y[r] = (unsigned char)(r % OUT);
}

int main(void) {
  struct CMUnitTest tests[NNORMS * NACTS + 5];
  int n = 0;
  make_batch();
  for (int nm = 0; nm < NNORMS; nm++)
    for (int a = 0; a < NACTS; a++) {
      Case *c = &cases[nm * NACTS + a];
      c->norm = nm;
      c->act = a;
      snprintf(c->name, sizeof c->name, "%s/%s", norm_names[nm], act_names[a]);
      tests[n++] = (struct CMUnitTest){c->name, test_case, 0, 0, c};
    }
  Case *lin = &cases[NNORMS * NACTS];
  *lin = (Case){NORM_NONE, ACT_RELU, 1, "no hidden layer", 0};
  tests[n++] = (struct CMUnitTest){lin->name, test_case, 0, 0, lin};
  Case *list = &cases[NNORMS * NACTS + 1];
  *list = (Case){NORM_NONE, ACT_TANH, 0, "layer list with dropout", LIST_MLP};
  tests[n++] = (struct CMUnitTest){list->name, test_case, 0, 0, list};
  Case *cnn = &cases[NNORMS * NACTS + 2];
  *cnn = (Case){NORM_NONE, ACT_TANH, 0, "conv, batchnorm2d, maxpool", LIST_CNN};
  tests[n++] = (struct CMUnitTest){cnn->name, test_case, 0, 0, cnn};
  Case *cnn2 = &cases[NNORMS * NACTS + 3];
  *cnn2 = (Case){NORM_NONE, ACT_TANH, 0, "conv, avgpool, dropout, conv", LIST_CNN2};
  tests[n++] = (struct CMUnitTest){cnn2->name, test_case, 0, 0, cnn2};
  tests[n++] = (struct CMUnitTest){"catches_bugs", test_catches_bugs, 0, 0, 0};
  return _cmocka_run_group_tests("gradcheck", tests, n, NULL, NULL);
}
