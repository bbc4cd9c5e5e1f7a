"""What a CNN sees: LeNet-5 on real MNIST digits, opened up with minicnn.viz.

LeNet-5 (with ReLU, so guided backpropagation applies) is trained for a few epochs, then:

1. feature_maps.png: the output of every convolutional layer for one test digit (forward hooks
   keep each layer's output). Early maps are edge and stroke detectors that still look like the
   digit; after pooling they get coarser and more abstract.
2. filters.png: the six 5×5 filters of the first layer, each scaled to its own min…max
   (black: most negative weight, white: most positive). A map of layer 1 is the correlation of
   the image with one of these.
3. attributions.png: for test digits the model gets wrong, which pixels its (wrong) decision
   rests on, with y_c the logit of the predicted class:
   - Grad-CAM: α_k = mean_ij ∂y_c/∂A_k(i, j) over the maps A of the second conv block,
     cam = ReLU(Σ_k α_k A_k), upsampled bilinearly to 28×28: coarse regions of evidence (an all-dark
     map: no positive evidence at that layer, Σ_k α_k A_k ≤ 0 everywhere);
   - saliency: max over channels of |∂y_c/∂x|: pixels whose change moves the score most;
   - guided backprop: ∂y_c/∂x with only positive gradients let back through each ReLU: sharper;
   - occlusion: drop of y_c when an 8×8 square is blanked, averaged over the squares covering
     each pixel: no gradients at all, just the model re-run.
4. activation_maximisation.png: inputs found by gradient ascent on
   J(x) = mean of one channel of the second convolution (before its ReLU) − λ‖x‖²: the pattern each of those channels looks for.

The table of minicnn.summary(model, (1, 28, 28)) (one 1×28×28 image) is printed first.

    python examples/11_what_a_cnn_sees.py [--epochs 8] [--out runs/11_what_a_cnn_sees]
"""
import argparse
import os

import numpy as np

import minicnn as mc
from minicnn import data, models, optim, viz
from minicnn.__main__ import plural, positive_int
from minicnn.train import Trainer

OUT = os.path.join("runs", "11_what_a_cnn_sees")


def train_lenet5(epochs, log=print):
    """LeNet-5 (ReLU) trained with Adam on the 4,000 embedded training digits; returns (model, test set, accuracy)."""
    mc.manual_seed(0)
    train_set, test_set = data.load_digits("train"), data.load_digits("test")
    model = models.lenet5(activation="relu")
    trainer = Trainer(model, optim.Adam(model.parameters(), lr=2e-3), progress=False)
    history = trainer.fit(data.DataLoader(train_set, 64, shuffle=True, seed=0), data.DataLoader(test_set, 500),
                          epochs, log=log)
    return model, test_set, history[-1]["test_acc"]


def predict(model, images):
    model.eval()
    with mc.no_grad():
        return model(mc.Tensor(images)).numpy().argmax(1)


def main(epochs=8, out=OUT):
    model, test_set, acc = train_lenet5(epochs)
    print(mc.summary(model, (1, 28, 28)))  # input shape without the batch axis
    x, y = test_set.images, test_set.labels
    raw = data.load_digits("test", normalize=False).images  # [0, 1] pixels, for drawing
    pred = predict(model, x)

    one = x[:1]
    maps = viz.feature_maps(model, one, ["features.0", "features.1", "features.2", "features.3", "features.4",
                                         "features.5"])
    viz.plot_feature_maps(maps, os.path.join(out, "feature_maps.png"), image=raw[0],
                          title=f"LeNet-5 feature maps of a test digit (true {y[0]}, predicted {pred[0]})")
    viz.plot_filters(model.features[0].weight, os.path.join(out, "filters.png"))

    wrong = np.flatnonzero(pred != y)
    pick = wrong[:6] if len(wrong) else np.arange(4)
    attributions = {
        "Grad-CAM": viz.grad_cam(model, x[pick], "features.4"),
        "saliency": viz.saliency(model, x[pick]),
        "guided backprop": viz.guided_backprop(model, x[pick]),
        "occlusion": np.maximum(viz.occlusion(model, x[pick], window=8, stride=2), 0),
    }
    viz.plot_attributions(raw[pick], attributions, os.path.join(out, "attributions.png"), labels=y[pick],
                          preds=pred[pick], title="where the evidence for the predicted class lies")

    channels = [0, 3, 6, 9, 12, 15]
    found = [viz.activation_maximisation(model, "features.3", k, (1, 28, 28), steps=150, lr=0.5, l2=5e-3)
             for k in channels]
    viz.plot_images(np.stack([img for img, _ in found]), os.path.join(out, "activation_maximisation.png"),
                    ncols=len(channels), labels=channels,
                    title="inputs that excite channels of the second convolution (y = channel)")
    gain = min(h[-1] - h[0] for _, h in found)
    print(f"activation maximisation raised every channel's objective (smallest gain {gain:.2f})")
    print(f"test accuracy {100 * acc:.2f}% after {plural(epochs, 'epoch')} ({len(wrong)} of {len(y):,} digits wrong); "
          f"pictures (feature_maps.png, filters.png, attributions.png, activation_maximisation.png) in {out}/")
    return acc


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=positive_int, default=8)
    p.add_argument("--out", default=OUT)
    a = p.parse_args()
    main(epochs=a.epochs, out=a.out)
