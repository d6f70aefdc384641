"""An MCP server (the official Python SDK's MCPServer) over Streamable HTTP on 127.0.0.1.

Binds port 0 and prints the port on the first line of stdout; serves until killed.
"""

import asyncio
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("crm")


@server.tool()
def search_customers(q: str) -> str:
    """Search customers by name."""
    return f"found customers matching {q}"


@server.tool()
def get_customer(region: str, id: int = 0) -> str:
    """One customer of a region."""
    return f"customer {id} in {region}"


@server.tool()
def delete_customer(id: int) -> str:
    """Delete a customer."""
    return f"deleted {id}"


@server.tool()
async def search_slowly(q: str, ctx: Context) -> str:
    """Search, reporting progress as it goes."""
    for i in range(3):
        await ctx.report_progress(i + 1, 3, f"page {i + 1}")
    return f"slow results for {q}"


async def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    app = server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning")
    await uvicorn.Server(config).serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
