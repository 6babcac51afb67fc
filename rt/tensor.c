/*
 * tensor.c — the tensor kit of the runtime: a tensor's element count, where
 * an element is stored (linear weights are stored transposed, net.h), and
 * its elements copied in row-major order. Initialisation (train.c,
 * trng.c), the health figures (health.c) and the checks for values that
 * are not finite all count and address elements through it.
 */
#include <string.h>
#include "rt.h"

long rt_numel(const RtTensor *t) {
  long n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

long rt_offset(const RtTensor *t, long i) {
  return t->transposed ? i % t->shape[1] * t->shape[0] + i / t->shape[1] : i;
}

void rt_copy_rows(const RtTensor *t, void *rows, int to_rows) {
  size_t sz = t->dtype == RT_F32 ? 4 : 8;
  long n = rt_numel(t);
  if (!t->transposed)
    memcpy(to_rows ? rows : t->data, to_rows ? t->data : rows, n * sz);
  else
    for (long i = 0; i < n; i++) {
      char *row = (char *)rows + i * sz, *at = (char *)t->data + rt_offset(t, i) * sz;
      memcpy(to_rows ? row : at, to_rows ? at : row, sz);
    }
}
