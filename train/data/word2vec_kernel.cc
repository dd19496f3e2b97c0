// word2vec's SGD on the CPU as word2vec.c and gensim run it: every example updates the two tables in place at once,
// on several threads sharing the tables without locks (Hogwild, Recht et al. 2011). An XLA FFI handler: the jitted
// step (train/data/word2vec_step.py) passes its tables, aliased to the results, so nothing is copied.
//
// Built on first use by train/data/word2vec_native.py (g++ -O3 -march=native), which falls back to XLA's minibatch
// row steps (zoo/word2vec_rows.py) where it cannot build. The math is zoo.word2vec's: for an input vector h and
// targets t_0 (the positive, label 1) and the noise words t_1..t_K (label 0), with s_j = u_{t_j}.h,
//   loss = sum_j softplus(-(2 label_j - 1) s_j),   g_j = lr * weight * (label_j - sigmoid(s_j)),
//   u_{t_j} += g_j h  (each in turn),   then the input rows += sum_j g_j u_{t_j} (the u before their update),
// word2vec.c's order. CBOW's h is the mean of the centre's context rows, each of which takes the whole sum.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

struct Tables {
  float* in;
  float* out;
  int64_t dim;
};

inline float dot(const float* a, const float* b, int64_t n) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

inline void axpy(float g, const float* x, float* y, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += g * x[i];
}

// The output side of one example: h against the positive row `target` and the noise rows `noise[0..k)`; adds
// sum_j g_j u_j into grad (zeroed here) and returns the example's loss, sum_j softplus(-(2 label_j - 1) s_j).
// The loss reuses the sigmoid's 1 + e^-s: log prod_j (1 + e^-s_j) + sum_{j>0} s_j, one log an example (a log1p
// per target cost a third of the time). s is clamped to [-80, 80] inside exp only: no overflow, and the
// sigmoid at the clamp is 1 or 0 to float precision anyway.
inline double output_layer(const Tables& t, const float* h, float* grad, int32_t target, const int32_t* noise,
                           int64_t k, float step) {
  const int64_t d = t.dim;
  std::fill(grad, grad + d, 0.f);
  double prod = 1.0, linear = 0.0;
  for (int64_t j = 0; j <= k; ++j) {
    float* u = t.out + static_cast<int64_t>(j == 0 ? target : noise[j - 1]) * d;
    const float s = dot(h, u, d);
    const float den = 1.f + std::exp(-std::min(std::max(s, -80.f), 80.f));  // 1 / sigmoid(s)
    const float g = j == 0 ? step * (1.f - 1.f / den) : -step / den;        // lr * weight * (label - sigmoid(s))
    prod *= den;
    if (j > 0) linear += s;
    axpy(g, u, grad, d);
    axpy(g, h, u, d);
  }
  return std::log(prod) + linear;
}

// The noise words: zoo.word2vec.sample_alias's rule (column = bits mod V, kept if bits / V < threshold[column],
// else alias[column]) on 32 bits of splitmix64 of (seed, draw number): a draw depends on the step's seed and its
// place in the step only, not on which thread makes it.
struct Noise {
  const uint32_t* threshold;
  const int32_t* alias;
  uint64_t seed;
  uint32_t vocab;
  int64_t k;
  inline int32_t draw(int64_t row, int64_t j) const {
    uint64_t z = seed + static_cast<uint64_t>(row * k + j + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    const uint32_t bits = static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
    const uint32_t column = bits % vocab;
    return bits / vocab < threshold[column] ? static_cast<int32_t>(column) : alias[column];
  }
  inline void fill(int64_t row, int32_t* out) const {
    for (int64_t j = 0; j < k; ++j) out[j] = draw(row, j);
  }
};

Noise make_noise(const ffi::Buffer<ffi::U32>& threshold, const ffi::Buffer<ffi::S32>& alias,
                 const ffi::Buffer<ffi::U32>& seed, int64_t k) {
  const uint32_t* s = seed.typed_data();
  return Noise{threshold.typed_data(), alias.typed_data(), (static_cast<uint64_t>(s[0]) << 32) | s[1],
               static_cast<uint32_t>(threshold.element_count()), k};
}

inline void prefetch_row(const float* row, int64_t d) {
  for (int64_t o = 0; o < d; o += 16) __builtin_prefetch(row + o, 1, 3);  // 16 floats: one 64-byte line
}

// Runs body(first, last, &loss) on `threads` threads over [0, n) in contiguous parts; the summed loss.
template <typename Body>
double parallel_parts(int64_t n, int64_t threads, Body body) {
  threads = std::max<int64_t>(1, std::min(threads, n));
  std::vector<double> losses(threads, 0.0);
  std::vector<std::thread> pool;
  for (int64_t p = 1; p < threads; ++p)
    pool.emplace_back([&, p] { body(n * p / threads, n * (p + 1) / threads, &losses[p]); });
  body(0, n / threads, &losses[0]);
  for (auto& th : pool) th.join();
  double total = 0.0;
  for (double l : losses) total += l;
  return total;
}

ffi::Error SkipGramImpl(ffi::Buffer<ffi::F32> w_in, ffi::Buffer<ffi::F32> w_out, ffi::Buffer<ffi::S32> inputs,
                        ffi::Buffer<ffi::S32> outputs, ffi::Buffer<ffi::F32> weights, ffi::Buffer<ffi::F32> lrs,
                        ffi::Buffer<ffi::U32> threshold, ffi::Buffer<ffi::S32> alias, ffi::Buffer<ffi::U32> seed,
                        ffi::ResultBuffer<ffi::F32> new_in, ffi::ResultBuffer<ffi::F32> new_out,
                        ffi::ResultBuffer<ffi::F32> loss, int64_t threads, int64_t k, int64_t group) {
  const int64_t d = w_in.dimensions()[1], n = inputs.element_count(), m = lrs.element_count();
  if (m == 0 || n % m || group < 1)
    return ffi::Error::InvalidArgument("word2vec kernel: examples must split evenly into minibatches");
  const int64_t per_minibatch = n / m;
  const Noise noise = make_noise(threshold, alias, seed, k);
  Tables t{new_in->typed_data(), new_out->typed_data(), d};
  const int32_t* in_ids = inputs.typed_data();
  const int32_t* out_ids = outputs.typed_data();
  const float* weight = weights.typed_data();
  const float* lr = lrs.typed_data();
  *loss->typed_data() = static_cast<float>(parallel_parts(m, threads, [&](int64_t first, int64_t last, double* l) {
    std::vector<float> grad(d);
    std::vector<int32_t> drawn(k), ahead(k);
    int64_t drawn_row = -1, ahead_row = -1;  // G = group consecutive examples share a draw (HogBatch)
    for (int64_t mb = first; mb < last; ++mb) {
      const int64_t end = (mb + 1) * per_minibatch;
      for (int64_t i = mb * per_minibatch; i < end; ++i) {
        if (weight[i] == 0.f) continue;
        if (i / group != drawn_row) {
          if (ahead_row == i / group) std::swap(drawn, ahead); else noise.fill(i / group, drawn.data());
          drawn_row = i / group;
        }
        if (i + 1 < end && weight[i + 1] != 0.f) {  // the next example's rows, on their way while this one runs
          prefetch_row(t.in + static_cast<int64_t>(in_ids[i + 1]) * d, d);
          prefetch_row(t.out + static_cast<int64_t>(out_ids[i + 1]) * d, d);
          if ((i + 1) / group != drawn_row) {
            noise.fill(ahead_row = (i + 1) / group, ahead.data());
            for (int64_t j = 0; j < k; ++j) prefetch_row(t.out + static_cast<int64_t>(ahead[j]) * d, d);
          }
        }
        float* h = t.in + static_cast<int64_t>(in_ids[i]) * d;
        *l += weight[i] * output_layer(t, h, grad.data(), out_ids[i], drawn.data(), k, lr[mb] * weight[i]);
        axpy(1.f, grad.data(), h, d);
      }
    }
  }));
  return ffi::Error::Success();
}

ffi::Error CbowImpl(ffi::Buffer<ffi::F32> w_in, ffi::Buffer<ffi::F32> w_out, ffi::Buffer<ffi::S32> contexts,
                    ffi::Buffer<ffi::S32> owners, ffi::Buffer<ffi::F32> mask, ffi::Buffer<ffi::S32> outputs,
                    ffi::Buffer<ffi::F32> weights, ffi::Buffer<ffi::F32> lrs, ffi::Buffer<ffi::U32> threshold,
                    ffi::Buffer<ffi::S32> alias, ffi::Buffer<ffi::U32> seed, ffi::ResultBuffer<ffi::F32> new_in,
                    ffi::ResultBuffer<ffi::F32> new_out, ffi::ResultBuffer<ffi::F32> loss, int64_t threads, int64_t k,
                    int64_t group) {
  const int64_t d = w_in.dimensions()[1], n = outputs.element_count(), m = lrs.element_count();
  const int64_t slots = contexts.element_count();
  if (m == 0 || n % m || slots % m || group < 1)
    return ffi::Error::InvalidArgument("word2vec kernel: examples must split evenly into minibatches");
  const int64_t per_minibatch = n / m, per_slots = slots / m;
  const Noise noise = make_noise(threshold, alias, seed, k);
  Tables t{new_in->typed_data(), new_out->typed_data(), d};
  const int32_t* ctx = contexts.typed_data();
  const int32_t* owner = owners.typed_data();
  const float* on = mask.typed_data();
  const int32_t* out_ids = outputs.typed_data();
  const float* weight = weights.typed_data();
  const float* lr = lrs.typed_data();
  *loss->typed_data() = static_cast<float>(parallel_parts(m, threads, [&](int64_t first, int64_t last, double* l) {
    std::vector<float> h(d), grad(d);
    std::vector<int32_t> drawn(k), ahead(k);
    int64_t drawn_row = -1, ahead_row = -1;
    for (int64_t mb = first; mb < last; ++mb) {
      int64_t p = mb * per_slots;
      const int64_t end = p + per_slots;
      while (p < end) {  // a centre's slots are consecutive, in the order of the centres
        if (on[p] == 0.f) { ++p; continue; }
        const int64_t start = p, centre = mb * per_minibatch + owner[p];
        while (p < end && on[p] != 0.f && owner[p] == owner[start]) ++p;
        if (weight[centre] == 0.f) continue;
        if (centre / group != drawn_row) {
          if (ahead_row == centre / group) std::swap(drawn, ahead); else noise.fill(centre / group, drawn.data());
          drawn_row = centre / group;
        }
        if (p < end && on[p] != 0.f) {  // the next centre's rows, on their way while this one runs
          const int64_t next = mb * per_minibatch + owner[p];
          for (int64_t q = p; q < std::min(end, p + 16) && on[q] != 0.f && owner[q] == owner[p]; ++q)
            prefetch_row(t.in + static_cast<int64_t>(ctx[q]) * d, d);
          prefetch_row(t.out + static_cast<int64_t>(out_ids[next]) * d, d);
          if (next / group != drawn_row) {
            noise.fill(ahead_row = next / group, ahead.data());
            for (int64_t j = 0; j < k; ++j) prefetch_row(t.out + static_cast<int64_t>(ahead[j]) * d, d);
          }
        }
        std::fill(h.begin(), h.end(), 0.f);
        for (int64_t q = start; q < p; ++q) axpy(1.f, t.in + static_cast<int64_t>(ctx[q]) * d, h.data(), d);
        const float inv = 1.f / static_cast<float>(p - start);
        for (auto& x : h) x *= inv;
        *l += weight[centre] *
              output_layer(t, h.data(), grad.data(), out_ids[centre], drawn.data(), k, lr[mb] * weight[centre]);
        for (int64_t q = start; q < p; ++q) axpy(1.f, grad.data(), t.in + static_cast<int64_t>(ctx[q]) * d, d);
      }
    }
  }));
  return ffi::Error::Success();
}

ffi::Error NoiseImpl(ffi::Buffer<ffi::U32> threshold, ffi::Buffer<ffi::S32> alias, ffi::Buffer<ffi::U32> seed,
                     ffi::ResultBuffer<ffi::S32> drawn) {
  const int64_t rows = drawn->dimensions()[0], k = drawn->dimensions()[1];
  const Noise noise = make_noise(threshold, alias, seed, k);
  for (int64_t r = 0; r < rows; ++r) noise.fill(r, drawn->typed_data() + r * k);
  return ffi::Error::Success();
}

}  // namespace

#define ZOO_TABLES Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()
#define ZOO_STEP Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F32>>()  // weights, lrs
#define ZOO_NOISE Arg<ffi::Buffer<ffi::U32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::U32>>()
#define ZOO_RESULTS Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>().Ret<ffi::Buffer<ffi::F32>>()
#define ZOO_ATTRS Attr<int64_t>("threads").Attr<int64_t>("negatives").Attr<int64_t>("group")

XLA_FFI_DEFINE_HANDLER_SYMBOL(ZooWord2vecSkipGram, SkipGramImpl,
                              ffi::Ffi::Bind()
                                  .ZOO_TABLES.Arg<ffi::Buffer<ffi::S32>>()  // inputs
                                  .Arg<ffi::Buffer<ffi::S32>>()             // outputs
                                  .ZOO_STEP.ZOO_NOISE.ZOO_RESULTS.ZOO_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(ZooWord2vecCbow, CbowImpl,
                              ffi::Ffi::Bind()
                                  .ZOO_TABLES.Arg<ffi::Buffer<ffi::S32>>()  // contexts
                                  .Arg<ffi::Buffer<ffi::S32>>()             // owners
                                  .Arg<ffi::Buffer<ffi::F32>>()             // mask
                                  .Arg<ffi::Buffer<ffi::S32>>()             // outputs
                                  .ZOO_STEP.ZOO_NOISE.ZOO_RESULTS.ZOO_ATTRS);

XLA_FFI_DEFINE_HANDLER_SYMBOL(ZooWord2vecNoise, NoiseImpl,
                              ffi::Ffi::Bind().ZOO_NOISE.Ret<ffi::Buffer<ffi::S32>>());
