"""The public testing kit itself: strategies draw what they promise; gradcheck modes agree."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn.testing import gradcheck, strategies as S
from kernels_geometry_ref import out_size_ref


@given(st.data())
def test_distinct_arrays_are_distinct_and_spaced(data):
    shape = data.draw(S.shapes(max_dims=3))
    a = data.draw(S.distinct_arrays(shape, spacing=0.25, contiguous=False))
    v = np.sort(a.ravel())
    assert a.shape == shape
    assert np.all(np.diff(v) >= 0.25 - 1e-12)


@given(st.data())
def test_arrays_can_be_non_contiguous_with_same_values(data):
    shape = data.draw(S.shapes(min_dims=2, max_dims=3, min_side=2))
    a = data.draw(S.arrays(shape, contiguous=False))
    assert a.shape == shape
    assert np.isfinite(a).all()


def test_non_contiguous_layouts_occur():
    seen = set()

    @given(S.arrays((3, 4), contiguous=False))
    def probe(a):
        seen.add(a.flags.c_contiguous)

    probe()
    assert seen == {True, False}


@given(S.conv_geometry())
def test_conv_geometry_has_non_empty_output(g):
    for n, k, s, p, d in zip(g["size"], g["kernel"], g["stride"], g["padding"], g["dilation"]):
        assert out_size_ref(n, k, s, p, d) >= 1
    assert g["C_in"] % g["groups"] == 0 and g["C_out"] % g["groups"] == 0


def test_gradcheck_modes_pass_on_a_correct_op():
    x = mc.tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True)
    y = mc.tensor(np.random.default_rng(2).standard_normal((4, 2)), requires_grad=True)
    for mode in ("elementwise", "random"):
        assert gradcheck(lambda a, b: (a @ b).exp(), [x, y], mode=mode)
