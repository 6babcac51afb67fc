/*
 * emit.c — C source from the lowered model.
 *
 * Planning first: the tensors of the model (parameters, buffers,
 * gradients, optimizer state) in PyTorch's order. Then the code, all
 * through emitf: tensors as static arrays with constant sizes, one
 * forward and one backward function per layer side by side, the
 * optimizer, the training step and evaluation, and the RtNet table the
 * runtime drives it through (rt/net.h).
 *
 * The output is deterministic: the same model gives the same bytes.
 * Numbers are written as hex floats, so every compiler reads back exactly
 * the double the model file gave.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"
#include "embedded.h"

/* ---- the writer ---- */

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

/* ---- the layers' units, and the buffers between them ---- */

#define UNIT_(k, s, unit, ...) [L_##k] = &unit_##unit,
const LayerUnit *const layer_units[NLAYERS] = {
  LAYER_KINDS(UNIT_) [L_ACT] = &unit_act, [L_LOSS] = &unit_loss,
};
#undef UNIT_

/* gen_out_name: a ring of 4, so that a call's arguments may hold several. */
const char *gen_out_name(const Ir *ir, int i) {
  static char ring[4][40];
  static int next;
  while (i >= 0 && layer_units[ir->layers[i].kind]->alias)
    i--;
  if (i < 0)
    return "input";
  char *s = ring[next++ % 4];
  snprintf(s, sizeof ring[0], "%s_out", ir->layers[i].cname);
  return s;
}

/* Whether layer i is a relu that the max pooling right after it
   computes in training (maxpool2d_relu_*): its input has a gradient. The
   relu's output buffer is then filled only for the health figures. */
static int relu_pooled(const Ir *ir, int i) {
  const Layer *l = &ir->layers[i];
  return l->kind == L_ACT && l->spec.act.type == ACT_RELU && i + 1 < ir->nlayers &&
         l[1].kind == L_MAXPOOL2D && strcmp(gen_out_name(ir, i - 1), "input");
}

/* Whether layer i is a BatchNorm2d right before such a relu: the max
   pooling's kernel then normalises as well (maxpool2d_bn_relu_forward),
   a plane at a time, from the statistics the BatchNorm2d computed, and
   the BatchNorm2d's backward is the three layers' (a channel at a time,
   maxpool2d_relu_bn_backward), the pooling's none. */
static int bn_pooled(const Ir *ir, int i) {
  return ir->layers[i].kind == L_BATCHNORM2D && i + 2 < ir->nlayers && relu_pooled(ir, i + 1);
}

/* ---- planning: the tensors ---- */

/* The optimizer state each trained tensor carries. */
static int opt_state_fields(const Model *m, const char *fields[3]) {
  const Optim *o = &m->opt;
  int n = 0;
  if (o->type == OPT_SGD && fe_momentum_buffer(m))
    fields[n++] = "momentum_buffer";
  if (o->type == OPT_RMSPROP) {
    fields[n++] = "square_avg";
    if (o->centered)
      fields[n++] = "grad_avg";
    if (fe_momentum_buffer(m))
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
  int nf = opt_state_fields(g->m, fields);
  for (int i = 0; i < nparams; i++) {
    if (!g->t[i].trained)
      continue;
    Tensor p = g->t[i];
    Tensor *d = gen_tensor(g, p.cname, p.tname, "grad", RT_GRAD, 1, 0);
    gen_shape(d, p.ndim, p.shape);
    gen_name(d->cname, sizeof d->cname, "d%s", p.cname);
    d->transposed = p.transposed;
    for (int f = 0; f < nf; f++) {
      Tensor *s = gen_tensor(g, p.cname, p.tname, fields[f], RT_STATE, 1, 0);
      gen_shape(s, p.ndim, p.shape);
      s->transposed = p.transposed;
    }
  }
  gen_tensor(g, "optimizer", "optimizer", "step", RT_STATE, 1, 0)->i64 = 1;
  for (int i = 0; i < g->ir->nlayers; i++)
    if (layer_units[g->ir->layers[i].kind]->needs_seed) {
      gen_tensor(g, "run", "run", "seed", RT_SEED, 1, 0)->i64 = 1;
      break;
    }
}

/* Plans every tensor of the model: each layer's, then the state. */
static void plan(Gen *g) {
  for (int i = 0; i < g->ir->nlayers; i++) {
    const Layer *l = &g->ir->layers[i];
    if (layer_units[l->kind]->plan)
      layer_units[l->kind]->plan(g, l);
  }
  plan_state(g);
}

/* ---- declarations ---- */

/* The shape as a comment: "(128, 784)", "(128)" or "(16, 1, 3, 3)". */
static const char *shape_str(const Tensor *t) {
  static char s[64];
  int n = snprintf(s, sizeof s, "(%d", t->shape[0]);
  for (int d = 1; d < t->ndim; d++)
    n += snprintf(s + n, sizeof s - n, ", %d", t->shape[d]);
  snprintf(s + n, sizeof s - n, ")");
  return s;
}

/* The shape as a C initializer: "{128, 784}", "{16, 1, 3, 3}". */
static const char *shape_init(const Tensor *t) {
  static char s[64];
  int n = snprintf(s, sizeof s, "{%d, %d", t->shape[0], t->shape[1]);
  for (int d = 2; d < t->ndim; d++)
    n += snprintf(s + n, sizeof s - n, ", %d", t->shape[d]);
  snprintf(s + n, sizeof s - n, "}");
  return s;
}

/* Every tensor as a static array. */
static void emit_tensor_decls(Gen *g) {
  emitf(g->b, "/* ---- tensors ---- */\n\n");
  for (int i = 0; i < g->ntensors; i++) {
    const Tensor *t = &g->t[i];
    char what[128];
    snprintf(what, sizeof what, "%s %s%s", shape_str(t), t->tname,
             t->transposed ? ", stored transposed" : "");
    gen_commented(g->b, "", "static ALIGNED %s %s[%ld];", what, t->i64 ? "long long" : "real",
                  t->cname, gen_numel(t));
    gen_count(g, gen_numel(t), !t->i64);
  }
  emitf(g->b, "\n");
}

/* The activations between layers: each layer's output and its gradient,
   and the scratch buffers its unit declares. */
static void emit_activation_decls(Gen *g) {
  const Ir *ir = g->ir;
  size_t B = ir->m->batch_size;
  emitf(g->b, "static ALIGNED real input[B * %d]; /* %s: pixels / 255, or the reals given */\n"
        "static int x_real; /* RtNet.x_real: x holds 0 pixel bytes, 1 reals */\n",
        ir->m->input, ir_shape(&ir->layers[0].x));
  gen_count(g, B * ir->m->input, 1);
  g->bytes += sizeof(int);
  const Layer *first = &ir->layers[0];
  while (layer_units[first->kind]->alias)
    first++;
  if (first->kind == L_BATCHNORM || first->kind == L_BATCHNORM2D) {
    emitf(g->b, "static ALIGNED real dinput[B * %d]; /* the input's gradient, which %s's kernel "
          "writes */\n", ir->m->input, first->cname);
    gen_count(g, B * ir->m->input, 1);
  }
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    const char *p = l->cname;
    if (relu_pooled(ir, i) || bn_pooled(ir, i)) { /* no gradient of the batch's */
      emitf(g->b, "static ALIGNED real %s_out[B * %d]; /* %s, for the health figures only */\n", p,
            l->out, ir_shape(&l->y));
      gen_count(g, B * l->out, 1);
    } else if (l->kind != L_LOSS && !layer_units[l->kind]->alias) {
      emitf(g->b, "static ALIGNED real %s_out[B * %d], d%s_out[B * %d]; /* %s */\n",
            p, l->out, p, l->out, ir_shape(&l->y));
      gen_count(g, 2 * B * l->out, 1);
    }
    if (bn_pooled(ir, i)) { /* its y a plane at a time, its dy a channel at a time */
      int S = l->y.h * l->y.w;
      emitf(g->b, "static ALIGNED real %s_plane[%d]; /* (%d, %d) a plane of y, in %s's kernel */\n",
            p, S, l->y.h, l->y.w, l[2].cname);
      emitf(g->b, "static ALIGNED real %s_dy[B * %d]; /* (B, %d, %d) a channel's dy */\n", p, S,
            l->y.h, l->y.w);
      gen_count(g, (B + 1) * S, 1);
    }
    if (layer_units[l->kind]->decls)
      layer_units[l->kind]->decls(g, l);
  }
  emitf(g->b, "\n");
}

/* ---- layers: forward and backward side by side ---- */

/* rt/rmath.h's text, for inference C (codegen/infer.c). */
const char *emit_rmath(void) { return rmath_h; }

/* Every layer's pair of functions, in forward order, each unit's own. */
static void emit_layers(Gen *g) {
  for (int i = 0; i < g->ir->nlayers; i++) {
    const Layer *l = &g->ir->layers[i];
    const char *in = gen_out_name(g->ir, i - 1);
    int bn = i > 1 && bn_pooled(g->ir, i - 2); /* l: the max pooling that normalises */
    Ctx c = {g, l, l->cname, in, !strcmp(in, "input"),
             relu_pooled(g->ir, i) || bn_pooled(g->ir, i),
             i > 0 && relu_pooled(g->ir, i - 1) ? gen_out_name(g->ir, i - 2) : NULL,
             bn ? l - 2 : NULL, bn ? gen_out_name(g->ir, i - 3) : NULL};
    if (!layer_units[l->kind]->alias)
      layer_units[l->kind]->emit(&c);
  }
}

/* ---- the optimizer ---- */

/* The optimizer's hyper-parameters are named constants of the code,
   PREFIX_NAME with the optimizer's name as prefix (sgd_lr, adam_beta1).
   Under a schedule (fe_scheduled) the lr is opt_hyper[0] instead, which
   the runtime sets before each step, and a cycled momentum (Adam's beta1)
   opt_hyper[1]. Each text below is an expression of type real, or of
   type double where PyTorch's Python computes with the value. */

/* PREFIX_field as a name of the generated code (a ring of 8). */
static const char *opt_name(const Model *m, const char *field) {
  static char ring[8][48];
  static int next;
  char *s = ring[next++ % 8];
  gen_name(s, sizeof ring[0], "%s_%s", opt_names[m->opt.type], field);
  return s;
}

/* The lr, a double. */
static const char *lr_text(const Model *m) {
  return fe_scheduled(m) ? "opt_hyper[0]" : opt_name(m, "lr");
}

/* The momentum (SGD, RMSprop: a real) or beta1 (Adam, AdamW: a double),
   or one minus it (a real). */
static const char *momentum_text(const Model *m, int one_minus) {
  int adam = m->opt.type == OPT_ADAM || m->opt.type == OPT_ADAMW;
  if (fe_cycles_momentum(m))
    return one_minus ? "R(1 - opt_hyper[1])" : adam ? "opt_hyper[1]" : "R(opt_hyper[1])";
  if (one_minus)
    return opt_name(m, "one_minus_beta1");
  return opt_name(m, adam ? "beta1" : "momentum");
}

/* AdamW's factor 1 - lr * weight_decay, a real. */
static const char *decay_text(const Model *m) {
  static char s[64];
  if (!fe_scheduled(m))
    return opt_name(m, "decay");
  snprintf(s, sizeof s, "R(1 - opt_hyper[0] * %s)", opt_name(m, "weight_decay"));
  return s;
}

/* Declares PREFIX_field = v, a real (or a double, is_double), with its
   PyTorch name and the decimal the model file gave in the comment. */
static void opt_const(Gen *g, int is_double, const char *field, double v, const char *torch) {
  gen_const(g, is_double, opt_name(g->m, field), v, "%s %s", torch, gen_decimal(v));
}

/* The lr and the momentum (or beta1) as constants, unless the schedule
   sets them. */
static void opt_schedulable_consts(Gen *g, int adam) {
  const Optim *o = &g->m->opt;
  if (!fe_scheduled(g->m))
    opt_const(g, adam, "lr", o->lr, "lr");
  if (fe_cycles_momentum(g->m))
    return;
  if (!adam) {
    opt_const(g, 0, "momentum", o->momentum, "momentum");
    return;
  }
  opt_const(g, 1, "beta1", o->beta1, "betas[0]");
  gen_const(g, 0, opt_name(g->m, "one_minus_beta1"), 1 - o->beta1, "1 - betas[0]");
}

/* Every hyper-parameter the update reads, as a named constant. */
static void emit_opt_consts(Gen *g) {
  const Optim *o = &g->m->opt;
  int adam = o->type == OPT_ADAM || o->type == OPT_ADAMW;
  emitf(g->b, "/* ---- the optimizer's hyper-parameters: %s ---- */\n\n", opt_names[o->type]);
  opt_schedulable_consts(g, adam);
  if (o->type == OPT_SGD) {
    gen_const(g, 0, "sgd_one_minus_dampening", 1 - o->dampening, "1 - dampening %s",
              gen_decimal(o->dampening));
    emitf(g->b, "static const int sgd_nesterov = %d; /* nesterov %s */\n", o->nesterov,
          o->nesterov ? "True" : "False");
  }
  if (o->type == OPT_RMSPROP) {
    opt_const(g, 0, "alpha", o->alpha, "alpha");
    gen_const(g, 0, "rmsprop_one_minus_alpha", 1 - o->alpha, "1 - alpha");
  }
  if (adam) {
    opt_const(g, 1, "beta2", o->beta2, "betas[1]");
    gen_const(g, 0, opt_name(g->m, "one_minus_beta2"), 1 - o->beta2, "1 - betas[1]");
  }
  if (o->type != OPT_SGD)
    opt_const(g, 0, "eps", o->eps, "eps");
  if (o->type == OPT_ADAMW && !fe_scheduled(g->m))
    gen_const(g, 0, "adamw_decay", 1 - o->lr * o->weight_decay,
              "1 - lr * weight_decay, weight_decay %s", gen_decimal(o->weight_decay));
  else
    opt_const(g, o->type == OPT_ADAMW, "weight_decay", o->weight_decay, "weight_decay");
  emitf(g->b, "\n");
}

/* The update of one tensor, for the model's optimizer: a call of its
   kernel (rt/kernels.h) on tensor p, its gradient dp, and up to three
   state tensors s0..s2 (opt_state_fields); absent state is passed as 0,
   those it leaves unused are cast to void (emit_unused_state). */
static void emit_sgd(Gen *g) {
  int buf = fe_momentum_buffer(g->m);
  gen_call(g->b, "  opt_sgd(", "len, p, dp, %s, optimizer_step[0] == 1, sgd_weight_decay, %s, "
           "sgd_one_minus_dampening, sgd_nesterov, %s", buf ? "s0" : "0",
           momentum_text(g->m, 0), gen_neg_lr(g->m));
}

static void emit_rmsprop(Gen *g) {
  const Optim *o = &g->m->opt;
  int mom = fe_momentum_buffer(g->m);
  const char *buf = mom ? o->centered ? "s2" : "s1" : "0";
  gen_call(g->b, "  opt_rmsprop(", "len, p, dp, s0, %s, %s, rmsprop_weight_decay, "
           "rmsprop_alpha, rmsprop_one_minus_alpha, rmsprop_eps, %s, %s",
           o->centered ? "s1" : "0", buf, momentum_text(g->m, 0), gen_neg_lr(g->m));
}

static void emit_adam(Gen *g) {
  const Model *m = g->m;
  int adamw = m->opt.type == OPT_ADAMW;
  emitf(g->b, "  double t = (double)optimizer_step[0];\n"
        "  real step_size = (real)(%s / (1 - pow(%s, t)));\n"
        "  real bc2_sqrt = (real)sqrt(1 - pow(%s, t));\n",
        lr_text(m), momentum_text(m, 0), opt_name(m, "beta2"));
  gen_call(g->b, "  opt_adam(", "len, p, dp, s0, s1, %s, %s, R(%s), %s, R(%s), %s, "
           "step_size, bc2_sqrt, %s", adamw ? decay_text(m) : "R(1)",
           adamw ? "R(0)" : opt_name(m, "weight_decay"), momentum_text(m, 0),
           momentum_text(m, 1), opt_name(m, "beta2"), opt_name(m, "one_minus_beta2"),
           opt_name(m, "eps"));
}

typedef void EmitOpt(Gen *g);
static EmitOpt *const emit_opt[NOPTS] = {
  [OPT_SGD] = emit_sgd,
  [OPT_RMSPROP] = emit_rmsprop,
  [OPT_ADAM] = emit_adam,
  [OPT_ADAMW] = emit_adam,
};

/* The optimizer's constants, and the lr and momentum the runtime sets
   under a schedule (RtNet.hyper). */
static void emit_hyper(Gen *g) {
  const Model *m = g->m;
  int adam = m->opt.type == OPT_ADAM || m->opt.type == OPT_ADAMW;
  emit_opt_consts(g);
  if (fe_scheduled(m))
    emitf(g->b, "/* the lr and the %s, which the runtime's schedule sets before each step */\n"
          "static double opt_hyper[2] = {%s, %s};\n\n", adam ? "beta1" : "momentum",
          gen_num(m->opt.lr), gen_num(adam ? m->opt.beta1 : m->opt.momentum));
}

/* "(void)s1, (void)s2;" for the state parameters of update() that the
   optimizer leaves unused (bit k of used: sk is used). */
static void emit_unused_state(Gen *g, int used) {
  const char *sep = "  ";
  for (int k = 0; k < 3; k++)
    if (!(used & 1 << k))
      emitf(g->b, "%s(void)s%d", sep, k), sep = ", ";
  if (used != 7)
    emitf(g->b, ";\n");
}

/* Which of s0..s2 the model's optimizer uses (opt_state_fields). */
static int used_state(const Model *m) {
  const char *fields[3];
  return (1 << opt_state_fields(m, fields)) - 1;
}

/* The update function, then one call per trained tensor. */
static void emit_optimizer(Gen *g) {
  Buf *b = g->b;
  const Optim *o = &g->m->opt;
  emitf(b, "\n/* optimizer: %s, lr %s */\n", opt_names[o->type], gen_decimal(o->lr));
  emitf(b, "static void update(real *p, const real *dp, real *s0, real *s1,"
        " real *s2, int len) {\n");
  emit_unused_state(g, used_state(g->m));
  emit_opt[o->type](g);
  emitf(b, "}\n\n");
  const char *fields[3];
  int nf = opt_state_fields(g->m, fields);
  emitf(b, "static void optimizer_update(void) {\n  optimizer_step[0]++;\n");
  if (gen_fused_sgd(g->m))
    emitf(b, "  /* the linear weights: in backward(n, y, 1) */\n");
  for (int i = 0; i < g->ntensors; i++) {
    const Tensor *t = &g->t[i];
    if (!t->trained || (t->transposed && gen_fused_sgd(g->m)))
      continue;
    char state[3][64];
    for (int f = 0; f < 3; f++)
      if (f < nf)
        gen_name(state[f], sizeof state[f], "%s_%s", t->cname, fields[f]);
      else
        gen_name(state[f], sizeof state[f], "0");
    gen_call(b, "  update(", "%s, d%s, %s, %s, %s, %ld", t->cname, t->cname, state[0],
             state[1], state[2], gen_numel(t));
  }
  emitf(b, "}\n\n");
}

/* clip_grads(), under "clip_grad_norm": torch.nn.utils.clip_grad_norm_
   on every gradient, in the grad dtype as PyTorch 1.13 computes it: each
   tensor's 2-norm, the 2-norm of those, clip_coef = 1 / (total + 1e-6)
   * max_norm (Tensor.__rtruediv__ is a reciprocal and a product), and
   each gradient times clip_coef where it is below 1 (PyTorch multiplies
   by it clamped to 1, which changes nothing else). */
static void emit_clip(Gen *g) {
  Buf *b = g->b;
  int n = 0;
  if (g->m->clip_grad_norm == 0)
    return;
  for (int i = 0; i < g->ntensors; i++)
    n += g->t[i].kind == RT_GRAD;
  emitf(b, "/* clip_grad_norm_(parameters, max_norm %g): every gradient together */\n",
        g->m->clip_grad_norm);
  gen_const(g, 0, "clip_max_norm", g->m->clip_grad_norm, "max_norm %s",
            gen_decimal(g->m->clip_grad_norm));
  gen_const(g, 0, "clip_eps", 1e-6, "1e-6, clip_grad_norm_'s own");
  emitf(b, "\nstatic void clip_grads(void) {\n  real norms[%d] = {\n", n);
  for (int i = 0; i < g->ntensors; i++)
    if (g->t[i].kind == RT_GRAD)
      emitf(b, "    clip_norm(%ld, %s),\n", gen_numel(&g->t[i]), g->t[i].cname);
  emitf(b, "  };\n  real coef = R(1) / (clip_norm(%d, norms) + clip_eps) * clip_max_norm;\n"
        "  if (!(coef >= 1)) { /* NaN too, as PyTorch's clamp */\n", n);
  for (int i = 0; i < g->ntensors; i++)
    if (g->t[i].kind == RT_GRAD)
      emitf(b, "    clip_scale(%ld, %s, coef);\n", gen_numel(&g->t[i]), g->t[i].cname);
  emitf(b, "  }\n}\n\n");
}

/* ---- the step, evaluation and the table ---- */

/* forward(n, train) and backward(n, y) over all layers. */
static void emit_passes(Gen *g) {
  Buf *b = g->b;
  const Ir *ir = g->ir;
  emitf(b, "static void load_input(int n, const void *x) {\n"
        "  if (!x_real) {\n    mm_load(n * %d, x, input); /* pixels / 255 */\n    return;\n  }\n"
        "  for (long i = 0; i < (long)n * %d; i++)\n"
        "    input[i] = ((const real *)x)[i];\n}\n\n",
        ir->m->input, ir->m->input);
  int train_used = 0;
  for (int i = 0; i < ir->nlayers - 1; i++)
    train_used |= layer_units[ir->layers[i].kind]->forward_train && !relu_pooled(ir, i);
  emitf(b, "static void forward(int n, int train) {\n%s", train_used ? "" : "  (void)train;\n");
  for (int i = 0; i < ir->nlayers - 1; i++) {
    const Layer *l = &ir->layers[i];
    if (!layer_units[l->kind]->alias && !relu_pooled(ir, i))
      emitf(b, "  %s_forward(n%s);\n", l->cname,
            layer_units[l->kind]->forward_train ? ", train" : "");
  }
  int fused = gen_fused_sgd(g->m);
  emitf(b, "}\n\nstatic void backward(int n, const unsigned char *y, int step) {\n"
        "  %sloss_backward(n, y);\n", fused ? "" : "(void)step;\n  ");
  for (int i = ir->nlayers - 2; i >= 0; i--)
    if (!layer_units[ir->layers[i].kind]->alias && !relu_pooled(ir, i))
      emitf(b, "  %s_backward(n%s);\n", ir->layers[i].cname,
            fused && ir->layers[i].kind == L_LINEAR ? ", step" : "");
  emitf(b, "}\n\n");
}

/* The three entry points of RtNet. */
static void emit_entries(Gen *g) {
  emitf(g->b,
        "/* The loss and gradients of a batch; with step, the fused updates too. */\n"
        "static double passes(int n, const void *x, const unsigned char *y, int step) {\n"
        "  long correct = 0;\n"
        "  load_input(n, x);\n  forward(n, 1);\n"
        "  double loss = loss_%sforward(n, y, &correct) / n;\n"
        "  backward(n, y, step);\n  return loss;\n}\n\n"
        "static double grad(int n, const void *x, const unsigned char *y) {\n"
        "  return passes(n, x, y, 0);\n}\n\n"
        "static double train_step(int n, const void *x, const unsigned char *y) {\n"
        "  double loss = passes(n, x, y, 1);\n%s  optimizer_update();\n  return loss;\n}\n\n"
        "static void eval(int n, const void *x, const unsigned char *y,\n"
        "                 double *loss_sum, long *correct) {\n"
        "  load_input(n, x);\n  forward(n, 0);\n"
        "  *loss_sum += loss_forward(n, y, correct);\n}\n\n",
        g->m->label_smoothing > 0 ? "train_" : "",
        g->m->clip_grad_norm > 0 ? "  clip_grads();\n" : "");
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

/* health_NAME for each activation the model uses, once. */
static void emit_health_layers(Gen *g) {
  int done[NACTS] = {0};
  for (int i = 0; i < g->ir->nlayers; i++) {
    const Layer *l = &g->ir->layers[i];
    if (l->kind == L_ACT && !done[l->spec.act.type]++)
      act_emit_health(g->b, l->spec.act.type);
  }
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
            g->t[i].i64 ? "long long" : "real", g->t[i].cname, gen_numel(&g->t[i]));
      gen_count(g, gen_numel(&g->t[i]), !g->t[i].i64);
    }
  if (!n)
    return 0;
  for (int restore = 0; restore < 2; restore++) {
    emitf(b, "\nstatic void health_%s_buffers(void) {\n", restore ? "restore" : "save");
    for (int i = 0; i < g->ntensors; i++) {
      const Tensor *t = &g->t[i];
      const char *to = restore ? "" : "_kept", *from = restore ? "_kept" : "";
      if (t->kind == RT_BUF_ZERO || t->kind == RT_BUF_ONE)
        gen_call(b, "  memcpy(", "%s%s, %s%s, sizeof %s", t->cname, to, t->cname, from,
                 t->cname);
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
        "   RT_NLAYER_FIGURES values per activation layer into out. */\n"
        "static void health(int n, const void *x, const unsigned char *y,\n"
        "                   double *out) {\n",
        buffers ? "BatchNorm's buffers put back, " : "");
  emitf(b, "%s  grad(n, x, y);\n", buffers ? "  health_save_buffers();\n" : "");
  for (int i = 0; i < ir->nlayers && buffers; i++) /* y, which training keeps a plane at a time */
    if (bn_pooled(ir, i)) { /* (any momentum: the running statistics are put back) */
      const char *k = ir->layers[i].cname;
      gen_call(b, "  bn2d_forward(", "n, %d, %d, 1, 0.0, %s_eps, %s, %s_weight, %s_bias, "
               "%s_running_mean, %s_running_var, %s_mean, %s_var, %s_rstd, %s_xhat, %s_out",
               ir->layers[i].y.c, ir->layers[i].y.h * ir->layers[i].y.w, k,
               gen_out_name(ir, i - 1), k, k, k, k, k, k, k, k, k);
    }
  if (buffers)
    emitf(b, "  health_restore_buffers();\n");
  if (!ir->nhealth)
    emitf(b, "  (void)out; /* no activation layer */\n");
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (relu_pooled(ir, i))
      emitf(b, "  act_relu(n * %d, %s, %s_out, R(0)); /* in training, in %s */\n",
            l->out, gen_out_name(ir, i - 1), l->cname, l[1].cname);
    if (layer_units[l->kind]->health) /* units: features, or channels of h·w */
      emitf(b, "  health_%s(n, %d, %d, %s, %s_out, out + %d); /* %s */\n",
            act_names[l->spec.act.type], l->y.c, l->y.h * l->y.w, gen_out_name(ir, i - 1),
            l->cname, l->health * RT_NLAYER_FIGURES, l->hname);
  }
  emitf(b, "}\n\n");
}

/* The health section: what RtNet.health computes, kept apart from
   training, which never calls it. */
static void emit_health(Gen *g) {
  emitf(g->b, "/* ---- health figures of a probe batch (docs/health.md) ---- */\n\n");
  if (g->ir->nhealth) {
    emit_health_moments(g);
    emit_health_layers(g);
  }
  emit_health_entry(g, emit_health_buffers(g));
}

/* The names of the layers with health figures, and the figures each
   does not define. */
static void emit_health_tables(Gen *g) {
  const Ir *ir = g->ir;
  if (!ir->nhealth)
    return;
  emitf(g->b, "static const char *const health_names[%d] = {", ir->nhealth);
  for (int i = 0; i < ir->nlayers; i++)
    if (ir->layers[i].health >= 0)
      emitf(g->b, "%s\"%s\"", ir->layers[i].health ? ", " : "", ir->layers[i].hname);
  emitf(g->b, "};\nstatic const int health_na[%d] = {", ir->nhealth);
  for (int i = 0; i < ir->nlayers; i++)
    if (ir->layers[i].health >= 0) {
      int na = act_health_na(ir->layers[i].spec.act.type);
      emitf(g->b, "%s%s", ir->layers[i].health ? ",\n  " : "\n  ",
            na == 0 ? "0" : na == 1 << RT_SATURATED ? "1 << RT_SATURATED"
                                                    : "1 << RT_SATURATED | 1 << RT_DEAD");
    }
  emitf(g->b, ",\n}; /* the figures each does not define */\n\n");
}

int emit_has_batchnorm(const Ir *ir) {
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (l->kind == L_BATCHNORM || (l->kind == L_BATCHNORM2D && l->x.h * l->x.w == 1))
      return 1;
  }
  return 0;
}

/* The training recipe the runtime follows (RtRecipe), when the model
   has one: its lr schedule, validation split and early stopping. */
static void emit_recipe(Gen *g) {
  const Model *m = g->m;
  const RtRecipe *r = &m->recipe;
  static const char *const scheds[] = {
#define NAME_(e, s) #e,
    RT_SCHEDULES(NAME_)
#undef NAME_
  };
  if (!fe_has_recipe(m))
    return;
  emitf(g->b, "/* the training recipe (docs/model-format.md): the runtime follows it */\n"
        "static const RtRecipe recipe = {\n  .schedule = %s, .lr = %s,\n"
        "  .step_size = %d, .gamma = %s, .T_max = %d, .eta_min = %s,\n",
        scheds[r->schedule], gen_num(m->opt.lr), r->step_size, gen_num(r->gamma), r->T_max,
        gen_num(r->eta_min));
  emitf(g->b, "  .max_lr = %s, .total_steps = %ld, .pct_start = %s,\n  .anneal = %s,\n"
        "  .div_factor = %s, .final_div_factor = %s, .cycle_momentum = %d,\n"
        "  .base_momentum = %s, .max_momentum = %s,\n",
        gen_num(r->max_lr), r->total_steps, gen_num(r->pct_start),
        r->anneal == RT_ANNEAL_COS ? "RT_ANNEAL_COS" : "RT_ANNEAL_LINEAR",
        gen_num(r->div_factor), gen_num(r->final_div_factor), r->cycle_momentum,
        gen_num(r->base_momentum), gen_num(r->max_momentum));
  emitf(g->b, "  .warmup = %ld, .val_count = %ld, .val_fraction = %s, .patience = %d,\n};\n\n",
        r->warmup, r->val_count, gen_num(r->val_fraction), r->patience);
}

/* The tensor table and mlpc_net(). The rng, recipe and hyper fields
   appear only when they are not the default, so that models without them
   keep their bytes. */
static void emit_table(Gen *g) {
  Buf *b = g->b;
  const Model *m = g->m;
  static const char *const kinds[] = {"RT_WEIGHT",   "RT_BIAS",    "RT_GAMMA", "RT_BETA",
                                      "RT_BUF_ZERO", "RT_BUF_ONE", "RT_STATE", "RT_GRAD",
                                      "RT_SEED"};
  static const char *const inits[] = {
#define NAME_(e, s) #e,
    RT_INIT_SCHEMES(NAME_)
#undef NAME_
  };
  emitf(b, "static RtTensor tensors[%d] = {\n", g->ntensors);
  for (int i = 0; i < g->ntensors; i++) {
    const Tensor *t = &g->t[i];
    char head[160], tail[128];
    snprintf(head, sizeof head, "  {\"%s\", %s, %s, %d, %s, %d, %d,", t->tname,
             kinds[t->kind], t->i64 ? "RT_I64" : m->dtype == DT_F64 ? "RT_F64" : "RT_F32",
             t->ndim, shape_init(t), t->fan_in, t->fan_out);
    snprintf(tail, sizeof tail, "%s, %d, %s},", t->cname, t->transposed, inits[t->init]);
    emitf(b, "%s%s%s\n", head, strlen(head) + 1 + strlen(tail) > 100 ? "\n   " : " ", tail);
  }
  emitf(b, "};\n\n");
  emit_health_tables(g);
  emit_recipe(g);
  emitf(b, "static const RtNet net = {\n  .name = ");
  emit_cstring(b, m->name);
  if (m->shape[0])
    emitf(b, ",\n  .shape = {%d, %d, %d}", m->shape[0], m->shape[1], m->shape[2]);
  emitf(b, ",\n  .input = %d,\n  .output = %d,\n  .batch = B,\n"
        "  .dtype = %s,\n  .init = %s,%s\n  .has_batchnorm = %d,\n"
        "  .ntensors = %d,\n  .tensors = tensors,\n"
        "  .train_step = train_step,\n  .eval = eval,\n  .grad = grad,\n"
        "  .health = health,\n  .nhidden = %d,\n  .health_names = %s,\n"
        "  .health_na = %s,\n  .sequential = %d,\n  .x_real = &x_real,\n",
        m->input, m->output, m->dtype == DT_F64 ? "RT_F64" : "RT_F32",
        inits[m->init], m->rng == RT_RNG_TORCH ? "\n  .rng = RT_RNG_TORCH," : "",
        emit_has_batchnorm(g->ir), g->ntensors, g->ir->nhealth,
        g->ir->nhealth ? "health_names" : "0", g->ir->nhealth ? "health_na" : "0",
        g->ir->sequential);
  if (fe_has_recipe(m))
    emitf(b, "  .recipe = &recipe,\n");
  if (fe_scheduled(m))
    emitf(b, "  .hyper = opt_hyper,\n");
  emitf(b, "};\n\nconst RtNet *mlpc_net(void) { return &net; }\n");
}

/* A one-line description of the model, for the header comment. */
static void emit_banner(Gen *g) {
  const Model *m = g->m;
  char layers[1024];
  ir_describe(g->ir, layers, sizeof layers);
  char text[1400];
  snprintf(text, sizeof text, "%s: %s, init %s, %s, batch %d, %s; generated by mlpc",
           emit_comment_name(m->name), layers, init_names[m->init], opt_names[m->opt.type],
           m->batch_size, dtype_names[m->dtype]);
  gen_comment(g->b, 0, text);
  emitf(g->b, "\n");
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
  emit_hyper(&g);
  emit_activation_decls(&g);
  emit_layers(&g);
  emit_optimizer(&g);
  emit_clip(&g);
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

/* The multiply-adds of one sample through the dense layers (linear and
   conv2d, forward): the work whose kernels are worth inlining. */
static long dense_work(const Ir *ir) {
  long w = 0;
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    if (l->kind == LK_LINEAR)
      w += (long)l->in * l->out;
    else if (l->kind == LK_CONV2D)
      w += (long)l->out * l->x.c * l->spec.kernel[0] * l->spec.kernel[1];
  }
  return w;
}

int emit_inlines(const Ir *ir, int backend) {
  return backend == BACKEND_TRAINER ||
         (backend != BACKEND_TCC && dense_work(ir) >= EMIT_INLINE_WORK);
}

/* What comes before the model: the interface, `real` and its math, and
   the kernels: all inlined (a trainer), the dense ones inlined and the
   small ones mlpc's (gcc's unit when emit_inlines), or all mlpc's. */
static void emit_prelude(const Ir *ir, int backend, Buf *b) {
  int f32 = ir->m->dtype == DT_F32;
  const char *sfx = f32 ? "f" : "";
  emitf(b, "#include <math.h>\n#include <string.h>\n");
  /* gelu's constants: POSIX, not ISO C, so absent under gcc -std=c11 */
  emitf(b, "#ifndef M_SQRT1_2\n#define M_SQRT1_2 0x1.6a09e667f3bcdp-1\n#endif\n"
        "#ifndef M_2_SQRTPI\n#define M_2_SQRTPI 0x1.20dd750429b6dp+0\n#endif\n");
  paste(b, net_h);
  emitf(b, "\ntypedef %s real;\n#define R(c) ((real)(c))\n", f32 ? "float" : "double");
  emitf(b, "#define ALIGNED _Alignas(64) /* on a cache line, under the "
        "kernels' vectors */\n");
  emitf(b, "#define EXP exp%s\n#define LOG log%s\n#define TANH tanh%s\n"
        "#define ERF erf%s\n#define SQRT sqrt%s\n#define FMA fma%s\n\n", sfx, sfx, sfx,
        sfx, sfx, sfx);
  if (ir->fma)
    emitf(b, "#define MLPC_FMA 1 /* the fma arithmetic: fused multiply-adds in the kernels */\n");
  if (!emit_inlines(ir, backend))
    emitf(b, "#define MLPC_KERNEL_PROTOTYPES /* the kernels are mlpc's, called */\n");
  else if (backend != BACKEND_TRAINER)
    emitf(b, "#define MLPC_KERNEL_SMALL_CALLED /* the dense kernels inlined, the small "
          "ones mlpc's */\n");
  paste(b, rmath_h);
  paste(b, acts_h);
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
    emitf(b, "/* A standalone trainer generated by mlpc, fma arithmetic. Build:\n"
          "   cc -O2 -march=native -ffp-contract=off FILE.c -o trainer -lm -lz */\n"
          "/* -march=native (or -mfma) makes each fma one instruction, and\n"
          "   -ffp-contract=off keeps every other operation as written: the bits of\n"
          "   mlpc --run. Plain cc -O2 gives them too, slower, through the C\n"
          "   library's fma. */\n");
  else
    emitf(b, "/* A standalone trainer generated by mlpc, strict arithmetic. Build:\n"
          "   cc -O2 FILE.c -o trainer -lm -lz */\n"
          "/* Strict needs no flag; with -march=native add -ffp-contract=off, or a\n"
          "   fused multiply-add would change the bits of mlpc --run. */\n");
}

int emit_trainer(const Ir *ir, Buf *b) {
  const Model *m = ir->m;
  emit_build_comment(ir, b);
  emitf(b, "#define _GNU_SOURCE\n");
  emit_unit(ir, BACKEND_TRAINER, b);
  emitf(b, "\n/* ---- the runtime ---- */\n");
  paste(b, rt_h);
  for (const char *const *src = embedded_runtime; *src; src++)
    paste(b, *src);
  emitf(b, "\n/* ---- the model's defaults ---- */\n");
  emitf(b, "static const char trainer_data[] = ");
  emit_cstring(b, m->data);
  emitf(b, ";\nstatic const RtOptions trainer_defaults = {\n"
        "  .epochs = %d, .seed = %lluULL, .max_batches = %ld, .shuffle = 1};\n\n",
        m->epochs, (unsigned long long)m->seed, m->max_batches);
  paste(b, trainer_main_c);
  return b->oom ? -1 : 0;
}
