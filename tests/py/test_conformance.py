"""The official MCP conformance suite (npm @modelcontextprotocol/conformance,
pinned in tests/npm/package.json and installed by scripts/bootstrap) against
ael and native-tools over streamable HTTP.

The whole active server suite runs once per server; every scenario that
applies to the capabilities the server declares must pass. The others test fixtures of the SDKs'
reference test server (tools named `test_simple_text`, resources like
`test://static-text`, prompts like `test_simple_prompt`) that a workflow
runtime does not have; they are listed in NOT_APPLICABLE with the reason,
so that a scenario added by a newer suite version fails here until someone
decides about it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

from ael_helpers import Ael, base_env, repo_workflows, write_config
from nt_helpers import HttpNativeTools
from support import require

REPO = Path(__file__).resolve().parents[2]
CONFORMANCE = REPO / "tests" / "npm" / "node_modules" / ".bin" / "conformance"

# Scenarios that must pass against ael.
APPLICABLE = [
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "completion-complete",
    "resources-list",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "server-sse-multiple-streams",
    "server-sse-polling",
    "dns-rebinding-protection",
]

_FIXTURE_TOOL = "calls a tool of the reference test server ({}) that ael does not have"
NOT_APPLICABLE = {
    "tools-call-simple-text": _FIXTURE_TOOL.format("test_simple_text"),
    "tools-call-image": _FIXTURE_TOOL.format("test_image_content"),
    "tools-call-audio": _FIXTURE_TOOL.format("test_audio_content"),
    "tools-call-embedded-resource": _FIXTURE_TOOL.format("test_embedded_resource"),
    "tools-call-mixed-content": _FIXTURE_TOOL.format("test_multiple_content_types"),
    "tools-call-with-logging": _FIXTURE_TOOL.format("test_tool_with_logging"),
    "tools-call-error": _FIXTURE_TOOL.format("test_error_handling"),
    "tools-call-with-progress": _FIXTURE_TOOL.format("test_tool_with_progress"),
    "tools-call-sampling": "ael does not use sampling (and has no test_sampling tool)",
    "tools-call-elicitation": "ael does not use elicitation (and has no test_elicitation tool)",
    "elicitation-sep1034-defaults": "ael does not use elicitation",
    "elicitation-sep1330-enums": "ael does not use elicitation",
    "json-schema-2020-12": _FIXTURE_TOOL.format("json_schema_2020_12_tool"),
    "resources-read-text": "reads the reference server's test://static-text",
    "resources-read-binary": "reads the reference server's test://static-binary",
    "resources-templates-read": "reads the reference server's test://template/{id}/data",
    "prompts-get-simple": "gets the reference server's test_simple_prompt",
    "prompts-get-with-args": "gets the reference server's test_prompt_with_arguments",
    "prompts-get-embedded-resource": "gets the reference server's test_prompt_with_embedded_resource",
    "prompts-get-with-image": "gets the reference server's test_prompt_with_image",
}

# Checks that only the reference server's fixtures can pass: (scenario, check id) -> reason.
FIXTURE_CHECKS = {
    ("server-sse-polling", "server-sse-disconnect-resume"):
        "needs the reference server's test_reconnection tool, which closes its stream mid-call",
}


def results(out: Path) -> dict[str, list[dict]]:
    """checks.json of each scenario in the output directory, by scenario name."""
    found: dict[str, list[dict]] = {}
    for d in out.iterdir():
        checks = d / "checks.json"
        if d.name.startswith("server-") and checks.is_file():
            scenario = d.name[len("server-"):].rsplit("-", 6)[0]  # strip the timestamp
            found[scenario] = json.loads(checks.read_text())
    return found


def suite_run(tmp: Path, args: list[str]) -> None:
    """Runs the conformance CLI (output appended to suite.log); the exit code
    is not checked, the results are (in checks.json)."""
    # Own process group: on timeout the suite and anything it started are killed.
    with open(tmp / "suite.log", "a") as log:
        proc = subprocess.Popen([str(CONFORMANCE), *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=base_env(HOME=str(tmp)), cwd=tmp, start_new_session=True)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise AssertionError(f"conformance {args} timed out:\n{(tmp / 'suite.log').read_text()[-3000:]}")


def suite_list(tmp: Path) -> list[str]:
    """The suite's server scenarios (`conformance list`)."""
    listed = subprocess.run([str(CONFORMANCE), "list"], capture_output=True, text=True, timeout=60,
                            env=base_env(HOME=str(tmp)), cwd=tmp)
    assert listed.returncode == 0, listed.stderr
    server_part = listed.stdout.split("Client scenarios")[0]
    return [line.strip()[2:] for line in server_part.splitlines() if line.strip().startswith("- ")]


def check_server(tmp: Path, url: str, applicable: list[str], not_applicable: dict[str, str]) -> None:
    """Runs the active suite (and the pending scenarios in `applicable`) against `url`;
    every scenario in `applicable` must pass."""
    suite = suite_list(tmp)
    assert sorted(suite) == sorted(applicable + list(not_applicable)), \
        f"the suite's server scenarios changed: {sorted(set(suite) ^ set(applicable) ^ set(not_applicable))}"
    out = tmp / "results"
    suite_run(tmp, ["server", "--url", url, "-o", str(out)])
    # Scenarios still pending upstream are not in the active suite: run them one by one.
    for scenario in [x for x in applicable if x not in results(out)]:
        suite_run(tmp, ["server", "--url", url, "--scenario", scenario, "-o", str(out)])
    found = results(out)
    problems = []
    for scenario in applicable:
        checks = found.get(scenario)
        if not checks:
            problems.append(f"{scenario}: no results")
            continue
        for c in checks:
            if c["status"] in ("FAILURE", "WARNING") and (scenario, c["id"]) not in FIXTURE_CHECKS:
                problems.append(f"{scenario}: {c['id']} {c['status']}: {c.get('errorMessage')}")
        if not any(c["status"] == "SUCCESS" for c in checks):
            problems.append(f"{scenario}: no successful check")
    assert not problems, "\n".join(problems) + "\n" + (tmp / "suite.log").read_text()[-3000:]


def test_conformance_server_scenarios_against_ael(tmp_path):
    require(CONFORMANCE.exists(), f"{CONFORMANCE} missing: run scripts/bootstrap (npm ci --prefix tests/npm)")
    require(shutil.which("node"), "node is not installed")
    wf, data = tmp_path / "workflows", tmp_path / "data"
    wf.mkdir()
    data.mkdir()
    for f in repo_workflows().glob("*.yaml"):
        shutil.copy(f, wf / f.name)
    cfg = write_config(tmp_path / "ael.yaml", workflows=wf, data=data)
    with Ael(cfg) as ael:
        ael.wait_healthy()
        check_server(tmp_path, f"http://127.0.0.1:{ael.port}/mcp", APPLICABLE, NOT_APPLICABLE)


# native-tools declares tools, logging and resources (no completions, prompts or subscriptions).
NT_NOT_DECLARED = {
    "completion-complete": "native-tools declares no completions",
    "resources-subscribe": "native-tools declares no resource subscriptions",
    "resources-unsubscribe": "native-tools declares no resource subscriptions",
    "prompts-list": "native-tools declares no prompts",
}


def test_conformance_server_scenarios_against_native_tools(tmp_path):
    require(CONFORMANCE.exists(), f"{CONFORMANCE} missing: run scripts/bootstrap (npm ci --prefix tests/npm)")
    require(shutil.which("node"), "node is not installed")
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_text("hello")
    applicable = [x for x in APPLICABLE if x not in NT_NOT_DECLARED]
    with HttpNativeTools(args=["--root", str(root)]) as nt:
        check_server(tmp_path, f"http://127.0.0.1:{nt.port}/mcp", applicable, {**NOT_APPLICABLE, **NT_NOT_DECLARED})
