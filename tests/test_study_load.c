/*
 * test_study_load.c — study files: expansion and errors.
 *
 * models/seed_study.json must expand to the homework's ten one-factor
 * experiments, models/seed_grid.json to the 36 of the full grid; dotted
 * keys, value names, a base given as a path and the defaults are checked
 * on small files written to a temporary directory; st_plan must find the
 * runs experiments share, and name the experiment whose data do not fit.
 *
 * tests/study/errors/NAME.json must be refused with exactly the message
 * in NAME.expect: errors of the study file itself, and the frontend's
 * errors about a value in "base" or "vary", moved to where the value
 * stands. To write one expectation on purpose (after checking the new
 * message by eye):
 *
 *   MLPC_REGEN=NAME ./test_study_load     (MLPC_REGEN=all: every case)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "../study/study.h"
#include "util.h"

static char err[4096];
static Study s;

/* ---- helpers ---- */

/* Checks every case of dir; returns the number of mismatches. */
static int error_cases(const char *dir) {
  char *paths[UTIL_MAX_FILES], name[256], expect[1024];
  int n = util_list(dir, ".json", paths, 0), bad = 0;
  assert_true(n > 0);
  for (int i = 0; i < n; i++) {
    util_stem(paths[i], name, sizeof name);
    snprintf(expect, sizeof expect, "%s/%s.expect", dir, name);
    err[0] = 0;
    int rc = st_load(paths[i], &s, err, sizeof err);
    if (!rc)
      st_free(&s), snprintf(err, sizeof err, "(accepted)");
    if (util_regen(name)) {
      FILE *f = fopen(expect, "w");
      fprintf(f, "%s\n", err);
      fclose(f);
    }
    const char *want = util_text(expect);
    if (!want || strcmp(want, err))
      bad++, printf("%s:\n- %s\n+ %s\n", paths[i], want ? want : "(no .expect)", err);
    free(paths[i]);
  }
  printf("%s: %d cases, %d failed\n", dir, n, bad);
  return bad;
}

/* Writes text to dir/name. */
static void write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Loads text as a study file in dir; fails the test on error. */
static void load_text(const char *dir, const char *text) {
  char path[512];
  write_file(dir, "study.json", text);
  snprintf(path, sizeof path, "%s/study.json", dir);
  if (st_load(path, &s, err, sizeof err))
    fail_msg("%s", err);
}

static char tmp[] = "/tmp/mlpc_studyXXXXXX";

static int make_tmp(void **state) {
  (void)state;
  return mkdtemp(tmp) ? 0 : -1;
}

static int remove_tmp(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  return system(cmd);
}

/* ---- errors ---- */

static void test_errors(void **state) {
  (void)state;
  assert_int_equal(error_cases("tests/study/errors"), 0);
}

/* ---- expansion ---- */

/* The homework: ten experiments, one key changed at a time, grouped. */
static void test_seed_study(void **state) {
  (void)state;
  static const char *const names[] = {
    "init=normal", "init=kaiming_normal", "activation=tanh", "activation=relu",
    "norm=none", "norm=batchnorm", "norm=layernorm",
    "optimizer=sgd", "optimizer=rmsprop", "optimizer=adam",
  };
  if (st_load("models/seed_study.json", &s, err, sizeof err))
    fail_msg("%s", err);
  assert_string_equal(s.name, "seed_study");
  assert_int_equal(s.mode, ST_ONE_FACTOR);
  assert_int_equal(s.nexp, 10);
  assert_int_equal(s.nseeds, 3);
  for (int i = 0; i < 10; i++)
    assert_string_equal(s.exp[i].name, names[i]);
  assert_string_equal(s.exp[5].factor, "norm");
  assert_string_equal(s.exp[5].value, "batchnorm");
  /* the others keep the base's values: normal, tanh, none, sgd */
  const char *row5[] = {"normal", "tanh", "batchnorm", "sgd"};
  for (int k = 0; k < 4; k++)
    assert_string_equal(s.exp[5].values[k], row5[k]);
  for (int i = 0; i < 10; i++) {
    const Model *m = &s.exp[i].model;
    assert_int_equal(m->init, i == 1 ? RT_INIT_KAIMING : RT_INIT_NORMAL);
    assert_int_equal(m->act.type, i == 3 ? ACT_RELU : ACT_TANH);
    assert_int_equal(m->norm.type, i == 5 ? NORM_BATCH : i == 6 ? NORM_LAYER : NORM_NONE);
    assert_int_equal(m->opt.type, i == 8 ? OPT_RMSPROP : i == 9 ? OPT_ADAM : OPT_SGD);
    assert_true(m->opt.lr == 0.01);
    assert_int_equal(m->hidden[0], 128);
    assert_int_equal(m->nhidden, 1);
    assert_int_equal(m->batch_size, 32);
    assert_int_equal(m->epochs, 10);
    assert_string_equal(m->name, "seed_base");
  }
  st_free(&s);
}

/* The training recipes' study: each recipe a varied key, and the base's
   validation split and early stopping in every experiment. */
static void test_recipe_study(void **state) {
  (void)state;
  static const char *const names[] = {
    "schedule=none", "schedule=step(step_size=3, gamma=0.3)", "schedule=cosine(T_max=10)",
    "schedule=onecycle(max_lr=0.1, warmup=200)", "clip_grad_norm=null", "clip_grad_norm=1",
    "label_smoothing=0", "label_smoothing=0.1",
  };
  static const int sched[] = {RT_SCHED_NONE, RT_SCHED_STEP, RT_SCHED_COSINE, RT_SCHED_ONECYCLE};
  if (st_load("models/recipe_study.json", &s, err, sizeof err))
    fail_msg("%s", err);
  assert_int_equal(s.nexp, 8);
  for (int i = 0; i < 8; i++) {
    const Model *m = &s.exp[i].model;
    assert_string_equal(s.exp[i].name, names[i]);
    assert_int_equal(m->recipe.schedule, i < 4 ? sched[i] : RT_SCHED_NONE);
    assert_true(m->clip_grad_norm == (i == 5 ? 1.0 : 0));
    assert_true(m->label_smoothing == (i == 7 ? 0.1 : 0));
    assert_int_equal(m->recipe.val_count, 5000);
    assert_int_equal(m->recipe.patience, 3);
  }
  assert_int_equal(s.exp[3].model.recipe.warmup, 200);
  st_free(&s);
}

/* The homework with adaptive seeds: the same experiments, 3 starting
   seeds, then 3 .. 9; the level. A study without "adaptive" is not. */
static void test_seed_study_adaptive(void **state) {
  (void)state;
  Study fixed;
  if (st_load("models/seed_study_adaptive.json", &s, err, sizeof err) ||
      st_load("models/seed_study.json", &fixed, err, sizeof err))
    fail_msg("%s", err);
  assert_int_equal(s.nexp, fixed.nexp);
  for (int i = 0; i < s.nexp; i++)
    assert_string_equal(s.exp[i].json, fixed.exp[i].json);
  assert_int_equal(s.nstart, 3);
  assert_int_equal(s.nseeds, 10);
  for (int k = 0; k < 10; k++)
    assert_int_equal(s.seeds[k], k);
  assert_true(s.alpha == 0.05);
  assert_true(fixed.alpha == 0);
  assert_int_equal(fixed.nstart, fixed.nseeds);
  st_free(&s), st_free(&fixed);
}

/* The full grid: 2 × 2 × 3 × 3, the first key varying slowest. */
static void test_seed_grid(void **state) {
  (void)state;
  if (st_load("models/seed_grid.json", &s, err, sizeof err))
    fail_msg("%s", err);
  assert_int_equal(s.mode, ST_GRID);
  assert_int_equal(s.nexp, 36);
  assert_string_equal(s.exp[0].name, "init=normal, activation=tanh, norm=none, optimizer=sgd");
  assert_string_equal(s.exp[1].name,
                      "init=normal, activation=tanh, norm=none, optimizer=rmsprop");
  assert_string_equal(s.exp[35].name,
                      "init=kaiming_normal, activation=relu, norm=layernorm, optimizer=adam");
  assert_string_equal(s.exp[35].factor, "");
  for (int i = 0; i < 36; i++) {
    const Model *m = &s.exp[i].model;
    assert_int_equal(m->init, i / 18 ? RT_INIT_KAIMING : RT_INIT_NORMAL);
    assert_int_equal(m->act.type, i / 9 % 2 ? ACT_RELU : ACT_TANH);
    assert_int_equal(m->norm.type, i / 3 % 3);
    assert_int_equal(m->opt.type, i % 3);
    for (int j = 0; j < i; j++)
      assert_string_not_equal(s.exp[i].name, s.exp[j].name);
  }
  st_free(&s);
}

/* Dotted keys replace one member; names show what tells values apart. */
static void test_dotted_and_names(void **state) {
  (void)state;
  load_text(tmp, "{\"base\": {\"optimizer\": \"sgd\", \"hidden\": [16]},"
                 " \"vary\": {\"optimizer.lr\": [0.1, 0.001],"
                 " \"hidden\": [[16], [32, 8]]}}");
  assert_int_equal(s.nexp, 4);
  assert_string_equal(s.exp[0].name, "optimizer.lr=0.1");
  assert_string_equal(s.exp[1].name, "optimizer.lr=0.001");
  assert_string_equal(s.exp[3].name, "hidden=[32,8]");
  assert_true(s.exp[1].model.opt.lr == 0.001);
  assert_int_equal(s.exp[1].model.opt.type, OPT_SGD);
  assert_int_equal(s.exp[3].model.nhidden, 2);
  assert_int_equal(s.exp[3].model.hidden[1], 8);
  assert_string_equal(s.exp[3].values[0], "(default)");
  st_free(&s);
  load_text(tmp, "{\"base\": {}, \"vary\": {\"optimizer\": [{\"type\": \"sgd\", \"lr\": 0.1},"
                 " {\"type\": \"sgd\", \"lr\": 0.5}, {\"type\": \"adam\", \"lr\": 0.1}]}}");
  assert_string_equal(s.exp[0].name, "optimizer=sgd(lr=0.1)");
  assert_string_equal(s.exp[1].name, "optimizer=sgd(lr=0.5)");
  assert_string_equal(s.exp[2].name, "optimizer=adam(lr=0.1)");
  st_free(&s);
  load_text(tmp, "{\"base\": {}, \"vary\": {\"optimizer\": [\"sgd\", {\"type\": \"sgd\"}]}}");
  assert_string_equal(s.exp[0].name, "optimizer=sgd");
  assert_string_equal(s.exp[1].name, "optimizer={\"type\":\"sgd\"}");
  st_free(&s);
  /* layer lists by the kinds that tell them apart; the same kinds clash */
  load_text(tmp, "{\"base\": {\"input\": [1, 28, 28], \"layers\": [\"flatten\", {\"type\": "
                 "\"linear\", \"out\": 10}]}, \"vary\": {\"layers\": ["
                 "[{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3}, \"relu\", "
                 "\"flatten\", {\"type\": \"linear\", \"out\": 10}],"
                 "[{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3}, \"batchnorm2d\","
                 " \"relu\", \"flatten\", {\"type\": \"linear\", \"out\": 10}],"
                 "[{\"type\": \"conv2d\", \"out_channels\": 4, \"kernel_size\": 3}, \"gelu\", "
                 "{\"type\": \"dropout\", \"p\": 0.1}, \"flatten\", {\"type\": \"linear\", \"out\": 10}]]}}");
  assert_int_equal(s.nexp, 3);
  assert_string_equal(s.exp[0].name, "layers=relu");
  assert_string_equal(s.exp[1].name, "layers=batchnorm2d+relu");
  assert_string_equal(s.exp[2].name, "layers=gelu+dropout");
  assert_int_equal(s.exp[1].model.layers[1].kind, LK_BATCHNORM2D);
  st_free(&s);
  load_text(tmp, "{\"base\": {}, \"vary\": {\"layers\": ["
                 "[{\"type\": \"linear\", \"out\": 10}], [{\"type\": \"linear\", \"out\": 12}]]}}");
  assert_string_equal(s.exp[0].name, "layers=[{\"type\":\"linear\",\"out\":10}]");
  st_free(&s);
  /* a schedule's member where the base has none: of the base's type, none */
  load_text(tmp, "{\"base\": {}, \"vary\": {\"schedule.warmup\": [0, 100]}}");
  assert_string_equal(s.exp[1].name, "schedule.warmup=100");
  assert_int_equal(s.exp[1].model.recipe.schedule, RT_SCHED_NONE);
  assert_int_equal(s.exp[1].model.recipe.warmup, 100);
  st_free(&s);
  /* an lr that onecycle ignores is refused as a change of the base
     (tests/study/errors/vary_lr_under_onecycle), not within a grid's
     combination where the base's schedule keeps it */
  load_text(tmp, "{\"base\": {}, \"mode\": \"grid\", \"vary\": {\"schedule\": [\"none\", "
                 "{\"type\": \"onecycle\", \"max_lr\": 0.1}], \"optimizer.lr\": [0.01, 0.1]}}");
  assert_int_equal(s.nexp, 4);
  assert_int_equal(s.exp[3].model.recipe.schedule, RT_SCHED_ONECYCLE);
  st_free(&s);
}

/* A base file is found next to the study; seeds and name default. */
static void test_base_path_and_defaults(void **state) {
  (void)state;
  char dir[128];
  snprintf(dir, sizeof dir, "%s/sub", tmp);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
  assert_int_equal(system(cmd), 0);
  write_file(dir, "base_model.json", "{\"hidden\": [24], \"seed\": 5, \"activation\": \"gelu\"}");
  write_file(dir, "my-study.json", "{\"base\": \"base_model.json\", \"vary\": {\"init\": "
                                   "[\"xavier_normal\"]}}");
  snprintf(cmd, sizeof cmd, "%s/my-study.json", dir);
  if (st_load(cmd, &s, err, sizeof err))
    fail_msg("%s", err);
  assert_string_equal(s.name, "my-study");
  assert_int_equal(s.nseeds, 1);
  assert_int_equal(s.seeds[0], 5);
  assert_int_equal(s.exp[0].model.hidden[0], 24);
  assert_int_equal(s.exp[0].model.act.type, ACT_GELU);
  assert_int_equal(s.exp[0].model.init, RT_INIT_XAVIER);
  assert_int_equal(s.arith, ARITH_FMA);
  Model m;  /* named as the frontend names the base file */
  snprintf(cmd, sizeof cmd, "%s/base_model.json", dir);
  assert_int_equal(fe_load(cmd, &m, err, sizeof err), 0);
  assert_string_equal(s.exp[0].model.name, m.name);
  st_free(&s);
}

/* Run flags reach every experiment, and the JSON recorded with it. */
static void test_override(void **state) {
  (void)state;
  if (st_load("models/seed_study.json", &s, err, sizeof err))
    fail_msg("%s", err);
  assert_int_equal(st_override(&s, "--epochs", "epochs", "3", err, sizeof err), 0);
  assert_int_equal(st_override(&s, "--max-batches", "max_batches", "7", err, sizeof err), 0);
  for (int i = 0; i < s.nexp; i++) {
    assert_int_equal(s.exp[i].model.epochs, 3);
    assert_int_equal(s.exp[i].model.max_batches, 7);
    assert_non_null(strstr(s.exp[i].json, "\"epochs\":3"));
    assert_non_null(strstr(s.exp[i].json, "\"max_batches\":7"));
  }
  st_free(&s);
}

/* ---- planning ---- */

/* The base is one model in four rows: 7 models, 21 distinct runs. */
static void test_plan_shares_runs(void **state) {
  (void)state;
  StPlan p;
  if (st_load("models/seed_study.json", &s, err, sizeof err))
    fail_msg("%s", err);
  if (st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err))
    fail_msg("%s", err);
  assert_int_equal(p.ncodes, 7);
  assert_int_equal(p.ntasks, 21);
  for (int k = 0; k < 3; k++) {
    int base = p.task_of[0 * 3 + k];
    assert_int_equal(p.task_of[2 * 3 + k], base);   /* activation=tanh */
    assert_int_equal(p.task_of[4 * 3 + k], base);   /* norm=none */
    assert_int_equal(p.task_of[7 * 3 + k], base);   /* optimizer=sgd */
    assert_int_not_equal(p.task_of[1 * 3 + k], base);
    assert_int_equal(p.tasks[p.task_of[1 * 3 + k]].seed, s.seeds[k]);
  }
  assert_int_not_equal(p.task_of[0], p.task_of[1]);  /* seeds differ */
  st_plan_free(&p);
  st_free(&s);
}

/* The arithmetic is in every unit, so it keys the runs: a strict plan
   has the fma plan's runs, each with other code. */
static void test_plan_arithmetic(void **state) {
  (void)state;
  StPlan p[2];
  load_text(tmp, "{\"base\": {\"hidden\": [8]}, \"arithmetic\": \"strict\", "
                 "\"vary\": {\"activation\": [\"relu\", \"tanh\"]}, \"seeds\": [1, 2]}");
  assert_int_equal(s.arith, ARITH_STRICT);
  for (int a = 0; a < 2; a++) {
    s.arith = a ? ARITH_FMA : ARITH_STRICT;
    if (st_plan(&s, BACKEND_TCC, 1, &p[a], err, sizeof err))
      fail_msg("%s", err);
  }
  assert_int_equal(p[0].ncodes, 2);
  assert_int_equal(p[0].ncodes, p[1].ncodes);
  assert_int_equal(p[0].ntasks, p[1].ntasks);
  for (int c = 0; c < p[0].ncodes; c++) {
    assert_string_not_equal(p[0].codes[c].hash.hex, p[1].codes[c].hash.hex);
    assert_null(strstr(p[0].codes[c].unit, "#define MLPC_FMA"));
    assert_non_null(strstr(p[1].codes[c].unit, "#define MLPC_FMA"));
  }
  for (int t = 0; t < p[0].ntasks; t++)
    assert_string_equal(p[0].tasks[t].settings, p[1].tasks[t].settings);
  st_plan_free(&p[0]);
  st_plan_free(&p[1]);
  st_free(&s);
}

/* A data set that does not fit, or is missing: status 2, the message
   naming the experiment that first needed it. */
static void test_plan_data_error(void **state) {
  (void)state;
  StPlan p;
  char text[512], want[1024];
  snprintf(text, sizeof text, "{\"base\": {\"hidden\": [8], \"input\": 100}, \"vary\": "
           "{\"activation\": [\"relu\", \"tanh\"]}, \"seeds\": [1]}");
  load_text(tmp, text);
  assert_int_equal(st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err), 2);
  assert_non_null(strstr(err, "experiment 'activation=relu': "));
  assert_non_null(strstr(err, "mnist: images have 784 features (28 x 28), the model's input "
                              "is 100"));
  st_free(&s);
  snprintf(text, sizeof text, "{\"base\": {\"hidden\": [8], \"data\": \"%s/none\"}, "
           "\"vary\": {\"activation\": [\"relu\", \"tanh\"]}, \"seeds\": [1]}", tmp);
  load_text(tmp, text);
  assert_int_equal(st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err), 2);
  snprintf(want, sizeof want, "experiment 'activation=relu': %s/none: no such directory: the "
           "data are named by the directory that holds their files (docs/data.md)", tmp);
  assert_string_equal(err, want);
  st_free(&s);
}

/* A training recipe that does not fit the data (a validation split of
   every sample, onecycle shorter than the run, onecycle over a run of no
   step): status 2 before any run, the message naming the experiment,
   the key and the reason; what fits the data plans. */
static void test_plan_recipe_error(void **state) {
  (void)state;
  static const struct {
    const char *vary, *said;
  } cases[] = {
    {"\"validation\": [100, 8000]", "experiment 'validation=8000': validation: holding out "
     "8000 of the 8000 training samples leaves none to train on; hold out fewer"},
    {"\"validation\": [0.5, 0.99999]", "experiment 'validation=0.99999': validation: holding "
     "out 8000 of the 8000 training samples"},
    {"\"schedule\": [\"none\", {\"type\": \"onecycle\", \"max_lr\": 0.1, \"total_steps\": 5}]",
     "experiment 'schedule=onecycle': schedule.total_steps: onecycle "
     "has 5 steps, and the run gives it 6; raise total_steps"},
    {"\"validation\": [7999], \"norm\": [\"batchnorm\"], \"schedule\": [{\"type\": "
     "\"onecycle\", \"max_lr\": 0.1}]", "experiment 'validation=7999, norm=batchnorm, "
     "schedule=onecycle': schedule: onecycle cycles over the run's training steps, and it "
     "takes none"},
  };
  StPlan p;
  char text[1024];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(text, sizeof text, "{\"base\": {\"hidden\": [8], \"epochs\": 2, \"max_batches\": "
             "3}, \"vary\": {%s}, \"mode\": \"grid\", \"seeds\": [1]}", cases[i].vary);
    load_text(tmp, text);
    assert_int_equal(st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err), 2);
    if (!strstr(err, cases[i].said))
      fail_msg("%s", err);
    st_free(&s);
  }
  snprintf(text, sizeof text, "{\"base\": {\"hidden\": [8], \"epochs\": 2, \"max_batches\": "
           "3}, \"vary\": {\"validation\": [7999], \"schedule\": [{\"type\": \"onecycle\", "
           "\"max_lr\": 0.1, \"total_steps\": 6}]}, \"mode\": \"grid\", \"seeds\": [1]}");
  load_text(tmp, text);
  if (st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err))
    fail_msg("%s", err); /* 1 training sample, 2 epochs of one step: fits 6 */
  st_plan_free(&p);
  st_free(&s);
}

/* The hash of data made by util_idx_set(dir, 3, 2, 4) or, of one
   channel, util_idx4_set: FNV-1a over each set's (n, rows, cols) as
   longs, pixels and labels, as plan.c hashed data before channels. */
#define ONE_CHANNEL_HASH "6cbf1fd45a336ed5"

/* A set of one channel hashes as before there were channels, in a file
   of 3 dimensions or of 4; three channels hash apart. */
static void test_plan_data_hash(void **state) {
  (void)state;
  static const int channels[] = {0, 1, 3};  /* 0: util_idx_set */
  char dir[600], text[1024], hash[3][17];
  StPlan p;
  for (int i = 0; i < 3; i++) {
    snprintf(dir, sizeof dir, "%s/hash%d", tmp, i);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(channels[i] ? util_idx4_set(dir, 3, 2, channels[i], 4)
                                 : util_idx_set(dir, 3, 2, 4), 0);
    snprintf(text, sizeof text, "{\"base\": {\"hidden\": [8], \"input\": %d, \"data\": "
             "\"%s\"}, \"vary\": {\"activation\": [\"relu\"]}, \"seeds\": [1]}",
             16 * (channels[i] ? channels[i] : 1), dir);
    load_text(tmp, text);
    if (st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err))
      fail_msg("%s", err);
    snprintf(hash[i], sizeof hash[i], "%s", p.tasks[0].data_hash.hex);
    st_plan_free(&p);
    st_free(&s);
  }
  assert_string_equal(hash[0], ONE_CHANNEL_HASH);
  assert_string_equal(hash[1], ONE_CHANNEL_HASH);
  assert_string_not_equal(hash[2], ONE_CHANNEL_HASH);
}

/* Models of one input count but other image shapes on one data set: each
   shape is checked (the data are not taken as checked for the first),
   and the message names the experiment it does not fit. */
static void test_plan_data_shape(void **state) {
  (void)state;
  char dir[600], text[1024], want[1024];
  StPlan p;
  snprintf(dir, sizeof dir, "%s/rgb", tmp);
  assert_int_equal(mkdir(dir, 0700), 0);
  assert_int_equal(util_idx4_set(dir, 3, 2, 3, 4), 0);
  const char *base = "\"base\": {\"input\": [3, 4, 4], \"layers\": [\"flatten\", "
                     "{\"type\": \"linear\", \"out\": 10}], \"data\": \"%s\"}";
  char b[800];
  snprintf(b, sizeof b, base, dir);
  snprintf(text, sizeof text, "{%s, \"vary\": {\"input\": [[3, 4, 4], [1, 8, 6]]}, "
           "\"seeds\": [1]}", b);
  load_text(tmp, text);
  assert_int_equal(st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err), 2);
  snprintf(want, sizeof want, "experiment 'input=[1,8,6]': %s: images are 3 x 4 x 4 (channels "
           "x height x width); the model's input is [1, 8, 6]", dir);
  assert_string_equal(err, want);
  st_free(&s);
  snprintf(text, sizeof text, "{%s, \"vary\": {\"batch_size\": [2, 3]}, \"seeds\": [1]}", b);
  load_text(tmp, text);
  if (st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err))
    fail_msg("%s", err);
  st_plan_free(&p);
  st_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_errors),
    cmocka_unit_test(test_seed_study),
    cmocka_unit_test(test_seed_study_adaptive),
    cmocka_unit_test(test_seed_grid),
    cmocka_unit_test(test_recipe_study),
    cmocka_unit_test(test_plan_recipe_error),
    cmocka_unit_test(test_dotted_and_names),
    cmocka_unit_test(test_base_path_and_defaults),
    cmocka_unit_test(test_override),
    cmocka_unit_test(test_plan_shares_runs),
    cmocka_unit_test(test_plan_arithmetic),
    cmocka_unit_test(test_plan_data_error),
    cmocka_unit_test(test_plan_data_hash),
    cmocka_unit_test(test_plan_data_shape),
  };
  return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
