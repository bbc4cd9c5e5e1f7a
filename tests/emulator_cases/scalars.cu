// Good: one parameter of each supported kind, to test argument checking and unpacking.
// y[0..6] receives the scalars; `scale` multiplies x by s (used for the flush-to-zero test).
extern "C" __global__ void scalars(double* __restrict__ y, int a, unsigned int b, long long c,
                                   float d, double e, bool f, unsigned long long g) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        y[0] = a; y[1] = b; y[2] = (double)c; y[3] = d; y[4] = e; y[5] = f ? 1.0 : 0.0; y[6] = (double)g;
    }
}

extern "C" __global__ void scale(const float* __restrict__ x, float* __restrict__ y, float s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] * s;
}

extern "C" __global__ void index_map(int* __restrict__ out) {
    // out[global linear thread id] = packed (blockIdx, threadIdx): checks 3-D grids and blocks
    unsigned int b = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    unsigned int t = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    unsigned int nt = blockDim.x * blockDim.y * blockDim.z;
    out[b * nt + t] = (int)(b * 1000 + t);
}
