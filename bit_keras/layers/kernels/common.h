// What group_norm.cc and standardize.cc share: float32/bfloat16 element access, and fixed
// blocks of work spread over TensorFlow's CPU threads (fixed, so sums added block by block
// in order do not depend on the number of threads).

#ifndef BIT_KERAS_LAYERS_KERNELS_COMMON_H_
#define BIT_KERAS_LAYERS_KERNELS_COMMON_H_

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace bit_keras {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

namespace kernels {

struct Float32 {
  using Stored = float;
  static inline float Load(const Stored* p, int64_t i) { return p[i]; }
  static inline void Store(Stored* p, int64_t i, float v) { p[i] = v; }
};

struct BFloat16 {  // bfloat16 stored as its upper 16 bits; rounding to nearest even
  using Stored = uint16_t;
  static inline float Load(const Stored* p, int64_t i) {
    uint32_t u = static_cast<uint32_t>(p[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static inline void Store(Stored* p, int64_t i, float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      p[i] = static_cast<uint16_t>((u >> 16) | 0x40u);  // a quiet NaN
      return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    p[i] = static_cast<uint16_t>(u >> 16);
  }
};

template <typename T>
struct Traits;
template <>
struct Traits<float> {
  using Io = Float32;
};
template <>
struct Traits<tensorflow::bfloat16> {
  using Io = BFloat16;
};

template <typename T>
typename Traits<T>::Io::Stored* Data(tensorflow::Tensor* t) {
  return reinterpret_cast<typename Traits<T>::Io::Stored*>(t->flat<T>().data());
}
template <typename T>
const typename Traits<T>::Io::Stored* Data(const tensorflow::Tensor& t) {
  return reinterpret_cast<const typename Traits<T>::Io::Stored*>(t.flat<T>().data());
}

// Runs fn(sample, first, end, block_index) over blocks of ``block`` rows of ``length`` in
// every sample; ``width`` elements per row (the cost estimate).
template <typename Fn>
void ForEachBlock(tensorflow::OpKernelContext* ctx, int64_t samples, int64_t length,
                  int64_t block, int64_t width, Fn fn) {
  const int64_t blocks = (length + block - 1) / block;
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, samples * blocks, block * width * 4,
                    [&](int64_t begin, int64_t end) {
                      for (int64_t item = begin; item < end; ++item) {
                        const int64_t i = item / blocks, b = item % blocks;
                        fn(i, b * block, std::min(length, (b + 1) * block), b);
                      }
                    });
}

// Fails the op unless ``t`` holds ``count`` elements (parameters and statistics passed in).
inline void CheckSize(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& t,
                      int64_t count, const char* name) {
  OP_REQUIRES(ctx, t.NumElements() == count,
              tensorflow::errors::InvalidArgument(name, " must hold ", count,
                                                  " values, got shape ",
                                                  t.shape().DebugString()));
}

}  // namespace kernels
}  // namespace bit_keras

// Registers the CPU kernels of an op and of its gradient, for float32 and bfloat16.
#define BIT_KERAS_REGISTER_ONE(NAME, KERNEL, T) \
  REGISTER_KERNEL_BUILDER(                       \
      Name(NAME).Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), KERNEL<T>);
#define BIT_KERAS_REGISTER(NAME, KERNEL, GRAD_NAME, GRAD_KERNEL)           \
  BIT_KERAS_REGISTER_ONE(NAME, KERNEL, float)                              \
  BIT_KERAS_REGISTER_ONE(NAME, KERNEL, tensorflow::bfloat16)               \
  BIT_KERAS_REGISTER_ONE(GRAD_NAME, GRAD_KERNEL, float)                    \
  BIT_KERAS_REGISTER_ONE(GRAD_NAME, GRAD_KERNEL, tensorflow::bfloat16)

#endif  // BIT_KERAS_LAYERS_KERNELS_COMMON_H_
