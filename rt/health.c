/*
 * health.c — the health figures of a run (docs/health.md): how the hidden
 * layers' activations and the parameters are doing, once before training
 * and after every epoch, on a fixed probe batch.
 *
 * The model computes its layers' figures itself (RtNet.health); this file
 * adds the figures of every trained tensor, which it reads through the
 * tensor table: the norm, the norm of the probe's gradient, and the
 * update-to-weight ratio of the epoch's last optimizer step. The result
 * is a list of rows (layer, figure, value), printed as a table or as JSON.
 *
 * Static helpers are prefixed rth_: this file is pasted into standalone
 * trainers next to the model's own health_ functions.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

static const char *const rth_layer_names[RT_NLAYER_FIGURES] = {
#define NAME_(e, s) s,
  RT_LAYER_FIGURES(NAME_)
#undef NAME_
};

static const char *const rth_tensor_names[RT_NTENSOR_FIGURES] = {
#define NAME_(e, s) s,
  RT_TENSOR_FIGURES(NAME_)
#undef NAME_
};

/* Element i (row-major order of the shape) of a float tensor, as a
   double, wherever its storage keeps it: sums over a tensor keep their
   order whatever the layout. */
static double rth_get(const RtTensor *t, long i) {
  i = rt_offset(t, i);
  return t->dtype == RT_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

/* The L2 norm of a float tensor, summed in double. */
static double rth_norm(const RtTensor *t) {
  double s = 0;
  for (long i = 0; i < rt_numel(t); i++)
    s += rth_get(t, i) * rth_get(t, i);
  return sqrt(s);
}

/* Whether t is trained: it has a gradient and an optimizer step. */
static int rth_trained(const RtTensor *t) {
  return t->kind <= RT_BETA;
}

/* The gradient tensor of trained tensor t ("NAME.grad"), or NULL. */
static const RtTensor *rth_grad_of(const RtNet *net, const RtTensor *t) {
  size_t len = strlen(t->name);
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *g = &net->tensors[k];
    if (g->kind == RT_GRAD && !strncmp(g->name, t->name, len) &&
        !strcmp(g->name + len, ".grad"))
      return g;
  }
  return NULL;
}

/* Sets one row. */
static void rth_row(RtHealth *h, int i, const char *layer, const char *figure) {
  h->rows[i] = (RtFigure){layer, figure, NAN, 1};
}

int rt_health_alloc(RtHealth *h, const RtNet *net) {
  memset(h, 0, sizeof *h);
  int ntrained = 0;
  long elems = 0;
  for (int k = 0; k < net->ntensors; k++)
    if (rth_trained(&net->tensors[k]))
      ntrained++, elems += rt_numel(&net->tensors[k]);
  h->nlayers = net->nhidden;
  h->nrows = net->nhidden * RT_NLAYER_FIGURES + ntrained * RT_NTENSOR_FIGURES;
  h->rows = calloc(h->nrows, sizeof *h->rows);
  h->names = calloc(net->nhidden + 1, sizeof *h->names);
  h->values = malloc(sizeof(double) * (net->nhidden * RT_NLAYER_FIGURES + 1));
  h->before = malloc(sizeof(double) * (elems + 1));
  h->ratio = malloc(sizeof(double) * (ntrained + 1));
  if (!h->rows || !h->names || !h->values || !h->before || !h->ratio) {
    rt_health_free(h);
    return -1;
  }
  int i = 0;
  for (int l = 0; l < net->nhidden; l++) {
    snprintf(h->names[l], sizeof h->names[l], "%s", net->health_names[l]);
    for (int f = 0; f < RT_NLAYER_FIGURES; f++)
      rth_row(h, i++, h->names[l], rth_layer_names[f]);
  }
  for (int k = 0; k < net->ntensors; k++)
    for (int f = 0; rth_trained(&net->tensors[k]) && f < RT_NTENSOR_FIGURES; f++)
      rth_row(h, i++, net->tensors[k].name, rth_tensor_names[f]);
  return 0;
}

void rt_health_free(RtHealth *h) {
  free(h->rows);
  free(h->names);
  free(h->values);
  free(h->before);
  free(h->ratio);
  memset(h, 0, sizeof *h);
}

void rt_health_before_step(RtHealth *h, const RtNet *net) {
  long j = 0;
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    for (long i = 0; rth_trained(t) && i < rt_numel(t); i++)
      h->before[j++] = rth_get(t, i);
  }
}

void rt_health_after_step(RtHealth *h, const RtNet *net) {
  long j = 0;
  int r = 0;
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    if (!rth_trained(t))
      continue;
    double d2 = 0, w2 = 0;
    for (long i = 0; i < rt_numel(t); i++, j++) {
      double d = rth_get(t, i) - h->before[j];
      d2 += d * d;
      w2 += h->before[j] * h->before[j];
    }
    h->ratio[r++] = w2 > 0 ? sqrt(d2) / sqrt(w2) : NAN; /* NAN: n/a */
  }
  h->updated = 1;
}

/* Sets a row's value, or marks it not applicable. */
static void rth_set(RtFigure *row, double v, int na) {
  row->value = na ? NAN : v;
  row->na = na;
}

void rt_health_probe(RtHealth *h, const RtNet *net, int n, const void *x,
                     const unsigned char *y) {
  int nl = net->nhidden * RT_NLAYER_FIGURES;
  int none = n < 2 && net->has_batchnorm; /* BatchNorm cannot train on one sample */
  if (!none)
    net->health(n, x, y, h->values);
  for (int i = 0; i < nl; i++) {
    int na = net->health_na[i / RT_NLAYER_FIGURES];
    rth_set(&h->rows[i], none ? NAN : h->values[i], none || (na >> (i % RT_NLAYER_FIGURES) & 1));
  }
  RtFigure *row = h->rows + nl;
  int r = 0;
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k], *g = rth_grad_of(net, t);
    if (!rth_trained(t))
      continue;
    rth_set(row++, rth_norm(t), 0);
    rth_set(row++, g && !none ? rth_norm(g) : NAN, !g || none);
    rth_set(row++, h->ratio[r], !h->updated || isnan(h->ratio[r]));
    r++;
  }
  h->probe = n;
  h->updated = 0;
}

/* ---- output ---- */

/* Prints a value in a table column, or n/a. */
static void rth_cell(FILE *f, const RtFigure *row) {
  if (row->na)
    fprintf(f, " %12s", "n/a");
  else
    fprintf(f, " %12.4g", row->value);
}

/* Prints the table header of the rows that start at row, and returns
   how many figures each of its lines has. */
static int rth_header(FILE *f, const RtFigure *row, int layer) {
  int n = layer ? RT_NLAYER_FIGURES : RT_NTENSOR_FIGURES;
  fprintf(f, "       %-12s", layer ? "layer" : "tensor");
  for (int i = 0; i < n; i++)
    fprintf(f, " %12s", row[i].figure);
  fprintf(f, "\n");
  return n;
}

void rt_health_print(const RtHealth *h, FILE *f) {
  int nl = h->nlayers * RT_NLAYER_FIGURES;
  for (int i = 0; i < h->nrows;) {
    int per = (i == 0 || i == nl) ? rth_header(f, h->rows + i, i < nl)
                                  : i < nl ? RT_NLAYER_FIGURES : RT_NTENSOR_FIGURES;
    fprintf(f, "       %-12s", h->rows[i].layer);
    for (int j = 0; j < per; j++)
      rth_cell(f, &h->rows[i + j]);
    fprintf(f, "\n");
    i += per;
  }
}

/* A value as JSON: null when not applicable, a string when not finite. */
static void rth_json_value(FILE *f, const RtFigure *row) {
  if (row->na)
    fprintf(f, "null");
  else if (isnan(row->value))
    fprintf(f, "\"nan\"");
  else if (isinf(row->value))
    fprintf(f, row->value > 0 ? "\"inf\"" : "\"-inf\"");
  else
    fprintf(f, "%.17g", row->value);
}

void rt_health_json(const RtHealth *h, FILE *f) {
  fprintf(f, "\"health\": {\"probe\": %d", h->probe);
  for (int i = 0; i < h->nrows; i++) {
    const RtFigure *row = &h->rows[i];
    int first = i == 0 || strcmp(row->layer, h->rows[i - 1].layer);
    if (first)
      fprintf(f, "%s, \"%s\": {", i ? "}" : "", row->layer);
    fprintf(f, "%s\"%s\": ", first ? "" : ", ", row->figure);
    rth_json_value(f, row);
  }
  fprintf(f, "%s}", h->nrows ? "}" : "");
}
