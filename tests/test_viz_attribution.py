"""minicnn.viz.attribution against definitions computed here: a hand-built net, PyTorch autograd
re-implementations (Grad-CAM, Grad-CAM++, SmoothGrad, guided backprop), finite differences
(saliency) and a plain occlusion loop."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minicnn import nn, viz

torch = pytest.importorskip("torch")


# ---- a small random CNN and its PyTorch twin --------------------------------------------------
def _twins(seed=0, in_ch=2, classes=3):
    """The same float64 CNN in minicnn and in PyTorch (eval mode, random BatchNorm statistics)."""
    tn = torch.nn

    def layers(m):
        return [m.Conv2d(in_ch, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
                m.Conv2d(4, 5, 3, padding=1), m.ReLU(), m.AdaptiveAvgPool2d(1), m.Flatten(), m.Linear(5, classes)]

    torch.manual_seed(seed)
    ref = tn.Sequential(*layers(tn)).double()
    with torch.no_grad():
        ref[1].running_mean.uniform_(-0.3, 0.3), ref[1].running_var.uniform_(0.5, 1.5)
        ref[1].weight.uniform_(0.5, 1.5), ref[1].bias.uniform_(-0.2, 0.2)
    ref.eval()
    ours = nn.Sequential(*layers(nn)).double()
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _torch_grad(ref, x, c, layer=None, relu_hook=None):
    """(∂y[n, c_n]/∂A of ``ref[layer]`` or of x, A) by PyTorch autograd."""
    store, handles = {}, []
    xt = torch.tensor(x, requires_grad=True)
    if layer is not None:
        def keep(module, args, out):
            out.retain_grad()
            store["a"] = out
        handles.append(ref[layer].register_forward_hook(keep))
    if relu_hook is not None:
        handles += [m.register_full_backward_hook(relu_hook) for m in ref.modules() if isinstance(m, torch.nn.ReLU)]
    y = ref(xt)
    y[torch.arange(len(c)), torch.as_tensor(c)].sum().backward()
    for h in handles:
        h.remove()
    if layer is None:
        return xt.grad.numpy(), x
    return store["a"].grad.numpy(), store["a"].detach().numpy()


def _torch_classes(ref, x, class_idx):
    with torch.no_grad():
        y = ref(torch.tensor(x)).numpy()
    return y.argmax(1) if class_idx is None else np.full(len(x), class_idx)


def _upsample_normalise(cam, size):
    up = torch.nn.functional.interpolate(torch.tensor(cam[:, None]), size=size, mode="bilinear",
                                         align_corners=False).numpy()[:, 0]
    lo, hi = up.min(axis=(1, 2), keepdims=True), up.max(axis=(1, 2), keepdims=True)
    return np.where(hi > lo, (up - lo) / np.where(hi > lo, hi - lo, 1), 0)


images = st.tuples(st.integers(1, 2), st.integers(6, 9), st.integers(6, 9), st.integers(0, 10 ** 6))
classes = st.one_of(st.none(), st.integers(0, 2))


def _x(n, h, w, seed, ch=2):
    return np.random.default_rng(seed).standard_normal((n, ch, h, w))


# ---- Grad-CAM -----------------------------------------------------------------------------------
def _bilinear_half_pixel(a, out_h, out_w):
    """Bilinear resize of (h, w) with the half-pixel rule (src = (o + ½)·in/out − ½, clamped at 0)."""
    h, w = a.shape
    out = np.zeros((out_h, out_w))
    for oy in range(out_h):
        sy = max((oy + 0.5) * h / out_h - 0.5, 0.0)
        y0 = min(int(np.floor(sy)), h - 1)
        y1, ly = min(y0 + 1, h - 1), sy - y0
        for ox in range(out_w):
            sx = max((ox + 0.5) * w / out_w - 0.5, 0.0)
            x0 = min(int(np.floor(sx)), w - 1)
            x1, lx = min(x0 + 1, w - 1), sx - x0
            out[oy, ox] = ((1 - ly) * ((1 - lx) * a[y0, x0] + lx * a[y0, x1])
                           + ly * ((1 - lx) * a[y1, x0] + lx * a[y1, x1]))
    return out


def test_grad_cam_of_a_hand_built_net_pixel_for_pixel():
    # conv(1→2, 3×3, stride 2, pad 1) → ReLU → global average → linear(2→3): y_c = Σ_k W[c,k]·mean(A_k) + b_c,
    # so ∂y_c/∂A_k(i,j) = W[c,k]/(h·w) and α_k = W[c,k]/(h·w).
    conv_w = np.array([[[[1, 0, -1], [2, 0, -2], [1, 0, -1]]], [[[0, 1, 0], [1, -4, 1], [0, 1, 0]]]], np.float64)
    conv_b = np.array([0.1, -0.2])
    lin_w = np.array([[1.0, 2.0], [-1.5, 0.5], [0.3, -2.0]])
    net = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 3)).double()
    net.load_state_dict({"0.weight": conv_w, "0.bias": conv_b, "4.weight": lin_w, "4.bias": np.zeros(3)})
    x = np.random.default_rng(3).uniform(0, 1, (1, 1, 8, 8))
    xp = np.pad(x[0, 0], 1)
    a = np.zeros((2, 4, 4))
    for k in range(2):
        for i in range(4):
            for j in range(4):
                a[k, i, j] = max(np.sum(xp[2 * i:2 * i + 3, 2 * j:2 * j + 3] * conv_w[k, 0]) + conv_b[k], 0)
    for c in (1, 2):
        alpha = lin_w[c] / 16
        small = np.maximum(alpha[0] * a[0] + alpha[1] * a[1], 0)
        assert small.max() > 0 and small.min() == 0  # the ReLU of the CAM matters for these classes
        expect = _bilinear_half_pixel(small, 8, 8)
        raw = viz.grad_cam(net, x, "1", class_idx=c, normalize=False)
        np.testing.assert_allclose(raw[0], expect, rtol=1e-12, atol=1e-12)
        unit = viz.grad_cam(net, x, "1", class_idx=c)
        np.testing.assert_allclose(unit[0], (expect - expect.min()) / (expect.max() - expect.min()), atol=1e-12)


@given(images, classes, st.sampled_from(["2", "4", "5"]))
def test_grad_cam_equals_a_pytorch_reimplementation(shape, class_idx, layer):
    n, h, w, seed = shape
    ours, ref = _twins(seed % 7)
    x = _x(n, h, w, seed)
    c = _torch_classes(ref, x, class_idx)
    g, a = _torch_grad(ref, x, c, int(layer))
    cam = np.maximum(np.einsum("nk,nkij->nij", g.mean(axis=(2, 3)), a), 0)
    np.testing.assert_allclose(viz.grad_cam(ours, x, layer, class_idx), _upsample_normalise(cam, (h, w)),
                               atol=1e-9)


@given(images, classes)
def test_grad_cam_plus_plus_equals_the_papers_formula_in_pytorch(shape, class_idx):
    n, h, w, seed = shape
    ours, ref = _twins(seed % 5)
    x = _x(n, h, w, seed)
    c = _torch_classes(ref, x, class_idx)
    g, a = _torch_grad(ref, x, c, 4)  # the second convolution's output (signed, so g³ terms matter)
    weights = np.zeros(a.shape[:2])
    for i in range(n):  # the paper's Eq. 19 with exp(score), written out per channel and position
        for k in range(a.shape[1]):
            total_a = a[i, k].sum()
            for p in np.ndindex(a.shape[2:]):
                gp = g[(i, k) + p]
                denom = 2 * gp ** 2 + total_a * gp ** 3
                alpha = gp ** 2 / denom if denom != 0 else 0.0
                weights[i, k] += alpha * max(gp, 0.0)
    cam = np.maximum(np.einsum("nk,nkij->nij", weights, a), 0)
    np.testing.assert_allclose(viz.grad_cam_plus_plus(ours, x, "4", class_idx), _upsample_normalise(cam, (h, w)),
                               atol=1e-9)


# ---- input gradients --------------------------------------------------------------------------
def test_saliency_equals_finite_differences_in_float64():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(3 * 2 * 2, 4)).double()
    x = _x(2, 4, 4, 11)
    from minicnn import Tensor, no_grad

    def score(xv, n, c):
        with no_grad():
            return net(Tensor(xv)).numpy()[n, c]

    for class_idx in (None, 2):
        with no_grad():
            c = net(Tensor(x)).numpy().argmax(1) if class_idx is None else [2, 2]
        fd = np.zeros_like(x)
        eps = 1e-6
        for idx in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[idx] += eps
            xm[idx] -= eps
            fd[idx] = (score(xp, idx[0], c[idx[0]]) - score(xm, idx[0], c[idx[0]])) / (2 * eps)
        np.testing.assert_allclose(viz.saliency(net, x, class_idx), np.abs(fd).max(axis=1), rtol=1e-6, atol=1e-9)


def test_smooth_grad_with_sigma_zero_is_saliency():
    ours, _ = _twins(1)
    x = _x(2, 6, 6, 5)
    np.testing.assert_allclose(viz.smooth_grad(ours, x, n=3, sigma=0.0), viz.saliency(ours, x), rtol=1e-12)


@given(images, classes)
def test_smooth_grad_equals_a_loop_over_the_same_noise(shape, class_idx):
    n, h, w, seed = shape
    ours, ref = _twins(seed % 3)
    x = _x(n, h, w, seed)
    c = _torch_classes(ref, x, class_idx)
    rng = np.random.default_rng(4)
    std = 0.2 * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    total = np.zeros_like(x)
    for _ in range(3):
        noisy = x + std[:, None, None, None] * rng.standard_normal(x.shape)
        total += _torch_grad(ref, noisy, c)[0]
    expect = np.abs(total / 3).max(axis=1)
    np.testing.assert_allclose(viz.smooth_grad(ours, x, class_idx, n=3, sigma=0.2, seed=4), expect, atol=1e-10)


@given(images, classes)
def test_guided_backprop_equals_pytorch_with_clamping_relu_hooks(shape, class_idx):
    n, h, w, seed = shape
    ours, ref = _twins(seed % 4)
    x = _x(n, h, w, seed)
    c = _torch_classes(ref, x, class_idx)
    expect = _torch_grad(ref, x, c, relu_hook=lambda m, gi, go: (gi[0].clamp(min=0),))[0]
    np.testing.assert_allclose(viz.guided_backprop(ours, x, class_idx), expect, atol=1e-12)


def test_guided_backprop_differs_from_the_plain_gradient_and_ignores_functional_relu():
    ours, ref = _twins(2)
    x = _x(1, 8, 8, 9)
    c = _torch_classes(ref, x, None)
    plain = _torch_grad(ref, x, c)[0]
    assert np.abs(viz.guided_backprop(ours, x) - plain).max() > 1e-3

    class FunctionalRelu(nn.Module):  # F.relu inside forward: not a module, so not guided
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, z):
            from minicnn import functional as F
            return self.inner[8](self.inner[7](self.inner[6](F.relu(self.inner[4](self.inner[3](
                F.relu(self.inner[1](self.inner[0](z)))))))))

    np.testing.assert_allclose(viz.guided_backprop(FunctionalRelu(ours), x), plain, atol=1e-12)


# ---- occlusion ----------------------------------------------------------------------------------
@given(st.integers(5, 9), st.integers(5, 9), st.integers(1, 9), st.integers(1, 3), classes,
       st.sampled_from([0.0, 0.5]))
def test_occlusion_equals_a_plain_loop(h, w, window, stride, class_idx, fill):
    window = min(window, h, w)
    ours, ref = _twins(h + w)
    x = _x(2, h, w, h * w)

    def score(xv):
        with torch.no_grad():
            return ref(torch.tensor(xv)).numpy()

    c = _torch_classes(ref, x, class_idx)
    base = score(x)[[0, 1], c]
    rows = list(range(0, h - window + 1, stride))
    rows += [h - window] if rows[-1] != h - window else []
    cols = list(range(0, w - window + 1, stride))
    cols += [w - window] if cols[-1] != w - window else []
    drops = {}
    for top in rows:
        for left in cols:
            xo = x.copy()
            xo[:, :, top:top + window, left:left + window] = fill
            drops[top, left] = base - score(xo)[[0, 1], c]
    expect = np.zeros((2, h, w))
    for i in range(h):
        for j in range(w):
            covering = [d for (t, l), d in drops.items() if t <= i < t + window and l <= j < l + window]
            expect[:, i, j] = np.mean(covering, axis=0)
    got = viz.occlusion(ours, x, class_idx, window=window, stride=stride, fill=fill)
    np.testing.assert_allclose(got, expect, atol=1e-12)


# ---- the model is left as it was; bad input -----------------------------------------------------
def test_every_method_leaves_the_model_as_it_was():
    ours, _ = _twins(0)
    ours.train()
    ours[0].weight.requires_grad = False
    marker = ours[4].weight.data * 0 + 7
    from minicnn import Tensor
    ours[4].weight.grad = Tensor(marker)
    x = _x(1, 6, 6, 0)
    for run in (lambda: viz.grad_cam(ours, x, "4"), lambda: viz.grad_cam_plus_plus(ours, x, "5"),
                lambda: viz.saliency(ours, x), lambda: viz.smooth_grad(ours, x, n=2),
                lambda: viz.guided_backprop(ours, x), lambda: viz.occlusion(ours, x, window=3)):
        run()
        assert all(m.training for m in ours.modules())
        assert [p.requires_grad for p in ours.parameters()] == [False] + [True] * (len(list(ours.parameters())) - 1)
        assert all(p.grad is None for p in ours.parameters() if p is not ours[4].weight)
        np.testing.assert_array_equal(ours[4].weight.grad.numpy(), marker)
        for m in ours.modules():
            assert not m._forward_hooks and not m._backward_hooks and not m._has_hooks


def test_bad_input_names_the_function_the_argument_and_the_shapes():
    ours, _ = _twins(0)
    x = _x(1, 6, 6, 0)
    with pytest.raises(ValueError, match=r"grad_cam: x must be a batch of images \(N, C, H, W\), got shape \(2, 6, 6\)"):
        viz.grad_cam(ours, x[0], "4")
    with pytest.raises(ValueError, match="grad_cam: layer 'nope' is not a module of Sequential"):
        viz.grad_cam(ours, x, "nope")
    with pytest.raises(ValueError, match=r"grad_cam: target_layer '8' must output maps \(N, K, h, w\)"):
        viz.grad_cam(ours, x, "8")
    with pytest.raises(ValueError, match=r"saliency: class_idx must be None, an int or N = 1 ints in \[0, 3\)"):
        viz.saliency(ours, x, class_idx=3)
    with pytest.raises(ValueError, match=r"occlusion: window 7 must fit the image \(6×6\)"):
        viz.occlusion(ours, x, window=7)
    with pytest.raises(ValueError, match="smooth_grad: need n >= 1"):
        viz.smooth_grad(ours, x, n=0)
    with pytest.raises(ValueError, match="the model must return class scores"):
        viz.saliency(nn.Sequential(nn.Conv2d(2, 2, 1)).double(), x)
    for m in ours.modules():
        assert not m._forward_hooks


def test_heatmap_pictures(tmp_path):
    ours, _ = _twins(0)
    x = _x(2, 8, 8, 1)
    maps = {"Grad-CAM": viz.grad_cam(ours, x, "4"), "guided": viz.guided_backprop(ours, x)}
    rgb = viz.overlay_heatmap(x[0, :1], maps["Grad-CAM"][0], alpha=0.0)
    np.testing.assert_allclose(rgb[..., 0], (x[0, 0] - x[0, 0].min()) / np.ptp(x[0, 0]))
    assert (tmp_path / "a.png").exists() is False
    assert viz.plot_attributions(x[:, :1], maps, str(tmp_path / "a.png"), labels=[1, 2], preds=[1, 0]).endswith("a.png")
    assert viz.plot_heatmap(x[0, :1], maps["Grad-CAM"][0], str(tmp_path / "h.png"))
    assert (tmp_path / "a.png").stat().st_size > 0 and (tmp_path / "h.png").stat().st_size > 0
