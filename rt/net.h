/*
 * net.h — the interface between generated code and the runtime.
 *
 * Every generated model (JIT-compiled by tcc or gcc, or emitted as a
 * standalone trainer) defines `const RtNet *mlpc_net(void)`. The runtime
 * initialises, trains, evaluates, saves and loads the model only through
 * this table, so it never needs to know the model's shape at compile time.
 *
 * This header is plain C99 with no includes: its text is pasted in front
 * of generated code.
 */
#ifndef MLPC_NET_H
#define MLPC_NET_H

/* Initialisation schemes (see docs/model-format.md, "init"). */
#define RT_INIT_SCHEMES(X) \
  X(RT_INIT_NORMAL,        "normal")         \
  X(RT_INIT_KAIMING,       "kaiming_normal") \
  X(RT_INIT_XAVIER,        "xavier_normal")  \
  X(RT_INIT_TORCH_DEFAULT, "torch_default")

/* Generators of the initial weights (docs/model-format.md, "rng"). */
#define RT_RNGS(X) \
  X(RT_RNG_MLPC,  "mlpc")   \
  X(RT_RNG_TORCH, "torch")

/* Learning-rate schedules (docs/model-format.md, "schedule"), as
   PyTorch's torch.optim.lr_scheduler names them. */
#define RT_SCHEDULES(X)              \
  X(RT_SCHED_NONE,     "none")       \
  X(RT_SCHED_STEP,     "step")       \
  X(RT_SCHED_COSINE,   "cosine")     \
  X(RT_SCHED_ONECYCLE, "onecycle")

/* OneCycleLR's anneal_strategy. */
#define RT_ANNEALS(X)               \
  X(RT_ANNEAL_COS,    "cos")        \
  X(RT_ANNEAL_LINEAR, "linear")

#define RT_ENUM_(e, s) e,
enum { RT_INIT_SCHEMES(RT_ENUM_) RT_INIT_NSCHEMES };
enum { RT_RNGS(RT_ENUM_) RT_NRNGS };
enum { RT_SCHEDULES(RT_ENUM_) RT_NSCHEDULES };
enum { RT_ANNEALS(RT_ENUM_) RT_NANNEALS };
#undef RT_ENUM_

/* What the training loop does around the model's steps, as the model
   file says (docs/model-format.md): the learning-rate schedule, the
   validation split and early stopping. The names are PyTorch's. */
typedef struct {
  int schedule;          /* RT_SCHED_*                                    */
  double lr;             /* the optimizer's lr, where step and cosine start */
  int step_size;         /* step: StepLR's period in epochs               */
  double gamma;          /* step: its factor (0.1)                        */
  int T_max;             /* cosine: CosineAnnealingLR's half period        */
  double eta_min;        /* cosine: its least lr (0)                      */
  double max_lr;         /* onecycle: OneCycleLR's peak lr                */
  long total_steps;      /* onecycle: its steps; 0: the run's, less warmup */
  double pct_start;      /* onecycle: its rising part (0.3)               */
  int anneal;            /* onecycle: RT_ANNEAL_* (cos)                   */
  double div_factor;     /* onecycle: initial lr = max_lr / div_factor (25) */
  double final_div_factor; /* onecycle: least lr = initial / this (1e4)   */
  int cycle_momentum;    /* onecycle: the momentum (Adam's beta1) cycles
                            too, between the next two (true)              */
  double base_momentum, max_momentum; /* onecycle: 0.85, 0.95             */
  long warmup;           /* steps of LinearLR from 1/warmup in front; 0: none */
  long val_count;        /* samples held out for validation; 0: none ...  */
  double val_fraction;   /* ... or this share of the training set (0: none) */
  int patience;          /* early stopping: epochs without a better
                            validation loss before training stops; 0: none */
} RtRecipe;

/* What a tensor is, and so how it is initialised and whether it is saved. */
enum {
  RT_WEIGHT,    /* linear weight (out, in): drawn by the scheme         */
  RT_BIAS,      /* linear bias (out): drawn by the scheme               */
  RT_GAMMA,     /* norm scale: 1, or N(0,1) under "normal"              */
  RT_BETA,      /* norm shift: 0, or N(0,1) under "normal"              */
  RT_BUF_ZERO,  /* buffer starting at 0 (running_mean, num_batches)     */
  RT_BUF_ONE,   /* buffer starting at 1 (running_var)                   */
  RT_STATE,     /* optimizer state: 0 at start, never saved             */
  RT_GRAD,      /* gradient of the tensor before it ("NAME.grad")       */
  RT_SEED,      /* the run's seed, for dropout's masks: set by rt_init,
                   never saved                                           */
};

/* Element types: of tensors (RT_F32, RT_F64, RT_I64), and of the data
   a model is given (RT_U8 pixel bytes, or its own real type). */
enum { RT_F32, RT_F64, RT_I64, RT_U8 };

/* The health figures of each hidden layer, in the order the health entry
   writes them (docs/health.md): X(enum, name). Pre is the activation's
   input (after the norm), post its output. */
#define RT_LAYER_FIGURES(X)          \
  X(RT_PRE_MEAN,   "pre_mean")       \
  X(RT_PRE_STD,    "pre_std")        \
  X(RT_POST_MEAN,  "post_mean")      \
  X(RT_POST_STD,   "post_std")       \
  X(RT_SATURATED,  "saturated")      \
  X(RT_DEAD,       "dead")

#define RT_ENUM_(e, s) e,
enum { RT_LAYER_FIGURES(RT_ENUM_) RT_NLAYER_FIGURES };
#undef RT_ENUM_

typedef struct {
  const char *name;  /* PyTorch's name, e.g. "fc1.weight"                 */
  int kind;          /* RT_WEIGHT ... RT_STATE                            */
  int dtype;         /* RT_F32, RT_F64 or RT_I64                          */
  int ndim;          /* 1 to 4                                            */
  int shape[4];      /* PyTorch's: (out, in) for a linear weight, (out,
                        in, kh, kw) for a convolution's, (n) otherwise    */
  int fan_in;        /* for the init schemes                              */
  int fan_out;
  void *data;
  int transposed;    /* 2-D, stored as its transpose: element (i, j) of
                        the (rows, cols) tensor at data[j * rows + i]     */
  int init;          /* RT_INIT_*: how rt_init draws a parameter (the
                        layer's "init", or the model's)                   */
} RtTensor;

typedef struct {
  const char *name;      /* the model's name                             */
  int input, output;     /* features in, classes out                      */
  int shape[3];          /* the input as images (channels, height, width),
                            or 0s: a flat input of `input` features       */
  int batch;             /* largest batch the step accepts                */
  int dtype;             /* RT_F32 or RT_F64                              */
  int init;              /* RT_INIT_*: the model's (each tensor has its own) */
  int rng;               /* RT_RNG_*: who draws the initial weights       */
  int has_batchnorm;     /* a one-sample training batch is skipped        */
  int ntensors;
  RtTensor *tensors;
  /* One training step on n <= batch samples (x as *x_real says, labels);
     returns the mean cross-entropy of the batch before the update. What
     the gradient tensors hold afterwards is unspecified (plain SGD
     updates linear weights without storing their gradient): grad gives
     gradients. */
  double (*train_step)(int n, const void *x, const unsigned char *y);
  /* Evaluation mode on n <= batch samples: adds the summed loss and the
     number of correct predictions. */
  void (*eval)(int n, const void *x, const unsigned char *y,
               double *loss_sum, long *correct);
  /* Forward and backward without an update (gradient checks): returns
     the loss and leaves the gradients in the "d"-named tensors. */
  double (*grad)(int n, const void *x, const unsigned char *y);
  /* Health figures on a probe batch of n <= batch samples: forward and
     backward in training mode, then RT_NLAYER_FIGURES values per
     activation layer into out (nhidden * RT_NLAYER_FIGURES), NAN for those
     in its health_na. The probe's gradients are left in the "d"-named
     tensors; parameters, buffers and optimizer state are left exactly as
     they were. */
  void (*health)(int n, const void *x, const unsigned char *y, double *out);
  int nhidden;           /* activation layers, which have health figures  */
  const char *const *health_names; /* each one's name: "hidden1" ... (the
                            shorthand's blocks), or "layers[2]" ...        */
  const int *health_na;  /* each one's bits 1 << RT_SATURATED ...: figures
                            its activation does not define                */
  int sequential;        /* a "layers" list: "rng": "torch" draws every
                            parameter in one pass, in nn.Sequential's order */
  int *x_real;           /* how the entries above read x, set before they
                            run: 0 (the start) pixel bytes, each scaled by
                            1/255 as it loads; 1 reals of the model's dtype,
                            used as they are (docs/data.md)               */
  const RtRecipe *recipe; /* NULL: none (a constant lr, no validation)    */
  double *hyper;         /* under a schedule, what the optimizer reads at
                            each step, set by the runtime: [0] the lr, [1]
                            the momentum (Adam's beta1) when cycled; NULL
                            when the lr is a constant of the code          */
} RtNet;

#endif
