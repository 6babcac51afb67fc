/*
 * test_recipes.c — the training recipes in the training loop
 * (docs/model-format.md, "The training recipe"); tests/reference checks
 * their numbers against PyTorch step for step, this file what the loop
 * does with them:
 *
 *   schedule_in_loop   rt_train steps the schedule after each epoch: the
 *                      lr the code reads after epoch e is StepLR's
 *   schedule_errors    a run that does not fit onecycle (its total_steps,
 *                      a phase of no step, a warmup that leaves it no
 *                      step, a run of no step) is refused before
 *                      training, exit 2, with the key and the reason
 *   split              the validation split: each class's quota (largest
 *                      remainders), disjoint sets that keep file order,
 *                      fixed by the seed, another for another seed; a
 *                      fraction's size; too large a split refused
 *   early_stopping     the loop stops once `patience` epochs pass without
 *                      a better validation loss and keeps the best
 *                      epoch's weights: evaluated after the run they give
 *                      its test loss; --json and the table say so
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

/* Compiles model text with tcc into *m, or fails. */
static Jit *compile_text(const char *text, Model *m) {
  static Ir ir;
  char err[2048];
  if (fe_load_string(text, "recipe.json", m, err, sizeof err))
    fail_msg("%s", err);
  ir_lower(m, &ir);
  Buf b = {0};
  emit_unit(&ir, BACKEND_TCC, &b);
  Jit *j = jit_tcc(b.buf, err, sizeof err);
  free(b.buf);
  if (!j)
    fail_msg("%s", err);
  return j;
}

/* What the loop leaves in the code's lr after each epoch. */
typedef struct {
  const RtNet *net;
  int n;
  double lr[8];
} Lrs;

/* on_epoch: keeps the lr the next epoch will use. */
static void keep_lr(void *ctx, const RtEpoch *e) {
  Lrs *l = ctx;
  (void)e;
  if (l->n < 8)
    l->lr[l->n++] = l->net->hyper[0];
}

/* StepLR(step_size 2, gamma 0.5) from 0.1, stepped once an epoch. */
static void test_schedule_in_loop(void **state) {
  (void)state;
  static Model m;
  char dir[4096];
  Jit *j = compile_text("{\"hidden\": [8], \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1}, "
                        "\"schedule\": {\"type\": \"step\", \"step_size\": 2, \"gamma\": 0.5}}",
                        &m);
  Lrs l = {.net = jit_net(j)};
  RtOptions o = {.epochs = 5, .seed = 1, .max_batches = 3, .shuffle = 1,
                 .data = rt_data_dir("mnist", dir, sizeof dir), .on_epoch = keep_lr, .ctx = &l};
  rt_init(l.net, 1);
  assert_int_equal(rt_train(l.net, &o), 0);
  const double want[5] = {0.1, 0.1 * 0.5, 0.1 * 0.5, 0.1 * 0.5 * 0.5, 0.1 * 0.5 * 0.5};
  assert_int_equal(l.n, 5);
  for (int e = 0; e < 5; e++)
    assert_true(l.lr[e] == want[e]);
  jit_free(j);
}

/* Runs mlpc --run on a model of text, with flag (or NULL); the exit
   status, stdout in TMP/stdout and stderr in err. */
static int run_flag(const char *tmp, const char *text, const char *flag, char **err) {
  char model[160], outf[160], errf[160];
  snprintf(model, sizeof model, "%s/model.json", tmp);
  snprintf(outf, sizeof outf, "%s/stdout", tmp);
  snprintf(errf, sizeof errf, "%s/stderr", tmp);
  assert_int_equal(util_write(model, text, strlen(text)), 0);
  const char *argv[] = {MLPC_BIN, model, "--run", "--backend", "tcc", flag, NULL};
  int status = util_run(argv, outf, errf);
  *err = util_slurp(errf, &(size_t){0});
  return status;
}

/* run_flag without a flag. */
static int run_model(const char *tmp, const char *text, char **err) {
  return run_flag(tmp, text, NULL, err);
}

/* What the last run printed on stdout. */
static char *printed(const char *tmp) {
  char outf[160];
  snprintf(outf, sizeof outf, "%s/stdout", tmp);
  return util_slurp(outf, &(size_t){0});
}

/* Onecycle whose run does not fit: refused before training, exit 2. */
static void test_schedule_errors(void **state) {
  (void)state;
  static const struct {
    const char *sched, *said;
  } cases[] = {
    {"\"max_lr\": 0.1, \"total_steps\": 10",
     "mlpc: error: schedule.total_steps: onecycle has 10 steps, and the run gives it 12; raise "
     "total_steps, or leave it out (it is then the run's steps)\n"},
    {"\"max_lr\": 0.1, \"total_steps\": 20, \"pct_start\": 0.05",
     "mlpc: error: schedule.pct_start: pct_start x total_steps is 1: a phase of OneCycleLR "
     "would take no step, and it divides by zero (PyTorch fails too); change pct_start or "
     "total_steps\n"},
    {"\"max_lr\": 0.1, \"warmup\": 12",
     "mlpc: error: schedule.warmup: the warmup of 12 steps leaves none of the run's 12 steps "
     "to onecycle\n"},
  };
  char tmp[128], text[512], *err;
  assert_int_equal(util_mkdtemp("recipes", tmp, sizeof tmp), 0);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(text, sizeof text, "{\"hidden\": [8], \"epochs\": 3, \"max_batches\": 4, "
             "\"schedule\": {\"type\": \"onecycle\", %s}}", cases[i].sched);
    assert_int_equal(run_model(tmp, text, &err), 2);
    assert_non_null(strstr(err, cases[i].said));
    free(err);
  }
  snprintf(text, sizeof text, "{\"hidden\": [8], \"epochs\": 3, \"max_batches\": 4, "
           "\"schedule\": {\"type\": \"onecycle\", \"max_lr\": 0.1, \"total_steps\": 12}}");
  assert_int_equal(run_model(tmp, text, &err), 0); /* the run's 12 steps fit 12 */
  free(err);
  /* one training sample, skipped under BatchNorm: no step to cycle over */
  assert_int_equal(run_model(tmp, "{\"hidden\": [8], \"norm\": \"batchnorm\", \"validation\": "
                                  "7999, \"schedule\": {\"type\": \"onecycle\", \"max_lr\": 0.1}}",
                             &err), 2);
  assert_non_null(strstr(err, "mlpc: error: schedule: onecycle cycles over the run's training "
                              "steps, and it takes none (its one training sample is skipped "
                              "under BatchNorm)\n"));
  free(err);
  util_rmtree(tmp);
}

/* A set of n samples of 4 bytes (pixels), sample i holding i, labels from
   lab. */
static RtSet make_set(long n, int (*lab)(long)) {
  RtSet s = {.n = n, .rows = 2, .cols = 2, .dtype = RT_U8};
  s.images = malloc((size_t)n * 4);
  s.labels = malloc((size_t)n);
  for (long i = 0; i < n; i++) {
    memcpy(s.images + i * 4, &(int32_t){(int32_t)i}, 4);
    s.labels[i] = (unsigned char)lab(i);
  }
  return s;
}

/* 50 samples of class 0, 30 of class 1, 20 of class 2, interleaved. */
static int three_classes(long i) {
  return i % 10 < 5 ? 0 : i % 10 < 8 ? 1 : 2;
}

/* The sample number held in image i of s. */
static int32_t sample_of(const RtSet *s, long i) {
  int32_t v;
  memcpy(&v, s->images + i * 4, 4);
  return v;
}

/* Checks a split of all into t and v: every sample once, each set in file
   order, labels following their images; counts v's samples of class c. */
static void check_split(const RtSet *all, const RtSet *t, const RtSet *v, long count[3]) {
  char seen[100] = {0};
  assert_int_equal(t->n + v->n, all->n);
  for (int k = 0; k < 2; k++) {
    const RtSet *s = k ? v : t;
    for (long i = 0; i < s->n; i++) {
      int32_t x = sample_of(s, i);
      assert_true(x >= 0 && x < all->n && !seen[x]++);
      assert_true(i == 0 || x > sample_of(s, i - 1));
      assert_int_equal(s->labels[i], all->labels[x]);
      count[s->labels[i]] += k;
    }
  }
}

/* Stratified, fixed by the seed, disjoint; sizes; refusal. */
static void test_split(void **state) {
  (void)state;
  RtSet all = make_set(100, three_classes), t, v, t2, v2;
  char err[256];
  long count[3] = {0};
  assert_int_equal(rt_split(&all, 4, 3, 7, 5, &t, &v, err, sizeof err), 0);
  check_split(&all, &t, &v, count);
  assert_true(count[0] == 4 && count[1] == 2 && count[2] == 1); /* 3.5, 2.1, 1.4 */
  assert_int_equal(rt_split(&all, 4, 3, 7, 5, &t2, &v2, err, sizeof err), 0);
  assert_memory_equal(v.images, v2.images, 7 * 4); /* the same seed, the same split */
  rt_free_set(&t2), rt_free_set(&v2);
  assert_int_equal(rt_split(&all, 4, 3, 7, 6, &t2, &v2, err, sizeof err), 0);
  assert_memory_not_equal(v.images, v2.images, 7 * 4); /* another seed, another */
  rt_free_set(&t2), rt_free_set(&v2), rt_free_set(&t), rt_free_set(&v);
  RtRecipe r = {.val_fraction = 0.15};
  assert_int_equal(rt_val_size(&r, 101), 16); /* ⌈15.15⌉ */
  assert_int_equal(rt_val_size(NULL, 101), 0);
  assert_int_equal(rt_split(&all, 4, 3, 100, 5, &t, &v, err, sizeof err), -1);
  assert_string_equal(err, "validation: holding out 100 of the 100 training samples leaves "
                           "none to train on; hold out fewer");
  assert_true(!t.images && !v.images);
  rt_free_set(&all);
}

/* The test loss of net's weights now, over the whole test set. */
static double test_loss_now(const RtNet *net, const char *data) {
  RtSet tr, te;
  char err[512];
  double sum = 0;
  long correct = 0;
  assert_int_equal(
    rt_load_data(data, net->input, net->shape, net->output, net->dtype, &tr, &te, err,
                 sizeof err), 0);
  for (long start = 0; start < te.n; start += net->batch) {
    int n = (int)(te.n - start < net->batch ? te.n - start : net->batch);
    net->eval(n, te.images + start * net->input, te.labels + start, &sum, &correct);
  }
  double loss = sum / te.n;
  rt_free_set(&tr), rt_free_set(&te);
  return loss;
}

/* The figures of each epoch. */
typedef struct {
  int n;
  RtEpoch e[32];
} Seen;

/* on_epoch: keeps them. */
static void collect(void *ctx, const RtEpoch *e) {
  Seen *s = ctx;
  assert_true(s->n < 32);
  s->e[s->n++] = *e;
}

/* Stops after `patience` epochs without a better validation loss, and
   keeps the best epoch's weights. */
static void test_early_stopping(void **state) {
  (void)state;
  static Model m;
  char dir[4096];
  Jit *j = compile_text("{\"hidden\": [8], \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.5}, "
                        "\"validation\": 0.2, \"early_stopping\": {\"patience\": 2}}", &m);
  const RtNet *net = jit_net(j);
  const char *data = rt_data_dir("mnist", dir, sizeof dir);
  Seen s = {0};
  RtOptions o = {.epochs = 30, .seed = 3, .shuffle = 1, .data = data, .on_epoch = collect,
                 .ctx = &s};
  rt_init(net, 3);
  assert_int_equal(rt_train(net, &o), 0);
  assert_true(s.n >= 3 && s.n < 30); /* it stopped */
  int best = 1;
  for (int e = 0; e < s.n; e++) {
    assert_true(isfinite(s.e[e].val_loss) && s.e[e].val_acc > 0);
    best = s.e[e].val_loss < s.e[best - 1].val_loss ? e + 1 : best;
    assert_int_equal(s.e[e].best_epoch, best);
  }
  assert_int_equal(s.n, best + 2);
  assert_true(test_loss_now(net, data) == s.e[best - 1].test_loss);
  assert_true(test_loss_now(net, data) != s.e[s.n - 1].test_loss);
  jit_free(j);
}

/* --json and the table say what early stopping kept; a split too large
   for the data is refused, exit 2. */
static void test_early_stopping_output(void **state) {
  (void)state;
  char tmp[128], *err;
  const char *model = "{\"hidden\": [8], \"optimizer\": {\"type\": \"sgd\", \"lr\": 0.5}, "
                      "\"validation\": 0.2, \"early_stopping\": {\"patience\": 2}, \"seed\": 3, "
                      "\"epochs\": 30}";
  assert_int_equal(util_mkdtemp("recipes", tmp, sizeof tmp), 0);
  assert_int_equal(run_model(tmp, model, &err), 0);
  free(err);
  char *text = printed(tmp);
  assert_non_null(strstr(text, "data data/mnist: 6400 train, 1600 validation (held out of the "
                               "training set, by class, seed 3), 2000 test\n"
                               "epoch  train_loss    val_loss   val_acc   test_loss  test_acc"));
  assert_non_null(strstr(text, "\nearly stopping: stopped after 2 epochs without a better one; "
                               "the least validation loss, "));
  free(text);
  assert_int_equal(run_flag(tmp, model, "--json", &err), 0);
  free(err);
  text = printed(tmp);
  assert_non_null(strstr(text, "\"val_loss\": "));
  assert_non_null(strstr(text, "\"stopped_early\": true, \"final_train_loss\""));
  assert_non_null(strstr(text, "\"best_epoch\": "));
  free(text);
  assert_int_equal(run_model(tmp, "{\"hidden\": [8], \"optimizer\": {\"type\": \"sgd\", \"lr\": "
                                  "0.5}, \"validation\": 0.2, \"early_stopping\": {\"patience\": "
                                  "1}, \"seed\": 3, \"epochs\": 30, \"max_batches\": 20}", &err), 0);
  free(err);
  text = printed(tmp);
  assert_non_null(strstr(text, "\nearly stopping: stopped after 1 epoch without a better one; "));
  free(text);
  assert_int_equal(run_model(tmp, "{\"hidden\": [8], \"validation\": 8000}", &err), 2);
  assert_non_null(strstr(err, "mlpc: error: validation: holding out 8000 of the 8000 training "
                              "samples leaves none to train on; hold out fewer\n"));
  free(err);
  util_rmtree(tmp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_schedule_in_loop),
    cmocka_unit_test(test_schedule_errors),
    cmocka_unit_test(test_split),
    cmocka_unit_test(test_early_stopping),
    cmocka_unit_test(test_early_stopping_output),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
