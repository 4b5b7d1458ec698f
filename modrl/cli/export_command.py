"""``modrl export RUN_DIR OUT.zip``: a run's policy as a Stable-Baselines3 zip (``PPO.load`` reads it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, fail

NAME = "export"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl export`` on the top-level sub-parsers."""
    export = subparsers.add_parser(
        "export",
        help="write a run's policy as a Stable-Baselines3 .zip (PPO.load / A2C.load read it)",
        description="Write the newest verified checkpoint of a 'modrl train' (or 'modrl continual') run as a "
        "Stable-Baselines3 model zip, for SB3's own tools (evaluate_policy, rl-zoo3-style scripts). SB3 zips pickle "
        "the policy class: load only files you trust; modrl's run directories stay pickle-free.",
    )
    export.add_argument("run_dir", type=Path, help="a run directory made by 'modrl train' or 'modrl continual'")
    export.add_argument("out", type=Path, help="the .zip file to write (must not exist)")
    add_device_argument(export)


def run(args: argparse.Namespace) -> int:
    """``modrl export``: see :func:`add_parser`."""
    from modrl.checkpoint import CheckpointError
    from modrl.config import ConfigError
    from modrl.runs import RunDirError

    if not (args.run_dir / "config.yaml").is_file():
        return fail(f"{args.run_dir} is not a run directory (no config.yaml)")
    if args.out.suffix != ".zip":
        return fail(f"{args.out}: an SB3 model file ends in .zip")
    if args.out.exists():
        return fail(f"{args.out} exists: give a new file name (an existing file is never overwritten)")
    device = device_or_fail(args)
    if isinstance(device, int):
        return device
    from modrl.agents.common.export import export_sb3_zip

    try:
        out, step = export_sb3_zip(args.run_dir, args.out, device=device)
    except (CheckpointError, ConfigError, RunDirError, FileNotFoundError, FileExistsError, ValueError) as exc:
        return fail(str(exc), EXIT_ERROR)
    except OSError as exc:
        return fail(f"cannot write {args.out}: {exc}", EXIT_ERROR)
    print(f"wrote {out} (checkpoint step {step}); load it with stable_baselines3's PPO.load / A2C.load")
    return 0
