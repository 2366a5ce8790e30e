"""The plain-function baseline of GET /users/me: what one would write by hand without eco2.

functions-framework, PyJWT (HS256, the same secret, issuer, audience and claims eco2 issues), the
same Redis revocation keys read in one MGET per request, and the same user row selected with a
psycopg connection pool. Clients are built on first use in each process, as a plain function must
for gunicorn's workers (a pool opened before the fork does not work in them).
"""

import os

import functions_framework
import jwt
import psycopg_pool
import redis

SECRET = os.environ["JWT_SECRET"]
_CLIENTS: dict[int, tuple[psycopg_pool.ConnectionPool, redis.Redis]] = {}


def clients() -> tuple[psycopg_pool.ConnectionPool, redis.Redis]:
    pid = os.getpid()
    if pid not in _CLIENTS:
        size = int(os.environ.get("DATABASE_POOL_SIZE", "10"))
        pool = psycopg_pool.ConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=size, open=True)
        _CLIENTS[pid] = (pool, redis.Redis.from_url(os.environ["REDIS_URL"]))
    return _CLIENTS[pid]


COLUMNS = (
    "id, nickname, name, email, profile_image_url, phone_number, last_login_provider, last_login_at, "
    "created_at, updated_at"
)


def _claims(request):  # type: ignore[no-untyped-def]
    header = request.headers.get("Authorization", "")
    token = request.cookies.get("s_access") or (header[7:] if header.lower().startswith("bearer ") else "")
    if not token:
        return None
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience="eco2-app",
            issuer="eco2",
            leeway=10,
            options={"require": ["exp", "nbf", "iat", "sub", "jti"]},
        )
    except jwt.PyJWTError:
        return None
    return claims if claims.get("type") == "access" else None


@functions_framework.http
def users_me(request):  # type: ignore[no-untyped-def]
    if request.path == "/health/readiness":
        return "ok"
    claims = _claims(request)
    if claims is None:
        return {"detail": "unauthorized", "code": "UNAUTHORIZED"}, 401
    pool, redis_client = clients()
    keys = [f"blacklist:{claims['jti']}", f"revoked_before:{claims['sub']}"]
    if claims.get("sid"):
        keys.append(f"revoked_session:{claims['sid']}")
    revoked, before, *session = redis_client.mget(keys)
    if revoked is not None or (session and session[0] is not None) or (before and claims["iat"] <= int(float(before))):
        return {"detail": "revoked", "code": "TOKEN_REVOKED"}, 403
    with pool.connection() as conn:
        row = conn.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (claims["sub"],)).fetchone()
    if row is None:
        return {"detail": "no such user", "code": "USER_NOT_FOUND"}, 401
    _, nickname, name, _, _, phone, provider, last_login, _, _ = row
    return (
        {
            "username": nickname or name or "사용자",
            "nickname": nickname or name or "사용자",
            "phone_number": phone,
            "provider": provider,
            "last_login_at": last_login.isoformat() if last_login else None,
        },
        200,
        {"Cache-Control": "no-store"},
    )
