// RoI pool (Fast R-CNN) and RoI align (Mask R-CNN); the math is in kernels/reference/roi.py.
//
// RoI pool: one thread per output element (k, c, ph, pw).
// RoI align, in its separable form (kernels/reference/roi.py): roi_align_weights (one thread per
// RoI and bin row/column) writes each bin row's weights over the H rows and each bin column's over
// the W columns, with the range of pixels they touch; the forward and backward kernels (one thread
// per output element) then read them: y = Σ_h wy[h] · Σ_w wx[w] · x[h, w]. A weight thread visits
// only the samples that land in [-1, H] (found by bisection: the coordinates are monotone in the
// sample index), so its work is at most sampling_ratio samples, or about 2·(H + 2) with adaptive
// sampling however large the box; sample indices and grid sizes are 64-bit.
// Everything is computed in scalar_t, in the same order as the CPU kernels.
//
// Backward uses atomicAdd by default: a pixel can be read by any number of RoIs and bins (RoIs
// overlap arbitrarily), so a gather loops over every RoI of the image per input element.
// Consequence: on a real GPU the order of the additions (and so the last bits of float sums) may
// vary from run to run. minicnn.use_deterministic_algorithms(True) selects the gather forms:
// roi_align_backward_gather below, and for RoI pool a sorted scatter-add (kernels/cuda/_scatter.py).

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

// C's round(): half away from zero, as torchvision (written out so that every device, the CPU
// kernels included, evaluates the same exact steps: v - floor(v) is exact).
__device__ inline scalar_t round_half_away(scalar_t v) {
    scalar_t r = floor(v);
    scalar_t d = sub_rn(v, r);
    if (d > (scalar_t)0.5 || (d == (scalar_t)0.5 && v > (scalar_t)0)) r = add_rn(r, (scalar_t)1);
    return r;
}

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
    scalar_t x1r = round_half_away(mul_rn(roi[1], scale));
    scalar_t y1r = round_half_away(mul_rn(roi[2], scale));
    scalar_t x2r = round_half_away(mul_rn(roi[3], scale));
    scalar_t y2r = round_half_away(mul_rn(roi[4], scale));
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
    long long grid_h, grid_w;
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
        g.grid_h = (long long)max(ceil(roi_h / (scalar_t)PH), (scalar_t)0);
        g.grid_w = (long long)max(ceil(roi_w / (scalar_t)PW), (scalar_t)0);
    }
    return g;
}

// start + p*bin + (i + 0.5)*bin/grid, in that order.
__device__ inline scalar_t sample_coordinate(scalar_t start, scalar_t bin_size, int p, long long i, long long grid) {
    scalar_t a = add_rn(start, mul_rn((scalar_t)p, bin_size));
    scalar_t b = mul_rn(add_rn((scalar_t)i, (scalar_t)0.5), bin_size) / (scalar_t)grid;
    return add_rn(a, b);
}

// The first sample index a in [0, grid] whose coordinate is past bound (> bound, or >= unless
// strict; < / <= when bin_size < 0), by bisection: every rounding step of sample_coordinate is
// monotone, so the coordinates are monotone in a.
__device__ inline long long first_sample_past(scalar_t start, scalar_t bin_size, int p, long long grid,
                                              scalar_t bound, bool strict) {
    const bool increasing = bin_size >= (scalar_t)0;
    long long lo = 0, hi = grid;
    while (lo < hi) {
        long long mid = lo + (hi - lo) / 2;
        scalar_t v = sample_coordinate(start, bin_size, p, mid, grid);
        bool past = increasing ? (strict ? v > bound : v >= bound) : (strict ? v < bound : v <= bound);
        if (past) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// Bin p's weights along an axis of length L: w[i] = (1/grid) Σ_a hat_i(v_a) over its samples v_a
// inside [-1, L], hat_i the 1-D bilinear weight of pixel i with torchvision's clamping (v <= 0
// reads pixel 0, v >= L - 1 pixel L - 1 with weight 1). w[0:L] must be zero on entry; span[0:2]
// receives the range [lo, hi) of the pixels touched (empty: lo == hi).
__device__ void axis_weights(scalar_t start, scalar_t bin_size, int p, long long grid, int L,
                             scalar_t* w, long long* span) {
    const scalar_t lower = (scalar_t)-1, upper = (scalar_t)L;
    long long a0, a1;
    if (bin_size >= (scalar_t)0) {
        a0 = first_sample_past(start, bin_size, p, grid, lower, false);
        a1 = first_sample_past(start, bin_size, p, grid, upper, true);
    } else {  // an inverted aligned box with a fixed sampling ratio: the coordinates decrease
        a0 = first_sample_past(start, bin_size, p, grid, upper, false);
        a1 = first_sample_past(start, bin_size, p, grid, lower, true);
    }
    int lo = L, hi = 0;
    for (long long a = a0; a < a1; ++a) {
        scalar_t v = sample_coordinate(start, bin_size, p, a, grid);
        if (v <= (scalar_t)0) v = 0;
        int low = (int)v;
        if (low >= L - 1) {  // v snaps to the last pixel: weight 1
            w[L - 1] = add_rn(w[L - 1], (scalar_t)1);
            lo = min(lo, L - 1);
            hi = L;
        } else {
            scalar_t frac = sub_rn(v, (scalar_t)low);
            w[low] = add_rn(w[low], sub_rn((scalar_t)1, frac));
            w[low + 1] = add_rn(w[low + 1], frac);
            lo = min(lo, low);
            hi = max(hi, low + 2);
        }
    }
    if (grid > 0) {
        for (int i = lo; i < hi; ++i) w[i] = w[i] / (scalar_t)grid;
    }
    span[0] = lo;
    span[1] = max(lo, hi);
}

// One thread per (k, p), p < max(PH, PW): the row weights of bin row p (p < PH) into
// wy[k, p, 0:H], sy[k, p, 0:2], and the column weights of bin column p (p < PW) into
// wx[k, p, 0:W], sx[k, p, 0:2]. wy and wx must be zero.
extern "C" __global__ void roi_align_weights(const scalar_t* rois, scalar_t* wy, long long* sy, scalar_t* wx,
                                             long long* sx, long long total, int H, int W, int PH, int PW,
                                             scalar_t scale, int sampling_ratio, int aligned) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int P = max(PH, PW);
    int p = (int)(i % P);
    long long k = i / P;
    AlignGeometry g = align_geometry(rois + k * 5, PH, PW, scale, sampling_ratio, aligned);
    if (p < PH) axis_weights(g.y1, g.bin_h, p, g.grid_h, H, wy + (k * PH + p) * H, sy + (k * PH + p) * 2);
    if (p < PW) axis_weights(g.x1, g.bin_w, p, g.grid_w, W, wx + (k * PW + p) * W, sx + (k * PW + p) * 2);
}

extern "C" __global__ void roi_align_forward(const scalar_t* x, const scalar_t* rois, const scalar_t* wy,
                                             const long long* sy, const scalar_t* wx, const long long* sx,
                                             scalar_t* y, long long total, int C, int H, int W, int PH, int PW) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int pw = (int)(i % PW);
    int ph = (int)((i / PW) % PH);
    int c = (int)((i / ((long long)PW * PH)) % C);
    long long k = i / ((long long)PW * PH * C);
    long long n = (long long)rois[k * 5];
    const scalar_t* plane = x + (n * C + c) * H * W;
    const scalar_t* ry = wy + (k * PH + ph) * H;
    const scalar_t* rx = wx + (k * PW + pw) * W;
    const long long* spy = sy + (k * PH + ph) * 2;
    const long long* spx = sx + (k * PW + pw) * 2;
    scalar_t acc = 0;
    for (long long h = spy[0]; h < spy[1]; ++h) {
        scalar_t row = 0;
        for (long long w = spx[0]; w < spx[1]; ++w) row = add_rn(row, mul_rn(rx[w], plane[h * W + w]));
        acc = add_rn(acc, mul_rn(ry[h], row));
    }
    y[i] = acc;
}

// Each bin adds gy * wy[h] * wx[w] to the pixels (h, w) it read (atomicAdd, see the file comment).
extern "C" __global__ void roi_align_backward(const scalar_t* gy, const scalar_t* rois, const scalar_t* wy,
                                              const long long* sy, const scalar_t* wx, const long long* sx,
                                              scalar_t* gx, long long total, int C, int H, int W, int PH, int PW) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    int pw = (int)(i % PW);
    int ph = (int)((i / PW) % PH);
    int c = (int)((i / ((long long)PW * PH)) % C);
    long long k = i / ((long long)PW * PH * C);
    long long n = (long long)rois[k * 5];
    scalar_t* plane = gx + (n * C + c) * H * W;
    const scalar_t* ry = wy + (k * PH + ph) * H;
    const scalar_t* rx = wx + (k * PW + pw) * W;
    const long long* spy = sy + (k * PH + ph) * 2;
    const long long* spx = sx + (k * PW + pw) * 2;
    scalar_t g = gy[i];
    for (long long h = spy[0]; h < spy[1]; ++h) {
        scalar_t gh = mul_rn(g, ry[h]);
        for (long long w = spx[0]; w < spx[1]; ++w) atomicAdd(plane + h * W + w, mul_rn(gh, rx[w]));
    }
}

// Deterministic (gather) form of roi_align_backward: one thread per element (n, c, h, w) of gx. It
// visits the K RoIs of this launch in order and, for those of image n, the bins whose row span
// holds h and column span holds w, adding gy · wy[h] · wx[w] (the products of roi_align_backward)
// in (k, ph, pw) order. gx accumulates over launches (RoI chunks) and must be zero before the first.
extern "C" __global__ void roi_align_backward_gather(const scalar_t* gy, const scalar_t* rois, const scalar_t* wy,
                                                     const long long* sy, const scalar_t* wx, const long long* sx,
                                                     scalar_t* gx, long long total, int K, int C, int H, int W,
                                                     int PH, int PW) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    const int w = (int)(i % W);
    const int h = (int)((i / W) % H);
    const int c = (int)((i / ((long long)W * H)) % C);
    const long long n = i / ((long long)W * H * C);
    scalar_t acc = gx[i];
    for (int k = 0; k < K; ++k) {
        if ((long long)rois[(long long)k * 5] != n) continue;
        for (int ph = 0; ph < PH; ++ph) {
            const long long row = (long long)k * PH + ph;
            if (h < sy[row * 2] || h >= sy[row * 2 + 1]) continue;
            const scalar_t wyh = wy[row * H + h];
            for (int pw = 0; pw < PW; ++pw) {
                const long long col = (long long)k * PW + pw;
                if (w < sx[col * 2] || w >= sx[col * 2 + 1]) continue;
                const scalar_t g = gy[(((long long)k * C + c) * PH + ph) * PW + pw];
                acc = add_rn(acc, mul_rn(mul_rn(g, wyh), wx[col * W + w]));
            }
        }
    }
    gx[i] = acc;
}
