"""GradientAverager: two processes that each back-propagate half a batch end every backward pass holding the gradient
one process gets from the whole batch, so clipping and optimizer steps keep their weights equal."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from modrl.agents.common.data_parallel import GradientAverager, broadcast_parameters

WORLD = 2


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3), nn.Linear(3, 2))
    model[3].weight.requires_grad_(False)  # a frozen parameter stays out of the averaging
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return torch.randn(16, 6, generator=generator), torch.randn(16, 2, generator=generator)


def _steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, unused: bool) -> list[list[torch.Tensor]]:
    """Three SGD steps with gradient clipping; the gradients seen at each step (after clipping)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen = []
    for step in range(3):
        optimizer.zero_grad()
        out = model[:2](x) if unused and step == 2 else model(x)  # step 2 leaves the last layers without a gradient
        loss = ((out[:, :2] - y) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        seen.append([p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()])
        optimizer.step()
    return seen


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    model = _model(seed=100 + rank)  # different initial weights: rank 0's are broadcast
    broadcast_parameters(model)
    averager = GradientAverager(model)
    x, y = _batch()
    half = len(x) // WORLD
    seen = _steps(model, x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half], unused=rank == 1)
    averager.remove()
    torch.save({"seen": seen, "params": [p.detach() for p in model.parameters()]}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_step_with_the_whole_batch_gradient() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_worker, args=(str(Path(tmp) / "init"), tmp), nprocs=WORLD, start_method="spawn")
        ranks = [torch.load(f"{tmp}/rank{r}.pt") for r in range(WORLD)]
    for a, b in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        assert torch.equal(a, b)  # the same weights after every step
    single = _model(seed=100)
    x, y = _batch()
    expected = _steps(single, x, y, unused=False)
    # Steps 0 and 1 match one process on the whole batch; at step 2 rank 1 sent zeros for the layers it did not use.
    for step in (0, 1):
        for got, want in zip(ranks[0]["seen"][step], expected[step], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.count_nonzero(ranks[0]["seen"][2][-1]) > 0  # the last (trainable) bias: rank 0's half, averaged
    for a, b in zip(ranks[0]["seen"][2], ranks[1]["seen"][2], strict=True):
        assert torch.equal(a, b)
