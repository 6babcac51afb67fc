/*
 * plot.c — a study's figures, drawn by gnuplot (Debian's gnuplot-nox).
 *
 * Everything gnuplot reads is written under the output directory, so
 * that the figures can be drawn again by hand (`gnuplot plots/plots.gp`
 * in that directory):
 *
 *   plots/NAME.dat   each figure's numbers, one block per curve
 *   plots/NAME.gp    each figure's commands, without a terminal
 *   plots/plots.gp   the script that draws every figure twice: as a PNG
 *                    and as an SVG
 *   NAME.png         the figures, next to report.md
 *   NAME.svg         the same, for report.html to hold inline
 *
 * gnuplot runs as a child process without a shell (execvp with an
 * argument list) in the output directory. If it is not installed or
 * fails, the study still succeeds: the report says there are no plots
 * and why, and the terminal gets a warning.
 *
 * The figures every study has:
 *   test_loss.png    test loss per epoch of each experiment: the mean
 *                    over the seeds that did not diverge, with a band
 *                    from the lowest to the highest seed; one panel per
 *                    varied key in one_factor mode
 *   final_loss.png   final test loss of each distinct model: each seed,
 *                    and the mean with ± 1 standard deviation error bars
 * health.c adds health.png through the same calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "study.h"

/* ---- the script and its data ---- */

/* Opens DIR/plots/NAME for writing; NULL with err set. */
static FILE *open_plots_file(const char *dir, const char *name, char *err, size_t errlen) {
  char path[MAX_PATH_LEN + 96];
  snprintf(path, sizeof path, "%s/plots/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
  return f;
}

int st_plots_open(StPlots *pl, const char *dir, char *err, size_t errlen) {
  char path[MAX_PATH_LEN + 32];
  memset(pl, 0, sizeof *pl);
  snprintf(pl->dir, sizeof pl->dir, "%s", dir);
  snprintf(path, sizeof path, "%s/plots", dir);
  if (mkdir(path, 0777) && errno != EEXIST) {
    snprintf(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
    return -1;
  }
  if (!(pl->script = open_plots_file(dir, "plots.gp", err, errlen)))
    return -1;
  fprintf(pl->script, "# plots.gp: a study's figures, written by mlpc from its database.\n"
                      "# Run it in the directory above this one: gnuplot plots/plots.gp\n");
  return 0;
}

FILE *st_plots_data(StPlots *pl, const char *name, char *err, size_t errlen) {
  return open_plots_file(pl->dir, name, err, errlen);
}

void st_plots_close(StPlots *pl) {
  if (pl->gp)
    fclose(pl->gp);
  if (pl->script)
    fclose(pl->script);
  pl->gp = pl->script = NULL;
}

void st_plots_string(FILE *gp, const char *s) {
  fputc('"', gp);
  for (; *s; s++)
    *s == '"' || *s == '\\' ? fprintf(gp, "\\%c", *s) : fputc(*s, gp);
  fputc('"', gp);
}

int st_plots_figure(StPlots *pl, const char *name, int width, int height,
                    const char *title, char *err, size_t errlen) {
  static const char *const terms[][2] = {{"pngcairo", "png"}, {"svg", "svg"}};
  char file[64];
  if (pl->n == ST_MAX_PLOTS)
    abort(); /* unreachable: the figures are ours, fewer than ST_MAX_PLOTS */
  snprintf(pl->png[pl->n], sizeof pl->png[0], "%s.png", name);
  snprintf(pl->title[pl->n++], sizeof pl->title[0], "%s", title);
  snprintf(file, sizeof file, "%s.gp", name);
  if (pl->gp)
    fclose(pl->gp);
  if (!(pl->gp = open_plots_file(pl->dir, file, err, errlen)))
    return -1;
  fprintf(pl->gp, "# %s: %s\n# plots/plots.gp sets the terminal and output first\nreset\n"
          "set grid\n", file, title);
  fprintf(pl->script, "\n# ---- %s: %s ----\n", name, title);
  for (int t = 0; t < 2; t++)
    fprintf(pl->script, "set terminal %s noenhanced size %d,%d font \"sans,11\"\n"
            "set output \"%s.%s\"\nload \"plots/%s\"\n", terms[t][0], width, height, name,
            terms[t][1], file);
  return 0;
}

/* ---- test loss per epoch ---- */

/* The mean, lowest and highest test loss at epoch e over the finished
   runs that reached it; how many did. */
static int epoch_stats(const StExpFigs *x, int e, double *mean, double *lo, double *hi) {
  int n = 0;
  double s = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int r = 0; r < x->runs; r++)
    if (!x->run[r].diverged_epoch && e < x->run[r].nepochs) {
      double v = x->run[r].test_loss[e];
      s += v, n++, *lo = fmin(*lo, v), *hi = fmax(*hi, v);
    }
  *mean = n ? s / n : NAN;
  return n;
}

/* The most epochs of any finished run of x. */
static int max_epochs(const StExpFigs *x) {
  int n = 0;
  for (int r = 0; r < x->runs; r++)
    if (!x->run[r].diverged_epoch && x->run[r].nepochs > n)
      n = x->run[r].nepochs;
  return n;
}

/* Writes one block per experiment with finished runs ("epoch mean lo hi
   n"); block[i] is experiment i's block, -1 if none; the range of y. */
static void curve_data(FILE *f, const StFigs *fg, int *block, double *ylo, double *yhi) {
  const Study *s = fg->p->s;
  int nb = 0;
  *ylo = INFINITY, *yhi = -INFINITY;
  for (int i = 0; i < s->nexp; i++) {
    const StExpFigs *x = &fg->exp[i];
    int ne = max_epochs(x);
    block[i] = ne ? nb++ : -1;
    if (!ne)
      continue;
    fprintf(f, "%s# %s\n# epoch mean lowest highest runs\n", nb > 1 ? "\n\n" : "", s->exp[i].name);
    for (int e = 0; e < ne; e++) {
      double m, lo, hi;
      int n = epoch_stats(x, e, &m, &lo, &hi);
      fprintf(f, "%d %.17g %.17g %.17g %d\n", e + 1, m, lo, hi, n);
      *ylo = fmin(*ylo, lo), *yhi = fmax(*yhi, hi);
    }
  }
}

/* Tics on axis (x or y) at 1, 2 and 5 times each power of 10 within
   [lo, hi]. */
static void log_tics(FILE *gp, char axis, double lo, double hi) {
  static const int step[] = {1, 2, 5};
  const char *sep = "";
  fprintf(gp, "set %ctics (", axis);
  for (double d = pow(10, floor(log10(lo))); d <= hi; d *= 10)
    for (int k = 0; k < 3; k++)
      if (d * step[k] >= lo && d * step[k] <= hi)
        fprintf(gp, "%s%g", sep, d * step[k]), sep = ", ";
  fprintf(gp, ")\n");
}

void st_plots_axis(FILE *gp, char axis, double lo, double hi) {
  if (!(lo <= hi) || isinf(lo) || isinf(hi))
    return;
  if (lo > 0 && hi / lo > 20) {
    fprintf(gp, "set logscale %c\nset %crange [%.17g:%.17g]\n", axis, axis, lo / 1.25,
            hi * 1.25);
    log_tics(gp, axis, lo / 1.25, hi * 1.25);
  } else if (lo >= 0)
    fprintf(gp, "set %crange [0:%.17g]\n", axis, hi > 0 ? hi * 1.1 : 1);
}

/* Whole epochs on x, at most about 10 tics. */
static void epoch_axis(FILE *gp, const StFigs *fg) {
  int ne = 1;
  for (int i = 0; i < fg->p->s->nexp; i++)
    ne = max_epochs(&fg->exp[i]) > ne ? max_epochs(&fg->exp[i]) : ne;
  fprintf(gp, "set xrange [1:%d]\nset xtics %d\nset format x \"%%.0f\"\n", ne > 1 ? ne : 2,
          (ne + 9) / 10);
}

/* The legend of experiment i in a panel: the value in one_factor mode
   (marked when it is the base model), else the whole name. */
static void curve_title(FILE *gp, const StFigs *fg, int i) {
  const StExperiment *e = &fg->p->s->exp[i];
  char t[512];
  int base = fg->p->base >= 0 && fg->exp[i].same == fg->exp[fg->p->base].same;
  snprintf(t, sizeof t, "%s%s", e->factor[0] ? e->value : e->name, base ? " (base)" : "");
  st_plots_string(gp, t);
}

/* Plots experiments [from, to) that have a block: band, then line. */
static void curve_plot(FILE *gp, const StFigs *fg, const int *block, int from, int to,
                       int bands) {
  int c = 0;
  fprintf(gp, "plot");
  for (int i = from; i < to; i++) {
    if (block[i] < 0)
      continue;
    c++;
    if (bands)
      fprintf(gp, "%s \"plots/test_loss.dat\" index %d using 1:3:4 with filledcurves "
              "fs transparent solid 0.18 noborder lc %d notitle", c > 1 ? ", \\\n    " : "",
              block[i], c);
    fprintf(gp, "%s \"plots/test_loss.dat\" index %d using 1:2 with linespoints lw 2 pt 7 "
            "ps 0.6 lc %d dt %d title ", c > 1 || bands ? ", \\\n    " : "", block[i], c,
            1 + (c - 1) / 8 % 5);  /* 8 colours, then dashes */
    curve_title(gp, fg, i);
  }
  if (!c)
    fprintf(gp, " NaN notitle");
  fputc('\n', gp);
}

/* The range [*from, *to) of experiments with the factor of experiment
   *from (one_factor mode). */
static void factor_range(const Study *s, int from, int *to) {
  *to = from + 1;
  while (*to < s->nexp && !strcmp(s->exp[*to].factor, s->exp[from].factor))
    (*to)++;
}

/* The length of the longest experiment name. */
static int longest_name(const Study *s) {
  int n = 0;
  for (int i = 0; i < s->nexp; i++)
    n = (int)strlen(s->exp[i].name) > n ? (int)strlen(s->exp[i].name) : n;
  return n;
}

/* "3 seeds"; in an adaptive study, the fewest to the most runs of an
   experiment: "7 to 10 seeds". */
static const char *seeds_text(const StFigs *fg) {
  static char buf[64];
  const Study *s = fg->p->s;
  int lo = s->nseeds, hi = 0;
  for (int i = 0; i < s->nexp; i++) {
    lo = fg->exp[i].runs < lo ? fg->exp[i].runs : lo;
    hi = fg->exp[i].runs > hi ? fg->exp[i].runs : hi;
  }
  if (s->alpha <= 0 || lo == hi)
    snprintf(buf, sizeof buf, "%d seeds", s->alpha > 0 ? hi : s->nseeds);
  else
    snprintf(buf, sizeof buf, "%d to %d seeds", lo, hi);
  return buf;
}

/* test_loss.png: a panel per varied key (one_factor), or one panel; -1
   when its script cannot be written. */
static int curves_script(StPlots *pl, const StFigs *fg, const int *block, double lo,
                         double hi, char *err, size_t errlen) {
  const Study *s = fg->p->s;
  int panels = s->mode == ST_ONE_FACTOR ? s->nkeys : 1;
  int cols = panels > 1 ? 2 : 1, rows = (panels + cols - 1) / cols, many = s->nexp > 8;
  char title[256];
  snprintf(title, sizeof title, "%s: test loss per epoch (mean over %s%s)", s->name,
           seeds_text(fg), panels > 1 || !many ? "; band: lowest to highest seed" : "");
  int w = panels > 1 || !many ? cols * 640 : 700 + 7 * longest_name(s);
  int h = panels > 1 || !many ? rows * 420 + 40  /* else the legend on the right, a line each */
                              : s->nexp * 17 + 160 > 520 ? s->nexp * 17 + 160 : 520;
  if (st_plots_figure(pl, "test_loss", w, h, title, err, errlen))
    return -1;
  FILE *gp = pl->gp;
  fprintf(gp, "set multiplot layout %d,%d title ", rows, cols);
  st_plots_string(gp, title);
  fprintf(gp, "\nset xlabel \"epoch\"\nset ylabel \"test loss\"\n%s\n", panels > 1 || !many
          ? "set key top right" : "set key outside right top vertical font \",9\"");
  epoch_axis(gp, fg);
  st_plots_axis(gp, 'y', lo, hi);
  for (int from = 0, to; from < s->nexp; from = to) {
    if (s->mode == ST_ONE_FACTOR)
      factor_range(s, from, &to);
    else
      to = s->nexp;
    fprintf(gp, "set title ");
    st_plots_string(gp, s->mode == ST_ONE_FACTOR ? s->exp[from].factor : s->name);
    fprintf(gp, "\n");
    curve_plot(gp, fg, block, from, to, to - from <= 8);
  }
  fprintf(gp, "unset multiplot\nset output\n");
  return 0;
}

/* ---- final test loss ---- */

/* Writes the distinct models' final test losses, the first at the top:
   block 0 "y mean std" per model with finished runs, block 1 "y loss"
   per finished run (spread a little); the models' count and the range of
   the losses. */
static int final_data(FILE *f, const StFigs *fg, double *lo, double *hi) {
  const Study *s = fg->p->s;
  int m = 0;
  *lo = INFINITY, *hi = -INFINITY;
  for (int i = 0; i < s->nexp; i++)
    m += fg->exp[i].same == i && fg->exp[i].n;
  fprintf(f, "# position mean std\n");
  for (int i = 0, k = m - 1; i < s->nexp; i++)
    if (fg->exp[i].same == i && fg->exp[i].n) {
      const StExpFigs *x = &fg->exp[i];
      double sd = isnan(x->std[ST_TEST_LOSS]) ? 0 : x->std[ST_TEST_LOSS];
      fprintf(f, "%d %.17g %.17g\n", k--, x->mean[ST_TEST_LOSS], sd);
      *lo = fmin(*lo, x->mean[ST_TEST_LOSS] - sd), *hi = fmax(*hi, x->mean[ST_TEST_LOSS] + sd);
    }
  fprintf(f, "\n\n# position final_test_loss (one per finished run)\n");
  for (int i = 0, k = m - 1; i < s->nexp; i++)
    if (fg->exp[i].same == i && fg->exp[i].n) {
      for (int r = 0, j = 0; r < fg->exp[i].runs; r++)
        if (!fg->exp[i].run[r].diverged_epoch) {
          double v = fg->exp[i].run[r].fig[ST_TEST_LOSS];
          fprintf(f, "%.3f %.17g\n", k + 0.12 - 0.08 * (j++ % 4), v);
          *lo = fmin(*lo, v), *hi = fmax(*hi, v);
        }
      k--;
    }
  return m;
}

/* The y-axis labels: each distinct model with finished runs, the first
   at the top; the base marked. */
static void final_tics(FILE *gp, const StFigs *fg, int m) {
  const Study *s = fg->p->s;
  char t[512];
  fprintf(gp, "set ytics scale 0 (");
  for (int i = 0, k = m - 1; i < s->nexp; i++)
    if (fg->exp[i].same == i && fg->exp[i].n) {
      int base = fg->p->base >= 0 && i == fg->exp[fg->p->base].same;
      snprintf(t, sizeof t, "%s%s", base ? "base: " : "", s->exp[i].name);
      fprintf(gp, "%s", k < m - 1 ? ", " : "");
      st_plots_string(gp, t);
      fprintf(gp, " %d", k--);
    }
  fprintf(gp, ")\n");
}

/* final_loss.png: a row per model: its seeds, the mean with ± 1 s.d.
   error bars, and the base's mean as a dashed line; -1 when its script
   cannot be written. */
static int final_script(StPlots *pl, const StFigs *fg, int m, double lo, double hi,
                        char *err, size_t errlen) {
  const Study *s = fg->p->s;
  char title[256];
  int w = 760 + 8 * longest_name(s);
  snprintf(title, sizeof title, "%s: final test loss (mean ± 1 s.d. over %s; dots: "
           "seeds)", s->name, seeds_text(fg));
  if (st_plots_figure(pl, "final_loss", w > 1000 ? w : 1000, 150 + 36 * (m > 6 ? m : 6),
                      title, err, errlen))
    return -1;
  FILE *gp = pl->gp;
  fprintf(gp, "set title ");
  st_plots_string(gp, title);
  fprintf(gp, "\nset xlabel \"final test loss\"\nset yrange [-0.7:%g]\nset grid noytics\n"
          "set key outside top center horizontal\n", m - 0.3);
  final_tics(gp, fg, m);
  st_plots_axis(gp, 'x', lo, hi);
  const StExpFigs *b = fg->p->base >= 0 ? &fg->exp[fg->p->base] : NULL;
  if (b && b->n)
    fprintf(gp, "set arrow from first %.17g, graph 0 to first %.17g, graph 1 nohead dt 2 "
            "lw 1.5 lc rgb \"gray40\"\nplot keyentry with lines dt 2 lw 1.5 lc rgb \"gray40\" "
            "title \"base mean\", \\\n    ", b->mean[ST_TEST_LOSS], b->mean[ST_TEST_LOSS]);
  else
    fprintf(gp, "plot ");
  fprintf(gp, "\"plots/final_loss.dat\" index 1 using 2:1 with points pt 7 ps 0.8 "
          "lc rgb \"#7f7fbf\" title \"each seed\", \\\n    \"plots/final_loss.dat\" index 0 "
          "using 2:1:3 with xerrorbars pt 5 ps 1.2 lw 2 lc rgb \"#b00000\" title "
          "\"mean ± 1 s.d.\"\nset output\n");
  return 0;
}

int st_plots_study(StPlots *pl, const StFigs *fg, char *err, size_t errlen) {
  const Study *s = fg->p->s;
  double lo, hi;
  int *block = malloc((size_t)s->nexp * sizeof *block);
  FILE *f = block ? st_plots_data(pl, "test_loss.dat", err, errlen) : NULL;
  if (!f)
    return free(block), -1;
  curve_data(f, fg, block, &lo, &hi);
  fclose(f);
  int rc = curves_script(pl, fg, block, lo, hi, err, errlen);
  free(block);
  if (rc || !(f = st_plots_data(pl, "final_loss.dat", err, errlen)))
    return -1;
  int m = final_data(f, fg, &lo, &hi);
  fclose(f);
  return m ? final_script(pl, fg, m, lo, hi, err, errlen) : 0;
}

/* ---- running gnuplot ---- */

/* Starts gnuplot on plots/plots.gp in pl->dir, its output into
   plots/gnuplot.log. Returns its pid, or -1 with errno (ENOENT: not
   installed) when it could not be started. */
static pid_t start_gnuplot(const StPlots *pl) {
  int fd[2];
  char log[MAX_PATH_LEN + 32];
  snprintf(log, sizeof log, "%s/plots/gnuplot.log", pl->dir);
  if (pipe2(fd, O_CLOEXEC))
    return -1;
  fflush(stdout), fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666), in = open("/dev/null", O_RDONLY);
    if (out >= 0 && in >= 0 && dup2(in, 0) >= 0 && dup2(out, 1) >= 0 && dup2(out, 2) >= 0 &&
        chdir(pl->dir) == 0)
      execvp("gnuplot", (char *[]){"gnuplot", "plots/plots.gp", NULL});
    int e = errno;
    (void)!write(fd[1], &e, sizeof e);
    _exit(127);
  }
  close(fd[1]);
  int e = 0;
  if (pid > 0 && read(fd[0], &e, sizeof e) == (ssize_t)sizeof e) {
    waitpid(pid, NULL, 0);
    pid = -1, errno = e;
  }
  close(fd[0]);
  return pid;
}

/* Whether every figure's PNG and SVG are there. */
static int all_drawn(const StPlots *pl) {
  char path[MAX_PATH_LEN + 96];
  struct stat st;
  for (int i = 0; i < 2 * pl->n; i++) {
    const char *png = pl->png[i / 2];
    snprintf(path, sizeof path, "%s/%.*s.%s", pl->dir, (int)strlen(png) - 4, png,
             i % 2 ? "svg" : "png");
    if (stat(path, &st) || st.st_size == 0)
      return 0;
  }
  return 1;
}

void st_plots_draw(StPlots *pl, FILE *term) {
  int status = 0;
  st_plots_close(pl);
  pid_t pid = start_gnuplot(pl);
  if (pid < 0)
    snprintf(pl->why, sizeof pl->why, "%s", errno == ENOENT
             ? "gnuplot is not installed (scripts/setup.sh installs Debian's gnuplot-nox)"
             : strerror(errno));
  else {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
      ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) || !all_drawn(pl))
      snprintf(pl->why, sizeof pl->why, "gnuplot failed; its messages are in %s/plots/"
               "gnuplot.log", pl->dir);
  }
  pl->drawn = !pl->why[0];
  if (!pl->drawn && term)
    fprintf(term, "mlpc: warning: no plots: %s; the tables and report.md are written\n",
            pl->why);
}
