/*
 * test_backends.c — the backends and the standalone trainer agree, and
 * the generated code is clean, for every model in models/ and
 * tests/models/ (which between them use every activation, norm,
 * optimizer and dtype), in both arithmetics (rt/kernels.h: strict
 * and fma, the models taking turns, so that each arithmetic meets float32
 * and float64, BatchNorm and LayerNorm):
 *
 *   warnings     the emitted unit compiles with tcc -Wall without a word
 *   bitwise      tcc and gcc give bitwise the same losses, predictions
 *                and tensors after 20 training steps on data/mnist, and
 *                the same health figures (docs/health.md) of one more
 *                step; gcc said nothing compiling the unit (the backend's
 *                flags hold -Wall -Wextra; its messages are in out/cache)
 *   trainer      `mlpc --emit` built with the line its first comment gives
 *                (and -Wall -Wextra -Werror) prints exactly the epoch
 *                figures of `mlpc --run --backend gcc`
 *   seeds        the same seed gives the same bits, another seed others
 *   one_sample   a last training batch of one sample is skipped under
 *                BatchNorm with the documented note, never NaN
 *   accuracy     1 epoch of 784-128-10 BatchNorm + Adam on data/mnist
 *                reaches the accuracy measured when it was written
 *
 * Command-line checks run build/mlpc (MLPC_BIN, from CMake). ctest runs
 * the program in parts side by side (tests/CMakeLists.txt, util.h: a
 * list of tests, and a share K/N of the models). The gcc backend's
 * objects go to out/cache, where mlpc run from the source directory puts
 * its own: a unit the suite compiled once (here or in a run of mlpc) is
 * loaded from there again.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libtcc.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

enum { STEPS = 20 };

static char tmp[64];                    /* the temporary directory        */
static char *models[UTIL_MAX_FILES];    /* every model file               */
static int nmodels;
static RtSet mnist;                     /* data/mnist's training set      */

/* ---- helpers ---- */

/* The arithmetic (1: fma) of the model file path in the tests that
   compile every model (util_arith): the bitwise test's gcc objects serve
   the trainer test's runs. */
static int arith_of(const char *path) {
  for (int i = 0; i < nmodels; i++)
    if (!strcmp(models[i], path))
      return util_arith(i);
  fail_msg("%s is not among the models", path);
  return 0;
}

/* The unit of a model for a backend, in an arithmetic (1: fma). */
static Buf unit(const Model *m, int backend, int fma) {
  static Ir ir;
  Buf b = {0};
  ir_lower(m, &ir);
  ir.fma = fma;
  emit_unit(&ir, backend, &b);
  return b;
}

/* What gcc said compiling src into out/cache (its warnings: the
   backend's flags hold -Wall -Wextra); NULL when nothing. */
static char *gcc_said(const char *src) {
  char log[4096];
  size_t len;
  assert_int_equal(jit_gcc_log(src, "out/cache", log, sizeof log), 0);
  char *text = util_slurp(log, &len);
  assert_non_null(text);
  if (!*text)
    free(text), text = NULL;
  return text;
}

/* Compiles a model with a backend (gcc into out/cache, which must say
   nothing), in an arithmetic. */
static Jit *compile(const Model *m, int backend, int fma) {
  char *said = NULL;
  Buf src = unit(m, backend, fma);
  Jit *j = util_jit(src.buf, backend, m->name);
  if (backend == BACKEND_GCC)
    said = gcc_said(src.buf);
  free(src.buf);
  if (said)
    fail_msg("%s: gcc -Wall -Wextra:\n%s", m->name, said);
  return j;
}

/* Runs argv; fails, showing its stderr, unless it exits 0. */
static void run_ok(const char *const *argv, const char *out, const char *err) {
  int status = util_run(argv, out, err);
  if (status) {
    size_t len;
    char *msg = err ? util_slurp(err, &len) : NULL;
    fail_msg("%s %s ... exited %d\n%s", argv[0], argv[1], status, msg ? msg : "");
  }
}

/* Drops the ', "seconds": ...' field of each JSON line in place: the
   only figure that may differ between two runs. */
static void drop_seconds(char *text) {
  char *s;
  while ((s = strstr(text, ", \"seconds\": "))) {
    char *end = strchr(s, '}');
    memmove(s, end, strlen(end) + 1);
  }
}

/* The JSON Lines stdout of a command, seconds dropped. */
static char *json_lines(const char *const *argv) {
  const char *out = util_path(tmp, "stdout"), *err = util_path(tmp, "stderr");
  run_ok(argv, out, err);
  size_t len;
  char *text = util_slurp(out, &len);
  assert_non_null(text);
  drop_seconds(text);
  return text;
}

/* Fails showing both texts if they differ. */
static void same_text(const char *what, const char *a, const char *b) {
  if (strcmp(a, b))
    fail_msg("%s differ:\n--- first\n%s--- second\n%s", what, a, b);
}

/* ---- tensors ---- */

static size_t elsize(const RtTensor *t) {
  return t->dtype == RT_F32 ? 4 : 8;
}

/* The index of the first element where two tensors' bits differ, or -1. */
static long first_difference(const RtTensor *a, const RtTensor *b) {
  size_t z = elsize(a);
  for (long i = 0; i < rt_numel(a); i++)
    if (memcmp((char *)a->data + i * z, (char *)b->data + i * z, z))
      return i;
  return -1;
}

/* Element i of t as a double, for messages. */
static double element(const RtTensor *t, long i) {
  return t->dtype == RT_F32 ? ((float *)t->data)[i]
       : t->dtype == RT_F64 ? ((double *)t->data)[i]
                            : (double)((long long *)t->data)[i];
}

/* Fails unless two nets of one model hold bitwise the same tensors. */
static void same_tensors(const char *what, const RtNet *a, const RtNet *b) {
  assert_int_equal(a->ntensors, b->ntensors);
  for (int k = 0; k < a->ntensors; k++) {
    const RtTensor *s = &a->tensors[k], *t = &b->tensors[k];
    assert_string_equal(s->name, t->name);
    assert_int_equal(rt_numel(s), rt_numel(t));
    long i = first_difference(s, t);
    if (i >= 0)
      fail_msg("%s: %s[%ld] differs: %a vs %a", what, s->name, i, element(s, i),
               element(t, i));
  }
}

/* Whether two nets' trained parameters differ somewhere. */
static int params_differ(const RtNet *a, const RtNet *b) {
  for (int k = 0; k < a->ntensors; k++)
    if (a->tensors[k].kind <= RT_BETA && first_difference(&a->tensors[k], &b->tensors[k]) >= 0)
      return 1;
  return 0;
}

/* Copies every tensor of net (its data) into a new net sharing the
   table's shape; for comparing a net with its own earlier state. */
static RtNet snapshot(const RtNet *net) {
  RtNet s = *net;
  RtTensor *t = malloc(sizeof *t * net->ntensors);
  for (int k = 0; k < net->ntensors; k++) {
    t[k] = net->tensors[k];
    size_t n = rt_numel(&t[k]) * elsize(&t[k]);
    t[k].data = malloc(n);
    memcpy(t[k].data, net->tensors[k].data, n);
  }
  s.tensors = t;
  return s;
}

static void free_snapshot(RtNet *s) {
  for (int k = 0; k < s->ntensors; k++)
    free(s->tensors[k].data);
  free(s->tensors);
}

/* ---- training in process ---- */

/* The size of step s's batch: full ones, then a short last one. */
static int batch_size(const RtNet *net, int s) {
  return s == STEPS - 1 ? net->batch / 2 + 1 : net->batch;
}

/* STEPS training steps on data/mnist in file order; the losses into
   loss[], then an evaluation of the next 3 batches into *eval_loss and
   *correct. */
static void train(const RtNet *net, double *loss, double *eval_loss, long *correct) {
  long at = 0;
  int F = net->input;
  for (int s = 0; s < STEPS; s++) {
    int n = batch_size(net, s);
    assert_true(at + n <= mnist.n);
    loss[s] = net->train_step(n, mnist.images + at * F, mnist.labels + at);
    at += n;
  }
  *eval_loss = 0, *correct = 0;
  for (int b = 0; b < 3; b++, at += net->batch)
    net->eval(net->batch, mnist.images + at * F, mnist.labels + at, eval_loss, correct);
}

/* One more training step with the health figures around it (its update
   ratios), then the probe's figures, into h. */
static void health_step(const RtNet *net, RtHealth *h) {
  assert_int_equal(rt_health_alloc(h, net), 0);
  rt_health_before_step(h, net);
  net->train_step(net->batch, mnist.images, mnist.labels);
  rt_health_after_step(h, net);
  rt_health_probe(h, net, net->batch, mnist.images, mnist.labels);
}

/* tcc's health figures (a) and gcc's (g), bit for bit. */
static void same_health(const char *file, const RtHealth *a, const RtHealth *g) {
  assert_int_equal(a->nrows, g->nrows);
  for (int r = 0; r < a->nrows; r++) {
    const RtFigure *x = &a->rows[r], *y = &g->rows[r];
    assert_string_equal(x->figure, y->figure);
    assert_int_equal(x->na, y->na);
    if (!x->na && memcmp(&x->value, &y->value, sizeof x->value))
      fail_msg("%s: %s %s: %a (tcc) vs %a (gcc)", file, x->layer, x->figure, x->value,
               y->value);
  }
}

/* ---- warnings ---- */

/* Counts tcc's messages and shows them. */
static void on_tcc_message(void *opaque, const char *msg) {
  ++*(int *)opaque;
  print_message("    tcc: %s\n", msg);
}

/* Compiles a unit with tcc -Wall, links it and binds its kernels;
   returns the number of messages (errors and warnings). */
static int tcc_says(const char *src) {
  int n = 0;
  TCCState *s = tcc_new();
  assert_non_null(s);
  tcc_set_error_func(s, &n, on_tcc_message);
  tcc_set_options(s, "-Wall");
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  char err[256];
  if (tcc_compile_string(s, src) < 0 || tcc_relocate(s, TCC_RELOCATE_AUTO) < 0)
    n += !n;
  else if (jit_bind(tcc_get_symbol(s, "mlpc_bind"), err, sizeof err))
    print_message("    %s\n", err), n++;
  tcc_delete(s);
  return n;
}

/* Every model's unit compiles with tcc -Wall without a word (gcc's
   warnings: test_bitwise, test_trainer). */
static void test_warnings(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  for (int i = 0; i < nmodels; i++) {
    util_load(models[i], &m);
    ir_lower(&m, &ir);
    Buf tcc_unit = {0};
    emit_unit(&ir, BACKEND_TCC, &tcc_unit);
    int n = tcc_says(tcc_unit.buf);
    if (n)
      fail_msg("%s: tcc -Wall said %d thing(s), shown above", models[i], n);
    free(tcc_unit.buf);
  }
  /* and the checks can fail */
  const char *bad = "int f(void) { char *p = \"x\"; int i = p; return i; }\n",
             *unused = "const void *mlpc_net(void) { int unused; return 0; }\n";
  char err[2048], *said;
  Jit *j = jit_gcc(unused, "out/cache", err, sizeof err);
  assert_non_null(j);
  assert_non_null(said = gcc_said(unused));
  assert_non_null(strstr(said, "-Wunused-variable"));
  free(said);
  jit_free(j);
  assert_true(tcc_says(bad) > 0);
}

/* ---- bitwise ---- */

/* Every tensor of net on a cache line (the unit's ALIGNED), from either
   compiler. */
static void aligned(const char *file, const char *backend, const RtNet *net) {
  for (int i = 0; i < net->ntensors; i++)
    if ((uintptr_t)net->tensors[i].data % 64)
      fail_msg("%s: %s: %s at %p, not on a cache line", file, backend, net->tensors[i].name,
               net->tensors[i].data);
}

/* tcc and gcc: the same losses, evaluation and tensors, bit for bit. */
static void test_bitwise(void **state) {
  (void)state;
  static Model m;
  for (int i = 0; i < nmodels; i++) {
    if (!util_mine(i))
      continue;
    util_load(models[i], &m);
    int fma = util_arith(i);
    Jit *jt = compile(&m, BACKEND_TCC, fma), *jg = compile(&m, BACKEND_GCC, fma);
    const RtNet *t = jit_net(jt), *g = jit_net(jg);
    aligned(models[i], "tcc", t);
    aligned(models[i], "gcc", g);
    double lt[STEPS], lg[STEPS], et, eg;
    long ct, cg;
    rt_init(t, m.seed);
    rt_init(g, m.seed);
    same_tensors(models[i], t, g);
    train(t, lt, &et, &ct);
    train(g, lg, &eg, &cg);
    for (int s = 0; s < STEPS; s++)
      if (memcmp(&lt[s], &lg[s], sizeof lt[s]))
        fail_msg("%s: step %d: loss %a (tcc) vs %a (gcc)", models[i], s + 1, lt[s], lg[s]);
    if (memcmp(&et, &eg, sizeof et) || ct != cg)
      fail_msg("%s: eval: loss %a, %ld correct (tcc) vs %a, %ld (gcc)", models[i], et, ct,
               eg, cg);
    same_tensors(models[i], t, g);
    RtHealth ht, hg;
    health_step(t, &ht);
    health_step(g, &hg);
    same_health(models[i], &ht, &hg);
    ((unsigned char *)g->tensors[0].data)[0] ^= 1; /* the check can fail */
    assert_true(params_differ(t, g));
    print_message("  %-45s %-6s %d steps, loss %.6f -> %.6f, %d health figures: "
                  "tcc == gcc\n", models[i], arith_names[fma], STEPS, lt[0],
                  lt[STEPS - 1], ht.nrows);
    rt_health_free(&ht);
    rt_health_free(&hg);
    jit_free(jt);
    jit_free(jg);
  }
}

/* ---- the standalone trainer ---- */

/* The build command a trainer's first comment gives (after "Build:", on
   the next line, up to the comment's end), FILE.c and trainer replaced by
   c and exe, split at blanks into argv. */
static void build_line(const char *c, const char *exe, const char **argv, int max) {
  static char line[512];
  size_t len;
  char *text = util_slurp(c, &len), *save;
  assert_non_null(text);
  const char *from = strstr(text, "Build:\n   "), *end = from ? strstr(from, " */") : NULL;
  assert_true(from && end && from < strchr(text, '\n'));
  assert_null(memchr(from + 10, '\n', end - from - 10)); /* one line */
  snprintf(line, sizeof line, "%.*s", (int)(end - from - 10), from + 10);
  free(text);
  int n = 0;
  for (char *w = strtok_r(line, " ", &save); w && n < max - 1; w = strtok_r(NULL, " ", &save))
    argv[n++] = !strcmp(w, "FILE.c") ? c : !strcmp(w, "trainer") ? exe : w;
  argv[n] = NULL;
}

/* A trainer, built as its first line says, prints exactly what mlpc --run
   --backend gcc prints, in either arithmetic; it exits 1 when its output
   cannot be written. */
static void test_trainer(void **state) {
  (void)state;
  static const char *const chosen[] = {
    "models/ln_silu_adam.json", "tests/models/f64_bn_cumulative_nesterov.json",
    "tests/models/ln_elu_rmsprop_centered.json", "tests/models/bn_leaky_adamw.json",
    "models/mlp_dropout.json", "tests/models/list_mixed.json", /* dropout's masks */
    "tests/models/sched_onecycle_warmup.json", /* the runtime's lr schedule */
    "tests/models/recipe_all.json", /* validation, early stopping, clipping, smoothing */
    "tests/models/cnn_recipe.json", /* the recipes on a CNN: a split of images */
    "models/cnn.json", "tests/models/cnn_mixed.json", /* convolutions; the last runs below */
  };
  enum { N = sizeof chosen / sizeof chosen[0] };
  char c[256], exe[256], err[256]; /* kept across the loop: util_path's ring is reused */
  snprintf(c, sizeof c, "%s", util_path(tmp, "trainer.c"));
  snprintf(exe, sizeof exe, "%s", util_path(tmp, "trainer"));
  snprintf(err, sizeof err, "%s", util_path(tmp, "stderr"));
  for (int i = 0; i < N; i++) {
    if (!util_mine(i))
      continue;
    const char *arith = arith_of(chosen[i]) ? "--fma" : "--strict", *cc[20];
    const char *emit[] = {MLPC_BIN, chosen[i], "--emit", c, arith, NULL};
    const char *tr[] = {exe, "--max-batches", "20", "--epochs", "2", "--json", NULL};
    const char *run[] = {MLPC_BIN, chosen[i], "--run", "--backend", "gcc", "--max-batches",
                         "20", "--epochs", "2", "--json", arith, NULL};
    run_ok(emit, NULL, err);
    build_line(c, exe, cc, 16);
    int n = 0;
    while (cc[n])
      n++;
    const char *strict[] = {"-Wall", "-Wextra", "-Werror", NULL};
    memcpy(cc + n, strict, sizeof strict); /* a warning fails the build */
    run_ok(cc, NULL, err);
    char *a = json_lines(tr), *b = json_lines(run);
    assert_non_null(strstr(a, "\"epoch\": 2"));
    same_text(chosen[i], a, b);
    print_message("  %s, %s: trainer == mlpc --run\n%s", chosen[i], arith + 2, a);
    free(a), free(b);
  }
  if (!util_mine(N - 1))
    return;
  /* output that cannot be written is an error, as mlpc's own */
  const char *help[] = {exe, "--help", NULL}, *full[] = {exe, "--max-batches", "2",
                                                           "--epochs", "1", "--json", NULL};
  for (int k = 0; k < 2; k++) {
    assert_int_equal(util_run(k ? full : help, "/dev/full", err), 1);
    size_t len;
    char *said = util_slurp(err, &len);
    assert_non_null(strstr(said, "trainer: error: cannot write the standard output"));
    free(said);
  }
}

/* A trainer in the fma arithmetic warns when built without FMA
   instructions (plain cc -O2 on x86-64), and not when built with them
   (-march=native, on a CPU that has them); strict never warns. */
static void test_fma_warning(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  const char *plain[] = {"-O2", NULL}, *native[] = {"-O2", "-march=native", NULL};
  const char *warning = "built without FMA instructions";
  const char *c = util_path(tmp, "warn_trainer.c");
  util_load("models/bn_relu.json", &m);
  for (int fma = 0; fma < 2; fma++) {
    Buf b = {0};
    ir_lower(&m, &ir);
    ir.fma = fma;
    emit_trainer(&ir, &b);
    assert_int_equal(util_write(c, b.buf, b.len), 0);
    free(b.buf);
#if defined(__x86_64__) || defined(__i386__)
    assert_int_equal(util_cc_says(c, plain, warning), fma);
#endif
    if (jit_cpu_fma())
      assert_int_equal(util_cc_says(c, native, warning), 0);
    else
      print_message("  this CPU has no FMA instructions: -march=native is not checked\n");
  }
}

/* ---- seeds ---- */

/* In process: init and 20 steps twice with one seed, once with another. */
static void seeds_in_process(const char *path) {
  static Model m;
  util_load(path, &m);
  Jit *j = compile(&m, BACKEND_TCC, ARITH_FMA);
  const RtNet *net = jit_net(j);
  double loss[STEPS], el;
  long c;
  RtNet first;
  for (int run = 0; run < 3; run++) {
    rt_init(net, run < 2 ? 1 : 2);
    train(net, loss, &el, &c);
    if (run == 0)
      first = snapshot(net);
    else if (run == 1)
      same_tensors("the same seed twice", &first, net);
    else if (!params_differ(&first, net))
      fail_msg("%s: seeds 1 and 2 gave the same parameters", path);
  }
  free_snapshot(&first);
  jit_free(j);
}

/* mlpc's whole run (init, shuffled batches, saved weights) with a seed. */
static char *seeded_run(const char *path, const char *seed, const char *weights) {
  const char *argv[] = {MLPC_BIN, path, "--run", "--backend", "tcc", "--seed", seed,
                        "--max-batches", "20", "--epochs", "2", "--json",
                        "--save-weights", weights, NULL};
  return json_lines(argv);
}

/* The same seed, the same bits; another seed, others. */
static void test_seeds(void **state) {
  (void)state;
  const char *path = "tests/models/bn_leaky_adamw.json";
  seeds_in_process(path);
  const char *wa = util_path(tmp, "a.safetensors"), *wb = util_path(tmp, "b.safetensors"),
             *wc = util_path(tmp, "c.safetensors");
  char *a = seeded_run(path, "11", wa), *b = seeded_run(path, "11", wb),
       *c = seeded_run(path, "12", wc);
  same_text("two runs with seed 11", a, b);
  assert_string_not_equal(a, c);
  size_t la, lb, lc;
  char *fa = util_slurp(wa, &la), *fb = util_slurp(wb, &lb), *fc = util_slurp(wc, &lc);
  assert_true(fa && fb && fc);
  assert_true(la == lb && !memcmp(fa, fb, la));
  assert_true(la == lc && memcmp(fa, fc, la));
  free(a), free(b), free(c), free(fa), free(fb), free(fc);
}

/* ---- one-sample batches ---- */

/* Appends a big-endian u32. */
static unsigned char *put_u32(unsigned char *p, uint32_t v) {
  for (int i = 3; i >= 0; i--)
    *p++ = (unsigned char)(v >> 8 * i);
  return p;
}

/* Writes an IDX pair PREFIX-{images,labels} of n 4x4 images to tmp/tiny. */
static void write_tiny_set(const char *prefix, int n) {
  static unsigned char buf[16 + 64 * 16];
  char path[200];
  unsigned char *p = put_u32(put_u32(put_u32(put_u32(buf, 0x803), n), 4), 4);
  for (int i = 0; i < n * 16; i++)
    *p++ = (unsigned char)(i * 37 % 251);
  snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", util_path(tmp, "tiny"), prefix);
  assert_int_equal(util_write(path, buf, p - buf), 0);
  p = put_u32(put_u32(buf, 0x801), n);
  for (int i = 0; i < n; i++)
    *p++ = (unsigned char)(i % 10);
  snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", util_path(tmp, "tiny"), prefix);
  assert_int_equal(util_write(path, buf, p - buf), 0);
}

/* Writes a 16-8-10 model with the given norm on tmp/tiny; its path. */
static const char *tiny_model(const char *norm) {
  char text[512];
  const char *path = util_path(tmp, norm);
  int n = snprintf(text, sizeof text,
                   "{\"name\": \"tiny\", \"input\": 16, \"hidden\": [8], \"output\": 10,"
                   " \"norm\": \"%s\", \"batch_size\": 32, \"epochs\": 2,"
                   " \"data\": \"%s\"}\n", norm, util_path(tmp, "tiny"));
  assert_int_equal(util_write(path, text, n), 0);
  return path;
}

/* 33 training samples in batches of 32: the second batch has one. */
static void test_one_sample(void **state) {
  (void)state;
  const char *note = "mlpc: note: skipped 2 one-sample training batch(es): "
                     "BatchNorm needs at least 2 samples";
  assert_int_equal(mkdir(util_path(tmp, "tiny"), 0777), 0);
  write_tiny_set("train", 33);
  write_tiny_set("t10k", 33); /* and a test batch of one */
  for (int k = 0; k < 2; k++) {
    const char *norm = k ? "layernorm" : "batchnorm";
    const char *model = tiny_model(norm);
    const char *argv[] = {MLPC_BIN, model, "--run", "--backend", "tcc", "--json", NULL};
    char *out = json_lines(argv), *err;
    size_t len;
    err = util_slurp(util_path(tmp, "stderr"), &len);
    print_message("  %s:\n%s%s", norm, out, err);
    assert_null(strstr(out, "nan"));
    assert_non_null(strstr(out, "\"epoch\": 2"));
    if (k == 0 && !strstr(err, note))
      fail_msg("batchnorm: no note '%s'", note);
    if (k == 1 && strstr(err, "skipped"))
      fail_msg("layernorm needs no skipping, yet: %s", err);
    free(out), free(err);
  }
}

/* ---- accuracy ---- */

/* Measured when written: 0.922 for seed 42 (0.922 to 0.9335 over seeds
   1-9 and 42, both backends alike); the bound leaves 2 points. */
#define MIN_ACC 0.90

/* 1 epoch of tests/models/mnist_bn_adam.json on data/mnist. */
static void test_accuracy(void **state) {
  (void)state;
  const char *argv[] = {MLPC_BIN, "tests/models/mnist_bn_adam.json", "--run", "--epochs",
                        "1", "--json", NULL};
  char *out = json_lines(argv), *s = strstr(out, "\"final_test_acc\": ");
  assert_non_null(s);
  double acc = strtod(s + 18, NULL);
  print_message("  mnist_bn_adam, 1 epoch: test accuracy %.4f (bound %.2f)\n", acc, MIN_ACC);
  if (!(acc >= MIN_ACC))
    fail_msg("test accuracy %.4f < %.2f", acc, MIN_ACC);
  free(out);
}

/* ---- setup ---- */

/* The temporary directory, the model list and data/mnist. */
static int setup(void **state) {
  (void)state;
  char err[1024], dir[4096];
  if (util_mkdtemp("backends", tmp, sizeof tmp))
    return -1;
  nmodels = util_models(models);
  if (rt_load_set(rt_data_dir("mnist", dir, sizeof dir), "train", 10, &mnist, err,
                  sizeof err)) {
    fprintf(stderr, "%s (run scripts/data.sh)\n", err);
    return -1;
  }
  return nmodels > 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  rt_free_set(&mnist);
  for (int i = 0; i < nmodels; i++)
    free(models[i]);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_warnings), cmocka_unit_test(test_bitwise),
    cmocka_unit_test(test_trainer),  cmocka_unit_test(test_fma_warning),
    cmocka_unit_test(test_seeds),
    cmocka_unit_test(test_one_sample), cmocka_unit_test(test_accuracy),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
