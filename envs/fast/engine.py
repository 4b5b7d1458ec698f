"""A batched MiniGrid: the state of N envs in numpy arrays, stepped and observed for all of them in one call.

Semantics are MiniGrid's (``MiniGridEnv.step`` / ``gen_obs``, minigrid 3.x), proven step for step by the
differential test ``tests/test_fast_engine.py``; MiniGrid stays the reference. Layouts come from each slot's own
MiniGrid env (:func:`modrl.envs.fast.layout.generate`), so resets are MiniGrid's and only stepping and observing are
batched. A slot may also run modrl's generated tasks (:class:`~modrl.envs.TaskEnv`: MiniGrid's step, then BabyAI's
instruction check, batched here as :mod:`modrl.envs.fast.instructions` describes), one task or, for a
:class:`~modrl.envs.SplitTaskEnv`, a task drawn per episode. Episodes end and restart inside
:meth:`BatchedMiniGrid.step` (same-step auto-reset, what SB3's ``VecEnv`` does): the returned observation of a
finished slot is its next episode's first one, the last one is in :attr:`StepResult.final_image` /
:attr:`StepResult.final_direction`.

State (``N`` slots, ``P = view - 1`` cells of wall padding on every side, so a view never leaves the array):
``cells (N, W + 2P, H + 2P) <u4`` packed cells indexed ``[x + P, y + P]`` (:func:`pack`: MiniGrid's code in the low
three bytes, "blocks sight" in the fourth, so an observation is one gather and its bytes), ``pos (N, 2)``,
``heading (N,)``, ``carrying (N,) <u4`` (the carried object's packed code, the empty cell's for nothing: exactly what
the agent's own view cell shows), ``contents`` (like ``cells``) and ``carried_contents (N,)`` (what a box in the grid
or in hand holds), ``step_count (N,)`` and ``max_steps (N,)``; for task episodes the subtasks
(``verbs``, ``objects``, ``targets``, ``strict`` ``(N, K)``, :mod:`.instructions`), their tracked positions
``goto_pos (N, K, 2)`` and ``subtask_index (N,)``. The arrays grow when a split draws a larger grid than any seen
so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.constants import COLOR_TO_IDX, DIR_TO_VEC, OBJECT_TO_IDX, STATE_TO_IDX
from minigrid.minigrid_env import MiniGridEnv

from modrl.envs.fast.errors import EngineUnsupported
from modrl.envs.fast.instructions import GOTO, OPEN, PICKUP, PUTNEXT, Instructions
from modrl.envs.fast.layout import EMPTY_WORD, WORD, Layout, draw, pack, unsupported_reason
from modrl.envs.fast.view import view_offsets, visibility
from modrl.envs.grammar import MAX_SUBTASKS
from modrl.envs.multitask import SplitTaskEnv

_EMPTY, _WALL, _DOOR, _KEY, _BOX = (OBJECT_TO_IDX[k] for k in ("empty", "wall", "door", "key", "box"))
_GOAL, _LAVA = OBJECT_TO_IDX["goal"], OBJECT_TO_IDX["lava"]
_OPEN, _CLOSED, _LOCKED = (STATE_TO_IDX[k] for k in ("open", "closed", "locked"))
_WALL_WORD = int(pack(np.array((_WALL, COLOR_TO_IDX["grey"], 0))))  # what Grid.slice puts outside the grid
_BLOCKS = np.uint32(1 << 24)
_STATE_MASK = np.uint32(0xFFFF0000)  # state and blocks-sight bytes
_OPEN_BITS, _CLOSED_BITS, _LOCKED_BITS = (np.uint32(s << 16 | (s != _OPEN) << 24) for s in (_OPEN, _CLOSED, _LOCKED))
_KIND_STATE = _STATE_MASK | np.uint32(0xFF)
_OPEN_DOOR = np.uint32(_DOOR) | _OPEN_BITS  # word & _KIND_STATE of an open door
_DIR = np.array([tuple(int(c) for c in v) for v in DIR_TO_VEC], np.int64)  # (4, 2)
_OVERLAP = np.zeros(256, bool)  # can_overlap by type, doors aside (open doors only)
_OVERLAP[[_EMPTY, OBJECT_TO_IDX["floor"], _GOAL, _LAVA]] = True
_PICKUP = np.zeros(256, bool)
_PICKUP[[_KEY, OBJECT_TO_IDX["ball"], _BOX]] = True
# MiniGrid's actions as plain ints (comparing an array with an IntEnum member is several times slower)
_FORWARD, _PICK, _DROP, _TOGGLE, _DONE = (int(Actions[k]) for k in ("forward", "pickup", "drop", "toggle", "done"))
_TURN_BY = np.zeros(len(Actions), np.int64)
_TURN_BY[[Actions.left, Actions.right]] = (3, 1)  # quarter turns clockwise
_TURN = (np.arange(4)[:, None] + _TURN_BY[None, :]) % 4  # [heading, action] -> new heading
_CODE = np.uint32(0xFFFF)  # type and colour bytes: what identifies an object of a task episode
_NOWHERE = -(1 << 20)  # a tracked position of an object that has none (carried or gone at the last refresh)


@dataclass(frozen=True)
class StepResult:
    """What one :meth:`BatchedMiniGrid.step` returns, for all ``N`` slots.

    Attributes:
        image: ``(N, V, V, 3) uint8`` observations (a finished slot's is its new episode's first).
        direction: ``(N,) int64`` headings, likewise.
        reward: ``(N,) float64``, MiniGrid's ``1 - 0.9 * step_count / max_steps`` on reaching a goal or completing
            a task's last subtask, else 0.
        terminated: ``(N,) bool``, goal or lava reached, or task done.
        truncated: ``(N,) bool``, ``step_count >= max_steps`` (may be set together with ``terminated``).
        final_image: ``(N, V, V, 3) uint8``, the observation after the action, before any auto-reset.
        final_direction: ``(N,) int64``, likewise.
        events: ``(N,) int64``, subtasks completed by this action (``info["events"]`` are the last ``events`` of
            the episode's symbols up to ``subtask_index``); 0 for a slot that runs no task.
        subtask_index: ``(N,) int64``, subtasks completed so far in the episode the action was taken in.
    """

    image: np.ndarray
    direction: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_image: np.ndarray
    final_direction: np.ndarray
    events: np.ndarray
    subtask_index: np.ndarray


class BatchedMiniGrid:
    """``N`` MiniGrid envs whose state lives in arrays and is stepped for all slots per call.

    Each slot keeps its MiniGrid env only to generate layouts (its RNG, seeding and ``_gen_grid``). A slot's
    episodes are those of ``env.reset(seed=s)`` followed by unseeded ``env.reset()`` after every episode end, as under
    SB3's ``DummyVecEnv``.

    Args:
        envs: One MiniGrid env or :class:`~modrl.envs.SplitTaskEnv` per slot (wrappers allowed: their ``unwrapped``
            draws the layouts; :attr:`episode_envs` names the wrapped env of each slot's episode), each covered
            (:func:`~modrl.envs.fast.layout.unsupported_reason`), all with the same ``agent_view_size``.

    Raises:
        ValueError: No env, an env the engine does not cover (the message gives the reason), or mixed view sizes.
    """

    def __init__(self, envs: Sequence[gym.Env[Any, Any]]) -> None:
        if not envs:
            raise ValueError("BatchedMiniGrid needs at least one env")
        bases: list[MiniGridEnv | SplitTaskEnv] = []
        firsts: list[MiniGridEnv] = []  # the MiniGrid env of each slot (a split's first task's)
        for index, env in enumerate(envs):
            reason = unsupported_reason(env)
            if reason is not None:
                raise ValueError(f"env {index}: not covered by the fast engine: {reason}")
            base = env.unwrapped
            assert isinstance(base, (MiniGridEnv, SplitTaskEnv))  # unsupported_reason checked it
            bases.append(base)
            first = base.task_env(base.task_ids[0]).unwrapped if isinstance(base, SplitTaskEnv) else base
            assert isinstance(first, MiniGridEnv), first
            firsts.append(first)
        views = {b.agent_view_size for b in firsts}
        if len(views) != 1:
            raise ValueError(f"all envs need the same agent_view_size, got {sorted(views)}")
        #: The env that draws each slot's layouts (``unwrapped`` of the given env).
        self.envs = bases
        self.sources = list(envs)
        #: The wrapped env each slot's current episode belongs to: the given env, or a split's drawn task's.
        self.episode_envs: list[gym.Env[Any, Any]] = list(envs)
        self.num_envs = n = len(bases)
        self.view = view = views.pop()
        self.pad = pad = view - 1
        self.width = max(b.width for b in firsts) + 2 * pad
        self.height = max(b.height for b in firsts) + 2 * pad
        self.cells = np.empty((n, self.width, self.height), WORD)
        self.pos = np.zeros((n, 2), np.int64)
        self.heading = np.zeros(n, np.int64)
        self.carrying = np.full(n, EMPTY_WORD, WORD)
        self.contents = np.full((n, self.width, self.height), EMPTY_WORD, WORD)  # what each box holds
        self.carried_contents = np.full(n, EMPTY_WORD, WORD)  # what a carried box holds
        self.step_count = np.zeros(n, np.int64)
        self.max_steps = np.array([b.max_steps for b in firsts], np.int64)
        self.see_through_walls = np.array([bool(b.see_through_walls) for b in firsts])
        self.missions: list[str] = [""] * n
        #: How each slot's current episode started, for exact resume: ``{"seed": int}`` for a seeded reset, else
        #: ``{"rng": state}``, the slot env's ``np_random`` bit-generator state just before the layout was drawn.
        self.starts: list[dict[str, Any]] = [{} for _ in range(n)]
        self.instructions: list[Instructions | None] = [None] * n
        self.task_count = np.zeros(n, np.int64)
        self.verbs = np.zeros((n, MAX_SUBTASKS), np.int64)
        self.objects = np.zeros((n, MAX_SUBTASKS), WORD)
        self.targets = np.zeros((n, MAX_SUBTASKS), WORD)
        self.strict = np.zeros((n, MAX_SUBTASKS), bool)
        self.goto_pos = np.full((n, MAX_SUBTASKS, 2), _NOWHERE, np.int64)
        self.subtask_index = np.zeros(n, np.int64)
        self._goto = np.zeros(n, bool)  # slots with a go-to subtask: the ones whose tracked positions matter
        self._tasks = False  # whether any slot has run a task episode (else the instruction check is skipped)
        self._index_cells()

    # ------------------------------------------------------------------------------------------------- episodes

    def reset(self, seeds: Sequence[int | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Start a new episode in every slot (slot ``i`` reset with ``seeds[i]``; ``None``: continue its RNG).

        Returns:
            ``(image (N, V, V, 3) uint8, direction (N,) int64)``.
        """
        seeds = [None] * self.num_envs if seeds is None else list(seeds)
        if len(seeds) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} seeds, got {len(seeds)}")
        for slot, seed in enumerate(seeds):
            self._begin(slot, seed)
        return self.observe()

    def _index_cells(self) -> None:
        offset_x, offset_y = view_offsets(self.view)
        self._view_index = offset_x * self.height + offset_y  # (4, V, V) flat offsets per heading
        self._slot_base = np.arange(self.num_envs, dtype=np.int64) * (self.width * self.height)

    def _fit(self, width: int, height: int) -> None:
        """Grow the cell array to hold a ``width`` x ``height`` array (padding included), keeping every slot."""
        if width <= self.width and height <= self.height:
            return
        cells = np.full((self.num_envs, max(width, self.width), max(height, self.height)), _WALL_WORD, WORD)
        cells[:, : self.width, : self.height] = self.cells
        contents = np.full(cells.shape, EMPTY_WORD, WORD)
        contents[:, : self.width, : self.height] = self.contents
        self.cells, self.contents, self.width, self.height = cells, contents, cells.shape[1], cells.shape[2]
        self._index_cells()

    def _begin(self, slot: int, seed: int | None) -> None:
        """Draw slot ``slot``'s next layout (``seed``: reseed first), recording how (:attr:`starts`), and load it."""
        env = self.envs[slot]
        self.starts[slot] = {"seed": int(seed)} if seed is not None else {"rng": env.np_random.bit_generator.state}
        self._load(slot, draw(env, seed))

    def copy_slot(self, slot: int, other: BatchedMiniGrid, source: int) -> None:
        """Make slot ``slot`` exactly what slot ``source`` of ``other`` is (grid, agent, carried object, step count,
        mission and :attr:`starts`); both must step the same env (``other`` may be a one-slot engine that replayed
        this slot's episode)."""
        if other.envs[source] is not self.envs[slot] or other.pad != self.pad:
            raise ValueError(f"slot {source} of the other engine does not step the env of slot {slot}")
        width, height = other.cells.shape[1:]
        self._fit(width, height)
        self.cells[slot] = _WALL_WORD
        self.cells[slot, :width, :height] = other.cells[source]
        self.contents[slot] = EMPTY_WORD
        self.contents[slot, :width, :height] = other.contents[source]
        self.carried_contents[slot] = other.carried_contents[source]
        self.pos[slot], self.heading[slot] = other.pos[source], other.heading[source]
        self.carrying[slot], self.step_count[slot] = other.carrying[source], other.step_count[source]
        self.missions[slot], self.starts[slot] = other.missions[source], dict(other.starts[source])
        self.max_steps[slot], self.see_through_walls[slot] = other.max_steps[source], other.see_through_walls[source]
        self.episode_envs[slot], self.instructions[slot] = other.episode_envs[source], other.instructions[source]
        for name in ("task_count", "verbs", "objects", "targets", "strict", "goto_pos", "subtask_index", "_goto"):
            getattr(self, name)[slot] = getattr(other, name)[source]
        self._tasks |= other._tasks

    def _load(self, slot: int, layout: Layout) -> None:
        pad = self.pad
        width, height = layout.cells.shape[:2]
        episode_env = self.sources[slot] if layout.source is None else layout.source
        base = episode_env.unwrapped
        assert isinstance(base, MiniGridEnv), base
        if base.agent_view_size != self.view:
            raise ValueError(f"slot {slot}: agent_view_size {base.agent_view_size} differs from {self.view}")
        self._fit(width + 2 * pad, height + 2 * pad)
        self.cells[slot] = _WALL_WORD
        self.cells[slot, pad : pad + width, pad : pad + height] = layout.cells
        self.contents[slot] = EMPTY_WORD
        if layout.contents is not None:
            self.contents[slot, pad : pad + width, pad : pad + height] = layout.contents
        self.carried_contents[slot] = EMPTY_WORD
        self.pos[slot] = layout.agent_pos
        self.heading[slot] = layout.agent_dir
        self.carrying[slot] = EMPTY_WORD
        self.step_count[slot] = 0
        self.max_steps[slot] = layout.max_steps
        self.see_through_walls[slot] = bool(base.see_through_walls)
        self.missions[slot] = layout.mission
        self.episode_envs[slot] = episode_env
        self._load_instructions(slot, layout.instructions)

    def _load_instructions(self, slot: int, instructions: Instructions | None) -> None:
        self.instructions[slot] = instructions
        self.subtask_index[slot] = 0
        self.verbs[slot] = self.objects[slot] = self.targets[slot] = 0
        self.strict[slot] = False
        self.goto_pos[slot] = _NOWHERE
        self._goto[slot] = False
        count = 0 if instructions is None else len(instructions.verbs)
        self.task_count[slot] = count
        if instructions is None:
            return
        if count > MAX_SUBTASKS:
            raise EngineUnsupported(f"the fast engine verifies at most {MAX_SUBTASKS} subtasks, got {count}")
        self.verbs[slot, :count] = instructions.verbs
        self.objects[slot, :count] = instructions.objects
        self.targets[slot, :count] = instructions.targets
        self.strict[slot, : len(instructions.strict)] = instructions.strict
        self._tasks = True
        self._goto[slot] = GOTO in instructions.verbs
        if self._goto[slot]:
            self._track(np.array([slot]))

    def _track(self, slots: np.ndarray) -> None:
        """Refresh the tracked positions of ``slots``' subtask objects from the grid (``update_objs_poss``): where
        each is now, or :data:`_NOWHERE` when it is not in the grid (carried, or a box toggled away)."""
        codes = self.cells[slots] & _CODE  # (m, W, H)
        match = (codes[:, None] == self.objects[slots][:, :, None, None]).reshape(len(slots), MAX_SUBTASKS, -1)
        where = match.argmax(axis=-1)
        tracked = np.stack([where // self.height - self.pad, where % self.height - self.pad], axis=-1)
        self.goto_pos[slots] = np.where(match.any(axis=-1)[..., None], tracked, _NOWHERE)

    # ------------------------------------------------------------------------------------------------- stepping

    def step(self, actions: np.ndarray) -> StepResult:
        """Apply ``actions`` (``(N,)`` ints in ``[0, 7)``, MiniGrid's ``Actions``) to every slot, then auto-reset
        the slots whose episode ended."""
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be ({self.num_envs},) integers, got {actions.shape} {actions.dtype}")
        if actions.min() < 0 or actions.max() > _DONE:
            raise ValueError(f"actions must be in [0, {_DONE}], got {actions.min()}..{actions.max()}")
        used = np.bincount(actions, minlength=_DONE + 1)  # skip the work of actions nobody takes
        self.step_count += 1
        front = self.pos + _DIR[self.heading]
        flat = self._slot_base + (front[:, 0] + self.pad) * self.height + front[:, 1] + self.pad
        word = self.cells.reshape(-1)[flat]
        kind = word & 0xFF
        self.heading = _TURN[self.heading, actions]
        reached = terminated = np.zeros(self.num_envs, bool)
        if used[_FORWARD]:
            forward = actions == _FORWARD
            moves = forward & (_OVERLAP[kind] | (word & _KIND_STATE == _OPEN_DOOR))
            self.pos[moves] = front[moves]
            reached = forward & (kind == _GOAL)
            terminated = reached | (forward & (kind == _LAVA))
        carried = self.carrying.copy() if self._tasks else self.carrying  # before the action, for putnext
        picks = drops = np.zeros(self.num_envs, bool)
        if used[_PICK] or used[_DROP]:
            picks, drops = self._pickup_drop(actions, flat, kind, word)
        if used[_TOGGLE]:
            self._toggle(actions, flat, kind, word)
        events = np.zeros(self.num_envs, np.int64)
        if self._tasks:
            done, failed, events = self._verify(actions, used, flat, word, carried, picks, drops)
            reached = reached | done
            terminated = terminated | done | failed
        reward = np.where(reached, 1 - 0.9 * (self.step_count / self.max_steps), 0.0)
        truncated = self.step_count >= self.max_steps
        subtask_index = self.subtask_index.copy()
        final_image, final_direction = self.observe()
        image, direction = final_image, final_direction
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            for slot in done:
                self._begin(int(slot), None)
            image, direction = final_image.copy(), final_direction.copy()
            image[done], direction[done] = self.observe(done)
        return StepResult(
            image, direction, reward, terminated, truncated, final_image, final_direction, events, subtask_index
        )

    def _verify(
        self,
        actions: np.ndarray,
        used: np.ndarray,
        flat: np.ndarray,
        word: np.ndarray,
        carried: np.ndarray,
        picks: np.ndarray,
        drops: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """BabyAI's instruction check after the action (:mod:`.instructions`): ``(done, failed, events)``, the slots
        whose task is now complete, those whose strict subtask failed, and the subtasks each completed; advances
        :attr:`subtask_index`."""
        tasks = self.task_count > 0
        verbs, objects = self.verbs, self.objects
        if used[_DROP]:
            dropping = np.flatnonzero((actions == _DROP) & self._goto)  # any drop refreshes the tracked positions
            if dropping.size:
                self._track(dropping)
        front = self.pos + _DIR[self.heading]  # after the action
        results = (verbs == GOTO) & (self.goto_pos == front[:, None, :]).all(axis=-1)
        if picks.any():
            results |= (verbs == PICKUP) & picks[:, None] & ((word & _CODE)[:, None] == objects)
        if used[_TOGGLE]:
            now = self.cells.reshape(-1)[flat]  # the toggled cell: the agent did not move
            opened = (actions == _TOGGLE) & (now & _KIND_STATE == _OPEN_DOOR)
            results |= (verbs == OPEN) & opened[:, None] & ((now & _CODE)[:, None] == objects)
        if drops.any():
            moved = (verbs == PUTNEXT) & drops[:, None] & ((carried & _CODE)[:, None] == objects)  # (N, K)
            if moved.any():
                cells = self.cells.reshape(-1)
                around = np.stack([cells[flat + d] for d in (self.height, -self.height, 1, -1)], axis=-1) & _CODE
                results |= moved & (around[:, None, :] == self.targets[:, :, None]).any(axis=-1)
        subtask = np.arange(MAX_SUBTASKS)[None, :]
        passed = (results | (subtask < self.subtask_index[:, None])) & (subtask < self.task_count[:, None])
        index = np.cumprod(passed, axis=1).sum(axis=1)
        events = index - self.subtask_index
        failed = np.zeros(self.num_envs, bool)
        if (used[_PICK] or used[_TOGGLE]) and self.strict.any():
            failed = self._strict_failures(actions, flat) & tasks & (events == 0)
        self.subtask_index = index
        return tasks & (index == self.task_count), failed, events

    def _strict_failures(self, actions: np.ndarray, flat: np.ndarray) -> np.ndarray:
        """The slots whose current subtask (before this action) is a strict pick-up or open that BabyAI fails unless
        it succeeded: ``pickup`` leaving the agent carrying anything, or ``toggle`` with a door in front."""
        current = np.minimum(self.subtask_index, MAX_SUBTASKS - 1)[:, None]
        verb = np.take_along_axis(self.verbs, current, axis=1)[:, 0]
        strict = np.take_along_axis(self.strict, current, axis=1)[:, 0]
        carries = (actions == _PICK) & (self.carrying != EMPTY_WORD) & (verb == PICKUP)
        door = (actions == _TOGGLE) & (self.cells.reshape(-1)[flat] & 0xFF == _DOOR) & (verb == OPEN)
        return strict & (carries | door)

    def _pickup_drop(
        self, actions: np.ndarray, flat: np.ndarray, kind: np.ndarray, word: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """MiniGrid's pickup and drop (a box keeps what it holds); returns the slots that picked up and those that
        dropped."""
        cells, contents = self.cells.reshape(-1), self.contents.reshape(-1)
        empty_handed = self.carrying == EMPTY_WORD
        picks = (actions == _PICK) & _PICKUP[kind] & empty_handed
        drops = (actions == _DROP) & (kind == _EMPTY) & ~empty_handed
        if picks.any():
            self.carrying[picks] = word[picks]
            cells[flat[picks]] = EMPTY_WORD
            self.carried_contents[picks] = contents[flat[picks]]
            contents[flat[picks]] = EMPTY_WORD
        if drops.any():
            cells[flat[drops]] = self.carrying[drops]
            self.carrying[drops] = EMPTY_WORD
            contents[flat[drops]] = self.carried_contents[drops]
            self.carried_contents[drops] = EMPTY_WORD
        return picks, drops

    def _toggle(self, actions: np.ndarray, flat: np.ndarray, kind: np.ndarray, word: np.ndarray) -> None:
        """``Door.toggle`` (a locked door opens for a key of its colour; otherwise open <-> closed) and ``Box.toggle``
        (the box is replaced by what it holds: nothing, for an empty box)."""
        toggles = actions == _TOGGLE
        cells = self.cells.reshape(-1)
        door = toggles & (kind == _DOOR)
        state = word & _STATE_MASK
        has_key = (self.carrying & 0xFF == _KEY) & ((self.carrying ^ word) & 0xFF00 == 0)  # a key of the door's colour
        unlocks = door & (state == _LOCKED_BITS) & has_key
        flips = door & (state != _LOCKED_BITS)
        changed = unlocks | flips
        if changed.any():
            opened = np.where(unlocks | (state != _OPEN_BITS), _OPEN_BITS, _CLOSED_BITS).astype(WORD)
            cells[flat[changed]] = ((word & 0xFFFF) | opened)[changed]  # type and colour kept
        boxes = toggles & (kind == _BOX)
        if boxes.any():
            contents = self.contents.reshape(-1)
            cells[flat[boxes]] = contents[flat[boxes]]
            contents[flat[boxes]] = EMPTY_WORD

    # ---------------------------------------------------------------------------------------------- observation

    def observe(self, slots: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """MiniGrid's ``gen_obs()`` image and direction of ``slots`` (all by default).

        Returns:
            ``(image (n, V, V, 3) uint8, direction (n,) int64)``, image indexed ``[vx, vy]`` like MiniGrid's.
        """
        index = np.arange(self.num_envs) if slots is None else np.asarray(slots)
        pos, heading = self.pos[index], self.heading[index]
        centre = self._slot_base[index] + (pos[:, 0] + self.pad) * self.height + pos[:, 1] + self.pad
        flat = centre[:, None, None] + self._view_index[heading]
        words = self.cells.reshape(-1)[flat]  # (n, V, V)
        occluding = ~self.see_through_walls[index]  # see_through_walls: MiniGrid skips process_vis, all visible
        if occluding.any():
            words *= visibility((words >= _BLOCKS) & occluding[:, None, None])
        words[:, self.view // 2, self.view - 1] = self.carrying[index]
        image = np.ascontiguousarray(words.view(np.uint8).reshape(*words.shape, 4)[..., :3])
        return image, heading.copy()
