/*
 * load.c — a study file (JSON) → a checked Study.
 *
 * A study file names a base model (inline, or the path of a model file),
 * the keys to vary and their values, a mode and the seeds:
 *
 *   {"base": {...} | "base.json", "vary": {"init": [...], ...},
 *    "mode": "one_factor" | "grid", "seeds": [0, 1, 2], "name": "...",
 *    "arithmetic": "fma" | "strict",
 *    "adaptive": {"max_seeds": 10, "alpha": 0.05}}
 *
 * Each experiment's model is the base with the varied keys' values
 * replaced (a dotted key such as "optimizer.lr" replaces one member of an
 * object), and goes through the frontend (fe_load_string) like any model
 * file, so a study accepts exactly what model files accept. The
 * frontend's messages are moved to where the value came from: "STUDY:
 * vary.init[1]: error: ...", "STUDY: base.optimizer.lr: error: ...".
 *
 * Sections: messages, naming values, the top-level keys, expansion,
 * entry points.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "../frontend/check.h"
#include "study.h"


const char *const st_mode_names[ST_NMODES] = {
#define NAME_(e, s) s,
  ST_MODES(NAME_)
#undef NAME_
};

/* Where messages go. */
typedef struct {
  const char *file;
  char *err;
  size_t errlen;
} Ctx;

/* ---- messages ---- */

/* Writes "FILE: PATH: error: MSG" (or "FILE: error: MSG"); returns -1. */
__attribute__((format(printf, 3, 4)))
static int fail(Ctx *c, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fe_vmessage(c->err, c->errlen, c->file, path, fmt, ap);
  va_end(ap);
  return -1;
}

/* What a JSON value is, for messages: "a string", "an empty array", ... */
static const char *kind(json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return json_object_size(v) ? "an object" : "an empty object";
  case JSON_ARRAY: return json_array_size(v) ? "an array" : "an empty array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_NULL: return "null";
  default: return "a boolean";
  }
}

/* Refuses an unknown word, suggesting the closest of names; -1. */
static int unknown(Ctx *c, const char *path, const char *what, const char *word,
                   const char *const *names, int n) {
  char msg[1024];
  int near = fe_unknown(msg, sizeof msg, what, word, names, n);
  return fail(c, path, "%s%s", msg,
              near || strcmp(what, "key") ? "" : " (model keys go in \"base\")");
}

/* The JSON path of vary.KEY, or vary.KEY[i] if i >= 0; a key with dots
   is quoted. */
static void vary_path(char *buf, size_t size, const char *key, int i) {
  char k[128], idx[24] = "";
  fe_printable(k, sizeof k, key);
  if (i >= 0)
    snprintf(idx, sizeof idx, "[%d]", i);
  snprintf(buf, size, strchr(key, '.') ? "vary[\"%s\"]%s" : "vary.%s%s", k, idx);
}

/* Splits the frontend's "FILE: PATH: error: MSG" into PATH and MSG. */
static void split_message(const Ctx *c, const char *fe, char *path, size_t plen,
                          const char **msg) {
  size_t n = strlen(c->file);
  const char *rest = !strncmp(fe, c->file, n) && !strncmp(fe + n, ": ", 2) ? fe + n + 2 : fe;
  const char *e = strstr(rest, "error: ");
  path[0] = 0;
  *msg = e ? e + 7 : rest;
  if (e && e > rest && e - rest >= 2 && e[-2] == ':')
    snprintf(path, plen, "%.*s", (int)(e - rest - 2), rest);
}

/* Whether the model path p lies under key (a dotted key for nesting). */
static int under(const char *p, const char *key) {
  size_t n = strlen(key);
  return !strncmp(p, key, n) && (!p[n] || p[n] == '.' || p[n] == '[');
}

/* ---- naming values ---- */

/* Appends the shortest text that reads back as d (fe_show_real). */
static void show_real(Buf *b, double d) {
  char t[40];
  fe_show_real(t, sizeof t, d);
  emitf(b, "%s", t);
}

/* Appends v as compact JSON-like text (strings bare at the top). */
static void show(Buf *b, json_t *v, int top) {
  const char *k;
  json_t *x;
  size_t i;
  int first = 1;
  switch (json_typeof(v)) {
  case JSON_STRING: emitf(b, top ? "%s" : "\"%s\"", json_string_value(v)); break;
  case JSON_INTEGER: emitf(b, "%lld", (long long)json_integer_value(v)); break;
  case JSON_REAL: show_real(b, json_real_value(v)); break;
  case JSON_TRUE: emitf(b, "true"); break;
  case JSON_FALSE: emitf(b, "false"); break;
  case JSON_NULL: emitf(b, "null"); break;
  case JSON_ARRAY:
    emitf(b, "[");
    json_array_foreach(v, i, x) {
      if (i)
        emitf(b, ",");
      show(b, x, 0);
    }
    emitf(b, "]");
    break;
  case JSON_OBJECT:
    emitf(b, "{");
    json_object_foreach(v, k, x) {
      emitf(b, first ? "\"%s\":" : ",\"%s\":", k);
      show(b, x, 0);
      first = 0;
    }
    emitf(b, "}");
    break;
  }
}

/* Whether member k of v has the same value in every object of vals. */
static int same_everywhere(json_t *vals, const char *k, json_t *v) {
  size_t i;
  json_t *o;
  json_array_foreach(vals, i, o) {
    json_t *x = json_is_object(o) ? json_object_get(o, k) : NULL;
    if (json_is_object(o) && !json_equal(x, v))
      return 0;
  }
  return 1;
}

/* The kind of a layer list's entry ("relu", {"type": "relu"}), or NULL. */
static const char *entry_kind(json_t *e) {
  json_t *t = json_is_object(e) ? json_object_get(e, "type") : e;
  return json_string_value(t);
}

/* Whether array a has an entry of kind k. */
static int has_kind(json_t *a, const char *k) {
  size_t i;
  json_t *e;
  json_array_foreach(a, i, e) {
    if (entry_kind(e) && !strcmp(entry_kind(e), k))
      return 1;
  }
  return 0;
}

/* A layer list's name: the kinds it has that some other value lacks,
   each once, joined by "+" ("batchnorm2d", "dropout+gelu"), or "plain"
   when it has no such kind; NULL if v is not a list of layer entries. */
static char *list_name(json_t *v, json_t *vals) {
  size_t i, j;
  json_t *e, *o;
  Buf b = {0};
  if (!json_is_array(v) || !json_array_size(v))
    return NULL;
  json_array_foreach(v, i, e) {
    if (!entry_kind(e))
      return free(b.buf), NULL;
    int everywhere = 1, before = 0;
    json_array_foreach(vals, j, o)
      everywhere &= json_is_array(o) && has_kind(o, entry_kind(e));
    for (j = 0; j < i; j++)
      before |= !strcmp(entry_kind(json_array_get(v, j)), entry_kind(e));
    if (!everywhere && !before)
      emitf(&b, "%s%s", b.len ? "+" : "", entry_kind(e));
  }
  if (!b.len)
    emitf(&b, "plain");
  return b.buf;
}

/* A value's name: a string as it is; an object with a "type" by its type
   and the members that tell it apart from the other values ("sgd",
   "sgd(lr=0.1)"); a layer list by the kinds that tell it apart
   (list_name); anything else as compact JSON. */
static char *value_name(json_t *v, json_t *vals) {
  Buf b = {0};
  json_t *type = json_is_object(v) ? json_object_get(v, "type") : NULL;
  char *list = list_name(v, vals);
  if (list)
    return list;
  if (!json_is_string(type)) {
    show(&b, v, 1);
    return b.buf;
  }
  emitf(&b, "%s", json_string_value(type));
  const char *k;
  json_t *x;
  int n = 0;
  json_object_foreach(v, k, x) {
    if (!strcmp(k, "type") || same_everywhere(vals, k, x))
      continue;
    emitf(&b, n++ ? ", %s=" : "(%s=", k);
    show(&b, x, 1);
  }
  if (n)
    emitf(&b, ")");
  return b.buf;
}

/* Names every value of one varied key, and the base's value last; if two
   names would be the same, all of them are compact JSON instead. */
static char **name_values(json_t *vals, json_t *basev) {
  size_t n = json_array_size(vals);
  char **names = calloc(n + 1, sizeof *names);
  for (int full = 0; full < 2; full++) {
    int clash = 0;
    for (size_t i = 0; i <= n; i++) {
      json_t *v = i < n ? json_array_get(vals, i) : basev;
      Buf b = {0};
      free(names[i]);
      if (!v)
        emitf(&b, "(default)");
      else if (full)
        show(&b, v, 1);
      names[i] = v && !full ? value_name(v, vals) : b.buf;
      for (size_t j = 0; j < i && i < n; j++)
        clash |= !strcmp(names[i], names[j]);
    }
    if (!clash)
      break;
  }
  return names;
}

/* ---- the top-level keys ---- */

static const char *const study_keys[] = {"name", "base", "mode", "vary", "seeds",
                                         "arithmetic", "adaptive"};
enum { NSTUDY_KEYS = sizeof study_keys / sizeof study_keys[0] };

/* Refuses unknown top-level keys. */
static int check_keys(Ctx *c, json_t *root) {
  const char *k;
  json_t *v;
  json_object_foreach(root, k, v) {
    int known = 0;
    for (int i = 0; i < NSTUDY_KEYS; i++)
      known |= !strcmp(k, study_keys[i]);
    if (!known)
      return unknown(c, fe_printable((char[128]){0}, 128, k), "key", k, study_keys, NSTUDY_KEYS);
  }
  return 0;
}

/* Whether s is a valid study name: a valid name (FE_NAME_RULE) that can
   name a directory. */
static int valid_name(const char *s) {
  return fe_valid_name(s) && strcmp(s, ".") && strcmp(s, "..");
}

#define NAME_RULE FE_NAME_RULE ", other than '.' and '..'"

/* name: the study's name, by default the file's name without ".json". */
static int check_name(Ctx *c, json_t *root, Study *s) {
  json_t *v = json_object_get(root, "name");
  char base[MAX_PATH_LEN], p[128];
  if (v && !json_is_string(v))
    return fail(c, "name", "expected a string, got %s", kind(v));
  if (v)
    snprintf(base, sizeof base, "%s", json_string_value(v));
  else
    fe_file_stem(base, sizeof base, c->file);
  fe_printable(p, sizeof p, base);
  if (!valid_name(base))
    return v ? fail(c, "name", "'%s' is not a valid name (" NAME_RULE ")", p)
             : fail(c, NULL, "the study is named after its file, but '%s' is not a valid "
                    "name (" NAME_RULE "); add a \"name\" key", p);
  memcpy(s->name, base, strlen(base) + 1);  /* valid_name: < 64 bytes */
  return 0;
}

/* A top-level key whose value is one of names[0..n), or absent: *out is
   its index, or dflt; expect lists the names for the message. */
static int check_choice(Ctx *c, json_t *root, const char *key, const char *expect,
                        const char *const *names, int n, int dflt, int *out) {
  json_t *v = json_object_get(root, key);
  *out = dflt;
  if (!v)
    return 0;
  if (!json_is_string(v))
    return fail(c, key, "expected a string, %s, got %s", expect, kind(v));
  for (int i = 0; i < n; i++)
    if (!strcmp(json_string_value(v), names[i]))
      return *out = i, 0;
  return unknown(c, key, key, json_string_value(v), names, n);
}

/* mode: "one_factor" (the default) or "grid". */
static int check_mode(Ctx *c, json_t *root, Study *s) {
  return check_choice(c, root, "mode", "\"one_factor\" or \"grid\"", st_mode_names, ST_NMODES,
                      ST_ONE_FACTOR, &s->mode);
}

/* arithmetic: "fma" (the default) or "strict", of every run's dense
   kernels (mlpc.h). */
static int check_arith(Ctx *c, json_t *root, Study *s) {
  return check_choice(c, root, "arithmetic", "\"fma\" or \"strict\"", arith_names,
                      NARITHMETICS, ARITH_FMA, &s->arith);
}

/* seeds: distinct non-negative integers; by default the base's seed. */
static int check_seeds(Ctx *c, json_t *root, Study *s, uint64_t base_seed) {
  json_t *v = json_object_get(root, "seeds"), *x;
  size_t i;
  char path[64];
  if (!v) {
    s->seeds = malloc(sizeof *s->seeds);
    s->seeds[0] = base_seed, s->nseeds = 1;
    return 0;
  }
  if (!json_is_array(v) || !json_array_size(v))
    return fail(c, "seeds", "expected a non-empty array of integers, got %s", kind(v));
  if (json_array_size(v) > ST_MAX_SEEDS)
    return fail(c, "seeds", "%zu seeds, more than %d", json_array_size(v), ST_MAX_SEEDS);
  s->seeds = malloc(json_array_size(v) * sizeof *s->seeds);
  json_array_foreach(v, i, x) {
    snprintf(path, sizeof path, "seeds[%zu]", i);
    if (json_is_real(x)) {
      Buf b = {0};
      show_real(&b, json_real_value(x));
      fail(c, path, "expected a non-negative integer, got %s", b.buf);
      return free(b.buf), -1;
    }
    if (!json_is_integer(x))
      return fail(c, path, "expected a non-negative integer, got %s", kind(x));
    if (json_integer_value(x) < 0)
      return fail(c, path, "expected a non-negative integer, got %lld",
                  (long long)json_integer_value(x));
    s->seeds[i] = (uint64_t)json_integer_value(x);
    for (size_t j = 0; j < i; j++)
      if (s->seeds[j] == s->seeds[i])
        return fail(c, path, "seed %llu is already seeds[%zu]",
                    (unsigned long long)s->seeds[i], j);
    s->nseeds = (int)i + 1;
  }
  return 0;
}

/* ---- adaptive seeds ---- */

static const char *const adaptive_keys[] = {"max_seeds", "alpha"};
enum { NADAPTIVE_KEYS = sizeof adaptive_keys / sizeof adaptive_keys[0] };

/* Refuses members of "adaptive" other than its keys. */
static int check_adaptive_keys(Ctx *c, json_t *v) {
  const char *k;
  json_t *x;
  char msg[1024], path[160];
  json_object_foreach(v, k, x) {
    int known = 0;
    for (int i = 0; i < NADAPTIVE_KEYS; i++)
      known |= !strcmp(k, adaptive_keys[i]);
    if (known)
      continue;
    fe_unknown(msg, sizeof msg, "key", k, adaptive_keys, NADAPTIVE_KEYS);
    snprintf(path, sizeof path, "adaptive.%s", fe_printable((char[128]){0}, 128, k));
    return fail(c, path, "%s", msg);
  }
  return 0;
}

/* adaptive.max_seeds: an integer from the number of starting seeds to
   ST_MAX_SEEDS. */
static int check_max_seeds(Ctx *c, json_t *v, const Study *s, int *out) {
  Buf b = {0};
  if (!v)
    return fail(c, "adaptive", "missing key \"max_seeds\": the most seeds a model may get");
  if (json_is_integer(v) && json_integer_value(v) >= s->nstart &&
      json_integer_value(v) <= ST_MAX_SEEDS)
    return *out = (int)json_integer_value(v), 0;
  if (json_is_number(v))
    show(&b, v, 1);
  fail(c, "adaptive.max_seeds", "expected an integer from the %d starting seed%s to %d, got %s",
       s->nstart, s->nstart == 1 ? "" : "s", ST_MAX_SEEDS, b.buf ? b.buf : kind(v));
  return free(b.buf), -1;
}

/* adaptive.alpha: the level, a number in (0, 1); 0.05 by default. */
static int check_alpha(Ctx *c, json_t *v, Study *s) {
  Buf b = {0};
  s->alpha = 0.05;
  if (!v)
    return 0;
  if (json_is_number(v) && json_number_value(v) > 0 && json_number_value(v) < 1)
    return s->alpha = json_number_value(v), 0;
  if (json_is_number(v))
    show(&b, v, 1);
  fail(c, "adaptive.alpha", "expected a number between 0 and 1 (the level, such as 0.05), "
       "got %s", b.buf ? b.buf : kind(v));
  return free(b.buf), -1;
}

/* Orders seeds. */
static int by_seed(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The seeds an adaptive study may add: the integers after its largest
   starting seed; every seed in increasing order. */
static int add_seeds(Ctx *c, Study *s, int max) {
  qsort(s->seeds, (size_t)s->nstart, sizeof *s->seeds, by_seed);
  uint64_t last = s->seeds[s->nstart - 1];
  if (last > (uint64_t)INT64_MAX - (uint64_t)(max - s->nstart))
    return fail(c, "adaptive.max_seeds", "the seeds added after the largest starting seed, "
                "%llu, would pass 2^63 - 1", (unsigned long long)last);
  s->seeds = realloc(s->seeds, (size_t)max * sizeof *s->seeds);
  for (int k = s->nstart; k < max; k++)
    s->seeds[k] = last + (uint64_t)(k - s->nstart + 1);
  s->nseeds = max;
  return 0;
}

/* adaptive: {"max_seeds": N, "alpha": A}: seeds are added to the models
   whose comparisons are undecided, up to N each. */
static int check_adaptive(Ctx *c, json_t *root, Study *s) {
  json_t *v = json_object_get(root, "adaptive");
  int max = 0;
  s->nstart = s->nseeds;
  if (!v)
    return 0;
  if (!json_is_object(v))
    return fail(c, "adaptive", "expected an object {\"max_seeds\": N, \"alpha\": A}, got %s",
                kind(v));
  if (check_adaptive_keys(c, v) || check_max_seeds(c, json_object_get(v, "max_seeds"), s, &max) ||
      check_alpha(c, json_object_get(v, "alpha"), s))
    return -1;
  return add_seeds(c, s, max);
}

static int well_indexed(const char *key);

/* Checks one varied key's name: dotted parts not empty, not "seed", not
   inside another varied key. */
static int check_vary_key(Ctx *c, json_t *vary, const char *key) {
  char path[300];
  vary_path(path, sizeof path, key, -1);
  size_t n = strlen(key);
  if (!n || key[0] == '.' || key[n - 1] == '.' || strstr(key, ".."))
    return fail(c, path, "'%s' is not a model key (dotted parts must not be empty)",
                fe_printable((char[128]){0}, 128, key));
  if (!strcmp(key, "seed"))
    return fail(c, path, "the seeds of a study are its \"seeds\" key, not a varied key");
  if (!well_indexed(key))
    return fail(c, path, "'%s' is not a model key (an index is [N], N >= 0, as in "
                "\"layers[3].p\")", fe_printable((char[128]){0}, 128, key));
  const char *k;
  json_t *v;
  json_object_foreach(vary, k, v)
    if (strcmp(k, key) && under(key, k))
      return fail(c, path, "'%s' lies inside '%s', which is varied too",
                  fe_printable((char[128]){0}, 128, key), fe_printable((char[128]){0}, 128, k));
  return 0;
}

/* Checks one varied key's values: a non-empty array, no value twice. */
static int check_vary_values(Ctx *c, const char *key, json_t *vals) {
  char path[300], p2[300];
  vary_path(path, sizeof path, key, -1);
  if (!json_is_array(vals) || !json_array_size(vals))
    return fail(c, path, "expected a non-empty array of values, got %s", kind(vals));
  for (size_t i = 0; i < json_array_size(vals); i++)
    for (size_t j = 0; j < i; j++)
      if (json_equal(json_array_get(vals, i), json_array_get(vals, j))) {
        vary_path(p2, sizeof p2, key, (int)i);
        return fail(c, p2, "the same value as %s[%zu]", path, j);
      }
  return 0;
}

/* vary: an object of model keys → arrays of values. */
static int check_vary(Ctx *c, json_t *root, Study *s) {
  json_t *vary = json_object_get(root, "vary"), *vals;
  const char *key;
  if (!vary)
    return fail(c, NULL, "missing key \"vary\": the model keys to vary and their values, "
                "e.g. \"vary\": {\"init\": [\"normal\", \"kaiming_normal\"]}");
  if (!json_is_object(vary) || !json_object_size(vary))
    return fail(c, "vary", "expected a non-empty object of model keys and values, got %s",
                kind(vary));
  if (json_object_size(vary) > ST_MAX_KEYS)
    return fail(c, "vary", "%zu keys, more than %d", json_object_size(vary), ST_MAX_KEYS);
  json_object_foreach(vary, key, vals) {
    if (check_vary_key(c, vary, key) || check_vary_values(c, key, vals))
      return -1;
    s->keys[s->nkeys++] = strdup(key);
  }
  return 0;
}

/* ---- the base ---- */

/* Reads a whole small file into memory (fe_read_file; fe_free it); NULL
   with a message naming what (a path) or, without, the file alone. */
static char *read_text(Ctx *c, const char *path, const char *what) {
  char *text = NULL, why[512];
  size_t len;
  if (fe_read_file(path, what != NULL, what ? "model" : "study", &text, &len, why, sizeof why))
    fail(c, what, "%s", why);
  return text;
}

/* A base given as a path, relative to the study file's directory. */
static json_t *base_file(Ctx *c, const char *rel, Model *m) {
  char path[MAX_PATH_LEN];
  const char *slash = strrchr(c->file, '/');
  int n = rel[0] == '/' || !slash
              ? snprintf(path, sizeof path, "%s", rel)
              : snprintf(path, sizeof path, "%.*s/%s", (int)(slash - c->file), c->file, rel);
  if (n >= (int)sizeof path) {
    fail(c, "base", "its path is %d bytes long (beside the study file), longer than any the "
         "system takes (at most %zu)", n, sizeof path - 1);
    return NULL;
  }
  char *text = read_text(c, path, "base");
  if (!text || fe_load(path, m, c->err, c->errlen)) {
    fe_free(text);
    return NULL;
  }
  json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
  fe_free(text);
  if (!o)
    fail(c, "base", "cannot parse '%s'", path);
  return o;
}

/* Loads model text through the frontend; on error, the message (FILE:
   PATH: error: MSG) has PATH moved by the caller's map. */
typedef void Remap(void *ctx, char *path, size_t size);

/* Checks a model given as JSON, moving the frontend's paths with map. */
static int check_model(Ctx *c, json_t *o, Model *m, Remap *map, void *ctx) {
  char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS), fe[2048], path[512];
  const char *msg;
  int rc = fe_load_string(text, c->file, m, fe, sizeof fe);
  free(text);
  if (!rc) { /* and its arrays must fit generated code (mlpc.h) */
    static Ir ir;
    ir_lower(m, &ir);
    rc = emit_check_size(&ir, fe, sizeof fe);
  }
  if (!rc)
    return 0;
  split_message(c, fe, path, sizeof path, &msg);
  map(ctx, path, sizeof path);
  return fail(c, path, "%s", msg);
}

/* Paths in an inline base: under "base". */
static void map_base(void *ctx, char *path, size_t size) {
  char t[512];
  (void)ctx;
  snprintf(t, sizeof t, "%s", path);
  snprintf(path, size, t[0] ? "base.%s" : "base", t);
}

/* base: a model object, or the path of a model file. Names the base model
   (its "name", else the study's or its file's) so that every variant
   carries the same name. */
static json_t *check_base(Ctx *c, json_t *root, Study *s, Model *m) {
  json_t *v = json_object_get(root, "base"), *o = NULL;
  if (!v) {
    fail(c, NULL, "missing key \"base\": the base model, inline or the path of a model file");
    return NULL;
  }
  if (json_is_string(v))
    o = base_file(c, json_string_value(v), m);
  else if (!json_is_object(v))
    fail(c, "base", "expected a model (an object) or the path of a model file, got %s",
         kind(v));
  else {
    o = json_deep_copy(v);
    if (!json_object_get(o, "name"))
      json_object_set_new(o, "name", json_string(s->name));
    if (check_model(c, o, m, map_base, NULL)) {
      json_decref(o);
      return NULL;
    }
  }
  if (o && !json_object_get(o, "name"))
    json_object_set_new(o, "name", json_string(m->name));
  return o;
}

/* ---- expansion ---- */

/* The keys whose value may be a "type"-tagged object, and the type the
   base model has when it leaves one out. */
static const char *base_type(const char *key, const Model *m) {
  return !strcmp(key, "optimizer") ? opt_names[m->opt.type]
       : !strcmp(key, "norm") ? norm_names[m->norm.type]
       : !strcmp(key, "activation") ? act_names[m->act.type]
       : !strcmp(key, "schedule") ? sched_names[m->recipe.schedule] : NULL;
}

/* One part of a varied key: "optimizer", "p", or "layers[3]" (a name and
   an index into the array it names). */
typedef struct {
  char name[256];
  long index;  /* -1: none */
} Part;

/* Reads the part of key from k into p; returns where the next part starts
   (after the '.'), the end of key, or NULL for a malformed index. */
static const char *next_part(const char *k, Part *p) {
  size_t n = strcspn(k, ".[");
  char *end;
  snprintf(p->name, sizeof p->name, "%.*s", (int)n, k);
  p->index = -1;
  if (k[n] == '[') {
    const char *d = k + n + 1; /* plain decimal: no sign, space or leading 0 */
    if (*d < '0' || *d > '9' || (*d == '0' && d[1] != ']'))
      return NULL;
    p->index = strtol(d, &end, 10);
    if (end == k + n + 1 || *end != ']' || p->index < 0 || (end[1] && end[1] != '.'))
      return NULL;
    n = (size_t)(end + 1 - k);
  }
  return k[n] == '.' ? k + n + 1 : k + n;
}

/* Whether every part of key reads (no malformed [index]). */
static int well_indexed(const char *key) {
  Part p;
  const char *k = key;
  while (k && *k)
    k = next_part(k, &p);
  return k != NULL;
}

/* The entry i of array a as an object ("relu" becomes {"type": "relu"});
   NULL when a has none, with what it is in *what. */
static json_t *entry(json_t *a, long i, const char **what) {
  json_t *x = json_is_array(a) ? json_array_get(a, (size_t)i) : NULL;
  if (json_is_string(x)) {
    json_t *n = json_object();
    json_object_set(n, "type", x);
    json_array_set_new(a, (size_t)i, n);
    x = n;
  }
  *what = !a ? "missing" : !json_is_array(a) ? kind(a) : !x ? "past the array's end" : kind(x);
  return json_is_object(x) ? x : NULL;
}

/* The object named by part p of o, created if missing (with the base
   model's type for a tagged key at the top); a "type"-only string such as
   "sgd" becomes {"type": "sgd"}. NULL if it is neither, with *what. */
static json_t *child(json_t *o, const Part *p, int top, const Model *m, const char **what) {
  json_t *x = json_object_get(o, p->name);
  if (p->index >= 0)
    return entry(x, p->index, what);
  const char *type = top ? base_type(p->name, m) : NULL;
  if (!x || json_is_string(x)) {
    json_t *n = json_object();
    if (x)
      json_object_set(n, "type", x);
    else if (type)
      json_object_set_new(n, "type", json_string(type));
    json_object_set_new(o, p->name, n);
    x = n;
  }
  *what = kind(x);
  return json_is_object(x) ? x : NULL;
}

/* Sets the value at key ("optimizer.lr", "layers[3].p", "layers[3]") in
   o; -1 when a part on the way is not there or not an object, with what
   it is in *what. */
static int set_key(json_t *o, const char *key, const Model *m, json_t *value,
                   const char **what) {
  Part p;
  const char *k = key, *next;
  for (int top = 1; (next = next_part(k, &p)) && *next; k = next, top = 0)
    if (!(o = child(o, &p, top, m, what)))
      return -1;
  if (!next)
    return *what = "not a key (a malformed [index])", -1;
  if (p.index < 0)
    return json_object_set(o, p.name, value);
  json_t *a = json_object_get(o, p.name);
  if (!entry(a, p.index, what) && (!json_is_array(a) || (size_t)p.index >= json_array_size(a)))
    return -1;
  return json_array_set(a, (size_t)p.index, value);
}

/* The value key names in o, or NULL. */
static json_t *get_key(json_t *o, const char *key) {
  Part p;
  for (const char *k = key; o && k && *k;) {
    k = next_part(k, &p);
    json_t *x = json_object_get(o, p.name);
    if (p.index >= 0)
      x = json_is_array(x) ? json_array_get(x, (size_t)p.index) : NULL;
    if (json_is_string(x) && k && !strcmp(k, "type"))
      return x;
    if (!k || !*k)
      return x;
    o = json_is_object(x) ? x : NULL;
  }
  return NULL;
}

/* One experiment being built: which value of each key it takes (-1: the
   base's). */
typedef struct {
  Study *s;
  json_t *base, *vary;
  const Model *base_model;
  int pick[ST_MAX_KEYS];
} Expand;

/* Moves a frontend path to the varied value it lies under; a path
   elsewhere is about the combination, and says which. */
static void map_variant(void *ctx, char *path, size_t size) {
  Expand *x = ctx;
  char vp[300];
  Buf b = {0};
  for (int k = 0; k < x->s->nkeys; k++)
    if (x->pick[k] >= 0 && path[0] && under(path, x->s->keys[k])) {
      vary_path(vp, sizeof vp, x->s->keys[k], x->pick[k]);
      emitf(&b, "%s%s", vp, path + strlen(x->s->keys[k]));
      snprintf(path, size, "%s", b.buf);
      free(b.buf);
      return;
    }
  emitf(&b, "the experiment with ");
  for (int k = 0, n = 0; k < x->s->nkeys; k++)
    if (x->pick[k] >= 0) {
      vary_path(vp, sizeof vp, x->s->keys[k], x->pick[k]);
      emitf(&b, "%s%s", n++ ? " and " : "", vp);
    }
  if (path[0])
    emitf(&b, ": %s", path);
  snprintf(path, size, "%s", b.buf);
  free(b.buf);
}

/* Refuses a single change (one key picked) that has no effect on the
   model it makes (fe_overridden): its experiment would be the base again
   under another name. */
static int no_effect(Ctx *c, const Expand *x, const Model *m) {
  int k = -1, n = 0;
  char path[300];
  for (int i = 0; i < x->s->nkeys; i++)
    if (x->pick[i] >= 0)
      k = i, n++;
  const char *why = n == 1 ? fe_overridden(m, x->s->keys[k]) : NULL;
  if (!why)
    return 0;
  vary_path(path, sizeof path, x->s->keys[k], x->pick[k]);
  return fail(c, path, "has no effect: %s", why);
}

/* Builds the model of the current picks and checks it. */
static int build(Ctx *c, Expand *x, json_t **out, Model *m) {
  json_t *o = json_deep_copy(x->base);
  char path[300];
  for (int k = 0; k < x->s->nkeys; k++) {
    if (x->pick[k] < 0)
      continue;
    const char *key = x->s->keys[k], *what = "";
    json_t *v = json_array_get(json_object_get(x->vary, key), x->pick[k]);
    if (set_key(o, key, x->base_model, v, &what)) {
      json_decref(o);
      vary_path(path, sizeof path, key, x->pick[k]);
      return fail(c, path, "cannot set '%s': its parent in the base model is %s, "
                  "not an object", key, what);
    }
  }
  if (check_model(c, o, m, map_variant, x) || no_effect(c, x, m)) {
    json_decref(o);
    return -1;
  }
  *out = o;
  return 0;
}

/* Appends the experiment of the current picks to s. */
static int add_experiment(Ctx *c, Expand *x, char ***names) {
  Study *s = x->s;
  StExperiment *e = &s->exp[s->nexp];
  json_t *o;
  if (build(c, x, &o, &e->model))
    return -1;
  e->json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(o);
  Buf name = {0};
  for (int k = 0; k < s->nkeys; k++) {
    int i = x->pick[k] >= 0 ? x->pick[k] : (int)json_array_size(json_object_get(x->vary, s->keys[k]));
    e->values[k] = strdup(names[k][i]);
    if (x->pick[k] >= 0)
      emitf(&name, "%s%s=%s", name.len ? ", " : "", s->keys[k], names[k][i]);
  }
  e->name = name.buf;
  int one = s->mode == ST_ONE_FACTOR;
  int k = 0;
  while (one && x->pick[k] < 0)
    k++;
  e->factor = strdup(one ? s->keys[k] : "");
  e->value = strdup(one ? e->values[k] : "");
  s->nexp++;
  return 0;
}

/* The number of experiments: a sum (one factor) or a product (grid). */
static long count_experiments(Study *s, json_t *vary) {
  long n = s->mode == ST_GRID;
  for (int k = 0; k < s->nkeys; k++) {
    long m = (long)json_array_size(json_object_get(vary, s->keys[k]));
    n = s->mode == ST_GRID ? (n * m > ST_MAX_EXPERIMENTS ? ST_MAX_EXPERIMENTS + 1 : n * m)
                           : n + m;
  }
  return n;
}

/* Checks every single change first (so that a bad value is named where
   it stands), then builds the experiments in order: one key at a time,
   or the grid with the first key varying slowest. */
static int expand(Ctx *c, Expand *x, char ***names) {
  Study *s = x->s;
  json_t *o;
  Model *m = malloc(sizeof *m);
  for (int k = 0; k < s->nkeys; k++)
    x->pick[k] = -1;
  for (int k = 0; k < s->nkeys; k++)
    for (int i = 0; i < (int)json_array_size(json_object_get(x->vary, s->keys[k])); i++) {
      x->pick[k] = i;
      int rc = s->mode == ST_ONE_FACTOR ? add_experiment(c, x, names) : build(c, x, &o, m);
      if (s->mode == ST_GRID && !rc)
        json_decref(o);
      x->pick[k] = -1;
      if (rc)
        return free(m), -1;
    }
  free(m);
  if (s->mode == ST_ONE_FACTOR)
    return 0;
  for (int k = 0; k < s->nkeys; k++)
    x->pick[k] = 0;
  for (;;) {
    if (add_experiment(c, x, names))
      return -1;
    int k = s->nkeys - 1;
    for (; k >= 0; k--) {
      if (++x->pick[k] < (int)json_array_size(json_object_get(x->vary, s->keys[k])))
        break;
      x->pick[k] = 0;
    }
    if (k < 0)
      return 0;
  }
}

/* Names the values of every varied key, then expands. */
static int expand_all(Ctx *c, Study *s, json_t *base, const Model *m, json_t *vary) {
  char **names[ST_MAX_KEYS];
  Expand x = {s, base, vary, m, {0}};
  long n = count_experiments(s, vary);
  if (n > ST_MAX_EXPERIMENTS)
    return fail(c, "vary", "more than %d experiments", ST_MAX_EXPERIMENTS);
  s->exp = calloc((size_t)n, sizeof *s->exp);
  for (int k = 0; k < s->nkeys; k++)
    names[k] = name_values(json_object_get(vary, s->keys[k]), get_key(base, s->keys[k]));
  int rc = expand(c, &x, names);
  for (int k = 0; k < s->nkeys; k++) {
    for (size_t i = 0; i <= json_array_size(json_object_get(vary, s->keys[k])); i++)
      free(names[k][i]);
    free(names[k]);
  }
  return rc;
}

/* ---- entry points ---- */

/* Parses the study file; NULL with a FILE:LINE:COL message. */
static json_t *parse(Ctx *c) {
  char *text = read_text(c, c->file, NULL);
  json_error_t je;
  if (!text)
    return NULL;
  if (strspn(text, " \t\r\n") == strlen(text)) {
    fe_free(text);
    fail(c, NULL, "empty file, expected a JSON object");
    return NULL;
  }
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  int tiny = root && fe_check_underflow(text, strlen(text), c->file, c->err, c->errlen);
  fe_free(text);
  if (!root)
    fe_syntax_error(c->err, c->errlen, c->file, &je);
  else if (tiny) {
    json_decref(root);
    return NULL;
  } else if (!json_is_object(root)) {
    fail(c, NULL, "expected a JSON object at the top level, got %s", kind(root));
    json_decref(root);
    return NULL;
  }
  return root;
}

int st_is_study(const char *path) {
  json_t *root = json_load_file(path, 0, NULL);
  int yes = json_is_object(root) &&
            (json_object_get(root, "base") || json_object_get(root, "vary"));
  json_decref(root);
  return yes;
}

int st_load(const char *path, Study *s, char *err, size_t errlen) {
  Ctx c = {path, err, errlen};
  static Model base_model;
  memset(s, 0, sizeof *s);
  snprintf(s->file, sizeof s->file, "%s", path);
  json_t *root = parse(&c), *base = NULL;
  int rc = !root || check_keys(&c, root) || check_name(&c, root, s) ||
           check_mode(&c, root, s) || check_arith(&c, root, s) ||
           !(base = check_base(&c, root, s, &base_model)) ||
           check_vary(&c, root, s) || check_seeds(&c, root, s, base_model.seed) ||
           check_adaptive(&c, root, s) ||
           expand_all(&c, s, base, &base_model, json_object_get(root, "vary"));
  if (!rc) {
    s->base_json = json_dumps(base, JSON_COMPACT | JSON_SORT_KEYS);
    s->base = base_model;
  }
  json_decref(base);
  json_decref(root);
  if (rc)
    st_free(s);
  return rc ? -1 : 0;
}

/* Sets key in an experiment's JSON to the value its model now has. */
static void sync_json(StExperiment *e, const char *key) {
  json_t *o = json_loads(e->json, 0, NULL);
  const Model *m = &e->model;
  if (!strcmp(key, "data"))
    json_object_set_new(o, key, json_string(m->data));
  else if (!strcmp(key, "epochs"))
    json_object_set_new(o, key, json_integer(m->epochs));
  else if (!strcmp(key, "max_batches") && m->max_batches > 0)
    json_object_set_new(o, key, json_integer(m->max_batches));
  free(e->json);
  e->json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(o);
}

int st_override(Study *s, const char *flag, const char *key, const char *text,
                char *err, size_t errlen) {
  if (fe_override(&s->base, flag, key, text, err, errlen))
    return -1;
  for (int i = 0; i < s->nexp; i++) {
    if (fe_override(&s->exp[i].model, flag, key, text, err, errlen))
      return -1;
    sync_json(&s->exp[i], key);
  }
  return 0;
}

int st_on_val(const Study *s) {
  for (int i = 0; i < s->nexp; i++)
    if (!rt_val_size(&s->exp[i].model.recipe, 1))
      return 0;
  return s->nexp > 0;
}

void st_free(Study *s) {
  for (int i = 0; i < s->nexp; i++) {
    StExperiment *e = &s->exp[i];
    free(e->name), free(e->factor), free(e->value), free(e->json);
    for (int k = 0; k < s->nkeys; k++)
      free(e->values[k]);
  }
  for (int k = 0; k < s->nkeys; k++)
    free(s->keys[k]);
  free(s->exp);
  free(s->seeds);
  free(s->base_json);
  memset(s, 0, sizeof *s);
}
