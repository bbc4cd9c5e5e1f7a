// Broken: off-by-one bound (<= n), so the last thread reads x[n], one past the end.
// Harmless-looking on a GPU (the allocator rounds up); AddressSanitizer reports it.
extern "C" __global__ void shift_left(const float* __restrict__ x, float* __restrict__ y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i + 1];
}
