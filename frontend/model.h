/*
 * model.h — the checked model description: what the frontend produces
 * from a model file and what the code generator consumes.
 *
 * Each list of kinds is defined once, as an X-macro; the enum, the names
 * the frontend accepts and the emitter's dispatch are all derived from it.
 */
#ifndef MLPC_MODEL_H
#define MLPC_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "../rt/acts.h"
#include "../rt/net.h"

#define MAX_HIDDEN 16   /* hidden layers at most                      */
#define MAX_LAYERS 64   /* entries of "layers" at most                */
#define MAX_WIDTH  65536 /* features per layer at most                */
#define MAX_CLASSES 256  /* output classes at most: labels are bytes  */
#define MAX_PATH_LEN 4096

/* Normalisations: X(enum, name) */
#define NORMS(X)                 \
  X(NORM_NONE,  "none")          \
  X(NORM_BATCH, "batchnorm")     \
  X(NORM_LAYER, "layernorm")

/* Activations: ACTS(X) in rt/acts.h, X(enum, name, default
   parameter or 0, formulas...) */

/* The keys an entry of "layers" may take besides "type" (frontend/load.c's
   layer_fields checks each, by these names): X(enum, key) */
#define LAYER_KEYS(X)                                                          \
  X(LKEY_OUT, "out") X(LKEY_OUT_CHANNELS, "out_channels")                      \
  X(LKEY_KERNEL_SIZE, "kernel_size") X(LKEY_STRIDE, "stride")                  \
  X(LKEY_PADDING, "padding") X(LKEY_BIAS, "bias") X(LKEY_INIT, "init")         \
  X(LKEY_EPS, "eps") X(LKEY_MOMENTUM, "momentum") X(LKEY_P, "p")               \
  X(LKEY_SLOPE, "slope") X(LKEY_ALPHA, "alpha")
#define LKEY(k) (1u << LKEY_##k)

/* The kinds of layer a "layers" list holds, besides the activations
   (each activation is a layer kind of its own, by its name), once for
   the whole compiler: the frontend's kinds (LK_*), the IR's (mlpc.h's
   L_*, in the same order), the names, the code generator's units
   (codegen/UNIT.c's unit_UNIT) and the keys each takes all come from
   this list. X(KIND, name, unit, keys, defaults...):
     keys      the LKEY(...) bits of the keys it takes besides "type";
     defaults  its Spec's designated initialisers: PyTorch's defaults of
               what a model file may leave out (0 until known when the
               file must give it). */
#define LAYER_KINDS(X)                                                           \
  X(LINEAR, "linear", linear, LKEY(OUT) | LKEY(BIAS) | LKEY(INIT),              \
    .bias = 1, .init = -1)                                                       \
  X(BATCHNORM, "batchnorm", batchnorm, LKEY(EPS) | LKEY(MOMENTUM),              \
    .norm = {NORM_BATCH, 1e-5, 0.1, 0})                                          \
  X(LAYERNORM, "layernorm", layernorm, LKEY(EPS),                               \
    .norm = {NORM_LAYER, 1e-5, 0.1, 0})                                          \
  X(DROPOUT, "dropout", dropout, LKEY(P), .p = 0.5)                              \
  X(CONV2D, "conv2d", conv2d,                                                    \
    LKEY(OUT_CHANNELS) | LKEY(KERNEL_SIZE) | LKEY(STRIDE) | LKEY(PADDING) |      \
    LKEY(BIAS) | LKEY(INIT), .bias = 1, .init = -1, .stride = {1, 1})            \
  X(MAXPOOL2D, "maxpool2d", pool, LKEY(KERNEL_SIZE) | LKEY(STRIDE), )           \
  X(AVGPOOL2D, "avgpool2d", pool, LKEY(KERNEL_SIZE) | LKEY(STRIDE), )           \
  X(BATCHNORM2D, "batchnorm2d", batchnorm, LKEY(EPS) | LKEY(MOMENTUM),          \
    .norm = {NORM_BATCH, 1e-5, 0.1, 0})                                          \
  X(FLATTEN, "flatten", flatten, 0, )

/* Optimizers: X(enum, name) */
#define OPTS(X)                \
  X(OPT_SGD,     "sgd")        \
  X(OPT_RMSPROP, "rmsprop")    \
  X(OPT_ADAM,    "adam")       \
  X(OPT_ADAMW,   "adamw")

/* Floating-point types: X(enum, name, C type) */
#define DTYPES(X)                  \
  X(DT_F32, "float32", "float")    \
  X(DT_F64, "float64", "double")

/* The enum of an X-macro list's rows, first arguments in order:
   enum { LIST(ENUM1_) NLIST }; (mlpc.h, study/study.h use it too). */
#define ENUM1_(e, ...) e,
enum { NORMS(ENUM1_) NNORMS };
enum { ACTS(ENUM1_) NACTS };
/* Layer kinds: LAYER_KINDS, then LK_ACT + ACT_* for each activation. */
#define LK_ENUM_(k, ...) LK_##k,
enum { LAYER_KINDS(LK_ENUM_) LK_ACT, NLAYER_KINDS = LK_ACT + NACTS };
#undef LK_ENUM_
enum { LAYER_KEYS(ENUM1_) NLAYER_KEYS };
enum { OPTS(ENUM1_) NOPTS };
enum { DTYPES(ENUM1_) NDTYPES };

extern const char *const norm_names[NNORMS];
extern const char *const act_names[NACTS];
/* Each activation's default parameter (leaky_relu's slope, elu's alpha);
   0 for one that has none. */
extern const double act_default_params[NACTS];
extern const char *const layer_kind_names[NLAYER_KINDS]; /* then act_names */
extern const char *const layer_key_names[NLAYER_KEYS];
extern const char *const opt_names[NOPTS];
extern const char *const dtype_names[NDTYPES];
extern const char *const init_names[RT_INIT_NSCHEMES];
extern const char *const rng_names[RT_NRNGS];
extern const char *const sched_names[RT_NSCHEDULES];
extern const char *const anneal_names[RT_NANNEALS];

typedef struct {
  int type;          /* NORM_*                                            */
  double eps;        /* 1e-5                                              */
  double momentum;   /* 0.1; BatchNorm only                               */
  int cumulative;    /* momentum null: cumulative average                 */
} Norm;

typedef struct {
  int type;          /* ACT_*                                             */
  double param;      /* leaky_relu's slope, elu's alpha                   */
} Act;

typedef struct {
  int type;          /* OPT_*                                             */
  double lr;
  double momentum;   /* sgd, rmsprop                                      */
  double dampening;  /* sgd                                               */
  int nesterov;      /* sgd                                               */
  double weight_decay;
  double alpha;      /* rmsprop                                           */
  double eps;        /* rmsprop, adam                                     */
  int centered;      /* rmsprop                                           */
  double beta1, beta2; /* adam                                            */
} Optim;

/* One entry of "layers", as the model file gives it (docs/model-format.md,
   "layers"); what does not apply to its kind is left at the defaults. */
typedef struct {
  int kind;          /* LK_*                                              */
  int out;           /* linear: features out; conv2d: out_channels        */
  int bias;          /* linear, conv2d: has a bias (true)                 */
  int init;          /* linear, conv2d: RT_INIT_*, or -1 for the model's  */
  int kernel[2];     /* conv2d, pools: kernel_size (height, width)        */
  int stride[2];     /* conv2d: 1; pools: kernel_size                     */
  int padding[2];    /* conv2d: 0 (zeros on each side)                    */
  Norm norm;         /* batchnorm, layernorm: eps, momentum               */
  Act act;           /* an activation: its type and parameter             */
  double p;          /* dropout: the probability of zeroing               */
} Spec;

/* The keys (LKEY bits) and defaults of each kind of LAYER_KINDS, by LK_*
   (an activation's key and default come from its row of ACTS). */
extern const unsigned layer_kind_keys[LK_ACT];
extern const Spec layer_kind_defaults[LK_ACT];

typedef struct {
  char file[MAX_PATH_LEN];  /* the model file, for messages              */
  char name[64];            /* [A-Za-z0-9_.-]+                           */
  int input, output;        /* features in (C·H·W), classes out         */
  int shape[3];             /* "input" given as [C, H, W], or 0s: flat   */
  int nlayers;              /* "layers" given: its entries; 0: the
                               shorthand hidden/norm/activation below    */
  Spec layers[MAX_LAYERS];
  int nhidden;
  int hidden[MAX_HIDDEN];
  Norm norm;
  Act act;
  int init;                 /* RT_INIT_*                                 */
  int rng;                  /* RT_RNG_*: mlpc's generator or PyTorch's   */
  Optim opt;
  int batch_size;
  int epochs;
  uint64_t seed;
  char data[MAX_PATH_LEN];  /* "mnist", "fashion-mnist" or a directory   */
  long max_batches;         /* 0: all                                    */
  int dtype;                /* DT_*                                      */
  RtRecipe recipe;          /* "schedule", "validation", "early_stopping"
                               (its lr is filled in when code is emitted) */
  double clip_grad_norm;    /* max_norm of clip_grad_norm_; 0: none      */
  double label_smoothing;   /* CrossEntropyLoss's, in training; 0: none  */
} Model;

/* frontend/load.c */
/* Reads and checks a model file. On error writes one message,
   "FILE:LINE:COL: error: ..." or "FILE: json.path: error: ...",
   to err and returns -1, or FE_NO_MEMORY when memory ran out (not the
   model's fault). */
#define FE_NO_MEMORY (-2)
int fe_load(const char *path, Model *m, char *err, size_t errlen);
/* The same, from text in memory; fname is used in messages. */
int fe_load_string(const char *text, const char *fname, Model *m,
                   char *err, size_t errlen);
/* Sets defaults for everything a model file may leave out. */
void fe_defaults(Model *m);
/* Applies one command-line override with the same checks as the model
   file: key is a model key ("epochs", "optimizer.lr", "data", ...), text
   the flag's argument; messages name the flag ("--lr: error: ..."). */
int fe_override(Model *m, const char *flag, const char *key,
                const char *text, char *err, size_t errlen);

/* frontend/layers.c: the model's layers as one list */
/* The shape of one sample between layers: images (c, h, w), or flat
   features (c, with h = w = 1). */
typedef struct {
  int c, h, w;
  int flat;
} FeShape;
/* The model's input shape. */
FeShape fe_input_shape(const Model *m);
/* The shape after layer s, whose input is in: 0, or -1 with the reason
   in why (the kind does not take such an input, or its window does not
   fit). */
int fe_layer_shape(const Spec *s, const FeShape *in, FeShape *out, char *why, size_t size);
/* Its elements: c·h·w. */
long fe_numel(const FeShape *s);
/* Where a layer of the list came from in the model file. */
typedef struct {
  int block;         /* the shorthand's block k, from 1 (fc{k}, norm{k}); 0
                        for an entry of "layers"                          */
  const char *key;   /* "layers", "hidden", "norm", "activation", "output" */
  int index;         /* its index under key, or -1                        */
} FeWhere;
/* Writes m's layers to out (MAX_LAYERS at most) and where each came from
   to where: "layers" as given, or the shorthand lowered (each hidden
   width: linear → [norm] → activation; then linear(output)). The count. */
int fe_layer_list(const Model *m, Spec *out, FeWhere *where);
/* A layer's JSON path: "layers[3]", "hidden[0]", "norm". */
void fe_where_path(const FeWhere *w, char *buf, size_t size);

/* frontend/recipe.c: the training recipe, as the rest of the pipeline
   asks about it */
/* Whether the lr changes during training (a schedule, or a warmup): then
   it is a value the runtime sets, not a constant of the code. */
int fe_scheduled(const Model *m);
/* Whether onecycle cycles the optimizer's momentum (Adam's beta1). */
int fe_cycles_momentum(const Model *m);
/* Why the value at key ("optimizer.lr") has no effect on m, whose
   schedule sets it (OneCycleLR sets the lr, and a cycled momentum replaces
   the optimizer's), or NULL when it has one. A flag or a study that
   changes such a value is refused rather than do nothing. */
const char *fe_overridden(const Model *m, const char *key);
/* Whether the optimizer keeps a momentum buffer: SGD and RMSprop with
   momentum > 0, or with a cycled momentum. */
int fe_momentum_buffer(const Model *m);
/* Whether the runtime needs the model's RtRecipe (a schedule, a
   validation split or early stopping). */
int fe_has_recipe(const Model *m);
/* The recipe in words, for the line that describes a run: ", schedule
   cosine (T_max 10, eta_min 0), warmup 100 steps, clip_grad_norm 1,
   label_smoothing 0.1, validation 5000", or "" when the model has none
   of it. */
void fe_describe_recipe(const Model *m, char *buf, size_t size);

/* frontend/real.c: d in the fewest digits that read back as d, with the
   exponent as a model file writes it: 1e6, 2.5e-7, -1e300 (not 1e+06). */
void fe_show_real(char *buf, size_t size, double d);
/* Whether the number at text (ended by a byte no number holds) is not 0
   but a double holds it only as 0 ("1e-400"). */
int fe_underflows(const char *text);
/* What such a number is told, after its text. */
#define FE_TINY "is too small for a double: it reads as 0 (the smallest is 5e-324)"
/* Refuses a number in JSON text (valid, len bytes, NUL after) that
   fe_underflows, which Jansson reads as 0: -1 with "FILE:LINE:COL:
   error: ..." in err, or 0. */
int fe_check_underflow(const char *text, size_t len, const char *file, char *err,
                       size_t errlen);

/* frontend/alloc.c: every allocation of the frontend and the code
   generator, Jansson's included, so that tests can fail each in turn. */
void *fe_malloc(size_t n);
void *fe_realloc(void *p, size_t n);
void fe_free(void *p);
/* Restarts the count of allocations; the k-th from now fails (0: none). */
void fe_alloc_fail_at(long k);
/* Allocations asked for since fe_alloc_fail_at; blocks held now. */
long fe_alloc_calls(void);
long fe_alloc_live(void);
/* Routes Jansson's allocations through fe_malloc; one that fails ends
   the process with "out of memory" (exit 1). */
void fe_alloc_json(void);

#endif
