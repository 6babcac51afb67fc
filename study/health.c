/*
 * health.c — where the activation-health figures come into a report: the
 * per-layer statistics of each run's hidden activations (their mean and
 * spread before and after the activation function, the share of
 * saturated and of dead units; docs/health.md), which say why a remedy
 * helps: a badly initialised tanh network trains slowly because its
 * units saturate, and a remedy should show fewer of them.
 *
 * The database will hold these figures in a table of their own keyed by
 * run_id (docs/study-format.md). Until it does, this file is the hook:
 * each function below says that there are none, and report.md keeps a
 * section for them. To fill it in:
 *
 *   st_health_plots    read the figures of every run (f->exp[i].run[r].id
 *                      are the run ids of experiment i, f->exp[i].same
 *                      the first experiment with the same runs), write
 *                      plots/health_*.dat with st_plots_data and draw
 *                      with st_plots_figure + gnuplot commands on pl->gp,
 *                      e.g. each hidden layer's saturated share per epoch,
 *                      one curve per distinct model; return how many
 *                      experiments have figures
 *   st_health_section  a table of the final figures per model, and the
 *                      figures' links
 *   st_health_why      sentences derived from those numbers, in the order
 *                      of the ranking: whether the models that rank
 *                      higher have healthier activations than the base
 */
#include <stdio.h>
#include "study.h"

int st_health_plots(const StFigs *f, StPlots *pl, char *err, size_t errlen) {
  (void)f, (void)pl, (void)err, (void)errlen;
  return 0;
}

void st_health_section(const StFigs *f, const StPlots *pl, FILE *md) {
  (void)f, (void)pl;
  fprintf(md, "\n## Activation health\n\n"
              "No activation-health figures are recorded for these runs. This section is "
              "where they go: for each model, the statistics of each hidden layer's "
              "activations (spread before and after the activation function, saturated and "
              "dead units), as tables and plots.\n");
}

void st_health_why(const StFigs *f, const int *rank, int nrank, FILE *md) {
  (void)f, (void)rank, (void)nrank;
  fprintf(md, "\n### Why: what the activation-health figures show\n\n"
              "The database holds no activation-health figures for these runs, so this "
              "report cannot yet say why the models rank as they do; the numbers above say "
              "only which do better.\n");
}
