"""Evaluation of generative models on the features of a classifier trained here.

The Fréchet distance between two sets of feature vectors, each summarised by its mean μ and
covariance Σ (Dowson & Landau; used by Heusel et al. for FID)::

    d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½

Here the features are the penultimate-layer activations of a small CNN trained in this project
(:class:`FeatureClassifier`, by :func:`train_feature_classifier`) on the real images of the task.
It is NOT the Inception-based FID: the feature network, its dimension (128 by default, not 2,048)
and the image sizes differ, so the numbers are not comparable with published FID values. They are
only compared with each other and with :func:`real_floor`, the same distance between real test
and real training images of the same count (the estimate is biased upward for small samples, so
generated sets must be of that count too).

For CycleGAN, :func:`domain_rate` is the fraction of translated images that a frozen classifier
assigns to the target domain; for Pix2Pix, :func:`paired_l1` is the mean absolute error to the
held-out targets.
"""
import os

import numpy as np

from .autograd import no_grad
from .data.dataset import ArrayDataset
from .data.loader import DataLoader
from .models.basic import BasicCNN
from .optim.adam import Adam
from .random import manual_seed
from .tensor import Tensor
from .train import Trainer, save_checkpoint


def _square_matrix(a, name, d):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0 and d == 1:                        # 1-D: a variance
        a = a.reshape(1, 1)
    if a.shape != (d, d):
        raise ValueError(f"frechet_distance: {name} must be ({d}, {d}) to match the mean, got shape {a.shape}")
    return a


def _sqrt_psd(a):
    """Square root of a symmetric positive semi-definite matrix: ``V diag(sqrt(max(w, 0))) Vᵀ``."""
    w, v = np.linalg.eigh((a + a.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Fréchet distance between the Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂), in float64.

    ``d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½``; ``tr (Σ₁ Σ₂)^½`` equals the trace of
    the square root of the symmetric matrix ``Σ₁^½ Σ₂ Σ₁^½``, whose eigenvalues (from ``eigh``,
    tiny negative round-off clipped to 0) give it without a general matrix square root.

    Args:
        mu1, mu2: means ``(D,)``.
        sigma1, sigma2: covariances ``(D, D)``, symmetric positive semi-definite.
    Returns:
        ``d²`` as a float >= 0 (0 for identical distributions; in 1-D ``(μ₁ − μ₂)² + (σ₁ − σ₂)²``).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: mu1 and mu2 must be vectors of one length D, got shapes "
                         f"{mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    s1, s2 = _square_matrix(sigma1, "sigma1", d), _square_matrix(sigma2, "sigma2", d)
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all() and np.isfinite(s1).all() and np.isfinite(s2).all()):
        raise ValueError("frechet_distance: the means and covariances must be finite")
    root1 = _sqrt_psd(s1)
    middle = root1 @ s2 @ root1
    w = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    tr_covmean = np.sqrt(np.clip(w, 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    return float(max(value, 0.0))


def feature_statistics(features):
    """Mean and covariance of feature vectors, in float64.

    Args:
        features: ``(N, D)`` with N >= 2 (other shapes ``(N, ...)`` are flattened per sample).
    Returns:
        ``(mu (D,), sigma (D, D))`` with ``sigma = Σ_n (f_n − μ)(f_n − μ)ᵀ / (N − 1)``.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim < 2 or f.shape[0] < 2:
        raise ValueError(f"feature_statistics: features must be (N, D) with N >= 2, got shape {f.shape}")
    f = f.reshape(f.shape[0], -1)
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (f.shape[0] - 1)


class FeatureClassifier(BasicCNN):
    """The classifier whose penultimate activations are the evaluation features.

    :class:`~minicnn.models.basic.BasicCNN`: conv(3×3, c1)-ReLU-pool → conv(3×3, c2)-ReLU-pool →
    dense(hidden)-ReLU-dropout → dense(num_classes), on ``(N, C, S, S)`` images in [-1, 1]
    (S divisible by 4, 32 by default). The features are the ``hidden`` outputs of the ReLU after
    the first dense layer (module ``classifier.2``, :attr:`feature_layer`), read by a forward hook.
    """

    feature_layer = "classifier.2"

    def __init__(self, in_channels=1, num_classes=10, image_size=32, channels=(32, 64), hidden=128, dropout=0.25):
        super().__init__(in_channels, num_classes, image_size, channels, hidden, dropout)
        self.config = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size,
                           channels=tuple(channels), hidden=hidden, dropout=dropout)


def _device_of(model):
    return next(iter(model.parameters())).device


def _check_images(images, name):
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"{name}: images must be (N, C, H, W), got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def classifier_features(model, images, batch_size=256, layer=None):
    """Activations of ``model``'s module ``layer`` (default ``model.feature_layer``) for ``images``.

    Runs in eval mode without a graph, batch by batch on the model's device; a forward hook
    (``register_forward_hook``) captures the module's output.

    Returns:
        float64 ``(N, D)``: each image's activations flattened.
    """
    x = _check_images(images, "classifier_features")
    layer = layer or getattr(model, "feature_layer", None)
    modules = dict(model.named_modules())
    if layer not in modules:
        raise ValueError(f"classifier_features: the model has no module named {layer!r}")
    captured = []
    device = _device_of(model)
    model.eval()
    with modules[layer].register_forward_hook(lambda m, args, out: captured.append(out.numpy())), no_grad():
        for s in range(0, len(x), batch_size):
            model(Tensor(x[s:s + batch_size], device=device))
    if not captured:
        return np.zeros((0, 0))
    return np.concatenate([c.reshape(len(c), -1) for c in captured]).astype(np.float64)


def predict(model, images, batch_size=256):
    """Logits ``(N, classes)`` of ``model`` for ``images`` (eval mode, no graph, on the model's device)."""
    x = _check_images(images, "predict")
    device = _device_of(model)
    model.eval()
    out = []
    with no_grad():
        for s in range(0, len(x), batch_size):
            out.append(model(Tensor(x[s:s + batch_size], device=device)).numpy())
    return np.concatenate(out)


def train_feature_classifier(images, labels, epochs=2, device="cpu", seed=0, batch_size=128, lr=2e-3,
                             num_classes=None, path=None, progress=False, **config):
    """Train a :class:`FeatureClassifier` on real images with cross-entropy and Adam.

    Args:
        images: ``(N, C, S, S)`` float, the task's real training images in [-1, 1].
        labels: ``(N,)`` class ids (digit or item class, or the domain 0 / 1 of an image pair).
        epochs, batch_size, lr: the training run (shuffled with ``seed``; the weights are
            initialised after ``minicnn.manual_seed(seed)``).
        device: ``cpu``, ``cuda-emu`` or ``cuda``.
        num_classes: default ``max(labels) + 1``.
        path: a ``.npz`` checkpoint: loaded instead of training when it exists, else written after
            training (so a README figure can reuse one classifier).
        **config: ``channels``, ``hidden``, ``dropout`` of :class:`FeatureClassifier`.
    Returns:
        the model in eval mode, with ``history`` (one dict per epoch: train_loss, train_acc, ...).
    """
    x = _check_images(images, "train_feature_classifier")
    y = np.asarray(labels).astype(np.int64)
    if y.shape != (len(x),):
        raise ValueError(f"train_feature_classifier: labels must be ({len(x)},) for images {x.shape}, "
                         f"got shape {y.shape}")
    if x.shape[2] != x.shape[3] or x.shape[2] % 4:
        raise ValueError(f"train_feature_classifier: images must be square with a side divisible by 4, "
                         f"got {x.shape}")
    num_classes = int(y.max()) + 1 if num_classes is None else int(num_classes)
    manual_seed(seed)
    model = FeatureClassifier(x.shape[1], num_classes, x.shape[2], **config).to(device)
    model.history = []
    if path is not None and os.path.exists(path):
        with np.load(path) as f:
            model.load_state_dict({k: f[k] for k in f.files})
        model.eval()
        return model
    trainer = Trainer(model, Adam(model.parameters(), lr=lr), device=device, num_classes=num_classes,
                      progress=progress)
    loader = DataLoader(ArrayDataset(x, y), batch_size=batch_size, shuffle=True, seed=seed)
    for epoch in range(1, epochs + 1):
        model.history.append(dict(epoch=epoch, **trainer.train_epoch(loader, epoch)))
    model.eval()
    if path is not None:
        save_checkpoint(model, path)
    return model


def classifier_frechet_distance(model, real, fake, batch_size=256):
    """Fréchet distance between the classifier features of ``real`` and ``fake`` images.

    ``frechet_distance(*feature_statistics(φ(real)), *feature_statistics(φ(fake)))`` with φ the
    penultimate activations of ``model`` (:func:`classifier_features`). A distance on the
    features of a classifier trained here: NOT comparable with Inception-based FID.
    """
    f_real = classifier_features(model, real, batch_size)
    f_fake = classifier_features(model, fake, batch_size)
    return frechet_distance(*feature_statistics(f_real), *feature_statistics(f_fake))


def real_floor(model, real_train, real_test, n=None, seed=0, batch_size=256):
    """The floor of :func:`classifier_frechet_distance`: real test images vs real training images.

    Both sets are subsampled (without replacement, ``seed``) to ``n`` images (default: the smaller
    set's size); a generator's distance should be measured on ``n`` generated images against
    the same real training images and read relative to this floor (e.g. "within 3× the floor").
    """
    real_train, real_test = _check_images(real_train, "real_floor"), _check_images(real_test, "real_floor")
    n = min(len(real_train), len(real_test)) if n is None else int(n)
    if not 2 <= n <= min(len(real_train), len(real_test)):
        raise ValueError(f"real_floor: n must be in 2..{min(len(real_train), len(real_test))} (the sizes of "
                         f"the sets), got {n}")
    rng = np.random.default_rng(seed)
    a = real_train[np.sort(rng.choice(len(real_train), n, replace=False))]
    b = real_test[np.sort(rng.choice(len(real_test), n, replace=False))]
    return classifier_frechet_distance(model, b, a, batch_size)


def domain_rate(classifier, images, target_class, batch_size=256):
    """Fraction of ``images`` that the frozen ``classifier`` assigns to ``target_class``:
    ``mean(argmax logits == target_class)`` (CycleGAN: translated images in the target domain)."""
    logits = predict(classifier, images, batch_size)
    if not 0 <= int(target_class) < logits.shape[1]:
        raise ValueError(f"domain_rate: target_class must be in 0..{logits.shape[1] - 1}, got {target_class}")
    return float((logits.argmax(1) == int(target_class)).mean())


def paired_l1(fake, target):
    """Mean absolute error ``mean |fake − target|`` over all pixels of aligned ``(N, C, H, W)`` images
    (Pix2Pix on held-out pairs; in the images' units, [-1, 1] here)."""
    fake, target = np.asarray(fake, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if fake.shape != target.shape:
        raise ValueError(f"paired_l1: fake {fake.shape} and target {target.shape} must have one shape")
    return float(np.abs(fake - target).mean())
