/*
 * test_layout.c — linear weights are stored transposed (RtTensor's
 * `transposed`, rt/kernels.h), and nothing outside the model may
 * notice:
 *
 *   files      rt_save_weights writes fc1.weight (out, in) in PyTorch's
 *              row-major order, and rt_load_weights reads it back into
 *              the transposed storage
 *   forward    the logits are x·Wᵀ + b for W read in that order: the
 *              loss of eval equals a naive double computation
 *   init       rt_init draws W's elements in row-major order, as before
 *              the storage changed (the same seed, the same weights)
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

enum { IN = 7, OUT = 5, BATCH = 3 };

static Model model;
static Ir ir;
static char path[64];

/* A model IN-OUT (no hidden layer), float64, kaiming_normal, compiled
   with tcc. */
static Jit *compile(void) {
  fe_defaults(&model);
  snprintf(model.name, sizeof model.name, "layout");
  model.input = IN;
  model.output = OUT;
  model.nhidden = 0;
  model.norm.type = NORM_NONE;
  model.batch_size = BATCH;
  model.dtype = DT_F64;
  model.init = RT_INIT_KAIMING;
  ir_lower(&model, &ir);
  Buf src = {0};
  char err[2048];
  emit_unit(&ir, BACKEND_TCC, &src);
  Jit *j = jit_tcc(src.buf, err, sizeof err);
  free(src.buf);
  if (!j)
    fail_msg("%s", err);
  return j;
}

/* Element (o, i) of W, wherever the storage keeps it. */
static double *w_at(const RtTensor *w, int o, int i) {
  assert_true(w->transposed);
  return (double *)w->data + (long)i * w->shape[0] + o;
}

/* The file's bytes; *len gets their number. */
static unsigned char *slurp(size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static unsigned char buf[1 << 16];
  *len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return buf;
}

/* fc1.weight (o, i) = 1000·o + i goes to the file in row-major order
   and comes back to the same place. */
static void test_files(void **state) {
  (void)state;
  Jit *j = compile();
  const RtNet *net = jit_net(j);
  const RtTensor *w = util_tensor(net, "fc1.weight");
  char err[512];
  assert_int_equal(w->shape[0], OUT);
  assert_int_equal(w->shape[1], IN);
  rt_init(net, 1);
  for (int o = 0; o < OUT; o++)
    for (int i = 0; i < IN; i++)
      *w_at(w, o, i) = 1000.0 * o + i;
  if (rt_save_weights(net, path, err, sizeof err))
    fail_msg("%s", err);
  size_t len;
  unsigned char *buf = slurp(&len);
  unsigned long long hlen = 0;
  for (int k = 7; k >= 0; k--)
    hlen = hlen << 8 | buf[k];
  const char *h = (const char *)buf + 8, *at = strstr(h, "\"fc1.weight\"");
  assert_non_null(at);
  assert_non_null(strstr(at, "\"shape\":[5,7]"));
  long begin = strtol(strstr(at, "\"data_offsets\":[") + 16, NULL, 10);
  for (int k = 0; k < OUT * IN; k++) {
    double v;
    memcpy(&v, buf + 8 + hlen + begin + 8 * k, 8);
    assert_true(v == 1000.0 * (k / IN) + k % IN);
  }
  memset(w->data, 0, sizeof(double) * OUT * IN);
  if (rt_load_weights(net, path, err, sizeof err))
    fail_msg("%s", err);
  for (int o = 0; o < OUT; o++)
    for (int i = 0; i < IN; i++)
      assert_true(*w_at(w, o, i) == 1000.0 * o + i);
  jit_free(j);
}

/* The loss eval reports is that of logits x·Wᵀ + b, computed naively. */
static void test_forward(void **state) {
  (void)state;
  Jit *j = compile();
  const RtNet *net = jit_net(j);
  const RtTensor *w = util_tensor(net, "fc1.weight"), *b = util_tensor(net, "fc1.bias");
  rt_init(net, 3);
  double *bias = b->data;
  for (int o = 0; o < OUT; o++)
    bias[o] = 0.1 * o;
  unsigned char x[BATCH * IN], y[BATCH] = {0, 3, 4};
  for (int k = 0; k < BATCH * IN; k++)
    x[k] = (unsigned char)(k % 3 ? k * 29 : 0);
  double want = 0;
  for (int r = 0; r < BATCH; r++) {
    double z[OUT], m = -INFINITY, s = 0;
    for (int o = 0; o < OUT; o++) {
      z[o] = bias[o];
      for (int i = 0; i < IN; i++)
        z[o] += x[r * IN + i] / 255.0 * *w_at(w, o, i);
      m = fmax(m, z[o]);
    }
    for (int o = 0; o < OUT; o++)
      s += exp(z[o] - m);
    want += m + log(s) - z[y[r]];
  }
  double got = 0;
  long correct = 0;
  net->eval(BATCH, x, y, &got, &correct);
  assert_true(fabs(got - want) <= 1e-12 * fabs(want));
  jit_free(j);
}

/* With kaiming_normal, W (o, i) is the (o·IN + i)-th normal draw of the
   seed's stream 0, times sqrt(2 / IN): fc1.weight comes first. */
static void test_init(void **state) {
  (void)state;
  Jit *j = compile();
  const RtNet *net = jit_net(j);
  assert_string_equal(net->tensors[0].name, "fc1.weight");
  assert_int_equal(net->init, RT_INIT_KAIMING);
  rt_init(net, 42);
  RtRng rng;
  rt_rng_seed(&rng, 42, 0);
  for (int o = 0; o < OUT; o++)
    for (int i = 0; i < IN; i++)
      assert_true(*w_at(&net->tensors[0], o, i) == rt_rng_normal(&rng) * sqrt(2.0 / IN));
  jit_free(j);
}

int main(void) {
  snprintf(path, sizeof path, "/tmp/mlpc-layout-%ld.safetensors", (long)getpid());
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_files),
    cmocka_unit_test(test_forward),
    cmocka_unit_test(test_init),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  remove(path);
  return rc;
}
