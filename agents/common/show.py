"""Watch a trained agent: episodes rendered frame by frame (MiniGrid's ``rgb_array``), each frame beside a panel
with the router's weight on every module at that step, written as an animated GIF (Pillow: no system dependency).

``modrl show RUN`` (:mod:`modrl.cli.show_command`) is the command; :func:`render_episodes` does the work.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from minigrid.core.actions import Actions
from PIL import Image, ImageDraw, ImageFont

from modrl.agents.common.builders import env_options
from modrl.agents.common.evaluation import load_run_policy
from modrl.agents.common.policies import ModularActorCriticPolicy
from modrl.envs import get_suite, make_suite_env
from modrl.seeds import EVAL_SEED_BASE
from modrl.telemetry import TelemetryWriter

PANEL_WIDTH = 300
ROW = 22
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
BAR = (59, 82, 139)  # viridis blue, as in the routing figures
WIN, LOSS = (33, 145, 140), (180, 40, 40)


@dataclass(frozen=True, kw_only=True)
class ShownEpisode:
    """One rendered episode: its task, seed, length, return, success, and the ``(T, K)`` routing weights per step
    (``None`` for an agent without a router)."""

    task: str
    seed: int
    length: int
    total_return: float
    success: bool
    weights: np.ndarray | None


def _panel(
    height: int,
    *,
    title: str,
    lines: Sequence[str],
    modules: Sequence[str],
    weights: np.ndarray | None,
    colour: tuple[int, int, int] = INK,
) -> np.ndarray:
    needed = 12 + ROW * (1 + len(lines) + (1 + len(modules) if weights is not None else 0))
    panel = Image.new("RGB", (PANEL_WIDTH, max(height, needed)), BACKGROUND)
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default()
    draw.text((8, 6), title, fill=colour, font=font)
    y = 6 + ROW
    for line in lines:
        draw.text((8, y), line, fill=INK, font=font)
        y += ROW
    if weights is not None:
        draw.text((8, y), "router weight per module", fill=INK, font=font)
        y += ROW
        for name, value in zip(modules, weights, strict=True):
            draw.text((8, y + 3), name[:12], fill=INK, font=font)
            left, right = 100, PANEL_WIDTH - 50
            draw.rectangle((left, y + 2, right, y + ROW - 4), outline=(200, 200, 200))
            draw.rectangle((left, y + 2, left + int((right - left) * float(value)), y + ROW - 4), fill=BAR)
            draw.text((right + 6, y + 3), f"{float(value):.2f}", fill=INK, font=font)
            y += ROW
    return np.asarray(panel)


def _frame(env: Any) -> np.ndarray:
    """The env's ``rgb_array`` frame, doubled (nearest) while under 256 pixels high: small grids stay legible."""
    image = np.asarray(env.render())
    while image.shape[0] < 256:
        image = image.repeat(2, axis=0).repeat(2, axis=1)
    return image


def _beside(frame: np.ndarray, panel: np.ndarray) -> np.ndarray:
    height = max(frame.shape[0], panel.shape[0])
    pad = lambda a: np.pad(a, ((0, height - a.shape[0]), (0, 0), (0, 0)), constant_values=255)  # noqa: E731
    return np.concatenate([pad(frame), pad(panel)], axis=1)


def default_out(run_dir: Path, task: str | None, episodes: int, *, stochastic: bool = False) -> Path:
    """``RUN_DIR/show/<task>-step<N>-<E>ep[-stoch].gif`` for the newest checkpoint, with ``-2``, ``-3``... if taken."""
    config, _, checkpoint = load_run_policy(run_dir)
    name = task if task is not None else get_suite(config.env.suite).task_names[0]
    stem = f"{name}-step{checkpoint.step}-{episodes}ep{'-stoch' if stochastic else ''}"
    out, n = run_dir / "show" / f"{stem}.gif", 1
    while out.exists():
        n += 1
        out = run_dir / "show" / f"{stem}-{n}.gif"
    return out


def render_episodes(
    run_dir: Path,
    out: Path,
    *,
    task: str | None = None,
    episodes: int = 1,
    deterministic: bool = True,
    seed_base: int = EVAL_SEED_BASE,
    frame_ms: int = 180,
    tensorboard: bool = False,
    device: str = "cpu",
) -> list[ShownEpisode]:
    """Render ``episodes`` episodes of ``task`` (default: the suite's first task) by ``run_dir``'s newest verified
    checkpoint into the GIF ``out`` (written atomically); episode ``k`` is seeded ``seed_base + k``, as in evaluation.
    With ``tensorboard``, the GIF also goes into the run's TensorBoard logs (a new event file in ``run_dir/tb``) as
    the image :func:`show_tag` at the checkpoint's step; the Images dashboard plays it.

    Raises:
        KeyError: ``task`` is not a task of the run's suite (the message lists them).
        ValueError: ``out`` does not end in ``.gif``.
        FileExistsError: ``out`` exists (never overwritten).
        Whatever :func:`~modrl.agents.common.evaluation.load_run_policy` raises for the run directory.
    """
    out = Path(out)
    if out.suffix.lower() != ".gif":
        raise ValueError(f"{out}: modrl show writes animated GIFs (.gif)")
    if out.exists():
        raise FileExistsError(f"{out} exists: give a new file name (an existing file is never overwritten)")
    config, policy, checkpoint = load_run_policy(run_dir, device=device)
    suite = get_suite(config.env.suite)
    name = task if task is not None else suite.task_names[0]
    index = suite.task_index(name)
    env = make_suite_env(suite, index, render_mode="rgb_array", **env_options(config))
    frames: list[np.ndarray] = []
    shown: list[ShownEpisode] = []
    header = f"{name} | step {checkpoint.step} | {'greedy' if deterministic else 'sampled'}"
    try:
        for k in range(episodes):
            episode_frames, episode = _play(
                env,
                policy,
                task=name,
                header=header,
                label=f"episode {k + 1}/{episodes}",
                seed=seed_base + k,
                deterministic=deterministic,
            )
            frames.extend(episode_frames[:-1])
            frames.extend([episode_frames[-1]] * 4)  # hold the outcome for a moment
            shown.append(episode)
    finally:
        env.close()
    _write_gif(frames, out, frame_ms=frame_ms)
    if tensorboard:
        _gif_to_tensorboard(run_dir, out, show_tag(name, deterministic=deterministic), checkpoint.step)
    return shown


def _play(
    env: Any, policy: Any, *, task: str, header: str, label: str, seed: int, deterministic: bool
) -> tuple[list[np.ndarray], ShownEpisode]:
    """One episode of ``policy`` on ``env`` (task ``task``, seeded ``seed``): a frame per step beside its routing
    panel, then the outcome frame; and the episode's record."""
    modular = policy.modular if isinstance(policy, ModularActorCriticPolicy) else None
    modules = list(modular.network.library.names) if modular is not None else []
    frames: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    done, total, t, success, rows = False, 0.0, 0, False, []
    while not done:
        image = _frame(env)
        action, _ = policy.predict(obs, deterministic=deterministic)
        weights = None
        if modular is not None and modular.last_weights is not None:
            weights = modular.last_weights[0].cpu().numpy()
            rows.append(weights)
        lines = [f"{label} (seed {seed})", f"t={t}  action: {Actions(int(action)).name}"]
        frames.append(
            _beside(image, _panel(image.shape[0], title=header, lines=lines, modules=modules, weights=weights))
        )
        obs, reward, terminated, truncated, info = env.step(int(action))
        total, t, done = total + float(reward), t + 1, terminated or truncated
        success = bool(info.get("is_success", False))
    image = _frame(env)
    verdict = f"{'success' if success else 'failure'}: return {total:.2f} in {t} steps"
    last = _panel(
        image.shape[0], title=verdict, lines=[label], modules=modules, weights=None, colour=WIN if success else LOSS
    )
    frames.append(_beside(image, last))
    episode = ShownEpisode(
        task=task, seed=seed, length=t, total_return=total, success=success, weights=np.array(rows) if rows else None
    )
    return frames, episode


def render_strips(
    run_dir: Path,
    out_dir: Path,
    *,
    tasks: int = 4,
    frames: int = 5,
    seed: int = EVAL_SEED_BASE,
    device: str = "cpu",
) -> list[tuple[str, Path, ShownEpisode]]:
    """For the first ``tasks`` tasks of ``run_dir``'s suite, one greedy episode (the first evaluation seed) by the
    newest verified checkpoint as a strip PNG ``out_dir/<task>.png`` (characters other than letters, digits, ``.``,
    ``_``, ``-`` replaced by ``_``): ``frames`` frames evenly spaced over the
    episode, each beside the router's weights at that step, then the outcome. Written atomically; existing strips
    are replaced (they belong to the report being rebuilt). Returns ``(task, path, episode)`` per strip.

    Raises:
        Whatever :func:`~modrl.agents.common.evaluation.load_run_policy` raises for the run directory.
    """
    config, policy, checkpoint = load_run_policy(run_dir, device=device)
    suite = get_suite(config.env.suite)
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in suite.task_names[:tasks]:
        env = make_suite_env(suite, suite.task_index(name), render_mode="rgb_array", **env_options(config))
        try:
            header = f"{name} | step {checkpoint.step} | greedy"
            played, episode = _play(
                env, policy, task=name, header=header, label="episode 1", seed=seed, deterministic=True
            )
        finally:
            env.close()
        steps = played[:-1]
        picks = sorted({round(i * (len(steps) - 1) / max(frames - 1, 1)) for i in range(frames)}) if steps else []
        chosen = [steps[i] for i in picks] + [played[-1]]
        height = max(f.shape[0] for f in chosen)
        padded = [np.pad(f, ((0, height - f.shape[0]), (0, 8), (0, 0)), constant_values=255) for f in chosen]
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)
        path = out_dir / f"{stem}.png"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".png", dir=out_dir)
        os.close(fd)
        try:
            Image.fromarray(np.concatenate(padded, axis=1)).save(tmp, format="PNG")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append((name, path, episode))
    return written


def show_tag(task: str, *, deterministic: bool) -> str:
    """The TensorBoard image tag of ``modrl show --tensorboard``'s GIF of ``task``."""
    return f"modrl/show/{task}/{'greedy' if deterministic else 'sampled'}"


def _gif_to_tensorboard(run_dir: Path, gif: Path, tag: str, step: int) -> None:
    """Put the GIF file ``gif`` into ``run_dir/tb`` (a new event file) as the image ``tag`` at ``step``."""
    with Image.open(gif) as image:
        width, height = image.size
    with TelemetryWriter(run_dir / "tb") as writer:
        writer.log_animation(tag, gif.read_bytes(), height=height, width=width, step=step)


def _write_gif(frames: Sequence[np.ndarray], out: Path, *, frame_ms: int) -> None:
    height = max(f.shape[0] for f in frames)
    width = max(f.shape[1] for f in frames)
    images = [
        Image.fromarray(np.pad(f, ((0, height - f.shape[0]), (0, width - f.shape[1]), (0, 0)), constant_values=255))
        for f in frames
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".gif", dir=out.parent)
    os.close(fd)
    try:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
