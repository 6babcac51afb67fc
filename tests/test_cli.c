/*
 * test_cli.c — the command line (cli.c, main.c, study/driver.c): every
 * flag does what it says or is an error, exit 2, with a message naming
 * the flag, and writes nothing:
 *
 *   twice       a flag given twice, a value flag without its value (or
 *               followed by another flag), an unknown flag
 *   kind        study flags for a model (--jobs, --out, --db, --dump-study)
 *               and model flags for a study
 *   serves      a flag that serves none of the actions given (--json
 *               without --run, --epochs with --dump-ir, --load-weights
 *               with --emit), and nothing to do at all
 *   outputs     two outputs to one file: the same name, another spelling
 *               of it, through a linked directory, a hard link,
 *               --emit-inference's header; an output over the model file
 *               or the weights read; a device takes both
 *   paths       a path longer than the system takes; a database that is
 *               a device or a directory
 *
 * Each case is one command and its exact stderr; $T stands for the
 * temporary directory. Last, the learning rate in a run's first line is
 * the model's, exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "util.h"

static char tmp[64];

#define M "models/bn_relu.json"
#define S "models/seed_study.json"
#define SERVES_RUN "applies to --run only, which is not given"

/* One command: its arguments after mlpc, its status, its stderr after
   "mlpc: " (NULL: not checked). */
typedef struct {
  const char *args[12];
  int status;
  const char *err;
} Case;

static const Case cases[] = {
  /* twice, missing values, unknown flags */
  {{M, "--emit", "$T/a.c", "--emit", "$T/b.c"}, 2,
   "--emit: error: given twice ('$T/a.c', then '$T/b.c'); give it once"},
  {{M, "--run", "--dump-ir", "--run"}, 2, "--run: error: given twice; give it once"},
  {{M, "--emit", "--run"}, 2, "--emit: error: needs a value (FILE.c), got the flag '--run'"},
  {{M, "--dump-ir", "--emit"}, 2, "--emit: error: needs a value (FILE.c)"},
  {{M, "--dump-ir", "--frobnicate"}, 2,
   "error: unknown option '--frobnicate' (see mlpc --help)"},
  {{M, "--run", "--backend", "clang"}, 2,
   "--backend: error: unknown backend 'clang'; expected tcc, gcc or tiered"},
  /* outputs that cannot be written, refused before any work */
  {{M, "--run", "--save-weights", "$T"}, 2,
   "--save-weights: error: '$T' is a directory; give a file's name"},
  {{M, "--run", "--save-weights", "$T/none/w.st"}, 2,
   "--save-weights: error: '$T/none/w.st': no directory '$T/none' to write it in"},
  {{M, "--emit", "$T/"}, 2, "--emit: error: '$T/' is a directory; give a file's name"},
  {{S, "--run", "--out", M}, 2,
   "--out: error: '" M "' is not a directory (the study's tables go into a directory)"},
  {{M, "--run", "--save-weights", ""}, 2, "--save-weights: error: an empty name"},
  {{M, "--run", "--data", ""}, 2, "--data: error: an empty name"},
  /* flags for the other kind of file */
  {{M, "--run", "--jobs", "2"}, 2,
   "--jobs: error: applies to studies only (docs/study-format.md), and " M " is a model"},
  {{M, "--run", "--out", "$T/o"}, 2,
   "--out: error: applies to studies only (docs/study-format.md), and " M " is a model"},
  {{M, "--run", "--db", "$T/db"}, 2,
   "--db: error: applies to studies only (docs/study-format.md), and " M " is a model"},
  {{M, "--dump-study"}, 2,
   "--dump-study: error: applies to studies only (docs/study-format.md), and " M " is a "
   "model; a model's code is shown by --dump-ir and --emit-model"},
  {{S, "--run", "--seed", "3"}, 2, "--seed: error: does not apply to a study (" S "); its "
   "runs take the study file's \"seeds\""},
  {{S, "--dump-study", "--emit", "$T/x.c"}, 2,
   "--emit: error: does not apply to a study (" S ")"},
  /* flags that serve no action given */
  {{M}, 2, "error: nothing to do: give --run, --emit FILE.c, --emit-model FILE.c, "
   "--emit-inference FILE.c or --dump-ir"},
  {{S, "--jobs", "2"}, 2,
   "error: nothing to do: give --run or --dump-study (docs/study-format.md)"},
  {{S, "--dump-study", "--jobs", "2"}, 2, "--jobs: error: " SERVES_RUN},
  {{S, "--dump-study", "--db", "$T/db"}, 2, "--db: error: " SERVES_RUN},
  {{M, "--dump-ir", "--json"}, 2, "--json: error: " SERVES_RUN},
  {{M, "--dump-ir", "--backend", "tcc"}, 2, "--backend: error: " SERVES_RUN},
  {{M, "--dump-ir", "--save-weights", "$T/w"}, 2, "--save-weights: error: " SERVES_RUN},
  {{M, "--emit", "$T/t.c", "--no-shuffle"}, 2, "--no-shuffle: error: " SERVES_RUN
   "; the trainer --emit writes takes --no-shuffle itself"},
  {{M, "--dump-ir", "--epochs", "3"}, 2,
   "--epochs: error: applies to --run and --emit only, neither of which is given"},
  {{M, "--emit-model", "$T/m.c", "--seed", "3"}, 2,
   "--seed: error: applies to --run and --emit only, neither of which is given"},
  {{M, "--dump-ir", "--strict"}, 2, "--strict: error: applies to --run, --emit, --emit-model "
   "and --emit-inference only, none of which is given"},
  {{M, "--emit", "$T/t.c", "--load-weights", "$T/missing.st"}, 2,
   "--load-weights: error: applies to --run and --emit-inference only, neither of which is "
   "given"},
  {{M, "--run", "--emit", "$T/t.c", "--load-weights", "$T/w"}, 2,
   "--load-weights: error: does not apply to --emit: its trainer starts from the model's "
   "initialisation, not from a weights file (write it in a command of its own)"},
  {{M, "--run", "--emit-model", "$T/m.c", "--load-weights", "$T/w"}, 2,
   "--load-weights: error: does not apply to --emit-model: the model's code holds no weights "
   "(--emit-inference writes code with weights)"},
  {{M, "--dump-ir", "--load-weights", "$T/w"}, 2,
   "--load-weights: error: applies to --run and --emit-inference only, neither of which is "
   "given"},
  /* outputs */
  {{M, "--emit-model", "$T/x.c", "--emit", "$T/x.c"}, 2, "--emit: error: '$T/x.c' is the "
   "same file as --emit-model's output ('$T/x.c'); give each output a file of its own"},
  {{M, "--emit", "$T/./d/../x.c", "--emit-model", "$T/x.c"}, 2, "--emit: error: "
   "'$T/./d/../x.c' is the same file as --emit-model's output ('$T/x.c'); give each "
   "output a file of its own"},
  {{M, "--emit", "$T/d/a.c", "--emit-model", "$T/link/a.c"}, 2, "--emit: error: '$T/d/a.c' "
   "is the same file as --emit-model's output ('$T/link/a.c'); give each output a file of "
   "its own"},
  {{M, "--emit", "$T/d/old.c", "--emit-model", "$T/hard.c"}, 2, "--emit: error: "
   "'$T/d/old.c' is the same file as --emit-model's output ('$T/hard.c'); give each output "
   "a file of its own"},
  {{M, "--run", "--emit-inference", "$T/x.c", "--load-weights", "$T/w", "--save-weights",
    "$T/x.h"}, 2, "--emit-inference: error: its header '$T/x.h' is the same file as "
   "--save-weights' output ('$T/x.h'); give each output a file of its own"},
  {{M, "--emit", M}, 2, "--emit: error: '" M "' is the same file as the model file ('" M
   "'); it would be overwritten"},
  {{M, "--emit-inference", "$T/w.c", "--load-weights", "$T/w.c"}, 2, "--emit-inference: "
   "error: '$T/w.c' is the same file as the weights file of --load-weights ('$T/w.c'); it "
   "would be overwritten"},
  {{M, "--emit", "/dev/null", "--emit-model", "/dev/null"}, 0, ""},
  {{M, "--emit", "$T/d/t.c", "--emit-model", "$T/t.c", "--lr", "0.5", "--batch-size", "8"}, 0,
   ""},
  /* --save-weights may replace the weights read: refused only for want of them */
  {{M, "--run", "--load-weights", "$T/none.st", "--save-weights", "$T/none.st", "--backend",
    "tcc"}, 2, NULL},
  /* paths */
  {{M, "--emit", "$LONG"}, 2, "--emit: error: the path is 5000 bytes long, longer than any "
   "the system takes (at most 4095)"},
  {{S, "--run", "--db", "/dev/null"}, 2, "/dev/null: error: a character device, not a "
   "database file: give --db a file's name (the default is out/mlpc.sqlite)"},
  {{S, "--run", "--db", "$T/d"}, 2, "$T/d: error: a directory, not a database file: give --db "
   "a file's name (the default is out/mlpc.sqlite)"},
  {{S, "--run", "--db", "$T/hard.c/x.sqlite"}, 1, "error: $T/hard.c/x.sqlite: cannot open: "
   "unable to open database file"},
  {{S, "--run", "--db", "$T/new/"}, 2, "$T/new/: error: a directory name, not a database "
   "file: give --db a file's name (the default is out/mlpc.sqlite)"},
};

/* s with "$T" replaced by the temporary directory and "$LONG" by a path
   of 5000 bytes (a static buffer, one of 16: a command's worth). */
static const char *expand(const char *s) {
  static char buf[16][8192];
  static int next;
  char *out = buf[next++ % 16];
  size_t n = 0;
  while (*s && n < sizeof buf[0] - 5001) {
    if (!strncmp(s, "$T", 2))
      n += sprintf(out + n, "%s", tmp), s += 2;
    else if (!strncmp(s, "$LONG", 5))
      memset(out + n, 'x', 5000), n += 5000, s += 5;
    else
      out[n++] = *s++;
  }
  out[n] = '\0';
  return out;
}

/* Files a refused command must not have written. */
static const char *const never[] = {"a.c", "b.c", "t.c", "x.c", "x.h", "m.c", "w.c", "db",
                                    "o", "new", "d/a.c", "link/a.c", "d/t.c"};

/* Runs one case; 0 if it went as expected, else says how not. */
static int run_case(const Case *c) {
  const char *argv[16] = {MLPC_BIN};
  char errpath[128], cmd[512] = "mlpc";
  int n = 1;
  for (; c->args[n - 1]; n++) {
    argv[n] = expand(c->args[n - 1]);
    snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), " %.40s", c->args[n - 1]);
  }
  snprintf(errpath, sizeof errpath, "%s/stderr", tmp);
  int status = util_run(argv, NULL, errpath), bad = 0;
  size_t len;
  char *err = util_slurp(errpath, &len), want[8192];
  int some = c->err && *c->err;
  snprintf(want, sizeof want, "%s%s%s", some ? "mlpc: " : "", c->err ? expand(c->err) : "",
           some ? "\n" : "");
  if (status != c->status || (c->err && strcmp(err ? err : "", want)))
    bad = printf("%s: exit %d, want %d\n- %s+ %s", cmd, status, c->status, want,
                 err ? err : "");
  for (size_t i = 0; c->status && i < sizeof never / sizeof *never; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmp, never[i]);
    if (!access(p, F_OK))
      bad = printf("%s: wrote %s\n", cmd, p);
  }
  free(err);
  return bad != 0;
}

/* Every case, each with its exact message. */
static void test_cases(void **state) {
  (void)state;
  int bad = 0, n = sizeof cases / sizeof *cases;
  for (int i = 0; i < n; i++) {
    bad += run_case(&cases[i]);
    for (size_t k = 0; k < sizeof never / sizeof *never; k++) { /* what a good one wrote */
      char p[256];
      snprintf(p, sizeof p, "%s/%s", tmp, never[k]);
      remove(p);
    }
  }
  print_message("  %d commands, %d went otherwise\n", n, bad);
  assert_int_equal(bad, 0);
}

/* The model file a refused --emit named is left as it was. */
static void test_model_untouched(void **state) {
  (void)state;
  size_t before, after;
  char *a = util_slurp(M, &before);
  const char *argv[] = {MLPC_BIN, M, "--emit", M, NULL};
  assert_int_equal(util_run(argv, NULL, NULL), 2);
  char *b = util_slurp(M, &after);
  assert_true(before == after && !memcmp(a, b, before));
  free(a), free(b);
}

/* The run's first line gives the learning rate exactly, as a model file
   writes it (not %g's 1.23457e-05). */
static void test_header(void **state) {
  (void)state;
  char out[128];
  size_t len;
  snprintf(out, sizeof out, "%s/stdout", tmp);
  const char *argv[] = {MLPC_BIN, M, "--run", "--backend", "tcc", "--epochs", "1",
                        "--max-batches", "1", "--lr", "0.0000123456789", NULL};
  assert_int_equal(util_run(argv, out, NULL), 0);
  char *text = util_slurp(out, &len);
  if (!strstr(text, ", sgd lr 1.23456789e-5, batch 32,"))
    fail_msg("%s", text);
  free(text);
}

/* The temporary directory: d/, link -> d, d/old.c and its hard link. */
static int setup(void **state) {
  (void)state;
  char p[128], q[128];
  if (util_mkdtemp("cli", tmp, sizeof tmp))
    return -1;
  snprintf(p, sizeof p, "%s/d", tmp);
  mkdir(p, 0700);
  snprintf(q, sizeof q, "%s/link", tmp);
  if (symlink(p, q))
    return -1;
  snprintf(p, sizeof p, "%s/d/old.c", tmp);
  snprintf(q, sizeof q, "%s/hard.c", tmp);
  return util_write(p, "old\n", 4) || link(p, q) ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  util_rmtree(tmp);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cases),
    cmocka_unit_test(test_model_untouched),
    cmocka_unit_test(test_header),
  };
  return util_run_tests(tests, setup, teardown, argc, argv);
}
