"""ael over stdio (the MCP client spawns `ael serve --transport stdio`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ael_helpers import HttpServer, base_env, failed, native_tools_bin, ok, repo_workflows, run, stdio_session, write_config


def test_stdio_lists_and_validates_without_tool_servers(tmp_path):
    wf = tmp_path / "wf"
    wf.mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(repo_workflows() / "file-summary.yaml", wf)
    (wf / "broken.yaml").write_text("name: broken\nsteps:\n  - id: a\n    tool: x.y\n    bogus: 1\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=tmp_path / "data")
    # DEBUG logging must not corrupt the protocol on stdout.
    env = base_env(AEL_CONFIG_PATH=str(cfg), AEL_LOG_LEVEL="DEBUG")

    async def body():
        async with stdio_session(env) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert {"workflows_list", "workflow_describe", "workflow_validate", "workflow_run"} <= names
            lst = ok(await s.call_tool("workflows_list", {}))
            assert [w["name"] for w in lst["workflows"]] == ["file-summary"]
            # The bad file is reported with file:line:col and does not stop the others.
            assert len(lst["errors"]) == 1
            err = lst["errors"][0]["error"]
            assert err.startswith(str(wf / "broken.yaml") + ":5:"), err
            assert "bogus" in err
            v = ok(await s.call_tool("workflow_validate", {"name": "broken"}))
            assert v["valid"] is False and ":5:" in v["problems"][0]
            r = failed(await s.call_tool("workflow_run", {"name": "nope", "inputs": {}}))
            assert "no workflow named" in r["error"]

    run(body())


def test_stdio_runs_network_and_filesystem_workflow_via_native_tools(tmp_path):
    native_tools_bin()
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    shutil.copy(repo_workflows() / "fetch-and-save.yaml", wf)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root, required=True)
    env = base_env(AEL_CONFIG_PATH=str(cfg))

    def handler(method, path, body):
        if path == "/report.json":
            return 200, {"Content-Type": "application/json"}, b'{"answer": 42}'
        return 404, {}, b"no"

    with HttpServer(handler) as web:

        async def body():
            async with stdio_session(env) as s:
                st = ok(await s.call_tool("tool_servers_status", {}))
                # tool_servers_status may be called before the child has connected;
                # workflow_run waits for the connection (bounded by connect_timeout_ms).
                assert "native" in st["tool_servers"]
                r = ok(await s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                    "url": web.url + "/report.json", "dest": str(root / "report.json")}}))
                assert r["status"] == "succeeded"
                assert r["output"] == {"url": web.url + "/report.json", "status": 200, "saved": True, "size": 14}
                # save=false skips the write and check steps.
                r = ok(await s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                    "url": web.url + "/report.json", "dest": str(root / "other.json"), "save": False}}))
                assert [x["status"] for x in r["steps"]] == ["succeeded", "skipped", "skipped"]
                assert r["output"]["saved"] is False
                # An HTTP 404 is still a successful fetch; the status is in the output.
                r = ok(await s.call_tool("workflow_run", {"name": "fetch-and-save", "inputs": {
                    "url": web.url + "/missing", "dest": str(root / "missing.txt"), "save": False}}))
                assert r["output"]["status"] == 404

        run(body())
    assert (root / "report.json").read_text() == '{"answer": 42}'
    assert not (root / "other.json").exists()
    assert (data / "runs.jsonl").read_text().count('"finished"') == 3


def test_stdio_network_check_workflow_against_local_ports(tmp_path):
    native_tools_bin()
    from ael_helpers import free_port
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    shutil.copy(repo_workflows() / "network-check.yaml", wf)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root)
    env = base_env(AEL_CONFIG_PATH=str(cfg))
    closed_port = free_port()

    with HttpServer(lambda m, p, b: (200, {}, b"ok")) as web:

        async def body():
            async with stdio_session(env) as s:
                r = ok(await s.call_tool("workflow_run", {"name": "network-check",
                                                          "inputs": {"host": "localhost", "port": web.port}}))
                out = r["output"]
                assert out["resolved"] is True and "127.0.0.1" in out["addresses"]
                assert out["reachable"] is True
                assert out["address"] == f"127.0.0.1:{web.port}"
                assert out["summary"] == f"localhost:{web.port} is open"
                r = ok(await s.call_tool("workflow_run", {"name": "network-check",
                                                          "inputs": {"host": "127.0.0.1", "port": closed_port}}))
                assert r["output"]["reachable"] is False
                assert r["output"]["summary"] == f"127.0.0.1:{closed_port} is closed"

        run(body())
