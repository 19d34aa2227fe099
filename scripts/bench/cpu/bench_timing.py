"""Timing for the side-by-side benchmarks: the paths take turns, each turn back to back.

Alternating single calls skews them: a call that starts right after another library's returns runs
while that library's worker threads still spin (torch's OpenMP pool, XLA's), which slows its first
milliseconds. A training loop runs one library back to back, so each turn does too, and its first
call, the one that pays for the switch, is not timed. Taking turns still lets load changes on a
shared machine hit every path.
"""

from __future__ import annotations

import time
from typing import Callable


def time_in_turns(
    paths: dict[str, Callable[[], object]],
    *,
    reps: int,
    block: int,
    warm_up: bool = True,
    after_turn: Callable[[str, list[float]], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each path: `reps` turns per path, each an untimed call then `block` timed ones.

    Each callable must finish its work before it returns (block_until_ready on the JAX side).
    Every path is called the same number of times: (1 if warm_up) + reps * (1 + block).
    after_turn(name, that path's times so far) runs after each turn (progress lines).
    """
    if warm_up:
        for fn in paths.values():  # (and compile)
            fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(reps):
        for name, fn in paths.items():
            fn()
            for _ in range(block):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
            if after_turn is not None:
                after_turn(name, times[name])
    return times
