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
 * A worker that dies under a run (SIGKILL) costs nothing: the run goes to
 * another worker and the study ends as the reference did. A run that
 * kills every worker it is handed to (MLPC_TEST_WORKER_DIES) is given up
 * after two, reported and not recorded, exit status 1; the rest are.
 *
 * The moments are drawn from a seed printed at the start; MLPC_KILL_SEED
 * repeats a sequence.
 */
#include <dirent.h>
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
  long long before = 0; /* a kill before the study made its database: none */
  if (access(db, F_OK) == 0) {
    sqlite3 *d = open_db(db);
    assert_non_null(d);
    before = query_int(d, "SELECT count(*) FROM runs");
    assert_string_equal(query_text(d, "PRAGMA integrity_check"), "ok");
    sqlite3_close(d);
  }
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

/* A worker of study pid (a child of it); 0 if none. */
static pid_t worker_of(pid_t pid) {
  DIR *d = opendir("/proc");
  pid_t found = 0;
  for (struct dirent *e; d && !found && (e = readdir(d));) {
    pid_t p = (pid_t)atoi(e->d_name);
    found = p > 0 && parent_of(p) == pid ? p : 0;
  }
  if (d)
    closedir(d);
  return found;
}

/* Waits until the study's stderr holds text; 0 if the study ended first. */
static int wait_said(pid_t pid, const char *text) {
  for (;;) {
    char *err = read_all(fmt("%s/stderr", tmp));
    int found = strstr(err, text) != NULL;
    free(err);
    if (found)
      return 1;
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return 0;
    sleep_s(0.01);
  }
}

/* A worker killed once its first run is recorded (it is on its next, or
   is handed one it never reads): that run goes to another worker, and
   the study ends as the reference. */
static void test_worker_killed(void **state) {
  (void)state;
  char db[256]; /* fmt's buffers are reused while the study runs */
  snprintf(db, sizeof db, "%s/worker.sqlite", tmp);
  pid_t pid = start(db);
  assert_true(wait_said(pid, "mlpc: [1/"));
  pid_t w = worker_of(pid);
  assert_true(w > 0);
  kill(w, SIGKILL);
  int status = wait_status(pid);
  char *err = read_all(fmt("%s/stderr", tmp));
  if (status || !strstr(err, " died (signal 9); ") || !strstr(err, "goes to another worker"))
    fail_msg("exit status %d:\n%s", status, err);
  free(err);
  expect_no_workers();
  expect_complete(db);
}

/* The runs of seed 3 kill every worker they are handed to: each is lost
   with two workers and given up; the other 36 are recorded. */
static void test_run_lost_twice(void **state) {
  (void)state;
  char db[256]; /* fmt's buffers are reused while the study runs */
  snprintf(db, sizeof db, "%s/lost.sqlite", tmp);
  setenv("MLPC_TEST_WORKER_DIES", "3", 1);
  pid_t pid = start(db);
  unsetenv("MLPC_TEST_WORKER_DIES");
  assert_int_equal(wait_status(pid), 1);
  expect_no_workers();
  char *err = read_all(fmt("%s/stderr", tmp));
  const char *lost = "seed 3: worker ", *given = "; this run was lost with 2 workers and is "
                     "not recorded";
  int n = 0;
  for (const char *p = err; (p = strstr(p, given)); p++)
    n++;
  if (n != RUNS / 4 || !strstr(err, lost) || !strstr(err, "goes to another worker") ||
      !strstr(err, "12 of 48 runs failed or were not done"))
    fail_msg("%d given up:\n%s", n, err);
  free(err);
  sqlite3 *d = open_db(db);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), RUNS - RUNS / 4);
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE seed = 3"), 0);
  sqlite3_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kill_and_resume),
    cmocka_unit_test(test_ctrl_c),
    cmocka_unit_test(test_worker_killed),
    cmocka_unit_test(test_run_lost_twice),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
