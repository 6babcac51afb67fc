/*
 * test_study_adaptive.c — adaptive seeds end to end (`mlpc STUDY.json
 * --run` on data/mnist, tcc, one epoch of 5 batches):
 *
 *   - a study of three models, starting with 3 seeds, up to 8: the
 *     terminal shows the seeds added, round by round; each model gets a
 *     prefix of the seeds 0..7, the decided comparisons no more seeds than
 *     they needed and the undecided ones all 8; report.md says per
 *     comparison "decided after N seeds" or "undecided at max_seeds" and
 *     marks the ranking's orders; a second start runs nothing;
 *   - resuming: the database cut back to its first k runs, as a study
 *     killed after k runs leaves it, for several k, and started again
 *     (--jobs 1 or 2) ends with the very runs, study membership and
 *     verdicts of the uninterrupted study;
 *   - a study whose experiments all hold out a validation split decides
 *     on the validation losses, as its conclusions rank: the section
 *     says so, its means are those of the recorded validation losses,
 *     and a model short of max_seeds has every comparison decided;
 *   - tiered (the switch to gcc's code forced after 2 calls of each run,
 *     MLPC_TEST_SWITCH_AFTER): the rounds, runs, figures, membership and
 *     verdicts of the study on tcc, bit for bit, each run saying in the
 *     database that gcc's code took over; so too for the study with a
 *     validation split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "study_proc.h"

static char tmp[] = "/tmp/mlpc_adaptXXXXXX";

/* init=normal is far worse than the base; relu and tanh are close. */
static const char study_text[] =
  "{\"name\": \"ad\", \"base\": {\"hidden\": [16], \"init\": \"kaiming_normal\", "
  "\"activation\": \"tanh\", \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, "
  "\"epochs\": 1, \"max_batches\": 5}, "
  "\"vary\": {\"activation\": [\"tanh\", \"relu\"], \"init\": [\"normal\"]}, "
  "\"seeds\": [2, 0, 1], \"adaptive\": {\"max_seeds\": 8, \"alpha\": 0.05}}\n";

/* The same with a validation split in every experiment: three models
   compared on their validation losses. */
static const char val_study_text[] =
  "{\"name\": \"ad\", \"base\": {\"hidden\": [16], \"init\": \"kaiming_normal\", "
  "\"activation\": \"tanh\", \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, "
  "\"validation\": 0.1, \"epochs\": 1, \"max_batches\": 5}, "
  "\"vary\": {\"activation\": [\"tanh\", \"relu\"], \"init\": [\"normal\"]}, "
  "\"seeds\": [0, 1, 2], \"adaptive\": {\"max_seeds\": 6, \"alpha\": 0.05}}\n";

/* Runs the study file with a backend on database db, report into out;
   the exit status. */
static int run_on(const char *file, const char *backend, const char *db, const char *out,
                  const char *jobs) {
  const char *args[] = {fmt("%s/%s", tmp, file), "--run", "--backend", backend, "--jobs", jobs,
                        "--db", db, "--out", out, NULL};
  return run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args);
}

/* Runs the study on tcc, on database db, report into out; the exit
   status. */
static int run(const char *db, const char *out, const char *jobs) {
  return run_on("ad.json", "tcc", db, out, jobs);
}

/* Fails with mlpc's messages if status is not 0. */
static void expect_ok(int status) {
  if (status) {
    char *e = read_all(fmt("%s/stderr", tmp));
    fail_msg("mlpc exited %d:\n%s", status, e);
  }
}

/* report.md's section "Adaptive seeds", to its end. */
static char *adaptive_section(const char *out) {
  char *md = read_all(fmt("%s/report.md", out)), *s = strstr(md, "## Adaptive seeds");
  assert_non_null(s);
  memmove(md, s, strlen(s) + 1);
  return md;
}

/* The study's membership: experiment and seed of every row. */
static char *members(sqlite3 *d) {
  sqlite3_stmt *st = NULL;
  size_t cap = 1 << 14, len = 0;
  char *out = calloc(1, cap);
  sqlite3_prepare_v2(d, "SELECT experiment, seed FROM study_runs WHERE study = 'ad' ORDER BY "
                        "experiment, seed", -1, &st, NULL);
  while (sqlite3_step(st) == SQLITE_ROW)
    append(&out, &len, &cap, "%s %lld\n", sqlite3_column_text(st, 0),
           sqlite3_column_int64(st, 1));
  sqlite3_finalize(st);
  return out;
}

/* The seeds of one experiment: they must be 0 .. n - 1; n. */
static int seeds_of(sqlite3 *d, const char *exp) {
  int n = (int)query_int(d, fmt("SELECT count(*) FROM study_runs WHERE study = 'ad' AND "
                                "experiment = '%s'", exp));
  assert_int_equal(query_int(d, fmt("SELECT max(seed) FROM study_runs WHERE study = 'ad' AND "
                                    "experiment = '%s'", exp)), n - 1);
  assert_in_range(n, 3, 8);
  return n;
}

static int setup(void **state) {
  (void)state;
  if (!mkdtemp(tmp))
    return -1;
  FILE *f = fopen(fmt("%s/ad.json", tmp), "w");
  fputs(study_text, f);
  fclose(f);
  f = fopen(fmt("%s/adv.json", tmp), "w");
  fputs(val_study_text, f);
  fclose(f);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  return system(fmt("rm -rf %s", tmp));
}

/* ---- tests ---- */

/* The whole study: rounds on the terminal, seeds, verdicts, a rerun. */
static void test_end_to_end(void **state) {
  (void)state;
  const char *db = fmt("%s/full.sqlite", tmp), *out = fmt("%s/full", tmp);
  expect_ok(run(db, out, "2"));
  char *err = read_all(fmt("%s/stderr", tmp)), *so = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(err, "mlpc: adaptive: 3 of 3 comparisons undecided; another seed for "
                              "base (seed 3), activation=relu (seed 3), init=normal "
                              "(seed 3)\n"));
  assert_non_null(strstr(so, "adaptive: 3 starting seeds, up to 8 a model (level 0.05)"));
  assert_non_null(strstr(so, "\nadaptive seeds (e-value at least 60 decides):\n"));
  sqlite3 *d = open_db(db);
  int tanh = seeds_of(d, "activation=tanh"), relu = seeds_of(d, "activation=relu"),
      normal = seeds_of(d, "init=normal");
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), tanh + relu + normal);
  sqlite3_close(d);
  char *md = adaptive_section(out);
  /* a clear difference is decided early; a close one stays undecided */
  assert_true(normal < 8);
  assert_non_null(strstr(md, "| init=normal against base |"));
  assert_non_null(strstr(md, fmt("decided after %d seeds: base lower", normal)));
  assert_int_equal(tanh, 8);
  assert_int_equal(relu, 8);
  assert_non_null(strstr(md, "| activation=relu against base | 8 and 8 | undecided at "
                             "max_seeds"));
  assert_non_null(strstr(md, "1. base: 8 seeds, mean final test loss "));
  assert_non_null(strstr(md, "; below base: not established\n3. init=normal: "));
  assert_non_null(strstr(md, fmt("; below activation=relu: **established** after %d seeds\n",
                                 normal)));
  expect_ok(run(db, out, "2"));
  free(so);
  so = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(so, fmt("all %d already in", tanh + relu + normal)));
  assert_null(strstr(so, "to run on"));
  free(err), free(so), free(md);
}

/* Cut back to its first k runs and started again, the study ends as if
   never interrupted. */
static void test_resume(void **state) {
  (void)state;
  const char *full = fmt("%s/full.sqlite", tmp);
  expect_ok(run(full, fmt("%s/full", tmp), "2"));
  sqlite3 *d = open_db(full);
  long long total = query_int(d, "SELECT count(*) FROM runs");
  char *figs = all_figures(d), *memb = members(d), *md = adaptive_section(fmt("%s/full", tmp));
  sqlite3_close(d);
  long long cuts[] = {1, 9, 10, 13, total - 1};
  for (int i = 0; i < 5; i++) {
    const char *db = fmt("%s/cut%d.sqlite", tmp, i), *out = fmt("%s/cut%d", tmp, i);
    assert_int_equal(system(fmt("cp %s %s", full, db)), 0);
    assert_int_equal(sqlite3_open(db, &d), SQLITE_OK);
    const char *cut = fmt("DELETE FROM health WHERE run_id > %lld; DELETE FROM epochs WHERE "
                          "run_id > %lld; DELETE FROM study_runs WHERE run_id > %lld; DELETE "
                          "FROM runs WHERE id > %lld", cuts[i], cuts[i], cuts[i], cuts[i]);
    assert_int_equal(sqlite3_exec(d, cut, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(d);
    expect_ok(run(db, out, i % 2 ? "1" : "2"));
    d = open_db(db);
    char *f2 = all_figures(d), *m2 = members(d), *md2 = adaptive_section(out);
    assert_string_equal(f2, figs);
    assert_string_equal(m2, memb);
    assert_string_equal(md2, md);
    sqlite3_close(d);
    free(f2), free(m2), free(md2);
  }
  free(figs), free(memb), free(md);
}

/* The lines of stderr that say how the rounds went ("mlpc: adaptive:"). */
static char *rounds_said(void) {
  char *err = read_all(fmt("%s/stderr", tmp)), *out = calloc(1, strlen(err) + 1);
  for (char *l = strtok(err, "\n"); l; l = strtok(NULL, "\n"))
    if (!strncmp(l, "mlpc: adaptive:", 15))
      strcat(strcat(out, l), "\n");
  free(err);
  return out;
}

/* The figures of every run by its model and seed (the key names the
   backend's code); its membership; the verdicts. */
static char *outcome(const char *db, const char *out) {
  sqlite3 *d = open_db(db);
  char *f = keyed_figures(d, "r.model"), *m = members(d), *md = adaptive_section(out);
  char *all = calloc(1, strlen(f) + strlen(m) + strlen(md) + 1);
  strcat(strcat(strcpy(all, f), m), md);
  sqlite3_close(d);
  free(f), free(m), free(md);
  return all;
}

/* A tiered adaptive study of file, every run moved to gcc's code after 2
   calls (the third training step): the tcc study's rounds, figures, runs
   and verdicts. */
static void tiered_agrees(const char *file) {
  const char *t = fmt("%s/t-%s.sqlite", tmp, file), *g = fmt("%s/g-%s.sqlite", tmp, file);
  char tdb[256], gdb[256];
  snprintf(tdb, sizeof tdb, "%s", t), snprintf(gdb, sizeof gdb, "%s", g);
  expect_ok(run_on(file, "tcc", tdb, fmt("%s/t", tmp), "2"));
  char *rounds = rounds_said(), *want = outcome(tdb, fmt("%s/t", tmp));
  setenv("MLPC_TEST_SWITCH_AFTER", "2", 1);
  int status = run_on(file, "tiered", gdb, fmt("%s/g", tmp), "2");
  unsetenv("MLPC_TEST_SWITCH_AFTER");
  expect_ok(status);
  char *err = rounds_said(), *got = outcome(gdb, fmt("%s/g", tmp));
  assert_string_equal(got, want);
  assert_true(strlen(rounds) > 0);
  assert_string_equal(err, rounds);
  sqlite3 *d = open_db(gdb);
  long long n = query_int(d, "SELECT count(*) FROM runs");
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc, then gcc' AND "
                                "gcc_epoch = 1 AND gcc_step = 3 OR code = 'gcc'"), n);
  assert_true(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc, then gcc'") > 0);
  sqlite3_close(d);
  free(rounds), free(want), free(err), free(got);
}

/* Tiered, the study and the one with a validation split. */
static void test_tiered(void **state) {
  (void)state;
  tiered_agrees("ad.json");
  tiered_agrees("adv.json");
}

/* Whether a row of the table of comparisons has model name in an
   undecided comparison. */
static int undecided_row(const char *md, const char *name) {
  char line[1024];
  for (const char *l = md; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0)) {
    snprintf(line, sizeof line, "%.*s", (int)strcspn(l, "\n"), l);
    if (line[0] == '|' && strstr(line, fmt(" %s ", name)) && strstr(line, "undecided"))
      return 1;
  }
  return 0;
}

/* The mean recorded validation loss of an experiment's runs, as the
   report prints it. */
static const char *val_mean(sqlite3 *d, const char *exp) {
  return query_text(d, fmt("SELECT printf('%%.4f', avg(r.val_loss)) FROM runs r JOIN "
                           "study_runs m ON m.run_id = r.id WHERE m.study = 'ad' AND "
                           "m.experiment = '%s'", exp));
}

/* Every experiment holding out a split: the comparisons are on the
   validation losses, in the rounds as in the report (a model the rounds
   left short of max_seeds is decided everywhere). */
static void test_validation(void **state) {
  (void)state;
  const char *db = fmt("%s/val.sqlite", tmp), *out = fmt("%s/val", tmp);
  static const char *const exps[] = {"activation=tanh", "activation=relu", "init=normal"};
  expect_ok(run_on("adv.json", "tcc", db, out, "2"));
  char *md = adaptive_section(out);
  assert_non_null(strstr(md, "ranks of the two models' final validation losses"));
  sqlite3 *d = open_db(db);
  for (int i = 0; i < 3; i++) {
    int n = (int)query_int(d, fmt("SELECT count(*) FROM study_runs WHERE study = 'ad' AND "
                                  "experiment = '%s'", exps[i]));
    const char *name = i ? exps[i] : "base";
    assert_non_null(strstr(md, fmt("%s: %d seeds, mean final validation loss %s", name, n,
                                   val_mean(d, exps[i]))));
    if (n < 6)
      assert_false(undecided_row(md, name));
  }
  sqlite3_close(d);
  free(md);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_end_to_end),
    cmocka_unit_test(test_resume),
    cmocka_unit_test(test_validation),
    cmocka_unit_test(test_tiered),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
