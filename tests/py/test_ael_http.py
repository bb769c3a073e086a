"""ael over streamable HTTP: /health, MCP tools, workflows through native-tools, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ael_helpers import (
    Ael, HttpServer, ael_bin, ael_cli, base_env, failed, free_port, http_get, http_session, ok, pid_alive,
    repo_workflows, run, write_config,
)
from support import wait_until, wait_until_async

AEL_TOOLS = {"workflows_list", "workflow_describe", "workflow_validate", "workflow_run", "runs_list",
             "tool_servers_status", "tool_call"}


def setup_dirs(tmp_path: Path, copy_examples: bool = True) -> tuple[Path, Path, Path]:
    wf = tmp_path / "workflows"
    data = tmp_path / "data"
    root = tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    if copy_examples:
        for f in repo_workflows().glob("*.yaml"):
            shutil.copy(f, wf / f.name)
    return wf, data, root


def test_health_fast_and_mcp_tools_without_tool_servers(tmp_path):
    wf, data, _ = setup_dirs(tmp_path)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data)
    with Ael(cfg) as ael:
        elapsed, body = ael.wait_healthy()
        assert elapsed < 5.0
        assert body["status"] == "ok"
        assert body["version"].count(".") == 2
        assert body["workflows"] == len(list(repo_workflows().glob("*.yaml")))
        assert body["tool_servers"] == {}
        assert body["data_dir"]["writable"] is True

        # `ael health` probes the same port (AEL_HTTP_PORT) and exits 0.
        r = ael_cli(["health"], env=ael.env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["status"] == "ok"

        async def body_():
            async with http_session(ael.base) as s:
                names = {t.name for t in (await s.list_tools()).tools}
                assert AEL_TOOLS <= names
                lst = ok(await s.call_tool("workflows_list", {}))
                assert {w["name"] for w in lst["workflows"]} >= {"file-summary", "fetch-and-save"}
                d = ok(await s.call_tool("workflow_describe", {"name": "file-summary"}))
                assert d["input_schema"]["required"] == ["path"]
                assert [st["id"] for st in d["steps"]] == ["stat", "read"]
                assert d["steps"][0]["line"] > 1
                # No tool server named `native` is configured here.
                assert d["valid"] is False
                assert any("tool server `native` is not configured" in p for p in d["problems"])
                bad = ok(await s.call_tool("workflow_validate", {"yaml": "name: x\nsteps:\n  - id: a\n    tool: nodot\n"}))
                assert bad["valid"] is False
                assert bad["problems"][0].startswith("<yaml>:3: step `a`")
                syntax = ok(await s.call_tool("workflow_validate", {"yaml": "name: x\nsteps: 5\n"}))
                assert syntax["valid"] is False and syntax["problems"][0].startswith("<yaml>:2:")
                missing = failed(await s.call_tool("workflow_describe", {"name": "nope"}))
                assert "nope" in missing["error"]

        run(body_())
        rc, took = ael.stop(signal.SIGTERM)
        assert rc == 0
        assert took < 2.0, f"exit took {took:.2f}s"


def test_host_header_allow_list(tmp_path):
    wf, data, _ = setup_dirs(tmp_path, copy_examples=False)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data)

    def post(base: str, host: str) -> int:
        return mcp_post(base, host=host)[0]

    with Ael(cfg) as ael:
        ael.wait_healthy()
        assert post(ael.base, f"127.0.0.1:{ael.port}") == 200
        assert post(ael.base, "ael:8082") == 200          # service name from the config
        assert post(ael.base, "evil.example:8082") == 403
    # AEL_ALLOWED_HOSTS overrides the list; "*" accepts any Host.
    with Ael(cfg, env={"AEL_ALLOWED_HOSTS": "*"}) as ael:
        ael.wait_healthy()
        assert post(ael.base, "evil.example:8082") == 200


def fetch_handler(method, path, body):
    if path == "/data.txt":
        return 200, {"Content-Type": "text/plain"}, b"payload from the local server\n"
    return 404, {}, b"not found"


def test_workflows_through_native_tools_over_http(tmp_path):
    wf, data, root = setup_dirs(tmp_path)
    (root / "notes.txt").write_text("alpha beta gamma\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root, required=True)
    with HttpServer(fetch_handler) as web, Ael(cfg) as ael:
        ael.wait_healthy(want=None)
        health = ael.wait_tool_server("native")
        native = health["tool_servers"]["native"]
        assert {"fs_read", "fs_write", "http_fetch"} <= set(native["tools"])
        child_pid = native["pid"]
        assert pid_alive(child_pid)

        async def body():
            async with http_session(ael.base) as s:
                d = ok(await s.call_tool("workflow_describe", {"name": "file-summary"}))
                assert d["valid"] is True, d["problems"]
                # Every valid workflow is also a tool with the workflow's input schema.
                tools = {t.name: t for t in (await s.list_tools()).tools}
                wft = tools["wf_file-summary"]
                assert wft.input_schema["required"] == ["path"]
                assert wft.input_schema["properties"]["preview_chars"] == {
                    "type": "integer", "description": "Not used by the tool; echoed in the output", "default": 80}
                assert {"wf_fetch-and-save", "wf_network-check"} <= set(tools)
                r = ok(await s.call_tool("wf_file-summary", {"path": str(root / "notes.txt"), "preview_chars": 3}))
                assert r["output"]["content"] == "alpha beta gamma\n" and r["output"]["preview_chars"] == 3
                events = []

                async def on_progress(progress, total, message):
                    events.append((progress, total, message))

                r = ok(await s.call_tool("workflow_run", {"name": "file-summary",
                                                          "inputs": {"path": str(root / "notes.txt")}},
                                         progress_callback=on_progress))
                assert r["status"] == "succeeded"
                # Progress notifications: one per step, then the end of the run.
                assert events == [(0, 2, "step stat (native.fs_stat)"), (1, 2, "step read (native.fs_read)"),
                                  (2, 2, "run succeeded")], events
                assert r["output"]["content"] == "alpha beta gamma\n"
                assert r["output"]["stat"]["size"] == 17
                assert r["output"]["preview_chars"] == 80
                assert [st["status"] for st in r["steps"]] == ["succeeded", "succeeded"]

                dest = root / "out" / "saved.txt"
                (root / "out").mkdir()
                r = ok(await s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                    "url": web.url + "/data.txt", "dest": str(dest)}}))
                assert r["output"]["status"] == 200
                assert r["output"]["saved"] is True
                assert r["output"]["size"] == len(b"payload from the local server\n")
                assert dest.read_text() == "payload from the local server\n"
                assert ("GET", "/data.txt") in web.requests

                # A missing file: the condition skips the read step.
                r = ok(await s.call_tool("workflow_run", {"name": "file-summary",
                                                          "inputs": {"path": str(root / "missing.txt")}}))
                assert r["output"]["exists"] is False and r["output"]["content"] is None
                assert [st["status"] for st in r["steps"]] == ["succeeded", "skipped"]

                # A failing step: a path outside the native-tools root fails the run.
                r = failed(await s.call_tool("workflow_run", {"name": "file-summary",
                                                              "inputs": {"path": str(tmp_path / "elsewhere.txt")}}))
                assert r["status"] == "failed"
                assert "step `stat` failed" in r["error"]

                # Missing required input is rejected before any tool call.
                r = failed(await s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {"url": "x"}}))
                assert "missing required input `dest`" in r["error"]

                # Direct tool call through ael.
                t = ok(await s.call_tool("tool_call", {"server": "native", "tool": "fs_list",
                                                       "arguments": {"path": str(root)}}))
                assert "notes.txt" in json.dumps(t["result"])

                runs = ok(await s.call_tool("runs_list", {"limit": 10, "logs": True}))["runs"]
                # Input errors are rejected before a run starts, so 5 runs are recorded.
                assert [x["status"] for x in runs] == ["failed", "succeeded", "succeeded", "succeeded", "succeeded"]
                assert runs[4]["workflow"] == "file-summary"
                assert any(log["step"] == "read" for log in runs[4]["logs"])

        run(body())
        rc, took = ael.stop()
        assert rc == 0 and took < 2.0, (rc, took)
        wait_until(lambda: not pid_alive(child_pid), 5, f"the native-tools child {child_pid} to exit after ael")

    # History is kept across restarts.
    lines = [json.loads(x) for x in (data / "runs.jsonl").read_text().splitlines()]
    assert sum(1 for x in lines if x["event"] == "finished") == 5
    r = ael_cli(["runs", "list", "--json"], env=base_env(AEL_CONFIG_PATH=str(cfg)))
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["runs"]) == 5


def test_required_tool_server_down_makes_health_503(tmp_path):
    wf, data, _ = setup_dirs(tmp_path, copy_examples=False)
    servers = ("tool_servers:\n  broken:\n    command: /nonexistent/tool-server\n    required: true\n"
               "  optional:\n    command: /nonexistent/other\n    required: false\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    with Ael(cfg) as ael:
        _, body = ael.wait_healthy(want=503)
        assert body["status"] == "unhealthy"
        assert body["tool_servers"]["broken"]["state"] == "failed"
        assert "cannot start" in body["tool_servers"]["broken"]["error"]
        r = ael_cli(["health", "--quiet"], env=ael.env)
        assert r.returncode == 1
    servers = "tool_servers:\n  optional:\n    command: /nonexistent/other\n    required: false\n"
    cfg = write_config(tmp_path / "ael2.yaml", workflows=wf, data=data, servers=servers)
    with Ael(cfg) as ael:
        _, body = ael.wait_healthy(want=200)
        ael.wait_tool_server("optional", "failed")
        _, body = http_get(ael.base + "/health")
        assert body["status"] == "degraded"
        assert ael_cli(["health", "-q"], env=ael.env).returncode == 0


def test_secrets_never_in_health_or_logs(tmp_path):
    wf, data, root = setup_dirs(tmp_path, copy_examples=False)
    secret = "s3cr3t-value-123456"
    servers = (f"tool_servers:\n  native:\n    command: {__import__('ael_helpers').native_tools_bin()}\n"
               f"    args: [--root, {root}]\n    pass_env: [FIRECRAWL_API_KEY]\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    with Ael(cfg, env={"FIRECRAWL_API_KEY": secret}) as ael:
        ael.wait_tool_server("native")
        status, body = http_get(ael.base + "/health")
        assert status == 200
        tools = body["tool_servers"]["native"]["tools"]
        # The key reached the child (its firecrawl tools are enabled only with a key) ...
        assert any(t.startswith("firecrawl") for t in tools), tools
        assert secret not in json.dumps(body)
        ael.stop()
        # ... but never appears in ael's logs.
        assert secret not in ael.log()


def test_inflight_run_interrupted_on_shutdown_and_recorded(tmp_path):
    wf, data, root = setup_dirs(tmp_path)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root)
    cfg.write_text(cfg.read_text().replace("shutdown_grace_ms: 1000", "shutdown_grace_ms: 300"))
    release = threading.Event()

    def slow(method, path, body):  # does not answer until the test is over
        release.wait(30)
        return 200, {}, b"late"

    with HttpServer(slow) as web, Ael(cfg) as ael:
        ael.wait_tool_server("native")

        async def body():
            async with http_session(ael.base) as s:
                task = asyncio.create_task(s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                    "url": web.url + "/slow", "dest": str(root / "never.txt")}}))
                await wait_until_async(lambda: ael.health()[1]["active_runs"] == 1, 10, "the run to be active")
                await wait_until_async(lambda: ("GET", "/slow") in web.requests, 10, "the fetch to reach /slow")
                os.kill(ael.proc.pid, signal.SIGTERM)
                r = await task
                return r

        try:
            r = run(body())
        finally:
            release.set()
        data_ = failed(r)
        assert data_["status"] == "interrupted"
        rc, took = ael.stop()
        assert rc == 0, ael.log()
        assert took < 2.0
    runs = [json.loads(x) for x in (data / "runs.jsonl").read_text().splitlines()]
    fin = [x for x in runs if x["event"] == "finished"]
    assert fin[-1]["status"] == "interrupted"
    assert not (root / "never.txt").exists()


def test_http_tool_server_reconnects_when_it_comes_up(tmp_path):
    """A required tool server reached over streamable HTTP: 503 while it is down,
    200 once ael has (re)connected, and workflows run through it."""
    from ael_helpers import native_tools_bin, stop_pid
    nt = native_tools_bin()
    wf, data, root = setup_dirs(tmp_path)
    (root / "f.txt").write_text("over http")
    port = free_port()
    # Both MCP endpoints want a bearer token: ael's from a secret file, native-tools' from its
    # environment; ael sends native-tools' token, named by bearer_token_env.
    servers = (f"tool_servers:\n  native:\n    url: http://127.0.0.1:{port}/mcp\n    required: true\n"
               "    connect_timeout_ms: 3000\n    bearer_token_env: NT_TOKEN\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    (tmp_path / "ael-token").write_text("ael-secret-1\n")
    ael_env = {"AEL_HTTP_TOKEN_FILE": str(tmp_path / "ael-token"), "NT_TOKEN": "nt-secret-2"}
    with Ael(cfg, env=ael_env) as ael:
        _, body = ael.wait_healthy(want=503)
        assert body["tool_servers"]["native"]["transport"] == "http"
        ael.wait_tool_server("native", "failed")
        proc = subprocess.Popen([nt, "--transport", "http", "--host", "127.0.0.1", "--port", str(port),
                                 "--root", str(root)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                env=base_env(LOG_LEVEL="warn", NATIVE_TOOLS_HTTP_TOKEN="nt-secret-2"))
        try:
            _, body = ael.wait_healthy(want=200, timeout=30)
            assert body["tool_servers"]["native"]["state"] == "connected"
            assert "fs_read" in body["tool_servers"]["native"]["tools"]

            async def go():
                async with http_session(ael.base, token="ael-secret-1") as s:
                    r = ok(await s.call_tool("workflow_run", {"name": "file-summary",
                                                              "inputs": {"path": str(root / "f.txt")}}))
                    assert r["output"]["content"] == "over http"

            run(go())
            # native-tools itself refuses a client without its token; /health stays open.
            assert mcp_post(f"http://127.0.0.1:{port}")[0] == 401
            assert mcp_post(f"http://127.0.0.1:{port}", token="nt-secret-2")[0] == 200
            assert http_get(f"http://127.0.0.1:{port}/health")[0] == 200
        finally:
            stop_pid(proc)
        rc, took = ael.stop()
        assert rc == 0 and took < 2.0
        assert "secret" not in ael.log()


def mcp_post(base: str, host: str | None = None, token: str | None = None) -> tuple[int, dict[str, str]]:
    """POST an MCP initialize to base/mcp; the status and headers of the answer."""
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if host:
        headers["Host"] = host
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + "/mcp", data=init, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def test_bearer_token_guards_mcp_but_not_health(tmp_path):
    wf, data, _ = setup_dirs(tmp_path, copy_examples=False)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data)
    with Ael(cfg, env={"AEL_HTTP_TOKEN": "t0ken-value"}) as ael:
        ael.wait_healthy()                                   # the health check needs no token
        assert ael_cli(["health"], env=ael.env).returncode == 0
        status, headers = mcp_post(ael.base)
        assert status == 401 and headers.get("www-authenticate") == 'Bearer realm="ael"', (status, headers)
        assert mcp_post(ael.base, token="t0ken-valuf")[0] == 401
        assert mcp_post(ael.base, token="t0ken-value")[0] == 200

        async def with_token():
            async with http_session(ael.base, token="t0ken-value") as s:
                assert "workflows_list" in {t.name for t in (await s.list_tools()).tools}

        run(with_token())

        async def without_token():
            async with http_session(ael.base) as s:
                await s.list_tools()

        with pytest.raises(Exception):
            run(without_token(), timeout=20)
        assert "t0ken-value" not in ael.log()
    # Both ways of giving the token at once is a configuration error, reported before serving.
    (tmp_path / "tok").write_text("x")
    r = subprocess.run([ael_bin(), "serve", "--transport", "http"], capture_output=True, text=True, timeout=30,
                       env=base_env(AEL_CONFIG_PATH=str(cfg), AEL_HTTP_PORT=str(free_port()),
                                    AEL_HTTP_TOKEN="a", AEL_HTTP_TOKEN_FILE=str(tmp_path / "tok")))
    assert r.returncode == 1 and "set AEL_HTTP_TOKEN or AEL_HTTP_TOKEN_FILE, not both" in r.stderr, r.stderr


def test_async_workflow_run_and_run_get(tmp_path):
    wf, data, root = setup_dirs(tmp_path)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root)

    release = threading.Event()

    def handler(method, path, body):  # answers once the test has seen the run running
        release.wait(30)
        return 200, {"Content-Type": "text/plain"}, b"eventually"

    with HttpServer(handler) as web, Ael(cfg) as ael:
        ael.wait_tool_server("native")

        async def body():
            async with http_session(ael.base) as s:
                async def finished(rid):
                    r = ok(await s.call_tool("run_get", {"run_id": rid, "logs": True}))
                    return r if r["status"] != "running" else None

                started = ok(await s.call_tool("workflow_run", {"name": "fetch-and-save", "wait": False, "inputs": {
                    "url": web.url + "/x", "dest": str(root / "async.txt")}}))
                assert started["status"] == "running"
                rid = started["run_id"]
                r = ok(await s.call_tool("run_get", {"run_id": rid}))
                assert r["status"] == "running" and r["workflow"] == "fetch-and-save"
                release.set()
                r = await wait_until_async(lambda: finished(rid), 10, f"run {rid} to finish", interval=0.1)
                assert r["status"] == "succeeded", r
                assert r["output"]["saved"] is True and r["output"]["size"] == len(b"eventually")
                assert [x["id"] for x in r["steps"]] == ["fetch", "write", "check"]
                assert any(x["message"] == "succeeded" and x["step"] == "write" for x in r["logs"])
                # Errors known up front are returned at once, not as a background run.
                bad = failed(await s.call_tool("workflow_run", {"name": "fetch-and-save", "wait": False,
                                                                "inputs": {"url": "x"}}))
                assert "missing required input `dest`" in bad["error"]
                missing = failed(await s.call_tool("run_get", {"run_id": "nope"}))
                assert "nope" in missing["error"]

        run(body())
    assert (root / "async.txt").read_text() == "eventually"


def test_inflight_run_finishes_within_grace_and_second_signal_interrupts(tmp_path):
    wf, data, root = setup_dirs(tmp_path)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root)
    cfg.write_text(cfg.read_text().replace("shutdown_grace_ms: 1000", "shutdown_grace_ms: 20000"))
    # The local server answers a path only once the test releases it, so a run is
    # certainly in flight when the signals arrive; /long is never released in time.
    release = {"/short": threading.Event(), "/long": threading.Event()}

    def handler(method, path, body):
        release[path].wait(30)
        return 200, {}, b"done"

    async def start_and_signal(ael, web, path, signals):
        async with http_session(ael.base) as s:
            # The SDK lists tools after a call to check structured output unless it
            # already has the list; after SIGTERM new connections are refused.
            await s.list_tools()
            task = asyncio.create_task(s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                "url": web.url + path, "dest": str(root / (path.strip("/") + ".txt"))}}))
            await wait_until_async(lambda: web.requests and web.requests[-1][1] == path, 10,
                                   f"the fetch to reach {path}", interval=0.02)
            t0 = time.monotonic()
            for i, sig in enumerate(signals, start=1):
                os.kill(ael.proc.pid, sig)
                # The same signal sent twice before ael handles the first is delivered once,
                # so wait until ael has logged this one.
                seen = f"{signal.Signals(sig).name} received, shutting down"
                await wait_until_async(lambda: ael.log().count(seen) >= i, 5, f"ael to log {seen!r} {i} time(s)")
            release["/short"].set()
            r = await task
            return r, time.monotonic() - t0

    with HttpServer(handler) as web:
        try:
            # One SIGTERM: the in-flight run completes within the grace period.
            with Ael(cfg) as ael:
                ael.wait_tool_server("native")
                r, _ = run(start_and_signal(ael, web, "/short", [signal.SIGTERM]))
                assert ok(r)["status"] == "succeeded"
                rc, _ = ael.stop()
                assert rc == 0
            assert (root / "short.txt").read_text() == "done"
            # Two signals: the run is interrupted at once despite the 20 s grace period.
            with Ael(cfg) as ael:
                ael.wait_tool_server("native")
                r, took = run(start_and_signal(ael, web, "/long", [signal.SIGTERM, signal.SIGTERM]))
                assert failed(r)["status"] == "interrupted"
                ael.wait_log("second signal: interrupting runs now", timeout=5)
                assert took < 3.0
                rc, _ = ael.stop()
                assert rc == 0
        finally:
            for ev in release.values():
                ev.set()
    fin = [json.loads(x) for x in (data / "runs.jsonl").read_text().splitlines() if '"finished"' in x]
    assert [x["status"] for x in fin] == ["succeeded", "interrupted"]
