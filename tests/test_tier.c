/*
 * test_tier.c — tiered execution (backend/tier.c): a run that starts on
 * tcc's code and moves to gcc's gives bitwise the results of either
 * backend alone, wherever it moves, for every model in models/ and
 * tests/models/.
 *
 *   state        in process: the tensor table (and a schedule's lr,
 *                RtNet.hyper) is the whole state. A run on tcc moved,
 *                after some steps, a test pass and a health probe, into a
 *                gcc compilation of the model that another seed's
 *                training left full of other values, goes on bit for bit
 *                as the run on tcc alone
 *   points       `mlpc --run --json --health --save-weights`, tiered with
 *                the switch forced (MLPC_TEST_SWITCH_AFTER) before the
 *                first step, mid-epoch, in a test pass, at the last step
 *                and never, prints the epoch lines, health figures and
 *                weights of --backend tcc and of --backend gcc, byte for
 *                byte, and says where gcc took over; the recipes' models
 *                among them (schedules, clipping, label smoothing, the
 *                validation split, early stopping)
 *   stopping     early stopping keeps an epoch's weights on one code and
 *                puts them back into the other, its schedule moved too:
 *                the same bits
 *   background   with an empty cache, gcc really builds the object while
 *                the run goes on; the switch waits for it (an event, not a
 *                clock), and the results do not change
 *   gcc_temporaries  gcc's temporaries go to a TMPDIR of its own,
 *                removed when gcc ends, so that a gcc stopped mid-build
 *                (a run that ended first) leaves none behind
 *   cached       with the object cached and no knob, the run is on gcc's
 *                code throughout, and says so
 *   gcc_fails    a gcc that fails, or is killed, while the run goes on:
 *                a warning, the run ends on tcc with the same results,
 *                exit 0
 *   renice       a gcc 10 lower that gets nothing is started again at the
 *                run's priority (MLPC_TEST_RENICE_AFTER, in place of the
 *                clock and the load), and the run moves to its object
 *
 * Command-line checks run build/mlpc (MLPC_BIN, from CMake) in the source
 * directory, whose out/cache holds the gcc objects; the background and
 * failure cases run in a temporary directory with a cache of its own.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

static char tmp[64];                    /* the temporary directory        */
static char *models[UTIL_MAX_FILES];    /* every model file               */
static int nmodels;
static RtSet mnist;                     /* data/mnist's training set      */

/* ---- state ---- */

/* A model's code, compiled with a backend (gcc into out/cache), in an
   arithmetic (1: fma). */
static Jit *compile(const Model *m, int backend, int fma) {
  static Ir ir;
  Buf src = {0};
  ir_lower(m, &ir);
  ir.fma = fma;
  emit_unit(&ir, BACKEND_GCC, &src);
  Jit *j = util_jit(src.buf, backend, m->name);
  free(src.buf);
  return j;
}

/* steps training steps from sample at, the losses into loss[]. */
static void steps(const RtNet *net, long *at, int n, double *loss) {
  for (int s = 0; s < n; s++, *at += net->batch)
    loss[s] = net->train_step(net->batch, mnist.images + *at * net->input, mnist.labels + *at);
}

/* A test pass of 2 batches and a health probe, as rt_train runs them. */
static void between(const RtNet *net, long at, double *sum, long *correct) {
  double figures[64 * RT_NLAYER_FIGURES];
  for (int b = 0; b < 2; b++)
    net->eval(net->batch, mnist.images + (at + b * net->batch) * net->input,
              mnist.labels + at + b * net->batch, sum, correct);
  if (net->nhidden <= 64)
    net->health(net->batch, mnist.images, mnist.labels, figures);
}

/* Fails unless two nets hold bitwise the same tensors. */
static void same_tensors(const char *what, const RtNet *a, const RtNet *b) {
  for (int k = 0; k < a->ntensors; k++) {
    size_t n = (size_t)rt_numel(&a->tensors[k]) * (a->tensors[k].dtype == RT_F32 ? 4 : 8);
    if (memcmp(a->tensors[k].data, b->tensors[k].data, n))
      fail_msg("%s: %s differs", what, a->tensors[k].name);
  }
}

/* Under a schedule, sets the lr and momentum net's code reads
   (RtNet.hyper), as the schedule would, to a share of the model's. */
static void set_hyper(const RtNet *net, double share) {
  if (!net->hyper)
    return;
  net->hyper[0] *= share;
  net->hyper[1] = 0.5 + share / 4;
}

/* One model: 6 steps on tcc, the test pass and the probe, the state moved
   to a gcc compilation that another seed trained (and, under a schedule,
   whose lr is another), 6 more steps there; the same as 12 steps on tcc
   alone. */
static void state_moves(const char *path, int fma) {
  static Model m;
  char err[1024];
  double a[12], b[12], sa = 0, sb = 0;
  long ca = 0, cb = 0, at = 0, other = 40 * 32;
  util_load(path, &m);
  Jit *alone = compile(&m, BACKEND_TCC, fma), *t = compile(&m, BACKEND_TCC, fma),
      *g = compile(&m, BACKEND_GCC, fma);
  const RtNet *na = jit_net(alone), *nt = jit_net(t), *ng = jit_net(g);
  rt_init(ng, m.seed + 1);
  set_hyper(ng, 1.5);
  steps(ng, &other, 3, b), between(ng, other, &sb, &cb); /* other values everywhere */
  rt_init(na, m.seed), rt_init(nt, m.seed);
  set_hyper(na, 0.25), set_hyper(nt, 0.25);
  steps(na, &at, 6, a), between(na, at, &sa, &ca), steps(na, &at, 6, a + 6);
  at = 0, sb = 0, cb = 0;
  steps(nt, &at, 6, b), between(nt, at, &sb, &cb);
  assert_int_equal(tier_copy_state(ng, nt, err, sizeof err), 0);
  steps(ng, &at, 6, b + 6);
  if (memcmp(a, b, sizeof a) || sa != sb || ca != cb)
    fail_msg("%s: the losses after the move differ", path);
  same_tensors(path, na, ng);
  print_message("  %-45s 12 steps, moved after 6: the same bits\n", path);
  jit_free(alone), jit_free(t), jit_free(g);
}

static void test_state(void **state) {
  (void)state;
  for (int i = 0; i < nmodels; i++)
    state_moves(models[i], util_arith(i));
}

/* tier_copy_state refuses the table of another model. */
static void test_state_mismatch(void **state) {
  (void)state;
  static Model a, b;
  char err[1024];
  util_load("models/bn_relu.json", &a);
  util_load("tests/models/silu_rmsprop.json", &b);
  Jit *ja = compile(&a, BACKEND_TCC, 1), *jb = compile(&b, BACKEND_TCC, 1);
  assert_int_equal(tier_copy_state(jit_net(ja), jit_net(jb), err, sizeof err), -1);
  print_message("  %s\n", err);
  jit_free(ja), jit_free(jb);
}

/* ---- the command line ---- */

/* Removes every `, "KEY": NUMBER` from text, in place. */
static void drop_number(char *text, const char *key) {
  char pat[64], *s;
  snprintf(pat, sizeof pat, ", \"%s\": ", key);
  while ((s = strstr(text, pat))) {
    char *end = s + strlen(pat);
    end += strspn(end, "0123456789.e-+");
    memmove(s, end, strlen(end) + 1);
  }
}

/* Cuts the summary's `, "code": ...` members (the last ones) out of text
   into code; "" if there are none. */
static void cut_code(char *text, char *code, size_t len) {
  char *s = strstr(text, ", \"code\": ");
  code[0] = 0;
  if (!s)
    return;
  char *end = strchr(s, '\n');
  assert_non_null(end);
  end--; /* the summary's closing brace */
  snprintf(code, len, "%.*s", (int)(end - s), s);
  memmove(s, end, strlen(end) + 1);
}

/* The data the runs below train on: data/mnist, or another directory. */
static const char *data = "mnist";

/* What one run printed and saved. */
typedef struct {
  char *out;          /* stdout, the times and the code cut out        */
  char *weights;
  size_t nweights;
  char code[256];     /* the summary's code members                    */
  char *err;          /* stderr                                        */
} Result;

/* Runs mlpc on model for epochs of at most batches training steps (and
   test batches), with args (NULL-terminated) and the knob (NULL for none)
   in the current directory; fails unless it exits 0. */
static Result run_for(const char *model, int batches, int epochs, const char *knob,
                      const char *const *args) {
  char nb[16], ne[16];
  snprintf(nb, sizeof nb, "%d", batches), snprintf(ne, sizeof ne, "%d", epochs);
  const char *argv[32] = {MLPC_BIN, model, "--run", "--json", "--health", "--data", data,
                          "--max-batches", nb, "--epochs", ne, "--save-weights",
                          util_path(tmp, "w.safetensors")};
  int n = 13;
  for (int i = 0; args[i]; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  if (knob)
    setenv("MLPC_TEST_SWITCH_AFTER", knob, 1);
  int status = util_run(argv, util_path(tmp, "out"), util_path(tmp, "err"));
  unsetenv("MLPC_TEST_SWITCH_AFTER");
  Result r;
  size_t len;
  r.err = util_slurp(util_path(tmp, "err"), &len);
  if (status)
    fail_msg("%s %s: exit %d\n%s", model, knob ? knob : "", status, r.err);
  r.out = util_slurp(util_path(tmp, "out"), &len);
  r.weights = util_slurp(util_path(tmp, "w.safetensors"), &r.nweights);
  assert_true(r.out && r.weights && r.err);
  drop_number(r.out, "seconds");
  drop_number(r.out, "train_seconds");
  cut_code(r.out, r.code, sizeof r.code);
  return r;
}

/* run_for 2 epochs of 4 batches. */
static Result run(const char *model, const char *knob, const char *const *args) {
  return run_for(model, 4, 2, knob, args);
}

static void free_result(Result *r) { free(r->out), free(r->weights), free(r->err); }

/* Fails unless b printed and saved what a did. */
static void same_result(const char *what, const Result *a, const Result *b) {
  if (strcmp(a->out, b->out))
    fail_msg("%s: the output differs:\n--- expected\n%s--- got\n%s", what, a->out, b->out);
  if (a->nweights != b->nweights || memcmp(a->weights, b->weights, a->nweights))
    fail_msg("%s: the saved weights differ", what);
}

/* The summary's code members of a run that moved to gcc's code at w
   (epoch 0: never). */
static void code_of(const RtWhere *w, char *buf, size_t len) {
  if (!w->epoch)
    snprintf(buf, len, ", \"code\": \"tcc\", \"gcc_from\": null");
  else if (w->step)
    snprintf(buf, len, ", \"code\": \"tcc, then gcc\", \"gcc_from\": {\"epoch\": %d, "
             "\"step\": %ld}", w->epoch, w->step);
  else
    snprintf(buf, len, ", \"code\": \"tcc, then gcc\", \"gcc_from\": {\"epoch\": %d, "
             "\"test_batch\": %ld}", w->epoch, w->batch);
}

/* Runs model tiered (args), the switch forced after calls; fails unless
   it prints and saves what a did and says it moved at w. */
static void switched(const char *model, int batches, int epochs, long calls, const RtWhere *w,
                     const char *const *args, const Result *a) {
  char knob[32], what[300], code[256];
  snprintf(knob, sizeof knob, "%ld", calls);
  Result c = run_for(model, batches, epochs, knob, args);
  snprintf(what, sizeof what, "%s, switched after %s calls", model, knob);
  same_result(what, a, &c);
  code_of(w, code, sizeof code);
  if (strcmp(c.code, code))
    fail_msg("%s: the summary says\n%s\nnot\n%s", what, c.code, code);
  free_result(&c);
}

/* Training batches an epoch for a model's switch points: 4, or 20 when
   its schedule does not fit 2 epochs of 4 steps (a onecycle behind a
   long warmup). */
static int batches_for(const char *model) {
  static Model m;
  char err[1024];
  util_load(model, &m);
  return rt_recipe_check(&m.recipe, mnist.n, m.batch_size, 0, 2, 4, err, sizeof err) ? 20 : 4;
}

/* One model: tcc, gcc and every switch point give the same bits. A run
   of 2 epochs of k training steps and k test batches moves before its
   first step, mid-epoch, in a test pass, at its last step, or never. */
static void points_of(const char *model, int fma) {
  const char *arith = fma ? "--fma" : "--strict";
  const char *tcc[] = {"--backend", "tcc", arith, NULL},
             *gcc[] = {"--backend", "gcc", arith, NULL},
             *tiered[] = {"--backend", "tiered", arith, NULL}, *none[] = {arith, NULL};
  int k = batches_for(model);
  const long calls[] = {0, 2, k, k + 2, 2 * k, 3 * k - 1, 4 * k - 1, 4 * k};
  const RtWhere at[] = {{1, 1, 0}, {1, 3, 0}, {1, 0, 1}, {1, 0, 3},
                        {2, 1, 0}, {2, k, 0}, {2, 0, k}, {0, 0, 0}};
  Result a = run_for(model, k, 2, NULL, tcc), b = run_for(model, k, 2, NULL, gcc);
  same_result("gcc against tcc", &a, &b);
  assert_string_equal(a.code, "");
  for (int i = 0; i < 8; i++)
    switched(model, k, 2, calls[i], &at[i], i % 2 ? tiered : none, &a);
  print_message("  %-45s %-6s tcc == gcc == tiered, switched at 8 points (%d steps an "
                "epoch)\n", model, arith + 2, k);
  free_result(&a), free_result(&b);
}

static void test_points(void **state) {
  (void)state;
  for (int i = 0; i < nmodels; i++)
    points_of(models[i], util_arith(i));
}

/* A model whose validation loss rises after epoch 2, so that early
   stopping (patience 2) ends the run after epoch 4 and puts epoch 2's
   weights back; its lr follows a schedule. 4 steps, 4 test batches and
   7 validation batches an epoch. */
static const char stopping[] =
  "{\"name\": \"stopping\", \"input\": 784, \"hidden\": [16], \"output\": 10, "
  "\"optimizer\": {\"type\": \"sgd\", \"lr\": 1.0, \"momentum\": 0.9}, \"schedule\": "
  "{\"type\": \"cosine\", \"T_max\": 3, \"warmup\": 3}, \"validation\": 200, "
  "\"early_stopping\": {\"patience\": 2}, \"batch_size\": 32, \"seed\": 3}\n";

/* Early stopping across the switch: epoch 2's weights kept on gcc's
   code (switched in epoch 2's test pass), or kept on tcc's and put back
   into gcc's (switched in epoch 3 or 4): tcc's run, bit for bit. */
static void test_early_stopping(void **state) {
  (void)state;
  const long calls[] = {12, 17, 29};
  const RtWhere at[] = {{2, 0, 1}, {3, 2, 0}, {4, 0, 2}};
  const char *tcc[] = {"--backend", "tcc", NULL}, *gcc[] = {"--backend", "gcc", NULL},
             *none[] = {NULL};
  char model[200];
  snprintf(model, sizeof model, "%s", util_path(tmp, "stopping.json"));
  assert_int_equal(util_write(model, stopping, strlen(stopping)), 0);
  Result a = run_for(model, 4, 8, NULL, tcc), b = run_for(model, 4, 8, NULL, gcc);
  assert_non_null(strstr(a.out, "\"epochs\": 4, \"best_epoch\": 2, \"stopped_early\": true"));
  same_result("gcc against tcc, early stopping", &a, &b);
  for (int i = 0; i < 3; i++)
    switched(model, 4, 8, calls[i], &at[i], none, &a);
  print_message("  early stopping: tcc == gcc == tiered, switched at 3 points\n");
  free_result(&a), free_result(&b);
}

/* Float data (NumPy arrays, used as they are): gcc's code, taking over
   mid-run, reads the samples as reals as tcc's did, the same bits. */
static void test_float_data(void **state) {
  (void)state;
  const char *tcc[] = {"--backend", "tcc", NULL}, *gcc[] = {"--backend", "gcc", NULL},
             *none[] = {NULL};
  const char *model = MLPC_SOURCE_DIR "/tests/arrays/blobs.json";
  data = MLPC_SOURCE_DIR "/tests/arrays/blobs_npy";
  Result a = run_for(model, 4, 2, NULL, tcc), b = run_for(model, 4, 2, NULL, gcc),
         c = run_for(model, 4, 2, "2", none);
  data = "mnist";
  same_result("float data: gcc against tcc", &a, &b);
  same_result("float data: tiered, switched after 2 calls", &a, &c);
  if (!strstr(c.code, "\"tcc, then gcc\", \"gcc_from\": {\"epoch\": 1, \"step\""))
    fail_msg("float data: the summary says %s", c.code);
  free_result(&a), free_result(&b), free_result(&c);
}

/* The text output says the same, after the table. */
static void test_text(void **state) {
  (void)state;
  const char *argv[] = {MLPC_BIN, "models/bn_relu.json", "--run", "--max-batches", "4",
                        "--epochs", "2", NULL};
  setenv("MLPC_TEST_SWITCH_AFTER", "6", 1);
  int status = util_run(argv, util_path(tmp, "out"), util_path(tmp, "err"));
  unsetenv("MLPC_TEST_SWITCH_AFTER");
  assert_int_equal(status, 0);
  size_t len;
  char *out = util_slurp(util_path(tmp, "out"), &len);
  assert_non_null(strstr(out, "\nbackend tiered, fma: tcc's code, compiled in memory in "));
  assert_non_null(strstr(out, "\ncode: tcc's code, then gcc's from epoch 1, test batch 3"));
  free(out);
}

/* ---- gcc beside the run ---- */

/* The run in the temporary directory, whose out/cache starts empty. */
static Result run_in_tmp(const char *model, const char *knob) {
  char abs[4096], dir[300];
  const char *none[] = {NULL};
  snprintf(abs, sizeof abs, "%s/%s", MLPC_SOURCE_DIR, model);
  snprintf(dir, sizeof dir, "%s", util_path(tmp, "run"));
  mkdir(dir, 0700);
  setenv("MLPC_DATA", MLPC_SOURCE_DIR "/data", 1);
  assert_int_equal(chdir(dir), 0);
  Result r = run(abs, knob, none);
  assert_int_equal(chdir(MLPC_SOURCE_DIR), 0);
  unsetenv("MLPC_DATA");
  return r;
}

/* gcc builds the object beside the run, which moves to it. */
static void test_background(void **state) {
  (void)state;
  const char *tcc[] = {"--backend", "tcc", NULL};
  Result a = run("models/mlp_dropout.json", NULL, tcc);
  Result b = run_in_tmp("models/mlp_dropout.json", "3");
  same_result("a run beside gcc", &a, &b);
  assert_string_equal(b.code, ", \"code\": \"tcc, then gcc\", \"gcc_from\": {\"epoch\": 1, "
                      "\"step\": 4}");
  char *names[UTIL_MAX_FILES];
  int n = util_list(util_path(tmp, "run/out/cache"), ".so", names, 0);
  assert_int_equal(n, 1); /* gcc's object, and no temporary */
  free(names[0]);
  free_result(&a), free_result(&b);
}

/* gcc's temporaries go to a TMPDIR of their own, removed when gcc ends,
   so that a gcc stopped mid-build (a run that ended first) leaves none:
   a stand-in gcc first on PATH leaves a file in its TMPDIR and runs gcc;
   the TMPDIR the run was given is left empty. */
static void test_gcc_temporaries(void **state) {
  (void)state;
  char dir[300], path[8192], *path0 = strdup(getenv("PATH"));
  char *tmpdir0 = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
  static const char script[] = "#!/bin/sh\n: > \"$TMPDIR/cc-left.s\"\n"
                               "PATH=${PATH#*:} exec gcc \"$@\"\n";
  snprintf(dir, sizeof dir, "%s", util_path(tmp, "gcc_tmp"));
  assert_int_equal(mkdir(dir, 0700), 0);
  mkdir(util_path(tmp, "bin"), 0700);
  assert_int_equal(util_write(util_path(tmp, "bin/gcc"), script, strlen(script)), 0);
  assert_int_equal(chmod(util_path(tmp, "bin/gcc"), 0755), 0);
  snprintf(path, sizeof path, "%s:%s", util_path(tmp, "bin"), path0);
  setenv("PATH", path, 1);
  setenv("TMPDIR", dir, 1);
  util_rmtree(util_path(tmp, "run"));
  Result b = run_in_tmp("models/bn_relu.json", "3");
  setenv("PATH", path0, 1);
  tmpdir0 ? setenv("TMPDIR", tmpdir0, 1) : unsetenv("TMPDIR");
  free(path0), free(tmpdir0);
  assert_string_equal(b.code, ", \"code\": \"tcc, then gcc\", \"gcc_from\": {\"epoch\": 1, "
                      "\"step\": 4}");
  if (rmdir(dir))
    fail_msg("%s: gcc's temporaries are left there (%s)", dir, strerror(errno));
  free_result(&b);
}

/* With the object cached and no knob, gcc's code runs throughout. */
static void test_cached(void **state) {
  (void)state;
  const char *tcc[] = {"--backend", "tcc", NULL}, *none[] = {NULL};
  Result a = run("models/bn_relu.json", NULL, tcc), b = run("models/bn_relu.json", "0", none);
  Result c = run("models/bn_relu.json", NULL, none);
  same_result("a cached object", &a, &c);
  assert_string_equal(c.code, ", \"code\": \"gcc\", \"gcc_from\": null");
  assert_non_null(strstr(c.err, "backend tiered, fma: gcc's cached object (-O"));
  assert_non_null(strstr(c.err, "), loaded in "));
  free_result(&a), free_result(&b), free_result(&c);
}

/* A stand-in gcc, first on PATH, fails or is killed: the run warns and
   ends on tcc's code, with tcc's results. */
static void test_gcc_fails(void **state) {
  (void)state;
  static const char *const scripts[][2] = {
    {"#!/bin/sh\necho 'x.c:1:2: error: no good' >&2\nexit 3\n", "gcc failed (exit 3) on "},
    {"#!/bin/sh\nkill -9 $$\n", "gcc was killed by signal 9 (Killed) compiling "},
  };
  const char *tcc[] = {"--backend", "tcc", NULL};
  char path[8192], *path0 = strdup(getenv("PATH"));
  Result a = run("models/bn_relu.json", NULL, tcc);
  for (int i = 0; i < 2; i++) {
    mkdir(util_path(tmp, "bin"), 0700);
    const char *gcc = util_path(tmp, "bin/gcc");
    assert_int_equal(util_write(gcc, scripts[i][0], strlen(scripts[i][0])), 0);
    assert_int_equal(chmod(gcc, 0755), 0);
    snprintf(path, sizeof path, "%s:%s", util_path(tmp, "bin"), path0);
    setenv("PATH", path, 1);
    util_rmtree(util_path(tmp, "run"));
    Result b = run_in_tmp("models/bn_relu.json", "3");
    setenv("PATH", path0, 1);
    same_result("a run whose gcc failed", &a, &b);
    assert_string_equal(b.code, ", \"code\": \"tcc\", \"gcc_from\": null");
    if (!strstr(b.err, scripts[i][1]) ||
        !strstr(b.err, "; the run goes on with tcc's code, which gives the same results\n"))
      fail_msg("no warning:\n%s", b.err);
    print_message("  %s", strstr(b.err, "mlpc: warning: "));
    free_result(&b);
  }
  free_result(&a);
  free(path0);
}

/* A stand-in gcc first on PATH notes its priority; below the test's it
   waits (as if it got no CPU), at the test's it runs gcc. Started again
   after the first call at the run's priority, the build ends, and the
   run moves at its fourth step. (The first may be stopped before it
   notes anything.) */
static void test_renice(void **state) {
  (void)state;
  const char *tcc[] = {"--backend", "tcc", NULL};
  char script[1024], path[8192], *path0 = strdup(getenv("PATH")), niced[16], want[16];
  char log[300];  /* util_path's buffers are reused */
  snprintf(log, sizeof log, "%s", util_path(tmp, "bin/nice.log"));
  int me = getpriority(PRIO_PROCESS, 0);
  snprintf(script, sizeof script, "#!/bin/sh\nn=$(nice)\necho $n >> %s\n[ $n -le %d ] || "
           "exec sleep 300\nPATH=${PATH#*:} exec gcc \"$@\"\n", log, me);
  Result a = run("models/bn_relu.json", NULL, tcc);
  mkdir(util_path(tmp, "bin"), 0700);
  unlink(log);
  assert_int_equal(util_write(util_path(tmp, "bin/gcc"), script, strlen(script)), 0);
  assert_int_equal(chmod(util_path(tmp, "bin/gcc"), 0755), 0);
  snprintf(path, sizeof path, "%s:%s", util_path(tmp, "bin"), path0);
  setenv("PATH", path, 1);
  setenv("MLPC_TEST_RENICE_AFTER", "1", 1);
  util_rmtree(util_path(tmp, "run"));
  Result b = run_in_tmp("models/bn_relu.json", "3");
  unsetenv("MLPC_TEST_RENICE_AFTER");
  setenv("PATH", path0, 1);
  same_result("a run whose gcc was started again", &a, &b);
  assert_string_equal(b.code, ", \"code\": \"tcc, then gcc\", \"gcc_from\": {\"epoch\": 1, "
                      "\"step\": 4}");
  size_t len;
  char *got = util_slurp(log, &len);
  snprintf(niced, sizeof niced, "%d\n", me + 10 < 19 ? me + 10 : 19);
  snprintf(want, sizeof want, "%d\n", me);
  if (strcmp(got, want) && (strncmp(got, niced, strlen(niced)) ||
                            strcmp(got + strlen(niced), want)))
    fail_msg("gcc's priorities, %s and %s expected:\n%s", niced, want, got);
  free(got), free(path0);
  free_result(&a), free_result(&b);
}

static int setup(void **state) {
  (void)state;
  char err[1024];
  if (util_mkdtemp("tier", tmp, sizeof tmp))
    return -1;
  nmodels = util_models(models);
  return rt_load_set("data/mnist", "train", 10, &mnist, err, sizeof err);
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  for (int i = 0; i < nmodels; i++)
    free(models[i]);
  rt_free_set(&mnist);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_state),
    cmocka_unit_test(test_state_mismatch),
    cmocka_unit_test(test_points),
    cmocka_unit_test(test_early_stopping),
    cmocka_unit_test(test_float_data),
    cmocka_unit_test(test_text),
    cmocka_unit_test(test_background),
    cmocka_unit_test(test_gcc_temporaries),
    cmocka_unit_test(test_cached),
    cmocka_unit_test(test_gcc_fails),
    cmocka_unit_test(test_renice),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
