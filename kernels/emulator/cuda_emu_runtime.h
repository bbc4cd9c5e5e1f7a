// cuda_emu_runtime.h: the grid scheduler of the CUDA emulator (included by cuda_emu.h).
//
// ::emu::launch(thunk, args, grid, block, ...) runs a kernel over its grid. `thunk(args)` calls the
// kernel once for the current threadIdx/blockIdx; the loader generates one thunk per kernel.
// Three ways to run the threads of a block (see cuda_emu.h for the why):
//   plain loop  - source without __syncthreads; blocks spread over OS threads when the source
//                 has no __shared__ either;
//   fibers      - source with __syncthreads; one stack per thread, cooperative scheduling;
//   OS threads  - under ThreadSanitizer; a real barrier for __syncthreads.
#pragma once

namespace emu {

using Thunk = void (*)(void**);

enum : unsigned {
    FLAG_FTZ = 1u,         // flush denormals to zero (MXCSR FTZ|DAZ), as NVRTC's -ftz=true
    FLAG_ORDER_SHIFT = 1,  // 2 bits: 0 scrambled, 1 ascending, 2 descending thread order
};

#ifndef EMU_FIBER_STACK
#ifdef EMU_ASAN
#define EMU_FIBER_STACK (512 * 1024)
#else
#define EMU_FIBER_STACK (64 * 1024)
#endif
#endif

/// The first error of a launch; later ones are dropped (several threads may fail at once).
struct LaunchError {
    std::mutex m;
    bool set = false;
    std::string msg;
    void put(const std::string& s) {
        std::lock_guard<std::mutex> lk(m);
        if (!set) { set = true; msg = s; }
    }
};

struct Launch {
    Thunk fn;
    void** args;
    dim3 grid, block;
    unsigned long long dyn;  // dynamic shared memory bytes
    unsigned flags;
    LaunchError* error;
};

inline std::string fmt_idx(const uint3& t) {
    return "(" + std::to_string(t.x) + "," + std::to_string(t.y) + "," + std::to_string(t.z) + ")";
}
inline uint3 unflatten(unsigned long long i, const dim3& d) {
    return uint3{unsigned(i % d.x), unsigned((i / d.x) % d.y), unsigned(i / (1ull * d.x * d.y))};
}

/// MXCSR flush-to-zero/denormals-are-zero for the calling OS thread, restored on destruction.
struct FtzScope {
    unsigned old;
    bool on;
    explicit FtzScope(bool enable) : old(_mm_getcsr()), on(enable) {
        if (on) _mm_setcsr(old | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
        else _mm_setcsr(old & ~0x8040u);
    }
    ~FtzScope() { _mm_setcsr(old); }
};

/// Fill shared memory with 0xFF bytes (NaN for float/double, -1 for integers) before a block runs.
/// Not instrumented: under ASan the section holds redzones between variables.
__attribute__((no_sanitize_address, noinline)) inline void poison_shared(unsigned long long dyn) {
    for (volatile unsigned char* p = __start_emu_shared; p < __stop_emu_shared; ++p) *p = 0xFF;
    volatile unsigned char* d = emu_dyn_smem;
    for (unsigned long long i = 0; i < dyn; ++i) d[i] = 0xFF;
}

inline void set_block(const Launch& L, unsigned long long b) {
    blockIdx = unflatten(b, L.grid);
    blockDim = L.block;
    gridDim = L.grid;
}

/// Thread order inside a block: a fixed scramble by default, so that both "reads a higher
/// index" and "reads a lower index" races without a barrier meet 0xFF poison.
inline std::vector<unsigned> thread_order(unsigned nt, unsigned flags) {
    std::vector<unsigned> order(nt);
    for (unsigned i = 0; i < nt; ++i) order[i] = i;
    unsigned mode = (flags >> FLAG_ORDER_SHIFT) & 3u;
    if (mode == 1) return order;
    if (mode == 2) { std::reverse(order.begin(), order.end()); return order; }
    auto mix = [](unsigned long long x) {
        x += 0x9E3779B97F4A7C15ull;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        return x ^ (x >> 31);
    };
    std::sort(order.begin(), order.end(), [&](unsigned a, unsigned b) { return mix(a) < mix(b); });
    return order;
}

// ---------------------------------------------------------------- plain loop
inline void run_block_plain(const Launch& L, unsigned long long b) {
    set_block(L, b);
    for (unsigned z = 0; z < L.block.z; ++z)
        for (unsigned y = 0; y < L.block.y; ++y)
            for (unsigned x = 0; x < L.block.x; ++x) {
                threadIdx = uint3{x, y, z};
                L.fn(L.args);
            }
}

/// Blocks of a kernel without barriers and shared memory, spread over `nworkers` OS threads.
inline void run_grid_plain(const Launch& L, int nworkers, bool parallel_ok) {
    unsigned long long nblocks = 1ull * L.grid.x * L.grid.y * L.grid.z;
    unsigned long long nthreads = nblocks * L.block.x * L.block.y * L.block.z;
    if (!parallel_ok || nworkers <= 1 || nblocks < 2 || nthreads < 4096) {
        for (unsigned long long b = 0; b < nblocks; ++b) {
            if (!parallel_ok) poison_shared(L.dyn);
            run_block_plain(L, b);
        }
        return;
    }
    unsigned long long chunk = std::max<unsigned long long>(1, nblocks / (8ull * nworkers));
    unsigned long long next = 0;  // next block to claim, shared by the workers
    auto work = [&L, &next, chunk, nblocks]() {
        FtzScope ftz((L.flags & FLAG_FTZ) != 0);
        for (;;) {
            unsigned long long b0 = __atomic_fetch_add(&next, chunk, __ATOMIC_RELAXED);
            if (b0 >= nblocks) break;
            unsigned long long b1 = std::min(nblocks, b0 + chunk);
            for (unsigned long long b = b0; b < b1; ++b) run_block_plain(L, b);
        }
    };
    int nspawn = int(std::min<unsigned long long>(nworkers, nblocks)) - 1;
    std::vector<std::thread> pool;
    pool.reserve(nspawn);
    for (int i = 0; i < nspawn; ++i) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
}

#ifndef EMU_OS_THREADS
// ---------------------------------------------------------------- fibers
// A minimal x86-64 System V context switch: push the callee-saved registers, swap stack
// pointers, pop. (glibc's swapcontext makes two system calls per switch: ~0.5 us here.)
extern "C" void emu_ctx_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .globl emu_ctx_switch
    .hidden emu_ctx_switch
    .type emu_ctx_switch, @function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_switch, .-emu_ctx_switch
)");

enum FiberState { F_RUN, F_BARRIER, F_DONE };

struct Fiber {
    void* sp = nullptr;
    unsigned char* stack = nullptr;  // lowest usable address (a guard page lies below)
    FiberState state = F_RUN;
    uint3 tid{};
    const char* bar_file = nullptr;
    int bar_line = 0;
    void* asan_fake = nullptr;
};

struct Scheduler {
    const Launch* L = nullptr;
    std::vector<Fiber> fibers;
    unsigned cur = 0;
    void* main_sp = nullptr;
    void* main_asan_fake = nullptr;
    const void* main_stack_lo = nullptr;
    size_t main_stack_size = 0;
};

static thread_local Scheduler* g_sched = nullptr;

inline unsigned char* alloc_stack() {
    const size_t guard = 4096;
    void* p = mmap(nullptr, EMU_FIBER_STACK + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cannot allocate a fiber stack");
    mprotect(p, guard, PROT_NONE);  // a stack overflow faults instead of corrupting memory
    return static_cast<unsigned char*>(p) + guard;
}

inline void switch_to_main(Scheduler& s, Fiber& f, bool finished) {
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(finished ? nullptr : &f.asan_fake, s.main_stack_lo, s.main_stack_size);
#else
    (void)finished;
#endif
    emu_ctx_switch(&f.sp, s.main_sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(f.asan_fake, &s.main_stack_lo, &s.main_stack_size);
#endif
}

[[noreturn]] inline void fiber_entry() {
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_sched->main_stack_lo, &g_sched->main_stack_size);
#endif
    g_sched->L->fn(g_sched->L->args);
    Scheduler& s = *g_sched;  // read after the kernel: other fibers ran in between
    Fiber& f = s.fibers[s.cur];
    f.state = F_DONE;
    switch_to_main(s, f, true);
    __builtin_trap();  // a finished fiber is never resumed
}

inline void init_fiber(Fiber& f) {
    if (!f.stack) f.stack = alloc_stack();
#ifdef EMU_ASAN
    __asan_unpoison_memory_region(f.stack, EMU_FIBER_STACK);  // an abandoned fiber may leave poison
#endif
    void** sp = reinterpret_cast<void**>(f.stack + EMU_FIBER_STACK);
    *--sp = nullptr;                                        // fiber_entry's (unused) return address
    *--sp = reinterpret_cast<void*>(&fiber_entry);          // where emu_ctx_switch's `ret` lands
    for (int i = 0; i < 6; ++i) *--sp = nullptr;            // rbp rbx r12 r13 r14 r15
    f.sp = sp;
    f.state = F_RUN;
    f.asan_fake = nullptr;
}

inline void resume(Scheduler& s, unsigned i) {
    Fiber& f = s.fibers[i];
    s.cur = i;
    threadIdx = f.tid;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&s.main_asan_fake, f.stack, EMU_FIBER_STACK);
#endif
    emu_ctx_switch(&s.main_sp, f.sp);
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(s.main_asan_fake, nullptr, nullptr);
#endif
}

inline void syncthreads(const char* file, int line) {
    Scheduler* s = g_sched;
    if (!s) {
        std::fprintf(stderr, "cuda_emu: __syncthreads() outside a fiber launch\n");
        std::abort();
    }
    Fiber& f = s->fibers[s->cur];
    f.state = F_BARRIER;
    f.bar_file = file;
    f.bar_line = line;
    switch_to_main(*s, f, false);
}

/// Run every block with one fiber per thread. Returns false (and sets L.error) on divergence.
inline bool run_grid_fibers(const Launch& L) {
    static thread_local Scheduler sched;  // keeps its stacks from one launch to the next
    Scheduler& s = sched;
    s.L = &L;
    unsigned nt = L.block.x * L.block.y * L.block.z;
    if (s.fibers.size() < nt) s.fibers.resize(nt);
    std::vector<unsigned> order = thread_order(nt, L.flags);
    unsigned long long nblocks = 1ull * L.grid.x * L.grid.y * L.grid.z;
    Scheduler* saved = g_sched;
    g_sched = &s;
    bool ok = true;
    for (unsigned long long b = 0; b < nblocks && ok; ++b) {
        set_block(L, b);
        poison_shared(L.dyn);
        for (unsigned i = 0; i < nt; ++i) {
            init_fiber(s.fibers[i]);
            s.fibers[i].tid = unflatten(i, L.block);
        }
        for (;;) {
            for (unsigned i : order)
                if (s.fibers[i].state == F_RUN) resume(s, i);
            // every thread now waits at a barrier or has returned
            int waiting = -1, done = -1, other = -1;
            for (unsigned i = 0; i < nt; ++i) {
                const Fiber& f = s.fibers[i];
                if (f.state == F_DONE) { if (done < 0) done = int(i); continue; }
                if (waiting < 0) waiting = int(i);
                else if (other < 0 && (f.bar_line != s.fibers[waiting].bar_line ||
                                       std::strcmp(f.bar_file, s.fibers[waiting].bar_file) != 0))
                    other = int(i);
            }
            if (waiting < 0) break;  // the block is finished
            const Fiber& w = s.fibers[waiting];
            std::string where = std::string(w.bar_file) + ":" + std::to_string(w.bar_line);
            std::string blk = "block " + fmt_idx(blockIdx) + ": ";
            if (done >= 0) {
                L.error->put("barrier divergence in " + blk + "thread " + fmt_idx(w.tid) +
                             " waits at __syncthreads() (" + where + ") but thread " +
                             fmt_idx(s.fibers[done].tid) + " has already exited the kernel");
                ok = false;
                break;
            }
            if (other >= 0) {
                const Fiber& o = s.fibers[other];
                L.error->put("barrier divergence in " + blk + "thread " + fmt_idx(w.tid) +
                             " waits at __syncthreads() (" + where + ") but thread " + fmt_idx(o.tid) +
                             " waits at a different one (" + o.bar_file + ":" + std::to_string(o.bar_line) + ")");
                ok = false;
                break;
            }
            for (unsigned i = 0; i < nt; ++i) s.fibers[i].state = F_RUN;  // all arrived: release
        }
    }
    g_sched = saved;
    return ok;
}

#else  // EMU_OS_THREADS
// ---------------------------------------------------------------- OS threads (TSan)
struct BarrierAbort {};  // thrown out of __syncthreads() in the other threads after a divergence

struct OsBarrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned total = 0, waiting = 0, exited = 0;
    unsigned long long generation = 0;
    const char* file = nullptr;
    int line = 0;
    uint3 first_waiter{}, first_exited{};
    bool failed = false;
    LaunchError* error = nullptr;

    void fail(const std::string& msg) {
        failed = true;
        error->put("barrier divergence in block " + fmt_idx(blockIdx) + ": " + msg);
        cv.notify_all();
    }
};

static thread_local OsBarrier* g_barrier = nullptr;

inline void syncthreads(const char* file, int line) {
    OsBarrier& b = *g_barrier;
    std::unique_lock<std::mutex> lk(b.m);
    if (b.failed) throw BarrierAbort{};
    std::string here = std::string(file) + ":" + std::to_string(line);
    if (b.exited) {
        b.fail("thread " + fmt_idx(threadIdx) + " waits at __syncthreads() (" + here + ") but thread " +
               fmt_idx(b.first_exited) + " has already exited the kernel");
        throw BarrierAbort{};
    }
    if (b.waiting && (b.line != line || std::strcmp(b.file, file) != 0)) {
        b.fail("thread " + fmt_idx(b.first_waiter) + " waits at __syncthreads() (" + b.file + ":" +
               std::to_string(b.line) + ") but thread " + fmt_idx(threadIdx) + " waits at a different one (" +
               here + ")");
        throw BarrierAbort{};
    }
    if (b.waiting == 0) { b.file = file; b.line = line; b.first_waiter = threadIdx; }
    if (++b.waiting == b.total) {
        b.waiting = 0;
        ++b.generation;
        b.cv.notify_all();
        return;
    }
    unsigned long long gen = b.generation;
    b.cv.wait(lk, [&] { return b.generation != gen || b.failed; });
    if (b.generation == gen) throw BarrierAbort{};
}

inline void thread_exited(OsBarrier& b) {
    std::lock_guard<std::mutex> lk(b.m);
    if (b.exited++ == 0) b.first_exited = threadIdx;
    if (b.waiting && !b.failed)
        b.fail("thread " + fmt_idx(b.first_waiter) + " waits at __syncthreads() (" + b.file + ":" +
               std::to_string(b.line) + ") but thread " + fmt_idx(threadIdx) + " has exited the kernel");
}

/// A reusable barrier for the worker threads between two blocks; the last thread to arrive
/// runs `completion` before anyone leaves (like C++20 std::barrier).
struct BlockBarrier {
    std::mutex m;
    std::condition_variable cv;
    unsigned n, count = 0;
    unsigned long long generation = 0;
    explicit BlockBarrier(unsigned n_) : n(n_) {}
    template <class F> void arrive_and_wait(F completion) {
        std::unique_lock<std::mutex> lk(m);
        unsigned long long gen = generation;
        if (++count == n) {
            completion();
            count = 0;
            ++generation;
            cv.notify_all();
            return;
        }
        cv.wait(lk, [&] { return generation != gen; });
    }
};

struct ThreadPoolRun {
    const Launch* L;
    OsBarrier* bar;
    BlockBarrier* block_end;
    bool* stop;
    unsigned index;
};

inline void* os_thread_main(void* p) {
    ThreadPoolRun& r = *static_cast<ThreadPoolRun*>(p);
    const Launch& L = *r.L;
    FtzScope ftz((L.flags & FLAG_FTZ) != 0);
    g_barrier = r.bar;
    unsigned long long nblocks = 1ull * L.grid.x * L.grid.y * L.grid.z;
    for (unsigned long long b = 0; b < nblocks; ++b) {
        set_block(L, b);
        threadIdx = unflatten(r.index, L.block);
        try {
            L.fn(L.args);
            thread_exited(*r.bar);
        } catch (BarrierAbort&) {
        }
        bool last_block = b + 1 == nblocks;
        r.block_end->arrive_and_wait([&] {  // every thread finished block b: prepare block b + 1
            OsBarrier& bar = *r.bar;
            if (bar.failed) *r.stop = true;
            bar.waiting = bar.exited = 0;
            if (!*r.stop && !last_block) poison_shared(L.dyn);
        });
        if (*r.stop) break;
    }
    g_barrier = nullptr;
    return nullptr;
}

/// One OS thread per thread of the block, reused for every block of the launch (blocks run one
/// after another; a barrier between blocks resets the __syncthreads state and the poison).
inline bool run_grid_threads(const Launch& L) {
    unsigned nt = L.block.x * L.block.y * L.block.z;
    OsBarrier bar;
    bar.total = nt;
    bar.error = L.error;
    BlockBarrier block_end(nt);
    bool stop = false;
    poison_shared(L.dyn);
    std::vector<ThreadPoolRun> runs(nt);
    std::vector<pthread_t> threads(nt);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1 << 20);  // kernels need little stack; 1024 threads x 8 MiB is a lot
    unsigned started = 0;
    for (unsigned i = 0; i < nt; ++i) {
        runs[i] = ThreadPoolRun{&L, &bar, &block_end, &stop, i};
        if (pthread_create(&threads[i], &attr, os_thread_main, &runs[i]) != 0) break;
        ++started;
    }
    pthread_attr_destroy(&attr);
    if (started < nt) {  // the started threads wait for the others at the first barrier: cannot recover
        std::fprintf(stderr, "cuda_emu: could not start %u threads for a block\n", nt);
        std::abort();
    }
    for (unsigned i = 0; i < nt; ++i) pthread_join(threads[i], nullptr);
    return !bar.failed;
}
#endif

/// Run a kernel over its grid; 0 on success, else 1 with a message in `err`.
inline int launch(Thunk fn, void** args, const unsigned* grid, const unsigned* block, unsigned long long dyn,
                  unsigned flags, int nworkers, bool barriers, bool parallel_ok, char* err, int errlen) {
    // Shared memory is one static copy per module: launches from several Python threads
    // (ctypes releases the GIL) take turns.
    static std::mutex launch_mutex;
    std::lock_guard<std::mutex> serial(launch_mutex);
    LaunchError error;
    Launch L{fn, args, dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]), dyn, flags, &error};
    try {
        FtzScope ftz((flags & FLAG_FTZ) != 0);
#ifdef EMU_ASAN
        // reading past the requested dynamic shared memory is an ASan error
        size_t used = (dyn + 7) & ~size_t(7);
        __asan_poison_memory_region(emu_dyn_smem + used, EMU_MAX_SHARED_BYTES - used);
#endif
#ifdef EMU_OS_THREADS
        (void)barriers; (void)nworkers; (void)parallel_ok;
        run_grid_threads(L);
#else
        if (barriers) run_grid_fibers(L);
        else run_grid_plain(L, nworkers, parallel_ok);
#endif
#ifdef EMU_ASAN
        __asan_unpoison_memory_region(emu_dyn_smem, EMU_MAX_SHARED_BYTES);
#endif
    } catch (std::exception& e) {
        error.put(std::string("C++ exception: ") + e.what());
    }
    if (!error.set) return 0;
    std::snprintf(err, size_t(errlen), "%s", error.msg.c_str());
    return 1;
}

/// Bytes of static __shared__ memory in this module (all kernels together).
inline unsigned long long static_shared_bytes() {
    return (unsigned long long)(__stop_emu_shared - __start_emu_shared) - sizeof(emu_shared_anchor);
}

}  // namespace emu
