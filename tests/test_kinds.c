/*
 * test_kinds.c — every layer kind is whole.
 *
 * frontend/model.h's LAYER_KINDS is the one list of layer kinds (and
 * rt/acts.h's ACTS the activations, each a kind of its own). This
 * walks it and fails for a kind added in part: each kind must have
 *
 *   - a name, unlike every other kind's;
 *   - an IR kind of the same number (L_* and LK_* are one list) whose unit
 *     in layer_units[] emits code or is an alias;
 *   - its defaults' kind set to itself, and every key its row names
 *     checked by the frontend under its name in LAYER_KEYS: the key, given
 *     with a wrong type of value, is refused by that key's check, not as
 *     unknown or misplaced;
 *   - a row in docs/model-format.md's tables of kinds ("| `NAME`" on a
 *     line that names each of its keys);
 *   - a model that uses it among models/ and tests/models/ (which the
 *     golden and backend tests compile and run).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../codegen/gen.h"
#include "util.h"

/* Every kind has a name of its own. */
static void test_names(void **state) {
  (void)state;
  for (int k = 0; k < NLAYER_KINDS; k++) {
    assert_non_null(layer_kind_names[k]);
    assert_true(layer_kind_names[k][0]);
    for (int j = 0; j < k; j++)
      if (!strcmp(layer_kind_names[j], layer_kind_names[k]))
        fail_msg("kinds %d and %d are both called %s", j, k, layer_kind_names[k]);
  }
}

/* Every IR kind has a unit that emits code or moves nothing. */
static void test_units(void **state) {
  (void)state;
  assert_int_equal(L_ACT, LK_ACT);
  for (int k = 0; k < NLAYERS; k++) {
    const LayerUnit *u = layer_units[k];
    if (!u || (!u->emit && !u->alias))
      fail_msg("IR kind %d has no unit that emits code", k);
  }
}

/* The line of text at p, into buf. */
static const char *line_at(const char *p, char *buf, size_t size) {
  size_t n = strcspn(p, "\n");
  snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), p);
  return buf;
}

/* Whether docs/model-format.md has a table row for kind k that names
   each of its keys (why, if not, in why). */
static int documented(const char *doc, int k, char *why, size_t size) {
  char want[64], line[1024];
  snprintf(want, sizeof want, "`%s`", layer_kind_names[k]);
  for (const char *p = doc; (p = strstr(p, "\n|")); p++) {
    line_at(p + 1, line, sizeof line);
    const char *cell = strstr(line, want), *end = strchr(line + 1, '|');
    if (!cell || !end || cell > end) /* in the first cell */
      continue;
    for (int key = 0; k < LK_ACT && key < NLAYER_KEYS; key++) {
      snprintf(want, sizeof want, "`%s`", layer_key_names[key]);
      if ((layer_kind_keys[k] & (1u << key)) && !strstr(line, want)) {
        snprintf(why, size, "its row does not name its key %s", want);
        return 0;
      }
    }
    return 1;
  }
  snprintf(why, size, "no table row begins with %s", want);
  return 0;
}

/* Every kind has its row in docs/model-format.md. */
static void test_docs(void **state) {
  (void)state;
  size_t len;
  char *doc = util_slurp("docs/model-format.md", &len), why[128];
  assert_non_null(doc);
  for (int k = 0; k < NLAYER_KINDS; k++)
    if (!documented(doc, k, why, sizeof why))
      fail_msg("%s in docs/model-format.md: %s", layer_kind_names[k], why);
  free(doc);
}

/* Loads {"layers": [{"type": KIND, KEY: []}, ...]} and returns the message. */
static const char *key_message(int k, const char *key, char *err, size_t size) {
  static Model m;
  char text[512];
  snprintf(text, sizeof text, "{\"name\": \"k\", \"input\": [1, 4, 4], \"layers\": "
           "[{\"type\": \"%s\", \"%s\": []}, \"flatten\", {\"type\": \"linear\", "
           "\"out\": 2}], \"optimizer\": \"sgd\", \"batch_size\": 2, \"epochs\": 1}",
           layer_kind_names[k], key);
  if (fe_load_string(text, "kinds.json", &m, err, size) == 0)
    fail_msg("%s with %s: [] loaded", layer_kind_names[k], key);
  return err;
}

/* Each key of a kind's row reaches its check, and its defaults are its
   own. */
static void test_keys(void **state) {
  (void)state;
  char err[1024];
  for (int k = 0; k < LK_ACT; k++) {
    assert_int_equal(layer_kind_defaults[k].kind, k);
    for (int key = 0; key < NLAYER_KEYS; key++) {
      if (!(layer_kind_keys[k] & (1u << key)))
        continue;
      const char *e = key_message(k, layer_key_names[key], err, sizeof err);
      if (strstr(e, "unknown key") || strstr(e, "does not apply") || !strstr(e, "layers[0]."))
        fail_msg("%s's key %s is not checked as its own: %s", layer_kind_names[k],
                 layer_key_names[key], e);
    }
  }
}

/* Every kind is used by a model that the golden and backend tests run. */
static void test_models(void **state) {
  (void)state;
  char *files[UTIL_MAX_FILES], want[64];
  int n = util_models(files), used[NLAYER_KINDS] = {0};
  for (int i = 0; i < n; i++) {
    size_t len;
    char *text = util_slurp(files[i], &len);
    for (int k = 0; text && k < NLAYER_KINDS; k++) {
      snprintf(want, sizeof want, "\"%s\"", layer_kind_names[k]);
      used[k] |= strstr(text, want) != NULL;
    }
    free(text);
    free(files[i]);
  }
  for (int k = 0; k < NLAYER_KINDS; k++)
    if (!used[k])
      fail_msg("no model in models/ or tests/models/ uses %s", layer_kind_names[k]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_units),
    cmocka_unit_test(test_docs),
    cmocka_unit_test(test_keys),
    cmocka_unit_test(test_models),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
