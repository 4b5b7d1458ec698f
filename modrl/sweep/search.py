"""Search spaces of a sweep file: Ray Tune's ``grid_search``, ``choice``, ``uniform`` and ``loguniform``.

In a sweep file, ``search`` maps config keys to one-key mappings::

    search:
      algo.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}   # exp(uniform(log low, log high))
      algo.ent_coef: {uniform: [0.0, 0.02]}                 # uniform in [low, high)
      agent.router.kind: {choice: [soft, topk]}             # one of the values, equally likely
      agent.kind: {grid: [modular, monolithic]}            # every value (as in ``grid``)
    samples: 4            # draws of the sampled keys, each crossed with every grid point
    search_seed: 0        # the draws are reproducible: same file, same trials

Values are drawn when the sweep directory is created (with numpy's PCG64 seeded by ``search_seed``, the way Tune's
``BasicVariantGenerator`` draws them), so ``trials.json`` holds every trial's exact values, ``--resume`` needs no
Tune state, and the same trials run on every backend. With ``scheduler: {kind: pbt}`` the sampled keys are also
what Population Based Training perturbs while the trials run (:mod:`modrl.sweep.tune_backend`). Nothing here
imports ray.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modrl.config import check
from modrl.safe_load import short_repr

DomainKind = Literal["grid", "choice", "uniform", "loguniform"]
#: The one-key forms a ``search`` entry may take.
DOMAIN_KINDS: tuple[str, ...] = ("grid", "choice", "uniform", "loguniform")


@dataclass(frozen=True)
class Domain:
    """One searched key.

    Attributes:
        kind: ``grid`` (every value), ``choice`` (one value drawn per sample), ``uniform`` / ``loguniform`` (a float
            drawn from ``[low, high)``, uniformly or log-uniformly).
        values: The values of ``grid`` and ``choice`` (distinct, non-empty); ``(low, high)`` of the float kinds.
    """

    kind: DomainKind
    values: tuple[Any, ...]

    @property
    def sampled(self) -> bool:
        """Drawn per sample (every kind but ``grid``)."""
        return self.kind != "grid"

    def draw(self, rng: np.random.Generator) -> Any:
        """One value (``choice``, ``uniform``, ``loguniform``) as a plain Python value; floats are rounded to 6
        significant digits (readable trial ids and config values, far below any tuning resolution)."""
        if self.kind == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        low, high = self.values
        if self.kind == "uniform":
            return float(f"{rng.uniform(low, high):.6g}")
        if self.kind == "loguniform":
            return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.6g}")
        raise ValueError(f"a {self.kind} domain is not sampled")

    def to_dict(self) -> dict[str, list[Any]]:
        """The sweep-file form, ``{kind: [values]}``."""
        return {self.kind: list(self.values)}


def parse_domain(value: Any, where: str) -> Domain:
    """A :class:`Domain` from its sweep-file form.

    Raises:
        ConfigError: Not a one-key mapping of a known kind, an empty or repeated list, bounds that are not two
            finite numbers with ``low < high`` (``low > 0`` for ``loguniform``); the message names ``where``.
    """
    kinds = ", ".join(DOMAIN_KINDS)
    check(
        isinstance(value, Mapping) and len(value) == 1,
        where,
        f"expected one of {{{kinds}}}: [...], e.g. {{loguniform: [1.0e-4, 1.0e-3]}}; got {short_repr(value)}",
    )
    ((kind, args),) = value.items()
    check(kind in DOMAIN_KINDS, where, f"unknown search space {short_repr(kind)}; allowed: {kinds}")
    check(isinstance(args, list), f"{where}.{kind}", f"expected a list, got {short_repr(args)}")
    if kind in ("grid", "choice"):
        check(len(args) > 0, f"{where}.{kind}", "needs at least one value")
        for i, item in enumerate(args):
            check(item not in args[:i], f"{where}.{kind}", f"value {short_repr(item)} is listed twice")
        return Domain(kind, tuple(args))
    numbers = len(args) == 2 and all(_is_finite_number(a) for a in args)
    check(numbers, f"{where}.{kind}", f"expected [low, high], two finite numbers; got {short_repr(args)}")
    low, high = float(args[0]), float(args[1])
    check(low < high, f"{where}.{kind}", f"low must be below high, got [{low}, {high}]")
    check(kind != "loguniform" or low > 0, f"{where}.{kind}", f"bounds must be > 0, got [{low}, {high}]")
    return Domain(kind, (low, high))


def sample_points(
    grid: Mapping[str, Sequence[Any]], search: Mapping[str, Domain], *, samples: int, seed: int
) -> list[dict[str, Any]]:
    """Every trial point (seeds aside): the grid product (``grid`` keys, then ``search``'s grid keys, last fastest),
    repeated ``samples`` times, each repeat drawing the sampled keys afresh for every grid point.

    With no sampled key the repeats would be identical, so ``samples`` must then be 1 (checked by the spec).
    """
    axes = {key: tuple(values) for key, values in grid.items()}
    axes.update({key: domain.values for key, domain in search.items() if not domain.sampled})
    keys = list(axes)
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(samples):
        for combo in itertools.product(*(axes[key] for key in keys)):
            point = dict(zip(keys, combo, strict=True))
            for key, domain in search.items():
                if domain.sampled:
                    point[key] = domain.draw(rng)
            points.append(point)
    return points


def flatten_search(data: Mapping[str, Any]) -> dict[str, Any]:
    """``search`` flattened to dotted keys down to each search space."""
    out: dict[str, Any] = {}

    def visit(node: Mapping[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            check(isinstance(key, str), f"search.{prefix}{key}", "keys must be strings")
            dotted = f"{prefix}{key}"
            # A search space is a one-key mapping to a list ({uniform: [0, 1]}); any other mapping is a config section.
            if isinstance(value, Mapping) and not (len(value) == 1 and isinstance(next(iter(value.values())), list)):
                visit(value, dotted + ".")
                continue
            check(dotted not in out, f"search.{dotted}", "given twice")
            out[dotted] = value

    check(isinstance(data, Mapping), "search", f"expected a mapping of config keys, got {short_repr(data)}")
    visit(data, "")
    return out


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
