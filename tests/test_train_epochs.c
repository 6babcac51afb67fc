/*
 * test_train_epochs.c — rt_train's per-epoch callback (RtOptions.on_epoch):
 * that it hands over exactly the figures the printed JSON lines show, one
 * call per epoch, nothing on stdout; and that a diverging run ends with
 * one call saying at which step, also when the value that is not finite
 * hides from the loss; and that a run without a training step has no
 * train loss, in every form.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

enum { EPOCHS = 3, MAXE = 8 };

typedef struct {
  int n;
  RtEpoch e[MAXE];
} Seen;

/* Collects the callback's epochs. */
static void collect(void *ctx, const RtEpoch *e) {
  Seen *s = ctx;
  assert_true(s->n < MAXE);
  s->e[s->n++] = *e;
}

/* A small model for data/mnist, compiled with tcc; with BatchNorm when
   norm. */
static Jit *small_model_norm(double lr, int act, int norm, Model *m, Ir *ir) {
  char err[1024];
  fe_defaults(m);
  m->hidden[0] = 16;
  m->norm.type = norm;
  m->act.type = act;
  m->init = RT_INIT_NORMAL;
  m->opt.lr = lr;
  ir_lower(m, ir);
  Buf b = {0};
  emit_unit(ir, BACKEND_TCC, &b);
  Jit *j = jit_tcc(b.buf, err, sizeof err);
  free(b.buf);
  if (!j)
    fail_msg("%s", err);
  return j;
}

/* A small model for data/mnist, compiled with tcc. */
static Jit *small_model(double lr, int act, Model *m, Ir *ir) {
  return small_model_norm(lr, act, NORM_NONE, m, ir);
}

/* Runs rt_train with stdout sent to a file; returns the status. */
static int train_to(const RtNet *net, RtOptions *o, const char *path) {
  fflush(stdout);
  int saved = dup(1);
  assert_non_null(freopen(path, "w", stdout));
  rt_init(net, o->seed);
  int status = rt_train(net, o);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  return status;
}

/* The callback sees the printed figures, bit for bit, and stdout stays empty. */
static void test_same_as_printed(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  Jit *j = small_model(0.01, ACT_TANH, &m, &ir);
  char dir[4096], tmp[] = "/tmp/mlpc_epochsXXXXXX", path[64];
  assert_non_null(mkdtemp(tmp));
  snprintf(path, sizeof path, "%s/out", tmp);
  RtOptions o = {.epochs = EPOCHS, .seed = 7, .max_batches = 20, .shuffle = 1, .json = 1,
                 .data = rt_data_dir("mnist", dir, sizeof dir)};
  assert_int_equal(train_to(jit_net(j), &o, path), 0);
  FILE *f = fopen(path, "r");
  char line[512];
  double tl[EPOCHS], vl[EPOCHS], acc[EPOCHS];
  for (int e = 0; e < EPOCHS; e++) {
    int ep;
    assert_non_null(fgets(line, sizeof line, f));
    assert_int_equal(sscanf(line, "{\"epoch\": %d, \"train_loss\": %lf, \"test_loss\": %lf, "
                            "\"test_acc\": %lf", &ep, &tl[e], &vl[e], &acc[e]), 4);
    assert_int_equal(ep, e + 1);
  }
  fclose(f);
  Seen s = {0};
  o.json = 0, o.on_epoch = collect, o.ctx = &s;
  assert_int_equal(train_to(jit_net(j), &o, path), 0);
  assert_int_equal(s.n, EPOCHS);
  for (int e = 0; e < EPOCHS; e++) {
    assert_int_equal(s.e[e].epoch, e + 1);
    assert_true(s.e[e].train_loss == tl[e] && s.e[e].test_loss == vl[e]);
    assert_true(s.e[e].test_acc == acc[e]);
    assert_int_equal(s.e[e].diverged_step, 0);
  }
  f = fopen(path, "r");
  assert_int_equal(fgetc(f), EOF);
  fclose(f);
  remove(path), rmdir(tmp);
  jit_free(j);
}

/* A diverging run ends with one call naming the step, figures NaN. */
static void test_divergence(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  Jit *j = small_model(1e30, ACT_RELU, &m, &ir);
  char dir[4096];
  Seen s = {0};
  RtOptions o = {.epochs = EPOCHS, .seed = 7, .max_batches = 20, .shuffle = 1,
                 .data = rt_data_dir("mnist", dir, sizeof dir), .on_epoch = collect, .ctx = &s};
  rt_init(jit_net(j), 7);
  assert_int_equal(rt_train(jit_net(j), &o), 1);
  assert_true(s.n >= 1);
  const RtEpoch *last = &s.e[s.n - 1];
  assert_true(last->diverged_step >= 1 && last->diverged_step <= 20);
  assert_true(isnan(last->train_loss) && isnan(last->test_loss) && isnan(last->test_acc));
  for (int e = 0; e < s.n - 1; e++)
    assert_int_equal(s.e[e].diverged_step, 0);
  jit_free(j);
}

/* A value that is not finite where the loss cannot show it (a weight of
   pixel 0, which is 0 in every image, so that its products are skipped)
   ends the run after the epoch: one call naming the epoch's last step,
   figures NaN, status 1. */
static void test_hidden_nan(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  Jit *j = small_model(0.01, ACT_RELU, &m, &ir);
  const RtNet *net = jit_net(j);
  char dir[4096], msg[256];
  Seen s = {0};
  RtOptions o = {.epochs = EPOCHS, .seed = 7, .max_batches = 20, .shuffle = 1,
                 .data = rt_data_dir("mnist", dir, sizeof dir), .on_epoch = collect, .ctx = &s};
  rt_init(net, 7);
  const RtTensor *w = &net->tensors[0];
  assert_true(!strcmp(w->name, "fc1.weight") && w->transposed);
  ((float *)w->data)[3] = NAN; /* (3, 0), stored at (0, 3) */
  assert_int_equal(rt_check_finite(net, msg, sizeof msg), -1);
  assert_string_equal(msg, "fc1.weight[2352] is nan (not finite: 1 of its 12544 elements)");
  assert_int_equal(rt_train(net, &o), 1);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.e[0].epoch, 1);
  assert_int_equal(s.e[0].diverged_step, 20);
  assert_true(isnan(s.e[0].train_loss) && isnan(s.e[0].test_loss) && isnan(s.e[0].test_acc));
  jit_free(j);
}

/* A run that takes no step (one training sample under BatchNorm) has no
   train loss: NaN to the callback, n/a in the table, null in JSON; the
   test figures are there, and the run ends well. */
static void test_no_step(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  Jit *j = small_model_norm(0.01, ACT_RELU, NORM_BATCH, &m, &ir);
  char tmp[64], path[96];
  assert_int_equal(util_mkdtemp("nostep", tmp, sizeof tmp), 0);
  assert_int_equal(util_idx_set(tmp, 1, 1, 28), 0);
  snprintf(path, sizeof path, "%s/out", tmp);
  Seen s = {0};
  RtOptions o = {.epochs = 2, .seed = 7, .shuffle = 1, .data = tmp, .on_epoch = collect,
                 .ctx = &s};
  assert_int_equal(train_to(jit_net(j), &o, path), 0);
  assert_int_equal(s.n, 2);
  for (int e = 0; e < 2; e++)
    assert_true(isnan(s.e[e].train_loss) && isfinite(s.e[e].test_loss) &&
                s.e[e].diverged_step == 0);
  o.on_epoch = NULL;
  assert_int_equal(train_to(jit_net(j), &o, path), 0);
  char *out = util_slurp(path, &(size_t){0});
  assert_non_null(strstr(out, "\n    1         n/a  "));
  free(out);
  o.json = 1;
  assert_int_equal(train_to(jit_net(j), &o, path), 0);
  out = util_slurp(path, &(size_t){0});
  assert_non_null(strstr(out, "{\"epoch\": 2, \"train_loss\": null, \"test_loss\": "));
  assert_non_null(strstr(out, "{\"summary\": true, \"diverged\": false, \"epochs\": 2, "
                              "\"final_train_loss\": null, \"final_test_loss\": "));
  free(out);
  util_rmtree(tmp);
  jit_free(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_same_as_printed),
    cmocka_unit_test(test_divergence),
    cmocka_unit_test(test_hidden_nan),
    cmocka_unit_test(test_no_step),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
