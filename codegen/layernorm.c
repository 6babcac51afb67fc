/*
 * layernorm.c — LayerNorm over each sample's features: the same in
 * training and evaluation, with the sample's own statistics, so inference
 * C computes it as training does. The arithmetic is rt/kernels.h's
 * ln_forward and ln_backward.
 */
#include <stdio.h>
#include <stdlib.h>
#include "gen.h"

/* weight (γ) and bias (β), as nn.LayerNorm names them. */
static void plan(Gen *g, const Layer *l) {
  gen_tensor(g, l->cname, l->tname, "weight", RT_GAMMA, l->out, 0)->init = l->init;
  gen_tensor(g, l->cname, l->tname, "bias", RT_BETA, l->out, 0)->init = l->init;
}

/* x̂ and each row's 1/√(var + eps). */
static void decls(Gen *g, const Layer *l) {
  emitf(g->b, "static ALIGNED real %s_xhat[B * %d]; /* (B, %d) */\n"
        "static double %s_rstd[B]; /* (B) 1/sqrt(var + eps) */\n",
        l->cname, l->out, l->out, l->cname);
  gen_count(g, (size_t)g->m->batch_size * l->out, 1), gen_count(g, g->m->batch_size, 0);
}

static void emit_forward(Ctx *c) {
  const char *p = c->p;
  int D = c->l->out;
  emitf(c->g->b, "/* %s: LayerNorm(%d, eps=%g), (B, %d) -> (B, %d) */\n", p, D,
        c->l->spec.norm.eps, D, D);
  char eps[64];
  gen_name(eps, sizeof eps, "%s_eps", p);
  gen_const(c->g, 1, eps, c->l->spec.norm.eps, "eps %s", gen_decimal(c->l->spec.norm.eps));
  emitf(c->g->b, "\nstatic void %s_forward(int n, int train) {\n"
        "  (void)train; /* the same in training and evaluation */\n", p);
  gen_call(c->g->b, "  ln_forward(", "n, %d, %s, %s, %s_weight, %s_bias, %s_rstd, %s_xhat, "
           "%s_out", D, eps, c->in, p, p, p, p, p);
  emitf(c->g->b, "}\n\n");
}

static void emit_backward(Ctx *c) {
  const char *p = c->p;
  char dx[48] = "0"; /* the first layer's input has no gradient */
  if (!c->first)
    snprintf(dx, sizeof dx, "d%s", c->in);
  emitf(c->g->b, "static void %s_backward(int n) {\n", p);
  gen_call(c->g->b, "  ln_backward(", "n, %d, d%s_out, %s_xhat, %s_weight, %s_rstd, "
           "d%s_weight, d%s_bias, %s", c->l->out, p, p, p, p, p, p, dx);
  emitf(c->g->b, "}\n\n");
}

static void emit(Ctx *c) {
  emit_forward(c);
  emit_backward(c);
}

/* ---- inference ---- */

/* γ and β, unchanged. */
static int infer_weights(Inf *I, const Layer *l) {
  static const char *const fields[] = {"weight", "bias"};
  double *v = inf_doubles(l->out);
  int rc = 0;
  for (int f = 0; f < 2 && !rc; f++) {
    const RtTensor *t = inf_find(I, l, fields[f]);
    char name[48], what[64];
    for (int c = 0; c < l->out; c++)
      v[c] = inf_at(t, c);
    snprintf(name, sizeof name, "%s_%s", l->cname, fields[f]);
    snprintf(what, sizeof what, "(%d): %s.%s", l->out, l->tname, fields[f]);
    rc = inf_array(I, name, what, v, l->out, 0);
  }
  free(v);
  return rc;
}

/* The training code's forward, for one sample, in place. */
static void infer_forward(Inf *I, const Layer *l) {
  const char *k = l->cname;
  int D = l->out;
  emitf(I->b, "/* %s: LayerNorm(%d, eps=%g), in place on v (%d) */\n", k, D,
        l->spec.norm.eps, D);
  emitf(I->b, "static void %s_forward(real *v) {\n"
        "  double s = 0, var = 0;\n"
        "  for (int c = 0; c < %d; c++)\n    s += v[c];\n"
        "  double mean = s / %d;\n"
        "  for (int c = 0; c < %d; c++)\n    var += (v[c] - mean) * (v[c] - mean);\n"
        "  double rstd = 1 / sqrt(var / %d + %a);\n"
        "  for (int c = 0; c < %d; c++) {\n"
        "    real xh = (real)((v[c] - mean) * rstd);\n"
        "    v[c] = %s_weight[c] * xh + %s_bias[c];\n  }\n}\n\n",
        k, D, D, D, D, l->spec.norm.eps, D, k, k);
}

/* sqrt, in double. */
static const char *infer_needs(const Inf *I, const Layer *l) {
  (void)I, (void)l;
  return "sqrt";
}

const LayerUnit unit_layernorm = {
  .plan = plan,
  .decls = decls,
  .emit = emit,
  .forward_train = 1,
  .infer_weights = infer_weights,
  .infer_forward = infer_forward,
  .infer_needs = infer_needs,
};
