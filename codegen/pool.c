/*
 * pool.c — max and average pooling over windows of a sample's (H, W)
 * planes, each channel alone (nn.MaxPool2d, nn.AvgPool2d: no padding,
 * floor mode). The arithmetic is runtime/kernels.h's maxpool2d_* and
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
  emitf(b, "static void %s_forward(int n) {\n  %spool2d_forward(n, %s, %s, %s_out%s);\n}\n\n",
        p, kind, geo, c->in, p, arg);
  emitf(b, "static void %s_backward(int n) {\n", p);
  if (c->first)
    emitf(b, "  (void)n; /* the input has no gradient */\n}\n\n");
  else
    emitf(b, "  %spool2d_backward(n, %s, d%s_out%s, d%s);\n}\n\n", kind, geo, p, arg, c->in);
}

const LayerUnit unit_pool = {
  .decls = decls,
  .emit = emit,
};
