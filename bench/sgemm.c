/*
 * sgemm.c — the machine's single-core sgemm rate, for the benchmark's
 * roofline: OpenBLAS (loaded at run time, so mlpc never links it) on one
 * thread, C = A·B for square float32 matrices of each size given, the
 * best of several repeats. Prints one JSON object.
 *
 *   cc -O2 bench/sgemm.c -o sgemm -ldl && ./sgemm [LIB] [N...]
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { ROW_MAJOR = 101, NO_TRANS = 111, REPEATS = 7 };

typedef void Sgemm(int, int, int, int, int, int, float, const float *, int, const float *,
                   int, float, float *, int);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The best GFLOP/s of REPEATS products of n × n matrices. */
static double rate(Sgemm *sgemm, int n) {
  size_t len = (size_t)n * n;
  float *a = malloc(len * 4), *b = malloc(len * 4), *c = malloc(len * 4);
  if (!a || !b || !c) {
    fprintf(stderr, "sgemm: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < len; i++)
    a[i] = b[i] = (float)(i % 17) * 0.01f;
  double best = 1e30;
  for (int r = 0; r < REPEATS; r++) {
    double t = now();
    sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, n, n, n, 1, a, n, b, n, 0, c, n);
    t = now() - t;
    best = t < best ? t : best;
  }
  free(a), free(b), free(c);
  return 2.0 * n * n * n / best / 1e9;
}

int main(int argc, char **argv) {
  const char *lib = argc > 1 ? argv[1] : "libopenblas.so.0";
  void *h = dlopen(lib, RTLD_NOW);
  Sgemm *sgemm = h ? (Sgemm *)dlsym(h, "cblas_sgemm") : NULL;
  void (*threads)(int) = h ? (void (*)(int))dlsym(h, "openblas_set_num_threads") : NULL;
  char *(*core)(void) = h ? (char *(*)(void))dlsym(h, "openblas_get_corename") : NULL;
  char *(*config)(void) = h ? (char *(*)(void))dlsym(h, "openblas_get_config") : NULL;
  if (!sgemm) {
    fprintf(stderr, "sgemm: cannot load cblas_sgemm from %s: %s\n", lib, dlerror());
    return 1;
  }
  if (threads)
    threads(1);
  printf("{\"library\": \"%s\", \"core\": \"%s\", \"config\": \"%s\", \"rates\": {", lib,
         core ? core() : "?", config ? config() : "?");
  for (int i = 2; i < argc || i == 2; i++) {
    int n = argc > i ? atoi(argv[i]) : 1024;
    printf("%s\"%d\": %.2f", i > 2 ? ", " : "", n, rate(sgemm, n));
  }
  printf("}}\n");
  return 0;
}
