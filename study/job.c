/*
 * job.c — one run of a study, whatever carries it to a worker: its job
 * (st_job), its code compiled unless the worker holds it (st_compile),
 * its training with the health figures on (st_train), and the message
 * that carries the outcome back (st_msg, st_msg_parse). Local workers
 * (pipe.c) and MPI ranks (mpi.c) run the same code and send the same
 * bytes.
 *
 * A message is a header, then its nepochs RtEpoch records, its nhealth
 * StHealthName records (the health figures' names), its nprobes ×
 * nhealth StHealthValue records (probe 0: the initial weights) and an
 * error text. The growing buffers it is written into (st_grow, st_put)
 * serve every transport.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "study.h"

#define MSG_MAGIC 0x6d6c7031u  /* "mlp1": a message of this layout       */

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

char *st_grow(Buf *b, size_t n) {
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2;
    if (!(b->buf = realloc(b->buf, b->cap))) {
      fprintf(stderr, "mlpc: error: out of memory\n");
      exit(1);  /* an MPI rank's atexit removes its data sets */
    }
  }
  b->len += n;
  return b->buf + b->len - n;
}

void st_put(Buf *b, const void *p, size_t n) { memcpy(st_grow(b, n), p, n); }

void st_msg(Buf *out, int kind, int task, const StResult *r, const char *err) {
  MsgHead h = {.magic = MSG_MAGIC, .kind = kind, .task = task};
  if (r)
    h.nepochs = r->nepochs, h.diverged_epoch = r->diverged_epoch,
    h.diverged_step = r->diverged_step, h.seconds = r->seconds, h.nhealth = r->nhealth,
    h.nprobes = r->nprobes, h.ran = r->ran, h.gcc_from = r->gcc_from;
  size_t n = err ? strlen(err) : 0;
  h.errlen = n < 4096 ? (int)n : 4096;
  st_put(out, &h, sizeof h);
  if (r) {
    st_put(out, r->epochs, (size_t)h.nepochs * sizeof *r->epochs);
    st_put(out, r->hnames, (size_t)h.nhealth * sizeof *r->hnames);
    st_put(out, r->health, (size_t)h.nprobes * h.nhealth * sizeof *r->health);
  }
  st_put(out, err ? err : "", (size_t)h.errlen);
  st_put(out, "", 1);
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
  *j = (StJob){task, t->code, p->codes[t->code].unit, p->backend, t->seed,
               m->epochs, p->shuffle, m->max_batches, t->data_dir, -1};
}

int st_compile(StWorker *w, const StJob *j, Buf *out) {
  char err[2048];
  if ((w->jit || w->tier) && w->code == j->code)
    return 0;
  jit_free(w->jit), tier_free(w->tier);
  w->jit = NULL, w->tier = NULL;
  if (j->backend == BACKEND_TIERED && w->ask && j->object >= 0)
    w->tier = tier_follow(j->unit, w->cache, j->object, w->ask, w->ask_ctx, err,
                          sizeof err);
  else if (j->backend == BACKEND_TIERED)
    w->tier = tier_start(j->unit, w->cache, err, sizeof err);
  else
    w->jit = j->backend == BACKEND_TCC ? jit_tcc(j->unit, err, sizeof err)
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
