"""``modrl show``: a run's episodes rendered with the routing beside each frame, the same episodes evaluation scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from modrl.agents.common.evaluation import evaluate_policy, load_run_policy
from modrl.agents.common.show import render_episodes
from modrl.agents.common.training import TrainStatus, run_training
from modrl.cli.main import main
from modrl.config import to_dict
from modrl.runs import write_run_metadata


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from modrl.agents.common.config import load_experiment_config
    from tests.conftest import TINY

    config = load_experiment_config(TINY, ["env.max_episode_steps=12"])
    path = tmp_path_factory.mktemp("show") / "run"
    path.mkdir()
    write_run_metadata(path, config=to_dict(config), seed=config.seed, argv=["pytest"])
    assert run_training(config, path).status is TrainStatus.COMPLETED
    return path


def test_show_renders_the_evaluation_episodes_with_their_routing(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "watch.gif"
    shown = render_episodes(run_dir, out, task="empty5", episodes=2)
    config, policy, _ = load_run_policy(run_dir)
    report = evaluate_policy(policy, config, episodes=2)
    (scored,) = [t for t in report.tasks if t.task == "empty5"]
    assert [e.seed for e in shown] == [1_000_000_000, 1_000_000_001]
    assert np.mean([e.success for e in shown]) == scored.success_rate
    assert np.mean([e.total_return for e in shown]) == pytest.approx(scored.mean_return)
    assert np.mean([e.length for e in shown]) == scored.mean_length
    for episode in shown:  # one row of module weights per step, each a distribution over the 3 modules
        assert episode.weights is not None and episode.weights.shape == (episode.length, 3)
        assert np.allclose(episode.weights.sum(axis=1), 1.0, atol=1e-5)
    gif = Image.open(out)
    assert gif.format == "GIF" and gif.size[0] > gif.size[1] > 0  # frame and panel side by side
    assert 2 <= gif.n_frames <= sum(e.length for e in shown) + 8


def test_show_cli_default_path_and_refusals(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(run_dir)]) == 0
    (made,) = (run_dir / "show").glob("*.gif")
    assert made.name.startswith("empty5-step256-1ep") and "wrote" in capsys.readouterr().out
    assert main(["show", str(run_dir)]) == 0  # a second one gets its own name
    assert len(list((run_dir / "show").glob("*.gif"))) == 2
    cases = [
        (["show", str(run_dir), "--task", "nope"], "--task: suite 'minigrid-tiny' has no task 'nope'"),
        (["show", str(run_dir), "--out", str(tmp_path / "x.mp4")], "writes animated GIFs"),
        (["show", str(run_dir), "--out", str(made)], "exists: give a new file name"),
        (["show", str(run_dir), "--episodes", "0"], "--episodes must be in [1, 100]"),
        (["show", str(tmp_path)], "is not a run directory"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("modrl: error: ") and message in err and err.count("\n") == 1, err


def test_show_tensorboard_puts_the_gif_in_the_runs_images(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "to-tb.gif"
    assert main(["show", str(run_dir), "--task", "emptyrand5", "--stochastic", "--tensorboard", "--out", str(out)]) == 0
    assert "TensorBoard: image modrl/show/emptyrand5/sampled" in capsys.readouterr().out
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0}).Reload()
    (logged,) = events.Images("modrl/show/emptyrand5/sampled")
    with Image.open(out) as gif:
        assert (logged.width, logged.height) == gif.size and gif.n_frames > 1
    assert logged.step == 256 and logged.encoded_image_string == out.read_bytes()  # the GIF itself: it animates
