/*
 * plan.c — what a study runs: every experiment's generated code, its data
 * set's hash and its settings, and from these the distinct runs, keyed as
 * the database keys them: (code, seed, data, settings). Experiments that
 * share a model (in one_factor mode the base appears once per varied key)
 * share their runs, and experiments that share code share one compiled
 * object. Every seed of an adaptive study is planned; the tasks it
 * wants so far are marked (st_plan_want).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "study.h"

/* ---- hashing ---- */

/* A hash as 16 hex digits. */
static StHash hex(uint64_t h) {
  StHash s;
  snprintf(s.hex, sizeof s.hex, "%016llx", (unsigned long long)h);
  return s;
}

StHash st_hash(const void *data, size_t len) { return hex(rt_fnv(RT_FNV_OFFSET, data, len)); }

/* Folds one data set (sizes, pixels, labels) into h. Channels other
   than one, and the type and flatness of data other than pixel bytes,
   are folded in after the sizes, so that images of one channel, in a
   file of 3 or of 4 dimensions, hash as before there were channels. */
static uint64_t hash_set(uint64_t h, const RtSet *s) {
  long dims[3] = {s->n, s->rows, s->cols}, channels = s->channels;
  long kind[2] = {s->dtype, s->flat};
  h = rt_fnv(h, dims, sizeof dims);
  if (channels != 1)
    h = rt_fnv(h, &channels, sizeof channels);
  if (s->dtype != RT_U8)
    h = rt_fnv(h, kind, sizeof kind);
  h = rt_fnv(h, s->images,
             (size_t)s->n * s->channels * s->rows * s->cols * rt_dtype_size(s->dtype));
  return rt_fnv(h, s->labels, (size_t)s->n);
}

/* ---- data sets ---- */

/* The hashes of the data directories seen so far. */
typedef struct {
  int n;
  struct {
    char dir[MAX_PATH_LEN];
    int input, output, shape[3], dtype;
    StHash hash;
    long ntrain;            /* training samples                          */
  } d[64];
} Seen;

/* Loads a data directory, checks it fits the model and hashes its
   contents (as loaded, so raw and gzip files of the same data agree). */
static int hash_data(const StExperiment *e, const char *dir, StHash *out, long *ntrain,
                     char *err, size_t errlen) {
  RtSet tr, te;
  char why[MAX_PATH_LEN + 256];
  if (rt_load_data(dir, e->model.input, e->model.shape, e->model.output,
                   e->model.dtype == DT_F64 ? RT_F64 : RT_F32, &tr, &te, why, sizeof why)) {
    snprintf(err, errlen, "experiment '%s': %s", e->name, why);
    return -1;
  }
  *out = hex(hash_set(hash_set(RT_FNV_OFFSET, &tr), &te));
  *ntrain = tr.n;
  rt_free_set(&tr);
  rt_free_set(&te);
  return 0;
}

/* The data hash of an experiment and its training samples, computed
   once per directory and model shape (input, output and input as images). */
static int data_of(Seen *seen, const StExperiment *e, const char *dir, StHash *out,
                   long *ntrain, char *err, size_t errlen) {
  const Model *m = &e->model;
  for (int i = 0; i < seen->n; i++)
    if (!strcmp(seen->d[i].dir, dir) && seen->d[i].input == m->input &&
        seen->d[i].output == m->output && seen->d[i].dtype == m->dtype &&
        !memcmp(seen->d[i].shape, m->shape, sizeof m->shape))
      return *out = seen->d[i].hash, *ntrain = seen->d[i].ntrain, 0;
  if (seen->n == (int)(sizeof seen->d / sizeof seen->d[0])) {
    snprintf(err, errlen, "more than %d data sets in one study", seen->n);
    return -1;
  }
  if (hash_data(e, dir, out, ntrain, err, errlen))
    return -1;
  snprintf(seen->d[seen->n].dir, MAX_PATH_LEN, "%s", dir);
  seen->d[seen->n].input = m->input, seen->d[seen->n].output = m->output;
  seen->d[seen->n].dtype = m->dtype;
  memcpy(seen->d[seen->n].shape, m->shape, sizeof m->shape);
  seen->d[seen->n].ntrain = *ntrain;
  seen->d[seen->n++].hash = *out;
  return 0;
}

/* ---- code ---- */

/* A model's generated unit for the plan's backend, in the study's
   arithmetic, into b; -1 with nothing held if memory ran out. */
static int unit_of(const StPlan *p, const Model *m, Buf *b) {
  static Ir ir;
  *b = (Buf){0};
  ir_lower(m, &ir);
  ir.fma = p->s->arith;
  if (!emit_unit(&ir, p->backend, b))
    return 0;
  fe_free(b->buf);
  return -1;
}

/* The index of an experiment's code in p->codes, added if new; -1 if
   memory ran out. */
static int code_of(StPlan *p, int exp) {
  Buf b;
  if (unit_of(p, &p->s->exp[exp].model, &b))
    return -1;
  StHash h = st_hash(b.buf, b.len);
  for (int i = 0; i < p->ncodes; i++)
    if (!strcmp(p->codes[i].hash.hex, h.hex) && !strcmp(p->codes[i].unit, b.buf)) {
      fe_free(b.buf);
      return i;
    }
  p->codes[p->ncodes] = (StCode){h, b.buf, exp};
  return p->ncodes++;
}

/* ---- runs ---- */

/* The settings that, beside code, seed and data, decide a run's result.
   A tiered run is keyed as a gcc run: its code is gcc's unit, its
   results are the bits gcc's code gives (tests/test_tier.c). */
static void settings(const StPlan *p, const Model *m, char *buf, size_t size) {
  int backend = p->backend == BACKEND_TIERED ? BACKEND_GCC : p->backend;
  snprintf(buf, size,
           "{\"backend\":\"%s\",\"epochs\":%d,\"max_batches\":%ld,\"mlpc\":\"%s\","
           "\"shuffle\":%s}",
           backend_names[backend], m->epochs, m->max_batches, MLPC_VERSION,
           p->shuffle ? "true" : "false");
}

/* Whether two tasks have the same key. */
static int same_task(const StTask *a, const StTask *b) {
  return a->code == b->code && a->seed == b->seed &&
         !strcmp(a->data_hash.hex, b->data_hash.hex) && !strcmp(a->settings, b->settings);
}

/* Open addressing over task keys: the table and its size (a power of 2). */
typedef struct {
  int *slot;
  size_t mask;
} Table;

/* The index of t among p->tasks, added if new. */
static int task_of(StPlan *p, Table *tb, const StTask *t) {
  uint64_t h = rt_fnv(RT_FNV_OFFSET, &t->code, sizeof t->code);
  h = rt_fnv(h, &t->seed, sizeof t->seed);
  h = rt_fnv(h, t->data_hash.hex, 16);
  h = rt_fnv(h, t->settings, strlen(t->settings));
  for (size_t i = h & tb->mask;; i = (i + 1) & tb->mask) {
    if (tb->slot[i] < 0) {
      p->tasks[p->ntasks] = *t;
      return tb->slot[i] = p->ntasks++;
    }
    if (same_task(&p->tasks[tb->slot[i]], t))
      return tb->slot[i];
  }
}

/* Says memory ran out; st_plan's status for it. */
static int no_memory(char *err, size_t errlen) {
  snprintf(err, errlen, "out of memory");
  return 1;
}

/* Whether the experiment's training recipe fits its training set of
   ntrain samples (its validation split, onecycle's steps), as each run
   would find before training: 0, or -1 with the reason in err. */
static int recipe_fits(const StExperiment *x, long ntrain, char *err, size_t errlen) {
  static Ir ir;
  char why[512];
  const Model *m = &x->model;
  ir_lower(m, &ir);
  if (!rt_recipe_check(&m->recipe, ntrain, m->batch_size, emit_has_batchnorm(&ir), m->epochs,
                       m->max_batches, why, sizeof why))
    return 0;
  snprintf(err, errlen, "experiment '%s': %s", x->name, why);
  return -1;
}

/* Plans every run of one experiment; st_plan's status. */
static int plan_experiment(StPlan *p, Table *tb, Seen *seen, int e, char *err,
                           size_t errlen) {
  const StExperiment *x = &p->s->exp[e];
  StTask t = {.code = code_of(p, e), .exp = e};
  char dir[MAX_PATH_LEN];
  long ntrain;
  if (t.code < 0)
    return no_memory(err, errlen);
  snprintf(t.data_dir, sizeof t.data_dir, "%s", rt_data_dir(x->model.data, dir, sizeof dir));
  if (data_of(seen, x, t.data_dir, &t.data_hash, &ntrain, err, errlen) ||
      recipe_fits(x, ntrain, err, errlen))
    return 2;
  settings(p, &x->model, t.settings, sizeof t.settings);
  for (int k = 0; k < p->s->nseeds; k++) {
    t.seed = p->s->seeds[k];
    p->task_of[e * p->s->nseeds + k] = task_of(p, tb, &t);
  }
  return 0;
}

/* Sets p->base to the first experiment whose runs are the base model's:
   the same code, data directory and settings; -1 if none is. st_plan's
   status. */
static int find_base(StPlan *p, char *err, size_t errlen) {
  const Study *s = p->s;
  char buf[MAX_PATH_LEN], set[sizeof p->tasks[0].settings];
  Buf b;
  if (unit_of(p, &s->base, &b))
    return no_memory(err, errlen);
  const char *dir = rt_data_dir(s->base.data, buf, sizeof buf);
  settings(p, &s->base, set, sizeof set);
  int base = -1;
  for (int e = 0; e < s->nexp && base < 0 && s->nseeds; e++) {
    const StTask *t = &p->tasks[p->task_of[e * s->nseeds]];
    if (!strcmp(p->codes[t->code].unit, b.buf) && !strcmp(t->data_dir, dir) &&
        !strcmp(t->settings, set))
      base = e;
  }
  fe_free(b.buf);
  p->base = base;
  return 0;
}

int st_plan(const Study *s, int backend, int shuffle, StPlan *p, char *err,
            size_t errlen) {
  size_t nruns = (size_t)s->nexp * s->nseeds, cap = 16;
  while (cap < 2 * nruns)
    cap *= 2;
  memset(p, 0, sizeof *p);
  *p = (StPlan){.s = s, .backend = backend, .shuffle = shuffle, .base = -1};
  p->codes = calloc((size_t)s->nexp, sizeof *p->codes);
  p->tasks = calloc(nruns, sizeof *p->tasks);
  p->task_of = calloc(nruns, sizeof *p->task_of);
  p->nwant = calloc((size_t)s->nexp + 1, sizeof *p->nwant);
  Table tb = {malloc(cap * sizeof(int)), cap - 1};
  Seen *seen = calloc(1, sizeof *seen);
  int rc = 0;
  if (!p->codes || !p->tasks || !p->task_of || !p->nwant || !tb.slot || !seen)
    rc = no_memory(err, errlen);
  else
    memset(tb.slot, 0xff, cap * sizeof(int));
  for (int e = 0; e < s->nexp && !rc; e++)
    rc = plan_experiment(p, &tb, seen, e, err, errlen);
  if (!rc)
    rc = find_base(p, err, errlen);
  for (int e = 0; e < s->nexp && !rc; e++)
    p->nwant[e] = s->nstart;
  if (!rc)
    st_plan_want(p);
  free(tb.slot);
  free(seen);
  if (rc)
    st_plan_free(p);
  return rc;
}

void st_plan_free(StPlan *p) {
  for (int i = 0; i < p->ncodes; i++)
    fe_free(p->codes[i].unit);
  free(p->codes), free(p->tasks), free(p->task_of), free(p->nwant);
  memset(p, 0, sizeof *p);
}

void st_plan_want(StPlan *p) {
  const Study *s = p->s;
  for (int i = 0; i < p->ntasks; i++)
    p->tasks[i].wanted = 0;
  for (int e = 0; e < s->nexp; e++)
    for (int k = 0; k < p->nwant[e]; k++)
      p->tasks[p->task_of[e * s->nseeds + k]].wanted = 1;
}
