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
 *   - the health figures stored with each run are bitwise those of a
 *     single run of its model and seed (`mlpc M.json --run --health
 *     --json`), every epoch, layer and figure;
 *   - the arithmetic ("arithmetic", --fma, --strict) keys the runs: a
 *     strict and an fma run of one model and seed are two runs, each
 *     bitwise a single run in its arithmetic, and resuming in either
 *     takes only its own; the report says which it ran;
 *   - a database of schema version 1 (without health figures) is
 *     upgraded, keeping every run as recorded, and the runs are run again
 *     to add their health figures, only if they repeat bit for bit; a
 *     newer schema is refused and left alone;
 *   - a database that is not mlpc's (another program's, a file that is
 *     not a database) is refused with exit 2, byte for byte untouched;
 *     an empty file becomes mlpc's, and one written by mlpc before it
 *     set its application id is taken and stamped;
 *   - runs without a training step have no train loss: NULL, n/a, an
 *     empty CSV field; a database of schema version 2 takes them after
 *     its upgrade;
 *   - a database of schema version 3 (without validation figures) is
 *     upgraded, keeping its runs, and takes runs with a validation split
 *     and early stopping: their figures in the runs and epochs tables,
 *     the final ones those of the epoch kept;
 *   - flags that do not apply to a study are refused;
 *   - tiered (--backend tiered, the runs moved to gcc's code where
 *     MLPC_TEST_SWITCH_AFTER says): the figures of a study on tcc, bit for
 *     bit; the runs are a gcc study's (keyed as gcc's), each saying which
 *     code trained it and where gcc's took over, so too for models with
 *     a schedule, a validation split and early stopping; with a gcc that
 *     fails, a warning and the runs on tcc; a database of schema version
 *     4 (the validation figures, not the code) gets the columns that say
 *     it, keeping its runs and their validation figures, and so does one
 *     with the code columns and not the validation ones.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <sys/stat.h>
#include "../study/study.h"
#include "study_proc.h"
#include "util.h"

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

/* A layer list with dropout, two values of its p, 2 seeds: 4 runs whose
   masks must not depend on the worker that runs them. */
static const char dropping[] =
  "{\"name\": \"drop\", \"base\": {\"input\": 784, \"layers\": [{\"type\": \"linear\", "
  "\"out\": 16}, \"relu\", {\"type\": \"dropout\", \"p\": 0.5}, {\"type\": \"linear\", "
  "\"out\": 10}], \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 2, "
  "\"max_batches\": 10}, \"vary\": {\"layers[2].p\": [0.2, 0.5]}, \"seeds\": [1, 2]}\n";

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

/* Runs a study into db and tables dir, with one more flag (or NULL); the
   exit status. */
static int run_study_with(const char *file, const char *db, const char *out, const char *jobs,
                          const char *flag) {
  const char *args[] = {file, "--run", "--backend", "tcc", "--jobs", jobs, "--db", db,
                        "--out", out, flag, NULL};
  return run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args);
}

/* Runs a study into db and tables dir; the exit status. */
static int run_study(const char *file, const char *db, const char *out, const char *jobs) {
  return run_study_with(file, db, out, jobs, NULL);
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

/* --jobs 1 and --jobs 2: the same runs, bit for bit; with dropout too. */
static void test_jobs_agree(void **state) {
  (void)state;
  static const struct {
    const char *name, *text;
    int runs;
  } c[] = {{"tiny", grid, 12}, {"drop", dropping, 4}};
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    const char *file = study(c[i].name, c[i].text);
    const char *db1 = fmt("%s/%s_j1.sqlite", tmp, c[i].name);
    const char *db2 = fmt("%s/%s_j2.sqlite", tmp, c[i].name);
    expect_ok(run_study(file, db1, fmt("%s/%s_j1", tmp, c[i].name), "1"));
    expect_ok(run_study(file, db2, fmt("%s/%s_j2", tmp, c[i].name), "2"));
    sqlite3 *a = open_db(db1), *b = open_db(db2);
    assert_int_equal(query_int(a, "SELECT count(*) FROM runs"), c[i].runs);
    assert_int_equal(query_int(a, "SELECT count(*) FROM epochs"), 2 * c[i].runs);
    char *fa = all_figures(a), *fb = all_figures(b);
    assert_true(strlen(fa) > 0);
    assert_string_equal(fa, fb);
    free(fa), free(fb);
    sqlite3_close(a), sqlite3_close(b);
  }
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
  assert_non_null(strstr(sum, "\noptimizer.lr=1e30,optimizer.lr,1e30,1e30,2,2,,,,,,,,\n"));
  assert_non_null(strstr(md, "| optimizer.lr=1e30 | 2 | 2 | diverged | diverged |"));
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
    char end = *r++;  /* before the field's end is written over it */
    *w++ = 0;
    if (end != ',')
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

/* The first column of the first row of sql, as a double. */
static double query_real(sqlite3 *d, const char *sql) {
  sqlite3_stmt *st = NULL;
  double v = NAN;
  if (sqlite3_prepare_v2(d, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* Checks one probe's figures of a --json line ({"LAYER": {"FIGURE":
   value}}) against run id's health rows of that epoch; how many. */
static int check_probe(sqlite3 *d, long long id, int epoch, json_t *health) {
  const char *layer, *figure;
  json_t *figs, *v;
  int n = 0;
  json_object_foreach(health, layer, figs) {
    if (!json_is_object(figs))
      continue;  /* "probe" */
    json_object_foreach(figs, figure, v) {
      sqlite3_stmt *st;
      sqlite3_prepare_v2(d, "SELECT value, na FROM health WHERE run_id = ?1 AND epoch = ?2 "
                            "AND layer = ?3 AND figure = ?4", -1, &st, NULL);
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_int(st, 2, epoch);
      sqlite3_bind_text(st, 3, layer, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 4, figure, -1, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("run %lld epoch %d: no %s %s in the database", id, epoch, layer, figure);
      int na = sqlite3_column_int(st, 1), null = sqlite3_column_type(st, 0) == SQLITE_NULL;
      if (json_is_null(v))
        assert_true(na && null);
      else if (json_is_string(v))  /* "nan": not a number, but applicable */
        assert_true(!na && null && !strcmp(json_string_value(v), "nan"));
      else if (na || json_number_value(v) != sqlite3_column_double(st, 0))
        fail_msg("run %lld epoch %d %s %s: %.17g in the database, %.17g run alone", id, epoch,
                 layer, figure, sqlite3_column_double(st, 0), json_number_value(v));
      sqlite3_finalize(st);
      n++;
    }
  }
  return n;
}

/* Runs the model of run id alone with --run --health --json and one more
   flag (or NULL), and checks every epoch and health figure against the
   database, bit for bit. */
static void check_single_run(sqlite3 *d, long long id, const char *flag) {
  const char *model = fmt("%s/single.json", tmp);
  FILE *f = fopen(model, "w");
  fputs(query_text(d, fmt("SELECT model FROM runs WHERE id = %lld", id)), f);
  fclose(f);
  const char *args[] = {model, "--run", "--health", "--json", "--backend", "tcc", flag, NULL};
  expect_ok(run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args));
  char *out = read_all(fmt("%s/stdout", tmp));
  int probes = 0, figures = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *j = json_loads(line, 0, NULL), *h = json_object_get(j, "health");
    assert_non_null(j);
    if (h) {
      int e = (int)json_integer_value(json_object_get(j, "epoch"));
      figures += check_probe(d, id, e, h), probes++;
      if (e > 0)  /* the epoch's own figures, too */
        assert_true(json_number_value(json_object_get(j, "test_loss")) ==
                    query_real(d, fmt("SELECT test_loss FROM epochs WHERE run_id = %lld AND "
                                      "epoch = %d", id, e)));
    }
    json_decref(j);
  }
  free(out);
  assert_int_equal(probes, 3);  /* epochs 0, 1, 2 */
  assert_int_equal(figures, query_int(d, fmt("SELECT count(*) FROM health WHERE run_id = %lld",
                                             id)));
}

/* The stored health figures are those of the same model and seed run
   alone, bit for bit: every run of a study with tanh and relu, with and
   without BatchNorm (whose extra tensors and n/a figures are covered). */
static void test_health_is_a_single_run(void **state) {
  (void)state;
  const char *db = fmt("%s/health.sqlite", tmp);
  expect_ok(run_study(study("tiny1", one), db, fmt("%s/health", tmp), "2"));
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(DISTINCT run_id) FROM health"), 6);
  assert_true(query_int(d, "SELECT count(*) FROM health WHERE na = 1 AND epoch = 2") > 0);
  for (long long id = 1; id <= 6; id++)
    check_single_run(d, id, NULL);
  sqlite3_close(d);
}

/* Runs tiny1 into arith.sqlite with a flag (or NULL), or the study file
   given; checks stdout says "N already in" ("all N" when all) and the
   report names the arithmetic. */
static void arith_run(const char *file, const char *flag, const char *already,
                      const char *arith) {
  const char *db = fmt("%s/arith.sqlite", tmp), *dir = fmt("%s/arith", tmp);
  char dbp[256], dirp[256];  /* fmt's buffers are reused */
  snprintf(dbp, sizeof dbp, "%s", db), snprintf(dirp, sizeof dirp, "%s", dir);
  expect_ok(run_study_with(file, dbp, dirp, "2", flag));
  char *out = read_all(fmt("%s/stdout", tmp)), *md = read_all(fmt("%s/report.md", dirp));
  if (!strstr(out, already) || !strstr(out, fmt("tiny1 (%s): one_factor, %s arithmetic", file,
                                               arith)))
    fail_msg("no '%s' or no %s arithmetic in:\n%s", already, arith, out);
  assert_non_null(strstr(md, fmt("\n- arithmetic: %s (", arith)));
  free(out), free(md);
}

/* A strict and an fma run of the same model and seed are two runs, each
   a single run of its arithmetic; resuming takes only its own. */
static void test_arithmetic(void **state) {
  (void)state;
  char file[256], strict[256];  /* tiny1, and tiny1 with "arithmetic": "strict" */
  snprintf(file, sizeof file, "%s", study("tiny1", one));
  snprintf(strict, sizeof strict, "%s",
           study("strict", fmt("{\"arithmetic\": \"strict\", %s", one + 1)));
  arith_run(file, NULL, "0 already in", "fma");
  arith_run(file, "--strict", "0 already in", "strict");
  sqlite3 *d = open_db(fmt("%s/arith.sqlite", tmp));
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 12);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs a JOIN runs b ON a.model = b.model "
                                "AND a.seed = b.seed AND a.id < b.id AND a.code_hash != "
                                "b.code_hash AND a.train_loss != b.train_loss"), 6);
  check_single_run(d, 1, "--fma");
  check_single_run(d, 7, "--strict");
  sqlite3_close(d);
  arith_run(file, NULL, "all 6 already in", "fma");
  arith_run(file, "--strict", "all 6 already in", "strict");
  arith_run(strict, NULL, "all 6 already in", "strict");
  arith_run(strict, "--fma", "all 6 already in", "fma");
  d = open_db(fmt("%s/arith.sqlite", tmp));
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 12);
  sqlite3_close(d);
  const char *both[] = {file, "--run", "--fma", "--strict", NULL};
  assert_int_equal(run_mlpc(fmt("%s/o", tmp), fmt("%s/e", tmp), both), 2);
  char *e = read_all(fmt("%s/e", tmp));
  assert_string_equal(e, "mlpc: error: --fma and --strict both given: a study has one "
                         "arithmetic (its \"arithmetic\" key, fma by default, or one of "
                         "these flags)\n");
  free(e);
}

/* The tables of schema version 3: without the validation columns. */
static const char tables_v3[] =
  "ALTER TABLE runs DROP COLUMN val_loss; ALTER TABLE runs DROP COLUMN val_acc; "
  "ALTER TABLE runs DROP COLUMN best_epoch; ALTER TABLE epochs DROP COLUMN val_loss; "
  "ALTER TABLE epochs DROP COLUMN val_acc; ";

/* The epochs table of schema versions 1 and 2, whose train loss could
   not be NULL, with the rows it holds. */
static const char epochs_v2[] =
  "ALTER TABLE epochs RENAME TO e; CREATE TABLE epochs (run_id INTEGER NOT NULL REFERENCES "
  "runs(id), epoch INTEGER NOT NULL, train_loss REAL NOT NULL, test_loss REAL NOT NULL, "
  "test_acc REAL NOT NULL, seconds REAL NOT NULL, PRIMARY KEY (run_id, epoch)) WITHOUT ROWID; "
  "INSERT INTO epochs SELECT * FROM e; DROP TABLE e; ";

/* The runs' columns of schema version ST_DB_SCHEMA_CODE (the code that
   trained them), which older mlpcs did not write. */
static const char runs_v4[] =
  "ALTER TABLE runs DROP COLUMN code; ALTER TABLE runs DROP COLUMN gcc_epoch; "
  "ALTER TABLE runs DROP COLUMN gcc_step; ALTER TABLE runs DROP COLUMN gcc_test_batch; ";

/* Makes a database look as an older mlpc left it: schema version
   ST_DB_SCHEMA_CODE - 1 (no code columns), ST_DB_SCHEMA_VAL - 1 (nor the
   validation columns), 2 (nor a NULL train loss), or 1 (mlpc 0.1: no
   health table either). */
static void downgrade_to(const char *db, int version) {
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  assert_int_equal(sqlite3_exec(d, fmt("%s%s%s%s PRAGMA user_version = %d", runs_v4,
                                       version < ST_DB_SCHEMA_VAL ? tables_v3 : "",
                                       version < 3 ? epochs_v2 : "",
                                       version < 2 ? "DROP TABLE health;" : "", version),
                                NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(d);
}

/* Makes a database look as mlpc 0.1 with schema version 1 left it. */
static void downgrade(const char *db) { downgrade_to(db, 1); }

/* Runs sql on a database. */
static void db_exec(const char *db, const char *sql) {
  sqlite3 *d;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  assert_int_equal(sqlite3_exec(d, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(d);
}

/* Every run's id and when it was recorded, in one string. */
static char *recorded(const char *db) {
  sqlite3 *d = open_db(db);
  char *s = strdup(query_text(d, "SELECT group_concat(id || ' ' || recorded || ' ' || "
                                 "seconds, ';') FROM (SELECT * FROM runs ORDER BY id)"));
  sqlite3_close(d);
  return s;
}

/* An old database is upgraded: its runs are kept as they were recorded,
   and get their health figures by being run again, bit for bit. */
static void test_old_schema(void **state) {
  (void)state;
  const char *file = study("tiny1", one), *db = fmt("%s/old.sqlite", tmp);
  char dbp[256];  /* fmt's buffers are reused */
  snprintf(dbp, sizeof dbp, "%s", db);
  expect_ok(run_study(file, dbp, fmt("%s/old", tmp), "2"));
  sqlite3 *d = open_db(dbp);
  char *ref = all_figures(d);
  sqlite3_close(d);
  downgrade(dbp);
  char *before = recorded(dbp);
  expect_ok(run_study(file, dbp, fmt("%s/old", tmp), "2"));
  char *out = read_all(fmt("%s/stdout", tmp)), *err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, fmt("upgraded the database from schema version 1 to %d (a "
                                  "table of health figures; an epoch's train loss may be NULL, "
                                  "when it took no training step; the validation figures of "
                                  "runs and epochs, and the epoch early stopping keeps; each "
                                  "run says which code trained it, from now on)",
                                  ST_DB_SCHEMA)));
  assert_non_null(strstr(out, "6 already in"));
  assert_non_null(strstr(out, "6 of them recorded without health figures"));
  d = open_db(dbp);
  assert_int_equal(query_int(d, "PRAGMA user_version"), ST_DB_SCHEMA);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code IS NULL"), 6);
  char *now = all_figures(d), *after = recorded(dbp);
  assert_string_equal(now, ref);        /* the health figures are there, the same */
  assert_string_equal(after, before);   /* and no run was recorded anew */
  sqlite3_close(d);
  free(out), free(err), free(now), free(after);
  expect_ok(run_study(file, dbp, fmt("%s/old", tmp), "2"));
  out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "all 6 already in"));
  free(out), free(ref), free(before);
}

/* A run of an old database that does not repeat keeps its figures and
   gets no health figures, with a warning; a newer schema is refused. */
static void test_old_schema_mismatch(void **state) {
  (void)state;
  const char *file = study("tiny1", one);
  char db[256];
  snprintf(db, sizeof db, "%s/mismatch.sqlite", tmp);
  expect_ok(run_study(file, db, fmt("%s/mismatch", tmp), "2"));
  downgrade(db);
  db_exec(db, "UPDATE epochs SET test_loss = 1.5 WHERE run_id = 3 AND epoch = 2");
  expect_ok(run_study(file, db, fmt("%s/mismatch", tmp), "2"));
  char *err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, "warning: "));
  assert_non_null(strstr(err, "run 3, recorded without health figures, did not repeat bit for "
                              "bit when run again (epoch 2's figures differ)"));
  free(err);
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 6);
  assert_int_equal(query_int(d, "SELECT count(DISTINCT run_id) FROM health"), 5);
  assert_int_equal(query_int(d, "SELECT count(*) FROM health WHERE run_id = 3"), 0);
  assert_int_equal(query_int(d, "SELECT test_loss = 1.5 FROM epochs WHERE run_id = 3 AND "
                                "epoch = 2"), 1);
  sqlite3_close(d);
  db_exec(db, fmt("PRAGMA user_version = %d", ST_DB_SCHEMA + 1));
  char *before = recorded(db);
  /* the user's error: another --db */
  assert_int_equal(run_study(file, db, fmt("%s/mismatch", tmp), "2"), 2);
  err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, fmt("the database's schema is version %d, newer than this "
                                  "mlpc's (%d)", ST_DB_SCHEMA + 1, ST_DB_SCHEMA)));
  char *after = recorded(db);
  assert_string_equal(after, before);
  d = open_db(db);
  assert_int_equal(query_int(d, "PRAGMA user_version"), ST_DB_SCHEMA + 1);
  sqlite3_close(d);
  free(err), free(before), free(after);
}

/* Runs that take no training step (one training sample under BatchNorm)
   have no train loss: NULL in the database, n/a in the report, an empty
   field in the CSV files. Recorded into a database of schema version 2,
   whose epochs needed a train loss: it is upgraded, keeping every row. */
static void test_no_step(void **state) {
  (void)state;
  char db[256], data[256], dir[256];
  snprintf(db, sizeof db, "%s/nostep.sqlite", tmp);
  snprintf(data, sizeof data, "%s/one_sample", tmp);
  snprintf(dir, sizeof dir, "%s/nostep", tmp);
  assert_int_equal(mkdir(data, 0700), 0);
  assert_int_equal(util_idx_set(data, 1, 3, 4), 0);
  expect_ok(run_study(study("tiny1", one), db, fmt("%s/one", dir), "2"));
  downgrade_to(db, 2);
  sqlite3 *d = open_db(db);
  long long epochs = query_int(d, "SELECT count(*) FROM epochs");
  sqlite3_close(d);
  const char *nostep = fmt("{\"name\": \"nostep\", \"base\": {\"input\": 16, \"hidden\": "
                           "[8], \"norm\": \"batchnorm\", \"epochs\": 2, \"data\": \"%s\"}, "
                           "\"vary\": {\"activation\": [\"tanh\", \"relu\"]}, \"seeds\": [1, 2]}\n",
                           data);
  expect_ok(run_study(study("nostep", nostep), db, dir, "2"));
  char *err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, fmt("upgraded the database from schema version 2 to %d (an "
                                  "epoch's train loss may be NULL, when it took no training "
                                  "step; the validation figures of runs and epochs, and the "
                                  "epoch early stopping keeps; each run says which code "
                                  "trained it, from now on); its 6 runs are kept\n",
                                  ST_DB_SCHEMA)));
  d = open_db(db);
  assert_int_equal(query_int(d, "PRAGMA user_version"), ST_DB_SCHEMA);
  assert_int_equal(query_int(d, "SELECT count(*) FROM epochs WHERE train_loss IS NOT NULL"),
                   epochs);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE status = 'finished' AND "
                                "train_loss IS NULL AND test_loss IS NOT NULL"), 4);
  assert_int_equal(query_int(d, "SELECT count(*) FROM epochs WHERE train_loss IS NULL"), 8);
  sqlite3_close(d);
  char *md = read_all(fmt("%s/report.md", dir)), *sum = read_all(fmt("%s/summary.csv", dir));
  char *runs = read_all(fmt("%s/runs.csv", dir)), *f[16];
  assert_non_null(strstr(md, "| activation=relu | 2 | 0 | "));
  assert_non_null(strstr(md, " | n/a |\n"));
  assert_non_null(strstr(md, "Train loss n/a: the runs took no training step"));
  assert_non_null(strstr(runs, ",finished,2,,"));
  assert_int_equal(split_csv(strchr(sum, '\n') + 1, f, 16), 14);
  assert_string_equal(f[10], "");  /* train_loss_mean */
  assert_true(strlen(f[6]) > 0);   /* test_loss_mean */
  free(err), free(md), free(sum), free(runs);
}

/* Runs a study with a backend into db and tables dir, in the current
   directory, with MLPC_TEST_SWITCH_AFTER set to knob (NULL: unset). */
static void run_backend(const char *file, const char *db, const char *backend,
                        const char *knob) {
  const char *args[] = {file, "--run", "--backend", backend, "--jobs", "2", "--db", db,
                        "--out", fmt("%s/out-%s", tmp, backend), NULL};
  if (knob)
    setenv("MLPC_TEST_SWITCH_AFTER", knob, 1);
  int status = run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args);
  unsetenv("MLPC_TEST_SWITCH_AFTER");
  expect_ok(status);
}

/* The figures of every run, by model and seed (not by key, which names
   the backend's code). */
static char *by_model(const char *db) {
  sqlite3 *d = open_db(db);
  char *f = keyed_figures(d, "r.model");
  sqlite3_close(d);
  return f;
}

/* Runs file as a tcc study into database a, then tiered, the switch
   forced after 5 calls, into b: the same figures, bit for bit, and some
   runs moved to gcc's code. Returns b, open. */
static sqlite3 *tiered_as_tcc(const char *file, const char *a, const char *b) {
  run_backend(file, a, "tcc", NULL);
  run_backend(file, b, "tiered", "5");
  char *fa = by_model(a), *fb = by_model(b);
  assert_true(strlen(fa) > 0);
  assert_string_equal(fa, fb);
  free(fa), free(fb);
  sqlite3 *d = open_db(b);
  assert_true(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc, then gcc'") > 0);
  return d;
}

/* A tiered study, the switch forced after 5 calls (step 6 of epoch 1):
   a tcc study's figures, bit for bit; its runs are a gcc study's. A
   worker's next run of a code it has moved to gcc's starts there. */
static void test_tiered(void **state) {
  (void)state;
  const char *file = study("tiny1", one);
  char a[256], b[256], c[256];
  snprintf(a, sizeof a, "%s/tcc.sqlite", tmp);
  snprintf(b, sizeof b, "%s/tiered.sqlite", tmp);
  snprintf(c, sizeof c, "%s/gcc.sqlite", tmp);
  sqlite3 *d = tiered_as_tcc(file, a, b);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE backend = 'tiered' AND (code = "
                                "'tcc, then gcc' AND gcc_epoch = 1 AND gcc_step = 6 AND "
                                "gcc_test_batch IS NULL OR code = 'gcc' AND gcc_epoch IS NULL)"), 6);
  sqlite3_close(d);
  run_backend(file, b, "gcc", NULL);  /* the same runs */
  assert_true(file_has(fmt("%s/stdout", tmp), "all 6 already in"));
  run_backend(file, c, "gcc", NULL);
  run_backend(file, c, "tiered", NULL);
  assert_true(file_has(fmt("%s/stdout", tmp), "all 6 already in"));
  d = open_db(c);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code = 'gcc' AND gcc_epoch "
                                "IS NULL"), 6);
  sqlite3_close(d);
}

/* A tiered study of models with a schedule, a validation split and
   early stopping, the switch forced after 5 calls (step 6 of epoch 1):
   a tcc study's figures, validation figures and kept epochs, bit for
   bit. */
static void test_tiered_recipe(void **state) {
  (void)state;
  const char *recipe = "{\"name\": \"rec\", \"base\": {\"hidden\": [16], \"epochs\": 6, "
                       "\"max_batches\": 10, \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.5, "
                       "\"momentum\": 0.9}, \"validation\": 0.1, \"early_stopping\": "
                       "{\"patience\": 1}}, \"vary\": {\"schedule\": [{\"type\": \"cosine\", "
                       "\"T_max\": 3, \"warmup\": 4}, {\"type\": \"onecycle\", \"max_lr\": "
                       "1.0}]}, \"seeds\": [1, 2]}\n";
  const char *file = study("rec", recipe);
  char a[256], b[256];
  snprintf(a, sizeof a, "%s/rec-tcc.sqlite", tmp);
  snprintf(b, sizeof b, "%s/rec-tiered.sqlite", tmp);
  sqlite3 *d = tiered_as_tcc(file, a, b);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE best_epoch IS NOT NULL AND "
                                "val_loss IS NOT NULL AND (code = 'tcc, then gcc' AND gcc_epoch "
                                "= 1 AND gcc_step = 6 OR code = 'gcc')"), 4);
  sqlite3_close(d);
}

/* A tiered study whose gcc fails (a stand-in, first on PATH, in a
   directory with an empty cache): a warning per model, and every run on
   tcc, with tcc's figures. */
static void test_tiered_gcc_fails(void **state) {
  (void)state;
  const char *file = study("tiny1", one);
  char a[256], b[256], bin[256], path[8192], *path0 = strdup(getenv("PATH"));
  snprintf(a, sizeof a, "%s/tcc.sqlite", tmp);
  snprintf(b, sizeof b, "%s/failed.sqlite", tmp);
  snprintf(bin, sizeof bin, "%s/bin", tmp);
  mkdir(bin, 0700);
  const char *script = "#!/bin/sh\necho 'x.c:1:2: error: no good' >&2\nexit 3\n";
  assert_int_equal(util_write(fmt("%s/gcc", bin), script, strlen(script)), 0);
  assert_int_equal(chmod(fmt("%s/gcc", bin), 0755), 0);
  snprintf(path, sizeof path, "%s:%s", bin, path0);
  setenv("PATH", path, 1);
  setenv("MLPC_DATA", MLPC_SOURCE_DIR "/data", 1);
  assert_int_equal(chdir(tmp), 0);
  run_backend(file, b, "tiered", "5");
  assert_int_equal(chdir(MLPC_SOURCE_DIR), 0);
  setenv("PATH", path0, 1);
  unsetenv("MLPC_DATA");
  char *err = read_all(fmt("%s/stderr", tmp));
  if (!strstr(err, "mlpc: warning: norm=batchnorm: gcc failed (exit 3) on ") ||
      !strstr(err, "; its runs go on with tcc's code, which gives the same results\n"))
    fail_msg("no warning:\n%s", err);
  char *fa = by_model(a), *fb = by_model(b);
  assert_string_equal(fa, fb);
  sqlite3 *d = open_db(b);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc'"), 6);
  sqlite3_close(d);
  free(err), free(fa), free(fb), free(path0);
}

/* Models with a validation split under early stopping: 4 runs. */
static const char val_study[] =
  "{\"name\": \"val\", \"base\": {\"hidden\": [16], \"epochs\": 8, \"max_batches\": 10, "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.5}, \"validation\": 0.1, \"early_stopping\": "
  "{\"patience\": 1}}, \"vary\": {\"label_smoothing\": [0, 0.2]}, \"seeds\": [1, 2]}\n";

/* The validation figures of every run and epoch that has them. */
static char *val_figures(const char *db) {
  sqlite3 *d = open_db(db);
  char *s = strdup(query_text(d, "SELECT (SELECT group_concat(id || ' ' || val_loss || ' ' || "
                                 "val_acc || ' ' || best_epoch, ';') FROM (SELECT * FROM runs "
                                 "WHERE val_loss IS NOT NULL ORDER BY id)) || ' / ' || (SELECT "
                                 "group_concat(run_id || ' ' || epoch || ' ' || val_loss || ' ' "
                                 "|| val_acc, ';') FROM (SELECT * FROM epochs WHERE val_loss IS "
                                 "NOT NULL ORDER BY run_id, epoch))"));
  sqlite3_close(d);
  return s;
}

/* A database of schema ST_DB_SCHEMA_CODE - 1 (the validation figures, not
   the code) is upgraded: its runs are kept as recorded, their validation
   figures with them, and say nothing of their code (NULL); the runs
   recorded after it do. One of that version with the code columns and
   without the validation ones (as mlpc's tiered builds before the
   validation split wrote it) gets the validation columns, its code kept. */
static void test_schema_code(void **state) {
  (void)state;
  char db[256];
  snprintf(db, sizeof db, "%s/v4.sqlite", tmp);
  expect_ok(run_study(study("val", val_study), db, fmt("%s/v4", tmp), "2"));
  downgrade_to(db, ST_DB_SCHEMA_CODE - 1);
  char *before = recorded(db), *vals = val_figures(db);
  assert_true(strlen(vals) > 10);
  expect_ok(run_study(study("tiny1", one), db, fmt("%s/v4", tmp), "2"));
  char *err = read_all(fmt("%s/stderr", tmp)), *after = recorded(db), *vals2 = val_figures(db);
  assert_non_null(strstr(err, fmt("upgraded the database from schema version %d to %d (each "
                                  "run says which code trained it, from now on); its 4 runs "
                                  "are kept\n", ST_DB_SCHEMA_CODE - 1, ST_DB_SCHEMA)));
  assert_int_equal(strncmp(after, before, strlen(before)), 0);  /* the old runs as they were */
  assert_string_equal(vals2, vals);
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "PRAGMA user_version"), ST_DB_SCHEMA);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code IS NULL AND best_epoch "
                                "IS NOT NULL"), 4);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc'"), 6);
  sqlite3_close(d);
  db_exec(db, fmt("%s PRAGMA user_version = %d", tables_v3, ST_DB_SCHEMA_CODE - 1));
  expect_ok(run_study(study("tiny1", one), db, fmt("%s/v4", tmp), "2"));
  free(err), err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, fmt("upgraded the database from schema version %d to %d (the "
                                  "validation figures of runs and epochs, and the epoch early "
                                  "stopping keeps); its 10 runs are kept\n",
                                  ST_DB_SCHEMA_CODE - 1, ST_DB_SCHEMA)));
  d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc' AND val_loss IS "
                                "NULL"), 6);
  sqlite3_close(d);
  free(err), free(before), free(after), free(vals), free(vals2);
}

/* runs.csv's kept column (the last of 15): 1 on exactly the epoch each
   run's best_epoch in the database names, once for each of its runs. */
static void check_kept(const char *db, char *runs, int nruns) {
  sqlite3 *d = open_db(db);
  char *f[16];
  int kept = 0;
  for (char *line = strchr(runs, '\n') + 1, *next; *line; line = next) {
    next = strchr(line, '\n') + 1;  /* before split_csv writes over the line */
    assert_int_equal(split_csv(line, f, 16), 15);
    int best = query_int(d, fmt("SELECT best_epoch FROM runs WHERE id = %s", f[4]));
    assert_int_equal(atoi(f[14]), atoi(f[6]) == best);
    kept += atoi(f[14]);
  }
  assert_int_equal(kept, nruns);
  sqlite3_close(d);
}

/* A study whose experiments hold out a validation split, under early
   stopping, into a database of schema version ST_DB_SCHEMA_VAL - 1: upgraded, its runs
   kept; the new runs' validation figures per run and per epoch, their
   final figures those of the epoch kept; the tables show them, and the
   ranking is on the validation loss, the test loss beside it. */
static void test_validation_study(void **state) {
  (void)state;
  char db[256], dir[256];
  snprintf(db, sizeof db, "%s/val.sqlite", tmp);
  snprintf(dir, sizeof dir, "%s/val", tmp);
  expect_ok(run_study(study("tiny1", one), db, fmt("%s/one", dir), "2"));
  downgrade_to(db, ST_DB_SCHEMA_VAL - 1);
  expect_ok(run_study(study("val", val_study), db, dir, "2"));
  char *err = read_all(fmt("%s/stderr", tmp)), *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(err, fmt("upgraded the database from schema version %d to %d (the "
                                  "validation figures of runs and epochs, and the epoch early "
                                  "stopping keeps; each run says which code trained it, from "
                                  "now on); its 6 runs are kept\n", ST_DB_SCHEMA_VAL - 1,
                                  ST_DB_SCHEMA)));
  assert_non_null(strstr(out, "ranking by mean final validation loss (the test loss beside "
                              "it)"));
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "PRAGMA user_version"), ST_DB_SCHEMA);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE val_loss IS NULL AND "
                                "best_epoch IS NULL"), 6);  /* the old ones */
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs r JOIN epochs e ON e.run_id = r.id "
                                "AND e.epoch = r.best_epoch WHERE r.val_loss = e.val_loss AND "
                                "r.test_loss = e.test_loss AND r.test_acc = e.test_acc"), 4);
  assert_true(query_int(d, "SELECT count(*) FROM runs WHERE best_epoch < epochs") >= 1);
  assert_int_equal(query_int(d, "SELECT count(*) FROM epochs e JOIN runs r ON r.id = e.run_id "
                                "WHERE r.val_loss IS NOT NULL AND e.val_loss IS NULL"), 0);
  sqlite3_close(d);
  char *md = read_all(fmt("%s/report.md", dir)), *sum = read_all(fmt("%s/summary.csv", dir));
  char *runs = read_all(fmt("%s/runs.csv", dir));
  assert_non_null(strstr(md, "| final validation loss | final test loss | test accuracy"));
  assert_non_null(strstr(md, "the ranking and every test below are on the **validation "
                             "loss**"));
  assert_non_null(strstr(md, "(under early stopping, of the epoch with the least validation "
                             "loss, whose weights the run keeps)"));
  assert_non_null(strstr(sum, ",val_loss_mean,val_loss_std,val_acc_mean,val_acc_std\n"));
  assert_non_null(strstr(runs, "seconds,diverged_step,val_loss,val_acc,kept\n"));
  check_kept(db, runs, 4);
  char *page = read_all(fmt("%s/report.html", dir));
  assert_non_null(strstr(page, " kept)"));
  assert_non_null(strstr(page, "Early stopping kept epoch "));
  free(err), free(out), free(md), free(sum), free(runs), free(page);
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

/* A file that is not a database: a clear error naming it, exit 2 (the
   user's), the file untouched. */
static void test_corrupt_db(void **state) {
  (void)state;
  char db[256];
  snprintf(db, sizeof db, "%s/corrupt.sqlite", tmp);
  FILE *f = fopen(db, "wb");
  assert_non_null(f);
  for (int i = 0; i < 4096; i++)
    fputc((i * 7919) % 251, f);
  fclose(f);
  int status = run_study(study("tiny1", one), db, fmt("%s/corrupt", tmp), "2");
  char *e = read_all(fmt("%s/stderr", tmp));
  assert_int_equal(status, 2);
  assert_non_null(strstr(e, db));
  assert_non_null(strstr(e, "not a database"));
  free(e);
  f = fopen(db, "rb");
  assert_non_null(f);
  for (int i = 0; i < 4096; i++)
    assert_int_equal(fgetc(f), (i * 7919) % 251);
  assert_int_equal(fgetc(f), EOF);
  fclose(f);
}

/* A whole file's bytes (len of them), or NULL. */
static char *file_bytes(const char *path, long *len) {
  FILE *f = fopen(path, "rb");
  char *buf = f ? malloc(1 << 20) : NULL;
  *len = buf ? (long)fread(buf, 1, 1 << 20, f) : -1;
  if (f)
    fclose(f);
  return buf;
}

/* A study on db must refuse it with exit 2 and the message, leaving its
   bytes as they were and no file beside it but those there before
   (beside: a journal left by another program). */
static void refused_beside(const char *db, const char *why, const char *beside) {
  long before, after;
  char *was = file_bytes(db, &before);
  assert_non_null(was);
  assert_int_equal(run_study(study("tiny1", one), db, fmt("%s/foreign", tmp), "2"), 2);
  char *e = read_all(fmt("%s/stderr", tmp)), *now = file_bytes(db, &after);
  if (!strstr(e, fmt("%s: not an mlpc results database", db)) || !strstr(e, why))
    fail_msg("expected '%s: not an mlpc results database' and '%s'; mlpc said:\n%s", db, why,
             e);
  assert_int_equal(after, before);
  assert_memory_equal(now, was, (size_t)before);
  assert_int_equal(access(fmt("%s-wal", db), F_OK), -1);
  assert_int_equal(access(fmt("%s-journal", db), F_OK), beside ? 0 : -1);
  free(e), free(was), free(now);
}

/* expect_refused with nothing beside db before. */
static void expect_refused(const char *db, const char *why) {
  refused_beside(db, why, NULL);
}

/* A database is mlpc's only when it says so (application_id), or is
   empty: another program's is refused untouched, whatever it holds; one
   written by mlpc before the id (schema 1 or 2, no id) is taken when its
   tables are exactly mlpc's, and stamped. */
static void test_foreign_db(void **state) {
  (void)state;
  char db[256], mine[256];  /* fmt's buffers are reused */
  snprintf(db, sizeof db, "%s/foreign.sqlite", tmp);
  db_exec(db, "CREATE TABLE runs (id INTEGER PRIMARY KEY, who TEXT); "
              "INSERT INTO runs (who) VALUES ('someone else')");
  expect_refused(db, "tables: runs)");
  db_exec(db, "PRAGMA user_version = 2");
  expect_refused(db, "user_version 2, tables: runs)");
  char journal[300];  /* another program's unfinished transaction beside it */
  snprintf(journal, sizeof journal, "%s-journal", db);
  FILE *j = fopen(journal, "wb");
  assert_non_null(j);
  fputs("a journal SQLite would roll back into the database", j);
  fclose(j);
  refused_beside(db, "an unfinished transaction's journal beside it", "-journal");
  remove(journal);
  remove(db);
  db_exec(db, "PRAGMA application_id = 42");  /* another program's, and empty */
  expect_refused(db, "application_id 42");
  snprintf(mine, sizeof mine, "%s/mine.sqlite", tmp);
  FILE *f = fopen(mine, "wb");  /* an empty file becomes mlpc's */
  assert_non_null(f);
  fclose(f);
  expect_ok(run_study(study("tiny1", one), mine, fmt("%s/mine", tmp), "2"));
  sqlite3 *d = open_db(mine);
  assert_int_equal(query_int(d, "PRAGMA application_id"), 0x6d6c7063);
  sqlite3_close(d);
  downgrade_to(mine, 2);
  db_exec(mine, "PRAGMA application_id = 0"); /* as mlpc wrote schema 2 */
  expect_ok(run_study(study("tiny1", one), mine, fmt("%s/mine", tmp), "2"));
  d = open_db(mine);
  assert_int_equal(query_int(d, "PRAGMA application_id"), 0x6d6c7063);
  sqlite3_close(d);
  downgrade(mine);  /* schema 1, no id */
  db_exec(mine, "PRAGMA application_id = 0");
  expect_ok(run_study(study("tiny1", one), mine, fmt("%s/mine", tmp), "2"));
  d = open_db(mine);
  assert_int_equal(query_int(d, "PRAGMA application_id"), 0x6d6c7063);
  assert_int_equal(query_int(d, "PRAGMA user_version"), ST_DB_SCHEMA); /* upgraded to ours */
  sqlite3_close(d);
  downgrade_to(mine, 2);
  db_exec(mine, "PRAGMA application_id = 0; CREATE TABLE notes (text)"); /* not only mlpc's */
  expect_refused(mine, "tables: ");
  db_exec(mine, "DROP TABLE notes; CREATE INDEX by_name ON runs (name)");
  expect_refused(mine, "user_version 2");
}

/* A database another process holds locked: after the wait, a clear error
   and nothing recorded is lost; once the lock goes, the study resumes. */
static void test_locked_db(void **state) {
  (void)state;
  char db[256];
  snprintf(db, sizeof db, "%s/locked.sqlite", tmp);
  const char *file = study("tiny1", one);
  expect_ok(run_study(file, db, fmt("%s/locked", tmp), "2"));
  sqlite3 *d = NULL;
  assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
  long long runs = query_int(d, "SELECT count(*) FROM runs");
  assert_true(runs > 0);
  assert_int_equal(sqlite3_exec(d, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
  setenv("MLPC_DB_BUSY_MS", "200", 1);
  int status = run_study(file, db, fmt("%s/locked", tmp), "2");
  unsetenv("MLPC_DB_BUSY_MS");
  char *e = read_all(fmt("%s/stderr", tmp));
  assert_int_not_equal(status, 0);
  assert_non_null(strstr(e, db));
  assert_non_null(strstr(e, "locked"));
  free(e);
  assert_int_equal(sqlite3_exec(d, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), runs);
  sqlite3_close(d);
  expect_ok(run_study(file, db, fmt("%s/locked", tmp), "2"));
  char *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "all "));
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_jobs_agree),
    cmocka_unit_test(test_resume_runs_nothing),
    cmocka_unit_test(test_shared_runs),
    cmocka_unit_test(test_diverged),
    cmocka_unit_test(test_tables_are_the_database),
    cmocka_unit_test(test_data_directory),
    cmocka_unit_test(test_health_is_a_single_run),
    cmocka_unit_test(test_arithmetic),
    cmocka_unit_test(test_old_schema),
    cmocka_unit_test(test_old_schema_mismatch),
    cmocka_unit_test(test_no_step),
    cmocka_unit_test(test_validation_study),
    cmocka_unit_test(test_flags),
    cmocka_unit_test(test_corrupt_db),
    cmocka_unit_test(test_foreign_db),
    cmocka_unit_test(test_locked_db),
    cmocka_unit_test(test_tiered),
    cmocka_unit_test(test_tiered_recipe),
    cmocka_unit_test(test_tiered_gcc_fails),
    cmocka_unit_test(test_schema_code),
  };
  return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
