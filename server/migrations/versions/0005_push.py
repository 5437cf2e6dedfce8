"""Web Push: VAPID keys, subscriptions per device, delivery attempts (issue 4).

Two tables: ``push_subscriptions`` (one per device of a person, with the outcome of its last
push, so a worker whom push does not reach is visible) and ``push_deliveries`` (one digest to
one device: a retried digest skips the devices it already reached). The VAPID keys live in
``YIHAO_HOME`` or the environment, never in the database.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=1000), nullable=False),
        sa.Column("p256dh", sa.String(length=128), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_push_subscriptions_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscriptions")),
        sa.UniqueConstraint("endpoint", name=op.f("uq_push_subscriptions_endpoint")),
        sa.UniqueConstraint(
            "user_id", "device_id", name=op.f("uq_push_subscriptions_user_id_device_id")
        ),
    )
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_subscriptions_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "push_deliveries",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("message_id", BIG_ID, nullable=False),
        sa.Column("subscription_id", BIG_ID, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["outbox.id"], name=op.f("fk_push_deliveries_message_id_outbox")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["push_subscriptions.id"],
            name=op.f("fk_push_deliveries_subscription_id_push_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_deliveries")),
        sa.UniqueConstraint(
            "message_id",
            "subscription_id",
            name=op.f("uq_push_deliveries_message_id_subscription_id"),
        ),
    )
    with op.batch_alter_table("push_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_push_deliveries_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_push_deliveries_subscription_id"), ["subscription_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("push_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_deliveries_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_push_deliveries_message_id"))

    op.drop_table("push_deliveries")
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_subscriptions_user_id"))

    op.drop_table("push_subscriptions")
