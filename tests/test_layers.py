"""modrl.layers: the multi-hot embedding sum equals nn.Embedding's lookup-and-sum, values and gradients."""

from __future__ import annotations

import pytest
import torch

from modrl.layers import summed_embedding


@pytest.mark.parametrize("shape", [(5, 3), (4, 7, 7, 3), (2, 1)])
def test_summed_embedding_equals_lookup_sum(shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(21, 8, generator=generator)
    index = torch.randint(0, 21, shape, generator=generator)
    index[..., 0] = index[..., -1]  # repeated ids in a row count once per occurrence, as in the lookup sum
    a = weight.clone().requires_grad_(True)
    b = weight.clone().requires_grad_(True)
    expected = torch.nn.functional.embedding(index, a).sum(dim=-2)
    got = summed_embedding(index, b)
    assert got.shape == (*shape[:-1], 8) and got.dtype == weight.dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    grad = torch.randn(expected.shape, generator=generator)
    expected.backward(grad)
    got.backward(grad)
    assert a.grad is not None and b.grad is not None
    torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=1e-5)
    unused = torch.ones(21, dtype=torch.bool)
    unused[index.unique()] = False
    assert torch.all(b.grad[unused] == 0)  # rows no id points at get no gradient


def test_summed_embedding_rejects_ids_outside_the_table() -> None:
    with pytest.raises(RuntimeError):
        summed_embedding(torch.tensor([[0, 21]]), torch.zeros(21, 4))
