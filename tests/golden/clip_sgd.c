/* clip_sgd: 784-64-32-10, norm none, tanh, init xavier_normal, sgd, batch 32, float32; generated
   by mlpc */

enum { B = 32 }; /* the largest batch */

/* ---- tensors ---- */

static ALIGNED real fc1_weight[50176]; /* (64, 784) fc1.weight, stored transposed */
static ALIGNED real fc1_bias[64]; /* (64) fc1.bias */
static ALIGNED real fc2_weight[2048]; /* (32, 64) fc2.weight, stored transposed */
static ALIGNED real fc2_bias[32]; /* (32) fc2.bias */
static ALIGNED real fc3_weight[320]; /* (10, 32) fc3.weight, stored transposed */
static ALIGNED real fc3_bias[10]; /* (10) fc3.bias */
static ALIGNED real dfc1_weight[50176]; /* (64, 784) fc1.weight.grad, stored transposed */
static ALIGNED real dfc1_bias[64]; /* (64) fc1.bias.grad */
static ALIGNED real dfc2_weight[2048]; /* (32, 64) fc2.weight.grad, stored transposed */
static ALIGNED real dfc2_bias[32]; /* (32) fc2.bias.grad */
static ALIGNED real dfc3_weight[320]; /* (10, 32) fc3.weight.grad, stored transposed */
static ALIGNED real dfc3_bias[10]; /* (10) fc3.bias.grad */
static ALIGNED long long optimizer_step[1]; /* (1) optimizer.step */

/* ---- the optimizer's hyper-parameters: sgd ---- */

static const real sgd_lr = 0x1.99999ap-4f; /* lr 0.1 */
static const real sgd_momentum = 0x0p+0f; /* momentum 0 */
static const real sgd_one_minus_dampening = 0x1p+0f; /* 1 - dampening 0 */
static const int sgd_nesterov = 0; /* nesterov False */
static const real sgd_weight_decay = 0x0p+0f; /* weight_decay 0 */

static ALIGNED real input[B * 784]; /* (B, 784): pixels / 255, or the reals given */
static int x_real; /* RtNet.x_real: x holds 0 pixel bytes, 1 reals */
static ALIGNED real fc1_out[B * 64], dfc1_out[B * 64]; /* (B, 64) */
static ALIGNED real tanh1_out[B * 64], dtanh1_out[B * 64]; /* (B, 64) */
static ALIGNED real fc2_out[B * 32], dfc2_out[B * 32]; /* (B, 32) */
static ALIGNED real tanh2_out[B * 32], dtanh2_out[B * 32]; /* (B, 32) */
static ALIGNED real fc3_out[B * 10], dfc3_out[B * 10]; /* (B, 10) */
static real loss_lse[B]; /* (B) log-sum-exp of each row less its maximum */
static ALIGNED real loss_exp[B * 10]; /* (B, 10) scratch: exponentials */

/* fc1: Linear(784, 64), (B, 784) -> (B, 64) */
static void fc1_forward(int n) {
  mm_xw(n, 64, 784, input, fc1_weight, fc1_bias, fc1_out);
}

static void fc1_backward(int n) {
  mm_dw(n, 64, 784, dfc1_out, input, dfc1_weight);
  mm_db(n, 64, dfc1_out, dfc1_bias);
}

/* tanh1: tanh, (B, 64) -> (B, 64) */
static void tanh1_forward(int n) {
  act_tanh(n * 64, fc1_out, tanh1_out, R(0)); /* y = mm_tanh(x) */
}

static void tanh1_backward(int n) {
  /* dx = g * ((real)1 - y * y) */
  act_tanh_back(n * 64, fc1_out, tanh1_out, dtanh1_out, dfc1_out, R(0));
}

/* fc2: Linear(64, 32), (B, 64) -> (B, 32) */
static void fc2_forward(int n) {
  mm_xw(n, 32, 64, tanh1_out, fc2_weight, fc2_bias, fc2_out);
}

static void fc2_backward(int n) {
  mm_dx(n, 32, 64, dfc2_out, fc2_weight, dtanh1_out);
  mm_dw(n, 32, 64, dfc2_out, tanh1_out, dfc2_weight);
  mm_db(n, 32, dfc2_out, dfc2_bias);
}

/* tanh2: tanh, (B, 32) -> (B, 32) */
static void tanh2_forward(int n) {
  act_tanh(n * 32, fc2_out, tanh2_out, R(0)); /* y = mm_tanh(x) */
}

static void tanh2_backward(int n) {
  /* dx = g * ((real)1 - y * y) */
  act_tanh_back(n * 32, fc2_out, tanh2_out, dtanh2_out, dfc2_out, R(0));
}

/* fc3: Linear(32, 10), (B, 32) -> (B, 10) */
static void fc3_forward(int n) {
  mm_xw(n, 10, 32, tanh2_out, fc3_weight, fc3_bias, fc3_out);
}

static void fc3_backward(int n) {
  mm_dx(n, 10, 32, dfc3_out, fc3_weight, dtanh2_out);
  mm_dw(n, 10, 32, dfc3_out, tanh2_out, dfc3_weight);
  mm_db(n, 10, dfc3_out, dfc3_bias);
}

/* loss: cross-entropy over (B, 10) logits */
static double loss_forward(int n, const unsigned char *y, long *correct) {
  return xent_forward(n, 10, fc3_out, y, loss_lse, loss_exp, correct);
}

static void loss_backward(int n, const unsigned char *y) {
  xent_backward(n, 10, fc3_out, loss_lse, y, dfc3_out);
}

/* optimizer: sgd, lr 0.1 */
static void update(real *p, const real *dp, real *s0, real *s1, real *s2, int len) {
  (void)s0, (void)s1, (void)s2;
  opt_sgd(len, p, dp, 0, optimizer_step[0] == 1, sgd_weight_decay, sgd_momentum,
          sgd_one_minus_dampening, sgd_nesterov, -sgd_lr);
}

static void optimizer_update(void) {
  optimizer_step[0]++;
  update(fc1_weight, dfc1_weight, 0, 0, 0, 50176);
  update(fc1_bias, dfc1_bias, 0, 0, 0, 64);
  update(fc2_weight, dfc2_weight, 0, 0, 0, 2048);
  update(fc2_bias, dfc2_bias, 0, 0, 0, 32);
  update(fc3_weight, dfc3_weight, 0, 0, 0, 320);
  update(fc3_bias, dfc3_bias, 0, 0, 0, 10);
}

/* clip_grad_norm_(parameters, max_norm 0.5): every gradient together */
static const real clip_max_norm = 0x1p-1f; /* max_norm 0.5 */
static const real clip_eps = 0x1.0c6f7ap-20f; /* 1e-6, clip_grad_norm_'s own */

static void clip_grads(void) {
  real norms[6] = {
    clip_norm(50176, dfc1_weight),
    clip_norm(64, dfc1_bias),
    clip_norm(2048, dfc2_weight),
    clip_norm(32, dfc2_bias),
    clip_norm(320, dfc3_weight),
    clip_norm(10, dfc3_bias),
  };
  real coef = R(1) / (clip_norm(6, norms) + clip_eps) * clip_max_norm;
  if (!(coef >= 1)) { /* NaN too, as PyTorch's clamp */
    clip_scale(50176, dfc1_weight, coef);
    clip_scale(64, dfc1_bias, coef);
    clip_scale(2048, dfc2_weight, coef);
    clip_scale(32, dfc2_bias, coef);
    clip_scale(320, dfc3_weight, coef);
    clip_scale(10, dfc3_bias, coef);
  }
}

static void load_input(int n, const void *x) {
  if (!x_real) {
    mm_load(n * 784, x, input); /* pixels / 255 */
    return;
  }
  for (long i = 0; i < (long)n * 784; i++)
    input[i] = ((const real *)x)[i];
}

static void forward(int n, int train) {
  (void)train;
  fc1_forward(n);
  tanh1_forward(n);
  fc2_forward(n);
  tanh2_forward(n);
  fc3_forward(n);
}

static void backward(int n, const unsigned char *y, int step) {
  (void)step;
  loss_backward(n, y);
  fc3_backward(n);
  tanh2_backward(n);
  fc2_backward(n);
  tanh1_backward(n);
  fc1_backward(n);
}

/* The loss and gradients of a batch; with step, the fused updates too. */
static double passes(int n, const void *x, const unsigned char *y, int step) {
  long correct = 0;
  load_input(n, x);
  forward(n, 1);
  double loss = loss_forward(n, y, &correct) / n;
  backward(n, y, step);
  return loss;
}

static double grad(int n, const void *x, const unsigned char *y) {
  return passes(n, x, y, 0);
}

static double train_step(int n, const void *x, const unsigned char *y) {
  double loss = passes(n, x, y, 1);
  clip_grads();
  optimizer_update();
  return loss;
}

static void eval(int n, const void *x, const unsigned char *y,
                 double *loss_sum, long *correct) {
  load_input(n, x);
  forward(n, 0);
  *loss_sum += loss_forward(n, y, correct);
}

/* ---- health figures of a probe batch (docs/health.md) ---- */

/* The mean and standard deviation (divided by len) of len values. */
static void health_moments(long len, const real *v, double *mean, double *std) {
  double s = 0, ss = 0;
  for (long i = 0; i < len; i++)
    s += v[i];
  *mean = s / len;
  for (long i = 0; i < len; i++)
    ss += (v[i] - *mean) * (v[i] - *mean);
  *std = sqrt(ss / len);
}

/* The figures of a tanh layer from its input (pre) and output (post),
   both (n, C, S): C units (features, or channels of S positions), in
   RT_LAYER_FIGURES order: saturated when y > R(0.97) || y < R(-0.97);
   a unit is dead when saturated on every sample and position. */
static void health_tanh(int n, int C, int S, const real *pre, const real *post,
                        double *out) {
  health_moments((long)n * C * S, pre, &out[RT_PRE_MEAN], &out[RT_PRE_STD]);
  health_moments((long)n * C * S, post, &out[RT_POST_MEAN], &out[RT_POST_STD]);
  long saturated = 0, dead = 0;
  for (int c = 0; c < C; c++) {
    int flat = 1; /* on every sample and position so far */
    for (int r = 0; r < n; r++)
      for (int s = 0; s < S; s++) {
        real y = post[((long)r * C + c) * S + s];
        int sat = y > R(0.97) || y < R(-0.97);
        saturated += sat;
        flat &= sat;
      }
    dead += flat;
  }
  out[RT_SATURATED] = (double)saturated / ((double)n * C * S);
  out[RT_DEAD] = (double)dead / C;
}

/* The health figures on a probe batch of n samples (RtNet.health): a
   training-mode forward and backward, then
   RT_NLAYER_FIGURES values per activation layer into out. */
static void health(int n, const void *x, const unsigned char *y,
                   double *out) {
  grad(n, x, y);
  health_tanh(n, 64, 1, fc1_out, tanh1_out, out + 0); /* hidden1 */
  health_tanh(n, 32, 1, fc2_out, tanh2_out, out + 6); /* hidden2 */
}

static RtTensor tensors[13] = {
  {"fc1.weight", RT_WEIGHT, RT_F32, 2, {64, 784}, 784, 64, fc1_weight, 1, RT_INIT_XAVIER},
  {"fc1.bias", RT_BIAS, RT_F32, 1, {64, 0}, 784, 64, fc1_bias, 0, RT_INIT_XAVIER},
  {"fc2.weight", RT_WEIGHT, RT_F32, 2, {32, 64}, 64, 32, fc2_weight, 1, RT_INIT_XAVIER},
  {"fc2.bias", RT_BIAS, RT_F32, 1, {32, 0}, 64, 32, fc2_bias, 0, RT_INIT_XAVIER},
  {"fc3.weight", RT_WEIGHT, RT_F32, 2, {10, 32}, 32, 10, fc3_weight, 1, RT_INIT_XAVIER},
  {"fc3.bias", RT_BIAS, RT_F32, 1, {10, 0}, 32, 10, fc3_bias, 0, RT_INIT_XAVIER},
  {"fc1.weight.grad", RT_GRAD, RT_F32, 2, {64, 784}, 0, 0, dfc1_weight, 1, RT_INIT_XAVIER},
  {"fc1.bias.grad", RT_GRAD, RT_F32, 1, {64, 0}, 0, 0, dfc1_bias, 0, RT_INIT_XAVIER},
  {"fc2.weight.grad", RT_GRAD, RT_F32, 2, {32, 64}, 0, 0, dfc2_weight, 1, RT_INIT_XAVIER},
  {"fc2.bias.grad", RT_GRAD, RT_F32, 1, {32, 0}, 0, 0, dfc2_bias, 0, RT_INIT_XAVIER},
  {"fc3.weight.grad", RT_GRAD, RT_F32, 2, {10, 32}, 0, 0, dfc3_weight, 1, RT_INIT_XAVIER},
  {"fc3.bias.grad", RT_GRAD, RT_F32, 1, {10, 0}, 0, 0, dfc3_bias, 0, RT_INIT_XAVIER},
  {"optimizer.step", RT_STATE, RT_I64, 1, {1, 0}, 0, 0, optimizer_step, 0, RT_INIT_XAVIER},
};

static const char *const health_names[2] = {"hidden1", "hidden2"};
static const int health_na[2] = {
  0,
  0,
}; /* the figures each does not define */

static const RtNet net = {
  .name = "clip_sgd",
  .input = 784,
  .output = 10,
  .batch = B,
  .dtype = RT_F32,
  .init = RT_INIT_XAVIER,
  .has_batchnorm = 0,
  .ntensors = 13,
  .tensors = tensors,
  .train_step = train_step,
  .eval = eval,
  .grad = grad,
  .health = health,
  .nhidden = 2,
  .health_names = health_names,
  .health_na = health_na,
  .sequential = 0,
  .x_real = &x_real,
};

const RtNet *mlpc_net(void) { return &net; }
