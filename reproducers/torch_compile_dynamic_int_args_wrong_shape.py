"""torch 2.13.0+cpu: torch.compile(dynamic=True) of conv2d(+bias)+relu whose stride/padding/dilation/groups arrive as
Python ints in the function's arguments returns a wrong output SHAPE on the second call (no error, no recompile).

Eager: (2, 4, 3, 6). Compiled: (2, 4, 6, 6) — the first call's stride 2 is reused for stride 3.
Without the bias and relu (conv alone) the same two calls are correct.
"""

import torch
import torch.nn.functional as F


def f(x, w, b, stride, pad, dil, groups, extra):
    return F.relu(F.conv2d(F.pad(x, extra), w, b, stride, pad, dil, groups))


cf = torch.compile(f, fullgraph=True, dynamic=True)
calls = [
    ((2, 4, 8, 7), 2, (2, 1), (2, 1), (2, 1), [1, 0, 1, 0]),
    ((2, 4, 8, 6), 2, (3, 1), (1, 1), (2, 1), [0, 0, 1, 0]),
]
for shape, g, s, p, d, e in calls:
    x = torch.randn(shape)
    w = torch.randn(2 * g, 2, 2, 3)
    b = torch.randn(2 * g)
    got, want = cf(x, w, b, s, p, d, g, e), f(x, w, b, s, p, d, g, e)
    print(f"stride={s} pad={p} dilation={d} groups={g}: compiled {tuple(got.shape)}, eager {tuple(want.shape)}")
assert got.shape == want.shape, "torch.compile returned a different shape than eager"
