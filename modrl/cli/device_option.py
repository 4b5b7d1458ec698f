"""``--device auto|cpu|cuda`` for the commands that build or load models (imports no torch until resolved)."""

from __future__ import annotations

import argparse

from modrl.devices import DEVICE_CHOICES, DeviceError, resolve_device

from .errors import fail


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """Register ``--device`` (default ``cpu``: same results as before the flag existed, and small MiniGrid networks
    are not faster on a GPU than the CPU that steps the envs)."""
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="cpu",
        help="where models are built or loaded: auto (cuda if torch sees a GPU, else cpu), cpu, cuda (default: cpu)",
    )


def device_or_fail(args: argparse.Namespace) -> str | int:
    """The resolved device name, or (after one ``modrl: error:`` line) the exit code to return."""
    try:
        return resolve_device(args.device)
    except DeviceError as exc:
        return fail(str(exc))
