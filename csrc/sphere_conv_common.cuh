// Shared by the spherical-convolution kernels (sphere_conv.cu, sphere_conv_mma.cu): 16-bit scalar types,
// conversions and the interpolated read of one stencil tap.
//
// Neighbour-table layout (sphsal.ops.stencils, all contiguous):
//   rows    (H_out, K, P) int32     source rows in [0, H)
//   cols    (H_out, K, P) int32     column offsets relative to j * stride (wrapped modulo W)
//   taps    (H_out, K, P) float32   interpolation weights (P = 1 nearest, 4 bilinear)
// Sample t of output pixel (i, j) = sum_p taps[i,t,p] * x[b, c, rows[i,t,p], (j*stride + cols[i,t,p]) mod W].
//
// half_t (IEEE binary16) and bf16_t (bfloat16) are plain bit containers converted with PTX / integer code,
// so the sources compile with NVRTC (CuPy RawModule) and with `nvcc -ptx` without the cuda_fp16.h /
// cuda_bf16.h headers.

#pragma once

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

