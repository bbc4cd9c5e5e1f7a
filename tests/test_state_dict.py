"""state_dict / load_state_dict / save / load: PyTorch's dotted names, buffers included,
round trips through .npz, and loading (and exporting to) PyTorch models."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import nn

torch = pytest.importorskip("torch")
tnn = torch.nn


def _ours():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def _theirs():
    return tnn.Sequential(tnn.Conv2d(1, 4, 3), tnn.BatchNorm2d(4), tnn.ReLU(), tnn.Flatten(), tnn.Linear(4 * 4 * 4, 3))


def _train_a_little(model):
    """Move BatchNorm's running statistics away from their initial values."""
    x = mc.Tensor(np.random.default_rng(0).standard_normal((5, 1, 6, 6)).astype(np.float32) * 3 + 1)
    model.train()
    model(x)
    model(x)


def test_state_dict_names_equal_pytorchs():
    assert list(_ours().state_dict().keys()) == list(_theirs().state_dict().keys())


def test_save_load_npz_round_trip(tmp_path):
    a = _ours()
    _train_a_little(a)
    path = tmp_path / "model.npz"
    a.save(path)
    b = _ours().load(path)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
        assert va.dtype == vb.dtype
    assert b[1].num_batches_tracked.item() == 2
    x = mc.Tensor(np.ones((2, 1, 6, 6), np.float32))
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert set(np.load(path).files) == set(a.state_dict())


def test_load_torch_state_dict_then_same_outputs():
    theirs = _theirs()
    theirs.train()
    with torch.no_grad():
        theirs(torch.randn(6, 1, 6, 6) * 2 + 1)  # running stats move
    ours = _ours()
    result = ours.load_state_dict(theirs.state_dict())  # torch tensors, converted duck-typed
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert ours[1].num_batches_tracked.item() == 1
    theirs.eval(), ours.eval()
    x = np.random.default_rng(1).standard_normal((3, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(ours(mc.Tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), atol=1e-5)


def test_export_to_torch():
    ours = _ours()
    _train_a_little(ours)
    theirs = _theirs()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    np.testing.assert_array_equal(theirs[1].running_var.numpy(), ours[1].running_var.numpy())


def test_missing_num_batches_tracked_is_tolerated():
    sd = {k: v for k, v in _theirs().state_dict().items() if not k.endswith("num_batches_tracked")}
    _ours().load_state_dict(sd)


def test_strict_errors_name_the_keys():
    sd = _theirs().state_dict()
    del sd["4.bias"]
    sd["5.weight"] = torch.zeros(3)
    with pytest.raises(RuntimeError, match=r"missing keys: 4\.bias.*unexpected keys: 5\.weight"):
        _ours().load_state_dict(sd)
    result = _ours().load_state_dict(sd, strict=False)
    assert result.missing_keys == ["4.bias"] and result.unexpected_keys == ["5.weight"]
    bad = _theirs().state_dict()
    bad["0.weight"] = torch.zeros(4, 1, 5, 5)
    with pytest.raises(RuntimeError, match=r"size mismatch for 0\.weight: the checkpoint has shape \(4, 1, 5, 5\), "
                                           r"the model has \(4, 1, 3, 3\)"):
        _ours().load_state_dict(bad, strict=False)


def test_load_keeps_parameter_objects_and_dtype():
    ours = _ours()
    w = ours[0].weight
    ours.load_state_dict({k: v.double() for k, v in _theirs().state_dict().items()})
    assert ours[0].weight is w and w.dtype == np.float32


def test_non_persistent_buffers_and_nested_names():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.BatchNorm1d(2)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(2, 1)})
            self.register_buffer("scratch", mc.zeros(2), persistent=False)

    keys = list(Block().state_dict())
    assert keys == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.1.running_mean",
                    "layers.1.running_var", "layers.1.num_batches_tracked", "heads.cls.weight", "heads.cls.bias"]
    assert "scratch" in dict(Block().named_buffers())


def test_loss_weights_are_buffers():
    loss = nn.CrossEntropyLoss(weight=np.array([1.0, 2.0]))
    assert list(loss.state_dict()) == list(torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0])).state_dict())
