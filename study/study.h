/*
 * study.h — studies: many runs of variants of one model, over seeds,
 * recorded in a database and summed up in tables (docs/study-format.md).
 *
 *   study file (load.c) → experiments → plan (plan.c: generated code,
 *   data and settings of each run, what the database already holds)
 *   → runs handed out by one scheduler (sched.c) to worker processes
 *   (pipe.c) or to MPI ranks (mpi.c), each run done by job.c
 *   → one transaction per run (db.c)
 *   → tables, plots and conclusions (report.c, plot.c, conclude.c,
 *   health.c; statistics in stats.c), one document (doc.c) written as
 *   report.md and report.html (html.c)
 *
 * driver.c holds the driver, `mlpc STUDY.json --run`.
 */
#ifndef MLPC_STUDY_H
#define MLPC_STUDY_H

#include <poll.h>
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

enum { ST_MODES(ENUM1_) ST_NMODES };
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
  int nseeds;               /* seeds planned: the starting seeds, then in
                               an adaptive study those it may add         */
  uint64_t *seeds;          /* adaptive: in increasing order              */
  int nstart;               /* the starting seeds: "seeds"                */
  double alpha;             /* adaptive: the level of its tests; 0: the
                               study is not adaptive                      */
  char *base_json;          /* the base model: compact JSON, sorted keys  */
  Model base;               /* the base model, checked, with the run flags */
  int arith;                /* every run's arithmetic (mlpc.h): the
                               "arithmetic" key, ARITH_FMA by default, or
                               --fma / --strict                           */
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
/* Whether every experiment holds out a validation split: the study then
   ranks and compares its models on the final validation loss, not the
   test loss (conclude.c, adaptive.c). */
int st_on_val(const Study *s);

/* ---- plan.c: what to run ---- */

/* A 64-bit FNV-1a hash, as 16 hex digits. */
typedef struct { char hex[17]; } StHash;
StHash st_hash(const void *data, size_t len);

/* One distinct piece of generated code. */
typedef struct {
  StHash hash;              /* of the unit below (which holds the study's
                               arithmetic, so that it keys the runs)      */
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
  int no_health;            /* recorded without health figures (by an
                               older mlpc): run again to add them         */
  int wanted;               /* the study wants it now (an adaptive study
                               only some of its seeds)                    */
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
  int *nwant;               /* (nexp): the seeds each experiment wants now,
                               the first of s->seeds: its starting seeds,
                               and those an adaptive study added          */
  int base;                 /* the first experiment that is the base model
                               (same code, data and settings), or -1      */
} StPlan;

/* Generates every experiment's code, hashes the data sets and finds the
   distinct runs. Data errors are the user's: returns 2; 1 for ours (out
   of memory); after an error p holds nothing. */
int st_plan(const Study *s, int backend, int shuffle, StPlan *p, char *err,
            size_t errlen);
void st_plan_free(StPlan *p);
/* Marks the tasks wanted: those of the first nwant[e] seeds of each
   experiment e. */
void st_plan_want(StPlan *p);

/* ---- db.c: the results database (SQLite) ---- */

typedef struct sqlite3 sqlite3;

/* The name of one health figure of a run (docs/health.md): the same for
   every probe of the run. */
typedef struct {
  char layer[56];           /* "hidden1" ..., or a tensor: "fc1.weight"   */
  char figure[24];          /* "pre_mean" ... "dead", "norm" ...          */
} StHealthName;

/* One health figure of one probe. */
typedef struct {
  double value;             /* NaN when na                                */
  int na;                   /* not applicable (docs/health.md)            */
} StHealthValue;

/* What one run brings back. */
typedef struct {
  int nepochs;              /* finished epochs, with finite figures       */
  RtEpoch *epochs;
  int diverged_epoch;       /* 0: did not diverge                         */
  long diverged_step;       /* the training step; 0: in the test pass      */
  double seconds;           /* the whole run, without compiling           */
  int nhealth;              /* health figures per probe                   */
  int nprobes;              /* probes: epoch 0 (the initial weights) to
                               nprobes - 1 <= nepochs                     */
  StHealthName *hnames;     /* (nhealth)                                  */
  StHealthValue *health;    /* (nprobes, nhealth)                         */
  int ran;                  /* the code that trained it: TIER_RAN_TCC,
                               TIER_RAN_GCC, or TIER_RAN_BOTH (tiered)    */
  RtWhere gcc_from;         /* TIER_RAN_BOTH: where gcc's code took over  */
} StResult;

/* The schema version that added the validation figures (runs.val_loss,
   val_acc, best_epoch; epochs.val_loss, val_acc), and the one that added
   the runs' code columns (db.c); upgrading an older database adds what it
   lacks. */
#define ST_DB_SCHEMA_VAL 4
#define ST_DB_SCHEMA_CODE 5
/* The database's schema version (PRAGMA user_version): the newest. */
#define ST_DB_SCHEMA ST_DB_SCHEMA_CODE
/* PRAGMA application_id of mlpc's databases: "mlpc" in ASCII. */
#define ST_DB_APP_ID 0x6d6c7063

/* Opens (creating if needed) the database: WAL mode, the schema. An older
   schema is upgraded in place, keeping every run, with a line to note
   (unless NULL); a newer one is refused (-1). A file that is not mlpc's
   (db.c says which are) is refused unchanged: 2, the user's error. */
int st_db_open(const char *path, sqlite3 **db, FILE *note, char *err, size_t errlen);
void st_db_close(sqlite3 *db);
/* The epoch whose figures are a run's final ones: under early stopping
   the one it kept (RtEpoch.best_epoch), else the last; NULL for none. */
const RtEpoch *st_final_epoch(const StResult *r);
/* Fills in the run_id of every task the database already holds (and
   no_health for those recorded without health figures), and makes the
   study's membership table list exactly those runs. */
int st_db_prepare(sqlite3 *db, StPlan *p, char *err, size_t errlen);
/* Records one run, its health figures and the experiments it serves, in
   one transaction; sets the task's run_id. A run recorded meanwhile by
   another process is kept and reused; one recorded without health
   figures gets r's if r repeats its figures bit for bit. Returns 0; 1
   when the run is recorded but err holds a warning; -1 on errors. */
int st_db_put(sqlite3 *db, StPlan *p, int task, const StResult *r,
              char *err, size_t errlen);

/* The final test loss of run id, or its validation loss (val): +infinity
   if it diverged. */
int st_db_final_loss(sqlite3 *db, long long id, int val, double *loss, char *err,
                     size_t errlen);

/* ---- job.c: one run, whatever carries it to a worker ---- */

/* Everything a worker needs for one run, without the plan: the local
   workers fill it from the plan, MPI ranks from rank 0's messages. */
typedef struct {
  int task;                 /* its number in the plan                     */
  int code;                 /* its code's number in the plan              */
  const char *unit;         /* that code: emit_unit's text                */
  int backend;
  uint64_t seed;
  int epochs, shuffle;
  long max_batches;
  const char *data_dir;     /* where this worker reads the data set       */
  int object;               /* tiered, from local workers' parent: where
                               gcc's object is (TIER_*); -1: the worker
                               builds it itself (MPI ranks)               */
} StJob;

/* A worker between runs: the compiled code it holds. */
typedef struct {
  Jit *jit;                 /* tcc or gcc                                 */
  int code;                 /* the code's number; -1 for none             */
  const char *cache;        /* gcc's object cache                         */
  Tier *tier;               /* tiered, instead of jit                     */
  TierAsk ask;              /* tiered, for an object the parent builds:
                               asks it where the object is                */
  void *ask_ctx;
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
#define ST_MSG_MAX (64u << 20)    /* a message's size at most             */
/* Makes room for n more bytes at the end of b; where they go. Exits out
   of memory. */
char *st_grow(Buf *b, size_t n);
/* Appends n bytes to b. */
void st_put(Buf *b, const void *p, size_t n);

/* ---- build.c: gcc's objects for a study's tiered runs ---- */

/* The objects of a plan's codes, built beside the runs by the process
   that hands them out, a bounded number at once. */
typedef struct StBuilds StBuilds;

/* How many gcc builds a study with n workers runs at once, beside them. */
#define ST_MAX_BUILDS(n) ((n) / 2 > 1 ? (n) / 2 : 1)
/* The share of a run's time that gcc's code saves over tcc's: tcc's
   epoch is about 1.4 times gcc's (docs/performance.md). */
#define ST_GCC_SAVES 0.3
/* What a gcc build is taken to cost until builds have been timed, in
   seconds: gcc takes 2 s of a core for the homework's models
   (docs/performance.md). */
#define ST_BUILD_GUESS 2.0
/* The builds of p's codes into cache, at most max at once; codes whose
   objects are cached are ready at once. Warnings clear the progress line
   first when there is one. NULL out of memory. */
StBuilds *st_builds_new(const StPlan *p, const char *cache, int max, int progress);
/* Where code c's object is: TIER_WAITING, TIER_READY or TIER_FAILED. */
int st_builds_state(const StBuilds *b, int c);
/* What a code's build is to do, or when it is needed (need[c] > 0, the
   lower the sooner). */
enum { ST_NEED_NONE = -1, ST_NEED_KEEP = 0 };
/* Starts builds, up to the bound, for the codes with need[c] > 0, the
   lowest first; lets those under way with ST_NEED_KEEP or more go on,
   and stops those with ST_NEED_NONE. */
void st_builds_schedule(StBuilds *b, const int *need);
/* The mean seconds of the builds that ended, 0 before the first. */
double st_builds_seconds(const StBuilds *b);
/* Adds the descriptors of the builds under way to fds (at most room),
   each build's code to codes; returns how many. */
int st_builds_poll(const StBuilds *b, struct pollfd *fds, int *codes, int room);
/* After poll said code c's build ended: its new state (a warning on
   stderr if it failed), or TIER_WAITING if it has not. */
int st_builds_done(StBuilds *b, int c);
/* In a forked worker: lets go of the builds' descriptors. */
void st_builds_forget(StBuilds *b);
/* Stops the builds still under way and frees b. */
void st_builds_free(StBuilds *b);

/* ---- sched.c: the one scheduler of a study's runs, over a transport ---- */

typedef struct {
  int jobs;                 /* worker processes                           */
  const char *db_path;      /* for messages                               */
  int progress;             /* a progress line (a terminal) or log lines  */
  int rounds;               /* more rounds of runs may follow: MPI ranks
                               wait for them (st_mpi_end ends them)       */
} StRunOptions;

/* Workers a run may be lost with (a worker died, a rank taken for dead)
   before it is given up; the lost runs before go to another worker. */
#define ST_MAX_LOST 2

/* Task and code states of a round. */
enum { ST_PENDING, ST_RUNNING, ST_DONE, ST_FAILED };
enum { ST_CODE_NEW, ST_CODE_COMPILING, ST_CODE_READY };

/* A worker as the scheduler sees it. */
typedef struct {
  int task;                 /* the run it is on; -1 when free             */
  int code;                 /* the code it was last given; -1 for none    */
} StSlot;

/* What a transport reports: a worker's message, or a worker lost. */
enum { ST_EV_NONE, ST_EV_MSG, ST_EV_LOST };

typedef struct {
  int kind, w;              /* ST_EV_*, and the worker                    */
  StMsg m;                  /* ST_EV_MSG; points into the transport's
                               buffer until its next wait                 */
  char who[320], why[128];  /* ST_EV_LOST: "rank 1 (HOST)", "sent ..."    */
} StEvent;

typedef struct StSched StSched;
typedef struct StTransport StTransport;

/* How the scheduler reaches its workers (pipe.c, mpi.c). */
struct StTransport {
  const char *unit;         /* a worker's name in messages: "worker"      */
  int compile_once;         /* gcc: one worker compiles each code (shared
                               cache); others run it once compiled        */
  int nw;                   /* workers, set by begin                      */
  /* Starts the workers for S->total runs; 0, or -1 (fatal). */
  int (*begin)(StTransport *t, StSched *S);
  /* Whether worker w can take a run. */
  int (*ready)(StTransport *t, int w);
  /* Hands worker w the run task; 0, or -1 if the run cannot be sent
     (fatal; a worker that cannot be reached is reported lost instead). */
  int (*give)(StTransport *t, StSched *S, int w, int task);
  /* Waits for the next event (or a signal, or a clock) into e. */
  void (*wait)(StTransport *t, StSched *S, StEvent *e);
  /* Worker w's name in error messages; NULL (or a NULL function): none. */
  const char *(*who)(StTransport *t, int w);
  /* Ends the round; stop: interrupted or failed. */
  void (*end)(StTransport *t, StSched *S, int stop);
};

/* A round of runs as the scheduler keeps it; transports read it. */
struct StSched {
  StPlan *p;
  sqlite3 *db;
  const StRunOptions *o;
  StTransport *t;
  StSlot *w;                /* nw workers                                 */
  int nw;
  char *state;              /* per task: ST_PENDING...                    */
  char *code;               /* per code: ST_CODE_*                        */
  char *lost;               /* per task: workers it was lost with         */
  double run_seconds;       /* the runs finished so far: their seconds    */
  int timed;                /* and how many                               */
  int total, done, failed, diverged, fatal;
  double t0, shown;
};

/* Runs every wanted task without a run_id on t's workers, recording each
   in db as it finishes. Returns 0, 128 + the signal when interrupted, 1
   on errors. */
int st_sched_run(StPlan *p, sqlite3 *db, const StRunOptions *o, StTransport *t);
/* The signal that stopped the round, 0 if none. */
int st_sched_stopped(void);
/* Clears the progress line before other output. */
void st_clear_line(const StSched *S);
/* A run's name, "EXPERIMENT seed S" (a static buffer). */
const char *st_run_name(const StPlan *p, int task);
/* Whether a task needs no run: not wanted, or recorded (with health
   figures). */
int st_task_done(const StTask *t);
/* Writes a run's log line, "mlpc: [n/total] NAME seed S: ...", to stderr. */
void st_log_run(const StPlan *p, int task, int n, int total, const StResult *r);
/* Says how the runs ended (stopped by signal sig, or some failed or not
   done) and how to go on; returns st_sched_run's status. */
int st_run_end(int sig, int total, int done, int failed, const char *db_path);

/* ---- pipe.c: runs on local worker processes (--jobs) ---- */

/* st_sched_run over o->jobs forked workers, talking through pipes. */
int st_run(StPlan *p, sqlite3 *db, const StRunOptions *o);

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
/* After the last round: tells every other rank to stop. */
void st_mpi_end(void);
#else
#define st_mpi_ranks() 0
#endif

/* ---- report.c: tables, figures and conclusions, from the database ---- */

/* The final figures of a run, in summary.csv's order: X(enum, column) */
#define ST_FIGURES(X)                 \
  X(ST_TEST_LOSS,  "test_loss")       \
  X(ST_TEST_ACC,   "test_acc")        \
  X(ST_TRAIN_LOSS, "train_loss")      \
  X(ST_SECONDS,    "seconds")         \
  X(ST_VAL_LOSS,   "val_loss")        \
  X(ST_VAL_ACC,    "val_acc")

enum { ST_FIGURES(ENUM1_) ST_NFIGS };
extern const char *const st_figure_names[ST_NFIGS];

/* One run of an experiment, as the database holds it. */
typedef struct {
  long long id;
  uint64_t seed;
  int diverged_epoch;       /* 0: finished                                */
  long diverged_step;
  double fig[ST_NFIGS];     /* after the last epoch (under early stopping,
                               of the epoch kept); NaN if diverged, or if
                               there is none (no train loss without a
                               training step)                              */
  int nepochs;              /* epochs with figures                        */
  int kept;                 /* the epoch fig is of: early stopping's, else
                               the last (nepochs)                          */
  double *test_loss;        /* (nepochs): each epoch's test loss          */
} StRunFigs;

/* One experiment's runs, in seed order, and the mean and sample standard
   deviation of their final figures over the runs that did not diverge
   (and have the figure). */
typedef struct {
  int runs, diverged, n;    /* n: finished runs                           */
  StRunFigs *run;           /* (runs)                                     */
  double mean[ST_NFIGS], std[ST_NFIGS];  /* NaN when n < 1 (< 2 for std)  */
  int same;                 /* the first experiment with the very same
                               runs (itself if none before it)            */
} StExpFigs;

/* The health figures of each distinct model (health.c). */
typedef struct StHealthFigs StHealthFigs;

/* Everything a report is made from: the plan, and the database's figures
   of each experiment. */
typedef struct {
  const StPlan *p;
  sqlite3 *db;
  StExpFigs *exp;           /* (nexp)                                     */
  StHealthFigs *health;
  int nval;                 /* experiments that hold out a validation
                               split: with any, the tables show its
                               figures (ST_VAL_*); with all, the
                               conclusions rank and test on its loss      */
  int nstop;                /* experiments with early stopping            */
} StFigs;

/* Writes into dir, from the database: summary.csv, runs.csv,
   comparisons.csv, the plots (when gnuplot is there) and report.md; and
   prints the summary table and the ranking to term. */
int st_report(sqlite3 *db, const StPlan *p, const char *dir, FILE *term,
              char *err, size_t errlen);

/* ---- doc.c: the report as one document, written as Markdown and HTML ---- */

/* report.c, health.c, conclude.c and adaptive.c build the report once,
   as blocks of inline text, tables of typed cells and figures; doc.c
   writes it as report.md and html.c as report.html, so that no sentence
   is written twice. Every string lives in the document's text at an
   offset; offset 0 is "" (none). */

/* Blocks: X(enum) */
#define ST_DOC_BLOCKS(X)                                                 \
  X(ST_DOC_HEADING)   /* "## ..."; level 1 to 4                        */ \
  X(ST_DOC_PARA)      /* a paragraph                                   */ \
  X(ST_DOC_ITEM)      /* "- ...": an item of a list                    */ \
  X(ST_DOC_NUMBERED)  /* "1. ...": an item of a numbered list          */ \
  X(ST_DOC_TABLE)     /* a table, its first row the header             */ \
  X(ST_DOC_FIGURE)    /* a plot: "![title](NAME.png)", in HTML NAME.svg */

enum { ST_DOC_BLOCKS(ENUM1_) ST_DOC_NBLOCKS };

/* Inline text: plain, strong ("**"), code ("`") or a link. */
enum { ST_SPAN_TEXT, ST_SPAN_STRONG, ST_SPAN_CODE, ST_SPAN_LINK };
/* Table cells: none at all ("| |" in Markdown), text, or a number shown
   as text, with its value and spread. */
enum { ST_CELL_NONE, ST_CELL_TEXT, ST_CELL_NUM };

typedef struct {
  int kind;                 /* ST_SPAN_*                                  */
  size_t at, len;           /* its text                                   */
  size_t href;              /* ST_SPAN_LINK: its target                   */
} StSpan;

typedef struct {
  int kind;                 /* ST_CELL_*                                  */
  int row;                  /* 1: the first cell of a row                 */
  size_t at, len;           /* its text, as shown                         */
  double v, sd;             /* ST_CELL_NUM: the figure it shows and its
                               spread, at full precision (NaN: none)      */
  size_t href;              /* a link; 0: none                            */
} StCell;

typedef struct {
  int kind;                 /* ST_DOC_*                                   */
  int level;                /* ST_DOC_HEADING: 1 to 4                     */
  int html_only;            /* left out of report.md (its figures are in
                               the CSV files)                             */
  size_t id;                /* an anchor links can name; 0: none          */
  int span, nspans;         /* its inline text                            */
  size_t align;             /* ST_DOC_TABLE: "l" or "r" per column        */
  int cell, ncells;         /* ST_DOC_TABLE: its cells, row by row        */
  size_t file, title;       /* ST_DOC_FIGURE: NAME.png, and what it shows */
} StBlock;

typedef struct {
  Buf text;                 /* every string of the document               */
  int nblocks, nspans, ncells;
  int capblocks, capspans, capcells;
  StBlock *blocks;
  StSpan *spans;
  StCell *cells;
  int html_only;            /* blocks added now are left out of report.md */
  int row;                  /* the next cell starts a row                 */
  int oom;                  /* memory ran out: the document is not whole  */
} StDoc;

void st_doc_init(StDoc *d);
void st_doc_free(StDoc *d);
/* Starts a block; text, strong, code and link then add to it. */
void st_doc_heading(StDoc *d, int level, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
void st_doc_para(StDoc *d);
void st_doc_item(StDoc *d);
void st_doc_numbered(StDoc *d);
/* Names the block just started, for links ("#" and the name). */
void st_doc_anchor(StDoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Inline text of the block being written (not a table). */
void st_doc_text(StDoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_doc_strong(StDoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_doc_code(StDoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void st_doc_link(StDoc *d, const char *href, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* Starts a table with the columns' alignments ("lrr": left, right,
   right); then rows of cells, the header row first. */
void st_doc_table(StDoc *d, const char *align);
void st_doc_row(StDoc *d);
void st_doc_cell(StDoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A cell that shows v (with its spread sd, NaN if none) as fmt says. */
void st_doc_num(StDoc *d, double v, double sd, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
/* No cell: the row's place is left empty. */
void st_doc_none(StDoc *d);
/* Makes the last cell a link. */
void st_doc_cell_link(StDoc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A plot: its PNG file in the output directory and what it shows. */
void st_doc_figure(StDoc *d, const char *png, const char *title);
/* Whether the blocks added from now on are the HTML's only. */
void st_doc_html_only(StDoc *d, int on);
/* A string of the document, by its offset. */
const char *st_doc_str(const StDoc *d, size_t at);
/* Writes the document as Markdown (report.md). */
void st_doc_markdown(const StDoc *d, FILE *f);

/* ---- html.c: the report as one web page ---- */

/* Writes the document as one self-contained HTML page: styles inline,
   each figure the SVG that gnuplot drew beside its PNG in dir, inline;
   tables sorted by a click on a column header (a few lines of script;
   the page reads the same without). -1 with err set when a figure cannot
   be read. */
int st_doc_html(const StDoc *d, const char *dir, FILE *f, char *err, size_t errlen);

/* ---- out.c: the files of the output directory ---- */

/* Creates dir and its parents; 0, or -1 with err set. */
int st_make_dir(const char *dir, char *err, size_t errlen);
/* Opens dir/name for writing (name may be in a folder of dir: plots/x);
   NULL with err set. */
FILE *st_open_out(const char *dir, const char *name, char *err, size_t errlen);
/* Writes one CSV field, quoted if it needs to be; then ',' or a newline. */
void st_csv_text(FILE *f, const char *s, int last);
/* Writes a number field: 17 significant digits, empty for NaN. */
void st_csv_real(FILE *f, double v, int last);

/* ---- plot.c: figures drawn by gnuplot ---- */

#define ST_MAX_PLOTS 16

/* The plots of a report: data files and gnuplot scripts under
   DIR/plots/, drawn into DIR/NAME.png and DIR/NAME.svg by a gnuplot child
   process. */
typedef struct {
  char dir[MAX_PATH_LEN];
  FILE *script;             /* DIR/plots/plots.gp: draws every figure     */
  FILE *gp;                 /* DIR/plots/NAME.gp: the figure being written */
  int n;
  char png[ST_MAX_PLOTS][64];     /* each figure's PNG, in DIR (the SVG beside) */
  char title[ST_MAX_PLOTS][128];  /* and what it shows                    */
  int drawn;                /* 1 once gnuplot drew them all               */
  char why[MAX_PATH_LEN + 256]; /* why not, when not                       */
} StPlots;

/* Creates DIR/plots/ and starts the script. */
int st_plots_open(StPlots *pl, const char *dir, char *err, size_t errlen);
/* Closes the scripts, unfinished (st_plots_draw closes them itself). */
void st_plots_close(StPlots *pl);
/* Opens DIR/plots/NAME for a figure's data; NULL with err set. */
FILE *st_plots_data(StPlots *pl, const char *name, char *err, size_t errlen);
/* Starts a figure: its name (NAME.png and NAME.svg in DIR), its size in
   pixels and what it shows; the caller then writes gnuplot commands to
   pl->gp, with data files named "plots/NAME". -1 with err set when its
   script cannot be written. */
int st_plots_figure(StPlots *pl, const char *name, int width, int height,
                    const char *title, char *err, size_t errlen);
/* Writes s as a gnuplot string literal: "..." with escapes. */
void st_plots_string(FILE *gp, const char *s);
/* Sets an axis (x or y) for values in [lo, hi]: a log scale when they
   span more than a factor 20, else linear from 0 when they are all
   positive; autoscaled when lo or hi is not finite. */
void st_plots_axis(FILE *gp, char axis, double lo, double hi);
/* The figures every study has: test loss per epoch, final test loss. */
int st_plots_study(StPlots *pl, const StFigs *f, char *err, size_t errlen);
/* Ends the script and runs gnuplot on it. A missing or failing gnuplot
   is not an error: pl->why says what happened and term gets a warning. */
void st_plots_draw(StPlots *pl, FILE *term);

/* ---- conclude.c: the conclusions, derived from the figures ---- */

/* Ranks the distinct models by final test loss (by validation loss when
   every experiment holds out a split, the test loss beside it), tests
   each against the base and against each other, and adds the report's
   conclusions to d, writes every comparison to csv (comparisons.csv) and
   the ranking to term. */
void st_conclude(const StFigs *f, StDoc *d, FILE *csv, FILE *term);

/* ---- health.c: the activation-health figures ---- */

/* Reads the health figures of each distinct model's finished runs (the
   experiments i with f->exp[i].same == i); NULL on a database error. */
StHealthFigs *st_health_load(const StFigs *f);
void st_health_free(StHealthFigs *h, int nexp);
/* health.csv: each experiment's every figure per epoch, mean and
   standard deviation over its finished runs. */
void st_health_csv(const StFigs *f, FILE *csv);
/* Adds health.png to pl, if any run has health figures; returns how many
   distinct models have them, -1 when a file cannot be written. */
int st_health_plots(const StFigs *f, StPlots *pl, char *err, size_t errlen);
/* The report's "Activation health" section: the table and the figure. */
void st_health_section(const StFigs *f, const StPlots *pl, StDoc *d);
/* The conclusions' last part: what the health figures show about why the
   models rank as they do (rank: the first experiment of each distinct
   model, best first). */
void st_health_why(const StFigs *f, const int *rank, int nrank, StDoc *d);

/* ---- stats.c: statistics for the conclusions ---- */

#define ST_PERM_MAX 20            /* values at most in a permutation test */

/* Mean and sample standard deviation (n − 1) of x[0..n); NaN when n is
   0 (mean) or below 2 (std). */
void st_mean_std(const double *x, int n, double *mean, double *std);
/* The regularized incomplete beta function I_x(a, b) (GSL's); NaN
   unless a and b are positive. */
double st_beta_inc(double a, double b, double x);
/* The two-sided p of Student's t distribution: P(|T| >= |t|) with df
   (not necessarily whole) degrees of freedom (GSL's); NaN when t is NaN
   or df is not positive. */
double st_t_p(double t, double df);

/* Welch's t-test of mean(a) − mean(b), variances not assumed equal. */
typedef struct {
  double diff;              /* mean(a) − mean(b)                          */
  double t, df, p;          /* NaN with fewer than 2 values on a side     */
} StWelch;
StWelch st_welch(const double *a, int na, const double *b, int nb);

/* The exact permutation test of the difference of means: of all
   C(na + nb, na) ways to split the pooled values into groups of na and
   nb, the share whose |difference of means| is at least the observed. */
typedef struct {
  double p;                 /* two-sided; NaN if a side is empty or there
                               are more than ST_PERM_MAX values          */
  double min_p;             /* the smallest p these sizes can give        */
  long count, total;        /* splits at least as extreme; all splits     */
} StPerm;
StPerm st_permutation(const double *a, int na, const double *b, int nb);

/* Holm's step-down adjustment of n p values for testing them together;
   NaN values are left out and stay NaN. */
void st_holm(const double *p, int n, double *adj);

/* ---- seq.c: the sequential test of adaptive studies ---- */

/* The anytime-valid two-sample test of two models' final losses, seed by
   seed (a conformal test martingale on their sequential ranks). */
typedef struct {
  int n;                    /* seeds compared                             */
  int decided;              /* the seeds after which its e-value first
                               reached the threshold; 0: not decided      */
  int lower;                /* -1: a's losses lower, +1: b's (the side the
                               bets won on)                               */
  double e;                 /* the e-value then, or after n seeds         */
} StSeq;

/* Tests a[0..n) against b[0..n) (their runs of the same n seeds, in
   increasing order; a diverged run is +infinity), deciding when the
   e-value reaches threshold (the number of comparisons over alpha);
   under the null, the chance that it ever does is at most 1/threshold. */
StSeq st_seq_test(const double *a, const double *b, int n, double threshold);

/* ---- adaptive.c: adaptive seeds ---- */

/* Replays an adaptive study's rounds on the runs db holds (st_db_prepare
   first) and sets the plan's wanted seeds to those of the round that
   lacks runs, or of the last round. Says on term each round past the
   first *said (which it counts up) and how the rounds ended. Returns the
   number of runs to do (0: done), -1 on a database error. */
int st_adaptive_next(StPlan *p, sqlite3 *db, int *said, FILE *term, char *err,
                     size_t errlen);
/* The report's section "Adaptive seeds" and its lines on the terminal:
   each comparison's verdict, and the ranking with the orders
   established. */
void st_adaptive_report(const StFigs *f, StDoc *d, FILE *term);

/* ---- driver.c: the driver ---- */

/* `mlpc STUDY.json --run [options]`; returns the exit status. */
int st_main(const char *file, int argc, char **argv);

#endif
