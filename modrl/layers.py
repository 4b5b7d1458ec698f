"""Small torch building blocks shared by the core encoders and the agents' feature extractors."""

from __future__ import annotations

import torch
from torch import Tensor


def summed_embedding(index: Tensor, weight: Tensor) -> Tensor:
    """``weight[index].sum(-2)``: the sum of the embeddings of the ids along ``index``'s last axis, as a matmul.

    MiniGrid's image holds three category ids per cell (object, colour, state) and modrl embeds each cell as the sum
    of their embeddings. ``nn.Embedding``'s backward on CPU sorts and accumulates every looked-up row one by one (a
    third of a PPO minibatch step on the quick start model); a multi-hot ``(..., V)`` row times the ``(V, E)`` table
    computes the same sum, and its backward is one matrix product. Same values (ids repeated within a row count
    once per occurrence), same gradients.

    Args:
        index: ``(..., C)`` integer ids in ``[0, V)``.
        weight: ``(V, E)`` embedding table.

    Returns:
        ``(..., E)`` in ``weight``'s dtype.
    """
    multi_hot = torch.zeros(*index.shape[:-1], weight.shape[0], dtype=weight.dtype, device=weight.device)
    multi_hot.scatter_add_(-1, index, torch.ones(index.shape, dtype=weight.dtype, device=weight.device))
    return multi_hot @ weight
