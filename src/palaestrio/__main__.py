"""`python -m palaestrio`: the `palaestrio` command."""

from palaestrio.cli import main

main()
