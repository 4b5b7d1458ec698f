"""Training state that is not a module's weights: optimizer state and global RNG states, split for checkpoints.

Each ``capture``/``flatten`` function returns ``(tensors, data)``: ``tensors`` go into a ``<group>.safetensors``
member of a checkpoint and ``data`` into its ``state.json`` (see :mod:`modrl.checkpoint`); the matching
``restore``/``unflatten`` function takes them back and refuses anything malformed with
:class:`~modrl.checkpoint.CheckpointError`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modrl.checkpoint import CheckpointError


def flatten_optimizer_state(state_dict: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split a ``torch.optim`` state_dict into tensors (for safetensors) and JSON-able data (for ``state.json``).

    Tensors are keyed ``state.<param index>.<name>`` (e.g. Adam's ``exp_avg``, ``(*param shape)``, and ``step``,
    ``()``) and ``param_groups.<group index>.<name>``; all other values, param_groups included, go to ``data``
    (tuples such as Adam's ``betas`` come back as lists, which torch's optimizers accept).

    Raises:
        TypeError, ValueError: A non-tensor value that JSON cannot hold (NaN/inf included).
    """
    tensors: dict[str, Tensor] = {}

    def split(entries: Mapping[Any, Any], prefix: str) -> dict[str, Any]:
        out = {}
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}.{key}"] = value
            else:
                out[str(key)] = value
        return out

    state = {str(pid): split(entry, f"state.{pid}") for pid, entry in state_dict["state"].items()}
    groups = [split(group, f"param_groups.{i}") for i, group in enumerate(state_dict["param_groups"])]
    data = json.loads(json.dumps({"state": state, "param_groups": groups}, allow_nan=False))
    return tensors, data


def unflatten_optimizer_state(tensors: Mapping[str, Tensor], data: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`: a state_dict for ``optimizer.load_state_dict``.

    Raises:
        CheckpointError: ``tensors``/``data`` do not form an optimizer state.
    """
    try:
        state = {int(pid): dict(entry) for pid, entry in data["state"].items()}
        groups = [dict(group) for group in data["param_groups"]]
        for key, value in tensors.items():
            kind, index, name = key.split(".", 2)
            if kind == "state":
                state.setdefault(int(index), {})[name] = value
            elif kind == "param_groups":
                groups[int(index)][name] = value
            else:
                raise ValueError(f"unexpected tensor key {key!r}")
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise CheckpointError(f"optimizer state cannot be rebuilt: {exc!r}") from None
    return {"state": state, "param_groups": groups}


def capture_rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Global RNG states: torch CPU, numpy's legacy global ``np.random`` and python's ``random``.

    Returns:
        ``tensors`` (``torch_cpu`` ``(N,) uint8``, ``numpy_keys`` ``(624,) int64``, ``python_state`` ``(625,) int64``)
        and JSON-able ``data`` (numpy position and cached gaussian, python version and ``gauss_next``).
    """
    algorithm, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    tensors = {
        "torch_cpu": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "python_state": torch.tensor(internal, dtype=torch.int64),
    }
    data = {
        "numpy": {"algorithm": algorithm, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "gauss_next": gauss_next},
    }
    return tensors, data


def restore_rng_state(tensors: Mapping[str, Tensor], data: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured; all three states are checked before any is set.

    Raises:
        CheckpointError: Missing or malformed state (nothing is changed then).
    """
    try:
        torch_state = tensors["torch_cpu"]
        if torch_state.dtype != torch.uint8:
            raise ValueError(f"torch_cpu must be uint8, got {torch_state.dtype}")
        np_data, py_data = data["numpy"], data["python"]
        np_keys = tensors["numpy_keys"].numpy().astype(np.uint32)
        np_state = (np_data["algorithm"], np_keys, int(np_data["pos"]), int(np_data["has_gauss"]), np_data["cached"])
        py_internal = tuple(int(v) for v in tensors["python_state"].tolist())
        py_state = (int(py_data["version"]), py_internal, py_data["gauss_next"])
        torch.Generator().set_state(torch_state)  # validate all three on throwaway generators first
        np.random.RandomState().set_state(np_state)
        random.Random().setstate(py_state)
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"rng state cannot be restored: {exc!r}") from None
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)
