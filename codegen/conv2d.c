/*
 * conv2d.c — the 2-d convolution, y = conv(x, W) + b (nn.Conv2d with
 * groups 1 and dilation 1; "bias": false drops b): x (B, C, H, W), W
 * (O, C, KH, KW) in PyTorch's layout, y (B, O, OH, OW), zeros padded on
 * each side. The arithmetic is rt/kernels.h's conv2d_forward and
 * conv2d_backward; every size is a constant of the call.
 */
#include <stdio.h>
#include <stdlib.h>
#include "gen.h"

/* weight (O, C, KH, KW), then bias (O), drawn by the layer's init with
   torch.nn.init's fans for convolutions: C·KH·KW in, O·KH·KW out. */
static void plan(Gen *g, const Layer *l) {
  const Spec *s = &l->spec;
  int k = s->kernel[0] * s->kernel[1];
  Tensor *w = gen_tensor(g, l->cname, l->tname, "weight", RT_WEIGHT, 1, 0);
  int dims[4] = {l->y.c, l->x.c, s->kernel[0], s->kernel[1]};
  gen_shape(w, 4, dims);
  w->fan_in = l->x.c * k, w->fan_out = l->y.c * k, w->init = l->init;
  if (!s->bias)
    return;
  Tensor *b = gen_tensor(g, l->cname, l->tname, "bias", RT_BIAS, l->y.c, 0);
  b->fan_in = w->fan_in, b->fan_out = w->fan_out, b->init = l->init;
}

/* Scratch for one sample's unfolded input (each pass builds it again)
   and its gradient. */
static void decls(Gen *g, const Layer *l) {
  const Spec *s = &l->spec;
  long col = (long)l->x.c * s->kernel[0] * s->kernel[1] * l->y.h * l->y.w;
  emitf(g->b, "static ALIGNED real %s_col[%ld], %s_dcol[%ld]; /* (C*KH*KW, OH*OW) a sample */\n",
        l->cname, col, l->cname, col);
  gen_count(g, 2 * (size_t)col, 1);
}

/* The geometry arguments of both kernels: C, H, W, O, KH, KW, SH, SW, PH, PW. */
static const char *geometry(const Layer *l) {
  static char g[96];
  const Spec *s = &l->spec;
  snprintf(g, sizeof g, "%d, %d, %d, %d, %d, %d, %d, %d, %d, %d", l->x.c, l->x.h, l->x.w,
           l->y.c, s->kernel[0], s->kernel[1], s->stride[0], s->stride[1], s->padding[0],
           s->padding[1]);
  return g;
}

static void emit(Ctx *c) {
  Buf *b = c->g->b;
  const Layer *l = c->l;
  const Spec *s = &l->spec;
  const char *p = c->p;
  emitf(b, "/* %s: Conv2d(%d, %d, kernel_size=(%d, %d), stride=(%d, %d), padding=(%d, %d)%s),\n"
        "   (B, %d, %d, %d) -> (B, %d, %d, %d) */\n",
        p, l->x.c, l->y.c, s->kernel[0], s->kernel[1], s->stride[0], s->stride[1],
        s->padding[0], s->padding[1], s->bias ? "" : ", bias=False", l->x.c, l->x.h, l->x.w,
        l->y.c, l->y.h, l->y.w);
  char bias[40] = "0", dbias[40] = "0", dx[48] = "0";
  if (s->bias)
    snprintf(bias, sizeof bias, "%s_bias", p), snprintf(dbias, sizeof dbias, "d%s_bias", p);
  if (!c->first)
    snprintf(dx, sizeof dx, "d%s", c->in);
  emitf(b, "static void %s_forward(int n) {\n", p);
  gen_call(b, "  conv2d_forward(", "n, %s, %s, %s_weight, %s, %s_col, %s_out", geometry(l),
           c->in, p, bias, p, p);
  emitf(b, "}\n\nstatic void %s_backward(int n) {%s\n", p,
        c->first ? " /* the input has no gradient: dx 0 */" : "");
  gen_call(b, "  conv2d_backward(", "n, %s, d%s_out, %s, %s_weight, %s_col, %s_dcol, "
           "d%s_weight, %s, %s", geometry(l), p, c->in, p, p, p, p, dbias, dx);
  emitf(b, "}\n\n");
}

/* ---- inference ---- */

/* The weight (O, C·KH·KW) and the bias (0 without one), with the
   BatchNorm2d after it (or none) folded in: W' = W·s, b' = (b - mean)·s +
   beta, channel by channel. */
static int infer_weights(Inf *I, const Layer *l) {
  int O = l->y.c;
  long K = (long)l->x.c * l->spec.kernel[0] * l->spec.kernel[1];
  const Layer *bn = inf_folded_norm(I, l);
  const RtTensor *w = inf_find(I, l, "weight");
  const RtTensor *bias = l->spec.bias ? inf_find(I, l, "bias") : NULL;
  double *wf = inf_doubles(O * K), *b = inf_doubles(O);
  for (int o = 0; o < O; o++) {
    double mean = 0, s = 1, beta = 0;
    if (bn)
      inf_bn_terms(I, bn, o, &mean, &s, &beta);
    b[o] = ((bias ? inf_at(bias, o) : 0) - mean) * s + beta;
    for (long k = 0; k < K; k++)
      wf[o * K + k] = inf_at(w, o * K + k) * s;
  }
  char name[48], what[128];
  snprintf(name, sizeof name, "%s_weight", l->cname);
  snprintf(what, sizeof what, "(%d, %d, %d, %d): %s.weight%s", O, l->x.c, l->spec.kernel[0],
           l->spec.kernel[1], l->tname, bn ? ", norm folded in" : "");
  int rc = inf_array(I, name, what, wf, O * K, 0);
  rc = rc ? rc : inf_bias(I, l, b, O, bn);
  free(wf);
  free(b);
  return rc;
}

/* Each output: the bias, then the input under the window times the
   weight, channel by channel, row by row (conv2d_forward's order), the
   padding skipped. */
static void infer_forward(Inf *I, const Layer *l) {
  const Spec *s = &l->spec;
  const char *k = l->cname;
  const char *mac = I->ir->fma
                        ? "acc = FMA(x[(c * %d + ih) * %d + iw], w[(c * %d + kh) * %d + kw], acc);"
                        : "acc += x[(c * %d + ih) * %d + iw] * w[(c * %d + kh) * %d + kw];";
  char note[96] = "";
  const Layer *bn = inf_folded_norm(I, l);
  if (bn)
    snprintf(note, sizeof note, " with %s (BatchNorm2d, eval) folded in", bn->cname);
  char what[192];
  snprintf(what, sizeof what, "%s: Conv2d%s, x (%d, %d, %d) -> y (%d, %d, %d)", k, note, l->x.c,
           l->x.h, l->x.w, l->y.c, l->y.h, l->y.w);
  gen_comment(I->b, 0, what);
  emitf(I->b, "static void %s_forward(const real *x, real *y) {\n"
        "  for (int o = 0; o < %d; o++)\n"
        "    for (int oh = 0; oh < %d; oh++)\n"
        "      for (int ow = 0; ow < %d; ow++) {\n"
        "        const real *w = %s_weight + o * %d;\n"
        "        real acc = %s_bias[o];\n"
        "        for (int c = 0; c < %d; c++)\n"
        "          for (int kh = 0; kh < %d; kh++) {\n"
        "            int ih = oh * %d - %d + kh;\n"
        "            if (ih < 0 || ih >= %d)\n              continue;\n"
        "            for (int kw = 0; kw < %d; kw++) {\n"
        "              int iw = ow * %d - %d + kw;\n"
        "              if (iw >= 0 && iw < %d)\n                ",
        k, l->y.c, l->y.h, l->y.w, k, l->x.c * s->kernel[0] * s->kernel[1], k, l->x.c,
        s->kernel[0], s->stride[0], s->padding[0], l->x.h, s->kernel[1], s->stride[1],
        s->padding[1], l->x.w);
  emitf(I->b, mac, l->x.h, l->x.w, s->kernel[0], s->kernel[1]);
  emitf(I->b, "\n            }\n          }\n"
        "        y[(o * %d + oh) * %d + ow] = acc;\n      }\n}\n\n", l->y.h, l->y.w);
}

const LayerUnit unit_conv2d = {
  .plan = plan,
  .decls = decls,
  .emit = emit,
  .infer_weights = infer_weights,
  .infer_forward = infer_forward,
  .out_of_place = 1,
};
