/*
 * out.c — the files of a study's output directory: the directory made,
 * a file in it opened, and CSV fields written (the report's, the
 * conclusions' and the health figures' tables). CSV numbers have 17
 * significant digits, so they read back as the very doubles in the
 * database; a field is quoted only when it must be.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "study.h"

int st_make_dir(const char *dir, char *err, size_t errlen) {
  char path[MAX_PATH_LEN + 64];
  if (snprintf(path, sizeof path, "%s/", dir) >= (int)sizeof path) {
    snprintf(err, errlen, "%.64s...: the path is too long", dir);
    return -1;
  }
  for (char *q = path + 1; *q; q++)
    if (*q == '/') {
      *q = 0;
      if (mkdir(path, 0777) && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
        return -1;
      }
      *q = '/';
    }
  return 0;
}

FILE *st_open_out(const char *dir, const char *name, char *err, size_t errlen) {
  char path[MAX_PATH_LEN + 96];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
  return f;
}

void st_csv_text(FILE *f, const char *s, int last) {
  if (strpbrk(s, ",\"\n\r")) {
    fputc('"', f);
    for (; *s; s++)
      *s == '"' ? fputs("\"\"", f) : fputc(*s, f);
    fputc('"', f);
  } else
    fputs(s, f);
  fputc(last ? '\n' : ',', f);
}

void st_csv_real(FILE *f, double v, int last) {
  if (isfinite(v))
    fprintf(f, "%.17g", v);
  fputc(last ? '\n' : ',', f);
}
