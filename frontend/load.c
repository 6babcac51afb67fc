/*
 * load.c — the frontend: a model file (JSON) → a checked Model.
 *
 * Jansson parses the text; syntax errors come back as FILE:LINE:COL.
 * Then every key is checked by one small function from a table, which
 * names the key's JSON path in its messages ("FILE: optimizer.lr: error:
 * ..."). Command-line overrides (fe_override) go through the very same
 * functions with the flag's text in place of a JSON value, so a value is
 * accepted or refused, and described, the same way wherever it comes from.
 * Reading the file, the message format and the suggestions are the kit
 * in check.c, which study files use too.
 *
 * Sections: messages, suggestions, scalar readers, the "type"-tagged
 * objects (norm, activation, optimizer), the top-level keys, checks
 * across keys, entry points.
 */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "check.h"
#include "model.h"

#define MAX_PARAMS (1L << 28)      /* trainable parameters at most        */
#define MAX_ACTIVATIONS (1L << 28) /* batch_size × features at most       */
#define MAX_SAMPLE (1L << 22)      /* features of one sample between layers */
#define MAX_WINDOW 1024            /* kernel sizes, strides, paddings       */

/* Where messages go, and what they are about. */
typedef struct {
  const char *file;  /* the model file, for messages                     */
  const char *flag;  /* under fe_override: the flag, which replaces both
                        file and path, and the value is the flag's text   */
  char path[256];    /* JSON path of the value being checked              */
  char got[96];      /* the value, as messages show it                    */
  char *err;
  size_t errlen;
} Ctx;

/* Checks one value and stores it into the model. */
typedef int Check(Ctx *c, json_t *v, Model *m);

/* ---- messages ---- */

/* Writes one message, prefixed with what it is about; returns -1. */
static int fail(Ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fe_vmessage(c->err, c->errlen, c->flag ? c->flag : c->file, c->flag ? NULL : c->path, fmt, ap);
  va_end(ap);
  return -1;
}

/* Appends ".key" (or "key" at the top) to the path; returns its old end. */
static size_t enter(Ctx *c, const char *key) {
  size_t n = strlen(c->path);
  char k[64];
  fe_printable(k, sizeof k, key);
  snprintf(c->path + n, sizeof c->path - n, "%s%s", n ? "." : "", k);
  return n;
}

/* Appends "[i]" to the path; returns its old end. */
static size_t enter_index(Ctx *c, size_t i) {
  size_t n = strlen(c->path);
  snprintf(c->path + n, sizeof c->path - n, "[%zu]", i);
  return n;
}

/* Cuts the path back to what it was before enter. */
static void leave(Ctx *c, size_t n) {
  c->path[n] = '\0';
}

/* Formats d in the fewest digits that read back as d (fe_show_real),
   keeping a ".0" on whole numbers so that 784.0 does not look like the
   integer 784. */
static void format_real(char *buf, size_t size, double d) {
  fe_show_real(buf, size, d);
  if (!strpbrk(buf, ".en"))
    strncat(buf, ".0", size - strlen(buf) - 1);
}

/* Whether text is spelt like a number (checked further by strtod). */
static int numeric_text(const char *text) {
  return *text && strspn(text, "0123456789+-.eE") == strlen(text);
}

/* A flag's text as messages show it: numbers bare, anything else quoted. */
static void show_text(char *buf, size_t size, const char *text) {
  char p[80];
  fe_printable(p, sizeof p, text);
  snprintf(buf, size, numeric_text(text) ? "%s" : "'%s'", p);
}

/* A JSON value as messages show it: scalars as written, or their type. */
static void show_json(char *buf, size_t size, json_t *v) {
  char p[80];
  switch (json_typeof(v)) {
  case JSON_OBJECT:  snprintf(buf, size, "an object"); break;
  case JSON_ARRAY:   snprintf(buf, size, "an array"); break;
  case JSON_INTEGER: snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
  case JSON_REAL:    format_real(buf, size, json_real_value(v)); break;
  case JSON_TRUE:    snprintf(buf, size, "true"); break;
  case JSON_FALSE:   snprintf(buf, size, "false"); break;
  case JSON_NULL:    snprintf(buf, size, "null"); break;
  case JSON_STRING:
    fe_printable(p, sizeof p, json_string_value(v));
    snprintf(buf, size, "\"%s\"", p);
    break;
  }
}

/* The value being checked, as messages show it ("got ..."). */
static const char *got(Ctx *c, json_t *v) {
  if (c->flag)
    show_text(c->got, sizeof c->got, json_string_value(v));
  else
    show_json(c->got, sizeof c->got, v);
  return c->got;
}

/* ---- suggestions ---- */

/* Reports a name that is not one of names, with a suggestion and the list. */
static int unknown(Ctx *c, const char *what, const char *s,
                   const char *const *names, int n) {
  char msg[1024];
  fe_unknown(msg, sizeof msg, what, s, names, n);
  return fail(c, "%s", msg);
}

/* ---- scalar readers: the value's type first, then its range ---- */

/* Parses a flag's integer: 1 if it is one, 0 if it is some other number
   (or too big for any integer), -1 if it is not a number at all. */
static int parse_int(const char *text, long long *out) {
  char *end;
  if (*text && strspn(text, "-0123456789") == strlen(text)) {
    errno = 0;
    *out = strtoll(text, &end, 10);
    if (*end == '\0')
      return errno == ERANGE ? 0 : 1;
  }
  if (!numeric_text(text))
    return -1;
  (void)strtod(text, &end);
  return *end == '\0' ? 0 : -1;
}

/* Parses a flag's number: 1 if it is a finite one, 0 if it overflows,
   2 if it underflows to 0, -1 if it is not a number ("inf", "0x10", " 1"
   and "1 " are not). */
static int parse_real(const char *text, double *out) {
  char *end;
  if (!numeric_text(text))
    return -1;
  *out = strtod(text, &end);
  if (*end != '\0')
    return -1;
  return fe_underflows(text) ? 2 : isfinite(*out) ? 1 : 0;
}

/* Reads an integer in lo..hi. */
static int get_int(Ctx *c, json_t *v, long long lo, long long hi, long long *out) {
  long long x = 0;
  int kind;
  if (c->flag)
    kind = parse_int(json_string_value(v), &x);
  else if (json_is_integer(v))
    kind = 1, x = json_integer_value(v);
  else
    kind = json_is_real(v) ? 0 : -1;
  if (kind < 0)
    return fail(c, "expected an integer, got %s", got(c, v));
  if (kind == 0 || x < lo || x > hi)
    return fail(c, "must be an integer in %lld..%lld, got %s", lo, hi, got(c, v));
  *out = x;
  return 0;
}

/* Reads an int in lo..hi. */
static int get_small_int(Ctx *c, json_t *v, int lo, int hi, int *out) {
  long long x = 0;
  if (get_int(c, v, lo, hi, &x))
    return -1;
  *out = (int)x;
  return 0;
}

/* A range of numbers, as messages describe it. */
typedef struct {
  const char *desc;
  double lo, hi;
  int lo_open, hi_open;
} Range;

static const Range FINITE = {"a finite number", -HUGE_VAL, HUGE_VAL, 0, 0};
static const Range POSITIVE = {"a positive number", 0, HUGE_VAL, 1, 0};
static const Range NONNEG = {"a non-negative number", 0, HUGE_VAL, 0, 0};
static const Range UNIT = {"in [0, 1]", 0, 1, 0, 0};
static const Range UNIT_OPEN = {"in [0, 1)", 0, 1, 0, 1};
static const Range OPEN_UNIT = {"in (0, 1)", 0, 1, 1, 1};

/* Whether d lies in r. */
static int in_range(const Range *r, double d) {
  return (r->lo_open ? d > r->lo : d >= r->lo) &&
         (r->hi_open ? d < r->hi : d <= r->hi);
}

/* Reads a finite number in r (JSON integers count as numbers). */
static int get_real(Ctx *c, json_t *v, const Range *r, double *out) {
  double d = 0;
  int kind;
  if (c->flag)
    kind = parse_real(json_string_value(v), &d);
  else
    kind = json_is_number(v) ? (d = json_number_value(v), 1) : -1;
  if (kind < 0)
    return fail(c, "expected a number, got %s", got(c, v));
  if (kind == 0)
    return fail(c, "must be a finite number, got %s", got(c, v));
  if (kind == 2)
    return fail(c, "%s " FE_TINY, got(c, v));
  if (!in_range(r, d))
    return fail(c, "must be %s, got %s", r->desc, got(c, v));
  *out = d;
  return 0;
}

/* Reads a boolean: JSON's true or false, nothing else. */
static int get_bool(Ctx *c, json_t *v, int *out) {
  const char *t = c->flag ? json_string_value(v) : NULL;
  if (c->flag ? strcmp(t, "true") && strcmp(t, "false") : !json_is_boolean(v))
    return fail(c, "expected true or false, got %s", got(c, v));
  *out = c->flag ? !strcmp(t, "true") : json_is_true(v);
  return 0;
}

/* Reads a string. */
static int get_text(Ctx *c, json_t *v, const char **out) {
  if (!json_is_string(v))
    return fail(c, "expected a string, got %s", got(c, v));
  *out = json_string_value(v);
  return 0;
}

/* Reads one of names[0..n); what names the kind of thing in messages. */
static int get_enum(Ctx *c, json_t *v, const char *what,
                    const char *const *names, int n, int *out) {
  const char *s = NULL;
  if (get_text(c, v, &s))
    return -1;
  for (int i = 0; i < n; i++)
    if (!strcmp(s, names[i])) {
      *out = i;
      return 0;
    }
  return unknown(c, what, s, names, n);
}

/* ---- objects: the top level and the "type"-tagged norm, activation
   and optimizer, each a table of keys ---- */

#define ALL (~0u)
#define T(t) (1u << (t))

/* A key: the types it applies to, and its check. */
typedef struct {
  const char *key;
  unsigned types;  /* bit t: applies to type t                           */
  Check *check;
} Field;

/* An object's keys; a tagged object also has its "type" names. */
typedef struct {
  const char *what;          /* the key it sits under, e.g. "optimizer"   */
  const char *const *names;  /* its types; NULL at the top level          */
  int ntypes;
  const Field *fields;       /* ends with a NULL key                      */
  void (*reset)(Model *m, int type);  /* selects the type, its defaults   */
  int (*finish)(Ctx *c, Model *m);    /* checks across keys, or NULL      */
  const unsigned *keys;      /* or by type: bit i, fields[i] applies      */
  int nkeyed;                /* types 0 .. nkeyed-1 have a row of keys    */
} Object;

/* The types field f applies to: its own mask, and each type whose row of
   keys has it. */
static unsigned field_types(const Object *o, const Field *f) {
  unsigned mask = f->types;
  for (int t = 0; t < o->nkeyed; t++)
    if (o->keys[t] & (1u << (f - o->fields)))
      mask |= T(t);
  return mask;
}

/* The field called key, or NULL. */
static const Field *find_field(const Object *o, const char *key) {
  for (const Field *f = o->fields; f->key; f++)
    if (!strcmp(f->key, key))
      return f;
  return NULL;
}

/* Writes the names of the types in mask as "a, b". */
static void type_list(char *buf, size_t size, const Object *o, unsigned mask) {
  const char *names[32];
  int n = 0;
  for (int t = 0; t < o->ntypes; t++)
    if (mask & T(t))
      names[n++] = o->names[t];
  fe_join(buf, size, names, n);
}

/* Collects the keys an object of this type takes (type -1: top level). */
static int key_names(const Object *o, int type, const char **names) {
  int n = 0;
  if (type >= 0)
    names[n++] = "type";
  for (const Field *f = o->fields; f->key; f++)
    if (type < 0 || (field_types(o, f) & T(type)))
      names[n++] = f->key;
  return n;
}

enum { NTAGGED = 4 };
static const Object *const tagged[NTAGGED];  /* norm, activation, optimizer,
                                                schedule */

/* Writes "'norm.eps' or 'optimizer.eps'" for a key that belongs inside
   the tagged objects; returns how many there were. */
static int nested_hint(char *buf, size_t size, const char *key) {
  int n = 0;
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < NTAGGED; i++)
    if (find_field(tagged[i], key))
      len += snprintf(buf + len, size - len, "%s'%s.%s'", n++ ? " or " : "",
                      tagged[i]->what, key);
  return n;
}

/* Reports an unknown key, suggesting the closest known one. */
static int unknown_key(Ctx *c, const Object *o, int type, const char *key) {
  const char *names[64], *near;
  char list[512], p[80], hint[128], owner[64] = "";
  int n = key_names(o, type, names);
  fe_printable(p, sizeof p, key);
  if (type >= 0)
    snprintf(owner, sizeof owner, " for %s", o->names[type]);
  if ((near = fe_closest(key, names, n)))
    return fail(c, "unknown key '%s'%s (did you mean '%s'?)", p, owner, near);
  if (type < 0 && !o->what && nested_hint(hint, sizeof hint, key))
    return fail(c, "unknown key '%s' (did you mean %s?)", p, hint);
  fe_join(list, sizeof list, names, n);
  return fail(c, "unknown key '%s'%s; expected one of %s", p, owner, list);
}

/* Reports a known key used with a type it does not apply to. */
static int misplaced_key(Ctx *c, const Object *o, int type, const Field *f) {
  char list[256];
  type_list(list, sizeof list, o, field_types(o, f));
  return fail(c, "'%s' does not apply to %s %s (only to %s)", f->key,
              o->what, o->names[type], list);
}

/* Checks every key of obj with its field's check (type -1: top level). */
static int check_keys(Ctx *c, json_t *obj, const Object *o, int type, Model *m) {
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (type >= 0 && !strcmp(key, "type"))
      continue;
    size_t n = enter(c, key);
    const Field *f = find_field(o, key);
    if (!f)
      return unknown_key(c, o, type, key);
    if (type >= 0 && !(field_types(o, f) & T(type)))
      return misplaced_key(c, o, type, f);
    if (f->check(c, v, m))
      return -1;
    leave(c, n);
  }
  return 0;
}

/* A tagged object's value: a type name, or {"type": name, ...}. */
static int check_tagged(Ctx *c, json_t *v, const Object *o, Model *m) {
  int type;
  char list[256];
  if (c->flag || json_is_string(v)) {
    if (get_enum(c, v, o->what, o->names, o->ntypes, &type))
      return -1;
    o->reset(m, type);
    return o->finish ? o->finish(c, m) : 0;
  }
  if (!json_is_object(v))
    return fail(c, "expected a string or an object, got %s", got(c, v));
  json_t *t = json_object_get(v, "type");
  fe_join(list, sizeof list, o->names, o->ntypes);
  if (!t)
    return fail(c, "missing key 'type' (one of %s)", list);
  size_t n = enter(c, "type");
  if (get_enum(c, t, o->what, o->names, o->ntypes, &type))
    return -1;
  leave(c, n);
  o->reset(m, type);
  if (check_keys(c, v, o, type, m))
    return -1;
  return o->finish ? o->finish(c, m) : 0;
}

/* -- norm -- */

/* Selects a norm with PyTorch's defaults. */
static void norm_reset(Model *m, int type) {
  m->norm = (Norm){.type = type, .eps = 1e-5, .momentum = 0.1};
}

/* norm.eps: > 0. */
static int check_norm_eps(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->norm.eps);
}

/* norm.momentum: in [0, 1], or null for a cumulative average. */
static int check_norm_momentum(Ctx *c, json_t *v, Model *m) {
  m->norm.cumulative = !c->flag && json_is_null(v);
  if (m->norm.cumulative)
    return 0;
  return get_real(c, v, &UNIT, &m->norm.momentum);
}

static const Field norm_fields[] = {
  {"eps",      T(NORM_BATCH) | T(NORM_LAYER), check_norm_eps},
  {"momentum", T(NORM_BATCH),                 check_norm_momentum},
  {NULL, 0, NULL},
};

static const Object norm_object = {
  "norm", norm_names, NNORMS, norm_fields, norm_reset, NULL, NULL, 0,
};

/* -- activation -- */

/* Selects an activation with its default parameter. */
static void act_reset(Model *m, int type) {
  m->act = (Act){.type = type, .param = act_default_params[type]};
}

/* activation.slope (leaky_relu), activation.alpha (elu): any finite number. */
static int check_act_param(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &FINITE, &m->act.param);
}

static const Field act_fields[] = {
  {"slope", T(ACT_LEAKY), check_act_param},
  {"alpha", T(ACT_ELU),   check_act_param},
  {NULL, 0, NULL},
};

static const Object act_object = {
  "activation", act_names, NACTS, act_fields, act_reset, NULL, NULL, 0,
};

/* -- optimizer -- */

/* Selects an optimizer with PyTorch's defaults, but lr 0.01 for all. */
static void opt_reset(Model *m, int type) {
  m->opt = (Optim){.type = type, .lr = 0.01, .alpha = 0.99, .eps = 1e-8,
                   .beta1 = 0.9, .beta2 = 0.999,
                   .weight_decay = type == OPT_ADAMW ? 0.01 : 0};
}

/* optimizer.lr: > 0. */
static int check_lr(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->opt.lr);
}

/* optimizer.momentum: >= 0. */
static int check_momentum(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &NONNEG, &m->opt.momentum);
}

/* optimizer.dampening: any finite number, as PyTorch. */
static int check_dampening(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &FINITE, &m->opt.dampening);
}

/* optimizer.nesterov: a boolean. */
static int check_nesterov(Ctx *c, json_t *v, Model *m) {
  return get_bool(c, v, &m->opt.nesterov);
}

/* optimizer.weight_decay: >= 0. */
static int check_weight_decay(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &NONNEG, &m->opt.weight_decay);
}

/* optimizer.alpha (rmsprop): in [0, 1]. */
static int check_alpha(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &UNIT, &m->opt.alpha);
}

/* optimizer.eps: > 0. */
static int check_opt_eps(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->opt.eps);
}

/* optimizer.centered: a boolean. */
static int check_centered(Ctx *c, json_t *v, Model *m) {
  return get_bool(c, v, &m->opt.centered);
}

/* optimizer.betas: [beta1, beta2], each in [0, 1). */
static int check_betas(Ctx *c, json_t *v, Model *m) {
  double *beta[2] = {&m->opt.beta1, &m->opt.beta2};
  if (c->flag || !json_is_array(v))
    return fail(c, "expected an array of two numbers, got %s", got(c, v));
  if (json_array_size(v) != 2)
    return fail(c, "expected an array of two numbers, got %zu of them",
                json_array_size(v));
  for (size_t i = 0; i < 2; i++) {
    size_t n = enter_index(c, i);
    if (get_real(c, json_array_get(v, i), &UNIT_OPEN, beta[i]))
      return -1;
    leave(c, n);
  }
  return 0;
}

/* Checks across the optimizer's keys: SGD's nesterov, as PyTorch. */
static int opt_finish(Ctx *c, Model *m) {
  const Optim *o = &m->opt;
  if (o->type != OPT_SGD || !o->nesterov || (o->momentum > 0 && o->dampening == 0))
    return 0;
  char mom[32], damp[32];
  fe_show_real(mom, sizeof mom, o->momentum);
  fe_show_real(damp, sizeof damp, o->dampening);
  enter(c, "nesterov");
  return fail(c, "nesterov needs momentum > 0 and dampening 0, as in PyTorch "
              "(momentum is %s, dampening %s)", mom, damp);
}

#define ADAMS (T(OPT_ADAM) | T(OPT_ADAMW))
static const Field opt_fields[] = {
  {"lr",           ALL,                        check_lr},
  {"momentum",     T(OPT_SGD) | T(OPT_RMSPROP), check_momentum},
  {"dampening",    T(OPT_SGD),                 check_dampening},
  {"nesterov",     T(OPT_SGD),                 check_nesterov},
  {"alpha",        T(OPT_RMSPROP),             check_alpha},
  {"centered",     T(OPT_RMSPROP),             check_centered},
  {"betas",        ADAMS,                      check_betas},
  {"eps",          T(OPT_RMSPROP) | ADAMS,     check_opt_eps},
  {"weight_decay", ALL,                        check_weight_decay},
  {NULL, 0, NULL},
};
#undef ADAMS

static const Object opt_object = {
  "optimizer", opt_names, NOPTS, opt_fields, opt_reset, opt_finish, NULL, 0,
};

static const Object sched_object;
static const Object *const tagged[NTAGGED] = {&norm_object, &act_object, &opt_object,
                                              &sched_object};

/* -- layers: each entry of "layers", a type-tagged object -- */

/* The entry being checked: the last of the list so far. */
static Spec *cur(Model *m) {
  return &m->layers[m->nlayers - 1];
}

/* Selects a layer kind with PyTorch's defaults: its row of LAYER_KINDS
   (frontend/model.h), or an activation's parameter. */
static void layer_reset(Model *m, int type) {
  Spec *s = cur(m);
  if (type < LK_ACT)
    *s = layer_kind_defaults[type];
  else
    *s = (Spec){.kind = type, .act = {type - LK_ACT, act_default_params[type - LK_ACT]}};
}

/* layers[i].out (linear): features out. */
static int check_layer_out(Ctx *c, json_t *v, Model *m) {
  return get_small_int(c, v, 1, MAX_WIDTH, &cur(m)->out);
}

/* layers[i].bias (linear): a boolean. */
static int check_layer_bias(Ctx *c, json_t *v, Model *m) {
  return get_bool(c, v, &cur(m)->bias);
}

/* layers[i].init (linear): one of the runtime's schemes. */
static int check_layer_init(Ctx *c, json_t *v, Model *m) {
  return get_enum(c, v, "init", init_names, RT_INIT_NSCHEMES, &cur(m)->init);
}

/* layers[i].eps (norms): > 0. */
static int check_layer_eps(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &cur(m)->norm.eps);
}

/* layers[i].momentum (batchnorm): in [0, 1], or null (cumulative). */
static int check_layer_momentum(Ctx *c, json_t *v, Model *m) {
  cur(m)->norm.cumulative = json_is_null(v);
  return json_is_null(v) ? 0 : get_real(c, v, &UNIT, &cur(m)->norm.momentum);
}

/* layers[i].p (dropout): in [0, 1); -0 is 0. */
static int check_layer_p(Ctx *c, json_t *v, Model *m) {
  int rc = get_real(c, v, &UNIT_OPEN, &cur(m)->p);
  cur(m)->p += 0.0;
  return rc;
}

/* One size or a pair (height, width), each in lo..hi: 3 or [3, 5]. */
static int get_pair(Ctx *c, json_t *v, int lo, int hi, int out[2]) {
  if (!json_is_array(v)) {
    if (get_small_int(c, v, lo, hi, &out[0]))
      return -1;
    out[1] = out[0];
    return 0;
  }
  if (json_array_size(v) != 2)
    return fail(c, "expected an integer or a pair [height, width], got %s", got(c, v));
  for (size_t i = 0; i < 2; i++) {
    size_t len = enter_index(c, i);
    if (get_small_int(c, json_array_get(v, i), lo, hi, &out[i]))
      return -1;
    leave(c, len);
  }
  return 0;
}

/* layers[i].kernel_size (conv2d, pools): 1 or more. */
static int check_layer_kernel(Ctx *c, json_t *v, Model *m) {
  return get_pair(c, v, 1, MAX_WINDOW, cur(m)->kernel);
}

/* layers[i].stride (conv2d, pools): 1 or more. */
static int check_layer_stride(Ctx *c, json_t *v, Model *m) {
  return get_pair(c, v, 1, MAX_WINDOW, cur(m)->stride);
}

/* layers[i].padding (conv2d): 0 or more zeros on each side. */
static int check_layer_padding(Ctx *c, json_t *v, Model *m) {
  return get_pair(c, v, 0, MAX_WINDOW, cur(m)->padding);
}

/* layers[i].slope (leaky_relu), .alpha (elu): any finite number. */
static int check_layer_param(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &FINITE, &cur(m)->act.param);
}

/* Checks across an entry's keys: a linear layer says its width, a
   convolution its channels and kernel, a pool its kernel (and strides by
   it unless told). */
static int layer_finish(Ctx *c, Model *m) {
  Spec *s = cur(m);
  int conv = s->kind == LK_CONV2D, pool = s->kind == LK_MAXPOOL2D || s->kind == LK_AVGPOOL2D;
  if (s->kind == LK_LINEAR && !s->out)
    return fail(c, "missing key 'out' (the linear layer's output features)");
  if (conv && !s->out)
    return fail(c, "missing key 'out_channels' (the convolution's output channels)");
  if ((conv || pool) && !s->kernel[0])
    return fail(c, "missing key 'kernel_size' (the %s window: a size or [height, width])",
                conv ? "convolution's" : "pooling");
  if (pool && !s->stride[0])
    memcpy(s->stride, s->kernel, sizeof s->stride);
  return 0;
}

/* Which kind takes which key is its row of LAYER_KINDS (LKEY bits, by
   these indices); an activation's parameter is its own. */
static const Field layer_fields[] = {
  [LKEY_OUT]          = {"out",          0, check_layer_out},
  [LKEY_OUT_CHANNELS] = {"out_channels", 0, check_layer_out},
  [LKEY_KERNEL_SIZE]  = {"kernel_size",  0, check_layer_kernel},
  [LKEY_STRIDE]       = {"stride",       0, check_layer_stride},
  [LKEY_PADDING]      = {"padding",      0, check_layer_padding},
  [LKEY_BIAS]         = {"bias",         0, check_layer_bias},
  [LKEY_INIT]         = {"init",         0, check_layer_init},
  [LKEY_EPS]          = {"eps",          0, check_layer_eps},
  [LKEY_MOMENTUM]     = {"momentum",     0, check_layer_momentum},
  [LKEY_P]            = {"p",            0, check_layer_p},
  [LKEY_SLOPE]        = {"slope",        T(LK_ACT + ACT_LEAKY), check_layer_param},
  [LKEY_ALPHA]        = {"alpha",        T(LK_ACT + ACT_ELU),   check_layer_param},
  [NLAYER_KEYS]       = {NULL, 0, NULL},
};

static const Object layer_object = {
  "layer", layer_kind_names, NLAYER_KINDS, layer_fields, layer_reset, layer_finish,
  layer_kind_keys, LK_ACT,
};

/* ---- the training recipe: the lr schedule, gradient clipping, label
   smoothing, validation and early stopping (PyTorch's names) ---- */

/* -- schedule -- */

/* Selects a schedule with PyTorch's defaults; the required keys (step_size,
   T_max, max_lr) at 0 until given, the momenta at NaN (not given). */
static void sched_reset(Model *m, int type) {
  RtRecipe *r = &m->recipe;
  r->schedule = type;
  r->step_size = r->T_max = 0;
  r->gamma = 0.1, r->eta_min = 0, r->max_lr = 0, r->total_steps = 0;
  r->pct_start = 0.3, r->anneal = RT_ANNEAL_COS, r->div_factor = 25;
  r->final_div_factor = 1e4, r->cycle_momentum = 1, r->warmup = 0;
  r->base_momentum = r->max_momentum = NAN;
}

/* schedule.step_size (step): StepLR's period, in epochs. */
static int check_step_size(Ctx *c, json_t *v, Model *m) {
  return get_small_int(c, v, 1, 1000000, &m->recipe.step_size);
}

/* schedule.gamma (step): > 0. */
static int check_gamma(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->recipe.gamma);
}

/* schedule.T_max (cosine): CosineAnnealingLR's half period, in epochs. */
static int check_t_max(Ctx *c, json_t *v, Model *m) {
  return get_small_int(c, v, 1, 1000000, &m->recipe.T_max);
}

/* schedule.eta_min (cosine): >= 0. */
static int check_eta_min(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &NONNEG, &m->recipe.eta_min);
}

/* schedule.max_lr (onecycle): > 0. */
static int check_max_lr(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->recipe.max_lr);
}

/* schedule.total_steps (onecycle): the cycle's steps. */
static int check_total_steps(Ctx *c, json_t *v, Model *m) {
  long long x = 0;
  if (get_int(c, v, 1, 1LL << 40, &x))
    return -1;
  m->recipe.total_steps = (long)x;
  return 0;
}

/* schedule.pct_start (onecycle): in (0, 1). */
static int check_pct_start(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &OPEN_UNIT, &m->recipe.pct_start);
}

/* schedule.anneal_strategy (onecycle): "cos" or "linear". */
static int check_anneal(Ctx *c, json_t *v, Model *m) {
  return get_enum(c, v, "anneal_strategy", anneal_names, RT_NANNEALS, &m->recipe.anneal);
}

/* schedule.div_factor (onecycle): > 0. */
static int check_div_factor(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->recipe.div_factor);
}

/* schedule.final_div_factor (onecycle): > 0. */
static int check_final_div(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &POSITIVE, &m->recipe.final_div_factor);
}

/* schedule.cycle_momentum (onecycle): a boolean. */
static int check_cycle_momentum(Ctx *c, json_t *v, Model *m) {
  return get_bool(c, v, &m->recipe.cycle_momentum);
}

/* schedule.base_momentum (onecycle): in (0, 1). */
static int check_base_momentum(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &OPEN_UNIT, &m->recipe.base_momentum);
}

/* schedule.max_momentum (onecycle): in (0, 1). */
static int check_max_momentum(Ctx *c, json_t *v, Model *m) {
  return get_real(c, v, &OPEN_UNIT, &m->recipe.max_momentum);
}

/* schedule.warmup (any): steps of linear warm-up; 0: none. */
static int check_warmup(Ctx *c, json_t *v, Model *m) {
  long long x = 0;
  if (get_int(c, v, 0, INT_MAX, &x))
    return -1;
  m->recipe.warmup = (long)x;
  return 0;
}

/* Checks across the schedule's keys: the one each type requires (as
   PyTorch's constructors do), and the momenta only for a cycled one. */
static int sched_finish(Ctx *c, Model *m) {
  RtRecipe *r = &m->recipe;
  static const char *const need[RT_NSCHEDULES] = {
    [RT_SCHED_STEP] = "step_size' (StepLR's period, in epochs",
    [RT_SCHED_COSINE] = "T_max' (CosineAnnealingLR's half period, in epochs",
    [RT_SCHED_ONECYCLE] = "max_lr' (OneCycleLR's peak learning rate"};
  int have[RT_NSCHEDULES] = {1, r->step_size > 0, r->T_max > 0, r->max_lr > 0};
  if (!have[r->schedule])
    return fail(c, "missing key '%s)", need[r->schedule]);
  const char *given = !isnan(r->base_momentum) ? "base_momentum"
                      : !isnan(r->max_momentum) ? "max_momentum" : NULL;
  if (given && !r->cycle_momentum) {
    enter(c, given);
    return fail(c, "'%s' applies to a cycled momentum only, and cycle_momentum is false",
                given);
  }
  r->base_momentum = isnan(r->base_momentum) ? 0.85 : r->base_momentum;
  r->max_momentum = isnan(r->max_momentum) ? 0.95 : r->max_momentum;
  return 0;
}

#define S(k) T(RT_SCHED_##k)
static const Field sched_fields[] = {
  {"step_size",        S(STEP),     check_step_size},
  {"gamma",            S(STEP),     check_gamma},
  {"T_max",            S(COSINE),   check_t_max},
  {"eta_min",          S(COSINE),   check_eta_min},
  {"max_lr",           S(ONECYCLE), check_max_lr},
  {"total_steps",      S(ONECYCLE), check_total_steps},
  {"pct_start",        S(ONECYCLE), check_pct_start},
  {"anneal_strategy",  S(ONECYCLE), check_anneal},
  {"div_factor",       S(ONECYCLE), check_div_factor},
  {"final_div_factor", S(ONECYCLE), check_final_div},
  {"cycle_momentum",   S(ONECYCLE), check_cycle_momentum},
  {"base_momentum",    S(ONECYCLE), check_base_momentum},
  {"max_momentum",     S(ONECYCLE), check_max_momentum},
  {"warmup",           ALL,         check_warmup},
  {NULL, 0, NULL},
};
#undef S

static const Object sched_object = {
  "schedule", sched_names, RT_NSCHEDULES, sched_fields, sched_reset, sched_finish, NULL, 0,
};

/* schedule: a name or an object. */
static int check_schedule(Ctx *c, json_t *v, Model *m) {
  return check_tagged(c, v, &sched_object, m);
}

/* -- the other keys of the recipe -- */

/* clip_grad_norm: clip_grad_norm_'s max_norm, > 0; null: none. */
static int check_clip(Ctx *c, json_t *v, Model *m) {
  m->clip_grad_norm = 0;
  return !c->flag && json_is_null(v) ? 0 : get_real(c, v, &POSITIVE, &m->clip_grad_norm);
}

/* label_smoothing: CrossEntropyLoss's, in [0, 1]; -0 is 0. */
static int check_smoothing(Ctx *c, json_t *v, Model *m) {
  int rc = get_real(c, v, &UNIT, &m->label_smoothing);
  m->label_smoothing += 0.0;
  return rc;
}

static const Range FRACTION = {"a fraction in (0, 1) (a number of samples is an integer)",
                               0, 1, 1, 1};

/* validation: samples held out of the training set, an integer (0:
   none), or a fraction of it, a number in (0, 1). */
static int check_validation(Ctx *c, json_t *v, Model *m) {
  RtRecipe *r = &m->recipe;
  long long x = 0;
  r->val_count = 0, r->val_fraction = 0;
  if (!c->flag && json_is_real(v))
    return get_real(c, v, &FRACTION, &r->val_fraction);
  if (!c->flag && !json_is_integer(v))
    return fail(c, "expected a number of samples (5000) or a fraction of the training set "
                "(0.1), got %s", got(c, v));
  if (get_int(c, v, 0, INT_MAX, &x))
    return -1;
  r->val_count = (long)x;
  return 0;
}

/* early_stopping.patience: epochs without a better validation loss. */
static int check_patience(Ctx *c, json_t *v, Model *m) {
  return get_small_int(c, v, 1, 100000, &m->recipe.patience);
}

static const Field stop_fields[] = {
  {"patience", ALL, check_patience},
  {NULL, 0, NULL},
};

static const Object stop_object = {"early_stopping", NULL, 0, stop_fields, NULL, NULL, NULL, 0};

/* early_stopping: {"patience": N}; null: none. */
static int check_early_stopping(Ctx *c, json_t *v, Model *m) {
  m->recipe.patience = 0;
  if (!c->flag && json_is_null(v))
    return 0;
  if (c->flag || !json_is_object(v))
    return fail(c, "expected an object such as {\"patience\": 3}, or null, got %s", got(c, v));
  if (check_keys(c, v, &stop_object, -1, m))
    return -1;
  if (!m->recipe.patience)
    return fail(c, "missing key 'patience' (epochs without a better validation loss before "
                "training stops)");
  return 0;
}


/* ---- the top level ---- */

/* name: it becomes part of generated C and of file names. */
static int check_name(Ctx *c, json_t *v, Model *m) {
  const char *s = NULL;
  if (get_text(c, v, &s))
    return -1;
  if (!fe_valid_name(s))
    return fail(c, "must be " FE_NAME_RULE " (it names generated code and "
                "files), got %s", got(c, v));
  snprintf(m->name, sizeof m->name, "%s", s);
  return 0;
}

/* input: features in, or images [channels, height, width]. */
static int check_input(Ctx *c, json_t *v, Model *m) {
  memset(m->shape, 0, sizeof m->shape);
  if (c->flag || !json_is_array(v))
    return get_small_int(c, v, 1, MAX_WIDTH, &m->input);
  if (json_array_size(v) != 3)
    return fail(c, "expected features (784) or images [channels, height, width] "
                "([1, 28, 28]), got an array of %zu", json_array_size(v));
  long n = 1;
  for (size_t i = 0; i < 3; i++) {
    size_t len = enter_index(c, i);
    if (get_small_int(c, json_array_get(v, i), 1, MAX_WIDTH, &m->shape[i]))
      return -1;
    leave(c, len);
    n *= m->shape[i];
  }
  if (n > MAX_SAMPLE)
    return fail(c, "images of %ld values, more than %ld (2^22)", n, MAX_SAMPLE);
  m->input = (int)n;
  return 0;
}

/* output: classes out, as many as the data's labels can name. */
static int check_output(Ctx *c, json_t *v, Model *m) {
  if (get_small_int(c, v, 1, MAX_WIDTH, &m->output))
    return -1;
  if (m->output > MAX_CLASSES)
    return fail(c, "at most %d classes (labels are bytes in the data's IDX files), got %d",
                MAX_CLASSES, m->output);
  return 0;
}

/* hidden: the width of each hidden block, at most MAX_HIDDEN of them. */
static int check_hidden(Ctx *c, json_t *v, Model *m) {
  if (c->flag || !json_is_array(v))
    return fail(c, "expected an array of integers, got %s", got(c, v));
  size_t n = json_array_size(v);
  if (n > MAX_HIDDEN)
    return fail(c, "at most %d hidden layers, got %zu", MAX_HIDDEN, n);
  for (size_t i = 0; i < n; i++) {
    size_t len = enter_index(c, i);
    if (get_small_int(c, json_array_get(v, i), 1, MAX_WIDTH, &m->hidden[i]))
      return -1;
    leave(c, len);
  }
  m->nhidden = (int)n;
  return 0;
}

/* layers: the network as a list of layers, each a kind's name or an
   object {"type": kind, ...}. */
static int check_layers(Ctx *c, json_t *v, Model *m) {
  if (c->flag || !json_is_array(v))
    return fail(c, "expected an array of layers, got %s", got(c, v));
  size_t n = json_array_size(v);
  if (n == 0 || n > MAX_LAYERS)
    return fail(c, "expected 1 to %d layers, got %zu", MAX_LAYERS, n);
  for (size_t i = 0; i < n; i++) {
    size_t len = enter_index(c, i);
    m->nlayers = (int)i + 1;
    if (check_tagged(c, json_array_get(v, i), &layer_object, m))
      return -1;
    leave(c, len);
  }
  return 0;
}

/* norm: a name or an object. */
static int check_norm(Ctx *c, json_t *v, Model *m) {
  return check_tagged(c, v, &norm_object, m);
}

/* activation: a name or an object. */
static int check_act(Ctx *c, json_t *v, Model *m) {
  return check_tagged(c, v, &act_object, m);
}

/* optimizer: a name or an object. */
static int check_opt(Ctx *c, json_t *v, Model *m) {
  return check_tagged(c, v, &opt_object, m);
}

/* init: one of the runtime's schemes. */
static int check_init(Ctx *c, json_t *v, Model *m) {
  return get_enum(c, v, "init", init_names, RT_INIT_NSCHEMES, &m->init);
}

/* rng: whose generator draws the initial weights. */
static int check_rng(Ctx *c, json_t *v, Model *m) {
  return get_enum(c, v, "rng", rng_names, RT_NRNGS, &m->rng);
}

/* batch_size: samples per training step. */
static int check_batch_size(Ctx *c, json_t *v, Model *m) {
  return get_small_int(c, v, 1, 65536, &m->batch_size);
}

/* epochs: passes over the training set. */
static int check_epochs(Ctx *c, json_t *v, Model *m) {
  return get_small_int(c, v, 1, 100000, &m->epochs);
}

/* seed: any non-negative JSON integer. */
static int check_seed(Ctx *c, json_t *v, Model *m) {
  long long x = 0;
  if (get_int(c, v, 0, LLONG_MAX, &x))
    return -1;
  m->seed = (uint64_t)x;
  return 0;
}

/* data: "mnist", "fashion-mnist" or a directory; not empty. */
static int check_data(Ctx *c, json_t *v, Model *m) {
  const char *s = NULL;
  if (get_text(c, v, &s))
    return -1;
  if (!*s)
    return fail(c, "must not be empty (\"mnist\", \"fashion-mnist\" or a directory)");
  if (strlen(s) >= sizeof m->data)
    return fail(c, "too long (at most %zu bytes)", sizeof m->data - 1);
  snprintf(m->data, sizeof m->data, "%s", s);
  return 0;
}

/* max_batches: training batches per epoch at most; when given, >= 1. */
static int check_max_batches(Ctx *c, json_t *v, Model *m) {
  long long x = 0;
  if (get_int(c, v, 1, 2147483647, &x))
    return -1;
  m->max_batches = (long)x;
  return 0;
}

/* dtype: the floating-point type of the generated code. */
static int check_dtype(Ctx *c, json_t *v, Model *m) {
  return get_enum(c, v, "dtype", dtype_names, NDTYPES, &m->dtype);
}

static const Field top_fields[] = {
  {"name",        ALL, check_name},
  {"input",       ALL, check_input},
  {"layers",      ALL, check_layers},
  {"hidden",      ALL, check_hidden},
  {"output",      ALL, check_output},
  {"norm",        ALL, check_norm},
  {"activation",  ALL, check_act},
  {"init",        ALL, check_init},
  {"rng",         ALL, check_rng},
  {"optimizer",   ALL, check_opt},
  {"batch_size",  ALL, check_batch_size},
  {"epochs",      ALL, check_epochs},
  {"seed",        ALL, check_seed},
  {"data",        ALL, check_data},
  {"max_batches", ALL, check_max_batches},
  {"dtype",       ALL, check_dtype},
  {"schedule",    ALL, check_schedule},
  {"clip_grad_norm", ALL, check_clip},
  {"label_smoothing", ALL, check_smoothing},
  {"validation",  ALL, check_validation},
  {"early_stopping", ALL, check_early_stopping},
  {NULL, 0, NULL},
};

static const Object top_object = {NULL, NULL, 0, top_fields, NULL, NULL, NULL, 0};

/* ---- checks across keys ---- */

/* The model's layers (fe_layer_list), lowered once for the checks. */
typedef struct {
  int n;
  Spec l[MAX_LAYERS];
  FeWhere where[MAX_LAYERS];
  FeShape in[MAX_LAYERS], out[MAX_LAYERS]; /* one sample's, around each  */
} List;

/* Lowers the model's layers into L, following the shape of a sample
   through them; refuses a layer that does not take the shape it gets,
   or that makes a sample too large. */
static int list_shapes(Ctx *c, const Model *m, List *L) {
  char why[256];
  L->n = fe_layer_list(m, L->l, L->where);
  FeShape s = fe_input_shape(m);
  for (int i = 0; i < L->n; i++) {
    L->in[i] = s;
    int rc = fe_layer_shape(&L->l[i], &s, &L->out[i], why, sizeof why);
    if (!rc && fe_numel(&L->out[i]) > MAX_SAMPLE)
      snprintf(why, sizeof why, "its output holds %ld values a sample, more than %ld (2^22)",
               fe_numel(&L->out[i]), MAX_SAMPLE), rc = -1;
    if (rc) {
      fe_where_path(&L->where[i], c->path, sizeof c->path);
      return fail(c, "%s", why);
    }
    s = L->out[i];
  }
  return 0;
}

/* Trainable parameters: linear and convolution weights and biases, norm
   gamma and beta. */
static uint64_t count_params(const List *L) {
  uint64_t n = 0;
  for (int i = 0; i < L->n; i++) {
    const Spec *l = &L->l[i];
    uint64_t in = (uint64_t)L->in[i].c, out = (uint64_t)L->out[i].c;
    uint64_t k = l->kind == LK_CONV2D ? (uint64_t)l->kernel[0] * l->kernel[1] : 1;
    if (l->kind == LK_LINEAR || l->kind == LK_CONV2D)
      n += in * out * k + (l->bias ? out : 0);
    if (l->kind == LK_BATCHNORM || l->kind == LK_LAYERNORM || l->kind == LK_BATCHNORM2D)
      n += 2 * in;
  }
  return n;
}

/* Copies of the parameters the optimizer keeps. */
static int state_copies(const Optim *o) {
  switch (o->type) {
  case OPT_SGD:     return o->momentum > 0;
  case OPT_RMSPROP: return 1 + o->centered + (o->momentum > 0);
  default:          return 2;
  }
}

/* Refuses a model whose parameters would not fit in sensible memory. */
static int check_params(Ctx *c, const Model *m, const List *L) {
  uint64_t n = count_params(L);
  if (n <= (uint64_t)MAX_PARAMS)
    return 0;
  double bytes = (double)n * (2 + state_copies(&m->opt)) *
                 (m->dtype == DT_F64 ? 8 : 4);
  return fail(c, "model too large: %llu parameters, more than %ld (2^28); "
              "it would need %.1f GiB for parameters, gradients and "
              "optimizer state", (unsigned long long)n, MAX_PARAMS,
              bytes / (1024.0 * 1024 * 1024));
}

/* Refuses a batch whose activations would not fit in sensible memory. */
static int check_activations(Ctx *c, const Model *m, const List *L) {
  uint64_t w = (uint64_t)m->input;
  for (int i = 0; i < L->n; i++) {
    int k = L->l[i].kind; /* the layers that make new features */
    if (k == LK_LINEAR || k == LK_CONV2D || k == LK_MAXPOOL2D || k == LK_AVGPOOL2D)
      w += (uint64_t)fe_numel(&L->out[i]);
  }
  if ((uint64_t)m->batch_size * w <= (uint64_t)MAX_ACTIVATIONS)
    return 0;
  size_t n = enter(c, "batch_size");
  fail(c, "a batch of %d samples with %llu features (input, hidden and "
       "output) holds more than %ld (2^28) activations; use a smaller "
       "batch_size", m->batch_size, (unsigned long long)w, MAX_ACTIVATIONS);
  leave(c, n);
  return -1;
}

/* BatchNorm cannot train on one value per channel (PyTorch refuses it):
   BatchNorm1d needs two samples, BatchNorm2d two on a 1 x 1 image. */
static int check_batchnorm(Ctx *c, const Model *m, const List *L) {
  int bn = -1;
  for (int i = L->n - 1; i >= 0; i--)
    if (L->l[i].kind == LK_BATCHNORM ||
        (L->l[i].kind == LK_BATCHNORM2D && L->in[i].h * L->in[i].w == 1))
      bn = i;
  if (bn < 0 || m->batch_size > 1)
    return 0;
  char where[40] = "";
  if (m->nlayers)
    fe_where_path(&L->where[bn], where, sizeof where);
  size_t n = enter(c, "batch_size");
  fail(c, "%s%s%s needs at least 2 samples per batch%s, got %d", L->l[bn].kind == LK_BATCHNORM
       ? "batchnorm" : "batchnorm2d", where[0] ? " at " : "", where,
       L->l[bn].kind == LK_BATCHNORM ? "" : " on 1 x 1 images", m->batch_size);
  leave(c, n);
  return -1;
}

/* The end of a layer list: a linear layer, whose outputs are the logits
   that cross-entropy reads; its width is the number of classes. (What
   each layer takes: list_shapes.) */
static int check_layer_shapes(Ctx *c, Model *m) {
  int last = m->nlayers - 1;
  if (m->layers[last].kind == LK_LINEAR && m->layers[last].out > MAX_CLASSES) {
    snprintf(c->path, sizeof c->path, "layers[%d].out", last);
    return fail(c, "the last layer's outputs are the classes: at most %d (labels are bytes "
                "in the data's IDX files), got %d", MAX_CLASSES, m->layers[last].out);
  }
  if (m->layers[last].kind == LK_LINEAR) {
    m->output = m->layers[last].out;
    return 0;
  }
  snprintf(c->path, sizeof c->path, "layers[%d]", last);
  fail(c, "the last layer must be linear (its outputs are the logits that cross-entropy "
       "reads), got %s", layer_kind_names[m->layers[last].kind]);
  c->path[0] = '\0';
  return -1;
}

/* What becomes of a number in dtype: 0 when it holds it as a normal
   number (or it is exactly 0), else -1 with the message in why: beyond
   the range, or not 0 yet 0 or subnormal there. */
static int in_dtype(double v, int dtype, char *why, size_t size) {
  double max = dtype == DT_F32 ? FLT_MAX : DBL_MAX, min = dtype == DT_F32 ? FLT_MIN : DBL_MIN;
  char limit[40];
  if (isfinite(v) && fabs(v) <= max) {
    double r = dtype == DT_F32 ? (double)(float)v : v;  /* in range: defined */
    if (v == 0 || fabs(r) >= min)
      return 0;
    format_real(limit, sizeof limit, min);
    snprintf(why, size, "%s %s (its smallest normal number is %s)",
             r == 0 ? "which is 0 in" : "which is subnormal in", dtype_names[dtype], limit);
    return -1;
  }
  format_real(limit, sizeof limit, max);
  snprintf(why, size, "beyond %s's range (largest %s)", dtype_names[dtype], limit);
  return -1;
}

/* Refuses a number the generated code cannot hold as a constant of
   dtype: converting a double beyond FLT_MAX to float is undefined in C,
   and an infinite constant is no C at all; a value that is not 0 but
   becomes 0 or subnormal there (1e-50 as a float) would silently do
   something else than the file says. 0 itself passes. path is where the
   value came from, what names it; on error the message names path (or
   the flag). Any check of a real can use it, whatever its key. */
static int check_in_dtype(Ctx *c, int dtype, const char *path, const char *what, double v) {
  char why[160], shown[40];
  if (!in_dtype(v, dtype, why, sizeof why))
    return 0;
  snprintf(c->path, sizeof c->path, "%s", path);
  format_real(shown, sizeof shown, v);
  fail(c, "%s is %s, %s%s", what, shown, why,
       dtype == DT_F32 ? "; use \"dtype\": \"float64\"" : "");
  c->path[0] = '\0';
  return -1;
}

/* Every real the code uses, checked in the type it is used in
   (check_in_dtype): the optimizer's and the activation's as constants of
   the model's dtype, as PyTorch's float32 kernels take them; what is
   computed from them in double first, as PyTorch computes it in Python,
   as that result (1 - dampening; AdamW's 1 - lr * weight_decay; Adam's
   first step lr / (1 - beta1)); the norm's eps and momentum in double,
   where its kernels use them. 1 - alpha and 1 - beta are 0 or at least
   2^-53 and need no check. */
static int check_constants(Ctx *c, const Model *m) {
  const Optim *o = &m->opt;
  int elu = m->act.type == ACT_ELU, adamw = o->type == OPT_ADAMW, M = m->dtype;
  int adam = adamw || o->type == OPT_ADAM;
  const struct {
    const char *path, *what;
    int dtype;
    double v;
  } k[] = {
    {"optimizer.lr", "lr", M, o->lr},
    {"optimizer.momentum", "momentum", M, o->momentum},
    {"optimizer.dampening", "1 - dampening", M, 1 - o->dampening},
    {"optimizer.weight_decay", "weight_decay", M, adamw ? 0 : o->weight_decay},
    {"optimizer.alpha", "alpha", M, o->alpha},
    {"optimizer.eps", "eps", M, o->eps},
    {"optimizer.betas[0]", "beta1", M, o->beta1},
    {"optimizer.betas[1]", "beta2", M, o->beta2},
    {"optimizer.weight_decay", "AdamW's factor 1 - lr * weight_decay", M,
     adamw ? 1 - o->lr * o->weight_decay : 0},
    {"optimizer.lr", "Adam's first step lr / (1 - beta1)", M, adam ? o->lr / (1 - o->beta1) : 0},
    {elu ? "activation.alpha" : "activation.slope", elu ? "alpha" : "slope", M, m->act.param},
    {"norm.eps", "eps", DT_F64, m->norm.eps},
    {"norm.momentum", "momentum", DT_F64, m->norm.momentum},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (check_in_dtype(c, k[i].dtype, k[i].path, k[i].what, k[i].v))
      return -1;
  return 0;
}

/* The reals of a layer that the code uses, by key, and the type each is
   used in (-1: the model's dtype): an activation's parameter as a
   constant of the code; a norm's eps and momentum, and dropout's p, in
   double (where its kernels use them, drop_forward compares p). */
static const struct {
  int key, dtype;
  size_t offset;
} layer_reals[] = {
  {LKEY_EPS, DT_F64, offsetof(Spec, norm.eps)},
  {LKEY_MOMENTUM, DT_F64, offsetof(Spec, norm.momentum)},
  {LKEY_P, DT_F64, offsetof(Spec, p)},
  {LKEY_SLOPE, -1, offsetof(Spec, act.param)},
  {LKEY_ALPHA, -1, offsetof(Spec, act.param)},
};

/* A layer list's reals, checked as check_constants checks the shorthand's:
   each key of layer_reals its kind takes. */
static int check_layer_constants(Ctx *c, const Model *m) {
  char path[64];
  for (int i = 0; i < m->nlayers; i++)
    for (size_t r = 0; r < sizeof layer_reals / sizeof layer_reals[0]; r++) {
      const Field *f = &layer_fields[layer_reals[r].key];
      double v;
      if (!(field_types(&layer_object, f) & T(m->layers[i].kind)))
        continue;
      memcpy(&v, (const char *)&m->layers[i] + layer_reals[r].offset, sizeof v);
      snprintf(path, sizeof path, "layers[%d].%s", i, f->key);
      if (check_in_dtype(c, layer_reals[r].dtype < 0 ? m->dtype : layer_reals[r].dtype, path,
                         f->key, v))
        return -1;
    }
  return 0;
}

/* The recipe's reals, checked as check_constants checks the optimizer's
   (check_in_dtype): what the code uses in the model's dtype, and
   OneCycleLR's lrs as it computes them in double from its keys. Early
   stopping watches a validation split, which the model must have. */
static int check_recipe(Ctx *c, const Model *m) {
  const RtRecipe *r = &m->recipe;
  int cyc = r->schedule == RT_SCHED_ONECYCLE, M = m->dtype;
  double init = r->max_lr / r->div_factor;
  const struct {
    const char *path, *what;
    double v;
  } k[] = {
    {"schedule.eta_min", "eta_min", r->schedule == RT_SCHED_COSINE ? r->eta_min : 0},
    {"schedule.max_lr", "max_lr", cyc ? r->max_lr : 0},
    {"schedule.div_factor", "OneCycleLR's initial lr max_lr / div_factor", cyc ? init : 0},
    {"schedule.final_div_factor", "OneCycleLR's least lr max_lr / div_factor / "
     "final_div_factor", cyc ? init / r->final_div_factor : 0},
    {"clip_grad_norm", "clip_grad_norm", m->clip_grad_norm},
    {"label_smoothing", "label_smoothing / classes", m->label_smoothing / m->output},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
    if (check_in_dtype(c, M, k[i].path, k[i].what, k[i].v))
      return -1;
  if (!r->patience || r->val_count || r->val_fraction > 0)
    return 0;
  snprintf(c->path, sizeof c->path, "early_stopping");
  fail(c, "early stopping watches the validation loss, and the model has no validation "
       "split: add \"validation\" (a number of samples, or a fraction of the training set)");
  c->path[0] = '\0';
  return -1;
}

/* Checks that involve more than one key. */
static int check_model(Ctx *c, const Model *m) {
  static List L; /* large: kept off the stack */
  if (list_shapes(c, m, &L))
    return -1;
  return check_params(c, m, &L) || check_activations(c, m, &L) || check_batchnorm(c, m, &L) ||
         check_constants(c, m) || check_layer_constants(c, m) || check_recipe(c, m) ? -1 : 0;
}

/* A model gives its network one way: "layers", or the shorthand; with
   "layers", "output" (when given) agrees with the last layer's width. */
static int check_form(Ctx *c, json_t *root, Model *m) {
  static const char *const shorthand[] = {"hidden", "norm", "activation"};
  json_t *out = json_object_get(root, "output");
  if (!m->nlayers && m->shape[0]) {
    enter(c, "input");
    return fail(c, "the shorthand (hidden, norm, activation) takes flat features: give "
                "\"input\" as %d, or a \"layers\" list that begins with \"flatten\"",
                m->input);
  }
  if (!m->nlayers)
    return 0;
  for (int i = 0; i < 3; i++)
    if (json_object_get(root, shorthand[i])) {
      enter(c, shorthand[i]);
      return fail(c, "'%s' is shorthand for a layer list, and the model has \"layers\": "
                  "give one or the other", shorthand[i]);
    }
  if (check_layer_shapes(c, m))
    return -1;
  int classes = json_is_integer(out) ? (int)json_integer_value(out) : 0;
  if (!out || classes == m->output)
    return 0;
  enter(c, "output");
  return fail(c, "%d classes, but the last layer (layers[%d]) has %d outputs; leave "
              "\"output\" out, or make them agree", classes, m->nlayers - 1, m->output);
}

#define NO_FILE "<string>"  /* fe_load_string without a file name */

/* Names the model after its file ("models/a.json" → "a") if it has no
   "name" key. */
static int default_name(Ctx *c, json_t *root, Model *m) {
  char base[MAX_PATH_LEN], p[80];
  if (json_object_get(root, "name") || !strcmp(c->file, NO_FILE))
    return 0;
  fe_file_stem(base, sizeof base, c->file);
  if (!fe_valid_name(base)) {
    fe_printable(p, sizeof p, base);
    return fail(c, "the model is named after its file, but '%s' is not a "
                "valid name (" FE_NAME_RULE "); add a \"name\" key", p);
  }
  memcpy(m->name, base, strlen(base) + 1);  /* valid_name: < 64 bytes */
  return 0;
}

/* Checks a parsed model file. */
static int check_root(Ctx *c, json_t *root, Model *m) {
  if (!json_is_object(root))
    return fail(c, "expected a JSON object at the top level, got %s", got(c, root));
  if (check_keys(c, root, &top_object, -1, m))
    return -1;
  return default_name(c, root, m) || check_form(c, root, m) || check_model(c, m) ? -1 : 0;
}

/* ---- entry points ---- */

/* Refuses text that is empty, starts with a byte-order mark (as Python's
   json does) or holds a NUL byte, before Jansson sees it (Jansson would
   take the NUL for the end of the input). */
static int check_text(Ctx *c, const char *text, size_t len) {
  const char *nul = memchr(text, '\0', len);
  int line = 1, col = 1;
  if (strspn(text, " \t\r\n") == len)
    return fail(c, "empty file, expected a JSON object");
  if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
    snprintf(c->err, c->errlen, "%s:1:1: error: the file starts with a byte-order mark "
             "(EF BB BF); save it as UTF-8 without one", c->file);
    return -1;
  }
  if (!nul)
    return 0;
  for (const char *p = text; p < nul; p++)
    *p == '\n' ? (line++, col = 1) : col++;
  snprintf(c->err, c->errlen, "%s:%d:%d: error: NUL byte: not a text file",
           c->file, line, col);
  return -1;
}

/* Parses and checks len bytes of model text. */
static int load_text(const char *text, size_t len, const char *fname,
                     Model *m, char *err, size_t errlen) {
  Ctx c = {.file = fname ? fname : NO_FILE, .err = err, .errlen = errlen};
  json_error_t je;
  fe_defaults(m);
  snprintf(m->file, sizeof m->file, "%s", c.file);
  if (check_text(&c, text, len))
    return -1;
  fe_alloc_json();
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!root)
    return fe_syntax_error(err, errlen, c.file, &je);
  int rc = fe_check_underflow(text, len, c.file, err, errlen) || check_root(&c, root, m)
               ? -1 : 0;
  json_decref(root);
  return rc;
}

/* Sets defaults for everything a model file may leave out. */
void fe_defaults(Model *m) {
  memset(m, 0, sizeof *m);
  snprintf(m->name, sizeof m->name, "model");
  m->input = 784;
  m->output = 10;
  m->nhidden = 1;
  m->hidden[0] = 128;
  norm_reset(m, NORM_NONE);
  act_reset(m, ACT_RELU);
  m->init = RT_INIT_TORCH_DEFAULT;
  m->rng = RT_RNG_MLPC;
  opt_reset(m, OPT_SGD);
  m->batch_size = 32;
  m->epochs = 10;
  snprintf(m->data, sizeof m->data, "mnist");
  m->dtype = DT_F32;
  sched_reset(m, RT_SCHED_NONE);
  m->recipe.base_momentum = 0.85, m->recipe.max_momentum = 0.95;
}

/* Reads and checks a model from text in memory. */
int fe_load_string(const char *text, const char *fname, Model *m,
                   char *err, size_t errlen) {
  return load_text(text, strlen(text), fname, m, err, errlen);
}

/* Reads and checks a model file. */
int fe_load(const char *path, Model *m, char *err, size_t errlen) {
  size_t len = 0;
  char *text = NULL, why[512];
  int rc = fe_read_file(path, 0, "model", &text, &len, why, sizeof why);
  if (rc) {
    fe_defaults(m);
    snprintf(err, errlen, "%s: error: %s", path, why);
    return rc;
  }
  rc = load_text(text, len, path, m, err, errlen);
  fe_free(text);
  return rc;
}

/* The field a command-line key names: "epochs", or "optimizer.lr" for
   the model's optimizer; NULL (with a message) if there is none. */
static const Field *override_field(Ctx *c, const Model *m, const char *key) {
  const Object *o = &top_object;
  if (!strncmp(key, "optimizer.", 10))
    o = &opt_object, key += 10;
  const Field *f = find_field(o, key);
  if (!f) {
    fail(c, "'%s' is not a model key", key);
    return NULL;
  }
  if (o != &top_object && !(field_types(o, f) & T(m->opt.type))) {
    misplaced_key(c, o, m->opt.type, f);
    return NULL;
  }
  return f;
}

/* Applies one command-line value, with the model file's checks; on
   error the model is left as it was. */
int fe_override(Model *m, const char *flag, const char *key,
                const char *text, char *err, size_t errlen) {
  Ctx c = {.file = m->file, .flag = flag, .err = err, .errlen = errlen};
  Model saved;
  const Field *f = override_field(&c, m, key);
  if (!f)
    return -1;
  fe_alloc_json();
  json_t *v = json_string_nocheck(text ? text : "");
  if (!v)
    return fail(&c, "out of memory"), FE_NO_MEMORY; /* unreachable: fe_alloc_json */
  saved = *m;
  int rc = f->check(&c, v, m) || check_model(&c, m) ? -1 : 0;
  const char *why = rc ? NULL : fe_overridden(m, key);
  if (why)
    rc = fail(&c, "has no effect: %s", why);
  if (rc)
    *m = saved;
  json_decref(v);
  return rc;
}
