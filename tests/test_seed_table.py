"""experiments/generalisation/seed_table.py on stub run directories with known evaluation numbers: per-split means
of the newest evaluation, IQM and bootstrap interval over seeds (modrl.stats.summarize), the held-out/train ratio,
the ablation drop, per-verb and per-task cells, the routing's task-module information, and the parameter count of
the policy the run's config builds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from modrl.config import to_dict
from modrl.routing_health import routing_health
from modrl.stats import summarize
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "generalisation" / "seed_table.py"


def _script() -> Any:
    return load_script(SCRIPT)


def _evaluation(train: float, test: float) -> dict[str, Any]:
    rows = [("goto-red-ball", "train", train), ("pickup-red-ball", "train", train), ("goto-blue-key", "test", test)]
    usage = ([1.0, 0.0], [0.0, 1.0], [0.5, 0.5])  # two tasks each on its own module, one split evenly
    return {
        "tasks": [
            {"task": t, "split": s, "success_rate": v, "episodes": 20, "module_usage": u}
            for (t, s, v), u in zip(rows, usage, strict=True)
        ]
    }


def _run(root: Path, name: str, config: Any, *, det: tuple[float, float], stale: bool = False) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    (run / "eval" / "step-000000000100-det-20ep.json").write_text(json.dumps(_evaluation(*det)))
    if stale:  # an older step's evaluation must not be read
        (run / "eval" / "step-000000000020-det-20ep.json").write_text(json.dumps(_evaluation(0.0, 0.0)))
    (run / "eval" / "step-000000000100-stoch-20ep.json").write_text(json.dumps(_evaluation(1.0, 0.5)))
    (run / "meta.json").write_text(json.dumps({"frames": {"demo": 1234, "rl": 0}}))
    (run / "pretrain.json").write_text(json.dumps({"cpu_s": 10.0}))
    return run


def test_tables_of_known_runs(tiny_config: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    config = tiny_config()
    trains, tests = (0.9, 0.8, 1.0), (0.45, 0.4, 0.5)
    runs = [
        _run(tmp_path, f"s{i}", config, det=(a, b), stale=i == 0)
        for i, (a, b) in enumerate(zip(trains, tests, strict=True))
    ]
    ablation = {str(runs[0]): {"train": {"true": 1.0, "other-object": 0.25, "blank": 0.0}}}
    (tmp_path / "ablation.json").write_text(json.dumps(ablation))
    script.main(["--group", "stub", *map(str, runs), "--ablation", str(tmp_path / "ablation.json")])
    out = capsys.readouterr().out
    from modrl.agents.common.builders import build_policy

    policy, _, _ = build_policy(config)
    total = sum(p.numel() for p in policy.parameters())
    actor = sum(p.numel() for p in policy.modular.network.parameters())
    mi = routing_health(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), np.ones(3)).normalised_mi
    assert f"| stub | 3 | {total:,} / {actor:,} | 1,234 | 0 | 10 (10-10) | {mi:.2f}, 0.50-1.00 |" in out, out
    s, t = summarize(list(trains)), summarize(list(tests))
    greedy = (
        f"| stub | {s.iqm:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}] | {t.iqm:.3f} [{t.ci_low:.3f}, {t.ci_high:.3f}] "
        f"| 0.900 | 0.450 | 0.50 |"
    )
    assert greedy in out, out
    assert "| stub | 1.000 [1.000, 1.000] | 0.500 [0.500, 0.500] | 1.000 | 0.500 | 0.50 |" in out  # sampled
    assert "| stub | 0.750 | - | - |" in out  # one seed's ablation: its value, no interval; no test split given
    assert "| stub | 0.90 / 0.45 | 0.90 / - |" in out  # greedy by verb (goto, pickup): train / test
    assert "| stub | 0.45 |" in out  # greedy held-out task goto-blue-key, mean over seeds


def test_a_group_without_runs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _script().main(["--group", "empty"])
    assert exc.value.code == 2


def test_a_group_with_a_seed_missing_an_evaluation_mode_is_refused(tiny_config: Any, tmp_path: Path) -> None:
    """A statistic over fewer seeds than the table's seed count says is refused, naming the run and the command."""
    script = _script()
    runs = [_run(tmp_path, f"s{i}", tiny_config(), det=(0.9, 0.5)) for i in range(2)]
    (runs[1] / "eval" / "step-000000000100-stoch-20ep.json").unlink()
    with pytest.raises(SystemExit, match=r"s1 has no eval/step-\*-stoch-\*ep\.json .*--stochastic"):
        script.main(["--group", "stub", *map(str, runs)])
