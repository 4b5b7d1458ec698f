"""One gymnasium env over a split of a suite: every reset samples one of the split's tasks and steps its env.

:class:`SplitTaskEnv` keeps one env per task (built lazily by :func:`~modrl.envs.wrappers.make_task_env`, cached,
closed on ``close``). Its observation is the ``Dict`` of :class:`~modrl.envs.wrappers.TaskObservation`, where
``task`` is the task's index in the *suite's* full task list (so train and test tasks have distinct, stable ids),
optionally with ``mission`` token ids (:class:`~modrl.envs.mission.MissionTokens`). ``info["task"]`` names the task.

Determinism: ``reset(seed=s)`` seeds the env's own ``np_random``; every reset then draws the task uniformly from the
split and a seed for that task's env from it, so the same seed gives the same tasks and observations.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym

from modrl.config import check, check_bool, check_int, short_repr
from modrl.envs.mission import MAX_MISSION_LEN, MissionTokens, MissionVocabulary, suite_max_len
from modrl.envs.suites import Suite, get_suite
from modrl.envs.wrappers import make_task_env

_SEED_HIGH = 2**31 - 1


class SplitTaskEnv(gym.Env[Any, Any]):
    """Multi-task env: on every reset, a task drawn uniformly from one split of a suite.

    Observation:
        image: ``(view, view, 3) uint8``; direction: ``int`` in ``[0, 4)``; task: ``int`` in ``[0, suite.num_tasks)``
        (the suite-wide task id); with ``mission_tokens``, mission: ``(max_len,) int64`` token ids.

    Args:
        suite: A :class:`~modrl.envs.suites.Suite` or the name of a registered one.
        split: Split name, e.g. ``"train"`` or ``"test"``.
        mission_tokens: Add the ``mission`` entry (:class:`~modrl.envs.mission.MissionTokens`).
        max_len: Mission length with ``mission_tokens``; ``None`` takes the longest mission over *all* tasks of the
            suite (generated suites only), so the train and test envs have the same space.
        vocabulary: The mission vocabulary; ``None`` is :meth:`MissionVocabulary.from_grammar`.
        max_episode_steps: Passed to every task env (see :func:`~modrl.envs.wrappers.make_task_env`).
        render_mode: Passed to every task env; ``render()`` shows the current task.
        strict: Passed to every task env (see :func:`~modrl.envs.wrappers.make_task_env`).

    Raises:
        modrl.registry.UnknownNameError: Unknown suite name.
        KeyError: Unknown split (the message lists the suite's splits).
        modrl.config.ConfigError: ``max_len`` is needed and cannot be derived, or an argument is out of range.
        TypeError: A task env's observation or action space differs from the first task's.
    """

    def __init__(
        self,
        suite: Suite | str,
        split: str,
        *,
        mission_tokens: bool = False,
        max_len: int | None = None,
        vocabulary: MissionVocabulary | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        strict: bool = False,
    ) -> None:
        check(isinstance(suite, (str, Suite)), "suite", f"must be a suite or its name, got {short_repr(suite)}")
        check(isinstance(split, str), "split", f"must be a split name, got {short_repr(split)}")
        check_bool(mission_tokens, "mission_tokens")
        check_bool(strict, "strict")
        self.strict = strict
        self.suite = get_suite(suite) if isinstance(suite, str) else suite
        self.split = split
        self.task_ids: tuple[int, ...] = self.suite.split_indices(split)
        self.mission_tokens = mission_tokens
        self.vocabulary = vocabulary if vocabulary is not None else MissionVocabulary.from_grammar()
        if mission_tokens and max_len is None:
            max_len = suite_max_len(self.suite)
        if max_len is not None:
            check_int(max_len, "max_len", low=1, high=MAX_MISSION_LEN)
        self.max_len = max_len
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self._mission_len = max_len if mission_tokens else None
        self._envs: dict[int, gym.Env[Any, Any]] = {}
        self._current: int | None = None
        self._spaces: tuple[gym.Space[Any], gym.Space[Any]] | None = None
        first = self._task_env(self.task_ids[0])
        self._spaces = (first.observation_space, first.action_space)
        self.observation_space, self.action_space = self._spaces
        self.metadata = dict(first.metadata)

    @property
    def task_index(self) -> int | None:
        """Suite-wide id of the current episode's task; ``None`` before the first reset."""
        return self._current

    @property
    def task_name(self) -> str | None:
        """Name of the current episode's task; ``None`` before the first reset."""
        return None if self._current is None else self.suite.tasks[self._current].name

    @property
    def current_env(self) -> gym.Env[Any, Any]:
        """The wrapped env of the current task (its ``unwrapped`` is the MiniGrid env); raises before a reset."""
        if self._current is None:
            raise RuntimeError("SplitTaskEnv: call reset() before using the current task env")
        return self._envs[self._current]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Draw a task (uniformly from the split) and a seed for it, and reset that task's env.

        ``options`` is passed to the task env, except the key ``"task"``: a task name of the split to use instead
        of drawing one (the draw still happens, so the sequence of later tasks does not change).
        """
        index, task_seed = self.draw_task(seed)
        options = dict(options or {})
        if "task" in options:
            name = options.pop("task")
            check(
                name in self.suite.split(self.split),
                "options.task",
                f"{name!r} is not a task of split {self.split!r} of suite {self.suite.name!r}",
            )
            index = self.suite.task_index(name)
        self._current = index
        return self._task_env(index).reset(seed=task_seed, options=options or None)

    def draw_task(self, seed: int | None = None) -> tuple[int, int]:
        """What :meth:`reset` draws, without resetting the task env: ``(suite-wide task id, seed for its env)``, after
        (re)seeding this env's RNG with ``seed`` when given; the drawn task becomes the current one. The batched
        engine (:mod:`modrl.envs.fast`) draws its episodes with it."""
        super().reset(seed=seed)
        index = self.task_ids[int(self.np_random.integers(len(self.task_ids)))]
        task_seed = int(self.np_random.integers(_SEED_HIGH))
        self._current = index
        return index, task_seed

    def task_env(self, index: int) -> gym.Env[Any, Any]:
        """The wrapped env of suite task ``index`` (of this split), built on first use and cached."""
        check(index in self.task_ids, "index", f"{index!r} is not a task id of split {self.split!r}")
        return self._task_env(index)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the current task's env."""
        return self.current_env.step(action)

    def render(self) -> Any:
        """Render the current task's env (``render_mode`` as given at construction)."""
        return self.current_env.render()

    def close(self) -> None:
        """Close every task env built so far."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._current = None
        super().close()

    def _task_env(self, index: int) -> gym.Env[Any, Any]:
        """The cached env of suite task ``index``, built on first use and checked against the first task's spaces."""
        env = self._envs.get(index)
        if env is not None:
            return env
        env = make_suite_env(
            self.suite,
            index,
            mission_tokens=self._mission_len is not None,
            max_len=self._mission_len,
            vocabulary=self.vocabulary,
            max_episode_steps=self.max_episode_steps,
            render_mode=self.render_mode,
            strict=self.strict,
        )
        if self._spaces is not None:
            found = (env.observation_space, env.action_space)
            for what, space, expected in zip(("observation", "action"), found, self._spaces, strict=True):
                if space != expected:
                    env.close()
                    raise TypeError(
                        f"task {self.suite.tasks[index].name!r} of suite {self.suite.name!r} has {what} "
                        f"space {space}, unlike the split's first task ({expected})"
                    )
        self._envs[index] = env
        return env


def make_split_env(
    suite: Suite | str,
    split: str,
    *,
    mission_tokens: bool = False,
    max_len: int | None = None,
    max_episode_steps: int | None = None,
    strict: bool = False,
) -> gym.Env[Any, Any]:
    """A :class:`SplitTaskEnv` over split ``split`` of ``suite`` (see there for the arguments and the observation)."""
    return SplitTaskEnv(
        suite, split, mission_tokens=mission_tokens, max_len=max_len, max_episode_steps=max_episode_steps, strict=strict
    )


def make_suite_env(
    suite: Suite | str,
    task_index: int,
    *,
    mission_tokens: bool = False,
    max_len: int | None = None,
    vocabulary: MissionVocabulary | None = None,
    max_episode_steps: int | None = None,
    render_mode: str | None = None,
    strict: bool = False,
) -> gym.Env[Any, Any]:
    """One task of a suite (:func:`~modrl.envs.wrappers.make_task_env`), with the mission as token ids if asked.

    Args:
        suite, task_index, max_episode_steps, render_mode, strict: As for :func:`~modrl.envs.wrappers.make_task_env`.
        mission_tokens: Wrap with :class:`~modrl.envs.mission.MissionTokens` (observation key ``"mission"``).
        max_len: Padded mission length; ``None`` is :func:`~modrl.envs.mission.suite_max_len` of the suite, so every
            task of the suite (any split) has the same observation space.
        vocabulary: ``None`` is :meth:`MissionVocabulary.from_grammar`.
    """
    check(isinstance(suite, (str, Suite)), "suite", f"must be a suite or its name, got {short_repr(suite)}")
    check_bool(mission_tokens, "mission_tokens")
    suite = get_suite(suite) if isinstance(suite, str) else suite
    env = make_task_env(suite, task_index, max_episode_steps=max_episode_steps, render_mode=render_mode, strict=strict)
    if not mission_tokens:
        return env
    vocabulary = vocabulary if vocabulary is not None else MissionVocabulary.from_grammar()
    return MissionTokens(env, vocabulary=vocabulary, max_len=max_len if max_len is not None else suite_max_len(suite))
