"""Create the store schema: ownership, Storer, transactions and inbox, state cache, bridge.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written out in full rather than built from ``schema.py``: a version is data, and what it creates
must not change when ``schema.py`` later does. The owner row names the program that owns the
database (``config.attributes["owner"]``, ``"appservice"`` by default).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_AUTO_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create every table at its first version and write the owner row."""
    meta = op.create_table(
        "appservice_meta",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_appservice_meta"),
    )
    op.create_table(
        "sync_user",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("filter_id", sa.Text(), nullable=True),
        sa.Column("next_batch", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_sync_user"),
    )
    op.create_table(
        "sync_room",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("saved_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", name="pk_sync_room"),
    )
    op.create_table(
        "sync_room_state",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("state_key", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), server_default="", nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["room_id"],
            ["sync_room.room_id"],
            name="fk_sync_room_state_room_id_sync_room",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("room_id", "type", "state_key", name="pk_sync_room_state"),
    )
    op.create_table(
        "as_txn",
        sa.Column("seq", _AUTO_BIGINT, autoincrement=True, nullable=False),
        sa.Column("txn_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("event_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("done_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_as_txn"),
        sa.UniqueConstraint("txn_id", name="uq_as_txn_txn_id"),
    )
    op.create_index(
        "ix_as_txn_open",
        "as_txn",
        ["seq"],
        sqlite_where=sa.text("done_at IS NULL"),
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_table(
        "as_txn_items",
        sa.Column("seq", _AUTO_BIGINT, autoincrement=False, nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_as_txn_items"),
    )
    op.create_table(
        "inbox",
        sa.Column("seq", _AUTO_BIGINT, autoincrement=False, nullable=False),
        sa.Column("txn_id", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=True),
        sa.Column("room_id", sa.Text(), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("done_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_inbox"),
    )
    op.create_index(
        "ix_inbox_failed",
        "inbox",
        ["seq"],
        sqlite_where=sa.text("state = 2"),
        postgresql_where=sa.text("state = 2"),
    )
    op.create_table(
        "cache_room",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("encrypted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("power_levels", sa.LargeBinary(), nullable=True),
        sa.Column("members_complete", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("room_id", name="pk_cache_room"),
    )
    op.create_table(
        "cache_member",
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("membership", sa.Text(), nullable=False),
        sa.Column("displayname", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("room_id", "user_id", name="pk_cache_member"),
    )
    op.create_index("ix_cache_member_user_id", "cache_member", ["user_id"])
    op.create_table(
        "cache_registered",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_cache_registered"),
    )
    op.create_table(
        "bridge_portal",
        sa.Column("remote_id", sa.Text(), nullable=False),
        sa.Column("receiver", sa.Text(), server_default="", nullable=False),
        sa.Column("room_id", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
        sa.Column("encrypted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("extra", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("remote_id", "receiver", name="pk_bridge_portal"),
        sa.UniqueConstraint("room_id", name="uq_bridge_portal_room_id"),
    )
    op.create_table(
        "bridge_puppet",
        sa.Column("remote_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("displayname", sa.Text(), nullable=True),
        sa.Column("avatar_url", sa.Text(), nullable=True),
        sa.Column("name_set", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("avatar_set", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("extra", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("remote_id", name="pk_bridge_puppet"),
        sa.UniqueConstraint("user_id", name="uq_bridge_puppet_user_id"),
    )
    op.create_table(
        "bridge_user",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("remote_id", sa.Text(), nullable=True),
        sa.Column("management_room", sa.Text(), nullable=True),
        sa.Column("extra", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_bridge_user"),
    )
    op.create_index("ix_bridge_user_remote_id", "bridge_user", ["remote_id"])
    op.create_table(
        "bridge_message",
        sa.Column("remote_chat", sa.Text(), nullable=False),
        sa.Column("receiver", sa.Text(), server_default="", nullable=False),
        sa.Column("remote_id", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), server_default="", nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("room_id", sa.Text(), nullable=False),
        sa.Column("sender", sa.Text(), server_default="", nullable=False),
        sa.Column("sent_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["remote_chat", "receiver"],
            ["bridge_portal.remote_id", "bridge_portal.receiver"],
            name="fk_bridge_message_remote_chat_receiver_bridge_portal",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "remote_chat", "receiver", "remote_id", "part", name="pk_bridge_message"
        ),
        sa.UniqueConstraint("event_id", name="uq_bridge_message_event_id"),
    )
    owner = str(context.config.attributes.get("owner") or "appservice")
    op.bulk_insert(meta, [{"key": "owner", "value": owner}])


def downgrade() -> None:
    """Drop every table (children before parents)."""
    for table in (
        "bridge_message",
        "bridge_user",
        "bridge_puppet",
        "bridge_portal",
        "cache_registered",
        "cache_member",
        "cache_room",
        "inbox",
        "as_txn_items",
        "as_txn",
        "sync_room_state",
        "sync_room",
        "sync_user",
        "appservice_meta",
    ):
        op.drop_table(table)
