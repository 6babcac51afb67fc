/*
 * kernels.c — kernels.h compiled into mlpc, for the generated code that
 * calls them (backend/jit.c binds them by name). CMake builds this
 * file four times: float or double (KERNEL_F64), strict or fma
 * (MLPC_FMA); each copy exports one table, KERNEL_TABLE.
 */
#include <math.h>
#include "../mlpc.h"

#if KERNEL_F64
typedef double real;
#define FMA fma
#define SQRT sqrt
#define TANH tanh
#define EXP exp
#define LOG log
#define ERF erf
#else
typedef float real;
#define FMA fmaf
#define SQRT sqrtf
#define TANH tanhf
#define EXP expf
#define LOG logf
#define ERF erff
#endif

#define MLPC_KERNEL static
/* sizes are not constants here: keep a kernel's alternatives apart, each
   compiled for itself */
#define MLPC_KERNEL_PART static __attribute__((noinline))
#define MLPC_KERNEL_VARIABLE_SIZES 1
#include "../rt/rmath.h"
#include "../rt/kernels.h"

#define ENTRY_(name) {#name, (KernelFn)name},
#define ACT_ENTRY_(e, name, ...) ENTRY_(act_##name) ENTRY_(act_##name##_back)
const RtKernel KERNEL_TABLE[] = {
  RT_KERNELS(ENTRY_)
  ACTS(ACT_ENTRY_)
  {0, 0},
};
