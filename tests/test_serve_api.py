"""`palaestrio serve`'s HTTP API over real HTTP against a real `serve` process."""

from __future__ import annotations

import datetime
import http.client
import io
import signal
import sqlite3
import time
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import trio

from executor_support import stored_rows, stored_status, write_experiment
from palaestrio.experiment import ExperimentFileError, load_experiment_run_text
from serve_support import Server, serving, sse_events
from test_cli_process import palaestrio

EXAMPLE = Path(str(resources.files("palaestrio") / "examples" / "dummy_experiment.yml"))
SLOW = "executor_components:SlowEnvironment"


def long_run(tmp_path: Path, uid: str) -> Path:
    return write_experiment(tmp_path, uid, environment=SLOW, max_iter=100_000)


async def test_submitted_runs_stream_events_and_are_listed_with_the_clis(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with serving(tmp_path) as server, trio.open_nursery() as nursery:
            send, events = trio.open_memory_channel[dict[str, Any]](1000)
            await nursery.start(sse_events, server, send)
            instance = await server.submit(EXAMPLE)
            seen = []
            async for event in events:
                if event["instance_uid"] == instance:
                    seen.append(event["status"])
                    if event["status"] == "finished":
                        break
            assert seen[0] in ("scheduled", "starting")
            assert "running" in seen
            assert event["steps"] == 50 and event["cancellable"] is False
            nursery.cancel_scope.cancel()
        # The same store, run from the command line while serve runs: listed alike.
        async with serving(tmp_path) as server:
            done = await trio.to_thread.run_sync(
                lambda: palaestrio(
                    tmp_path,
                    "experiment-start",
                    "--plain",
                    EXAMPLE,
                    "--store",
                    f"sqlite:///{server.db}",
                )
            )
            assert done.returncode == 0, done.stderr
            status, page = await server.request("GET", "/api/runs")
            assert status == 200 and page["total"] == 2
            cli_row, served_row = page["runs"]  # newest first
            assert served_row["instance_uid"] == instance
            for row in (cli_row, served_row):
                assert row["status"] == "finished" and row["steps"] == 50
                assert row["phases"] == 2 and row["episodes"] == 5
                assert row["cancellable"] is False
            assert set(cli_row) == set(served_row)
            _, first = await server.request("GET", "/api/runs?limit=1&offset=1")
            assert [r["instance_uid"] for r in first["runs"]] == [instance]
            assert first["total"] == 2
            _, none = await server.request("GET", "/api/runs?status=running")
            assert none["total"] == 0
            _, mine = await server.request("GET", "/api/runs?experiment=palaestrio+bundled+example")
            assert mine["total"] == 2
            status, bad = await server.request("GET", "/api/runs?status=done")
            assert status == 400 and "status 'done'" in bad["detail"]


async def test_a_runs_series_document_and_tables_download(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with serving(tmp_path) as server:
            instance = await server.submit(EXAMPLE)
            await server.wait_for(instance, "finished")
            status, series = await server.request("GET", f"/api/runs/{instance}/series")
            assert status == 200
            assert [len(agent["episode"]) for p in series["phases"] for agent in p["agents"]] == [
                3,
                3,
                2,
                2,
            ]
            status, document = await server.request("GET", f"/api/runs/{instance[:8]}/document")
            assert status == 200 and document == EXAMPLE.read_text()
            zipped = await trio.to_thread.run_sync(
                _download, server, f"/api/runs/{instance}/export"
            )
            with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
                names = set(archive.namelist())
                assert {"world_states.csv", "muscle_actions.csv", "metadata.json"} <= names
                world_lines = archive.read("world_states.csv").decode().splitlines()
                action_lines = archive.read("muscle_actions.csv").decode().splitlines()
            assert (len(world_lines) - 1, len(action_lines) - 1) == stored_rows(server.db, instance)
            status, bad = await server.request("GET", f"/api/runs/{instance}/export?format=xml")
            assert status == 400 and "csv or parquet" in bad["detail"]
            status, dumps = await server.request("GET", f"/api/runs/{instance}/brains")
            assert status == 200 and isinstance(dumps, list)
            status, missing = await server.request("GET", "/api/runs/nosuchrun/series")
            assert status == 404 and "nosuchrun" in missing["detail"]


def _download(server: Server, path: str) -> bytes:
    connection = http.client.HTTPConnection(*server.host_port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {server.token}"})
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, body
        assert response.getheader("content-type") == "application/zip"
        return body
    finally:
        connection.close()


async def test_cancel_stops_a_run_and_stores_it_cancelled(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with serving(tmp_path) as server:
            instance = await server.submit(long_run(tmp_path, "long"))
            await server.wait_for(instance, "running")
            status, answer = await server.request("POST", f"/api/runs/{instance[:8]}/cancel")
            assert status == 200, answer
            assert answer == {"instance_uid": instance, "status": "cancelled", "cancellable": False}
            assert stored_status(server.db, instance) == ("cancelled", "cancelled by request")
            status, again = await server.request("POST", f"/api/runs/{instance}/cancel")
            assert status == 409 and "ended already" in again["detail"]
            status, unknown = await server.request("POST", "/api/runs/nosuchrun/cancel")
            assert status == 404 and "nosuchrun" in unknown["detail"]
            run = await server.run(instance)
            assert run["status"] == "cancelled" and run["reason"] == "cancelled by request"


async def test_an_invalid_file_is_422_with_every_problem_place_and_line(tmp_path: Path) -> None:
    text = (
        EXAMPLE.read_text()
        .replace("seed: 42", "seed: many")
        .replace("episodes: 3", "episodes: -3")
        .replace("DummyMuscle\n", "DummyMusle\n", 1)
    )
    with pytest.raises(ExperimentFileError) as expected:
        load_experiment_run_text(text, "bad.yml")
    assert len(expected.value.problems) >= 3
    with trio.fail_after(60):
        async with serving(tmp_path) as server:
            status, answer = await server.request(
                "POST", "/api/runs?name=../../etc/bad.yml", text.encode()
            )
            assert status == 422, answer
            assert answer["problems"] == [
                {"source": p.source, "place": p.place, "line": p.line, "message": p.message}
                for p in expected.value.problems
            ]
            assert all(p["line"] for p in answer["problems"])
            _, page = await server.request("GET", "/api/runs")
            assert page["total"] == 0  # nothing scheduled


async def test_requests_without_the_token_are_401(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with serving(tmp_path) as server:
            assert server.token and len(server.token) >= 24
            for path in ("/api/runs", "/", "/static/app.js", "/openapi.json", "/api/events"):
                status, answer = await server.request("GET", path, token=None)
                assert status == 401, path
                assert "token" in answer["detail"]
            status, _ = await server.request("GET", "/api/runs", token=server.token + "x")
            assert status == 401
            status, _ = await server.request("POST", "/api/runs", EXAMPLE.read_bytes(), token=None)
            assert status == 401
            _, page = await server.request("GET", "/api/runs")
            assert page["total"] == 0
            # The printed URL sets an HttpOnly cookie and leaves the token out of the address.
            cookie = await trio.to_thread.run_sync(_cookie_from_url, server)
            status, page = await server.request(
                "GET", "/api/runs", token=None, headers={"Cookie": cookie}
            )
            assert status == 200 and page["total"] == 0
            status, spec = await server.request("GET", "/openapi.json")
            assert status == 200
            cancel = spec["paths"]["/api/runs/{uid}/cancel"]["post"]
            assert cancel["summary"].startswith("Cancel a run this server executes")
            assert "409" in cancel["responses"]
            status, docs = await server.request("GET", "/docs")
            assert status == 200 and "openapi.json" in docs


def _cookie_from_url(server: Server) -> str:
    connection = http.client.HTTPConnection(*server.host_port, timeout=30)
    try:
        connection.request("GET", server.url.removeprefix(server.base))
        response = connection.getresponse()
        response.read()
        assert response.status == 303 and response.getheader("location") == "/"
        cookie = response.getheader("set-cookie") or ""
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        return cookie.split(";")[0]
    finally:
        connection.close()


async def test_an_oversized_body_is_413(tmp_path: Path) -> None:
    big = b"# " + b"x" * (2 * 1024 * 1024) + b"\n"
    with trio.fail_after(60):
        async with serving(tmp_path) as server:
            status, answer = await server.request("POST", "/api/runs", big)
            assert status == 413 and "larger than" in answer["detail"]
            # A declared length over the limit is refused before the body is sent.
            status, answer = await trio.to_thread.run_sync(_declared_only, server, len(big))
            assert status == 413 and "larger than" in answer
            # Without a length (chunked), the server counts and stops at the limit.
            status, answer = await trio.to_thread.run_sync(_chunked, server, big)
            assert status == 413 and "larger than" in answer
            _, page = await server.request("GET", "/api/runs")
            assert page["total"] == 0


def _declared_only(server: Server, length: int) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*server.host_port, timeout=10)
    try:
        connection.putrequest("POST", "/api/runs")
        connection.putheader("Authorization", f"Bearer {server.token}")
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def _chunked(server: Server, body: bytes) -> tuple[int, str]:
    connection = http.client.HTTPConnection(*server.host_port, timeout=30)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        connection.request(
            "POST",
            "/api/runs",
            body=chunks,
            encode_chunked=True,
            headers={"Authorization": f"Bearer {server.token}"},
        )
        response = connection.getresponse()
        return response.status, response.read().decode()
    except (BrokenPipeError, ConnectionResetError) as gone:  # it may stop reading early
        return 413, f"larger than: {gone}"
    finally:
        connection.close()


def test_a_non_loopback_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    done = palaestrio(tmp_path, "serve", "--bind", "0.0.0.0:0", "--no-token")
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without a token" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "palaestrio.db").exists()  # refused before anything started
    bad = palaestrio(tmp_path, "serve", "--bind", "localhost")
    assert bad.returncode == 2 and "expected HOST:PORT" in bad.stderr


async def test_sigterm_with_runs_in_flight_exits_within_a_second_of_their_end(
    tmp_path: Path,
) -> None:
    with trio.fail_after(90):
        async with serving(tmp_path, "-p", "2") as server:
            instances = [await server.submit(long_run(tmp_path, f"long{i}")) for i in (1, 2)]
            for instance in instances:
                await server.wait_for(instance, "running")
            server.process.send_signal(signal.SIGTERM)
            await server.process.wait()
            exited = time.time()
            assert server.process.returncode == 143
    for instance in instances:
        assert stored_status(server.db, instance)[0] == "cancelled"
    with sqlite3.connect(server.db) as connection:
        (last_end,) = connection.execute(
            "SELECT max(ended_at) FROM experiment_run_instances"
        ).fetchone()
    ended = datetime.datetime.fromisoformat(last_end).replace(tzinfo=datetime.UTC).timestamp()
    assert 0 <= exited - ended <= 1.0, f"exited {exited - ended:.2f} s after the runs ended"
    # The leak guard (conftest) then checks that no governor or broker is left.
