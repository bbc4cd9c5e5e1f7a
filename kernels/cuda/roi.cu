// RoI pool (Fast R-CNN) and RoI align (Mask R-CNN); the math is in kernels/reference/roi.py.
//
// One thread per output element (k, c, ph, pw). Everything is computed in scalar_t, in the same
// order as the reference and the CPU kernels.
//
// Backward uses atomicAdd: the design's one allowed exception to gather-form backward. A pixel
// can be read by any number of RoIs and bins (RoIs overlap arbitrarily), so a gather would loop
// over every bin of every RoI of the image per input element. Consequence: on a real GPU the
// order of the additions (and so the last bits of float sums) may vary from run to run.

// a*b and a+b rounded once each. NVRTC contracts a*b+c into an FMA by default, which would move
// RoI-pool bin boundaries and sample positions at exact ties; the _rn intrinsics are never
// contracted. The host build (the cuda-emu device) stores through a volatile for the same reason.
#ifdef __CUDA_ARCH__
__device__ inline float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
#else
__device__ inline scalar_t mul_rn(scalar_t a, scalar_t b) { volatile scalar_t r = a * b; return r; }
__device__ inline scalar_t add_rn(scalar_t a, scalar_t b) { volatile scalar_t r = a + b; return r; }
#endif

__device__ inline scalar_t sub_rn(scalar_t a, scalar_t b) { return add_rn(a, -b); }

// ---- RoI pool ---------------------------------------------------------------------------------

// Clipped half-open range [lo, hi) of bin i along an axis of length n.
__device__ inline void pool_bin(scalar_t start_r, scalar_t bin_size, int i, int n, int* lo, int* hi) {
    scalar_t a = add_rn(floor(mul_rn((scalar_t)i, bin_size)), start_r);
    scalar_t b = add_rn(ceil(mul_rn((scalar_t)(i + 1), bin_size)), start_r);
    a = min(max(a, (scalar_t)0), (scalar_t)n);
    b = min(max(b, (scalar_t)0), (scalar_t)n);
    *lo = (int)a;
    *hi = (int)b;
}

// -infinity of scalar_t, from its bit pattern (NVRTC has no INFINITY macro without headers).
__device__ inline scalar_t negative_infinity() {
    if (sizeof(scalar_t) == 4) return (scalar_t)__int_as_float((int)0xff800000u);
    return (scalar_t)__longlong_as_double((long long)0xfff0000000000000ull);
}

// floor(v + 0.5): half rounds up, identically on every device (not round(), not rint()).
__device__ inline scalar_t round_half_up(scalar_t v) { return floor(add_rn(v, (scalar_t)0.5)); }

extern "C" __global__ void roi_pool_forward(const scalar_t* x, const scalar_t* rois, scalar_t* y,
                                            long long* argmax, long long total, int C, int H, int W,
                                            int PH, int PW, scalar_t scale) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int pw = (int)(i % PW);
    int ph = (int)((i / PW) % PH);
    int c = (int)((i / ((long long)PW * PH)) % C);
    long long k = i / ((long long)PW * PH * C);
    const scalar_t* roi = rois + k * 5;
    long long n = (long long)roi[0];
    scalar_t x1r = round_half_up(mul_rn(roi[1], scale));
    scalar_t y1r = round_half_up(mul_rn(roi[2], scale));
    scalar_t x2r = round_half_up(mul_rn(roi[3], scale));
    scalar_t y2r = round_half_up(mul_rn(roi[4], scale));
    scalar_t bin_w = max(add_rn(sub_rn(x2r, x1r), (scalar_t)1), (scalar_t)1) / (scalar_t)PW;
    scalar_t bin_h = max(add_rn(sub_rn(y2r, y1r), (scalar_t)1), (scalar_t)1) / (scalar_t)PH;
    int h0, h1, w0, w1;
    pool_bin(y1r, bin_h, ph, H, &h0, &h1);
    pool_bin(x1r, bin_w, pw, W, &w0, &w1);
    const scalar_t* plane = x + (n * C + c) * H * W;
    scalar_t best = negative_infinity();
    long long best_i = -1;
    for (int h = h0; h < h1; ++h) {
        for (int w = w0; w < w1; ++w) {
            scalar_t v = plane[h * W + w];
            if (v > best) {  // strict: the first maximum wins
                best = v;
                best_i = h * W + w;
            }
        }
    }
    y[i] = best_i >= 0 ? best : (scalar_t)0;  // 0 for an empty bin
    argmax[i] = best_i;
}

// gx[n, c].flat[argmax] += gy (atomicAdd: RoIs overlap, see the file comment).
extern "C" __global__ void roi_pool_backward(const scalar_t* gy, const scalar_t* rois, const long long* argmax,
                                             scalar_t* gx, long long total, int C, int H, int W,
                                             int PH, int PW) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    long long a = argmax[i];
    if (a < 0) return;
    int c = (int)((i / ((long long)PW * PH)) % C);
    long long k = i / ((long long)PW * PH * C);
    long long n = (long long)rois[k * 5];
    atomicAdd(gx + (n * C + c) * H * W + a, gy[i]);
}

// ---- RoI align --------------------------------------------------------------------------------

struct AlignGeometry {
    long long n;
    scalar_t y1, x1, bin_h, bin_w;
    int grid_h, grid_w;
    scalar_t count;
};

__device__ inline AlignGeometry align_geometry(const scalar_t* roi, int PH, int PW, scalar_t scale,
                                               int sampling_ratio, int aligned) {
    AlignGeometry g;
    scalar_t off = aligned ? (scalar_t)0.5 : (scalar_t)0;
    g.n = (long long)roi[0];
    g.x1 = sub_rn(mul_rn(roi[1], scale), off);
    g.y1 = sub_rn(mul_rn(roi[2], scale), off);
    scalar_t roi_w = sub_rn(sub_rn(mul_rn(roi[3], scale), off), g.x1);
    scalar_t roi_h = sub_rn(sub_rn(mul_rn(roi[4], scale), off), g.y1);
    if (!aligned) {  // force malformed RoIs to be at least 1x1
        roi_w = max(roi_w, (scalar_t)1);
        roi_h = max(roi_h, (scalar_t)1);
    }
    g.bin_h = roi_h / (scalar_t)PH;
    g.bin_w = roi_w / (scalar_t)PW;
    if (sampling_ratio > 0) {
        g.grid_h = g.grid_w = sampling_ratio;
    } else {
        g.grid_h = (int)max(ceil(roi_h / (scalar_t)PH), (scalar_t)0);
        g.grid_w = (int)max(ceil(roi_w / (scalar_t)PW), (scalar_t)0);
    }
    g.count = (scalar_t)max(g.grid_h * g.grid_w, 1);
    return g;
}

// start + p*bin + (i + 0.5)*bin/grid, in that order.
__device__ inline scalar_t sample_coordinate(scalar_t start, scalar_t bin_size, int p, int i, int grid) {
    scalar_t a = add_rn(start, mul_rn((scalar_t)p, bin_size));
    scalar_t b = mul_rn(add_rn((scalar_t)i, (scalar_t)0.5), bin_size) / (scalar_t)grid;
    return add_rn(a, b);
}

// Pixel indices p[4] and weights w[4] of a bilinear sample; false when it lies outside.
__device__ inline bool bilinear(scalar_t y, scalar_t x, int H, int W, int* p, scalar_t* w) {
    if (y < (scalar_t)-1 || y > (scalar_t)H || x < (scalar_t)-1 || x > (scalar_t)W) return false;
    if (y <= (scalar_t)0) y = 0;
    if (x <= (scalar_t)0) x = 0;
    int y_low = (int)y, x_low = (int)x, y_high, x_high;
    scalar_t ly, lx;
    if (y_low >= H - 1) {
        y_low = y_high = H - 1;
        ly = 0;
    } else {
        y_high = y_low + 1;
        ly = sub_rn(y, (scalar_t)y_low);
    }
    if (x_low >= W - 1) {
        x_low = x_high = W - 1;
        lx = 0;
    } else {
        x_high = x_low + 1;
        lx = sub_rn(x, (scalar_t)x_low);
    }
    scalar_t hy = sub_rn((scalar_t)1, ly), hx = sub_rn((scalar_t)1, lx);
    p[0] = y_low * W + x_low;
    p[1] = y_low * W + x_high;
    p[2] = y_high * W + x_low;
    p[3] = y_high * W + x_high;
    w[0] = mul_rn(hy, hx);
    w[1] = mul_rn(hy, lx);
    w[2] = mul_rn(ly, hx);
    w[3] = mul_rn(ly, lx);
    return true;
}

extern "C" __global__ void roi_align_forward(const scalar_t* x, const scalar_t* rois, scalar_t* y,
                                             long long total, int C, int H, int W, int PH, int PW,
                                             scalar_t scale, int sampling_ratio, int aligned) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int pw = (int)(i % PW);
    int ph = (int)((i / PW) % PH);
    int c = (int)((i / ((long long)PW * PH)) % C);
    long long k = i / ((long long)PW * PH * C);
    AlignGeometry g = align_geometry(rois + k * 5, PH, PW, scale, sampling_ratio, aligned);
    const scalar_t* plane = x + (g.n * C + c) * H * W;
    scalar_t acc = 0;
    for (int iy = 0; iy < g.grid_h; ++iy) {
        scalar_t yy = sample_coordinate(g.y1, g.bin_h, ph, iy, g.grid_h);
        for (int ix = 0; ix < g.grid_w; ++ix) {
            scalar_t xx = sample_coordinate(g.x1, g.bin_w, pw, ix, g.grid_w);
            int p[4];
            scalar_t w[4];
            if (bilinear(yy, xx, H, W, p, w)) {
                for (int j = 0; j < 4; ++j) acc += w[j] * plane[p[j]];
            }
        }
    }
    y[i] = acc / g.count;
}

// Each sample adds gy * w_j / count to the four pixels it read (atomicAdd, see the file comment).
extern "C" __global__ void roi_align_backward(const scalar_t* gy, const scalar_t* rois, scalar_t* gx,
                                              long long total, int C, int H, int W, int PH, int PW,
                                              scalar_t scale, int sampling_ratio, int aligned) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int pw = (int)(i % PW);
    int ph = (int)((i / PW) % PH);
    int c = (int)((i / ((long long)PW * PH)) % C);
    long long k = i / ((long long)PW * PH * C);
    AlignGeometry g = align_geometry(rois + k * 5, PH, PW, scale, sampling_ratio, aligned);
    scalar_t* plane = gx + (g.n * C + c) * H * W;
    scalar_t grad = gy[i];
    for (int iy = 0; iy < g.grid_h; ++iy) {
        scalar_t yy = sample_coordinate(g.y1, g.bin_h, ph, iy, g.grid_h);
        for (int ix = 0; ix < g.grid_w; ++ix) {
            scalar_t xx = sample_coordinate(g.x1, g.bin_w, pw, ix, g.grid_w);
            int p[4];
            scalar_t w[4];
            if (bilinear(yy, xx, H, W, p, w)) {
                for (int j = 0; j < 4; ++j) atomicAdd(plane + p[j], mul_rn(grad, w[j]) / g.count);
            }
        }
    }
}
