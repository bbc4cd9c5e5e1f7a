"""An independent statement of the sliding-window output size: count the windows one by one."""


def out_size_ref(n, k, s, p, d, ceil_mode=False):
    """Number of windows along an axis of size ``n`` (padding ``p`` each side).

    Floor mode: windows that fit entirely in the padded input. Ceil mode (PyTorch's rule): also
    a last partial window; in ceil mode no window may start in the right padding, and a
    partial window counts only if the previous one had not already reached the padded end.
    """
    span = d * (k - 1) + 1
    count, i = 0, 0
    while True:
        start = -p + i * s
        if ceil_mode and start >= n:  # PyTorch: no window may start in the right padding
            break
        if start + span <= n + p:
            count += 1
        elif ceil_mode and start < n and (i == 0 or start - s + span < n + p):
            count += 1
            break
        else:
            break
        i += 1
    return count
