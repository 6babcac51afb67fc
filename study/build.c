/*
 * build.c — gcc's objects for a study's tiered runs.
 *
 * In a tiered study every run starts on tcc's code at once, and the
 * process that hands out the runs (pipe.c's parent) builds gcc's objects
 * beside them: at most `max` gcc processes at once, since they share the
 * cores with the runs; first the codes of runs under way, then those of
 * runs still to come, in the order they will be handed out. A code that
 * no run needs any more has its build stopped. The workers hear when an
 * object is ready, and move their runs to it at the next step boundary
 * (backend/tier.c); a build that fails leaves its runs on tcc.
 */
#include <stdio.h>
#include <stdlib.h>
#include "study.h"

struct StBuilds {
  const StPlan *p;
  const char *cache;
  int max;                  /* builds under way at most                   */
  const char *clear;        /* what clears a progress line before a warning */
  JitBuild **b;             /* per code: its build under way, or NULL     */
  char *state;              /* per code: TIER_WAITING, READY or FAILED    */
  char *started;            /* per code: a build was started              */
  double seconds;           /* of the builds that ended                   */
  int ended;
};

StBuilds *st_builds_new(const StPlan *p, const char *cache, int max, int progress) {
  char err[2048];
  StBuilds *b = calloc(1, sizeof *b);
  if (!b || !(b->b = calloc((size_t)p->ncodes + 1, sizeof *b->b)) ||
      !(b->state = calloc((size_t)p->ncodes + 1, 1)) ||
      !(b->started = calloc((size_t)p->ncodes + 1, 1)))
    return st_builds_free(b), NULL;
  b->p = p, b->cache = cache, b->max = max, b->clear = progress ? "\r\033[K" : "";
  for (int c = 0; c < p->ncodes; c++) {
    JitBuild *j = jit_build_start(p->codes[c].unit, cache, JIT_CACHED_ONLY, err, sizeof err);
    b->state[c] = j && jit_build_poll(j, 0) == JIT_BUILT ? TIER_READY : TIER_WAITING;
    b->started[c] = b->state[c] == TIER_READY;
    jit_build_free(j);
  }
  return b;
}

int st_builds_state(const StBuilds *b, int c) { return b->state[c]; }

/* How many builds are under way. */
static int under_way(const StBuilds *b) {
  int n = 0;
  for (int c = 0; c < b->p->ncodes; c++)
    n += b->b[c] != NULL;
  return n;
}

/* Starts code c's build; a build that cannot start fails at once. */
static void start(StBuilds *b, int c) {
  char err[2048];
  b->started[c] = 1;
  b->b[c] = jit_build_start(b->p->codes[c].unit, b->cache, JIT_USE_CACHE, err, sizeof err);
  if (!b->b[c]) {
    b->state[c] = TIER_FAILED;
    fprintf(stderr, "%smlpc: warning: gcc's object for %s cannot be built: %s; its runs go "
            "on with tcc's code, which gives the same results\n", b->clear,
            b->p->s->exp[b->p->codes[c].exp].name, err);
  } else if (jit_build_poll(b->b[c], 0) != JIT_BUILDING)
    st_builds_done(b, c); /* cached meanwhile */
}

void st_builds_schedule(StBuilds *b, const int *need) {
  for (int c = 0; c < b->p->ncodes; c++)
    if (b->b[c] && need[c] == ST_NEED_NONE) {
      jit_build_free(b->b[c]); /* no run needs it any more */
      b->b[c] = NULL;
      b->started[c] = 0;
    }
  for (int n = under_way(b); n < b->max; n++) {
    int best = -1;
    for (int c = 0; c < b->p->ncodes; c++)
      if (!b->started[c] && need[c] > 0 && (best < 0 || need[c] < need[best]))
        best = c;
    if (best < 0)
      return;
    start(b, best);
  }
}

int st_builds_poll(const StBuilds *b, struct pollfd *fds, int *codes, int room) {
  int n = 0;
  for (int c = 0; c < b->p->ncodes && n < room; c++)
    if (b->b[c] && jit_build_fd(b->b[c]) >= 0)
      fds[n] = (struct pollfd){jit_build_fd(b->b[c]), POLLIN, 0}, codes[n++] = c;
  return n;
}

int st_builds_done(StBuilds *b, int c) {
  int st = b->b[c] ? jit_build_poll(b->b[c], 0) : JIT_BUILDING;
  if (st == JIT_BUILDING)
    return TIER_WAITING;
  b->state[c] = st == JIT_BUILT ? TIER_READY : TIER_FAILED;
  if (!jit_build_cached(b->b[c]))
    b->seconds += jit_build_seconds(b->b[c]), b->ended++;
  if (st == JIT_FAILED)
    fprintf(stderr, "%smlpc: warning: %s: %s; its runs go on with tcc's code, which gives "
            "the same results\n", b->clear, b->p->s->exp[b->p->codes[c].exp].name,
            jit_build_error(b->b[c]));
  jit_build_free(b->b[c]);
  b->b[c] = NULL;
  return b->state[c];
}

double st_builds_seconds(const StBuilds *b) { return b->ended ? b->seconds / b->ended : 0; }

void st_builds_forget(StBuilds *b) {
  for (int c = 0; b && c < b->p->ncodes; c++)
    if (b->b[c])
      jit_build_forget(b->b[c]);
}

void st_builds_free(StBuilds *b) {
  if (!b)
    return;
  for (int c = 0; b->b && c < b->p->ncodes; c++)
    jit_build_free(b->b[c]);
  free(b->b), free(b->state), free(b->started);
  free(b);
}
