"""`runs plot`: a real run's plots as one PNG that decodes, 1200 x 800, with the curves
drawn, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from palaestrio.results.plot import DPI, HEIGHT_IN, WIDTH_IN
from results_support import RUN_UID, invoke, make_run

pytest_plugins = ["pg"]

FIRST_LINE_COLOUR = (0x1F, 0x77, 0xB4)
"""matplotlib's first colour (C0): the first agent's objective and reward curves."""


def assert_plot(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (int(WIDTH_IN * DPI), int(HEIGHT_IN * DPI)) == (1200, 800)
        colours = {colour: count for count, colour in image.convert("RGB").getcolors(1 << 20)}
        curve = colours.get(FIRST_LINE_COLOUR, 0)
    assert curve > 100, "no curve drawn"


def test_plot_writes_a_png_that_decodes(tmp_path: Path, store_database: str) -> None:
    make_run(tmp_path, store_database)
    path = tmp_path / "plots" / "run.png"
    path.parent.mkdir()
    result = invoke("runs", "plot", RUN_UID, "-o", path, "--store", store_database)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.strip() == str(path)
    assert_plot(path)
