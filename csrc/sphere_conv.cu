// Spherical convolution on ERP images driven by a row-wise neighbour table (sphsal.ops.stencils).
//
// Layouts (all contiguous):
//   x       (B, C, H, W)            input, scalar_t
//   weight  (Co, C, K)              K = k * k taps, row-major over the planar kernel, scalar_t
//   rows    (H_out, K, P) int32     source rows in [0, H)
//   cols    (H_out, K, P) int32     column offsets relative to j * stride (wrapped modulo W)
//   taps    (H_out, K, P) float32   interpolation weights (P = 1 nearest, 4 bilinear)
//   out     (B, Co, H_out, W_out)   scalar_t
// Sample t of output pixel (i, j) = sum_p taps[i,t,p] * x[b, c, rows[i,t,p], (j*stride + cols[i,t,p]) mod W].
//
// scalar_t is float, half_t (IEEE binary16) or bf16_t (bfloat16); arithmetic accumulates in float.
// The 16-bit types are plain bit containers converted with PTX / integer code, so the file compiles
// with NVRTC (CuPy RawModule) and with `nvcc -ptx` without the cuda_fp16.h / cuda_bf16.h headers.
// Gradients are accumulated with float atomics into float buffers (grad_x (B, C, H, W), grad_w (Co, C, K)).

struct half_t { unsigned short bits; };
struct bf16_t { unsigned short bits; };

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(half_t v) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
    return f;
}
__device__ __forceinline__ float to_float(bf16_t v) {
    return __uint_as_float(((unsigned int)v.bits) << 16);
}

template <typename T> __device__ __forceinline__ T from_float(float f);
template <> __device__ __forceinline__ float from_float<float>(float f) { return f; }
template <> __device__ __forceinline__ half_t from_float<half_t>(float f) {
    half_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h.bits) : "f"(f));
    return h;
}
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float f) {
    bf16_t h;
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        h.bits = 0x7fc0;  // NaN
    } else {
        u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
        h.bits = (unsigned short)(u >> 16);
    }
    return h;
}

#define TILE 32          // output columns per block, and output (or input) channels per block
#define PER_THREAD 4     // channels per thread: blockDim = (TILE, TILE / PER_THREAD)

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

// Gradient of the input. grid = (ceil(W_out / TILE), ceil(C / TILE), B * H_out); block as forward;
// dynamic shared memory = 2 * oc * TILE floats. For each tap t, d[c, j] = sum_o weight[o, c, t] * g[b, o, i, j]
// is spread back onto the tap's source pixels with float atomics.
template <typename scalar_t>
__global__ void sphere_conv_backward_input(const scalar_t* __restrict__ grad_out,
                                           const scalar_t* __restrict__ weight, const int* __restrict__ rows,
                                           const int* __restrict__ cols, const float* __restrict__ taps,
                                           float* __restrict__ grad_x, int B, int C, int H, int W, int Co,
                                           int K, int P, int H_out, int W_out, int stride, int oc) {
    extern __shared__ float smem[];
    float* s_g = smem;              // [oc][TILE columns]
    float* s_w = smem + oc * TILE;  // [oc][TILE input channels]
    const int b = blockIdx.z / H_out, i = blockIdx.z % H_out;
    const int j0 = blockIdx.x * TILE, c0 = blockIdx.y * TILE;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int tid = ty * TILE + tx, nthreads = TILE * (TILE / PER_THREAD);
    const int j = j0 + tx;

    for (int t = 0; t < K; ++t) {
        float acc[PER_THREAD];
        for (int u = 0; u < PER_THREAD; ++u) acc[u] = 0.f;
        for (int o_start = 0; o_start < Co; o_start += oc) {
            const int n_o = min(oc, Co - o_start);
            for (int e = tid; e < n_o * TILE; e += nthreads) {
                const int col = e % TILE, o = o_start + e / TILE;
                s_g[e] = (j0 + col < W_out)
                    ? to_float(grad_out[(((long long)b * Co + o) * H_out + i) * W_out + j0 + col]) : 0.f;
                const int c = c0 + col;  // the same index doubles as the channel of the weight tile
                s_w[e] = (c < C) ? to_float(weight[((long long)o * C + c) * K + t]) : 0.f;
            }
            __syncthreads();
            for (int o = 0; o < n_o; ++o) {
                const float gv = s_g[o * TILE + tx];
                for (int u = 0; u < PER_THREAD; ++u) acc[u] += s_w[o * TILE + ty * PER_THREAD + u] * gv;
            }
            __syncthreads();
        }
        if (j < W_out) {
            const int entry = (i * K + t) * P;
            for (int p = 0; p < P; ++p) {
                const float wt = taps[entry + p];
                if (wt == 0.f) continue;
                int col = (j * stride + cols[entry + p]) % W;
                if (col < 0) col += W;
                const long long pix = (long long)rows[entry + p] * W + col;
                for (int u = 0; u < PER_THREAD; ++u) {
                    const int c = c0 + ty * PER_THREAD + u;
                    if (c < C) atomicAdd(grad_x + ((long long)b * C + c) * H * W + pix, wt * acc[u]);
                }
            }
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

// Explicit instantiations: every kernel is compiled for every scalar type (by NVRTC and by `nvcc -ptx`).
#define SPHSAL_INSTANTIATE(T)                                                                              \
    template __global__ void sphere_conv_forward<T>(const T*, const T*, const int*, const int*, const float*, \
                                                    T*, int, int, int, int, int, int, int, int, int, int, int); \
    template __global__ void sphere_conv_backward_input<T>(const T*, const T*, const int*, const int*,        \
                                                           const float*, float*, int, int, int, int, int, int, \
                                                           int, int, int, int, int);                          \
    template __global__ void sphere_conv_backward_weight<T>(const T*, const T*, const int*, const int*,       \
                                                            const float*, float*, int, int, int, int, int, int, \
                                                            int, int, int, int, int);

SPHSAL_INSTANTIATE(float)
SPHSAL_INSTANTIATE(half_t)
SPHSAL_INSTANTIATE(bf16_t)
