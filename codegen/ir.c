/*
 * ir.c — lowering: a checked model becomes a flat list of layers, in
 * forward order: frontend/layers.c's list (the model's "layers", or its
 * shorthand lowered), each layer with its shapes, its settings and its
 * names, and the loss closing the list. Every layer keeps the JSON path
 * it came from, for late errors and dumps.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"

#define KIND_NAME_(k, s, ...) [L_##k] = s,
const char *const ir_kind_names[NLAYERS] = {
  LAYER_KINDS(KIND_NAME_) [L_ACT] = "act", [L_LOSS] = "cross_entropy",
};
#undef KIND_NAME_

const char *const arith_names[NARITHMETICS] = {
#define NAME_(e, s) s,
  ARITHMETICS(NAME_)
#undef NAME_
};

/* The IR kind of a model file's layer kind: the same number, both
   enums expanded from LAYER_KINDS; every activation is L_ACT. */
static int ir_kind(int lk) {
  _Static_assert((int)L_ACT == (int)LK_ACT, "L_* and LK_* are one list");
  return lk >= LK_ACT ? L_ACT : lk;
}

/* The shorthand's names: fc{k}, norm{k}, {activation}{k}, as before
   layer lists existed; the health figures' "hidden{k}". */
static void shorthand_names(Layer *l, int block) {
  const char *kind = l->kind == L_LINEAR ? "fc" : l->kind == L_ACT ? act_names[l->spec.act.type]
                                                                  : "norm";
  snprintf(l->cname, sizeof l->cname, "%s%d", kind, block);
  memcpy(l->tname, l->cname, sizeof l->tname);
  snprintf(l->hname, sizeof l->hname, "hidden%d", block);
}

/* A list's names: the kind and position in C (linear0, relu2), the
   position alone as nn.Sequential names its modules (0, 2), the path for
   the health figures (layers[2]). */
static void list_names(Layer *l, int i) {
  snprintf(l->cname, sizeof l->cname, "%s%d", layer_kind_names[l->spec.kind], i);
  snprintf(l->tname, sizeof l->tname, "%d", i);
  snprintf(l->hname, sizeof l->hname, "layers[%d]", i);
}

/* Appends layer i of the list, reading samples of shape x (checked by
   the frontend to fit). */
static void add(Ir *ir, const Spec *s, const FeWhere *w, const FeShape *x) {
  Layer *l = &ir->layers[ir->nlayers];
  char why[256];
  *l = (Layer){.kind = ir_kind(s->kind), .index = w->block ? w->block : w->index,
               .x = *x, .spec = *s, .health = -1};
  if (fe_layer_shape(s, x, &l->y, why, sizeof why)) {
    fprintf(stderr, "mlpc: internal error: %s passed the checks: %s\n", l->path, why);
    abort();
  }
  l->in = (int)fe_numel(&l->x), l->out = (int)fe_numel(&l->y);
  int weighted = s->kind == LK_LINEAR || s->kind == LK_CONV2D;
  l->init = weighted && s->init >= 0 ? s->init : ir->m->init;
  if (l->kind == L_ACT)
    l->health = ir->nhealth++;
  fe_where_path(w, l->path, sizeof l->path);
  if (w->block)
    shorthand_names(l, w->block);
  else
    list_names(l, ir->nlayers);
  ir->nlayers++;
}

/* Lowers m into ir. */
void ir_lower(const Model *m, Ir *ir) {
  Spec specs[MAX_LAYERS];
  FeWhere where[MAX_LAYERS];
  int n = fe_layer_list(m, specs, where);
  *ir = (Ir){.m = m, .fma = ARITH_FMA, .sequential = m->nlayers > 0};
  FeShape x = fe_input_shape(m);
  for (int i = 0; i < n; i++) {
    add(ir, &specs[i], &where[i], &x);
    x = ir->layers[ir->nlayers - 1].y;
  }
  Layer *loss = &ir->layers[ir->nlayers++];
  *loss = (Layer){.kind = L_LOSS, .in = x.c, .out = x.c, .x = x, .y = x, .health = -1,
                  .path = "output", .cname = "loss", .tname = "loss"};
}

/* Appends printf-style text to buf, which holds len of size bytes. */
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (*len < size)
    *len += vsnprintf(buf + *len, size - *len, fmt, ap);
  va_end(ap);
}

/* One size, or "HxW" when they differ. */
static const char *pair(const int v[2]) {
  static char s[2][24];
  static int k;
  char *p = s[k++ % 2];
  if (v[0] == v[1])
    snprintf(p, sizeof s[0], "%d", v[0]);
  else
    snprintf(p, sizeof s[0], "%dx%d", v[0], v[1]);
  return p;
}

/* A window layer's settings: "(16, 3, padding 1)", "(2)", "(3, stride 1)". */
static void describe_window(const Layer *l, char *buf, size_t size, size_t *len) {
  const Spec *s = &l->spec;
  int conv = l->kind == L_CONV2D;
  int own_stride = conv ? s->stride[0] != 1 || s->stride[1] != 1
                        : s->stride[0] != s->kernel[0] || s->stride[1] != s->kernel[1];
  append(buf, size, len, "(");
  if (conv)
    append(buf, size, len, "%d, ", s->out);
  append(buf, size, len, "%s", pair(s->kernel));
  if (own_stride)
    append(buf, size, len, ", stride %s", pair(s->stride));
  if (s->padding[0] || s->padding[1])
    append(buf, size, len, ", padding %s", pair(s->padding));
  if (conv && !s->bias)
    append(buf, size, len, ", no bias");
  append(buf, size, len, ")");
}

/* A list layer in a few words: "linear", "dropout(0.2)", "elu(0.5)",
   "linear(no bias, init xavier_normal)": its settings as the file wrote
   them, where they are not the defaults. */
static void describe_layer(const Ir *ir, const Layer *l, char *buf, size_t size, size_t *len) {
  char v[40];
  append(buf, size, len, "%s%s", l->index ? ", " : "", layer_kind_names[l->spec.kind]);
  int has_param = l->kind == L_ACT && act_default_params[l->spec.act.type] != 0;
  if (l->kind == L_DROPOUT || has_param) {
    fe_show_real(v, sizeof v, l->kind == L_DROPOUT ? l->spec.p : l->spec.act.param);
    append(buf, size, len, "(%s)", v);
  }
  if (l->kind == L_CONV2D || l->kind == L_MAXPOOL2D || l->kind == L_AVGPOOL2D)
    describe_window(l, buf, size, len);
  int own_init = l->kind == L_LINEAR && l->init != ir->m->init;
  if (l->kind == L_LINEAR && (!l->spec.bias || own_init))
    append(buf, size, len, "(%s%s%s%s)", l->spec.bias ? "" : "no bias",
           !l->spec.bias && own_init ? ", " : "", own_init ? "init " : "",
           own_init ? init_names[l->init] : "");
}

void ir_describe(const Ir *ir, char *buf, size_t size) {
  const Model *m = ir->m;
  size_t len = 0;
  buf[0] = '\0';
  if (m->shape[0])
    append(buf, size, &len, "%dx%dx%d", m->shape[0], m->shape[1], m->shape[2]);
  else
    append(buf, size, &len, "%d", m->input);
  for (int i = 0; i < ir->nlayers; i++)
    if (ir->layers[i].kind == L_LINEAR)
      append(buf, size, &len, "-%d", ir->layers[i].out);
  if (!ir->sequential) {
    append(buf, size, &len, ", norm %s, %s", norm_names[m->norm.type], act_names[m->act.type]);
    return;
  }
  append(buf, size, &len, ": ");
  for (int i = 0; i + 1 < ir->nlayers; i++)
    describe_layer(ir, &ir->layers[i], buf, size, &len);
}

const char *ir_shape(const FeShape *s) {
  static char t[4][48];
  static int k;
  char *p = t[k++ % 4];
  if (s->flat)
    snprintf(p, sizeof t[0], "(B, %d)", s->c);
  else
    snprintf(p, sizeof t[0], "(B, %d, %d, %d)", s->c, s->h, s->w);
  return p;
}

/* Prints one line per layer: kind, block or position, shape, source path. */
void ir_dump(const Ir *ir, FILE *out) {
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    const char *kind = l->kind == L_ACT ? act_names[l->spec.act.type] : ir_kind_names[l->kind];
    fprintf(out, "%2d  %-13s %s  %s -> %s  from %s\n", i, kind, l->cname, ir_shape(&l->x),
            ir_shape(&l->y), l->path);
  }
}
