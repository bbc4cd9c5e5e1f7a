// Implicit-GEMM convolution forward (NCHW): a hand-written tiled GEMM whose right-hand matrix is the
// im2col matrix gathered on the fly, never stored. A variant beside the cuBLAS path of conv.py, for
// learners and for benchmarking (kernels/cuda/conv_igemm.py: wrapper, dispatch rule). Formulas:
// kernels/reference/conv.py.
//
// The GEMM view, per group g (Mg = C_out/G output channels, Cg = C_in/G input channels, P = OH·OW):
//
//     Y_g[m, j] = Σ_r W_g[m, r] · X̃_g[r, j]              m < Mg,  r < R = Cg·kH·kW,  j < N·P
//     W_g[m, r]            = w[g·Mg + m, c, kh, kw]        r = (c·kH + kh)·kW + kw  (w's own layout)
//     X̃_g[r, n·P + oh·OW + ow] = x[n, g·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]   (0 outside)
//     y[n, g·Mg + m, oh, ow] = Y_g[m, n·P + oh·OW + ow] (+ bias[g·Mg + m])
//
// Tiling. Grid (⌈N·P / BN⌉, ⌈Mg / BM⌉, G): block (bx, by, g) computes the BM×BN tile of Y_g with
// rows m0 = by·BM … and columns j0 = bx·BN …. It walks r in chunks of BK: its 256 threads copy the
// BM×BK tile of W_g and the BK×BN tile of X̃_g (gathering pixels, 0 outside the image or past R,
// Mg, N·P) into shared memory, __syncthreads, then each thread adds the BK rank-1 updates of its
// TM×TN register block from the shared tiles, __syncthreads, next chunk. Thread (ty, tx) = (t / 16,
// t % 16) owns rows ty + 16·i and columns tx + 16·j (i, j < 4): a warp then reads 16 consecutive
// Xs entries and 2 Ws entries per step (no bank conflicts), and writes consecutive y addresses.
//
// Tile sizes: BM = BN = 64, BK = 16, TM = TN = 4, 256 threads. Shared memory: Ws 16×65 + Xs 16×64
// entries = 8,256 B (float) / 16,512 B (double), well under 48 KiB, so 2–5 blocks fit an SM's
// shared memory. Registers (ptxas, `python -m minicnn.kernels.cuda.compile_check`): the 16 (float)
// or 32 (double, two registers each) accumulators plus 8 operands dominate; __launch_bounds__(256)
// caps them at 255 and the report shows no spills. Per chunk a thread does 8 global loads, 8
// shared stores, 16·8 shared loads and 16·16 FMAs: 2 FMAs per shared load. Not done (a faster
// kernel would): double buffering of the tiles, vector loads, tensor cores.
//
// Index math is 32-bit: the host launches this kernel only on batch chunks whose x, y and W element
// counts, tap offsets and N·P fit a 32-bit int (conv_igemm.py). The pixel offsets of the R taps
// come precomputed from the host (`taps`, 3 ints per r: c·H·W + kh·dh·W + kw·dw, kh·dh, kw·dw), so
// no division happens inside the chunk loop; each thread divides 2 times to place its load column
// and 2 times per output column at the end.
//
// The sums run over r in ascending order, each a chain of multiply-adds into one accumulator: the
// result is deterministic (nvcc contracts a·b + c into FMA, so it differs from the cuBLAS path and
// from the CPU in the last bits).

#define IGEMM_BM 64
#define IGEMM_BN 64
#define IGEMM_BK 16
#define IGEMM_TM 4
#define IGEMM_TN 4
#define IGEMM_THREADS 256  // (BM / TM) · (BN / TN)
#define IGEMM_TX (IGEMM_BN / IGEMM_TN)  // 16 threads across a tile's columns

// a / b for a >= 0, b > 0 (an unsigned division, cheaper than a signed one).
__device__ __forceinline__ int igemm_udiv(int a, int b) { return (int)((unsigned)a / (unsigned)b); }

// Launch: grid (⌈N·P / 64⌉, ⌈Mg / 64⌉, G), block (256,). `bias` is read only when has_bias != 0
// (any pointer otherwise). taps: int[R][3] as above.
extern "C" __global__ void __launch_bounds__(IGEMM_THREADS)
conv2d_igemm_forward(const scalar_t* __restrict__ x, const scalar_t* __restrict__ w, const scalar_t* bias,
                     const int* __restrict__ taps, scalar_t* __restrict__ y, int N, int C_in, int H, int W,
                     int C_out, int G, int R, int sh, int sw, int ph, int pw, int OH, int OW, int has_bias)
{
    __shared__ scalar_t Ws[IGEMM_BK][IGEMM_BM + 1];  // W_g tile, transposed (+1: spreads the stores over banks)
    __shared__ scalar_t Xs[IGEMM_BK][IGEMM_BN];      // X̃_g tile

    const int t = threadIdx.x;
    const int g = blockIdx.z;
    const int Mg = C_out / G, Cg = C_in / G;
    const int P = OH * OW, NP = N * P;
    const int m0 = blockIdx.y * IGEMM_BM, j0 = blockIdx.x * IGEMM_BN;
    const scalar_t* wg = w + g * Mg * R;  // W_g (Mg, R), row-major

    // Loads of W: column wk of the chunk, rows wm + 16·i (consecutive threads: consecutive r).
    const int wk = t % IGEMM_BK, wm = t / IGEMM_BK;
    // Loads of X̃: column xj of the tile for every chunk, rows xk + 4·i (consecutive threads:
    // consecutive output pixels). The column's image and window origin are fixed: place them once.
    const int xj = t % IGEMM_BN, xk = t / IGEMM_BN;
    const bool col_inside = j0 + xj < NP;
    int ih0 = 0, iw0 = 0, xbase = 0;
    if (col_inside) {
        const int n = igemm_udiv(j0 + xj, P);
        const int p = j0 + xj - n * P;
        const int oh = igemm_udiv(p, OW);
        ih0 = oh * sh - ph;
        iw0 = (p - oh * OW) * sw - pw;
        xbase = (n * C_in + g * Cg) * H * W + ih0 * W + iw0;  // + taps[r][0]: the pixel of tap r
    }

    const int ty = t / IGEMM_TX, tx = t % IGEMM_TX;
    scalar_t acc[IGEMM_TM][IGEMM_TN];
#pragma unroll
    for (int i = 0; i < IGEMM_TM; ++i)
#pragma unroll
        for (int j = 0; j < IGEMM_TN; ++j) acc[i][j] = (scalar_t)0;

    for (int k0 = 0; k0 < R; k0 += IGEMM_BK) {
        const int rw = k0 + wk;
#pragma unroll
        for (int i = 0; i < IGEMM_BM * IGEMM_BK / IGEMM_THREADS; ++i) {
            const int m = wm + i * (IGEMM_THREADS / IGEMM_BK);
            Ws[wk][m] = (m0 + m < Mg && rw < R) ? wg[(m0 + m) * R + rw] : (scalar_t)0;
        }
#pragma unroll
        for (int i = 0; i < IGEMM_BK * IGEMM_BN / IGEMM_THREADS; ++i) {
            const int kk = xk + i * (IGEMM_THREADS / IGEMM_BN);
            const int r = k0 + kk;
            scalar_t v = (scalar_t)0;
            if (col_inside && r < R) {
                const int ih = ih0 + taps[3 * r + 1], iw = iw0 + taps[3 * r + 2];
                if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) v = x[xbase + taps[3 * r]];
            }
            Xs[kk][xj] = v;
        }
        __syncthreads();  // tiles written: every thread may read them

#pragma unroll
        for (int kk = 0; kk < IGEMM_BK; ++kk) {
            scalar_t a[IGEMM_TM], b[IGEMM_TN];
#pragma unroll
            for (int i = 0; i < IGEMM_TM; ++i) a[i] = Ws[kk][ty + i * (IGEMM_BM / IGEMM_TM)];
#pragma unroll
            for (int j = 0; j < IGEMM_TN; ++j) b[j] = Xs[kk][tx + j * IGEMM_TX];
#pragma unroll
            for (int i = 0; i < IGEMM_TM; ++i)
#pragma unroll
                for (int j = 0; j < IGEMM_TN; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();  // tiles read: the next chunk may overwrite them
    }

#pragma unroll
    for (int j = 0; j < IGEMM_TN; ++j) {
        const int col = j0 + tx + j * IGEMM_TX;
        if (col >= NP) continue;
        const int n = igemm_udiv(col, P);
        scalar_t* yp = y + n * C_out * P + (col - n * P);  // y[n, 0, oh, ow]
#pragma unroll
        for (int i = 0; i < IGEMM_TM; ++i) {
            const int m = m0 + ty + i * (IGEMM_BM / IGEMM_TM);
            if (m >= Mg) continue;
            const int co = g * Mg + m;
            yp[co * P] = has_bias ? acc[i][j] + bias[co] : acc[i][j];
        }
    }
}
