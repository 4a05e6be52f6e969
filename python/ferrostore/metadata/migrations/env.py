"""Alembic environment of the ferrostore metadata database.

ferrostore runs the migrations itself when it opens a database (see
``ferrostore.metadata.db``): it passes an open connection, already inside a transaction and
holding the migration lock, as ``config.attributes["connection"]``. Offline mode (``--sql``)
renders the SQL for a URL given as ``sqlalchemy.url``, for a DBA to apply by hand.
"""

from __future__ import annotations

from alembic import context

from ferrostore.metadata.tables import metadata

config = context.config


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "ferrostore migrations need an open connection in "
            "config.attributes['connection']; open the database with "
            "ferrostore.metadata.MetadataDB instead of running alembic directly"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
