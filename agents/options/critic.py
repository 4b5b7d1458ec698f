"""Training path 3: PPO-style option-critic, end to end, as one readable loop (CleanRL style).

K options (:class:`modrl.options.Option`, each a policy over primitive actions and a learned termination β(s)) and a
policy over options with option values (:class:`modrl.options.OptionController`) are trained together (Bacon, Harb &
Precup, 2017, "The option-critic architecture"; clipped PPO surrogates for the two policies as in Klissarov et al.,
2017, "Learnings options end-to-end for continuous action tasks"). Each step, in every env slot:

1. the running option ``ω`` may terminate at ``s_t`` (Bernoulli β_ω(s_t)); at an episode start or after a
   termination a new option is drawn from π_Ω(·|s_t) (it may be the same one);
2. the active option draws the primitive action.

Losses, per rollout: PPO on the intra-option policies with GAE advantages whose values are ``Q_Ω(s_t, ω_t)`` along the
sampled trajectory; PPO on π_Ω over the steps where it chose, advantage ``G_t - V_Ω(s_t)``; a squared error on
``Q_Ω``; and the termination gradient ``β_ω(s_t) (Q_Ω(s_t, ω) - V_Ω(s_t) + ξ)``, where ξ = ``termination_reg`` makes
switching cost a margin, so β does not drift up and options do not shrink to one step. ``deliberation_cost`` also
charges every switch in the reward (Harb et al., 2018).

SB3 cannot express this: its rollout buffer and policies carry one action distribution per step and no per-env
hidden choice, while here the action's distribution depends on which option runs, that choice persists across
steps, and the termination, option-choice and action log-probabilities each need their own loss (8 of the 18 per-step
tensors :func:`collect` returns have no ``RolloutBuffer`` field; see :mod:`modrl.agents.options.hier_ppo`). The GAE
is SB3's own (:func:`modrl.agents.options.hier_ppo.gae`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from modrl._io import atomic_write_bytes, atomic_write_json
from modrl.agents.options.critic_config import OptionCriticConfig
from modrl.agents.options.hier_envs import Slots, TaskSlots, stack_observations
from modrl.agents.options.hier_ppo import EpisodeWindow, clipped_surrogate, gae, minibatches
from modrl.agents.options.hier_results import OptionCriticResults, OptionCriticTaskEval, UpdateRecord
from modrl.library import safetensors_bytes
from modrl.options import EndReason, Option, OptionConfig, OptionController, OptionLibrary, OptionStats
from modrl.options.library import LIBRARY_DIR
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter

log = logging.getLogger(__name__)
CONTROLLER_FILE = "controller.safetensors"


@dataclass(frozen=True)
class CriticHeads:
    """One forward pass over a batch (B states, K options, A actions).

    Attributes:
        logits: ``(B, K, A)`` action logits of every option. beta: ``(B, K)`` termination probabilities.
        option_logits: ``(B, K)`` logits of π_Ω. q: ``(B, K)`` option values Q_Ω(s, ·).
    """

    logits: Tensor
    beta: Tensor
    option_logits: Tensor
    q: Tensor


class OptionCriticModel(nn.Module):
    """The K options (an :class:`OptionLibrary`, names ``option0`` ...) and the controller over them."""

    def __init__(self, library: OptionLibrary, controller: OptionController) -> None:
        super().__init__()
        self.library = library
        self.controller = controller

    def forward(self, image: Tensor, direction: Tensor, task: Tensor) -> CriticHeads:
        """Every head on ``image (B, H, W, C)``, ``direction (B,)``, ``task (B,)``."""
        outs = [self.library.get(name)(image, direction) for name in self.library.names]
        option_logits, q = self.controller(image, direction, task)
        beta = torch.stack([o.termination for o in outs if o.termination is not None], dim=1)
        return CriticHeads(
            logits=torch.stack([o.logits for o in outs], dim=1), beta=beta, option_logits=option_logits, q=q
        )


def build_option_critic(config: OptionCriticConfig, num_tasks: int, *, num_actions: int = 7) -> OptionCriticModel:
    """Fresh options (learned β) and controller with ``config.net``'s sizes."""
    net = config.net
    library = OptionLibrary()
    for k in range(config.num_options):
        library.add(
            f"option{k}",
            Option(
                OptionConfig(
                    num_actions=num_actions,
                    embed_dim=net.embed_dim,
                    channels=net.channels,
                    features_dim=net.features_dim,
                    hidden=net.hidden,
                    termination="learned",
                )
            ),
        )
    controller = OptionController(
        num_options=config.num_options,
        num_tasks=num_tasks,
        embed_dim=net.embed_dim,
        channels=net.channels,
        features_dim=net.features_dim,
        hidden=net.critic_hidden,
        task_dim=config.task_dim,
    )
    return OptionCriticModel(library, controller)


class _Loop:
    """Per-slot state between rollouts: last observations, running options, call books."""

    def __init__(self, slots: Slots, stats: OptionStats) -> None:
        self.slots, self.stats = slots, stats
        self.obs = [slots.reset(i)[0] for i in range(slots.n_envs)]
        self.option = torch.full((slots.n_envs,), -1, dtype=torch.long)
        self.started = [0] * slots.n_envs
        self.steps = [0] * slots.n_envs
        self.window = EpisodeWindow(slots.task_names)

    def end_call(self, slot: int, reason: EndReason) -> None:
        option = int(self.option[slot])
        if option >= 0:
            task = self.slots.task_index(slot)
            self.stats.record(option, task, self.steps[slot] - self.started[slot], reason, slot=slot)

    def inputs(self) -> tuple[Tensor, Tensor, Tensor]:
        image, direction = stack_observations(self.obs)
        return image, direction, torch.as_tensor([self.slots.task_index(i) for i in range(self.slots.n_envs)])


def _pick(values: Tensor, index: Tensor) -> Tensor:
    """``values[b, index[b]]`` for ``(B, K)`` values and ``(B,)`` indices (negative indices read 0)."""
    return values.gather(1, index.clamp(min=0)[:, None]).squeeze(1)


def collect(
    model: OptionCriticModel, loop: _Loop, config: OptionCriticConfig, gen: torch.Generator
) -> dict[str, Tensor]:
    """One rollout of ``algo.n_steps`` steps in every slot; returns ``(T, N, ...)`` tensors incl. advantages."""
    steps, n = config.algo.n_steps, loop.slots.n_envs
    rows: list[dict[str, Tensor]] = []
    for _ in range(steps):
        image, direction, task = loop.inputs()
        with torch.no_grad():
            heads = model(image, direction, task)
        prev = loop.option.clone()
        has_prev = prev >= 0
        beta_prev = _pick(heads.beta, prev) * has_prev
        term = has_prev & (torch.rand(n, generator=gen) < beta_prev)
        choose = ~has_prev | term
        drawn = torch.multinomial(torch.softmax(heads.option_logits, 1), 1, generator=gen).squeeze(1)
        option = torch.where(choose, drawn, prev)
        act_logp = torch.log_softmax(heads.logits[torch.arange(n), option], dim=1)
        action = torch.multinomial(act_logp.exp(), 1, generator=gen).squeeze(1)
        v_state = OptionController.state_value(heads.option_logits, heads.q)
        reward, done = torch.zeros(n), torch.zeros(n)
        for i in range(n):
            if term[i]:
                loop.end_call(i, EndReason.TERMINATED)
            if choose[i]:
                loop.option[i], loop.started[i] = option[i], loop.steps[i]
            result = loop.slots.step(i, int(action[i]))
            loop.steps[i] += 1
            reward[i] = result.reward - config.deliberation_cost * float(term[i])
            done[i] = float(result.done)
            loop.obs[i] = result.observation
            if result.done:
                loop.window.add(loop.slots.task_index(i), result.success)
                loop.end_call(i, EndReason.EPISODE_END)
                loop.stats.end_episode(i, loop.slots.task_index(i), result.success)
                loop.option[i] = -1
                loop.obs[i] = loop.slots.reset(i)[0]
        rows.append(
            dict(
                image=image,
                direction=direction,
                task=task,
                prev=prev,
                option=option,
                choose=choose,
                has_prev=has_prev,
                beta_prev=beta_prev,
                action=action,
                logp=act_logp.gather(1, action[:, None]).squeeze(1),
                logp_option=torch.log_softmax(heads.option_logits, 1).gather(1, option[:, None]).squeeze(1),
                value=_pick(heads.q, option),
                v_state=v_state,
                term_adv=_pick(heads.q, prev) - v_state,
                reward=reward,
                done=done,
            )
        )
    batch = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
    with torch.no_grad():
        heads = model(*loop.inputs())
    beta = _pick(heads.beta, loop.option)
    v_next = OptionController.state_value(heads.option_logits, heads.q)
    last = torch.where(loop.option >= 0, (1 - beta) * _pick(heads.q, loop.option) + beta * v_next, v_next)
    batch["advantage"] = gae(
        batch["reward"], batch["value"], batch["done"], last, config.algo.gamma, config.algo.gae_lambda
    )
    batch["returns"] = batch["advantage"] + batch["value"]
    return batch


def update(
    model: OptionCriticModel,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    config: OptionCriticConfig,
    gen: torch.Generator,
) -> dict[str, float]:
    """``algo.n_epochs`` passes of minibatch updates over one rollout; returns the last minibatch's losses."""
    algo = config.algo
    flat = {key: value.reshape(-1, *value.shape[2:]) for key, value in batch.items()}
    losses: dict[str, float] = {}
    for idx in minibatches(flat["reward"].shape[0], algo.batch_size, algo.n_epochs, gen):
        mb = {key: value[idx] for key, value in flat.items()}
        heads = model(mb["image"], mb["direction"], mb["task"])
        logp_all = torch.log_softmax(heads.logits[torch.arange(len(idx)), mb["option"]], dim=1)
        policy_loss = clipped_surrogate(
            logp_all.gather(1, mb["action"][:, None]).squeeze(1), mb["logp"], mb["advantage"], algo.clip_range
        )
        entropy = -(logp_all.exp() * logp_all).sum(1).mean()
        option_logp = torch.log_softmax(heads.option_logits, dim=1)
        option_loss = clipped_surrogate(
            option_logp.gather(1, mb["option"][:, None]).squeeze(1),
            mb["logp_option"],
            mb["returns"] - mb["v_state"],
            algo.clip_range,
            mask=mb["choose"],
        )
        option_entropy = -(option_logp.exp() * option_logp).sum(1)[mb["choose"]].sum() / mb["choose"].sum().clamp(min=1)
        value_loss = 0.5 * (_pick(heads.q, mb["option"]) - mb["returns"]).square().mean()
        has_prev = mb["has_prev"].float()
        termination_loss = (
            _pick(heads.beta, mb["prev"]) * (mb["term_adv"] + config.termination_reg) * has_prev
        ).sum() / has_prev.sum().clamp(min=1)
        loss = (
            policy_loss
            + option_loss
            + algo.vf_coef * value_loss
            + config.termination_coef * termination_loss
            - algo.ent_coef * entropy
            - config.option_ent_coef * option_entropy
        )
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), algo.max_grad_norm)
        optimizer.step()
        losses = {
            "policy_loss": policy_loss.item(),
            "option_loss": option_loss.item(),
            "value_loss": value_loss.item(),
            "termination_loss": termination_loss.item(),
        }
    return losses


def train_option_critic(
    config: OptionCriticConfig, *, slots: Slots | None = None, writer: TelemetryWriter | None = None
) -> tuple[OptionCriticModel, list[UpdateRecord]]:
    """Train for ``config.total_timesteps`` frames (whole rollouts) on ``slots`` (default: the config's tasks).

    TensorBoard (steps are frames): the option telemetry of :mod:`modrl.options.stats` (``modrl/options/mean_duration``,
    per-option ``modrl/option/<name>/mean_duration`` and ``termination_rate``, the task x option usage heatmap),
    ``modrl/option_critic/termination_prob`` (mean β of the running option), the four losses under
    ``modrl/option_critic/loss/`` and training success per task.
    """
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    own = slots is None
    slots = TaskSlots(config.env, seed=config.seed) if slots is None else slots
    model = build_option_critic(config, len(slots.task_names))
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.algo.learning_rate, eps=1e-5, fused=config.algo.fused_adam
    )
    stats = OptionStats(model.library.names, slots.task_names)
    loop, history, frames = _Loop(slots, stats), list[UpdateRecord](), 0
    try:
        while frames < config.total_timesteps:
            batch = collect(model, loop, config, gen)
            frames += batch["reward"].numel()
            losses = update(model, optimizer, batch, config, gen)
            history.append(_record(frames, batch, loop, losses, writer))
    finally:
        if own:
            slots.close()
    return model, history


def _record(
    frames: int, batch: dict[str, Tensor], loop: _Loop, losses: dict[str, float], writer: TelemetryWriter | None
) -> UpdateRecord:
    has_prev = batch["has_prev"]
    beta = float(batch["beta_prev"][has_prev].mean()) if bool(has_prev.any()) else float("nan")
    summary = loop.stats.log(writer, frames) if writer is not None else loop.stats.summary()
    loop.stats.reset()
    record = UpdateRecord(
        frames=frames,
        mean_duration=summary.total_mean_duration if summary else float("nan"),
        termination_prob=beta,
        success=loop.window.success(),
        **losses,
    )
    if writer is not None:
        writer.log_scalar("modrl/option_critic/termination_prob", beta, frames)
        for key in losses:
            writer.log_scalar(f"modrl/option_critic/loss/{key.removesuffix('_loss')}", losses[key], frames)
        writer.log_success(loop.window.per_task(), frames)
    return record


def evaluate_option_critic(
    model: OptionCriticModel, config: OptionCriticConfig, *, episodes: int, deterministic: bool, seed_base: int
) -> dict[str, OptionCriticTaskEval]:
    """Success rate and mean option duration per task (episode ``k`` seeded ``seed_base + k``); with
    ``deterministic`` the option choice and the actions are argmax (terminations stay Bernoulli draws)."""
    slots = TaskSlots(replace(config.env, n_envs=1), seed=seed_base)
    rng = np.random.default_rng(seed_base)
    out: dict[str, OptionCriticTaskEval] = {}
    model.eval()
    for index, task in enumerate(slots.task_names):
        wins, calls, steps = 0, 0, 0
        for k in range(episodes):
            obs, _ = slots.reset(0, task=index, seed=seed_base + k)
            option, done, success = -1, False, False
            while not done:
                image, direction = stack_observations([obs])
                with torch.no_grad():
                    heads = model(image, direction, torch.as_tensor([index]))
                if option < 0 or rng.random() < float(heads.beta[0, option]):
                    probs = torch.softmax(heads.option_logits[0], 0)
                    option = int(probs.argmax()) if deterministic else int(rng.choice(len(probs), p=probs.numpy()))
                    calls += 1
                probs = torch.softmax(heads.logits[0, option], 0)
                action = int(probs.argmax()) if deterministic else int(rng.choice(len(probs), p=probs.numpy()))
                result = slots.step(0, action)
                obs, done, success, steps = result.observation, result.done, result.success, steps + 1
            wins += success
        out[task] = OptionCriticTaskEval(success=wins / max(episodes, 1), mean_duration=steps / max(calls, 1))
    slots.close()
    model.train()
    return out


def save_option_critic(model: OptionCriticModel, run_dir: Path, *, task_names: tuple[str, ...]) -> None:
    """The options into ``run_dir/options`` (an :class:`OptionLibrary` directory, usable by routers and planners)
    and the controller into ``run_dir/controller.safetensors`` (its task order in the header)."""
    model.library.save(run_dir / LIBRARY_DIR)
    tensors = {key: value.detach().contiguous() for key, value in model.controller.state_dict().items()}
    metadata = {
        "format": "modrl.option-controller",
        "options": json.dumps(model.library.names),
        "tasks": json.dumps(list(task_names)),
    }
    atomic_write_bytes(run_dir / CONTROLLER_FILE, safetensors_bytes(tensors, metadata))


def run_option_critic(
    config: OptionCriticConfig, run_dir: Path, *, writer: TelemetryWriter | None = None
) -> OptionCriticResults:
    """Train, save (:func:`save_option_critic`), evaluate every task (stochastic and deterministic) and write
    ``run_dir/results.json`` (:meth:`OptionCriticResults.to_dict`); returns what it wrote."""
    model, history = train_option_critic(config, writer=writer)
    task_names = TaskSlots(config.env, seed=config.seed).task_names
    save_option_critic(model, run_dir, task_names=task_names)
    stoch, det = (
        evaluate_option_critic(
            model, config, episodes=config.eval_episodes, deterministic=deterministic, seed_base=EVAL_SEED_BASE
        )
        for deterministic in (False, True)
    )
    results = OptionCriticResults(
        frames=history[-1].frames if history else 0, final=history[-1] if history else None, stoch=stoch, det=det
    )
    atomic_write_json(run_dir / "results.json", results.to_dict())
    return results
