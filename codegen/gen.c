/*
 * gen.c — the code generator's kit, shared by the drivers (emit.c:
 * training code; infer.c: inference C) and the layer units: the text
 * writer, numbers as exact C constants, calls wrapped at 100 columns, the
 * tensors a unit plans, and for inference C a trained tensor's values
 * and the constant arrays that hold them. It calls no unit and no
 * driver: the arrows point from them to it.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gen.h"

/* ---- the writer ---- */

/* Appends printf-style text to b, unless b ran out of memory before. */
void vemitf(Buf *b, const char *fmt, va_list ap) {
  while (!b->oom) {
    va_list aq;
    va_copy(aq, ap);
    size_t room = b->cap - b->len;
    int n = vsnprintf(b->buf ? b->buf + b->len : NULL, room, fmt, aq);
    va_end(aq);
    if (n < 0)
      abort(); /* unreachable: formats are ours */
    if ((size_t)n < room) {
      b->len += n;
      return;
    }
    size_t cap = (b->cap + n + 1) * 2;
    char *p = fe_realloc(b->buf, cap);
    if (p)
      b->buf = p, b->cap = cap;
    b->oom = !p;
  }
}

void emitf(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vemitf(b, fmt, ap);
  va_end(ap);
}

const char *gen_num(double v) {
  static char ring[8][40];
  static int next;
  char *s = ring[next++ % 8];
  snprintf(s, sizeof ring[0], "%a", v);
  return s;
}

void gen_wrap(Buf *b, const char *first, const char *rest, const char *text) {
  int col = (int)strlen(first), start = col;
  emitf(b, "%s", first);
  for (const char *w = text; *w;) {
    int len = (int)strcspn(w, " ");
    if (col > start && col + 1 + len + 3 > 100)
      emitf(b, "\n%s", rest), col = start = (int)strlen(rest);
    emitf(b, "%s%.*s", col > start ? " " : "", len, w);
    col += (col > start) + len;
    w += len + strspn(w + len, " ");
  }
}

void gen_comment(Buf *b, int indent, const char *text) {
  char first[128], rest[128];
  snprintf(first, sizeof first, "%*s/* ", indent, "");
  snprintf(rest, sizeof rest, "%*s   ", indent, "");
  gen_wrap(b, first, rest, text);
  emitf(b, " */\n");
}

const char *gen_decimal(double v) {
  static char ring[8][40];
  static int next;
  char *s = ring[next++ % 8];
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(s, sizeof ring[0], "%.*g", digits, v);
    if (strtod(s, NULL) == v)
      break;
  }
  return s;
}

void gen_const(Gen *g, int is_double, const char *name, double v, const char *fmt, ...) {
  char what[128];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  int f32 = !is_double && g->m->dtype == DT_F32;
  char num[40];
  snprintf(num, sizeof num, "%a%s", f32 ? (double)(float)v : v, f32 ? "f" : "");
  gen_commented(g->b, "", "static const %s %s = %s;", what, is_double ? "double" : "real",
                name, num);
}

void gen_commented(Buf *b, const char *indent, const char *code, const char *comment, ...) {
  char text[512];
  va_list ap;
  va_start(ap, comment);
  vsnprintf(text, sizeof text, code, ap);
  va_end(ap);
  int width = (int)(strlen(indent) + strlen(text) + strlen(comment)) + 7;
  if (width > 100)
    gen_comment(b, (int)strlen(indent), comment), emitf(b, "%s%s\n", indent, text);
  else
    emitf(b, "%s%s /* %s */\n", indent, text, comment);
}

/* gen_call and gen_call_commented: the call, args formatted already. */
static void call_text(Buf *b, const char *head, const char *args, const char *comment) {
  int indent = (int)strlen(head), col = indent;
  int one_line = indent + (int)strlen(args) + 2 + (comment ? (int)strlen(comment) + 7 : 0);
  if (comment && one_line > 100)
    gen_comment(b, (int)strspn(head, " "), comment);
  emitf(b, "%s", head);
  for (const char *a = args, *next; a; a = next) {
    next = strstr(a, ", ");
    int len = next ? (int)(next - a) : (int)strlen(a);
    if (a != args && col + 2 + len + 2 > 100)
      emitf(b, ",\n%*s", indent, ""), col = indent;
    else if (a != args)
      emitf(b, ", "), col += 2;
    emitf(b, "%.*s", len, a);
    col += len;
    next = next ? next + 2 : NULL;
  }
  if (comment && one_line <= 100)
    emitf(b, "); /* %s */\n", comment);
  else
    emitf(b, ");\n");
}

void gen_call(Buf *b, const char *head, const char *fmt, ...) {
  char args[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  call_text(b, head, args, NULL);
}

void gen_call_commented(Buf *b, const char *comment, const char *head, const char *fmt, ...) {
  char args[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  call_text(b, head, args, comment);
}

/* ---- tensors ---- */

void gen_name(char *dst, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(dst, len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= len) {
    fprintf(stderr, "mlpc: internal error: name '%s' too long (%s:%d)\n", dst, __FILE__,
            __LINE__);
    abort();
  }
}

void gen_shape(Tensor *t, int ndim, const int *dims) {
  t->ndim = ndim;
  for (int d = 0; d < 4; d++)
    t->shape[d] = d < ndim ? dims[d] : 0;
}

Tensor *gen_tensor(Gen *g, const char *cprefix, const char *tprefix, const char *field,
                   int kind, int rows, int cols) {
  Tensor *t = &g->t[g->ntensors++];
  memset(t, 0, sizeof *t);
  gen_name(t->cname, sizeof t->cname, "%s_%s", cprefix, field);
  gen_name(t->tname, sizeof t->tname, "%s.%s", tprefix, field);
  t->kind = kind;
  int dims[2] = {rows, cols};
  gen_shape(t, cols ? 2 : 1, dims);
  t->trained = kind <= RT_BETA;
  t->init = g->m->init;
  return t;
}

long gen_numel(const Tensor *t) {
  long n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->shape[d];
  return n;
}

void gen_count(Gen *g, size_t n, int is_real) {
  g->bytes += n * (is_real && g->m->dtype == DT_F32 ? 4 : 8);
}

int gen_fused_sgd(const Model *m) {
  return m->opt.type == OPT_SGD && !fe_momentum_buffer(m) && m->opt.weight_decay == 0 &&
         m->clip_grad_norm == 0;
}

const char *gen_neg_lr(const Model *m) {
  static char s[48];
  if (fe_scheduled(m))
    return "R(-opt_hyper[0])";
  gen_name(s, sizeof s, "-%s_lr", opt_names[m->opt.type]);
  return s;
}

/* ---- inference C: trained values ---- */

const RtTensor *inf_find(const Inf *I, const Layer *l, const char *field) {
  char name[64];
  snprintf(name, sizeof name, "%s.%s", l->tname, field);
  for (int i = 0; i < I->net->ntensors; i++)
    if (!strcmp(I->net->tensors[i].name, name))
      return &I->net->tensors[i];
  fprintf(stderr, "mlpc: internal error: no tensor %s (%s:%d)\n", name, __FILE__, __LINE__);
  abort();
}

double inf_at(const RtTensor *t, long i) {
  i = rt_offset(t, i);
  return t->dtype == RT_F32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
}

double *inf_doubles(long n) {
  double *p = malloc(sizeof(double) * (size_t)(n + 1));
  if (!p) {
    fprintf(stderr, "mlpc: error: out of memory\n");
    exit(1);
  }
  return p;
}

int inf_array(Inf *I, const char *name, const char *what, const double *v, long n,
              int is_double) {
  Buf *b = I->b;
  int f32 = I->f32 && !is_double;
  emitf(b, "static const %s %s[%ld] = { /* %s */\n", is_double ? "double" : "real", name, n,
        what);
  int col = 0;
  for (long i = 0; i < n; i++) {
    double x = f32 ? (double)(float)v[i] : v[i];
    if (!isfinite(x)) {
      snprintf(I->err, I->errlen, "%s[%ld] (%s) is %g: only finite weights can be emitted",
               name, i, what, x);
      return -1;
    }
    char num[40];
    int len = snprintf(num, sizeof num, "%a%s,", x, f32 ? "f" : "");
    if (col && col + 1 + len > 100)
      emitf(b, "\n"), col = 0;
    emitf(b, "%s%s", col ? " " : "  ", num);
    col += (col ? 1 : 2) + len;
    if (i == n - 1)
      emitf(b, "\n");
  }
  emitf(b, "};\n\n");
  return 0;
}
