// cuda_emu.h: just enough of CUDA C++ to compile a minicnn .cu file with g++ and run it on the CPU.
//
// The emulator force-includes this header (g++ -include cuda_emu.h) in front of the SAME .cu text
// that NVRTC compiles for the GPU. Python (kernels/emulator/_build.py) appends one C-ABI launcher
// per `extern "C" __global__` kernel that calls ::emu::launch below.
//
// Execution model:
//   * Blocks run one after another. When the source uses neither __syncthreads nor __shared__,
//     blocks are spread over a few OS threads (they cannot interact, so this is safe).
//   * Threads of a block: a plain loop when the source has no __syncthreads; otherwise one fiber
//     per thread (own stack, hand-written x86-64 context switch), scheduled round-robin in a
//     scrambled order; __syncthreads() yields to the scheduler. When some threads wait at a
//     barrier while others exited, or wait at different __syncthreads() call sites, the launch
//     fails with an error (instead of hanging, or silently passing as a plain loop would).
//   * Under ThreadSanitizer (-fsanitize=thread) every thread of a block is a real OS thread and
//     __syncthreads() is a real barrier, so TSan sees races between threads of a block.
//   * __shared__ variables live in the ELF section "emu_shared" (one copy: blocks that use shared
//     memory never run concurrently). The whole section, and the dynamic shared memory, is
//     filled with 0xFF bytes (NaN as float/double, -1 as int) at the start of every block, so a
//     read before a barrier-protected write shows up as a wrong result.
//
// Not emulated: warps (no __shfl_*, __ballot_*, warp-synchronous code), the GPU memory model
// and its caches, FMA contraction, performance.
#pragma once

#include <math.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <pthread.h>
#include <sys/mman.h>
#include <xmmintrin.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define EMU_OS_THREADS 1  // threads of a block are OS threads so that TSan sees their races
#endif

#define MINICNN_EMU 1

// NVRTC has none of these macros (a kernel must write e.g. __int_as_float(0x7f800000) for +inf):
// hide them so that code the GPU compiler rejects does not compile here either.
#undef INFINITY
#undef NAN
#undef HUGE_VAL
#undef HUGE_VALF
#undef HUGE_VALL
#undef FLT_MAX
#undef FLT_MIN
#undef FLT_EPSILON
#undef DBL_MAX
#undef DBL_MIN
#undef DBL_EPSILON
#undef INT_MAX
#undef INT_MIN
#undef UINT_MAX
#undef LLONG_MAX
#undef LLONG_MIN

// ---------------------------------------------------------------- keywords
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
// Block-scope `__shared__ T x[N];` becomes a static variable in the section "emu_shared".
// (`extern __shared__ T x[];` is rewritten to `extern T x[];` by the loader, which appends a
// definition aliased to emu_dyn_smem.)
#define __shared__ static __attribute__((section("emu_shared"), aligned(16)))

#define EMU_MAX_SHARED_BYTES 49152

// The dynamic shared memory of the running block (`extern __shared__` arrays alias it).
extern "C" {
__attribute__((visibility("hidden"), aligned(16))) unsigned char emu_dyn_smem[EMU_MAX_SHARED_BYTES];
}
// Makes sure the section exists, so that the linker defines __start_/__stop_emu_shared.
__attribute__((used, section("emu_shared"), aligned(16))) static unsigned char emu_shared_anchor[16];
extern "C" unsigned char __start_emu_shared[] __attribute__((visibility("hidden")));
extern "C" unsigned char __stop_emu_shared[] __attribute__((visibility("hidden")));

// ---------------------------------------------------------------- built-in variables and types
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
// Set by the scheduler for the running thread (thread_local: blocks may run on several cores).
static thread_local uint3 threadIdx;
static thread_local uint3 blockIdx;
static thread_local dim3 blockDim;
static thread_local dim3 gridDim;
static constexpr int warpSize = 32;

// ---------------------------------------------------------------- math and conversion helpers
template <class A, class B,
          class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
    using T = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<T>::value) return std::fmin(T(a), T(b));
    else return T(b) < T(a) ? T(b) : T(a);
}
template <class A, class B,
          class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
    using T = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<T>::value) return std::fmax(T(a), T(b));
    else return T(a) < T(b) ? T(b) : T(a);
}
template <class T> inline T __ldg(const T* p) { return *p; }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline int __float2int_rn(float x) { return (int)nearbyintf(x); }  // default rounding: to nearest even
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline int __double2int_rn(double x) { return (int)nearbyint(x); }
inline int __double2int_rz(double x) { return (int)x; }
inline int __double2int_rd(double x) { return (int)floor(x); }
inline int __double2int_ru(double x) { return (int)ceil(x); }
inline long long __float2ll_rn(float x) { return (long long)nearbyintf(x); }
inline long long __double2ll_rn(double x) { return (long long)nearbyint(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline double __int2double_rn(int x) { return (double)x; }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline unsigned int __float_as_uint(float x) { unsigned int i; std::memcpy(&i, &x, 4); return i; }
inline double __longlong_as_double(long long x) { double d; std::memcpy(&d, &x, 8); return d; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    return __builtin_bswap32(x);
}

// ---------------------------------------------------------------- atomics
// Real atomics (GCC __atomic builtins, understood by TSan): blocks may run on several cores.
// Relaxed order, like the GPU's atomics; __threadfence() is a full fence.
namespace emu {
template <class T, class F> inline T atomic_update(T* p, F f) {
    T old;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    T desired;
    do {
        desired = f(old);
    } while (!__atomic_compare_exchange(p, &old, &desired, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return old;
}
}  // namespace emu

inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) { return emu::atomic_update(p, [v](float o) { return o + v; }); }
inline double atomicAdd(double* p, double v) { return emu::atomic_update(p, [v](double o) { return o + v; }); }
inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
inline unsigned int atomicSub(unsigned int* p, unsigned int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <class T> inline T emu_atomic_max(T* p, T v) { return emu::atomic_update(p, [v](T o) { return o < v ? v : o; }); }
template <class T> inline T emu_atomic_min(T* p, T v) { return emu::atomic_update(p, [v](T o) { return v < o ? v : o; }); }
inline int atomicMax(int* p, int v) { return emu_atomic_max(p, v); }
inline unsigned int atomicMax(unsigned int* p, unsigned int v) { return emu_atomic_max(p, v); }
inline long long atomicMax(long long* p, long long v) { return emu_atomic_max(p, v); }
inline unsigned long long atomicMax(unsigned long long* p, unsigned long long v) { return emu_atomic_max(p, v); }
inline int atomicMin(int* p, int v) { return emu_atomic_min(p, v); }
inline unsigned int atomicMin(unsigned int* p, unsigned int v) { return emu_atomic_min(p, v); }
inline long long atomicMin(long long* p, long long v) { return emu_atomic_min(p, v); }
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) { return emu_atomic_min(p, v); }
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline unsigned int atomicExch(unsigned int* p, unsigned int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicExch(unsigned long long* p, unsigned long long v) {
    return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
inline float atomicExch(float* p, float v) { float old; __atomic_exchange(p, &v, &old, __ATOMIC_RELAXED); return old; }
template <class T> inline T emu_atomic_cas(T* p, T compare, T val) {
    __atomic_compare_exchange_n(p, &compare, val, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return compare;  // the old value (unchanged `compare` when the exchange happened)
}
inline int atomicCAS(int* p, int c, int v) { return emu_atomic_cas(p, c, v); }
inline unsigned int atomicCAS(unsigned int* p, unsigned int c, unsigned int v) { return emu_atomic_cas(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
    return emu_atomic_cas(p, c, v);
}
inline int atomicAnd(int* p, int v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicOr(unsigned long long* p, unsigned long long v) {
    return __atomic_fetch_or(p, v, __ATOMIC_RELAXED);
}
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---------------------------------------------------------------- __syncthreads
// __FILE__/__LINE__ follow the #line directives, so errors name the .cu call site.
#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)

#include "cuda_emu_runtime.h"
