"""What the layers of a CNN compute: feature maps, filters, filter responses, activation maximisation.

Every function takes a model and NumPy arrays (or Tensors) and returns NumPy arrays. While it runs,
the model is in eval mode and its parameters do not require grad; afterwards the model's mode,
its parameters' ``requires_grad`` and ``.grad`` are as before and the hooks it registered are
removed (see :func:`inspecting`). Layers are named as in ``model.named_modules()``
(``"features.0"``, ``"classifier.3"``).
"""
import contextlib

import numpy as np

from ..autograd import enable_grad, no_grad
from ..functional import clone as _clone
from ..tensor import Tensor
from . import plots


# ---- shared helpers (also used by minicnn.viz.attribution) --------------------------------------
@contextlib.contextmanager
def inspecting(model):
    """Eval mode and frozen parameters inside the block; the model's previous state afterwards.

    Freezing (``requires_grad = False``) keeps ``backward`` from touching the parameters' ``.grad``;
    eval mode makes every image of a batch independent (BatchNorm uses its running statistics,
    dropout is off), so the gradient of ``Σ_n y[n, c_n]`` w.r.t. image n is that of ``y[n, c_n]``.
    """
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in params:
            p.requires_grad = False
        with enable_grad():
            yield model
    finally:
        for m, training in modes:
            object.__setattr__(m, "training", training)
        for p, flag in params:
            p.requires_grad = flag


def get_layer(model, name, who):
    """The sub-module called ``name`` in ``model.named_modules()`` (a ValueError listing the names otherwise)."""
    modules = dict(model.named_modules())
    if not isinstance(name, str) or name not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"{who}: layer {name!r} is not a module of {type(model).__name__}; its modules are {shown}")
    return modules[name]


def model_device_dtype(model):
    """The device and dtype of the model's first parameter (``cpu``, float32 without parameters)."""
    for p in model.parameters():
        return p.device, p.dtype
    return None, np.float32


def as_input(model, x, who, ndim=4):
    """``x`` (array or Tensor) as a leaf Tensor on the model's device, of the model's float dtype,
    checked to have ``ndim`` dimensions (None: any)."""
    data = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if ndim is not None and data.ndim != ndim:
        raise ValueError(f"{who}: x must be a batch of images (N, C, H, W), got shape {tuple(data.shape)}")
    if data.dtype.kind not in "fiub":
        raise TypeError(f"{who}: x must hold numbers, got dtype {data.dtype}")
    device, dtype = model_device_dtype(model)
    return Tensor(np.array(data, dtype=dtype), device=device)


class _Recorder:
    """Forward hooks that keep the outputs of some layers (one call each) and remove themselves.

    ``detach_for_grad=True`` records a leaf copy of the output that requires grad, so that
    ``backward`` fills ``recorder.outputs[name].grad`` (the rest of the forward pass reads a clone of
    it); ``copy_outputs=True`` records a copy of the output array (later in-place ops, such as
    ResNet's ReLU(inplace=True) after a batch norm, do not reach it), else the output itself.
    ``stop=True`` ends the forward pass after the last layer has run (nothing after it is computed).
    """

    class Stop(Exception):
        """Raised by a hook to end the forward pass early."""

    def __init__(self, model, names, who, detach_for_grad=False, stop=False, copy_outputs=False):
        self.who, self.names, self.stop, self.copy_outputs = who, list(names), stop, copy_outputs
        self.outputs, self.calls = {}, {n: 0 for n in self.names}
        self.detach_for_grad = detach_for_grad
        self.handles = [get_layer(model, n, who).register_forward_hook(self._hook(n)) for n in self.names]

    def _hook(self, name):
        def hook(module, args, output):
            self.calls[name] += 1
            if not isinstance(output, Tensor):
                raise ValueError(f"{self.who}: layer {name!r} ({type(module).__name__}) returned "
                                 f"{type(output).__name__}, expected a Tensor")
            if self.detach_for_grad:
                leaf = output.detach().requires_grad_()
                self.outputs[name] = leaf
                # the rest of the pass reads a copy of the leaf: an in-place op after the layer
                # (ResNet's ReLU(inplace=True) after a batch norm) may not change a leaf
                output = _clone(leaf)
            elif self.copy_outputs:  # an in-place op after the layer would change the recorded map
                self.outputs[name] = Tensor._from_array(output.data.copy(), output.device)
            else:
                self.outputs[name] = output
            if self.stop and all(self.calls.values()):
                raise _Recorder.Stop
            return output if self.detach_for_grad else None
        return hook

    def run(self, model, x):
        """``model(x)`` (None when stopped early); checks every recorded layer ran exactly once."""
        out = None
        try:
            out = model(x)
        except _Recorder.Stop:
            pass
        finally:
            for h in self.handles:
                h.remove()
        for name, n in self.calls.items():
            if n != 1:
                raise ValueError(f"{self.who}: layer {name!r} ran {n} times in one forward pass; "
                                 "choose a module that is called exactly once")
        return out


# ---- feature maps and filters ---------------------------------------------------------------
def feature_maps(model, x, layers=None, *, _who="feature_maps"):
    """The output of each named layer for input ``x``: ``{name: array}``, through forward hooks.

    Args:
        model: an ``nn.Module``.
        x: its input, e.g. ``(N, C, H, W)`` (array or Tensor).
        layers: a name or a list of names from ``model.named_modules()``; None: every module
            without children, in registration order.

    Returns: ``{name: activation}``, each ``(N, C_l, H_l, W_l)`` for a convolutional layer or
    ``(N, F_l)`` for a dense one, in the order of ``layers``. No graph is recorded.
    """
    if layers is None:
        layers = [n for n, m in model.named_modules() if n and not m._modules]
    elif isinstance(layers, str):
        layers = [layers]
    with inspecting(model), no_grad():
        rec = _Recorder(model, layers, _who, copy_outputs=True)
        rec.run(model, as_input(model, x, _who, ndim=None))
    return {n: rec.outputs[n].numpy() for n in layers}


def filter_responses(model, x, layer):
    """How strongly each channel (filter) of ``layer`` responds to each image: the mean of its map.

    ``r[n, k] = mean over (i, j) of A_k(i, j)`` for an output ``A`` of shape ``(N, K, h, w)``
    (``A[n, k]`` itself for a dense output ``(N, K)``). Returns ``(N, K)``.
    """
    a = feature_maps(model, x, [layer], _who="filter_responses")[layer]
    return a.reshape(a.shape[0], a.shape[1], -1).mean(axis=2) if a.ndim > 2 else a


def plot_feature_maps(maps, path, index=0, image=None, max_channels=16, ncols=8, title=None):
    """One grid per layer of the maps of image ``index``: ``maps`` is :func:`feature_maps`'s dict.

    Layers whose output has no spatial axes (dense layers) are left out. Within a layer every
    channel shares one colour scale (``viridis``: dark low, yellow high), so strong and weak
    channels can be compared; at most ``max_channels`` channels are shown. ``image`` (C, H, W),
    when given, is drawn first.
    """
    plt = plots._plt()
    spatial = [(n, np.asarray(a)[index]) for n, a in maps.items() if np.ndim(a) == 4]
    if not spatial:
        raise ValueError(f"plot_feature_maps: no layer has spatial maps (N, C, H, W); shapes "
                         f"{ {n: np.shape(a) for n, a in maps.items()} }")
    blocks = ([("input", np.asarray(image)[None, 0])] if image is not None else []) + spatial
    rows = [-(-min(len(a), max_channels) // ncols) for _, a in blocks]
    fig = plt.figure(figsize=(1.3 * ncols, 1.45 * sum(rows) + 0.5 * len(blocks) + 0.6))
    subfigs = fig.subfigures(len(blocks) + 1, 1, height_ratios=[0.4] + [r + 0.35 for r in rows], squeeze=False)[:, 0]
    subfigs[0].suptitle(title or "feature maps, layer by layer", fontsize=11)
    for sub, (name, a), nrows in zip(subfigs[1:], blocks, rows):
        a = a[:max_channels]
        axes = sub.subplots(nrows, ncols, squeeze=False)
        lo, hi = float(a.min()), float(a.max())
        for k, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if k < len(a):
                ax.imshow(a[k], cmap="gray" if name == "input" else "viridis", vmin=lo, vmax=hi)
                if name != "input":
                    ax.set_title(f"ch {k}", fontsize=7, pad=2)
        what = "input image" if name == "input" else f"{name}: {a.shape[0]} map(s) of {a.shape[1]}×{a.shape[2]}"
        sub.suptitle(f"{what}, values {lo:.2f} … {hi:.2f}", fontsize=9)
    return plots._save(fig, path)


def plot_filters(weight, path, ncols=8, max_filters=64, title=None):
    """Convolution filters ``(C_out, C_in, kh, kw)`` as images, each normalised on its own.

    Filter ``f`` is drawn as ``(f − min f) / (max f − min f)`` (min and max over all its
    weights): black is its most negative weight, white its most positive. With ``C_in`` 3 a
    filter is an RGB image; with 1 a grey one; otherwise each input channel is a grey image in
    its own row (``max_filters`` rows at most).
    """
    plt = plots._plt()
    w = weight.numpy() if isinstance(weight, Tensor) else np.asarray(weight)
    if w.ndim != 4:
        raise ValueError(f"plot_filters: weight must be (C_out, C_in, kh, kw), got shape {w.shape}")
    w = w[:max_filters].astype(np.float64)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - lo
    w = (w - lo) / np.where(span > 0, span, 1.0)
    c_out, c_in = w.shape[:2]
    if c_in in (1, 3):
        cols = min(ncols, c_out)
        nrows = -(-c_out // cols)
        pictures = [(f"{k}", w[k, 0] if c_in == 1 else np.transpose(w[k], (1, 2, 0))) for k in range(c_out)]
    else:
        nrows, cols = c_out, c_in
        pictures = [(f"{k}.{c}", w[k, c]) for k in range(c_out) for c in range(c_in)]
    fig, axes = plt.subplots(nrows, cols, figsize=(1.1 * cols, 1.25 * nrows + 0.5), squeeze=False)
    for ax, item in zip(axes.ravel(), pictures + [None] * (axes.size - len(pictures))):
        ax.axis("off")
        if item is not None:
            ax.imshow(item[1], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(item[0], fontsize=7, pad=2)
    fig.suptitle(title or f"{c_out} filters of {c_in}×{w.shape[2]}×{w.shape[3]} (each scaled to its own min…max)",
                 fontsize=9)
    fig.tight_layout()
    return plots._save(fig, path)


# ---- activation maximisation ----------------------------------------------------------------
def activation_maximisation(model, layer, channel, shape, steps=200, lr=0.1, l2=1e-2, seed=0, init_std=0.01):
    """An input that excites one unit or channel of ``layer`` (Erhan et al. 2009; Simonyan et al. 2014).

    Gradient ascent on ``J(x) = a(x) − l2 · ‖x‖²`` from ``x_0 ~ N(0, init_std²)``
    (``np.random.default_rng(seed)``), ``x_{t+1} = x_t + lr · ∇J(x_t)``, where ``a(x)`` is the mean
    over positions of channel ``channel`` of the layer's output ``(1, K, h, w)``, or unit
    ``channel`` of a dense output ``(1, K)``. The L2 penalty keeps ``x`` bounded: for a linear unit
    ``a = w·x + b`` the ascent converges to ``x* = w / (2 · l2)``, the direction of the weights.

    Args:
        shape: one input without the batch axis, e.g. ``(1, 28, 28)``.

    Returns: ``(image, history)``: ``image`` of ``shape``, ``history`` ``(steps + 1,)`` with
    ``J(x_0), …, J(x_steps)``; with a small enough ``lr`` it increases.
    """
    who = "activation_maximisation"
    if not (isinstance(steps, int) and steps >= 0 and lr > 0 and l2 >= 0):
        raise ValueError(f"{who}: need steps >= 0 (int), lr > 0, l2 >= 0, got steps={steps!r}, lr={lr}, l2={l2}")
    get_layer(model, layer, who)
    device, dtype = model_device_dtype(model)
    x = np.random.default_rng(seed).standard_normal((1, *shape)) * init_std
    history = []
    with inspecting(model):
        for t in range(steps + 1):
            xt = Tensor(x.astype(dtype), device=device, requires_grad=True)
            rec = _Recorder(model, [layer], who, stop=True)
            rec.run(model, xt)
            a = rec.outputs[layer]
            if not 0 <= channel < a.shape[1]:
                raise ValueError(f"{who}: channel {channel} is out of range for layer {layer!r} with output "
                                 f"shape {a.shape}")
            unit = a[0, channel]
            score = unit.mean() if unit.ndim else unit
            objective = score - (xt * xt).sum() * l2
            history.append(objective.item())
            if t == steps:
                break
            objective.backward()
            x = x + lr * xt.grad.numpy().astype(np.float64)
    return x[0], np.array(history)
