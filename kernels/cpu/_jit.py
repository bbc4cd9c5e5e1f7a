"""``no_refcount``: the Numba compile flags of kernels that slice many short rows.

Numba's arrays carry a reference count (its runtime, NRT). Each slice view made inside a
compiled function increments it on creation and decrements it on release, two atomic
operations, about 30–40 ns a view here. A kernel whose loops run over short rows (a transform
of a 16×16 image makes ~100 views per channel, each used by a loop of 5–72 elements) then spends
most of its time on those counts: the F(4×4) input transform of (64, 32, 16, 16) took 13.0 ms
with them and 4.3 ms without (measured), the F(2×2) transforms 1.5–2× less.

``no_refcount`` compiles a function without the runtime (``_nrt=False``): its views are plain
pointers. Such a function cannot allocate (no ``np.empty``), so its scratch arrays come from the
caller, a thin ``njit`` wrapper that allocates them once per call. The views never outlive the
call, so no count is needed: the arrays they point into are held by the caller.
"""
from numba import njit


def no_refcount_with(**options):
    """``no_refcount`` with more Numba options (``fastmath=...``)."""
    return njit(cache=True, nogil=True, _nrt=False, **options)


no_refcount = no_refcount_with()
