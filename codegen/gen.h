/*
 * gen.h — inside the code generator: what codegen/emit.c (training code)
 * and codegen/infer.c (inference C) share with the layer units.
 *
 * A layer kind is one unit, one file: codegen/linear.c, batchnorm.c
 * (BatchNorm1d and 2d), layernorm.c, dropout.c, conv2d.c, pool.c (max and
 * average), flatten.c, act.c (every activation, from rt/acts.h) and
 * loss.c. A unit says its parameters and buffers with their PyTorch
 * names (plan), its scratch buffers (decls), its forward and backward
 * functions side by side (emit), its inference code (infer_weights,
 * infer_forward) and whether it has health figures. layer_units, indexed
 * by the IR's kind (frontend/model.h's LAYER_KINDS, whose rows name
 * the units), is the dispatch.
 */
#ifndef MLPC_GEN_H
#define MLPC_GEN_H

#include "../mlpc.h"

/* ---- training code (codegen/emit.c; the kit in codegen/gen.c) ---- */

/* A tensor of the model: a parameter, buffer, gradient or state. */
typedef struct {
  char cname[48];   /* C identifier: fc1_weight                          */
  char tname[56];   /* PyTorch's name: fc1.weight                        */
  int kind;         /* RT_WEIGHT ...                                     */
  int i64;          /* a counter                                         */
  int ndim;         /* 1 to 4                                            */
  int shape[4];     /* PyTorch's                                         */
  int fan_in, fan_out;
  int init;         /* RT_INIT_*                                         */
  int trained;      /* has a gradient and optimizer state                */
  int transposed;   /* stored as (shape[1], shape[0]): linear weights    */
} Tensor;

typedef struct {
  const Ir *ir;
  const Model *m;
  Buf *b;
  size_t bytes;     /* static storage declared so far                   */
  int ntensors;
  Tensor t[16 * (MAX_LAYERS + 1)];
} Gen;

/* One layer's emission: where its input comes from. */
typedef struct {
  Gen *g;
  const Layer *l;
  const char *p;     /* this layer's C prefix (l->cname)                 */
  const char *in;    /* the input buffer: "input" or "fc1_out"           */
  int first;         /* the input is the model's: no gradient for it     */
  int pooled;        /* a relu that the max pooling after it computes in
                        training (maxpool2d_relu_*): its output buffer is
                        filled only for the health figures; or a
                        BatchNorm2d right before such a relu, whose x̂
                        and y that pooling's forward writes
                        (maxpool2d_bn_relu_forward) and whose backward
                        is the three layers' (maxpool2d_relu_bn_backward) */
  const char *relu_in; /* a max pooling that computes the relu before it:
                        the relu's input buffer; else NULL               */
  const Layer *bn;   /* such a max pooling that computes the BatchNorm2d
                        before that relu too: that layer; else NULL      */
  const char *bn_in; /* and that BatchNorm2d's input buffer             */
} Ctx;

/* The C name of layer i's output buffer: "linear0_out", or "input" before
   the first layer; an alias layer's is its input's (codegen/emit.c). */
const char *gen_out_name(const Ir *ir, int i);
/* Adds a tensor named PREFIX_FIELD in C and PREFIX.FIELD in PyTorch, of
   shape (rows, cols), or (rows) when cols is 0. */
Tensor *gen_tensor(Gen *g, const char *cprefix, const char *tprefix, const char *field,
                   int kind, int rows, int cols);
/* Formats a generated name into dst; names are short by construction
   (MAX_LAYERS bounds the layer numbers), so truncation is a bug of ours
   (abort). */
void gen_name(char *dst, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Gives t the shape dims[0..ndim). */
void gen_shape(Tensor *t, int ndim, const int *dims);
/* Its number of elements. */
long gen_numel(const Tensor *t);
/* Writes a call: head ("  bn_forward("), then the arguments (printf-style,
   ", "-separated), wrapped at 100 columns under the first, then ");". */
void gen_call(Buf *b, const char *head, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Writes text's words, wrapped at 97 columns (room for the comment's
   close): the first line after first, the others after rest; no newline
   at the end. */
void gen_wrap(Buf *b, const char *first, const char *rest, const char *text);
/* A comment on lines of its own, indented by indent, its words wrapped
   at 100 columns. */
void gen_comment(Buf *b, int indent, const char *text);
/* gen_call with a comment: after the call when one line holds both,
   else on a line of its own above it. */
void gen_call_commented(Buf *b, const char *comment, const char *head, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes indent, the code (printf-style; its arguments follow comment)
   and the comment after it on one line, or the comment on a line of its
   own above the code when one line would pass 100 columns. */
void gen_commented(Buf *b, const char *indent, const char *code, const char *comment, ...)
    __attribute__((format(printf, 3, 5)));
/* The shortest decimal that reads back as exactly v ("0.001", "1e-05"),
   for comments (a ring of 8 buffers). */
const char *gen_decimal(double v);
/* Declares a named hyper-parameter, "static const real NAME = HEX;" with
   the comment WHAT (printf-style): v rounded once to real, or a double
   (is_double) where the code computes with it in double. The hex float is
   the exact value; WHAT carries its PyTorch name and the decimal. */
void gen_const(Gen *g, int is_double, const char *name, double v, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Counts n elements of a real (is_real) or 8-byte type as declared. */
void gen_count(Gen *g, size_t n, int is_real);
/* A double as C source that reads back exactly: "0x1.47ae147ae147bp-7"
   (a ring of 8 buffers). */
const char *gen_num(double v);
/* Whether the optimizer is plain SGD (no momentum, no weight decay, no
   gradient clipping), whose update of a linear weight fuses into its
   gradient. */
int gen_fused_sgd(const Model *m);
/* The optimizer's -lr as C source of type real: its constant negated
   ("-sgd_lr"), or under a schedule the runtime's value
   ("R(-opt_hyper[0])"). */
const char *gen_neg_lr(const Model *m);

/* ---- inference C (codegen/infer.c; the kit in codegen/gen.c) ---- */

typedef struct {
  const Ir *ir;
  const Model *m;
  const RtNet *net;
  Buf *b;
  int f32;           /* float32 model: real is float                     */
  char *err;
  size_t errlen;
} Inf;

/* The tensor of net called PREFIX.FIELD; its absence is our bug. */
const RtTensor *inf_find(const Inf *I, const Layer *l, const char *field);
/* Element i (row-major order of the shape) of a float tensor. */
double inf_at(const RtTensor *t, long i);
/* A static const array of n values in real (or double, is_double): each
   rounded once to the type and written as a hex float; -1 with err set at
   a value that is not finite. */
int inf_array(Inf *I, const char *name, const char *what, const double *v, long n,
              int is_double);
/* Memory for n doubles, or exit. */
double *inf_doubles(long n);

/* ---- the units ---- */

typedef struct {
  /* Its parameters and buffers, in PyTorch's module order; may be NULL. */
  void (*plan)(Gen *g, const Layer *l);
  /* Its scratch buffers beside NAME_out and dNAME_out; may be NULL. */
  void (*decls)(Gen *g, const Layer *l);
  /* Its NAME_forward and NAME_backward. */
  void (*emit)(Ctx *c);
  int forward_train;  /* forward takes (n, train), else (n)             */
  int health;         /* its output has health figures (activations)     */
  int needs_seed;     /* reads the run's seed, run_seed[0] (RT_SEED)     */
  int alias;          /* moves nothing: its output is its input's buffer,
                         and it has no code (flatten)                    */
  /* Inference: its constant arrays, and its NAME_forward (in place on v,
     or from x to y when out_of_place); NULL: none, the identity. */
  int (*infer_weights)(Inf *I, const Layer *l);
  void (*infer_forward)(Inf *I, const Layer *l);
  int out_of_place;
  /* The math library calls its inference code makes ("sqrt"), or NULL. */
  const char *(*infer_needs)(const Inf *I, const Layer *l);
} LayerUnit;

/* Each kind's unit, codegen/UNIT.c's unit_UNIT (a unit may serve several
   kinds: unit_pool both poolings), then the activations' and the loss's. */
#define UNIT_EXTERN_(k, s, unit, ...) extern const LayerUnit unit_##unit;
LAYER_KINDS(UNIT_EXTERN_)
#undef UNIT_EXTERN_
extern const LayerUnit unit_act, unit_loss;
extern const LayerUnit *const layer_units[NLAYERS];

/* codegen/linear.c: whether layer i is a batchnorm folded into the layer
   before it in inference C (BatchNorm1d after linear, BatchNorm2d after
   conv2d). */
int inf_folded(const Ir *ir, int i);
/* BatchNorm bn's evaluation transform of feature or channel c,
   y = (x - mean)·s + beta, with s = γ/√(running_var + eps), in double. */
void inf_bn_terms(Inf *I, const Layer *bn, int c, double *mean, double *s, double *beta);
/* The BatchNorm folded into layer l (linear or conv2d): the layer after
   it when inf_folded says so, else NULL. */
const Layer *inf_folded_norm(const Inf *I, const Layer *l);
/* Writes l's bias array NAME_bias, the o values b (b' with the norm bn
   folded in, or none), with its comment; inf_array's status. */
int inf_bias(Inf *I, const Layer *l, const double *b, int o, const Layer *bn);
/* codegen/act.c: the activation formulas as text, for inference C. */
const char *act_forward_text(int type);
/* The bits 1 << RT_SATURATED ... of the figures it does not define. */
int act_health_na(int type);
/* health_NAME(n, C, S, pre, post, out): the figures of one such layer,
   (n, C, S): C units (features, or channels of S positions). */
void act_emit_health(Buf *b, int type);

#endif
