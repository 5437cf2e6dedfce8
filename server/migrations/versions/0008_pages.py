"""Station and supervisor screens: indexes for the queues, maps and grid load (issues 3, 4).

The supervisors' board reads the open clocks that are due soon or overdue out of every open
clock of a county (100,000 tickets in ``bench/pages.py``). Two partial indexes over the open
clocks only (``stopped_at IS NULL``: closed tickets' clocks drop out of them) let those reads
find the few hundred due ones by range instead of scanning every clock:

- ``ix_clocks_open_due_at``: the overdue list (``due_at < now``);
- ``ix_clocks_open_due_soon_at``: the due-soon list and the per-township counts
  (``due_soon_at <= now``).

The map colours every grid by its open tickets: ``ix_tickets_unit_status_grid`` (unit, status,
grid, handling due) answers "open tickets per grid in this subtree, and how many overdue" from
the index alone (150 ms → 15 ms for a county on SQLite).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:30:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OPEN = sa.text("stopped_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_clocks_open_due_at", "clocks", ["due_at"], unique=False,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_clocks_open_due_soon_at", "clocks", ["due_soon_at"], unique=False,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.create_index("ix_tickets_unit_status_grid", "tickets",
                    ["unit_id", "status", "grid_id", "handling_due"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tickets_unit_status_grid", table_name="tickets")
    op.drop_index("ix_clocks_open_due_soon_at", table_name="clocks")
    op.drop_index("ix_clocks_open_due_at", table_name="clocks")
