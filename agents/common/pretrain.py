"""Oracle pre-training for ``modrl train`` (the ``pretrain`` config section): behaviour cloning before RL.

BabyAI's imitation-learning baseline (Chevalier-Boisvert et al., 2019) as a pre-training stage, the way deep
Q-learning from demonstrations (Hester et al., 2018) starts RL from an expert:

1. :func:`collect_run_demos` lets the oracle (:func:`modrl.envs.oracle.demonstrate`: BabyAI's bot on modrl's
   :class:`~modrl.envs.task_env.TaskEnv`) solve ``pretrain.episodes`` episodes of the run's **training tasks** only
   (:func:`~modrl.agents.common.config_checks.training_tasks`: ``env.split``'s tasks, never another split),
   episode ``j`` on training task ``j mod T`` with reset seed :func:`demo_seed` ``(seed, j)`` =
   ``DEMO_SEED_BASE + seed * SEEDS_PER_RUN + j`` (:mod:`modrl.seeds`: disjoint from training and evaluation seeds;
   runs of different seeds clone different demonstrations, as they train on different episodes). The envs are the
   run's own (:func:`~modrl.agents.common.builders.env_options`, the event reward included), so every observation is
   what the policy sees in training. Only solved episodes are kept;
   every env step the oracle took, kept or not, counts as a **demo frame**.
2. :func:`~modrl.agents.options.demos.behaviour_clone` fits the SB3 policy through the policy object itself:
   cross-entropy of the bot's action under ``policy.get_distribution(obs)`` and, with ``pretrain.fit_value``, the
   squared error of ``policy.predict_values(obs)`` against the discounted returns (``algo.gamma``), with its own
   Adam; the logits' bias starts at the demonstrated action frequencies. The algorithm's optimiser is untouched, so
   PPO/A2C starts from the cloned weights with a fresh optimiser state.

:func:`pretrain_policy` does both and writes ``run_dir/pretrain.json`` (counts, per-epoch ``bc_loss``/``accuracy``/
``value_loss``, seconds) and TensorBoard scalars in ``run_dir/tb/pretrain`` (a run of its own: x axis = epoch;
``modrl/pretrain/bc_loss|accuracy|value_loss`` per epoch, ``modrl/pretrain/demo_frames|demo_episodes|demo_pairs``
at step 0, ``modrl/pretrain/accuracy`` at step 0 is the accuracy before cloning). Both are rewritten from scratch
whenever pre-training (re)starts. Pre-training runs only on a fresh start, before the first RL step and so before the
first checkpoint; every checkpoint records its :meth:`PretrainStats.record`, so a resumed run never repeats it, and a
run stopped or killed during it restarts it from scratch, which gives the same weights (same seeds, same order).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from modrl._io import atomic_write_json
from modrl.agents.common.builders import env_options
from modrl.agents.common.config import MAX_PRETRAIN_EPISODES, ExperimentConfig
from modrl.agents.common.config_checks import training_tasks
from modrl.agents.options.demos import behaviour_clone, demo_accuracy, discounted_returns
from modrl.agents.planning.demo_set import DemoSet
from modrl.envs import get_suite, make_suite_env
from modrl.envs.oracle import Demonstration, demonstrate
from modrl.envs.wrappers import SubtaskEventReward
from modrl.faults import fault_point
from modrl.seeds import DEMO_SEED_BASE
from modrl.telemetry import TelemetryWriter

log = logging.getLogger(__name__)

#: Oracle episodes tried per episode asked for before collection gives up with what it has.
ATTEMPTS_PER_EPISODE = 3
#: Reset seeds each run seed's demonstrations may use: the most attempts a run makes.
SEEDS_PER_RUN = ATTEMPTS_PER_EPISODE * MAX_PRETRAIN_EPISODES


def demo_seed(run_seed: int, attempt: int) -> int:
    """The reset seed of a run's ``attempt``-th oracle episode (``0 <= attempt < SEEDS_PER_RUN``)."""
    return DEMO_SEED_BASE + run_seed * SEEDS_PER_RUN + attempt


PRETRAIN_FILE = "pretrain.json"
#: TensorBoard run of the pre-training curves, under the run's ``tb/``.
TB_SUBDIR = "pretrain"
TAG = "modrl/pretrain"


class PretrainStopped(Exception):
    """A stop was requested (SIGINT/SIGTERM) during pre-training: the run has no checkpoint yet."""


@dataclass(frozen=True, kw_only=True)
class PretrainStats:
    """What oracle pre-training did (``accuracy``: fraction of demonstrated actions the greedy policy takes).

    ``demo_frames`` counts every env step the oracle took (failed attempts included); ``pairs`` the (observation,
    action) pairs cloned, from the ``episodes`` solved episodes of ``attempts`` tried over ``tasks`` training tasks.
    """

    episodes: int
    attempts: int
    tasks: int
    pairs: int
    demo_frames: int
    epochs: int
    accuracy_before: float
    accuracy: float
    bc_loss: float
    value_loss: float | None

    def record(self) -> dict[str, Any]:
        """JSON form, without wall-clock fields (stored in every checkpoint; equal across exact resumes)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PretrainStats:
        """The inverse of :meth:`record`."""
        return cls(**{key: record[key] for key in cls.__dataclass_fields__})


def collect_run_demos(config: ExperimentConfig, *, stop: Callable[[], bool] = lambda: False) -> DemoSet:
    """Oracle demonstrations on the run's training tasks (see the module docstring).

    Raises:
        PretrainStopped: ``stop()`` became true.
        RuntimeError: The oracle solved no episode.
    """
    suite = get_suite(config.env.suite)
    tasks = training_tasks(config.env, suite)
    wanted = config.pretrain.episodes
    envs: dict[int, Any] = {}
    kept: list[Demonstration] = []
    attempts = frames = 0
    try:
        while len(kept) < wanted and attempts < ATTEMPTS_PER_EPISODE * wanted:
            if stop():
                raise PretrainStopped
            task = tasks[attempts % len(tasks)]
            if task not in envs:
                env = make_suite_env(suite, task, **env_options(config))
                envs[task] = SubtaskEventReward(env, bonus=config.env.event_reward) if config.env.event_reward else env
            demo = demonstrate(envs[task], seed=demo_seed(config.seed, attempts))
            frames += demo.length
            attempts += 1
            if demo.success:
                kept.append(demo)
    finally:
        for env in envs.values():
            env.close()
    if not kept:
        raise RuntimeError(f"pretrain: the oracle solved none of {attempts} episodes of suite {suite.name!r}")
    if len(kept) < wanted:
        log.warning(
            "pretrain: the oracle solved only %d of the %d episodes wanted in %d tries", len(kept), wanted, attempts
        )
    return DemoSet(
        observations={key: np.concatenate([d.observations[key][:-1] for d in kept]) for key in kept[0].observations},
        actions=np.concatenate([d.actions for d in kept]),
        returns=np.concatenate([discounted_returns(d.rewards, config.algo.gamma) for d in kept]),
        tasks=tuple(d.task for d in kept),
        seeds=tuple(d.seed for d in kept),
        task_seeds=tuple(d.seed for d in kept),
        lengths=tuple(d.length for d in kept),
        attempts=attempts,
        frames=frames,
    )


def _check_fits(policy: ActorCriticPolicy, demos: DemoSet) -> None:
    """The oracle's envs must give the observations the policy reads (same keys and shapes)."""
    space = policy.observation_space
    assert isinstance(space, spaces.Dict), space
    for key, values in demos.observations.items():
        if key not in space.spaces or values.shape[1:] != space[key].shape:
            raise RuntimeError(
                f"pretrain: demonstration observation {key!r} {values.shape[1:]} does not fit the policy"
            )


def pretrain_policy(
    policy: ActorCriticPolicy,
    config: ExperimentConfig,
    run_dir: Path,
    *,
    stop: Callable[[], bool] = lambda: False,
) -> PretrainStats:
    """Collect the oracle demonstrations and behaviour-clone ``policy`` on them; writes ``run_dir/pretrain.json``
    and ``run_dir/tb/pretrain`` (see the module docstring). ``stop()`` is polled per episode and per epoch.

    Raises:
        PretrainStopped: ``stop()`` became true (nothing of the stage is kept: it restarts from scratch).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    tb_dir = run_dir / "tb" / TB_SUBDIR
    shutil.rmtree(tb_dir, ignore_errors=True)  # a restarted stage replaces what an interrupted one wrote
    (run_dir / PRETRAIN_FILE).unlink(missing_ok=True)
    demos = collect_run_demos(config, stop=stop)
    _check_fits(policy, demos)
    writer = TelemetryWriter(tb_dir)
    try:
        before = demo_accuracy(policy, demos)
        for name, value in (
            ("demo_frames", demos.frames),
            ("demo_episodes", len(demos.tasks)),
            ("demo_pairs", demos.size),
        ):
            writer.log_scalar(f"{TAG}/{name}", value, 0)
        writer.log_scalar(f"{TAG}/accuracy", before, 0)

        def after_epoch(epoch: int) -> bool:
            fault_point("pretrain-epoch")
            return stop()

        history = behaviour_clone(
            policy, demos, config.pretrain, seed=config.seed, writer=writer, tag=TAG, after_epoch=after_epoch
        )
    finally:
        writer.close()
    if stop():
        raise PretrainStopped
    last = history[-1]
    stats = PretrainStats(
        episodes=len(demos.tasks),
        attempts=demos.attempts,
        tasks=len(set(demos.tasks)),
        pairs=demos.size,
        demo_frames=demos.frames,
        epochs=len(history),
        accuracy_before=before,
        accuracy=last["accuracy"],
        bc_loss=last["bc_loss"],
        value_loss=last.get("value_loss"),
    )
    seconds = {"wall_s": round(time.perf_counter() - wall, 3), "cpu_s": round(time.process_time() - cpu, 3)}
    atomic_write_json(
        run_dir / PRETRAIN_FILE,
        {**stats.record(), **seconds, "demo_tasks": sorted(set(demos.tasks)), "history": history},
    )
    log.info(
        "pretrain: %d oracle episodes (%d demo frames, %d pairs); behaviour cloning accuracy %.3f -> %.3f in %.1fs",
        stats.episodes,
        stats.demo_frames,
        stats.pairs,
        before,
        stats.accuracy,
        seconds["wall_s"],
    )
    return stats
