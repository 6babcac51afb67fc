/*
 * test_study_report.c — a study's report says what the database holds:
 *
 *   - report.md's summary and ranking tables, its sentences on each
 *     remedy, and comparisons.csv, parsed back, equal the figures
 *     recomputed here from the database (at the printed precision; the
 *     CSV at 17 digits), with the tests of study/stats.c;
 *   - the ranking and the verdicts follow the data: with the final
 *     losses in the database rewritten, the report ranks the models in
 *     the new order; a run marked diverged is left out of the mean and
 *     ranks its model below the models without one;
 *   - the activation-health table, the numbers of the "Why" sentences and
 *     health.csv equal the health figures recomputed here from the
 *     database; the sentences follow the data: with health figures
 *     rewritten in the database, they say other things; runs without
 *     health figures are left out of the means, and the report says so;
 *     runs that kept an earlier epoch (early stopping) count with its
 *     figures;
 *   - the plots are PNG files drawn by gnuplot; without gnuplot, or with
 *     a gnuplot that fails, the study still succeeds with a warning and
 *     the tables and report.md are written;
 *   - no text prints nan or inf: one seed per model (no Welch test),
 *     final losses without spread, a base mean of 0 and health figures
 *     that are not there are said in words, n/a or -.
 *
 * One small one_factor study on data/mnist (tcc): 5 experiments, 4
 * distinct models (the base twice), 3 seeds; the reruns only report.
 */
#include <ctype.h>
#include <math.h>
#include <strings.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "study_proc.h"
#include "../study/study.h"

static char tmp[] = "/tmp/mlpc_reportXXXXXX";

static const char study_text[] =
  "{\"name\": \"rep\", \"base\": {\"hidden\": [16], \"activation\": \"tanh\", "
  "\"init\": \"normal\", \"norm\": \"none\", \"optimizer\": {\"type\": \"sgd\", "
  "\"lr\": 0.05}, \"epochs\": 2, \"max_batches\": 10}, "
  "\"vary\": {\"norm\": [\"none\", \"batchnorm\", \"layernorm\"], "
  "\"init\": [\"normal\", \"kaiming_normal\"]}, \"seeds\": [1, 2, 3]}\n";

/* The distinct models: the experiment that stands for each, and its
   label in the report. */
enum { NMODELS = 4, NSEEDS = 3 };
static const char *const models[NMODELS] = {"norm=none", "norm=batchnorm", "norm=layernorm",
                                            "init=kaiming_normal"};

/* Its label in the report: the base is "base". */
static const char *label(int m) { return m ? models[m] : "base"; }

/* One model's runs as the database holds them. */
typedef struct {
  int runs, diverged, n;
  double loss[NSEEDS], acc[NSEEDS], train[NSEEDS];
  double mean, std, acc_mean, acc_std;
} Figures;

/* Runs the study (or only reports it, when the database has it); the
   exit status. */
static int run_study(const char *db, const char *out) {
  const char *args[] = {fmt("%s/rep.json", tmp), "--run", "--backend", "tcc", "--jobs", "2",
                        "--db", db, "--out", out, NULL};
  return run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args);
}

/* Fails with mlpc's messages if status is not 0. */
static void expect_ok(int status) {
  if (status) {
    char *e = read_all(fmt("%s/stderr", tmp));
    fail_msg("mlpc exited %d:\n%s", status, e);
  }
}

/* Reads an experiment's finished runs from the database. */
static void load(sqlite3 *d, const char *exp, Figures *f) {
  sqlite3_stmt *st;
  memset(f, 0, sizeof *f);
  sqlite3_prepare_v2(d, "SELECT r.status, r.test_loss, r.test_acc, r.train_loss FROM "
                        "study_runs s JOIN runs r ON r.id = s.run_id WHERE s.study = 'rep' AND "
                        "s.experiment = ?1 ORDER BY s.seed", -1, &st, NULL);
  sqlite3_bind_text(st, 1, exp, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW && f->runs < NSEEDS) {
    f->runs++;
    if (strcmp((const char *)sqlite3_column_text(st, 0), "finished")) {
      f->diverged++;
      continue;
    }
    f->loss[f->n] = sqlite3_column_double(st, 1);
    f->acc[f->n] = sqlite3_column_double(st, 2);
    f->train[f->n++] = sqlite3_column_double(st, 3);
  }
  sqlite3_finalize(st);
  st_mean_std(f->loss, f->n, &f->mean, &f->std);
  st_mean_std(f->acc, f->n, &f->acc_mean, &f->acc_std);
}

/* Fails unless a number printed with dec decimals (or, with an
   exponent, 2 significant digits) is v. */
static void printed(const char *text, double v, int dec) {
  char *end;
  double got = strtod(text, &end);
  assert_true(end != text);
  double tol = memchr(text, 'e', (size_t)(end - text)) ? 0.051 * fabs(v)
                                                         : 0.5000001 * pow(10, -dec);
  if (!(fabs(got - v) <= tol + 1e-12))
    fail_msg("report says %.*s, the database gives %.10g", (int)(end - text), text, v);
}

/* Checks a printed number as printed() does; "n/a" where v is not a
   finite number (no test, or a change relative to a mean of 0). */
static void printed_or_na(const char *text, double v, int dec) {
  if (isfinite(v))
    printed(text, v, dec);
  else
    assert_string_equal(text, "n/a");
}

/* Checks "mean ± std" (or "mean" alone, or "diverged") against f. */
static void printed_pm(const char *text, double mean, double std, int n, int dec) {
  if (!n) {
    assert_string_equal(text, "diverged");
    return;
  }
  printed(text, mean, dec);
  const char *pm = strstr(text, "±");
  assert_true((pm != NULL) == (n > 1));
  if (pm)
    printed(pm + strlen("±"), std, dec);
}

/* Splits a Markdown table row into trimmed cells, in place. */
static int cells(char *row, char **c, int max) {
  int n = 0;
  char *p = strchr(row, '|');
  while (p && n < max) {
    char *q = strchr(p + 1, '|');
    if (!q)
      break;
    *q = 0;
    for (p++; *p == ' '; p++)
      ;
    for (char *e = q - 1; e >= p && *e == ' '; e--)
      *e = 0;
    c[n++] = p;
    p = q;
  }
  return n;
}

/* The rows of the Markdown table after heading, as a copy each; returns
   how many (header and rule left out). */
static int table(const char *md, const char *heading, char rows[][1024], int max) {
  const char *p = strstr(md, heading);
  int n = 0, line = 0;
  assert_non_null(p);
  p = strstr(p, "\n|");
  while (p && p[1] == '|' && n < max) {
    const char *e = strchr(p + 1, '\n');
    if (!e)
      break;
    if (line++ >= 2)
      snprintf(rows[n++], 1024, "%.*s", (int)(e - p - 1), p + 1);
    p = e;
  }
  return n;
}

/* The order the report must rank the models in: no divergence first,
   then by mean final test loss. */
static void expected_order(const Figures *f, int *order) {
  for (int i = 0; i < NMODELS; i++)
    order[i] = i;
  for (int i = 1; i < NMODELS; i++)
    for (int j = i; j > 0; j--) {
      const Figures *a = &f[order[j - 1]], *b = &f[order[j]];
      int ta = !a->n ? 2 : a->diverged > 0, tb = !b->n ? 2 : b->diverged > 0;
      if (ta < tb || (ta == tb && (!a->n || a->mean <= b->mean)))
        break;
      int t = order[j];
      order[j] = order[j - 1], order[j - 1] = t;
    }
}

/* The Holm-adjusted p of each model against the base. */
static void holm(const Figures *f, double *adj) {
  double p[NMODELS - 1];
  for (int m = 1; m < NMODELS; m++)
    p[m - 1] = st_welch(f[m].loss, f[m].n, f[0].loss, f[0].n).p;
  st_holm(p, NMODELS - 1, adj + 1);
}

/* The model with a label. */
static int model_of(const char *name) {
  for (int m = 0; m < NMODELS; m++)
    if (!strcmp(name, label(m)))
      return m;
  fail_msg("unknown model '%s' in the ranking", name);
  return -1;
}

/* The ranking table: the order, and every number in each row. */
static void check_ranking(const char *md, const Figures *f) {
  char rows[16][1024], *c[16];
  int order[NMODELS];
  double adj[NMODELS];
  expected_order(f, order);
  holm(f, adj);
  assert_int_equal(table(md, "### Ranking", rows, 16), NMODELS);
  for (int k = 0; k < NMODELS; k++) {
    assert_int_equal(cells(rows[k], c, 16), 11);
    int m = model_of(c[1]);
    assert_int_equal(atoi(c[0]), k + 1);
    assert_string_equal(c[1], label(order[k]));
    assert_int_equal(atoi(c[2]), f[m].runs);
    assert_int_equal(atoi(c[3]), f[m].diverged);
    printed_pm(c[4], f[m].mean, f[m].std, f[m].n, 4);
    printed_pm(c[5], 100 * f[m].acc_mean, 100 * f[m].acc_std, f[m].n, 2);
    if (m == 0 || !f[m].n)
      continue;
    StWelch w = st_welch(f[m].loss, f[m].n, f[0].loss, f[0].n);
    StPerm r = st_permutation(f[m].loss, f[m].n, f[0].loss, f[0].n);
    printed(c[6], f[m].mean - f[0].mean, 4);
    printed_or_na(c[7], 100 * (f[m].mean - f[0].mean) / f[0].mean, 1);
    printed_or_na(c[8], w.p, 4);
    printed_or_na(c[9], adj[m], 4);
    printed_or_na(c[10], r.p, 4);
  }
}

/* The summary table: each experiment's figures. */
static void check_summary(const char *md, sqlite3 *d) {
  char rows[16][1024], *c[16];
  static const char *const exps[] = {"norm=none", "norm=batchnorm", "norm=layernorm",
                                     "init=normal", "init=kaiming_normal"};
  assert_int_equal(table(md, "## Summary", rows, 16), 5);
  for (int i = 0; i < 5; i++) {
    Figures f;
    double tm, ts;
    load(d, exps[i], &f);
    st_mean_std(f.train, f.n, &tm, &ts);
    assert_int_equal(cells(rows[i], c, 16), 6);
    assert_string_equal(c[0], exps[i]);
    assert_int_equal(atoi(c[1]), f.runs);
    assert_int_equal(atoi(c[2]), f.diverged);
    printed_pm(c[3], f.mean, f.std, f.n, 4);
    printed_pm(c[4], 100 * f.acc_mean, 100 * f.acc_std, f.n, 2);
    printed_pm(c[5], tm, ts, f.n, 4);
  }
}

/* Each remedy's sentence: its means, t and degrees of freedom. */
static void check_sentences(const char *md, const Figures *f) {
  for (int m = 1; m < NMODELS; m++) {
    const char *s = strstr(md, fmt("- **%s**", label(m)));
    assert_non_null(s);
    if (!f[m].n || !f[0].n)
      continue;
    StWelch w = st_welch(f[m].loss, f[m].n, f[0].loss, f[0].n);
    assert_non_null(strstr(s, w.diff < 0 ? " lowers " : w.diff > 0 ? " raises " : " leaves "));
    printed(strstr(s, " to ") + 4, f[m].mean, 4);
    printed(strstr(s, "the base's ") + 11, f[0].mean, 4);
    if (!isfinite(w.t)) {  /* the words say why there is no number */
      assert_non_null(strstr(s, isnan(w.t) ? "Welch's t-test: none, since " : "infinity"));
      continue;
    }
    printed(strstr(s, "Welch's t = ") + 12, w.t, 3);
    printed(strstr(s, "Welch's t = ") + 12 + strcspn(strstr(s, "Welch's t = ") + 12, ",") + 2,
            w.df, 2);
  }
}

/* comparisons.csv: the tests against the base at 17 digits. */
static void check_comparisons(const char *path, const Figures *f) {
  char *text = read_all(path), *line = strchr(text, '\n') + 1;
  double adj[NMODELS];
  holm(f, adj);
  for (int k = 0; k < NMODELS - 1; k++, line = strchr(line, '\n') + 1) {
    char *c[16] = {NULL}, *end;
    int n = 0;
    for (char *p = line; n < 16; p = end + 1) {
      c[n++] = p;
      end = p + strcspn(p, ",\n");
      if (*end == '\n')
        break;
    }
    assert_int_equal(n, 15);
    assert_memory_equal(c[0], "base,", 5);
    char *name = strndup(c[1], (size_t)(c[2] - c[1] - 1));
    int m = model_of(name);
    free(name);
    StWelch w = st_welch(f[m].loss, f[m].n, f[0].loss, f[0].n);
    StPerm r = st_permutation(f[m].loss, f[m].n, f[0].loss, f[0].n);
    double want[] = {f[m].mean, f[0].mean, w.diff, w.t, w.df, w.p, adj[m], r.p};
    for (int i = 0; i < 8; i++)
      if (isnan(want[i]))
        assert_true(c[5 + i][0] == ',');  /* empty */
      else
        assert_true(fabs(strtod(c[5 + i], NULL) - want[i]) <= 1e-13 * fabs(want[i]));
    assert_int_equal(atol(c[13]), r.count);
    assert_int_equal(atol(c[14]), r.total);
  }
  free(text);
}

/* ---- health figures ---- */

/* The experiment a model's label in the health table stands for. */
static const char *experiment_of(const char *label) {
  return strcmp(label, "base") ? label : "norm=none";
}

/* The mean (and how many values) over an experiment's finished runs of
   one health figure at an epoch (-1: each run's end, the epoch early
   stopping kept, else its last); *na when every run has it not
   applicable. */
static int health_mean(sqlite3 *d, const char *exp, const char *layer, const char *figure,
                       int epoch, double *mean, double *sd, int *na) {
  sqlite3_stmt *st;
  double v[NSEEDS];
  int n = 0, nas = 0, rows = 0;
  sqlite3_prepare_v2(d, "SELECT h.value, h.na FROM study_runs s JOIN runs r ON r.id = s.run_id "
                        "JOIN health h ON h.run_id = r.id WHERE s.study = 'rep' AND "
                        "s.experiment = ?1 AND r.status = 'finished' AND h.layer = ?2 AND "
                        "h.figure = ?3 AND h.epoch = (CASE WHEN ?4 < 0 THEN coalesce(r.best_epoch, "
                        "(SELECT max(epoch) FROM health WHERE run_id = r.id)) ELSE ?4 END) "
                        "ORDER BY s.seed", -1,
                     &st, NULL);
  sqlite3_bind_text(st, 1, exp, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, layer, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, figure, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, epoch);
  while (sqlite3_step(st) == SQLITE_ROW && rows < NSEEDS) {
    rows++;
    nas += sqlite3_column_int(st, 1);
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
      v[n++] = sqlite3_column_double(st, 0);
  }
  sqlite3_finalize(st);
  st_mean_std(v, n, mean, sd);
  *na = rows && nas == rows;
  return n;
}

/* Fails unless a number printed with 3 significant digits is v. */
static void printed_sig(const char *text, double v) {
  char *end;
  double got = strtod(text, &end);
  assert_true(end != text);
  double tol = v ? 0.5000001 * pow(10, floor(log10(fabs(v))) - 2) : 0;
  if (!(fabs(got - v) <= tol))
    fail_msg("report says %.*s, the database gives %.10g", (int)(end - text), text, v);
}

/* Checks one figure's printed value: a number, n/a, or - for none. */
static void printed_health(const char *text, sqlite3 *d, const char *exp, const char *layer,
                           const char *figure, int epoch) {
  double mean, sd;
  int na, n = health_mean(d, exp, layer, figure, epoch, &mean, &sd, &na);
  if (na)
    assert_memory_equal(text, "n/a", 3);
  else if (!n)
    assert_true(text[0] == '-' && !isdigit((unsigned char)text[1]));
  else
    printed_sig(text, mean);
}

/* The health table: each model's runs with figures, and each figure at
   epoch 0 and the last, as the database gives them. */
static int check_health_table(const char *md, sqlite3 *d) {
  static const char *const layer[] = {"hidden1", "hidden1", "hidden1", "fc1.weight",
                                      "fc1.weight"};
  static const char *const figure[] = {"saturated", "dead", "pre_std", "grad_norm",
                                       "update_ratio"};
  char rows[16][1024], *c[16];
  int n = table(md, "## Activation health", rows, 16);
  for (int k = 0; k < n; k++) {
    assert_int_equal(cells(rows[k], c, 16), 8);
    const char *exp = experiment_of(c[0]);
    assert_string_equal(c[2], "hidden1");
    assert_int_equal(atoi(c[1]), query_int(d, fmt("SELECT count(*) FROM study_runs s JOIN runs "
      "r ON r.id = s.run_id WHERE s.study = 'rep' AND s.experiment = '%s' AND r.status = "
      "'finished' AND EXISTS (SELECT 1 FROM health WHERE run_id = r.id)", exp)));
    for (int f = 0; f < 5; f++) {
      const char *arrow = strstr(c[3 + f], " → ");
      if (f < 4 && strcmp(c[3 + f], "n/a"))
        assert_non_null(arrow);
      if (arrow)
        printed_health(c[3 + f], d, exp, layer[f], figure[f], 0);
      printed_health(arrow ? arrow + strlen(" → ") : c[3 + f], d, exp, layer[f], figure[f], -1);
    }
  }
  return n;
}

/* The numbers of a model's "Why" bullet: saturated, dead and
   pre-activation std at epoch 0 and the last, and the update ratio. */
static void check_why(const char *md, sqlite3 *d, const char *label) {
  const char *p = strstr(md, "### Why"), *at = p ? strstr(p, fmt(". **%s**", label)) : NULL;
  static const char *const figure[] = {"saturated", "dead", "pre-activation std"};
  static const char *const stored[] = {"saturated", "dead", "pre_std"};
  assert_non_null(at);
  char b[4096];
  snprintf(b, sizeof b, "%.*s", (int)strcspn(at, "\n"), at);
  if (strstr(b, ": no health figures."))
    return;
  for (int f = 0; f < 3; f++) {
    const char *v = strstr(b, fmt("%s ", figure[f])) + strlen(figure[f]) + 1;
    printed_health(v, d, experiment_of(label), "hidden1", stored[f], 0);
    if (strncmp(v, "n/a", 3))
      printed_health(strstr(v, " → ") + strlen(" → "), d, experiment_of(label), "hidden1",
                     stored[f], -1);
  }
  printed_health(strstr(b, "update ratio ") + 13, d, experiment_of(label), "fc1.weight",
                 "update_ratio", -1);
}

/* health.csv: every figure of every experiment and epoch, at 17 digits. */
static void check_health_csv(const char *path, sqlite3 *d) {
  char *text = read_all(path), *line = strchr(text, '\n') + 1;
  int rows = 0;
  for (char *next; *line; line = next, rows++) {
    char *c[12] = {NULL}, *end;
    next = strchr(line, '\n') + 1;
    next[-1] = 0;
    int n = 0;
    for (char *q = line; n < 12; q = end + 1) {
      c[n++] = q;
      end = q + strcspn(q, ",");
      if (!*end)
        break;
      *end = 0;
    }
    assert_int_equal(n, 10);
    double mean, sd;
    int na, k = health_mean(d, c[0], c[3], c[4], atoi(c[5]), &mean, &sd, &na);
    assert_int_equal(atoi(c[6]), k);
    assert_int_equal(atoi(c[7]), na);
    if (k)
      assert_true(fabs(strtod(c[8], NULL) - mean) <= 1e-14 * fabs(mean));
    else
      assert_string_equal(c[8], "");
    if (k > 1)
      assert_true(fabs(strtod(c[9], NULL) - sd) <= 1e-12 * fabs(mean) + 1e-300);
  }
  assert_int_equal(rows, query_int(d, "SELECT count(*) FROM (SELECT DISTINCT s.experiment, "
    "h.layer, h.figure, h.epoch FROM study_runs s JOIN runs r ON r.id = s.run_id JOIN health h "
    "ON h.run_id = r.id WHERE s.study = 'rep' AND r.status = 'finished')"));
  free(text);
}

/* Every check of the report in dir against database db. */
static void check_report(const char *db, const char *dir, Figures *f) {
  sqlite3 *d = open_db(db);
  for (int m = 0; m < NMODELS; m++)
    load(d, models[m], &f[m]);
  char *md = read_all(fmt("%s/report.md", dir));
  check_summary(md, d);
  check_ranking(md, f);
  check_sentences(md, f);
  check_comparisons(fmt("%s/comparisons.csv", dir), f);
  assert_int_equal(check_health_table(md, d), query_int(d, "SELECT count(DISTINCT s.experiment) "
    "FROM study_runs s JOIN runs r ON r.id = s.run_id WHERE s.study = 'rep' AND s.experiment "
    "IN ('norm=none', 'norm=batchnorm', 'norm=layernorm', 'init=kaiming_normal') AND "
    "r.status = 'finished' AND EXISTS (SELECT 1 FROM health WHERE run_id = r.id)"));
  for (int m = 0; m < NMODELS; m++)
    check_why(md, d, label(m));
  check_health_csv(fmt("%s/health.csv", dir), d);
  free(md);
  sqlite3_close(d);
}

/* Sets the final test losses of a model's runs (in seed order), as
   finished runs: one marked diverged before gets figures back. */
static void set_losses(const char *db, const char *exp, const double *v) {
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  for (int k = 0; k < NSEEDS; k++) {
    char *sql = sqlite3_mprintf("UPDATE runs SET status = 'finished', diverged_epoch = NULL, "
                                "diverged_step = NULL, test_loss = %.17g, test_acc = "
                                "coalesce(test_acc, 0.5), train_loss = coalesce(train_loss, 1) "
                                "WHERE id = (SELECT "
                                "run_id FROM study_runs WHERE study = 'rep' AND experiment = "
                                "%Q ORDER BY seed LIMIT 1 OFFSET %d)", v[k], exp, k);
    assert_int_equal(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
  }
  sqlite3_close(d);
}

/* Sets the final test losses of every model's runs, in models' order. */
static void set_all_losses(const char *db, const double v[NMODELS][NSEEDS]) {
  for (int m = 0; m < NMODELS; m++)
    set_losses(db, models[m], v[m]);
}

/* Marks one run of a model (k-th seed) as diverged. */
static void set_diverged(const char *db, const char *exp, int k) {
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  char *sql = sqlite3_mprintf("UPDATE runs SET status = 'diverged', diverged_epoch = 1, "
                              "diverged_step = 3, test_loss = NULL, test_acc = NULL, "
                              "train_loss = NULL WHERE id = (SELECT run_id FROM study_runs "
                              "WHERE study = 'rep' AND experiment = %Q ORDER BY seed LIMIT 1 "
                              "OFFSET %d)", exp, k);
  assert_int_equal(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_free(sql);
  sqlite3_close(d);
}

/* The ranking's labels in order, comma-separated. */
static const char *ranking(const char *dir) {
  char *md = read_all(fmt("%s/report.md", dir)), rows[16][1024], *c[16];
  static char out[512];
  int n = table(md, "### Ranking", rows, 16);
  out[0] = 0;
  for (int k = 0; k < n; k++) {
    cells(rows[k], c, 16);
    snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", k ? "," : "", c[1]);
  }
  free(md);
  return out;
}

static int make_tmp(void **state) {
  (void)state;
  if (!mkdtemp(tmp))
    return -1;
  FILE *f = fopen(fmt("%s/rep.json", tmp), "w");
  fputs(study_text, f);
  fclose(f);
  return 0;
}

static int remove_tmp(void **state) {
  (void)state;
  if (getenv("MLPC_KEEP"))
    return printf("kept %s\n", tmp), 0;
  return system(fmt("rm -rf %s", tmp));
}

/* ---- tests ---- */

/* The database's path, and the report directory NAME's. */
static void paths(char *db, char *dir, const char *name) {
  snprintf(db, 256, "%s/rep.sqlite", tmp);
  snprintf(dir, 256, "%s/%s", tmp, name);
}

/* A PNG file's first bytes. */
static int is_png(const char *path) {
  char *b = read_all(path);
  int yes = !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
  free(b);
  return yes;
}

/* The report of a real study equals the database's figures; the plots
   are drawn. */
static void test_report_is_the_database(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "out");
  Figures f[NMODELS];
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  char *md = read_all(fmt("%s/report.md", dir)), *term = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(md, "![" ));
  assert_non_null(strstr(md, "(test_loss.png)"));
  assert_non_null(strstr(md, "(final_loss.png)"));
  assert_non_null(strstr(md, "## Activation health"));
  assert_non_null(strstr(md, "(health.png)"));
  assert_non_null(strstr(md, "### Why: what the activation-health figures show"));
  assert_non_null(strstr(md, "C(6, 3) = 20 ways"));
  assert_non_null(strstr(term, "ranking by mean final test loss"));
  assert_true(is_png(fmt("%s/test_loss.png", dir)));
  assert_true(is_png(fmt("%s/final_loss.png", dir)));
  assert_true(is_png(fmt("%s/health.png", dir)));
  free(md), free(term);
}

/* Sets a health figure of hidden1 at every epoch of a model's runs. */
static void set_health(const char *db, const char *exp, const char *figure, double v) {
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  char *sql = sqlite3_mprintf("UPDATE health SET value = %.17g, na = 0 WHERE layer = 'hidden1' "
                              "AND figure = %Q AND run_id IN (SELECT run_id FROM study_runs "
                              "WHERE study = 'rep' AND experiment = %Q)", v, figure, exp);
  assert_int_equal(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_free(sql);
  sqlite3_close(d);
}

/* The text of the "Why" part of the report in dir. */
static char *why(const char *dir) {
  char *md = read_all(fmt("%s/report.md", dir)), *w = strstr(md, "### Why");
  assert_non_null(w);
  memmove(md, w, strlen(w) + 1);
  return md;
}

/* The "Why" sentences follow the health figures in the database: which
   models saturate, which are healthier than the base, and whether the
   figures follow the ranking. */
static void test_why_follows_data(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "why");
  Figures f[NMODELS];
  set_health(db, "norm=none", "saturated", 0.5);            /* the base saturates */
  set_health(db, "init=kaiming_normal", "saturated", 0.02); /* Kaiming does not */
  set_health(db, "norm=batchnorm", "saturated", 0.25);
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  char *w = why(dir);
  assert_non_null(strstr(w, "At the initial weights, saturating: "));
  assert_non_null(strstr(w, "norm=batchnorm (0.25)"));
  assert_non_null(strstr(w, "base (0.5)"));
  assert_null(strstr(w, "init=kaiming_normal (0.02)"));
  assert_non_null(strstr(w, "more than 10 % of its values"));
  const char *k = strstr(w, "**init=kaiming_normal**");
  assert_non_null(k);
  assert_non_null(strstr(k, "it does not saturate (the base does)"));
  free(w);
  /* now Kaiming saturates and the base does not */
  set_health(db, "norm=none", "saturated", 0.01);
  set_health(db, "init=kaiming_normal", "saturated", 0.75);
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  w = why(dir);
  assert_non_null(strstr(w, "init=kaiming_normal (0.75)"));
  assert_null(strstr(w, "base (0.01)"));
  k = strstr(w, "**init=kaiming_normal**");
  assert_non_null(strstr(k, "Less healthy: it saturates (the base does not)"));
  free(w);
  /* a healthy base: nothing can be healthier than it */
  set_health(db, "norm=none", "pre_std", 1.0);
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  assert_int_equal(sqlite3_exec(d, "UPDATE health SET value = 0.002 WHERE figure = "
                                   "'update_ratio' AND na = 0", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(d);
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  w = why(dir);
  assert_non_null(strstr(w, "The base itself passes every threshold"));
  free(w);
}

/* A run without health figures that does not repeat when run again (its
   recorded figures were changed) is left out of the health means, with
   a note in the report and a warning on the terminal. */
static void test_run_without_health(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "nohealth");
  Figures f[NMODELS];
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  assert_int_equal(sqlite3_exec(d, "CREATE TEMP TABLE one AS SELECT run_id FROM study_runs "
                                   "WHERE study = 'rep' AND experiment = 'init=kaiming_normal' "
                                   "ORDER BY seed LIMIT 1; "
                                   "DELETE FROM health WHERE run_id IN (SELECT run_id FROM one); "
                                   "UPDATE epochs SET test_acc = 0.5 WHERE run_id IN (SELECT "
                                   "run_id FROM one)", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(d);
  expect_ok(run_study(db, dir));
  char *e = read_all(fmt("%s/stderr", tmp)), *md = read_all(fmt("%s/report.md", dir));
  assert_non_null(strstr(e, "did not repeat bit for bit when run again"));
  assert_non_null(strstr(md, "\n1 finished run has no health figures"));
  assert_non_null(strstr(md, "| init=kaiming_normal | 2 | hidden1 |"));
  check_report(db, dir, f);
  free(e), free(md);
}

/* Sets the epoch early stopping kept (0: none, NULL) of the runs of
   study rep's experiment exp whose seed is odd. */
static void set_kept(const char *db, const char *exp, int epoch) {
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  char *sql = sqlite3_mprintf("UPDATE runs SET best_epoch = %s WHERE id IN (SELECT run_id FROM "
                              "study_runs WHERE study = 'rep' AND experiment = %Q AND seed %% 2 "
                              "= 1)", epoch ? fmt("%d", epoch) : "NULL", exp);
  assert_int_equal(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_free(sql);
  sqlite3_close(d);
}

/* Runs that early stopping ended at other epochs: the health figures
   "after the last epoch" are each run's own, of the epoch it kept (as
   its final figures are), not those of the last epoch of the longest
   run, which the others do not have or did not keep. */
static void test_health_of_kept_epoch(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "kept");
  Figures f[NMODELS];
  set_kept(db, "norm=layernorm", 1);  /* seeds 1 and 3 kept epoch 1, seed 2 its last, 2 */
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  sqlite3 *d;
  double one, two, sd;
  int na;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  health_mean(d, "norm=layernorm", "hidden1", "pre_std", -1, &one, &sd, &na);
  health_mean(d, "norm=layernorm", "hidden1", "pre_std", 2, &two, &sd, &na);
  sqlite3_close(d);
  assert_true(one != two);  /* the kept epochs' figures are not the last's */
  set_kept(db, "norm=layernorm", 0);
}

/* The ranking follows the numbers in the database. */
static void test_ranking_follows_data(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "syn");
  Figures f[NMODELS];
  set_all_losses(db, (const double[NMODELS][NSEEDS]){{5, 5.2, 4.9}, {1, 1.1, 0.95},
                                                     {3, 3.3, 2.8}, {2, 2.2, 1.9}});
  expect_ok(run_study(db, dir));
  assert_string_equal(ranking(dir), "norm=batchnorm,init=kaiming_normal,norm=layernorm,base");
  check_report(db, dir, f);
  char *md = read_all(fmt("%s/report.md", dir));
  assert_non_null(strstr(md, "**Best:** norm=batchnorm, mean final test loss 1.0167"));
  free(md);
  /* now Kaiming wins, and LayerNorm is worse than the base */
  set_losses(db, "init=kaiming_normal", (double[]){0.5, 0.52, 0.49});
  set_losses(db, "norm=layernorm", (double[]){9, 9.5, 8.7});
  expect_ok(run_study(db, dir));
  assert_string_equal(ranking(dir), "init=kaiming_normal,norm=batchnorm,base,norm=layernorm");
  check_report(db, dir, f);
  md = read_all(fmt("%s/report.md", dir));
  assert_non_null(strstr(md, "**Best:** init=kaiming_normal"));
  assert_non_null(strstr(md, "- **norm=layernorm** raises the final test loss"));
  free(md);
}

/* Diverged runs are left out of the means and rank their model lower. */
static void test_diverged_runs(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "div");
  Figures f[NMODELS];
  set_losses(db, "norm=batchnorm", (double[]){0.1, 0.2, 0.15});  /* the lowest mean */
  set_diverged(db, "norm=batchnorm", 1);
  for (int k = 0; k < NSEEDS; k++)
    set_diverged(db, "norm=layernorm", k);
  expect_ok(run_study(db, dir));
  assert_string_equal(ranking(dir), "init=kaiming_normal,base,norm=batchnorm,norm=layernorm");
  check_report(db, dir, f);
  assert_int_equal(f[1].n, 2);
  char *md = read_all(fmt("%s/report.md", dir));
  assert_non_null(strstr(md, "(1 of its 3 runs diverged and are left out)"));
  assert_non_null(strstr(md, "- **norm=layernorm**: it diverged in every run"));
  assert_non_null(strstr(md, "| 4 | norm=layernorm | 3 | 3 | diverged | diverged |"));
  free(md);
}

/* Fails if text holds a number C printed that is not one: "nan" or
   "inf" as a word. */
static void no_raw_nonfinite(const char *text, const char *what) {
  for (const char *p = text; *p; p++) {
    int start = p == text || !isalnum((unsigned char)p[-1]);
    if (start && (!strncasecmp(p, "nan", 3) || !strncasecmp(p, "inf", 3)) &&
        !isalnum((unsigned char)p[3]))
      fail_msg("%s prints a raw '%.3s': ...%.80s", what, p, p > text + 60 ? p - 60 : text);
  }
}

/* Every text of the report in dir, and the terminal, without nan or inf. */
static void no_raw_nonfinite_in(const char *dir) {
  static const char *const files[] = {"report.md", "report.html", "summary.csv", "runs.csv",
                                      "comparisons.csv", "health.csv"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char *t = read_all(fmt("%s/%s", dir, files[i]));
    no_raw_nonfinite(t, files[i]);
    free(t);
  }
  char *term = read_all(fmt("%s/stdout", tmp));
  no_raw_nonfinite(term, "the terminal");
  free(term);
}

/* One seed per model: no Welch test, and the report says why instead of
   printing nan; the table and the terminal say n/a. */
static void test_one_seed(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "one");
  set_losses(db, "norm=none", (double[]){5, 5.2, 4.9});
  char one[sizeof study_text];  /* rep, seed 1 alone: the same runs (the last test) */
  snprintf(one, sizeof one, "%s", study_text);
  strcpy(strstr(one, "[1, 2, 3]"), "[1]}\n");
  FILE *f = fopen(fmt("%s/rep1.json", tmp), "w");
  fputs(one, f);
  fclose(f);
  const char *args[] = {fmt("%s/rep1.json", tmp), "--run", "--backend", "tcc", "--db", db,
                        "--out", dir, NULL};
  expect_ok(run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args));
  char *md = read_all(fmt("%s/report.md", dir)), *term = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(term, "4 already in"));  /* the same runs */
  assert_non_null(strstr(md, "Welch's t-test: none, since it needs at least two finished "
                             "runs of each model, and they have 1 and 1."));
  assert_non_null(strstr(md, "Not tested against it, since Welch's test needs at least two "
                             "finished runs of each model: "));
  assert_non_null(strstr(md, "No remedy has a Welch test against the base"));
  assert_non_null(strstr(md, " | n/a | n/a | 1.0000 |\n"));
  assert_non_null(strstr(term, "p = n/a (n/a)"));
  no_raw_nonfinite_in(dir);
  free(md), free(term);
}

/* Final losses without spread, and a base whose mean is 0: the words say
   what the numbers cannot (no difference to test, an infinite t, no
   change in percent); health figures not there say n/a or -, never
   nan. */
static void test_no_spread(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "spread");
  Figures f[NMODELS];
  set_all_losses(db, (const double[NMODELS][NSEEDS]){{2, 2, 2}, {1, 1, 1}, {3, 3.1, 2.9},
                                                     {2, 2, 2}});
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  assert_int_equal(sqlite3_exec(d, "UPDATE health SET value = NULL, na = 1 WHERE figure = "
                                   "'update_ratio'; UPDATE health SET value = NULL WHERE figure "
                                   "= 'pre_std' AND run_id IN (SELECT run_id FROM study_runs "
                                   "WHERE experiment = 'norm=layernorm')", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(d);
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  char *md = read_all(fmt("%s/report.md", dir));
  const char *k = strstr(md, "- **init=kaiming_normal** leaves");
  assert_non_null(k);
  assert_non_null(strstr(k, "Welch's t-test: none, since every run of both gives the same "
                            "final loss: there is no difference to test."));
  assert_non_null(strstr(md, "Welch's t = -infinity (neither model's final losses vary), "
                             "4.00 degrees of freedom, p = 0.0000"));
  assert_non_null(strstr(md, "update ratio n/a."));
  assert_non_null(strstr(md, "pre-activation std - → -"));
  no_raw_nonfinite_in(dir);
  free(md);
  set_losses(db, "norm=none", (double[]){0, 0, 0});
  expect_ok(run_study(db, dir));
  check_report(db, dir, f);
  md = read_all(fmt("%s/report.md", dir));
  assert_non_null(strstr(md, "higher (n/a %)"));
  no_raw_nonfinite_in(dir);
  free(md);
}

/* Without gnuplot, or with one that fails: a warning, the tables, no
   plots. */
static void test_without_gnuplot(void **state) {
  (void)state;
  char db[256], dir[256];  /* fmt\'s buffers are reused by the checks */
  paths(db, dir, "nognuplot");
  const char *bin = fmt("%s/bin", tmp), *path = getenv("PATH");
  char *saved = strdup(path ? path : "");
  mkdir(bin, 0777);
  setenv("PATH", bin, 1);  /* nothing there */
  int status = run_study(db, dir);
  FILE *f = fopen(fmt("%s/gnuplot", bin), "w");
  fputs("#!/bin/sh\necho 'gnuplot: broken on purpose' >&2\nexit 3\n", f);
  fclose(f);
  chmod(fmt("%s/gnuplot", bin), 0755);
  char *e1 = read_all(fmt("%s/stderr", tmp));
  int status2 = run_study(db, fmt("%s/broken", tmp));
  setenv("PATH", saved, 1);
  free(saved);
  expect_ok(status);
  assert_non_null(strstr(e1, "mlpc: warning: no plots: gnuplot is not installed"));
  char *md = read_all(fmt("%s/report.md", dir)), *sum = read_all(fmt("%s/summary.csv", dir));
  assert_non_null(strstr(md, "No plots: gnuplot is not installed"));
  assert_non_null(strstr(md, "## Conclusions"));
  assert_non_null(strstr(sum, "experiment,factor,value"));
  assert_false(is_png(fmt("%s/test_loss.png", dir)));
  expect_ok(status2);
  char *e2 = read_all(fmt("%s/stderr", tmp));
  char *log = read_all(fmt("%s/broken/plots/gnuplot.log", tmp));
  assert_non_null(strstr(e2, "mlpc: warning: no plots: gnuplot failed"));
  assert_non_null(strstr(log, "broken on purpose"));
  free(e1), free(e2), free(log), free(md), free(sum);
}

/* The value of one health figure of the layer-list study's run of
   experiment exp at epoch e (-1: the last one). */
static double list_figure(sqlite3 *d, const char *exp, const char *layer, const char *figure,
                          int e) {
  sqlite3_stmt *st;
  double v = NAN;
  sqlite3_prepare_v2(d, "SELECT h.value FROM study_runs s JOIN health h ON h.run_id = s.run_id "
                        "WHERE s.study = 'lrep' AND s.experiment = ?1 AND h.layer = ?2 AND "
                        "h.figure = ?3 AND h.epoch = (CASE WHEN ?4 < 0 THEN (SELECT max(epoch) "
                        "FROM health WHERE run_id = s.run_id) ELSE ?4 END)", -1, &st, NULL);
  sqlite3_bind_text(st, 1, exp, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, layer, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, figure, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, e);
  if (sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  assert_false(isnan(v));
  return v;
}

/* A study of a layer-list model: the health table has a row per
   activation layer, named by its path, with the figures of the layer
   and of the weight that feeds it (the nearest layer before it with a
   weight), and the text names them so. */
static void test_layer_list_health(void **state) {
  (void)state;
  static const char *const layer[] = {"layers[1]", "layers[4]"}, *const weight[] = {"0.weight",
                                                                                 "3.weight"};
  char db[256], dir[256], *c[16], rows[16][1024];
  snprintf(db, sizeof db, "%s/lrep.sqlite", tmp);
  snprintf(dir, sizeof dir, "%s/lrep", tmp);
  FILE *f = fopen(fmt("%s/lrep.json", tmp), "w");
  fputs("{\"name\": \"lrep\", \"base\": {\"input\": 784, \"layers\": [{\"type\": \"linear\", "
        "\"out\": 16}, {\"type\": \"tanh\"}, {\"type\": \"dropout\", \"p\": 0.2}, {\"type\": "
        "\"linear\", \"out\": 8}, {\"type\": \"relu\"}, {\"type\": \"linear\", \"out\": 10}], "
        "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 1, \"max_batches\": 5}, "
        "\"vary\": {\"layers[2].p\": [0.2, 0.5]}, \"seeds\": [1]}\n", f);
  fclose(f);
  const char *args[] = {fmt("%s/lrep.json", tmp), "--run", "--backend", "tcc", "--jobs", "1",
                        "--db", db, "--out", dir, NULL};
  expect_ok(run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args));
  char *md = read_all(fmt("%s/report.md", dir));
  sqlite3 *d = open_db(db);
  int n = table(md, "## Activation health", rows, 16);
  assert_int_equal(n, 4);
  for (int k = 0; k < n; k++) {
    assert_int_equal(cells(rows[k], c, 16), 8);
    const char *exp = strcmp(c[0], "base") ? c[0] : "layers[2].p=0.2";
    assert_string_equal(c[2], layer[k % 2]);
    printed_sig(c[5], list_figure(d, exp, layer[k % 2], "pre_std", 0));
    printed_sig(strstr(c[5], " → ") + strlen(" → "),
                list_figure(d, exp, layer[k % 2], "pre_std", -1));
    printed_sig(strstr(c[6], " → ") + strlen(" → "),
                list_figure(d, exp, weight[k % 2], "grad_norm", -1));
    printed_sig(c[7], list_figure(d, exp, weight[k % 2], "update_ratio", -1));
  }
  assert_null(strstr(md, "(no hidden layer)"));
  assert_null(strstr(md, "fcK.weight"));
  assert_null(strstr(md, "hidden layer"));
  assert_non_null(strstr(md, "| update ratio of the weight that feeds it |"));
  assert_non_null(strstr(md, "(update ratio: of the weight that feeds each layer at the last "
                             "step)"));
  sqlite3_close(d);
  free(md);
}

/* Plans a study file's text, with --epochs 1 applied; the base found. */
static int base_of(const char *text) {
  static Study s;
  StPlan p;
  char err[2048];
  const char *file = fmt("%s/base.json", tmp);
  FILE *f = fopen(file, "w");
  fputs(text, f);
  fclose(f);
  if (st_load(file, &s, err, sizeof err) || st_override(&s, "--epochs", "epochs", "1", err,
                                                        sizeof err) ||
      st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err))
    fail_msg("%s", err);
  int base = p.base;
  st_plan_free(&p);
  st_free(&s);
  return base;
}

/* The base is the first experiment with the base model's runs, also
   when a run flag changed them all; a grid without it has none. */
static void test_base_model(void **state) {
  (void)state;
  static const char base[] = "\"base\": {\"hidden\": [8], \"norm\": \"none\", "
                             "\"init\": \"normal\", \"epochs\": 2}";
  assert_int_equal(base_of(fmt("{%s, \"vary\": {\"norm\": [\"none\", \"batchnorm\"]}}", base)),
                   0);
  assert_int_equal(base_of(fmt("{%s, \"vary\": {\"norm\": [\"layernorm\", \"batchnorm\"], "
                               "\"init\": [\"kaiming_normal\", \"normal\"]}}", base)), 3);
  assert_int_equal(base_of(fmt("{%s, \"mode\": \"grid\", \"vary\": {\"norm\": "
                               "[\"layernorm\", \"batchnorm\"], \"init\": [\"normal\"]}}",
                               base)), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_base_model),
    cmocka_unit_test(test_report_is_the_database),
    cmocka_unit_test(test_why_follows_data),
    cmocka_unit_test(test_run_without_health),
    cmocka_unit_test(test_health_of_kept_epoch),
    cmocka_unit_test(test_ranking_follows_data),
    cmocka_unit_test(test_diverged_runs),
    cmocka_unit_test(test_without_gnuplot),
    cmocka_unit_test(test_layer_list_health),
    cmocka_unit_test(test_no_spread),
    cmocka_unit_test(test_one_seed),  /* last: it leaves study rep with one seed */
  };
  return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
