/*
 * split.c — the validation split (docs/model-format.md, "validation"):
 * samples held out of the training set, stratified by class and fixed by
 * the run's seed, so that every run of one seed, on any backend, in a
 * study or a standalone trainer, holds out the same samples.
 *
 * Of n training samples, v are held out: the model's count, or ⌈f·n⌉ for
 * a fraction f (f·n in double, as scikit-learn's train_test_split takes
 * a fraction). Class c, with n_c samples, gives ⌊v·n_c/n⌋ of them, and
 * the v − Σ⌊v·n_c/n⌋ classes with the largest remainders v·n_c mod n
 * (ties: the smaller label) one more. Then, class by class in label
 * order, the class's samples in file order are shuffled by Fisher–Yates
 * (i from the last down to 1, swapped with j = rt_rng_below(i + 1)) with
 * mlpc's generator on stream 2 of the seed (stream 0 draws the weights,
 * stream 1 orders the batches), and its first ones are held out. Both
 * sets keep file order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rt.h"

long rt_val_size(const RtRecipe *r, long n) {
  if (!r)
    return 0;
  return r->val_count ? r->val_count : r->val_fraction > 0 ? (long)ceil(r->val_fraction * n) : 0;
}

/* How many samples of each of k classes are held out (the header says). */
static void split_quota(const long *count, int k, long n, long v, long *quota) {
  char extra[RT_MAX_CLASSES] = {0};
  long left = v;
  for (int c = 0; c < k; c++)
    quota[c] = (long)((long long)v * count[c] / n), left -= quota[c];
  for (; left > 0; left--) {
    int best = -1;
    long long rest = -1;
    for (int c = 0; c < k; c++)
      if (!extra[c] && (long long)v * count[c] % n > rest)
        best = c, rest = (long long)v * count[c] % n;
    extra[best] = 1, quota[best]++;
  }
}

/* Marks in held the samples of all that are held out: quota[c] of class c. */
static void split_mark(const RtSet *all, int k, const long *quota, uint64_t seed, long *idx,
                       char *held) {
  RtRng rng;
  rt_rng_seed(&rng, seed, 2);
  for (int c = 0; c < k; c++) {
    long m = 0;
    for (long i = 0; i < all->n; i++)
      if (all->labels[i] == c)
        idx[m++] = i;
    for (long i = m - 1; i > 0; i--) {
      long j = (long)rt_rng_below(&rng, (uint64_t)i + 1), t = idx[i];
      idx[i] = idx[j], idx[j] = t;
    }
    for (long i = 0; i < quota[c]; i++)
      held[idx[i]] = 1;
  }
}

/* Allocates a set of n samples of size bytes, shaped and typed as like;
   0 or -1. */
static int split_alloc(RtSet *s, const RtSet *like, long n, size_t size) {
  *s = (RtSet){.n = n, .channels = like->channels, .rows = like->rows, .cols = like->cols,
               .flat = like->flat, .dtype = like->dtype};
  s->images = malloc((size_t)n * size + 1);
  s->labels = malloc((size_t)n + 1);
  if (s->images && s->labels)
    return 0;
  rt_free_set(s);
  return -1;
}

/* Copies the samples of all, size bytes each, into train and val, as held
   says, in order. */
static void split_copy(const RtSet *all, size_t size, const char *held, RtSet *train,
                       RtSet *val) {
  long t = 0, v = 0;
  for (long i = 0; i < all->n; i++) {
    RtSet *to = held[i] ? val : train;
    long at = held[i] ? v++ : t++;
    memcpy(to->images + (size_t)at * size, all->images + (size_t)i * size, size);
    to->labels[at] = all->labels[i];
  }
}

int rt_val_check(long nval, long n, char *err, size_t errlen) {
  if (nval < n)
    return 0;
  snprintf(err, errlen, "validation: holding out %ld of the %ld training samples leaves none "
           "to train on; hold out fewer", nval, n);
  return -1;
}

int rt_split(const RtSet *all, int feats, int nclasses, long nval, uint64_t seed,
             RtSet *train, RtSet *val, char *err, size_t errlen) {
  long count[RT_MAX_CLASSES] = {0}, quota[RT_MAX_CLASSES];
  memset(train, 0, sizeof *train), memset(val, 0, sizeof *val);
  if (rt_val_check(nval, all->n, err, errlen))
    return -1;
  for (long i = 0; i < all->n; i++)
    count[all->labels[i]]++;
  split_quota(count, nclasses, all->n, nval, quota);
  size_t size = (size_t)feats * rt_dtype_size(all->dtype);
  long *idx = malloc(sizeof(long) * (size_t)all->n);
  char *held = calloc((size_t)all->n, 1);
  int rc = !idx || !held || split_alloc(train, all, all->n - nval, size) ||
           split_alloc(val, all, nval, size) ? -1 : 0;
  if (rc)
    snprintf(err, errlen, "out of memory"), rt_free_set(train), rt_free_set(val);
  else
    split_mark(all, nclasses, quota, seed, idx, held), split_copy(all, size, held, train, val);
  free(idx), free(held);
  return rc;
}
