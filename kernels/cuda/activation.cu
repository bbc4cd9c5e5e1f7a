// ReLU, leaky ReLU and hardtanh (the math is in kernels/reference/activation.py): one thread per element.
// y = 0 if x <= 0 else x (a NaN passes through);  gx = 0 if y <= 0 else gy.

// x and y may be the same array (an in-place relu_): no __restrict__; each thread reads its element first.
extern "C" __global__ void relu_forward(const scalar_t* x, scalar_t* y, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t v = x[t];
    y[t] = v <= scalar_t(0) ? scalar_t(0) : v;
}

extern "C" __global__ void relu_backward(const scalar_t* __restrict__ gy, const scalar_t* __restrict__ y,
                                         scalar_t* __restrict__ gx, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    gx[t] = y[t] <= scalar_t(0) ? scalar_t(0) : gy[t];
}

// Leaky ReLU, slope a: y = x if x > 0 else a*x (a NaN passes through). x and y may be the same array.
extern "C" __global__ void leaky_relu_forward(const scalar_t* x, scalar_t* y, scalar_t a, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t v = x[t];
    y[t] = v > scalar_t(0) ? v : a * v;
}

// gx = gy if s > 0 else a*gy (s: the forward's input, or its output when a >= 0).
extern "C" __global__ void leaky_relu_backward(const scalar_t* __restrict__ gy, const scalar_t* __restrict__ s,
                                               scalar_t* __restrict__ gx, scalar_t a, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t g = gy[t];
    gx[t] = s[t] > scalar_t(0) ? g : a * g;
}

// Hardtanh (relu6 = hardtanh(0, 6)): y = lo if x <= lo, hi if x >= hi, else x (a NaN passes through).
// x and y may be the same array (an in-place relu6_): no __restrict__.
extern "C" __global__ void hardtanh_forward(const scalar_t* x, scalar_t* y, scalar_t lo, scalar_t hi, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t v = x[t];
    y[t] = v <= lo ? lo : (v >= hi ? hi : v);
}

// gx = gy if lo < y < hi else 0 (y: the forward's output; lo < y < hi exactly where lo < x < hi).
extern "C" __global__ void hardtanh_backward(const scalar_t* __restrict__ gy, const scalar_t* __restrict__ y,
                                             scalar_t* __restrict__ gx, scalar_t lo, scalar_t hi, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t v = y[t];
    gx[t] = (v > lo && v < hi) ? gy[t] : scalar_t(0);
}
