"""The official MCP inspector's CLI mode (npm @modelcontextprotocol/inspector,
installed into tests/npm by scripts/bootstrap) against ael over streamable HTTP
and stdio, and against native-tools over stdio: list tools, call tools, and
check the JSON it prints."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

import nt_helpers
from ael_helpers import Ael, ael_bin, base_env, repo_workflows, write_config
from support import wait_until

REPO = Path(__file__).resolve().parents[2]
INSPECTOR = REPO / "tests" / "npm" / "node_modules" / ".bin" / "mcp-inspector"
PINNED = json.loads((REPO / "tests" / "npm" / "package.json").read_text())["dependencies"][
    "@modelcontextprotocol/inspector"]


def inspector(tmp: Path, args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    assert INSPECTOR.exists(), f"{INSPECTOR} missing: run scripts/bootstrap (npm ci --prefix tests/npm)"
    # Its catalog would otherwise be written under ~/.mcp-inspector.
    env = base_env(MCP_CATALOG_PATH=str(tmp / "inspector-catalog.json"), HOME=str(tmp))
    # Output goes to files, not pipes, and the inspector gets its own process
    # group: a server it spawned that outlives it cannot hang the test, and on
    # timeout the whole group (the inspector and its server) is killed.
    out_path, err_path = tmp / "inspector.out", tmp / "inspector.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([str(INSPECTOR), "--cli", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, env=env, cwd=tmp, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise AssertionError(f"inspector {args} timed out after {timeout}s:\n{err_path.read_text()[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out_path.read_text(), err_path.read_text())


def inspector_json(tmp: Path, args: list[str], expect_rc: int = 0) -> Any:
    r = inspector(tmp, args)
    assert r.returncode == expect_rc, f"inspector {args} exited {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout)


def call_args(tool: str, **kv: Any) -> list[str]:
    out = ["--method", "tools/call", "--tool-name", tool]
    if kv:
        out.append("--tool-arg")
        out += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in kv.items()]
    return out


def structured(result: dict) -> dict:
    """A successful tool result as the inspector prints it; its text carries the same JSON."""
    assert result["isError"] is False, result
    data = result["structuredContent"]
    assert json.loads(result["content"][0]["text"]) == data
    return data


def test_inspector_is_the_pinned_version(tmp_path):
    r = inspector(tmp_path, ["--version"])
    assert r.returncode == 0, r.stderr
    assert PINNED in r.stdout, r.stdout


@pytest.fixture()
def dirs(tmp_path):
    nt_helpers.binary()  # a native-tools that does not build fails here rather than skipping
    wf, data, root = tmp_path / "workflows", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    for f in repo_workflows().glob("*.yaml"):
        shutil.copy(f, wf / f.name)
    (root / "notes.txt").write_text("alpha beta gamma\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root, required=True)
    return cfg, root


def check_ael(tmp: Path, target: list[str], root: Path) -> None:
    tools = inspector_json(tmp, ["--method", "tools/list", *target])["tools"]
    names = {t["name"] for t in tools}
    assert {"workflows_list", "workflow_describe", "workflow_run", "tool_call", "wf_file-summary"} <= names
    wft = next(t for t in tools if t["name"] == "wf_file-summary")
    assert wft["inputSchema"]["required"] == ["path"]

    lst = structured(inspector_json(tmp, [*call_args("workflows_list"), *target]))
    assert {w["name"] for w in lst["workflows"]} == {"fetch-and-save", "file-summary", "network-check"}

    # An object argument: the inspector parses JSON values of --tool-arg.
    r = structured(inspector_json(tmp, [*call_args("workflow_run", name="file-summary",
                                                   inputs={"path": "notes.txt", "preview_chars": 5}), *target]))
    assert r["status"] == "succeeded"
    assert r["output"]["content"] == "alpha beta gamma\n" and r["output"]["preview_chars"] == 5
    assert [s["id"] for s in r["steps"]] == ["stat", "read"]

    # The workflow's own tool, with flat arguments.
    r = structured(inspector_json(tmp, [*call_args("wf_file-summary", path="notes.txt"), *target]))
    assert r["output"]["stat"]["size"] == len("alpha beta gamma\n")

    # A failing run is a tool error (isError), and the inspector exits non-zero.
    r = inspector(tmp, [*call_args("workflow_run", name="file-summary", inputs={"path": "../../etc/passwd"}), *target])
    assert r.returncode != 0
    out = json.loads(r.stdout)
    assert out["isError"] is True and out["structuredContent"]["status"] == "failed"
    assert not (root / "etc").exists()


def test_inspector_ael_over_streamable_http(tmp_path, dirs):
    cfg, root = dirs
    with Ael(cfg) as ael:
        ael.wait_tool_server("native")
        check_ael(tmp_path, ["--transport", "http", "--server-url", ael.base + "/mcp"], root)
        # The URL alone: the inspector picks streamable HTTP from the /mcp path.
        tools = inspector_json(tmp_path, ["--method", "tools/list", ael.base + "/mcp"])["tools"]
        assert "workflow_run" in {t["name"] for t in tools}
        rc, took = ael.stop()
        assert rc == 0, ael.log()


def test_inspector_ael_over_stdio(tmp_path, dirs):
    cfg, root = dirs
    target = ["-e", f"AEL_CONFIG_PATH={cfg}", "--", ael_bin(), "serve", "--transport", "stdio"]
    check_ael(tmp_path, target, root)


def test_inspector_native_tools_over_stdio(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    target = ["-e", "LOG_LEVEL=warn", "--", nt_helpers.binary(), "--root", str(root)]
    tools = inspector_json(tmp_path, ["--method", "tools/list", *target])["tools"]
    by_name = {t["name"]: t for t in tools}
    assert {"fs_read", "fs_write", "fs_list", "fs_stat", "http_fetch", "dns_resolve", "tcp_check"} <= set(by_name)
    assert by_name["fs_write"]["inputSchema"]["required"] == ["path", "content"] or \
        set(by_name["fs_write"]["inputSchema"]["required"]) == {"path", "content"}

    w = structured(inspector_json(tmp_path, [*call_args("fs_write", path="a/b.txt", content="hello inspector",
                                                        create_dirs=True), *target]))
    assert w["bytes_written"] == len("hello inspector")
    assert (root / "a" / "b.txt").read_text() == "hello inspector"
    rd = structured(inspector_json(tmp_path, [*call_args("fs_read", path="a/b.txt"), *target]))
    assert rd["content"] == "hello inspector"
    ls = structured(inspector_json(tmp_path, [*call_args("fs_list", path="a"), *target]))
    assert "b.txt" in json.dumps(ls)

    # Escapes are tool errors with a clear message.
    r = inspector(tmp_path, [*call_args("fs_read", path="../outside.txt"), *target])
    assert r.returncode != 0
    out = json.loads(r.stdout)
    assert out["isError"] is True and ".." in out["content"][0]["text"]


def test_inspector_against_the_podman_images(tmp_path):
    """The images aelimg built: native-tools through `podman run -i` (stdio), and
    ael on a mapped 127.0.0.1 port (streamable HTTP)."""
    from container_helpers import PODMAN, RUN_LIMITS, build_images, container_logs, oci_ref, podman, \
        read_cidfile, remove_container
    from ael_helpers import free_port, http_get

    images, _ = build_images()
    cidfile = tmp_path / "cid"
    target = ["--", *PODMAN, "run", "-i", "--rm", "--cidfile", str(cidfile), *RUN_LIMITS,
              oci_ref(images, "native-tools")]
    try:
        w = structured(inspector_json(tmp_path, [*call_args("fs_write", path="x/y.txt", content="in a container",
                                                            create_dirs=True), *target]))
        assert w["bytes_written"] == len("in a container") and w["path"] == "x/y.txt"
    finally:
        remove_container(read_cidfile(cidfile))
    cidfile.unlink()
    try:
        r = inspector(tmp_path, [*call_args("fs_read", path="/etc/passwd"), *target])
        assert r.returncode != 0 and json.loads(r.stdout)["isError"] is True, r.stdout
    finally:
        remove_container(read_cidfile(cidfile))

    port = free_port()
    cid = podman("run", "-d", *RUN_LIMITS, "-p", f"127.0.0.1:{port}:8082", oci_ref(images, "ael"),
                 timeout=600).stdout.strip().splitlines()[-1]
    try:
        def healthy():
            status, body = http_get(f"http://127.0.0.1:{port}/health", timeout=2)
            return status == 200 and body["tool_servers"]["native"]["state"] == "connected"

        wait_until(healthy, 60, lambda: f"the ael container to be healthy:\n{container_logs(cid)}", interval=0.2,
                   ignore=(OSError, KeyError, TypeError))
        url = f"http://127.0.0.1:{port}/mcp"
        lst = structured(inspector_json(tmp_path, [*call_args("workflows_list"), "--transport", "http",
                                                   "--server-url", url]))
        assert {w["name"] for w in lst["workflows"]} == {"fetch-and-save", "file-summary", "network-check"}
        r = structured(inspector_json(tmp_path, [*call_args("wf_fetch-and-save", url="http://127.0.0.1:8082/health",
                                                            dest="h.json"), "--transport", "http",
                                                 "--server-url", url]))
        assert r["status"] == "succeeded" and r["output"]["saved"] is True and r["output"]["size"] > 20
    finally:
        remove_container(cid)
