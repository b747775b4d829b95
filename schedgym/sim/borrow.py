"""``borrow(array)``: a view of an array for numba kernels that skips reference counting.

numba counts references to every array it passes to a function, binds to a variable or takes out of a
tuple, with an atomic increment and decrement each time. In the serving kernels, which call small
functions with a dozen arrays per batching iteration, those atomics took ~60 % of the run time
(``perf``: ``NRT_incref`` / ``NRT_decref``). A borrowed view carries no memory-info pointer, so numba's
reference counting skips it (``NRT_incref`` returns at once on a null pointer). It is safe only while the
borrowed array is kept alive by its owner, i.e. inside the kernel call that borrowed it: never return or
store a borrowed view.
"""

from __future__ import annotations

from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["borrow"]


@intrinsic
def borrow(typingctx, arr):  # noqa: ARG001 (numba's intrinsic signature)
    """The same array (data, shape, strides) without reference counting; see the module docstring."""

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, value=args[0])
        dst = context.make_array(arr)(context, builder)
        for name in ("nitems", "itemsize", "data", "shape", "strides"):
            setattr(dst, name, getattr(src, name))
        dst.meminfo = cgutils.get_null_value(dst.meminfo.type)
        dst.parent = cgutils.get_null_value(dst.parent.type)
        return dst._getvalue()

    return arr(arr), codegen
