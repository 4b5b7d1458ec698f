"""The layout holds: the core imports no SB3, minigrid, ``modrl.envs`` or ``modrl.agents``; the package has no import
cycles; ``modrl.agents`` exports its public names; the CLI sets nothing and imports nothing heavy at import time.

Static checks read every import statement (lazy ones inside functions too: a lazy import is still a dependency);
dynamic checks import the modules in a fresh interpreter and look at ``sys.modules``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source folder -> the package it installs as (setup.cfg ``package_dir``).
PACKAGES = {"modrl": "modrl", "envs": "modrl.envs", "agents": "modrl.agents"}
#: What the core may never import, statically or at run time.
FORBIDDEN_IN_CORE = ("stable_baselines3", "minigrid", "modrl.envs", "modrl.agents")


def _modules() -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the three source folders."""
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (``TYPE_CHECKING`` blocks aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def _is_core(name: str) -> bool:
    return name == "modrl" or (
        name.startswith("modrl.") and not name.startswith(("modrl.envs", "modrl.agents", "modrl.cli"))
    )


def test_the_core_never_imports_sb3_minigrid_envs_or_agents_statically() -> None:
    bad = []
    for name, path in _modules().items():
        if not _is_core(name):
            continue
        for imported in _imports(name, path):
            if any(imported == f or imported.startswith(f + ".") for f in FORBIDDEN_IN_CORE):
                bad.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not bad, "\n".join(bad)


def _fresh_import(modules: list[str], extra: str = "") -> dict:
    code = (
        "import importlib, json, os, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"{extra}"
        "print(json.dumps({'modules': sorted(sys.modules), 'omp': os.environ.get('OMP_NUM_THREADS')}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_whole_core_loads_no_sb3_minigrid_envs_or_agents() -> None:
    core = [name for name in _modules() if _is_core(name)]
    loaded = _fresh_import(core)["modules"]
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_IN_CORE)]
    assert not leaked, f"importing the core loaded {leaked}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # A module's own package __init__ runs before it: not an edge of the cycle kind this test is after.
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {m for m in _imports(name, path) if m in modules and m != name and m not in parents}
    return graph


def test_the_package_has_no_import_cycles() -> None:
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a two-module and a three-module cycle are found, an acyclic graph passes."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_every_export_of_modrl_agents_resolves_to_its_sub_module() -> None:
    import modrl.agents as agents

    assert sorted(agents.__all__) == sorted(agents._EXPORTS), "__all__ and the export table disagree"
    for name in agents.__all__:
        value = getattr(agents, name)
        home = importlib.import_module(f"modrl.agents.{agents._EXPORTS[name]}")
        assert getattr(home, name) is value, f"{name} is not the object of {home.__name__}"
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("modrl.agents."), f"{name} is defined in {value.__module__}"
        assert name in dir(agents)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        agents.NoSuchThing  # noqa: B018


def test_every_public_class_of_the_agents_packages_is_exported() -> None:
    """A public class defined in ``agents/`` that a user constructs (a policy, extractor, config or result) is
    importable from ``modrl.agents``; the README's ``from modrl.agents import ModularActorCriticPolicy`` works."""
    from modrl.agents import MinigridFeaturesExtractor, ModularActorCriticPolicy, OptionActorCriticPolicy

    assert ModularActorCriticPolicy.__name__ == "ModularActorCriticPolicy"
    assert MinigridFeaturesExtractor.__name__ == "MinigridFeaturesExtractor"
    assert OptionActorCriticPolicy.__name__ == "OptionActorCriticPolicy"
    import modrl.agents as agents

    wanted_suffixes = ("Policy", "Extractor", "Config")
    missing = []
    for name, path in _modules().items():
        if not name.startswith("modrl.agents."):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.ClassDef)
                and not node.name.startswith("_")
                and node.name.endswith(wanted_suffixes)
                and node.name not in agents.__all__
                and _is_top_level_config(node, path)
            ):
                missing.append(f"{name}.{node.name}")
    assert not missing, f"public classes missing from modrl.agents.__all__: {missing}"


def _is_top_level_config(node: ast.ClassDef, path: Path) -> bool:
    """Configs that are sections of a larger config (``EnvConfig`` inside ``ExperimentConfig``) are reached through
    their parent; only configs with a ``load_*`` function of their own are a user's entry point."""
    if not node.name.endswith("Config"):
        return True
    text = path.read_text(encoding="utf-8")
    return f"-> {node.name}:" in text and "def load_" in text


def test_importing_modrl_agents_alone_loads_no_sb3() -> None:
    """The exports load on first use, so the SB3-free sub-packages stay SB3-free behind the package __init__."""
    loaded = _fresh_import(["modrl.agents"])["modules"]
    assert "stable_baselines3" not in loaded and "torch" not in loaded


def test_the_cli_imports_nothing_heavy_and_sets_nothing_at_import_time() -> None:
    found = _fresh_import(["modrl.cli.main"], extra="main = sys.modules['modrl.cli.main']\n")
    heavy = [m for m in ("torch", "stable_baselines3", "minigrid", "gymnasium", "numpy") if m in found["modules"]]
    assert not heavy, f"importing the CLI loaded {heavy}"
    assert found["omp"] is None, "importing the CLI set OMP_NUM_THREADS"


def test_every_cli_command_module_has_the_same_shape() -> None:
    from modrl.cli import main

    names = [command.NAME for command in main.COMMANDS]
    assert len(set(names)) == len(names)
    for command in main.COMMANDS:
        assert callable(command.add_parser) and callable(command.run), command.__name__
    assert set(names) == set(main.build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_the_config_schema_names_exactly_what_the_registries_hold() -> None:
    """Configs and ``modrl list`` read names from the torch-free schema; each must have one implementation."""
    import typing

    from modrl.agents.common.builders import ALGOS
    from modrl.agents.common.config import AgentConfig
    from modrl.agents.common.policies import AGENTS
    from modrl.composition import AGGREGATIONS
    from modrl.modules import ACTIVATION_NAMES, ACTIVATIONS, MODULE_KIND_NAMES, MODULE_KINDS
    from modrl.routers import ROUTER_KINDS, ROUTERS

    agent = typing.get_type_hints(AgentConfig)
    assert sorted(ROUTER_KINDS) == sorted(ROUTERS.names())
    assert sorted(MODULE_KIND_NAMES) == sorted(MODULE_KINDS.names())
    assert sorted(ACTIVATION_NAMES) == sorted(ACTIVATIONS)
    assert sorted(typing.get_args(agent["aggregation"])) == sorted(AGGREGATIONS.names())
    assert sorted(typing.get_args(agent["kind"])) == sorted(AGENTS.names())
    assert sorted(typing.get_args(agent["algo"])) == sorted(ALGOS.names())


def test_loading_a_config_and_modrl_list_import_no_torch() -> None:
    """A bad config is refused, and ``modrl list`` answers, before torch (seconds on a busy machine) is imported."""
    config = Path(__file__).resolve().parents[1] / "experiments" / "configs" / "quickstart.yaml"
    extra = (
        "from modrl.agents.common.config import load_experiment_config\n"
        f"load_experiment_config({str(config)!r})\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert sys.modules['modrl.cli.main'].main(['list']) == 0\n"
    )
    loaded = _fresh_import(["modrl.cli.main"], extra=extra)["modules"]
    assert "torch" not in loaded and "stable_baselines3" not in loaded


@pytest.mark.parametrize("package", ["modrl.modules", "modrl.routers"])
def test_the_lazy_core_packages_export_what_they_list(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        module.NoSuchThing  # noqa: B018
