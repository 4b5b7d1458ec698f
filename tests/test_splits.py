"""Splits and generated suites: held-out combinations never reach training, coverage, versions, registration."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest

from modrl.config import ConfigError
from modrl.envs import SPLITS, SUITES, Suite, TaskSpec, get_split, get_suite
from modrl.envs.catalog import ENTRY_POINT, env_id
from modrl.envs.grammar import COLOURS, OBJECT_TYPES, VERB_TYPES, VERBS, parse_object, parse_task
from modrl.envs.splits import HELD_OUT_OBJECTS, HELD_OUT_ORDERS, HELD_OUT_VERB_TYPES, SEQUENCE_ATOMS, split_problems
from modrl.envs.task_env import SubtaskSequence, TaskEnv
from modrl.registry import UnknownNameError

#: (version, fingerprint, #train, #test): changing a split's tasks must bump its version (and this table).
PINNED = {
    "colour-type": (1, "c2537c241e0f39a0", 36, 12),
    "verb-object": (1, "fd06f9c9824c6757", 24, 9),
    "sequences": (1, "d57a0ab40a41275c", 20, 15),
}
SEEDS = range(40)


def test_splits_are_pinned_to_their_version() -> None:
    assert SPLITS.names() == sorted(PINNED)
    for name, (version, fingerprint, n_train, n_test) in PINNED.items():
        split = get_split(name)
        assert (split.version, split.fingerprint, len(split.train), len(split.test)) == (
            version,
            fingerprint,
            n_train,
            n_test,
        )
        assert split.as_dict()["train"] == list(split.train) and split.as_dict()["version"] == version


@pytest.mark.parametrize("name", sorted(PINNED))
def test_train_and_test_are_disjoint_and_valid(name: str) -> None:
    split = get_split(name)
    assert not set(split.train) & set(split.test)
    assert len(set(split.tasks)) == len(split.tasks)
    assert split_problems(split) == []
    for t in split.tasks:
        assert parse_task(t).name == t


def test_colour_type_holds_out_pairs_for_every_verb_with_full_coverage() -> None:
    split = get_split("colour-type")
    held = {parse_object(n) for n in HELD_OUT_OBJECTS}
    train = [parse_task(n) for n in split.train]
    test = [parse_task(n) for n in split.test]
    assert all(not held & set(t.objects) for t in train)
    assert all(held & set(t.objects) for t in test)
    seen = {o for t in train for o in t.objects}
    assert {o.colour for o in seen} == set(COLOURS) and {o.type for o in seen} == set(OBJECT_TYPES)
    for verb in ("goto", "pickup", "open"):
        trained = {t.subtasks[0].obj for t in train if t.subtasks[0].verb == verb}
        tested = {t.subtasks[0].obj for t in test if t.subtasks[0].verb == verb}
        assert tested == {o for o in held if o.type in VERB_TYPES[verb]}  # every held-out pair, for every verb
        assert {o.type for o in trained} == set(VERB_TYPES[verb])  # the verb still sees every type it takes
    assert {o.colour for o in held} == set(COLOURS)  # one pair per colour


def test_verb_object_holds_out_verb_type_pairs() -> None:
    split = get_split("verb-object")
    pairs = {n: {f"{s.verb}-{s.obj.type}" for s in parse_task(n).subtasks} for n in split.tasks}
    trained = set().union(*(pairs[n] for n in split.train))
    assert not trained & set(HELD_OUT_VERB_TYPES)
    assert all(pairs[n] <= set(HELD_OUT_VERB_TYPES) for n in split.test)
    assert {p.split("-")[0] for p in trained} == set(VERBS)
    assert {p.split("-")[1] for p in trained} == set(OBJECT_TYPES)


def test_sequences_train_short_and_test_unseen_orders_and_lengths() -> None:
    split = get_split("sequences")
    train = [parse_task(n) for n in split.train]
    test = [parse_task(n) for n in split.test]
    assert max(len(t) for t in train) == 2 and {len(t) for t in test} == {2, 3, 4}
    orders = {t.subtasks for t in train}
    for t in test:
        assert t.subtasks not in orders
        if len(t) == 2:
            assert t.subtasks[::-1] in orders
    atoms = {parse_task(a).subtasks[0] for a in SEQUENCE_ATOMS.values()}
    assert {t.subtasks[0] for t in train if len(t) == 1} == atoms
    assert len(HELD_OUT_ORDERS) == sum(len(t) == 2 for t in test)


def test_split_validation_reports_leaks() -> None:
    good = get_split("colour-type")
    with pytest.raises(ConfigError, match="train task goto-red-ball mentions a held-out object"):
        dataclasses.replace(
            good, train=(*good.train, "goto-red-ball"), test=tuple(n for n in good.test if n != "goto-red-ball")
        )
    seq = get_split("sequences")
    long = seq.test[-1]
    with pytest.raises(ConfigError, match="longer than 2"):
        dataclasses.replace(seq, train=(*seq.train, long), test=tuple(n for n in seq.test if n != long))
    with pytest.raises(ConfigError, match="test colours never seen in train: purple"):
        dataclasses.replace(get_split("verb-object"), test=("goto-purple-key",))
    with pytest.raises(ConfigError, match="listed twice"):
        dataclasses.replace(good, test=(*good.test, good.train[0]))


def test_generated_suites_register_their_splits_and_ids() -> None:
    for name in PINNED:
        split, suite = get_split(name), get_suite(name)
        assert suite.version == split.version and suite.task_names == split.train + split.test
        assert suite.split("train") == split.train and suite.split("test") == split.test
        assert suite.split_indices("test") == tuple(range(len(split.train), suite.num_tasks))
        for spec in suite.tasks:
            assert spec.env_id == env_id(name, spec.name) == f"ModRL-{name}-{spec.name}-v0"
            registered = gym.spec(spec.env_id)
            assert registered.entry_point == ENTRY_POINT and registered.kwargs["task"] == spec.name
            avoid = registered.kwargs.get("avoid", ())
            assert avoid == (split.avoid if spec.name in split.train else ())
    assert get_split("colour-type").avoid == HELD_OUT_OBJECTS


def test_stock_suites_get_the_trivial_split_and_unknown_names_list_valid_ones() -> None:
    suite = get_suite("minigrid-keys")
    assert suite.splits == {"train": suite.task_names}
    with pytest.raises(KeyError, match="splits: train"):
        suite.split("test")
    with pytest.raises(UnknownNameError, match="colour-type"):
        get_split("colour")
    assert {"colour-type", "verb-object", "sequences"} <= set(SUITES.names())


def test_suite_split_validation() -> None:
    tasks = (TaskSpec(name="a", env_id="x"), TaskSpec(name="b", env_id="y"))
    assert Suite(name="s", version=1, description="", tasks=tasks, splits={"train": ("a",), "test": ("b",)})
    with pytest.raises(ConfigError, match="splits: unknown task names: c"):
        Suite(name="s", version=1, description="", tasks=tasks, splits={"train": ("a", "c")})
    with pytest.raises(ConfigError, match="more than one split"):
        Suite(name="s", version=1, description="", tasks=tasks, splits={"train": ("a",), "test": ("a", "b")})
    with pytest.raises(ConfigError, match="at least one task"):
        Suite(name="s", version=1, description="", tasks=tasks, splits={"train": ("a", "b"), "test": ()})


def _instruction_objects(env: TaskEnv) -> set[tuple[str, str]]:
    instrs = env.instrs
    assert isinstance(instrs, SubtaskSequence)
    descs = [getattr(i, a) for i in instrs.instrs for a in ("desc", "desc_move", "desc_fixed") if hasattr(i, a)]
    return {(d.color, d.type) for d in descs}


def _grid_objects(env: TaskEnv) -> set[tuple[str, str]]:
    return {(c.color, c.type) for c in env.grid.grid if c is not None and c.type != "wall"}


def test_no_held_out_combination_is_ever_generated_in_training() -> None:
    """Build every training task over many seeds and read what the episode actually contains."""
    held = {(o.colour, o.type) for o in map(parse_object, HELD_OUT_OBJECTS)}
    shown: set[tuple[str, str]] = set()
    for name in get_split("colour-type").train:
        env = gym.make(env_id("colour-type", name)).unwrapped
        for seed in SEEDS:
            env.reset(seed=seed)
            seen = _grid_objects(env) | _instruction_objects(env)
            assert not seen & held, (name, seed, seen & held)
            shown |= seen
    assert len(shown) >= 18  # distractors do vary: most legal combinations do appear
    for name in get_split("verb-object").train:
        env = gym.make(env_id("verb-object", name)).unwrapped
        for seed in SEEDS[:5]:
            env.reset(seed=seed)
            kinds = {
                f"{type(i).__name__}-{i.desc_move.type if hasattr(i, 'desc_move') else i.desc.type}"
                for i in env.instrs.instrs
            }
            assert not kinds & {"GoToInstr-key", "PickupInstr-box", "PutNextInstr-ball"}, (name, kinds)
    for name in get_split("sequences").train:
        env = gym.make(env_id("sequences", name)).unwrapped
        env.reset(seed=0)
        assert len(env.instrs.instrs) <= 2 and tuple(env.instrs.symbols) in {
            parse_task(n).sketch for n in get_split("sequences").train
        }
