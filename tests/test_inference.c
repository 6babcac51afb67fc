/*
 * test_inference.c — `mlpc --emit-inference` against mlpc's own evaluation.
 *
 * Each case (every norm and every activation across the cases, every
 * float32 activation also without BatchNorm, so that inference's
 * expression of it (codegen/emit.c's act_code) is checked bit for bit
 * against its kernel; float32 and float64, one and two hidden layers),
 * in each arithmetic (strict and
 * fma, rt/kernels.h): the model's unit is compiled
 * with libtcc, plus an accessor for its logits buffer; a few training
 * steps move the weights and BatchNorm's running statistics; the weights
 * are saved; `mlpc MODEL --emit-inference digit.c --load-weights W` writes
 * the inference C, which is built freestanding without any system header
 * (cc -std=c99 -ffreestanding -nostdinc -O2 -Werror), checked to call no
 * function but its math (and fmaf or fma in the fma arithmetic), and
 * loaded. Then every test image is classified
 * both ways: predictions and accuracy must equal net->eval's; logits must
 * be bitwise equal without BatchNorm (same operations in the same order)
 * and within a relative tolerance with it (folding rounds differently).
 * Each case prints its largest difference.
 *
 * The README's example (examples/classify.c) is built against one case,
 * the #warning of an fma build without FMA instructions is checked, and
 * the flag's errors are checked.
 */
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <libtcc.h>
#include "../mlpc.h"
#include "util.h"

/* Largest |logit difference| / max(1, max |logit|) allowed with BatchNorm
   folded; the measured figures are printed by each case. */
#define TOL_F32 1e-5
#define TOL_F64 1e-13
#define STEPS 200 /* training steps before the weights are saved */

typedef struct {
  const char *name, *norm, *act, *hidden, *dtype, *init;
  const char *layers; /* a layer list instead of norm, act and hidden */
  const char *input;  /* images "[C, H, W]" for a list, or 0: 784 */
} Case;

static const Case cases[] = {
  {"none_tanh", "\"none\"", "\"tanh\"", "[64]", "float32", "normal", 0, 0},
  {"none_relu", "\"none\"", "\"relu\"", "[48, 32]", "float32", "kaiming_normal", 0, 0},
  {"bn_relu", "\"batchnorm\"", "\"relu\"", "[64]", "float32", "kaiming_normal", 0, 0},
  {"bn_leaky", "{\"type\": \"batchnorm\", \"momentum\": 0.3}",
   "{\"type\": \"leaky_relu\", \"slope\": 0.2}", "[48, 32]", "float32", "normal", 0, 0},
  {"bn_sigmoid", "{\"type\": \"batchnorm\", \"momentum\": null}", "\"sigmoid\"", "[64]",
   "float32", "normal", 0, 0},
  {"none_leaky", "\"none\"", "{\"type\": \"leaky_relu\", \"slope\": 0.2}", "[64]", "float32",
   "kaiming_normal", 0, 0},
  {"ln_sigmoid", "\"layernorm\"", "\"sigmoid\"", "[64]", "float32", "normal", 0, 0},
  {"ln_silu", "\"layernorm\"", "\"silu\"", "[64]", "float32", "kaiming_normal", 0, 0},
  {"ln_gelu", "\"layernorm\"", "\"gelu\"", "[48, 32]", "float32", "normal", 0, 0},
  {"ln_elu", "{\"type\": \"layernorm\", \"eps\": 0.001}", "{\"type\": \"elu\", \"alpha\": 0.5}",
   "[64]", "float32", "torch_default", 0, 0},
  {"none_sigmoid_f64", "\"none\"", "\"sigmoid\"", "[64]", "float64", "xavier_normal", 0, 0},
  {"bn_gelu_f64", "\"batchnorm\"", "\"gelu\"", "[48, 32]", "float64", "normal", 0, 0},
  {"ln_tanh_f64", "\"layernorm\"", "\"tanh\"", "[64]", "float64", "normal", 0, 0},
  /* layer lists: mixed activations, a bias-free layer, dropout (the
     identity here), BatchNorm after an activation (not folded: bitwise) */
  {"list_mixed", 0, 0, 0, "float32", "kaiming_normal",
   "[{\"type\": \"linear\", \"out\": 48, \"init\": \"xavier_normal\"}, \"tanh\", "
   "{\"type\": \"dropout\", \"p\": 0.3}, {\"type\": \"linear\", \"out\": 32, \"bias\": false}, "
   "\"gelu\", \"batchnorm\", {\"type\": \"linear\", \"out\": 24}, "
   "{\"type\": \"leaky_relu\", \"slope\": 0.1}, {\"type\": \"linear\", \"out\": 10}]", 0},
  {"list_ln_elu_f64", 0, 0, 0, "float64", "normal",
   "[{\"type\": \"linear\", \"out\": 40}, {\"type\": \"layernorm\", \"eps\": 0.01}, \"elu\", "
   "{\"type\": \"linear\", \"out\": 16}, \"batchnorm\", \"silu\", "
   "{\"type\": \"linear\", \"out\": 10, \"bias\": false}]", 0},
  /* convolutional networks: BatchNorm2d folded into the convolution
     before it; without BatchNorm, bitwise */
  {"cnn_bn", 0, 0, 0, "float32", "kaiming_normal",
   "[{\"type\": \"conv2d\", \"out_channels\": 6, \"kernel_size\": 3, \"padding\": 1}, "
   "\"batchnorm2d\", \"relu\", {\"type\": \"maxpool2d\", \"kernel_size\": 2}, "
   "{\"type\": \"conv2d\", \"out_channels\": 8, \"kernel_size\": [3, 5], \"stride\": 2}, "
   "\"batchnorm2d\", \"tanh\", \"flatten\", {\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  {"cnn_avg_f64", 0, 0, 0, "float64", "xavier_normal",
   "[{\"type\": \"conv2d\", \"out_channels\": 5, \"kernel_size\": 5, \"stride\": 2, "
   "\"padding\": 2, \"bias\": false}, \"elu\", {\"type\": \"avgpool2d\", \"kernel_size\": 3, "
   "\"stride\": 2}, {\"type\": \"dropout\", \"p\": 0.2}, {\"type\": \"maxpool2d\", "
   "\"kernel_size\": [2, 1], \"stride\": 1}, \"flatten\", {\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  /* a first layer that works in place on a copy of x: BatchNorm2d, an
     activation */
  {"cnn_norm_first_f64", 0, 0, 0, "float64", "kaiming_normal",
   "[\"batchnorm2d\", \"tanh\", {\"type\": \"conv2d\", \"out_channels\": 3, "
   "\"kernel_size\": 5, \"stride\": 3}, \"flatten\", {\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  /* buffers too large for a stack (2 x 48·28·28 floats): static */
  {"cnn_static", 0, 0, 0, "float32", "kaiming_normal",
   "[{\"type\": \"conv2d\", \"out_channels\": 48, \"kernel_size\": 3, \"padding\": 1}, "
   "\"relu\", {\"type\": \"maxpool2d\", \"kernel_size\": 4}, \"flatten\", "
   "{\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  /* convolutions that mlpc computes by F(2×2, 3×3) (3×3, stride 1, 8
     channels or more in and out, rows of at most 14 outputs in float, 6
     in double): the same operations, bitwise; folded, near */
  {"cnn_wino", 0, 0, 0, "float32", "kaiming_normal",
   "[{\"type\": \"conv2d\", \"out_channels\": 8, \"kernel_size\": 3, \"padding\": 1}, "
   "\"relu\", {\"type\": \"maxpool2d\", \"kernel_size\": 2}, "
   "{\"type\": \"conv2d\", \"out_channels\": 16, \"kernel_size\": 3, \"padding\": 1}, "
   "\"relu\", {\"type\": \"conv2d\", \"out_channels\": 9, \"kernel_size\": 3, "
   "\"bias\": false}, \"tanh\", \"flatten\", {\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  {"cnn_wino_bn", 0, 0, 0, "float32", "kaiming_normal",
   "[{\"type\": \"conv2d\", \"out_channels\": 8, \"kernel_size\": 3, \"padding\": 1}, "
   "\"relu\", {\"type\": \"maxpool2d\", \"kernel_size\": 2}, "
   "{\"type\": \"conv2d\", \"out_channels\": 16, \"kernel_size\": 3, \"padding\": 1}, "
   "\"batchnorm2d\", \"relu\", \"flatten\", {\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  {"cnn_wino_f64", 0, 0, 0, "float64", "kaiming_normal",
   "[{\"type\": \"conv2d\", \"out_channels\": 16, \"kernel_size\": 3, \"padding\": 1}, "
   "\"relu\", {\"type\": \"maxpool2d\", \"kernel_size\": 2}, "
   "{\"type\": \"conv2d\", \"out_channels\": 12, \"kernel_size\": 3, \"padding\": 1}, "
   "\"relu\", {\"type\": \"maxpool2d\", \"kernel_size\": [1, 3]}, "
   "{\"type\": \"conv2d\", \"out_channels\": 8, \"kernel_size\": 3, "
   "\"padding\": [2, 1], \"bias\": false}, \"tanh\", \"flatten\", "
   "{\"type\": \"linear\", \"out\": 10}]",
   "[1, 28, 28]"},
  {"act_first", 0, 0, 0, "float32", "kaiming_normal",
   "[\"sigmoid\", {\"type\": \"linear\", \"out\": 32}, \"relu\", "
   "{\"type\": \"linear\", \"out\": 10}]", 0},
};

static RtSet train_set, test_set;
static char dir[64];

/* ---- helpers ---- */

/* A path in the test's directory, in one of eight rotating buffers. */
static const char *in_dir(const char *name) {
  static char ring[8][256];
  static int next;
  char *s = ring[next++ % 8];
  snprintf(s, sizeof ring[0], "%s/%s", dir, name);
  return s;
}

/* Runs argv (no shell), stdout and stderr to files in the directory (or
   NULL); its exit status. */
static int run(const char *const *argv, const char *out, const char *err) {
  return util_run(argv, out ? in_dir(out) : NULL, err ? in_dir(err) : NULL);
}

/* A file of the test's directory, as text in a static buffer ("" if absent). */
static const char *slurp(const char *name) {
  static char buf[4096];
  size_t len;
  char *text = util_slurp(in_dir(name), &len);
  snprintf(buf, sizeof buf, "%s", text ? text : "");
  free(text);
  return buf;
}

/* Writes text to a file of the test's directory. */
static void put(const char *name, const char *text) {
  assert_int_equal(util_write(in_dir(name), text, strlen(text)), 0);
}

/* The model of a case, as the text of a model file. */
static const char *model_json(const Case *c) {
  static char s[2048];
  if (c->layers) {
    snprintf(s, sizeof s,
             "{\"name\": \"%s\", \"input\": %s, \"layers\": %s, \"init\": \"%s\", "
             "\"dtype\": \"%s\", \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.01}, "
             "\"batch_size\": 32, \"seed\": 7, \"data\": \"mnist\"}\n",
             c->name, c->input ? c->input : "784", c->layers, c->init, c->dtype);
    return s;
  }
  snprintf(s, sizeof s,
           "{\"name\": \"%s\", \"input\": 784, \"hidden\": %s, \"output\": 10, "
           "\"norm\": %s, \"activation\": %s, \"init\": \"%s\", \"dtype\": \"%s\", "
           "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.01}, \"batch_size\": 32, "
           "\"seed\": 7, \"data\": \"mnist\"}\n",
           c->name, c->hidden, c->norm, c->act, c->init, c->dtype);
  return s;
}

/* ---- mlpc's side: the unit under libtcc, with its logits exposed ---- */

typedef struct {
  TCCState *tcc;
  const RtNet *net;
  const void *(*logits)(void); /* the last linear layer's output (B, 10) */
} Ref;

/* Compiles ir's unit with an accessor for the logits appended. */
static void ref_compile(const Ir *ir, Ref *r) {
  Buf src = {0};
  emit_unit(ir, BACKEND_TCC, &src);
  emitf(&src, "\nconst void *test_logits(void) { return %s_out; }\n",
        ir->layers[ir->nlayers - 2].cname); /* the last linear layer's */
  r->tcc = tcc_new();
  assert_non_null(r->tcc);
  tcc_set_output_type(r->tcc, TCC_OUTPUT_MEMORY);
  assert_int_equal(tcc_compile_string(r->tcc, src.buf), 0);
  assert_true(tcc_relocate(r->tcc, TCC_RELOCATE_AUTO) >= 0);
  free(src.buf);
  char err[256];
  if (jit_bind(tcc_get_symbol(r->tcc, "mlpc_bind"), err, sizeof err))
    fail_msg("%s", err);
  const RtNet *(*get)(void) = (const RtNet *(*)(void))tcc_get_symbol(r->tcc, "mlpc_net");
  r->logits = (const void *(*)(void))tcc_get_symbol(r->tcc, "test_logits");
  assert_non_null(get);
  assert_non_null(r->logits);
  r->net = get();
}

/* Trains STEPS batches in file order, so that every weight and running
   statistic has moved from its initial value. */
static void ref_train(const RtNet *net) {
  for (int s = 0; s < STEPS; s++) {
    const unsigned char *x = train_set.images + (size_t)s * net->batch * net->input;
    double loss = net->train_step(net->batch, x, train_set.labels + s * net->batch);
    assert_true(isfinite(loss));
  }
}

/* ---- the emitted side ---- */

/* The flag that selects an arithmetic (1: fma). */
static const char *arith_flag(int fma) {
  return fma ? "--fma" : "--strict";
}

/* Writes model and weights, runs mlpc --emit-inference in the arithmetic
   of ir, builds digit.c freestanding and as a shared object. */
static void emit_and_build(const Case *c, const Ir *ir, const RtNet *net) {
  char err[1024];
  put("model.json", model_json(c));
  assert_int_equal(rt_save_weights(net, in_dir("w.safetensors"), err, sizeof err), 0);
  const char *emit[] = {MLPC_BIN, in_dir("model.json"), "--emit-inference", in_dir("digit.c"),
                        "--load-weights", in_dir("w.safetensors"), arith_flag(ir->fma), NULL};
  assert_int_equal(run(emit, NULL, NULL), 0);
  const char *cc[] = {"cc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror",
                      "-ffreestanding", "-nostdinc", "-O2", "-fPIC", "-c", in_dir("digit.c"),
                      "-o", in_dir("digit.o"), NULL};
  assert_int_equal(run(cc, NULL, NULL), 0);
  const char *nm[] = {"nm", "-u", in_dir("digit.o"), NULL};
  assert_int_equal(run(nm, "undef.txt", NULL), 0);
  const char *so[] = {"cc", "-shared", in_dir("digit.o"), "-o", in_dir("digit.so"), "-lm", NULL};
  assert_int_equal(run(so, NULL, NULL), 0);
}

/* Orders strings for qsort. */
static int by_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Adds name to names (n of them) unless it is there already. */
static void add_name(const char **names, int *n, const char *name) {
  for (int i = 0; i < *n; i++)
    if (!strcmp(names[i], name))
      return;
  names[(*n)++] = name;
}

/* The functions digit.o may call, sorted, each followed by a space: its
   activations' math, LayerNorm's sqrt, and fmaf or fma in the fma
   arithmetic. A float tanh or e^x is rt/rmath.h's, compiled in. */
static const char *expected_calls(const Ir *ir, int fma) {
  static const char *const fn[NACTS] = {
    [ACT_TANH] = "tanh", [ACT_SIGMOID] = "exp", [ACT_SILU] = "exp",
    [ACT_GELU] = "erf", [ACT_ELU] = "exp",
  };
  static char act[NACTS][16], s[128];
  const char *names[NACTS + 2];
  int n = 0, f32 = ir->m->dtype == DT_F32;
  if (fma)
    names[n++] = f32 ? "fmaf" : "fma";
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    const char *f = l->kind == L_ACT ? fn[l->spec.act.type] : NULL;
    int own = f32 && f && (!strcmp(f, "tanh") || !strcmp(f, "exp"));
    if (f && !own) {
      snprintf(act[l->spec.act.type], 16, "%s%s", f, f32 ? "f" : "");
      add_name(names, &n, act[l->spec.act.type]);
    }
    if (l->kind == L_LAYERNORM)
      add_name(names, &n, "sqrt");
  }
  qsort(names, n, sizeof names[0], by_name);
  s[0] = 0;
  for (int i = 0; i < n; i++)
    snprintf(s + strlen(s), sizeof s - strlen(s), "%s ", names[i]);
  return s;
}

/* Whether a BatchNorm is folded into the layer before it. */
static int folds(const Ir *ir) {
  for (int i = 1; i < ir->nlayers; i++) {
    int k = ir->layers[i].kind, before = ir->layers[i - 1].kind;
    if ((k == L_BATCHNORM && before == L_LINEAR) || (k == L_BATCHNORM2D && before == L_CONV2D))
      return 1;
  }
  return 0;
}

/* The undefined symbols of digit.o (nm -u: "  U expf" per line) must be
   exactly the expected calls. */
static void check_calls(const Ir *ir, int fma) {
  char text[4096], got[256] = "", *names[16], *save;
  int n = 0;
  snprintf(text, sizeof text, "%s", slurp("undef.txt"));
  for (char *line = strtok_r(text, "\n", &save); line && n < 16;
       line = strtok_r(NULL, "\n", &save))
    names[n++] = strrchr(line, ' ') ? strrchr(line, ' ') + 1 : line;
  qsort(names, n, sizeof names[0], by_name);
  for (int i = 0; i < n; i++)
    snprintf(got + strlen(got), sizeof got - strlen(got), "%s ", names[i]);
  assert_string_equal(got, expected_calls(ir, fma));
}

/* The activation buffers are static exactly when the two of them, the
   widest layer's size each, pass 256 kB, and FILE.h then says so; no
   line of either file is wider than 100 columns. */
static void check_buffers(const Ir *ir, int f32) {
  long widest = 0;
  for (int i = 0; i < ir->nlayers; i++)
    widest = ir->layers[i].out > widest ? ir->layers[i].out : widest;
  int large = 2 * widest * (f32 ? 4 : 8) > 256 * 1024;
  size_t len;
  char *c = util_slurp(in_dir("digit.c"), &len), *h = util_slurp(in_dir("digit.h"), &len);
  assert_non_null(c);
  assert_non_null(h);
  char decl[64];
  snprintf(decl, sizeof decl, "  static real a[%ld], b[%ld];", widest, widest);
  assert_int_equal(strstr(c, decl) != NULL, large);
  assert_int_equal(strstr(h, "buffers are static") != NULL, large);
  for (int f = 0; f < 2; f++) { /* lines of at most 100 columns */
    const char *text = f ? h : c;
    long wide = util_wide_line(text, 100);
    for (long k = 1; wide && k < wide; k++)
      text = strchr(text, '\n') + 1;
    if (wide)
      fail_msg("digit.%s:%ld: wider than 100 columns: %.*s", f ? "h" : "c", wide,
               (int)strcspn(text, "\n"), text);
  }
  free(c), free(h);
}

typedef struct {
  long correct, correct_ref, mismatches, bitwise_rows;
  double max_rel;
} Cmp;

/* Element k of a logits row of the model's type, as a double. */
static double logit(const void *z, int f32, long k) {
  return f32 ? ((const float *)z)[k] : ((const double *)z)[k];
}

/* The first largest logit's class, as mlpc counts it. */
static int arg_max(const void *z, int f32, int K) {
  int arg = 0;
  for (int k = 1; k < K; k++)
    if (logit(z, f32, k) > logit(z, f32, arg))
      arg = k;
  return arg;
}

/* Compares one sample's logits (zi, from digit.so) with mlpc's (zr). */
static void compare_row(Cmp *c, const void *zi, const void *zr, int f32, int pred) {
  double scale = 1, diff = 0;
  for (int k = 0; k < 10; k++) {
    scale = fmax(scale, fabs(logit(zr, f32, k)));
    diff = fmax(diff, fabs(logit(zi, f32, k) - logit(zr, f32, k)));
  }
  c->max_rel = fmax(c->max_rel, diff / scale);
  c->mismatches += pred != arg_max(zr, f32, 10);
  c->bitwise_rows += !memcmp(zi, zr, (f32 ? sizeof(float) : sizeof(double)) * 10);
}

typedef int PredictU8(const unsigned char *px, void *logits);
typedef int PredictF32(const float *x, float *logits);
typedef int PredictF64(const double *x, double *logits);

/* mlpc_predict on px / 255 must agree with mlpc_predict_u8 bit for bit. */
static void check_real_entry(void *so, const unsigned char *px, const void *zu8, int f32) {
  float xf[784], zf[10];
  double xd[784], zd[10];
  void *fn = dlsym(so, "mlpc_predict");
  assert_non_null(fn);
  for (int i = 0; i < 784; i++)
    xf[i] = (float)px[i] / 255.0f, xd[i] = (double)px[i] / 255.0;
  if (f32)
    ((PredictF32 *)fn)(xf, zf);
  else
    ((PredictF64 *)fn)(xd, zd);
  assert_memory_equal(f32 ? (void *)zf : (void *)zd, zu8, (f32 ? 4 : 8) * 10);
}

/* Classifies the whole test set with digit.so and with net->eval. */
static Cmp compare_all(const Ref *r, int f32) {
  const RtNet *net = r->net;
  void *so = dlopen(in_dir("digit.so"), RTLD_NOW | RTLD_LOCAL);
  assert_non_null(so);
  PredictU8 *predict = (PredictU8 *)dlsym(so, "mlpc_predict_u8");
  assert_non_null(predict);
  Cmp c = {0};
  double loss = 0, z[10];
  for (long start = 0; start < test_set.n; start += net->batch) {
    int n = test_set.n - start < net->batch ? (int)(test_set.n - start) : net->batch;
    const unsigned char *x = test_set.images + start * 784;
    net->eval(n, x, test_set.labels + start, &loss, &c.correct_ref);
    const char *zr = r->logits();
    for (int i = 0; i < n; i++) {
      int pred = predict(x + i * 784, z);
      c.correct += pred == test_set.labels[start + i];
      compare_row(&c, z, zr + (size_t)i * 10 * (f32 ? 4 : 8), f32, pred);
      if ((start + i) % 97 == 0)
        check_real_entry(so, x + i * 784, z, f32);
    }
  }
  dlclose(so);
  return c;
}

/* ---- the tests ---- */

/* One case end to end, in one arithmetic (1: fma). */
static void check_case(const Case *c, int fma) {
  static Model m;
  static Ir ir;
  char err[1024];
  Ref r;
  assert_int_equal(fe_load_string(model_json(c), c->name, &m, err, sizeof err), 0);
  ir_lower(&m, &ir);
  ir.fma = fma;
  ref_compile(&ir, &r);
  rt_init(r.net, m.seed);
  ref_train(r.net);
  emit_and_build(c, &ir, r.net);
  check_calls(&ir, fma);
  int f32 = m.dtype == DT_F32;
  check_buffers(&ir, f32);
  Cmp cmp = compare_all(&r, f32);
  printf("  %-17s %-6s accuracy %.2f%% (mlpc %.2f%%), %ld predictions differ, %ld/%ld rows "
         "bitwise, max relative logit difference %.3g\n", c->name, fma ? "fma" : "strict",
         100.0 * cmp.correct / test_set.n, 100.0 * cmp.correct_ref / test_set.n,
         cmp.mismatches, cmp.bitwise_rows, test_set.n, cmp.max_rel);
  assert_int_equal(cmp.correct, cmp.correct_ref);
  assert_int_equal(cmp.mismatches, 0);
  if (!folds(&ir))
    assert_int_equal(cmp.bitwise_rows, test_set.n);
  else
    assert_true(cmp.max_rel <= (f32 ? TOL_F32 : TOL_F64));
  tcc_delete(r.tcc);
}

static void test_cases(void **state) {
  (void)state;
  for (int fma = 0; fma < 2; fma++)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
      check_case(&cases[i], fma);
}

/* examples/classify.c, the README's, builds against the emitted files and
   names the first test image's class as mlpc does. */
static void test_readme_example(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[1024], want[32];
  Ref r;
  assert_int_equal(fe_load_string(model_json(&cases[2]), "bn_relu", &m, err, sizeof err), 0);
  ir_lower(&m, &ir);
  ref_compile(&ir, &r);
  rt_init(r.net, m.seed);
  ref_train(r.net);
  emit_and_build(&cases[2], &ir, r.net);
  double loss = 0;
  long correct = 0;
  r.net->eval(1, test_set.images, test_set.labels, &loss, &correct);
  snprintf(want, sizeof want, "digit %d\n", arg_max(r.logits(), 1, 10));
  assert_int_equal(util_write(in_dir("digit.raw"), test_set.images, 784), 0);
  char inc[300];
  snprintf(inc, sizeof inc, "-I%s", dir);
  const char *cc[] = {"cc", "-std=c99", "-O2", inc, "examples/classify.c", in_dir("digit.c"),
                      "-o", in_dir("classify"), "-lm", NULL};
  assert_int_equal(run(cc, NULL, NULL), 0);
  const char *classify[] = {"sh", "-c", "\"$0\" < \"$1\"", in_dir("classify"),
                            in_dir("digit.raw"), NULL};
  assert_int_equal(run(classify, "out.txt", NULL), 0);
  assert_string_equal(slurp("out.txt"), want);
  tcc_delete(r.tcc);
}

/* The inference C in the fma arithmetic warns when a hosted build lacks
   FMA instructions (plain cc -O2 on x86-64), not with them
   (-march=native, on a CPU that has them) nor freestanding (where every
   fmaf is a call anyway; emit_and_build's -Werror build checks it too);
   strict never warns. */
static void test_fma_warning(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[1024];
  Ref r;
  const char *plain[] = {"-std=c99", "-O2", NULL}, *warning = "built without FMA instructions";
  const char *native[] = {"-std=c99", "-O2", "-march=native", NULL};
  const char *freestanding[] = {"-std=c99", "-O2", "-ffreestanding", NULL};
  assert_int_equal(fe_load_string(model_json(&cases[2]), "bn_relu", &m, err, sizeof err), 0);
  for (int fma = 0; fma < 2; fma++) {
    ir_lower(&m, &ir);
    ir.fma = fma;
    ref_compile(&ir, &r);
    rt_init(r.net, m.seed);
    emit_and_build(&cases[2], &ir, r.net);
#if defined(__x86_64__) || defined(__i386__)
    assert_int_equal(util_cc_says(in_dir("digit.c"), plain, warning), fma);
#endif
    assert_int_equal(util_cc_says(in_dir("digit.c"), freestanding, warning), 0);
    if (jit_cpu_fma())
      assert_int_equal(util_cc_says(in_dir("digit.c"), native, warning), 0);
    tcc_delete(r.tcc);
  }
}

/* Runs mlpc on model.json with two or four more arguments; its exit
   status, stderr in err.txt. */
static int mlpc(const char *a, const char *b, const char *c, const char *d) {
  const char *argv[] = {MLPC_BIN, in_dir("model.json"), a, b, c, d, NULL};
  return run(argv, NULL, "err.txt");
}

/* The flag's user errors exit 2 with a message that says what to do. */
static void test_errors(void **state) {
  (void)state;
  put("model.json", model_json(&cases[9])); /* a float64 model */
  assert_int_equal(mlpc("--emit-inference", in_dir("x.c"), NULL, NULL), 2);
  assert_string_equal(slurp("err.txt"),
                      "mlpc: --emit-inference: error: needs the trained weights: "
                      "--load-weights W.safetensors\n");
  assert_int_equal(mlpc("--emit-inference", in_dir("x.cc"), "--load-weights", "w"), 2);
  assert_string_equal(slurp("err.txt"),
                      "mlpc: --emit-inference: error: the file name must end in .c "
                      "(its header goes next to it, as .h)\n");
  put("bad.safetensors", "not weights");
  char want[600];
  assert_int_equal(mlpc("--emit-inference", in_dir("e.c"), "--load-weights",
                        in_dir("bad.safetensors")), 2);
  snprintf(want, sizeof want, "mlpc: %s: header length 7451598620781211502 does not fit "
           "the file (11 bytes)\n", in_dir("bad.safetensors"));
  assert_string_equal(slurp("err.txt"), want);
  assert_int_equal(access(in_dir("e.c"), F_OK), -1); /* nothing written */
}

/* A weight that is not finite cannot be written as a C constant. */
static void test_not_finite(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[1024];
  Ref r;
  assert_int_equal(fe_load_string(model_json(&cases[2]), "bn_relu", &m, err, sizeof err), 0);
  ir_lower(&m, &ir);
  ref_compile(&ir, &r);
  rt_init(r.net, m.seed);
  ((float *)r.net->tensors[1].data)[5] = NAN; /* fc1.bias[5] */
  assert_string_equal(r.net->tensors[1].name, "fc1.bias");
  Buf c = {0}, h = {0};
  assert_int_equal(emit_inference(&ir, r.net, "digit.h", &c, &h, err, sizeof err), -1);
  assert_string_equal(err, "fc1_bias[5] ((64): fc1.bias, norm folded in) is nan: "
                      "only finite weights can be emitted");
  free(c.buf);
  free(h.buf);
  tcc_delete(r.tcc);
}

/* Loads the data and makes the working directory. */
static int setup(void **state) {
  (void)state;
  char err[1024];
  if (util_mkdtemp("infer", dir, sizeof dir) ||
      rt_load_set("data/mnist", "train", 10, &train_set, err, sizeof err) ||
      rt_load_set("data/mnist", "t10k", 10, &test_set, err, sizeof err)) {
    fprintf(stderr, "setup: %s\n", err);
    return -1;
  }
  return 0;
}

/* Removes the working directory and frees the data. */
static int teardown(void **state) {
  (void)state;
  util_rmtree(dir);
  rt_free_set(&train_set);
  rt_free_set(&test_set);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cases),
    cmocka_unit_test(test_readme_example),
    cmocka_unit_test(test_fma_warning),
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_not_finite),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
