/*
 * html.c — a study's report as one web page, report.html, written from
 * the same document as report.md (doc.c).
 *
 * The page is one self-contained file: its styles inline, each figure
 * the SVG that gnuplot drew beside the PNG (plot.c), inline, and no
 * reference to anything outside it (a Content-Security-Policy says so to
 * the browser). Every string of the document is escaped, and so is every
 * name a user chose (studies, experiments, values, paths).
 *
 * A table's numbers carry their value at full precision (data-v, and the
 * spread data-sd), so that a click on a column header sorts the rows by
 * what the cells show; a few lines of plain script do it. Without
 * script the page reads the same, unsorted. The script marks the page
 * once it has run (data-script="ready" on <html>), and a handler records
 * any error of the page (data-error), so that a test in a browser can
 * tell that the page ran cleanly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "study.h"

/* The page's styles. */
static const char style[] =
  "body{margin:0;color:#1d1d1f;background:#fff;font:15px/1.5 system-ui,-apple-system,"
  "\"Segoe UI\",\"DejaVu Sans\",sans-serif}\n"
  "main{max-width:1180px;margin:0 auto;padding:1em 2em 4em}\n"
  "h1{font-size:1.8em;margin:.3em 0 .5em}\n"
  "h2{font-size:1.35em;margin:2em 0 .6em;padding-bottom:.2em;border-bottom:1px solid #d8d8de}\n"
  "h3{font-size:1.12em;margin:1.6em 0 .5em}\n"
  "h4{font-size:1em;margin:1.2em 0 .3em}\n"
  "code{font:.88em/1.4 ui-monospace,\"DejaVu Sans Mono\",monospace;background:#f2f2f5;"
  "padding:.05em .3em;border-radius:3px;overflow-wrap:anywhere}\n"
  ".table{overflow-x:auto;margin:.8em 0 1.2em}\n"
  "table{border-collapse:collapse;font-size:.92em}\n"
  "th,td{border:1px solid #d8d8de;padding:.25em .6em;text-align:left;vertical-align:top}\n"
  "th{background:#eef0f5;font-weight:600}\n"
  "tbody tr:nth-child(even){background:#f8f8fb}\n"
  ".n{white-space:nowrap;font-variant-numeric:tabular-nums}\n"
  ".r{text-align:right}\n"
  "th[tabindex]{cursor:pointer;user-select:none}\n"
  "th[aria-sort=ascending]::after{content:\" \\25B2\"}\n"
  "th[aria-sort=descending]::after{content:\" \\25BC\"}\n"
  "figure{margin:1em 0 1.6em}\n"
  "figure svg{display:block;max-width:100%;height:auto}\n"
  "figcaption{color:#555;font-size:.9em;margin-top:.3em}\n"
  "li{margin:.25em 0}\n"
  ".toc{display:flex;flex-wrap:wrap;gap:.2em 1.4em;list-style:none;padding:.5em 0;margin:1em 0;"
  "border-top:1px solid #d8d8de;border-bottom:1px solid #d8d8de}\n"
  "a{color:#0b57b0}\n";

/* Records any error of the page, before anything else can fail. */
static const char error_script[] =
  "window.addEventListener(\"error\",function(e){document.documentElement.setAttribute("
  "\"data-error\",e.message||\"a part of the page failed to load\")},true);";

/* Sorts a table's rows by a click (or Enter) on a column header: by the
   cells' values where the column has them, else by their text; cells
   without one last; a second click reverses. */
static const char sort_script[] =
  "(function(){\"use strict\";\n"
  "function key(td,num){if(!td)return null;if(!num)return td.textContent;"
  "var v=td.getAttribute(\"data-v\");return v===null?null:Number(v)}\n"
  "function sort(table,col,th){var body=table.tBodies[0],rows=[].slice.call(body.rows),"
  "dir=th.getAttribute(\"aria-sort\")===\"ascending\"?-1:1,num=rows.some(function(r){"
  "return r.cells[col]&&r.cells[col].hasAttribute(\"data-v\")});\n"
  "rows.sort(function(a,b){var x=key(a.cells[col],num),y=key(b.cells[col],num);"
  "if(x===null||y===null)return (x===null)-(y===null);"
  "return dir*(num?x-y:x.localeCompare(y,undefined,{numeric:true}))});\n"
  "rows.forEach(function(r){body.appendChild(r)});"
  "[].forEach.call(th.parentNode.cells,function(h){h.removeAttribute(\"aria-sort\")});"
  "th.setAttribute(\"aria-sort\",dir>0?\"ascending\":\"descending\")}\n"
  "document.querySelectorAll(\"table\").forEach(function(table){if(!table.tHead)return;"
  "[].forEach.call(table.tHead.rows[0].cells,function(th,col){th.tabIndex=0;"
  "th.title=\"sort by this column\";"
  "th.addEventListener(\"click\",function(){sort(table,col,th)});"
  "th.addEventListener(\"keydown\",function(e){if(e.key===\"Enter\")sort(table,col,th)})})});\n"
  "document.documentElement.setAttribute(\"data-script\",\"ready\")})();";

/* ---- text ---- */

/* Writes n bytes of s, escaped for HTML text and attribute values. */
static void esc(FILE *f, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    switch (s[i]) {
    case '&': fputs("&amp;", f); break;
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '"': fputs("&quot;", f); break;
    case '\'': fputs("&#39;", f); break;
    default: fputc(s[i], f);
    }
}

/* Writes a NUL-terminated string of the document, escaped. */
static void esc_str(FILE *f, const StDoc *d, size_t at) {
  esc(f, st_doc_str(d, at), strlen(st_doc_str(d, at)));
}

/* Writes a block's inline text. */
static void spans(FILE *f, const StDoc *d, const StBlock *b) {
  static const char *const tag[] = {"", "strong", "code", "a"};
  for (int i = b->span; i < b->span + b->nspans; i++) {
    const StSpan *s = &d->spans[i];
    if (s->kind == ST_SPAN_LINK)
      fputs("<a href=\"", f), esc_str(f, d, s->href), fputs("\">", f);
    else if (s->kind != ST_SPAN_TEXT)
      fprintf(f, "<%s>", tag[s->kind]);
    esc(f, d->text.buf + s->at, s->len);
    if (s->kind != ST_SPAN_TEXT)
      fprintf(f, "</%s>", tag[s->kind]);
  }
}

/* Writes a block's id attribute: its anchor, or for a section's heading
   "sN" (N its place), which the contents link to. */
static void id_attr(FILE *f, const StDoc *d, const StBlock *b) {
  if (b->id)
    fputs(" id=\"", f), esc_str(f, d, b->id), fputc('"', f);
  else if (b->kind == ST_DOC_HEADING && b->level == 2)
    fprintf(f, " id=\"s%d\"", (int)(b - d->blocks));
}

/* Writes the contents: a link to each section's heading. */
static void contents(FILE *f, const StDoc *d) {
  fputs("<nav><ul class=\"toc\">", f);
  for (int i = 0; i < d->nblocks; i++)
    if (d->blocks[i].kind == ST_DOC_HEADING && d->blocks[i].level == 2) {
      fputs("<li><a href=\"#", f);
      if (d->blocks[i].id)
        esc_str(f, d, d->blocks[i].id);
      else
        fprintf(f, "s%d", i);
      fputs("\">", f), spans(f, d, &d->blocks[i]), fputs("</a></li>", f);
    }
  fputs("</ul></nav>\n", f);
}

/* ---- tables ---- */

/* Writes a number as a data attribute, unless it is not one. */
static void data_attr(FILE *f, const char *name, double v) {
  if (isfinite(v))
    fprintf(f, " data-%s=\"%.17g\"", name, v);
}

/* Writes one cell of column col (header: th). */
static void table_cell(FILE *f, const StDoc *d, const StBlock *b, const StCell *c, int col,
                       int header) {
  const char *align = st_doc_str(d, b->align), *tag = header ? "th" : "td";
  int right = col < (int)strlen(align) && align[col] == 'r', num = c->kind == ST_CELL_NUM;
  fprintf(f, "<%s", tag);
  if (right || num)
    fprintf(f, " class=\"%s%s%s\"", num ? "n" : "", num && right ? " " : "", right ? "r" : "");
  if (num)
    data_attr(f, "v", c->v), data_attr(f, "sd", c->sd);
  fputc('>', f);
  if (c->href)
    fputs("<a href=\"", f), esc_str(f, d, c->href), fputs("\">", f);
  esc(f, d->text.buf + c->at, c->len);
  fprintf(f, "%s</%s>", c->href ? "</a>" : "", tag);
}

/* Writes a table: the first row as its head, the others as its body. */
static void table(FILE *f, const StDoc *d, const StBlock *b) {
  int rows = 0, col = 0;
  fputs("<div class=\"table\"><table", f);
  id_attr(f, d, b);
  fputs(">\n<thead>", f);
  for (int i = b->cell; i < b->cell + b->ncells; i++) {
    const StCell *c = &d->cells[i];
    if (c->row) {
      fputs(rows == 1 ? "</tr></thead>\n<tbody>\n<tr>" : rows ? "</tr>\n<tr>" : "<tr>", f);
      rows++, col = 0;
    }
    table_cell(f, d, b, c, col++, rows == 1);
  }
  fputs(rows > 1 ? "</tr>\n</tbody></table></div>\n" : "</tr></thead></table></div>\n", f);
}

/* ---- figures ---- */

/* Whether s begins with the string p. */
static int starts(const char *s, const char *p) { return !strncmp(s, p, strlen(p)); }

/* Where an attribute that names an id begins at s (after the space
   before it), the length of what precedes the id; 0 if none. */
static size_t id_ref(const char *s) {
  static const char *const refs[] = {"id='", "id=\"", "xlink:href='#", "xlink:href=\"#",
                                     "href='#", "href=\"#", "url(#"};
  for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++)
    if (starts(s, refs[i]))
      return strlen(refs[i]);
  return 0;
}

/* Writes gnuplot's SVG inline: from its <svg> element on, its ids and
   the references to them prefixed with "figK-" (ids are one namespace
   for the whole page), without gnuplot's own title and description. */
static void inline_svg(FILE *f, const char *svg, int k) {
  const char *p = strstr(svg, "<svg");
  int in_tag = 0;
  for (; p && *p; p++) {
    size_t n;
    if (!in_tag && (starts(p, "<title>Gnuplot</title>") || starts(p, "<desc>Produced by"))) {
      const char *end = strstr(p, starts(p, "<title>") ? "</title>" : "</desc>");
      p = end ? strchr(end, '>') : p + strlen(p) - 1;
      continue;
    }
    in_tag = *p == '<' ? 1 : *p == '>' ? 0 : in_tag;
    if (in_tag && p > svg && strchr(" \t\n('\"", p[-1]) && (n = id_ref(p))) {
      fprintf(f, "%.*sfig%d-", (int)n, p, k);
      p += n - 1;
      continue;
    }
    fputc(*p, f);
  }
}

/* Reads a whole file into a string; NULL with err set. */
static char *read_text(const char *path, char *err, size_t errlen) {
  size_t len;
  unsigned char *raw = rt_read_file(path, &len, err, errlen);
  char *s = raw ? realloc(raw, len + 1) : NULL;
  if (!s) {
    if (raw)
      free(raw), snprintf(err, errlen, "%s: out of memory", path);
    return NULL;
  }
  s[len] = 0;
  return s;
}

/* Writes figure k: the SVG beside its PNG in dir, and its caption. */
static int figure(FILE *f, const StDoc *d, const StBlock *b, const char *dir, int k,
                  char *err, size_t errlen) {
  char path[MAX_PATH_LEN + 96];
  const char *png = st_doc_str(d, b->file);
  snprintf(path, sizeof path, "%s/%.*s.svg", dir, (int)strlen(png) - 4, png);
  char *svg = read_text(path, err, errlen);
  if (!svg)
    return -1;
  fprintf(f, "<figure id=\"fig%d\">\n", k);
  inline_svg(f, svg, k);
  fputs("<figcaption>", f);
  esc_str(f, d, b->title);
  fputs("</figcaption></figure>\n", f);
  free(svg);
  return 0;
}

/* ---- the page ---- */

/* Writes one block (lists: an item, opened and closed by the caller). */
static int block(FILE *f, const StDoc *d, const StBlock *b, const char *dir, int *figs,
                 char *err, size_t errlen) {
  switch (b->kind) {
  case ST_DOC_HEADING:
    fprintf(f, "<h%d", b->level), id_attr(f, d, b), fputc('>', f);
    spans(f, d, b);
    fprintf(f, "</h%d>\n", b->level);
    return 0;
  case ST_DOC_TABLE:
    table(f, d, b);
    return 0;
  case ST_DOC_FIGURE:
    return figure(f, d, b, dir, ++*figs, err, errlen);
  default:
    fputs(b->kind == ST_DOC_PARA ? "<p" : "<li", f), id_attr(f, d, b), fputc('>', f);
    spans(f, d, b);
    fputs(b->kind == ST_DOC_PARA ? "</p>\n" : "</li>\n", f);
    return 0;
  }
}

/* The list a block belongs in: "ul", "ol", or NULL. */
static const char *list_of(const StBlock *b) {
  return !b ? NULL : b->kind == ST_DOC_ITEM ? "ul" : b->kind == ST_DOC_NUMBERED ? "ol" : NULL;
}

/* Writes the head: the title (the first heading's text), the styles. */
static void head(FILE *f, const StDoc *d) {
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n<title>", f);
  for (int i = 0; i < d->nblocks; i++)
    if (d->blocks[i].kind == ST_DOC_HEADING) {
      for (int s = d->blocks[i].span; s < d->blocks[i].span + d->blocks[i].nspans; s++)
        esc(f, d->text.buf + d->spans[s].at, d->spans[s].len);
      break;
    }
  fprintf(f, "</title>\n<style>\n%s</style>\n<script>%s</script>\n</head>\n<body>\n<main>\n",
          style, error_script);
}

int st_doc_html(const StDoc *d, const char *dir, FILE *f, char *err, size_t errlen) {
  int figs = 0;
  head(f, d);
  for (int i = 0, toc = 0; i < d->nblocks; i++) {
    const StBlock *b = &d->blocks[i], *prev = i ? &d->blocks[i - 1] : NULL;
    if (b->kind == ST_DOC_HEADING && b->level == 2 && !toc++)
      contents(f, d);
    if (list_of(b) && list_of(prev) != list_of(b))
      fprintf(f, "<%s>\n", list_of(b));
    if (block(f, d, b, dir, &figs, err, errlen))
      return -1;
    const StBlock *next = i + 1 < d->nblocks ? &d->blocks[i + 1] : NULL;
    if (list_of(b) && list_of(next) != list_of(b))
      fprintf(f, "</%s>\n", list_of(b));
  }
  fprintf(f, "</main>\n<script>\n%s\n</script>\n</body>\n</html>\n", sort_script);
  return 0;
}
