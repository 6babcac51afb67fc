/*
 * rmath.h — elementwise math whose bits are mlpc's own, not the C
 * library's.
 *
 * libm's float functions are accurate but scalar: a call per element
 * costs more than the whole matrix product of a layer, and gcc cannot
 * vectorise a loop that makes it. These are written with + − × ÷ alone,
 * in double, so that gcc vectorises them, and every compiler that keeps
 * IEEE arithmetic without contraction (gcc, tcc, a standalone trainer's
 * cc) computes the same bits. Pasted into generated code, into inference
 * C (C99, freestanding: no header needed) and compiled into mlpc with
 * rt/kernels.h.
 *
 * Both were checked against every one of the 2^32 floats, and NaN stays
 * NaN. rm_tanhf equals glibc's tanh computed in double and rounded to
 * float, every time. rm_expf does so for all but two inputs, where it is
 * 1 ulp away (0x1.060e1ep+6 and −0x1.03d5bep+0: e^x lies so near the
 * middle between two floats that the two double approximations round
 * to different sides).
 * tests/test_kernels.c checks a sample of a million of each.
 */
#ifndef MLPC_RMATH_H
#define MLPC_RMATH_H

/* e^y for y in [−700, 700] (or NaN): y = k·ln 2 + r with |r| <= ln(2)/2,
   e^r by its Taylor series to r^11 (error below 2^−52), times 2^k built
   in the exponent bits. k is rounded by adding 1.5·2^52, whose low bits
   then hold it. */
static inline double rm_exp(double y) {
  double t = y * 0x1.71547652b82fep0 + 0x1.8p52;
  double k = t - 0x1.8p52;
  double r = (y - k * 0x1.62e42feep-1) - k * 0x1.a39ef35793c76p-33; /* ln 2, hi + lo */
  double p =
    1 + r * (1 + r * (0x1p-1 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
    1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
    1.0 / 3628800 + r * (1.0 / 39916800)))))))))));
  union {
    double d;
    unsigned long long u;
  } s = {t};
  s.u = (s.u + 1023) << 52; /* 2^k: k + 2^51 in the low bits, the rest shifts out */
  return p * s.d;
}

#ifndef RM_NO_TANHF /* (inference C leaves out what it does not call) */
/* tanh(x), rounded once from double: for |x| < 1/8 its odd Taylor series
   to x^13, else (1 − e)/(1 + e) with e = e^(−2|x|), which cannot cancel
   there. Both are computed, so the loop stays branch-free. */
static inline float rm_tanhf(float xf) {
  double x = xf, a = x < 0 ? -x : x, a2 = x * x;
  double small = /* x times an even series, so that tanh(−0) = −0 */
    x * (1 + a2 * (-1.0 / 3 + a2 * (2.0 / 15 + a2 * (-17.0 / 315 + a2 * (
    62.0 / 2835 + a2 * (-1382.0 / 155925 + a2 * (21844.0 / 6081075)))))));
  double y = -2 * a;
  double e = rm_exp(y < -700 ? -700 : y); /* NaN passes */
  double big = (1 - e) / (1 + e);
  return (float)(a < 0.125 ? small : x < 0 ? -big : big);
}
#endif
#ifndef RM_NO_EXPF
/* e^x, rounded once from double; beyond [−200, 100] the float result is
   0 or infinity anyway. */
static inline float rm_expf(float xf) {
  double y = xf;
  y = y < -200 ? -200 : y; /* NaN passes both */
  y = y > 100 ? 100 : y;
  return (float)rm_exp(y);
}
#endif
#endif
