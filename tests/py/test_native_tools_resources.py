"""native-tools' MCP surface beyond tools, through the official Python SDK
over stdio: identity, files under the roots as resources (byte for byte,
text or blob, refused outside the root or through a symlink, size-limited),
logging/setLevel, progress of http_fetch and fs_search, and cancellation of
a download (the connection is dropped)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client

from nt_helpers import binary, ok, run
from support import wait_until, wait_until_async

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated as of 2026-07-28")


class Inbox:
    def __init__(self) -> None:
        self.logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(self, params) -> None:
        self.logs.append(params)

    def messages(self) -> list[str]:
        return [m.data.get("message", "") for m in self.logs if isinstance(m.data, dict)]


@contextlib.asynccontextmanager
async def session(root: Path, inbox: Inbox) -> AsyncIterator[tuple[ClientSession, Any]]:
    params = StdioServerParameters(command=binary(), args=["--root", str(root)], env={"LOG_LEVEL": "warn"})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, logging_callback=inbox.on_log) as s:
            init = await s.initialize()
            yield s, init


def uri(p: Path) -> str:
    return p.resolve().as_uri()


def test_identity_and_files_as_resources(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    text = "line 1\nünïcode ✓\n\ttabs  and trailing spaces  \n"
    (root / "notes.txt").write_text(text)
    blob = bytes(range(256)) * 4
    (root / "sub" / "data.bin").write_bytes(blob)
    (outside / "secret.txt").write_text("secret")
    (root / "escape").symlink_to(outside)
    big = root / "big.bin"
    with open(big, "wb") as f:
        f.truncate(16 * 1024 * 1024 + 1)

    async def body():
        async with session(root, Inbox()) as (s, init):
            info = init.server_info
            assert (info.name, info.title) == ("native-tools", "native-tools")
            assert info.version.count(".") == 2 and "rmcp" not in info.name
            assert "fs_read" in (init.instructions or "")
            assert init.capabilities.logging is not None and init.capabilities.resources is not None

            listed = {r.name: r for r in (await s.list_resources()).resources}
            assert {"notes.txt", "sub/data.bin", "big.bin"} <= set(listed)
            assert "escape/secret.txt" not in listed  # symlinks are not followed
            assert str(listed["notes.txt"].uri) == uri(root / "notes.txt")
            assert listed["notes.txt"].mime_type == "text/plain"
            templates = (await s.list_resource_templates()).resource_templates
            assert [t.uri_template for t in templates] == ["file:///{path}"]

            got = (await s.read_resource(uri(root / "notes.txt"))).contents[0]
            assert got.text == text and got.mime_type == "text/plain"
            got = (await s.read_resource(uri(root / "sub" / "data.bin"))).contents[0]
            assert base64.b64decode(got.blob) == blob

            async def refused(u: str) -> str:
                try:
                    await s.read_resource(u)
                except Exception as e:  # McpError
                    return str(e)
                raise AssertionError(f"{u} was served")

            assert "outside the allowed roots" in await refused(uri(outside / "secret.txt"))
            assert "access denied" in await refused((root / "escape" / "secret.txt").as_uri())
            assert "outside the allowed roots" in await refused("file:///etc/passwd")
            assert "limited to" in await refused(uri(big))
            assert "file://" in await refused("http://127.0.0.1:1/x")
            assert "directory" in await refused(uri(root / "sub"))

    run(body(), timeout=60)


def test_set_level_filters_log_messages(tmp_path):
    async def body():
        inbox = Inbox()
        async with session(tmp_path, inbox) as (s, _):
            await s.set_logging_level("error")
            r = await s.call_tool("fs_read", {"path": "missing-1.txt"})
            assert r.is_error
            await asyncio.sleep(0.5)
            await s.set_logging_level("debug")
            r = await s.call_tool("fs_read", {"path": "missing-2.txt"})
            assert r.is_error
            await wait_until_async(lambda: any("missing-2" in m for m in inbox.messages()), 10,
                                   lambda: f"the debug line of missing-2 ({inbox.messages()})")
            assert not any("missing-1" in m for m in inbox.messages()), inbox.messages()
            line = next(m for m in inbox.logs if "missing-2" in m.data["message"])
            assert line.level == "debug" and line.logger == "native-tools"
            assert line.data["target"].startswith("native_tools")

    run(body(), timeout=60)


class SlowBody:
    """A raw HTTP server on 127.0.0.1: answers with a Content-Length of `size`
    bytes, sends `first` of them, then waits; records when the client hangs up."""

    def __init__(self, size: int, first: int):
        self.size, self.first = size, first
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.hung_up = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.size}\r\n\r\n".encode() + b"x" * self.first)
            conn.settimeout(0.1)
            sent = self.first
            while not self.stop.is_set():
                try:
                    if conn.recv(1) == b"":
                        self.hung_up.set()
                        return
                except socket.timeout:
                    # Dribble the rest slowly so the download stays in flight.
                    if sent < self.size - 1:
                        with contextlib.suppress(OSError):
                            conn.sendall(b"y")
                            sent += 1
                except OSError:
                    self.hung_up.set()
                    return

    def __enter__(self) -> "SlowBody":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def test_progress_and_cancellation(tmp_path):
    for i in range(40):
        d = tmp_path / f"d{i}"
        d.mkdir()
        for j in range(50):
            (d / f"f{j}.txt").write_text("x")

    async def body():
        async with session(tmp_path, Inbox()) as (s, _):
            # fs_search over 2000+ entries reports what it scanned.
            seen: list[tuple[float, str]] = []

            async def on_progress(progress, total, message):
                seen.append((progress, message))

            res = ok(await s.call_tool("fs_search", {"path": ".", "pattern": "f7.txt", "max_results": 1000},
                                       progress_callback=on_progress))
            assert len(res["matches"]) == 40
            assert seen and all("scanned" in m for _, m in seen), seen
            assert [p for p, _ in seen] == sorted(p for p, _ in seen)
            assert seen[-1][0] >= 2040

            # http_fetch: progress towards Content-Length, then a cancelled download.
            with SlowBody(size=1_000_000, first=200_000) as web:
                got: list[tuple[float, float | None]] = []

                async def on_fetch(progress, total, message):
                    got.append((progress, total))

                task = asyncio.create_task(s.call_tool("http_fetch", {
                    "url": f"http://127.0.0.1:{web.port}/big", "timeout_ms": 60000, "max_bytes": 2_000_000},
                    progress_callback=on_fetch))
                await wait_until_async(lambda: got and got[-1][0] >= 200_000, 10, lambda: f"download progress ({got})")
                assert got[-1][1] == 1_000_000
                t0 = time.monotonic()
                task.cancel()  # the SDK sends notifications/cancelled
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await asyncio.to_thread(wait_until, web.hung_up.is_set, 5, "native-tools to drop the download")
                assert time.monotonic() - t0 < 1.0
            # The session still works.
            assert ok(await s.call_tool("fs_stat", {"path": "d0"}))["exists"] is True

    run(body(), timeout=60)
