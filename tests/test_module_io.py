"""Module.save / Module.load: a round trip on every device, and a clear ValueError naming the
file for anything that is not a ``.npz`` archive of arrays (a ``.npy``, text, a truncated or
corrupted archive, pickled objects)."""
import io
import zipfile

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import nn


def _net(seed=0):
    mc.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 2))


def _saved_bytes():
    """The bytes ``Module.save`` writes for :func:`_net`."""
    buf = io.BytesIO()
    np.savez(buf, **{k: v.numpy() for k, v in _net().state_dict().items()})
    return buf.getvalue()


@given(seed=st.integers(0, 2**16), name=st.sampled_from(["model.npz", "model", "weights.bin"]))
def test_load_reads_what_save_writes(tmp_path_factory, device, seed, name):
    a = _net(seed).to(device)
    a[1].running_mean.data[...] = a.state_dict()["1.running_mean"].device.from_numpy(np.arange(3.0))
    path = tmp_path_factory.mktemp("io") / name
    a.save(path)
    b = _net(seed + 1).to(device).load(path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    with np.load(path) as f:  # the file is a plain .npz of the dotted names
        assert set(f.files) == set(a.state_dict())
        np.testing.assert_array_equal(f["4.weight"], a[4].weight.numpy())


def _expect_not_npz(path, what):
    with pytest.raises(ValueError) as e:
        _net().load(path)
    msg = str(e.value)
    assert msg.startswith("Module.load: ") and str(path) in msg and ".npz" in msg and "Module.save" in msg, msg
    assert what in msg, msg


def test_load_of_a_npy_file_is_a_clear_error(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.zeros((2, 3), np.float32))
    _expect_not_npz(path, "a single array")


@pytest.mark.parametrize("content", [b"", b"hello\n", b"0.5 1.5\n2.5 3.5\n", b"PK\x03\x04 not really a zip"])
def test_load_of_a_file_of_another_kind_is_a_clear_error(tmp_path, content):
    path = tmp_path / "w.npz"
    path.write_bytes(content)
    _expect_not_npz(path, "not a .npz archive")


@given(cut=st.integers(0, len(_saved_bytes()) - 1))
@example(cut=0)
@example(cut=len(_saved_bytes()) - 1)
def test_load_of_a_truncated_npz_is_a_clear_error(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("cut") / "w.npz"
    path.write_bytes(_saved_bytes()[:cut])
    _expect_not_npz(path, "")


def test_load_of_a_corrupted_member_is_a_clear_error(tmp_path):
    data = bytearray(_saved_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("4.weight.npy")
    # flip the last stored byte of 4.weight (an array value, after its local header): the CRC fails
    h = info.header_offset
    name_len, extra_len = int.from_bytes(data[h + 26:h + 28], "little"), int.from_bytes(data[h + 28:h + 30], "little")
    data[h + 30 + name_len + extra_len + info.compress_size - 1] ^= 0xFF
    path = tmp_path / "w.npz"
    path.write_bytes(bytes(data))
    _expect_not_npz(path, "4.weight")


def test_load_of_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "w.npz"
    arrays = {k: v.numpy() for k, v in _net().state_dict().items()}
    arrays["4.weight"] = np.array([object()] * 2, dtype=object)
    np.savez(path, **arrays)
    _expect_not_npz(path, "4.weight")


def test_load_of_another_models_npz_names_the_keys(tmp_path):
    path = tmp_path / "other.npz"
    nn.Linear(3, 2).save(path)
    with pytest.raises(RuntimeError, match=r"missing keys: 0\.weight.*unexpected keys: weight, bias"):
        _net().load(path)
