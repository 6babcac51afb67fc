/*
 * read.c — reading a data file whole: raw, or gzip-compressed (recognised
 * by its magic bytes 1f 8b, not by its name) and inflated in memory with
 * zlib; with the checks every data format shares: the size of the file,
 * the memory it takes decoded, and messages that name it ("PATH: what is
 * wrong"). A format whose header declares its size (IDX, NumPy) hands
 * rt_read_file an RtSizer, and gzip data stop inflating as soon as they
 * pass that size. rt_map_file maps a raw file into memory instead of
 * copying it, so that a short run reads only the pages it touches. This
 * file is pasted with the rest of the runtime into standalone trainers,
 * so it uses only libc, POSIX's open and mmap, and zlib, and its static
 * helpers carry the rd_ prefix.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include "rt.h"

/* Largest file, raw or inflated, that we agree to hold in memory. */
#define RD_MAX_BYTES ((size_t)1 << (sizeof(size_t) > 4 ? 32 : 30))
/* Largest piece handed to zlib at once (its counters are 32-bit). */
#define RD_ZCHUNK ((size_t)1 << 30)

/* Writes "PATH: message" into err and returns -1. */
int rt_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) {
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
static size_t rd_mem_available(void) {
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
   less available, rather than be killed by the OOM killer later: -1 with
   the figures in err. */
int rt_check_memory(size_t need, const char *path, char *err, size_t errlen) {
  size_t avail = rd_mem_available();
  if (need <= avail)
    return 0;
  return rt_fail(err, errlen, path, "decoded, it takes %zu bytes (%.1f MiB) of memory, "
                 "more than the %zu bytes (%.1f MiB) available (MemAvailable); refused "
                 "before loading", need, need / 1048576.0, avail, avail / 1048576.0);
}

/* Grows *buf to at least need bytes, doubling, but to most bytes at the
   most; 0 on success. */
static int rd_grow(unsigned char **buf, size_t *cap, size_t need, size_t most) {
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
static unsigned char *rd_slurp(FILE *f, const char *path, size_t *len,
                                char *err, size_t errlen) {
  unsigned char *buf = NULL;
  size_t cap = 0, n = 0;
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode)) {
    if ((uintmax_t)st.st_size >= RD_MAX_BYTES) {
      rt_fail(err, errlen, path, "file is %jd bytes, more than the %zu bytes mlpc "
              "reads", (intmax_t)st.st_size, RD_MAX_BYTES);
      return NULL;
    }
    if (rt_check_memory((size_t)st.st_size + 1, path, err, errlen))
      return NULL;
    cap = (size_t)st.st_size + 1; /* + 1: the end is seen without growing */
    if (!(buf = malloc(cap)))
      cap = 0;
  }
  for (;;) {
    if (rd_grow(&buf, &cap, n + 1, RD_MAX_BYTES)) {
      rt_fail(err, errlen, path, "file is larger than %zu bytes, or out of "
              "memory", RD_MAX_BYTES);
      break;
    }
    n += fread(buf + n, 1, cap - n, f);
    if (ferror(f)) {
      if (errno == EISDIR)
        rt_fail(err, errlen, path, "is a directory, not a file");
      else
        rt_fail(err, errlen, path, "cannot read (%s)", strerror(errno));
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
static void rd_zfeed(z_stream *z, const unsigned char *in, size_t inlen,
                      size_t *pos) {
  if (z->avail_in || *pos == inlen)
    return;
  size_t k = inlen - *pos < RD_ZCHUNK ? inlen - *pos : RD_ZCHUNK;
  z->next_in = (Bytef *)(in + *pos);
  z->avail_in = (uInt)k;
  *pos += k;
}

/* Runs inflate once into out[*n..cap), moving *n past what it wrote. */
static int rd_zstep(z_stream *z, unsigned char *out, size_t cap, size_t *n) {
  size_t room = cap - *n < RD_ZCHUNK ? cap - *n : RD_ZCHUNK;
  z->next_out = out + *n;
  z->avail_out = (uInt)room;
  int r = inflate(z, Z_NO_FLUSH);
  *n += room - z->avail_out;
  return r;
}

/* Whether inflating into out[0..n) may go on: within the size its
   header declares (*declared: 0 until known, SIZE_MAX for a bad header
   or no sizer), which must fit in the memory available. If not, err says
   why. */
static int rd_within(const RtSizer *sizer, const unsigned char *out, size_t n,
                     size_t *declared, const char *path, char *err, size_t errlen) {
  if (!sizer)
    *declared = SIZE_MAX;
  if (!*declared && (*declared = sizer->size(out, n)) && *declared < SIZE_MAX &&
      rt_check_memory(*declared + 1, path, err, errlen))
    return 0;
  if (*declared && *declared < SIZE_MAX && n > *declared)
    return rt_fail(err, errlen, path, "gzip data inflate to more than the %zu bytes its "
                   "%s header says", *declared, sizer->format), 0;
  return 1;
}

/* Inflates every gzip member of in[0..inlen) into a new buffer, stopping
   as soon as it holds more than its header says (a small file that
   inflates to gigabytes is refused before they are allocated). */
static unsigned char *rd_gunzip(const RtSizer *sizer, const unsigned char *in, size_t inlen,
                                const char *path, size_t *len, char *err, size_t errlen) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    rt_fail(err, errlen, path, "cannot start zlib");
    return NULL;
  }
  unsigned char *out = NULL;
  size_t cap = 0, n = 0, pos = 0, declared = 0;
  for (;;) {
    if (!rd_within(sizer, out, n, &declared, path, err, errlen))
      break;
    size_t most = declared && declared < RD_MAX_BYTES ? declared + 1 : RD_MAX_BYTES;
    if (rd_grow(&out, &cap, n + 1, most)) {  /* + 1: to see that there is more */
      rt_fail(err, errlen, path, "inflates to more than %zu bytes, or out "
              "of memory", RD_MAX_BYTES);
      break;
    }
    rd_zfeed(&z, in, inlen, &pos);
    int r = rd_zstep(&z, out, cap, &n);
    int done = !z.avail_in && pos == inlen;
    if (r == Z_STREAM_END && done) {
      inflateEnd(&z);
      *len = n;
      return out;
    }
    if (r == Z_STREAM_END)      /* another member follows */
      inflateReset(&z);
    else if (r == Z_BUF_ERROR && done) {  /* wants input we do not have */
      rt_fail(err, errlen, path, "gzip data is truncated");
      break;
    } else if (r == Z_MEM_ERROR) {
      rt_fail(err, errlen, path, "out of memory inflating gzip data");
      break;
    } else if (r != Z_OK && r != Z_BUF_ERROR) {
      rt_fail(err, errlen, path, "corrupt gzip data (%s)",
              z.msg ? z.msg : "unknown error");
      break;
    }
  }
  inflateEnd(&z);
  free(out);
  return NULL;
}

unsigned char *rt_read_file(const char *path, const RtSizer *sizer, size_t *len, char *err,
                            size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT)
      rt_fail(err, errlen, path, "no such file");
    else
      rt_fail(err, errlen, path, "cannot open (%s)", strerror(errno));
    return NULL;
  }
  size_t n = 0;
  unsigned char *buf = rd_slurp(f, path, &n, err, errlen);
  fclose(f);
  if (!buf || n < 2 || buf[0] != 0x1f || buf[1] != 0x8b) {
    *len = n;
    return buf;
  }
  unsigned char *raw = rd_gunzip(sizer, buf, n, path, len, err, errlen);
  free(buf);
  return raw;
}

unsigned char *rt_map_file(const char *path, const RtSizer *sizer, size_t *len,
                           size_t *maplen, char *err, size_t errlen) {
  struct stat st;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  unsigned char *p = MAP_FAILED;
  *maplen = 0;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 2 &&
      (uintmax_t)st.st_size < RD_MAX_BYTES) {
    /* the pages a run touches take memory as a copy would: the same check */
    if (rt_check_memory((size_t)st.st_size + 1, path, err, errlen))
      return close(fd), NULL;
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  if (fd >= 0)
    close(fd);
  if (p == MAP_FAILED) /* not a file to map: read, which says what is wrong */
    return rt_read_file(path, sizer, len, err, errlen);
  if (p[0] != 0x1f || p[1] != 0x8b) {
    *len = *maplen = (size_t)st.st_size;
    return p;
  }
  unsigned char *raw = rd_gunzip(sizer, p, (size_t)st.st_size, path, len, err, errlen);
  munmap(p, (size_t)st.st_size);
  return raw;
}

/* *r = a * b; -1 on overflow. (No __builtin_mul_overflow: tcc lacks it.) */
int rt_mul(size_t a, size_t b, size_t *r) {
  if (b && a > SIZE_MAX / b)
    return -1;
  *r = a * b;
  return 0;
}
