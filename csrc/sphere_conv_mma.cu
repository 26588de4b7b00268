// Tensor-core kernels of spherical convolution (mma.sync, sm_80 and newer): implicit GEMMs whose
// gathered operand is read through the row-wise neighbour table straight into shared memory, so no
// K-times expanded tensor ever exists in device memory.
//
// Operands: float inputs are rounded to TF32 (m16n8k8), half_t / bf16_t inputs are used as they are
// (m16n8k16); products accumulate in float.
//
// sphere_conv_mma_gather  out[b, o, i, j] = sum_{t, c} weight[o, t, c] * sample_t(x[b, c], i, j)
//   x (B, C, H, W), weight (Co, K, C) (tap-major), table (H_out, K, P), out (B, Co, H_out, W_out), all
//   scalar_t. This is the forward pass, and also the gradient of the input when given the transposed
//   weight (C, K, Co), the (zero-inserted, see sphsal/ops/cuda.py) output gradient as x and the inverse
//   table.
// sphere_conv_mma_weight_grad  grad_w[o, t, c] += sum_{b, i, j} grad_out[b, o, i, j] * sample_t(x[b, c], i, j)
//   over the rows_per_block output rows (b, i) of its block; grad_w (Co, K, C) float, one atomic per
//   element and block.
//
// Both kernels: 128 threads (four warps), a 64 x 64 tile of the result per block, each warp a 32 x 32
// piece of it (2 x 4 mma tiles); the reduction is staged 32 at a time in shared memory as
// As[m][k] (tile rows) and Bs[n][k] (tile columns), k contiguous, padded so that the fragment reads
// are free of bank conflicts.

#include "sphere_conv_common.cuh"

#define BM 64
#define BN 64
#define BK 32
#define THREADS 128

// Shared-memory operand: a TF32 value in a float for float inputs, the 16-bit pattern otherwise.
template <typename scalar_t> struct Operand {
    typedef unsigned short type;
    static const int ld = BK + 8;  // row stride (elements): 20 words, conflict-free fragment reads
};
template <> struct Operand<float> {
    typedef float type;
    static const int ld = BK + 4;  // 36 words
};

template <typename scalar_t> __device__ __forceinline__ typename Operand<scalar_t>::type to_operand(float v);
template <> __device__ __forceinline__ float to_operand<float>(float v) {
    unsigned int u;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(u) : "f"(v));
    return __uint_as_float(u);
}
template <> __device__ __forceinline__ unsigned short to_operand<half_t>(float v) {
    return from_float<half_t>(v).bits;
}
template <> __device__ __forceinline__ unsigned short to_operand<bf16_t>(float v) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));  // sm_80 and newer, as mma.sync
    return h;
}

// The operand of a staged value (taken as it is for a nearest tap or an output gradient, else an
// interpolated sum already rounded to scalar_t, as the operand would be): 16-bit values keep their
// bits; float is rounded to TF32.
__device__ __forceinline__ float raw_operand(float v) { return to_operand<float>(v); }
__device__ __forceinline__ unsigned short raw_operand(half_t v) { return v.bits; }
__device__ __forceinline__ unsigned short raw_operand(bf16_t v) { return v.bits; }

template <typename scalar_t> __device__ __forceinline__ scalar_t to_output(float v) { return from_float<scalar_t>(v); }
template <> __device__ __forceinline__ bf16_t to_output<bf16_t>(float v) {
    bf16_t h;
    h.bits = to_operand<bf16_t>(v);
    return h;
}

__device__ __forceinline__ void mma_tf32(float* d, const unsigned int* a, const unsigned int* b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_16bit(float* d, const unsigned int* a, const unsigned int* b, half_t) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void mma_16bit(float* d, const unsigned int* a, const unsigned int* b, bf16_t) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// One warp's 32 x 32 piece (rows wm * 32.., columns wn * 32..) of As x Bs^T over one BK slice.
// Fragment layouts: PTX ISA, "Matrix fragments for mma.m16n8k8" (.tf32) and "mma.m16n8k16" (.f16/.bf16).
__device__ __forceinline__ void warp_mma(const float* As, const float* Bs, float (*acc)[4][4], int wm, int wn,
                                         int lane, float) {
    const int g = lane >> 2, q = lane & 3, ld = Operand<float>::ld;
#pragma unroll
    for (int kb = 0; kb < BK; kb += 8) {
        unsigned int a[2][4], b[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
            const float* r = As + (wm * 32 + mi * 16 + g) * ld + kb + q;
            a[mi][0] = __float_as_uint(r[0]);
            a[mi][1] = __float_as_uint(r[8 * ld]);
            a[mi][2] = __float_as_uint(r[4]);
            a[mi][3] = __float_as_uint(r[8 * ld + 4]);
        }
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const float* r = Bs + (wn * 32 + ni * 8 + g) * ld + kb + q;
            b[ni][0] = __float_as_uint(r[0]);
            b[ni][1] = __float_as_uint(r[4]);
        }
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) mma_tf32(acc[mi][ni], a[mi], b[ni]);
    }
}

template <typename scalar_t>
__device__ __forceinline__ void warp_mma(const unsigned short* As, const unsigned short* Bs, float (*acc)[4][4],
                                         int wm, int wn, int lane, scalar_t tag) {
    const int g = lane >> 2, q = lane & 3, ld = Operand<scalar_t>::ld;
#pragma unroll
    for (int kb = 0; kb < BK; kb += 16) {
        unsigned int a[2][4], b[4][2];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
            const unsigned short* r = As + (wm * 32 + mi * 16 + g) * ld + kb + 2 * q;
            a[mi][0] = *reinterpret_cast<const unsigned int*>(r);
            a[mi][1] = *reinterpret_cast<const unsigned int*>(r + 8 * ld);
            a[mi][2] = *reinterpret_cast<const unsigned int*>(r + 8);
            a[mi][3] = *reinterpret_cast<const unsigned int*>(r + 8 * ld + 8);
        }
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const unsigned short* r = Bs + (wn * 32 + ni * 8 + g) * ld + kb + 2 * q;
            b[ni][0] = *reinterpret_cast<const unsigned int*>(r);
            b[ni][1] = *reinterpret_cast<const unsigned int*>(r + 8);
        }
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) mma_16bit(acc[mi][ni], a[mi], b[ni], tag);
    }
}

// Calls f(m, n, value) for each of the warp's accumulator elements (tile coordinates).
template <typename F>
__device__ __forceinline__ void for_each_result(float (*acc)[4][4], int wm, int wn, int lane, F f) {
    const int g = lane >> 2, q = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int r = 0; r < 4; ++r)
                f(wm * 32 + mi * 16 + g + (r >> 1) * 8, wn * 32 + ni * 8 + 2 * q + (r & 1), acc[mi][ni][r]);
}

#define PER_THREAD_A (BM * BK / THREADS)  // 16 values of each staged tile per thread
#define PER_THREAD_B (BN * BK / THREADS)

// Offsets (row * W + column, column wrapped) of the K * P table entries of output row i for the
// output columns j_first .. j_first + count - 1 (those past j_last read column j_last, unused), as
// s_off[(t * P + p) * count + n], and their weights s_wt[t * P + p]. Table column offsets lie in
// [-W/2, W), so one wrap each way suffices. Called by all threads of the block.
__device__ __forceinline__ void stage_offsets(int* s_off, float* s_wt, const int* __restrict__ rows,
                                              const int* __restrict__ cols, const float* __restrict__ taps,
                                              int i, int KP, int j_first, int j_last, int count, int stride,
                                              int W) {
    for (int e = threadIdx.x; e < KP * count; e += THREADS) {
        const int tp = e / count, entry = i * KP + tp;
        int col = min(j_first + e % count, j_last) * stride + cols[entry];
        col += (col < 0) ? W : 0;
        col -= (col >= W) ? W : 0;
        s_off[e] = rows[entry] * W + col;
    }
    for (int e = threadIdx.x; e < KP; e += THREADS) s_wt[e] = taps[i * KP + e];
}

// Sample of one staged tap: entries t * P + p of the staged offsets (stride `count`, column n). An
// entry (a bilinear corner, an inverse table's padding) is read only where its weight is not zero,
// which is the same for the whole warp, so a NaN or Inf there reaches no sample that does not use it.
template <typename scalar_t>
__device__ __forceinline__ float staged_sample(const scalar_t* __restrict__ plane, const int* s_off,
                                               const float* s_wt, int t, int P, int count, int n) {
    const int* off = s_off + t * P * count + n;
    float v = 0.f;
    for (int p = 0; p < P; ++p) {
        const float wt = s_wt[t * P + p];
        if (wt != 0.f) v += wt * to_float(plane[off[p * count]]);
    }
    return v;
}

// 16 consecutive operands (TF32 floats or 16-bit patterns) packed for 16-byte shared-memory stores.
template <typename scalar_t> struct Packed16 {
    static const int vectors = 2;
    uint4 v[2];
    __device__ __forceinline__ void pack(const unsigned short* f) {
        unsigned int* w = reinterpret_cast<unsigned int*>(v);
#pragma unroll
        for (int e = 0; e < 8; ++e) w[e] = (unsigned int)f[2 * e] | ((unsigned int)f[2 * e + 1] << 16);
    }
};
template <> struct Packed16<float> {
    static const int vectors = 4;
    uint4 v[4];
    __device__ __forceinline__ void pack(const float* f) {
        unsigned int* w = reinterpret_cast<unsigned int*>(v);
#pragma unroll
        for (int e = 0; e < 16; ++e) w[e] = __float_as_uint(f[e]);
    }
};

template <typename scalar_t>
__device__ __forceinline__ void store_packed(typename Operand<scalar_t>::type* dst, const Packed16<scalar_t>& p) {
#pragma unroll
    for (int v = 0; v < Packed16<scalar_t>::vectors; ++v) reinterpret_cast<uint4*>(dst)[v] = p.v[v];
}

// grid = (ceil(W_out / BN), Co_pad / BM, B * H_out), block = THREADS, dynamic shared memory
// K * P * (BN + 1) * 4 bytes. The reduction index is tap-major, k = t * C + c. `weight` holds the
// operands already (TF32-rounded floats or 16-bit values), (Co_pad, k_pad) with Co_pad a multiple of
// BM, k_pad of BK, zero beyond (Co, K * C), rows 16-byte aligned. Each thread stages 16 consecutive
// reduction values of one tile row or column with 16-byte stores; while slice k0 is multiplied,
// slice k0 + BK is already being read into registers.
template <typename scalar_t>
__global__ void __launch_bounds__(THREADS, 4)
sphere_conv_mma_gather(const scalar_t* __restrict__ x, const typename Operand<scalar_t>::type* __restrict__ weight,
                       const int* __restrict__ rows, const int* __restrict__ cols, const float* __restrict__ taps,
                       scalar_t* __restrict__ out, int B, int C, int H, int W, int Co, int K, int P, int H_out,
                       int W_out, int stride, int k_pad) {
    typedef typename Operand<scalar_t>::type operand_t;
    const int ld = Operand<scalar_t>::ld;
    __shared__ __align__(16) operand_t As[BM * Operand<scalar_t>::ld];
    __shared__ __align__(16) operand_t Bs[BN * Operand<scalar_t>::ld];
    extern __shared__ int s_dynamic[];
    int* s_off = s_dynamic;
    float* s_wt = reinterpret_cast<float*>(s_dynamic + K * P * BN);
    const int b = blockIdx.z / H_out, i = blockIdx.z % H_out;
    const int j0 = blockIdx.x * BN, o0 = blockIdx.y * BM;
    const int tid = threadIdx.x, lane = tid & 31, wm = (tid >> 5) >> 1, wn = (tid >> 5) & 1;
    const int reduction = C * K;
    const long long plane_size = (long long)H * W;
    const scalar_t* xb = x + (long long)b * C * plane_size;
    const int m = tid >> 1, a_half = (tid & 1) * 16;  // A: row m, reduction a_half .. a_half + 15
    const int n = tid % BN, b_half = (tid / BN) * 16;  // B: column n, reduction b_half .. b_half + 15
    const operand_t* a_row = weight + (long long)(o0 + m) * k_pad + a_half;
    const bool slice_has_one_tap = C % BK == 0;
    stage_offsets(s_off, s_wt, rows, cols, taps, i, K * P, j0, W_out - 1, BN, stride, W);
    __syncthreads();
    const int vec = 16 / sizeof(operand_t);
    uint4 ra[Packed16<scalar_t>::vectors];
    scalar_t rb[16];  // raw values, converted to operands only when stored (loads stay in flight)
    const scalar_t zero = to_output<scalar_t>(0.f);
    auto load = [&](int k0) {
#pragma unroll
        for (int v = 0; v < Packed16<scalar_t>::vectors; ++v)
            ra[v] = *reinterpret_cast<const uint4*>(a_row + k0 + v * vec);
        const int k = k0 + b_half;
        if (slice_has_one_tap) {  // one tap t for all 16 values: its offsets read once
            const int t = k / C;
            const scalar_t* plane = xb + (long long)(k - t * C) * plane_size;
            const int* off = s_off + t * P * BN + n;
            const int first = off[0];
            const float w0 = s_wt[t * P];
            if (t >= K) {
#pragma unroll
                for (int u = 0; u < 16; ++u) rb[u] = zero;
            } else if (P == 1 && w0 == 1.f) {  // a nearest tap: the input's own value
#pragma unroll
                for (int u = 0; u < 16; ++u) rb[u] = plane[u * plane_size + first];
            } else {
                float sum[16];
#pragma unroll
                for (int u = 0; u < 16; ++u) sum[u] = (w0 != 0.f) ? w0 * to_float(plane[u * plane_size + first]) : 0.f;
                for (int p = 1; p < P; ++p) {
                    const float wt = s_wt[t * P + p];
                    if (wt == 0.f) continue;
                    const int o = off[p * BN];
#pragma unroll
                    for (int u = 0; u < 16; ++u) sum[u] += wt * to_float(plane[u * plane_size + o]);
                }
#pragma unroll
                for (int u = 0; u < 16; ++u) rb[u] = to_output<scalar_t>(sum[u]);
            }
        } else {
            int t = k / C, c = k - t * C;
#pragma unroll
            for (int u = 0; u < 16; ++u) {
                rb[u] = to_output<scalar_t>(t < K ? staged_sample(xb + c * plane_size, s_off, s_wt, t, P, BN, n)
                                                  : 0.f);
                if (++c == C) c = 0, ++t;
            }
        }
    };
    load(0);
    float acc[2][4][4] = {};
    for (int k0 = 0; k0 < reduction; k0 += BK) {
#pragma unroll
        for (int v = 0; v < Packed16<scalar_t>::vectors; ++v)
            reinterpret_cast<uint4*>(As + m * ld + a_half)[v] = ra[v];
        operand_t operands[16];
#pragma unroll
        for (int u = 0; u < 16; ++u) operands[u] = raw_operand(rb[u]);
        Packed16<scalar_t> pb;
        pb.pack(operands);
        store_packed<scalar_t>(Bs + n * ld + b_half, pb);
        __syncthreads();
        if (k0 + BK < reduction) load(k0 + BK);
        warp_mma(As, Bs, acc, wm, wn, lane, scalar_t());
        __syncthreads();
    }
    for_each_result(acc, wm, wn, lane, [&](int mm, int nn, float v) {
        const int o = o0 + mm, jj = j0 + nn;
        if (o < Co && jj < W_out) out[(((long long)b * Co + o) * H_out + i) * W_out + jj] = to_output<scalar_t>(v);
    });
}

// grid = (ceil(Co / BM), ceil(K * C / BN), ceil(B * H_out / rows_per_block)), block = THREADS, dynamic
// shared memory 2 * K * P * (BK + 1) * 4 bytes. grad_w is (Co, K, C), tap-major like the forward's
// weight. The reduction runs over slices of BK output columns of the block's rows; while one slice is
// multiplied the next is read into registers, through offsets staged one slice ahead (two buffers).
template <typename scalar_t>
__global__ void __launch_bounds__(THREADS, 4)
sphere_conv_mma_weight_grad(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ x,
                            const int* __restrict__ rows, const int* __restrict__ cols,
                            const float* __restrict__ taps, float* __restrict__ grad_w, int B, int C, int H,
                            int W, int Co, int K, int P, int H_out, int W_out, int stride, int rows_per_block) {
    typedef typename Operand<scalar_t>::type operand_t;
    const int ld = Operand<scalar_t>::ld;
    __shared__ __align__(16) operand_t As[BM * Operand<scalar_t>::ld];
    __shared__ __align__(16) operand_t Bs[BN * Operand<scalar_t>::ld];
    extern __shared__ int s_dynamic[];
    const int KP = K * P;
    const int o0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    const int first = blockIdx.z * rows_per_block, last = min(B * H_out, first + rows_per_block);
    if (first >= last) return;
    const int tid = threadIdx.x, lane = tid & 31, wm = (tid >> 5) >> 1, wn = (tid >> 5) & 1;
    const int reduction = C * K, slices_per_row = (W_out + BK - 1) / BK;
    const int kk = tid % BK, row4 = tid / BK;  // both tiles: output column kk, tile row row4 + 4u
    const long long plane_size = (long long)H * W;
    const bool tile_has_one_tap = C % BN == 0;
    auto offsets = [&](int slice) { return s_dynamic + (slice & 1) * KP * (BK + 1); };
    auto stage = [&](int slice) {
        const int row = first + slice / slices_per_row;
        int* s_off = offsets(slice);
        stage_offsets(s_off, reinterpret_cast<float*>(s_off + KP * BK), rows, cols, taps, row % H_out, KP,
                      (slice % slices_per_row) * BK, W_out - 1, BK, stride, W);
    };
    scalar_t ra[PER_THREAD_A], rb[PER_THREAD_B];  // raw values, converted when stored
    const scalar_t zero = to_output<scalar_t>(0.f);
    auto load = [&](int slice) {
        const int row = first + slice / slices_per_row, j = (slice % slices_per_row) * BK + kk;
        const int b = row / H_out, i = row % H_out;
        const int* s_off = offsets(slice);
        const float* s_wt = reinterpret_cast<const float*>(s_off + KP * BK);
        const scalar_t* g = grad_out + (((long long)b * Co + o0 + row4) * H_out + i) * W_out + j;
        const long long g_step = 4LL * H_out * W_out;  // four output channels on
#pragma unroll
        for (int u = 0; u < PER_THREAD_A; ++u)
            ra[u] = (o0 + row4 + 4 * u < Co && j < W_out) ? g[u * g_step] : zero;
        const scalar_t* xb = x + (long long)b * C * plane_size;
        if (tile_has_one_tap) {  // all 64 (t, c) of the tile share t: its offsets read once
            const int t = n0 / C;
            const scalar_t* plane = xb + (long long)(n0 - t * C + row4) * plane_size;
            const int* off = s_off + t * P * BK + kk;
            const float w0 = s_wt[t * P];
            const int first_off = off[0];
            if (P == 1 && w0 == 1.f) {  // a nearest tap: the input's own bits
#pragma unroll
                for (int u = 0; u < PER_THREAD_B; ++u)
                    rb[u] = (j < W_out) ? plane[4 * u * plane_size + first_off] : zero;
                return;
            }
            float sum[PER_THREAD_B];
#pragma unroll
            for (int u = 0; u < PER_THREAD_B; ++u)
                sum[u] = (j < W_out && w0 != 0.f) ? w0 * to_float(plane[4 * u * plane_size + first_off]) : 0.f;
            for (int p = 1; p < P; ++p) {
                const float wt = s_wt[t * P + p];
                if (wt == 0.f) continue;
                const int o = off[p * BK];
#pragma unroll
                for (int u = 0; u < PER_THREAD_B; ++u)
                    sum[u] += (j < W_out) ? wt * to_float(plane[4 * u * plane_size + o]) : 0.f;
            }
#pragma unroll
            for (int u = 0; u < PER_THREAD_B; ++u) rb[u] = to_output<scalar_t>(sum[u]);
            return;
        }
        int t = (n0 + row4) / C, c = n0 + row4 - t * C;
#pragma unroll
        for (int u = 0; u < PER_THREAD_B; ++u) {
            rb[u] = to_output<scalar_t>((j < W_out && t < K) ? staged_sample(xb + c * plane_size, s_off, s_wt, t,
                                                                             P, BK, kk) : 0.f);
            for (c += 4; c >= C; c -= C) ++t;
        }
    };
    const int slices = (last - first) * slices_per_row;
    stage(0);
    __syncthreads();
    load(0);
    float acc[2][4][4] = {};
    for (int slice = 0; slice < slices; ++slice) {
#pragma unroll
        for (int u = 0; u < PER_THREAD_A; ++u) As[(row4 + 4 * u) * ld + kk] = raw_operand(ra[u]);
#pragma unroll
        for (int u = 0; u < PER_THREAD_B; ++u) Bs[(row4 + 4 * u) * ld + kk] = raw_operand(rb[u]);
        if (slice + 1 < slices) stage(slice + 1);
        __syncthreads();
        if (slice + 1 < slices) load(slice + 1);
        warp_mma(As, Bs, acc, wm, wn, lane, scalar_t());
        __syncthreads();
    }
    for_each_result(acc, wm, wn, lane, [&](int m, int nn, float v) {
        const int o = o0 + m, tc = n0 + nn;
        if (o < Co && tc < reduction) atomicAdd(grad_w + (long long)o * reduction + tc, v);
    });
}

// The gather kernel's A operands from a weight read as w[o * s_o + c * s_c + t * s_t] (the forward
// weight (Co, C, K), or its transpose for the input gradient, without a copy): out (co_pad, k_pad),
// tap-major k = t * C + c, zero beyond (Co, K * C), float rounded to TF32. One thread per element.
template <typename scalar_t>
__global__ void sphere_conv_mma_operands(const scalar_t* __restrict__ w, typename Operand<scalar_t>::type* __restrict__ out,
                                         int Co, int C, int K, int s_o, int s_c, int s_t, int co_pad, int k_pad) {
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)co_pad * k_pad) return;
    const int o = e / k_pad, k = e % k_pad;
    float v = 0.f;
    if (o < Co && k < C * K) {
        const int t = k / C, c = k - t * C;
        v = to_float(w[(long long)o * s_o + (long long)c * s_c + (long long)t * s_t]);
    }
    out[e] = to_operand<scalar_t>(v);
}

#define SPHSAL_INSTANTIATE_MMA(T)                                                                           \
    template __global__ void sphere_conv_mma_gather<T>(const T*, const Operand<T>::type*, const int*,       \
                                                       const int*, const float*, T*, int, int, int, int,    \
                                                       int, int, int, int, int, int, int);                  \
    template __global__ void sphere_conv_mma_weight_grad<T>(const T*, const T*, const int*, const int*,     \
                                                            const float*, float*, int, int, int, int, int,  \
                                                            int, int, int, int, int, int);                  \
    template __global__ void sphere_conv_mma_operands<T>(const T*, Operand<T>::type*, int, int, int, int, int,  \
                                                         int, int, int);

SPHSAL_INSTANTIATE_MMA(float)
SPHSAL_INSTANTIATE_MMA(half_t)
SPHSAL_INSTANTIATE_MMA(bf16_t)
