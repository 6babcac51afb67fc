/*
 * test_study_html.c — report.html, a study's report as a web page,
 * written from the same document as report.md:
 *
 *   - the Markdown writer's rules (a blank line between blocks, none in
 *     a list, numbered items counted, a missing cell " |" and an empty
 *     one "  |", blocks of the page alone left out) and the HTML writer's
 *     escaping of every string, on a document built here;
 *   - gnuplot's SVG goes inline from its <svg> element on, its ids and
 *     the references to them made the page's own, and a figure whose SVG
 *     is missing is an error naming the file;
 *   - in a real browser, Debian's chromium, headless: the page of a
 *     shipped small study (tests/study/page.json) loads without a single
 *     console message, its script runs and no error reaches its handler;
 *     it refers to nothing outside itself;
 *     its summary table holds summary.csv's numbers at full precision;
 *     every line of report.md (each table row, each sentence, each
 *     heading) is on the page; every figure is an inline SVG with drawn
 *     paths and a size above zero; a click on a column header sorts the
 *     rows up, a second down; and its screenshot (--screenshot, decoded
 *     here with zlib) is not blank. It skips, saying so, only where
 *     chromium is not installed (scripts/setup.sh installs it);
 *   - the page of a study with validation splits, early stopping and an
 *     experiment without a split (tests/study/page_val.json), as mlpc
 *     wrote it: every line of report.md on it, the summary's validation
 *     loss, and each run's table of epochs with runs.csv's figures, the
 *     validation columns exactly where the run holds out a split.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <zlib.h>
#include "study_proc.h"
#include "util.h"
#include "../study/study.h"

static char tmp[256];

/* ---- the writers, on a document built here ---- */

/* Renders d as Markdown into a new string. */
static char *markdown(const StDoc *d) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  st_doc_markdown(d, f);
  fclose(f);
  return s;
}

/* Renders d as HTML into a new string; NULL (err set) if that failed. */
static char *page(const StDoc *d, const char *dir, char *err) {
  char *s = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&s, &n);
  int rc = st_doc_html(d, dir, f, err, 512);
  fclose(f);
  if (rc)
    free(s), s = NULL;
  return s;
}

/* The hostile name of these tests: markup, quotes and an entity. */
static const char evil[] = "x<script>alert('1')</script>&amp;\"<b>";

/* A document of every kind of block and cell. */
static void build(StDoc *d) {
  st_doc_init(d);
  st_doc_heading(d, 1, "Study %s", evil);
  st_doc_item(d), st_doc_text(d, "file: "), st_doc_code(d, "%s", evil);
  st_doc_item(d), st_doc_strong(d, "%s", "bold"), st_doc_text(d, " and 5 %%");
  st_doc_heading(d, 2, "Table");
  st_doc_para(d), st_doc_text(d, "Before the table.");
  st_doc_table(d, "lr");
  st_doc_anchor(d, "t");
  st_doc_row(d), st_doc_none(d), st_doc_cell(d, "value");
  st_doc_row(d), st_doc_cell(d, "%s", evil), st_doc_num(d, 0.125, 0.5, "%.2f", 0.125);
  st_doc_row(d), st_doc_cell(d, "%s", ""), st_doc_num(d, NAN, NAN, "n/a");
  st_doc_numbered(d), st_doc_text(d, "one");
  st_doc_numbered(d), st_doc_text(d, "two; "), st_doc_link(d, "#t", "%s", evil);
  st_doc_html_only(d, 1);
  st_doc_para(d), st_doc_text(d, "only on the page");
  st_doc_html_only(d, 0);
  st_doc_para(d), st_doc_text(d, "The end.");
}

/* The Markdown: its blank lines, lists, cells; no block of the page. */
static void test_markdown_writer(void **state) {
  (void)state;
  StDoc d;
  build(&d);
  char *md = markdown(&d);
  assert_string_equal(md, fmt(
    "# Study %s\n\n- file: `%s`\n- **bold** and 5 %%\n\n## Table\n\nBefore the table.\n\n"
    "| | value |\n|---|---:|\n| %s | 0.12 |\n|  | n/a |\n\n1. one\n2. two; [%s](#t)\n\n"
    "The end.\n", evil, evil, evil, evil));
  free(md);
  st_doc_free(&d);
}

/* The HTML: no string of the document unescaped, the numbers' values at
   full precision, the lists and the table in their elements. */
static void test_html_escapes(void **state) {
  (void)state;
  StDoc d;
  char err[512];
  build(&d);
  char *html = page(&d, tmp, err);
  assert_non_null(html);
  assert_null(strstr(html, "<script>alert"));
  assert_null(strstr(html, "<b>"));
  assert_null(strstr(html, "&amp;\""));
  const char *esc = "x&lt;script&gt;alert(&#39;1&#39;)&lt;/script&gt;&amp;amp;&quot;&lt;b&gt;";
  assert_non_null(strstr(html, fmt("<title>Study %s</title>", esc)));
  assert_non_null(strstr(html, fmt("<h1>Study %s</h1>", esc)));
  assert_non_null(strstr(html, fmt("<li>file: <code>%s</code></li>", esc)));
  assert_non_null(strstr(html, fmt("<a href=\"#t\">%s</a>", esc)));
  assert_non_null(strstr(html, fmt("<td>%s</td><td class=\"n r\" data-v=\"0.125\" "
                                   "data-sd=\"0.5\">0.12</td>", esc)));
  assert_non_null(strstr(html, "<td></td><td class=\"n r\">n/a</td>"));
  assert_non_null(strstr(html, "<table id=\"t\">\n<thead><tr><th></th><th class=\"r\">value"));
  assert_non_null(strstr(html, "<ol>\n<li>one</li>\n<li>two; "));
  assert_non_null(strstr(html, "<p>only on the page</p>"));
  free(html);
  st_doc_free(&d);
}

/* An SVG as gnuplot writes it: a prolog, its own title, ids and
   references to them. */
static const char svg_text[] =
  "<?xml version=\"1.0\" encoding=\"utf-8\"  standalone=\"no\"?>\n<svg \n width=\"10\" "
  "height=\"10\" viewBox=\"0 0 10 10\">\n<title>Gnuplot</title>\n<desc>Produced by GNUPLOT 5.4 "
  "</desc>\n<g id=\"gnuplot_canvas\">\n<defs>\n\t<path id='gpPt0' d='M-1,0 h2'/>\n</defs>\n"
  "<use xlink:href='#gpPt0' transform='translate(5,5)'/>\n<text>id='x' &lt;</text>\n"
  "</g>\n</svg>\n";

/* The figure inline: its ids prefixed, the text left as it is. */
static void test_svg_inline(void **state) {
  (void)state;
  StDoc d;
  char err[512];
  assert_int_equal(util_write(fmt("%s/plot.svg", tmp), svg_text, strlen(svg_text)), 0);
  st_doc_init(&d);
  st_doc_figure(&d, "plot.png", evil);
  st_doc_figure(&d, "plot.png", "again");
  char *html = page(&d, tmp, err);
  assert_non_null(html);
  assert_null(strstr(html, "<?xml"));
  assert_null(strstr(html, "Gnuplot</title>"));
  assert_null(strstr(html, "Produced by"));
  assert_non_null(strstr(html, "<figure id=\"fig1\">\n<svg \n width=\"10\""));
  assert_non_null(strstr(html, "<g id=\"fig1-gnuplot_canvas\">"));
  assert_non_null(strstr(html, "<path id='fig1-gpPt0' d='M-1,0 h2'/>"));
  assert_non_null(strstr(html, "<use xlink:href='#fig1-gpPt0'"));
  assert_non_null(strstr(html, "<path id='fig2-gpPt0'"));
  assert_non_null(strstr(html, "<text>id='x' &lt;</text>"));
  assert_null(strstr(html, "<script>alert"));
  free(html);
  st_doc_figure(&d, "missing.png", "none");
  assert_null(page(&d, tmp, err));
  assert_string_equal(err, fmt("%s/missing.svg: no such file", tmp));
  st_doc_free(&d);
}

/* ---- the page in a browser ---- */

/* The chromium on PATH, into buf; 0 if there is none. */
static int find_chromium(char *buf, size_t len) {
  const char *path = getenv("PATH");
  for (const char *p = path; p && *p;) {
    size_t n = strcspn(p, ":");
    snprintf(buf, len, "%.*s/chromium", (int)n, p);
    if (!access(buf, X_OK))
      return 1;
    p += n + (p[n] == ':');
  }
  return 0;
}

/* Runs chromium on a page: its DOM once loaded into dom, its console
   and log into log, a screenshot into png (NULL: none); its status. */
static int browse(const char *chromium, const char *html, const char *dom, const char *log,
                  const char *png) {
  const char *argv[16] = {"nice", chromium, "--headless", "--disable-gpu", "--no-sandbox",
                          "--no-first-run", "--disable-extensions",
                          fmt("--user-data-dir=%s/profile", tmp), "--enable-logging=stderr",
                          "--v=0", "--window-size=1200,1600", "--dump-dom"};
  int n = 12;
  if (png)
    argv[n++] = fmt("--screenshot=%s", png);
  argv[n++] = fmt("file://%s", html);
  return util_run(argv, dom, log);
}

/* Unescapes the entities the DOM's serialiser writes, in place. */
static void unescape(char *s) {
  static const char *const ent[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"},
                                       {"&quot;", "\""}, {"&#39;", "'"}, {"&nbsp;", " "}};
  char *w = s;
  for (const char *r = s; *r;) {
    size_t k = 0;
    while (k < 6 && strncmp(r, ent[k][0], strlen(ent[k][0])))
      k++;
    if (k < 6)
      *w++ = ent[k][1][0], r += strlen(ent[k][0]);
    else
      *w++ = *r++;
  }
  *w = 0;
}

/* The text of n bytes of markup: the tags left out, entities read. */
static char *text_of(const char *html, size_t n) {
  char *t = malloc(n + 1), *w = t;
  int in_tag = 0;
  for (size_t i = 0; i < n; i++) {
    if (html[i] == '<')
      in_tag = 1;
    else if (html[i] == '>')
      in_tag = 0;
    else if (!in_tag)
      *w++ = html[i];
  }
  *w = 0;
  unescape(t);
  return t;
}

/* A table row of the page: its cells' texts and their data-v and data-sd
   attributes ("" if none). */
enum { MAX_CELLS = 16 };
typedef struct {
  int n;
  char text[MAX_CELLS][512], v[MAX_CELLS][32], sd[MAX_CELLS][32];
} Row;

/* The value of attribute name in the tag from tag to its '>', into out. */
static void attr(const char *tag, const char *name, char *out, size_t len) {
  const char *end = strchr(tag, '>'), *a = strstr(tag, fmt(" %s=\"", name));
  *out = 0;
  if (a && a < end) {
    a += strlen(name) + 3;
    snprintf(out, len, "%.*s", (int)(strchr(a, '"') - a), a);
  }
}

/* Reads the row at "<tr>" s; the end of the row. */
static const char *read_row(const char *s, Row *r) {
  const char *end = strstr(s, "</tr>");
  memset(r, 0, sizeof *r);
  for (const char *c = s; r->n < MAX_CELLS && (c = strstr(c + 1, "<t")) && c < end;) {
    if (c[2] != 'd' && c[2] != 'h')
      continue;
    const char *in = strchr(c, '>') + 1, *out = strstr(in, c[2] == 'd' ? "</td>" : "</th>");
    char *t = text_of(in, (size_t)(out - in));
    snprintf(r->text[r->n], sizeof r->text[0], "%s", t);
    free(t);
    attr(c, "data-v", r->v[r->n], sizeof r->v[0]);
    attr(c, "data-sd", r->sd[r->n], sizeof r->sd[0]);
    r->n++;
  }
  return end ? end + 5 : s + strlen(s);
}

/* Every row of the page's tables, in order; how many. */
static int page_rows(const char *dom, Row *rows, int max) {
  int n = 0;
  for (const char *p = dom; n < max && (p = strstr(p, "<tr>"));)
    p = read_row(p, &rows[n++]);
  return n;
}

/* Splits a line of CSV without quotes into fields, in place. */
static int split(char *line, char **f, int max, char sep) {
  int n = 0;
  for (char *p = line; n < max; p++) {
    f[n++] = p;
    if (!(p = strchr(p, sep)))
      break;
    *p = 0;
  }
  return n;
}

/* A CSV field read as text, in place: a quoted one unquoted (no comma
   in it, as split reads the line). */
static char *unquote(char *f) {
  if (*f != '"')
    return f;
  char *w = f;
  for (char *r = f + 1; *r && !(r[0] == '"' && r[1] != '"'); r++)
    *w++ = *r, r += *r == '"';
  *w = 0;
  return f;
}

/* The page's summary table holds summary.csv's rows: each experiment,
   and each figure's mean and standard deviation as the CSV writes them. */
static void check_summary(const char *dom, const char *csv_path) {
  static const char *const cols[][2] = {{"seeds", "seeds"}, {"diverged", "diverged"},
                                        {"test loss", "test_loss"},
                                        {"test accuracy (%)", "test_acc"},
                                        {"train loss", "train_loss"},
                                        {"validation loss", "val_loss"}};
  char *csv = read_all(csv_path), *lines[64], *head[32];
  const char *t = strstr(dom, "<table id=\"summary\">");
  assert_non_null(t);
  int nl = split(csv, lines, 64, '\n'), nh = split(lines[0], head, 32, ',');
  Row hr, r;
  t = read_row(strstr(t, "<tr>"), &hr);
  for (int l = 1; l < nl && *lines[l]; l++) {
    char *f[32];
    split(lines[l], f, 32, ',');
    t = read_row(strstr(t, "<tr>"), &r);
    assert_string_equal(r.text[0], unquote(f[0]));
    for (int c = 1; c < hr.n; c++)
      for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
        for (int h = 0; h < nh && !strcmp(hr.text[c], cols[k][0]); h++) {
          size_t n = strlen(cols[k][1]);
          if (strncmp(head[h], cols[k][1], n))
            continue;
          if (!head[h][n] || !strcmp(head[h] + n, "_mean"))
            assert_string_equal(r.v[c], f[h]);
          if (!strcmp(head[h] + n, "_std"))
            assert_string_equal(r.sd[c], f[h]);
        }
  }
  free(csv);
}

/* Trims a Markdown table cell, in place. */
static char *trim(char *s) {
  while (*s == ' ')
    s++;
  for (char *e = s + strlen(s); e > s && e[-1] == ' ';)
    *--e = 0;
  return s;
}

/* Whether the Markdown row line equals the page's row r. */
static int same_row(char *line, const Row *r) {
  char *c[MAX_CELLS + 2];
  int n = split(line + 1, c, MAX_CELLS + 2, '|') - 1;  /* after the last '|': "" */
  if (n != r->n)
    return 0;
  for (int i = 0; i < n; i++)
    if (strcmp(trim(c[i]), r->text[i]))
      return 0;
  return 1;
}

/* A line of Markdown as text: the markers of lists, strong and code out. */
static char *plain(const char *line) {
  char *t = malloc(strlen(line) + 1), *w = t;
  const char *r = line;
  size_t k;
  if (*r == '#')
    r += strspn(r, "#"), r += *r == ' ';
  else if (!strncmp(r, "- ", 2))
    r += 2;
  if ((k = strspn(r, "0123456789")) && r[k] == '.' && r[k + 1] == ' ')
    r += k + 2;
  for (; *r; r++)
    if (*r != '`' && !(r[0] == '*' && r[1] == '*'))
      *w++ = *r;
    else if (*r == '*')
      r++;
  *w = 0;
  return t;
}

/* Every line of report.md is on the page: each table row a row of the
   page's, in order; each other line in its text. Returns the number of
   figures report.md shows. */
static int check_lines(const char *dom, const char *md_path) {
  char *md = read_all(md_path), *line, *save = NULL;
  static Row rows[512];
  int nrows = page_rows(dom, rows, 512), at = 0, figures = 0;
  char *text = text_of(dom, strlen(dom));
  for (line = strtok_r(md, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (!strncmp(line, "|---", 4))
      continue;
    if (!strncmp(line, "![", 2)) {
      figures++;
      continue;
    }
    if (*line == '|') {
      char *copy = strdup(line);
      while (at < nrows && !same_row(strcpy(copy, line), &rows[at]))
        at++;
      free(copy);
      if (at++ >= nrows)
        fail_msg("this row of report.md is not on the page: %s", line);
      continue;
    }
    char *p = plain(line);
    if (!strstr(text, p))
      fail_msg("this line of report.md is not on the page: %s", p);
    free(p);
  }
  free(text), free(md);
  return figures;
}

/* Each of the page's figures is an inline SVG with paths drawn; how
   many there are. */
static int check_figures(const char *dom) {
  int n = 0;
  for (const char *f = dom; (f = strstr(f, "<figure id=\"fig")); f++, n++) {
    const char *end = strstr(f, "</figure>"), *svg = strstr(f, "<svg");
    assert_true(end && svg && svg < end);
    int paths = 0;
    for (const char *p = svg; (p = strstr(p + 1, "<path")) && p < end;)
      paths++;
    if (paths < 10)
      fail_msg("figure %d has %d paths", n + 1, paths);
  }
  return n;
}

/* The page's console: no message at all, the page's script ran and
   nothing reached its error handler. */
static void check_clean(const char *dom, const char *log_path) {
  char *log = read_all(log_path);
  const char *console = strstr(log, ":CONSOLE");
  if (console)
    fail_msg("the page wrote to the console: %.300s", console);
  const char *html = strstr(dom, "<html");
  assert_non_null(html);
  const char *end = strchr(html, '>');
  const char *ready = strstr(html, "data-script=\"ready\""), *error = strstr(html, "data-error");
  assert_true(ready && ready < end);
  if (error && error < end)
    fail_msg("the page had an error: %.300s", error);
  free(log);
}

/* The page refers to nothing outside itself: no source, link, import or
   frame, no address but the namespaces of SVG; and its policy forbids
   the browser to fetch anything. */
static void check_self_contained(const char *path) {
  static const char *const outside[] = {" src=", "<link", "@import", "<iframe", "<object",
                                        "<embed", "url(http", "url(//"};
  char *html = read_all(path);
  for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++)
    if (strstr(html, outside[i]))
      fail_msg("the page refers outside itself: %.200s", strstr(html, outside[i]));
  for (const char *p = html; (p = strstr(p, "://")); p++)
    if (p - html < 4 || strncmp(p - 4, "http://www.w3.org/", 18))
      fail_msg("the page names an address: %.200s", p > html + 20 ? p - 20 : p);
  assert_non_null(strstr(html, "<meta http-equiv=\"Content-Security-Policy\" "
                               "content=\"default-src 'none';"));
  free(html);
}

/* ---- the screenshot ---- */

/* A PNG's pixels as 8-bit RGB or RGBA rows. */
typedef struct {
  unsigned w, h, bpp;
  unsigned char *px;        /* (h, w * bpp)                               */
} Image;

/* The Paeth predictor of the PNG filters. */
static int paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Undoes the filter of each row of raw (each row its filter byte, then
   its bytes) into im->px. */
static void unfilter(Image *im, const unsigned char *raw) {
  size_t stride = (size_t)im->w * im->bpp;
  for (unsigned y = 0; y < im->h; y++) {
    const unsigned char *in = raw + y * (stride + 1) + 1;
    unsigned char *out = im->px + y * stride, *up = y ? out - stride : NULL;
    for (size_t x = 0; x < stride; x++) {
      int a = x >= im->bpp ? out[x - im->bpp] : 0, b = up ? up[x] : 0;
      int c = up && x >= im->bpp ? up[x - im->bpp] : 0;
      int pred[] = {0, a, b, (a + b) / 2, paeth(a, b, c)};
      out[x] = (unsigned char)(in[x] + pred[in[-1] % 5]);
    }
  }
}

/* Reads a PNG of 8-bit RGB or RGBA, not interlaced (as chromium writes
   them); 0, or -1 if it is not one. */
static int read_png(const char *path, Image *im) {
  size_t len, nidat = 0;
  unsigned char *b = (unsigned char *)util_slurp(path, &len), *idat = malloc(len + 1);
  int ok = b && len > 33 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
  for (size_t at = 8; ok && at + 12 <= len;) {
    uint32_t n = (uint32_t)b[at] << 24 | b[at + 1] << 16 | b[at + 2] << 8 | b[at + 3];
    if (at + 12 + (size_t)n > len)
      break;
    const unsigned char *t = b + at + 4, *d = t + 4;
    if (!memcmp(t, "IHDR", 4))
      im->w = d[0] << 24 | d[1] << 16 | d[2] << 8 | d[3], im->h = d[4] << 24 | d[5] << 16 |
      d[6] << 8 | d[7], im->bpp = d[9] == 6 ? 4 : 3, ok = d[8] == 8 && (d[9] == 2 || d[9] == 6)
      && !d[12];
    else if (!memcmp(t, "IDAT", 4))
      memcpy(idat + nidat, d, n), nidat += n;
    at += 12 + (size_t)n;
  }
  uLongf size = (uLongf)im->h * (im->w * im->bpp + 1);
  unsigned char *raw = ok ? malloc(size) : NULL;
  ok = ok && raw && uncompress(raw, &size, idat, nidat) == Z_OK &&
       size == (uLongf)im->h * (im->w * im->bpp + 1);
  im->px = ok ? malloc(size) : NULL;
  if (ok)
    unfilter(im, raw);
  free(b), free(idat), free(raw);
  return ok ? 0 : -1;
}

/* Whether the PNG at path shows something: at least 3 % of it not
   white, at least 0.5 % dark (text, lines); why not, into why. */
static int not_blank(const char *path, char *why, size_t len) {
  Image im = {0};
  long light = 0, dark = 0;
  if (read_png(path, &im))
    return snprintf(why, len, "%s is not a PNG of 8-bit RGB(A)", path), 0;
  for (size_t i = 0; i < (size_t)im.w * im.h; i++) {
    const unsigned char *p = im.px + i * im.bpp;
    int lo = p[0] < p[1] ? p[0] : p[1];
    lo = p[2] < lo ? p[2] : lo;
    light += lo < 245, dark += lo < 100;
  }
  double n = (double)im.w * im.h;
  snprintf(why, len, "%u x %u, %.2f %% not white, %.2f %% dark", im.w, im.h, 100 * light / n,
           100 * dark / n);
  free(im.px);
  return light >= 0.03 * n && dark >= 0.005 * n;
}

/* Writes a w x h PNG of 8-bit RGB, white but for a black square of
   side k at the top left. */
static void write_png(const char *path, unsigned w, unsigned h, unsigned k) {
  size_t stride = 3 * (size_t)w + 1;
  unsigned char *raw = malloc(stride * h);
  uLongf n = compressBound(stride * h);
  unsigned char *z = malloc(n);
  for (unsigned y = 0; y < h; y++)
    for (size_t x = 0; x < stride; x++)
      raw[y * stride + x] = !x ? 0 : (y < k && (x - 1) / 3 < k) ? 0 : 255;
  assert_int_equal(compress(z, &n, raw, stride * h), Z_OK);
  FILE *f = fopen(path, "wb");
  unsigned char ihdr[13] = {w >> 24, w >> 16 & 255, w >> 8 & 255, w & 255, h >> 24,
                            h >> 16 & 255, h >> 8 & 255, h & 255, 8, 2, 0, 0, 0};
  const struct { const char *type; const unsigned char *data; size_t len; } chunk[] = {
    {"IHDR", ihdr, 13}, {"IDAT", z, n}, {"IEND", NULL, 0}};
  fwrite("\x89PNG\r\n\x1a\n", 1, 8, f);
  for (int c = 0; c < 3; c++) {
    unsigned char len[4] = {chunk[c].len >> 24, chunk[c].len >> 16 & 255,
                            chunk[c].len >> 8 & 255, chunk[c].len & 255}, crc[4];
    uLong sum = crc32(crc32(0, (const Bytef *)chunk[c].type, 4), chunk[c].data,
                      (uInt)chunk[c].len);
    for (int i = 0; i < 4; i++)
      crc[i] = sum >> (24 - 8 * i) & 255;
    fwrite(len, 1, 4, f), fwrite(chunk[c].type, 1, 4, f);
    if (chunk[c].len) /* IEND has no data, and fwrite no null pointer */
      fwrite(chunk[c].data, 1, chunk[c].len, f);
    fwrite(crc, 1, 4, f);
  }
  fclose(f);
  free(raw), free(z);
}

/* The blank test: a white image is blank, and so is one with a speck;
   one with a tenth of it black is not. */
static void test_blank_screenshot(void **state) {
  (void)state;
  char why[256], *path = strdup(fmt("%s/blank.png", tmp));
  write_png(path, 1200, 800, 0);
  assert_false(not_blank(path, why, sizeof why));
  assert_string_equal(why, "1200 x 800, 0.00 % not white, 0.00 % dark");
  write_png(path, 1200, 800, 20);
  assert_false(not_blank(path, why, sizeof why));
  write_png(path, 1200, 800, 310);
  assert_true(not_blank(path, why, sizeof why));
  free(path);
}

/* ---- sorting ---- */

/* A script the sort test adds to a copy of the page: clicks the summary's
   test loss header twice and notes the column after each click, and the
   size each figure is drawn at. */
static const char sort_probe[] =
  "<script>(function(){var t=document.getElementById(\"summary\"),th=[].filter.call("
  "t.tHead.rows[0].cells,function(h){return h.textContent===\"test loss\"})[0],c=th.cellIndex;"
  "function col(){return [].map.call(t.tBodies[0].rows,function(r){return r.cells[c]"
  ".getAttribute(\"data-v\")}).join(\" \")}th.click();var up=col()+\" \"+th.getAttribute("
  "\"aria-sort\");th.click();var down=col()+\" \"+th.getAttribute(\"aria-sort\");"
  "var e=document.documentElement;e.setAttribute(\"data-up\",up);e.setAttribute(\"data-down\","
  "down);e.setAttribute(\"data-figures\",[].map.call(document.querySelectorAll(\"figure svg\"),"
  "function(s){var r=s.getBoundingClientRect();return Math.round(r.width)+\"x\"+"
  "Math.round(r.height)}).join(\" \"))})();</script>\n";

/* The values of attribute name of the page's <html> element, split at
   spaces into v (the last one, the sort's direction, into dir); how
   many values. */
static int html_attr(const char *dom, const char *name, double *v, int max, char *dir) {
  char buf[4096], *f[64];
  attr(strstr(dom, "<html"), name, buf, sizeof buf);
  int n = split(buf, f, 64, ' ');
  if (dir)
    snprintf(dir, 32, "%s", f[--n]);
  for (int i = 0; i < n && i < max; i++)
    v[i] = strtod(f[i], NULL);
  return n;
}

/* The copy's clicks sorted the column up, then down; its figures have
   a size. */
static void check_sorting(const char *chromium, const char *dir, int rows, int figures) {
  size_t len;
  char *html = util_slurp(fmt("%s/report.html", dir), &len), d[32];
  char *body = strstr(html, "</body>");
  assert_non_null(body);
  *body = 0;
  char *copy = malloc(len + sizeof sort_probe + 32);
  sprintf(copy, "%s%s</body>\n</html>\n", html, sort_probe);
  assert_int_equal(util_write(fmt("%s/sort.html", dir), copy, strlen(copy)), 0);
  free(copy);
  assert_int_equal(browse(chromium, fmt("%s/sort.html", dir), fmt("%s/sort.dom", tmp),
                          fmt("%s/sort.log", tmp), NULL), 0);
  char *dom = read_all(fmt("%s/sort.dom", tmp));
  double v[64];
  assert_int_equal(html_attr(dom, "data-up", v, 64, d), rows);
  assert_string_equal(d, "ascending");
  for (int i = 1; i < rows; i++)
    assert_true(v[i - 1] <= v[i]);
  assert_true(v[0] < v[rows - 1]);
  assert_int_equal(html_attr(dom, "data-down", v, 64, d), rows);
  assert_string_equal(d, "descending");
  for (int i = 1; i < rows; i++)
    assert_true(v[i - 1] >= v[i]);
  char sizes[1024], *f[32];
  attr(strstr(dom, "<html"), "data-figures", sizes, sizeof sizes);
  assert_int_equal(split(sizes, f, 32, ' '), figures);
  for (int i = 0; i < figures; i++) {
    int w = 0, h = 0;
    assert_int_equal(sscanf(f[i], "%dx%d", &w, &h), 2);
    assert_true(w > 500 && h > 200);
  }
  free(html), free(dom);
}

/* The shipped study's page in chromium. */
static void test_page_in_browser(void **state) {
  (void)state;
  char chromium[1024];
  if (!find_chromium(chromium, sizeof chromium)) {
    print_message("chromium is not installed (scripts/setup.sh installs Debian's chromium): "
                  "report.html is not tested in a browser\n");
    skip();
  }
  char dir[300];
  snprintf(dir, sizeof dir, "%s/page", tmp);
  const char *args[] = {"tests/study/page.json", "--run", "--backend", "tcc", "--jobs", "2",
                        "--db", fmt("%s/page.sqlite", tmp), "--out", dir, NULL};
  if (run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args))
    fail_msg("mlpc failed:\n%s", read_all(fmt("%s/stderr", tmp)));
  int status = browse(chromium, fmt("%s/report.html", dir), fmt("%s/page.dom", tmp),
                      fmt("%s/page.log", tmp), fmt("%s/page.png", tmp));
  if (status)
    fail_msg("chromium exited %d:\n%.2000s", status, read_all(fmt("%s/page.log", tmp)));
  char *dom = read_all(fmt("%s/page.dom", tmp));
  check_clean(dom, fmt("%s/page.log", tmp));
  check_self_contained(fmt("%s/report.html", dir));
  check_summary(dom, fmt("%s/summary.csv", dir));
  int figures = check_lines(dom, fmt("%s/report.md", dir));
  assert_int_equal(figures, 4);  /* health.png twice: in Figures and in its section */
  assert_int_equal(check_figures(dom), figures);
  char why[256];
  if (!not_blank(fmt("%s/page.png", tmp), why, sizeof why))
    fail_msg("the screenshot is blank: %s", why);
  print_message("screenshot: %s\n", why);
  free(dom);
  check_sorting(chromium, dir, 4, figures);
}

/* ---- a study with a validation split, its page as written ---- */

/* The rows of the table whose id is id, or the first after the element
   whose id it is, its header row first; how many. */
static int table_rows(const char *html, const char *id, Row *rows, int max) {
  const char *at = strstr(html, fmt("id=\"%s\"", id));
  if (!at)
    fail_msg("the page has no element %s", id);
  const char *end = strstr(at, "</table>");
  int n = 0;
  for (const char *p = at; n < max && (p = strstr(p, "<tr>")) && p < end;)
    p = read_row(p, &rows[n++]);
  return n;
}

/* Each run's table of epochs holds runs.csv's figures of its epochs at
   full precision: with the validation loss and accuracy when the run
   holds out a split, without them when it does not. Returns the runs
   checked with a split (*val) and without (*plain). */
static void check_epochs(const char *html, const char *csv_path, int *val, int *plain) {
  static const char *const heads[] = {"epoch", "train loss", "test loss", "test accuracy (%)",
                                      "seconds", "validation loss", "validation accuracy (%)"};
  /* Each column's field in runs.csv, counted from the run_id: epoch,
     train_loss, test_loss, test_acc, seconds, (diverged_step,) val_loss,
     val_acc; then kept (the study has early stopping). */
  static const int field[] = {2, 3, 4, 5, 6, 8, 9};
  static Row rows[64];
  char *csv = read_all(csv_path), *lines[512];
  int nl = split(csv, lines, 512, '\n');
  *val = *plain = 0;
  for (int l = 1; l < nl && *lines[l]; l++) {
    char *f[64];
    int n = split(lines[l], f, 64, ',');
    char **e = f + n - 11;  /* from the end: a name may hold commas */
    int with_val = *e[8] != 0, nrows = table_rows(html, fmt("run-%s", e[0]), rows, 64);
    int epoch = atoi(e[2]), ncols = with_val ? 7 : 5;
    assert_int_equal(rows[0].n, ncols);
    for (int c = 0; c < ncols; c++)
      assert_string_equal(rows[0].text[c], heads[c]);
    assert_true(epoch >= 1 && epoch < nrows);
    for (int c = 0; c < ncols; c++)
      assert_string_equal(rows[epoch].v[c], e[field[c]]);
    if (epoch == 1)
      *val += with_val, *plain += !with_val;
    assert_true(!strcmp(e[10], "0") || !strcmp(e[10], "1"));
  }
  free(csv);
}

/* A study whose runs hold out a validation split, some under early
   stopping (one stops before its last epoch), and an experiment without
   one: every line of report.md is on the page, the summary table holds
   summary.csv's validation loss, the table of runs its final one, and
   each run's table of epochs its figures. No browser: the page as
   mlpc wrote it. */
static void test_page_validation(void **state) {
  (void)state;
  char dir[300];
  static Row rows[64];
  snprintf(dir, sizeof dir, "%s/page_val", tmp);
  const char *args[] = {"tests/study/page_val.json", "--run", "--backend", "tcc", "--jobs", "2",
                        "--db", fmt("%s/page_val.sqlite", tmp), "--out", dir, NULL};
  if (run_mlpc(fmt("%s/stdout", tmp), fmt("%s/stderr", tmp), args))
    fail_msg("mlpc failed:\n%s", read_all(fmt("%s/stderr", tmp)));
  assert_true(file_has(fmt("%s/stderr", tmp), "epoch 4 of 5 kept"));
  char *html = read_all(fmt("%s/report.html", dir));
  check_summary(html, fmt("%s/summary.csv", dir));
  check_lines(html, fmt("%s/report.md", dir));
  table_rows(html, "runs", rows, 64);
  assert_string_equal(rows[0].text[5], "final validation loss");
  assert_non_null(strstr(html, ">5 (epoch 4 kept)<"));  /* the run that stopped early */
  assert_non_null(strstr(html, "Early stopping kept epoch 4: its weights"));
  assert_string_equal(rows[0].text[6], "final test loss");
  int val, plain;
  check_epochs(html, fmt("%s/runs.csv", dir), &val, &plain);
  assert_int_equal(val, 6);    /* the base's 2 runs under 3 names, early stopping's 2 */
  assert_int_equal(plain, 2);  /* validation=0 */
  free(html);
}

static int make_tmp(void **state) {
  (void)state;
  return util_mkdtemp("html", tmp, sizeof tmp);
}

static int remove_tmp(void **state) {
  (void)state;
  util_rmtree(tmp);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_markdown_writer),
    cmocka_unit_test(test_html_escapes),
    cmocka_unit_test(test_svg_inline),
    cmocka_unit_test(test_blank_screenshot),
    cmocka_unit_test(test_page_in_browser),
    cmocka_unit_test(test_page_validation),
  };
  return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
