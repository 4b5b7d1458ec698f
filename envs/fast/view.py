"""MiniGrid's egocentric partial view, batched: where each view cell lies in the world, and what is occluded.

MiniGrid (``MiniGridEnv.gen_obs_grid``) slices the ``V x V`` square in front of the agent, rotates it so the agent
faces up at view cell ``(V // 2, V - 1)``, then ``Grid.process_vis`` propagates visibility row by row from the
agent's row up to the far row: a visible cell that does not block sight (anything but a wall or a door that is not
open) makes its right/left neighbour and the cells above visible, sweeping left-to-right then right-to-left.

Visibility of one row depends only on which of its cells were made visible by the row below (``V`` bits) and which
of its cells block sight (``V`` bits), and it yields the row's mask and the bits it passes on to the row above. So
the whole sweep is ``V`` lookups into one table of ``2^(2V)`` entries built by running MiniGrid's own row loop
(:func:`row_tables`); the batched observation is a gather plus those lookups, with no per-cell Python.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from minigrid.core.constants import DIR_TO_VEC


@cache
def row_tables(view: int) -> tuple[np.ndarray, np.ndarray]:
    """The one-row step of ``Grid.process_vis`` for a view of width ``view``, for every input at once.

    Returns:
        ``(mask, up)``, each ``(2 ** (2 * view),) int64`` indexed by ``incoming | (blocking << view)`` where bit ``i``
        of ``incoming`` says cell ``i`` was made visible by the row below and bit ``i`` of ``blocking`` that cell
        ``i`` does not let sight through: ``mask`` has bit ``i`` set when cell ``i`` of this row is visible, ``up``
        when cell ``i`` of the row above is made visible.
    """
    keys = np.arange(1 << (2 * view), dtype=np.int64)
    visible = [((keys >> i) & 1).astype(bool) for i in range(view)]
    blocks = [((keys >> (view + i)) & 1).astype(bool) for i in range(view)]
    up = [np.zeros(keys.shape, bool) for _ in range(view)]
    for i in range(view - 1):  # left to right, as process_vis
        passes = visible[i] & ~blocks[i]
        visible[i + 1] = visible[i + 1] | passes
        up[i + 1] |= passes
        up[i] |= passes
    for i in reversed(range(1, view)):  # then right to left
        passes = visible[i] & ~blocks[i]
        visible[i - 1] = visible[i - 1] | passes
        up[i - 1] |= passes
        up[i] |= passes
    weights = [np.int64(1) << i for i in range(view)]
    mask = sum((v.astype(np.int64) * w for v, w in zip(visible, weights, strict=True)), np.zeros_like(keys))
    above = sum((u.astype(np.int64) * w for u, w in zip(up, weights, strict=True)), np.zeros_like(keys))
    return mask, above


@cache
def bit_table(view: int) -> np.ndarray:
    """``(2 ** view, view) bool``: row ``b`` is the bits of ``b``, lowest first."""
    return ((np.arange(1 << view)[:, None] >> np.arange(view)[None, :]) & 1).astype(bool)


@cache
def view_offsets(view: int) -> tuple[np.ndarray, np.ndarray]:
    """World offsets from the agent of every view cell, per heading: ``(dx, dy)``, each ``(4, view, view) int64``.

    View cell ``[vx, vy]`` (MiniGrid's image index: ``vx`` across, ``vy`` from far to the agent's row) of an agent at
    ``a`` heading ``d`` (``DIR_TO_VEC``) with right-hand vector ``r = (-d_y, d_x)`` is the world cell
    ``a + (vx - view // 2) * r + (view - 1 - vy) * d``: the inverse of ``MiniGridEnv.get_view_coords``.
    """
    half = view // 2
    vx, vy = np.meshgrid(np.arange(view), np.arange(view), indexing="ij")
    dx = np.empty((4, view, view), np.int64)
    dy = np.empty((4, view, view), np.int64)
    for heading in range(4):
        fx, fy = (int(c) for c in DIR_TO_VEC[heading])
        rx, ry = -fy, fx
        dx[heading] = (vx - half) * rx + (view - 1 - vy) * fx
        dy[heading] = (vx - half) * ry + (view - 1 - vy) * fy
    return dx, dy


def visibility(blocking: np.ndarray) -> np.ndarray:
    """``Grid.process_vis`` for a batch: ``blocking`` ``(N, V, V) bool`` (view cells that stop sight, ``[vx, vy]``)
    to the mask of visible view cells, ``(N, V, V) bool``; the agent is at ``(V // 2, V - 1)``."""
    n, view = blocking.shape[0], blocking.shape[1]
    mask_table, up_table = row_tables(view)
    if view <= 8:  # one byte per row
        blocking_bits = np.packbits(blocking, axis=1, bitorder="little")[:, 0].astype(np.int64) << view  # (N, V)
    else:
        weights = np.int64(1) << np.arange(view, dtype=np.int64)
        blocking_bits = (blocking.astype(np.int64) * weights[None, :, None]).sum(axis=1) << view
    incoming = np.full(n, 1 << (view // 2), np.int64)
    rows = np.empty((n, view), np.int64)
    for row in range(view - 1, -1, -1):
        key = incoming | blocking_bits[:, row]
        rows[:, row] = mask_table[key]
        incoming = up_table[key]
    return bit_table(view)[rows].transpose(0, 2, 1)  # (N, vy, vx) -> (N, vx, vy)
