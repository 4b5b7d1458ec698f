"""Commands printed for the user to run next (``tensorboard --logdir …``, ``modrl train --resume …``), spelled so
they work from the user's shell (imports nothing of modrl)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def runnable(program: str) -> str:
    """``program`` as the user can type it: the bare name when the shell's ``PATH`` finds this environment's copy,
    else the full path of the one installed beside this Python (``.venv/bin/tensorboard`` after
    ``scripts/quickstart.sh`` without an activated virtualenv), else the bare name."""
    beside = Path(sys.executable).parent / program
    if not beside.is_file():
        return program
    found = shutil.which(program)
    if found is not None and os.path.realpath(found) == os.path.realpath(beside):
        return program
    return str(beside)


def tensorboard_line(tb_dir: Path, name: str) -> str:
    """``TensorBoard: tensorboard --logdir_spec NAME:TB_DIR`` (the run listed under its own name, not ``.``) and the
    parent directory to compare it with its neighbours."""
    tensorboard = runnable("tensorboard")
    return (
        f"TensorBoard: {tensorboard} --logdir_spec {name}:{tb_dir}\n"
        f"  (beside the other runs there: {tensorboard} --logdir {tb_dir.parent.parent})"
    )
