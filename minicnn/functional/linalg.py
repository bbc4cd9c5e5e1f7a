"""Matrix product with NumPy's ``matmul`` broadcasting rules."""
from ..autograd import Function, unbroadcast


class MatMul(Function):
    """Z = X @ Y (batched, broadcasting batch axes);  gX = gZ @ Yᵀ, gY = Xᵀ @ gZ (un-broadcast).

    1-D operands are promoted as NumPy does (a vector on the left is a row, on the right a
    column) and the promoted axis is dropped again from the gradient.
    """

    @staticmethod
    def forward(ctx, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError("matmul: operands must have at least one dimension (use * for scalars)")
        kx = x.shape[-1]
        ky = y.shape[-2] if y.ndim > 1 else y.shape[0]
        if kx != ky:
            raise ValueError(f"matmul: inner dimensions differ: {tuple(x.shape)} @ {tuple(y.shape)}")
        ctx.save_for_backward(x, y)
        return ctx.xp.matmul(x, y)

    @staticmethod
    def backward(ctx, gz):
        xp = ctx.xp
        x, y = ctx.saved
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        batch = xp.broadcast_shapes(x2.shape[:-2], y2.shape[:-2]) if hasattr(xp, "broadcast_shapes") \
            else tuple(xp.broadcast(xp.empty(x2.shape[:-2]), xp.empty(y2.shape[:-2])).shape)
        g2 = gz.reshape(tuple(batch) + (x2.shape[-2], y2.shape[-1]))
        gx = xp.matmul(g2, xp.swapaxes(y2, -1, -2))
        gy = xp.matmul(xp.swapaxes(x2, -1, -2), g2)
        gx = unbroadcast(xp, gx, x2.shape).reshape(x.shape)
        gy = unbroadcast(xp, gy, y2.shape).reshape(y.shape)
        return gx, gy


def matmul(x, y):
    return MatMul.apply(x, y)
