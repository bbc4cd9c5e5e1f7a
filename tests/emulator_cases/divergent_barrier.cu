// Broken: barriers that not every thread of the block reaches (undefined behaviour in CUDA:
// a hang or garbage on a GPU). The emulator raises an error naming the __syncthreads() line.

// Threads past the end return early, the others wait at the barrier.
extern "C" __global__ void early_exit_barrier(float* y, int n) {
    __shared__ float buf[64];
    int i = threadIdx.x;
    if (i >= n) return;
    buf[i] = (float)i;
    __syncthreads();
    y[i] = buf[n - 1 - i];
}

// Even and odd threads wait at two different barriers.
extern "C" __global__ void split_barrier(float* y) {
    __shared__ float buf[64];
    int i = threadIdx.x;
    buf[i] = (float)i;
    if (i % 2 == 0) {
        __syncthreads();
        y[i] = buf[i + 1];
    } else {
        __syncthreads();
        y[i] = buf[i - 1];
    }
}
