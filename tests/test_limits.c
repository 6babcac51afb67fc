/*
 * test_limits.c — size limits are checked before anything is allocated.
 *
 *   bytes      emit_static_bytes is exactly the static storage of the
 *              compiled code (the sizes nm reports), for every model
 *   edge       a model just under EMIT_MAX_STATIC passes the check, one
 *              just over is refused
 *   command    mlpc refuses a model whose arrays would not fit, for --run,
 *              --emit and --emit-model alike: exit 2, a message saying how
 *              much it would need, and no file written
 *   file       a model file over 1 MiB, or an endless one (/dev/zero), is
 *              refused after reading 1 MiB + 1 byte
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

static char tmp[64];

/* The summed sizes of the static (bss) symbols of an object file. */
static size_t bss_bytes(const char *obj) {
  const char *argv[] = {"nm", "-S", obj, NULL};
  assert_int_equal(util_run(argv, util_path(tmp, "nm.txt"), NULL), 0);
  size_t len, total = 0;
  char *text = util_slurp(util_path(tmp, "nm.txt"), &len);
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    unsigned long long addr, size;
    char type;
    if (sscanf(line, "%llx %llx %c", &addr, &size, &type) == 3 && (type == 'b' || type == 'B'))
      total += size;
  }
  free(text);
  return total;
}

/* For every model: the bytes counted equal the bytes gcc allocates for
   the unit that inlines its kernels (one that calls mlpc's has a pointer
   for each kernel too, a few hundred bytes, within EMIT_MAX_STATIC's
   margin). */
static void test_bytes(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char *files[UTIL_MAX_FILES], err[1024];
  int n = util_models(files);
  for (int i = 0; i < n; i++) {
    Buf b = {0};
    if (fe_load(files[i], &m, err, sizeof err))
      fail_msg("%s", err);
    ir_lower(&m, &ir);
    emit_unit(&ir, BACKEND_TRAINER, &b);
    assert_int_equal(util_write(util_path(tmp, "u.c"), b.buf, b.len), 0);
    const char *cc[] = {"gcc", "-std=c11", "-O0", "-c", util_path(tmp, "u.c"), "-o",
                        util_path(tmp, "u.o"), NULL};
    assert_int_equal(util_run(cc, NULL, NULL), 0);
    size_t want = bss_bytes(util_path(tmp, "u.o")), got = emit_static_bytes(&ir);
    if (got != want)
      fail_msg("%s: emit_static_bytes says %zu, the object has %zu", files[i], got, want);
    free(b.buf), free(files[i]);
  }
}

/* The bytes of a float32 INPUT-WIDTH-10 model with batch 1. */
static size_t bytes_of(int input, int width, Model *m, Ir *ir) {
  fe_defaults(m);
  m->input = input;
  m->hidden[0] = width;
  m->batch_size = 1;
  ir_lower(m, ir);
  return emit_static_bytes(ir);
}

/* Widths on either side of the limit. */
static void test_edge(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[1024];
  int w = 1;
  while (bytes_of(65536, w * 2, &m, &ir) <= EMIT_MAX_STATIC)
    w *= 2;
  for (int step = w / 2; step; step /= 2)
    if (bytes_of(65536, w + step, &m, &ir) <= EMIT_MAX_STATIC)
      w += step;
  bytes_of(65536, w, &m, &ir);
  assert_int_equal(emit_check_size(&ir, err, sizeof err), 0);
  bytes_of(65536, w + 1, &m, &ir);
  assert_int_equal(emit_check_size(&ir, err, sizeof err), -1);
  assert_non_null(strstr(err, "GiB for its tensors and activations"));
  print_message("  largest 65536-W-10 float32 model: W = %d (%zu bytes)\n", w,
                bytes_of(65536, w, &m, &ir));
}

/* --run, --emit and --emit-model refuse a 12 GiB model. */
static void test_command(void **state) {
  (void)state;
  const char *text = "{\"input\": 65536, \"hidden\": [4000], \"batch_size\": 3800, "
                     "\"dtype\": \"float64\", \"optimizer\": \"adam\", \"norm\": \"batchnorm\"}";
  const char *model = util_path(tmp, "big.json"), *out = util_path(tmp, "out.c"),
             *err = util_path(tmp, "err");
  assert_int_equal(util_write(model, text, strlen(text)), 0);
  const char *actions[][2] = {{"--run", NULL}, {"--emit", out}, {"--emit-model", out}};
  for (int i = 0; i < 3; i++) {
    const char *argv[] = {MLPC_BIN, model, actions[i][0], actions[i][1], NULL};
    assert_int_equal(util_run(argv, NULL, err), 2);
    size_t len;
    char *msg = util_slurp(err, &len), want[256];
    snprintf(want, sizeof want, "mlpc: %s: error: the model's code would need 10.46 GiB", model);
    if (strncmp(msg, want, strlen(want)))
      fail_msg("%s: got %s", actions[i][0], msg);
    free(msg);
    assert_int_not_equal(access(out, F_OK), 0);
  }
}

/* A model file larger than the frontend reads. */
static void test_file(void **state) {
  (void)state;
  static Model m;
  char err[1024];
  size_t n = (1 << 20) + 1;
  char *text = malloc(n);
  memset(text, ' ', n);
  memcpy(text, "{}", 2);
  assert_int_equal(util_write(util_path(tmp, "big.json"), text, n), 0);
  free(text);
  const char *files[] = {util_path(tmp, "big.json"), "/dev/zero"};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(fe_load(files[i], &m, err, sizeof err), -1);
    assert_non_null(strstr(err, "error: too large for a model file (more than 1048576 bytes)"));
  }
}

static int setup(void **state) {
  (void)state;
  return util_mkdtemp("limits", tmp, sizeof tmp);
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bytes),
    cmocka_unit_test(test_edge),
    cmocka_unit_test(test_command),
    cmocka_unit_test(test_file),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
