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

/* ---- shapes ---- */

FeShape fe_input_shape(const Model *m) {
  if (!m->shape[0])
    return (FeShape){m->input, 1, 1, 1};
  return (FeShape){m->shape[0], m->shape[1], m->shape[2], 0};
}

long fe_numel(const FeShape *s) {
  return (long)s->c * s->h * s->w;
}

/* A window's outputs along one side of n (padded by pad on each side),
   PyTorch's floor mode; 0 when the window does not fit. */
static int fe_window(int n, int k, int stride, int pad) {
  long span = (long)n + 2L * pad - k;
  return span < 0 ? 0 : (int)(span / stride + 1);
}

/* The output of a window layer (conv2d, the pools) with c channels. */
static int window_shape(const Spec *s, const FeShape *in, int c, FeShape *out, char *why,
                        size_t size) {
  int h = fe_window(in->h, s->kernel[0], s->stride[0], s->padding[0]);
  int w = fe_window(in->w, s->kernel[1], s->stride[1], s->padding[1]);
  if (h && w) {
    *out = (FeShape){c, h, w, 0};
    return 0;
  }
  int padded = s->padding[0] || s->padding[1];
  snprintf(why, size, "the kernel %d x %d%s does not fit the %d x %d image it gets%s",
           s->kernel[0], s->kernel[1], padded ? " (padded)" : "", in->h, in->w,
           padded || s->kind != LK_CONV2D ? "" : " (padding 0)");
  return -1;
}

int fe_layer_shape(const Spec *s, const FeShape *in, FeShape *out, char *why, size_t size) {
  int k = s->kind;
  int images = k == LK_CONV2D || k == LK_MAXPOOL2D || k == LK_AVGPOOL2D || k == LK_BATCHNORM2D;
  int features = k == LK_LINEAR || k == LK_BATCHNORM || k == LK_LAYERNORM;
  *out = *in;
  if (images && in->flat) {
    snprintf(why, size, "%s takes images (channels, height, width), and its input is flat "
             "(%d features): give \"input\" as [C, H, W] and put it before any flatten or "
             "linear layer", layer_kind_names[k], in->c);
    return -1;
  }
  if (features && !in->flat) {
    snprintf(why, size, "%s takes flat features, and its input is images %d x %d x %d "
             "(channels x height x width): put a \"flatten\" layer before it",
             layer_kind_names[k], in->c, in->h, in->w);
    return -1;
  }
  if (k == LK_LINEAR)
    *out = (FeShape){s->out, 1, 1, 1};
  else if (k == LK_FLATTEN)
    *out = (FeShape){(int)fe_numel(in), 1, 1, 1};
  else if (k == LK_CONV2D || k == LK_MAXPOOL2D || k == LK_AVGPOOL2D)
    return window_shape(s, in, k == LK_CONV2D ? s->out : in->c, out, why, size);
  return 0;
}
