"""A real `palaestrio serve` process for tests, and a plain HTTP client for it."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from test_cli_process import PYTHON_M, environment


@dataclass
class Server:
    process: trio.Process
    url: str
    """The URL serve printed (with ?token=)."""
    token: str | None
    db: Path

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        assert parts.hostname is not None and parts.port is not None
        return parts.hostname, parts.port

    @property
    def base(self) -> str:
        host, port = self.host_port
        return f"http://{host}:{port}"

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, the JSON body or the text); `token` None sends none, "" the server's."""
        sent = dict(headers or {})
        given = self.token if token == "" else token
        if given is not None:
            sent["Authorization"] = f"Bearer {given}"
        return await trio.to_thread.run_sync(self._request, method, path, body, sent)

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(*self.host_port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kind = response.getheader("content-type") or ""
            return response.status, json.loads(data) if "json" in kind else data.decode()
        finally:
            connection.close()

    async def submit(self, run_file: Path) -> str:
        status, answer = await self.request("POST", "/api/runs", run_file.read_bytes())
        assert status == 202, answer
        instance: str = answer["instance_uid"]
        return instance

    async def run(self, instance_uid: str) -> dict[str, Any]:
        status, answer = await self.request("GET", f"/api/runs/{instance_uid}")
        assert status == 200, answer
        return dict(answer)

    async def wait_for(self, instance_uid: str, *statuses: str) -> dict[str, Any]:
        while (run := await self.run(instance_uid))["status"] not in statuses:
            await trio.sleep(0.05)
        return run


@asynccontextmanager
async def serving(tmp_path: Path, *options: str) -> AsyncIterator[Server]:
    """`palaestrio serve` on a free loopback port, storing into tmp_path/runs.db; sends
    SIGTERM at the end (if the test did not stop it) and waits for its exit."""
    db = tmp_path / "runs.db"
    process = await trio.lowlevel.open_process(
        [*PYTHON_M, "serve", "--bind", "127.0.0.1:0", "--store", f"sqlite:///{db}", *options],
        cwd=tmp_path,
        env=environment(XDG_CONFIG_HOME=str(tmp_path / "xdg")),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        url, token = await _announced(process.stdout)
        yield Server(process, url, token, db)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with trio.move_on_after(30, shield=True):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stdout.aclose()


async def _announced(stdout: trio.abc.ReceiveStream) -> tuple[str, str | None]:
    """The URL and token serve prints once it listens."""
    buffer = b""
    with trio.fail_after(60):
        async for chunk in stdout:
            buffer += chunk
            lines = buffer.decode().splitlines()
            urls = [line.split()[-1] for line in lines if line.startswith("palaestrio serve: ")]
            if urls and ("?token=" not in urls[0] or any(li.startswith("token: ") for li in lines)):
                token = urls[0].partition("?token=")[2] or None
                return urls[0], token
    raise AssertionError(f"serve ended before it listened: {buffer.decode()}")


async def sse_events(
    server: Server,
    found: trio.MemorySendChannel[dict[str, Any]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Reads /api/events over a raw HTTP connection; sends each `run` event's data.
    Started once the server has answered (it is subscribed then)."""
    host, port = server.host_port
    stream = await trio.open_tcp_stream(host, port)
    async with stream, found:
        request = (
            f"GET /api/events HTTP/1.0\r\nHost: {host}\r\n"
            f"Authorization: Bearer {server.token}\r\nAccept: text/event-stream\r\n\r\n"
        )
        await stream.send_all(request.encode())
        buffer = b""
        subscribed = False
        async for chunk in stream:
            buffer += chunk
            if not subscribed and b"retry: " in buffer:
                subscribed = True
                task_status.started()
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: "):
                        await found.send(json.loads(line[6:]))
