/*
 * rt.h — the runtime: data sets, the random generator, initialisation and
 * the training loop. It depends only on libc, libm and zlib, so that its
 * sources can be pasted into a standalone trainer (see codegen/emit.c).
 */
#ifndef MLPC_RT_H
#define MLPC_RT_H

#include <stddef.h>
#include <stdint.h>
#include "net.h"

/* ---- runtime/idx.c: IDX data files ---- */

typedef struct {
  long n;                 /* samples                                      */
  int rows, cols;         /* 28 x 28 for MNIST                            */
  unsigned char *images;  /* (n, rows*cols) bytes                         */
  unsigned char *labels;  /* (n)                                          */
} RtSet;

/* Loads DIR/PREFIX-images-idx3-ubyte and DIR/PREFIX-labels-idx1-ubyte,
   each raw or with .gz appended (PREFIX is "train" or "t10k"). Checks
   magic numbers, dimensions, sizes and labels (< nclasses). On error
   writes "FILE: what is wrong" to err and returns -1. */
int rt_load_set(const char *dir, const char *prefix, int nclasses,
                RtSet *set, char *err, size_t errlen);
/* Reads one whole file, inflating gzip; *len gets its size. */
unsigned char *rt_read_file(const char *path, size_t *len,
                            char *err, size_t errlen);
/* Parses an IDX image or label file already in memory. */
int rt_parse_idx(const unsigned char *buf, size_t len, int want_dims,
                 const char *path, long dims[3], size_t *offset,
                 char *err, size_t errlen);
void rt_free_set(RtSet *set);

/* ---- runtime/rng.c: the random generator ---- */

typedef struct { uint64_t s[4]; } RtRng;

void rt_rng_seed(RtRng *r, uint64_t seed, uint64_t stream);
uint64_t rt_rng_next(RtRng *r);
double rt_rng_uniform(RtRng *r);            /* [0, 1)                    */
double rt_rng_normal(RtRng *r);             /* N(0, 1)                   */
uint64_t rt_rng_below(RtRng *r, uint64_t n); /* [0, n), unbiased         */

/* ---- runtime/trng.c: PyTorch's CPU generator ("rng": "torch") ---- */

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

/* ---- runtime/train.c: initialisation and the training loop ---- */

typedef struct {
  int epochs;
  uint64_t seed;
  long max_batches;       /* 0: all                                       */
  int shuffle;            /* 0: batches in file order                     */
  int json;               /* JSON Lines on stdout                         */
  const char *data;       /* data directory                               */
} RtOptions;

/* "mnist" and "fashion-mnist" → $MLPC_DATA/NAME or data/NAME; any other
   name is a directory and is returned as it is. */
const char *rt_data_dir(const char *name, char *buf, size_t len);
/* Draws the initial parameters for the seed and zeroes all state. */
void rt_init(const RtNet *net, uint64_t seed);
/* Loads the data, trains and evaluates, printing each epoch. Returns the
   process exit status: 0, 2 for bad data, 1 for divergence. */
int rt_train(const RtNet *net, const RtOptions *o);

#endif
