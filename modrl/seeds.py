"""The env seed ranges of modrl, in one place so that they stay disjoint.

An env reset seed decides a task's layout. A policy evaluated on a layout it was trained or cloned on would report
memorisation as generalisation, so training, evaluation and demonstrations draw from separate ranges:

- training: env ``i`` of a run with seed ``s`` is seeded ``s + i``; run seeds lie in ``[0, MAX_SEED)`` and ``n_envs``
  is far below ``MAX_SEED``, so training seeds stay below ``2 * MAX_SEED``;
- evaluation: episode ``k`` is seeded ``EVAL_SEED_BASE + k`` (``modrl eval``, ``modrl eval --planner``, the router's
  and the options' evaluations), ``k`` below 1,000,000 (:data:`EVAL_TASK_SEEDS`);
- demonstrations: episode ``j`` of a recording (oracle demonstrations, the planner's skill recordings, their DAgger
  rounds) is seeded ``DEMO_SEED_BASE + j``; a demonstration whose task-env seed falls in :data:`EVAL_TASK_SEEDS` is
  skipped, so no evaluation layout is ever demonstrated.
"""

from __future__ import annotations

#: Run seeds lie in ``[0, MAX_SEED)``; a run's training env ``i`` is seeded ``seed + i``.
MAX_SEED = 1_000_000
#: Evaluation episode ``k`` uses env seed ``EVAL_SEED_BASE + k``, far above every training seed.
EVAL_SEED_BASE = 1_000_000_000
#: Task-env seeds an evaluation may use (``EVAL_SEED_BASE + k``): a demonstration never runs on one of them.
EVAL_TASK_SEEDS = range(EVAL_SEED_BASE, EVAL_SEED_BASE + 1_000_000)
#: Demonstration episode ``j`` is reset with seed ``DEMO_SEED_BASE + j``, above every evaluation seed.
DEMO_SEED_BASE = 1_500_000_000

assert EVAL_SEED_BASE > MAX_SEED * 2
assert EVAL_TASK_SEEDS.stop <= DEMO_SEED_BASE
