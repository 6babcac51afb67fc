/*
 * main.c — the driver. The whole pipeline is here, one stage a line:
 *
 *   load (frontend/load.c) → check (the same) → lower (codegen/ir.c)
 *   → emit (codegen/emit.c) → compile (backend/jit.c: tcc or gcc)
 *   → run (rt/train.c)
 *
 * Exit status: 0 success, 2 bad input (model file, flags, data), 1 the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include "cli.h"
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
  "Training recipes are model keys (docs/model-format.md, \"The training\n"
  "recipe\"), with PyTorch's semantics and names, which studies vary as any:\n"
  "  \"schedule\"            the lr schedule: none, step (StepLR), cosine\n"
  "                        (CosineAnnealingLR), onecycle (OneCycleLR), each\n"
  "                        with an optional linear \"warmup\" of N steps\n"
  "  \"clip_grad_norm\"      clip_grad_norm_'s max_norm, before every step\n"
  "  \"label_smoothing\"     CrossEntropyLoss's, in training (tests use plain\n"
  "                        cross-entropy)\n"
  "  \"validation\"          samples held out of the training set (5000, or\n"
  "                        a fraction: 0.1), by class, fixed by the seed;\n"
  "                        their loss and accuracy are reported every epoch\n"
  "  \"early_stopping\"      {\"patience\": N}: stop after N epochs without a\n"
  "                        better validation loss, keeping the best epoch\n"
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
  "Run options (override the model file for --run, and for the code --emit\n"
  "and, for --lr and --batch-size, --emit-model write):\n"
  "  --backend tcc|gcc|tiered\n"
  "                        the code --run trains with: tcc's, compiled in\n"
  "                        memory at once; gcc's, faster once built; or tiered\n"
  "                        (the default when gcc is on PATH, else tcc): tcc's\n"
  "                        at once, then gcc's from the first step after gcc\n"
  "                        has built it. The results are the same bits\n"
  "  --epochs N            epochs to train\n"
  "  --seed N              seed of the initial weights and the batch order\n"
  "  --batch-size N        samples per training batch\n"
  "  --lr X                the optimizer's learning rate\n"
  "  --max-batches N       train and test only N batches per epoch\n"
  "  --data DIR            mnist, fashion-mnist (under $MLPC_DATA or data/),\n"
  "                        or a directory holding the four IDX files, NumPy\n"
  "                        arrays (train_x.npy ... test_y.npy) or train.csv\n"
  "                        and test.csv (docs/data.md)\n"
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
  "  --load-weights FILE   start --run from these weights (safetensors) instead\n"
  "                        of the initialisation; the weights --emit-inference\n"
  "                        writes. Not with --emit or --emit-model, whose code\n"
  "                        holds no weights\n"
  "  --save-weights FILE   write the trained weights (safetensors); may be the\n"
  "                        file of --load-weights\n"
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
  "Each flag is given at most once, and a flag that serves none of the\n"
  "actions given is an error, as is one for the other kind of file (--jobs\n"
  "for a model, --lr for a study). No two outputs may be one file (a device\n"
  "such as /dev/null excepted), and none the model file or the weights read.\n"
  "--json, --health and --no-shuffle apply to --run; the trainer --emit\n"
  "writes takes them itself.\n"
  "\n"
  "  --help                this text\n"
  "  --version             mlpc's version\n"
  "\n"
  "Exit status: 0 success, 2 bad input (model file, flags, data, weights),\n"
  "1 other errors (such as a diverging run: a loss, weight or statistic\n"
  "that is not finite).\n";

/* What the flags (cli.h) ask of a model. */
typedef struct {
  const char *model;
  int run, dump_ir, json, no_shuffle, health;
  int fma, strict;              /* the arithmetic flags given            */
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
      i += cli_takes_value(a) && i + 1 < argc; /* skip a value flag's value */
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

/* Applies the flags that override model keys (--epochs, --lr, ...). */
static void apply_overrides(const CliArgs *c, Model *m) {
  char err[1024];
  for (int f = 0; f < CLI_NFLAGS; f++) {
    const char *key = cli_key(f);
    int rc = c->v[f] && key ? fe_override(m, cli_name(f), key, c->v[f], err, sizeof err) : 0;
    if (rc)
      die_load(rc, err);
  }
}

/* Refuses --load-weights with an action that cannot honour it. */
static void check_load(const Args *A) {
  if (A->emit_inference && !A->load)
    die_input("--emit-inference: error: needs the trained weights: --load-weights "
              "W.safetensors");
  if (A->load && A->emit)
    die_input("--load-weights: error: does not apply to --emit: its trainer starts from "
              "the model's initialisation, not from a weights file (write it in a "
              "command of its own)");
  if (A->load && A->emit_model)
    die_input("--load-weights: error: does not apply to --emit-model: the model's code "
              "holds no weights (--emit-inference writes code with weights)");
}

/* Refuses an --emit-inference name its header cannot go beside. */
static void check_inference_name(const char *c) {
  size_t n = c ? strlen(c) : 0;
  if (c && (n < 3 || strcmp(c + n - 2, ".c")))
    die_input("--emit-inference: error: the file name must end in .c (its header goes "
              "next to it, as .h)");
  if (c && strpbrk(c, "\"\\\n"))
    die_input("--emit-inference: error: the file name cannot hold '\"', '\\' or a "
              "newline (the source #includes its header by name)");
}

/* Whether path is an existing device or pipe, which takes each output
   in turn (rt_write_file writes it in place). */
static int stream(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

/* Refuses two outputs to one file, or an output over the model file or
   the weights read (--save-weights may replace them): --emit-inference's
   header counts, and files are compared as files (cli_same_file), not
   as names. */
static void check_outputs(const Args *A) {
  char hpath[PATH_MAX + 2], msg[3 * PATH_MAX];
  const char *flag[] = {"--emit", "--emit-model", "--emit-inference", "--emit-inference",
                        "--save-weights"};
  const char *what[] = {"--emit's output", "--emit-model's output",
                        "--emit-inference's output", "--emit-inference's header",
                        "--save-weights' output", "the model file",
                        "the weights file of --load-weights"};
  const char *path[] = {A->emit, A->emit_model, A->emit_inference, NULL, A->save, A->model,
                        A->load};
  if (A->emit_inference) {
    snprintf(hpath, sizeof hpath, "%.*s.h", (int)strlen(A->emit_inference) - 2,
             A->emit_inference);
    path[3] = hpath;
  }
  for (int i = 0; i < 5; i++)  /* each output, against all after it */
    for (int j = i + 1; j < 7; j++)
      if (path[i] && path[j] && !(i == 4 && j == 6) && cli_same_file(path[i], path[j]) &&
          !stream(path[i])) {
        snprintf(msg, sizeof msg, "%s: error: %s'%s' is the same file as %s ('%s'); %s",
                 flag[i], i == 3 ? "its header " : "", path[i], what[j], path[j],
                 j < 5 ? "give each output a file of its own" : "it would be overwritten");
        die_input(msg);
      }
}

/* Parses the command line into A, with the model's overrides applied to m. */
static void parse_args(int argc, char **argv, Args *A, Model *m) {
  char err[1024];
  CliArgs c;
  A->model = find_model(argc, argv);
  if (cli_parse(argc, argv, A->model, CLI_MODEL, &c, err, sizeof err))
    die_input(err);
  int rc = fe_load(A->model, m, err, sizeof err);
  if (rc)
    die_load(rc, err);
  apply_overrides(&c, m);
  const char *const *v = c.v;
  *A = (Args){.model = A->model, .run = !!v[FL_RUN], .dump_ir = !!v[FL_DUMP_IR],
              .json = !!v[FL_JSON], .no_shuffle = !!v[FL_NO_SHUFFLE], .health = !!v[FL_HEALTH],
              .fma = !!v[FL_FMA], .strict = !!v[FL_STRICT], .backend = cli_backend(&c),
              .emit = v[FL_EMIT], .emit_model = v[FL_EMIT_MODEL],
              .emit_inference = v[FL_EMIT_INFERENCE], .save = v[FL_SAVE_WEIGHTS],
              .load = v[FL_LOAD_WEIGHTS]};
  if (A->fma && A->strict)
    die_input("error: --fma and --strict both given: a run has one arithmetic (fma, the "
              "default, or strict)");
  check_load(A);
  check_inference_name(A->emit_inference);
  check_outputs(A);
}

/* Writes text to path whole (rt_write_file), or dies. */
static void write_text(const char *path, const Buf *b) {
  char err[4400];
  if (rt_write_text(path, b->buf, b->len, err, sizeof err))
    die(err);
}

/* Writes gcc's optimisation flags: "(-O3 -march=native ...)". */
static void gcc_flags(FILE *info) {
  fprintf(info, "(");
  for (const char *const *f = jit_gcc_flags + 1; *f && strcmp(*f, "-fPIC"); f++)
    fprintf(info, "%s%s", f == jit_gcc_flags + 1 ? "" : " ", *f);
  fprintf(info, ")");
}

/* Compiles the model with the chosen backend, tcc or gcc, saying so. */
static Jit *compile(const Ir *ir, int backend, FILE *info) {
  char err[2048];
  Buf src = {0};
  double t0 = rt_now();
  check_emitted(emit_unit(ir, backend, &src));
  Jit *j = backend == BACKEND_TCC ? jit_tcc(src.buf, err, sizeof err)
                                  : jit_gcc(src.buf, "out/cache", err, sizeof err);
  free(src.buf);
  if (!j)
    die(err);
  const char *arith = arith_names[ir->fma];
  if (backend == BACKEND_GCC) {
    fprintf(info, "backend gcc "), gcc_flags(info);
    fprintf(info, ", %s: %s in %.3f s\n", arith,
            jit_cached(j) ? "cached object loaded" : "compiled", rt_now() - t0);
  } else
    fprintf(info, "backend tcc, %s: compiled in memory in %.3f s\n", arith, rt_now() - t0);
  return j;
}

/* Starts a tiered run (backend/tier.c), saying which code it starts on. */
static Tier *start_tiered(const Ir *ir, FILE *info) {
  char err[2048];
  Buf src = {0};
  double t0 = rt_now();
  check_emitted(emit_unit(ir, BACKEND_TIERED, &src));
  Tier *t = tier_start(src.buf, "out/cache", err, sizeof err);
  free(src.buf);
  if (!t)
    die(err);
  fprintf(info, "backend tiered, %s: ", arith_names[ir->fma]);
  if (tier_ran(t, NULL) == TIER_RAN_GCC)
    fprintf(info, "gcc's cached object "), gcc_flags(info), fprintf(info, ", loaded");
  else
    fprintf(info, "tcc's code, compiled in memory");
  fprintf(info, " in %.3f s", rt_now() - t0);
  if (tier_ran(t, NULL) != TIER_RAN_GCC)
    fprintf(info, "; gcc's "), gcc_flags(info), fprintf(info, " once gcc has built it");
  fprintf(info, "\n");
  return t;
}

/* Writes FILE.c and FILE.h, inference for the weights of --load-weights:
   compiled with tcc only for its tensor table, to load them into. */
static void emit_inference_files(const Args *A, const Ir *ir) {
  char err[2048], hpath[4096];
  Buf src = {0}, c = {0}, h = {0};
  check_emitted(emit_unit(ir, BACKEND_TCC, &src));
  Jit *j = jit_tcc(src.buf, err, sizeof err);
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
static void describe(const Ir *ir, FILE *info) {
  const Model *m = ir->m;
  char layers[1024], lr[32], recipe[512];
  ir_describe(ir, layers, sizeof layers);
  fe_show_real(lr, sizeof lr, m->opt.lr);  /* exactly, as a model file writes it */
  fe_describe_recipe(m, recipe, sizeof recipe);
  fprintf(info, "mlpc %s: %s: %s, init %s, %s lr %s%s, batch %d, %s, seed %llu\n", MLPC_VERSION,
          m->name, layers, init_names[m->init], opt_names[m->opt.type], lr, recipe,
          m->batch_size, dtype_names[m->dtype], (unsigned long long)m->seed);
}

/* Compiles, initialises (or loads), trains and saves; the exit status. */
static int run(const Args *A, const Ir *ir) {
  const Model *m = ir->m;
  FILE *info = A->json ? stderr : stdout;
  int backend = A->backend >= 0 ? A->backend : jit_default_backend();
  describe(ir, info);
  jit_note_fma(ir->fma);
  Tier *t = backend == BACKEND_TIERED ? start_tiered(ir, info) : NULL;
  Jit *j = t ? NULL : compile(ir, backend, info);
  const RtNet *net = t ? tier_net(t) : jit_net(j);
  char err[2048], dir[4096];
  rt_init(net, m->seed);
  if (A->load && rt_load_weights(net, A->load, err, sizeof err))
    die_input(err);
  RtOptions o = {.epochs = m->epochs, .seed = m->seed, .max_batches = m->max_batches,
                 .shuffle = !A->no_shuffle, .json = A->json,
                 .data = rt_data_dir(m->data, dir, sizeof dir), .health = A->health,
                 .next_net = t ? tier_next : NULL, .describe = t ? tier_print : NULL,
                 .tier = t};
  int status = rt_train(net, &o);
  net = t ? tier_net(t) : net;  /* the code the run ended on */
  if (status == 0 && A->save && rt_save_weights(net, A->save, err, sizeof err))
    die(err);
  tier_free(t);
  jit_free(j);
  return status;
}

int main(int argc, char **argv) {
  static Model m;
  static Ir ir;
  Args A = {0};
  char err[2048];
  rt_check_stdout();
#ifdef MLPC_MPI
  int status;
  if (st_mpi_start(&argc, &argv, &status))
    return status;  /* an MPI rank other than 0: it ran what rank 0 sent */
#endif
  const char *file = find_model(argc, argv);
  if (st_is_study(file))
    return st_main(file, argc, argv);  /* study/driver.c: many runs */
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
