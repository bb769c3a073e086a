"""Shared helpers for the ael end-to-end tests (official Python MCP SDK).

Binaries come from $AEL_BIN / $NATIVE_TOOLS_BIN, else
`cargo build -p ael -p native-tools` is run once and target/debug/ is used.
Everything listens on 127.0.0.1 and every process is stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from support import require, wait_until

REPO = Path(__file__).resolve().parents[2]
_LOCK = threading.Lock()
_BINS: dict[str, str | None] = {}
_BUILD_ERR: dict[str, str] = {}


def _target_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target if target.is_absolute() else REPO / target


def _build(packages: list[str]) -> None:
    args = ["cargo", "build"]
    for p in packages:
        args += ["-p", p]
    r = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        for p in packages:
            _BUILD_ERR[p] = r.stderr[-2000:]


_BUILT = False


def _binary(name: str, env_var: str, package: str) -> str | None:
    global _BUILT
    with _LOCK:
        if name not in _BINS:
            env_bin = os.environ.get(env_var)
            if env_bin:
                _BINS[name] = str(Path(env_bin).resolve())
            else:
                if not _BUILT:
                    _BUILT = True
                    _build(["ael", "native-tools"])
                    if _BUILD_ERR:  # native-tools may be broken; still build ael alone
                        _BUILD_ERR.clear()
                        _build(["ael"])
                        _BUILD_ERR.setdefault("native-tools", "cargo build -p native-tools failed")
                path = _target_dir() / "debug" / name
                _BINS[name] = str(path) if path.is_file() and package not in _BUILD_ERR else None
        return _BINS[name]


def ael_bin() -> str:
    b = _binary("ael", "AEL_BIN", "ael")
    assert b and Path(b).is_file(), f"ael binary not available: {_BUILD_ERR.get('ael', '')}"
    return b


def native_tools_bin() -> str:
    """native-tools binary; without it the test is skipped, or fails under CI=true."""
    __tracebackhide__ = True
    b = _binary("native-tools", "NATIVE_TOOLS_BIN", "native-tools")
    require(b and Path(b).is_file(),
            "native-tools binary is not built (set NATIVE_TOOLS_BIN or make `cargo build -p native-tools` work): "
            + _BUILD_ERR.get("native-tools", f"{b} is missing"))
    return b


def run(coro, timeout: float = 90.0):
    """Run an async test body with a hard time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "SSL_CERT_FILE", "LANG")}
    env.update(extra)
    return env


def write_config(path: Path, *, workflows: Path, data: Path, native_root: Path | None = None,
                 required: bool = False, extra: str = "", servers: str | None = None) -> Path:
    """Write an ael config; connects `native` to native-tools when native_root is given."""
    lines = [
        "log_level: debug",
        f"workflows_dir: {workflows}",
        f"data_dir: {data}",
        "reload_interval_ms: 200",
        "http:",
        "  host: 127.0.0.1",
        "  allowed_hosts: [localhost, 127.0.0.1, ael, 'ael:8082']",
        "  shutdown_grace_ms: 1000",
    ]
    if servers is not None:
        lines.append(servers)
    elif native_root is not None:
        lines += [
            "tool_servers:",
            "  native:",
            f"    command: {native_tools_bin()}",
            f"    args: [--root, {native_root}]",
            "    env: {LOG_LEVEL: info}",
            f"    required: {'true' if required else 'false'}",
            "    connect_timeout_ms: 15000",
        ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        body = e.read()
        status = e.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


class Ael:
    """`ael serve --transport http` on a free 127.0.0.1 port."""

    def __init__(self, config: Path, args: list[str] | None = None, env: dict[str, str] | None = None,
                 port: int | None = None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = base_env(AEL_CONFIG_PATH=str(config), AEL_HTTP_PORT=str(self.port), **(env or {}))
        binary = ael_bin()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "serve", "--transport", "http", *(args or [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
        )
        self.stderr_lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr_lines.append(line.decode(errors="replace"))

    def log(self) -> str:
        return "".join(self.stderr_lines)

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"ael exited with {self.proc.returncode}:\n{self.log()}")

    def health(self, timeout: float = 5.0) -> tuple[int, Any]:
        """GET /health: (status, body)."""
        return http_get(self.base + "/health", timeout=timeout)

    def wait_health(self, pred: Callable[[Any], Any], what: str, timeout: float = 20.0) -> Any:
        """Poll /health until pred(body) holds; return the body. Fails at once if ael exits."""
        last: list[Any] = [None]

        def check():
            self._alive()
            status, body = self.health(timeout=1.0)
            last[0] = (status, body)
            return (body,) if pred(body) else None

        return wait_until(check, timeout, lambda: f"/health {what} (last: {last[0]})\n{self.log()}",
                          interval=0.02, ignore=(OSError,))[0]

    def wait_healthy(self, timeout: float = 20.0, want: int | None = 200) -> tuple[float, dict]:
        """Poll /health until it answers (with status `want` if given); return (seconds, body)."""
        last: list[Any] = [None]

        def check():
            self._alive()
            last[0] = self.health(timeout=1.0)
            return want is None or last[0][0] == want

        wait_until(check, timeout, lambda: f"/health to answer {want} (last: {last[0]})\n{self.log()}",
                   interval=0.01, ignore=(OSError,))
        return time.monotonic() - self.t0, last[0][1]

    def wait_tool_server(self, name: str, state: str = "connected", timeout: float = 20.0) -> dict:
        return self.wait_health(
            lambda b: isinstance(b, dict) and b.get("tool_servers", {}).get(name, {}).get("state") == state,
            f"tool server {name} {state}", timeout)

    def wait_log(self, text: str, count: int = 1, timeout: float = 20.0) -> str:
        """Wait until `text` appears `count` times in ael's stderr; return the log."""
        return wait_until(lambda: self.log().count(text) >= count and self.log(), timeout,
                          lambda: f"{count} x {text!r} in the log of ael:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        """Signal the process by PID; return (exit code, seconds to exit)."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        self._reader.join(timeout=5)
        return self.proc.returncode, elapsed

    def __enter__(self) -> "Ael":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def http_session(base: str, message_handler=None, token: str | None = None
                       ) -> AsyncIterator[ClientSession]:
    """The official client over streamable HTTP at base/mcp, with `Authorization: Bearer token` when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with create_mcp_http_client(headers=headers) as client:
        async with streamable_http_client(base + "/mcp", http_client=client) as (read, write):
            kwargs = {"message_handler": message_handler} if message_handler else {}
            async with ClientSession(read, write, **kwargs) as session:
                await session.initialize()
                yield session


@contextlib.asynccontextmanager
async def stdio_session(env: dict[str, str], args: list[str] | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=ael_bin(), args=["serve", "--transport", "stdio", *(args or [])], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def text_of(result) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def ok(result) -> dict[str, Any]:
    """Assert a successful tool result; return its structured content (same JSON as the text)."""
    assert not result.is_error, f"tool error: {text_of(result)}"
    data = result.structured_content
    assert isinstance(data, dict), f"no structured content: {result!r}"
    assert json.loads(text_of(result)) == data
    return data


def failed(result) -> dict[str, Any]:
    """Assert an error tool result; return its structured content."""
    assert result.is_error, f"expected a tool error, got {result.structured_content!r}"
    data = result.structured_content
    assert isinstance(data, dict), f"no structured content: {result!r}"
    return data


def ael_cli(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([ael_bin(), *args], env=env, capture_output=True, text=True, timeout=timeout)


class HttpServer:
    """A tiny threaded HTTP server on 127.0.0.1: handler(method, path, body) -> (status, headers, body)."""

    def __init__(self, handler: Callable[[str, str, bytes], tuple[int, dict, bytes]]):
        self.requests: list[tuple[str, str]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append((self.command, self.path))
                status, rh, rb = handler(self.command, self.path, body)
                self.send_response(status)
                for k, v in rh.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(rb)))
                self.end_headers()
                try:
                    self.wfile.write(rb)
                except OSError:
                    pass

            do_GET = do_POST = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HttpServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def pid_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def repo_workflows() -> Path:
    return REPO / "images" / "workflows"


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
