/*
 * train.c — initialisation and the training loop, shared by `mlpc --run`
 * and standalone trainers.
 *
 * The loop owns the data and the batch order; the model (an RtNet) owns
 * all arithmetic. Each epoch trains on the shuffled training set, then
 * evaluates on the whole test set in eval mode and prints one line, or
 * hands the figures to the caller (RtOptions.on_epoch; studies use it).
 * Under RtOptions.health the health figures of a fixed probe batch follow
 * each line, and come first for the initial weights (runtime/health.c).
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

long rt_numel(const RtTensor *t) {
  long n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

long rt_offset(const RtTensor *t, long i) {
  return t->transposed ? i % t->shape[1] * t->shape[0] + i / t->shape[1] : i;
}

void rt_copy_rows(const RtTensor *t, void *rows, int to_rows) {
  size_t sz = t->dtype == RT_F32 ? 4 : 8;
  long n = rt_numel(t);
  if (!t->transposed)
    memcpy(to_rows ? rows : t->data, to_rows ? t->data : rows, n * sz);
  else
    for (long i = 0; i < n; i++) {
      char *row = (char *)rows + i * sz, *at = (char *)t->data + rt_offset(t, i) * sz;
      memcpy(to_rows ? row : at, to_rows ? at : row, sz);
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

/* Copies samples idx[0..n) into contiguous batch buffers. */
static void train_gather(const RtSet *s, const long *idx, int n, int feats,
                         unsigned char *x, unsigned char *y) {
  for (int r = 0; r < n; r++) {
    memcpy(x + (size_t)r * feats, s->images + (size_t)idx[r] * feats, feats);
    y[r] = s->labels[idx[r]];
  }
}

/* Asks for the images idx[0..n) to be brought into cache while the
   current batch trains: they lie anywhere in the training set, so a
   gather that waits for memory is slow. */
static void train_prefetch(const RtSet *s, const long *idx, int n, int feats) {
#ifdef __GNUC__
  for (int r = 0; r < n; r++)
    for (int k = 0; k < feats; k += 64)
      __builtin_prefetch(s->images + (size_t)idx[r] * feats + k);
#else
  (void)s, (void)idx, (void)n, (void)feats;
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
  long *perm;
  unsigned char *x, *y;
  RtRng rng;
  int epoch;             /* the epoch under way, from 1                  */
  long skipped;          /* one-sample batches skipped (BatchNorm)       */
  long step;             /* the epoch's last step trained (from 1; 0:
                            none), or the one whose loss was not finite  */
  RtHealth health;       /* under o->health                              */
} Loop;

/* The index of an epoch's last trained batch (the one whose update the
   health figures measure): a one-sample batch under BatchNorm is not. */
static long train_last_step(const Loop *L, long nb) {
  long last = nb - 1;
  if (L->net->has_batchnorm && L->train.n - last * L->net->batch == 1)
    last--;
  return last;
}

/* At a step boundary (step, or test batch, from 1): the net to go on
   with, which RtOptions.next_net may change. */
static const RtNet *train_boundary(Loop *L, long step, long batch) {
  if (L->o->next_net) {
    RtWhere at = {L->epoch, step, batch};
    L->net = L->o->next_net(L->o->tier, &at);
  }
  return L->net;
}

/* One training epoch; returns the mean batch loss, NaN when it took no
   step (L->step 0), or NaN at divergence, with *diverged set and the
   step in L->step. */
static double train_epoch(Loop *L, int *diverged) {
  const RtNet *net = L->net;
  int B = net->batch, feats = net->input;
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
    train_gather(&L->train, L->perm + start, n, feats, L->x, L->y);
    if (b + 1 < nb)
      train_prefetch(&L->train, L->perm + start + B,
                     (int)(L->train.n - start - B < B ? L->train.n - start - B : B), feats);
    if (b == last)
      rt_health_before_step(&L->health, net);
    double loss = net->train_step(n, L->x, L->y);
    if (b == last)
      rt_health_after_step(&L->health, net);
    L->step = b + 1;
    if (!isfinite(loss))
      return *diverged = 1, NAN;
    sum += loss;
    used++;
  }
  return used ? sum / used : NAN;
}

/* Evaluates on the test set, in file order: mean loss over samples and
   accuracy. Test batches are contiguous, so nothing is copied. */
static void train_eval(Loop *L, double *loss, double *acc) {
  const RtSet *s = &L->test;
  int B = L->net->batch, feats = L->net->input;
  long nb = train_nbatches(s->n, B, L->o->max_batches), seen = 0, correct = 0;
  double sum = 0;
  for (long b = 0; b < nb; b++) {
    long start = b * B;
    int n = (int)(s->n - start < B ? s->n - start : B);
    train_boundary(L, 0, b + 1)->eval(n, s->images + (size_t)start * feats, s->labels + start,
                                      &sum, &correct);
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
   health figures h unless NULL: secs for the whole epoch, train_secs for
   its training part (in JSON only). A train loss of NaN (no step) reads
   n/a, or null. */
static void train_print(const RtOptions *o, int epoch, double tl, double vl,
                        double acc, double secs, double train_secs, const RtHealth *h) {
  if (o->json) {
    printf("{\"epoch\": %d, ", epoch);
    train_json_loss("train_loss", tl);
    printf(", \"test_loss\": %.17g, \"test_acc\": %.17g, \"seconds\": %.6f, "
           "\"train_seconds\": %.6f", vl, acc, secs, train_secs);
  } else if (isnan(tl))
    printf("%5d  %10s  %10.6f  %8.2f%%  %7.3f\n", epoch, "n/a", vl, 100 * acc, secs);
  else
    printf("%5d  %10.6f  %10.6f  %8.2f%%  %7.3f\n", epoch, tl, vl, 100 * acc, secs);
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

/* Allocates the loop's buffers; 0 or -1. */
static int train_alloc(Loop *L) {
  long n = L->train.n > L->net->batch ? L->train.n : L->net->batch;
  L->perm = malloc(sizeof(long) * (size_t)n);
  L->x = malloc((size_t)L->net->batch * L->net->input);
  L->y = malloc((size_t)L->net->batch);
  if (L->o->health && rt_health_alloc(&L->health, L->net))
    return -1;
  return L->perm && L->x && L->y ? 0 : -1;
}

/* Hands one epoch's figures to the caller's on_epoch. */
static void train_report(const RtOptions *o, int epoch, double tl, double vl,
                         double acc, double secs, long bad) {
  RtEpoch e = {epoch, tl, vl, acc, secs, bad};
  o->on_epoch(o->ctx, &e);
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
    train_report(o, e, NAN, NAN, NAN, secs, step);
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

/* Runs all epochs; returns the exit status (0, or 1 at divergence). */
static int train_run(Loop *L) {
  const RtOptions *o = L->o;
  double t0 = rt_now(), tl = 0, vl = 0, acc = 0;
  char why[400];
  if (!o->json && !o->on_epoch)
    printf("epoch  train_loss   test_loss  test_acc  seconds\n");
  train_print_initial(L);
  for (int e = 1; e <= o->epochs; e++) {
    double t = rt_now();
    int diverged = 0;
    L->epoch = e;
    tl = train_epoch(L, &diverged);
    double train_secs = rt_now() - t;
    if (train_check(L, diverged, why, sizeof why))
      return train_diverged(L, e, L->step, why, rt_now() - t);
    train_eval(L, &vl, &acc);
    if (!isfinite(vl))
      return train_diverged(L, e, 0, "the test loss is not finite", rt_now() - t);
    double secs = rt_now() - t;
    const RtHealth *h = train_probe(L, e);
    if (o->on_epoch)
      train_report(o, e, tl, vl, acc, secs, 0);
    else
      train_print(o, e, tl, vl, acc, secs, train_secs, h);
  }
  if (L->skipped)
    fprintf(stderr, "mlpc: note: skipped %ld one-sample training batch(es): "
            "BatchNorm needs at least 2 samples%s\n", L->skipped,
            isnan(tl) ? "; no step was taken, so there is no train loss" : "");
  if (o->json) {
    printf("{\"summary\": true, \"diverged\": false, \"epochs\": %d, ", o->epochs);
    train_json_loss("final_train_loss", tl);
    printf(", \"final_test_loss\": %.17g, \"final_test_acc\": %.17g, \"seconds\": %.6f",
           vl, acc, rt_now() - t0);
  }
  if (!o->on_epoch)
    train_describe(o);
  return 0;
}

/* Loads the data and trains; returns the process exit status. */
int rt_train(const RtNet *net, const RtOptions *o) {
  char err[1024];
  Loop L = {.net = net, .o = o};
  if (rt_load_data(o->data, net->input, net->shape, net->output, &L.train, &L.test, err,
                   sizeof err)) {
    fprintf(stderr, "mlpc: error: %s\n", err);
    return 2;
  }
  rt_rng_seed(&L.rng, o->seed, 1);
  int status = 1;
  if (train_alloc(&L))
    fprintf(stderr, "mlpc: error: out of memory\n");
  else {
    if (!o->json && !o->on_epoch)
      printf("data %s: %ld train, %ld test\n", o->data, L.train.n, L.test.n);
    status = train_run(&L);
  }
  free(L.perm);
  free(L.x);
  free(L.y);
  rt_health_free(&L.health);
  rt_free_set(&L.train);
  rt_free_set(&L.test);
  return status;
}
