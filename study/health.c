/*
 * health.c — the activation-health figures in a study's report: the
 * per-epoch statistics of each run's hidden layers and parameters
 * (docs/health.md) that the database's health table holds, which can say
 * why a remedy helps: whether it keeps tanh units out of their flat
 * tails, keeps units alive, keeps the pre-activations' spread near 1, or
 * moves the weights faster than the base does.
 *
 *   st_health_load     reads the figures of every distinct model's
 *                      finished runs (once, for the whole report)
 *   st_health_csv      health.csv: every figure of every experiment per
 *                      epoch, mean and standard deviation over the seeds
 *   st_health_plots    health.png: the key figures per epoch, one curve
 *                      per distinct model
 *   st_health_section  report.md's "Activation health": a table of the
 *                      key figures at epoch 0 and after the last epoch
 *   st_health_why      the conclusions' last part: sentences derived from
 *                      those numbers, in the ranking's order
 *
 * Means are over the runs that did not diverge, as everywhere in the
 * report; for a model with several hidden layers the plot and the
 * sentences take the mean over its layers, the table shows each. The
 * thresholds the sentences use are the parameters below, and the text
 * states them. Nothing here knows which model wins.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "study.h"

/* The thresholds of the "Why" sentences. */
#define SATURATED_HIGH 0.10  /* a layer saturates: more of its values in the tails */
#define DEAD_HIGH      0.05  /* a layer has dead units: more of its units dead     */
#define STD_LOW        0.5   /* pre-activation std "near 1": in [STD_LOW, STD_HIGH] */
#define STD_HIGH       2.0
#define UPDATE_SLOW    1e-3  /* the base learns slowly: a lower update ratio (the
                                CS231n rule of thumb's value)                     */
#define UPDATE_FACTOR  3.0   /* a model learns faster: this many times the base's */

/* The key figures of a health layer: X(enum, of its weight, figure,
   heading). The first three are the layer's, the others those of the
   weight that feeds it; the heading's "%s" names that weight. */
#define KEY_FIGURES(X)                                                     \
  X(K_SATURATED, 0, "saturated",    "saturated")                           \
  X(K_DEAD,      0, "dead",         "dead")                                \
  X(K_PRE_STD,   0, "pre_std",      "pre-activation std")                  \
  X(K_GRAD,      1, "grad_norm",    "gradient norm of %s")                 \
  X(K_UPDATE,    1, "update_ratio", "update ratio of %s")

enum { KEY_FIGURES(ENUM1_) NKEYS };

static const struct {
  int weight;
  const char *figure, *heading;
} keys[NKEYS] = {
#define ROW_(e, w, f, h) {w, f, h},
  KEY_FIGURES(ROW_)
#undef ROW_
};

/* The naming schemes of the health layers (docs/health.md), as bits:
   the shorthand's "hiddenK" fed by "fcK.weight", and a layer list's
   "layers[i]" fed by "j.weight", the largest j < i with a weight. */
enum { NAMED_HIDDEN = 1, NAMED_LIST = 2 };

/* One health layer: its name and that of the weight that feeds it (""
   if none). */
typedef struct {
  char name[56], weight[56];
} HLayer;

/* One distinct model's health figures. */
typedef struct {
  int runs;                 /* finished runs with health figures          */
  int missing;              /* finished runs without (an older mlpc's)    */
  int nnames;
  StHealthName *names;      /* (nnames): the figures, as stored           */
  int nprobes;              /* epochs 0 .. nprobes - 1                    */
  int *end;                 /* (runs): the epoch of each run's final
                               figures, StRunFigs.kept                    */
  int nlayers;              /* health layers                              */
  HLayer *layers;           /* (nlayers), in model order                  */
  int named;                /* NAMED_HIDDEN or NAMED_LIST; 0 if none      */
  double *v;                /* (runs, nprobes, nnames): NaN if absent, NaN
                               or not applicable                          */
  unsigned char *na;        /* (runs, nprobes, nnames): not applicable    */
} HModel;

struct StHealthFigs {
  HModel *m;                /* (nexp): filled for each experiment i with
                               exp[i].same == i                           */
};

/* ---- reading the database ---- */

/* One stored row, before the model's dimensions are known. */
typedef struct {
  int run, epoch, name, na;
  double value;
} Row;

/* The index of (layer, figure) in m's names, or -1. */
static int find_name(const HModel *m, const char *layer, const char *figure) {
  for (int i = 0; i < m->nnames; i++)
    if (!strcmp(m->names[i].layer, layer) && !strcmp(m->names[i].figure, figure))
      return i;
  return -1;
}

/* The index of (layer, figure) in m's names, added if new; -1 if out of
   memory. */
static int name_index(HModel *m, const char *layer, const char *figure) {
  int i = find_name(m, layer, figure);
  if (i >= 0)
    return i;
  StHealthName *n = realloc(m->names, (size_t)(m->nnames + 1) * sizeof *n);
  if (!n)
    return -1;
  m->names = n;
  snprintf(n[m->nnames].layer, sizeof n->layer, "%s", layer);
  snprintf(n[m->nnames].figure, sizeof n->figure, "%s", figure);
  return m->nnames++;
}

/* Appends run id's rows (as run number run of m); how many, -1 on error. */
static int read_run(sqlite3 *db, long long id, int run, HModel *m, Row **rows, int *nrows,
                    int *cap) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT epoch, layer, figure, value, na FROM health WHERE "
                                  "run_id = ?1", -1, &st, NULL) ? SQLITE_ERROR : SQLITE_ROW;
  int n = 0;
  sqlite3_bind_int64(st, 1, id);
  while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (*nrows == *cap) {
      Row *grown = realloc(*rows, (size_t)(2 * *cap + 64) * sizeof *grown);
      if (!grown)
        break;
      *rows = grown, *cap = 2 * *cap + 64;
    }
    int name = name_index(m, (const char *)sqlite3_column_text(st, 1),
                          (const char *)sqlite3_column_text(st, 2));
    if (name < 0 || sqlite3_column_int(st, 0) < 0)
      break;
    (*rows)[(*nrows)++] = (Row){run, sqlite3_column_int(st, 0), name,
                                sqlite3_column_int(st, 4),
                                sqlite3_column_type(st, 3) == SQLITE_NULL
                                    ? NAN : sqlite3_column_double(st, 3)};
    n++;
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? n : -1;
}

/* The position of a health layer's name: K of "hiddenK" (scheme
   NAMED_HIDDEN) or i of "layers[i]" (NAMED_LIST); -1 if neither. */
static int layer_at(const char *name, int *scheme) {
  int k, len = 0;
  if (sscanf(name, "hidden%d%n", &k, &len) == 1 && !name[len] && k > 0)
    return *scheme = NAMED_HIDDEN, k;
  if (sscanf(name, "layers[%d]%n", &k, &len) == 1 && !name[len] && k >= 0)
    return *scheme = NAMED_LIST, k;
  return -1;
}

/* The weight that feeds layer i of a layer list: "j.weight" with the
   largest j < i that has a gradient norm; "" if none. */
static void list_weight(const HModel *m, int i, char *w, size_t len) {
  int best = -1, j, end = 0;
  for (int n = 0; n < m->nnames; n++)
    if (!strcmp(m->names[n].figure, "grad_norm") &&
        sscanf(m->names[n].layer, "%d.weight%n", &j, &end) == 1 && !m->names[n].layer[end] &&
        j < i && j > best)
      best = j;
  if (best >= 0)
    snprintf(w, len, "%d.weight", best);
  else
    *w = 0;
}

/* Sorts ints in increasing order (qsort's comparison). */
static int by_value(const void *a, const void *b) {
  return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* Finds m's health layers, of the first scheme its names use:
   "hidden1" .. "hiddenK" (K the largest with figures), or each
   "layers[i]" with figures, in i order; -1 out of memory. */
static int find_layers(HModel *m) {
  int s, at, n = 0, *pos = malloc((size_t)(m->nnames + 1) * sizeof *pos);
  for (int i = 0; pos && i < m->nnames; i++)
    if ((at = layer_at(m->names[i].layer, &s)) >= 0 && (!m->named || s == m->named)) {
      int seen = 0;
      for (int j = 0; j < n; j++)
        seen |= pos[j] == at;
      if (!seen)
        pos[n++] = at, m->named = s;
    }
  if (pos)
    qsort(pos, (size_t)n, sizeof *pos, by_value);
  m->nlayers = m->named == NAMED_HIDDEN ? pos[n - 1] : n;
  m->layers = pos ? calloc((size_t)m->nlayers + 1, sizeof *m->layers) : NULL;
  for (int l = 0; m->layers && l < m->nlayers; l++) {
    HLayer *h = &m->layers[l];
    if (m->named == NAMED_HIDDEN)
      snprintf(h->name, sizeof h->name, "hidden%d", l + 1),
      snprintf(h->weight, sizeof h->weight, "fc%d.weight", l + 1);
    else
      snprintf(h->name, sizeof h->name, "layers[%d]", pos[l]),
      list_weight(m, pos[l], h->weight, sizeof h->weight);
  }
  free(pos);
  return m->layers ? 0 : -1;
}

/* Lays the rows out in m's arrays; -1 out of memory. */
static int lay_out(HModel *m, const Row *rows, int nrows) {
  for (int i = 0; i < nrows; i++)
    m->nprobes = rows[i].epoch + 1 > m->nprobes ? rows[i].epoch + 1 : m->nprobes;
  size_t n = (size_t)m->runs * m->nprobes * m->nnames;
  m->v = malloc((n + 1) * sizeof *m->v);
  m->na = calloc(n + 1, 1);
  if (!m->v || !m->na)
    return -1;
  for (size_t i = 0; i < n; i++)
    m->v[i] = NAN;
  for (int i = 0; i < nrows; i++) {
    size_t at = ((size_t)rows[i].run * m->nprobes + rows[i].epoch) * m->nnames + rows[i].name;
    m->v[at] = rows[i].value, m->na[at] = rows[i].na != 0;
  }
  return find_layers(m);
}

/* Reads the figures of experiment x's finished runs into m. */
static int read_model(sqlite3 *db, const StExpFigs *x, HModel *m) {
  Row *rows = NULL;
  int nrows = 0, cap = 0, rc = !(m->end = malloc((size_t)(x->runs + 1) * sizeof *m->end));
  for (int r = 0; !rc && r < x->runs; r++) {
    if (x->run[r].diverged_epoch)
      continue;
    int n = read_run(db, x->run[r].id, m->runs, m, &rows, &nrows, &cap);
    if (n < 0)
      rc = -1;
    else if (n)
      m->end[m->runs++] = x->run[r].kept;
    else
      m->missing++;
  }
  if (!rc)
    rc = lay_out(m, rows, nrows);
  free(rows);
  return rc;
}

StHealthFigs *st_health_load(const StFigs *f) {
  const Study *s = f->p->s;
  StHealthFigs *h = calloc(1, sizeof *h);
  if (!h || !(h->m = calloc((size_t)s->nexp + 1, sizeof *h->m)))
    return free(h), NULL;
  for (int i = 0; i < s->nexp; i++)
    if (f->exp[i].same == i && read_model(f->db, &f->exp[i], &h->m[i]))
      return st_health_free(h, s->nexp), NULL;
  return h;
}

void st_health_free(StHealthFigs *h, int nexp) {
  for (int i = 0; h && h->m && i < nexp; i++)
    free(h->m[i].names), free(h->m[i].v), free(h->m[i].na), free(h->m[i].layers),
    free(h->m[i].end);
  if (h)
    free(h->m);
  free(h);
}

/* ---- the figures' means ---- */

/* The epoch "at the end" stands for in figure_stat: each run's own, that
   of its final figures (its last epoch; under early stopping, the one
   whose weights it keeps), which need not be the last of every run. */
enum { END = -1 };

/* The mean and standard deviation over m's runs of figure name at epoch
   e (END: each run's end): how many runs have a value; *na says whether
   every run with the figure has it not applicable. */
static int figure_stat(const HModel *m, int name, int e, double *mean, double *std, int *na) {
  double *v = malloc((size_t)(m->runs + 1) * sizeof *v);
  int n = 0, nas = 0, have = 0;
  for (int r = 0; v && r < m->runs && name >= 0; r++) {
    int at_e = e == END ? m->end[r] : e;
    if (at_e < 0 || at_e >= m->nprobes)
      continue;
    size_t at = ((size_t)r * m->nprobes + at_e) * m->nnames + name;
    have += m->na[at] || !isnan(m->v[at]);
    nas += m->na[at];
    if (!m->na[at] && !isnan(m->v[at]))
      v[n++] = m->v[at];
  }
  st_mean_std(v, n, mean, std);
  *na = have && nas == have;
  free(v);
  return n;
}

/* The index of key figure k of health layer l (from 1) in m's names, or
   -1. */
static int key_name(const HModel *m, int k, int l) {
  const HLayer *h = &m->layers[l - 1];
  return find_name(m, keys[k].weight ? h->weight : h->name, keys[k].figure);
}

/* Key figure k at epoch e, mean over the runs and over the hidden layers
   that have it: NaN if none; *na if every layer has it not applicable. */
static double key_mean(const HModel *m, int k, int e, int *na) {
  double s = 0, mean, sd;
  int n = 0, nas = 0, layer_na;
  for (int l = 1; l <= m->nlayers; l++) {
    if (figure_stat(m, key_name(m, k, l), e, &mean, &sd, &layer_na))
      s += mean, n++;
    nas += layer_na;
  }
  *na = !n && nas > 0;
  return n ? s / n : NAN;
}

/* A value in words, in buf (32 bytes): 3 significant digits, "n/a"
   (not applicable), "-" (none) or "infinite". */
static const char *value_text(char *buf, double v, int na) {
  if (na)
    return "n/a";
  if (isnan(v))
    return "-";
  if (isinf(v))
    return v > 0 ? "infinite" : "-infinite";
  snprintf(buf, 32, "%.3g", v);
  return buf;
}

/* The naming schemes of the models with figures (NAMED_* bits). */
static int schemes(const StFigs *f) {
  int named = 0;
  for (int i = 0; f->health && i < f->p->s->nexp; i++)
    if (f->exp[i].same == i && f->health->m[i].runs)
      named |= f->health->m[i].named;
  return named;
}

/* The health layers in words: "hidden layers" (the shorthand's only),
   else "activation layers". */
static const char *layers_word(int named) {
  return named & NAMED_LIST ? "activation layers" : "hidden layers";
}

/* The weight that feeds a layer, in a heading: "fcK.weight" (the
   shorthand's only), else "the weight that feeds it". */
static const char *weight_word(int named) {
  return named & NAMED_LIST ? "the weight that feeds it" : "fcK.weight";
}

/* The weight that feeds each layer, in a sentence. */
static const char *each_weight(int named) {
  return named & NAMED_LIST ? "the weight that feeds each layer" : "fcK.weight";
}

/* Key figure k's heading for the naming schemes named, in buf (96
   bytes). */
static const char *heading(char *buf, int k, int named) {
  snprintf(buf, 96, keys[k].heading, weight_word(named));
  return buf;
}

/* The model's label: "base", or its first experiment's name. */
static const char *label(const StFigs *f, int i) {
  int base = f->p->base >= 0 ? f->exp[f->p->base].same : -1;
  return i == base ? "base" : f->p->s->exp[i].name;
}

/* ---- health.csv ---- */

void st_health_csv(const StFigs *f, FILE *csv) {
  const Study *s = f->p->s;
  fputs("experiment,factor,value,layer,figure,epoch,runs,not_applicable,mean,std\n", csv);
  for (int i = 0; f->health && i < s->nexp; i++) {
    const HModel *m = &f->health->m[f->exp[i].same];
    for (int k = 0; k < m->nnames; k++)
      for (int e = 0; e < m->nprobes; e++) {
        double mean, sd;
        int na, n = figure_stat(m, k, e, &mean, &sd, &na);
        st_csv_text(csv, s->exp[i].name, 0), st_csv_text(csv, s->exp[i].factor, 0);
        st_csv_text(csv, s->exp[i].value, 0), st_csv_text(csv, m->names[k].layer, 0);
        st_csv_text(csv, m->names[k].figure, 0);
        fprintf(csv, "%d,%d,%d,", e, n, na);
        st_csv_real(csv, mean, 0), st_csv_real(csv, sd, 1);
      }
  }
}

/* ---- health.png ---- */

/* The panels of health.png: key figures, mean over the hidden layers. */
static const int panels[] = {K_SATURATED, K_DEAD, K_PRE_STD, K_UPDATE};
enum { NPANELS = sizeof panels / sizeof panels[0] };

/* The distinct models with figures, in study order; how many. */
static int plotted(const StFigs *f, int *which) {
  int n = 0;
  for (int i = 0; i < f->p->s->nexp; i++)
    if (f->exp[i].same == i && f->health->m[i].runs)
      which[n++] = i;
  return n;
}

/* Writes one block per model ("epoch" and a column per panel, NaN where
   there is none); the range of each panel's values, and the most epochs. */
static int health_data(FILE *d, const StFigs *f, const int *which, int n, double *lo,
                       double *hi) {
  int ne = 0, na;
  for (int p = 0; p < NPANELS; p++)
    lo[p] = INFINITY, hi[p] = -INFINITY;
  for (int j = 0; j < n; j++) {
    const HModel *m = &f->health->m[which[j]];
    fprintf(d, "%s# %s\n# epoch", j ? "\n\n" : "", label(f, which[j]));
    for (int p = 0; p < NPANELS; p++)
      fprintf(d, " %s", keys[panels[p]].figure);
    for (int e = 0; e < m->nprobes; e++) {
      fprintf(d, "\n%d", e);
      for (int p = 0; p < NPANELS; p++) {
        double v = key_mean(m, panels[p], e, &na);
        if (!isfinite(v))
          fprintf(d, " NaN");
        else
          fprintf(d, " %.17g", v), lo[p] = fmin(lo[p], v), hi[p] = fmax(hi[p], v);
      }
    }
    fputc('\n', d);
    ne = m->nprobes > ne ? m->nprobes : ne;
  }
  return ne;
}

/* Whether any model has more than one hidden layer. */
static int deep(const StFigs *f, const int *which, int n) {
  for (int j = 0; j < n; j++)
    if (f->health->m[which[j]].nlayers > 1)
      return 1;
  return 0;
}

/* The figure's geometry, in pixels: a panel, the title above the panels
   and the legend below them (4 models a line). */
enum { PANEL_W = 640, PANEL_H = 420, TITLE_H = 40, KEY_LINE = 22 };

/* Places panel p (2 × 2, the first at the top left) in a figure h
   pixels high: its plot area, with room for its title and axis labels. */
static void place(FILE *gp, int p, int h) {
  double x0 = (p % 2) * 0.5, y1 = 1 - (TITLE_H + (p / 2) * PANEL_H) / (double)h;
  double y0 = y1 - PANEL_H / (double)h;
  fprintf(gp, "set lmargin at screen %.4f\nset rmargin at screen %.4f\n"
          "set tmargin at screen %.4f\nset bmargin at screen %.4f\n", x0 + 0.07, x0 + 0.48,
          y1 - 36.0 / h, y0 + 70.0 / h);
}

/* One panel: a curve per model that has its figure; none if no model
   has it. */
static void panel(FILE *gp, int n, int p, double lo, double hi, int named) {
  char h[96];
  fprintf(gp, "set title \"%s\"\nset ylabel \"%s\"\n", heading(h, panels[p], named),
          keys[panels[p]].figure);
  fprintf(gp, "unset logscale y\nset yrange [0:1]\nset ytics autofreq\n");
  st_plots_axis(gp, 'y', lo, hi);
  if (isinf(lo)) {
    fprintf(gp, "set label 1 \"n/a for these models\" at graph 0.5, 0.5 center\n"
                "plot NaN notitle\nunset label 1\n");
    return;
  }
  fprintf(gp, "plot");
  for (int j = 0; j < n; j++)
    fprintf(gp, "%s \"plots/health.dat\" index %d using 1:%d with linespoints lw 2 pt 7 "
            "ps 0.5 lc %d dt %d notitle", j ? ", \\\n    " : "", j, p + 2, 1 + j % 8,
            1 + j / 8 % 5);
  fputc('\n', gp);
}

/* The legend: an empty plot across the bottom with a key of the models. */
static void legend(StPlots *pl, const StFigs *f, const int *which, int n, int key, int h) {
  FILE *gp = pl->gp;
  fprintf(gp, "\n# the legend\nunset title\nunset xlabel\nunset ylabel\nunset border\n"
              "unset tics\nunset grid\nunset logscale y\nset xrange [0:1]\nset yrange [0:1]\n"
              "set lmargin at screen 0.02\nset rmargin at screen 0.98\n"
              "set bmargin at screen 0\nset tmargin at screen %.4f\n"
              "set key center center horizontal reverse Left maxrows %d font \",10\" samplen 3\n"
              "plot",
          (double)key / h, (n + 3) / 4);
  for (int j = 0; j < n; j++) {
    fprintf(gp, "%s NaN with linespoints lw 2 pt 7 ps 0.5 lc %d dt %d title ",
            j ? ", \\\n    " : "", 1 + j % 8, 1 + j / 8 % 5);
    st_plots_string(gp, label(f, which[j]));
  }
  fputc('\n', gp);
}

int st_health_plots(const StFigs *f, StPlots *pl, char *err, size_t errlen) {
  const Study *s = f->p->s;
  int *which = malloc((size_t)(s->nexp + 1) * sizeof *which);
  double lo[NPANELS], hi[NPANELS];
  char title[256];
  int n = which ? plotted(f, which) : 0;
  FILE *d = n ? st_plots_data(pl, "health.dat", err, errlen) : NULL;
  if (!d)
    return free(which), n ? -1 : 0;
  int ne = health_data(d, f, which, n, lo, hi);
  fclose(d);
  snprintf(title, sizeof title, "%s: activation health per epoch (mean over the seeds%s%s; "
           "epoch 0: the initial weights)", s->name,
           deep(f, which, n) ? " and the " : "", deep(f, which, n) ? layers_word(schemes(f)) : "");
  int key = KEY_LINE * ((n + 3) / 4) + 20, h = TITLE_H + 2 * PANEL_H + key;
  if (st_plots_figure(pl, "health", 2 * PANEL_W, h, title, err, errlen))
    return free(which), -1;
  fprintf(pl->gp, "set multiplot title ");
  st_plots_string(pl->gp, title);
  fprintf(pl->gp, "\nset xlabel \"epoch\"\nset xrange [0:%d]\nset xtics %d\n"
          "set format x \"%%.0f\"\nunset key\n", ne > 1 ? ne - 1 : 1, ne / 10 + 1);
  for (int p = 0; p < NPANELS; p++)
    place(pl->gp, p, h), panel(pl->gp, n, p, lo[p], hi[p], schemes(f));
  legend(pl, f, which, n, key, h);
  fprintf(pl->gp, "unset multiplot\nset output\n");
  free(which);
  return n;
}

/* ---- the report: the section ---- */

/* What "after the last epoch" means when a run may stop early. */
static const char *kept_words(const StFigs *f) {
  return f->nstop ? " (under early stopping, the epoch whose weights the run keeps, as for "
                    "the final figures)" : "";
}

/* One table cell: "a → b" of figure k of layer l, epoch 0 and last. */
static void cell(StDoc *d, const HModel *m, int k, int l) {
  double a, b, sd;
  char x[32], y[32];
  int na0, na1, name = key_name(m, k, l);
  figure_stat(m, name, 0, &a, &sd, &na0);
  figure_stat(m, name, END, &b, &sd, &na1);
  if (k != K_UPDATE && !(na0 && na1))  /* no step before epoch 0 */
    st_doc_num(d, na1 ? NAN : b, NAN, "%s → %s", value_text(x, a, na0), value_text(y, b, na1));
  else
    st_doc_num(d, na1 ? NAN : b, NAN, "%s", value_text(y, b, na1));
}

/* The table's rows of one model: one per health layer. */
static void model_rows(StDoc *d, const StFigs *f, int i) {
  const HModel *m = &f->health->m[i];
  for (int l = 1; l <= m->nlayers; l++) {
    st_doc_row(d);
    st_doc_cell(d, "%s", label(f, i));
    st_doc_num(d, m->runs, NAN, "%d", m->runs);
    st_doc_cell(d, "%s", m->layers[l - 1].name);
    for (int k = 0; k < NKEYS; k++)
      cell(d, m, k, l);
  }
  if (!m->nlayers) {
    st_doc_row(d);
    st_doc_cell(d, "%s", label(f, i));
    st_doc_num(d, m->runs, NAN, "%d", m->runs);
    st_doc_cell(d, "(no hidden layer)");
    for (int k = 0; k < NKEYS; k++)
      st_doc_none(d);
  }
}

/* The runs without health figures, and the models left out, in words. */
static void gaps(StDoc *d, const StFigs *f) {
  const Study *s = f->p->s;
  int missing = 0, k = 0;
  for (int i = 0; i < s->nexp; i++)
    if (f->exp[i].same == i)
      missing += f->health->m[i].missing;
  if (missing) {
    st_doc_para(d);
    st_doc_text(d, "%d finished run%s ha%s no health figures: recorded by an older mlpc, "
                "%s not repeat bit for bit when run again (mlpc warned which), so the means "
                "are over the other runs.", missing, missing == 1 ? "" : "s",
                missing == 1 ? "s" : "ve", missing == 1 ? "it did" : "they did");
  }
  for (int i = 0; i < s->nexp; i++)
    if (f->exp[i].same == i && !f->health->m[i].runs) {
      if (!k++)
        st_doc_para(d), st_doc_text(d, "Left out, without figures (every run diverged, or "
                                       "none has health figures): ");
      st_doc_text(d, "%s%s", k > 1 ? "; " : "", label(f, i));
    }
  if (k)
    st_doc_text(d, ".");
}

/* The layers the section's table shows, and the weight that feeds
   each, in words for the naming schemes named. */
static const char *layer_words(int named, int which) {
  static const char *const words[2][3] = {
    {"Each hidden layer", "Each activation layer (named by its path in the model's layer "
     "list)", "Each hidden layer (hiddenK) or activation layer of a layer list (named by its "
     "path)"},
    {"of fcK.weight, the weight that feeds hidden layer K", "of the weight that feeds the "
     "layer: for layers[i], j.weight with the largest j < i that has a weight (the nearest "
     "layer before it with one)", "of the weight that feeds the layer: fcK.weight for hidden "
     "layer K; for layers[i], j.weight with the largest j < i that has a weight (the nearest "
     "layer before it with one)"}};
  return words[which][named & NAMED_LIST ? (named & NAMED_HIDDEN ? 2 : 1) : 0];
}

/* The table of the section: a row per model and health layer. */
static void health_table(StDoc *d, const StFigs *f, int named) {
  char h[96];
  st_doc_table(d, "lrllllll");
  st_doc_anchor(d, "health");
  st_doc_row(d);
  st_doc_cell(d, "model"), st_doc_cell(d, "runs"), st_doc_cell(d, "layer");
  for (int k = 0; k < NKEYS; k++)
    st_doc_cell(d, "%s", heading(h, k, named));
  for (int i = 0; i < f->p->s->nexp; i++)
    if (f->exp[i].same == i && f->health->m[i].runs)
      model_rows(d, f, i);
}

void st_health_section(const StFigs *f, const StPlots *pl, StDoc *d) {
  int named = schemes(f);
  st_doc_heading(d, 2, "Activation health");
  st_doc_para(d);
  st_doc_text(d, "%s on the probe batch (the first batch of training samples, in file order; "
              "docs/health.md), at the initial weights (epoch 0) → after the last epoch%s: "
              "mean over the seeds' runs that did not diverge. ", layer_words(named, 0),
              kept_words(f));
  st_doc_strong(d, "saturated");
  st_doc_text(d, ": the share of the activation's values in its flat tails; ");
  st_doc_strong(d, "dead");
  st_doc_text(d, ": the share of units flat on every probe sample; ");
  st_doc_strong(d, "pre-activation std");
  st_doc_text(d, ": the spread of the activation's input (after the norm); the gradient norm "
              "and the update ratio (‖Δθ‖/‖θ‖ of the epoch's last step, so none before "
              "training) %s. n/a: not defined for the activation, or for the update ratio no "
              "training step; -: no figure. Every figure of every epoch is in health.csv.",
              layer_words(named, 1));
  health_table(d, f, named);
  gaps(d, f);
  for (int i = 0; pl->drawn && i < pl->n; i++)
    if (!strcmp(pl->png[i], "health.png"))
      st_doc_figure(d, "health.png", pl->title[i]);
}

/* ---- the report: why ---- */

/* A model's key figures for the sentences: mean over runs and layers. */
typedef struct {
  int have;                 /* it has figures                              */
  double sat[2], dead[2], std[2], update;   /* [0]: epoch 0, [1]: last   */
  int sat_na, dead_na, update_na;           /* not applicable            */
} Key;

/* Reads experiment i's key figures. */
static Key key_of(const StFigs *f, int i) {
  const HModel *m = &f->health->m[i];
  Key k = {.have = m->runs > 0 && m->nlayers > 0};
  int na;
  for (int t = 0; k.have && t < 2; t++) {
    int e = t ? END : 0;
    k.sat[t] = key_mean(m, K_SATURATED, e, &k.sat_na);
    k.dead[t] = key_mean(m, K_DEAD, e, &k.dead_na);
    k.std[t] = key_mean(m, K_PRE_STD, e, &na);
  }
  if (k.have)
    k.update = key_mean(m, K_UPDATE, END, &k.update_na);
  return k;
}

/* Whether a figure is past a threshold: saturating, dead, far from 1;
   or within it: near 1. A figure that is not there (NaN) is neither. */
static int saturates(const Key *k, int t) { return !k->sat_na && k->sat[t] > SATURATED_HIGH; }
static int has_dead(const Key *k, int t) { return !k->dead_na && k->dead[t] > DEAD_HIGH; }
static int std_near(const Key *k, int t) {
  return k->std[t] >= STD_LOW && k->std[t] <= STD_HIGH;
}
static int std_far(const Key *k, int t) { return !isnan(k->std[t]) && !std_near(k, t); }

/* Lists the models (rank order) for which test holds at time t, with
   the figure; "none" if there are none. */
static void list(StDoc *d, const StFigs *f, const int *rank, int nrank, int t,
                 int (*test)(const Key *, int), int fig) {
  int n = 0;
  char buf[32];
  for (int j = 0; j < nrank; j++) {
    Key k = key_of(f, rank[j]);
    if (!k.have || !test(&k, t))
      continue;
    double v = fig == K_SATURATED ? k.sat[t] : fig == K_DEAD ? k.dead[t] : k.std[t];
    st_doc_text(d, "%s%s (%s)", n++ ? "; " : "", label(f, rank[j]), value_text(buf, v, 0));
  }
  if (!n)
    st_doc_text(d, "none");
}

/* Where the models stand at time t (0: initial weights, 1: last epoch). */
static void standing(StDoc *d, const StFigs *f, const int *rank, int nrank, int t) {
  st_doc_para(d);
  st_doc_text(d, "%s, saturating: ", t ? "After the last epoch" : "At the initial weights");
  list(d, f, rank, nrank, t, saturates, K_SATURATED);
  st_doc_text(d, ". With dead units: ");
  list(d, f, rank, nrank, t, has_dead, K_DEAD);
  st_doc_text(d, ". Pre-activation std far from 1: ");
  list(d, f, rank, nrank, t, std_far, K_PRE_STD);
  st_doc_text(d, ".");
}

/* The ways a model can be healthier than the base after the last epoch,
   each a threshold the base fails and the model passes; and the words for
   the other way round: X(enum, healthier, less healthy). */
#define CRITERIA(X)                                                                   \
  X(C_SATURATED, "it does not saturate (the base does)",                              \
                 "it saturates (the base does not)")                                  \
  X(C_DEAD,      "it has no dead units (the base has)",                               \
                 "it has dead units (the base has not)")                              \
  X(C_STD,       "its pre-activation std is near 1 (the base's is not)",              \
                 "its pre-activation std is far from 1 (the base's is near)")         \
  X(C_UPDATE,    "its weights move faster: its update ratio is at least %g times the " \
                 "base's, which is below %g",                                         \
                 "its weights move slower: its update ratio is at most 1/%g of the "  \
                 "base's, and below %g")

enum { CRITERIA(ENUM1_) NCRITERIA };

static const char *const criterion_words[2][NCRITERIA] = {
#define BETTER_(e, better, worse) better,
#define WORSE_(e, better, worse) worse,
  {CRITERIA(BETTER_)}, {CRITERIA(WORSE_)}
#undef BETTER_
#undef WORSE_
};

/* The criteria (bits 1 << C_*) by which m is healthier than the base b
   after the last epoch; 0 if none. */
static int healthier(const Key *m, const Key *b) {
  int c = 0;
  if (!m->sat_na && !b->sat_na && !saturates(m, 1) && saturates(b, 1))
    c |= 1 << C_SATURATED;
  if (!m->dead_na && !b->dead_na && !has_dead(m, 1) && has_dead(b, 1))
    c |= 1 << C_DEAD;
  if (std_near(m, 1) && std_far(b, 1))
    c |= 1 << C_STD;
  if (b->update < UPDATE_SLOW && m->update >= UPDATE_FACTOR * b->update)
    c |= 1 << C_UPDATE;
  return c;
}

/* "a → b" of a figure, or "n/a"; value_text's words for a value that is
   not there. */
static void arrow(StDoc *d, const double *v, int na) {
  char a[32], b[32];
  if (na)
    st_doc_text(d, "n/a");
  else
    st_doc_text(d, "%s → %s", value_text(a, v[0], 0), value_text(b, v[1], 0));
}

/* The criteria c in words (worse: the other way round). */
static void criteria_words(StDoc *d, int c, int worse) {
  for (int i = 0, n = 0; i < NCRITERIA; i++)
    if (c >> i & 1) {
      st_doc_text(d, "%s", n++ ? "; " : " ");
      st_doc_text(d, criterion_words[worse][i], UPDATE_FACTOR, UPDATE_SLOW);
    }
  st_doc_text(d, ".");
}

/* Against the base, in words: by which thresholds m is healthier, and
   by which less healthy. */
static void against_base(StDoc *d, const Key *k, const Key *b) {
  int better = healthier(k, b), worse = healthier(b, k);
  if (!better && !worse)
    st_doc_text(d, " By these thresholds it is neither healthier nor less healthy than the "
                "base after the last epoch.");
  if (better)
    st_doc_text(d, " Healthier than the base after the last epoch:"),
    criteria_words(d, better, 0);
  if (worse)
    st_doc_text(d, " Less healthy:"), criteria_words(d, worse, 1);
}

/* One model's figures in a bullet, against the base's when there is one
   (b; base: the base's experiment). */
static void bullet(StDoc *d, const StFigs *f, int place, int i, int base, const Key *b) {
  Key k = key_of(f, i);
  char buf[32];
  st_doc_item(d);
  st_doc_text(d, "%d. ", place);
  st_doc_strong(d, "%s", label(f, i));
  if (!k.have) {
    st_doc_text(d, ": no health figures.");
    return;
  }
  st_doc_text(d, " (final test loss %.4f): saturated ", f->exp[i].mean[ST_TEST_LOSS]);
  arrow(d, k.sat, k.sat_na);
  st_doc_text(d, ", dead ");
  arrow(d, k.dead, k.dead_na);
  st_doc_text(d, ", pre-activation std ");
  arrow(d, k.std, 0);
  st_doc_text(d, ", update ratio %s.", value_text(buf, k.update, k.update_na));
  if (b && b->have && i != base)
    against_base(d, &k, b);
}

/* Lists the models of ranks [from, to) with figures that are (want = 1)
   or are not (0) healthier than the base (worse: less healthy); how
   many. */
static int names_if(StDoc *d, const StFigs *f, const int *rank, int from, int to,
                    const Key *b, int want, int worse) {
  int n = 0;
  for (int j = from; j < to; j++) {
    Key k = key_of(f, rank[j]);
    if (k.have && ((worse ? healthier(b, &k) : healthier(&k, b)) != 0) == want)
      st_doc_text(d, "%s%s", n++ ? "; " : "", label(f, rank[j]));
  }
  if (!n)
    st_doc_text(d, "none");
  return n;
}

/* Counts the models of ranks [from, to) with figures, and those of them
   healthier than the base. */
static int count_healthier(const StFigs *f, const int *rank, int from, int to, const Key *b,
                           int *n) {
  int h = 0;
  *n = 0;
  for (int j = from; j < to; j++) {
    Key k = key_of(f, rank[j]);
    *n += k.have;
    h += k.have && healthier(&k, b);
  }
  return h;
}

/* The summary: are the models above the base healthier than it, and
   those below not? at: the base's place in the ranking. */
static void summary(StDoc *d, const StFigs *f, const int *rank, int nrank, int at,
                    const Key *b) {
  int up, down, hu = count_healthier(f, rank, 0, at, b, &up);
  int hd = count_healthier(f, rank, at + 1, nrank, b, &down);
  for (int side = 0; side < 2; side++) {
    int n = side ? down : up, from = side ? at + 1 : 0, to = side ? nrank : at;
    if (!n)
      continue;
    st_doc_para(d);
    st_doc_text(d, "Of the %d model%s ranked %s the base, %d %s healthier than it after the "
                "last epoch by at least one threshold: ", n, n == 1 ? "" : "s",
                side ? "below" : "above", side ? hd : hu, (side ? hd : hu) == 1 ? "is" : "are");
    names_if(d, f, rank, from, to, b, 1, 0);
    st_doc_text(d, ". Not: ");
    names_if(d, f, rank, from, to, b, 0, 0);
    st_doc_text(d, ". Less healthy than the base by at least one: ");
    names_if(d, f, rank, from, to, b, 1, 1);
    st_doc_text(d, ".");
  }
  st_doc_para(d);
  if (!saturates(b, 1) && !has_dead(b, 1) && std_near(b, 1) && b->update >= UPDATE_SLOW)
    st_doc_text(d, "The base itself passes every threshold after the last epoch (it does not "
                "saturate, has no dead units, its pre-activation std is near 1 and its update "
                "ratio is not below %g): by these figures no model can be healthier than it, "
                "and they do not tell why the models rank as they do.", UPDATE_SLOW);
  else if (!up)
    st_doc_text(d, "No model ranks above the base%s.", hd ? "; those below it that are "
                "healthier than it by these thresholds rank lower all the same: the figures "
                "do not explain their rank" : "");
  else if (hu == up && !hd)
    st_doc_text(d, "So here the health figures follow the ranking: every model that ranks "
                "above the base is healthier than it by at least one threshold, and none "
                "below it is.");
  else
    st_doc_text(d, "So the health figures do not explain the whole ranking: %d model%s above "
                "the base %s not healthier than it, and %d below it %s.", up - hu,
                up - hu == 1 ? "" : "s", up - hu == 1 ? "is" : "are", hd,
                hd == 1 ? "is" : "are");
}

/* What the sentences take, and the thresholds they use (named: the
   naming schemes). */
static void thresholds(StDoc *d, const StFigs *f, int named) {
  st_doc_para(d);
  st_doc_text(d, "From the health figures (means over the seeds' finished runs, and over the "
              "%s of deeper models) at the initial weights and after the last epoch%s. "
              "Thresholds, parameters of this report: a layer ", layers_word(named),
              kept_words(f));
  st_doc_strong(d, "saturates");
  st_doc_text(d, " when more than %g %% of its values lie in the activation's flat tails, "
              "has ", 100 * SATURATED_HIGH);
  st_doc_strong(d, "dead units");
  st_doc_text(d, " when more than %g %% of its units are flat on every probe sample, and its "
              "pre-activation std is ", 100 * DEAD_HIGH);
  st_doc_strong(d, "near 1");
  st_doc_text(d, " in [%g, %g]; a model's weights ", STD_LOW, STD_HIGH);
  st_doc_strong(d, "move faster");
  st_doc_text(d, " than the base's when the update ratio of %s at the last step is at least "
              "%g times the base's, and the base's is below %g (the rule of thumb's value, "
              "docs/health.md).", each_weight(named), UPDATE_FACTOR, UPDATE_SLOW);
}

void st_health_why(const StFigs *f, const int *rank, int nrank, StDoc *d) {
  int base = f->p->base >= 0 ? f->exp[f->p->base].same : -1, at = -1, any = 0;
  for (int j = 0; j < nrank; j++)
    at = rank[j] == base ? j : at, any |= f->health->m[rank[j]].runs > 0;
  st_doc_heading(d, 3, "Why: what the activation-health figures show");
  if (!any) {
    st_doc_para(d);
    st_doc_text(d, "The database holds no health figures for these runs, so this report "
                "cannot say why the models rank as they do; the numbers above say only which "
                "do better.");
    return;
  }
  thresholds(d, f, schemes(f));
  standing(d, f, rank, nrank, 0);
  standing(d, f, rank, nrank, 1);
  Key b = at >= 0 ? key_of(f, base) : (Key){0};
  st_doc_para(d);
  st_doc_text(d, "In the ranking's order (update ratio: of %s at the last step):",
              each_weight(schemes(f)));
  for (int j = 0; j < nrank; j++)
    bullet(d, f, j + 1, rank[j], base, at >= 0 ? &b : NULL);
  if (at >= 0 && b.have)
    summary(d, f, rank, nrank, at, &b);
  else
    st_doc_para(d), st_doc_text(d, "The base model %s, so the models are not compared with it.",
                                at < 0 ? "is not among the experiments" : "has no health figures");
}
