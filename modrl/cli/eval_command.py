"""``modrl eval``: per-task success and return of a run's latest checkpoint, or (``--planner``) the planner with a
run's options (:mod:`modrl.cli.planner_eval_command`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import planner_eval_command
from .device_option import add_device_argument, device_or_fail
from .errors import EXIT_ERROR, fail

NAME = "eval"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``modrl eval`` on the top-level sub-parsers."""
    evaluate = subparsers.add_parser(
        "eval",
        help="evaluate a trained run per task (or the planner with a run's options: --planner)",
        description="Evaluate a run's latest checkpoint on every task of its suite with fixed evaluation seeds "
        "(disjoint from training seeds). Prints a table and writes JSON under RUN_DIR/eval/. With --planner, evaluate "
        "the planner (declared operators, A*, execution monitoring and re-planning) on every task of a suite split, "
        "its skills run by the options of a 'modrl options train' run (RUN_DIR/options, or a library directory "
        "itself), or by the scripted skills (--scripted --suite NAME, no RUN_DIR: the upper bound); results go to "
        "RUN_DIR/eval/planner-SPLIT[-stochastic][-fallback].json.",
    )
    evaluate.add_argument(
        "run_dir",
        nargs="?",
        type=Path,
        help="a run directory made by 'modrl train' (with --planner: by 'modrl "
        "options train|critic|sketch', or its option library directory)",
    )
    evaluate.add_argument("--episodes", type=int, default=100, help="episodes per task (default: 100)")
    evaluate.add_argument(
        "--split",
        help="evaluate one split of the suite (e.g. test) or all, side by side (default: all; with "
        "--planner: test if the suite has one, else train)",
    )
    evaluate.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions instead of the deterministic policy (with --planner: sample the options' actions)",
    )
    add_device_argument(evaluate)
    planner_eval_command.add_planner_arguments(evaluate)


def run(args: argparse.Namespace) -> int:
    """``modrl eval``: evaluate a run's latest checkpoint per task, or with ``--planner`` the planner over a run's
    option library (or the scripted skills)."""
    from modrl.agents.common.config import MAX_EVAL_EPISODES

    if not 1 <= args.episodes <= MAX_EVAL_EPISODES:
        return fail(f"--episodes must be in [1, {MAX_EVAL_EPISODES}], got {args.episodes}")
    from modrl.checkpoint import CheckpointError
    from modrl.config import ConfigError
    from modrl.runs import RunDirError

    from . import planner_eval_command

    if args.planner:
        return planner_eval_command.run(args)
    given = planner_eval_command.planner_only_flags(args)
    if given:
        return fail(f"{given[0]} needs --planner (modrl eval RUN_DIR --planner ...)")
    if args.run_dir is None:
        return fail("give RUN_DIR, a run directory made by 'modrl train'")
    if not (args.run_dir / "config.yaml").is_file():
        return fail(f"{args.run_dir} is not a run directory (no config.yaml)")
    device = device_or_fail(args)
    if isinstance(device, int):
        return device
    try:
        evaluate_and_report(
            args.run_dir,
            episodes=args.episodes,
            deterministic=not args.stochastic,
            split=args.split or "all",
            device=device,
        )
    except (CheckpointError, ConfigError, RunDirError, FileNotFoundError, ValueError) as exc:
        return fail(str(exc), EXIT_ERROR)
    return 0


def evaluate_and_report(
    run_dir: Path,
    *,
    episodes: int,
    deterministic: bool,
    split: str = "all",
    hparams: bool = False,
    device: str = "cpu",
) -> Path:
    """Evaluate ``run_dir``'s latest checkpoint, print the table and write the JSON under ``run_dir/eval/`` (and, with
    ``hparams``, the run's HParams entry in TensorBoard: the final evaluation of ``modrl train``)."""
    from modrl._io import atomic_write_json
    from modrl.agents.common.evaluation import evaluate_policy, format_report, load_run_policy, log_final_hparams

    config, policy, checkpoint = load_run_policy(run_dir, device=device)
    splits = None if split == "all" else [split]
    report = evaluate_policy(
        policy, config, episodes=episodes, deterministic=deterministic, step=checkpoint.step, splits=splits
    )
    print()
    print(format_report(report))
    out_dir = run_dir / "eval"
    out_dir.mkdir(exist_ok=True)
    mode = "det" if deterministic else "stoch"
    # Only evaluations of every split carry the plain name that `modrl report` reads.
    suffix = "" if split == "all" else f"-split-{split}"
    path = out_dir / f"step-{checkpoint.step:012d}-{mode}-{episodes}ep{suffix}.json"
    atomic_write_json(path, report.to_dict())
    print(f"results written to {path}")
    if hparams:
        log_final_hparams(run_dir, config, report)
    return path
