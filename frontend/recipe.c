/*
 * recipe.c — what the rest of the pipeline asks about a model's training
 * recipe (docs/model-format.md, "The training recipe"): whether its lr is a
 * runtime value, whether its optimizer keeps a momentum buffer, and the
 * recipe in words. frontend/load.c reads and checks the keys.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "model.h"

int fe_scheduled(const Model *m) {
  return m->recipe.schedule != RT_SCHED_NONE || m->recipe.warmup > 0;
}

int fe_cycles_momentum(const Model *m) {
  return m->recipe.schedule == RT_SCHED_ONECYCLE && m->recipe.cycle_momentum;
}

int fe_momentum_buffer(const Model *m) {
  int t = m->opt.type;
  return (t == OPT_SGD || t == OPT_RMSPROP) && (m->opt.momentum > 0 || fe_cycles_momentum(m));
}

const char *fe_overridden(const Model *m, const char *key) {
  if (m->recipe.schedule == RT_SCHED_ONECYCLE && !strcmp(key, "optimizer.lr"))
    return "the schedule, onecycle, sets the lr itself, from max_lr / div_factor up to max_lr "
           "and down (OneCycleLR ignores the optimizer's lr); change schedule.max_lr";
  if (fe_cycles_momentum(m) && !strcmp(key, "optimizer.momentum"))
    return "the schedule, onecycle, cycles the momentum itself, between schedule.max_momentum "
           "and schedule.base_momentum; change those, or set schedule.cycle_momentum false";
  return NULL;
}

int fe_has_recipe(const Model *m) {
  const RtRecipe *r = &m->recipe;
  return fe_scheduled(m) || r->val_count || r->val_fraction > 0 || r->patience;
}

/* Appends printf-style text to buf (of size), which holds *len bytes. */
__attribute__((format(printf, 4, 5)))
static void add(char *buf, size_t size, size_t *len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (*len < size) {
    int n = vsnprintf(buf + *len, size - *len, fmt, ap);
    *len += n > 0 ? (size_t)n : 0;
  }
  va_end(ap);
}

/* A number as a model file writes it. */
static const char *real(double d) {
  static char ring[6][40];
  static int next;
  char *s = ring[next++ % 6];
  fe_show_real(s, sizeof ring[0], d);
  return s;
}

/* The schedule's settings in words. */
static void describe_schedule(const RtRecipe *r, char *buf, size_t size, size_t *len) {
  if (r->schedule == RT_SCHED_STEP)
    add(buf, size, len, ", schedule step (step_size %d, gamma %s)", r->step_size,
        real(r->gamma));
  if (r->schedule == RT_SCHED_COSINE)
    add(buf, size, len, ", schedule cosine (T_max %d, eta_min %s)", r->T_max,
        real(r->eta_min));
  if (r->schedule == RT_SCHED_ONECYCLE) {
    add(buf, size, len, ", schedule onecycle (max_lr %s", real(r->max_lr));
    if (r->total_steps)
      add(buf, size, len, ", total_steps %ld", r->total_steps);
    add(buf, size, len, ", pct_start %s, %s, momentum %s)", real(r->pct_start),
        anneal_names[r->anneal], r->cycle_momentum ? "cycled" : "not cycled");
  }
  if (r->warmup)
    add(buf, size, len, ", warmup %ld steps", r->warmup);
}

void fe_describe_recipe(const Model *m, char *buf, size_t size) {
  const RtRecipe *r = &m->recipe;
  size_t len = 0;
  buf[0] = '\0';
  describe_schedule(r, buf, size, &len);
  if (m->clip_grad_norm > 0)
    add(buf, size, &len, ", clip_grad_norm %s", real(m->clip_grad_norm));
  if (m->label_smoothing > 0)
    add(buf, size, &len, ", label_smoothing %s", real(m->label_smoothing));
  if (r->val_count)
    add(buf, size, &len, ", validation %ld", r->val_count);
  if (r->val_fraction > 0)
    add(buf, size, &len, ", validation %s", real(r->val_fraction));
  if (r->patience)
    add(buf, size, &len, ", early_stopping (patience %d)", r->patience);
}
