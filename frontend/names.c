/*
 * names.c — the names the model format accepts for each kind, the
 * activations' default parameters, and each layer kind's keys and
 * defaults, derived from the X-macro lists in
 * model.h, net.h and rt/acts.h (nothing is listed twice).
 */
#include "model.h"

#define NAME_(e, s, ...) [e] = s,

const char *const norm_names[NNORMS] = { NORMS(NAME_) };
#define ACT_NAME_(e, id, ...) [e] = #id,
const char *const act_names[NACTS] = { ACTS(ACT_NAME_) };
#undef ACT_NAME_
#define PARAM_(e, s, p, ...) [e] = p,
const double act_default_params[NACTS] = { ACTS(PARAM_) };
#undef PARAM_
const char *const opt_names[NOPTS] = { OPTS(NAME_) };
const char *const dtype_names[NDTYPES] = { DTYPES(NAME_) };
const char *const init_names[RT_INIT_NSCHEMES] = { RT_INIT_SCHEMES(NAME_) };
const char *const rng_names[RT_NRNGS] = { RT_RNGS(NAME_) };
const char *const sched_names[RT_NSCHEDULES] = { RT_SCHEDULES(NAME_) };
const char *const anneal_names[RT_NANNEALS] = { RT_ANNEALS(NAME_) };

#define KIND_NAME_(k, s, ...) [LK_##k] = s,
#define ACT_KIND_(e, id, ...) [LK_ACT + e] = #id,
const char *const layer_kind_names[NLAYER_KINDS] = { LAYER_KINDS(KIND_NAME_) ACTS(ACT_KIND_) };
#undef ACT_KIND_
#undef KIND_NAME_
const char *const layer_key_names[NLAYER_KEYS] = { LAYER_KEYS(NAME_) };
#define KIND_KEYS_(k, s, unit, keys, ...) [LK_##k] = keys,
const unsigned layer_kind_keys[LK_ACT] = { LAYER_KINDS(KIND_KEYS_) };
#undef KIND_KEYS_
#define KIND_SPEC_(k, s, unit, keys, ...) [LK_##k] = {.kind = LK_##k, __VA_ARGS__},
const Spec layer_kind_defaults[LK_ACT] = { LAYER_KINDS(KIND_SPEC_) };
#undef KIND_SPEC_

#undef NAME_
