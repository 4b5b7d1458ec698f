"""Seed tables of a generalisation comparison: greedy and sampled train / held-out success, mission-ablation drop.

Each ``--group LABEL RUN [RUN ...]`` is one variant, its runs the seeds. A run's success per split is the mean over
that split's tasks of its evaluation JSONs (``eval/step-*-det-*ep.json``, the run's final greedy evaluation, and
``eval/step-*-stoch-*ep.json``, from ``modrl eval RUN --stochastic``; the newest step of each). Across a group's seeds
each cell is the IQM and the 95% bootstrap interval of the mean (:func:`modrl.stats.summarize`). The held-out/train
ratio is the ratio of the two means. ``--ablation FILE`` (``mission_ablation.py --out``) adds the drop true mission
minus other object's mission per split. Per group it also prints the parameter count (the policy the run's
``config.yaml`` builds), demonstration and RL frames (``meta.json``), the pre-training's CPU seconds
(``pretrain.json``), how specialised the routing of the greedy evaluation is (normalised task-module mutual
information, mean over seeds; smallest and largest top weight of a task), and the held-out success per verb and per
task (mean over seeds).

    python experiments/generalisation/seed_table.py --group factored SWEEP/trials/t00[0-4]* \\
        --group mission OTHER/trials/t00[0-4]* --ablation ablation.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from modrl.stats import summarize

SPLITS = ("train", "test")


def newest_eval(run_dir: Path, mode: str) -> dict[str, Any] | None:
    """The newest-step evaluation JSON of ``mode`` (``det`` or ``stoch``) in ``run_dir/eval``, or None."""
    files = sorted((run_dir / "eval").glob(f"step-*-{mode}-*ep.json"))
    if not files:
        return None
    return json.loads(max(files, key=lambda f: int(f.name.split("-")[1])).read_text())


def split_success(evaluation: Mapping[str, Any]) -> dict[str, float]:
    """Mean success over each split's tasks."""
    out: dict[str, list[float]] = {}
    for row in evaluation["tasks"]:
        out.setdefault(row["split"], []).append(float(row["success_rate"]))
    return {split: float(np.mean(values)) for split, values in out.items()}


def task_success(evaluation: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """``(split, task) -> success``."""
    return {(row["split"], row["task"]): float(row["success_rate"]) for row in evaluation["tasks"]}


def routing(evaluation: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """``(normalised task-module MI, smallest, largest top weight per task)`` of the evaluation's mean routing
    weights per task (:func:`modrl.routing_health.routing_health`, every task counted once); None without routing."""
    from modrl.routing_health import routing_health

    usage = [row["module_usage"] for row in evaluation["tasks"] if row.get("module_usage")]
    if not usage or len(usage) != len(evaluation["tasks"]):
        return None
    health = routing_health(np.array(usage), np.ones(len(usage)))
    return health.normalised_mi, float(np.min(health.top_share)), float(np.max(health.top_share))


def parameter_count(run_dir: Path) -> tuple[int, int]:
    """``(total, actor)`` parameters of the policy the run's config builds (actor: router + modules, or the
    monolithic policy MLP)."""
    from modrl.agents.common.builders import build_policy
    from modrl.agents.common.config import load_experiment_config

    policy, _, _ = build_policy(load_experiment_config(run_dir / "config.yaml"))
    total = sum(p.numel() for p in policy.parameters())
    modular = getattr(policy, "modular", None)
    actor_net = modular.network if modular is not None else policy.mlp_extractor.policy_net
    return total, sum(p.numel() for p in actor_net.parameters())


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def cell(values: Sequence[float]) -> str:
    """``IQM [low, high]`` over seeds (a single seed: its value, no interval)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    s = summarize(values)
    return f"{s.iqm:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"


def ratio(test: Sequence[float], train: Sequence[float]) -> str:
    return f"{np.mean(test) / np.mean(train):.2f}" if test and train and np.mean(train) > 0 else "-"


def verb(task: str) -> str:
    return task.split("-", 1)[0]


def group_rows(label: str, runs: Sequence[Path], ablation: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the tables print for one group of seeds."""
    success: dict[str, dict[str, list[float]]] = {mode: {s: [] for s in SPLITS} for mode in ("det", "stoch")}
    tasks: dict[str, dict[tuple[str, str], list[float]]] = {"det": {}, "stoch": {}}
    drops: dict[str, list[float]] = {s: [] for s in SPLITS}
    cpu, demo, rl, params, routes = [], set(), set(), set(), []
    for mode in ("det", "stoch"):
        lacking = [run for run in runs if newest_eval(run, mode) is None]
        if lacking and len(lacking) < len(runs):  # a statistic over fewer seeds than the table says
            raise SystemExit(
                f"seed_table.py: error: group {label!r}: {lacking[0]} has no eval/step-*-{mode}-*ep.json while other "
                f"runs of the group do; evaluate it (modrl eval RUN{' --stochastic' if mode == 'stoch' else ''})"
            )
    for run in runs:
        for mode in ("det", "stoch"):
            evaluation = newest_eval(run, mode)
            if evaluation is None:
                continue
            for split, value in split_success(evaluation).items():
                success[mode].setdefault(split, []).append(value)
            for key, value in task_success(evaluation).items():
                tasks[mode].setdefault(key, []).append(value)
            if mode == "det" and (route := routing(evaluation)) is not None:
                routes.append(route)
        frames = read_json(run / "meta.json").get("frames", {})
        demo.add(frames.get("demo"))
        rl.add(frames.get("rl"))
        pretrain = read_json(run / "pretrain.json")
        if "cpu_s" in pretrain:
            cpu.append(float(pretrain["cpu_s"]))
        params.add(parameter_count(run))
        rows = ablation.get(str(run.resolve())) or ablation.get(str(run))
        for split in SPLITS:
            if rows and split in rows:
                drops[split].append(rows[split]["true"] - rows[split]["other-object"])
    return dict(
        label=label,
        seeds=len(runs),
        success=success,
        tasks=tasks,
        drops=drops,
        cpu=cpu,
        demo=demo,
        rl=rl,
        params=params,
        routes=routes,
    )


def print_tables(groups: Sequence[Mapping[str, Any]]) -> None:
    print(
        "| variant | seeds | parameters: total / actor | demo frames | RL frames | pre-training CPU s (range) "
        "| routing: normalised MI, top weight per task |"
    )
    print("|---|---:|---|---|---|---|---|")
    for g in groups:
        params = ", ".join(f"{total:,} / {actor:,}" for total, actor in sorted(g["params"]))
        cpu = f"{np.mean(g['cpu']):.0f} ({min(g['cpu']):.0f}-{max(g['cpu']):.0f})" if g["cpu"] else "-"
        demo = ", ".join(f"{d:,}" for d in sorted(x for x in g["demo"] if x is not None)) or "-"
        rl = ", ".join(f"{r:,}" for r in sorted(x for x in g["rl"] if x is not None)) or "-"
        routes = g["routes"]
        route = (
            f"{np.mean([r[0] for r in routes]):.2f}, {min(r[1] for r in routes):.2f}-{max(r[2] for r in routes):.2f}"
            if routes
            else "-"
        )
        print(f"| {g['label']} | {g['seeds']} | {params} | {demo} | {rl} | {cpu} | {route} |")
    for mode, name in (("det", "greedy"), ("stoch", "sampled")):
        print(f"\n{name}: IQM [95% bootstrap CI of the mean] over seeds; mean; held-out/train ratio of the means\n")
        print("| variant | train IQM [CI] | test IQM [CI] | train mean | test mean | test/train |")
        print("|---|---|---|---:|---:|---:|")
        for g in groups:
            train, test = g["success"][mode]["train"], g["success"][mode]["test"]
            means = [f"{np.mean(v):.3f}" if v else "-" for v in (train, test)]
            print(f"| {g['label']} | {cell(train)} | {cell(test)} | {means[0]} | {means[1]} | {ratio(test, train)} |")
    how = "greedy, or sampled if mission_ablation.py ran with --stochastic"
    print(f"\nmission ablation, drop = true - other object's mission ({how}): IQM [CI] over seeds; per seed\n")
    print("| variant | train drop | test drop | test drops per seed |")
    print("|---|---|---|---|")
    for g in groups:
        per_seed = ", ".join(f"{d:.3f}" for d in g["drops"]["test"]) or "-"
        print(f"| {g['label']} | {cell(g['drops']['train'])} | {cell(g['drops']['test'])} | {per_seed} |")
    for mode, name in (("det", "greedy"), ("stoch", "sampled")):
        verbs = sorted({verb(task) for split, task in groups[0]["tasks"][mode]} if groups else [])
        print(f"\n{name} success by verb, train / test (mean over seeds and tasks)\n")
        print("| variant | " + " | ".join(verbs) + " |")
        print("|---|" + "---|" * len(verbs))
        for g in groups:
            cells = []
            for v in verbs:
                parts = []
                for split in SPLITS:
                    values = [np.mean(x) for (s, t), x in g["tasks"][mode].items() if s == split and verb(t) == v]
                    parts.append(f"{np.mean(values):.2f}" if values else "-")
                cells.append(" / ".join(parts))
            print(f"| {g['label']} | " + " | ".join(cells) + " |")
        held_out = sorted({task for split, task in groups[0]["tasks"][mode] if split == "test"} if groups else [])
        print(f"\n{name} held-out success per task (mean over seeds)\n")
        print("| variant | " + " | ".join(held_out) + " |")
        print("|---|" + "---:|" * len(held_out))
        for g in groups:
            values = [g["tasks"][mode].get(("test", task)) for task in held_out]
            print(f"| {g['label']} | " + " | ".join(f"{np.mean(v):.2f}" if v else "-" for v in values) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--group", nargs="+", action="append", required=True, metavar="LABEL RUN", help="a label and its run dirs"
    )
    parser.add_argument("--ablation", type=Path, action="append", default=[], help="mission_ablation.py --out JSON")
    args = parser.parse_args(argv)
    ablation: dict[str, Any] = {}
    for path in args.ablation:
        for run, rows in json.loads(path.read_text()).items():
            ablation[str(Path(run).resolve())] = rows
    groups = []
    for label, *runs in args.group:
        if not runs:
            parser.error(f"--group {label}: needs at least one run directory")
        groups.append(group_rows(label, [Path(r) for r in runs], ablation))
    print_tables(groups)
    return 0


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    sys.exit(main())
