/*
 * test_gcc.c — the gcc backend when gcc is missing, fails, or misbehaves,
 * and its cache directory.
 *
 * Stand-in compilers are small shell scripts named gcc, put first on
 * PATH: one that fails with a message, one that kills itself, one that
 * writes garbage for the object, one that is not executable, and one that
 * records its arguments and runs the real gcc. Each failure must give its
 * own clear message (and, through mlpc, exit 1), never a crash.
 *
 * The cache: MLPC_GCC_EXTRA_FLAGS reaches gcc as separate arguments,
 * without a shell, and takes part in the object's name; a cache directory
 * that is not private is refused; a damaged cached object is rebuilt;
 * temporaries whose process is gone are removed, others' kept.
 *
 * mlpc killed (SIGKILL, SIGTERM; a run and a study, with gcc and tiered)
 * while gcc runs cc1, under a stand-in that also starts a child that would
 * never end: every process mlpc started is gone soon after, gcc's
 * children included.
 *
 * A build in steps (jit_build_start, for tiered runs): it says it is
 * still building while gcc runs, and stopped then, it leaves no process
 * and no temporary; gcc's keeper holds none of mlpc's descriptors (a
 * study's workers read end of file on pipes the parent closes); a build
 * that may only use the cache runs no gcc at all.
 *
 * Which units inline the kernels (emit_inlines), and how the others bind
 * mlpc's copies (jit_bind): by name, precision and arithmetic.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

#define MARK "/tmp/mlpc-pwned"

static char tmp[64];
static char *path0;        /* PATH as the test found it               */
static char *extra0;       /* MLPC_GCC_EXTRA_FLAGS as found, or NULL  */
static char *src;          /* a small model's gcc unit                */

/* Puts MLPC_GCC_EXTRA_FLAGS back as the test found it. */
static void restore_extra(void) {
  if (extra0)
    setenv("MLPC_GCC_EXTRA_FLAGS", extra0, 1);
  else
    unsetenv("MLPC_GCC_EXTRA_FLAGS");
}

/* Writes a stand-in gcc into tmp/NAME/gcc with the given mode; returns
   the directory. */
static const char *fake_gcc(const char *name, const char *script, mode_t mode) {
  const char *dir = util_path(tmp, name);
  char file[256];
  mkdir(dir, 0700);
  snprintf(file, sizeof file, "%s/gcc", dir);
  assert_int_equal(util_write(file, script, strlen(script)), 0);
  assert_int_equal(chmod(file, mode), 0);
  return dir;
}

/* Compiles src with PATH set to bindir alone; NULL with the message in
   err on failure. */
static Jit *compile_with(const char *bindir, const char *cache, char *err, size_t len) {
  setenv("PATH", bindir, 1);
  Jit *j = jit_gcc(src, cache, err, len);
  setenv("PATH", path0, 1);
  return j;
}

/* Compiling with bindir's gcc fails with a message holding want. */
static void fails_with(const char *bindir, const char *want) {
  char err[2048] = "";
  Jit *j = compile_with(bindir, util_path(tmp, "cache-fail"), err, sizeof err);
  if (j)
    fail_msg("compiled, expected: %s", want);
  if (!strstr(err, want))
    fail_msg("message lacks '%s': %s", want, err);
  print_message("  %s\n", err);
}

/* ---- gcc missing or failing ---- */

static void test_missing(void **state) {
  (void)state;
  fails_with(util_path(tmp, "empty"), "cannot run gcc: not found on PATH (install gcc, or use "
             "--backend tcc)");
  fails_with("/nonexistent", "cannot run gcc: not found on PATH");
}

static void test_not_executable(void **state) {
  (void)state;
  fails_with(fake_gcc("noexec", "#!/bin/sh\nexit 0\n", 0644),
             "cannot run gcc: Permission denied");
}

static void test_fails(void **state) {
  (void)state;
  const char *dir = fake_gcc("fails", "#!/bin/sh\necho 'x.c:1:2: error: no good' >&2\n"
                             "echo 'more' >&2\nexit 3\n", 0755);
  fails_with(dir, "gcc failed (exit 3) on ");
  fails_with(dir, ".c: x.c:1:2: error: no good; all its messages are in ");
}

static void test_killed(void **state) {
  (void)state;
  fails_with(fake_gcc("killed", "#!/bin/sh\nkill -9 $$\n", 0755),
             "gcc was killed by signal 9 (Killed) compiling ");
}

/* Exit 0 but no object, or garbage for one. */
static void test_bad_object(void **state) {
  (void)state;
  fails_with(fake_gcc("silent", "#!/bin/sh\nexit 0\n", 0755), "but wrote no object");
  fails_with(fake_gcc("garbage", "#!/bin/sh\nwhile [ \"$1\" != -o ]; do shift; done\n"
                      "echo 'not an object' > \"$2\"\n", 0755), "cannot load: ");
}

/* Through mlpc: a clear message and exit 1 (run in tmp, so that no
   cached object spares it the compiler). */
static void test_command(void **state) {
  (void)state;
  const char *argv[] = {MLPC_BIN, MLPC_SOURCE_DIR "/models/bn_relu.json", "--run",
                        "--backend", "gcc", NULL};
  setenv("PATH", "/nonexistent", 1);
  assert_int_equal(chdir(tmp), 0);
  int status = util_run(argv, NULL, util_path(tmp, "stderr"));
  assert_int_equal(chdir(MLPC_SOURCE_DIR), 0);
  setenv("PATH", path0, 1);
  assert_int_equal(status, 1);
  size_t len;
  char *msg = util_slurp(util_path(tmp, "stderr"), &len);
  assert_non_null(strstr(msg, "mlpc: error: cannot run gcc: not found on PATH"));
  free(msg);
}

/* ---- flags and the cache ---- */

/* MLPC_GCC_EXTRA_FLAGS reaches gcc word by word, untouched by any shell. */
static void test_extra_flags(void **state) {
  (void)state;
  char script[512], err[2048], want[1024];
  snprintf(script, sizeof script, "#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\n"
           "exec /usr/bin/env PATH=\"%s\" gcc \"$@\"\n", util_path(tmp, "args"), path0);
  const char *dir = fake_gcc("record", script, 0755);
  setenv("MLPC_GCC_EXTRA_FLAGS", " -DX=1\t-DY=$(touch${IFS}" MARK ");`id`  -Wno-unused ", 1);
  Jit *j = compile_with(dir, util_path(tmp, "cache-extra"), err, sizeof err);
  restore_extra();
  if (!j)
    fail_msg("%s", err);
  jit_free(j);
  size_t len, n = 0;
  char *args = util_slurp(util_path(tmp, "args"), &len);
  for (const char *const *f = jit_gcc_flags; *f; f++)
    n += snprintf(want + n, sizeof want - n, "%s\n", *f);
  snprintf(want + n, sizeof want - n, "-DX=1\n-DY=$(touch${IFS}" MARK ");`id`\n-Wno-unused\n");
  if (strncmp(args, want, strlen(want)))
    fail_msg("gcc's arguments:\n%swant them to start:\n%s", args, want);
  assert_int_not_equal(access(MARK, F_OK), 0);
  free(args);
}

/* The extra flags name another object; the same flags find it again. */
static void test_cache_key(void **state) {
  (void)state;
  char err[2048];
  const char *cache = util_path(tmp, "cache-key");
  char more[1100];
  snprintf(more, sizeof more, "%s -DMLPC_TEST_FLAG=1", extra0 ? extra0 : "");
  Jit *a = jit_gcc(src, cache, err, sizeof err);
  assert_non_null(a);
  setenv("MLPC_GCC_EXTRA_FLAGS", more, 1);
  Jit *b = jit_gcc(src, cache, err, sizeof err), *c = jit_gcc(src, cache, err, sizeof err);
  restore_extra();
  Jit *d = jit_gcc(src, cache, err, sizeof err);
  assert_true(b && c && d);
  assert_false(jit_cached(a));
  assert_false(jit_cached(b));
  assert_true(jit_cached(c));
  assert_true(jit_cached(d));
  jit_free(a), jit_free(b), jit_free(c), jit_free(d);
  char many[256] = "";
  for (int i = 0; i < 17; i++)
    strcat(many, "-DA ");
  setenv("MLPC_GCC_EXTRA_FLAGS", many, 1);
  assert_null(jit_gcc(src, cache, err, sizeof err));
  restore_extra();
  assert_string_equal(err, "MLPC_GCC_EXTRA_FLAGS: more than 16 flags");
}

/* A cache directory others can write to, or another's, is refused; so
   is a file in its place. A new one is created private. */
static void test_private(void **state) {
  (void)state;
  char err[2048];
  struct stat st;
  const char *cache = util_path(tmp, "cache-private");
  Jit *j = jit_gcc(src, cache, err, sizeof err);
  assert_non_null(j);
  jit_free(j);
  assert_int_equal(stat(cache, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(chmod(cache, 0777), 0);
  assert_null(jit_gcc(src, cache, err, sizeof err));
  assert_non_null(strstr(err, "the cache directory is not private (owner uid"));
  assert_non_null(strstr(err, "mode 777"));
  assert_int_equal(chmod(cache, 0700), 0);
  if (geteuid() == 0 && chown(cache, 65534, 65534) == 0) {
    assert_null(jit_gcc(src, cache, err, sizeof err));
    assert_non_null(strstr(err, "not private (owner uid 65534"));
  }
  assert_int_equal(util_write(util_path(tmp, "file"), "x", 1), 0);
  assert_null(jit_gcc(src, util_path(tmp, "file"), err, sizeof err));
  assert_non_null(strstr(err, "file: not a directory"));
}

/* A cached object that no longer loads is compiled again. */
static void test_damaged(void **state) {
  (void)state;
  char err[2048], so[256];
  const char *cache = util_path(tmp, "cache-damaged");
  Jit *j = jit_gcc(src, cache, err, sizeof err);
  assert_non_null(j);
  jit_free(j);
  char *names[UTIL_MAX_FILES];
  assert_int_equal(util_list(cache, ".so", names, 0), 1);
  snprintf(so, sizeof so, "%s", names[0]);
  free(names[0]);
  assert_int_equal(util_write(so, "damaged", 7), 0);
  j = jit_gcc(src, cache, err, sizeof err);
  if (!j)
    fail_msg("%s", err);
  assert_false(jit_cached(j));
  assert_non_null(jit_net(j)->train_step);
  jit_free(j);
}

/* Temporaries left by processes that are gone are removed when the cache
   is next used; those of a live process, and every other file, stay. */
static void test_stale_temporaries(void **state) {
  (void)state;
  char err[2048], dead[32], live[32];
  const char *cache = util_path(tmp, "cache-stale");
  pid_t gone = fork();
  if (gone == 0)
    _exit(0);
  assert_int_equal(waitpid(gone, NULL, 0), gone);
  snprintf(dead, sizeof dead, "%ld", (long)gone);
  snprintf(live, sizeof live, "%ld", (long)getppid());
  const char *const files[][2] = {  /* name, whether it stays */
    {"0123456789abcdef.%s.so", "dead"}, {"0123456789abcdef.c.%s.tmp", "dead"},
    {"0123456789abcdef.%s.so", "live"}, {"0123456789abcdef.c.%s.tmp", "live"},
    {"0123456789abcdef.so", ""}, {"0123456789abcdef.c", ""}, {"0123456789abcdef.log", ""},
    {"notes.%s.so", "dead"}, {"0123456789abcdef.%sx.so", "dead"},
  };
  enum { N = sizeof files / sizeof files[0] };
  char paths[N][300];
  mkdir(cache, 0700);
  for (int i = 0; i < N; i++) {
    char name[64];
    snprintf(name, sizeof name, files[i][0], strcmp(files[i][1], "dead") ? live : dead);
    snprintf(paths[i], sizeof paths[i], "%s/%s", cache, name);
    assert_int_equal(util_write(paths[i], "x", 1), 0);
  }
  Jit *j = jit_gcc(src, cache, err, sizeof err);
  if (!j)
    fail_msg("%s", err);
  jit_free(j);
  for (int i = 0; i < N; i++)
    if ((access(paths[i], F_OK) == 0) != (i >= 2))
      fail_msg("%s: %s", paths[i], i < 2 ? "a dead process's temporary was left" : "removed");
}

/* ---- mlpc killed while gcc compiles ---- */

/* The parent and the name of process pid (from /proc); 0 if gone. */
static pid_t proc_parent(pid_t pid, char *comm, size_t len) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = 0;
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  long ppid = 0;
  if (!open || !close || sscanf(close + 1, " %*c %ld", &ppid) != 1)
    return 0;
  snprintf(comm, len, "%.*s", (int)(close - open - 1), open + 1);
  return (pid_t)ppid;
}

/* Whether a descendant of root is named comm. */
static int has_descendant(pid_t root, const char *comm) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  char name[64];
  int found = 0;
  while (d && !found && (e = readdir(d))) {
    pid_t p = (pid_t)atol(e->d_name);
    if (p <= 0 || !proc_parent(p, name, sizeof name) || strcmp(name, comm))
      continue;
    for (pid_t q = p; q > 1 && !found; q = proc_parent(q, name, sizeof name))
      found = q == root;
  }
  if (d)
    closedir(d);
  return found;
}

/* Kills this process's children, reparented orphans included. */
static void kill_children(void) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  char name[64];
  while (d && (e = readdir(d))) {
    pid_t p = (pid_t)atol(e->d_name);
    if (p > 0 && proc_parent(p, name, sizeof name) == getpid())
      kill(p, SIGKILL);
  }
  if (d)
    closedir(d);
}

/* Reaps what is left of a killed mlpc (this process is the subreaper of
   its orphans); fails if anything is still alive after a generous bound. */
static void expect_no_descendants(const char *what) {
  for (int waited = 0;; waited++) {
    pid_t p = waitpid(-1, NULL, WNOHANG);
    if (p < 0 && errno == ECHILD)
      return;
    if (p == 0 && waited > 6000) {
      kill_children();
      fail_msg("%s: a process started by mlpc outlived it by a minute", what);
    }
    if (p == 0)
      usleep(10000);
  }
}

/* Starts mlpc with args in dir, PATH holding the stand-in gcc first; its pid. */
static pid_t start_in(const char *dir, const char *bindir, const char *const *args) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    char path[4096];
    snprintf(path, sizeof path, "%s:%s", bindir, path0);
    setenv("PATH", path, 1);
    setenv("MLPC_DATA", MLPC_SOURCE_DIR "/data", 1);
    int null = open("/dev/null", O_WRONLY);
    if (chdir(dir) || null < 0)
      _exit(126);
    dup2(null, 1), dup2(null, 2);
    execv(MLPC_BIN, (char *const *)args);
    _exit(127);
  }
  return pid;
}

/* mlpc (a run, a study) killed with SIGKILL or SIGTERM while gcc runs its
   cc1: every process it started dies with it, gcc's own children too,
   even one (the stand-in's sleep) that would never end by itself. */
static void test_killed_mlpc(void **state) {
  (void)state;
  char script[512], dir[256], study[300];
  snprintf(script, sizeof script, "#!/bin/sh\nsleep 1000 &\nexec /usr/bin/env PATH=\"%s\" "
           "gcc \"$@\"\n", path0);
  const char *bindir = fake_gcc("lingers", script, 0755);
  snprintf(study, sizeof study, "%s", util_path(tmp, "s.json"));
  const char *text = "{\"name\": \"s\", \"base\": {\"hidden\": [8], \"epochs\": 1}, "
                     "\"vary\": {\"activation\": [\"tanh\", \"relu\"]}, \"seeds\": [1]}\n";
  assert_int_equal(util_write(study, text, strlen(text)), 0);
  const char *run[] = {MLPC_BIN, MLPC_SOURCE_DIR "/models/bn_relu.json", "--run", "--backend",
                       "gcc", NULL};
  const char *st[] = {MLPC_BIN, study, "--run", "--backend", "gcc", "--jobs", "2", NULL};
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  for (int i = 0; i < 8; i++) {
    int sig = i % 2 ? SIGTERM : SIGKILL;
    snprintf(dir, sizeof dir, "%s-%d",
             util_path(tmp, i % 4 < 2 ? "killed-run" : "killed-study"), i);
    mkdir(dir, 0700);
    run[4] = st[4] = i < 4 ? "gcc" : "tiered";
    if (i >= 4) /* a tiered run waits for gcc before its first step */
      setenv("MLPC_TEST_SWITCH_AFTER", "0", 1);
    pid_t pid = start_in(dir, bindir, i % 4 < 2 ? run : st);
    unsetenv("MLPC_TEST_SWITCH_AFTER");
    for (int waited = 0; !has_descendant(pid, "cc1"); waited++) {
      if (waited > 6000 || waitpid(pid, NULL, WNOHANG) == pid) {
        kill_children();
        fail_msg("%s: gcc's cc1 never ran", i % 4 < 2 ? "a run" : "a study");
      }
      usleep(10000);
    }
    kill(pid, sig);
    expect_no_descendants(i % 4 < 2 ? "a run" : "a study");
    print_message("  %s (%s) killed by signal %d while compiling: nothing it started is "
                  "left\n", i % 4 < 2 ? "a run" : "a study", run[4], sig);
  }
}

/* ---- a build in steps ---- */

/* While gcc runs, the build is under way; freed, it stops gcc and its
   children, and leaves no temporary; the keeper held none of this
   process's descriptors meanwhile. */
static void test_build_stopped(void **state) {
  (void)state;
  char err[2048], path[4096], *names[UTIL_MAX_FILES];
  const char *bindir = fake_gcc("endless", "#!/bin/sh\nsleep 1000 &\nexec sleep 1000\n", 0755);
  const char *cache = util_path(tmp, "cache-stopped");
  int fds[2];
  assert_int_equal(pipe(fds), 0); /* a descriptor of mlpc's, not close-on-exec */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  snprintf(path, sizeof path, "%s:%s", bindir, path0);
  setenv("PATH", path, 1);
  JitBuild *b = jit_build_start(src, cache, JIT_USE_CACHE, err, sizeof err);
  setenv("PATH", path0, 1);
  if (!b)
    fail_msg("%s", err);
  close(fds[1]);
  struct pollfd p = {fds[0], POLLIN, 0};
  char c;
  assert_int_equal(poll(&p, 1, 60000), 1); /* a keeper holding it would block it */
  assert_int_equal(read(fds[0], &c, 1), 0);  /* end of file */
  close(fds[0]);
  assert_int_equal(jit_build_poll(b, 0), JIT_BUILDING);
  assert_true(jit_build_fd(b) >= 0);
  for (int waited = 0; !has_descendant(getpid(), "sleep"); waited++) {
    if (waited > 6000)
      fail_msg("the stand-in gcc never ran");
    usleep(10000);
  }
  jit_build_free(b);
  expect_no_descendants("a stopped build");
  assert_int_equal(util_list(cache, ".so", names, 0), 0);
}

/* A build that may only use the cache runs no gcc: failed, when the
   object is not there; built, when it is. */
static void test_build_cached_only(void **state) {
  (void)state;
  char err[2048], script[512], path[4096];
  const char *cache = util_path(tmp, "cache-only");
  snprintf(script, sizeof script, "#!/bin/sh\ntouch %s\nexit 1\n", util_path(tmp, "ran"));
  const char *bindir = fake_gcc("marks", script, 0755);
  snprintf(path, sizeof path, "%s:%s", bindir, path0);
  setenv("PATH", path, 1);
  JitBuild *b = jit_build_start(src, cache, JIT_CACHED_ONLY, err, sizeof err);
  setenv("PATH", path0, 1);
  assert_non_null(b);
  assert_int_equal(jit_build_poll(b, 1), JIT_FAILED);
  assert_non_null(strstr(jit_build_error(b), ".so: not in the cache"));
  jit_build_free(b);
  assert_int_not_equal(access(util_path(tmp, "ran"), F_OK), 0);
  Jit *j = jit_gcc(src, cache, err, sizeof err);
  assert_non_null(j);
  jit_free(j);
  b = jit_build_start(src, cache, JIT_CACHED_ONLY, err, sizeof err);
  assert_int_equal(jit_build_poll(b, 0), JIT_BUILT);
  assert_true(jit_build_cached(b));
  j = jit_build_load(b, err, sizeof err);
  assert_non_null(j);
  jit_free(j);
  jit_build_free(b);
}

/* A build beside a run (JIT_BESIDE) runs gcc JIT_BESIDE_NICE lower in
   priority; another, at this process's own. */
static void test_build_beside(void **state) {
  (void)state;
  char err[2048], script[512], path[4096];
  snprintf(script, sizeof script, "#!/bin/sh\nnice > %s\nexit 1\n", util_path(tmp, "nice.txt"));
  const char *bindir = fake_gcc("niceness", script, 0755);
  int base = getpriority(PRIO_PROCESS, 0);
  snprintf(path, sizeof path, "%s:%s", bindir, path0);
  for (int beside = 0; beside < 2; beside++) {
    setenv("PATH", path, 1);
    JitBuild *b = jit_build_start(src, util_path(tmp, "cache-nice"),
                                  JIT_FRESH | (beside ? JIT_BESIDE : 0), err, sizeof err);
    setenv("PATH", path0, 1);
    assert_non_null(b);
    assert_int_equal(jit_build_poll(b, 1), JIT_FAILED);
    jit_build_free(b);
    size_t len;
    char *said = util_slurp(util_path(tmp, "nice.txt"), &len);
    assert_non_null(said);
    int want = beside ? base + JIT_BESIDE_NICE : base;
    assert_int_equal(atoi(said), want > 19 ? 19 : want);
    free(said);
  }
}

/* ---- which units inline the kernels, and how the others get them ---- */

/* Whether the unit for backend of an INPUT-WIDTH-10 model inlines the
   kernels, checked against the unit's own text. */
static int inlines(int input, int width, int backend) {
  static Model m;
  static Ir ir;
  fe_defaults(&m);
  m.input = input;
  m.hidden[0] = width;
  ir_lower(&m, &ir);
  Buf b = {0};
  assert_int_equal(emit_unit(&ir, backend, &b), 0);
  int yes = emit_inlines(&ir, backend);
  assert_int_equal(!strstr(b.buf, "#define MLPC_KERNEL_PROTOTYPES"), yes);
  /* gcc's inlining unit calls mlpc's small kernels; a trainer has none */
  assert_int_equal(!!strstr(b.buf, "#define MLPC_KERNEL_SMALL_CALLED"),
                   yes && backend != BACKEND_TRAINER);
  free(b.buf);
  return yes;
}

/* gcc's unit inlines the dense kernels from EMIT_INLINE_WORK
   multiply-adds a sample on (in·width + width·10), a trainer every
   kernel always, tcc's never. */
static void test_inlines(void **state) {
  (void)state;
  assert_int_equal(EMIT_INLINE_WORK, 16384);
  for (int b = BACKEND_GCC; b <= BACKEND_TIERED; b++) {
    assert_false(inlines(1013, 16, b)); /* 16368 */
    assert_true(inlines(1014, 16, b));  /* 16384 */
    assert_true(inlines(784, 128, b));
  }
  assert_false(inlines(784, 128, BACKEND_TCC));
  assert_true(inlines(16, 8, BACKEND_TRAINER));
  assert_false(strstr(src, "#define MLPC_KERNEL_PROTOTYPES") == NULL); /* setup's */
}

/* A unit that calls mlpc's kernels asks its mlpc_bind's finder for each
   by name, precision and arithmetic: it gets that copy's entry, and an
   unknown name fails the compile, named. */
static void test_bind(void **state) {
  (void)state;
  char err[512];
  const char *unit =
    "typedef void (*Fn)(void);\n"
    "static Fn got[5];\n"
    "const char *mlpc_bind(Fn (*find)(const char *, int, int)) {\n"
    "  for (int i = 0; i < 4; i++)\n"
    "    got[i] = find(\"mm_xw\", i >> 1, i & 1);\n"
    "  return (got[4] = find(WANT, 0, 0)) ? 0 : WANT;\n"
    "}\n"
    "const void *mlpc_net(void) { return got; }\n";
  char text[1024];
  snprintf(text, sizeof text, "#define WANT \"opt_adam\"\n%s", unit);
  Jit *j = jit_tcc(text, err, sizeof err);
  if (!j)
    fail_msg("%s", err);
  const KernelFn *got = (const KernelFn *)jit_net(j);
  const RtKernel *tables[4] = {rt_kernels_f32, rt_kernels_f32_fma, rt_kernels_f64,
                               rt_kernels_f64_fma};
  for (int i = 0; i < 4; i++) {
    KernelFn want = NULL;
    for (const RtKernel *k = tables[i]; k->name && !want; k++)
      if (!strcmp(k->name, "mm_xw"))
        want = k->fn;
    assert_non_null(want);
    assert_ptr_equal(got[i], want);
    for (int k = 0; k < i; k++)
      assert_ptr_not_equal(got[k], got[i]);
  }
  assert_non_null(got[4]);
  jit_free(j);

  snprintf(text, sizeof text, "#define WANT \"mm_nope\"\n%s", unit);
  assert_null(jit_tcc(text, err, sizeof err));
  assert_non_null(strstr(err, "a kernel this mlpc does not have: mm_nope"));
  assert_int_equal(jit_bind(NULL, err, sizeof err), -1);
  assert_non_null(strstr(err, "no mlpc_bind"));
  /* tcc's code must bind: a unit without mlpc_bind is refused */
  assert_null(jit_tcc("const void *mlpc_net(void) { return 0; }\n", err, sizeof err));
  assert_non_null(strstr(err, "no mlpc_bind"));
}

static int setup(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  Buf b = {0};
  if (util_mkdtemp("gcc", tmp, sizeof tmp))
    return -1;
  mkdir(util_path(tmp, "empty"), 0700);
  path0 = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  extra0 = getenv("MLPC_GCC_EXTRA_FLAGS") ? strdup(getenv("MLPC_GCC_EXTRA_FLAGS")) : NULL;
  remove(MARK);
  fe_defaults(&m);
  m.input = 16;
  m.hidden[0] = 8;
  ir_lower(&m, &ir);
  emit_unit(&ir, BACKEND_GCC, &b);
  src = b.buf;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  free(path0);
  free(extra0);
  free(src);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_missing),    cmocka_unit_test(test_not_executable),
    cmocka_unit_test(test_fails),      cmocka_unit_test(test_killed),
    cmocka_unit_test(test_bad_object), cmocka_unit_test(test_command),
    cmocka_unit_test(test_extra_flags), cmocka_unit_test(test_cache_key),
    cmocka_unit_test(test_private),    cmocka_unit_test(test_damaged),
    cmocka_unit_test(test_stale_temporaries), cmocka_unit_test(test_killed_mlpc),
    cmocka_unit_test(test_build_stopped), cmocka_unit_test(test_build_cached_only),
    cmocka_unit_test(test_build_beside), cmocka_unit_test(test_inlines),
    cmocka_unit_test(test_bind),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
