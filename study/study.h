/*
 * study.h — studies: many runs of variants of one model, over seeds,
 * recorded in a database and summed up in tables (docs/study-format.md).
 *
 *   study file (load.c) → experiments → plan (plan.c: generated code,
 *   data and settings of each run, what the database already holds)
 *   → runs on worker processes (run.c), or on MPI ranks (mpi.c)
 *   → one transaction per run (db.c)
 *   → tables (report.c)
 *
 * study.c holds the driver, `mlpc STUDY.json --run`.
 */
#ifndef MLPC_STUDY_H
#define MLPC_STUDY_H

#include <stdint.h>
#include <stdio.h>
#include "../mlpc.h"

#define ST_MAX_KEYS 16            /* varied keys at most                  */
#define ST_MAX_EXPERIMENTS 10000  /* experiments at most                  */
#define ST_MAX_SEEDS 1000         /* seeds at most                        */

/* Modes: X(enum, name) */
#define ST_MODES(X)                  \
  X(ST_ONE_FACTOR, "one_factor")     \
  X(ST_GRID,       "grid")

#define ENUM1_(e, ...) e,
enum { ST_MODES(ENUM1_) ST_NMODES };
#undef ENUM1_
extern const char *const st_mode_names[ST_NMODES];

/* One experiment: the base model with some keys replaced. */
typedef struct {
  char *name;               /* "init=kaiming_normal", or in a grid
                               "init=normal, norm=batchnorm"              */
  char *factor;             /* one_factor: the varied key; grid: ""       */
  char *value;              /* one_factor: the value's name; grid: ""     */
  char *values[ST_MAX_KEYS];/* the name of each varied key's value here   */
  char *json;               /* the model: compact JSON, sorted keys       */
  Model model;              /* checked by the frontend                    */
} StExperiment;

typedef struct {
  char file[MAX_PATH_LEN];  /* the study file, for messages               */
  char name[64];            /* [A-Za-z0-9_.-]+; names out/NAME/ and the
                               study in the database                      */
  int mode;                 /* ST_ONE_FACTOR or ST_GRID                    */
  int nkeys;
  char *keys[ST_MAX_KEYS];  /* the varied keys, in file order             */
  int nexp;
  StExperiment *exp;
  int nseeds;
  uint64_t *seeds;
  char *base_json;          /* the base model: compact JSON, sorted keys  */
} Study;

/* ---- load.c: the study file ---- */

/* Whether path holds a study rather than a model: a JSON object with a
   "base" or a "vary" key. */
int st_is_study(const char *path);
/* Reads, checks and expands a study file. On error writes one message,
   "FILE:LINE:COL: error: ..." or "FILE: json.path: error: ...", and
   returns -1. */
int st_load(const char *path, Study *s, char *err, size_t errlen);
/* Applies a run flag to every experiment (fe_override's checks; the
   message names the flag). */
int st_override(Study *s, const char *flag, const char *key, const char *text,
                char *err, size_t errlen);
void st_free(Study *s);

/* ---- plan.c: what to run ---- */

/* A 64-bit FNV-1a hash, as 16 hex digits. */
typedef struct { char hex[17]; } StHash;
StHash st_hash(const void *data, size_t len);

/* One distinct piece of generated code. */
typedef struct {
  StHash hash;              /* of the unit below                          */
  char *unit;               /* emit_unit's text for the backend           */
  int exp;                  /* the first experiment with this code        */
} StCode;

/* One distinct run: (code, seed, data, settings), its database key. */
typedef struct {
  int code, exp;            /* exp: the first experiment it serves        */
  uint64_t seed;
  StHash data_hash;
  char settings[192];       /* JSON: backend, epochs, max_batches, ...    */
  char data_dir[MAX_PATH_LEN];
  long long run_id;         /* its row in the database; 0: not yet run    */
} StTask;

typedef struct {
  const Study *s;
  int backend;
  int shuffle;
  int ncodes;
  StCode *codes;
  int ntasks;
  StTask *tasks;
  int *task_of;             /* (nexp, nseeds): the task of each run       */
} StPlan;

/* Generates every experiment's code, hashes the data sets and finds the
   distinct runs. Data errors are the user's: returns 2; 1 for ours. */
int st_plan(const Study *s, int backend, int shuffle, StPlan *p, char *err,
            size_t errlen);
void st_plan_free(StPlan *p);

/* ---- db.c: the results database (SQLite) ---- */

typedef struct sqlite3 sqlite3;

/* What one run brings back. */
typedef struct {
  int nepochs;              /* finished epochs, with finite figures       */
  RtEpoch *epochs;
  int diverged_epoch;       /* 0: did not diverge                         */
  long diverged_step;       /* the training step; 0: in the test pass      */
  double seconds;           /* the whole run, without compiling           */
} StResult;

/* Opens (creating if needed) the database: WAL mode, the schema. */
int st_db_open(const char *path, sqlite3 **db, char *err, size_t errlen);
void st_db_close(sqlite3 *db);
/* Fills in the run_id of every task the database already holds, and
   makes the study's membership table list exactly those runs. */
int st_db_prepare(sqlite3 *db, StPlan *p, char *err, size_t errlen);
/* Records one run and the experiments it serves, in one transaction;
   sets the task's run_id. A run recorded meanwhile by another process
   is kept and reused. */
int st_db_put(sqlite3 *db, StPlan *p, int task, const StResult *r,
              char *err, size_t errlen);

/* ---- run.c: one run, whatever carries it to a worker ---- */

/* Everything a worker needs for one run, without the plan: the local
   workers fill it from the plan, MPI ranks from rank 0's messages. */
typedef struct {
  int task;                 /* its number in the plan                     */
  int code;                 /* its code's number in the plan              */
  const char *unit;         /* that code: emit_unit's text                */
  int backend, dtype;
  uint64_t seed;
  int epochs, shuffle;
  long max_batches;
  const char *data_dir;     /* where this worker reads the data set       */
} StJob;

/* A worker between runs: the compiled code it holds. */
typedef struct {
  Jit *jit;
  int code;                 /* the code's number; -1 for none             */
  const char *cache;        /* gcc's object cache                         */
} StWorker;

/* What a worker sends back, as one message: its code is compiled, a run's
   figures, or an error. The same bytes go through a local worker's pipe
   and over MPI; st_msg_parse reads them. */
enum { ST_MSG_COMPILED, ST_MSG_RESULT, ST_MSG_ERROR };

typedef struct {
  int kind, task;
  StResult r;               /* ST_MSG_RESULT; r.epochs points into the
                               message's bytes                            */
  const char *err;          /* ST_MSG_ERROR: the text, in the bytes too   */
} StMsg;

/* The job of a task of the plan. */
void st_job(const StPlan *p, int task, StJob *j);
/* Compiles j's code unless w holds it; on failure writes an error message
   into out and returns -1. */
int st_compile(StWorker *w, const StJob *j, Buf *out);
/* Trains j with the code w holds (st_compile first) and writes its
   result into out; or an error, and returns -1. */
int st_train(StWorker *w, const StJob *j, Buf *out);
/* Appends one message to out (r for ST_MSG_RESULT, err for ST_MSG_ERROR). */
void st_msg(Buf *out, int kind, int task, const StResult *r, const char *err);
/* Reads a message of len bytes; -1 if it is not one of this build's. */
int st_msg_parse(const void *buf, size_t len, StMsg *m);

/* ---- run.c: runs on worker processes ---- */

typedef struct {
  int jobs;                 /* worker processes                           */
  const char *db_path;      /* for messages                               */
  int progress;             /* a progress line (a terminal) or log lines  */
} StRunOptions;

/* Runs every task without a run_id on o->jobs workers, recording each
   in db as it finishes. Returns 0, 130 when interrupted, 1 on errors. */
int st_run(StPlan *p, sqlite3 *db, const StRunOptions *o);
/* Writes a run's log line, "mlpc: [n/total] NAME seed S: ...", to stderr. */
void st_log_run(const StPlan *p, int task, int n, int total, const StResult *r);
/* Says how the runs ended (stopped by signal sig, or some failed or not
   done) and how to go on; returns st_run's status. */
int st_run_end(int sig, int total, int done, int failed, const char *db_path);

/* ---- mpi.c: runs over MPI ranks (docs/cluster.md); with MLPC_MPI ---- */

#ifdef MLPC_MPI
/* At the start of main: when an MPI launcher started mlpc, starts MPI.
   Rank 0 goes on as mlpc (returns 0); any other rank runs what rank 0
   sends it, ends MPI, sets *status and returns 1. */
int st_mpi_start(int *argc, char ***argv, int *status);
/* The number of ranks; 0 when not under MPI. */
int st_mpi_ranks(void);
/* st_run over the ranks: rank 0 runs every task without a run_id on its
   own thread and on every other rank, recording each in db. */
int st_mpi_run(StPlan *p, sqlite3 *db, const StRunOptions *o);
#else
#define st_mpi_ranks() 0
#endif

/* ---- report.c: tables ---- */

/* Writes summary.csv, runs.csv and report.md into dir from the database,
   and prints the summary table to term. */
int st_report(sqlite3 *db, const StPlan *p, const char *dir, FILE *term,
              char *err, size_t errlen);

/* ---- study.c: the driver ---- */

/* `mlpc STUDY.json --run [options]`; returns the exit status. */
int st_main(const char *file, int argc, char **argv);

#endif
