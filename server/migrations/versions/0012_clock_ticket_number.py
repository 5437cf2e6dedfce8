"""Clocks: a copy of the ticket's number (``clocks.ticket_number``) (issue 5).

The deadline scan names every ticket in its reminders. Reading the number from ``tickets``
was one random heap page per reminder — for a burst of 9,000 due-soon reminders about a
third of the sweep (``docs/performance.md``, escalation, session 6). A ticket's number never
changes once given, so the clock keeps a copy. Open clocks get theirs here; stopped ones
never fire again and are left null, and the scan still asks the ticket for any clock
without one.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 21:55:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("clocks", sa.Column("ticket_number", sa.String(length=24), nullable=True))
    op.execute(
        "UPDATE clocks SET ticket_number = (SELECT tickets.number FROM tickets "
        "WHERE tickets.id = clocks.ticket_id) WHERE clocks.stopped_at IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("clocks") as batch:
        batch.drop_column("ticket_number")
