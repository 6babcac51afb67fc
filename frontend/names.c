/*
 * names.c — the names the model format accepts for each kind, derived
 * from the X-macro lists in model.h and net.h (nothing is listed twice).
 */
#include "model.h"

#define NAME_(e, s, ...) [e] = s,

const char *const norm_names[NNORMS] = { NORMS(NAME_) };
#define ACT_NAME_(e, id, ...) [e] = #id,
const char *const act_names[NACTS] = { ACTS(ACT_NAME_) };
#undef ACT_NAME_
const char *const opt_names[NOPTS] = { OPTS(NAME_) };
const char *const dtype_names[NDTYPES] = { DTYPES(NAME_) };
const char *const init_names[RT_INIT_NSCHEMES] = { RT_INIT_SCHEMES(NAME_) };
const char *const rng_names[RT_NRNGS] = { RT_RNGS(NAME_) };
const char *const sched_names[RT_NSCHEDULES] = { RT_SCHEDULES(NAME_) };
const char *const anneal_names[RT_NANNEALS] = { RT_ANNEALS(NAME_) };

#define ACT_KIND_(e, id, ...) [LK_ACT + e] = #id,
const char *const layer_kind_names[NLAYER_KINDS] = { LAYER_KINDS(NAME_) ACTS(ACT_KIND_) };
#undef ACT_KIND_

#undef NAME_
