/*
 * test_fma.c — the two arithmetics of the dense kernels (Ir.fma): fma,
 * the default, and strict (--strict). Whichever is chosen, the tcc and
 * gcc backends give the same bits, and the two arithmetics give
 * different bits (so that the choice does something, and strict is not
 * fma by accident).
 *
 * The model is 30-37-10 with BatchNorm and Adam, float32, so that every
 * kernel runs on odd sizes; a few training steps on a fixed batch of
 * bytes, half of them 0, then every tensor is compared.
 *
 * On the command line (build/mlpc, MLPC_BIN): no flag is --fma, --strict
 * is the other, both together are refused, and on a CPU without FMA
 * instructions (pretended with MLPC_TEST_NO_FMA_CPU=1) fma says once
 * that --strict is faster.
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
#include "util.h"

enum { IN = 30, BATCH = 9, STEPS = 4 };

static Model model;
static unsigned char x[BATCH * IN], y[BATCH];
static char cache[64], tmp[64];

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
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src.buf, err, sizeof err)
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
    size_t n = (size_t)rt_numel(t) * (t->dtype == RT_F32 ? 4 : 8);
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

/* ---- the command line ---- */

/* A path in the temporary directory, in one of four rotating buffers. */
static const char *in_tmp(const char *name) {
  static char ring[4][128];
  static int next;
  char *s = ring[next++ % 4];
  snprintf(s, sizeof ring[0], "%s/%s", tmp, name);
  return s;
}

/* Runs a short tcc run of models/bn_relu.json with --json and up to two
   more flags; its exit status, stdout in out.txt and stderr in err.txt. */
static int mlpc(const char *a, const char *b) {
  const char *argv[] = {MLPC_BIN, "models/bn_relu.json", "--run", "--backend", "tcc",
                        "--epochs", "1", "--max-batches", "3", "--json", a, b, NULL};
  return util_run(argv, in_tmp("out.txt"), in_tmp("err.txt"));
}

/* A file of the temporary directory, as text ("" if absent). */
static char *slurp(const char *name) {
  size_t len;
  char *text = util_slurp(in_tmp(name), &len);
  return text ? text : strdup("");
}

/* Drops the "seconds" fields of JSON Lines: all else is bitwise. */
static void drop_seconds(char *s) {
  char *p;
  while ((p = strstr(s, "\"seconds\": ")) || (p = strstr(s, "\"train_seconds\": "))) {
    char *end = p + strcspn(p, ",}");
    memmove(p, end + (*end == ','), strlen(end + (*end == ',')) + 1);
  }
}

/* stdout of a run with up to two flags, the banner's arithmetic checked. */
static char *figures(const char *a, const char *b, const char *arith) {
  char want[64];
  assert_int_equal(mlpc(a, b), 0);
  char *out = slurp("out.txt"), *err = slurp("err.txt");
  snprintf(want, sizeof want, "backend tcc, %s: ", arith);
  if (!strstr(err, want))
    fail_msg("no '%s' in:\n%s", want, err);
  free(err);
  drop_seconds(out);
  return out;
}

/* No flag and --fma are one arithmetic; --strict another. */
static void test_cli_default(void **state) {
  (void)state;
  char *def = figures(NULL, NULL, "fma"), *fma = figures("--fma", NULL, "fma"),
       *strict = figures("--strict", NULL, "strict");
  assert_non_null(strstr(def, "\"final_test_loss\""));
  assert_string_equal(def, fma);
  assert_string_not_equal(def, strict);
  free(def), free(fma), free(strict);
}

/* --fma and --strict together: exit 2, naming both. */
static void test_cli_conflict(void **state) {
  (void)state;
  assert_int_equal(mlpc("--strict", "--fma"), 2);
  char *err = slurp("err.txt");
  assert_string_equal(err, "mlpc: error: --fma and --strict both given: a run has one "
                           "arithmetic (fma, the default, or strict)\n");
  free(err);
}

/* The number of times the no-FMA note is in err.txt. */
static int notes(void) {
  char *err = slurp("err.txt"), *p = err;
  int n = 0;
  while ((p = strstr(p, "this CPU has no FMA instructions")))
    n++, p++;
  free(err);
  return n;
}

/* Without FMA instructions fma notes it once; strict says nothing. */
static void test_cli_no_fma_cpu(void **state) {
  (void)state;
  assert_int_equal(mlpc(NULL, NULL), 0);
  assert_int_equal(notes(), !jit_cpu_fma());
  setenv("MLPC_TEST_NO_FMA_CPU", "1", 1);
  assert_int_equal(mlpc(NULL, NULL), 0);
  assert_int_equal(notes(), 1);
  assert_int_equal(mlpc("--strict", NULL), 0);
  assert_int_equal(notes(), 0);
  unsetenv("MLPC_TEST_NO_FMA_CPU");
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
  if (util_mkdtemp("fma", tmp, sizeof tmp))
    return 1;
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_backends_agree),
    cmocka_unit_test(test_cli_default),
    cmocka_unit_test(test_cli_conflict),
    cmocka_unit_test(test_cli_no_fma_cpu),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  util_rmtree(tmp);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", cache);
  if (system(cmd))
    rc = 1;
  return rc;
}
