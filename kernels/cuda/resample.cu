// Resampling kernels (the math is in kernels/reference/resample.py).
//
// Source positions and weights come precomputed per axis (host tables, PyTorch's float rules):
// nearest: src_h[OH], src_w[OW]; bilinear: h0, h1, lh [OH] and w0, w1, lw [OW].
// Forward: one thread per output element. Backward in gather form: one thread per INPUT
// element; the outputs that read input row h are the contiguous range [h_lo[h], h_hi[h])
// (the tables are non-decreasing), likewise for columns, so no atomics are needed.

extern "C" __global__ void upsample_nearest2d_forward(
    const scalar_t* __restrict__ x, const long long* __restrict__ src_h, const long long* __restrict__ src_w,
    scalar_t* __restrict__ y, int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
    y[t] = x[(long long)p * H * W + src_h[oh] * W + src_w[ow]];
}

// gx[p, h, w] = sum of gy[p, oh, ow] over oh in [h_lo[h], h_hi[h]), ow in [w_lo[w], w_hi[w]).
extern "C" __global__ void upsample_nearest2d_backward(
    const scalar_t* __restrict__ gy, const long long* __restrict__ h_lo, const long long* __restrict__ h_hi,
    const long long* __restrict__ w_lo, const long long* __restrict__ w_hi,
    scalar_t* __restrict__ gx, int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int w = t % W, h = (t / W) % H, p = t / (W * H);
    const scalar_t* g = gy + (long long)p * OH * OW;
    scalar_t acc = 0;
    for (long long oh = h_lo[h]; oh < h_hi[h]; ++oh)
        for (long long ow = w_lo[w]; ow < w_hi[w]; ++ow) acc += g[oh * OW + ow];
    gx[t] = acc;
}

extern "C" __global__ void upsample_bilinear2d_forward(
    const scalar_t* __restrict__ x,
    const long long* __restrict__ h0, const long long* __restrict__ h1, const scalar_t* __restrict__ lh,
    const long long* __restrict__ w0, const long long* __restrict__ w1, const scalar_t* __restrict__ lw,
    scalar_t* __restrict__ y, int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int ow = t % OW, oh = (t / OW) % OH, p = t / (OW * OH);
    const scalar_t* plane = x + (long long)p * H * W;
    long long a = h0[oh] * W, b = h1[oh] * W, c = w0[ow], d = w1[ow];
    scalar_t bh = lh[oh], bw = lw[ow];
    scalar_t ah = 1 - bh, aw = 1 - bw;
    y[t] = ah * (aw * plane[a + c] + bw * plane[a + d]) + bh * (aw * plane[b + c] + bw * plane[b + d]);
}

// Weight of input position i in output o along one axis: (1 - l) if i0 == i, plus l if i1 == i
// (both at the border, where i0 == i1).
__device__ __forceinline__ scalar_t tap_weight(long long i, long long i0, long long i1, scalar_t l) {
    scalar_t wgt = 0;
    if (i0 == i) wgt += 1 - l;
    if (i1 == i) wgt += l;
    return wgt;
}

extern "C" __global__ void upsample_bilinear2d_backward(
    const scalar_t* __restrict__ gy,
    const long long* __restrict__ h0, const long long* __restrict__ h1, const scalar_t* __restrict__ lh,
    const long long* __restrict__ w0, const long long* __restrict__ w1, const scalar_t* __restrict__ lw,
    const long long* __restrict__ h_lo, const long long* __restrict__ h_hi,
    const long long* __restrict__ w_lo, const long long* __restrict__ w_hi,
    scalar_t* __restrict__ gx, int n, int H, int W, int OH, int OW) {
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int w = t % W, h = (t / W) % H, p = t / (W * H);
    const scalar_t* g = gy + (long long)p * OH * OW;
    scalar_t acc = 0;
    for (long long oh = h_lo[h]; oh < h_hi[h]; ++oh) {
        scalar_t wh = tap_weight(h, h0[oh], h1[oh], lh[oh]);
        for (long long ow = w_lo[w]; ow < w_hi[w]; ++ow)
            acc += wh * tap_weight(w, w0[ow], w1[ow], lw[ow]) * g[oh * OW + ow];
    }
    gx[t] = acc;
}
