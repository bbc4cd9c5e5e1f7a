"""minicnn.distributed: data-parallel training on MPI.

Two kinds of tests:
- in this process (world size 1, no mpiexec): the sampler's properties (hypothesis), SyncNormalize
  against finite differences and PyTorch, SyncBatchNorm = BatchNorm2d at world size 1, the wrappers,
  the command line's errors;
- ``mpiexec -n 2`` launches of the scripts in tests/dist_scripts (few: each costs 2-4 s of start-up),
  compared here with one process on the combined batch: SyncBatchNorm forward/backward, the
  parameters after 3 SGD-momentum steps (float64 ≤ 1e-10 relative; the seed CNN in float32), a
  mismatched model and a failing rank (the job ends, no hang), and ``python -m minicnn train
  --distributed``.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn import Tensor, distributed as dist, nn, optim
from minicnn.__main__ import build_model, build_parser, main
from minicnn.data import DataLoader, load_digits
from minicnn.distributed import (DistributedDataParallel, DistributedSampler, SyncBatchNorm, SyncNormalize,
                                 convert_sync_batchnorm)
from minicnn.testing import gradcheck
from minicnn.train import Trainer

from dist_scripts import nets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "dist_scripts")
TIMEOUT = 60

needs_mpiexec = pytest.mark.skipif(
    not dist.mpi_available() or shutil.which("mpiexec") is None,
    reason='mpi4py or mpiexec is missing: pip install -e ".[dist]" installs mpi4py and MPICH')


def mpiexec(*args, cwd=ROOT):
    """``mpiexec -n 2 python ARGS`` with one thread per rank; (returncode, stdout, stderr, seconds)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MINICNN_NUM_THREADS="1")
    t0 = time.perf_counter()
    p = subprocess.run(["mpiexec", "-n", "2", sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---- DistributedSampler (in-process: every rank's sampler built here) ----------------------------

@given(n=st.integers(0, 60), world=st.integers(1, 5), shuffle=st.booleans(), drop_last=st.booleans(),
       seed=st.integers(0, 2 ** 16), epoch=st.integers(0, 3))
def test_sampler_shards_are_equal_and_cover_the_dataset(n, world, shuffle, drop_last, seed, epoch):
    samplers = [DistributedSampler(n, world, r, shuffle=shuffle, seed=seed, drop_last=drop_last) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    shards = [s.indices() for s in samplers]
    size = n // world if drop_last else -(-n // world)
    assert all(len(sh) == size == len(s) for sh, s in zip(shards, samplers))
    every = np.concatenate(shards) if shards else np.zeros(0, np.int64)
    assert every.size == 0 or (every.min() >= 0 and every.max() < n)
    counts = np.bincount(every, minlength=n)
    if drop_last:
        assert counts.max(initial=0) <= 1 and counts.sum() == world * (n // world)  # disjoint, only the tail dropped
    else:
        assert counts.min(initial=1) >= 1  # every index is seen; the padding repeats a few
        assert counts.sum() - n == world * size - n < world
    # the order is the same on every rank for a seed and epoch: rank r holds positions r, r+K, ...
    if not shuffle:
        order = np.resize(np.arange(n), world * size) if not drop_last else np.arange(world * size)
        for r, sh in enumerate(shards):
            np.testing.assert_array_equal(sh, order[r::world])
    assert list(samplers[0]) == shards[0].tolist()


@given(seed=st.integers(0, 2 ** 16), rank=st.integers(0, 2))
def test_sampler_reshuffles_per_epoch_and_agrees_across_ranks_given_the_seed(seed, rank):
    n, world = 50, 3
    a, b = DistributedSampler(n, world, rank, seed=seed), DistributedSampler(n, world, rank, seed=seed)
    first = a.indices()
    np.testing.assert_array_equal(first, b.indices())      # same seed, same epoch: same shard
    np.testing.assert_array_equal(first, a.indices())      # no set_epoch: the same order again
    a.set_epoch(1)
    assert not np.array_equal(first, a.indices())          # a new epoch: a new permutation
    b.set_epoch(1)
    np.testing.assert_array_equal(a.indices(), b.indices())
    other = DistributedSampler(n, world, rank, seed=seed + 1)
    assert not np.array_equal(first, other.indices())


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="rank=2"):
        DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="num_replicas=0"):
        DistributedSampler(10, 0, 0)
    with pytest.raises(TypeError, match="dataset_len"):
        DistributedSampler(10.5, 2, 0)


def test_dataloader_takes_a_sampler():
    digits = load_digits("test")
    s = DistributedSampler(len(digits), 3, 1, seed=4)
    loader = DataLoader(digits, 64, sampler=s)
    assert len(loader) == -(-len(s) // 64)
    xs, ys = zip(*loader)
    np.testing.assert_array_equal(np.concatenate(ys), digits.get_batch(s.indices())[1])
    with pytest.raises(ValueError, match="sampler and shuffle"):
        DataLoader(digits, 8, shuffle=True, sampler=s)


# ---- world size 1 (this process) ---------------------------------------------------------------

def test_init_without_mpiexec_is_a_world_of_one():
    assert dist.init() == (0, 1)
    assert (dist.rank(), dist.world_size(), dist.is_main_process()) == (0, 1, True)
    a = np.arange(4.0)
    assert dist.allreduce(a) is a and np.array_equal(a, np.arange(4.0))
    np.testing.assert_array_equal(dist.reduce_sums(2.5, 3), [2.5, 3.0])
    with pytest.raises(ValueError, match="C-contiguous"):
        dist.allreduce(np.zeros((4, 4))[:, ::2])
    with pytest.raises(ValueError, match="op must be"):
        dist.allreduce(a, op="mean")
    with pytest.raises(ZeroDivisionError):  # a world of one: the exception propagates, no abort
        dist.run_or_abort(lambda: 1 / 0)


def _bn_inputs():
    sizes, x, gy, weight, bias = nets.bn_case(2)
    return x, gy, weight, bias


def test_sync_normalize_gradcheck_and_torch():
    x, gy, _, _ = _bn_inputs()
    xs = x[:3, :2, :2, :3]
    gradcheck(lambda t: SyncNormalize.apply(t, eps=1e-5), [Tensor(xs, requires_grad=True)], name="SyncNormalize")
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.batch_norm(xt, None, None, training=True, eps=1e-5)
    yt.backward(torch.tensor(gy))
    ours = Tensor(x, requires_grad=True)
    y = SyncNormalize.apply(ours, eps=1e-5)
    y.backward(gy)
    assert rel_err(y.numpy(), yt.detach().numpy()) < 1e-12
    assert rel_err(ours.grad.numpy(), xt.grad.numpy()) < 1e-12


def test_sync_batchnorm_at_world_size_one_is_batchnorm2d():
    x, gy, weight, bias = _bn_inputs()
    sync, plain = SyncBatchNorm(4, momentum=0.3, dtype=np.float64), nn.BatchNorm2d(4, momentum=0.3, dtype=np.float64)
    for m in (sync, plain):
        m.weight.data[...], m.bias.data[...] = weight, bias
    outs = []
    for m in (sync, plain):
        xt = Tensor(x, requires_grad=True)
        y = m(xt)
        y.backward(gy)
        outs.append([y.numpy(), xt.grad.numpy(), m.weight.grad.numpy(), m.bias.grad.numpy(),
                     m.running_mean.numpy(), m.running_var.numpy(), m.num_batches_tracked.numpy()])
        m.eval()
        outs[-1].append(m(Tensor(x)).numpy())
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"SyncBatchNorm\(4.*expected input with 4 channels"):
        sync(Tensor(np.zeros((2, 3, 4, 4))))


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_names():
    net = nets.small_bn_net(seed=3)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    out = convert_sync_batchnorm(net)
    assert out is net and [type(m).__name__ for m in net].count("SyncBatchNorm") == 2
    assert all(a is b for a, b in zip(params, net.parameters()))
    assert list(net.state_dict()) == list(before)
    bn = nn.BatchNorm1d(3)
    assert isinstance(convert_sync_batchnorm(bn), SyncBatchNorm)
    assert convert_sync_batchnorm(bn).running_mean is bn.running_mean


def test_ddp_at_world_size_one_is_the_model():
    net = nets.small_bn_net(seed=2)
    ref = nets.small_bn_net(seed=2)
    model = DistributedDataParallel(net, bucket_cap_mb=0.001)
    assert len(model.buckets) > 1 and sum(len(b) for b in model.buckets) == len(list(net.parameters()))
    assert list(model.state_dict()) == list(ref.state_dict())  # no "module." prefix: loads into the plain model
    ref.load_state_dict(model.state_dict())
    x, y = nets.batch(0, 2, 8, 5, np.float64)
    for m in (model, ref):
        loss = F.cross_entropy(m(Tensor(x)), Tensor(y))
        loss.backward()
    model.sync_gradients()
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        DistributedDataParallel(net, bucket_cap_mb=0)
    with pytest.raises(TypeError, match="nn.Module"):
        DistributedDataParallel(lambda x: x)


# ---- the command line without MPI --------------------------------------------------------------

def test_distributed_flag_without_mpi4py_names_the_extra(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    with pytest.raises(SystemExit) as e:
        main(["train", "--distributed", "--epochs", "1", "--limit", "8", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert 'pip install -e ".[dist]"' in err and "mpi4py" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_distributed_flag_refuses_segmentation(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--task", "segmentation", "--distributed", "--epochs", "1"])
    assert "--distributed" in capsys.readouterr().err


def test_help_says_the_batch_size_is_per_rank():
    text = " ".join(build_parser().format_help().split())
    assert "--batch-size is per rank" in text


# ---- mpiexec -n 2 --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist") / "out.npz"
    rc, out, err, _ = mpiexec(os.path.join(SCRIPTS, "equivalence.py"), str(path))
    assert rc == 0, out + err
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


@needs_mpiexec
def test_sync_batchnorm_on_two_ranks_is_batchnorm_on_the_combined_batch(two_ranks):
    r = two_ranks
    x, gy, weight, bias = _bn_inputs()
    bn = nn.BatchNorm2d(4, momentum=0.3, dtype=np.float64)
    bn.weight.data[...], bn.bias.data[...] = weight, bias
    xt = Tensor(x, requires_grad=True)
    y = bn(xt)
    y.backward(gy)
    ref = dict(bn_y=y.numpy(), bn_gx=xt.grad.numpy(), bn_gw=bn.weight.grad.numpy(), bn_gb=bn.bias.grad.numpy(),
               bn_running_mean=bn.running_mean.numpy(), bn_running_var=bn.running_var.numpy())
    for k, v in ref.items():
        assert rel_err(r[k], v) < 1e-12, k
    assert r["bn_spread"] == 0  # both ranks hold the same running statistics
    torch = pytest.importorskip("torch")
    tb = torch.nn.BatchNorm2d(4, momentum=0.3).double()
    with torch.no_grad():
        tb.weight[:], tb.bias[:] = torch.tensor(weight), torch.tensor(bias)
    tx = torch.tensor(x, requires_grad=True)
    ty = tb(tx)
    ty.backward(torch.tensor(gy))
    assert rel_err(r["bn_y"], ty.detach().numpy()) < 1e-12
    assert rel_err(r["bn_gx"], tx.grad.numpy()) < 1e-12
    assert rel_err(r["bn_gw"], tb.weight.grad.numpy()) < 1e-12
    assert rel_err(r["bn_running_var"], tb.running_var.numpy()) < 1e-12


def _one_process(make, size, dtype, classes):
    """nets.STEPS SGD steps of one process on the combined batches of 2 ranks, from rank 0's weights."""
    model = make(seed=1)
    opt = optim.SGD(model.parameters(), **nets.SGD)
    for step in range(nets.STEPS):
        x, y = nets.batch(step, 2, size, classes, dtype)
        loss = F.cross_entropy(model(Tensor(x)), Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


@needs_mpiexec
def test_two_ranks_take_the_steps_of_one_process_on_the_combined_batch_float64(two_ranks):
    ref = _one_process(nets.small_bn_net, 8, np.float64, 5)
    start = {k: v.numpy() for k, v in nets.small_bn_net(seed=1).state_dict().items()}
    assert two_ranks["small_buckets"] > 1 and two_ranks["small_spread"] == 0
    for k, v in ref.items():
        got = two_ranks[f"small/{k}"]
        assert got.dtype == v.dtype and got.shape == v.shape, k
        assert rel_err(got, v) <= 1e-10, (k, rel_err(got, v))
        if k.endswith("weight"):
            assert rel_err(v, start[k]) > 1e-4, k  # the steps moved it: the check is not vacuous


@needs_mpiexec
def test_two_ranks_train_the_seed_cnn_as_one_process_float32(two_ranks):
    ref = _one_process(nets.seed_net, 32, np.float32, 10)
    assert sum(v.size for v in ref.values()) == 122_570
    assert two_ranks["seed_spread"] == 0
    for k, v in ref.items():
        got = two_ranks[f"seed/{k}"]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, v, rtol=1e-5, atol=1e-6, err_msg=k)


@needs_mpiexec
def test_collectives_on_plain_arrays(two_ranks):
    for name in ("float32", "float64", "int64"):
        got = two_ranks[f"allreduce_{name}"]
        assert got.dtype == np.dtype(name)
        np.testing.assert_array_equal(got, np.arange(5) * (1 + 2))
    np.testing.assert_array_equal(two_ranks["reduce_sums"], [1.5, 3, 20])


@needs_mpiexec
def test_mismatched_models_and_a_failing_rank_end_the_job_with_clear_messages(tmp_path):
    rc, out, err, seconds = mpiexec(os.path.join(SCRIPTS, "faults.py"), str(tmp_path))
    for r in (0, 1):  # broadcast_parameters raised on both ranks, naming the entry and the shapes
        line = (tmp_path / f"rank{r}.txt").read_text()
        assert line.startswith(f"rank {r} caught: broadcast_parameters: the model differs across ranks")
        assert "'0.weight' of shape (4, 1, 3, 3)" in line
        assert "(5, 1, 3, 3) and dtype float32 on rank 1" in line
    assert rc != 0 and seconds < TIMEOUT
    assert "rank 1 of 2 failed" in err and "a deliberate failure on this rank" in err
    assert "the allreduce returned" not in out


@needs_mpiexec
def test_command_line_trains_on_two_ranks_and_logs_once(tmp_path):
    run = tmp_path / "run"
    rc, out, err, _ = mpiexec("-m", "minicnn", "train", "--epochs", "1", "--limit", "96", "--batch-size", "16",
                              "--distributed", "--no-progress", "--out", str(run))
    assert rc == 0, out + err
    lines = out.splitlines()
    assert sum(line.startswith("minicnn: basic") for line in lines) == 1
    assert "2 ranks x batch 16" in lines[0]
    assert sum(line.startswith("epoch  1") for line in lines) == 1
    assert sum(line.startswith("test accuracy") for line in lines) == 1
    summary = json.load(open(run / "summary.json"))
    assert summary["world_size"] == 2 and summary["batch_size_per_rank"] == 16
    history = json.load(open(run / "history.json"))
    assert len(history) == 1
    # the checkpoint loads into the plain model; its evaluation on the whole test set in this
    # process equals the sharded evaluation of the two ranks
    model = build_model("basic").load(run / "checkpoint.npz")
    ev = Trainer(model, optim.SGD(model.parameters())).evaluate(DataLoader(load_digits("test"), 500))
    assert ev["test_acc"] == summary["test_accuracy"]
    assert abs(ev["test_loss"] - history[0]["test_loss"]) < 1e-6


@needs_mpiexec
def test_command_line_signals_with_batchnorm_on_two_ranks(tmp_path):
    """fcn1d has BatchNorm: on two ranks it trains as SyncBatchNorm, and rank 0's checkpoint
    (running statistics included) loads into the plain model."""
    run = tmp_path / "sig"
    rc, out, err, _ = mpiexec("-m", "minicnn", "train", "--task", "signals", "--model", "fcn1d", "--dataset",
                              "gunpoint", "--epochs", "1", "--limit", "16", "--batch-size", "4", "--distributed",
                              "--no-progress", "--out", str(run))
    assert rc == 0, out + err
    assert sum(line.startswith("epoch  1") for line in out.splitlines()) == 1
    state = np.load(run / "checkpoint.npz")
    running = [k for k in state.files if k.endswith("running_var")]
    assert running and all(not np.allclose(state[k], 1) for k in running)  # the synced statistics moved
    model = build_model("fcn1d", num_classes=2, in_channels=1).load(run / "checkpoint.npz")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), state[k])
