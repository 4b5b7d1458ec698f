"""Calling whole-grid skill options: the controller picks a call, the call's option sees the whole grid with the
call's objects marked.

Skill options of ``modrl options skills`` read a whole-grid view (:class:`modrl.envs.wrappers.FullView`), with
``target_marker`` a fourth channel marking the objects the call names (1: the object, 2: where ``putnext`` puts it).
Under the planner the executor points the marker at each step's objects; under a learned controller the call itself says
which objects: :func:`whole_grid_calls` gives one call per subtask of the suite that a skill option serves (the
option, the first object's ``(colour, type)`` words, and the subtask's objects as marker targets), and
:class:`MarkedCalls` (a :class:`~modrl.options.CallAndReturn` through its ``call_observation`` extension point) moves
the marker to the chosen call's objects before the option starts and keeps it there for the whole call. The controller's
own policy reads MiniGrid's usual 7x7 egocentric image (:class:`EgocentricImage`), as it does over 7x7 options, so the
two controllers differ only in the options they call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from modrl.agents.planning.skills import full_view_of
from modrl.envs import get_suite, parse_task
from modrl.envs.wrappers import FullView, Target, minigrid_env
from modrl.options import CallAndReturn, OptionCall, OptionLibrary


def whole_grid_calls(library: OptionLibrary, suite_name: str) -> tuple[list[OptionCall], list[tuple[Target, ...]]]:
    """One call per subtask of the suite (all splits, first appearance order) that ``library`` serves: its per-symbol
    option, else the parameterised skill option named by its verb with the first object's ``(colour, type)`` words (for
    ``putnext`` the object moved); its marker targets are the subtask's objects in order.

    Raises:
        ValueError: No option serves a subtask, or a serving option takes no words (a marker-only option's
            termination reads words the controller's calls would not give it).
    """
    calls: dict[str, tuple[OptionCall, tuple[Target, ...]]] = {}
    for task in get_suite(suite_name).task_names:
        for sub in parse_task(task).subtasks:
            targets = tuple((obj.type, obj.colour) for obj in sub.objects)
            if sub.name in library:  # a per-symbol option
                calls.setdefault(sub.name, (OptionCall(option=sub.name), targets))
                continue
            if sub.verb not in library:
                continue
            if not library.get(sub.verb).parameterised:
                raise ValueError(
                    f"option {sub.verb!r} reads no (colour, type) words: route a skill library trained with words: true"
                )
            first = sub.objects[0]
            call = OptionCall(option=sub.verb, args=(first.colour, first.type))
            calls.setdefault(f"{call.name}@{'-'.join(f'{t}_{n}' for t, n in targets)}", (call, targets))
    if not calls:
        raise ValueError(f"no option of the library ({', '.join(library.names)}) serves a subtask of {suite_name!r}")
    return [c for c, _ in calls.values()], [t for _, t in calls.values()]


class MarkedCalls(CallAndReturn):
    """:class:`~modrl.options.CallAndReturn` over whole-grid options: before call ``i`` runs, the env's
    :class:`~modrl.envs.wrappers.FullView` marks ``targets[i]`` (when it has the marker channel) and the option's
    first observation is re-rendered; the mark stays for the call's remaining steps.

    Args:
        env: An env whose wrapper chain has a :class:`~modrl.envs.wrappers.FullView`.
        library, calls: As for :class:`~modrl.options.CallAndReturn`. targets: The objects each call marks.
        kwargs: The rest of :class:`~modrl.options.CallAndReturn`'s arguments.
    """

    def __init__(
        self,
        env: gym.Env,
        library: OptionLibrary,
        calls: Sequence[OptionCall],
        targets: Sequence[tuple[Target, ...]],
        **kwargs: Any,
    ) -> None:
        if len(targets) != len(calls):
            raise ValueError(f"one target tuple per call: {len(calls)} calls, {len(targets)} target tuples")
        view = full_view_of(env)
        if view is None:
            raise TypeError("MarkedCalls needs a FullView wrapper in the env's chain")
        super().__init__(env, library, calls, **kwargs)
        self.view = view
        self.targets = tuple(targets)

    def call_observation(self, index: int, observation: Any) -> Any:
        """``observation`` re-rendered with call ``index``'s objects marked."""
        if self.view.marker:
            self.view.targets = self.targets[index]
        return self.view.observation(observation)


class EgocentricImage(gym.ObservationWrapper[Any, Any, Any]):
    """Replace the observation's (whole-grid) ``image`` by MiniGrid's own egocentric view of the agent
    (``gen_obs()["image"]``, 7x7x3), with ``image_space`` its space: what the controller's policy reads."""

    def __init__(self, env: gym.Env, image_space: spaces.Box) -> None:
        super().__init__(env)
        inner = env.observation_space
        assert isinstance(inner, spaces.Dict)
        self.observation_space = spaces.Dict({**inner.spaces, "image": image_space})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return {**observation, "image": minigrid_env(self.env).gen_obs()["image"]}


def marked_controller_env(
    env: gym.Env,
    library: OptionLibrary,
    calls: Sequence[OptionCall],
    targets: Sequence[tuple[Target, ...]],
    *,
    view_size: int,
    marker: bool,
    **kwargs: Any,
) -> gym.Env:
    """``env`` (a MiniGrid dict-observation env) as the controller's call-and-return env over whole-grid options."""
    image_space = env.observation_space["image"]  # type: ignore[index]
    calls_env = MarkedCalls(FullView(env, size=view_size, marker=marker), library, calls, targets, **kwargs)
    return EgocentricImage(calls_env, image_space)
