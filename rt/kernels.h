/*
 * kernels.h — the dense primitives that generated code calls.
 *
 * Standalone trainers, and gcc's code for a model large enough that it
 * pays (emit_inlines), paste this text in front of the model, so the
 * primitives are inlined with constant sizes. Otherwise, and always under
 * tcc, the model sees only pointers to them (MLPC_KERNEL_PROTOTYPES),
 * which mlpc sets to copies compiled into it by gcc for any size
 * (backend/kernels.c): tcc's own code is slow. Either way the same source
 * computes, so every backend gives the same bits.
 *
 * `real` is float or double, typedef'd before this text, with FMA and SQRT
 * its fma and sqrt.
 *
 * Layout. A linear layer's weight W (O, I) is stored transposed, as
 * wt (I, O), and so are its gradient and optimizer state (RtTensor's
 * `transposed`). Then every product below runs along O, the contiguous
 * axis, with one element of the input as the scalar factor; the inputs are
 * sparse (half the pixels of Fashion-MNIST are 0, a ReLU zeroes about half
 * its outputs), and a zero skips a whole row of wt.
 *
 * The contract. Every output element sums its terms one at a time in
 * increasing index order, starting from the bias or from 0, each with
 * MAC(acc, a, b): fma(a, b, acc), rounded once ("fma", the default:
 * MLPC_FMA), or acc + a·b, rounded twice ("strict"). Kernels vectorise and
 * block across output elements only, never along a sum, so the bits do
 * not depend on the compiler, its vector width, the alignment, the
 * blocking, the batch size or the backend. Terms whose input is exactly
 * zero are skipped: that adds nothing, and changes nothing but the sign
 * of an exact zero. Two kinds of sum are split instead, into a fixed set
 * of partial sums, each in increasing order and then added in halves, the
 * same in every copy: BatchNorm2d's statistics (bn2d_sum) and a narrow
 * convolution's weight and bias gradient (conv_dw_rows), which adds its
 * zero terms too. And one computes other sums: a 3×3 convolution of
 * stride 1 with 8 channels or more in and out, and its input gradient,
 * by Winograd's F(2×2, 3×3) (conv_wino), whose every operation is fixed
 * and the same in every copy.
 */
#ifdef MLPC_FMA
#define MAC(acc, a, b) FMA(a, b, acc)
#else
#define MAC(acc, a, b) ((acc) + (a) * (b))
#endif

/* SplitMix64's output function (Steele, Lea and Flood, 2014). */
static inline unsigned long long mm_mix64(unsigned long long z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* The key of a dropout layer's masks (drop_forward) in one training step:
   a hash of the run's seed, the number of steps taken before this one and
   the layer's index in the model (docs/backends.md, "Dropout masks"). */
static inline unsigned long long drop_key(unsigned long long seed, long long step, int layer) {
  return mm_mix64(mm_mix64(mm_mix64(seed) ^ (unsigned long long)step) ^
                  (unsigned long long)layer);
}

/* The kernels mlpc compiles into itself (backend/kernels.c) and binds
   to the code that calls them (mlpc_bind): the dense ones, whose sizes
   as constants pay when gcc inlines them, and the small ones, which gain
   nothing from that; and act_NAME, act_NAME_back for each activation of
   rt/acts.h, small too. */
#define RT_KERNELS_DENSE(X)                                                           \
  X(mm_xw) X(mm_dw) X(mm_dw_sgd) X(mm_dx) X(conv2d_forward) X(conv2d_backward)        \
  X(maxpool2d_forward) X(maxpool2d_backward) X(maxpool2d_relu_forward)                \
  X(maxpool2d_relu_backward) X(avgpool2d_forward) X(avgpool2d_backward) X(bn2d_forward) \
  X(bn2d_backward) X(maxpool2d_bn_relu_forward) X(maxpool2d_relu_bn_backward)
#define RT_KERNELS_SMALL(X)                                                           \
  X(mm_load) X(mm_db) X(bn_forward) X(bn_backward) X(ln_forward) X(ln_backward)       \
  X(drop_forward) X(drop_backward) X(xent_forward) X(xent_backward) X(xent_smooth)    \
  X(xent_smooth_backward) X(clip_norm) X(clip_scale) X(opt_sgd) X(opt_rmsprop)       \
  X(opt_adam)
#define RT_KERNELS(X) RT_KERNELS_DENSE(X) RT_KERNELS_SMALL(X)

/* Kernels as pointers to mlpc's own copies of them (backend/kernels.c,
   one for each precision and arithmetic), which mlpc sets through the
   unit's mlpc_bind below before anything runs: every kernel under
   MLPC_KERNEL_PROTOTYPES (tcc's code, and gcc's for a small model), the
   small ones under MLPC_KERNEL_SMALL_CALLED (gcc's code that inlines the
   dense ones). */
#if defined(MLPC_KERNEL_PROTOTYPES) || defined(MLPC_KERNEL_SMALL_CALLED)
#define MLPC_KERNEL_BIND 1
static void (*mm_load)(int len, const unsigned char *x, real *out);
static void (*mm_db)(int n, int O, const real *dy, real *db);
static void (*bn_forward)(int n, int C, int train, double m, double eps, const real *x,
                          const real *gamma, const real *beta, real *run_mean,
                          real *run_var, double *mean, double *var, double *rstd,
                          real *xhat, real *y);
static void (*bn_backward)(int n, int C, const real *dy, const real *xhat,
                           const real *gamma, const double *rstd, double *sdy,
                           double *sdyx, real *dgamma, real *dbeta, real *dx);
static void (*ln_forward)(int n, int D, double eps, const real *x, const real *gamma,
                          const real *beta, double *rstd, real *xhat, real *y);
static void (*ln_backward)(int n, int D, const real *dy, const real *xhat, const real *gamma,
                           const double *rstd, real *dgamma, real *dbeta, real *dx);
static void (*drop_forward)(int len, const real *x, real *y, real *mask,
                            unsigned long long key, double p, real scale);
static void (*drop_backward)(int len, const real *dy, const real *mask, real *dx);
static double (*xent_forward)(int n, int K, const real *z, const unsigned char *y, real *lse,
                              real *e, long *correct);
static void (*xent_backward)(int n, int K, const real *z, const real *lse,
                             const unsigned char *y, real *dz);
static double (*xent_smooth)(int n, int K, const real *z, const real *lse, double nll,
                             double eps);
static void (*xent_smooth_backward)(int n, int K, const real *z, const real *lse,
                                    const unsigned char *y, real *dz, real on, real off);
static real (*clip_norm)(int len, const real *g);
static void (*clip_scale)(int len, real *g, real coef);
static void (*opt_sgd)(int len, real *p, const real *dp, real *buf, int first, real wd,
                       real mom, real damp1, int nesterov, real neg_lr);
static void (*opt_rmsprop)(int len, real *p, const real *dp, real *sq, real *avg, real *buf,
                           real wd, real alpha, real alpha1, real eps, real mom,
                           real neg_lr);
static void (*opt_adam)(int len, real *p, const real *dp, real *m, real *v, real decay,
                        real wd, real beta1, real beta11, real beta2, real beta21,
                        real step_size, real bc2_sqrt, real eps);
#define ACT_POINTERS_(e, name, ...)                                                   \
  static void (*act_##name)(int len, const real *x, real *y, real p);                 \
  static void (*act_##name##_back)(int len, const real *x, const real *y, const real *g, \
                                   real *dx, real p);
ACTS(ACT_POINTERS_)
#undef ACT_POINTERS_
#endif
#ifdef MLPC_KERNEL_PROTOTYPES
static void (*mm_xw)(int n, int O, int I, const real *x, const real *wt, const real *b,
                     real *y);
static void (*mm_dw)(int n, int O, int I, const real *dy, const real *x, real *dwt);
static void (*mm_dw_sgd)(int n, int O, int I, const real *dy, const real *x, real *dwt,
                         real *wt, real neg_lr);
static void (*mm_dx)(int n, int O, int I, const real *dy, const real *wt, real *dx);
static void (*conv2d_forward)(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                              int SW, int PH, int PW, const real *x, const real *w,
                              const real *b, real *col, real *y);
static void (*conv2d_backward)(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                               int SW, int PH, int PW, const real *dy, const real *x,
                               const real *w, real *col, real *dcol, real *dw, real *db,
                               real *dx);
static void (*maxpool2d_forward)(int n, int C, int H, int W, int KH, int KW, int SH, int SW,
                                 const real *x, real *y, int *arg);
static void (*maxpool2d_backward)(int n, int C, int H, int W, int KH, int KW, int SH,
                                  int SW, const real *dy, const int *arg, real *dx);
static void (*maxpool2d_relu_forward)(int n, int C, int H, int W, int KH, int KW, int SH,
                                      int SW, const real *x, real *y, int *arg);
static void (*maxpool2d_relu_backward)(int n, int C, int H, int W, int KH, int KW, int SH,
                                       int SW, const real *dy, const int *arg,
                                       const real *y, real *dx);
static void (*avgpool2d_forward)(int n, int C, int H, int W, int KH, int KW, int SH, int SW,
                                 const real *x, real *y);
static void (*avgpool2d_backward)(int n, int C, int H, int W, int KH, int KW, int SH,
                                  int SW, const real *dy, real *dx);
static void (*bn2d_forward)(int n, int C, int S, int train, double m, double eps,
                            const real *x, const real *gamma, const real *beta,
                            real *run_mean, real *run_var, double *mean, double *var,
                            double *rstd, real *xhat, real *y);
static void (*bn2d_backward)(int n, int C, int S, const real *dy, const real *xhat,
                             const real *gamma, const double *rstd, double *sdy,
                             double *sdyx, real *dgamma, real *dbeta, real *dx);
static void (*maxpool2d_bn_relu_forward)(int n, int C, int H, int W, int KH, int KW, int SH,
                                         int SW, const real *x, const double *mean,
                                         const double *rstd, const real *gamma,
                                         const real *beta, real *xhat, real *z, real *y,
                                         int *arg);
static void (*maxpool2d_relu_bn_backward)(int n, int C, int H, int W, int KH, int KW, int SH,
                                          int SW, const real *g, const int *arg, const real *y,
                                          const real *xhat, const real *gamma,
                                          const double *rstd, double *sdy, double *sdyx,
                                          real *dgamma, real *dbeta, real *z, real *dx);
#endif

#ifdef MLPC_KERNEL_BIND
/* Sets each pointer above to find(name, f64, fma): mlpc's copy of that
   kernel in this unit's precision (f64: double) and arithmetic (fma:
   MLPC_FMA). Returns the name of one that find lacks, or 0. */
typedef void (*MlpcKernelFn)(void);
#ifdef MLPC_FMA
#define MLPC_BIND_FMA 1
#else
#define MLPC_BIND_FMA 0
#endif
const char *mlpc_bind(MlpcKernelFn (*find)(const char *name, int f64, int fma)) {
#define BIND_(name)                                                                   \
  if (!(name = (__typeof__(name))find(#name, sizeof(real) == 8, MLPC_BIND_FMA)))      \
    return #name;
#define ACT_BIND_(e, name, ...) BIND_(act_##name) BIND_(act_##name##_back)
  RT_KERNELS_SMALL(BIND_)
  ACTS(ACT_BIND_)
#ifdef MLPC_KERNEL_PROTOTYPES
  RT_KERNELS_DENSE(BIND_)
#endif
#undef BIND_
#undef ACT_BIND_
  return 0;
}
#endif

#ifndef MLPC_KERNEL_PROTOTYPES
#ifndef MLPC_KERNEL /* inlined into each call, so that its sizes are constants */
#ifdef __GNUC__
#define MLPC_KERNEL static inline __attribute__((always_inline))
#else
#define MLPC_KERNEL static inline
#endif
#endif
#ifndef MLPC_KERNEL_PART /* a kernel's alternative ways, chosen by its sizes */
#define MLPC_KERNEL_PART MLPC_KERNEL
#endif

/* Block sizes: MM_OB outputs (8 vectors of 64 bytes) are summed in
   registers at once; masks cover 64 rows or columns. */
#define MM_OB (512 / (int)sizeof(real))
#define MM_RB (128 / (int)sizeof(real))
#define MM_MIN(a, b) ((a) < (b) ? (a) : (b))
#ifdef __GNUC__ /* helpers inlined into each call, with its constant sizes */
#define MM_INLINE static inline __attribute__((always_inline))
#else
#define MM_INLINE static inline
#endif

#ifndef MLPC_KERNEL_BITS
#define MLPC_KERNEL_BITS
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif
typedef unsigned long long mm_mask;

/* The index of the lowest set bit of m != 0. */
static inline int mm_ctz(mm_mask m) {
#ifdef __GNUC__
  return __builtin_ctzll(m);
#else
  int i = 0;
  for (; !(m & 1); m >>= 1)
    i++;
  return i;
#endif
}
#endif

/* Where the nonzeros of x[0..64) are: bit i set when x[i] != 0 (one
   compare per vector where the target has them). */
MM_INLINE mm_mask mm_rowmask64(const real *x) {
  mm_mask m = 0;
#if defined(MLPC_SCALAR)
  for (int i = 0; i < 64; i++)
    m |= (mm_mask)(x[i] != 0) << i;
#elif defined(__AVX512F__)
  for (int i = 0; i < 64; i += 64 / (int)sizeof(real))
    if (sizeof(real) == 4)
      m |= (mm_mask)_mm512_cmp_ps_mask(_mm512_loadu_ps((const float *)x + i),
                                       _mm512_setzero_ps(), _CMP_NEQ_UQ) << i;
    else
      m |= (mm_mask)_mm512_cmp_pd_mask(_mm512_loadu_pd((const double *)x + i),
                                       _mm512_setzero_pd(), _CMP_NEQ_UQ) << i;
#elif defined(__AVX__)
  for (int i = 0; i < 64; i += 32 / (int)sizeof(real))
    if (sizeof(real) == 4)
      m |= (mm_mask)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps((const float *)x + i),
                                                     _mm256_setzero_ps(), _CMP_NEQ_UQ)) << i;
    else
      m |= (mm_mask)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd((const double *)x + i),
                                                     _mm256_setzero_pd(), _CMP_NEQ_UQ)) << i;
#else
  for (int i = 0; i < 64; i++)
    m |= (mm_mask)(x[i] != 0) << i;
#endif
  return m;
}

/* ---- 64-byte vectors where the target has AVX-512 (and MLPC_SCALAR,
   with which the tests check the plain loops, is not defined): 16 floats
   or 8 doubles. Each operation is the plain loops' own, lane by lane, so
   both give the same bits. ---- */
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(MLPC_SCALAR)
#define MM_SIMD 1
#define MM_V (64 / (int)sizeof(real)) /* reals a vector */
typedef __m512 mm_v;                  /* the bits of a vector of reals */

MM_INLINE mm_v mm_vload(const real *p) { return _mm512_loadu_ps((const float *)p); }

MM_INLINE void mm_vstore(real *p, mm_v v) { _mm512_storeu_ps((float *)p, v); }

/* A vector of copies of a. */
MM_INLINE mm_v mm_vset(real a) {
  return sizeof(real) == 4 ? _mm512_set1_ps((float)a)
                           : _mm512_castpd_ps(_mm512_set1_pd((double)a));
}

/* MAC(acc, a, b) in each lane. */
MM_INLINE mm_v mm_vmac(mm_v acc, mm_v a, mm_v b) {
  __m512d acc_d = _mm512_castps_pd(acc), a_d = _mm512_castps_pd(a), b_d = _mm512_castps_pd(b);
#ifdef MLPC_FMA
  return sizeof(real) == 4 ? _mm512_fmadd_ps(a, b, acc)
                           : _mm512_castpd_ps(_mm512_fmadd_pd(a_d, b_d, acc_d));
#else
  return sizeof(real) == 4 ? _mm512_add_ps(acc, _mm512_mul_ps(a, b))
                           : _mm512_castpd_ps(_mm512_add_pd(acc_d, _mm512_mul_pd(a_d, b_d)));
#endif
}

/* MAC(acc, a, b) in the lanes of k, acc elsewhere: a term skipped where
   its input is zero. */
MM_INLINE mm_v mm_vmac_mask(mm_v acc, unsigned k, mm_v a, mm_v b) {
  __m512d acc_d = _mm512_castps_pd(acc), a_d = _mm512_castps_pd(a), b_d = _mm512_castps_pd(b);
#ifdef MLPC_FMA
  return sizeof(real) == 4
           ? _mm512_mask3_fmadd_ps(a, b, acc, (__mmask16)k)
           : _mm512_castpd_ps(_mm512_mask3_fmadd_pd(a_d, b_d, acc_d, (__mmask8)k));
#else
  return sizeof(real) == 4
           ? _mm512_mask_add_ps(acc, (__mmask16)k, acc, _mm512_mul_ps(a, b))
           : _mm512_castpd_ps(
               _mm512_mask_add_pd(acc_d, (__mmask8)k, acc_d, _mm512_mul_pd(a_d, b_d)));
#endif
}

/* The lanes of v that are not zero (NaN is not zero). */
MM_INLINE unsigned mm_vnonzero(mm_v v) {
  return sizeof(real) == 4
           ? _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ)
           : _mm512_cmp_pd_mask(_mm512_castps_pd(v), _mm512_setzero_pd(), _CMP_NEQ_UQ);
}

/* Keeps v in its register: gcc would otherwise load it again for each
   of its uses, and the loads, not the arithmetic, would set the pace. */
#define MM_KEEP(v) __asm__("" : "+v"(v))

/* Vector k of a block of (nv − 1)·MM_V + tail reals at p (tail in
   1..MM_V): the last vector loads and stores only its tail. */
MM_INLINE mm_v mm_vget(const real *p, int k, int nv, int tail) {
  if (k < nv - 1 || tail == MM_V)
    return mm_vload(p + k * MM_V);
  unsigned lanes = (1u << tail) - 1;
  return sizeof(real) == 4
           ? _mm512_maskz_loadu_ps((__mmask16)lanes, (const float *)p + k * MM_V)
           : _mm512_castpd_ps(_mm512_maskz_loadu_pd((__mmask8)lanes, (const double *)p + k * MM_V));
}

MM_INLINE void mm_vput(real *p, int k, int nv, int tail, mm_v v) {
  unsigned lanes = (1u << tail) - 1;
  if (k < nv - 1 || tail == MM_V)
    mm_vstore(p + k * MM_V, v);
  else if (sizeof(real) == 4)
    _mm512_mask_storeu_ps((float *)p + k * MM_V, (__mmask16)lanes, v);
  else
    _mm512_mask_storeu_pd((double *)p + k * MM_V, (__mmask8)lanes, _mm512_castps_pd(v));
}

/* The lanes of m loaded, the others 0 (and not read); m's lanes stored. */
MM_INLINE mm_v mm_vloadm(const real *p, unsigned m) {
  return sizeof(real) == 4
           ? _mm512_maskz_loadu_ps((__mmask16)m, (const float *)p)
           : _mm512_castpd_ps(_mm512_maskz_loadu_pd((__mmask8)m, (const double *)p));
}

MM_INLINE void mm_vstorem(real *p, unsigned m, mm_v v) {
  if (sizeof(real) == 4)
    _mm512_mask_storeu_ps((float *)p, (__mmask16)m, v);
  else
    _mm512_mask_storeu_pd((double *)p, (__mmask8)m, _mm512_castps_pd(v));
}

/* a + b in each lane. */
MM_INLINE mm_v mm_vadd(mm_v a, mm_v b) {
  return sizeof(real) == 4
           ? _mm512_add_ps(a, b)
           : _mm512_castpd_ps(_mm512_add_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

/* a − b in each lane. */
MM_INLINE mm_v mm_vsub(mm_v a, mm_v b) {
  return sizeof(real) == 4
           ? _mm512_sub_ps(a, b)
           : _mm512_castpd_ps(_mm512_sub_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

/* The lane indices ix[0 .. MM_V) as a vector of indices of reals. */
MM_INLINE __m512i wino_index(const int *ix) {
  return sizeof(real) == 4 ? _mm512_loadu_si512(ix)
                           : _mm512_set_epi64(ix[7], ix[6], ix[5], ix[4], ix[3], ix[2], ix[1],
                                              ix[0]);
}

/* Lane l of the result: lane idx[l] of a's lanes followed by b's. */
MM_INLINE mm_v wino_perm(mm_v a, __m512i idx, mm_v b) {
  return sizeof(real) == 4 ? _mm512_permutex2var_ps(a, idx, b)
                           : _mm512_castpd_ps(_mm512_permutex2var_pd(
                               _mm512_castps_pd(a), idx, _mm512_castps_pd(b)));
}

/* acc + v in the lanes of m, acc elsewhere. */
MM_INLINE mm_v mm_vadd_mask(mm_v acc, unsigned m, mm_v v) {
  __m512d acc_d = _mm512_castps_pd(acc);
  return sizeof(real) == 4
           ? _mm512_mask_add_ps(acc, (__mmask16)m, acc, v)
           : _mm512_castpd_ps(_mm512_mask_add_pd(acc_d, (__mmask8)m, acc_d, _mm512_castps_pd(v)));
}

/* The lanes of a and b in 128-bit quarters chosen by imm (qa0 qa1 qb0 qb1). */
#define MM_QUARTERS(a, b, imm)                                                        \
  (sizeof(real) == 4 ? _mm512_shuffle_f32x4(a, b, imm)                                \
                     : _mm512_castpd_ps(_mm512_shuffle_f64x2(_mm512_castps_pd(a),     \
                                                             _mm512_castps_pd(b), imm)))

/* dst (MM_V rows, ldd apart) = the MM_V × MM_V block at src (rows lds
   apart) transposed: pairs of rows interleaved, then pairs of pairs (for
   float), each 128-bit quarter then holding a column's part; the
   quarters are gathered in two rounds. Only the first nr rows of src
   are read (dst's columns from nr on repeat the last). */
MM_INLINE void mm_transpose_v(const real *src, long lds, int nr, real *dst, long ldd) {
  mm_v r[16], t[16];
  enum { Q = MM_V / 4 }; /* a column's reals in a quarter: 4 float, 2 double */
  for (int i = 0; i < MM_V; i++)
    r[i] = mm_vload(src + MM_MIN(i, nr - 1) * lds);
  for (int i = 0; i < MM_V; i += 2) {
    __m512d a = _mm512_castps_pd(r[i]), b = _mm512_castps_pd(r[i + 1]);
    t[i] = sizeof(real) == 4 ? _mm512_unpacklo_ps(r[i], r[i + 1])
                             : _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    t[i + 1] = sizeof(real) == 4 ? _mm512_unpackhi_ps(r[i], r[i + 1])
                                 : _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
  }
  if (sizeof(real) == 4) /* t[2i + h]: rows 2i, 2i+1 of columns 2h, 2h+1 of each quarter */
    for (int i = 0; i < MM_V; i += 4)
      for (int h = 0; h < 2; h++) {
        __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + 2 + h]);
        r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
      }
  else
    for (int i = 0; i < MM_V; i++)
      r[i] = t[i];
  /* r[Q·g + e]: rows Q·g.. of column e of each quarter */
  for (int e = 0; e < Q; e++) {
    mm_v a0 = MM_QUARTERS(r[e], r[Q + e], 0x88), a1 = MM_QUARTERS(r[e], r[Q + e], 0xdd);
    mm_v b0 = MM_QUARTERS(r[2 * Q + e], r[3 * Q + e], 0x88);
    mm_v b1 = MM_QUARTERS(r[2 * Q + e], r[3 * Q + e], 0xdd);
    mm_vstore(dst + e * ldd, MM_QUARTERS(a0, b0, 0x88));
    mm_vstore(dst + (Q + e) * ldd, MM_QUARTERS(a1, b1, 0x88));
    mm_vstore(dst + (2 * Q + e) * ldd, MM_QUARTERS(a0, b0, 0xdd));
    mm_vstore(dst + (3 * Q + e) * ldd, MM_QUARTERS(a1, b1, 0xdd));
  }
}

/* Runs stmt with NV = count (1..8) as a constant, so that sums held in
   NV registers stay there (MM_CONSTN: with the constant called name);
   MM_VECTORS with the number of vectors a block of ob <= MM_OB reals
   takes. */
#define MM_VECTORS(ob, stmt) MM_CONST8(((ob) + MM_V - 1) / MM_V, stmt)
#define MM_CONST8(count, stmt) MM_CONSTN(NV, count, stmt)
#define MM_CONSTN(name, count, stmt)                                          \
  switch (count) {                                                            \
  case 1: { enum { name = 1 }; stmt; } break;                                 \
  case 2: { enum { name = 2 }; stmt; } break;                                 \
  case 3: { enum { name = 3 }; stmt; } break;                                 \
  case 4: { enum { name = 4 }; stmt; } break;                                 \
  case 5: { enum { name = 5 }; stmt; } break;                                 \
  case 6: { enum { name = 6 }; stmt; } break;                                 \
  case 7: { enum { name = 7 }; stmt; } break;                                 \
  default: { enum { name = 8 }; stmt; } break;                                \
  }
/* MM_CONSTN where the sizes vary (the copies compiled into mlpc,
   MLPC_KERNEL_VARIABLE_SIZES); elsewhere the sizes are constants, and so
   is count once the kernel is inlined: stmt once, count as it is, which
   gives the same code and compiles faster than every case. */
#ifdef MLPC_KERNEL_VARIABLE_SIZES
#define MM_FIXED(name, count, stmt) MM_CONSTN(name, count, stmt)
#else
#define MM_FIXED(name, count, stmt)                                           \
  do {                                                                        \
    const int name = (count);                                                 \
    stmt;                                                                     \
  } while (0)
#endif
#define MM_TAIL(ob, nv) ((ob) - ((nv) - 1) * MM_V)
#endif

/* The same for x[0..ni), ni <= 64. */
MM_INLINE mm_mask mm_rowmask(const real *x, int ni) {
  if (ni == 64)
    return mm_rowmask64(x);
  mm_mask m = 0;
  for (int i = 0; i < ni; i++)
    m |= (mm_mask)(x[i] != 0) << i;
  return m;
}

/* Where the nonzeros of an nr × ni block (nr, ni <= 64) of x are, ld
   elements a row: bit r of cm[i] is set when x[r][i] != 0; cm[ni..64)
   are 0. */
MM_INLINE void mm_colmask(int nr, int ni, int ld, const real *x, mm_mask cm[64]) {
#ifdef MM_SIMD
  if (ni == 64) { /* 8 masks a vector: each row sets its bit where a compare says so */
    __m512i acc[8];
    for (int k = 0; k < 8; k++)
      acc[k] = _mm512_setzero_si512();
    for (int r = 0; r < nr; r++) {
      __m512i bit = _mm512_set1_epi64((long long)(1ULL << r));
      const real *xr = x + (long)r * ld;
      for (int k = 0; k < 8; k++) {
        __mmask8 nz =
          sizeof(real) == 4
            ? (__mmask8)_mm512_cmp_ps_mask(
                _mm512_castps256_ps512(_mm256_loadu_ps((const float *)xr + 8 * k)),
                _mm512_setzero_ps(), _CMP_NEQ_UQ)
            : _mm512_cmp_pd_mask(_mm512_loadu_pd((const double *)xr + 8 * k),
                                 _mm512_setzero_pd(), _CMP_NEQ_UQ);
        acc[k] = _mm512_mask_or_epi64(acc[k], nz, acc[k], bit);
      }
    }
    for (int k = 0; k < 8; k++)
      _mm512_storeu_si512((void *)(cm + 8 * k), acc[k]);
    return;
  }
#endif
  for (int i = 0; i < 64; i++)
    cm[i] = 0;
  for (int r = 0; r < nr; r++)
    for (int i = 0; i < ni; i++)
      cm[i] |= (mm_mask)(x[(long)r * ld + i] != 0) << r;
}

#ifndef MLPC_KERNEL_SMALL_CALLED /* (else mlpc's copy, bound above) */
/* out = x / 255, the pixels as reals: x (len) bytes. */
MLPC_KERNEL void mm_load(int len, const unsigned char *x, real *out) {
  for (int k = 0; k < len; k++)
    out[k] = (real)x[k] / (real)255;
}
#endif

/* One row of y (ob <= MM_OB columns) plus the rows of wt (ld a row)
   picked by the set bits of m, times the matching elements of xr. */
#ifdef MM_SIMD
/* acc += xi · w, a vector at a time: nv vectors, the last tail reals long. */
MM_INLINE void mm_xw_row_v(int nv, int tail, mm_v *acc, real xi, const real *w) {
  mm_v v = mm_vset(xi);
#pragma GCC unroll 8
  for (int k = 0; k < nv; k++)
    acc[k] = mm_vmac(acc[k], v, mm_vget(w, k, nv, tail));
}

/* mm_xw_block a vector at a time. */
MM_INLINE void mm_xw_block_v(int nv, int tail, int ld, const real *xr, const real *wt,
                             mm_mask m, real *yr) {
  mm_v acc[8];
  for (int k = 0; k < nv; k++)
    acc[k] = mm_vget(yr, k, nv, tail);
  for (; m; m &= m - 1)
    mm_xw_row_v(nv, tail, acc, xr[mm_ctz(m)], wt + (long)mm_ctz(m) * ld);
  for (int k = 0; k < nv; k++)
    mm_vput(yr, k, nv, tail, acc[k]);
}

/* Two rows a and b of y at once, each summing its own nonzeros in order:
   one of each per step while both have some, so that two independent
   chains of sums fill the pipelines, then the rest of either. */
MM_INLINE void mm_xw_block2_v(int nv, int tail, int ld, const real *xa, const real *xb,
                              const real *wt, mm_mask ma, mm_mask mb, real *ya, real *yb) {
  mm_v a[8], b[8];
  for (int k = 0; k < nv; k++) {
    a[k] = mm_vget(ya, k, nv, tail);
    b[k] = mm_vget(yb, k, nv, tail);
  }
  for (; ma && mb; ma &= ma - 1, mb &= mb - 1) {
    int i = mm_ctz(ma), j = mm_ctz(mb);
    mm_xw_row_v(nv, tail, a, xa[i], wt + (long)i * ld);
    mm_xw_row_v(nv, tail, b, xb[j], wt + (long)j * ld);
  }
  for (; ma; ma &= ma - 1)
    mm_xw_row_v(nv, tail, a, xa[mm_ctz(ma)], wt + (long)mm_ctz(ma) * ld);
  for (; mb; mb &= mb - 1)
    mm_xw_row_v(nv, tail, b, xb[mm_ctz(mb)], wt + (long)mm_ctz(mb) * ld);
  for (int k = 0; k < nv; k++) {
    mm_vput(ya, k, nv, tail, a[k]);
    mm_vput(yb, k, nv, tail, b[k]);
  }
}
#endif

MM_INLINE void mm_xw_block(int ob, int ld, const real *xr, const real *wt, mm_mask m,
                               real *yr) {
#ifdef MM_SIMD
  MM_VECTORS(ob, mm_xw_block_v(NV, MM_TAIL(ob, NV), ld, xr, wt, m, yr));
  return;
#endif
  real acc[MM_OB];
  for (int o = 0; o < ob; o++)
    acc[o] = yr[o];
  for (; m; m &= m - 1) {
    int i = mm_ctz(m);
    real v = xr[i];
    const real *w = wt + (long)i * ld;
    for (int o = 0; o < ob; o++)
      acc[o] = MAC(acc[o], v, w[o]);
  }
  for (int o = 0; o < ob; o++)
    yr[o] = acc[o];
}

/* Rows a and b of y in one block: mm_xw_block for each, together where
   there are vectors. */
MM_INLINE void mm_xw_block2(int ob, int ld, const real *xa, const real *xb, const real *wt,
                            mm_mask ma, mm_mask mb, real *ya, real *yb) {
#ifdef MM_SIMD
  MM_VECTORS(ob, mm_xw_block2_v(NV, MM_TAIL(ob, NV), ld, xa, xb, wt, ma, mb, ya, yb));
  return;
#endif
  mm_xw_block(ob, ld, xa, wt, ma, ya);
  mm_xw_block(ob, ld, xb, wt, mb, yb);
}

/* n rows of y (ldy reals apart, ob <= MM_OB columns) plus the rows of w
   (ldw apart) picked by the nonzeros of x's rows (ldx apart, ni <= 64
   columns), times them; two rows at a time. */
MM_INLINE void mm_xw_rows(int n, int ni, int ob, const real *x, int ldx, const real *w,
                          int ldw, real *y, int ldy) {
  int r = 0;
  for (; r + 1 < n; r += 2) {
    const real *xa = x + (long)r * ldx, *xb = xa + ldx;
    mm_xw_block2(ob, ldw, xa, xb, w, mm_rowmask(xa, ni), mm_rowmask(xb, ni),
                 y + (long)r * ldy, y + (long)(r + 1) * ldy);
  }
  if (r < n)
    mm_xw_block(ob, ldw, x + (long)r * ldx, w, mm_rowmask(x + (long)r * ldx, ni),
                y + (long)r * ldy);
}

#ifdef MM_SIMD
/* mm_xw for narrow layers (O <= MM_V), where a row of y is one vector
   and its sums, a chain or two at a time, would wait on each step's
   latency. A vector holds MM_V rows of one column of y instead: x's
   rows, 64 columns at a time, are transposed into xt, and column o
   sums xt's rows times wt[i][o], each term masked where x is 0 (those
   mm_xw_block skips), from the bias, i increasing; then y's rows are
   put back in order. */
MLPC_KERNEL_PART void mm_xw_narrow(int n, int O, int I, const real *x, const real *wt,
                                   const real *b, real *y) {
  real xt[64 * MM_V] = {0}, t[MM_V * MM_V];
  int oc = MM_MIN(O, MM_V); /* (O, which the caller keeps within MM_V) */
  for (int r0 = 0; r0 < n; r0 += MM_V) {
    int nr = MM_MIN(MM_V, n - r0);
    const real *xr = x + (long)r0 * I;
    mm_v acc[MM_V];
    for (int o = 0; o < oc; o++)
      acc[o] = mm_vset(b ? b[o] : (real)0);
    for (int i0 = 0; i0 < I; i0 += 64) {
      int ni = MM_MIN(64, I - i0), nb = ni / MM_V * MM_V;
      for (int i = 0; i < nb; i += MM_V)
        mm_transpose_v(xr + i0 + i, I, nr, xt + i * MM_V, MM_V);
      for (int i = nb; i < ni; i++)
        for (int r = 0; r < nr; r++)
          xt[i * MM_V + r] = xr[(long)r * I + i0 + i];
      for (int i = 0; i < ni; i++) {
        mm_v xv = mm_vload(xt + i * MM_V);
        unsigned nz = mm_vnonzero(xv);
        const real *w = wt + (long)(i0 + i) * O;
        for (int o = 0; o < oc; o++)
          acc[o] = mm_vmac_mask(acc[o], nz, xv, mm_vset(w[o]));
      }
    }
    for (int o = 0; o < oc; o++)
      mm_vstore(t + o * MM_V, acc[o]);
    for (int r = 0; r < nr; r++)
      for (int o = 0; o < oc; o++)
        y[(long)(r0 + r) * O + o] = t[o * MM_V + r];
  }
}
#endif

/* y = x·wt + b: x (n, I), wt (I, O), b (O) or null (no bias: 0), y (n, O).
   For each block of
   64 columns of x (and so 64 rows of wt, which stay in cache), each
   block of MM_OB columns of y: the nonzeros of each row; narrow layers
   by mm_xw_narrow. */
MLPC_KERNEL void mm_xw(int n, int O, int I, const real *x, const real *wt, const real *b,
                       real *y) {
#ifdef MM_SIMD
  if (O <= MM_V) {
    mm_xw_narrow(n, O, I, x, wt, b, y);
    return;
  }
#endif
  for (int r = 0; r < n; r++)
    for (int o = 0; o < O; o++)
      y[(long)r * O + o] = b ? b[o] : (real)0;
  for (int i0 = 0; i0 < I; i0 += 64)
    for (int o0 = 0; o0 < O; o0 += MM_OB) {
      int ni = MM_MIN(64, I - i0);
      const real *w = wt + (long)i0 * O + o0;
      if (O - o0 >= MM_OB) /* (a constant width where it can be) */
        mm_xw_rows(n, ni, MM_OB, x + i0, I, w, O, y + o0, O);
      else
        mm_xw_rows(n, ni, O - o0, x + i0, I, w, O, y + o0, O);
    }
}

#ifdef MM_SIMD
/* mm_dw_pair a vector at a time (nv vectors, the last tail reals long):
   each vector of dy is loaded once for both rows of dwt. */
MM_INLINE void mm_dw_pair_v(int nv, int tail, int ld, int I, const real *x, const real *dy,
                            mm_mask m, int first, real *d0, real *d1) {
  mm_v a0[8], a1[8];
  for (int k = 0; k < nv; k++) {
    a0[k] = first ? mm_vset(0) : mm_vget(d0, k, nv, tail);
    a1[k] = first ? mm_vset(0) : mm_vget(d1, k, nv, tail);
  }
  for (; m; m &= m - 1) {
    int r = mm_ctz(m);
    mm_v v0 = mm_vset(x[(long)r * I]), v1 = mm_vset(x[(long)r * I + 1]);
    const real *g = dy + (long)r * ld;
#pragma GCC unroll 8
    for (int k = 0; k < nv; k++) {
      mm_v gv = mm_vget(g, k, nv, tail);
      MM_KEEP(gv);
      a0[k] = mm_vmac(a0[k], v0, gv);
      a1[k] = mm_vmac(a1[k], v1, gv);
    }
  }
  for (int k = 0; k < nv; k++) {
    mm_vput(d0, k, nv, tail, a0[k]);
    mm_vput(d1, k, nv, tail, a1[k]);
  }
}

/* The same for one row of dwt. */
MM_INLINE void mm_dw_one_v(int nv, int tail, int ld, int I, const real *x, const real *dy,
                           mm_mask m, int first, real *d0) {
  mm_v a0[8];
  for (int k = 0; k < nv; k++)
    a0[k] = first ? mm_vset(0) : mm_vget(d0, k, nv, tail);
  for (; m; m &= m - 1) {
    int r = mm_ctz(m);
    mm_v v0 = mm_vset(x[(long)r * I]);
    const real *g = dy + (long)r * ld;
#pragma GCC unroll 8
    for (int k = 0; k < nv; k++)
      a0[k] = mm_vmac(a0[k], v0, mm_vget(g, k, nv, tail));
  }
  for (int k = 0; k < nv; k++)
    mm_vput(d0, k, nv, tail, a0[k]);
}
#endif

/* Two rows i, i+1 of dwt (ob <= MM_OB columns) plus the rows of dy (ld a
   row) picked by the set bits of m, times x[r][i] and x[r][i+1]. */
MM_INLINE void mm_dw_pair(int ob, int ld, int I, const real *x, const real *dy,
                              mm_mask m, int first, real *d0, real *d1) {
#ifdef MM_SIMD
  MM_VECTORS(ob, mm_dw_pair_v(NV, MM_TAIL(ob, NV), ld, I, x, dy, m, first, d0, d1));
  return;
#endif
  real a0[MM_OB], a1[MM_OB];
  for (int o = 0; o < ob; o++) {
    a0[o] = first ? 0 : d0[o];
    a1[o] = first ? 0 : d1[o];
  }
  for (; m; m &= m - 1) {
    int r = mm_ctz(m);
    real v0 = x[(long)r * I], v1 = x[(long)r * I + 1];
    const real *g = dy + (long)r * ld;
    for (int o = 0; o < ob; o++) {
      a0[o] = MAC(a0[o], v0, g[o]);
      a1[o] = MAC(a1[o], v1, g[o]);
    }
  }
  for (int o = 0; o < ob; o++) {
    d0[o] = a0[o];
    d1[o] = a1[o];
  }
}

/* The same for one row i. */
MM_INLINE void mm_dw_one(int ob, int ld, int I, const real *x, const real *dy,
                             mm_mask m, int first, real *d0) {
#ifdef MM_SIMD
  MM_VECTORS(ob, mm_dw_one_v(NV, MM_TAIL(ob, NV), ld, I, x, dy, m, first, d0));
  return;
#endif
  real a0[MM_OB];
  for (int o = 0; o < ob; o++)
    a0[o] = first ? 0 : d0[o];
  for (; m; m &= m - 1) {
    int r = mm_ctz(m);
    real v0 = x[(long)r * I];
    const real *g = dy + (long)r * ld;
    for (int o = 0; o < ob; o++)
      a0[o] = MAC(a0[o], v0, g[o]);
  }
  for (int o = 0; o < ob; o++)
    d0[o] = a0[o];
}

/* p += neg_lr · d over nr rows of ob columns, ldd and ldp reals a row:
   plain SGD's update, as opt_sgd computes it. */
MM_INLINE void mm_sgd_rows(int nr, int ob, int ldd, const real *d, real neg_lr, int ldp,
                           real *p) {
  for (int r = 0; r < nr; r++)
    for (int o = 0; o < ob; o++)
      p[(long)r * ldp + o] += neg_lr * d[(long)r * ldd + o];
}

/* One block of ob columns of dwt from rows r0..r0+nr of dy and x: column
   pairs of x share one pass over the rows where either is nonzero (and
   pixels next to each other are mostly zero together). Unless wt is
   null (it is given with the last block of rows), each 64 rows of the
   sums, complete and still in cache, update wt's by plain SGD; if they
   are also the first block, they go to a scratch block, not to dwt. */
MM_INLINE void mm_dw_rows(int ob, int O, int I, int nr, const real *dy, const real *x,
                          int first, real *dwt, real *wt, real neg_lr) {
  real scratch[64 * MM_OB];
  for (int i0 = 0; i0 < I; i0 += 64) {
    int ni = MM_MIN(64, I - i0), ld = wt && first ? MM_OB : O;
    real *d = wt && first ? scratch : dwt + (long)i0 * O;
    mm_mask m[64];
    mm_colmask(nr, ni, I, x + i0, m);
    int i = 0;
    for (; i + 1 < ni; i += 2) /* (a constant first: sums start in registers) */
      if (first)
        mm_dw_pair(ob, O, I, x + i0 + i, dy, m[i] | m[i + 1], 1, d + (long)i * ld,
                   d + (long)(i + 1) * ld);
      else
        mm_dw_pair(ob, O, I, x + i0 + i, dy, m[i] | m[i + 1], 0, d + (long)i * ld,
                   d + (long)(i + 1) * ld);
    if (i < ni)
      mm_dw_one(ob, O, I, x + i0 + i, dy, m[i], first, d + (long)i * ld);
    if (wt)
      mm_sgd_rows(ni, ob, ld, d, neg_lr, O, wt + (long)i0 * O);
  }
}

#ifdef MM_SIMD
/* oc <= 4 rows of dW = dyᵀ·x (O rows by I; dy's columns from dy, x's
   from x), nv <= 4 vectors of their columns (the last tail reals long),
   into d (MM_OB reals a row): each sum runs along the batch rows, its
   terms masked where x is zero. */
MM_INLINE void mm_dw_narrow_v(int nv, int tail, int n, int O, int I, int oc, const real *dy,
                              const real *x, real *d) {
  mm_v acc[4][4];
  for (int q = 0; q < 4; q++)
    for (int k = 0; k < nv; k++)
      acc[q][k] = mm_vset(0);
  for (int r = 0; r < n; r++) {
    mm_v xv[4];
    unsigned nz[4];
    for (int k = 0; k < nv; k++)
      xv[k] = mm_vget(x + (long)r * I, k, nv, tail), nz[k] = mm_vnonzero(xv[k]);
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) { /* (all 4, so that the sums stay in registers; oc stored) */
      mm_v dv = mm_vset(dy[(long)r * O + (q < oc ? q : 0)]);
      for (int k = 0; k < nv; k++)
        acc[q][k] = mm_vmac_mask(acc[q][k], nz[k], xv[k], dv);
    }
  }
  for (int q = 0; q < oc; q++)
    for (int k = 0; k < nv; k++)
      mm_vput(d + q * MM_OB, k, nv, tail, acc[q][k]);
}

/* mm_dw_step for narrow layers (O <= MM_V): each output column of dwt
   has one vector at most, so mm_dw_rows would chain its sums through
   too few registers. dW, O rows by I, is computed instead, 4 vectors
   of columns by 4 rows at a time, and transposed into dwt. */
MLPC_KERNEL_PART void mm_dw_narrow(int n, int O, int I, const real *dy, const real *x,
                                   real *dwt, real *wt, real neg_lr) {
  real d[MM_V * MM_OB] = {0}, t[MM_V * MM_V]; /* dW's rows, for MM_OB columns */
  for (int i0 = 0; i0 < I; i0 += MM_OB) {
    int ib = MM_MIN(MM_OB, I - i0);
    for (int k0 = 0; k0 < ib; k0 += 4 * MM_V) {
      int kb = MM_MIN(4 * MM_V, ib - k0), nv = (kb + MM_V - 1) / MM_V;
      for (int o0 = 0; o0 < O; o0 += 4) {
        int tl = kb - (nv - 1) * MM_V, oc = MM_MIN(4, O - o0);
        const real *xk = x + i0 + k0;
        real *dk = d + o0 * MM_OB + k0;
        if (nv == 4) /* (constants, so that the sums stay in registers) */
          mm_dw_narrow_v(4, tl, n, O, I, oc, dy + o0, xk, dk);
        else if (nv == 3)
          mm_dw_narrow_v(3, tl, n, O, I, oc, dy + o0, xk, dk);
        else if (nv == 2)
          mm_dw_narrow_v(2, tl, n, O, I, oc, dy + o0, xk, dk);
        else
          mm_dw_narrow_v(1, tl, n, O, I, oc, dy + o0, xk, dk);
      }
    }
    int kv = ib / MM_V * MM_V, oc = MM_MIN(O, MM_V);
    for (int k = 0; k < kv; k += MM_V) { /* dW's rows (O of MM_V) transposed, a block at a time */
      mm_transpose_v(d + k, MM_OB, MM_V, t, MM_V);
      for (int q = 0; q < MM_V; q++)
        mm_vstorem(dwt + (long)(i0 + k + q) * O, (1u << oc) - 1, mm_vload(t + q * MM_V));
    }
    for (int k = kv; k < ib; k++)
      for (int o = 0; o < oc; o++)
        dwt[(long)(i0 + k) * O + o] = d[o * MM_OB + k];
    if (wt)
      mm_sgd_rows(ib, O, O, dwt + (long)i0 * O, neg_lr, O, wt + (long)i0 * O);
  }
}
#endif

/* mm_dw_rows on a whole block of MM_OB columns, and on the last, narrower
   one: where sizes vary, each a function of its own, the first with its
   width a constant. */
MLPC_KERNEL_PART void mm_dw_full(int O, int I, int nr, const real *dy, const real *x,
                                 int first, real *dwt, real *wt, real neg_lr) {
  mm_dw_rows(MM_OB, O, I, nr, dy, x, first, dwt, wt, neg_lr);
}
MLPC_KERNEL_PART void mm_dw_part(int ob, int O, int I, int nr, const real *dy, const real *x,
                                 int first, real *dwt, real *wt, real neg_lr) {
  mm_dw_rows(ob, O, I, nr, dy, x, first, dwt, wt, neg_lr);
}

/* mm_dw, or with wt, mm_dw_sgd. */
MM_INLINE void mm_dw_step(int n, int O, int I, const real *dy, const real *x, real *dwt,
                          real *wt, real neg_lr) {
#ifdef MM_SIMD
  if (O <= MM_V && n > 0) {
    mm_dw_narrow(n, O, I, dy, x, dwt, wt, neg_lr);
    return;
  }
#endif
  if (n <= 0) {
    for (long k = 0; k < (long)I * O; k++)
      dwt[k] = 0;
    if (wt)
      mm_sgd_rows(I, O, O, dwt, neg_lr, O, wt);
  }
  for (int r0 = 0; r0 < n; r0 += 64) {
    int nr = MM_MIN(64, n - r0);
    const real *dyr = dy + (long)r0 * O, *xr = x + (long)r0 * I;
    real *w = r0 + 64 >= n ? wt : 0; /* the last block of rows completes dwt */
    for (int o0 = 0; o0 < O; o0 += MM_OB)
      if (O - o0 >= MM_OB)
        mm_dw_full(O, I, nr, dyr + o0, xr, r0 == 0, dwt + o0, w ? w + o0 : 0, neg_lr);
      else
        mm_dw_part(O - o0, O, I, nr, dyr + o0, xr, r0 == 0, dwt + o0, w ? w + o0 : 0,
                   neg_lr);
  }
}

/* dwt = xᵀ·dy: dy (n, O), x (n, I), dwt (I, O). Rows in blocks of 64,
   each block of MM_OB columns of dwt at a time. */
MLPC_KERNEL void mm_dw(int n, int O, int I, const real *dy, const real *x, real *dwt) {
  mm_dw_step(n, O, I, dy, x, dwt, 0, 0);
}

/* Plain SGD on the weights whose gradient mm_dw computes: wt += neg_lr ·
   xᵀ·dy, the same bits as mm_dw followed by opt_sgd without momentum or
   weight decay, but fused: each 64 rows of the gradient update wt while
   they are in cache. dwt is scratch here: what it holds afterwards is
   unspecified (with n <= 64 the gradient of a wide layer never reaches
   it). */
MLPC_KERNEL void mm_dw_sgd(int n, int O, int I, const real *dy, const real *x, real *dwt,
                           real *wt, real neg_lr) {
  mm_dw_step(n, O, I, dy, x, dwt, wt, neg_lr);
}

#ifdef MM_SIMD
/* mm_dx_tile, starting from 0, a vector at a time: MM_RB rows are two
   vectors, and each of the ni columns sums in two registers. */
MM_INLINE void mm_dx_tile_v(int ni, int nr, int oc, int ld, int ldx, const real *dyt,
                            const real *wt, real *dx) {
  mm_v a[8][2];
  for (int k = 0; k < ni; k++)
    a[k][0] = a[k][1] = mm_vset(0);
  for (int o = 0; o < oc; o++) {
    mm_v d0 = mm_vload(dyt + o * MM_RB), d1 = mm_vload(dyt + o * MM_RB + MM_V);
    MM_KEEP(d0);
    MM_KEEP(d1);
#pragma GCC unroll 8
    for (int k = 0; k < ni; k++) {
      mm_v w = mm_vset(wt[(long)k * ld + o]);
      a[k][0] = mm_vmac(a[k][0], d0, w);
      a[k][1] = mm_vmac(a[k][1], d1, w);
    }
  }
  real col[MM_RB];
  for (int k = 0; k < ni; k++) {
    mm_vstore(col, a[k][0]);
    mm_vstore(col + MM_V, a[k][1]);
    for (int r = 0; r < nr; r++)
      dx[(long)r * ldx + k] = col[r];
  }
}
#endif

/* A tile of dx: ni <= 8 columns by MM_RB rows (nr of them real), from
   dyt (oc, MM_RB), the rows' dy transposed, and wt's rows i (ld a row).
   Continues the sums in dx unless first. */
MM_INLINE void mm_dx_tile(int ni, int nr, int oc, int ld, int ldx, const real *dyt,
                              const real *wt, int first, real *dx) {
#ifdef MM_SIMD
  if (first) {
    MM_CONST8(ni, mm_dx_tile_v(NV, nr, oc, ld, ldx, dyt, wt, dx));
    return;
  }
#endif
  real acc[8][MM_RB];
  ni = MM_MIN(ni, 8); /* (it is: for the compiler's bounds checks) */
  for (int k = 0; k < ni; k++)
    for (int r = 0; r < MM_RB; r++)
      acc[k][r] = first || r >= nr ? 0 : dx[(long)r * ldx + k];
  for (int o = 0; o < oc; o++)
    for (int k = 0; k < ni; k++) {
      real w = wt[(long)k * ld + o];
      for (int r = 0; r < MM_RB; r++)
        acc[k][r] = MAC(acc[k][r], dyt[o * MM_RB + r], w);
    }
  for (int k = 0; k < ni; k++)
    for (int r = 0; r < nr; r++)
      dx[(long)r * ldx + k] = acc[k][r];
}

/* mm_dx for wide layers: the sums run along O, contiguous in both dy and
   wt, so MM_RB rows of dy are transposed (256 columns at a time) and dx
   computed in tiles of 8 columns by MM_RB rows. */
MLPC_KERNEL_PART void mm_dx_wide(int n, int O, int I, const real *dy, const real *wt, real *dx) {
  real dyt[256 * MM_RB];
  if (O <= 0)
    for (long k = 0; k < (long)n * I; k++)
      dx[k] = 0;
  for (int r0 = 0; r0 < n; r0 += MM_RB) {
    int nr = MM_MIN(MM_RB, n - r0);
    for (int o0 = 0; o0 < O; o0 += 256) {
      int oc = MM_MIN(256, O - o0);
      for (int o = 0; o < oc; o++)
        for (int r = 0; r < MM_RB; r++)
          dyt[o * MM_RB + r] = r < nr ? dy[(long)(r0 + r) * O + o0 + o] : 0;
      for (int i = 0; i < I; i += 8)
        if (I - i >= 8)
          mm_dx_tile(8, nr, oc, O, I, dyt, wt + (long)i * O + o0, o0 == 0,
                     dx + (long)r0 * I + i);
        else
          mm_dx_tile(I - i, nr, oc, O, I, dyt, wt + (long)i * O + o0, o0 == 0,
                     dx + (long)r0 * I + i);
    }
  }
}

/* mm_dx for narrow layers (O <= 64), whose wt is cheap to transpose:
   mm_xw's product with the roles of I and O swapped, run as mm_xw runs,
   on wt's 64 columns at a time transposed into a block of MM_OB. */
MLPC_KERNEL_PART void mm_dx_narrow(int n, int O, int I, const real *dy, const real *wt, real *dx) {
  real w[64 * MM_OB];
  for (int i0 = 0; i0 < I; i0 += MM_OB) {
    int ib = MM_MIN(MM_OB, I - i0);
    for (int r = 0; r < n; r++)
      for (int k = 0; k < ib; k++)
        dx[(long)r * I + i0 + k] = 0;
    for (int o0 = 0; o0 < O; o0 += 64) {
      int oc = MM_MIN(64, O - o0);
      for (int k = 0; k < ib; k++)
        for (int o = 0; o < oc; o++)
          w[o * MM_OB + k] = wt[(long)(i0 + k) * O + o0 + o];
      if (ib == MM_OB)
        mm_xw_rows(n, oc, MM_OB, dy + o0, O, w, MM_OB, dx + i0, I);
      else
        mm_xw_rows(n, oc, ib, dy + o0, O, w, MM_OB, dx + i0, I);
    }
  }
}

/* dx = dy·wtᵀ: dy (n, O), wt (I, O), dx (n, I); dx[r][i] sums
   dy[r][o]·wt[i][o] in increasing o. */
MLPC_KERNEL void mm_dx(int n, int O, int I, const real *dy, const real *wt, real *dx) {
  if (O <= 64)
    mm_dx_narrow(n, O, I, dy, wt, dx);
  else
    mm_dx_wide(n, O, I, dy, wt, dx);
}

#ifndef MLPC_KERNEL_SMALL_CALLED /* (else mlpc's copy, bound above) */
/* db = the column sums of dy: dy (n, O), db (O). */
MLPC_KERNEL void mm_db(int n, int O, const real *dy, real *db) {
  for (int o = 0; o < O; o++)
    db[o] = 0;
  for (int r = 0; r < n; r++)
    for (int o = 0; o < O; o++)
      db[o] += dy[(long)r * O + o];
}
#endif

/* dx = ((dy − a) − xhat·b)·g over len elements, in real: batchnorm's
   input gradient, gamma·rstd·(dy − Σdy/N − xhat·Σ(dy·xhat)/N), with
   a = Σdy/N, b = Σ(dy·xhat)/N and g = gamma·rstd computed in double and
   rounded: in float, as PyTorch's CPU kernel computes it. */
MM_INLINE void bn_dx(long len, long stride, const real *dy, const real *xhat, real a, real b,
                     real g, real *dx) {
  for (long i = 0; i < len; i++)
    dx[i * stride] = ((dy[i * stride] - a) - xhat[i * stride] * b) * g;
}

#ifndef MLPC_KERNEL_SMALL_CALLED /* (else mlpc's copy, bound above) */
/* ---- BatchNorm1d, per feature over the n rows (docs/semantics.md) ---- */

/* Forward. In training, each feature's mean and biased variance over the
   batch (its rows summed in increasing order, in double) update the
   running statistics with momentum m; in evaluation the running
   statistics stand in. xhat = (x − mean)·rstd, y = gamma·xhat + beta.
   x, xhat, y (n, C); the rest (C); mean, var and rstd are the caller's,
   rstd kept for the backward pass. The loops run along rows, so that
   they vectorise over the features. */
MLPC_KERNEL void bn_forward(int n, int C, int train, double m, double eps, const real *x,
                            const real *gamma, const real *beta, real *run_mean,
                            real *run_var, double *mean, double *var, double *rstd,
                            real *xhat, real *y) {
  if (train) {
    for (int c = 0; c < C; c++)
      mean[c] = var[c] = 0;
    for (int r = 0; r < n; r++)
      for (int c = 0; c < C; c++)
        mean[c] += x[(long)r * C + c];
    for (int c = 0; c < C; c++)
      mean[c] /= n;
    for (int r = 0; r < n; r++)
      for (int c = 0; c < C; c++) {
        double d = x[(long)r * C + c] - mean[c];
        var[c] += d * d;
      }
    for (int c = 0; c < C; c++) {
      var[c] /= n;
      run_mean[c] = (real)((1 - m) * run_mean[c] + m * mean[c]);
      run_var[c] = (real)((1 - m) * run_var[c] + m * var[c] * n / (n - 1));
    }
  } else
    for (int c = 0; c < C; c++)
      mean[c] = run_mean[c], var[c] = run_var[c];
  for (int c = 0; c < C; c++)
    rstd[c] = 1 / sqrt(var[c] + eps);
  for (int r = 0; r < n; r++)
    for (int c = 0; c < C; c++) {
      real xh = (real)((x[(long)r * C + c] - mean[c]) * rstd[c]);
      xhat[(long)r * C + c] = xh;
      y[(long)r * C + c] = gamma[c] * xh + beta[c];
    }
}

/* Backward (training): dgamma = Σ dy·xhat, dbeta = Σ dy (in double),
   and dx by bn_dx. sdy, sdyx (C) are the caller's scratch. */
MLPC_KERNEL void bn_backward(int n, int C, const real *dy, const real *xhat,
                             const real *gamma, const double *rstd, double *sdy,
                             double *sdyx, real *dgamma, real *dbeta, real *dx) {
  for (int c = 0; c < C; c++)
    sdy[c] = sdyx[c] = 0;
  for (int r = 0; r < n; r++)
    for (int c = 0; c < C; c++) {
      sdy[c] += dy[(long)r * C + c];
      sdyx[c] += dy[(long)r * C + c] * xhat[(long)r * C + c];
    }
  for (int c = 0; c < C; c++) {
    dgamma[c] = (real)sdyx[c];
    dbeta[c] = (real)sdy[c];
  }
  for (int c = 0; c < C; c++)
    bn_dx(n, C, dy + c, xhat + c, (real)(sdy[c] / n), (real)(sdyx[c] / n),
          (real)(gamma[c] * rstd[c]), dx + c);
}

/* ---- LayerNorm, per row over its D features (docs/semantics.md) ---- */

/* Forward, the same in training and evaluation: each row's mean and
   biased variance over its features (summed in increasing order, in
   double), xhat = (x − mean)·rstd, y = gamma·xhat + beta. x, xhat, y
   (n, D); gamma, beta (D); rstd (n), kept for the backward pass. */
MLPC_KERNEL void ln_forward(int n, int D, double eps, const real *x, const real *gamma,
                            const real *beta, double *rstd, real *xhat, real *y) {
  for (int r = 0; r < n; r++) {
    const real *xr = x + (long)r * D;
    double s = 0, v = 0;
    for (int c = 0; c < D; c++)
      s += xr[c];
    double mean = s / D;
    for (int c = 0; c < D; c++)
      v += (xr[c] - mean) * (xr[c] - mean);
    rstd[r] = 1 / sqrt(v / D + eps);
    for (int c = 0; c < D; c++) {
      real xh = (real)((xr[c] - mean) * rstd[r]);
      xhat[(long)r * D + c] = xh;
      y[(long)r * D + c] = gamma[c] * xh + beta[c];
    }
  }
}

/* Backward: dgamma = Σ dy·xhat and dbeta = Σ dy over the rows, and, with
   g = gamma·dy, dx = rstd/D · (D·g − Σg − xhat·Σ(g·xhat)) over each
   row's features; no dx when dx is 0 (the model's first layer). */
MLPC_KERNEL void ln_backward(int n, int D, const real *dy, const real *xhat, const real *gamma,
                             const double *rstd, real *dgamma, real *dbeta, real *dx) {
  for (int c = 0; c < D; c++)
    dgamma[c] = dbeta[c] = 0;
  for (int r = 0; r < n; r++) {
    const real *dyr = dy + (long)r * D, *xh = xhat + (long)r * D;
    double sg = 0, sgx = 0;
    for (int c = 0; c < D; c++) {
      dgamma[c] += dyr[c] * xh[c];
      dbeta[c] += dyr[c];
      double g = (double)gamma[c] * dyr[c];
      sg += g;
      sgx += g * xh[c];
    }
    if (dx)
      for (int c = 0; c < D; c++) {
        double g = (double)gamma[c] * dyr[c];
        dx[(long)r * D + c] = (real)((D * g - sg - xh[c] * sgx) * rstd[r] / D);
      }
  }
}
#endif

/* ---- convolutions, pooling and BatchNorm2d: NCHW, batch-major ----

   A sample's image (C, H, W) holds x[c][h][w] at (c·H + h)·W + w; the
   batch is n of them in a row. Output sizes are PyTorch's floor mode,
   OH = (H + 2·PH − KH)/SH + 1 (OW likewise; the pools have no padding).
   A convolution is a product with the im2col matrix of its input: col
   (K, P) for one sample, K = C·KH·KW rows k = (c, i, j) and P = OH·OW
   columns p = (oh, ow), col[k][p] = x[c][oh·SH − PH + i][ow·SW − PW + j],
   0 in the padding. Its sums, each from the bias or 0, one term at a
   time with MAC: y[o][p] along k; dw[o][k] along the batch's samples,
   then p (in 16 partial sums instead where K is small, as a first
   layer's: conv_dw_rows); dcol[k][p] = Σ_o w[o][k]·dy[o][p] along o,
   each rounded to a real, and dx[c][h][w] the sum, by plain additions
   in increasing k, of the dcol terms that col drew from x[c][h][w]. */

/* A convolution's or a pool's output size along one axis. */
MM_INLINE int conv_out(int len, int k, int s, int pad) { return (len + 2 * pad - k) / s + 1; }

#ifdef MM_SIMD
/* The lanes of the vector of a row from element at that lie in [lo, hi). */
MM_INLINE unsigned conv_lanes(int at, int lo, int hi) {
  int a = lo > at ? lo - at : 0, b = hi - at < MM_V ? hi - at : MM_V;
  return b <= a ? 0 : ((1u << b) - 1) & ~((1u << a) - 1);
}
#endif

/* One row of col: dst[ow] = xr[ow·SW + off] for each ow < OW where that
   lies in xr's W elements, 0 elsewhere (everywhere when xr is null). */
MM_INLINE void conv_row_in(int W, int OW, int SW, int off, const real *xr, real *dst) {
#ifdef MM_SIMD
  if (SW == 1) { /* each vector a masked load: the lanes outside are not read */
    for (int o0 = 0; o0 < OW; o0 += MM_V) {
      mm_v v = xr ? mm_vloadm(xr + off + o0, conv_lanes(o0, -off, W - off)) : mm_vset(0);
      mm_vstorem(dst + o0, conv_lanes(o0, 0, OW), v);
    }
    return;
  }
#endif
  for (int ow = 0; ow < OW; ow++) {
    int w = ow * SW + off;
    dst[ow] = xr && w >= 0 && w < W ? xr[w] : (real)0;
  }
}

/* col (C·KH·KW, OH·OW) of one sample x (C, H, W), a row segment at a time. */
MM_INLINE void conv_im2col(int C, int H, int W, int KH, int KW, int SH, int SW, int PH,
                           int PW, const real *x, real *col) {
  int OH = conv_out(H, KH, SH, PH), OW = conv_out(W, KW, SW, PW);
  for (int c = 0; c < C; c++)
    for (int i = 0; i < KH; i++)
      for (int j = 0; j < KW; j++, col += OH * OW)
        for (int oh = 0; oh < OH; oh++) {
          int h = oh * SH - PH + i;
          conv_row_in(W, OW, SW, j - PW, h >= 0 && h < H ? x + ((long)c * H + h) * W : 0,
                      col + oh * OW);
        }
}

#ifdef MM_SIMD
/* conv_col2im for stride 1, a vector of a row of dx at a time: its sums
   in a register, so that no store waits for the one before. */
MM_INLINE void conv_col2im_v(int C, int H, int W, int KH, int KW, int PH, int PW,
                             const real *dcol, real *dx) {
  int OH = H + 2 * PH - KH + 1, OW = W + 2 * PW - KW + 1;
  for (int c = 0; c < C; c++)
    for (int h = 0; h < H; h++)
      for (int w0 = 0; w0 < W; w0 += MM_V) {
        mm_v acc = mm_vset(0);
        for (int i = 0; i < KH; i++) {
          int oh = h + PH - i;
          if (oh < 0 || oh >= OH)
            continue;
          for (int j = 0; j < KW; j++) { /* dx[c][h][w] from dcol[k][oh][w + PW − j] */
            const real *src = dcol + ((long)(c * KH + i) * KW + j) * OH * OW + oh * OW + PW - j;
            unsigned m = conv_lanes(w0, j - PW, OW + j - PW < W ? OW + j - PW : W);
            acc = mm_vadd_mask(acc, m, mm_vloadm(src + w0, m));
          }
        }
        mm_vstorem(dx + ((long)c * H + h) * W + w0, conv_lanes(w0, 0, W), acc);
      }
}
#endif

/* dx (C, H, W) of one sample = 0 plus each element of dcol (C·KH·KW,
   OH·OW) added where conv_im2col took it from, k increasing. */
MM_INLINE void conv_col2im(int C, int H, int W, int KH, int KW, int SH, int SW, int PH,
                           int PW, const real *dcol, real *dx) {
  int OH = conv_out(H, KH, SH, PH), OW = conv_out(W, KW, SW, PW);
#ifdef MM_SIMD
  if (SH == 1 && SW == 1) {
    conv_col2im_v(C, H, W, KH, KW, PH, PW, dcol, dx);
    return;
  }
#endif
  for (long e = 0; e < (long)C * H * W; e++)
    dx[e] = 0;
  for (int c = 0; c < C; c++)
    for (int i = 0; i < KH; i++)
      for (int j = 0; j < KW; j++, dcol += OH * OW)
        for (int oh = 0; oh < OH; oh++) {
          int h = oh * SH - PH + i;
          for (int ow = 0; ow < OW && h >= 0 && h < H; ow++) {
            int w = ow * SW - PW + j;
            if (w >= 0 && w < W)
              dx[((long)c * H + h) * W + w] += dcol[oh * OW + ow];
          }
        }
}

#ifdef MM_SIMD
/* A tile of C = init + A·B: mb <= 16 rows (ldc apart) by nv <= 4 vectors
   (the last tail reals long), C[i] = init + Σ_l A(i, l)·B[l], l
   increasing, A(i, l) = A[i·ars + l·acs], B's rows ldb apart. The mb·nv
   sums stay in registers; each step loads the nv vectors of B's row l
   once for all mb rows and broadcasts A's elements. init: 0 from zero,
   1 from C, 2 from bias[i]. Unless sum is null, sum[j] += B[l][j] too,
   by plain additions, l increasing. */
MM_INLINE void conv_tile_v(int mb, int nv, int tail, int L, const real *A, long ars, long acs,
                           const real *B, long ldb, int init, const real *bias, real *C,
                           long ldc, real *sum) {
  mm_v acc[16][4], cs[4];
  for (int v = 0; v < nv; v++)
    cs[v] = sum ? mm_vget(sum, v, nv, tail) : mm_vset(0);
  for (int i = 0; i < mb; i++)
    for (int v = 0; v < nv; v++)
      acc[i][v] = init == 0   ? mm_vset(0)
                  : init == 2 ? mm_vset(bias[i])
                              : mm_vget(C + i * ldc, v, nv, tail);
  for (int l = 0; l < L; l++) {
    mm_v b[4];
    for (int v = 0; v < nv; v++) {
      b[v] = mm_vget(B + l * ldb, v, nv, tail);
      MM_KEEP(b[v]);
      if (sum)
        cs[v] = mm_vadd(cs[v], b[v]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < mb; i++) {
      mm_v a = mm_vset(A[i * ars + l * acs]);
      for (int v = 0; v < nv; v++)
        acc[i][v] = mm_vmac(acc[i][v], a, b[v]);
    }
  }
  for (int i = 0; i < mb; i++)
    for (int v = 0; v < nv; v++)
      mm_vput(C + i * ldc, v, nv, tail, acc[i][v]);
  for (int v = 0; v < nv && sum; v++)
    mm_vput(sum, v, nv, tail, cs[v]);
}

/* The M rows of a column block of C (nv vectors, the last tail reals
   long): tiles of 24 sums, 16, 12, 8 or 6 rows by nv vectors, then one
   of the rest. */
MM_INLINE void conv_rows_v(int M, int nv, int tail, int L, const real *A, long ars, long acs,
                           const real *B, long ldb, int init, const real *bias, real *C,
                           long ldc, real *sum) {
  int mb = nv == 1 ? 16 : nv == 2 ? 12 : nv == 3 ? 8 : 6, i = 0;
  for (; i + mb <= M; i += mb)
    conv_tile_v(mb, nv, tail, L, A + i * ars, ars, acs, B, ldb, init, bias + (bias ? i : 0),
                C + i * ldc, ldc, i ? 0 : sum);
#ifdef MLPC_KERNEL_VARIABLE_SIZES
  /* the rest in tiles of 8, 4, 2 and 1 rows: 4 sizes to build, not 16 */
  for (int k = 8; k; k /= 2)
    for (; M - i >= k; i += k)
      MM_CONSTN(MB, k, conv_tile_v(MB, nv, tail, L, A + i * ars, ars, acs, B, ldb, init,
                                   bias + (bias ? i : 0), C + i * ldc, ldc, i ? 0 : sum));
#else
  const real *a = A + i * ars, *bi = bias + (bias ? i : 0);
  real *su = i ? 0 : sum; /* (the first tile adds B's columns) */
  int rest = M - i;
  if (rest > 8) { /* (the tiles' sizes, constants) */
    MM_FIXED(MB, rest - 8, conv_tile_v(8 + MB, nv, tail, L, a, ars, acs, B, ldb, init, bi,
                                        C + i * ldc, ldc, su));
  } else if (rest > 0) {
    MM_FIXED(MB, rest, conv_tile_v(MB, nv, tail, L, a, ars, acs, B, ldb, init, bi,
                                    C + i * ldc, ldc, su));
  }
#endif
}

/* conv_gemm's columns with vectors: tiles of 3 vectors of columns by 8
   rows, the last of 1 to 4 vectors (4 by 6 rows). */
MM_INLINE void conv_cols_v(int M, int N, int L, const real *A, long ars, long acs,
                           const real *B, long ldb, int init, const real *bias, real *C,
                           long ldc, real *sum) {
  int n0 = 0;
  for (; N - n0 > 4 * MM_V; n0 += 3 * MM_V) /* tiles of 3 while more than 4 are left */
    conv_rows_v(M, 3, MM_V, L, A, ars, acs, B + n0, ldb, init, bias, C + n0, ldc,
                sum ? sum + n0 : 0);
  int nv = (N - n0 + MM_V - 1) / MM_V, tail = N - n0 - (nv - 1) * MM_V;
  if (nv == 1)
    conv_rows_v(M, 1, tail, L, A, ars, acs, B + n0, ldb, init, bias, C + n0, ldc,
                sum ? sum + n0 : 0);
  else if (nv == 2)
    conv_rows_v(M, 2, tail, L, A, ars, acs, B + n0, ldb, init, bias, C + n0, ldc,
                sum ? sum + n0 : 0);
  else if (nv == 3)
    conv_rows_v(M, 3, tail, L, A, ars, acs, B + n0, ldb, init, bias, C + n0, ldc,
                sum ? sum + n0 : 0);
  else if (nv == 4)
    conv_rows_v(M, 4, tail, L, A, ars, acs, B + n0, ldb, init, bias, C + n0, ldc,
                sum ? sum + n0 : 0);
}
#endif

/* The terms of a sum conv_gemm takes in one pass over C, at most: the
   blocks of A and B a pass reads then stay in the first-level cache. */
#define CONV_LB 64

/* C (M, N; ldc a row) = init + A·B, A(i, l) = A[i·ars + l·acs] (M, L),
   B (L, N; ldb a row): each element summed from init (0: zero, 1: C's
   own, 2: bias[i]) one term at a time, l increasing; and sum (N) += the
   sums of B's columns, unless null. Where there are vectors, in passes
   over C of up to CONV_LB terms (conv_cols_v). */
MLPC_KERNEL_PART void conv_gemm(int M, int N, int L, const real *A, long ars, long acs,
                                const real *B, long ldb, int init, const real *bias, real *C,
                                long ldc, real *sum) {
#ifdef MM_SIMD
  int passes = L > CONV_LB ? (L + CONV_LB - 1) / CONV_LB : 1, lb = (L + passes - 1) / passes;
  for (int l0 = 0, k = 0; k < passes; k++, l0 += lb)
    conv_cols_v(M, N, MM_MIN(lb, L - l0), A + l0 * acs, ars, acs, B + l0 * ldb, ldb,
                l0 ? 1 : init, bias, C, ldc, sum);
#else
  for (int l = 0; l < L && sum; l++)
    for (int j = 0; j < N; j++)
      sum[j] += B[l * ldb + j];
  for (int i = 0; i < M; i++) {
    real *c = C + (long)i * ldc;
    for (int j = 0; j < N; j++)
      c[j] = init == 0 ? (real)0 : init == 2 ? bias[i] : c[j];
    for (int l = 0; l < L; l++) {
      real a = A[i * ars + l * acs];
      const real *b = B + l * ldb;
      for (int j = 0; j < N; j++)
        c[j] = MAC(c[j], a, b[j]);
    }
  }
#endif
}

/* dst (cols, rows; ldd a row) = src (rows, cols; lds a row) transposed:
   blocks of MM_V × MM_V where there are vectors, the rest one by one. */
MM_INLINE void conv_transpose(int rows, int cols, const real *src, long lds, real *dst,
                              long ldd) {
  int i0 = 0, j0 = 0;
#ifdef MM_SIMD
  for (; i0 + MM_V <= rows; i0 += MM_V)
    for (int j = 0; j + MM_V <= cols; j += MM_V)
      mm_transpose_v(src + i0 * lds + j, lds, MM_V, dst + j * ldd + i0, ldd);
  j0 = cols / MM_V * MM_V;
#endif
  for (int j = 0; j < cols; j++)
    for (int i = j < j0 ? i0 : 0; i < rows; i++)
      dst[j * ldd + i] = src[i * lds + j];
}

/* xp (C, H + 2·PH, W + 2·PW): a copy of one sample x (C, H, W) with its
   padding as zeros, the padding written for the first sample (r 0)
   only. */
MM_INLINE void conv_pad(int C, int H, int W, int PH, int PW, int r, const real *x, real *xp) {
  int HP = H + 2 * PH, WP = W + 2 * PW;
  for (long e = 0; e < (long)C * HP * WP && r == 0; e++)
    xp[e] = 0;
  for (int c = 0; c < C; c++)
    for (int h = 0; h < H; h++)
      for (int w = 0; w < W; w++)
        xp[((long)c * HP + h + PH) * WP + PW + w] = x[((long)c * H + h) * W + w];
}

#ifdef MM_SIMD
/* A tile of conv_rows: T positions of an output row, whose pixels in
   x's padded copy start at xp, SW apart, by nv vectors of the outputs
   (the last tail reals long). Each of its T·nv sums stays in a
   register, from the bias or 0, then along k = (c, i, j): each step
   loads row k of wt (K, O; w's transpose) once and broadcasts the T
   pixels. The tile's rows of y's transpose go to yt, O apart. */
MM_INLINE void conv_rows_tile(int T, int nv, int tail, int C, int KH, int KW, int SW, int WP,
                              long HWP, int O, const real *xp, const real *wt, const real *b,
                              real *yt) {
  mm_v acc[7][4];
  for (int t = 0; t < T; t++)
    for (int v = 0; v < nv; v++)
      acc[t][v] = b ? mm_vget(b, v, nv, tail) : mm_vset(0);
  for (int c = 0; c < C; c++)
    for (int i = 0; i < KH; i++)
      for (int j = 0; j < KW; j++, wt += O) {
        const real *xr = xp + c * HWP + i * WP + j;
        mm_v bv[4];
        for (int v = 0; v < nv; v++) {
          bv[v] = mm_vget(wt, v, nv, tail);
          MM_KEEP(bv[v]);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
          mm_v a = mm_vset(xr[t * SW]);
          for (int v = 0; v < nv; v++)
            acc[t][v] = mm_vmac(acc[t][v], a, bv[v]);
        }
      }
  for (int t = 0; t < T; t++)
    for (int v = 0; v < nv; v++)
      mm_vput(yt + t * O, v, nv, tail, acc[t][v]);
}

/* One output row of conv_rows: tiles of 7 positions by up to 2 vectors
   (4 by 3, 3 by 4), then tiles of 4, 2 and 1 of the rest. */
MM_INLINE void conv_rows_row(int nv, int tail, int OW, int C, int KH, int KW, int SW, int WP,
                             long HWP, int O, const real *xp, const real *wt, const real *b,
                             real *yt) {
  int tb = nv <= 2 ? 7 : nv == 3 ? 4 : 3, ow = 0;
  for (; ow + tb <= OW; ow += tb)
    conv_rows_tile(tb, nv, tail, C, KH, KW, SW, WP, HWP, O, xp + ow * SW, wt, b, yt + ow * O);
  for (int k = 4; k; k /= 2)
    for (; OW - ow >= k; ow += k)
      conv_rows_tile(k, nv, tail, C, KH, KW, SW, WP, HWP, O, xp + ow * SW, wt, b,
                     yt + ow * O);
}

/* Whether conv2d_forward takes conv_rows: where there are vectors, the
   sums are long enough (K >= 64; shorter ones, as a first layer's, go
   faster through col) and the outputs take at most 4 vectors; its
   scratch must fit col's. */
MM_INLINE int conv_by_rows(int C, int H, int W, int O, int KH, int KW, int PH, int PW, int P) {
  long K = (long)C * KH * KW;
  return K >= 64 && O <= 4 * MM_V &&
         K * O + (long)C * (H + 2 * PH) * (W + 2 * PW) + (long)P * O <= K * P;
}

/* conv2d_forward without col: each sample's y (O, P) through its
   transpose yt (P, O), by tiles of an output row's positions and the
   outputs (conv_rows_tile), the pixels read from xp, a copy of the
   sample with its padding as zeros; wt (K, O) is w's transpose. The
   same sums, each in the same order, as w·col. scratch: wt, xp and yt,
   K·O + C·(H + 2·PH)·(W + 2·PW) + P·O reals. */
MLPC_KERNEL_PART void conv_rows(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                                int SW, int PH, int PW, const real *x, const real *w,
                                const real *b, real *scratch, real *y) {
  int OH = conv_out(H, KH, SH, PH), OW = conv_out(W, KW, SW, PW), K = C * KH * KW;
  int HP = H + 2 * PH, WP = W + 2 * PW, nv = (O + MM_V - 1) / MM_V, tail = O - (nv - 1) * MM_V;
  real *wt = scratch, *xp = wt + (long)K * O, *yt = xp + (long)C * HP * WP;
  conv_transpose(O, K, w, K, wt, O);
  for (int r = 0; r < n; r++) {
    conv_pad(C, H, W, PH, PW, r, x + (long)r * C * H * W, xp);
    for (int oh = 0; oh < OH; oh++) {
      const real *xo = xp + (long)oh * SH * WP;
      real *yo = yt + (long)oh * OW * O;
      if (nv == 1)
        conv_rows_row(1, tail, OW, C, KH, KW, SW, WP, (long)HP * WP, O, xo, wt, b, yo);
      else if (nv == 2)
        conv_rows_row(2, tail, OW, C, KH, KW, SW, WP, (long)HP * WP, O, xo, wt, b, yo);
      else if (nv == 3)
        conv_rows_row(3, tail, OW, C, KH, KW, SW, WP, (long)HP * WP, O, xo, wt, b, yo);
      else
        conv_rows_row(4, tail, OW, C, KH, KW, SW, WP, (long)HP * WP, O, xo, wt, b, yo);
    }
    conv_transpose(OH * OW, O, yt, O, y + (long)r * O * OH * OW, OH * OW);
  }
}
#endif

#ifdef MM_SIMD
/* Whether conv2d_forward takes conv_direct: short sums (not
   conv_by_rows), stride 1 along a row, and x's padded copy fits col. */
MM_INLINE int conv_by_direct(int C, int H, int W, int O, int KH, int KW, int SW, int PH, int PW,
                             int P) {
  return SW == 1 && !conv_by_rows(C, H, W, O, KH, KW, PH, PW, P) &&
         (long)C * (H + 2 * PH) * (W + 2 * PW) <= (long)C * KH * KW * P;
}

/* A tile of conv_direct: 8 outputs (o0's first ob of them stored) by
   nv vectors of the positions ow0 .. of output row oh, whose pixels for
   tap (c, i, j) start in xp at c·HWP + (oh·SH + i)·WP + ow0 + j. Each
   sum in a register from the bias or 0, k = (c, i, j) increasing, as
   w·col sums it. */
MM_INLINE void conv_direct_tile(int nv, int ob, int K, int KH, int KW, int SH, int WP, long HWP,
                                int OW, int oh, int ow0, const real *xp, const real *w,
                                const real *b, real *y, long ldy) {
  mm_v acc[8][2];
  unsigned lanes[2];
  const real *wr[8];
  for (int t = 0; t < 8; t++) {
    wr[t] = w + (long)(t < ob ? t : 0) * K; /* (rows past ob: row 0, not stored) */
    for (int v = 0; v < nv; v++)
      acc[t][v] = mm_vset(b ? b[t < ob ? t : 0] : (real)0);
  }
  for (int v = 0; v < nv; v++)
    lanes[v] = conv_lanes(ow0 + v * MM_V, 0, OW);
#pragma GCC unroll 16
  for (int k = 0; k < K; k++) {
    int c = k / (KH * KW), i = k / KW % KH, j = k % KW;
    const real *xr = xp + c * HWP + (long)(oh * SH + i) * WP + ow0 + j;
    mm_v xv[2];
    for (int v = 0; v < nv; v++) {
      xv[v] = mm_vloadm(xr + v * MM_V, lanes[v]);
      MM_KEEP(xv[v]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < 8; t++) {
      mm_v a = mm_vset(wr[t][k]);
      for (int v = 0; v < nv; v++)
        acc[t][v] = mm_vmac(acc[t][v], a, xv[v]);
    }
  }
  for (int t = 0; t < ob; t++)
    for (int v = 0; v < nv; v++)
      mm_vstorem(y + t * ldy + ow0 + v * MM_V, lanes[v], acc[t][v]);
}

/* conv2d_forward without col where the sums are short (a first layer's)
   and the stride along a row 1: each sample's output rows straight
   from xp, its copy with the padding as zeros (in col), by tiles of 8
   outputs and two vectors of a row's positions (conv_direct_tile). */
MLPC_KERNEL_PART void conv_direct(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                                  int PH, int PW, const real *x, const real *w, const real *b,
                                  real *xp, real *y) {
  int OH = conv_out(H, KH, SH, PH), OW = conv_out(W, KW, 1, PW), K = C * KH * KW;
  int HP = H + 2 * PH, WP = W + 2 * PW;
  for (int r = 0; r < n; r++) {
    conv_pad(C, H, W, PH, PW, r, x + (long)r * C * H * W, xp);
    for (int o0 = 0; o0 < O; o0 += 8)
      for (int oh = 0; oh < OH; oh++) {
        real *yo = y + ((long)(r * O + o0) * OH + oh) * OW;
        int ob = MM_MIN(8, O - o0), ow0 = 0;
        const real *bo = b ? b + o0 : 0;
        for (; OW - ow0 > MM_V; ow0 += 2 * MM_V)
          conv_direct_tile(2, ob, K, KH, KW, SH, WP, (long)HP * WP, OW, oh, ow0, xp,
                           w + (long)o0 * K, bo, yo, (long)OH * OW);
        if (ow0 < OW)
          conv_direct_tile(1, ob, K, KH, KW, SH, WP, (long)HP * WP, OW, oh, ow0, xp,
                           w + (long)o0 * K, bo, yo, (long)OH * OW);
      }
  }
}
#endif

/* ---- Winograd's F(2×2, 3×3): conv_wino ----

   A 3×3 convolution of stride 1 by tiles: each 4×4 tile d of the padded
   input gives a 2×2 tile of output, Y = Aᵀ·(Σ_c U_c ⊙ V_c)·A, with
   U = G·g·Gᵀ of each kernel g and V = Bᵀ·d·B of each channel's tile,
   16 products a pair of channels for 36 (Lavin and Gray, 2015). Its
   sums are not w·col's: every output is a combination of 16 sums over
   the channels, each one term at a time in increasing c with MAC. In
   order, each rounded to a real:
     U:  t = G·g by columns: g0, ((g0 + g1) + g2)·½, ((g0 − g1) + g2)·½,
         g2; then the same along t's rows;
     V:  t = Bᵀ·d by columns: d0 − d2, d1 + d2, d2 − d1, d1 − d3; then
         the same along t's rows;
     M:  Σ_c U·V from 0, c increasing;
     Y:  s = Aᵀ·M by columns: (m0 + m1) + m2, (m1 − m2) − m3; then the
         same along s's rows; then + b.
   A tile row of a sample (a unit, TW = ⌈OW/2⌉ tiles) takes TW lanes of
   a vector, two units a vector (lanes 0 and WINO_V/2 on), so that the
   transforms are the same operations in every lane; the products run
   16 outputs by one vector of tiles, the sums in registers. An Inf in
   a tile makes NaN where the direct sums give ±Inf (the transforms take
   Inf − Inf), and sums near the largest real overflow a little sooner;
   a NaN reaches the loss, and training reports divergence. */
#define WINO_V (64 / (int)sizeof(real)) /* lanes of a vector of tiles */
#define WINO_OB 16                      /* outputs summed at once */

/* The reals of conv_wino's scratch: U (16, C, O rounded up to
   WINO_OB), V (16, C, WINO_V), M (16, WINO_OB, WINO_V). */
MM_INLINE long wino_scratch(int C, int O) {
  return 16L * C * ((O + WINO_OB - 1) / WINO_OB * WINO_OB) + 16L * C * WINO_V +
         16L * WINO_OB * WINO_V;
}

/* Whether conv_wino takes a convolution of C channels to O with output
   rows of OW: a 3×3 kernel of stride 1, at least 8 channels in and out,
   a padded row's tiles in half a vector (2·TW + 2 <= WINO_V: OW <= 14
   for float, 6 for double), and its scratch in room reals. The same
   with or without vectors. */
MM_INLINE int wino_takes(int C, int O, int KH, int KW, int SH, int SW, int OW, long room) {
  return KH == 3 && KW == 3 && SH == 1 && SW == 1 && C >= 8 && O >= 8 && OW >= 1 &&
         2 * ((OW + 1) / 2) + 2 <= WINO_V && wino_scratch(C, O) <= room;
}

/* Whether conv2d_forward takes conv_wino, its scratch in col's
   C·9·OH·OW reals. */
MM_INLINE int conv_by_wino(int C, int H, int W, int O, int KH, int KW, int SH, int SW, int PH,
                           int PW) {
  int OH = conv_out(H, KH, SH, PH), OW = conv_out(W, KW, SW, PW);
  return OH >= 1 && wino_takes(C, O, KH, KW, SH, SW, OW, 9L * C * OH * OW);
}

/* Whether conv2d_backward's input gradient takes conv_wino: the
   convolution of dy (n, O, OH, OW) with w's kernels turned by 180° and
   its channels swapped, padding 2 − PH and 2 − PW (PH, PW <= 2), whose
   output is dx (n, C, H, W); its scratch in col's C·9·OH·OW reals. */
MM_INLINE int conv_dx_by_wino(int C, int H, int W, int O, int KH, int KW, int SH, int SW,
                              int PH, int PW) {
  int OH = conv_out(H, KH, SH, PH), OW = conv_out(W, KW, SW, PW);
  return PH <= 2 && PW <= 2 && wino_takes(O, C, KH, KW, SH, SW, W, 9L * C * OH * OW);
}

/* U (16, C, OP), outputs O .. OP zero, of the 3×3 kernels g of output
   o and channel c at w + o·so + c·sc, g[i][j] at 3·i + j, or with flip
   at 8 − 3·i − j (the input gradient's kernels: conv_wino_dx). */
MM_INLINE void wino_weights(int C, int O, int OP, const real *w, long so, long sc, int flip,
                            real *u) {
  for (long e = 0; e < 16L * C * OP; e++)
    u[e] = 0;
  for (int o = 0; o < O; o++)
    for (int c = 0; c < C; c++) {
      real g[9], t[4][3], h = (real)0.5;
      for (int e = 0; e < 9; e++)
        g[e] = w[o * so + c * sc + (flip ? 8 - e : e)];
      for (int j = 0; j < 3; j++) {
        t[0][j] = g[j];
        t[1][j] = ((g[j] + g[3 + j]) + g[6 + j]) * h;
        t[2][j] = ((g[j] - g[3 + j]) + g[6 + j]) * h;
        t[3][j] = g[6 + j];
      }
      for (int i = 0; i < 4; i++) {
        real *ui = u + ((long)i * 4 * C + c) * OP + o; /* ξ = 4·i + j, C·OP apart */
        ui[0] = t[i][0];
        ui[(long)C * OP] = ((t[i][0] + t[i][1]) + t[i][2]) * h;
        ui[2L * C * OP] = ((t[i][0] - t[i][1]) + t[i][2]) * h;
        ui[3L * C * OP] = t[i][2];
      }
    }
}

/* Row h of channel plane xc (H, W) as the padded input's row: lane p
   is x[h][p − PW], 0 outside the plane. */
MM_INLINE real wino_pixel(int H, int W, int PW, const real *xc, int h, int p) {
  return h >= 0 && h < H && p - PW >= 0 && p - PW < W ? xc[(long)h * W + p - PW] : (real)0;
}

/* V (16, C, WINO_V) of units a and b (tile rows ta, tb of samples xa,
   xb, each (C, H, W)): lane l of half q is tile l of its unit. */
MM_INLINE void wino_in(int C, int H, int W, int PH, int PW, int TW, const real *xa, int ta,
                       const real *xb, int tb, real *v) {
#ifdef MM_SIMD
  unsigned m = conv_lanes(0, PW, PW + W);
  int ix[4][16];
  (void)TW;
  for (int j = 0; j < 4; j++)
    for (int l = 0; l < WINO_V; l++)
      ix[j][l] = (l < WINO_V / 2 ? 2 * l + j : WINO_V + 2 * (l - WINO_V / 2) + j) &
                 (2 * WINO_V - 1); /* (lanes past a unit's tiles: any) */
  __m512i idx[4];
  for (int j = 0; j < 4; j++)
    idx[j] = wino_index(ix[j]);
  for (int c = 0; c < C; c++) {
    mm_v t[2][4];
    for (int q = 0; q < 2; q++) {
      const real *xc = (q ? xb : xa) + (long)c * H * W;
      int h0 = 2 * (q ? tb : ta) - PH;
      mm_v d[4];
      for (int i = 0; i < 4; i++)
        d[i] = h0 + i >= 0 && h0 + i < H ? mm_vloadm(xc + (long)(h0 + i) * W - PW, m) : mm_vset(0);
      t[q][0] = mm_vsub(d[0], d[2]), t[q][1] = mm_vadd(d[1], d[2]);
      t[q][2] = mm_vsub(d[2], d[1]), t[q][3] = mm_vsub(d[1], d[3]);
    }
    for (int k = 0; k < 4; k++) {
      mm_v e[4];
      for (int j = 0; j < 4; j++)
        e[j] = wino_perm(t[0][k], idx[j], t[1][k]);
      real *vk = v + ((long)4 * k * C + c) * WINO_V; /* ξ = 4·k + j, C·WINO_V apart */
      mm_vstore(vk, mm_vsub(e[0], e[2]));
      mm_vstore(vk + (long)C * WINO_V, mm_vadd(e[1], e[2]));
      mm_vstore(vk + 2L * C * WINO_V, mm_vsub(e[2], e[1]));
      mm_vstore(vk + 3L * C * WINO_V, mm_vsub(e[1], e[3]));
    }
  }
#else
  for (int c = 0; c < C; c++)
    for (int q = 0; q < 2; q++)
      for (int l = 0; l < TW; l++) {
        const real *xc = (q ? xb : xa) + (long)c * H * W;
        int h0 = 2 * (q ? tb : ta) - PH;
        real d[4][4], t[4][4];
        for (int i = 0; i < 4; i++)
          for (int j = 0; j < 4; j++)
            d[i][j] = wino_pixel(H, W, PW, xc, h0 + i, 2 * l + j);
        for (int j = 0; j < 4; j++) {
          t[0][j] = d[0][j] - d[2][j], t[1][j] = d[1][j] + d[2][j];
          t[2][j] = d[2][j] - d[1][j], t[3][j] = d[1][j] - d[3][j];
        }
        for (int k = 0; k < 4; k++) {
          real *vk = v + ((long)4 * k * C + c) * WINO_V + q * WINO_V / 2 + l;
          vk[0] = t[k][0] - t[k][2];
          vk[(long)C * WINO_V] = t[k][1] + t[k][2];
          vk[2L * C * WINO_V] = t[k][2] - t[k][1];
          vk[3L * C * WINO_V] = t[k][1] - t[k][3];
        }
      }
#endif
}

/* M (16, WINO_OB, WINO_V) = Σ_c U·V of outputs o0 .. o0 + WINO_OB: for
   each ξ, each output's sum from 0 one term at a time, c increasing
   (the lanes of units' tiles; TW a unit's). */
MM_INLINE void wino_products(int C, int OP, int TW, int o0, const real *u, const real *v,
                             real *mo) {
  for (int q = 0; q < 16; q++) {
    const real *uq = u + (long)q * C * OP + o0, *vq = v + (long)q * C * WINO_V;
    real *mq = mo + (long)q * WINO_OB * WINO_V;
#ifdef MM_SIMD
    mm_v acc[WINO_OB];
    (void)TW;
    for (int t = 0; t < WINO_OB; t++)
      acc[t] = mm_vset(0);
    for (int c = 0; c < C; c++) {
      mm_v xv = mm_vload(vq + (long)c * WINO_V);
      MM_KEEP(xv);
      for (int t = 0; t < WINO_OB; t++)
        acc[t] = mm_vmac(acc[t], mm_vset(uq[(long)c * OP + t]), xv);
    }
    for (int t = 0; t < WINO_OB; t++)
      mm_vstore(mq + t * WINO_V, acc[t]);
#else
    for (int t = 0; t < WINO_OB; t++)
      for (int l = 0; l < WINO_V; l++) {
        real acc = 0;
        if (l % (WINO_V / 2) >= TW)
          continue;
        for (int c = 0; c < C; c++)
          acc = MAC(acc, uq[(long)c * OP + t], vq[(long)c * WINO_V + l]);
        mq[t * WINO_V + l] = acc;
      }
#endif
  }
}

/* Outputs o0 .. o0 + ob of units a and b (b only with yb) from M, plus
   the bias: rows 2·ta and 2·ta + 1 of sample ya (O, OH, OW), where they
   lie in it, and likewise of yb. */
MM_INLINE void wino_out(int OH, int OW, int TW, int o0, int ob, const real *mo,
                        const real *bias, real *ya, int ta, real *yb, int tb) {
  for (int t = 0; t < ob; t++) {
    int o = o0 + t;
#ifdef MM_SIMD
    int il[2][16];
    (void)TW;
    for (int q = 0; q < 2; q++)
      for (int p = 0; p < WINO_V; p++)
        il[q][p] = (p & 1) * WINO_V + q * WINO_V / 2 + p / 2;
    mm_v m[4][4], s[2][4];
    for (int k = 0; k < 4; k++)
      for (int j = 0; j < 4; j++)
        m[k][j] = mm_vload(mo + ((long)(4 * k + j) * WINO_OB + t) * WINO_V);
    for (int j = 0; j < 4; j++) {
      s[0][j] = mm_vadd(mm_vadd(m[0][j], m[1][j]), m[2][j]);
      s[1][j] = mm_vsub(mm_vsub(m[1][j], m[2][j]), m[3][j]);
    }
    for (int i = 0; i < 2; i++) {
      mm_v y0 = mm_vadd(mm_vadd(s[i][0], s[i][1]), s[i][2]);
      mm_v y1 = mm_vsub(mm_vsub(s[i][1], s[i][2]), s[i][3]);
      if (bias)
        y0 = mm_vadd(y0, mm_vset(bias[o])), y1 = mm_vadd(y1, mm_vset(bias[o]));
      for (int q = 0; q < 2; q++) {
        int row = 2 * (q ? tb : ta) + i;
        if ((q && !yb) || row >= OH)
          continue;
        mm_vstorem((q ? yb : ya) + ((long)o * OH + row) * OW, conv_lanes(0, 0, OW),
                   wino_perm(y0, wino_index(il[q]), y1));
      }
    }
#else
    for (int q = 0; q < 2 && (!q || yb); q++)
      for (int l = 0; l < TW; l++) {
        real m[4][4], s[2][4];
        for (int k = 0; k < 4; k++)
          for (int j = 0; j < 4; j++)
            m[k][j] = mo[((long)(4 * k + j) * WINO_OB + t) * WINO_V + q * WINO_V / 2 + l];
        for (int j = 0; j < 4; j++) {
          s[0][j] = (m[0][j] + m[1][j]) + m[2][j];
          s[1][j] = (m[1][j] - m[2][j]) - m[3][j];
        }
        for (int i = 0; i < 2; i++) {
          int row = 2 * (q ? tb : ta) + i;
          real yv[2] = {(s[i][0] + s[i][1]) + s[i][2], (s[i][1] - s[i][2]) - s[i][3]};
          for (int jj = 0; jj < 2 && row < OH; jj++)
            if (2 * l + jj < OW)
              (q ? yb : ya)[((long)o * OH + row) * OW + 2 * l + jj] =
                bias ? yv[jj] + bias[o] : yv[jj];
        }
      }
#endif
  }
}

/* y = conv2d(x, w) + b by F(2×2, 3×3) (above), stride 1, padding PH,
   PW, w's kernels as wino_weights takes them: units in order, two at a
   time (the last alone where they are odd), each pair's V, then
   WINO_OB outputs at a time their M and their outputs. scratch:
   wino_scratch(C, O) reals. */
MLPC_KERNEL_PART void conv_wino(int n, int C, int H, int W, int O, int PH, int PW,
                                const real *x, const real *w, long so, long sc, int flip,
                                const real *b, real *scratch, real *y) {
  int OH = conv_out(H, 3, 1, PH), OW = conv_out(W, 3, 1, PW), TH = (OH + 1) / 2,
      TW = (OW + 1) / 2, OP = (O + WINO_OB - 1) / WINO_OB * WINO_OB;
  real *u = scratch, *v = u + 16L * C * OP, *mo = v + 16L * C * WINO_V;
  long units = (long)n * TH, xs = (long)C * H * W, ys = (long)O * OH * OW;
  wino_weights(C, O, OP, w, so, sc, flip, u);
  for (long a = 0; a < units; a += 2) {
    long bu = a + 1 < units ? a + 1 : a; /* unit b: a again, not stored */
    int ta = (int)(a % TH), tb = (int)(bu % TH);
    wino_in(C, H, W, PH, PW, TW, x + a / TH * xs, ta, x + bu / TH * xs, tb, v);
    for (int o0 = 0; o0 < O; o0 += WINO_OB) {
      wino_products(C, OP, TW, o0, u, v, mo);
      wino_out(OH, OW, TW, o0, MM_MIN(WINO_OB, O - o0), mo, b, y + a / TH * ys, ta,
               bu != a ? y + bu / TH * ys : 0, tb);
    }
  }
}

/* y = conv2d(x, w) + b: x (n, C, H, W), w (O, C, KH, KW), b (O) or null
   (0), y (n, O, OH, OW); col (C·KH·KW, OH·OW): scratch for one sample's
   im2col matrix, so that it stays in the level-2 cache (the backward
   pass builds it again). Each sample's y = w·col + b; where
   conv_by_rows, by conv_rows instead, and where conv_by_direct, by
   conv_direct, with col as their scratch. */
MLPC_KERNEL void conv2d_forward(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                                int SW, int PH, int PW, const real *x, const real *w,
                                const real *b, real *col, real *y) {
  int K = C * KH * KW, P = conv_out(H, KH, SH, PH) * conv_out(W, KW, SW, PW);
  if (conv_by_wino(C, H, W, O, KH, KW, SH, SW, PH, PW)) {
    conv_wino(n, C, H, W, O, PH, PW, x, w, (long)C * 9, 9, 0, b, col, y);
    return;
  }
#ifdef MM_SIMD
  if (conv_by_rows(C, H, W, O, KH, KW, PH, PW, P)) {
    conv_rows(n, C, H, W, O, KH, KW, SH, SW, PH, PW, x, w, b, col, y);
    return;
  }
  if (conv_by_direct(C, H, W, O, KH, KW, SW, PH, PW, P)) {
    conv_direct(n, C, H, W, O, KH, KW, SH, PH, PW, x, w, b, col, y);
    return;
  }
#endif
  for (int r = 0; r < n; r++) {
    conv_im2col(C, H, W, KH, KW, SH, SW, PH, PW, x + (long)r * C * H * W, col);
    conv_gemm(O, P, K, w, K, 1, col, P, b ? 2 : 0, b, y + (long)r * O * P, P, 0);
  }
}

/* Reals of dy that conv_dw_t transposes at a time. */
#define CONV_DYT 8192
#define CONV_NZ 1024 /* conv_dw_grid's pixels a plane */

#ifdef MM_SIMD
/* conv_dw_t's product for the KH·KW rows of dwt of one channel, its
   pixels read from the channel's padded copy xc (conv_pad, WP a row)
   rather than from col: positions p0 to p0 + m of the sample, dyt's m
   rows, O apart, by nv <= 2 vectors of the outputs (the last tail reals
   long). Each sum in a register from init (0: zero, else dwt's own),
   along the positions; and db (or null) += dyt's columns, likewise. */
MM_INLINE void conv_dw_taps(int KH, int KW, int nv, int tail, int OW, int SH, int SW, int WP,
                            int p0, int m, const real *xc, const real *dyt, int O, int init,
                            real *dwt, real *db) {
  mm_v acc[12][2], cs[2];
  for (int t = 0; t < KH * KW; t++)
    for (int v = 0; v < nv; v++)
      acc[t][v] = init ? mm_vget(dwt + t * O, v, nv, tail) : mm_vset(0);
  for (int v = 0; v < nv; v++)
    cs[v] = db ? mm_vget(db, v, nv, tail) : mm_vset(0);
  const real *xr = xc + (long)(p0 / OW) * SH * WP + p0 % OW * SW;
  for (int l = 0, ow = p0 % OW; l < m; l++) {
    mm_v b[2];
    for (int v = 0; v < nv; v++) {
      b[v] = mm_vget(dyt + (long)l * O, v, nv, tail);
      MM_KEEP(b[v]);
      if (db)
        cs[v] = mm_vadd(cs[v], b[v]);
    }
    for (int i = 0; i < KH; i++)
      for (int j = 0; j < KW; j++) {
        mm_v a = mm_vset(xr[i * WP + j]);
        for (int v = 0; v < nv; v++)
          acc[i * KW + j][v] = mm_vmac(acc[i * KW + j][v], a, b[v]);
      }
    xr += SW;
    if (++ow == OW) /* the next output row */
      ow = 0, xr += (long)SH * WP - (long)OW * SW;
  }
  for (int t = 0; t < KH * KW; t++)
    for (int v = 0; v < nv; v++)
      mm_vput(dwt + t * O, v, nv, tail, acc[t][v]);
  for (int v = 0; v < nv && db; v++)
    mm_vput(db, v, nv, tail, cs[v]);
}

/* Whether conv2d_backward's weight gradient reads x's padded copy
   rather than col (conv_dw_taps): a channel's taps by the outputs in
   at most 24 sums, more than one channel (a single one, as a first
   layer's, went faster through col), and the copy fits col. */
MM_INLINE int conv_dw_by_taps(int C, int H, int W, int O, int KH, int KW, int PH, int PW,
                              int P) {
  return C > 1 && KH * KW <= 12 && O <= 2 * MM_V &&
         (long)C * (H + 2 * PH) * (W + 2 * PW) <= (long)C * KH * KW * P;
}

/* conv_dw_t's product for one chunk of positions by conv_dw_taps, a
   channel of xp (sample r's padded copy, HWP reals a channel) at a
   time; db with the first channel. */
MM_INLINE void conv_dw_chunk(int C, int KH, int KW, int SH, int SW, int OW, int WP, long HWP,
                             int O, int p0, int m, const real *xp, const real *dyt, int init,
                             real *dwt, real *db) {
  int nv = (O + MM_V - 1) / MM_V, tail = O - (nv - 1) * MM_V;
  for (int c = 0; c < C; c++) {
    const real *xc = xp + c * HWP;
    real *dc = dwt + (long)c * KH * KW * O, *bc = c ? 0 : db;
    if (KH == 3 && KW == 3 && nv == 2) /* (constants where the sizes vary) */
      conv_dw_taps(3, 3, 2, tail, OW, SH, SW, WP, p0, m, xc, dyt, O, init, dc, bc);
    else if (nv == 2)
      conv_dw_taps(KH, KW, 2, tail, OW, SH, SW, WP, p0, m, xc, dyt, O, init, dc, bc);
    else
      conv_dw_taps(KH, KW, 1, tail, OW, SH, SW, WP, p0, m, xc, dyt, O, init, dc, bc);
  }
}

/* The nonzero pixels of a channel's plane x (H, W), in order: their
   values into val, and into at their places h·GW + w in conv_dw_pixels'
   grid, times O. Returns how many. val has room for H·W + MM_V reals,
   at for H·W + 16 ints. */
MM_INLINE int conv_nonzeros(int H, int W, int GW, int O, const real *x, real *val, int *at) {
  __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  int cnt = 0;
  for (int h = 0; h < H; h++)
    for (int w0 = 0; w0 < W; w0 += MM_V) {
      unsigned lanes = conv_lanes(w0, 0, W);
      mm_v v = mm_vloadm(x + (long)h * W + w0, lanes);
      unsigned m = mm_vnonzero(v) & lanes;
      __m512i g = _mm512_add_epi32(_mm512_set1_epi32(h * GW + w0), lane);
      if (sizeof(real) == 4)
        _mm512_storeu_ps((float *)val + cnt, _mm512_maskz_compress_ps((__mmask16)m, v));
      else
        _mm512_storeu_pd((double *)val + cnt,
                         _mm512_maskz_compress_pd((__mmask8)m, _mm512_castps_pd(v)));
      _mm512_storeu_si512(at + cnt, _mm512_mullo_epi32(
                                      _mm512_maskz_compress_epi32((__mmask16)m, g),
                                      _mm512_set1_epi32(O)));
      cnt += __builtin_popcount(m);
    }
  return cnt;
}

/* conv_dw_t's product for one channel and a whole sample where the
   strides are 1, pixel by pixel. The grid g holds dy's transpose, O
   reals a position, GW = W + KW − 1 positions a row, output (oh, ow) at
   row oh + KH − 1 − PH and column ow + KW − 1 − PW, and 0 around it:
   pixel (h, w)'s tap (i, j) reaches place (h + KH − 1 − i, w + KW − 1
   − j), or a 0 where it reaches no output. Each of the cnt nonzero
   pixels (conv_nonzeros) adds its KH·KW terms, so a tap's sum takes its
   terms in the order of the positions, as conv_dw_taps does, less those
   of zero pixels, which are ±0, and with ±0 where a tap reaches no
   output. */
MM_INLINE void conv_dw_pixels(int KH, int KW, int nv, int tail, int GW, int O, int cnt,
                              const real *val, const int *at, const real *g, int init,
                              real *dwt) {
  mm_v acc[12][2];
  for (int t = 0; t < KH * KW; t++)
    for (int v = 0; v < nv; v++)
      acc[t][v] = init ? mm_vget(dwt + t * O, v, nv, tail) : mm_vset(0);
  for (int q = 0; q < cnt; q++) {
    mm_v a = mm_vset(val[q]);
    const real *gq = g + at[q];
    for (int i = 0; i < KH; i++)
      for (int j = 0; j < KW; j++)
        for (int v = 0; v < nv; v++)
          acc[i * KW + j][v] = mm_vmac(acc[i * KW + j][v], a,
                                       mm_vget(gq + ((long)(KH - 1 - i) * GW + KW - 1 - j) * O,
                                               v, nv, tail));
  }
  for (int t = 0; t < KH * KW; t++)
    for (int v = 0; v < nv; v++)
      mm_vput(dwt + t * O, v, nv, tail, acc[t][v]);
}
#endif

/* Whether conv2d_backward's weight gradient goes pixel by pixel
   (conv_dw_pixels): strides 1, paddings less than the kernel, a
   channel's taps by the outputs in at most 24 sums, a plane of at most
   CONV_NZ pixels, dy's transpose in CONV_DYT reals, the grid of it in
   col (aligned to 64 bytes), and at most three in four of the batch's
   pixels x (n, C, H, W) nonzero: with more, conv_dw_taps, which takes
   every pixel but shares each load of dy among the taps, costs less.
   Not with an Inf or NaN pixel: where a tap reaches no output it would
   meet the grid's 0. */
MM_INLINE int conv_dw_by_pixels(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                                int SW, int PH, int PW, const real *x) {
#ifdef MM_SIMD
  long P = (long)conv_out(H, KH, SH, PH) * conv_out(W, KW, SW, PW), len = (long)n * C * H * W;
  if (SH != 1 || SW != 1 || PH >= KH || PW >= KW || KH * KW > 12 || O > 2 * MM_V ||
      (long)H * W > CONV_NZ || O * P > CONV_DYT ||
      (long)(H + KH - 1) * (W + KW - 1) * O + MM_V > C * KH * KW * P)
    return 0;
  long nz = 0;
  unsigned odd = 0; /* lanes where 0 + x·0 is not 0: Inf or NaN */
  for (long e = 0; e < len; e += MM_V) {
    unsigned m = len - e >= MM_V ? (1u << MM_V) - 1 : (1u << (len - e)) - 1;
    mm_v v = mm_vloadm(x + e, m);
    nz += __builtin_popcount(mm_vnonzero(v) & m);
    odd |= mm_vnonzero(mm_vmac(mm_vset(0), v, mm_vset(0)));
  }
  return !odd && 4 * nz <= 3 * len;
#else
  (void)n, (void)C, (void)H, (void)W, (void)O, (void)KH, (void)KW, (void)SH, (void)SW;
  (void)PH, (void)PW, (void)x;
  return 0;
#endif
}

/* Sample r's terms of dw and db by conv_dw_pixels: dy's transpose into
   the grid g (by way of dyt; the grid's zeros written at sample 0), db
   (or null) += its rows in the order of the positions, then each
   channel's nonzero pixels. */
MM_INLINE void conv_dw_grid(int r, int C, int H, int W, int O, int KH, int KW, int PH, int PW,
                            const real *dy, const real *x, real *g, real *dwt, real *db) {
#ifdef MM_SIMD
  int OH = conv_out(H, KH, 1, PH), OW = conv_out(W, KW, 1, PW), GW = W + KW - 1;
  int nv = (O + MM_V - 1) / MM_V, tail = O - (nv - 1) * MM_V;
  g += (64 - (unsigned long)g % 64) % 64 / sizeof(real); /* (its loads split no line) */
  real *g0 = g + ((long)(KH - 1 - PH) * GW + KW - 1 - PW) * O; /* output (0, 0) */
  real dyt[CONV_DYT];
  mm_v cs[2];
  for (long e = 0; e < (long)(H + KH - 1) * GW * O && r == 0; e++)
    g[e] = 0;
  conv_transpose(O, OH * OW, dy, (long)OH * OW, dyt, O);
  for (int v = 0; v < nv; v++)
    cs[v] = db ? mm_vget(db, v, nv, tail) : mm_vset(0);
  for (int oh = 0; oh < OH; oh++)
    for (int ow = 0; ow < OW; ow++)
      for (int v = 0; v < nv; v++) {
        mm_v d = mm_vget(dyt + ((long)oh * OW + ow) * O, v, nv, tail);
        mm_vput(g0 + ((long)oh * GW + ow) * O, v, nv, tail, d);
        cs[v] = mm_vadd(cs[v], d);
      }
  for (int v = 0; v < nv && db; v++)
    mm_vput(db, v, nv, tail, cs[v]);
  real val[CONV_NZ + MM_V];
  int at[CONV_NZ + 16];
  for (int c = 0; c < C; c++) {
    int cnt = conv_nonzeros(H, W, GW, O, x + (long)c * H * W, val, at);
    real *dc = dwt + (long)c * KH * KW * O;
    if (KH == 3 && KW == 3 && nv == 2) /* (constants where the sizes vary) */
      conv_dw_pixels(3, 3, 2, tail, GW, O, cnt, val, at, g, r > 0, dc);
    else if (nv == 2)
      conv_dw_pixels(KH, KW, 2, tail, GW, O, cnt, val, at, g, r > 0, dc);
    else
      conv_dw_pixels(KH, KW, 1, tail, GW, O, cnt, val, at, g, r > 0, dc);
  }
#else
  (void)r, (void)C, (void)H, (void)W, (void)O, (void)KH, (void)KW, (void)PH, (void)PW;
  (void)dy, (void)x, (void)g, (void)dwt, (void)db;
#endif
}

/* Sample r's terms of dw (O, K) = Σ_r dy[r]·col[r]ᵀ and db (O) = Σ_r Σ_p
   dy[r][o][p], or null: the sums run along the batch and the positions,
   p being the contiguous axis of both dy (O, P) and col (K, P), sample
   r's; so that they vectorise across outputs, up to CONV_DYT / O
   positions of dy at a time are transposed into dyt, and dwt (K, O; the
   caller's scratch, dw's transpose) accumulates colᵀ·dyt, from 0 at
   sample 0. Unless xp is null, the pixels come from xp, the sample's
   padded copy (conv_pad; OW, WP and HWP its sizes), by conv_dw_taps
   instead of from col. */
MM_INLINE void conv_dw_t(int r, int C, int KH, int KW, int SH, int SW, int OW, int WP,
                         long HWP, int O, int P, const real *dy, const real *col,
                         const real *xp, real *dwt, real *db) {
  real dyt[CONV_DYT];
  int pb = MM_MIN(P, CONV_DYT / O);
  for (int p0 = 0; p0 < P; p0 += pb) {
    int m = MM_MIN(pb, P - p0), init = r > 0 || p0 > 0;
    conv_transpose(O, m, dy + p0, P, dyt, O);
#ifdef MM_SIMD
    if (xp) {
      conv_dw_chunk(C, KH, KW, SH, SW, OW, WP, HWP, O, p0, m, xp, dyt, init, dwt, db);
      continue;
    }
#else
    (void)SH, (void)SW, (void)OW, (void)WP, (void)HWP, (void)xp; /* (col, always) */
#endif
    conv_gemm(C * KH * KW, O, m, col + p0, P, 1, dyt, O, init, 0, dwt, O, db);
  }
}

/* Sample r's terms of conv_dw_t's sums where dwt does not fit the
   scratch (O > P), one by one into dw (O, K). */
MM_INLINE void conv_dw_plain(int K, int O, int P, const real *dy, const real *col, real *dw,
                             real *db) {
  for (int o = 0; o < O; o++) {
    const real *g = dy + (long)o * P;
    for (int p = 0; p < P && db; p++)
      db[o] += g[p];
    for (int k = 0; k < K; k++)
      for (int p = 0; p < P; p++)
        dw[(long)o * K + k] = MAC(dw[(long)o * K + k], g[p], col[(long)k * P + p]);
  }
}

/* conv_dw_rows' partial sums of each weight's (and bias') gradient:
   output column ow's terms go to partial ow mod CONV_DWP. */
#define CONV_DWP 16

/* A row of conv_dw_rows' copies of x: the output row's columns rounded
   up to CONV_DWP. */
MM_INLINE int conv_dw_row(int OW) { return (OW + CONV_DWP - 1) / CONV_DWP * CONV_DWP; }

/* Whether conv2d_backward's dw and db go by conv_dw_rows: stride 1
   along the rows, rows of at least half the partials, a weight
   gradient of at most 12 columns (C·KH·KW), as a first layer's, and the
   copies and the partial sums fitting col and dcol (K·P each): the
   sums then run along the rows, in vectors, where vectors across the
   outputs would need dy's transpose and could take one term a step. */
MM_INLINE int conv_dw_by_rows(int C, int H, int W, int O, int KH, int KW, int SH, int SW,
                              int PH, int PW) {
  int OW = conv_out(W, KW, SW, PW), K = C * KH * KW;
  long P = (long)conv_out(H, KH, SH, PH) * OW;
  return SW == 1 && OW >= CONV_DWP / 2 && K <= 12 &&
         (long)KW * C * (H + 2 * PH) * conv_dw_row(OW) + 64 <= K * P &&
         (long)O * (K + 1) * CONV_DWP <= K * P;
}

/* The CONV_DWP partial sums p added in halves (partial l and l + 8, then
   l and l + 4, ...). */
MM_INLINE real conv_halves(real *p) {
  for (int w = CONV_DWP / 2; w; w /= 2)
    for (int l = 0; l < w; l++)
      p[l] += p[l + w];
  return p[0];
}

#ifdef MM_SIMD
/* conv_dw_rows' terms of sample r for the OB outputs from o0, K = C·KH·KW
   columns: the OB·(K + 1) sums' partials (db's last) from part (O·(K +
   1)·CONV_DWP reals; from 0 at sample 0) into registers, then along the
   sample's output rows a vector of columns a step, and back. x comes
   from xp, KW copies (KW, C, HP, WR) of the sample with its padding, the
   one of tap column j shifted by j, so that each tap's vector is one
   aligned load, used for the OB outputs. */
MM_INLINE void conv_dw_rows_v(int OB, int K, int r, int C, int HP, int WR, int OH,
                              int OW, int KH, int KW, int SH, int o0, const real *dy,
                              const real *xp, real *part) {
  enum { NP = CONV_DWP / MM_V }; /* a sum's vectors of partials */
  mm_v acc[2][13][NP]; /* [a][K]: db */
  for (int a = 0; a < OB; a++)
    for (int k = 0; k <= K; k++)
      for (int q = 0; q < NP; q++)
        acc[a][k][q] = r ? mm_vload(part + (((long)(o0 + a) * (K + 1) + k) * NP + q) * MM_V)
                         : mm_vset(0);
  for (int oh = 0; oh < OH; oh++)
    for (int w0 = 0; w0 < OW; w0 += MM_V) {
      int q = w0 / MM_V % NP; /* lane l: partial q·MM_V + l = ow mod CONV_DWP */
      unsigned m = conv_lanes(w0, 0, OW);
      mm_v d[2];
      for (int a = 0; a < OB; a++) {
        d[a] = mm_vloadm(dy + ((long)(o0 + a) * OH + oh) * OW + w0, m);
        MM_KEEP(d[a]);
        acc[a][K][q] = mm_vadd_mask(acc[a][K][q], m, d[a]);
      }
      for (int c = 0; c < C; c++)
        for (int i = 0; i < KH; i++) {
          const real *xr = xp + ((long)c * HP + oh * SH + i) * WR + w0;
          for (int j = 0; j < KW; j++) {
            int k = (c * KH + i) * KW + j;
            mm_v xv = mm_vload(xr + (long)j * C * HP * WR);
            MM_KEEP(xv);
            for (int a = 0; a < OB; a++)
              acc[a][k][q] = mm_vmac_mask(acc[a][k][q], m, d[a], xv);
          }
        }
    }
  for (int a = 0; a < OB; a++)
    for (int k = 0; k <= K; k++)
      for (int q = 0; q < NP; q++)
        mm_vstore(part + (((long)(o0 + a) * (K + 1) + k) * NP + q) * MM_V, acc[a][k][q]);
}
#endif

/* dw (O, K) and db (O) or null by partial sums along the output rows
   (conv_dw_by_rows): dw[o][k] = Σ dy[r][o][oh][ow]·x(r, k, oh, ow), x
   0 in the padding, and db[o] = Σ dy[r][o][oh][ow], each in CONV_DWP
   partial sums from 0, partial l taking the terms of the columns ow
   with ow mod CONV_DWP = l in increasing (r, oh, ow), by MAC (db: plain
   additions), the partials then added in halves (conv_halves). col
   holds a sample's copies (conv_dw_rows_v), dcol the partials. */
MM_INLINE void conv_dw_rows(int n, int C, int H, int W, int O, int KH, int KW, int SH, int PH,
                            int PW, const real *dy, const real *x, real *col, real *dcol,
                            real *dw, real *db) {
  int K = C * KH * KW, OH = conv_out(H, KH, SH, PH), OW = W + 2 * PW - KW + 1;
#ifdef MM_SIMD
  int HP = H + 2 * PH, WR = conv_dw_row(OW), ob = MM_V == CONV_DWP ? 2 : 1;
  col += (64 - (unsigned long)col % 64) % 64 / sizeof(real); /* (its loads split no line) */
  for (int r = 0; r < n; r++) {
    for (int j = 0; j < KW; j++) /* copy j's column d: x's column d + j − PW, or 0 */
      for (int c = 0; c < C; c++)
        for (int hp = 0, h = -PH; hp < HP; hp++, h++)
          conv_row_in(W, WR, 1, j - PW,
                      h >= 0 && h < H ? x + (((long)r * C + c) * H + h) * W : 0,
                      col + (((long)j * C + c) * HP + hp) * WR);
    const real *dyr = dy + (long)r * O * OH * OW;
    for (int o0 = 0; o0 < O; o0 += ob) {
      if (O - o0 >= 2 && ob == 2 && C == 1 && KH == 3 && KW == 3) /* (constants) */
        conv_dw_rows_v(2, 9, r, 1, HP, WR, OH, OW, 3, 3, SH, o0, dyr, col, dcol);
      else if (O - o0 >= 2 && ob == 2)
        conv_dw_rows_v(2, K, r, C, HP, WR, OH, OW, KH, KW, SH, o0, dyr, col, dcol);
      else if (C == 1 && KH == 3 && KW == 3)
        conv_dw_rows_v(1, 9, r, 1, HP, WR, OH, OW, 3, 3, SH, o0, dyr, col, dcol);
      else
        conv_dw_rows_v(1, K, r, C, HP, WR, OH, OW, KH, KW, SH, o0, dyr, col, dcol);
    }
  }
  for (int o = 0; o < O; o++)
    for (int k = 0; k <= K; k++) {
      real *p = dcol + ((long)o * (K + 1) + k) * CONV_DWP;
      if (n == 0)
        for (int l = 0; l < CONV_DWP; l++)
          p[l] = 0;
      if (k < K)
        dw[(long)o * K + k] = conv_halves(p);
      else if (db)
        db[o] = conv_halves(p);
    }
#else
  (void)col, (void)dcol;
  for (int o = 0; o < O; o++)
    for (int k = 0; k <= K; k++) { /* k = K: db */
      int c = k / (KH * KW), i = k / KW % KH, j = k % KW;
      real p[CONV_DWP] = {0};
      for (int r = 0; r < n && (k < K || db); r++)
        for (int oh = 0; oh < OH; oh++)
          for (int ow = 0; ow < OW; ow++) {
            real g = dy[(((long)r * O + o) * OH + oh) * OW + ow];
            int h = oh * SH - PH + i, w = ow - PW + j, in = h >= 0 && h < H && w >= 0 && w < W;
            if (k == K)
              p[ow % CONV_DWP] += g;
            else
              p[ow % CONV_DWP] =
                MAC(p[ow % CONV_DWP], g, in ? x[(((long)r * C + c) * H + h) * W + w] : (real)0);
          }
      if (k < K)
        dw[(long)o * K + k] = conv_halves(p);
      else if (db)
        db[o] = conv_halves(p);
    }
#endif
}

#ifdef MM_SIMD
/* Whether conv2d_backward's dx goes by conv_dx_t: strides 1, and w's
   copy and a sample's dx transposed fit col. */
MM_INLINE int conv_dx_by_t(int C, int H, int W, int O, int K, int P, int SH, int SW) {
  return SH == 1 && SW == 1 && (long)O * K + (long)C * H * W <= (long)K * P;
}

/* One sample's dx as conv_gemm and conv_col2im compute it, the same
   sums in the same order, by way of transposes: dcolt (P, K) = dyᵀ·wr,
   wr (O, K) being w with each row's columns in the order (i, j, c), so
   that conv_gemm's vectors run along K (whole vectors where C is a
   multiple of MM_V, as P rarely is); then each pixel's C channels,
   vectors, sum from 0 the columns of its taps, (i, j) increasing, into
   dxt (H·W, C), which is transposed into dx. */
MM_INLINE void conv_dx_t(int C, int H, int W, int O, int KH, int KW, int PH, int PW,
                         const real *dy, const real *wr, real *dcolt, real *dxt, real *dx) {
  int OH = H + 2 * PH - KH + 1, OW = W + 2 * PW - KW + 1, P = OH * OW, K = C * KH * KW;
  int nv = (C + MM_V - 1) / MM_V, tail = C - (nv - 1) * MM_V;
  conv_gemm(P, K, O, dy, 1, P, wr, K, 0, 0, dcolt, K, 0);
  for (int h = 0; h < H; h++)
    for (int x = 0; x < W; x++)
      for (int v = 0; v < nv; v++) {
        mm_v acc = mm_vset(0);
        for (int i = 0; i < KH; i++)
          for (int j = 0; j < KW; j++) {
            int oh = h + PH - i, ow = x + PW - j;
            if (oh >= 0 && oh < OH && ow >= 0 && ow < OW)
              acc = mm_vadd(acc, mm_vget(dcolt + (long)(oh * OW + ow) * K + (i * KW + j) * C, v,
                                         nv, tail));
          }
        mm_vput(dxt + (long)(h * W + x) * C, v, nv, tail, acc);
      }
  conv_transpose(H * W, C, dxt, C, dx, (long)H * W);
}
#endif

/* Backward: dw (O, C, KH, KW) and db (O) or null, the sums over the
   batch; dx (n, C, H, W) or null: each sample's dcol = wᵀ·dy, then
   col2im. col (C·KH·KW, OH·OW) is scratch for one sample's im2col
   matrix, built again from x (where conv_dw_by_taps, for its padded
   copy instead); dcol (C·KH·KW, OH·OW) is scratch. */
MLPC_KERNEL void conv2d_backward(int n, int C, int H, int W, int O, int KH, int KW, int SH,
                                 int SW, int PH, int PW, const real *dy, const real *x,
                                 const real *w, real *col, real *dcol, real *dw, real *db,
                                 real *dx) {
  int K = C * KH * KW, P = conv_out(H, KH, SH, PH) * conv_out(W, KW, SW, PW);
  int t = O <= P && O <= CONV_DYT; /* dw's transpose fits dcol */
  for (int o = 0; o < O && db; o++)
    db[o] = 0;
  for (long e = 0; e < (long)K * O && (!t || n <= 0); e++)
    (t ? dcol : dw)[e] = 0;
  int taps = 0, HP = H + 2 * PH, WP = W + 2 * PW; /* taps: col holds x's padded copy */
  int rows = conv_dw_by_rows(C, H, W, O, KH, KW, SH, SW, PH, PW);
  int pixels = !rows && t && conv_dw_by_pixels(n, C, H, W, O, KH, KW, SH, SW, PH, PW, x);
#ifdef MM_SIMD
  taps = t && conv_dw_by_taps(C, H, W, O, KH, KW, PH, PW, P);
#endif
  if (rows)
    conv_dw_rows(n, C, H, W, O, KH, KW, SH, PH, PW, dy, x, col, dcol, dw, db);
  for (int r = 0; r < n && !rows; r++) {
    const real *xr = x + (long)r * C * H * W, *dyr = dy + (long)r * O * P;
    if (pixels) {
      conv_dw_grid(r, C, H, W, O, KH, KW, PH, PW, dyr, xr, col, dcol, db);
      continue;
    }
    if (taps)
      conv_pad(C, H, W, PH, PW, r, xr, col);
    else
      conv_im2col(C, H, W, KH, KW, SH, SW, PH, PW, xr, col);
    if (t)
      conv_dw_t(r, C, KH, KW, SH, SW, conv_out(W, KW, SW, PW), WP, (long)HP * WP, O, P, dyr, col,
                taps ? col : 0, dcol, db);
    else
      conv_dw_plain(K, O, P, dyr, col, dw, db);
  }
  for (int o = 0; o < O && t && !rows; o++)
    for (int k = 0; k < K; k++)
      dw[(long)o * K + k] = dcol[(long)k * O + o];
  if (dx && conv_dx_by_wino(C, H, W, O, KH, KW, SH, SW, PH, PW)) {
    conv_wino(n, O, conv_out(H, KH, SH, PH), conv_out(W, KW, SW, PW), C, 2 - PH, 2 - PW, dy, w,
              9, (long)C * 9, 1, 0, col, dx);
    return;
  }
  int tr = 0; /* dx by conv_dx_t: w's copy and dx's transpose in col */
#ifdef MM_SIMD
  tr = dx && conv_dx_by_t(C, H, W, O, K, P, SH, SW);
  for (int o = 0; o < O && tr; o++)
    for (int c = 0; c < C; c++)
      for (int k = 0; k < KH * KW; k++)
        col[(long)o * K + k * C + c] = w[(long)o * K + c * KH * KW + k];
#else
  (void)tr;
#endif
  for (int r = 0; r < n && dx; r++) {
#ifdef MM_SIMD
    if (tr) {
      conv_dx_t(C, H, W, O, KH, KW, PH, PW, dy + (long)r * O * P, col, dcol, col + (long)O * K,
                dx + (long)r * C * H * W);
      continue;
    }
#endif
    conv_gemm(K, P, O, w, 1, K, dy + (long)r * O * P, P, 0, 0, dcol, P, 0);
    conv_col2im(C, H, W, KH, KW, SH, SW, PH, PW, dcol, dx + (long)r * C * H * W);
  }
}

#ifdef MM_SIMD
/* The even lanes of the pair of vectors a, b (a's lanes first). */
MM_INLINE mm_v pool_even_v(mm_v a, mm_v b) {
  if (sizeof(real) == 4)
    return _mm512_permutex2var_ps(a, _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12,
                                                       10, 8, 6, 4, 2, 0), b);
  return _mm512_castpd_ps(_mm512_permutex2var_pd(
    _mm512_castps_pd(a), _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0), _mm512_castps_pd(b)));
}

/* xr[ow·SW] for the cnt <= MM_V lanes ow of a vector, SW 1 or 2 (the
   even elements of two vectors); the lanes from cnt on are 0. */
MM_INLINE mm_v pool_get_v(const real *xr, int SW, int cnt) {
  if (SW == 1)
    return mm_vloadm(xr, conv_lanes(0, 0, cnt));
  return pool_even_v(mm_vloadm(xr, conv_lanes(0, 0, 2 * cnt - 1)),
                     mm_vloadm(xr + MM_V, conv_lanes(MM_V, 0, 2 * cnt - 1)));
}

/* g where y is not ±0 (NaN included), else +0. */
MM_INLINE mm_v pool_keep_v(mm_v g, mm_v y) {
  if (sizeof(real) == 4)
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_setzero_ps(), _CMP_NEQ_UQ), g);
  return _mm512_castpd_ps(_mm512_maskz_mov_pd(
    _mm512_cmp_pd_mask(_mm512_castps_pd(y), _mm512_setzero_pd(), _CMP_NEQ_UQ),
    _mm512_castps_pd(g)));
}

/* The lanes where v is taken over the maximum m: greater, or NaN. */
MM_INLINE unsigned pool_takes_v(mm_v v, mm_v m) {
  if (sizeof(real) == 4)
    return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  __m512d vd = _mm512_castps_pd(v);
  return _mm512_cmp_pd_mask(vd, _mm512_castps_pd(m), _CMP_GT_OQ) |
         _mm512_cmp_pd_mask(vd, vd, _CMP_UNORD_Q);
}

/* relu's x < 0 ? 0 : x in each lane (NaN and −0 kept): the maximum
   of +0 and v, which is v where v is NaN or a zero. */
MM_INLINE mm_v pool_relu_v(mm_v v) {
  if (sizeof(real) == 4)
    return _mm512_max_ps(_mm512_setzero_ps(), v);
  return _mm512_castpd_ps(_mm512_max_pd(_mm512_setzero_pd(), _mm512_castps_pd(v)));
}

/* Lanes p .. p + len of the pair of vectors a, b (a's lanes first, then
   b's) from src[0 .. len), the other lanes kept. */
MM_INLINE void pool_load_seg(const real *src, int p, int len, mm_v *a, mm_v *b) {
  unsigned ma = conv_lanes(0, p, p + len), mb = conv_lanes(MM_V, p, p + len);
  if (sizeof(real) == 4) {
    if (ma)
      *a = _mm512_mask_loadu_ps(*a, (__mmask16)ma, (const float *)(src - p));
    if (mb)
      *b = _mm512_mask_loadu_ps(*b, (__mmask16)mb, (const float *)(src - p + MM_V));
    return;
  }
  if (ma)
    *a = _mm512_castpd_ps(
      _mm512_mask_loadu_pd(_mm512_castps_pd(*a), (__mmask8)ma, (const double *)(src - p)));
  if (mb)
    *b = _mm512_castpd_ps(_mm512_mask_loadu_pd(_mm512_castps_pd(*b), (__mmask8)mb,
                                               (const double *)(src - p + MM_V)));
}

/* Lane l's place in a plane, relative to its first window's first pixel,
   where a vector holds windows ow0 .. of rows of OW windows, SH·W
   pixels apart: row l / OW, window l mod OW. */
MM_INLINE __m512i pool_base_v(int OW, int SHW, int SW) {
  int at[16];
  for (int l = 0; l < 16; l++)
    at[l] = l / OW * SHW + l % OW * SW;
  return _mm512_loadu_si512((const void *)at);
}

/* maxpool2d_forward's outputs of R rows oh .. oh + R of a plane, windows
   ow0 .. ow0 + cnt of each (cnt = OW unless R is 1), R·cnt <= MM_V of
   them, a lane each, for strides SW of 1 or 2; of relu(x) where relu is
   set. A row's pixels of a tap go to lanes SW·cnt apart (rows of few
   windows share a vector), of which the even ones are the windows'
   where SW is 2; base is pool_base_v's. */
MM_INLINE void maxpool_rows_v(int relu, int W, int OW, int KH, int KW, int SH, int SW, int oh,
                              int R, int ow0, int cnt, __m512i base, const real *x, real *y,
                              int *arg) {
  mm_v m = mm_vset(0);
  __m512i at = _mm512_setzero_si512();
  for (int i = 0; i < KH; i++)
    for (int j = 0; j < KW; j++) {
      int e = (oh * SH + i) * W + ow0 * SW + j;
      mm_v v = mm_vset(0), b = mm_vset(0);
      for (int k = 0; k < R; k++)
        pool_load_seg(x + e + k * SH * W, k * SW * cnt, SW * (cnt - 1) + 1, &v, &b);
      if (SW == 2)
        v = pool_even_v(v, b);
      if (relu)
        v = pool_relu_v(v);
      unsigned take = i + j == 0 ? 0xffff : pool_takes_v(v, m);
      m = sizeof(real) == 4 ? _mm512_mask_blend_ps((__mmask16)take, m, v)
                            : _mm512_castpd_ps(_mm512_mask_blend_pd(
                                (__mmask8)take, _mm512_castps_pd(m), _mm512_castps_pd(v)));
      at = _mm512_mask_blend_epi32((__mmask16)take, at,
                                   _mm512_add_epi32(base, _mm512_set1_epi32(e)));
    }
  mm_vstorem(y + oh * OW + ow0, conv_lanes(0, 0, R * cnt), m);
  _mm512_mask_storeu_epi32(arg + oh * OW + ow0, (__mmask16)conv_lanes(0, 0, R * cnt), at);
}
#endif

/* maxpool2d_forward of x, or of relu(x) where relu is set. With vectors
   (strides 1 and 2), MM_V windows of a row at a time, or as many rows
   as fit whole in a vector where they are short. */
MM_INLINE void maxpool2d_run(int relu, int n, int C, int H, int W, int KH, int KW, int SH,
                             int SW, const real *x, real *y, int *arg) {
  int OH = conv_out(H, KH, SH, 0), OW = conv_out(W, KW, SW, 0);
#ifdef MM_SIMD
  int R = OW <= MM_V / 2 ? MM_V / OW : 1; /* rows a vector */
  __m512i base = pool_base_v(R > 1 ? OW : 16, SH * W, SW);
#endif
  for (long q = 0; q < (long)n * C; q++, x += (long)H * W, y += OH * OW, arg += OH * OW)
    for (int oh = 0; oh < OH; oh++) {
      int ow = 0;
#ifdef MM_SIMD
      if (SW <= 2 && R > 1) {
        int rk = MM_MIN(R, OH - oh);
        maxpool_rows_v(relu, W, OW, KH, KW, SH, SW, oh, rk, 0, OW, base, x, y, arg);
        oh += rk - 1;
        continue;
      }
      for (; ow < OW && SW <= 2; ow += MM_V)
        maxpool_rows_v(relu, W, OW, KH, KW, SH, SW, oh, 1, ow, MM_MIN(MM_V, OW - ow), base, x,
                       y, arg);
#endif
      for (; ow < OW; ow++) {
        int at = oh * SH * W + ow * SW;
        real m = relu && x[at] < 0 ? (real)0 : x[at];
        for (int i = 0; i < KH; i++)
          for (int j = 0; j < KW; j++) {
            int e = (oh * SH + i) * W + ow * SW + j;
            real v = relu && x[e] < 0 ? (real)0 : x[e];
            if (v > m || v != v)
              m = v, at = e;
          }
        y[oh * OW + ow] = m;
        arg[oh * OW + ow] = at;
      }
    }
}

/* Max pooling: y (n, C, OH, OW), each window's maximum, and arg, its
   index h·W + w in the plane. The window is scanned row by row, and a
   value taken when it is greater than the maximum so far or NaN, as
   PyTorch does: the first of equal maxima wins, and NaN propagates.
   With vectors, MM_V windows of a row at a time (strides 1 and 2). */
MLPC_KERNEL void maxpool2d_forward(int n, int C, int H, int W, int KH, int KW, int SH, int SW,
                                   const real *x, real *y, int *arg) {
  maxpool2d_run(0, n, C, H, W, KH, KW, SH, SW, x, y, arg);
}

/* relu then max pooling in one pass: maxpool2d_forward of act_relu(x),
   the same y and arg, relu's output not stored. */
MLPC_KERNEL void maxpool2d_relu_forward(int n, int C, int H, int W, int KH, int KW, int SH,
                                        int SW, const real *x, real *y, int *arg) {
  maxpool2d_run(1, n, C, H, W, KH, KW, SH, SW, x, y, arg);
}

#ifdef MM_SIMD
/* Row h of a plane's dx where windows do not overlap (KH <= SH, KW <=
   SW) and SW is 1 or 2: each pixel 0 + the dy of the window whose arg it
   is (+0 where y is ±0), else +0; a vector of pixels at a time, each
   window's dy, arg and y spread over its SW lanes. */
MM_INLINE void maxpool_back_row_v(int W, int OH, int OW, int SH, int SW, int h,
                                  const real *dy, const int *arg, const real *y, real *dx) {
  int oh = h / SH;
  __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
  for (int w0 = 0; w0 < W; w0 += MM_V) {
    mm_v g = mm_vset(0);
    unsigned hit = 0;
    if (oh < OH) {
      int at = oh * OW + w0 / SW;
      unsigned wm = conv_lanes(w0 / SW, 0, OW);
      __m512i a = _mm512_maskz_loadu_epi32((__mmask16)wm, arg + at);
      g = mm_vadd(mm_vset(0), mm_vloadm(dy + at, wm));
      if (y)
        g = pool_keep_v(g, mm_vloadm(y + at, wm));
      if (SW == 2) {
        a = _mm512_permutexvar_epi32(dup, a);
        g = sizeof(real) == 4 ? _mm512_permutexvar_ps(dup, g)
                              : _mm512_castpd_ps(_mm512_permutexvar_pd(
                                  _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0), _mm512_castps_pd(g)));
      }
      hit = _mm512_cmpeq_epi32_mask(a, _mm512_add_epi32(_mm512_set1_epi32(h * W + w0), lane)) &
            conv_lanes(w0, 0, OW * SW);
    }
    g = sizeof(real) == 4
            ? _mm512_maskz_mov_ps((__mmask16)hit, g)
            : _mm512_castpd_ps(_mm512_maskz_mov_pd((__mmask8)hit, _mm512_castps_pd(g)));
    mm_vstorem(dx + (long)h * W + w0, conv_lanes(w0, 0, W), g);
  }
}
#endif

/* maxpool2d_backward; with y, that of maxpool2d_relu_forward: a dy whose
   maximum y is ±0 (relu's x <= 0) is left out, which is relu's
   backward, x <= 0 ? 0 : g, at every pixel its windows chose. */
MM_INLINE void maxpool2d_back_run(int n, int C, int H, int W, int KH, int KW, int SH, int SW,
                                  const real *dy, const int *arg, const real *y, real *dx) {
  int OH = conv_out(H, KH, SH, 0), OW = conv_out(W, KW, SW, 0);
#ifdef MM_SIMD
  if (KH <= SH && KW <= SW && SW <= 2) { /* windows apart: a pixel takes one dy at most */
    for (long q = 0; q < (long)n * C; q++, dx += (long)H * W, dy += OH * OW, arg += OH * OW) {
      for (int h = 0; h < H; h++)
        maxpool_back_row_v(W, OH, OW, SH, SW, h, dy, arg, y, dx);
      y = y ? y + OH * OW : 0;
    }
    return;
  }
#endif
  for (long e = 0; e < (long)n * C * H * W; e++)
    dx[e] = 0;
  for (long q = 0; q < (long)n * C; q++, dx += (long)H * W, dy += OH * OW, arg += OH * OW) {
    for (int p = 0; p < OH * OW; p++)
      if (!y || y[p] != 0)
        dx[arg[p]] += dy[p];
    y = y ? y + OH * OW : 0;
  }
}

/* Backward: dx (n, C, H, W) = 0, plus each dy at its arg, in order. */
MLPC_KERNEL void maxpool2d_backward(int n, int C, int H, int W, int KH, int KW, int SH,
                                    int SW, const real *dy, const int *arg, real *dx) {
  maxpool2d_back_run(n, C, H, W, KH, KW, SH, SW, dy, arg, 0, dx);
}

/* Backward of maxpool2d_relu_forward (y its output): dx, relu's input's
   gradient, as act_relu_back after maxpool2d_backward gives it. */
MLPC_KERNEL void maxpool2d_relu_backward(int n, int C, int H, int W, int KH, int KW, int SH,
                                         int SW, const real *dy, const int *arg, const real *y,
                                         real *dx) {
  maxpool2d_back_run(n, C, H, W, KH, KW, SH, SW, dy, arg, y, dx);
}

#ifdef MM_SIMD
/* avgpool2d_forward's outputs ow0 .. ow0 + cnt of row oh of a plane, a
   lane each, for strides SW of 1 or 2. */
MM_INLINE void avgpool_row_v(int W, int OW, int KH, int KW, int SH, int SW, int oh, int ow0,
                             int cnt, const real *x, real *y) {
  mm_v s = mm_vset(0);
  for (int i = 0; i < KH; i++)
    for (int j = 0; j < KW; j++)
      s = mm_vadd(s, pool_get_v(x + (oh * SH + i) * W + ow0 * SW + j, SW, cnt));
  mm_v k = mm_vset((real)(KH * KW));
  s = sizeof(real) == 4 ? _mm512_div_ps(s, k)
                        : _mm512_castpd_ps(_mm512_div_pd(_mm512_castps_pd(s), _mm512_castps_pd(k)));
  mm_vstorem(y + oh * OW + ow0, conv_lanes(0, 0, cnt), s);
}
#endif

/* Average pooling: y (n, C, OH, OW), each window's sum, row by row from
   0, divided by KH·KW; with vectors, MM_V windows of a row at a time
   (strides 1 and 2). */
MLPC_KERNEL void avgpool2d_forward(int n, int C, int H, int W, int KH, int KW, int SH, int SW,
                                   const real *x, real *y) {
  int OH = conv_out(H, KH, SH, 0), OW = conv_out(W, KW, SW, 0);
  for (long q = 0; q < (long)n * C; q++, x += (long)H * W, y += OH * OW)
    for (int oh = 0; oh < OH; oh++) {
      int ow = 0;
#ifdef MM_SIMD
      for (; ow < OW && SW <= 2; ow += MM_V)
        avgpool_row_v(W, OW, KH, KW, SH, SW, oh, ow, MM_MIN(MM_V, OW - ow), x, y);
#endif
      for (; ow < OW; ow++) {
        real s = 0;
        for (int i = 0; i < KH; i++)
          for (int j = 0; j < KW; j++)
            s += x[(oh * SH + i) * W + ow * SW + j];
        y[oh * OW + ow] = s / (real)(KH * KW);
      }
    }
}

/* Backward: dx (n, C, H, W) = 0, plus each dy / (KH·KW) added to every
   element of its window, windows in order. */
MLPC_KERNEL void avgpool2d_backward(int n, int C, int H, int W, int KH, int KW, int SH,
                                    int SW, const real *dy, real *dx) {
  int OH = conv_out(H, KH, SH, 0), OW = conv_out(W, KW, SW, 0);
  for (long e = 0; e < (long)n * C * H * W; e++)
    dx[e] = 0;
  for (long q = 0; q < (long)n * C; q++, dx += (long)H * W, dy += OH * OW)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++) {
        real g = dy[oh * OW + ow] / (real)(KH * KW);
        for (int i = 0; i < KH; i++)
          for (int j = 0; j < KW; j++)
            dx[(oh * SH + i) * W + ow * SW + j] += g;
      }
}

/* BatchNorm2d's sums run in BN2D_PARTS partial sums, so that they
   vectorise along the positions: see bn2d_sum. */
#define BN2D_PARTS 32

#ifdef MM_SIMD
/* The terms of bn2d_sum for 16 positions from a (and b), the lanes of m
   (the others 0), as two vectors of doubles. */
MM_INLINE void bn2d_terms_v(int kind, const real *a, const real *b, unsigned m, __m512d mean,
                            __m512d *lo, __m512d *hi) {
  if (sizeof(real) == 4) {
    __m512 v = _mm512_maskz_loadu_ps((__mmask16)m, (const float *)a);
    if (kind == 2)
      v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps((__mmask16)m, (const float *)b));
    *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  } else {
    *lo = _mm512_maskz_loadu_pd((__mmask8)m, (const double *)a);
    *hi = _mm512_maskz_loadu_pd((__mmask8)(m >> 8), (const double *)a + 8);
    if (kind == 2) {
      *lo = _mm512_mul_pd(*lo, _mm512_maskz_loadu_pd((__mmask8)m, (const double *)b));
      *hi = _mm512_mul_pd(*hi, _mm512_maskz_loadu_pd((__mmask8)(m >> 8), (const double *)b + 8));
    }
  }
  if (kind == 1) {
    *lo = _mm512_sub_pd(*lo, mean), *hi = _mm512_sub_pd(*hi, mean);
    *lo = _mm512_mul_pd(*lo, *lo), *hi = _mm512_mul_pd(*hi, *hi);
  }
}

/* The 32 partial sums of p (four vectors of doubles) added in halves. */
MM_INLINE double bn2d_halves_v(const __m512d *p) {
  double h[8]; /* the halves: l and l + 16, l and l + 8, then in h */
  _mm512_storeu_pd(h, _mm512_add_pd(_mm512_add_pd(p[0], p[2]), _mm512_add_pd(p[1], p[3])));
  for (int w = 4; w; w /= 2)
    for (int l = 0; l < w; l++)
      h[l] += h[l + w];
  return h[0];
}

/* bn2d_sum with its 32 partial sums in four vectors of doubles, each
   term added in the lanes of its position only; with kind 0 and x2,
   also the sum of kind 2 into *sum2, in the same pass over x. */
MM_INLINE double bn2d_sum_v(int n, int S, long sx, long sx2, int kind, const real *x,
                            const real *x2, double mean, double *sum2) {
  __m512d p[4], p2[4], t[4], mv = _mm512_set1_pd(mean);
  for (int q = 0; q < 4; q++)
    p[q] = p2[q] = _mm512_setzero_pd();
  for (int r = 0; r < n; r++) {
    const real *a = x + r * sx, *b = x2 ? x2 + r * sx2 : 0;
    for (int s0 = 0; s0 < S; s0 += 32) {
      unsigned m0 = S - s0 >= 16 ? 0xffff : (1u << (S - s0)) - 1;
      unsigned m1 = S - s0 >= 32 ? 0xffff : S - s0 <= 16 ? 0 : (1u << (S - s0 - 16)) - 1;
      bn2d_terms_v(kind, a + s0, b ? b + s0 : 0, m0, mv, &t[0], &t[1]);
      bn2d_terms_v(kind, a + s0 + 16, b ? b + s0 + 16 : 0, m1, mv, &t[2], &t[3]);
      for (int q = 0; q < 4; q++) {
        unsigned m = (q < 2 ? m0 : m1) >> (q % 2 * 8);
        p[q] = _mm512_mask_add_pd(p[q], (__mmask8)m, p[q], t[q]);
      }
      if (!sum2)
        continue;
      bn2d_terms_v(2, a + s0, b + s0, m0, mv, &t[0], &t[1]);
      bn2d_terms_v(2, a + s0 + 16, b + s0 + 16, m1, mv, &t[2], &t[3]);
      for (int q = 0; q < 4; q++) {
        unsigned m = (q < 2 ? m0 : m1) >> (q % 2 * 8);
        p2[q] = _mm512_mask_add_pd(p2[q], (__mmask8)m, p2[q], t[q]);
      }
    }
  }
  if (sum2)
    *sum2 = bn2d_halves_v(p2);
  return bn2d_halves_v(p);
}
#endif

/* A sum over a channel's n planes of S elements in double, sample r's
   plane at x + r·sx (and x2 + r·sx2), of terms x (kind 0), (x − mean)²
   (1) or x·x2, the product in real (2): element s of each plane goes to
   partial sum s mod BN2D_PARTS, each partial summed in increasing
   (sample, position); the partials are then added in halves (partial l
   and l + 16, then l and l + 8, ...). With S = 1, one partial:
   bn_forward's sums in bn_forward's order. With kind 0 and sum2 not
   null, also the sum of kind 2 (x·x2) into *sum2, in the same pass over
   x, each sum in its own order. */
MM_INLINE double bn2d_sum(int n, int S, long sx, long sx2, int kind, const real *x,
                          const real *x2, double mean, double *sum2) {
#ifdef MM_SIMD
  if (BN2D_PARTS == 32)
    return bn2d_sum_v(n, S, sx, sx2, kind, x, x2, mean, sum2);
#endif
  double p[BN2D_PARTS] = {0}, p2[BN2D_PARTS] = {0};
  for (int r = 0; r < n; r++) {
    const real *a = x + r * sx, *b = x2 ? x2 + r * sx2 : 0;
    for (int s0 = 0; s0 < S; s0 += BN2D_PARTS) {
      int m = MM_MIN(BN2D_PARTS, S - s0);
      for (int l = 0; l < m; l++) {
        double d = kind == 2 ? a[s0 + l] * b[s0 + l] : a[s0 + l] - (kind ? mean : 0);
        p[l] += kind == 1 ? d * d : d;
        if (sum2)
          p2[l] += a[s0 + l] * b[s0 + l];
      }
    }
  }
  for (int w = BN2D_PARTS / 2; w; w /= 2)
    for (int l = 0; l < w; l++)
      p[l] += p[l + w], p2[l] += p2[l + w];
  if (sum2)
    *sum2 = p2[0];
  return p[0];
}

/* One plane of BatchNorm2d's output, S positions: x̂ = (x − mean)·rstd
   rounded to real, y = γ·x̂ + β. */
MM_INLINE void bn2d_plane(int S, const real *x, double mean, double rstd, real gamma, real beta,
                          real *xhat, real *y) {
  for (int s = 0; s < S; s++) {
    real xh = (real)((x[s] - mean) * rstd);
    xhat[s] = xh;
    y[s] = gamma * xh + beta;
  }
}

/* BatchNorm2d: bn_forward with the statistics of channel c over the
   batch and the S positions of its plane (bn2d_sum): x, xhat, y
   (n, C, S); the running variance's unbiased factor N/(N − 1), N = n·S.
   With y null, the statistics alone (mean, var, rstd, and the running
   ones in training), which maxpool2d_bn_relu_forward then applies. */
MLPC_KERNEL void bn2d_forward(int n, int C, int S, int train, double m, double eps,
                              const real *x, const real *gamma, const real *beta,
                              real *run_mean, real *run_var, double *mean, double *var,
                              double *rstd, real *xhat, real *y) {
  long N = (long)n * S;
  for (int c = 0; c < C; c++) {
    if (train) {
      const real *xc = x + (long)c * S; /* its planes, C·S apart */
      mean[c] = bn2d_sum(n, S, (long)C * S, 0, 0, xc, 0, 0, 0) / N;
      var[c] = bn2d_sum(n, S, (long)C * S, 0, 1, xc, 0, mean[c], 0) / N;
      run_mean[c] = (real)((1 - m) * run_mean[c] + m * mean[c]);
      run_var[c] = (real)((1 - m) * run_var[c] + m * var[c] * N / (N - 1));
    } else
      mean[c] = run_mean[c], var[c] = run_var[c];
    rstd[c] = 1 / sqrt(var[c] + eps);
    for (int r = 0; r < n && y; r++) { /* while the channel is in cache */
      long e = ((long)r * C + c) * S;
      bn2d_plane(S, x + e, mean[c], rstd[c], gamma[c], beta[c], xhat + e, y + e);
    }
  }
}

/* BatchNorm2d's normalisation, then relu and max pooling, a plane at a
   time: bn2d_forward's xhat from x and the statistics bn2d_forward
   computed with y null, and each plane of its y into z (H·W reals of
   scratch), pooled from there as maxpool2d_relu_forward pools into y
   and arg. The same bits as the two kernels; BatchNorm2d's y is never
   written to memory (the health figures compute it again). */
MLPC_KERNEL void maxpool2d_bn_relu_forward(int n, int C, int H, int W, int KH, int KW, int SH,
                                           int SW, const real *x, const double *mean,
                                           const double *rstd, const real *gamma,
                                           const real *beta, real *xhat, real *z, real *y,
                                           int *arg) {
  long S = (long)H * W, P = (long)conv_out(H, KH, SH, 0) * conv_out(W, KW, SW, 0);
  for (long q = 0; q < (long)n * C; q++) {
    int c = (int)(q % C);
    bn2d_plane((int)S, x + q * S, mean[c], rstd[c], gamma[c], beta[c], xhat + q * S, z);
    maxpool2d_run(1, 1, 1, H, W, KH, KW, SH, SW, z, y + q * P, arg + q * P);
  }
}

/* bn2d_backward for channel c, its planes of dy ds apart (those of xhat
   and dx C·S apart, from channel c's first): the sums (bn2d_sum, one
   pass for both), dgamma, dbeta, then dx by bn_dx while the channel is
   in cache. */
MM_INLINE void bn2d_back_channel(int n, int C, int S, int c, const real *dy, long ds,
                                 const real *xhat, const real *gamma, const double *rstd,
                                 double *sdy, double *sdyx, real *dgamma, real *dbeta,
                                 real *dx) {
  long N = (long)n * S, cs = (long)C * S;
  xhat += (long)c * S, dx += (long)c * S;
  sdy[c] = bn2d_sum(n, S, ds, cs, 0, dy, xhat, 0, &sdyx[c]);
  dgamma[c] = (real)sdyx[c];
  dbeta[c] = (real)sdy[c];
  for (int r = 0; r < n; r++)
    bn_dx(S, 1, dy + r * ds, xhat + r * cs, (real)(sdy[c] / N), (real)(sdyx[c] / N),
          (real)(gamma[c] * rstd[c]), dx + r * cs);
}

/* Backward: bn_backward with the sums of channel c over the batch and
   its S positions (bn2d_sum), N = n·S. */
MLPC_KERNEL void bn2d_backward(int n, int C, int S, const real *dy, const real *xhat,
                               const real *gamma, const double *rstd, double *sdy,
                               double *sdyx, real *dgamma, real *dbeta, real *dx) {
  for (int c = 0; c < C; c++)
    bn2d_back_channel(n, C, S, c, dy + (long)c * S, (long)C * S, xhat, gamma, rstd, sdy, sdyx,
                      dgamma, dbeta, dx);
}

/* The backward of maxpool2d_bn_relu_forward's three layers, a channel
   at a time: the channel's n planes of dy at BatchNorm2d's output as
   maxpool2d_relu_backward computes them from the pooling's gradient g,
   arg and output y (n, C, OH, OW), into z (n·H·W reals of scratch),
   then bn2d_backward's sums and dx from z, in the level-2 cache rather
   than the batch's dy in memory. The same bits as the two kernels. */
MLPC_KERNEL void maxpool2d_relu_bn_backward(int n, int C, int H, int W, int KH, int KW, int SH,
                                            int SW, const real *g, const int *arg,
                                            const real *y, const real *xhat, const real *gamma,
                                            const double *rstd, double *sdy, double *sdyx,
                                            real *dgamma, real *dbeta, real *z, real *dx) {
  int S = H * W, P = conv_out(H, KH, SH, 0) * conv_out(W, KW, SW, 0);
  for (int c = 0; c < C; c++) {
    for (int r = 0; r < n; r++) {
      long q = ((long)r * C + c) * P;
      maxpool2d_back_run(1, 1, H, W, KH, KW, SH, SW, g + q, arg + q, y + q, z + (long)r * S);
    }
    bn2d_back_channel(n, C, S, c, z, S, xhat, gamma, rstd, sdy, sdyx, dgamma, dbeta, dx);
  }
}

#ifndef MLPC_KERNEL_SMALL_CALLED /* (else mlpc's copy, bound above) */
/* ---- activations ---- */

/* e^x: rt/rmath.h's for float, the C library's for double. */
MM_INLINE real mm_exp(real x) {
  return sizeof(real) == 4 ? (real)rm_expf((float)x) : (real)EXP(x);
}

/* tanh: rt/rmath.h's for float, the C library's for double. */
MM_INLINE real mm_tanh(real x) {
  return sizeof(real) == 4 ? (real)rm_tanhf((float)x) : (real)TANH(x);
}

/* Every activation of rt/acts.h, forward (y from x) and backward
   (dx from x, y and the upstream gradient g) over len elements, each
   computing its row's formula, the very text inference C computes; p is
   the activation's parameter (leaky_relu's slope, elu's alpha). Kernels,
   so that tcc's code does not run these loops itself, with mm_exp and
   mm_tanh, so that gcc vectorises them. relu and leaky_relu take the
   x <= 0 side's gradient at 0. */
#define ACT_KERNELS_(e, name, dflt, fwd, bwd, ...)                                       \
  MLPC_KERNEL void act_##name(int len, const real *xs, real *ys, real p) {               \
    (void)p;                                                                             \
    for (int i = 0; i < len; i++) {                                                      \
      real x = xs[i];                                                                    \
      ys[i] = fwd;                                                                       \
    }                                                                                    \
  }                                                                                      \
  MLPC_KERNEL void act_##name##_back(int len, const real *xs, const real *ys,            \
                                     const real *gs, real *dx, real p) {                 \
    (void)xs, (void)ys, (void)p;                                                         \
    for (int i = 0; i < len; i++) {                                                      \
      real x = xs[i], y = ys[i], g = gs[i];                                              \
      (void)x, (void)y;                                                                  \
      dx[i] = bwd;                                                                       \
    }                                                                                    \
  }
ACTS(ACT_KERNELS_)
#undef ACT_KERNELS_

/* ---- dropout ---- */

/* Training mode over len elements: element i is kept when u, the i-th
   draw of a SplitMix64 generator started at key (drop_key) as a double
   of 53 random bits in [0, 1), is >= p, so with probability 1 - p, as
   PyTorch's bernoulli_(1 - p); then mask[i] = scale, PyTorch's 1 / (1 - p)
   in real, else 0; and y = x * mask, as PyTorch's input * noise. */
MLPC_KERNEL void drop_forward(int len, const real *x, real *y, real *mask,
                              unsigned long long key, double p, real scale) {
  for (int i = 0; i < len; i++) {
    unsigned long long z = mm_mix64(key + (unsigned long long)(i + 1) * 0x9e3779b97f4a7c15ULL);
    mask[i] = (double)(z >> 11) * 0x1p-53 >= p ? scale : (real)0;
    y[i] = x[i] * mask[i];
  }
}

/* dx = dy * mask, the mask of the forward pass. */
MLPC_KERNEL void drop_backward(int len, const real *dy, const real *mask, real *dx) {
  for (int i = 0; i < len; i++)
    dx[i] = dy[i] * mask[i];
}

/* ---- the loss: cross-entropy through log-sum-exp ---- */

/* The row's first maximum: the index of its greatest logit. */
MLPC_KERNEL int xent_arg(int K, const real *zr) {
  int arg = 0;
  for (int k = 1; k < K; k++)
    if (zr[k] > zr[arg])
      arg = k;
  return arg;
}

/* Forward over n rows of K logits z: lse[r] = log Σ_k e^(z[r][k] − m)
   with m the row's maximum (the sum in order k, in real), so that
   log_softmax is (z − m) − lse[r], as PyTorch's CPU kernel computes it
   (m + lse[r] would round lse[r] away where it is small, and with it a
   confident row's gradient); adds the number of rows whose first maximum
   is the label y[r] to *correct; returns Σ_r −((z[r][y[r]] − m) − lse[r])
   in double. e (n, K) is scratch: the exponentials, computed in one loop
   over all rows, so that it vectorises. */
MLPC_KERNEL double xent_forward(int n, int K, const real *z, const unsigned char *y,
                                real *lse, real *e, long *correct) {
  for (int r = 0; r < n; r++) { /* lse holds the maxima for a while */
    int arg = xent_arg(K, z + (long)r * K);
    lse[r] = z[(long)r * K + arg];
    *correct += arg == y[r];
  }
  for (int r = 0; r < n; r++)
    for (int k = 0; k < K; k++)
      e[(long)r * K + k] = z[(long)r * K + k] - lse[r];
  for (long i = 0; i < (long)n * K; i++)
    e[i] = mm_exp(e[i]);
  double sum = 0;
  for (int r = 0; r < n; r++) {
    real s = 0;
    for (int k = 0; k < K; k++)
      s += e[(long)r * K + k];
    real m = lse[r];
    lse[r] = LOG(s);
    sum -= (real)(z[(long)r * K + y[r]] - m) - lse[r];
  }
  return sum;
}

/* log_softmax of the n rows, (z − m) − lse[r], into out. */
MLPC_KERNEL void xent_logp(int n, int K, const real *z, const real *lse, real *out) {
  for (int r = 0; r < n; r++) {
    const real *zr = z + (long)r * K;
    real m = zr[xent_arg(K, zr)];
    for (int k = 0; k < K; k++)
      out[(long)r * K + k] = (real)(zr[k] - m) - lse[r];
  }
}

/* Backward: dz[r][k] = (e^((z[r][k] − m) − lse[r]) − [k = y[r]]) / n. */
MLPC_KERNEL void xent_backward(int n, int K, const real *z, const real *lse,
                               const unsigned char *y, real *dz) {
  xent_logp(n, K, z, lse, dz);
  for (long i = 0; i < (long)n * K; i++)
    dz[i] = mm_exp(dz[i]);
  for (int r = 0; r < n; r++)
    dz[(long)r * K + y[r]] -= 1;
  for (long i = 0; i < (long)n * K; i++)
    dz[i] /= n;
}

/* Label smoothing eps (CrossEntropyLoss(label_smoothing=eps)): the loss
   summed over n rows, (1 − eps)·nll − (eps / K)·Σ_r Σ_k ((z[r][k] − m) − lse[r]),
   nll being xent_forward's sum (whose lse this reuses); in double. */
MLPC_KERNEL double xent_smooth(int n, int K, const real *z, const real *lse, double nll,
                               double eps) {
  double smooth = 0;
  for (int r = 0; r < n; r++) {
    const real *zr = z + (long)r * K;
    real m = zr[xent_arg(K, zr)];
    for (int k = 0; k < K; k++)
      smooth -= (real)(zr[k] - m) - lse[r];
  }
  return (1 - eps) * nll + smooth * (eps / K);
}

/* Its gradient: dz[r][k] = (e^((z[r][k] − m) − lse[r]) − q[k]) / n, the target
   q[k] = off + on·[k = y[r]], with on = 1 − eps and off = eps / K. */
MLPC_KERNEL void xent_smooth_backward(int n, int K, const real *z, const real *lse,
                                      const unsigned char *y, real *dz, real on, real off) {
  xent_logp(n, K, z, lse, dz);
  for (long i = 0; i < (long)n * K; i++)
    dz[i] = mm_exp(dz[i]) - off;
  for (int r = 0; r < n; r++)
    dz[(long)r * K + y[r]] -= on;
  for (long i = 0; i < (long)n * K; i++)
    dz[i] /= n;
}

/* ---- gradient clipping (clip_grad_norm_) ---- */

/* The 2-norm of len gradients, as a real: the squares (each exact in
   double for float) summed in double, the root rounded once to real. */
MLPC_KERNEL real clip_norm(int len, const real *g) {
  double s = 0;
  for (int i = 0; i < len; i++)
    s += (double)g[i] * g[i];
  return (real)sqrt(s);
}

/* g *= coef. */
MLPC_KERNEL void clip_scale(int len, real *g, real coef) {
  for (int i = 0; i < len; i++)
    g[i] *= coef;
}

/* ---- optimizers: one tensor's update (docs: SEMANTICS.md) ---- */

/* SGD: weight decay wd, momentum buffer buf (NULL without momentum;
   first: the first step), damp1 = 1 − dampening, neg_lr = −lr. */
MLPC_KERNEL void opt_sgd(int len, real *p, const real *dp, real *buf, int first, real wd,
                         real mom, real damp1, int nesterov, real neg_lr) {
  for (int i = 0; i < len; i++) {
    real d = dp[i];
    if (wd != 0)
      d += wd * p[i];
    if (buf) {
      buf[i] = first ? d : mom * buf[i] + damp1 * d;
      if (nesterov)
        d += mom * buf[i];
      else
        d = buf[i];
    }
    p[i] += neg_lr * d;
  }
}

/* RMSprop: square average sq, grad average avg (NULL unless centered),
   momentum buffer buf (NULL without momentum); alpha1 = 1 − alpha. The
   arrays are distinct tensors (restrict): so gcc vectorises the copy
   compiled into mlpc for tcc's code too, which, with sizes and absent
   arrays unknown, ran element by element, 3 to 7 times slower. */
MLPC_KERNEL void opt_rmsprop(int len, real *restrict p, const real *restrict dp,
                             real *restrict sq, real *restrict avg, real *restrict buf,
                             real wd, real alpha, real alpha1, real eps, real mom,
                             real neg_lr) {
  for (int i = 0; i < len; i++) {
    real d = dp[i];
    if (wd != 0)
      d += wd * p[i];
    sq[i] = sq[i] * alpha + alpha1 * d * d;
    real den;
    if (avg) {
      avg[i] = avg[i] * alpha + alpha1 * d;
      den = SQRT(sq[i] - avg[i] * avg[i]) + eps;
    } else
      den = SQRT(sq[i]) + eps;
    if (buf) {
      buf[i] = buf[i] * mom + d / den;
      p[i] += neg_lr * buf[i];
    } else
      p[i] += neg_lr * (d / den);
  }
}

/* Adam and AdamW: moments m and v; decay = 1 − lr·λ (AdamW, else 1),
   wd = λ (Adam, else 0); beta11 = 1 − β₁, beta21 = 1 − β₂. */
MLPC_KERNEL void opt_adam(int len, real *p, const real *dp, real *m, real *v, real decay,
                          real wd, real beta1, real beta11, real beta2, real beta21,
                          real step_size, real bc2_sqrt, real eps) {
  for (int i = 0; i < len; i++) {
    real d = dp[i];
    if (decay != 1)
      p[i] *= decay;
    if (wd != 0)
      d += wd * p[i];
    m[i] = m[i] * beta1 + beta11 * d;
    v[i] = v[i] * beta2 + beta21 * d * d;
    p[i] += -step_size * (m[i] / (SQRT(v[i]) / bc2_sqrt + eps));
  }
}
#endif
#endif
