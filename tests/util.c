/*
 * util.c — helpers the tests share (see util.h).
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "util.h"
#include "../study/study.h"

/* Orders strings for qsort. */
static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether name ends with suffix (and is longer). */
static int ends_with(const char *name, const char *suffix) {
  size_t n = strlen(name), k = strlen(suffix);
  return n > k && !strcmp(name + n - k, suffix);
}

int util_list(const char *dir, const char *suffix, char **out, int n) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int first = n;
  while (d && (e = readdir(d)))
    if (ends_with(e->d_name, suffix)) {
      if (n == UTIL_MAX_FILES) {
        fprintf(stderr, "%s: more than %d files; raise UTIL_MAX_FILES\n", dir, n);
        exit(1);
      }
      out[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
      sprintf(out[n++], "%s/%s", dir, e->d_name);
    }
  if (d)
    closedir(d);
  qsort(out + first, n - first, sizeof *out, by_name);
  return n;
}

/* Drops the study files (docs/study-format.md) from out[0..n); the new n. */
static int drop_studies(char **out, int n) {
  int k = 0;
  for (int i = 0; i < n; i++)
    if (st_is_study(out[i]))
      free(out[i]);
    else
      out[k++] = out[i];
  return k;
}

int util_models(char **out) {
  int n = drop_studies(out, util_list("models", ".json", out, 0));
  return util_list("tests/models", ".json", out, n);
}

int util_arith(int i) { return i % 2; }

const char *util_stem(const char *path, char *buf, size_t len) {
  const char *s = strrchr(path, '/');
  s = s ? s + 1 : path;
  const char *dot = strrchr(s, '.');
  snprintf(buf, len, "%.*s", dot ? (int)(dot - s) : (int)strlen(s), s);
  return buf;
}

char *util_slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0, got;
  char *buf = malloc(cap + 1);
  while ((got = fread(buf + n, 1, cap - n, f)) > 0)
    if ((n += got) == cap)
      buf = realloc(buf, (cap *= 2) + 1);
  fclose(f);
  buf[n] = 0;
  *len = n;
  return buf;
}

char *util_text(const char *path) {
  static char buf[8192];
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  while (n > 0 && buf[n - 1] == '\n')
    n--;
  buf[n] = '\0';
  return buf;
}

int util_regen(const char *name) {
  const char *r = getenv("MLPC_REGEN");
  return r && (!strcmp(r, "all") || !strcmp(r, name));
}

long util_wide_line(const char *text, size_t max) {
  long line = 1;
  for (const char *p = text; *p; line++) {
    size_t len = strcspn(p, "\n");
    if (len > max)
      return line;
    p += len + (p[len] == '\n');
  }
  return 0;
}

int util_write(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t put = fwrite(buf, 1, len, f);
  return fclose(f) || put != len ? -1 : 0;
}

/* Points fd at the file named (or /dev/null), in a child. */
static void redirect(int fd, const char *path) {
  int to = open(path ? path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (to < 0)
    _exit(126);
  dup2(to, fd);
  close(to);
}

int util_run(const char *const *argv, const char *out, const char *err) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    redirect(1, out);
    redirect(2, err);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
    return -1;
  return WEXITSTATUS(status);
}

int util_cc_says(const char *src, const char *const *flags, const char *text) {
  const char *argv[32] = {"cc"};
  char log[4200];
  int n = 1;
  for (; *flags && n < 27; flags++)
    argv[n++] = *flags;
  const char *tail[] = {"-E", src, "-o", "/dev/null", NULL};
  memcpy(argv + n, tail, sizeof tail);
  snprintf(log, sizeof log, "%s.cc.log", src);
  int status = util_run(argv, NULL, log);
  size_t len;
  char *said = util_slurp(log, &len);
  int found = said && strstr(said, text) != NULL;
  free(said);
  return status ? -1 : found;
}

int util_drop_root(void) {
  if (geteuid() != 0)
    return 0;
  return setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
         setresuid(65534, 65534, 65534) || geteuid() == 0 ? -1 : 0;
}

void util_load(const char *path, Model *m) {
  char err[2048];
  if (fe_load(path, m, err, sizeof err))
    fail_msg("%s", err);
}

Jit *util_jit(const char *src, int backend, const char *what) {
  char err[2048];
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src, err, sizeof err)
                                  : jit_gcc(src, "out/cache", err, sizeof err);
  if (!j)
    fail_msg("%s: %s", what, err);
  return j;
}

const RtTensor *util_tensor(const RtNet *net, const char *name) {
  for (int i = 0; i < net->ntensors; i++)
    if (!strcmp(net->tensors[i].name, name))
      return &net->tensors[i];
  fail_msg("no tensor %s", name);
  return NULL;
}

int util_mkdtemp(const char *name, char *buf, size_t len) {
  snprintf(buf, len, "/tmp/mlpc-%s-XXXXXX", name);
  return mkdtemp(buf) ? 0 : -1;
}

const char *util_path(const char *dir, const char *name) {
  static char ring[UTIL_PATHS][256];
  static int next;
  char *p = ring[next++ % UTIL_PATHS];
  snprintf(p, sizeof ring[0], "%s/%s", dir, name);
  return p;
}

void util_rmtree(const char *dir) {
  if (strncmp(dir, "/tmp/mlpc-", 10))
    return; /* only what util_mkdtemp made */
  const char *argv[] = {"rm", "-rf", dir, NULL};
  util_run(argv, NULL, NULL);
}

/* The byte where element k of tensor name starts in a safetensors file
   whose first bytes are at buf (len of them); *f64 says its dtype (2 for
   I64); -1 if there is no such tensor. */
static long weight_at(const unsigned char *buf, size_t len, const char *name, long k,
                      int *f64) {
  unsigned long long n = 0;
  for (int i = 7; len >= 8 && i >= 0; i--)
    n = n << 8 | buf[i];
  json_t *h = len >= 8 && n <= len - 8 ? json_loadb((const char *)buf + 8, n, 0, NULL) : NULL;
  json_t *e = json_object_get(h, name);
  const char *dtype = json_string_value(json_object_get(e, "dtype"));
  json_t *off = json_array_get(json_object_get(e, "data_offsets"), 0);
  *f64 = !dtype ? 0 : !strcmp(dtype, "F64") ? 1 : !strcmp(dtype, "I64") ? 2 : 0;
  long at = off ? 8 + (long)n + (long)json_integer_value(off) + k * (*f64 ? 8 : 4) : -1;
  json_decref(h);
  return at;
}

int util_poke_weight(const char *path, const char *name, long k, double v) {
  size_t len;
  int f64;
  unsigned char *buf = (unsigned char *)util_slurp(path, &len);
  long at = buf ? weight_at(buf, len, name, k, &f64) : -1;
  float f = (float)v;
  long long i = (long long)v;
  int rc = at >= 0 && (size_t)at + (f64 ? 8 : 4) <= len ? 0 : -1;
  if (!rc)
    memcpy(buf + at, f64 == 2 ? (void *)&i : f64 ? (void *)&v : (void *)&f, f64 ? 8 : 4);
  rc = rc ? rc : util_write(path, buf, len);
  free(buf);
  return rc;
}

/* Writes DIR/PREFIX-images-idx3-ubyte (channels 0) or -idx4-ubyte and
   the labels for util_idx_set and util_idx4_set. */
static int idx_files(const char *dir, const char *prefix, int n, int channels, int side) {
  size_t px = (size_t)(channels ? channels : 1) * side * side;
  size_t head = channels ? 20 : 16, len = head + (size_t)n * px;
  unsigned char *buf = calloc(len, 1);
  unsigned char hdr[20] = {0, 0, 8, channels ? 4 : 3, n >> 24, n >> 16 & 255, n >> 8 & 255,
                           n & 255};
  char path[4096];
  for (int d = 0; d < 3; d++)  /* (channels,) side, side */
    hdr[11 + 4 * d] = (unsigned char)(d == 0 && channels ? channels : side);
  memcpy(buf, hdr, head);
  for (size_t i = 0; i < (size_t)n * px; i++)
    buf[head + i] = i % px ? (unsigned char)(i * 37 % 251) : 0;
  snprintf(path, sizeof path, "%s/%s-images-idx%d-ubyte", dir, prefix, channels ? 4 : 3);
  int rc = util_write(path, buf, len);
  buf[3] = 1;
  for (int i = 0; i < n; i++)
    buf[8 + i] = (unsigned char)(i % 10);
  snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", dir, prefix);
  rc |= util_write(path, buf, 8 + (size_t)n);
  free(buf);
  return rc;
}

int util_idx_set(const char *dir, int ntrain, int ntest, int side) {
  return idx_files(dir, "train", ntrain, 0, side) | idx_files(dir, "t10k", ntest, 0, side);
}

int util_idx4_set(const char *dir, int ntrain, int ntest, int channels, int side) {
  return idx_files(dir, "train", ntrain, channels, side) |
         idx_files(dir, "t10k", ntest, channels, side);
}

/* ---- parts of a test program ---- */

static int shard_k, shard_n = 1; /* the K/N of util_run_group */

int util_mine(int i) {
  return i % shard_n == shard_k;
}

/* Reads "K/N" into the shard; 0, or -1 if it is not one. */
static int parse_shard(const char *s) {
  int k, n, end = 0;
  if (sscanf(s, "%d/%d%n", &k, &n, &end) != 2 || s[end] || n < 1 || k < 0 || k >= n)
    return -1;
  shard_k = k, shard_n = n;
  return 0;
}

/* Whether name is one of the comma-separated names in list. */
static int listed(const char *list, const char *name) {
  size_t len = strlen(name);
  for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',')
    if (strcspn(p, ",") == len && !strncmp(p, name, len))
      return 1;
  return 0;
}

/* Copies the tests named in list from tests[0..n) to out (with a "-"
   in front of list: all the others), in their order; their count, or
   -1 if list names one that is not there. */
static int select_tests(const struct CMUnitTest *tests, size_t n, const char *list,
                        struct CMUnitTest *out) {
  int k = 0, named = 0, found = 0, but = *list == '-';
  list += but;
  for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',')
    named++;
  for (size_t i = 0; i < n; i++) {
    int in = listed(list, tests[i].name);
    found += in;
    if (in != but)
      out[k++] = tests[i];
  }
  return found == named ? k : -1;
}

int util_run_group(const struct CMUnitTest *tests, size_t n, CMFixtureFunction setup,
                   CMFixtureFunction teardown, int argc, char **argv) {
  struct CMUnitTest *chosen = malloc(sizeof *chosen * (n + 1));
  int k = argc > 1 && strcmp(argv[1], "all") ? select_tests(tests, n, argv[1], chosen)
                                             : (memcpy(chosen, tests, sizeof *tests * n), (int)n);
  if (k <= 0 || argc > 3) {
    fprintf(stderr, "usage: %s [all|TEST,...|-TEST,... [K/N]]: '%s' names a test the "
            "program does not have, or none\n", argv[0], argc > 1 ? argv[1] : "");
    exit(2);
  }
  if (argc == 3 && parse_shard(argv[2])) {
    fprintf(stderr, "%s: '%s' is not K/N with 0 <= K < N\n", argv[0], argv[2]);
    exit(2);
  }
  if (chdir(MLPC_SOURCE_DIR))
    perror(MLPC_SOURCE_DIR);
  int failed = _cmocka_run_group_tests("tests", chosen, (size_t)k, setup, teardown);
  free(chosen);
  return failed;
}
