/*
 * seq.c — the sequential two-sample test of adaptive studies: an
 * e-process that stays valid however often it is looked at and whenever
 * the looking stops (docs/study-format.md, "Adaptive seeds").
 *
 * Two models' final losses arrive one seed at a time, a_1, b_1, a_2,
 * b_2, ... (seeds in increasing order). Under the null hypothesis the
 * two models have the same distribution of final losses, and runs are
 * independent, so the pooled sequence z_1, z_2, ... is exchangeable.
 * Then the smoothed sequential ranks
 *
 *   u_t = (#{i <= t: z_i < z_t} + θ_t #{i <= t: z_i = z_t}) / t,
 *
 * θ_t uniform in (0, 1), are independent and uniform in (0, 1) (Vovk,
 * Gammerman and Shafer, Algorithmic Learning in a Random World, 2005:
 * smoothed conformal p-values). With q_t the share of z_1..z_t that are
 * of z_t's model, a bet on "a is lower" wins when an a has u_t <= q_t or
 * a b has u_t >= 1 − q_t, which happens with probability q_t; it pays
 * 1 − λ + λ/q_t when it wins and 1 − λ when not: a fair bet, so the
 * product over t is a nonnegative martingale (a conformal test
 * martingale: Vovk, "Testing randomness online", Statistical Science
 * 36(4), 2021). Here ties count against the bet (no θ), so each factor
 * is at most the randomised one and the product stays below a
 * martingale. The mirror image bets on "b is lower". The e-value is the
 * mean of both directions, each the mean over a few λ; by Ville's
 * inequality it ever reaches c with probability at most 1/c, so
 * stopping at any seed, for any reason, keeps the level. When a's
 * values all lie below b's, the bets at λ = 1 multiply to C(2n, n) after
 * n seeds, the number of splits of the exact permutation test: no test
 * that assumes as little can do better.
 */
#include <math.h>
#include "study.h"

/* The bets' λ: their e-process is the mean of the products of each. */
static const double lambdas[] = {0.5, 0.75, 0.9, 1.0};
enum { NLAMBDA = sizeof lambdas / sizeof lambdas[0] };

/* Whether z[t - 1] is surely among the `mine` lowest of z[0..t) (low) or
   surely not (high): ties count against the bet, so that each bet wins
   at most as often as with ties broken at random. */
static void place(const double *z, int t, int mine, int *low, int *high) {
  int lt = 0, le = 0;
  for (int i = 0; i < t; i++)
    lt += z[i] < z[t - 1], le += z[i] <= z[t - 1];
  *low = le <= mine, *high = lt >= t - mine;
}

/* The running products of both directions' bets (m[0]: a lower, m[1]:
   b lower), each λ on its own. */
typedef struct {
  double m[2][NLAMBDA];
} Bets;

/* Takes observation t (z[t - 1], of model a when is_a), of which `mine`
   of z[0..t) are of its model. */
static void bet(Bets *b, const double *z, int t, int is_a, int mine) {
  double q = (double)mine / t;
  int low, high;
  place(z, t, mine, &low, &high);
  int win[2] = {is_a ? low : high, is_a ? high : low};  /* a lower; b lower */
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < NLAMBDA; k++)
      b->m[d][k] *= 1 - lambdas[k] + (win[d] ? lambdas[k] / q : 0);
}

/* The mean over λ of direction d's products. */
static double mean_bets(const Bets *b, int d) {
  double s = 0;
  for (int k = 0; k < NLAMBDA; k++)
    s += b->m[d][k];
  return s / NLAMBDA;
}

StSeq st_seq_test(const double *a, const double *b, int n, double threshold) {
  StSeq r = {.n = n, .e = 1};
  Bets bets;
  double z[2 * ST_MAX_SEEDS];
  for (int d = 0; d < 2; d++)
    for (int k = 0; k < NLAMBDA; k++)
      bets.m[d][k] = 1;
  for (int k = 0; k < n && k < ST_MAX_SEEDS; k++) {
    z[2 * k] = a[k], z[2 * k + 1] = b[k];
    bet(&bets, z, 2 * k + 1, 1, k + 1);
    bet(&bets, z, 2 * k + 2, 0, k + 1);
    double up = mean_bets(&bets, 0), down = mean_bets(&bets, 1);
    r.e = (up + down) / 2;
    r.lower = up >= down ? -1 : 1;
    if (r.e >= threshold) {
      r.decided = k + 1;
      return r;
    }
  }
  return r;
}
