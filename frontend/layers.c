/*
 * layers.c — a model's layers as one list, whichever form its file used:
 * "layers" as written, or the shorthand hidden/norm/activation lowered to
 * the list it stands for. This is the only place that knows the
 * shorthand; the frontend's checks and codegen/ir.c both read its list.
 */
#include <stdio.h>
#include "model.h"

/* A linear layer with out features, a bias and the model's init. */
static Spec linear(int out) {
  return (Spec){.kind = LK_LINEAR, .out = out, .bias = 1, .init = -1};
}

/* The shorthand: each hidden width k is linear(width) → [norm] →
   activation, and a last linear(output) gives the logits. */
static int shorthand(const Model *m, Spec *out, FeWhere *where) {
  int n = 0;
  for (int k = 0; k < m->nhidden; k++) {
    where[n] = (FeWhere){k + 1, "hidden", k};
    out[n++] = linear(m->hidden[k]);
    if (m->norm.type != NORM_NONE) {
      where[n] = (FeWhere){k + 1, "norm", -1};
      out[n++] = (Spec){.kind = m->norm.type == NORM_BATCH ? LK_BATCHNORM : LK_LAYERNORM,
                        .norm = m->norm};
    }
    where[n] = (FeWhere){k + 1, "activation", -1};
    out[n++] = (Spec){.kind = LK_ACT + m->act.type, .act = m->act};
  }
  where[n] = (FeWhere){m->nhidden + 1, "output", -1};
  out[n++] = linear(m->output);
  return n;
}

int fe_layer_list(const Model *m, Spec *out, FeWhere *where) {
  if (!m->nlayers)
    return shorthand(m, out, where);
  for (int i = 0; i < m->nlayers; i++) {
    out[i] = m->layers[i];
    where[i] = (FeWhere){0, "layers", i};
  }
  return m->nlayers;
}

void fe_where_path(const FeWhere *w, char *buf, size_t size) {
  if (w->index >= 0)
    snprintf(buf, size, "%s[%d]", w->key, w->index);
  else
    snprintf(buf, size, "%s", w->key);
}
