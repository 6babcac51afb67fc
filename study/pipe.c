/*
 * pipe.c — the local transport of the scheduler (sched.c): a study's runs
 * on worker processes, --jobs of them.
 *
 * The parent forks the workers. Each worker reads run numbers from its
 * own pipe, and for each: compiles the run's code unless it holds it
 * already (gcc: a cached object under out/cache), draws the initial
 * weights for the seed, trains single-threaded with the health figures
 * on (docs/health.md), and writes the figures back on its result pipe.
 * A run's result depends only on its code, seed, data and settings,
 * never on the worker or on --jobs.
 *
 * What a worker does with one run and the message it writes back are
 * job.c's, shared with the MPI ranks of mpi.c; on a pipe, a message's
 * length goes first. The scheduler (sched.c) decides what runs where and
 * what a worker that dies costs; this file starts the workers, carries
 * runs and messages, and reports a worker whose pipe ends as lost,
 * starting another in its place. Tiered, any worker
 * starts any run on tcc's code at once while the parent builds gcc's
 * objects beside them (build.c), and tells the workers on a code when
 * its object is ready: a worker's input carries runs and such notices.
 *
 * On Ctrl-C the scheduler stops; the workers are stopped with it. A
 * worker whose parent dies (kill -9) dies with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "study.h"

typedef struct {
  pid_t pid;
  int to, from;         /* run numbers in, messages out                   */
  int task;             /* the run it is on, -1 when free                 */
} Worker;

/* One record on a worker's input: a run (task >= 0) and where its code's
   gcc object is (TIER_*; -1 unless tiered), or a notice (task -1 - c)
   that code c's object is now ready, or failed (state). */
typedef struct {
  int task, state;
} Order;

/* The transport: the workers, and tiered, gcc's objects being built. */
typedef struct {
  StTransport t;        /* first: the scheduler's handle                  */
  const StPlan *p;
  int jobs;
  Worker *w;
  StBuilds *builds;     /* tiered: gcc's objects                          */
  int *need;            /* tiered: per code, how soon its object is needed */
  char *told;           /* tiered: per code, the state workers were told  */
  Buf buf;              /* the last message read                          */
  int next;             /* the worker to look at first                    */
} Pipes;

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

/* MLPC_TEST_WORKER_DIES=SEED: a worker handed a run of that seed dies
   (SIGKILL), as one the system kills would; for the tests of lost runs. */
static void test_death(const StJob *j) {
  const char *v = getenv("MLPC_TEST_WORKER_DIES");
  if (v && *v && strtoull(v, NULL, 10) == j->seed)
    raise(SIGKILL);
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
    test_death(&j);
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
static void child_setup(Pipes *P, Worker *self, pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1);
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  signal(SIGPIPE, SIG_DFL);
  for (int i = 0; i < P->t.nw; i++)
    if (&P->w[i] != self && P->w[i].pid > 0)
      close(P->w[i].to), close(P->w[i].from);
  st_builds_forget(P->builds);
}

/* Starts worker slot w; 0 or -1. */
static int spawn(Pipes *P, Worker *w) {
  int in[2], out[2];
  pid_t parent = getpid();
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
    return -1;
  fflush(stdout), fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    child_setup(P, w, parent);
    close(in[1]), close(out[0]);
    worker(P->p, in[0], out[1]);
  }
  close(in[0]), close(out[1]);
  *w = (Worker){pid, in[1], out[0], -1};
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

/* ---- gcc's objects, tiered ---- */

/* Where the gcc object of code c is, for a worker: TIER_*, or -1 when
   the study is not tiered. */
static int object_state(const Pipes *P, int c) {
  return P->builds ? st_builds_state(P->builds, c) : -1;
}

/* Whether building a code's object pays: what gcc's code saves of its
   runs to do (ST_GCC_SAVES of their time, as the runs so far took) is
   more than a build costs (as the builds so far took, and at least
   ST_BUILD_GUESS). Nothing is built before a run has been timed; under
   MLPC_TEST_SWITCH_AFTER, whose runs wait for their objects, everything
   is. */
static int pays(const Pipes *P, const StSched *S, int runs) {
  double build = st_builds_seconds(P->builds);
  if (tier_forced())
    return 1;
  return S->timed && runs * (S->run_seconds / S->timed) * ST_GCC_SAVES >
                     (build > ST_BUILD_GUESS ? build : ST_BUILD_GUESS);
}

/* The workers on a run of a code whose object is now ready, or failed,
   hear it (the others, with their next run of it). */
static void tell(Pipes *P) {
  for (int c = 0; c < P->p->ncodes; c++) {
    Order o = {-1 - c, st_builds_state(P->builds, c)};
    if (o.state == P->told[c])
      continue;
    P->told[c] = (char)o.state;
    for (int i = 0; i < P->t.nw; i++) {
      Worker *w = &P->w[i];
      if (w->pid > 0 && w->task >= 0 && P->p->tasks[w->task].code == c)
        (void)write_full(w->to, &o, sizeof o);
    }
  }
}

/* Tiered: which objects to build, into P->need (as st_builds_schedule
   takes it): those of the codes of runs under way or to come, in the
   order their first runs were or will be handed out, when a build pays;
   a build under way goes on while a run of its code does. Then the
   builds follow, and the workers hear what changed. */
static void schedule_builds(Pipes *P, const StSched *S) {
  const StPlan *p = P->p;
  if (!P->builds)
    return;
  int *runs = calloc((size_t)p->ncodes + 1, sizeof *runs);
  for (int c = 0; c < p->ncodes; c++)
    P->need[c] = ST_NEED_NONE;
  for (int i = p->ntasks - 1; runs && i >= 0; i--)
    if (S->state[i] == ST_PENDING || S->state[i] == ST_RUNNING)
      P->need[p->tasks[i].code] = 1 + i, runs[p->tasks[i].code]++;
  for (int c = 0; runs && c < p->ncodes; c++)
    if (P->need[c] > 0 && !pays(P, S, runs[c]))
      P->need[c] = ST_NEED_NONE;
  for (int i = 0; i < P->t.nw; i++)
    if (P->w[i].pid > 0 && P->w[i].task >= 0 && P->need[p->tasks[P->w[i].task].code] < 0)
      P->need[p->tasks[P->w[i].task].code] = ST_NEED_KEEP;
  free(runs);
  st_builds_schedule(P->builds, P->need);
  tell(P);
}

/* ---- the transport ---- */

/* Starts min(--jobs, runs) workers and, tiered, the builds. */
static int pipes_begin(StTransport *t, StSched *S) {
  Pipes *P = (Pipes *)t;
  t->nw = P->jobs < S->total ? P->jobs : S->total;
  P->w = calloc((size_t)t->nw + 1, sizeof *P->w);
  if (P->p->backend == BACKEND_TIERED && S->total) {
    P->builds = st_builds_new(P->p, "out/cache", ST_MAX_BUILDS(t->nw), S->o->progress);
    P->need = calloc((size_t)P->p->ncodes + 1, sizeof *P->need);
    P->told = calloc((size_t)P->p->ncodes + 1, 1);
    for (int c = 0; P->builds && P->told && c < P->p->ncodes; c++)
      P->told[c] = (char)st_builds_state(P->builds, c);
  }
  for (int i = 0; i < t->nw; i++)
    if (spawn(P, &P->w[i])) {
      fprintf(stderr, "mlpc: error: cannot start a worker: %s\n", strerror(errno));
      return -1;
    }
  return 0;
}

/* Whether worker w is there to take a run. */
static int pipes_ready(StTransport *t, int w) { return ((Pipes *)t)->w[w].pid > 0; }

/* Writes worker w its run, with where the run's object is. */
static int pipes_give(StTransport *t, StSched *S, int w, int task) {
  Pipes *P = (Pipes *)t;
  Order o = {task, object_state(P, P->p->tasks[task].code)};
  (void)S;
  P->w[w].task = task;
  /* if this fails the worker is dead: its result pipe will say so */
  (void)write_full(P->w[w].to, &o, sizeof o);
  return 0;
}

/* Reads one message from worker w into P->buf; -1 if there is none whole
   or it is not about w's run. */
static int read_msg(Pipes *P, Worker *w, StMsg *m) {
  uint32_t n;
  if (read_full(w->from, &n, sizeof n) != 1 || n > ST_MSG_MAX)
    return -1;
  P->buf.len = 0;
  if (read_full(w->from, st_grow(&P->buf, n), n) != 1 || st_msg_parse(P->buf.buf, n, m))
    return -1;
  return m->task == w->task ? 0 : -1;
}

/* Worker w died (or broke the protocol): reaped, reported lost, and
   another takes its place. */
static void lost(Pipes *P, int i, StSched *S, StEvent *e) {
  Worker *w = &P->w[i];
  int status = reap(w, 1);
  *e = (StEvent){.kind = ST_EV_LOST, .w = i};
  snprintf(e->who, sizeof e->who, "worker %d", i + 1);
  snprintf(e->why, sizeof e->why, "died (%s %d)", WIFSIGNALED(status) ? "signal"
           : "exit status", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  if (spawn(P, w))
    S->fatal = 1;
}

/* Reads what worker i wrote into e. */
static void receive(Pipes *P, int i, StSched *S, StEvent *e) {
  Worker *w = &P->w[i];
  if (read_msg(P, w, &e->m))
    return lost(P, i, S, e);
  e->kind = ST_EV_MSG, e->w = i;
  if (e->m.kind != ST_MSG_COMPILED)
    w->task = -1;
}

/* Waits for a message, a death or a build (or a signal, or the progress
   clock); the first worker with something to say is heard, from P->next
   on, so that each is in turn. */
static void pipes_wait(StTransport *t, StSched *S, StEvent *e) {
  Pipes *P = (Pipes *)t;
  struct pollfd fds[512];
  int who[512], n = 0;
  schedule_builds(P, S);
  for (int k = 0; k < t->nw && n < 256; k++) {
    int i = (P->next + k) % t->nw;
    if (P->w[i].pid > 0 && P->w[i].task >= 0)
      fds[n] = (struct pollfd){P->w[i].from, POLLIN, 0}, who[n++] = i;
  }
  int nb = P->builds ? st_builds_poll(P->builds, fds + n, who + n, 256) : 0;
  if (poll(fds, (nfds_t)(n + nb), S->o->progress ? 500 : -1) <= 0)
    return;
  for (int i = n; i < n + nb; i++)
    if (fds[i].revents)
      st_builds_done(P->builds, who[i]), tell(P);
  for (int i = 0; i < n; i++)
    if (fds[i].revents) {
      P->next = (who[i] + 1) % t->nw;
      return receive(P, who[i], S, e);
    }
}

/* Stops the workers and the builds. */
static void pipes_end(StTransport *t, StSched *S, int stop) {
  Pipes *P = (Pipes *)t;
  (void)S;
  for (int i = 0; i < t->nw; i++)
    reap(&P->w[i], stop);
  st_builds_free(P->builds); /* a build the runs did not wait for stops */
  free(P->w), free(P->need), free(P->told), free(P->buf.buf);
}

int st_run(StPlan *p, sqlite3 *db, const StRunOptions *o) {
  Pipes P = {.t = {"worker", 1, 0, pipes_begin, pipes_ready, pipes_give, pipes_wait, NULL,
                   pipes_end}, .p = p, .jobs = o->jobs};
  return st_sched_run(p, db, o, &P.t);
}
