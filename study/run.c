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
 * A message is a Msg, then its nepochs RtEpoch records, its nhealth
 * StHealthName records (the health figures' names) and its nprobes ×
 * nhealth StHealthValue records (probe 0: the initial weights).
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
#include <time.h>
#include <unistd.h>
#include "study.h"

/* What a worker sends: its code is compiled, a run's figures, an error. */
enum { MSG_COMPILED, MSG_RESULT, MSG_ERROR };

typedef struct {
  int kind;             /* MSG_*                                          */
  int task;
  int nepochs;          /* RtEpoch records that follow                    */
  int diverged_epoch;
  long diverged_step;
  double seconds;
  int nhealth;          /* StHealthName records after the epochs          */
  int nprobes;          /* and nprobes × nhealth StHealthValue records    */
  char err[1024];       /* MSG_ERROR                                      */
} Msg;

#define MSG_MAX_RECORDS 100000  /* of each kind, at most                  */

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

/* Seconds on a monotonic clock. */
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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

/* ---- the worker ---- */

/* What one run collects from rt_train. */
typedef struct {
  Msg m;
  RtEpoch *e;
  int room;             /* probes at most: epochs + 1                     */
  StHealthName *hn;     /* (m.nhealth)                                    */
  StHealthValue *hv;    /* (room, m.nhealth)                              */
} Collect;

/* Keeps an epoch's figures; the first one not finite ends the record. */
static void collect(void *ctx, const RtEpoch *e) {
  Collect *c = ctx;
  if (c->m.diverged_epoch)
    return;
  if (e->diverged_step || !isfinite(e->test_loss) || !isfinite(e->test_acc)) {
    c->m.diverged_epoch = e->epoch;
    c->m.diverged_step = e->diverged_step;
    return;
  }
  c->e[c->m.nepochs++] = *e;
}

/* Keeps a probe's health figures (epoch 0: the initial weights). */
static void collect_health(void *ctx, int epoch, const RtHealth *h) {
  Collect *c = ctx;
  if (c->m.diverged_epoch || epoch >= c->room || h->nrows > MSG_MAX_RECORDS)
    return;
  if (!c->hn) {
    c->hn = calloc((size_t)h->nrows + 1, sizeof *c->hn);
    c->hv = calloc((size_t)c->room * h->nrows + 1, sizeof *c->hv);
    if (!c->hn || !c->hv) {
      fprintf(stderr, "mlpc: error: out of memory\n");
      _exit(1);
    }
    c->m.nhealth = h->nrows;
    for (int i = 0; i < h->nrows; i++) {
      snprintf(c->hn[i].layer, sizeof c->hn[i].layer, "%s", h->rows[i].layer);
      snprintf(c->hn[i].figure, sizeof c->hn[i].figure, "%s", h->rows[i].figure);
    }
  }
  for (int i = 0; i < c->m.nhealth && h->nrows == c->m.nhealth; i++)
    c->hv[(size_t)epoch * c->m.nhealth + i] = (StHealthValue){h->rows[i].value,
                                                               h->rows[i].na};
  c->m.nprobes = epoch + 1;
}

/* Sends a message and its records; exits if the parent is gone. */
static void send(int fd, const Msg *m, const RtEpoch *e, const StHealthName *hn,
                 const StHealthValue *hv) {
  if (write_full(fd, m, sizeof *m) ||
      write_full(fd, e, (size_t)m->nepochs * sizeof *e) ||
      write_full(fd, hn, (size_t)m->nhealth * sizeof *hn) ||
      write_full(fd, hv, (size_t)m->nprobes * m->nhealth * sizeof *hv))
    _exit(1);
}

/* Sends an error and exits. */
static void send_error(int fd, int task, const char *msg) {
  Msg m = {.kind = MSG_ERROR, .task = task};
  snprintf(m.err, sizeof m.err, "%s", msg);
  send(fd, &m, NULL, NULL, NULL);
  _exit(1);
}

/* Compiles one code with the plan's backend. */
static Jit *compile(const StPlan *p, int code, char *err, size_t errlen) {
  const StCode *c = &p->codes[code];
  if (p->backend == BACKEND_TCC)
    return jit_tcc(c->unit, p->s->exp[c->exp].model.dtype, err, errlen);
  return jit_gcc(c->unit, "out/cache", err, errlen);
}

/* Trains one run and sends its figures. */
static void run_task(const StPlan *p, Jit *j, int task, int out) {
  const StTask *t = &p->tasks[task];
  const Model *m = &p->s->exp[t->exp].model;
  Collect c = {.m = {.kind = MSG_RESULT, .task = task}, .room = m->epochs + 1};
  c.e = calloc((size_t)m->epochs, sizeof *c.e);
  RtOptions o = {.epochs = m->epochs, .seed = t->seed, .max_batches = m->max_batches,
                 .shuffle = p->shuffle, .data = t->data_dir, .on_epoch = collect, .ctx = &c,
                 .health = 1, .on_health = collect_health};
  double t0 = now();
  const RtNet *net = jit_net(j);
  rt_init(net, t->seed);
  int status = rt_train(net, &o);
  c.m.seconds = now() - t0;
  if (status && !c.m.diverged_epoch)
    send_error(out, task, "training failed; see the message above");
  if (c.m.nprobes > c.m.nepochs + 1)  /* the probe of the epoch it diverged at */
    c.m.nprobes = c.m.nepochs + 1;
  send(out, &c.m, c.e, c.hn, c.hv);
  free(c.e), free(c.hn), free(c.hv);
}

/* A worker's life: runs until its input closes. */
static void worker(const StPlan *p, int in, int out) {
  Jit *j = NULL;
  int held = -1, task;
  char err[2048];
  while (read_full(in, &task, sizeof task) == 1) {
    int code = p->tasks[task].code;
    if (code != held) {
      jit_free(j);
      if (!(j = compile(p, code, err, sizeof err)))
        send_error(out, task, err);
      held = code;
      send(out, &(Msg){.kind = MSG_COMPILED, .task = task}, NULL, NULL, NULL);
    }
    run_task(p, j, task, out);
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
  double t = now();
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

/* Says that a run finished, on a log line when not on a terminal. */
static void log_run(Sched *S, int task, const Msg *m, const RtEpoch *e) {
  char name[512];
  if (S->o->progress)
    return progress(S);
  run_name(S, task, name, sizeof name);
  fprintf(stderr, "mlpc: [%d/%d] %s: ", S->done + S->failed, S->total, name);
  if (m->diverged_epoch)
    fprintf(stderr, "diverged at epoch %d, %s %ld", m->diverged_epoch,
            m->diverged_step ? "step" : "in the test pass", m->diverged_step);
  else if (m->nepochs)
    fprintf(stderr, "test loss %.4f, accuracy %.2f%%", e[m->nepochs - 1].test_loss,
            100 * e[m->nepochs - 1].test_acc);
  fprintf(stderr, " (%.1f s)\n", m->seconds);
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
static void finished(Sched *S, Worker *w, const Msg *m, const StResult *r) {
  char err[2048];
  w->task = -1;
  int rc = st_db_put(S->db, S->p, m->task, r, err, sizeof err);
  if (rc) {
    clear_line(S);
    fprintf(stderr, "mlpc: %s: %s: %s\n", rc > 0 ? "warning" : "error", S->o->db_path, err);
  }
  if (rc < 0) {
    S->state[m->task] = FAILED, S->failed++, S->fatal = 1;
    return;
  }
  S->state[m->task] = DONE, S->done++;
  S->diverged += m->diverged_epoch > 0;
  log_run(S, m->task, m, r->epochs);
}

/* Reads n records of size each after a message; whether all came. */
static int read_records(const Worker *w, void **p, long n, size_t size) {
  *p = calloc((size_t)n + 1, size);
  return *p && (!n || read_full(w->from, *p, (size_t)n * size) == 1);
}

/* Whether a message's header is one this parent can take. */
static int valid(const Worker *w, const Msg *m) {
  return m->task == w->task && m->nepochs >= 0 && m->nepochs <= MSG_MAX_RECORDS &&
         m->nhealth >= 0 && m->nhealth <= MSG_MAX_RECORDS && m->nprobes >= 0 &&
         m->nprobes <= m->nepochs + 1;
}

/* Reads and handles one message from worker w. */
static void receive(Sched *S, Worker *w) {
  Msg m;
  if (read_full(w->from, &m, sizeof m) != 1 || !valid(w, &m))
    return lost(S, w);
  StResult r = {m.nepochs, NULL, m.diverged_epoch, m.diverged_step, m.seconds, m.nhealth,
                m.nprobes, NULL, NULL};
  int whole = read_records(w, (void **)&r.epochs, m.nepochs, sizeof *r.epochs) &&
              read_records(w, (void **)&r.hnames, m.nhealth, sizeof *r.hnames) &&
              read_records(w, (void **)&r.health, (long)m.nprobes * m.nhealth,
                           sizeof *r.health);
  if (!whole)
    lost(S, w);
  else if (m.kind == MSG_COMPILED)
    S->code[S->p->tasks[m.task].code] = READY, w->code = S->p->tasks[m.task].code;
  else if (m.kind == MSG_RESULT)
    finished(S, w, &m, &r);
  else {
    clear_line(S);
    fprintf(stderr, "mlpc: error: %s\n", m.err);
    S->state[m.task] = FAILED, S->failed++, S->fatal = 1, w->task = -1;
  }
  free(r.epochs), free(r.hnames), free(r.health);
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
    S->state[i] = p->tasks[i].run_id > 0 && !p->tasks[i].no_health ? DONE : PENDING,
    S->total += S->state[i] == PENDING;
  for (int c = 0; c < p->ncodes; c++)
    S->code[c] = p->backend == BACKEND_TCC ? READY : NEW;
  S->nw = S->o->jobs < S->total ? S->o->jobs : S->total;
  S->w = calloc((size_t)S->nw + 1, sizeof *S->w);
  S->t0 = now();
  return S->total;
}

/* After the loop: stops the workers, says what happened; the status. */
static int finish(Sched *S) {
  int stopped = stop_signal != 0;
  for (int i = 0; i < S->nw; i++)
    reap(&S->w[i], stopped || S->fatal);
  clear_line(S);
  int left = S->total - S->done;
  if (stopped)
    fprintf(stderr, "mlpc: interrupted: %d of %d runs are recorded in %s; run the same "
            "command again to do the %d left\n", S->done, S->total, S->o->db_path, left);
  else if (S->failed || S->fatal)
    fprintf(stderr, "mlpc: %d of %d runs failed or were not done; the %d finished are in "
            "%s; run the same command again to retry\n", left, S->total, S->done,
            S->o->db_path);
  free(S->state), free(S->code), free(S->w);
  return stopped ? 128 + stop_signal : S->failed || S->fatal ? 1 : 0;
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
    if (o->progress && now() - S.shown >= 0.5)
      progress(&S);
    wait_messages(&S);
  }
  return finish(&S);
}
