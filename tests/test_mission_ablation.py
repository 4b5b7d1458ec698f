"""experiments/generalisation/mission_ablation.py's conditions, pinned with a policy that reads the mission: it solves
the task (BabyAI's bot) exactly when the mission tokens it sees are the task's own, so the true mission must score 1
and another object's mission and the blank one 0, on every split. (The script end to end on a trained run:
tests/test_experiment_scripts.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modrl.envs import MissionVocabulary
from modrl.envs.oracle import SequenceBot
from tests.conftest import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "generalisation" / "mission_ablation.py"
DONE = 6  # MiniGrid's "done": completes no subtask of these tasks (the agent never starts facing an object)


def _script() -> Any:
    return load_script(SCRIPT)


class MissionReader:
    """``predict`` as SB3's: the bot's action while ``obs["mission"]`` encodes the env's own mission, else done."""

    def __init__(self, envs: list[Any]) -> None:
        self.envs, self.vocabulary, self.bot = envs, MissionVocabulary.from_grammar(), None
        self.reads: list[bool] = []

    def predict(self, obs: dict[str, Any], deterministic: bool = False) -> tuple[np.ndarray, None]:
        env = self.envs[-1]
        base = env.unwrapped
        own = self.vocabulary.encode(base.mission, len(obs["mission"]))
        reads = bool(np.array_equal(obs["mission"], own))
        if base.step_count == 0:
            self.bot = SequenceBot(env) if reads else None
            self.reads.append(reads)
        return np.array(int(self.bot.replan()) if reads and self.bot is not None else DONE), None


def test_the_true_mission_scores_1_and_the_wrong_and_blank_ones_0(
    tiny_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script()
    config = tiny_config("env.suite=colour-type", "env.split=train", "env.mission_tokens=true")
    envs: list[Any] = []
    real_make = script.make_suite_env

    def make(*args: Any, **kwargs: Any) -> Any:
        envs.append(real_make(*args, **kwargs))
        return envs[-1]

    policy = MissionReader(envs)
    monkeypatch.setattr(script, "load_run_policy", lambda run_dir: (config, policy, None))
    monkeypatch.setattr(script, "make_suite_env", make)
    rows = script.ablate_run(Path("unused"), episodes=2, tasks_per_split=2)
    assert rows == {split: {"true": 1.0, "other-object": 0.0, "blank": 0.0} for split in ("train", "test")}, rows
    # 2 splits x 2 tasks x 3 conditions x 2 episodes, the policy reading the mission only under the true one.
    assert len(envs) == 4 and policy.reads == [True, True, False, False, False, False] * 4
