/*
 * fuzz_idx.c — the IDX reader (rt/idx.c) on arbitrary files. The
 * first byte picks what the rest is: 0 an image file of 3 dimensions,
 * 3 one of 4, 1 a label file (each raw or gzip); anything else a pair:
 * the next two bytes say where the image file ends and the label file
 * begins, and the pair is loaded as a data set, its images read from
 * PREFIX-images-idx4-ubyte after a 4, else from PREFIX-images-idx3-ubyte.
 * Every input must load or be refused with a message naming the file.
 *
 * Seeds: tests/fuzz/idx, small valid files and pairs, raw and gzip, and a
 * few damaged ones, written by
 *   MLPC_FUZZ_SEEDS=tests/fuzz/idx build/tests/fuzz_idx /dev/null
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "../../rt/rt.h"

static char dir[64], ipath[128], i4path[128], lpath[128];

/* Says what went wrong and stops: a finding. */
static void finding(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_idx: %s: %s\n", what, detail);
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

/* One file of ndims dimensions: read (inflating gzip) and parsed. */
static void one_file(const uint8_t *data, size_t size, int ndims) {
  char err[1024] = "";
  long dims[4];
  size_t len = 0, off = 0;
  put(ipath, data, size);
  unsigned char *buf = rt_read_file(ipath, &rt_idx_sizer, &len, err, sizeof err);
  if (!buf)
    return named(-1, err);
  named(rt_parse_idx(buf, len, ndims, ipath, dims, &off, err, sizeof err), err);
  free(buf);
}

/* A pair loaded as a data set of 10 classes, the images from the file of
   4 dimensions (idx4) or of 3. */
static void pair(const uint8_t *data, size_t size, int idx4) {
  char err[1024] = "";
  RtSet s;
  size_t cut = size < 2 ? 0 : ((size_t)data[0] << 8 | data[1]);
  data += size < 2 ? size : 2, size -= size < 2 ? size : 2;
  cut = cut < size ? cut : size;
  remove(idx4 ? ipath : i4path);
  put(idx4 ? i4path : ipath, data, cut);
  put(lpath, data + cut, size - cut);
  int rc = rt_load_set(dir, "train", 10, &s, err, sizeof err);
  named(rc, err);
  if (!rc) {
    for (long i = 0; i < s.n; i++)
      if (s.labels[i] >= 10)
        finding("a label out of range loaded", lpath);
    rt_free_set(&s);
  }
}

/* ---- seeds ---- */

typedef struct {
  uint8_t b[512];
  size_t len;
} Bytes;

/* Appends a big-endian u32. */
static void u32(Bytes *o, uint32_t v) {
  for (int i = 3; i >= 0; i--)
    o->b[o->len++] = (uint8_t)(v >> 8 * i);
}

/* n images of 2 x 3 pixels (images 3), of 2 x 2 x 3 (images 4), or n
   labels (images 0; below 10 unless bad). */
static Bytes idx(int images, uint32_t n, int bad) {
  Bytes o = {.len = 0};
  uint32_t each = images == 4 ? 12 : images ? 6 : 1;
  u32(&o, images ? 0x800u | (uint32_t)images : 0x801);
  u32(&o, n);
  if (images == 4)
    u32(&o, 2);
  if (images)
    u32(&o, 2), u32(&o, 3);
  for (uint32_t i = 0; i < n * each; i++)
    o.b[o.len++] = (uint8_t)(images ? i * 41 : i % 10 + (bad ? 10 : 0));
  return o;
}

/* x gzip-compressed. */
static Bytes gz(Bytes x) {
  Bytes o = {.len = 0};
  z_stream z = {0};
  deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  z.next_in = x.b, z.avail_in = (uInt)x.len;
  z.next_out = o.b, z.avail_out = sizeof o.b;
  deflate(&z, Z_FINISH);
  o.len = z.total_out;
  deflateEnd(&z);
  return o;
}

/* Writes a seed: the mode byte, then a (and b, after a 2-byte cut). */
static void seed(const char *dir, const char *name, int mode, Bytes a, const Bytes *b) {
  char p[512];
  uint8_t head[3] = {(uint8_t)mode, (uint8_t)(a.len >> 8), (uint8_t)a.len};
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "wb");
  if (!f)
    finding(p, "cannot write");
  fwrite(head, 1, b ? 3 : 1, f);
  fwrite(a.b, 1, a.len, f);
  if (b)
    fwrite(b->b, 1, b->len, f);
  fclose(f);
}

/* The seeds of 4 dimensions: files, pairs, and a 3-d file in its place. */
static void write_seeds4(const char *dir) {
  Bytes im = idx(4, 4, 0), im3 = idx(3, 4, 0), lb = idx(0, 4, 0), bad = idx(0, 4, 1);
  Bytes cut = im, glb = gz(lb);
  cut.len -= 5;
  seed(dir, "images4", 3, im, NULL);
  seed(dir, "images4_gz", 3, gz(im), NULL);
  seed(dir, "images4_truncated", 3, cut, NULL);
  seed(dir, "images4_of_3", 3, im3, NULL);
  seed(dir, "pair4", 4, im, &lb);
  seed(dir, "pair4_gz", 4, gz(im), &glb);
  seed(dir, "pair4_label_range", 4, im, &bad);
  seed(dir, "pair4_of_3", 4, im3, &lb);
  seed(dir, "pair3_of_4", 2, im, &lb);
}

/* The seed corpus. */
static void write_seeds(const char *dir) {
  Bytes im = idx(3, 4, 0), lb = idx(0, 4, 0), bad = idx(0, 4, 1), cut = im;
  cut.len -= 5;
  seed(dir, "images", 0, im, NULL);
  seed(dir, "images_gz", 0, gz(im), NULL);
  seed(dir, "images_truncated", 0, cut, NULL);
  seed(dir, "labels", 1, lb, NULL);
  seed(dir, "labels_gz", 1, gz(lb), NULL);
  seed(dir, "pair", 2, im, &lb);
  Bytes glb = gz(lb);
  seed(dir, "pair_gz", 2, gz(im), &glb);
  seed(dir, "pair_label_range", 2, im, &bad);
  seed(dir, "pair_swapped", 2, lb, &im);
  write_seeds4(dir);
}

/* Removes the harness's files when the process ends. */
static void cleanup(void) {
  remove(ipath);
  remove(i4path);
  remove(lpath);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  atexit(cleanup);
  if (getenv("MLPC_FUZZ_SEEDS"))
    write_seeds(getenv("MLPC_FUZZ_SEEDS"));
  snprintf(dir, sizeof dir, "/tmp/mlpc-fuzz-idx-%ld", (long)getpid());
  mkdir(dir, 0700);
  snprintf(ipath, sizeof ipath, "%s/train-images-idx3-ubyte", dir);
  snprintf(i4path, sizeof i4path, "%s/train-images-idx4-ubyte", dir);
  snprintf(lpath, sizeof lpath, "%s/train-labels-idx1-ubyte", dir);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] < 2 || data[0] == 3)
    one_file(data + 1, size - 1, data[0] == 3 ? 4 : data[0] ? 1 : 3);
  else
    pair(data + 1, size - 1, data[0] == 4);
  return 0;
}
