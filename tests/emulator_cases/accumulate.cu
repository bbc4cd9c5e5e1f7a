// accumulate_racy is broken: every thread of the block does a non-atomic read-modify-write of
// one global accumulator, so updates are lost on a GPU. The emulator's default mode runs the
// threads one at a time and gets the right sum; ThreadSanitizer (thread mode) reports the race.
// accumulate_atomic is the fix.
extern "C" __global__ void accumulate_racy(const float* __restrict__ x, float* total, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) *total += x[i];
}

extern "C" __global__ void accumulate_atomic(const float* __restrict__ x, float* total, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(total, x[i]);
}
