"""Short names for grid points: what tells one trial group from the others.

A grid key may take whole config sections as values (``grid: {agent: [{...}, {...}]}``, the way to pair keys that a
product grid cannot). Written out in full, such a value makes trial ids and report labels that differ only in a hash
or somewhere past the first hundred characters. :func:`distinguishing_items` keeps, of a section value, only the
dotted leaves in which the grid's values of that key differ; scalar values are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_MISSING = object()  # a leaf one section has and another lacks differs


def distinguishing_items(groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each group of ``groups`` (``{key: value}`` grid points) with section values cut to their differing leaves.

    ``{"agent": {"router": {"condition": "task"}, "latent_dim": 64}}`` among groups whose ``agent`` sections differ
    only in the router's condition becomes ``{"agent.router.condition": "task"}``. Scalar (and list) values are kept
    unchanged, so grids without section values name their points exactly as written; a section whose leaves are
    the same in every group contributes nothing. Order: the group's keys, then each section's leaves in order.
    """
    flat = [{key: _leaves(value) if isinstance(value, Mapping) else None for key, value in g.items()} for g in groups]
    result = []
    for group, leaves in zip(groups, flat, strict=True):
        items: dict[str, Any] = {}
        for key, value in group.items():
            own = leaves[key]
            if own is None:
                items[key] = value
                continue
            for leaf, leaf_value in own.items():
                others = [other.get(key) or {} for other in flat]
                if any(o.get(leaf, _MISSING) != leaf_value for o in others):
                    items[f"{key}.{leaf}"] = leaf_value
        result.append(items)
    return result


def _leaves(section: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_leaves(value, f"{name}."))
        else:
            out[name] = value
    return out
