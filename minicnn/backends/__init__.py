"""Backend settings, as ``torch.backends``: ``minicnn.backends.cuda`` holds the knobs of the CUDA
kernels (``allow_tf32``, ``workspace_limit_bytes``)."""
from ..kernels.cuda._gemm import settings as _settings
from . import cuda  # noqa: F401


def use_deterministic_algorithms(mode):
    """Make every op give bit-identical results from run to run on ``cuda`` (like
    ``torch.use_deterministic_algorithms``).

    With ``mode=True`` the backward of ``roi_pool``, ``roi_align`` and ``max_unpool2d`` (the ops
    whose CUDA backward adds with float atomics, in an order that varies between runs) take their
    gather-form kernels instead: each gradient element sums its contributions itself, in a fixed
    order. An op with no deterministic CUDA path raises a RuntimeError naming it. ``cpu`` is always
    deterministic; ``cuda-emu`` follows the same switch so the gather kernels are tested there.

    Args:
        mode: bool.
    """
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms: mode must be a bool, got {mode!r}")
    _settings.deterministic = mode


def are_deterministic_algorithms_enabled():
    """True after ``use_deterministic_algorithms(True)`` (False by default)."""
    return _settings.deterministic


def alert_not_deterministic(op, device):
    """Raise a RuntimeError naming ``op`` when deterministic algorithms are on and ``op`` runs on
    ``cuda`` without a deterministic implementation (ops that add with float atomics call this
    before launching).

    Args:
        op: the op's name, e.g. ``"index_put (backward of x[idx])"``.
        device: a Device or device name; only ``cuda`` raises (``cuda-emu`` runs blocks in order).
    """
    name = getattr(device, "name", device)
    if _settings.deterministic and name == "cuda":
        raise RuntimeError(f"{op}: no deterministic implementation on cuda (it adds with float atomics, whose order "
                           "varies between runs), and minicnn.use_deterministic_algorithms(True) is set; run it on "
                           "'cpu' or turn deterministic algorithms off")
