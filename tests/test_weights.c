/*
 * test_weights.c — safetensors files: what rt_save_weights writes, that
 * rt_load_weights reads it back bit for bit, and that every kind of file
 * that does not fit the model is refused with a message naming each
 * problem, leaving the model untouched; weights that are not finite are
 * refused both ways. (Files between mlpc and PyTorch
 * are covered by test_reference, which loads PyTorch's files, and by
 * tests/reference/gen.py --check-mlpc, which loads mlpc's into PyTorch.)
 *
 * Then hostile files: offsets at the ends of the integers, every
 * truncation of a valid file, every byte of one changed, directories,
 * unreadable and oversized files. Each is refused with a message (or,
 * for a harmless change, loaded), never a crash, and a refusal changes
 * nothing; under the sanitizers no access goes astray.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "../mlpc.h"
#include "util.h"

static char tmp[64], path[128], err[4096];

/* A compiled model: hidden widths, norm, dtype. */
typedef struct {
  Model m;
  Ir ir;
  Jit *jit;
  const RtNet *net;
} Net;

static Net *make(int hidden, int norm, int dtype) {
  Net *n = calloc(1, sizeof *n);
  fe_defaults(&n->m);
  n->m.input = 6;
  n->m.output = 3;
  n->m.hidden[0] = hidden;
  n->m.norm.type = norm;
  n->m.dtype = dtype;
  n->m.batch_size = 4;
  n->m.opt.type = OPT_ADAM;
  ir_lower(&n->m, &n->ir);
  Buf src = {0};
  emit_unit(&n->ir, BACKEND_TCC, &src);
  n->jit = jit_tcc(src.buf, err, sizeof err);
  free(src.buf);
  if (!n->jit)
    fail_msg("%s", err);
  n->net = jit_net(n->jit);
  rt_init(n->net, 5);
  return n;
}

static void drop(Net *n) {
  jit_free(n->jit);
  free(n);
}

static size_t bytes(const RtTensor *t) {
  return (size_t)rt_numel(t) * (t->dtype == RT_F32 ? 4 : 8);
}

/* One training step, so that every tensor holds something particular. */
static void step(const RtNet *net) {
  unsigned char x[4 * 6], y[4] = {0, 1, 2, 1};
  for (int i = 0; i < 24; i++)
    x[i] = (unsigned char)(i * 37);
  net->train_step(4, x, y);
}

/* Whether all tensors (parameters, buffers, state) of a and b are equal. */
static int same(const RtNet *a, const RtNet *b, int saved_only) {
  for (int k = 0; k < a->ntensors; k++) {
    const RtTensor *t = &a->tensors[k];
    if (saved_only && (t->kind == RT_GRAD || t->kind == RT_STATE))
      continue;
    if (memcmp(t->data, b->tensors[k].data, bytes(t)))
      return 0;
  }
  return 1;
}

/* A copy of every tensor of net, to check that a refusal changes nothing. */
static char *snapshot(const RtNet *net, size_t *len) {
  size_t n = 0;
  for (int k = 0; k < net->ntensors; k++)
    n += bytes(&net->tensors[k]);
  char *s = malloc(n), *p = s;
  for (int k = 0; k < net->ntensors; k++)
    p = (char *)memcpy(p, net->tensors[k].data, bytes(&net->tensors[k])) +
        bytes(&net->tensors[k]);
  *len = n;
  return s;
}

/* Loads path into net, which must refuse it with messages containing each
   of the given strings, and stay as it was. */
static void refused(const RtNet *net, const char *file, ...) {
  size_t n1, n2;
  char *before = snapshot(net, &n1);
  assert_int_equal(rt_load_weights(net, file, err, sizeof err), -1);
  char *after = snapshot(net, &n2);
  assert_memory_equal(before, after, n1);
  printf("  refused: %s\n", err);
  va_list ap;
  va_start(ap, file);
  for (const char *want; (want = va_arg(ap, const char *));)
    if (!strstr(err, want))
      fail_msg("expected '%s' in:\n%s", want, err);
  va_end(ap);
  free(before);
  free(after);
}

/* Saves net to path or fails. */
static void save(const RtNet *net, const char *p) {
  if (rt_save_weights(net, p, err, sizeof err))
    fail_msg("%s", err);
}

/* Reads a saved file's header. */
static json_t *header(const char *p, size_t *hlen, size_t *flen) {
  FILE *f = fopen(p, "rb");
  unsigned char n8[8];
  assert_non_null(f);
  assert_int_equal(fread(n8, 1, 8, f), 8);
  *hlen = 0;
  for (int i = 7; i >= 0; i--)
    *hlen = *hlen << 8 | n8[i];
  char *h = malloc(*hlen);
  assert_int_equal(fread(h, 1, *hlen, f), *hlen);
  fseek(f, 0, SEEK_END);
  *flen = (size_t)ftell(f);
  fclose(f);
  json_t *j = json_loadb(h, *hlen, 0, NULL);
  free(h);
  assert_non_null(j);
  return j;
}

/* Writes a file of the given header text and n zero bytes of data. */
static void write_st(const char *p, const char *hdr, size_t n) {
  FILE *f = fopen(p, "wb");
  unsigned long long len = strlen(hdr);
  for (int i = 0; i < 8; i++)
    putc((int)(len >> 8 * i & 0xff), f);
  fputs(hdr, f);
  for (size_t i = 0; i < n; i++)
    putc(0, f);
  fclose(f);
}

/* Rewrites path's header with one entry's data_offsets changed. */
static void set_offsets(const char *src, const char *dst, const char *name, long b, long e) {
  size_t hlen, flen;
  json_t *h = header(src, &hlen, &flen);
  json_object_set_new(json_object_get(h, name), "data_offsets", json_pack("[I,I]",
                      (json_int_t)b, (json_int_t)e));
  char *text = json_dumps(h, JSON_COMPACT);
  write_st(dst, text, flen - 8 - hlen);
  free(text);
  json_decref(h);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmp, sizeof tmp, "/tmp/mlpc_weights_XXXXXX");
  assert_non_null(mkdtemp(tmp));
  snprintf(path, sizeof path, "%s/w.safetensors", tmp);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  return system(cmd);
}

/* The file: PyTorch's names, dtypes and shapes, data in table order,
   8-byte aligned, no gradients or optimizer state. */
static void test_format(void **state) {
  (void)state;
  Net *a = make(5, NORM_BATCH, DT_F32);
  step(a->net);
  save(a->net, path);
  size_t hlen, flen, off = 0;
  json_t *h = header(path, &hlen, &flen);
  assert_int_equal(hlen % 8, 0);
  const char *names[] = {"fc1.weight", "fc1.bias", "norm1.weight", "norm1.bias",
                         "norm1.running_mean", "norm1.running_var",
                         "norm1.num_batches_tracked", "fc2.weight", "fc2.bias"};
  const char *shapes[] = {"[5,6]", "[5]", "[5]", "[5]", "[5]", "[5]", "[]", "[3,5]", "[3]"};
  for (int i = 0; i < 9; i++) {
    json_t *e = json_object_get(h, names[i]);
    assert_non_null(e);
    char *s = json_dumps(json_object_get(e, "shape"), JSON_COMPACT);
    assert_string_equal(s, shapes[i]);
    free(s);
    assert_string_equal(json_string_value(json_object_get(e, "dtype")), i == 6 ? "I64" : "F32");
    json_t *o = json_object_get(e, "data_offsets");
    assert_int_equal(json_integer_value(json_array_get(o, 0)), off);
    off = (size_t)json_integer_value(json_array_get(o, 1));
  }
  assert_int_equal(json_object_size(h), 10); /* and __metadata__ */
  assert_int_equal(flen, 8 + hlen + off);
  json_decref(h);
  drop(a);
}

/* Saved and loaded into another copy, every parameter and buffer is
   bitwise the same, in both precisions; the optimizer state is not in
   the file. */
static void test_round_trip(void **state) {
  (void)state;
  for (int dt = DT_F32; dt <= DT_F64; dt++) {
    Net *a = make(5, NORM_BATCH, dt), *b = make(5, NORM_BATCH, dt);
    step(a->net);
    step(a->net);
    assert_false(same(a->net, b->net, 1));
    save(a->net, path);
    if (rt_load_weights(b->net, path, err, sizeof err))
      fail_msg("%s", err);
    assert_true(same(a->net, b->net, 1));
    assert_int_equal(*(long long *)b->net->tensors[6].data, 2); /* num_batches_tracked */
    drop(a);
    drop(b);
  }
}

/* Files that do not fit: each problem named, nothing changed. */
static void test_refused(void **state) {
  (void)state;
  char other[160];
  Net *bn = make(5, NORM_BATCH, DT_F32);
  snprintf(other, sizeof other, "%s/x.safetensors", tmp);

  refused(bn->net, "/nonexistent/w.safetensors", "cannot open", NULL);
  write_st(other, "", 0);
  refused(bn->net, other, "header is not a JSON object", NULL);
  FILE *f = fopen(other, "wb");
  fputs("abc", f);
  fclose(f);
  refused(bn->net, other, "not a safetensors file (3 bytes)", NULL);
  write_st(other, "[1, 2]", 0);
  refused(bn->net, other, "header is not a JSON object: wrong type", NULL);
  f = fopen(other, "wb");
  fwrite("\xff\xff\xff\xff\0\0\0\0{}", 1, 10, f);
  fclose(f);
  refused(bn->net, other, "header length 4294967295 does not fit the file (10 bytes)", NULL);

  Net *f64 = make(5, NORM_BATCH, DT_F64);
  save(f64->net, other);
  refused(bn->net, other, "fc1.weight: dtype F64, the model needs F32 (a float32 model)",
          "fc2.bias: dtype F64", NULL);

  Net *wide = make(6, NORM_BATCH, DT_F32);
  save(wide->net, other);
  refused(bn->net, other, "fc1.weight: shape [6,6], the model needs [5,6]",
          "norm1.running_var: shape [6], the model needs [5]",
          "fc2.weight: shape [3,6], the model needs [3,5]", NULL);

  Net *plain = make(5, NORM_NONE, DT_F32);
  save(plain->net, other);
  refused(bn->net, other, "norm1.weight: missing (the model needs it)",
          "norm1.num_batches_tracked: missing", NULL);
  save(bn->net, other);
  refused(plain->net, other, "norm1.running_mean: no such tensor in model model", NULL);

  save(bn->net, path);
  set_offsets(path, other, "fc1.bias", 0, 20);
  refused(bn->net, other, "fc1.bias: its data overlap another tensor's", NULL);
  set_offsets(path, other, "fc2.bias", 1000, 1012);
  refused(bn->net, other, "fc2.bias: data_offsets [1000,1012] do not hold its 12 bytes", NULL);
  set_offsets(path, other, "fc2.bias", 0, 4);
  refused(bn->net, other, "do not hold its 12 bytes", NULL);
  write_st(other, "{\"fc1.weight\": {\"dtype\": \"F32\"}}", 0);
  refused(bn->net, other, "fc1.weight: the header entry needs dtype, shape and data_offsets",
          NULL);

  drop(bn);
  drop(f64);
  drop(wide);
  drop(plain);
}

/* Weights that are NaN or infinite: a file holding them is refused,
   each tensor named with its first such element (its index in row-major
   order) and their number; saving them is refused too, naming the
   element by the same index though the weight is stored transposed. */
static void test_nonfinite(void **state) {
  (void)state;
  for (int dt = DT_F32; dt <= DT_F64; dt++) {
    Net *a = make(5, NORM_BATCH, dt), *b = make(5, NORM_BATCH, dt);
    step(a->net);
    save(a->net, path);
    assert_int_equal(util_poke_weight(path, "fc1.weight", 7, NAN), 0);
    assert_int_equal(util_poke_weight(path, "fc1.weight", 29, INFINITY), 0);
    assert_int_equal(util_poke_weight(path, "norm1.running_var", 0, INFINITY), 0);
    assert_int_equal(util_poke_weight(path, "fc2.bias", 2, -INFINITY), 0);
    refused(b->net, path, "fc1.weight: element 7 is nan (not finite: 2 of its 30 elements)",
            "norm1.running_var: element 0 is inf (not finite: 1 of its 5", "fc2.bias: element 2 is -inf",
            NULL);
    assert_null(strstr(err, "fc2.weight"));
    const RtTensor *w = &a->net->tensors[0]; /* fc1.weight (5, 6), stored as (6, 5) */
    assert_true(w->transposed && !strcmp(w->name, "fc1.weight"));
    remove(path);
    if (dt == DT_F32)
      ((float *)w->data)[1 * 5 + 1] = NAN; /* element (1, 1): 7 in row-major order */
    else
      ((double *)w->data)[1 * 5 + 1] = NAN;
    assert_int_equal(rt_save_weights(a->net, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "w.safetensors: not written: fc1.weight[7] is nan (not finite: 1 of its "
                                "30 elements)"));
    assert_int_not_equal(access(path, F_OK), 0);
    drop(a), drop(b);
  }
}

/* Buffers that cannot be what they stand for: a count of batches below 0
   or beyond 2^53 (BatchNorm's cumulative average divides by it, and the
   count is incremented), a running variance below 0 (its square root is
   taken). */
static void test_buffer_range(void **state) {
  (void)state;
  static const struct {
    const char *name;
    long k;
    double v;
    const char *says;
  } bad[] = {
    {"norm1.num_batches_tracked", 0, -1, "norm1.num_batches_tracked: element 0 is -1: a count "
                                         "of batches is 0 to 2^53"},
    {"norm1.num_batches_tracked", 0, 9223372036854775807.0, "a count of batches is 0 to 2^53"},
    {"norm1.running_var", 3, -0.5, "norm1.running_var: element 3 is -0.5: a variance is not "
                                   "negative"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    Net *a = make(5, NORM_BATCH, DT_F32), *b = make(5, NORM_BATCH, DT_F32);
    step(a->net);
    save(a->net, path);
    assert_int_equal(util_poke_weight(path, bad[i].name, bad[i].k, bad[i].v), 0);
    refused(b->net, path, bad[i].says, NULL);
    remove(path);
    drop(a), drop(b);
  }
}

/* A file with more problems than the message lists says how many more. */
static void test_many_problems(void **state) {
  (void)state;
  Net *a = make(5, NORM_BATCH, DT_F32), *b = make(7, NORM_LAYER, DT_F64);
  save(b->net, path);
  refused(a->net, path, "and ", "more that do not fit", NULL);
  int lines = 1;
  for (const char *p = err; *p; p++)
    lines += *p == '\n';
  assert_int_equal(lines, 9);
  drop(a);
  drop(b);
}

/* ---- hostile files ---- */

/* Offsets whose arithmetic could overflow, or that are not integers. */
static void test_offsets(void **state) {
  (void)state;
  static const char *const offs[] = {
    "[1, -9223372036854775808]", "[9223372036854775800, 9223372036854775807]",
    "[-1, 19]", "[20, 0]", "[0.0, 20.0]", "[\"0\", \"20\"]", "[0]", "[0, 20, 40]",
    "{\"a\": 1}", "null",
  };
  char other[160], hdr[512];
  Net *n = make(5, NORM_NONE, DT_F32);
  snprintf(other, sizeof other, "%s/o.safetensors", tmp);
  for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
    snprintf(hdr, sizeof hdr, "{\"fc1.bias\": {\"dtype\": \"F32\", \"shape\": [5], "
             "\"data_offsets\": %s}}", offs[i]);
    write_st(other, hdr, 64);
    refused(n->net, other, "fc1.bias: ", NULL);
  }
  drop(n);
}

/* Reads a whole file. */
static unsigned char *read_all(const char *p, size_t *len) {
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  rewind(f);
  unsigned char *b = malloc(*len);
  assert_int_equal(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

/* Writes len bytes to p. */
static void write_bytes(const char *p, const void *b, size_t len) {
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(b, 1, len, f), len);
  fclose(f);
}

/* Every truncation of a valid file is refused. */
static void test_truncated(void **state) {
  (void)state;
  char other[160];
  Net *a = make(5, NORM_BATCH, DT_F32), *b = make(5, NORM_BATCH, DT_F32);
  snprintf(other, sizeof other, "%s/t.safetensors", tmp);
  step(a->net);
  save(a->net, path);
  size_t len;
  unsigned char *whole = read_all(path, &len);
  size_t before_len;
  char *before = snapshot(b->net, &before_len);
  for (size_t n = 0; n < len; n++) {
    write_bytes(other, whole, n);
    assert_int_equal(rt_load_weights(b->net, other, err, sizeof err), -1);
    assert_true(strncmp(err, other, strlen(other)) == 0);
  }
  char *after = snapshot(b->net, &before_len);
  assert_memory_equal(before, after, before_len);
  print_message("  %zu truncations refused\n", len);
  free(whole), free(before), free(after);
  drop(a), drop(b);
}

/* Every byte of a valid file's length and header, set to each of a few
   values: loaded or refused, never more; a refusal changes nothing. */
static void test_bytes_changed(void **state) {
  (void)state;
  static const unsigned char values[] = {0x00, 0x22, 0x5b, 0x7b, 0x7d, 0x39, 0xff, 0x80};
  char other[160];
  Net *a = make(4, NORM_LAYER, DT_F64), *b = make(4, NORM_LAYER, DT_F64);
  snprintf(other, sizeof other, "%s/b.safetensors", tmp);
  save(a->net, path);
  size_t len, hlen, flen, snap;
  json_decref(header(path, &hlen, &flen));
  unsigned char *whole = read_all(path, &len);
  int loaded = 0, refusals = 0;
  for (size_t i = 0; i < 8 + hlen; i++)
    for (size_t v = 0; v < sizeof values; v++) {
      unsigned char keep = whole[i];
      if (keep == values[v])
        continue;
      whole[i] = values[v];
      write_bytes(other, whole, len);
      whole[i] = keep;
      char *before = snapshot(b->net, &snap);
      if (rt_load_weights(b->net, other, err, sizeof err) == 0) {
        loaded++;
        free(before);
        continue;
      }
      refusals++;
      char *after = snapshot(b->net, &snap);
      assert_memory_equal(before, after, snap);
      free(before), free(after);
    }
  print_message("  %d changed files refused, %d loaded\n", refusals, loaded);
  assert_true(refusals > 0);
  free(whole);
  drop(a), drop(b);
}

/* A directory, an unreadable file, a huge sparse file, an endless one. */
static void test_special_files(void **state) {
  (void)state;
  char big[160];
  Net *n = make(5, NORM_NONE, DT_F32);
  refused(n->net, tmp, "cannot read: Is a directory", NULL);
  refused(n->net, "/proc/self/mem", "cannot read: Input/output error", NULL);
  snprintf(big, sizeof big, "%s/big.safetensors", tmp);
  FILE *f = fopen(big, "wb");
  assert_non_null(f);
  assert_int_equal(ftruncate(fileno(f), (off_t)3 << 30), 0); /* sparse: no disk used */
  fclose(f);
  refused(n->net, big, "larger than a weight file of model model can be", NULL);
  refused(n->net, "/dev/zero", "larger than a weight file of model model can be", NULL);
  remove(big);
  drop(n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_format),
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_refused),
    cmocka_unit_test(test_many_problems),
    cmocka_unit_test(test_nonfinite),
    cmocka_unit_test(test_buffer_range),
    cmocka_unit_test(test_offsets),
    cmocka_unit_test(test_truncated),
    cmocka_unit_test(test_bytes_changed),
    cmocka_unit_test(test_special_files),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
