/*
 * test_idx.c — rt_load_set on small IDX files written to a temporary
 * directory, raw and gzip: that valid files load with the right values,
 * images of 3 dimensions (n, rows, cols) and of 4 (n, channels, rows,
 * cols: NCHW), and that every kind of damage is refused with a message
 * naming the file and what is wrong; rt_load_data's train and t10k sets
 * of one shape, which fits the model: its input's count of features, or
 * its [C, H, W] exactly (as rt_train passes it). Last, the prepared data
 * sets under data/, if present.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>
#include "../rt/rt.h"
#include "util.h"

#ifndef MLPC_SOURCE_DIR
#define MLPC_SOURCE_DIR "."
#endif

enum { N = 5, ROWS = 3, COLS = 4, NCLASSES = 10 };
enum { C4 = 3, H4 = 5, W4 = 4 };     /* the images of the 4-d files        */

static char tmp[64];                 /* the temporary directory            */
static char ipath[128], lpath[128];  /* its train image and label files    */
static char i4path[128];             /* its train image file of 4 dims     */
static char err[512];

/* ---- building files ---- */

/* A buffer of bytes under construction. */
typedef struct {
  unsigned char b[4096];
  size_t len;
} Bytes;

/* Appends a big-endian u32. */
static void put_u32(Bytes *o, uint32_t v) {
  for (int i = 3; i >= 0; i--)
    o->b[o->len++] = (unsigned char)(v >> 8 * i);
}

/* The pixel of image i at offset j, so that every value is checked. */
static unsigned char pixel(int i, int j) {
  return (unsigned char)(i * 37 + j * 5 + 1);
}

/* An image file with the given magic and ndims dimensions, dims[0]
   images of the rest: image i's byte j is pixel(i, j). */
static Bytes image_file(uint32_t magic, int ndims, const uint32_t *dims) {
  Bytes o = {.len = 0};
  uint32_t size = 1;
  put_u32(&o, magic);
  for (int d = 0; d < ndims; d++)
    put_u32(&o, dims[d]), size *= d ? dims[d] : 1;
  for (uint32_t i = 0; i < dims[0]; i++)
    for (uint32_t j = 0; j < size; j++)
      o.b[o.len++] = pixel(i, j);
  return o;
}

/* An image file of n images of rows x cols with the given magic. */
static Bytes images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols) {
  return image_file(magic, 3, (uint32_t[]){n, rows, cols});
}

/* An image file of n images of c x rows x cols with the given magic. */
static Bytes images4(uint32_t magic, uint32_t n, uint32_t c, uint32_t rows, uint32_t cols) {
  return image_file(magic, 4, (uint32_t[]){n, c, rows, cols});
}

/* A label file of n labels, label i being i % 10. */
static Bytes labels(uint32_t n) {
  Bytes o = {.len = 0};
  put_u32(&o, 0x801);
  put_u32(&o, n);
  for (uint32_t i = 0; i < n; i++)
    o.b[o.len++] = (unsigned char)(i % 10);
  return o;
}

/* Writes len bytes to path. */
static void write_raw(const char *path, const void *buf, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Gzip-compresses buf into out; returns the compressed length. */
static size_t gzip(const void *buf, size_t len, unsigned char *out,
                   size_t cap) {
  z_stream z = {0};
  assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
                                Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)buf, z.avail_in = (uInt)len;
  z.next_out = out, z.avail_out = (uInt)cap;
  assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t n = z.total_out;
  deflateEnd(&z);
  return n;
}

/* Writes buf gzip-compressed to path.gz. */
static void write_gz(const char *path, const void *buf, size_t len) {
  unsigned char out[8192];
  char gz[160];
  snprintf(gz, sizeof gz, "%s.gz", path);
  write_raw(gz, out, gzip(buf, len, out, sizeof out));
}

/* Writes a valid pair of files, raw. */
static void write_valid(void) {
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  write_raw(ipath, im.b, im.len);
  write_raw(lpath, lb.b, lb.len);
}

/* Writes a valid pair, the images of C4 x H4 x W4 in 4 dimensions, raw. */
static void write_valid4(void) {
  Bytes im = images4(0x804, N, C4, H4, W4), lb = labels(N);
  write_raw(i4path, im.b, im.len);
  write_raw(lpath, lb.b, lb.len);
}

/* Removes the data files (raw, gz, or directories) from the temp dir. */
static void clean(void) {
  static const char *const names[] = {
    "train-images-idx3-ubyte", "train-images-idx4-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-images-idx4-ubyte", "t10k-labels-idx1-ubyte"};
  char path[160];
  for (int i = 0; i < 6; i++)
    for (int gz = 0; gz < 2; gz++) {
      snprintf(path, sizeof path, "%s/%s%s", tmp, names[i], gz ? ".gz" : "");
      remove(path);
    }
}

/* Makes the temporary directory for the whole group. */
static int setup(void **state) {
  (void)state;
  strcpy(tmp, "/tmp/mlpc-idx-XXXXXX");
  if (!mkdtemp(tmp))
    return -1;
  snprintf(ipath, sizeof ipath, "%s/train-images-idx3-ubyte", tmp);
  snprintf(lpath, sizeof lpath, "%s/train-labels-idx1-ubyte", tmp);
  snprintf(i4path, sizeof i4path, "%s/train-images-idx4-ubyte", tmp);
  return 0;
}

/* Removes the temporary directory. */
static int teardown(void **state) {
  (void)state;
  clean();
  return rmdir(tmp);
}

/* Starts each test with an empty directory. */
static int before(void **state) {
  (void)state;
  clean();
  unsetenv("MLPC_TEST_MEM_AVAILABLE");
  err[0] = 0;
  return 0;
}

/* ---- checking ---- */

/* Loads the temp dir's train set, expecting success. */
static void load_ok(RtSet *s) {
  if (rt_load_set(tmp, "train", NCLASSES, s, err, sizeof err))
    fail_msg("unexpected error: %s", err);
}

/* Loads the temp dir's train set, expecting failure with a message that
   starts with "path: " and contains phrase. */
static void load_fails(const char *path, const char *phrase) {
  RtSet s;
  err[0] = 0;
  if (rt_load_set(tmp, "train", NCLASSES, &s, err, sizeof err) != -1)
    fail_msg("loaded, expected an error about %s: %s", path, phrase);
  size_t n = strlen(path);
  if (strncmp(err, path, n) || strncmp(err + n, ": ", 2))
    fail_msg("message does not start with '%s: ': %s", path, err);
  if (!strstr(err, phrase))
    fail_msg("message lacks '%s': %s", phrase, err);
  assert_null(s.images);
  assert_null(s.labels);
}

/* Checks every value of a set made by write_valid. */
static void check_valid(const RtSet *s) {
  assert_int_equal(s->n, N);
  assert_int_equal(s->rows, ROWS);
  assert_int_equal(s->cols, COLS);
  for (int i = 0; i < N; i++) {
    assert_int_equal(s->labels[i], i % 10);
    for (int j = 0; j < ROWS * COLS; j++)
      assert_int_equal(s->images[i * ROWS * COLS + j], pixel(i, j));
  }
}

/* ---- valid files ---- */

/* Both files raw: read where they are mapped, not copied. */
static void test_raw(void **state) {
  (void)state;
  RtSet s;
  write_valid();
  load_ok(&s);
  check_valid(&s);
  for (int i = 0; i < 2; i++) {
    unsigned char *at = (unsigned char *)s.map[i];
    assert_non_null(at);
    assert_ptr_equal(i ? s.labels : s.images, at + (i ? 8 : 16)); /* past the header */
  }
  rt_free_set(&s);
  assert_null(s.images);
  assert_null(s.map[0]);
}

/* Both files gzip, found as NAME.gz. */
static void test_gzip(void **state) {
  (void)state;
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  write_gz(ipath, im.b, im.len);
  write_gz(lpath, lb.b, lb.len);
  RtSet s;
  load_ok(&s);
  check_valid(&s);
  rt_free_set(&s);
}

/* One file raw (mapped), the other gzip (inflated into memory). */
static void test_mixed(void **state) {
  (void)state;
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  write_raw(ipath, im.b, im.len);
  write_gz(lpath, lb.b, lb.len);
  RtSet s;
  load_ok(&s);
  check_valid(&s);
  assert_non_null(s.map[0]);
  assert_null(s.map[1]);
  rt_free_set(&s);
}

/* The raw file wins when both exist. */
static void test_raw_preferred(void **state) {
  (void)state;
  write_valid();
  Bytes other = images(0x803, N, ROWS, COLS);
  memset(other.b + 16, 0xee, other.len - 16);
  write_gz(ipath, other.b, other.len);
  RtSet s;
  load_ok(&s);
  check_valid(&s);
  rt_free_set(&s);
}

/* Gzip is recognised by content: a gzip file without .gz loads. */
static void test_gzip_by_magic(void **state) {
  (void)state;
  write_valid();
  Bytes im = images(0x803, N, ROWS, COLS);
  unsigned char z[8192];
  write_raw(ipath, z, gzip(im.b, im.len, z, sizeof z));
  RtSet s;
  load_ok(&s);
  check_valid(&s);
  rt_free_set(&s);
}

/* Two concatenated gzip members are one file, as gzip(1) says. */
static void test_gzip_members(void **state) {
  (void)state;
  write_valid();
  Bytes im = images(0x803, N, ROWS, COLS);
  unsigned char z[8192];
  size_t a = gzip(im.b, 20, z, sizeof z);
  size_t b = gzip(im.b + 20, im.len - 20, z + a, sizeof z - a);
  write_raw(ipath, z, a + b);
  RtSet s;
  load_ok(&s);
  check_valid(&s);
  rt_free_set(&s);
}

/* A trailing slash on the directory makes no double slash. */
static void test_trailing_slash(void **state) {
  (void)state;
  char dir[80];
  snprintf(dir, sizeof dir, "%s/", tmp);
  RtSet s;
  assert_int_equal(rt_load_set(dir, "train", NCLASSES, &s, err, sizeof err),
                   -1);
  if (strncmp(err, ipath, strlen(ipath)))
    fail_msg("message does not start with %s: %s", ipath, err);
}

/* ---- damaged files ---- */

/* Every truncation of the image file, then of the label file. */
static void test_truncated(void **state) {
  (void)state;
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  char phrase[64];
  write_raw(lpath, lb.b, lb.len);
  for (size_t len = 0; len < im.len; len++) {
    write_raw(ipath, im.b, len);
    snprintf(phrase, sizeof phrase, "file is %zu bytes", len);
    load_fails(ipath, phrase);
  }
  write_raw(ipath, im.b, im.len);
  for (size_t len = 0; len < lb.len; len++) {
    write_raw(lpath, lb.b, len);
    snprintf(phrase, sizeof phrase, "file is %zu bytes", len);
    load_fails(lpath, phrase);
  }
}

/* Bytes past the end are as wrong as missing ones. */
static void test_too_long(void **state) {
  (void)state;
  write_valid();
  Bytes im = images(0x803, N, ROWS, COLS);
  im.b[im.len++] = 0;
  write_raw(ipath, im.b, im.len);
  load_fails(ipath, "file is 77 bytes, header says 76");
}

/* Magic numbers that are not IDX, or not bytes. */
static void test_bad_magic(void **state) {
  (void)state;
  write_valid();
  Bytes im = images(0x12345678, N, ROWS, COLS);
  write_raw(ipath, im.b, im.len);
  load_fails(ipath, "bad magic number 0x12345678, expected 0x00000803 "
                    "(an IDX image file)");
  im = images(0x0d03, N, ROWS, COLS);  /* floats, not bytes */
  write_raw(ipath, im.b, im.len);
  load_fails(ipath, "its elements are type 0x0d, not unsigned bytes");
  write_valid();
  Bytes lb = labels(N);
  lb.b[3] = 3;
  write_raw(lpath, lb.b, lb.len);
  load_fails(lpath, "expected 0x00000801 (an IDX label file)");
}

/* Label and image files swapped, and a 2-d image file. */
static void test_wrong_dims(void **state) {
  (void)state;
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  write_raw(ipath, lb.b, lb.len);
  write_raw(lpath, im.b, im.len);
  load_fails(ipath, "bad magic number 0x00000801, expected 0x00000803 (an "
                    "IDX image file): it has 1 dimension, not 3");
  write_raw(ipath, im.b, im.len);
  load_fails(lpath, "it has 3 dimensions, not 1");
  Bytes flat = {.len = 0};
  put_u32(&flat, 0x802);
  put_u32(&flat, N), put_u32(&flat, ROWS * COLS);
  memcpy(flat.b + 12, im.b + 16, im.len - 16);
  flat.len += im.len - 16;
  write_raw(ipath, flat.b, flat.len);
  load_fails(ipath, "it has 2 dimensions, not 3");
}

/* Each dimension in turn zero. */
static void test_zero_dims(void **state) {
  (void)state;
  static const char *const what[] = {"header says 0 images",
      "header says 0 rows", "header says 0 columns"};
  write_valid();
  for (int d = 0; d < 3; d++) {
    Bytes im = images(0x803, N, ROWS, COLS);
    memset(im.b + 4 + 4 * d, 0, 4);
    write_raw(ipath, im.b, im.len);
    load_fails(ipath, what[d]);
  }
  write_valid();
  Bytes lb = labels(0);
  write_raw(lpath, lb.b, lb.len);
  load_fails(lpath, "header says 0 labels");
}

/* Dimensions whose product overflows, or is absurdly large. */
static void test_overflow(void **state) {
  (void)state;
  write_valid();
  Bytes im = images(0x803, 0, 0, 0);
  memset(im.b + 4, 0xff, 12);
  write_raw(ipath, im.b, im.len);
  load_fails(ipath, "header says 4294967295 x 4294967295 x 4294967295 "
                    "elements, which overflows");
  im = images(0x803, 0, 0, 0);
  im.len = 4;
  put_u32(&im, 65536), put_u32(&im, 65536), put_u32(&im, 65536);
  write_raw(ipath, im.b, im.len);
  load_fails(ipath, "file is 16 bytes, header says 281474976710672");
}

/* One label fewer than images. */
static void test_count_mismatch(void **state) {
  (void)state;
  write_valid();
  Bytes lb = labels(N - 1);
  write_raw(lpath, lb.b, lb.len);
  char phrase[300];
  snprintf(phrase, sizeof phrase, "has 4 labels but %s has 5 images", ipath);
  load_fails(lpath, phrase);
}

/* Writes a t10k set beside the train set: the image file i as NAME, and
   N labels. */
static void write_t10k_as(Bytes i, const char *name, char *im, char *lb, size_t len) {
  Bytes l = labels(N);
  snprintf(im, len, "%s/%s", tmp, name);
  snprintf(lb, len, "%s/t10k-labels-idx1-ubyte", tmp);
  write_raw(im, i.b, i.len);
  write_raw(lb, l.b, l.len);
}

/* Writes a t10k set of N images of rows x cols beside the train set. */
static void write_t10k(uint32_t rows, uint32_t cols, char *im, char *lb, size_t len) {
  write_t10k_as(images(0x803, N, rows, cols), "t10k-images-idx3-ubyte", im, lb, len);
}

/* rt_load_data on the temp dir for a model of input features and shape
   (NULL: a flat input). */
static int load_data(int input, const int *shape, RtSet *tr, RtSet *te) {
  return rt_load_data(tmp, input, shape, NCLASSES, RT_F32, tr, te, err, sizeof err);
}

/* rt_load_data: train and t10k images of one shape, the model's input;
   the same count of pixels in another shape is refused, naming both. */
static void test_shapes(void **state) {
  (void)state;
  char im[160], lb[160], want[400];
  RtSet tr, te;
  write_valid(); /* 3 x 4 */
  write_t10k(2, 6, im, lb, sizeof im);
  assert_int_equal(load_data(ROWS * COLS, NULL, &tr, &te), -1);
  snprintf(want, sizeof want, "%s: the train images are 3 x 4 pixels and the t10k images "
           "2 x 6: both sets must have one shape", tmp);
  assert_string_equal(err, want);
  assert_true(!tr.images && !te.images && !tr.labels && !te.labels);
  write_t10k(ROWS, COLS, im, lb, sizeof im);
  assert_int_equal(load_data(13, NULL, &tr, &te), -1);
  snprintf(want, sizeof want, "%s: images have 12 features (3 x 4), the model's input is 13",
           tmp);
  assert_string_equal(err, want);
  assert_int_equal(load_data(ROWS * COLS, NULL, &tr, &te), 0);
  assert_true(tr.n == N && te.n == N && te.rows == ROWS && te.cols == COLS);
  rt_free_set(&tr);
  rt_free_set(&te);
  remove(im);
  remove(lb);
}

/* rt_load_data with channels: a 3 x 5 x 4 train set against a t10k set of
   one channel is refused, naming both shapes in full; against 3 x 5 x 4
   it is 60 features. One channel in 4 dimensions and the 3-d file are
   one shape. */
static void test_shapes4(void **state) {
  (void)state;
  char im[160], lb[160], want[400];
  RtSet tr, te;
  write_valid4();
  write_t10k(H4, W4, im, lb, sizeof im);
  assert_int_equal(load_data(C4 * H4 * W4, NULL, &tr, &te), -1);
  snprintf(want, sizeof want, "%s: the train images are 3 x 5 x 4 and the t10k images "
           "1 x 5 x 4 (channels x height x width): both sets must have one shape", tmp);
  assert_string_equal(err, want);
  remove(im);
  write_t10k_as(images4(0x804, N, C4, H4, W4), "t10k-images-idx4-ubyte", im, lb, sizeof im);
  assert_int_equal(load_data(13, NULL, &tr, &te), -1);
  snprintf(want, sizeof want, "%s: images have 60 features (3 x 5 x 4), the model's input "
           "is 13", tmp);
  assert_string_equal(err, want);
  assert_int_equal(load_data(C4 * H4 * W4, NULL, &tr, &te), 0);
  assert_true(tr.channels == C4 && te.channels == C4 && te.rows == H4 && te.cols == W4);
  rt_free_set(&tr);
  rt_free_set(&te);
  clean();
  write_valid();
  write_t10k_as(images4(0x804, N, 1, ROWS, COLS), "t10k-images-idx4-ubyte", im, lb, sizeof im);
  assert_int_equal(load_data(ROWS * COLS, NULL, &tr, &te), 0);
  rt_free_set(&tr);
  rt_free_set(&te);
}

/* A model's input as [C, H, W]: the images must have exactly that shape,
   channels, height and width each (a permutation has the same count of
   features); {0, 0, 0} is a flat input. 3-d files have one channel. */
static void test_model_shape(void **state) {
  (void)state;
  static const int bad[][3] = {{1, H4, W4}, {C4, 4, W4}, {C4, H4, 5}, {W4, H4, C4}};
  char im[160], lb[160], want[400];
  RtSet tr, te;
  write_valid4();
  write_t10k_as(images4(0x804, N, C4, H4, W4), "t10k-images-idx4-ubyte", im, lb, sizeof im);
  for (int flat = 0; flat < 2; flat++) {
    assert_int_equal(load_data(C4 * H4 * W4, flat ? (int[]){0, 0, 0} : (int[]){C4, H4, W4},
                               &tr, &te), 0);
    rt_free_set(&tr), rt_free_set(&te);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(load_data(bad[i][0] * bad[i][1] * bad[i][2], bad[i], &tr, &te), -1);
    snprintf(want, sizeof want, "%s: images are 3 x 5 x 4 (channels x height x width); the "
             "model's input is [%d, %d, %d]", tmp, bad[i][0], bad[i][1], bad[i][2]);
    assert_string_equal(err, want);
    assert_true(!tr.images && !te.images && !tr.labels && !te.labels);
  }
  clean();
  write_valid();
  write_t10k(ROWS, COLS, im, lb, sizeof im);
  assert_int_equal(load_data(ROWS * COLS, (int[]){1, ROWS, COLS}, &tr, &te), 0);
  rt_free_set(&tr), rt_free_set(&te);
  assert_int_equal(load_data(ROWS * COLS, (int[]){1, COLS, ROWS}, &tr, &te), -1);
  snprintf(want, sizeof want, "%s: images are 1 x 3 x 4 (channels x height x width); the "
           "model's input is [1, 4, 3]", tmp);
  assert_string_equal(err, want);
  assert_int_equal(load_data(13, (int[]){1, ROWS, COLS}, &tr, &te), -1);
  snprintf(want, sizeof want, "%s: images have 12 features (3 x 4), the model's input is 13",
           tmp);
  assert_string_equal(err, want);
}

/* rt_train checks the data against the network's shape: 3 x 5 x 4
   images, 60 features, for a network of input [1, 6, 10] are bad data
   (status 2), refused before anything else of the network is used. */
static void test_train_shape(void **state) {
  (void)state;
  char im[160], lb[160], log[160];
  RtNet net = {.name = "shaped", .input = 60, .output = NCLASSES, .shape = {1, 6, 10}};
  RtOptions o = {.epochs = 1, .data = tmp};
  write_valid4();
  write_t10k_as(images4(0x804, N, C4, H4, W4), "t10k-images-idx4-ubyte", im, lb, sizeof im);
  snprintf(log, sizeof log, "%s/stderr", tmp);
  fflush(stderr);
  int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  dup2(fd, 2), close(fd);
  int rc = rt_train(&net, &o);
  fflush(stderr);
  dup2(saved, 2), close(saved);
  assert_int_equal(rc, 2);
  size_t len;
  char *msg = util_slurp(log, &len);
  remove(log);
  if (!strstr(msg, "images are 3 x 5 x 4 (channels x height x width); the model's input is "
                   "[1, 6, 10]"))
    fail_msg("%s", msg);
  free(msg);
}

/* Labels must be below the number of classes. */
static void test_label_range(void **state) {
  (void)state;
  write_valid();
  Bytes lb = labels(N);
  lb.b[8 + 3] = 12;
  write_raw(lpath, lb.b, lb.len);
  load_fails(lpath, "label 12 at index 3 is out of range (expected 0..9)");
  lb.b[8 + 3] = 10;
  write_raw(lpath, lb.b, lb.len);
  load_fails(lpath, "label 10 at index 3 is out of range (expected 0..9)");
  lb.b[8 + 3] = 9;
  write_raw(lpath, lb.b, lb.len);
  RtSet s;
  load_ok(&s);
  rt_free_set(&s);
}

/* Every byte of a gzip file's compressed data and trailer, flipped. */
static void test_corrupt_gzip(void **state) {
  (void)state;
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  unsigned char z[8192];
  size_t len = gzip(im.b, im.len, z, sizeof z);
  write_raw(lpath, lb.b, lb.len);
  char gz[160];
  snprintf(gz, sizeof gz, "%s.gz", ipath);
  for (size_t i = 10; i < len; i++) {
    z[i] ^= 0xff;
    write_raw(gz, z, len);
    z[i] ^= 0xff;
    load_fails(gz, "gzip data");
  }
  z[len - 8] ^= 1;  /* the CRC */
  write_raw(gz, z, len);
  load_fails(gz, "corrupt gzip data (incorrect data check)");
}

/* Every truncation of a gzip file, down to its two magic bytes. */
static void test_truncated_gzip(void **state) {
  (void)state;
  Bytes im = images(0x803, N, ROWS, COLS), lb = labels(N);
  unsigned char z[8192];
  size_t len = gzip(im.b, im.len, z, sizeof z);
  write_raw(lpath, lb.b, lb.len);
  char gz[160];
  snprintf(gz, sizeof gz, "%s.gz", ipath);
  for (size_t n = 2; n < len; n++) {
    write_raw(gz, z, n);
    load_fails(gz, "gzip data is truncated");
  }
}

/* Writes path.gz: the valid file im, then zeros that inflate to 8 GiB;
   beside it the labels. Expects the load to fail with phrase. */
static void gzip_bomb(const char *path, Bytes im, const char *phrase) {
  enum { MEMBER = 16 << 20, COPIES = 512 };
  unsigned char *zeros = calloc(MEMBER, 1), *z = malloc(1 << 20);
  size_t head = gzip(im.b, im.len, z, 1 << 20);
  size_t body = gzip(zeros, MEMBER, z + head, (1 << 20) - head);
  char gz[160];
  write_raw(lpath, labels(N).b, labels(N).len);
  snprintf(gz, sizeof gz, "%s.gz", path);
  FILE *f = fopen(gz, "wb");
  assert_non_null(f);
  fwrite(z, 1, head, f);
  for (int i = 0; i < COPIES; i++)
    fwrite(z + head, 1, body, f);
  assert_int_equal(fclose(f), 0);
  load_fails(gz, phrase);
  free(zeros);
  free(z);
}

/* A small gzip file that inflates to 8 GiB after a valid header is
   refused once it passes what the header says, not at the 4 GiB limit. */
static void test_gzip_bomb(void **state) {
  (void)state;
  gzip_bomb(ipath, images(0x803, N, ROWS, COLS),
            "gzip data inflate to more than the 76 bytes its IDX header says");
}

/* Loads the temp dir's train set in a child process, as nobody when we
   are root (who reads anything: util_drop_root); its message into err. */
static void load_as_nobody(void) {
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    RtSet s;
    char msg[sizeof err] = "";
    if (util_drop_root())
      snprintf(msg, sizeof msg, "cannot become nobody");
    else if (rt_load_set(tmp, "train", NCLASSES, &s, msg, sizeof msg) == 0)
      snprintf(msg, sizeof msg, "loaded");
    _exit(write(fds[1], msg, strlen(msg) + 1) > 0 ? 0 : 1);
  }
  close(fds[1]);
  ssize_t n = read(fds[0], err, sizeof err - 1);
  err[n > 0 ? n : 0] = 0;
  close(fds[0]);
  assert_int_equal(waitpid(pid, NULL, 0), pid);
}

/* A file that opens but cannot be read (/proc/self/mem gives EIO at
   offset 0), and one without read permission (read as nobody when the
   test runs as root, the directory opened to others for it). */
static void test_unreadable(void **state) {
  (void)state;
  write_valid();
  remove(ipath);
  assert_int_equal(symlink("/proc/self/mem", ipath), 0);
  load_fails(ipath, "cannot read (Input/output error)");
  remove(ipath);
  write_valid();
  assert_int_equal(chmod(lpath, 0), 0);
  assert_int_equal(chmod(tmp, 0711), 0);
  load_as_nobody();
  chmod(tmp, 0700);
  chmod(lpath, 0644);
  char want[300];
  snprintf(want, sizeof want, "%s: cannot open (Permission denied)", lpath);
  assert_string_equal(err, want);
}

/* Data that would not fit in the memory available (pretended small with
   MLPC_TEST_MEM_AVAILABLE) are refused with the figures before they are
   read or inflated, raw or gzip; a header that claims 78 MB in a few
   bytes of gzip is refused for memory before its lie is found. */
static void test_memory(void **state) {
  (void)state;
  RtSet s;
  char gz[160];
  setenv("MLPC_TEST_MEM_AVAILABLE", "60", 1);
  write_valid();
  load_fails(ipath, "decoded, it takes 77 bytes (0.0 MiB) of memory, more than the 60 bytes "
                    "(0.0 MiB) available (MemAvailable); refused before loading");
  setenv("MLPC_TEST_MEM_AVAILABLE", "77", 1);
  load_ok(&s);  /* just enough: the file and one byte to see its end */
  rt_free_set(&s);
  clean();
  enum { PIXELS = 1 << 20 };  /* a header of 100000 images of 28 x 28, 1 MiB of pixels */
  Bytes head = {.len = 0};
  put_u32(&head, 0x803);
  put_u32(&head, 100000), put_u32(&head, 28), put_u32(&head, 28);
  unsigned char *raw = calloc(16 + PIXELS, 1), *z = malloc(PIXELS);
  memcpy(raw, head.b, 16);
  snprintf(gz, sizeof gz, "%s.gz", ipath);
  write_raw(gz, z, gzip(raw, 16 + PIXELS, z, PIXELS));
  write_raw(lpath, labels(N).b, labels(N).len);
  setenv("MLPC_TEST_MEM_AVAILABLE", "10000000", 1);
  load_fails(gz, "decoded, it takes 78400017 bytes (74.8 MiB) of memory, more than the "
                 "10000000 bytes (9.5 MiB) available");
  unsetenv("MLPC_TEST_MEM_AVAILABLE");
  load_fails(gz, "file is 1048592 bytes, header says 78400016");
  free(raw), free(z);
}

/* A file over the 4 GiB limit is refused before it is read (a sparse
   file: no disk is used). */
static void test_huge(void **state) {
  (void)state;
  write_valid();
  FILE *f = fopen(ipath, "wb");
  assert_non_null(f);
  assert_int_equal(ftruncate(fileno(f), (off_t)5 << 30), 0);
  fclose(f);
  load_fails(ipath, "file is 5368709120 bytes, more than the 4294967296 bytes mlpc reads");
}

/* A directory where the image file should be. */
static void test_directory(void **state) {
  (void)state;
  write_valid();
  remove(ipath);
  assert_int_equal(mkdir(ipath, 0755), 0);
  load_fails(ipath, "is a directory");
}

/* Neither NAME nor NAME.gz, for images (of 3 or 4 dimensions) then labels. */
static void test_missing(void **state) {
  (void)state;
  char phrase[500];
  snprintf(phrase, sizeof phrase, "no such file (also tried %s.gz, %s and %s.gz)", ipath,
           i4path, i4path);
  load_fails(ipath, phrase);
  write_valid();
  remove(lpath);
  snprintf(phrase, sizeof phrase, "no such file (also tried %s.gz)", lpath);
  load_fails(lpath, phrase);
}

/* A message longer than the buffer is cut, never overrun. */
static void test_short_err(void **state) {
  (void)state;
  char small[8] = "xxxxxxx";
  RtSet s;
  assert_int_equal(rt_load_set(tmp, "train", NCLASSES, &s, small, 5), -1);
  assert_int_equal(strlen(small), 4);
  assert_int_equal(small[6], 'x');
  assert_int_equal(rt_load_set(tmp, "train", NCLASSES, &s, NULL, 0), -1);
  assert_int_equal(rt_load_set(tmp, "train", 0, &s, err, sizeof err), -1);
}

/* ---- images of 4 dimensions ---- */

/* Checks every value of a set made by write_valid4, in NCHW order: image
   i, channel c, row h, column w is byte ((i * C + c) * H + h) * W + w. */
static void check_valid4(const RtSet *s) {
  assert_int_equal(s->n, N);
  assert_int_equal(s->channels, C4);
  assert_int_equal(s->rows, H4);
  assert_int_equal(s->cols, W4);
  for (int i = 0; i < N; i++) {
    assert_int_equal(s->labels[i], i % 10);
    for (int c = 0; c < C4; c++)
      for (int h = 0; h < H4; h++)
        for (int w = 0; w < W4; w++)
          assert_int_equal(s->images[((i * C4 + c) * H4 + h) * W4 + w],
                           pixel(i, (c * H4 + h) * W4 + w));
  }
}

/* A 3 x 5 x 4 image set, raw and gzip. */
static void test_idx4(void **state) {
  (void)state;
  RtSet s;
  write_valid4();
  load_ok(&s);
  check_valid4(&s);
  rt_free_set(&s);
  clean();
  Bytes im = images4(0x804, N, C4, H4, W4), lb = labels(N);
  write_gz(i4path, im.b, im.len);
  write_raw(lpath, lb.b, lb.len);
  load_ok(&s);
  check_valid4(&s);
  rt_free_set(&s);
}

/* Images of one channel in 4 dimensions load as the 3-d file does. */
static void test_idx4_one_channel(void **state) {
  (void)state;
  RtSet a, b;
  write_valid();
  load_ok(&a);
  remove(ipath);
  Bytes im = images4(0x804, N, 1, ROWS, COLS);
  write_raw(i4path, im.b, im.len);
  load_ok(&b);
  assert_true(a.n == b.n && a.channels == 1 && b.channels == 1);
  assert_true(a.rows == b.rows && a.cols == b.cols);
  assert_memory_equal(a.images, b.images, N * ROWS * COLS);
  assert_memory_equal(a.labels, b.labels, N);
  rt_free_set(&a);
  rt_free_set(&b);
}

/* Image files of 3 and 4 dimensions side by side: which to read is not
   guessed. */
static void test_idx4_both(void **state) {
  (void)state;
  char phrase[300], gz[160];
  write_valid();
  write_valid4();
  snprintf(phrase, sizeof phrase, "%s is there too: a set has one image file", i4path);
  load_fails(ipath, phrase);
  remove(i4path);
  Bytes im = images4(0x804, N, C4, H4, W4);
  write_gz(i4path, im.b, im.len);
  snprintf(gz, sizeof gz, "%s.gz", i4path);
  snprintf(phrase, sizeof phrase, "%s is there too", gz);
  load_fails(ipath, phrase);
}

/* Every truncation of the 4-d file, and a byte too many. */
static void test_idx4_size(void **state) {
  (void)state;
  Bytes im = images4(0x804, N, C4, H4, W4);
  char phrase[64];
  write_valid4();
  for (size_t len = 0; len < im.len; len++) {
    write_raw(i4path, im.b, len);
    snprintf(phrase, sizeof phrase, "file is %zu bytes", len);
    load_fails(i4path, phrase);
  }
  im.b[im.len++] = 0;
  write_raw(i4path, im.b, im.len);
  load_fails(i4path, "file is 321 bytes, header says 320");
}

/* Magic numbers of the wrong dimensions or type, each way round; the
   hint names the other image file only for images. */
static void test_idx4_magic(void **state) {
  (void)state;
  write_valid4();
  Bytes im3 = images(0x803, N, ROWS, COLS), im4 = images4(0x804, N, C4, H4, W4);
  write_raw(i4path, im3.b, im3.len);
  load_fails(i4path, "bad magic number 0x00000803, expected 0x00000804 (an IDX image file): it "
             "has 3 dimensions, not 4 (images in 3 dimensions are read from a file named "
             "*-images-idx3-ubyte)");
  remove(i4path);
  write_raw(ipath, im4.b, im4.len);
  load_fails(ipath, "bad magic number 0x00000804, expected 0x00000803 (an IDX image file): it "
             "has 4 dimensions, not 3 (images in 4 dimensions are read from a file named "
             "*-images-idx4-ubyte)");
  remove(ipath);
  im4.b[3] = 5;
  write_raw(i4path, im4.b, im4.len);
  load_fails(i4path, "it has 5 dimensions, not 4");
  assert_null(strstr(err, "images in"));
  im4.b[2] = 0x0d, im4.b[3] = 4;
  write_raw(i4path, im4.b, im4.len);
  load_fails(i4path, "its elements are type 0x0d, not unsigned bytes");
  write_raw(i4path, labels(N).b, labels(N).len);
  load_fails(i4path, "it has 1 dimension, not 4");
  write_valid4();
  im4.b[2] = 8;
  write_raw(lpath, im4.b, im4.len);
  load_fails(lpath, "bad magic number 0x00000804, expected 0x00000801 (an IDX label file): "
             "it has 4 dimensions, not 1");
  assert_null(strstr(err, "images in"));
}

/* Each of the four dimensions in turn zero. */
static void test_idx4_zero_dims(void **state) {
  (void)state;
  static const char *const what[] = {"header says 0 images", "header says 0 channels",
                                     "header says 0 rows", "header says 0 columns"};
  write_valid4();
  for (int d = 0; d < 4; d++) {
    Bytes im = images4(0x804, N, C4, H4, W4);
    memset(im.b + 4 + 4 * d, 0, 4);
    write_raw(i4path, im.b, im.len);
    load_fails(i4path, what[d]);
  }
}

/* Four dimensions whose product overflows 64 bits, or is absurdly large. */
static void test_idx4_overflow(void **state) {
  (void)state;
  write_valid4();
  Bytes im = {.len = 0};
  put_u32(&im, 0x804);
  for (int d = 0; d < 4; d++)
    put_u32(&im, 0xffffffffu);
  write_raw(i4path, im.b, im.len);
  load_fails(i4path, "header says 4294967295 x 4294967295 x 4294967295 x 4294967295 "
                     "elements, which overflows");
  im.len = 4;
  for (int d = 0; d < 4; d++)
    put_u32(&im, 65536);
  write_raw(i4path, im.b, im.len);
  load_fails(i4path, "header says 65536 x 65536 x 65536 x 65536 elements, which overflows");
  im.len = 16;
  put_u32(&im, 1);
  write_raw(i4path, im.b, im.len);
  load_fails(i4path, "file is 20 bytes, header says 281474976710676");
}

/* One label fewer than images of 4 dimensions. */
static void test_idx4_count_mismatch(void **state) {
  (void)state;
  char phrase[300];
  write_valid4();
  write_raw(lpath, labels(N - 1).b, labels(N - 1).len);
  snprintf(phrase, sizeof phrase, "has 4 labels but %s has 5 images", i4path);
  load_fails(lpath, phrase);
}

/* gzip of a 4-d file: inflating stops past the size its header says, and
   a header that claims more memory than there is is refused first. */
static void test_idx4_gzip_limits(void **state) {
  (void)state;
  char gz[160];
  gzip_bomb(i4path, images4(0x804, N, C4, H4, W4),
            "gzip data inflate to more than the 320 bytes its IDX header says");
  enum { PIXELS = 1 << 20 };  /* a header of 100000 images of 1 x 28 x 28 */
  Bytes head = {.len = 0};
  put_u32(&head, 0x804);
  put_u32(&head, 100000), put_u32(&head, 1), put_u32(&head, 28), put_u32(&head, 28);
  unsigned char *raw = calloc(20 + PIXELS, 1), *z = malloc(PIXELS);
  memcpy(raw, head.b, 20);
  snprintf(gz, sizeof gz, "%s.gz", i4path);
  write_raw(gz, z, gzip(raw, 20 + PIXELS, z, PIXELS));
  setenv("MLPC_TEST_MEM_AVAILABLE", "10000000", 1);
  load_fails(gz, "decoded, it takes 78400021 bytes (74.8 MiB) of memory, more than the "
                 "10000000 bytes (9.5 MiB) available");
  unsetenv("MLPC_TEST_MEM_AVAILABLE");
  free(raw), free(z);
}

/* ---- the prepared data sets ---- */

/* Loads DIR's train and t10k sets, or skips when DIR has none. */
static int load_pair(const char *dir, RtSet *tr, RtSet *te) {
  char path[512];
  snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte", dir);
  if (access(path, F_OK) && (strcat(path, ".gz"), access(path, F_OK)))
    return -1;
  if (rt_load_set(dir, "train", NCLASSES, tr, err, sizeof err) ||
      rt_load_set(dir, "t10k", NCLASSES, te, err, sizeof err))
    fail_msg("%s", err);
  return 0;
}

/* Counts each label of a set. */
static void histogram(const RtSet *s, long h[NCLASSES]) {
  memset(h, 0, NCLASSES * sizeof h[0]);
  for (long i = 0; i < s->n; i++)
    h[s->labels[i]]++;
}

/* data/mnist as scripts/data.sh makes it: 8000 + 2000, stratified, mixed. */
static void test_mnist(void **state) {
  (void)state;
  RtSet tr, te;
  const char *dir = MLPC_SOURCE_DIR "/data/mnist";
  if (load_pair(dir, &tr, &te))
    skip();
  assert_int_equal(tr.rows, 28);
  assert_int_equal(tr.cols, 28);
  if (access(MLPC_SOURCE_DIR "/data/mnist/.made-by-data-sh", F_OK) == 0) {
    long htr[NCLASSES], hte[NCLASSES];
    assert_int_equal(tr.n, 8000);
    assert_int_equal(te.n, 2000);
    histogram(&tr, htr);
    histogram(&te, hte);
    for (int d = 0; d < NCLASSES; d++) {  /* 80% of each digit, rounded */
      double want = 0.8 * (htr[d] + hte[d]);
      assert_true(htr[d] > want - 1 && htr[d] < want + 1);
    }
    long h[NCLASSES];  /* interleaved: every digit in the first 100 */
    RtSet head = tr;
    head.n = 100;
    histogram(&head, h);
    for (int d = 0; d < NCLASSES; d++)
      assert_true(h[d] > 0);
  }
  rt_free_set(&tr);
  rt_free_set(&te);
}

/* data/fashion-mnist: the full 60000 + 10000. */
static void test_fashion(void **state) {
  (void)state;
  RtSet tr, te;
  if (load_pair(MLPC_SOURCE_DIR "/data/fashion-mnist", &tr, &te))
    skip();
  assert_int_equal(tr.n, 60000);
  assert_int_equal(te.n, 10000);
  assert_int_equal(tr.rows * tr.cols, 784);
  rt_free_set(&tr);
  rt_free_set(&te);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_raw, before),
    cmocka_unit_test_setup(test_gzip, before),
    cmocka_unit_test_setup(test_mixed, before),
    cmocka_unit_test_setup(test_raw_preferred, before),
    cmocka_unit_test_setup(test_gzip_by_magic, before),
    cmocka_unit_test_setup(test_gzip_members, before),
    cmocka_unit_test_setup(test_trailing_slash, before),
    cmocka_unit_test_setup(test_truncated, before),
    cmocka_unit_test_setup(test_too_long, before),
    cmocka_unit_test_setup(test_bad_magic, before),
    cmocka_unit_test_setup(test_wrong_dims, before),
    cmocka_unit_test_setup(test_zero_dims, before),
    cmocka_unit_test_setup(test_overflow, before),
    cmocka_unit_test_setup(test_count_mismatch, before),
    cmocka_unit_test_setup(test_label_range, before),
    cmocka_unit_test_setup(test_shapes, before),
    cmocka_unit_test_setup(test_shapes4, before),
    cmocka_unit_test_setup(test_model_shape, before),
    cmocka_unit_test_setup(test_train_shape, before),
    cmocka_unit_test_setup(test_corrupt_gzip, before),
    cmocka_unit_test_setup(test_truncated_gzip, before),
    cmocka_unit_test_setup(test_gzip_bomb, before),
    cmocka_unit_test_setup(test_unreadable, before),
    cmocka_unit_test_setup(test_huge, before),
    cmocka_unit_test_setup(test_memory, before),
    cmocka_unit_test_setup(test_directory, before),
    cmocka_unit_test_setup(test_missing, before),
    cmocka_unit_test_setup(test_short_err, before),
    cmocka_unit_test_setup(test_idx4, before),
    cmocka_unit_test_setup(test_idx4_one_channel, before),
    cmocka_unit_test_setup(test_idx4_both, before),
    cmocka_unit_test_setup(test_idx4_size, before),
    cmocka_unit_test_setup(test_idx4_magic, before),
    cmocka_unit_test_setup(test_idx4_zero_dims, before),
    cmocka_unit_test_setup(test_idx4_overflow, before),
    cmocka_unit_test_setup(test_idx4_count_mismatch, before),
    cmocka_unit_test_setup(test_idx4_gzip_limits, before),
    cmocka_unit_test(test_mnist),
    cmocka_unit_test(test_fashion),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
