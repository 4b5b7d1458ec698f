"""Option ensembles (modrl.options.ensemble): the mixture they act with, what members must share, libraries of them,
and that they refuse to be trained or saved."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modrl.options import Option, OptionConfig, OptionEnsemble, OptionLibrary, ensemble_library, run_option

SLOTS = (("red", "blue"), ("key", "ball"))
TINY = OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2, arg_slots=SLOTS)


def _fixed(logits: list[float], config: OptionConfig = TINY, beta: float | None = None) -> Option:
    """An option whose action logits (and β) are the same in every state."""
    option = Option(config)
    last = option.policy[-1]
    assert isinstance(last, torch.nn.Linear)
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor(logits))
        if beta is not None:
            assert option.beta is not None
            option.beta.weight.zero_()
            option.beta.bias.fill_(float(np.log(beta / (1 - beta))))
    return option


def _inputs(option: Option, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    image = torch.randint(0, 3, (batch, *option.config.image_shape))
    args = option.encode_args(("blue", "ball")).expand(batch, -1)
    return image, torch.zeros(batch, dtype=torch.long), args


def test_ensemble_acts_with_the_mean_of_the_members_probabilities() -> None:
    a = _fixed([2.0, 1.6, -5.0, -5.0, -5.0, -5.0, -5.0])  # prefers action 0 a little
    b = _fixed([-5.0, 3.0, -5.0, -5.0, -5.0, -5.0, -5.0])  # almost surely action 1
    ensemble = OptionEnsemble([a, b])
    inputs = _inputs(a)
    mixed = torch.softmax(ensemble(*inputs).logits, dim=1)
    expected = (torch.softmax(a(*inputs).logits, dim=1) + torch.softmax(b(*inputs).logits, dim=1)) / 2
    assert torch.allclose(mixed, expected, atol=1e-6)
    assert a.act(*inputs, deterministic=True)[0].tolist() == [0, 0, 0]
    assert ensemble.act(*inputs, deterministic=True)[0].tolist() == [1, 1, 1]  # the mixture's mode, not member 0's
    draws = ensemble.act(*_inputs(a, batch=4000), generator=torch.Generator().manual_seed(0))[0]
    share = torch.bincount(draws, minlength=7).float() / 4000
    assert torch.allclose(share, expected[0], atol=0.03)
    assert len(ensemble) == 2 and ensemble.parameterised and ensemble.encode_args(("red", "key")).tolist() == [0, 0]


def test_learned_termination_is_the_members_mean_and_predicates_come_from_member_0() -> None:
    learned = OptionConfig(
        channels=(4,), features_dim=4, hidden=(), embed_dim=2, arg_slots=SLOTS, termination="learned"
    )
    a, b = _fixed([0.0] * 7, learned, beta=0.2), _fixed([0.0] * 7, learned, beta=0.6)

    def holds(info: Mapping[str, Any], args: tuple[str, ...]) -> bool:
        return bool(info.get("done"))

    a.termination_predicate = holds
    ensemble = OptionEnsemble([a, b])
    beta = ensemble(*_inputs(a)).termination
    assert beta is not None and torch.allclose(beta, torch.full((3,), 0.4), atol=1e-5)
    assert ensemble.terminates({"done": True}, ("red", "key"), None, np.random.default_rng(0))
    assert not ensemble.terminates({}, ("red", "key"), None, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("other", "words"),
    [
        (
            OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2, arg_slots=(("red",), ("key", "ball"))),
            "arg_slots",
        ),
        (
            OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2, arg_slots=SLOTS, image_shape=(5, 5, 3)),
            "image_shape",
        ),
        (
            OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2, arg_slots=SLOTS, termination="learned"),
            "termination",
        ),
    ],
)
def test_members_must_share_interface_arguments_and_termination(other: OptionConfig, words: str) -> None:
    with pytest.raises(ValueError, match=f"member 1 does not fit member 0 .*{words}"):
        OptionEnsemble([Option(TINY), Option(other)])


def test_members_may_differ_in_size_but_an_ensemble_needs_two() -> None:
    bigger = OptionConfig(channels=(8, 8), features_dim=16, hidden=(16,), embed_dim=4, arg_slots=SLOTS)
    ensemble = OptionEnsemble([Option(TINY), Option(bigger)])
    assert ensemble(*_inputs(ensemble)).logits.shape == (3, TINY.num_actions)
    with pytest.raises(ValueError, match="at least two members, got 1"):
        OptionEnsemble([Option(TINY)])


def test_an_ensemble_only_acts() -> None:
    ensemble = OptionEnsemble([Option(TINY), Option(TINY)])
    with pytest.raises(TypeError, match="only acts; train its members"):
        ensemble.features(*_inputs(ensemble))
    with pytest.raises(TypeError, match="not saved"):
        ensemble.spec()


def test_ensemble_library_joins_libraries_by_name_and_cannot_be_saved(tmp_path: Path) -> None:
    first, second = OptionLibrary(), OptionLibrary()
    goto_a, goto_b, drop, open_ = Option(TINY), Option(TINY), Option(TINY), Option(TINY)
    first.add("goto", goto_a)
    first.add("drop", drop)
    second.add("open", open_)
    second.add("goto", goto_b)
    joined = ensemble_library([first, second])
    assert joined.names == ["goto", "drop", "open"]
    goto = joined.get("goto")
    assert isinstance(goto, OptionEnsemble) and list(goto.members) == [goto_a, goto_b]
    assert joined.get("drop") is drop and joined.get("open") is open_  # one library has them: its option runs
    with pytest.raises(TypeError, match="not saved"):
        joined.save(tmp_path / "joined")
    assert not (tmp_path / "joined").exists()  # refused before anything was written
    with pytest.raises(ValueError, match="at least two libraries"):
        ensemble_library([first])
    odd = OptionLibrary()
    odd.add("goto", Option(OptionConfig(channels=(4,), features_dim=4, hidden=(), embed_dim=2, arg_slots=(("red",),))))
    with pytest.raises(ValueError, match=r"option .goto.: .*arg_slots"):
        ensemble_library([first, odd])


class _Steps:
    """A stand-in env for run_option: ``done`` in info after ``n`` steps; records the actions it got."""

    def __init__(self, n: int, image_shape: tuple[int, ...]) -> None:
        self.n, self.actions = n, []  # type: list[int]
        self.obs = {"image": np.zeros(image_shape, dtype=np.uint8), "direction": 0}

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.actions.append(action)
        return self.obs, 0.0, False, False, {"done": len(self.actions) >= self.n}


def test_run_option_runs_an_ensemble_like_any_option() -> None:
    a, b = _fixed([-5.0, 3.0, -5.0, -5.0, -5.0, -5.0, -5.0]), _fixed([-5.0, 3.0, -5.0, -5.0, -5.0, -5.0, -5.0])
    a.termination_predicate = lambda info, args: bool(info.get("done"))
    env = _Steps(4, TINY.image_shape)
    run = run_option(
        env,
        OptionEnsemble([a, b]),
        ("red", "ball"),
        env.obs,
        {},
        max_steps=10,
        gamma=1.0,  # type: ignore[arg-type]
        rng=np.random.default_rng(0),
        deterministic=True,
    )
    assert run.duration == 4 and env.actions == [1, 1, 1, 1]
