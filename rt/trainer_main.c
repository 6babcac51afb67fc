/*
 * trainer_main.c — main() of a standalone trainer: the model's defaults
 * (trainer_defaults, trainer_data), overridden by the same run flags as
 * `mlpc --run`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

/* The fma arithmetic (MLPC_FMA) built without FMA instructions on x86:
   every fused multiply-add of the kernels is then a call to the C
   library's fma, correct, but some 75 times slower. */
#if defined(MLPC_FMA) && !defined(__FMA__) && (defined(__x86_64__) || defined(__i386__))
#warning "built without FMA instructions: each fused multiply-add of the fma arithmetic \
is a call to the C library, correct but about 75 times slower; build with -march=native \
(or -mfma), or emit the trainer with --strict"
#endif

static const char trainer_usage[] =
  "usage: %s [--data DIR] [--epochs N] [--max-batches N] [--seed N]\n"
  "          [--no-shuffle] [--json] [--health]\n"
  "Trains the model this file was generated for and prints train loss,\n"
  "test loss and test accuracy after each epoch (and the validation loss\n"
  "and accuracy, when the model holds out a validation split); with\n"
  "--health also the health figures of each layer and parameter, as mlpc\n"
  "--health does.\n"
  "Exit status: 0 success, 2 bad flags or data, 1 divergence.\n";

/* Parses a whole decimal integer in [lo, hi]; exits 2 otherwise. */
static long long trainer_int(const char *flag, const char *s, long long lo,
                             long long hi) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!*s || *end || errno || v < lo || v > hi) {
    fprintf(stderr, "trainer: %s: error: expected an integer in [%lld, %lld], got '%s'\n",
            flag, lo, hi, s);
    exit(2);
  }
  return v;
}

/* The exit status once standard output is flushed: a failed write of it
   (a full disk, /dev/full) is an error, status 1 unless one is given. */
static int trainer_flushed(int status) {
  errno = 0;
  int failed = fflush(stdout) != 0, e = errno;
  if (!failed && !ferror(stdout))
    return status;
  fprintf(stderr, "trainer: error: cannot write the standard output: %s\n",
          failed && e ? strerror(e) : "a write failed");
  return status ? status : 1;
}

int main(int argc, char **argv) {
  RtOptions o = trainer_defaults;
  const char *data = trainer_data;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf(trainer_usage, argv[0]);
      return trainer_flushed(0);
    } else if (!strcmp(a, "--no-shuffle"))
      o.shuffle = 0;
    else if (!strcmp(a, "--json"))
      o.json = 1;
    else if (!strcmp(a, "--health"))
      o.health = 1;
    else if (!strcmp(a, "--data") && v)
      data = v, i++;
    else if (!strcmp(a, "--epochs") && v)
      o.epochs = (int)trainer_int(a, v, 1, 100000), i++;
    else if (!strcmp(a, "--max-batches") && v)
      o.max_batches = trainer_int(a, v, 1, 1LL << 40), i++;
    else if (!strcmp(a, "--seed") && v)
      o.seed = (uint64_t)trainer_int(a, v, 0, 0x7fffffffffffffffLL), i++;
    else {
      fprintf(stderr, "trainer: error: unknown or incomplete flag '%s'\n", a);
      fprintf(stderr, trainer_usage, argv[0]);
      return 2;
    }
  }
  char dir[4096];
  o.data = rt_data_dir(data, dir, sizeof dir);
  const RtNet *net = mlpc_net();
  rt_init(net, o.seed);
  return trainer_flushed(rt_train(net, &o));
}
