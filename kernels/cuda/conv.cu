// Convolution kernels (NCHW). Formulas: kernels/reference/conv.py.
//
// Column layout. The GEMM path (kernels/cuda/conv.py) works on chunks of Nc images and lays their
// columns out as one (K, Nc·P) matrix, K = C·kH·kW, P = OH·OW, so that a group's product is ONE
// GEMM: entry (k, n·P + p) sits at cols[k·k_stride + n·n_stride + p]. With k_stride = Nc·P,
// n_stride = P that is the (K, Nc·P) GEMM layout; with k_stride = P, n_stride = K·P it is the
// per-image (Nc, K, P) layout of the public im2col/col2im wrappers.
//
// im2col:   cols[(c·kH + kh)·kW + kw, n, oh·OW + ow] = x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]  (0 outside)
//           One thread per (n, c, oh, ow): it splits its index once and writes its kH·kW taps,
//           stepping k_stride between them (consecutive threads write consecutive addresses).
// col2im:   the adjoint of im2col in GATHER form: one thread per input element (n, c, h, w) sums
//           the column entries that read it (no atomics, deterministic).
// Index types: the *_i32 kernels do all index arithmetic in 32 bits (unsigned where it divides)
// and are launched only when the host has checked that every index fits (kernels/cuda/conv.py:
// index_fits_int32); the *_i64 kernels are the same code in 64-bit (a 64-bit division is a
// subroutine of ~70 instructions). Each thread divides a few times to split its index, never
// inside the tap loops.
//
// depthwise (groups == C_in, M = C_out / C_in output channels per input channel): direct forward,
//           gather-form input gradient (one thread per input element), weight gradient as one
//           BLOCK per weight element: its threads stride over the N·OH·OW terms and a shared-memory
//           tree adds their partial sums in a fixed order (deterministic, no atomics).
//
// An entry of kernel row kh read input row ih when ih + ph − kh·dh = oh·sh for some oh in [0, OH).

// ---- im2col / col2im --------------------------------------------------------------------------------

// a / b for a >= 0, b > 0: an unsigned division, cheaper than a signed one (no sign fix-ups).
__device__ __forceinline__ int udiv(int a, int b) { return (int)((unsigned)a / (unsigned)b); }

// index_t: unsigned int (the *_i32 kernels: every index < 2^31, checked by the host) or long long.
template <typename index_t>
__device__ __forceinline__ void im2col_body(const scalar_t* __restrict__ x, scalar_t* __restrict__ cols,
                                            index_t total, int C, int H, int W, int kH, int kW,
                                            int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW,
                                            index_t k_stride, index_t n_stride)
{
    const index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x;  // ((n·C + c)·OH + oh)·OW + ow
    if (i >= total) return;
    const int P = OH * OW;
    const index_t nc = i / (index_t)P;
    const int p = (int)(i - nc * P);
    const index_t n = nc / (index_t)C;
    const int c = (int)(nc - n * C);
    const int oh = udiv(p, OW);
    const int ow = p - oh * OW;
    const int ih0 = oh * sh - ph, iw0 = ow * sw - pw;
    const scalar_t* plane = x + nc * ((index_t)H * W);
    scalar_t* out = cols + (index_t)(c * kH * kW) * k_stride + n * n_stride + p;
#pragma unroll 1
    for (int kh = 0; kh < kH; ++kh) {
        const int ih = ih0 + kh * dh;
        const bool row_inside = (unsigned)ih < (unsigned)H;
        const scalar_t* row = plane + ih * W;
#pragma unroll 1
        for (int kw = 0; kw < kW; ++kw) {
            const int iw = iw0 + kw * dw;
            *out = (row_inside && (unsigned)iw < (unsigned)W) ? row[iw] : (scalar_t)0;
            out += k_stride;
        }
    }
}

// Tap (kh, kw) read input (ih, iw) from output (oh, ow) when ih + ph − kh·dh = oh·sh (and likewise
// for w). The loops walk kh (kw) upwards keeping t = ih + ph − kh·dh as oh·sh + r, 0 <= r < sh,
// updated by subtracting dh = dq·sh + dr: no division inside the loops.
template <typename index_t>
__device__ __forceinline__ void col2im_body(const scalar_t* __restrict__ cols, scalar_t* __restrict__ x,
                                            index_t total, int C, int H, int W, int kH, int kW,
                                            int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW,
                                            index_t k_stride, index_t n_stride)
{
    const index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x;  // ((n·C + c)·H + ih)·W + iw
    if (i >= total) return;
    const int HW = H * W;
    const index_t nc = i / (index_t)HW;
    const int q = (int)(i - nc * HW);
    const index_t n = nc / (index_t)C;
    const int c = (int)(nc - n * C);
    const int ih = udiv(q, W);
    const int iw = q - ih * W;
    const int dhq = udiv(dh, sh), dhr = dh - dhq * sh;
    const int dwq = udiv(dw, sw), dwr = dw - dwq * sw;
    int oh = udiv(ih + ph, sh);
    int rh = ih + ph - oh * sh;
    const int ow0 = udiv(iw + pw, sw);
    const int rw0 = iw + pw - ow0 * sw;
    const scalar_t* tap = cols + (index_t)(c * kH * kW) * k_stride + n * n_stride;
    const index_t row_step = (index_t)kW * k_stride;
    scalar_t acc = (scalar_t)0;
#pragma unroll 1
    for (int kh = 0; kh < kH && oh >= 0; ++kh) {
        if (rh == 0 && oh < OH) {
            const scalar_t* t = tap + oh * OW;
            int ow = ow0, rw = rw0;
#pragma unroll 1
            for (int kw = 0; kw < kW && ow >= 0; ++kw) {
                if (rw == 0 && ow < OW) acc += t[ow];
                t += k_stride;
                ow -= dwq;
                rw -= dwr;
                if (rw < 0) { rw += sw; --ow; }
            }
        }
        tap += row_step;
        oh -= dhq;
        rh -= dhr;
        if (rh < 0) { rh += sh; --oh; }
    }
    x[i] = acc;
}

extern "C" __global__ void im2col_i32(const scalar_t* x, scalar_t* cols, int total, int C, int H, int W,
                                      int kH, int kW, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int OH, int OW, int k_stride, int n_stride)
{
    im2col_body<unsigned>(x, cols, total, C, H, W, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW, k_stride, n_stride);
}

extern "C" __global__ void im2col_i64(const scalar_t* x, scalar_t* cols, long long total, int C, int H, int W,
                                      int kH, int kW, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int OH, int OW, long long k_stride, long long n_stride)
{
    im2col_body<long long>(x, cols, total, C, H, W, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW, k_stride, n_stride);
}

extern "C" __global__ void col2im_i32(const scalar_t* cols, scalar_t* x, int total, int C, int H, int W,
                                      int kH, int kW, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int OH, int OW, int k_stride, int n_stride)
{
    col2im_body<unsigned>(cols, x, total, C, H, W, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW, k_stride, n_stride);
}

extern "C" __global__ void col2im_i64(const scalar_t* cols, scalar_t* x, long long total, int C, int H, int W,
                                      int kH, int kW, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int OH, int OW, long long k_stride, long long n_stride)
{
    col2im_body<long long>(cols, x, total, C, H, W, kH, kW, sh, sw, ph, pw, dh, dw, OH, OW, k_stride, n_stride);
}

// ---- depthwise ---------------------------------------------------------------------------------------

extern "C" __global__ void depthwise_forward(const scalar_t* x, const scalar_t* w, scalar_t* y, long long total,
                                             int C_in, int C_out, int H, int W, int kH, int kW,
                                             int sh, int sw, int ph, int pw, int dh, int dw, int OH, int OW)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int ow = (int)(i % OW);
    int oh = (int)((i / OW) % OH);
    int co = (int)((i / ((long long)OH * OW)) % C_out);
    long long n = i / ((long long)OH * OW * C_out);
    int c = co / (C_out / C_in);
    const scalar_t* xp = x + (n * C_in + c) * H * W;
    const scalar_t* wp = w + (long long)co * kH * kW;
    scalar_t acc = (scalar_t)0;
    for (int kh = 0; kh < kH; ++kh) {
        int ih = oh * sh - ph + kh * dh;
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < kW; ++kw) {
            int iw = ow * sw - pw + kw * dw;
            if (iw >= 0 && iw < W) acc += wp[kh * kW + kw] * xp[ih * W + iw];
        }
    }
    y[i] = acc;
}

extern "C" __global__ void depthwise_backward_input(const scalar_t* gy, const scalar_t* w, scalar_t* gx,
                                                    long long total, int C_in, int C_out, int H, int W,
                                                    int kH, int kW, int sh, int sw, int ph, int pw,
                                                    int dh, int dw, int OH, int OW)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int iw = (int)(i % W);
    int ih = (int)((i / W) % H);
    int c = (int)((i / ((long long)H * W)) % C_in);
    long long n = i / ((long long)H * W * C_in);
    int M = C_out / C_in;
    scalar_t acc = (scalar_t)0;
    for (int kh = 0; kh < kH; ++kh) {
        int th = ih + ph - kh * dh;
        if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
        int oh = th / sh;
        for (int kw = 0; kw < kW; ++kw) {
            int tw = iw + pw - kw * dw;
            if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;
            int ow = tw / sw;
            for (int m = 0; m < M; ++m) {
                int co = c * M + m;
                acc += w[((long long)co * kH + kh) * kW + kw] * gy[((n * C_out + co) * OH + oh) * OW + ow];
            }
        }
    }
    gx[i] = acc;
}

#define DEPTHWISE_WEIGHT_BLOCK 256  // threads per block of depthwise_backward_weight (a power of two)

// gw[co, 0, kh, kw] = Σ_{n, oh, ow} gy[n, co, oh, ow] · x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw].
// Launch: grid (C_out·kH·kW,), block (DEPTHWISE_WEIGHT_BLOCK,). Thread t adds the terms
// t, t + B, t + 2B, … of each image in turn; the B partial sums are then added pairwise in shared
// memory (s[t] += s[t + h] for h = B/2, …, 1): the same additions in the same order on every run.
extern "C" __global__ void depthwise_backward_weight(const scalar_t* x, const scalar_t* gy, scalar_t* gw,
                                                     int N, int C_in, int C_out, int H, int W,
                                                     int kH, int kW, int sh, int sw, int ph, int pw,
                                                     int dh, int dw, int OH, int OW)
{
    __shared__ scalar_t partial[DEPTHWISE_WEIGHT_BLOCK];
    const int e = blockIdx.x;  // (co·kH + kh)·kW + kw
    const int kw = e % kW;
    const int kh = (e / kW) % kH;
    const int co = e / (kH * kW);
    const int c = co / (C_out / C_in);
    const int P = OH * OW;
    const int t = threadIdx.x;
    scalar_t acc = (scalar_t)0;
    for (int n = 0; n < N; ++n) {
        const scalar_t* xp = x + ((long long)n * C_in + c) * H * W;
        const scalar_t* gp = gy + ((long long)n * C_out + co) * P;
        for (int p = t; p < P; p += DEPTHWISE_WEIGHT_BLOCK) {
            const int oh = p / OW;
            const int ow = p - oh * OW;
            const int ih = oh * sh - ph + kh * dh;
            const int iw = ow * sw - pw + kw * dw;
            if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) acc += gp[p] * xp[ih * W + iw];
        }
    }
    partial[t] = acc;
    __syncthreads();
    for (int h = DEPTHWISE_WEIGHT_BLOCK / 2; h > 0; h >>= 1) {
        if (t < h) partial[t] += partial[t + h];
        __syncthreads();
    }
    if (t == 0) gw[e] = partial[0];
}
