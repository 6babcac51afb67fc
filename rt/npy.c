/*
 * npy.c — loads a data set stored as NumPy arrays, PREFIX_x.npy (the
 * samples) and PREFIX_y.npy (the labels), as np.save writes them:
 *
 *   93 'NUMPY' MAJOR MINOR   magic and version: 1.0, or 2.0
 *   u16 LE (1.0), u32 (2.0)  the header's length
 *   header                   a Python dict literal, padded with spaces:
 *                            {'descr': '<f4', 'fortran_order': False,
 *                             'shape': (60000, 784), }
 *   elements                 the array in C order, shape's product of them
 *
 * x is (n, features), (n, height, width) or (n, channels, height, width):
 * uint8 pixels (kept as bytes, which the model scales by 1/255 as IDX
 * pixels are), or float32 or float64, converted to the model's dtype and
 * then used as they are; every value must be finite. y is (n,) of any
 * integer dtype, each label in [0, classes). Either byte order; the
 * header is parsed as strictly as an IDX header, its counts checked
 * against the file's size with overflow checked, and every refusal names
 * the file and, in the header, the byte where it went wrong.
 *
 * This file is pasted with the rest of the runtime into standalone
 * trainers; its static helpers carry the npy_ prefix.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

/* The header text being parsed, and where a refusal goes. */
typedef struct {
  const unsigned char *buf;   /* the file                                 */
  size_t at, end;             /* the next byte; the header's end          */
  const char *path;
  char *err;
  size_t errlen;
} NpyText;

/* Refuses the header at the current byte: "PATH: .npy header, byte K: ...",
   the file's bytes in it shown printable. */
static int npy_bad(NpyText *t, const char *what) {
  char shown[512];
  return rt_fail(t->err, t->errlen, t->path, ".npy header, byte %zu: %s", t->at,
                 rt_printable(what, shown, sizeof shown));
}

/* Skips spaces (and the newline that ends the header). */
static void npy_space(NpyText *t) {
  while (t->at < t->end && (t->buf[t->at] == ' ' || t->buf[t->at] == '\n' ||
                            t->buf[t->at] == '\t' || t->buf[t->at] == '\r'))
    t->at++;
}

/* Takes the character c, after spaces; 0, or -1 when it is not there. */
static int npy_take(NpyText *t, char c) {
  npy_space(t);
  if (t->at < t->end && t->buf[t->at] == c)
    return t->at++, 0;
  return -1;
}

/* A quoted string: 'text' or "text", without escapes, into s. */
static int npy_string(NpyText *t, char *s, size_t size) {
  npy_space(t);
  char q = t->at < t->end ? (char)t->buf[t->at] : 0;
  size_t n = 0;
  if (q != '\'' && q != '"')
    return npy_bad(t, "expected a quoted string");
  for (t->at++; t->at < t->end && t->buf[t->at] != q; t->at++) {
    if (t->buf[t->at] == '\\' || t->buf[t->at] < ' ' || n + 1 >= size)
      return npy_bad(t, "a string too long, or with an escape or a control character");
    s[n++] = (char)t->buf[t->at];
  }
  if (t->at == t->end)
    return npy_bad(t, "a string without its closing quote");
  t->at++;
  s[n] = 0;
  return 0;
}

/* True or False. */
static int npy_bool(NpyText *t, int *v) {
  npy_space(t);
  const char *p = (const char *)t->buf + t->at;
  size_t left = t->end - t->at;
  if (left >= 4 && !memcmp(p, "True", 4))
    return *v = 1, t->at += 4, 0;
  if (left >= 5 && !memcmp(p, "False", 5))
    return *v = 0, t->at += 5, 0;
  return npy_bad(t, "fortran_order: expected True or False");
}

/* A dimension: decimal digits, at most LONG_MAX. */
static int npy_dim(NpyText *t, long *v) {
  npy_space(t);
  size_t start = t->at;
  unsigned long long d = 0;
  for (; t->at < t->end && t->buf[t->at] >= '0' && t->buf[t->at] <= '9'; t->at++) {
    d = d * 10 + (t->buf[t->at] - '0');
    if (d > LONG_MAX)
      return npy_bad(t, "shape: a dimension too large");
  }
  if (t->at == start)
    return npy_bad(t, "shape: expected a dimension (a whole number)");
  *v = (long)d;
  return 0;
}

/* shape: a tuple of dimensions, "()", "(5,)", "(5, 3)" (a trailing
   comma allowed). */
static int npy_shape(NpyText *t, RtNpy *h) {
  if (npy_take(t, '('))
    return npy_bad(t, "shape: expected a tuple, (n, ...)");
  for (h->ndim = 0; npy_take(t, ')'); h->ndim++) {
    if (h->ndim == RT_NPY_MAXDIM)
      return npy_bad(t, "shape: more than 8 dimensions");
    if (npy_dim(t, &h->shape[h->ndim]))
      return -1;
    if (npy_take(t, ',') && (npy_space(t), t->at < t->end && t->buf[t->at] != ')'))
      return npy_bad(t, "shape: expected ',' or ')'");
  }
  return 0;
}

/* The name of a numeric dtype, "uint8" ... "float64", into buf. */
static const char *npy_type_name(char kind, int size, char *buf, size_t len) {
  snprintf(buf, len, "%s%d", kind == 'u' ? "uint" : kind == 'i' ? "int" : "float",
           8 * size);
  return buf;
}

/* descr: a byte order ('<', '>', or '|' for single bytes), a kind and a
   size: unsigned and signed integers of 1, 2, 4 or 8 bytes, float32 and
   float64. */
static int npy_descr(NpyText *t, RtNpy *h) {
  char d[64], msg[200];
  npy_space(t);
  if (t->at < t->end && t->buf[t->at] == '[')
    return npy_bad(t, "descr: a structured dtype (a list of fields): expected an array of "
                   "numbers");
  size_t at = t->at;
  if (npy_string(t, d, sizeof d))
    return -1;
  char order = d[0], kind = d[0] ? d[1] : 0;
  int size = kind && d[2] >= '1' && d[2] <= '8' && !d[3] ? d[2] - '0' : 0;
  int number = (kind == 'u' || kind == 'i') ? size == 1 || size == 2 || size == 4 ||
               size == 8 : kind == 'f' && (size == 4 || size == 8);
  if (!order || !strchr("<>|", order) || !number || (order == '|' && size != 1)) {
    snprintf(msg, sizeof msg, "dtype '%s': expected integers (u1 ... i8), float32 or "
             "float64, in either byte order", d);
    t->at = at;
    return npy_bad(t, msg);
  }
  h->kind = kind;
  h->size = size;
  h->big = order == '>';
  return 0;
}

/* One key and its value; seen gets the key's bit. */
static int npy_item(NpyText *t, RtNpy *h, int *fortran, int *seen) {
  static const char *const keys[] = {"descr", "fortran_order", "shape"};
  char key[32];
  size_t at = t->at;
  if (npy_string(t, key, sizeof key))
    return -1;
  int k = 0;
  while (k < 3 && strcmp(key, keys[k]))
    k++;
  if (k == 3 || (*seen >> k & 1)) {
    t->at = at;
    return npy_bad(t, k == 3 ? "a key other than 'descr', 'fortran_order' and 'shape'"
                             : "a key given twice");
  }
  *seen |= 1 << k;
  if (npy_take(t, ':'))
    return npy_bad(t, "expected ':'");
  return k == 0 ? npy_descr(t, h) : k == 1 ? npy_bool(t, fortran) : npy_shape(t, h);
}

/* The header dict: its three keys, in any order, each once. */
static int npy_dict(NpyText *t, RtNpy *h, int *fortran) {
  int seen = 0;
  if (npy_take(t, '{'))
    return npy_bad(t, "expected '{', a dict");
  while (npy_take(t, '}')) {
    if (t->at == t->end)
      return npy_bad(t, "the dict is not closed: expected '}'");
    if (npy_item(t, h, fortran, &seen))
      return -1;
    if (npy_take(t, ',') && (npy_space(t), t->at < t->end && t->buf[t->at] != '}'))
      return npy_bad(t, "expected ',' or '}'");
  }
  npy_space(t);
  if (t->at != t->end)
    return npy_bad(t, "text after the dict");
  if (seen != 7)
    return rt_fail(t->err, t->errlen, t->path, ".npy header: no '%s'",
                   !(seen & 1) ? "descr" : !(seen & 2) ? "fortran_order" : "shape");
  return 0;
}

/* The magic, the version and the header's length: where the header
   starts (*start) and ends (*end); 0 while fewer than the bytes needed to
   tell; -1 when not a .npy file of version 1.0 or 2.0. */
static int npy_frame(NpyText *t, size_t len, size_t *start, size_t *end) {
  const unsigned char *b = t->buf;
  if (len < 8 && (!len || !memcmp(b, "\x93NUMPY", len < 6 ? len : 6)))
    return 0;  /* (no bytes yet: b may be NULL) */
  if (len < 8 || memcmp(b, "\x93NUMPY", 6))
    return rt_fail(t->err, t->errlen, t->path, "not a .npy file (it does not start with "
                   "\\x93NUMPY)");
  if ((b[6] != 1 && b[6] != 2) || b[7])
    return rt_fail(t->err, t->errlen, t->path, ".npy version %d.%d: expected 1.0 or 2.0",
                   b[6], b[7]);
  *start = b[6] == 1 ? 10 : 12;
  if (len < *start)
    return 0;
  size_t hl = b[8] | (size_t)b[9] << 8;
  if (b[6] == 2)
    hl |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
  *end = *start + hl;
  return 1;
}

/* Parses the header of the first len bytes of a .npy file into h (its
   offset and count, not checked against the file's size): 1, 0 while
   the bytes are too few to hold it, -1 when it is bad. */
static int npy_header(const unsigned char *buf, size_t len, const char *path, RtNpy *h,
                      char *err, size_t errlen) {
  NpyText t = {buf, 0, 0, path, err, errlen};
  size_t start = 0, end = 0;
  int fortran = 0, r = npy_frame(&t, len, &start, &end);
  if (r <= 0)
    return r;
  if (len < end)
    return 0;
  t.at = start, t.end = end;
  if (npy_dict(&t, h, &fortran))
    return -1;
  size_t count = 1, big = 0;
  for (int d = 0; d < h->ndim; d++) {
    big += h->shape[d] > 1;
    if (rt_mul(count, (size_t)h->shape[d], &count))
      return rt_fail(err, errlen, path, "shape's product overflows");
  }
  if (fortran && big > 1)
    return rt_fail(err, errlen, path, "in Fortran order: mlpc reads C order; save "
                   "np.ascontiguousarray(a)");
  h->offset = end;
  h->count = count;
  return 1;
}

int rt_parse_npy(const unsigned char *buf, size_t len, const char *path, RtNpy *h,
                 char *err, size_t errlen) {
  size_t bytes;
  int r = npy_header(buf, len, path, h, err, errlen);
  if (r == 0)
    return rt_fail(err, errlen, path, "file is %zu bytes, too short for its .npy header",
                   len);
  if (r < 0)
    return -1;
  if (rt_mul(h->count, (size_t)h->size, &bytes) || bytes > SIZE_MAX - h->offset)
    return rt_fail(err, errlen, path, "shape's bytes overflow");
  if (len != h->offset + bytes)
    return rt_fail(err, errlen, path, "file is %zu bytes, header says %zu", len,
                   h->offset + bytes);
  return 0;
}

/* The size a .npy file says it has, from its first n bytes (RtSizer). */
static size_t npy_declared(const unsigned char *buf, size_t n) {
  RtNpy h;
  size_t bytes;
  int r = npy_header(buf, n, "", &h, NULL, 0);
  if (r <= 0)
    return r ? SIZE_MAX : 0;
  if (rt_mul(h.count, (size_t)h.size, &bytes) || bytes > SIZE_MAX - h.offset)
    return SIZE_MAX;
  return h.offset + bytes;
}

const RtSizer rt_npy_sizer = {"NumPy", npy_declared};

/* Element i's bits at p, in host order, sign-extended for signed kinds. */
static uint64_t npy_bits(const RtNpy *h, const unsigned char *p, size_t i) {
  uint64_t u = 0;
  p += i * (size_t)h->size;
  for (int k = 0; k < h->size; k++)
    u |= (uint64_t)p[h->big ? h->size - 1 - k : k] << 8 * k;
  if (h->kind == 'i' && h->size < 8 && (u >> (8 * h->size - 1) & 1))
    u |= ~(uint64_t)0 << 8 * h->size;
  return u;
}

/* Reads and parses the .npy file at path: its bytes, or NULL. */
static unsigned char *npy_read(const char *path, RtNpy *h, char *err, size_t errlen) {
  size_t len = 0;
  unsigned char *buf = rt_read_file(path, &rt_npy_sizer, &len, err, errlen);
  if (buf && rt_parse_npy(buf, len, path, h, err, errlen)) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* The array's shape as "(60000, 784)", for messages. */
static const char *npy_shape_str(const RtNpy *h, char *buf, size_t len) {
  int n = snprintf(buf, len, "(");
  for (int d = 0; d < h->ndim && n >= 0 && (size_t)n < len; d++)
    n += snprintf(buf + n, len - n, "%ld%s", h->shape[d],
                  h->ndim == 1 ? "," : d + 1 < h->ndim ? ", " : "");
  if (n >= 0 && (size_t)n < len)
    snprintf(buf + n, len - n, ")");
  return buf;
}

/* Sets s's count and shape from x's header: (n, features), (n, h, w) or
   (n, c, h, w), each dimension nonzero and a sample at most INT_MAX
   elements. */
static int npy_set_shape(RtSet *s, const RtNpy *h, const char *path, char *err,
                         size_t errlen) {
  char sh[160];
  if (h->ndim < 2 || h->ndim > 4)
    return rt_fail(err, errlen, path, "shape %s: expected samples as (n, features), (n, "
                   "height, width) or (n, channels, height, width)",
                   npy_shape_str(h, sh, sizeof sh));
  if (h->count == 0)
    return rt_fail(err, errlen, path, "shape %s holds no values",
                   npy_shape_str(h, sh, sizeof sh));
  if (h->count / (size_t)h->shape[0] > INT_MAX)
    return rt_fail(err, errlen, path, "shape %s: samples too large",
                   npy_shape_str(h, sh, sizeof sh));
  s->n = h->shape[0];
  s->flat = h->ndim == 2;
  s->channels = h->ndim == 4 ? (int)h->shape[1] : 1;
  s->rows = h->ndim == 2 ? 1 : (int)h->shape[h->ndim - 2];
  s->cols = (int)h->shape[h->ndim - 1];
  return 0;
}

/* Reverses the bytes of each of the count elements of size bytes at p
   when the file's order (big) is not the host's. */
static void npy_host_order(unsigned char *p, size_t count, int size, int big) {
  const uint16_t one = 1;
  if (big == !*(const unsigned char *)&one)
    return;
  for (size_t i = 0; i < count; i++, p += size)
    for (int k = 0; k < size / 2; k++) {
      unsigned char c = p[k];
      p[k] = p[size - 1 - k];
      p[size - 1 - k] = c;
    }
}

/* Float i of those of size bytes (4 or 8) at p, in host order. */
static double npy_float(const unsigned char *p, int size, size_t i) {
  float f;
  double d;
  if (size == 4)
    return memcpy(&f, p + 4 * i, 4), f;
  return memcpy(&d, p + 8 * i, 8), d;
}

/* How many of the count floats of size bytes at p are not finite once
   in dtype: a loop per case without exits, which the compiler
   vectorises (NaN fails every comparison). */
static size_t npy_count_bad(const unsigned char *p, int size, size_t count, int dtype) {
  size_t bad = 0;
  if (size == 4)
    for (size_t i = 0; i < count; i++)
      bad += !(fabsf((float)npy_float(p, 4, i)) <= FLT_MAX);
  else if (dtype == RT_F64)
    for (size_t i = 0; i < count; i++)
      bad += !(fabs(npy_float(p, 8, i)) <= DBL_MAX);
  else
    for (size_t i = 0; i < count; i++)
      bad += !(fabsf((float)npy_float(p, 8, i)) <= FLT_MAX);
  return bad;
}

/* Refuses the first of the floats at p that is not finite in s's dtype,
   naming its index and value; 0 when all are. */
static int npy_check_finite(const RtSet *s, const unsigned char *p, int size, size_t count,
                            const char *path, char *err, size_t errlen) {
  size_t per = (size_t)s->channels * s->rows * s->cols, i = 0;
  char what[80];
  if (!npy_count_bad(p, size, count, s->dtype))
    return 0;
  while (!npy_count_bad(p + i * size, size, 1, s->dtype))
    i++;
  double v = npy_float(p, size, i);
  if (isnan(v) || isinf(v))
    snprintf(what, sizeof what, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  else
    snprintf(what, sizeof what, "%g, beyond the range of float32 (the model's dtype)", v);
  return rt_fail(err, errlen, path, "element %zu (sample %zu, feature %zu) is %s: the data "
                 "must be finite", i, i / per, i % per, what);
}

/* Converts the count floats of size bytes at src to dtype at dst, which
   may be below src in the same buffer when dtype's elements are no
   larger (each is read before anything is written over it). */
static void npy_convert(unsigned char *dst, const unsigned char *src, int size, size_t count,
                        int dtype) {
  if (rt_dtype_size(dtype) == (size_t)size)
    memmove(dst, src, count * size);
  else if (dtype == RT_F32)
    for (size_t i = 0; i < count; i++) {
      float f = (float)npy_float(src, 8, i);
      memcpy(dst + 4 * i, &f, 4);
    }
  else
    for (size_t i = 0; i < count; i++) {
      double d = npy_float(src, 4, i);
      memcpy(dst + 8 * i, &d, 8);
    }
}

/* Converts x's floats, at buf + h->offset, to s's dtype into s->images
   (buf itself, or a larger buffer), once all are known to be finite. */
static int npy_to_reals(RtSet *s, const RtNpy *h, unsigned char *buf, const char *path,
                        char *err, size_t errlen) {
  npy_host_order(buf + h->offset, h->count, h->size, h->big);
  if (npy_check_finite(s, buf + h->offset, h->size, h->count, path, err, errlen))
    return -1;
  npy_convert(s->images, buf + h->offset, h->size, h->count, s->dtype);
  return 0;
}

/* Makes the bytes of x's file, s->images, s's images as dtype: uint8
   kept as bytes, floats converted (in place when they shrink). */
static int npy_take_x(RtSet *s, const RtNpy *h, int dtype, const char *path, char *err,
                      size_t errlen) {
  char name[16];
  unsigned char *buf = s->images;
  int bytes = h->kind == 'u' && h->size == 1;
  if (!bytes && h->kind != 'f')
    return rt_fail(err, errlen, path, "dtype %s: samples are uint8 (pixels, scaled by 1/255) "
                   "or float32 or float64 (used as they are); convert with "
                   "x.astype(np.float32)", npy_type_name(h->kind, h->size, name, sizeof name));
  s->dtype = bytes ? RT_U8 : dtype;
  size_t esize = rt_dtype_size(s->dtype);
  if (esize > (size_t)h->size && rt_check_memory(h->count * esize, path, err, errlen))
    return -1;
  if (esize > (size_t)h->size && !(s->images = malloc(h->count * esize)))
    return s->images = buf, rt_fail(err, errlen, path, "out of memory");
  int r = bytes ? (memmove(buf, buf + h->offset, h->count), 0)
                : npy_to_reals(s, h, buf, path, err, errlen);
  if (s->images != buf)
    free(buf);
  unsigned char *p = realloc(s->images, h->count * esize);
  s->images = p ? p : s->images;
  return r;
}

/* Makes the bytes of y's file, s->labels, s's labels, checking that
   there are s->n of them, integers in [0, nclasses). */
static int npy_take_y(RtSet *s, const RtNpy *h, int nclasses, const char *path,
                      const char *xpath, char *err, size_t errlen) {
  char sh[160];
  unsigned char *buf = s->labels;
  if (h->ndim != 1)
    return rt_fail(err, errlen, path, "shape %s: labels are one dimension, (n,); save "
                   "y.ravel()", npy_shape_str(h, sh, sizeof sh));
  if (h->kind == 'f')
    return rt_fail(err, errlen, path, "dtype float%d: labels are integers; convert with "
                   "y.astype(np.int64)", 8 * h->size);
  if (h->shape[0] != s->n)
    return rt_fail(err, errlen, path, "has %ld labels but %s has %ld samples", h->shape[0],
                   xpath, s->n);
  for (size_t i = 0; i < h->count; i++) {
    uint64_t u = npy_bits(h, buf + h->offset, i);
    if (u >= (uint64_t)nclasses)
      return rt_fail(err, errlen, path, h->kind == 'i' ? "label %lld at index %zu is out of "
                     "range (expected 0..%d)" : "label %llu at index %zu is out of range "
                     "(expected 0..%d)", (long long)u, i, nclasses - 1);
    buf[i] = (unsigned char)u;  /* i < h->offset + i * size: what is unread stays */
  }
  unsigned char *p = realloc(buf, h->count);
  s->labels = p ? p : buf;
  return 0;
}

int rt_load_npy_set(const char *dir, const char *prefix, int nclasses, int dtype, RtSet *set,
                    char *err, size_t errlen) {
  char xpath[FILENAME_MAX], ypath[FILENAME_MAX], name[32];
  RtNpy xh, yh;
  memset(set, 0, sizeof *set);
  if (nclasses < 1 || nclasses > 256)
    return rt_fail(err, errlen, dir, "%d classes: expected 1..256", nclasses);
  snprintf(name, sizeof name, "%s_x.npy", prefix);
  if (rt_join(xpath, sizeof xpath, dir, name) ||
      (snprintf(name, sizeof name, "%s_y.npy", prefix), rt_join(ypath, sizeof ypath, dir, name)))
    return rt_fail(err, errlen, dir, "path too long");
  if (!(set->images = npy_read(xpath, &xh, err, errlen)))
    return -1;
  if (npy_set_shape(set, &xh, xpath, err, errlen) ||
      npy_take_x(set, &xh, dtype, xpath, err, errlen) ||
      !(set->labels = npy_read(ypath, &yh, err, errlen)) ||
      npy_take_y(set, &yh, nclasses, ypath, xpath, err, errlen)) {
    rt_free_set(set);
    return -1;
  }
  return 0;
}
