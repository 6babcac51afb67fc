/*
 * acts.h — every activation, once: its name, its default parameter and
 * its formulas. The frontend takes the names and defaults (frontend/
 * model.h's ACTS), rt/kernels.h expands the formulas into the
 * kernel pair act_NAME and act_NAME_back, and codegen/act.c writes the
 * same formulas as text into inference C and into comments. Adding an
 * activation is one row here (and its two names in kernels.h's list of
 * the fma copies, for tcc).
 *
 * X(enum, name, default parameter or 0, forward, backward, sat, flat), the
 * name an identifier (act_NAME), its text the model file's:
 *   forward   y from x (and p, the parameter: leaky_relu's slope, elu's
 *             alpha), as a C expression in real;
 *   backward  dx from x, y, the upstream gradient g and p;
 *   sat, flat the health figures' tests (docs/health.md) as text, or 0
 *             where the activation does not define them: whether a value
 *             is saturated, and whether a unit is flat on one sample
 *             (dead when flat on every sample; flat may read sat).
 * relu is PyTorch's clamp_min and threshold_backward: relu(NaN) is NaN,
 * relu(-0) is -0, and its gradient at NaN passes g; relu and leaky_relu
 * take the x <= 0 side's gradient at 0.
 * The formulas may call mm_exp and mm_tanh (rmath.h's for float, the C
 * library's for double) and ERF, and use M_SQRT1_2 and M_2_SQRTPI.
 *
 * Plain C99 with no includes: pasted in front of generated code.
 */
#ifndef MLPC_ACTS_H
#define MLPC_ACTS_H

#define ACTS(X)                                                                  \
  X(ACT_TANH, tanh, 0,                                                         \
    mm_tanh(x),                                                                  \
    g * ((real)1 - y * y),                                                       \
    "y > R(0.97) || y < R(-0.97)", "sat")                                        \
  X(ACT_RELU, relu, 0,                                                           \
    x < 0 ? (real)0 : x,                                                         \
    x <= 0 ? (real)0 : g,                                                        \
    0, "y == 0")                                                                 \
  X(ACT_LEAKY, leaky_relu, 0.01,                                               \
    x > 0 ? x : p * x,                                                           \
    x > 0 ? g : g * p,                                                           \
    0, "x <= 0")                                                                 \
  X(ACT_SIGMOID, sigmoid, 0,                                                   \
    (real)1 / ((real)1 + mm_exp(-x)),                                            \
    g * ((real)1 - y) * y,                                                       \
    "y < R(0.03) || y > R(0.97)", "sat")                                         \
  X(ACT_SILU, silu, 0,                                                         \
    x / ((real)1 + mm_exp(-x)),                                                  \
    g * ((real)1 / ((real)1 + mm_exp(-x))) *                                     \
      ((real)1 + x * ((real)1 - (real)1 / ((real)1 + mm_exp(-x)))),              \
    0, 0)                                                                        \
  X(ACT_GELU, gelu, 0,                                                         \
    x * (real)0.5 * ((real)1 + ERF(x * (real)M_SQRT1_2)),                        \
    g * ((real)0.5 * ((real)1 + ERF(x * (real)M_SQRT1_2)) +                      \
         x * mm_exp((real)-0.5 * x * x) * (real)(M_2_SQRTPI * M_SQRT1_2 * 0.5)), \
    0, 0)                                                                        \
  X(ACT_ELU, elu, 1.0,                                                         \
    x > 0 ? x : p * (mm_exp(x) - (real)1),                                       \
    x > 0 ? g : g * p * mm_exp(x),                                               \
    0, "x <= 0")

#endif
