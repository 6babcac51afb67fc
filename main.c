/*
 * main.c — the driver. The whole pipeline is here, one stage a line:
 *
 *   load (frontend/load.c) → check (the same) → lower (codegen/ir.c)
 *   → emit (codegen/emit.c) → compile (runtime/jit.c: tcc or gcc)
 *   → run (runtime/train.c)
 *
 * Exit status: 0 success, 2 bad input (model file, flags, data), 1 the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mlpc.h"
#include "study/study.h"

static const char usage[] =
  "usage: mlpc MODEL.json [--run] [options]\n"
  "       mlpc MODEL.json --emit FILE.c\n"
  "       mlpc MODEL.json --emit-inference FILE.c --load-weights W.safetensors\n"
  "       mlpc STUDY.json --run [--jobs N] [--out DIR] [--db FILE]\n"
  "\n"
  "Compiles a JSON model description (docs/model-format.md) into C and,\n"
  "with --run, trains it on MNIST-shaped data, printing train loss, test\n"
  "loss and test accuracy after each epoch.\n"
  "\n"
  "Actions (at least one):\n"
  "  --run                 compile and train the model\n"
  "  --emit FILE.c         write a standalone trainer, one C file whose first\n"
  "                        line gives its build command (in fma: cc -O2\n"
  "                        -march=native -ffp-contract=off FILE.c -o trainer\n"
  "                        -lm -lz; in strict, without the two flags)\n"
  "  --emit-model FILE.c   write only the model's generated code\n"
  "  --emit-inference FILE.c\n"
  "                        write the weights of --load-weights as inference-only\n"
  "                        C99, FILE.c and FILE.h (docs/inference.md), whose\n"
  "                        mlpc_predict(x, logits) returns the class\n"
  "  --dump-ir             print the lowered layers\n"
  "\n"
  "Run options (override the model file):\n"
  "  --backend tcc|gcc     compiler for --run (default gcc when on PATH, else tcc)\n"
  "  --epochs N            epochs to train\n"
  "  --seed N              seed of the initial weights and the batch order\n"
  "  --batch-size N        samples per training batch\n"
  "  --lr X                the optimizer's learning rate\n"
  "  --max-batches N       train and test only N batches per epoch\n"
  "  --data DIR            mnist, fashion-mnist (under $MLPC_DATA or data/),\n"
  "                        or a directory holding the four IDX files\n"
  "  --no-shuffle          batches in file order, the same every epoch\n"
  "  --fma                 the default arithmetic of the dense kernels: each\n"
  "                        term added with a fused multiply-add, fma(a, b, acc),\n"
  "                        rounded once\n"
  "  --strict              the other arithmetic: each term added as acc + a*b,\n"
  "                        rounded twice. The two differ in the last bits; in\n"
  "                        either, tcc, gcc and --emit's trainer agree bit for\n"
  "                        bit (docs/performance.md)\n"
  "  --json                stdout as JSON Lines: one object per epoch, then\n"
  "                        a summary object; a run that diverges ends with a\n"
  "                        summary saying where and why (\"diverged\": true)\n"
  "  --health              also print the health figures (docs/health.md) on\n"
  "                        a fixed probe batch, for the initial weights (as\n"
  "                        epoch 0) and after each epoch: per hidden layer\n"
  "                        activation statistics, saturated and dead units;\n"
  "                        per parameter its norm, gradient norm and update-\n"
  "                        to-weight ratio. With --json, in each line's\n"
  "                        \"health\". The run itself is bitwise unchanged\n"
  "  --load-weights FILE   start from these weights (safetensors) instead of\n"
  "                        the initialisation; the weights --emit-inference writes\n"
  "  --save-weights FILE   write the trained weights (safetensors)\n"
  "\n"
  "Studies (docs/study-format.md): a file with \"base\" and \"vary\" keys runs\n"
  "every variant of its base model for every seed, records each run in a\n"
  "database and writes tables; started again, it runs only what is missing.\n"
  "  --jobs N              worker processes (default: the number of cores)\n"
  "  --out DIR             the tables' directory (default out/NAME)\n"
  "  --db FILE             the results database (default out/mlpc.sqlite)\n"
  "  --dump-study          print each experiment: name, code hash, model\n"
  "  --epochs, --max-batches, --data, --backend, --no-shuffle, --fma, --strict\n"
  "                        apply to every run\n"
  "  mpirun -n N mlpc STUDY.json --run   spreads the runs over N ranks on any\n"
  "                        number of hosts, when mlpc is built with MPI\n"
  "                        (docs/cluster.md)\n"
  "\n"
  "  --help                this text\n"
  "  --version             mlpc's version\n"
  "\n"
  "Exit status: 0 success, 2 bad input (model file, flags, data, weights),\n"
  "1 other errors (such as a diverging run: a loss, weight or statistic\n"
  "that is not finite).\n";

typedef struct {
  const char *model;
  int run, dump_ir, json, no_shuffle, health;
  int fma, strict;              /* the arithmetic flags given            */
  int dump_study;               /* studies only: refused for a model     */
  int backend;                  /* -1: the default                       */
  const char *emit, *emit_model, *emit_inference, *save, *load;
} Args;

/* Prints a user error and exits 2. */
static void die_input(const char *msg) {
  for (const char *line = msg; *line;) {
    size_t n = strcspn(line, "\n");
    fprintf(stderr, "mlpc: %.*s\n", (int)n, line);
    line += n + (line[n] == '\n');
  }
  exit(2);
}

/* Prints an error of ours or of the system and exits 1. */
static void die(const char *msg) {
  fprintf(stderr, "mlpc: error: %s\n", msg);
  exit(1);
}

/* Prints the frontend's message and exits: 2 for the user's error, 1 when
   memory ran out. */
static void die_load(int rc, const char *msg) {
  if (rc == FE_NO_MEMORY) {
    fprintf(stderr, "mlpc: %s\n", msg);
    exit(1);
  }
  die_input(msg);
}

/* Dies when generating code ran out of memory. */
static void check_emitted(int rc) {
  if (rc)
    die("out of memory generating the code");
}

/* The run flags that override model keys: flag → key. */
static const struct {
  const char *flag, *key;
} overrides[] = {
  {"--epochs", "epochs"}, {"--seed", "seed"}, {"--batch-size", "batch_size"},
  {"--lr", "optimizer.lr"}, {"--max-batches", "max_batches"}, {"--data", "data"},
};

/* Handles a flag that takes a value; returns 1 if a was one. */
static int value_flag(Args *A, Model *m, const char *a, const char *v, char *err,
                      size_t errlen) {
  const char **dst = !strcmp(a, "--emit") ? &A->emit
                   : !strcmp(a, "--emit-model") ? &A->emit_model
                   : !strcmp(a, "--emit-inference") ? &A->emit_inference
                   : !strcmp(a, "--save-weights") ? &A->save
                   : !strcmp(a, "--load-weights") ? &A->load : NULL;
  if (dst) {
    *dst = v;
    return 1;
  }
  if (!strcmp(a, "--backend")) {
    for (int b = 0; b < NBACKENDS; b++)
      if (!strcmp(v, backend_names[b]))
        return A->backend = b, 1;
    snprintf(err, errlen, "--backend: error: unknown backend '%s'; expected tcc or gcc", v);
    die_input(err);
  }
  for (size_t i = 0; i < sizeof overrides / sizeof overrides[0]; i++)
    if (!strcmp(a, overrides[i].flag)) {
      int rc = fe_override(m, a, overrides[i].key, v, err, errlen);
      if (rc)
        die_load(rc, err);
      return 1;
    }
  return 0;
}

/* Handles a flag without a value; returns 1 if a was one. */
static int bool_flag(Args *A, const char *a) {
  int *dst = !strcmp(a, "--run") ? &A->run
           : !strcmp(a, "--dump-ir") ? &A->dump_ir
           : !strcmp(a, "--json") ? &A->json
           : !strcmp(a, "--health") ? &A->health
           : !strcmp(a, "--no-shuffle") ? &A->no_shuffle
           : !strcmp(a, "--fma") ? &A->fma
           : !strcmp(a, "--strict") ? &A->strict
           : !strcmp(a, "--dump-study") ? &A->dump_study : NULL;
  if (dst)
    *dst = 1;
  return dst != NULL;
}

/* Finds the model file among the arguments (flags apply after it loads). */
static const char *find_model(int argc, char **argv) {
  const char *model = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage, stdout);
      exit(0);
    }
    if (!strcmp(a, "--version")) {
      printf("mlpc %s\n", MLPC_VERSION);
      exit(0);
    }
    if (a[0] == '-' && a[1] == '-') {
      i += !bool_flag(&(Args){0}, a); /* skip a value flag's value */
      continue;
    }
    if (model) {
      fprintf(stderr, "mlpc: error: more than one model file: '%s' and '%s'\n", model, a);
      exit(2);
    }
    model = a;
  }
  if (!model) {
    fputs(usage, stderr);
    exit(2);
  }
  return model;
}

/* Parses the command line into A, with the model's overrides applied to m. */
static void parse_args(int argc, char **argv, Args *A, Model *m) {
  char err[1024];
  A->model = find_model(argc, argv);
  A->backend = -1;
  int rc = fe_load(A->model, m, err, sizeof err);
  if (rc)
    die_load(rc, err);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a == A->model || bool_flag(A, a))
      continue;
    if (a[0] == '-' && a[1] == '-' && i + 1 < argc && value_flag(A, m, a, argv[i + 1], err,
                                                                sizeof err)) {
      i++;
      continue;
    }
    snprintf(err, sizeof err, "error: unknown option or missing value: '%s' (see mlpc --help)", a);
    die_input(err);
  }
  if (A->dump_study)
    die_input("--dump-study: error: for study files (docs/study-format.md); a model's "
              "code is shown by --dump-ir and --emit-model");
  if (A->fma && A->strict)
    die_input("error: --fma and --strict both given: a run has one arithmetic (fma, the "
              "default, or strict)");
  if (!A->run && !A->emit && !A->emit_model && !A->emit_inference && !A->dump_ir)
    die_input("error: nothing to do: give --run, --emit FILE.c, --emit-model FILE.c, "
              "--emit-inference FILE.c or --dump-ir");
  if (A->emit_inference && !A->load)
    die_input("--emit-inference: error: needs the trained weights: --load-weights "
              "W.safetensors");
  size_t n = A->emit_inference ? strlen(A->emit_inference) : 0;
  if (A->emit_inference && (n < 3 || strcmp(A->emit_inference + n - 2, ".c")))
    die_input("--emit-inference: error: the file name must end in .c (its header goes "
              "next to it, as .h)");
  if (A->emit_inference && strpbrk(A->emit_inference, "\"\\\n"))
    die_input("--emit-inference: error: the file name cannot hold '\"', '\\' or a "
              "newline (the source #includes its header by name)");
}

/* Writes text to path whole (rt_write_file), or dies. */
static void write_text(const char *path, const Buf *b) {
  char err[4400];
  if (rt_write_text(path, b->buf, b->len, err, sizeof err))
    die(err);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Compiles the model with the chosen backend, saying so. */
static Jit *compile(const Ir *ir, int backend, FILE *info) {
  char err[2048];
  Buf src = {0};
  double t0 = now();
  check_emitted(emit_unit(ir, backend, &src));
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src.buf, ir->m->dtype, err, sizeof err)
                                  : jit_gcc(src.buf, "out/cache", err, sizeof err);
  free(src.buf);
  if (!j)
    die(err);
  const char *arith = arith_names[ir->fma];
  if (backend == BACKEND_GCC) {
    fprintf(info, "backend gcc (");
    for (const char *const *f = jit_gcc_flags + 1; *f && strcmp(*f, "-fPIC"); f++)
      fprintf(info, "%s%s", f == jit_gcc_flags + 1 ? "" : " ", *f); /* the optimisation flags */
    fprintf(info, "), %s: %s in %.3f s\n", arith,
            jit_cached(j) ? "cached object loaded" : "compiled", now() - t0);
  } else
    fprintf(info, "backend tcc, %s: compiled in memory in %.3f s\n", arith, now() - t0);
  return j;
}

/* Writes FILE.c and FILE.h, inference for the weights of --load-weights:
   compiled with tcc only for its tensor table, to load them into. */
static void emit_inference_files(const Args *A, const Ir *ir) {
  char err[2048], hpath[4096];
  Buf src = {0}, c = {0}, h = {0};
  check_emitted(emit_unit(ir, BACKEND_TCC, &src));
  Jit *j = jit_tcc(src.buf, ir->m->dtype, err, sizeof err);
  free(src.buf);
  if (!j)
    die(err);
  const RtNet *net = jit_net(j);
  if (rt_load_weights(net, A->load, err, sizeof err))
    die_input(err);
  if (strlen(A->emit_inference) >= sizeof hpath)
    die_input("--emit-inference: error: the file name is too long");
  snprintf(hpath, sizeof hpath, "%.*s.h", (int)strlen(A->emit_inference) - 2,
           A->emit_inference);
  const char *hname = strrchr(hpath, '/') ? strrchr(hpath, '/') + 1 : hpath;
  char msg[2200];
  if (emit_inference(ir, net, hname, &c, &h, err, sizeof err)) {
    check_emitted(c.oom || h.oom);
    snprintf(msg, sizeof msg, "%s: error: %s", A->load, err);
    die_input(msg);
  }
  write_text(hpath, &h);
  write_text(A->emit_inference, &c);
  free(c.buf);
  free(h.buf);
  jit_free(j);
}

/* Prints what is about to be trained. */
static void describe(const Model *m, FILE *info) {
  fprintf(info, "mlpc %s: %s: %d", MLPC_VERSION, m->name, m->input);
  for (int k = 0; k < m->nhidden; k++)
    fprintf(info, "-%d", m->hidden[k]);
  fprintf(info, "-%d, norm %s, %s, init %s, %s lr %g, batch %d, %s, seed %llu\n",
          m->output, norm_names[m->norm.type], act_names[m->act.type], init_names[m->init],
          opt_names[m->opt.type], m->opt.lr, m->batch_size, dtype_names[m->dtype],
          (unsigned long long)m->seed);
}

/* Compiles, initialises (or loads), trains and saves; the exit status. */
static int run(const Args *A, const Ir *ir) {
  const Model *m = ir->m;
  FILE *info = A->json ? stderr : stdout;
  int backend = A->backend >= 0 ? A->backend : jit_default_backend();
  describe(m, info);
  jit_note_fma(ir->fma);
  Jit *j = compile(ir, backend, info);
  const RtNet *net = jit_net(j);
  char err[2048], dir[4096];
  rt_init(net, m->seed);
  if (A->load && rt_load_weights(net, A->load, err, sizeof err))
    die_input(err);
  RtOptions o = {.epochs = m->epochs, .seed = m->seed, .max_batches = m->max_batches,
                 .shuffle = !A->no_shuffle, .json = A->json,
                 .data = rt_data_dir(m->data, dir, sizeof dir), .health = A->health};
  int status = rt_train(net, &o);
  if (status == 0 && A->save && rt_save_weights(net, A->save, err, sizeof err))
    die(err);
  jit_free(j);
  return status;
}

int main(int argc, char **argv) {
  static Model m;
  static Ir ir;
  Args A = {0};
  char err[2048];
#ifdef MLPC_MPI
  int status;
  if (st_mpi_start(&argc, &argv, &status))
    return status;  /* an MPI rank other than 0: it ran what rank 0 sent */
#endif
  const char *file = find_model(argc, argv);
  if (st_is_study(file))
    return st_main(file, argc, argv);  /* study/study.c: many runs */
  if (st_mpi_ranks())
    die_input("error: under mpirun, mlpc runs studies only (docs/cluster.md)");
  parse_args(argc, argv, &A, &m);
  ir_lower(&m, &ir);
  ir.fma = A.strict ? ARITH_STRICT : ARITH_FMA;
  if (emit_check_size(&ir, err, sizeof err))
    die_input(err);
  if (A.dump_ir)
    ir_dump(&ir, stdout);
  if (A.emit_model || A.emit) {
    Buf b = {0};
    if (A.emit_model)
      check_emitted(emit_model(&ir, &b)), write_text(A.emit_model, &b);
    b.len = 0;
    if (A.emit)
      check_emitted(emit_trainer(&ir, &b)), write_text(A.emit, &b);
    free(b.buf);
  }
  if (A.emit_inference)
    emit_inference_files(&A, &ir);
  return A.run ? run(&A, &ir) : 0;
}
