"""Evaluate a policy per task on fixed evaluation seeds, disjoint from training seeds."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.policies import ActorCriticPolicy

from modrl.agents.common.builders import build_policy, env_options, model_fingerprint
from modrl.agents.common.config import ExperimentConfig, load_experiment_config
from modrl.agents.common.model_checkpoint import check_state_dict, explain_mismatch, model_identity
from modrl.agents.common.policies import ModularActorCriticPolicy, ModularExtractor
from modrl.agents.common.run_layout import CHECKPOINTS, TENSORBOARD
from modrl.checkpoint import Checkpoint, FingerprintMismatchError, latest_checkpoint
from modrl.config import to_dict
from modrl.envs import get_suite, make_suite_env
from modrl.routing_health import routing_health
from modrl.runs import read_run_config
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter
from modrl.text_table import format_row

progress_log = logging.getLogger("modrl.progress")


@dataclass(frozen=True)
class TaskResult:
    """Evaluation of one task: success rate (reward > 0), mean return and length, mean routing weight per module."""

    task: str
    split: str
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
    splits: Sequence[str] | None = None,
    acting_as: Callable[[int], AbstractContextManager[object]] | None = None,
    progress: bool = True,
) -> EvalReport:
    """Run ``episodes`` episodes of every task of the given splits (default: all of the suite's splits, e.g. train
    and test side by side); episode ``k`` is seeded ``seed_base + k``.

    Args:
        acting_as: Called with a task id, the context its episodes run in: a continual run's
            ``rule.acting_as`` (:func:`modrl.agents.continual.store.load_continual_policy`) for rules that act per
            task (PackNet).
        progress: Log a ``[eval] task i/n ...`` line per task (``modrl.progress``).
    """
    suite = get_suite(config.env.suite)
    chosen = list(suite.splits) if splits is None else list(splits)
    unknown = [name for name in chosen if name not in suite.splits]
    if unknown:
        raise ValueError(f"suite {suite.name!r} has no split {unknown[0]!r}; its splits: {', '.join(suite.splits)}")
    modular = policy.modular if isinstance(policy, ModularActorCriticPolicy) else None
    policy.set_training_mode(False)
    index = {task.name: i for i, task in enumerate(suite.tasks)}
    results: list[TaskResult] = []
    todo = [(split, name) for split in chosen for name in suite.splits[split]]
    started = time.monotonic()
    for split, name in todo:
        env = make_suite_env(suite, index[name], **env_options(config))
        with acting_as(index[name]) if acting_as is not None else contextlib.nullcontext():
            episodes_data = [run_episode(env, policy, modular, seed_base + k, deterministic) for k in range(episodes)]
        env.close()
        results.append(task_result(name, split, episodes_data))
        if progress:
            _log_progress(results, len(todo), time.monotonic() - started)
    names = list(modular.network.library.names) if modular is not None else None
    return EvalReport(step=step, deterministic=deterministic, seed_base=seed_base, module_names=names, tasks=results)


def log_final_hparams(run_dir: Path, config: ExperimentConfig, report: EvalReport) -> None:
    """TensorBoard's HParams dashboard for the run (``run_dir/tb``): every config key (dotted) beside the final
    evaluation's mean success and return per split (``hparam/success_<split>``, ``hparam/return_<split>``)."""
    metrics: dict[str, float] = {}
    for split in dict.fromkeys(t.split for t in report.tasks):
        rows = [t for t in report.tasks if t.split == split]
        metrics[f"hparam/success_{split}"] = float(np.mean([t.success_rate for t in rows]))
        metrics[f"hparam/return_{split}"] = float(np.mean([t.mean_return for t in rows]))
    with TelemetryWriter(run_dir / TENSORBOARD) as writer:
        writer.log_hparams(_flatten(to_dict(config)), metrics, report.step)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flatten(value, f"{prefix}{key}.").items()}
    return {prefix[:-1]: data}


def _log_progress(done: Sequence[TaskResult], total: int, elapsed: float) -> None:
    """``[eval] task 2/6 doorkey5 (train): success 0.90 over 100 episodes | 12s | eta 24s``."""
    last = done[-1]
    eta = elapsed / len(done) * (total - len(done))
    progress_log.info(
        "[eval] task %d/%d %s (%s): success %.2f over %d episodes | %.0fs | eta %.0fs",
        len(done),
        total,
        last.task,
        last.split,
        last.success_rate,
        last.episodes,
        elapsed,
        eta,
    )


def run_episode(
    env: gym.Env, policy: ActorCriticPolicy, modular: ModularExtractor | None, seed: int, deterministic: bool
) -> tuple[float, int, bool, list[np.ndarray]]:
    """(return, length, success, routing weights per step) of one episode.

    A sampled (``deterministic=False``) episode draws its actions from torch's generator seeded with ``seed`` (the
    caller's generator state is put back afterwards), so a stochastic evaluation repeats itself exactly.
    """
    if deterministic:
        return _episode(env, policy, modular, seed, True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _episode(env, policy, modular, seed, False)


def _episode(
    env: gym.Env, policy: ActorCriticPolicy, modular: ModularExtractor | None, seed: int, deterministic: bool
) -> tuple[float, int, bool, list[np.ndarray]]:
    obs, _ = env.reset(seed=seed)
    done, total, length, success, usage = False, 0.0, 0, False, []
    while not done:
        action, _ = policy.predict(obs, deterministic=deterministic)
        if modular is not None and modular.last_weights is not None:
            usage.append(modular.last_weights[0].cpu().numpy())
        obs, reward, terminated, truncated, info = env.step(int(action))
        total += float(reward)
        length += 1
        done = terminated or truncated
        success = bool(info.get("is_success", False))
    return total, length, success, usage


def task_result(task: str, split: str, data: list[tuple[float, int, bool, list[np.ndarray]]]) -> TaskResult:
    usage = [weights for _, _, _, episode_usage in data for weights in episode_usage]
    return TaskResult(
        task=task,
        split=split,
        episodes=len(data),
        success_rate=float(np.mean([d[2] for d in data])) if data else 0.0,
        mean_return=float(np.mean([d[0] for d in data])) if data else 0.0,
        mean_length=float(np.mean([d[1] for d in data])) if data else 0.0,
        module_usage=np.mean(usage, axis=0).round(4).tolist() if usage else None,
    )


def load_run_policy(run_dir: Path, *, device: str = "cpu") -> tuple[ExperimentConfig, ActorCriticPolicy, Checkpoint]:
    """Rebuild the policy of a run from its ``config.yaml`` on ``device`` and load its newest verified checkpoint
    (checkpoints hold CPU tensors, so a run trained on any device loads on any other).

    The checkpoint must have been made for the same agent, task suite and spaces as the config describes (the
    check ``modrl train --resume`` makes, :func:`modrl.agents.common.training.find_resume_checkpoint`). A ``modrl
    continual`` run directory loads through :func:`modrl.agents.continual.store.load_continual_policy` (its latest
    commit, with freeze_grow's router module mask) and returns its single-run equivalent config.

    Raises:
        FingerprintMismatchError: The checkpoint belongs to another agent, suite or observation/action space; the
            message names each difference as ``key: expected ..., found ...``.
        CheckpointError: Its weights do not fit the config's architecture.
        FileNotFoundError: No checkpoint verifies.
        ValueError: A continual run whose rule acts per task (PackNet): evaluate it with ``load_continual_policy``
            and ``evaluate_policy(acting_as=rule.acting_as)``.
    """
    data = read_run_config(run_dir)
    if "sequence" in data and "rule" in data:  # a continual run's config
        return _load_continual_run(run_dir, device=device)
    config = load_experiment_config(data)
    policy, observation_space, action_space = build_policy(config, device=device)
    fingerprint = model_fingerprint(config, observation_space, action_space)
    try:
        checkpoint = latest_checkpoint(run_dir / CHECKPOINTS, expected_fingerprint=fingerprint)
    except FingerprintMismatchError as exc:
        raise explain_mismatch(exc, model_identity(config, observation_space, action_space)) from None
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir / CHECKPOINTS}: no complete checkpoint to evaluate")
    check_state_dict(policy.state_dict(), checkpoint.tensors.get("policy", {}), checkpoint.path)
    policy.load_state_dict(checkpoint.tensors["policy"], strict=True)
    policy.set_training_mode(False)
    return config, policy, checkpoint


def _load_continual_run(run_dir: Path, *, device: str) -> tuple[ExperimentConfig, ActorCriticPolicy, Checkpoint]:
    from modrl.agents.continual.store import load_continual_policy

    loaded = load_continual_policy(run_dir, device=device)
    if loaded.rule.acts_per_task:
        raise ValueError(
            f"{run_dir}: rule {loaded.config.rule.kind!r} acts per task, which the weights alone do not show; "
            "evaluate it with modrl.agents.continual.store.load_continual_policy and "
            "evaluate_policy(..., acting_as=rule.acting_as), or read its R in continual.json"
        )
    return loaded.config.experiment(), loaded.policy, loaded.commit.model


def format_report(report: EvalReport) -> str:
    """A plain-text table: one row per task, success, return, length, then module usage columns."""
    names = report.module_names or []
    header = ["task", "split", "episodes", "success", "return", "length", *names]
    rows = [header]
    for r in report.tasks:
        usage = [f"{u:.2f}" for u in r.module_usage] if r.module_usage else []
        numbers = [str(r.episodes), f"{r.success_rate:.2f}", f"{r.mean_return:.3f}", f"{r.mean_length:.1f}"]
        rows.append([r.task, r.split, *numbers, *usage])
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    lines = [format_row(row, widths) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    for split in dict.fromkeys(r.split for r in report.tasks):
        rates = [r.success_rate for r in report.tasks if r.split == split]
        lines.append(f"{split}: mean success {np.mean(rates):.3f} over {len(rates)} task(s)")
    allocation = [r.module_usage for r in report.tasks if r.module_usage]
    if names and len(allocation) == len(report.tasks):  # every task counts once: the allocation the table shows
        lines.append(routing_health(np.array(allocation), np.ones(len(allocation))).line())
    mode = "deterministic" if report.deterministic else "stochastic"
    title = f"evaluation at step {report.step} ({mode} policy, seeds {report.seed_base}+k)"
    if names:
        title += "; module columns = mean routing weight"
    return "\n".join([title, *lines])
