"""The RunGovernor: one process per experiment run (``python -m palaestrio.governor``).

`process.main` parses the command line and ties the process to its executor
(`lifeline`); `run.serve_run` is the straight-line life of a governor: serve MDP, await
the start request, run the simulation with its records streaming to the store, report
the outcome to the executor, exit.
"""
