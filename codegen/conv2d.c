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

/* Whether mlpc's conv2d_forward computes l by Winograd's F(2×2, 3×3):
   rt/kernels.h's conv_by_wino, for the model's real (WINO_V lanes, its
   scratch in col's C·KH·KW·OH·OW reals). Inference C then computes the
   same operations (wino_forward), so that its logits keep mlpc's bits. */
static int by_wino(const Inf *I, const Layer *l) {
  const Spec *s = &l->spec;
  int V = I->f32 ? 16 : 8, C = l->x.c, O = l->y.c;
  long scratch = 16L * C * ((O + 15) / 16 * 16) + 16L * C * V + 16L * 16 * V;
  return s->kernel[0] == 3 && s->kernel[1] == 3 && s->stride[0] == 1 && s->stride[1] == 1 &&
         C >= 8 && O >= 8 && 2 * ((l->y.w + 1) / 2) + 2 <= V &&
         scratch <= 9L * C * l->y.h * l->y.w;
}

/* Whether l's output takes a bias in inference C: its own, or that of a
   norm folded in (F(2×2, 3×3) adds none without; the direct sums start
   from NAME_bias, zeros without). */
static int adds_bias(const Inf *I, const Layer *l) {
  return l->spec.bias || inf_folded_norm(I, l);
}

/* v rounded to the model's real (the sums of two reals in double, so
   rounded, are the sums in float: double has more than 2·24 + 2 bits). */
static double in_real(const Inf *I, double v) { return I->f32 ? (double)(float)v : v; }

/* U = G·g·Gᵀ of one 3×3 kernel g (reals), in kernels.h's wino_weights
   order, each operation rounded to the real: u[4·i + j]. */
static void wino_u(const Inf *I, const double *g, double *u) {
  double t[4][3];
  for (int j = 0; j < 3; j++) {
    t[0][j] = g[j];
    t[1][j] = in_real(I, in_real(I, in_real(I, g[j] + g[3 + j]) + g[6 + j]) * 0.5);
    t[2][j] = in_real(I, in_real(I, in_real(I, g[j] - g[3 + j]) + g[6 + j]) * 0.5);
    t[3][j] = g[6 + j];
  }
  for (int i = 0; i < 4; i++) {
    u[4 * i] = t[i][0];
    u[4 * i + 1] = in_real(I, in_real(I, in_real(I, t[i][0] + t[i][1]) + t[i][2]) * 0.5);
    u[4 * i + 2] = in_real(I, in_real(I, in_real(I, t[i][0] - t[i][1]) + t[i][2]) * 0.5);
    u[4 * i + 3] = t[i][2];
  }
}

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
  char name[48], what[160];
  snprintf(name, sizeof name, "%s_weight", l->cname);
  snprintf(what, sizeof what, "(%d, %d, %d, %d): %s.weight%s", O, l->x.c, l->spec.kernel[0],
           l->spec.kernel[1], l->tname, bn ? ", norm folded in" : "");
  if (by_wino(I, l)) { /* U (O, C, 16) of each kernel in its place */
    double *u = inf_doubles(O * K / 9 * 16), g[9];
    for (long k = 0; k < O * K / 9; k++) {
      for (int e = 0; e < 9; e++)
        g[e] = in_real(I, wf[k * 9 + e]);
      wino_u(I, g, u + k * 16);
    }
    free(wf);
    wf = u, K = K / 9 * 16;
    snprintf(name, sizeof name, "%s_u", l->cname);
    snprintf(what, sizeof what, "(%d, %d, 16): G·g·Gᵀ of %s.weight%s", O, l->x.c, l->tname,
             bn ? ", norm folded in" : "");
  }
  int rc = inf_array(I, name, what, wf, O * K, 0);
  if (!by_wino(I, l) || adds_bias(I, l))
    rc = rc ? rc : inf_bias(I, l, b, O, bn);
  free(wf);
  free(b);
  return rc;
}

/* F(2×2, 3×3) as kernels.h's conv_wino computes each output: for each
   2×2 tile of outputs, M = Σ_c U·V one channel at a time, V = Bᵀ·d·B of
   the channel's 4×4 tile d of the padded input, then Aᵀ·M·A, then the
   bias (with one, or a norm folded in). */
static void wino_forward(Inf *I, const Layer *l, const char *what) {
  const Spec *s = &l->spec;
  const char *k = l->cname;
  char bias[64] = "";
  if (adds_bias(I, l))
    snprintf(bias, sizeof bias, " + %s_bias[o]", k);
  gen_comment(I->b, 0, what);
  emitf(I->b, "static void %s_forward(const real *x, real *y) {\n"
        "  for (int o = 0; o < %d; o++)\n"
        "    for (int oh = 0; oh < %d; oh += 2)\n"
        "      for (int ow = 0; ow < %d; ow += 2) {\n"
        "        real m[16] = {0}, s[2][4];\n"
        "        for (int c = 0; c < %d; c++) {\n"
        "          real d[4][4], t[4][4];\n"
        "          const real *u = %s_u + (o * %d + c) * 16;\n"
        "          for (int i = 0; i < 4; i++)\n"
        "            for (int j = 0; j < 4; j++) {\n"
        "              int ih = oh - %d + i, iw = ow - %d + j;\n"
        "              d[i][j] = ih >= 0 && ih < %d && iw >= 0 && iw < %d\n"
        "                          ? x[(c * %d + ih) * %d + iw] : (real)0;\n"
        "            }\n"
        "          for (int j = 0; j < 4; j++) {\n"
        "            t[0][j] = d[0][j] - d[2][j], t[1][j] = d[1][j] + d[2][j];\n"
        "            t[2][j] = d[2][j] - d[1][j], t[3][j] = d[1][j] - d[3][j];\n"
        "          }\n"
        "          for (int i = 0; i < 4; i++) {\n"
        "            real v[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1],\n"
        "                         t[i][1] - t[i][3]};\n"
        "            for (int j = 0; j < 4; j++)\n"
        "              %s\n"
        "          }\n"
        "        }\n"
        "        for (int j = 0; j < 4; j++) {\n"
        "          s[0][j] = (m[j] + m[4 + j]) + m[8 + j];\n"
        "          s[1][j] = (m[4 + j] - m[8 + j]) - m[12 + j];\n"
        "        }\n"
        "        for (int i = 0; i < 2 && oh + i < %d; i++) {\n"
        "          real r[2] = {(s[i][0] + s[i][1]) + s[i][2], (s[i][1] - s[i][2]) - s[i][3]};\n"
        "          for (int j = 0; j < 2 && ow + j < %d; j++)\n"
        "            y[(o * %d + oh + i) * %d + ow + j] = r[j]%s;\n"
        "        }\n"
        "      }\n}\n\n",
        k, l->y.c, l->y.h, l->y.w, l->x.c, k, l->x.c, s->padding[0], s->padding[1], l->x.h,
        l->x.w, l->x.h, l->x.w,
        I->ir->fma ? "m[4 * i + j] = FMA(u[4 * i + j], v[j], m[4 * i + j]);"
                   : "m[4 * i + j] += u[4 * i + j] * v[j];",
        l->y.h, l->y.w, l->y.h, l->y.w,
        bias);
}

/* Each output: the bias, then the input under the window times the
   weight, channel by channel, row by row (conv2d_forward's order), the
   padding skipped; or where mlpc computes it by F(2×2, 3×3), the same
   operations (wino_forward). */
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
  char what[256];
  snprintf(what, sizeof what, "%s: Conv2d%s, x (%d, %d, %d) -> y (%d, %d, %d)%s", k, note,
           l->x.c, l->x.h, l->x.w, l->y.c, l->y.h, l->y.w,
           by_wino(I, l) ? ", by Winograd's F(2×2, 3×3) as mlpc computes it" : "");
  if (by_wino(I, l)) {
    wino_forward(I, l, what);
    return;
  }
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
