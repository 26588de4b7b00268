// Exact float32 kernels of spherical convolution (plain FMA, no tensor cores): used for float32 inputs
// when TF32 is disabled (torch.backends.cudnn.allow_tf32 = False); sphere_conv_mma.cu has the
// tensor-core kernels used otherwise. Table layout: sphere_conv_common.cuh.
//
//   x       (B, C, H, W)            input
//   weight  (Co, C, K)              K = k * k taps, row-major over the planar kernel
//   out     (B, Co, H_out, W_out)
// sphere_conv_forward is also the gradient of the input, given the transposed weight, the
// (zero-inserted) output gradient and the inverse table (sphsal/ops/cuda.py); sphere_conv_backward_weight
// accumulates the weight gradient with float atomics into a float buffer grad_w (Co, C, K).

#include "sphere_conv_common.cuh"

// Interpolated sample of tap t of output pixel (i, j) in channel plane `plane` (H * W values).
template <typename scalar_t>
__device__ __forceinline__ float sample_tap(const scalar_t* __restrict__ plane, const int* __restrict__ rows,
                                            const int* __restrict__ cols, const float* __restrict__ taps,
                                            int entry, int P, int j, int stride, int W) {
    float v = 0.f;
    for (int p = 0; p < P; ++p) {
        const float wt = taps[entry + p];
        if (wt != 0.f) {
            int col = (j * stride + cols[entry + p]) % W;
            if (col < 0) col += W;
            v += wt * to_float(plane[(long long)rows[entry + p] * W + col]);
        }
    }
    return v;
}

#define TILE 32          // output columns per block, and output (or input) channels per block
#define PER_THREAD 4     // channels per thread: blockDim = (TILE, TILE / PER_THREAD)

// Forward. grid = (ceil(W_out / TILE), ceil(Co / TILE), B * H_out); block = (TILE, TILE / PER_THREAD);
// dynamic shared memory = 2 * cc * K * TILE floats. Each block is an implicit GEMM of one output row:
// (TILE output channels) x (C * K) times (C * K) x (TILE columns), cc input channels at a time.
template <typename scalar_t>
__global__ void sphere_conv_forward(const scalar_t* __restrict__ x, const scalar_t* __restrict__ weight,
                                    const int* __restrict__ rows, const int* __restrict__ cols,
                                    const float* __restrict__ taps, scalar_t* __restrict__ out,
                                    int B, int C, int H, int W, int Co, int K, int P, int H_out, int W_out,
                                    int stride, int cc) {
    extern __shared__ float smem[];
    float* s_x = smem;                   // [cc * K][TILE columns]
    float* s_w = smem + cc * K * TILE;   // [cc * K][TILE output channels]
    const int b = blockIdx.z / H_out, i = blockIdx.z % H_out;
    const int j0 = blockIdx.x * TILE, o0 = blockIdx.y * TILE;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * TILE + tx, nthreads = TILE * (TILE / PER_THREAD);
    const int j = j0 + tx;
    float acc[PER_THREAD];
    for (int u = 0; u < PER_THREAD; ++u) acc[u] = 0.f;

    for (int c0 = 0; c0 < C; c0 += cc) {
        const int n_c = min(cc, C - c0);
        for (int e = tid; e < n_c * K * TILE; e += nthreads) {
            const int col = e % TILE, ck = e / TILE, t = ck % K, c = c0 + ck / K;
            float v = 0.f;
            if (j0 + col < W_out) {
                v = sample_tap(x + ((long long)b * C + c) * H * W, rows, cols, taps, (i * K + t) * P, P,
                               j0 + col, stride, W);
            }
            s_x[ck * TILE + col] = v;
        }
        for (int e = tid; e < n_c * K * TILE; e += nthreads) {
            const int o = e % TILE, ck = e / TILE;
            const int t = ck % K, c = c0 + ck / K;
            s_w[ck * TILE + o] = (o0 + o < Co) ? to_float(weight[((long long)(o0 + o) * C + c) * K + t]) : 0.f;
        }
        __syncthreads();
        for (int ck = 0; ck < n_c * K; ++ck) {
            const float xv = s_x[ck * TILE + tx];
            for (int u = 0; u < PER_THREAD; ++u) acc[u] += s_w[ck * TILE + ty * PER_THREAD + u] * xv;
        }
        __syncthreads();
    }
    if (j < W_out) {
        for (int u = 0; u < PER_THREAD; ++u) {
            const int o = o0 + ty * PER_THREAD + u;
            if (o < Co) out[(((long long)b * Co + o) * H_out + i) * W_out + j] = from_float<scalar_t>(acc[u]);
        }
    }
}

// Gradient of the weight. grid = (ceil(Co / 16), ceil(C / 16), K * ceil(H_out / rows_per_block));
// block = (16, 16). Thread (o, c) sums g[b, o, i, j] * sample_t[b, c, i, j] over b, j and the block's rows,
// TILE columns at a time, then adds it to grad_w[o, c, t] with one float atomic.
template <typename scalar_t>
__global__ void sphere_conv_backward_weight(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                                            const int* __restrict__ rows, const int* __restrict__ cols,
                                            const float* __restrict__ taps, float* __restrict__ grad_w,
                                            int B, int C, int H, int W, int Co, int K, int P, int H_out,
                                            int W_out, int stride, int rows_per_block) {
    __shared__ float s_g[16][TILE + 1];
    __shared__ float s_x[16][TILE + 1];
    const int t = blockIdx.z % K, i_start = (blockIdx.z / K) * rows_per_block;
    const int o0 = blockIdx.x * 16, c0 = blockIdx.y * 16;
    const int to = threadIdx.y, tc = threadIdx.x, tid = to * 16 + tc;
    float acc = 0.f;
    const int i_end = min(H_out, i_start + rows_per_block);
    for (int i = i_start; i < i_end; ++i) {
        const int entry = (i * K + t) * P;
        for (int b = 0; b < B; ++b) {
            for (int j0 = 0; j0 < W_out; j0 += TILE) {
                for (int e = tid; e < 16 * TILE; e += 256) {
                    const int r = e / TILE, col = e % TILE, j = j0 + col;
                    const int o = o0 + r, c = c0 + r;
                    s_g[r][col] = (o < Co && j < W_out)
                        ? to_float(grad_out[(((long long)b * Co + o) * H_out + i) * W_out + j]) : 0.f;
                    s_x[r][col] = (c < C && j < W_out)
                        ? sample_tap(x + ((long long)b * C + c) * H * W, rows, cols, taps, entry, P, j, stride, W)
                        : 0.f;
                }
                __syncthreads();
                for (int col = 0; col < TILE; ++col) acc += s_g[to][col] * s_x[tc][col];
                __syncthreads();
            }
        }
    }
    const int o = o0 + to, c = c0 + tc;
    if (o < Co && c < C && i_start < i_end) atomicAdd(grad_w + ((long long)o * C + c) * K + t, acc);
}

template __global__ void sphere_conv_forward<float>(const float*, const float*, const int*, const int*,
                                                    const float*, float*, int, int, int, int, int, int, int,
                                                    int, int, int, int);
template __global__ void sphere_conv_backward_weight<float>(const float*, const float*, const int*, const int*,
                                                            const float*, float*, int, int, int, int, int, int,
                                                            int, int, int, int, int);
