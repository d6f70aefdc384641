"""An agent using the official Python MCP SDK's client through warden, over mTLS.

Usage: client.py URL CA CERT KEY THIEF_CERT THIEF_KEY
Prints one JSON object with what it saw: the tools listed, results of allowed calls, the
JSON-RPC errors of refused ones, progress notifications of a streamed call, and what a second
agent got when it presented the first one's session id.
"""

import asyncio
import json
import ssl
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def tls(ca: str, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    return ctx


async def refused(coro) -> list:
    try:
        await coro
    except MCPError as e:
        return [e.error.code, e.error.message]
    return ["not refused"]


async def main(url, ca, cert, key, thief_cert, thief_key) -> dict:
    out: dict = {}
    sessions: list[str] = []

    async def note_session(resp):
        sid = resp.headers.get("mcp-session-id")
        if sid:
            sessions.append(sid)

    hooks = {"response": [note_session]}
    async with httpx2.AsyncClient(verify=tls(ca, cert, key), event_hooks=hooks, timeout=10) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                await s.initialize()
                listed = await s.list_tools()
                out["tools"] = sorted(t.name for t in listed.tools)
                r = await s.call_tool("search_customers", {"q": "acme"})
                out["search"] = r.content[0].text
                r = await s.call_tool("get_customer", {"region": "eu", "id": 7})
                out["get_eu"] = r.content[0].text
                out["get_cn"] = await refused(s.call_tool("get_customer", {"region": "cn", "id": 7}))
                out["delete"] = await refused(s.call_tool("delete_customer", {"id": 7}))
                progress = []

                async def on_progress(p, total, message):
                    progress.append(message)

                r = await s.call_tool("search_slowly", {"q": "x"}, progress_callback=on_progress)
                out["slow"] = r.content[0].text
                out["progress"] = progress
                # Another agent presents this session's id while it is open.
                sid = sessions[0] if sessions else ""
                out["session_id_seen"] = bool(sid)
                call = {"jsonrpc": "2.0", "id": 99, "method": "tools/call",
                        "params": {"name": "search_customers", "arguments": {"q": "x"}}}
                headers = {"mcp-session-id": sid, "accept": "application/json, text/event-stream",
                           "mcp-protocol-version": "2025-06-18"}
                async with httpx2.AsyncClient(verify=tls(ca, thief_cert, thief_key), timeout=10) as thief:
                    resp = await thief.post(url, json=call, headers=headers)
                    body = resp.json()
                    out["hijack"] = [resp.status_code, body["error"]["data"]["reason"], body["id"]]
                # The session still works for its owner.
                r = await s.call_tool("search_customers", {"q": "after"})
                out["after_hijack"] = r.content[0].text
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:7]))), flush=True)
