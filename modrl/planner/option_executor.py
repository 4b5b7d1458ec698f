"""A :class:`~modrl.planner.monitor.SkillExecutor` that runs a plan's skills with learned options.

Each ground operator is mapped (by a ``resolve`` callable the environment side supplies) to an
:class:`~modrl.options.OptionCall` of an :class:`~modrl.options.OptionLibrary`; the call runs with
:func:`modrl.options.run_option` until its termination (typically the subtask's effect predicate, else its learned β),
a step cap, or the episode end. Skills no option serves (e.g. ``drop``) go to an optional fallback executor (the
scripted skills), so a plan can mix learned and scripted skills; :attr:`OptionExecutor.usage` counts both. Without a
fallback, :attr:`OptionExecutor.allowed` is the search filter that keeps plans to the skills the options serve.

A call also ends as soon as the step's add effects are all observed (``end_on_effects``, on by default): an option
whose own termination predicate cannot describe the step (a ``drop`` option, ``open`` of a box) still stops when the
planner's operator says the skill is done, and no option runs on past its step's effects.

Stuck options (``loop_limit``): a call whose option sees one observation ``loop_limit`` times is going round in
circles -- a cloned policy walking into a wall, or turning left and right, from a state its demonstrations never showed
-- and, greedy, would do so until the step cap; calling it again from the same state changes nothing. The executor ends
such a call early, takes ``escape_steps`` primitive actions drawn uniformly from ``escape_actions`` (e.g. MiniGrid's
turn left / turn right / forward) to leave that state, and reports the skill ``FAILED``, so the monitor re-plans from
wherever the escape ended (a recovery behaviour, as robot navigation stacks rotate in place when stuck).
:attr:`OptionExecutor.loops` counts them.

Cycles across calls (``cycle_limit``): options can also each end as planned and still go round in circles one level
up -- a ``drop`` option that sets the ball down where it was picked up, in front of the door it blocks, so the planner
picks it up and drops it again until its re-plan limit. The executor counts the planning states (base atoms) left
by calls that end by their own termination with all of their step's add effects observed; once one recurs
``cycle_limit`` times in the episode, an escape of the same random moves follows that call, so the next call starts
from another pose (the ball is then set down somewhere else). Failed, stuck and timed-out calls and calls whose effects
did not show are not counted: the monitor already re-plans after them and the loop check handles stuck ones.
:attr:`OptionExecutor.cycles` counts these escapes.

How a call ended becomes the skill's status: its own termination is ``DONE``, the step cap ``TIMEOUT``, an initiation
set that does not hold or a loop ``FAILED``, the episode end ``DONE`` if the environment reported success else
``FAILED``. The monitor then compares the observed state with the operator's effects and re-plans as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from modrl.config import check
from modrl.options import EndReason, OptionCall, OptionLibrary, run_option
from modrl.planner.monitor import SkillExecutor, SkillResult, SkillStatus
from modrl.planner.operators import GroundOperator
from modrl.planner.search import Allowed

_STATUS = {
    EndReason.TERMINATED: SkillStatus.DONE,
    EndReason.STEP_CAP: SkillStatus.TIMEOUT,
    EndReason.NOT_INITIABLE: SkillStatus.FAILED,
    EndReason.LOOP: SkillStatus.FAILED,
}


class OptionExecutor:
    """Runs ground operators' skills as option calls (see the module docstring).

    Args:
        env: The environment the options act in (already reset); its step ``info`` must carry what the options'
            termination predicates read.
        library: The options.
        resolve: The option call for a ground operator, or ``None`` when no option serves it.
        observe: The current base atoms (what the planner sees).
        observation: The current observation as the options read it (e.g. MiniGrid's ``gen_obs()``), asked afresh
            before every call so that skills run by the fallback in between are seen.
        fallback: Runs the skills no option serves; without one they fail.
        max_skill_steps: Step cap of one call. deterministic: Greedy option actions.
        seed: Seed of the options' β draws.
        end_on_effects: Also end a call when ``observe()`` shows all of the step's add effects.
        loop_limit: End a call when one observation recurs this many times in it (``None``: never; see the module
            docstring). escape_actions: The primitive actions an escape draws from. escape_steps: Actions an escape
            takes (0: none, the call just ends).
        cycle_limit: Escape after an option call that ends by its own termination, its step's add effects observed, in
            a state (base atoms) such calls have now left this many times in the episode (``None``: never; see the
            module docstring).
        own_termination: Whether a step's option may end by its own termination (default: always). ``False`` for a
            step leaves the call to the step's effects (with ``end_on_effects``), the step cap and the loop check: for
            options whose termination reads words that name several objects (a second red door: "a red door is
            open" already holds).

    Attributes:
        usage: Skill executions by ``"option"`` and ``"fallback"``. loops: Calls ended as stuck
            (:attr:`~modrl.options.EndReason.LOOP`). cycles: Escapes after a recurring end state. episode_over,
            episode_success: How the episode ended (success: the environment terminated it with a positive reward).
    """

    def __init__(
        self,
        env: gym.Env,
        library: OptionLibrary,
        *,
        resolve: Callable[[GroundOperator], OptionCall | None],
        observe: Callable[[], frozenset[str]],
        observation: Callable[[], Any],
        fallback: SkillExecutor | None = None,
        max_skill_steps: int = 100,
        deterministic: bool = True,
        seed: int = 0,
        end_on_effects: bool = True,
        loop_limit: int | None = None,
        escape_actions: Sequence[int] = (),
        escape_steps: int = 0,
        cycle_limit: int | None = None,
        own_termination: Callable[[GroundOperator], bool] | None = None,
    ) -> None:
        check(max_skill_steps >= 1, "max_skill_steps", f"must be >= 1, got {max_skill_steps}")
        check(loop_limit is None or loop_limit >= 2, "loop_limit", f"must be >= 2 (or None: off), got {loop_limit}")
        check(escape_steps >= 0, "escape_steps", f"must be >= 0, got {escape_steps}")
        check(cycle_limit is None or cycle_limit >= 2, "cycle_limit", f"must be >= 2 (or None: off), got {cycle_limit}")
        check(
            escape_steps == 0 or len(escape_actions) > 0,
            "escape_actions",
            f"an escape of {escape_steps} steps needs actions to draw from",
        )
        self.env, self.library, self.resolve = env, library, resolve
        self._observe, self._observation, self.fallback = observe, observation, fallback
        self.max_skill_steps, self.deterministic = max_skill_steps, deterministic
        self.end_on_effects = end_on_effects
        self.own_termination = own_termination
        self.loop_limit, self.escape_actions, self.escape_steps = loop_limit, tuple(escape_actions), escape_steps
        self.rng = np.random.default_rng(seed)
        self.usage = {"option": 0, "fallback": 0}
        self.loops = 0
        self.cycle_limit = cycle_limit
        self.cycles = 0
        self._ends: Counter[frozenset[str]] = Counter()
        self.episode_over = False
        self.episode_success = False
        self._info: Mapping[str, Any] = {}

    def observe(self) -> frozenset[str]:
        """The current base atoms."""
        return self._observe()

    def serves(self, step: GroundOperator) -> bool:
        """Whether an option runs ``step`` (``resolve`` returns a call for it)."""
        return self.resolve(step) is not None

    @property
    def allowed(self) -> Allowed | None:
        """The filter for :func:`modrl.planner.search.plan` / :func:`modrl.planner.monitor.execute`: :meth:`serves`
        without a fallback; ``None`` (prune nothing) when a fallback runs the steps no option serves."""
        return self.serves if self.fallback is None else None

    def execute(self, step: GroundOperator) -> SkillResult:
        """Run the option call ``resolve(step)`` (or the fallback) until it ends."""
        call = self.resolve(step)
        if call is None:
            if self.fallback is None:
                return SkillResult(status=SkillStatus.FAILED, state=self.observe())
            self.usage["fallback"] += 1
            result = self.fallback.execute(step)
            self._note_end(result.episode_over, result.success)
            return result
        self.usage["option"] += 1
        until = (lambda _info: step.add <= self.observe()) if self.end_on_effects and step.add else None
        own = self.own_termination is None or self.own_termination(step)
        run = run_option(
            self.env,
            self.library.get(call.option),
            call.args,
            self._observation(),
            self._info,
            max_steps=self.max_skill_steps,
            gamma=1.0,
            rng=self.rng,
            deterministic=self.deterministic,
            until=until,
            loop_limit=self.loop_limit,
            own_termination=own,
        )
        self._info = run.info
        terminated, truncated, reward, steps = run.terminated, run.truncated, run.reward, run.duration
        reason = run.reason
        escape = reason is EndReason.LOOP
        if escape:
            self.loops += 1
        elif reason is EndReason.TERMINATED and self._closes_cycle(step):
            self.cycles += 1
            escape = True
        if escape:
            terminated, truncated, reward, taken = self._escape()
            steps += taken
            if terminated or truncated:
                reason = EndReason.EPISODE_END
        over = terminated or truncated
        success = bool(terminated and reward > 0)
        self._note_end(over, success)
        status = (
            (SkillStatus.DONE if success else SkillStatus.FAILED)
            if reason is EndReason.EPISODE_END
            else _STATUS[reason]
        )
        return SkillResult(status=status, state=self.observe(), steps=steps, episode_over=over, success=success)

    def _closes_cycle(self, step: GroundOperator) -> bool:
        """Count where a call that ended by its own termination left the world, if its step's add effects show, and
        whether such calls have now left it there ``cycle_limit`` times (see the module docstring)."""
        if self.cycle_limit is None:
            return False
        end = self.observe()
        if not step.add <= end:
            return False
        self._ends[end] += 1
        return self._ends[end] >= self.cycle_limit

    def _escape(self) -> tuple[bool, bool, float, int]:
        """``escape_steps`` random actions out of a loop (fewer if the episode ends): ``(terminated, truncated,
        last reward, steps)``."""
        terminated = truncated = False
        reward, taken = 0.0, 0
        for _ in range(self.escape_steps):
            action = self.escape_actions[int(self.rng.integers(len(self.escape_actions)))]
            _, step_reward, terminated, truncated, self._info = self.env.step(action)
            reward, taken = float(step_reward), taken + 1
            if terminated or truncated:
                break
        return terminated, truncated, reward, taken

    def _note_end(self, over: bool, success: bool) -> None:
        if over:
            self.episode_over, self.episode_success = True, success
