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
 * Each file may be raw or gzip-compressed; gzip is recognised by its magic
 * bytes 1f 8b, not by its name, and inflated in memory with zlib. For each
 * file rt_load_set takes DIR/NAME when it exists, else DIR/NAME.gz.
 *
 * Every check names the file: "PATH: what is wrong". This file is pasted
 * with the rest of the runtime into standalone trainers, so it uses only
 * libc and zlib, and its static helpers carry the idx_ prefix.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "rt.h"

/* Largest file, raw or inflated, that we agree to hold in memory. */
#define IDX_MAX_BYTES ((size_t)1 << (sizeof(size_t) > 4 ? 32 : 30))
/* Largest piece handed to zlib at once (its counters are 32-bit). */
#define IDX_ZCHUNK ((size_t)1 << 30)

/* Writes "PATH: message" into err and returns -1. */
__attribute__((format(printf, 4, 5)))
static int idx_fail(char *err, size_t errlen, const char *path,
                    const char *fmt, ...) {
  if (!err || !errlen)
    return -1;
  int n = snprintf(err, errlen, "%s: ", path);
  if (n >= 0 && (size_t)n < errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* The memory available to a new allocation, in bytes: MemAvailable of
   /proc/meminfo (or $MLPC_TEST_MEM_AVAILABLE, which tests set to pretend
   a small machine); SIZE_MAX when unknown. */
static size_t idx_mem_available(void) {
  const char *env = getenv("MLPC_TEST_MEM_AVAILABLE");
  char line[256];
  unsigned long long kb = 0;
  if (env && *env)
    return (size_t)strtoull(env, NULL, 10);
  FILE *f = fopen("/proc/meminfo", "r");
  int found = 0;
  while (f && !found && fgets(line, sizeof line, f))
    found = sscanf(line, "MemAvailable: %llu kB", &kb) == 1;
  if (f)
    fclose(f);
  return found && kb < SIZE_MAX / 1024 ? (size_t)(kb * 1024) : SIZE_MAX;
}

/* Refuses to hold need more bytes of path in memory when the machine has
   less available, rather than be killed by the OOM killer later. */
static int idx_check_memory(size_t need, const char *path, char *err,
                            size_t errlen) {
  size_t avail = idx_mem_available();
  if (need <= avail)
    return 0;
  return idx_fail(err, errlen, path, "decoded, it takes %zu bytes (%.1f MiB) of memory, "
                  "more than the %zu bytes (%.1f MiB) available (MemAvailable); refused "
                  "before loading", need, need / 1048576.0, avail, avail / 1048576.0);
}

/* Grows *buf to at least need bytes, doubling, but to most bytes at the
   most; 0 on success. */
static int idx_grow(unsigned char **buf, size_t *cap, size_t need, size_t most) {
  if (need <= *cap)
    return 0;
  if (need > most)
    return -1;
  size_t c = *cap ? *cap : 1 << 16;
  while (c < need)
    c = c > most / 2 ? most : 2 * c;
  unsigned char *p = realloc(*buf, c);
  if (!p)
    return -1;
  *buf = p;
  *cap = c;
  return 0;
}

/* Reads an open stream to its end into a new buffer. A regular file's
   size is known: one over the limit is refused before anything is
   allocated, and the buffer is allocated once, at its size. */
static unsigned char *idx_slurp(FILE *f, const char *path, size_t *len,
                                char *err, size_t errlen) {
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
    if ((uintmax_t)st.st_size >= IDX_MAX_BYTES) {
      idx_fail(err, errlen, path, "file is %jd bytes, more than the %zu bytes mlpc "
               "reads", (intmax_t)st.st_size, IDX_MAX_BYTES);
      return NULL;
    }
    if (idx_check_memory((size_t)st.st_size + 1, path, err, errlen))
      return NULL;
    cap = (size_t)st.st_size + 1; /* + 1: the end is seen without growing */
    if (!(buf = malloc(cap)))
      cap = 0;
  }
  for (;;) {
    if (idx_grow(&buf, &cap, n + 1, IDX_MAX_BYTES)) {
      idx_fail(err, errlen, path, "file is larger than %zu bytes, or out of "
               "memory", IDX_MAX_BYTES);
      break;
    }
    n += fread(buf + n, 1, cap - n, f);
    if (ferror(f)) {
      if (errno == EISDIR)
        idx_fail(err, errlen, path, "is a directory, not a file");
      else
        idx_fail(err, errlen, path, "cannot read (%s)", strerror(errno));
      break;
    }
    if (feof(f)) {
      *len = n;
      return buf;
    }
  }
  free(buf);
  return NULL;
}

/* Feeds zlib the next piece of input once it has used the last. */
static void idx_zfeed(z_stream *z, const unsigned char *in, size_t inlen,
                      size_t *pos) {
  if (z->avail_in || *pos == inlen)
    return;
  size_t k = inlen - *pos < IDX_ZCHUNK ? inlen - *pos : IDX_ZCHUNK;
  z->next_in = (Bytef *)(in + *pos);
  z->avail_in = (uInt)k;
  *pos += k;
}

/* Runs inflate once into out[*n..cap), moving *n past what it wrote. */
static int idx_zstep(z_stream *z, unsigned char *out, size_t cap, size_t *n) {
  size_t room = cap - *n < IDX_ZCHUNK ? cap - *n : IDX_ZCHUNK;
  z->next_out = out + *n;
  z->avail_out = (uInt)room;
  int r = inflate(z, Z_NO_FLUSH);
  *n += room - z->avail_out;
  return r;
}

/* *r = a * b; -1 on overflow. (No __builtin_mul_overflow: tcc lacks it.) */
static int idx_mul(size_t a, size_t b, size_t *r) {
  if (b && a > SIZE_MAX / b)
    return -1;
  *r = a * b;
  return 0;
}

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
    if (idx_mul(size, d, &size) || size > SIZE_MAX - 16)
      return SIZE_MAX;
  }
  return size + 4 + 4 * ndims;
}

/* Whether inflating into out[0..n) may go on: within the size its IDX
   header declares (*declared: 0 until known, SIZE_MAX for a bad header),
   which must fit in the memory available. If not, err says why. */
static int idx_within(const unsigned char *out, size_t n, size_t *declared,
                      const char *path, char *err, size_t errlen) {
  if (!*declared && (*declared = idx_declared(out, n)) && *declared < SIZE_MAX &&
      idx_check_memory(*declared + 1, path, err, errlen))
    return 0;
  if (*declared && *declared < SIZE_MAX && n > *declared)
    return idx_fail(err, errlen, path, "gzip data inflate to more than the %zu bytes its "
                    "IDX header says", *declared), 0;
  return 1;
}

/* Inflates every gzip member of in[0..inlen) into a new buffer, stopping
   as soon as it holds more than its IDX header says (a small file that
   inflates to gigabytes is refused before they are allocated). */
static unsigned char *idx_gunzip(const unsigned char *in, size_t inlen,
                                 const char *path, size_t *len, char *err,
                                 size_t errlen) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    idx_fail(err, errlen, path, "cannot start zlib");
    return NULL;
  }
  unsigned char *out = NULL;
  size_t cap = 0, n = 0, pos = 0, declared = 0;
  for (;;) {
    if (!idx_within(out, n, &declared, path, err, errlen))
      break;
    size_t most = declared && declared < IDX_MAX_BYTES ? declared + 1 : IDX_MAX_BYTES;
    if (idx_grow(&out, &cap, n + 1, most)) {  /* + 1: to see that there is more */
      idx_fail(err, errlen, path, "inflates to more than %zu bytes, or out "
               "of memory", IDX_MAX_BYTES);
      break;
    }
    idx_zfeed(&z, in, inlen, &pos);
    int r = idx_zstep(&z, out, cap, &n);
    int done = !z.avail_in && pos == inlen;
    if (r == Z_STREAM_END && done) {
      inflateEnd(&z);
      *len = n;
      return out;
    }
    if (r == Z_STREAM_END)      /* another member follows */
      inflateReset(&z);
    else if (r == Z_BUF_ERROR && done) {  /* wants input we do not have */
      idx_fail(err, errlen, path, "gzip data is truncated");
      break;
    } else if (r == Z_MEM_ERROR) {
      idx_fail(err, errlen, path, "out of memory inflating gzip data");
      break;
    } else if (r != Z_OK && r != Z_BUF_ERROR) {
      idx_fail(err, errlen, path, "corrupt gzip data (%s)",
               z.msg ? z.msg : "unknown error");
      break;
    }
  }
  inflateEnd(&z);
  free(out);
  return NULL;
}

/* Reads one whole file, inflating gzip; *len gets its size. */
unsigned char *rt_read_file(const char *path, size_t *len, char *err,
                            size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT)
      idx_fail(err, errlen, path, "no such file");
    else
      idx_fail(err, errlen, path, "cannot open (%s)", strerror(errno));
    return NULL;
  }
  size_t n = 0;
  unsigned char *buf = idx_slurp(f, path, &n, err, errlen);
  fclose(f);
  if (!buf || n < 2 || buf[0] != 0x1f || buf[1] != 0x8b) {
    *len = n;
    return buf;
  }
  unsigned char *raw = idx_gunzip(buf, n, path, len, err, errlen);
  free(buf);
  return raw;
}

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

/* The first ndims of dims as "A x B x C" into buf, for messages. */
static const char *idx_dims_str(const long *dims, int ndims, char *buf, size_t len) {
  int n = snprintf(buf, len, "%ld", dims[0]);
  for (int i = 1; i < ndims && n >= 0 && (size_t)n < len; i++)
    n += snprintf(buf + n, len - n, " x %ld", dims[i]);
  return buf;
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
  return idx_fail(err, errlen, path, "bad magic number 0x%08x, expected "
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
      return idx_fail(err, errlen, path, "header says 0 %s",
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
    if (idx_mul(count, (size_t)dims[i], &count))
      return idx_fail(err, errlen, path, "header says %s elements, which overflows",
                      idx_dims_str(dims, ndims, what, sizeof what));
  if (count > SIZE_MAX - header)
    return idx_fail(err, errlen, path, "header says %zu elements, which "
                    "overflows", count);
  total += count;
  if (len != total)
    return idx_fail(err, errlen, path, "file is %zu bytes, header says %zu",
                    len, total);
  return 0;
}

/* Parses an IDX image or label file already in memory. */
int rt_parse_idx(const unsigned char *buf, size_t len, int want_dims,
                 const char *path, long dims[4], size_t *offset,
                 char *err, size_t errlen) {
  if (want_dims < 1 || want_dims > 4)
    return idx_fail(err, errlen, path, "cannot read IDX files with %d "
                    "dimensions", want_dims);
  size_t header = 4 + 4 * (size_t)want_dims;
  if (len < 4)
    return idx_fail(err, errlen, path, "file is %zu bytes, too short for an "
                    "IDX header", len);
  if (idx_check_magic(idx_u32(buf), want_dims, path, err, errlen))
    return -1;
  if (len < header)
    return idx_fail(err, errlen, path, "file is %zu bytes, too short for an "
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
    return idx_fail(err, errlen, dir, "path too long");
  if (idx_there(path))
    return 0;
  return idx_fail(err, errlen, path, "no such file (also tried %s.gz)", path);
}

/* Picks the image file of a set into path: PREFIX-images-idx3-ubyte, or
   PREFIX-images-idx4-ubyte, each raw or .gz; 3 or 4, its dimensions.
   Neither, or both, is an error. */
static int idx_pick_images(char *path, size_t size, const char *dir, const char *prefix,
                           char *err, size_t errlen) {
  char p4[FILENAME_MAX];
  if (idx_join(path, size, dir, prefix, "images-idx3-ubyte") ||
      idx_join(p4, sizeof p4, dir, prefix, "images-idx4-ubyte"))
    return idx_fail(err, errlen, dir, "path too long");
  int has3 = idx_there(path), has4 = idx_there(p4);
  if (has3 && has4)
    return idx_fail(err, errlen, path, "%s is there too: a set has one image file, "
                    "remove one of them", p4);
  if (!has3 && !has4)
    return idx_fail(err, errlen, path, "no such file (also tried %s.gz, %s and %s.gz)",
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

/* Loads the IDX file at path, of want_dims dimensions: its elements,
   moved to the front of their buffer, and its dimensions. */
static unsigned char *idx_load(const char *path, int want_dims, long dims[4], char *err,
                               size_t errlen) {
  size_t len = 0, off = 0;
  unsigned char *buf = rt_read_file(path, &len, err, errlen);
  if (!buf)
    return NULL;
  if (rt_parse_idx(buf, len, want_dims, path, dims, &off, err, errlen)) {
    free(buf);
    return NULL;
  }
  memmove(buf, buf + off, len - off);
  unsigned char *p = realloc(buf, len - off);
  return p ? p : buf;
}

/* Checks that the labels match the images in count and are < nclasses. */
static int idx_check_labels(const RtSet *s, long nlabels, int nclasses,
                            const char *ipath, const char *lpath, char *err,
                            size_t errlen) {
  if (nlabels != s->n)
    return idx_fail(err, errlen, lpath, "has %ld labels but %s has %ld "
                    "images", nlabels, ipath, s->n);
  for (long i = 0; i < s->n; i++)
    if (s->labels[i] >= nclasses)
      return idx_fail(err, errlen, lpath, "label %d at index %ld is out of "
                      "range (expected 0..%d)", s->labels[i], i, nclasses - 1);
  return 0;
}

/* Sets the count and image shape of s from its image file's dimensions,
   (n, rows, cols) or (n, channels, rows, cols). */
static int idx_set_shape(RtSet *s, const long *dims, int ndims, const char *path,
                         char *err, size_t errlen) {
  char what[64];
  s->n = dims[0];
  s->channels = ndims == 4 ? (int)dims[1] : 1;
  if (dims[1] * dims[2] * dims[3] > INT_MAX)  /* no overflow: the file holds them all */
    return idx_fail(err, errlen, path, "images of %s pixels are too large",
                    idx_dims_str(dims + 1, ndims - 1, what, sizeof what));
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
    return idx_fail(err, errlen, dir, "%d classes: expected 1..256",
                    nclasses);
  int ndims = rt_data_file(dir, prefix, 0, ipath, sizeof ipath, err, errlen);
  if (ndims < 0 || !(set->images = idx_load(ipath, ndims, idims, err, errlen)))
    return -1;
  if (idx_set_shape(set, idims, ndims, ipath, err, errlen) ||
      rt_data_file(dir, prefix, 1, lpath, sizeof lpath, err, errlen) < 0 ||
      !(set->labels = idx_load(lpath, 1, ldims, err, errlen)) ||
      idx_check_labels(set, ldims[0], nclasses, ipath, lpath, err, errlen)) {
    rt_free_set(set);
    return -1;
  }
  return 0;
}

/* A set's image shape for messages: "28 x 28", or when full (channels
   matter) "1 x 28 x 28". */
static const char *idx_shape(const RtSet *s, int full, char *buf, size_t len) {
  long d[3] = {s->channels, s->rows, s->cols};
  return idx_dims_str(d + !full, 3 - !full, buf, len);
}

/* Checks that the train and t10k images have one shape. */
static int idx_check_pair(const char *dir, const RtSet *tr, const RtSet *te, char *err,
                          size_t errlen) {
  char a[64], b[64];
  int full = tr->channels != 1 || te->channels != 1;
  if (tr->channels == te->channels && tr->rows == te->rows && tr->cols == te->cols)
    return 0;
  return idx_fail(err, errlen, dir, "the train images are %s%s and the t10k images %s%s: "
                  "both sets must have one shape", idx_shape(tr, full, a, sizeof a),
                  full ? "" : " pixels", idx_shape(te, full, b, sizeof b),
                  full ? " (channels x height x width)" : "");
}

/* Checks that images of s fit the model: shape (C, H, W) when given and
   not 0s, and input features in any case. */
static int idx_check_model(const char *dir, const RtSet *s, int input, const int *shape,
                           char *err, size_t errlen) {
  char a[64];
  int features = s->channels * s->rows * s->cols;
  if (shape && (shape[0] || shape[1] || shape[2]) &&
      (s->channels != shape[0] || s->rows != shape[1] || s->cols != shape[2]))
    return idx_fail(err, errlen, dir, "images are %d x %d x %d (channels x height x width); "
                    "the model's input is [%d, %d, %d]", s->channels, s->rows, s->cols,
                    shape[0], shape[1], shape[2]);
  if (features != input)
    return idx_fail(err, errlen, dir, "images have %d features (%s), the model's input is %d",
                    features, idx_shape(s, s->channels != 1, a, sizeof a), input);
  return 0;
}

int rt_load_data(const char *dir, int input, const int *shape, int nclasses, RtSet *tr,
                 RtSet *te, char *err, size_t errlen) {
  memset(te, 0, sizeof *te);
  if (rt_load_set(dir, "train", nclasses, tr, err, errlen))
    return -1;
  if (rt_load_set(dir, "t10k", nclasses, te, err, errlen) ||
      idx_check_pair(dir, tr, te, err, errlen) ||
      idx_check_model(dir, tr, input, shape, err, errlen)) {
    rt_free_set(tr);
    rt_free_set(te);
    return -1;
  }
  return 0;
}

/* Frees what rt_load_set allocated and empties the set. */
void rt_free_set(RtSet *set) {
  free(set->images);
  free(set->labels);
  memset(set, 0, sizeof *set);
}
