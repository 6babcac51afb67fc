/*
 * file.c — output files written whole. A regular file is written under a
 * temporary name beside it (PATH.PID.tmp) and renamed over it once
 * complete, so that a failure (a full disk) leaves what was there and no
 * temporary file; a device or a pipe (/dev/stdout) is written in place.
 * And standard output, checked at exit: a write that failed is an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../mlpc.h"

/* Whether path names something other than a regular file: that is
   written in place, never renamed over. */
static int special_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

/* Runs body on f and closes f; 0 or an errno value. */
static int finish(FILE *f, RtWriteFn body, const void *ctx) {
  errno = 0;
  int e = body(f, ctx);
  if (fclose(f) && !e)
    e = errno ? errno : EIO;
  return e;
}

/* Writes a device or a pipe in place; 0 or an errno value. */
static int write_in_place(const char *path, RtWriteFn body, const void *ctx) {
  FILE *f = fopen(path, "wb");
  return f ? finish(f, body, ctx) : errno;
}

/* Writes tmp and renames it over path; on failure removes tmp. 0 or an
   errno value. */
static int write_renamed(const char *path, const char *tmp, RtWriteFn body, const void *ctx) {
  FILE *f = fopen(tmp, "wb");
  if (!f)
    return errno;
  int e = finish(f, body, ctx);
  if (!e && rename(tmp, path))
    e = errno;
  if (e)
    remove(tmp);
  return e;
}

int rt_write_file(const char *path, RtWriteFn body, const void *ctx, char *err,
                  size_t errlen) {
  char tmp[4200];
  int e;
  if (special_file(path))
    e = write_in_place(path, body, ctx);
  else if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
    e = ENAMETOOLONG;
  else
    e = write_renamed(path, tmp, body, ctx);
  if (e)
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(e));
  return e ? -1 : 0;
}

/* A block of bytes, as rt_write_text's body. */
typedef struct {
  const void *data;
  size_t len;
} Bytes;

/* Writes a Bytes; 0 or an errno value. */
static int write_bytes(FILE *f, const void *ctx) {
  const Bytes *b = ctx;
  return fwrite(b->data, 1, b->len, f) == b->len ? 0 : errno ? errno : EIO;
}

int rt_write_text(const char *path, const void *data, size_t len, char *err, size_t errlen) {
  Bytes b = {data, len};
  return rt_write_file(path, write_bytes, &b, err, errlen);
}

static pid_t stdout_owner;  /* the process that asked for the check */

/* At exit, in the process that asked (not a forked copy): flushes
   standard output; if that or an earlier write failed, says so and ends
   with status 1 (or the status already given). */
static void check_stdout(int status, void *arg) {
  (void)arg;
  if (getpid() != stdout_owner)
    return;
  errno = 0;
  int flush_failed = fflush(stdout) != 0, e = errno;
  if (!flush_failed && !ferror(stdout))
    return;
  fprintf(stderr, "mlpc: error: cannot write the standard output: %s\n",
          flush_failed && e ? strerror(e) : "an earlier write failed");
  _exit(status ? status : 1);
}

void rt_check_stdout(void) {
  stdout_owner = getpid();
  on_exit(check_stdout, NULL);
}
