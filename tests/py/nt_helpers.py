"""Shared helpers for the native-tools end-to-end tests (official Python MCP SDK).

The binary comes from $NATIVE_TOOLS_BIN, else `cargo build -p native-tools`
is run once and target/debug/native-tools is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from support import wait_until

REPO = Path(__file__).resolve().parents[2]
_BIN: str | None = None
_BIN_LOCK = threading.Lock()


def binary() -> str:
    """Path of the native-tools binary to test."""
    global _BIN
    with _BIN_LOCK:
        if _BIN is None:
            env_bin = os.environ.get("NATIVE_TOOLS_BIN")
            if env_bin:
                _BIN = str(Path(env_bin).resolve())
            else:
                subprocess.run(
                    ["cargo", "build", "-p", "native-tools"],
                    cwd=REPO,
                    check=True,
                    timeout=1800,
                )
                target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
                if not target.is_absolute():
                    target = REPO / target
                _BIN = str(target / "debug" / "native-tools")
            assert Path(_BIN).is_file(), f"native-tools binary not found at {_BIN}"
        return _BIN


def run(coro, timeout: float = 90.0):
    """Run an async test body with a hard time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def stdio_session(
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike | None = None,
) -> AsyncIterator[ClientSession]:
    """Spawn native-tools over stdio and yield an initialized ClientSession.

    Only the variables given in `env` (plus the SDK's safe defaults) reach the
    server, so ambient FIRECRAWL_API_KEY / KAFKA_BOOTSTRAP_SERVERS / OLLAMA_HOST
    do not leak into tests.
    """
    params = StdioServerParameters(
        command=binary(),
        args=list(args or []),
        env={"LOG_LEVEL": "warn", **(env or {})},
        cwd=str(cwd) if cwd is not None else None,
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def ok(result) -> dict[str, Any]:
    """Assert a successful tool result; return its structured content.

    Also checks that the text content carries the same JSON.
    """
    assert not result.is_error, f"tool error: {text_of(result)}"
    data = result.structured_content
    assert isinstance(data, dict), f"no structured content: {result!r}"
    assert json.loads(text_of(result)) == data
    return data


def err(result) -> str:
    """Assert a tool error result (isError) and return its text."""
    assert result.is_error, f"expected a tool error, got {result.structured_content!r}"
    msg = text_of(result)
    assert msg, "tool error without a message"
    return msg


async def tool_names(session: ClientSession) -> set[str]:
    return {t.name for t in (await session.list_tools()).tools}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    def listening() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout, f"something listening on 127.0.0.1:{port}", interval=0.1)


def stop_pid(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Stop a process we started: SIGTERM by PID, SIGKILL after `timeout`."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


class HttpServer:
    """A tiny threaded HTTP server on 127.0.0.1 driven by a handler function.

    handler(method, path, headers, body) -> (status, headers_dict, body_bytes)
    Every request is recorded in `.requests` as dicts.
    """

    def __init__(self, handler: Callable[[str, str, dict, bytes], tuple[int, dict, bytes]], ssl_context=None):
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # keep test output quiet
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(
                    {"method": self.command, "path": self.path, "headers": hdrs, "body": body}
                )
                status, rh, rb = handler(self.command, self.path, hdrs, body)
                self.send_response(status)
                for k, v in rh.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rb)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(rb)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HttpServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def json_response(obj: Any, status: int = 200) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


class HttpNativeTools:
    """native-tools started with --transport http on a free 127.0.0.1 port."""

    def __init__(self, args: list[str] | None = None, env: dict[str, str] | None = None, cwd=None):
        self.port = free_port()
        full_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "SSL_CERT_FILE")}
        full_env.update({"LOG_LEVEL": "info", **(env or {})})
        self.stderr_path = None
        self.proc = subprocess.Popen(
            [binary(), "--transport", "http", "--host", "127.0.0.1", "--port", str(self.port), *(args or [])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
        )
        self.stderr_lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        wait_port(self.port, proc=self.proc)
        self.base = f"http://127.0.0.1:{self.port}"

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_lines.append(line.decode(errors="replace"))

    def log(self) -> str:
        return "".join(self.stderr_lines)

    def stop(self) -> int:
        rc = stop_pid(self.proc)
        self._reader.join(timeout=5)
        return rc

    def __enter__(self) -> "HttpNativeTools":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def strip_ansi(s: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", s)
