"""Input checks shared by the layers: messages name the layer, what it expected, what it got."""

import numpy as np


def layer_name(module):
    """``Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1))``: the layer as it prints."""
    return f"{type(module).__name__}({module.extra_repr()})"


def check_input(module, x, layout, channels=None, channel_axis=1):
    """Raise ValueError unless ``x`` has ``len(layout)`` axes (``layout`` like ``"NCHW"``) and,
    when ``channels`` is given, ``channels`` entries along ``channel_axis``."""
    dims = tuple(layout)
    if x.ndim != len(dims):
        raise ValueError(
            f"{layer_name(module)}: expected a {len(dims)}-D input {_pretty(dims, channels)}, got shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[channel_axis] != channels:
        what = "features" if layout in ("NC", "NL") and channel_axis == 1 and len(dims) == 2 else "channels"
        raise ValueError(
            f"{layer_name(module)}: expected input with {channels} {what} {_pretty(dims, channels)}, "
            f"got shape {tuple(x.shape)}"
        )


def _pretty(dims, channels):
    return "(" + ", ".join(str(channels) if d == "C" and channels is not None else d for d in dims) + ")"


def check_counts(owner, **values):
    """Raise ValueError ``"<owner>: <name> must be an integer >= 1, got <value>"`` unless every value
    is an integer (Python or NumPy, not bool) >= 1: channel counts, widths, depths of constructors."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{owner}: {name} must be an integer >= 1, got {v!r}")
