// Weight Standardization of an HWIO kernel per output channel, forward and backward, in
// two memory passes each (bit_keras/layers/standardized_conv.py has the TensorFlow-op
// version; bit_keras/layers/fused.py builds and loads this file).
//
// The kernel is viewed as (rows, O) with rows = H * W * I: per output channel o,
// mean and variance over the rows (float64 sums, the population variance), then
// w_hat = (w - mean) * rstd with rstd = 1 / sqrt(var + epsilon), written as float32 or
// bfloat16 (rounded once, to nearest even). Rows are split into fixed blocks and partial
// sums added in block order, so results do not depend on the number of threads.

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


constexpr int64_t kRows = 64;  // rows per work item

using kernels::Data;
using kernels::Traits;

// Runs fn(first_row, end_row, block_index) over fixed blocks of rows, in parallel.
template <typename Fn>
void ForEachBlock(OpKernelContext* ctx, int64_t rows, int64_t cols, Fn fn) {
  kernels::ForEachBlock(ctx, 1, rows, kRows, cols,
                        [&](int64_t, int64_t begin, int64_t end, int64_t b) { fn(begin, end, b); });
}

// Per-column sums of a and of a * w over fixed row blocks, added in block order (float64).
template <typename Io>
void ColumnSums(OpKernelContext* ctx, const typename Io::Stored* a, const float* w, bool square,
                int64_t rows,
                int64_t cols, std::vector<double>* s1, std::vector<double>* s2) {
  const int64_t blocks = (rows + kRows - 1) / kRows;
  std::vector<double> partial(blocks * 2 * cols, 0.0);
  ForEachBlock(ctx, rows, cols, [&](int64_t begin, int64_t end, int64_t b) {
    double* p1 = &partial[b * 2 * cols];
    double* p2 = p1 + cols;
    for (int64_t r = begin; r < end; ++r) {
      for (int64_t o = 0; o < cols; ++o) {
        const double v = Io::Load(a, r * cols + o);
        p1[o] += v;
        p2[o] += v * (square ? v : static_cast<double>(w[r * cols + o]));
      }
    }
  });
  s1->assign(cols, 0.0);
  s2->assign(cols, 0.0);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t o = 0; o < cols; ++o) {
      (*s1)[o] += partial[b * 2 * cols + o];
      (*s2)[o] += partial[b * 2 * cols + cols + o];
    }
  }
}

void CheckKernel(OpKernelContext* ctx, const Tensor& w) {
  OP_REQUIRES(ctx, w.dims() >= 2,
              tensorflow::errors::InvalidArgument("kernel must have rank >= 2, got ",
                                                  w.shape().DebugString()));
}

template <typename T>
class StandardizeOp : public OpKernel {
 public:
  explicit StandardizeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& w_t = ctx->input(0);
    CheckKernel(ctx, w_t);
    if (!ctx->status().ok()) return;
    const int64_t cols = w_t.dim_size(w_t.dims() - 1);
    const int64_t rows = cols ? w_t.NumElements() / cols : 0;
    Tensor* out_t = nullptr;
    Tensor* mean_t = nullptr;
    Tensor* rstd_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, w_t.shape(), &out_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({cols}), &mean_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({cols}), &rstd_t));
    const float* w = w_t.flat<float>().data();
    using Io = typename Traits<T>::Io;
    auto* out = Data<T>(out_t);
    float* mean = mean_t->flat<float>().data();
    float* rstd = rstd_t->flat<float>().data();
    std::vector<double> s1, s2;
    ColumnSums<kernels::Float32>(ctx, w, w, /*square=*/true, rows, cols, &s1, &s2);
    for (int64_t o = 0; o < cols; ++o) {
      const double mu = s1[o] / rows;
      const double var = std::max(s2[o] / rows - mu * mu, 0.0);
      mean[o] = static_cast<float>(mu);
      rstd[o] = static_cast<float>(1.0 / std::sqrt(var + epsilon_));
    }
    ForEachBlock(ctx, rows, cols, [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t o = 0; o < cols; ++o) {
          Io::Store(out, r * cols + o, (w[r * cols + o] - mean[o]) * rstd[o]);
        }
      }
    });
  }

 private:
  float epsilon_;
};

// d w = rstd * (g - mean(g) - w_hat * mean(g * w_hat)) per column, g the upstream gradient.
template <typename T>
class StandardizeGradOp : public OpKernel {
 public:
  explicit StandardizeGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& g_t = ctx->input(0);
    const Tensor& w_t = ctx->input(1);
    CheckKernel(ctx, w_t);
    if (!ctx->status().ok()) return;
    OP_REQUIRES(ctx, g_t.shape() == w_t.shape(),
                tensorflow::errors::InvalidArgument("gradient and kernel shapes differ"));
    const int64_t cols = w_t.dim_size(w_t.dims() - 1);
    const int64_t rows = cols ? w_t.NumElements() / cols : 0;
    using Io = typename Traits<T>::Io;
    const auto* g = Data<T>(g_t);
    const float* w = w_t.flat<float>().data();
    kernels::CheckSize(ctx, ctx->input(2), cols, "mean");
    kernels::CheckSize(ctx, ctx->input(3), cols, "rstd");
    if (!ctx->status().ok()) return;
    const float* mean = ctx->input(2).flat<float>().data();
    const float* rstd = ctx->input(3).flat<float>().data();
    Tensor* dw_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, w_t.shape(), &dw_t));
    float* dw = dw_t->flat<float>().data();
    std::vector<double> sum_g, sum_gw;
    ColumnSums<Io>(ctx, g, w, /*square=*/false, rows, cols, &sum_g, &sum_gw);
    // dw = g * a + w * b + c per column.
    std::vector<float> a(cols), b(cols), c(cols);
    for (int64_t o = 0; o < cols; ++o) {
      const double mu = mean[o], rs = rstd[o];
      const double mean_g = sum_g[o] / rows;
      const double mean_g_what = (sum_gw[o] - mu * sum_g[o]) * rs / rows;
      a[o] = static_cast<float>(rs);
      b[o] = static_cast<float>(-rs * rs * mean_g_what);
      c[o] = static_cast<float>(-rs * mean_g + rs * rs * mean_g_what * mu);
    }
    ForEachBlock(ctx, rows, cols, [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t r = begin; r < end; ++r) {
        for (int64_t o = 0; o < cols; ++o) {
          dw[r * cols + o] = Io::Load(g, r * cols + o) * a[o] + w[r * cols + o] * b[o] + c[o];
        }
      }
    });
  }
};

}  // namespace

using tensorflow::shape_inference::InferenceContext;

REGISTER_OP("BitKerasStandardize")
    .Input("kernel: float")
    .Output("standardized: T")
    .Output("mean: float")
    .Output("rstd: float")
    .Attr("T: {float, bfloat16}")
    .Attr("epsilon: float")
    .SetShapeFn([](InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle kernel;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 2, &kernel));
      c->set_output(0, kernel);
      auto last = c->Dim(kernel, -1);
      c->set_output(1, c->Vector(last));
      c->set_output(2, c->Vector(last));
      return absl::OkStatus();
    });

REGISTER_OP("BitKerasStandardizeGrad")
    .Input("upstream: T")
    .Input("kernel: float")
    .Input("mean: float")
    .Input("rstd: float")
    .Output("dkernel: float")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return absl::OkStatus();
    });

BIT_KERAS_REGISTER("BitKerasStandardize", StandardizeOp, "BitKerasStandardizeGrad", StandardizeGradOp)

}  // namespace bit_keras
