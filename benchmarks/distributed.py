"""Data-parallel scaling on one machine, allreduce bandwidth, and whether overlap would pay.

    python -m benchmarks.distributed [--samples-seed 2048] [--samples-resnet 128] [--json out.json]

It launches the MPI jobs itself (``mpiexec`` of the ``dist`` extra) from the repository root:

1. scaling: the same training work (the same samples, global batch 64, SGD) done by
   2 ranks × 1 thread each (``mpiexec -n 2``, 32 samples per rank and step) and by
   1 rank × 2 threads (one process, batch 64), for the seed CNN on the embedded digits and
   ResNet-18 (small-input stem) on digits padded to 32×32; threads = ``MINICNN_NUM_THREADS``
   (the conv task pool) and ``NUMBA_NUM_THREADS``, OpenBLAS at minicnn's default of 1 thread in
   both; time per pass over the samples,
   one untimed warm-up step first. Ratio = time(1 × 2 threads) / time(2 × 1 thread): above 1 the
   two ranks win. Both runs are made in one invocation, so the ratio compares like with like.
2. allreduce bandwidth: ``MPI_Allreduce`` of float32 arrays of 1 KiB .. 64 MiB between the 2 ranks,
   reported as MB/s of array size over time (algorithm bandwidth).
3. overlap: the seed CNN's backward (batch 32), the allreduce of its gradients, and a nonblocking
   ``MPI_Iallreduce`` of the same gradients started before the backward and waited for after it.
   Overlap pays only if the third is clearly below backward + allreduce.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GLOBAL_BATCH = 64


def _threads_env(n):
    """``n`` threads for minicnn's conv task pool and Numba, one for OpenBLAS (minicnn's default:
    OpenBLAS's lockstep threads collapse on a loaded machine), in every rank."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return dict(env, MINICNN_NUM_THREADS=str(n), NUMBA_NUM_THREADS=str(n), MINICNN_BLAS_THREADS="1")


def _data(model, samples):
    from minicnn.data import load_digits

    x, y = load_digits("train").get_batch(np.arange(samples))
    if model == "resnet18":
        x = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))  # 28×28 → 32×32
    return x.astype(np.float32), y


def _model(name):
    from minicnn import models

    if name == "seed":
        return models.seed_cnn(in_channels=1, num_classes=10, image_size=28)
    return models.resnet18(num_classes=10, in_channels=1, small_input=True)


def _time_training(name, samples):
    """Seconds of one pass over ``samples`` digits at global batch 64 on this job's ranks."""
    import minicnn.functional as F
    from minicnn import Tensor, distributed as dist, optim
    from minicnn.random import manual_seed

    r, world = dist.init()
    manual_seed(0)
    model = _model(name)
    if world > 1:
        model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(model))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = _data(name, samples)
    local = GLOBAL_BATCH // world

    def step(lo):
        rows = slice(lo + r * local, lo + (r + 1) * local)
        loss = F.cross_entropy(model(Tensor(x[rows])), Tensor(y[rows]))
        opt.zero_grad()
        loss.backward()
        if world > 1:
            model.sync_gradients()
        opt.step()

    step(0)  # warm-up: Numba's cached kernels load, workspaces are allocated
    dist.barrier()
    t0 = time.perf_counter()
    for lo in range(0, samples - GLOBAL_BATCH + 1, GLOBAL_BATCH):
        step(lo)
    dist.barrier()
    return time.perf_counter() - t0


def _bandwidth():
    """(bytes, seconds per allreduce, MB/s) for float32 arrays of 1 KiB .. 64 MiB."""
    from minicnn import distributed as dist

    rows = []
    for nbytes in [2 ** k for k in range(10, 27, 2)]:
        a = np.ones(nbytes // 4, dtype=np.float32)
        dist.allreduce(a)
        reps = max(3, min(1000, int(2e8 // nbytes)))
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            dist.allreduce(a)
        dt = (time.perf_counter() - t0) / reps
        rows.append((nbytes, dt, nbytes / dt / 1e6))
    return rows


def _overlap(repeats=5):
    """Median ms of: backward alone, allreduce of the gradients alone, Iallreduce ‖ backward."""
    import minicnn.functional as F
    from minicnn import Tensor, distributed as dist
    from mpi4py import MPI

    model = _model("seed")
    x, y = _data("seed", 32)
    grads = np.zeros(sum(p.size for p in model.parameters()), dtype=np.float32)
    comm = MPI.COMM_WORLD

    def backward():
        model.zero_grad()
        F.cross_entropy(model(Tensor(x)), Tensor(y)).backward()

    times = {"backward": [], "allreduce": [], "overlapped": []}
    backward()
    for _ in range(repeats):
        dist.barrier()
        t0 = time.perf_counter()
        backward()
        t1 = time.perf_counter()
        dist.allreduce(grads)
        t2 = time.perf_counter()
        dist.barrier()
        t3 = time.perf_counter()
        req = comm.Iallreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
        backward()
        req.Wait()
        t4 = time.perf_counter()
        times["backward"].append(t1 - t0)
        times["allreduce"].append(t2 - t1)
        times["overlapped"].append(t4 - t3)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()} | {"gradient_mb": grads.nbytes / 1e6}


def worker(args):
    from minicnn import distributed as dist

    dist.init()
    result = {}
    if args.worker == "train":
        result = {"seed": _time_training("seed", args.samples_seed),
                  "resnet18": _time_training("resnet18", args.samples_resnet)}
    elif args.worker == "comm":
        result = {"bandwidth": _bandwidth(), "overlap": _overlap()}
    if dist.is_main_process():
        with open(args.result, "w") as f:
            json.dump(result, f)


def _launch(ranks, threads, extra, out):
    cmd = [sys.executable, "-m", "benchmarks.distributed", *extra, "--result", out]
    if ranks > 1:
        cmd = ["mpiexec", "-n", str(ranks), *cmd]
    subprocess.run(cmd, cwd=ROOT, env=_threads_env(threads), check=True)
    with open(out) as f:
        return json.load(f)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    p.add_argument("--samples-seed", type=int, default=2048, help="digits per timed pass of the seed CNN")
    p.add_argument("--samples-resnet", type=int, default=128, help="digits per timed pass of ResNet-18")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--worker", choices=("train", "comm"), help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    import tempfile

    sizes = ["--samples-seed", str(args.samples_seed), "--samples-resnet", str(args.samples_resnet)]
    with tempfile.TemporaryDirectory() as tmp:
        two = _launch(2, 1, ["--worker", "train", *sizes], os.path.join(tmp, "a.json"))
        one = _launch(1, 2, ["--worker", "train", *sizes], os.path.join(tmp, "b.json"))
        comm = _launch(2, 1, ["--worker", "comm"], os.path.join(tmp, "c.json"))
    samples = {"seed": args.samples_seed, "resnet18": args.samples_resnet}
    print(f"Data-parallel scaling, global batch {GLOBAL_BATCH}, seconds per pass over the samples:\n")
    print("| model | samples | 1 rank × 2 threads | 2 ranks × 1 thread | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name in ("seed", "resnet18"):
        label = "seed CNN (digits 28×28)" if name == "seed" else "ResNet-18 small-input (digits padded to 32×32)"
        print(f"| {label} | {samples[name]} | {one[name]:.2f} s | {two[name]:.2f} s | {one[name] / two[name]:.2f} |")
    print("\nMPI_Allreduce of float32 arrays, 2 ranks on this machine:\n")
    print("| size | time | MB/s |")
    print("|---:|---:|---:|")
    for nbytes, dt, rate in comm["bandwidth"]:
        size = f"{nbytes // 2 ** 20} MiB" if nbytes >= 2 ** 20 else f"{nbytes // 1024} KiB"
        print(f"| {size} | {dt * 1e6:.1f} µs | {rate:.0f} |")
    o = comm["overlap"]
    print(f"\nOverlap (seed CNN, batch 32, {o['gradient_mb']:.2f} MB of gradients): backward {o['backward']:.1f} ms, "
          f"allreduce {o['allreduce']:.2f} ms, Iallreduce started before backward and waited after "
          f"{o['overlapped']:.1f} ms (sum of the first two: {o['backward'] + o['allreduce']:.1f} ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"one_rank_two_threads": one, "two_ranks_one_thread": two, "samples": samples, **comm}, f,
                      indent=1)


if __name__ == "__main__":
    main()
