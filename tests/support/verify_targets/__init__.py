"""Targets for `crosscheck verify` tests: correct convolutions by other algorithms, deliberately wrong
ones, and functions that crash, hang, decline or fail to import. Each has the verify signature

    conv(x, w, *, stride, padding, dilation, groups) -> array (N, C_out, *out)
"""
