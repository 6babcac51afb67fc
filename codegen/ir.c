/*
 * ir.c — lowering: a checked model becomes a flat list of layers, in
 * forward order. Each hidden width k gives linear → [norm] → activation;
 * a last linear gives the logits, and the loss closes the list. Every
 * layer keeps the JSON path it came from, for late errors and dumps.
 */
#include <stdlib.h>
#include "../mlpc.h"

static const char *const layer_names[] = {
#define NAME_(e, s) s,
  LAYERS(NAME_)
#undef NAME_
};

const char *const arith_names[NARITHMETICS] = {
#define NAME_(e, s) s,
  ARITHMETICS(NAME_)
#undef NAME_
};

/* Appends one layer. */
static void add(Ir *ir, int kind, int index, int in, int out, const char *path) {
  if (ir->nlayers >= (int)(sizeof ir->layers / sizeof ir->layers[0]))
    abort(); /* unreachable: MAX_HIDDEN bounds the list */
  ir->layers[ir->nlayers++] = (Layer){kind, index, in, out, path};
}

static const char *const hidden_paths[MAX_HIDDEN] = {
  "hidden[0]", "hidden[1]", "hidden[2]", "hidden[3]", "hidden[4]", "hidden[5]",
  "hidden[6]", "hidden[7]", "hidden[8]", "hidden[9]", "hidden[10]",
  "hidden[11]", "hidden[12]", "hidden[13]", "hidden[14]", "hidden[15]",
};

/* Lowers m into ir. */
void ir_lower(const Model *m, Ir *ir) {
  ir->m = m;
  ir->nlayers = 0;
  ir->fma = ARITH_FMA;
  int in = m->input;
  for (int k = 0; k < m->nhidden; k++) {
    int h = m->hidden[k];
    add(ir, L_LINEAR, k + 1, in, h, hidden_paths[k]);
    if (m->norm.type == NORM_BATCH)
      add(ir, L_BATCHNORM, k + 1, h, h, "norm");
    if (m->norm.type == NORM_LAYER)
      add(ir, L_LAYERNORM, k + 1, h, h, "norm");
    add(ir, L_ACT, k + 1, h, h, "activation");
    in = h;
  }
  add(ir, L_LINEAR, m->nhidden + 1, in, m->output, "output");
  add(ir, L_LOSS, 0, m->output, m->output, "output");
}

/* Prints one line per layer: kind, block, shape, source path. */
void ir_dump(const Ir *ir, FILE *out) {
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    fprintf(out, "%2d  %-13s k=%d  (B, %d) -> (B, %d)  from %s\n", i,
            layer_names[l->kind], l->index, l->in, l->out, l->path);
  }
}
