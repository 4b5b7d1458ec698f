"""The speed panel (issue 18): frames/s and wall-clock to a success threshold, per task x agent x training recipe.

For each panel task, agent (``modular``, ``monolithic``) and recipe (``default``: today's hyper-parameters of the
task's config; ``fast``: the recipe of ``RECIPES``), one ``modrl train`` subprocess trains from a fixed seed until its
sampled training success reaches ``--threshold`` (``train.stop_success``: mean over tasks of the last 100 episodes,
at least 20 per task) or the task's frame budget ends. Per run it reports: frames and wall-clock at the threshold
(or "not reached" with the budget), frames/s, PPO SGD steps, process CPU seconds, peak RSS; and per task x recipe the
**env ceiling** measured in the same run: steps/s of the very vector env training uses (same engine, same number of
envs, uniformly random actions, no policy). The last table gives, per task, agent and recipe, its wall-clock to the
threshold as a fraction of the default's, paired by seed (issue 18's target: <= 0.2).

Panel (``--tasks``): ``basic`` (the quick start suite: Empty-5x5, DoorKey-5x5, LavaGapS5), ``doorkey8``
(MiniGrid-DoorKey-8x8), ``keycorridor`` (MiniGrid-KeyCorridorS3R3; the batched engine does not cover it: MiniGrid),
``colour-type`` (the generalisation config: colour-type train split, 36 goto/pickup/open tasks read from the
mission), ``unlock`` (MiniGrid-Unlock, the first stage of the continual key sequence, trained on its own).

    OMP_NUM_THREADS=1 python experiments/bench/speed_panel.py                       # everything (hours)
    OMP_NUM_THREADS=1 python experiments/bench/speed_panel.py --tasks basic doorkey8 --agents modular
    OMP_NUM_THREADS=1 python experiments/bench/speed_panel.py --tasks basic --budget-scale 0.5 --out panel.jsonl

Runs go one at a time (one torch thread each) under a temporary directory that is deleted afterwards. On a machine
shared with other work wall-clock moves with the load; the CPU-seconds column is the steadier number. Recipes named
``-2w`` train each run on two processes (``train.workers: 2``): they need two idle cores, their CPU seconds count
both processes, and their peak RSS is the main process's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class PanelTask:
    config: str  # file under experiments/configs
    ids: tuple[str, ...]  # replaces the config's suite when given
    budget: int  # frames: the cap when the threshold is not reached


PANEL: dict[str, PanelTask] = {
    "basic": PanelTask("quickstart.yaml", (), 300_000),
    "doorkey8": PanelTask("quickstart.yaml", ("MiniGrid-DoorKey-8x8-v0",), 1_000_000),
    "keycorridor": PanelTask("quickstart.yaml", ("MiniGrid-KeyCorridorS3R3-v0",), 1_000_000),
    "colour-type": PanelTask("generalisation_colour_type.yaml", (), 1_000_000),
    "unlock": PanelTask("quickstart.yaml", ("MiniGrid-Unlock-v0",), 300_000),
}


#: Training recipes: overrides on top of each task's config. ``default`` is the config as shipped; ``fast`` is the
#: recipe the search below chose (experiments/results/speed.md); the others are the candidates of that search, named
#: envs x steps per rollout, minibatch, epochs, learning rate.
def _recipe(
    n_envs: int, n_steps: int, batch: int, epochs: int, lr: float, *, workers: int = 1, **algo: float
) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "env": {"n_envs": n_envs, "engine": "auto"},
        "algo": {"n_steps": n_steps, "batch_size": batch, "n_epochs": epochs, "learning_rate": lr, **algo},
    }
    if workers > 1:  # one run over several processes (train.workers): give it as many idle cores
        recipe["train"] = {"workers": workers}
    return recipe


RECIPES: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": _recipe(64, 32, 512, 3, 2e-3),
    "16x128-b256-e4-lr1e-3": _recipe(16, 128, 256, 4, 1e-3),  # rl-starter-files' shape
    "32x64-b512-e4-lr1e-3": _recipe(32, 64, 512, 4, 1e-3),
    "16x128-b512-e3-lr2e-3": _recipe(16, 128, 512, 3, 2e-3),
    "32x64-b512-e3-lr2e-3": _recipe(32, 64, 512, 3, 2e-3),
    "32x64-b1024-e2-lr3e-3": _recipe(32, 64, 1024, 2, 3e-3),
    "64x32-b256-e4-lr1e-3": _recipe(64, 32, 256, 4, 1e-3),
    "64x32-b256-e4-lr2e-3": _recipe(64, 32, 256, 4, 2e-3),
    "fast-ent1e-3": _recipe(64, 32, 512, 3, 2e-3, ent_coef=1e-3),
    "fast-ent0": _recipe(64, 32, 512, 3, 2e-3, ent_coef=0.0),
    "64x32-b512-e4-lr2e-3": _recipe(64, 32, 512, 4, 2e-3),
    "fast-lr3e-3": _recipe(64, 32, 512, 3, 3e-3),
    "64x32-b512-e5-lr2e-3": _recipe(64, 32, 512, 5, 2e-3),
    "64x32-b512-e6-lr1e-3": _recipe(64, 32, 512, 6, 1e-3),
    "fast-2w": _recipe(64, 32, 512, 3, 2e-3, workers=2),  # the fast recipe on two processes
    "128x32-b1024-e3-lr2e-3-2w": _recipe(128, 32, 1024, 3, 2e-3, workers=2),  # each process the fast recipe's shape
}

#: Runs a modrl CLI command in this process, then writes its own peak RSS (KiB) to the file named by argv[1].
_CHILD = """
import resource, sys
out, argv = sys.argv[1], sys.argv[2:]
from modrl.cli.main import main
try:
    code = main(argv)
except SystemExit as exc:
    code = exc.code
finally:
    with open(out, "w") as f:
        f.write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
sys.exit(code or 0)
"""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def panel_config(task: str, agent: str, recipe: str, *, seed: int, threshold: float, budget: int) -> dict[str, Any]:
    """The config dict one panel run trains."""
    spec = PANEL[task]
    config = yaml.safe_load((CONFIGS / spec.config).read_text())
    if spec.ids:
        config["env"].pop("suite", None)
        config["env"]["ids"] = list(spec.ids)
    config = _merge(config, RECIPES[recipe])
    config["name"] = f"panel-{task}-{agent}-{recipe}"
    config["seed"] = seed
    config["agent"]["kind"] = agent
    config["train"] = {
        **config.get("train", {}),
        "total_timesteps": budget,
        "stop_success": threshold,
        "eval_episodes": 0,
        "checkpoint_every": budget,
    }
    return config


def env_ceiling(config: dict[str, Any], steps: int) -> float:
    """Steps/s of the vector env ``modrl train`` builds for ``config`` under uniformly random actions."""
    from modrl.agents.common.builders import make_vec_env
    from modrl.agents.common.config import load_experiment_config

    venv = make_vec_env(load_experiment_config(config))
    try:
        venv.reset()
        rng = np.random.default_rng(0)
        n = venv.num_envs
        actions = rng.integers(0, venv.action_space.n, size=(steps // n + 1, n))
        start = time.perf_counter()
        for row in actions:
            venv.step(row)
        return len(actions) * n / (time.perf_counter() - start)
    finally:
        venv.close()


def sgd_steps(config: dict[str, Any], frames: int) -> int:
    """PPO minibatch steps for ``frames`` frames (SB3: every epoch walks the rollout in ``batch_size`` chunks)."""
    algo = config.get("algo", {})
    n_steps, batch, epochs = algo.get("n_steps", 128), algo.get("batch_size", 64), algo.get("n_epochs", 10)
    rollout = n_steps * config["env"]["n_envs"]
    return (frames // rollout) * epochs * -(-rollout // batch)


def run_one(config: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Train ``config`` in a subprocess; frames/time at the threshold, throughput, CPU and peak RSS."""
    config_path = workdir / f"{config['name']}-{config['seed']}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_dir = workdir / config_path.stem
    rss_file = workdir / "rss"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    argv = ["train", str(config_path), "--run-dir", str(run_dir)]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(rss_file), *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"modrl train failed for {config['name']}: {proc.stderr.strip().splitlines()[-1:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    threshold = config["train"]["stop_success"]
    reached = last["step"] < config["train"]["total_timesteps"] or (
        last["success_mean"] is not None and last["success_mean"] >= threshold
    )
    return {
        "frames": last["step"],
        "train_wall_s": last["wall_s"],
        "process_wall_s": wall,
        "cpu_s": cpu,
        "fps": last["step"] / last["wall_s"],
        "sgd_steps": sgd_steps(config, last["step"]),
        "reached": reached,
        "success": last["success_mean"],
        "peak_rss_mib": int(rss_file.read_text()) / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=list(PANEL), default=list(PANEL))
    parser.add_argument("--agents", nargs="+", choices=["modular", "monolithic"], default=["modular", "monolithic"])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threshold", type=float, default=0.9, help="sampled training success to reach (0.9)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every task's frame budget")
    parser.add_argument("--ceiling-steps", type=int, default=20_000, help="env steps per env-ceiling measurement")
    parser.add_argument("--out", type=Path, help="also append every result as a JSON line here")
    parser.add_argument(
        "--tables-from",
        type=Path,
        nargs="+",
        metavar="JSONL",
        help="train nothing: print the tables of these --out files",
    )
    args = parser.parse_args(argv)
    if args.tables_from:
        rows = [json.loads(line) for path in args.tables_from for line in path.read_text().splitlines() if line]
        _print_tables(rows, args.threshold)
        return

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modrl-panel-") as tmp:
        workdir = Path(tmp)
        for task in args.tasks:
            budget = max(1, int(PANEL[task].budget * args.budget_scale))
            for recipe in args.recipes:
                probe = panel_config(task, "modular", recipe, seed=0, threshold=args.threshold, budget=budget)
                ceiling = env_ceiling(probe, args.ceiling_steps)
                print(f"[panel] {task} / {recipe}: env ceiling {ceiling:,.0f} steps/s", flush=True)
                for agent in args.agents:
                    for seed in args.seeds:
                        config = panel_config(task, agent, recipe, seed=seed, threshold=args.threshold, budget=budget)
                        row = {"task": task, "agent": agent, "recipe": recipe, "seed": seed, "budget": budget}
                        row |= run_one(config, workdir) | {"env_ceiling": ceiling}
                        results.append(row)
                        print(
                            f"[panel] {task} / {agent} / {recipe} / seed {seed}: "
                            + ("reached" if row["reached"] else "NOT reached")
                            + f" {args.threshold} at {row['frames']:,} frames, {row['train_wall_s']:.0f} s "
                            f"({row['fps']:,.0f} frames/s, {row['cpu_s']:.0f} CPU-s, {row['sgd_steps']:,} SGD steps, "
                            f"peak RSS {row['peak_rss_mib']:.0f} MiB)",
                            flush=True,
                        )
                        if args.out:
                            with args.out.open("a") as f:
                                f.write(json.dumps(row) + "\n")
    _print_tables(results, args.threshold)


def _iqm_ci(values: list[float]) -> str:
    """``IQM [95% bootstrap CI of the IQM]`` (just the value for one seed)."""
    from modrl.stats import bootstrap_ci, iqm

    if len(values) == 1:
        return f"{values[0]:,.0f}"
    low, high = bootstrap_ci(values, iqm, seed=0)
    return f"{iqm(values):,.0f} [{low:,.0f}, {high:,.0f}]"


def _print_tables(results: list[dict[str, Any]], threshold: float) -> None:
    """Per task x agent x recipe: IQM over seeds with a 95% bootstrap CI (frames, wall, CPU to the threshold or the
    budget), medians of the throughput columns; then every recipe's ratios to the default (paired by seed)."""
    print()
    print(
        f"| task | agent | recipe | seeds reached {threshold} | frames to it, IQM [95% CI] | wall s | CPU s | "
        "frames/s | SGD steps | env ceiling steps/s | frames/s ÷ ceiling | peak RSS MiB |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in results:
        groups.setdefault((row["task"], row["agent"], row["recipe"]), []).append(row)
    for (task, agent, recipe), rows in groups.items():

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        reached = sum(r["reached"] for r in rows)
        budget = "" if reached == len(rows) else " (budget-capped)"
        print(
            f"| {task} | {agent} | {recipe} | {reached}/{len(rows)} | {_iqm_ci([r['frames'] for r in rows])}{budget} | "
            f"{_iqm_ci([r['train_wall_s'] for r in rows])} | {_iqm_ci([r['cpu_s'] for r in rows])} | "
            f"{med('fps'):,.0f} | {med('sgd_steps'):,.0f} | {med('env_ceiling'):,.0f} | "
            f"{med('fps') / med('env_ceiling'):.3f} | {med('peak_rss_mib'):.0f} |"
        )
    print()
    print(
        "| task | agent | recipe | seeds | recipe ÷ default wall to the threshold, IQM [95% CI] | "
        "CPU, IQM [95% CI] | note |"
    )
    print("|---|---|---|---:|---:|---:|---|")
    for task, agent, recipe in groups:
        if recipe == "default":
            continue
        default = {r["seed"]: r for r in groups.get((task, agent, "default"), [])}
        other = {r["seed"]: r for r in groups[(task, agent, recipe)]}
        seeds = sorted(set(default) & set(other))
        if seeds:
            print(_ratio_row(task, agent, recipe, [(other[s], default[s]) for s in seeds]))


def _ratio_row(task: str, agent: str, recipe: str, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """One row of the ratio table: ``recipe``'s wall-clock and CPU to the threshold over the default's, paired by
    seed (a bound, not a ratio, when a side hit its budget)."""
    from modrl.stats import bootstrap_ci, iqm

    note = "" if all(f["reached"] and d["reached"] for f, d in pairs) else "a side hit its budget: a bound"
    cells = []
    for key in ("train_wall_s", "cpu_s"):
        ratios = [f[key] / d[key] for f, d in pairs]
        if len(ratios) == 1:
            cells.append(f"{ratios[0]:.3f}")
        else:
            low, high = bootstrap_ci(ratios, iqm, seed=0)
            cells.append(f"{iqm(ratios):.3f} [{low:.3f}, {high:.3f}]")
    return f"| {task} | {agent} | {recipe} | {len(pairs)} | {cells[0]} | {cells[1]} | {note} |"


if __name__ == "__main__":
    main()
