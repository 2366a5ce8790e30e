"""A route with auth, metrics and JSON logs on, and no I/O of its own."""

from eco2 import Context, Function

fn = Function("ping", uses=("redis", "jwt"))


@fn.get("/api/v1/bench/ping", auth=True)
def ping(ctx: Context) -> dict[str, str]:
    return {"user": ctx.user_id}


@fn.get("/api/v1/bench/open")
def open_route(ctx: Context) -> dict[str, str]:
    return {"ok": "yes"}
