"""Learning-rate schedules against PyTorch's values, step by step (and momentum where cycled)."""
import math

import numpy as np
import pytest

from minicnn import nn, optim
from minicnn.optim import lr_scheduler as S

torch = pytest.importorskip("torch")
TS = torch.optim.lr_scheduler


def _optimizers(kind="sgd", lrs=(0.1, 0.01)):
    """Two parameter groups (different lrs) in both libraries."""
    ours = [nn.Parameter(np.zeros(2, np.float32)), nn.Parameter(np.zeros(3, np.float32))]
    theirs = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))]
    if kind == "sgd":
        make, tmake = (lambda g: optim.SGD(g, lr=lrs[0], momentum=0.9)), (lambda g: torch.optim.SGD(g, lr=lrs[0], momentum=0.9))
    else:
        make, tmake = (lambda g: optim.Adam(g, lr=lrs[0])), (lambda g: torch.optim.Adam(g, lr=lrs[0]))
    opt = make([{"params": [ours[0]]}, {"params": [ours[1]], "lr": lrs[1]}])
    topt = tmake([{"params": [theirs[0]]}, {"params": [theirs[1]], "lr": lrs[1]}])
    return opt, topt


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _run(make, tmake, steps, kind="sgd", metrics=None):
    opt, topt = _optimizers(kind)
    sched, tsched = make(opt), tmake(topt)
    history = []
    for t in range(steps):
        history.append((sched.get_last_lr(), tsched.get_last_lr(), _momenta(opt), _momenta(topt)))
        opt.step(), topt.step()
        if metrics is None:
            sched.step(), tsched.step()
        else:
            sched.step(metrics[t]), tsched.step(metrics[t])
    return history


SCHEDULES = [
    ("step", lambda o: S.StepLR(o, 3, gamma=0.5), lambda o: TS.StepLR(o, 3, gamma=0.5), 12),
    ("multistep", lambda o: S.MultiStepLR(o, [2, 5, 5, 9], 0.3), lambda o: TS.MultiStepLR(o, [2, 5, 5, 9], 0.3), 12),
    ("exponential", lambda o: S.ExponentialLR(o, 0.9), lambda o: TS.ExponentialLR(o, 0.9), 10),
    ("cosine", lambda o: S.CosineAnnealingLR(o, T_max=7, eta_min=1e-3),
     lambda o: TS.CosineAnnealingLR(o, T_max=7, eta_min=1e-3), 25),
    ("linear-warmup", lambda o: S.LinearLR(o, start_factor=0.1, total_iters=4),
     lambda o: TS.LinearLR(o, start_factor=0.1, total_iters=4), 8),
    ("linear-decay", lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=6),
     lambda o: TS.LinearLR(o, start_factor=1.0, end_factor=0.2, total_iters=6), 9),
    ("lambda", lambda o: S.LambdaLR(o, lambda e: 0.95 ** e), lambda o: TS.LambdaLR(o, lambda e: 0.95 ** e), 6),
    ("cyclic-triangular", lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5),
     lambda o: TS.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5), 20),
    ("cyclic-triangular2", lambda o: S.CyclicLR(o, 0.001, [0.1, 0.05], step_size_up=2, mode="triangular2"),
     lambda o: TS.CyclicLR(o, 0.001, [0.1, 0.05], step_size_up=2, mode="triangular2"), 14),
    ("cyclic-exp-range", lambda o: S.CyclicLR(o, 0.001, 0.1, step_size_up=2, mode="exp_range", gamma=0.9),
     lambda o: TS.CyclicLR(o, 0.001, 0.1, step_size_up=2, mode="exp_range", gamma=0.9), 10),
    ("onecycle", lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=17),
     lambda o: TS.OneCycleLR(o, max_lr=0.5, total_steps=17), 17),
    ("onecycle-three-phase-linear", lambda o: S.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=5,
                                                           three_phase=True, anneal_strategy="linear"),
     lambda o: TS.OneCycleLR(o, max_lr=[0.5, 0.2], epochs=3, steps_per_epoch=5, three_phase=True,
                             anneal_strategy="linear"), 15),
]


@pytest.mark.parametrize("spec", SCHEDULES, ids=[s[0] for s in SCHEDULES])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_schedule_matches_torch(spec, kind):
    name, make, tmake, steps = spec
    for t, (lr, tlr, m, tm) in enumerate(_run(make, tmake, steps, kind)):
        np.testing.assert_allclose(lr, tlr, rtol=1e-12, atol=1e-15, err_msg=f"{name}: lr at step {t}")
        np.testing.assert_allclose(m, tm, rtol=1e-12, err_msg=f"{name}: momentum at step {t}")


@pytest.mark.parametrize("kwargs", [dict(patience=2), dict(mode="max", factor=0.5, patience=1, cooldown=2),
                                    dict(threshold_mode="abs", threshold=0.1, patience=0, min_lr=[0.02, 0.001])])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.85, 0.86, 0.87, 0.88, 0.89, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3]
    history = _run(lambda o: S.ReduceLROnPlateau(o, **kwargs), lambda o: TS.ReduceLROnPlateau(o, **kwargs),
                   len(metrics), metrics=metrics)
    for t, (lr, tlr, _, _) in enumerate(history):
        np.testing.assert_allclose(lr, tlr, rtol=1e-12, err_msg=f"step {t}")
    assert history[-1][0] != history[0][0]  # the schedule did reduce


def test_warmup_lambda():
    opt, _ = _optimizers()
    sched = S.LambdaLR(opt, S.warmup_lambda(4, lambda t: 0.5 ** t))
    lrs = []
    for _ in range(7):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    np.testing.assert_allclose(lrs, [0.025, 0.05, 0.075, 0.1, 0.1, 0.05, 0.025])


def test_scheduler_errors():
    opt, _ = _optimizers()
    with pytest.raises(ValueError, match="OneCycleLR: give total_steps"):
        S.OneCycleLR(opt, max_lr=0.1)
    plain = optim.RMSprop([nn.Parameter(np.zeros(1, np.float32))], lr=0.1)
    del plain.defaults["momentum"]
    with pytest.raises(ValueError, match="CyclicLR: optimizer must support momentum"):
        S.CyclicLR(plain, 0.01, 0.1)
    sched = S.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    sched.step(), sched.step()
    with pytest.raises(ValueError, match="more than total_steps=2"):
        sched.step()
    assert math.isfinite(sched.get_last_lr()[0])
