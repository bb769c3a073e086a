"""Firecrawl and Ollama tools against small fake HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from nt_helpers import HttpNativeTools, HttpServer, err, free_port, json_response, ok, run, stdio_session, tool_names

KEY = "fc-test-key-0123456789"


def firecrawl_handler():
    state = {"polls": 0}

    def handle(method, path, headers, body):
        if headers.get("authorization") != f"Bearer {KEY}":
            return json_response({"success": False, "error": "Unauthorized: invalid token"}, 401)
        req = json.loads(body) if body else {}
        if method == "POST" and path == "/v1/scrape":
            if "payment" in req["url"]:
                # A misbehaving upstream echoing the key back: it must be redacted.
                return json_response({"success": False, "error": f"Payment required for key {KEY}"}, 402)
            if "broken" in req["url"]:
                return 500, {"Content-Type": "text/html"}, b"<html>upstream exploded</html>"
            return json_response({"success": True, "data": {
                "markdown": f"# Scraped {req['url']}", "metadata": {"sourceURL": req["url"], "statusCode": 200},
                "formats_seen": req["formats"]}})
        if method == "POST" and path == "/v1/crawl":
            return json_response({"success": True, "id": "job-42", "url": "http://fake/v1/crawl/job-42",
                                  "limit_seen": req["limit"]})
        if method == "GET" and path == "/v1/crawl/job-42":
            state["polls"] += 1
            if state["polls"] < 2:
                return json_response({"success": True, "status": "scraping", "completed": 1, "total": 2, "data": []})
            return json_response({"success": True, "status": "completed", "completed": 2, "total": 2, "data": [
                {"markdown": "page 1", "metadata": {"sourceURL": "http://site/1"}},
                {"markdown": "page 2", "metadata": {"sourceURL": "http://site/2"}}]})
        return json_response({"success": False, "error": "not found"}, 404)

    return handle


def test_firecrawl_scrape_and_crawl():
    with HttpServer(firecrawl_handler()) as fc:
        env = {"FIRECRAWL_API_KEY": KEY, "FIRECRAWL_API_URL": fc.url}

        async def body():
            async with stdio_session(env=env) as s:
                assert {"firecrawl_scrape", "firecrawl_crawl"} <= await tool_names(s)
                r = ok(await s.call_tool("firecrawl_scrape", {"url": "https://example.com/a"}))
                assert r["url"] == "https://example.com/a"
                assert r["data"]["markdown"] == "# Scraped https://example.com/a"
                assert r["data"]["formats_seen"] == ["markdown"]
                r = ok(await s.call_tool("firecrawl_scrape", {"url": "https://example.com/b",
                                                              "formats": ["markdown", "links", "rawHtml"]}))
                assert r["data"]["formats_seen"] == ["markdown", "links", "rawHtml"]

                msg = err(await s.call_tool("firecrawl_scrape", {"url": "https://example.com/payment"}))
                assert "HTTP 402" in msg and "Payment required" in msg and KEY not in msg
                msg = err(await s.call_tool("firecrawl_scrape", {"url": "https://example.com/broken"}))
                assert "HTTP 500" in msg and "upstream exploded" in msg

                c = ok(await s.call_tool("firecrawl_crawl", {"url": "https://site/", "limit": 2}))
                assert c["id"] == "job-42" and c["status"] == "completed" and c["total"] == 2
                assert [p["markdown"] for p in c["data"]] == ["page 1", "page 2"]

                # Schema bounds are enforced.
                assert "limit" in err(await s.call_tool("firecrawl_crawl", {"url": "https://site/", "limit": 1000}))

        run(body())
        scrape = [r for r in fc.requests if r["path"] == "/v1/scrape"]
        assert scrape and all(r["method"] == "POST" for r in scrape)
        assert scrape[0]["headers"]["content-type"] == "application/json"
        assert json.loads(scrape[0]["body"]) == {"url": "https://example.com/a", "formats": ["markdown"]}
        crawl = [r for r in fc.requests if r["path"] == "/v1/crawl"]
        assert json.loads(crawl[0]["body"]) == {"url": "https://site/", "limit": 2}
        assert len([r for r in fc.requests if r["path"] == "/v1/crawl/job-42"]) == 2


def test_firecrawl_bad_key_and_no_leak_in_logs():
    with HttpServer(firecrawl_handler()) as fc:
        wrong = "fc-wrong-key-9876543210"
        with HttpNativeTools(env={"FIRECRAWL_API_KEY": wrong, "FIRECRAWL_API_URL": fc.url,
                                  "LOG_LEVEL": "debug"}) as srv:
            async def body():
                async with streamable_http_client(srv.base + "/mcp") as (read, write):
                    async with ClientSession(read, write) as s:
                        await s.initialize()
                        msg = err(await s.call_tool("firecrawl_scrape", {"url": "https://example.com/"}))
                        assert "HTTP 401" in msg and "Unauthorized" in msg and wrong not in msg
            run(body())
            srv.stop()
            assert "firecrawl tools enabled" in srv.log()
            assert wrong not in srv.log()
        assert fc.requests[0]["headers"]["authorization"] == f"Bearer {wrong}"


def test_firecrawl_unreachable_is_tool_error():
    port = free_port()

    async def body():
        async with stdio_session(env={"FIRECRAWL_API_KEY": KEY, "FIRECRAWL_API_URL": f"http://127.0.0.1:{port}"}) as s:
            msg = err(await s.call_tool("firecrawl_scrape", {"url": "https://example.com/"}))
            assert "firecrawl request" in msg and KEY not in msg

    run(body())


def ollama_handler(method, path, headers, body):
    if method == "GET" and path == "/api/tags":
        return json_response({"models": [
            {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 2019393189,
             "modified_at": "2026-01-01T00:00:00Z", "digest": "a80c4f17acd5"},
            {"name": "qwen2.5:0.5b", "size": 397821319}]})
    if method == "POST" and path == "/api/generate":
        req = json.loads(body)
        if req["model"] == "missing":
            return json_response({"error": "model \"missing\" not found, try pulling it first"}, 404)
        return json_response({"model": req["model"], "response": f"echo: {req['prompt']}", "done": True,
                              "done_reason": "stop", "eval_count": 3, "total_duration": 12345,
                              "stream_seen": req["stream"], "system_seen": req.get("system")})
    return 404, {}, b"404 page not found"


def test_ollama_tools():
    with HttpServer(ollama_handler) as ol:
        async def body():
            # OLLAMA_HOST in Ollama's own host:port form (no scheme).
            async with stdio_session(env={"OLLAMA_HOST": f"127.0.0.1:{ol.port}"}) as s:
                assert {"ollama_generate", "ollama_list_models"} <= await tool_names(s)
                m = ok(await s.call_tool("ollama_list_models", {}))
                assert m["host"] == ol.url
                assert [x["name"] for x in m["models"]] == ["llama3.2:latest", "qwen2.5:0.5b"]
                assert m["models"][0]["size"] == 2019393189 and m["models"][0]["digest"] == "a80c4f17acd5"
                g = ok(await s.call_tool("ollama_generate", {"model": "llama3.2", "prompt": "hi there"}))
                assert g["response"] == "echo: hi there" and g["model"] == "llama3.2" and g["done"] is True
                assert g["eval_count"] == 3 and g["done_reason"] == "stop"
                msg = err(await s.call_tool("ollama_generate", {"model": "missing", "prompt": "x"}))
                assert "HTTP 404" in msg and "not found" in msg

        run(body())
        gen = [r for r in ol.requests if r["path"] == "/api/generate"]
        assert json.loads(gen[0]["body"]) == {"model": "llama3.2", "prompt": "hi there", "stream": False}


def test_ollama_unreachable_and_unset():
    port = free_port()

    async def body():
        async with stdio_session(env={"OLLAMA_HOST": f"http://127.0.0.1:{port}"}) as s:
            msg = err(await s.call_tool("ollama_list_models", {}))
            assert "ollama request" in msg and f"127.0.0.1:{port}" in msg
        async with stdio_session() as s:
            names = await tool_names(s)
            assert not names & {"ollama_generate", "ollama_list_models", "firecrawl_scrape", "firecrawl_crawl"}

    run(body())
