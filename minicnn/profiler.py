"""Per-op timing of forward and backward, in the spirit of ``torch.profiler``.

    with minicnn.profiler.profile(record_shapes=True, profile_memory=True) as prof:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))

What is recorded, for each op (a :class:`~minicnn.autograd.Function` subclass, named by its class
name: ``"Conv2d"``, ``"ReLU"``, ``"Reshape"``…):

- one ``"forward"`` event per ``Function.apply``: the wall time (``time.perf_counter_ns``) of the
  op's ``forward``, i.e. its kernels and its Python, not the engine's bookkeeping around it
  (wrapping the outputs in Tensors, recording the graph node);
- one ``"backward"`` event per node that the backward pass visits: the time of the op's
  ``backward`` (gradient accumulation between nodes is not counted);
- with ``record_shapes``: the shapes of the op's inputs (a backward event carries the shapes of
  the inputs of its forward, so both group under one key);
- with ``profile_memory``: the bytes of the arrays the call returned (outputs for forward,
  input gradients for backward); memory freed is not tracked;
- :class:`record_function` ranges, which the user opens around any code (kind ``"range"``).

Times are inclusive: an event's ``duration_ns`` contains the events that ran inside it (a
``record_function`` range contains its ops; a user Function whose ``forward`` calls another
``Function.apply`` contains that op). ``self_ns`` is the duration minus the durations of the
events directly inside it, so the self times of one thread's events never overlap and their
sum is at most the profile's wall time.

Threads: a profile records only the ops run by the thread that entered it; another thread's
ops go to the profiles that thread entered (if any). Nesting: a profile entered inside another
one (same thread) records the events of its own span; the outer profile records those too.

Cost when off: ``Function.apply`` and the backward loop read one module-level global
(``minicnn.autograd._profiler_hook``), which is None unless some thread has a profile open.
"""
import contextlib
import json
import os
import threading
import time

from . import autograd

_tls = threading.local()  # .profiles: the profiles open in this thread; .stack: open events
_lock = threading.Lock()
_open_count = 0  # profiles open in all threads; the hook is installed while > 0

SORT_KEYS = ("self_cpu_time_total", "cpu_time_total", "forward_time_total", "backward_time_total",
             "count", "backward_count", "cpu_memory_usage", "name")


class Event:
    """One timed call: ``name``, ``kind`` (``"forward"``, ``"backward"`` or ``"range"``), ``device``
    (the device's name; None for a range), ``start_ns``/``end_ns`` (``time.perf_counter_ns``),
    ``duration_ns = end_ns - start_ns``, ``self_ns`` (duration minus the events directly inside),
    ``input_shapes`` (a tuple of shape tuples, or None unless ``record_shapes``), ``bytes`` (of the
    returned arrays, or None unless ``profile_memory``), ``thread`` (``threading.get_ident()``) and
    ``depth`` (how many events were open around it)."""

    __slots__ = ("name", "kind", "device", "start_ns", "end_ns", "self_ns", "input_shapes", "bytes",
                 "thread", "depth")

    def __init__(self, name, kind, device, start_ns, end_ns, self_ns, input_shapes, nbytes, thread, depth):
        self.name, self.kind, self.device = name, kind, device
        self.start_ns, self.end_ns, self.self_ns = start_ns, end_ns, self_ns
        self.input_shapes, self.bytes, self.thread, self.depth = input_shapes, nbytes, thread, depth

    @property
    def duration_ns(self):
        return self.end_ns - self.start_ns

    def _for(self, prof):
        """This event as ``prof`` asked for it (shapes and bytes only when that profile records them)."""
        if (prof.record_shapes or self.input_shapes is None) and (prof.profile_memory or self.bytes is None):
            return self
        return Event(self.name, self.kind, self.device, self.start_ns, self.end_ns, self.self_ns,
                     self.input_shapes if prof.record_shapes else None,
                     self.bytes if prof.profile_memory else None, self.thread, self.depth)

    def __repr__(self):
        return (f"Event({self.name!r}, {self.kind}, device={self.device}, duration={self.duration_ns} ns, "
                f"self={self.self_ns} ns, shapes={self.input_shapes}, bytes={self.bytes})")


def _shapes(arrays):
    return tuple(tuple(a.shape) if hasattr(a, "shape") else None for a in arrays)


def _nbytes(out):
    outs = out if isinstance(out, tuple) else (out,)
    return sum(int(a.nbytes) for a in outs if hasattr(a, "nbytes"))


def _timed(profiles, name, kind, device, shapes_of, fn, *args):
    """Run ``fn(*args)``, timed, and give the event to every profile in ``profiles``."""
    stack = _tls.stack
    children = [0]  # the durations of the events directly inside this one
    stack.append(children)
    t0 = time.perf_counter_ns()
    try:
        out = fn(*args)
    finally:
        t1 = time.perf_counter_ns()
        stack.pop()
    duration = t1 - t0
    if stack:
        stack[-1][0] += duration
    shapes = _shapes(shapes_of) if any(p.record_shapes for p in profiles) else None
    nbytes = _nbytes(out) if kind != "range" and any(p.profile_memory for p in profiles) else None
    ev = Event(name, kind, device, t0, t1, duration - children[0], shapes, nbytes, threading.get_ident(),
               len(stack))
    for p in profiles:
        p._events.append(ev._for(p))
    return out


class _Hook:
    """Installed as ``autograd._profiler_hook`` while any profile is open: times ops of the threads
    that have a profile open, and only runs them in the other threads."""

    @staticmethod
    def forward(cls, ctx, arrays, params):
        profiles = getattr(_tls, "profiles", None)
        if not profiles:
            return cls.forward(ctx, *arrays, **params)
        return _timed(profiles, cls.__name__, "forward", ctx.device.name, arrays,
                      lambda: cls.forward(ctx, *arrays, **params))

    @staticmethod
    def backward(ctx, gys):
        profiles = getattr(_tls, "profiles", None)
        if not profiles:
            return ctx.fn.backward(ctx, *gys)
        return _timed(profiles, ctx.fn.__name__, "backward", ctx.device.name, ctx.inputs,
                      lambda: ctx.fn.backward(ctx, *gys))


_HOOK = _Hook()


class profile:
    """Context manager that records every op's forward and backward time in this thread.

    Args:
        record_shapes: also record each op's input shapes (needed by
            ``key_averages(group_by_input_shape=True)``).
        profile_memory: also record the bytes of the arrays each call returned.
        enabled: False makes the context a no-op (nothing is recorded).

    After (or during) the block: :meth:`events` is the raw list of :class:`Event`, in the order
    the calls ended; :meth:`key_averages` groups them by op name; :meth:`export_chrome_trace`
    writes a ``chrome://tracing`` / Perfetto JSON. ``wall_time_ns`` is the time from entering the
    block to leaving it (or to now, while it is open). A profile object is entered once.
    """

    def __init__(self, record_shapes=False, profile_memory=False, enabled=True):
        self.record_shapes = bool(record_shapes)
        self.profile_memory = bool(profile_memory)
        self.enabled = bool(enabled)
        self._events = []
        self._start_ns = self._end_ns = None

    def __enter__(self):
        global _open_count
        if self._start_ns is not None:
            raise RuntimeError("profiler.profile: this profile was already entered; make a new one")
        self._start_ns = time.perf_counter_ns()
        if self.enabled:
            if not hasattr(_tls, "profiles"):
                _tls.profiles, _tls.stack = [], []
            _tls.profiles.append(self)
            with _lock:
                _open_count += 1
                autograd._profiler_hook = _HOOK
        return self

    def __exit__(self, *exc):
        global _open_count
        if self.enabled:
            _tls.profiles.remove(self)
            with _lock:
                _open_count -= 1
                if _open_count == 0:
                    autograd._profiler_hook = None
        self._end_ns = time.perf_counter_ns()
        return False

    @property
    def wall_time_ns(self):
        if self._start_ns is None:
            return 0
        return (self._end_ns if self._end_ns is not None else time.perf_counter_ns()) - self._start_ns

    def events(self):
        """The recorded :class:`Event` list (a copy), in the order the calls ended."""
        return list(self._events)

    def key_averages(self, group_by_input_shape=False):
        """The events grouped by op name (and input shapes with ``group_by_input_shape``, which
        needs ``record_shapes=True``), as a :class:`KeyAverages` list of :class:`OpStats`."""
        if group_by_input_shape and not self.record_shapes:
            raise ValueError("profiler.profile.key_averages: group_by_input_shape=True needs "
                             "profile(record_shapes=True)")
        return KeyAverages.from_events(self._events, group_by_input_shape, self.wall_time_ns,
                                       self.profile_memory)

    def export_chrome_trace(self, path):
        """Write the events as Chrome trace JSON (complete ``"X"`` events, times in µs from the
        profile's start) to ``path``; open it in chrome://tracing or ui.perfetto.dev."""
        t0 = self._start_ns or 0
        trace = []
        for ev in self._events:
            args = {"device": ev.device}
            if ev.input_shapes is not None:
                args["input_shapes"] = [list(s) if s is not None else None for s in ev.input_shapes]
            if ev.bytes is not None:
                args["bytes"] = ev.bytes
            trace.append({"name": ev.name, "cat": ev.kind, "ph": "X", "ts": (ev.start_ns - t0) / 1e3,
                          "dur": ev.duration_ns / 1e3, "pid": os.getpid(), "tid": ev.thread, "args": args})
        with open(path, "w") as f:
            json.dump({"traceEvents": trace, "displayTimeUnit": "ms"}, f)


class record_function(contextlib.ContextDecorator):
    """A named range (``with record_function("data"): ...``, or ``@record_function("step")`` on a
    function) recorded as an event of kind ``"range"`` by the profiles open in this thread. Its
    duration contains the ops run inside it; its ``self_ns`` excludes them. Does nothing when no
    profile is open in this thread."""

    def __init__(self, name):
        self.name = str(name)
        self._open = []  # one entry per active use (a decorated function may recurse)

    def __enter__(self):
        profiles = getattr(_tls, "profiles", None)
        if not profiles:
            self._open.append(None)
            return self
        children = [0]
        _tls.stack.append(children)
        self._open.append((list(profiles), children, len(_tls.stack) - 1, time.perf_counter_ns()))
        return self

    def __exit__(self, *exc):
        entry = self._open.pop()
        if entry is None:
            return False
        t1 = time.perf_counter_ns()
        profiles, children, depth, t0 = entry
        stack = _tls.stack
        while stack and stack[-1] is not children:  # ranges closed out of order: drop the inner ones
            stack.pop()
        if stack:
            stack.pop()
        duration = t1 - t0
        if stack:
            stack[-1][0] += duration
        ev = Event(self.name, "range", None, t0, t1, duration - children[0], None, None,
                   threading.get_ident(), depth)
        for p in profiles:
            if p in _tls.profiles:  # a profile closed inside the range keeps its own span only
                p._events.append(ev)
        return False


class OpStats:
    """The events of one key (op name, and input shapes when grouped by shape).

    ``count`` / ``backward_count``: forward (or range) / backward calls; ``forward_time_total_ns``,
    ``backward_time_total_ns``: their summed durations (a range's go to forward);
    ``cpu_time_total_ns`` = forward + backward; ``self_cpu_time_total_ns``: the summed self times;
    ``cpu_memory_usage``: bytes returned (forward + backward; 0 unless ``profile_memory``);
    ``devices``: the device names seen. ``*_avg_ns`` divide a total by its calls (0 when none).
    """

    def __init__(self, key, input_shapes):
        self.key, self.input_shapes = key, input_shapes
        self.count = self.backward_count = 0
        self.forward_time_total_ns = self.backward_time_total_ns = self.self_cpu_time_total_ns = 0
        self.cpu_memory_usage = 0
        self.devices = set()

    def add(self, ev):
        if ev.kind == "backward":
            self.backward_count += 1
            self.backward_time_total_ns += ev.duration_ns
        else:
            self.count += 1
            self.forward_time_total_ns += ev.duration_ns
        self.self_cpu_time_total_ns += ev.self_ns
        self.cpu_memory_usage += ev.bytes or 0
        if ev.device is not None:
            self.devices.add(ev.device)

    @property
    def cpu_time_total_ns(self):
        return self.forward_time_total_ns + self.backward_time_total_ns

    @property
    def forward_time_avg_ns(self):
        return self.forward_time_total_ns / self.count if self.count else 0

    @property
    def backward_time_avg_ns(self):
        return self.backward_time_total_ns / self.backward_count if self.backward_count else 0

    def __repr__(self):
        return (f"OpStats({self.key!r}, shapes={self.input_shapes}, count={self.count}, "
                f"backward_count={self.backward_count}, total={self.cpu_time_total_ns} ns)")


def _fmt_ns(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.3f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.3f}ms"
    return f"{ns / 1e3:.3f}us"


def _fmt_bytes(b):
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if b >= size:
            return f"{b / size:.2f} {unit}"
    return f"{b} B"


class KeyAverages(list):
    """A list of :class:`OpStats`, one per key, in the order the keys were first seen.
    ``wall_time_ns``: the profile's wall time, the base of the table's percentages."""

    @classmethod
    def from_events(cls, events, group_by_input_shape, wall_time_ns, with_bytes):
        groups = {}
        for ev in events:
            shapes = ev.input_shapes if group_by_input_shape else None
            key = (ev.name, shapes)
            if key not in groups:
                groups[key] = OpStats(ev.name, shapes)
            groups[key].add(ev)
        out = cls(groups.values())
        out.wall_time_ns, out.with_bytes, out.with_shapes = wall_time_ns, with_bytes, group_by_input_shape
        return out

    def sorted_by(self, sort_by="self_cpu_time_total"):
        """The rows sorted by ``sort_by`` (one of :data:`SORT_KEYS`): largest first, except
        ``"name"`` (alphabetical); ties keep name order."""
        if sort_by not in SORT_KEYS:
            raise ValueError(f"profiler table: sort_by={sort_by!r}; expected one of {', '.join(SORT_KEYS)}")
        rows = sorted(self, key=lambda r: (r.key, str(r.input_shapes)))
        if sort_by == "name":
            return rows
        attr = {"count": "count", "backward_count": "backward_count",
                "cpu_memory_usage": "cpu_memory_usage"}.get(sort_by, sort_by + "_ns")
        return sorted(rows, key=lambda r: getattr(r, attr), reverse=True)

    def table(self, sort_by="self_cpu_time_total", row_limit=100):
        """A text table, one row per key (at most ``row_limit`` rows, sorted by ``sort_by``):
        name, forward calls, forward total/avg, backward calls, backward total/avg, self total,
        total (forward + backward), total as % of the profiled wall time, and bytes returned
        (with ``profile_memory``); input shapes when grouped by them."""
        rows = self.sorted_by(sort_by)
        if row_limit is not None and row_limit >= 0:
            rows = rows[:int(row_limit)]
        wall = getattr(self, "wall_time_ns", 0) or 0
        head = ["Name", "Calls", "Fwd total", "Fwd avg", "Bwd calls", "Bwd total", "Bwd avg",
                "Self total", "Total", "% wall"]
        if getattr(self, "with_bytes", False):
            head.append("Bytes out")
        if getattr(self, "with_shapes", False):
            head.append("Input shapes")
        lines = []
        for r in rows:
            fwd = [_fmt_ns(r.forward_time_total_ns), _fmt_ns(r.forward_time_avg_ns)] if r.count else ["-", "-"]
            bwd = ([_fmt_ns(r.backward_time_total_ns), _fmt_ns(r.backward_time_avg_ns)] if r.backward_count
                   else ["-", "-"])
            cells = [r.key, str(r.count), *fwd, str(r.backward_count), *bwd,
                     _fmt_ns(r.self_cpu_time_total_ns), _fmt_ns(r.cpu_time_total_ns),
                     f"{100.0 * r.cpu_time_total_ns / wall:.2f}%" if wall else "-"]
            if getattr(self, "with_bytes", False):
                cells.append(_fmt_bytes(r.cpu_memory_usage))
            if getattr(self, "with_shapes", False):
                cells.append(str([list(s) if s is not None else None for s in (r.input_shapes or ())]))
            lines.append(cells)
        widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(head)]

        def fmt(cells):
            return "  ".join(c.ljust(w) if head[i] in ("Name", "Input shapes") else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(fmt(["-" * w for w in widths]))
        total_self = sum(r.self_cpu_time_total_ns for r in self)
        foot = f"Profiled wall time: {_fmt_ns(wall)}; self time of all events: {_fmt_ns(total_self)}"
        return "\n".join([rule, fmt(head), rule, *(fmt(c) for c in lines), rule, foot])
