/*
 * test_reference.c — mlpc against PyTorch, step for step.
 *
 * tests/reference/cases.json lists the cases written by
 * tests/reference/gen.py with PyTorch: a model file, a data set under
 * tests/reference/data, the batches of each step (in file order), and
 * PyTorch's loss at every step and eval-mode test loss before and after.
 * tests/reference/cases/NAME.{init,final}.safetensors hold its weights.
 *
 * Each case goes through the library's own pipeline: fe_load_string →
 * ir_lower → emit_unit → jit_gcc or jit_tcc (copy A), and a second tcc copy
 * (B) that holds PyTorch's tensors for comparison:
 *
 *   1. rt_init(A) with "rng": "torch" must give PyTorch's initial weights
 *      bit for bit (B holds them, from NAME.init.safetensors);
 *   2. A trains on the case's batches with net->train_step; each step's
 *      loss is compared with PyTorch's, then net->eval's test loss. A
 *      case with a schedule runs the runtime's (rt/sched.c), stepped
 *      after each step and each epoch as the training loop steps it, and
 *      the lr (and a cycled momentum) of every step must be PyTorch's bit
 *      for bit;
 *   3. every parameter and buffer of A is compared with B, which now holds
 *      NAME.final.safetensors (A's own are left in
 *      out/reference/NAME.mlpc.safetensors, for a closer look). B loads
 *      that file of A's first: loading refuses a missing or unexpected
 *      name, dtype or shape, so mlpc's saved names (0.weight,
 *      1.num_batches_tracked ...) are exactly PyTorch's, as
 *      load_state_dict(strict=True) would want.
 *
 * A case with a validation split runs the training loop itself instead
 * of step 2: rt_train in file order, whose every epoch's figures
 * (train, validation and test loss and accuracy) are compared with those
 * of PyTorch's loop over the same split (gen.py computes mlpc's split
 * with mlpc's generator), and under early stopping the epoch it keeps
 * must be PyTorch's; the final weights, step 3, are that epoch's.
 *
 * Bounds: float32 relative error 1e-4 with an absolute floor of 1e-6;
 * float64 1e-10 with a floor of 1e-12. The largest error of each case is
 * printed, and where it is (an element of a tensor by its PyTorch index,
 * "0.weight[15,0,2,1]"), next to PyTorch's own spread: how far PyTorch
 * moves when the initial weights are nudged by an ulp (and, for float32,
 * when it runs in float64), which gen.py keeps below a tenth of the bound.
 *
 * The convolutional cases (cnn_*) give "input": [C, H, W] and read image
 * sets of several channels from 4-d IDX files; a sample is its C·H·W
 * bytes in NCHW order, as for the flat models. A case that mlpc cannot
 * load, compile or run fails with the reason on its line, and the other
 * cases still run: every case is reported, and one failure fails the test.
 * ctest runs the cases in shares side by side (util.h: K/N takes the
 * cases whose index i has i % N == K).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <jansson.h>
#include "../mlpc.h"
#include "util.h"

#define DIR "tests/reference"

/* The largest scaled error seen in one quantity, and where. */
typedef struct {
  double err;         /* |a − b| / max(|b|, floor / rel), against rel     */
  char where[80];
} Worst;

typedef struct {
  const char *name;
  int f64;
  double rel, floor;
  Worst loss, param;
  double spread;      /* PyTorch's own, under rounding-sized changes      */
  long init_bad;      /* initial-weight elements that differ from PyTorch */
  int scheduled;      /* PyTorch's lr of every step is in the case        */
  long lr_bad;        /* steps whose lr or momentum differs in any bit    */
  int epochs, best;   /* a loop case: epochs run, the epoch kept (0: none) */
  int loop_bad;       /* ... not PyTorch's                                */
  char why[1024];     /* why the case could not run, or ""                */
} Case;

/* Notes why c could not run; returns -1. */
__attribute__((format(printf, 2, 3)))
static int stop(Case *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->why, sizeof c->why, fmt, ap);
  va_end(ap);
  return -1;
}

/* Records the error of a against PyTorch's b. */
static void note(Case *c, Worst *w, double a, double b, const char *fmt, ...) {
  double e = fabs(a - b) / fmax(fabs(b), c->floor / c->rel);
  if (!(e <= w->err)) { /* NaN counts as worst */
    w->err = isnan(e) ? INFINITY : e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->where, sizeof w->where, fmt, ap);
    va_end(ap);
  }
}

/* Element i of t (row-major order of its shape) as a double. */
static double at(const RtTensor *t, long i) {
  i = rt_offset(t, i);
  switch (t->dtype) {
  case RT_F32: return ((float *)t->data)[i];
  case RT_F64: return ((double *)t->data)[i];
  default: return (double)((long long *)t->data)[i];
  }
}

/* Whether a tensor is in a weight file: parameters and buffers. */
static int saved(const RtTensor *t) {
  return t->kind != RT_GRAD && t->kind != RT_STATE && t->kind != RT_SEED;
}

/* Counts the elements of a's parameters and buffers that are not
   bitwise equal to b's. */
static long bit_diffs(const RtNet *a, const RtNet *b) {
  long bad = 0;
  for (int k = 0; k < a->ntensors; k++) {
    const RtTensor *x = &a->tensors[k], *y = &b->tensors[k];
    int size = x->dtype == RT_F32 ? 4 : 8;
    for (long i = 0; saved(x) && i < rt_numel(x); i++)
      bad += memcmp((char *)x->data + i * size, (char *)y->data + i * size, size) != 0;
  }
  return bad;
}

/* Element i of t (row-major) as PyTorch indexes it: "15,0,2,1". */
static const char *index_of(const RtTensor *t, long i) {
  static char s[64];
  int n = 0;
  long stride = rt_numel(t);
  for (int d = 0; d < t->ndim; d++) {
    stride /= t->shape[d];
    n += snprintf(s + n, sizeof s - n, "%s%ld", d ? "," : "", i / stride);
    i %= stride;
  }
  return s;
}

/* Compares every parameter and buffer of a with PyTorch's in b. */
static void compare_params(Case *c, const RtNet *a, const RtNet *b) {
  for (int k = 0; k < a->ntensors; k++) {
    const RtTensor *x = &a->tensors[k], *y = &b->tensors[k];
    for (long i = 0; saved(x) && i < rt_numel(x); i++)
      note(c, &c->param, at(x, i), at(y, i), "%s[%s]", x->name, index_of(x, i));
  }
}

/* Loads the case's weight file (PyTorch's init or final, or "mlpc": the
   one A saved) into net; -1 and c->why if it does not fit. Loading is
   strict (a name missing or unexpected, a dtype or shape not the model's
   is refused), so mlpc's file and PyTorch's, both loaded into the same
   table, hold the same names, dtypes and shapes. */
static int load(Case *c, const RtNet *net, const char *which) {
  char path[512], err[1024];
  snprintf(path, sizeof path, strcmp(which, "mlpc") ? DIR "/cases/%s.%s.safetensors"
           : "out/reference/%s.%s.safetensors", c->name, which);
  return rt_load_weights(net, path, err, sizeof err) ? stop(c, "%s", err) : 0;
}

/* Mean test loss in eval mode, in batches of the model's size. */
static double test_loss(const RtNet *net, const RtSet *s) {
  double sum = 0;
  long correct = 0;
  for (long start = 0; start < s->n; start += net->batch) {
    int n = (int)(s->n - start < net->batch ? s->n - start : net->batch);
    net->eval(n, s->images + start * net->input, s->labels + start, &sum, &correct);
  }
  return sum / s->n;
}

/* Compiles the model with a backend; NULL and c->why if it cannot. */
static Jit *compile(Case *c, const Ir *ir, int backend) {
  char err[2048];
  Buf src = {0};
  emit_unit(ir, backend, &src);
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src.buf, err, sizeof err)
                                  : jit_gcc(src.buf, "out/cache", err, sizeof err);
  free(src.buf);
  if (!j)
    stop(c, "%s", err);
  return j;
}

/* Whether two doubles are the same, bit for bit. */
static int same_bits(double a, double b) {
  return !memcmp(&a, &b, sizeof a);
}

/* Counts a step whose lr, or cycled momentum, is not PyTorch's bit for bit. */
static void check_hyper(Case *c, const RtNet *a, json_t *jc, size_t s) {
  const RtRecipe *r = a->recipe;
  double lr = json_number_value(json_array_get(json_object_get(jc, "lr"), s));
  double mom = json_number_value(json_array_get(json_object_get(jc, "momentum"), s));
  int cycled = r->schedule == RT_SCHED_ONECYCLE && r->cycle_momentum;
  c->lr_bad += !same_bits(a->hyper[0], lr) || (cycled && !same_bits(a->hyper[1], mom));
}

/* Whether step s ends an epoch: the next one starts the data again. */
static int epoch_end(json_t *steps, size_t s) {
  json_t *next = json_array_get(steps, s + 1);
  return !next || json_integer_value(json_array_get(next, 0)) == 0;
}

/* Trains A on the case's steps, under its schedule, and compares the
   losses (and the lr of every step). */
static int replay(Case *c, const RtNet *a, json_t *jc, const RtSet *tr, const RtSet *te) {
  json_t *steps = json_object_get(jc, "steps"), *losses = json_object_get(jc, "loss");
  RtSched sched;
  char err[512];
  note(c, &c->loss, test_loss(a, te), json_real_value(json_object_get(jc, "test_loss_init")),
       "initial test loss");
  if (rt_sched_start(&sched, a, (long)json_array_size(steps), err, sizeof err))
    return stop(c, "%s", err);
  c->scheduled = json_object_get(jc, "lr") != NULL;
  if (c->scheduled != (a->hyper != NULL))
    return stop(c, "the case's lr of every step and the model's schedule do not go together");
  for (size_t s = 0; s < json_array_size(steps); s++) {
    json_t *st = json_array_get(steps, s);
    long start = (long)json_integer_value(json_array_get(st, 0));
    int n = (int)json_integer_value(json_array_get(st, 1));
    if (start < 0 || n < 1 || n > a->batch || start + n > tr->n)
      return stop(c, "step %zu: batch [%ld, %ld) of a set of %ld, batches of %d at most",
                  s + 1, start, start + n, tr->n, a->batch);
    if (c->scheduled)
      check_hyper(c, a, jc, s);
    double loss = a->train_step(n, tr->images + start * a->input, tr->labels + start);
    note(c, &c->loss, loss, json_real_value(json_array_get(losses, s)), "loss of step %zu",
         s + 1);
    rt_sched_step(&sched);
    if (epoch_end(steps, s))
      rt_sched_epoch(&sched);
  }
  note(c, &c->loss, test_loss(a, te), json_real_value(json_object_get(jc, "test_loss")),
       "final test loss");
  return 0;
}

/* The figures rt_train hands over, epoch by epoch. */
typedef struct {
  int n;
  RtEpoch e[64];
} Seen;

/* on_epoch: keeps the epoch's figures. */
static void collect(void *ctx, const RtEpoch *e) {
  Seen *s = ctx;
  if (s->n < 64)
    s->e[s->n++] = *e;
}

/* Compares one epoch's figures with PyTorch's (f). */
static void note_epoch(Case *c, const RtEpoch *e, json_t *f) {
  static const char *const keys[] = {"train_loss", "val_loss", "val_acc", "test_loss",
                                     "test_acc"};
  const double got[] = {e->train_loss, e->val_loss, e->val_acc, e->test_loss, e->test_acc};
  for (int k = 0; k < 5; k++)
    note(c, &c->loss, got[k], json_number_value(json_object_get(f, keys[k])),
         "epoch %d's %s", e->epoch, keys[k]);
}

/* Runs the training loop on A, in file order, and compares every epoch's
   figures and the epoch early stopping keeps with PyTorch's. */
static int run_loop(Case *c, const RtNet *a, const Model *m, json_t *jc, const RtSet *te) {
  json_t *figs = json_object_get(jc, "epochs_figures");
  char dir[256];
  Seen s = {0};
  snprintf(dir, sizeof dir, DIR "/data/%s", json_string_value(json_object_get(jc, "data")));
  RtOptions o = {.epochs = m->epochs, .seed = m->seed, .data = dir, .on_epoch = collect,
                 .ctx = &s};
  note(c, &c->loss, test_loss(a, te), json_real_value(json_object_get(jc, "test_loss_init")),
       "initial test loss");
  if (rt_train(a, &o))
    return stop(c, "the training loop failed (its message above)");
  c->epochs = s.n;
  c->best = s.n ? s.e[s.n - 1].best_epoch : 0;
  c->loop_bad = s.n != (int)json_array_size(figs) ||
                c->best != (int)json_integer_value(json_object_get(jc, "best_epoch"));
  for (int e = 0; e < s.n && e < (int)json_array_size(figs); e++)
    note_epoch(c, &s.e[e], json_array_get(figs, e));
  note(c, &c->loss, test_loss(a, te), json_real_value(json_object_get(jc, "test_loss")),
       "final test loss");
  return 0;
}

/* Loads the case's data set, both halves (4-d IDX files for images of
   several channels); -1 and c->why if it cannot. */
static int load_data(Case *c, json_t *jc, int classes, RtSet *tr, RtSet *te) {
  char dir[256], err[1024];
  snprintf(dir, sizeof dir, DIR "/data/%s", json_string_value(json_object_get(jc, "data")));
  memset(te, 0, sizeof *te);
  if (rt_load_set(dir, "train", classes, tr, err, sizeof err))
    return stop(c, "%s", err);
  if (rt_load_set(dir, "t10k", classes, te, err, sizeof err)) {
    rt_free_set(tr);
    return stop(c, "%s", err);
  }
  return 0;
}

/* Saves A's weights to out/reference/NAME.mlpc.safetensors. */
static int save(Case *c, const RtNet *a) {
  char path[512], err[1024];
  snprintf(path, sizeof path, "out/reference/%s.mlpc.safetensors", c->name);
  mkdir("out", 0777);
  mkdir("out/reference", 0777);
  return rt_save_weights(a, path, err, sizeof err) ? stop(c, "%s", err) : 0;
}

/* Steps 1 to 3 on the compiled copies a and b of the model m. */
static int train_and_compare(Case *c, const Model *m, json_t *jc, const RtNet *a,
                             const RtNet *b) {
  rt_init(a, m->seed);
  if (load(c, b, "init"))
    return -1;
  c->init_bad = bit_diffs(a, b);
  RtSet tr, te;
  if (load(c, a, "init") || /* train from PyTorch's weights regardless */
      load_data(c, jc, m->output, &tr, &te))
    return -1;
  int r = json_object_get(jc, "epochs_figures") ? run_loop(c, a, m, jc, &te)
                                                 : replay(c, a, jc, &tr, &te);
  rt_free_set(&tr);
  rt_free_set(&te);
  if (r || save(c, a) || load(c, b, "mlpc") || load(c, b, "final"))
    return -1;
  compare_params(c, a, b);
  return 0;
}

/* Runs one case; its figures end up in c, or why it could not run. */
static int run_case(Case *c, json_t *jc, int backend) {
  static Model m;
  static Ir ir;
  char err[1024];
  char *text = json_dumps(json_object_get(jc, "model"), JSON_COMPACT);
  int bad = fe_load_string(text, DIR "/cases.json", &m, err, sizeof err);
  free(text);
  if (bad)
    return stop(c, "%s", err);
  if (m.rng != RT_RNG_TORCH || (m.dtype == DT_F64) != c->f64)
    return stop(c, "the model's \"rng\" is not \"torch\", or its dtype not the case's");
  ir_lower(&m, &ir);
  Jit *ja = compile(c, &ir, backend), *jb = ja ? compile(c, &ir, BACKEND_TCC) : NULL;
  int r = jb ? train_and_compare(c, &m, jc, jit_net(ja), jit_net(jb)) : -1;
  jit_free(ja);
  jit_free(jb);
  return r;
}

/* Prints one case's line; returns whether it passed. */
static int report(Case *c, int backend) {
  if (c->why[0]) {
    printf("%-30s %s %s  FAIL: %s\n", c->name, c->f64 ? "f64" : "f32", backend_names[backend],
           c->why);
    return 0;
  }
  int ok = c->init_bad == 0 && c->lr_bad == 0 && !c->loop_bad && c->loss.err <= c->rel &&
           c->param.err <= c->rel;
  printf("%-30s %s %s  init %s%s  loss err %.1e (%s)  param err %.1e (%s)  "
         "[PyTorch's own spread %.1e]%s\n", c->name, c->f64 ? "f64" : "f32",
         backend_names[backend], c->init_bad ? "DIFFERS" : "bitwise",
         !c->scheduled ? "" : c->lr_bad ? "  lr DIFFERS" : "  lr bitwise", c->loss.err,
         c->loss.where, c->param.err, c->param.where, c->spread, ok ? "" : "  FAIL");
  if (c->init_bad)
    printf("  %ld initial-weight elements differ from PyTorch's\n", c->init_bad);
  if (c->lr_bad)
    printf("  the lr or momentum of %ld steps differs from PyTorch's\n", c->lr_bad);
  if (c->epochs)
    printf("  the loop: %d epochs; early stopping keeps epoch %d (0: none), %s\n", c->epochs,
           c->best, c->loop_bad ? "NOT as PyTorch" : "as PyTorch");
  return ok;
}

/* A case of cases.json before it runs: its name, dtype and bounds. */
static Case case_of(json_t *jc) {
  const char *dtype = json_string_value(json_object_get(json_object_get(jc, "model"), "dtype"));
  Case c = {.name = json_string_value(json_object_get(jc, "name")),
            .spread = json_real_value(json_object_get(jc, "torch_spread")),
            .f64 = dtype && !strcmp(dtype, "float64")};
  c.rel = c.f64 ? 1e-10 : 1e-4;
  c.floor = c.f64 ? 1e-12 : 1e-6;
  return c;
}

/* Every case in cases.json; the gcc backend for every third, tcc else. */
static void test_reference(void **state) {
  (void)state;
  json_error_t je;
  json_t *root = json_load_file(DIR "/cases.json", 0, &je);
  if (!root)
    fail_msg(DIR "/cases.json:%d: %s", je.line, je.text);
  json_t *cases = json_object_get(root, "cases");
  int failed = 0, ran = 0, n = (int)json_array_size(cases);
  double worst32 = 0, worst64 = 0;
  printf("reference: %d cases against PyTorch %s\n", n,
         json_string_value(json_object_get(root, "torch")));
  for (int i = 0; i < n; i++) {
    if (!util_mine(i))
      continue;
    ran++;
    json_t *jc = json_array_get(cases, i);
    Case c = case_of(jc);
    int backend = i % 3 == 0 ? BACKEND_GCC : BACKEND_TCC;
    run_case(&c, jc, backend);
    failed += !report(&c, backend);
    double e = c.why[0] ? 0 : fmax(c.loss.err, c.param.err);
    if (c.f64)
      worst64 = fmax(worst64, e);
    else
      worst32 = fmax(worst32, e);
  }
  printf("reference: %d of %d cases failed; largest error f32 %.2e (bound 1e-4), "
         "f64 %.2e (bound 1e-10)\n", failed, ran, worst32, worst64);
  json_decref(root);
  assert_true(ran > 0);
  assert_int_equal(failed, 0);
}

/* Where an error is reported: PyTorch's index of a 4-d, 2-d and 1-d
   tensor's element. */
static void test_index_of(void **state) {
  (void)state;
  RtTensor w = {.name = "0.weight", .ndim = 4, .shape = {2, 3, 4, 5}};
  assert_string_equal(index_of(&w, 0), "0,0,0,0");
  assert_string_equal(index_of(&w, 27), "0,1,1,2");
  assert_string_equal(index_of(&w, 119), "1,2,3,4");
  RtTensor fc = {.name = "fc1.weight", .ndim = 2, .shape = {3, 7}, .transposed = 1};
  assert_string_equal(index_of(&fc, 15), "2,1");
  RtTensor b = {.name = "fc1.bias", .ndim = 1, .shape = {7}};
  assert_string_equal(index_of(&b, 6), "6");
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_index_of),
    cmocka_unit_test(test_reference),
  };
  return util_run_tests(tests, NULL, NULL, argc, argv);
}
