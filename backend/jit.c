/*
 * jit.c — the backends, which turn a generated unit into a running RtNet.
 *
 * tcc: the unit is compiled in memory by libtcc. Its dense kernels are
 * not compiled by tcc but bound to the copies gcc compiled into mlpc
 * (backend/kernels.c), of the model's precision.
 *
 * gcc: the unit is written under the cache directory (private: ours, and
 * writable by no one else), compiled by gcc (run without a shell, from an
 * argument list) into a shared object named by a hash of the source and
 * the flags, and loaded with dlopen. A second run of the same model finds
 * the object and compiles nothing; a damaged cached object is rebuilt.
 * gcc and its own children (cc1, as, ld) run in a process group of their
 * own under a keeper process that kills the group when mlpc dies, even by
 * SIGKILL; temporaries left in the cache by a killed mlpc are removed by
 * the next one to use it. gcc's own temporaries go to a directory of
 * their own (its TMPDIR), removed when gcc ends, killed or not.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <libtcc.h>
#include "../mlpc.h"

const char *const backend_names[NBACKENDS] = {
#define NAME_(e, s) s,
  BACKENDS(NAME_)
#undef NAME_
};

/* The flags of the gcc backend; docs/backends.md says why. */
const char *const jit_gcc_flags[] = {
  "-std=c11", "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno",
  "-fno-trapping-math", "-fPIC", "-shared", "-Wall", "-Wextra",
  NULL,
};

struct Jit {
  TCCState *tcc;
  void *dl;          /* jit_gcc: the shared object                       */
  const RtNet *net;
  int cached;
};

typedef struct {
  char *buf;
  size_t len;
} Msg;

/* Collects tcc's messages (the first one is what we report). */
static void on_error(void *opaque, const char *msg) {
  Msg *m = opaque;
  if (m->len && !m->buf[0])
    snprintf(m->buf, m->len, "tcc: %s", msg);
}

/* ---- tcc ---- */

/* mlpc's copy of a kernel (backend/kernels.c) in precision f64 and
   arithmetic fma, for a unit's mlpc_bind; NULL if there is none. */
static KernelFn find_kernel(const char *name, int f64, int fma) {
  static const RtKernel *const tables[2][2] = {{rt_kernels_f32, rt_kernels_f32_fma},
                                               {rt_kernels_f64, rt_kernels_f64_fma}};
  for (const RtKernel *k = tables[f64 != 0][fma != 0]; k->name; k++)
    if (!strcmp(k->name, name))
      return k->fn;
  return NULL;
}

int jit_bind(void *bind, char *err, size_t errlen) {
  typedef const char *(*BindFn)(KernelFn (*)(const char *, int, int));
  if (!bind) {
    snprintf(err, errlen, "the generated code has no mlpc_bind");
    return -1;
  }
  const char *missing = ((BindFn)bind)(find_kernel);
  if (missing) {
    snprintf(err, errlen, "the generated code calls a kernel this mlpc does not have: %s",
             missing);
    return -1;
  }
  return 0;
}

Jit *jit_tcc(const char *src, char *err, size_t errlen) {
  Jit *j = calloc(1, sizeof *j);
  TCCState *s = j ? tcc_new() : NULL;
  if (!s) {
    snprintf(err, errlen, "cannot start tcc: out of memory");
    free(j);
    return NULL;
  }
  j->tcc = s;
  err[0] = 0;
  Msg m = {err, errlen};
  tcc_set_error_func(s, &m, on_error);
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  tcc_define_symbol(s, "MLPC_KERNEL_PROTOTYPES", ""); /* tcc's code calls mlpc's kernels */
  if (tcc_compile_string(s, src) < 0 || tcc_relocate(s, TCC_RELOCATE_AUTO) < 0 ||
      jit_bind(tcc_get_symbol(s, "mlpc_bind"), err, errlen)) {
    jit_free(j);
    return NULL;
  }
  const RtNet *(*get)(void) = (const RtNet *(*)(void))tcc_get_symbol(s, "mlpc_net");
  if (!get) {
    snprintf(err, errlen, "tcc: the generated code has no mlpc_net");
    jit_free(j);
    return NULL;
  }
  j->net = get();
  return j;
}

/* ---- gcc ---- */

/* The flags of one gcc run: jit_gcc_flags, then those of
   MLPC_GCC_EXTRA_FLAGS split at blanks (no shell, no quoting), such as
   "-fsanitize=address,undefined" to build the generated code with the
   sanitizers. */
enum { MAX_EXTRA = 16 };
typedef struct {
  char text[1024];                  /* MLPC_GCC_EXTRA_FLAGS, cut up     */
  const char *extra[MAX_EXTRA + 1]; /* NULL-terminated                  */
} Flags;

/* Reads MLPC_GCC_EXTRA_FLAGS into F; 0 or -1 with err set. */
static int extra_flags(Flags *F, char *err, size_t errlen) {
  const char *env = getenv("MLPC_GCC_EXTRA_FLAGS");
  int n = 0;
  if (env && strlen(env) >= sizeof F->text) {
    snprintf(err, errlen, "MLPC_GCC_EXTRA_FLAGS: longer than %zu bytes", sizeof F->text - 1);
    return -1;
  }
  snprintf(F->text, sizeof F->text, "%s", env ? env : "");
  for (char *save = NULL, *t = strtok_r(F->text, " \t\n", &save); t;
       t = strtok_r(NULL, " \t\n", &save)) {
    if (n == MAX_EXTRA) {
      snprintf(err, errlen, "MLPC_GCC_EXTRA_FLAGS: more than %d flags", MAX_EXTRA);
      return -1;
    }
    F->extra[n++] = t;
  }
  F->extra[n] = NULL;
  return 0;
}

/* FNV-1a of a string and an end mark ("a","b" != "ab"), continuing from h. */
static uint64_t hash_str(uint64_t h, const char *s) {
  return rt_fnv(rt_fnv(h, s, strlen(s)), "\xff", 1);
}

/* FNV-1a over the source and all the flags: the name of the cached object. */
static unsigned long long source_hash(const char *src, const Flags *F) {
  uint64_t h = hash_str(RT_FNV_OFFSET, src);
  for (const char *const *f = jit_gcc_flags; *f; f++)
    h = hash_str(h, *f);
  for (const char *const *f = F->extra; *f; f++)
    h = hash_str(h, *f);
  return h;
}

/* Creates dir and its parents, private to us (mode 0700); 0 or -1 with
   err set. */
static int make_dirs(const char *dir, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) {
    char c = *p;
    if (c != '/' && c)
      continue;
    *p = 0;
    if (mkdir(path, 0700) && errno != EEXIST) {
      snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
      return -1;
    }
    if (!(*p = c))
      return 0;
  }
}

/* Refuses a cache directory that someone else could put code into: it
   must be ours and writable by no one else. */
static int check_private(const char *dir, char *err, size_t errlen) {
  struct stat st;
  if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
    snprintf(err, errlen, "%s: not a directory", dir);
    return -1;
  }
  if (st.st_uid == geteuid() && !(st.st_mode & 022))
    return 0;
  snprintf(err, errlen, "%s: the cache directory is not private (owner uid %ld, mode %03o): "
           "mlpc loads compiled code only from a directory that is yours and that no one "
           "else can write to", dir, (long)st.st_uid, (unsigned)(st.st_mode & 0777));
  return -1;
}

/* The pid in the name of a temporary in the cache: HASH.PID.so (an
   object gcc is writing) or HASH.c.PID.tmp (a source being written,
   rt_write_file); 0 for any other name. */
static long temp_owner(const char *name) {
  if (strspn(name, "0123456789abcdef") != 16 || name[16] != '.')
    return 0;
  const char *p = name + 17, *suffix = ".so";
  if (!strncmp(p, "c.", 2))
    p += 2, suffix = ".tmp";
  char *end;
  long pid = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : 0;
  return pid > 0 && !strcmp(end, suffix) ? pid : 0;
}

/* Removes the temporaries in the cache dir whose process is gone (a
   killed mlpc's). Those of live processes are theirs: mlpc processes may
   share a cache, on one host (as they must: the objects are built for its
   CPU) and so seeing each other's pids. */
static void remove_stale(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    long pid = temp_owner(e->d_name);
    if (pid && kill((pid_t)pid, 0) && errno == ESRCH)
      unlinkat(dirfd(d), e->d_name, 0);
  }
  if (d)
    closedir(d);
}

/* Formats a path; -1 with err set when it does not fit. */
static int path_fmt(char *dst, size_t len, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int path_fmt(char *dst, size_t len, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, len, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n < len)
    return 0;
  snprintf(err, errlen, "cache path too long: %s", dst);
  return -1;
}

/* gcc's temporaries go to a directory of their own (its TMPDIR), which
   the keeper removes when gcc ends: a gcc killed mid-build (a run that
   ended first) cannot remove its own. Made by mlpc before the keeper
   starts, so that the keeper, a child of a process that may have
   threads, calls nothing but system calls. */
typedef struct {
  char dir[4096];    /* "" if none could be made: gcc uses the usual one */
  char var[4200];    /* TMPDIR=dir                                       */
  char **envp;       /* mlpc's environment with var for TMPDIR, or NULL  */
} GccTmp;

extern char **environ;

/* Makes t's directory and environment; on failure t->dir is "". */
static void gcc_tmp_make(GccTmp *t) {
  const char *base = getenv("TMPDIR");
  int n = snprintf(t->dir, sizeof t->dir, "%s/mlpc-gcc-XXXXXX", base && *base ? base : "/tmp");
  size_t count = 0;
  while (environ[count])
    count++;
  t->envp = n > 0 && (size_t)n < sizeof t->dir ? calloc(count + 2, sizeof *t->envp) : NULL;
  if (!t->envp || !mkdtemp(t->dir)) {
    free(t->envp), t->envp = NULL, t->dir[0] = 0;
    return;
  }
  snprintf(t->var, sizeof t->var, "TMPDIR=%s", t->dir);
  size_t k = 0;
  for (size_t i = 0; i < count; i++)
    if (strncmp(environ[i], "TMPDIR=", 7))
      t->envp[k++] = environ[i];
  t->envp[k] = t->var;
}

/* Removes t's directory and what gcc left in it, by system calls alone. */
static void gcc_tmp_remove(const GccTmp *t) {
  int fd = t->dir[0] ? open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  char buf[4096];
  ssize_t n;
  while (fd >= 0 && (n = getdents64(fd, buf, sizeof buf)) > 0)
    for (ssize_t off = 0; off < n;) {
      struct dirent64 *e = (struct dirent64 *)(buf + off);
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
        unlinkat(fd, e->d_name, 0);
      off += e->d_reclen;
    }
  if (fd >= 0)
    close(fd), rmdir(t->dir);
}

/* In the child: stdin from /dev/null, stdout and stderr to log, then gcc
   with the environment envp (NULL: mlpc's). If that fails, writes errno
   to fd (close-on-exec, so the parent reads nothing once gcc runs) and
   exits. */
static void exec_gcc(const char *const *argv, const char *log, int fd, char **envp) {
  int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (in >= 0 && out >= 0 && dup2(in, 0) >= 0 && dup2(out, 1) >= 0 && dup2(out, 2) >= 0)
    execvpe(argv[0], (char *const *)argv, envp ? envp : environ);
  int e = errno;
  (void)!write(fd, &e, sizeof e);
  _exit(127);
}

/* The signals a keeper leaves to mlpc: it outlives mlpc to clean up. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, 0};

/* Wakes the keeper's ppoll when gcc ends. */
static void on_child(int sig) { (void)sig; }

/* In the keeper's child: gcc, leading a new process group that its own
   children join, dying with the keeper. */
static void start_gcc(const char *const *argv, const char *log, int fd, pid_t keeper,
                      const sigset_t *mask, char **envp) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != keeper)
    _exit(127);
  for (const int *s = stop_signals; *s; s++)
    signal(*s, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_SETMASK, mask, NULL);
  exec_gcc(argv, log, fd, envp);
}

/* Waits until gcc (pid) ends, or mlpc does (alive reads end of file: only
   mlpc held its other end), and kills gcc's group either way: every
   compiler process, gcc's leftovers too. gcc's pid, unreaped until then,
   keeps the group's id from being reused. SIGCHLD is blocked but in
   ppoll. Returns gcc's wait status. */
static int watch_gcc(pid_t pid, int alive, const sigset_t *mask) {
  siginfo_t si;
  int status = 0;
  for (;;) {
    si.si_pid = 0;
    if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
      break;
    struct pollfd p = {alive, POLLIN, 0};
    if (ppoll(&p, 1, NULL, mask) > 0)
      break;  /* mlpc is gone */
  }
  kill(-pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return status;
}

/* Ends the keeper as gcc ended: the same exit status or signal. */
static void end_as(int status) {
  if (WIFSIGNALED(status)) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none);
    signal(WTERMSIG(status), SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, WTERMSIG(status));
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(WTERMSIG(status));
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 127);
}

/* In the child of mlpc: the keeper of one gcc run. It stays in mlpc's
   process group, ignoring the signals that stop mlpc, starts gcc in a
   group of its own, and kills that group when gcc or mlpc ends; it then
   removes gcc's temporaries (t) and ends as gcc did. fd: the pipe for
   exec's errno, which the keeper holds open until it ends, so that mlpc
   reads end of file then; alive: see watch_gcc (mlpc stops a build by
   closing its end). */
static void keep_gcc(const char *const *argv, const char *log, int fd, int alive,
                     const GccTmp *t) {
  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);
  struct sigaction sa = {0};
  sa.sa_handler = on_child;
  sigaction(SIGCHLD, &sa, NULL);
  for (const int *s = stop_signals; *s; s++)
    signal(*s, SIG_IGN);
  pid_t keeper = getpid(), pid = fork();
  if (pid == 0)
    start_gcc(argv, log, fd, keeper, &old, t->envp);
  if (pid < 0) {
    int e = errno;
    (void)!write(fd, &e, sizeof e);
    gcc_tmp_remove(t);
    _exit(127);
  }
  setpgid(pid, pid); /* as gcc does itself: set before either goes on */
  sigset_t wait_mask = old;
  sigdelset(&wait_mask, SIGCHLD);
  int status = watch_gcc(pid, alive, &wait_mask);
  gcc_tmp_remove(t);
  end_as(status);
}

/* The first line of a file, for messages ("" if none). */
static const char *first_line(const char *path, char *buf, size_t len) {
  FILE *f = fopen(path, "r");
  buf[0] = 0;
  if (f && fgets(buf, (int)len, f))
    buf[strcspn(buf, "\n")] = 0;
  if (f)
    fclose(f);
  return buf;
}

/* Says why gcc did not give an object: it could not start, was killed, or
   failed (with its first message); -1. */
static int gcc_failed(int exec_errno, int status, const char *src, const char *log, char *err,
                      size_t errlen) {
  char line[512];
  if (exec_errno == ENOENT)
    snprintf(err, errlen, "cannot run gcc: not found on PATH (install gcc, or use "
             "--backend tcc)");
  else if (exec_errno)
    snprintf(err, errlen, "cannot run gcc: %s", strerror(exec_errno));
  else if (WIFSIGNALED(status))
    snprintf(err, errlen, "gcc was killed by signal %d (%s) compiling %s", WTERMSIG(status),
             strsignal(WTERMSIG(status)), src);
  else
    snprintf(err, errlen, "gcc failed (exit %d) on %s: %s; all its messages are in %s",
             WEXITSTATUS(status), src, first_line(log, line, sizeof line), log);
  return -1;
}

/* The argument list of one gcc run on src into out, with the flags in F. */
static void gcc_argv(const char **argv, const char *src, const char *out, const Flags *F) {
  int n = 0;
  argv[n++] = "gcc";
  for (const char *const *f = jit_gcc_flags; *f; f++)
    argv[n++] = *f;
  for (const char *const *f = F->extra; *f; f++)
    argv[n++] = *f;
  const char *tail[] = {src, "-o", out, "-lm", NULL};
  for (int i = 0; tail[i]; i++)
    argv[n++] = tail[i];
  argv[n] = NULL;
}

struct JitBuild {
  char csrc[4096], tmp[4096], log[4096], path[4096]; /* HASH.c, .PID.so, .log, .so */
  pid_t keeper;      /* the keeper of gcc while it runs; 0 after        */
  int done;          /* reads exec's errno, or end of file once the keeper
                        has ended (jit_build_fd)                         */
  int alive;         /* closing it stops the keeper and gcc             */
  int exec_errno;
  int state;         /* JIT_BUILDING, JIT_BUILT or JIT_FAILED           */
  int cached;        /* the object was in the cache already             */
  double t0, seconds;
  char err[2 * 4096 + 256]; /* why it failed: two paths and a message   */
  GccTmp gtmp;       /* gcc's temporaries                               */
};

/* In the keeper: closes every descriptor but 0, 1, 2 and the two it
   needs, so that it holds no pipe of mlpc's open (a study's workers read
   end of file on theirs when the parent closes them). */
static void close_others(int a, int b) {
  int lo = a < b ? a : b, hi = a < b ? b : a;
  if (lo > 3)
    close_range(3, (unsigned)lo - 1, 0);
  if (hi > lo + 1)
    close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
  close_range((unsigned)hi + 1, ~0U, 0);
}

/* Starts gcc under its keeper, without a shell, with b's paths and the
   flags in F; 0, or -1 with b->err set. */
static int spawn_gcc(JitBuild *b, const Flags *F, int beside) {
  const char *argv[64];
  int fds[2] = {-1, -1}, alive[2] = {-1, -1};
  gcc_argv(argv, b->csrc, b->tmp, F);
  gcc_tmp_make(&b->gtmp);
  pid_t pid = pipe2(fds, O_CLOEXEC) || pipe2(alive, O_CLOEXEC) ? -1 : fork();
  if (pid == 0) {
    close(alive[1]);
    close_others(fds[1], alive[0]);
    if (beside)
      (void)!nice(JIT_BESIDE_NICE);
    keep_gcc(argv, b->log, fds[1], alive[0], &b->gtmp);
  }
  free(b->gtmp.envp);
  b->gtmp.envp = NULL;
  if (pid < 0) {
    gcc_tmp_remove(&b->gtmp);
    snprintf(b->err, sizeof b->err, "cannot run gcc: %s", strerror(errno));
    for (int i = 0; i < 2; i++)
      close(fds[i]), close(alive[i]);
    return -1;
  }
  close(fds[1]);
  close(alive[0]);
  b->keeper = pid, b->done = fds[0], b->alive = alive[1], b->state = JIT_BUILDING;
  return 0;
}

/* Once the keeper has ended (or is ending): reaps it, and puts gcc's
   object in place under its name, or says why there is none. */
static void reap_gcc(JitBuild *b) {
  int e = 0, status = 0, waited;
  while (read(b->done, &e, sizeof e) == sizeof e) /* then end of file */
    b->exec_errno = e;
  while ((waited = waitpid(b->keeper, &status, 0)) < 0 && errno == EINTR)
    ;
  gcc_tmp_remove(&b->gtmp); /* the keeper's work, unless it was killed */
  b->keeper = 0;
  b->seconds = rt_now() - b->t0;
  b->state = JIT_FAILED;
  if (waited < 0)
    snprintf(b->err, sizeof b->err, "cannot wait for gcc: %s", strerror(errno));
  else if (b->exec_errno || !WIFEXITED(status) || WEXITSTATUS(status))
    gcc_failed(b->exec_errno, status, b->csrc, b->log, b->err, sizeof b->err);
  else if (rename(b->tmp, b->path) == 0)
    b->state = JIT_BUILT;
  else if (errno == ENOENT)
    snprintf(b->err, sizeof b->err, "gcc succeeded on %s but wrote no object; its messages "
             "are in %s", b->csrc, b->log);
  else
    snprintf(b->err, sizeof b->err, "%s: cannot rename: %s", b->path, strerror(errno));
  if (b->state != JIT_BUILT)
    remove(b->tmp);
}

/* The paths of the object of src under cache_dir, and the flags; 0, or
   -1 with err set. */
static int build_paths(JitBuild *b, const char *src, const char *cache_dir, Flags *F,
                       char *err, size_t errlen) {
  char base[4096];
  if (extra_flags(F, err, errlen) ||
      path_fmt(base, sizeof base, err, errlen, "%s/%016llx", cache_dir, source_hash(src, F)))
    return -1;
  return path_fmt(b->csrc, sizeof b->csrc, err, errlen, "%s.c", base) ||
         path_fmt(b->tmp, sizeof b->tmp, err, errlen, "%s.%ld.so", base, (long)getpid()) ||
         path_fmt(b->log, sizeof b->log, err, errlen, "%s.log", base) ||
         path_fmt(b->path, sizeof b->path, err, errlen, "%s.so", base);
}

int jit_gcc_log(const char *src, const char *cache_dir, char *path, size_t len) {
  JitBuild b;
  Flags F;
  char err[256];
  if (build_paths(&b, src, cache_dir, &F, err, sizeof err))
    return -1;
  snprintf(path, len, "%s", b.log);
  return 0;
}

JitBuild *jit_build_start(const char *src, const char *cache_dir, int mode, char *err,
                          size_t errlen) {
  JitBuild *b = calloc(1, sizeof *b);
  Flags F;
  if (!b)
    return snprintf(err, errlen, "out of memory"), NULL;
  b->t0 = rt_now();
  b->done = b->alive = -1;
  if (build_paths(b, src, cache_dir, &F, err, errlen) || make_dirs(cache_dir, err, errlen) ||
      check_private(cache_dir, err, errlen))
    return jit_build_free(b), NULL;
  remove_stale(cache_dir);
  int beside = mode & JIT_BESIDE;
  mode &= ~JIT_BESIDE;
  if (mode != JIT_FRESH && access(b->path, R_OK) == 0) {
    b->state = JIT_BUILT, b->cached = 1;
    return b;
  }
  if (mode == JIT_CACHED_ONLY) {
    b->state = JIT_FAILED;
    snprintf(b->err, sizeof b->err, "%s: not in the cache", b->path);
    return b;
  }
  if (rt_write_text(b->csrc, src, strlen(src), err, errlen))
    return jit_build_free(b), NULL;
  if (spawn_gcc(b, &F, beside)) {
    snprintf(err, errlen, "%s", b->err);
    return jit_build_free(b), NULL;
  }
  return b;
}

int jit_build_poll(JitBuild *b, int wait) {
  struct pollfd p = {b->done, POLLIN, 0};
  if (b->state != JIT_BUILDING)
    return b->state;
  int rc;
  while ((rc = poll(&p, 1, wait ? -1 : 0)) < 0 && errno == EINTR)
    ;
  if (rc > 0)
    reap_gcc(b);
  return b->state;
}

int jit_build_fd(const JitBuild *b) { return b->state == JIT_BUILDING ? b->done : -1; }

const char *jit_build_error(const JitBuild *b) { return b->err; }

int jit_build_cached(const JitBuild *b) { return b->cached; }

double jit_build_seconds(const JitBuild *b) { return b->seconds; }

void jit_build_forget(JitBuild *b) {
  if (b->done >= 0)
    close(b->done);
  if (b->alive >= 0)
    close(b->alive);
  b->done = b->alive = -1;
}

void jit_build_free(JitBuild *b) {
  if (!b)
    return;
  if (b->keeper) {
    close(b->alive); /* the keeper kills gcc's group and ends */
    b->alive = -1;
    reap_gcc(b);
  }
  jit_build_forget(b);
  free(b);
}

/* Loads the object at path into j; 0, or -1 with err set (j->dl, if
   set, is closed by jit_free). */
static int load_object(Jit *j, const char *path, char *err, size_t errlen) {
  j->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  const RtNet *(*get)(void) = j->dl ? (const RtNet *(*)(void))dlsym(j->dl, "mlpc_net") : NULL;
  if (!get) {
    snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
    if (j->dl)
      dlclose(j->dl);
    j->dl = NULL;
    return -1;
  }
  /* a unit that calls mlpc's kernels, rather than inlining them, binds them */
  void *bind = dlsym(j->dl, "mlpc_bind");
  if (bind && jit_bind(bind, err, errlen))
    return -1;
  j->net = get();
  return 0;
}

Jit *jit_build_load(JitBuild *b, char *err, size_t errlen) {
  Jit *j = calloc(1, sizeof *j);
  if (!j)
    return snprintf(err, errlen, "out of memory"), NULL;
  j->cached = b->cached;
  if (load_object(j, b->path, err, errlen))
    return jit_free(j), NULL;
  return j;
}

Jit *jit_gcc(const char *src, const char *cache_dir, char *err, size_t errlen) {
  Jit *j = NULL;
  for (int fresh = 0; fresh < 2 && !j; fresh++) {
    JitBuild *b = jit_build_start(src, cache_dir, fresh ? JIT_FRESH : JIT_USE_CACHE, err,
                                  errlen);
    if (!b)
      return NULL;
    if (jit_build_poll(b, 1) == JIT_BUILT)
      j = jit_build_load(b, err, errlen);
    else
      snprintf(err, errlen, "%s", b->err);
    int again = !j && b->cached; /* damaged: (re)build it */
    jit_build_free(b);
    if (!again)
      break;
  }
  return j;
}

/* ---- both ---- */

/* Whether gcc can be found on PATH. */
static int have_gcc(void) {
  const char *path = getenv("PATH");
  char buf[4096];
  while (path && *path) {
    size_t n = strcspn(path, ":");
    snprintf(buf, sizeof buf, "%.*s/gcc", (int)n, path);
    if (access(buf, X_OK) == 0)
      return 1;
    path += n + (path[n] == ':');
  }
  return 0;
}

int jit_default_backend(void) { return have_gcc() ? BACKEND_TIERED : BACKEND_TCC; }

int jit_cpu_fma(void) {
  const char *no = getenv("MLPC_TEST_NO_FMA_CPU");
  if (no && !strcmp(no, "1"))
    return 0;
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("fma");
#else
  return 1; /* no check elsewhere: aarch64, for one, always has it */
#endif
}

void jit_note_fma(int fma) {
  static int said;
  if (!fma || said++ || jit_cpu_fma())
    return;
  fprintf(stderr, "mlpc: note: this CPU has no FMA instructions, so the fma arithmetic "
          "(the default) runs in software: correct, but slow; --strict is faster here "
          "(docs/performance.md)\n");
}

const RtNet *jit_net(Jit *j) { return j->net; }

int jit_cached(Jit *j) { return j->cached; }

void jit_free(Jit *j) {
  if (!j)
    return;
  if (j->tcc)
    tcc_delete(j->tcc);
  if (j->dl)
    dlclose(j->dl);
  free(j);
}
