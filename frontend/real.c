/*
 * real.c — numbers as messages show them: the fewest digits that read
 * back as the same double, with the exponent written as people write it
 * in a model file ("1e6", "2.5e-7"), not as printf's %g does ("1e+06");
 * and numbers written as not 0 that a double holds only as 0 ("1e-400"),
 * which Jansson reads as 0 without a word.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"

/* Rewrites printf's exponent "e+06" or "e-07" in place as "e6", "e-7". */
static void compact_exponent(char *s) {
  char *e = strchr(s, 'e');
  if (!e)
    return;
  char *digits = e + 1 + (e[1] == '+' || e[1] == '-');
  size_t zeros = strspn(digits, "0");
  if (!digits[zeros])
    zeros--;  /* "e+00" keeps one 0 (printf never writes it for finite d) */
  memmove(digits, digits + zeros, strlen(digits + zeros) + 1);
  if (e[1] == '+')
    memmove(e + 1, e + 2, strlen(e + 2) + 1);
}

/* Writes d in the fewest significant digits that read back as d. */
void fe_show_real(char *buf, size_t size, double d) {
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, size, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  compact_exponent(buf);
}

/* The bytes a JSON number's text may hold. */
#define NUMBER_BYTES "+-.0123456789eE"

int fe_underflows(const char *text) {
  size_t n = strspn(text, NUMBER_BYTES), mant = strcspn(text, "eE");
  return strtod(text, NULL) == 0 && strcspn(text, "123456789") < (mant < n ? mant : n);
}

/* Reports the number at text, which underflows, at line:col of file. */
static int tiny_at(const char *file, const char *text, int line, int col, char *err,
                   size_t errlen) {
  size_t n = strspn(text, NUMBER_BYTES);
  snprintf(err, errlen, "%s:%d:%d: error: %.*s%s " FE_TINY "; write 0 if 0 is meant", file,
           line, col, n < 40 ? (int)n : 36, text, n < 40 ? "" : "...");
  return -1;
}

int fe_check_underflow(const char *text, size_t len, const char *file, char *err,
                       size_t errlen) {
  int line = 1, col = 0, quoted = 0;
  for (size_t i = 0; i < len; i++) {
    char ch = text[i];
    col += ((unsigned char)ch & 0xC0) != 0x80;  /* characters, as Jansson counts */
    if (quoted && ch == '\\')
      i++, col++;  /* an escape: \" does not end the string */
    else if (ch == '"')
      quoted = !quoted;
    else if (ch == '\n')
      line++, col = 0;
    else if (!quoted && (ch == '-' || isdigit((unsigned char)ch))) {
      if (fe_underflows(text + i))
        return tiny_at(file, text + i, line, col, err, errlen);
      size_t n = strspn(text + i, NUMBER_BYTES);
      i += n - 1, col += (int)n - 1;
    }
  }
  return 0;
}
