"""Skill options behaviour-cloned from the planner's own demonstrations on simpler stock tasks (``modrl options
skills``).

The stock hard tasks (KeyCorridorS4R3, ObstructedMaze-1Dlh, BlockedUnlockPickup) are sequences of a handful of
skills -- go to, pick up, drop, open (a door, a locked door with its key, a box) -- in larger layouts. Here each skill
is one parameterised option, its argument the object's ``(colour, type)``, learned only from the **train** split of a
suite (``minigrid-hard``: Unlock, DoorKey-8x8, UnlockPickup, KeyCorridorS3R1-3, ObstructedMaze-1Dl):

1. :func:`record_skill_demos` lets the planner (:func:`modrl.planner.execute`, declared operators, A*) solve train
   episodes with the scripted skills (:class:`modrl.envs.scripted_skills.ScriptedSkills`) and cuts every executed step
   into a demonstration of its skill: the observations the agent had before each primitive action and the actions.
   Episodes are seeded from :data:`~modrl.agents.option_demos.DEMO_SEED_BASE` up (disjoint from evaluation seeds);
   only episodes the planner solved and steps that ended done are kept.
2. :func:`train_skill_library` clones one option per skill on its demonstrations
   (:func:`~modrl.agents.option_demos.behaviour_clone`, the action-frequency prior included) and saves the library.
   There is no reinforcement-learning fine-tuning: the options are exactly what imitation of the train split gives.

The options read the whole grid (:class:`modrl.envs.wrappers.FullView`, ``view_size``), privileged like the planner's
own state, so they find what the planner names without memory. A library made here runs under the planner with
``modrl eval RUN_DIR --planner --split test``; the planner calls a skill option for a step by
its skill name (:func:`modrl.agents.option_skills.call_resolver`) and ends the call when the step's effects are
observed (:class:`modrl.planner.option_executor.OptionExecutor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from modrl._io import atomic_write_json, atomic_write_text
from modrl.config import apply_overrides, check, from_dict, load_yaml, to_dict
from modrl.envs import get_suite
from modrl.envs.grammar import COLOURS
from modrl.envs.operators import goals_for_env, planning_domain
from modrl.envs.predicates import plain_colour
from modrl.envs.scripted_skills import ScriptedSkills
from modrl.envs.wrappers import IMAGE_HIGH, full_view_image
from modrl.options import OptionConfig, OptionLibrary
from modrl.planner import GroundOperator, MonitorConfig, SearchConfig, execute
from modrl.planner.monitor import SkillResult, SkillStatus

from .config import MAX_SEED
from .option_demos import DEMO_SEED_BASE, EVAL_TASK_SEEDS, DemoSet, behaviour_clone, demo_accuracy
from .options_config import DemoConfig, OptionNetConfig, check_split
from .options_policy import OptionActorCriticPolicy
from .options_router import library_predicates

log = logging.getLogger(__name__)

SKILL_NAMES: tuple[str, ...] = ("goto", "pickup", "drop", "open")
"""The planner's skills a skill option can serve (``putnext`` is not one of the stock tasks' skills)."""
SKILL_TYPES: tuple[str, ...] = ("ball", "box", "key", "door", "goal")
"""Object types a skill option's argument may name."""
SKILL_SLOTS: tuple[tuple[str, ...], ...] = (COLOURS, SKILL_TYPES)
"""Argument slots of every skill option: colour, then type."""
LIBRARY_DIR = "options"


@dataclass(frozen=True, kw_only=True)
class SkillsConfig:
    """``modrl options skills``: what to record and how to clone it (see the module docstring)."""

    name: str = "skills"
    seed: int = 0
    torch_threads: int = 1
    suite: str = "minigrid-hard"
    split: str = "train"
    #: Planner episodes recorded per task of the split.
    episodes: int = 100
    #: Side of the whole-grid view the options read (odd).
    view_size: int = 25
    skills: tuple[str, ...] = SKILL_NAMES
    net: OptionNetConfig = field(default_factory=OptionNetConfig)
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 1e-3
    #: Fraction of each skill's recorded calls (the last ones) kept out of cloning to measure accuracy on.
    validation: float = 0.1

    def __post_init__(self) -> None:
        check(0 <= self.seed < MAX_SEED, "seed", f"must be in [0, {MAX_SEED}), got {self.seed}")
        check(self.torch_threads >= 1, "torch_threads", f"must be >= 1, got {self.torch_threads}")
        check(1 <= self.episodes <= 100_000, "episodes", f"must be in [1, 100000], got {self.episodes}")
        check(self.view_size >= 7 and self.view_size % 2 == 1, "view_size",
              f"must be an odd integer >= 7, got {self.view_size}")
        unknown = [s for s in self.skills if s not in SKILL_NAMES]
        check(bool(self.skills) and not unknown and len(set(self.skills)) == len(self.skills), "skills",
              f"pick each of {', '.join(SKILL_NAMES)} at most once, got {list(self.skills)}")
        check(0 <= self.validation < 1, "validation", f"must be in [0, 1), got {self.validation}")
        DemoConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate)  # range checks

    @property
    def clone(self) -> DemoConfig:
        """The behaviour-cloning settings (no value fit: the options have no critic to warm up)."""
        return DemoConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                          fit_value=False)


def load_skills_config(source: Path | str | Mapping[str, Any], overrides: Sequence[str] = ()) -> SkillsConfig:
    """A :class:`SkillsConfig` from YAML (or a mapping) plus ``key=value`` overrides; the suite and split checked."""
    data = source if isinstance(source, Mapping) else load_yaml(source)
    config = from_dict(SkillsConfig, apply_overrides(data, overrides))
    check_split(config.suite, [config.split], "suite")
    return config


def skill_call(step: GroundOperator) -> tuple[str, tuple[str, str]] | None:
    """``(skill, (colour, type))`` of a planner step a skill option can serve, else ``None``."""
    if step.skill not in SKILL_NAMES or len(step.skill_args) != 2 or step.skill_args[0] not in SKILL_TYPES:
        return None
    colour = plain_colour(step.skill_args[1])
    return (step.skill, (colour, step.skill_args[0])) if colour in COLOURS else None


class _Recorder(gym.Wrapper[Any, Any, Any, Any]):
    """Keeps the whole-grid observation before every action, and the action."""

    def __init__(self, env: gym.Env, view_size: int) -> None:
        super().__init__(env)
        self.view_size = view_size
        self.images: list[np.ndarray] = []
        self.directions: list[int] = []
        self.actions: list[int] = []
        self._current: tuple[np.ndarray, int] | None = None

    def _look(self) -> None:
        base = self.env.unwrapped
        self._current = (full_view_image(base, self.view_size), int(base.agent_dir))  # type: ignore[attr-defined]

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        out = self.env.reset(**kwargs)
        self._look()
        return out

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        assert self._current is not None, "reset first"
        self.images.append(self._current[0])
        self.directions.append(self._current[1])
        self.actions.append(int(action))
        out = self.env.step(action)
        self._look()
        return out


@dataclass(frozen=True, kw_only=True)
class _Call:
    skill: str
    args: tuple[str, str]
    start: int
    stop: int


class _Cutter:
    """A :class:`~modrl.planner.monitor.SkillExecutor` that runs the scripted skills and notes each step's span."""

    def __init__(self, skills: ScriptedSkills, recorder: _Recorder) -> None:
        self.skills, self.recorder = skills, recorder
        self.calls: list[_Call] = []

    def observe(self) -> frozenset[str]:
        return self.skills.observe()

    def execute(self, step: GroundOperator) -> SkillResult:
        start = len(self.recorder.actions)
        result = self.skills.execute(step)
        call = skill_call(step)
        stop = len(self.recorder.actions)
        if call is not None and result.status is SkillStatus.DONE and stop > start:
            self.calls.append(_Call(skill=call[0], args=call[1], start=start, stop=stop))
        return result


@dataclass(frozen=True, kw_only=True)
class SkillRecording:
    """Every kept skill call of a recording: per skill, the demonstrations as a :class:`DemoSet` (``args`` holds the
    slot indices), and the recording's counts."""

    demos: dict[str, DemoSet]
    calls: dict[str, int]
    episodes: int
    solved: int
    frames: int


def _record_episode(env_id: str, seed: int, view_size: int) -> tuple[_Recorder, list[_Call], bool]:
    recorder = _Recorder(gym.make(env_id), view_size)
    recorder.reset(seed=seed)
    skills = ScriptedSkills(recorder)
    cutter = _Cutter(skills, recorder)
    execute(planning_domain(), goals_for_env(recorder, skills.observe()), cutter,
            MonitorConfig(search=SearchConfig(), max_replans=5))
    recorder.close()
    return recorder, cutter.calls, bool(skills.episode_success)


def record_skill_demos(env_ids: Sequence[str], *, episodes: int, view_size: int,
                       skills: Sequence[str] = SKILL_NAMES, seed_base: int = DEMO_SEED_BASE) -> SkillRecording:
    """Record ``episodes`` planner episodes of each env id (episode ``j`` seeded ``seed_base + j``; an evaluation seed
    is skipped) and cut them into per-skill demonstrations (see the module docstring).

    Raises:
        RuntimeError: No skill of ``skills`` was demonstrated.
    """
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]] = {s: [] for s in skills}
    counts = dict.fromkeys(skills, 0)
    solved = frames = total = 0
    for env_id in env_ids:
        for j in range(episodes):
            seed = seed_base + j
            if seed in EVAL_TASK_SEEDS:
                continue
            recorder, calls, success = _record_episode(env_id, seed, view_size)
            total += 1
            frames += len(recorder.actions)
            if not success:
                continue
            solved += 1
            for call in calls:
                if call.skill not in parts:
                    continue
                span = slice(call.start, call.stop)
                ids = [SKILL_SLOTS[i].index(word) for i, word in enumerate(call.args)]
                parts[call.skill].append((np.stack(recorder.images[span]), np.asarray(recorder.directions[span]),
                                          np.tile(np.asarray(ids, np.int64), (call.stop - call.start, 1)),
                                          np.asarray(recorder.actions[span], np.int64)))
                counts[call.skill] += 1
    demos = {skill: _demo_set(chunks, total, frames) for skill, chunks in parts.items() if chunks}
    if not demos:
        raise RuntimeError(f"no step of the skills {', '.join(skills)} was demonstrated in {', '.join(env_ids)}")
    return SkillRecording(demos=demos, calls=counts, episodes=total, solved=solved, frames=frames)


def _demo_set(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], attempts: int,
              frames: int) -> DemoSet:
    actions = np.concatenate([c[3] for c in chunks])
    return DemoSet(observations={"image": np.concatenate([c[0] for c in chunks]),
                                 "direction": np.concatenate([c[1] for c in chunks]).astype(np.int64),
                                 "args": np.concatenate([c[2] for c in chunks])},
                   actions=actions, returns=np.zeros(len(actions), np.float32), tasks=(), seeds=(), task_seeds=(),
                   lengths=tuple(len(c[3]) for c in chunks), attempts=attempts, frames=frames)


def split_calls(demos: DemoSet, validation: float) -> tuple[DemoSet, DemoSet | None]:
    """The first calls for cloning, the last ``validation`` fraction of calls (rounded) held out (``None`` when that
    rounds to no call, or to all of them)."""
    n_val = round(validation * len(demos.lengths))
    if n_val == 0 or n_val >= len(demos.lengths):
        return demos, None
    cut = int(sum(demos.lengths[:-n_val]))

    def part(rows: slice, lengths: tuple[int, ...]) -> DemoSet:
        return DemoSet(observations={k: v[rows] for k, v in demos.observations.items()}, actions=demos.actions[rows],
                       returns=demos.returns[rows], tasks=(), seeds=(), task_seeds=(), lengths=lengths,
                       attempts=demos.attempts, frames=demos.frames)

    return part(slice(0, cut), demos.lengths[:-n_val]), part(slice(cut, None), demos.lengths[-n_val:])


def skill_option_config(config: SkillsConfig, num_actions: int = 7) -> OptionConfig:
    """The :class:`OptionConfig` every skill option of ``config`` has."""
    net = config.net
    side = config.view_size
    return OptionConfig(image_shape=(side, side, 3), num_actions=num_actions, embed_dim=net.embed_dim,
                        channels=net.channels, features_dim=net.features_dim, hidden=net.hidden, arg_slots=SKILL_SLOTS,
                        arg_dim=net.arg_dim)


def _policy(config: SkillsConfig) -> OptionActorCriticPolicy:
    side = config.view_size
    space = spaces.Dict({
        "image": spaces.Box(0, np.broadcast_to(IMAGE_HIGH, (side, side, 3)).copy(), (side, side, 3), np.uint8),
        "direction": spaces.Discrete(4),
        "args": spaces.MultiDiscrete([len(slot) for slot in SKILL_SLOTS]),
    })
    return OptionActorCriticPolicy(space, spaces.Discrete(7), lambda _: config.learning_rate,
                                   option=to_dict(skill_option_config(config)),
                                   critic_hidden=list(config.net.critic_hidden))


@dataclass(frozen=True, kw_only=True)
class SkillCloneResult:
    """How one skill option was cloned: recorded calls and pairs, demo accuracy before/after on the cloned calls and
    on the held-out calls (``None`` without any), wall seconds."""

    skill: str
    calls: int
    pairs: int
    accuracy_before: float
    accuracy: float
    validation_accuracy: float | None
    seconds: float


def train_skill_library(config: SkillsConfig, run_dir: Path) -> tuple[SkillRecording, list[SkillCloneResult]]:
    """Record the train split's demonstrations, clone one option per demonstrated skill into ``run_dir/options``,
    write ``results.json`` / ``results.md``; returns the recording and the per-skill results."""
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    suite = get_suite(config.suite)
    env_ids = [suite.tasks[suite.task_index(name)].env_id for name in suite.split(config.split)]
    start = time.perf_counter()
    recording = record_skill_demos(env_ids, episodes=config.episodes, view_size=config.view_size,
                                   skills=config.skills)
    log.info("recorded %d planner episodes (%d solved, %d frames) in %.0fs: %s", recording.episodes,
             recording.solved, recording.frames, time.perf_counter() - start,
             ", ".join(f"{s} {n} calls" for s, n in recording.calls.items()))
    library = OptionLibrary()
    results: list[SkillCloneResult] = []
    for index, (skill, demos) in enumerate(recording.demos.items()):
        began = time.perf_counter()
        fit, held = split_calls(demos, config.validation)
        policy = _policy(config)
        before = demo_accuracy(policy, fit)
        history = behaviour_clone(policy, fit, config.clone, seed=config.seed + index)
        option = policy.option
        option.termination_predicate = library_predicates([skill])[skill]
        library.add(skill, option)
        library.freeze([skill])
        library.save(run_dir / LIBRARY_DIR)
        result = SkillCloneResult(skill=skill, calls=len(demos.lengths), pairs=demos.size, accuracy_before=before,
                              accuracy=history[-1]["accuracy"],
                              validation_accuracy=None if held is None else demo_accuracy(policy, held),
                              seconds=time.perf_counter() - began)
        results.append(result)
        log.info("%s: %d calls (%d pairs), cloning accuracy %.2f -> %.2f, held-out calls %s", skill, result.calls,
                 result.pairs, before, result.accuracy,
                 "-" if result.validation_accuracy is None else f"{result.validation_accuracy:.2f}")
    atomic_write_json(run_dir / "results.json", {"recording": {k: v for k, v in asdict(recording).items()
                                                               if k != "demos"},
                                                 "skills": [asdict(r) for r in results]})
    atomic_write_text(run_dir / "results.md", format_skill_results(recording, results) + "\n")
    return recording, results


def format_skill_results(recording: SkillRecording, results: Sequence[SkillCloneResult]) -> str:
    """The per-skill table (calls, pairs, cloning accuracy, held-out accuracy) under a line on the recording."""
    lines = [f"recorded {recording.episodes} planner episodes ({recording.solved} solved, {recording.frames} frames)",
             "", "| skill | calls | pairs | accuracy before -> after | held-out calls accuracy |",
             "|---|---|---|---|---|"]
    for r in results:
        held = "-" if r.validation_accuracy is None else f"{r.validation_accuracy:.2f}"
        lines.append(f"| {r.skill} | {r.calls} | {r.pairs} | {r.accuracy_before:.2f} -> {r.accuracy:.2f} | {held} |")
    return "\n".join(lines)

