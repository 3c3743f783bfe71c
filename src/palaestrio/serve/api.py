"""The JSON endpoints. Every blocking store query runs in a worker thread; nothing a
request sends is evaluated, unpickled or used as a path on the server."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa
import trio
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from palaestrio.executor.errors import ExecutorError
from palaestrio.experiment import ExperimentFileError, Problem
from palaestrio.results.tables import Format
from palaestrio.status import RunStatus
from palaestrio.store.queries import SHORT_UID_LENGTH, AmbiguousRun, UnknownRun, run_details

from .auth import BodyTooLarge
from .brains import brain_dump_path, brain_dumps
from .events import EventHub
from .results import Results, UnavailableFormat
from .rows import run_rows, summary_row, unstored_row
from .submissions import label, problems_response, validated

if TYPE_CHECKING:
    from palaestrio.executor import Executor

MAX_PAGE = 1000
STATUSES = {str(status) for status in RunStatus}


def error(status: int, detail: str, **more: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **more}, status_code=status)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status, media_type="application/json")


@dataclass
class Api:
    executor: Executor
    engine: sa.Engine
    hub: EventHub

    def __post_init__(self) -> None:
        self.results = Results(self.engine)

    def routes(self) -> list[Route]:
        return [
            Route("/api/runs", self.list_runs, methods=["GET"]),
            Route("/api/runs", self.submit, methods=["POST"]),
            Route("/api/runs/{uid}", self.run, methods=["GET"]),
            Route("/api/runs/{uid}/cancel", self.cancel, methods=["POST"]),
            Route("/api/runs/{uid}/series", self.series, methods=["GET"]),
            Route("/api/runs/{uid}/document", self.document, methods=["GET"]),
            Route("/api/runs/{uid}/export", self.export, methods=["GET"]),
            Route("/api/runs/{uid}/brains", self.brains, methods=["GET"]),
            Route("/api/brains/{dump_id:int}", self.brain, methods=["GET"]),
            Route("/api/events", self.events, methods=["GET"]),
        ]

    async def list_runs(self, request: Request) -> Response:
        """List runs, newest first.
        ---
        parameters:
          - {name: status, in: query, schema: {type: string, enum: [scheduled, starting,
              running, finished, error, cancelled]}}
          - {name: experiment, in: query, schema: {type: string}}
          - {name: offset, in: query, schema: {type: integer, default: 0}}
          - {name: limit, in: query, schema: {type: integer, default: 100, maximum: 1000}}
        responses:
          200: {description: "{total, offset, limit, runs: [run]}"}
          400: {description: a bad filter or page}
        """
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in STATUSES:
            return error(400, f"status {status!r}: one of {', '.join(sorted(STATUSES))}")
        try:
            offset = int(query.get("offset", 0))
            limit = int(query.get("limit", 100))
        except ValueError:
            return error(400, "offset and limit must be integers")
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            return error(400, f"offset must be ≥ 0 and limit between 1 and {MAX_PAGE}")
        page = await run_rows(
            self.engine,
            self.hub,
            status=status,
            experiment=query.get("experiment"),
            offset=offset,
            limit=limit,
        )
        return json_response(page)

    async def submit(self, request: Request) -> Response:
        """Submit an experiment run file (the YAML as the request body); it is validated
        first and then scheduled.
        ---
        parameters:
          - {name: name, in: query, description: the file's name in problems (a label)}
        requestBody: {content: {application/yaml: {schema: {type: string}}}}
        responses:
          202: {description: "scheduled: {instance_uid, run_uid, warnings}"}
          413: {description: the body is larger than the limit}
          422: {description: "every problem: {problems: [{source, place, line, message}]}"}
        """
        source = label(request.query_params.get("name", "upload.yml"))
        try:
            body = await request.body()
        except BodyTooLarge as too_large:
            return error(413, str(too_large))
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as problem:
            return problems_response([Problem(source, "", None, f"not UTF-8 text: {problem}")])
        try:
            run, notes = await trio.to_thread.run_sync(validated, text, source)
        except ExperimentFileError as invalid:
            return problems_response(invalid.problems)
        try:
            self.executor.schedule(run)
        except ExecutorError as closed:
            return error(503, str(closed))
        info = self.executor.experiment_runs()[-1]
        self.hub.update(info)
        return json_response(
            {"instance_uid": info.instance_uid, "run_uid": run.uid, "warnings": notes}, 202
        )

    async def run(self, request: Request) -> Response:
        """One run: totals, phases (episodes, steps, agents, environments), live fields.
        ---
        responses: {200: {description: run}, 404: {description: no such run}}
        """
        uid = request.path_params["uid"]
        try:
            details = await trio.to_thread.run_sync(run_details, self.engine, uid)
        except UnknownRun as unknown:
            info = self._info(uid)
            if info is None:
                return error(404, str(unknown))
            return json_response({**unstored_row(info, self.hub), "phase_list": []})
        except AmbiguousRun as ambiguous:
            return error(400, str(ambiguous))
        row = summary_row(details.run, self.hub)
        row["user"] = details.user
        row["phase_list"] = msgspec.to_builtins(details.phases)
        return json_response(row)

    async def cancel(self, request: Request) -> Response:
        """Cancel a run this server executes; answers once it has stopped and is stored.
        ---
        responses:
          200: {description: "{instance_uid, status}"}
          404: {description: no such run here}
          409: {description: the run has ended already}
        """
        uid = request.path_params["uid"]
        info = self._info(uid)
        if info is None:
            return error(
                404,
                f"this server executes no run {uid!r} (runs started "
                "elsewhere are cancelled where they run)",
            )
        if info.is_done:
            return error(409, f"run {info.instance_uid} has ended already: {info.status}")
        await self.executor.cancel(info.instance_uid)
        return json_response(
            {"instance_uid": info.instance_uid, "status": str(info.status), "cancellable": False}
        )

    async def series(self, request: Request) -> Response:
        """Per-episode series of a run (objective and reward per agent, episode lengths,
        steps/s over time), for plots.
        ---
        responses: {200: {description: RunSeries}, 404: {description: no such run}}
        """
        return await self._stored(
            lambda _, uid: self.results.series(uid), request.path_params["uid"]
        )

    async def export(self, request: Request) -> Response:
        """Download `runs export`'s tables (world states, muscle actions) and
        metadata.json as a zip.
        ---
        parameters:
          - {name: format, in: query, schema: {type: string, enum: [csv, parquet]}}
        responses:
          200: {description: application/zip}
          400: {description: an unknown or unavailable format}
          404: {description: no such run}
        """
        uid = request.path_params["uid"]
        asked = request.query_params.get("format", "csv")
        if asked not in ("csv", "parquet"):
            return error(400, f"format {asked!r}: csv or parquet")
        format: Format = "parquet" if asked == "parquet" else "csv"
        try:
            path = await trio.to_thread.run_sync(self.results.export_zip, uid, format)
        except (UnknownRun, AmbiguousRun) as unknown:
            return error(404, str(unknown))
        except UnavailableFormat as unavailable:
            return error(400, str(unavailable))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", uid)[:80]
        return FileResponse(
            path,
            media_type="application/zip",
            filename=f"{name}-{format}.zip",
            background=BackgroundTask(shutil.rmtree, path.parent, ignore_errors=True),
        )

    async def brains(self, request: Request) -> Response:
        """The run's brain dumps (download each from /api/brains/{id}).
        ---
        responses: {200: {description: "[{id, agent, phase, worker, tag, bytes}]"}}
        """
        return await self._stored(brain_dumps, request.path_params["uid"])

    async def brain(self, request: Request) -> Response:
        """Download one brain dump.
        ---
        responses: {200: {description: the dump}, 404: {description: no such dump}}
        """
        dump_id = request.path_params["dump_id"]
        path = await trio.to_thread.run_sync(brain_dump_path, self.engine, dump_id)
        if path is None:
            return error(404, f"no brain dump {dump_id} (or its file is gone)")
        return FileResponse(path, filename=f"brain-{dump_id}-{path.name}")

    async def document(self, request: Request) -> Response:
        """Download the experiment run file a run was scheduled with.
        ---
        responses: {200: {description: YAML}, 404: {description: no such run}}
        """
        uid = request.path_params["uid"]
        try:
            details = await trio.to_thread.run_sync(run_details, self.engine, uid)
        except (UnknownRun, AmbiguousRun) as unknown:
            return error(404, str(unknown))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", details.run.run_uid)[:80] or "run"
        return Response(
            details.document or "",
            media_type="application/yaml",
            headers={"content-disposition": f'attachment; filename="{name}.yml"'},
        )

    async def events(self, request: Request) -> Response:
        """Live events (Server-Sent Events): `event: run` with a run's row as JSON on
        every state change and progress message of the runs this server executes.
        ---
        responses: {200: {description: text/event-stream}}
        """
        return StreamingResponse(
            self.hub.stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    async def _stored(self, query: Any, uid: str) -> Response:
        try:
            return json_response(await trio.to_thread.run_sync(query, self.engine, uid))
        except UnknownRun as unknown:
            return error(404, str(unknown))
        except AmbiguousRun as ambiguous:
            return error(400, str(ambiguous))

    def _info(self, uid: str) -> Any:
        for info in reversed(self.executor.experiment_runs()):
            if uid in (info.instance_uid, info.experiment_run.uid) or (
                len(uid) >= SHORT_UID_LENGTH and info.instance_uid.startswith(uid)
            ):
                return info
        return None
