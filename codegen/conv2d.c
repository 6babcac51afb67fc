/*
 * conv2d.c — the 2-d convolution, y = conv(x, W) + b (nn.Conv2d with
 * groups 1 and dilation 1; "bias": false drops b): x (B, C, H, W), W
 * (O, C, KH, KW) in PyTorch's layout, y (B, O, OH, OW), zeros padded on
 * each side. The arithmetic is runtime/kernels.h's conv2d_forward and
 * conv2d_backward; every size is a constant of the call.
 */
#include <stdio.h>
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

/* The unfolded input of the batch (conv2d_forward fills it, backward
   reads it) and one sample's gradient of it. */
static void decls(Gen *g, const Layer *l) {
  const Spec *s = &l->spec;
  long col = (long)l->x.c * s->kernel[0] * s->kernel[1] * l->y.h * l->y.w;
  emitf(g->b, "static real %s_col[B * %ld], %s_dcol[%ld]; /* (C*KH*KW, OH*OW) a sample */\n",
        l->cname, col, l->cname, col);
  gen_count(g, ((size_t)g->m->batch_size + 1) * (size_t)col, 1);
}

/* The geometry arguments of both kernels: C, H, W, O, KH, KW, SH, SW, PH, PW. */
static void geometry(Buf *b, const Layer *l) {
  const Spec *s = &l->spec;
  emitf(b, "%d, %d, %d, %d, %d, %d, %d, %d, %d, %d", l->x.c, l->x.h, l->x.w, l->y.c,
        s->kernel[0], s->kernel[1], s->stride[0], s->stride[1], s->padding[0], s->padding[1]);
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
  emitf(b, "static void %s_forward(int n) {\n  conv2d_forward(n, ", p);
  geometry(b, l);
  emitf(b, ",\n                 %s, %s_weight, %s%s, %s_col, %s_out);\n}\n\n", c->in, p,
        s->bias ? p : "0", s->bias ? "_bias" : "", p, p);
  emitf(b, "static void %s_backward(int n) {\n  conv2d_backward(n, ", p);
  geometry(b, l);
  emitf(b, ",\n                  d%s_out, %s, %s_weight, %s_col, %s_dcol, d%s_weight, ", p,
        c->in, p, p, p, p);
  if (s->bias)
    emitf(b, "d%s_bias, ", p);
  else
    emitf(b, "0, ");
  if (c->first)
    emitf(b, "0); /* the input has no gradient */\n}\n\n");
  else
    emitf(b, "d%s);\n}\n\n", c->in);
}

const LayerUnit unit_conv2d = {
  .plan = plan,
  .decls = decls,
  .emit = emit,
};
