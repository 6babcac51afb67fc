/*
 * test_study_seq.c — the sequential test of adaptive studies (study/seq.c)
 * keeps its level under optional stopping, and saves seeds:
 *
 *   - by hand: one seed is no evidence (e = 1); models whose runs never
 *     overlap reach at least C(2n, n) / 8, an eighth of the exact
 *     permutation test's bound; ties count against the bets;
 *   - 10,000 simulated adaptive studies of two models with the same
 *     distribution of final losses (normal, skewed: log-normal,
 *     heavy-tailed: Student's t with 2 degrees of freedom, and discrete
 *     with ties), each starting with 3 seeds and adding one at a time up
 *     to 10 until the test decides at level 0.05: at most 5 % plus three
 *     binomial standard deviations of them declare a difference;
 *   - the same check catches a procedure that is not valid under optional
 *     stopping: Welch's fixed-design test looked at after every seed;
 *   - with a real difference (2 standard deviations), the test decides,
 *     in the right direction, with fewer seeds on average than the fixed
 *     design of 10 (it decides in over 40 % of the studies).
 *
 * The simulations draw from a fixed generator: the numbers are the same
 * on every run, and take well under a second.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include "../study/study.h"

enum { STUDIES = 10000, START = 3, MAX = 10 };
static const double alpha = 0.05;

/* ---- a fixed generator and the distributions ---- */

static uint64_t state = 0x9e3779b97f4a7c15ULL;

/* A uniform number in (0, 1) (xorshift64*). */
static double uniform(void) {
  state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
  return ((double)((state * 0x2545f4914f6cdd1dULL) >> 11) + 0.5) / 9007199254740992.0;
}

/* A standard normal number (Box–Muller). */
static double normal(void) { return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform()); }

/* Skewed: log-normal. */
static double lognormal(void) { return exp(normal()); }

/* Heavy-tailed: Student's t with 2 degrees of freedom (no variance). */
static double student2(void) { return normal() / sqrt(-log(uniform())); }

/* Discrete, with many ties: 0, 1 or 2. */
static double discrete(void) { return floor(3 * uniform()); }

typedef double Draw(void);

/* ---- simulated studies ---- */

/* One adaptive study of two models (b shifted by delta): the seeds it
   used (START .. MAX) and its verdict (-1: a lower, +1: b lower, 0: none). */
static int one_study(Draw *draw, double delta, int *verdict) {
  double a[MAX], b[MAX];
  for (int k = 0; k < MAX; k++)
    a[k] = draw(), b[k] = draw() + delta;
  StSeq t = st_seq_test(a, b, MAX, 1 / alpha);
  *verdict = t.decided ? t.lower : 0;
  return !t.decided ? MAX : t.decided < START ? START : t.decided;
}

/* The share of STUDIES that decide, and their mean seeds; *wrong: the
   share that decide with b lower. */
static double simulate(Draw *draw, double delta, double *seeds, double *wrong) {
  int decided = 0, against = 0;
  long used = 0;
  for (int i = 0; i < STUDIES; i++) {
    int v;
    used += one_study(draw, delta, &v);
    decided += v != 0, against += v > 0;
  }
  *seeds = (double)used / STUDIES, *wrong = (double)against / STUDIES;
  return (double)decided / STUDIES;
}

/* The most false positives a valid level-alpha test may show in STUDIES
   simulations: alpha plus three binomial standard deviations. */
static double bound(void) { return alpha + 3 * sqrt(alpha * (1 - alpha) / STUDIES); }

/* ---- tests ---- */

/* One seed is no evidence either way: e = 1. */
static void test_one_seed(void **state_) {
  (void)state_;
  double a[] = {1}, b[] = {2};
  StSeq t = st_seq_test(a, b, 1, 20);
  assert_true(t.e == 1);
  assert_int_equal(t.decided, 0);
}

/* Runs that never overlap: at least C(2n, n) / 8 after n seeds, a lower;
   the mirror image says b lower. */
static void test_separated(void **state_) {
  (void)state_;
  double a[MAX], b[MAX], binom = 1;
  for (int n = 1; n <= MAX; n++) {
    a[n - 1] = -n * 0.1, b[n - 1] = 10 + n;
    binom = binom * (n + n) * (n + n - 1) / (n * n);
    StSeq t = st_seq_test(a, b, n, 1e300), u = st_seq_test(b, a, n, 1e300);
    if (!(t.e >= binom / 8 && t.lower == -1 && u.e >= binom / 8 && u.lower == 1))
      fail_msg("n = %d: e = %g (%d), mirror %g (%d); C(2n, n) = %g", n, t.e, t.lower, u.e,
               u.lower, binom);
  }
  StSeq t = st_seq_test(a, b, MAX, 420);
  assert_int_equal(t.decided, 7);  /* C(14, 7) / 8 = 429 */
}

/* Every run of both models ties: no evidence of a difference. */
static void test_ties(void **state_) {
  (void)state_;
  double a[MAX], b[MAX];
  for (int k = 0; k < MAX; k++)
    a[k] = b[k] = INFINITY;  /* all diverged */
  assert_true(st_seq_test(a, b, MAX, 20).e <= 1);
  assert_int_equal(st_seq_test(a, b, MAX, 20).decided, 0);
}

/* Under the null, at most alpha (with the binomial margin) of the
   studies declare a difference, whatever the distribution. */
static void test_null(void **state_) {
  (void)state_;
  Draw *draws[] = {normal, lognormal, student2, discrete};
  const char *names[] = {"normal", "log-normal", "Student t(2)", "discrete"};
  for (int d = 0; d < 4; d++) {
    double seeds, wrong, rate = simulate(draws[d], 0, &seeds, &wrong);
    printf("null, %s: %.4f of %d studies declare a difference (at most %.4f), %.2f seeds on "
           "average\n", names[d], rate, STUDIES, bound(), seeds);
    if (rate > bound())
      fail_msg("%s: false-positive rate %.4f > %.4f", names[d], rate, bound());
  }
}

/* Welch's test looked at after every seed from START on: the bound
   catches its false positives (the check is not toothless). */
static void test_bound_catches_peeking(void **state_) {
  (void)state_;
  int false_pos = 0;
  for (int i = 0; i < STUDIES; i++) {
    double a[MAX], b[MAX];
    int hit = 0;
    for (int k = 0; k < MAX; k++)
      a[k] = normal(), b[k] = normal();
    for (int n = START; n <= MAX && !hit; n++)
      hit = st_welch(a, n, b, n).p < alpha;
    false_pos += hit;
  }
  double rate = (double)false_pos / STUDIES;
  printf("null, Welch's test after every seed: %.4f declare a difference\n", rate);
  assert_true(rate > bound());
}

/* With a real difference, it decides in the right direction, on fewer
   seeds on average than a fixed design of MAX. */
static void test_saves_seeds(void **state_) {
  (void)state_;
  Draw *draws[] = {normal, student2};
  const char *names[] = {"normal", "Student t(2)"};
  for (int d = 0; d < 2; d++) {
    double seeds, wrong, rate = simulate(draws[d], 2, &seeds, &wrong);
    printf("shift of 2, %s: %.4f decide (%.4f the wrong way), %.2f seeds on average "
           "(fixed design: %d)\n", names[d], rate, wrong, seeds, MAX);
    assert_true(rate > 0.4);
    assert_true(wrong < 0.001);
    assert_true(seeds < MAX - 1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_one_seed),
    cmocka_unit_test(test_separated),
    cmocka_unit_test(test_ties),
    cmocka_unit_test(test_null),
    cmocka_unit_test(test_bound_catches_peeking),
    cmocka_unit_test(test_saves_seeds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
