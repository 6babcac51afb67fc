/*
 * test_golden.c — the generated model code, byte for byte.
 *
 * For every model file in models/ and tests/models/, the code emit_model
 * writes (what `mlpc M.json --emit-model F.c` writes) must equal
 * tests/golden/NAME.c. On a difference the first differing line is shown.
 * After a deliberate change to the code generator, regenerate them all
 * with `make golden` and review the diff before committing it.
 *
 * Also: emitting is deterministic (the same bytes twice, whatever was
 * emitted in between), mlpc's --emit-model writes the same bytes, every
 * golden file belongs to a model, and the code reads as written by hand:
 * lines of at most 100 columns (the standalone trainer's too), every
 * hyper-parameter a named constant (hex floats only in declarations), no
 * (void) cast of a parameter the function uses, and BatchNorm's buffers
 * kept and put back with memcpy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

#define GOLDEN_DIR "tests/golden"
#define HINT "run `make golden` to regenerate after a deliberate change"

static char *paths[UTIL_MAX_FILES]; /* every model file, dir/NAME.json       */
static int npaths;

/* ---- helpers ---- */

/* The model code of a model file. */
static Buf emit_file(const char *path) {
  static Model m;
  static Ir ir;
  char err[2048];
  Buf b = {0};
  if (fe_load(path, &m, err, sizeof err))
    fail_msg("%s", err);
  ir_lower(&m, &ir);
  emit_model(&ir, &b);
  return b;
}

/* Fails showing the first line where got differs from want (both
   NUL-terminated texts). */
static void show_difference(const char *what, const char *want, size_t wlen,
                            const char *got, size_t glen) {
  size_t line = 1, start = 0;
  for (size_t i = 0; i < wlen && i < glen && want[i] == got[i]; i++)
    if (want[i] == '\n')
      line++, start = i + 1;
  const char *w = want + start, *g = got + start;
  fail_msg("%s:%zu: differs from the generated code\n"
           "  expected: %.*s%s\n  got:      %.*s%s\n%s",
           what, line, (int)strcspn(w, "\n"), w, *w ? "" : "(end of file)",
           (int)strcspn(g, "\n"), g, *g ? "" : "(end of output)", HINT);
}

/* The body of the function whose definition starts with head, from its
   opening to its closing brace on a line of its own, copied into body; ""
   when absent. */
static void body_of(const char *code, const char *head, char *body, size_t len) {
  const char *from = strstr(code, head), *to = NULL;
  if (from)
    from = strchr(from, '{'), to = strstr(from, "\n}\n");
  snprintf(body, len, "%.*s", to ? (int)(to - from) : 0, from ? from : "");
}

/* Fails when the body casts name to void and uses it too (use: name
   followed by one of the characters of after). */
static void check_void(const char *path, const char *body, const char *name,
                       const char *after) {
  char cast[32];
  snprintf(cast, sizeof cast, "(void)%s", name);
  if (!strstr(body, cast))
    return;
  for (const char *p = strstr(body, name); p; p = strstr(p + 1, name))
    if (p[-1] == ' ' && strchr(after, p[strlen(name)]))
      fail_msg("%s: %s where %s is used:\n%s", path, cast, name, body);
}

/* The model code of path reads as written by hand (see the header). */
static void check_readable(const char *path, const char *code) {
  static char body[1 << 16];
  long wide = util_wide_line(code, 100);
  if (wide)
    fail_msg("%s: line %ld of its code is wider than 100 columns", path, wide);
  for (const char *p = strstr(code, "0x"); p; p = strstr(p + 1, "0x")) {
    const char *bol = p;
    while (bol > code && bol[-1] != '\n')
      bol--;
    if (strncmp(bol, "static ", 7) && strncmp(bol, "  .", 3)) /* a declaration's value */
      fail_msg("%s: a hex float outside a declaration: %.*s", path, (int)strcspn(bol, "\n"),
               bol);
  }
  body_of(code, "static void forward(", body, sizeof body);
  check_void(path, body, "train", ",)");
  body_of(code, "static void backward(", body, sizeof body);
  check_void(path, body, "step", ",)");
  if (strstr(code, "(void)x") || strstr(code, "(void)y")) /* the health figures' tests */
    fail_msg("%s: a health function casts x or y to void", path);
  body_of(code, "static void update(", body, sizeof body);
  for (int k = 0; k < 3; k++)
    check_void(path, body, k == 0 ? "s0" : k == 1 ? "s1" : "s2", ",)");
  body_of(code, "static void health_save_buffers(", body, sizeof body);
  if (strstr(body, "for ("))
    fail_msg("%s: BatchNorm's buffers kept element by element:\n%s", path, body);
}

/* ---- tests ---- */

/* One model file's code against its golden file. */
static void test_model(void **state) {
  const char *path = *state;
  char name[256], golden[512];
  snprintf(golden, sizeof golden, GOLDEN_DIR "/%s.c", util_stem(path, name, sizeof name));
  Buf b = emit_file(path);
  size_t len = 0;
  char *want = util_slurp(golden, &len);
  if (!want)
    fail_msg("%s: missing (the golden file of %s); " HINT, golden, path);
  if (len != b.len || memcmp(want, b.buf, len))
    show_difference(golden, want, len, b.buf, b.len);
  free(want);
  free(b.buf);
}

/* Emitting a model twice gives the same bytes, also with other models
   emitted in between (no state leaks from one emission to the next). */
static void test_deterministic(void **state) {
  (void)state;
  assert_true(npaths >= 2);
  Buf first = emit_file(paths[0]);
  for (int i = npaths - 1; i >= 0; i--) {
    Buf again = emit_file(paths[i]);
    free(emit_file(paths[(i + 1) % npaths]).buf); /* another in between */
    Buf twice = emit_file(paths[i]);
    if (again.len != twice.len || memcmp(again.buf, twice.buf, again.len))
      show_difference(paths[i], again.buf, again.len, twice.buf, twice.len);
    free(again.buf), free(twice.buf);
  }
  Buf last = emit_file(paths[0]);
  if (first.len != last.len || memcmp(first.buf, last.buf, first.len))
    show_difference(paths[0], first.buf, first.len, last.buf, last.len);
  free(first.buf), free(last.buf);
}

/* `mlpc M.json --emit-model F.c` (what `make golden` runs) writes
   exactly emit_model's bytes. */
static void test_command_line(void **state) {
  (void)state;
  char dir[64], out[96];
  assert_int_equal(util_mkdtemp("golden", dir, sizeof dir), 0);
  snprintf(out, sizeof out, "%s/m.c", dir);
  for (int i = 0; i < npaths; i++) {
    const char *argv[] = {MLPC_BIN, paths[i], "--emit-model", out, NULL};
    assert_int_equal(util_run(argv, NULL, NULL), 0);
    size_t len = 0;
    char *got = util_slurp(out, &len);
    assert_non_null(got);
    Buf b = emit_file(paths[i]);
    if (len != b.len || memcmp(got, b.buf, len))
      show_difference(paths[i], b.buf, b.len, got, len);
    free(got), free(b.buf);
  }
  util_rmtree(dir);
}

/* Every model's code and standalone trainer read as written by hand
   (check_readable; the trainer, pasted runtime included: lines of at
   most 100 columns). */
static void test_readable(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[2048];
  for (int i = 0; i < npaths; i++) {
    Buf b = emit_file(paths[i]), t = {0};
    check_readable(paths[i], b.buf);
    assert_int_equal(fe_load(paths[i], &m, err, sizeof err), 0);
    ir_lower(&m, &ir);
    assert_int_equal(emit_trainer(&ir, &t), 0);
    long wide = util_wide_line(t.buf, 100);
    if (wide)
      fail_msg("%s: line %ld of its trainer is wider than 100 columns", paths[i], wide);
    free(b.buf), free(t.buf);
  }
}

/* Every golden file has its model, and no two models share a name. */
static void test_no_strays(void **state) {
  (void)state;
  char *golden[UTIL_MAX_FILES], a[256], b[256];
  int n = util_list(GOLDEN_DIR, ".c", golden, 0);
  for (int i = 0; i < n; i++) {
    int found = 0;
    for (int k = 0; k < npaths; k++)
      found |= !strcmp(util_stem(golden[i], a, sizeof a), util_stem(paths[k], b, sizeof b));
    if (!found)
      fail_msg("%s: no model file models/%s.json or tests/models/%s.json; remove it",
               golden[i], a, a);
    free(golden[i]);
  }
  for (int i = 0; i < npaths; i++)
    for (int k = i + 1; k < npaths; k++)
      if (!strcmp(util_stem(paths[i], a, sizeof a), util_stem(paths[k], b, sizeof b)))
        fail_msg("%s and %s share the golden file %s/%s.c", paths[i], paths[k],
                 GOLDEN_DIR, a);
}

int main(void) {
  struct CMUnitTest tests[UTIL_MAX_FILES + 4];
  int n = 0;
  npaths = util_models(paths);
  for (int i = 0; i < npaths; i++)
    tests[n++] = (struct CMUnitTest){paths[i], test_model, 0, 0, paths[i]};
  tests[n++] = (struct CMUnitTest){"deterministic", test_deterministic, 0, 0, 0};
  tests[n++] = (struct CMUnitTest){"command_line", test_command_line, 0, 0, 0};
  tests[n++] = (struct CMUnitTest){"no_strays", test_no_strays, 0, 0, 0};
  tests[n++] = (struct CMUnitTest){"readable", test_readable, 0, 0, 0};
  int failed = _cmocka_run_group_tests("golden", tests, n, NULL, NULL);
  for (int i = 0; i < npaths; i++)
    free(paths[i]);
  return failed;
}
