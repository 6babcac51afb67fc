/*
 * util.h — helpers the tests share: listing model files, reading whole
 * files, running programs, temporary directories, and running a part of
 * a test program (tests/CMakeLists.txt splits the long ones into ctest
 * tests that run side by side).
 */
#ifndef MLPC_TEST_UTIL_H
#define MLPC_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "../mlpc.h"

enum { UTIL_MAX_FILES = 512, UTIL_PATHS = 16 };

/* Appends dir's files whose names end in suffix, as "dir/name", sorted,
   to out[n..]; returns the new count. A missing dir adds nothing; more
   than UTIL_MAX_FILES in all ends the test program. */
int util_list(const char *dir, const char *suffix, char **out, int n);
/* Every model file: those in models/ (not the studies), then those in
   tests/models/. */
int util_models(char **out);
/* The arithmetic (1: fma, 0: strict) the i-th of them takes in the tests
   that compile every model: the two in turn, so that each meets float32
   and float64, BatchNorm and LayerNorm, and those tests share gcc's
   objects in out/cache rather than compile a model in both. */
int util_arith(int i);
/* The base name of path without its extension, into buf. */
const char *util_stem(const char *path, char *buf, size_t len);
/* Reads a whole file, NUL-terminated; NULL if it cannot be read. */
char *util_slurp(const char *path, size_t *len);
/* A small text file (up to 8 KiB) without its final newlines, in a
   static buffer; NULL if it cannot be read. For expected messages. */
char *util_text(const char *path);
/* Whether MLPC_REGEN asks to rewrite the expectation of case name
   (MLPC_REGEN=all: every case's). */
int util_regen(const char *name);
/* The number (from 1) of text's first line wider than max characters,
   or 0: none is. */
long util_wide_line(const char *text, size_t max);
/* Writes text to path; 0 or -1. */
int util_write(const char *path, const void *buf, size_t len);
/* Runs argv (no shell) with stdout and stderr to the files named (NULL:
   /dev/null); returns the exit status, or -1 if it did not exit. */
int util_run(const char *const *argv, const char *out, const char *err);
/* Preprocesses src with cc and flags (NULL-terminated) into nothing;
   1 if cc's messages hold text, 0 if not, -1 if cc failed. */
int util_cc_says(const char *src, const char *const *flags, const char *text);
/* In a child process about to check a permission: when root (who reads
   and writes anywhere), becomes nobody (uid and gid 65534, no other
   groups) for good; 0, or -1 if that failed. */
int util_drop_root(void);
/* Writes a data set of side x side images into dir (which must exist):
   ntrain training and ntest test images, pixel i of the file (i * 37) mod
   251 but the first pixel of every image 0, labels 0..9 in turn; 0 or
   -1. */
int util_idx_set(const char *dir, int ntrain, int ntest, int side);
/* The same with images of channels x side x side, in IDX files of 4
   dimensions (PREFIX-images-idx4-ubyte). */
int util_idx4_set(const char *dir, int ntrain, int ntest, int channels, int side);
/* Sets element k (in row-major order) of tensor name in the safetensors
   file path to v, in the tensor's dtype (F32, F64 or I64); 0 or -1. */
int util_poke_weight(const char *path, const char *name, long k, double v);
/* Loads a model file into m, or fails the test. */
void util_load(const char *path, Model *m);
/* Compiles src with backend, tcc or gcc (its objects into out/cache),
   or fails the test naming what. */
Jit *util_jit(const char *src, int backend, const char *what);
/* The tensor of net called name ("fc1.weight"), or fails the test. */
const RtTensor *util_tensor(const RtNet *net, const char *name);
/* Makes a fresh directory /tmp/mlpc-NAME-XXXXXX into buf; 0 or -1. */
int util_mkdtemp(const char *name, char *buf, size_t len);
/* DIR/NAME, in one of a ring of UTIL_PATHS buffers: it stays valid for
   the next UTIL_PATHS - 1 calls (copy one kept across more). */
const char *util_path(const char *dir, const char *name);
/* Removes a directory made by util_mkdtemp and everything in it. */
void util_rmtree(const char *dir);

/* Runs the cmocka group tests[0..n), or the part of it that the
   program's arguments name: PROGRAM [NAMES [K/N]], where NAMES lists
   tests by their cmocka names, comma-separated ("-" in front: all but
   those), or is "all", and K/N makes the loops over models or cases
   take only the items whose index i has i % N == K (util_mine). A name
   not in the group, or a malformed K/N, ends the program with status 2.
   It runs them in the source directory, as ctest does, so that a test
   program started by hand finds models/ and data/. */
int util_run_group(const struct CMUnitTest *tests, size_t n, CMFixtureFunction setup,
                   CMFixtureFunction teardown, int argc, char **argv);
#define util_run_tests(tests, setup, teardown, argc, argv) \
  util_run_group(tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown, argc, argv)
/* Whether this process takes item i of a loop over models or cases: 1,
   unless util_run_group was given a K/N. */
int util_mine(int i);

#endif
