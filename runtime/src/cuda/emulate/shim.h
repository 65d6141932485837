// Force-included (`-include shim.h`) before every kernel module when the host emulator
// (emulate.rs) compiles the CUDA sources as plain C++17: CUDA's qualifiers and built-in
// variables, defined so that each module builds and runs one CUDA thread per call.
//
// The launch coordinates are thread_local so that emulated launches on different host threads
// (parallel tests) do not disturb each other, and static so that each module has its own: the
// launch loop (`emu_launch`, instantiated in the same translation unit as the kernel it runs)
// sets the copy that module's kernels read.
#pragma once

// The kernels' f32 functions (fmaf, expf, ...) and C++'s float overloads of sqrt, exp, ... in
// the global namespace, as CUDA declares them.
#include <math.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// One block runs at a time, one thread after another, so block-shared memory is one variable
// per host thread; what it can not give, __syncthreads, is refused below.
#define __shared__ static thread_local

struct dim3 {
    unsigned int x, y, z;
};

static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

// Threads run one after another, so a barrier can never be reached by all of them: a kernel
// that synchronizes stops at its first barrier and its launch fails (emu_launch returns 1).
struct EmuNeedsSync {};

[[noreturn]] inline void __syncthreads() { throw EmuNeedsSync{}; }

// A kernel parameter from the bytes `cuLaunchKernel`'s kernelParams entry points at.
template <typename T> inline T& emu_arg(void* bytes) { return *static_cast<T*>(bytes); }

// Runs `thread` (one call of the kernel) for every thread of every block, in order; 1 if the
// kernel needs a barrier.
template <typename Thread>
inline int emu_launch(const unsigned int* grid, const unsigned int* block, Thread thread) {
    gridDim = dim3{grid[0], grid[1], grid[2]};
    blockDim = dim3{block[0], block[1], block[2]};
    try {
        for (unsigned int bz = 0; bz < grid[2]; ++bz) {
            for (unsigned int by = 0; by < grid[1]; ++by) {
                for (unsigned int bx = 0; bx < grid[0]; ++bx) {
                    blockIdx = dim3{bx, by, bz};
                    for (unsigned int tz = 0; tz < block[2]; ++tz) {
                        for (unsigned int ty = 0; ty < block[1]; ++ty) {
                            for (unsigned int tx = 0; tx < block[0]; ++tx) {
                                threadIdx = dim3{tx, ty, tz};
                                thread();
                            }
                        }
                    }
                }
            }
        }
    } catch (const EmuNeedsSync&) {
        return 1;
    }
    return 0;
}
