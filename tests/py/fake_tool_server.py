"""A tiny MCP tool server over stdio (official Python SDK) for the ael tests
that need tools native-tools does not have:

* `echo(text)`: returns `{"text": text}`.
* `nap(ms)`: sleeps, then returns `{"slept_ms": ms}`.
* `fail(message)`: a tool error whose text contains `message`.
* `sleep_child(pidfile)`: starts `sleep 60` as a child process, writes its PID
  to `pidfile` and waits for it; when the call is cancelled
  (`notifications/cancelled`) the child is killed and reaped.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("fake-tools")


@server.tool()
async def echo(text: str = "") -> dict:
    """Return the text."""
    return {"text": text}


@server.tool()
async def nap(ms: int = 100) -> dict:
    """Sleep ms milliseconds."""
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@server.tool()
async def fail(message: str = "boom") -> dict:
    """Always fails."""
    raise ToolError(message)


@server.tool()
async def sleep_child(pidfile: str) -> dict:
    """Run `sleep 60` as a child until it ends or the call is cancelled."""
    proc = await asyncio.create_subprocess_exec("sleep", "60")
    tmp = Path(pidfile + ".tmp")
    tmp.write_text(str(proc.pid))
    os.replace(tmp, pidfile)
    try:
        await proc.wait()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return {"exit": proc.returncode}


if __name__ == "__main__":
    server.run("stdio")
