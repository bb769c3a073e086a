"""The images aelimg builds, run under podman and driven by the official Python
MCP client: ael over streamable HTTP on a mapped 127.0.0.1 port (workflows
through the bundled native-tools), and native-tools over stdio (`podman run -i`)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import AsyncIterator

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from ael_helpers import free_port, http_get, http_session, ok, run, text_of
from container_helpers import (
    PODMAN, RUN_LIMITS, build_images, container_logs, example_workflow_names, oci_ref, podman,
    podman_env, read_cidfile, remove_container,
)
from support import wait_until


@pytest.fixture(scope="module")
def images() -> Path:
    out, report = build_images()
    for name in ("ael", "native-tools"):
        assert (out / name / "index.json").is_file(), f"no layout for {name} in {out}"
    assert json.dumps(report)  # the build printed its JSON size report
    return out


@pytest.fixture(scope="module")
def ael_container(images):
    """The ael image, detached, port 8082 mapped to a free 127.0.0.1 port.
    Yields (container id, base URL, /health body once native-tools is connected)."""
    port = free_port()
    r = podman("run", "-d", *RUN_LIMITS, "-p", f"127.0.0.1:{port}:8082", oci_ref(images, "ael"), timeout=600)
    cid = r.stdout.strip().splitlines()[-1]
    try:
        base = f"http://127.0.0.1:{port}"

        last: dict = {}

        def healthy():
            status, last["body"] = http_get(base + "/health", timeout=2)
            body = last["body"]
            if (status == 200 and isinstance(body, dict)
                    and body.get("tool_servers", {}).get("native", {}).get("state") == "connected"):
                return body
            return None

        body = wait_until(healthy, 60, lambda: f"the ael container to be healthy with native connected: "
                                               f"{last.get('body')}\n{container_logs(cid)}",
                          interval=0.2, ignore=(OSError,))
        yield cid, base, body
    finally:
        remove_container(cid)


def test_ael_image_health_reports_bundled_native_tools(ael_container):
    cid, base, health = ael_container
    assert health["status"] == "ok"
    assert health["workflows"] == len(example_workflow_names())
    native = health["tool_servers"]["native"]
    assert native["state"] == "connected"
    assert {"fs_read", "fs_write", "fs_list", "fs_stat", "http_fetch"} <= set(native["tools"])
    assert health["data_dir"]["writable"] is True
    # The container runs as the image's non-root user.
    top = json.loads(podman("inspect", cid).stdout)
    assert top[0]["Config"]["User"] == "10001:10001"


def test_ael_image_mcp_over_mapped_port(ael_container):
    cid, base, _ = ael_container
    expected = example_workflow_names()

    async def body():
        async with http_session(base) as s:
            tools = {t.name: t for t in (await s.list_tools()).tools}
            assert {"workflows_list", "workflow_describe", "workflow_validate", "workflow_run",
                    "runs_list", "tool_call"} <= set(tools)
            # Every example workflow is valid against the bundled native-tools and
            # is also exposed as a tool.
            assert {f"wf_{n}" for n in expected} <= set(tools)
            lst = ok(await s.call_tool("workflows_list", {}))
            assert {w["name"] for w in lst["workflows"]} == expected
            assert all(w["valid"] for w in lst["workflows"]), lst
            assert lst["errors"] == []

            # fetch-and-save: http_fetch (ael's own /health on the container's
            # loopback), fs_write into /app/data, fs_stat.
            r = ok(await s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                "url": "http://127.0.0.1:8082/health", "dest": "health-copy.json"}}))
            assert r["status"] == "succeeded", r
            assert [st["status"] for st in r["steps"]] == ["succeeded"] * 3
            assert r["output"]["status"] == 200 and r["output"]["saved"] is True
            size = r["output"]["size"]
            assert size > 20

            # file-summary: fs_stat + fs_read of the file the first run wrote.
            r = ok(await s.call_tool("workflow_run", {"name": "file-summary",
                                                      "inputs": {"path": "health-copy.json"}}))
            assert r["status"] == "succeeded", r
            out = r["output"]
            assert out["exists"] is True and out["stat"]["size"] == size and out["stat"]["type"] == "file"
            saved = json.loads(out["content"])
            assert saved["status"] == "ok" and saved["tool_servers"]["native"]["state"] == "connected"

            # The same file through ael's direct tool call, listed in /app/data.
            t = ok(await s.call_tool("tool_call", {"server": "native", "tool": "fs_list",
                                                   "arguments": {"path": "."}}))
            assert "health-copy.json" in json.dumps(t["result"])

            # A path outside /app/data is refused by native-tools; the run fails.
            r = await s.call_tool("workflow_run", {"name": "file-summary", "inputs": {"path": "/etc/passwd"}})
            assert r.is_error and r.structured_content["status"] == "failed", text_of(r)

            runs = ok(await s.call_tool("runs_list", {"limit": 10}))["runs"]
            assert [x["workflow"] for x in runs[:3]] == ["file-summary", "file-summary", "fetch-and-save"]
            assert [x["status"] for x in runs[:3]] == ["failed", "succeeded", "succeeded"]

    run(body(), timeout=120)
    # The run history is in the container's /app/data, as the CLI inside it reports.
    r = podman("exec", cid, "ael", "runs", "list", "--json", timeout=60)
    assert [x["workflow"] for x in json.loads(r.stdout)["runs"][:3]] == [
        "file-summary", "file-summary", "fetch-and-save"]


@contextlib.asynccontextmanager
async def podman_stdio_session(images: Path, image: str, args: list[str], cidfile: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=PODMAN[0],
        args=[*PODMAN[1:], "run", "-i", "--rm", "--cidfile", str(cidfile), *RUN_LIMITS,
              oci_ref(images, image), *args],
        env=podman_env(),
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def test_native_tools_image_over_podman_stdio(images, tmp_path):
    cidfile = tmp_path / "cid"

    async def body():
        async with podman_stdio_session(images, "native-tools", [], cidfile) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert {"fs_read", "fs_write", "fs_list", "fs_stat", "fs_delete", "http_fetch",
                    "dns_resolve", "tcp_check"} <= names
            w = ok(await s.call_tool("fs_write", {"path": "notes/hello.txt", "content": "hello from podman\n",
                                                  "create_dirs": True}))
            assert w["bytes_written"] == len("hello from podman\n")
            rd = ok(await s.call_tool("fs_read", {"path": "/app/data/notes/hello.txt"}))
            assert rd["content"] == "hello from podman\n"
            ls = ok(await s.call_tool("fs_list", {"path": "notes"}))
            assert "hello.txt" in json.dumps(ls)
            top = ok(await s.call_tool("fs_list", {"path": "."}))
            assert "notes" in json.dumps(top)
            # Outside the root /app/data: refused with a tool error, the server lives on.
            for bad in ("../etc/passwd", "/etc/passwd", "/usr/local/bin/native-tools"):
                r = await s.call_tool("fs_read", {"path": bad})
                assert r.is_error, f"{bad}: {text_of(r)}"
                assert "hello from podman" not in text_of(r)
            rd = ok(await s.call_tool("fs_read", {"path": "notes/hello.txt"}))
            assert rd["content"] == "hello from podman\n"

    try:
        run(body(), timeout=180)
        # The client closed the server's stdin: native-tools exits and --rm removes the container.
        cid = read_cidfile(cidfile)
        assert cid
        wait_until(lambda: podman("container", "exists", cid, check=False).returncode == 1, 20,
                   f"container {cid} to be removed (--rm) after native-tools exited", interval=0.2)
    finally:
        remove_container(read_cidfile(cidfile))


def test_ael_image_over_podman_stdio(images, tmp_path):
    cidfile = tmp_path / "cid"

    async def body():
        async with podman_stdio_session(images, "ael", ["serve", "--transport", "stdio"], cidfile) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert "workflows_list" in names
            lst = ok(await s.call_tool("workflows_list", {}))
            assert {w["name"] for w in lst["workflows"]} == example_workflow_names()
            w = ok(await s.call_tool("tool_call", {"server": "native", "tool": "fs_write",
                                                   "arguments": {"path": "s.txt", "content": "over stdio"}}))
            assert w["result"]
            r = ok(await s.call_tool("workflow_run", {"name": "file-summary", "inputs": {"path": "s.txt"}}))
            assert r["output"]["content"] == "over stdio"

    try:
        run(body(), timeout=180)
    finally:
        remove_container(read_cidfile(cidfile))
