"""The strongest plain peer of `POST /tasks` (issue 12): an async FastAPI endpoint that checks the
same JWT (pyjwt, HS256, `sub`/`iat`/`exp` required, the same secret) and inserts one row through
an async psycopg pool (psycopg_pool.AsyncConnectionPool), in one process. No event store, no
group commit: what a well-written CRUD service does with the same stack.

    uvicorn bench.peer_app:app --port ...
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from runtime.settings import DatabaseSettings, auth_settings

settings = DatabaseSettings()
secret = auth_settings().JWT_SECRET.get_secret_value()
pool = AsyncConnectionPool[Any](
    settings.conninfo,
    min_size=settings.POSTGRES_POOL_SIZE,
    max_size=settings.POSTGRES_POOL_SIZE,
    kwargs={"autocommit": True},
    open=False,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await pool.open(wait=True)
    async with pool.connection() as conn:
        await conn.execute(
            "create table if not exists peer_tasks (id uuid primary key, user_id uuid not null,"
            " title text not null, created_at timestamptz not null)"
        )
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)
bearer = HTTPBearer(auto_error=False)


async def current_user_id(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> uuid.UUID:
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing bearer token")
    try:
        claims = jwt.decode(
            credentials.credentials,
            secret,
            algorithms=["HS256"],
            options={"require": ["sub", "iat", "exp"]},
        )
        return uuid.UUID(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError) as e:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid token") from e


class TaskIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)


class TaskOut(BaseModel):
    id: uuid.UUID
    title: str
    done: bool
    created_at: datetime
    done_at: datetime | None
    version: int


@app.post("/tasks", status_code=201, response_model=TaskOut)
async def create(body: TaskIn, user_id: Annotated[uuid.UUID, Depends(current_user_id)]) -> TaskOut:
    task = TaskOut(
        id=uuid.uuid4(),
        title=body.title.strip(),
        done=False,
        created_at=datetime.now(UTC),
        done_at=None,
        version=1,
    )
    async with pool.connection() as conn:
        await conn.execute(
            "insert into peer_tasks (id, user_id, title, created_at) values (%s, %s, %s, %s)",
            (task.id, user_id, task.title, task.created_at),
        )
    return task
