"""Continual training: metrics on hand-made matrices, config checks, freeze_grow's exact protection through SB3,
resume after kills, and the ``modrl continual`` command on the tiny suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from modrl.agents.common.builders import build_policy
from modrl.agents.continual.config import ContinualConfig, load_continual_config
from modrl.agents.continual.parts import RuleProgressCallback
from modrl.agents.continual.runner import ContinualStatus, _Runner, run_continual
from modrl.checkpoint import latest_checkpoint
from modrl.cli.main import main
from modrl.config import ConfigError, to_dict
from modrl.continual import (
    area_under_curve,
    average_forgetting,
    backward_transfer,
    continual_metrics,
    forgetting,
    format_r_table,
    forward_transfer,
)
from modrl.envs import get_suite, make_task_env

R3 = [[0.9, 0.1, 0.0], [0.5, 0.8, 0.2], [0.3, 0.6, 1.0]]
TINY: dict[str, Any] = {
    "name": "tiny-continual",
    "env": {"suite": "minigrid-tiny", "n_envs": 2, "max_episode_steps": 30},
    "agent": {
        "extractor": {"channels": [8], "features_dim": 16, "embed_dim": 4},
        "modules": {"count": 3, "hidden": [16]},
        "latent_dim": 16,
        "critic_hidden": [16],
    },
    "algo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
    "sequence": {"tasks": ["empty5", "emptyrand5"], "steps_per_task": 128, "eval_episodes": 2, "checkpoint_every": 64},
    "rule": {"kind": "freeze_grow", "fisher_samples": 16},
}


def tiny(*overrides: str) -> ContinualConfig:
    return load_continual_config(TINY, overrides)


# ---- metrics ------------------------------------------------------------------------------------------------------
def test_forgetting_and_backward_transfer_by_hand() -> None:
    np.testing.assert_allclose(forgetting(R3), [0.6, 0.2, 0.0])
    assert average_forgetting(R3) == pytest.approx(0.8 / 3)
    assert backward_transfer(R3) == pytest.approx(((0.3 - 0.9) + (0.6 - 0.8)) / 2)
    assert backward_transfer([[0.7]]) is None
    assert average_forgetting([[1.0, 0.0], [1.0, 1.0]]) == 0.0  # perfect protection


def test_area_under_curve_and_forward_transfer_by_hand() -> None:
    # Values hold over the interval that ends at their step; the last one holds until `end`.
    assert area_under_curve([10, 20, 30], [0.0, 0.5, 1.0], start=0, end=40) == pytest.approx(25 / 40)
    assert area_under_curve([110, 120], [1.0, 1.0], start=100, end=120) == pytest.approx(1.0)
    assert area_under_curve([], [], start=0, end=10) == 0.0
    assert forward_transfer(0.625, 0.25) == pytest.approx(0.5)
    assert forward_transfer(0.2, 0.6) == pytest.approx(-1.0)
    assert forward_transfer(0.9, 1.0) == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="non-decreasing"):
        area_under_curve([2, 1], [0, 0], start=0, end=3)


def test_continual_metrics_and_table() -> None:
    metrics = continual_metrics(R3, auc=[0.5, 0.5, 0.5], auc_reference=[0.5, 0.0, 0.75])
    assert metrics.forward_transfer_per_task == pytest.approx([0.0, 0.5, -1.0])
    assert metrics.forward_transfer == pytest.approx(-0.5 / 3)
    assert metrics.average_success == pytest.approx(1.9 / 3)
    assert continual_metrics(R3).forward_transfer is None
    with pytest.raises(ValueError, match="N x N"):
        continual_metrics([[1.0, 0.0]])
    table = format_r_table([[0.9, 0.1]], ["a", "b"], initial=[0.0, 0.05])
    assert table.splitlines()[2] == "| (untrained) | 0.00 | 0.05 |" and table.splitlines()[3] == "| a | 0.90 | 0.10 |"


# ---- config -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sequence.tasks=[empty5, nope]", "has no task 'nope'"),
        ("sequence.tasks=[empty5, empty5]", "each task may appear once"),
        ("sequence.keep_checkpoints=1", "keep_checkpoints"),
        ("agent.kind=monolithic", "freeze_grow needs agent.kind=modular"),
        ("agent.router.condition=task+obs", "one router row per task"),
        ("agent.modules.count=1", "at least 2 modules"),
        ("rule.kind=bogus", "rule.kind"),
        ("sequence.bogus=1", "unknown key 'sequence.bogus'"),
        ("sequence.reference_dir=refs", "reference_dir: caches from-scratch references"),
        ("env.event_reward=0.1", "env.event_reward: a continual run's stages train on the tasks as they are"),
    ],
)
def test_config_refuses_what_cannot_run(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny(override)


def test_config_refuses_strict_tasks_even_on_a_generated_suite() -> None:
    generated = ("env.suite=colour-type", "sequence.tasks=[goto-blue-ball, goto-green-ball]")
    with pytest.raises(ConfigError, match=r"env\.strict: a continual run's stages train on the tasks as they are"):
        tiny(*generated, "env.strict=true")
    tiny(*generated)  # the same config without it loads


def test_example_configs_load() -> None:
    for path in sorted(Path(__file__).resolve().parents[1].glob("experiments/continual/*.yaml")):
        config = load_continual_config(path)
        assert len(config.sequence.tasks) >= 2, path


# ---- freeze_grow keeps old behaviour exactly (through SB3) -------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for kind in ("freeze_grow", "none"):
        run_dir = tmp_path_factory.mktemp(kind)
        config = tiny(f"rule.kind={kind}")
        (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))  # as `modrl continual` writes it
        assert run_continual(config, run_dir).status is ContinualStatus.COMPLETED
        out[kind] = run_dir
    return out


def _policy_at(run_dir: Path, directory: str) -> torch.nn.Module:
    config = tiny()
    policy, _, _ = build_policy(config.experiment())
    checkpoint = latest_checkpoint(run_dir / directory)
    assert checkpoint is not None
    policy.load_state_dict(checkpoint.tensors["policy"])
    return policy


def _recorded_observations(n: int = 40) -> dict[str, torch.Tensor]:
    env = make_task_env(get_suite("minigrid-tiny"), 0, max_episode_steps=30)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=123)
    frames = []
    for _ in range(n):
        frames.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        if terminated or truncated:
            obs, _ = env.reset()
    return {key: np.stack([f[key] for f in frames]) for key in frames[0]}  # type: ignore[misc]


def _logits(policy: Any, observations: dict[str, Any]) -> torch.Tensor:
    obs, _ = policy.obs_to_tensor(observations)
    with torch.no_grad():
        return policy.get_distribution(obs).distribution.logits


@pytest.mark.slow
def test_freeze_grow_preserves_old_task_exactly(runs: dict[str, Path]) -> None:
    run_dir = runs["freeze_grow"]
    before = _policy_at(run_dir, "stages/00-empty5/checkpoint")
    after = _policy_at(run_dir, "stages/01-emptyrand5/checkpoint")
    old, new = before.state_dict(), after.state_dict()
    moved = {k for k in old if not torch.equal(old[k], new[k])}
    frozen_prefixes = (
        "features_extractor",
        "pi_features_extractor",
        "action_net",
        "mlp_extractor.network.library.skills.skill_0",
    )
    assert not any(k.startswith(frozen_prefixes) for k in moved), moved
    assert any(k.startswith("mlp_extractor.network.library.skills.skill_1") for k in moved)
    row = "mlp_extractor.network.router.logits_net.net.weight"
    assert row in moved and torch.equal(old[row][0], new[row][0])
    # Identical deterministic actions (and logits, once routed through the same module mask) on recorded observations.
    observations = _recorded_observations()
    mask = torch.zeros(2, 3, dtype=torch.bool)
    mask[0, 0] = mask[1, :2] = True
    for policy in (before, after):
        policy.modular.network.router.set_module_mask(mask)
    assert torch.equal(_logits(before, observations), _logits(after, observations))
    assert np.array_equal(
        before.predict(observations, deterministic=True)[0], after.predict(observations, deterministic=True)[0]
    )
    record = json.loads((run_dir / "continual.json").read_text())
    assert record["returns"][1][0] == record["returns"][0][0] and record["R"][1][0] == record["R"][0][0]
    assert record["metrics"]["forgetting"][0] == 0.0
    params = [s["params"] for s in record["stages"]]
    assert params[1]["added"] == sum(p.numel() for p in after.modular.network.library.get("skill_1").parameters())
    assert params[1]["frozen"] > params[0]["frozen"] and params[0]["added"] == params[0]["active"]
    assert [s["rule_phase"] for s in record["stages"]] == ["grown", "grown"]  # GrowPhase's values, plain strings


@pytest.mark.slow
def test_naive_fine_tuning_changes_the_old_task(runs: dict[str, Path]) -> None:
    before = _policy_at(runs["none"], "stages/00-empty5/checkpoint")
    after = _policy_at(runs["none"], "stages/01-emptyrand5/checkpoint")
    observations = _recorded_observations()
    assert not torch.equal(_logits(before, observations), _logits(after, observations))


# ---- resume -------------------------------------------------------------------------------------------------------
class _Killed(Exception):
    """Stands in for SIGKILL: the process dies without writing anything more."""


@pytest.mark.slow
def test_resume_never_retrains_a_finished_stage_nor_loses_a_row(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny()
    original = RuleProgressCallback._on_step

    def kill_late_in_stage_1(self: RuleProgressCallback) -> bool:
        if self.num_timesteps >= 224:  # mid-rollout, after the commit at step 192
            raise _Killed
        return original(self)

    monkeypatch.setattr(RuleProgressCallback, "_on_step", kill_late_in_stage_1)
    with pytest.raises(_Killed):
        run_continual(config, tmp_path)
    first = json.loads((tmp_path / "continual.json").read_text())
    assert len(first["R"]) == 1
    stage0_metrics = (tmp_path / "stages/00-empty5/metrics.jsonl").read_bytes()
    stage0_manifest = (tmp_path / "stages/00-empty5/checkpoint/step-000000000128/manifest.json").read_bytes()

    monkeypatch.setattr(RuleProgressCallback, "_on_step", original)
    record_row = _Runner._record_row

    def kill_before_row_1(self: _Runner, stage: int) -> None:
        if stage == 1:
            raise _Killed
        record_row(self, stage)

    monkeypatch.setattr(_Runner, "_record_row", kill_before_row_1)
    with pytest.raises(_Killed):
        run_continual(config, tmp_path, resume=True)
    assert len(json.loads((tmp_path / "continual.json").read_text())["R"]) == 1
    stage1_metrics = (tmp_path / "stages/01-emptyrand5/metrics.jsonl").read_text()
    steps = [json.loads(line)["step"] for line in stage1_metrics.splitlines()]
    assert steps == sorted(set(steps)) and steps[0] > 128 and steps[-1] == 256  # continued, no step twice

    monkeypatch.setattr(_Runner, "_record_row", record_row)
    outcome = run_continual(config, tmp_path, resume=True)
    assert outcome.status is ContinualStatus.COMPLETED and outcome.steps == 256 and outcome.resumed_from == 256
    final = json.loads((tmp_path / "continual.json").read_text())
    assert final["R"][0] == first["R"][0] and len(final["R"]) == 2 and final["complete"]
    assert (tmp_path / "stages/00-empty5/metrics.jsonl").read_bytes() == stage0_metrics  # stage 0 never retrained
    assert (tmp_path / "stages/00-empty5/checkpoint/step-000000000128/manifest.json").read_bytes() == stage0_manifest
    assert (tmp_path / "stages/01-emptyrand5/metrics.jsonl").read_text() == stage1_metrics  # evaluated, not retrained
    uninterrupted = json.loads((runs["freeze_grow"] / "continual.json").read_text())
    assert final["R"][0] == uninterrupted["R"][0] and final["initial"] == uninterrupted["initial"]


# ---- CLI ----------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_runs_resumes_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(TINY))
    run_dir = tmp_path / "run"
    assert main(["continual", str(config_path), "--run-dir", str(run_dir), "--set", "rule.kind=packnet"]) == 0
    out = capsys.readouterr().out
    assert "| after \\ on | empty5 | emptyrand5 |" in out and "average_forgetting:" in out
    record = json.loads((run_dir / "continual.json").read_text())
    assert record["tasks"] == ["empty5", "emptyrand5"] and np.shape(record["R"]) == (2, 2)
    assert record["rule"]["kind"] == "packnet" and record["metrics"]["backward_transfer"] is not None
    assert (run_dir / "R.png").stat().st_size > 0 and (run_dir / "R.md").is_file()
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "completed"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb")).Reload()
    assert "modrl/continual/R" in events.Tags()["images"]
    assert "modrl/continual/success/empty5" in events.Tags()["scalars"]

    assert main(["continual", "--resume", str(run_dir)]) == 0  # a finished run: nothing is trained again
    assert json.loads((run_dir / "continual.json").read_text())["R"] == record["R"]
    assert main(["continual", str(config_path), "--set", "sequence.tasks=[nope]"]) == 2
    assert "has no task 'nope'" in capsys.readouterr().err
    assert main(["continual", "--resume", str(run_dir), "--set", "rule.kind=none"]) == 2


# ---- shared from-scratch references ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_reference_cache_is_shared_by_rules_and_added_to_a_finished_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path, cache = tmp_path / "tiny.yaml", tmp_path / "refs"
    config_path.write_text(yaml.safe_dump(TINY))

    def record(name: str) -> dict[str, Any]:
        return json.loads((tmp_path / name / "continual.json").read_text())

    common = ["continual", str(config_path), "--set", "sequence.steps_per_task=64"]
    assert (
        main([*common, "--run-dir", str(tmp_path / "none"), "--set", "rule.kind=none", "--reference-dir", str(cache)])
        == 0
    )
    first = record("none")
    assert sorted(first["reference_auc"]) == ["empty5", "emptyrand5"]
    assert first["metrics"]["forward_transfer"] is not None
    assert (tmp_path / "none/reference/empty5/reference.json").is_file() and len(list(cache.glob("*.json"))) == 2
    # Another rule, same seed: the references come from the cache (none trained) and are the same numbers.
    assert (
        main(
            [
                *common,
                "--run-dir",
                str(tmp_path / "packnet"),
                "--set",
                "rule.kind=packnet",
                "--reference-dir",
                str(cache),
            ]
        )
        == 0
    )
    assert record("packnet")["reference_auc"] == first["reference_auc"]
    assert not (tmp_path / "packnet/reference").exists()
    # A finished run without references gets forward transfer on --resume; R is untouched, the change recorded.
    assert main([*common, "--run-dir", str(tmp_path / "fg")]) == 0
    before = record("fg")
    assert before["metrics"]["forward_transfer"] is None
    assert main(["continual", "--resume", str(tmp_path / "fg"), "--reference-dir", str(cache)]) == 0
    after = record("fg")
    assert after["R"] == before["R"] and after["reference_auc"] == first["reference_auc"]
    assert after["metrics"]["forward_transfer"] is not None and not (tmp_path / "fg/reference").exists()
    changes = json.loads((tmp_path / "fg/meta.json").read_text())["config_changes"][0]["changes"]
    assert changes["sequence.reference"] == ["none", "scratch"]
    # Another seed is another key; a corrupt or foreign entry is ignored (and retrained), never trusted.
    from modrl.agents.continual.reference import ReferenceCache, reference_key

    config = tiny("sequence.steps_per_task=64", "sequence.reference=scratch")
    assert reference_key(config, 0) != reference_key(tiny("sequence.steps_per_task=64", "seed=1"), 0)
    assert reference_key(config, 0) == reference_key(tiny("sequence.steps_per_task=64", "rule.kind=ewc"), 0)
    store = ReferenceCache(cache)
    assert store.get(config, 0) == first["reference_auc"]["empty5"]
    store.path(config, 0).write_text('{"key": "other", "auc": 0.5}')
    assert store.get(config, 1) is not None and store.get(config, 0) is None
    store.path(config, 1).write_text("{not json")
    assert store.get(config, 1) is None and "ignoring reference cache entry" in caplog.text


# ---- mission tokens -----------------------------------------------------------------------------------------------
def test_continual_run_with_mission_tokens(tmp_path: Path) -> None:
    config = tiny("env.mission_tokens=true", "sequence.steps_per_task=64", "sequence.eval_episodes=1")
    runner = _Runner(config, tmp_path)
    try:
        assert "mission" in runner.model.observation_space.spaces  # type: ignore[union-attr]
        assert "mission" in runner._env(1).observation_space.spaces
    finally:
        runner.close()
    outcome = run_continual(config, tmp_path)
    assert outcome.status is ContinualStatus.COMPLETED and outcome.steps == 128
    record = json.loads((tmp_path / "continual.json").read_text())
    assert np.shape(record["R"]) == (2, 2) and record["metrics"]["forgetting"][0] == 0.0  # freeze_grow protects
    checkpoint = latest_checkpoint(tmp_path / "stages/01-emptyrand5/checkpoint")
    assert checkpoint is not None and any("mission" in key for key in checkpoint.tensors["policy"])
    with pytest.raises(ConfigError, match="router_input"):
        tiny("agent.router_input=mission")


# ---- a continual policy outside the runner -------------------------------------------------------------------------
@pytest.mark.slow
def test_loaded_freeze_grow_policy_carries_its_router_mask(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from modrl.agents.common.evaluation import evaluate_policy, load_run_policy
    from modrl.agents.continual.store import load_continual_policy

    run_dir = runs["freeze_grow"]
    record = json.loads((run_dir / "continual.json").read_text())
    after_stage0 = load_continual_policy(run_dir, stage=0)
    final = load_continual_policy(run_dir)
    assert (after_stage0.commit.stage, final.commit.stage) == (0, 1)
    masks = [loaded.policy.modular.network.router.logits_net.module_mask for loaded in (after_stage0, final)]
    assert masks[0].tolist() == [[True, False, False], [True, False, False]]
    assert masks[1].tolist() == [[True, False, False], [True, True, False]]
    observations = _recorded_observations()
    actions = [loaded.policy.predict(observations, deterministic=True)[0] for loaded in (after_stage0, final)]
    assert np.array_equal(actions[0], actions[1])  # the old task acts identically after the next stage ...
    assert torch.equal(_logits(after_stage0.policy, observations), _logits(final.policy, observations))
    final.policy.modular.network.router.set_module_mask(None)  # ... because of the mask: without it, it does not
    assert not torch.equal(_logits(after_stage0.policy, observations), _logits(final.policy, observations))
    # The loaded policies reproduce the returns the runner evaluated in memory (same fixed seeds).
    config = tiny().experiment()
    for stage, loaded in enumerate((after_stage0, load_continual_policy(run_dir))):
        report = evaluate_policy(loaded.policy, config, episodes=2)
        assert [t.mean_return for t in report.tasks] == record["rows"][stage]["return"]
    _, policy, checkpoint = load_run_policy(run_dir)  # what `modrl eval RUN_DIR` loads
    assert checkpoint.step == 256 and torch.equal(policy.modular.network.router.logits_net.module_mask, masks[1])
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    (result,) = (run_dir / "eval").glob("step-000000000256-det-2ep.json")
    assert [t["mean_return"] for t in json.loads(result.read_text())["tasks"]] == record["rows"][1]["return"]
    capsys.readouterr()


@pytest.mark.slow
def test_packnet_run_is_evaluated_through_its_rule(tmp_path: Path) -> None:
    from modrl.agents.common.evaluation import evaluate_policy, load_run_policy
    from modrl.agents.continual.store import load_continual_policy

    config = tiny("rule.kind=packnet", "sequence.steps_per_task=64", "sequence.eval_episodes=1")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(to_dict(config)))
    assert run_continual(config, tmp_path).status is ContinualStatus.COMPLETED
    record = json.loads((tmp_path / "continual.json").read_text())
    with pytest.raises(ValueError, match="acts per task"):
        load_run_policy(tmp_path)
    loaded = load_continual_policy(tmp_path)
    assert loaded.rule.acts_per_task
    report = evaluate_policy(loaded.policy, config.experiment(), episodes=1, acting_as=loaded.rule.acting_as)
    assert [t.mean_return for t in report.tasks] == record["rows"][1]["return"]
