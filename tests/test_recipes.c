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
 *                      step) is refused before training, exit 2, with the
 *                      key and the reason
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
  Jit *j = jit_tcc(b.buf, m->dtype, err, sizeof err);
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

/* Runs mlpc on a model of text; the exit status, and stderr in err. */
static int run_model(const char *tmp, const char *text, char **err) {
  char model[128], errf[128];
  snprintf(model, sizeof model, "%s/model.json", tmp);
  snprintf(errf, sizeof errf, "%s/stderr", tmp);
  assert_int_equal(util_write(model, text, strlen(text)), 0);
  const char *argv[] = {MLPC_BIN, model, "--run", "--backend", "tcc", NULL};
  int status = util_run(argv, NULL, errf);
  *err = util_slurp(errf, &(size_t){0});
  return status;
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
  util_rmtree(tmp);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_schedule_in_loop),
    cmocka_unit_test(test_schedule_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
