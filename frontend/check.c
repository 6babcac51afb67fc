/*
 * check.c — the JSON-checking kit (check.h) that model files
 * (frontend/load.c) and study files (study/load.c) share: reading a
 * file, the message format, values made printable, "did you mean"
 * suggestions and the rule for names.
 *
 * Sections: messages, suggestions, names, files.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "check.h"
#include "model.h"

/* ---- messages ---- */

/* Copies s into dst, escaping control bytes and cutting with "..." if long. */
const char *fe_printable(char *dst, size_t size, const char *s) {
  size_t n = 0;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if ((ch & 0xC0) != 0x80 && n + 8 >= size) {
      snprintf(dst + n, size - n, "...");
      return dst;
    }
    if (ch < 0x20 || ch == 0x7F)
      n += snprintf(dst + n, size - n, "\\x%02x", ch);
    else
      dst[n++] = (char)ch;
  }
  dst[n] = '\0';
  return dst;
}

/* Writes one message, prefixed with the file and the path; returns -1. */
int fe_vmessage(char *err, size_t errlen, const char *file, const char *path,
                const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  if (path && path[0])
    snprintf(err, errlen, "%s: %s: error: %s", file, path, msg);
  else
    snprintf(err, errlen, "%s: error: %s", file, msg);
  return -1;
}

/* Reports Jansson's parse error as FILE:LINE:COL. */
int fe_syntax_error(char *err, size_t errlen, const char *file, const json_error_t *je) {
  char msg[4 * JSON_ERROR_TEXT_LENGTH];
  fe_printable(msg, sizeof msg, je->text);
  if (je->line < 1)
    snprintf(err, errlen, "%s: error: %s", file, msg);
  else
    snprintf(err, errlen, "%s:%d:%d: error: %s", file, je->line,
             je->column > 0 ? je->column : 1, msg);
  return -1;
}

/* ---- suggestions ---- */

/* Whether a and b are the same letter, ignoring case. */
static int same(char a, char b) {
  return tolower((unsigned char)a) == tolower((unsigned char)b);
}

/* Edit distance between a and b ignoring case, a swap of neighbours
   counting one (so "rleu" is one edit from "relu"). */
static int distance(const char *a, const char *b) {
  int la = (int)strlen(a), lb = (int)strlen(b), d[33][33];
  if (la > 32 || lb > 32)
    return 99;
  for (int i = 0; i <= la; i++)
    for (int j = 0; j <= lb; j++) {
      if (i == 0 || j == 0) {
        d[i][j] = i + j;
        continue;
      }
      int v = d[i - 1][j - 1] + !same(a[i - 1], b[j - 1]);
      if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1]) &&
          d[i - 2][j - 2] + 1 < v)
        v = d[i - 2][j - 2] + 1;
      d[i][j] = v;
    }
  return d[la][lb];
}

/* Whether name starts with word, ignoring case. */
static int has_prefix(const char *name, const char *word) {
  for (; *word; name++, word++)
    if (!same(*name, *word))
      return 0;
  return 1;
}

/* The name closest to word, or NULL (check.h). */
const char *fe_closest(const char *word, const char *const *names, int n) {
  const char *best = NULL;
  int bestd = 3;
  for (int i = 0; i < n; i++) {
    int d = distance(word, names[i]), limit = strlen(names[i]) <= 4 ? 1 : 2;
    if (d <= limit && d < bestd)
      best = names[i], bestd = d;
  }
  for (int i = 0; !best && i < n; i++)
    if (strlen(word) >= 3 && has_prefix(names[i], word))
      best = names[i];
  return best;
}

/* Writes names as "a, b, c". */
void fe_join(char *buf, size_t size, const char *const *names, int n) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && len < size; i++)
    len += snprintf(buf + len, size - len, "%s%s", i ? ", " : "", names[i]);
}

/* Describes a word that is not one of names, with a suggestion and the list. */
int fe_unknown(char *buf, size_t size, const char *what, const char *word,
               const char *const *names, int n) {
  char list[512], p[80];
  const char *near = fe_closest(word, names, n);
  fe_join(list, sizeof list, names, n);
  fe_printable(p, sizeof p, word);
  if (near)
    snprintf(buf, size, "unknown %s '%s' (did you mean '%s'?); expected one of %s",
             what, p, near, list);
  else
    snprintf(buf, size, "unknown %s '%s'; expected one of %s", what, p, list);
  return near != NULL;
}

/* ---- names ---- */

/* Whether s is a valid name: [A-Za-z0-9_.-]{1,63}. */
int fe_valid_name(const char *s) {
  size_t n = strlen(s);
  return n >= 1 && n <= 63 &&
         strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789_.-") == n;
}

/* A file's base name without ".json" (check.h). */
void fe_file_stem(char *buf, size_t size, const char *file) {
  const char *slash = strrchr(file, '/');
  snprintf(buf, size, "%s", slash ? slash + 1 : file);
  size_t n = strlen(buf);
  if (n > 5 && !strcmp(buf + n - 5, ".json"))
    buf[n - 5] = '\0';
}

/* ---- files ---- */

/* Writes why a file could not be read: "cannot open: ..." or, named,
   "cannot open 'PATH': ..."; returns -1. */
static int why_not(char *why, size_t size, const char *path, int named, const char *doing,
                   const char *reason) {
  char p[256];
  if (named)
    snprintf(why, size, "cannot %s '%s': %s", doing, fe_printable(p, sizeof p, path), reason);
  else
    snprintf(why, size, "cannot %s: %s", doing, reason);
  return -1;
}

/* Reads a whole (small) file into *text (check.h). */
int fe_read_file(const char *path, int named, const char *what, char **text, size_t *len,
                 char *why, size_t size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return why_not(why, size, path, named, "open", strerror(errno));
  char *buf = fe_malloc(FE_MAX_FILE + 1);
  if (!buf) {
    fclose(f);
    return snprintf(why, size, "out of memory reading the %s", what), FE_NO_MEMORY;
  }
  *len = fread(buf, 1, FE_MAX_FILE + 1, f);
  int bad = ferror(f), e = errno;
  buf[*len <= FE_MAX_FILE ? *len : FE_MAX_FILE] = '\0';
  fclose(f);
  if (bad || *len > FE_MAX_FILE) {
    fe_free(buf);
    if (bad)
      return why_not(why, size, path, named, "read", strerror(e));
    return snprintf(why, size, "too large for a %s file (more than %ld bytes)", what,
                    FE_MAX_FILE), -1;
  }
  *text = buf;
  return 0;
}
