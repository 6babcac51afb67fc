/*
 * run.c — a study's runs on worker processes.
 *
 * The parent forks --jobs workers. Each worker reads run numbers from its
 * own pipe, and for each: compiles the run's code unless it holds it
 * already (gcc: a cached object under out/cache), draws the initial
 * weights for the seed, trains single-threaded with the health figures
 * on (docs/health.md), and writes the figures back on its result pipe.
 * A run's result depends only on its code, seed, data and settings,
 * never on the worker or on --jobs.
 *
 * A message (st_msg) is a header, then its nepochs RtEpoch records, its
 * nhealth StHealthName records (the health figures' names), its nprobes ×
 * nhealth StHealthValue records (probe 0: the initial weights) and an
 * error text; on a pipe, its length goes first. What a worker does with
 * one run (st_job, st_compile, st_train) and that message (st_msg,
 * st_msg_parse) are shared with the MPI ranks of mpi.c: the same code
 * runs, the same bytes travel.
 *
 * The parent alone writes the database, one transaction per run, as
 * results arrive. It hands a free worker a run of the code it holds if
 * there is one; with gcc it hands out no run of a code another worker is
 * still compiling, so each object is compiled once. Tiered, any worker
 * starts any run on tcc's code at once while the parent builds gcc's
 * objects beside them (build.c), and tells the workers on a code when
 * its object is ready: a worker's input carries runs and such notices.
 *
 * Ctrl-C (SIGINT, SIGTERM, SIGHUP) stops the workers and says how to
 * resume; a worker whose parent dies (kill -9) dies with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "study.h"

typedef struct {
  pid_t pid;
  int to, from;         /* run numbers in, messages out                   */
  int task;             /* the run it is on, -1 when free                 */
  int code;             /* the code it holds, -1 for none                 */
} Worker;

/* Task and code states. */
enum { PENDING, RUNNING, DONE, FAILED };
enum { NEW, COMPILING, READY };

/* One record on a worker's input: a run (task >= 0) and where its code's
   gcc object is (TIER_*; -1 unless tiered), or a notice (task -1 - c)
   that code c's object is now ready, or failed (state). */
typedef struct {
  int task, state;
} Order;

typedef struct {
  StPlan *p;
  sqlite3 *db;
  const StRunOptions *o;
  Worker *w;
  int nw;
  char *state;          /* per task                                       */
  char *code;           /* per code                                       */
  StBuilds *builds;     /* tiered: gcc's objects                          */
  int *need;            /* tiered: per code, how soon its object is needed */
  char *told;           /* tiered: per code, the state workers were told  */
  double run_seconds;   /* the runs finished so far: their seconds        */
  int timed;            /* and how many                                   */
  int total, done, failed, diverged;
  int fatal;
  double t0, shown;
} Sched;

static volatile sig_atomic_t stop_signal;

/* Notes a stop request. */
static void on_signal(int sig) { stop_signal = sig; }

/* Reads exactly n bytes; 1, 0 at end of file, -1 on error. */
static int read_full(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n) {
    ssize_t k = read(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return k == 0 && p == buf ? 0 : -1;
    p += k, n -= (size_t)k;
  }
  return 1;
}

/* Writes exactly n bytes; 0 or -1. */
static int write_full(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    p += k, n -= (size_t)k;
  }
  return 0;
}

/* ---- one run, for any transport ---- */

#define MSG_MAGIC 0x6d6c7031u  /* "mlp1": a message of this layout       */
#define MSG_MAX (64u << 20)    /* a message's size at most                */

/* A message's header; its records follow, then errlen bytes of error
   text and a 0. Both ends run the same build (MPI: the same mlpc on every
   host), so the layout is the host's. */
typedef struct {
  uint32_t magic;
  int kind, task, nepochs, diverged_epoch, errlen;
  long diverged_step;
  double seconds;
  int nhealth;          /* StHealthName records after the epochs          */
  int nprobes;          /* and nprobes × nhealth StHealthValue records    */
  int ran;              /* StResult's                                     */
  RtWhere gcc_from;
} MsgHead;

#define MSG_MAX_RECORDS 100000  /* of each kind, at most                  */

/* Makes room for n more bytes at the end of b; where they go. */
static char *grow(Buf *b, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2;
    if (!(b->buf = realloc(b->buf, b->cap))) {
      fprintf(stderr, "mlpc: error: out of memory\n");
      _exit(1);
    }
  }
  b->len += n;
  return b->buf + b->len - n;
}

/* Appends n bytes to b. */
static void put(Buf *b, const void *p, size_t n) { memcpy(grow(b, n), p, n); }

void st_msg(Buf *out, int kind, int task, const StResult *r, const char *err) {
  MsgHead h = {.magic = MSG_MAGIC, .kind = kind, .task = task};
  if (r)
    h.nepochs = r->nepochs, h.diverged_epoch = r->diverged_epoch,
    h.diverged_step = r->diverged_step, h.seconds = r->seconds, h.nhealth = r->nhealth,
    h.nprobes = r->nprobes, h.ran = r->ran, h.gcc_from = r->gcc_from;
  size_t n = err ? strlen(err) : 0;
  h.errlen = n < 4096 ? (int)n : 4096;
  put(out, &h, sizeof h);
  if (r) {
    put(out, r->epochs, (size_t)h.nepochs * sizeof *r->epochs);
    put(out, r->hnames, (size_t)h.nhealth * sizeof *r->hnames);
    put(out, r->health, (size_t)h.nprobes * h.nhealth * sizeof *r->health);
  }
  put(out, err ? err : "", (size_t)h.errlen);
  put(out, "", 1);
}

/* Whether a header's counts are ones a message can hold. */
static int valid(const MsgHead *h) {
  return h->magic == MSG_MAGIC && h->kind >= ST_MSG_COMPILED && h->kind <= ST_MSG_ERROR &&
         h->nepochs >= 0 && h->nepochs <= MSG_MAX_RECORDS && h->nhealth >= 0 &&
         h->nhealth <= MSG_MAX_RECORDS && h->nprobes >= 0 && h->nprobes <= h->nepochs + 1 &&
         h->errlen >= 0 && h->errlen <= 4096 && h->ran >= TIER_RAN_TCC &&
         h->ran <= TIER_RAN_BOTH;
}

int st_msg_parse(const void *buf, size_t len, StMsg *m) {
  MsgHead h;
  if (len < sizeof h)
    return -1;
  memcpy(&h, buf, sizeof h);
  size_t ep = (size_t)h.nepochs * sizeof(RtEpoch), hn = (size_t)h.nhealth * sizeof(StHealthName),
         hv = (size_t)h.nprobes * h.nhealth * sizeof(StHealthValue);
  if (!valid(&h) || len != sizeof h + ep + hn + hv + (size_t)h.errlen + 1)
    return -1;
  const char *p = (const char *)buf + sizeof h;
  *m = (StMsg){h.kind, h.task,
               {h.nepochs, (RtEpoch *)p, h.diverged_epoch, h.diverged_step, h.seconds,
                h.nhealth, h.nprobes, (StHealthName *)(p + ep), (StHealthValue *)(p + ep + hn),
                h.ran, h.gcc_from},
               p + ep + hn + hv};
  return m->err[h.errlen] ? -1 : 0;
}

void st_job(const StPlan *p, int task, StJob *j) {
  const StTask *t = &p->tasks[task];
  const Model *m = &p->s->exp[t->exp].model;
  *j = (StJob){task, t->code, p->codes[t->code].unit, p->backend, m->dtype, t->seed,
               m->epochs, p->shuffle, m->max_batches, t->data_dir, -1};
}

int st_compile(StWorker *w, const StJob *j, Buf *out) {
  char err[2048];
  if ((w->jit || w->tier) && w->code == j->code)
    return 0;
  jit_free(w->jit), tier_free(w->tier);
  w->jit = NULL, w->tier = NULL;
  if (j->backend == BACKEND_TIERED && w->ask && j->object >= 0)
    w->tier = tier_follow(j->unit, j->dtype, w->cache, j->object, w->ask, w->ask_ctx, err,
                          sizeof err);
  else if (j->backend == BACKEND_TIERED)
    w->tier = tier_start(j->unit, j->dtype, w->cache, err, sizeof err);
  else
    w->jit = j->backend == BACKEND_TCC ? jit_tcc(j->unit, j->dtype, err, sizeof err)
                                       : jit_gcc(j->unit, w->cache, err, sizeof err);
  int ok = w->jit || w->tier;
  w->code = ok ? j->code : -1;
  if (!ok)
    st_msg(out, ST_MSG_ERROR, j->task, NULL, err);
  return ok ? 0 : -1;
}

/* What one run collects from rt_train. */
typedef struct {
  StResult r;           /* r.hnames (nhealth), r.health (room, nhealth)   */
  int room;             /* probes at most: epochs + 1                     */
} Collect;

/* Keeps an epoch's figures; the first one not finite ends the record. */
static void collect(void *ctx, const RtEpoch *e) {
  Collect *c = ctx;
  if (c->r.diverged_epoch || c->r.nepochs == c->room)
    return;
  if (e->diverged_step || !isfinite(e->test_loss) || !isfinite(e->test_acc)) {
    c->r.diverged_epoch = e->epoch;
    c->r.diverged_step = e->diverged_step;
    return;
  }
  c->r.epochs[c->r.nepochs++] = *e;
}

/* Keeps a probe's health figures (epoch 0: the initial weights). */
static void collect_health(void *ctx, int epoch, const RtHealth *h) {
  Collect *c = ctx;
  StResult *r = &c->r;
  if (r->diverged_epoch || epoch >= c->room || h->nrows > MSG_MAX_RECORDS)
    return;
  if (!r->hnames) {
    r->hnames = calloc((size_t)h->nrows + 1, sizeof *r->hnames);
    r->health = calloc((size_t)c->room * h->nrows + 1, sizeof *r->health);
    if (!r->hnames || !r->health) {
      fprintf(stderr, "mlpc: error: out of memory\n");
      _exit(1);
    }
    r->nhealth = h->nrows;
    for (int i = 0; i < h->nrows; i++) {
      snprintf(r->hnames[i].layer, sizeof r->hnames[i].layer, "%s", h->rows[i].layer);
      snprintf(r->hnames[i].figure, sizeof r->hnames[i].figure, "%s", h->rows[i].figure);
    }
  }
  for (int i = 0; i < r->nhealth && h->nrows == r->nhealth; i++)
    r->health[(size_t)epoch * r->nhealth + i] = (StHealthValue){h->rows[i].value,
                                                                h->rows[i].na};
  r->nprobes = epoch + 1;
}

int st_train(StWorker *w, const StJob *j, Buf *out) {
  Collect c = {.room = j->epochs + 1};
  c.r.epochs = calloc((size_t)c.room, sizeof *c.r.epochs);
  RtOptions o = {.epochs = j->epochs, .seed = j->seed, .max_batches = j->max_batches,
                 .shuffle = j->shuffle, .data = j->data_dir, .on_epoch = collect, .ctx = &c,
                 .health = 1, .on_health = collect_health};
  double t0 = rt_now();
  if (w->tier)
    tier_run_start(w->tier), o.next_net = tier_next, o.tier = w->tier;
  const RtNet *net = w->tier ? tier_net(w->tier) : jit_net(w->jit);
  rt_init(net, j->seed);
  int status = rt_train(net, &o);
  c.r.seconds = rt_now() - t0;
  c.r.ran = w->tier ? tier_ran(w->tier, &c.r.gcc_from)
          : j->backend == BACKEND_TCC ? TIER_RAN_TCC : TIER_RAN_GCC;
  if (c.r.nprobes > c.r.nepochs + 1)  /* the probe of the epoch it diverged at */
    c.r.nprobes = c.r.nepochs + 1;
  int failed = status && !c.r.diverged_epoch;
  if (failed)
    st_msg(out, ST_MSG_ERROR, j->task, NULL, "training failed; see the message above");
  else
    st_msg(out, ST_MSG_RESULT, j->task, &c.r, NULL);
  free(c.r.epochs), free(c.r.hnames), free(c.r.health);
  return failed ? -1 : 0;
}

/* ---- the worker ---- */

/* Sends a message, its length first; exits if the parent is gone. */
static void send(int fd, const Buf *m) {
  uint32_t n = (uint32_t)m->len;
  if (write_full(fd, &n, sizeof n) || write_full(fd, m->buf, m->len))
    _exit(1);
}

/* What a worker hears of the objects its parent builds (tiered). */
typedef struct {
  int in;               /* its input: runs and notices                    */
  char *state;          /* per code: TIER_*                               */
  int code;             /* the code of the run under way                  */
} Heard;

/* Reads one record of the worker's input, taking in a notice: 1 for a
   run, 0 for a notice, -1 at the end of the input. */
static int hear(Heard *h, Order *o) {
  if (read_full(h->in, o, sizeof *o) != 1)
    return -1;
  if (o->task >= 0)
    return 1;
  h->state[-1 - o->task] = (char)o->state;
  return 0;
}

/* TierAsk for a worker: takes in the notices that have come, or with
   wait those until the run's code's object is ready or failed. */
static int ask_parent(void *ctx, int wait) {
  Heard *h = ctx;
  Order o;
  struct pollfd p = {h->in, POLLIN, 0};
  while (h->state[h->code] == TIER_WAITING && (wait || poll(&p, 1, 0) > 0))
    if (hear(h, &o))
      _exit(1); /* the parent is gone, or broke the protocol with a run now */
  return h->state[h->code];
}

/* A worker's life: runs until its input closes, or its first error. */
static void worker(const StPlan *p, int in, int out) {
  Heard h = {in, calloc((size_t)p->ncodes + 1, 1), -1};
  StWorker w = {NULL, -1, "out/cache", NULL, ask_parent, &h};
  Buf m = {0};
  StJob j;
  Order o;
  int rc;
  while ((rc = hear(&h, &o)) >= 0) {
    if (!rc)
      continue;
    int task = o.task;
    st_job(p, task, &j);
    j.object = o.state;
    h.code = j.code;
    if (o.state >= 0)
      h.state[j.code] = (char)o.state;
    m.len = 0;
    if (j.code != w.code) {
      if (st_compile(&w, &j, &m))
        send(out, &m), _exit(1);
      st_msg(&m, ST_MSG_COMPILED, task, NULL, NULL);
      send(out, &m);
      m.len = 0;
    }
    int rc = st_train(&w, &j, &m);
    send(out, &m);
    if (rc)
      _exit(1);
  }
  _exit(0);
}

/* ---- workers ---- */

/* In a new worker: dies with the parent, leaves Ctrl-C to it, and closes
   the other workers' pipes. */
static void child_setup(Sched *S, Worker *self, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  for (int i = 0; i < S->nw; i++)
    if (&S->w[i] != self && S->w[i].pid > 0)
      close(S->w[i].to), close(S->w[i].from);
  st_builds_forget(S->builds);
}

/* Starts worker slot w; 0 or -1. */
static int spawn(Sched *S, Worker *w) {
  int in[2], out[2];
  pid_t parent = getpid();
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
    return -1;
  fflush(stdout), fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    child_setup(S, w, parent);
    close(in[1]), close(out[0]);
    worker(S->p, in[0], out[1]);
  }
  close(in[0]), close(out[1]);
  *w = (Worker){pid, in[1], out[0], -1, -1};
  return 0;
}

/* Ends a worker: closes its pipes (it exits), or kills it; reaps it. */
static int reap(Worker *w, int kill_it) {
  int status = 0;
  if (w->pid <= 0)
    return 0;
  if (kill_it)
    kill(w->pid, SIGTERM);
  close(w->to), close(w->from);
  while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
    ;
  w->pid = 0;
  return status;
}

/* ---- progress ---- */

/* Formats seconds as m:ss or h:mm:ss. */
static void clock_text(char *buf, size_t n, double s) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* The run's name: its first experiment and its seed. */
static void run_name(const Sched *S, int task, char *buf, size_t n) {
  const StTask *t = &S->p->tasks[task];
  snprintf(buf, n, "%s seed %llu", S->p->s->exp[t->exp].name, (unsigned long long)t->seed);
}

/* The terminal's width, 80 if unknown. */
static int columns(void) {
  struct winsize ws;
  return ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
}

/* Redraws the progress line: runs done, the latest run started, elapsed
   and estimated time left. */
static void progress(Sched *S) {
  char line[1024], el[32], left[32] = "?", cur[512] = "";
  int busy = 0, latest = -1;
  double t = rt_now();
  for (int i = 0; i < S->nw; i++)
    if (S->w[i].task >= 0)
      busy++, latest = latest > S->w[i].task ? latest : S->w[i].task;
  if (latest >= 0)
    run_name(S, latest, cur, sizeof cur);
  clock_text(el, sizeof el, t - S->t0);
  int finished = S->done + S->failed;
  if (finished)
    clock_text(left, sizeof left, (t - S->t0) / finished * (S->total - finished));
  int n = snprintf(line, sizeof line, "[%d/%d] %s elapsed, ~%s left", finished, S->total, el,
                   left);
  if (busy)
    snprintf(line + n, sizeof line - n, " | %s%s", cur, busy > 1 ? " (and others)" : "");
  int w = columns() - 1;
  fprintf(stderr, "\r\033[K%.*s", w, line);
  fflush(stderr);
  S->shown = t;
}

/* Clears the progress line before other output. */
static void clear_line(const Sched *S) {
  if (S->o->progress)
    fprintf(stderr, "\r\033[K");
}

void st_log_run(const StPlan *p, int task, int n, int total, const StResult *r) {
  const StTask *t = &p->tasks[task];
  fprintf(stderr, "mlpc: [%d/%d] %s seed %llu: ", n, total, p->s->exp[t->exp].name,
          (unsigned long long)t->seed);
  if (r->diverged_epoch)
    fprintf(stderr, "diverged at epoch %d, %s %ld", r->diverged_epoch,
            r->diverged_step ? "step" : "in the test pass", r->diverged_step);
  else if (r->nepochs) {
    const RtEpoch *e = st_final_epoch(r);
    if (!isnan(e->val_loss))
      fprintf(stderr, "validation loss %.4f, ", e->val_loss);
    fprintf(stderr, "test loss %.4f, accuracy %.2f%%", e->test_loss, 100 * e->test_acc);
    if (e->best_epoch)
      fprintf(stderr, ", epoch %d of %d kept", e->epoch, r->nepochs);
  }
  fprintf(stderr, " (%.1f s)\n", r->seconds);
}

/* Says that a run finished, on a log line when not on a terminal. */
static void log_run(Sched *S, int task, const StResult *r) {
  if (S->o->progress)
    return progress(S);
  st_log_run(S->p, task, S->done + S->failed, S->total, r);
}

/* ---- scheduling ---- */

/* The first pending run of code c; -1 if none. */
static int task_of_code(const Sched *S, int c) {
  for (int i = 0; i < S->p->ntasks; i++)
    if (S->state[i] == PENDING && S->p->tasks[i].code == c)
      return i;
  return -1;
}

/* The first pending run whose code is in state st; -1 if none. */
static int task_in_state(const Sched *S, int st) {
  for (int i = 0; i < S->p->ntasks; i++)
    if (S->state[i] == PENDING && S->code[S->p->tasks[i].code] == st)
      return i;
  return -1;
}

/* The next run for worker w: one of the code it holds, else one whose
   code nobody compiles yet, else one of a compiled code; -1 for none. */
static int pick(Sched *S, const Worker *w) {
  int t = w->code >= 0 ? task_of_code(S, w->code) : -1;
  if (t < 0 && (t = task_in_state(S, NEW)) >= 0)
    S->code[S->p->tasks[t].code] = COMPILING;
  if (t < 0)
    t = task_in_state(S, READY);
  return t;
}

/* Where the gcc object of code c is, for a worker: TIER_*, or -1 when
   the study is not tiered. */
static int object_state(const Sched *S, int c) {
  return S->builds ? st_builds_state(S->builds, c) : -1;
}

/* Hands out runs to free workers; the number of busy workers. */
static int dispatch(Sched *S) {
  int busy = 0;
  for (int i = 0; i < S->nw; i++) {
    Worker *w = &S->w[i];
    if (w->pid > 0 && w->task < 0 && !S->fatal && (w->task = pick(S, w)) >= 0) {
      S->state[w->task] = RUNNING;
      Order o = {w->task, object_state(S, S->p->tasks[w->task].code)};
      /* if this fails the worker is dead: its result pipe will say so */
      (void)write_full(w->to, &o, sizeof o);
    }
    busy += w->pid > 0 && w->task >= 0;
  }
  return busy;
}

/* Whether building a code's object pays: what gcc's code saves of its
   runs to do (ST_GCC_SAVES of their time, as the runs so far took) is
   more than a build costs (as the builds so far took, and at least
   ST_BUILD_GUESS). Nothing is built before a run has been timed; under
   MLPC_TEST_SWITCH_AFTER, whose runs wait for their objects, everything
   is. */
static int pays(const Sched *S, int runs) {
  double build = st_builds_seconds(S->builds);
  if (tier_forced())
    return 1;
  return S->timed && runs * (S->run_seconds / S->timed) * ST_GCC_SAVES >
                     (build > ST_BUILD_GUESS ? build : ST_BUILD_GUESS);
}

/* The workers on a run of a code whose object is now ready, or failed,
   hear it (the others, with their next run of it). */
static void tell(Sched *S) {
  for (int c = 0; c < S->p->ncodes; c++) {
    Order o = {-1 - c, st_builds_state(S->builds, c)};
    if (o.state == S->told[c])
      continue;
    S->told[c] = (char)o.state;
    for (int i = 0; i < S->nw; i++) {
      Worker *w = &S->w[i];
      if (w->pid > 0 && w->task >= 0 && S->p->tasks[w->task].code == c)
        (void)write_full(w->to, &o, sizeof o);
    }
  }
}

/* Tiered: which objects to build, into S->need (as st_builds_schedule
   takes it): those of the codes of runs under way or to come, in the
   order their first runs were or will be handed out, when a build pays;
   a build under way goes on while a run of its code does. Then the
   builds follow, and the workers hear what changed. */
static void schedule_builds(Sched *S) {
  const StPlan *p = S->p;
  if (!S->builds)
    return;
  int *runs = calloc((size_t)p->ncodes + 1, sizeof *runs);
  for (int c = 0; c < p->ncodes; c++)
    S->need[c] = ST_NEED_NONE;
  for (int i = p->ntasks - 1; runs && i >= 0; i--)
    if (S->state[i] == PENDING || S->state[i] == RUNNING)
      S->need[p->tasks[i].code] = 1 + i, runs[p->tasks[i].code]++;
  for (int c = 0; runs && c < p->ncodes; c++)
    if (S->need[c] > 0 && !pays(S, runs[c]))
      S->need[c] = ST_NEED_NONE;
  for (int i = 0; i < S->nw; i++)
    if (S->w[i].pid > 0 && S->w[i].task >= 0 && S->need[p->tasks[S->w[i].task].code] < 0)
      S->need[p->tasks[S->w[i].task].code] = ST_NEED_KEEP;
  free(runs);
  st_builds_schedule(S->builds, S->need);
  tell(S);
}

/* Code c's build ended: its object is ready, or failed. */
static void built(Sched *S, int c) {
  st_builds_done(S->builds, c);
  tell(S);
}

/* A worker died: its run failed; a new worker takes its place. */
static void lost(Sched *S, Worker *w) {
  int status = reap(w, 1), task = w->task;
  char name[512];
  clear_line(S);
  if (task >= 0) {
    run_name(S, task, name, sizeof name);
    S->state[task] = FAILED, S->failed++;
    if (S->code[S->p->tasks[task].code] == COMPILING)
      S->code[S->p->tasks[task].code] = NEW;
    fprintf(stderr, "mlpc: error: %s: the worker died (%s %d); the run is not recorded\n",
            name, WIFSIGNALED(status) ? "signal" : "exit status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
  w->task = -1;
  if (S->done + S->failed < S->total && spawn(S, w))
    S->fatal = 1;
}

/* Records a finished run. */
static void finished(Sched *S, Worker *w, const StMsg *m) {
  char err[2048];
  w->task = -1;
  int rc = st_db_put(S->db, S->p, m->task, &m->r, err, sizeof err);
  if (rc) {
    clear_line(S);
    fprintf(stderr, "mlpc: %s: %s: %s\n", rc > 0 ? "warning" : "error", S->o->db_path, err);
  }
  if (rc < 0) {
    S->state[m->task] = FAILED, S->failed++, S->fatal = 1;
    return;
  }
  S->state[m->task] = DONE, S->done++;
  S->run_seconds += m->r.seconds, S->timed++;
  S->diverged += m->r.diverged_epoch > 0;
  log_run(S, m->task, &m->r);
}

/* Reads one message from worker w into buf; -1 if there is none whole. */
static int read_msg(Worker *w, Buf *buf, StMsg *m) {
  uint32_t n;
  if (read_full(w->from, &n, sizeof n) != 1 || n > MSG_MAX)
    return -1;
  buf->len = 0;
  if (read_full(w->from, grow(buf, n), n) != 1 || st_msg_parse(buf->buf, n, m))
    return -1;
  return m->task == w->task ? 0 : -1;
}

/* Reads and handles one message from worker w. */
static void receive(Sched *S, Worker *w) {
  static Buf buf;
  StMsg m;
  if (read_msg(w, &buf, &m))
    return lost(S, w);
  if (m.kind == ST_MSG_COMPILED)
    S->code[S->p->tasks[m.task].code] = READY, w->code = S->p->tasks[m.task].code;
  else if (m.kind == ST_MSG_RESULT)
    finished(S, w, &m);
  else {
    clear_line(S);
    fprintf(stderr, "mlpc: error: %s\n", m.err);
    S->state[m.task] = FAILED, S->failed++, S->fatal = 1, w->task = -1;
  }
}

/* Waits for messages and builds (or a signal, or the progress clock). */
static void wait_messages(Sched *S) {
  struct pollfd fds[512];
  int who[512], n = 0;
  for (int i = 0; i < S->nw && n < 256; i++)
    if (S->w[i].pid > 0 && S->w[i].task >= 0)
      fds[n] = (struct pollfd){S->w[i].from, POLLIN, 0}, who[n++] = i;
  int nb = S->builds ? st_builds_poll(S->builds, fds + n, who + n, 256) : 0;
  if (poll(fds, (nfds_t)(n + nb), S->o->progress ? 500 : -1) <= 0)
    return;
  for (int i = 0; i < n + nb; i++)
    if (fds[i].revents && i < n)
      receive(S, &S->w[who[i]]);
    else if (fds[i].revents)
      built(S, who[i]);
}

/* Installs the stop handlers; without SA_RESTART, so poll wakes up. */
static void catch_signals(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* Sets up the scheduler's state; the number of runs to do. */
static int setup(Sched *S) {
  StPlan *p = S->p;
  S->state = calloc((size_t)p->ntasks + 1, 1);
  S->code = calloc((size_t)p->ncodes + 1, 1);
  for (int i = 0; i < p->ntasks; i++)
    S->state[i] = st_task_done(&p->tasks[i]) ? DONE : PENDING,
    S->total += S->state[i] == PENDING;
  for (int c = 0; c < p->ncodes; c++)
    S->code[c] = p->backend == BACKEND_GCC ? NEW : READY;
  S->nw = S->o->jobs < S->total ? S->o->jobs : S->total;
  S->w = calloc((size_t)S->nw + 1, sizeof *S->w);
  if (p->backend == BACKEND_TIERED && S->total) {
    S->builds = st_builds_new(p, "out/cache", ST_MAX_BUILDS(S->nw), S->o->progress);
    S->need = calloc((size_t)p->ncodes + 1, sizeof *S->need);
    S->told = calloc((size_t)p->ncodes + 1, 1);
    for (int c = 0; S->builds && S->told && c < p->ncodes; c++)
      S->told[c] = (char)st_builds_state(S->builds, c);
  }
  S->t0 = rt_now();
  return S->total;
}

/* After the loop: stops the workers, says what happened; the status. */
static int finish(Sched *S) {
  int stopped = stop_signal != 0;
  for (int i = 0; i < S->nw; i++)
    reap(&S->w[i], stopped || S->fatal);
  st_builds_free(S->builds); /* a build the runs did not wait for stops */
  clear_line(S);
  free(S->state), free(S->code), free(S->w), free(S->need), free(S->told);
  return st_run_end(stop_signal, S->total, S->done, S->failed || S->fatal, S->o->db_path);
}

int st_run_end(int sig, int total, int done, int failed, const char *db_path) {
  if (sig)
    fprintf(stderr, "mlpc: interrupted: %d of %d runs are recorded in %s; run the same "
            "command again to do the %d left\n", done, total, db_path, total - done);
  else if (failed)
    fprintf(stderr, "mlpc: %d of %d runs failed or were not done; the %d finished are in "
            "%s; run the same command again to retry\n", total - done, total, done, db_path);
  return sig ? 128 + sig : failed ? 1 : 0;
}

int st_task_done(const StTask *t) {
  return !t->wanted || (t->run_id > 0 && !t->no_health);
}

int st_run(StPlan *p, sqlite3 *db, const StRunOptions *o) {
  Sched S = {.p = p, .db = db, .o = o};
  if (!setup(&S))
    return finish(&S);
  stop_signal = 0;
  catch_signals();
  for (int i = 0; i < S.nw; i++)
    if (spawn(&S, &S.w[i])) {
      fprintf(stderr, "mlpc: error: cannot start a worker: %s\n", strerror(errno));
      S.fatal = 1;
      break;
    }
  while (!stop_signal && !S.fatal && S.done + S.failed < S.total) {
    if (!dispatch(&S))
      break;
    schedule_builds(&S);
    if (o->progress && rt_now() - S.shown >= 0.5)
      progress(&S);
    wait_messages(&S);
  }
  return finish(&S);
}
