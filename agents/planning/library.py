"""Option libraries as the planner uses them: loaded frozen with their termination predicates
(:func:`load_library`, :func:`load_libraries` for an ensemble), and found from what a user names on the command line
(:func:`find_library`: a ``modrl options train`` run or its ``options/`` directory; :func:`run_suite`: the suite a run
trained on; :func:`config_suite`: the suite of a config file, ``env.ids`` included), and put together from several
runs (:func:`merge_libraries`, ``modrl options merge``). Imports no stable_baselines3: the PPO controller
(:mod:`modrl.agents.options.ppo_controller`) and skill cloning load libraries through here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from modrl.config import ConfigError
from modrl.envs.grammar import VERBS, parse_subtask
from modrl.envs.subtask_symbols import drop_predicate, effect_predicate, symbol_predicate
from modrl.envs.suites import ids_suite
from modrl.options import OptionLibrary, Predicate, ensemble_library
from modrl.options.library import INDEX_FILE
from modrl.runs import RunDirError, read_run_config


def library_predicates(names: Sequence[str]) -> dict[str, Predicate]:
    """Termination predicates by option name: a verb's effect for parameterised options (named by their verb), "not
    carried any more" for a ``drop`` skill option, the subtask's effect for one-per-symbol options (named by their
    subtask, e.g. ``pickup-red-key``)."""
    out: dict[str, Predicate] = {}
    for name in names:
        if name in VERBS:
            out[name] = effect_predicate(name)
        elif name == "drop":
            out[name] = drop_predicate
        else:
            out[name] = symbol_predicate(parse_subtask(name))
    return out


def load_library(directory: str) -> OptionLibrary:
    """The frozen option library in ``directory`` with its termination predicates attached."""
    library = OptionLibrary.load(directory, frozen=True)
    for name, predicate in library_predicates(library.names).items():
        library.get(name).termination_predicate = predicate
    return library


def load_libraries(directory: str, ensemble: Sequence[str] = ()) -> OptionLibrary:
    """:func:`load_library` of ``directory``, or with ``ensemble`` (more library directories trained for the same
    skills) the ensemble of all of them (:func:`modrl.options.ensemble_library`). Building the options draws initial
    weights: from a fork of torch's RNG, so the caller's RNG state is left alone.

    Raises:
        ValueError: A directory is not a loadable option library.
    """
    with torch.random.fork_rng(devices=[]):
        library = load_library(directory)
        if ensemble:
            library = ensemble_library([library, *(load_library(path) for path in ensemble)])
    return library


def find_library(run_dir: Path) -> tuple[Path, Path]:
    """``(library directory, run directory its results go to)`` for RUN_DIR or a library directory.

    Raises:
        RunDirError: Neither holds an option library; the message says what RUN_DIR is and what to give instead.
    """
    if (run_dir / INDEX_FILE).is_file():  # a library directory: results go to the run around it, if any
        return run_dir, run_dir.parent if (run_dir.parent / "config.yaml").is_file() else run_dir
    if (run_dir / "options" / INDEX_FILE).is_file():
        return run_dir / "options", run_dir
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such directory")
    config = read_run_config(run_dir) if (run_dir / "config.yaml").is_file() else {}
    if "agent" in config:
        raise RunDirError(
            f"{run_dir} is a 'modrl train' run and has no options to plan with; --planner evaluates "
            "the option library of a 'modrl options train' run, or give --scripted --suite NAME"
        )
    hint = (
        f" (its router's library is {config['library']}: give that)" if isinstance(config.get("library"), str) else ""
    )
    raise RunDirError(
        f"{run_dir} holds no option library (no options/{INDEX_FILE}){hint}; give a 'modrl options "
        "train' run directory or its options/ directory"
    )


def run_suite(run_dir: Path) -> str | None:
    """The suite named by ``run_dir``'s ``config.yaml`` (``env.suite``, or ``suite`` for ``modrl options skills``
    runs; ``env.ids``: their ``ids-<hash>`` suite, registered here), if any."""
    if not (run_dir / "config.yaml").is_file():
        return None
    config = read_run_config(run_dir)
    env = config.get("env")
    if isinstance(env, dict) and env.get("ids"):
        return ids_suite(env["ids"]).name
    suite = env.get("suite") if isinstance(env, dict) else config.get("suite")
    return suite if isinstance(suite, str) else None


def config_suite(path: Path) -> str:
    """The suite of an experiment config file (``modrl train``'s YAML): ``env.ids`` as their ``ids-<hash>`` suite
    (registered here, so that later look-ups of that name find it), else ``env.suite``.

    Raises:
        modrl.config.ConfigError: The file is not a valid experiment config, or an id is not registered (the module
            that registers it needs ``--import MODULE``).
    """
    from modrl.agents.common.config import load_experiment_config

    env = load_experiment_config(path).env
    try:
        return ids_suite(env.ids).name if env.ids else env.suite
    except ConfigError as exc:
        raise ConfigError(f"{path}: env.{exc}") from None


@dataclass(frozen=True, kw_only=True)
class MergedLibraries:
    """What :func:`merge_libraries` gives back.

    Attributes:
        library: Every source's options in one library, all frozen.
        origin: Option name -> the source (as given) it came from.
        first_run: The run directory around the first source's library (its ``config.yaml``, if any, names the
            suite the options were trained on).
    """

    library: OptionLibrary
    origin: dict[str, Path]
    first_run: Path


def merge_libraries(sources: Sequence[Path]) -> MergedLibraries:
    """The options of the libraries of ``sources`` (run directories or library directories) in one frozen library.

    Raises:
        RunDirError: A source holds no option library.
        ValueError: An option name is in two sources, or an option reads other inputs than the others (another
            view size, other argument words).
    """
    merged, origin = OptionLibrary(), dict[str, Path]()
    found = [find_library(source) for source in sources]  # (library directory, the run around it)
    for source, (directory, _) in zip(sources, found, strict=True):
        library = OptionLibrary.load(directory, frozen=True)
        for name in library.names:
            if name in merged:
                raise ValueError(f"option {name!r} is in both {origin[name]} and {source}; merge each name once")
            origin[name] = source
            merged.add(name, library.get(name))  # ValueError when it reads other inputs than the others
    merged.freeze(merged.names)
    return MergedLibraries(library=merged, origin=origin, first_run=found[0][1])
