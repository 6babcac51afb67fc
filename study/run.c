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
 * still compiling, so each object is compiled once.
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

typedef struct {
  StPlan *p;
  sqlite3 *db;
  const StRunOptions *o;
  Worker *w;
  int nw;
  char *state;          /* per task                                       */
  char *code;           /* per code                                       */
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
    h.nprobes = r->nprobes;
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
         h->errlen >= 0 && h->errlen <= 4096;
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
                h.nhealth, h.nprobes, (StHealthName *)(p + ep), (StHealthValue *)(p + ep + hn)},
               p + ep + hn + hv};
  return m->err[h.errlen] ? -1 : 0;
}

void st_job(const StPlan *p, int task, StJob *j) {
  const StTask *t = &p->tasks[task];
  const Model *m = &p->s->exp[t->exp].model;
  *j = (StJob){task, t->code, p->codes[t->code].unit, p->backend, m->dtype, t->seed,
               m->epochs, p->shuffle, m->max_batches, t->data_dir};
}

int st_compile(StWorker *w, const StJob *j, Buf *out) {
  char err[2048];
  if (w->jit && w->code == j->code)
    return 0;
  jit_free(w->jit);
  w->jit = j->backend == BACKEND_TCC ? jit_tcc(j->unit, j->dtype, err, sizeof err)
                                     : jit_gcc(j->unit, w->cache, err, sizeof err);
  w->code = w->jit ? j->code : -1;
  if (!w->jit)
    st_msg(out, ST_MSG_ERROR, j->task, NULL, err);
  return w->jit ? 0 : -1;
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
  const RtNet *net = jit_net(w->jit);
  rt_init(net, j->seed);
  int status = rt_train(net, &o);
  c.r.seconds = rt_now() - t0;
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

/* A worker's life: runs until its input closes, or its first error. */
static void worker(const StPlan *p, int in, int out) {
  StWorker w = {NULL, -1, "out/cache"};
  Buf m = {0};
  StJob j;
  int task;
  while (read_full(in, &task, sizeof task) == 1) {
    st_job(p, task, &j);
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

/* Hands out runs to free workers; the number of busy workers. */
static int dispatch(Sched *S) {
  int busy = 0;
  for (int i = 0; i < S->nw; i++) {
    Worker *w = &S->w[i];
    if (w->pid > 0 && w->task < 0 && !S->fatal && (w->task = pick(S, w)) >= 0) {
      S->state[w->task] = RUNNING;
      /* if this fails the worker is dead: its result pipe will say so */
      (void)write_full(w->to, &w->task, sizeof w->task);
    }
    busy += w->pid > 0 && w->task >= 0;
  }
  return busy;
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

/* Waits for messages (or a signal, or the progress clock). */
static void wait_messages(Sched *S) {
  struct pollfd fds[256];
  int who[256], n = 0;
  for (int i = 0; i < S->nw && n < 256; i++)
    if (S->w[i].pid > 0 && S->w[i].task >= 0)
      fds[n] = (struct pollfd){S->w[i].from, POLLIN, 0}, who[n++] = i;
  if (poll(fds, (nfds_t)n, S->o->progress ? 500 : -1) <= 0)
    return;
  for (int i = 0; i < n; i++)
    if (fds[i].revents)
      receive(S, &S->w[who[i]]);
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
    S->code[c] = p->backend == BACKEND_TCC ? READY : NEW;
  S->nw = S->o->jobs < S->total ? S->o->jobs : S->total;
  S->w = calloc((size_t)S->nw + 1, sizeof *S->w);
  S->t0 = rt_now();
  return S->total;
}

/* After the loop: stops the workers, says what happened; the status. */
static int finish(Sched *S) {
  int stopped = stop_signal != 0;
  for (int i = 0; i < S->nw; i++)
    reap(&S->w[i], stopped || S->fatal);
  clear_line(S);
  free(S->state), free(S->code), free(S->w);
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
    if (o->progress && rt_now() - S.shown >= 0.5)
      progress(&S);
    wait_messages(&S);
  }
  return finish(&S);
}
