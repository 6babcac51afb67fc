/*
 * names.c — the names the model format accepts for each kind, derived
 * from the X-macro lists in model.h and net.h (nothing is listed twice).
 */
#include "model.h"

#define NAME_(e, s, ...) [e] = s,

const char *const norm_names[NNORMS] = { NORMS(NAME_) };
const char *const act_names[NACTS] = { ACTS(NAME_) };
const char *const opt_names[NOPTS] = { OPTS(NAME_) };
const char *const dtype_names[NDTYPES] = { DTYPES(NAME_) };
const char *const init_names[RT_INIT_NSCHEMES] = { RT_INIT_SCHEMES(NAME_) };
const char *const rng_names[RT_NRNGS] = { RT_RNGS(NAME_) };

#undef NAME_
