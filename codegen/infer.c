/*
 * infer.c — a trained model as standalone inference C: one source file
 * with the weights as static const arrays, and its header, declaring
 *
 *   int mlpc_predict(const real x[IN], real logits[OUT]);
 *   int mlpc_predict_u8(const unsigned char px[IN], real logits[OUT]);
 *
 * (real is float or double, as the model's dtype). Both return the arg
 * max. The code is evaluation mode: each BatchNorm is folded into the
 * linear layer before it, LayerNorm stays code (its statistics are the
 * sample's own). It allocates nothing, does no I/O, keeps no state and
 * includes no system header: C99 that builds with -ffreestanding and
 * calls only the math functions its activation (and LayerNorm's sqrt)
 * need, and in the fma arithmetic fmaf or fma, declared here.
 *
 * Every layer computes in the order and the arithmetic mlpc's own code
 * does (the linear layer as runtime/kernels.h's mm_xw, each term added
 * as acc + x·w or fma(x, w, acc) as the Ir's arithmetic says; the
 * activations from the same expressions as codegen/emit.c), so without
 * BatchNorm the logits are mlpc's bit for bit; folding rounds
 * differently (docs/inference.md).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "../mlpc.h"

typedef struct {
  const Ir *ir;
  const Model *m;
  const RtNet *net;
  Buf *b;
  int f32;           /* float32 model: real is float                     */
  char *err;
  size_t errlen;
} Inf;

/* The tensor of net with the formatted name; its absence is our bug. */
static const RtTensor *find(const RtNet *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const RtTensor *find(const RtNet *net, const char *fmt, ...) {
  char name[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  for (int i = 0; i < net->ntensors; i++)
    if (!strcmp(net->tensors[i].name, name))
      return &net->tensors[i];
  fprintf(stderr, "mlpc: internal error: no tensor %s (%s:%d)\n", name, __FILE__, __LINE__);
  abort();
}

/* Element i (row-major order of the shape) of a float tensor, as a
   double, wherever its storage keeps it. */
static double at(const RtTensor *t, long i) {
  i = rt_offset(t, i);
  return t->dtype == RT_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

/* Memory for n doubles, or exit. */
static double *doubles(long n) {
  double *p = malloc(sizeof(double) * (size_t)n);
  if (!p) {
    fprintf(stderr, "mlpc: error: out of memory\n");
    exit(1);
  }
  return p;
}

/* ---- the weights ---- */

/* A static const array of n values, each rounded once to the model's
   type and written as a hex float (exact); -1 with err set at a value
   that is not finite. */
static int emit_array(Inf *I, const char *name, const char *what, const double *v, long n) {
  Buf *b = I->b;
  emitf(b, "static const real %s[%ld] = { /* %s */\n", name, n, what);
  for (long i = 0; i < n; i++) {
    double x = I->f32 ? (double)(float)v[i] : v[i];
    if (!isfinite(x)) {
      snprintf(I->err, I->errlen, "%s[%ld] (%s) is %g: only finite weights can be emitted",
               name, i, what, x);
      return -1;
    }
    emitf(b, "%s%a%s,", i % 6 ? " " : "  ", x, I->f32 ? "f" : "");
    if (i % 6 == 5 || i == n - 1)
      emitf(b, "\n");
  }
  emitf(b, "};\n\n");
  return 0;
}

/* BatchNorm k's evaluation transform of feature c, y = (x - mean)·s + beta,
   with s = γ/√(running_var + eps), in double. */
static void bn_terms(Inf *I, int k, int c, double *mean, double *s, double *beta) {
  const RtNet *net = I->net;
  double var = at(find(net, "norm%d.running_var", k), c);
  *mean = at(find(net, "norm%d.running_mean", k), c);
  *s = at(find(net, "norm%d.weight", k), c) * (1 / sqrt(var + I->m->norm.eps));
  *beta = at(find(net, "norm%d.bias", k), c);
}

/* fc{k}'s weight, transposed to (in, out), and bias, with the BatchNorm
   after it (bn, or NULL) folded in: W' = W·s, b' = (b - mean)·s + beta. */
static int emit_linear_weights(Inf *I, const Layer *l, const Layer *bn) {
  int In = l->in, O = l->out, k = l->index;
  const RtTensor *w = find(I->net, "fc%d.weight", k), *bias = find(I->net, "fc%d.bias", k);
  double *wt = doubles((long)In * O), *b = doubles(O);
  for (int o = 0; o < O; o++) {
    double mean = 0, s = 1, beta = 0;
    if (bn)
      bn_terms(I, bn->index, o, &mean, &s, &beta);
    b[o] = (at(bias, o) - mean) * s + beta;
    for (int i = 0; i < In; i++)
      wt[(long)i * O + o] = at(w, (long)o * In + i) * s;
  }
  char name[32], what[96];
  snprintf(name, sizeof name, "fc%d_wt", k);
  snprintf(what, sizeof what, "(%d, %d): fc%d.weight transposed%s", In, O, k,
           bn ? ", norm folded in" : "");
  int rc = emit_array(I, name, what, wt, (long)In * O);
  snprintf(name, sizeof name, "fc%d_bias", k);
  snprintf(what, sizeof what, "(%d): fc%d.bias%s", O, k, bn ? ", norm folded in" : "");
  rc = rc ? rc : emit_array(I, name, what, b, O);
  free(wt);
  free(b);
  return rc;
}

/* LayerNorm k's γ and β, unchanged. */
static int emit_layernorm_weights(Inf *I, const Layer *l) {
  double *v = doubles(l->out);
  int rc = 0;
  static const char *const fields[] = {"weight", "bias"};
  for (int f = 0; f < 2 && !rc; f++) {
    const RtTensor *t = find(I->net, "norm%d.%s", l->index, fields[f]);
    char name[32], what[64];
    for (int c = 0; c < l->out; c++)
      v[c] = at(t, c);
    snprintf(name, sizeof name, "norm%d_%s", l->index, fields[f]);
    snprintf(what, sizeof what, "(%d): norm%d.%s", l->out, l->index, fields[f]);
    rc = emit_array(I, name, what, v, l->out);
  }
  free(v);
  return rc;
}

/* Every layer's weights, in forward order. */
static int emit_weights(Inf *I) {
  const Ir *ir = I->ir;
  emitf(I->b, "/* ---- weights ---- */\n\n");
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i], *next = i + 1 < ir->nlayers ? l + 1 : NULL;
    int rc = 0;
    if (l->kind == L_LINEAR)
      rc = emit_linear_weights(I, l, next && next->kind == L_BATCHNORM ? next : NULL);
    if (l->kind == L_LAYERNORM)
      rc = emit_layernorm_weights(I, l);
    if (rc)
      return -1;
  }
  return 0;
}

/* ---- the layers ---- */

/* fc{k}: y = x·W'ᵀ + b', summed as mm_xw sums (bias first, then the
   inputs in order, zero inputs skipped), in the Ir's arithmetic. */
static void emit_linear(Inf *I, const Layer *l, int folded) {
  int k = l->index, In = l->in, O = l->out;
  const char *mac = I->ir->fma ? "y[o] = FMA(xi, w[o], y[o]);" : "y[o] += xi * w[o];";
  char note[64] = "";
  if (folded)
    snprintf(note, sizeof note, " with norm%d (BatchNorm1d, eval) folded in", k);
  emitf(I->b, "/* fc%d: Linear(%d, %d)%s, x (%d) -> y (%d) */\n", k, In, O, note, In, O);
  emitf(I->b, "static void fc%d_forward(const real *x, real *y) {\n"
        "  for (int o = 0; o < %d; o++)\n    y[o] = fc%d_bias[o];\n"
        "  for (int i = 0; i < %d; i++) {\n"
        "    real xi = x[i];\n    if (xi == 0)\n      continue;\n"
        "    const real *w = fc%d_wt + i * %d;\n"
        "    for (int o = 0; o < %d; o++)\n      %s\n  }\n}\n\n",
        k, O, k, In, k, O, O, mac);
}

/* norm{k}: LayerNorm over the sample's features, in place. */
static void emit_layernorm(Inf *I, const Layer *l) {
  int k = l->index, D = l->out;
  emitf(I->b, "/* norm%d: LayerNorm(%d, eps=%g), in place on v (%d) */\n", k, D,
        I->m->norm.eps, D);
  emitf(I->b, "static void norm%d_forward(real *v) {\n"
        "  double s = 0, var = 0;\n"
        "  for (int c = 0; c < %d; c++)\n    s += v[c];\n"
        "  double mean = s / %d;\n"
        "  for (int c = 0; c < %d; c++)\n    var += (v[c] - mean) * (v[c] - mean);\n"
        "  double rstd = 1 / sqrt(var / %d + %a);\n"
        "  for (int c = 0; c < %d; c++) {\n"
        "    real xh = (real)((v[c] - mean) * rstd);\n"
        "    v[c] = norm%d_weight[c] * xh + norm%d_bias[c];\n  }\n}\n\n",
        k, D, D, D, D, I->m->norm.eps, D, k, k);
}

/* The activation after block k, in place. */
static void emit_act(Inf *I, const Layer *l) {
  const Act *a = &I->m->act;
  int has_param;
  const char *fwd = emit_act_forward(a->type, &has_param);
  const char *name = act_names[a->type];
  emitf(I->b, "/* %s%d: %s, in place on v (%d) */\n", name, l->index, name, l->out);
  if (has_param)
    emitf(I->b, "#define P R(%a) /* %g */\n", a->param, a->param);
  emitf(I->b, "static void %s%d_forward(real *v) {\n"
        "  for (int i = 0; i < %d; i++) {\n    real x = v[i];\n    v[i] = %s;\n  }\n}\n",
        name, l->index, l->out, fwd);
  if (has_param)
    emitf(I->b, "#undef P\n");
  emitf(I->b, "\n");
}

/* The widest layer: the size of each activation buffer. */
static int widest(const Ir *ir) {
  int w = 0;
  for (int i = 0; i < ir->nlayers; i++)
    if (ir->layers[i].out > w)
      w = ir->layers[i].out;
  return w;
}

/* The entry points: the layers in order over two stack buffers. */
static void emit_entries(Inf *I) {
  const Ir *ir = I->ir;
  const Model *m = I->m;
  Buf *b = I->b;
  const char *in = "x", *bufs[2] = {"a", "b"};
  int cur = 1;
  emitf(b, "/* ---- entry points ---- */\n\n"
        "int mlpc_predict(const real x[MLPC_INPUT], real logits[MLPC_OUTPUT]) {\n"
        "  real a[%d], b[%d]; /* activations, the widest layer's size */\n",
        widest(ir), widest(ir));
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (l->kind == L_LINEAR) {
      cur = !cur;
      emitf(b, "  fc%d_forward(%s, %s);\n", l->index, in, bufs[cur]);
    }
    if (l->kind == L_LAYERNORM)
      emitf(b, "  norm%d_forward(%s);\n", l->index, bufs[cur]);
    if (l->kind == L_ACT)
      emitf(b, "  %s%d_forward(%s);\n", act_names[m->act.type], l->index, bufs[cur]);
    in = bufs[cur];
  }
  emitf(b, "  int arg = 0;\n"
        "  for (int k = 1; k < MLPC_OUTPUT; k++)\n"
        "    if (%s[k] > %s[arg])\n      arg = k; /* the first largest, as mlpc counts */\n"
        "  for (int k = 0; logits && k < MLPC_OUTPUT; k++)\n    logits[k] = %s[k];\n"
        "  return arg;\n}\n\n", in, in, in);
  emitf(b, "int mlpc_predict_u8(const unsigned char px[MLPC_INPUT], real logits[MLPC_OUTPUT]) {\n"
        "  real x[MLPC_INPUT];\n"
        "  for (int i = 0; i < MLPC_INPUT; i++)\n    x[i] = (real)px[i] / R(255);\n"
        "  return mlpc_predict(x, logits);\n}\n");
}

/* ---- the files ---- */

/* The math functions behind the macros of codegen/emit.c's prelude; an
   activation expression calls some of them. */
static const struct {
  const char *macro, *fn;
  const char *own; /* runtime/rmath.h's float version, which mlpc computes with */
} maths[] = {
  {"EXP(", "exp", "rm_expf"}, {"LOG(", "log", 0}, {"TANH(", "tanh", "rm_tanhf"}, {"ERF(", "erf", 0},
  {"SQRT(", "sqrt", 0},
};

/* Whether maths[i] is a call of the C library in I's code. */
static int libm_calls(const Inf *I, const char *fwd, size_t i) {
  return strstr(fwd, maths[i].macro) && !(I->f32 && maths[i].own);
}

/* Constants of math.h the expressions use, defined here exactly. */
static const struct {
  const char *name;
  double value;
} consts[] = {{"M_SQRT1_2", M_SQRT1_2}, {"M_2_SQRTPI", M_2_SQRTPI}};

/* The library functions the code calls, as a list: "expf, sqrt". */
static void needs(Inf *I, char *s, size_t len) {
  const char *fwd = emit_act_forward(I->m->act.type, &(int){0});
  snprintf(s, len, "%s", I->ir->fma ? (I->f32 ? "fmaf" : "fma") : "");
  for (size_t i = 0; i < sizeof maths / sizeof maths[0]; i++)
    if (libm_calls(I, fwd, i))
      snprintf(s + strlen(s), len - strlen(s), "%s%s%s", *s ? ", " : "", maths[i].fn,
               I->f32 ? "f" : "");
  if (I->m->norm.type == NORM_LAYER)
    snprintf(s + strlen(s), len - strlen(s), "%ssqrt", *s ? ", " : "");
}

/* In the fma arithmetic, a hosted build for x86 without FMA instructions
   warns: each FMA is then a call to the C library, correct but much
   slower. (Freestanding, every FMA is a call whatever the flags.) */
static const char fma_warning[] =
  "#if __STDC_HOSTED__ && !defined(__FMA__) && (defined(__x86_64__) || defined(__i386__))\n"
  "#warning \"built without FMA instructions: each FMA of the fma arithmetic is a call to "
  "the C library, correct but much slower; build with -march=native (or -mfma)\"\n"
  "#endif\n";

/* real, R(), and declarations of the math the code calls. */
static void emit_prelude(Inf *I) {
  const char *fwd = emit_act_forward(I->m->act.type, &(int){0}), *sfx = I->f32 ? "f" : "";
  const char *real = I->f32 ? "float" : "double";
  emitf(I->b, "typedef %s real;\n#define R(c) ((real)(c))\n", real);
  int own = 0;
  for (size_t i = 0; i < sizeof maths / sizeof maths[0]; i++)
    if (libm_calls(I, fwd, i))
      emitf(I->b, "%s %s%s(%s);\n#define %.*s %s%s\n", real, maths[i].fn, sfx, real,
            (int)strlen(maths[i].macro) - 1, maths[i].macro, maths[i].fn, sfx);
    else if (strstr(fwd, maths[i].macro)) {
      if (!own++)
        emitf(I->b, "\n%s\n", emit_rmath());
      emitf(I->b, "#define %.*s %s\n", (int)strlen(maths[i].macro) - 1, maths[i].macro,
            maths[i].own);
    }
  if (I->m->norm.type == NORM_LAYER)
    emitf(I->b, "double sqrt(double);\n");
  if (I->ir->fma)
    emitf(I->b, "%s fma%s(%s, %s, %s);\n#define FMA fma%s\n%s", real, sfx, real, real, real,
          sfx, fma_warning);
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (strstr(fwd, consts[i].name))
      emitf(I->b, "#define %s %a\n", consts[i].name, consts[i].value);
  emitf(I->b, "\n");
}

/* The model in one line: "bn_relu: 784-128-10, norm batchnorm, relu, float32, fma
   arithmetic". */
static void describe(Inf *I) {
  const Model *m = I->m;
  emitf(I->b, "%s: %d", emit_comment_name(m->name), m->input);
  for (int k = 0; k < m->nhidden; k++)
    emitf(I->b, "-%d", m->hidden[k]);
  emitf(I->b, "-%d, norm %s, %s, %s, %s arithmetic", m->output, norm_names[m->norm.type],
        act_names[m->act.type], dtype_names[m->dtype], I->ir->fma ? "fma" : "strict");
}

/* The header: sizes and the two entry points. */
static void emit_header(Inf *I) {
  const char *real = I->f32 ? "float" : "double";
  emitf(I->b, "/* Inference for ");
  describe(I);
  emitf(I->b, ". Generated by mlpc. */\n"
        "#ifndef MLPC_PREDICT_H\n#define MLPC_PREDICT_H\n\n"
        "#define MLPC_INPUT %d  /* features: pixels / 255, row-major */\n"
        "#define MLPC_OUTPUT %d  /* classes */\n\n"
        "/* Classifies x: writes the logits (unless logits is null) and returns\n"
        "   the class with the largest logit. */\n"
        "int mlpc_predict(const %s x[MLPC_INPUT], %s logits[MLPC_OUTPUT]);\n\n"
        "/* The same from pixel bytes 0..255, scaled to byte / 255 first. */\n"
        "int mlpc_predict_u8(const unsigned char px[MLPC_INPUT], %s logits[MLPC_OUTPUT]);\n\n"
        "#endif\n", I->m->input, I->m->output, real, real, real);
}

/* What the banner says of the arithmetic: how a linear layer adds a term. */
static const char *arith_note(const Inf *I) {
  if (!I->ir->fma)
    return " * The linear layers add each term as acc + x*w, rounded twice (mlpc's\n"
           " * strict arithmetic).\n";
  return I->f32 ? " * The linear layers add each term as fmaf(x, w, acc), rounded once (mlpc's\n"
                  " * fma arithmetic); -march=native or -mfma makes it one instruction.\n"
                : " * The linear layers add each term as fma(x, w, acc), rounded once (mlpc's\n"
                  " * fma arithmetic); -march=native or -mfma makes it one instruction.\n";
}

/* The comment at the top of the source. */
static void emit_banner(Inf *I, const char *hname) {
  char fns[64], calls[96] = "Calls no library function";
  needs(I, fns, sizeof fns);
  if (*fns)
    snprintf(calls, sizeof calls, "Calls only %s (link with -lm)", fns);
  emitf(I->b, "/*\n * Inference for ");
  describe(I);
  emitf(I->b, ".\n * Generated by mlpc from trained weights, in evaluation mode%s.\n"
        " *\n * C99: no allocation, no I/O, no global state, no header but %s.\n"
        "%s * %s.\n * Build it with contraction off to keep mlpc's rounding, e.g.\n"
        " * cc -std=c99 -O2 (not -ffast-math).\n */\n"
        "#include \"%s\"\n\n",
        I->m->norm.type == NORM_BATCH
            ? ";\n * each BatchNorm is folded into the linear layer before it" : "",
        hname, arith_note(I), calls, hname);
}

/* Every layer's forward function, in order. */
static void emit_layers(Inf *I) {
  const Ir *ir = I->ir;
  emitf(I->b, "/* ---- layers ---- */\n\n");
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (l->kind == L_LINEAR)
      emit_linear(I, l, i + 1 < ir->nlayers && l[1].kind == L_BATCHNORM);
    if (l->kind == L_LAYERNORM)
      emit_layernorm(I, l);
    if (l->kind == L_ACT)
      emit_act(I, l);
  }
}

int emit_inference(const Ir *ir, const RtNet *net, const char *hname, Buf *c, Buf *h,
                   char *err, size_t errlen) {
  Inf I = {ir, ir->m, net, h, ir->m->dtype == DT_F32, err, errlen};
  if (strpbrk(hname, "\"\\\n")) {
    snprintf(err, errlen, "%s: a header name cannot hold '\"', '\\' or a newline", hname);
    return -1;
  }
  emit_header(&I);
  I.b = c;
  emit_banner(&I, hname);
  emit_prelude(&I);
  if (emit_weights(&I))
    return -1;
  emit_layers(&I);
  emit_entries(&I);
  if (c->oom || h->oom)
    return snprintf(err, errlen, "out of memory"), -1;
  return 0;
}
