/*
 * sched.c — the learning-rate schedule (docs/model-format.md,
 * "schedule"), computed as PyTorch 1.13's torch.optim.lr_scheduler
 * computes it: the same recursive formulas, stepped at the same points,
 * in double, so that every lr is PyTorch's to the last bit.
 *
 * The PyTorch construction each schedule stands for, on an optimizer
 * whose lr is the model's:
 *
 *   step      StepLR(opt, step_size, gamma), stepped after each epoch
 *   cosine    CosineAnnealingLR(opt, T_max, eta_min), after each epoch
 *   onecycle  OneCycleLR(opt, max_lr, total_steps, ...), after each
 *             training step
 *   warmup N  LinearLR(opt, start_factor=1/N, total_iters=N), after each
 *             training step. With none, step and cosine it is chained: the
 *             two schedulers act on the one lr, each multiplying what the
 *             other left (PyTorch's chainable form), and at the end of an
 *             epoch LinearLR steps first. OneCycleLR sets the lr outright
 *             and cannot be chained, so the warmup goes in front of it:
 *             SequentialLR(opt, [LinearLR, OneCycleLR], milestones=[N]),
 *             the cycle starting after N steps.
 *
 * The model's code reads the lr (and onecycle's momentum) from
 * RtNet.hyper, which these functions set before each step; a tiered run
 * that moves to another compilation of the model moves its schedule with
 * it (rt_sched_move).
 */
#include <math.h>
#include <stdio.h>
#include "rt.h"

#define SCHED_PI 3.141592653589793 /* Python's math.pi */

/* Writes the lr (and a cycled momentum) where the model's code reads them. */
static void sched_publish(RtSched *s) {
  s->hyper[0] = s->lr;
  if (s->r->schedule == RT_SCHED_ONECYCLE && s->r->cycle_momentum)
    s->hyper[1] = s->momentum;
}

/* OneCycleLR's _annealing_cos and _annealing_linear, from start to end
   as pct goes from 0 to 1. */
static double sched_anneal(int linear, double start, double end, double pct) {
  if (linear)
    return (end - start) * pct + start;
  double cos_out = cos(SCHED_PI * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}

/* OneCycleLR.get_lr at step n (two phases): the lr and the momentum. */
static void sched_cycle(RtSched *s, long n) {
  const RtRecipe *r = s->r;
  int rising = (double)n <= s->end1, lin = r->anneal == RT_ANNEAL_LINEAR;
  double start = rising ? 0 : s->end1, end = rising ? s->end1 : (double)(s->total - 1);
  double pct = ((double)n - start) / (end - start);
  s->lr = rising ? sched_anneal(lin, s->initial_lr, r->max_lr, pct)
                 : sched_anneal(lin, r->max_lr, s->min_lr, pct);
  s->momentum = rising ? sched_anneal(lin, r->max_momentum, r->base_momentum, pct)
                       : sched_anneal(lin, r->base_momentum, r->max_momentum, pct);
}

/* LinearLR.step(), recursive: its k-th step multiplies the lr by the
   ratio of its factors; past total_iters it leaves the lr alone. */
static void sched_warm(RtSched *s) {
  long n = s->r->warmup, k = ++s->warm_epoch;
  double start = 1.0 / n, end = 1.0;
  if (k <= n)
    s->lr = s->lr * (1. + (end - start) / (n * start + (k - 1) * (end - start)));
}

/* CosineAnnealingLR.step(), recursive, at epoch e >= 1 (base: the lr it
   started from). */
static double sched_cosine(const RtRecipe *r, int e, double lr) {
  double eta = r->eta_min, base = r->lr;
  long t = r->T_max;
  if ((e - 1 - t) % (2 * t) == 0)
    return lr + (base - eta) * (1 - cos(SCHED_PI / t)) / 2;
  return (1 + cos(SCHED_PI * e / t)) / (1 + cos(SCHED_PI * (e - 1) / t)) * (lr - eta) + eta;
}

/* OneCycleLR's total_steps for a run of `steps` steps, and the end of its
   rising phase; -1 with the reason in err when PyTorch would fail. */
static int sched_cycle_setup(RtSched *s, long steps, char *err, size_t errlen) {
  const RtRecipe *r = s->r;
  long cycle = steps - r->warmup;
  s->total = r->total_steps ? r->total_steps : cycle;
  s->end1 = r->pct_start * s->total - 1;
  if (s->total < 1 && !r->warmup)
    return snprintf(err, errlen, "schedule: onecycle cycles over the run's training steps, "
                    "and it takes none (its one training sample is skipped under BatchNorm)"), -1;
  if (s->total < 1)
    return snprintf(err, errlen, "schedule.warmup: the warmup of %ld steps leaves none of the "
                    "run's %ld steps to onecycle", r->warmup, steps), -1;
  if (cycle > s->total)
    return snprintf(err, errlen, "schedule.total_steps: onecycle has %ld steps, and the run "
                    "gives it %ld; raise total_steps, or leave it out (it is then the run's "
                    "steps%s)", s->total, cycle, r->warmup ? " less the warmup" : ""), -1;
  if (s->end1 == 0 || (double)(s->total - 1) - s->end1 == 0)
    return snprintf(err, errlen, "schedule.pct_start: pct_start x total_steps is %s: a phase "
                    "of OneCycleLR would take no step, and it divides by zero (PyTorch fails "
                    "too); change pct_start or total_steps", s->end1 ? "total_steps" : "1"), -1;
  return 0;
}

int rt_sched_check(const RtRecipe *r, long steps, char *err, size_t errlen) {
  RtSched s = {.r = r};
  return r->schedule == RT_SCHED_ONECYCLE ? sched_cycle_setup(&s, steps, err, errlen) : 0;
}

int rt_sched_start(RtSched *s, const RtNet *net, long steps, char *err, size_t errlen) {
  const RtRecipe *r = net->recipe;
  *s = (RtSched){.r = net->hyper ? r : NULL, .hyper = net->hyper};
  if (!s->r)
    return 0;
  s->lr = r->lr;
  if (r->schedule == RT_SCHED_ONECYCLE) {
    if (sched_cycle_setup(s, steps, err, errlen))
      return -1;
    s->initial_lr = r->max_lr / r->div_factor;
    s->min_lr = s->initial_lr / r->final_div_factor;
    sched_cycle(s, 0);
    if (r->warmup)
      s->lr = s->initial_lr;
  }
  if (r->warmup)
    s->lr = s->lr * (1.0 / r->warmup);
  sched_publish(s);
  return 0;
}

void rt_sched_step(RtSched *s) {
  const RtRecipe *r = s->r;
  if (!r)
    return;
  if (r->schedule != RT_SCHED_ONECYCLE)
    sched_warm(s);
  else if (r->warmup && ++s->seq_epoch < r->warmup)
    sched_warm(s);
  else
    sched_cycle(s, r->warmup && s->seq_epoch == r->warmup ? 0 : ++s->cyc_epoch);
  sched_publish(s);
}

void rt_sched_epoch(RtSched *s) {
  const RtRecipe *r = s->r;
  if (!r || (r->schedule != RT_SCHED_STEP && r->schedule != RT_SCHED_COSINE))
    return;
  int e = ++s->epoch;
  if (r->schedule == RT_SCHED_STEP && e % r->step_size == 0)
    s->lr = s->lr * r->gamma;
  if (r->schedule == RT_SCHED_COSINE)
    s->lr = sched_cosine(r, e, s->lr);
  sched_publish(s);
}

void rt_sched_move(RtSched *s, const RtNet *net) {
  if (!s->r)
    return;
  s->r = net->recipe;
  s->hyper = net->hyper;
  sched_publish(s);
}
