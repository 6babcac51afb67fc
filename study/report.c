/*
 * report.c — a study's tables, computed from the database alone (never
 * from figures held in memory), so that they always say what the
 * database holds:
 *
 *   summary.csv  one row per experiment: factor, value, each varied key's
 *                value, seeds, diverged, mean and standard deviation of
 *                the final test loss, test accuracy and train loss
 *   runs.csv     one row per run per epoch (and one for the epoch where a
 *                run diverged, without figures)
 *   report.md    the summary table in Markdown
 *
 * and the summary table on the terminal. Means and standard deviations
 * (n − 1 in the denominator) are over the runs that did not diverge.
 * CSV numbers are written with 17 significant digits: they read back as
 * the very doubles in the database.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "study.h"

/* Final figures of one experiment's runs, in the order of the columns. */
enum { TEST_LOSS, TEST_ACC, TRAIN_LOSS, SECONDS, NFIG };

typedef struct {
  int runs, diverged, n;      /* n: finished runs                         */
  double mean[NFIG], std[NFIG];  /* std NaN when n < 2; all NaN if n = 0  */
} Stats;

/* Mean and sample standard deviation of x[0..n). */
static void mean_std(const double *x, int n, double *mean, double *std) {
  double s = 0, q = 0;
  for (int i = 0; i < n; i++)
    s += x[i];
  *mean = n ? s / n : NAN;
  for (int i = 0; i < n; i++)
    q += (x[i] - *mean) * (x[i] - *mean);
  *std = n > 1 ? sqrt(q / (n - 1)) : NAN;
}

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

/* Computes one experiment's statistics; -1 on a database error. */
static int stats(sqlite3 *db, const Study *s, const StExperiment *e, Stats *out) {
  sqlite3_stmt *st = experiment_runs(db, s, e);
  double *x = malloc((size_t)NFIG * (s->nseeds + 1) * sizeof *x);
  int rc = st && x ? SQLITE_ROW : SQLITE_ERROR;
  memset(out, 0, sizeof *out);
  while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW && out->runs < s->nseeds) {
    out->runs++;
    if (strcmp((const char *)sqlite3_column_text(st, 0), "finished")) {
      out->diverged++;
      continue;
    }
    for (int f = 0; f < NFIG; f++)
      x[f * s->nseeds + out->n] = sqlite3_column_double(st, 1 + f);
    out->n++;
  }
  for (int f = 0; f < NFIG; f++)
    mean_std(x + f * s->nseeds, out->n, &out->mean[f], &out->std[f]);
  sqlite3_finalize(st);
  free(x);
  return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

/* ---- CSV ---- */

/* Writes one CSV field, quoted if it needs to be. */
static void csv_text(FILE *f, const char *s, int last) {
  if (strpbrk(s, ",\"\n\r")) {
    fputc('"', f);
    for (; *s; s++)
      *s == '"' ? fputs("\"\"", f) : fputc(*s, f);
    fputc('"', f);
  } else
    fputs(s, f);
  fputc(last ? '\n' : ',', f);
}

/* Writes a number field: 17 significant digits, empty for NaN. */
static void csv_real(FILE *f, double v, int last) {
  if (!isnan(v))
    fprintf(f, "%.17g", v);
  fputc(last ? '\n' : ',', f);
}

/* summary.csv: the header and one row per experiment. */
static void write_summary(FILE *f, const Study *s, const Stats *st) {
  static const char *const figs[NFIG] = {"test_loss", "test_acc", "train_loss", "seconds"};
  fputs("experiment,factor,value,", f);
  for (int k = 0; k < s->nkeys; k++)
    csv_text(f, s->keys[k], 0);
  fputs("seeds,diverged", f);
  for (int g = 0; g < NFIG; g++)
    fprintf(f, ",%s_mean,%s_std", figs[g], figs[g]);
  fputc('\n', f);
  for (int i = 0; i < s->nexp; i++) {
    const StExperiment *e = &s->exp[i];
    csv_text(f, e->name, 0), csv_text(f, e->factor, 0), csv_text(f, e->value, 0);
    for (int k = 0; k < s->nkeys; k++)
      csv_text(f, e->values[k], 0);
    fprintf(f, "%d,%d,", st[i].runs, st[i].diverged);
    for (int g = 0; g < NFIG; g++)
      csv_real(f, st[i].mean[g], 0), csv_real(f, st[i].std[g], g == NFIG - 1);
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
    csv_text(f, e->name, 0), csv_text(f, e->factor, 0), csv_text(f, e->value, 0);
    fprintf(f, "%s%d,", head, sqlite3_column_int(st, 0));
    for (int c = 1; c <= 4; c++)
      csv_real(f, sqlite3_column_double(st, c), 0);
    fputc('\n', f);
  }
  sqlite3_finalize(st);
  if (sqlite3_column_type(run, 7) != SQLITE_NULL) {
    csv_text(f, e->name, 0), csv_text(f, e->factor, 0), csv_text(f, e->value, 0);
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
   finished, "-" if there is none; no ± with one run. */
static void mean_pm(char *buf, size_t n, const Stats *st, int fig, int decimals,
                    double scale) {
  if (!st->runs)
    snprintf(buf, n, "-");
  else if (!st->n)
    snprintf(buf, n, "diverged");
  else if (st->n < 2)
    snprintf(buf, n, "%.*f", decimals, scale * st->mean[fig]);
  else
    snprintf(buf, n, "%.*f ± %.*f", decimals, scale * st->mean[fig], decimals,
             scale * st->std[fig]);
}

/* The table on the terminal: factors apart by a blank line. */
static void print_table(FILE *f, const Study *s, const Stats *st) {
  int w = 10;
  char loss[64], acc[64];
  for (int i = 0; i < s->nexp; i++)
    w = (int)strlen(s->exp[i].name) > w ? (int)strlen(s->exp[i].name) : w;
  fprintf(f, "\n%-*s  seeds  diverged  %-19s  %s\n", w, "experiment", "test loss",
          "test accuracy (%)");
  for (int i = 0; i < s->nexp; i++) {
    if (i && s->mode == ST_ONE_FACTOR && strcmp(s->exp[i].factor, s->exp[i - 1].factor))
      fputc('\n', f);
    mean_pm(loss, sizeof loss, &st[i], TEST_LOSS, 4, 1);
    mean_pm(acc, sizeof acc, &st[i], TEST_ACC, 2, 100);
    fprintf(f, "%-*s  %5d  %8d  %-*s  %s\n", w, s->exp[i].name, st[i].runs, st[i].diverged,
            19 + (strstr(loss, "±") ? 1 : 0), loss, acc);  /* ± takes 2 bytes */
  }
}

/* report.md: what was run, and the table. */
static void write_markdown(FILE *f, const StPlan *p, const Stats *st) {
  const Study *s = p->s;
  char loss[64], acc[64], train[64];
  fprintf(f, "# Study %s\n\n", s->name);
  fprintf(f, "- file: `%s`, mode %s: %d experiments × %d seeds (", s->file,
          st_mode_names[s->mode], s->nexp, s->nseeds);
  for (int k = 0; k < s->nseeds; k++)
    fprintf(f, "%s%llu", k ? ", " : "", (unsigned long long)s->seeds[k]);
  fprintf(f, "), %d distinct runs\n", p->ntasks);
  fprintf(f, "- base model: `%s`\n", s->base_json);
  if (p->ntasks)
    fprintf(f, "- settings: `%s`, data `%s` (hash %s)\n", p->tasks[0].settings,
            p->tasks[0].data_dir, p->tasks[0].data_hash.hex);
  fprintf(f, "\nFinal figures after the last epoch: mean ± standard deviation over the "
          "seeds, leaving out runs that diverged.\n\n");
  fprintf(f, "| experiment | seeds | diverged | test loss | test accuracy (%%) | "
          "train loss |\n|---|---:|---:|---|---|---|\n");
  for (int i = 0; i < s->nexp; i++) {
    mean_pm(loss, sizeof loss, &st[i], TEST_LOSS, 4, 1);
    mean_pm(acc, sizeof acc, &st[i], TEST_ACC, 2, 100);
    mean_pm(train, sizeof train, &st[i], TRAIN_LOSS, 4, 1);
    fprintf(f, "| %s | %d | %d | %s | %s | %s |\n", s->exp[i].name, st[i].runs,
            st[i].diverged, loss, acc, train);
  }
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

int st_report(sqlite3 *db, const StPlan *p, const char *dir, FILE *term, char *err,
              size_t errlen) {
  const Study *s = p->s;
  Stats *st = calloc((size_t)s->nexp, sizeof *st);
  int rc = st ? 0 : -1;
  for (int i = 0; !rc && i < s->nexp; i++)
    rc = stats(db, s, &s->exp[i], &st[i]);
  if (rc)
    snprintf(err, errlen, "reading the database: %s", sqlite3_errmsg(db));
  FILE *f[3] = {NULL};
  static const char *const names[3] = {"summary.csv", "runs.csv", "report.md"};
  if (!rc)
    rc = make_dir(dir, err, errlen);
  for (int i = 0; !rc && i < 3; i++)
    rc = (f[i] = open_out(dir, names[i], err, errlen)) ? 0 : -1;
  if (!rc) {
    write_summary(f[0], s, st);
    if (write_runs(f[1], db, s))
      rc = -1, snprintf(err, errlen, "reading the database: %s", sqlite3_errmsg(db));
    write_markdown(f[2], p, st);
  }
  for (int i = 0; i < 3; i++)
    if (f[i] && fclose(f[i]) && !rc)
      rc = -1, snprintf(err, errlen, "%s/%s: cannot write: %s", dir, names[i],
                        strerror(errno));
  if (!rc && term)
    print_table(term, s, st);
  free(st);
  return rc;
}
