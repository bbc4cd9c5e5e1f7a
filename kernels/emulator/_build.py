"""Compile a CUDA C module with g++ against ``cuda_emu.h`` and load it with ctypes.

Builds are cached by content hash (source, options, compiler flags and version, header text) in
``$MINICNN_EMU_CACHE`` or ``~/.cache/minicnn/emu``. Each build is written under a temporary name
and renamed into place, so parallel test processes never load a half-written library.

Sanitizer modes (``MINICNN_EMU_SANITIZE``):

- ``address,undefined`` (or either alone): ASan/UBSan instrumented builds; shared-memory arrays
  get ASan redzones (``-fsanitize-sections=emu_shared``);
- ``thread``: a TSan build in which the threads of a block are OS threads.

The sanitizer runtime must be the first library of the process (``LD_PRELOAD``); see README.md.
"""
import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile

from . import _source

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "cuda_emu.h")
HEADERS = ("cuda_emu.h", "cuda_emu_runtime.h")

BASE_FLAGS = ("-std=c++17", "-shared", "-fPIC", "-pthread", "-fno-strict-aliasing", "-fvisibility=hidden")
OPT_FLAGS = ("-O2",)
SANITIZER_OPT_FLAGS = ("-O1", "-g", "-fno-omit-frame-pointer")
SANITIZER_FLAGS = {
    "address": ("-fsanitize=address", "-fsanitize-sections=emu_shared"),
    "undefined": ("-fsanitize=undefined", "-fno-sanitize-recover=all"),
    "thread": ("-fsanitize=thread",),
}
# symbol that proves the runtime was preloaded, and the library to preload
SANITIZER_RUNTIME = {"address": ("__asan_init", "libasan.so"), "thread": ("__tsan_init", "libtsan.so")}

_loaded = {}  # cache key -> ctypes.CDLL


class EmuCompileError(RuntimeError):
    """g++ rejected a module; the message carries g++'s diagnostics (pointing at the .cu lines)."""


def compiler():
    return os.environ.get("MINICNN_EMU_CXX", "g++")


@functools.lru_cache(maxsize=None)
def compiler_version(cxx):
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def sanitize_mode():
    """The sanitizers asked for by ``MINICNN_EMU_SANITIZE``, as a sorted tuple (empty: none)."""
    raw = os.environ.get("MINICNN_EMU_SANITIZE", "").strip()
    mode = tuple(sorted({s.strip() for s in raw.split(",") if s.strip()}))
    unknown = set(mode) - set(SANITIZER_FLAGS)
    if unknown:
        raise ValueError(f"MINICNN_EMU_SANITIZE={raw!r}: unknown sanitizer(s) {sorted(unknown)}; "
                         "use 'address,undefined' or 'thread'")
    if "thread" in mode and len(mode) > 1:
        raise ValueError(f"MINICNN_EMU_SANITIZE={raw!r}: 'thread' cannot be combined with other sanitizers")
    return mode


def compile_flags(mode):
    flags = list(BASE_FLAGS) + list(SANITIZER_OPT_FLAGS if mode else OPT_FLAGS)
    for m in mode:
        flags += SANITIZER_FLAGS[m]
    return tuple(flags)


def cache_dir():
    d = os.environ.get("MINICNN_EMU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minicnn", "emu")
    os.makedirs(d, exist_ok=True)
    return d


def _header_text():
    parts = []
    for h in HEADERS:
        with open(os.path.join(HERE, h)) as f:
            parts.append(f.read())
    return "\n".join(parts)


def _atomic_write(path, data):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=os.path.basename(path))
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.replace(tmp, path)


def check_runtime(mode):
    """Raise a clear error when an instrumented library could not be loaded into this process."""
    for m in mode:
        if m not in SANITIZER_RUNTIME:
            continue
        symbol, lib = SANITIZER_RUNTIME[m]
        if not hasattr(ctypes.CDLL(None), symbol):
            raise RuntimeError(
                f"MINICNN_EMU_SANITIZE={','.join(mode)} needs the {m} sanitizer runtime loaded first, e.g. "
                f"LD_PRELOAD=$({compiler()} -print-file-name={lib}) "
                + ("ASAN_OPTIONS=detect_leaks=0 " if m == "address" else "")
                + "python -m pytest ...  (see kernels/emulator/README.md)")


def build(code, options, kernels):
    """Compile ``code`` (+ generated launchers for ``kernels``); return the loaded ctypes library."""
    mode = sanitize_mode()
    flags = compile_flags(mode)
    cxx = compiler()
    barriers = _source.uses_barriers(code)
    parallel_ok = not barriers and not _source.uses_shared(code)
    body, dyn_defs = _source.rewrite_extern_shared(code)
    full = (body.rstrip("\n") + "\n" + _source.launcher_source(kernels, barriers, parallel_ok) + dyn_defs + "\n")
    key_text = "\0".join([full, repr(tuple(options)), repr(flags), compiler_version(cxx), _header_text()])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:32]
    if key in _loaded:
        return _loaded[key]
    check_runtime(mode)
    d = cache_dir()
    so = os.path.join(d, f"{key}{'-' + '-'.join(mode) if mode else ''}.so")
    if not os.path.exists(so):
        src = os.path.join(d, f"{key}.cu")
        _atomic_write(src, full)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".so")
        os.close(fd)
        cmd = [cxx, *flags, "-I", HERE, "-include", HEADER, "-x", "c++", src, "-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            os.unlink(tmp)
            raise EmuCompileError(f"g++ could not compile the module (kernels: {', '.join(kernels) or 'none'}):\n"
                                  f"{proc.stderr.strip()}\ncommand: {' '.join(cmd)}")
        os.replace(tmp, so)
    lib = ctypes.CDLL(so, mode=os.RTLD_NOW | os.RTLD_LOCAL)
    _loaded[key] = lib
    return lib
