/*
 * test_study_stats.c — the statistics of study/stats.c against closed
 * forms and cases counted by hand:
 *
 *   - I_x(a, b) where it has a closed form (b = 1, a = 1, a = b = 1/2);
 *   - Student's t two-sided p for df 1 (Cauchy), for even df (the finite
 *     series of sin θ and cos θ) and at textbook critical values;
 *   - both at the edges: underflow, domain errors, t far out;
 *   - Welch's t and degrees of freedom on small samples worked by hand;
 *   - exact permutation p values, counted by hand over 20 splits;
 *   - Holm's adjustment.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "../study/study.h"

/* Fails unless |got − want| <= tol. */
static void near(double got, double want, double tol) {
  if (!(fabs(got - want) <= tol))
    fail_msg("got %.17g, want %.17g (tolerance %g)", got, want, tol);
}

/* I_x(a, b) against x^a, 1 − (1 − x)^b and (2/π) asin √x. */
static void test_beta_closed_forms(void **state) {
  (void)state;
  for (double x = 0.01; x < 1; x += 0.07) {
    near(st_beta_inc(3.5, 1, x), pow(x, 3.5), 1e-13);
    near(st_beta_inc(1, 2.25, x), 1 - pow(1 - x, 2.25), 1e-13);
    near(st_beta_inc(0.5, 0.5, x), 2 / M_PI * asin(sqrt(x)), 1e-13);
  }
  near(st_beta_inc(2, 3, 0), 0, 0);
  near(st_beta_inc(2, 3, 1), 1, 0);
}

/* Two-sided p for even df: 1 − sin θ (1 + cos²θ/2 + 1·3/(2·4) cos⁴θ +
   ...), θ = atan(t / √df), summed here independently of stats.c. */
static double t_p_even(double t, int df) {
  double th = atan(fabs(t) / sqrt(df)), c2 = cos(th) * cos(th), term = 1, sum = 1;
  for (int k = 1; k <= df / 2 - 1; k++)
    term *= c2 * (2 * k - 1) / (2 * k), sum += term;
  return 1 - sin(th) * sum;
}

/* Student's t: df 1 is Cauchy; even df by the series; critical values. */
static void test_t_distribution(void **state) {
  (void)state;
  for (double t = 0; t < 30; t = t * 1.7 + 0.05) {
    near(st_t_p(t, 1), 1 - 2 / M_PI * atan(t), 1e-13);
    near(st_t_p(-t, 1), 1 - 2 / M_PI * atan(t), 1e-13);
    for (int df = 2; df <= 12; df += 2)
      near(st_t_p(t, df), t_p_even(t, df), 1e-12);
  }
  near(st_t_p(12.706204736, 1), 0.05, 1e-9);   /* the t tables' 97.5% points */
  near(st_t_p(4.302652730, 2), 0.05, 1e-9);
  near(st_t_p(2.776445105, 4), 0.05, 1e-9);
  near(st_t_p(2.228138852, 10), 0.05, 1e-9);
  near(st_t_p(3.169272673, 10), 0.01, 1e-9);
  near(st_t_p(INFINITY, 3), 0, 0);
  assert_true(isnan(st_t_p(NAN, 3)) && isnan(st_t_p(1, 0)));
}

/* Inputs at the edges: an underflow is 0 and a domain error NaN, never
   GSL's default error handler, which aborts the process. */
static void test_extremes(void **state) {
  (void)state;
  near(st_beta_inc(1e5, 0.5, 1e-300), 0, 0);
  assert_true(isnan(st_beta_inc(-1, 1, 0.5)) && isnan(st_beta_inc(1, 0, 0.5)));
  assert_true(isnan(st_beta_inc(1, 1, NAN)));
  /* I_x(15, 1/2) at x = 30 / (30 + t²), by mpmath to 40 digits */
  near(st_t_p(1e10, 30) / 2.0729069305124134e-279, 1, 1e-12);
  near(st_t_p(1e300, 2), 0, 0);
  near(st_t_p(0, 7), 1, 1e-15);
  assert_true(isnan(st_t_p(1, -1)) && isnan(st_t_p(1, NAN)));
}

/* Welch on samples worked by hand. */
static void test_welch(void **state) {
  (void)state;
  /* equal spreads (variance 1), n 3 and 3: se = √(2/3), df = 4 */
  StWelch w = st_welch((double[]){1, 2, 3}, 3, (double[]){4, 5, 6}, 3);
  near(w.diff, -3, 1e-15);
  near(w.t, -3 / sqrt(2.0 / 3), 1e-13);
  near(w.df, 4, 1e-13);
  near(w.p, t_p_even(w.t, 4), 1e-13);
  /* a = {0, 2} (variance 2), b = {10, 10, 16} (variance 12):
     va = 1, vb = 4, t = (1 − 12) / √5, df = 25 / (1/1 + 16/2) = 25/9 */
  w = st_welch((double[]){0, 2}, 2, (double[]){10, 10, 16}, 3);
  near(w.diff, -11, 1e-14);
  near(w.t, -11 / sqrt(5), 1e-13);
  near(w.df, 25.0 / 9, 1e-13);
  near(w.p, st_beta_inc(25.0 / 18, 0.5, (25.0 / 9) / (25.0 / 9 + 121.0 / 5)), 1e-15);
  /* one value on a side: no variance, no test */
  w = st_welch((double[]){1}, 1, (double[]){4, 5, 6}, 3);
  near(w.diff, -4, 0);
  assert_true(isnan(w.t) && isnan(w.p));
  /* no spread at all */
  w = st_welch((double[]){2, 2}, 2, (double[]){3, 3}, 2);
  assert_true(isinf(w.t) && w.t < 0 && w.p == 0);
}

/* Exact permutation p values over the 20 splits of 3 + 3 values. */
static void test_permutation(void **state) {
  (void)state;
  /* fully apart: only the split itself and its mirror are as extreme */
  StPerm r = st_permutation((double[]){1, 2, 3}, 3, (double[]){4, 5, 6}, 3);
  assert_int_equal(r.total, 20);
  assert_int_equal(r.count, 2);
  near(r.p, 0.1, 0);
  near(r.min_p, 0.1, 0);
  /* {1, 3, 5} against {2, 4, 6}: |diff| >= 1 when the first group sums
     to 9 or less (7 splits) or 12 or more (7) */
  r = st_permutation((double[]){1, 5, 3}, 3, (double[]){2, 6, 4}, 3);
  assert_int_equal(r.count, 14);
  near(r.p, 0.7, 1e-15);
  /* sizes 2 and 4: 15 splits, no mirror */
  r = st_permutation((double[]){10, 11}, 2, (double[]){1, 2, 3, 4}, 4);
  assert_int_equal(r.total, 15);
  assert_int_equal(r.count, 1);
  near(r.min_p, 1.0 / 15, 1e-15);
  /* losses like a study's: ties within rounding count as ties */
  r = st_permutation((double[]){0.1, 0.2, 0.3}, 3, (double[]){0.1, 0.2, 0.3}, 3);
  near(r.p, 1, 0);
  r = st_permutation((double[]){1}, 1, (double[]){1}, 0);
  assert_true(isnan(r.p));
}

/* Holm's adjustment: sorted, scaled by m − j, kept monotone. */
static void test_holm(void **state) {
  (void)state;
  double p[5] = {0.01, 0.04, NAN, 0.03, 0.005}, adj[5];
  st_holm(p, 5, adj);
  near(adj[4], 0.02, 1e-15);
  near(adj[0], 0.03, 1e-15);
  near(adj[3], 0.06, 1e-15);
  near(adj[1], 0.06, 1e-15);
  assert_true(isnan(adj[2]));
  double q[2] = {0.6, 0.7};
  st_holm(q, 2, adj);
  near(adj[0], 1, 0);
  near(adj[1], 1, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_beta_closed_forms),
    cmocka_unit_test(test_t_distribution),
    cmocka_unit_test(test_extremes),
    cmocka_unit_test(test_welch),
    cmocka_unit_test(test_permutation),
    cmocka_unit_test(test_holm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
