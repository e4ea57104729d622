// GroupNorm (+ ReLU) over NHWC activations, forward and backward, in two memory passes each.
//
// bit_keras/layers/fused.py compiles this file on first use and falls back to the
// TensorFlow ops of bit_keras/layers/group_norm.py where it cannot. Both compute the same
// function: per (sample, group) statistics in float32 out of float64 sums, then
// y = x * scale + offset with scale = gamma * rstd and offset = beta - mean * scale.
// Work is split into fixed blocks of pixels, and partial sums are added in block order,
// so results do not depend on the number of threads.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "common.h"

namespace bit_keras {
namespace {


constexpr int64_t kBlock = 32;  // pixels per work item

using kernels::Data;
using kernels::Traits;

// Runs fn(n, first_pixel, end_pixel, block_index) over every block of every sample.
template <typename Fn>
void ForEachBlock(OpKernelContext* ctx, int64_t n, int64_t p, int64_t c, Fn fn) {
  kernels::ForEachBlock(ctx, n, p, kBlock, c, fn);
}

// scale = gamma * rstd and offset = beta - mean * scale per (sample, channel), in float32.
void ScaleAndOffset(const float* mean, const float* rstd, const float* gamma, const float* beta,
                    int64_t n, int64_t g, int64_t c, std::vector<float>* scale,
                    std::vector<float>* offset) {
  const int64_t cg = c / g;
  scale->resize(n * c);
  offset->resize(n * c);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c; ++k) {
      const float s = gamma[k] * rstd[i * g + k / cg];
      (*scale)[i * c + k] = s;
      (*offset)[i * c + k] = beta[k] - mean[i * g + k / cg] * s;
    }
  }
}

// The upstream gradient at the affine output: zero where the ReLU was off, which is
// where the forward pass's std::fma(x, scale, offset) was not positive.
template <typename Io, bool kRelu>
inline float Dz(const typename Io::Stored* dy, float x, float scale, float offset,
                int64_t index) {
  const float d = Io::Load(dy, index);
  if constexpr (kRelu) {  // a bit mask, not a branch: the ReLU's on/off pattern is random
    uint32_t bits;
    std::memcpy(&bits, &d, 4);
    bits &= -static_cast<uint32_t>(std::fma(x, scale, offset) > 0.0f);
    float masked;
    std::memcpy(&masked, &bits, 4);
    return masked;
  } else {
    return d;
  }
}

// Backward pass 1: per-channel sums of dz and dz * x of every block.
template <typename Io, bool kRelu>
void SumsOfGradients(OpKernelContext* ctx, const typename Io::Stored* dy,
                     const typename Io::Stored* x, const std::vector<float>& scale,
                     const std::vector<float>& offset, int64_t n, int64_t p, int64_t c,
                     std::vector<double>* partial) {
  const int64_t blocks = (p + kBlock - 1) / kBlock;
  ForEachBlock(ctx, n, p, c, [&](int64_t i, int64_t begin, int64_t end, int64_t b) {
    double* s1 = &(*partial)[(i * blocks + b) * 2 * c];
    double* s2 = s1 + c;
    const float* sc = &scale[i * c];
    const float* of = &offset[i * c];
    for (int64_t q = begin; q < end; ++q) {
      const int64_t row = (i * p + q) * c;
      for (int64_t k = 0; k < c; ++k) {
        const float v = Io::Load(x, row + k);
        const float d = Dz<Io, kRelu>(dy, v, sc[k], of[k], row + k);
        s1[k] += static_cast<double>(d);
        s2[k] += static_cast<double>(d * v);
      }
    }
  });
}

// Backward pass 2: dx = dz * a + x * b + c with per-(sample, channel) coefficients.
template <typename Io, bool kRelu>
void InputGradient(OpKernelContext* ctx, const typename Io::Stored* dy,
                   const typename Io::Stored* x, const std::vector<float>& scale,
                   const std::vector<float>& offset, const std::vector<float>& ca, const std::vector<float>& cb,
                   const std::vector<float>& cc, int64_t n, int64_t p, int64_t c,
                   typename Io::Stored* dx) {
  ForEachBlock(ctx, n, p, c, [&](int64_t i, int64_t begin, int64_t end, int64_t) {
    const float* a = &ca[i * c];
    const float* b = &cb[i * c];
    const float* o = &cc[i * c];
    const float* sc = &scale[i * c];
    const float* of = &offset[i * c];
    for (int64_t q = begin; q < end; ++q) {
      const int64_t row = (i * p + q) * c;
      for (int64_t k = 0; k < c; ++k) {
        const float v = Io::Load(x, row + k);
        Io::Store(dx, row + k, Dz<Io, kRelu>(dy, v, sc[k], of[k], row + k) * a[k] + v * b[k] + o[k]);
      }
    }
  });
}

void CheckInputs(OpKernelContext* ctx, const Tensor& x, int64_t groups) {
  OP_REQUIRES(ctx, x.dims() == 3,
              tensorflow::errors::InvalidArgument("x must be (N, pixels, C), got ",
                                                  x.shape().DebugString()));
  OP_REQUIRES(ctx, groups > 0 && x.dim_size(2) % groups == 0,
              tensorflow::errors::InvalidArgument("channels ", x.dim_size(2),
                                                  " do not divide by groups=", groups));
}

template <typename T>
class GroupNormOp : public OpKernel {
 public:
  explicit GroupNormOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("relu", &relu_));
  }

  void Compute(OpKernelContext* ctx) override {
    using Io = typename Traits<T>::Io;
    const Tensor& x_t = ctx->input(0);
    CheckInputs(ctx, x_t, groups_);
    if (!ctx->status().ok()) return;
    const int64_t n = x_t.dim_size(0), p = x_t.dim_size(1), c = x_t.dim_size(2);
    const int64_t g = groups_, cg = c / g, blocks = (p + kBlock - 1) / kBlock;
    kernels::CheckSize(ctx, ctx->input(1), c, "gamma");
    kernels::CheckSize(ctx, ctx->input(2), c, "beta");
    if (!ctx->status().ok()) return;
    const float* gamma = ctx->input(1).flat<float>().data();
    const float* beta = ctx->input(2).flat<float>().data();
    Tensor* y_t = nullptr;
    Tensor* mean_t = nullptr;
    Tensor* rstd_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x_t.shape(), &y_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({n, g}), &mean_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({n, g}), &rstd_t));
    const auto* x = Data<T>(x_t);
    auto* y = Data<T>(y_t);
    float* mean = mean_t->flat<float>().data();
    float* rstd = rstd_t->flat<float>().data();

    // Pass 1: per-channel sums and sums of squares of every block.
    std::vector<double> partial(n * blocks * 2 * c, 0.0);
    ForEachBlock(ctx, n, p, c, [&](int64_t i, int64_t begin, int64_t end, int64_t b) {
      double* s1 = &partial[(i * blocks + b) * 2 * c];
      double* s2 = s1 + c;
      for (int64_t q = begin; q < end; ++q) {
        const int64_t row = (i * p + q) * c;
        for (int64_t k = 0; k < c; ++k) {
          const double v = Io::Load(x, row + k);
          s1[k] += v;
          s2[k] += v * v;
        }
      }
    });
    // Statistics per (sample, group), then one scale and offset per (sample, channel).
    const double m = static_cast<double>(p * cg);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < g; ++j) {
        double s1 = 0.0, s2 = 0.0;
        for (int64_t b = 0; b < blocks; ++b) {
          const double* base = &partial[(i * blocks + b) * 2 * c];
          for (int64_t k = j * cg; k < (j + 1) * cg; ++k) {
            s1 += base[k];
            s2 += base[c + k];
          }
        }
        const double mu = s1 / m;
        const double var = std::max(s2 / m - mu * mu, 0.0);
        mean[i * g + j] = static_cast<float>(mu);
        rstd[i * g + j] = static_cast<float>(1.0 / std::sqrt(var + epsilon_));
      }
    }
    std::vector<float> scale, offset;
    ScaleAndOffset(mean, rstd, gamma, beta, n, g, c, &scale, &offset);
    // Pass 2: the multiply-add (and ReLU).
    const bool relu = relu_;
    ForEachBlock(ctx, n, p, c, [&](int64_t i, int64_t begin, int64_t end, int64_t) {
      const float* s = &scale[i * c];
      const float* o = &offset[i * c];
      for (int64_t q = begin; q < end; ++q) {
        const int64_t row = (i * p + q) * c;
        for (int64_t k = 0; k < c; ++k) {
          float v = std::fma(Io::Load(x, row + k), s[k], o[k]);
          if (relu) v = v > 0.0f ? v : 0.0f;
          Io::Store(y, row + k, v);
        }
      }
    });
  }

 private:
  int64_t groups_;
  float epsilon_;
  bool relu_;
};

template <typename T>
class GroupNormGradOp : public OpKernel {
 public:
  explicit GroupNormGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("groups", &groups_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("relu", &relu_));
  }

  void Compute(OpKernelContext* ctx) override {
    using Io = typename Traits<T>::Io;
    const Tensor& dy_t = ctx->input(0);
    const Tensor& x_t = ctx->input(1);

    CheckInputs(ctx, x_t, groups_);
    if (!ctx->status().ok()) return;
    OP_REQUIRES(ctx, dy_t.shape() == x_t.shape(),
                tensorflow::errors::InvalidArgument("dy and x must have one shape"));
    const int64_t n = x_t.dim_size(0), p = x_t.dim_size(1), c = x_t.dim_size(2);
    const int64_t g = groups_, cg = c / g, blocks = (p + kBlock - 1) / kBlock;
    kernels::CheckSize(ctx, ctx->input(2), n * g, "mean");
    kernels::CheckSize(ctx, ctx->input(3), n * g, "rstd");
    kernels::CheckSize(ctx, ctx->input(4), c, "gamma");
    kernels::CheckSize(ctx, ctx->input(5), c, "beta");
    if (!ctx->status().ok()) return;
    const float* mean = ctx->input(2).flat<float>().data();
    const float* rstd = ctx->input(3).flat<float>().data();
    const float* gamma = ctx->input(4).flat<float>().data();
    const float* beta = ctx->input(5).flat<float>().data();
    std::vector<float> scale, offset;
    ScaleAndOffset(mean, rstd, gamma, beta, n, g, c, &scale, &offset);
    Tensor* dx_t = nullptr;
    Tensor* dgamma_t = nullptr;
    Tensor* dbeta_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x_t.shape(), &dx_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({c}), &dgamma_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({c}), &dbeta_t));
    const auto* dy = Data<T>(dy_t);
    const auto* x = Data<T>(x_t);
    auto* dx = Data<T>(dx_t);
    std::vector<double> partial(n * blocks * 2 * c, 0.0);
    if (relu_) {
      SumsOfGradients<Io, true>(ctx, dy, x, scale, offset, n, p, c, &partial);
    } else {
      SumsOfGradients<Io, false>(ctx, dy, x, scale, offset, n, p, c, &partial);
    }
    // dx = dz * a + x * b + c per (sample, channel), with the group means of gamma * dz
    // and gamma * dz * xhat (docs in group_norm.py's _group_norm_backward).
    std::vector<float> ca(n * c), cb(n * c), cc(n * c);
    std::vector<double> sum_dz(n * c, 0.0), sum_dz_xhat(n * c, 0.0);
    const double m = static_cast<double>(p * cg);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < g; ++j) {
        const double mu = mean[i * g + j], rs = rstd[i * g + j];
        double group_gdz = 0.0, group_gdz_xhat = 0.0;
        for (int64_t k = j * cg; k < (j + 1) * cg; ++k) {
          double s1 = 0.0, s2 = 0.0;
          for (int64_t b = 0; b < blocks; ++b) {
            const double* base = &partial[(i * blocks + b) * 2 * c];
            s1 += base[k];
            s2 += base[c + k];
          }
          sum_dz[i * c + k] = s1;
          sum_dz_xhat[i * c + k] = (s2 - mu * s1) * rs;
          group_gdz += gamma[k] * s1;
          group_gdz_xhat += gamma[k] * sum_dz_xhat[i * c + k];
        }
        const double mean_gdz = group_gdz / m, mean_gdz_xhat = group_gdz_xhat / m;
        const double b = -rs * rs * mean_gdz_xhat;
        for (int64_t k = j * cg; k < (j + 1) * cg; ++k) {
          ca[i * c + k] = static_cast<float>(rs * gamma[k]);
          cb[i * c + k] = static_cast<float>(b);
          cc[i * c + k] = static_cast<float>(-rs * mean_gdz - b * mu);
        }
      }
    }
    float* dgamma = dgamma_t->flat<float>().data();
    float* dbeta = dbeta_t->flat<float>().data();
    for (int64_t k = 0; k < c; ++k) {
      double sg = 0.0, sb = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        sg += sum_dz_xhat[i * c + k];
        sb += sum_dz[i * c + k];
      }
      dgamma[k] = static_cast<float>(sg);
      dbeta[k] = static_cast<float>(sb);
    }
    // Pass 2: dx.
    if (relu_) {
      InputGradient<Io, true>(ctx, dy, x, scale, offset, ca, cb, cc, n, p, c, dx);
    } else {
      InputGradient<Io, false>(ctx, dy, x, scale, offset, ca, cb, cc, n, p, c, dx);
    }
  }

 private:
  int64_t groups_;
  bool relu_;
};

}  // namespace

using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("BitKerasGroupNorm")
    .Input("x: T")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: T")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("T: {float, bfloat16}")
    .Attr("groups: int")
    .Attr("epsilon: float")
    .Attr("relu: bool")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &x));
      int64_t groups;
      TF_RETURN_IF_ERROR(c->GetAttr("groups", &groups));
      c->set_output(0, x);
      c->set_output(1, c->Matrix(c->Dim(x, 0), groups));
      c->set_output(2, c->Matrix(c->Dim(x, 0), groups));
      return absl::OkStatus();
    });

REGISTER_OP("BitKerasGroupNormGrad")
    .Input("dy: T")
    .Input("x: T")
    .Input("mean: float")
    .Input("rstd: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("dx: T")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("T: {float, bfloat16}")
    .Attr("groups: int")
    .Attr("relu: bool")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &x));
      c->set_output(0, x);
      c->set_output(1, c->Vector(c->Dim(x, 2)));
      c->set_output(2, c->Vector(c->Dim(x, 2)));
      return absl::OkStatus();
    });

BIT_KERAS_REGISTER("BitKerasGroupNorm", GroupNormOp, "BitKerasGroupNormGrad", GroupNormGradOp)

}  // namespace bit_keras
