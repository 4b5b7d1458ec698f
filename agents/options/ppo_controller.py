"""A learned call-and-return controller over a saved option library, trained by SB3's PPO at the high level (SMDP).

The env is a split of a generated suite with mission tokens (:class:`modrl.envs.SplitTaskEnv`) wrapped by
:class:`modrl.options.CallAndReturn`: the high-level action picks an option call (option + argument words), which
then runs, frozen, until its effect predicate holds, a step cap, or the episode ends; the high level sees the
discounted reward sum over the call. The policy is the stock SB3 actor-critic over modrl's Minigrid extractor (image,
direction, mission, task id).

Discounting: inside a call rewards are discounted by ``gamma_option`` per primitive step; PPO then discounts by its
fixed ``algo.gamma`` once per *decision*, not by ``gamma ** duration``. This is the per-macro-step approximation
(SB3 2.9's rollout buffer has one gamma); with a sparse terminal reward it changes only how strongly shorter call
sequences are preferred, not which calls solve a task. ``info["option_discount"]`` carries the exact factor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv

from modrl._io import atomic_write_json
from modrl.agents.common.policies import monolithic_policy_kwargs
from modrl.agents.options.config import RouteConfig
from modrl.agents.options.marked_calls import marked_controller_env, whole_grid_calls
from modrl.agents.planning.library import load_library
from modrl.agents.planning.skills import library_map_view, library_marks_target, library_view_size
from modrl.checkpoint import fingerprint
from modrl.checkpoint_writer import save_checkpoint
from modrl.config import ConfigError, to_dict
from modrl.envs import SplitTaskEnv, get_suite, make_suite_env, parse_task
from modrl.envs.subtask_symbols import subtask_arguments
from modrl.envs.wrappers import Target
from modrl.options import CallAndReturn, OptionCall, OptionLibrary, OptionStats
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter

log = logging.getLogger(__name__)
progress_log = logging.getLogger("modrl.progress")


def option_calls(library: OptionLibrary, suite_name: str) -> list[OptionCall]:
    """Every subtask of the suite (all splits, first appearance order) that an option of ``library`` serves."""
    calls: dict[str, OptionCall] = {}
    for task in get_suite(suite_name).task_names:
        for sub in parse_task(task).subtasks:
            if sub.name in library:
                call = OptionCall(option=sub.name)
            elif sub.verb in library and library.get(sub.verb).parameterised:
                call = OptionCall(option=sub.verb, args=subtask_arguments(sub))
            else:
                continue
            calls.setdefault(call.name, call)
    if not calls:
        raise ValueError(f"no option of the library ({', '.join(library.names)}) serves a subtask of {suite_name!r}")
    return list(calls.values())


def controller_calls(
    library: OptionLibrary, suite_name: str
) -> tuple[list[OptionCall], list[tuple[Target, ...]] | None]:
    """The controller's calls over ``library`` and, for a whole-grid library, the objects each call marks
    (:func:`~modrl.agents.options.marked_calls.whole_grid_calls`; ``None`` for 7x7 options: :func:`option_calls`)."""
    if library_map_view(library):
        raise ConfigError(
            "library: its options read the map view (env.map_view), which options route does not run yet; "
            "evaluate them with modrl eval RUN --planner"
        )
    if library_view_size(library) is None:
        return option_calls(library, suite_name), None
    return whole_grid_calls(library, suite_name)


def _controller_env(
    config: RouteConfig,
    library: OptionLibrary,
    calls: Sequence[OptionCall],
    targets: Sequence[tuple[Target, ...]] | None,
    inner: Callable[[], gym.Env],
) -> gym.Env:
    kwargs: dict[str, Any] = dict(
        max_option_steps=config.max_option_steps,
        gamma=config.gamma_option,
        max_decisions=config.max_decisions,
        seed=config.seed,
        loop_limit=config.loop_limit,
    )
    view = library_view_size(library)
    if view is None:
        return CallAndReturn(Monitor(inner()), library, calls, **kwargs)
    if targets is None:
        raise ValueError(
            "whole-grid options need each call's marker targets: take calls and targets from controller_calls()"
        )
    return marked_controller_env(
        Monitor(inner()), library, calls, targets, view_size=view, marker=library_marks_target(library), **kwargs
    )


def make_controller_vec_env(
    config: RouteConfig,
    library: OptionLibrary,
    calls: Sequence[OptionCall],
    targets: Sequence[tuple[Target, ...]] | None = None,
) -> DummyVecEnv:
    """``n_envs`` call-and-return envs over the configured split, env ``i`` seeded ``seed + i`` (``targets``: the
    objects each call marks, for a whole-grid library)."""
    inner = partial(
        SplitTaskEnv,
        config.env.suite,
        config.env.split,
        mission_tokens=True,
        max_episode_steps=config.env.max_episode_steps,
    )
    venv = DummyVecEnv(
        [partial(_controller_env, config, library, calls, targets, inner) for _ in range(config.env.n_envs)]
    )
    venv.seed(config.seed)
    return venv


def build_controller_model(config: RouteConfig, venv: DummyVecEnv) -> PPO:
    """PPO with SB3's actor-critic over modrl's Minigrid extractor (mission encoded), one action per option call."""
    algo = config.algo
    policy_kwargs = monolithic_policy_kwargs(
        hidden=config.hidden,
        latent_dim=config.hidden,
        critic_hidden=(config.hidden,),
        extractor_kwargs={"features_dim": config.features_dim},
    )
    return PPO(
        ActorCriticPolicy,
        venv,
        policy_kwargs=policy_kwargs,
        seed=config.seed,
        device="cpu",
        verbose=0,
        **algo.ppo_kwargs(),
    )


class OptionControllerCallback(BaseCallback):
    """Counts primitive frames and option decisions; writes option telemetry and per-task success every rollout, and a
    progress line (``modrl.progress`` logger) at most every ``every_s`` seconds and at the end.

    Stops PPO once ``max_frames`` primitive frames have run. TensorBoard steps are primitive frames.
    """

    def __init__(
        self,
        stats: OptionStats,
        writer: TelemetryWriter | None,
        *,
        task_names: Sequence[str],
        max_frames: int,
        window: int = 100,
        every_s: float = 30.0,
    ) -> None:
        super().__init__()
        self.every_s = every_s
        self._started = self._logged = time.monotonic()
        self.stats = stats
        self.writer = writer
        self.max_frames = max_frames
        self.frames = 0
        self._task_index = {name: i for i, name in enumerate(task_names)}
        self._window = window
        self.successes: dict[str, list[float]] = {}

    def _on_step(self) -> bool:
        dones = self.locals["dones"]
        for index, info in enumerate(self.locals["infos"]):
            self.frames += int(info["option_duration"])
            self.stats.record(
                int(info["option_index"]),
                self._task_index[info["task"]],
                int(info["option_duration"]),
                info["option_end"],
                slot=index,
            )
            if dones[index]:
                success = bool(info.get("is_success", False))
                self.stats.end_episode(index, self._task_index[info["task"]], success)
                window = self.successes.setdefault(info["task"], [])
                window.append(float(success))
                del window[: -self._window]
        return self.frames < self.max_frames

    def _on_training_start(self) -> None:
        self._started = self._logged = time.monotonic()

    def _on_training_end(self) -> None:
        progress_log.info(self.progress_line())

    def progress_line(self) -> str:
        """``[router] frames F/N (P%) | X fps | eta M min | decisions D | training success S`` (mean over tasks)."""
        elapsed = max(time.monotonic() - self._started, 1e-9)
        fps = self.frames / elapsed
        eta = max(self.max_frames - self.frames, 0) / fps if fps > 0 else float("inf")
        rates = self.success_rates()
        success = f"{np.mean(list(rates.values())):.2f} over {len(rates)} tasks" if rates else "-"
        return (
            f"[router] frames {self.frames}/{self.max_frames} ({100 * min(self.frames / self.max_frames, 1):.0f}%)"
            f" | {fps:.0f} fps | eta {eta / 60:.1f} min | decisions {self.num_timesteps} | training success "
            f"{success}"
        )

    def _on_rollout_end(self) -> None:
        now = time.monotonic()
        if now - self._logged >= self.every_s:
            self._logged = now
            progress_log.info(self.progress_line())
        if self.writer is None:
            return
        self.stats.log(self.writer, self.frames)
        self.writer.log_success({task: float(np.mean(v)) for task, v in self.successes.items() if v}, self.frames)
        self.writer.log_scalar("modrl/router/decisions", self.num_timesteps, self.frames)

    def success_rates(self) -> dict[str, float]:
        """Training success per task over the last ``window`` episodes."""
        return {task: float(np.mean(v)) for task, v in self.successes.items() if v}


def train_controller(
    config: RouteConfig, *, writer: TelemetryWriter | None = None
) -> tuple[PPO, OptionLibrary, list[OptionCall], OptionControllerCallback]:
    """Train the controller for ``config.total_timesteps`` primitive frames; returns the model, library, calls and the
    callback (frames, training success)."""
    torch.set_num_threads(config.torch_threads)
    library = load_library(config.library)
    calls, targets = controller_calls(library, config.env.suite)
    venv = make_controller_vec_env(config, library, calls, targets)
    suite = get_suite(config.env.suite)
    callback = OptionControllerCallback(
        OptionStats([c.name for c in calls], suite.task_names),
        writer,
        task_names=suite.task_names,
        max_frames=config.total_timesteps,
    )
    try:
        model = build_controller_model(config, venv)
        model.learn(config.total_timesteps, callback=callback)
    finally:
        venv.close()
    return model, library, calls, callback


@dataclass(frozen=True)
class ControllerTaskEval:
    """One task's evaluation of the controller: its split, success rate and mean decisions (option calls) per
    episode."""

    split: str
    success: float
    decisions: float


def evaluate_controller(
    model: PPO,
    config: RouteConfig,
    library: OptionLibrary,
    calls: Sequence[OptionCall],
    *,
    episodes: int,
    deterministic: bool = True,
) -> dict[str, ControllerTaskEval]:
    """Success rate and mean decisions per task of every split of the suite (episode ``k`` seeded
    ``EVAL_SEED_BASE + k``); ``calls`` are :func:`controller_calls`'s."""
    targets = controller_calls(library, config.env.suite)[1]
    suite = get_suite(config.env.suite)
    out: dict[str, ControllerTaskEval] = {}
    for split, tasks in suite.splits.items():
        for task in tasks:
            env = _controller_env(
                config,
                library,
                calls,
                targets,
                partial(
                    make_suite_env,
                    suite,
                    suite.task_index(task),
                    mission_tokens=True,
                    max_episode_steps=config.env.max_episode_steps,
                ),
            )
            wins, decisions = 0, 0
            for k in range(episodes):
                obs, _ = env.reset(seed=EVAL_SEED_BASE + k)
                done, info = False, dict[str, Any]()
                while not done:
                    action, _ = model.predict(obs, deterministic=deterministic)
                    obs, _, terminated, truncated, info = env.step(int(action))
                    done, decisions = terminated or truncated, decisions + 1
                wins += bool(info.get("is_success", False))
            env.close()
            out[task] = ControllerTaskEval(split, wins / max(episodes, 1), decisions / max(episodes, 1))
    return out


@dataclass(frozen=True, kw_only=True)
class ControllerRun:
    """What :func:`run_controller` trained and measured.

    Attributes:
        frames: Primitive env steps the controller's training took.
        decisions: Controller decisions (option calls) in training.
        calls: Names of the option calls the controller chooses among.
        greedy: Per task, the deterministic controller's evaluation.
        sampled: The same for the sampled controller.
    """

    frames: int
    decisions: int
    calls: list[str]
    greedy: dict[str, ControllerTaskEval]
    sampled: dict[str, ControllerTaskEval]

    def split_means(self, split: str) -> tuple[float, float, int]:
        """``(greedy success, sampled success, tasks)`` averaged over the tasks of ``split``."""
        tables = (self.greedy, self.sampled)
        rows = [[row.success for row in table.values() if row.split == split] for table in tables]
        means = [sum(values) / len(values) for values in rows]
        return means[0], means[1], sum(row.split == split for row in self.greedy.values())

    @property
    def splits(self) -> list[str]:
        """The splits evaluated, in suite order."""
        return list(dict.fromkeys(row.split for row in self.greedy.values()))


def run_controller(config: RouteConfig, run_dir: Path, *, writer: TelemetryWriter | None = None) -> ControllerRun:
    """``modrl options route``: train the controller, checkpoint its policy under ``run_dir/checkpoints`` (modrl's own
    format, fingerprinted by its calls and config), evaluate it greedy and sampled on every split, and write
    ``run_dir/results.json`` (``frames``, ``tasks``, ``tasks_sampled``)."""
    model, library, calls, callback = train_controller(config, writer=writer)
    names = [c.name for c in calls]
    save_checkpoint(
        run_dir / "checkpoints",
        step=callback.frames,
        tensors={"policy": model.policy.state_dict()},
        meta={"frames": callback.frames, "decisions": model.num_timesteps, "calls": names},
        fingerprint=fingerprint({"calls": names, "config": to_dict(config)}),
        keep=1,
    )
    log.debug(
        "controller trained: %d frames, %d decisions over %d option calls",
        callback.frames,
        model.num_timesteps,
        len(calls),
    )
    greedy = evaluate_controller(model, config, library, calls, episodes=config.eval_episodes)
    sampled = evaluate_controller(model, config, library, calls, episodes=config.eval_episodes, deterministic=False)
    tables = {
        key: {task: asdict(row) for task, row in table.items()}
        for key, table in (("tasks", greedy), ("tasks_sampled", sampled))
    }
    atomic_write_json(run_dir / "results.json", {"frames": callback.frames, **tables})
    return ControllerRun(
        frames=callback.frames, decisions=model.num_timesteps, calls=names, greedy=greedy, sampled=sampled
    )
