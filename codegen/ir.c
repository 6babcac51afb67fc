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

/* The IR kind of a model file's layer kind. */
static int ir_kind(int lk) {
  static const int kinds[] = {[LK_LINEAR] = L_LINEAR, [LK_BATCHNORM] = L_BATCHNORM,
                              [LK_LAYERNORM] = L_LAYERNORM, [LK_DROPOUT] = L_DROPOUT};
  return lk >= LK_ACT ? L_ACT : kinds[lk];
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

/* Appends layer i of the list, reading in features. */
static void add(Ir *ir, const Spec *s, const FeWhere *w, int in) {
  Layer *l = &ir->layers[ir->nlayers];
  *l = (Layer){.kind = ir_kind(s->kind), .index = w->block ? w->block : w->index, .in = in,
               .out = s->kind == LK_LINEAR ? s->out : in, .spec = *s, .health = -1};
  l->init = s->kind == LK_LINEAR && s->init >= 0 ? s->init : ir->m->init;
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
  int in = m->input;
  for (int i = 0; i < n; i++) {
    add(ir, &specs[i], &where[i], in);
    in = ir->layers[ir->nlayers - 1].out;
  }
  Layer *loss = &ir->layers[ir->nlayers++];
  *loss = (Layer){.kind = L_LOSS, .in = in, .out = in, .health = -1, .path = "output",
                  .cname = "loss", .tname = "loss"};
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

/* A list layer in a few words: "linear", "dropout(0.2)", "elu(0.5)",
   "linear(no bias, init xavier_normal)": its settings as the file wrote
   them, where they are not the defaults. */
static void describe_layer(const Ir *ir, const Layer *l, char *buf, size_t size, size_t *len) {
  char v[40];
  append(buf, size, len, "%s%s", l->index ? ", " : "", layer_kind_names[l->spec.kind]);
  if (l->kind == L_DROPOUT || (l->kind == L_ACT && act_has_param(l->spec.act.type))) {
    fe_show_real(v, sizeof v, l->kind == L_DROPOUT ? l->spec.p : l->spec.act.param);
    append(buf, size, len, "(%s)", v);
  }
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

/* Prints one line per layer: kind, block or position, shape, source path. */
void ir_dump(const Ir *ir, FILE *out) {
  for (int i = 0; i < ir->nlayers; i++) {
    const Layer *l = &ir->layers[i];
    const char *kind = l->kind == L_ACT ? act_names[l->spec.act.type] : layer_names[l->kind];
    fprintf(out, "%2d  %-13s %s  (B, %d) -> (B, %d)  from %s\n", i, kind, l->cname, l->in,
            l->out, l->path);
  }
}
