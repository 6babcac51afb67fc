/*
 * mlpc.h — the compiler's interfaces, one section per stage of the
 * pipeline: load → check → lower → emit → compile (tcc or gcc) → run.
 * main.c strings them together.
 */
#ifndef MLPC_H
#define MLPC_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include "frontend/model.h"
#include "rt/rt.h"

/* ---- codegen/ir.c: the model lowered to a list of layers ---- */

/* The IR's layer kinds: frontend/model.h's LAYER_KINDS (L_LINEAR ...,
   each the LK_* of the same number), then every activation as one kind,
   L_ACT, and the loss. Each is a unit of the code generator (codegen/gen.h),
   the activations one unit for all. */
#define L_ENUM_(k, ...) L_##k,
enum { LAYER_KINDS(L_ENUM_) L_ACT, L_LOSS, NLAYERS };
#undef L_ENUM_
/* Their names, for dumps: "linear" ..., "act", "cross_entropy". */
extern const char *const ir_kind_names[NLAYERS];

/* One layer: its kind, shapes and settings, its names, and where it came
   from. Emitters read the layer, and the model only for what is global
   (dtype, optimizer, batch size). */
typedef struct {
  int kind;          /* L_*                                              */
  int index;         /* the shorthand's block k, from 1 (fc{k}, norm{k});
                        in a list, its position (0, 1, ...)               */
  int in, out;       /* features in and out (of one sample: C·H·W)       */
  FeShape x, y;      /* the shapes of its input and output               */
  Spec spec;         /* its settings, as the model file gave them        */
  int init;          /* RT_INIT_* of its parameters (the layer's or the
                        model's)                                          */
  int health;        /* an activation: its row of health figures, from 0;
                        -1 for the other kinds                            */
  char path[24];     /* where it came from: "layers[3]", "hidden[0]" ... */
  char cname[24];    /* its C prefix: fc1, norm1, relu1; linear0, relu2  */
  char tname[24];    /* its PyTorch prefix: fc1, norm1; 0, 2 (as
                        nn.Sequential names the modules)                 */
  char hname[24];    /* an activation: its health figures' name, "hidden1"
                        or "layers[2]"                                    */
} Layer;

/* The dense kernels' arithmetics (rt/kernels.h), by Ir.fma: X(enum,
   name). fma, the default, adds each term with fma(a, b, acc), rounded
   once; strict (--strict) as acc + a·b, rounded twice. The two differ in
   the last bits; within either, every backend gives the same bits. */
#define ARITHMETICS(X)          \
  X(ARITH_STRICT, "strict")     \
  X(ARITH_FMA,    "fma")

enum { ARITHMETICS(ENUM1_) NARITHMETICS };
extern const char *const arith_names[NARITHMETICS];

typedef struct {
  const Model *m;
  int nlayers;
  Layer layers[MAX_LAYERS + 1]; /* the model's, then the loss          */
  int sequential;    /* the model gave "layers" (nn.Sequential's names)  */
  int nhealth;       /* activation layers, which have health figures    */
  int fma;           /* the arithmetic: ARITH_FMA (1, ir_lower's default)
                        or ARITH_STRICT (0)                              */
} Ir;

/* Lowers a checked model to its layers (frontend/layers.c's list, shapes
   and names), in the fma arithmetic. */
void ir_lower(const Model *m, Ir *ir);
/* The network in one line: "784-128-10, norm batchnorm, relu" for the
   shorthand, "784-256-64-10: linear, batchnorm, relu, dropout(0.2), ..."
   for a layer list. */
void ir_describe(const Ir *ir, char *buf, size_t size);
/* Writes the layer list, one per line (--dump-ir). */
void ir_dump(const Ir *ir, FILE *out);
/* A batch of samples of shape s, as comments and dumps write it:
   "(B, 784)", "(B, 16, 28, 28)" (a ring of 4 buffers). */
const char *ir_shape(const FeShape *s);

/* ---- codegen/emit.c: C source ---- */

/* A growing text buffer; emitf (vemitf, with a va_list) appends
   printf-style. Out of memory, a buffer keeps the text it has, sets oom
   and ignores every later emitf, so emitters need no checks of their
   own: the emit_* functions below return -1 at the end instead. Its
   memory comes from fe_realloc. */
typedef struct {
  char *buf;
  size_t len, cap;
  int oom;
} Buf;

void emitf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vemitf(Buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* The model's own code: sizes, tensors, per-layer kernels, the training
   step and evaluation (byte-identical for the same model). 0, or -1 when
   memory ran out (b->oom). */
int emit_model(const Ir *ir, Buf *b);
/* A whole translation unit for a backend (BACKEND_*, or BACKEND_TRAINER
   for --emit's trainer): headers, kernels, model. */
int emit_unit(const Ir *ir, int backend, Buf *b);
/* Whether the unit inlines the dense kernels, each call with its sizes
   as constants: a trainer's always (and every other kernel too); gcc's
   when the model's dense layers take at least EMIT_INLINE_WORK
   multiply-adds a sample (below that, gcc's time is not paid back:
   docs/performance.md); tcc's never. What a unit does not inline, it
   calls: mlpc's own copies (backend/kernels.c). */
int emit_inlines(const Ir *ir, int backend);
#define EMIT_INLINE_WORK 16384
/* A standalone trainer: the unit plus the runtime and main(). */
int emit_trainer(const Ir *ir, Buf *b);
/* A model name fit for a comment: [A-Za-z0-9_.-] kept, any other byte
   '_' (a static buffer). */
const char *emit_comment_name(const char *name);
/* The bytes of static storage (tensors, activations) the code declares. */
size_t emit_static_bytes(const Ir *ir);
/* Static data must lie within 2 GiB of the code on x86-64 (the small
   code model of gcc and tcc), so the arrays may take this much at most. */
#define EMIT_MAX_STATIC (((size_t)1 << 31) - ((size_t)1 << 26))
/* Refuses, with a message in err, a model over EMIT_MAX_STATIC; 0 or -1. */
int emit_check_size(const Ir *ir, char *err, size_t errlen);
/* rt/rmath.h's text: the math whose bits are mlpc's own. */
const char *emit_rmath(void);
/* Whether a layer is a BatchNorm that a one-sample batch gives one value
   a channel, so that such a training batch is skipped: BatchNorm1d,
   BatchNorm2d on 1 x 1 (RtNet.has_batchnorm). */
int emit_has_batchnorm(const Ir *ir);

/* ---- codegen/infer.c: standalone inference C ---- */

/* Inference-only C for the weights in net (a compiled ir): eval mode,
   BatchNorm folded into the linear layer before it. Writes the source to
   c and its header to h; hname is the header's name, for the #include.
   Returns -1 with err set when a weight is not finite, or when memory
   ran out (c->oom or h->oom). */
int emit_inference(const Ir *ir, const RtNet *net, const char *hname, Buf *c, Buf *h,
                   char *err, size_t errlen);

/* ---- backend/weights.c: safetensors weight files ---- */

/* Writes every parameter and buffer of net (not gradients or optimizer
   state) under PyTorch's names. */
int rt_save_weights(const RtNet *net, const char *path, char *err, size_t errlen);
/* Reads a file written by rt_save_weights or by PyTorch; every name, dtype
   and shape must fit the model. */
int rt_load_weights(const RtNet *net, const char *path, char *err, size_t errlen);

/* ---- backend/file.c: output files written whole ---- */

/* Writes into f; 0 or an errno value. */
typedef int (*RtWriteFn)(FILE *f, const void *ctx);
/* Writes path with body(f, ctx). A regular file is written under a
   temporary name beside it and renamed over path once whole, so that a
   failure (a full disk) leaves what was there and no temporary file; a
   device or a pipe is written in place. 0, or -1 with "PATH: cannot
   write: REASON" in err. */
int rt_write_file(const char *path, RtWriteFn body, const void *ctx, char *err,
                  size_t errlen);
/* rt_write_file with len bytes of data as the body. */
int rt_write_text(const char *path, const void *data, size_t len, char *err, size_t errlen);
/* Checks standard output at exit, whichever way the process ends (exit or
   a return from main; not _exit, as forked workers end): when a write or
   the last flush failed, "cannot write the standard output" on stderr and
   status 1, so that no output is lost without a word. */
void rt_check_stdout(void);

/* ---- backend/jit.c: the backends ---- */

/* tiered: tcc's code at once, gcc's when it is ready (backend/tier.c),
   the default when gcc is on PATH. */
#define BACKENDS(X)            \
  X(BACKEND_TCC,    "tcc")     \
  X(BACKEND_GCC,    "gcc")     \
  X(BACKEND_TIERED, "tiered")

enum { BACKENDS(ENUM1_) NBACKENDS };
extern const char *const backend_names[NBACKENDS];
/* emit_unit's for a standalone trainer (--emit), not a --backend */
enum { BACKEND_TRAINER = NBACKENDS };

typedef struct Jit Jit;

/* backend/kernels.c: the kernels compiled into mlpc (rt/kernels.h's
   RT_KERNELS and activations), which generated code calls unless gcc
   inlined them (emit_unit). */
typedef void (*KernelFn)(void);
typedef struct {
  const char *name;  /* "mm_xw"                                         */
  KernelFn fn;
} RtKernel;
/* One table per precision and arithmetic, each ended by a null name. */
extern const RtKernel rt_kernels_f32[], rt_kernels_f64[];
extern const RtKernel rt_kernels_f32_fma[], rt_kernels_f64_fma[];

/* Calls a compiled unit's mlpc_bind (bind, its address), which sets its
   pointers to the kernels in mlpc's tables (what jit_tcc and jit_gcc do,
   for callers with their own state); 0, or -1 with err set when bind is
   NULL or names a kernel mlpc lacks. */
int jit_bind(void *bind, char *err, size_t errlen);
/* Compiles a unit from emit_unit in memory with libtcc: a unit for tcc,
   or one for gcc (tcc's code always calls mlpc's own kernels). */
Jit *jit_tcc(const char *src, char *err, size_t errlen);
/* Compiles a unit with gcc into a shared object cached under cache_dir
   (by a hash of source and flags) and loads it. */
Jit *jit_gcc(const char *src, const char *cache_dir, char *err, size_t errlen);
/* The file where gcc wrote its messages (warnings included) on the
   object of src under cache_dir; 0, or -1 when the path does not fit. */
int jit_gcc_log(const char *src, const char *cache_dir, char *path, size_t len);
/* A gcc build running beside mlpc, for tiered execution: jit_gcc in
   steps. Its states: */
typedef struct JitBuild JitBuild;
enum { JIT_BUILDING, JIT_BUILT, JIT_FAILED };
/* How jit_build_start treats an object already in the cache: uses it,
   compiles again anyway (a damaged one), or only uses it (JIT_FAILED
   when there is none, and nothing is compiled). With JIT_BESIDE added,
   gcc runs JIT_BESIDE_NICE lower in priority, taking what the run it
   serves leaves of the cores. */
enum { JIT_USE_CACHE, JIT_FRESH, JIT_CACHED_ONLY, JIT_BESIDE = 4 };
#define JIT_BESIDE_NICE 10
/* Starts gcc on src, as jit_gcc does, without waiting for it; the build
   is JIT_BUILT at once when the object is cached. NULL with err set when
   it cannot start (the cache directory, a fork). */
JitBuild *jit_build_start(const char *src, const char *cache_dir, int mode, char *err,
                          size_t errlen);
/* Where the build is: JIT_BUILDING; JIT_BUILT, the object in the cache;
   JIT_FAILED, jit_build_error says why. With wait, once gcc has ended. */
int jit_build_poll(JitBuild *b, int wait);
/* A descriptor readable once gcc has ended, for poll(); -1 after. */
int jit_build_fd(const JitBuild *b);
const char *jit_build_error(const JitBuild *b);
/* Whether the object was in the cache before the build started. */
int jit_build_cached(const JitBuild *b);
/* Seconds from the start to gcc's end (0 when cached). */
double jit_build_seconds(const JitBuild *b);
/* The built object, loaded; NULL with err set. */
Jit *jit_build_load(JitBuild *b, char *err, size_t errlen);
/* Stops gcc if it still runs (its temporary removed) and frees b. */
void jit_build_free(JitBuild *b);
/* In a forked child of the process that started b: lets go of b's
   descriptors, which the parent alone may use (b is then only freed). */
void jit_build_forget(JitBuild *b);
/* The compiled model's table. */
const RtNet *jit_net(Jit *j);
/* Whether the last jit_gcc call found its object in the cache. */
int jit_cached(Jit *j);
void jit_free(Jit *j);
/* tiered when gcc is on PATH, else tcc. */
int jit_default_backend(void);
/* Whether this CPU has fused multiply-add instructions (always, but for
   x86 without FMA; MLPC_TEST_NO_FMA_CPU=1 pretends it has none). */
int jit_cpu_fma(void);
/* Says once on stderr, when the arithmetic is fma (ARITH_FMA) and the CPU
   has no FMA instructions, that fma runs in software and --strict is
   faster. */
void jit_note_fma(int fma);
/* The gcc flags in use (docs/backends.md). */
extern const char *const jit_gcc_flags[];

/* ---- backend/tier.c: tiered execution ---- */

/* A run's code: tcc's now, gcc's once its object is ready. */
typedef struct Tier Tier;
/* Where gcc's object is: */
enum { TIER_WAITING, TIER_READY, TIER_FAILED };
/* Asks whoever builds the object where it is (a TIER_* state); with
   wait, waits until it is ready or has failed. */
typedef int (*TierAsk)(void *ctx, int wait);
/* Starts a tiered run of the unit src (emit_unit's, for gcc): on gcc's
   object when it is cached, else on tcc's code while gcc builds it in
   cache_dir. A build that cannot start leaves the run on tcc with a
   warning. NULL with err set when tcc fails too. */
Tier *tier_start(const char *src, const char *cache_dir, char *err, size_t errlen);
/* The same for an object someone else builds into cache_dir: state says
   where it is now, ask where it is later. */
Tier *tier_follow(const char *src, const char *cache_dir, int state, TierAsk ask,
                  void *ctx, char *err, size_t errlen);
/* Before each run (tier_start and tier_follow do it): counts anew. */
void tier_run_start(Tier *t);
/* The code in use. */
const RtNet *tier_net(const Tier *t);
/* RtOptions.next_net: at a step boundary, moves the run to gcc's object
   once it is ready, the whole state copied; returns the code in use. */
const RtNet *tier_next(void *tier, const RtWhere *at);
/* Which code ran the run so far, and where gcc took over (*from, epoch 0
   if it did not). */
enum { TIER_RAN_TCC, TIER_RAN_GCC, TIER_RAN_BOTH };
int tier_ran(const Tier *t, RtWhere *from);
/* Their names: "tcc", "gcc", "tcc, then gcc". */
extern const char *const tier_ran_names[];
/* "tcc's code, then gcc's from epoch 3, step 412", and the like. */
void tier_describe(const Tier *t, char *buf, size_t len);
/* RtOptions.describe: "code: ..." as a line, or the summary's JSON
   members "code" and "gcc_from". */
void tier_print(void *tier, int json, FILE *f);
/* Whether MLPC_TEST_SWITCH_AFTER forces where runs move to gcc's code
   (and waits for its object there). */
int tier_forced(void);
/* Copies every tensor of src into dst, another compilation of the same
   model, and a schedule's lr and momentum (RtNet.hyper); 0, or -1 with
   err set when their tables differ. */
int tier_copy_state(const RtNet *dst, const RtNet *src, char *err, size_t errlen);
/* Stops a build of its own that still runs, and frees t. */
void tier_free(Tier *t);

#endif
