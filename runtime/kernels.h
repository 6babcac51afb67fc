/*
 * kernels.h — the dense primitives that generated code calls.
 *
 * The gcc backend and standalone trainers paste this text in front of the
 * model, so the primitives are inlined with constant sizes. Under tcc the
 * model sees only the prototypes (MLPC_KERNEL_PROTOTYPES) and calls copies
 * compiled into mlpc by gcc (runtime/kernels.c): tcc's own code is slow.
 *
 * `real` is float or double, typedef'd before this text. Every output
 * element sums its terms one at a time in increasing index order, so the
 * bits do not depend on the compiler, its vector width or the backend.
 * Terms whose input is exactly zero are skipped (most pixels are 0): that
 * adds nothing, and changes nothing but the sign of an exact zero.
 */
#ifdef MLPC_KERNEL_PROTOTYPES
void mm_xwt(int n, int O, int I, const real *x, const real *w,
            const real *b, real *y, real *wt);
void mm_dw(int n, int O, int I, const real *dy, const real *x, real *dw);
void mm_dx(int n, int O, int I, const real *dy, const real *w, real *dx);
void mm_db(int n, int O, const real *dy, real *db);
#else
#ifndef MLPC_KERNEL
#define MLPC_KERNEL static inline
#endif

/* y = x·wᵀ + b: x (n, I), w (O, I), b (O), y (n, O); wt (I, O) scratch. */
MLPC_KERNEL void mm_xwt(int n, int O, int I, const real *x, const real *w,
                        const real *b, real *y, real *wt) {
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++)
      wt[i * O + o] = w[o * I + i];
  for (int r = 0; r < n; r++) {
    real *yr = y + r * O;
    for (int o = 0; o < O; o++)
      yr[o] = b[o];
    for (int i = 0; i < I; i++) {
      real xi = x[r * I + i];
      if (xi == 0)
        continue;
      const real *wi = wt + i * O;
      for (int o = 0; o < O; o++)
        yr[o] += xi * wi[o];
    }
  }
}

/* dw = dyᵀ·x: dy (n, O), x (n, I), dw (O, I). */
MLPC_KERNEL void mm_dw(int n, int O, int I, const real *dy, const real *x,
                       real *dw) {
  for (int o = 0; o < O; o++) {
    real *dwo = dw + o * I;
    for (int i = 0; i < I; i++)
      dwo[i] = 0;
    for (int r = 0; r < n; r++) {
      real g = dy[r * O + o];
      if (g == 0)
        continue;
      const real *xr = x + r * I;
      for (int i = 0; i < I; i++)
        dwo[i] += g * xr[i];
    }
  }
}

/* dx = dy·w: dy (n, O), w (O, I), dx (n, I). */
MLPC_KERNEL void mm_dx(int n, int O, int I, const real *dy, const real *w,
                       real *dx) {
  for (int r = 0; r < n; r++) {
    real *dxr = dx + r * I;
    for (int i = 0; i < I; i++)
      dxr[i] = 0;
    for (int o = 0; o < O; o++) {
      real g = dy[r * O + o];
      if (g == 0)
        continue;
      const real *wo = w + o * I;
      for (int i = 0; i < I; i++)
        dxr[i] += g * wo[i];
    }
  }
}

/* db = the column sums of dy: dy (n, O), db (O). */
MLPC_KERNEL void mm_db(int n, int O, const real *dy, real *db) {
  for (int o = 0; o < O; o++)
    db[o] = 0;
  for (int r = 0; r < n; r++)
    for (int o = 0; o < O; o++)
      db[o] += dy[r * O + o];
}
#endif
