/*
 * linear.c — the linear layer, y = x·Wᵀ + b (nn.Linear; "bias": false
 * drops b). W is stored transposed, as wt (in, out) (rt/kernels.h).
 * In inference C a BatchNorm right after it is folded into W and b.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "gen.h"

/* weight (out, in), then bias (out), drawn by the layer's init. */
static void plan(Gen *g, const Layer *l) {
  Tensor *w = gen_tensor(g, l->cname, l->tname, "weight", RT_WEIGHT, l->out, l->in);
  w->transposed = 1;
  w->fan_in = l->in, w->fan_out = l->out, w->init = l->init;
  if (!l->spec.bias)
    return;
  Tensor *b = gen_tensor(g, l->cname, l->tname, "bias", RT_BIAS, l->out, 0);
  b->fan_in = l->in, b->fan_out = l->out, b->init = l->init;
}

/* The bias argument of a kernel call: NAME_bias, or 0. */
static const char *bias(const Ctx *c, const char *prefix) {
  static char s[64];
  if (!c->l->spec.bias)
    return "0";
  snprintf(s, sizeof s, "%s%s_bias", prefix, c->p);
  return s;
}

/* Forward through mm_xw; backward dx, then dW (with plain SGD's update
   fused in under step), then db. */
static void emit(Ctx *c) {
  Buf *b = c->g->b;
  const char *p = c->p;
  int I = c->l->in, O = c->l->out;
  emitf(b, "/* %s: Linear(%d, %d%s), (B, %d) -> (B, %d) */\n", p, I, O,
        c->l->spec.bias ? "" : ", bias=False", I, O);
  emitf(b, "static void %s_forward(int n) {\n"
        "  mm_xw(n, %d, %d, %s, %s_weight, %s, %s_out);\n}\n\n",
        p, O, I, c->in, p, bias(c, ""), p);
  int fused = gen_fused_sgd(c->g->m);
  if (fused)
    emitf(b, "/* With step, also the weight's SGD update, fused (after dx, which\n"
          "   reads the weight as it was). */\n");
  emitf(b, "static void %s_backward(int n%s) {\n", p, fused ? ", int step" : "");
  if (!c->first)
    emitf(b, "  mm_dx(n, %d, %d, d%s_out, %s_weight, d%s);\n", O, I, p, p, c->in);
  if (fused) {
    emitf(b, "  if (step)\n");
    gen_call(b, "    mm_dw_sgd(", "n, %d, %d, d%s_out, %s, d%s_weight, %s_weight, %s", O, I, p,
             c->in, p, p, gen_neg_lr(c->g->m));
    emitf(b, "  else\n  ");
  }
  emitf(b, "  mm_dw(n, %d, %d, d%s_out, %s, d%s_weight);\n", O, I, p, c->in, p);
  if (c->l->spec.bias)
    emitf(b, "  mm_db(n, %d, d%s_out, d%s_bias);\n", O, p, p);
  emitf(b, "}\n\n");
}

/* ---- inference ---- */

int inf_folded(const Ir *ir, int i) {
  if (i == 0)
    return 0;
  int k = ir->layers[i].kind, before = ir->layers[i - 1].kind;
  return (k == L_BATCHNORM && before == L_LINEAR) || (k == L_BATCHNORM2D && before == L_CONV2D);
}

const Layer *inf_folded_norm(const Inf *I, const Layer *l) {
  int i = (int)(l - I->ir->layers);
  return i + 1 < I->ir->nlayers && inf_folded(I->ir, i + 1) ? l + 1 : NULL;
}

int inf_bias(Inf *I, const Layer *l, const double *b, int o, const Layer *bn) {
  char name[48], what[128];
  int bias = l->spec.bias;
  snprintf(name, sizeof name, "%s_bias", l->cname);
  snprintf(what, sizeof what, "(%d): %s%s%s", o, bias ? l->tname : "no bias",
           bias ? ".bias" : "", bn ? ", norm folded in" : "");
  return inf_array(I, name, what, b, o, 0);
}

void inf_bn_terms(Inf *I, const Layer *bn, int c, double *mean, double *s, double *beta) {
  double var = inf_at(inf_find(I, bn, "running_var"), c);
  *mean = inf_at(inf_find(I, bn, "running_mean"), c);
  *s = inf_at(inf_find(I, bn, "weight"), c) * (1 / sqrt(var + bn->spec.norm.eps));
  *beta = inf_at(inf_find(I, bn, "bias"), c);
}

/* The weight, transposed to (in, out), and the bias (0 without one), with
   the BatchNorm after it (or none) folded in: W' = W·s,
   b' = (b - mean)·s + beta. */
static int infer_weights(Inf *I, const Layer *l) {
  int In = l->in, O = l->out;
  const Layer *bn = inf_folded_norm(I, l);
  const RtTensor *w = inf_find(I, l, "weight");
  const RtTensor *bias = l->spec.bias ? inf_find(I, l, "bias") : NULL;
  double *wt = inf_doubles((long)In * O), *b = inf_doubles(O);
  for (int o = 0; o < O; o++) {
    double mean = 0, s = 1, beta = 0;
    if (bn)
      inf_bn_terms(I, bn, o, &mean, &s, &beta);
    b[o] = ((bias ? inf_at(bias, o) : 0) - mean) * s + beta;
    for (int k = 0; k < In; k++)
      wt[(long)k * O + o] = inf_at(w, (long)o * In + k) * s;
  }
  char name[48], what[128];
  snprintf(name, sizeof name, "%s_wt", l->cname);
  snprintf(what, sizeof what, "(%d, %d): %s.weight transposed%s", In, O, l->tname,
           bn ? ", norm folded in" : "");
  int rc = inf_array(I, name, what, wt, (long)In * O, 0);
  rc = rc ? rc : inf_bias(I, l, b, O, bn);
  free(wt);
  free(b);
  return rc;
}

/* y = x·W'ᵀ + b', summed as mm_xw sums (bias first, then the inputs in
   order, zero inputs skipped), in the Ir's arithmetic. */
static void infer_forward(Inf *I, const Layer *l) {
  int In = l->in, O = l->out;
  const char *mac = I->ir->fma ? "y[o] = FMA(xi, w[o], y[o]);" : "y[o] += xi * w[o];";
  const char *k = l->cname;
  char note[96] = "";
  const Layer *bn = inf_folded_norm(I, l);
  if (bn)
    snprintf(note, sizeof note, " with %s (BatchNorm1d, eval) folded in", bn->cname);
  char what[192];
  snprintf(what, sizeof what, "%s: Linear(%d, %d)%s, x (%d) -> y (%d)", k, In, O, note, In, O);
  gen_comment(I->b, 0, what);
  emitf(I->b, "static void %s_forward(const real *x, real *y) {\n"
        "  for (int o = 0; o < %d; o++)\n    y[o] = %s_bias[o];\n"
        "  for (int i = 0; i < %d; i++) {\n"
        "    real xi = x[i];\n    if (xi == 0)\n      continue;\n"
        "    const real *w = %s_wt + i * %d;\n"
        "    for (int o = 0; o < %d; o++)\n      %s\n  }\n}\n\n",
        k, O, k, In, k, O, O, mac);
}

const LayerUnit unit_linear = {
  .plan = plan,
  .emit = emit,
  .infer_weights = infer_weights,
  .infer_forward = infer_forward,
  .out_of_place = 1,
};
