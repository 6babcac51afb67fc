/*
 * idx.c — loads a data set stored as a pair of IDX files, MNIST's format.
 *
 * An IDX file is a big-endian header followed by the elements:
 *
 *   00 00 08 NDIM   magic: unsigned bytes, NDIM dimensions
 *   NDIM x u32      the dimensions: (n, rows, cols) or (n, channels, rows,
 *                   cols) for images, (n) for labels
 *   bytes           n*rows*cols or n*channels*rows*cols pixels (channels,
 *                   then rows, then columns: PyTorch's NCHW), or n labels
 *
 * A set's images are PREFIX-images-idx3-ubyte (one channel) or
 * PREFIX-images-idx4-ubyte, never both; its labels PREFIX-labels-idx1-ubyte.
 * Each file may be raw or gzip-compressed (rt_read_file, rt/read.c).
 * For each file rt_load_set takes DIR/NAME when it exists, else
 * DIR/NAME.gz.
 *
 * Every check names the file: "PATH: what is wrong". This file is pasted
 * with the rest of the runtime into standalone trainers, so it uses only
 * libc, and its static helpers carry the idx_ prefix.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "rt.h"

/* The size an IDX file says it has, from its first n bytes: 0 while
   they are too few to tell, SIZE_MAX when they are not a valid header
   (rt_parse_idx says what is wrong). */
static size_t idx_declared(const unsigned char *buf, size_t n) {
  if (n < 4)
    return 0;
  size_t ndims = buf[3], size = 1;
  if (buf[0] || buf[1] || buf[2] != 8 || ndims < 1 || ndims > 4)
    return SIZE_MAX;
  if (n < 4 + 4 * ndims)
    return 0;
  for (size_t i = 0; i < ndims; i++) {
    const unsigned char *p = buf + 4 + 4 * i;
    size_t d = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (rt_mul(size, d, &size) || size > SIZE_MAX - 16)
      return SIZE_MAX;
  }
  return size + 4 + 4 * ndims;
}


const RtSizer rt_idx_sizer = {"IDX", idx_declared};

/* Reads the big-endian u32 at p. */
static uint32_t idx_u32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

/* What a file with ndims dimensions holds, for messages. */
static const char *idx_kind(int ndims) {
  return ndims >= 3 ? "an IDX image file" : ndims == 1 ? "an IDX label file"
                                                       : "an IDX file";
}

/* Checks the magic number: unsigned bytes, want_dims dimensions. */
static int idx_check_magic(uint32_t magic, int want_dims, const char *path,
                           char *err, size_t errlen) {
  uint32_t want = 0x800u | (uint32_t)want_dims;
  if (magic == want)
    return 0;
  char hint[160] = "";
  unsigned has = magic & 0xffu;
  if ((magic & 0xffffff00u) == 0x800u)
    snprintf(hint, sizeof hint, ": it has %u dimension%s, not %d", has, has == 1 ? "" : "s",
             want_dims);
  else if ((magic & 0xffff0000u) == 0)
    snprintf(hint, sizeof hint, ": its elements are type 0x%02x, not "
             "unsigned bytes (0x08)", (magic >> 8) & 0xffu);
  if ((magic & 0xffffff00u) == 0x800u && want_dims >= 3 && (has == 3 || has == 4))
    snprintf(hint + strlen(hint), sizeof hint - strlen(hint), " (images in %u "
             "dimensions are read from a file named *-images-idx%u-ubyte)", has, has);
  return rt_fail(err, errlen, path, "bad magic number 0x%08x, expected "
                 "0x%08x (%s)%s", magic, want, idx_kind(want_dims), hint);
}

/* Names dimension i of a file with ndims dimensions, for messages. */
static const char *idx_dim_name(int ndims, int i) {
  static const char *const image[] = {"images", "channels", "rows", "columns"};
  if (ndims >= 3)
    return image[i && ndims == 3 ? i + 1 : i];  /* 3 dimensions: no channels */
  return ndims == 1 ? "labels" : "elements";
}

/* Reads the dimensions after the magic; all must be nonzero. */
static int idx_read_dims(const unsigned char *buf, int ndims, long dims[4],
                         const char *path, char *err, size_t errlen) {
  for (int i = 0; i < 4; i++)
    dims[i] = 1;
  for (int i = 0; i < ndims; i++) {
    dims[i] = (long)idx_u32(buf + 4 + 4 * i);
    if (dims[i] == 0)
      return rt_fail(err, errlen, path, "header says 0 %s",
                     idx_dim_name(ndims, i));
  }
  return 0;
}

/* Checks that the ndims dimensions account for every byte of the file. */
static int idx_check_size(size_t len, size_t header, const long dims[4], int ndims,
                          const char *path, char *err, size_t errlen) {
  size_t total = header;
  size_t count = 1;
  char what[64];
  for (int i = 0; i < ndims; i++)
    if (rt_mul(count, (size_t)dims[i], &count))
      return rt_fail(err, errlen, path, "header says %s elements, which overflows",
                     rt_dims_str(dims, ndims, what, sizeof what));
  if (count > SIZE_MAX - header)
    return rt_fail(err, errlen, path, "header says %zu elements, which "
                   "overflows", count);
  total += count;
  if (len != total)
    return rt_fail(err, errlen, path, "file is %zu bytes, header says %zu",
                   len, total);
  return 0;
}

/* Parses an IDX image or label file already in memory. */
int rt_parse_idx(const unsigned char *buf, size_t len, int want_dims,
                 const char *path, long dims[4], size_t *offset,
                 char *err, size_t errlen) {
  if (want_dims < 1 || want_dims > 4)
    return rt_fail(err, errlen, path, "cannot read IDX files with %d "
                   "dimensions", want_dims);
  size_t header = 4 + 4 * (size_t)want_dims;
  if (len < 4)
    return rt_fail(err, errlen, path, "file is %zu bytes, too short for an "
                   "IDX header", len);
  if (idx_check_magic(idx_u32(buf), want_dims, path, err, errlen))
    return -1;
  if (len < header)
    return rt_fail(err, errlen, path, "file is %zu bytes, too short for an "
                   "IDX header (%zu bytes)", len, header);
  if (idx_read_dims(buf, want_dims, dims, path, err, errlen) ||
      idx_check_size(len, header, dims, want_dims, path, err, errlen))
    return -1;
  *offset = header;
  return 0;
}

/* Joins DIR/PREFIX-NAME into path; -1 when it does not fit. */
static int idx_join(char *path, size_t size, const char *dir,
                    const char *prefix, const char *name) {
  size_t d = strlen(dir);
  const char *sep = d && dir[d - 1] == '/' ? "" : "/";
  int n = snprintf(path, size, "%s%s%s-%s", dir, sep, prefix, name);
  return n < 0 || (size_t)n + 3 >= size ? -1 : 0;
}

/* Whether there is a file to read at path, else at path.gz (path then
   gets the .gz). Anything there that cannot be opened counts: it is
   left for rt_read_file to report. */
static int idx_there(char *path) {
  size_t n = strlen(path);
  for (int gz = 0; gz < 2; gz++) {
    if (gz)
      strcpy(path + n, ".gz");
    FILE *f = fopen(path, "rb");
    if (f || errno != ENOENT) {
      if (f)
        fclose(f);
      return 1;
    }
  }
  path[n] = 0;
  return 0;
}

/* Picks DIR/PREFIX-NAME, or with .gz, into path; a missing file is an
   error. */
static int idx_pick(char *path, size_t size, const char *dir, const char *prefix,
                    const char *name, char *err, size_t errlen) {
  if (idx_join(path, size, dir, prefix, name))
    return rt_fail(err, errlen, dir, "path too long");
  if (idx_there(path))
    return 0;
  return rt_fail(err, errlen, path, "no such file (also tried %s.gz)", path);
}

/* Picks the image file of a set into path: PREFIX-images-idx3-ubyte, or
   PREFIX-images-idx4-ubyte, each raw or .gz; 3 or 4, its dimensions.
   Neither, or both, is an error. */
static int idx_pick_images(char *path, size_t size, const char *dir, const char *prefix,
                           char *err, size_t errlen) {
  char p4[FILENAME_MAX];
  if (idx_join(path, size, dir, prefix, "images-idx3-ubyte") ||
      idx_join(p4, sizeof p4, dir, prefix, "images-idx4-ubyte"))
    return rt_fail(err, errlen, dir, "path too long");
  int has3 = idx_there(path), has4 = idx_there(p4);
  if (has3 && has4)
    return rt_fail(err, errlen, path, "%s is there too: a set has one image file, "
                   "remove one of them", p4);
  if (!has3 && !has4)
    return rt_fail(err, errlen, path, "no such file (also tried %s.gz, %s and %s.gz)",
                   path, p4, p4);
  if (has4)
    snprintf(path, size, "%s", p4);
  return has4 ? 4 : 3;
}

int rt_data_file(const char *dir, const char *prefix, int labels, char *path, size_t size,
                 char *err, size_t errlen) {
  if (!labels)
    return idx_pick_images(path, size, dir, prefix, err, errlen);
  return idx_pick(path, size, dir, prefix, "labels-idx1-ubyte", err, errlen) ? -1 : 1;
}

/* Loads the IDX file at path, of want_dims dimensions: its elements and
   its dimensions. A raw file's elements stay where its mapping has them
   (*map, *maplen: see RtSet); inflated ones are moved to the front of
   their buffer (*map NULL). */
static unsigned char *idx_load(const char *path, int want_dims, long dims[4], void **map,
                               size_t *maplen, char *err, size_t errlen) {
  size_t len = 0, off = 0;
  unsigned char *buf = rt_map_file(path, &rt_idx_sizer, &len, maplen, err, errlen);
  *map = *maplen ? buf : NULL;
  if (!buf)
    return NULL;
  if (rt_parse_idx(buf, len, want_dims, path, dims, &off, err, errlen)) {
    if (*map)
      munmap(buf, *maplen);
    else
      free(buf);
    *map = NULL;
    return NULL;
  }
  if (*map)
    return buf + off;
  memmove(buf, buf + off, len - off);
  unsigned char *p = realloc(buf, len - off);
  return p ? p : buf;
}

/* Checks that the labels match the images in count and are < nclasses. */
static int idx_check_labels(const RtSet *s, long nlabels, int nclasses,
                            const char *ipath, const char *lpath, char *err,
                            size_t errlen) {
  if (nlabels != s->n)
    return rt_fail(err, errlen, lpath, "has %ld labels but %s has %ld "
                   "images", nlabels, ipath, s->n);
  for (long i = 0; i < s->n; i++)
    if (s->labels[i] >= nclasses)
      return rt_fail(err, errlen, lpath, "label %d at index %ld is out of "
                     "range (expected 0..%d)", s->labels[i], i, nclasses - 1);
  return 0;
}

/* Sets the count and image shape of s from its image file's dimensions,
   (n, rows, cols) or (n, channels, rows, cols). */
static int idx_set_shape(RtSet *s, const long *dims, int ndims, const char *path,
                         char *err, size_t errlen) {
  char what[64];
  s->n = dims[0];
  s->dtype = RT_U8;
  s->channels = ndims == 4 ? (int)dims[1] : 1;
  if (dims[1] * dims[2] * dims[3] > INT_MAX)  /* no overflow: the file holds them all */
    return rt_fail(err, errlen, path, "images of %s pixels are too large",
                   rt_dims_str(dims + 1, ndims - 1, what, sizeof what));
  s->rows = (int)dims[ndims - 2];
  s->cols = (int)dims[ndims - 1];
  return 0;
}

/* Loads DIR/PREFIX-images-idx3-ubyte (or -idx4-ubyte) and
   DIR/PREFIX-labels-idx1-ubyte. */
int rt_load_set(const char *dir, const char *prefix, int nclasses,
                RtSet *set, char *err, size_t errlen) {
  char ipath[FILENAME_MAX], lpath[FILENAME_MAX];
  long idims[4], ldims[4];
  memset(set, 0, sizeof *set);
  if (nclasses < 1 || nclasses > 256)
    return rt_fail(err, errlen, dir, "%d classes: expected 1..256",
                   nclasses);
  int ndims = rt_data_file(dir, prefix, 0, ipath, sizeof ipath, err, errlen);
  if (ndims < 0 ||
      !(set->images = idx_load(ipath, ndims, idims, &set->map[0], &set->maplen[0], err,
                               errlen)))
    return -1;
  if (idx_set_shape(set, idims, ndims, ipath, err, errlen) ||
      rt_data_file(dir, prefix, 1, lpath, sizeof lpath, err, errlen) < 0 ||
      !(set->labels = idx_load(lpath, 1, ldims, &set->map[1], &set->maplen[1], err,
                               errlen)) ||
      idx_check_labels(set, ldims[0], nclasses, ipath, lpath, err, errlen)) {
    rt_free_set(set);
    return -1;
  }
  return 0;
}
