// Deterministic scatter-add in gather form (kernels/cuda/_scatter.py).
//
// out[j] = Σ values[order[t]] over t in [starts[j], ends[j]): the sources sorted by (destination,
// source index) and cut into one range per destination, so each output element is one thread that
// adds its sources in increasing source index: no atomics, the same sum on every run.

extern "C" __global__ void segment_sum(const scalar_t* values, const long long* order, const long long* starts,
                                       const long long* ends, scalar_t* out, long long size) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= size) return;
    scalar_t acc = (scalar_t)0;
    for (long long t = starts[j]; t < ends[j]; ++t) acc += values[order[t]];
    out[j] = acc;
}
