/*
 * fuzz_weights.c — the safetensors reader (backend/weights.c) on
 * arbitrary files, loading into a small fixed model: 6-5-3 with
 * BatchNorm, float32 (the tensor table written out by hand, as generated
 * code would define it). Every input must load or be refused with a
 * message naming the file, and a refusal must leave the model as it was.
 *
 * Seeds: tests/fuzz/weights, whose valid.safetensors is this model's
 * own file, written by
 *   MLPC_FUZZ_SEEDS=tests/fuzz/weights build/tests/fuzz_weights /dev/null
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../mlpc.h"

static float w1[5 * 6], b1[5], g1[5], be1[5], rm1[5], rv1[5], dw1[5 * 6], w2[3 * 5], b2[3];
static long long nbt[1];

#define T(name, kind, dtype, ndim, r, c, data) {name, kind, dtype, ndim, {r, c}, 6, 5, data, 0, 0}
static RtTensor tensors[] = {
  T("fc1.weight", RT_WEIGHT, RT_F32, 2, 5, 6, w1),
  T("fc1.bias", RT_BIAS, RT_F32, 1, 5, 0, b1),
  T("norm1.weight", RT_GAMMA, RT_F32, 1, 5, 0, g1),
  T("norm1.bias", RT_BETA, RT_F32, 1, 5, 0, be1),
  T("norm1.running_mean", RT_BUF_ZERO, RT_F32, 1, 5, 0, rm1),
  T("norm1.running_var", RT_BUF_ONE, RT_F32, 1, 5, 0, rv1),
  T("norm1.num_batches_tracked", RT_BUF_ZERO, RT_I64, 1, 1, 0, nbt),
  T("fc1.weight.grad", RT_GRAD, RT_F32, 2, 5, 6, dw1),
  T("fc2.weight", RT_WEIGHT, RT_F32, 2, 3, 5, w2),
  T("fc2.bias", RT_BIAS, RT_F32, 1, 3, 0, b2),
};
#undef T

static const RtNet net = {
  .name = "fuzz", .input = 6, .output = 3, .batch = 4, .dtype = RT_F32,
  .has_batchnorm = 1, .ntensors = sizeof tensors / sizeof tensors[0], .tensors = tensors,
};

static char path[64];

/* Says what went wrong and stops: a finding. */
static void finding(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_weights: %s: %s\n", what, detail);
  abort();
}

/* A checksum of every tensor's bytes, to see that a refusal changed none. */
static uint64_t state(void) {
  uint64_t h = RT_FNV_OFFSET;
  for (int k = 0; k < net.ntensors; k++) {
    const RtTensor *t = &tensors[k];
    h = rt_fnv(h, t->data, (size_t)rt_numel(t) * (t->dtype == RT_F32 ? 4 : 8));
  }
  return h;
}

/* Writes the seed: this model's own weights, with distinct values. */
static void write_seed(const char *dir) {
  char p[512], err[1024];
  for (int k = 0; k < net.ntensors; k++)
    for (int i = 0; i < tensors[k].shape[0]; i++)
      if (tensors[k].dtype == RT_F32)
        ((float *)tensors[k].data)[i] = (float)(k + i * 0.25);
  nbt[0] = 3;
  snprintf(p, sizeof p, "%s/valid.safetensors", dir);
  if (rt_save_weights(&net, p, err, sizeof err))
    finding("seed", err);
}

/* Removes the harness's file when the process ends. */
static void cleanup(void) {
  remove(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  atexit(cleanup);
  snprintf(path, sizeof path, "/tmp/mlpc-fuzz-weights-%ld.safetensors", (long)getpid());
  if (getenv("MLPC_FUZZ_SEEDS"))
    write_seed(getenv("MLPC_FUZZ_SEEDS"));
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[4096] = "";
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f))
    finding(path, "cannot write");
  uint64_t before = state();
  int rc = rt_load_weights(&net, path, err, sizeof err);
  if (rc && strncmp(err, path, strlen(path)))
    finding("a refusal that names no file", err);
  if (rc && state() != before)
    finding("a refusal changed the model", err);
  return 0;
}
