"""Read kernel signatures out of CUDA C source and generate the C-ABI launchers.

The emulator needs, for every ``extern "C" __global__ void NAME(PARAMS)``, the C type of each
parameter: to check the Python arguments before a launch (CuPy itself does not) and to generate
a launcher that unpacks CuPy's ``void**`` argument array into typed parameters. A regular
expression over the comment-stripped source is enough for the kernels this project writes.
"""
import re
from dataclasses import dataclass

import numpy as np

#: C type (after typedefs are resolved) -> NumPy dtype. ``long`` is 64-bit on Linux and on the GPU.
C_TYPES = {
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
    "bool": np.dtype(np.bool_),
    "signed char": np.dtype(np.int8),
    "unsigned char": np.dtype(np.uint8),
    "short": np.dtype(np.int16),
    "unsigned short": np.dtype(np.uint16),
    "int": np.dtype(np.int32),
    "unsigned int": np.dtype(np.uint32),
    "long": np.dtype(np.int64),
    "unsigned long": np.dtype(np.uint64),
    "long long": np.dtype(np.int64),
    "unsigned long long": np.dtype(np.uint64),
}

# spellings -> canonical names of C_TYPES
_ALIASES = {
    "unsigned": "unsigned int", "signed": "int", "signed int": "int",
    "short int": "short", "unsigned short int": "unsigned short",
    "long int": "long", "unsigned long int": "unsigned long",
    "long long int": "long long", "unsigned long long int": "unsigned long long",
    "signed long long": "long long", "signed long": "long", "signed short": "short",
    "int8_t": "signed char", "uint8_t": "unsigned char", "int16_t": "short", "uint16_t": "unsigned short",
    "int32_t": "int", "uint32_t": "unsigned int", "int64_t": "long long", "uint64_t": "unsigned long long",
    "size_t": "unsigned long long", "ptrdiff_t": "long long",
}

_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}

_TOKEN_RE = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|//[^\n]*|/\*.*?\*/', re.S)
_KERNEL_RE = re.compile(
    r'extern\s+"C"\s+__global__\s+(?:__launch_bounds__\s*\([^()]*\)\s*)?void\s+'
    r'(?:__launch_bounds__\s*\([^()]*\)\s*)?(\w+)\s*\(([^()]*)\)\s*([{;])')
_TYPEDEF_RE = re.compile(r'\btypedef\s+([\w\s]+?)\s+(\w+)\s*;')
_USING_RE = re.compile(r'\busing\s+(\w+)\s*=\s*([\w\s]+?)\s*;')
_EXTERN_SHARED_RE = re.compile(r'\bextern(\s+)__shared__\b')
_EXTERN_SHARED_DECL_RE = re.compile(
    r'\bextern\s+__shared__\s+((?:(?:__align__|alignas)\s*\(\s*\w+\s*\)\s*|[\w:]+\s+)+?)(\w+)\s*\[\s*\]')


@dataclass(frozen=True)
class Param:
    """One kernel parameter: ``ctype`` as written, ``base`` the canonical C type of the value
    (of the pointee for a pointer), ``dtype`` its NumPy dtype."""
    index: int
    name: str
    ctype: str
    base: str
    pointer: bool
    dtype: np.dtype


@dataclass(frozen=True)
class KernelSignature:
    name: str
    params: tuple


def strip_comments(code):
    """``code`` with comments blanked out (newlines kept, so offsets and line numbers hold)."""
    def blank(m):
        s = m.group(0)
        if s.startswith(("//", "/*")):
            return re.sub(r"[^\n]", " ", s)
        return s
    return _TOKEN_RE.sub(blank, code)


def _typedefs(code):
    table = {}
    for base, name in _TYPEDEF_RE.findall(code):
        table[name] = " ".join(base.split())
    for name, base in _USING_RE.findall(code):
        table[name] = " ".join(base.split())
    return table


def canonical_type(words, typedefs):
    """The canonical C type of a list of type words (``['unsigned']`` -> ``'unsigned int'``)."""
    text = " ".join(words)
    for _ in range(8):  # typedef chains
        if text in typedefs:
            text = typedefs[text]
        elif text in _ALIASES:
            text = _ALIASES[text]
        else:
            break
    return text


def _parse_param(kernel, index, text, typedefs):
    tokens = re.findall(r"[A-Za-z_]\w*|\*|&|\[|\]", text)
    if "&" in tokens or "[" in tokens:
        raise ValueError(f"kernel {kernel!r}: parameter {index} ({text.strip()!r}) is not supported by the emulator")
    stars = tokens.count("*")
    words = [t for t in tokens if t not in _QUALIFIERS and t != "*"]
    if len(words) < 2:
        raise ValueError(f"kernel {kernel!r}: cannot parse parameter {index} ({text.strip()!r})")
    name, type_words = words[-1], words[:-1]
    base = canonical_type(type_words, typedefs)
    if stars > 1 or base not in C_TYPES:
        raise ValueError(f"kernel {kernel!r}: parameter {index} ({text.strip()!r}) has a type the emulator "
                         f"does not support; supported: pointers to or values of {', '.join(C_TYPES)}")
    ctype = ("const " if "const" in tokens else "") + " ".join(type_words) + ("*" if stars else "")
    return Param(index, name, ctype, base, bool(stars), C_TYPES[base])


def parse_kernels(code):
    """``{name: KernelSignature}`` of every ``extern "C" __global__`` kernel in ``code``."""
    clean = strip_comments(code)
    typedefs = _typedefs(clean)
    kernels = {}
    for m in _KERNEL_RE.finditer(clean):
        name, plist = m.group(1), m.group(2).strip()
        parts = [] if plist in ("", "void") else plist.split(",")
        params = tuple(_parse_param(name, i, p, typedefs) for i, p in enumerate(parts))
        if name in kernels and kernels[name].params != params:
            raise ValueError(f"kernel {name!r} is declared twice with different parameters")
        kernels[name] = KernelSignature(name, params)
    return kernels


def uses_barriers(code):
    """Whether some kernel may call ``__syncthreads`` (then threads of a block run as fibers)."""
    return "__syncthreads" in strip_comments(code)


def uses_shared(code):
    """Whether the source declares shared memory (then blocks never run concurrently)."""
    return "__shared__" in strip_comments(code)


def rewrite_extern_shared(code):
    """``extern __shared__ T x[]`` -> ``extern T x[]`` (same lines), plus definitions to append.

    All dynamic shared arrays alias one buffer, ``emu_dyn_smem``, as on the GPU.
    """
    clean = strip_comments(code)
    defs = {}
    for m in _EXTERN_SHARED_DECL_RE.finditer(clean):
        words = re.sub(r"(?:__align__|alignas)\s*\(\s*\w+\s*\)", " ", m.group(1)).split()
        ctype = " ".join(w for w in words if w not in _QUALIFIERS)
        defs[m.group(2)] = ctype
    code = _EXTERN_SHARED_RE.sub(lambda m: "extern" + " " * len(m.group(1)), code)
    lines = [f'extern {t} {n}[EMU_MAX_SHARED_BYTES / sizeof({t})] __attribute__((alias("emu_dyn_smem")));'
             for n, t in sorted(defs.items())]
    return code, "\n".join(lines)


def launcher_source(kernels, barriers, parallel_ok):
    """C++ appended to the module: per kernel a thunk (one thread) and an exported launcher."""
    out = ['#line 1 "<minicnn-emu launchers>"']
    for k in kernels.values():
        unpack = ", ".join(
            f"*({p.base}**)a[{p.index}]" if p.pointer else f"*({p.base}*)a[{p.index}]" for p in k.params)
        out.append(f"static void emu_thunk_{k.name}(void** a) {{ (void)a; {k.name}({unpack}); }}")
        out.append(
            f'extern "C" __attribute__((visibility("default"))) int emu_launch_{k.name}('
            "void** a, const unsigned* grid, const unsigned* block, unsigned long long dyn, "
            "unsigned flags, int nworkers, char* err, int errlen) {\n"
            f"    return ::emu::launch(emu_thunk_{k.name}, a, grid, block, dyn, flags, nworkers, "
            f"{str(barriers).lower()}, {str(parallel_ok).lower()}, err, errlen);\n}}")
    out.append('extern "C" __attribute__((visibility("default"))) unsigned long long emu_static_shared_bytes() '
               "{ return ::emu::static_shared_bytes(); }")
    return "\n".join(out) + "\n"
