/*
 * stats.c — the statistics a study's conclusions rest on:
 *
 *   st_mean_std      mean and sample standard deviation (n − 1)
 *   st_welch         Welch's t-test for two means with unequal variances:
 *                    t, the Welch–Satterthwaite degrees of freedom, and
 *                    the two-sided p from Student's t distribution
 *   st_t_p           that p, from GSL's Student's t distribution
 *                    (gsl_cdf_tdist_Q); st_beta_inc is GSL's regularized
 *                    incomplete beta function
 *   st_permutation   the exact permutation test on the difference of
 *                    means: every split of the pooled values into groups
 *                    of the two sizes
 *   st_holm          Holm's step-down correction for several p values
 *
 * tests/test_study_stats.c checks each against closed forms and
 * hand-counted cases.
 */
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include <stdlib.h>
#include "study.h"

void st_mean_std(const double *x, int n, double *mean, double *std) {
  double s = 0, q = 0;
  for (int i = 0; i < n; i++)
    s += x[i];
  *mean = n ? s / n : NAN;
  for (int i = 0; i < n; i++)
    q += (x[i] - *mean) * (x[i] - *mean);
  *std = n > 1 ? sqrt(q / (n - 1)) : NAN;
}

/* ---- Student's t distribution ---- */

/* GSL reports a domain error or an underflow by its status and result
   rather than through its default handler, which aborts the process. */
static void quiet_gsl(void) { gsl_set_error_handler_off(); }

double st_beta_inc(double a, double b, double x) {
  if (x <= 0 || x >= 1)
    return x <= 0 ? 0 : 1;
  if (!(a > 0 && b > 0) || isnan(x))
    return NAN;
  gsl_sf_result r;
  quiet_gsl();
  int status = gsl_sf_beta_inc_e(a, b, x, &r);  /* an underflow is 0, rightly */
  return status == GSL_SUCCESS || status == GSL_EUNDRFLW ? r.val : NAN;
}

double st_t_p(double t, double df) {
  if (isnan(t) || !(df > 0))
    return NAN;
  if (isinf(t))
    return 0;
  quiet_gsl();
  return 2 * gsl_cdf_tdist_Q(fabs(t), df);
}

/* ---- two-sample tests ---- */

StWelch st_welch(const double *a, int na, const double *b, int nb) {
  double ma, sa, mb, sb;
  st_mean_std(a, na, &ma, &sa);
  st_mean_std(b, nb, &mb, &sb);
  StWelch w = {ma - mb, NAN, NAN, NAN};
  if (na < 2 || nb < 2)
    return w;
  double va = sa * sa / na, vb = sb * sb / nb;
  if (va + vb == 0) {  /* no spread at all: any difference is certain */
    w.t = w.diff ? copysign(INFINITY, w.diff) : NAN;
    w.df = na + nb - 2;
    w.p = w.diff ? 0 : NAN;
    return w;
  }
  w.t = w.diff / sqrt(va + vb);
  w.df = (va + vb) * (va + vb) / (va * va / (na - 1) + vb * vb / (nb - 1));
  w.p = st_t_p(w.t, w.df);
  return w;
}

/* The next larger number with as many bits set (Gosper's hack). */
static unsigned next_subset(unsigned v) {
  unsigned c = v & -v, r = v + c;
  return (((r ^ v) >> 2) / c) | r;
}

/* The mean of the members of mask minus the mean of the others. */
static double split_diff(const double *x, int n, unsigned mask, int na) {
  double sa = 0, sb = 0;
  for (int i = 0; i < n; i++)
    *(mask >> i & 1 ? &sa : &sb) += x[i];
  return sa / na - sb / (n - na);
}

StPerm st_permutation(const double *a, int na, const double *b, int nb) {
  StPerm r = {NAN, NAN, 0, 0};
  int n = na + nb;
  if (na < 1 || nb < 1 || n > ST_PERM_MAX)
    return r;
  double x[ST_PERM_MAX], scale = 0;
  for (int i = 0; i < n; i++)
    x[i] = i < na ? a[i] : b[i - na], scale = fmax(scale, fabs(x[i]));
  unsigned first = (1u << na) - 1;
  double obs = fabs(split_diff(x, n, first, na)), tol = 1e-12 * scale;
  for (unsigned m = first; m < 1u << n; m = next_subset(m)) {
    r.total++;
    r.count += fabs(split_diff(x, n, m, na)) >= obs - tol;
  }
  r.p = (double)r.count / r.total;
  r.min_p = (na == nb ? 2.0 : 1.0) / r.total;
  return r;
}

void st_holm(const double *p, int n, double *adj) {
  int *order = malloc((size_t)(n ? n : 1) * sizeof *order), m = 0;
  for (int i = 0; i < n; i++) {
    adj[i] = NAN;
    if (isnan(p[i]))
      continue;
    int j = m++;
    for (; j > 0 && p[order[j - 1]] > p[i]; j--)  /* insertion sort, stable */
      order[j] = order[j - 1];
    order[j] = i;
  }
  double run = 0;
  for (int j = 0; j < m; j++) {
    run = fmax(run, fmin(1, (m - j) * p[order[j]]));
    adj[order[j]] = run;
  }
  free(order);
}
