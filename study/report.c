/*
 * report.c — a study's report, computed from the database alone (never
 * from figures held in memory), so that it always says what the
 * database holds. It reads every run of every experiment once (StFigs)
 * and writes into the output directory:
 *
 *   summary.csv      one row per experiment: factor, value, each varied
 *                    key's value, seeds, diverged, mean and standard
 *                    deviation of the final test loss, test accuracy,
 *                    train loss and seconds
 *   runs.csv         one row per run per epoch (and one for the epoch
 *                    where a run diverged, without figures)
 *   health.csv       each experiment's health figures per epoch (health.c)
 *   plots (plot.c)   test_loss.png, final_loss.png, health.png (health.c)
 *   report.md        what was run, the summary table, the figures, the
 *                    activation-health section (health.c) and the
 *                    conclusions (conclude.c, which also writes
 *                    comparisons.csv)
 *
 * and the summary table and the ranking on the terminal. Means and
 * standard deviations (n − 1 in the denominator) are over the runs that
 * did not diverge. CSV numbers are written with 17 significant digits:
 * they read back as the very doubles in the database.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "study.h"

const char *const st_figure_names[ST_NFIGS] = {
#define NAME_(e, name) name,
  ST_FIGURES(NAME_)
#undef NAME_
};

/* ---- reading the database ---- */

/* The study's runs of one experiment, in seed order. */
static sqlite3_stmt *experiment_runs(sqlite3 *db, const Study *s, const StExperiment *e) {
  sqlite3_stmt *st = NULL;
  sqlite3_prepare_v2(db,
    "SELECT r.status, r.test_loss, r.test_acc, r.train_loss, r.seconds, r.id, s.seed, "
    "r.diverged_epoch, r.diverged_step FROM study_runs s JOIN runs r ON r.id = s.run_id "
    "WHERE s.study = ?1 AND s.experiment = ?2 ORDER BY s.seed", -1, &st, NULL);
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
  *r = (StRunFigs){.id = sqlite3_column_int64(st, 5),
                   .seed = (uint64_t)sqlite3_column_int64(st, 6),
                   .diverged_epoch = sqlite3_column_int(st, 7),
                   .diverged_step = (long)sqlite3_column_int64(st, 8)};
  int finished = !strcmp((const char *)sqlite3_column_text(st, 0), "finished");
  for (int f = 0; f < ST_NFIGS; f++)
    r->fig[f] = finished ? column_real(st, 1 + f) : NAN;
  r->diverged_epoch = finished ? 0 : r->diverged_epoch > 0 ? r->diverged_epoch : 1;
  return load_epochs(db, r);
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

/* Reads every experiment of the plan; -1 on a database error. */
static int load_figs(sqlite3 *db, const StPlan *p, StFigs *f) {
  const Study *s = p->s;
  *f = (StFigs){p, db, calloc((size_t)s->nexp, sizeof *f->exp), NULL};
  if (!f->exp)
    return -1;
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

/* ---- CSV ---- */

void st_csv_text(FILE *f, const char *s, int last) {
  if (strpbrk(s, ",\"\n\r")) {
    fputc('"', f);
    for (; *s; s++)
      *s == '"' ? fputs("\"\"", f) : fputc(*s, f);
    fputc('"', f);
  } else
    fputs(s, f);
  fputc(last ? '\n' : ',', f);
}

void st_csv_real(FILE *f, double v, int last) {
  if (isfinite(v))
    fprintf(f, "%.17g", v);
  fputc(last ? '\n' : ',', f);
}

/* summary.csv: the header and one row per experiment. */
static void write_summary(FILE *f, const Study *s, const StExpFigs *st) {
  fputs("experiment,factor,value,", f);
  for (int k = 0; k < s->nkeys; k++)
    st_csv_text(f, s->keys[k], 0);
  fputs("seeds,diverged", f);
  for (int g = 0; g < ST_NFIGS; g++)
    fprintf(f, ",%s_mean,%s_std", st_figure_names[g], st_figure_names[g]);
  fputc('\n', f);
  for (int i = 0; i < s->nexp; i++) {
    const StExperiment *e = &s->exp[i];
    st_csv_text(f, e->name, 0), st_csv_text(f, e->factor, 0), st_csv_text(f, e->value, 0);
    for (int k = 0; k < s->nkeys; k++)
      st_csv_text(f, e->values[k], 0);
    fprintf(f, "%d,%d,", st[i].runs, st[i].diverged);
    for (int g = 0; g < ST_NFIGS; g++)
      st_csv_real(f, st[i].mean[g], 0), st_csv_real(f, st[i].std[g], g == ST_NFIGS - 1);
  }
}

/* runs.csv rows of one run: its epochs, then where it diverged. */
static int write_run_rows(FILE *f, sqlite3 *db, const StExperiment *e, sqlite3_stmt *run) {
  sqlite3_stmt *st = NULL;
  long long id = sqlite3_column_int64(run, 5);
  const char *status = (const char *)sqlite3_column_text(run, 0);
  char head[64];
  snprintf(head, sizeof head, "%lld,%lld,%s,", (long long)sqlite3_column_int64(run, 6), id,
           status);
  if (sqlite3_prepare_v2(db, "SELECT epoch, train_loss, test_loss, test_acc, seconds FROM "
                             "epochs WHERE run_id = ?1 ORDER BY epoch", -1, &st, NULL))
    return -1;
  sqlite3_bind_int64(st, 1, id);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    st_csv_text(f, e->name, 0), st_csv_text(f, e->factor, 0), st_csv_text(f, e->value, 0);
    fprintf(f, "%s%d,", head, sqlite3_column_int(st, 0));
    for (int c = 1; c <= 4; c++)
      st_csv_real(f, column_real(st, c), 0);
    fputc('\n', f);
  }
  sqlite3_finalize(st);
  if (sqlite3_column_type(run, 7) != SQLITE_NULL) {
    st_csv_text(f, e->name, 0), st_csv_text(f, e->factor, 0), st_csv_text(f, e->value, 0);
    fprintf(f, "%s%d,,,,,%lld\n", head, sqlite3_column_int(run, 7),
            (long long)sqlite3_column_int64(run, 8));
  }
  return rc == SQLITE_DONE ? 0 : -1;
}

/* runs.csv: every run of every experiment, epoch by epoch. */
static int write_runs(FILE *f, sqlite3 *db, const Study *s) {
  fputs("experiment,factor,value,seed,run_id,status,epoch,train_loss,test_loss,test_acc,"
        "seconds,diverged_step\n", f);
  for (int i = 0; i < s->nexp; i++) {
    sqlite3_stmt *run = experiment_runs(db, s, &s->exp[i]);
    int rc = run ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(run)) == SQLITE_ROW)
      if (write_run_rows(f, db, &s->exp[i], run))
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

/* The table on the terminal: factors apart by a blank line. */
static void print_table(FILE *f, const Study *s, const StExpFigs *st) {
  int w = 10;
  char loss[64], acc[64];
  for (int i = 0; i < s->nexp; i++)
    w = (int)strlen(s->exp[i].name) > w ? (int)strlen(s->exp[i].name) : w;
  fprintf(f, "\n%-*s  seeds  diverged  %-19s  %s\n", w, "experiment", "test loss",
          "test accuracy (%)");
  for (int i = 0; i < s->nexp; i++) {
    if (i && s->mode == ST_ONE_FACTOR && strcmp(s->exp[i].factor, s->exp[i - 1].factor))
      fputc('\n', f);
    mean_pm(loss, sizeof loss, &st[i], ST_TEST_LOSS, 4, 1);
    mean_pm(acc, sizeof acc, &st[i], ST_TEST_ACC, 2, 100);
    fprintf(f, "%-*s  %5d  %8d  %-*s  %s\n", w, s->exp[i].name, st[i].runs, st[i].diverged,
            19 + (strstr(loss, "±") ? 1 : 0), loss, acc);  /* ± takes 2 bytes */
  }
}

/* report.md's first line for an adaptive study: its seeds. */
static void write_adaptive_line(FILE *f, const StPlan *p) {
  const Study *s = p->s;
  int runs = 0;
  for (int i = 0; i < p->ntasks; i++)
    runs += p->tasks[i].wanted;
  fprintf(f, "- file: `%s`, mode %s: %d experiments, adaptive seeds: starting with ", s->file,
          st_mode_names[s->mode], s->nexp);
  for (int k = 0; k < s->nstart; k++)
    fprintf(f, "%s%llu", k ? ", " : "", (unsigned long long)s->seeds[k]);
  fprintf(f, ", then up to %d a model (through seed %llu), level %g; %d distinct runs\n",
          s->nseeds, (unsigned long long)s->seeds[s->nseeds - 1], s->alpha, runs);
}

/* report.md: what was run, and the summary table. */
static void write_markdown(FILE *f, const StPlan *p, const StExpFigs *st) {
  const Study *s = p->s;
  char loss[64], acc[64], train[64];
  int no_train = 0;
  fprintf(f, "# Study %s\n\n", s->name);
  if (s->alpha > 0)
    write_adaptive_line(f, p);
  else {
    fprintf(f, "- file: `%s`, mode %s: %d experiments × %d seeds (", s->file,
            st_mode_names[s->mode], s->nexp, s->nseeds);
    for (int k = 0; k < s->nseeds; k++)
      fprintf(f, "%s%llu", k ? ", " : "", (unsigned long long)s->seeds[k]);
    fprintf(f, "), %d distinct runs\n", p->ntasks);
  }
  fprintf(f, "- base model: `%s`\n", s->base_json);
  if (p->ntasks)
    fprintf(f, "- settings: `%s`, data `%s` (hash %s)\n", p->tasks[0].settings,
            p->tasks[0].data_dir, p->tasks[0].data_hash.hex);
  fprintf(f, "- arithmetic: %s (of the dense kernels, docs/performance.md; part of each "
          "run's code, and so of its key)\n", arith_names[s->arith]);
  fprintf(f, "\n## Summary\n\nFinal figures after the last epoch: mean ± standard deviation "
          "over the seeds, leaving out runs that diverged.\n\n");
  fprintf(f, "| experiment | seeds | diverged | test loss | test accuracy (%%) | "
          "train loss |\n|---|---:|---:|---|---|---|\n");
  for (int i = 0; i < s->nexp; i++) {
    mean_pm(loss, sizeof loss, &st[i], ST_TEST_LOSS, 4, 1);
    mean_pm(acc, sizeof acc, &st[i], ST_TEST_ACC, 2, 100);
    mean_pm(train, sizeof train, &st[i], ST_TRAIN_LOSS, 4, 1);
    fprintf(f, "| %s | %d | %d | %s | %s | %s |\n", s->exp[i].name, st[i].runs,
            st[i].diverged, loss, acc, train);
    no_train |= !strcmp(train, "n/a");
  }
  if (no_train)
    fprintf(f, "\nTrain loss n/a: the runs took no training step (a training set of one "
            "sample under BatchNorm, which needs two), so they have no train loss.\n");
}

/* ---- files ---- */

/* Opens dir/name for writing, or says why not. */
static FILE *open_out(const char *dir, const char *name, char *err, size_t errlen) {
  char path[MAX_PATH_LEN + 64];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
  return f;
}

/* Creates dir and its parents. */
static int make_dir(const char *dir, char *err, size_t errlen) {
  char path[MAX_PATH_LEN];
  snprintf(path, sizeof path, "%s/", dir);
  for (char *q = path + 1; *q; q++)
    if (*q == '/') {
      *q = 0;
      if (mkdir(path, 0777) && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
        return -1;
      }
      *q = '/';
    }
  return 0;
}

/* report.md's figures: each plot, or why there are none. */
static void write_figures(FILE *f, const StPlots *pl) {
  fprintf(f, "\n## Figures\n\n");
  if (!pl->drawn) {
    fprintf(f, "No plots: %s. Their data and gnuplot script are in `plots/`; with gnuplot "
            "installed, `gnuplot plots/plots.gp` in this directory draws them.\n", pl->why);
    return;
  }
  for (int i = 0; i < pl->n; i++)
    fprintf(f, "![%s](%s)\n\n", pl->title[i], pl->png[i]);
  fprintf(f, "Drawn by gnuplot from `plots/plots.gp` and its data files.\n");
}

/* Writes the plots' data and script, and runs gnuplot on them. Failing to
   write is an error; gnuplot missing or failing is only a warning. */
static int draw_plots(const StFigs *f, const char *dir, StPlots *pl, char *err,
                      size_t errlen) {
  if (st_plots_open(pl, dir, err, errlen) || st_plots_study(pl, f, err, errlen) ||
      st_health_plots(f, pl, err, errlen) < 0) {
    if (pl->gp)
      fclose(pl->gp);
    return -1;
  }
  st_plots_draw(pl, stderr);
  return 0;
}

/* The files of a report, in the order they are written. */
enum { SUMMARY, RUNS, HEALTH, COMPARISONS, REPORT, NFILES };
static const char *const file_names[NFILES] = {"summary.csv", "runs.csv", "health.csv",
                                               "comparisons.csv", "report.md"};

/* Says that reading the database failed; returns -1. */
static int db_error(sqlite3 *db, char *err, size_t errlen) {
  snprintf(err, errlen, "reading the database: %s", sqlite3_errmsg(db));
  return -1;
}

/* Writes every file from the figures, the terminal's table and ranking. */
static int write_all(FILE **f, const StFigs *figs, const char *dir, FILE *term, char *err,
                     size_t errlen) {
  const Study *s = figs->p->s;
  StPlots pl;
  write_summary(f[SUMMARY], s, figs->exp);
  if (write_runs(f[RUNS], figs->db, s))
    return db_error(figs->db, err, errlen);
  st_health_csv(figs, f[HEALTH]);
  if (draw_plots(figs, dir, &pl, err, errlen))
    return -1;
  if (term)
    print_table(term, s, figs->exp);
  write_markdown(f[REPORT], figs->p, figs->exp);
  write_figures(f[REPORT], &pl);
  st_health_section(figs, &pl, f[REPORT]);
  st_conclude(figs, f[REPORT], f[COMPARISONS], term);
  if (s->alpha > 0)
    st_adaptive_report(figs, f[REPORT], term);
  return 0;
}

int st_report(sqlite3 *db, const StPlan *p, const char *dir, FILE *term, char *err,
              size_t errlen) {
  StFigs figs;
  FILE *f[NFILES] = {NULL};
  int rc = load_figs(db, p, &figs) ? db_error(db, err, errlen) : 0;
  if (!rc)
    rc = make_dir(dir, err, errlen);
  for (int i = 0; !rc && i < NFILES; i++)
    rc = (f[i] = open_out(dir, file_names[i], err, errlen)) ? 0 : -1;
  if (!rc)
    rc = write_all(f, &figs, dir, term, err, errlen);
  for (int i = 0; i < NFILES; i++)
    if (f[i] && fclose(f[i]) && !rc)
      rc = -1, snprintf(err, errlen, "%s/%s: cannot write: %s", dir, file_names[i],
                        strerror(errno));
  free_figs(&figs);
  return rc;
}
