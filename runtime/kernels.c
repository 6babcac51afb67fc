/*
 * kernels.c — kernels.h compiled into mlpc, once for float and once for
 * double, for the code that tcc compiles to call (runtime/jit_tcc.c).
 */
#define MLPC_KERNEL

#define real float
#define mm_xwt mm_xwt_f32
#define mm_dw mm_dw_f32
#define mm_dx mm_dx_f32
#define mm_db mm_db_f32
#include "kernels.h"
#undef real
#undef mm_xwt
#undef mm_dw
#undef mm_dx
#undef mm_db

#define real double
#define mm_xwt mm_xwt_f64
#define mm_dw mm_dw_f64
#define mm_dx mm_dx_f64
#define mm_db mm_db_f64
#include "kernels.h"
#undef real
#undef mm_xwt
#undef mm_dw
#undef mm_dx
#undef mm_db

#include "../mlpc.h"

/* Both variants of every kernel, by the name generated code calls. */
const RtKernel rt_kernels[] = {
  {"mm_xwt", (KernelFn)mm_xwt_f32, (KernelFn)mm_xwt_f64},
  {"mm_dw", (KernelFn)mm_dw_f32, (KernelFn)mm_dw_f64},
  {"mm_dx", (KernelFn)mm_dx_f32, (KernelFn)mm_dx_f64},
  {"mm_db", (KernelFn)mm_db_f32, (KernelFn)mm_db_f64},
  {0, 0, 0},
};
