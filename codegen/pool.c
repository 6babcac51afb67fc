/*
 * pool.c — max and average pooling over windows of a sample's (H, W)
 * planes, each channel alone (nn.MaxPool2d, nn.AvgPool2d: no padding,
 * floor mode). The arithmetic is rt/kernels.h's maxpool2d_* and
 * avgpool2d_*: the maximum with PyTorch's rule for ties and NaN, the
 * window's sum divided by its size.
 */
#include <stdio.h>
#include "gen.h"

/* Max pooling keeps where each maximum was, for the backward pass. */
static void decls(Gen *g, const Layer *l) {
  if (l->kind != L_MAXPOOL2D)
    return;
  emitf(g->b, "static int %s_arg[B * %d]; /* (B, %d, %d, %d) h * W + w of each maximum */\n",
        l->cname, l->out, l->y.c, l->y.h, l->y.w);
  g->bytes += (size_t)g->m->batch_size * l->out * sizeof(int);
}

/* Max pooling of the relu before it, whose input is x: one kernel pair,
   the backward's dx that of relu's input. Where a BatchNorm2d comes
   before the relu, the forward normalises too, from the BatchNorm2d's
   input and statistics, writing its x̂, and its y a plane at a time into
   the BatchNorm2d's _plane; the backward is then the BatchNorm2d's. */
static void emit_relu_pooled(Ctx *c, const char *geo, const char *x) {
  Buf *b = c->g->b;
  const char *p = c->p;
  if (c->bn) {
    const char *k = c->bn->cname;
    emitf(b, "static void %s_forward(int n) { /* %s(relu(%s(%s))) */\n", p, p, k, c->bn_in);
    gen_call(b, "  maxpool2d_bn_relu_forward(", "n, %s, %s, %s_mean, %s_rstd, %s_weight, "
             "%s_bias, %s_xhat, %s_plane, %s_out, %s_arg", geo, c->bn_in, k, k, k, k, k, k, p, p);
  } else {
    emitf(b, "static void %s_forward(int n) { /* %s(relu(%s)) */\n", p, p, x);
    gen_call(b, "  maxpool2d_relu_forward(", "n, %s, %s, %s_out, %s_arg", geo, x, p, p);
  }
  emitf(b, "}\n\nstatic void %s_backward(int n) {\n", p);
  if (c->bn)
    emitf(b, "  (void)n; /* in %s's backward (maxpool2d_relu_bn_backward) */\n", c->bn->cname);
  else
    gen_call(b, "  maxpool2d_relu_backward(", "n, %s, d%s_out, %s_arg, %s_out, d%s", geo, p, p,
             p, x);
  emitf(b, "}\n\n");
}

static void emit(Ctx *c) {
  Buf *b = c->g->b;
  const Layer *l = c->l;
  const Spec *s = &l->spec;
  const char *p = c->p, *kind = l->kind == L_MAXPOOL2D ? "max" : "avg";
  char geo[96], arg[40] = "";
  snprintf(geo, sizeof geo, "%d, %d, %d, %d, %d, %d, %d", l->x.c, l->x.h, l->x.w,
           s->kernel[0], s->kernel[1], s->stride[0], s->stride[1]);
  if (l->kind == L_MAXPOOL2D)
    snprintf(arg, sizeof arg, ", %s_arg", p);
  emitf(b, "/* %s: %s(kernel_size=(%d, %d), stride=(%d, %d)),\n"
        "   (B, %d, %d, %d) -> (B, %d, %d, %d) */\n",
        p, l->kind == L_MAXPOOL2D ? "MaxPool2d" : "AvgPool2d", s->kernel[0], s->kernel[1],
        s->stride[0], s->stride[1], l->x.c, l->x.h, l->x.w, l->y.c, l->y.h, l->y.w);
  if (c->relu_in) {
    emit_relu_pooled(c, geo, c->relu_in);
    return;
  }
  emitf(b, "static void %s_forward(int n) {\n  %spool2d_forward(n, %s, %s, %s_out%s);\n}\n\n",
        p, kind, geo, c->in, p, arg);
  emitf(b, "static void %s_backward(int n) {\n", p);
  if (c->first)
    emitf(b, "  (void)n; /* the input has no gradient */\n}\n\n");
  else
    emitf(b, "  %spool2d_backward(n, %s, d%s_out%s, d%s);\n}\n\n", kind, geo, p, arg, c->in);
}

/* ---- inference ---- */

/* Each window of each channel: its maximum by PyTorch's rule (a larger
   value or NaN takes over), or its sum row by row over its size. */
static void infer_forward(Inf *I, const Layer *l) {
  const Spec *s = &l->spec;
  int max = l->kind == L_MAXPOOL2D;
  emitf(I->b, "/* %s: %s, x (%d, %d, %d) -> y (%d, %d, %d) */\n", l->cname,
        max ? "MaxPool2d" : "AvgPool2d", l->x.c, l->x.h, l->x.w, l->y.c, l->y.h, l->y.w);
  emitf(I->b, "static void %s_forward(const real *x, real *y) {\n"
        "  for (int c = 0; c < %d; c++)\n"
        "    for (int oh = 0; oh < %d; oh++)\n"
        "      for (int ow = 0; ow < %d; ow++) {\n"
        "        const real *p = x + (c * %d + oh * %d) * %d + ow * %d;\n"
        "        real acc = %s;\n"
        "        for (int kh = 0; kh < %d; kh++)\n"
        "          for (int kw = 0; kw < %d; kw++) {\n"
        "            real v = p[kh * %d + kw];\n",
        l->cname, l->x.c, l->y.h, l->y.w, l->x.h, s->stride[0], l->x.w, s->stride[1],
        max ? "p[0]" : "0", s->kernel[0], s->kernel[1], l->x.w);
  if (max)
    emitf(I->b, "            if (v > acc || v != v)\n              acc = v;\n");
  else
    emitf(I->b, "            acc += v;\n");
  emitf(I->b, "          }\n        y[(c * %d + oh) * %d + ow] = acc", l->y.h, l->y.w);
  if (!max)
    emitf(I->b, " / R(%d)", s->kernel[0] * s->kernel[1]);
  emitf(I->b, ";\n      }\n}\n\n");
}

const LayerUnit unit_pool = {
  .decls = decls,
  .emit = emit,
  .infer_forward = infer_forward,
  .out_of_place = 1,
};
