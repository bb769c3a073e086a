"""Filesystem tools over stdio: round trips and confinement to the roots."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nt_helpers import err, ok, run, stdio_session


@pytest.fixture()
def sandbox(tmp_path: Path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "secret.txt", root / "secret-link")
    return root, outside


def test_round_trip(sandbox):
    root, _ = sandbox

    async def body():
        async with stdio_session(["--root", str(root)]) as s:
            w = ok(await s.call_tool("fs_write", {"path": "docs/a.txt", "content": "hello\nworld", "create_dirs": True}))
            assert w == {"path": "docs/a.txt", "bytes_written": 11, "created": True}
            assert (root / "docs" / "a.txt").read_text() == "hello\nworld"

            # Overwrite reports created=False.
            w = ok(await s.call_tool("fs_write", {"path": "docs/a.txt", "content": "hello again"}))
            assert w["created"] is False

            r = ok(await s.call_tool("fs_read", {"path": "docs/a.txt"}))
            assert r["content"] == "hello again" and r["encoding"] == "utf-8"
            assert r["size"] == 11 and r["truncated"] is False

            r = ok(await s.call_tool("fs_read", {"path": str(root / "docs" / "a.txt"), "max_bytes": 5}))
            assert r["content"] == "hello" and r["truncated"] is True and r["bytes_read"] == 5

            m = ok(await s.call_tool("fs_mkdir", {"path": "docs/sub/deeper"}))
            assert m["created"] is True and (root / "docs/sub/deeper").is_dir()
            assert ok(await s.call_tool("fs_mkdir", {"path": "docs/sub/deeper"}))["created"] is False

            ok(await s.call_tool("fs_write", {"path": "docs/sub/b.md", "content": "# b"}))
            lst = ok(await s.call_tool("fs_list", {"path": "docs"}))
            assert [(e["name"], e["type"]) for e in lst["entries"]] == [("a.txt", "file"), ("sub", "dir")]
            assert lst["entries"][0]["size"] == 11

            st = ok(await s.call_tool("fs_stat", {"path": "docs/a.txt"}))
            assert st["exists"] is True and st["type"] == "file" and st["size"] == 11
            assert ok(await s.call_tool("fs_stat", {"path": "nope.txt"}))["exists"] is False

            found = ok(await s.call_tool("fs_search", {"path": ".", "pattern": "*.md"}))
            assert found["matches"] == ["docs/sub/b.md"]
            found = ok(await s.call_tool("fs_search", {"path": "docs", "pattern": "**/*"}))
            assert "a.txt" in found["matches"] and "sub/b.md" in found["matches"]
            limited = ok(await s.call_tool("fs_search", {"path": ".", "pattern": "*", "max_results": 1}))
            assert len(limited["matches"]) == 1 and limited["truncated"] is True

            mv = ok(await s.call_tool("fs_move", {"from": "docs/a.txt", "to": "docs/sub/a2.txt"}))
            assert mv == {"from": "docs/a.txt", "to": "docs/sub/a2.txt"}
            assert not (root / "docs/a.txt").exists() and (root / "docs/sub/a2.txt").read_text() == "hello again"
            assert "already exists" in err(await s.call_tool("fs_move", {"from": "docs/sub/a2.txt", "to": "docs/sub/b.md"}))

            assert "recursive" in err(await s.call_tool("fs_delete", {"path": "docs"}))
            d = ok(await s.call_tool("fs_delete", {"path": "docs/sub/b.md"}))
            assert d["type"] == "file" and not (root / "docs/sub/b.md").exists()
            ok(await s.call_tool("fs_delete", {"path": "docs", "recursive": True}))
            assert not (root / "docs").exists()

            # Missing parent without create_dirs is a clear error.
            assert "create_dirs" in err(await s.call_tool("fs_write", {"path": "x/y.txt", "content": "z"}))
            # Reading a missing file is a tool error, not a crash.
            assert "nope.txt" in err(await s.call_tool("fs_read", {"path": "nope.txt"}))

    run(body())


def test_in_root_symlinks(sandbox):
    root, _ = sandbox
    (root / "real").mkdir()
    (root / "real" / "f.txt").write_text("via link")
    os.symlink(root / "real", root / "alias")

    async def body():
        async with stdio_session(["--root", str(root)]) as s:
            # Reading through a symlink that stays inside the root is allowed.
            assert ok(await s.call_tool("fs_read", {"path": "alias/f.txt"}))["content"] == "via link"
            assert ok(await s.call_tool("fs_stat", {"path": "alias"}))["type"] == "symlink"
            # Deleting the link removes the link, not its target.
            assert ok(await s.call_tool("fs_delete", {"path": "alias", "recursive": True}))["type"] == "symlink"

    run(body())
    assert (root / "real" / "f.txt").read_text() == "via link"
    assert not os.path.lexists(root / "alias")


def test_binary_file_is_base64(sandbox):
    root, _ = sandbox
    (root / "b.bin").write_bytes(b"\xff\xfe\x00A")

    async def body():
        async with stdio_session(["--root", str(root)]) as s:
            r = ok(await s.call_tool("fs_read", {"path": "b.bin"}))
            assert r["encoding"] == "base64" and r["content"] == "//4AQQ=="

    run(body())


def test_escapes_are_refused(sandbox):
    root, outside = sandbox

    async def body():
        async with stdio_session(["--root", str(root)]) as s:
            assert "'..'" in err(await s.call_tool("fs_read", {"path": "../outside/secret.txt"}))
            assert "'..'" in err(await s.call_tool("fs_write", {"path": "a/../../x.txt", "content": "x"}))
            assert "outside the allowed roots" in err(await s.call_tool("fs_read", {"path": "/etc/passwd"}))
            assert "outside the allowed roots" in err(
                await s.call_tool("fs_read", {"path": str(outside / "secret.txt")})
            )
            # Symlinks that leave the root: existing targets and new paths beneath them.
            assert "symlink" in err(await s.call_tool("fs_read", {"path": "escape/secret.txt"}))
            assert "symlink" in err(await s.call_tool("fs_read", {"path": "secret-link"}))
            assert "symlink" in err(await s.call_tool("fs_list", {"path": "escape"}))
            assert "symlink" in err(await s.call_tool("fs_write", {"path": "escape/new.txt", "content": "x"}))
            assert "symlink" in err(
                await s.call_tool("fs_write", {"path": "escape/a/b.txt", "content": "x", "create_dirs": True})
            )
            assert "symlink" in err(await s.call_tool("fs_mkdir", {"path": "escape/newdir"}))
            assert "symlink" in err(await s.call_tool("fs_delete", {"path": "escape/secret.txt"}))
            assert "symlink" in err(await s.call_tool("fs_search", {"path": "escape", "pattern": "*"}))
            # Move: source and destination are both checked.
            ok(await s.call_tool("fs_write", {"path": "mine.txt", "content": "mine"}))
            assert "outside the allowed roots" in err(
                await s.call_tool("fs_move", {"from": "mine.txt", "to": str(outside / "stolen.txt")})
            )
            assert "symlink" in err(await s.call_tool("fs_move", {"from": "mine.txt", "to": "escape/stolen.txt"}))
            assert "'..'" in err(await s.call_tool("fs_move", {"from": "mine.txt", "to": "../stolen.txt"}))
            assert "symlink" in err(await s.call_tool("fs_move", {"from": "escape/secret.txt", "to": "got.txt"}))
            # The root itself cannot be deleted.
            assert "root" in err(await s.call_tool("fs_delete", {"path": ".", "recursive": True}))
            # A search from the root does not descend into the escaping symlink.
            found = ok(await s.call_tool("fs_search", {"path": ".", "pattern": "**/secret*"}))
            assert all("escape/" not in m for m in found["matches"]), found

    run(body())
    # Nothing outside changed.
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "top secret"
    assert root.exists()


def test_roots_from_env_and_cwd_default(tmp_path: Path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (b / "in-b.txt").write_text("b")

    async def body():
        async with stdio_session(env={"NATIVE_TOOLS_ROOTS": f"{a}:{b}"}) as s:
            # Relative paths go to the first root; absolute paths may use any root.
            ok(await s.call_tool("fs_write", {"path": "in-a.txt", "content": "a"}))
            assert (a / "in-a.txt").read_text() == "a"
            assert ok(await s.call_tool("fs_read", {"path": str(b / "in-b.txt")}))["content"] == "b"
            assert "outside" in err(await s.call_tool("fs_read", {"path": str(tmp_path / "x")}))
        # Default root: the working directory.
        async with stdio_session(cwd=b) as s:
            assert ok(await s.call_tool("fs_read", {"path": "in-b.txt"}))["content"] == "b"
            assert "outside" in err(await s.call_tool("fs_read", {"path": str(a / "in-a.txt")}))

    run(body())


def test_schema_validation_rejects_bad_arguments(sandbox):
    root, _ = sandbox

    async def body():
        async with stdio_session(["--root", str(root)]) as s:
            # Missing required argument / wrong type / unknown field: the call fails, no crash.
            for args in ({}, {"path": 5}, {"path": "a", "bogus": 1}):
                try:
                    r = await s.call_tool("fs_read", args)
                except Exception as e:  # protocol-level error (invalid params)
                    assert "path" in str(e) or "bogus" in str(e) or "invalid" in str(e).lower()
                else:
                    err(r)
            # The server is still alive afterwards.
            assert ok(await s.call_tool("fs_stat", {"path": "."}))["type"] == "dir"

    run(body())
