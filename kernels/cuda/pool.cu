// Pooling kernels (the math is in kernels/reference/pool.py).
//
// Arrays are (P, H, W) planes, P = N*C. Forward: one thread per output element. Backward in
// gather form: one thread per INPUT element, which visits the windows that contain it in
// row-major order and sums their contributions, so results are deterministic and equal to the
// CPU's in-plane scatter (same order of additions). The one exception is max_unpool2d_forward,
// whose indices are arbitrary (no geometry says which inputs land on an output): it scatters
// with atomicAdd; without duplicate indices every output gets at most one add, so it is exact
// and deterministic; with duplicates the order of the adds (and the last bits) may vary on a GPU
// (minicnn.use_deterministic_algorithms(True) replaces this kernel by a sorted scatter-add,
// kernels/cuda/_scatter.py).

// -inf without <cmath> or <limits> (neither is available under NVRTC): the IEEE-754 bit pattern.
__device__ __forceinline__ scalar_t negative_infinity() {
    union {
        unsigned long long bits;
        double value;
    } u;
    u.bits = 0xfff0000000000000ULL;
    return (scalar_t)u.value;
}

__device__ __forceinline__ int first_valid(int start, int d) {
    while (start < 0) start += d;
    return start;
}

// Window o (stride s, padding p, kernel k, dilation d) covers position i iff
// o*s - p <= i <= o*s - p + d*(k-1): these are the o in [lo, hi] (clamped to [0, O-1]).
__device__ __forceinline__ int window_lo(int i, int s, int p, int k, int d) {
    int a = i + p - d * (k - 1);
    return a <= 0 ? 0 : (a + s - 1) / s;
}

__device__ __forceinline__ int window_hi(int i, int s, int p, int O) {
    int b = (i + p) / s;
    return b < O - 1 ? b : O - 1;
}

extern "C" __global__ void max_pool2d_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, long long* __restrict__ idx,
    int n, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
    const scalar_t* plane = x + (long long)p * H * W;
    int h0 = oh * sh - ph, w0 = ow * sw - pw;
    scalar_t best = negative_infinity();
    int hf = first_valid(h0, dh), wf = first_valid(w0, dw);
    // PyTorch's initial index is the first valid position; a window with none (all padding,
    // possible with dilation) gives -inf and index -1, which no input element matches.
    long long best_i = (hf < H && wf < W) ? (long long)hf * W + wf : -1;
    for (int i = 0; i < kh; ++i) {
        int h = h0 + i * dh;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < kw; ++j) {
            int w = w0 + j * dw;
            if (w < 0 || w >= W) continue;
            scalar_t v = plane[h * W + w];
            if (v > best || v != v) {  // strict >: the first maximum wins; NaN wins (PyTorch)
                best = v;
                best_i = (long long)h * W + w;
            }
        }
    }
    y[t] = best;
    idx[t] = best_i;
}

// gx[p, h, w] = sum of gy[p, oh, ow] over the windows that contain (h, w) and chose it.
extern "C" __global__ void max_pool2d_backward(
    const scalar_t* __restrict__ gy, const long long* __restrict__ idx, scalar_t* __restrict__ gx,
    int n, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int w = t % W, h = (t / W) % H, p = t / (W * H);
    long long self = (long long)h * W + w;
    long long base = (long long)p * OH * OW;
    scalar_t acc = 0;
    int oh_hi = window_hi(h, sh, ph, OH), ow_hi = window_hi(w, sw, pw, OW);
    for (int oh = window_lo(h, sh, ph, kh, dh); oh <= oh_hi; ++oh)
        for (int ow = window_lo(w, sw, pw, kw, dw); ow <= ow_hi; ++ow)
            if (idx[base + oh * OW + ow] == self) acc += gy[base + oh * OW + ow];
    gx[t] = acc;
}

// PyTorch's average-pool window along one axis: clipped to the padded extent for the divisor
// (count_include_pad), then to the input for the sum.
struct AvgWindow {
    int start, end, divisor;
};

__device__ __forceinline__ AvgWindow avg_window(int o, int s, int p, int k, int n, int count_include_pad) {
    int start = o * s - p;
    int end = min(start + k, n + p);
    int padded = end - start;
    start = max(start, 0);
    end = min(end, n);
    return AvgWindow{start, end, count_include_pad ? padded : end - start};
}

extern "C" __global__ void avg_pool2d_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
    int n, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
    int count_include_pad, int divisor_override) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
    const scalar_t* plane = x + (long long)p * H * W;
    AvgWindow a = avg_window(oh, sh, ph, kh, H, count_include_pad);
    AvgWindow b = avg_window(ow, sw, pw, kw, W, count_include_pad);
    int divisor = divisor_override > 0 ? divisor_override : a.divisor * b.divisor;
    scalar_t total = 0;
    for (int h = a.start; h < a.end; ++h)
        for (int w = b.start; w < b.end; ++w) total += plane[h * W + w];
    y[t] = total / (scalar_t)divisor;
}

extern "C" __global__ void avg_pool2d_backward(
    const scalar_t* __restrict__ gy, scalar_t* __restrict__ gx,
    int n, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
    int count_include_pad, int divisor_override) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int w = t % W, h = (t / W) % H, p = t / (W * H);
    const scalar_t* g = gy + (long long)p * OH * OW;
    scalar_t acc = 0;
    int oh_hi = window_hi(h, sh, ph, OH), ow_hi = window_hi(w, sw, pw, OW);
    for (int oh = window_lo(h, sh, ph, kh, 1); oh <= oh_hi; ++oh) {
        AvgWindow a = avg_window(oh, sh, ph, kh, H, count_include_pad);
        for (int ow = window_lo(w, sw, pw, kw, 1); ow <= ow_hi; ++ow) {
            AvgWindow b = avg_window(ow, sw, pw, kw, W, count_include_pad);
            int divisor = divisor_override > 0 ? divisor_override : a.divisor * b.divisor;
            acc += g[oh * OW + ow] / (scalar_t)divisor;
        }
    }
    gx[t] = acc;
}

// Adaptive bin o of O over n inputs: [floor(o*n/O), ceil((o+1)*n/O)).
// The bins containing input i are o in [floor(i*O/n), floor(((i+1)*O - 1)/n)].
__device__ __forceinline__ int bin_start(int o, int n, int O) { return (o * n) / O; }
__device__ __forceinline__ int bin_end(int o, int n, int O) { return ((o + 1) * n + O - 1) / O; }
__device__ __forceinline__ int bins_lo(int i, int n, int O) { return (i * O) / n; }
__device__ __forceinline__ int bins_hi(int i, int n, int O) { return min(((i + 1) * O - 1) / n, O - 1); }

extern "C" __global__ void adaptive_avg_pool2d_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
    const scalar_t* plane = x + (long long)p * H * W;
    int h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
    int w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
    scalar_t total = 0;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) total += plane[h * W + w];
    y[t] = total / (scalar_t)((h1 - h0) * (w1 - w0));
}

extern "C" __global__ void adaptive_avg_pool2d_backward(
    const scalar_t* __restrict__ gy, scalar_t* __restrict__ gx, int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int w = t % W, h = (t / W) % H, p = t / (W * H);
    const scalar_t* g = gy + (long long)p * OH * OW;
    scalar_t acc = 0;
    for (int oh = bins_lo(h, H, OH); oh <= bins_hi(h, H, OH); ++oh) {
        int hs = bin_end(oh, H, OH) - bin_start(oh, H, OH);
        for (int ow = bins_lo(w, W, OW); ow <= bins_hi(w, W, OW); ++ow) {
            int ws = bin_end(ow, W, OW) - bin_start(ow, W, OW);
            acc += g[oh * OW + ow] / (scalar_t)(hs * ws);
        }
    }
    gx[t] = acc;
}

extern "C" __global__ void adaptive_max_pool2d_forward(
    const scalar_t* __restrict__ x, scalar_t* __restrict__ y, long long* __restrict__ idx,
    int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
    const scalar_t* plane = x + (long long)p * H * W;
    int h0 = bin_start(oh, H, OH), h1 = bin_end(oh, H, OH);
    int w0 = bin_start(ow, W, OW), w1 = bin_end(ow, W, OW);
    scalar_t best = negative_infinity();
    long long best_i = (long long)h0 * W + w0;
    for (int h = h0; h < h1; ++h)
        for (int w = w0; w < w1; ++w) {
            scalar_t v = plane[h * W + w];
            if (v > best || v != v) {
                best = v;
                best_i = (long long)h * W + w;
            }
        }
    y[t] = best;
    idx[t] = best_i;
}

extern "C" __global__ void adaptive_max_pool2d_backward(
    const scalar_t* __restrict__ gy, const long long* __restrict__ idx, scalar_t* __restrict__ gx,
    int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int w = t % W, h = (t / W) % H, p = t / (W * H);
    long long self = (long long)h * W + w;
    long long base = (long long)p * OH * OW;
    scalar_t acc = 0;
    for (int oh = bins_lo(h, H, OH); oh <= bins_hi(h, H, OH); ++oh)
        for (int ow = bins_lo(w, W, OW); ow <= bins_hi(w, W, OW); ++ow)
            if (idx[base + oh * OW + ow] == self) acc += gy[base + oh * OW + ow];
    gx[t] = acc;
}

// y (zeroed by the caller) [p].flat[idx[p, k]] += x[p, k]; indices were range-checked on the host.
extern "C" __global__ void max_unpool2d_forward(
    const scalar_t* __restrict__ x, const long long* __restrict__ idx, scalar_t* __restrict__ y,
    int n, int in_plane, int out_plane) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    long long p = t / in_plane;
    atomicAdd(&y[p * out_plane + idx[t]], x[t]);
}

// gx[p, k] = gy[p].flat[idx[p, k]]
extern "C" __global__ void max_unpool2d_backward(
    const scalar_t* __restrict__ gy, const long long* __restrict__ idx, scalar_t* __restrict__ gx,
    int n, int in_plane, int out_plane) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    long long p = t / in_plane;
    gx[t] = gy[p * out_plane + idx[t]];
}
