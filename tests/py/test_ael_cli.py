"""ael CLI: --version, workflows list/show/validate/run, runs, config errors, hot reload, signals."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from pathlib import Path

from ael_helpers import (
    Ael, HttpServer, ael_cli, base_env, http_get, http_session, native_tools_bin, repo_workflows, run, write_config,
)


def make(tmp_path: Path, native: bool = False) -> tuple[Path, dict[str, str], Path]:
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    for f in repo_workflows().glob("*.yaml"):
        shutil.copy(f, wf)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, native_root=root if native else None)
    return wf, base_env(AEL_CONFIG_PATH=str(cfg)), root


def test_version():
    r = ael_cli(["--version"], env=base_env())
    assert r.returncode == 0
    assert re.fullmatch(r"ael \d+\.\d+\.\d+\n", r.stdout)


def test_workflows_list_show_validate(tmp_path):
    wf, env, _ = make(tmp_path)
    r = ael_cli(["workflows", "list"], env=env)
    assert r.returncode == 0, r.stderr
    lines = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert lines["file-summary"].startswith("Read a file")
    assert "fetch-and-save" in lines
    j = json.loads(ael_cli(["workflows", "list", "--json"], env=env).stdout)
    assert {w["name"] for w in j["workflows"]} == set(lines)
    assert j["errors"] == []

    s = json.loads(ael_cli(["workflows", "show", "fetch-and-save", "--json"], env=env).stdout)
    assert s["inputs"]["save"] == {"type": "boolean", "description": "Write the body to dest", "required": False,
                                   "default": True}
    assert s["steps"][0]["retry"]["max_attempts"] == 3
    txt = ael_cli(["workflows", "show", "file-summary"], env=env).stdout
    assert "path: string (required)" in txt

    # Without tool servers configured, the examples reference an unknown server.
    r = ael_cli(["workflows", "validate", "--json"], env=env)
    assert r.returncode == 1
    res = json.loads(r.stdout)
    assert res["valid"] is False
    assert all("tool server `native` is not configured" in p for x in res["results"] for p in x["problems"])

    # A broken file is reported with file:line and the others still load.
    (wf / "bad.yaml").write_text("name: bad\ndescription: x\nsteps:\n  - id: one\n    tool: native.fs_read\n"
                                 "    timeout_ms: soon\n")
    (wf / "dup.yaml").write_text((wf / "file-summary.yaml").read_text())
    r = ael_cli(["workflows", "list", "--json"], env=env)
    j = json.loads(r.stdout)
    assert "file-summary" in {w["name"] for w in j["workflows"]}
    errs = {Path(e["file"]).name: e["error"] for e in j["errors"]}
    assert errs["bad.yaml"].startswith(f"{wf / 'bad.yaml'}:6:"), errs
    # Files load in name order, so file-summary.yaml is the duplicate of dup.yaml.
    assert "duplicate workflow name \"file-summary\"" in errs["file-summary.yaml"]
    assert "dup.yaml" in errs["file-summary.yaml"]
    r = ael_cli(["workflows", "validate", str(wf / "bad.yaml")], env=env)
    assert r.returncode == 1 and ":6:" in r.stdout


def test_config_errors(tmp_path):
    env = base_env(AEL_CONFIG_PATH=str(tmp_path / "missing.yaml"))
    r = ael_cli(["workflows", "list"], env=env)
    assert r.returncode == 1 and "missing.yaml" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("log_level: info\nhttp:\n  port: 8082\n  hots: [a]\n")
    r = ael_cli(["serve"], env=base_env(AEL_CONFIG_PATH=str(bad)))
    assert r.returncode == 1
    assert f"{bad}:4:" in r.stderr and "hots" in r.stderr
    bad.write_text("tool_servers:\n  x:\n    required: true\n")
    r = ael_cli(["config"], env=base_env(AEL_CONFIG_PATH=str(bad)))
    assert r.returncode == 1 and "expected `command`" in r.stderr
    r = ael_cli(["config"], env=base_env(AEL_CONFIG_PATH=str(tmp_path / "nope.yaml")))
    assert r.returncode == 1
    # The default path may be missing: defaults apply, env overrides win.
    good = tmp_path / "good.yaml"
    good.write_text("http:\n  port: 9000\n")
    r = ael_cli(["config"], env=base_env(AEL_CONFIG_PATH=str(good), AEL_HTTP_PORT="9100", AEL_LOG_LEVEL="debug",
                                         AEL_HOT_RELOAD="true"))
    c = json.loads(r.stdout)["config"]
    assert c["http"]["port"] == 9100 and c["log_level"] == "debug" and c["hot_reload"] is True
    r = ael_cli(["config"], env=base_env(AEL_CONFIG_PATH=str(good), AEL_HTTP_PORT="http"))
    assert r.returncode == 1 and "AEL_HTTP_PORT" in r.stderr


def test_cli_run_connects_to_native_tools_and_records_history(tmp_path):
    native_tools_bin()
    wf, env, root = make(tmp_path, native=True)
    (root / "in.txt").write_text("abc")
    r = ael_cli(["workflows", "run", "file-summary", "--input", f"path={root / 'in.txt'}",
                 "-i", "preview_chars=5", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["status"] == "succeeded"
    assert rec["output"]["content"] == "abc" and rec["output"]["preview_chars"] == 5
    # Type errors in --input are reported.
    r = ael_cli(["workflows", "run", "file-summary", "-i", "path=x", "-i", "preview_chars=many"], env=env)
    assert r.returncode == 1 and "expected integer" in r.stderr
    runs = json.loads(ael_cli(["runs", "list", "--json"], env=env).stdout)["runs"]
    assert runs[0]["run_id"] == rec["run_id"] and runs[0]["origin"] == "cli"
    show = json.loads(ael_cli(["runs", "show", rec["run_id"]], env=env).stdout)
    assert [l["step"] for l in show["logs"] if l["message"] == "succeeded"] == ["stat", "read"]


def test_hot_reload_add_change_remove(tmp_path):
    wf, env, _ = make(tmp_path)
    cfg = Path(env["AEL_CONFIG_PATH"])
    with Ael(cfg, args=["--reload"]) as ael:
        _, h = ael.wait_healthy()
        n = h["workflows"]
        assert h["hot_reload"] is True

        def wait_for(pred, what):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                body = http_get(ael.base + "/health")[1]
                if pred(body):
                    return body
                time.sleep(0.1)
            raise AssertionError(f"hot reload did not {what}: {body}\n{ael.log()}")

        new = wf / "new.yaml"
        new.write_text("name: brand-new\ndescription: first\nsteps:\n  - id: a\n    tool: native.fs_list\n")
        wait_for(lambda b: b["workflows"] == n + 1, "add")
        names = json.loads(ael_cli(["workflows", "list", "--json"], env=env).stdout)
        assert "brand-new" in {w["name"] for w in names["workflows"]}
        # A changed file is picked up by the running server (seen over MCP).

        async def described():
            import asyncio
            notes = []

            async def on_message(msg):
                notes.append(getattr(getattr(msg, "root", msg), "method", None) or type(msg).__name__)

            async with http_session(ael.base, message_handler=on_message) as s:
                await s.list_tools()
                new.write_text("name: brand-new\ndescription: changed\nsteps:\n  - id: a\n    tool: native.fs_list\n")
                for _ in range(100):
                    d = (await s.call_tool("workflow_describe", {"name": "brand-new"})).structured_content
                    if d.get("description") == "changed":
                        break
                    await asyncio.sleep(0.1)
                for _ in range(50):
                    if any("list_changed" in str(n) or "ToolListChanged" in str(n) for n in notes):
                        break
                    await asyncio.sleep(0.1)
                return d, notes

        d, notes = run(described())
        assert d["description"] == "changed"
        # Workflows are tools too, so the session is told that the tool list changed.
        assert any("list_changed" in str(n) or "ToolListChanged" in str(n) for n in notes), notes
        new.write_text("name: brand-new\ndescription: second\nsteps: [oops\n")
        wait_for(lambda b: b["workflows"] == n and b["workflow_errors"] == 1, "see the broken change")
        new.unlink()
        wait_for(lambda b: b["workflows"] == n and b["workflow_errors"] == 0, "remove")
        assert "workflows reloaded" in ael.log()


def test_sigint_exits_promptly_and_idle_sigterm(tmp_path):
    _, env, _ = make(tmp_path)
    cfg = Path(env["AEL_CONFIG_PATH"])
    for sig in (signal.SIGINT, signal.SIGTERM):
        with Ael(cfg) as ael:
            ael.wait_healthy()
            rc, took = ael.stop(sig)
            assert rc == 0, ael.log()
            assert took < 2.0


def test_health_probe_fails_when_nothing_listens(tmp_path):
    from ael_helpers import free_port
    r = ael_cli(["health", "--url", f"http://127.0.0.1:{free_port()}/health", "--timeout-ms", "500"], env=base_env())
    assert r.returncode == 1 and "127.0.0.1" in r.stderr


def zombies_of(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            rest = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] == "Z" and int(rest[1]) == pid:
            out.append(int(p.name))
    return out


def test_orphans_are_reaped(tmp_path):
    """A tool server whose launcher leaves an orphan behind: ael (as PID 1, or as a
    subreaper with AEL_REAP_ORPHANS=true) reaps it, so no zombie remains."""
    nt = native_tools_bin()
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    servers = ("tool_servers:\n  native:\n    command: /bin/sh\n"
               f"    args: ['-c', '(sleep 0.3 &); (sleep 0.4 &); exec {nt} --root {root}']\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    with Ael(cfg, env={"AEL_REAP_ORPHANS": "true"}) as ael:
        ael.wait_tool_server("native")
        time.sleep(1.5)  # the orphaned sleeps have exited by now
        assert zombies_of(ael.proc.pid) == []
        assert ael.log().count("reaped orphaned process") == 2, ael.log()
        rc, took = ael.stop()
        assert rc == 0 and took < 2.0



def test_image_config_and_example_workflows_are_valid():
    """The config and workflows shipped in the image parse and validate together."""
    from ael_helpers import REPO
    cfg = REPO / "images" / "config" / "ael-config.yaml"
    env = base_env()
    r = ael_cli(["--config", str(cfg), "config"], env=env)
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)["config"]
    assert c["http"]["port"] == 8082 and c["http"]["host"] == "0.0.0.0"
    assert c["data_dir"] == "/app/data" and c["workflows_dir"] == "/app/workflows"
    native = c["tool_servers"]["native"]
    assert native["command"] == "/usr/local/bin/native-tools" and native["required"] is False
    assert "/app/data" in native["args"]
    r = ael_cli(["--config", str(cfg), "--workflows-dir", str(repo_workflows()), "workflows", "validate", "--json"],
                env=env)
    assert r.returncode == 0, r.stdout
    res = json.loads(r.stdout)
    assert res["valid"] is True and len(res["results"]) >= 2


def test_cli_run_interrupted_by_sigint_is_recorded(tmp_path):
    import subprocess

    native_tools_bin()
    wf, env, root = make(tmp_path, native=True)

    def slow(method, path, body):
        time.sleep(6)
        return 200, {}, b"late"

    with HttpServer(slow) as web:
        from ael_helpers import ael_bin, stop_pid
        proc = subprocess.Popen([ael_bin(), "workflows", "run", "fetch-and-save", "-i", f"url={web.url}/slow",
                                 "-i", f"dest={root / 'x.txt'}", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 15
            while not web.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert web.requests, "the fetch never started"
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - t0
        finally:
            stop_pid(proc)
    assert proc.returncode == 1
    assert took < 2.0
    rec = json.loads(out)
    assert rec["status"] == "interrupted"
    runs = json.loads(ael_cli(["runs", "list", "--json"], env=env).stdout)["runs"]
    assert runs[0]["run_id"] == rec["run_id"] and runs[0]["status"] == "interrupted"
    assert not (root / "x.txt").exists()


def test_pid1_in_own_pid_namespace_reaps_and_stops(tmp_path):
    """ael as PID 1 (like in a container): reaps orphans without AEL_REAP_ORPHANS,
    answers /health, exits 0 promptly on SIGTERM. Needs `unshare --pid` (root)."""
    import os
    import subprocess

    from ael_helpers import ael_bin, free_port, stop_pid
    if shutil.which("unshare") is None or os.geteuid() != 0:
        import pytest
        pytest.skip("needs root and unshare(1) to create a PID namespace")
    nt = native_tools_bin()
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    servers = ("tool_servers:\n  native:\n    command: /bin/sh\n"
               f"    args: ['-c', '(sleep 0.2 &); (sleep 0.3 &); exec {nt} --root {root}']\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    port = free_port()
    env = base_env(AEL_CONFIG_PATH=str(cfg), AEL_HTTP_PORT=str(port))
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        import pytest
        pytest.skip(f"unshare --pid not permitted here: {probe.stderr.decode().strip()}")
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", ael_bin(), "serve"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        body = None
        while time.monotonic() < deadline:
            try:
                status, body = http_get(f"http://127.0.0.1:{port}/health", timeout=1)
                if body.get("tool_servers", {}).get("native", {}).get("state") == "connected":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        assert body and body["tool_servers"]["native"]["state"] == "connected", body
        time.sleep(1.0)  # the orphaned sleeps exit and must be reaped by PID 1
        ael_pid = int(subprocess.run(["ps", "-o", "pid=", "--ppid", str(outer.pid)], capture_output=True,
                                     text=True).stdout.split()[0])
        assert zombies_of(ael_pid) == []
        t0 = time.monotonic()
        os.kill(ael_pid, signal.SIGTERM)
        _, err = outer.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        stop_pid(outer)
    assert outer.returncode == 0, err
    assert took < 2.0
    assert err.count("reaped orphaned process") == 2, err


def test_sighup_reloads_workflows(tmp_path):
    wf, env, _ = make(tmp_path)
    with Ael(Path(env["AEL_CONFIG_PATH"])) as ael:  # no --reload
        _, h = ael.wait_healthy()
        n = h["workflows"]
        (wf / "extra.yaml").write_text("name: extra\nsteps:\n  - id: a\n    tool: native.fs_list\n")
        time.sleep(0.3)
        assert http_get(ael.base + "/health")[1]["workflows"] == n  # not polled
        import os
        os.kill(ael.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 5
        while http_get(ael.base + "/health")[1]["workflows"] != n + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http_get(ael.base + "/health")[1]["workflows"] == n + 1
        assert "SIGHUP: workflows reloaded" in ael.log()
        assert ael.proc.poll() is None  # SIGHUP does not stop ael


def test_json_log_format(tmp_path):
    wf, env, _ = make(tmp_path)
    r = subprocess_run_stdio_eof({**env, "AEL_LOG_FORMAT": "json", "AEL_LOG_LEVEL": "info"})
    lines = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    assert lines, r.stderr
    assert all({"timestamp", "level", "message"} <= set(x) for x in lines)
    assert any(x["message"] == "starting ael" and x["version"] for x in lines)
    assert r.stdout == ""  # stdio transport: nothing but protocol on stdout
    bad = subprocess_run_stdio_eof({**env, "AEL_LOG_FORMAT": "xml"})
    assert bad.returncode == 1 and "AEL_LOG_FORMAT" in bad.stderr


def subprocess_run_stdio_eof(env):
    import subprocess

    from ael_helpers import ael_bin
    return subprocess.run([ael_bin(), "serve", "--transport", "stdio"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
