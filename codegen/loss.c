/*
 * loss.c — cross-entropy over the logits, through log-sum-exp
 * (rt/kernels.h's xent_forward and xent_backward): forward returns
 * the summed loss of the n rows and counts the rows whose arg max is the
 * label. It closes every model; inference C has no loss. Under label
 * smoothing, training (loss_train_forward, and loss_backward) takes
 * CrossEntropyLoss(label_smoothing=eps), and evaluation plain
 * cross-entropy (loss_forward).
 */
#include "gen.h"

/* Each row's log-sum-exp, less its maximum, and the exponentials' scratch. */
static void decls(Gen *g, const Layer *l) {
  emitf(g->b, "static real loss_lse[B]; /* (B) log-sum-exp of each row less its maximum */\n"
        "static ALIGNED real loss_exp[B * %d]; /* (B, %d) scratch: exponentials */\n",
        l->out, l->out);
  gen_count(g, (size_t)g->m->batch_size * (1 + l->out), 1);
}

/* Label smoothing's training loss and its gradient (kernels.h's
   xent_smooth): the smoothed target on the label, off it elsewhere. */
static void emit_smoothing(Ctx *c) {
  int K = c->l->out;
  double eps = c->g->m->label_smoothing;
  const char *z = c->in;
  emitf(c->g->b, "/* loss: CrossEntropyLoss(label_smoothing=%g) over (B, %d) logits in\n"
        "   training, plain cross-entropy in evaluation */\n", eps, K);
  gen_const(c->g, 1, "loss_label_smoothing", eps, "label_smoothing %s", gen_decimal(eps));
  gen_const(c->g, 0, "loss_on_label", 1 - eps, "1 - label_smoothing");
  gen_const(c->g, 0, "loss_off_label", eps / K, "label_smoothing / classes");
  emitf(c->g->b,
        "\nstatic double loss_forward(int n, const unsigned char *y, long *correct) {\n"
        "  return xent_forward(n, %d, %s, y, loss_lse, loss_exp, correct);\n}\n\n"
        "static double loss_train_forward(int n, const unsigned char *y, long *correct) {\n"
        "  double nll = xent_forward(n, %d, %s, y, loss_lse, loss_exp, correct);\n"
        "  return xent_smooth(n, %d, %s, loss_lse, nll, loss_label_smoothing);\n}\n\n",
        K, z, K, z, K, z);
  emitf(c->g->b, "static void loss_backward(int n, const unsigned char *y) {\n");
  gen_call(c->g->b, "  xent_smooth_backward(", "n, %d, %s, loss_lse, y, d%s, loss_on_label, "
           "loss_off_label", K, z, z);
  emitf(c->g->b, "}\n");
}

static void emit(Ctx *c) {
  int K = c->l->out;
  const char *z = c->in;
  if (c->g->m->label_smoothing > 0) {
    emit_smoothing(c);
    return;
  }
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
