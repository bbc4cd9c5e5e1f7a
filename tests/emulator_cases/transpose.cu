// Good: tiled transpose through dynamic shared memory (a TILE x (TILE + 1) tile: the padding
// column avoids bank conflicts on a GPU). Launch with block (TILE, TILE) and
// shared_mem = TILE * (TILE + 1) * sizeof(scalar_t).
#define TILE 16

extern "C" __global__ void transpose(const scalar_t* __restrict__ x, scalar_t* __restrict__ y,
                                     int rows, int cols) {
    extern __shared__ scalar_t tile[];
    int c = blockIdx.x * TILE + threadIdx.x;
    int r = blockIdx.y * TILE + threadIdx.y;
    if (r < rows && c < cols) tile[threadIdx.y * (TILE + 1) + threadIdx.x] = x[(long long)r * cols + c];
    __syncthreads();
    int tc = blockIdx.y * TILE + threadIdx.x;  // column of y = row of x
    int tr = blockIdx.x * TILE + threadIdx.y;
    if (tr < cols && tc < rows) y[(long long)tr * rows + tc] = tile[threadIdx.x * (TILE + 1) + threadIdx.y];
}
