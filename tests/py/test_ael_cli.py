"""ael CLI: --version, workflows list/show/validate/run, runs, config errors, hot reload, signals."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from ael_helpers import (
    Ael, HttpServer, ael_bin, ael_cli, base_env, free_port, http_get, http_session, native_tools_bin, repo_workflows,
    run, stop_pid, write_config,
)
from support import require, wait_until, wait_until_async


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
            return ael.wait_health(pred, f"after hot reload should {what}", timeout=10)

        new = wf / "new.yaml"
        new.write_text("name: brand-new\ndescription: first\nsteps:\n  - id: a\n    tool: native.fs_list\n")
        wait_for(lambda b: b["workflows"] == n + 1, "add")
        names = json.loads(ael_cli(["workflows", "list", "--json"], env=env).stdout)
        assert "brand-new" in {w["name"] for w in names["workflows"]}
        # A changed file is picked up by the running server (seen over MCP).

        async def described():
            notes = []

            async def on_message(msg):
                notes.append(getattr(getattr(msg, "root", msg), "method", None) or type(msg).__name__)

            async def description():
                d = (await s.call_tool("workflow_describe", {"name": "brand-new"})).structured_content
                return d if d.get("description") == "changed" else None

            async with http_session(ael.base, message_handler=on_message) as s:
                await s.list_tools()
                new.write_text("name: brand-new\ndescription: changed\nsteps:\n  - id: a\n    tool: native.fs_list\n")
                d = await wait_until_async(description, 10, "workflow_describe to show the changed description",
                                           interval=0.1)
                # Workflows are tools too, so the session is told that the tool list changed.
                await wait_until_async(
                    lambda: any("list_changed" in str(n) or "ToolListChanged" in str(n) for n in notes), 5,
                    lambda: f"a tools/list_changed notification (got {notes})", interval=0.1)
                return d

        d = run(described())
        assert d["description"] == "changed"
        new.write_text("name: brand-new\ndescription: second\nsteps: [oops\n")
        wait_for(lambda b: b["workflows"] == n and b["workflow_errors"] == 1, "see the broken change")
        new.unlink()
        wait_for(lambda b: b["workflows"] == n and b["workflow_errors"] == 0, "see the removal")
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


def parent_of(pid: int) -> int | None:
    """The parent PID of a live process, or None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def test_orphans_are_reaped(tmp_path):
    """A tool server whose launcher leaves orphans behind: ael as a subreaper
    (AEL_REAP_ORPHANS=true) adopts them and reaps them when they exit, so no
    zombie remains. The orphans live until the test ends them, so their parent
    can be checked while they run."""
    nt = native_tools_bin()
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    pid_files = [tmp_path / "orphan1", tmp_path / "orphan2"]
    servers = ("tool_servers:\n  native:\n    command: /bin/sh\n"
               f"    args: ['-c', '(sleep 60 & echo $! > {pid_files[0]}); (sleep 60 & echo $! > {pid_files[1]}); "
               f"exec {nt} --root {root}']\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    orphans: list[int] = []
    try:
        with Ael(cfg, env={"AEL_REAP_ORPHANS": "true"}) as ael:
            ael.wait_tool_server("native")
            orphans = [int(p.read_text()) for p in pid_files]  # written before the exec
            for pid in orphans:
                assert parent_of(pid) == ael.proc.pid, (
                    f"orphan {pid} was re-parented to {parent_of(pid)}, not to ael ({ael.proc.pid}): "
                    "was ael a subreaper when its tool server started?")
            for pid in orphans:
                os.kill(pid, signal.SIGTERM)
            # ael logs every orphan it reaps; a reaped process is gone from /proc (not a zombie).
            ael.wait_log("reaped orphaned process", count=2, timeout=10)
            assert [pid for pid in orphans if Path(f"/proc/{pid}").exists()] == []
            assert zombies_of(ael.proc.pid) == []
            assert ael.log().count("reaped orphaned process") == 2, ael.log()
            rc, took = ael.stop()
            assert rc == 0 and took < 2.0
    finally:
        for pid in orphans:  # still running only if the test failed early
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep"):
                    os.kill(pid, signal.SIGKILL)


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
    native_tools_bin()
    wf, env, root = make(tmp_path, native=True)
    release = threading.Event()

    def slow(method, path, body):  # a server that does not answer until the test is over
        release.wait(30)
        return 200, {}, b"late"

    with HttpServer(slow) as web:
        proc = subprocess.Popen([ael_bin(), "workflows", "run", "fetch-and-save", "-i", f"url={web.url}/slow",
                                 "-i", f"dest={root / 'x.txt'}", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_until(lambda: web.requests, 15, "the fetch to reach the local server")
            t0 = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - t0
        finally:
            stop_pid(proc)
            release.set()
    assert proc.returncode == 1
    assert took < 2.0
    rec = json.loads(out)
    assert rec["status"] == "interrupted"
    runs = json.loads(ael_cli(["runs", "list", "--json"], env=env).stdout)["runs"]
    assert runs[0]["run_id"] == rec["run_id"] and runs[0]["status"] == "interrupted"
    assert not (root / "x.txt").exists()


def test_pid1_in_own_pid_namespace_reaps_and_stops(tmp_path):
    """ael as PID 1 (like in a container): reaps orphans without AEL_REAP_ORPHANS,
    answers /health, exits 0 promptly on SIGTERM. Needs `unshare --pid`: as root,
    or else inside a user namespace (`unshare --user --map-root-user`)."""
    nt = native_tools_bin()
    require(shutil.which("unshare"), "unshare(1) from util-linux is needed to create a PID namespace")
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    if os.geteuid() != 0:
        unshare[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run([*unshare, "true"], capture_output=True)
    require(probe.returncode == 0,
            f"`{' '.join(unshare)} true` is not permitted here: {probe.stderr.decode().strip()}")
    wf, data, root = tmp_path / "wf", tmp_path / "data", tmp_path / "root"
    for d in (wf, data, root):
        d.mkdir()
    servers = ("tool_servers:\n  native:\n    command: /bin/sh\n"
               f"    args: ['-c', '(sleep 0.2 &); (sleep 0.3 &); exec {nt} --root {root}']\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers)
    port = free_port()
    env = base_env(AEL_CONFIG_PATH=str(cfg), AEL_HTTP_PORT=str(port))
    err_path = tmp_path / "ael.stderr"
    with open(err_path, "w") as err_file:
        outer = subprocess.Popen([*unshare, ael_bin(), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err_file)

    def log() -> str:
        return err_path.read_text()

    def connected():
        if outer.poll() is not None:
            raise AssertionError(f"ael exited with {outer.returncode}:\n{log()}")
        _, body = http_get(f"http://127.0.0.1:{port}/health", timeout=1)
        return isinstance(body, dict) and body.get("tool_servers", {}).get("native", {}).get("state") == "connected"

    try:
        wait_until(connected, 20, lambda: f"native connected to ael as PID 1:\n{log()}", ignore=(OSError,))
        # The orphaned sleeps exit after a fraction of a second; PID 1 reaps and logs each.
        wait_until(lambda: log().count("reaped orphaned process") >= 2, 10,
                   lambda: f"ael as PID 1 to reap both orphans:\n{log()}")
        ael_pid = int(subprocess.run(["ps", "-o", "pid=", "--ppid", str(outer.pid)], capture_output=True,
                                     text=True).stdout.split()[0])
        assert zombies_of(ael_pid) == []
        t0 = time.monotonic()
        os.kill(ael_pid, signal.SIGTERM)
        outer.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        stop_pid(outer)
    err = log()
    assert outer.returncode == 0, err
    assert took < 2.0
    assert err.count("reaped orphaned process") == 2, err


def test_sighup_reloads_workflows(tmp_path):
    """Without --reload ael does not poll the workflows directory; SIGHUP reloads it.

    A second ael with --reload on the same directory shows when a poller would have
    seen a change: it sees a first file at one poll and a second file at a later
    poll, so at least one poll interval has passed since the first file appeared."""
    wf, env, _ = make(tmp_path)
    data2 = tmp_path / "data2"
    data2.mkdir()
    cfg2 = write_config(tmp_path / "ael-reload.yaml", workflows=wf, data=data2)
    with Ael(Path(env["AEL_CONFIG_PATH"])) as ael, Ael(cfg2, args=["--reload"]) as polling:
        _, h = ael.wait_healthy()
        polling.wait_healthy()
        n = h["workflows"]
        assert h["hot_reload"] is False
        for i, name in enumerate(("extra", "extra2"), start=1):
            (wf / f"{name}.yaml").write_text(f"name: {name}\nsteps:\n  - id: a\n    tool: native.fs_list\n")
            polling.wait_health(lambda b: b["workflows"] == n + i, f"the polling ael to load {name}.yaml")
        assert ael.health()[1]["workflows"] == n  # not polled
        assert "workflows reloaded" not in ael.log()
        os.kill(ael.proc.pid, signal.SIGHUP)
        ael.wait_health(lambda b: b["workflows"] == n + 2, "SIGHUP to load both new files", timeout=5)
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
    return subprocess.run([ael_bin(), "serve", "--transport", "stdio"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
