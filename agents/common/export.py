"""A run's policy as a Stable-Baselines3 ``.zip``: what ``PPO.load`` / ``A2C.load`` read, for SB3's own tools
(``evaluate_policy``, rl-zoo3-style scripts).

modrl's run directories hold safetensors and JSON (no pickle on any load path); an SB3 zip pickles the policy class
and its arguments, so it is for handing a model to SB3 code, not for storing runs. Its policy class is modrl's own
(``modrl.agents.common.policies``): modrl must be installed where it is loaded.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from modrl.agents.common.builders import build_model, make_vec_env
from modrl.agents.common.evaluation import load_run_policy


def export_sb3_zip(run_dir: Path, out: Path, *, device: str = "cpu") -> tuple[Path, int]:
    """Write ``run_dir``'s newest verified checkpoint as an SB3 zip at ``out``; returns ``(out, checkpoint step)``.

    ``device``: where the model is rebuilt (SB3 moves it to its own ``device`` argument when ``PPO.load`` reads it).

    The model is rebuilt from the run's config (algorithm, hyper-parameters, policy) with the checkpoint's policy
    weights and ``num_timesteps``; the zip holds no optimiser state and no env. Written atomically.

    Raises:
        FileExistsError: ``out`` exists (never overwritten).
        ValueError: ``out`` does not end in ``.zip``.
        Whatever :func:`~modrl.agents.common.evaluation.load_run_policy` raises for the run directory.
    """
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"{out}: an SB3 model file ends in .zip")
    if out.exists():
        raise FileExistsError(f"{out} exists: give a new file name (an existing file is never overwritten)")
    config, policy, checkpoint = load_run_policy(run_dir, device=device)
    venv = make_vec_env(config)
    try:
        model = build_model(config, venv, device=device)
        model.policy.load_state_dict(policy.state_dict())
        model.num_timesteps = checkpoint.step
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".zip", dir=out.parent)
        os.close(fd)
        try:
            model.save(tmp)
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        venv.close()
    return out, checkpoint.step
