/*
 * batchnorm.c — BatchNorm1d, per feature over the batch, and BatchNorm2d,
 * per channel over the batch and the (H, W) positions; batch statistics
 * in training (biased variance), running statistics in evaluation. The
 * arithmetic is rt/kernels.h's bn_forward and bn_backward (1d) and
 * bn2d_forward and bn2d_backward; where relu and max pooling follow a
 * BatchNorm2d, its forward computes the statistics alone and the
 * pooling's kernel normalises (maxpool2d_bn_relu_forward), and its
 * backward is the three layers' (maxpool2d_relu_bn_backward). Inference C
 * folds a BatchNorm1d into a linear layer right before it, and otherwise
 * computes the evaluation mode.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "gen.h"

/* weight (γ) and bias (β), trained; running_mean, running_var and
   num_batches_tracked, buffers; as nn.BatchNorm1d names them. */
static void plan(Gen *g, const Layer *l) {
  int C = l->x.c;
  gen_tensor(g, l->cname, l->tname, "weight", RT_GAMMA, C, 0)->init = l->init;
  gen_tensor(g, l->cname, l->tname, "bias", RT_BETA, C, 0)->init = l->init;
  gen_tensor(g, l->cname, l->tname, "running_mean", RT_BUF_ZERO, C, 0);
  gen_tensor(g, l->cname, l->tname, "running_var", RT_BUF_ONE, C, 0);
  gen_tensor(g, l->cname, l->tname, "num_batches_tracked", RT_BUF_ZERO, 1, 0)->i64 = 1;
}

/* x̂, the statistics and the backward sums. A BatchNorm2d's x̂ lives in
   the buffer of its input's gradient, which its backward writes over it:
   bn2d_backward reads a channel's x̂ before it writes that channel's dx,
   at the same places, and nothing reads x̂ afterwards (the health
   figures compute it again). */
static void decls(Gen *g, const Layer *l) {
  const char *p = l->cname;
  int C = l->x.c;
  char what[64];
  if (l->kind == L_BATCHNORM2D) {
    snprintf(what, sizeof what, "(B, %d), in the input's gradient", l->out);
    gen_commented(g->b, "", "static real *const %s_xhat = d%s;", what, p,
                  gen_out_name(g->ir, (int)(l - g->ir->layers) - 1));
  } else {
    snprintf(what, sizeof what, "(B, %d)", l->out);
    gen_commented(g->b, "", "static ALIGNED real %s_xhat[B * %d];", what, p, l->out);
    gen_count(g, (size_t)g->m->batch_size * l->out, 1);
  }
  snprintf(what, sizeof what, "(%d) 1/sqrt(var + eps)", C);
  gen_commented(g->b, "", "static double %s_rstd[%d];", what, p, C);
  snprintf(what, sizeof what, "(%d) of the batch, or running", C);
  gen_commented(g->b, "", "static double %s_mean[%d], %s_var[%d];", what, p, C, p, C);
  snprintf(what, sizeof what, "(%d) sums of dy, dy*xhat", C);
  gen_commented(g->b, "", "static double %s_sdy[%d], %s_sdyx[%d];", what, p, C, p, C);
  gen_count(g, 5 * (size_t)C, 0);
}

/* The kernel's name and its size arguments: "bn_forward(", "n, C" or
   "bn2d_forward(", "n, C, S". */
static const char *call(const Layer *l, const char *pass, char *sizes, size_t len) {
  static char head[40];
  int two = l->kind == L_BATCHNORM2D;
  snprintf(head, sizeof head, "  bn%s_%s(", two ? "2d" : "", pass);
  if (two)
    snprintf(sizes, len, "n, %d, %d", l->x.c, l->x.h * l->x.w);
  else
    snprintf(sizes, len, "n, %d", l->x.c);
  return head;
}

static void emit(Ctx *c) {
  Buf *b = c->g->b;
  const Layer *l = c->l;
  const Norm *nm = &l->spec.norm;
  const char *p = c->p, *x = c->in;
  int C = l->x.c;
  if (l->kind == L_BATCHNORM2D)
    emitf(b, "/* %s: BatchNorm2d(%d, eps=%g), (B, %d, %d, %d) -> (B, %d, %d, %d) */\n", p, C,
          nm->eps, C, l->x.h, l->x.w, C, l->x.h, l->x.w);
  else
    emitf(b, "/* %s: BatchNorm1d(%d, eps=%g), (B, %d) -> (B, %d) */\n", p, C, nm->eps, C, C);
  char name[64];
  gen_name(name, sizeof name, "%s_eps", p);
  gen_const(c->g, 1, name, nm->eps, "eps %s", gen_decimal(nm->eps));
  if (!nm->cumulative) {
    gen_name(name, sizeof name, "%s_momentum", p);
    gen_const(c->g, 1, name, nm->momentum, "momentum %s", gen_decimal(nm->momentum));
  }
  emitf(b, "\nstatic void %s_forward(int n, int train) {\n"
        "  if (train)\n    %s_num_batches_tracked[0]++;\n", p, p);
  if (nm->cumulative)
    emitf(b, "  double m = 1.0 / %s_num_batches_tracked[0]; /* cumulative average */\n", p);
  char m[64];
  gen_name(m, sizeof m, nm->cumulative ? "m" : "%s_momentum", p);
  char sizes[40], out[80];
  const char *head = call(l, "forward", sizes, sizeof sizes);
  if (c->pooled) { /* the statistics alone */
    emitf(b, "  /* x̂ and y: in %s's kernel, a plane at a time */\n", l[2].cname);
    gen_name(out, sizeof out, "0, 0");
  } else
    gen_name(out, sizeof out, "%s_xhat, %s_out", p, p);
  gen_call(b, head, "%s, train, %s, %s_eps, %s, %s_weight, %s_bias, %s_running_mean, "
           "%s_running_var, %s_mean, %s_var, %s_rstd, %s", sizes, m, p,
           x, p, p, p, p, p, p, p, out);
  emitf(b, "}\n\nstatic void %s_backward(int n) {\n", p);
  if (c->pooled) { /* the max pooling's and relu's backward too, a channel at a time */
    const Layer *pool = &l[2];
    const Spec *ps = &pool->spec;
    gen_call(b, "  maxpool2d_relu_bn_backward(", "n, %d, %d, %d, %d, %d, %d, %d, d%s_out, %s_arg, "
             "%s_out, %s_xhat, %s_weight, %s_rstd, %s_sdy, %s_sdyx, d%s_weight, d%s_bias, "
             "%s_dy, d%s", C, l->x.h, l->x.w, ps->kernel[0], ps->kernel[1], ps->stride[0],
             ps->stride[1], pool->cname, pool->cname, pool->cname, p, p, p, p, p, p, p, p, x);
    emitf(b, "}\n\n");
    return;
  }
  head = call(l, "backward", sizes, sizeof sizes);
  gen_call(b, head, "%s, d%s_out, %s_xhat, %s_weight, %s_rstd, %s_sdy, %s_sdyx, "
           "d%s_weight, d%s_bias, d%s", sizes, p, p, p, p, p, p, p, p, x);
  emitf(b, "}\n\n");
}

/* ---- inference, where no linear layer comes right before ---- */

/* The running mean and 1/√(running_var + eps) in double, γ and β. */
static int infer_weights(Inf *I, const Layer *l) {
  if (inf_folded(I->ir, (int)(l - I->ir->layers)))
    return 0;
  static const char *const fields[] = {"running_mean", "running_var", "weight", "bias"};
  int C = l->x.c;
  double *v = inf_doubles(C);
  int rc = 0;
  for (int f = 0; f < 4 && !rc; f++) {
    const RtTensor *t = inf_find(I, l, fields[f]);
    char name[48], what[96];
    for (int c = 0; c < C; c++)
      v[c] = f == 1 ? 1 / sqrt(inf_at(t, c) + l->spec.norm.eps) : inf_at(t, c);
    snprintf(name, sizeof name, "%s_%s", l->cname, f == 1 ? "rstd" : fields[f]);
    snprintf(what, sizeof what, "(%d): %s%s.%s", C, f == 1 ? "1/sqrt of " : "", l->tname,
             fields[f]);
    rc = inf_array(I, name, what, v, C, f < 2);
  }
  free(v);
  return rc;
}

/* bn2d_forward's evaluation mode, in place: each channel's S positions. */
static void infer_forward_2d(Inf *I, const Layer *l) {
  const char *k = l->cname;
  int C = l->x.c, S = l->x.h * l->x.w;
  emitf(I->b, "/* %s: BatchNorm2d(%d), eval, in place on v (%d, %d, %d) */\n", k, C, C,
        l->x.h, l->x.w);
  emitf(I->b, "static void %s_forward(real *v) {\n"
        "  for (int c = 0; c < %d; c++)\n"
        "    for (int s = 0; s < %d; s++) {\n"
        "      real xh = (real)((v[c * %d + s] - %s_running_mean[c]) * %s_rstd[c]);\n"
        "      v[c * %d + s] = %s_weight[c] * xh + %s_bias[c];\n    }\n}\n\n",
        k, C, S, S, k, k, S, k, k);
}

/* bn_forward's evaluation mode, in place. */
static void infer_forward(Inf *I, const Layer *l) {
  const char *k = l->cname;
  if (inf_folded(I->ir, (int)(l - I->ir->layers)))
    return;
  if (l->kind == L_BATCHNORM2D) {
    infer_forward_2d(I, l);
    return;
  }
  emitf(I->b, "/* %s: BatchNorm1d(%d), eval, in place on v (%d) */\n", k, l->out, l->out);
  emitf(I->b, "static void %s_forward(real *v) {\n"
        "  for (int c = 0; c < %d; c++) {\n"
        "    real xh = (real)((v[c] - %s_running_mean[c]) * %s_rstd[c]);\n"
        "    v[c] = %s_weight[c] * xh + %s_bias[c];\n  }\n}\n\n",
        k, l->out, k, k, k, k);
}

const LayerUnit unit_batchnorm = {
  .plan = plan,
  .decls = decls,
  .emit = emit,
  .forward_train = 1,
  .infer_weights = infer_weights,
  .infer_forward = infer_forward,
};
