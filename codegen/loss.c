/*
 * loss.c — cross-entropy over the logits, through log-sum-exp
 * (runtime/kernels.h's xent_forward and xent_backward): forward returns
 * the summed loss of the n rows and counts the rows whose arg max is the
 * label. It closes every model; inference C has no loss.
 */
#include "gen.h"

/* Each row's log-sum-exp and the exponentials' scratch. */
static void decls(Gen *g, const Layer *l) {
  emitf(g->b, "static real loss_lse[B]; /* (B) logsumexp of each row */\n"
        "static real loss_exp[B * %d]; /* (B, %d) scratch: exponentials */\n",
        l->out, l->out);
  gen_count(g, (size_t)g->m->batch_size * (1 + l->out), 1);
}

static void emit(Ctx *c) {
  int K = c->l->out;
  const char *z = c->in;
  emitf(c->g->b, "/* loss: cross-entropy over (B, %d) logits */\n", K);
  emitf(c->g->b,
        "static double loss_forward(int n, const unsigned char *y, long *correct) {\n"
        "  return xent_forward(n, %d, %s, y, loss_lse, loss_exp, correct);\n}\n\n"
        "static void loss_backward(int n, const unsigned char *y) {\n"
        "  xent_backward(n, %d, %s, loss_lse, y, d%s);\n}\n",
        K, z, K, z, z);
}

const LayerUnit unit_loss = {
  .decls = decls,
  .emit = emit,
};
