/*
 * weights.c — parameters and buffers in the safetensors format: an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the raw little-endian data. Names are those
 * of the equivalent PyTorch module (fc1.weight, norm1.running_var, ...),
 * so a file moves between mlpc and PyTorch unchanged. Data are written
 * in the host's byte order, which must be little-endian (x86-64, arm64).
 *
 * Loading checks every name, dtype, shape and byte range against the
 * model before it copies anything, and names everything that does not fit.
 */
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include "../mlpc.h"

#define MAX_HEADER (64 << 20)

static const char *const st_dtypes[] = {[RT_F32] = "F32", [RT_F64] = "F64", [RT_I64] = "I64"};
static const int st_sizes[] = {[RT_F32] = 4, [RT_F64] = 8, [RT_I64] = 8};

/* Whether a tensor belongs in a weight file: parameters and buffers. */
static int saved(const RtTensor *t) {
  return t->kind != RT_GRAD && t->kind != RT_STATE && t->kind != RT_SEED;
}

/* Writes t's data in row-major order; 0 or -1. */
static int write_data(const RtTensor *t, FILE *f) {
  size_t sz = st_sizes[t->dtype];
  if (!t->transposed)
    return fwrite(t->data, sz, rt_numel(t), f) == (size_t)rt_numel(t) ? 0 : -1;
  for (long i = 0; i < rt_numel(t); i++)
    if (fwrite((char *)t->data + rt_offset(t, i) * sz, sz, 1, f) != 1)
      return -1;
  return 0;
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
    long end = off + rt_numel(t) * st_sizes[t->dtype];
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

/* Writes the header's length and the header, padded with spaces so that
   the data start 8-byte aligned; whether all of it went. */
static int write_header(FILE *f, const char *hdr, size_t hlen) {
  size_t padded = (hlen + 7) / 8 * 8;
  unsigned char n8[8];
  for (int i = 0; i < 8; i++)
    n8[i] = (unsigned char)((unsigned long long)padded >> (8 * i));
  int ok = fwrite(n8, 8, 1, f) == 1 && fwrite(hdr, 1, hlen, f) == hlen;
  for (size_t i = hlen; ok && i < padded; i++)
    ok = putc(' ', f) != EOF;
  return ok;
}

/* Writes the header and net's data (rt_write_file's body for
   rt_save_weights); 0 or an errno value. */
static int write_body(FILE *f, const void *ctx) {
  const RtNet *net = ctx;
  size_t hlen;
  char *hdr = make_header(net, &hlen);
  if (!hdr)
    return ENOMEM;
  int ok = write_header(f, hdr, hlen);
  for (int i = 0; ok && i < net->ntensors; i++) {
    const RtTensor *t = &net->tensors[i];
    if (saved(t))
      ok = write_data(t, f) == 0;
  }
  int e = ok ? 0 : errno ? errno : EIO;
  free(hdr);
  return e;
}

/* Written whole (rt_write_file), so that a failure (a full disk) leaves
   path as it was; weights that are not all finite are not written. */
int rt_save_weights(const RtNet *net, const char *path, char *err, size_t errlen) {
  char what[256];
  if (rt_check_finite(net, what, sizeof what)) {
    snprintf(err, errlen, "%s: not written: %s", path, what);
    return -1;
  }
  return rt_write_file(path, write_body, net, err, errlen);
}

/* ---- loading ---- */

#define MAX_PROBLEMS 8

typedef struct {
  const char *path;
  const RtNet *net;
  unsigned char *buf;
  size_t len;        /* whole file                                      */
  size_t data;       /* where the data section starts                   */
  char *err;
  size_t errlen;
  int problems;      /* what does not fit, so far                       */
} File;

/* Adds one line "FILE: NAME: what" to the message (the first
   MAX_PROBLEMS of them; a last line counts the rest). */
static void problem(File *F, const char *name, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void problem(File *F, const char *name, const char *fmt, ...) {
  size_t used = F->problems ? strlen(F->err) : 0;
  if (F->problems++ >= MAX_PROBLEMS || used + 1 >= F->errlen)
    return;
  if (used)
    F->err[used++] = '\n';
  int n = snprintf(F->err + used, F->errlen - used, "%s: %s: ", F->path, name);
  if (n < 0 || (size_t)n >= F->errlen - used)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(F->err + used + n, F->errlen - used - n, fmt, ap);
  va_end(ap);
}

/* The most bytes a weight file for F's model can have: the length, the
   largest header we read, and the data of every saved tensor. */
static size_t max_file(const File *F) {
  size_t n = 8 + MAX_HEADER;
  for (int i = 0; i < F->net->ntensors; i++)
    if (saved(&F->net->tensors[i]))
      n += (size_t)rt_numel(&F->net->tensors[i]) * st_sizes[F->net->tensors[i].dtype];
  return n;
}

/* Reads the whole file, refusing one larger than the model's weights
   could make (before allocating for it, when it is a regular file); 0 or
   -1 with err set. */
static int slurp(File *F) {
  FILE *f = fopen(F->path, "rb");
  struct stat st;
  if (!f) {
    snprintf(F->err, F->errlen, "%s: cannot open: %s", F->path, strerror(errno));
    return -1;
  }
  size_t cap = 1 << 16, max = max_file(F), n;
  int too_large = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
                  (uintmax_t)st.st_size > max;
  F->buf = too_large ? NULL : malloc(cap);
  F->len = 0;
  while (F->buf && (n = fread(F->buf + F->len, 1, cap - F->len, f)) > 0) {
    if ((F->len += n) < cap)
      continue;
    too_large = cap > max; /* a pipe or device that goes on */
    unsigned char *more = too_large ? NULL : realloc(F->buf, 2 * cap);
    if (!more)
      free(F->buf);
    F->buf = more, cap *= 2;
  }
  int e = errno, bad = !F->buf || ferror(f);
  fclose(f);
  if (too_large)
    snprintf(F->err, F->errlen, "%s: larger than a weight file of model %s can be (%zu bytes "
             "at most)", F->path, F->net->name, max);
  else if (bad)
    snprintf(F->err, F->errlen, "%s: cannot read: %s", F->path,
             F->buf ? strerror(e) : "out of memory");
  return bad ? -1 : 0;
}

/* A JSON value as compact text, for messages (freed by the caller). */
static char *text_of(json_t *v) {
  char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  return s ? s : strdup("?");
}

/* Checks that the entry's shape is t's; reports it otherwise. */
static int check_shape(File *F, const RtTensor *t, json_t *shape) {
  json_t *want = shape_of(t);
  int same = json_equal(want, shape);
  if (!same) {
    char *ws = text_of(want), *gs = text_of(shape);
    problem(F, t->name, "shape %s, the model needs %s", gs, ws);
    free(ws);
    free(gs);
  }
  json_decref(want);
  return same ? 0 : -1;
}

/* Checks that t's data at p (row-major, as in the file) are all finite:
   a weight that is NaN or infinite is not a weight. */
static int check_finite(File *F, const RtTensor *t, const unsigned char *p) {
  const char *what;
  long at, bad = rt_nonfinite(t, p, 1, &at, &what);
  if (bad)
    problem(F, t->name, "element %ld is %s (not finite: %ld of its %ld elements): weights "
            "must be finite numbers", at, what, bad, rt_numel(t));
  return bad ? -1 : 0;
}

/* Element i of t's data at p (as in the file) as a double. */
static double file_value(const RtTensor *t, const unsigned char *p, long i) {
  float f;
  double d;
  long long k;
  if (t->dtype == RT_F32)
    return memcpy(&f, p + 4 * i, 4), f;
  if (t->dtype == RT_F64)
    return memcpy(&d, p + 8 * i, 8), d;
  return memcpy(&k, p + 8 * i, 8), (double)k;
}

/* Checks that a buffer's values can be what they stand for: a count of
   batches (num_batches_tracked) in 0 .. 2^53, a running variance not
   negative. */
static int check_buffer(File *F, const RtTensor *t, const unsigned char *p) {
  int count = t->dtype == RT_I64, var = t->kind == RT_BUF_ONE;
  for (long i = 0; (count || var) && i < rt_numel(t); i++) {
    double v = file_value(t, p, i);
    if (count && (v < 0 || v > 9007199254740992.0)) {
      problem(F, t->name, "element %ld is %.0f: a count of batches is 0 to 2^53", i, v);
      return -1;
    }
    if (var && v < 0) {
      problem(F, t->name, "element %ld is %g: a variance is not negative", i, v);
      return -1;
    }
  }
  return 0;
}

/* Checks one header entry against the model tensor t: dtype, shape, a
   byte range inside the data that no other tensor uses, finite values,
   and buffers that can be what they stand for. */
static int check_tensor(File *F, const RtTensor *t, json_t *e, unsigned char *seen) {
  const char *dtype;
  json_t *shape, *offs;
  json_int_t b, end;
  if (json_unpack(e, "{s:s, s:o, s:o}", "dtype", &dtype, "shape", &shape, "data_offsets",
                  &offs)) {
    problem(F, t->name, "the header entry needs dtype, shape and data_offsets");
    return -1;
  }
  if (strcmp(dtype, st_dtypes[t->dtype])) {
    problem(F, t->name, "dtype %s, the model needs %s%s", dtype, st_dtypes[t->dtype],
            t->dtype == RT_I64 ? "" : t->dtype == RT_F32 ? " (a float32 model)"
                                                          : " (a float64 model)");
    return -1;
  }
  if (check_shape(F, t, shape))
    return -1;
  size_t bytes = (size_t)rt_numel(t) * st_sizes[t->dtype];
  if (json_unpack(offs, "[I,I!]", &b, &end) || b < 0 || end < b ||
      end - b != (json_int_t)bytes || (size_t)end > F->len - F->data) {
    char *os = text_of(offs);
    problem(F, t->name, "data_offsets %s do not hold its %zu bytes inside the %zu bytes "
            "of data", os, bytes, F->len - F->data);
    free(os);
    return -1;
  }
  for (json_int_t i = b; i < end; i++)
    if (seen[i]++) {
      problem(F, t->name, "its data overlap another tensor's");
      return -1;
    }
  return check_finite(F, t, F->buf + F->data + b) || check_buffer(F, t, F->buf + F->data + b)
             ? -1 : 0;
}

/* Reports every name in the header that is not one of the model's. */
static void check_names(File *F, json_t *h) {
  const char *key;
  json_t *v;
  json_object_foreach(h, key, v) {
    int known = !strcmp(key, "__metadata__");
    for (int i = 0; i < F->net->ntensors && !known; i++)
      known = saved(&F->net->tensors[i]) && !strcmp(F->net->tensors[i].name, key);
    if (!known)
      problem(F, key, "no such tensor in model %s", F->net->name);
  }
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

/* Checks every tensor of the model against the header; the number of
   problems. */
static int check_all(File *F, json_t *h, unsigned char *seen) {
  check_names(F, h);
  for (int i = 0; i < F->net->ntensors; i++) {
    const RtTensor *t = &F->net->tensors[i];
    json_t *e = saved(t) ? json_object_get(h, t->name) : NULL;
    if (saved(t) && !e)
      problem(F, t->name, "missing (the model needs it)");
    else if (e)
      check_tensor(F, t, e, seen);
  }
  if (F->problems > MAX_PROBLEMS) {
    size_t used = strlen(F->err);
    snprintf(F->err + used, F->errlen - used, "\n%s: and %d more that do not fit", F->path,
             F->problems - MAX_PROBLEMS);
  }
  return F->problems;
}

/* Copies every tensor's data, once all of them fit. */
static void copy_all(File *F, json_t *h) {
  for (int i = 0; i < F->net->ntensors; i++) {
    const RtTensor *t = &F->net->tensors[i];
    json_int_t b = 0;
    if (!saved(t))
      continue;
    json_unpack(json_object_get(json_object_get(h, t->name), "data_offsets"), "[I,I!]", &b,
                &(json_int_t){0});
    rt_copy_rows(t, F->buf + F->data + b, 0);
  }
}

/* Checks everything first and copies nothing unless all of it fits, so a
   refused file leaves the model as it was. */
int rt_load_weights(const RtNet *net, const char *path, char *err, size_t errlen) {
  File F = {.path = path, .net = net, .err = err, .errlen = errlen};
  json_t *h = NULL;
  unsigned char *seen = NULL;
  int rc = -1;
  err[0] = 0;
  if (slurp(&F) || !(h = read_header(&F)))
    goto done;
  if (!(seen = calloc(F.len - F.data + 1, 1))) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto done;
  }
  if (check_all(&F, h, seen) == 0) {
    copy_all(&F, h);
    rc = 0;
  }
done:
  free(seen);
  json_decref(h);
  free(F.buf);
  return rc;
}
