/*
 * weights.c — parameters and buffers in the safetensors format: an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian data. Names are those
 * of the equivalent PyTorch module (fc1.weight, norm1.running_var, ...),
 * so a file moves between mlpc and PyTorch unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include "../mlpc.h"

#define MAX_HEADER (64 << 20)

static const char *const st_dtypes[] = {[RT_F32] = "F32", [RT_F64] = "F64", [RT_I64] = "I64"};
static const int st_sizes[] = {[RT_F32] = 4, [RT_F64] = 8, [RT_I64] = 8};

/* Whether a tensor belongs in a weight file: parameters and buffers. */
static int saved(const RtTensor *t) { return t->kind != RT_GRAD && t->kind != RT_STATE; }

/* Elements of t; a counter (I64) is a scalar of shape []. */
static long numel(const RtTensor *t) {
  return t->ndim == 1 ? t->shape[0] : (long)t->shape[0] * t->shape[1];
}

/* Where element i (row-major order of the shape) of t is stored. */
static long stored_at(const RtTensor *t, long i) {
  return t->transposed ? i % t->shape[1] * t->shape[0] + i / t->shape[1] : i;
}

/* Writes t's data in row-major order; 0 or -1. */
static int write_data(const RtTensor *t, FILE *f) {
  size_t sz = st_sizes[t->dtype];
  if (!t->transposed)
    return fwrite(t->data, sz, numel(t), f) == (size_t)numel(t) ? 0 : -1;
  for (long i = 0; i < numel(t); i++)
    if (fwrite((char *)t->data + stored_at(t, i) * sz, sz, 1, f) != 1)
      return -1;
  return 0;
}

/* Copies row-major data src into t, in t's layout. */
static void read_data(const RtTensor *t, const unsigned char *src) {
  size_t sz = st_sizes[t->dtype];
  if (!t->transposed)
    memcpy(t->data, src, numel(t) * sz);
  else
    for (long i = 0; i < numel(t); i++)
      memcpy((char *)t->data + stored_at(t, i) * sz, src + i * sz, sz);
}

/* The shape as PyTorch has it. */
static json_t *shape_of(const RtTensor *t) {
  json_t *a = json_array();
  if (t->dtype != RT_I64)
    for (int d = 0; d < t->ndim; d++)
      json_array_append_new(a, json_integer(t->shape[d]));
  return a;
}

/* The JSON header for net; the data follow in table order. */
static char *make_header(const RtNet *net, size_t *len) {
  json_t *h = json_object();
  long off = 0;
  for (int i = 0; i < net->ntensors; i++) {
    const RtTensor *t = &net->tensors[i];
    if (!saved(t))
      continue;
    long end = off + numel(t) * st_sizes[t->dtype];
    json_object_set_new(h, t->name, json_pack("{s:s, s:o, s:[I,I]}", "dtype",
                        st_dtypes[t->dtype], "shape", shape_of(t),
                        "data_offsets", (json_int_t)off, (json_int_t)end));
    off = end;
  }
  json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
  char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(h);
  *len = s ? strlen(s) : 0;
  return s;
}

int rt_save_weights(const RtNet *net, const char *path, char *err, size_t errlen) {
  size_t hlen;
  char *hdr = make_header(net, &hlen);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE *f = hdr ? fopen(tmp, "wb") : NULL;
  if (!f) {
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    free(hdr);
    return -1;
  }
  size_t padded = (hlen + 7) / 8 * 8; /* data 8-byte aligned, padded with spaces */
  unsigned char n8[8];
  for (int i = 0; i < 8; i++)
    n8[i] = (unsigned char)((unsigned long long)padded >> (8 * i));
  int ok = fwrite(n8, 8, 1, f) == 1 && fwrite(hdr, 1, hlen, f) == hlen;
  for (size_t i = hlen; ok && i < padded; i++)
    ok = putc(' ', f) != EOF;
  for (int i = 0; ok && i < net->ntensors; i++) {
    const RtTensor *t = &net->tensors[i];
    if (saved(t))
      ok = write_data(t, f) == 0;
  }
  free(hdr);
  if (fclose(f) || !ok || rename(tmp, path)) {
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    remove(tmp);
    return -1;
  }
  return 0;
}

/* ---- loading ---- */

typedef struct {
  const char *path;
  unsigned char *buf;
  size_t len;        /* whole file                                      */
  size_t data;       /* where the data section starts                   */
  char *err;
  size_t errlen;
} File;

/* Reads the whole file; 0 or -1. */
static int slurp(File *F) {
  FILE *f = fopen(F->path, "rb");
  if (!f) {
    snprintf(F->err, F->errlen, "%s: cannot open: %s", F->path, strerror(errno));
    return -1;
  }
  size_t cap = 1 << 16;
  F->buf = malloc(cap);
  F->len = 0;
  size_t n;
  while (F->buf && (n = fread(F->buf + F->len, 1, cap - F->len, f)) > 0)
    if ((F->len += n) == cap)
      F->buf = realloc(F->buf, cap *= 2);
  int bad = !F->buf || ferror(f);
  fclose(f);
  if (bad)
    snprintf(F->err, F->errlen, "%s: cannot read", F->path);
  return bad ? -1 : 0;
}

/* Checks one header entry against the model tensor t and copies its data. */
static int load_tensor(File *F, const RtTensor *t, json_t *e, unsigned char *seen) {
  const char *dtype;
  json_t *shape, *offs;
  if (json_unpack(e, "{s:s, s:o, s:o}", "dtype", &dtype, "shape", &shape,
                  "data_offsets", &offs)) {
    snprintf(F->err, F->errlen, "%s: %s: header entry needs dtype, shape and data_offsets",
             F->path, t->name);
    return -1;
  }
  if (strcmp(dtype, st_dtypes[t->dtype])) {
    snprintf(F->err, F->errlen, "%s: %s: dtype %s, the model needs %s", F->path, t->name,
             dtype, st_dtypes[t->dtype]);
    return -1;
  }
  json_t *want = shape_of(t);
  int same = json_equal(want, shape);
  char *ws = json_dumps(want, JSON_COMPACT), *gs = json_dumps(shape, JSON_COMPACT);
  if (!same)
    snprintf(F->err, F->errlen, "%s: %s: shape %s, the model needs %s", F->path, t->name,
             gs ? gs : "?", ws ? ws : "?");
  free(ws);
  free(gs);
  json_decref(want);
  if (!same)
    return -1;
  json_int_t b, e2;
  size_t bytes = (size_t)numel(t) * st_sizes[t->dtype];
  if (json_unpack(offs, "[I,I]", &b, &e2) || b < 0 || e2 - b != (json_int_t)bytes ||
      (size_t)e2 > F->len - F->data) {
    snprintf(F->err, F->errlen, "%s: %s: data_offsets do not hold %zu bytes inside the file",
             F->path, t->name, bytes);
    return -1;
  }
  for (json_int_t i = b; i < e2; i++)
    if (seen[i]++) {
      snprintf(F->err, F->errlen, "%s: %s: data overlaps another tensor's", F->path, t->name);
      return -1;
    }
  read_data(t, F->buf + F->data + b);
  return 0;
}

/* Checks that every name in the header is one of the model's. */
static int check_names(File *F, const RtNet *net, json_t *h) {
  const char *key;
  json_t *v;
  json_object_foreach(h, key, v) {
    int known = !strcmp(key, "__metadata__");
    for (int i = 0; i < net->ntensors && !known; i++)
      known = saved(&net->tensors[i]) && !strcmp(net->tensors[i].name, key);
    if (!known) {
      snprintf(F->err, F->errlen, "%s: %s: no such tensor in model %s", F->path, key,
               net->name);
      return -1;
    }
  }
  return 0;
}

/* Parses the header; NULL with err set. */
static json_t *read_header(File *F) {
  if (F->len < 8) {
    snprintf(F->err, F->errlen, "%s: not a safetensors file (%zu bytes)", F->path, F->len);
    return NULL;
  }
  unsigned long long n = 0;
  for (int i = 7; i >= 0; i--)
    n = n << 8 | F->buf[i];
  if (n > MAX_HEADER || n > F->len - 8) {
    snprintf(F->err, F->errlen, "%s: header length %llu does not fit the file (%zu bytes)",
             F->path, n, F->len);
    return NULL;
  }
  F->data = 8 + n;
  json_error_t je;
  json_t *h = json_loadb((const char *)F->buf + 8, n, JSON_REJECT_DUPLICATES, &je);
  if (!h || !json_is_object(h)) {
    snprintf(F->err, F->errlen, "%s: header is not a JSON object: %s", F->path,
             h ? "wrong type" : je.text);
    json_decref(h);
    return NULL;
  }
  return h;
}

int rt_load_weights(const RtNet *net, const char *path, char *err, size_t errlen) {
  File F = {.path = path, .err = err, .errlen = errlen};
  json_t *h = NULL;
  unsigned char *seen = NULL;
  int rc = -1;
  if (slurp(&F) || !(h = read_header(&F)) || check_names(&F, net, h))
    goto done;
  if (!(seen = calloc(F.len - F.data + 1, 1))) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto done;
  }
  for (int i = 0; i < net->ntensors; i++) {
    const RtTensor *t = &net->tensors[i];
    if (!saved(t))
      continue;
    json_t *e = json_object_get(h, t->name);
    if (!e) {
      snprintf(err, errlen, "%s: %s: missing (the model needs it)", path, t->name);
      goto done;
    }
    if (load_tensor(&F, t, e, seen))
      goto done;
  }
  rc = 0;
done:
  free(seen);
  json_decref(h);
  free(F.buf);
  return rc;
}
