"""The executor's services: MDP broker, store, and the ``executor`` MDP service.

The store is a child process (`store_process.StoreSupervisor`): a storage fault there
cannot take the executor down.

Runs need broker and store until their own shutdown is over, so outside cancellation
must not reach the services first. They run inside one shield that is never unbounded:
it gets a deadline (the options' shutdown budget) as soon as shutdown begins, and is
cancelled outright once the runs are over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from palaestrio import curve, messages
from palaestrio.curve import CurveServer
from palaestrio.executor.options import ExecutorOptions
from palaestrio.executor.store_process import StoreSupervisor
from palaestrio.mdp import broker
from palaestrio.mdp.client import Client, open_client
from palaestrio.mdp.worker import Handler, serve_worker


class BoundedShield:
    """One shield for every service: unbounded only until shutdown begins."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope(shield=True)

    def bound(self, budget: float) -> None:
        self.scope.deadline = min(self.scope.deadline, trio.current_time() + budget)

    def release(self) -> None:
        self.scope.cancel()


@dataclass
class Services:
    endpoint: str
    client: Client
    shield: BoundedShield
    nursery: trio.Nursery
    store: StoreSupervisor

    async def start(self, serve: Callable[..., Awaitable[Any]]) -> Any:
        """Starts another service (the signal watcher) inside the shield."""
        return await self.nursery.start(serve)


@asynccontextmanager
async def open_services(
    *,
    store_uri: str,
    broker_uri: str | None,
    executor_id: str,
    options: ExecutorOptions,
    on_governor_event: Handler,
    on_store_failure: Callable[[str], None],
    store_env: dict[str, str] | None = None,
    curve_server: CurveServer | None = None,
    insecure: bool = False,
    on_worker_expired: Callable[[bytes], None] | None = None,
    on_broker_ready: Callable[[str], Awaitable[None]] | None = None,
) -> AsyncIterator[Services]:
    """`on_broker_ready(endpoint)`: awaited once the broker is bound, before the store
    opens (RunGovernors start importing meanwhile)."""
    interval, liveness = options.heartbeat_interval, options.heartbeat_liveness
    shield = BoundedShield()
    async with trio.open_nursery() as outer:
        # The services' nursery lives in a task of its own, so that one shield covers
        # every service; releasing the shield is what ends them.
        nursery: trio.Nursery = await outer.start(_shielded_nursery, shield)
        try:
            with ExitStack() as stack:
                endpoint = await nursery.start(
                    partial(
                        broker.serve,
                        broker_uri,
                        heartbeat_interval=interval,
                        heartbeat_liveness=liveness,
                        max_waiting_requests=options.broker_max_waiting_requests,
                        max_waiting_bytes=options.broker_max_waiting_bytes,
                        max_queued_bytes=options.broker_max_queued_bytes,
                        request_expiry=options.broker_request_expiry,
                        curve_server=curve_server,
                        insecure=insecure,
                        on_worker_expired=on_worker_expired,
                    )
                )
                if curve_server is not None:  # this process's own sockets use CURVE too
                    stack.enter_context(curve.registered(endpoint, curve_server.admit()))
                if on_broker_ready is not None:
                    await on_broker_ready(endpoint)
                # The store opens (an embedded SQLite file is created) before any run
                # starts: a bad URI or an unreachable database fails here, clearly.
                store = StoreSupervisor(
                    store_uri,
                    endpoint,
                    executor_id,
                    options,
                    on_store_failure,
                    store_env,
                    curve_server,
                )
                await nursery.start(store.serve)
                async with open_client(endpoint) as client:
                    await nursery.start(
                        partial(
                            serve_worker,
                            endpoint,
                            messages.EXECUTOR_SERVICE,
                            on_governor_event,
                            heartbeat_interval=interval,
                            heartbeat_liveness=liveness,
                        )
                    )
                    yield Services(endpoint, client, shield, nursery, store)
        finally:
            shield.release()


async def _shielded_nursery(
    shield: BoundedShield, *, task_status: trio.TaskStatus[trio.Nursery]
) -> None:
    with shield.scope:
        async with trio.open_nursery() as nursery:
            task_status.started(nursery)
            await trio.sleep_forever()
