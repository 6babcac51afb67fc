/*
 * test_frontend.c — the frontend's tests.
 *
 * tests/errors/NAME.json must be refused with exactly the message in
 * tests/errors/NAME.expect; every .json file in tests/valid and in models
 * must load. On a mismatch the expected and actual messages are printed like
 * a diff. To write one expectation on purpose (after checking the new
 * message by eye):
 *
 *   MLPC_REGEN=NAME ./test_frontend     (MLPC_REGEN=all: every case)
 *
 * The rest checks fields of valid models and fe_override's messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../frontend/model.h"
#include "../study/study.h"
#include "util.h"

/* ---- helpers ---- */

/* Formats a path into a static buffer. */
static const char *pathf(const char *fmt, ...) {
  static char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

/* Writes a case's expected message. */
static void write_expect(const char *path, const char *msg) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", msg);
  fclose(f);
  printf("wrote %s\n", path);
}

/* ---- tests/errors ---- */

/* Runs one error case, tests/errors/NAME.json; returns 0 if its message
   is the expected one. */
static int run_error_case(const char *json) {
  char base[256], expect_path[512], err[2048] = "";
  Model m;
  util_stem(json, base, sizeof base);
  snprintf(expect_path, sizeof expect_path, "tests/errors/%s.expect", base);
  if (fe_load(json, &m, err, sizeof err) == 0) {
    printf("%s: loaded, but should have been refused\n", json);
    return 1;
  }
  if (util_regen(base)) {
    write_expect(expect_path, err);
    return 0;
  }
  const char *want = util_text(expect_path);
  if (want && !strcmp(want, err))
    return 0;
  printf("%s:\n- %s\n+ %s\n", json, want ? want : "(no .expect file)", err);
  return 1;
}

/* Every tests/errors case is refused with its exact message. */
static void test_errors(void **state) {
  char *paths[UTIL_MAX_FILES];
  int n = util_list("tests/errors", ".json", paths, 0), bad = 0;
  (void)state;
  assert_true(n >= 40);
  for (int i = 0; i < n; i++)
    bad += run_error_case(paths[i]), free(paths[i]);
  printf("errors: %d cases, %d failed\n", n, bad);
  assert_int_equal(bad, 0);
}

/* Every .expect file has its .json (no stale expectations). */
static void test_no_orphans(void **state) {
  char *paths[UTIL_MAX_FILES];
  int n = util_list("tests/errors", ".expect", paths, 0), bad = 0;
  (void)state;
  assert_true(n >= 40);
  for (int i = 0; i < n; i++) {
    int len = (int)strlen(paths[i]) - 7;
    if (access(pathf("%.*s.json", len, paths[i]), R_OK))
      printf("%s: no .json for it\n", paths[i]), bad++;
    free(paths[i]);
  }
  assert_int_equal(bad, 0);
}

/* ---- tests/valid and models ---- */

/* Loads every .json in dir but the studies (test_study_load.c loads
   those); returns how many failed. */
static int load_all(const char *dir) {
  char *paths[UTIL_MAX_FILES], err[2048];
  int n = util_list(dir, ".json", paths, 0), bad = 0;
  Model m;
  assert_true(n > 0);
  for (int i = 0; i < n; i++) {
    if (!st_is_study(paths[i]) && fe_load(paths[i], &m, err, sizeof err))
      printf("%s\n", err), bad++;
    free(paths[i]);
  }
  printf("%s: %d models, %d failed\n", dir, n, bad);
  return bad;
}

/* Every valid case and every shipped model loads. */
static void test_valid(void **state) {
  (void)state;
  assert_int_equal(load_all("tests/valid"), 0);
  assert_int_equal(load_all("models"), 0);
}

/* Loads a file that must be valid. */
static void load_ok(const char *path, Model *m) {
  char err[2048] = "";
  if (fe_load(path, m, err, sizeof err))
    fail_msg("%s", err);
}

/* An empty object gives the documented defaults, named after the file. */
static void test_defaults(void **state) {
  Model m;
  (void)state;
  load_ok("tests/valid/empty_object.json", &m);
  assert_string_equal(m.name, "empty_object");
  assert_int_equal(m.input, 784);
  assert_int_equal(m.nhidden, 1);
  assert_int_equal(m.hidden[0], 128);
  assert_int_equal(m.output, 10);
  assert_int_equal(m.norm.type, NORM_NONE);
  assert_int_equal(m.act.type, ACT_RELU);
  assert_int_equal(m.init, RT_INIT_TORCH_DEFAULT);
  assert_int_equal(m.rng, RT_RNG_MLPC);
  assert_int_equal(m.opt.type, OPT_SGD);
  assert_true(m.opt.lr == 0.01 && m.opt.momentum == 0 && !m.opt.nesterov);
  assert_int_equal(m.batch_size, 32);
  assert_int_equal(m.epochs, 10);
  assert_int_equal(m.seed, 0);
  assert_string_equal(m.data, "mnist");
  assert_int_equal(m.max_batches, 0);
  assert_int_equal(m.dtype, DT_F32);
  load_ok("tests/valid/rng_torch.json", &m);
  assert_int_equal(m.rng, RT_RNG_TORCH);
}

/* The shipped models hold what docs/model-format.md says. */
static void test_models(void **state) {
  Model m;
  (void)state;
  load_ok("models/bn_relu.json", &m);
  assert_string_equal(m.name, "bn_relu");
  assert_int_equal(m.norm.type, NORM_BATCH);
  assert_true(m.norm.eps == 1e-5 && m.norm.momentum == 0.1 && !m.norm.cumulative);
  assert_int_equal(m.init, RT_INIT_KAIMING);
  assert_int_equal(m.seed, 42);
  load_ok("models/seed_base.json", &m);
  assert_int_equal(m.init, RT_INIT_NORMAL);
  assert_int_equal(m.act.type, ACT_TANH);
  assert_int_equal(m.norm.type, NORM_NONE);
  load_ok("models/ln_silu_adam.json", &m);
  assert_int_equal(m.norm.type, NORM_LAYER);
  assert_int_equal(m.act.type, ACT_SILU);
  assert_int_equal(m.opt.type, OPT_ADAM);
  assert_true(m.opt.lr == 0.001 && m.opt.beta1 == 0.9 && m.opt.beta2 == 0.999);
}

/* Every key given explicitly, in object form. */
static void test_full(void **state) {
  Model m;
  (void)state;
  load_ok("tests/valid/full_sgd.json", &m);
  assert_string_equal(m.name, "full-sgd.v2");
  assert_int_equal(m.input, 100);
  assert_int_equal(m.nhidden, 3);
  assert_int_equal(m.hidden[2], 16);
  assert_int_equal(m.output, 3);
  assert_true(m.norm.type == NORM_BATCH && m.norm.eps == 1e-3 && m.norm.cumulative);
  assert_true(m.act.type == ACT_LEAKY && m.act.param == 0.2);
  assert_int_equal(m.init, RT_INIT_XAVIER);
  assert_true(m.opt.type == OPT_SGD && m.opt.lr == 0.1 && m.opt.momentum == 0.9);
  assert_true(m.opt.nesterov && m.opt.dampening == 0 && m.opt.weight_decay == 5e-4);
  assert_int_equal(m.batch_size, 64);
  assert_int_equal(m.epochs, 2);
  assert_true(m.seed == 9007199254740993ULL);
  assert_string_equal(m.data, "data/fashion");
  assert_int_equal(m.max_batches, 7);
  assert_int_equal(m.dtype, DT_F64);
}

/* Optimizer defaults by type: PyTorch's, except lr 0.01 for all. */
static void test_optimizers(void **state) {
  Model m;
  (void)state;
  load_ok("tests/valid/rmsprop.json", &m);
  assert_true(m.opt.type == OPT_RMSPROP && m.opt.lr == 0.01 && m.opt.alpha == 0.9);
  assert_true(m.opt.eps == 1e-8 && m.opt.centered && m.opt.momentum == 0.5);
  load_ok("tests/valid/adamw_name_only.json", &m);
  assert_true(m.opt.type == OPT_ADAMW && m.opt.lr == 0.01);
  assert_true(m.opt.weight_decay == 0.01 && m.opt.beta2 == 0.999);
  load_ok("tests/valid/adam_object.json", &m);
  assert_true(m.opt.lr == 0.003 && m.opt.beta1 == 0.8 && m.opt.beta2 == 0.99);
  assert_true(m.opt.weight_decay == 0 && m.opt.eps == 1e-6);
}

/* Activation parameters, layer norm, no hidden layers, integer numbers. */
static void test_variants(void **state) {
  Model m;
  (void)state;
  load_ok("tests/valid/elu_alpha.json", &m);
  assert_true(m.act.type == ACT_ELU && m.act.param == 0.5);
  load_ok("tests/valid/leaky_default.json", &m);
  assert_true(m.act.type == ACT_LEAKY && m.act.param == 0.01);
  load_ok("tests/valid/no_hidden.json", &m);
  assert_int_equal(m.nhidden, 0);
  assert_int_equal(m.norm.type, NORM_BATCH);
  assert_int_equal(m.batch_size, 1);
  load_ok("tests/valid/integer_reals.json", &m);
  assert_true(m.opt.lr == 1 && m.norm.momentum == 1 && m.norm.type == NORM_BATCH);
}

/* ---- fe_load_string and fe_load's own messages ---- */

/* Text in memory: named after fname, or "model" without one. */
static void test_load_string(void **state) {
  Model m;
  char err[256];
  (void)state;
  assert_int_equal(fe_load_string("{\"epochs\": 3}", "dir/x.json", &m, err, sizeof err), 0);
  assert_string_equal(m.name, "x");
  assert_int_equal(m.epochs, 3);
  assert_int_equal(fe_load_string("{}", NULL, &m, err, sizeof err), 0);
  assert_string_equal(m.name, "model");
  assert_int_equal(fe_load_string("{\"seed\": -1}", NULL, &m, err, sizeof err), -1);
  assert_string_equal(err, "<string>: seed: error: must be an integer in "
                      "0..9223372036854775807, got -1");
}

/* Deep nesting in memory gives a clean error, not a crash. */
static void test_deep_nesting(void **state) {
  enum { N = 200000 };
  char *text = malloc(N + 1), err[256];
  Model m;
  (void)state;
  memset(text, '[', N);
  text[N] = '\0';
  assert_int_equal(fe_load_string(text, "deep.json", &m, err, sizeof err), -1);
  assert_string_equal(err, "deep.json:1:2049: error: maximum parsing depth "
                      "reached near '['");
  free(text);
}

/* A file that cannot be read, and a message cut to a small buffer. */
static void test_unreadable(void **state) {
  Model m;
  char err[256], small[16];
  (void)state;
  assert_int_equal(fe_load("tests/errors/no-such-file.json", &m, err, sizeof err), -1);
  assert_string_equal(err, "tests/errors/no-such-file.json: error: cannot open: "
                      "No such file or directory");
  assert_int_equal(fe_load("tests/errors", &m, err, sizeof err), -1);
  assert_string_equal(err, "tests/errors: error: cannot read: Is a directory");
  assert_int_equal(fe_load("tests/errors/input_zero.json", &m, small, sizeof small), -1);
  assert_string_equal(small, "tests/errors/in");
}

/* ---- fe_override ---- */

typedef struct {
  const char *flag, *key, *text, *want;  /* want NULL: accepted */
} Override;

static const Override overrides[] = {
  {"--lr", "optimizer.lr", "-1", "--lr: error: must be a positive number, got -1"},
  {"--lr", "optimizer.lr", "0", "--lr: error: must be a positive number, got 0"},
  {"--lr", "optimizer.lr", "abc", "--lr: error: expected a number, got 'abc'"},
  {"--lr", "optimizer.lr", "", "--lr: error: expected a number, got ''"},
  {"--lr", "optimizer.lr", "0.1x", "--lr: error: expected a number, got '0.1x'"},
  {"--lr", "optimizer.lr", " 0.1", "--lr: error: expected a number, got ' 0.1'"},
  {"--lr", "optimizer.lr", "inf", "--lr: error: expected a number, got 'inf'"},
  {"--lr", "optimizer.lr", "nan", "--lr: error: expected a number, got 'nan'"},
  {"--lr", "optimizer.lr", "0x10", "--lr: error: expected a number, got '0x10'"},
  {"--lr", "optimizer.lr", "1e400", "--lr: error: must be a finite number, got 1e400"},
  {"--lr", "optimizer.lr", "1e-400", "--lr: error: 1e-400 is too small for a double: it "
   "reads as 0 (the smallest is 5e-324)"},
  {"--lr", "optimizer.lr", "1e-46", "--lr: error: lr is 1e-46, which is 0 in float32 (its "
   "smallest normal number is 1.1754943508222875e-38); use \"dtype\": \"float64\""},
  {"--lr", "optimizer.lr", "1e-39", "--lr: error: lr is 1e-39, which is subnormal in float32 "
   "(its smallest normal number is 1.1754943508222875e-38); use \"dtype\": \"float64\""},
  {"--lr", "optimizer.lr", "-0e-999", "--lr: error: must be a positive number, got -0e-999"},
  {"--lr", "optimizer.lr", "1e-3", NULL},
  {"--epochs", "epochs", "0", "--epochs: error: must be an integer in 1..100000, got 0"},
  {"--epochs", "epochs", "2.5", "--epochs: error: must be an integer in 1..100000, got 2.5"},
  {"--epochs", "epochs", "1e3", "--epochs: error: must be an integer in 1..100000, got 1e3"},
  {"--epochs", "epochs", "ten", "--epochs: error: expected an integer, got 'ten'"},
  {"--epochs", "epochs", "3", NULL},
  {"--seed", "seed", "-1",
   "--seed: error: must be an integer in 0..9223372036854775807, got -1"},
  {"--seed", "seed", "99999999999999999999",
   "--seed: error: must be an integer in 0..9223372036854775807, got 99999999999999999999"},
  {"--seed", "seed", "7", NULL},
  {"--batch-size", "batch_size", "65537",
   "--batch-size: error: must be an integer in 1..65536, got 65537"},
  {"--batch-size", "batch_size", "1",
   "--batch-size: error: batchnorm needs at least 2 samples per batch, got 1"},
  {"--batch-size", "batch_size", "64", NULL},
  {"--max-batches", "max_batches", "0",
   "--max-batches: error: must be an integer in 1..2147483647, got 0"},
  {"--max-batches", "max_batches", "5", NULL},
  {"--data", "data", "", "--data: error: must not be empty (\"mnist\", "
   "\"fashion-mnist\" or a directory)"},
  {"--data", "data", "fashion-mnist", NULL},
  {"--x", "optimizer.betas", "0.9",
   "--x: error: 'betas' does not apply to optimizer sgd (only to adam, adamw)"},
  {"--x", "no_such_key", "1", "--x: error: 'no_such_key' is not a model key"},
};

/* Each override's message names the flag; good values are applied. */
static void test_override(void **state) {
  Model m;
  char err[512];
  int bad = 0;
  (void)state;
  load_ok("models/bn_relu.json", &m);
  for (size_t i = 0; i < sizeof overrides / sizeof *overrides; i++) {
    const Override *o = &overrides[i];
    int rc = fe_override(&m, o->flag, o->key, o->text, err, sizeof err);
    const char *gotmsg = rc ? err : "(accepted)";
    if (strcmp(gotmsg, o->want ? o->want : "(accepted)"))
      printf("%s '%s':\n- %s\n+ %s\n", o->flag, o->text,
             o->want ? o->want : "(accepted)", gotmsg), bad++;
  }
  assert_int_equal(bad, 0);
  assert_true(m.opt.lr == 1e-3 && m.epochs == 3 && m.seed == 7);
  assert_true(m.batch_size == 64 && m.max_batches == 5);
  assert_string_equal(m.data, "fashion-mnist");
}

/* A refused override leaves the model as it was. */
static void test_override_keeps_model(void **state) {
  Model m, before;
  char err[512];
  (void)state;
  load_ok("models/bn_relu.json", &m);
  before = m;
  assert_int_equal(fe_override(&m, "--batch-size", "batch_size", "1", err, sizeof err), -1);
  assert_int_equal(fe_override(&m, "--lr", "optimizer.lr", "-1", err, sizeof err), -1);
  assert_memory_equal(&m, &before, sizeof m);
}

/* A flag for a value the schedule sets itself (--lr under onecycle) is
   refused, not ignored, and leaves the model as it was; under a schedule
   that starts from the lr, it applies. */
static void test_override_no_effect(void **state) {
  Model m, before;
  char err[512];
  (void)state;
  assert_int_equal(fe_load_string("{\"schedule\": {\"type\": \"onecycle\", \"max_lr\": 0.1}}",
                                  "o.json", &m, err, sizeof err), 0);
  before = m;
  assert_int_equal(fe_override(&m, "--lr", "optimizer.lr", "0.5", err, sizeof err), -1);
  assert_string_equal(err, "--lr: error: has no effect: the schedule, onecycle, sets the lr "
                      "itself, from max_lr / div_factor up to max_lr and down (OneCycleLR "
                      "ignores the optimizer's lr); change schedule.max_lr");
  assert_memory_equal(&m, &before, sizeof m);
  assert_int_equal(fe_load_string("{\"schedule\": {\"type\": \"cosine\", \"T_max\": 3}}",
                                  "c.json", &m, err, sizeof err), 0);
  assert_int_equal(fe_override(&m, "--lr", "optimizer.lr", "0.5", err, sizeof err), 0);
  assert_true(m.opt.lr == 0.5);
}

/* ---- name tables ---- */

/* The name tables follow the X-macro lists. */
static void test_names(void **state) {
  (void)state;
  assert_string_equal(norm_names[NORM_LAYER], "layernorm");
  assert_string_equal(act_names[ACT_GELU], "gelu");
  assert_string_equal(act_names[NACTS - 1], "elu");
  assert_string_equal(opt_names[OPT_ADAMW], "adamw");
  assert_string_equal(dtype_names[DT_F64], "float64");
  assert_string_equal(init_names[RT_INIT_TORCH_DEFAULT], "torch_default");
}

/* Runs from the source directory, where the cases are. */
int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_no_orphans),
    cmocka_unit_test(test_valid),
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_models),
    cmocka_unit_test(test_full),
    cmocka_unit_test(test_optimizers),
    cmocka_unit_test(test_variants),
    cmocka_unit_test(test_load_string),
    cmocka_unit_test(test_deep_nesting),
    cmocka_unit_test(test_unreadable),
    cmocka_unit_test(test_override),
    cmocka_unit_test(test_override_keeps_model),
    cmocka_unit_test(test_override_no_effect),
  };
  return util_run_tests(tests, NULL, NULL, argc, argv);
}
