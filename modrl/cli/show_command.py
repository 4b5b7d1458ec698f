"""``modrl show RUN_DIR``: watch a trained agent, its routing beside every frame, as an animated GIF."""

from __future__ import annotations

import argparse
from pathlib import Path

from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, fail

NAME = "show"
MAX_EPISODES = 100


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl show`` on the top-level sub-parsers."""
    show = subparsers.add_parser(
        "show",
        help="render a trained run's episodes with the router's module weights beside each frame (GIF)",
        description="Render episodes of one task by a run's newest verified checkpoint (MiniGrid's rgb_array), each "
        "frame beside a panel with the action and the router's weight on every module at that step, into an "
        "animated GIF. Episodes use the evaluation seeds (1_000_000_000 + k), so they are the ones 'modrl eval' "
        "scores.",
    )
    show.add_argument("run_dir", type=Path, help="a run directory made by 'modrl train' or 'modrl continual'")
    show.add_argument("--task", help="the task to watch (default: the suite's first; 'modrl suite show' lists them)")
    show.add_argument("--episodes", type=int, default=1, help=f"episodes, 1 to {MAX_EPISODES} (default: 1)")
    show.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    show.add_argument(
        "--out", type=Path, help="the .gif to write, must not exist (default: RUN_DIR/show/TASK-stepN-EPISODESep.gif)"
    )
    show.add_argument(
        "--tensorboard",
        action="store_true",
        help="also put the GIF in the run's TensorBoard (Images dashboard, tag modrl/show/TASK/greedy|sampled, at "
        "the checkpoint's step)",
    )
    add_device_argument(show)


def run(args: argparse.Namespace) -> int:
    """``modrl show``: see :func:`add_parser`."""
    from modrl.checkpoint import CheckpointError
    from modrl.config import ConfigError
    from modrl.runs import RunDirError

    if not (args.run_dir / "config.yaml").is_file():
        return fail(f"{args.run_dir} is not a run directory (no config.yaml)")
    if not 1 <= args.episodes <= MAX_EPISODES:
        return fail(f"--episodes must be in [1, {MAX_EPISODES}], got {args.episodes}")
    if args.out is not None and args.out.suffix.lower() != ".gif":
        return fail(f"--out {args.out}: modrl show writes animated GIFs (.gif)")
    if args.out is not None and args.out.exists():
        return fail(f"--out {args.out} exists: give a new file name (an existing file is never overwritten)")
    device = device_or_fail(args)
    if isinstance(device, int):
        return device
    from modrl.agents.common.show import default_out, render_episodes, show_tag

    try:
        out = args.out or default_out(args.run_dir, args.task, args.episodes, stochastic=args.stochastic)
        shown = render_episodes(
            args.run_dir,
            out,
            task=args.task,
            episodes=args.episodes,
            deterministic=not args.stochastic,
            tensorboard=args.tensorboard,
            device=device,
        )
    except KeyError as exc:
        return fail(f"--task: {str(exc).strip(chr(39) + chr(34))}")
    except (CheckpointError, ConfigError, RunDirError, FileNotFoundError, FileExistsError, ValueError) as exc:
        return fail(str(exc), EXIT_ERROR)
    except OSError as exc:
        return fail(f"cannot write the GIF: {exc}", EXIT_ERROR)
    wins = sum(e.success for e in shown)
    print(f"wrote {out}: {len(shown)} episode(s), {wins} solved, {sum(e.length for e in shown)} frames")
    if args.tensorboard:
        tag = show_tag(shown[0].task, deterministic=not args.stochastic)
        print(f"TensorBoard: image {tag} in {args.run_dir / 'tb'} (Images dashboard)")
    return 0
