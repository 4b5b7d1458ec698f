"""Strict config loading: unknown keys, wrong types, ranges, overrides, unsafe YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from modrl.agents.common.config import ExperimentConfig, load_experiment_config
from modrl.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict


def test_defaults_round_trip_through_dict() -> None:
    config = load_experiment_config({})
    assert config == ExperimentConfig()
    assert load_experiment_config(to_dict(config)) == config


def test_unknown_top_level_key_names_it_and_lists_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        load_experiment_config({"sed": 3})
    message = str(err.value)
    assert "'sed'" in message
    for allowed in ("seed", "env", "agent", "algo", "train"):
        assert allowed in message


def test_unknown_nested_key_names_dotted_path() -> None:
    with pytest.raises(ConfigError, match=r"agent\.router\.kindd.*allowed keys in agent\.router: .*condition"):
        load_experiment_config({"agent": {"router": {"kindd": "soft"}}})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"seed": "zero"}, r"seed: expected an integer"),
        ({"seed": 1.5}, r"seed: expected an integer"),
        ({"env": {"n_envs": True}}, r"env\.n_envs: expected an integer"),
        (
            {"agent": {"router": {"kind": "magic"}}},
            r"agent\.router\.kind: 'magic' is not allowed; allowed values: .*'soft'",
        ),
        ({"algo": {"gamma": 1.5}}, r"algo\.gamma: must be in \[0, 1\]"),
        ({"env": {"n_envs": 0}}, r"env\.n_envs: sizes must be in \[1, 1024\], got 0"),
        ({"seed": -1}, r"seed: must be in"),
        ({"agent": {"modules": {"count": 0}}}, r"agent\.modules\.count"),
        ({"env": {"suite": "no-such-suite"}}, r"env\.suite: .*minigrid-basic"),
        ({"env": {"n_envs": 2}}, r"env\.n_envs: 2 envs cannot cover the 3 tasks"),
        ({"env": {"suite": "colour-type", "split": "dev"}}, r"env\.split: suite 'colour-type' has no split 'dev'"),
        ({"train": "fast"}, r"train: expected a mapping"),
    ],
)
def test_bad_values_name_the_field(data: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment_config(data)


def test_a_split_may_hold_more_tasks_than_envs() -> None:
    config = load_experiment_config({"env": {"suite": "colour-type", "split": "train", "n_envs": 2}})
    assert config.env.split == "train"
    with pytest.raises(ConfigError, match=r"or train on a split"):
        load_experiment_config({"env": {"suite": "colour-type", "n_envs": 2}})


def test_overrides_are_parsed_and_validated() -> None:
    config = load_experiment_config(
        {}, ["agent.router.kind=topk", "train.total_timesteps=1234", "agent.modules.hidden=[8, 8]"]
    )
    assert config.agent.router.kind == "topk"
    assert config.train.total_timesteps == 1234
    assert config.agent.modules.hidden == (8, 8)
    with pytest.raises(ConfigError, match=r"agent\.router\.kind: 'nope'"):
        load_experiment_config({}, ["agent.router.kind=nope"])
    with pytest.raises(ConfigError, match=r"unknown key 'agent\.routr'"):
        load_experiment_config({}, ["agent.routr.kind=soft"])
    with pytest.raises(ConfigError, match=r"must look like key\.sub=value"):
        apply_overrides({}, ["agent.router.kind"])


def test_override_does_not_mutate_input() -> None:
    data = {"agent": {"router": {"kind": "soft"}}}
    apply_overrides(data, ["agent.router.kind=topk"])
    assert data["agent"]["router"]["kind"] == "soft"


def test_unsafe_yaml_tag_is_refused(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "evil.yaml"
    path.write_text(f"seed: !!python/object/apply:os.system ['touch {canary}']\n")
    with pytest.raises(ConfigError, match="not valid"):
        load_yaml(path)
    assert not canary.exists()


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_yaml(path)


def test_shipped_configs_load() -> None:
    root = Path(__file__).resolve().parents[1] / "experiments" / "configs"
    paths = sorted(root.glob("*.yaml"))
    assert paths, "no configs shipped"
    for path in paths:
        load_experiment_config(path)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError, match="config: expected a mapping"):
        from_dict(ExperimentConfig, [1, 2])


def test_duplicate_yaml_keys_are_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("seed: 1\nenv:\n  n_envs: 2\n  n_envs: 4\n")
    with pytest.raises(ConfigError, match="duplicate key 'n_envs'") as info:
        load_yaml(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_numbers_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match=r"algo\.learning_rate: expected a finite number"):
        load_experiment_config({}, [f"algo.learning_rate={value}"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("agent.extractor.channels=[16000000]", "channels"),
        ("agent.modules.hidden=[10000000000]", "hidden"),
        ("agent.modules.count=100000", "count"),
        ("env.n_envs=100000", "n_envs"),
        ("algo.n_steps=0", "n_steps"),
        ("agent.monolithic_hidden=0", "monolithic_hidden"),
    ],
)
def test_sizes_out_of_range_are_refused_before_anything_is_allocated(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: sizes must be in \[1, \d+\]"):
        load_experiment_config({}, [override])


def test_shipped_option_configs_load_with_the_command_their_first_line_names() -> None:
    from modrl.agents.options.config import load_options_config, load_route_config
    from modrl.agents.options.critic_config import load_option_critic_config, load_sketch_config
    from modrl.agents.options.skill_cloning_config import load_skill_cloning_config

    loaders = {
        "train": load_options_config,
        "route": load_route_config,
        "skills": load_skill_cloning_config,
        "critic": load_option_critic_config,
        "sketch": load_sketch_config,
    }
    root = Path(__file__).resolve().parents[1] / "experiments" / "options"
    paths = sorted(root.glob("*.yaml"))
    assert len(paths) >= 10
    for path in paths:
        first = path.read_text().splitlines()[0].split()
        assert first[:3] == ["#", "modrl", "options"] and first[3] in loaders, (path.name, first)
        loaders[first[3]](path)


def test_agent_skills_the_old_name_of_agent_modules_still_loads() -> None:
    old = load_experiment_config({"agent": {"skills": {"count": 3, "hidden": [8]}}})
    assert old == load_experiment_config({"agent": {"modules": {"count": 3, "hidden": [8]}}})
    # A file written with the old name, overridden with the new one: the override wins, the rest is kept.
    mixed = load_experiment_config({"agent": {"skills": {"count": 3, "hidden": [8]}}}, ["agent.modules.count=5"])
    assert mixed.agent.modules.count == 5 and mixed.agent.modules.hidden == (8,)
    with pytest.raises(ConfigError, match=r"agent\.skills: 'skills' is the old name of 'modules'"):
        load_experiment_config({"agent": {"skills": 3, "modules": {"count": 2}}})
    with pytest.raises(ConfigError, match=r"agent\.skills\.size"):  # errors inside still name a key
        load_experiment_config({"agent": {"skills": {"size": 3}}})
