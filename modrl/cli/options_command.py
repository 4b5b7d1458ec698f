"""``modrl options train`` (an option library from subtask events), ``modrl options route`` (a call-and-return
router over a saved library), ``modrl options critic`` (option-critic end to end), ``modrl options sketch``
(sketch-guided modules that learn when to stop) and ``modrl options skills`` (skill options cloned from the planner's
demonstrations): argument parsing hook and handlers."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, fail
from .hints import tensorboard_line

NAME = "options"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl options {train,route,critic,sketch,skills,merge}`` on the top-level sub-parsers."""
    options = subparsers.add_parser(
        "options",
        help="train options (subtask events, sketches, option-critic) and a router",
        description="Options: temporally extended skills (policy + termination + initiation).",
    )
    options_sub = options.add_subparsers(dest="options_command", required=True, metavar="OPTIONS_COMMAND")
    train = options_sub.add_parser(
        "train",
        help="train an option library (curriculum over options) into a new run directory",
        description="Train options one after another on single-subtask episodes (reward on the subtask's "
        "completion event), moving on when training success passes the curriculum threshold. Each option is saved "
        "alone under RUN_DIR/options/ as it finishes; RUN_DIR/results.md tables success on training and held-out "
        "arguments (e.g. experiments/options/colour_type.yaml).",
    )
    route = options_sub.add_parser(
        "route",
        help="train a call-and-return router over a saved option library",
        description="Train a PPO router whose action is an option call; each call runs its frozen option until its "
        "effect predicate holds (SMDP). Option choice, durations, termination rates and the task x option usage "
        "heatmap go to RUN_DIR/tb (e.g. experiments/options/route_sequences.yaml).",
    )
    critic = options_sub.add_parser(
        "critic",
        help="train K options and a policy over them end to end (PPO-style option-critic)",
        description="Option-critic: K options (policy + learned termination) and a policy over options trained "
        "together with PPO; termination_reg / deliberation_cost keep options from shrinking to one step. Option "
        "durations, termination rates and per-task option usage go to RUN_DIR/tb; the options are saved as a "
        "library under RUN_DIR/options (e.g. experiments/options/option_critic_tiny.yaml).",
    )
    sketch = options_sub.add_parser(
        "sketch",
        help="train modules guided by task sketches; each module learns when to stop",
        description="Sketch-guided training (Andreas et al., 2017): the task's sketch fixes which module runs; each "
        "module learns its policy and a STOP decision from the task reward, with a curriculum over sketch lengths. "
        "Modules are saved as an option library under RUN_DIR/options "
        "(e.g. experiments/options/sketch_sequences.yaml).",
    )
    skills = options_sub.add_parser(
        "skills",
        help="clone skill options from the planner's demonstrations on a suite's train split",
        description="Let the planner solve the train split's episodes with the scripted skills, cut every executed "
        "step into a demonstration of its skill (go to, pick up, drop, open), and behaviour-clone one parameterised "
        "option per skill, reading the whole grid; the library goes to RUN_DIR/options for 'modrl eval RUN_DIR "
        "--planner --split test' (e.g. experiments/options/hard_skills.yaml).",
    )
    merge = options_sub.add_parser(
        "merge",
        help="put the option libraries of several runs together in a new run directory",
        description="Load the option library of every SRC (SRC/options, or a library directory itself) and save all "
        "their options in RUN_DIR/options -- e.g. skills cloned in separate processes with "
        "'modrl options skills CONFIG --set skills=[open,putnext]'. Refused: an option name in two sources, options "
        "whose inputs differ (another view size, other argument words). RUN_DIR/config.yaml is the first run's "
        "config (so 'modrl eval RUN_DIR --planner' finds its suite) with the merged option names under 'skills'.",
    )
    merge.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="a run directory or a library directory")
    merge.add_argument("--run-dir", type=Path, required=True, help="run directory to create (refused if not empty)")
    for parser in (train, route, critic, sketch, skills):
        parser.add_argument("config", type=Path, help="options YAML (see experiments/options/)")
        parser.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set curriculum.threshold=0.9",
        )
        parser.add_argument("--run-dir", type=Path, help="exact run directory to create (refused if not empty)")
        parser.add_argument(
            "--runs-root", type=Path, default=Path("runs"), help="where new run directories go (default: runs)"
        )
    add_device_argument(train)  # route, critic, sketch and skills build their models on the CPU


def run(args: argparse.Namespace) -> int:
    """Dispatch ``modrl options train|route|critic|sketch|skills|merge``."""
    if args.options_command == "merge":
        return _merge(args.sources, args.run_dir)
    from modrl.agents.options.config import load_options_config, load_route_config
    from modrl.agents.options.critic_config import load_option_critic_config, load_sketch_config
    from modrl.agents.options.skill_cloning_config import load_skill_cloning_config
    from modrl.config import ConfigError, to_dict
    from modrl.runs import RunDirError, RunStatus, create_run_dir, set_status, write_run_metadata

    device = device_or_fail(args) if args.options_command == "train" else "cpu"
    if isinstance(device, int):
        return device
    try:
        loaders: dict[str, Any] = {
            "train": load_options_config,
            "route": load_route_config,
            "critic": load_option_critic_config,
            "sketch": load_sketch_config,
            "skills": load_skill_cloning_config,
        }
        config = loaders[args.options_command](args.config, args.overrides)
        run_dir = create_run_dir(root=args.runs_root, name=config.name, explicit=args.run_dir)
        argv = ["modrl", *sys.argv[1:]]
        write_run_metadata(
            run_dir, config=to_dict(config), seed=config.seed, argv=argv, imports=args.imports, device=device
        )
    except (ConfigError, RunDirError) as exc:
        return fail(" ".join(str(exc).split()))
    print(f"run directory: {run_dir}")
    started = time.monotonic()
    try:
        handler = {"train": _train, "route": _route, "critic": _critic, "sketch": _sketch, "skills": _skills}[
            args.options_command
        ]
        if args.options_command == "train":
            _train(config, run_dir, device=device)
        else:
            handler(config, run_dir)
    except ConfigError as exc:  # a setting found wrong only once the run looked (a skill its plans never call)
        set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return fail(" ".join(str(exc).split()))
    except (ValueError, OSError) as exc:
        set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return fail(str(exc), EXIT_ERROR)
    except BaseException as exc:
        set_status(run_dir, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    set_status(run_dir, RunStatus.COMPLETED, train_seconds=round(time.monotonic() - started, 1))
    if (run_dir / "tb").is_dir():  # skills write it only when PPO trains (finetune_steps)
        print(tensorboard_line(run_dir / "tb", run_dir.name))
    return 0


def _merge(sources: list[Path], run_dir: Path) -> int:
    from modrl.agents.planning.library import merge_libraries
    from modrl.options.library import LIBRARY_DIR
    from modrl.runs import RunDirError, RunStatus, create_run_dir, read_run_config, set_status, write_run_metadata

    try:
        merged = merge_libraries(sources)
        first = merged.first_run
        config = read_run_config(first) if (first / "config.yaml").is_file() else {}
        config = {**config, "skills": merged.library.names}
        run_dir = create_run_dir(root=run_dir.parent, name="merge", explicit=run_dir)
        write_run_metadata(run_dir, config=config, seed=int(config.get("seed", 0)), argv=["modrl", *sys.argv[1:]])
    except (ValueError, OSError, RunDirError) as exc:
        return fail(" ".join(str(exc).split()))
    merged.library.save(run_dir / LIBRARY_DIR)
    set_status(run_dir, RunStatus.COMPLETED, merged_from=[str(s) for s in sources])
    names = ", ".join(f"{n} from {merged.origin[n]}" for n in merged.library.names)
    print(f"option library: {run_dir / LIBRARY_DIR} ({names})")
    print(f"evaluate: modrl eval {run_dir} --planner --split test")
    return 0


def _train(config: Any, run_dir: Path, device: str = "cpu") -> None:
    from modrl.agents.options.train import LIBRARY_DIR, train_options
    from modrl.agents.options.train_results import format_results
    from modrl.telemetry import TelemetryWriter

    with TelemetryWriter(run_dir / "tb") as writer:
        results = train_options(config, run_dir, writer=writer, device=device)
    print(format_results(results))
    print(f"option library: {run_dir / LIBRARY_DIR}")


def _skills(config: Any, run_dir: Path) -> None:
    from modrl.agents.options.skill_cloning import LIBRARY_DIR, train_skill_library
    from modrl.agents.options.skill_results import format_skill_results

    recording, results = train_skill_library(config, run_dir)
    print(format_skill_results(recording, results))
    print(f"option library: {run_dir / LIBRARY_DIR}")
    print(f"evaluate: modrl eval {run_dir} --planner --split test")


def _route(config: Any, run_dir: Path) -> None:
    from modrl.agents.options.ppo_controller import run_controller
    from modrl.telemetry import TelemetryWriter

    with TelemetryWriter(run_dir / "tb") as writer:
        result = run_controller(config, run_dir, writer=writer)
    print(f"router trained: {result.frames} frames, {result.decisions} decisions over {len(result.calls)} option calls")
    for split in result.splits:
        greedy, sampled, tasks = result.split_means(split)
        print(
            f"{split:>5}: success {greedy:.2f} deterministic / {sampled:.2f} sampled router over {tasks} tasks "
            f"({config.eval_episodes} episodes each)"
        )


def _critic(config: Any, run_dir: Path) -> None:
    from modrl.agents.options.critic import LIBRARY_DIR, run_option_critic
    from modrl.telemetry import TelemetryWriter

    with TelemetryWriter(run_dir / "tb") as writer:
        results = run_option_critic(config, run_dir, writer=writer)
    final = results.final
    duration, termination = (final.mean_duration, final.termination_prob) if final else (float("nan"), float("nan"))
    print(
        f"option-critic: {results.frames} frames, {config.num_options} options; last rollout: mean option "
        f"duration {duration:.2f} steps, termination prob {termination:.3f}"
    )
    _print_eval({"stoch": results.stoch, "det": results.det})
    print(f"option library: {run_dir / LIBRARY_DIR}")


def _sketch(config: Any, run_dir: Path) -> None:
    from modrl.agents.options.sketch import LIBRARY_DIR, run_sketch
    from modrl.telemetry import TelemetryWriter

    with TelemetryWriter(run_dir / "tb") as writer:
        results = run_sketch(config, run_dir, writer=writer)
    print(
        f"sketch-guided: {results.frames} frames, {len(results.modules)} modules; curriculum: "
        + ", ".join(f"{s.name} {'passed' if s.passed else 'budget spent'}" for s in results.curriculum)
    )
    _print_eval({"stoch": results.stoch, "det": results.det})
    print(f"option library: {run_dir / LIBRARY_DIR}")


def _print_eval(tables: dict[str, Any]) -> None:
    """``stoch`` / ``det`` mean success over the tasks of each table (task -> a result with ``success``)."""
    for mode, rows in tables.items():
        if rows:
            mean = sum(r.success for r in rows.values()) / len(rows)
            print(f"{mode:>5}: success {mean:.2f} over {len(rows)} tasks")
