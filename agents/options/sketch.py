"""Training path 2: sketch-guided modules that learn when to stop (Andreas, Klein & Levine, 2017, "Modular multitask
reinforcement learning with policy sketches"), as one readable PPO loop.

Every task of a generated suite carries a sketch, ``info["sketch"]``: its subtask symbols in order. There is one
module per symbol (``per_symbol``) or per verb, conditioned on the object (``parameterised``); each is a
:class:`modrl.options.Option` with a learned termination head, read here as the module's STOP decision. The sketch
fixes which module runs: module ``k`` acts until it decides to STOP, then module ``k + 1`` takes over on the same
state; a STOP of the last module ends the episode unsolved. Nothing tells a module when its subtask is done: the
reward is the task's own, at its end (plus ``subtask_reward`` per subtask event if configured), so each module
learns from the task reward both what to do and when to hand over.

Each step's action is the pair (STOP decision of the running module, primitive action of the module acting after
it); one clipped PPO surrogate trains both through the pair's joint log-probability. The critic is the value of
being at sketch position ``k`` of task ``τ`` in state ``s`` (:class:`modrl.options.OptionController`'s value head,
one output per position), the stand-in for the paper's per-task baselines. A curriculum over sketch lengths (short
sketches first, :class:`modrl.options.SuccessCurriculum`) moves on when training success passes its threshold.
The PPO pieces (SB3's GAE, the clipped surrogate, minibatches) are :mod:`modrl.agents.options.hier_ppo`'s, which says
why the loop is not SB3's ``PPO.learn``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from modrl._io import atomic_write_json
from modrl.agents.options.critic_config import SketchConfig
from modrl.agents.options.hier_envs import Slots, TaskSlots, stack_observations
from modrl.agents.options.hier_ppo import EpisodeWindow, clipped_surrogate, gae, minibatches
from modrl.agents.options.hier_results import SketchResults, SketchTaskEval, SketchUpdateRecord
from modrl.agents.options.sketch_modules import ModuleCall, SketchModules, call_tensors
from modrl.envs import get_suite, parse_task
from modrl.envs.grammar import MAX_SUBTASKS, Subtask
from modrl.options import (
    EndReason,
    OptionController,
    OptionStats,
    SuccessCurriculum,
)
from modrl.options.library import LIBRARY_DIR
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter

log = logging.getLogger(__name__)


class _Loop:
    """Per-slot state: observation, the sketch's calls, the position in it, module books, the curriculum."""

    def __init__(
        self,
        slots: Slots,
        modules: SketchModules,
        stats: OptionStats,
        curriculum: SuccessCurriculum,
        lengths: Sequence[int],
    ) -> None:
        self.slots, self.modules, self.stats, self.curriculum = slots, modules, stats, curriculum
        self.lengths = list(lengths)
        self.window = EpisodeWindow(slots.task_names)
        self.stops = [0, 0]  # STOP decisions made after / before the module's subtask was done
        n = slots.n_envs
        self.obs: list[dict[str, Any]] = [{}] * n
        self.calls: list[list[ModuleCall]] = [[] for _ in range(n)]
        self.k, self.fresh, self.started = [0] * n, [True] * n, [0] * n
        self.steps, self.done_subtasks = [0] * n, [0] * n
        for slot in range(n):
            self.reset(slot)

    def allowed(self) -> list[int] | None:
        """Task indices the curriculum allows now (``None``: all)."""
        if self.curriculum.done:
            return None
        limit = int(self.curriculum.current.removeprefix("length-"))
        return [i for i, length in enumerate(self.lengths) if length <= limit]

    def reset(self, slot: int) -> None:
        obs, info = self.slots.reset(slot, self.allowed())
        self.obs[slot], self.calls[slot] = obs, self.modules.calls_for(info["sketch"])
        self.k[slot], self.fresh[slot], self.started[slot], self.done_subtasks[slot] = 0, True, self.steps[slot], 0

    def end_module(self, slot: int, reason: EndReason) -> None:
        call = self.calls[slot][min(self.k[slot], len(self.calls[slot]) - 1)]
        task = self.slots.task_index(slot)
        self.stats.record(call.module, task, self.steps[slot] - self.started[slot], reason, slot=slot)
        self.started[slot] = self.steps[slot]


def _step_slot(loop: _Loop, slot: int, stop: bool, action: int, config: SketchConfig) -> tuple[float, bool]:
    """Apply one slot's STOP decision and action; returns (reward, episode over)."""
    if stop:
        loop.stops[0 if loop.done_subtasks[slot] > loop.k[slot] else 1] += 1
        loop.end_module(slot, EndReason.TERMINATED)
        loop.k[slot] += 1
        if loop.k[slot] >= len(loop.calls[slot]):  # the last module stopped: the episode ends unsolved
            loop.window.add(loop.slots.task_index(slot), False)
            loop.stats.end_episode(slot, loop.slots.task_index(slot), False)
            loop.curriculum.record_episode(False)
            loop.reset(slot)
            return 0.0, True
    result = loop.slots.step(slot, action)
    loop.steps[slot] += 1
    loop.fresh[slot] = False
    loop.done_subtasks[slot] = int(result.info.get("subtask_index", loop.done_subtasks[slot]))
    reward = result.reward + config.subtask_reward * len(result.info.get("events", ()))
    loop.obs[slot] = result.observation
    if result.done:
        loop.end_module(slot, EndReason.EPISODE_END)
        loop.window.add(loop.slots.task_index(slot), result.success)
        loop.stats.end_episode(slot, loop.slots.task_index(slot), result.success)
        loop.curriculum.record_episode(result.success)
        loop.reset(slot)
    return reward, result.done


def collect(loop: _Loop, critic: OptionController, config: SketchConfig, gen: torch.Generator) -> dict[str, Tensor]:
    """One rollout of ``algo.n_steps`` steps per slot; ``(T, N, ...)`` tensors with advantages and returns."""
    n, rows = loop.slots.n_envs, list[dict[str, Tensor]]()
    for _ in range(config.algo.n_steps):
        image, direction = stack_observations(loop.obs)
        task = torch.as_tensor([loop.slots.task_index(i) for i in range(n)])
        position = torch.as_tensor(loop.k)
        stop_module, stop_args = call_tensors([loop.calls[i][loop.k[i]] for i in range(n)])
        decided = ~torch.as_tensor(loop.fresh)
        with torch.no_grad():
            _, beta = loop.modules.heads(image, direction, stop_module, stop_args)
            stop = decided & (torch.rand(n, generator=gen) < beta)
            after = [min(loop.k[i] + int(stop[i]), len(loop.calls[i]) - 1) for i in range(n)]
            acted = torch.as_tensor([loop.k[i] + int(stop[i]) < len(loop.calls[i]) for i in range(n)])
            act_module, act_args = call_tensors([loop.calls[i][after[i]] for i in range(n)])
            logits, _ = loop.modules.heads(image, direction, act_module, act_args)
            logp_all = torch.log_softmax(logits, dim=1)
            action = torch.multinomial(logp_all.exp(), 1, generator=gen).squeeze(1)
            value = critic(image, direction, task)[1].gather(1, position[:, None]).squeeze(1)
        logp = _joint_logp(beta, stop, decided, logp_all.gather(1, action[:, None]).squeeze(1), acted)
        outcome = [_step_slot(loop, i, bool(stop[i]), int(action[i]), config) for i in range(n)]
        rows.append(
            dict(
                image=image,
                direction=direction,
                task=task,
                position=position,
                stop_module=stop_module,
                stop_args=stop_args,
                decided=decided,
                stop=stop,
                act_module=act_module,
                act_args=act_args,
                acted=acted,
                action=action,
                logp=logp,
                value=value,
                beta=beta,
                reward=torch.as_tensor([r for r, _ in outcome], dtype=torch.float32),
                done=torch.as_tensor([float(d) for _, d in outcome]),
            )
        )
    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    image, direction = stack_observations(loop.obs)
    task = torch.as_tensor([loop.slots.task_index(i) for i in range(n)])
    with torch.no_grad():
        last = critic(image, direction, task)[1].gather(1, torch.as_tensor(loop.k)[:, None]).squeeze(1)
    batch["advantage"] = gae(
        batch["reward"], batch["value"], batch["done"], last, config.algo.gamma, config.algo.gae_lambda
    )
    batch["returns"] = batch["advantage"] + batch["value"]
    return batch


def _joint_logp(beta: Tensor, stop: Tensor, decided: Tensor, action_logp: Tensor, acted: Tensor) -> Tensor:
    """``(B,)`` log-probability of the step's (STOP decision, action) pair; parts not taken count 0."""
    stop_logp = torch.where(stop, beta.log(), (1 - beta).log())
    return torch.where(decided, stop_logp, 0.0) + torch.where(acted, action_logp, 0.0)


def update(
    modules: SketchModules,
    critic: OptionController,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    config: SketchConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    """PPO epochs over one rollout; the last minibatch's losses (``policy_loss``, ``value_loss``, ``entropy``)."""
    algo = config.algo
    flat = {key: value.reshape(-1, *value.shape[2:]) for key, value in batch.items()}
    losses: dict[str, float] = {}
    for idx in minibatches(flat["reward"].shape[0], algo.batch_size, algo.n_epochs, gen):
        mb = {key: value[idx] for key, value in flat.items()}
        _, beta = modules.heads(mb["image"], mb["direction"], mb["stop_module"], mb["stop_args"])
        logits, _ = modules.heads(mb["image"], mb["direction"], mb["act_module"], mb["act_args"])
        logp_all = torch.log_softmax(logits, dim=1)
        logp = _joint_logp(
            beta, mb["stop"], mb["decided"], logp_all.gather(1, mb["action"][:, None]).squeeze(1), mb["acted"]
        )
        policy_loss = clipped_surrogate(logp, mb["logp"], mb["advantage"], algo.clip_range)
        acted = mb["acted"].float()
        entropy = (-(logp_all.exp() * logp_all).sum(1) * acted).sum() / acted.sum().clamp(min=1)
        values = critic(mb["image"], mb["direction"], mb["task"])[1].gather(1, mb["position"][:, None]).squeeze(1)
        value_loss = 0.5 * (values - mb["returns"]).square().mean()
        loss = policy_loss + algo.vf_coef * value_loss - algo.ent_coef * entropy
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([*modules.parameters(), *critic.parameters()], algo.max_grad_norm)
        optimizer.step()
        losses = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}
    return losses


def _subtasks(task_names: Sequence[str]) -> list[Subtask]:
    return [sub for name in task_names for sub in parse_task(name).subtasks]


def train_sketch(
    config: SketchConfig, *, slots: Slots | None = None, writer: TelemetryWriter | None = None
) -> tuple[SketchModules, list[SketchUpdateRecord], SuccessCurriculum]:
    """Train for ``config.total_timesteps`` frames on ``slots`` (default: the config's tasks); returns the modules,
    one record per update (frames, success, stop probability, losses) and the curriculum."""
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    own = slots is None
    slots = TaskSlots(config.env, seed=config.seed) if slots is None else slots
    lengths = [len(parse_task(t).subtasks) for t in slots.task_names]
    modules = SketchModules.build(config, _subtasks(slots.task_names))
    critic = OptionController(
        num_options=MAX_SUBTASKS,
        num_tasks=len(slots.task_names),
        embed_dim=config.net.embed_dim,
        channels=config.net.channels,
        features_dim=config.net.features_dim,
        hidden=config.net.critic_hidden,
    )
    optimizer = torch.optim.Adam(
        [*modules.parameters(), *critic.parameters()],
        lr=config.algo.learning_rate,
        eps=1e-5,
        fused=config.algo.fused_adam,
    )
    curriculum = SuccessCurriculum([f"length-{n}" for n in sorted(set(lengths))], config.curriculum)
    loop = _Loop(slots, modules, OptionStats(modules.library.names, slots.task_names), curriculum, lengths)
    history, frames = list[SketchUpdateRecord](), 0
    try:
        while frames < config.total_timesteps:
            batch = collect(loop, critic, config, gen)
            frames += batch["reward"].numel()
            if not curriculum.done:
                curriculum.add_steps(batch["reward"].numel())
            losses = update(modules, critic, optimizer, batch, config, gen)
            history.append(_log(loop, batch, frames, losses, writer))
            if curriculum.should_advance():
                stage = curriculum.advance()
                log.info(
                    "curriculum: %s %s after %d frames", stage.name, "passed" if stage.passed else "ended", stage.steps
                )
    finally:
        if own:
            slots.close()
    return modules, history, curriculum


def _log(
    loop: _Loop, batch: dict[str, Tensor], frames: int, losses: dict[str, float], writer: TelemetryWriter | None
) -> SketchUpdateRecord:
    decided = batch["decided"]
    stops = sum(loop.stops)
    record = SketchUpdateRecord(
        frames=frames,
        **losses,
        success=loop.window.success(),
        stop_prob=float(batch["beta"][decided].mean()) if bool(decided.any()) else float("nan"),
        stop_after_event=loop.stops[0] / stops if stops else float("nan"),
    )
    loop.stops = [0, 0]
    if writer is None:
        loop.stats.reset()
        return record
    loop.stats.log(writer, frames)
    for key in ("stop_prob", "stop_after_event", "policy_loss", "value_loss", "entropy"):
        writer.log_scalar(f"modrl/sketch/{key}", getattr(record, key), frames)
    writer.log_scalar("modrl/curriculum/stage", loop.curriculum.index, frames)
    writer.log_success(loop.window.per_task(), frames)
    return record


def evaluate_sketch(
    modules: SketchModules,
    config: SketchConfig,
    tasks: Sequence[str],
    *,
    episodes: int,
    deterministic: bool,
    seed_base: int = EVAL_SEED_BASE,
) -> dict[str, float]:
    """Success rate per task (episode ``k`` seeded ``seed_base + k``); deterministic: argmax actions, STOP when
    its probability exceeds 0.5."""
    slots = TaskSlots(replace(config.env, n_envs=1, tasks=tuple(tasks)), seed=seed_base)
    rng, out = np.random.default_rng(seed_base), dict[str, float]()
    for index, task in enumerate(slots.task_names):
        wins = 0
        for k in range(episodes):
            obs, info = slots.reset(0, task=index, seed=seed_base + k)
            calls, position, fresh, done, success = modules.calls_for(info["sketch"]), 0, True, False, False
            while not done:
                image, direction = stack_observations([obs])
                module, args = call_tensors([calls[position]])
                with torch.no_grad():
                    logits, beta = modules.heads(image, direction, module, args)
                    if not fresh and (float(beta[0]) > 0.5 if deterministic else rng.random() < float(beta[0])):
                        position += 1
                        if position == len(calls):
                            break
                        logits, _ = modules.heads(image, direction, *call_tensors([calls[position]]))
                probs = torch.softmax(logits[0], 0).numpy()
                action = int(probs.argmax()) if deterministic else int(rng.choice(len(probs), p=probs / probs.sum()))
                result = slots.step(0, action)
                obs, done, success, fresh = result.observation, result.done, result.success, False
            wins += success
        out[task] = wins / max(episodes, 1)
    slots.close()
    return out


def eval_tasks(config: SketchConfig, modules: SketchModules) -> dict[str, list[str]]:
    """Tasks to evaluate, by split: the training tasks, and the ``eval_split`` tasks every symbol of which has a
    module."""
    suite = get_suite(config.env.suite)
    train = list(config.env.tasks or suite.split(config.env.split))
    out = {"train": train}
    if config.eval_split is not None:
        out[config.eval_split] = [
            t
            for t in suite.split(config.eval_split)
            if t not in train and all(s.symbol in modules.calls for s in parse_task(t).subtasks)
        ]
    return out


def run_sketch(config: SketchConfig, run_dir: Path, *, writer: TelemetryWriter | None = None) -> SketchResults:
    """Train, save the modules as an option library in ``run_dir/options``, evaluate (train tasks and zero-shot
    ``eval_split`` tasks) and write ``run_dir/results.json`` (:meth:`SketchResults.to_dict`); returns what it
    wrote."""
    modules, history, curriculum = train_sketch(config, writer=writer)
    modules.library.save(run_dir / LIBRARY_DIR)
    stoch, det = (
        {
            task: SketchTaskEval(split=split, success=success)
            for split, tasks in eval_tasks(config, modules).items()
            for task, success in evaluate_sketch(
                modules, config, tasks, episodes=config.eval_episodes, deterministic=deterministic
            ).items()
        }
        for deterministic in (False, True)
    )
    results = SketchResults(
        frames=history[-1].frames if history else 0,
        modules=tuple(modules.library.names),
        curriculum=tuple(curriculum.results),
        final=history[-1] if history else None,
        stoch=stoch,
        det=det,
    )
    atomic_write_json(run_dir / "results.json", results.to_dict())
    return results
