"""Plan execution with learned options on MiniGrid: an :class:`modrl.planner.option_executor.OptionExecutor` whose
operators are resolved to the options of a saved library, the scripted skills covering the rest.

A ground operator's skill call is read as a grammar subtask (:func:`modrl.envs.operators.skill_subtask`); the library
serves it with the per-symbol option of that subtask (``pickup-blue-key``) or the parameterised option of its verb
(``pickup`` with the words ``("blue", "key")``). A call the grammar has no subtask for (``drop(key,red)``,
``open(box,grey)``) is served by a parameterised option named after the skill itself, with the words
``(colour, type)``, when one takes them (the skill options of :mod:`modrl.agents.options.skill_cloning`). Options end on
their subtask's effect predicate (:func:`modrl.agents.planning.library.load_library`), so the env is wrapped to report
predicates in ``info``, and, for a library trained on the whole-grid view (``env.view_size``), to show the options
that view (:class:`modrl.envs.wrappers.FullView`) -- with the target-marker channel on each step's objects when the
library reads it (``target_marker`` of :mod:`modrl.agents.options.skill_cloning`). A skill option that reads no words
(only the marker) is called with the step's words all the same: its termination predicate reads them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from minigrid.core.actions import Actions

from modrl.config import check
from modrl.envs.operators import skill_subtask
from modrl.envs.own_view import MapView, OwnView, own_view_of
from modrl.envs.predicates import (
    PredicatesInInfo,
    env_planning_state,
    find_object,
    identify_objects,
    object_name,
    plain_colour,
)
from modrl.envs.skill_env import SKILL_TYPES, skill_call, skill_targets
from modrl.envs.subtask_symbols import subtask_arguments
from modrl.envs.wrappers import FullView, Target, current_observation
from modrl.options import OptionCall, OptionLibrary
from modrl.planner import GroundOperator, SkillExecutor
from modrl.planner.option_executor import OptionExecutor


def call_resolver(library: OptionLibrary) -> Callable[[GroundOperator], OptionCall | None]:
    """``step -> OptionCall | None``: the library's option for the step's subtask (per-symbol first), else the
    skill-named option (:func:`modrl.envs.skill_env.skill_call`: ``putnext`` with the moved object's words)."""

    def resolve(step: GroundOperator) -> OptionCall | None:
        sub = skill_subtask(step)
        if sub is not None and sub.name in library:
            return OptionCall(option=sub.name)
        if sub is not None and sub.verb in library and library.get(sub.verb).parameterised:
            args = subtask_arguments(sub)
            try:
                library.get(sub.verb).encode_args(args)
                return OptionCall(option=sub.verb, args=args)
            except ValueError:  # a word this option was not built for: maybe a skill option with other words
                pass
        return _skill_call(library, step)

    return resolve


def library_view_size(library: OptionLibrary) -> int | None:
    """The view a library's options were trained with (one library has one image shape, which
    :meth:`OptionLibrary.add <modrl.options.OptionLibrary.add>` enforces): ``None`` for MiniGrid's 7x7 view, else the
    side ``N`` of the whole-grid view."""
    side = library.get(library.names[0]).config.image_shape[0] if len(library) else 7
    return None if side == 7 else int(side)


def library_map_view(library: OptionLibrary) -> bool:
    """Whether a library's options read the map of the cells seen so far (:class:`modrl.envs.own_view.MapView`)
    rather than the whole grid."""
    return len(library) > 0 and library.get(library.names[0]).config.map_view


def library_marks_target(library: OptionLibrary) -> bool:
    """Whether a library's options read the target-marker channel (a four-channel whole-grid view:
    :func:`modrl.envs.wrappers.full_view_image` with ``marker``)."""
    return len(library) > 0 and library.get(library.names[0]).config.image_shape[2] == 4


def _skill_call(library: OptionLibrary, step: GroundOperator) -> OptionCall | None:
    """The skill-named option for a step: a parameterised one if it takes the step's words, or one that reads only the
    target marker (called with the words, which its termination predicate reads)."""
    call = skill_call(step)
    if call is None or call[0] not in library:
        return None
    option = library.get(call[0])
    if not option.parameterised:  # a marker-only skill option: the marker shows the object, the words go to β
        return OptionCall(option=call[0], args=call[1]) if library_marks_target(library) else None
    try:
        option.encode_args(call[1])
    except ValueError:
        return None
    return OptionCall(option=call[0], args=call[1])


def with_predicates(
    env: gym.Env, *, view_size: int | None = None, marker: bool = False, map_view: bool = False
) -> gym.Env:
    """``env`` wrapped so that every ``info`` carries ``predicates`` and, with ``view_size`` (see
    :func:`library_view_size`), observations show the whole-grid view, with the target-marker channel when
    ``marker`` (:func:`library_marks_target`; :func:`learned_skills` points it at each step's object), or with
    ``map_view`` (:func:`library_map_view`) the view of the cells seen so far. Call before ``reset``."""
    check(view_size is not None or not marker, "marker", "needs the whole-grid view (view_size)")
    check(view_size is not None or not map_view, "map_view", "needs the view's side (view_size)")
    if view_size is None:
        return PredicatesInInfo(env)
    return PredicatesInInfo((MapView if map_view else FullView)(env, size=view_size, marker=marker))


def wrap_for_library(env: gym.Env, library: OptionLibrary) -> gym.Env:
    """:func:`with_predicates` with the view ``library``'s options read (:func:`library_view_size`,
    :func:`library_marks_target`)."""
    return with_predicates(
        env,
        view_size=library_view_size(library),
        marker=library_marks_target(library),
        map_view=library_map_view(library),
    )


#: What an escape from a stuck option draws from: MiniGrid's turn left, turn right, move forward.
ESCAPE_ACTIONS = (int(Actions.left), int(Actions.right), int(Actions.forward))


def learned_skills(
    env: gym.Env,
    library: OptionLibrary,
    *,
    fallback: SkillExecutor | None,
    max_skill_steps: int = 100,
    deterministic: bool = True,
    seed: int = 0,
    loop_limit: int | None = None,
    escape_steps: int = 0,
    cycle_limit: int | None = None,
    observe: Callable[[], frozenset[str]] | None = None,
) -> OptionExecutor:
    """An executor running ``library``'s options in ``env`` (a reset MiniGrid env wrapped by :func:`wrap_for_library`;
    for a library that reads the target marker, each step's objects are marked before its option runs), with
    ``fallback`` (e.g. :class:`modrl.envs.ScriptedSkills` on the same env) for the skills no option serves;
    without one, pass its :attr:`~modrl.planner.option_executor.OptionExecutor.allowed` to
    :func:`modrl.planner.execute` so that plans call only the skills the library serves. ``loop_limit``,
    ``escape_steps``: stuck options end and ``escape_steps`` random turns / moves forward follow; ``cycle_limit``: the
    same escape follows a call that ended as planned in a planning state such calls have left that often (see
    :mod:`modrl.planner.option_executor`). ``observe``: the planning state (default: the full grid's,
    :func:`modrl.envs.predicates.env_planning_state`; the own view passes its map's)."""
    base: Any = env.unwrapped
    resolve = call_resolver(library)
    marks = library_marks_target(library)
    marked = full_view_of(env) if marks else None
    if marks and (marked is None or not marked.marker):
        raise ValueError(
            "this library's options read the target marker: wrap the env with wrap_for_library(env, library)"
        )

    own = own_view_of(env)

    def resolve_and_mark(step: GroundOperator) -> OptionCall | None:
        if marked is not None:
            marked.targets = grid_targets(base, own, skill_targets(step))
        return resolve(step)

    return OptionExecutor(
        env,
        library,
        own_termination=lambda step: words_name_one_object(base, step),
        resolve=resolve_and_mark,
        observe=(lambda: env_planning_state(base)) if observe is None else observe,
        observation=_options_view(env, library, marked),
        fallback=fallback,
        max_skill_steps=max_skill_steps,
        deterministic=deterministic,
        seed=seed,
        loop_limit=loop_limit,
        escape_actions=ESCAPE_ACTIONS,
        escape_steps=escape_steps,
        cycle_limit=cycle_limit,
    )


def words_name_one_object(base: Any, step: GroundOperator) -> bool:
    """Whether every object ``step`` names is the only one of its type and colour in the env (on the grid or carried;
    not inside a box): an option's termination reads only the words ``(colour, type)``, so with a second red door
    "a red door is open" may hold before the call opened its own. Where this is ``False`` the call is left to end on
    the step's effects (:class:`~modrl.planner.option_executor.OptionExecutor`'s ``own_termination``)."""
    grid = base.grid
    seen = Counter(
        (cell.type, cell.color) for cell in [*grid.grid, base.carrying] if cell is not None and cell.type in SKILL_TYPES
    )
    return all(seen[(type_, plain_colour(name))] <= 1 for type_, name in skill_targets(step))


def grid_targets(base: Any, own: OwnView | None, targets: tuple[Target, ...]) -> tuple[Target, ...]:
    """``targets`` as the full grid names them, for the whole-grid marker of a plan made from the own view.

    The own-view map names the first red door it sees ``red`` and a later one ``red@x_y``; the full grid names its
    objects on its own, so there ``red`` may be a nearer red door the agent has never seen, and the marker would point
    the option at it. Each target the map finds on a cell (the map shares the grid's frame) is renamed to the full
    grid's name of the object in that cell; a target not on the map's grid (carried) or whose cell holds no object of
    its type keeps its name. Without an own view (``own`` is ``None``) the targets are already the full grid's."""
    if own is None or own.map is None:
        return targets
    identify_objects(base.grid, base.carrying, base.agent_pos)
    out = []
    for type_, name in targets:
        pos = find_object(own.map, type_, name)
        cell = None if pos is None else base.grid.get(*pos)
        out.append((type_, object_name(cell)) if cell is not None and cell.type == type_ else (type_, name))
    return tuple(out)


def _options_view(env: gym.Env, library: OptionLibrary, marked: FullView | None) -> Callable[[], Any]:
    """The current observation as ``library``'s options read it: MiniGrid's, the whole-grid view (with ``marked``'s
    targets), or the map view drawn from the map its wrapper keeps."""
    base: Any = env.unwrapped
    view = library_view_size(library)
    if library_map_view(library):
        viewer = full_view_of(env)
        if not isinstance(viewer, MapView):
            raise ValueError(
                "this library's options read the map view: wrap the env with wrap_for_library(env, library)"
            )
        return lambda: viewer.observation(base.gen_obs())
    return lambda: current_observation(
        base, view, marker=marked is not None, targets=() if marked is None else marked.targets
    )


def full_view_of(env: gym.Env) -> FullView | None:
    """The :class:`FullView` wrapper in ``env``'s chain, if any."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, FullView):
            return env
        env = env.env
    return None
