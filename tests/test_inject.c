/*
 * test_inject.c — nothing in a model reaches the generated C as code.
 *
 * The frontend refuses hostile names (tests/errors/name_*.json), but the
 * data directory may be any string, and a Model built in C skips the
 * frontend altogether. So each hostile string below is put, as it is,
 * into a model's name and data directory, and then:
 *
 *   jit        the unit compiles with tcc and with gcc (-std=c11, where
 *              trigraphs such as ??/ are live), and the compiled model's
 *              name is exactly the hostile string
 *   trainer    the standalone trainer compiles with gcc -std=c11 and with
 *              cc's default, and runs: it looks for its data under exactly
 *              the hostile directory and exits 2
 *   inference  the inference C for the model's weights compiles with gcc
 *              -std=c11 and defines nothing but its two functions
 *   command    `mlpc M.json --emit F.c` with the data directory in the
 *              model file gives the same (for the strings JSON can hold)
 *
 * and no payload ever ran: the marker file the payloads try to create
 * does not exist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jansson.h>
#include <cmocka.h>
#include "../mlpc.h"
#include "util.h"

/* The file a payload that ran would create. */
#define MARK "/tmp/mlpc-pwned"

/* Hostile strings: a quote that ends the literal, a newline that starts a
   directive, a comment end, a trigraph that turns \" into a live quote,
   a printf format, bytes outside ASCII. Each fits a 63-byte name. */
static const char *const hostile[] = {
  "x\"); system(\"touch " MARK "\"); //",
  "x\", 0}; int pwned = system(\"touch " MARK "\"); //",
  "a\n#error injected\n",
  "*/ #error injected /*",
  "?\?/\\\"; int pwned(void) { return system(\"touch " MARK "\"); } //",
  "?\?/\n#error spliced",
  "%s%n%%d\\",
  "\xff\xfe\x01\x7f end",
};
enum { NHOSTILE = sizeof hostile / sizeof hostile[0] };

static char tmp[64];

/* A small model holding s as its name and as its data directory. */
static void hostile_model(Model *m, const char *s) {
  fe_defaults(m);
  snprintf(m->name, sizeof m->name, "%s", s);
  snprintf(m->data, sizeof m->data, "%s", s);
  m->input = 16;
  m->hidden[0] = 8;
}

/* Fails if a payload ran. */
static void no_mark(const char *what) {
  if (access(MARK, F_OK) == 0)
    fail_msg("%s: a payload ran: %s exists", what, MARK);
}

/* The hostile string s (index i) as the name of a model compiled by a
   backend. */
static void check_jit(int backend, int i) {
  static Model m;
  static Ir ir;
  char err[2048];
  Buf b = {0};
  hostile_model(&m, hostile[i]);
  ir_lower(&m, &ir);
  emit_unit(&ir, backend, &b);
  Jit *j = backend == BACKEND_TCC ? jit_tcc(b.buf, err, sizeof err)
                                  : jit_gcc(b.buf, util_path(tmp, "cache"), err, sizeof err);
  free(b.buf);
  if (!j)
    fail_msg("hostile[%d], %s: %s", i, backend_names[backend], err);
  assert_string_equal(jit_net(j)->name, m.name);
  jit_free(j);
  no_mark(backend_names[backend]);
}

/* Each hostile name compiles, as a string, with tcc and gcc. */
static void test_jit(void **state) {
  (void)state;
  for (int i = 0; i < NHOSTILE; i++) {
    check_jit(BACKEND_TCC, i);
    check_jit(BACKEND_GCC, i);
  }
}

/* The global names an object file defines, one a line. */
static char *defined_symbols(const char *obj) {
  const char *argv[] = {"nm", "--defined-only", "-g", "-j", obj, NULL};
  size_t len;
  assert_int_equal(util_run(argv, util_path(tmp, "nm.txt"), NULL), 0);
  return util_slurp(util_path(tmp, "nm.txt"), &len);
}

/* Each hostile name in the inference C of a compiled model. */
static void test_inference(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  char err[2048];
  for (int i = 0; i < NHOSTILE; i++) {
    Buf u = {0}, c = {0}, h = {0};
    hostile_model(&m, hostile[i]);
    ir_lower(&m, &ir);
    emit_unit(&ir, BACKEND_TCC, &u);
    Jit *j = jit_tcc(u.buf, err, sizeof err);
    assert_non_null(j);
    rt_init(jit_net(j), 1);
    assert_int_equal(emit_inference(&ir, jit_net(j), "p.h", &c, &h, err, sizeof err), 0);
    assert_int_equal(util_write(util_path(tmp, "p.c"), c.buf, c.len), 0);
    assert_int_equal(util_write(util_path(tmp, "p.h"), h.buf, h.len), 0);
    const char *cc[] = {"cc", "-std=c11", "-c", util_path(tmp, "p.c"), "-o", util_path(tmp, "p.o"),
                        NULL};
    if (util_run(cc, NULL, NULL))
      fail_msg("hostile[%d]: the inference C does not compile", i);
    char *syms = defined_symbols(util_path(tmp, "p.o"));
    assert_string_equal(syms, "mlpc_predict\nmlpc_predict_u8\n");
    free(syms), free(u.buf), free(c.buf), free(h.buf);
    jit_free(j);
  }
}

/* Builds the trainer in src with cc and the flag std (NULL: none), runs
   it, and checks it looked for its data under exactly dir. */
static void build_and_run(const char *src, const char *std, const char *dir) {
  const char *exe = util_path(tmp, "trainer"), *out = util_path(tmp, "stderr");
  const char *cc[] = {"cc", "-O0", src, "-o", exe, "-lm", "-lz", std, NULL};
  const char *run[] = {exe, "--epochs", "1", NULL};
  if (util_run(cc, NULL, out))
    fail_msg("cc %s %s: the trainer for '%s' does not compile", std ? std : "", src, dir);
  assert_int_equal(util_run(run, NULL, out), 2);
  size_t len;
  char *msg = util_slurp(out, &len), want[8192];
  snprintf(want, sizeof want, "mlpc: error: %s: no such directory", dir);
  if (!strstr(msg, want))
    fail_msg("the trainer's message does not name the data directory as given:\n%s", msg);
  free(msg);
  no_mark("trainer");
}

/* Each hostile string as name and data directory of a standalone trainer. */
static void test_trainer(void **state) {
  (void)state;
  static Model m;
  static Ir ir;
  for (int i = 0; i < NHOSTILE; i++) {
    Buf b = {0};
    hostile_model(&m, hostile[i]);
    ir_lower(&m, &ir);
    emit_trainer(&ir, &b);
    assert_int_equal(util_write(util_path(tmp, "t.c"), b.buf, b.len), 0);
    free(b.buf);
    build_and_run(util_path(tmp, "t.c"), "-std=c11", hostile[i]);
    build_and_run(util_path(tmp, "t.c"), NULL, hostile[i]);
  }
}

/* The same through the command line: a model file whose data directory
   is hostile loads, and `mlpc --emit` writes a harmless trainer. */
static void test_command(void **state) {
  (void)state;
  for (int i = 0; i < NHOSTILE; i++) {
    json_t *j = json_pack("{s:i, s:[i], s:s}", "input", 16, "hidden", 8, "data", hostile[i]);
    if (!j)
      continue; /* not UTF-8: no model file can hold it */
    char *text = json_dumps(j, 0);
    assert_int_equal(util_write(util_path(tmp, "m.json"), text, strlen(text)), 0);
    free(text);
    json_decref(j);
    const char *argv[] = {MLPC_BIN, util_path(tmp, "m.json"), "--emit", util_path(tmp, "t.c"),
                          NULL};
    assert_int_equal(util_run(argv, NULL, NULL), 0);
    build_and_run(util_path(tmp, "t.c"), "-std=c11", hostile[i]);
  }
}

/* The checks can fail: an unescaped payload runs. */
static void test_payload_works(void **state) {
  (void)state;
  const char *src = util_path(tmp, "raw.c");
  char text[512];
  int n = snprintf(text, sizeof text, "#include <stdlib.h>\nstatic const char s[] = \"%s\";\n"
                   "int main(void) { (void)s; return 0; }\n", hostile[4]);
  assert_int_equal(util_write(src, text, n), 0);
  const char *cc[] = {"cc", "-std=c11", "-w", "-c", src, "-o", util_path(tmp, "raw.o"), NULL};
  const char *nm[] = {"nm", util_path(tmp, "raw.o"), NULL};
  assert_int_equal(util_run(cc, NULL, NULL), 0);
  assert_int_equal(util_run(nm, util_path(tmp, "nm.txt"), NULL), 0);
  size_t len;
  char *syms = util_slurp(util_path(tmp, "nm.txt"), &len);
  assert_non_null(strstr(syms, " T pwned")); /* the payload became code */
  free(syms);
}

static int setup(void **state) {
  (void)state;
  remove(MARK);
  return util_mkdtemp("inject", tmp, sizeof tmp);
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  return access(MARK, F_OK) == 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_payload_works),
    cmocka_unit_test(test_jit),
    cmocka_unit_test(test_trainer),
    cmocka_unit_test(test_inference),
    cmocka_unit_test(test_command),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
