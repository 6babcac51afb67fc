/*
 * set.c — the kit of the data readers: a data set (RtSet) allocated,
 * filled and freed, and what the readers' messages and paths share
 * (dtype names and sizes, dimensions as "A x B", text made printable,
 * DIR/NAME). data.c and every format's reader (idx.c, npy.c, csv.c) call
 * it; it calls none of them. This file is pasted with the rest of the
 * runtime into standalone trainers, so it uses only libc.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "rt.h"

size_t rt_dtype_size(int dtype) {
  return dtype == RT_U8 ? 1 : dtype == RT_F32 ? 4 : 8;
}

const char *rt_dims_str(const long *dims, int ndims, char *buf, size_t len) {
  int n = snprintf(buf, len, "%ld", dims[0]);
  for (int i = 1; i < ndims && n >= 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - n, " x %ld", dims[i]);
  return buf;
}

int rt_join(char *path, size_t size, const char *dir, const char *name) {
  size_t d = strlen(dir);
  int n = snprintf(path, size, "%s%s%s", dir, d && dir[d - 1] == '/' ? "" : "/", name);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

int rt_set_alloc(RtSet *s, long n, long features, int dtype, const char *path, char *err,
                 size_t errlen) {
  size_t bytes;
  s->images = s->labels = NULL;
  s->map[0] = s->map[1] = NULL; /* its data are malloc's, for rt_free_set */
  if (rt_mul((size_t)n, (size_t)features, &bytes) ||
      rt_mul(bytes, rt_dtype_size(dtype), &bytes))
    return rt_fail(err, errlen, path, "%ld samples of %ld features overflow", n, features);
  if (rt_check_memory(bytes + (size_t)n, path, err, errlen))
    return -1;
  s->images = malloc(bytes ? bytes : 1);
  s->labels = malloc(n ? (size_t)n : 1);
  if (!s->images || !s->labels)
    return rt_fail(err, errlen, path, "out of memory for %ld samples", n);
  s->n = n;
  s->dtype = dtype;
  return 0;
}

int rt_set_real(RtSet *s, size_t i, double v) {
  if (s->dtype == RT_F64) {
    memcpy(s->images + 8 * i, &v, 8);
    return isfinite(v) ? 0 : -1;
  }
  float f = (float)v;
  memcpy(s->images + 4 * i, &f, 4);
  return isfinite(f) ? 0 : -1;
}

const char *rt_dtype_name(int dtype) {
  return dtype == RT_F64 ? "float64" : dtype == RT_F32 ? "float32" : "uint8";
}

const char *rt_printable(const char *s, char *buf, size_t len) {
  size_t n = 0;
  if (!len)
    return buf;
  for (; *s && n + 5 < len; s++)
    if ((unsigned char)*s < ' ' || (unsigned char)*s > '~')
      n += (size_t)snprintf(buf + n, len - n, "\\x%02x", (unsigned char)*s);
    else
      buf[n++] = *s;
  buf[n] = 0;
  return buf;
}

/* Frees or unmaps what a loader allocated and empties the set. */
void rt_free_set(RtSet *set) {
  unsigned char *data[2] = {set->images, set->labels};
  for (int i = 0; i < 2; i++)
    if (set->map[i])
      munmap(set->map[i], set->maplen[i]);
    else
      free(data[i]);
  memset(set, 0, sizeof *set);
}
