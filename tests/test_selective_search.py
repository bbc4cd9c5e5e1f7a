"""Felzenszwalb–Huttenlocher segmentation and selective search.

Oracles: the plain-loop segmentation of ``kernels/reference/felzenszwalb.py``; plain-loop region
features and hierarchical grouping written here; hand-made images whose segments and boxes are
known; recall on held-out digit canvases.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from minicnn.data.detection import digit_detection
from minicnn.kernels.cpu import felzenszwalb as fz
from minicnn.kernels.reference import felzenszwalb as fz_ref
from minicnn.models.detection import selective_search as ss


# ---- Felzenszwalb ---------------------------------------------------------------------------------

@given(st.integers(1, 11), st.integers(1, 11), st.integers(1, 3), st.integers(0, 2 ** 31 - 1),
       st.sampled_from([0.3, 1.0, 4.0]), st.integers(1, 6), st.booleans())
def test_felzenszwalb_matches_reference(H, W, C, seed, k, min_size, quantised):
    rng = np.random.default_rng(seed)
    img = rng.random((H, W, C))
    if quantised:                                          # many equal weights: the stable order matters
        img = np.round(img * 2) / 2
    smooth = fz_ref.gaussian_smooth(img, 0.5)
    np.testing.assert_allclose(fz.gaussian_smooth(img, 0.5), smooth, rtol=0, atol=1e-12)
    labels, count = fz.segment(smooth, k, min_size)
    expected = fz_ref.segment(smooth, k, min_size)
    np.testing.assert_array_equal(labels, expected)
    assert count == expected.max() + 1


def test_felzenszwalb_two_flat_halves_and_min_size():
    img = np.zeros((6, 8))
    img[:, 4:] = 100.0
    img[0, 0] = 1.0                                        # a one-pixel speck merged away by min_size
    labels = fz.felzenszwalb(img, scale=10.0, sigma=0.0, min_size=2)
    expected = np.zeros((6, 8), np.int32)
    expected[:, 4:] = 1
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(fz_ref.felzenszwalb(img, 10.0, 0.0, 2), expected)


def test_gaussian_taps_sum_to_one_and_are_symmetric():
    t = fz.gaussian_kernel1d(0.8)
    assert len(t) == 2 * 4 + 1 and abs(t.sum() - 1) < 1e-15
    np.testing.assert_allclose(t, t[::-1], rtol=0, atol=0)
    np.testing.assert_allclose(t, fz_ref.gaussian_kernel1d(0.8), rtol=1e-15)


# ---- region features and grouping: plain-loop references ------------------------------------------

def _features_reference(labels, space_image):
    H, W = labels.shape
    n = labels.max() + 1
    cb, tb = ss._bin_maps(space_image)
    colour = np.zeros((n, cb.shape[1] * ss.COLOUR_BINS))
    texture = np.zeros((n, tb.shape[1] * ss.TEXTURE_BINS))
    sizes = np.zeros(n, np.int64)
    boxes = [[W, H, 0, 0] for _ in range(n)]
    pairs = set()
    for i in range(H):
        for j in range(W):
            r = labels[i, j]
            for b in cb[i * W + j]:
                colour[r, b] += 1
            for b in tb[i * W + j]:
                texture[r, b] += 1
            sizes[r] += 1
            boxes[r] = [min(boxes[r][0], j), min(boxes[r][1], i), max(boxes[r][2], j + 1), max(boxes[r][3], i + 1)]
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    y, x = i + di, j + dj
                    if 0 <= y < H and 0 <= x < W and labels[y, x] != r:
                        pairs.add((min(r, labels[y, x]), max(r, labels[y, x])))
    for r in range(n):
        colour[r] /= colour[r].sum()
        texture[r] /= texture[r].sum()
    return sizes, np.array(boxes), colour, texture, np.array(sorted(pairs), np.int64).reshape(-1, 2)


def _grouping_reference(sizes, boxes, colour, texture, pairs, flags, area):
    sizes = [float(s) for s in sizes]
    boxes = [tuple(int(v) for v in b) for b in boxes]
    colour, texture = [list(c) for c in colour], [list(t) for t in texture]

    def sim(a, b):
        s = 0.0
        if flags[0]:
            for m in range(len(colour[a])):
                s += min(colour[a][m], colour[b][m])
        if flags[1]:
            for m in range(len(texture[a])):
                s += min(texture[a][m], texture[b][m])
        if flags[2]:
            s += 1.0 - (sizes[a] + sizes[b]) / area
        if flags[3]:
            bw = max(boxes[a][2], boxes[b][2]) - min(boxes[a][0], boxes[b][0])
            bh = max(boxes[a][3], boxes[b][3]) - min(boxes[a][1], boxes[b][1])
            s += 1.0 - (bw * bh - sizes[a] - sizes[b]) / area
        return s

    S = {(int(a), int(b)): sim(a, b) for a, b in pairs}
    merges = []
    while S:
        i, j = max(S, key=lambda p: (S[p], -p[0], -p[1]))
        r = len(sizes)
        si, sj = sizes[i], sizes[j]
        sizes.append(si + sj)
        colour.append([(si * a + sj * b) / (si + sj) for a, b in zip(colour[i], colour[j])])
        texture.append([(si * a + sj * b) / (si + sj) for a, b in zip(texture[i], texture[j])])
        boxes.append((min(boxes[i][0], boxes[j][0]), min(boxes[i][1], boxes[j][1]),
                      max(boxes[i][2], boxes[j][2]), max(boxes[i][3], boxes[j][3])))
        neighbours = sorted({o for p in S if i in p or j in p for o in p} - {i, j})
        S = {p: v for p, v in S.items() if i not in p and j not in p}
        for o in neighbours:
            S[(o, r)] = sim(o, r)
        merges.append((i, j))
    return np.array(boxes), np.array(merges, np.int64).reshape(-1, 2)


@pytest.mark.parametrize("space,k,similarity", [("i", 50, "CTSF"), ("ig", 20, "TSF"), ("ig", 50, "F"),
                                                ("i", 20, "S")])
def test_features_and_grouping_match_plain_loops(space, k, similarity):
    image = digit_detection(1, canvas=40, digits_per_image=(2, 3), size_range=(12, 20), split="test", seed=3).images[0]
    space_image = ss._colour_space(image, space)
    labels = fz.felzenszwalb(space_image * 255, k, 0.8, 2)
    got = ss.region_features(labels, space_image)
    want = _features_reference(labels, space_image)
    assert labels.max() + 1 >= 5                             # enough regions to make the grouping non-trivial
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w) if g.dtype.kind == "i" else np.testing.assert_allclose(g, w, atol=1e-15)
    boxes, merges = ss.hierarchical_grouping(*got, similarity=similarity, image_area=labels.size)
    ref_boxes, ref_merges = _grouping_reference(*want, ss._SIMILARITIES[similarity], float(labels.size))
    np.testing.assert_array_equal(merges, ref_merges)
    np.testing.assert_array_equal(boxes, ref_boxes)
    np.testing.assert_array_equal(boxes[-1], [0, 0, 40, 40])  # the last region is the whole image


def test_two_squares_are_proposed_exactly():
    img = np.zeros((1, 32, 32), np.float32)
    img[0, 4:12, 5:15] = 1.0
    img[0, 20:30, 18:26] = 0.6
    boxes = ss.selective_search(img, mode="single")
    rows = {tuple(b) for b in boxes.astype(int).tolist()}
    assert (5, 4, 15, 12) in rows and (18, 20, 26, 30) in rows and (0, 0, 32, 32) in rows
    assert len(np.unique(boxes, axis=0)) == len(boxes)


def test_constant_and_one_pixel_images():
    np.testing.assert_array_equal(ss.selective_search(np.full((1, 9, 7), 0.5, np.float32)), [[0, 0, 7, 9]])
    assert ss.selective_search(np.zeros((1, 1, 1), np.float32), min_box_size=1).tolist() == [[0, 0, 1, 1]]


def test_rgb_strategies_run_and_rank_is_seeded():
    rng = np.random.default_rng(0)
    img = np.zeros((3, 24, 24), np.float32)
    img[0, 2:10, 2:10] = 1.0
    img[1, 12:22, 8:20] = 0.8
    img += 0.05 * rng.random(img.shape).astype(np.float32)
    a, va = ss.selective_search(img, mode="fast", return_values=True)
    b = ss.selective_search(img, mode="fast")
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(va) >= 0)
    assert {(2, 2, 10, 10), (8, 12, 20, 22)} <= {tuple(r) for r in a.astype(int).tolist()}


def test_recall_on_held_out_canvases():
    ds = digit_detection(8, split="test", seed=1)
    props = [ss.selective_search(im) for im in ds.images]
    assert ss.proposal_recall(props, ds.targets, 0.5) >= 0.95
    assert all(len(p) > 30 for p in props) and np.mean([len(p) for p in props]) > 300


def test_cached_proposals_round_trip(tmp_path):
    ds = digit_detection(3, split="test", seed=2)
    path = str(tmp_path / "props.npz")
    first = ss.cached_proposals(ds.images, path, mode="single")
    again = ss.cached_proposals(ds.images, path, mode="single")
    for a, b, im in zip(first, again, ds.images):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, ss.selective_search(im, mode="single"))


@pytest.mark.parametrize("bad,err,match", [
    (np.zeros((2, 8, 8), np.float32), ValueError, "C = 1 or 3"),
    (np.zeros((1, 8, 8), np.uint8), TypeError, "float"),
    (np.full((1, 4, 4), np.nan, np.float32), ValueError, "NaN"),
    (np.zeros((1, 0, 4), np.float32), ValueError, "shape"),
])
def test_bad_input(bad, err, match):
    with pytest.raises(err, match=match):
        ss.selective_search(bad)
    with pytest.raises(ValueError, match="mode"):
        ss.selective_search(np.zeros((1, 4, 4), np.float32), mode="slow")
