/*
 * test_study_kill.c — results are never lost: a study on data/mnist (48
 * short runs, tcc, 2 workers) is killed with SIGKILL at random moments
 * fifty times in all and started again each time; then it runs to the
 * end. Every run must be in the database exactly once, whole (all its
 * epochs and health figures), with bitwise the figures of an
 * uninterrupted reference run,
 * and PRAGMA integrity_check must say ok. The workers of a killed study
 * must die with it. Ctrl-C (SIGINT to the process group) must stop the
 * study cleanly, with exit status 130 and a message on how to resume.
 *
 * The moments are drawn from a seed printed at the start; MLPC_KILL_SEED
 * repeats a sequence.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <cmocka.h>
#include "study_proc.h"

enum { RUNS = 48, EPOCHS = 3, KILLS = 50 };

static char tmp[] = "/tmp/mlpc_killXXXXXX";
static char *reference;   /* the uninterrupted run's figures */
static double ref_secs;   /* and how long it took */

static const char study_text[] =
  "{\"name\": \"kill\", \"base\": {\"hidden\": [64], \"init\": \"kaiming_normal\", "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 3, \"max_batches\": 40}, "
  "\"mode\": \"grid\", \"vary\": {\"activation\": [\"tanh\", \"relu\", \"sigmoid\", \"gelu\"], "
  "\"norm\": [\"none\", \"batchnorm\", \"layernorm\"]}, \"seeds\": [1, 2, 3, 4]}\n";

/* Starts the study on database db. */
static pid_t start(const char *db) {
  const char *args[] = {fmt("%s/kill.json", tmp), "--run", "--backend", "tcc", "--jobs", "2",
                        "--db", db, "--out", fmt("%s/out", tmp), NULL};
  return start_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args);
}

/* Reaps orphaned workers (this process is their subreaper); fails if any
   is still alive after five seconds. */
static void expect_no_workers(void) {
  double waited = 0;
  for (;;) {
    pid_t p = waitpid(-1, NULL, WNOHANG);
    if (p < 0 && errno == ECHILD)
      return;
    if (p == 0 && (waited += 0.01) > 5)
      fail_msg("a worker outlived its study");
    if (p == 0)
      sleep_s(0.01);
  }
}

/* Checks the database holds the whole study once, as the reference. */
static void expect_complete(const char *db) {
  sqlite3 *d = open_db(db);
  assert_non_null(d);
  assert_string_equal(query_text(d, "PRAGMA integrity_check"), "ok");
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), RUNS);
  assert_int_equal(query_int(d, "SELECT count(*) FROM (SELECT DISTINCT code_hash, seed, "
                                "data_hash, settings FROM runs)"), RUNS);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE epochs = 3 AND status = "
                                "'finished'"), RUNS);
  assert_int_equal(query_int(d, "SELECT count(*) FROM epochs"), RUNS * EPOCHS);
  assert_int_equal(query_int(d, "SELECT count(*) FROM study_runs WHERE study = 'kill'"), RUNS);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE (SELECT count(DISTINCT epoch) "
                                "FROM health WHERE run_id = runs.id) = 4"), RUNS);
  char *f = all_figures(d);
  assert_string_equal(f, reference);
  free(f);
  sqlite3_close(d);
}

static int setup(void **state) {
  (void)state;
  if (!mkdtemp(tmp))
    return -1;
  FILE *f = fopen(fmt("%s/kill.json", tmp), "w");
  fputs(study_text, f);
  fclose(f);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  const char *db = fmt("%s/ref.sqlite", tmp);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (wait_status(start(db)))
    return -1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ref_secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  sqlite3 *d = open_db(db);
  reference = all_figures(d);
  sqlite3_close(d);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  free(reference);
  return system(fmt("rm -rf %s", tmp));
}

/* One round on a fresh database: SIGKILL at random moments, start again,
   until the study finishes on its own or the round has killed `budget`
   times; then run it to the end and check it. Returns the kills made. */
static int kill_round(int round, int budget) {
  char db[256]; /* fmt's buffers are reused by start() */
  snprintf(db, sizeof db, "%s/killed%d.sqlite", tmp, round);
  int kills = 0;
  while (kills < budget) {
    pid_t pid = start(db);
    sleep_s(0.12 * ref_secs * rand() / (double)RAND_MAX);
    if (waitpid(pid, NULL, WNOHANG) == pid)
      break; /* finished before the kill */
    kill(pid, SIGKILL);
    assert_int_equal(wait_status(pid), 128 + SIGKILL);
    expect_no_workers();
    kills++;
  }
  sqlite3 *d = open_db(db);
  long long before = query_int(d, "SELECT count(*) FROM runs");
  assert_string_equal(query_text(d, "PRAGMA integrity_check"), "ok");
  sqlite3_close(d);
  printf("round %d: %d kills within %.2f s each; %lld of %d runs recorded before the "
         "last start\n", round, kills, 0.12 * ref_secs, before, RUNS);
  assert_int_equal(wait_status(start(db)), 0);
  char *out = read_all(fmt("%s/stdout", tmp));
  if (!strstr(out, fmt("%lld already in", before)))
    fail_msg("the resumed study did not say '%lld already in'; it printed:\n%s", before, out);
  free(out);
  expect_complete(db);
  return kills;
}

/* SIGKILL at random moments, start again, and again; then finish. The
   moments are drawn uniformly in [0, 0.12 T], T being the time of the
   uninterrupted run, so that kills fall all along the study whatever the
   machine's speed. A study that finishes before enough kills (a loaded
   machine makes T long) is checked, and a new round starts on a fresh
   database, until KILLS kills in all. */
static void test_kill_and_resume(void **state) {
  (void)state;
  const char *env = getenv("MLPC_KILL_SEED");
  unsigned seed = env ? (unsigned)atoi(env) : (unsigned)time(NULL) ^ (unsigned)getpid();
  printf("kill moments from MLPC_KILL_SEED=%u\n", seed);
  srand(seed);
  int kills = 0;
  for (int round = 1; kills < KILLS; round++) {
    assert_true(round <= 20);
    kills += kill_round(round, KILLS - kills);
  }
  printf("%d kills in all\n", kills);
}

/* Starts the study on db and sends Ctrl-C (SIGINT to the process group,
   as a terminal does) while runs are left: once a run has finished (the
   workers run, Ctrl-C is caught), the group is stopped, the runs recorded
   are counted, and SIGINT is sent before the group continues. Returns the
   study's pid, or 0 if it had finished every run before it was stopped. */
static pid_t start_and_interrupt(const char *db) {
  pid_t pid = start(db);
  for (;;) {
    char *err = read_all(fmt("%s/stderr", tmp));
    int started = strstr(err, "mlpc: [1/") != NULL;
    free(err);
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return 0;
    if (started)
      break;
    sleep_s(0.01);
  }
  kill(-pid, SIGSTOP);
  sqlite3 *d = open_db(db);
  long long recorded = query_int(d, "SELECT count(*) FROM runs");
  sqlite3_close(d);
  if (recorded < RUNS)
    kill(-pid, SIGINT);
  kill(-pid, SIGCONT);
  if (recorded < RUNS)
    return pid;
  assert_int_equal(wait_status(pid), 0);
  return 0;
}

/* Ctrl-C stops the workers and says how to resume; resuming finishes.
   A study that finished before it could be interrupted (a loaded machine)
   is started again on a fresh database. */
static void test_ctrl_c(void **state) {
  (void)state;
  char db[256]; /* fmt's buffers are reused below */
  pid_t pid = 0;
  for (int try = 1; !pid; try++) {
    assert_true(try <= 20);
    snprintf(db, sizeof db, "%s/ctrlc%d.sqlite", tmp, try);
    pid = start_and_interrupt(db);
  }
  assert_int_equal(wait_status(pid), 130);
  expect_no_workers();
  char *err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, "interrupted: "));
  assert_non_null(strstr(err, "run the same command again"));
  free(err);
  assert_int_equal(wait_status(start(db)), 0);
  expect_complete(db);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kill_and_resume),
    cmocka_unit_test(test_ctrl_c),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
