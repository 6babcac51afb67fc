/*
 * mpi.c — a study's runs spread over MPI ranks on any number of hosts
 * (docs/cluster.md); compiled only when CMake finds MPI (MLPC_MPI).
 *
 *   mpirun -n N mlpc STUDY.json --run [options]
 *
 * Every rank starts mlpc with the same arguments. Rank 0 is mlpc as on
 * one machine: it reads the study file, plans, alone writes the database
 * and the tables, and hands out the runs: the scheduler of local runs
 * (sched.c), with this file as its transport and ranks in place of
 * pipe.c's worker processes. The other ranks read no file: rank 0 sends each the
 * files of the data sets its runs read (once; the rank keeps them in a
 * temporary directory of its own) and each run's job, with its generated
 * code unless the rank holds that code already. A rank answers with the
 * message a local worker writes to its pipe (job.c, st_msg): the same
 * run, the same bytes.
 *
 * Every rank, rank 0 too, trains one run at a time on a thread of its
 * own (compute_*), while its main thread talks; only the main thread
 * calls MPI (MPI_THREAD_FUNNELED). Each rank sends rank 0 a heartbeat
 * every second, and rank 0 sends one to each free rank. Rank 0 takes a
 * rank it has not heard from for MLPC_MPI_TIMEOUT seconds (default 60)
 * for dead, and the scheduler gives its run to another; a run lost with
 * ST_MAX_LOST ranks is given up (sched.c's one policy). Open MPI itself
 * ends the whole job when a rank dies, unless
 * mpirun has --enable-recovery; then, as Open MPI's MPI_Finalize may hang
 * once a rank is dead, the ranks end without it.
 *
 * Rank 0 never waits on a send, which a dead peer could hang: it posts
 * each one (MPI_Isend) and completes them as it goes. A free rank waits
 * (should a rank die, its run goes to one) until rank 0 tells it to
 * stop, at the end; one that hears nothing from rank 0 for three
 * timeouts stops by itself.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <mpi.h>
#include "study.h"

/* Message tags: rank 0 → a rank, then a rank → rank 0. */
enum { TAG_DATA = 1, TAG_JOB, TAG_STOP, TAG_BEAT, TAG_MSG };

enum { MAX_DATA = 64 };  /* data sets in one study, as plan.c allows      */
enum { MAX_LOST = 2 };   /* ranks a run may lose before it is given up    */

static int nranks;       /* 0: not under MPI                              */
static int me;           /* this rank                                     */
static char (*hosts)[MPI_MAX_PROCESSOR_NAME];  /* rank 0: each rank's host */
static double timeout = 60;  /* seconds without word before giving up    */
static int all_there = 1;    /* no rank was lost: MPI_Finalize can end MPI
                                (with a rank dead, Open MPI's may hang)    */
static char cache[MAX_PATH_LEN];  /* gcc's object cache, one per host    */

/* ---- small helpers ---- */

/* Sleeps for s seconds. */
static void nap(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
  nanosleep(&ts, NULL);
}

/* The heartbeat interval: a second, or less for a short timeout. */
static double beat_interval(void) { return timeout / 4 < 1 ? timeout / 4 : 1; }

/* Receives the message Iprobe found into a new buffer; its size in *n. */
static char *receive_probed(const MPI_Status *st, int *n) {
  MPI_Get_count(st, MPI_BYTE, n);
  char *buf = malloc((size_t)*n + 1);
  if (!buf || MPI_Recv(buf, *n, MPI_BYTE, st->MPI_SOURCE, st->MPI_TAG, MPI_COMM_WORLD,
                       MPI_STATUS_IGNORE) != MPI_SUCCESS) {
    fprintf(stderr, "mlpc: rank %d: error: cannot receive a message\n", me);
    exit(1);
  }
  buf[*n] = 0;
  return buf;
}

/* ---- the compute thread: one run at a time, beside the talking ---- */

typedef struct {
  pthread_t thread;
  StWorker w;           /* the code it holds                              */
  StJob job;            /* the run, with its own copies of the strings    */
  char *unit, *dir;
  Buf out;              /* the run's message                              */
  atomic_int done;
  int busy;
} Compute;

/* The thread: compiles unless it holds the code, trains, writes the
   message. It calls no MPI. */
static void *compute_main(void *arg) {
  Compute *c = arg;
  c->out.len = 0;
  if (!st_compile(&c->w, &c->job, &c->out))
    st_train(&c->w, &c->job, &c->out);
  atomic_store(&c->done, 1);
  return NULL;
}

/* Starts a run on the thread, with signals left to the main thread. */
static void compute_start(Compute *c, const StJob *j) {
  sigset_t all, old;
  free(c->unit), free(c->dir);
  c->unit = j->unit ? strdup(j->unit) : NULL;
  c->dir = strdup(j->data_dir);
  c->job = *j, c->job.unit = c->unit, c->job.data_dir = c->dir;
  atomic_store(&c->done, 0);
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  if (pthread_create(&c->thread, NULL, compute_main, c)) {
    fprintf(stderr, "mlpc: rank %d: error: cannot start a thread\n", me);
    exit(1);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  c->busy = 1;
}

/* Whether the run on the thread has ended (its message is in c->out). */
static int compute_ended(Compute *c) {
  if (!c->busy || !atomic_load(&c->done))
    return 0;
  pthread_join(c->thread, NULL);
  c->busy = 0;
  return 1;
}

/* ---- jobs and data sets on the wire ---- */

/* A job: the StJob's numbers; unitlen bytes of code and a 0 follow. */
typedef struct {
  int task, code, backend, epochs, shuffle, data, unitlen;
  long max_batches;
  uint64_t seed;
} JobHead;

/* A data set: nfiles files, each a FileHead and its bytes. */
typedef struct {
  int id, nfiles;
} DataHead;

typedef struct {
  char name[64];
  uint64_t size;
} FileHead;

/* Appends a file of a data directory, one rt_load_data reads, as it is
   on disk, to b. */
static int pack_file(Buf *b, const char *path, char *err, size_t errlen) {
  FileHead h = {{0}, 0};
  snprintf(h.name, sizeof h.name, "%s", strrchr(path, '/') + 1);
  FILE *f = fopen(path, "rb");
  long size = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
  int ok = size >= 0 && fseek(f, 0, SEEK_SET) == 0;
  if (ok) {
    h.size = (uint64_t)size;
    st_put(b, &h, sizeof h);
    ok = fread(st_grow(b, h.size), 1, h.size, f) == h.size;
  }
  if (!ok)
    rt_fail(err, errlen, path, "cannot read: %s", strerror(errno));
  if (f)
    fclose(f);
  return ok ? 0 : -1;
}

/* Writes a data set message for data set id, read from dir. */
static int pack_data(Buf *b, int id, const char *dir, char *err, size_t errlen) {
  static char paths[4][FILENAME_MAX];
  DataHead h = {id, rt_data_files(dir, paths, err, errlen)};
  if (h.nfiles < 0)
    return -1;
  b->len = 0;
  st_put(b, &h, sizeof h);
  for (int i = 0; i < h.nfiles; i++)
    if (pack_file(b, paths[i], err, errlen))
      return -1;
  return 0;
}

/* Writes n bytes to path; 0 or -1. */
static int write_bytes(const char *path, const char *p, size_t n) {
  FILE *f = fopen(path, "wb");
  int ok = f && fwrite(p, 1, n, f) == n;
  return f && fclose(f) == 0 && ok ? 0 : -1;
}

/* Unpacks a data set message under root/ID/; 0 or -1 with err set. */
static int unpack_data(const char *root, const char *buf, size_t len, int *id, char *err,
                       size_t errlen) {
  DataHead h;
  char dir[MAX_PATH_LEN], path[MAX_PATH_LEN + 80];
  memcpy(&h, buf, sizeof h);
  *id = h.id;
  snprintf(dir, sizeof dir, "%s/%d", root, h.id);
  if (h.id < 0 || h.id >= MAX_DATA || (mkdir(dir, 0700) && errno != EEXIST))
    return snprintf(err, errlen, "%s: %s", dir, strerror(errno)), -1;
  size_t at = sizeof h;
  for (int i = 0; i < h.nfiles; i++) {
    FileHead f;
    if (at + sizeof f > len)
      return snprintf(err, errlen, "%s: a truncated data set", dir), -1;
    memcpy(&f, buf + at, sizeof f);
    at += sizeof f;
    f.name[sizeof f.name - 1] = 0;
    snprintf(path, sizeof path, "%s/%s", dir, f.name);
    if (at + f.size > len || strchr(f.name, '/') || write_bytes(path, buf + at, f.size))
      return snprintf(err, errlen, "%s: cannot write the data set here", path), -1;
    at += f.size;
  }
  return 0;
}

/* ---- a worker rank ---- */

typedef struct {
  Compute c;
  char root[MAX_PATH_LEN];   /* its data sets, root/ID/, made when needed */
  char have[MAX_DATA];       /* which it has                              */
  char data_err[MAX_PATH_LEN + 256];  /* why the last data set was not kept */
  Buf msg;                   /* a message of its own to send              */
} Worker;

/* Sends bytes to rank 0 and waits, at most the timeout, for the send to
   complete; exits if it does not (rank 0 is gone). */
static void send_root(int tag, const void *buf, size_t n) {
  MPI_Request rq;
  int done = 0;
  double t0 = rt_now();
  MPI_Isend(buf, (int)n, MPI_BYTE, 0, tag, MPI_COMM_WORLD, &rq);
  while (MPI_Test(&rq, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done &&
         rt_now() - t0 < timeout)
    nap(0.0001);
  if (!done) {
    fprintf(stderr, "mlpc: rank %d: error: rank 0 takes nothing for %g s; stopping\n", me,
            timeout);
    exit(1);
  }
}

/* Sends an error about task to rank 0. */
static void send_error(Worker *W, int task, const char *text) {
  W->msg.len = 0;
  st_msg(&W->msg, ST_MSG_ERROR, task, NULL, text);
  send_root(TAG_MSG, W->msg.buf, W->msg.len);
}

/* Keeps a data set in the worker's temporary directory. */
static void take_data(Worker *W, const char *buf, int n) {
  int id = -1;
  W->data_err[0] = 0;
  if (!W->root[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(W->root, sizeof W->root, "%s/mlpc-rank%d-XXXXXX", tmp && *tmp ? tmp : "/tmp", me);
    if (!mkdtemp(W->root)) {
      snprintf(W->data_err, sizeof W->data_err, "%s: %s", W->root, strerror(errno));
      W->root[0] = 0;
      return;
    }
  }
  if ((size_t)n >= sizeof(DataHead) &&
      unpack_data(W->root, buf, (size_t)n, &id, W->data_err, sizeof W->data_err) == 0)
    W->have[id] = 1;
}

/* Starts the run of a job message, or answers with an error. */
static void take_job(Worker *W, const char *buf, int n) {
  JobHead h;
  StJob j;
  char dir[MAX_PATH_LEN + 16], err[MAX_PATH_LEN + 300];
  if ((size_t)n < sizeof h) {
    fprintf(stderr, "mlpc: rank %d: error: a malformed job\n", me);
    exit(1);
  }
  memcpy(&h, buf, sizeof h);
  if ((size_t)n != sizeof h + (h.unitlen ? (size_t)h.unitlen + 1 : 0) || W->c.busy)
    return send_error(W, h.task, "a malformed job, or one while busy");
  if (h.data < 0 || h.data >= MAX_DATA || !W->have[h.data]) {
    snprintf(err, sizeof err, "no data set for this run: %s", W->data_err);
    return send_error(W, h.task, err);
  }
  if (!h.unitlen && W->c.w.code != h.code)
    return send_error(W, h.task, "a job without the code this rank lacks");
  snprintf(dir, sizeof dir, "%s/%d", W->root, h.data);
  j = (StJob){h.task, h.code, h.unitlen ? buf + sizeof h : NULL, h.backend, h.seed,
              h.epochs, h.shuffle, h.max_batches, dir, -1};
  compute_start(&W->c, &j);
}

static Worker the_worker;

/* Removes the files unpack_data wrote into dir (no subdirectories), then
   dir. */
static void remove_data_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      unlinkat(dirfd(d), e->d_name, 0);
  if (d)
    closedir(d);
  rmdir(dir);
}

/* Removes the worker's data sets; at exit, whatever the way out. */
static void clean(void) {
  Worker *W = &the_worker;
  char path[MAX_PATH_LEN + 100];
  if (!W->root[0])
    return;
  for (int id = 0; id < MAX_DATA; id++) {
    snprintf(path, sizeof path, "%.4095s/%d", W->root, id);
    remove_data_dir(path);
  }
  rmdir(W->root);
  W->root[0] = 0;
}

/* Handles one message from rank 0; 1 when told to stop. */
static int worker_message(Worker *W, const MPI_Status *st) {
  int n;
  char *buf = receive_probed(st, &n);
  int stop = st->MPI_TAG == TAG_STOP;
  if (stop)
    all_there = n == 1 && buf[0];
  if (st->MPI_TAG == TAG_DATA)
    take_data(W, buf, n);
  else if (st->MPI_TAG == TAG_JOB)
    take_job(W, buf, n);
  free(buf);
  return stop;
}

/* A worker rank's life: runs the jobs rank 0 sends until told to stop.
   From rank 0's first word on, it sends a heartbeat every interval; with
   no word from rank 0 for three timeouts while idle, it gives up. Its
   exit status. */
static int worker(void) {
  Worker *W = &the_worker;
  double heard = 0, beat = 0;
  int status = 0;
  W->c.w = (StWorker){.code = -1, .cache = cache};
  atexit(clean);
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS)
      return fprintf(stderr, "mlpc: rank %d: error: lost rank 0\n", me), all_there = 0, 1;
    if (flag) {
      heard = rt_now();
      if (worker_message(W, &st))
        break;
    } else if (compute_ended(&W->c)) {
      send_root(TAG_MSG, W->c.out.buf, W->c.out.len);
      heard = beat = rt_now();
    } else if (heard && rt_now() - beat >= beat_interval()) {
      send_root(TAG_BEAT, "", 0);
      beat = rt_now();
    } else if (!W->c.busy && heard && rt_now() - heard > 3 * timeout) {
      fprintf(stderr, "mlpc: rank %d: error: no word from rank 0 for %g s; stopping\n", me,
              3 * timeout);
      status = 1, all_there = 0;
      break;
    } else
      nap(0.002);
  }
  return status;
}

/* ---- rank 0: the ranks, and sends in flight ---- */

typedef struct {
  int task;             /* the run it is on; -1 when free                 */
  int code;             /* the code it holds (it was sent); -1 for none   */
  int gone;             /* taken for dead                                 */
  const char *unsent;   /* a send to it failed: why, to report it lost    */
  int stopped;          /* told to stop                                   */
  double heard;         /* when it last sent anything, or got a job       */
  char has[MAX_DATA];   /* the data sets it was sent                      */
} Rank;

static Rank *ranks;      /* rank 0: every rank's state                    */

typedef struct {
  MPI_Request rq;
  int to;
  char *owned;          /* freed once sent                                */
} Send;

static Send *sends;
static int nsends, cap_sends;

/* Posts a send of n bytes of buf to rank to; owned (or NULL) is freed
   once the send is done. 0, or -1 if MPI refuses it. */
static int post(int to, int tag, const void *buf, size_t n, char *owned) {
  if (nsends == cap_sends) {
    cap_sends = cap_sends ? 2 * cap_sends : 16;
    if (!(sends = realloc(sends, cap_sends * sizeof *sends)))
      exit(1);
  }
  Send *s = &sends[nsends++];
  *s = (Send){MPI_REQUEST_NULL, to, owned};
  return MPI_Isend(buf, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &s->rq) == MPI_SUCCESS
           ? 0 : -1;
}

/* Completes what sends it can; the number still in flight. */
static int progress_sends(void) {
  int k = 0;
  for (int i = 0; i < nsends; i++) {
    int done = 0;
    if (sends[i].rq != MPI_REQUEST_NULL)
      MPI_Test(&sends[i].rq, &done, MPI_STATUS_IGNORE);
    if (done || sends[i].rq == MPI_REQUEST_NULL)
      free(sends[i].owned);
    else
      sends[k++] = sends[i];
  }
  return nsends = k;
}

/* Whether a send to a rank not taken for dead is in flight: then rank 0
   naps less, so as to move a data set quickly. */
static int sending(void) {
  progress_sends();
  for (int i = 0; i < nsends; i++)
    if (!ranks[sends[i].to].gone)
      return 1;
  return 0;
}

/* Waits at most s seconds for the sends in flight, then lets the rest go
   (a dead rank never takes its messages). */
static void drain_sends(double s) {
  double t0 = rt_now();
  while (progress_sends() && rt_now() - t0 < s)
    nap(0.0005);
  for (int i = 0; i < nsends; i++)
    MPI_Request_free(&sends[i].rq);
  nsends = 0;
}

/* ---- rank 0: the transport of the scheduler (sched.c) ---- */

typedef struct {
  StTransport t;        /* first: the scheduler's handle                  */
  Rank *r;              /* ranks; r[0] is rank 0's own compute thread     */
  Compute local;
  int ndata;
  const char *data_dir[MAX_DATA];
  Buf data[MAX_DATA];   /* each data set's message                        */
  char *msg;            /* the last message received                      */
  int rounds;           /* more rounds may follow                         */
} Ranks;

/* Rank i and its host, for messages. */
static const char *who(int i) {
  static char buf[MPI_MAX_PROCESSOR_NAME + 32];
  snprintf(buf, sizeof buf, "rank %d (%s)", i, hosts[i]);
  return buf;
}

/* The number of data set dir, its message made on first use; -1 if it
   cannot be read. */
static int data_id(Ranks *R, const char *dir) {
  char err[MAX_PATH_LEN + 256];
  for (int i = 0; i < R->ndata; i++)
    if (!strcmp(R->data_dir[i], dir))
      return i;
  if (pack_data(&R->data[R->ndata], R->ndata, dir, err, sizeof err) ||
      (R->data[R->ndata].len > INT_MAX &&
       snprintf(err, sizeof err, "%s: more than 2 GB, too large to send", dir))) {
    fprintf(stderr, "mlpc: error: %s\n", err);
    return -1;
  }
  R->data_dir[R->ndata] = dir;
  return R->ndata++;
}

/* Sends rank i the job of task (and the data set first if it lacks it);
   -1 if the data set cannot be read. A send MPI refuses makes the rank
   lost. */
static int give(Ranks *R, const StPlan *p, int i, int task) {
  Rank *r = &R->r[i];
  StJob j;
  Buf b = {0};
  st_job(p, task, &j);
  int d = data_id(R, j.data_dir), failed = 0;
  if (d < 0)
    return -1;
  if (!r->has[d])
    failed |= post(i, TAG_DATA, R->data[d].buf, R->data[d].len, NULL), r->has[d] = 1;
  int send_unit = r->code != j.code;
  JobHead h = {task, j.code, j.backend, j.epochs, j.shuffle, d,
               send_unit ? (int)strlen(j.unit) : 0, j.max_batches, j.seed};
  st_put(&b, &h, sizeof h);
  if (send_unit)
    st_put(&b, j.unit, strlen(j.unit) + 1);
  failed |= post(i, TAG_JOB, b.buf, b.len, b.buf);
  r->code = j.code, r->task = task, r->heard = rt_now();
  if (failed)
    r->unsent = "cannot be sent to";
  return 0;
}

/* Hands rank i the run task: rank 0 on its own thread, another over
   MPI. */
static int ranks_give(StTransport *t, StSched *S, int i, int task) {
  Ranks *R = (Ranks *)t;
  StJob j;
  if (i)
    return give(R, S->p, i, task);
  st_job(S->p, task, &j);
  compute_start(&R->local, &j);
  R->r[0].task = task;
  return 0;
}

/* Whether rank i can take a run: there, not told to stop, and free (a
   free rank waits: should another die, it takes its run). */
static int ranks_ready(StTransport *t, int i) {
  Rank *r = &((Ranks *)t)->r[i];
  return !r->gone && !r->stopped && r->task < 0;
}

/* A message from rank i about its run: the rank is free again. */
static void got_msg(Ranks *R, int i, StEvent *e) {
  e->kind = ST_EV_MSG, e->w = i;
  if (R->r[i].task == e->m.task)
    R->r[i].task = -1;
}

/* Reads a message from a rank into e; 1 if there was one. */
static int receive(Ranks *R, StSched *S, StEvent *e) {
  int flag = 0, n;
  MPI_Status st;
  if (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS ||
      !flag)
    return 0;
  free(R->msg);
  R->msg = receive_probed(&st, &n);
  Rank *r = &R->r[st.MPI_SOURCE];
  r->heard = rt_now();
  if (r->gone)
    fprintf(stderr, "mlpc: %s is heard from again\n", who(st.MPI_SOURCE)), r->gone = 0;
  if (st.MPI_TAG == TAG_MSG && st_msg_parse(R->msg, (size_t)n, &e->m) == 0)
    got_msg(R, st.MPI_SOURCE, e);
  else if (st.MPI_TAG != TAG_BEAT) {
    fprintf(stderr, "mlpc: error: %s sent a message of another build or kind\n",
            who(st.MPI_SOURCE));
    S->fatal = 1;
  }
  return 1;
}

/* Takes the run of rank 0's thread into e when it has ended; 1 if it
   had. */
static int local_ended(Ranks *R, StEvent *e) {
  if (!compute_ended(&R->local))
    return 0;
  if (st_msg_parse(R->local.out.buf, R->local.out.len, &e->m))
    abort();  /* unreachable: our own message */
  got_msg(R, 0, e);
  return 1;
}

/* Takes rank i for dead (why: what happened), into e; it keeps its run:
   heard from again, it is busy with it. */
static void lose(Ranks *R, int i, const char *why, StEvent *e) {
  R->r[i].gone = 1, R->r[i].unsent = NULL;
  *e = (StEvent){.kind = ST_EV_LOST, .w = i};
  snprintf(e->who, sizeof e->who, "%s", who(i));
  snprintf(e->why, sizeof e->why, "%s: taken for dead", why);
}

/* Takes a rank a send failed to, or not heard from for the timeout, for
   dead (into e; one at a time); tells the free ones that rank 0 is
   there, every heartbeat interval. */
static void check_alive(Ranks *R, StEvent *e) {
  static double pinged;
  char why[64];
  double t = rt_now();
  snprintf(why, sizeof why, "sent nothing for %g s", timeout);
  for (int i = 1; i < nranks && e->kind == ST_EV_NONE; i++)
    if (!R->r[i].gone && (R->r[i].unsent || t - R->r[i].heard > timeout))
      lose(R, i, R->r[i].unsent ? R->r[i].unsent : why, e);
  for (int i = 1; i < nranks && t - pinged >= beat_interval(); i++)
    if (!R->r[i].gone && R->r[i].task < 0)
      post(i, TAG_BEAT, "", 0, NULL);
  if (t - pinged >= beat_interval())
    pinged = t;
}

/* Waits a little for a message, a run of rank 0's, or a rank lost. */
static void ranks_wait(StTransport *t, StSched *S, StEvent *e) {
  Ranks *R = (Ranks *)t;
  if (receive(R, S, e) || local_ended(R, e))
    return;
  check_alive(R, e);
  if (e->kind == ST_EV_NONE)
    nap(sending() ? 0.0002 : 0.002);
}

/* Rank i's name in error messages. */
static const char *ranks_who(StTransport *t, int i) {
  (void)t;
  return who(i);
}

/* Tells every rank still there to stop, and whether to end MPI with
   MPI_Finalize: not if a rank was lost. */
static void stop_all(void) {
  static char yes = 1, no = 0;
  for (int i = 1; i < nranks; i++)
    all_there &= !ranks[i].gone;
  for (int i = 1; i < nranks; i++)
    if (!ranks[i].stopped && !ranks[i].gone)
      post(i, TAG_STOP, all_there ? &yes : &no, 1, NULL), ranks[i].stopped = 1;
}

/* Says how many ranks there are, on how many hosts. */
static void describe_ranks(void) {
  int nhosts = 0;
  for (int i = 0; i < nranks; i++) {
    int first = 1;
    for (int k = 0; k < i && first; k++)
      first = strcmp(hosts[k], hosts[i]) != 0;
    nhosts += first;
  }
  printf("MPI: %d rank%s on %d host%s; rank 0 on %s\n", nranks, nranks == 1 ? "" : "s",
         nhosts, nhosts == 1 ? "" : "s", hosts[0]);
  fflush(stdout);
}

/* Starts a round: the first word to every rank, and the clock starts.
   Rank 0's compute thread, with the code it holds, and the data sets
   made for the ranks are kept from an earlier round. */
static int ranks_begin(StTransport *t, StSched *S) {
  Ranks *R = (Ranks *)t;
  static int described;
  (void)S;
  if (!described++)
    describe_ranks();
  t->nw = nranks;
  if (!R->local.w.cache)
    R->local.w = (StWorker){.code = -1, .cache = cache};
  for (int i = 1; i < nranks; i++)
    post(i, TAG_BEAT, "", 0, NULL), R->r[i].heard = rt_now();
  return 0;
}

/* Tells the ranks to stop, waits for the sends, frees the data sets. */
static void end_ranks(Ranks *R) {
  stop_all();
  drain_sends(st_sched_stopped() ? 1 : 5);
  for (int i = 0; i < R->ndata; i++)
    free(R->data[i].buf);
  R->ndata = 0;
}

/* Ends a round; the ranks too after the last, or when stopped. */
static void ranks_end(StTransport *t, StSched *S, int stop) {
  Ranks *R = (Ranks *)t;
  (void)S;
  if (!R->rounds || stop)
    end_ranks(R);
}

static Ranks the_ranks = {.t = {"rank", 0, 0, ranks_begin, ranks_ready, ranks_give,
                                ranks_wait, ranks_who, ranks_end}};

void st_mpi_end(void) { end_ranks(&the_ranks); }

int st_mpi_run(StPlan *p, sqlite3 *db, const StRunOptions *o) {
  StRunOptions lines = *o;
  lines.progress = 0;  /* a log line a run, as mpirun's output is */
  the_ranks.r = ranks, the_ranks.rounds = o->rounds;
  return st_sched_run(p, db, &lines, &the_ranks.t);
}

/* ---- starting and ending ---- */

/* Whether an MPI launcher (mpirun, mpiexec, srun) started this process. */
static int launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                     "PMI_SIZE", NULL};
  for (const char *const *v = vars; *v; v++)
    if (getenv(*v))
      return 1;
  return 0;
}

/* Rank 0 at exit: every other rank is told to stop, then MPI ends. */
static void end_root(void) {
  stop_all();
  drain_sends(5);
  fflush(stdout), fflush(stderr);
  if (all_there)
    MPI_Finalize();
}

/* Reads MLPC_MPI_TIMEOUT; exits on a bad value. */
static void read_timeout(void) {
  const char *v = getenv("MLPC_MPI_TIMEOUT");
  char *end;
  if (!v)
    return;
  timeout = strtod(v, &end);
  if (!*v || *end || !(timeout >= 0.1 && timeout <= 1e6)) {
    fprintf(stderr, "mlpc: MLPC_MPI_TIMEOUT: error: expected seconds in [0.1, 1e6], got "
            "'%s'\n", v);
    exit(2);
  }
}

/* Gathers every rank's host name at rank 0, and names this host's cache. */
static void gather_hosts(void) {
  char name[MPI_MAX_PROCESSOR_NAME] = "";
  int len;
  MPI_Get_processor_name(name, &len);
  for (char *c = name; *c; c++)
    if (*c == '/')
      *c = '_';
  snprintf(cache, sizeof cache, "out/cache/%s", name);
  hosts = calloc((size_t)nranks, sizeof *hosts);
  MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
             0, MPI_COMM_WORLD);
}

int st_mpi_start(int *argc, char ***argv, int *status) {
  int provided;
  if (!launched())
    return 0;
  read_timeout();
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS ||
      provided < MPI_THREAD_FUNNELED) {
    fprintf(stderr, "mlpc: error: MPI does not start with threads (MPI_THREAD_FUNNELED)\n");
    exit(1);
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  gather_hosts();
  if (me == 0) {
    if (!(ranks = calloc((size_t)nranks, sizeof *ranks)))
      exit(1);
    for (int i = 0; i < nranks; i++)
      ranks[i] = (Rank){.task = -1, .code = -1};
    atexit(end_root);
    return 0;
  }
  *status = worker();
  if (all_there)
    MPI_Finalize();
  return 1;
}

int st_mpi_ranks(void) { return nranks; }
