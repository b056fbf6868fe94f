// SiLU(GroupNorm(x) * W[n, c] + B[n, c]) on CPU tensors (N, C, *), contiguous or channels_last, forward and
// backward, in one pass over each (sample, group) slab; compiled on first use by ambient_omni/networks/cpu_kernels.py.
//
// Forward, for the slab of sample n and group g (M = C/G * HW elements):
//   mu = mean(x), rstd = 1 / sqrt(mean((x - mu)^2) + eps)          (two passes over the slab, in cache)
//   z = (x - mu) rstd W[n, c] + B[n, c],  y = z sigmoid(z)
// Backward, with s = sigmoid(z) and dz = dy s (1 + z (1 - s)):
//   dB[n, c] = sum_hw dz,  dW[n, c] = sum_hw dz xhat,  xhat = (x - mu) rstd
//   dx = rstd (W dz - m1 - xhat m2),  m1 = mean_slab(W dz),  m2 = mean_slab(W dz xhat)
// Statistics and arithmetic are in float (double for double tensors); bf16 outputs are rounded once, to nearest
// even. Each slab is computed by one thread in a fixed order, so results do not depend on the thread count.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <vector>

namespace {

inline float load(const float* p, int64_t i) { return p[i]; }
inline double load(const double* p, int64_t i) { return p[i]; }
inline float load(const at::BFloat16* p, int64_t i) {
  const uint32_t bits = static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(double* p, int64_t i, double v) { p[i] = v; }
inline void store(at::BFloat16* p, int64_t i, float v) {  // round to nearest even, NaN kept a (quiet) NaN
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  reinterpret_cast<uint16_t*>(p)[i] = static_cast<uint16_t>(v != v ? 0x7fc0u : rounded);
}

// exp(x) for float in a form the compiler vectorises: x = k ln2 + r, |r| <= ln2 / 2, exp(r) by Cephes' degree-7
// polynomial (about 1 ulp), 2^k from the exponent bits; x clamped to [-87, 88] (exp(-87) ~ 1.6e-38). k is x / ln2
// rounded to the nearest integer by adding and subtracting 1.5 * 2^23 (std::floor would not vectorise here).
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - k * 0.693359375f + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return e * scale;
}

inline float sigmoid(float z) { return 1.0f / (1.0f + exp_approx(-z)); }
inline double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// What forward and backward read: x, the per-sample affine parameters (N, C) and the geometry (C, HW, C / G).
template <typename T, typename A>
struct Inputs {
  const T* x;
  const A* w;
  const A* b;
  int64_t n_ch, hw, cg;
  Inputs(const at::Tensor& x_, const at::Tensor& w_, const at::Tensor& b_, int64_t groups)
      : x(x_.const_data_ptr<T>()), w(w_.const_data_ptr<A>()), b(b_.const_data_ptr<A>()), n_ch(x_.size(1)),
        hw(x_.numel() / (x_.size(0) * x_.size(1))), cg(x_.size(1) / groups) {}
};

// What the backward reads besides Inputs (dy, the forward's statistics) and writes (dx, dW, dB).
template <typename T, typename A>
struct Grads {
  const T* dy;
  const A* mean;
  const A* rstd;
  T* dx;
  A* dw;
  A* db;
  Grads(const at::Tensor& dy_, const at::Tensor& mean_, const at::Tensor& rstd_, at::Tensor& dx_, at::Tensor& dw_,
        at::Tensor& db_)
      : dy(dy_.const_data_ptr<T>()), mean(mean_.const_data_ptr<A>()), rstd(rstd_.const_data_ptr<A>()),
        dx(dx_.mutable_data_ptr<T>()), dw(dw_.mutable_data_ptr<A>()), db(db_.mutable_data_ptr<A>()) {}
};

template <typename T, typename A>
void forward_impl(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t groups,
                  double eps, at::Tensor& y, at::Tensor& mean, at::Tensor& rstd) {
  const auto [xp, wp, bp, n_ch, hw, cg] = Inputs<T, A>(x, weight, bias, groups);
  const int64_t m = cg * hw;
  T* yp = y.mutable_data_ptr<T>();
  A* mp = mean.mutable_data_ptr<A>();
  A* rp = rstd.mutable_data_ptr<A>();
  at::parallel_for(0, x.size(0) * groups, 1, [=](int64_t begin, int64_t end) {
    for (int64_t ng = begin; ng < end; ++ng) {
      const T* xs = xp + ng * m;
      A sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < m; ++i) sum += load(xs, i);
      const A mu = sum / static_cast<A>(m);
      A sq = 0;
#pragma omp simd reduction(+ : sq)
      for (int64_t i = 0; i < m; ++i) {
        const A d = load(xs, i) - mu;
        sq += d * d;
      }
      const A rs = A(1) / std::sqrt(sq / static_cast<A>(m) + static_cast<A>(eps));
      mp[ng] = mu;
      rp[ng] = rs;
      const int64_t first = (ng / groups) * n_ch + (ng % groups) * cg;  // index of (n, g's first channel)
      for (int64_t c = 0; c < cg; ++c) {
        const A a = rs * wp[first + c], shift = bp[first + c] - mu * a;
        const T* xc = xs + c * hw;
        T* yc = yp + ng * m + c * hw;
#pragma omp simd
        for (int64_t i = 0; i < hw; ++i) {
          const A z = load(xc, i) * a + shift;
          store(yc, i, z * sigmoid(z));
        }
      }
    }
  });
}

template <typename T, typename A>
void backward_impl(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                   const at::Tensor& mean, const at::Tensor& rstd, int64_t groups, at::Tensor& dx,
                   at::Tensor& dweight, at::Tensor& dbias) {
  const auto [xp, wp, bp, n_ch, hw, cg] = Inputs<T, A>(x, weight, bias, groups);
  const auto [dyp, mp, rp, dxp, dwp, dbp] = Grads<T, A>(dy, mean, rstd, dx, dweight, dbias);
  const int64_t m = cg * hw;
  at::parallel_for(0, x.size(0) * groups, 1, [=](int64_t begin, int64_t end) {
    std::vector<A> dz(m);  // the slab's dL/dz, kept for the second pass
    for (int64_t ng = begin; ng < end; ++ng) {
      const A mu = mp[ng], rs = rp[ng];
      const int64_t first = (ng / groups) * n_ch + (ng % groups) * cg;
      A m1 = 0, m2 = 0;
      for (int64_t c = 0; c < cg; ++c) {
        const A w = wp[first + c], a = rs * w, shift = bp[first + c] - mu * a;
        const T* xc = xp + ng * m + c * hw;
        const T* dyc = dyp + ng * m + c * hw;
        A* dzc = dz.data() + c * hw;
        A sum_dz = 0, sum_dz_xc = 0;
#pragma omp simd reduction(+ : sum_dz, sum_dz_xc)
        for (int64_t i = 0; i < hw; ++i) {
          const A xv = load(xc, i), z = xv * a + shift, s = sigmoid(z);
          const A d = load(dyc, i) * s * (A(1) + z * (A(1) - s));
          dzc[i] = d;
          sum_dz += d;
          sum_dz_xc += d * (xv - mu);
        }
        const A dw = rs * sum_dz_xc;  // sum dz xhat
        dwp[first + c] = dw;
        dbp[first + c] = sum_dz;
        m1 += w * sum_dz;
        m2 += w * dw;
      }
      m1 /= static_cast<A>(m);
      m2 /= static_cast<A>(m);
      const A coef_x = -rs * rs * m2, constant = -rs * m1 + mu * rs * rs * m2;
      for (int64_t c = 0; c < cg; ++c) {
        const A coef_dz = rs * wp[first + c];
        const T* xc = xp + ng * m + c * hw;
        const A* dzc = dz.data() + c * hw;
        T* dxc = dxp + ng * m + c * hw;
#pragma omp simd
        for (int64_t i = 0; i < hw; ++i) store(dxc, i, dzc[i] * coef_dz + load(xc, i) * coef_x + constant);
      }
    }
  });
}

// channels_last (N, H, W, C in memory): one thread per sample, vectorised across the C channels of each pixel;
// the group statistics combine per-channel sums, each summed over the pixels in order.
template <typename T, typename A>
void forward_cl_impl(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t groups,
                     double eps, at::Tensor& y, at::Tensor& mean, at::Tensor& rstd) {
  const auto [xp, wp, bp, n_ch, hw, cg] = Inputs<T, A>(x, weight, bias, groups);
  const A m = static_cast<A>(cg * hw);
  T* yp = y.mutable_data_ptr<T>();
  A* mp = mean.mutable_data_ptr<A>();
  A* rp = rstd.mutable_data_ptr<A>();
  at::parallel_for(0, x.size(0), 1, [=](int64_t begin, int64_t end) {
    std::vector<A> sum(n_ch), mu_c(n_ch), a(n_ch), shift(n_ch);
    for (int64_t n = begin; n < end; ++n) {
      const T* xs = xp + n * hw * n_ch;
      std::fill(sum.begin(), sum.end(), A(0));
      for (int64_t p = 0; p < hw; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < n_ch; ++c) sum[c] += load(xs, p * n_ch + c);
      }
      for (int64_t g = 0; g < groups; ++g) {
        A total = 0;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) total += sum[c];
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) mu_c[c] = total / m;
      }
      std::fill(sum.begin(), sum.end(), A(0));
      for (int64_t p = 0; p < hw; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < n_ch; ++c) {
          const A d = load(xs, p * n_ch + c) - mu_c[c];
          sum[c] += d * d;
        }
      }
      for (int64_t g = 0; g < groups; ++g) {
        A total = 0;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) total += sum[c];
        const A rs = A(1) / std::sqrt(total / m + static_cast<A>(eps));
        mp[n * groups + g] = mu_c[g * cg];
        rp[n * groups + g] = rs;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
          a[c] = rs * wp[n * n_ch + c];
          shift[c] = bp[n * n_ch + c] - mu_c[c] * a[c];
        }
      }
      T* ys = yp + n * hw * n_ch;
      for (int64_t p = 0; p < hw; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < n_ch; ++c) {
          const A z = load(xs, p * n_ch + c) * a[c] + shift[c];
          store(ys, p * n_ch + c, z * sigmoid(z));
        }
      }
    }
  });
}

template <typename T, typename A>
void backward_cl_impl(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                      const at::Tensor& mean, const at::Tensor& rstd, int64_t groups, at::Tensor& dx,
                      at::Tensor& dweight, at::Tensor& dbias) {
  const auto [xp, wp, bp, n_ch, hw, cg] = Inputs<T, A>(x, weight, bias, groups);
  const auto [dyp, mp, rp, dxp, dwp, dbp] = Grads<T, A>(dy, mean, rstd, dx, dweight, dbias);
  const A m = static_cast<A>(cg * hw);
  at::parallel_for(0, x.size(0), 1, [=](int64_t begin, int64_t end) {
    std::vector<A> dz(hw * n_ch), mu_c(n_ch), rs_c(n_ch), a(n_ch), shift(n_ch), sum_dz(n_ch), sum_dz_xc(n_ch);
    std::vector<A> coef_dz(n_ch), coef_x(n_ch), constant(n_ch);
    for (int64_t n = begin; n < end; ++n) {
      for (int64_t c = 0; c < n_ch; ++c) {
        const int64_t g = n * groups + c / cg;
        mu_c[c] = mp[g];
        rs_c[c] = rp[g];
        a[c] = rs_c[c] * wp[n * n_ch + c];
        shift[c] = bp[n * n_ch + c] - mu_c[c] * a[c];
      }
      std::fill(sum_dz.begin(), sum_dz.end(), A(0));
      std::fill(sum_dz_xc.begin(), sum_dz_xc.end(), A(0));
      const T* xs = xp + n * hw * n_ch;
      const T* dys = dyp + n * hw * n_ch;
      for (int64_t p = 0; p < hw; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < n_ch; ++c) {
          const A xv = load(xs, p * n_ch + c), z = xv * a[c] + shift[c], s = sigmoid(z);
          const A d = load(dys, p * n_ch + c) * s * (A(1) + z * (A(1) - s));
          dz[p * n_ch + c] = d;
          sum_dz[c] += d;
          sum_dz_xc[c] += d * (xv - mu_c[c]);
        }
      }
      for (int64_t g = 0; g < groups; ++g) {
        A m1 = 0, m2 = 0;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
          const A w = wp[n * n_ch + c], dw = rs_c[c] * sum_dz_xc[c];
          dwp[n * n_ch + c] = dw;
          dbp[n * n_ch + c] = sum_dz[c];
          m1 += w * sum_dz[c];
          m2 += w * dw;
        }
        m1 /= m;
        m2 /= m;
        for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
          const A rs = rs_c[c];
          coef_dz[c] = rs * wp[n * n_ch + c];
          coef_x[c] = -rs * rs * m2;
          constant[c] = -rs * m1 + mu_c[c] * rs * rs * m2;
        }
      }
      T* dxs = dxp + n * hw * n_ch;
      for (int64_t p = 0; p < hw; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < n_ch; ++c) {
          store(dxs, p * n_ch + c, dz[p * n_ch + c] * coef_dz[c] + load(xs, p * n_ch + c) * coef_x[c] + constant[c]);
        }
      }
    }
  });
}

bool channels_last(const at::Tensor& x) {
  return x.dim() == 4 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// Calls f(element tag, accumulator tag) for x's dtype: bf16 and float accumulate in float, double in double.
template <typename F>
void dispatch(at::ScalarType dtype, F f) {
  switch (dtype) {
    case at::kBFloat16: f(at::BFloat16{}, float{}); break;
    case at::kFloat: f(float{}, float{}); break;
    case at::kDouble: f(double{}, double{}); break;
    default: TORCH_CHECK(false, "x: bfloat16, float or double, not ", dtype);
  }
}

void check_inputs(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t groups) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() >= 3 && (x.is_contiguous() || channels_last(x)),
              "x: a CPU tensor (N, C, *), contiguous or channels_last");
  TORCH_CHECK(groups > 0 && x.size(1) % groups == 0, "the channel count must be a multiple of groups");
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  for (const at::Tensor* t : {&weight, &bias}) {
    TORCH_CHECK(t->dim() == 2 && t->size(0) == x.size(0) && t->size(1) == x.size(1) && t->is_contiguous() &&
                    t->scalar_type() == acc,
                "weight and bias: contiguous (N, C) tensors in float (double for double x)");
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> group_norm_silu_forward(const at::Tensor& x, const at::Tensor& weight,
                                                                        const at::Tensor& bias, int64_t groups,
                                                                        double eps) {
  check_inputs(x, weight, bias, groups);
  at::Tensor y = at::empty_like(x);
  at::Tensor mean = at::empty({x.size(0), groups}, weight.options());
  at::Tensor rstd = at::empty_like(mean);
  dispatch(x.scalar_type(), [&](auto t, auto a) {
    using T = decltype(t);
    using A = decltype(a);
    (channels_last(x) ? forward_cl_impl<T, A> : forward_impl<T, A>)(x, weight, bias, groups, eps, y, mean, rstd);
  });
  return {y, mean, rstd};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> group_norm_silu_backward(
    const at::Tensor& dy, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    const at::Tensor& mean, const at::Tensor& rstd, int64_t groups) {
  check_inputs(x, weight, bias, groups);
  TORCH_CHECK(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type() &&
                  (channels_last(x) ? dy.is_contiguous(at::MemoryFormat::ChannelsLast) : dy.is_contiguous()),
              "dy: of x's shape, dtype and memory layout");
  TORCH_CHECK(mean.is_contiguous() && rstd.is_contiguous() && mean.numel() == x.size(0) * groups &&
                  rstd.numel() == mean.numel() && mean.scalar_type() == weight.scalar_type() &&
                  rstd.scalar_type() == weight.scalar_type(),
              "mean and rstd: the forward's (N, groups) statistics");
  at::Tensor dx = at::empty_like(x);
  at::Tensor dweight = at::empty_like(weight);
  at::Tensor dbias = at::empty_like(bias);
  dispatch(x.scalar_type(), [&](auto t, auto a) {
    using T = decltype(t);
    using A = decltype(a);
    (channels_last(x) ? backward_cl_impl<T, A> : backward_impl<T, A>)(dy, x, weight, bias, mean, rstd, groups, dx,
                                                                      dweight, dbias);
  });
  return {dx, dweight, dbias};
}

}  // namespace

TORCH_LIBRARY(ambient_omni, m) {
  m.def("group_norm_silu_forward(Tensor x, Tensor weight, Tensor bias, int groups, float eps) -> "
        "(Tensor, Tensor, Tensor)");
  m.def("group_norm_silu_backward(Tensor dy, Tensor x, Tensor weight, Tensor bias, Tensor mean, Tensor rstd, "
        "int groups) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(ambient_omni, CPU, m) {
  m.impl("group_norm_silu_forward", &group_norm_silu_forward);
  m.impl("group_norm_silu_backward", &group_norm_silu_backward);
}
