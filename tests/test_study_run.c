/*
 * test_study_run.c — `mlpc STUDY.json --run` end to end, on small studies
 * of data/mnist with the tcc backend:
 *
 *   - --jobs 1 and --jobs 2 record bitwise the same figures;
 *   - a second start runs nothing and records nothing twice; a study that
 *     shares runs with another takes them from the database;
 *   - a diverged run is recorded as diverged, with where, and the tables
 *     say "diverged" instead of a number;
 *   - summary.csv and runs.csv hold the database's numbers;
 *   - flags that do not apply to a study are refused.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "study_proc.h"

static char tmp[] = "/tmp/mlpc_runXXXXXX";

/* A 6-model grid, 2 seeds: 12 runs of 2 short epochs. */
static const char grid[] =
  "{\"name\": \"tiny\", \"base\": {\"name\": \"tiny_base\", \"hidden\": [16], \"init\": \"kaiming_normal\", "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 2, \"max_batches\": 10}, "
  "\"mode\": \"grid\", \"vary\": {\"norm\": [\"none\", \"batchnorm\", \"layernorm\"], "
  "\"activation\": [\"tanh\", \"relu\"]}, \"seeds\": [1, 2]}\n";

/* The same base, one factor at a time: 4 rows, 3 models (the base twice). */
static const char one[] =
  "{\"name\": \"tiny1\", \"base\": {\"name\": \"tiny_base\", \"hidden\": [16], \"init\": \"kaiming_normal\", "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 2, \"max_batches\": 10, "
  "\"norm\": \"none\", \"activation\": \"tanh\"}, "
  "\"vary\": {\"norm\": [\"none\", \"batchnorm\"], \"activation\": [\"tanh\", \"relu\"]}, "
  "\"seeds\": [1, 2]}\n";

/* Two learning rates, the second one far too large. */
static const char diverging[] =
  "{\"name\": \"div\", \"base\": {\"hidden\": [16], \"activation\": \"relu\", "
  "\"init\": \"normal\", \"optimizer\": \"sgd\", \"epochs\": 2, \"max_batches\": 10}, "
  "\"vary\": {\"optimizer.lr\": [0.01, 1e30]}, \"seeds\": [3, 4]}\n";

/* Writes a study file into the temporary directory; its path. */
static const char *study(const char *name, const char *text) {
  const char *path = fmt("%s/%s.json", tmp, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

/* Runs a study into db and tables dir; the exit status. */
static int run_study(const char *file, const char *db, const char *out, const char *jobs) {
  const char *args[] = {file, "--run", "--backend", "tcc", "--jobs", jobs, "--db", db,
                        "--out", out, NULL};
  return run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args);
}

/* Fails with mlpc's messages if status is not 0. */
static void expect_ok(int status) {
  if (status) {
    char *e = read_all(fmt("%s/stderr", tmp));
    fail_msg("mlpc exited %d:\n%s", status, e);
  }
}

static int make_tmp(void **state) {
  (void)state;
  return mkdtemp(tmp) ? 0 : -1;
}

static int remove_tmp(void **state) {
  (void)state;
  return system(fmt("rm -rf %s", tmp));
}

/* ---- tests ---- */

/* --jobs 1 and --jobs 2: the same runs, bit for bit. */
static void test_jobs_agree(void **state) {
  (void)state;
  const char *file = study("tiny", grid);
  expect_ok(run_study(file, fmt("%s/j1.sqlite", tmp), fmt("%s/j1", tmp), "1"));
  expect_ok(run_study(file, fmt("%s/j2.sqlite", tmp), fmt("%s/j2", tmp), "2"));
  sqlite3 *a = open_db(fmt("%s/j1.sqlite", tmp)), *b = open_db(fmt("%s/j2.sqlite", tmp));
  assert_int_equal(query_int(a, "SELECT count(*) FROM runs"), 12);
  assert_int_equal(query_int(a, "SELECT count(*) FROM epochs"), 24);
  char *fa = all_figures(a), *fb = all_figures(b);
  assert_true(strlen(fa) > 0);
  assert_string_equal(fa, fb);
  free(fa), free(fb);
  sqlite3_close(a), sqlite3_close(b);
}

/* Started again, a finished study runs and records nothing. */
static void test_resume_runs_nothing(void **state) {
  (void)state;
  const char *file = study("tiny", grid), *db = fmt("%s/again.sqlite", tmp);
  expect_ok(run_study(file, db, fmt("%s/again", tmp), "2"));
  sqlite3 *d = open_db(db);
  long long last = query_int(d, "SELECT max(id) FROM runs");
  char *before = all_figures(d);
  sqlite3_close(d);
  expect_ok(run_study(file, db, fmt("%s/again", tmp), "2"));
  char *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "all 12 already in"));
  d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 12);
  assert_int_equal(query_int(d, "SELECT max(id) FROM runs"), last);
  char *after = all_figures(d);
  assert_string_equal(before, after);
  sqlite3_close(d);
  free(out), free(before), free(after);
}

/* One factor at a time: the base's runs serve two rows; runs another
   study recorded are taken from the database. */
static void test_shared_runs(void **state) {
  (void)state;
  const char *db = fmt("%s/shared.sqlite", tmp);
  expect_ok(run_study(study("tiny1", one), db, fmt("%s/one", tmp), "2"));
  char *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "4 experiments × 2 seeds = 8 runs, 6 distinct"));
  assert_non_null(strstr(out, "0 already in"));
  free(out);
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 6);
  assert_int_equal(query_int(d, "SELECT count(*) FROM study_runs WHERE study = 'tiny1'"), 8);
  sqlite3_close(d);
  expect_ok(run_study(study("tiny", grid), db, fmt("%s/grid", tmp), "2"));
  out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "6 already in"));  /* (none|relu or tanh, tanh|bn) x 2 */
  free(out);
  d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 12);
  sqlite3_close(d);
}

/* A diverged run is recorded as such, and the study goes on. */
static void test_diverged(void **state) {
  (void)state;
  const char *db = fmt("%s/div.sqlite", tmp), *dir = fmt("%s/div", tmp);
  expect_ok(run_study(study("div", diverging), db, dir, "2"));
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE status = 'finished'"), 2);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE status = 'diverged' AND "
                                "diverged_epoch = 1 AND diverged_step BETWEEN 1 AND 10 AND "
                                "test_loss IS NULL AND epochs = 0"), 2);
  sqlite3_close(d);
  char *sum = read_all(fmt("%s/summary.csv", dir)), *md = read_all(fmt("%s/report.md", dir));
  char *term = read_all(fmt("%s/stdout", tmp)), *runs = read_all(fmt("%s/runs.csv", dir));
  assert_non_null(strstr(sum, "\noptimizer.lr=1e+30,optimizer.lr,1e+30,1e+30,2,2,,,,,,,,\n"));
  assert_non_null(strstr(md, "| optimizer.lr=1e+30 | 2 | 2 | diverged | diverged |"));
  assert_non_null(strstr(term, "diverged"));
  assert_non_null(strstr(runs, ",diverged,1,,,,,"));
  free(sum), free(md), free(term), free(runs);
}

/* Splits a CSV line into fields in place, unquoting quoted ones. */
static int split_csv(char *line, char **f, int max) {
  int n = 0;
  char *r = line, *w = line;
  while (n < max) {
    f[n++] = w;
    if (*r == '"') {
      for (r++; *r && !(r[0] == '"' && r[1] != '"'); r++)
        *w++ = *r, r += *r == '"';
      r++;
    } else
      while (*r && *r != ',' && *r != '\n')
        *w++ = *r++;
    *w++ = 0;
    if (*r++ != ',')
      return n;
  }
  return n;
}

/* summary.csv: each experiment's mean and standard deviation of the final
   test loss and accuracy, recomputed here from the database. */
static void check_summary(sqlite3 *d, const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096], *c[64];
  assert_non_null(fgets(line, sizeof line, f));  /* header */
  int rows = 0;
  while (fgets(line, sizeof line, f)) {
    int n = split_csv(line, c, 64);
    assert_int_equal(n, 15);  /* experiment..value, 2 keys, seeds, diverged, 4 x 2 */
    for (int fig = 0; fig < 2; fig++) {
      const char *col = fig ? "test_acc" : "test_loss";
      double x[8], s = 0, q = 0;
      int k = 0;
      sqlite3_stmt *st;
      sqlite3_prepare_v2(d, fmt("SELECT r.%s FROM study_runs s JOIN runs r ON r.id = s.run_id "
                                "WHERE s.study = 'tiny' AND s.experiment = '%s' AND "
                                "r.status = 'finished' ORDER BY s.seed", col, c[0]),
                         -1, &st, NULL);
      while (sqlite3_step(st) == SQLITE_ROW && k < 8)
        x[k++] = sqlite3_column_double(st, 0);
      sqlite3_finalize(st);
      assert_int_equal(k, 2);
      assert_int_equal(atoi(c[5]), 2);
      for (int i = 0; i < k; i++)
        s += x[i];
      double mean = s / k;
      for (int i = 0; i < k; i++)
        q += (x[i] - mean) * (x[i] - mean);
      double sd = sqrt(q / (k - 1)), m2 = strtod(c[7 + 2 * fig], NULL),
             sd2 = strtod(c[8 + 2 * fig], NULL);
      assert_true(fabs(m2 - mean) <= 1e-14 * fabs(mean));
      assert_true(fabs(sd2 - sd) <= 1e-12 * fabs(mean));
    }
    rows++;
  }
  fclose(f);
  assert_int_equal(rows, 6);
}

/* runs.csv: every epoch of every run, exactly the database's doubles. */
static void check_runs(sqlite3 *d, const char *path) {
  FILE *f = fopen(path, "r");
  char line[4096], *c[64];
  assert_non_null(fgets(line, sizeof line, f));
  int rows = 0;
  while (fgets(line, sizeof line, f)) {
    assert_int_equal(split_csv(line, c, 64), 12);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(d, fmt("SELECT train_loss, test_loss, test_acc FROM epochs WHERE "
                              "run_id = %s AND epoch = %s", c[4], c[6]), -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    for (int i = 0; i < 3; i++)
      assert_true(strtod(c[7 + i], NULL) == sqlite3_column_double(st, i));
    sqlite3_finalize(st);
    rows++;
  }
  fclose(f);
  assert_int_equal(rows, 24);  /* 6 experiments x 2 seeds x 2 epochs */
}

/* The tables hold the database's numbers. */
static void test_tables_are_the_database(void **state) {
  (void)state;
  const char *db = fmt("%s/tables.sqlite", tmp), *dir = fmt("%s/tables", tmp);
  expect_ok(run_study(study("tiny", grid), db, dir, "2"));
  sqlite3 *d = open_db(db);
  check_summary(d, fmt("%s/summary.csv", dir));
  check_runs(d, fmt("%s/runs.csv", dir));
  sqlite3_close(d);
  char *md = read_all(fmt("%s/report.md", dir));
  assert_non_null(strstr(md, "| norm=batchnorm, activation=relu | 2 | 0 |"));
  free(md);
}

/* A data set named by its directory is read from there. */
static void test_data_directory(void **state) {
  (void)state;
  const char *db = fmt("%s/dir.sqlite", tmp);
  expect_ok(run_study(study("dir", "{\"base\": {\"hidden\": [8], \"epochs\": 1, "
                                   "\"max_batches\": 5, \"data\": \"data/mnist\"}, "
                                   "\"vary\": {\"activation\": [\"relu\"]}}"),
                      db, fmt("%s/dir", tmp), "1"));
  sqlite3 *d = open_db(db);
  assert_string_equal(query_text(d, "SELECT data_dir FROM runs"), "data/mnist");
  sqlite3_close(d);
}

/* Model-only flags are refused; a study needs --run. */
static void test_flags(void **state) {
  (void)state;
  const char *file = study("tiny", grid);
  const char *seed[] = {file, "--run", "--seed", "3", NULL};
  assert_int_equal(run_mlpc(fmt("%s/o", tmp), fmt("%s/e", tmp), seed), 2);
  char *e = read_all(fmt("%s/e", tmp));
  assert_non_null(strstr(e, "--seed: error: does not apply to a study"));
  free(e);
  const char *norun[] = {file, NULL};
  assert_int_equal(run_mlpc(fmt("%s/o", tmp), fmt("%s/e", tmp), norun), 2);
  const char *dump[] = {file, "--dump-study", "--epochs", "3", NULL};
  assert_int_equal(run_mlpc(fmt("%s/o", tmp), fmt("%s/e", tmp), dump), 0);
  char *o = read_all(fmt("%s/o", tmp)), *line = strstr(o, "norm=none, activation=relu\t");
  assert_non_null(line);
  assert_non_null(strstr(line, "\"activation\":\"relu\""));
  assert_non_null(strstr(line, "\"epochs\":3"));
  assert_int_equal(strchr(line, '\n') - line, strcspn(line, "\n"));
  int lines = 0;
  for (char *q = o; (q = strchr(q, '\n')); q++)
    lines++;
  assert_int_equal(lines, 6);
  free(o);
  const char *jobs[] = {file, "--run", "--jobs", "0", NULL};
  assert_int_equal(run_mlpc(fmt("%s/o", tmp), fmt("%s/e", tmp), jobs), 2);
  const char *bad[] = {study("bad", "{\"base\": {}, \"vary\": {\"init\": []}}"), "--run", NULL};
  assert_int_equal(run_mlpc(fmt("%s/o", tmp), fmt("%s/e", tmp), bad), 2);
  e = read_all(fmt("%s/e", tmp));
  assert_non_null(strstr(e, "bad.json: vary.init: error: expected a non-empty array"));
  free(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_jobs_agree),
    cmocka_unit_test(test_resume_runs_nothing),
    cmocka_unit_test(test_shared_runs),
    cmocka_unit_test(test_diverged),
    cmocka_unit_test(test_tables_are_the_database),
    cmocka_unit_test(test_data_directory),
    cmocka_unit_test(test_flags),
  };
  return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
