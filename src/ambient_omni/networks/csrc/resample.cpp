// 2 x 2 average pooling and 2x nearest up-sampling of (N, C, H, W) CPU tensors, with their backward passes;
// compiled on first use with group_norm_silu.cpp by ambient_omni/networks/cpu_kernels.py.
//
//   pool:      y[i, j] = (x[2i, 2j] + x[2i, 2j+1] + x[2i+1, 2j] + x[2i+1, 2j+1]) / 4,   dx[2i+a, 2j+b] = dy[i, j] / 4
//   upsample:  y[2i+a, 2j+b] = x[i, j],   dx[i, j] = dy[2i, 2j] + dy[2i, 2j+1] + dy[2i+1, 2j] + dy[2i+1, 2j+1]
//
// Sums are taken in float (double for double tensors) in PyTorch's order and rounded once, so the results are
// PyTorch's avg_pool2d / upsample_nearest2d and their gradients, bit for bit. Inputs need rows of contiguous
// pixels (NCHW-like) or contiguous channels (channels_last-like); the other strides are free, so a channel slice
// of a concatenation's gradient is read in place. Outputs are contiguous, or channels_last for the second kind.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>

namespace {

template <typename T>
struct Acc { using type = float; };
template <>
struct Acc<double> { using type = double; };

// The two layouts the kernels read: rows of contiguous pixels (NCHW-like; any sample and channel strides) or
// contiguous channels (channels_last-like; any pixel and sample strides).
bool pixel_rows(const at::Tensor& x) { return x.stride(3) == 1 && x.stride(2) == x.size(3); }
bool channels_inner(const at::Tensor& x) { return x.stride(1) == 1; }

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, "a 4-D CPU tensor (N, C, H, W)");
  TORCH_CHECK(pixel_rows(x) || channels_inner(x), "rows of contiguous pixels or contiguous channels");
  TORCH_CHECK(x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "bfloat16, float or double, not ", x.scalar_type());
}

// An output of `sizes` in the input's layout: contiguous for pixel rows, channels_last for contiguous channels.
at::Tensor output_like(const at::Tensor& x, at::IntArrayRef sizes) {
  const auto format = pixel_rows(x) ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
  return at::empty(sizes, x.options().memory_format(format));
}

// channels_last forms: for output pixel (n, i, j), f(input strides, output pixel, n, i, j) over the C channels.
// Parallel over output rows (n, i); the input's sample and pixel strides are free, its channels contiguous.
template <typename T, typename F>
void for_pixels(const at::Tensor& in, at::Tensor& out, F f) {
  const int64_t rows = out.size(0) * out.size(2), h = out.size(2), w = out.size(3), channels = out.size(1);
  const T* ip = in.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
  const int64_t sn = in.stride(0), sh = in.stride(2), sw = in.stride(3);
  at::parallel_for(0, rows, 1, [=](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / h, i = r % h;
      for (int64_t j = 0; j < w; ++j) f(ip + n * sn, sh, sw, op + ((n * h + i) * w + j) * channels, i, j, channels);
    }
  });
}

// Calls f(input plane, output plane) for each (n, c), in parallel over planes.
template <typename T, typename F>
void for_planes(const at::Tensor& in, at::Tensor& out, F f) {
  const int64_t channels = in.size(1), sn = in.stride(0), sc = in.stride(1);
  const int64_t out_plane = out.size(2) * out.size(3);
  const T* ip = in.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
  at::parallel_for(0, in.size(0) * channels, 4, [=](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) f(ip + (p / channels) * sn + (p % channels) * sc, op + p * out_plane);
  });
}

// Each output pixel: the sum of the input's 2 x 2 block, in PyTorch's order, divided by `divisor` (pooling: 4;
// the up-sampling's backward: 1), rounded once.
template <typename T>
void sum_blocks(const at::Tensor& in, at::Tensor& out, double divisor) {
  using A = typename Acc<T>::type;
  const int64_t h = out.size(2), w = out.size(3), in_w = in.size(3);
  const A d = static_cast<A>(divisor);
  for_planes<T>(in, out, [=](const T* ip, T* op) {
    for (int64_t i = 0; i < h; ++i) {
      const T* r0 = ip + 2 * i * in_w;
      const T* r1 = r0 + in_w;
      for (int64_t j = 0; j < w; ++j) {
        const A sum = static_cast<A>(r0[2 * j]) + static_cast<A>(r0[2 * j + 1]) + static_cast<A>(r1[2 * j]) +
                      static_cast<A>(r1[2 * j + 1]);
        op[i * w + j] = static_cast<T>(sum / d);
      }
    }
  });
}

// Each input pixel divided by `divisor` (the pooling's backward: 4; up-sampling: 1) into its 2 x 2 output block.
template <typename T>
void spread(const at::Tensor& in, at::Tensor& out, double divisor) {
  using A = typename Acc<T>::type;
  const int64_t h = in.size(2), w = in.size(3), out_w = out.size(3);
  const A d = static_cast<A>(divisor);
  for_planes<T>(in, out, [=](const T* ip, T* op) {
    for (int64_t i = 0; i < h; ++i) {
      T* r0 = op + 2 * i * out_w;
      T* r1 = r0 + out_w;
      for (int64_t j = 0; j < w; ++j) r0[2 * j] = r0[2 * j + 1] = static_cast<T>(static_cast<A>(ip[i * w + j]) / d);
      for (int64_t j = 0; j < out_w; ++j) r1[j] = r0[j];
    }
  });
}

// channels_last forms of the two, vectorised across channels; parallel over rows (n, i) of the smaller image.
template <typename T>
void sum_blocks_cl(const at::Tensor& in, at::Tensor& out, double divisor) {
  using A = typename Acc<T>::type;
  const A d = static_cast<A>(divisor);
  for_pixels<T>(in, out, [=](const T* xs, int64_t sh, int64_t sw, T* op, int64_t i, int64_t j, int64_t channels) {
    const T* p00 = xs + 2 * i * sh + 2 * j * sw;
    const T *p01 = p00 + sw, *p10 = p00 + sh, *p11 = p00 + sh + sw;
    for (int64_t c = 0; c < channels; ++c) {
      const A sum = static_cast<A>(p00[c]) + static_cast<A>(p01[c]) + static_cast<A>(p10[c]) + static_cast<A>(p11[c]);
      op[c] = static_cast<T>(sum / d);
    }
  });
}

template <typename T>
void spread_cl(const at::Tensor& in, at::Tensor& out, double divisor) {
  using A = typename Acc<T>::type;
  const int64_t rows = in.size(0) * in.size(2), h = in.size(2), w = in.size(3), channels = in.size(1);
  const int64_t out_w = out.size(3);
  const T* ip = in.const_data_ptr<T>();
  T* op = out.mutable_data_ptr<T>();
  const int64_t sn = in.stride(0), sh = in.stride(2), sw = in.stride(3);
  const A d = static_cast<A>(divisor);
  at::parallel_for(0, rows, 1, [=](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / h, i = r % h;
      for (int64_t j = 0; j < w; ++j) {
        const T* src = ip + n * sn + i * sh + j * sw;
        T* q00 = op + ((n * 2 * h + 2 * i) * out_w + 2 * j) * channels;
        T *q01 = q00 + channels, *q10 = q00 + out_w * channels, *q11 = q10 + channels;
        for (int64_t c = 0; c < channels; ++c) {
          q00[c] = q01[c] = q10[c] = q11[c] = static_cast<T>(static_cast<A>(src[c]) / d);
        }
      }
    }
  });
}

// The op's output, half (`halve`) or twice the input's size, in the input's layout, filled by
// run(dtype tag, input has pixel rows, input, output).
template <typename F>
at::Tensor resample(const at::Tensor& in, bool halve, const char* name, F run) {
  check_input(in);
  TORCH_CHECK(!halve || (in.size(2) % 2 == 0 && in.size(3) % 2 == 0), name, ": even H and W");
  const int64_t h = halve ? in.size(2) / 2 : 2 * in.size(2), w = halve ? in.size(3) / 2 : 2 * in.size(3);
  at::Tensor out = output_like(in, {in.size(0), in.size(1), h, w});
  const bool rows = pixel_rows(in);
  switch (in.scalar_type()) {
    case at::kBFloat16: run(at::BFloat16{}, rows, in, out); break;
    case at::kFloat: run(float{}, rows, in, out); break;
    default: run(double{}, rows, in, out); break;
  }
  return out;
}

at::Tensor pool2x2_forward(const at::Tensor& x) {
  return resample(x, true, "pool2x2", [](auto tag, bool rows, const at::Tensor& in, at::Tensor& out) {
    using T = decltype(tag);
    rows ? sum_blocks<T>(in, out, 4.0) : sum_blocks_cl<T>(in, out, 4.0);
  });
}

at::Tensor pool2x2_backward(const at::Tensor& dy) {
  return resample(dy, false, "pool2x2_backward", [](auto tag, bool rows, const at::Tensor& in, at::Tensor& out) {
    using T = decltype(tag);
    rows ? spread<T>(in, out, 4.0) : spread_cl<T>(in, out, 4.0);
  });
}

at::Tensor upsample2x_forward(const at::Tensor& x) {
  return resample(x, false, "upsample2x", [](auto tag, bool rows, const at::Tensor& in, at::Tensor& out) {
    using T = decltype(tag);
    rows ? spread<T>(in, out, 1.0) : spread_cl<T>(in, out, 1.0);
  });
}

at::Tensor upsample2x_backward(const at::Tensor& dy) {
  return resample(dy, true, "upsample2x_backward", [](auto tag, bool rows, const at::Tensor& in, at::Tensor& out) {
    using T = decltype(tag);
    rows ? sum_blocks<T>(in, out, 1.0) : sum_blocks_cl<T>(in, out, 1.0);
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(ambient_omni, m) {
  m.def("pool2x2_forward(Tensor x) -> Tensor");
  m.def("pool2x2_backward(Tensor dy) -> Tensor");
  m.def("upsample2x_forward(Tensor x) -> Tensor");
  m.def("upsample2x_backward(Tensor dy) -> Tensor");
}

TORCH_LIBRARY_IMPL(ambient_omni, CPU, m) {
  m.impl("pool2x2_forward", &pool2x2_forward);
  m.impl("pool2x2_backward", &pool2x2_backward);
  m.impl("upsample2x_forward", &upsample2x_forward);
  m.impl("upsample2x_backward", &upsample2x_backward);
}
