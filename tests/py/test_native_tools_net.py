"""Network tools over stdio against servers on 127.0.0.1 started by the tests."""

from __future__ import annotations

import socket
import time

from nt_helpers import HttpServer, err, free_port, json_response, ok, run, stdio_session


def handler(method, path, headers, body):
    if path == "/hello":
        return 200, {"Content-Type": "text/plain", "X-Test": "yes"}, b"hello world"
    if path == "/big":
        return 200, {"Content-Type": "application/octet-stream"}, b"x" * 100_000
    if path == "/echo":
        return json_response({"method": method, "body": body.decode(), "auth": headers.get("authorization"),
                              "custom": headers.get("x-custom")})
    if path.startswith("/redirect/"):
        n = int(path.rsplit("/", 1)[1])
        loc = "/hello" if n <= 1 else f"/redirect/{n - 1}"
        return 302, {"Location": loc}, b""
    if path == "/loop":
        return 302, {"Location": "/loop"}, b""
    if path == "/see-other":
        return 303, {"Location": "/echo"}, b""
    if path == "/slow":
        time.sleep(3)
        return 200, {}, b"late"
    if path == "/binary":
        return 200, {}, b"\x00\xff\x10"
    return 404, {"Content-Type": "text/plain"}, b"not found"


def test_http_fetch_basic_and_limits():
    with HttpServer(handler) as srv:

        async def body():
            async with stdio_session() as s:
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/hello"}))
                assert r["status"] == 200 and r["body"] == "hello world"
                assert r["headers"]["x-test"] == "yes" and r["truncated"] is False
                assert r["redirects"] == [] and r["bytes"] == 11

                # POST with headers and body.
                r = ok(await s.call_tool("http_fetch", {
                    "url": srv.url + "/echo", "method": "POST", "body": "payload",
                    "headers": {"X-Custom": "c1", "Content-Type": "text/plain"},
                }))
                echoed = __import__("json").loads(r["body"])
                assert echoed == {"method": "POST", "body": "payload", "auth": None, "custom": "c1"}

                # Non-2xx statuses are results, not errors.
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/missing"}))
                assert r["status"] == 404 and r["body"] == "not found"

                # Size limit: body truncated at max_bytes.
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/big", "max_bytes": 1000}))
                assert r["bytes"] == 1000 and r["truncated"] is True and r["body"] == "x" * 1000
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/big"}))
                assert r["bytes"] == 100_000 and r["truncated"] is False

                # Binary bodies are base64.
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/binary"}))
                assert r["body_encoding"] == "base64" and r["body"] == "AP8Q"

                # Redirects followed within the limit.
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/redirect/3"}))
                assert r["status"] == 200 and r["body"] == "hello world"
                assert r["url"] == srv.url + "/hello" and len(r["redirects"]) == 3

                # Beyond the limit: a clear tool error.
                msg = err(await s.call_tool("http_fetch", {"url": srv.url + "/redirect/3", "max_redirects": 2}))
                assert "too many redirects" in msg
                assert "too many redirects" in err(await s.call_tool("http_fetch", {"url": srv.url + "/loop"}))

                # max_redirects=0 returns the 3xx itself.
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/redirect/1", "max_redirects": 0}))
                assert r["status"] == 302 and r["headers"]["location"] == "/hello"

                # 303 after POST becomes GET without body.
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/see-other", "method": "POST", "body": "zzz"}))
                assert __import__("json").loads(r["body"])["method"] == "GET"

                # Timeout.
                t0 = time.monotonic()
                msg = err(await s.call_tool("http_fetch", {"url": srv.url + "/slow", "timeout_ms": 500}))
                assert "timed out" in msg and time.monotonic() - t0 < 2.5

                # Bad input: scheme and hard caps in the schema.
                assert "scheme" in err(await s.call_tool("http_fetch", {"url": "file:///etc/passwd"}))
                try:
                    r = await s.call_tool("http_fetch", {"url": srv.url + "/hello", "max_bytes": 10**9})
                except Exception as e:
                    assert "max_bytes" in str(e) or "maximum" in str(e).lower()
                else:
                    err(r)
                # Connection refused is a tool error, not a crash.
                port = free_port()
                assert "failed" in err(await s.call_tool("http_fetch", {"url": f"http://127.0.0.1:{port}/"}))

        run(body())
    # The server really saw the requests (redirect chain: 3 hops + final).
    paths = [r["path"] for r in srv.requests]
    assert paths.count("/redirect/3") >= 2 and "/redirect/1" in paths
    # The redirect loop stopped at the default limit (5 redirects => 6 requests).
    assert paths.count("/loop") == 6


def test_cross_origin_redirect_drops_authorization():
    with HttpServer(handler) as target:
        def redir(method, path, headers, body):
            return 302, {"Location": target.url + "/echo"}, b""

        with HttpServer(redir) as first:
            async def body():
                async with stdio_session() as s:
                    r = ok(await s.call_tool("http_fetch", {
                        "url": first.url + "/go", "headers": {"Authorization": "Bearer s3cret", "X-Custom": "kept"},
                    }))
                    echoed = __import__("json").loads(r["body"])
                    assert echoed["auth"] is None and echoed["custom"] == "kept"
            run(body())
            assert first.requests[0]["headers"]["authorization"] == "Bearer s3cret"


def test_tcp_check_and_dns():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    port = listener.getsockname()[1]
    closed = free_port()

    async def body():
        async with stdio_session() as s:
            r = ok(await s.call_tool("tcp_check", {"host": "127.0.0.1", "port": port}))
            assert r["open"] is True and r["address"] == f"127.0.0.1:{port}"
            r = ok(await s.call_tool("tcp_check", {"host": "127.0.0.1", "port": closed, "timeout_ms": 1000}))
            assert r["open"] is False and r["error"]
            r = ok(await s.call_tool("dns_resolve", {"host": "localhost"}))
            assert "127.0.0.1" in r["addresses"] or "::1" in r["addresses"]
            r = ok(await s.call_tool("dns_resolve", {"host": "127.0.0.1"}))
            assert r["addresses"] == ["127.0.0.1"]
            assert "cannot resolve" in err(await s.call_tool("dns_resolve", {"host": "no-such-host.invalid"}))

    try:
        run(body())
    finally:
        listener.close()


def _make_ca_and_leaf(d):
    """A throwaway CA and a 127.0.0.1 server certificate (openssl CLI)."""
    import subprocess

    def sh(*args):
        subprocess.run(args, cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=nt-test-ca",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    sh("openssl", "req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    sh("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
       "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.pem", d / "leaf.pem", d / "leaf.key"


def test_https_uses_ssl_cert_file(tmp_path):
    import ssl

    ca, leaf, key = _make_ca_and_leaf(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(leaf, key)
    with HttpServer(handler, ssl_context=ctx) as srv:
        assert srv.url.startswith("https://")

        async def body():
            # Trusted through SSL_CERT_FILE.
            async with stdio_session(env={"SSL_CERT_FILE": str(ca)}) as s:
                r = ok(await s.call_tool("http_fetch", {"url": srv.url + "/hello"}))
                assert r["status"] == 200 and r["body"] == "hello world"
            # Not trusted by the default roots: a tool error naming the certificate problem.
            empty = tmp_path / "empty.pem"
            empty.write_text("")
            async with stdio_session(env={"SSL_CERT_FILE": str(empty)}) as s:
                msg = err(await s.call_tool("http_fetch", {"url": srv.url + "/hello"}))
                assert "certificate" in msg.lower() or "unknownissuer" in msg.lower().replace(" ", ""), msg

        run(body())


def test_concurrent_calls_in_one_session(tmp_path):
    import asyncio

    with HttpServer(handler) as srv:
        async def body():
            async with stdio_session(["--root", str(tmp_path)]) as s:
                calls = []
                for i in range(10):
                    calls.append(s.call_tool("http_fetch", {"url": srv.url + "/hello"}))
                    calls.append(s.call_tool("fs_write", {"path": f"f{i}.txt", "content": str(i)}))
                # A slow request does not block the others.
                calls.append(s.call_tool("http_fetch", {"url": srv.url + "/slow", "timeout_ms": 10000}))
                t0 = asyncio.get_running_loop().time()
                results = await asyncio.gather(*calls)
                assert asyncio.get_running_loop().time() - t0 < 8
                datas = [ok(r) for r in results]
                assert [d["body"] for d in datas[0:20:2]] == ["hello world"] * 10
                assert datas[-1]["body"] == "late"
            assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"f{i}.txt" for i in range(10))

        run(body())
