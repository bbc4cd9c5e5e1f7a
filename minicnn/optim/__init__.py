"""Optimizers (``minicnn.optim``), PyTorch's update formulas; schedules in ``optim.lr_scheduler``.

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1)
    for x, y in loader:
        opt.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
    sched.step()
"""
from . import lr_scheduler  # noqa: F401
from .adam import Adam, AdamW  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .regularization import clip_grad_norm_, clip_grad_value_, l1_penalty, l2_penalty  # noqa: F401
from .rmsprop import RMSprop  # noqa: F401
from .sgd import SGD  # noqa: F401
