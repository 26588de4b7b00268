// Shared by the spherical-convolution kernels (sphere_conv.cu, sphere_conv_mma.cu): 16-bit scalar types
// and their conversions (float -> bfloat16 is a hardware cvt in sphere_conv_mma.cu, sm_80 and newer).
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
