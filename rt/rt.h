/*
 * rt.h — the runtime: data sets, the random generator, initialisation and
 * the training loop. It depends only on libc, libm and zlib, so that its
 * sources can be pasted into a standalone trainer (see codegen/emit.c).
 */
#ifndef MLPC_RT_H
#define MLPC_RT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "net.h"

/* ---- rt/read.c: reading data files ---- */

/* What a format's header says of its file's size, for rt_read_file. */
typedef struct {
  const char *format;   /* "IDX", "NumPy": for messages                 */
  /* The file's size from its first n bytes: 0 while they are too few to
     tell, SIZE_MAX when they are not a valid header. */
  size_t (*size)(const unsigned char *buf, size_t n);
} RtSizer;

/* Reads one whole file, inflating gzip (recognised by its first two
   bytes, not its name) no further than the size sizer reads in its
   header (NULL: none); *len gets its size. A file over 4 GiB, or one that
   needs more memory than is available, is refused before it is read. */
unsigned char *rt_read_file(const char *path, const RtSizer *sizer, size_t *len,
                            char *err, size_t errlen);
/* rt_read_file, but a raw regular file is mapped into memory, read-only,
   rather than copied: *maplen gets its size, and the caller unmaps it
   (munmap); 0 when the buffer is malloc's (gzip data inflated, or a file
   that cannot be mapped), and the caller frees it. */
unsigned char *rt_map_file(const char *path, const RtSizer *sizer, size_t *len,
                           size_t *maplen, char *err, size_t errlen);
/* Writes "PATH: message" into err (if any) and returns -1. */
__attribute__((format(printf, 4, 5)))
int rt_fail(char *err, size_t errlen, const char *path, const char *fmt, ...);
/* 0 if need bytes fit in the memory available (MemAvailable, or
   $MLPC_TEST_MEM_AVAILABLE), else -1 with the figures in err. */
int rt_check_memory(size_t need, const char *path, char *err, size_t errlen);
/* *r = a * b; -1 on overflow. */
int rt_mul(size_t a, size_t b, size_t *r);

/* ---- rt/set.c: a data set, and what the data readers share ---- */

typedef struct {
  long n;                 /* samples                                      */
  int channels;           /* 1 for MNIST, any 3-d image file, flat data   */
  int rows, cols;         /* 28 x 28 for MNIST; 1 x features when flat    */
  int flat;               /* features without an image shape: a NumPy
                             array (n, features), a CSV file              */
  int dtype;              /* of images: RT_U8 pixel bytes, or the model's
                             RT_F32 or RT_F64, used as they are           */
  unsigned char *images;  /* (n, channels, rows, cols) elements: NCHW     */
  unsigned char *labels;  /* (n), each below the number of classes        */
  void *map[2];           /* the file mappings images and labels lie in
                             (rt_map_file), unmapped by rt_free_set; NULL:
                             malloc'd, freed by it                         */
  size_t maplen[2];
} RtSet;

/* Joins DIR/NAME into path; -1 when it does not fit. */
int rt_join(char *path, size_t size, const char *dir, const char *name);
/* Bytes per element of dtype: RT_U8 1, RT_F32 4, RT_F64 8. */
size_t rt_dtype_size(int dtype);
/* "uint8", "float32" or "float64", for messages. */
const char *rt_dtype_name(int dtype);
/* The first ndims of dims as "A x B x C" into buf, for messages. */
const char *rt_dims_str(const long *dims, int ndims, char *buf, size_t len);
/* Allocates s's images, n samples of features elements of dtype, and n
   labels (no mappings), and sets its count and dtype; -1 with err on
   overflow or when the memory is not there. */
int rt_set_alloc(RtSet *s, long n, long features, int dtype, const char *path, char *err,
                 size_t errlen);
/* Stores v as element i of s's images, in s's dtype (RT_F32 or RT_F64);
   0, or -1 when the value stored is not finite (v itself, or beyond
   float32's range). */
int rt_set_real(RtSet *s, size_t i, double v);
/* s with every byte outside printable ASCII written \xNN, into buf (cut
   to fit): a data file's text as a message may show it. */
const char *rt_printable(const char *s, char *buf, size_t len);
/* Frees what a loader allocated and empties the set. */
void rt_free_set(RtSet *set);

/* ---- rt/data.c: data directories, in any format ---- */

/* The formats a data directory may hold (docs/data.md). */
enum { RT_DATA_IDX, RT_DATA_NPY, RT_DATA_CSV };

/* Loads DIR's train and test sets, in the format it holds
   (rt_data_format), for a model of input features, shape (C, H, W),
   nclasses classes and dtype (RT_F32 or RT_F64, what data other than
   bytes are converted to): both sets must have one shape (channels,
   rows, cols), exactly shape when it is given and not 0s (flat data:
   any), and of input features (C·H·W) in any case. On error writes
   "PATH: what is wrong" to err, holds nothing and returns -1. */
int rt_load_data(const char *dir, int input, const int *shape, int nclasses, int dtype,
                 RtSet *tr, RtSet *te, char *err, size_t errlen);
/* Which format dir holds, by the files there: RT_DATA_IDX, RT_DATA_NPY
   or RT_DATA_CSV; -1, with err, when dir is no directory, or holds files
   of two formats or of none. */
int rt_data_format(const char *dir, char *err, size_t errlen);
/* The files rt_load_data reads from dir, into paths: their count (2 or
   4), or -1 with "PATH: what is wrong" in err. */
int rt_data_files(const char *dir, char paths[][FILENAME_MAX], char *err, size_t errlen);

/* ---- rt/idx.c: IDX data files ---- */

/* Loads DIR/PREFIX-images-idx3-ubyte (n, rows, cols), or instead
   DIR/PREFIX-images-idx4-ubyte (n, channels, rows, cols), and
   DIR/PREFIX-labels-idx1-ubyte, each raw or with .gz appended (PREFIX is
   "train" or "t10k"). Checks magic numbers, dimensions, sizes and labels
   (< nclasses). On error writes "FILE: what is wrong" to err and
   returns -1. */
int rt_load_set(const char *dir, const char *prefix, int nclasses,
                RtSet *set, char *err, size_t errlen);
/* The file rt_load_set reads for PREFIX's images (labels 0) or labels
   (labels 1), into path: DIR/PREFIX-images-idx3-ubyte or -idx4-ubyte
   (never both), or DIR/PREFIX-labels-idx1-ubyte, each raw or with .gz
   appended. Returns the dimensions its name says (3, 4 or 1), or -1 with
   "PATH: what is wrong" in err. */
int rt_data_file(const char *dir, const char *prefix, int labels, char *path, size_t size,
                 char *err, size_t errlen);
/* Parses an IDX file of want_dims (1 to 4) dimensions already in memory:
   dims gets them (1 past want_dims), *offset where the elements start. */
int rt_parse_idx(const unsigned char *buf, size_t len, int want_dims,
                 const char *path, long dims[4], size_t *offset,
                 char *err, size_t errlen);
/* An IDX file's size, from its header. */
extern const RtSizer rt_idx_sizer;

/* ---- rt/npy.c: NumPy arrays (.npy) ---- */

#define RT_NPY_MAXDIM 8    /* dimensions a header may give */

/* A .npy file's header. */
typedef struct {
  char kind;              /* 'u' unsigned, 'i' signed integer, 'f' float  */
  int size;               /* bytes per element: 1, 2, 4 or 8              */
  int big;                /* big-endian                                   */
  int ndim;               /* 0 to RT_NPY_MAXDIM                           */
  long shape[RT_NPY_MAXDIM];
  size_t offset;          /* where the elements start                     */
  size_t count;           /* elements: the product of the shape           */
} RtNpy;

/* Parses the header of a .npy file of len bytes (versions 1.0 and 2.0,
   C order, a dtype of kind u, i or f) and checks that its elements fill
   the rest of the file exactly; -1 with "PATH: what is wrong" in err. */
int rt_parse_npy(const unsigned char *buf, size_t len, const char *path, RtNpy *h,
                 char *err, size_t errlen);
/* A .npy file's size, from its header. */
extern const RtSizer rt_npy_sizer;
/* Loads DIR/PREFIX_x.npy and DIR/PREFIX_y.npy (PREFIX "train" or "test")
   for a model of nclasses classes and dtype. */
int rt_load_npy_set(const char *dir, const char *prefix, int nclasses, int dtype, RtSet *set,
                    char *err, size_t errlen);

/* ---- rt/csv.c: CSV files ---- */

/* Loads DIR/PREFIX.csv (PREFIX "train" or "test"): each line a label,
   then the features; a first line that is not numbers is a header. Its
   errors name PATH:LINE:COL. */
int rt_load_csv_set(const char *dir, const char *prefix, int nclasses, int dtype, RtSet *set,
                    char *err, size_t errlen);

/* ---- rt/rng.c: the random generator ---- */

typedef struct { uint64_t s[4]; } RtRng;

void rt_rng_seed(RtRng *r, uint64_t seed, uint64_t stream);
uint64_t rt_rng_next(RtRng *r);
double rt_rng_uniform(RtRng *r);            /* [0, 1)                    */
double rt_rng_normal(RtRng *r);             /* N(0, 1)                   */
uint64_t rt_rng_below(RtRng *r, uint64_t n); /* [0, n), unbiased         */

#define RT_FNV_OFFSET 0xcbf29ce484222325ULL
/* Folds len bytes of data into the 64-bit FNV-1a hash h (RT_FNV_OFFSET
   to begin). */
uint64_t rt_fnv(uint64_t h, const void *data, size_t len);

/* ---- rt/trng.c: PyTorch's CPU generator ("rng": "torch") ---- */

typedef struct {
  uint32_t state[624];    /* mt19937                                      */
  int left, next;
  int has_normal;         /* the second value of the last Box–Muller pair */
  double normal;
} RtTorchRng;

/* torch.manual_seed(seed). */
void rt_trng_seed(RtTorchRng *r, uint64_t seed);
uint32_t rt_trng_u32(RtTorchRng *r);
uint64_t rt_trng_u64(RtTorchRng *r);
/* tensor.uniform_(from, to) and tensor.normal_(0, std) on n elements of
   dtype RT_F32 or RT_F64, bit for bit. */
void rt_trng_uniform(RtTorchRng *r, void *data, int dtype, long n, double from, double to);
void rt_trng_normal(RtTorchRng *r, void *data, int dtype, long n, double std);
/* Draws net's parameters as PyTorch would for the seed (trng.c says how);
   buffers and state are left as they are. */
void rt_trng_init(const RtNet *net, uint64_t seed);

/* ---- rt/health.c: the health figures (docs/health.md) ---- */

/* The health figures of each trained tensor, after the RT_LAYER_FIGURES
   of the hidden layers (rt/net.h): X(enum, name). */
#define RT_TENSOR_FIGURES(X)               \
  X(RT_NORM,         "norm")               \
  X(RT_GRAD_NORM,    "grad_norm")          \
  X(RT_UPDATE_RATIO, "update_ratio")

#define RT_ENUM_(e, s) e,
enum { RT_TENSOR_FIGURES(RT_ENUM_) RT_NTENSOR_FIGURES };
#undef RT_ENUM_

/* One figure, as a row (layer, figure, value) that a study can store. */
typedef struct {
  const char *layer;    /* "hidden1" ..., or a tensor: "fc1.weight"      */
  const char *figure;   /* "pre_mean" ... "dead", "norm" ... "update_ratio" */
  double value;         /* NAN when na                                   */
  int na;               /* not applicable: not defined for the model's
                           activation, or no step to measure              */
} RtFigure;

/* The figures of one probe. */
typedef struct {
  int probe;            /* samples in the probe batch                    */
  int nlayers;          /* hidden layers                                 */
  int nrows;
  RtFigure *rows;       /* RT_NLAYER_FIGURES per hidden layer, then
                           RT_NTENSOR_FIGURES per trained tensor, in the
                           tensor table's order                          */
  /* private */
  char (*names)[24];    /* "hidden1" ...                                 */
  double *values;       /* (nlayers * RT_NLAYER_FIGURES) from the model  */
  double *before;       /* the trained tensors before the recorded step  */
  double *ratio;        /* that step's update ratio, per trained tensor  */
  int updated;          /* a step was recorded since the last probe      */
} RtHealth;

/* Allocates the rows of net's figures; 0, or -1 out of memory. */
int rt_health_alloc(RtHealth *h, const RtNet *net);
void rt_health_free(RtHealth *h);
/* Around one optimizer step: keeps the trained tensors before it, then
   records ||after - before|| / ||before|| for each (n/a when ||before||
   is 0). The next probe reports it. */
void rt_health_before_step(RtHealth *h, const RtNet *net);
void rt_health_after_step(RtHealth *h, const RtNet *net);
/* Computes every figure on the probe batch (n samples) through
   net->health and the tensor table. Changes no parameter, buffer or
   optimizer state: training goes on bit for bit as without it. A probe
   of one sample under BatchNorm, which cannot run, has no layer figures
   and no gradients: those are n/a. */
void rt_health_probe(RtHealth *h, const RtNet *net, int n, const void *x,
                     const unsigned char *y);
/* Writes the figures as two indented tables (layers, tensors), "n/a"
   where not applicable. */
void rt_health_print(const RtHealth *h, FILE *f);
/* Writes "health": {"probe": n, LAYER: {FIGURE: value, ...}, ...}, null
   where not applicable, "nan" or "inf" (strings) where not finite. */
void rt_health_json(const RtHealth *h, FILE *f);

/* ---- rt/sched.c: the learning-rate schedule (RtRecipe) ---- */

/* A schedule as it runs: the state of PyTorch's schedulers. */
typedef struct {
  const RtRecipe *r;      /* NULL: the lr is a constant of the code        */
  double *hyper;          /* RtNet.hyper, where the code reads them        */
  double lr, momentum;    /* the param group's lr and momentum (beta1)     */
  long warm_epoch;        /* LinearLR's last_epoch                         */
  long seq_epoch;         /* SequentialLR's: warmup in front of onecycle   */
  long cyc_epoch;         /* OneCycleLR's                                  */
  int epoch;              /* StepLR's or CosineAnnealingLR's               */
  long total;             /* OneCycleLR's total_steps                      */
  double end1;            /* the last step of its rising phase             */
  double initial_lr, min_lr;
} RtSched;

/* Starts net's schedule (none unless net->hyper) for a run of `steps`
   training steps: sets the lr of the first step. 0, or -1 with "KEY:
   reason" in err when the run does not fit it (onecycle's total_steps). */
int rt_sched_start(RtSched *s, const RtNet *net, long steps, char *err, size_t errlen);
/* The check rt_sched_start makes of a run of `steps` training steps, on
   the recipe alone: 0, or -1 with "KEY: reason" in err. */
int rt_sched_check(const RtRecipe *r, long steps, char *err, size_t errlen);
/* After each training step: the warmup and onecycle step. */
void rt_sched_step(RtSched *s);
/* After each epoch (after its last step's rt_sched_step): step and
   cosine step. */
void rt_sched_epoch(RtSched *s);
/* When the run moves to net, another compilation of the same model
   (backend/tier.c): the schedule goes on where net's code reads the lr,
   and sets it there now. */
void rt_sched_move(RtSched *s, const RtNet *net);

/* ---- rt/split.c: the validation split ---- */

#define RT_MAX_CLASSES 256  /* labels are bytes */

/* The samples a recipe holds out of a training set of n: its count, or
   ⌈fraction·n⌉; 0 without a recipe or validation. */
long rt_val_size(const RtRecipe *r, long n);
/* Splits all (samples of feats elements of its dtype, labels below
   nclasses) into train and val, nval of them held out for validation,
   stratified by class and fixed by seed (split.c says how). 0, or -1
   with the reason in err (nothing left to train on; out of memory),
   train and val empty. */
int rt_split(const RtSet *all, int feats, int nclasses, long nval, uint64_t seed,
             RtSet *train, RtSet *val, char *err, size_t errlen);
/* Whether nval held out of n training samples leave some to train on:
   0, or -1 with the reason in err. */
int rt_val_check(long nval, long n, char *err, size_t errlen);

/* ---- rt/train.c: initialisation and the training loop ---- */

/* One epoch's figures, as handed to RtOptions.on_epoch. */
typedef struct {
  int epoch;              /* from 1                                       */
  double train_loss;      /* mean of the epoch's batch losses; NaN when
                             the epoch took no step (a one-sample training
                             set under BatchNorm): there is none          */
  double test_loss;       /* mean over the test samples                   */
  double test_acc;        /* in [0, 1]                                    */
  double seconds;
  long diverged_step;     /* > 0: training diverged at this step of the
                             epoch (its loss, or after the epoch's last
                             step a tensor, was not finite); the figures
                             are NaN. 0 with NaN figures: in the test pass */
  double val_loss;        /* on the validation split; NaN without one     */
  double val_acc;
  int best_epoch;         /* under early stopping, the epoch of the least
                             validation loss so far, whose weights the
                             run keeps (this one or before); 0 without    */
} RtEpoch;

/* Where a run is at a step boundary: before a training step, or before
   a batch of the test pass. */
typedef struct {
  int epoch;              /* from 1                                       */
  long step;              /* the training step about to run, from 1; 0 in
                             the test pass                                */
  long batch;             /* in the test pass, the test batch about to
                             run, from 1; 0 in training                   */
} RtWhere;

typedef struct {
  int epochs;
  uint64_t seed;
  long max_batches;       /* 0: all                                       */
  int shuffle;            /* 0: batches in file order                     */
  int json;               /* JSON Lines on stdout                         */
  const char *data;       /* data directory                               */
  /* Optional: called after each epoch, and once at divergence, in place
     of the printed lines (nothing goes to stdout then). */
  void (*on_epoch)(void *ctx, const RtEpoch *e);
  void *ctx;
  int health;             /* the health figures, before training and after
                             each epoch (docs/health.md)                  */
  /* Optional, under health: called with each probe's figures (epoch 0:
     the initial weights) before on_epoch's call for the same epoch. As
     for the epochs, nothing is printed when on_epoch is set. */
  void (*on_health)(void *ctx, int epoch, const RtHealth *h);
  /* Optional, for tiered execution (backend/tier.c): called before each
     training step and each test batch with where the run is; returns the
     net to go on with: the one in use, or another compiled from the same
     model to which it has moved the whole state (every tensor of the
     table). Without it, the net rt_train was given runs throughout. */
  const RtNet *(*next_net)(void *tier, const RtWhere *at);
  /* Optional: says which code ran which part, at the end of the printed
     output: a line after the table, or under json members for the
     summary line (", \"code\": ..."). */
  void (*describe)(void *tier, int json, FILE *f);
  void *tier;
} RtOptions;

/* "mnist" and "fashion-mnist" → $MLPC_DATA/NAME or data/NAME; any other
   name is a directory and is returned as it is. */
const char *rt_data_dir(const char *name, char *buf, size_t len);
/* Seconds on a monotonic clock. */
double rt_now(void);
/* The number of elements of t. */
long rt_numel(const RtTensor *t);
/* Where element i of t, counted in row-major order of its shape, is
   stored in t->data: linear weights are stored transposed (net.h). */
long rt_offset(const RtTensor *t, long i);
/* Copies the elements of t, in row-major order, from rows into t's
   storage, or out of it into rows (to_rows). */
void rt_copy_rows(const RtTensor *t, void *rows, int to_rows);
/* The values of tensor t at data (in t's own layout, or in row-major
   order when rows) that are NaN or infinite: how many; for the first,
   its index in row-major order of t's shape into *at and "nan", "inf" or
   "-inf" into *what. 0 for an integer tensor. */
long rt_nonfinite(const RtTensor *t, const void *data, int rows, long *at, const char **what);
/* Scans every floating-point tensor of net (parameters, buffers,
   gradients, optimizer state): 0 when all are finite, else -1 with
   "NAME[INDEX] is nan (not finite: K of its N elements)" in msg. */
int rt_check_finite(const RtNet *net, char *msg, size_t len);
/* Draws the initial parameters for the seed and zeroes all state. */
void rt_init(const RtNet *net, uint64_t seed);
/* Loads the data, trains and evaluates, printing each epoch. Returns the
   process exit status: 0, 2 for bad data, 1 for divergence: a loss that
   is not finite, or after an epoch a tensor that holds a value that is
   not finite (under --json the last line then says so). */
int rt_train(const RtNet *net, const RtOptions *o);
/* The training steps of an epoch over n samples in batches of batch, at
   most max_batches (0: all): its batches, less a one-sample batch under
   BatchNorm (skipped). */
long rt_train_steps(long n, int batch, long max_batches, int has_batchnorm);
/* Whether recipe r fits a training set of n samples as rt_train checks
   it before training (the validation split leaves some to train on;
   onecycle fits the run's steps), for a plan that has not loaded the
   model's code: 0, or -1 with "KEY: reason" in err. */
int rt_recipe_check(const RtRecipe *r, long n, int batch, int has_batchnorm, int epochs,
                    long max_batches, char *err, size_t errlen);

#endif
