/*
 * act.c — every activation, one unit: rt/acts.h's formulas, which
 * rt/kernels.h expands into act_NAME and act_NAME_back, as the text
 * that the training code shows in comments, inference C computes and the
 * health figures test.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "gen.h"

typedef struct {
  const char *fwd, *bwd;   /* y from x; dx from x, y, g                  */
  const char *sat, *flat;  /* health tests, or NULL (docs/health.md)     */
} ActText;

static const ActText act_text[NACTS] = {
#define TEXT_(e, name, dflt, fwd, bwd, sat, flat) [e] = {#fwd, #bwd, sat, flat},
  ACTS(TEXT_)
#undef TEXT_
};

const char *act_forward_text(int type) {
  return act_text[type].fwd;
}

/* The activation's parameter as PyTorch names it (leaky_relu's
   negative_slope, elu's alpha), or NULL: it has none. */
static const char *param_field(int type) {
  return act_default_params[type] == 0 ? NULL : type == ACT_LEAKY ? "negative_slope" : "alpha";
}

/* The activation's parameter as the name of a real constant, which it
   declares, or R(0) (a ring of 2). */
static const char *param(Gen *g, const Layer *l) {
  static char ring[2][64];
  static int next;
  char *s = ring[next++ % 2];
  const char *field = param_field(l->spec.act.type);
  if (!field)
    return "R(0)";
  gen_name(s, sizeof ring[0], "%s_%s", l->cname, field);
  gen_const(g, 0, s, l->spec.act.param, "%s %s", field, gen_decimal(l->spec.act.param));
  emitf(g->b, "\n");
  return s;
}

/* Forward and backward: the kernels act_NAME and act_NAME_back. */
static void emit(Ctx *c) {
  Buf *b = c->g->b;
  int type = c->l->spec.act.type, C = c->l->out;
  const char *p = c->p, *name = act_names[type];
  emitf(b, "/* %s: %s, %s -> %s", p, name, ir_shape(&c->l->x), ir_shape(&c->l->y));
  if (c->pooled) { /* (a BatchNorm2d before it normalises in the same kernel) */
    emitf(b, ",\n   in %s's kernels (%s) */\n\n", c->l[1].cname,
          c->l[-1].kind == L_BATCHNORM2D ? "maxpool2d_bn_relu_forward, maxpool2d_relu_bn_backward"
                                         : "maxpool2d_relu_*");
    return;
  }
  emitf(b, " */\n");
  const char *pm = param(c->g, c->l);
  char head[48], comment[160];
  emitf(b, "static void %s_forward(int n) {\n", p);
  gen_name(head, sizeof head, "  act_%s(", name);
  snprintf(comment, sizeof comment, "y = %s", act_text[type].fwd);
  gen_call_commented(b, comment, head, "n * %d, %s, %s_out, %s", C, c->in, p, pm);
  emitf(b, "}\n\nstatic void %s_backward(int n) {\n", p);
  if (c->first) {
    emitf(b, "  (void)n; /* the input has no gradient */\n}\n\n");
    return;
  }
  gen_name(head, sizeof head, "  act_%s_back(", name);
  snprintf(comment, sizeof comment, "dx = %s", act_text[type].bwd);
  gen_call_commented(b, comment, head, "n * %d, %s, %s_out, d%s_out, d%s, %s", C, c->in, p, p,
                     c->in, pm);
  emitf(b, "}\n\n");
}

/* ---- health figures (docs/health.md) ---- */

int act_health_na(int type) {
  const ActText *t = &act_text[type];
  return t->sat ? 0 : t->flat ? 1 << RT_SATURATED : 1 << RT_SATURATED | 1 << RT_DEAD;
}

/* Whether the tests' text reads the variable v (a one-letter name). */
static int reads(const ActText *t, char v) {
  for (int k = 0; k < 2; k++)
    for (const char *s = k ? t->flat : t->sat; s && *s; s++)
      if (*s == v && (s == (k ? t->flat : t->sat) || !isalnum((unsigned char)s[-1])) &&
          !isalnum((unsigned char)s[1]) && s[1] != '_')
        return 1;
  return 0;
}

/* The saturated and dead counts, as the activation defines them: x and
   y declared where the tests read them. */
static void emit_health_counts(Buf *b, const ActText *t) {
  if (!t->flat)
    return;
  emitf(b, "  long %sdead = 0;\n"
        "  for (int c = 0; c < C; c++) {\n"
        "    int flat = 1; /* on every sample and position so far */\n"
        "    for (int r = 0; r < n; r++)\n"
        "      for (int s = 0; s < S; s++) {\n",
        t->sat ? "saturated = 0, " : "");
  if (reads(t, 'x'))
    emitf(b, "        real x = pre[((long)r * C + c) * S + s];\n");
  if (reads(t, 'y'))
    emitf(b, "        real y = post[((long)r * C + c) * S + s];\n");
  if (t->sat)
    emitf(b, "        int sat = %s;\n        saturated += sat;\n", t->sat);
  emitf(b, "        flat &= %s;\n      }\n    dead += flat;\n  }\n", t->flat);
}

void act_emit_health(Buf *b, int type) {
  const ActText *t = &act_text[type];
  const char *name = act_names[type];
  emitf(b, "/* The figures of a %s layer from its input (pre) and output (post),\n"
        "   both (n, C, S): C units (features, or channels of S positions), in\n"
        "   RT_LAYER_FIGURES order: ", name);
  if (t->sat)
    emitf(b, "saturated when %s;\n   a unit is dead when saturated on every sample and "
          "position. */\n", t->sat);
  else if (t->flat)
    emitf(b, "saturation is not defined;\n   a unit is dead when %s on every sample and "
          "position. */\n", t->flat);
  else
    emitf(b, "saturation is not defined;\n   dead units are not defined. */\n");
  emitf(b, "static void health_%s(int n, int C, int S, const real *pre, const real *post,\n"
        "                        double *out) {\n"
        "  health_moments((long)n * C * S, pre, &out[RT_PRE_MEAN], &out[RT_PRE_STD]);\n"
        "  health_moments((long)n * C * S, post, &out[RT_POST_MEAN], &out[RT_POST_STD]);\n",
        name);
  emit_health_counts(b, t);
  if (t->sat)
    emitf(b, "  out[RT_SATURATED] = (double)saturated / ((double)n * C * S);\n");
  else
    emitf(b, "  out[RT_SATURATED] = NAN; /* not defined for %s */\n", name);
  if (t->flat)
    emitf(b, "  out[RT_DEAD] = (double)dead / C;\n}\n\n");
  else
    emitf(b, "  out[RT_DEAD] = NAN; /* not defined for %s */\n}\n\n", name);
}

/* ---- inference ---- */

/* The forward formula over the sample, in place; P is the parameter. */
static void infer_forward(Inf *I, const Layer *l) {
  int type = l->spec.act.type;
  const char *name = act_names[type];
  emitf(I->b, "/* %s: %s, in place on v (%d) */\n", l->cname, name, l->out);
  emitf(I->b, "static void %s_forward(real *v) {\n", l->cname);
  if (act_default_params[type] != 0)
    emitf(I->b, "  const real p = R(%a); /* %g */\n", l->spec.act.param, l->spec.act.param);
  emitf(I->b, "  for (int i = 0; i < %d; i++) {\n    real x = v[i];\n    v[i] = %s;\n  }\n}\n\n",
        l->out, act_text[type].fwd);
}

const LayerUnit unit_act = {
  .emit = emit,
  .health = 1,
  .infer_forward = infer_forward,
};
