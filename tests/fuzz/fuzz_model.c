/*
 * fuzz_model.c — a model file through the whole compiler front: load and
 * check it (frontend/load.c); if it is accepted, lower it, check its size,
 * emit the tcc unit, the gcc unit and the trainer, and compile the tcc
 * unit with libtcc. Any model the frontend accepts must give C that
 * compiles; a refusal must come with a message. Seeds: tests/errors,
 * tests/valid, models, tests/models and tests/fuzz/model.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libtcc.h>
#include "../../mlpc.h"

static char path[64];

/* Says what went wrong and stops: a finding. */
static void finding(const char *what, const char *detail) {
  fprintf(stderr, "fuzz_model: %s: %s\n", what, detail);
  abort();
}

/* Collects tcc's first message. */
static void on_tcc_error(void *opaque, const char *msg) {
  char *buf = opaque;
  if (!buf[0])
    snprintf(buf, 1024, "%s", msg);
}

/* Compiles a unit with tcc, without linking: it must be valid C. */
static void tcc_compiles(const Buf *b) {
  char msg[1024] = "";
  TCCState *s = tcc_new();
  if (!s)
    finding("tcc_new", "out of memory");
  tcc_set_error_func(s, msg, on_tcc_error);
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  int rc = tcc_compile_string(s, b->buf);
  tcc_delete(s);
  if (rc < 0)
    finding("an accepted model's code does not compile", msg);
}

/* Emits and compiles what an accepted model gives. */
static void generate(const Model *m) {
  static Ir ir;
  char err[2048];
  Buf unit = {0}, gcc = {0}, trainer = {0};
  ir_lower(m, &ir);
  if (emit_check_size(&ir, err, sizeof err))
    return;
  if (emit_unit(&ir, BACKEND_TCC, &unit) || emit_unit(&ir, BACKEND_GCC, &gcc) ||
      emit_trainer(&ir, &trainer))
    finding("emit", "out of memory");
  tcc_compiles(&unit);
  fe_free(unit.buf), fe_free(gcc.buf), fe_free(trainer.buf);
}

/* Removes the harness's file when the process ends. */
static void cleanup(void) {
  remove(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  atexit(cleanup);
  snprintf(path, sizeof path, "/tmp/mlpc-fuzz-model-%ld.json", (long)getpid());
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Model m;
  char err[2048] = "";
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, size, f) != size || fclose(f))
    finding(path, "cannot write");
  int rc = fe_load(path, &m, err, sizeof err);
  if (rc && !strstr(err, ": error: "))
    finding("a refusal without a message", err);
  if (!rc)
    generate(&m);
  return 0;
}
