/*
 * dropout.c — Dropout(p): in training each element is zeroed with
 * probability p and the rest scaled by 1/(1 − p), as PyTorch does; in
 * evaluation, and in inference C, the identity. The masks come from a
 * stream of mlpc's own, a function of the run's seed, the step and the
 * layer (rt/kernels.h's drop_key and drop_forward), so every backend
 * and the trainer draw the same ones.
 */
#include <stdio.h>
#include "gen.h"

/* The mask of the last training forward: 0 or 1/(1 − p). */
static void decls(Gen *g, const Layer *l) {
  emitf(g->b, "static ALIGNED real %s_mask[B * %d]; /* (B, %d) 0 or 1/(1 - p) */\n", l->cname,
        l->out, l->out);
  gen_count(g, (size_t)g->m->batch_size * l->out, 1);
}

static void emit(Ctx *c) {
  Buf *b = c->g->b;
  const char *p = c->p;
  int C = c->l->out;
  double prob = c->l->spec.p;
  emitf(b, "/* %s: Dropout(p=%g), %s -> %s */\n", p, prob, ir_shape(&c->l->x),
        ir_shape(&c->l->y));
  char name[64];
  gen_name(name, sizeof name, "%s_p", p);
  gen_const(c->g, 0, name, prob, "p %s", gen_decimal(prob));
  gen_name(name, sizeof name, "%s_keep", p);
  gen_const(c->g, 0, name, 1 - prob, "1 - p");
  emitf(b, "\nstatic void %s_forward(int n, int train) {\n"
        "  if (!train) {\n    memcpy(%s_out, %s, sizeof(real) * n * %d);\n    return;\n  }\n"
        "  unsigned long long key = drop_key(run_seed[0], optimizer_step[0], %d);\n",
        p, p, c->in, C, c->l->index);
  gen_call(b, "  drop_forward(", "n * %d, %s, %s_out, %s_mask, key, %s_p, R(1) / %s_keep", C,
           c->in, p, p, p, p);
  emitf(b, "}\n\n");
  emitf(b, "static void %s_backward(int n) {\n", p);
  if (!c->first)
    emitf(b, "  drop_backward(n * %d, d%s_out, %s_mask, d%s);\n", C, p, p, c->in);
  else
    emitf(b, "  (void)n; /* the input has no gradient */\n");
  emitf(b, "}\n\n");
}

const LayerUnit unit_dropout = {
  .decls = decls,
  .emit = emit,
  .forward_train = 1,
  .needs_seed = 1,
};
