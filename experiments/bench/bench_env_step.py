"""Step throughput of generated modrl tasks vs comparable stock BabyAI levels, measured in the same run.

Each pair runs the same random action sequence (auto-reset on episode end) through ``gymnasium.make(id)`` for both
envs, alternating generated / stock for ``--repeats`` rounds; the median steps/s of each and the ratio
stock / generated are printed (the issue's target: generated ``step()`` within 1.5x of stock, i.e. ratio <= 1.5).
"step" times only ``env.step`` calls; "step+reset" includes the resets. The generated env is measured twice: as
registered (symbolic state in ``info`` every step) and with ``predicates_in_info=False``.

    python experiments/bench/bench_env_step.py --steps 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

import gymnasium as gym
import numpy as np

import modrl.envs  # noqa: F401  (registers the ModRL-* ids)

#: (generated id, comparable stock id, why they compare)
PAIRS: tuple[tuple[str, str, str], ...] = (
    ("ModRL-colour-type-pickup-blue-key-v0", "BabyAI-GoToLocalS7N4-v0", "one 7x7 room, 4 objects"),
    ("ModRL-verb-object-putnext-red-key-green-ball-v0", "BabyAI-PutNextLocalS6N4-v0", "putnext in one room"),
    (
        "ModRL-sequences-open-red-door_then_pickup-blue-key_then_goto-green-ball-v0",
        "BabyAI-OpenTwoDoors-v0",
        "rooms joined by doors",
    ),
)


def measure(env_id: str, actions: np.ndarray, **kwargs: object) -> tuple[float, float]:
    """``(steps/s counting only step(), steps/s including resets)`` over ``actions``."""
    env = gym.make(env_id, **kwargs)
    sink = io.StringIO()  # BabyAI's rejection sampling prints to stdout on reset
    with contextlib.redirect_stdout(sink):
        env.reset(seed=0)
        stepping = 0.0
        start = time.perf_counter()
        for action in actions:
            t0 = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(int(action))
            stepping += time.perf_counter() - t0
            if terminated or truncated:
                env.reset()
        total = time.perf_counter() - start
    return len(actions) / stepping, len(actions) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds per pair")
    args = parser.parse_args()
    actions = np.random.default_rng(0).integers(0, 6, size=args.steps)
    columns = (("step/s gen", 10), ("stock", 8), ("ratio", 6), ("+reset gen", 10), ("stock", 8), ("ratio", 6))
    print(f"{'':<18} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for generated, stock, why in PAIRS:
        print(f"{generated} vs {stock} ({why})")
        for label, kwargs in (("as registered", {}), ("no predicates", {"predicates_in_info": False})):
            gen, ref = [], []
            for _ in range(args.repeats):
                gen.append(measure(generated, actions, **kwargs))
                ref.append(measure(stock, actions))
            g_step, g_all = (statistics.median(x[i] for x in gen) for i in (0, 1))
            s_step, s_all = (statistics.median(x[i] for x in ref) for i in (0, 1))
            print(
                f"  {label:<16} {g_step:>10.0f} {s_step:>8.0f} {s_step / g_step:>6.2f} "
                f"{g_all:>10.0f} {s_all:>8.0f} {s_all / g_all:>6.2f}"
            )
    print("ratio = stock steps/s / generated steps/s (target <= 1.5)")


if __name__ == "__main__":
    main()
