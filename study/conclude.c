/*
 * conclude.c — a study's conclusions, derived from the figures the
 * database holds; no sentence here knows which model wins.
 *
 *   models     the distinct models of the study (experiments with the
 *              very same runs are one model: in one_factor mode the base
 *              appears once per varied key); the base is plan.c's
 *   ranking    by mean final test loss over the runs that finished, lower
 *              first; a model with a diverged run ranks below every model
 *              without one, a model whose runs all diverged ranks last.
 *              When every experiment holds out a validation split, by
 *              the validation loss instead (and the tests are on it), the
 *              test loss reported beside it: the loss that chooses is not
 *              the one that judges
 *   tests      each model against the base, and each pair of the other
 *              models: Welch's t-test (two-sided) with Holm's correction
 *              within each family, and the exact permutation test
 *              (stats.c)
 *
 * Written to the report (the "Conclusions" section, which ends it),
 * comparisons.csv (every test, 17 significant digits) and the terminal
 * (the ranking).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "study.h"

/* One distinct model: its finished runs' final losses (test, or
   validation: Concl.fig). */
typedef struct {
  int exp;                  /* its first experiment                      */
  int runs, diverged, n;
  double *loss;             /* (n)                                       */
  double mean, std, acc;    /* of the final loss; mean test accuracy      */
  StWelch w;                /* against the base                           */
  StPerm perm;
  double holm;
} Entry;

typedef struct {
  const StFigs *f;
  int fig;                  /* the loss that ranks and is tested:
                               ST_TEST_LOSS, or ST_VAL_LOSS when every
                               experiment holds out a validation split    */
  const char *what;         /* its name: "test loss", "validation loss"   */
  int nm;
  Entry *m;                /* (nm), in study order                       */
  int base;                 /* index in m, -1 if the base is not run      */
  int *rank;                /* (nm): indices in m, best first             */
  int nr;                   /* the models other than the base             */
  int *rem;                 /* (nr): those, best first                    */
  StWelch *pw;              /* (nr, nr): rem[i] against rem[j], i < j     */
  StPerm *pp;
  double *ph;               /* Holm over those pairs                      */
} Concl;

#define ALL_PAIRS 40        /* every pair of up to this many is tested  */

/* Whether the pair (i, j) of non-base models (places in c->rem) is
   tested: i < j, and every pair of up to ALL_PAIRS models, else each
   with the next in the ranking. */
static int tested(const Concl *c, int i, int j) {
  return i < j && (c->nr <= ALL_PAIRS || j == i + 1);
}

/* Where the tests of pair (i, j) are kept in pw, pp and ph. */
static size_t pair(const Concl *c, int i, int j) {
  return c->nr <= ALL_PAIRS ? (size_t)i * c->nr + j : (size_t)i;
}

/* ---- models and ranking ---- */

/* Collects the distinct models and their final losses. */
static void collect(Concl *c) {
  const StFigs *f = c->f;
  const Study *s = f->p->s;
  c->m = calloc((size_t)s->nexp, sizeof *c->m);
  c->base = -1;
  for (int i = 0; i < s->nexp; i++) {
    const StExpFigs *x = &f->exp[i];
    if (x->same != i)
      continue;
    Entry *m = &c->m[c->nm];
    *m = (Entry){.exp = i, .runs = x->runs, .diverged = x->diverged,
                  .mean = x->mean[c->fig], .std = x->std[c->fig],
                  .acc = x->mean[ST_TEST_ACC], .w = {NAN, NAN, NAN, NAN},
                  .perm = {NAN, NAN, 0, 0}, .holm = NAN};
    m->loss = malloc((size_t)(x->runs + 1) * sizeof *m->loss);
    for (int r = 0; r < x->runs; r++)
      if (!x->run[r].diverged_epoch)
        m->loss[m->n++] = x->run[r].fig[c->fig];
    if (f->p->base >= 0 && f->exp[f->p->base].same == i)
      c->base = c->nm;
    c->nm++;
  }
}

/* Where a model stands before its mean: 0 no run diverged, 1 some did,
   2 all did (or it has no runs). */
static int tier(const Entry *m) { return !m->n ? 2 : m->diverged ? 1 : 0; }

static const Concl *sorting;

/* Orders models by tier, then mean final loss, then study order. */
static int by_rank(const void *a, const void *b) {
  const Entry *x = &sorting->m[*(const int *)a], *y = &sorting->m[*(const int *)b];
  if (tier(x) != tier(y))
    return tier(x) - tier(y);
  if (x->n && y->n && x->mean != y->mean)
    return x->mean < y->mean ? -1 : 1;
  return x->exp - y->exp;
}

/* Ranks the models; lists the ones other than the base, best first. */
static void rank_models(Concl *c) {
  c->rank = malloc((size_t)c->nm * sizeof *c->rank);
  c->rem = malloc((size_t)c->nm * sizeof *c->rem);
  for (int i = 0; i < c->nm; i++)
    c->rank[i] = i;
  sorting = c;
  qsort(c->rank, (size_t)c->nm, sizeof *c->rank, by_rank);
  for (int i = 0; i < c->nm; i++)
    if (c->rank[i] != c->base)
      c->rem[c->nr++] = c->rank[i];
}

/* ---- tests ---- */

/* Tests every model against the base, Holm over that family. */
static void test_base(Concl *c) {
  if (c->base < 0)
    return;
  const Entry *b = &c->m[c->base];
  size_t n = (size_t)c->nr + 1;
  double *p = malloc(n * sizeof *p), *adj = malloc(n * sizeof *adj);
  for (int i = 0; i < c->nr; i++) {
    Entry *m = &c->m[c->rem[i]];
    m->w = st_welch(m->loss, m->n, b->loss, b->n);
    m->perm = st_permutation(m->loss, m->n, b->loss, b->n);
    p[i] = m->w.p;
  }
  st_holm(p, c->nr, adj);
  for (int i = 0; i < c->nr; i++)
    c->m[c->rem[i]].holm = adj[i];
  free(p), free(adj);
}

/* Tests the pairs of models other than the base, Holm over the pairs. */
static void test_pairs(Concl *c) {
  size_t nn = (c->nr <= ALL_PAIRS ? (size_t)c->nr * c->nr : (size_t)c->nr) + 1;
  c->pw = calloc(nn, sizeof *c->pw), c->pp = calloc(nn, sizeof *c->pp);
  c->ph = malloc(nn * sizeof *c->ph);
  double *p = malloc(nn * sizeof *p);
  for (size_t k = 0; k < nn; k++)
    p[k] = NAN;
  for (int i = 0; i < c->nr; i++)
    for (int j = i + 1; j < c->nr && tested(c, i, j); j++) {
      const Entry *a = &c->m[c->rem[i]], *b = &c->m[c->rem[j]];
      c->pw[pair(c, i, j)] = st_welch(a->loss, a->n, b->loss, b->n);
      c->pp[pair(c, i, j)] = st_permutation(a->loss, a->n, b->loss, b->n);
      p[pair(c, i, j)] = c->pw[pair(c, i, j)].p;
    }
  st_holm(p, (int)nn, c->ph);
  free(p);
}

/* The number of pairs tested (with a p value). */
static int tested_pairs(const Concl *c) {
  int n = 0;
  for (int i = 0; i < c->nr; i++)
    for (int j = i + 1; j < c->nr && tested(c, i, j); j++)
      n += !isnan(c->pw[pair(c, i, j)].p);
  return n;
}

/* ---- words and numbers ---- */

/* A model's name in the text: "base" or its experiment's. */
static const char *label(const Concl *c, int m) {
  return m == c->base ? "base" : c->f->p->s->exp[c->m[m].exp].name;
}

/* A p value: 4 decimals, or 2 significant digits below 0.0001; "n/a"
   for none (no test). */
static const char *fmt_p(char *buf, double p) {
  if (isnan(p))
    return "n/a";
  snprintf(buf, 32, p >= 0.0001 || p == 0 ? "%.4f" : "%.1e", p);
  return buf;
}

/* "mean ± std", "mean" for one run, "diverged" for none. */
static const char *fmt_pm(char *buf, double mean, double std, int n, int dec, double scale) {
  if (!n)
    return "diverged";
  if (n < 2)
    snprintf(buf, 64, "%.*f", dec, scale * mean);
  else
    snprintf(buf, 64, "%.*f ± %.*f", dec, scale * mean, dec, scale * std);
  return buf;
}

/* A change relative to the base's mean, in percent ("+12.5"); "n/a"
   when the base's mean is 0. */
static const char *fmt_change(char *buf, double diff, double base) {
  if (base == 0)
    return "n/a";
  snprintf(buf, 32, "%+.1f", 100 * diff / base);
  return buf;
}

/* Why Welch's test of a model with na finished runs against one with nb
   gives no p value (w), in words (in buf, 128 bytes); NULL when it gives
   one. */
static const char *no_welch(char *buf, const StWelch *w, int na, int nb) {
  if (na < 2 || nb < 2)
    snprintf(buf, 128, "it needs at least two finished runs of each model, and they have %d "
             "and %d", na, nb);
  else if (isnan(w->p))
    snprintf(buf, 128, "every run of both gives the same final loss: there is no difference "
             "to test");
  else
    return NULL;
  return buf;
}

/* Welch's t, or in words when no spread makes it infinite. */
static const char *fmt_t(char *buf, double t) {
  if (isinf(t))
    return t > 0 ? "+infinity (neither model's final losses vary)"
                 : "-infinity (neither model's final losses vary)";
  snprintf(buf, 32, "%.3f", t);
  return buf;
}

/* "significant at 5 % ..." for a Welch p and its Holm adjustment (p is
   a number: see no_welch). */
static const char *verdict(double p, double holm) {
  if (holm < 0.05)
    return "significant at the 5 % level, also after Holm's correction";
  if (p < 0.05)
    return "significant at the 5 % level alone, but not after Holm's correction";
  return "not significant at the 5 % level: the seeds do not tell them apart";
}

/* The permutation test's result in words. */
static void perm_words(StDoc *d, const StPerm *r) {
  if (isnan(r->p)) {
    st_doc_text(d, "Permutation test: not done (a side without runs, or more than %d runs).",
                ST_PERM_MAX);
    return;
  }
  st_doc_text(d, "Exact permutation test: p = %.4f (%ld of %ld splits at least as far apart)",
              r->p, r->count, r->total);
  if (r->p <= r->min_p * (1 + 1e-9))
    st_doc_text(d, ", the smallest p these numbers of runs can give: every run of one is on "
                "the same side of every run of the other.");
  else
    st_doc_text(d, ".");
}

/* What a model's runs that diverged leave out, in a sentence. */
static void diverged_words(StDoc *d, const Entry *m) {
  if (m->diverged && m->n)
    st_doc_text(d, " (%d of its %d runs diverged and are left out)", m->diverged, m->runs);
}

/* ---- the report ---- */

/* The base model, which experiments are it, and how models rank. */
static void write_intro(const Concl *c, StDoc *d) {
  const Study *s = c->f->p->s;
  st_doc_heading(d, 2, "Conclusions");
  st_doc_para(d);
  st_doc_text(d, "Computed from the database's figures by mlpc; the words are fixed, the "
              "numbers, the order and the verdicts come from the runs.");
  st_doc_para(d);
  if (c->base < 0)
    st_doc_text(d, "The base model is not among the experiments: the models are only ranked "
                "and compared with each other.");
  else {
    st_doc_text(d, "The ");
    st_doc_strong(d, "base");
    st_doc_text(d, " model is the experiment");
    for (int i = 0, k = 0; i < s->nexp; i++)
      if (c->f->exp[i].same == c->m[c->base].exp)
        st_doc_text(d, "%s ", k++ ? "," : ""), st_doc_code(d, "%s", s->exp[i].name);
    st_doc_text(d, ". The other %d distinct models are its remedies.", c->nr);
  }
  st_doc_para(d);
  st_doc_text(d, "Models are ranked by their mean final %s (lower is better) over the runs "
              "that finished; a model with a diverged run ranks below every model without "
              "one, and one whose runs all diverged ranks last.", c->what);
  if (c->fig == ST_VAL_LOSS) {
    st_doc_text(d, " Every model holds out a validation split, so the ranking and every test "
                "below are on the ");
    st_doc_strong(d, "validation loss");
    st_doc_text(d, ", on samples held out of the training set; the test loss is reported "
                "beside it, and chooses nothing.");
  }
}

/* One row of the ranking table. */
static void rank_row(const Concl *c, StDoc *d, int k) {
  const Entry *m = &c->m[c->rank[k]];
  char a[64], b[64], p[32], ch[32];
  const StExpFigs *x = &c->f->exp[m->exp];
  st_doc_row(d);
  st_doc_num(d, k + 1, NAN, "%d", k + 1);
  st_doc_cell(d, "%s", label(c, c->rank[k]));
  st_doc_num(d, m->runs, NAN, "%d", m->runs);
  st_doc_num(d, m->diverged, NAN, "%d", m->diverged);
  st_doc_num(d, m->n ? m->mean : NAN, m->n ? m->std : NAN, "%s",
             fmt_pm(a, m->mean, m->std, m->n, 4, 1));
  if (c->fig != ST_TEST_LOSS)
    st_doc_num(d, m->n ? x->mean[ST_TEST_LOSS] : NAN, m->n ? x->std[ST_TEST_LOSS] : NAN, "%s",
               fmt_pm(b, x->mean[ST_TEST_LOSS], x->std[ST_TEST_LOSS], m->n, 4, 1));
  st_doc_num(d, m->n ? m->acc : NAN, m->n ? x->std[ST_TEST_ACC] : NAN, "%s",
             fmt_pm(b, m->acc, x->std[ST_TEST_ACC], m->n, 2, 100));
  if (c->base < 0)
    return;
  if (c->rank[k] == c->base || !m->n || !c->m[c->base].n) {
    for (int i = 0; i < 5; i++)
      st_doc_none(d);
    return;
  }
  const Entry *base = &c->m[c->base];
  st_doc_num(d, m->w.diff, NAN, "%+.4f", m->w.diff);
  st_doc_num(d, base->mean ? 100 * m->w.diff / base->mean : NAN, NAN, "%s",
             fmt_change(ch, m->w.diff, base->mean));
  st_doc_num(d, m->w.p, NAN, "%s", fmt_p(p, m->w.p));
  st_doc_num(d, m->holm, NAN, "%s", fmt_p(p, m->holm));
  st_doc_num(d, m->perm.p, NAN, "%s", fmt_p(p, m->perm.p));
}

/* The ranking table; with a base, each model's tests against it. */
static void write_ranking(const Concl *c, StDoc *d) {
  static const char *const against[] = {"against the base", "change (%)", "p (Welch)",
                                        "p (Holm)", "p (permutation)"};
  int beside = c->fig != ST_TEST_LOSS;
  char align[16];
  snprintf(align, sizeof align, "rlrrll%s%s", beside ? "l" : "", c->base >= 0 ? "rrrrr" : "");
  st_doc_heading(d, 3, "Ranking");
  st_doc_table(d, align);
  st_doc_anchor(d, "ranking");
  st_doc_row(d);
  st_doc_cell(d, "rank"), st_doc_cell(d, "model"), st_doc_cell(d, "runs");
  st_doc_cell(d, "diverged"), st_doc_cell(d, "final %s", c->what);
  if (beside)
    st_doc_cell(d, "final test loss");
  st_doc_cell(d, "test accuracy (%%)");
  for (int i = 0; c->base >= 0 && i < 5; i++)
    st_doc_cell(d, "%s", against[i]);
  for (int k = 0; k < c->nm; k++)
    rank_row(c, d, k);
  if (c->base >= 0)
    st_doc_para(d), st_doc_text(d, "\"Against the base\": the model's mean final %s minus "
                                   "the base's; p values are two-sided; n/a: no test (each "
                                   "remedy below says why), or no change in percent of a base "
                                   "mean of 0.", c->what);
}

/* The models significantly better or worse than the base, in one list. */
static int list_by_side(const Concl *c, StDoc *d, int better, int holm) {
  int k = 0;
  for (int i = 0; i < c->nr; i++) {
    const Entry *m = &c->m[c->rem[i]];
    double p = holm ? m->holm : m->w.p;
    if (p < 0.05 && (m->w.diff < 0) == better)
      st_doc_text(d, "%s%s", k++ ? ", " : "", label(c, c->rem[i]));
  }
  if (!k)
    st_doc_text(d, "none");
  return k;
}

/* How many remedies differ from the base at 5 %, with or without Holm. */
static int count_sig(const Concl *c, int holm) {
  int k = 0;
  for (int i = 0; i < c->nr; i++)
    k += (holm ? c->m[c->rem[i]].holm : c->m[c->rem[i]].w.p) < 0.05;
  return k;
}

/* How many remedies have a Welch p value against the base. */
static int count_tested(const Concl *c) {
  int k = 0;
  for (int i = 0; i < c->nr; i++)
    k += !isnan(c->m[c->rem[i]].w.p);
  return k;
}

/* Whether Welch's test can compare the best model with m: both have the
   two finished runs it needs. */
static int testable(const Entry *best, const Entry *m) {
  return m->n && best->n >= 2 && m->n >= 2;
}

/* The models Welch's test does not tell apart from the best one, and
   those it cannot test against it. */
static void against_best(const Concl *c, StDoc *d) {
  const Entry *best = &c->m[c->rank[0]];
  int k = 0, tested = 0, u = 0;
  char p[32];
  for (int i = 1; i < c->nm; i++)
    tested += testable(best, &c->m[c->rank[i]]);
  if (tested)
    st_doc_text(d, " Not told apart from it by Welch's test at the 5 %% level: ");
  for (int i = 1; i < c->nm; i++) {
    const Entry *m = &c->m[c->rank[i]];
    StWelch w = st_welch(best->loss, best->n, m->loss, m->n);
    if (testable(best, m) && !(w.p < 0.05))
      st_doc_text(d, "%s%s (%s%s)", k++ ? ", " : "", label(c, c->rank[i]),
                  isnan(w.p) ? "the same final losses" : "p = ", isnan(w.p) ? "" : fmt_p(p, w.p));
  }
  if (tested)
    st_doc_text(d, "%s.", k ? "" : "none");
  for (int i = 1; i < c->nm; i++)
    if (c->m[c->rank[i]].n && !testable(best, &c->m[c->rank[i]]))
      st_doc_text(d, "%s%s", u++ ? ", " : " Not tested against it, since Welch's test needs at "
                  "least two finished runs of each model: ", label(c, c->rank[i]));
  if (u)
    st_doc_text(d, ".");
}

/* The gist: the best model, which are not told apart from it, and which
   remedies beat or lose to the base. */
static void write_gist(const Concl *c, StDoc *d) {
  const Entry *best = &c->m[c->rank[0]];
  st_doc_para(d);
  if (!best->n) {
    st_doc_text(d, "Every run of every model diverged: nothing to rank.");
    return;
  }
  st_doc_strong(d, "Best:");
  st_doc_text(d, " %s, mean final %s %.4f", label(c, c->rank[0]), c->what, best->mean);
  if (c->fig != ST_TEST_LOSS)
    st_doc_text(d, " (test loss %.4f)", c->f->exp[best->exp].mean[ST_TEST_LOSS]);
  st_doc_text(d, ".");
  against_best(c, d);
  if (c->base < 0)
    return;
  if (!count_tested(c)) {
    st_doc_para(d);
    st_doc_text(d, "No remedy has a Welch test against the base (each remedy below says why), "
                "so none is significantly better or worse than it.");
    return;
  }
  for (int holm = 1; holm >= 0; holm--) {
    if (!holm && count_sig(c, 0) == count_sig(c, 1))
      break;
    st_doc_para(d);
    st_doc_text(d, "%s%s than the base, significant at the 5 %% level%s: ", holm ?
                "Lower final " : "Without the correction, lower", holm ? c->what : "",
                holm ? " after Holm's correction" : " alone");
    list_by_side(c, d, 1, holm);
    st_doc_text(d, ". Higher: ");
    list_by_side(c, d, 0, holm);
    st_doc_text(d, ".");
  }
}

/* Whether accuracy moves against the loss (both up or both down). */
static int disagree(const Entry *m, const Entry *b) {
  return (m->mean - b->mean) * (m->acc - b->acc) > 0;
}

/* One remedy against the base, in sentences. */
static void remedy_words(const Concl *c, StDoc *d, int i) {
  const Entry *m = &c->m[c->rem[i]], *b = &c->m[c->base];
  char x[64], y[64], p1[32], p2[32], t[32], ch[32], no[128];
  st_doc_item(d);
  st_doc_strong(d, "%s", label(c, c->rem[i]));
  if (!m->n || !b->n) {
    st_doc_text(d, ": %s diverged in every run; no final losses to compare.",
                m->n ? "the base" : "it");
    return;
  }
  st_doc_text(d, "%s the final %s to %s from the base's %s: %.4f %s (%s %%)",
              m->w.diff < 0 ? " lowers" : m->w.diff > 0 ? " raises" : " leaves", c->what,
              fmt_pm(x, m->mean, m->std, m->n, 4, 1), fmt_pm(y, b->mean, b->std, b->n, 4, 1),
              fabs(m->w.diff), m->w.diff < 0 ? "lower" : "higher",
              fmt_change(ch, m->w.diff, b->mean));
  diverged_words(d, m);
  const char *why = no_welch(no, &m->w, m->n, b->n);
  if (why)
    st_doc_text(d, ". Welch's t-test: none, since %s. ", why);
  else
    st_doc_text(d, ". Welch's t = %s, %.2f degrees of freedom, p = %s; Holm-adjusted over the "
                "%d comparisons with the base: p = %s: %s. ", fmt_t(t, m->w.t), m->w.df,
                fmt_p(p1, m->w.p), c->nr, fmt_p(p2, m->holm), verdict(m->w.p, m->holm));
  perm_words(d, &m->perm);
  st_doc_text(d, " Test accuracy %.2f %% against %.2f %%", 100 * m->acc, 100 * b->acc);
  if (disagree(m, b))
    st_doc_text(d, ": the accuracy moves the other way from the loss; by accuracy it is %s "
                "than the base.", m->acc > b->acc ? "better" : "worse");
  else
    st_doc_text(d, ".");
}

/* Each remedy against the base, in the ranking's order. */
static void write_against_base(const Concl *c, StDoc *d) {
  if (c->base < 0)
    return;
  st_doc_heading(d, 3, "Each remedy against the base");
  if (c->m[c->base].diverged && c->m[c->base].n)
    st_doc_para(d), st_doc_text(d, "%d of the base's %d runs diverged and are left out.",
                                c->m[c->base].diverged, c->m[c->base].runs);
  for (int i = 0; i < c->nr; i++)
    remedy_words(c, d, i);
}

/* The matrix of Welch p values between the remedies (at most 12). */
static void pair_matrix(const Concl *c, StDoc *d) {
  char p[32], align[ALL_PAIRS + 2];
  st_doc_para(d);
  st_doc_text(d, "Welch's p (two-sided, not adjusted) for each pair, in the ranking's order:");
  snprintf(align, sizeof align, "l%.*s", c->nr, "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
  st_doc_table(d, align);
  st_doc_anchor(d, "pairs");
  st_doc_row(d);
  st_doc_none(d);
  for (int j = 0; j < c->nr; j++)
    st_doc_cell(d, "%s", label(c, c->rem[j]));
  for (int i = 0; i < c->nr; i++) {
    st_doc_row(d);
    st_doc_cell(d, "%s", label(c, c->rem[i]));
    for (int j = 0; j < c->nr; j++) {
      double pv = i == j ? NAN : c->pw[i < j ? pair(c, i, j) : pair(c, j, i)].p;
      if (i == j)
        st_doc_cell(d, "%s", "");
      else
        st_doc_num(d, pv, NAN, "%s", fmt_p(p, pv));
    }
  }
}

/* One model against the next in the ranking. */
static void neighbour_words(const Concl *c, StDoc *d, int i) {
  const Entry *a = &c->m[c->rem[i]], *b = &c->m[c->rem[i + 1]];
  const StWelch *w = &c->pw[pair(c, i, i + 1)];
  char p1[32], p2[32], no[128];
  if (!a->n || !b->n)
    return;
  int n = tested_pairs(c);
  const char *why = no_welch(no, w, a->n, b->n);
  st_doc_item(d);
  st_doc_text(d, "%s (%.4f) against %s (%.4f): %.4f apart; ", label(c, c->rem[i]), a->mean,
              label(c, c->rem[i + 1]), b->mean, fabs(w->diff));
  if (why)
    st_doc_text(d, "no Welch's t-test, since %s. ", why);
  else
    st_doc_text(d, "Welch's p = %s, Holm over the %d pair%s p = %s: %s. ", fmt_p(p1, w->p), n,
                n == 1 ? "" : "s", fmt_p(p2, c->ph[pair(c, i, i + 1)]),
                verdict(w->p, c->ph[pair(c, i, i + 1)]));
  perm_words(d, &c->pp[pair(c, i, i + 1)]);
}

/* The remedies against each other: the matrix, then each against the
   next in the ranking. */
static void write_pairs(const Concl *c, StDoc *d) {
  if (c->nr < 2)
    return;
  st_doc_heading(d, 3, "The %s against each other", c->base < 0 ? "models" : "remedies");
  if (c->nr <= 12)
    pair_matrix(c, d);
  else
    st_doc_para(d), st_doc_text(d, "%s in comparisons.csv.", c->nr <= ALL_PAIRS
                                ? "Every pair's tests are" : "With so many models, only each "
                                "against the next in the ranking is tested; the tests are");
  st_doc_para(d);
  st_doc_text(d, "Each against the next in the ranking:");
  for (int i = 0; i + 1 < c->nr && i < 20; i++)
    neighbour_words(c, d, i);
}

/* The smallest and largest of the Welch degrees of freedom of every
   test; the number of tests. */
static int df_range(const Concl *c, double *lo, double *hi) {
  int k = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int i = 0; i < c->nr; i++)
    for (int j = i; j < c->nr && (i == j || tested(c, i, j)); j++) {
      double df = i == j ? c->m[c->rem[i]].w.df : c->pw[pair(c, i, j)].df;
      if (!isnan(df))
        k++, *lo = fmin(*lo, df), *hi = fmax(*hi, df);
    }
  return k;
}

/* The fewest and most finished runs of a model. */
static void runs_range(const Concl *c, int *lo, int *hi) {
  *lo = c->nm ? c->m[0].n : 0, *hi = *lo;
  for (int i = 0; i < c->nm; i++)
    *lo = c->m[i].n < *lo ? c->m[i].n : *lo, *hi = c->m[i].n > *hi ? c->m[i].n : *hi;
}

/* A permutation test done with the most common sizes, for the words on
   its smallest p; NULL if none was done. */
static const StPerm *some_perm(const Concl *c, int *na, int *nb) {
  for (int i = 0; c->base >= 0 && i < c->nr; i++)
    if (!isnan(c->m[c->rem[i]].perm.p))
      return *na = c->m[c->rem[i]].n, *nb = c->m[c->base].n, &c->m[c->rem[i]].perm;
  for (int i = 0; i + 1 < c->nr; i++)
    if (!isnan(c->pp[pair(c, i, i + 1)].p))
      return *na = c->m[c->rem[i]].n, *nb = c->m[c->rem[i + 1]].n, &c->pp[pair(c, i, i + 1)];
  return NULL;
}

/* How much the tests can say with this many seeds. */
static void write_evidence(const Concl *c, StDoc *d) {
  int lo, hi, na = 0, nb = 0;
  double dlo, dhi;
  runs_range(c, &lo, &hi);
  st_doc_heading(d, 3, "How strong this evidence is");
  st_doc_para(d);
  st_doc_text(d, "Each model has %d", lo);
  if (hi != lo)
    st_doc_text(d, " to %d", hi);
  st_doc_text(d, " finished run%s, one per seed. ", hi == 1 ? "" : "s");
  if (lo < 2)
    st_doc_text(d, "Welch's t-test needs at least two finished runs of each model it compares, "
                "so a model with fewer is compared by the permutation test alone. ");
  st_doc_text(d, "Welch's t-test does not assume equal spreads, but assumes that a model's "
              "final losses over seeds are roughly normal, which so few values cannot check");
  if (df_range(c, &dlo, &dhi)) {
    st_doc_text(d, "; its degrees of freedom here are %.2f", dlo);
    if (dhi - dlo >= 0.005)
      st_doc_text(d, " to %.2f", dhi);
    st_doc_text(d, ", so its p values rest on very little");
  }
  st_doc_text(d, ". Holm's correction keeps the chance of any false \"significant\" within a "
              "family (%s) at 5 %%.", c->base >= 0 ? "the comparisons with the base; the "
              "pairs" : "the pairs");
  const StPerm *r = some_perm(c, &na, &nb);
  if (r)
    st_doc_para(d),
    st_doc_text(d, "The exact permutation test assumes nothing about the distribution, but %d "
                "against %d runs can be split only C(%d, %d) = %ld ways, so its two-sided p "
                "is never below %.4f (one-sided: %.4f)%s", na, nb, na + nb, na, r->total,
                r->min_p, 1.0 / r->total,
                r->min_p >= 0.05 ? ": it cannot reach the 5 % level whatever the numbers; at "
                                   "best it says that the runs do not overlap." : ".");
  st_doc_para(d);
  st_doc_text(d, "So read an order as established only where the tests are significant; "
              "where they are not, other seeds could reverse it%s.",
              lo < 5 ? ", and more seeds per model would sharpen every test" : "");
}

/* ---- comparisons.csv and the terminal ---- */

/* One row of comparisons.csv. */
static void csv_row(FILE *csv, const Concl *c, const char *family, int a, int b,
                    const StWelch *w, double holm, const StPerm *r) {
  const Entry *x = &c->m[a], *y = &c->m[b];
  st_csv_text(csv, family, 0), st_csv_text(csv, label(c, a), 0);
  st_csv_text(csv, label(c, b), 0);
  fprintf(csv, "%d,%d,", x->n, y->n);
  double v[] = {x->mean, y->mean, w->diff, w->t, w->df, w->p, holm, r->p};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    st_csv_real(csv, v[i], 0);
  fprintf(csv, "%ld,%ld\n", r->count, r->total);
}

/* comparisons.csv: every test against the base, then every pair. */
static void write_csv(const Concl *c, FILE *csv) {
  fputs("family,a,b,n_a,n_b,mean_a,mean_b,diff,t,df,p_welch,p_holm,p_permutation,"
        "permutation_count,permutation_total\n", csv);
  for (int i = 0; c->base >= 0 && i < c->nr; i++) {
    const Entry *m = &c->m[c->rem[i]];
    csv_row(csv, c, "base", c->rem[i], c->base, &m->w, m->holm, &m->perm);
  }
  for (int i = 0; i < c->nr; i++)
    for (int j = i + 1; j < c->nr && tested(c, i, j); j++)
      csv_row(csv, c, "pair", c->rem[i], c->rem[j], &c->pw[pair(c, i, j)],
              c->ph[pair(c, i, j)], &c->pp[pair(c, i, j)]);
}

/* The ranking on the terminal. */
static void print_ranking(const Concl *c, FILE *term) {
  int w = 8;
  char p1[32], p2[32], p3[32];
  for (int i = 0; i < c->nm; i++)
    w = (int)strlen(label(c, i)) > w ? (int)strlen(label(c, i)) : w;
  fprintf(term, "\nranking by mean final %s%s%s\n", c->what,
          c->fig != ST_TEST_LOSS ? " (the test loss beside it)" : "", c->base < 0 ? "" :
          "; against the base: difference, Welch's t-test p (Holm-adjusted), permutation p");
  for (int k = 0; k < c->nm; k++) {
    const Entry *m = &c->m[c->rank[k]];
    fprintf(term, "%3d. %-*s  ", k + 1, w, label(c, c->rank[k]));
    if (!m->n) {
      fprintf(term, "diverged\n");
      continue;
    }
    fprintf(term, "%.4f", m->mean);
    if (c->fig != ST_TEST_LOSS)
      fprintf(term, " (test %.4f)", c->f->exp[m->exp].mean[ST_TEST_LOSS]);
    if (c->rank[k] == c->base || c->base < 0 || !c->m[c->base].n)
      fputc('\n', term);
    else
      fprintf(term, "  %+9.4f  p = %s (%s)  perm. p = %s\n", m->w.diff, fmt_p(p1, m->w.p),
              fmt_p(p2, m->holm), fmt_p(p3, m->perm.p));
  }
}

void st_conclude(const StFigs *f, StDoc *d, FILE *csv, FILE *term) {
  int val = st_on_val(f->p->s);
  Concl c = {.f = f, .fig = val ? ST_VAL_LOSS : ST_TEST_LOSS,
             .what = val ? "validation loss" : "test loss"};
  collect(&c);
  rank_models(&c);
  test_base(&c);
  test_pairs(&c);
  write_intro(&c, d);
  write_ranking(&c, d);
  write_gist(&c, d);
  write_against_base(&c, d);
  write_pairs(&c, d);
  write_evidence(&c, d);
  int *exps = malloc((size_t)c.nm * sizeof *exps + 1);
  for (int k = 0; k < c.nm; k++)
    exps[k] = c.m[c.rank[k]].exp;
  st_health_why(f, exps, c.nm, d);
  free(exps);
  write_csv(&c, csv);
  if (term)
    print_ranking(&c, term);
  for (int i = 0; i < c.nm; i++)
    free(c.m[i].loss);
  free(c.m), free(c.rank), free(c.rem), free(c.pw), free(c.pp), free(c.ph);
}
