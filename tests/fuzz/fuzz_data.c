/*
 * fuzz_data.c — the NumPy and CSV readers (rt/npy.c, rt/csv.c)
 * on arbitrary files. The first byte picks what the rest is: 0 one .npy
 * file, read (inflating gzip) and its header parsed; 1 a pair: the next
 * two bytes say where train_x.npy ends and train_y.npy begins, loaded as a
 * set for a float32 model, 2 the same for a float64 model; anything else
 * train.csv, loaded as a set (float32 after an odd byte, float64 after an
 * even one). Every input must load or be refused with a message naming
 * the file; what loads holds labels below 10 and only finite values.
 *
 * Seeds: tests/fuzz/data, NumPy's own files (tests/arrays/npy) as single
 * files and pairs, gzip, and CSV files, written by
 *   MLPC_FUZZ_SEEDS=tests/fuzz/data build/tests/fuzz_data /dev/null
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "../../rt/rt.h"

static char dir[64], xpath[128], ypath[128], cpath[128];

/* Says what went wrong and stops: a finding. */
static void finding(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_data: %s: %s\n", what, detail);
  abort();
}

/* Writes len bytes to p. */
static void put(const char *p, const uint8_t *data, size_t len) {
  FILE *f = fopen(p, "wb");
  if (!f || fwrite(data, 1, len, f) != len || fclose(f))
    finding(p, "cannot write");
}

/* A refusal's message must name the file it is about. */
static void named(int rc, const char *err) {
  if (rc && strncmp(err, dir, strlen(dir)))
    finding("a refusal that names no file", err);
}

/* What loaded must hold labels in range and finite values only. */
static void check_set(RtSet *s) {
  size_t per = (size_t)s->channels * s->rows * s->cols;
  for (long i = 0; i < s->n; i++)
    if (s->labels[i] >= 10)
      finding("a label out of range loaded", dir);
  for (size_t i = 0; s->dtype != RT_U8 && i < (size_t)s->n * per; i++) {
    double v;
    float f;
    if (s->dtype == RT_F32)
      memcpy(&f, s->images + 4 * i, 4), v = f;
    else
      memcpy(&v, s->images + 8 * i, 8);
    if (!isfinite(v))
      finding("a value that is not finite loaded", dir);
  }
  rt_free_set(s);
}

/* One .npy file: read and parsed. */
static void one_file(const uint8_t *data, size_t size) {
  char err[1024] = "";
  RtNpy h;
  size_t len = 0;
  put(xpath, data, size);
  unsigned char *buf = rt_read_file(xpath, &rt_npy_sizer, &len, err, sizeof err);
  if (!buf)
    return named(-1, err);
  named(rt_parse_npy(buf, len, xpath, &h, err, sizeof err), err);
  free(buf);
}

/* A pair of .npy files loaded as a set of 10 classes for dtype. */
static void pair(const uint8_t *data, size_t size, int dtype) {
  char err[1024] = "";
  RtSet s;
  size_t cut = size < 2 ? 0 : ((size_t)data[0] << 8 | data[1]);
  data += size < 2 ? size : 2, size -= size < 2 ? size : 2;
  cut = cut < size ? cut : size;
  put(xpath, data, cut);
  put(ypath, data + cut, size - cut);
  int rc = rt_load_npy_set(dir, "train", 10, dtype, &s, err, sizeof err);
  named(rc, err);
  if (!rc)
    check_set(&s);
}

/* A CSV file loaded as a set of 10 classes for dtype. */
static void csv(const uint8_t *data, size_t size, int dtype) {
  char err[1024] = "";
  RtSet s;
  put(cpath, data, size);
  int rc = rt_load_csv_set(dir, "train", 10, dtype, &s, err, sizeof err);
  named(rc, err);
  if (!rc)
    check_set(&s);
}

/* ---- seeds ---- */

/* Reads a whole file into a new buffer; NULL if it cannot. */
static uint8_t *slurp(const char *path, size_t *len) {
  size_t n = 0;
  uint8_t *buf = (uint8_t *)rt_read_file(path, NULL, &n, NULL, 0);
  *len = n;
  return buf;
}

/* x gzip-compressed into out (cap bytes); its length. */
static size_t gz(const uint8_t *x, size_t len, uint8_t *out, size_t cap) {
  z_stream z = {0};
  deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef *)x, z.avail_in = (uInt)len;
  z.next_out = out, z.avail_out = (uInt)cap;
  deflate(&z, Z_FINISH);
  size_t n = z.total_out;
  deflateEnd(&z);
  return n;
}

/* Writes a seed: the mode byte, a (and b, after a 2-byte cut, if any). */
static void seed(const char *to, const char *name, int mode, const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen) {
  char p[512];
  uint8_t head[3] = {(uint8_t)mode, (uint8_t)(alen >> 8), (uint8_t)alen};
  snprintf(p, sizeof p, "%s/%s", to, name);
  FILE *f = fopen(p, "wb");
  if (!f)
    finding(p, "cannot write");
  fwrite(head, 1, mode == 1 || mode == 2 ? 3 : 1, f);
  fwrite(a, 1, alen, f);
  if (b)
    fwrite(b, 1, blen, f);
  fclose(f);
}

/* A case of tests/arrays/npy as a single file, its gzip, and a pair. */
static void seed_case(const char *to, const char *c) {
  char x[256], y[256], name[64];
  uint8_t z[8192];
  size_t xl, yl;
  snprintf(x, sizeof x, "tests/arrays/npy/%s_x.npy", c);
  snprintf(y, sizeof y, "tests/arrays/npy/%s_y.npy", c);
  uint8_t *a = slurp(x, &xl), *b = slurp(y, &yl);
  if (!a || !b || xl > 0xffff)
    finding(x, "cannot read a seed");
  snprintf(name, sizeof name, "npy_%s", c);
  seed(to, name, 0, a, xl, NULL, 0);
  snprintf(name, sizeof name, "npy_%s_gz", c);
  seed(to, name, 0, z, gz(a, xl, z, sizeof z), NULL, 0);
  snprintf(name, sizeof name, "pair_%s", c);
  seed(to, name, 1, a, xl, b, yl);
  free(a), free(b);
}

/* The seed corpus. */
static void write_seeds(const char *to) {
  static const char *const cases[] = {"u1", "nchw", "f4", "f8be", "v2", "ybei2", "yleu8",
                                      "fortran", "struct", "nan", "f8big", "ybig", "y2d"};
  static const char *const texts[] = {
    "label,a,b\n1,0.5,2\n2,-1,3e2\n", "1,\"0.5\",2\r\n\r\n2, -1 ,3e2", "1,2\n1,nan\n",
    "\xef\xbb\xbf" "1,2,3\n4,5\n", "y,a\n10,1\n", "1,1e39\n0,0x1p3\n",
    "0,1,2\n1,2,3\n"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    seed_case(to, cases[i]);
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char name[32];
    snprintf(name, sizeof name, "csv_%zu", i);
    seed(to, name, 3 + (int)(i % 2), (const uint8_t *)texts[i], strlen(texts[i]), NULL, 0);
  }
}

/* Removes the harness's files when the process ends. */
static void cleanup(void) {
  remove(xpath);
  remove(ypath);
  remove(cpath);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  atexit(cleanup);
  if (getenv("MLPC_FUZZ_SEEDS"))
    write_seeds(getenv("MLPC_FUZZ_SEEDS"));
  snprintf(dir, sizeof dir, "/tmp/mlpc-fuzz-data-%ld", (long)getpid());
  mkdir(dir, 0700);
  snprintf(xpath, sizeof xpath, "%s/train_x.npy", dir);
  snprintf(ypath, sizeof ypath, "%s/train_y.npy", dir);
  snprintf(cpath, sizeof cpath, "%s/train.csv", dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] == 0)
    one_file(data + 1, size - 1);
  else if (data[0] < 3)
    pair(data + 1, size - 1, data[0] == 1 ? RT_F32 : RT_F64);
  else
    csv(data + 1, size - 1, data[0] % 2 ? RT_F32 : RT_F64);
  return 0;
}
