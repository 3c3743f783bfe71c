"""Brain dumps: files in palaestrAI's `FileBrainDumper` layout, recorded in the store.

A brain's dumps go to `<data path>/brains/<experiment run uid>/<phase>/<agent>.bin`
(`<agent>-<tag>.bin` with a tag), as palaestrAI writes them, and each one stored is
announced to the step loop, which records it (`BrainStored`, the store's
`brain_states`). A phase after the first loads the previous phase's dump of the same
agent when there is one; an agent's `load:` names another agent, run or phase, and
then a missing dump is an error.
"""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from ..records import BrainLoad, BrainStored, Record

if TYPE_CHECKING:
    from ..components.agent import Brain

DATA_PATH = Path("_outputs")
"""palaestrAI's default data path (relative to the working directory)."""


class BrainLocation(msgspec.Struct, frozen=True):
    agent: str
    experiment_run: str
    phase: int

    def describe(self) -> str:
        return (
            f"agent {self.agent!r} in phase {self.phase} of experiment run {self.experiment_run!r}"
        )

    # palaestrAI's names: its `Brain.store`/`load` read them for brains on its deprecated
    # `store_model(path)`/`load_model(path)`.
    @property
    def agent_name(self) -> str:
        return self.agent

    @property
    def experiment_run_uid(self) -> str:
        return self.experiment_run

    @property
    def experiment_run_phase(self) -> int:
        return self.phase


def load_location(
    load: BrainLoad | None, agent: str, run_uid: str, phase: int
) -> tuple[BrainLocation | None, bool]:
    """Where an agent's brain starts from, and whether `load:` asked for it (palaestrAI's
    rules: phase 0 loads only with a complete `load:`; later phases default to the
    agent itself in the previous phase)."""
    given = {} if load is None else {k: v for k, v in msgspec.structs.asdict(load).items() if v}
    if load is not None and load.phase is not None:
        given["phase"] = load.phase
    if phase == 0:
        if given.keys() != {"agent", "experiment_run", "phase"}:
            return None, False
        return BrainLocation(**given), True
    defaults: dict[str, str | int] = {"agent": agent, "experiment_run": run_uid, "phase": phase - 1}
    return BrainLocation(**{**defaults, **given}), bool(given)


class BrainDumper:
    """Saves and loads one agent's brain in one phase (palaestrAI's BrainDumper API:
    `save(stream, tag)`, `load(tag)`)."""

    def __init__(
        self,
        data_path: Path,
        dump_to: BrainLocation,
        load_from: BrainLocation | None,
        stored: Callable[[BrainStored], None],
    ) -> None:
        self.data_path = data_path
        self.dump_to = dump_to
        self.load_from = load_from
        self._stored = stored

    @property
    def _brain_source(self) -> Any:
        """What palaestrAI's `Brain.try_load_brain_dump` looks at."""
        return self.load_from

    @property
    def _brain_destination(self) -> Any:
        """Where palaestrAI's `Brain.store` has a brain on its deprecated API store its
        model: `<palaestrAI's data_path>/brains/<run>/<phase>/<agent>/`."""
        return self.dump_to

    def path(self, location: BrainLocation, tag: str | None = None) -> Path:
        name = f"{location.agent}-{tag}.bin" if tag else f"{location.agent}.bin"
        run = location.experiment_run.replace("/", "_")
        return self.data_path / "brains" / run / str(location.phase) / name.replace("/", "_")

    def save(self, brain_state: BinaryIO, tag: str | None = None) -> None:
        path = self.path(self.dump_to, tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        brain_state.seek(0)
        path.write_bytes(brain_state.read())
        self._stored(
            BrainStored(self.dump_to.phase, self.dump_to.agent, tag, str(path), time.time())
        )

    def load(self, tag: str | None = None) -> BinaryIO:
        if self.load_from is None:
            raise FileNotFoundError("no brain dump to load from")
        return io.BytesIO(self.path(self.load_from, tag).read_bytes())

    def has_dump(self) -> bool:
        """Whether any dump (any tag) is where this brain loads from."""
        if self.load_from is None:
            return False
        plain = self.path(self.load_from)
        deprecated = plain.parent / self.load_from.agent  # palaestrAI's store_model(path)
        return (
            plain.exists()
            or any(plain.parent.glob(f"{self.load_from.agent}-*.bin"))
            or deprecated.is_dir()
        )


class BrainDumpMissing(FileNotFoundError):
    """An agent's `load:` names a brain dump that does not exist."""


class PhaseBrains:
    """The dumpers of one phase's brains, and the BrainStored records not emitted yet."""

    def __init__(self, data_path: Path, run_uid: str, phase: int) -> None:
        self.data_path = data_path.absolute()  # recorded paths stay valid elsewhere
        self.run_uid = run_uid
        self.phase = phase
        self.pending: list[BrainStored] = []
        self.dumpers: dict[str, BrainDumper] = {}
        self._explicit: dict[str, bool] = {}

    def attach(self, brain: Brain, agent: str, load: BrainLoad | None) -> BrainDumper:
        """Give `brain` (of `agent`) its dumper."""
        location, explicit = load_location(load, agent, self.run_uid, self.phase)
        here = BrainLocation(agent, self.run_uid, self.phase)
        dumper = BrainDumper(self.data_path, here, location, self.pending.append)
        brain.dumper = self.dumpers[agent] = dumper
        self._explicit[agent] = explicit
        return dumper

    def load(self, brain: Brain, agent: str) -> None:
        """Let `brain` load its dump, if it has one to start from (before `setup`)."""
        dumper = self.dumpers[agent]
        source = dumper.load_from
        if source is None:
            return
        if dumper.has_dump():
            brain.load()
        elif self._explicit[agent]:
            where = dumper.path(source).parent
            raise BrainDumpMissing(
                f"'load' names a brain dump of {source.describe()}, but there is none "
                f"(looked in {str(where)!r})"
            )

    async def flush(self, emit: Callable[[Record], Awaitable[None]]) -> None:
        while self.pending:
            await emit(self.pending.pop(0))
