/*
 * csv.c — loads a data set stored as a CSV file, PREFIX.csv: one sample a
 * line, its label first, then its features, separated by commas.
 *
 *   label,sepal_length,sepal_width,petal_length,petal_width   (optional)
 *   0,5.1,3.5,1.4,0.2
 *   2,6.3,3.3,6.0,2.5
 *
 * The first line is a header, and skipped, when its first field is not a
 * number (a label always is). A first line of 0,1,2,... only, pandas'
 * default column names, is refused: a header of numbers cannot be told
 * from a sample, and taking it for one would be silent. Every line has the fields of the first;
 * labels are whole numbers in [0, classes) ("3" or "3.0"); features are
 * finite numbers (strtod's syntax), converted to the model's dtype and
 * used as they are. A field may be quoted ("5.1"); spaces around a field,
 * blank lines, CRLF line ends and a UTF-8 byte order mark are allowed.
 * Every refusal names PATH:LINE:COL, the column counted in bytes from 1.
 *
 * This file is pasted with the rest of the runtime into standalone
 * trainers; its static helpers carry the csv_ prefix.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

enum { CSV_FIELD = 256 };   /* the longest field, in bytes */

/* The file being parsed. */
typedef struct {
  const char *s;
  size_t len, at;             /* the text; the next byte                  */
  long line;                  /* the current line, from 1                 */
  size_t line_at;             /* where it starts                          */
  const char *path;
  char *err;
  size_t errlen;
} CsvText;

/* Refuses what is at byte at of the current line: "PATH:LINE:COL: ...",
   the file's bytes in it shown printable. */
__attribute__((format(printf, 3, 4)))
static int csv_fail(const CsvText *t, size_t at, const char *fmt, ...) {
  char where[FILENAME_MAX + 48], msg[512], shown[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(where, sizeof where, "%s:%ld:%zu", t->path, t->line, at - t->line_at + 1);
  return rt_fail(t->err, t->errlen, where, "%s", rt_printable(msg, shown, sizeof shown));
}

/* Whether the line at t->at holds nothing but spaces. */
static int csv_blank(const CsvText *t) {
  size_t i = t->at;
  while (i < t->len && (t->s[i] == ' ' || t->s[i] == '\t' || t->s[i] == '\r'))
    i++;
  return i == t->len || t->s[i] == '\n';
}

/* Moves to the start of the next line. */
static void csv_next_line(CsvText *t) {
  while (t->at < t->len && t->s[t->at] != '\n')
    t->at++;
  if (t->at < t->len)
    t->at++;
  t->line++;
  t->line_at = t->at;
}

/* Skips blank lines; 0 at the end of the text. */
static int csv_skip_blank(CsvText *t) {
  while (t->at < t->len && csv_blank(t))
    csv_next_line(t);
  return t->at < t->len;
}

/* Whether byte i ends a field: a comma, the line's end, the text's. */
static int csv_ends(const CsvText *t, size_t i) {
  return i == t->len || t->s[i] == ',' || t->s[i] == '\n' ||
         (t->s[i] == '\r' && (i + 1 == t->len || t->s[i + 1] == '\n'));
}

/* Skips spaces and tabs. */
static void csv_spaces(CsvText *t) {
  while (t->at < t->len && (t->s[t->at] == ' ' || t->s[t->at] == '\t'))
    t->at++;
}

/* A quoted field's text ("" is a quote) into out; t->at past the quote. */
static int csv_quoted(CsvText *t, char *out, size_t *n) {
  size_t open = t->at++;
  for (;; t->at++) {
    if (t->at == t->len || t->s[t->at] == '\n')
      return csv_fail(t, open, "a quote that is not closed on its line");
    if (t->s[t->at] == '"' && (t->at + 1 == t->len || t->s[t->at + 1] != '"'))
      break;
    t->at += t->s[t->at] == '"';
    if (!t->s[t->at])
      return csv_fail(t, t->at, "a NUL byte");
    if (*n + 1 >= CSV_FIELD)
      return csv_fail(t, open, "a field longer than %d bytes", CSV_FIELD - 1);
    out[(*n)++] = t->s[t->at];
  }
  t->at++;
  return 0;
}

/* The next field into out (CSV_FIELD bytes), without its quotes and the
   spaces around it; *start where it begins. Leaves t->at on what ends
   it. */
static int csv_field(CsvText *t, char *out, size_t *start) {
  size_t n = 0;
  csv_spaces(t);
  *start = t->at;
  if (t->at < t->len && t->s[t->at] == '"') {
    if (csv_quoted(t, out, &n))
      return -1;
    csv_spaces(t);
    out[n] = 0;
    return csv_ends(t, t->at) ? 0 : csv_fail(t, t->at, "text after a closing quote");
  }
  for (; !csv_ends(t, t->at); t->at++) {
    if (!t->s[t->at])
      return csv_fail(t, t->at, "a NUL byte");
    if (n + 1 >= CSV_FIELD)
      return csv_fail(t, *start, "a field longer than %d bytes", CSV_FIELD - 1);
    out[n++] = t->s[t->at];
  }
  while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
    n--;
  out[n] = 0;
  return 0;
}

/* Moves past the comma after a field: 1, or 0 at the line's end. */
static int csv_comma(CsvText *t) {
  if (t->at < t->len && t->s[t->at] == ',')
    return t->at++, 1;
  return 0;
}

/* Whether text is a number as strtod reads it, whole; its value in *v. */
static int csv_is_number(const char *text, double *v) {
  char *end;
  errno = 0;
  *v = strtod(text, &end);
  return *text && !*end && end != text;
}

/* The number in a field, finite; -1 with the place in err. */
static int csv_number(const CsvText *t, const char *text, size_t at, double *v) {
  if (!*text)
    return csv_fail(t, at, "an empty field: expected a number");
  if (!csv_is_number(text, v))
    return csv_fail(t, at, "'%s' is not a number", text);
  if (isinf(*v) && errno == ERANGE)
    return csv_fail(t, at, "%s is beyond the range of a double", text);
  if (!isfinite(*v))
    return csv_fail(t, at, "%s is not finite: the data must be finite numbers", text);
  return 0;
}

/* Counts the fields of the line at t->at (t->at is left as it was). */
static int csv_count(CsvText *t, long *nfields) {
  char f[CSV_FIELD];
  size_t at = t->at, start;
  *nfields = 0;
  do {
    if (csv_field(t, f, &start))
      return -1;
    ++*nfields;
  } while (csv_comma(t));
  t->at = at;
  return 0;
}

/* Whether the line at t->at is a header: its first field is no number. */
static int csv_header(CsvText *t) {
  char f[CSV_FIELD];
  size_t at = t->at, start;
  double v;
  int header = !csv_field(t, f, &start) && !csv_is_number(f, &v);
  t->at = at;
  return header;
}

/* Whether the line at t->at reads 0,1,...,n-1 (n >= 2), as pandas names
   the columns of a DataFrame by default: n, else 0 (t->at is left). */
static long csv_default_names(CsvText *t) {
  char f[CSV_FIELD], k[24];
  size_t at = t->at, start;
  long n = 0;
  for (;;) {
    snprintf(k, sizeof k, "%ld", n++);
    if (csv_field(t, f, &start) || strcmp(f, k))
      n = 0;
    if (!n || !csv_comma(t))
      break;
  }
  t->at = at;
  return n > 1 ? n : 0;
}

/* Refuses a first line of pandas' default column names (csv_default_names),
   which may as well be a sample. */
static int csv_numbered(const CsvText *t, long n) {
  char names[48];
  snprintf(names, sizeof names, n == 2 ? "0,1" : n == 3 ? "0,1,2" : "0,1,...,%ld", n - 1);
  return csv_fail(t, t->at, "the first line, %s, is pandas' default column names or a "
                  "sample: a header of numbers cannot be told from data; write the file "
                  "with header=False, or give it a header whose first field is a name "
                  "(label,...)", names);
}

/* Counts the lines that are not blank from t->at on (t->at is left). */
static long csv_rows(const CsvText *t) {
  long n = 0;
  for (size_t i = t->at; i < t->len; i++) {
    size_t j = i;
    while (j < t->len && (t->s[j] == ' ' || t->s[j] == '\t' || t->s[j] == '\r'))
      j++;
    n += j < t->len && t->s[j] != '\n';
    while (i < t->len && t->s[i] != '\n')
      i++;
  }
  return n;
}

/* The label field of a row into *label: a whole number in [0, nclasses). */
static int csv_label(CsvText *t, int nclasses, unsigned char *label) {
  char f[CSV_FIELD];
  size_t at;
  double v;
  if (csv_field(t, f, &at))
    return -1;
  if (*f && !csv_is_number(f, &v))
    return csv_fail(t, at, "label '%s' is not a number: labels are classes 0..%d", f,
                    nclasses - 1);
  if (csv_number(t, f, at, &v))
    return -1;
  if (v != floor(v))
    return csv_fail(t, at, "label %s is not a whole number", f);
  if (v < 0 || v >= nclasses)
    return csv_fail(t, at, "label %s is out of range (expected 0..%d)", f, nclasses - 1);
  *label = (unsigned char)v;
  return 0;
}

/* One row, sample i of s: its label, then exactly features values. */
static int csv_row(CsvText *t, RtSet *s, long i, long features, int nclasses) {
  char f[CSV_FIELD];
  size_t at;
  double v;
  if (csv_label(t, nclasses, &s->labels[i]))
    return -1;
  for (long k = 0; k < features; k++) {
    if (!csv_comma(t))
      return csv_fail(t, t->at, "the line has %ld fields, expected %ld (a label and %ld "
                      "features)", k + 1, features + 1, features);
    if (csv_field(t, f, &at) || csv_number(t, f, at, &v))
      return -1;
    if (rt_set_real(s, (size_t)i * features + k, v))
      return csv_fail(t, at, "%s is beyond the range of float32 (the model's dtype)", f);
  }
  if (csv_comma(t))
    return csv_fail(t, t->at - 1, "the line has more than %ld fields (a label and %ld "
                    "features)", features + 1, features);
  return 0;
}

/* The separator other than the comma that the line at t->at holds, as
   files written with another one do: "';'", "tabs", or NULL. */
static const char *csv_other_sep(const CsvText *t) {
  size_t end = t->at;
  while (end < t->len && t->s[end] != '\n')
    end++;
  if (memchr(t->s + t->at, ';', end - t->at))
    return "';'";
  return memchr(t->s + t->at, '\t', end - t->at) ? "tabs" : NULL;
}

/* Finds the first row (after a header, whose fields it must match) and
   its features. */
static int csv_shape(CsvText *t, long *features) {
  long head = 0, n;
  if (!csv_skip_blank(t))
    return rt_fail(t->err, t->errlen, t->path, "no rows: expected a label and features "
                   "on each line");
  if ((n = csv_default_names(t)))
    return csv_numbered(t, n);
  if (csv_header(t) && (csv_count(t, &head) || (csv_next_line(t), 0)))
    return -1;
  if (!csv_skip_blank(t))
    return rt_fail(t->err, t->errlen, t->path, "a header but no rows");
  if (csv_count(t, &n))
    return -1;
  const char *sep = (head == 1 || n == 1) ? csv_other_sep(t) : NULL;
  if (sep)
    return csv_fail(t, t->at, "the fields are separated by %s: mlpc reads fields separated "
                    "by commas (pandas: to_csv(f, sep=','))", sep);
  if (head && head != n)
    return csv_fail(t, t->at, "the line has %ld fields, the header %ld", n, head);
  if (n < 2)
    return csv_fail(t, t->at, "one field: expected a label, then the features, separated "
                    "by commas");
  *features = n - 1;
  return 0;
}

/* Parses the whole text into s. */
static int csv_parse(CsvText *t, RtSet *s, int nclasses, int dtype) {
  long features = 0;
  if (t->len >= 3 && !memcmp(t->s, "\xef\xbb\xbf", 3))
    t->at = t->line_at = 3;
  if (csv_shape(t, &features))
    return -1;
  if (rt_set_alloc(s, csv_rows(t), features, dtype, t->path, t->err, t->errlen))
    return -1;
  s->flat = 1, s->channels = 1, s->rows = 1, s->cols = (int)features;
  for (long i = 0; csv_skip_blank(t); i++) {
    if (csv_row(t, s, i, features, nclasses))
      return -1;
    csv_next_line(t);
  }
  return 0;
}

int rt_load_csv_set(const char *dir, const char *prefix, int nclasses, int dtype, RtSet *set,
                    char *err, size_t errlen) {
  char path[FILENAME_MAX], name[32];
  size_t len = 0;
  memset(set, 0, sizeof *set);
  if (nclasses < 1 || nclasses > 256)
    return rt_fail(err, errlen, dir, "%d classes: expected 1..256", nclasses);
  snprintf(name, sizeof name, "%s.csv", prefix);
  if (rt_join(path, sizeof path, dir, name))
    return rt_fail(err, errlen, dir, "path too long");
  char *text = (char *)rt_read_file(path, NULL, &len, err, errlen);
  if (!text)
    return -1;
  CsvText t = {text, len, 0, 1, 0, path, err, errlen};
  int r = csv_parse(&t, set, nclasses, dtype);
  free(text);
  if (r)
    rt_free_set(set);
  return r;
}
