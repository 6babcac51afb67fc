/*
 * jit.c — the backends, which turn a generated unit into a running RtNet.
 *
 * tcc: the unit is compiled in memory by libtcc. Its dense kernels are
 * not compiled by tcc but bound to the copies gcc compiled into mlpc
 * (runtime/kernels.c), of the model's precision.
 *
 * gcc: the unit is written under the cache directory, compiled by gcc
 * (run without a shell) into a shared object named by a hash of the
 * source and the flags, and loaded with dlopen. A second run of the same
 * model finds the object and compiles nothing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
  "-std=c11", "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fPIC",
  "-shared", NULL,
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

/* FNV-1a over the source and the flags: the name of the cached object. */
static unsigned long long source_hash(const char *src) {
  unsigned long long h = 0xcbf29ce484222325ULL;
  for (const char *p = src; *p; p++)
    h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
  for (const char *const *f = jit_gcc_flags; *f; f++)
    for (const char *p = *f; *p; p++)
      h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
  return h;
}

/* Creates dir and its parents; 0 or -1 with err set. */
static int make_dirs(const char *dir, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1;; p++) {
    char c = *p;
    if (c != '/' && c)
      continue;
    *p = 0;
    if (mkdir(path, 0777) && errno != EEXIST) {
      snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
      return -1;
    }
    if (!(*p = c))
      return 0;
  }
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

/* Writes text to path through a temporary file and a rename. */
static int write_file(const char *path, const char *text, char *err, size_t errlen) {
  char tmp[4096];
  if (path_fmt(tmp, sizeof tmp, err, errlen, "%s.%ld.tmp", path, (long)getpid()))
    return -1;
  FILE *f = fopen(tmp, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) || rename(tmp, path)) {
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    if (f)
      remove(tmp);
    return -1;
  }
  return 0;
}

/* Runs gcc on src into out, with its messages in log; 0 or -1. */
static int run_gcc(const char *src, const char *out, const char *log, char *err,
                   size_t errlen) {
  const char *argv[32];
  int n = 0;
  argv[n++] = "gcc";
  for (const char *const *f = jit_gcc_flags; *f; f++)
    argv[n++] = *f;
  const char *tail[] = {src, "-o", out, "-lm", NULL};
  for (int i = 0; tail[i]; i++)
    argv[n++] = tail[i];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execvp("gcc", (char *const *)argv);
    _exit(127);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) {
    snprintf(err, errlen, "cannot run gcc: %s", strerror(errno));
    return -1;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    snprintf(err, errlen, "cannot run gcc: not found on PATH (try --backend tcc)");
    return -1;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status)) {
    snprintf(err, errlen, "gcc failed on %s; its messages are in %s", src, log);
    return -1;
  }
  return 0;
}

/* Compiles src into path (via a temporary name, so that parallel runs
   never load a half-written object). */
static int build_object(const char *src, const char *base, const char *path,
                        char *err, size_t errlen) {
  char csrc[4096], tmp[4096], log[4096];
  if (path_fmt(csrc, sizeof csrc, err, errlen, "%s.c", base) ||
      path_fmt(tmp, sizeof tmp, err, errlen, "%s.%ld.so", base, (long)getpid()) ||
      path_fmt(log, sizeof log, err, errlen, "%s.log", base))
    return -1;
  if (write_file(csrc, src, err, errlen) || run_gcc(csrc, tmp, log, err, errlen))
    return -1;
  if (rename(tmp, path)) {
    snprintf(err, errlen, "%s: cannot rename: %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

Jit *jit_gcc(const char *src, const char *cache_dir, char *err, size_t errlen) {
  char base[4096], path[4096];
  if (path_fmt(base, sizeof base, err, errlen, "%s/%016llx", cache_dir, source_hash(src)) ||
      path_fmt(path, sizeof path, err, errlen, "%s.so", base))
    return NULL;
  Jit *j = calloc(1, sizeof *j);
  if (!j || make_dirs(cache_dir, err, errlen)) {
    free(j);
    return NULL;
  }
  j->cached = access(path, R_OK) == 0;
  if (!j->cached && build_object(src, base, path, err, errlen)) {
    free(j);
    return NULL;
  }
  j->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  const RtNet *(*get)(void) = j->dl ? (const RtNet *(*)(void))dlsym(j->dl, "mlpc_net") : NULL;
  if (!get) {
    snprintf(err, errlen, "%s: cannot load: %s", path, dlerror());
    jit_free(j);
    return NULL;
  }
  j->net = get();
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

int jit_default_backend(void) { return have_gcc() ? BACKEND_GCC : BACKEND_TCC; }

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
