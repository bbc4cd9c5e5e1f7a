// Fused, in-place optimizer updates (the math and the operation order are in kernels/cpu/optim.py):
// one thread per element, PyTorch's CPU arithmetic in scalar_t. Products PyTorch fuses are
// explicit fma(); products PyTorch rounds before an addition (its separate mul_ kernels) use
// mul_rn(), which the compiler never contracts into an FMA. Optional state arrays (momentum
// buffer, max_exp_avg_sq, grad_avg) may be null pointers when their option is off.

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) {
#ifdef MINICNN_EMU
    return a * b;  // g++ without -ffp-contract for FMA targets: a plain product is rounded
#else
    return __dmul_rn(a, b);
#endif
}

// PyTorch's two-sided lerp(x, y, w): fma(w, y - x, x), or fma(w - 1, y - x, y) when |w| >= 0.5
// (then the caller passes w - 1 and from_end = 1).
__device__ __forceinline__ scalar_t lerp_torch(scalar_t x, scalar_t y, scalar_t w, int from_end) {
    return from_end ? fma(w, y - x, y) : fma(w, y - x, x);
}

extern "C" __global__ void sgd_step(scalar_t* __restrict__ p, const scalar_t* __restrict__ g, scalar_t* buf,
                                    scalar_t neg_lr, scalar_t wd, scalar_t mu, scalar_t one_minus_damp,
                                    int nesterov, int maximize, int first, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t x = p[t];
    scalar_t d = maximize ? -g[t] : g[t];
    if (wd != scalar_t(0)) d = fma(wd, x, d);
    if (mu != scalar_t(0)) {
        scalar_t b = first ? d : fma(one_minus_damp, d, mul_rn(mu, buf[t]));
        buf[t] = b;
        d = nesterov ? fma(mu, b, d) : b;
    }
    p[t] = fma(neg_lr, d, x);
}

extern "C" __global__ void adam_step(scalar_t* __restrict__ p, const scalar_t* __restrict__ g,
                                     scalar_t* __restrict__ m, scalar_t* __restrict__ v, scalar_t* vmax,
                                     scalar_t neg_step_size, scalar_t bias2_sqrt, scalar_t eps, scalar_t w1,
                                     int w1_from_end, scalar_t beta2, scalar_t one_minus_beta2, scalar_t wd,
                                     scalar_t decay, int amsgrad, int maximize, long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t d = maximize ? -g[t] : g[t];
    scalar_t x = p[t];
    if (decay != scalar_t(1)) x = mul_rn(x, decay);  // AdamW: p (1 - lr λ), rounded before the step
    if (wd != scalar_t(0)) d = fma(wd, x, d);          // Adam: d + λ p
    scalar_t mi = lerp_torch(m[t], d, w1, w1_from_end);
    m[t] = mi;
    scalar_t vi = fma(one_minus_beta2 * d, d, mul_rn(beta2, v[t]));
    v[t] = vi;
    if (amsgrad) {
        scalar_t old = vmax[t];
        vi = (vi > old || vi != vi) ? vi : old;  // torch.maximum: a NaN wins
        vmax[t] = vi;
    }
    p[t] = x + (neg_step_size * mi) / (sqrt(vi) / bias2_sqrt + eps);
}

extern "C" __global__ void rmsprop_step(scalar_t* __restrict__ p, const scalar_t* __restrict__ g,
                                        scalar_t* __restrict__ s, scalar_t* ga, scalar_t* buf, scalar_t neg_lr,
                                        scalar_t alpha, scalar_t one_minus_alpha, scalar_t w, int w_from_end,
                                        scalar_t eps, scalar_t wd, scalar_t mu, int centered, int maximize,
                                        long long n) {
    long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    scalar_t x = p[t];
    scalar_t d = maximize ? -g[t] : g[t];
    if (wd != scalar_t(0)) d = fma(wd, x, d);
    scalar_t si = fma(one_minus_alpha * d, d, mul_rn(alpha, s[t]));
    s[t] = si;
    scalar_t a;
    if (centered) {
        scalar_t gi = lerp_torch(ga[t], d, w, w_from_end);
        ga[t] = gi;
        a = sqrt(fma(-gi, gi, si)) + eps;
    } else {
        a = sqrt(si) + eps;
    }
    if (mu > scalar_t(0)) {
        scalar_t b = mul_rn(mu, buf[t]) + d / a;
        buf[t] = b;
        p[t] = fma(neg_lr, b, x);
    } else {
        p[t] = x + (neg_lr * d) / a;
    }
}
