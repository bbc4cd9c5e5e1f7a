// Batch normalisation (the math is in kernels/reference/batchnorm.py). x is (N, C, S) contiguous,
// channel c holds the m = N·S values x[(n·C + c)·S + s].
//
// Reductions: one block per channel (grid (C,), block (BN_BLOCK,)). Thread t adds the values
// t, t + B, t + 2B, … of the channel (flat index i = n·S + s) in double; the B partial sums are
// then added pairwise in shared memory (s[t] += s[t + h] for h = B/2, …, 1): the same additions
// in the same order on every run (deterministic, no atomics).
// Elementwise kernels: one thread per element of x (64-bit count), channel (i / S) mod C.

#define BN_BLOCK 256  // threads per block of the reductions (a power of two)

__device__ __forceinline__ long long bn_offset(long long i, int C, int S, int c) {
    // the flat index i = n·S + s of channel c, as an offset into x
    const long long n = i / S;
    return (n * C + c) * S + (i - n * S);
}

// Adds v[t] of every thread t into v[0] (pairwise, fixed order); every thread must call it.
__device__ void bn_block_sum(double* v) {
    const int t = threadIdx.x;
    for (int h = BN_BLOCK / 2; h > 0; h >>= 1) {
        __syncthreads();
        if (t < h) v[t] += v[t + h];
    }
    __syncthreads();
}

// mean[c] = μ, inv_std[c] = 1/√(σ² + ε) (σ² biased) from sums shifted by the channel's first
// value K: μ = K + Σ(x − K)/m, σ² = Σ(x − K)²/m − (Σ(x − K)/m)². Needs m ≥ 1.
extern "C" __global__ void batch_norm_stats(const scalar_t* __restrict__ x, double* __restrict__ mean,
                                            double* __restrict__ inv_std, int C, int S, long long m, double eps) {
    __shared__ double s1[BN_BLOCK];
    __shared__ double s2[BN_BLOCK];
    const int c = blockIdx.x;
    const int t = threadIdx.x;
    const double shift = (double)x[(long long)c * S];
    double a1 = 0.0, a2 = 0.0;
    for (long long i = t; i < m; i += BN_BLOCK) {
        const double d = (double)x[bn_offset(i, C, S, c)] - shift;
        a1 += d;
        a2 += d * d;
    }
    s1[t] = a1;
    s2[t] = a2;
    bn_block_sum(s1);
    bn_block_sum(s2);
    if (t == 0) {
        const double mu = s1[0] / (double)m;
        const double var = fmax(s2[0] / (double)m - mu * mu, 0.0);
        mean[c] = shift + mu;
        inv_std[c] = 1.0 / sqrt(var + eps);
    }
}

// y = (x − μ_c)·(inv_std_c·γ_c) + β_c, in scalar_t.
extern "C" __global__ void batch_norm_transform(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                                const double* __restrict__ mean, const double* __restrict__ inv_std,
                                                const scalar_t* __restrict__ weight, const scalar_t* __restrict__ bias,
                                                long long n, int C, int S) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (int)((i / S) % C);
    const scalar_t a = (scalar_t)(inv_std[c] * (double)weight[c]);
    y[i] = (x[i] - (scalar_t)mean[c]) * a + bias[c];
}

// sum_gy[c] = Σ gy (gβ),  sum_gy_xhat[c] = inv_std_c · Σ gy·(x − μ_c) (gγ), in double.
extern "C" __global__ void batch_norm_backward_reduce(const scalar_t* __restrict__ gy, const scalar_t* __restrict__ x,
                                                      const double* __restrict__ mean,
                                                      const double* __restrict__ inv_std,
                                                      double* __restrict__ sum_gy, double* __restrict__ sum_gy_xhat,
                                                      int C, int S, long long m) {
    __shared__ double s1[BN_BLOCK];
    __shared__ double s2[BN_BLOCK];
    const int c = blockIdx.x;
    const int t = threadIdx.x;
    const double mu = mean[c];
    double a1 = 0.0, a2 = 0.0;
    for (long long i = t; i < m; i += BN_BLOCK) {
        const long long k = bn_offset(i, C, S, c);
        const double g = (double)gy[k];
        a1 += g;
        a2 += g * ((double)x[k] - mu);
    }
    s1[t] = a1;
    s2[t] = a2;
    bn_block_sum(s1);
    bn_block_sum(s2);
    if (t == 0) {
        sum_gy[c] = s1[0];
        sum_gy_xhat[c] = s2[0] * inv_std[c];
    }
}

// batch_stats != 0 (training):  gx = γ·inv_std·(gy − Σgy/m − x̂·Σ(gy·x̂)/m),  x̂ = (x − μ)·inv_std;
// batch_stats == 0 (fixed statistics):  gx = γ·inv_std·gy (x, sum_gy, sum_gy_xhat are not read).
extern "C" __global__ void batch_norm_backward_input(const scalar_t* __restrict__ gy, const scalar_t* __restrict__ x,
                                                     scalar_t* __restrict__ gx, const double* __restrict__ mean,
                                                     const double* __restrict__ inv_std,
                                                     const scalar_t* __restrict__ weight,
                                                     const double* __restrict__ sum_gy,
                                                     const double* __restrict__ sum_gy_xhat,
                                                     int batch_stats, long long n, int C, int S, long long m) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const int c = (int)((i / S) % C);
    const double istd = inv_std[c];
    const scalar_t k = (scalar_t)(istd * (double)weight[c]);
    if (!batch_stats) {
        gx[i] = gy[i] * k;
        return;
    }
    const scalar_t mean_g = (scalar_t)(sum_gy[c] / (double)m);
    const scalar_t mean_gx = (scalar_t)(sum_gy_xhat[c] / (double)m);
    const scalar_t xhat = (x[i] - (scalar_t)mean[c]) * (scalar_t)istd;
    gx[i] = k * (gy[i] - mean_g - xhat * mean_gx);
}
