"""CPU cost of the PPO update per sample, by minibatch size, for the modular and monolithic agents, in one run.

The PPO update is most of modrl's training time (``experiments/results/speed.md``). This bench fills one rollout
buffer of the chosen config, then times ``model.train()`` (one epoch over the buffer: forward, backward, Adam) in
process CPU seconds, ``--repeats`` times per variant, variants interleaved round by round so load drift hits all
alike. Variants:

* ``embedding=matmul``: the image cells' embeddings summed as a multi-hot row times the table
  (:func:`modrl.layers.summed_embedding`, what modrl uses);
* ``embedding=lookup``: the same sum through ``nn.Embedding``'s lookup (the baseline: what modrl did before; its CPU
  backward accumulates every looked-up row one by one). Same values and gradients (``tests/test_layers.py``).

Prints, per agent x batch size, the median microseconds of CPU per sample for each variant and the ratio
lookup / matmul (> 1: matmul is faster). One process, one torch thread.

    OMP_NUM_THREADS=1 python experiments/bench/bench_update.py --batch-sizes 64 256 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.utils import configure_logger

import modrl.agents.common.extractors as extractors
import modrl.options.encoders as encoders
from modrl.agents.common.builders import build_model, make_vec_env
from modrl.agents.common.config import load_experiment_config
from modrl.layers import summed_embedding
from modrl.shipped import resolve_config


def _lookup_sum(index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.embedding(index, weight).sum(dim=-2)


@contextmanager
def embedding(kind: str) -> Iterator[None]:
    """Route the extractors' embedding sum through ``kind`` (this bench only)."""
    fn = summed_embedding if kind == "matmul" else _lookup_sum
    saved = extractors.summed_embedding, encoders.summed_embedding
    extractors.summed_embedding = encoders.summed_embedding = fn  # type: ignore[assignment]
    try:
        yield
    finally:
        extractors.summed_embedding, encoders.summed_embedding = saved


class _NoOp(BaseCallback):
    def _on_step(self) -> bool:
        return True


def filled_model(config_name: str, agent: str, batch_size: int, overrides: list[str]) -> OnPolicyAlgorithm:
    """A model of the config with one collected rollout in its buffer, set to one epoch per ``train()``."""
    config = load_experiment_config(
        resolve_config(config_name),
        [f"agent.kind={agent}", f"algo.batch_size={batch_size}", "algo.n_epochs=1", *overrides],
    )
    model = build_model(config, make_vec_env(config))
    model.set_logger(configure_logger(None, None, "", False))
    model._setup_learn(config.train.total_timesteps, None)
    callback = _NoOp()
    callback.init_callback(model)
    assert model.env is not None
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="quickstart", help="config file or shipped name (default: quickstart)")
    parser.add_argument("--agents", nargs="+", default=["modular", "monolithic"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    variants = ("lookup", "matmul")
    print("agent       batch   lookup us/sample   matmul us/sample   lookup/matmul")
    for agent in args.agents:
        for batch_size in args.batch_sizes:
            model = filled_model(args.config, agent, batch_size, args.overrides)
            samples = model.rollout_buffer.buffer_size * model.rollout_buffer.n_envs
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.repeats):
                for variant in variants:
                    with embedding(variant):
                        start = time.process_time()
                        model.train()
                        cpu[variant].append((time.process_time() - start) / samples * 1e6)
            med = {v: statistics.median(cpu[v]) for v in variants}
            print(
                f"{agent:<11} {batch_size:>5}   {med['lookup']:>16.1f}   {med['matmul']:>16.1f}   "
                f"{med['lookup'] / med['matmul']:>13.2f}x",
                flush=True,
            )
            assert model.env is not None
            model.env.close()


if __name__ == "__main__":
    main()
