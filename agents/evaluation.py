"""Evaluate a policy per task on fixed evaluation seeds, disjoint from training seeds."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.policies import ActorCriticPolicy

from modrl.checkpoint import Checkpoint, latest_checkpoint
from modrl.envs import get_suite, make_task_env
from modrl.runs import read_run_config

from .builders import build_policy, model_fingerprint
from .config import MAX_SEED, ExperimentConfig, load_experiment_config
from .policies import ModularActorCriticPolicy
from .training import CHECKPOINTS, check_state_dict

#: Evaluation episode ``k`` uses env seed ``EVAL_SEED_BASE + k``; training seeds are below ``MAX_SEED + n_envs``.
EVAL_SEED_BASE = 1_000_000_000
assert EVAL_SEED_BASE > MAX_SEED * 2


@dataclass(frozen=True)
class TaskResult:
    """Evaluation of one task: success rate (reward > 0), mean return and length, mean routing weight per module."""

    task: str
    episodes: int
    success_rate: float
    mean_return: float
    mean_length: float
    module_usage: list[float] | None


@dataclass(frozen=True)
class EvalReport:
    step: int
    deterministic: bool
    seed_base: int
    module_names: list[str] | None
    tasks: list[TaskResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_policy(
    policy: ActorCriticPolicy,
    config: ExperimentConfig,
    *,
    episodes: int,
    deterministic: bool = True,
    seed_base: int = EVAL_SEED_BASE,
    step: int = 0,
) -> EvalReport:
    """Run ``episodes`` episodes of every task of the config's suite; episode ``k`` is seeded ``seed_base + k``."""
    suite = get_suite(config.env.suite)
    modular = policy.modular if isinstance(policy, ModularActorCriticPolicy) else None
    policy.set_training_mode(False)
    results = []
    for task_index, task in enumerate(suite.tasks):
        env = make_task_env(suite, task_index, max_episode_steps=config.env.max_episode_steps)
        returns, lengths, successes, usage = [], [], [], []
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed_base + episode)
            done, total, length, success = False, 0.0, 0, False
            while not done:
                action, _ = policy.predict(obs, deterministic=deterministic)
                if modular is not None and modular.last_weights is not None:
                    usage.append(modular.last_weights[0].numpy())
                obs, reward, terminated, truncated, info = env.step(int(action))
                total += float(reward)
                length += 1
                done = terminated or truncated
                success = bool(info.get("is_success", False))
            returns.append(total)
            lengths.append(length)
            successes.append(success)
        env.close()
        results.append(
            TaskResult(
                task=task.name,
                episodes=episodes,
                success_rate=float(np.mean(successes)) if episodes else 0.0,
                mean_return=float(np.mean(returns)) if episodes else 0.0,
                mean_length=float(np.mean(lengths)) if episodes else 0.0,
                module_usage=np.mean(usage, axis=0).round(4).tolist() if usage else None,
            )
        )
    names = list(modular.network.library.names) if modular is not None else None
    return EvalReport(step=step, deterministic=deterministic, seed_base=seed_base, module_names=names, tasks=results)


def load_run_policy(run_dir: Path) -> tuple[ExperimentConfig, ActorCriticPolicy, Checkpoint]:
    """Rebuild the policy of a run from its ``config.yaml`` and load its newest verified checkpoint."""
    config = load_experiment_config(read_run_config(run_dir))
    policy, observation_space, action_space = build_policy(config)
    fingerprint = model_fingerprint(config, observation_space, action_space)
    checkpoint = latest_checkpoint(run_dir / CHECKPOINTS, expected_fingerprint=fingerprint)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir / CHECKPOINTS}: no complete checkpoint to evaluate")
    check_state_dict(policy.state_dict(), checkpoint.tensors.get("policy", {}), checkpoint.path)
    policy.load_state_dict(checkpoint.tensors["policy"], strict=True)
    policy.set_training_mode(False)
    return config, policy, checkpoint


def format_report(report: EvalReport) -> str:
    """A plain-text table: one row per task, success, return, length, then module usage columns."""
    names = report.module_names or []
    header = ["task", "episodes", "success", "return", "length", *names]
    rows = [header]
    for r in report.tasks:
        usage = [f"{u:.2f}" for u in r.module_usage] if r.module_usage else []
        rows.append(
            [r.task, str(r.episodes), f"{r.success_rate:.2f}", f"{r.mean_return:.3f}", f"{r.mean_length:.1f}", *usage]
        )
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    lines = [_format_row(row, widths) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    mode = "deterministic" if report.deterministic else "stochastic"
    title = f"evaluation at step {report.step} ({mode} policy, seeds {report.seed_base}+k)"
    if names:
        title += "; module columns = mean routing weight"
    return "\n".join([title, *lines])


def _format_row(row: list[str], widths: list[int]) -> str:
    """First cell left-aligned, the rest right-aligned (a row may be shorter than the header)."""
    cells = [
        cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths, strict=False))
    ]
    return "  ".join(cells)
