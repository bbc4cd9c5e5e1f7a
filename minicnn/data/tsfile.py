"""A reader of the UCR/UEA archive's ``.ts`` file format (plain text or gzip), written for minicnn.

The format (Bagnall et al., the UEA & UCR archive; the same files aeon and sktime read)::

    # comment lines start with '#'
    @problemName GunPoint
    @timeStamps false          (only false is supported: values, not (time, value) pairs)
    @missing false             ('?' marks a missing value; allowed only when true)
    @univariate true           (false: several dimensions, see @dimensions)
    @dimensions 1              (optional; the number of ':'-separated dimensions of a case)
    @equalLength true          (true: every case has the same length, @seriesLength when given)
    @seriesLength 150          (optional)
    @classLabel true 1 2       (true followed by the class names; a case's label is one of them)
    @data
    -0.64,-0.64,...,-0.65:1    (one case a line: dimensions separated by ':', values by ',',
                                the class label last)

Tags are case-insensitive; blank lines are skipped. Every dimension of one case has the same
length; cases may differ in length when ``@equalLength false``. A missing value reads as NaN.

    >>> ts = parse_ts("@problemName toy\\n@classLabel true a b\\n@data\\n1,2,3:a\\n4,5,6:b\\n")
    >>> ts.labels, ts.classes, ts.series[1].tolist()
    (['a', 'b'], ('a', 'b'), [[4.0, 5.0, 6.0]])
"""
import gzip
import math
from dataclasses import dataclass, field

import numpy as np

_BOOL_TAGS = ("timestamps", "missing", "univariate", "equallength")
_KNOWN_TAGS = _BOOL_TAGS + ("problemname", "dimensions", "serieslength", "classlabel", "targetlabel", "data")


@dataclass
class TSFile:
    """The content of one ``.ts`` file.

    Attributes:
        series: one float64 array ``(dimensions, length)`` per case, in file order.
        labels: the class label of each case, as written in the file.
        classes: the class names of ``@classLabel``, in the header's order (class id = position).
        meta: the header's tags, lower-cased names: ``problemname`` (str), ``timestamps``,
            ``missing``, ``univariate``, ``equallength`` (bool), ``dimensions``, ``serieslength`` (int).
    """

    series: list
    labels: list
    classes: tuple
    meta: dict = field(default_factory=dict)

    @property
    def lengths(self):
        """The length of each case, ``int64 (N,)``."""
        return np.array([s.shape[1] for s in self.series], dtype=np.int64)

    @property
    def y(self):
        """The class id of each case (its label's position in ``classes``), ``int64 (N,)``."""
        if not self.classes:
            raise ValueError("TSFile.y: the file has no class labels (@classLabel false)")
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[label] for label in self.labels], dtype=np.int64)


def _bool(value, tag, where):
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"parse_ts: {where}: @{tag} must be true or false, got {value!r}")
    return v == "true"


def _int(value, tag, where):
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"parse_ts: {where}: @{tag} must be an integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"parse_ts: {where}: @{tag} must be >= 1, got {n}")
    return n


def _header_line(line, meta, where):
    """One ``@tag value`` line into ``meta``; returns the class names of ``@classLabel`` or None."""
    tag, _, value = line[1:].partition(" ")
    tag, value = tag.lower(), value.strip()
    if tag not in _KNOWN_TAGS:
        raise ValueError(f"parse_ts: {where}: unknown header tag @{tag}")
    if tag in meta:
        raise ValueError(f"parse_ts: {where}: @{tag} appears twice")
    if tag in _BOOL_TAGS:
        meta[tag] = _bool(value, tag, where)
    elif tag in ("dimensions", "serieslength"):
        meta[tag] = _int(value, tag, where)
    elif tag == "classlabel":
        words = value.split()
        if not words:
            raise ValueError(f"parse_ts: {where}: @classLabel needs true or false")
        meta[tag] = _bool(words[0], tag, where)
        if meta[tag] and len(words) < 2:
            raise ValueError(f"parse_ts: {where}: @classLabel true must list the class names")
        if len(set(words[1:])) != len(words) - 1:
            raise ValueError(f"parse_ts: {where}: @classLabel lists a class twice: {words[1:]}")
        return tuple(words[1:]) if meta[tag] else ()
    elif tag == "targetlabel":
        raise ValueError(f"parse_ts: {where}: @targetLabel (a regression problem) is not supported; "
                         "minicnn reads classification files")
    elif tag != "data":
        meta[tag] = value
    return None


def _values(text, where, dim, missing):
    """The ',' separated numbers of one dimension; '?' is NaN (allowed with ``@missing true``)."""
    out = []
    for j, word in enumerate(text.split(",")):
        word = word.strip()
        if word == "?":
            if not missing:
                raise ValueError(f"parse_ts: {where}, dimension {dim}, value {j}: '?' (missing) but the header "
                                 "says @missing false")
            out.append(math.nan)
            continue
        try:
            out.append(float(word))
        except ValueError:
            raise ValueError(f"parse_ts: {where}, dimension {dim}, value {j}: not a number: {word!r}") from None
    return out


def _data_line(line, meta, classes, where):
    """One case: ``(float64 (dimensions, length), label)``."""
    if meta.get("timestamps"):
        raise ValueError(f"parse_ts: {where}: @timeStamps true ((time, value) pairs) is not supported")
    parts = line.split(":")
    if meta.get("classlabel"):
        label, parts = parts[-1].strip(), parts[:-1]
        if label not in classes:
            raise ValueError(f"parse_ts: {where}: class label {label!r} is not one of @classLabel {list(classes)}")
    else:
        label = None
    if not parts:
        raise ValueError(f"parse_ts: {where}: a case needs at least one dimension before the label")
    dims = [_values(p, where, d, meta.get("missing", False)) for d, p in enumerate(parts)]
    lengths = {len(v) for v in dims}
    if len(lengths) != 1:
        raise ValueError(f"parse_ts: {where}: the dimensions of one case have different lengths "
                         f"{[len(v) for v in dims]}")
    return np.array(dims, dtype=np.float64), label


def parse_ts(text, name="<string>"):
    """Parse the text of a ``.ts`` file (format in the module docstring) into a :class:`TSFile`.

    Raises ValueError naming ``name`` and the line for: an unknown or repeated tag, data before
    ``@data``, a label outside ``@classLabel``, '?' with ``@missing false``, a number that does not
    parse, a dimension count other than ``@dimensions`` (1 when ``@univariate true``), cases of
    different lengths with ``@equalLength true`` or a length other than ``@seriesLength``.
    """
    meta, classes, series, labels, in_data = {}, (), [], [], False
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{name} line {i}"
        if not in_data:
            if not line.startswith("@"):
                raise ValueError(f"parse_ts: {where}: data before the @data line: {line[:40]!r}")
            found = _header_line(line, meta, where)
            classes = found if found is not None else classes
            in_data = line[1:].split(" ")[0].lower() == "data"
            continue
        x, label = _data_line(line, meta, classes, where)
        _check_case(x, meta, series, where)
        series.append(x)
        labels.append(label)
    if not in_data:
        raise ValueError(f"parse_ts: {name}: no @data line")
    if not series:
        raise ValueError(f"parse_ts: {name}: no cases after @data")
    return TSFile(series, labels, classes, meta)


def _check_case(x, meta, previous, where):
    dims = meta.get("dimensions", 1 if meta.get("univariate", True) else None)
    if meta.get("univariate") and meta.get("dimensions", 1) != 1:
        raise ValueError(f"parse_ts: {where}: @univariate true with @dimensions {meta['dimensions']}")
    if dims is not None and x.shape[0] != dims:
        raise ValueError(f"parse_ts: {where}: {x.shape[0]} dimensions, the header says {dims}")
    if previous and x.shape[0] != previous[0].shape[0]:
        raise ValueError(f"parse_ts: {where}: {x.shape[0]} dimensions, earlier cases have {previous[0].shape[0]}")
    if meta.get("equallength"):
        expected = meta.get("serieslength", previous[0].shape[1] if previous else x.shape[1])
        if x.shape[1] != expected:
            raise ValueError(f"parse_ts: {where}: length {x.shape[1]} but @equalLength true and the series "
                             f"length is {expected}")


def read_ts(path):
    """Read a ``.ts`` file, plain or gzip-compressed (told apart by the gzip magic bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_ts(text, name=str(path))
