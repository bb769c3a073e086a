"""CLI, lifecycle, tool listing/schemas and the streamable HTTP transport."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import httpx2 as _httpx  # noqa: F401  (the SDK's HTTP client; imported to fail early if missing)
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from nt_helpers import HttpNativeTools, binary, err, ok, run, stdio_session, tool_names
from support import wait_until

BASE_TOOLS = {
    "fs_read", "fs_write", "fs_list", "fs_stat", "fs_search", "fs_mkdir", "fs_move", "fs_delete",
    "http_fetch", "dns_resolve", "tcp_check",
    "kafka_list_topics", "kafka_produce", "kafka_consume",
}
FIRECRAWL_TOOLS = {"firecrawl_scrape", "firecrawl_crawl"}
OLLAMA_TOOLS = {"ollama_generate", "ollama_list_models"}


def test_version():
    out = subprocess.run([binary(), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert re.fullmatch(r"native-tools \d+\.\d+\.\d+\n", out.stdout), out.stdout


def test_help_mentions_flags():
    out = subprocess.run([binary(), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--transport", "--host", "--port", "--root", "--allowed-host"):
        assert flag in out.stdout


def _spawn_stdio(env=None):
    return subprocess.Popen(
        [binary()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "info", **(env or {})},
    )


def test_exits_on_stdin_eof():
    p = _spawn_stdio()
    try:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        p.stdin.write((json.dumps(init) + "\n").encode())
        p.stdin.flush()
        line = p.stdout.readline()
        assert json.loads(line)["result"]["serverInfo"]["name"]
        t0 = time.monotonic()
        p.stdin.close()
        rc = p.wait(timeout=5)
        assert rc == 0 and time.monotonic() - t0 < 5
        stderr = p.stderr.read().decode()
        # Logs go to stderr only; stdout carried just the JSON-RPC response.
        assert "stdin closed" in stderr
        assert p.stdout.read() == b""
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_exits_on_sigterm_and_sigint():
    for sig in (signal.SIGTERM, signal.SIGINT):
        p = _spawn_stdio()
        lines: list[str] = []

        def read_stderr(p=p, lines=lines):
            for line in p.stderr:
                lines.append(line.decode(errors="replace"))

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            # The handlers are installed before it logs that it serves.
            wait_until(lambda: "serving MCP over stdio" in "".join(lines) or p.poll() is not None, 10,
                       lambda: f"native-tools to serve over stdio: {''.join(lines)}")
            assert p.poll() is None, "".join(lines)
            os.kill(p.pid, sig)
            assert p.wait(timeout=5) == 0
            reader.join(timeout=5)
            assert "signal received, exiting" in "".join(lines)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_log_level_controls_stderr():
    p = subprocess.run([binary()], input=b"", capture_output=True, timeout=10,
                       env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "error"})
    assert p.returncode == 0 and p.stderr == b"" and p.stdout == b""
    p = subprocess.run([binary()], input=b"", capture_output=True, timeout=10,
                       env={"PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "DEBUG"})
    assert p.returncode == 0 and b"serving MCP over stdio" in p.stderr and p.stdout == b""


def test_bad_root_fails_fast(tmp_path):
    p = subprocess.run([binary(), "--root", str(tmp_path / "missing")], input=b"", capture_output=True, timeout=10)
    assert p.returncode != 0 and b"missing" in p.stderr


def test_tool_list_and_schemas():
    async def body():
        async with stdio_session() as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            # Without FIRECRAWL_API_KEY / OLLAMA_HOST those tools are not listed.
            assert set(tools) == BASE_TOOLS
            for t in tools.values():
                assert t.description and len(t.description) > 20, t.name
                sch = t.input_schema
                assert sch["type"] == "object" and sch.get("additionalProperties") is False, t.name
                for prop in sch.get("properties", {}).values():
                    assert prop.get("description"), (t.name, prop)
                assert t.output_schema and t.output_schema["type"] == "object", t.name
            assert tools["fs_read"].input_schema["required"] == ["path"]
            assert set(tools["fs_move"].input_schema["required"]) == {"from", "to"}
            assert set(tools["fs_write"].input_schema["required"]) == {"path", "content"}
            assert set(tools["fs_search"].input_schema["required"]) == {"path", "pattern"}
            fetch = tools["http_fetch"].input_schema["properties"]
            assert fetch["max_bytes"]["maximum"] == 10 * 1024 * 1024
            assert fetch["max_redirects"]["maximum"] == 10
            assert fetch["timeout_ms"]["maximum"] == 120000
            tcp = tools["tcp_check"].input_schema
            assert set(tcp["required"]) == {"host", "port"}
            assert tcp["properties"]["port"]["minimum"] == 1 and tcp["properties"]["port"]["maximum"] == 65535
            consume = tools["kafka_consume"].input_schema["properties"]
            assert consume["max_messages"]["maximum"] == 1000 and consume["timeout_ms"]["maximum"] == 60000
        async with stdio_session(env={"FIRECRAWL_API_KEY": "fc-x", "OLLAMA_HOST": "127.0.0.1:1"}) as s:
            assert await tool_names(s) == BASE_TOOLS | FIRECRAWL_TOOLS | OLLAMA_TOOLS

    run(body())


def _get(url: str, host: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post_initialize(url: str, host: str) -> int:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Host": host, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_http_transport(tmp_path):
    (tmp_path / "f.txt").write_text("over http")
    with HttpNativeTools(["--root", str(tmp_path)]) as srv:
        status, body = _get(srv.base + "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"

        async def body_():
            async with streamable_http_client(srv.base + "/mcp") as (read, write):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    assert await tool_names(s) == BASE_TOOLS
                    assert ok(await s.call_tool("fs_read", {"path": "f.txt"}))["content"] == "over http"
                    assert "'..'" in err(await s.call_tool("fs_read", {"path": "../x"}))
                    # Requests larger than rmcp's 4 MiB default body limit are accepted.
                    big = "y" * (6 * 1024 * 1024)
                    w = ok(await s.call_tool("fs_write", {"path": "big.txt", "content": big}))
                    assert w["bytes_written"] == len(big)

        run(body_())
        assert (tmp_path / "big.txt").stat().st_size == 6 * 1024 * 1024
        # DNS-rebinding protection: unknown Host headers are refused, the service name is accepted.
        assert _post_initialize(srv.base + "/mcp", "evil.example") == 403
        assert _post_initialize(srv.base + "/mcp", f"native-tools:{srv.port}") == 200
        t0 = time.monotonic()
        assert srv.stop() == 0 and time.monotonic() - t0 < 5
        assert "listening on http://127.0.0.1:" in srv.log()


def test_http_allowed_hosts_configurable():
    with HttpNativeTools(["--allowed-host", "tools.internal,other"]) as srv:
        assert _post_initialize(srv.base + "/mcp", "tools.internal") == 200
        assert _post_initialize(srv.base + "/mcp", "other:1234") == 200
        assert _post_initialize(srv.base + "/mcp", "localhost") == 403
    with HttpNativeTools(env={"NATIVE_TOOLS_ALLOWED_HOSTS": "*"}) as srv:
        assert _post_initialize(srv.base + "/mcp", "anything.example") == 200


def test_http_sigterm_with_open_stream():
    with HttpNativeTools() as srv:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}).encode()
        req = urllib.request.Request(srv.base + "/mcp", data=body, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        with urllib.request.urlopen(req, timeout=10) as r:
            sid = r.headers["mcp-session-id"]
            assert sid
            r.read()
        note = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode()
        req = urllib.request.Request(srv.base + "/mcp", data=note, method="POST", headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"})
        urllib.request.urlopen(req, timeout=10).read()
        # A long-lived server-to-client SSE stream stays open...
        req = urllib.request.Request(srv.base + "/mcp", method="GET", headers={
            "Accept": "text/event-stream", "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"})
        stream = urllib.request.urlopen(req, timeout=10)
        assert stream.status == 200
        try:
            # ...and SIGTERM still stops the server promptly.
            t0 = time.monotonic()
            assert srv.stop() == 0
            assert time.monotonic() - t0 < 6
        finally:
            stream.close()


def test_health_subcommand():
    with HttpNativeTools() as srv:
        p = subprocess.run([binary(), "health", "--port", str(srv.port)], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and json.loads(p.stdout)["status"] == "ok"
        p = subprocess.run([binary(), "health", "--url", srv.base + "/health"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 0
        p = subprocess.run([binary(), "health", "--url", srv.base + "/nope"], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 1 and "HTTP 404" in p.stderr
    # Nothing listening any more: unhealthy.
    p = subprocess.run([binary(), "health", "--port", str(srv.port), "--timeout-ms", "2000"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "failed" in p.stderr
