"""The CUDA emulator runs correct kernels correctly and catches the bugs it claims to catch.

Kernels live in tests/emulator_cases/*.cu (each file says whether it is deliberately broken).
Detections that need a sanitizer runtime preloaded into Python (ASan: out-of-bounds read; TSan:
missing barrier, non-atomic accumulation) run in subprocesses started with LD_PRELOAD; they are
skipped when g++ has no such runtime. .ci/sanitizers.sh runs this whole file under ASan/UBSan and
under TSan, where the in-process tests of deliberately buggy kernels are skipped.
"""
import functools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from minicnn.kernels.emulator import EmuCompileError, EmuLaunchError, EmuModule, sanitize_mode
from minicnn.kernels.emulator._source import parse_kernels

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "emulator_cases")
SANITIZED = bool(sanitize_mode())
default_mode_only = pytest.mark.skipif(
    SANITIZED, reason="runs a deliberately buggy kernel in-process; the sanitizer subprocess tests cover it")


def case_source(name, scalar="float"):
    """The text of a case, specialised like kernels/cuda/_launch.module_source does."""
    path = os.path.join(CASES, name)
    with open(path) as f:
        return f'typedef {scalar} scalar_t;\n#line 1 "{path}"\n' + f.read()


@functools.lru_cache(maxsize=None)
def kernel(case, name, scalar="float", options=()):
    return EmuModule(case_source(case, scalar), options).get_function(name)


# ---------------------------------------------------------------- correct kernels
@pytest.mark.parametrize("n", [1, 255, 256, 1000])
def test_block_sum_matches_numpy(n):
    k = kernel("block_sum.cu", "block_sum")
    x = np.random.default_rng(n).random(n, dtype=np.float32)
    nblocks = (n + 255) // 256
    out = np.zeros(nblocks, np.float32)
    k((nblocks,), (256,), (x, out, np.int32(n)))
    expected = np.add.reduceat(x.astype(np.float64), np.arange(0, n, 256))
    np.testing.assert_allclose(out, expected, rtol=1e-5)


@pytest.mark.parametrize("scalar,dtype", [("float", np.float32), ("double", np.float64)])
def test_tiled_transpose_with_dynamic_shared_memory(scalar, dtype):
    k = kernel("transpose.cu", "transpose", scalar)
    x = np.random.default_rng(0).random((37, 53)).astype(dtype)
    y = np.zeros((53, 37), dtype)
    k((4, 3), (16, 16), (x, y, np.int32(37), np.int32(53)), shared_mem=16 * 17 * x.itemsize)
    np.testing.assert_array_equal(y, x.T)


def test_atomic_accumulate_over_parallel_blocks():
    # no barrier and no shared memory: blocks run on several cores, atomics must be real
    k = kernel("accumulate.cu", "accumulate_atomic")
    n = 200_000
    total = np.zeros(1, np.float32)
    k(((n + 255) // 256,), (256,), (np.ones(n, np.float32), total, np.int32(n)))
    assert total[0] == n


def test_3d_grid_and_block_indices():
    k = kernel("scalars.cu", "index_map")
    grid, block = (3, 2, 2), (4, 2, 3)
    nb, nt = 12, 24
    out = np.full(nb * nt, -1, np.int32)
    k(grid, block, (out,))
    expected = (np.arange(nb)[:, None] * 1000 + np.arange(nt)[None, :]).ravel()
    np.testing.assert_array_equal(out, expected)


def test_every_scalar_type_reaches_the_kernel():
    k = kernel("scalars.cu", "scalars")
    y = np.zeros(7, np.float64)
    k(1, 1, (y, np.int32(-5), np.uint32(7), np.int64(2**40), np.float32(1.5), np.float64(2.25), np.bool_(True),
             np.uint64(2**40 + 3)))
    np.testing.assert_array_equal(y, [-5, 7, 2**40, 1.5, 2.25, 1, 2**40 + 3])
    # Python scalars are accepted exactly where CuPy's conversion gives the C type:
    # int -> long long, float -> double, bool -> bool
    k(1, 1, (y, np.int32(1), np.uint32(2), 3, np.float32(4), 5.5, False, np.uint64(6)))
    np.testing.assert_array_equal(y, [1, 2, 3, 4, 5.5, 0, 6])


# ---------------------------------------------------------------- bugs caught in the default mode
@default_mode_only
def test_missing_barrier_gives_a_wrong_result():
    k = kernel("block_sum_nosync.cu", "block_sum_nosync")
    x = np.ones(512, np.float32)
    out = np.zeros(2, np.float32)
    k((2,), (256,), (x, out, np.int32(512)))
    assert not np.allclose(out, 256), "poisoned shared memory should have exposed the missing __syncthreads"


def test_barrier_after_early_return_raises():
    k = kernel("divergent_barrier.cu", "early_exit_barrier")
    with pytest.raises(EmuLaunchError, match=r"early_exit_barrier.*barrier divergence.*divergent_barrier\.cu:10"):
        k(1, 64, (np.zeros(64, np.float32), np.int32(40)))


def test_threads_at_different_barriers_raise():
    k = kernel("divergent_barrier.cu", "split_barrier")
    with pytest.raises(EmuLaunchError, match=r"split_barrier.*different.*divergent_barrier\.cu:(20|23)"):
        k(1, 64, (np.zeros(64, np.float32),))


# ---------------------------------------------------------------- argument checks
def scale_args(x=None, y=None, s=np.float32(2), n=np.int32(4)):
    x = np.arange(4, dtype=np.float32) if x is None else x
    y = np.zeros(4, np.float32) if y is None else y
    return (x, y, s, n)


@pytest.mark.parametrize("args,pattern", [
    (scale_args(s=2.0), r"argument 2 \('s', C type 'float'\).*Python float.*C double"),
    (scale_args(s=np.float64(2)), r"argument 2 \('s'.*numpy.float32, got numpy.float64"),
    (scale_args(n=4), r"argument 3 \('n', C type 'int'\).*Python int.*long long"),
    (scale_args(n=np.int64(4)), r"argument 3 \('n'.*numpy.int32, got numpy.int64"),
    (scale_args(x=np.arange(4, dtype=np.float64)), r"argument 0 \('x', C type 'const float\*'\).*dtype float64"),
    (scale_args(y=np.zeros(8, np.float32)[::2]), r"argument 1 \('y'.*C-contiguous"),
    (scale_args(x=[0.0, 1.0, 2.0, 3.0]), r"argument 0 .*numpy.ndarray.*got list"),
    (scale_args()[:3], r"takes 4 arguments"),
])
def test_argument_checks(args, pattern):
    k = kernel("scalars.cu", "scale")
    with pytest.raises(TypeError, match=r"kernel 'scale'.*" + pattern):
        k(1, 4, args)


def test_correct_arguments_run():
    k = kernel("scalars.cu", "scale")
    x, y, s, n = scale_args()
    k(1, 4, (x, y, s, n))
    np.testing.assert_array_equal(y, 2 * x)


# ---------------------------------------------------------------- launch limits
@pytest.mark.parametrize("grid,block,shared_mem,pattern", [
    (1, 1025, 0, r"1025 threads|exceeds 1024"),
    (1, (32, 32, 2), 0, r"2048 threads"),
    (1, (1, 1, 65), 0, r"dimension z exceeds 64"),
    ((1, 65536), 1, 0, r"dimension y exceeds 65535"),
    ((1, 1, 65536), 1, 0, r"dimension z exceeds 65535"),
    (2**31, 1, 0, r"dimension x exceeds 2147483647"),
    (0, 1, 0, r"zero"),
    (1, (4, 0), 0, r"zero"),
    (1, 1, 48 * 1024 + 1, r"shared memory"),
])
def test_launch_limits(grid, block, shared_mem, pattern):
    k = kernel("scalars.cu", "scale")
    with pytest.raises(ValueError, match=r"kernel 'scale'.*(" + pattern + ")"):
        k(grid, block, scale_args(), shared_mem=shared_mem)


@pytest.mark.skipif(SANITIZED, reason="ASan pads the static shared memory count with redzones")
def test_static_plus_dynamic_shared_memory_limit():
    k = kernel("block_sum.cu", "block_sum")  # 1 KiB of static shared memory
    x, out = np.zeros(256, np.float32), np.zeros(1, np.float32)
    with pytest.raises(ValueError, match=r"block_sum.*1024 static bytes exceeds 49152"):
        k(1, 256, (x, out, np.int32(256)), shared_mem=48 * 1024 - 512)


# ---------------------------------------------------------------- flush to zero
@pytest.mark.parametrize("options,flushed", [
    ((), False), (("--std=c++17",), False), (("-ftz=true",), True), (("--ftz=true",), True),
    (("--use_fast_math",), True), (("--use_fast_math", "--ftz=false"), False),
])
def test_flush_to_zero_follows_the_nvrtc_options(options, flushed):
    k = kernel("scalars.cu", "scale", options=options)
    denormal = np.float32(1e-39)
    assert denormal != 0 and abs(denormal) < np.finfo(np.float32).tiny
    x, y = np.full(4, denormal, np.float32), np.ones(4, np.float32)
    k(1, 4, (x, y, np.float32(1), np.int32(4)))
    assert (y == 0).all() if flushed else (y == denormal).all()
    assert np.float32(1e-39) * np.float32(1) != 0, "the launch must restore the caller's MXCSR"


# ---------------------------------------------------------------- compiling and parsing
def test_compile_error_names_the_cu_line():
    code = '#line 1 "broken_case.cu"\nextern "C" __global__ void k(float* x) {\n    x[0] = not_declared;\n}\n'
    with pytest.raises(EmuCompileError, match=r"broken_case\.cu:2.*not_declared"):
        EmuModule(code).get_function("k")


def test_signature_parsing():
    code = textwrap.dedent('''
        typedef double scalar_t;
        // extern "C" __global__ void commented_out(int a) {}
        extern "C" __global__ void __launch_bounds__(256) k(const scalar_t* __restrict__ x,
                unsigned n, long long m, bool flag, unsigned int* __restrict__ out) { }
    ''')
    sigs = parse_kernels(code)
    assert list(sigs) == ["k"]
    p = sigs["k"].params
    assert [(q.name, q.base, q.pointer) for q in p] == [
        ("x", "double", True), ("n", "unsigned int", False), ("m", "long long", False),
        ("flag", "bool", False), ("out", "unsigned int", True)]
    assert p[0].ctype == "const scalar_t*"


def test_unsupported_parameter_type_is_rejected():
    with pytest.raises(ValueError, match=r"kernel 'k': parameter 0"):
        EmuModule('extern "C" __global__ void k(float** x) {}')


def test_unknown_kernel_name():
    m = EmuModule(case_source("scalars.cu"))
    with pytest.raises(AttributeError, match=r"no kernel 'nope'.*scale"):
        m.get_function("nope")


@pytest.mark.skipif(SANITIZED, reason="not about sanitizers; instrumented builds are slow")
def test_builds_are_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_EMU_CACHE", str(tmp_path))
    code = 'extern "C" __global__ void cache_probe(int* x) { x[threadIdx.x] = 7; }\n'
    EmuModule(code).get_function("cache_probe")
    EmuModule(code).get_function("cache_probe")
    EmuModule(code + "// changed\n").get_function("cache_probe")
    assert len(list(tmp_path.glob("*.so"))) == 2
    assert not list(tmp_path.glob(".tmp-*")), "temporary files must be renamed into place"


# ---------------------------------------------------------------- sanitizer runs (subprocesses)
def sanitizer_runtime(lib):
    try:
        path = subprocess.run(["g++", f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return None
    return path if os.path.isabs(path) and os.path.exists(path) else None


ASAN = sanitizer_runtime("libasan.so")
TSAN = sanitizer_runtime("libtsan.so")
requires_asan = pytest.mark.skipif(ASAN is None or SANITIZED, reason="needs g++'s libasan.so (and a default-mode run)")
requires_tsan = pytest.mark.skipif(TSAN is None or SANITIZED, reason="needs g++'s libtsan.so (and a default-mode run)")

_PRELUDE = f"""
import numpy as np
from minicnn.kernels.emulator import EmuModule, EmuLaunchError
def load(case, name, scalar="float"):
    path = {CASES!r} + "/" + case
    return EmuModule(f'typedef {{scalar}} scalar_t;\\n#line 1 "{{path}}"\\n' + open(path).read()).get_function(name)
"""

# name -> (sanitizer, snippet)
_RUNS = {
    "asan_oob": ("address,undefined", """
x = np.arange(100, dtype=np.float32); y = np.zeros(100, np.float32)
load("oob_read.cu", "shift_left")(1, 128, (x, y, np.int32(100)))
"""),
    "asan_good": ("address,undefined", """
x = np.random.rand(1000).astype(np.float32); out = np.zeros(4, np.float32)
load("block_sum.cu", "block_sum")(4, 256, (x, out, np.int32(1000)))
assert np.allclose(out, np.add.reduceat(x, [0, 256, 512, 768]), rtol=1e-5)
a = np.random.rand(20, 30); b = np.zeros((30, 20))
load("transpose.cu", "transpose", "double")((2, 2), (16, 16), (a, b, np.int32(20), np.int32(30)), shared_mem=16 * 17 * 8)
assert (b == a.T).all()
try:
    load("divergent_barrier.cu", "early_exit_barrier")(1, 64, (np.zeros(64, np.float32), np.int32(40)))
except EmuLaunchError:
    pass
print("CLEAN")
"""),
    "tsan_nosync": ("thread", """
x = np.ones(128, np.float32); out = np.zeros(1, np.float32)
load("block_sum_nosync.cu", "block_sum_nosync")(1, 128, (x, out, np.int32(128)))
"""),
    "tsan_racy": ("thread", """
x = np.ones(64, np.float32); t = np.zeros(1, np.float32)
load("accumulate.cu", "accumulate_racy")(1, 64, (x, t, np.int32(64)))
"""),
    "tsan_good": ("thread", """
x = np.ones(128, np.float32); out = np.zeros(1, np.float32)
load("block_sum.cu", "block_sum")(1, 128, (x, out, np.int32(128)))
assert out[0] == 128
t = np.zeros(1, np.float32)
load("accumulate.cu", "accumulate_atomic")(2, 64, (x, t, np.int32(128)))
assert t[0] == 128
print("CLEAN")
"""),
}


@pytest.fixture(scope="module")
def sanitizer_runs():
    """Start every sanitizer subprocess at once (they spend most of their time compiling)."""
    procs = {}
    for name, (mode, snippet) in _RUNS.items():
        runtime = ASAN if mode.startswith("address") else TSAN
        if runtime is None:
            continue
        env = dict(os.environ, MINICNN_EMU_SANITIZE=mode, LD_PRELOAD=runtime,
                   ASAN_OPTIONS="detect_leaks=0", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        procs[name] = subprocess.Popen([sys.executable, "-c", _PRELUDE + snippet], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[name] = (p.returncode, out, err)
    return results


@pytest.mark.sanitizer
@requires_asan
def test_asan_reports_out_of_bounds_read(sanitizer_runs):
    rc, out, err = sanitizer_runs["asan_oob"]
    assert rc != 0 and "AddressSanitizer: heap-buffer-overflow" in err, err[-3000:]
    assert "oob_read.cu:5" in err, "the report should point at the .cu line"


@pytest.mark.sanitizer
@requires_asan
def test_asan_is_quiet_on_correct_kernels(sanitizer_runs):
    rc, out, err = sanitizer_runs["asan_good"]
    assert rc == 0 and "CLEAN" in out and "Sanitizer" not in err, err[-3000:]


@pytest.mark.sanitizer
@requires_tsan
def test_tsan_reports_missing_barrier(sanitizer_runs):
    rc, out, err = sanitizer_runs["tsan_nosync"]
    assert "ThreadSanitizer: data race" in err and "block_sum_nosync.cu" in err, err[-3000:]
    assert rc != 0


@pytest.mark.sanitizer
@requires_tsan
def test_tsan_reports_non_atomic_accumulation(sanitizer_runs):
    rc, out, err = sanitizer_runs["tsan_racy"]
    assert "ThreadSanitizer: data race" in err and "accumulate.cu:7" in err, err[-3000:]
    assert rc != 0


@pytest.mark.sanitizer
@requires_tsan
def test_tsan_is_quiet_on_correct_kernels(sanitizer_runs):
    rc, out, err = sanitizer_runs["tsan_good"]
    assert rc == 0 and "CLEAN" in out and "ThreadSanitizer" not in err, err[-3000:]
