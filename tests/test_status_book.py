"""The executor's run statuses reach a store that lost a request (its process died
with the request in hand): the status is sent again, soon enough for a run's end to be
stored within the finalize grace (chaos suite, seed 20261204, iteration 285)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import trio

from mdp_support import running_broker, running_worker
from palaestrio.executor import ExperimentRunRuntimeInformation
from palaestrio.executor.options import ExecutorOptions
from palaestrio.executor.runs import RunSlot
from palaestrio.executor.statuses import StatusBook
from palaestrio.experiment import load_experiment_runs
from palaestrio.mdp.client import open_client
from palaestrio.status import RunStatus
from palaestrio.store import messages
from palaestrio.store.service import SERVICE

EXAMPLE = Path(str(resources.files("palaestrio") / "examples" / "dummy_experiment.yml"))


async def test_a_runs_end_lost_with_the_store_is_sent_again_within_the_grace() -> None:
    received: list[messages.StoreRequest] = []

    async def store_that_dies_holding_the_first(body: list[bytes]) -> list[bytes]:
        received.append(messages.decode_request(body[0]))
        if len(received) == 1:
            await trio.sleep_forever()  # as a store SIGKILLed mid-request: no reply ever
        return [messages.encode(messages.Acknowledged(status=RunStatus.FINISHED))]

    (run,) = load_experiment_runs(EXAMPLE)
    slot = RunSlot(ExperimentRunRuntimeInformation(run, "a" * 32))
    grace = ExecutorOptions().finalize_grace
    with trio.fail_after(grace + 5):
        async with (
            running_broker() as endpoint,
            # Two store workers, as the dead store process and its successor: whichever
            # gets the first request keeps it; the other answers the resend.
            running_worker(endpoint, SERVICE, store_that_dies_holding_the_first),
            running_worker(endpoint, SERVICE, store_that_dies_holding_the_first),
            open_client(endpoint) as client,
        ):
            book = StatusBook(client, None)
            with trio.move_on_after(grace) as finalizing:  # as `supervise` gives it
                await book.conclude(slot, RunStatus.FINISHED, None)
    assert not finalizing.cancelled_caught, "the run's end was not stored within the grace"
    assert [type(request) for request in received] == [messages.Finished, messages.Finished]
    assert slot.info.status is RunStatus.FINISHED


async def test_a_runs_end_the_store_refuses_is_not_shown_as_that_end() -> None:
    # A full disk: the store refuses the end; the executor must not say `finished`.
    async def full_store(body: list[bytes]) -> list[bytes]:
        return [messages.encode(messages.Rejected("database or disk is full"))]

    (run,) = load_experiment_runs(EXAMPLE)
    slot = RunSlot(ExperimentRunRuntimeInformation(run, "b" * 32))
    with trio.fail_after(10):
        async with (
            running_broker() as endpoint,
            running_worker(endpoint, SERVICE, full_store),
            open_client(endpoint) as client,
        ):
            await StatusBook(client, None).conclude(slot, RunStatus.FINISHED, None)
    assert slot.info.status is RunStatus.ERROR
    assert slot.info.reason == "its end (finished) was not stored"
