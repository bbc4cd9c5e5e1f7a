// Convolution kernels (NCHW). Formulas: kernels/reference/conv.py.
//
// im2col:   cols[n, (c·kH + kh)·kW + kw, oh·OW + ow] = x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]  (0 outside)
// col2im:   the adjoint of im2col in GATHER form: one thread per input element sums the column
//           entries that read it (no atomics, deterministic).
// depthwise (groups == C_in, M = C_out / C_in output channels per input channel): direct forward,
//           gather-form input gradient (one thread per input element), weight gradient with one
//           thread per weight element looping over (n, oh, ow) (a deterministic gather; slow for big
//           N·OH·OW, a block reduction is the later speed-up).
//
// The GEMMs of the general path run as matrix products of the array library (cupy.matmul).
// An entry of kernel row kh read input row ih when ih + ph − kh·dh = oh·sh for some oh in [0, OH).

// ---- im2col / col2im --------------------------------------------------------------------------------

extern "C" __global__ void im2col(const scalar_t* x, scalar_t* cols, long long total,
                                  int C, int H, int W, int kH, int kW, int sh, int sw, int ph, int pw,
                                  int dh, int dw, int OH, int OW)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    // i = ((n·C + c)·kH·kW + kh·kW + kw)·OH·OW + oh·OW + ow
    int ow = (int)(i % OW);
    int oh = (int)((i / OW) % OH);
    long long row = i / ((long long)OH * OW);  // n·C·kH·kW + (c·kH + kh)·kW + kw
    int kw = (int)(row % kW);
    int kh = (int)((row / kW) % kH);
    long long nc = row / ((long long)kH * kW);  // n·C + c
    int ih = oh * sh - ph + kh * dh;
    int iw = ow * sw - pw + kw * dw;
    scalar_t v = (scalar_t)0;
    if (ih >= 0 && ih < H && iw >= 0 && iw < W) v = x[(nc * H + ih) * W + iw];
    cols[i] = v;
}

extern "C" __global__ void col2im(const scalar_t* cols, scalar_t* x, long long total,
                                  int C, int H, int W, int kH, int kW, int sh, int sw, int ph, int pw,
                                  int dh, int dw, int OH, int OW)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int iw = (int)(i % W);
    int ih = (int)((i / W) % H);
    long long nc = i / ((long long)H * W);  // n·C + c; the rows of channel c start at nc·kH·kW
    scalar_t acc = (scalar_t)0;
    for (int kh = 0; kh < kH; ++kh) {
        int th = ih + ph - kh * dh;
        if (th < 0 || th % sh != 0 || th / sh >= OH) continue;
        int oh = th / sh;
        for (int kw = 0; kw < kW; ++kw) {
            int tw = iw + pw - kw * dw;
            if (tw < 0 || tw % sw != 0 || tw / sw >= OW) continue;
            long long row = nc * kH * kW + kh * kW + kw;
            acc += cols[row * OH * OW + (long long)oh * OW + tw / sw];
        }
    }
    x[i] = acc;
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

extern "C" __global__ void depthwise_backward_weight(const scalar_t* x, const scalar_t* gy, scalar_t* gw,
                                                     int total, int N, int C_in, int C_out, int H, int W,
                                                     int kH, int kW, int sh, int sw, int ph, int pw,
                                                     int dh, int dw, int OH, int OW)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int kw = i % kW;
    int kh = (i / kW) % kH;
    int co = i / (kH * kW);
    int c = co / (C_out / C_in);
    scalar_t acc = (scalar_t)0;
    for (int n = 0; n < N; ++n) {
        const scalar_t* xp = x + ((long long)n * C_in + c) * H * W;
        const scalar_t* gp = gy + ((long long)n * C_out + co) * OH * OW;
        for (int oh = 0; oh < OH; ++oh) {
            int ih = oh * sh - ph + kh * dh;
            if (ih < 0 || ih >= H) continue;
            for (int ow = 0; ow < OW; ++ow) {
                int iw = ow * sw - pw + kw * dw;
                if (iw >= 0 && iw < W) acc += gp[oh * OW + ow] * xp[ih * W + iw];
            }
        }
    }
    gw[i] = acc;
}
