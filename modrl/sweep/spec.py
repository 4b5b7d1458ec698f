"""Sweep specs: a grid over experiment-config keys times seeds, expanded into trials.

A sweep spec is a small YAML file::

    name: modular-vs-monolithic
    base: ../configs/quickstart.yaml       # an experiment config, relative to this file
    seeds: {start: 0, count: 10}           # or a list: [0, 1, 2]
    grid:                                  # config key -> list of values (may be empty)
      agent.kind: [modular, monolithic]
      env.suite: [minigrid-tiny, minigrid-doorkey]
    set:                                   # applied to every trial
      train.total_timesteps: 50000
    workers: null                          # null: one trial per CPU core (per N for train.workers: N)
    backend: local                         # or ray, or tune (Ray Tune's Tuner)
    search: {algo.learning_rate: {loguniform: [1.0e-4, 1.0e-3]}}   # Tune-style search spaces (modrl.sweep.search)
    samples: 4                             # draws of the sampled keys
    search_seed: 0
    scheduler: {kind: asha}                # backend tune only: asha or pbt (modrl.sweep.scheduling)

Nested mappings are flattened to dotted keys (``grid: {agent: {kind: [a, b]}}`` is ``agent.kind: [a, b]``), so
``--set set.train.total_timesteps=1000`` works as an override of the spec. Each trial is run with the overrides
``key=value`` of its grid point, of ``set`` and ``seed=<seed>``; values are written so that the config loader
(which reads ``--set`` values) gives them back exactly. Whether a key exists in the experiment config is checked
by a validator the caller injects (:func:`validate_trials`): this package never imports the agents.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from modrl.config import ConfigError, apply_overrides, check, check_int, from_dict, load_yaml
from modrl.runs import RunDirError, validate_run_name
from modrl.safe_load import InputError, loads_yaml, short_repr

from .labels import distinguishing_items
from .scheduling import SchedulerSpec, parse_scheduler
from .search import Domain, flatten_search, parse_domain, sample_points

BackendName = Literal["local", "ray", "tune"]
BACKENDS: tuple[str, ...] = ("local", "ray", "tune")
MAX_SAMPLES = 10_000
SEED_KEY = "seed"
MAX_ID_LENGTH = 120

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._=-]+")
_REQUIRED = ("name", "base", "seeds")


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """A validated sweep: which trials to run and how.

    Attributes:
        name: Sweep name (a valid run name: names the sweep directory).
        base: Absolute path of the base experiment config.
        seeds: Seeds to run every grid point with (non-empty, distinct, >= 0).
        grid: Dotted config key -> the values to sweep (non-empty tuples of distinct values), in spec order.
        set: Dotted config key -> value applied to every trial (no key shared with ``grid``, no ``seed``).
        workers: Trials run at once; ``None`` is one per CPU core (one per N cores for trials that train on N
            processes, ``train.workers: N``).
        backend: ``"local"`` (subprocesses on this machine), ``"ray"`` (tasks on a Ray cluster) or ``"tune"`` (Ray
            Tune's ``Tuner``, with an optional scheduler).
        search: Dotted config key -> search space (:mod:`modrl.sweep.search`); no key shared with ``grid``/``set``.
        samples: Draws of the sampled ``search`` keys (1 unless some key is sampled).
        search_seed: Seed of those draws.
        scheduler: ASHA or PBT (``backend: tune`` only); ``None``: every trial runs its whole budget.
    """

    name: str
    base: Path
    seeds: tuple[int, ...]
    grid: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    set: Mapping[str, Any] = field(default_factory=dict)
    workers: int | None = None
    backend: BackendName = "local"
    search: Mapping[str, Domain] = field(default_factory=dict)
    samples: int = 1
    search_seed: int = 0
    scheduler: SchedulerSpec | None = None

    def __post_init__(self) -> None:
        try:
            validate_run_name(self.name)
        except RunDirError as exc:
            raise ConfigError(f"name: {exc}") from None
        check(isinstance(self.base, Path), "base", f"expected a path, got {self.base!r}")
        _check_seeds(self.seeds)
        for key, values in self.grid.items():
            _check_key(key, f"grid.{key}")
            check(key != SEED_KEY, f"grid.{key}", "sweep seeds with the 'seeds' key, not in the grid")
            check(isinstance(values, tuple), f"grid.{key}", f"expected a list of values, got {values!r}")
            check(len(values) > 0, f"grid.{key}", "needs at least one value")
            for i, value in enumerate(values):
                check(value not in values[:i], f"grid.{key}", f"value {value!r} is listed twice")
        for key in self.set:
            _check_key(key, f"set.{key}")
            check(key != SEED_KEY, f"set.{key}", "give seeds with the 'seeds' key, not in 'set'")
            check(key not in self.grid, f"grid.{key}", "also given in 'set': a key is either swept or fixed")
        if self.workers is not None:
            check(
                isinstance(self.workers, int) and not isinstance(self.workers, bool) and self.workers >= 1,
                "workers",
                f"expected an integer >= 1 or null, got {self.workers!r}",
            )
        check(self.backend in BACKENDS, "backend", f"{self.backend!r} is not allowed; allowed: {', '.join(BACKENDS)}")
        self._check_search()

    def _check_search(self) -> None:
        for key, domain in self.search.items():
            _check_key(key, f"search.{key}")
            check(key != SEED_KEY, f"search.{key}", "sweep seeds with the 'seeds' key, not in 'search'")
            check(isinstance(domain, Domain), f"search.{key}", f"expected a search space, got {domain!r}")
            for section in ("grid", "set"):
                check(key not in getattr(self, section), f"search.{key}", f"also given in '{section}'")
        check_int(self.samples, "samples", low=1, high=MAX_SAMPLES)
        check_int(self.search_seed, "search_seed", low=0, high=2**63 - 1)
        sampled = [key for key, domain in self.search.items() if domain.sampled]
        check(
            self.samples == 1 or bool(sampled),
            "samples",
            "repeats would be identical: no search key is sampled (choice, uniform or loguniform)",
        )
        if self.scheduler is None:
            return
        check(
            self.backend == "tune",
            "scheduler",
            f"{self.scheduler.kind} needs backend: tune (Ray Tune's Tuner); got backend {self.backend}",
        )
        if self.scheduler.kind == "pbt":
            check(bool(sampled), "search", "pbt perturbs the sampled search keys: give at least one")
            for key in sampled:
                check(
                    key.startswith("algo."),
                    f"search.{key}",
                    "pbt changes sampled keys while a trial trains, which only algo.* hyper-parameters allow "
                    "(any other key changes the network or the task)",
                )


@dataclass(frozen=True)
class TrialSpec:
    """One point of the grid with one seed.

    Attributes:
        id: Stable, readable, filesystem-safe identifier, e.g. ``t003-agent.kind=modular-seed=1``.
        group: The grid values of this trial (seed excluded): trials differing only in seed share it.
        seed: The trial's seed.
        overrides: ``key=value`` overrides for ``modrl train --set``: grid values, then ``set``, then the seed.
    """

    id: str
    group: dict[str, Any]
    seed: int
    overrides: tuple[str, ...]

    @property
    def run_dir(self) -> str:
        """The trial's run directory, relative to the sweep directory."""
        return f"trials/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        """The ``trials.json`` entry of this trial."""
        return {
            "id": self.id,
            "group": dict(self.group),
            "seed": self.seed,
            "overrides": list(self.overrides),
            "run_dir": self.run_dir,
        }


@dataclass(frozen=True, kw_only=True)
class _SweepFile:
    """The YAML schema of a sweep spec, before flattening and path resolution."""

    name: str
    base: str
    seeds: Any
    grid: dict[str, Any] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    backend: BackendName = "local"
    search: dict[str, Any] = field(default_factory=dict)
    samples: int = 1
    search_seed: int = 0
    scheduler: dict[str, Any] | None = None


def load_sweep_spec(path: Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read and validate a sweep spec YAML file.

    Args:
        path: The sweep spec file; ``base`` in it is relative to this file's directory.
        overrides: ``key=value`` overrides of the spec itself, e.g. ``workers=1`` or ``set.train.seed_offset=3``.

    Returns:
        The spec with ``base`` absolute, ``seeds`` expanded and ``grid`` / ``set`` flattened to dotted keys.

    Raises:
        ConfigError: Missing file, bad YAML, unknown key, wrong type, empty or duplicate seeds, a grid value that is
            not a list, a key both in ``grid`` and ``set``, ``seed`` in either, or a base config that does not
            exist; the message names the file and the key.
    """
    path = Path(path)
    try:
        data = _override_spec(load_yaml(path), overrides)
        return spec_from_dict(data, relative_to=path.resolve().parent, check_base=True)
    except ConfigError as exc:
        raise ConfigError(f"sweep spec {path}: {exc}") from None


def _override_spec(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``data`` with ``key=value`` overrides applied; under ``set`` and ``grid`` the rest of the key is one config
    key, so ``set.train.eval_episodes=5`` replaces the file's ``set: {train.eval_episodes: 100}`` (nested or dotted
    in the file alike) instead of adding the same key a second time."""
    sectioned = [item for item in overrides if item.split(".", 1)[0] in ("set", "grid", "search") and "=" in item]
    out = apply_overrides(data, [item for item in overrides if item not in sectioned])
    for item in sectioned:
        key, raw = item.split("=", 1)
        section, _, dotted = key.strip().partition(".")
        check(bool(dotted), section, f"override {item!r} names no config key: use {section}.KEY=VALUE")
        current = out.get(section) or {}
        check(isinstance(current, Mapping), section, f"expected a mapping of config keys, got {current!r}")
        flat = flatten_search(current) if section == "search" else _flatten(current, section, leaf_is_list=False)
        flat[dotted] = apply_overrides({}, [f"value={raw}"])["value"]  # parsed as every --set value is
        out[section] = flat
    return out


def spec_from_dict(data: Mapping[str, Any], *, relative_to: Path, check_base: bool = True) -> SweepSpec:
    """Build a :class:`SweepSpec` from a plain mapping (see :func:`load_sweep_spec`).

    Args:
        data: The spec as read from YAML.
        relative_to: Directory a relative ``base`` is resolved against.
        check_base: Require ``base`` to be an existing file (off when reading a sweep directory, which runs its
            own copy of the base config).
    """
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ConfigError(f"missing required key {missing[0]!r}; required keys: {', '.join(_REQUIRED)}")
    raw = from_dict(_SweepFile, data)
    check(bool(raw.base.strip()), "base", "must name an experiment config file")
    base = (relative_to / raw.base).resolve()
    if check_base:
        check(base.is_file(), "base", f"experiment config not found: {base}")
    return SweepSpec(
        name=raw.name,
        base=base,
        seeds=_parse_seeds(raw.seeds),
        grid={key: tuple(values) for key, values in _flatten(raw.grid, "grid", leaf_is_list=True).items()},
        set=_flatten(raw.set, "set", leaf_is_list=False),
        workers=raw.workers,
        backend=raw.backend,
        search={key: parse_domain(value, f"search.{key}") for key, value in flatten_search(raw.search).items()},
        samples=raw.samples,
        search_seed=raw.search_seed,
        scheduler=parse_scheduler(raw.scheduler),
    )


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """The plain (YAML-able) form of ``spec``, as written to a sweep directory's ``sweep.yaml``."""
    return {
        "name": spec.name,
        "base": str(spec.base),
        "seeds": list(spec.seeds),
        "grid": {key: list(values) for key, values in spec.grid.items()},
        "set": dict(spec.set),
        "workers": spec.workers,
        "backend": spec.backend,
        "search": {key: domain.to_dict() for key, domain in spec.search.items()},
        "samples": spec.samples,
        "search_seed": spec.search_seed,
        "scheduler": None if spec.scheduler is None else spec.scheduler.to_dict(),
    }


def expand(spec: SweepSpec) -> list[TrialSpec]:
    """All trials of ``spec``: the grid product (keys in spec order, last key fastest), with ``search``'s grid keys
    after ``grid``'s and, repeated ``samples`` times, its sampled keys drawn afresh (:func:`sample_points`), times
    the seeds.

    Seeds vary fastest, so the trials of one grid point are neighbours. Ids are ``t<index>-<key>=<value>-...
    -seed=<seed>`` (a section value named by its differing leaves: :func:`~modrl.sweep.labels.distinguishing_items`)
    with characters outside ``[A-Za-z0-9._=-]`` replaced by ``_`` and long ids shortened with a hash; the same spec
    always gives the same ids.
    """
    points = sample_points(spec.grid, spec.search, samples=spec.samples, seed=spec.search_seed)
    fixed = tuple(format_override(key, value) for key, value in spec.set.items())
    total = len(points) * len(spec.seeds)
    width = max(3, len(str(total - 1)))
    named_points = list(zip(points, distinguishing_items(points), strict=True))
    trials = []
    for index, ((group, names), seed) in enumerate(itertools.product(named_points, spec.seeds)):
        swept = tuple(format_override(key, value) for key, value in group.items())
        named = tuple(format_override(key, value) for key, value in names.items())
        trials.append(
            TrialSpec(
                id=_trial_id(index, width, named, seed),
                group=group,
                seed=seed,
                overrides=(*swept, *fixed, f"{SEED_KEY}={seed}"),
            )
        )
    return trials


def validate_trials(trials: Sequence[TrialSpec], validate: Callable[[Path, Sequence[str]], None], base: Path) -> None:
    """Check every trial's config before anything runs.

    Args:
        trials: The trials, e.g. from :func:`expand`.
        validate: Called as ``validate(base, trial.overrides)``; raises if the config is invalid (the CLI passes a
            function that builds the experiment config, whose errors name the key and the allowed keys).
        base: The base experiment config.

    Raises:
        ConfigError: The first failure, prefixed with the trial id and chained to the original error.
    """
    for trial in trials:
        try:
            validate(base, trial.overrides)
        except ConfigError as exc:
            raise ConfigError(f"trial {trial.id}: {exc}") from exc
        except Exception as exc:
            raise ConfigError(f"trial {trial.id}: {type(exc).__name__}: {exc}") from exc


def format_override(key: str, value: Any) -> str:
    """``key=value`` with ``value`` in YAML flow style, so that the config loader
    (:func:`modrl.safe_load.loads_yaml`) reads back exactly ``value``.

    Raises:
        ConfigError: ``value`` does not survive the round trip (names the key).
    """
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: value {value!r} cannot be written as YAML: {exc}") from None
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].rstrip()
    elif text.endswith("..."):
        text = text[: -len("...")].rstrip()
    try:
        same = "\n" not in text and loads_yaml(text, key) == value
    except InputError:
        same = False
    check(same, key, f"value {short_repr(value)} does not round-trip as YAML")
    return f"{key}={text}"


def _trial_id(index: int, width: int, swept: Sequence[str], seed: int) -> str:
    text = "-".join([f"t{index:0{width}d}", *swept, f"{SEED_KEY}={seed}"])
    text = _UNSAFE_ID_CHARS.sub("_", text)
    if len(text) > MAX_ID_LENGTH:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
        text = f"{text[: MAX_ID_LENGTH - len(digest) - 1]}-{digest}"
    return text


def _check_key(key: Any, where: str) -> None:
    check(isinstance(key, str) and _KEY_RE.fullmatch(key) is not None, where, "expected a dotted config key")


def _check_seeds(seeds: Any) -> None:
    check(isinstance(seeds, tuple), "seeds", f"expected a list of integers, got {seeds!r}")
    check(len(seeds) > 0, "seeds", "needs at least one seed")
    for i, seed in enumerate(seeds):
        ok = isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0
        check(ok, f"seeds[{i}]", f"expected an integer >= 0, got {seed!r}")
        check(seed not in seeds[:i], "seeds", f"seed {seed} is listed twice")


def _parse_seeds(value: Any) -> tuple[int, ...]:
    """A list of seeds, or ``{start: a, count: n}`` for ``a, a+1, ..., a+n-1``."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"start", "count"})
        check(not unknown, f"seeds.{unknown[0] if unknown else ''}", "unknown key; allowed keys in seeds: count, start")
        check("count" in value, "seeds.count", "missing; give {start: first seed, count: number of seeds}")
        start, count = value.get("start", 0), value["count"]
        for name, number in (("start", start), ("count", count)):
            ok = isinstance(number, int) and not isinstance(number, bool)
            check(ok, f"seeds.{name}", f"expected an integer, got {number!r}")
        check(count >= 1, "seeds.count", f"needs at least one seed, got {count}")
        return tuple(range(start, start + count))
    check(isinstance(value, list), "seeds", f"expected a list of integers or {{start, count}}, got {value!r}")
    return tuple(value)


def _flatten(data: Mapping[str, Any], where: str, *, leaf_is_list: bool) -> dict[str, Any]:
    """Flatten nested mappings to dotted keys; in the grid every leaf must be a list of values."""
    out: dict[str, Any] = {}

    def visit(node: Mapping[Any, Any], prefix: str) -> None:
        for key, value in node.items():
            check(isinstance(key, str), f"{where}.{prefix}{key}", "keys must be strings")
            dotted = f"{prefix}{key}"
            if isinstance(value, Mapping):
                visit(value, dotted + ".")
                continue
            check(dotted not in out, f"{where}.{dotted}", "given twice")
            if leaf_is_list:
                check(isinstance(value, list), f"{where}.{dotted}", f"expected a list of values, got {value!r}")
            out[dotted] = value

    visit(data, "")
    return out
