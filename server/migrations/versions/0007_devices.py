"""The phone: devices and their offline-queue reports (issue 4).

One row per installed app and user: how long its offline queue is, how old its oldest item,
what waits for the worker's attention, and whether the browser keeps its storage. The
supervisors' "stuck devices" list reads it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 01:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device_uid", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("app_version", sa.String(length=40), nullable=True),
        sa.Column("queue_length", sa.Integer(), nullable=False),
        sa.Column("oldest_item_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attention_count", sa.Integer(), nullable=False),
        sa.Column(
            "attention",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=True,
        ),
        sa.Column("persisted", sa.Boolean(), nullable=True),
        sa.Column("storage_usage", sa.BigInteger(), nullable=True),
        sa.Column("storage_quota", sa.BigInteger(), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_devices_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("user_id", "device_uid", name=op.f("uq_devices_user_id_device_uid")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_user_id"), ["user_id"], unique=False)
        batch_op.create_index("ix_devices_stuck", ["queue_length", "oldest_item_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index("ix_devices_stuck")
        batch_op.drop_index(batch_op.f("ix_devices_user_id"))
    op.drop_table("devices")
