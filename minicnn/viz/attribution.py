"""Which pixels a classifier's decision rests on: Grad-CAM, Grad-CAM++, saliency, SmoothGrad,
guided backpropagation, occlusion.

Each method explains the score ``y_c`` of one class per image: the logit (before the softmax)
that the model returns, ``(N, K)``. ``class_idx`` None explains the predicted class
``argmax_c y_c``; an int explains that class in every image; a sequence gives one class per image.
Gradients come from one ``backward`` of ``Σ_n y[n, c_n]``: in eval mode the images of a batch are
independent, so image n receives ``∂y[n, c_n] / ∂x_n``. The model is left as it was (mode,
``requires_grad``, ``.grad``, no hooks), as in :mod:`minicnn.viz.features`.
"""
import numpy as np

from ..autograd import no_grad
from ..functional import interpolate
from ..tensor import Tensor
from . import plots
from .features import _Recorder, as_input, inspecting
from ..nn.activation import ReLU


# ---- helpers --------------------------------------------------------------------------------
def _scores(model, x, who, y=None):
    """``model(x)`` (or its output ``y``) checked to be class scores ``(N, K)``."""
    y = model(x) if y is None else y
    if not isinstance(y, Tensor) or y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{who}: the model must return class scores (N, K) for N = {x.shape[0]} images, "
                         f"got {getattr(y, 'shape', type(y).__name__)}")
    return y


def _classes(class_idx, y, who):
    """The class explained in each image, ``(N,)`` int64."""
    n, k = y.shape
    if class_idx is None:
        return y.numpy().argmax(axis=1)
    c = np.broadcast_to(np.asarray(class_idx), (n,)) if np.ndim(class_idx) == 0 else np.asarray(class_idx)
    if c.shape != (n,) or c.dtype.kind not in "iu" or c.min(initial=0) < 0 or c.max(initial=0) >= k:
        raise ValueError(f"{who}: class_idx must be None, an int or N = {n} ints in [0, {k}), got {class_idx!r}")
    return c.astype(np.int64)


def _backward_from(y, c):
    """``backward`` of ``Σ_n y[n, c_n]`` (a one-hot cotangent)."""
    onehot = np.zeros(y.shape, dtype=y.dtype)
    onehot[np.arange(len(c)), c] = 1
    y.backward(onehot)


def _upsample_and_normalise(cam, size, align_corners, normalize):
    """``(N, h, w)`` → bilinear to ``(N, H, W)`` → per image ``(cam − min) / (max − min)`` (0 if flat)."""
    with no_grad():
        cam = interpolate(Tensor(np.ascontiguousarray(cam[:, None])), size=tuple(size), mode="bilinear",
                          align_corners=align_corners).numpy()[:, 0]
    if normalize:
        lo = cam.min(axis=(1, 2), keepdims=True)
        span = cam.max(axis=(1, 2), keepdims=True) - lo
        cam = np.where(span > 0, (cam - lo) / np.where(span > 0, span, 1), 0).astype(cam.dtype)
    return cam


def _activation_and_gradient(model, x, target_layer, class_idx, who):
    """The target layer's output ``A (N, K, h, w)``, ``g = ∂y_c/∂A`` and the classes explained."""
    xt = as_input(model, x, who)
    with inspecting(model):
        rec = _Recorder(model, [target_layer], who, detach_for_grad=True)
        y = _scores(model, xt, who, rec.run(model, xt))
        a = rec.outputs[target_layer]
        if a.ndim != 4:
            raise ValueError(f"{who}: target_layer {target_layer!r} must output maps (N, K, h, w), got {a.shape}")
        c = _classes(class_idx, y, who)
        _backward_from(y, c)
    g = a.grad.numpy() if a.grad is not None else np.zeros(a.shape, a.dtype)
    return a.numpy(), g, c, xt.shape[2:]


# ---- class activation maps ------------------------------------------------------------------
def grad_cam(model, x, target_layer, class_idx=None, align_corners=False, normalize=True):
    """Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for class c lies.

    With ``A`` the output ``(N, K, h, w)`` of ``target_layer`` (a name in ``model.named_modules()``,
    usually the last convolutional block) and ``g = ∂y_c / ∂A``:

        α_k = (1 / (h·w)) Σ_{i,j} g_k(i, j)            (the importance of channel k)
        cam = ReLU(Σ_k α_k A_k)                          (h, w)

    upsampled to the input's ``(H, W)`` with bilinear interpolation
    (``F.interpolate(..., align_corners=align_corners)``, default False: the half-pixel rule) and,
    with ``normalize``, scaled per image to [0, 1] by ``(cam − min) / (max − min)`` (all zeros when
    the map is flat).

    Returns: ``(N, H, W)``.
    """
    a, g, _, size = _activation_and_gradient(model, x, target_layer, class_idx, "grad_cam")
    alpha = g.mean(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkij->nij", alpha, a), 0)
    return _upsample_and_normalise(cam, size, align_corners, normalize)


def grad_cam_plus_plus(model, x, target_layer, class_idx=None, align_corners=False, normalize=True):
    """Grad-CAM++ (Chattopadhay et al. 2018): pixel-wise weights for the channel gradients.

    For the score ``S_c = exp(y_c)`` the second and third derivatives have a closed form in
    ``g = ∂y_c / ∂A`` (the paper's Eq. 19), giving per channel k and position (i, j)

        a_k(i, j) = g² / (2 g² + Σ_{a,b} A_k(a, b) · g³)     (0 where the denominator is 0)
        w_k       = Σ_{i,j} a_k(i, j) · ReLU(g_k(i, j))
        cam       = ReLU(Σ_k w_k A_k)

    (the positive factor ``exp(y_c)`` of ``∂S_c/∂A`` is dropped: it scales the map of an image
    and vanishes in the normalisation). Upsampling and normalisation as :func:`grad_cam`.

    Returns: ``(N, H, W)``.
    """
    a, g, _, size = _activation_and_gradient(model, x, target_layer, class_idx, "grad_cam_plus_plus")
    g2, g3 = g ** 2, g ** 3
    denom = 2 * g2 + a.sum(axis=(2, 3), keepdims=True) * g3
    coef = np.where(denom != 0, g2 / np.where(denom != 0, denom, 1), 0)
    weights = (coef * np.maximum(g, 0)).sum(axis=(2, 3))
    cam = np.maximum(np.einsum("nk,nkij->nij", weights, a), 0)
    return _upsample_and_normalise(cam, size, align_corners, normalize)


# ---- input gradients --------------------------------------------------------------------------
def _input_gradient(model, x, class_idx, who, classes_from=None):
    """``∂y_c / ∂x`` ``(N, C, H, W)`` and the classes (those of ``classes_from`` when given)."""
    xt = as_input(model, x, who)
    xt.requires_grad = True
    with inspecting(model):
        y = _scores(model, xt, who)
        c = classes_from if classes_from is not None else _classes(class_idx, y, who)
        _backward_from(y, c)
    return xt.grad.numpy(), c


def saliency(model, x, class_idx=None):
    """Vanilla gradient saliency (Simonyan et al. 2014): ``max_ch |∂y_c / ∂x_ch(i, j)|``.

    How much a small change of each pixel changes the class score. Returns ``(N, H, W)``.
    """
    g, _ = _input_gradient(model, x, class_idx, "saliency")
    return np.abs(g).max(axis=1)


def smooth_grad(model, x, class_idx=None, n=25, sigma=0.15, seed=0):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the input.

        ḡ = (1/n) Σ_{s<n} ∂y_c / ∂x (x + ε_s),   ε_s ~ N(0, (sigma · (max x − min x))²)
        map = max_ch |ḡ|                                  (N, H, W)

    The range ``max x − min x`` is taken per image. The absolute value is taken *after*
    averaging (signed gradients that disagree between copies cancel), so ``sigma = 0`` gives
    :func:`saliency`. The class is fixed on the clean input. Noise ``s`` is
    ``rng.standard_normal(x.shape)`` for ``s = 0, …, n−1`` with ``rng = np.random.default_rng(seed)``,
    times the per-image standard deviation.
    """
    if not (isinstance(n, int) and n >= 1 and sigma >= 0):
        raise ValueError(f"smooth_grad: need n >= 1 (int) and sigma >= 0, got n={n!r}, sigma={sigma}")
    x0 = as_input(model, x, "smooth_grad").numpy().astype(np.float64)
    with inspecting(model), no_grad():
        c = _classes(class_idx, _scores(model, as_input(model, x0, "smooth_grad"), "smooth_grad"), "smooth_grad")
    std = sigma * (x0.max(axis=(1, 2, 3)) - x0.min(axis=(1, 2, 3)))[:, None, None, None]
    rng = np.random.default_rng(seed)
    total = 0
    for _ in range(n):
        g, _ = _input_gradient(model, x0 + std * rng.standard_normal(x0.shape), None, "smooth_grad", classes_from=c)
        total = total + g.astype(np.float64)
    return np.abs(total / n).max(axis=1).astype(g.dtype)


def guided_backprop(model, x, class_idx=None):
    """Guided backpropagation (Springenberg et al. 2015): ``∂y_c/∂x`` with only positive signals
    through the ReLUs.

    Backward through every ``nn.ReLU`` module passes ``ReLU'(z) · max(gy, 0)``: the gradient where
    the ReLU's input was positive *and* the incoming gradient is positive. It is done with a full
    backward hook on each ``nn.ReLU`` module (removed afterwards) that clamps its ``grad_input``
    at 0. ``F.relu`` called directly inside a ``forward`` is not a module and is not affected
    (nor are other activations). Returns the guided gradient ``(N, C, H, W)``.
    """
    relus = [m for m in model.modules() if isinstance(m, ReLU)]
    handles = [m.register_full_backward_hook(_clamp_grad_input) for m in relus]
    try:
        g, _ = _input_gradient(model, x, class_idx, "guided_backprop")
    finally:
        for h in handles:
            h.remove()
    return g


def _clamp_grad_input(module, grad_input, grad_output):
    return tuple(None if gi is None else Tensor._from_array(gi.device.xp.maximum(gi.data, 0), gi.device)
                 for gi in grad_input)


# ---- occlusion --------------------------------------------------------------------------------
def _starts(size, window, stride):
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def occlusion(model, x, class_idx=None, window=8, stride=4, fill=0.0):
    """Occlusion sensitivity (Zeiler & Fergus 2014): how much the class score drops when a
    ``window × window`` square (all channels) is replaced by ``fill``.

    Windows start at rows/columns ``0, stride, 2·stride, …`` (plus one flush with the bottom/right
    edge when the stride does not reach it, so every pixel is covered). For each window W,
    ``d_W = y_c(x) − y_c(x with W filled)``; the map at pixel p is the mean of ``d_W`` over the
    windows that contain p. Positive: hiding the pixel lowers the score. The class is fixed on
    the clean input. ``window`` and ``stride`` are ints or ``(h, w)`` pairs. Returns ``(N, H, W)``.
    """
    xt = as_input(model, x, "occlusion")
    n, _, height, width = xt.shape
    wh, ww = (window, window) if np.ndim(window) == 0 else tuple(window)
    sh, sw = (stride, stride) if np.ndim(stride) == 0 else tuple(stride)
    if not (1 <= wh <= height and 1 <= ww <= width and sh >= 1 and sw >= 1):
        raise ValueError(f"occlusion: window {window!r} must fit the image ({height}×{width}) and stride "
                         f"{stride!r} must be >= 1")
    x0 = xt.numpy()
    total = np.zeros((n, height, width))
    count = np.zeros((height, width))
    with inspecting(model), no_grad():
        y0 = _scores(model, xt, "occlusion").numpy()
        c = _classes(class_idx, Tensor(y0), "occlusion")
        base = y0[np.arange(n), c]
        for top in _starts(height, wh, sh):
            for left in _starts(width, ww, sw):
                xo = x0.copy()
                xo[:, :, top:top + wh, left:left + ww] = fill
                yo = model(Tensor(xo, device=xt.device)).numpy()
                total[:, top:top + wh, left:left + ww] += (base - yo[np.arange(n), c])[:, None, None]
                count[top:top + wh, left:left + ww] += 1
    return (total / count).astype(x0.dtype)


# ---- pictures ---------------------------------------------------------------------------------
def overlay_heatmap(image, heatmap, alpha=0.5, cmap="jet"):
    """An RGB picture ``(H, W, 3)``: the image (grey ``(1, H, W)`` or RGB ``(3, H, W)``, scaled to
    [0, 1]) blended with ``cmap(heatmap)``; the heatmap ``(H, W)`` (or ``(C, H, W)``: max |·| over
    channels) is scaled to [0, 1] first. Weight ``alpha`` on the heatmap."""
    plt = plots._plt()
    image, heat = np.asarray(image, dtype=np.float64), np.asarray(heatmap, dtype=np.float64)
    heat = np.abs(heat).max(axis=0) if heat.ndim == 3 else heat
    rgb = np.repeat(image[:1], 3, axis=0) if image.shape[0] == 1 else image[:3]
    rgb = np.transpose(_unit(rgb), (1, 2, 0))
    if heat.shape != rgb.shape[:2]:
        raise ValueError(f"overlay_heatmap: heatmap shape {heat.shape} does not match image shape {image.shape}")
    return (1 - alpha) * rgb + alpha * plt.get_cmap(cmap)(_unit(heat))[..., :3]


def _unit(a):
    lo, span = a.min(), np.ptp(a)
    return (a - lo) / span if span > 0 else np.zeros_like(a)


def plot_heatmap(image, heatmap, path, alpha=0.5, title=None):
    """One image with a heatmap over it (:func:`overlay_heatmap`) and a colour bar."""
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(overlay_heatmap(image, heatmap, alpha))
    ax.axis("off")
    fig.colorbar(plt.cm.ScalarMappable(cmap="jet"), ax=ax, shrink=0.8, label="scaled to [0, 1]")
    if title:
        ax.set_title(title, fontsize=9)
    return plots._save(fig, path)


def plot_attributions(images, maps, path, labels=None, preds=None, alpha=0.5, title=None):
    """A row per image: the image, then each method's map over it, side by side.

    ``images`` ``(N, C, H, W)``; ``maps`` ``{method name: (N, H, W) or (N, C, H, W)}`` (each map
    scaled to [0, 1] per image; a 4-D map shows max |·| over channels); ``labels``/``preds``
    titled on the image (red when they differ).
    """
    plt = plots._plt()
    images = np.asarray(images)
    names = list(maps)
    n, cols = len(images), 1 + len(names)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 2.0 * n + 0.4), squeeze=False)
    for i in range(n):
        img = images[i]
        axes[i, 0].imshow(img[0] if img.shape[0] == 1 else np.transpose(_unit(img), (1, 2, 0)), cmap="gray")
        text = [f"{k} {v[i]}" for k, v in (("true", labels), ("pred", preds)) if v is not None]
        wrong = labels is not None and preds is not None and labels[i] != preds[i]
        axes[i, 0].set_title(", ".join(text) or "image", fontsize=8, color="red" if wrong else "black")
        for j, name in enumerate(names, start=1):
            axes[i, j].imshow(overlay_heatmap(img, maps[name][i], alpha))
            if i == 0:
                axes[i, j].set_title(name, fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return plots._save(fig, path)
