/*
 * driver.c — the driver of `mlpc STUDY.json --run`: the study's stages in
 * order, one a line:
 *
 *   load and expand (load.c) → run flags → plan (plan.c; --dump-study
 *   prints it) → open the database and find what it holds (db.c) → run
 *   the rest (pipe.c or mpi.c, scheduled by sched.c) → tables, plots and conclusions (report.c, plot.c,
 *   conclude.c)
 *
 * Exit status as for a model: 0 success, 2 bad input, 1 other errors;
 * 128 + the signal when interrupted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../cli.h"
#include "study.h"

typedef struct {
  int run, dump, shuffle, backend, jobs;
  int fma, strict;          /* the arithmetic flags given                 */
  const char *out, *db;
} Flags;

/* Prints a user error and exits 2. */
static void die_input(const char *msg) {
  fprintf(stderr, "mlpc: %s\n", msg);
  exit(2);
}

/* A whole number in [lo, hi] for flag, or exits 2. */
static int int_flag(const char *flag, const char *v, int lo, int hi) {
  char *end, err[256];
  long n = strtol(v, &end, 10);
  if (!*v || *end || n < lo || n > hi) {
    snprintf(err, sizeof err, "%s: error: expected an integer in [%d, %d], got '%s'", flag, lo,
             hi, v);
    die_input(err);
  }
  return (int)n;
}

/* Applies the run flags that override model keys to every experiment. */
static void apply_overrides(const CliArgs *c, Study *s) {
  char err[2048];
  for (int f = 0; f < CLI_NFLAGS; f++)
    if (c->v[f] && cli_key(f) && st_override(s, cli_name(f), cli_key(f), c->v[f], err,
                                              sizeof err))
      die_input(err);
}

/* Reads the flags (cli.h); run flags apply to every experiment of s. */
static void parse_flags(int argc, char **argv, const char *file, Flags *F, Study *s) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  char err[2048];
  CliArgs c;
  if (cli_parse(argc, argv, file, CLI_STUDY, &c, err, sizeof err))
    die_input(err);
  if (c.v[FL_JOBS] && st_mpi_ranks())
    die_input("--jobs: error: under mpirun, every rank runs one run at a time: start "
              "as many ranks as cores (docs/cluster.md)");
  *F = (Flags){.run = !!c.v[FL_RUN], .dump = !!c.v[FL_DUMP_STUDY],
               .shuffle = !c.v[FL_NO_SHUFFLE], .backend = cli_backend(&c),
               .jobs = cores > 0 ? (int)cores : 1, .fma = !!c.v[FL_FMA],
               .strict = !!c.v[FL_STRICT], .out = c.v[FL_OUT], .db = c.v[FL_DB]};
  if (c.v[FL_JOBS])
    F->jobs = int_flag("--jobs", c.v[FL_JOBS], 1, 256);
  apply_overrides(&c, s);  /* --health: a study's runs always record them */
  if (F->fma && F->strict)
    die_input("error: --fma and --strict both given: a study has one arithmetic (its "
              "\"arithmetic\" key, fma by default, or one of these flags)");
  if (F->fma || F->strict)
    s->arith = F->fma ? ARITH_FMA : ARITH_STRICT;
  if (F->backend < 0)
    F->backend = jit_default_backend();
}

/* Refuses a database path that can hold no database file: a directory,
   a name ending in '/', or something other than a regular file
   (/dev/null: SQLite's journal beside it cannot be made). */
static void check_db_path(const char *path) {
  struct stat st;
  char err[MAX_PATH_LEN + 200];
  size_t n = strlen(path);
  int exists = stat(path, &st) == 0;
  const char *what = !exists || S_ISREG(st.st_mode) ? NULL : S_ISDIR(st.st_mode) ? "a directory"
                   : S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode)
                   ? "a block device" : S_ISFIFO(st.st_mode) ? "a pipe" : "not a regular file";
  if (!what && n && path[n - 1] == '/')
    what = "a directory name";
  if (!what)
    return;
  snprintf(err, sizeof err, "%s: error: %s, not a database file: give --db a file's name "
           "(the default is out/mlpc.sqlite)", path, what);
  die_input(err);
}

/* The number of wanted runs, of those not yet in the database (*lack),
   and of those in it without health figures (*again), which are run
   again to add them. */
static int wanted(const StPlan *p, int *lack, int *again) {
  int n = 0;
  *lack = *again = 0;
  for (int i = 0; i < p->ntasks; i++) {
    const StTask *t = &p->tasks[i];
    n += t->wanted, *lack += t->wanted && t->run_id <= 0;
    *again += t->wanted && t->run_id > 0 && t->no_health;
  }
  return n;
}

/* ", K of them recorded without health figures (run again to add them)". */
static const char *fmt_again(int k) {
  static char buf[128];
  snprintf(buf, sizeof buf, ", %d of them recorded without health figures (run again to add "
           "them)", k);
  return buf;
}

/* Says what the study is: its experiments, seeds and runs. */
static void describe_study(const StPlan *p) {
  const Study *s = p->s;
  printf("mlpc %s: study %s (%s): %s, %s arithmetic, ", MLPC_VERSION, s->name, s->file,
         st_mode_names[s->mode], arith_names[s->arith]);
  if (s->alpha > 0)
    printf("%d experiments, adaptive: %d starting seed%s, up to %d a model (level %g), "
           "at most %d distinct runs, ", s->nexp, s->nstart, s->nstart == 1 ? "" : "s",
           s->nseeds, s->alpha, p->ntasks);
  else
    printf("%d experiments × %d seeds = %d runs, %d distinct, ", s->nexp, s->nseeds,
           s->nexp * s->nseeds, p->ntasks);
  printf("%d compiled model%s\n", p->ncodes, p->ncodes == 1 ? "" : "s");
  fflush(stdout);
}

/* Says what is about to run: the wanted runs the database has, and the
   rest. */
static void describe(const StPlan *p, const Flags *F, const char *db, int jobs) {
  int lack, again, n = wanted(p, &lack, &again), have = n - lack;
  if (have == n && !again)
    printf("all %d already in %s\n", have, db);
  else
    printf("%d already in %s%s; %d to run on %d %s%s, backend %s\n", have, db,
           again ? fmt_again(again) : "", lack + again, jobs,
           st_mpi_ranks() ? "MPI rank" : "worker", jobs == 1 ? "" : "s",
           backend_names[F->backend]);
  fflush(stdout);
}

/* Runs the wanted runs the database lacks, saying first what they are;
   the status of st_run. */
static int run_round(StPlan *p, sqlite3 *db, const Flags *F, const char *dbpath) {
  int lack, again;
  wanted(p, &lack, &again);
  int todo = lack + again, jobs = st_mpi_ranks() ? st_mpi_ranks() : F->jobs;
  jobs = jobs < todo ? jobs : todo;
  describe(p, F, dbpath, jobs);
  if (todo)
    jit_note_fma(p->s->arith);
  StRunOptions o = {jobs, dbpath, isatty(2), p->s->alpha > 0};
#ifdef MLPC_MPI
  return st_mpi_ranks() ? st_mpi_run(p, db, &o) : st_run(p, db, &o);
#else
  return st_run(p, db, &o);
#endif
}

/* Runs an adaptive study's rounds: after each, the models whose
   comparisons are undecided get another seed (adaptive.c). The status of
   st_run. */
static int run_adaptive(StPlan *p, sqlite3 *db, const Flags *F, const char *dbpath) {
  char err[4096];
  int said = 0, rc = 0, n = 0, rounds = 0;
  while (!rc && (n = st_adaptive_next(p, db, &said, stderr, err, sizeof err)) > 0)
    rc = st_db_prepare(db, p, err, sizeof err) ? -1 : (rounds++, run_round(p, db, F, dbpath));
  if (n < 0 || (!rc && st_db_prepare(db, p, err, sizeof err)))
    rc = -1;
  if (!rc && !rounds)
    describe(p, F, dbpath, 0);
  if (rc < 0)
    fprintf(stderr, "mlpc: error: %s: %s\n", dbpath, err), rc = 1;
#ifdef MLPC_MPI
  if (st_mpi_ranks())
    st_mpi_end();
#endif
  return rc;
}

/* Prints each experiment: its name, the hash of its code, its model. */
static void dump(const StPlan *p) {
  const Study *s = p->s;
  for (int i = 0; i < s->nexp; i++) {
    const StTask *t = &p->tasks[p->task_of[i * s->nseeds]];
    printf("%s\t%s\t%s\n", s->exp[i].name, p->codes[t->code].hash.hex, s->exp[i].json);
  }
}

int st_main(const char *file, int argc, char **argv) {
  static Study s;
  StPlan p;
  Flags F;
  sqlite3 *db;
  char err[4096], outdir[MAX_PATH_LEN];
#ifndef MLPC_MPI
  if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK"))
    die_input("error: started by mpirun, but this mlpc is built without MPI: every rank "
              "would run the whole study (docs/cluster.md)");
#endif
  if (st_load(file, &s, err, sizeof err))
    die_input(err);
  parse_flags(argc, argv, file, &F, &s);
  const char *dbpath = F.db ? F.db : "out/mlpc.sqlite";
  if (F.run)
    check_db_path(dbpath);
  int rc = st_plan(&s, F.backend, F.shuffle, &p, err, sizeof err);
  if (rc)
    return fprintf(stderr, "mlpc: error: %s\n", err), rc;
  if (F.dump)
    dump(&p);
  if (!F.run)
    return st_plan_free(&p), st_free(&s), 0;
  if ((rc = st_db_open(dbpath, &db, stderr, err, sizeof err)) ||
      st_db_prepare(db, &p, err, sizeof err)) {
    fprintf(stderr, "mlpc: error: %s: %s\n", dbpath, err);
    if (!rc)
      st_db_close(db); /* open, but not prepared */
    st_plan_free(&p);
    st_free(&s);
    return rc == 2 ? 2 : 1;
  }
  describe_study(&p);
  rc = s.alpha > 0 ? run_adaptive(&p, db, &F, dbpath) : run_round(&p, db, &F, dbpath);
  snprintf(outdir, sizeof outdir, "%s", F.out ? F.out : "out/");
  if (!F.out)
    snprintf(outdir + strlen(outdir), sizeof outdir - strlen(outdir), "%s", s.name);
  if (!rc && st_report(db, &p, outdir, stdout, err, sizeof err))
    fprintf(stderr, "mlpc: error: %s\n", err), rc = 1;
  if (!rc)
    printf("\nreport: %s/report.md (with summary.csv, runs.csv, comparisons.csv and the "
           "plots); database: %s\n", outdir, dbpath);
  st_db_close(db);
  st_plan_free(&p);
  st_free(&s);
  return rc;
}
