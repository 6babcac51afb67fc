/*
 * adaptive.c — adaptive seeds (docs/study-format.md, "Adaptive seeds").
 *
 * An adaptive study runs its starting seeds, then adds seeds one at a
 * time to the models whose comparisons are undecided, until every
 * comparison the report makes is decided or the models reach max_seeds:
 *
 *   comparisons   each model against the base, and each model against
 *                 the next in the ranking (by mean final test loss, as
 *                 conclude.c ranks; the validation loss instead when
 *                 every experiment holds out a split, st_on_val)
 *   test          st_seq_test (seq.c) on the seeds both models have, at
 *                 level alpha with Bonferroni's correction over every
 *                 pair of distinct models (the neighbours in the ranking
 *                 are chosen by the data, so any pair may be reported)
 *   a round       every model in an undecided comparison, below
 *                 max_seeds, wants its next seed
 *
 * st_adaptive_next replays the rounds from the starting seeds on the
 * runs the database holds, so what it asks for next is a function of the
 * recorded runs alone: a study interrupted anywhere and started again
 * (with any --jobs, or over MPI) goes on exactly as it would have.
 * st_adaptive_report writes the verdicts from the report's figures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "study.h"

/* The distinct models and their runs' final losses, in seed order (a
   diverged run +infinity): test losses, or validation losses (val). */
typedef struct {
  const Study *s;
  int val;
  int nm;
  int *exp;                 /* (nm): each model's first experiment        */
  int *n;                   /* (nm): its runs                             */
  double *loss;             /* (nm, s->nseeds)                            */
  int base;                 /* the base's index, -1 if none               */
} Models;

/* One comparison of two models (a ranked above b, or b the base). */
typedef struct {
  int a, b;
  StSeq t;
} Cmp;

/* The comparisons of a round. */
typedef struct {
  int *rank;                /* (nm): models, best first                   */
  int nc;
  Cmp *c;                   /* (2 nm)                                     */
  int pairs;                /* the pairs Bonferroni's correction is over  */
  double threshold;         /* pairs / alpha                              */
} Verdicts;

/* ---- models ---- */

/* Allocates room for up to nexp models. */
static void models_init(Models *m, const Study *s) {
  *m = (Models){.s = s, .val = st_on_val(s), .base = -1};
  m->exp = calloc((size_t)s->nexp + 1, sizeof *m->exp);
  m->n = calloc((size_t)s->nexp + 1, sizeof *m->n);
  m->loss = calloc((size_t)s->nexp * s->nseeds + 1, sizeof *m->loss);
  if (!m->exp || !m->n || !m->loss) {
    fprintf(stderr, "mlpc: error: out of memory\n");
    exit(1);
  }
}

static void models_free(Models *m) { free(m->exp), free(m->n), free(m->loss); }

/* Model i's losses. */
static double *losses(const Models *m, int i) { return m->loss + (size_t)i * m->s->nseeds; }

/* The mean of model i's finished runs, and how many diverged. */
static double model_mean(const Models *m, int i, int *diverged) {
  double *x = malloc((size_t)m->n[i] * sizeof *x + 1), mean, std;
  int k = 0;
  for (int r = 0; r < m->n[i]; r++)
    if (isfinite(losses(m, i)[r]))
      x[k++] = losses(m, i)[r];
  st_mean_std(x, k, &mean, &std);
  *diverged = m->n[i] - k;
  free(x);
  return mean;
}

static const Models *sorting;

/* Orders models as conclude.c does: no run diverged, some did, all did;
   then by mean final loss; then in study order. */
static int by_rank(const void *pa, const void *pb) {
  int a = *(const int *)pa, b = *(const int *)pb, da, db;
  double ma = model_mean(sorting, a, &da), mb = model_mean(sorting, b, &db);
  int ta = da == sorting->n[a] ? 2 : da > 0, tb = db == sorting->n[b] ? 2 : db > 0;
  if (ta != tb)
    return ta - tb;
  if (ta < 2 && ma != mb)
    return ma < mb ? -1 : 1;
  return sorting->exp[a] - sorting->exp[b];
}

/* A model's name in the text: "base" or its experiment's. */
static const char *name_of(const Models *m, int i) {
  return i == m->base ? "base" : m->s->exp[m->exp[i]].name;
}

/* ---- verdicts ---- */

/* Adds the comparison of models a and b unless it is there already. */
static void add_cmp(Verdicts *v, const Models *m, int a, int b) {
  for (int i = 0; i < v->nc; i++)
    if ((v->c[i].a == a && v->c[i].b == b) || (v->c[i].a == b && v->c[i].b == a))
      return;
  int n = m->n[a] < m->n[b] ? m->n[a] : m->n[b];
  v->c[v->nc++] = (Cmp){a, b, st_seq_test(losses(m, a), losses(m, b), n, v->threshold)};
}

/* Ranks the models and tests the comparisons the report makes: each
   model against the base, then each against the next in the ranking. */
static void decide(const Models *m, Verdicts *v) {
  v->rank = malloc((size_t)m->nm * sizeof *v->rank + 1);
  v->c = malloc(2 * (size_t)m->nm * sizeof *v->c + 1);
  v->nc = 0;
  v->pairs = m->nm * (m->nm - 1) / 2;
  v->threshold = v->pairs / m->s->alpha;
  for (int i = 0; i < m->nm; i++)
    v->rank[i] = i;
  sorting = m;
  qsort(v->rank, (size_t)m->nm, sizeof *v->rank, by_rank);
  for (int k = 0; k < m->nm && m->base >= 0; k++)
    if (v->rank[k] != m->base)
      add_cmp(v, m, v->rank[k], m->base);
  for (int k = 0; k + 1 < m->nm; k++)
    add_cmp(v, m, v->rank[k], v->rank[k + 1]);
}

static void verdicts_free(Verdicts *v) { free(v->rank), free(v->c); }

/* The number of undecided comparisons. */
static int undecided(const Verdicts *v) {
  int k = 0;
  for (int i = 0; i < v->nc; i++)
    k += !v->c[i].t.decided;
  return k;
}

/* Marks grow[i] for every model in an undecided comparison below the
   study's seeds; the number marked. */
static int to_grow(const Models *m, const Verdicts *v, char *grow) {
  int k = 0;
  memset(grow, 0, (size_t)m->nm);
  for (int i = 0; i < v->nc; i++)
    for (int j = 0; j < 2 && !v->c[i].t.decided; j++) {
      int x = j ? v->c[i].b : v->c[i].a;
      if (m->n[x] < m->s->nseeds && !grow[x])
        grow[x] = 1, k++;
    }
  return k;
}

/* ---- rounds, from the plan and the database ---- */

/* The distinct models of the plan (experiments with the same runs), each
   with its starting seeds. */
static void plan_models(const StPlan *p, Models *m) {
  const Study *s = p->s;
  models_init(m, s);
  for (int e = 0; e < s->nexp; e++) {
    int same = -1;
    for (int i = 0; i < m->nm && same < 0; i++)
      if (p->task_of[m->exp[i] * s->nseeds] == p->task_of[e * s->nseeds])
        same = i;
    if (same < 0)
      same = m->nm, m->exp[m->nm] = e, m->n[m->nm++] = s->nstart;
    if (e == p->base)
      m->base = same;
  }
}

/* Sets each experiment's wanted seeds to its model's, and the tasks. */
static void want(StPlan *p, const Models *m) {
  const Study *s = p->s;
  for (int e = 0; e < s->nexp; e++)
    for (int i = 0; i < m->nm; i++)
      if (p->task_of[m->exp[i] * s->nseeds] == p->task_of[e * s->nseeds])
        p->nwant[e] = m->n[i];
  st_plan_want(p);
}

/* The task of model i's run of seed k. */
static const StTask *task(const StPlan *p, const Models *m, int i, int k) {
  return &p->tasks[p->task_of[m->exp[i] * p->s->nseeds + k]];
}

/* The runs the models want that the database lacks. */
static int lacking(const StPlan *p, const Models *m) {
  int k = 0;
  for (int i = 0; i < m->nm; i++)
    for (int r = 0; r < m->n[i]; r++)
      k += task(p, m, i, r)->run_id <= 0;
  return k;
}

/* Reads every wanted run's final loss from the database; -1 on errors. */
static int read_losses(const StPlan *p, sqlite3 *db, Models *m, char *err, size_t errlen) {
  for (int i = 0; i < m->nm; i++)
    for (int r = 0; r < m->n[i]; r++)
      if (st_db_final_loss(db, task(p, m, i, r)->run_id, m->val, &losses(m, i)[r], err,
                           errlen))
        return -1;
  return 0;
}

/* Says which models get another seed, and why. */
static void say_round(const StPlan *p, const Models *m, const Verdicts *v, const char *grow,
                      FILE *term) {
  int k = 0;
  fprintf(term, "mlpc: adaptive: %d of %d comparisons undecided; another seed for", undecided(v),
          v->nc);
  for (int i = 0; i < m->nm; i++)
    if (grow[i])
      fprintf(term, "%s %s (seed %llu)", k++ ? "," : "", name_of(m, i),
              (unsigned long long)p->s->seeds[m->n[i]]);
  fputc('\n', term);
  fflush(term);
}

/* Says that the rounds are over, and how. */
static void say_end(const Models *m, const Verdicts *v, FILE *term) {
  int u = undecided(v), most = 0;
  for (int i = 0; i < m->nm; i++)
    most = m->n[i] > most ? m->n[i] : most;
  if (u)
    fprintf(term, "mlpc: adaptive: %d of %d comparisons decided, %d undecided at max_seeds "
            "(%d)\n", v->nc - u, v->nc, u, m->s->nseeds);
  else
    fprintf(term, "mlpc: adaptive: all %d comparisons decided, with at most %d seeds a "
            "model\n", v->nc, most);
  fflush(term);
}

/* One round of the replay: decides on the recorded runs, and adds a seed
   to the models that need one; 1 if any did, 0 if the study is done. It
   says so unless an earlier call said it already (say: 0). */
static int round_on(const StPlan *p, Models *m, char *grow, int say, FILE *term) {
  Verdicts v;
  decide(m, &v);
  int more = to_grow(m, &v, grow);
  if (more && say)
    say_round(p, m, &v, grow, term);
  else if (!more)
    say_end(m, &v, term);
  for (int i = 0; i < m->nm; i++)
    m->n[i] += grow[i];
  verdicts_free(&v);
  return more;
}

int st_adaptive_next(StPlan *p, sqlite3 *db, int *said, FILE *term, char *err,
                     size_t errlen) {
  Models m;
  plan_models(p, &m);
  char *grow = malloc((size_t)m.nm + 1);
  int rc = 0;
  for (int r = 0; !rc && !(rc = lacking(p, &m)); r++)
    if (read_losses(p, db, &m, err, errlen))
      rc = -1;
    else if (!round_on(p, &m, grow, r >= *said, term))
      break;
    else
      *said = *said > r + 1 ? *said : r + 1;
  want(p, &m);
  free(grow);
  models_free(&m);
  return rc;
}

/* ---- the report ---- */

/* The distinct models of the report's figures and their runs. */
static void figs_models(const StFigs *f, Models *m) {
  const Study *s = f->p->s;
  models_init(m, s);
  int fig = m->val ? ST_VAL_LOSS : ST_TEST_LOSS;
  for (int e = 0; e < s->nexp; e++) {
    const StExpFigs *x = &f->exp[e];
    if (x->same != e)
      continue;
    if (f->p->base >= 0 && f->exp[f->p->base].same == e)
      m->base = m->nm;
    m->exp[m->nm] = e, m->n[m->nm] = x->runs;
    for (int r = 0; r < x->runs; r++)
      losses(m, m->nm)[r] = x->run[r].diverged_epoch ? INFINITY : x->run[r].fig[fig];
    m->nm++;
  }
}

/* A comparison's verdict in words, into buf. */
static const char *verdict(const Models *m, const Cmp *c, char *buf, size_t n) {
  if (!c->t.decided)
    snprintf(buf, n, "undecided at max_seeds (%d seeds compared, e-value %.3g)", c->t.n, c->t.e);
  else
    snprintf(buf, n, "decided after %d seeds: %s lower (e-value %.3g)", c->t.decided,
             name_of(m, c->t.lower < 0 ? c->a : c->b), c->t.e);
  return buf;
}

/* The verdict of the comparison of a and b; NULL if it is not made. */
static const Cmp *find_cmp(const Verdicts *v, int a, int b) {
  for (int i = 0; i < v->nc; i++)
    if ((v->c[i].a == a && v->c[i].b == b) || (v->c[i].a == b && v->c[i].b == a))
      return &v->c[i];
  return NULL;
}

/* The first lines of the section: what was run, and how it was tested. */
static void section_intro(const Models *m, const Verdicts *v, StDoc *d) {
  const Study *s = m->s;
  st_doc_heading(d, 2, "Adaptive seeds");
  st_doc_para(d);
  st_doc_text(d, "The study ran its %d starting seed%s, then added seeds, one at a time and in "
              "increasing order (", s->nstart, s->nstart == 1 ? "" : "s");
  if (s->nseeds > s->nstart)
    st_doc_text(d, "%llu to %llu", (unsigned long long)s->seeds[s->nstart],
                (unsigned long long)s->seeds[s->nseeds - 1]);
  else
    st_doc_text(d, "none: max_seeds is the number of starting seeds");
  st_doc_text(d, "), to the models whose comparisons were undecided, up to %d seeds a model. ",
              s->nseeds);
  if (m->nm < 2) {
    st_doc_text(d, "With one model there is nothing to compare.");
    return;
  }
  st_doc_text(d, "Each comparison is a sequential test that stays valid however the seeds were "
              "added and whenever they stopped: a conformal test martingale on the sequential "
              "ranks of the two models' final %s losses (docs/study-format.md). It is "
              "decided when its e-value reaches %d / %g = %.4g: the level %g, with "
              "Bonferroni's correction over the %d pair%s of the %d models.",
              m->val ? "validation" : "test", v->pairs, s->alpha, v->threshold, s->alpha,
              v->pairs, v->pairs == 1 ? "" : "s", m->nm);
}

/* The table of comparisons. */
static void verdict_table(const Models *m, const Verdicts *v, StDoc *d) {
  char buf[512];
  st_doc_table(d, "lrl");
  st_doc_anchor(d, "verdicts");
  st_doc_row(d);
  st_doc_cell(d, "comparison"), st_doc_cell(d, "seeds"), st_doc_cell(d, "verdict");
  for (int i = 0; i < v->nc; i++) {
    st_doc_row(d);
    st_doc_cell(d, "%s against %s", name_of(m, v->c[i].a), name_of(m, v->c[i].b));
    st_doc_num(d, m->n[v->c[i].a], NAN, "%d and %d", m->n[v->c[i].a], m->n[v->c[i].b]);
    st_doc_cell(d, "%s", verdict(m, &v->c[i], buf, sizeof buf));
  }
}

/* Whether the order of ranks k and k + 1 is established: their
   comparison decided, the better-ranked lower. */
static int established(const Verdicts *v, int k) {
  const Cmp *c = find_cmp(v, v->rank[k], v->rank[k + 1]);
  return c && c->t.decided && (c->t.lower < 0 ? c->a : c->b) == v->rank[k];
}

/* How model k of the ranking stands against the one above it. */
static void order_words(const Models *m, const Verdicts *v, int k, StDoc *d) {
  const Cmp *c = find_cmp(v, v->rank[k - 1], v->rank[k]);
  st_doc_text(d, "; below %s: ", name_of(m, v->rank[k - 1]));
  if (established(v, k - 1))
    st_doc_strong(d, "established"), st_doc_text(d, " after %d seeds", c->t.decided);
  else if (c && c->t.decided)
    st_doc_text(d, "not established: the test finds it lower, after %d seeds", c->t.decided);
  else
    st_doc_text(d, "not established");
}

/* The ranking, each order marked established or not. */
static void ranking_words(const Models *m, const Verdicts *v, StDoc *d) {
  int dv;
  st_doc_para(d);
  st_doc_text(d, "The ranking, and whether the tests establish each model's place below the "
              "one above it:");
  for (int k = 0; k < m->nm; k++) {
    double mean = model_mean(m, v->rank[k], &dv);
    st_doc_numbered(d);
    st_doc_text(d, "%s: %d seeds, ", name_of(m, v->rank[k]), m->n[v->rank[k]]);
    if (dv == m->n[v->rank[k]])
      st_doc_text(d, "every run diverged");
    else
      st_doc_text(d, "mean final %s loss %.4f", m->val ? "validation" : "test", mean);
    if (k)
      order_words(m, v, k, d);
  }
  st_doc_para(d);
  st_doc_text(d, "Welch's t-test and the permutation test above take the numbers of seeds as "
              "fixed in advance; with seeds added where the results were undecided their p "
              "values are not exact. The verdicts of this section are.");
}

/* The verdicts and the ranking's orders on the terminal. */
static void print_verdicts(const Models *m, const Verdicts *v, FILE *term) {
  char buf[512];
  fprintf(term, "\nadaptive seeds (e-value at least %.4g decides):\n", v->threshold);
  for (int i = 0; i < v->nc; i++)
    fprintf(term, "  %s against %s: %s\n", name_of(m, v->c[i].a), name_of(m, v->c[i].b),
            verdict(m, &v->c[i], buf, sizeof buf));
  fprintf(term, "established order (<: established, ?: not):");
  for (int k = 0; k < m->nm; k++)
    fprintf(term, " %s%s", name_of(m, v->rank[k]),
            k + 1 < m->nm ? (established(v, k) ? " <" : " ?") : "\n");
}

void st_adaptive_report(const StFigs *f, StDoc *d, FILE *term) {
  Models m;
  Verdicts v;
  figs_models(f, &m);
  decide(&m, &v);
  section_intro(&m, &v, d);
  if (m.nm >= 2) {
    verdict_table(&m, &v, d);
    ranking_words(&m, &v, d);
  }
  if (term && m.nm >= 2)
    print_verdicts(&m, &v, term);
  verdicts_free(&v);
  models_free(&m);
}
