// Non-maximum suppression, the 64-bit mask kernel (boxes already sorted by decreasing score).
//
// The n x n "suppresses" relation is cut into 64 x 64 tiles; block (col, row) handles tile
// (row, col) with 64 threads, one per row box. Only tiles with col >= row are computed (a box can
// only suppress boxes ranked after it). The column tile's boxes are staged in shared memory; thread
// t builds one unsigned long long whose bit j says "row box t suppresses column box j" and writes it
// to mask[row_box * col_blocks + col]. nms_scan then walks the boxes in order on the device.
// A box only suppresses boxes of its own category (categories[i]; batched_nms).
//
// IoU in double, with the operations of kernels/reference/nms.py in the same order; mul/add are
// the _rn intrinsics so that NVRTC cannot contract them into an FMA (results equal the CPU's bit for
// bit). This module is always compiled with scalar_t = double.

#define NMS_TILE 64

#ifdef __CUDA_ARCH__
__device__ inline double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ inline double add_rn(double a, double b) { return __dadd_rn(a, b); }
#else
__device__ inline double mul_rn(double a, double b) { volatile double r = a * b; return r; }
__device__ inline double add_rn(double a, double b) { volatile double r = a + b; return r; }
#endif

__device__ inline double sub_rn(double a, double b) { return add_rn(a, -b); }

// IoU > threshold, for boxes a and b given as (x1, y1, x2, y2).
__device__ inline bool suppresses(const double* a, const double* b, double threshold) {
    double w = max(sub_rn(min(a[2], b[2]), max(a[0], b[0])), 0.0);
    double h = max(sub_rn(min(a[3], b[3]), max(a[1], b[1])), 0.0);
    double inter = mul_rn(w, h);
    double area_a = mul_rn(sub_rn(a[2], a[0]), sub_rn(a[3], a[1]));
    double area_b = mul_rn(sub_rn(b[2], b[0]), sub_rn(b[3], b[1]));
    double uni = sub_rn(add_rn(area_a, area_b), inter);
    double iou = uni > 0.0 ? inter / uni : 0.0;
    return iou > threshold;
}

extern "C" __global__ void nms_mask(const scalar_t* boxes, const long long* categories, unsigned long long* mask,
                                    int n, scalar_t threshold) {
    const int row = blockIdx.y, col = blockIdx.x;
    if (row > col) return;  // lower triangle: never read by the host scan
    const int row_size = min(n - row * NMS_TILE, NMS_TILE);
    const int col_size = min(n - col * NMS_TILE, NMS_TILE);

    __shared__ double tile[NMS_TILE * 4];
    __shared__ long long tile_category[NMS_TILE];
    if ((int)threadIdx.x < col_size) {
        for (int d = 0; d < 4; ++d) tile[threadIdx.x * 4 + d] = boxes[(col * NMS_TILE + threadIdx.x) * 4 + d];
        tile_category[threadIdx.x] = categories[col * NMS_TILE + threadIdx.x];
    }
    __syncthreads();

    if ((int)threadIdx.x < row_size) {
        const int box = row * NMS_TILE + threadIdx.x;
        double self[4];
        for (int d = 0; d < 4; ++d) self[d] = boxes[box * 4 + d];
        const long long category = categories[box];
        unsigned long long bits = 0;
        const int start = (row == col) ? threadIdx.x + 1 : 0;  // only boxes ranked after this one
        for (int j = start; j < col_size; ++j) {
            if (tile_category[j] == category && suppresses(self, tile + j * 4, threshold)) bits |= 1ull << j;
        }
        const int col_blocks = (n + NMS_TILE - 1) / NMS_TILE;
        mask[(long long)box * col_blocks + col] = bits;
    }
}

// Greedy keep-scan over the mask, in ONE block: `removed` (one bit per box, in shared memory, or in
// global memory when it does not fit: use_global) says which boxes a kept box has suppressed.
// For each 64-box word w in order: thread 0 decides the word's boxes one by one (box i is kept
// unless its bit is set; a kept box ORs its own row of word w into the running word), then all
// threads OR the rows of the word's kept boxes into the later words, in parallel. Two barriers per
// word. Output: keep[0:count] = kept positions (increasing), count[0] = their number.
// Launch: grid (1,), block (NMS_SCAN_THREADS,), dynamic shared memory ceil(n/64)·8 bytes unless
// use_global (then removed_global holds ceil(n/64) words).
extern "C" __global__ void nms_scan(const unsigned long long* mask, int n, unsigned long long* removed_global,
                                    int use_global, long long* keep, long long* count) {
    extern __shared__ unsigned long long removed_shared[];
    __shared__ unsigned long long word_kept;
    __shared__ long long kept_so_far;
    unsigned long long* removed = use_global ? removed_global : removed_shared;
    const int col_blocks = (n + NMS_TILE - 1) / NMS_TILE;
    for (int w = threadIdx.x; w < col_blocks; w += blockDim.x) removed[w] = 0;
    if (threadIdx.x == 0) kept_so_far = 0;
    __syncthreads();
    for (int w = 0; w < col_blocks; ++w) {
        if (threadIdx.x == 0) {
            unsigned long long current = removed[w], kept = 0;
            const int size = min(NMS_TILE, n - w * NMS_TILE);
            for (int b = 0; b < size; ++b) {
                if (!((current >> b) & 1ull)) {
                    const long long box = (long long)w * NMS_TILE + b;
                    kept |= 1ull << b;
                    keep[kept_so_far++] = box;
                    current |= mask[box * col_blocks + w];
                }
            }
            word_kept = kept;
        }
        __syncthreads();
        const unsigned long long kept = word_kept;
        for (int later = w + 1 + threadIdx.x; later < col_blocks; later += blockDim.x) {
            unsigned long long r = removed[later];
            for (int b = 0; b < NMS_TILE; ++b) {
                if ((kept >> b) & 1ull) r |= mask[((long long)w * NMS_TILE + b) * col_blocks + later];
            }
            removed[later] = r;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) count[0] = kept_so_far;
}
