/*
 * doc.c — a study's report as one document, and its Markdown writer.
 *
 * report.c, health.c, conclude.c and adaptive.c build the report once:
 * headings, paragraphs and list items of inline text (plain, strong,
 * code, links), tables whose cells are text or numbers (the text as
 * shown, the value at full precision beside it), and figures. Two
 * writers render it: st_doc_markdown here (report.md) and st_doc_html
 * (html.c, report.html). Neither adds a sentence of its own to what the
 * report says.
 *
 * Markdown: a blank line between blocks, none between the items of one
 * list; a table row is "| a | b |", a missing cell " |"; text is written
 * as it is (report.md has always been so).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "study.h"

/* ---- building ---- */

void st_doc_init(StDoc *d) {
  memset(d, 0, sizeof *d);
  emitf(&d->text, "%c", 0);  /* offset 0: "" */
}

void st_doc_free(StDoc *d) {
  free(d->text.buf), free(d->blocks), free(d->spans), free(d->cells);
  memset(d, 0, sizeof *d);
}

/* Makes room for one more element of an array of n of size bytes each,
   capacity *cap; 0, or -1 (d->oom) when memory ran out. */
static int grow(StDoc *d, void **a, int n, int *cap, size_t size) {
  if (n < *cap)
    return 0;
  int c = *cap ? 2 * *cap : 64;
  void *p = d->oom ? NULL : realloc(*a, (size_t)c * size);
  if (!p)
    return d->oom = 1, -1;
  *a = p, *cap = c;
  return 0;
}

/* Appends printf-style text; its offset. */
static size_t vput(StDoc *d, const char *fmt, va_list ap) {
  size_t at = d->text.len;
  vemitf(&d->text, fmt, ap);
  d->oom |= d->text.oom;
  return at;
}

/* Appends a NUL-terminated string; its offset. */
static size_t put_str(StDoc *d, const char *fmt, va_list ap) {
  size_t at = vput(d, fmt, ap);
  emitf(&d->text, "%c", 0);
  d->oom |= d->text.oom;
  return d->oom ? 0 : at;
}

/* Adds a block of a kind; NULL out of memory. */
static StBlock *block(StDoc *d, int kind) {
  if (grow(d, (void **)&d->blocks, d->nblocks, &d->capblocks, sizeof *d->blocks))
    return NULL;
  StBlock *b = &d->blocks[d->nblocks++];
  *b = (StBlock){.kind = kind, .html_only = d->html_only, .span = d->nspans,
                 .cell = d->ncells};
  return b;
}

/* The block being written; NULL if none (out of memory). */
static StBlock *current(StDoc *d) {
  return d->nblocks ? &d->blocks[d->nblocks - 1] : NULL;
}

/* Adds inline text of a kind to the block being written: to its last
   span when that is of the same kind and ends where the text does. */
static void span(StDoc *d, int kind, size_t href, const char *fmt, va_list ap) {
  StBlock *b = current(d);
  if (d->oom || !b)
    return;
  if (b->kind == ST_DOC_TABLE || b->kind == ST_DOC_FIGURE)
    abort(); /* unreachable: the report's code starts a block before its text */
  StSpan *last = b->nspans ? &d->spans[d->nspans - 1] : NULL;
  size_t at = vput(d, fmt, ap);
  if (d->oom)
    return;
  if (last && last->kind == kind && kind != ST_SPAN_LINK && last->at + last->len == at)
    last->len += d->text.len - at;
  else if (!grow(d, (void **)&d->spans, d->nspans, &d->capspans, sizeof *d->spans))
    d->spans[d->nspans++] = (StSpan){kind, at, d->text.len - at, href}, b->nspans++;
}

void st_doc_heading(StDoc *d, int level, const char *fmt, ...) {
  va_list ap;
  StBlock *b = block(d, ST_DOC_HEADING);
  if (b)
    b->level = level;
  va_start(ap, fmt);
  span(d, ST_SPAN_TEXT, 0, fmt, ap);
  va_end(ap);
}

void st_doc_para(StDoc *d) { block(d, ST_DOC_PARA); }
void st_doc_item(StDoc *d) { block(d, ST_DOC_ITEM); }
void st_doc_numbered(StDoc *d) { block(d, ST_DOC_NUMBERED); }

void st_doc_anchor(StDoc *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t at = put_str(d, fmt, ap);
  va_end(ap);
  if (current(d))
    current(d)->id = at;
}

void st_doc_text(StDoc *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  span(d, ST_SPAN_TEXT, 0, fmt, ap);
  va_end(ap);
}

void st_doc_strong(StDoc *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  span(d, ST_SPAN_STRONG, 0, fmt, ap);
  va_end(ap);
}

void st_doc_code(StDoc *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  span(d, ST_SPAN_CODE, 0, fmt, ap);
  va_end(ap);
}

/* Stores a NUL-terminated copy of s; its offset. */
static size_t copy(StDoc *d, const char *s) {
  size_t at = d->text.len;
  emitf(&d->text, "%s%c", s, 0);
  d->oom |= d->text.oom;
  return d->oom ? 0 : at;
}

void st_doc_link(StDoc *d, const char *href, const char *fmt, ...) {
  va_list ap;
  size_t h = copy(d, href);
  va_start(ap, fmt);
  span(d, ST_SPAN_LINK, h, fmt, ap);
  va_end(ap);
}

void st_doc_table(StDoc *d, const char *align) {
  size_t a = copy(d, align);
  StBlock *b = block(d, ST_DOC_TABLE);
  if (b)
    b->align = a;
}

/* Adds a cell to the table being written, its text printf-style; NULL
   out of memory. */
static StCell *cell(StDoc *d, int kind, const char *fmt, va_list ap) {
  StBlock *b = current(d);
  if (b && b->kind != ST_DOC_TABLE)
    abort(); /* unreachable: cells are written into a table */
  size_t at = vput(d, fmt, ap);
  if (!b || grow(d, (void **)&d->cells, d->ncells, &d->capcells, sizeof *d->cells))
    return NULL;
  StCell *c = &d->cells[d->ncells++];
  *c = (StCell){kind, d->row, at, d->text.len - at, NAN, NAN, 0};
  b->ncells++, d->row = 0;
  return c;
}

void st_doc_row(StDoc *d) { d->row = 1; }

void st_doc_cell(StDoc *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  cell(d, ST_CELL_TEXT, fmt, ap);
  va_end(ap);
}

void st_doc_num(StDoc *d, double v, double sd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  StCell *c = cell(d, ST_CELL_NUM, fmt, ap);
  va_end(ap);
  if (c)
    c->v = v, c->sd = sd;
}

/* Adds a cell without text (vemitf wants a format). */
static StCell *empty_cell(StDoc *d, int kind, ...) {
  va_list ap;
  va_start(ap, kind);
  StCell *c = cell(d, kind, "", ap);
  va_end(ap);
  return c;
}

void st_doc_none(StDoc *d) { empty_cell(d, ST_CELL_NONE); }

void st_doc_cell_link(StDoc *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t h = put_str(d, fmt, ap);
  va_end(ap);
  if (d->ncells && !d->oom)
    d->cells[d->ncells - 1].href = h;
}

void st_doc_figure(StDoc *d, const char *png, const char *title) {
  size_t f = copy(d, png), t = copy(d, title);
  StBlock *b = block(d, ST_DOC_FIGURE);
  if (b)
    b->file = f, b->title = t;
}

void st_doc_html_only(StDoc *d, int on) { d->html_only = on; }

const char *st_doc_str(const StDoc *d, size_t at) { return d->text.buf + at; }

/* ---- Markdown ---- */

/* Writes n bytes of the text from at. */
static void put(const StDoc *d, FILE *f, size_t at, size_t n) {
  fwrite(d->text.buf + at, 1, n, f);
}

/* Writes a block's inline text. */
static void md_spans(const StDoc *d, const StBlock *b, FILE *f) {
  static const char *const mark[] = {"", "**", "`", "["};
  for (int i = b->span; i < b->span + b->nspans; i++) {
    const StSpan *s = &d->spans[i];
    fputs(mark[s->kind], f);
    put(d, f, s->at, s->len);
    if (s->kind == ST_SPAN_LINK)
      fprintf(f, "](%s)", st_doc_str(d, s->href));
    else
      fputs(mark[s->kind], f);
  }
}

/* Writes a table's rule: "|---|---:|" for the alignments "lr". */
static void md_rule(const StDoc *d, const StBlock *b, FILE *f) {
  fputc('|', f);
  for (const char *a = st_doc_str(d, b->align); *a; a++)
    fputs(*a == 'r' ? "---:|" : "---|", f);
  fputc('\n', f);
}

/* Writes a table: its header row, the rule, then the other rows. */
static void md_table(const StDoc *d, const StBlock *b, FILE *f) {
  int rows = 0;
  for (int i = b->cell; i < b->cell + b->ncells; i++) {
    const StCell *c = &d->cells[i];
    if (c->row && rows++)
      fputc('\n', f);
    if (c->row && rows == 2)
      md_rule(d, b, f);
    if (c->row)
      fputc('|', f);
    if (c->kind == ST_CELL_NONE)
      fputs(" |", f);
    else
      fputc(' ', f), put(d, f, c->at, c->len), fputs(" |", f);
  }
  fputc('\n', f);
  if (rows == 1)
    md_rule(d, b, f);
}

/* Whether b goes on the list that a begins (no blank line between). */
static int same_list(const StBlock *a, const StBlock *b) {
  return a && a->kind == b->kind && (b->kind == ST_DOC_ITEM || b->kind == ST_DOC_NUMBERED);
}

/* Writes one block; number: its place in a numbered list. */
static void md_block(const StDoc *d, const StBlock *b, int number, FILE *f) {
  if (b->kind == ST_DOC_HEADING)
    fprintf(f, "%.*s ", b->level, "######");
  else if (b->kind == ST_DOC_ITEM)
    fputs("- ", f);
  else if (b->kind == ST_DOC_NUMBERED)
    fprintf(f, "%d. ", number);
  if (b->kind == ST_DOC_TABLE)
    md_table(d, b, f);
  else if (b->kind == ST_DOC_FIGURE)
    fprintf(f, "![%s](%s)\n", st_doc_str(d, b->title), st_doc_str(d, b->file));
  else
    md_spans(d, b, f), fputc('\n', f);
}

void st_doc_markdown(const StDoc *d, FILE *f) {
  const StBlock *prev = NULL;
  int number = 0;
  for (int i = 0; i < d->nblocks; i++) {
    const StBlock *b = &d->blocks[i];
    if (b->html_only)
      continue;
    number = same_list(prev, b) ? number + 1 : 1;
    if (prev && !same_list(prev, b))
      fputc('\n', f);
    md_block(d, b, number, f);
    prev = b;
  }
}
