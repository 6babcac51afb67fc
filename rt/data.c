/*
 * data.c — a data directory: which of the formats it holds, its two sets
 * loaded by that format's reader, and the checks every format shares: the
 * train and test samples of one shape, which fits the model.
 *
 *   IDX    train-images-idx3-ubyte ... t10k-labels-idx1-ubyte (idx.c)
 *   NumPy  train_x.npy, train_y.npy, test_x.npy, test_y.npy   (npy.c)
 *   CSV    train.csv, test.csv                                (csv.c)
 *
 * A directory holds one format: files of two are refused rather than one
 * of them guessed, and one with no file of any is refused saying what
 * each format's files are; a path that is no directory is refused as
 * such. A directory with any IDX file is read as IDX (whose reader says
 * which file is missing). Pixel bytes (IDX, a uint8 array)
 * are kept as bytes, which the model scales by 1/255 as it loads them;
 * any other data are converted once, as loaded, to the model's dtype.
 *
 * This file is pasted with the rest of the runtime into standalone
 * trainers; its static helpers carry the data_ prefix.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rt.h"

/* A format: its name, its sets' names, what it calls a sample, the files
   that show it is there (NULL-ended), those in words, and its reader. */
typedef struct {
  const char *name;
  const char *sets[2];
  const char *noun;
  const char *files[13];
  const char *what;
  int (*load)(const char *dir, const char *prefix, int nclasses, int dtype, RtSet *set,
              char *err, size_t errlen);
} DataFormat;

/* rt_load_set as a format's reader: bytes, whatever the model's dtype. */
static int data_load_idx(const char *dir, const char *prefix, int nclasses, int dtype,
                         RtSet *set, char *err, size_t errlen) {
  (void)dtype;
  return rt_load_set(dir, prefix, nclasses, set, err, errlen);
}

static const DataFormat data_formats[] = {
  [RT_DATA_IDX] = {"IDX", {"train", "t10k"}, "images",
                   {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
                    "train-images-idx4-ubyte", "train-images-idx4-ubyte.gz",
                    "train-labels-idx1-ubyte", "train-labels-idx1-ubyte.gz",
                    "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz",
                    "t10k-images-idx4-ubyte", "t10k-images-idx4-ubyte.gz",
                    "t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz", NULL},
                   "IDX files (train-images-idx3-ubyte or train-images-idx4-ubyte, "
                   "train-labels-idx1-ubyte, t10k-images-idx3-ubyte or t10k-images-idx4-ubyte, "
                   "t10k-labels-idx1-ubyte; each raw or NAME.gz)",
                   data_load_idx},
  [RT_DATA_NPY] = {"NumPy", {"train", "test"}, "samples",
                   {"train_x.npy", "train_y.npy", "test_x.npy", "test_y.npy", NULL},
                   "NumPy arrays (train_x.npy, train_y.npy, test_x.npy, test_y.npy)",
                   rt_load_npy_set},
  [RT_DATA_CSV] = {"CSV", {"train", "test"}, "samples", {"train.csv", "test.csv", NULL},
                   "CSV files (train.csv, test.csv)", rt_load_csv_set},
};
enum { DATA_NFORMATS = sizeof data_formats / sizeof data_formats[0] };

/* Whether something is at path (what cannot be looked at counts: its
   reader reports it); stat, not open, so that a FIFO does not block. */
static int data_there(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 || errno != ENOENT;
}

/* The first file of format f in dir, into path; 0 when there is none. */
static int data_first(const char *dir, int f, char *path, size_t size) {
  for (const char *const *name = data_formats[f].files; *name; name++)
    if (!rt_join(path, size, dir, *name) && data_there(path))
      return 1;
  return 0;
}

/* Refuses a data path that is not a directory we can look into: none
   there, a file, or one that cannot be searched (a symbolic link loop, no
   permission), whose files would each be found "there" but unreadable,
   and look like every format's. */
static int data_check_dir(const char *dir, char *err, size_t errlen) {
  struct stat st;
  int found = stat(dir, &st) == 0;
  if (found && S_ISDIR(st.st_mode) && access(dir, X_OK) == 0)
    return 0;
  if (!found && errno != ENOENT && errno != ENOTDIR)
    return rt_fail(err, errlen, dir, "cannot open (%s)", strerror(errno));
  if (found && S_ISDIR(st.st_mode))
    return rt_fail(err, errlen, dir, "cannot search the directory (%s)", strerror(errno));
  return rt_fail(err, errlen, dir, "%s: the data are named by the directory that holds "
                 "their files (docs/data.md)", found ? "not a directory" : "no such directory");
}

/* Refuses a directory with no file of any format, saying what each
   format's files are. */
static int data_none(const char *dir, char *err, size_t errlen) {
  return rt_fail(err, errlen, dir, "no data set: a data directory holds %s, %s or %s; a NumPy "
                 "or CSV file may be gzip-compressed under its own name (docs/data.md)",
                 data_formats[RT_DATA_IDX].what, data_formats[RT_DATA_NPY].what,
                 data_formats[RT_DATA_CSV].what);
}

int rt_data_format(const char *dir, char *err, size_t errlen) {
  char seen[FILENAME_MAX], path[FILENAME_MAX];
  int found = -1;
  if (data_check_dir(dir, err, errlen))
    return -1;
  for (int f = 0; f < DATA_NFORMATS; f++) {
    if (!data_first(dir, f, path, sizeof path))
      continue;
    if (found >= 0)
      return rt_fail(err, errlen, dir, "holds data in two formats, %s (%s) and %s (%s): a "
                     "data directory holds one; remove the files of the other",
                     data_formats[found].name, strrchr(seen, '/') + 1, data_formats[f].name,
                     strrchr(path, '/') + 1);
    found = f;
    snprintf(seen, sizeof seen, "%s", path);
  }
  return found < 0 ? data_none(dir, err, errlen) : found;
}

int rt_data_files(const char *dir, char paths[][FILENAME_MAX], char *err, size_t errlen) {
  int f = rt_data_format(dir, err, errlen), n = 0;
  if (f == RT_DATA_IDX) {
    for (int i = 0; i < 4; i++)
      if (rt_data_file(dir, i < 2 ? "train" : "t10k", i % 2, paths[i], FILENAME_MAX, err,
                       errlen) < 0)
        return -1;
    return 4;
  }
  for (const char *const *name = f < 0 ? NULL : data_formats[f].files; name && *name; name++)
    if (rt_join(paths[n++], FILENAME_MAX, dir, *name))
      return rt_fail(err, errlen, dir, "path too long");
  return f < 0 ? -1 : n;
}

/* A sample's shape for messages: "28 x 28", or when full (channels
   matter) "1 x 28 x 28"; flat data, "rows of 4 features". */
static const char *data_shape(const RtSet *s, int full, char *buf, size_t len) {
  long d[3] = {s->channels, s->rows, s->cols};
  if (s->flat)
    return snprintf(buf, len, "rows of %d features", s->cols), buf;
  return rt_dims_str(d + !full, 3 - !full, buf, len);
}

/* Checks that the train and test samples have one shape. */
static int data_check_pair(const char *dir, const DataFormat *F, const RtSet *tr,
                           const RtSet *te, char *err, size_t errlen) {
  char a[64], b[64];
  int full = tr->channels != 1 || te->channels != 1, flat = tr->flat || te->flat;
  if (tr->flat == te->flat && tr->channels == te->channels && tr->rows == te->rows &&
      tr->cols == te->cols)
    return 0;
  return rt_fail(err, errlen, dir, "the %s %s are %s%s and the %s %s %s%s: both sets must "
                 "have one shape", F->sets[0], F->noun, data_shape(tr, full, a, sizeof a),
                 full || tr->flat ? "" : " pixels", F->sets[1], F->noun,
                 data_shape(te, full, b, sizeof b),
                 full && !flat ? " (channels x height x width)" : "");
}

/* Checks that the samples of s fit the model: shape (C, H, W) when given
   and not 0s (flat data have none to check), and input features in any
   case. */
static int data_check_model(const char *dir, const DataFormat *F, const RtSet *s, int input,
                            const int *shape, char *err, size_t errlen) {
  char a[64];
  int features = s->channels * s->rows * s->cols;
  if (!s->flat && shape && (shape[0] || shape[1] || shape[2]) &&
      (s->channels != shape[0] || s->rows != shape[1] || s->cols != shape[2]))
    return rt_fail(err, errlen, dir, "%s are %d x %d x %d (channels x height x width); "
                   "the model's input is [%d, %d, %d]", F->noun, s->channels, s->rows,
                   s->cols, shape[0], shape[1], shape[2]);
  if (features != input && s->flat)
    return rt_fail(err, errlen, dir, "%s have %d features, the model's input is %d", F->noun,
                   features, input);
  if (features != input)
    return rt_fail(err, errlen, dir, "%s have %d features (%s), the model's input is %d",
                   F->noun, features, data_shape(s, s->channels != 1, a, sizeof a), input);
  return 0;
}

int rt_load_data(const char *dir, int input, const int *shape, int nclasses, int dtype,
                 RtSet *tr, RtSet *te, char *err, size_t errlen) {
  memset(tr, 0, sizeof *tr);
  memset(te, 0, sizeof *te);
  int f = rt_data_format(dir, err, errlen);
  if (f < 0)
    return -1;
  const DataFormat *F = &data_formats[f];
  if (F->load(dir, F->sets[0], nclasses, dtype, tr, err, errlen))
    return -1;
  if (F->load(dir, F->sets[1], nclasses, dtype, te, err, errlen) ||
      data_check_pair(dir, F, tr, te, err, errlen) ||
      data_check_model(dir, F, tr, input, shape, err, errlen)) {
    rt_free_set(tr);
    rt_free_set(te);
    return -1;
  }
  return 0;
}
