"""Entry point: `python benchmarks/chaos ...` (the package's directory on the path is
replaced by benchmarks/ and tests/, whose helpers it uses)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:1] = [str(HERE.parent), str(HERE.parent.parent / "tests")]

from chaos.driver import main  # noqa: E402

sys.exit(main())
