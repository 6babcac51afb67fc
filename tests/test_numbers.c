/*
 * test_numbers.c — the generated code holds exactly the numbers the
 * model file gave.
 *
 *   frontend   a number written with 17 significant digits loads as
 *              exactly that double; one beyond the dtype's range, or
 *              0 or subnormal in it, is refused with a message
 *   emitted    the learning rate's constant in the generated code
 *              (written as a hex float) parses back to exactly -lr
 *   compilers  tcc and gcc read hex floats back exactly, as double and
 *              as float: the constants of every model file, awkward
 *              values (subnormals, the largest double, 0.1) and 2000
 *              random bit patterns
 */
#include <dlfcn.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libtcc.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

/* Values that are awkward to print and read. */
static const double awkward[] = {
  0.1, 0.01, 1e-3, 1.0 / 3, 1e-5, 1e-8, 0.999, 0.9 + 1e-16, 1 - 0x1p-53,
  123456.789e-30, 4.9406564584124654e-324, 2.2250738585072009e-308,
  2.2250738585072014e-308, 1e-300, 1e300, DBL_MAX, FLT_MAX, FLT_TRUE_MIN,
  FLT_MIN, 1e-46, 3.4028235677973366e+38, 7.0e22, 0x1.fffffffffffffp-1,
};
enum { NAWKWARD = sizeof awkward / sizeof awkward[0], NRANDOM = 2000 };

static char tmp[64];

/* Bitwise equality of doubles. */
static int same(double a, double b) {
  return memcmp(&a, &b, sizeof a) == 0;
}

/* A model with this learning rate and dtype, loaded from its text. */
static int load_lr(double lr, int dtype, Model *m, char *err, size_t errlen) {
  char text[256];
  snprintf(text, sizeof text, "{\"optimizer\": {\"type\": \"sgd\", \"lr\": %.17g}, "
           "\"dtype\": \"%s\"}", lr, dtype_names[dtype]);
  return fe_load_string(text, "lr.json", m, err, errlen);
}

/* Whether the code declares its lr constant (PREFIX_lr = HEX) as a hex
   float that parses back to exactly v. */
static int holds(const char *code, double v) {
  const char *at = strstr(code, "_lr = ");
  return at && same(strtod(at + 6, NULL), v);
}

/* Whether the dtype holds v as a normal number (what the frontend
   accepts as lr). */
static int fits(double v, int dtype) {
  if (dtype == DT_F64)
    return v >= DBL_MIN;
  return v <= FLT_MAX && (float)v >= FLT_MIN;
}

/* Every awkward value as lr: loaded exactly, refused when beyond the
   dtype or 0 or subnormal there, and emitted as exactly -lr. */
static void test_lr_round_trip(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[1024];
  int nrefused = 0;
  for (int dt = 0; dt < NDTYPES; dt++)
    for (int i = 0; i < NAWKWARD; i++) {
      double v = awkward[i];
      int ok = fits(v, dt);
      if (load_lr(v, dt, &m, err, sizeof err)) {
        if (ok)
          fail_msg("lr %a (%s) refused: %s", v, dtype_names[dt], err);
        if (!strstr(err, "beyond float32's range") && !strstr(err, "which is 0 in") &&
            !strstr(err, "which is subnormal in"))
          fail_msg("lr %a (%s): %s", v, dtype_names[dt], err);
        nrefused++;
        continue;
      }
      if (!ok)
        fail_msg("lr %a accepted for %s", v, dtype_names[dt]);
      if (!same(m.opt.lr, v))
        fail_msg("lr %.17g loaded as %a, not %a", v, m.opt.lr, v);
      Buf b = {0};
      ir_lower(&m, &ir);
      emit_model(&ir, &b);
      double want = dt == DT_F32 ? (double)(float)v : v; /* the constant is a real */
      if (!holds(b.buf, want))
        fail_msg("lr %a: the code has no constant lr = %a", v, want);
      free(b.buf);
    }
  print_message("  %d of %d refused (beyond the dtype, or 0 or subnormal in it)\n", nrefused,
                2 * NAWKWARD);
}

/* ---- the compilers ---- */

/* Appends every hex-float constant R(...) of a text to vals[*n..cap). */
static void collect(const char *code, double *vals, int *n, int cap) {
  for (const char *p = code; (p = strstr(p, " = ")); p += 3) /* the named constants */
    if (*n < cap && (!strncmp(p + 3, "0x", 2) || !strncmp(p + 3, "-0x", 3)))
      vals[(*n)++] = strtod(p + 3, NULL);
}

/* A unit defining dbl[] and flt[], the values as hex floats and as float
   casts of them (where they fit). */
static char *unit_of(const double *vals, int n) {
  char *src = malloc((size_t)n * 80 + 64);
  size_t len = sprintf(src, "double dbl[] = {\n");
  for (int i = 0; i < n; i++)
    len += sprintf(src + len, "%a,\n", vals[i]);
  len += sprintf(src + len, "};\nfloat flt[] = {\n");
  for (int i = 0; i < n; i++)
    len += sprintf(src + len, "(float)%a,\n", fabs(vals[i]) <= FLT_MAX ? vals[i] : 0.0);
  sprintf(src + len, "};\n");
  return src;
}

/* Checks what a compiler read: every double and float bit for bit. */
static void check_read(const char *who, const double *vals, int n, const double *dbl,
                       const float *flt) {
  for (int i = 0; i < n; i++) {
    float want = (float)(fabs(vals[i]) <= FLT_MAX ? vals[i] : 0.0);
    if (!same(dbl[i], vals[i]))
      fail_msg("%s read %a as %a", who, vals[i], dbl[i]);
    if (memcmp(&flt[i], &want, sizeof want))
      fail_msg("%s read (float)%a as %a, not %a", who, vals[i], (double)flt[i], (double)want);
  }
}

/* tcc, in memory. */
static void check_tcc(const char *src, const double *vals, int n) {
  TCCState *s = tcc_new();
  assert_non_null(s);
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  assert_int_equal(tcc_compile_string(s, src), 0);
  assert_true(tcc_relocate(s, TCC_RELOCATE_AUTO) >= 0);
  check_read("tcc", vals, n, tcc_get_symbol(s, "dbl"), tcc_get_symbol(s, "flt"));
  tcc_delete(s);
}

/* gcc, with the backend's flags, into a shared object. */
static void check_gcc(const char *src, const double *vals, int n) {
  char c[128], so[128];
  snprintf(c, sizeof c, "%s/k.c", tmp);
  snprintf(so, sizeof so, "%s/k.so", tmp);
  assert_int_equal(util_write(c, src, strlen(src)), 0);
  const char *argv[16] = {"gcc"};
  int k = 1;
  for (const char *const *f = jit_gcc_flags; *f && k < 12; f++)
    argv[k++] = *f;
  argv[k++] = c, argv[k++] = "-o", argv[k++] = so;
  assert_int_equal(util_run(argv, NULL, NULL), 0);
  void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
  assert_non_null(dl);
  check_read("gcc", vals, n, dlsym(dl, "dbl"), dlsym(dl, "flt"));
  dlclose(dl);
}

/* The constants of every model, awkward values and random bits, read
   back exactly by both compilers. */
static void test_compilers(void **state) {
  (void)state;
  enum { CAP = 4096 };
  static double vals[CAP];
  static Model m;
  static Ir ir;
  char *files[UTIL_MAX_FILES], err[1024];
  int n = 0, nf = util_models(files);
  for (int i = 0; i < nf; i++) {
    Buf b = {0};
    if (fe_load(files[i], &m, err, sizeof err))
      fail_msg("%s", err);
    ir_lower(&m, &ir);
    emit_model(&ir, &b);
    collect(b.buf, vals, &n, CAP / 2);
    free(b.buf), free(files[i]);
  }
  assert_true(n >= 30); /* 3 or more in each model */
  for (int i = 0; i < NAWKWARD; i++)
    vals[n++] = awkward[i], vals[n++] = -awkward[i];
  uint64_t x = 88172645463325252ULL;
  for (int i = 0; i < NRANDOM; ) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double d;
    memcpy(&d, &x, sizeof d);
    if (isfinite(d))
      vals[n++] = d, i++;
  }
  char *src = unit_of(vals, n);
  check_tcc(src, vals, n);
  check_gcc(src, vals, n);
  free(src);
  print_message("  %d values read back exactly by tcc and gcc\n", n);
}

static int setup(void **state) {
  (void)state;
  return util_mkdtemp("numbers", tmp, sizeof tmp);
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_lr_round_trip),
    cmocka_unit_test(test_compilers),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
