/*
 * layernorm.c — LayerNorm over each sample's features: the same in
 * training and evaluation, with the sample's own statistics, so inference
 * C computes it as training does.
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
  const char *p = c->p, *x = c->in;
  int D = c->l->out;
  emitf(c->g->b, "/* %s: LayerNorm(%d, eps=%g), (B, %d) -> (B, %d) */\n", p, D,
        c->l->spec.norm.eps, D, D);
  char eps[64];
  gen_name(eps, sizeof eps, "%s_eps", p);
  gen_const(c->g, 1, eps, c->l->spec.norm.eps, "eps %s", gen_decimal(c->l->spec.norm.eps));
  emitf(c->g->b, "\nstatic void %s_forward(int n, int train) {\n"
        "  (void)train; /* the same in training and evaluation */\n"
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
        p, x, D, D, D, D, D, eps, p, D, p, D, p, D, p, p);
}

static void emit_backward(Ctx *c) {
  Buf *b = c->g->b;
  const char *p = c->p, *x = c->in;
  int D = c->l->out;
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
    emitf(b, "    double rstd = %s_rstd[r];\n"
          "    for (int c = 0; c < %d; c++) {\n"
          "      double g = (double)%s_weight[c] * dy[c];\n"
          "      d%s[r * %d + c] = (real)((%d * g - sg - xh[c] * sgx) * rstd / %d);\n    }\n",
          p, D, p, x, D, D, D);
  emitf(b, "  }\n}\n\n");
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
