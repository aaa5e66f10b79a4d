"""The ceiling: the smallest ASGI app uvicorn can serve, answering 202 like a forward-auth check."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})
