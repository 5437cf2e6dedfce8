"""Clocks: drop ``ix_clocks_ticket_id``, which the unique key (ticket_id, cycle, kind, seq)
already serves (issue 5).

Every rung the deadline scan fires moves a clock's ``next_fire_at``, an indexed column, so
PostgreSQL writes a new entry into every index of ``clocks`` for each clock it moves — six
of them before this revision. The plain index on ``ticket_id`` duplicated the leading column
of the unique key; without it a burst of 9,000 due-soon reminders writes 9,000 index entries
fewer, and every ticket action that starts or stops a clock one fewer.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 05:30:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_clocks_ticket_id", table_name="clocks")


def downgrade() -> None:
    op.create_index("ix_clocks_ticket_id", "clocks", ["ticket_id"], unique=False)
