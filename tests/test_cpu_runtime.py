"""Process-wide CPU settings of ``kernels/cpu/_threads.py``: the task pool lets go of each job's
arrays when it ends; glibc malloc keeps the freed blocks of
a training step for the next one, so their pages are not faulted in again (each fault ~1.6 µs per
4 KiB page on these machines). Measured as minor page faults per step, in fresh interpreters with
the tuning on (the default) and off (``MINICNN_MALLOC_TUNING=0``): the median of 11 steps after
5 warm-up ones. (A mean over the steps once failed a CI run at 84 faults a step, tuned: the first
steps reuse heap blocks freed by Numba's compilation, which this VM's DAMON ``pageout`` scheme
may have paged out meanwhile, so one step can fault a block in once; the steady state is ~0.)"""
import os
import subprocess
import sys
import weakref

import numpy as np
import pytest

_STEP = """
import resource, numpy as np
import minicnn as mc, minicnn.functional as F
x = mc.Tensor(np.random.default_rng(0).standard_normal((64, 32, 26, 26), dtype=np.float32), requires_grad=True)
def step():  # 5.5 MB activations, as after the seed CNN's first convolution
    F.max_pool2d(F.relu(x), 2).sum().backward()
    x.grad = None
for _ in range(5):
    step()
faults = []
for _ in range(11):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(sorted(faults)[5])  # the median step
"""


def _faults_per_step(tuning):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["MINICNN_MALLOC_TUNING"] = tuning
    out = subprocess.run([sys.executable, "-c", _STEP], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt and minor-fault counts: Linux")
def test_malloc_tuning_keeps_freed_blocks_for_the_next_step():
    from minicnn.kernels.cpu._threads import tune_malloc

    assert tune_malloc()  # glibc here: the thresholds were set
    tuned, untuned = _faults_per_step("1"), _faults_per_step("0")
    # 3 arrays of 5.5 MB and 1 of 1.4 MB per step: 1,000–3,400 faults when they are faulted in again
    # (measured; fewer where the kernel backs them with huge pages), ~0 when the blocks are reused
    assert tuned < 50, tuned
    assert untuned > 10 * max(tuned, 1.0), (tuned, untuned)


def _double(src, dst, i0, i1):
    dst[i0:i1] = 2.0 * src[i0:i1]


def test_task_pool_keeps_no_array_of_a_finished_job():
    """A worker thread held its last job (the closure over the op's arrays) until the next parallel
    call: in eval mode each op's input stayed alive through the next op (VGG-11's first pooled
    activation, 6 MiB at batch 8, measured)."""
    from minicnn.kernels.cpu import _threads

    if _threads.NUM_THREADS < 2:
        pytest.skip("the pool has no helper thread with one CPU")
    src = np.arange(1 << 20, dtype=np.float64)  # 8 MiB: over_chunks splits it over the threads
    dst = np.empty_like(src)
    gone = weakref.ref(src)
    _threads.over_chunks(_double, src.size, src, dst)
    np.testing.assert_array_equal(dst, 2.0 * np.arange(1 << 20, dtype=np.float64))
    del src
    assert gone() is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX")
def test_workspaces_are_private_to_a_forked_process():
    """A workspace of a process forked after its allocation (a data-loader worker, a distributed
    rank) is a copy-on-write copy: the child's writes do not reach the parent's buffer."""
    from minicnn.kernels.cpu._im2col import Workspace

    ws = Workspace()
    buf = ws.get((1024,), np.float32)
    buf[:] = 1.0
    pid = os.fork()
    if pid == 0:  # the child writes its copy and leaves at once
        ws.get((1024,), np.float32)[:] = 2.0
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    np.testing.assert_array_equal(ws.get((1024,), np.float32), np.ones(1024, np.float32))
