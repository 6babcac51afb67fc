/*
 * test_fma.c — the two arithmetics of the dense kernels (--fma, Ir.fma):
 * whichever is chosen, the tcc and gcc backends give the same bits, and
 * the two arithmetics give different bits (so that the option does
 * something, and strict is not fma by accident).
 *
 * The model is 30-37-10 with BatchNorm and Adam, float32, so that every
 * kernel runs on odd sizes; a few training steps on a fixed batch of
 * bytes, half of them 0, then every tensor is compared.
 */
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

enum { IN = 30, BATCH = 9, STEPS = 4 };

static Model model;
static unsigned char x[BATCH * IN], y[BATCH];
static char cache[64];

/* The model's tensors after STEPS steps, with the given backend and
   arithmetic; every tensor's bytes in table order, in *len bytes. */
static unsigned char *train(int backend, int fma, size_t *len) {
  static Ir ir;
  Buf src = {0};
  char err[2048];
  ir_lower(&model, &ir);
  ir.fma = fma;
  emit_unit(&ir, backend, &src);
  assert_true((strstr(src.buf, "#define MLPC_FMA") != NULL) == fma);
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src.buf, model.dtype, err, sizeof err)
                                  : jit_gcc(src.buf, cache, err, sizeof err);
  free(src.buf);
  if (!j)
    fail_msg("%s", err);
  const RtNet *net = jit_net(j);
  rt_init(net, 5);
  for (int s = 0; s < STEPS; s++)
    net->train_step(BATCH, x, y);
  unsigned char *out = NULL;
  *len = 0;
  for (int k = 0; k < net->ntensors; k++) {
    const RtTensor *t = &net->tensors[k];
    size_t n = (size_t)t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1) * (t->dtype == RT_F32 ? 4 : 8);
    out = realloc(out, *len + n);
    memcpy(out + *len, t->data, n);
    *len += n;
  }
  jit_free(j);
  return out;
}

/* tcc and gcc agree in each arithmetic; the arithmetics differ. */
static void test_backends_agree(void **state) {
  (void)state;
  size_t n[4];
  unsigned char *tcc_strict = train(BACKEND_TCC, 0, &n[0]);
  unsigned char *gcc_strict = train(BACKEND_GCC, 0, &n[1]);
  unsigned char *tcc_fma = train(BACKEND_TCC, 1, &n[2]);
  unsigned char *gcc_fma = train(BACKEND_GCC, 1, &n[3]);
  assert_true(n[0] == n[1] && n[1] == n[2] && n[2] == n[3]);
  assert_memory_equal(tcc_strict, gcc_strict, n[0]);
  assert_memory_equal(tcc_fma, gcc_fma, n[0]);
  assert_memory_not_equal(tcc_strict, tcc_fma, n[0]);
  free(tcc_strict), free(gcc_strict), free(tcc_fma), free(gcc_fma);
}

int main(void) {
  fe_defaults(&model);
  snprintf(model.name, sizeof model.name, "fma");
  model.input = IN;
  model.nhidden = 1;
  model.hidden[0] = 37;
  model.output = 10;
  model.norm.type = NORM_BATCH;
  model.opt.type = OPT_ADAM;
  model.opt.lr = 0.01;
  model.init = RT_INIT_KAIMING;
  model.batch_size = BATCH;
  model.dtype = DT_F32;
  unsigned s = 777;
  for (int i = 0; i < BATCH * IN; i++) {
    s = s * 1103515245u + 12345u;
    x[i] = (s >> 16) & 1 ? (unsigned char)(s >> 20) : 0;
  }
  for (int r = 0; r < BATCH; r++)
    y[r] = (unsigned char)(r % 10);
  snprintf(cache, sizeof cache, "/tmp/mlpc-fma-%ld", (long)getpid());
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_backends_agree),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", cache);
  if (system(cmd))
    rc = 1;
  return rc;
}
