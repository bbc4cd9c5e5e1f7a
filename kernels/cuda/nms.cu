// Non-maximum suppression, the 64-bit mask kernel (boxes already sorted by decreasing score).
//
// The n x n "suppresses" relation is cut into 64 x 64 tiles; block (col, row) handles tile
// (row, col) with 64 threads, one per row box. Only tiles with col >= row are computed (a box can
// only suppress boxes ranked after it). The column tile's boxes are staged in shared memory; thread
// t builds one unsigned long long whose bit j says "row box t suppresses column box j" and writes it
// to mask[row_box * col_blocks + col]. The host then scans the boxes in order (kernels/cuda/nms.py).
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
