/*
 * sched.c — the one scheduler of a study's runs, whatever carries them:
 * local worker processes over pipes (pipe.c) or MPI ranks (mpi.c), each
 * a transport (StTransport) that starts its workers, hands one a run,
 * and reports what happened as events: a worker's message (st_msg), or
 * a worker lost.
 *
 * The scheduler decides what runs next: a free worker gets a run of the
 * code it holds if there is one, else one whose code nobody compiles
 * yet, else one of a compiled code (with gcc on local workers, each code
 * is compiled once). It alone writes the database, one transaction per
 * run, as results arrive, and says how each ended.
 *
 * One policy for lost runs, for every transport: a run whose worker is
 * lost (a local worker that died, a rank taken for dead) goes back to
 * the queue for another worker; a run lost with ST_MAX_LOST workers is
 * given up (reported, not recorded, exit status 1). A result that comes
 * after all (a rank taken for dead that was only slow) is recorded once.
 *
 * Ctrl-C (SIGINT, SIGTERM, SIGHUP) stops the runs and says how to resume.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "study.h"

static volatile sig_atomic_t stop_signal;

/* Notes a stop request. */
static void on_signal(int sig) { stop_signal = sig; }

/* Installs the stop handlers; without SA_RESTART, so waits wake up. */
static void catch_signals(void) {
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int st_sched_stopped(void) { return stop_signal; }

/* ---- progress ---- */

/* Formats seconds as m:ss or h:mm:ss. */
static void clock_text(char *buf, size_t n, double s) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

const char *st_run_name(const StPlan *p, int task) {
  static char buf[600];
  const StTask *t = &p->tasks[task];
  snprintf(buf, sizeof buf, "%s seed %llu", p->s->exp[t->exp].name, (unsigned long long)t->seed);
  return buf;
}

/* The terminal's width, 80 if unknown. */
static int columns(void) {
  struct winsize ws;
  return ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20 ? ws.ws_col : 80;
}

/* Redraws the progress line: runs done, the latest run started, elapsed
   and estimated time left. */
static void progress(StSched *S) {
  char line[1024], el[32], left[32] = "?", cur[600] = "";
  int busy = 0, latest = -1;
  double t = rt_now();
  for (int i = 0; i < S->nw; i++)
    if (S->w[i].task >= 0)
      busy++, latest = latest > S->w[i].task ? latest : S->w[i].task;
  if (latest >= 0)
    snprintf(cur, sizeof cur, "%s", st_run_name(S->p, latest));
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

void st_clear_line(const StSched *S) {
  if (S->o->progress)
    fprintf(stderr, "\r\033[K");
}

void st_log_run(const StPlan *p, int task, int n, int total, const StResult *r) {
  fprintf(stderr, "mlpc: [%d/%d] %s: ", n, total, st_run_name(p, task));
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
static void log_run(StSched *S, int task, const StResult *r) {
  if (S->o->progress)
    return progress(S);
  st_log_run(S->p, task, S->done + S->failed, S->total, r);
}

/* ---- what runs next ---- */

/* The first pending run of code c; -1 if none. */
static int task_of_code(const StSched *S, int c) {
  for (int i = 0; i < S->p->ntasks; i++)
    if (S->state[i] == ST_PENDING && S->p->tasks[i].code == c)
      return i;
  return -1;
}

/* The first pending run whose code is in state st; -1 if none. */
static int task_in_state(const StSched *S, int st) {
  for (int i = 0; i < S->p->ntasks; i++)
    if (S->state[i] == ST_PENDING && S->code[S->p->tasks[i].code] == st)
      return i;
  return -1;
}

/* The next run for worker w: one of the code it holds, else one whose
   code nobody compiles yet, else one of a compiled code; -1 for none. */
static int pick(StSched *S, const StSlot *w) {
  int t = w->code >= 0 ? task_of_code(S, w->code) : -1;
  if (t < 0 && (t = task_in_state(S, ST_CODE_NEW)) >= 0)
    S->code[S->p->tasks[t].code] = ST_CODE_COMPILING;
  if (t < 0)
    t = task_in_state(S, ST_CODE_READY);
  return t;
}

/* Marks a run failed; fatal: the study stops handing out runs. */
static void fail(StSched *S, int task, int fatal) {
  S->state[task] = ST_FAILED, S->failed++;
  S->fatal |= fatal;
}

/* Hands out runs to free workers; the number of busy workers. */
static int dispatch(StSched *S) {
  StTransport *t = S->t;
  int busy = 0;
  for (int i = 0; i < S->nw; i++) {
    StSlot *w = &S->w[i];
    if (w->task < 0 && !S->fatal && t->ready(t, i) && (w->task = pick(S, w)) >= 0) {
      S->state[w->task] = ST_RUNNING;
      w->code = S->p->tasks[w->task].code;
      if (t->give(t, S, i, w->task))
        fail(S, w->task, 1), w->task = -1;
    }
    busy += w->task >= 0;
  }
  return busy;
}

/* ---- what happened ---- */

/* Records a run's result from worker w. A run already recorded is not
   again (the same figures); one given up or handed out again is. */
static void finished(StSched *S, const StMsg *m) {
  char err[2048];
  int rc = st_db_put(S->db, S->p, m->task, &m->r, err, sizeof err);
  if (rc) {
    st_clear_line(S);
    fprintf(stderr, "mlpc: %s: %s: %s\n", rc > 0 ? "warning" : "error", S->o->db_path, err);
  }
  if (rc < 0)
    return fail(S, m->task, 1);
  S->failed -= S->state[m->task] == ST_FAILED;  /* given up, yet here it is */
  S->state[m->task] = ST_DONE, S->done++;
  S->run_seconds += m->r.seconds, S->timed++;
  S->diverged += m->r.diverged_epoch > 0;
  log_run(S, m->task, &m->r);
}

/* Handles a message from worker w. */
static void message(StSched *S, int w, const StMsg *m) {
  const char *who = S->t->who ? S->t->who(S->t, w) : NULL;
  if (S->w[w].task == m->task && m->kind != ST_MSG_COMPILED)
    S->w[w].task = -1;
  if (m->task < 0 || m->task >= S->p->ntasks || S->state[m->task] == ST_DONE)
    return;  /* a run another worker finished first: the same figures */
  if (m->kind == ST_MSG_COMPILED)
    S->code[S->p->tasks[m->task].code] = ST_CODE_READY;
  else if (m->kind == ST_MSG_RESULT)
    finished(S, m);
  else {
    st_clear_line(S);
    if (who)
      fprintf(stderr, "mlpc: error: %s: %s: %s\n", who, st_run_name(S->p, m->task), m->err);
    else
      fprintf(stderr, "mlpc: error: %s\n", m->err);
    S->failed -= S->state[m->task] == ST_FAILED;
    fail(S, m->task, 1);
  }
}

/* Worker w is lost (who, why: what happened): its run goes back to the
   queue, or is given up after ST_MAX_LOST losses. */
static void lost(StSched *S, int w, const char *who, const char *why) {
  int task = S->w[w].task;
  S->w[w].task = -1, S->w[w].code = -1;
  st_clear_line(S);
  if (task < 0 || S->state[task] != ST_RUNNING)
    return (void)fprintf(stderr, "mlpc: %s %s\n", who, why);
  if (S->code[S->p->tasks[task].code] == ST_CODE_COMPILING)
    S->code[S->p->tasks[task].code] = ST_CODE_NEW;
  if (++S->lost[task] >= ST_MAX_LOST) {
    fprintf(stderr, "mlpc: error: %s: %s %s; this run was lost with %d %ss and is not "
            "recorded\n", st_run_name(S->p, task), who, why, ST_MAX_LOST, S->t->unit);
    fail(S, task, 0);
  } else {
    fprintf(stderr, "mlpc: %s %s; %s goes to another %s\n", who, why,
            st_run_name(S->p, task), S->t->unit);
    S->state[task] = ST_PENDING;
  }
}

/* Handles what the transport reported. */
static void event(StSched *S, const StEvent *e) {
  if (e->kind == ST_EV_MSG)
    message(S, e->w, &e->m);
  else if (e->kind == ST_EV_LOST)
    lost(S, e->w, e->who, e->why);
}

/* ---- a round of runs ---- */

int st_task_done(const StTask *t) {
  return !t->wanted || (t->run_id > 0 && !t->no_health);
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

/* Sets up the scheduler's state and starts the workers; the number of
   runs to do. */
static int setup(StSched *S) {
  StPlan *p = S->p;
  S->state = calloc((size_t)p->ntasks + 1, 1);
  S->lost = calloc((size_t)p->ntasks + 1, 1);
  S->code = calloc((size_t)p->ncodes + 1, 1);
  if (!S->state || !S->lost || !S->code) {
    fprintf(stderr, "mlpc: error: out of memory\n");
    exit(1);
  }
  for (int i = 0; i < p->ntasks; i++)
    S->state[i] = st_task_done(&p->tasks[i]) ? ST_DONE : ST_PENDING,
    S->total += S->state[i] == ST_PENDING;
  for (int c = 0; c < p->ncodes; c++)
    S->code[c] = S->t->compile_once && p->backend == BACKEND_GCC ? ST_CODE_NEW : ST_CODE_READY;
  S->t0 = rt_now();
  S->fatal = S->t->begin(S->t, S) != 0;
  S->nw = S->t->nw;
  S->w = calloc((size_t)S->nw + 1, sizeof *S->w);
  for (int i = 0; S->w && i < S->nw; i++)
    S->w[i] = (StSlot){-1, -1};
  return S->total;
}

int st_sched_run(StPlan *p, sqlite3 *db, const StRunOptions *o, StTransport *t) {
  StSched S = {.p = p, .db = db, .o = o, .t = t};
  stop_signal = 0;
  catch_signals();
  setup(&S);
  while (!stop_signal && !S.fatal && S.done + S.failed < S.total) {
    if (!dispatch(&S))
      break;
    if (o->progress && rt_now() - S.shown >= 0.5)
      progress(&S);
    StEvent e = {.kind = ST_EV_NONE, .w = -1};
    t->wait(t, &S, &e);
    event(&S, &e);
  }
  t->end(t, &S, stop_signal != 0 || S.fatal);
  st_clear_line(&S);
  free(S.state), free(S.code), free(S.lost), free(S.w);
  return st_run_end(stop_signal, S.total, S.done, S.failed || S.fatal, o->db_path);
}
