"""Alembic environment: the URL comes from the caller (app.db.migrate) or from UNLEARN_DATABASE_URL."""

from __future__ import annotations

from alembic import context

from app.db import Base, connect
from app.settings import get_settings

config = context.config
url = config.attributes.get("url") or get_settings().db_url
engine = connect(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
