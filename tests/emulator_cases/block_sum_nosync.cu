// Broken: block_sum.cu without the __syncthreads() after the load into shared memory, so a
// thread may add partial[tid + stride] before its owner wrote it. On a GPU this usually works
// (a warp writes and reads in lockstep): the emulator's poisoned shared memory and scrambled
// thread order make it fail every time, and TSan (thread mode) reports the race.
extern "C" __global__ void block_sum_nosync(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ float partial[256];
    unsigned int tid = threadIdx.x;
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    partial[tid] = i < (unsigned int)n ? x[i] : 0.0f;
    for (unsigned int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (tid < stride) partial[tid] += partial[tid + stride];
        __syncthreads();
    }
    if (tid == 0) out[blockIdx.x] = partial[0];
}
