"""Reference convolution kernels: plain loops, the textbook formulas. The oracle of the tests.

Shapes and symbols (2-D; conv1d is conv2d with H = 1)::

    x  (N, C_in, H, W)                 input
    W  (C_out, C_in/G, kH, kW)         weight, G = groups, Cg = C_in/G input channels per group
    y  (N, C_out, OH, OW)              output, Mg = C_out/G output channels per group

Output channel ``co`` belongs to group ``g = co // Mg`` and sees input channels
``g·Cg … g·Cg + Cg − 1``. With stride ``s``, leading padding ``p`` (the padding before the first
element; the trailing padding is implied by the output size) and dilation ``d``::

    y[n, co, oh, ow] = Σ_{c<Cg, kh, kw}  W[co, c, kh, kw] · x[n, g·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]

where ``x`` is zero outside ``[0, H) × [0, W)``. Every kernel takes the output size
(``out_hw``) explicitly, so asymmetric padding (PyTorch's ``padding="same"`` with an odd total)
and transposed convolution (whose ``output_padding`` may ask for one more row than a plain
convolution produces) are the same code.

The two gradients are the adjoints of this bilinear map (``gy`` has y's shape)::

    gx[n, g·Cg + c, ih, iw] = Σ_{m<Mg, kh, kw, oh, ow : oh·sh − ph + kh·dh = ih, ow·sw − pw + kw·dw = iw}
                              W[g·Mg + m, c, kh, kw] · gy[n, g·Mg + m, oh, ow]
    gW[co, c, kh, kw]       = Σ_{n, oh, ow}  gy[n, co, oh, ow] · x[n, g·Cg + c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]

Transposed convolution (weight ``(C_in, C_out/G, kH, kW)``) is the scatter of the same formula::

    y[n, g·Mg + m, ih·sh − ph + kh·dh, iw·sw − pw + kw·dw] += x[n, g·Cg + c, ih, iw] · W[g·Cg + c, m, kh, kw]

im2col lays the windows out as columns, so that a convolution is one matrix product per group::

    cols[n, c·kH·kW + kh·kW + kw, oh·OW + ow] = x[n, c, oh·sh − ph + kh·dh, ow·sw − pw + kw·dw]   (0 outside)
    y[n, g] = W[g].reshape(Mg, Cg·kH·kW) @ cols[n, g·Cg·kH·kW : (g+1)·Cg·kH·kW]

and col2im is its adjoint (adds every column entry back onto the input element it came from).
"""
import numpy as np


def _inside(i, n):
    return 0 <= i < n


def im2col(x, kernel_hw, stride, padding, dilation, out_hw):
    """cols (N, C·kH·kW, OH·OW) from x (N, C, H, W); see the module docstring."""
    N, C, H, W = x.shape
    (kH, kW), (sh, sw), (ph, pw), (dh, dw), (OH, OW) = kernel_hw, stride, padding, dilation, out_hw
    cols = np.zeros((N, C * kH * kW, OH * OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for kh in range(kH):
                for kw in range(kW):
                    row = (c * kH + kh) * kW + kw
                    for oh in range(OH):
                        for ow in range(OW):
                            ih, iw = oh * sh - ph + kh * dh, ow * sw - pw + kw * dw
                            if _inside(ih, H) and _inside(iw, W):
                                cols[n, row, oh * OW + ow] = x[n, c, ih, iw]
    return cols


def col2im(cols, x_hw, kernel_hw, stride, padding, dilation, out_hw):
    """x (N, C, H, W), the adjoint of :func:`im2col`: each column entry is added to its source."""
    N, CKK, _ = cols.shape
    (H, W), (kH, kW), (sh, sw), (ph, pw), (dh, dw), (OH, OW) = x_hw, kernel_hw, stride, padding, dilation, out_hw
    C = CKK // (kH * kW)
    x = np.zeros((N, C, H, W), dtype=cols.dtype)
    for n in range(N):
        for c in range(C):
            for kh in range(kH):
                for kw in range(kW):
                    row = (c * kH + kh) * kW + kw
                    for oh in range(OH):
                        for ow in range(OW):
                            ih, iw = oh * sh - ph + kh * dh, ow * sw - pw + kw * dw
                            if _inside(ih, H) and _inside(iw, W):
                                x[n, c, ih, iw] += cols[n, row, oh * OW + ow]
    return x


def conv2d_forward(x, W, stride, padding, dilation, groups, out_hw, bias=None):
    """y (N, C_out, OH, OW) = the convolution of x with W, plus ``bias[co]`` when given (see the
    module docstring)."""
    N, C_in, H, Wd = x.shape
    C_out, Cg, kH, kW = W.shape
    (sh, sw), (ph, pw), (dh, dw), (OH, OW) = stride, padding, dilation, out_hw
    Mg = C_out // groups
    y = np.zeros((N, C_out, OH, OW), dtype=np.result_type(x, W))
    for n in range(N):
        for co in range(C_out):
            g = co // Mg
            for oh in range(OH):
                for ow in range(OW):
                    acc = 0.0 if bias is None else float(bias[co])
                    for c in range(Cg):
                        for kh in range(kH):
                            for kw in range(kW):
                                ih, iw = oh * sh - ph + kh * dh, ow * sw - pw + kw * dw
                                if _inside(ih, H) and _inside(iw, Wd):
                                    acc += W[co, c, kh, kw] * x[n, g * Cg + c, ih, iw]
                    y[n, co, oh, ow] = acc
    return y


def conv2d_bias_grad(gy):
    """gb (C_out,) = ∂⟨gy, y⟩/∂b: gb[co] = Σ_{n, oh, ow} gy[n, co, oh, ow]."""
    N, C_out, OH, OW = gy.shape
    gb = np.zeros(C_out, dtype=gy.dtype)
    for co in range(C_out):
        acc = 0.0
        for n in range(N):
            for oh in range(OH):
                for ow in range(OW):
                    acc += gy[n, co, oh, ow]
        gb[co] = acc
    return gb


def conv2d_backward_input(gy, W, x_hw, stride, padding, dilation, groups):
    """gx (N, C_in, H, W) = ∂⟨gy, conv2d(x, W)⟩/∂x, scattered window by window."""
    N, C_out, OH, OW = gy.shape
    _, Cg, kH, kW = W.shape
    (H, Wd), (sh, sw), (ph, pw), (dh, dw) = x_hw, stride, padding, dilation
    Mg = C_out // groups
    gx = np.zeros((N, Cg * groups, H, Wd), dtype=np.result_type(gy, W))
    for n in range(N):
        for co in range(C_out):
            g = co // Mg
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(Cg):
                        for kh in range(kH):
                            for kw in range(kW):
                                ih, iw = oh * sh - ph + kh * dh, ow * sw - pw + kw * dw
                                if _inside(ih, H) and _inside(iw, Wd):
                                    gx[n, g * Cg + c, ih, iw] += W[co, c, kh, kw] * gy[n, co, oh, ow]
    return gx


def conv2d_backward_weight(x, gy, kernel_hw, stride, padding, dilation, groups):
    """gW (C_out, C_in/G, kH, kW) = ∂⟨gy, conv2d(x, W)⟩/∂W."""
    N, C_in, H, Wd = x.shape
    _, C_out, OH, OW = gy.shape
    (kH, kW), (sh, sw), (ph, pw), (dh, dw) = kernel_hw, stride, padding, dilation
    Cg, Mg = C_in // groups, C_out // groups
    gW = np.zeros((C_out, Cg, kH, kW), dtype=np.result_type(x, gy))
    for co in range(C_out):
        g = co // Mg
        for c in range(Cg):
            for kh in range(kH):
                for kw in range(kW):
                    acc = 0.0
                    for n in range(N):
                        for oh in range(OH):
                            for ow in range(OW):
                                ih, iw = oh * sh - ph + kh * dh, ow * sw - pw + kw * dw
                                if _inside(ih, H) and _inside(iw, Wd):
                                    acc += gy[n, co, oh, ow] * x[n, g * Cg + c, ih, iw]
                    gW[co, c, kh, kw] = acc
    return gW


def conv_transpose2d_forward(x, W, stride, padding, dilation, groups, out_hw):
    """y (N, C_out, OH, OW) of a transposed convolution, written as the scatter (independent of
    :func:`conv2d_backward_input`, which computes the same thing in the gradient's words).

    ``W`` is ``(C_in, C_out/G, kH, kW)`` (PyTorch's layout); ``out_hw`` includes ``output_padding``.
    """
    N, C_in, H, Wd = x.shape
    _, Mg, kH, kW = W.shape
    (sh, sw), (ph, pw), (dh, dw), (OH, OW) = stride, padding, dilation, out_hw
    Cg = C_in // groups
    y = np.zeros((N, Mg * groups, OH, OW), dtype=np.result_type(x, W))
    for n in range(N):
        for ci in range(C_in):
            g = ci // Cg
            for ih in range(H):
                for iw in range(Wd):
                    for m in range(Mg):
                        for kh in range(kH):
                            for kw in range(kW):
                                oh, ow = ih * sh - ph + kh * dh, iw * sw - pw + kw * dw
                                if _inside(oh, OH) and _inside(ow, OW):
                                    y[n, g * Mg + m, oh, ow] += x[n, ci, ih, iw] * W[ci, m, kh, kw]
    return y
