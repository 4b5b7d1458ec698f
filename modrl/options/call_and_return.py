"""Call-and-return execution of options: a high-level choice holds until the option terminates (an SMDP step).

:func:`run_option` runs one option call in a gymnasium env until its termination (predicate or learned β), a step
cap, or the end of the episode, summing the rewards discounted within the call. :class:`CallAndReturn` turns an env
into the semi-MDP over a fixed list of :class:`OptionCall` s: its action is a call index, one ``step`` runs that call
to its end and returns ``sum_k gamma^k r_k`` over its ``k = duration`` primitive steps, with the duration in
``info``, so an unchanged PPO can train the high level (Sutton, Precup & Singh, 1999).

Observations must be dicts with MiniGrid's ``image`` and ``direction`` (what options read); everything else (task id,
mission tokens) passes through for the high-level policy.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from modrl.config import check

from .library import OptionLibrary
from .option import Option


class EndReason(str, Enum):
    """Why an option call ended."""

    TERMINATED = "terminated"
    """Its termination predicate held or its learned β fired."""
    STEP_CAP = "step_cap"
    """It ran ``max_option_steps`` steps."""
    EPISODE_END = "episode_end"
    """The env ended the episode (terminated or truncated) during the call."""
    NOT_INITIABLE = "not_initiable"
    """The initiation set did not hold; the option did not run (duration 0)."""
    LOOP = "loop"
    """One observation recurred ``loop_limit`` times within the call: the option is going round in circles (walking
    into a wall, turning left and right); greedy, it would never leave."""


END_REASONS: tuple[EndReason, ...] = tuple(EndReason)


@dataclass(frozen=True, kw_only=True)
class OptionCall:
    """An option with its argument words: one action of the high-level policy.

    Attributes:
        option: Name in the option library. args: Argument words (empty for an unparameterised option).
    """

    option: str
    args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``"pickup-red-key"`` (the option name, then the arguments, joined by ``-``)."""
        return "-".join((self.option, *self.args))


@dataclass(frozen=True, kw_only=True)
class OptionRun:
    """The outcome of one option call.

    Attributes:
        observation, info: The env's after the last step (unchanged when the option did not run).
        reward: ``sum_k gamma^k r_k`` over the call. duration: Primitive steps taken.
        terminated, truncated: The env's flags after the last step. reason: Why the call ended.
    """

    observation: Any
    info: dict[str, Any]
    reward: float
    duration: int
    terminated: bool
    truncated: bool
    reason: EndReason


def option_inputs(observation: Mapping[str, Any], args: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """One observation as an option's batch of one: ``image (1, H, W, C)``, ``direction (1,)``, ``args (1, n)``."""
    image = torch.as_tensor(np.asarray(observation["image"])).unsqueeze(0)
    direction = torch.as_tensor([int(observation["direction"])])
    return (image, direction) if args is None else (image, direction, args.unsqueeze(0))


def observation_key(observation: Any) -> bytes:
    """A digest of an observation (a dict of arrays / numbers / strings, or one array) that is equal exactly when
    every entry is: what :func:`run_option`'s loop check counts."""
    digest = hashlib.blake2b(digest_size=16)
    items = sorted(observation.items()) if isinstance(observation, Mapping) else [("", observation)]
    for key, value in items:
        digest.update(str(key).encode())
        if isinstance(value, str):
            digest.update(value.encode())
        else:
            array = np.ascontiguousarray(value)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.digest()


def run_option(
    env: gym.Env,
    option: Option,
    args: tuple[str, ...],
    observation: Any,
    info: Mapping[str, Any],
    *,
    max_steps: int,
    gamma: float,
    rng: np.random.Generator,
    deterministic: bool = False,
    until: Callable[[Mapping[str, Any]], bool] | None = None,
    loop_limit: int | None = None,
    own_termination: bool = True,
) -> OptionRun:
    """Run one call of ``option`` from ``(observation, info)`` until it ends (see :class:`EndReason`).

    The option always acts at least once; after each step the episode end, then the termination (predicate on the
    new ``info``, or a Bernoulli draw of β at the new state, or the caller's ``until(info)``, e.g. a planner's "the
    step's effects are observed"), then the step cap, then (with ``loop_limit``) whether the new observation is one
    the call has now seen ``loop_limit`` times (:attr:`EndReason.LOOP`; the calling observation counts) are checked.
    ``own_termination=False`` skips the option's own termination (predicate or β): only ``until`` ends the call then.
    """
    check(max_steps >= 1, "max_steps", f"must be >= 1, got {max_steps}")
    check(loop_limit is None or loop_limit >= 2, "loop_limit", f"must be >= 2 (or None: off), got {loop_limit}")
    seen: Counter[bytes] = Counter()
    if loop_limit is not None:
        seen[observation_key(observation)] += 1
    if not option.can_start(info, args):
        return OptionRun(
            observation=observation,
            info=dict(info),
            reward=0.0,
            duration=0,
            terminated=False,
            truncated=False,
            reason=EndReason.NOT_INITIABLE,
        )
    ids = option.encode_args(args) if option.parameterised else None
    action, _ = option.act(*option_inputs(observation, ids), deterministic=deterministic)
    total, discount, steps = 0.0, 1.0, 0
    while True:
        observation, reward, terminated, truncated, step_info = env.step(int(action[0]))
        total += discount * float(reward)
        discount *= gamma
        steps += 1
        if terminated or truncated:
            reason = EndReason.EPISODE_END
            break
        action, beta = option.act(*option_inputs(observation, ids), deterministic=deterministic)
        if (own_termination and option.terminates(step_info, args, None if beta is None else float(beta[0]), rng)) or (
            until is not None and until(step_info)
        ):
            reason = EndReason.TERMINATED
            break
        if steps >= max_steps:
            reason = EndReason.STEP_CAP
            break
        if loop_limit is not None:
            key = observation_key(observation)
            seen[key] += 1
            if seen[key] >= loop_limit:
                reason = EndReason.LOOP
                break
    return OptionRun(
        observation=observation,
        info=dict(step_info),
        reward=total,
        duration=steps,
        terminated=bool(terminated),
        truncated=bool(truncated),
        reason=reason,
    )


class CallAndReturn(gym.Wrapper):
    """The semi-MDP over option calls: action = index into ``calls``; one step runs that call to its end.

    ``info`` of every step adds ``option`` (the call's name), ``option_index``, ``option_duration`` (primitive steps),
    ``option_end`` (an :class:`EndReason` value) and ``option_discount`` (``gamma ** duration``, what a learner
    should discount the next value by). An episode is truncated after ``max_decisions`` calls, so calls that
    cannot start cannot loop forever.

    Args:
        env: A dict-observation env with ``image`` and ``direction`` entries (predicates read its ``info``).
        library: The options (used as they are; freeze them first for a frozen low level).
        calls: The high-level actions.
        max_option_steps: Step cap of one call. gamma: Discount within a call.
        max_decisions: Calls per episode before truncation.
        deterministic: Run options greedily instead of sampling their actions.
        seed: Seed of the β draws.
        loop_limit: End a call when one observation recurs this many times in it (:attr:`EndReason.LOOP`, see
            :func:`run_option`); ``None``: never.
    """

    def __init__(
        self,
        env: gym.Env,
        library: OptionLibrary,
        calls: Sequence[OptionCall],
        *,
        max_option_steps: int = 64,
        gamma: float = 0.99,
        max_decisions: int = 64,
        deterministic: bool = False,
        seed: int | None = None,
        loop_limit: int | None = None,
    ) -> None:
        super().__init__(env)
        check(loop_limit is None or loop_limit >= 2, "loop_limit", f"must be >= 2 (or None: off), got {loop_limit}")
        self.loop_limit = loop_limit
        check(len(calls) >= 1, "calls", "needs at least one option call")
        check(max_option_steps >= 1, "max_option_steps", f"must be >= 1, got {max_option_steps}")
        check(0.0 <= gamma <= 1.0, "gamma", f"must be in [0, 1], got {gamma}")
        check(max_decisions >= 1, "max_decisions", f"must be >= 1, got {max_decisions}")
        for call in calls:  # unknown options and bad arguments fail here, not at the first step
            option = library.get(call.option)
            if option.parameterised or call.args:
                option.encode_args(call.args)
        self.library = library
        self.calls = tuple(calls)
        self.max_option_steps = max_option_steps
        self.gamma = gamma
        self.max_decisions = max_decisions
        self.deterministic = deterministic
        self.action_space = spaces.Discrete(len(self.calls))
        self._rng = np.random.default_rng(seed)
        self._last: tuple[Any, dict[str, Any]] | None = None
        self._decisions = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env (``seed`` also reseeds the β draws)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        observation, info = self.env.reset(seed=seed, options=options)
        self._last = (observation, dict(info))
        self._decisions = 0
        return observation, info

    def call_observation(self, index: int, observation: Any) -> Any:
        """What call ``index``'s option sees when it starts, given the env's last ``observation`` (unchanged here).
        The extension point for envs whose view depends on the call -- e.g. one that marks the call's target object
        (``modrl.agents.options.ppo_controller``); such an env must keep its view on the call's target for the call's
        remaining steps too."""
        return observation

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Run call ``action`` to its end; the reward is its discounted sum."""
        if self._last is None:
            raise RuntimeError("CallAndReturn: call reset() before step()")
        index = int(action)
        call = self.calls[index]
        observation, last_info = self._last
        run = run_option(
            self.env,
            self.library.get(call.option),
            call.args,
            self.call_observation(index, observation),
            last_info,
            max_steps=self.max_option_steps,
            gamma=self.gamma,
            rng=self._rng,
            deterministic=self.deterministic,
            loop_limit=self.loop_limit,
        )
        self._last = (run.observation, run.info)
        self._decisions += 1
        cut = not (run.terminated or run.truncated) and self._decisions >= self.max_decisions
        info = {
            **run.info,
            "option": call.name,
            "option_index": index,
            "option_duration": run.duration,
            "option_end": run.reason.value,
            "option_discount": self.gamma**run.duration,
        }
        if cut:
            info["is_success"] = False
        return run.observation, run.reward, run.terminated, run.truncated or cut, info
