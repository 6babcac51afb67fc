/*
 * tier.c — tiered execution: a run starts at once on the code libtcc
 * compiles in memory, while gcc compiles the same unit beside it; at the
 * first step boundary after gcc's object is ready, the run moves to it
 * (docs/backends.md, "Tiered execution").
 *
 * The object comes from a build of the tier's own (a JitBuild: a single
 * run, an MPI rank) or from someone else's, who says when it is there (a
 * study's parent, which builds for its workers: TierAsk). The move copies
 * the whole training state, which is the tensor table: parameters,
 * buffers, gradients, optimizer state, the step counter and the seed are
 * all RtTensors; and under a schedule, the lr and momentum the code
 * reads (RtNet.hyper), which the schedule then sets in the new code
 * (rt_sched_move). What the training loop holds (the batch order, the
 * validation split, early stopping's best weights, the schedule's own
 * state) is not the code's, and goes on as it is. Everything else the
 * generated code holds (activations, a layer's scratch, the copies the
 * health probe keeps) is written before it is read within one step, one
 * test batch or one probe, and kernels keep nothing between calls; so
 * the run goes on bit for bit as it would have on either backend, which
 * give the same bits (tests/test_tier.c).
 *
 * MLPC_TEST_SWITCH_AFTER=N, for tests: a run starts on tcc even when the
 * object is cached, and moves to gcc after exactly N calls of the model
 * (training steps and test batches, counted together from the run's
 * start), waiting for the object there if it is not ready yet (a later
 * run of the same tier, as a study's worker runs a code again, starts
 * on gcc's code once the tier has moved); without
 * it, the tier looks every POLL_MS milliseconds, and when it moves
 * depends on when gcc ends, which changes no result.
 *
 * A tier's own build runs 10 lower in priority than the run (JIT_BESIDE):
 * on an idle core at full speed, and on a busy machine taking what the
 * run leaves, so that a short run is not slowed by a build it will never
 * use. But on a machine with no idle core, where other processes keep
 * every core busy, such a gcc gets next to nothing and a long run never
 * moves. So once the run has lasted STARVED_SECONDS, if the load average
 * over the last minute is at least the number of cores, the build is
 * started again at the run's own priority, to take its share like any
 * other process (a process cannot raise its priority back; what the
 * niced build did is lost, little on such a machine). Checked every
 * second after that; MLPC_TEST_RENICE_AFTER=N, for tests, does it after
 * exactly N calls of the model, whatever the clock and the load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../mlpc.h"

enum { POLL_MS = 10 };  /* how often a run looks for gcc's object        */
/* How long a run leaves its gcc 10 lower before it looks at the load:
   more than a build of make run's model takes on a free core (2.3 s of
   CPU, docs/performance.md). */
#define STARVED_SECONDS 3.0

struct Tier {
  char *src;             /* the unit, for both compilers                 */
  char cache[4096];
  Jit *tcc, *gcc;
  const RtNet *net;      /* the code in use                              */
  JitBuild *build;       /* a build of the tier's own, or NULL           */
  TierAsk ask;           /* or someone else's                            */
  void *ask_ctx;
  int state;             /* TIER_WAITING, TIER_READY, TIER_FAILED        */
  long calls;            /* calls of the model in this run               */
  long force;            /* MLPC_TEST_SWITCH_AFTER, or -1                */
  long renice;           /* MLPC_TEST_RENICE_AFTER, or -1                */
  int beside;            /* the build runs 10 lower than the run         */
  double next_poll;
  double t0;             /* when the tier started                        */
  double next_load;      /* when to look at the load next                */
  int on_gcc_from_start; /* this run started on gcc                      */
  RtWhere from;          /* where gcc took over in this run; epoch 0: not */
  double ready;          /* seconds from the tier's start to the object  */
};

const char *const tier_ran_names[] = {"tcc", "gcc", "tcc, then gcc"};

/* A test knob (MLPC_TEST_...) as a number of calls, or -1 when unset. */
static long knob(const char *name) {
  const char *s = getenv(name);
  char *end;
  long n = s && *s ? strtol(s, &end, 10) : -1;
  return s && *s && !*end && n >= 0 ? n : -1;
}

int tier_forced(void) { return knob("MLPC_TEST_SWITCH_AFTER") >= 0; }

/* A tier without code yet; NULL out of memory. */
static Tier *tier_alloc(const char *src, const char *cache, char *err,
                        size_t errlen) {
  Tier *t = calloc(1, sizeof *t);
  if (t && !(t->src = strdup(src)))
    free(t), t = NULL;
  if (!t)
    return snprintf(err, errlen, "out of memory"), NULL;
  snprintf(t->cache, sizeof t->cache, "%s", cache);
  t->force = knob("MLPC_TEST_SWITCH_AFTER");
  t->renice = knob("MLPC_TEST_RENICE_AFTER");
  t->t0 = rt_now();
  t->next_load = t->t0 + STARVED_SECONDS;
  t->state = TIER_WAITING;
  return t;
}

/* Says once that the run stays on tcc, and why. */
static void give_up(Tier *t, const char *why) {
  t->state = TIER_FAILED;
  fprintf(stderr, "mlpc: warning: %s; the run goes on with tcc's code, which gives the "
          "same results\n", why);
}

int tier_copy_state(const RtNet *dst, const RtNet *src, char *err, size_t errlen) {
  if (dst->ntensors != src->ntensors)
    return snprintf(err, errlen, "the two codes have %d and %d tensors", dst->ntensors,
                    src->ntensors), -1;
  for (int k = 0; k < src->ntensors; k++) {
    const RtTensor *a = &src->tensors[k], *b = &dst->tensors[k];
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || rt_numel(a) != rt_numel(b) ||
        a->transposed != b->transposed)
      return snprintf(err, errlen, "tensor %d differs between the codes: %s, %s", k,
                      a->name, b->name), -1;
  }
  if (!dst->hyper != !src->hyper)
    return snprintf(err, errlen, "one code has a schedule's lr and the other not"), -1;
  for (int k = 0; k < src->ntensors; k++) {
    const RtTensor *a = &src->tensors[k];
    memcpy(dst->tensors[k].data, a->data, (size_t)rt_numel(a) * (a->dtype == RT_F32 ? 4 : 8));
  }
  if (src->hyper)
    memcpy(dst->hyper, src->hyper, 2 * sizeof *src->hyper);
  return 0;
}

/* The object, loaded: from the tier's build, or found in the cache. */
static Jit *load_gcc(Tier *t, char *err, size_t errlen) {
  if (t->build)
    return jit_build_load(t->build, err, errlen);
  JitBuild *b = jit_build_start(t->src, t->cache, JIT_CACHED_ONLY, err, errlen);
  Jit *j = b ? jit_build_load(b, err, errlen) : NULL;
  jit_build_free(b);
  return j;
}

/* Moves the run to gcc's object at a step boundary, the state copied
   over. tcc's code stays until tier_free: what the run keeps of a net
   (the health figures' names) may point into it. */
static void go_gcc(Tier *t, const RtWhere *at) {
  char err[2300], why[2400];
  Jit *g = load_gcc(t, err, sizeof err);
  if (g && t->net && tier_copy_state(jit_net(g), t->net, err, sizeof err))
    jit_free(g), g = NULL;
  if (!g) {
    snprintf(why, sizeof why, "gcc's object cannot take over: %s", err);
    return give_up(t, why);
  }
  t->gcc = g;
  t->net = jit_net(g);
  if (at)
    t->from = *at;
  t->state = TIER_READY;
}

/* Whether gcc's object is ready: TIER_WAITING, TIER_READY or
   TIER_FAILED (after saying why); with wait, once it is known. */
static int ask(Tier *t, int wait) {
  if (!t->build)
    return t->ask(t->ask_ctx, wait);
  int st = jit_build_poll(t->build, wait);
  if (st == JIT_BUILDING)
    return TIER_WAITING;
  t->ready = rt_now() - t->t0;
  if (st == JIT_BUILT)
    return TIER_READY;
  char why[2400];
  snprintf(why, sizeof why, "%s", jit_build_error(t->build));
  give_up(t, why);
  return TIER_FAILED;
}

/* Whether the machine has no idle core: a load average over the last
   minute of at least its number of cores. */
static int busy(void) {
  double load;
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return getloadavg(&load, 1) == 1 && load >= (double)(cores > 0 ? cores : 1);
}

/* Stops the tier's build, 10 lower, and starts it again at the run's
   priority (a warning if it cannot start). */
static void renice(Tier *t) {
  char e[2300], why[2400];
  jit_build_free(t->build);
  t->beside = 0;
  t->build = jit_build_start(t->src, t->cache, JIT_USE_CACHE, e, sizeof e);
  if (!t->build) {
    snprintf(why, sizeof why, "gcc's object cannot be built: %s", e);
    give_up(t, why);
  }
}

/* Without MLPC_TEST_SWITCH_AFTER: whether to look for the object now
   (every POLL_MS); first, from STARVED_SECONDS on, once a second, starts
   a starved build again at the run's priority. */
static int poll_due(Tier *t) {
  double now = rt_now();
  if (now < t->next_poll)
    return 0;
  t->next_poll = now + POLL_MS * 1e-3;
  if (t->build && t->beside && t->renice < 0 && now >= t->next_load) {
    t->next_load = now + 1;
    if (busy())
      renice(t);
  }
  return t->state != TIER_FAILED;
}

const RtNet *tier_next(void *tier, const RtWhere *at) {
  Tier *t = tier;
  long n = t->calls++;
  if (t->gcc || t->state == TIER_FAILED)
    return t->net;
  if (n == t->renice && t->build && t->beside)
    renice(t);
  int wait = t->force >= 0;
  if (t->state == TIER_FAILED || (wait ? n != t->force : !poll_due(t)))
    return t->net;
  int st = ask(t, wait);
  if (st == TIER_READY)
    go_gcc(t, at);
  else if (st == TIER_FAILED)
    t->state = TIER_FAILED;
  return t->net;
}

/* Starts on tcc's code; 0, or -1 with err set. */
static int go_tcc(Tier *t, char *err, size_t errlen) {
  t->tcc = jit_tcc(t->src, err, errlen);
  t->net = t->tcc ? jit_net(t->tcc) : NULL;
  return t->tcc ? 0 : -1;
}

Tier *tier_start(const char *src, const char *cache, char *err, size_t errlen) {
  char why[2400], e[2300];
  Tier *t = tier_alloc(src, cache, err, errlen);
  if (!t)
    return NULL;
  t->build = jit_build_start(src, cache, JIT_USE_CACHE | JIT_BESIDE, e, sizeof e);
  t->beside = t->build != NULL;
  if (!t->build) {
    snprintf(why, sizeof why, "gcc's object cannot be built: %s", e);
    give_up(t, why);
  } else if (t->force < 0 && jit_build_cached(t->build))
    go_gcc(t, NULL);
  if (!t->gcc && go_tcc(t, err, errlen))
    return tier_free(t), NULL;
  tier_run_start(t);
  return t;
}

Tier *tier_follow(const char *src, const char *cache, int state, TierAsk ask_fn,
                  void *ctx, char *err, size_t errlen) {
  Tier *t = tier_alloc(src, cache, err, errlen);
  if (!t)
    return NULL;
  t->ask = ask_fn, t->ask_ctx = ctx;
  t->state = state == TIER_FAILED ? TIER_FAILED : TIER_WAITING;
  if (state == TIER_READY && t->force < 0)
    go_gcc(t, NULL);
  if (!t->gcc && go_tcc(t, err, errlen))
    return tier_free(t), NULL;
  tier_run_start(t);
  return t;
}

void tier_run_start(Tier *t) {
  if (!t->gcc && t->force < 0 && t->state == TIER_WAITING && ask(t, 0) == TIER_READY)
    go_gcc(t, NULL); /* ready since the last run */
  t->calls = 0;
  t->next_poll = 0;
  t->on_gcc_from_start = t->gcc != NULL;
  t->from = (RtWhere){0, 0, 0};
}

const RtNet *tier_net(const Tier *t) { return t->net; }

int tier_ran(const Tier *t, RtWhere *from) {
  if (from)
    *from = t->from;
  return t->on_gcc_from_start ? TIER_RAN_GCC : t->from.epoch ? TIER_RAN_BOTH : TIER_RAN_TCC;
}

/* "epoch 3, step 412" or "epoch 2, test batch 5". */
static void where_text(const RtWhere *w, char *buf, size_t len) {
  if (w->step)
    snprintf(buf, len, "epoch %d, step %ld", w->epoch, w->step);
  else
    snprintf(buf, len, "epoch %d, test batch %ld", w->epoch, w->batch);
}

void tier_describe(const Tier *t, char *buf, size_t len) {
  char at[64];
  int ran = tier_ran(t, NULL);
  where_text(&t->from, at, sizeof at);
  if (ran == TIER_RAN_GCC)
    snprintf(buf, len, "gcc's code throughout");
  else if (ran == TIER_RAN_BOTH)
    snprintf(buf, len, "tcc's code, then gcc's from %s", at);
  else
    snprintf(buf, len, "tcc's code throughout (%s)", t->state == TIER_FAILED
             ? "gcc gave no object" : "the run ended before gcc's object was ready");
}

void tier_print(void *tier, int json, FILE *f) {
  const Tier *t = tier;
  char text[256];
  tier_describe(t, text, sizeof text);
  if (!json) {
    fprintf(f, "code: %s", text);
    if (t->from.epoch && t->ready > 0)
      fprintf(f, "; gcc's object was ready %.3f s after the start", t->ready);
    fprintf(f, "\n");
    return;
  }
  fprintf(f, ", \"code\": \"%s\", \"gcc_from\": ", tier_ran_names[tier_ran(t, NULL)]);
  if (!t->from.epoch)
    fprintf(f, "null");
  else if (t->from.step)
    fprintf(f, "{\"epoch\": %d, \"step\": %ld}", t->from.epoch, t->from.step);
  else
    fprintf(f, "{\"epoch\": %d, \"test_batch\": %ld}", t->from.epoch, t->from.batch);
}

void tier_free(Tier *t) {
  if (!t)
    return;
  jit_build_free(t->build);
  jit_free(t->tcc);
  jit_free(t->gcc);
  free(t->src);
  free(t);
}
