/*
 * test_faults.c — what goes wrong around mlpc: memory, disk, files.
 *
 *   alloc      every allocation of the frontend and the code generator
 *              (Jansson's included) made to fail in turn, for every model
 *              file, each in a child process: each failure gives "out of
 *              memory" and no block is left held; one of Jansson's ends
 *              the process with that message and exit 1 (frontend/alloc.c
 *              says why); planning a study (its code generation) likewise,
 *              with status 1, ours
 *   disk full  writing a trainer or weights past a file-size limit (the
 *              way a full disk fails: EFBIG instead of ENOSPC): exit 1 with
 *              the reason, the file that was there before untouched, no
 *              temporary file left
 *   unwritable an output in a directory that does not exist, under a
 *              file, or not writable (run as nobody when the test runs as
 *              root, who writes anywhere); a cache directory that cannot
 *              be made; a device (/dev/null) is written in place, not
 *              replaced
 *   stdout full standard output on /dev/full, for every command path:
 *              exit 1 and a message, where /dev/null gives exit 0
 *   data gone  the data directory deleted while a run trains: the run
 *              finishes and saves its weights (data are read whole at the
 *              start); deleted before the run: exit 2, naming the file;
 *              larger than the memory available (pretended with
 *              MLPC_TEST_MEM_AVAILABLE): exit 2 with the figures
 *   numbers    values that are not finite: loaded (exit 2), or arising
 *              where the loss does not show them (a diverged run, exit 1,
 *              its --json stream ending with a line that says so)
 */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "../study/study.h"
#include "util.h"

static char tmp[64];

/* ---- allocation failures ---- */

/* The frontend on one model file: load and an override (--lr, or
   --epochs where onecycle sets the lr and refuses --lr). 0, or the
   failure's status with err set. */
static int front(const char *path, Model *m, char *err, size_t errlen) {
  int rc = fe_load(path, m, err, errlen);
  if (rc || fe_overridden(m, "optimizer.lr"))
    return rc ? rc : fe_override(m, "--epochs", "epochs", "3", err, errlen);
  return fe_override(m, "--lr", "optimizer.lr", "0.5", err, errlen);
}

/* The code generator on a loaded model: the size check, both backends'
   units, the model code, the trainer and the inference C for net. 0, or
   -1 with err set. */
static int back(const Model *m, const RtNet *net, char *err, size_t errlen) {
  static Ir ir;
  Buf b[6] = {{0}};
  ir_lower(m, &ir);
  if (emit_check_size(&ir, err, errlen))
    return -1;
  int rc = emit_unit(&ir, BACKEND_GCC, &b[0]) | emit_unit(&ir, BACKEND_TCC, &b[1]) |
           emit_model(&ir, &b[2]) | emit_trainer(&ir, &b[3]) |
           emit_inference(&ir, net, "p.h", &b[4], &b[5], err, errlen);
  for (int i = 0; i < 6; i++)
    fe_free(b[i].buf);
  if (rc)
    snprintf(err, errlen, "out of memory generating the code");
  return rc;
}

/* A model file's net, compiled by tcc, for the inference C. */
static Jit *compile(const Model *m) {
  static Ir ir;
  char err[1024];
  Buf b = {0};
  ir_lower(m, &ir);
  emit_unit(&ir, BACKEND_TCC, &b);
  Jit *j = jit_tcc(b.buf, err, sizeof err);
  fe_free(b.buf);
  assert_non_null(j);
  rt_init(jit_net(j), 1);
  return j;
}

/* Whether a run with the k-th allocation failing ended well: stopped with
   "out of memory" (or, k not reached, did not stop), holding no block it
   did not hold before; if not, says why in err. */
static int clean(int rc, long k, long held, char *err, size_t errlen) {
  int reached = fe_alloc_calls() >= k;
  fe_alloc_fail_at(0);
  if (fe_alloc_live() == held && (reached ? rc && strstr(err, "out of memory") : !rc))
    return 1;
  size_t n = strlen(err);
  snprintf(err + n, errlen - n, " (allocation %ld: status %d, %ld block(s) leaked)", k, rc,
           fe_alloc_live() - held);
  return 0;
}

/* The frontend with its k-th allocation failing, in a child process:
   exit 0 when it ended well, 3 (saying why) when not; Jansson's
   allocator may end it first, with exit 1. */
static int front_child(const char *path, long k, const char *log) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    static Model m;
    char err[2048] = "";
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    long held = fe_alloc_live();
    fe_alloc_fail_at(k);
    int ok = clean(front(path, &m, err, sizeof err), k, held, err, sizeof err);
    if (!ok)
      fprintf(stderr, "%s\n", err);
    fflush(stderr);
    _exit(ok ? 0 : 3);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Fails each allocation on path in turn: the frontend's each in a child
   process (Jansson's allocator ends the process), the code generator's
   in this one. Counts the clean errors returned and the ends. */
static void fail_each(const char *path, long *returned, long *ended) {
  static Model m;
  char err[2048];
  const char *log = util_path(tmp, "child-stderr");
  long held = fe_alloc_live();
  fe_alloc_fail_at(0);
  assert_int_equal(front(path, &m, err, sizeof err), 0);
  long nfront = fe_alloc_calls();
  Jit *j = compile(&m);
  fe_alloc_fail_at(0);
  assert_int_equal(back(&m, jit_net(j), err, sizeof err), 0);
  long nback = fe_alloc_calls();
  assert_int_equal(fe_alloc_live(), held);
  for (long k = 1; k <= nfront; k++) {
    int code = front_child(path, k, log);
    size_t len;
    char *msg = util_slurp(log, &len);
    if (code == 0 && !*msg)
      ++*returned;
    else if (code == 1 && !strcmp(msg, "mlpc: error: out of memory (reading JSON)\n"))
      ++*ended;
    else
      fail_msg("%s: allocation %ld of the frontend's %ld: exit %d\n%s", path, k, nfront, code,
               msg);
    free(msg);
  }
  for (long k = 1; k <= nback; k++) {
    err[0] = 0;
    fe_alloc_fail_at(k);
    if (!clean(back(&m, jit_net(j), err, sizeof err), k, held, err, sizeof err))
      fail_msg("%s: %s", path, err);
    ++*returned;
  }
  jit_free(j);
}

/* Every model file, every allocation. */
static void test_alloc(void **state) {
  (void)state;
  char *files[UTIL_MAX_FILES];
  int n = util_models(files);
  long returned = 0, ended = 0;
  for (int i = 0; i < n; i++) {
    fail_each(files[i], &returned, &ended);
    free(files[i]);
  }
  print_message("  %ld allocations failed in turn over %d model files: %ld returned "
                "'out of memory', %ld ended in Jansson's allocator; no leak\n",
                returned + ended, n, returned, ended);
}

/* A study on tmp/tiny varying the activation, one row the base's; its
   path. */
static const char *tiny_study(void) {
  char text[512];
  const char *path = util_path(tmp, "study.json");
  int n = snprintf(text, sizeof text, "{\"name\": \"tiny\", \"base\": {\"input\": 16, "
                   "\"hidden\": [8], \"activation\": \"relu\", \"data\": \"%s\"}, "
                   "\"vary\": {\"activation\": [\"tanh\", \"relu\"]}, \"seeds\": [1, 2]}\n",
                   util_path(tmp, "tiny"));
  assert_int_equal(util_write(path, text, n), 0);
  return path;
}

/* A study's plan with each allocation of its code generation failing in
   turn: status 1 (ours, not the user's) and "out of memory", nothing
   held. */
static void test_alloc_plan(void **state) {
  (void)state;
  static Study s;
  StPlan p;
  char err[1024];
  if (st_load(tiny_study(), &s, err, sizeof err))
    fail_msg("%s", err);
  long held = fe_alloc_live();
  fe_alloc_fail_at(0);
  assert_int_equal(st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err), 0);
  long n = fe_alloc_calls();
  assert_int_equal(p.ncodes, 2);
  st_plan_free(&p);
  assert_int_equal(fe_alloc_live(), held);
  for (long k = 1; k <= n; k++) {
    err[0] = 0;
    fe_alloc_fail_at(k);
    int rc = st_plan(&s, BACKEND_TCC, 1, &p, err, sizeof err);
    if (!clean(rc, k, held, err, sizeof err) || rc != 1)
      fail_msg("the plan of %s: %s", s.name, err);
  }
  print_message("  %ld allocations of a study's plan failed in turn: each returned "
                "'out of memory'; no leak\n", n);
  st_free(&s);
}

/* The frontend reports running out of memory apart from bad input. */
static void test_alloc_status(void **state) {
  (void)state;
  static Model m;
  char err[512];
  fe_alloc_fail_at(1);
  int rc = fe_load("models/bn_relu.json", &m, err, sizeof err);
  fe_alloc_fail_at(0);
  assert_int_equal(rc, FE_NO_MEMORY);
  assert_string_equal(err, "models/bn_relu.json: error: out of memory reading the model");
  Buf b = {0};
  fe_alloc_fail_at(1);
  emitf(&b, "%d", 1);
  fe_alloc_fail_at(0);
  emitf(&b, "%d", 2); /* ignored: the buffer stays failed */
  assert_true(b.oom && b.len == 0 && !b.buf);
}

/* ---- running mlpc ---- */

typedef struct {
  const char *cwd;      /* NULL: the source directory                  */
  long fsize;           /* file-size limit in bytes, 0: none           */
  const char *out;      /* stdout, NULL: tmp/stdout                    */
  int nobody;           /* as nobody when root (util_drop_root)        */
} Env;

/* Runs argv with env, stdout and stderr to files in tmp; its exit status. */
static int run(const char *const *argv, const Env *env) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(env && env->out ? env->out : util_path(tmp, "stdout"),
                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(util_path(tmp, "stderr"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1), dup2(err, 2);
    if ((env && env->cwd && chdir(env->cwd)) || (env && env->nobody && util_drop_root()))
      _exit(126);
    if (env && env->fsize) {
      signal(SIGXFSZ, SIG_IGN); /* writes fail with EFBIG instead */
      struct rlimit r = {(rlim_t)env->fsize, (rlim_t)env->fsize};
      setrlimit(RLIMIT_FSIZE, &r);
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  int status;
  assert_true(pid > 0 && waitpid(pid, &status, 0) == pid);
  if (!WIFEXITED(status))
    fail_msg("%s was killed by signal %d", argv[0], WTERMSIG(status));
  return WEXITSTATUS(status);
}

/* Fails unless stderr holds want. */
static void says(const char *want) {
  size_t len;
  char *msg = util_slurp(util_path(tmp, "stderr"), &len);
  if (!msg || !strstr(msg, want))
    fail_msg("stderr lacks '%s':\n%s", want, msg ? msg : "(none)");
  free(msg);
}

/* Whether a file holds exactly text. */
static int holds(const char *path, const char *text) {
  size_t len;
  char *got = util_slurp(path, &len);
  int same = got && len == strlen(text) && !memcmp(got, text, len);
  free(got);
  return same;
}

/* Fails if dir holds a file whose name contains ".tmp". */
static void no_temporaries(const char *dir) {
  char *names[UTIL_MAX_FILES];
  int n = util_list(dir, ".tmp", names, 0);
  for (int i = 0; i < n; i++)
    free(names[i]);
  if (n)
    fail_msg("%s: %d temporary file(s) left", dir, n);
}

/* Writes a data set of n 4x4 images (train and t10k alike) to tmp/NAME;
   the first pixel of every image is 0. */
static void tiny_data(const char *name, int n) {
  mkdir(util_path(tmp, name), 0700);
  assert_int_equal(util_idx_set(util_path(tmp, name), n, n, 4), 0);
}

/* A 16-8-10 model on tmp/tiny; its path. */
static const char *tiny_model(void) {
  char text[512];
  const char *path = util_path(tmp, "tiny.json");
  int n = snprintf(text, sizeof text, "{\"input\": 16, \"hidden\": [8], \"epochs\": 2, "
                   "\"data\": \"%s\"}\n", util_path(tmp, "tiny"));
  assert_int_equal(util_write(path, text, n), 0);
  return path;
}

/* ---- the disk ---- */

/* A trainer or weights that do not fit: the old file stays whole. */
static void test_disk_full(void **state) {
  (void)state;
  const char *old = "what was there before\n", *out = util_path(tmp, "t.c"),
             *w = util_path(tmp, "w.safetensors");
  Env full = {NULL, 4096, NULL, 0};
  assert_int_equal(util_write(out, old, strlen(old)), 0);
  const char *emit[] = {MLPC_BIN, "models/bn_relu.json", "--emit", out, NULL};
  assert_int_equal(run(emit, &full), 1);
  says("mlpc: error: ");
  says("t.c: cannot write: File too large");
  assert_true(holds(out, old));
  no_temporaries(tmp);

  assert_int_equal(util_write(w, old, strlen(old)), 0);
  const char *save[] = {MLPC_BIN, tiny_model(), "--run", "--backend", "tcc",
                        "--save-weights", w, NULL};
  full.fsize = 1024;
  assert_int_equal(run(save, &full), 1);
  says("w.safetensors: cannot write: File too large");
  assert_true(holds(w, old));
  no_temporaries(tmp);
  assert_int_equal(run(save, NULL), 0); /* and with room, it is written */
  assert_false(holds(w, old));
}

/* Outputs where no file can be made: refused before any work. */
static void test_unwritable(void **state) {
  (void)state;
  const char *targets[][2] = {  /* refused before any work (cli.c), exit 2 */
    {"/nonexistent/t.c", "'/nonexistent/t.c': no directory '/nonexistent' to write it in"},
    {"/dev/null/t.c", "'/dev/null/t.c': no directory '/dev/null' to write it in"},
  };
  for (int i = 0; i < 2; i++) {
    const char *emit[] = {MLPC_BIN, "models/bn_relu.json", "--emit", targets[i][0], NULL};
    const char *save[] = {MLPC_BIN, tiny_model(), "--run", "--backend", "tcc",
                          "--save-weights", targets[i][0], NULL};
    assert_int_equal(run(emit, NULL), 2);
    says(targets[i][1]);
    assert_int_equal(run(save, NULL), 2);
    says(targets[i][1]);
  }
  /* a device is written in place, never renamed over (through a link
     in tmp, so that a failure replaces the link, not the device) */
  const char *dev = util_path(tmp, "null");
  struct stat st;
  assert_int_equal(symlink("/dev/null", dev), 0);
  const char *emit[] = {MLPC_BIN, "models/bn_relu.json", "--emit", dev, NULL};
  const char *save[] = {MLPC_BIN, tiny_model(), "--run", "--backend", "tcc", "--save-weights",
                        dev, NULL};
  assert_int_equal(run(emit, NULL), 0);
  assert_int_equal(run(save, NULL), 0);
  assert_true(lstat(dev, &st) == 0 && S_ISLNK(st.st_mode));
  /* the gcc backend's cache, where out/ is a file */
  const char *dir = util_path(tmp, "cwd");
  char model[4096];
  mkdir(dir, 0700);
  assert_int_equal(util_write(util_path(tmp, "cwd/out"), "x", 1), 0);
  snprintf(model, sizeof model, "%s/%s", MLPC_SOURCE_DIR, "models/bn_relu.json");
  const char *gcc[] = {MLPC_BIN, model, "--run", "--backend", "gcc", NULL};
  Env in_dir = {dir, 0, NULL, 0};
  assert_int_equal(run(gcc, &in_dir), 1);
  says("mlpc: error: out/cache: cannot create directory: Not a directory");
}

/* An output in a directory that may be entered but not written: mlpc
   runs as nobody when the test runs as root (who writes anywhere), with
   the temporary directory opened to others for it. */
static void test_read_only_dir(void **state) {
  (void)state;
  const char *ro = util_path(tmp, "ro"), *emit[] = {MLPC_BIN, "models/bn_relu.json", "--emit",
                                               util_path(tmp, "ro/t.c"), NULL};
  Env nobody = {NULL, 0, NULL, 1};
  assert_int_equal(mkdir(ro, 0555), 0);
  assert_int_equal(chmod(tmp, 0711), 0);
  int status = run(emit, &nobody);
  assert_int_equal(chmod(tmp, 0700), 0);
  assert_int_equal(status, 1);
  says("ro/t.c: cannot write: Permission denied");
  assert_int_not_equal(access(util_path(tmp, "ro/t.c"), F_OK), 0);
}

/* Standard output on a full device: every command path (help, version,
   the IR, a run in text and JSON, a study and its plan) exits 1 saying
   so, where output to /dev/null exits 0. */
static void test_stdout_full(void **state) {
  (void)state;
  char model[200], study[200], db[200], out[200];  /* util_path's ring is reused */
  snprintf(model, sizeof model, "%s", tiny_model());
  snprintf(study, sizeof study, "%s", tiny_study());
  snprintf(db, sizeof db, "%s", util_path(tmp, "full.sqlite"));
  snprintf(out, sizeof out, "%s", util_path(tmp, "full"));
  const char *const cmds[][10] = {
    {MLPC_BIN, "--help"},
    {MLPC_BIN, "--version"},
    {MLPC_BIN, model, "--dump-ir"},
    {MLPC_BIN, model, "--run", "--backend", "tcc"},
    {MLPC_BIN, model, "--run", "--backend", "tcc", "--json"},
    {MLPC_BIN, study, "--dump-study"},
    {MLPC_BIN, study, "--run", "--backend", "tcc", "--db", db, "--out", out},
  };
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    Env null = {NULL, 0, "/dev/null", 0}, full = {NULL, 0, "/dev/full", 0};
    int rc = run(cmds[i], &null);
    if (rc)
      fail_msg("%s %s: exit status %d to /dev/null", cmds[i][1], cmds[i][2], rc);
    assert_int_equal(run(cmds[i], &full), 1);
    says("mlpc: error: cannot write the standard output: ");
  }
}

/* ---- the data ---- */

/* Reads one line from fd into buf; its length, 0 at the end. */
static size_t read_line(int fd, char *buf, size_t len) {
  size_t n = 0;
  while (n + 1 < len && read(fd, buf + n, 1) == 1)
    if (buf[n++] == '\n')
      break;
  buf[n] = 0;
  return n;
}

/* The data directory deleted after the first epoch: the run goes on. */
static void test_data_gone(void **state) {
  (void)state;
  char model[512], line[512];
  const char *w = util_path(tmp, "gone.safetensors");
  tiny_data("moved", 1000); /* epochs long enough to stop the run in */
  int n = snprintf(model, sizeof model, "{\"input\": 16, \"hidden\": [256, 256], \"epochs\": 3,"
                   " \"batch_size\": 2, \"data\": \"%s\"}\n", util_path(tmp, "moved"));
  assert_int_equal(util_write(util_path(tmp, "gone.json"), model, n), 0);
  const char *argv[] = {MLPC_BIN, util_path(tmp, "gone.json"), "--run", "--backend", "tcc",
                        "--json", "--save-weights", w, NULL};
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(fds[1]);
  assert_true(read_line(fds[0], line, sizeof line) > 0); /* epoch 1 */
  assert_non_null(strstr(line, "\"epoch\": 1"));
  int status;
  kill(pid, SIGSTOP);
  assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
  assert_true(WIFSTOPPED(status)); /* still training: the rest is not vacuous */
  util_rmtree(util_path(tmp, "moved"));
  assert_int_not_equal(access(util_path(tmp, "moved"), F_OK), 0);
  kill(pid, SIGCONT);
  int later = 0;
  while (read_line(fds[0], line, sizeof line))
    later += strstr(line, "\"epoch\"") != NULL;
  close(fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  assert_int_equal(later, 2);
  assert_int_equal(access(w, R_OK), 0);

  const char *again[] = {MLPC_BIN, util_path(tmp, "gone.json"), "--run", "--backend", "tcc", NULL};
  assert_int_equal(run(again, NULL), 2);
  says("moved: no such directory");
}

/* Data larger than the memory available (pretended): exit 2 with the
   figures, before the data are loaded. */
static void test_data_memory(void **state) {
  (void)state;
  const char *argv[] = {MLPC_BIN, tiny_model(), "--run", "--backend", "tcc", NULL};
  setenv("MLPC_TEST_MEM_AVAILABLE", "300", 1);
  int status = run(argv, NULL);
  unsetenv("MLPC_TEST_MEM_AVAILABLE");
  assert_int_equal(status, 2);
  says("tiny/train-images-idx3-ubyte: decoded, it takes 545 bytes (0.0 MiB) of memory, more "
       "than the 300 bytes (0.0 MiB) available (MemAvailable); refused before loading");
}

/* ---- numbers ---- */

/* Writes a 16-8-10 model on tmp/tiny with the given keys (JSON, after a
   comma), and weights for it from one epoch, with element k of tensor
   name set to v; the model's path (util_path's: use it at once). */
static const char *poked_model(const char *file, const char *keys, const char *name, long k,
                               double v) {
  char text[512];
  const char *path = util_path(tmp, file), *w = util_path(tmp, "poked.safetensors");
  int n = snprintf(text, sizeof text, "{\"input\": 16, \"hidden\": [8], \"epochs\": 2, "
                   "\"data\": \"%s\", %s}\n", util_path(tmp, "tiny"), keys);
  assert_int_equal(util_write(path, text, n), 0);
  const char *save[] = {MLPC_BIN, path, "--run", "--backend", "tcc", "--epochs", "1",
                        "--save-weights", w, NULL};
  assert_int_equal(run(save, NULL), 0);
  assert_int_equal(util_poke_weight(w, name, k, v), 0);
  return path;
}

/* The last line of stdout, which must hold each of the strings given. */
static void last_line_says(const char *want, ...) {
  size_t len;
  char *out = util_slurp(util_path(tmp, "stdout"), &len), *last = out;
  for (char *p = out; p && *p; p++)
    if (*p == '\n' && p[1])
      last = p + 1;
  va_list ap;
  va_start(ap, want);
  for (const char *w = want; w; w = va_arg(ap, const char *))
    if (!last || !strstr(last, w))
      fail_msg("the last line of stdout lacks '%s':\n%s", w, last ? last : "(none)");
  va_end(ap);
  free(out);
}

/* Values that are not finite: in a weights file, bad input (exit 2,
   naming the tensor and element); arising in training where the loss
   cannot see them (an optimizer's state beside a weight whose input is
   always 0), or in the test pass only (BatchNorm's running mean), a
   diverged run: exit 1, no weights saved, and under --json a last line
   that says where and why. */
static void test_nonfinite(void **state) {
  (void)state;
  char w[200], out[200];
  snprintf(w, sizeof w, "%s", util_path(tmp, "poked.safetensors"));
  snprintf(out, sizeof out, "%s", util_path(tmp, "never.safetensors"));
  const char *m = poked_model("nan.json", "\"norm\": \"none\"", "fc1.weight", 3, NAN);
  const char *load[] = {MLPC_BIN, m, "--run", "--backend", "tcc", "--load-weights", w, NULL};
  assert_int_equal(run(load, NULL), 2);
  says("poked.safetensors: fc1.weight: element 3 is nan (not finite: 1 of its 128 elements)");

  /* fc1.weight (8, 16): element 0 multiplies pixel 0, always 0; Adam's
     weight decay squares 0.01 * 3e38, so its exp_avg_sq becomes inf */
  m = poked_model("hidden.json", "\"optimizer\": {\"type\": \"adam\", \"weight_decay\": 0.01}",
                  "fc1.weight", 0, 3e38);
  const char *json[] = {MLPC_BIN, m, "--run", "--backend", "tcc", "--load-weights", w,
                        "--json", "--save-weights", out, NULL};
  assert_int_equal(run(json, NULL), 1);
  says("mlpc: error: training diverged at epoch 1, step 2: after the epoch's last step, "
       "fc1.weight.exp_avg_sq[0] is inf (not finite: 1 of its 128 elements); the loss was "
       "finite at every step");
  last_line_says("{\"summary\": true, \"diverged\": true, \"epoch\": 1, \"step\": 2, "
                 "\"message\": \"training diverged at epoch 1, step 2: after the epoch's last "
                 "step, fc1.weight.exp_avg_sq[0] is inf", "\"epochs\": 0}", NULL);
  assert_int_not_equal(access(out, F_OK), 0);

  m = poked_model("test.json", "\"norm\": \"batchnorm\", \"activation\": \"leaky_relu\"",
                  "norm1.running_mean", 0, -3e38);
  for (int k = 1; k < 8; k++)
    assert_int_equal(util_poke_weight(w, "norm1.running_mean", k, -3e38), 0);
  json[1] = m;
  assert_int_equal(run(json, NULL), 1);
  says("mlpc: error: training diverged at epoch 1, in the test pass: the test loss is not "
       "finite");
  last_line_says("\"diverged\": true, \"epoch\": 1, \"step\": null, \"message\": "
                 "\"training diverged at epoch 1, in the test pass", NULL);
  assert_int_not_equal(access(out, F_OK), 0);
}

static int setup(void **state) {
  (void)state;
  if (util_mkdtemp("faults", tmp, sizeof tmp))
    return -1;
  tiny_data("tiny", 33);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  chmod(util_path(tmp, "ro"), 0700);
  util_rmtree(tmp);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_alloc_status),
    cmocka_unit_test(test_alloc),
    cmocka_unit_test(test_alloc_plan),
    cmocka_unit_test(test_disk_full),
    cmocka_unit_test(test_unwritable),
    cmocka_unit_test(test_read_only_dir),
    cmocka_unit_test(test_stdout_full),
    cmocka_unit_test(test_data_gone),
    cmocka_unit_test(test_data_memory),
    cmocka_unit_test(test_nonfinite),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
