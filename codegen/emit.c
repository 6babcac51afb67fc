/*
 * emit.c — C source from the lowered model.
 *
 * Planning first: the tensors of the model (parameters, buffers,
 * gradients, optimizer state) in PyTorch's order. Then the code, all
 * through emitf: tensors as static arrays with constant sizes, one
 * forward and one backward function per layer side by side, the
 * optimizer, the training step and evaluation, and the RtNet table the
 * runtime drives it through (runtime/net.h).
 *
 * The output is deterministic: the same model gives the same bytes.
 * Numbers are written as hex floats, so every compiler reads back exactly
 * the double the model file gave.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "../mlpc.h"
#include "embedded.h"

/* ---- the writer ---- */

/* Appends printf-style text to b, unless b ran out of memory before. */
void emitf(Buf *b, const char *fmt, ...) {
  va_list ap;
  while (!b->oom) {
    va_start(ap, fmt);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->buf ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
      abort(); /* unreachable: formats are ours */
    if ((size_t)n < room) {
      b->len += n;
      return;
    }
    size_t cap = (b->cap + n + 1) * 2;
    char *p = fe_realloc(b->buf, cap);
    if (p)
      b->buf = p, b->cap = cap;
    b->oom = !p;
  }
}

/* Appends source text, dropping its local #include "..." lines (the
   headers they name are pasted already). */
static void paste(Buf *b, const char *text) {
  while (*text) {
    const char *end = strchr(text, '\n');
    size_t len = end ? (size_t)(end - text + 1) : strlen(text);
    if (strncmp(text, "#include \"", 10))
      emitf(b, "%.*s", (int)len, text);
    text += len;
  }
}

/* A string as a C literal that reads back as exactly s, whatever it holds:
   quotes and backslashes escaped, '?' too (so no trigraph such as ??/ can
   form under -std=c11), every byte outside printable ASCII in octal. */
static void emit_cstring(Buf *b, const char *s) {
  emitf(b, "\"");
  for (const unsigned char *c = (const unsigned char *)s; *c; c++)
    if (*c == '"' || *c == '\\' || *c == '?')
      emitf(b, "\\%c", *c);
    else if (*c < 32 || *c > 126)
      emitf(b, "\\%03o", *c);
    else
      emitf(b, "%c", *c);
  emitf(b, "\"");
}

/* A model name for a comment: the characters a checked name may hold
   ([A-Za-z0-9_.-]) as they are, any other as '_', so that nothing such
   as a closing comment can reach the code. */
const char *emit_comment_name(const char *s) {
  static char out[64];
  size_t n = 0;
  for (; *s && n < sizeof out - 1; s++)
    out[n++] = strchr("_.-", *s) || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
               (*s >= '0' && *s <= '9') ? *s : '_';
  out[n] = 0;
  return out;
}

/* A double as C source that reads back exactly: "0x1.47ae147ae147bp-7". */
static const char *num(double v) {
  static char ring[8][40];
  static int next;
  char *s = ring[next++ % 8];
  snprintf(s, sizeof ring[0], "%a", v);
  return s;
}

/* ---- planning: the tensors ---- */

/* Formats a generated name; names are short by construction (MAX_HIDDEN
   bounds the block numbers), so truncation is a bug of ours. */
static void fmt_name(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt_name(char *dst, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= len) {
    fprintf(stderr, "mlpc: internal error: name '%s' too long (%s:%d)\n", dst, __FILE__,
            __LINE__);
    abort();
  }
}

typedef struct {
  char cname[40];   /* C identifier: fc1_weight                          */
  char tname[56];   /* PyTorch's name: fc1.weight                        */
  int kind;         /* RT_WEIGHT ...                                     */
  int i64;          /* a counter                                         */
  int shape[2];     /* shape[1] == 0 for a vector                        */
  int fan_in, fan_out;
  int trained;      /* has a gradient and optimizer state                */
  int transposed;   /* stored as (shape[1], shape[0]): linear weights    */
} Tensor;

typedef struct {
  const Ir *ir;
  const Model *m;
  Buf *b;
  size_t bytes;     /* static storage declared so far                   */
  int ntensors;
  Tensor t[16 * (MAX_HIDDEN + 1)];
} Gen;

/* Adds one tensor: C name from the layer prefix, PyTorch name likewise. */
static Tensor *tensor(Gen *g, const char *prefix, const char *field, int kind,
                      int rows, int cols) {
  Tensor *t = &g->t[g->ntensors++];
  memset(t, 0, sizeof *t);
  fmt_name(t->cname, sizeof t->cname, "%s_%s", prefix, field);
  fmt_name(t->tname, sizeof t->tname, "%s.%s", prefix, field);
  t->kind = kind;
  t->shape[0] = rows;
  t->shape[1] = cols;
  t->trained = kind <= RT_BETA;
  return t;
}

/* The C prefix of a layer: fc1, norm1, relu1, loss. */
static const char *prefix(const Gen *g, const Layer *l) {
  static char ring[4][32];
  static int next;
  char *s = ring[next++ % 4];
  switch (l->kind) {
  case L_LINEAR: snprintf(s, 32, "fc%d", l->index); break;
  case L_BATCHNORM:
  case L_LAYERNORM: snprintf(s, 32, "norm%d", l->index); break;
  case L_ACT: snprintf(s, 32, "%s%d", act_names[g->m->act.type], l->index); break;
  default: snprintf(s, 32, "loss");
  }
  return s;
}

/* The parameters and buffers of each layer, in PyTorch's module order. */
static void plan_layer_tensors(Gen *g, const Layer *l) {
  const char *p = prefix(g, l);
  if (l->kind == L_LINEAR) {
    Tensor *w = tensor(g, p, "weight", RT_WEIGHT, l->out, l->in);
    Tensor *b = tensor(g, p, "bias", RT_BIAS, l->out, 0);
    w->transposed = 1; /* wt (in, out): runtime/kernels.h */
    w->fan_in = b->fan_in = l->in;
    w->fan_out = b->fan_out = l->out;
  }
  if (l->kind == L_BATCHNORM || l->kind == L_LAYERNORM) {
    tensor(g, p, "weight", RT_GAMMA, l->out, 0);
    tensor(g, p, "bias", RT_BETA, l->out, 0);
  }
  if (l->kind == L_BATCHNORM) {
    tensor(g, p, "running_mean", RT_BUF_ZERO, l->out, 0);
    tensor(g, p, "running_var", RT_BUF_ONE, l->out, 0);
    tensor(g, p, "num_batches_tracked", RT_BUF_ZERO, 1, 0)->i64 = 1;
  }
}

/* The optimizer state each trained tensor carries. */
static int opt_state_fields(const Optim *o, const char *fields[3]) {
  int n = 0;
  if (o->type == OPT_SGD && o->momentum > 0)
    fields[n++] = "momentum_buffer";
  if (o->type == OPT_RMSPROP) {
    fields[n++] = "square_avg";
    if (o->centered)
      fields[n++] = "grad_avg";
    if (o->momentum > 0)
      fields[n++] = "momentum_buffer";
  }
  if (o->type == OPT_ADAM || o->type == OPT_ADAMW) {
    fields[n++] = "exp_avg";
    fields[n++] = "exp_avg_sq";
  }
  return n;
}

/* Gradients and optimizer state for every trained tensor, then the step. */
static void plan_state(Gen *g) {
  int nparams = g->ntensors;
  const char *fields[3];
  int nf = opt_state_fields(&g->m->opt, fields);
  for (int i = 0; i < nparams; i++) {
    if (!g->t[i].trained)
      continue;
    Tensor p = g->t[i];
    Tensor *d = tensor(g, p.cname, "grad", RT_GRAD, p.shape[0], p.shape[1]);
    fmt_name(d->cname, sizeof d->cname, "d%s", p.cname);
    fmt_name(d->tname, sizeof d->tname, "%s.grad", p.tname);
    d->transposed = p.transposed;
    for (int f = 0; f < nf; f++) {
      Tensor *s = tensor(g, p.cname, fields[f], RT_STATE, p.shape[0], p.shape[1]);
      fmt_name(s->tname, sizeof s->tname, "%s.%s", p.tname, fields[f]);
      s->transposed = p.transposed;
    }
  }
  Tensor *step = tensor(g, "optimizer", "step", RT_STATE, 1, 0);
  step->i64 = 1;
}

/* Plans every tensor of the model. */
static void plan(Gen *g) {
  for (int i = 0; i < g->ir->nlayers; i++)
    plan_layer_tensors(g, &g->ir->layers[i]);
  plan_state(g);
}

/* ---- declarations ---- */

static long numel(const Tensor *t) {
  return t->shape[1] ? (long)t->shape[0] * t->shape[1] : t->shape[0];
}

/* The shape as a comment: "(128, 784)" or "(128)". */
static const char *shape_str(const Tensor *t) {
  static char s[32];
  if (t->shape[1])
    snprintf(s, sizeof s, "(%d, %d)", t->shape[0], t->shape[1]);
  else
    snprintf(s, sizeof s, "(%d)", t->shape[0]);
  return s;
}

/* Counts n elements of a real (is_real) or 8-byte type as declared. */
static void count(Gen *g, size_t n, int is_real) {
  g->bytes += n * (is_real && g->m->dtype == DT_F32 ? 4 : 8);
}

/* Every tensor as a static array. */
static void emit_tensor_decls(Gen *g) {
  emitf(g->b, "/* ---- tensors ---- */\n\n");
  for (int i = 0; i < g->ntensors; i++) {
    const Tensor *t = &g->t[i];
    emitf(g->b, "static %s %s[%ld]; /* %s %s%s */\n", t->i64 ? "long long" : "real",
          t->cname, numel(t), shape_str(t), t->tname,
          t->transposed ? ", stored transposed" : "");
    count(g, numel(t), !t->i64);
  }
  emitf(g->b, "\n");
}

/* The activations between layers: each layer's output and its gradient. */
static void emit_activation_decls(Gen *g) {
  const Ir *ir = g->ir;
  size_t B = ir->m->batch_size;
  emitf(g->b, "static real input[B * %d]; /* (B, %d) pixels / 255 */\n",
        ir->m->input, ir->m->input);
  count(g, B * ir->m->input, 1);
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    const char *p = prefix(g, l);
    if (l->kind == L_LOSS) {
      emitf(g->b, "static real loss_lse[B]; /* (B) logsumexp of each row */\n"
            "static real loss_exp[B * %d]; /* (B, %d) scratch: exponentials */\n",
            l->out, l->out);
      count(g, B + B * l->out, 1);
      continue;
    }
    emitf(g->b, "static real %s_out[B * %d], d%s_out[B * %d]; /* (B, %d) */\n",
          p, l->out, p, l->out, l->out);
    count(g, 2 * B * l->out, 1);
    if (l->kind == L_BATCHNORM) {
      emitf(g->b, "static real %s_xhat[B * %d]; /* (B, %d) */\n"
            "static double %s_rstd[%d]; /* (%d) 1/sqrt(var + eps) */\n"
            "static double %s_mean[%d], %s_var[%d]; /* (%d) of the batch, or running */\n"
            "static double %s_sdy[%d], %s_sdyx[%d], %s_k[%d]; /* (%d) sums of dy, dy*xhat */\n",
            p, l->out, l->out, p, l->out, l->out, p, l->out, p, l->out, l->out, p, l->out, p,
            l->out, p, l->out, l->out);
      count(g, B * l->out, 1), count(g, 6 * (size_t)l->out, 0);
    }
    if (l->kind == L_LAYERNORM) {
      emitf(g->b, "static real %s_xhat[B * %d]; /* (B, %d) */\n"
            "static double %s_rstd[B]; /* (B) 1/sqrt(var + eps) */\n",
            p, l->out, l->out, p);
      count(g, B * l->out, 1), count(g, B, 0);
    }
  }
  emitf(g->b, "\n");
}

/* ---- layers: forward and backward side by side ---- */

typedef struct {
  Gen *g;
  const Layer *l;
  const char *p;     /* this layer's prefix                              */
  const char *in;    /* the input buffer: "input" or "fc1_out"           */
  int first;         /* the input is the model's: no gradient for it     */
} Ctx;

/* Whether the optimizer is plain SGD (no momentum, no weight decay),
   whose update of a linear weight fuses into the weight's gradient
   (runtime/kernels.h's mm_dw_sgd): a training step then passes its
   backward functions step = 1 and leaves those weights out of
   optimizer_update. */
static int fused_sgd(const Model *m) {
  return m->opt.type == OPT_SGD && m->opt.momentum == 0 && m->opt.weight_decay == 0;
}

/* linear: y = x·Wᵀ + b, with W stored transposed (runtime/kernels.h). */
static void emit_linear(Ctx *c) {
  Buf *b = c->g->b;
  const char *p = c->p;
  int I = c->l->in, O = c->l->out;
  emitf(b, "/* %s: Linear(%d, %d), (B, %d) -> (B, %d) */\n", p, I, O, I, O);
  emitf(b, "static void %s_forward(int n) {\n"
        "  mm_xw(n, %d, %d, %s, %s_weight, %s_bias, %s_out);\n}\n\n",
        p, O, I, c->in, p, p, p);
  int fused = fused_sgd(c->g->m);
  if (fused)
    emitf(b, "/* With step, also the weight's SGD update, fused (after dx, which\n"
          "   reads the weight as it was). */\n");
  emitf(b, "static void %s_backward(int n%s) {\n", p, fused ? ", int step" : "");
  if (!c->first)
    emitf(b, "  mm_dx(n, %d, %d, d%s_out, %s_weight, d%s);\n", O, I, p, p, c->in);
  if (fused)
    emitf(b, "  if (step)\n"
          "    mm_dw_sgd(n, %d, %d, d%s_out, %s, d%s_weight, %s_weight, R(%s)); /* -lr */\n"
          "  else\n  ", O, I, p, c->in, p, p, num(-c->g->m->opt.lr));
  emitf(b, "  mm_dw(n, %d, %d, d%s_out, %s, d%s_weight);\n"
        "  mm_db(n, %d, d%s_out, d%s_bias);\n}\n\n",
        O, I, p, c->in, p, O, p, p);
}

/* BatchNorm1d: per feature over the batch; batch statistics in training
   (biased variance), running statistics in evaluation. The arithmetic is
   kernels.h's bn_forward and bn_backward, which tcc's code calls compiled
   by gcc. */
static void emit_batchnorm(Ctx *c) {
  Buf *b = c->g->b;
  const Norm *nm = &c->g->m->norm;
  const char *p = c->p, *x = c->in;
  int C = c->l->out;
  emitf(b, "/* %s: BatchNorm1d(%d, eps=%g), (B, %d) -> (B, %d) */\n", p, C, nm->eps, C, C);
  emitf(b, "static void %s_forward(int n, int train) {\n"
        "  if (train)\n    %s_num_batches_tracked[0]++;\n", p, p);
  if (nm->cumulative)
    emitf(b, "  double m = 1.0 / %s_num_batches_tracked[0]; /* cumulative average */\n", p);
  else
    emitf(b, "  double m = %s; /* momentum %g */\n", num(nm->momentum), nm->momentum);
  emitf(b, "  bn_forward(n, %d, train, m, %s, %s, %s_weight, %s_bias, %s_running_mean,\n"
        "             %s_running_var, %s_mean, %s_var, %s_rstd, %s_xhat, %s_out);\n}\n\n",
        C, num(nm->eps), x, p, p, p, p, p, p, p, p, p);
  emitf(b, "static void %s_backward(int n) {\n"
        "  bn_backward(n, %d, d%s_out, %s_xhat, %s_weight, %s_rstd, %s_sdy, %s_sdyx, %s_k,\n"
        "              d%s_weight, d%s_bias, d%s);\n}\n\n",
        p, C, p, p, p, p, p, p, p, p, p, x);
}

/* LayerNorm: per row over its features; the same in training and eval. */
static void emit_layernorm(Ctx *c) {
  Buf *b = c->g->b;
  const char *p = c->p, *x = c->in;
  int D = c->l->out;
  emitf(b, "/* %s: LayerNorm(%d, eps=%g), (B, %d) -> (B, %d) */\n", p, D,
        c->g->m->norm.eps, D, D);
  emitf(b, "static void %s_forward(int n, int train) {\n"
        "  (void)train;\n"
        "  for (int r = 0; r < n; r++) {\n"
        "    const real *xr = %s + r * %d;\n"
        "    double s = 0, v = 0;\n"
        "    for (int c = 0; c < %d; c++)\n      s += xr[c];\n"
        "    double mean = s / %d;\n"
        "    for (int c = 0; c < %d; c++)\n      v += (xr[c] - mean) * (xr[c] - mean);\n"
        "    double rstd = 1 / sqrt(v / %d + %s);\n    %s_rstd[r] = rstd;\n"
        "    for (int c = 0; c < %d; c++) {\n"
        "      real xh = (real)((xr[c] - mean) * rstd);\n"
        "      %s_xhat[r * %d + c] = xh;\n"
        "      %s_out[r * %d + c] = %s_weight[c] * xh + %s_bias[c];\n"
        "    }\n  }\n}\n\n",
        p, x, D, D, D, D, D, num(c->g->m->norm.eps), p, D, p, D, p, D, p, p);
  emitf(b, "static void %s_backward(int n) {\n"
        "  for (int c = 0; c < %d; c++)\n    d%s_weight[c] = d%s_bias[c] = 0;\n"
        "  for (int r = 0; r < n; r++) {\n"
        "    const real *dy = d%s_out + r * %d, *xh = %s_xhat + r * %d;\n"
        "    double sg = 0, sgx = 0;\n"
        "    for (int c = 0; c < %d; c++) {\n"
        "      d%s_weight[c] += dy[c] * xh[c];\n      d%s_bias[c] += dy[c];\n"
        "      double g = (double)%s_weight[c] * dy[c];\n"
        "      sg += g;\n      sgx += g * xh[c];\n    }\n",
        p, D, p, p, p, D, p, D, D, p, p, p);
  if (!c->first)
    emitf(b, "    for (int c = 0; c < %d; c++)\n"
          "      d%s[r * %d + c] = (real)((%d * ((double)%s_weight[c] * dy[c]) - sg"
          " - xh[c] * sgx) * %s_rstd[r] / %d);\n",
          D, x, D, D, p, p, D);
  emitf(b, "  }\n}\n\n");
}

/* Activations: y from x, and dx from x, y and the upstream gradient g,
   as runtime/kernels.h's act_NAME and act_NAME_back compute them (the
   text is their comment in the generated code, and inference C's code).
   P is the activation's parameter (slope, alpha). For the health figures
   (docs/health.md): sat, whether a value is saturated, and flat, whether
   a unit is flat on one sample (dead when flat on every sample; it may
   read sat); NULL where the activation does not define them. */
typedef struct {
  const char *fwd, *bwd;
  const char *sat, *flat;
} ActCode;

static const ActCode act_code[NACTS] = {
  [ACT_TANH] = {"TANH(x)", "g * (R(1) - y * y)",
                .sat = "y > R(0.97) || y < R(-0.97)", .flat = "sat"},
  [ACT_RELU] = {"x < 0 ? R(0) : x", "x <= 0 ? R(0) : g", .flat = "y == 0"},
  [ACT_LEAKY] = {"x > 0 ? x : P * x", "x > 0 ? g : g * P", .flat = "x <= 0"},
  [ACT_SIGMOID] = {"R(1) / (R(1) + EXP(-x))", "g * (R(1) - y) * y",
                   .sat = "y < R(0.03) || y > R(0.97)", .flat = "sat"},
  [ACT_SILU] = {"x / (R(1) + EXP(-x))",
                "g * (R(1) / (R(1) + EXP(-x))) * (R(1) + x * (R(1) - R(1) / (R(1) + EXP(-x))))"},
  [ACT_GELU] = {"x * R(0.5) * (R(1) + ERF(x * R(M_SQRT1_2)))",
                "g * (R(0.5) * (R(1) + ERF(x * R(M_SQRT1_2)))"
                " + x * EXP(R(-0.5) * x * x) * R(M_2_SQRTPI * M_SQRT1_2 * 0.5))"},
  [ACT_ELU] = {"x > 0 ? x : P * (EXP(x) - R(1))", "x > 0 ? g : g * P * EXP(x)",
               .flat = "x <= 0"},
};

/* Whether an activation takes a parameter (its default is not 0). */
static const int act_has_param[NACTS] = {
#define HAS_(e, s, dflt) (dflt) != 0,
  ACTS(HAS_)
#undef HAS_
};

/* An activation's forward expression in x, and whether it reads P: the
   same text for codegen/infer.c. */
const char *emit_act_forward(int type, int *has_param) {
  *has_param = act_has_param[type];
  return act_code[type].fwd;
}

/* runtime/rmath.h's text, for inference C (codegen/infer.c). */
const char *emit_rmath(void) { return rmath_h; }

/* An elementwise activation: runtime/kernels.h's act_NAME and
   act_NAME_back, which compute act_code's expressions. */
static void emit_act(Ctx *c) {
  Buf *b = c->g->b;
  const char *p = c->p, *name = act_names[c->g->m->act.type];
  const Act *a = &c->g->m->act;
  const ActCode *code = &act_code[a->type];
  int C = c->l->out;
  char param[64] = "R(0)";
  if (act_has_param[a->type])
    snprintf(param, sizeof param, "R(%s)", num(a->param));
  emitf(b, "/* %s: %s, (B, %d) -> (B, %d) */\n", p, name, C, C);
  emitf(b, "static void %s_forward(int n) {\n"
        "  act_%s(n * %d, %s, %s_out, %s); /* %s */\n}\n\n",
        p, name, C, c->in, p, param, code->fwd);
  emitf(b, "static void %s_backward(int n) {\n"
        "  act_%s_back(n * %d, %s, %s_out, d%s_out, d%s, %s); /* %s */\n}\n\n",
        p, name, C, c->in, p, p, c->in, param, code->bwd);
}

/* Cross-entropy through log-sum-exp; forward returns the summed loss of
   the n rows and counts the rows whose arg max is the label. */
static void emit_loss(Ctx *c) {
  Buf *b = c->g->b;
  int K = c->l->out;
  const char *z = c->in;
  emitf(b, "/* loss: cross-entropy over (B, %d) logits */\n", K);
  emitf(b, "static double loss_forward(int n, const unsigned char *y, long *correct) {\n"
        "  return xent_forward(n, %d, %s, y, loss_lse, loss_exp, correct);\n}\n\n"
        "static void loss_backward(int n, const unsigned char *y) {\n"
        "  xent_backward(n, %d, %s, loss_lse, y, d%s);\n}\n",
        K, z, K, z, z);
}

typedef void EmitLayer(Ctx *c);
static EmitLayer *const emit_layer[NLAYERS] = {
  [L_LINEAR] = emit_linear,
  [L_BATCHNORM] = emit_batchnorm,
  [L_LAYERNORM] = emit_layernorm,
  [L_ACT] = emit_act,
  [L_LOSS] = emit_loss,
};

/* Every layer's pair of functions, in forward order. */
static void emit_layers(Gen *g) {
  char in[40] = "input";
  for (int i = 0; i < g->ir->nlayers; i++) {
    const Layer *l = &g->ir->layers[i];
    Ctx c = {g, l, prefix(g, l), in, i == 0};
    emit_layer[l->kind](&c);
    snprintf(in, sizeof in, "%s_out", c.p);
  }
}

/* ---- the optimizer ---- */

/* The update of one tensor, for the model's optimizer: a call of its
   kernel (runtime/kernels.h) on tensor p, its gradient dp, and up to three
   state tensors s0..s2 (opt_state_fields); absent state is passed as 0. */
static void emit_sgd(Gen *g) {
  const Optim *o = &g->m->opt;
  emitf(g->b, "  opt_sgd(len, p, dp, %s, optimizer_step[0] == 1,\n"
        "          R(%s), R(%s), R(%s), %d, R(%s)); /* wd, momentum, 1 - dampening,"
        " nesterov, -lr */\n",
        o->momentum > 0 ? "s0" : "0", num(o->weight_decay), num(o->momentum),
        num(1 - o->dampening), o->nesterov, num(-o->lr));
}

static void emit_rmsprop(Gen *g) {
  const Optim *o = &g->m->opt;
  const char *buf = o->momentum > 0 ? o->centered ? "s2" : "s1" : "0";
  emitf(g->b, "  opt_rmsprop(len, p, dp, s0, %s, %s,\n"
        "              R(%s), R(%s), R(%s), R(%s), R(%s), R(%s));"
        " /* wd, alpha, 1 - alpha, eps, momentum, -lr */\n",
        o->centered ? "s1" : "0", buf, num(o->weight_decay), num(o->alpha),
        num(1 - o->alpha), num(o->eps), num(o->momentum), num(-o->lr));
}

static void emit_adam(Gen *g) {
  const Optim *o = &g->m->opt;
  int adamw = o->type == OPT_ADAMW;
  emitf(g->b, "  double t = (double)optimizer_step[0];\n"
        "  real step_size = (real)(%s / (1 - pow(%s, t)));\n"
        "  real bc2_sqrt = (real)sqrt(1 - pow(%s, t));\n",
        num(o->lr), num(o->beta1), num(o->beta2));
  emitf(g->b, "  opt_adam(len, p, dp, s0, s1, R(%s), R(%s), R(%s), R(%s), R(%s), R(%s),\n"
        "           step_size, bc2_sqrt, R(%s));"
        " /* 1 - lr * wd (adamw), wd (adam), beta1, 1 - beta1, beta2, 1 - beta2 */\n",
        num(adamw ? 1 - o->lr * o->weight_decay : 1), num(adamw ? 0 : o->weight_decay),
        num(o->beta1), num(1 - o->beta1), num(o->beta2), num(1 - o->beta2), num(o->eps));
}

typedef void EmitOpt(Gen *g);
static EmitOpt *const emit_opt[NOPTS] = {
  [OPT_SGD] = emit_sgd,
  [OPT_RMSPROP] = emit_rmsprop,
  [OPT_ADAM] = emit_adam,
  [OPT_ADAMW] = emit_adam,
};

/* The update function, then one call per trained tensor. */
static void emit_optimizer(Gen *g) {
  Buf *b = g->b;
  const Optim *o = &g->m->opt;
  emitf(b, "/* optimizer: %s, lr %g */\n", opt_names[o->type], o->lr);
  emitf(b, "static void update(real *p, const real *dp, real *s0, real *s1,"
        " real *s2, int len) {\n  (void)s0, (void)s1, (void)s2;\n");
  emit_opt[o->type](g);
  emitf(b, "}\n\n");
  const char *fields[3];
  int nf = opt_state_fields(o, fields);
  emitf(b, "static void optimizer_update(void) {\n  optimizer_step[0]++;\n");
  if (fused_sgd(g->m))
    emitf(b, "  /* the linear weights: in backward(n, y, 1) */\n");
  for (int i = 0; i < g->ntensors; i++) {
    const Tensor *t = &g->t[i];
    if (!t->trained || (t->transposed && fused_sgd(g->m)))
      continue;
    emitf(b, "  update(%s, d%s", t->cname, t->cname);
    for (int f = 0; f < 3; f++)
      if (f < nf)
        emitf(b, ", %s_%s", t->cname, fields[f]);
      else
        emitf(b, ", 0");
    emitf(b, ", %ld);\n", numel(t));
  }
  emitf(b, "}\n\n");
}

/* ---- the step, evaluation and the table ---- */

/* forward(n, train) and backward(n, y) over all layers. */
static void emit_passes(Gen *g) {
  Buf *b = g->b;
  const Ir *ir = g->ir;
  emitf(b, "static void load_input(int n, const unsigned char *x) {\n"
        "  mm_load(n * %d, x, input); /* pixels / 255 */\n}\n\n",
        ir->m->input);
  emitf(b, "static void forward(int n, int train) {\n  (void)train;\n");
  for (int i = 0; i < ir->nlayers - 1; i++) {
    const Layer *l = &ir->layers[i];
    int norm = l->kind == L_BATCHNORM || l->kind == L_LAYERNORM;
    emitf(b, "  %s_forward(n%s);\n", prefix(g, l), norm ? ", train" : "");
  }
  int fused = fused_sgd(g->m);
  emitf(b, "}\n\nstatic void backward(int n, const unsigned char *y, int step) {\n"
        "  %sloss_backward(n, y);\n", fused ? "" : "(void)step;\n  ");
  for (int i = ir->nlayers - 2; i >= 0; i--)
    emitf(b, "  %s_backward(n%s);\n", prefix(g, &ir->layers[i]),
          fused && ir->layers[i].kind == L_LINEAR ? ", step" : "");
  emitf(b, "}\n\n");
}

/* The three entry points of RtNet. */
static void emit_entries(Gen *g) {
  emitf(g->b,
        "/* The loss and gradients of a batch; with step, the fused updates too. */\n"
        "static double passes(int n, const unsigned char *x, const unsigned char *y, int step) {\n"
        "  long correct = 0;\n"
        "  load_input(n, x);\n  forward(n, 1);\n"
        "  double loss = loss_forward(n, y, &correct) / n;\n"
        "  backward(n, y, step);\n  return loss;\n}\n\n"
        "static double grad(int n, const unsigned char *x, const unsigned char *y) {\n"
        "  return passes(n, x, y, 0);\n}\n\n"
        "static double train_step(int n, const unsigned char *x, const unsigned char *y) {\n"
        "  double loss = passes(n, x, y, 1);\n  optimizer_update();\n  return loss;\n}\n\n"
        "static void eval(int n, const unsigned char *x, const unsigned char *y,\n"
        "                 double *loss_sum, long *correct) {\n"
        "  load_input(n, x);\n  forward(n, 0);\n"
        "  *loss_sum += loss_forward(n, y, correct);\n}\n\n");
}

/* ---- health figures (docs/health.md) ---- */

/* The mean and standard deviation of a buffer, in double. */
static void emit_health_moments(Gen *g) {
  emitf(g->b, "/* The mean and standard deviation (divided by len) of len values. */\n"
        "static void health_moments(long len, const real *v, double *mean, double *std) {\n"
        "  double s = 0, ss = 0;\n"
        "  for (long i = 0; i < len; i++)\n    s += v[i];\n"
        "  *mean = s / len;\n"
        "  for (long i = 0; i < len; i++)\n    ss += (v[i] - *mean) * (v[i] - *mean);\n"
        "  *std = sqrt(ss / len);\n}\n\n");
}

/* The saturated and dead counts of one layer, as the activation defines
   them (act_code's sat and flat). */
static void emit_health_counts(Gen *g, const ActCode *code) {
  Buf *b = g->b;
  if (!code->flat)
    return;
  emitf(b, "  long %sdead = 0;\n"
        "  for (int c = 0; c < C; c++) {\n"
        "    int flat = 1; /* on every sample so far */\n"
        "    for (int r = 0; r < n; r++) {\n"
        "      real x = pre[r * C + c], y = post[r * C + c];\n"
        "      (void)x, (void)y;\n",
        code->sat ? "saturated = 0, " : "");
  if (code->sat)
    emitf(b, "      int sat = %s;\n      saturated += sat;\n", code->sat);
  emitf(b, "      flat &= %s;\n    }\n    dead += flat;\n  }\n", code->flat);
}

/* health_layer: the RT_LAYER_FIGURES of one hidden layer. */
static void emit_health_layer(Gen *g) {
  Buf *b = g->b;
  int act = g->m->act.type;
  const ActCode *code = &act_code[act];
  emitf(b, "/* The figures of one hidden layer from its activation's input (pre)\n"
        "   and output (post), both (n, C), in RT_LAYER_FIGURES order.\n   %s: ",
        act_names[act]);
  if (code->sat)
    emitf(b, "saturated when %s;\n   a unit is dead when saturated on every sample. */\n",
          code->sat);
  else if (code->flat)
    emitf(b, "saturation is not defined;\n   a unit is dead when %s on every sample. */\n",
          code->flat);
  else
    emitf(b, "saturation is not defined;\n   dead units are not defined. */\n");
  emitf(b, "static void health_layer(int n, int C, const real *pre, const real *post,\n"
        "                         double *out) {\n"
        "  health_moments((long)n * C, pre, &out[RT_PRE_MEAN], &out[RT_PRE_STD]);\n"
        "  health_moments((long)n * C, post, &out[RT_POST_MEAN], &out[RT_POST_STD]);\n");
  emit_health_counts(g, code);
  if (code->sat)
    emitf(b, "  out[RT_SATURATED] = (double)saturated / ((double)n * C);\n");
  else
    emitf(b, "  out[RT_SATURATED] = NAN; /* not defined for %s */\n", act_names[act]);
  if (code->flat)
    emitf(b, "  out[RT_DEAD] = (double)dead / C;\n}\n\n");
  else
    emitf(b, "  out[RT_DEAD] = NAN; /* not defined for %s */\n}\n\n", act_names[act]);
}

/* Copies of BatchNorm's buffers, and the functions that keep them across
   the probe; returns 0 when the model has none. */
static int emit_health_buffers(Gen *g) {
  Buf *b = g->b;
  int n = 0;
  for (int i = 0; i < g->ntensors; i++)
    if (g->t[i].kind == RT_BUF_ZERO || g->t[i].kind == RT_BUF_ONE) {
      emitf(b, "%sstatic %s %s_kept[%ld];\n",
            n++ ? "" : "/* BatchNorm's buffers, kept while the probe runs */\n",
            g->t[i].i64 ? "long long" : "real", g->t[i].cname, numel(&g->t[i]));
      count(g, numel(&g->t[i]), !g->t[i].i64);
    }
  if (!n)
    return 0;
  for (int restore = 0; restore < 2; restore++) {
    emitf(b, "\nstatic void health_%s_buffers(void) {\n", restore ? "restore" : "save");
    for (int i = 0; i < g->ntensors; i++) {
      const Tensor *t = &g->t[i];
      const char *to = restore ? "" : "_kept", *from = restore ? "_kept" : "";
      if (t->kind != RT_BUF_ZERO && t->kind != RT_BUF_ONE)
        continue;
      if (numel(t) == 1)
        emitf(b, "  %s%s[0] = %s%s[0];\n", t->cname, to, t->cname, from);
      else
        emitf(b, "  for (int i = 0; i < %ld; i++)\n    %s%s[i] = %s%s[i];\n", numel(t),
              t->cname, to, t->cname, from);
    }
    emitf(b, "}\n");
  }
  emitf(b, "\n");
  return 1;
}

/* health(): the probe's forward and backward, then each hidden layer. */
static void emit_health_entry(Gen *g, int buffers) {
  Buf *b = g->b;
  const Ir *ir = g->ir;
  emitf(b, "/* The health figures on a probe batch of n samples (RtNet.health): a\n"
        "   training-mode forward and backward, %sthen\n"
        "   RT_NLAYER_FIGURES values per hidden layer into out. */\n"
        "static void health(int n, const unsigned char *x, const unsigned char *y,\n"
        "                   double *out) {\n",
        buffers ? "BatchNorm's buffers put back, " : "");
  if (buffers)
    emitf(b, "  health_save_buffers();\n  grad(n, x, y);\n  health_restore_buffers();\n");
  else
    emitf(b, "  grad(n, x, y);\n");
  if (!g->m->nhidden)
    emitf(b, "  (void)out; /* no hidden layer */\n");
  for (int i = 1, k = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (l->kind == L_ACT)
      emitf(b, "  health_layer(n, %d, %s_out, %s_out, out + %d); /* hidden%d */\n", l->out,
            prefix(g, &ir->layers[i - 1]), prefix(g, l), k++ * RT_NLAYER_FIGURES, l->index);
  }
  emitf(b, "}\n\n");
}

/* The health section: what RtNet.health computes, kept apart from
   training, which never calls it. */
static void emit_health(Gen *g) {
  emitf(g->b, "/* ---- health figures of a probe batch (docs/health.md) ---- */\n\n");
  if (g->m->nhidden) {
    emit_health_moments(g);
    emit_health_layer(g);
  }
  emit_health_entry(g, emit_health_buffers(g));
}

/* The figures the model's activation does not define, as C source. */
static const char *health_na(const Model *m) {
  const ActCode *code = &act_code[m->act.type];
  return code->sat    ? "0"
       : code->flat ? "1 << RT_SATURATED"
                    : "1 << RT_SATURATED | 1 << RT_DEAD";
}

/* The tensor table and mlpc_net(). The rng field appears only when it is
   not the default, so that models without it keep their bytes. */
static void emit_table(Gen *g) {
  Buf *b = g->b;
  const Model *m = g->m;
  static const char *const kinds[] = {"RT_WEIGHT", "RT_BIAS", "RT_GAMMA", "RT_BETA",
                                      "RT_BUF_ZERO", "RT_BUF_ONE", "RT_STATE", "RT_GRAD"};
  static const char *const inits[] = {
#define NAME_(e, s) #e,
    RT_INIT_SCHEMES(NAME_)
#undef NAME_
  };
  emitf(b, "static RtTensor tensors[%d] = {\n", g->ntensors);
  for (int i = 0; i < g->ntensors; i++) {
    const Tensor *t = &g->t[i];
    emitf(b, "  {\"%s\", %s, %s, %d, {%d, %d}, %d, %d, %s, %d},\n", t->tname,
          kinds[t->kind], t->i64 ? "RT_I64" : m->dtype == DT_F64 ? "RT_F64" : "RT_F32",
          t->shape[1] ? 2 : 1, t->shape[0], t->shape[1], t->fan_in, t->fan_out,
          t->cname, t->transposed);
  }
  emitf(b, "};\n\n");
  emitf(b, "static const RtNet net = {\n  .name = ");
  emit_cstring(b, m->name);
  emitf(b, ",\n  .input = %d,\n  .output = %d,\n  .batch = B,\n"
        "  .dtype = %s,\n  .init = %s,%s\n  .has_batchnorm = %d,\n"
        "  .ntensors = %d,\n  .tensors = tensors,\n"
        "  .train_step = train_step,\n  .eval = eval,\n  .grad = grad,\n"
        "  .health = health,\n  .nhidden = %d,\n  .health_na = %s,\n};\n\n"
        "const RtNet *mlpc_net(void) { return &net; }\n",
        m->input, m->output, m->dtype == DT_F64 ? "RT_F64" : "RT_F32",
        inits[m->init], m->rng == RT_RNG_TORCH ? "\n  .rng = RT_RNG_TORCH," : "",
        m->norm.type == NORM_BATCH, g->ntensors, m->nhidden, health_na(m));
}

/* A one-line description of the model, for the header comment. */
static void emit_banner(Gen *g) {
  const Model *m = g->m;
  emitf(g->b, "/* %s: %d", emit_comment_name(m->name), m->input);
  for (int k = 0; k < m->nhidden; k++)
    emitf(g->b, "-%d", m->hidden[k]);
  emitf(g->b, "-%d, norm %s, %s, init %s, %s, batch %d, %s; generated by mlpc */\n\n",
        m->output, norm_names[m->norm.type], act_names[m->act.type],
        init_names[m->init], opt_names[m->opt.type], m->batch_size,
        dtype_names[m->dtype]);
}

int emit_model(const Ir *ir, Buf *b) {
  static Gen g; /* large: kept off the stack */
  memset(&g, 0, sizeof g);
  g.ir = ir;
  g.m = ir->m;
  g.b = b;
  plan(&g);
  emit_banner(&g);
  emitf(b, "enum { B = %d }; /* the largest batch */\n\n", g.m->batch_size);
  emit_tensor_decls(&g);
  emit_activation_decls(&g);
  emit_layers(&g);
  emit_optimizer(&g);
  emit_passes(&g);
  emit_entries(&g);
  emit_health(&g);
  emit_table(&g);
  return b->oom ? -1 : 0;
}

/* ---- size ---- */

/* The static storage the model's code declares, in bytes. */
size_t emit_static_bytes(const Ir *ir) {
  static Gen g; /* large: kept off the stack */
  Buf none = {.oom = 1}; /* takes no text: only the counting is wanted */
  memset(&g, 0, sizeof g);
  g.ir = ir;
  g.m = ir->m;
  g.b = &none;
  plan(&g);
  emit_tensor_decls(&g);
  emit_activation_decls(&g);
  emit_health_buffers(&g);
  return g.bytes;
}

/* Refuses a model whose arrays would not fit the generated code. */
int emit_check_size(const Ir *ir, char *err, size_t errlen) {
  const double GiB = 1024.0 * 1024 * 1024;
  size_t bytes = emit_static_bytes(ir);
  if (bytes <= EMIT_MAX_STATIC)
    return 0;
  snprintf(err, errlen, "%s: error: the model's code would need %.2f GiB for its "
           "tensors and activations (parameters, gradients, optimizer state, and "
           "batch_size %d times the layer widths); at most %.2f GiB fits in "
           "generated code: use narrower layers or a smaller batch_size",
           ir->m->file, bytes / GiB, ir->m->batch_size, EMIT_MAX_STATIC / GiB);
  return -1;
}

/* ---- whole translation units ---- */

/* What comes before the model: the interface, `real` and its math, and
   the kernels (inlined, or only declared for tcc). */
static void emit_prelude(const Ir *ir, int backend, Buf *b) {
  int f32 = ir->m->dtype == DT_F32;
  const char *sfx = f32 ? "f" : "";
  emitf(b, "#include <math.h>\n");
  /* gelu's constants: POSIX, not ISO C, so absent under gcc -std=c11 */
  emitf(b, "#ifndef M_SQRT1_2\n#define M_SQRT1_2 0x1.6a09e667f3bcdp-1\n#endif\n"
        "#ifndef M_2_SQRTPI\n#define M_2_SQRTPI 0x1.20dd750429b6dp+0\n#endif\n");
  paste(b, net_h);
  emitf(b, "\ntypedef %s real;\n#define R(c) ((real)(c))\n", f32 ? "float" : "double");
  emitf(b, "#define EXP exp%s\n#define LOG log%s\n#define TANH tanh%s\n"
        "#define ERF erf%s\n#define SQRT sqrt%s\n#define FMA fma%s\n\n", sfx, sfx, sfx,
        sfx, sfx, sfx);
  if (ir->fma)
    emitf(b, "#define MLPC_FMA 1 /* the fma arithmetic: fused multiply-adds in the kernels */\n");
  if (backend == BACKEND_TCC)
    emitf(b, "#define MLPC_KERNEL_PROTOTYPES\n");
  paste(b, rmath_h);
  paste(b, kernels_h);
  emitf(b, "\n");
}

int emit_unit(const Ir *ir, int backend, Buf *b) {
  emit_prelude(ir, backend, b);
  return emit_model(ir, b);
}

/* A trainer's first lines: its arithmetic and the line that builds it
   (tests/test_backends.c builds it with that very line). */
static void emit_build_comment(const Ir *ir, Buf *b) {
  if (ir->fma)
    emitf(b, "/* A standalone trainer generated by mlpc, fma arithmetic. Build: "
          "cc -O2 -march=native -ffp-contract=off FILE.c -o trainer -lm -lz */\n"
          "/* -march=native (or -mfma) makes each fma one instruction, and\n"
          "   -ffp-contract=off keeps every other operation as written: the bits of\n"
          "   mlpc --run. Plain cc -O2 gives them too, slower, through the C\n"
          "   library's fma. */\n");
  else
    emitf(b, "/* A standalone trainer generated by mlpc, strict arithmetic. Build: "
          "cc -O2 FILE.c -o trainer -lm -lz */\n"
          "/* Strict needs no flag; with -march=native add -ffp-contract=off, or a\n"
          "   fused multiply-add would change the bits of mlpc --run. */\n");
}

int emit_trainer(const Ir *ir, Buf *b) {
  const Model *m = ir->m;
  emit_build_comment(ir, b);
  emitf(b, "#define _GNU_SOURCE\n");
  emit_unit(ir, BACKEND_GCC, b);
  emitf(b, "\n/* ---- the runtime ---- */\n");
  paste(b, rt_h);
  paste(b, idx_c);
  paste(b, rng_c);
  paste(b, trng_c);
  paste(b, train_c);
  paste(b, health_c);
  emitf(b, "\n/* ---- the model's defaults ---- */\n");
  emitf(b, "static const char trainer_data[] = ");
  emit_cstring(b, m->data);
  emitf(b, ";\nstatic const RtOptions trainer_defaults = {\n"
        "  .epochs = %d, .seed = %lluULL, .max_batches = %ld, .shuffle = 1};\n\n",
        m->epochs, (unsigned long long)m->seed, m->max_batches);
  paste(b, trainer_main_c);
  return b->oom ? -1 : 0;
}
