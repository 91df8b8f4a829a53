"""A real WebSocket client and server (the `websockets` package) with Sluice in between.

usage: ws_check.py serve PORT VERSION   -- an echo server that first sends "hello from VERSION"
       ws_check.py check PROXY_PORT     -- connects through the proxy, checks echo both ways,
                                           a 10 MiB message, and the close code; prints OK lines
Exits non-zero with a message on the first failure; every wait is bounded.
"""
import asyncio
import os
import sys

import websockets


async def serve(port, version):
    async def handler(ws):
        await ws.send(f"hello from {version}")
        async for message in ws:
            if message == "close-with-4001":
                await ws.close(code=4001, reason="asked to")
                return
            await ws.send(message)

    async with websockets.serve(handler, "127.0.0.1", port, max_size=32 << 20):
        print("READY", flush=True)
        await asyncio.sleep(120)


async def check(port):
    uri = f"ws://127.0.0.1:{port}/chat"
    async with websockets.connect(uri, max_size=32 << 20, open_timeout=10, close_timeout=10) as ws:
        greeting = await asyncio.wait_for(ws.recv(), 10)
        print("GREETING", greeting, flush=True)
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 10) == "ping", "text echo"
        big = os.urandom(10 << 20)
        await ws.send(big)
        assert await asyncio.wait_for(ws.recv(), 30) == big, "10 MiB binary echo"
        print("OK echo", flush=True)
        await ws.send("close-with-4001")
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.exceptions.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            print("CLOSE", code, flush=True)
            assert code == 4001, f"close code {code}"
    print("OK", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2]), sys.argv[3]))
    else:
        asyncio.run(asyncio.wait_for(check(int(sys.argv[2])), 60))
