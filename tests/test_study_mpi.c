/*
 * test_study_mpi.c — `mpirun -n N mlpc STUDY.json --run` on this machine,
 * Open MPI over loopback only (the MCA flags below), tcc backend:
 *
 *   - 3 ranks record bitwise the runs a local --jobs 2 run of the same
 *     study records, and write the same tables but for times and run
 *     numbers. The two worker ranks run in an empty directory, with
 *     neither the study's data nor the database: all they need comes from
 *     rank 0, and they leave nothing behind;
 *   - started again, the study runs nothing; with runs deleted from the
 *     database, only those, and the figures are the same again;
 *   - the worker ranks compute in rank 0's arithmetic: a study file with
 *     "arithmetic": "strict", which they never read, records the runs of
 *     a local strict run, whose code and figures are not the fma runs';
 *   - of 3 worker ranks (mpirun --enable-recovery, MLPC_MPI_TIMEOUT=3),
 *     one killed with SIGKILL costs only its run, which another rank
 *     does; one stopped (SIGSTOP) until rank 0 has said it takes it for
 *     dead (no clock decides when it goes on) is taken back once it does.
 *     The timeout is twelve heartbeats of the rank that goes on, and the
 *     study long enough that it does not finish it within the timeout;
 *   - a data set whose images are in IDX files of 4 dimensions reaches the
 *     worker ranks, which record the runs of a local run and remove it;
 *   - an adaptive study, over rounds of runs with the ranks kept between
 *     them, records the runs and verdicts of a local run; cut back to its
 *     first runs, it goes on to the same end;
 *   - under mpirun, a model file and --jobs are refused;
 *   - tiered, each rank building its objects beside its runs and each run
 *     moved to gcc's code after 5 calls (MLPC_TEST_SWITCH_AFTER), the
 *     figures of the local tcc study, each run saying where gcc's code
 *     took over.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "study_proc.h"
#include "util.h"

#ifndef MPIEXEC
#error "MPIEXEC: the path of mpirun (tests/CMakeLists.txt)"
#endif

static char tmp[] = "/tmp/mlpc_mpiXXXXXX";
static const char *backend = "tcc";     /* the studies' backend           */

/* A 6-model grid, 2 seeds: 12 runs of 2 short epochs. */
static const char tiny[] =
  "{\"name\": \"tiny\", \"base\": {\"hidden\": [16], \"init\": \"kaiming_normal\", "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 2, \"max_batches\": 10}, "
  "\"mode\": \"grid\", \"vary\": {\"norm\": [\"none\", \"batchnorm\", \"layernorm\"], "
  "\"activation\": [\"tanh\", \"relu\"]}, \"seeds\": [1, 2]}\n";

/* More and longer runs (48 of about 0.25 s), to stop a rank in the middle
   and have runs left once the timeout has passed. */
static const char longer[] =
  "{\"name\": \"longer\", \"base\": {\"hidden\": [256, 256], \"init\": \"kaiming_normal\", "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 10, \"max_batches\": 100}, "
  "\"mode\": \"grid\", \"vary\": {\"norm\": [\"none\", \"batchnorm\", \"layernorm\"], "
  "\"activation\": [\"tanh\", \"relu\"]}, \"seeds\": [1, 2, 3, 4, 5, 6, 7, 8]}\n";

/* Three models, 3 starting seeds and up to 6: several rounds. */
static const char adaptive[] =
  "{\"name\": \"ad\", \"base\": {\"hidden\": [16], \"init\": \"kaiming_normal\", "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.05}, \"epochs\": 1, \"max_batches\": 5}, "
  "\"vary\": {\"activation\": [\"tanh\", \"relu\"], \"init\": [\"normal\"]}, "
  "\"seeds\": [0, 1, 2], \"adaptive\": {\"max_seeds\": 6}}\n";

/* Open MPI on loopback alone, any number of ranks on two cores. */
static const char *const mpi_flags[] = {
  "--oversubscribe", "--mca", "pml", "ob1", "--mca", "btl", "self,tcp",
  "--mca", "btl_tcp_if_include", "lo", "--mca", "btl_tcp_disable_family", "6",
  "--mca", "oob_tcp_if_include", "lo", "--mca", "oob_tcp_disable_ipv6_family", "1", NULL,
};

/* ---- running things ---- */

/* Starts argv in dir (NULL: here), in its own process group, stdout and
   stderr into tmp/stdout and tmp/stderr; its pid. */
static pid_t start_in(const char *dir, const char *const *argv) {
  unlink(fmt("%s/stdout", tmp)), unlink(fmt("%s/stderr", tmp));
  fflush(stdout), fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    int o = open(fmt("%s/stdout", tmp), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    int e = open(fmt("%s/stderr", tmp), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    dup2(o, 1), dup2(e, 2);
    if (dir && chdir(dir))
      _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* Appends the NULL-terminated list v to argv[*n..]. */
static void add_args(const char **argv, int *n, const char *const *v) {
  while (*v)
    argv[(*n)++] = *v++;
}

/* mlpc's arguments for a study in tmp: its file, run flags, a database
   and tables named by what. */
static void study_args(const char **argv, int *n, const char *study, const char *what) {
  add_args(argv, n, (const char *[]){MLPC_BIN, fmt("%s.json", study), "--run", "--backend",
                                   backend, "--db", fmt("%s.sqlite", what), "--out", what, NULL});
}

/* Starts a study on n ranks: rank 0 in tmp, the others in tmp/empty;
   extra: more mpirun flags, or NULL. */
static pid_t start_mpi(const char *study, const char *what, int n, const char *extra,
                       const char *const *more) {
  const char *argv[128];
  int k = 0;
  argv[k++] = MPIEXEC;
  add_args(argv, &k, mpi_flags);
  if (extra)
    argv[k++] = extra;
  add_args(argv, &k, (const char *[]){"-np", "1", "--wdir", tmp, NULL});
  study_args(argv, &k, study, what);
  add_args(argv, &k, more);
  add_args(argv, &k, (const char *[]){":", "-np", fmt("%d", n - 1), "--wdir",
                                    fmt("%s/empty", tmp), NULL});
  study_args(argv, &k, study, what);
  add_args(argv, &k, more);
  argv[k] = NULL;
  return start_in(NULL, argv);
}

/* Runs a study on n ranks to the end; the exit status. */
static int run_mpi(const char *study, const char *what, int n) {
  return wait_status(start_mpi(study, what, n, NULL, (const char *[]){NULL}));
}

/* Runs a study in tmp with local workers; the exit status. */
static int run_local(const char *study, const char *what) {
  const char *argv[32];
  int k = 0;
  study_args(argv, &k, study, what);
  add_args(argv, &k, (const char *[]){"--jobs", "2", NULL});
  argv[k] = NULL;
  return wait_status(start_in(tmp, argv));
}

/* Fails with the messages if status is not 0. */
static void expect_ok(int status) {
  if (status) {
    char *e = read_all(fmt("%s/stderr", tmp));
    fail_msg("exit status %d:\n%s", status, e);
  }
}

/* ---- comparing ---- */

/* Every column of every run, epoch and study row that does not depend on
   timing or on the order runs were recorded in, as one string. */
static char *everything(const char *db) {
  sqlite3 *d = open_db(fmt("%s/%s", tmp, db));
  assert_non_null(d);
  char *figures = all_figures(d);
  size_t len = strlen(figures), cap = len + (1 << 20);
  char *a = realloc(figures, cap);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(d,
    "SELECT r.code_hash || r.seed || r.data_hash || r.settings || r.model || r.name || "
    "r.data || r.data_dir || r.mlpc_version || r.backend || r.status || r.epochs || "
    "quote(r.diverged_epoch) || quote(r.diverged_step) || quote(r.train_loss) || "
    "quote(r.test_loss) || quote(r.test_acc) || s.study || s.experiment || s.position || "
    "s.factor || s.value || s.seed FROM study_runs s JOIN runs r ON r.id = s.run_id "
    "ORDER BY s.study, s.position, s.seed", -1, &st, NULL), SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW && len + 8192 < cap)
    len += (size_t)snprintf(a + len, cap - len, "%s\n", sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(d);
  return a;
}

/* The end of the CSV field that starts at p (quoted or not). */
static const char *field_end(const char *p) {
  if (*p != '"')
    return p + strcspn(p, ",\n");
  for (p++; *p && !(p[0] == '"' && p[1] != '"'); p++)
    p += *p == '"';
  return *p ? p + 1 : p;
}

/* A CSV file without its time and run number columns (by header name). */
static char *csv_without_times(const char *path) {
  char *text = read_all(path), *out = calloc(1, strlen(text) + 2), *o = out;
  int drop[256] = {0}, col = 0, header = 1;
  for (const char *p = text; *p && col < 256;) {
    const char *end = field_end(p);
    if (header)
      drop[col] = !strncmp(p, "seconds", 7) || (end - p == 6 && !strncmp(p, "run_id", 6));
    if (!drop[col])
      o += sprintf(o, "%.*s%c", (int)(end - p), p, *end == ',' ? ',' : '\n');
    header &= *end == ',';
    col = *end == ',' ? col + 1 : 0;
    p = *end ? end + 1 : end;
  }
  free(text);
  return out;
}

/* Fails unless two studies' databases and tables agree. */
static void expect_same(const char *a, const char *b) {
  char *x = everything(fmt("%s.sqlite", a)), *y = everything(fmt("%s.sqlite", b));
  assert_true(strlen(x) > 1000);
  assert_string_equal(x, y);
  free(x), free(y);
  for (int i = 0; i < 2; i++) {
    const char *f = i ? "runs.csv" : "summary.csv";
    x = csv_without_times(fmt("%s/%s/%s", tmp, a, f));
    y = csv_without_times(fmt("%s/%s/%s", tmp, b, f));
    assert_true(strlen(x) > 100);
    assert_string_equal(x, y);
    free(x), free(y);
  }
}

/* The number of entries in a directory whose names start with prefix
   ("": all but . and ..). */
static int entries(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  int n = 0;
  assert_non_null(d);
  for (struct dirent *e; (e = readdir(d));)
    n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
         !strncmp(e->d_name, prefix, strlen(prefix));
  closedir(d);
  return n;
}

/* ---- set-up ---- */

/* Writes a file into tmp. */
static void write_tmp(const char *name, const char *text) {
  FILE *f = fopen(fmt("%s/%s", tmp, name), "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* tmp holds the studies and a link to the data; tmp/empty, nothing;
   tmp/scratch is the ranks' TMPDIR. */
static int setup(void **state) {
  (void)state;
  if (!mkdtemp(tmp))
    return -1;
  write_tmp("tiny.json", tiny);
  write_tmp("longer.json", longer);
  write_tmp("adaptive.json", adaptive);
  write_tmp("strict.json", fmt("{\"arithmetic\": \"strict\", %s", tiny + 1));
  if (symlink(MLPC_SOURCE_DIR "/data", fmt("%s/data", tmp)) ||
      mkdir(fmt("%s/empty", tmp), 0777) || mkdir(fmt("%s/scratch", tmp), 0777))
    return -1;
  setenv("TMPDIR", fmt("%s/scratch", tmp), 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);  /* CI runs as root */
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
  return run_local("longer", "ref");  /* the reference of the killed ranks */
}

static int teardown(void **state) {
  (void)state;
  return system(fmt("rm -rf %s", tmp));
}

/* ---- tests ---- */

/* 3 ranks, 2 of them with no files: the runs and tables of --jobs 2. */
static void test_same_as_local(void **state) {
  (void)state;
  expect_ok(run_local("tiny", "local"));
  expect_ok(run_mpi("tiny", "mpi", 3));
  char *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "0 already in mpi.sqlite; 12 to run on 3 MPI ranks"));
  assert_non_null(strstr(out, "MPI: 3 ranks on 1 host"));
  free(out);
  expect_same("local", "mpi");
  assert_int_equal(entries(fmt("%s/empty", tmp), ""), 0);
  assert_int_equal(entries(fmt("%s/scratch", tmp), "mlpc-"), 0);
}

/* Started again: nothing; with three runs deleted: those three. */
static void test_resume(void **state) {
  (void)state;
  expect_ok(run_mpi("tiny", "mpi", 3));
  char *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "all 12 already in mpi.sqlite"));
  free(out);
  sqlite3 *d;
  assert_int_equal(sqlite3_open(fmt("%s/mpi.sqlite", tmp), &d), SQLITE_OK);
  const char *sel = "SELECT id FROM runs ORDER BY id LIMIT 3 OFFSET 4";
  assert_int_equal(sqlite3_exec(d, fmt("CREATE TEMP TABLE gone AS %s; "
                                       "DELETE FROM study_runs WHERE run_id IN gone; "
                                       "DELETE FROM epochs WHERE run_id IN gone; "
                                       "DELETE FROM runs WHERE id IN gone", sel),
                                NULL, NULL, NULL), SQLITE_OK);
  long long last = query_int(d, "SELECT max(id) FROM runs");
  sqlite3_close(d);
  expect_ok(run_mpi("tiny", "mpi", 2));
  out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "9 already in mpi.sqlite; 3 to run on 2 MPI ranks"));
  free(out);
  d = open_db(fmt("%s/mpi.sqlite", tmp));
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs"), 12);
  assert_int_equal(query_int(d, fmt("SELECT count(*) FROM runs WHERE id > %lld", last)), 3);
  sqlite3_close(d);
  expect_same("local", "mpi");
}

/* report.md's section "Adaptive seeds" of the tables in dir. */
static char *adaptive_section(const char *dir) {
  char *md = read_all(fmt("%s/%s/report.md", tmp, dir)), *s = strstr(md, "## Adaptive seeds");
  assert_non_null(s);
  memmove(md, s, strlen(s) + 1);
  return md;
}

/* An adaptive study's rounds over the ranks: as local, and resumed. */
static void test_adaptive(void **state) {
  (void)state;
  expect_ok(run_local("adaptive", "local_ad"));
  expect_ok(run_mpi("adaptive", "mpi_ad", 3));
  char *err = read_all(fmt("%s/stderr", tmp)), *a = adaptive_section("local_ad");
  assert_non_null(strstr(err, "comparisons undecided; another seed for activation=tanh "
                              "(seed 3), base (seed 3)"));
  expect_same("local_ad", "mpi_ad");
  char *b = adaptive_section("mpi_ad");
  assert_string_equal(a, b);
  free(b), free(err);
  sqlite3 *d;
  assert_int_equal(sqlite3_open(fmt("%s/mpi_ad.sqlite", tmp), &d), SQLITE_OK);
  assert_int_equal(sqlite3_exec(d, "DELETE FROM health WHERE run_id > 10; DELETE FROM epochs "
                                   "WHERE run_id > 10; DELETE FROM study_runs WHERE run_id > "
                                   "10; DELETE FROM runs WHERE id > 10", NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(d);
  expect_ok(run_mpi("adaptive", "mpi_ad", 2));
  expect_same("local_ad", "mpi_ad");
  b = adaptive_section("mpi_ad");
  assert_string_equal(a, b);
  free(a), free(b);
  assert_int_equal(entries(fmt("%s/empty", tmp), ""), 0);
}

/* Worker ranks, without the study file, compute in rank 0's arithmetic. */
static void test_rank0_arithmetic(void **state) {
  (void)state;
  expect_ok(run_local("strict", "local_strict"));
  expect_ok(run_mpi("strict", "mpi_strict", 3));
  char *out = read_all(fmt("%s/stdout", tmp));
  assert_non_null(strstr(out, "grid, strict arithmetic"));
  free(out);
  expect_same("local_strict", "mpi_strict");
  sqlite3 *d = open_db(fmt("%s/mpi_strict.sqlite", tmp));
  assert_int_equal(sqlite3_exec(d, fmt("ATTACH '%s/local.sqlite' AS fma", tmp), NULL, NULL,
                                NULL), SQLITE_OK);
  /* every run's code is the strict arithmetic's; its figures are not the
     fma run's, but where normalisation rounds both to the same float32
     losses (one run of the twelve agrees in its train loss) */
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs s JOIN fma.runs f ON s.model = "
                                "f.model AND s.seed = f.seed WHERE s.code_hash != f.code_hash"),
                   12);
  assert_true(query_int(d, "SELECT count(*) FROM runs s JOIN fma.runs f ON s.model = f.model "
                           "AND s.seed = f.seed WHERE s.train_loss != f.train_loss OR "
                           "s.test_loss != f.test_loss") >= 10);
  sqlite3_close(d);
}

/* The pid of rank r among mpirun's children; 0 if none. */
static pid_t rank_pid(pid_t mpirun, int r) {
  DIR *d = opendir("/proc");
  pid_t found = 0;
  for (struct dirent *e; d && !found && (e = readdir(d));) {
    pid_t pid = (pid_t)atoi(e->d_name);
    if (pid > 0 && parent_of(pid) == mpirun) {
      FILE *f = fopen(fmt("/proc/%d/environ", pid), "r");
      char var[4096];
      size_t n = 0;
      for (int c; f && (c = fgetc(f)) != EOF;) {
        var[n] = (char)c;
        if (c == 0 || n + 1 == sizeof var) {
          var[n] = 0;
          found = !strcmp(var, fmt("OMPI_COMM_WORLD_RANK=%d", r)) ? pid : found;
          n = 0;
        } else
          n++;
      }
      if (f)
        fclose(f);
    }
  }
  if (d)
    closedir(d);
  return found;
}

/* Whether a line of the study's stderr holds a, then b. */
static int said(const char *a, const char *b) {
  char *err = read_all(fmt("%s/stderr", tmp)), *p = err;
  int found = 0;
  for (; !found && (p = strstr(p, a)); p++) {
    const char *q = strstr(p, b), *nl = strchr(p, '\n');
    found = q && (!nl || q < nl);
  }
  free(err);
  return found;
}

/* Starts the longer study on 4 ranks with --enable-recovery and a
   3 s timeout, into database what; once its first run is done, kills
   rank 1 (SIGKILL) and stops rank 2 (SIGSTOP), which is continued once
   rank 0 has taken it for dead: an event, not a clock. Returns mpirun's
   pid. */
static pid_t start_and_lose(const char *what) {
  setenv("MLPC_MPI_TIMEOUT", "3", 1);
  pid_t pid = start_mpi("longer", what, 4, "--enable-recovery", (const char *[]){NULL});
  unsetenv("MLPC_MPI_TIMEOUT");
  for (int i = 0; i < 30000 && !said("mlpc: [1/48]", ""); i++)
    sleep_s(0.01);
  pid_t rank1 = rank_pid(pid, 1), rank2 = rank_pid(pid, 2);
  assert_true(rank1 > 0 && rank2 > 0);
  kill(rank1, SIGKILL);
  kill(rank2, SIGSTOP);
  for (int i = 0; i < 30000 && !said("mlpc: rank 2 (", "taken for dead"); i++)
    sleep_s(0.01);
  kill(rank2, SIGCONT);
  return pid;
}

/* One worker rank killed in the middle and another stopped until rank 0
   takes it for dead: the runs of both go to the rank that is left; the
   stopped one, continued, is taken back, and the study ends as usual
   with the runs of a local run. */
static void test_lost_ranks(void **state) {
  (void)state;
  expect_ok(wait_status(start_and_lose("lost")));
  char *err = read_all(fmt("%s/stderr", tmp));
  assert_true(said("mlpc: rank 1 (", "sent nothing for 3 s: taken for dead"));
  assert_true(said("mlpc: rank 2 (", "sent nothing for 3 s: taken for dead"));
  if (!said("mlpc: rank 2 (", ") is heard from again") || said("mlpc: rank 1 (", "heard from") ||
      !strstr(err, "mlpc: [48/48]"))
    fail_msg("%s", err);
  free(err);
  expect_same("ref", "lost");
}

/* A data set of 3-channel images in IDX files of 4 dimensions: the two
   worker ranks, sent its files, record the runs of a local run, and
   leave nothing behind (a rank stopped by an earlier test may have left
   its directory: only new ones count). */
static void test_idx4_data(void **state) {
  (void)state;
  const char *dir = fmt("%s/rgb", tmp);
  int before = entries(fmt("%s/scratch", tmp), "mlpc-");
  assert_int_equal(mkdir(dir, 0777), 0);
  assert_int_equal(util_idx4_set(dir, 64, 32, 3, 4), 0);
  write_tmp("rgb.json", fmt("{\"base\": {\"input\": 48, \"hidden\": [8], \"epochs\": 2, "
                            "\"batch_size\": 8, \"data\": \"%s\"}, \"vary\": "
                            "{\"activation\": [\"relu\", \"tanh\"]}, \"seeds\": [1, 2]}\n",
                            dir));
  expect_ok(run_local("rgb", "rgb_local"));
  expect_ok(run_mpi("rgb", "rgb_mpi", 3));
  char *x = everything("rgb_local.sqlite"), *y = everything("rgb_mpi.sqlite");
  assert_true(strlen(x) > 100);
  assert_string_equal(x, y);
  free(x), free(y);
  assert_int_equal(entries(fmt("%s/scratch", tmp), "mlpc-"), before);
}

/* A data set of two CSV files (tests/arrays/blobs_csv), not images: the
   worker ranks, sent its files, record the runs of a local run. */
static void test_csv_data(void **state) {
  (void)state;
  write_tmp("blobs.json", "{\"base\": {\"input\": 4, \"output\": 3, \"hidden\": [8], "
                          "\"epochs\": 2, \"batch_size\": 8, \"data\": \"" MLPC_SOURCE_DIR
                          "/tests/arrays/blobs_csv\"}, \"vary\": {\"activation\": "
                          "[\"relu\", \"tanh\"]}, \"seeds\": [1, 2]}\n");
  expect_ok(run_local("blobs", "blobs_local"));
  expect_ok(run_mpi("blobs", "blobs_mpi", 3));
  char *x = everything("blobs_local.sqlite"), *y = everything("blobs_mpi.sqlite");
  assert_true(strlen(x) > 100);
  assert_string_equal(x, y);
  free(x), free(y);
}

/* Under mpirun: a model, or --jobs, is refused by rank 0. */
static void test_refused(void **state) {
  (void)state;
  write_tmp("model.json", "{\"hidden\": [8]}\n");
  const char *argv[64];
  int k = 0;
  argv[k++] = MPIEXEC;
  add_args(argv, &k, mpi_flags);
  add_args(argv, &k, (const char *[]){"-np", "2", MLPC_BIN, "model.json", "--run", NULL});
  argv[k] = NULL;
  assert_int_equal(wait_status(start_in(tmp, argv)), 2);
  char *err = read_all(fmt("%s/stderr", tmp));
  if (!strstr(err, "mlpc: error: under mpirun, mlpc runs studies only"))
    fail_msg("%s", err);
  free(err);
  assert_int_equal(wait_status(start_mpi("tiny", "jobs", 2, NULL,
                                         (const char *[]){"--jobs", "2", NULL})), 2);
  err = read_all(fmt("%s/stderr", tmp));
  assert_non_null(strstr(err, "--jobs: error: under mpirun"));
  free(err);
}

/* The figures of a study's runs by model and seed (the key names the
   backend's code). */
static char *by_model(const char *what) {
  sqlite3 *d = open_db(fmt("%s/%s.sqlite", tmp, what));
  char *f = keyed_figures(d, "r.model");
  sqlite3_close(d);
  return f;
}

/* Tiered over 3 ranks, every run moved to gcc's code at step 6 of its
   first epoch: the local tcc study's figures; the worker ranks' objects
   are in their cache (out/cache/HOST, removed after). */
static void test_tiered(void **state) {
  (void)state;
  expect_ok(run_local("tiny", "local_tcc"));
  backend = "tiered";
  setenv("MLPC_TEST_SWITCH_AFTER", "5", 1);
  int status = run_mpi("tiny", "mpi_tiered", 3);
  unsetenv("MLPC_TEST_SWITCH_AFTER");
  backend = "tcc";
  expect_ok(status);
  char *a = by_model("local_tcc"), *b = by_model("mpi_tiered");
  assert_true(strlen(a) > 1000);
  assert_string_equal(a, b);
  free(a), free(b);
  sqlite3 *d = open_db(fmt("%s/mpi_tiered.sqlite", tmp));
  assert_int_equal(query_int(d, "SELECT count(*) FROM runs WHERE backend = 'tiered' AND (code "
                                "= 'gcc' OR code = 'tcc, then gcc' AND gcc_epoch = 1 AND "
                                "gcc_step = 6)"), 12);
  assert_true(query_int(d, "SELECT count(*) FROM runs WHERE code = 'tcc, then gcc'") > 0);
  sqlite3_close(d);
  assert_true(entries(fmt("%s/empty/out/cache", tmp), "") > 0);
  assert_int_equal(system(fmt("rm -rf %s/empty/out", tmp)), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_same_as_local),
    cmocka_unit_test(test_resume),
    cmocka_unit_test(test_rank0_arithmetic),
    cmocka_unit_test(test_adaptive),
    cmocka_unit_test(test_lost_ranks),
    cmocka_unit_test(test_idx4_data),
    cmocka_unit_test(test_csv_data),
    cmocka_unit_test(test_refused),
    cmocka_unit_test(test_tiered),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
