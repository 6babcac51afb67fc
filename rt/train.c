/*
 * train.c — initialisation and the training loop, shared by `mlpc --run`
 * and standalone trainers.
 *
 * The loop owns the data and the batch order; the model (an RtNet) owns
 * all arithmetic. Each epoch trains on the shuffled training set, then
 * evaluates on the whole test set in eval mode (and on the validation
 * set its recipe holds out, rt/split.c) and prints one line, or
 * hands the figures to the caller (RtOptions.on_epoch; studies use it).
 * The recipe's schedule (rt/sched.c) steps with the training, and
 * its early stopping ends the run when the validation loss has not
 * improved for `patience` epochs, keeping the best epoch's weights.
 * Under RtOptions.health the health figures of a fixed probe batch follow
 * each line, and come first for the initial weights (rt/health.c).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "rt.h"

/* ---- initialisation ---- */

/* The standard deviation (or uniform bound) a weight is drawn with. */
static double train_weight_scale(int scheme, const RtTensor *t) {
  switch (scheme) {
  case RT_INIT_KAIMING: return sqrt(2.0 / t->fan_in);
  case RT_INIT_XAVIER: return sqrt(2.0 / (t->fan_in + t->fan_out));
  case RT_INIT_TORCH_DEFAULT: return 1.0 / sqrt(t->fan_in);
  default: return 1.0;
  }
}

/* The value element i of t starts at: a draw or a constant. */
static double train_init_value(int scheme, const RtTensor *t, RtRng *rng) {
  int normal = scheme == RT_INIT_NORMAL;
  switch (t->kind) {
  case RT_WEIGHT:
    if (scheme == RT_INIT_TORCH_DEFAULT)
      return (2 * rt_rng_uniform(rng) - 1) * train_weight_scale(scheme, t);
    return rt_rng_normal(rng) * train_weight_scale(scheme, t);
  case RT_BIAS:
    if (scheme == RT_INIT_TORCH_DEFAULT)
      return (2 * rt_rng_uniform(rng) - 1) * train_weight_scale(scheme, t);
    return normal ? rt_rng_normal(rng) : 0;
  case RT_GAMMA: return normal ? rt_rng_normal(rng) : 1;
  case RT_BETA: return normal ? rt_rng_normal(rng) : 0;
  case RT_BUF_ONE: return 1;
  default: return 0;
  }
}

/* ---- values that are not finite ---- */

/* Element i of the values at p (RT_F32 or RT_F64, in any alignment). */
static double train_value_at(const unsigned char *p, int dtype, long i) {
  if (dtype == RT_F32) {
    float f;
    memcpy(&f, p + 4 * i, 4);
    return f;
  }
  double d;
  memcpy(&d, p + 8 * i, 8);
  return d;
}

/* How many of the n values at p are not finite: a loop per type without
   exits, each value compared in its own type (NaN fails every
   comparison), which the compiler vectorises. */
static long train_count_nonfinite(const unsigned char *p, int dtype, long n) {
  long bad = 0;
  if (dtype == RT_F32)
    for (long i = 0; i < n; i++) {
      float f;
      memcpy(&f, p + 4 * i, 4);
      bad += !(fabsf(f) <= FLT_MAX);
    }
  else
    for (long i = 0; i < n; i++)
      bad += !(fabs(train_value_at(p, RT_F64, i)) <= DBL_MAX);
  return bad;
}

long rt_nonfinite(const RtTensor *t, const void *data, int rows, long *at, const char **what) {
  long n = rt_numel(t), i = 0;
  long bad = t->dtype == RT_I64 ? 0 : train_count_nonfinite(data, t->dtype, n);
  if (!bad)
    return 0;
  while (isfinite(train_value_at(data, t->dtype, i)))
    i++;
  double v = train_value_at(data, t->dtype, i);
  *what = isnan(v) ? "nan" : v > 0 ? "inf" : "-inf";
  *at = rows || !t->transposed ? i : i % t->shape[0] * t->shape[1] + i / t->shape[0];
  return bad;
}

int rt_check_finite(const RtNet *net, char *msg, size_t len) {
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    const char *what;
    long at, bad = rt_nonfinite(t, t->data, 0, &at, &what);
    if (bad) {
      snprintf(msg, len, "%s[%ld] is %s (not finite: %ld of its %ld elements)", t->name,
               at, what, bad, rt_numel(t));
      return -1;
    }
  }
  return 0;
}

/* Stores v as element i of t (in row-major order of its shape), in t's
   own type and layout. */
static void train_store(const RtTensor *t, long i, double v) {
  i = rt_offset(t, i);
  if (t->dtype == RT_F32)
    ((float *)t->data)[i] = (float)v;
  else if (t->dtype == RT_F64)
    ((double *)t->data)[i] = v;
  else
    ((long long *)t->data)[i] = (long long)v;
}

/* The value a tensor starts at before any draw. */
static double train_const_value(const RtTensor *t) {
  return t->kind == RT_GAMMA || t->kind == RT_BUF_ONE ? 1 : 0;
}

/* Draws the initial parameters, tensor by tensor in table order, each by
   its own scheme (or as PyTorch would, under "rng": "torch"), resets
   buffers, gradients and optimizer state, and keeps the seed (RT_SEED). */
void rt_init(const RtNet *net, uint64_t seed) {
  RtRng rng;
  int torch = net->rng == RT_RNG_TORCH;
  rt_rng_seed(&rng, seed, 0);
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    long n = rt_numel(t);
    for (long i = 0; i < n; i++)
      train_store(t, i, torch ? train_const_value(t) : train_init_value(t->init, t, &rng));
    if (t->kind == RT_SEED)
      *(long long *)t->data = (long long)seed;
  }
  if (torch)
    rt_trng_init(net, seed);
}

/* ---- data ---- */

/* Resolves a data name: "mnist" and "fashion-mnist" live under $MLPC_DATA
   or data/; anything else is a directory. */
const char *rt_data_dir(const char *name, char *buf, size_t len) {
  if (strcmp(name, "mnist") && strcmp(name, "fashion-mnist"))
    return name;
  const char *root = getenv("MLPC_DATA");
  snprintf(buf, len, "%s/%s", root && *root ? root : "data", name);
  return buf;
}

/* ---- the loop ---- */

/* Seconds on a monotonic clock. */
double rt_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Copies samples idx[0..n), of bytes bytes each, into contiguous batch
   buffers. */
static void train_gather(const RtSet *s, const long *idx, int n, size_t bytes,
                         unsigned char *x, unsigned char *y) {
  for (int r = 0; r < n; r++) {
    memcpy(x + r * bytes, s->images + (size_t)idx[r] * bytes, bytes);
    y[r] = s->labels[idx[r]];
  }
}

/* Asks for the images idx[0..n) to be brought into cache while the
   current batch trains: they lie anywhere in the training set, so a
   gather that waits for memory is slow. */
static void train_prefetch(const RtSet *s, const long *idx, int n, size_t bytes) {
#ifdef __GNUC__
  for (int r = 0; r < n; r++)
    for (size_t k = 0; k < bytes; k += 64)
      __builtin_prefetch(s->images + (size_t)idx[r] * bytes + k);
#else
  (void)s, (void)idx, (void)n, (void)bytes;
#endif
}

/* The batch order of one epoch: a Fisher–Yates shuffle, or file order. */
static void train_order(long *perm, long n, int shuffle, RtRng *rng) {
  for (long i = 0; i < n; i++)
    perm[i] = i;
  if (!shuffle)
    return;
  for (long i = n - 1; i > 0; i--) {
    long j = (long)rt_rng_below(rng, (uint64_t)i + 1);
    long t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* The number of batches of size b in n samples, limited by max (0: all). */
static long train_nbatches(long n, int b, long max) {
  long nb = (n + b - 1) / b;
  return max > 0 && max < nb ? max : nb;
}

typedef struct {
  const RtNet *net;
  const RtOptions *o;
  RtSet train, test;
  RtSet val;             /* held out of the training set; n 0: none      */
  long *perm;
  unsigned char *x, *y;
  RtRng rng;
  int epoch;             /* the epoch under way, from 1                  */
  long skipped;          /* one-sample batches skipped (BatchNorm)       */
  long step;             /* the epoch's last step trained (from 1; 0:
                            none), or the one whose loss was not finite  */
  RtHealth health;       /* under o->health                              */
  RtSched sched;         /* the lr schedule (rt/sched.c)            */
  int patience;          /* early stopping's; 0: none                    */
  RtEpoch best;          /* under it: the epoch of the least validation
                            loss so far (epoch 0: none yet)               */
  int waited;            /* epochs since                                 */
  unsigned char *kept;   /* its parameters and buffers                   */
} Loop;

/* The index of an epoch's last trained batch (the one whose update the
   health figures measure): a one-sample batch under BatchNorm is not. */
static long train_last_step(const Loop *L, long nb) {
  long last = nb - 1;
  if (L->net->has_batchnorm && L->train.n - last * L->net->batch == 1)
    last--;
  return last;
}

long rt_train_steps(long n, int batch, long max_batches, int has_batchnorm) {
  long nb = train_nbatches(n, batch, max_batches);
  return nb - (has_batchnorm && nb > 0 && n - (nb - 1) * batch == 1);
}

/* The training steps of an epoch of the loop. */
static long train_steps(const Loop *L) {
  return rt_train_steps(L->train.n, L->net->batch, L->o->max_batches, L->net->has_batchnorm);
}

int rt_recipe_check(const RtRecipe *r, long n, int batch, int has_batchnorm, int epochs,
                    long max_batches, char *err, size_t errlen) {
  long nval = rt_val_size(r, n);
  if (rt_val_check(nval, n, err, errlen))
    return -1;
  long steps = epochs * rt_train_steps(n - nval, batch, max_batches, has_batchnorm);
  return r ? rt_sched_check(r, steps, err, errlen) : 0;
}

/* Tells net's code how x holds the samples: reals of its dtype (real), or
   pixel bytes (0 is also the start: a module loaded again in this process
   shares the setting). */
static void train_reads(const RtNet *net, int real) {
  if (net->x_real)
    *net->x_real = real;
}

/* At a step boundary (step, or test batch, from 1): the net to go on
   with, which RtOptions.next_net may change; the schedule then sets the
   lr where the new net's code reads it. */
static const RtNet *train_boundary(Loop *L, long step, long batch) {
  if (L->o->next_net) {
    RtWhere at = {L->epoch, step, batch};
    const RtNet *next = L->o->next_net(L->o->tier, &at);
    if (next != L->net)
      rt_sched_move(&L->sched, next), train_reads(next, L->train.dtype != RT_U8);
    L->net = next;
  }
  return L->net;
}

/* One training epoch; returns the mean batch loss, NaN when it took no
   step (L->step 0), or NaN at divergence, with *diverged set and the
   step in L->step. */
static double train_epoch(Loop *L, int *diverged) {
  const RtNet *net = L->net;
  int B = net->batch;
  size_t bytes = net->input * rt_dtype_size(L->train.dtype);
  train_order(L->perm, L->train.n, L->o->shuffle, &L->rng);
  long nb = train_nbatches(L->train.n, B, L->o->max_batches), used = 0;
  long last = L->o->health ? train_last_step(L, nb) : -1;
  double sum = 0;
  L->step = 0;
  for (long b = 0; b < nb; b++) {
    long start = b * B;
    int n = (int)(L->train.n - start < B ? L->train.n - start : B);
    if (n == 1 && net->has_batchnorm) {
      L->skipped++;
      continue;
    }
    net = train_boundary(L, b + 1, 0);
    train_gather(&L->train, L->perm + start, n, bytes, L->x, L->y);
    if (b + 1 < nb)
      train_prefetch(&L->train, L->perm + start + B,
                     (int)(L->train.n - start - B < B ? L->train.n - start - B : B), bytes);
    if (b == last)
      rt_health_before_step(&L->health, net);
    double loss = net->train_step(n, L->x, L->y);
    if (b == last)
      rt_health_after_step(&L->health, net);
    L->step = b + 1;
    rt_sched_step(&L->sched);
    if (!isfinite(loss))
      return *diverged = 1, NAN;
    sum += loss;
    used++;
  }
  return used ? sum / used : NAN;
}

/* Evaluates on a held-out set (test or validation), in file order: mean
   loss over samples and accuracy. Its batches are contiguous, so nothing
   is copied. Each test batch is a step boundary (the net may change
   before it); the validation pass runs on the net the test pass ended
   with. */
static void train_eval(Loop *L, const RtSet *s, double *loss, double *acc) {
  int B = L->net->batch, test = s == &L->test;
  size_t bytes = L->net->input * rt_dtype_size(s->dtype);
  long nb = train_nbatches(s->n, B, L->o->max_batches), seen = 0, correct = 0;
  double sum = 0;
  for (long b = 0; b < nb; b++) {
    long start = b * B;
    int n = (int)(s->n - start < B ? s->n - start : B);
    const RtNet *net = test ? train_boundary(L, 0, b + 1) : L->net;
    net->eval(n, s->images + (size_t)start * bytes, s->labels + start, &sum, &correct);
    seen += n;
  }
  *loss = sum / seen;
  *acc = (double)correct / seen;
}

/* Writes a loss as JSON: null for none (an epoch without a step). */
static void train_json_loss(const char *key, double v) {
  if (isnan(v))
    printf("\"%s\": null", key);
  else
    printf("\"%s\": %.17g", key, v);
}

/* Prints one epoch's figures, as a table row or a JSON line, with the
   health figures h unless NULL: e->seconds for the whole epoch,
   train_secs for its training part (in JSON only); the validation
   figures when the run has a split. A train loss of NaN (no step) reads
   n/a, or null. */
static void train_print(const Loop *L, const RtEpoch *e, double train_secs,
                        const RtHealth *h) {
  const RtOptions *o = L->o;
  if (o->json) {
    printf("{\"epoch\": %d, ", e->epoch);
    train_json_loss("train_loss", e->train_loss);
    if (L->val.n)
      printf(", \"val_loss\": %.17g, \"val_acc\": %.17g", e->val_loss, e->val_acc);
    printf(", \"test_loss\": %.17g, \"test_acc\": %.17g, \"seconds\": %.6f, "
           "\"train_seconds\": %.6f", e->test_loss, e->test_acc, e->seconds, train_secs);
  } else {
    if (isnan(e->train_loss))
      printf("%5d  %10s", e->epoch, "n/a");
    else
      printf("%5d  %10.6f", e->epoch, e->train_loss);
    if (L->val.n)
      printf("  %10.6f  %7.2f%%", e->val_loss, 100 * e->val_acc);
    printf("  %10.6f  %8.2f%%  %7.3f\n", e->test_loss, 100 * e->test_acc, e->seconds);
  }
  if (h && o->json)
    printf(", "), rt_health_json(h, stdout);
  if (h && !o->json)
    rt_health_print(h, stdout);
  if (o->json)
    printf("}\n");
  fflush(stdout);
}

/* Probes the health figures on the first training samples, in file
   order: the same probe batch every epoch (docs/health.md). Hands them
   to on_health; returns them, or NULL when not asked for. */
static const RtHealth *train_probe(Loop *L, int epoch) {
  if (!L->o->health)
    return NULL;
  int n = (int)(L->train.n < L->net->batch ? L->train.n : L->net->batch);
  rt_health_probe(&L->health, L->net, n, L->train.images, L->train.labels);
  if (L->o->on_health)
    L->o->on_health(L->o->ctx, epoch, &L->health);
  return &L->health;
}

/* Prints the health figures of the initial weights, as epoch 0. */
static void train_print_initial(Loop *L) {
  const RtHealth *h = train_probe(L, 0);
  if (L->o->on_epoch)
    return;
  if (h && L->o->json)
    printf("{\"epoch\": 0, "), rt_health_json(h, stdout), printf("}\n");
  if (h && !L->o->json)
    printf("%5d  (the initial weights)\n", 0), rt_health_print(h, stdout);
}

/* The bytes of t's data when early stopping keeps it (a parameter or
   buffer), else 0. */
static size_t train_kept_size(const RtTensor *t) {
  return t->kind <= RT_BUF_ONE ? (size_t)rt_numel(t) * (t->dtype == RT_F32 ? 4 : 8) : 0;
}

/* The bytes of the parameters and buffers, which early stopping keeps. */
static size_t train_kept_bytes(const RtNet *net) {
  size_t n = 0;
  for (int k = 0; k < net->ntensors; k++)
    n += train_kept_size(&net->tensors[k]);
  return n;
}

/* Allocates the loop's buffers; 0 or -1. */
static int train_alloc(Loop *L) {
  long n = L->train.n > L->net->batch ? L->train.n : L->net->batch;
  L->perm = malloc(sizeof(long) * (size_t)n);
  L->x = malloc((size_t)L->net->batch * L->net->input * rt_dtype_size(L->train.dtype));
  L->y = malloc((size_t)L->net->batch);
  if (L->o->health && rt_health_alloc(&L->health, L->net))
    return -1;
  if (L->patience && !(L->kept = malloc(train_kept_bytes(L->net) + 1)))
    return -1;
  return L->perm && L->x && L->y ? 0 : -1;
}

/* Copies the parameters and buffers into L->kept, or back from it. */
static void train_keep(Loop *L, int back) {
  unsigned char *at = L->kept;
  for (int k = 0; k < L->net->ntensors; k++) {
    const RtTensor *t = &L->net->tensors[k];
    size_t n = train_kept_size(t);
    memcpy(back ? t->data : at, back ? at : t->data, n);
    at += n;
  }
}

/* Under early stopping, after epoch e: keeps its weights and figures when
   its validation loss is less than every one before (strictly), and
   marks e with the best epoch so far; 1 when `patience` epochs have
   passed without a better one. */
static int train_watch(Loop *L, RtEpoch *e) {
  if (!L->patience)
    return 0;
  if (!L->best.epoch || e->val_loss < L->best.val_loss) {
    e->best_epoch = e->epoch;
    L->best = *e, L->waited = 0;
    train_keep(L, 0);
  } else
    e->best_epoch = L->best.epoch, L->waited++;
  return L->waited >= L->patience;
}

/* Hands one epoch's figures to the caller's on_epoch. */
static void train_report(const RtOptions *o, const RtEpoch *e) {
  o->on_epoch(o->ctx, e);
}

/* Writes s as a JSON string. */
static void train_json_string(const char *s) {
  putchar('"');
  for (; *s; s++)
    if (*s == '"' || *s == '\\')
      printf("\\%c", *s);
    else if ((unsigned char)*s < 0x20)
      printf("\\u%04x", *s);
    else
      putchar(*s);
  putchar('"');
}

/* Says which code ran which part (RtOptions.describe): a line after the
   table, or the summary line's last members and its end. */
static void train_describe(const RtOptions *o) {
  if (o->describe)
    o->describe(o->tier, o->json, stdout);
  if (o->json)
    printf("}\n");
}

/* Ends a run that diverged at epoch e, step (0: in the test pass): hands
   it to on_epoch, or says why on stderr and, under --json, in a last
   summary line; returns the exit status, 1. */
static int train_diverged(const Loop *L, int e, long step, const char *why, double secs) {
  const RtOptions *o = L->o;
  char msg[512];
  if (step)
    snprintf(msg, sizeof msg, "training diverged at epoch %d, step %ld: %s", e, step, why);
  else
    snprintf(msg, sizeof msg, "training diverged at epoch %d, in the test pass: %s", e, why);
  if (o->on_epoch) {
    RtEpoch d = {e, NAN, NAN, NAN, secs, step, NAN, NAN, 0};
    train_report(o, &d);
    return 1;
  }
  fprintf(stderr, "mlpc: error: %s\n", msg);
  if (o->json) {
    printf("{\"summary\": true, \"diverged\": true, \"epoch\": %d, \"step\": ", e);
    if (step)
      printf("%ld", step);
    else
      printf("null");
    printf(", \"message\": "), train_json_string(msg);
    printf(", \"epochs\": %d", e - 1);
  }
  train_describe(o);
  return 1;
}

/* After an epoch's training: why the run diverged, into why, or 0 if it
   did not. The loss of every step was checked as it came; the tensors
   are checked once here: a value that is not finite can hide from the
   loss (products with zero inputs are skipped). */
static int train_check(const Loop *L, int diverged, char *why, size_t len) {
  char what[256];
  if (diverged)
    return snprintf(why, len, "the loss is not finite"), 1;
  if (!rt_check_finite(L->net, what, sizeof what))
    return 0;
  snprintf(why, len, "after the epoch's last step, %s; the loss was finite at every step",
           what);
  return 1;
}

/* The table's header: the validation columns when the run has a split. */
static void train_header(const Loop *L) {
  printf("epoch  train_loss%s   test_loss  test_acc  seconds\n",
         L->val.n ? "    val_loss   val_acc" : "");
}

/* One epoch: trains, checks, evaluates (test, then validation) into e;
   0, or the exit status of a run that diverged (1). */
static int train_one(Loop *L, int epoch, RtEpoch *e, double *train_secs) {
  double t = rt_now();
  int diverged = 0;
  char why[400];
  *e = (RtEpoch){.epoch = epoch, .val_loss = NAN, .val_acc = NAN};
  L->epoch = epoch;
  e->train_loss = train_epoch(L, &diverged);
  rt_sched_epoch(&L->sched);
  *train_secs = rt_now() - t;
  if (train_check(L, diverged, why, sizeof why))
    return train_diverged(L, epoch, L->step, why, rt_now() - t);
  train_eval(L, &L->test, &e->test_loss, &e->test_acc);
  if (!isfinite(e->test_loss))
    return train_diverged(L, epoch, 0, "the test loss is not finite", rt_now() - t);
  if (L->val.n)
    train_eval(L, &L->val, &e->val_loss, &e->val_acc);
  if (L->val.n && !isfinite(e->val_loss))
    return train_diverged(L, epoch, 0, "the validation loss is not finite", rt_now() - t);
  e->seconds = rt_now() - t;
  return 0;
}

/* Under early stopping, once the run ends after epoch last: puts the
   best epoch's weights back, says so (unless on_epoch), and returns its
   figures; without, last's. */
static RtEpoch train_final(Loop *L, const RtEpoch *last, int stopped) {
  const RtEpoch *b = &L->best;
  if (!L->patience)
    return *last;
  if (b->epoch != last->epoch)
    train_keep(L, 1);
  char why[80] = "";
  if (stopped)
    snprintf(why, sizeof why, "stopped after %d epoch%s without a better one; ", L->patience,
             L->patience == 1 ? "" : "s");
  if (!L->o->json && !L->o->on_epoch)
    printf("early stopping: %sthe least validation loss, %.6f, was epoch %d's: its weights "
           "are kept, test loss %.6f, accuracy %.2f%%\n", why, b->val_loss, b->epoch,
           b->test_loss, 100 * b->test_acc);
  return *b;
}

/* The last line under --json: how the run ended, and its final figures
   (under early stopping, the best epoch's); train_describe ends it. */
static void train_summary(const Loop *L, int epochs, const RtEpoch *f, int stopped, double t0) {
  printf("{\"summary\": true, \"diverged\": false, \"epochs\": %d, ", epochs);
  if (L->patience)
    printf("\"best_epoch\": %d, \"stopped_early\": %s, ", f->epoch, stopped ? "true" : "false");
  train_json_loss("final_train_loss", f->train_loss);
  if (L->val.n)
    printf(", \"final_val_loss\": %.17g, \"final_val_acc\": %.17g", f->val_loss, f->val_acc);
  printf(", \"final_test_loss\": %.17g, \"final_test_acc\": %.17g, \"seconds\": %.6f",
         f->test_loss, f->test_acc, rt_now() - t0);
}

/* Runs the epochs, until early stopping ends them; returns the exit
   status (0, or 1 at divergence). */
static int train_run(Loop *L) {
  const RtOptions *o = L->o;
  double t0 = rt_now(), train_secs;
  RtEpoch e = {0};
  int stopped = 0, status;
  if (!o->json && !o->on_epoch)
    train_header(L);
  train_print_initial(L);
  for (int epoch = 1; epoch <= o->epochs && !stopped; epoch++) {
    if ((status = train_one(L, epoch, &e, &train_secs)))
      return status;
    stopped = train_watch(L, &e);
    const RtHealth *h = train_probe(L, epoch);
    if (o->on_epoch)
      train_report(o, &e);
    else
      train_print(L, &e, train_secs, h);
  }
  if (L->skipped)
    fprintf(stderr, "mlpc: note: skipped %ld one-sample training batch(es): "
            "BatchNorm needs at least 2 samples%s\n", L->skipped,
            isnan(e.train_loss) ? "; no step was taken, so there is no train loss" : "");
  RtEpoch f = train_final(L, &e, stopped);
  if (o->json)
    train_summary(L, e.epoch, &f, stopped, t0);
  if (!o->on_epoch)
    train_describe(o);
  return 0;
}

/* Holds the recipe's validation set out of the training set (the rest
   trains); 0, or -1 with the reason in err. */
static int train_split(Loop *L, char *err, size_t errlen) {
  RtSet all = L->train;
  long nval = rt_val_size(L->net->recipe, all.n);
  if (!nval)
    return 0;
  if (rt_split(&all, L->net->input, L->net->output, nval, L->o->seed, &L->train, &L->val, err,
               errlen))
    return L->train = all, -1;
  rt_free_set(&all);
  return 0;
}

/* Says what the run trains on, tests and validates on. */
static void train_say_data(const Loop *L) {
  printf("data %s: %ld train, ", L->o->data, L->train.n);
  if (L->val.n)
    printf("%ld validation (held out of the training set, by class, seed %llu), ", L->val.n,
           (unsigned long long)L->o->seed);
  printf("%ld test\n", L->test.n);
}

/* Loads the data and trains; returns the process exit status. */
int rt_train(const RtNet *net, const RtOptions *o) {
  char err[1024];
  Loop L = {.net = net, .o = o, .patience = net->recipe ? net->recipe->patience : 0};
  if (rt_load_data(o->data, net->input, net->shape, net->output, net->dtype, &L.train,
                   &L.test, err, sizeof err) ||
      train_split(&L, err, sizeof err)) {
    fprintf(stderr, "mlpc: error: %s\n", err);
    rt_free_set(&L.train), rt_free_set(&L.test);
    return 2;
  }
  train_reads(net, L.train.dtype != RT_U8);
  rt_rng_seed(&L.rng, o->seed, 1);
  int status = 1;
  if (train_alloc(&L))
    fprintf(stderr, "mlpc: error: out of memory\n");
  else if (rt_sched_start(&L.sched, net, o->epochs * train_steps(&L), err, sizeof err))
    fprintf(stderr, "mlpc: error: %s\n", err), status = 2;
  else {
    if (!o->json && !o->on_epoch)
      train_say_data(&L);
    status = train_run(&L);
  }
  free(L.perm);
  free(L.x);
  free(L.y);
  free(L.kept);
  rt_health_free(&L.health);
  train_reads(net, 0), train_reads(L.net, 0);
  rt_free_set(&L.train);
  rt_free_set(&L.val);
  rt_free_set(&L.test);
  return status;
}
