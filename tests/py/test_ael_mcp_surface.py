"""The MCP surface of ael beyond tools, through the official Python SDK over
streamable HTTP: identity, logging/setLevel and notifications/message,
progress in step order, cancellation of a workflow run (its tool call's
child process is gone, the history says cancelled), resources (workflow
YAML byte for byte, run records, templates, subscriptions, list_changed on
hot reload), prompts and completions.

Tools come from tests/py/fake_tool_server.py (stdio, started by ael)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from ael_helpers import Ael, failed, ok, pid_alive, run, write_config
from support import wait_until_async

FAKE = Path(__file__).resolve().parent / "fake_tool_server.py"

# Logging and resources/subscribe are deprecated by the 2026-07-28 protocol;
# ael supports them on purpose for the clients that use them.
pytestmark = [pytest.mark.filterwarnings("ignore:.*deprecated as of 2026-07-28"),
              pytest.mark.filterwarnings("ignore:.*removed as of 2026-07-28")]

STEPS = """\
name: steps3
description: Three echo steps
inputs:
  mode: {type: string, enum: [fast, slow], default: fast, description: How fast}
  loud: {type: boolean, default: false}
steps:
  - id: a
    tool: fake.echo
    with: {text: "a ${{ inputs.mode }}"}
  - id: b
    tool: fake.echo
    with: {text: b}
  - id: c
    tool: fake.echo
    with: {text: c}
"""

FAILS = """\
name: fails
steps:
  - id: boom
    tool: fake.fail
    with: {message: "it broke"}
"""

HANG = """\
name: hang
inputs:
  pidfile: {type: string, required: true}
steps:
  - id: sleep
    tool: fake.sleep_child
    with: {pidfile: "${{ inputs.pidfile }}"}
"""

NAPS = """\
name: naps
steps:
  - id: first
    tool: fake.nap
    with: {ms: 600}
  - id: second
    tool: fake.echo
    with: {text: two}
"""


def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    wf, data = tmp_path / "workflows", tmp_path / "data"
    wf.mkdir()
    data.mkdir()
    for name, text in (("steps3", STEPS), ("fails", FAILS), ("hang", HANG), ("naps", NAPS)):
        (wf / f"{name}.yaml").write_text(text)
    servers = (f"tool_servers:\n  fake:\n    command: {sys.executable}\n    args: [{FAKE}]\n"
               "    connect_timeout_ms: 15000\n")
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data, servers=servers,
                       extra="hot_reload: true\n")
    return cfg, wf, data


class Inbox:
    """Log messages and other server notifications a session received."""

    def __init__(self) -> None:
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self.notes: list[Any] = []

    async def on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def on_message(self, msg: Any) -> None:
        if not isinstance(msg, Exception):
            self.notes.append(msg)

    def methods(self) -> list[str]:
        out = []
        for n in self.notes:
            root = getattr(n, "root", n)
            out.append(getattr(root, "method", type(root).__name__))
        return out

    def run_logs(self, run_id: str) -> list[tuple[str, str | None, str]]:
        return [(m.level, m.data.get("step"), m.data.get("message")) for m in self.logs
                if isinstance(m.data, dict) and m.data.get("run_id") == run_id]


@contextlib.asynccontextmanager
async def session(base: str, inbox: Inbox) -> AsyncIterator[tuple[ClientSession, Any]]:
    async with create_mcp_http_client() as client:
        async with streamable_http_client(base + "/mcp", http_client=client) as (read, write):
            async with ClientSession(read, write, logging_callback=inbox.on_log,
                                     message_handler=inbox.on_message) as s:
                init = await s.initialize()
                yield s, init


def test_identity_logging_progress_prompts_and_completions(tmp_path):
    cfg, wf, _ = setup(tmp_path)
    with Ael(cfg) as ael:
        ael.wait_tool_server("fake")

        async def body():
            inbox = Inbox()
            async with session(ael.base, inbox) as (s, init):
                info = init.server_info
                assert (info.name, info.title) == ("ael", "AEL runtime")
                assert info.version.count(".") == 2
                assert "workflow" in (init.instructions or "")
                caps = init.capabilities
                assert caps.logging is not None and caps.completions is not None
                assert caps.resources and caps.resources.subscribe and caps.resources.list_changed
                assert caps.prompts is not None

                # No setLevel yet: no log messages.
                r0 = ok(await s.call_tool("workflow_run", {"name": "steps3"}))
                # At `error`, a failing run sends its errors and nothing below.
                await s.set_logging_level("error")
                r1 = failed(await s.call_tool("workflow_run", {"name": "fails"}))
                await wait_until_async(lambda: any(m[2].startswith("run failed") for m in inbox.run_logs(r1["run_id"])),
                                       10, lambda: f"the failure log of {r1['run_id']} ({inbox.logs})")
                got = inbox.run_logs(r1["run_id"])
                assert {lvl for lvl, _, _ in got} == {"error"}, got
                assert any(st == "boom" and m.startswith("failed: ") and "it broke" in m for _, st, m in got), got
                # At `info`, every step event of a run, with its run id, in order.
                await s.set_logging_level("info")
                steps: list[tuple[float, str | None]] = []

                async def on_progress(progress, total, message):
                    steps.append((progress, message))

                r2 = ok(await s.call_tool("workflow_run", {"name": "steps3", "inputs": {"mode": "slow"}},
                                          progress_callback=on_progress))
                rid = r2["run_id"]
                await wait_until_async(lambda: any(m[2] == "run succeeded" for m in inbox.run_logs(rid)), 10,
                                       lambda: f"the end of run {rid} in the log messages ({inbox.logs})")
                msgs = inbox.run_logs(rid)
                assert msgs[0] == ("info", None, "run started")
                assert [st for _, st, m in msgs if m == "succeeded"] == ["a", "b", "c"]
                assert all(m.logger == "ael" and m.data["workflow"] == "steps3" for m in inbox.logs
                           if m.data.get("run_id") == rid)
                assert inbox.run_logs(r0["run_id"]) == [], "messages before setLevel"
                # Progress: one notification per step, in step order, then the end.
                assert [m for _, m in steps] == ["step a (fake.echo)", "step b (fake.echo)", "step c (fake.echo)",
                                                 "run succeeded"], steps
                assert [p for p, _ in steps] == [0, 1, 2, 3]

                # Prompts: one per workflow, arguments are the inputs.
                prompts = {p.name: p for p in (await s.list_prompts()).prompts}
                assert set(prompts) == {"steps3", "fails", "hang", "naps"}
                assert [a.name for a in prompts["steps3"].arguments] == ["mode", "loud"]
                got_p = await s.get_prompt("steps3", {"mode": "slow", "loud": "true"})
                text = got_p.messages[0].content.text
                assert "wf_steps3" in text and '"mode": "slow"' in text and '"loud": true' in text
                try:
                    await s.get_prompt("steps3", {"mode": "medium"})
                    raise AssertionError("a value outside the enum was accepted")
                except Exception as e:  # McpError
                    assert "not one of" in str(e)

                # Completions: enum and boolean inputs, workflow names, run ids.
                async def complete(ref, name, value):
                    return (await s.complete(ref, {"name": name, "value": value})).completion.values

                prompt = types.PromptReference(type="ref/prompt", name="steps3")
                assert await complete(prompt, "mode", "") == ["fast", "slow"]
                assert await complete(prompt, "mode", "s") == ["slow"]
                assert await complete(prompt, "loud", "t") == ["true"]
                wf_ref = types.ResourceTemplateReference(type="ref/resource", uri="ael://workflows/{name}")
                assert await complete(wf_ref, "name", "st") == ["steps3"]
                assert sorted(await complete(wf_ref, "name", "")) == ["fails", "hang", "naps", "steps3"]
                run_ref = types.ResourceTemplateReference(type="ref/resource", uri="ael://runs/{run_id}")
                assert await complete(run_ref, "run_id", rid[:8]) == [rid]
                assert await complete(types.PromptReference(type="ref/prompt", name="nope"), "x", "") == []

        run(body(), timeout=60)


def test_resources_read_subscribe_and_list_changed(tmp_path):
    cfg, wf, data = setup(tmp_path)
    # Bytes a YAML round trip would not keep: comments, quoting, trailing spaces.
    original = "# keep me  \n" + STEPS.replace("Three echo steps", "'Three echo steps'  # quoted") + "\n\n"
    (wf / "steps3.yaml").write_text(original)
    with Ael(cfg) as ael:
        ael.wait_tool_server("fake")

        async def body():
            inbox = Inbox()
            async with session(ael.base, inbox) as (s, _):
                listed = {str(r.uri): r for r in (await s.list_resources()).resources}
                assert "ael://workflows/steps3" in listed
                assert listed["ael://workflows/steps3"].mime_type == "application/yaml"
                templates = {t.uri_template for t in (await s.list_resource_templates()).resource_templates}
                assert templates == {"ael://workflows/{name}", "ael://runs/{run_id}"}
                got = (await s.read_resource("ael://workflows/steps3")).contents[0]
                assert got.text == original  # byte for byte
                assert got.text.encode() == (wf / "steps3.yaml").read_bytes()
                try:
                    await s.read_resource("ael://workflows/nope")
                    raise AssertionError("unknown workflow read")
                except Exception as e:
                    assert "nope" in str(e)

                # Subscribe to a running run: updates arrive while it runs.
                start = ok(await s.call_tool("workflow_run", {"name": "naps", "wait": False}))
                uri = f"ael://runs/{start['run_id']}"
                await s.subscribe_resource(uri)

                def updates() -> int:
                    roots = [getattr(n, "root", n) for n in inbox.notes]
                    return sum(1 for n in roots if getattr(n, "method", "") == "notifications/resources/updated"
                               and str(n.params.uri) == uri)

                await wait_until_async(lambda: updates() >= 2, 10, lambda: f"updates of {uri} ({inbox.methods()})")

                async def finished():
                    rec = json.loads((await s.read_resource(uri)).contents[0].text)
                    return rec if rec["status"] == "succeeded" else None

                rec = await wait_until_async(finished, 10, f"run {uri} to succeed")
                assert [st["id"] for st in rec["steps"]] == ["first", "second"]
                assert any(log["message"] == "succeeded" and log["step"] == "second" for log in rec["logs"])
                assert uri in {str(r.uri) for r in (await s.list_resources()).resources}

                # Hot reload: a new workflow file makes the lists change.
                (wf / "extra.yaml").write_text(STEPS.replace("name: steps3", "name: extra"))
                await wait_until_async(lambda: "notifications/resources/list_changed" in inbox.methods(), 10,
                                       lambda: f"resources/list_changed ({inbox.methods()})")
                assert "notifications/prompts/list_changed" in inbox.methods()
                assert "ael://workflows/extra" in {str(r.uri) for r in (await s.list_resources()).resources}

        run(body(), timeout=60)


def test_cancelled_run_stops_kills_the_tool_call_and_is_recorded(tmp_path):
    cfg, _, data = setup(tmp_path)
    pidfile = tmp_path / "child.pid"
    with Ael(cfg) as ael:
        ael.wait_tool_server("fake")

        async def body():
            inbox = Inbox()
            async with session(ael.base, inbox) as (s, _):
                task = asyncio.create_task(s.call_tool("workflow_run", {
                    "name": "hang", "inputs": {"pidfile": str(pidfile)}}))
                await wait_until_async(lambda: pidfile.exists(), 15, "the tool call to start its child")
                child = int(pidfile.read_text())
                assert pid_alive(child)
                t0 = time.monotonic()
                task.cancel()  # the SDK sends notifications/cancelled
                with contextlib.suppress(asyncio.CancelledError):
                    await task

                def history_status():
                    lines = [json.loads(x) for x in (data / "runs.jsonl").read_text().splitlines()]
                    fin = [x for x in lines if x["event"] == "finished" and x["workflow"] == "hang"]
                    return fin[-1] if fin else None

                fin = await wait_until_async(history_status, 5, "the cancelled run in the history")
                stopped = time.monotonic() - t0
                await wait_until_async(lambda: not pid_alive(child), 5, f"child {child} to be gone")
                gone = time.monotonic() - t0
                assert fin["status"] == "cancelled", fin
                assert fin["error"] == "cancelled by the client"
                assert stopped < 1.0, f"run stopped after {stopped:.2f}s"
                assert gone < 1.0, f"child gone after {gone:.2f}s"
                rec = ok(await s.call_tool("run_get", {"run_id": fin["run_id"]}))
                assert rec["status"] == "cancelled"
                assert ael.health()[1]["active_runs"] == 0
                # The tool server is still usable afterwards.
                assert ok(await s.call_tool("workflow_run", {"name": "steps3"}))["status"] == "succeeded"

        run(body(), timeout=60)


def test_secrets_are_redacted_in_log_files_and_log_messages(tmp_path):
    cfg, wf, data = setup(tmp_path)
    secret = "s3cr3t-token-987654"
    cfg.write_text(cfg.read_text().replace("    connect_timeout_ms: 15000\n",
                                           "    connect_timeout_ms: 15000\n    pass_env: [FAKE_API_KEY]\n"))
    (wf / "leaky.yaml").write_text(
        "name: leaky\ninputs:\n  key: {type: string, required: true}\nsteps:\n"
        "  - id: leak\n    tool: fake.fail\n    with: {message: 'bad key ${{ inputs.key }}'}\n")
    with Ael(cfg, env={"FAKE_API_KEY": secret}) as ael:
        ael.wait_tool_server("fake")

        async def body():
            inbox = Inbox()
            async with session(ael.base, inbox) as (s, _):
                await s.set_logging_level("debug")
                r = failed(await s.call_tool("workflow_run", {"name": "leaky", "inputs": {"key": secret}}))
                await wait_until_async(lambda: any(m[2].startswith("run failed") for m in inbox.run_logs(r["run_id"])),
                                       10, lambda: f"the failure of {r['run_id']} ({inbox.logs})")
                msgs = inbox.run_logs(r["run_id"])
                assert any("bad key [REDACTED]" in m for _, _, m in msgs), msgs
                assert secret not in json.dumps([m.data for m in inbox.logs])
                assert secret not in json.dumps(r) and "[REDACTED]" in r["error"]
                text = (await s.read_resource(f"ael://runs/{r['run_id']}")).contents[0].text
                assert secret not in text and "[REDACTED]" in text

        run(body(), timeout=60)
        ael.stop()
    for f in ("runs.jsonl", "logs.jsonl"):
        text = (data / f).read_text()
        assert secret not in text and "[REDACTED]" in text, f


def test_stdio_identity_and_log_messages(tmp_path):
    """The same surface over stdio: serverInfo, and log messages after setLevel."""
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    from ael_helpers import ael_bin, base_env

    cfg, _, _ = setup(tmp_path)

    async def body():
        inbox = Inbox()
        params = StdioServerParameters(command=ael_bin(), args=["serve", "--transport", "stdio"],
                                       env=base_env(AEL_CONFIG_PATH=str(cfg)))
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, logging_callback=inbox.on_log) as s:
                init = await s.initialize()
                assert (init.server_info.name, init.server_info.title) == ("ael", "AEL runtime")
                await s.set_logging_level("info")
                r = ok(await s.call_tool("workflow_run", {"name": "steps3"}))
                await wait_until_async(lambda: ("info", None, "run succeeded") in inbox.run_logs(r["run_id"]), 15,
                                       lambda: f"the log messages of {r['run_id']} ({inbox.logs})")
                assert [st for _, st, m in inbox.run_logs(r["run_id"]) if m == "succeeded"] == ["a", "b", "c"]

    run(body(), timeout=60)
