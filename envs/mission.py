"""Missions as token ids: a fixed, versioned vocabulary derived from the task grammar, and an observation wrapper.

:meth:`MissionVocabulary.from_grammar` enumerates every subtask sentence the grammar (:mod:`modrl.envs.grammar`) can
produce, every verb over every object it takes, every colour, every ``putnext`` target, plus a two-subtask sequence
for the ``", then "`` joiner, and keeps the sorted set of their tokens after ``<pad>`` (id 0) and ``<unk>`` (id 1),
then the other words of the stock suites' missions (:data:`STOCK_WORDS`).
A mission is tokenised into lower-case words and single punctuation marks (``","`` is a token). Bump
:data:`VOCABULARY_VERSION` whenever the word list changes, so token ids stay comparable across runs.

:class:`MissionTokens` adds the encoded mission of the unwrapped env to the ``Dict`` observation of
:class:`~modrl.envs.wrappers.TaskObservation` as a ``MultiDiscrete([V] * max_len)`` entry ``"mission"``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from modrl.config import ConfigError, check, check_int
from modrl.envs.catalog import ENTRY_POINT
from modrl.envs.grammar import (
    COLOURS,
    OBJECT_TYPES,
    PICKABLE_TYPES,
    VERB_TYPES,
    VERBS,
    ObjectRef,
    Subtask,
    parse_task,
    subtask,
    task,
)
from modrl.envs.suites import Suite

PAD = "<pad>"
"""Padding token, id 0."""
UNK = "<unk>"
"""Unknown-word token, id 1."""
VOCABULARY_VERSION = 2
"""Version of the grammar vocabulary; bumped whenever :meth:`MissionVocabulary.from_grammar` changes its words.

Version 1: ``<pad>``, ``<unk>`` and the grammar's words, sorted. Version 2 appends :data:`STOCK_WORDS` (ids of the
version-1 words are unchanged)."""

STOCK_WORDS: tuple[str, ...] = (
    "a",
    "after",
    "and",
    "avoid",
    "behind",
    "front",
    "get",
    "goal",
    "in",
    "lava",
    "left",
    "of",
    "on",
    "right",
    "square",
    "use",
    "you",
    "your",
)
"""Words of the stock MiniGrid/BabyAI missions of the built-in stock suites that the grammar does not use (collected
from their missions over many seeds; a test checks those suites encode without ``<unk>``)."""

#: Longest padded mission (tokens) an observation may carry: BabyAI's longest missions have about 40.
MAX_MISSION_LEN = 4096
_TOKEN_RE = re.compile(r"[a-z0-9]+|[^a-z0-9\s]")


def tokenize(mission: str) -> list[str]:
    """Lower-case words and single punctuation marks: ``"open the red door, then ..."`` -> ``["open", ..., ","]``."""
    return _TOKEN_RE.findall(mission.lower())


@dataclass(frozen=True, kw_only=True)
class MissionVocabulary:
    """A fixed word list: token id = position in ``words``; ``words[0]`` is ``<pad>``, ``words[1]`` is ``<unk>``.

    Attributes:
        words: The tokens, unique, starting with ``<pad>`` and ``<unk>``.
        version: Bumped whenever ``words`` change.
    """

    words: tuple[str, ...]
    version: int
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(self.words))
        check(self.words[:2] == (PAD, UNK), "words", f"must start with {PAD!r}, {UNK!r}, got {self.words[:2]}")
        check(len(set(self.words)) == len(self.words), "words", "tokens must be unique")
        check(all(isinstance(w, str) and w for w in self.words), "words", "tokens must be non-empty strings")
        check(isinstance(self.version, int) and self.version >= 1, "version", f"must be >= 1, got {self.version!r}")
        object.__setattr__(self, "_ids", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def from_grammar(cls) -> MissionVocabulary:
        """The vocabulary of every mission the task grammar can produce (cached; version :data:`VOCABULARY_VERSION`)."""
        return _grammar_vocabulary()

    @property
    def size(self) -> int:
        """Number of tokens ``V`` (specials included): token ids are in ``[0, V)``."""
        return len(self.words)

    @property
    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of the version and the words: record it with results."""
        text = "\n".join([str(self.version), *self.words])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def token_id(self, word: str) -> int:
        """Id of ``word``; 1 (``<unk>``) for a word not in the vocabulary."""
        return self._ids.get(word, 1)

    def encode(self, mission: str, max_len: int) -> np.ndarray:
        """Token ids of ``mission``, padded with 0 to ``max_len``.

        Returns:
            ``(max_len,) int64``: ids of :func:`tokenize` (unknown words -> 1), then zeros.

        Raises:
            modrl.config.ConfigError: ``max_len`` is not an integer >= 1.
            ValueError: ``mission`` has more than ``max_len`` tokens (the message gives its length).
        """
        check_int(max_len, "max_len", low=1, high=MAX_MISSION_LEN)
        tokens = tokenize(mission)
        if len(tokens) > max_len:
            raise ValueError(f"mission {mission!r} has {len(tokens)} tokens, more than max_len={max_len}")
        out = np.zeros(max_len, dtype=np.int64)
        out[: len(tokens)] = [self.token_id(t) for t in tokens]
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids, padding dropped; ``decode(encode(m, n)) == m`` for a grammar mission ``m``."""
        words = [self.words[int(i)] for i in ids if int(i) != 0]
        return " ".join(words).replace(" ,", ",")


def grammar_missions() -> Iterator[str]:
    """One sentence per subtask the grammar allows (every verb, object, colour and target) and one sequence."""
    objects = [ObjectRef(colour=c, type=t) for t in OBJECT_TYPES for c in COLOURS]
    pickable = [o for o in objects if o.type in PICKABLE_TYPES]
    for verb in VERBS:
        for obj in (o for o in objects if o.type in VERB_TYPES[verb]):
            targets: Sequence[ObjectRef | None] = [p for p in pickable if p != obj] if verb == "putnext" else [None]
            for target in targets:
                yield Subtask(verb=verb, obj=obj, target=target).mission
    yield task(subtask("goto", COLOURS[0], "ball"), subtask("goto", COLOURS[1], "ball")).mission


@functools.cache
def _grammar_vocabulary() -> MissionVocabulary:
    words = sorted({w for mission in grammar_missions() for w in tokenize(mission)})
    stock = sorted(set(STOCK_WORDS) - set(words))
    return MissionVocabulary(words=(PAD, UNK, *words, *stock), version=VOCABULARY_VERSION)


def suite_missions(suite: Suite) -> tuple[str, ...]:
    """The mission of every task of a generated suite, in task-id order.

    Raises:
        modrl.config.ConfigError: A task is not a generated (grammar) task, so its mission is only known per episode.
    """
    missions = []
    for spec in suite.tasks:
        registered = gym.spec(spec.env_id)
        kwargs = {**registered.kwargs, **spec.kwargs}
        if registered.entry_point != ENTRY_POINT or not isinstance(kwargs.get("task"), str):
            raise ConfigError(
                f"max_len: task {spec.name!r} of suite {suite.name!r} is not a generated task; give max_len explicitly"
            )
        missions.append(parse_task(kwargs["task"]).mission)
    return tuple(missions)


def suite_max_len(suite: Suite) -> int:
    """Padded mission length for ``suite``: its declared ``mission_max_len``, else the longest mission of a generated
    suite in tokens, over all its tasks (so train and test spaces agree).

    Raises:
        modrl.config.ConfigError: A stock suite without ``mission_max_len``.
    """
    if suite.mission_max_len is not None:
        return suite.mission_max_len
    return max(len(tokenize(m)) for m in suite_missions(suite))


class MissionTokens(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Add ``"mission": (max_len,) int64`` token ids of the unwrapped env's ``mission`` to a ``Dict`` observation.

    Wrap it outside :class:`~modrl.envs.wrappers.TaskObservation` (which drops the text mission). The mission is read
    from ``env.unwrapped.mission`` on every reset and step (BabyAI levels set it at reset).

    Observation:
        The inner ``Dict`` plus ``mission``: ``MultiDiscrete([V] * max_len)``, ``(max_len,) int64`` (0 = padding).

    Args:
        env: An env with a ``Dict`` observation space without a ``"mission"`` entry.
        vocabulary: The token table.
        max_len: Padded length; a longer mission raises ``ValueError`` when it is observed.
    """

    def __init__(self, env: gym.Env, *, vocabulary: MissionVocabulary, max_len: int) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, vocabulary=vocabulary, max_len=max_len)
        gym.ObservationWrapper.__init__(self, env)
        check(
            isinstance(vocabulary, MissionVocabulary),
            "vocabulary",
            f"must be a MissionVocabulary, got {type(vocabulary).__name__}",
        )
        check_int(max_len, "max_len", low=1, high=MAX_MISSION_LEN)
        inner = env.observation_space
        if not isinstance(inner, spaces.Dict) or "mission" in inner.spaces:
            raise TypeError(f"MissionTokens needs a Dict observation space without 'mission', got {inner}")
        self.vocabulary = vocabulary
        self.max_len = max_len
        self.observation_space = spaces.Dict(
            {
                **inner.spaces,
                "mission": spaces.MultiDiscrete(np.full(max_len, vocabulary.size, dtype=np.int64)),
            }
        )
        self._cached: tuple[str, np.ndarray] | None = None

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The inner observation plus the encoded current mission."""
        mission = getattr(self.env.unwrapped, "mission", None)
        if not isinstance(mission, str):
            raise TypeError(f"MissionTokens needs env.unwrapped.mission to be a str, got {type(mission).__name__}")
        if self._cached is None or self._cached[0] != mission:
            self._cached = (mission, self.vocabulary.encode(mission, self.max_len))
        return {**observation, "mission": self._cached[1].copy()}
