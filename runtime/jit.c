/*
 * jit.c — the backends, which turn a generated unit into a running RtNet.
 *
 * tcc: the unit is compiled in memory by libtcc. Its dense kernels are
 * not compiled by tcc but bound to the copies gcc compiled into mlpc
 * (runtime/kernels.c), of the model's precision.
 *
 * gcc: the unit is written under the cache directory (private: ours, and
 * writable by no one else), compiled by gcc (run without a shell, from an
 * argument list) into a shared object named by a hash of the source and
 * the flags, and loaded with dlopen. A second run of the same model finds
 * the object and compiles nothing; a damaged cached object is rebuilt.
 * gcc and its own children (cc1, as, ld) run in a process group of their
 * own under a keeper process that kills the group when mlpc dies, even by
 * SIGKILL; temporaries left in the cache by a killed mlpc are removed by
 * the next one to use it.
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
  "-fno-trapping-math", "-fPIC", "-shared", NULL,
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

void jit_tcc_kernels(TCCState *s, int dtype) {
  const RtKernel *tables[2][2] = {{rt_kernels_f32, rt_kernels_f32_fma},
                                   {rt_kernels_f64, rt_kernels_f64_fma}};
  for (int t = 0; t < 2; t++)
    for (const RtKernel *k = tables[dtype == DT_F64][t]; k->name; k++)
      tcc_add_symbol(s, k->name, (const void *)k->fn);
}

Jit *jit_tcc(const char *src, int dtype, char *err, size_t errlen) {
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
  jit_tcc_kernels(s, dtype);
  if (tcc_compile_string(s, src) < 0 || tcc_relocate(s, TCC_RELOCATE_AUTO) < 0) {
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

/* In the child: stdin from /dev/null, stdout and stderr to log, then gcc.
   If that fails, writes errno to fd (close-on-exec, so the parent reads
   nothing once gcc runs) and exits. */
static void exec_gcc(const char *const *argv, const char *log, int fd) {
  int in = open("/dev/null", O_RDONLY), out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (in >= 0 && out >= 0 && dup2(in, 0) >= 0 && dup2(out, 1) >= 0 && dup2(out, 2) >= 0)
    execvp(argv[0], (char *const *)argv);
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
                      const sigset_t *mask) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != keeper)
    _exit(127);
  for (const int *s = stop_signals; *s; s++)
    signal(*s, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  sigprocmask(SIG_SETMASK, mask, NULL);
  exec_gcc(argv, log, fd);
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
   ends as gcc did. fd: the pipe for exec's errno; alive: see watch_gcc. */
static void keep_gcc(const char *const *argv, const char *log, int fd, int alive) {
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
    start_gcc(argv, log, fd, keeper, &old);
  if (pid < 0) {
    int e = errno;
    (void)!write(fd, &e, sizeof e);
    _exit(127);
  }
  setpgid(pid, pid); /* as gcc does itself: set before either goes on */
  close(fd);
  sigset_t wait_mask = old;
  sigdelset(&wait_mask, SIGCHLD);
  end_as(watch_gcc(pid, alive, &wait_mask));
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

/* Runs gcc, without a shell, on src into out with the flags in F and its
   messages in log; 0 or -1 with err set. */
static int run_gcc(const char *src, const char *out, const char *log, const Flags *F,
                   char *err, size_t errlen) {
  const char *argv[64];
  int n = 0, fds[2], e = 0, status = 0;
  argv[n++] = "gcc";
  for (const char *const *f = jit_gcc_flags; *f; f++)
    argv[n++] = *f;
  for (const char *const *f = F->extra; *f; f++)
    argv[n++] = *f;
  const char *tail[] = {src, "-o", out, "-lm", NULL};
  for (int i = 0; tail[i]; i++)
    argv[n++] = tail[i];
  argv[n] = NULL;
  int alive[2] = {-1, -1};
  pid_t pid = pipe2(fds, O_CLOEXEC) || pipe2(alive, O_CLOEXEC) ? -1 : fork();
  if (pid == 0) {
    close(alive[1]);
    keep_gcc(argv, log, fds[1], alive[0]);
  }
  if (pid < 0) {
    snprintf(err, errlen, "cannot run gcc: %s", strerror(errno));
    return -1;
  }
  close(fds[1]);
  close(alive[0]);
  if (read(fds[0], &e, sizeof e) != sizeof e)
    e = 0;
  close(fds[0]);
  int waited;
  while ((waited = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
    ;
  close(alive[1]);
  if (waited < 0) {
    snprintf(err, errlen, "cannot wait for gcc: %s", strerror(errno));
    return -1;
  }
  if (e || !WIFEXITED(status) || WEXITSTATUS(status))
    return gcc_failed(e, status, src, log, err, errlen);
  return 0;
}

/* Compiles src into path (via a temporary name, so that parallel runs
   never load a half-written object). */
static int build_object(const char *src, const char *base, const char *path, const Flags *F,
                        char *err, size_t errlen) {
  char csrc[4096], tmp[4096], log[4096];
  if (path_fmt(csrc, sizeof csrc, err, errlen, "%s.c", base) ||
      path_fmt(tmp, sizeof tmp, err, errlen, "%s.%ld.so", base, (long)getpid()) ||
      path_fmt(log, sizeof log, err, errlen, "%s.log", base))
    return -1;
  if (rt_write_text(csrc, src, strlen(src), err, errlen) ||
      run_gcc(csrc, tmp, log, F, err, errlen)) {
    remove(tmp);
    return -1;
  }
  if (rename(tmp, path)) {
    if (errno == ENOENT)
      snprintf(err, errlen, "gcc succeeded on %s but wrote no object; its messages are in %s",
               csrc, log);
    else
      snprintf(err, errlen, "%s: cannot rename: %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

/* Loads the object at path into j; 0, or -1 with err set. */
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
  j->net = get();
  return 0;
}

Jit *jit_gcc(const char *src, const char *cache_dir, char *err, size_t errlen) {
  char base[4096], path[4096];
  Flags F;
  if (extra_flags(&F, err, errlen) ||
      path_fmt(base, sizeof base, err, errlen, "%s/%016llx", cache_dir, source_hash(src, &F)) ||
      path_fmt(path, sizeof path, err, errlen, "%s.so", base))
    return NULL;
  Jit *j = calloc(1, sizeof *j);
  if (!j) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (make_dirs(cache_dir, err, errlen) || check_private(cache_dir, err, errlen))
    goto fail;
  remove_stale(cache_dir);
  j->cached = access(path, R_OK) == 0;
  if (j->cached && load_object(j, path, err, errlen) == 0)
    return j;
  j->cached = 0; /* not there, or damaged: (re)build it */
  if (build_object(src, base, path, &F, err, errlen) || load_object(j, path, err, errlen))
    goto fail;
  return j;
fail:
  jit_free(j);
  return NULL;
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

int jit_default_backend(void) { return have_gcc() ? BACKEND_GCC : BACKEND_TCC; }

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
