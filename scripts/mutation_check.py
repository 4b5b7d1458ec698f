"""Mutation check: plant known bugs one at a time and expect the tests that guard against each to fail.

Every mutant is an exact text replacement in one source file, applied to a *temporary copy* of the working tree
(the files git tracks or would track, as they are now), never to the real files: an interrupted run (Ctrl-C, kill)
leaves the repository untouched, and the copy is removed on exit. For each mutant a targeted, fast subset of the
tests runs (``pytest -x``, listed below next to the mutant) from the copy, whose ``modrl`` package the tests import
(the copy comes first on ``PYTHONPATH``, for subprocesses too). First the same subsets run on the unmutated copy:
they must pass, so a test that already fails cannot "kill" a mutant.

Usage::

    python scripts/mutation_check.py [--only NAME ...] [--keep]

Prints one row per mutant (killed / SURVIVED / ERROR and the seconds it took) and exits non-zero if any mutant
survived, a baseline failed, or a mutant's text no longer matches the source (update the mutant with the code).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Per pytest run; a mutant that hangs a test counts as an error, not as killed.
RUN_TIMEOUT_S = 240


@dataclass(frozen=True)
class Mutant:
    """One planted bug: in ``path``, replace each ``old`` (which must occur exactly once) by its ``new``."""

    name: str
    path: str
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]


FREEZE_GROW_TEST = "tests/test_updates.py::test_freeze_grow_holds_frozen_entries_against_gradients_and_momentum"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "uniform-router",
        "modrl/routers/soft.py",
        (
            (
                "weights = torch.softmax(logits / self.temperature, dim=-1)",
                "weights = torch.full_like(logits, 1.0 / logits.shape[-1])",
            ),
        ),
        ("tests/test_routers.py",),
    ),
    Mutant(
        "skipped-checkpoint-hash",
        "modrl/checkpoint.py",
        (('if hashlib.sha256(data).hexdigest() != entry["sha256"]:', "if False:"),),
        ("tests/test_checkpoint.py",),
    ),
    Mutant(
        "swapped-plan-steps",
        "modrl/planner/frontier.py",
        (
            (
                "return tuple(reversed(steps))",
                "ordered = list(reversed(steps))\n    ordered[:2] = ordered[:2][::-1]\n    return tuple(ordered)",
            ),
        ),
        ("tests/test_planner.py",),
    ),
    Mutant(
        "unguarded-update-rule",  # the guard neither masks gradients nor restores frozen entries (both off)
        "modrl/updates/guard.py",
        (
            ("return grad if mask is None else grad.masked_fill(mask, 0.0)", "return grad"),
            ("param.copy_(torch.where(mask, self._values[name], param))", "pass"),
        ),
        (FREEZE_GROW_TEST,),
    ),
    Mutant(
        "unmasked-update-rule",  # the restore alone: frozen entries still get gradients (and count in clipping)
        "modrl/updates/guard.py",
        (("return grad if mask is None else grad.masked_fill(mask, 0.0)", "return grad"),),
        (FREEZE_GROW_TEST,),
    ),
    Mutant(
        "unrestored-update-rule",  # the gradient mask alone: Adam's momentum from an earlier stage moves them
        "modrl/updates/guard.py",
        (("param.copy_(torch.where(mask, self._values[name], param))", "pass"),),
        (FREEZE_GROW_TEST,),
    ),
    Mutant(
        "unclipped-ppo-surrogate",  # hier_ppo's policy loss without PPO's clip
        "agents/options/hier_ppo.py",
        (("ratio.clamp(1 - clip, 1 + clip) * advantages", "ratio * advantages"),),
        ("tests/test_hier_ppo.py",),
    ),
    Mutant(
        "option-critic-never-updates",  # the learning test must tell a learner from an untrained policy
        "agents/options/critic.py",
        (("        optimizer.step()\n", "        pass\n"),),
        ("tests/test_option_critic.py::test_option_critic_learns_a_trivial_task",),
    ),
    Mutant(
        "task-env-reward-always-1",
        "envs/task_env.py",
        (
            (
                "return obs, reward, terminated, truncated, {**info, **self._task_info()}",
                "return obs, 1.0 if float(reward) > 0 else reward, terminated, truncated, "
                "{**info, **self._task_info()}",
            ),
        ),
        ("tests/test_rewards.py",),
    ),
    Mutant(
        "subtask-env-reward-always-1",
        "envs/subtask_env.py",
        (
            (
                "reward = 1.0 - 0.9 * unwrapped.step_count / unwrapped.max_steps if done else 0.0",
                "reward = 1.0 if done else 0.0",
            ),
        ),
        ("tests/test_rewards.py",),
    ),
    Mutant(
        "unexplained-env-warning",  # a new warning from an env must fail the env-checker tests, not vanish
        "envs/wrappers.py",
        (
            (
                "obs, reward, terminated, truncated, info = self.env.step(action)\n        info = {",
                "obs, reward, terminated, truncated, info = self.env.step(action)\n"
                '        __import__("warnings").warn("a new warning", UserWarning, stacklevel=1)\n        info = {',
            ),
        ),
        ("tests/test_task_env.py::test_wrapped_task_passes_both_env_checkers",),
    ),
    Mutant(
        "stock-wrapper-reward-always-1",
        "envs/wrappers.py",
        (
            (
                'info["is_success"] = bool(terminated and float(reward) > 0)',
                'info["is_success"] = bool(terminated and float(reward) > 0)\n            reward = float(reward > 0)',
            ),
        ),
        ("tests/test_rewards.py",),
    ),
)


def say(text: str, *, err: bool = False) -> None:
    """One line to stdout (or stderr), flushed: the table is read while the check runs."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
    stream.flush()


def copy_tree(destination: Path) -> None:
    """Copy the working tree's tracked and untracked-but-not-ignored files into ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # setup.cfg installs envs/ and agents/ as modrl.envs / modrl.agents: mirror that mapping inside the copy, so the
    # copy's own modrl package (first on PYTHONPATH) finds the copy's envs and agents, not the editable install's.
    (destination / "modrl" / "envs").symlink_to("../envs", target_is_directory=True)
    (destination / "modrl" / "agents").symlink_to("../agents", target_is_directory=True)


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    """``pytest -x`` over ``tests`` in ``tree``: (exit code, seconds, last output line); 124 on a time-out."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    # --basetemp inside the copy: the tests' temporary files go when the copy goes.
    basetemp = ["--basetemp", str(tree / ".pytest-tmp")]
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        *basetemp,
        "-m",
        "not slow",
        *tests,
    ]
    start = time.monotonic()
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, time.monotonic() - start, f"timed out after {RUN_TIMEOUT_S} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, time.monotonic() - start, lines[-1] if lines else ""


def check_imports_the_copy(tree: Path) -> None:
    """Refuse to go on if the copy's tests would import the real tree (then no mutant could be seen)."""
    code = "import modrl, modrl.envs.task_env as t; print(modrl.__file__); print(t.__file__)"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True)
    paths = out.stdout.split()
    if not all(Path(p).is_relative_to(tree) for p in paths):
        raise SystemExit(f"mutation_check: the copy imports {paths}, not {tree}; cannot plant mutants")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (its path is printed)")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = sorted(set(args.only or ()) - {m.name for m in MUTANTS})
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(m.name for m in MUTANTS)}")
    tree = Path(tempfile.mkdtemp(prefix="modrl-mutants-"))
    try:
        copy_tree(tree)
        check_imports_the_copy(tree)
        return run_all(tree, mutants)
    finally:
        if args.keep:
            say(f"kept {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


def run_all(tree: Path, mutants: list[Mutant]) -> int:
    """The baseline, then each mutant; prints the table; 0 when every mutant was killed."""
    baseline = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
    code, seconds, last = run_tests(tree, baseline)
    say(f"baseline ({len(baseline)} test targets, unmutated): exit {code} in {seconds:.0f} s: {last}")
    if code != 0:
        say("mutation_check: the tests fail without any mutant; fix them first", err=True)
        return 1
    rows = []
    for mutant in mutants:
        path = tree / mutant.path
        original = path.read_text(encoding="utf-8")
        counts = [original.count(old) for old, _ in mutant.edits]
        if counts != [1] * len(counts):
            rows.append((mutant.name, "ERROR", 0.0, f"{mutant.path}: the texts to replace occur {counts} times"))
            continue
        mutated = original
        for old, new in mutant.edits:
            mutated = mutated.replace(old, new)
        path.write_text(mutated, encoding="utf-8")
        try:
            code, seconds, last = run_tests(tree, mutant.tests)
        finally:
            path.write_text(original, encoding="utf-8")
        verdict = {0: "SURVIVED", 1: "killed"}.get(code, "ERROR")
        rows.append((mutant.name, verdict, seconds, f"exit {code}: {last}"))
        say(f"  {mutant.name}: {verdict}")
    width = max(len(name) for name, *_ in rows)
    say(f"\n{'mutant':<{width}}  verdict   secs  tests said")
    for name, verdict, seconds, detail in rows:
        say(f"{name:<{width}}  {verdict:<8}  {seconds:4.0f}  {detail[:90]}")
    bad = [name for name, verdict, *_ in rows if verdict != "killed"]
    if bad:
        say(f"mutation_check: not killed: {', '.join(bad)}", err=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
