/*
 * real.c — numbers as messages show them: the fewest digits that read
 * back as the same double, with the exponent written as people write it
 * in a model file ("1e6", "2.5e-7"), not as printf's %g does ("1e+06").
 */
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
