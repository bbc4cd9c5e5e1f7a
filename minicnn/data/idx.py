"""Reader for the IDX format of MNIST / Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    then        d sizes, uint32 each
    then        prod(sizes) elements, row-major (C order)

The magic number is the first 4 bytes read as a big-endian uint32: 2049
(``0x00000801``) for a label file (uint8, d = 1), 2051 (``0x00000803``) for an
image file (uint8, d = 3).
"""
import gzip
import struct

import numpy as np

IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
LABELS_MAGIC = 2049
IMAGES_MAGIC = 2051


def parse_idx(data, expected_magic=None, name="<bytes>"):
    """Decode the bytes of an IDX file into a NumPy array (native byte order).

    Raises ``ValueError`` on a bad header, an unexpected magic number, or a
    payload whose size does not match the header.
    """
    if len(data) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = struct.unpack(">I", data[:4])[0]
    if zero != 0 or code not in IDX_DTYPES:
        raise ValueError(f"{name}: not an IDX file (magic number {magic:#010x})")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{name}: expected IDX magic number {expected_magic}, got {magic}")
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise ValueError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header_end])
    dtype = IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    payload = len(data) - header_end
    if payload != count * dtype.itemsize:
        raise ValueError(f"{name}: header says shape {shape} of {dtype} ({count * dtype.itemsize} bytes), "
                         f"the file holds {payload} bytes of data")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path, expected_magic=None):
    """Read an IDX file, gzip-compressed (by its ``.gz`` suffix) or raw."""
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    return parse_idx(data, expected_magic, name=path)
