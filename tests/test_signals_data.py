"""Time-series data: the .ts parser on hand-written files, the embedded UCR/UEA sets, MNIST-1D.

References are independent of the code under test: hand-written files and the values typed into
them, the archive's published set sizes, a plain-loop writer of the format (hypothesis round
trip), SciPy's Gaussian filter and interpolation, and the ``mnist1d`` package where installed.
"""
import gzip
import hashlib
import os
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minicnn.data import (UCR_DATASETS, load_mnist1d, load_ucr, mnist1d_arrays, pad_series, parse_ts, read_ts,
                          stack_series, ucr_arrays, ucr_classes)
from minicnn.data.mnist1d import gaussian_smooth, resample_linear

EMBEDDED = os.path.join(os.path.dirname(__file__), "..", "minicnn", "data", "embedded", "ucr")

HAND_WRITTEN = """\
#A hand-written file in the archive's format: two dimensions, unequal lengths, a missing value
#second comment line
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down flat
@data
1.0,2.5,-3:4,5,6e-1:down

0.25,?,1e2,7:-1,-2,-3,-4:up
9:8:flat
"""


def test_parser_reads_a_hand_written_multivariate_file_value_by_value():
    ts = parse_ts(HAND_WRITTEN)
    assert ts.classes == ("up", "down", "flat")
    assert ts.labels == ["down", "up", "flat"]
    assert ts.y.tolist() == [1, 0, 2]
    assert ts.lengths.tolist() == [3, 4, 1]
    np.testing.assert_array_equal(ts.series[0], [[1.0, 2.5, -3.0], [4.0, 5.0, 0.6]])
    np.testing.assert_array_equal(ts.series[1], [[0.25, np.nan, 100.0, 7.0], [-1, -2, -3, -4]])
    np.testing.assert_array_equal(ts.series[2], [[9.0], [8.0]])
    assert ts.meta == dict(problemname="Toy", timestamps=False, missing=True, univariate=False, dimensions=2,
                           equallength=False, classlabel=True)


def test_read_ts_reads_plain_and_gzip_files_alike(tmp_path):
    plain, packed = tmp_path / "Toy_TRAIN.ts", tmp_path / "Toy_TRAIN.ts.gz"
    plain.write_text(HAND_WRITTEN)
    packed.write_bytes(gzip.compress(HAND_WRITTEN.encode()))
    a, b = read_ts(plain), read_ts(packed)
    assert a.labels == b.labels and a.classes == b.classes
    for s, t in zip(a.series, b.series):
        np.testing.assert_array_equal(s, t)


def test_univariate_header_tags_are_case_insensitive():
    ts = parse_ts("@PROBLEMNAME u\n@Univariate TRUE\n@EqualLength true\n@SeriesLength 2\n"
                  "@ClassLabel true 1 2\n@DATA\n3,4:2\n5,6:1\n")
    assert ts.y.tolist() == [1, 0]
    np.testing.assert_array_equal(np.stack(ts.series), [[[3, 4]], [[5, 6]]])


_HEADER = "@problemName bad\n@missing false\n@univariate true\n@equalLength true\n@classLabel true a b\n@data\n"


@pytest.mark.parametrize("text, message", [
    (_HEADER + "1,2,3:c\n", r"line 7: class label 'c' is not one of @classLabel \['a', 'b'\]"),
    (_HEADER + "1,?,3:a\n", r"line 7, dimension 0, value 1: '\?' \(missing\) but the header says @missing false"),
    (_HEADER + "1,x,3:a\n", r"line 7, dimension 0, value 1: not a number: 'x'"),
    (_HEADER + "1,2,3:a\n1,2:b\n", r"line 8: length 2 but @equalLength true and the series length is 3"),
    (_HEADER + "1,2:3,4:a\n", r"line 7: 2 dimensions, the header says 1"),
    ("@problemName x\n1,2:a\n", r"line 2: data before the @data line"),
    ("@problemName x\n@classLabel true a\n", r"no @data line"),
    ("@problemName x\n@classLabel true a\n@data\n", r"no cases after @data"),
    ("@problemName x\n@colour red\n@data\n", r"line 2: unknown header tag @colour"),
    ("@missing false\n@missing true\n@data\n", r"line 2: @missing appears twice"),
    ("@missing maybe\n@data\n", r"line 1: @missing must be true or false, got 'maybe'"),
    ("@timeStamps true\n@classLabel true a\n@data\n(0,1):a\n", r"@timeStamps true .* is not supported"),
    ("@univariate false\n@classLabel true a\n@data\n1,2:3:a\n", r"dimensions of one case have different lengths"),
    ("@seriesLength 0\n@data\n", r"@serieslength must be >= 1, got 0"),
])
def test_malformed_files_are_value_errors_naming_the_line(text, message):
    with pytest.raises(ValueError, match=r"parse_ts: <string>.*" + message):
        parse_ts(text)


def _write_ts(series, labels, classes):
    """An independent plain-loop writer of the format (what the parser must invert)."""
    lines = ["@problemName gen", "@timeStamps false", "@missing false",
             f"@univariate {'true' if series[0].shape[0] == 1 else 'false'}", f"@dimensions {series[0].shape[0]}",
             "@equalLength false", "@classLabel true " + " ".join(classes), "@data"]
    for s, label in zip(series, labels):
        dims = []
        for row in s:
            dims.append(",".join(repr(float(v)) for v in row))
        lines.append(":".join(dims) + ":" + label)
    return "\n".join(lines) + "\n"


_finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@st.composite
def _ts_cases(draw):
    dims = draw(st.integers(1, 3))
    classes = draw(st.lists(st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True), min_size=1, max_size=4,
                            unique=True))
    n = draw(st.integers(1, 5))
    series = [np.array([[draw(_finite) for _ in range(length)] for _ in range(dims)])
              for length in draw(st.lists(st.integers(1, 6), min_size=n, max_size=n))]
    labels = [draw(st.sampled_from(classes)) for _ in range(n)]
    return series, labels, classes


@given(_ts_cases())
def test_parser_inverts_an_independent_writer(case):
    series, labels, classes = case
    ts = parse_ts(_write_ts(series, labels, classes))
    assert ts.labels == labels and ts.classes == tuple(classes)
    assert ts.y.tolist() == [classes.index(label) for label in labels]
    for got, want in zip(ts.series, series):
        np.testing.assert_array_equal(got, want)


# ---- padding, stacking and bad input ----

def test_pad_series_places_each_series_first_and_masks_the_rest():
    a, b = np.array([[1.0, 2.0, 3.0]]), np.array([[4.0]])
    x, mask = pad_series([a, b], length=4, value=-9)
    np.testing.assert_array_equal(x, [[[1, 2, 3, -9]], [[4, -9, -9, -9]]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 0, 0, 0]])


def test_series_of_different_lengths_without_padding_is_a_clear_error():
    with pytest.raises(ValueError, match=r"stack_series: the series have different lengths \(1 to 3\); pad them"):
        stack_series([np.zeros((1, 3)), np.zeros((1, 1))])
    with pytest.raises(ValueError, match=r"ucr_arrays\('japanesevowels', 'train'\): the series have different "
                                         r"lengths \(7 to 26\)"):
        ucr_arrays("japanesevowels", "train")
    with pytest.raises(ValueError, match=r"pad_series: series 0 has length 3 > length=2"):
        pad_series([np.zeros((1, 3))], length=2)


@pytest.mark.parametrize("fn", [stack_series, pad_series])
def test_nan_or_inf_in_a_series_is_a_clear_error_naming_where(fn):
    bad = np.zeros((2, 5))
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match=rf"{fn.__name__}: series 1 holds nan at dimension 1, time 3 "
                                         r"\(shape \(2, 5\)\)"):
        fn([np.zeros((2, 5)), bad])
    bad[1, 3] = np.inf
    with pytest.raises(ValueError, match=r"series 1 holds inf"):
        fn([np.zeros((2, 5)), bad])


def test_a_file_with_missing_values_cannot_become_a_training_array():
    ts = parse_ts(HAND_WRITTEN)
    with pytest.raises(ValueError, match=r"pad_series: series 1 holds nan at dimension 0, time 1"):
        pad_series(ts.series)


def test_unknown_dataset_and_split_name_the_choices():
    with pytest.raises(ValueError, match=r"ucr_arrays: unknown dataset 'gunpnt'; expected one of \('gunpoint'"):
        ucr_arrays("gunpnt")
    with pytest.raises(ValueError, match=r"read_ucr: split must be 'train' or 'test', got 'val'"):
        load_ucr("gunpoint", "val")


# ---- the embedded sets ----

# The archive's published sizes (Dau et al. 2019; Bagnall et al. 2018): train, test, dims, length, classes
PUBLISHED = {
    "gunpoint": (50, 150, 1, 150, 2), "arrowhead": (36, 175, 1, 251, 3), "italypowerdemand": (67, 1029, 1, 24, 2),
    "osuleaf": (200, 242, 1, 427, 6), "basicmotions": (40, 40, 6, 100, 4), "japanesevowels": (270, 370, 12, 29, 9),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_embedded_sets_have_the_published_split_sizes_and_shapes(name):
    n_train, n_test, dims, length, k = PUBLISHED[name]
    x, y, mask = ucr_arrays(name, "train", pad=True)
    xt, yt, _ = ucr_arrays(name, "test", pad=True)
    assert x.shape == (n_train, dims, length) and xt.shape == (n_test, dims, length)
    assert x.dtype == np.float32 and y.dtype == np.int64 and mask.shape == (n_train, length)
    assert len(ucr_classes(name)) == k and set(y) == set(range(k)) and set(yt) == set(range(k))
    assert np.isfinite(x).all() and np.isfinite(xt).all()
    assert (x[~np.broadcast_to(mask[:, None], x.shape)] == 0).all()


def test_normalisation_uses_the_training_channels_mean_and_std():
    raw, _, mask = ucr_arrays("basicmotions", "train", normalize=False)
    x, _, _ = ucr_arrays("basicmotions", "train")
    mean = raw.astype(np.float64).mean(axis=(0, 2))
    std = raw.astype(np.float64).std(axis=(0, 2))
    np.testing.assert_allclose(x, (raw - mean[:, None]) / std[:, None], rtol=1e-5, atol=1e-5)


def test_gunpoint_first_values_are_the_archives():
    # typed from the archive's GunPoint_TRAIN file, first case: class 2, starts -0.6478854,-0.64199155
    x, y, _ = ucr_arrays("gunpoint", "train", normalize=False)
    np.testing.assert_allclose(x[0, 0, :2], [-0.6478854, -0.64199155], rtol=1e-6)
    assert ucr_classes("gunpoint")[y[0]] == "2"


def test_sources_lists_every_embedded_file_with_its_sha256():
    text = open(os.path.join(EMBEDDED, "SOURCES.txt")).read()
    files = sorted(f for f in os.listdir(EMBEDDED) if f.endswith(".ts.gz"))
    assert len(files) == 2 * len(UCR_DATASETS)
    for f in files:
        digest = hashlib.sha256(open(os.path.join(EMBEDDED, f), "rb").read()).hexdigest()
        assert re.search(rf"{re.escape(f)}  \(\d+ bytes, sha256 {digest}\)", text), f
    assert "Dau" in text and "Bagnall" in text and "BSD 3-Clause" in text


# ---- MNIST-1D ----

def test_mnist1d_has_the_published_shapes_and_is_deterministic():
    x, y = mnist1d_arrays("train")
    xt, yt = mnist1d_arrays("test")
    assert x.shape == (4000, 40) and xt.shape == (1000, 40)
    assert np.bincount(np.concatenate([y, yt])).tolist() == [500] * 10  # 500 per class before the split
    assert abs(np.concatenate([x, xt]).mean()) < 1e-12 and abs(np.concatenate([x, xt]).std() - 1) < 1e-12
    ds = load_mnist1d("test")
    assert ds[0][0].shape == (1, 40) and ds[0][0].dtype == np.float32
    from minicnn.data import mnist1d as m
    m._make.cache_clear()
    x2, y2 = mnist1d_arrays("train")
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


def test_mnist1d_smoothing_and_resampling_match_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    interpolate = pytest.importorskip("scipy.interpolate")
    rng = np.random.default_rng(0)
    v = rng.standard_normal(72)
    np.testing.assert_allclose(gaussian_smooth(v, 2), ndimage.gaussian_filter(v, 2), rtol=1e-12, atol=1e-12)
    want = interpolate.interp1d(np.linspace(0, 1, 72), v, kind="linear")(np.linspace(0, 1, 40))
    np.testing.assert_allclose(resample_linear(v, 40), want, rtol=1e-12, atol=1e-12)


def test_mnist1d_equals_the_packages_regeneration():
    data = pytest.importorskip("mnist1d.data", reason="the mnist1d package is not installed")
    ref = data.make_dataset(data.get_dataset_args())
    x, y = mnist1d_arrays("train")
    xt, yt = mnist1d_arrays("test")
    np.testing.assert_allclose(x, ref["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(xt, ref["x_test"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(y, ref["y"])
    np.testing.assert_array_equal(yt, ref["y_test"])


def test_a_file_without_class_labels_parses_but_has_no_class_ids():
    ts = parse_ts("@classLabel false\n@data\n1,2\n3,4\n")
    assert ts.labels == [None, None] and ts.classes == ()
    np.testing.assert_array_equal(np.stack(ts.series), [[[1, 2]], [[3, 4]]])
    with pytest.raises(ValueError, match=r"TSFile.y: the file has no class labels \(@classLabel false\)"):
        ts.y  # noqa: B018
