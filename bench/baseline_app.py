"""The non-event-sourced baseline: a plain FastAPI endpoint that inserts one row with psycopg."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import FastAPI
from psycopg_pool import ConnectionPool
from pydantic import BaseModel

from runtime.settings import DatabaseSettings

settings = DatabaseSettings()
pool = ConnectionPool(settings.conninfo, min_size=10, max_size=10, open=True)
with pool.connection() as conn:
    conn.execute(
        "create table if not exists baseline_tasks (id uuid primary key, title text not null,"
        " created_at timestamptz not null)"
    )
app = FastAPI()


class TaskIn(BaseModel):
    title: str


@app.post("/tasks", status_code=201)
def create(body: TaskIn) -> dict[str, object]:
    row = {"id": uuid.uuid4(), "title": body.title.strip(), "created_at": datetime.now(UTC)}
    with pool.connection() as conn:
        conn.execute(
            "insert into baseline_tasks (id, title, created_at)"
            " values (%(id)s, %(title)s, %(created_at)s)",
            row,
        )
    return row
