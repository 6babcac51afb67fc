/*
 * report.c — a study's report, computed from the database alone (never
 * from figures held in memory), so that it always says what the
 * database holds. It reads every run of every experiment once (StFigs)
 * and writes into the output directory:
 *
 *   summary.csv      one row per experiment: factor, value, each varied
 *                    key's value, seeds, diverged, mean and standard
 *                    deviation of the final test loss, test accuracy,
 *                    train loss and seconds (and validation loss and
 *                    accuracy, when experiments hold out a split)
 *   runs.csv         one row per run per epoch (and one for the epoch
 *                    where a run diverged, without figures); under early
 *                    stopping, which epoch is the run's final one
 *   health.csv       each experiment's health figures per epoch (health.c)
 *   plots (plot.c)   test_loss, final_loss, health (health.c), each a
 *                    .png and an .svg
 *   report.md        what was run, the summary table, the figures, the
 *                    activation-health section (health.c) and the
 *                    conclusions (conclude.c, which also writes
 *                    comparisons.csv)
 *   report.html      the same as one web page (html.c), and the runs,
 *                    each with its figures after each epoch
 *
 * and the summary table and the ranking on the terminal. The report is
 * built once as a document (doc.c) that both report.md and report.html
 * are written from. Means and
 * standard deviations (n − 1 in the denominator) are over the runs that
 * did not diverge. CSV numbers are written with 17 significant digits:
 * they read back as the very doubles in the database.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "study.h"

const char *const st_figure_names[ST_NFIGS] = {
#define NAME_(e, name) name,
  ST_FIGURES(NAME_)
#undef NAME_
};

/* ---- reading the database ---- */

/* The columns of experiment_runs after the status and the ST_FIGURES. */
enum { RUN_ID = 1 + ST_NFIGS, RUN_SEED, RUN_DIVERGED_EPOCH, RUN_DIVERGED_STEP, RUN_BEST_EPOCH,
       RUN_EPOCHS };

/* The study's runs of one experiment, in seed order. */
static sqlite3_stmt *experiment_runs(sqlite3 *db, const Study *s, const StExperiment *e) {
  sqlite3_stmt *st = NULL;
  sqlite3_prepare_v2(db,
    "SELECT r.status, r.test_loss, r.test_acc, r.train_loss, r.seconds, r.val_loss, "
    "r.val_acc, r.id, s.seed, r.diverged_epoch, r.diverged_step, r.best_epoch, r.epochs FROM "
    "study_runs s JOIN runs r "
    "ON r.id = s.run_id WHERE s.study = ?1 AND s.experiment = ?2 ORDER BY s.seed", -1, &st,
    NULL);
  if (st) {
    sqlite3_bind_text(st, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, e->name, -1, SQLITE_STATIC);
  }
  return st;
}

/* Column i of the row as a number: NaN for NULL (no number, such as the
   train loss of an epoch without a training step). */
static double column_real(sqlite3_stmt *st, int i) {
  return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* Reads a run's test loss of every epoch; -1 on a database error. */
static int load_epochs(sqlite3 *db, StRunFigs *r) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "SELECT test_loss FROM epochs WHERE run_id = ?1 ORDER BY "
                                  "epoch", -1, &st, NULL) ? SQLITE_ERROR : SQLITE_ROW;
  sqlite3_bind_int64(st, 1, r->id);
  int cap = 16;
  r->test_loss = malloc(cap * sizeof *r->test_loss);
  while (rc == SQLITE_ROW && r->test_loss && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (r->nepochs == cap)
      r->test_loss = realloc(r->test_loss, (cap *= 2) * sizeof *r->test_loss);
    if (r->test_loss)
      r->test_loss[r->nepochs++] = sqlite3_column_double(st, 0);
  }
  sqlite3_finalize(st);
  return rc == SQLITE_DONE && r->test_loss ? 0 : -1;
}

/* Reads the current row of experiment_runs into r. */
static int load_run(sqlite3 *db, sqlite3_stmt *st, StRunFigs *r) {
  *r = (StRunFigs){.id = sqlite3_column_int64(st, RUN_ID),
                   .seed = (uint64_t)sqlite3_column_int64(st, RUN_SEED),
                   .diverged_epoch = sqlite3_column_int(st, RUN_DIVERGED_EPOCH),
                   .diverged_step = (long)sqlite3_column_int64(st, RUN_DIVERGED_STEP)};
  int finished = !strcmp((const char *)sqlite3_column_text(st, 0), "finished");
  for (int f = 0; f < ST_NFIGS; f++)
    r->fig[f] = finished ? column_real(st, 1 + f) : NAN;
  r->diverged_epoch = finished ? 0 : r->diverged_epoch > 0 ? r->diverged_epoch : 1;
  int rc = load_epochs(db, r);
  r->kept = sqlite3_column_int(st, RUN_BEST_EPOCH);  /* NULL, without early stopping: 0 */
  r->kept = r->kept > 0 ? r->kept : r->nepochs;
  return rc;
}

/* The mean and standard deviation of each final figure over the
   finished runs that have it. */
static void experiment_stats(StExpFigs *x) {
  double *v = malloc((size_t)(x->runs + 1) * sizeof *v);
  for (int f = 0; v && f < ST_NFIGS; f++) {
    int n = 0;
    for (int r = 0; r < x->runs; r++)
      if (!x->run[r].diverged_epoch && !isnan(x->run[r].fig[f]))
        v[n++] = x->run[r].fig[f];
    st_mean_std(v, n, &x->mean[f], &x->std[f]);
  }
  free(v);
}

/* Reads one experiment's runs; -1 on a database error. */
static int load_experiment(sqlite3 *db, const Study *s, int i, StExpFigs *x) {
  sqlite3_stmt *st = experiment_runs(db, s, &s->exp[i]);
  int rc = st ? SQLITE_ROW : SQLITE_ERROR;
  x->run = calloc((size_t)s->nseeds, sizeof *x->run);
  if (!x->run)
    rc = SQLITE_ERROR;
  while (rc == SQLITE_ROW && x->runs < s->nseeds && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    StRunFigs *r = &x->run[x->runs++];
    if (load_run(db, st, r))
      rc = SQLITE_ERROR;
    x->diverged += r->diverged_epoch > 0;
  }
  x->n = x->runs - x->diverged;
  sqlite3_finalize(st);
  experiment_stats(x);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* Whether two experiments have the very same runs. */
static int same_runs(const StExpFigs *a, const StExpFigs *b) {
  if (a->runs != b->runs)
    return 0;
  for (int r = 0; r < a->runs; r++)
    if (a->run[r].id != b->run[r].id)
      return 0;
  return 1;
}

/* Whether an experiment's runs hold out a validation split. */
static int holds_val(const StExperiment *e) { return rt_val_size(&e->model.recipe, 1) > 0; }

/* Counts the experiments with a validation split, and with early
   stopping. */
static void count_recipes(const Study *s, StFigs *f) {
  for (int i = 0; i < s->nexp; i++) {
    f->nval += holds_val(&s->exp[i]);
    f->nstop += s->exp[i].model.recipe.patience > 0;
  }
}

/* Reads every experiment of the plan; -1 on a database error. */
static int load_figs(sqlite3 *db, const StPlan *p, StFigs *f) {
  const Study *s = p->s;
  *f = (StFigs){p, db, calloc((size_t)s->nexp, sizeof *f->exp), NULL, 0, 0};
  if (!f->exp)
    return -1;
  count_recipes(s, f);
  for (int i = 0; i < s->nexp; i++) {
    if (load_experiment(db, s, i, &f->exp[i]))
      return -1;
    f->exp[i].same = i;
    for (int j = 0; j < i && f->exp[i].same == i; j++)
      if (f->exp[j].same == j && same_runs(&f->exp[i], &f->exp[j]))
        f->exp[i].same = j;
  }
  return (f->health = st_health_load(f)) ? 0 : -1;
}

/* Frees what load_figs read. */
static void free_figs(StFigs *f) {
  st_health_free(f->health, f->p->s->nexp);
  for (int i = 0; f->exp && i < f->p->s->nexp; i++) {
    for (int r = 0; r < f->exp[i].runs; r++)
      free(f->exp[i].run[r].test_loss);
    free(f->exp[i].run);
  }
  free(f->exp);
}

/* The figures the tables show: the validation ones (last) only when an
   experiment holds out a split. */
static int shown_figs(const StFigs *f) {
  return f->nval ? ST_NFIGS : ST_VAL_LOSS;
}

/* summary.csv: the header and one row per experiment. */
static void write_summary(FILE *f, const StFigs *figs) {
  const Study *s = figs->p->s;
  const StExpFigs *st = figs->exp;
  int nf = shown_figs(figs);
  fputs("experiment,factor,value,", f);
  for (int k = 0; k < s->nkeys; k++)
    st_csv_text(f, s->keys[k], 0);
  fputs("seeds,diverged", f);
  for (int g = 0; g < nf; g++)
    fprintf(f, ",%s_mean,%s_std", st_figure_names[g], st_figure_names[g]);
  fputc('\n', f);
  for (int i = 0; i < s->nexp; i++) {
    const StExperiment *e = &s->exp[i];
    st_csv_text(f, e->name, 0), st_csv_text(f, e->factor, 0), st_csv_text(f, e->value, 0);
    for (int k = 0; k < s->nkeys; k++)
      st_csv_text(f, e->values[k], 0);
    fprintf(f, "%d,%d,", st[i].runs, st[i].diverged);
    for (int g = 0; g < nf; g++)
      st_csv_real(f, st[i].mean[g], 0), st_csv_real(f, st[i].std[g], g == nf - 1);
  }
}

/* The epochs of run id, in order: epoch, train_loss, test_loss,
   test_acc, seconds, val_loss, val_acc; NULL on a database error. */
static sqlite3_stmt *run_epochs(sqlite3 *db, long long id) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT epoch, train_loss, test_loss, test_acc, seconds, "
                             "val_loss, val_acc FROM epochs WHERE run_id = ?1 ORDER BY epoch",
                         -1, &st, NULL))
    return NULL;
  sqlite3_bind_int64(st, 1, id);
  return st;
}

/* The epoch whose figures are the final ones of experiment_runs' current
   run: early stopping's, else its last; 0 for a run that diverged. */
static int kept_epoch(sqlite3_stmt *run) {
  int best = sqlite3_column_int(run, RUN_BEST_EPOCH);
  if (sqlite3_column_type(run, RUN_DIVERGED_EPOCH) != SQLITE_NULL)
    return 0;
  return best > 0 ? best : sqlite3_column_int(run, RUN_EPOCHS);
}

/* runs.csv rows of one run: its epochs, then where it diverged; with val,
   each ends with the validation loss and accuracy, and with stop (a study
   with early stopping) with kept: 1 on the epoch the run keeps. */
static int write_run_rows(FILE *f, sqlite3 *db, const StExperiment *e, sqlite3_stmt *run,
                          int val, int stop) {
  long long id = sqlite3_column_int64(run, RUN_ID);
  const char *status = (const char *)sqlite3_column_text(run, 0);
  char head[64];
  snprintf(head, sizeof head, "%lld,%lld,%s,", (long long)sqlite3_column_int64(run, RUN_SEED),
           id, status);
  sqlite3_stmt *st = run_epochs(db, id);
  if (!st)
    return -1;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    st_csv_text(f, e->name, 0), st_csv_text(f, e->factor, 0), st_csv_text(f, e->value, 0);
    fprintf(f, "%s%d,", head, sqlite3_column_int(st, 0));
    for (int c = 1; c <= 4; c++)
      st_csv_real(f, column_real(st, c), 0);
    if (val)  /* after the empty diverged_step */
      fputc(',', f), st_csv_real(f, column_real(st, 5), 0),
      st_csv_real(f, column_real(st, 6), !stop);
    if (stop)
      fprintf(f, "%s%d\n", val ? "" : ",", sqlite3_column_int(st, 0) == kept_epoch(run));
    else if (!val)
      fputc('\n', f);
  }
  sqlite3_finalize(st);
  if (sqlite3_column_type(run, RUN_DIVERGED_EPOCH) != SQLITE_NULL) {
    st_csv_text(f, e->name, 0), st_csv_text(f, e->factor, 0), st_csv_text(f, e->value, 0);
    fprintf(f, "%s%d,,,,,%lld%s%s\n", head, sqlite3_column_int(run, RUN_DIVERGED_EPOCH),
            (long long)sqlite3_column_int64(run, RUN_DIVERGED_STEP), val ? ",," : "",
            stop ? "," : "");
  }
  return rc == SQLITE_DONE ? 0 : -1;
}

/* runs.csv: every run of every experiment, epoch by epoch. */
static int write_runs(FILE *f, sqlite3 *db, const Study *s, int val, int stop) {
  fprintf(f, "experiment,factor,value,seed,run_id,status,epoch,train_loss,test_loss,test_acc,"
          "seconds,diverged_step%s%s\n", val ? ",val_loss,val_acc" : "", stop ? ",kept" : "");
  for (int i = 0; i < s->nexp; i++) {
    sqlite3_stmt *run = experiment_runs(db, s, &s->exp[i]);
    int rc = run ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(run)) == SQLITE_ROW)
      if (write_run_rows(f, db, &s->exp[i], run, val, stop))
        rc = SQLITE_ERROR;
    sqlite3_finalize(run);
    if (rc != SQLITE_DONE)
      return -1;
  }
  return 0;
}

/* ---- readable tables ---- */

/* "mean ± std" with the given decimals and scale; "diverged" if no run
   finished, "-" if there is none, "n/a" if no finished run has the
   figure; no ± with one run. */
static void mean_pm(char *buf, size_t n, const StExpFigs *st, int fig, int decimals,
                    double scale) {
  if (!st->runs)
    snprintf(buf, n, "-");
  else if (!st->n)
    snprintf(buf, n, "diverged");
  else if (isnan(st->mean[fig]))
    snprintf(buf, n, "n/a");
  else if (isnan(st->std[fig]))
    snprintf(buf, n, "%.*f", decimals, scale * st->mean[fig]);
  else
    snprintf(buf, n, "%.*f ± %.*f", decimals, scale * st->mean[fig], decimals,
             scale * st->std[fig]);
}

/* The table on the terminal: factors apart by a blank line; the
   validation loss first when experiments hold out a split. */
static void print_table(FILE *f, const StFigs *figs) {
  const Study *s = figs->p->s;
  const StExpFigs *st = figs->exp;
  int w = 10;
  char loss[64], acc[64], val[64];
  for (int i = 0; i < s->nexp; i++)
    w = (int)strlen(s->exp[i].name) > w ? (int)strlen(s->exp[i].name) : w;
  fprintf(f, "\n%-*s  seeds  diverged  %s%-19s  %s\n", w, "experiment",
          figs->nval ? "validation loss      " : "", "test loss", "test accuracy (%)");
  for (int i = 0; i < s->nexp; i++) {
    if (i && s->mode == ST_ONE_FACTOR && strcmp(s->exp[i].factor, s->exp[i - 1].factor))
      fputc('\n', f);
    mean_pm(loss, sizeof loss, &st[i], ST_TEST_LOSS, 4, 1);
    mean_pm(acc, sizeof acc, &st[i], ST_TEST_ACC, 2, 100);
    mean_pm(val, sizeof val, &st[i], ST_VAL_LOSS, 4, 1);
    fprintf(f, "%-*s  %5d  %8d  ", w, s->exp[i].name, st[i].runs, st[i].diverged);
    if (figs->nval)  /* ± takes 2 bytes */
      fprintf(f, "%-*s  ", 19 + (strstr(val, "±") ? 1 : 0), val);
    fprintf(f, "%-*s  %s\n", 19 + (strstr(loss, "±") ? 1 : 0), loss, acc);
  }
}

/* The summary's first words: which epoch's figures are final. */
static void write_final_words(StDoc *d, const StFigs *figs) {
  st_doc_para(d);
  st_doc_text(d, "Final figures after the last epoch%s: mean ± standard deviation over the "
              "seeds, leaving out runs that diverged.%s", figs->nstop ? " (under early "
              "stopping, of the epoch with the least validation loss, whose weights the run "
              "keeps)" : "", figs->nval ? " The validation loss is on the samples each run "
              "holds out of its training set (its seed chooses them)." : "");
}

/* The report's first line for an adaptive study: its seeds. */
static void write_adaptive_line(StDoc *d, const StPlan *p) {
  const Study *s = p->s;
  int runs = 0;
  for (int i = 0; i < p->ntasks; i++)
    runs += p->tasks[i].wanted;
  st_doc_item(d);
  st_doc_text(d, "file: ");
  st_doc_code(d, "%s", s->file);
  st_doc_text(d, ", mode %s: %d experiments, adaptive seeds: starting with ",
              st_mode_names[s->mode], s->nexp);
  for (int k = 0; k < s->nstart; k++)
    st_doc_text(d, "%s%llu", k ? ", " : "", (unsigned long long)s->seeds[k]);
  st_doc_text(d, ", then up to %d a model (through seed %llu), level %g; %d distinct runs",
              s->nseeds, (unsigned long long)s->seeds[s->nseeds - 1], s->alpha, runs);
}

/* The report's first lines: what was run. */
static void write_settings(StDoc *d, const StPlan *p) {
  const Study *s = p->s;
  st_doc_heading(d, 1, "Study %s", s->name);
  if (s->alpha > 0)
    write_adaptive_line(d, p);
  else {
    st_doc_item(d);
    st_doc_text(d, "file: ");
    st_doc_code(d, "%s", s->file);
    st_doc_text(d, ", mode %s: %d experiments × %d seeds (", st_mode_names[s->mode], s->nexp,
                s->nseeds);
    for (int k = 0; k < s->nseeds; k++)
      st_doc_text(d, "%s%llu", k ? ", " : "", (unsigned long long)s->seeds[k]);
    st_doc_text(d, "), %d distinct runs", p->ntasks);
  }
  st_doc_item(d);
  st_doc_text(d, "base model: ");
  st_doc_code(d, "%s", s->base_json);
  if (p->ntasks) {
    st_doc_item(d);
    st_doc_text(d, "settings: ");
    st_doc_code(d, "%s", p->tasks[0].settings);
    st_doc_text(d, ", data ");
    st_doc_code(d, "%s", p->tasks[0].data_dir);
    st_doc_text(d, " (hash %s)", p->tasks[0].data_hash.hex);
  }
  st_doc_item(d);
  st_doc_text(d, "arithmetic: %s (of the dense kernels, docs/performance.md; part of each "
              "run's code, and so of its key)", arith_names[s->arith]);
}

/* A cell of "mean ± std" (mean_pm's text), with the figure's values. */
static void pm_cell(StDoc *d, const StExpFigs *st, int fig, int decimals, double scale) {
  char buf[64];
  mean_pm(buf, sizeof buf, st, fig, decimals, scale);
  st_doc_num(d, st->mean[fig], st->std[fig], "%s", buf);
}

/* The summary table, after the settings; the validation loss first
   when experiments hold out a split. */
static void write_summary_table(StDoc *d, const StFigs *figs) {
  const Study *s = figs->p->s;
  const StExpFigs *st = figs->exp;
  char train[64];
  int no_train = 0;
  st_doc_heading(d, 2, "Summary");
  write_final_words(d, figs);
  st_doc_table(d, figs->nval ? "lrrllll" : "lrrlll");
  st_doc_anchor(d, "summary");
  st_doc_row(d);
  st_doc_cell(d, "experiment"), st_doc_cell(d, "seeds"), st_doc_cell(d, "diverged");
  if (figs->nval)
    st_doc_cell(d, "validation loss");
  st_doc_cell(d, "test loss"), st_doc_cell(d, "test accuracy (%%)");
  st_doc_cell(d, "train loss");
  for (int i = 0; i < s->nexp; i++) {
    st_doc_row(d);
    st_doc_cell(d, "%s", s->exp[i].name);
    st_doc_num(d, st[i].runs, NAN, "%d", st[i].runs);
    st_doc_num(d, st[i].diverged, NAN, "%d", st[i].diverged);
    if (figs->nval)
      pm_cell(d, &st[i], ST_VAL_LOSS, 4, 1);
    pm_cell(d, &st[i], ST_TEST_LOSS, 4, 1);
    pm_cell(d, &st[i], ST_TEST_ACC, 2, 100);
    pm_cell(d, &st[i], ST_TRAIN_LOSS, 4, 1);
    mean_pm(train, sizeof train, &st[i], ST_TRAIN_LOSS, 4, 1);
    no_train |= !strcmp(train, "n/a");
  }
  if (no_train) {
    st_doc_para(d);
    st_doc_text(d, "Train loss n/a: the runs took no training step (a training set of one "
                "sample under BatchNorm, which needs two), so they have no train loss.");
  }
}

/* ---- the page's runs ---- */

/* A cell of a number with the decimals given (scaled), "-" if there is
   none. */
static void num_cell(StDoc *d, double v, int decimals, double scale) {
  if (isnan(v))
    st_doc_num(d, v, NAN, "-");
  else
    st_doc_num(d, v, NAN, "%.*f", decimals, scale * v);
}

/* The table's row of one run, its number linked to its epochs; with val,
   its final validation loss too. */
static void run_row(StDoc *d, const StExperiment *e, const StRunFigs *r, int val) {
  st_doc_row(d);
  st_doc_num(d, (double)r->id, NAN, "%lld", r->id);
  st_doc_cell_link(d, "#run-%lld", r->id);
  st_doc_cell(d, "%s", e->name);
  st_doc_num(d, (double)r->seed, NAN, "%llu", (unsigned long long)r->seed);
  if (r->diverged_epoch)
    st_doc_cell(d, "diverged in epoch %d, step %ld", r->diverged_epoch, r->diverged_step);
  else
    st_doc_cell(d, "finished");
  if (e->model.recipe.patience && !r->diverged_epoch)
    st_doc_num(d, r->nepochs, NAN, "%d (epoch %d kept)", r->nepochs, r->kept);
  else
    st_doc_num(d, r->nepochs, NAN, "%d", r->nepochs);
  if (val)
    num_cell(d, r->fig[ST_VAL_LOSS], 4, 1);
  num_cell(d, r->fig[ST_TEST_LOSS], 4, 1);
  num_cell(d, r->fig[ST_TEST_ACC], 2, 100);
  num_cell(d, r->fig[ST_TRAIN_LOSS], 4, 1);
  num_cell(d, r->fig[ST_SECONDS], 3, 1);
}

/* The columns of a run's table of epochs, those of run_epochs: heading,
   decimals, scale. */
static const struct {
  const char *head;
  int decimals;
  double scale;
} epoch_cols[] = {{"epoch", 0, 1}, {"train loss", 4, 1}, {"test loss", 4, 1},
                  {"test accuracy (%)", 2, 100}, {"seconds", 3, 1},
                  {"validation loss", 4, 1}, {"validation accuracy (%)", 2, 100}};
/* All of them; without a validation split, the last two left out. */
enum { EPOCH_COLS = sizeof epoch_cols / sizeof epoch_cols[0], EPOCH_VAL_COLS = 2 };

/* A run's figures after each epoch, under a heading its row links to;
   -1 on a database error. */
static int run_epochs_table(StDoc *d, sqlite3 *db, const StExperiment *e,
                            const StRunFigs *r) {
  sqlite3_stmt *st = run_epochs(db, r->id);
  int rc = st ? SQLITE_ROW : SQLITE_ERROR;
  int ncols = holds_val(e) ? EPOCH_COLS : EPOCH_COLS - EPOCH_VAL_COLS;
  char align[EPOCH_COLS + 1] = {0};
  memset(align, 'r', (size_t)ncols);
  st_doc_heading(d, 3, "Run %lld: %s, seed %llu", r->id, e->name, (unsigned long long)r->seed);
  st_doc_anchor(d, "run-%lld", r->id);
  st_doc_table(d, align);
  st_doc_row(d);
  for (int c = 0; c < ncols; c++)
    st_doc_cell(d, "%s", epoch_cols[c].head);
  while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    st_doc_row(d);
    for (int c = 0; c < ncols; c++)
      num_cell(d, column_real(st, c), epoch_cols[c].decimals, epoch_cols[c].scale);
  }
  sqlite3_finalize(st);
  if (e->model.recipe.patience && !r->diverged_epoch)
    st_doc_para(d), st_doc_text(d, "Early stopping kept epoch %d: its weights, and its "
                                "figures as the run's final ones.", r->kept);
  if (r->diverged_epoch)
    st_doc_para(d), st_doc_text(d, "Diverged in epoch %d, at step %ld%s.", r->diverged_epoch,
                                r->diverged_step, r->diverged_step ? "" : " (the test loss of "
                                "that epoch was not finite)");
  return rc == SQLITE_DONE ? 0 : -1;
}

/* The page's last section: every distinct run, each with its figures
   after each epoch (report.md leaves them to runs.csv); -1 on a database
   error. */
static int write_runs_section(StDoc *d, const StFigs *f) {
  const Study *s = f->p->s;
  int rc = 0;
  st_doc_html_only(d, 1);
  st_doc_heading(d, 2, "Runs");
  st_doc_para(d);
  st_doc_text(d, "Every run once (the runs of experiments that are the same model are under "
              "the first); a run's number links to its figures after each epoch, as in "
              "runs.csv.");
  st_doc_table(d, f->nval ? "rlrlrrrrrr" : "rlrlrrrrr");
  st_doc_anchor(d, "runs");
  st_doc_row(d);
  st_doc_cell(d, "run"), st_doc_cell(d, "experiment"), st_doc_cell(d, "seed");
  st_doc_cell(d, "status"), st_doc_cell(d, "epochs");
  if (f->nval)
    st_doc_cell(d, "final validation loss");
  st_doc_cell(d, "final test loss");
  st_doc_cell(d, "test accuracy (%%)"), st_doc_cell(d, "train loss"), st_doc_cell(d, "seconds");
  for (int i = 0; i < s->nexp; i++)
    for (int r = 0; f->exp[i].same == i && r < f->exp[i].runs; r++)
      run_row(d, &s->exp[i], &f->exp[i].run[r], f->nval > 0);
  for (int i = 0; i < s->nexp; i++)
    for (int r = 0; !rc && f->exp[i].same == i && r < f->exp[i].runs; r++)
      rc = run_epochs_table(d, f->db, &s->exp[i], &f->exp[i].run[r]);
  st_doc_html_only(d, 0);
  return rc;
}

/* ---- files ---- */

/* The report's figures: each plot, or why there are none. */
static void write_figures(StDoc *d, const StPlots *pl) {
  st_doc_heading(d, 2, "Figures");
  if (!pl->drawn) {
    st_doc_para(d);
    st_doc_text(d, "No plots: %s. Their data and gnuplot script are in ", pl->why);
    st_doc_code(d, "plots/");
    st_doc_text(d, "; with gnuplot installed, ");
    st_doc_code(d, "gnuplot plots/plots.gp");
    st_doc_text(d, " in this directory draws them.");
    return;
  }
  for (int i = 0; i < pl->n; i++)
    st_doc_figure(d, pl->png[i], pl->title[i]);
  st_doc_para(d);
  st_doc_text(d, "Drawn by gnuplot from ");
  st_doc_code(d, "plots/plots.gp");
  st_doc_text(d, " and its data files.");
}

/* Writes the plots' data and script, and runs gnuplot on them. Failing to
   write is an error; gnuplot missing or failing is only a warning. */
static int draw_plots(const StFigs *f, const char *dir, StPlots *pl, char *err,
                      size_t errlen) {
  if (st_plots_open(pl, dir, err, errlen) || st_plots_study(pl, f, err, errlen) ||
      st_health_plots(f, pl, err, errlen) < 0) {
    st_plots_close(pl);
    return -1;
  }
  st_plots_draw(pl, stderr);
  return 0;
}

/* The files of a report, in the order they are written. */
enum { SUMMARY, RUNS, HEALTH, COMPARISONS, REPORT, PAGE, NFILES };
static const char *const file_names[NFILES] = {"summary.csv", "runs.csv", "health.csv",
                                               "comparisons.csv", "report.md", "report.html"};

/* Says that reading the database failed; returns -1. */
static int db_error(sqlite3 *db, char *err, size_t errlen) {
  snprintf(err, errlen, "reading the database: %s", sqlite3_errmsg(db));
  return -1;
}

/* Builds the report: settings, summary, figures, health, conclusions,
   and in the page the runs; writes comparisons.csv and the terminal's
   ranking on the way. -1 on a database error. */
static int build_report(StDoc *d, const StFigs *figs, const StPlots *pl, FILE *csv,
                        FILE *term) {
  write_settings(d, figs->p);
  write_summary_table(d, figs);
  write_figures(d, pl);
  st_health_section(figs, pl, d);
  st_conclude(figs, d, csv, term);
  if (figs->p->s->alpha > 0)
    st_adaptive_report(figs, d, term);
  return write_runs_section(d, figs);
}

/* Writes every file from the figures, the terminal's table and ranking. */
static int write_all(FILE **f, const StFigs *figs, const char *dir, FILE *term, char *err,
                     size_t errlen) {
  const Study *s = figs->p->s;
  StPlots pl;
  StDoc d;
  write_summary(f[SUMMARY], figs);
  if (write_runs(f[RUNS], figs->db, s, figs->nval > 0, figs->nstop > 0))
    return db_error(figs->db, err, errlen);
  st_health_csv(figs, f[HEALTH]);
  if (draw_plots(figs, dir, &pl, err, errlen))
    return -1;
  if (term)
    print_table(term, figs);
  st_doc_init(&d);
  int rc = build_report(&d, figs, &pl, f[COMPARISONS], term) ? db_error(figs->db, err, errlen)
           : d.oom ? -1 : 0;
  if (d.oom)
    snprintf(err, errlen, "out of memory writing the report");
  if (!rc)
    st_doc_markdown(&d, f[REPORT]);
  if (!rc)
    rc = st_doc_html(&d, dir, f[PAGE], err, errlen);
  st_doc_free(&d);
  return rc;
}

int st_report(sqlite3 *db, const StPlan *p, const char *dir, FILE *term, char *err,
              size_t errlen) {
  StFigs figs;
  FILE *f[NFILES] = {NULL};
  int rc = load_figs(db, p, &figs) ? db_error(db, err, errlen) : 0;
  if (!rc)
    rc = st_make_dir(dir, err, errlen);
  for (int i = 0; !rc && i < NFILES; i++)
    rc = (f[i] = st_open_out(dir, file_names[i], err, errlen)) ? 0 : -1;
  if (!rc)
    rc = write_all(f, &figs, dir, term, err, errlen);
  for (int i = 0; i < NFILES; i++)
    if (f[i] && fclose(f[i]) && !rc)
      rc = -1, snprintf(err, errlen, "%s/%s: cannot write: %s", dir, file_names[i],
                        strerror(errno));
  free_figs(&figs);
  return rc;
}
