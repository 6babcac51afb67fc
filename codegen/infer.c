/*
 * infer.c — a trained model as standalone inference C: one source file
 * with the weights as static const arrays, and its header, declaring
 *
 *   int mlpc_predict(const real x[IN], real logits[OUT]);
 *   int mlpc_predict_u8(const unsigned char px[IN], real logits[OUT]);
 *
 * (real is float or double, as the model's dtype). Both return the arg
 * max. The code is evaluation mode: a BatchNorm right after a linear
 * layer is folded into it (any other computes its evaluation transform),
 * LayerNorm stays code (its statistics are the sample's own), dropout is
 * the identity. It allocates nothing, does no I/O, keeps no state and
 * includes no system header: C99 that builds with -ffreestanding and
 * calls only the math functions its activations (and LayerNorm's sqrt)
 * need, and in the fma arithmetic fmaf or fma, declared here.
 *
 * This file is the driver; each layer kind's code comes from its unit
 * (codegen/gen.h). Every layer computes in the order and the arithmetic
 * mlpc's own code does (the linear layer as rt/kernels.h's mm_xw,
 * each term added as acc + x·w or fma(x, w, acc) as the Ir's arithmetic
 * says; the activations from rt/acts.h's formulas), so without
 * folding the logits are mlpc's bit for bit; folding rounds differently
 * (docs/inference.md).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"

/* ---- the weights ---- */

/* Every layer's weights, in forward order. */
static int emit_weights(Inf *I) {
  const Ir *ir = I->ir;
  emitf(I->b, "/* ---- weights ---- */\n\n");
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    const LayerUnit *u = layer_units[l->kind];
    if (u->infer_weights && u->infer_weights(I, l))
      return -1;
  }
  return 0;
}

/* Whether layer i has a forward function in inference C. */
static int has_code(const Ir *ir, int i) {
  const Layer *l = &ir->layers[i];
  return layer_units[l->kind]->infer_forward && !inf_folded(ir, i);
}

/* The widest layer: the size of each activation buffer. */
static int widest(const Ir *ir) {
  int w = 0;
  for (int i = 0; i < ir->nlayers; i++)
    if (ir->layers[i].out > w)
      w = ir->layers[i].out;
  return w;
}

/* The two activation buffers: on the stack up to INF_STACK_BYTES in all,
   else static (mlpc_predict is then not reentrant; FILE.h says so). */
#define INF_STACK_BYTES (256 * 1024)
static int on_stack(const Inf *I) {
  return 2 * (long)widest(I->ir) * (I->f32 ? 4 : 8) <= INF_STACK_BYTES;
}

/* The entry points: the layers in order over the two buffers; an
   in-place layer first works on a copy of x. */
static void emit_entries(Inf *I) {
  const Ir *ir = I->ir;
  Buf *b = I->b;
  const char *in = "x", *bufs[2] = {"a", "b"};
  int cur = 1;
  emitf(b, "/* ---- entry points ---- */\n\n"
        "int mlpc_predict(const real x[MLPC_INPUT], real logits[MLPC_OUTPUT]) {\n");
  gen_commented(b, "  ", "%sreal a[%d], b[%d];", on_stack(I) ? "activations, the widest "
                "layer's size" : "activations, the widest layer's size; static: too large "
                "for a stack, so not reentrant", on_stack(I) ? "" : "static ", widest(ir),
                widest(ir));
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (!has_code(ir, i))
      continue;
    if (!layer_units[l->kind]->out_of_place && !strcmp(in, "x"))
      emitf(b, "  for (int i = 0; i < MLPC_INPUT; i++)\n    b[i] = x[i];\n");
    if (layer_units[l->kind]->out_of_place) {
      cur = !cur;
      emitf(b, "  %s_forward(%s, %s);\n", l->cname, in, bufs[cur]);
    } else
      emitf(b, "  %s_forward(%s);\n", l->cname, bufs[cur]);
    in = bufs[cur];
  }
  emitf(b, "  int arg = 0;\n"
        "  for (int k = 1; k < MLPC_OUTPUT; k++)\n"
        "    if (%s[k] > %s[arg])\n      arg = k; /* the first largest, as mlpc counts */\n"
        "  for (int k = 0; logits && k < MLPC_OUTPUT; k++)\n    logits[k] = %s[k];\n"
        "  return arg;\n}\n\n", in, in, in);
  emitf(b, "int mlpc_predict_u8(const unsigned char px[MLPC_INPUT], real logits[MLPC_OUTPUT]) {\n"
        "  %sreal x[MLPC_INPUT];\n"
        "  for (int i = 0; i < MLPC_INPUT; i++)\n    x[i] = (real)px[i] / R(255);\n"
        "  return mlpc_predict(x, logits);\n}\n", on_stack(I) ? "" : "static ");
}

/* ---- the files ---- */

/* The math functions rt/acts.h's formulas call. */
static const struct {
  const char *call, *fn;
  const char *own;  /* rt/rmath.h's float version, which mlpc computes with */
  const char *omit; /* the macro that leaves it out of rmath.h */
} maths[] = {
  {"mm_exp(", "exp", "rm_expf", "RM_NO_EXPF"},
  {"mm_tanh(", "tanh", "rm_tanhf", "RM_NO_TANHF"},
  {"ERF(", "erf", 0, 0},
};

/* Constants of math.h the formulas use, defined here exactly. */
static const struct {
  const char *name;
  double value;
} consts[] = {{"M_SQRT1_2", M_SQRT1_2}, {"M_2_SQRTPI", M_2_SQRTPI}};

/* Whether the model's activations use text (a call or a constant). */
static int uses(const Inf *I, const char *text) {
  for (int i = 0; i < I->ir->nlayers; i++) {
    const Layer *l = &I->ir->layers[i];
    if (l->kind == L_ACT && strstr(act_forward_text(l->spec.act.type), text))
      return 1;
  }
  return 0;
}

/* Whether a layer unit's inference code calls fn ("sqrt"). */
static int unit_needs(const Inf *I, const char *fn) {
  for (int i = 0; i < I->ir->nlayers; i++) {
    const Layer *l = &I->ir->layers[i];
    const LayerUnit *u = layer_units[l->kind];
    if (has_code(I->ir, i) && u->infer_needs && !strcmp(u->infer_needs(I, l), fn))
      return 1;
  }
  return 0;
}

/* Whether maths[i] is a call of the C library in I's code. */
static int libm_calls(const Inf *I, size_t i) {
  return uses(I, maths[i].call) && !(I->f32 && maths[i].own);
}

/* The library functions the code calls, as a list: "expf, sqrt". */
static void needs(Inf *I, char *s, size_t len) {
  snprintf(s, len, "%s", I->ir->fma ? (I->f32 ? "fmaf" : "fma") : "");
  for (size_t i = 0; i < sizeof maths / sizeof maths[0]; i++)
    if (libm_calls(I, i))
      snprintf(s + strlen(s), len - strlen(s), "%s%s%s", *s ? ", " : "", maths[i].fn,
               I->f32 ? "f" : "");
  if (unit_needs(I, "sqrt"))
    snprintf(s + strlen(s), len - strlen(s), "%ssqrt", *s ? ", " : "");
}

/* In the fma arithmetic, a hosted build for x86 without FMA instructions
   warns: each FMA is then a call to the C library, correct but much
   slower. (Freestanding, every FMA is a call whatever the flags.) */
static const char fma_warning[] =
  "#if __STDC_HOSTED__ && !defined(__FMA__) && (defined(__x86_64__) || defined(__i386__))\n"
  "#warning \"built without FMA instructions: each FMA of the fma arithmetic is a call to \\\n"
  "the C library, correct but much slower; build with -march=native (or -mfma)\"\n"
  "#endif\n";

/* real, R(), and declarations of the math the code calls. */
static void emit_prelude(Inf *I) {
  const char *sfx = I->f32 ? "f" : "", *real = I->f32 ? "float" : "double";
  emitf(I->b, "typedef %s real;\n#define R(c) ((real)(c))\n", real);
  int own = 0;
  for (size_t i = 0; i < sizeof maths / sizeof maths[0]; i++)
    if (libm_calls(I, i))
      emitf(I->b, "%s %s%s(%s);\n#define %.*s %s%s\n", real, maths[i].fn, sfx, real,
            (int)strlen(maths[i].call) - 1, maths[i].call, maths[i].fn, sfx);
    else if (uses(I, maths[i].call)) {
      if (!own++) { /* rmath.h, less the functions not called (unused, a warning) */
        for (size_t j = 0; j < sizeof maths / sizeof maths[0]; j++)
          if (maths[j].own && !uses(I, maths[j].call))
            emitf(I->b, "#define %s\n", maths[j].omit);
        emitf(I->b, "\n%s\n", emit_rmath());
      }
      emitf(I->b, "#define %.*s %s\n", (int)strlen(maths[i].call) - 1, maths[i].call,
            maths[i].own);
    }
  if (unit_needs(I, "sqrt"))
    emitf(I->b, "double sqrt(double);\n");
  if (I->ir->fma)
    emitf(I->b, "%s fma%s(%s, %s, %s);\n#define FMA fma%s\n%s", real, sfx, real, real, real,
          sfx, fma_warning);
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (uses(I, consts[i].name))
      emitf(I->b, "#define %s %a\n", consts[i].name, consts[i].value);
  emitf(I->b, "\n");
}

/* "Inference for " the model in one line: "bn_relu: 784-128-10, norm
   batchnorm, relu, float32, fma arithmetic", then end, into s. */
static void describe(Inf *I, const char *end, char *s, size_t len) {
  char layers[1024];
  ir_describe(I->ir, layers, sizeof layers);
  snprintf(s, len, "Inference for %s: %s, %s, %s arithmetic%s", emit_comment_name(I->m->name),
           layers, dtype_names[I->m->dtype], I->ir->fma ? "fma" : "strict", end);
}

/* The header: sizes and the two entry points. */
static void emit_header(Inf *I) {
  const char *real = I->f32 ? "float" : "double";
  const int *sh = I->m->shape;
  char input[96];
  if (sh[0])
    snprintf(input, sizeof input, "images (%d, %d, %d): channels, then rows, then columns",
             sh[0], sh[1], sh[2]);
  else
    snprintf(input, sizeof input, "features, row-major");
  char text[1400];
  describe(I, ". Generated by mlpc.", text, sizeof text);
  gen_comment(I->b, 0, text);
  emitf(I->b, "#ifndef MLPC_PREDICT_H\n#define MLPC_PREDICT_H\n\n"
        "#define MLPC_INPUT %d  /* pixels / 255: %s */\n"
        "#define MLPC_OUTPUT %d  /* classes */\n\n"
        "/* Classifies x: writes the logits (unless logits is null) and returns\n"
        "   the class with the largest logit. %s */\n"
        "int mlpc_predict(const %s x[MLPC_INPUT], %s logits[MLPC_OUTPUT]);\n\n"
        "/* The same from pixel bytes 0..255, scaled to byte / 255 first. */\n"
        "int mlpc_predict_u8(const unsigned char px[MLPC_INPUT], %s logits[MLPC_OUTPUT]);\n\n"
        "#endif\n", I->m->input, input, I->m->output,
        on_stack(I) ? "Uses two buffers of the widest layer's size on the\n   stack."
                    : "Its buffers are static, too large for a stack: not\n   reentrant.",
        real, real, real);
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

/* Whether a BatchNorm is folded into a linear layer. */
static int folds(const Ir *ir) {
  for (int i = 0; i < ir->nlayers; i++)
    if (inf_folded(ir, i))
      return 1;
  return 0;
}

/* The comment at the top of the source. */
static void emit_banner(Inf *I, const char *hname) {
  char fns[64], calls[96] = "Calls no library function";
  needs(I, fns, sizeof fns);
  if (*fns)
    snprintf(calls, sizeof calls, "Calls only %s (link with -lm)", fns);
  char text[1400];
  describe(I, ".", text, sizeof text);
  emitf(I->b, "/*\n");
  gen_wrap(I->b, " * ", " * ", text);
  emitf(I->b, "\n * Generated by mlpc from trained weights, in evaluation mode%s.\n"
        " *\n * C99: no allocation, no I/O, no global state, no header but %s.\n"
        "%s * %s.\n * Build it with contraction off to keep mlpc's rounding, e.g.\n"
        " * cc -std=c99 -O2 (not -ffast-math); clang takes the pragma below.\n */\n"
        "#include \"%s\"\n\n"
        "#ifdef __clang__ /* gcc ignores it (-std=c99 turns contraction off) */\n"
        "#pragma STDC FP_CONTRACT OFF\n#endif\n\n",
        folds(I->ir) ? ";\n * each BatchNorm right after a linear layer is folded into it" : "",
        hname, arith_note(I), calls, hname);
}

/* Every layer's forward function, in order. */
static void emit_layers(Inf *I) {
  const Ir *ir = I->ir;
  emitf(I->b, "/* ---- layers ---- */\n\n");
  for (int i = 0; i < ir->nlayers; i++)
    if (has_code(ir, i))
      layer_units[ir->layers[i].kind]->infer_forward(I, &ir->layers[i]);
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
