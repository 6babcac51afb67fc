/*
 * test_data.c — data directories of NumPy arrays and of CSV files
 * (rt/npy.c, rt/csv.c, rt/data.c).
 *
 * NumPy: files written by Debian's python3-numpy (tests/arrays/gen.py,
 * committed) load with every value right: uint8 samples as bytes, float32
 * and float64 ones in the model's dtype, either byte order, versions 1.0
 * and 2.0, (n, features), (n, h, w) and (n, c, h, w), labels of every
 * integer dtype; what mlpc does not read (Fortran order, float16, bool,
 * complex, structured and object arrays, other shapes, float labels,
 * labels out of range, values not finite) is refused naming the file and
 * the element. Headers built here, damaged every way (truncations, magic,
 * version, the dict's syntax and keys, overflowing shapes, gzip bombs),
 * are refused naming the file and the header's byte.
 *
 * CSV: headers detected, quotes, spaces, CRLF, blank lines and a byte
 * order mark read; every kind of bad field refused at FILE:LINE:COL.
 *
 * Directories: one format each (two are refused), the sets' shapes against
 * each other and the model; a uint8 array set equal to the IDX set it was
 * made from; and a tabular set (not images) made by NumPy trains to high
 * accuracy with mlpc, as .npy and as CSV with the same numbers, with
 * PyTorch's figures (tests/arrays/torch_ref.py), and through a standalone
 * trainer.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>
#include <jansson.h>
#include "../rt/rt.h"
#include "util.h"

#ifndef MLPC_BIN
#define MLPC_BIN "build/mlpc"
#endif

enum { N = 5, NCLASSES = 10 };

static const char *const arrays = "tests/arrays/npy";
static char tmp[64];        /* a temporary directory, emptied before each test */
static char err[1024];

/* ---- helpers ---- */

/* tmp/name into buf. */
static const char *in_tmp(const char *name, char *buf, size_t len) {
  if (snprintf(buf, len, "%s/%s", tmp, name) >= (int)len)
    fail_msg("%s/%s: too long", tmp, name);
  return buf;
}

/* Writes len bytes to tmp/name. */
static void put(const char *name, const void *buf, size_t len) {
  char p[256];
  assert_int_equal(util_write(in_tmp(name, p, sizeof p), buf, len), 0);
}

/* Writes text to tmp/name. */
static void put_text(const char *name, const char *text) {
  put(name, text, strlen(text));
}

/* Copies tests/arrays/npy/CASE_x.npy (and _y) into tmp as train_x.npy,
   test_x.npy (and _y). */
static void copy_case(const char *c) {
  char p[256];
  size_t len;
  for (int k = 0; k < 4; k++) {
    snprintf(p, sizeof p, "%s/%s_%c.npy", arrays, c, "xy"[k % 2]);
    char *b = util_slurp(p, &len);
    assert_non_null(b);
    snprintf(p, sizeof p, "%s_%c.npy", k < 2 ? "train" : "test", "xy"[k % 2]);
    put(p, b, len);
    free(b);
  }
}

/* Loads case c of tests/arrays/npy for a model of dtype, expecting
   success. */
static void npy_ok(const char *c, int dtype, RtSet *s) {
  if (rt_load_npy_set(arrays, c, NCLASSES, dtype, s, err, sizeof err))
    fail_msg("%s: unexpected error: %s", c, err);
}

/* Expects err to start with "path: " and hold phrase. */
static void says(const char *path, const char *phrase) {
  size_t n = strlen(path);
  if (strncmp(err, path, n) || strncmp(err + n, ": ", 2))
    fail_msg("message does not start with '%s: ': %s", path, err);
  if (!strstr(err, phrase))
    fail_msg("message lacks '%s': %s", phrase, err);
}

/* Loads case c of tests/arrays/npy, expecting its file CASE_W.npy (W x
   or y) to be refused with phrase, and nothing held. */
static void npy_refused(const char *c, char w, const char *phrase) {
  RtSet s;
  char path[256];
  err[0] = 0;
  if (rt_load_npy_set(arrays, c, NCLASSES, RT_F32, &s, err, sizeof err) != -1)
    fail_msg("%s: loaded, expected an error: %s", c, phrase);
  snprintf(path, sizeof path, "%s/%s_%c.npy", arrays, c, w);
  says(path, phrase);
  assert_true(!s.images && !s.labels && !s.n);
}

/* Loads tmp's train set, expecting file (in tmp) to be refused with
   phrase. */
static void tmp_refused(const char *format, const char *file, const char *phrase) {
  RtSet s;
  char path[256];
  err[0] = 0;
  int rc = !strcmp(format, "csv") ? rt_load_csv_set(tmp, "train", NCLASSES, RT_F32, &s, err,
                                                    sizeof err)
                                  : rt_load_npy_set(tmp, "train", NCLASSES, RT_F32, &s, err,
                                                    sizeof err);
  if (rc != -1)
    fail_msg("%s: loaded, expected an error: %s", file, phrase);
  says(in_tmp(file, path, sizeof path), phrase);
  assert_true(!s.images && !s.labels);
}

/* Element k of sample i as tests/arrays/gen.py writes it (floats / 8). */
static double value(long i, long k) {
  return (double)((i * 37 + k * 5 + 1) % 251);
}

/* Checks the labels i % 10 and features value(i, k) [/ 8] of a set of
   N samples of features each, in dtype. */
static void check_values(const RtSet *s, long features, int dtype) {
  assert_int_equal(s->n, N);
  assert_int_equal(s->dtype, dtype);
  for (long i = 0; i < N; i++) {
    assert_int_equal(s->labels[i], i % 10);
    for (long k = 0; k < features; k++) {
      size_t at = (size_t)(i * features + k);
      double got = dtype == RT_U8 ? s->images[at]
                 : dtype == RT_F32 ? ((const float *)(const void *)s->images)[at]
                                   : ((const double *)(const void *)s->images)[at];
      if (got != value(i, k) / (dtype == RT_U8 ? 1 : 8))
        fail_msg("sample %ld, element %ld: %g", i, k, got);
    }
  }
}

/* ---- NumPy files written by NumPy ---- */

/* uint8 samples of each shape: bytes, whatever the model's dtype, with
   the shape as images (n, h, w), (n, c, h, w) or flat (n, features). */
static void test_npy_uint8(void **state) {
  (void)state;
  RtSet s;
  npy_ok("u1", RT_F64, &s);
  check_values(&s, 12, RT_U8);
  assert_true(s.channels == 1 && s.rows == 3 && s.cols == 4 && !s.flat);
  rt_free_set(&s);
  npy_ok("nchw", RT_F32, &s);
  check_values(&s, 60, RT_U8);
  assert_true(s.channels == 3 && s.rows == 5 && s.cols == 4 && !s.flat);
  rt_free_set(&s);
  npy_ok("u1flat", RT_F32, &s);
  check_values(&s, 12, RT_U8);
  assert_true(s.channels == 1 && s.rows == 1 && s.cols == 12 && s.flat);
  rt_free_set(&s);
}

/* float32 and float64 samples, little- and big-endian, version 1.0 and
   2.0, into a float32 and a float64 model. */
static void test_npy_floats(void **state) {
  (void)state;
  static const char *const cases[] = {"f4", "f8", "f4be", "f8be", "v2"};
  for (int c = 0; c < 5; c++)
    for (int d = 0; d < 2; d++) {
      RtSet s;
      npy_ok(cases[c], d ? RT_F64 : RT_F32, &s);
      check_values(&s, 12, d ? RT_F64 : RT_F32);
      rt_free_set(&s);
    }
}

/* Labels of every integer dtype, either byte order. */
static void test_npy_label_types(void **state) {
  (void)state;
  static const char *const cases[] = {"yi1", "ylei2", "ybei2", "ylei4", "ybei4", "ylei8",
                                      "ybei8", "yu1", "yleu2", "ybeu4", "yleu8", "ybeu8"};
  for (int c = 0; c < 12; c++) {
    RtSet s;
    npy_ok(cases[c], RT_F32, &s);
    check_values(&s, 12, RT_U8);
    rt_free_set(&s);
  }
}

/* What mlpc does not read, each refused naming the file and why. */
static void test_npy_refused(void **state) {
  (void)state;
  npy_refused("fortran", 'x', "in Fortran order: mlpc reads C order; save "
              "np.ascontiguousarray(a)");
  npy_refused("f2", 'x', "dtype '<f2': expected integers (u1 ... i8), float32 or float64");
  npy_refused("bool", 'x', "dtype '|b1'");
  npy_refused("c8", 'x', "dtype '<c8'");
  npy_refused("struct", 'x', "a structured dtype (a list of fields)");
  npy_refused("object", 'x', "dtype '|O'");
  npy_refused("i8x", 'x', "dtype int64: samples are uint8 (pixels, scaled by 1/255) or "
              "float32 or float64 (used as they are); convert with x.astype(np.float32)");
  npy_refused("flat1", 'x', "shape (5,): expected samples as (n, features), (n, height, "
              "width) or (n, channels, height, width)");
  npy_refused("five", 'x', "shape (5, 1, 2, 3, 2): expected samples as");
  npy_refused("scalar", 'x', "shape (): expected samples as");
  npy_refused("empty", 'x', "shape (0, 12) holds no values");
  npy_refused("yf8", 'y', "dtype float64: labels are integers; convert with "
              "y.astype(np.int64)");
  npy_refused("y2d", 'y', "shape (5, 1): labels are one dimension, (n,); save y.ravel()");
  npy_refused("yfew", 'y', "has 4 labels but tests/arrays/npy/yfew_x.npy has 5 samples");
  npy_refused("ybig", 'y', "label 10 at index 3 is out of range (expected 0..9)");
  npy_refused("yneg", 'y', "label -1 at index 3 is out of range (expected 0..9)");
  npy_refused("yhuge", 'y', "label 18446744073709551615 at index 2 is out of range");
}

/* Values that are not finite, as given or once in float32. */
static void test_npy_not_finite(void **state) {
  (void)state;
  RtSet s;
  npy_refused("nan", 'x', "element 19 (sample 1, feature 7) is nan: the data must be finite");
  npy_refused("inf", 'x', "element 19 (sample 1, feature 7) is inf");
  npy_refused("ninf", 'x', "element 19 (sample 1, feature 7) is -inf");
  npy_refused("f8big", 'x', "element 27 (sample 2, feature 3) is 1e+300, beyond the range "
              "of float32 (the model's dtype)");
  npy_ok("f8big", RT_F64, &s);  /* a float64 model holds it */
  rt_free_set(&s);
}

/* ---- NumPy headers built here ---- */

/* A buffer of bytes under construction. */
typedef struct {
  unsigned char b[2048];
  size_t len;
} Bytes;

/* A .npy file: magic, version major.0, the header dict (padded to 64
   bytes with spaces and a newline, as NumPy does) and len bytes of data
   (NULL: zeros). */
static Bytes npy(int major, const char *dict, const void *data, size_t len) {
  Bytes o = {.len = 0};
  size_t start = major == 1 ? 10 : 12, hl = strlen(dict) + 1;
  hl += (64 - (start + hl) % 64) % 64;
  memcpy(o.b, "\x93NUMPY", 6);
  o.b[6] = (unsigned char)major, o.b[7] = 0;
  for (size_t i = 0; i < start - 8; i++)
    o.b[8 + i] = (unsigned char)(hl >> 8 * i);
  memset(o.b + start, ' ', hl);
  memcpy(o.b + start, dict, strlen(dict));
  o.b[start + hl - 1] = '\n';
  o.len = start + hl;
  if (data)
    memcpy(o.b + o.len, data, len);
  else
    memset(o.b + o.len, 0, len);
  o.len += len;
  return o;
}

/* A header of dtype descr, the given shape text, C order. */
static Bytes npy_of(const char *descr, const char *shape, size_t len) {
  char dict[256];
  snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
           descr, shape);
  return npy(1, dict, NULL, len);
}

/* Writes a valid pair as tmp's train set: x (N, 3) uint8, y (N,) uint8. */
static void write_pair(void) {
  Bytes x = npy_of("|u1", "(5, 3)", 15), y = npy_of("|u1", "(5,)", 5);
  put("train_x.npy", x.b, x.len);
  put("train_y.npy", y.b, y.len);
}

/* Writes b as tmp/train_x.npy and expects it refused with phrase. */
static void x_refused(Bytes b, const char *phrase) {
  write_pair();
  put("train_x.npy", b.b, b.len);
  tmp_refused("npy", "train_x.npy", phrase);
}

/* The header's dict with each kind of damage, refused at its byte. */
static void test_npy_header_syntax(void **state) {
  (void)state;
  static const struct {
    const char *dict, *phrase;
  } bad[] = {
    {"['descr', '|u1']", ".npy header, byte 10: expected '{', a dict"},
    {"{'descr': '|u1', 'fortran_order': False}", ".npy header: no 'shape'"},
    {"{'fortran_order': False, 'shape': (5, 3)}", "no 'descr'"},
    {"{'descr': '|u1', 'shape': (5, 3)}", "no 'fortran_order'"},
    {"{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (5, 3)}",
     "byte 27: a key given twice"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (5, 3), 'x': 1}",
     "byte 68: a key other than 'descr', 'fortran_order' and 'shape'"},
    {"{descr: '|u1', 'fortran_order': False, 'shape': (5, 3)}", "expected a quoted string"},
    {"{'descr' '|u1', 'fortran_order': False, 'shape': (5, 3)}", "expected ':'"},
    {"{'descr': '|u1' 'fortran_order': False, 'shape': (5, 3)}", "expected ',' or '}'"},
    {"{'descr': '|u1', 'fortran_order': false, 'shape': (5, 3)}", "expected True or False"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': [5, 3]}", "shape: expected a tuple"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (5 3)}", "expected ',' or ')'"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (5, -3)}", "expected a dimension"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}",
     "more than 8 dimensions"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999, 3)}",
     "a dimension too large"},
    {"{'descr': '|u1\\n', 'fortran_order': False, 'shape': (5, 3)}",
     "or with an escape or a control character"},
    {"{'descr': '|u1, 'fortran_order': False, 'shape': (5, 3)}", "byte 20: dtype '|u1, '"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (5, 3)} x", "text after the dict"},
    {"{'descr': '|u1', 'fortran_order': False, 'shape': (5, 3)", "byte 128: the dict is not "
     "closed: expected '}'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    x_refused(npy(1, bad[i].dict, NULL, 15), bad[i].phrase);
}

/* dtypes: only numbers of known sizes, '|' only for single bytes. */
static void test_npy_descr(void **state) {
  (void)state;
  static const char *const bad[] = {"<f16", "|f4", "<u3", "f4", "<x4", "", "<U4", "<f4 ",
                                    "=f4", "<f0", "<f\xe9"};
  char phrase[128];
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char shown[64];
    snprintf(phrase, sizeof phrase, "dtype '%s': expected integers (u1 ... i8), float32 or "
             "float64, in either byte order", rt_printable(bad[i], shown, sizeof shown));
    x_refused(npy_of(bad[i], "(5, 3)", 60), phrase);
  }
}

/* Magic and version. */
static void test_npy_magic(void **state) {
  (void)state;
  Bytes b = npy_of("|u1", "(5, 3)", 15);
  b.b[1] = 'n';
  x_refused(b, "not a .npy file (it does not start with \\x93NUMPY)");
  b = npy_of("|u1", "(5, 3)", 15);
  b.b[6] = 3;
  x_refused(b, ".npy version 3.0: expected 1.0 or 2.0");
  b.b[6] = 1, b.b[7] = 1;
  x_refused(b, ".npy version 1.1: expected 1.0 or 2.0");
  b = npy(2, "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 3)}", NULL, 15);
  write_pair();
  put("train_x.npy", b.b, b.len);
  RtSet s;
  assert_int_equal(rt_load_npy_set(tmp, "train", NCLASSES, RT_F32, &s, err, sizeof err), 0);
  rt_free_set(&s);
}

/* Every truncation of a file, and a byte too many. */
static void test_npy_truncated(void **state) {
  (void)state;
  Bytes b = npy_of("<f4", "(5, 3)", 60);
  char phrase[80];
  for (size_t len = 0; len < b.len; len++) {
    Bytes c = b;
    c.len = len;
    if (len < b.len - 60)  /* within magic, version, length and dict */
      snprintf(phrase, sizeof phrase, "file is %zu bytes, too short for its .npy header",
               len);
    else
      snprintf(phrase, sizeof phrase, "file is %zu bytes, header says %zu", len, b.len);
    x_refused(c, phrase);
  }
  b.b[b.len++] = 0;
  snprintf(phrase, sizeof phrase, "file is %zu bytes, header says %zu", b.len, b.len - 1);
  x_refused(b, phrase);
}

/* Shapes whose product or bytes overflow, and one larger than the file. */
static void test_npy_overflow(void **state) {
  (void)state;
  x_refused(npy_of("|u1", "(4294967296, 4294967296, 4294967296)", 0),
            "shape's product overflows");
  x_refused(npy_of("<f8", "(4611686018427387904, 2)", 0), "shape's bytes overflow");
  x_refused(npy_of("<f8", "(9223372036854775807,)", 0), "shape's bytes overflow");
  x_refused(npy_of("|u1", "(65536, 65536, 65536)", 0), "file is 128 bytes, header says "
            "281474976710784");  /* 2^48 + 128 */
  x_refused(npy_of("|u1", "(1, 2147483648)", 0), "file is 128 bytes, header says 2147483776");
}

/* A sample of more than INT_MAX elements is refused (a sparse file: no
   disk used), as are Fortran order of one dimension that matters and a
   version 2.0 header. */
static void test_npy_large(void **state) {
  (void)state;
  char path[256];
  Bytes b = npy_of("|u1", "(1, 2147483648)", 0);
  write_pair();
  put("train_x.npy", b.b, b.len);
  FILE *f = fopen(in_tmp("train_x.npy", path, sizeof path), "r+b");
  assert_non_null(f);
  assert_int_equal(ftruncate(fileno(f), (off_t)b.len + 2147483648LL), 0);
  fclose(f);
  setenv("MLPC_TEST_MEM_AVAILABLE", "100000", 1);
  tmp_refused("npy", "train_x.npy", "decoded, it takes 2147483777 bytes");  /* 2^31 + 128 + 1 */
  unsetenv("MLPC_TEST_MEM_AVAILABLE");
  x_refused(npy(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (5, 3)}", NULL, 15),
            "in Fortran order");
  RtSet s;
  write_pair();
  b = npy(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (5, 1, 1)}", NULL, 5);
  put("train_x.npy", b.b, b.len);
  assert_int_equal(rt_load_npy_set(tmp, "train", NCLASSES, RT_F32, &s, err, sizeof err), 0);
  rt_free_set(&s);
}

/* Gzip-compresses b. */
static Bytes gz(Bytes b) {
  Bytes o = {.len = 0};
  z_stream z = {0};
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                   Z_OK);
  z.next_in = b.b, z.avail_in = (uInt)b.len;
  z.next_out = o.b, z.avail_out = sizeof o.b;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  o.len = z.total_out;
  deflateEnd(&z);
  return o;
}

/* Writes as tmp/train_x.npy a gzip file of a header of (5, 3) bytes and
   64 MiB of zeros (64 KiB compressed); expects inflating it to stop soon
   after the 143 bytes the header gives. */
static void npy_bomb(void) {
  enum { ZEROS = 64 << 20 };
  Bytes head = npy_of("|u1", "(5, 3)", 0);
  unsigned char *raw = calloc(head.len + ZEROS, 1), *z = malloc(1 << 20);
  memcpy(raw, head.b, head.len);
  z_stream s = {0};
  assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
                   Z_OK);
  s.next_in = raw, s.avail_in = (uInt)(head.len + ZEROS);
  s.next_out = z, s.avail_out = 1 << 20;
  assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
  write_pair();
  put("train_x.npy", z, s.total_out);
  deflateEnd(&s);
  free(raw), free(z);
  tmp_refused("npy", "train_x.npy", "gzip data inflate to more than the 143 bytes its NumPy "
              "header says");
}

/* A gzip-compressed .npy file loads; one whose data inflate past the
   size its header gives stops there. */
static void test_npy_gzip(void **state) {
  (void)state;
  RtSet s;
  write_pair();
  put("train_x.npy", gz(npy_of("|u1", "(5, 3)", 15)).b, gz(npy_of("|u1", "(5, 3)", 15)).len);
  assert_int_equal(rt_load_npy_set(tmp, "train", NCLASSES, RT_F32, &s, err, sizeof err), 0);
  assert_true(s.n == N && s.cols == 3);
  rt_free_set(&s);
  x_refused(gz(npy_of("|u1", "(5, 3)", 1500)), "file is 1628 bytes, header says 143");
  npy_bomb();
}

/* A missing file names itself. */
static void test_npy_missing(void **state) {
  (void)state;
  char path[256];
  write_pair();
  remove(in_tmp("train_y.npy", path, sizeof path));
  tmp_refused("npy", "train_y.npy", "no such file");
}

/* ---- CSV ---- */

/* Loads tmp/train.csv holding text, expecting success. */
static void csv_ok(const char *text, int dtype, RtSet *s) {
  put_text("train.csv", text);
  if (rt_load_csv_set(tmp, "train", NCLASSES, dtype, s, err, sizeof err))
    fail_msg("unexpected error: %s\n%s", err, text);
}

/* Loads tmp/train.csv holding text, expecting "tmp/train.csv:WHERE: phrase"
   and nothing held. */
static void csv_refused(const char *text, const char *where, const char *phrase) {
  char path[256];
  RtSet s;
  if (text)  /* NULL: tmp/train.csv as it is */
    put_text("train.csv", text);
  err[0] = 0;
  assert_int_equal(rt_load_csv_set(tmp, "train", NCLASSES, RT_F32, &s, err, sizeof err), -1);
  assert_true(!s.images && !s.labels);
  snprintf(path, sizeof path, "%s/train.csv:%s", tmp, where);
  says(path, phrase);
}

/* Checks a set of 2 samples of 3 features: labels 1 and 2, features
   0.5, -2, 1e3 and 4, 5.25, 6. */
static void check_two(const RtSet *s, int dtype) {
  static const double want[] = {0.5, -2, 1e3, 4, 5.25, 6};
  assert_true(s->n == 2 && s->flat && s->cols == 3 && s->rows == 1 && s->channels == 1);
  assert_true(s->labels[0] == 1 && s->labels[1] == 2 && s->dtype == dtype);
  for (int k = 0; k < 6; k++) {
    double got = dtype == RT_F32 ? ((const float *)(const void *)s->images)[k]
                                 : ((const double *)(const void *)s->images)[k];
    assert_true(got == want[k]);
  }
}

/* The same two rows written every way CSV allows. */
static void test_csv_valid(void **state) {
  (void)state;
  static const char *const texts[] = {
    "1,0.5,-2,1e3\n2,4,5.25,6\n",
    "1,0.5,-2,1e3\n2,4,5.25,6",
    "label,a,b,c\n1,0.5,-2,1e3\n2,4,5.25,6\n",
    "\"label\",\"a,b\",\"say \"\"c\"\"\",d\n1,0.5,-2,1e3\n2,4,5.25,6\n",
    ",a,b,c\n1,0.5,-2,1e3\n2,4,5.25,6\n",
    "1,0.5,-2,1e3\r\n2,4,5.25,6\r\n",
    "\xef\xbb\xbflabel,a,b,c\n1,0.5,-2,1e3\n2,4,5.25,6\n",
    "\n \n1, 0.5 ,\t-2,1e3\n\n2,4,5.25,6\n\n",
    "\"1\",\"0.5\", \"-2\" ,1000.0\n2.0,+4,5.25,0x1.8p2\n",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
    for (int d = 0; d < 2; d++) {
      RtSet s;
      csv_ok(texts[i], d ? RT_F64 : RT_F32, &s);
      check_two(&s, d ? RT_F64 : RT_F32);
      rt_free_set(&s);
    }
}

/* Each kind of bad field or line, at its line and column. */
static void test_csv_refused(void **state) {
  (void)state;
  static const struct {
    const char *text, *where, *phrase;
  } bad[] = {
    {"1,2,x3\n", "1:5", "'x3' is not a number"},
    {"a,b\n1,2\n3,,4\n", "3:3", "an empty field: expected a number"},
    {"1,2\n1,nan\n", "2:3", "nan is not finite: the data must be finite numbers"},
    {"1,2\n1, -inf\n", "2:4", "-inf is not finite"},
    {"1,2\n1,1e999\n", "2:3", "1e999 is beyond the range of a double"},
    {"1,2\n1,1e39\n", "2:3", "1e39 is beyond the range of float32 (the model's dtype)"},
    {"1,2\n1.5,2\n", "2:1", "label 1.5 is not a whole number"},
    {"1,2\n10,2\n", "2:1", "label 10 is out of range (expected 0..9)"},
    {"1,2\n-1,2\n", "2:1", "label -1 is out of range (expected 0..9)"},
    {"1,2\nnan,2\n", "2:1", "nan is not finite"},
    {"1,2\ncat,2\n", "2:1", "label 'cat' is not a number: labels are classes 0..9"},
    {"1,2,3\n4,5\n", "2:4", "the line has 2 fields, expected 3 (a label and 2 features)"},
    {"1,2,3\n4,5,6,7\n", "2:6", "the line has more than 3 fields (a label and 2 features)"},
    {"y,a,b\n1,2\n", "2:1", "the line has 2 fields, the header 3"},
    {"1\n2\n", "1:1", "one field: expected a label, then the features"},
    {"y;a;b\n1;0,5;2\n", "2:1", "the fields are separated by ';': mlpc reads fields "
     "separated by commas (pandas: to_csv(f, sep=','))"},
    {"1\t2\n3\t4\n", "2:1", "the fields are separated by tabs"},
    {"1,\"2\n", "1:3", "a quote that is not closed on its line"},
    {"1,\"2\"x\n", "1:6", "text after a closing quote"},
    {"1,2\r3\n", "1:3", "'2\\x0d3' is not a number"},
    {"1,2\n1,\x1b[2J\n", "2:3", "'\\x1b[2J' is not a number"},
    {"1,2\n\"\n", "2:1", "a quote that is not closed on its line"},
    {"0,1,2,3,4\n1,2,3,4,5\n", "1:1", "the first line, 0,1,...,4, is pandas' default column "
     "names or a sample: a header of numbers cannot be told from data; write the file with "
     "header=False, or give it a header whose first field is a name (label,...)"},
    {"\r\n\"0\", 1 ,\"2\"\r\n1,2,3\r\n", "2:1", "the first line, 0,1,2, is pandas'"},
    {"0,1\n1,2\n", "1:1", "the first line, 0,1, is pandas'"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    csv_refused(bad[i].text, bad[i].where, bad[i].phrase);
}

/* A field longer than 255 bytes, a file of no rows, a header alone, a NUL
   byte; float32's limit is no limit for float64; and 0,1,2 is a sample
   where it is not the first line, or not all of it. */
static void test_csv_edges(void **state) {
  (void)state;
  char text[400] = "1,";
  RtSet s;
  memset(text + 2, '1', 300);
  strcpy(text + 302, "\n");
  csv_refused(text, "1:3", "a field longer than 255 bytes");
  memset(text + 2, ' ', 300);  /* spaces around a field do not count */
  strcpy(text + 302, "2\n");
  csv_ok(text, RT_F32, &s);
  rt_free_set(&s);
  put_text("train.csv", "\n \n");
  tmp_refused("csv", "train.csv", "no rows: expected a label and features on each line");
  put_text("train.csv", "label,a\n\n");
  tmp_refused("csv", "train.csv", "a header but no rows");
  put("train.csv", "1,2\n1,3\0004\n", 10);
  csv_refused(NULL, "2:4", "a NUL byte");
  csv_ok("1,1e39\n", RT_F64, &s);
  assert_true(((const double *)(const void *)s.images)[0] == 1e39);
  rt_free_set(&s);
  static const char *const numbered[] = {"0,1,3\n0,1,2\n", "label,0,1\n0,1,2\n",
                                         "1,2,3\n0,1,2\n"};
  for (int i = 0; i < 3; i++) {  /* 0,1,2 not first, or not whole: samples */
    csv_ok(numbered[i], RT_F32, &s);
    assert_true(s.n == 2 - (i == 1) && s.labels[s.n - 1] == 0 && s.cols == 2);
    rt_free_set(&s);
  }
}

/* ---- data directories ---- */

/* The files of a format present together: refused, naming both. */
static void test_two_formats(void **state) {
  (void)state;
  RtSet tr, te;
  char want[512];
  copy_case("f4");
  put_text("test.csv", "1,2\n");
  assert_int_equal(rt_load_data(tmp, 12, NULL, NCLASSES, RT_F32, &tr, &te, err, sizeof err),
                   -1);
  snprintf(want, sizeof want, "%s: holds data in two formats, NumPy (train_x.npy) and CSV "
           "(test.csv): a data directory holds one; remove the files of the other", tmp);
  assert_string_equal(err, want);
  assert_true(!tr.images && !te.images);
  assert_int_equal(rt_data_format(tmp, err, sizeof err), -1);
  put_text("t10k-labels-idx1-ubyte.gz", "");
  assert_int_equal(rt_data_format(tmp, err, sizeof err), -1);
  assert_non_null(strstr(err, "two formats, IDX (t10k-labels-idx1-ubyte.gz) and NumPy"));
}

/* Each format's files, as a study sends them to other machines. */
static void test_data_files(void **state) {
  (void)state;
  char paths[4][FILENAME_MAX], want[256];
  assert_int_equal(rt_data_files("tests/arrays/blobs_csv", paths, err, sizeof err), 2);
  assert_string_equal(paths[0], "tests/arrays/blobs_csv/train.csv");
  assert_string_equal(paths[1], "tests/arrays/blobs_csv/test.csv");
  assert_int_equal(rt_data_files("tests/arrays/blobs_npy/", paths, err, sizeof err), 4);
  assert_string_equal(paths[3], "tests/arrays/blobs_npy/test_y.npy");
  assert_int_equal(rt_data_files("tests/reference/data/small", paths, err, sizeof err), 4);
  assert_string_equal(paths[2], "tests/reference/data/small/t10k-images-idx3-ubyte");
  assert_int_equal(rt_data_files(tmp, paths, err, sizeof err), -1);
  snprintf(want, sizeof want, "%s: no data set: ", tmp);
  assert_memory_equal(err, want, strlen(want));
}

/* Expects dir to be refused, by rt_data_format and rt_load_data alike,
   with err "dir: " then phrase, nothing held. */
static void dir_refused(const char *dir, const char *phrase) {
  RtSet tr, te;
  char want[2048];
  snprintf(want, sizeof want, "%s: %s", dir, phrase);
  assert_int_equal(rt_data_format(dir, err, sizeof err), -1);
  assert_string_equal(err, want);
  assert_int_equal(rt_load_data(dir, 12, NULL, NCLASSES, RT_F32, &tr, &te, err, sizeof err),
                   -1);
  assert_string_equal(err, want);
  assert_true(!tr.images && !te.images);
}

/* A directory with no data set, of no format (empty, unrelated files, a
   compressed file renamed .gz), says what each format's files are; a
   path that is a file, names nothing or cannot be opened (a symbolic
   link to itself) says so, not that a file is missing inside it or that
   it holds two formats (the "inside" of each looked like every
   format's). */
static void test_no_data_set(void **state) {
  (void)state;
  char path[256];
  static const char none[] = "no data set: a data directory holds IDX files "
    "(train-images-idx3-ubyte or train-images-idx4-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte or t10k-images-idx4-ubyte, t10k-labels-idx1-ubyte; each raw or "
    "NAME.gz), NumPy arrays (train_x.npy, train_y.npy, test_x.npy, test_y.npy) or CSV files "
    "(train.csv, test.csv); a NumPy or CSV file may be gzip-compressed under its own name "
    "(docs/data.md)";
  static const char tail[] = ": the data are named by the directory that holds their files "
    "(docs/data.md)";
  char not_dir[200], missing[200];
  snprintf(not_dir, sizeof not_dir, "not a directory%s", tail);
  snprintf(missing, sizeof missing, "no such directory%s", tail);
  dir_refused(tmp, none);
  put_text("README", "iris\n");
  put_text("train.csv.gz", "");
  put_text("train_x.npz", "");
  dir_refused(tmp, none);
  copy_case("f4");
  dir_refused(in_tmp("train_x.npy", path, sizeof path), not_dir);
  dir_refused(in_tmp("none", path, sizeof path), missing);
  dir_refused(in_tmp("train_x.npy/x", path, sizeof path), missing);
  char loop[200], why[200];
  assert_int_equal(symlink(in_tmp("loop", loop, sizeof loop), loop), 0);
  snprintf(why, sizeof why, "cannot open (%s)", strerror(ELOOP));
  dir_refused(loop, why);
}

/* The train and test sets must agree in shape, and fit the model: flat
   data any [C, H, W] of as many features, images exactly. */
static void test_shapes(void **state) {
  (void)state;
  RtSet tr, te;
  char want[512];
  copy_case("f4");  /* (5, 12) */
  assert_int_equal(rt_load_data(tmp, 12, (int[]){3, 2, 2}, NCLASSES, RT_F32, &tr, &te, err,
                                sizeof err), 0);
  assert_true(tr.flat && te.flat && tr.cols == 12);
  rt_free_set(&tr), rt_free_set(&te);
  assert_int_equal(rt_load_data(tmp, 13, NULL, NCLASSES, RT_F32, &tr, &te, err, sizeof err),
                   -1);
  snprintf(want, sizeof want, "%s: samples have 12 features, the model's input is 13", tmp);
  assert_string_equal(err, want);
  copy_case("u1");  /* (5, 3, 4) */
  assert_int_equal(rt_load_data(tmp, 12, (int[]){1, 4, 3}, NCLASSES, RT_F32, &tr, &te, err,
                                sizeof err), -1);
  snprintf(want, sizeof want, "%s: samples are 1 x 3 x 4 (channels x height x width); the "
           "model's input is [1, 4, 3]", tmp);
  assert_string_equal(err, want);
  char a[256], b[256];
  size_t len;
  char *x = util_slurp("tests/arrays/npy/f4_x.npy", &len);
  assert_int_equal(util_write(in_tmp("test_x.npy", a, sizeof a), x, len), 0);
  free(x);
  assert_int_equal(rt_load_data(tmp, 12, NULL, NCLASSES, RT_F32, &tr, &te, err, sizeof err),
                   -1);
  snprintf(want, sizeof want, "%s: the train samples are 3 x 4 pixels and the test samples "
           "rows of 12 features: both sets must have one shape", tmp);
  assert_string_equal(err, want);
  put_text("train.csv", "1,2,3\n"), remove(in_tmp("train_x.npy", a, sizeof a));
  remove(in_tmp("train_y.npy", a, sizeof a)), remove(in_tmp("test_x.npy", a, sizeof a));
  remove(in_tmp("test_y.npy", b, sizeof b));
  put_text("test.csv", "1,2,3,4\n");
  assert_int_equal(rt_load_data(tmp, 2, NULL, NCLASSES, RT_F32, &tr, &te, err, sizeof err),
                   -1);
  snprintf(want, sizeof want, "%s: the train samples are rows of 2 features and the test "
           "samples rows of 3 features: both sets must have one shape", tmp);
  assert_string_equal(err, want);
}

/* The c3_8x8 reference set as uint8 arrays loads as its IDX files do,
   byte for byte. */
static void test_same_as_idx(void **state) {
  (void)state;
  RtSet a[2], b[2];
  const int shape[] = {3, 8, 8};
  assert_int_equal(rt_load_data("tests/reference/data/c3_8x8", 192, shape, 10, RT_F32, &a[0],
                                &a[1], err, sizeof err), 0);
  if (rt_load_data("tests/arrays/c3_8x8_npy", 192, shape, 10, RT_F32, &b[0], &b[1], err,
                   sizeof err))
    fail_msg("%s", err);
  for (int k = 0; k < 2; k++) {
    assert_true(a[k].n == b[k].n && b[k].dtype == RT_U8 && b[k].channels == 3);
    assert_memory_equal(a[k].images, b[k].images, (size_t)a[k].n * 192);
    assert_memory_equal(a[k].labels, b[k].labels, (size_t)a[k].n);
    rt_free_set(&a[k]), rt_free_set(&b[k]);
  }
}

/* The blobs as .npy (float64) and as CSV (repr of the same doubles) are
   the same set: the same float32 values and labels. */
static void test_blobs_agree(void **state) {
  (void)state;
  RtSet a[2], b[2];
  assert_int_equal(rt_load_data("tests/arrays/blobs_npy", 4, NULL, 3, RT_F32, &a[0], &a[1],
                                err, sizeof err), 0);
  if (rt_load_data("tests/arrays/blobs_csv", 4, NULL, 3, RT_F32, &b[0], &b[1], err,
                   sizeof err))
    fail_msg("%s", err);
  for (int k = 0; k < 2; k++) {
    assert_true(a[k].n == (k ? 100 : 300) && a[k].n == b[k].n && b[k].flat);
    assert_memory_equal(a[k].images, b[k].images, (size_t)a[k].n * 16);
    assert_memory_equal(a[k].labels, b[k].labels, (size_t)a[k].n);
    rt_free_set(&a[k]), rt_free_set(&b[k]);
  }
}

/* Runs mlpc on the blobs model with extra flags; its JSON lines into out
   (a path in tmp). Returns the exit status. */
static int run_blobs(const char *data, const char *backend, const char *out) {
  char log[256];
  const char *argv[] = {MLPC_BIN, "tests/arrays/blobs.json", "--run", "--json", "--data",
                        data, "--backend", backend, NULL};
  return util_run(argv, out, in_tmp("stderr", log, sizeof log));
}

/* The final test accuracy in a run's JSON lines. */
static double final_acc(const char *path) {
  size_t len;
  char *s = util_slurp(path, &len);
  assert_non_null(s);
  const char *p = strstr(s, "\"final_test_acc\": ");
  double acc = p ? atof(p + 18) : -1;
  free(s);
  return acc;
}

/* The non-image set trains with mlpc: 96% or more of the test blobs right,
   the same figures from .npy and from CSV; a NaN in the CSV is bad input
   (exit 2) naming FILE:LINE:COL. */
static void test_blobs_train(void **state) {
  (void)state;
  char a[256], b[256], log[256];
  assert_int_equal(run_blobs("tests/arrays/blobs_npy", "tcc", in_tmp("npy.json", a, sizeof a)),
                   0);
  assert_int_equal(run_blobs("tests/arrays/blobs_csv", "tcc", in_tmp("csv.json", b, sizeof b)),
                   0);
  double acc = final_acc(a);
  if (acc < 0.96)
    fail_msg("test accuracy %g", acc);
  assert_true(acc == final_acc(b));
  size_t la, lb;
  char *ta = util_slurp(a, &la), *tb = util_slurp(b, &lb);
  *strstr(ta, "\"seconds\"") = 0, *strstr(tb, "\"seconds\"") = 0;  /* the first epoch's */
  assert_string_equal(ta, tb);
  free(ta), free(tb);
  put_text("train.csv", "label,a,b,c,d\n1,1,2,3,4\n2,1,nan,3,4\n");
  put_text("test.csv", "1,1,2,3,4\n");
  assert_int_equal(run_blobs(tmp, "tcc", NULL), 2);
  char *msg = util_slurp(in_tmp("stderr", log, sizeof log), &la);
  snprintf(a, sizeof a, "mlpc: error: %s/train.csv:3:5: nan is not finite", tmp);
  if (!strstr(msg, a))
    fail_msg("%s", msg);
  free(msg);
}

/* The first line of a run's JSON output at path, parsed. */
static json_t *first_line(const char *path) {
  size_t len;
  char *s = util_slurp(path, &len);
  assert_non_null(s);
  *strchr(s, '\n') = 0;
  json_t *j = json_loads(s, 0, NULL);
  assert_non_null(j);
  free(s);
  return j;
}

/* Float data as PyTorch computes on them (tests/arrays/torch_ref.py):
   from its initial weights, 4 SGD steps in file order and 4 test
   batches give its train loss, test loss and accuracy, within 5e-7 in
   float32 and 1e-12 in float64. PyTorch's float32 mean of the 64 test
   losses is itself 1.2e-7 from the mean of the same rows in float64
   (mlpc sums them in double), so a bound at float32's epsilon would
   measure PyTorch's rounding, not mlpc's. */
static void test_torch(void **state) {
  (void)state;
  static const char *const tags[] = {"f32", "f64"};
  json_t *ref = json_load_file("tests/arrays/blobs_torch/ref.json", 0, NULL);
  char model[256], init[256], out[256], text[1024];
  assert_non_null(ref);
  for (int t = 0; t < 2; t++) {
    snprintf(text, sizeof text, "{\"input\": 4, \"hidden\": [16], \"output\": 3, \"norm\": "
             "\"none\", \"activation\": \"relu\", \"optimizer\": {\"type\": \"sgd\", \"lr\": "
             "0.05}, \"batch_size\": 16, \"dtype\": \"%s\", \"data\": \"tests/arrays/blobs_npy\"}",
             t ? "float64" : "float32");
    put_text("blobs.json", text);
    snprintf(init, sizeof init, "tests/arrays/blobs_torch/init.%s.safetensors", tags[t]);
    const char *argv[] = {MLPC_BIN, in_tmp("blobs.json", model, sizeof model), "--run",
                          "--backend", "tcc", "--load-weights", init, "--no-shuffle",
                          "--max-batches", "4", "--epochs", "1", "--json", NULL};
    assert_int_equal(util_run(argv, in_tmp("out.json", out, sizeof out), NULL), 0);
    json_t *got = first_line(out), *want = json_object_get(ref, tags[t]);
    for (int k = 0; k < 3; k++) {
      const char *key = (const char *[]){"train_loss", "test_loss", "test_acc"}[k];
      double a = json_real_value(json_object_get(got, key));
      double b = json_real_value(json_object_get(want, key));
      if (!(fabs(a - b) <= (t ? 1e-12 : 5e-7) * fabs(b)))
        fail_msg("%s %s: mlpc %.17g, PyTorch %.17g", tags[t], key, a, b);
    }
    json_decref(got);
  }
  json_decref(ref);
}

/* A standalone trainer reads .npy and CSV data too, with mlpc's figures. */
static void test_trainer(void **state) {
  (void)state;
  char c[256], bin[256], out[256], log[256], want[256];
  const char *emit[] = {MLPC_BIN, "tests/arrays/blobs.json", "--emit",
                        in_tmp("trainer.c", c, sizeof c), NULL};
  assert_int_equal(util_run(emit, NULL, NULL), 0);
  const char *cc[] = {"cc", "-O1", "-march=native", "-ffp-contract=off", c, "-o",
                      in_tmp("trainer", bin, sizeof bin), "-lm", "-lz", NULL};
  assert_int_equal(util_run(cc, NULL, in_tmp("cc.log", log, sizeof log)), 0);
  for (int csv = 0; csv < 2; csv++) {
    const char *run[] = {bin, "--json", "--data", csv ? "tests/arrays/blobs_csv"
                                                      : "tests/arrays/blobs_npy", NULL};
    assert_int_equal(util_run(run, in_tmp("out.json", out, sizeof out), NULL), 0);
    assert_int_equal(run_blobs(run[3], "gcc", in_tmp("want.json", want, sizeof want)), 0);
    assert_true(final_acc(out) == final_acc(want) && final_acc(out) >= 0.96);
  }
}

/* A validation split of float samples moves whole samples: each keeps
   its 3 float32 features (i, i + 0.25, i + 0.5) and its label, in both
   sets, which keep the set's dtype. */
static void test_split_floats(void **state) {
  (void)state;
  RtSet all, t, v;
  assert_int_equal(rt_set_alloc(&all, 20, 3, RT_F32, "all", err, sizeof err), 0);
  all.channels = 1, all.rows = 1, all.cols = 3, all.flat = 1;
  for (long i = 0; i < 20; i++) {
    for (int k = 0; k < 3; k++)
      rt_set_real(&all, (size_t)i * 3 + k, (double)i + k / 4.0);
    all.labels[i] = (unsigned char)(i % 2);
  }
  assert_int_equal(rt_split(&all, 3, 2, 6, 1, &t, &v, err, sizeof err), 0);
  assert_true(t.n == 14 && v.n == 6 && t.dtype == RT_F32 && v.dtype == RT_F32 && v.flat);
  for (int w = 0; w < 2; w++) {
    const RtSet *s = w ? &v : &t;
    for (long i = 0; i < s->n; i++) {
      float f[3];
      memcpy(f, s->images + (size_t)i * 12, 12);
      assert_true(f[1] == f[0] + 0.25f && f[2] == f[0] + 0.5f);
      assert_int_equal(s->labels[i], (int)f[0] % 2);
    }
  }
  rt_free_set(&all), rt_free_set(&t), rt_free_set(&v);
}

/* The blobs from .npy and CSV with a validation split and early stopping
   give the same figures, the validation ones among them, and learn. */
static void test_blobs_validation(void **state) {
  (void)state;
  char m[256], a[256], b[256];
  put_text("blobs_val.json",
           "{\"name\": \"blobs_val\", \"input\": 4, \"hidden\": [16], \"output\": 3,"
           " \"activation\": \"relu\", \"init\": \"kaiming_normal\", \"optimizer\":"
           " {\"type\": \"sgd\", \"lr\": 0.05}, \"batch_size\": 16, \"epochs\": 10,"
           " \"seed\": 1, \"validation\": 0.2, \"early_stopping\": {\"patience\": 2}}");
  in_tmp("blobs_val.json", m, sizeof m);
  for (int csv = 0; csv < 2; csv++) {
    const char *argv[] = {MLPC_BIN, m, "--run", "--json", "--backend", "tcc", "--data",
                          csv ? "tests/arrays/blobs_csv" : "tests/arrays/blobs_npy", NULL};
    assert_int_equal(util_run(argv, csv ? in_tmp("csv.json", b, sizeof b)
                                        : in_tmp("npy.json", a, sizeof a), NULL), 0);
  }
  size_t la, lb;
  char *ta = util_slurp(a, &la), *tb = util_slurp(b, &lb);
  const char *val = strstr(ta, "\"val_loss\": ");
  assert_non_null(val);
  assert_true(atof(val + 12) > 0 && atof(val + 12) < 0.5);
  *strstr(ta, "\"seconds\"") = 0, *strstr(tb, "\"seconds\"") = 0;  /* the first epoch's */
  assert_string_equal(ta, tb);
  free(ta), free(tb);
  assert_true(final_acc(a) >= 0.9);
}

/* ---- the group ---- */

/* Empties tmp (a fresh directory) before each test. */
static int before(void **state) {
  (void)state;
  util_rmtree(tmp);
  unsetenv("MLPC_TEST_MEM_AVAILABLE");
  return util_mkdtemp("data", tmp, sizeof tmp);
}

/* Removes tmp after the last test. */
static int after_all(void **state) {
  (void)state;
  util_rmtree(tmp);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_npy_uint8, before),
    cmocka_unit_test_setup(test_npy_floats, before),
    cmocka_unit_test_setup(test_npy_label_types, before),
    cmocka_unit_test_setup(test_npy_refused, before),
    cmocka_unit_test_setup(test_npy_not_finite, before),
    cmocka_unit_test_setup(test_npy_header_syntax, before),
    cmocka_unit_test_setup(test_npy_descr, before),
    cmocka_unit_test_setup(test_npy_magic, before),
    cmocka_unit_test_setup(test_npy_truncated, before),
    cmocka_unit_test_setup(test_npy_overflow, before),
    cmocka_unit_test_setup(test_npy_large, before),
    cmocka_unit_test_setup(test_npy_gzip, before),
    cmocka_unit_test_setup(test_npy_missing, before),
    cmocka_unit_test_setup(test_csv_valid, before),
    cmocka_unit_test_setup(test_csv_refused, before),
    cmocka_unit_test_setup(test_csv_edges, before),
    cmocka_unit_test_setup(test_two_formats, before),
    cmocka_unit_test_setup(test_data_files, before),
    cmocka_unit_test_setup(test_no_data_set, before),
    cmocka_unit_test_setup(test_shapes, before),
    cmocka_unit_test_setup(test_same_as_idx, before),
    cmocka_unit_test_setup(test_blobs_agree, before),
    cmocka_unit_test_setup(test_blobs_train, before),
    cmocka_unit_test_setup(test_torch, before),
    cmocka_unit_test_setup(test_trainer, before),
    cmocka_unit_test_setup(test_split_floats, before),
    cmocka_unit_test_setup(test_blobs_validation, before),
  };
  return cmocka_run_group_tests(tests, NULL, after_all);
}
