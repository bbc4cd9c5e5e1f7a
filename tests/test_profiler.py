"""minicnn.profiler: op counts derived from the code, consistency of times, sort orders, no effect
on results, nesting, threads, shapes/bytes, the Chrome trace and the cost when off."""
import json
import threading
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import autograd, nn
from minicnn.profiler import SORT_KEYS, profile, record_function


def _net():
    mc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 2 * 2, 4))


def _batch():
    rng = np.random.default_rng(0)
    return mc.Tensor(rng.standard_normal((2, 2, 6, 6)).astype(np.float32)), mc.Tensor(np.array([1, 3]))


def _step(net, x, y):
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return loss


# Derived from the code, not from the profiler:
#  - nn.Conv2d -> F.conv2d -> Conv2d.apply (bias passed to the same op);
#  - nn.ReLU -> ReLU.apply;
#  - nn.MaxPool2d -> F.max_pool2d -> MaxPool2d.apply on the 4-D input, then `restore(y)`
#    (functional/pool.py::_as_planes) reshapes the output back to the caller's layout: 1 Reshape;
#  - nn.Flatten -> F.flatten -> reshape: 1 Reshape;
#  - nn.Linear -> Linear.apply;
#  - F.cross_entropy = nll_loss(log_softmax(x)): LogSoftmax.apply, NLLLoss.apply (mean inside).
# Every one of them is on the path from the loss to the weights, so each node runs backward once.
EXPECTED = {"Conv2d": 1, "ReLU": 1, "MaxPool2d": 1, "Reshape": 2, "Linear": 1, "LogSoftmax": 1, "NLLLoss": 1}


def _counts(prof, kind):
    return Counter(e.name for e in prof.events() if e.kind == kind)


def test_op_counts_of_a_small_network():
    net = _net()
    x, y = _batch()
    with profile() as prof:
        _step(net, x, y)
    assert _counts(prof, "forward") == EXPECTED
    assert _counts(prof, "backward") == EXPECTED
    assert {e.device for e in prof.events()} == {"cpu"}
    rows = {r.key: r for r in prof.key_averages()}
    assert {k: (r.count, r.backward_count) for k, r in rows.items()} == {k: (n, n) for k, n in EXPECTED.items()}
    # the backward pass runs in reverse order of the forward: the loss's ops first, Conv2d last
    bwd = [e.name for e in prof.events() if e.kind == "backward"]
    assert bwd[0] == "NLLLoss" and bwd[-1] == "Conv2d"


def test_forward_only_under_no_grad_records_no_backward():
    net = _net()
    x, _ = _batch()
    with profile() as prof, mc.no_grad():
        net(x)
    assert _counts(prof, "backward") == Counter()
    assert _counts(prof, "forward") == {k: n for k, n in EXPECTED.items() if k not in ("LogSoftmax", "NLLLoss")}


@given(n=st.integers(0, 4), shape=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_counts_follow_the_number_of_calls(n, shape):
    x = mc.Tensor(np.ones(shape), requires_grad=True)
    with profile(record_shapes=True) as prof:
        y = x
        for _ in range(n):
            y = F.relu(y)
        if n:
            y.sum().backward()
    assert _counts(prof, "forward") == Counter({"ReLU": n, "Sum": 1} if n else {})
    assert _counts(prof, "backward") == Counter({"ReLU": n, "Sum": 1} if n else {})
    assert all(e.input_shapes == (shape,) for e in prof.events())


def test_times_are_consistent():
    net = _net()
    x, y = _batch()
    with profile() as prof:
        with record_function("step"):
            _step(net, x, y)
    events = prof.events()
    wall = prof.wall_time_ns
    for e in events:
        assert 0 <= e.self_ns <= e.duration_ns
        assert prof._start_ns <= e.start_ns <= e.end_ns <= prof._end_ns
    (step,) = [e for e in events if e.name == "step"]
    ops = [e for e in events if e.kind != "range"]
    assert step.kind == "range" and step.depth == 0 and all(e.depth == 1 for e in ops)
    assert step.self_ns == step.duration_ns - sum(e.duration_ns for e in ops)
    assert sum(e.self_ns for e in events) <= wall
    avgs = prof.key_averages()
    for r in avgs:
        mine = [e for e in events if e.name == r.key]
        assert r.forward_time_total_ns == sum(e.duration_ns for e in mine if e.kind != "backward")
        assert r.backward_time_total_ns == sum(e.duration_ns for e in mine if e.kind == "backward")
        assert r.cpu_time_total_ns == r.forward_time_total_ns + r.backward_time_total_ns
        assert r.cpu_time_total_ns >= r.self_cpu_time_total_ns
        assert r.forward_time_avg_ns * r.count == pytest.approx(r.forward_time_total_ns)
    assert sum(r.self_cpu_time_total_ns for r in avgs) == sum(e.self_ns for e in events) <= wall


def test_sort_orders_row_limit_and_table():
    net = _net()
    x, y = _batch()
    with profile(profile_memory=True) as prof:
        _step(net, x, y)
    avgs = prof.key_averages()
    for key in SORT_KEYS:
        rows = avgs.sorted_by(key)
        assert sorted(r.key for r in rows) == sorted(EXPECTED)
        if key == "name":
            assert [r.key for r in rows] == sorted(EXPECTED)
            continue
        attr = key if key in ("count", "backward_count", "cpu_memory_usage") else key + "_ns"
        values = [getattr(r, attr) for r in rows]
        assert values == sorted(values, reverse=True)
        table = avgs.table(sort_by=key, row_limit=3)
        body = table.splitlines()[3:-2]
        assert [line.split()[0] for line in body] == [r.key for r in rows[:3]]
    table = avgs.table()
    for name in EXPECTED:
        assert name in table
    for column in ("Calls", "Fwd total", "Fwd avg", "Bwd total", "Bwd avg", "Total", "% wall", "Bytes out"):
        assert column in table
    with pytest.raises(ValueError, match="sort_by='cuda_time'.*self_cpu_time_total"):
        avgs.table(sort_by="cuda_time")


def test_profiling_does_not_change_results():
    x, y = _batch()
    results = []
    for on in (False, True):
        net = _net()
        with profile(enabled=on, record_shapes=True, profile_memory=True):
            loss = _step(net, x, y)
        results.append([loss.numpy()] + [p.grad.numpy().copy() for p in net.parameters()])
    for a, b in zip(*results):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def test_shapes_and_bytes():
    rng = np.random.default_rng(1)
    a = mc.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = mc.Tensor(rng.standard_normal((5, 2)), requires_grad=True)
    with profile(record_shapes=True, profile_memory=True) as prof:
        ya, yb, yc = F.relu(a), F.relu(b), F.relu(a)
        (ya.sum() + yb.sum() + yc.sum()).backward()
    relus = [e for e in prof.events() if e.name == "ReLU"]
    fwd = [e for e in relus if e.kind == "forward"]
    assert [e.input_shapes for e in fwd] == [((3, 4),), ((5, 2),), ((3, 4),)]
    assert [e.bytes for e in fwd] == [ya.numpy().nbytes, yb.numpy().nbytes, yc.numpy().nbytes]
    # a backward event returns the gradient of its input and carries its forward's input shapes
    assert sorted(e.bytes for e in relus if e.kind == "backward") == sorted([3 * 4 * 8, 5 * 2 * 8, 3 * 4 * 8])
    by_shape = {r.input_shapes: r for r in prof.key_averages(group_by_input_shape=True) if r.key == "ReLU"}
    assert {s: (r.count, r.backward_count) for s, r in by_shape.items()} == {((3, 4),): (2, 2), ((5, 2),): (1, 1)}
    (merged,) = [r for r in prof.key_averages() if r.key == "ReLU"]
    assert (merged.count, merged.cpu_memory_usage) == (3, 2 * (2 * 96 + 80))
    assert "[[3, 4]]" in prof.key_averages(group_by_input_shape=True).table()

    with profile() as plain:
        F.relu(a)
    assert plain.events()[0].input_shapes is None and plain.events()[0].bytes is None
    with pytest.raises(ValueError, match="group_by_input_shape=True needs profile\\(record_shapes=True\\)"):
        plain.key_averages(group_by_input_shape=True)


def test_nested_profiles_and_nothing_after_exit():
    x = mc.Tensor(np.ones((2, 2)), requires_grad=True)
    assert autograd._profiler_hook is None
    with profile() as outer:
        F.relu(x)
        with profile(record_shapes=True) as inner:
            F.sigmoid(x)
        F.tanh(x)
    assert autograd._profiler_hook is None  # off again: one global read per op
    assert [e.name for e in outer.events()] == ["ReLU", "Sigmoid", "Tanh"]
    assert [e.name for e in inner.events()] == ["Sigmoid"]
    assert inner.events()[0].input_shapes == ((2, 2),) and outer.events()[1].input_shapes is None
    assert inner.events()[0].duration_ns == outer.events()[1].duration_ns
    F.relu(x).sum().backward()
    with record_function("after"):
        F.relu(x)
    assert len(outer.events()) == 3 and len(inner.events()) == 1
    with pytest.raises(RuntimeError, match="already entered"):
        with outer:
            pass


def test_disabled_profile_records_nothing():
    x = mc.Tensor(np.ones(3))
    with profile(enabled=False) as prof:
        F.relu(x)
        assert autograd._profiler_hook is None
    assert prof.events() == []


def test_other_threads_are_not_recorded():
    x = mc.Tensor(np.ones((2, 2)), requires_grad=True)
    started, stop = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with profile() as own:
            started.set()
            while not stop.is_set():
                F.sigmoid(x).sum().backward()
        seen["own"] = own

    t = threading.Thread(target=worker)
    with profile() as prof:
        t.start()
        started.wait(10)
        F.relu(x).sum().backward()
        F.sigmoid(x)  # the worker's ops are all Sigmoid + Sum; this one is ours
    stop.set()
    t.join(10)
    assert _counts(prof, "forward") == {"ReLU": 1, "Sum": 1, "Sigmoid": 1}
    assert _counts(prof, "backward") == {"ReLU": 1, "Sum": 1}
    assert {e.thread for e in prof.events()} == {threading.get_ident()}
    theirs = seen["own"].events()
    assert theirs and {e.name for e in theirs} == {"Sigmoid", "Sum"}
    assert autograd._profiler_hook is None


def test_record_function_as_context_and_decorator():
    x = mc.Tensor(np.ones(4))

    @record_function("twice")
    def twice(t, depth):
        return twice(F.relu(t), depth - 1) if depth else t

    twice(x, 1)  # no profile open: nothing happens
    with profile() as prof:
        with record_function("outer"):
            twice(x, 1)
    names = [(e.name, e.kind, e.depth) for e in prof.events()]
    assert names == [("ReLU", "forward", 2), ("twice", "range", 2), ("twice", "range", 1), ("outer", "range", 0)]
    outer = prof.events()[-1]
    assert outer.self_ns == outer.duration_ns - prof.events()[2].duration_ns
    (row,) = [r for r in prof.key_averages() if r.key == "twice"]
    assert row.count == 2 and row.backward_count == 0


def test_chrome_trace(tmp_path):
    net = _net()
    x, y = _batch()
    with profile(record_shapes=True) as prof:
        _step(net, x, y)
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())["traceEvents"]
    assert len(trace) == len(prof.events())
    assert Counter(ev["name"] for ev in trace if ev["cat"] == "forward") == EXPECTED
    assert all(ev["ph"] == "X" and ev["dur"] >= 0 and ev["ts"] >= 0 for ev in trace)
    assert trace[0]["args"]["input_shapes"] == [[2, 2, 6, 6], [3, 2, 3, 3], [3]]


def test_device_name_is_recorded_on_cuda_emu():
    x = mc.Tensor(np.array([-1.0, 2.0]), device="cuda-emu", requires_grad=True)
    with profile() as prof:
        F.relu(x).sum().backward()
    assert {e.device for e in prof.events()} == {"cuda-emu"}
    assert np.array_equal(x.grad.numpy(), [0.0, 1.0])
