"""Launch wrappers of ``nms.cu``: the 64-bit mask kernel, then the keep-scan, both on the device.

Nothing but an 8-byte count comes back to the host (through ``be.to_host``): the kept positions
stay on the device, where the caller gathers the kept indices from them.
"""
import numpy as np

KERNELS = ("nms_sorted",)

TILE = 64  # boxes per tile = bits per mask word = threads per block of nms_mask
SCAN_THREADS = 256  # threads of the one block of nms_scan
SHARED_BYTES = 48 * 1024 - 64  # dynamic shared memory nms_scan may use for its `removed` bits


def nms_sorted(be, boxes, categories, iou_threshold):
    """Positions (int64, increasing) of the boxes kept by greedy NMS; ``boxes`` sorted by score.
    A box only suppresses boxes of its own category (``categories``: int64, one per box).

    Device work: ``nms_mask`` (the n × ceil(n/64) suppression bits), ``nms_scan`` (one block);
    host work: reading the number of kept boxes (one transfer of 8 bytes)."""
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
    keep = xp.empty(n, dtype=np.int64)
    count = xp.zeros(1, dtype=np.int64)
    use_global = col_blocks * 8 > SHARED_BYTES
    removed = xp.empty(col_blocks if use_global else 1, dtype=np.uint64)
    scan = be.function("nms.cu", "nms_scan", np.float64)
    scan((1,), (SCAN_THREADS,), (mask, np.int32(n), removed, np.int32(use_global), keep, count),
         shared_mem=0 if use_global else col_blocks * 8)
    return keep[:int(be.to_host(count)[0])]
