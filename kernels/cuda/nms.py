"""Launch wrapper of ``nms.cu``: the 64-bit mask kernel, then the sequential scan on the host."""
import numpy as np

KERNELS = ("nms_sorted",)

TILE = 64  # boxes per tile = bits per mask word = threads per block


def _to_host(xp, a):
    return a if xp is np else xp.asnumpy(a)


def nms_sorted(be, boxes, categories, iou_threshold):
    """Positions (int64, increasing) of the boxes kept by greedy NMS; ``boxes`` sorted by score.
    A box only suppresses boxes of its own category (``categories``: int64, one per box)."""
    xp = be.xp
    boxes = xp.ascontiguousarray(boxes, dtype=np.float64)
    categories = xp.ascontiguousarray(categories, dtype=np.int64)
    n = boxes.shape[0]
    if n == 0:
        return xp.zeros(0, dtype=np.int64)
    col_blocks = (n + TILE - 1) // TILE
    mask = xp.zeros(n * col_blocks, dtype=np.uint64)
    kernel = be.function("nms.cu", "nms_mask", np.float64)
    kernel((col_blocks, col_blocks), (TILE,), (boxes, categories, mask, np.int32(n), np.float64(iou_threshold)))
    mask = _to_host(xp, mask).reshape(n, col_blocks)
    # Scan in score order: box i survives unless a kept box before it set its bit.
    removed = np.zeros(col_blocks, dtype=np.uint64)
    keep = []
    for i in range(n):
        word, bit = divmod(i, TILE)
        if not (int(removed[word]) >> bit) & 1:
            keep.append(i)
            removed[word:] |= mask[i, word:]
    return xp.asarray(np.array(keep, dtype=np.int64))
