/*
 * conv_bench.c — the reference CNN's convolutions against the core's
 * arithmetic rate: input 1x28x28, conv 16 3x3 pad 1 → BatchNorm2d → relu
 * → maxpool 2 → conv 32 3x3 pad 1 → BatchNorm2d → relu → maxpool 2 →
 * linear 10, batch 32, float32, the fma arithmetic.
 *
 * The kernels of rt/kernels.h are inlined here with constant sizes,
 * as the gcc backend inlines them, and also called through the copies
 * compiled into mlpc for tcc's code (variable sizes). The rate is that of
 * gemm_rate's register-blocked microkernel on data in L1: the roofline a
 * convolution, a matrix product at heart, could reach. Prints each
 * kernel's time per training step and, for the convolutions, GFLOP/s
 * and the fraction of that rate; then an epoch of 60,000 images.
 *
 *   cmake --build build --target conv_bench && build/bench/conv_bench
 *   (CMake builds it with mlpc's kernel copies; or without them:
 *   cc -O3 -march=native -ffp-contract=off -fno-math-errno -fno-trapping-math
 *      -DCONV_BENCH_ALONE bench/conv_bench.c -o conv_bench -lm)
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <immintrin.h>

typedef float real;
#define FMA fmaf
#define SQRT sqrtf
#define TANH tanhf
#define EXP expf
#define LOG logf
#define ERF erff
#define MLPC_FMA 1
#ifndef M_SQRT1_2
#define M_SQRT1_2 0x1.6a09e667f3bcdp-1
#endif
#ifndef M_2_SQRTPI
#define M_2_SQRTPI 0x1.20dd750429b6dp+0
#endif
#include "../rt/rmath.h"
#include "../rt/acts.h"
#include "../rt/kernels.h"
#ifndef CONV_BENCH_ALONE
#include "../mlpc.h"
#endif

enum { BATCH = 32, STEPS = 1875 /* 60,000 / 32 */, REPEATS = 100 };

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the roofline ---- */

/* C (6, 64) += A (6, K) · B (K, 64), 24 sums in registers: a vector of 16
   columns of B, loaded once per k for the 6 rows, each A element
   broadcast. Data in L1. */
static void __attribute__((noinline)) gemm_6x64(int K, const float *A, const float *B,
                                                float *C) {
  __m512 c[6][4];
  for (int i = 0; i < 6; i++)
    for (int v = 0; v < 4; v++)
      c[i][v] = _mm512_loadu_ps(C + i * 64 + 16 * v);
  for (int k = 0; k < K; k++) {
    __m512 b0 = _mm512_loadu_ps(B + k * 64), b1 = _mm512_loadu_ps(B + k * 64 + 16);
    __m512 b2 = _mm512_loadu_ps(B + k * 64 + 32), b3 = _mm512_loadu_ps(B + k * 64 + 48);
    for (int i = 0; i < 6; i++) {
      __m512 a = _mm512_set1_ps(A[i * K + k]);
      c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
      c[i][2] = _mm512_fmadd_ps(a, b2, c[i][2]);
      c[i][3] = _mm512_fmadd_ps(a, b3, c[i][3]);
    }
  }
  for (int i = 0; i < 6; i++)
    for (int v = 0; v < 4; v++)
      _mm512_storeu_ps(C + i * 64 + 16 * v, c[i][v]);
}

/* The best GFLOP/s of gemm_6x64 over REPEATS runs. */
static double gemm_rate(void) {
  enum { K = 96, RUNS = 500 };
  static float A[6 * K], B[K * 64], C[6 * 64];
  for (int i = 0; i < 6 * K; i++)
    A[i] = (float)(i % 7) * 0.001f;
  for (int i = 0; i < K * 64; i++)
    B[i] = (float)(i % 5) * 0.001f;
  double best = 1e30;
  for (int r = 0; r < REPEATS; r++) {
    double t = now();
    for (int k = 0; k < RUNS; k++)
      gemm_6x64(K, A, B, C);
    t = now() - t;
    best = t < best ? t : best;
  }
  if (C[0] == 12345) /* keep C */
    printf("!");
  return 2.0 * 6 * 64 * K * RUNS / best / 1e9;
}

/* ---- the kernels ---- */

/* One convolution layer's sizes and buffers. */
typedef struct {
  int C, H, W, O, dx; /* 3x3, stride 1, padding 1; dx: wanted */
  float *x, *w, *b, *col, *y, *dy, *dcol, *dw, *db, *dxb;
} ConvLayer;

/* An array of len floats, random in [-1, 1), a fraction zeros of them 0. */
static float *values(long len, double zeros) {
  float *p = malloc(sizeof(float) * (size_t)len);
  for (long k = 0; k < len; k++)
    p[k] = rand() < zeros * RAND_MAX ? 0 : 2 * (float)rand() / (float)RAND_MAX - 1;
  return p;
}

static ConvLayer conv_layer(int C, int H, int W, int O, int dx, double zeros) {
  long K = (long)C * 9, P = (long)H * W;
  ConvLayer l = {C, H, W, O, dx, values(BATCH * C * P, zeros), values(O * K, 0), values(O, 0),
             values(BATCH * K * P, 0), values(BATCH * O * P, 0), values(BATCH * O * P, 0),
             values(K * P, 0), values(O * K, 0), values(O, 0), values(BATCH * C * P, 0)};
  return l;
}

/* The FLOPs of a layer's forward pass (the weight gradient's, the input
   gradient's are the same). */
static double layer_flops(const ConvLayer *l) { return 2.0 * BATCH * l->O * l->C * 9 * l->H * l->W; }

/* Each layer's passes with constant sizes, as the gcc backend inlines
   them. */
static void conv1_fwd(ConvLayer *L) {
  conv2d_forward(BATCH, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, L[0].x, L[0].w, L[0].b, L[0].col,
                 L[0].y);
}
static void conv2_fwd(ConvLayer *L) {
  conv2d_forward(BATCH, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, L[1].x, L[1].w, L[1].b, L[1].col,
                 L[1].y);
}
static void conv2_bwd(ConvLayer *L) {
  conv2d_backward(BATCH, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, L[1].dy, L[1].x, L[1].w, L[1].col,
                  L[1].dcol, L[1].dw, L[1].db, L[1].dxb);
}
static void conv2_bwd_dw(ConvLayer *L) {
  conv2d_backward(BATCH, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, L[1].dy, L[1].x, L[1].w, L[1].col,
                  L[1].dcol, L[1].dw, L[1].db, 0);
}
static void conv1_bwd(ConvLayer *L) {
  conv2d_backward(BATCH, 1, 28, 28, 16, 3, 3, 1, 1, 1, 1, L[0].dy, L[0].x, L[0].w, L[0].col,
                  L[0].dcol, L[0].dw, L[0].db, 0);
}
static void (*const parts[][2])(ConvLayer *) = {
  {conv1_fwd, conv2_fwd}, {conv2_bwd, conv1_bwd}, {conv1_fwd, 0}, {conv2_fwd, 0},
  {conv1_bwd, 0}, {conv2_bwd_dw, 0}, {conv2_bwd, 0}};

/* Part 0 forward, 1 backward, then 2.. each layer's passes alone. */
static void __attribute__((noinline)) conv_inline(ConvLayer *L, int part) {
  parts[part][0](L);
  if (parts[part][1])
    parts[part][1](L);
}

typedef void ConvFwd(int, int, int, int, int, int, int, int, int, int, int, const float *,
                     const float *, const float *, float *, float *);
typedef void ConvBwd(int, int, int, int, int, int, int, int, int, int, int, const float *,
                     const float *, const float *, const float *, float *, float *, float *,
                     float *);
static ConvFwd *fwd_copy;
static ConvBwd *bwd_copy;

/* The same through the copies compiled for tcc's code. */
static void conv_copy(ConvLayer *L, int part) {
  for (int k = part ? 1 : 0; part ? k >= 0 : k < 2; k += part ? -1 : 1) {
    ConvLayer *l = &L[k];
    if (part == 0)
      fwd_copy(BATCH, l->C, l->H, l->W, l->O, 3, 3, 1, 1, 1, 1, l->x, l->w, l->b, l->col, l->y);
    else
      bwd_copy(BATCH, l->C, l->H, l->W, l->O, 3, 3, 1, 1, 1, 1, l->dy, l->x, l->w, l->col,
               l->dcol, l->dw, l->db, l->dx ? l->dxb : 0);
  }
}

/* The least CPU seconds of a call of fn(L, part) over REPEATS calls: the
   machine is shared, and the least is the figure least disturbed by the
   others (each call is short, and CPU time leaves out the time the
   process waits for a core). */
static double timed(void (*fn)(ConvLayer *, int), ConvLayer *L, int part) {
  double best = 1e30;
  fn(L, part);
  for (int r = 0; r < REPEATS; r++) {
    double t = now();
    fn(L, part);
    t = now() - t;
    best = t < best ? t : best;
  }
  return best;
}

/* The other kernels of a step, inlined with constant sizes, on both
   layers' outputs, as the generated code calls them: BatchNorm2d's
   statistics, then its normalisation, relu and max pooling a plane at a
   time (maxpool2d_bn_relu_forward); backward, max pooling and relu
   (maxpool2d_relu_backward), then BatchNorm2d. Part 0 all forward, 1 all
   backward, then each alone: 2 BatchNorm2d forward (the statistics), 3
   backward, 4 the pooling's forward (with the normalisation), 5
   backward; and, for comparison, the separate kernels: 6 relu forward, 7
   backward, 8 max pooling forward, 9 backward. */
static void others(ConvLayer *L, int part) {
  static double st[6 * 32];
  static float g[32], bt[32], rm[32], rv[32];
  static int arg[BATCH * 16 * 196];
  static float xh[BATCH * 16 * 784], z[BATCH * 16 * 784], p[BATCH * 16 * 196];
  if (part == 0 || part == 2) {
    bn2d_forward(BATCH, 16, 784, 1, 0.1, 1e-5, L[0].y, g, bt, rm, rv, st, st + 32, st + 64, 0, 0);
    bn2d_forward(BATCH, 32, 196, 1, 0.1, 1e-5, L[1].y, g, bt, rm, rv, st, st + 32, st + 64, 0, 0);
  }
  if (part == 0 || part == 4) {
    maxpool2d_bn_relu_forward(BATCH, 16, 28, 28, 2, 2, 2, 2, L[0].y, st, st + 64, g, bt, xh, z, p,
                              arg);
    maxpool2d_bn_relu_forward(BATCH, 32, 14, 14, 2, 2, 2, 2, L[1].y, st, st + 64, g, bt, xh, z, p,
                              arg);
  }
  if (part == 1 || part == 5) {
    maxpool2d_relu_backward(BATCH, 32, 14, 14, 2, 2, 2, 2, p, arg, p, z);
    maxpool2d_relu_backward(BATCH, 16, 28, 28, 2, 2, 2, 2, p, arg, p, z);
  }
  if (part == 1 || part == 3) {
    bn2d_backward(BATCH, 32, 196, z, xh, g, st + 64, st + 96, st + 128, g, bt, L[1].dy);
    bn2d_backward(BATCH, 16, 784, z, xh, g, st + 64, st + 96, st + 128, g, bt, L[0].dy);
  }
  if (part == 6) {
    act_relu(BATCH * 16 * 784, z, z, 0);
    act_relu(BATCH * 32 * 196, z, z, 0);
  }
  if (part == 7) {
    act_relu_back(BATCH * 32 * 196, z, z, z, z, 0);
    act_relu_back(BATCH * 16 * 784, z, z, z, z, 0);
  }
  if (part == 8) {
    maxpool2d_forward(BATCH, 16, 28, 28, 2, 2, 2, 2, z, p, arg);
    maxpool2d_forward(BATCH, 32, 14, 14, 2, 2, 2, 2, z, p, arg);
  }
  if (part == 9) {
    maxpool2d_backward(BATCH, 32, 14, 14, 2, 2, 2, 2, p, arg, z);
    maxpool2d_backward(BATCH, 16, 28, 28, 2, 2, 2, 2, p, arg, z);
  }
}

/* Prints one line: a part's time a step and, given its FLOPs, its rate. */
static void line(const char *what, double s, double flops, double rate) {
  if (flops > 0)
    printf("%-34s %8.3f ms %7.1f GFLOP/s %5.2f of the rate, %6.2f s/epoch\n", what, s * 1e3,
           flops / s / 1e9, flops / s / 1e9 / rate, s * STEPS);
  else
    printf("%-34s %8.3f ms %37s %6.2f s/epoch\n", what, s * 1e3, "", s * STEPS);
}

int main(void) {
  ConvLayer L[2] = {conv_layer(1, 28, 28, 16, 0, 0.5), conv_layer(16, 14, 14, 32, 1, 0.3)};
  double rate = gemm_rate(), f1 = layer_flops(&L[0]), f2 = layer_flops(&L[1]);
  double fwd = f1 + f2, bwd = f1 + 2 * f2;
  printf("microkernel rate: %.1f GFLOP/s; conv FLOPs a step: forward %.1f M, backward %.1f M\n",
         rate, fwd / 1e6, bwd / 1e6);
  printf("roofline of the convolutions: %.3f s/epoch\n", (fwd + bwd) * STEPS / rate / 1e9);
  double tf = timed(conv_inline, L, 0), tb = timed(conv_inline, L, 1);
  line("conv forward (gcc, inlined)", tf, fwd, rate);
  line("conv backward (gcc, inlined)", tb, bwd, rate);
  line("conv both (gcc, inlined)", tf + tb, fwd + bwd, rate);
  line("  conv1 forward", timed(conv_inline, L, 2), f1, rate);
  line("  conv2 forward", timed(conv_inline, L, 3), f2, rate);
  line("  conv1 backward (dw, db)", timed(conv_inline, L, 4), f1, rate);
  line("  conv2 backward (dw, db)", timed(conv_inline, L, 5), f2, rate);
  line("  conv2 backward (dw, db, dx)", timed(conv_inline, L, 6), 2 * f2, rate);
#ifndef CONV_BENCH_ALONE
  for (const RtKernel *k = rt_kernels_f32_fma; k->name; k++) {
    if (!strcmp(k->name, "conv2d_forward"))
      fwd_copy = (ConvFwd *)k->fn;
    if (!strcmp(k->name, "conv2d_backward"))
      bwd_copy = (ConvBwd *)k->fn;
  }
  if (!fwd_copy || !bwd_copy) {
    fprintf(stderr, "conv_bench: mlpc's fma table lacks conv2d_forward or conv2d_backward\n");
    return 1;
  }
  double cf = timed(conv_copy, L, 0), cb = timed(conv_copy, L, 1);
  line("conv forward (tcc's copies)", cf, fwd, rate);
  line("conv backward (tcc's copies)", cb, bwd, rate);
  line("conv both (tcc's copies)", cf + cb, fwd + bwd, rate);
#endif
  double of = timed(others, L, 0), ob = timed(others, L, 1);
  line("bn2d, relu, maxpool forward", of, 0, rate);
  line("bn2d, relu, maxpool backward", ob, 0, rate);
  static const char *const names[] = {
    "bn2d statistics", "bn2d backward", "bn2d+relu+maxpool forward", "relu+maxpool backward",
    "(relu forward alone)", "(relu backward alone)", "(maxpool forward alone)",
    "(maxpool backward alone)"};
  for (int k = 0; k < 8; k++) {
    char what[64];
    snprintf(what, sizeof what, "  %s", names[k]);
    line(what, timed(others, L, 2 + k), 0, rate);
  }
  double step = tf + tb + of + ob;
  line("all of these (gcc)", step, 0, rate);
  printf("that is %.2f x the roofline of the convolutions (the linear layer, the loss, the\n"
         "update and the data not counted)\n", step * STEPS / ((fwd + bwd) * STEPS / rate / 1e9));
  return 0;
}
