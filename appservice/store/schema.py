"""The one SQL schema of the toolkit: every table it keeps, for SQLite and PostgreSQL alike.

This module is the source that alembic compares migrations against (``tests/store`` checks that
the migrations at head create exactly this). Change it only together with a new migration in
``appservice/store/migrations/versions/``.

Conventions: timestamps are milliseconds since the epoch in ``BIGINT``; JSON is stored as the raw
bytes orjson produced (``LargeBinary``: BLOB on SQLite, bytea on PostgreSQL); text keys are
Matrix or remote-network IDs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

OWNER_KEY = "owner"
"""``appservice_meta`` key whose value names the program that owns the database."""

DEFAULT_OWNER = "appservice"

# Deterministic constraint names, identical on both backends, so migrations can refer to them.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# SQLite autoincrements only an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a BIGSERIAL.
AutoBigInt = BigInteger().with_variant(Integer(), "sqlite")

# --- ownership -----------------------------------------------------------------------------------

# Who owns this database (key 'owner'); a store refuses a database owned by another.
appservice_meta = Table(
    "appservice_meta",
    metadata,
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("key"),
)

# --- Storer: what a syncing client keeps ---------------------------------------------------------

# Per syncing user: the server-side filter ID and the next /sync token.
sync_user = Table(
    "sync_user",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("filter_id", Text, nullable=True),
    Column("next_batch", Text, nullable=True),
    PrimaryKeyConstraint("user_id"),
)

# Rooms saved by save_room (a room may have no state yet); their state is in sync_room_state.
sync_room = Table(
    "sync_room",
    metadata,
    Column("room_id", Text, nullable=False),
    Column("saved_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("room_id"),
)

# One row per (room, type, state_key): the event's JSON, so load_room is one query.
sync_room_state = Table(
    "sync_room_state",
    metadata,
    Column("room_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("state_key", Text, nullable=False),
    Column("event_id", Text, nullable=False, server_default=""),
    Column("body", LargeBinary, nullable=False),
    PrimaryKeyConstraint("room_id", "type", "state_key"),
    ForeignKeyConstraint(["room_id"], ["sync_room.room_id"], ondelete="CASCADE"),
)

# --- appservice push side: transactions received and the durable inbox ---------------------------

# Transactions accepted from the homeserver, numbered in the order received; a txnId seen again
# is answered, not redone. done_at is set once every item of the transaction is handled or parked.
# No AUTOINCREMENT on SQLite: rows are never deleted (the txnIds are kept), so a number is never
# reused, and the sqlite_sequence update it would cost every intake is saved.
as_txn = Table(
    "as_txn",
    metadata,
    Column("seq", AutoBigInt, nullable=False, autoincrement=True),
    Column("txn_id", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("event_count", Integer, nullable=False, server_default=text("0")),
    Column("done_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("seq"),
    UniqueConstraint("txn_id"),
    # Transactions still being handled: where a restart resumes and where pruning stops.
    Index(
        "ix_as_txn_open",
        "seq",
        sqlite_where=text("done_at IS NULL"),
        postgresql_where=text("done_at IS NULL"),
    ),
)

# The items of each transaction (kind: event, ephemeral, to_device, device_lists, otk), one row
# per transaction, not per item: body is the transaction as the homeserver sent it (a JSON object,
# parsed again on resume) or a JSON array of [kind, room_id, object] as intake parsed them. Item i
# of transaction seq has the inbox sequence number seq << 20 | i. Deleted by pruning once the
# transaction is complete and older than the retention.
as_txn_items = Table(
    "as_txn_items",
    metadata,
    Column("seq", AutoBigInt, nullable=False, autoincrement=False),
    Column("body", LargeBinary, nullable=False),
    PrimaryKeyConstraint("seq"),
)

INBOX_PENDING = 0
INBOX_DONE = 1
INBOX_FAILED = 2

# Items whose state differs from their transaction's, by item sequence number: handled while the
# rest of the transaction is not (state 1), retried (state 0 with attempts and last_error), or
# parked after failing handlers (state 2, with a copy of the item in txn_id, kind, room_id and
# body, so it outlives the pruning of its transaction).
inbox = Table(
    "inbox",
    metadata,
    Column("seq", AutoBigInt, nullable=False, autoincrement=False),
    Column("txn_id", Text, nullable=True),
    Column("kind", Text, nullable=True),
    Column("room_id", Text, nullable=True),
    Column("body", LargeBinary, nullable=True),
    Column("state", SmallInteger, nullable=False, server_default=text("0")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text, nullable=True),
    Column("done_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("seq"),
    Index(
        "ix_inbox_failed",
        "seq",
        sqlite_where=text("state = 2"),
        postgresql_where=text("state = 2"),
    ),
)

# --- state cache: what the homeserver told us, so intents skip needless requests -----------------

# Per room: encryption flag, power levels (JSON), and whether cache_member holds every member.
cache_room = Table(
    "cache_room",
    metadata,
    Column("room_id", Text, nullable=False),
    Column("encrypted", Boolean, nullable=False, server_default=false()),
    Column("power_levels", LargeBinary, nullable=True),
    Column("members_complete", Boolean, nullable=False, server_default=false()),
    Column("updated_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("room_id"),
)

# Room membership with profile (display name, avatar) as the room sees it.
cache_member = Table(
    "cache_member",
    metadata,
    Column("room_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("membership", Text, nullable=False),
    Column("displayname", Text, nullable=True),
    Column("avatar_url", Text, nullable=True),
    PrimaryKeyConstraint("room_id", "user_id"),
    Index("ix_cache_member_user_id", "user_id"),
)

# Puppets known to be registered on the homeserver.
cache_registered = Table(
    "cache_registered",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("registered_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id"),
)

# --- bridge mapping: remote network <-> Matrix ---------------------------------------------------

# A remote chat and its Matrix room; receiver is set for chats seen per user (DMs).
bridge_portal = Table(
    "bridge_portal",
    metadata,
    Column("remote_id", Text, nullable=False),
    Column("receiver", Text, nullable=False, server_default=""),
    Column("room_id", Text, nullable=True, unique=True),
    Column("name", Text, nullable=True),
    Column("topic", Text, nullable=True),
    Column("avatar_url", Text, nullable=True),
    Column("encrypted", Boolean, nullable=False, server_default=false()),
    Column("extra", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("remote_id", "receiver"),
)

# A remote user and the Matrix puppet that stands for them.
bridge_puppet = Table(
    "bridge_puppet",
    metadata,
    Column("remote_id", Text, nullable=False),
    Column("user_id", Text, nullable=False, unique=True),
    Column("displayname", Text, nullable=True),
    Column("avatar_url", Text, nullable=True),
    Column("name_set", Boolean, nullable=False, server_default=false()),
    Column("avatar_set", Boolean, nullable=False, server_default=false()),
    Column("extra", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("remote_id"),
)

# A real Matrix user of the bridge and their remote identity, when logged in.
bridge_user = Table(
    "bridge_user",
    metadata,
    Column("user_id", Text, nullable=False),
    Column("remote_id", Text, nullable=True),
    Column("management_room", Text, nullable=True),
    Column("extra", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id"),
    Index("ix_bridge_user_remote_id", "remote_id"),
)

# A remote message (or one part of it) and its Matrix event: edits, replies, redactions.
bridge_message = Table(
    "bridge_message",
    metadata,
    Column("remote_chat", Text, nullable=False),
    Column("receiver", Text, nullable=False, server_default=""),
    Column("remote_id", Text, nullable=False),
    Column("part", Text, nullable=False, server_default=""),
    Column("event_id", Text, nullable=False, unique=True),
    Column("room_id", Text, nullable=False),
    Column("sender", Text, nullable=False, server_default=""),
    Column("sent_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("remote_chat", "receiver", "remote_id", "part"),
    ForeignKeyConstraint(
        ["remote_chat", "receiver"],
        ["bridge_portal.remote_id", "bridge_portal.receiver"],
        ondelete="CASCADE",
    ),
)
