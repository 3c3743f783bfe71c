"""palaestrAI 3.5's seeds: one numpy RandomState from the run's seed (hashed by
palaestrAI's `seeding.np_random`) hands out `randint(0, 5000)` per environment entry,
then per agent, phase after phase. An environment's seed is its entry's plus the
instance's creation index (the worker); a brain's is its agent's."""

from __future__ import annotations

from palaestrai.util import seeding


def phase_seeds(
    run_seed: int, entries: list[tuple[int, int]], phase: int
) -> tuple[list[int], list[int]]:
    """The environment entries' and the agents' seeds of phase `phase`, where
    `entries` holds (environments, agents) per phase."""
    rng = seeding.np_random(run_seed)[0]
    for environments, agents in entries[:phase]:
        for _ in range(environments + agents):
            rng.randint(0, 5000)
    environments, agents = entries[phase]
    environment_seeds = [int(rng.randint(0, 5000)) for _ in range(environments)]
    agent_seeds = [int(rng.randint(0, 5000)) for _ in range(agents)]
    return environment_seeds, agent_seeds
