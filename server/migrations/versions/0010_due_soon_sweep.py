"""The due-soon sweep: ``scan_marks``, and the due-soon index keyed by (due_soon_at, id)
(issue 5; decision 20 in ``docs/decisions.md``).

A due-soon reminder no longer moves its clock: the scan sweeps ``due_soon_at`` forward from
a mark (``scan_marks``, one row per sweep) and writes only the ``fired`` rows and the
notices. Moving 9,000 clocks on for a burst of reminders wrote 9,000 wide heap pages and
five index entries each; reading them writes nothing. The sweep's keyset is
``(due_soon_at, id)``, so the board's due-soon index gains ``id`` as its second column.

On an installation in use the mark starts at the migration's moment: clocks already waiting
for their reminder keep ``next_fire_at = due_soon_at`` and are fired as before, by their own
next firing time.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:00:00

"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OPEN = sa.text("stopped_at IS NULL")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    marks = op.create_table(
        "scan_marks",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("through_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("through_id", BIGID, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scan_marks")),
    )
    if op.get_bind().execute(sa.text("SELECT 1 FROM clocks LIMIT 1")).first() is not None:
        # An installation in use: the sweep starts now (see above). A new one gets its mark
        # from the first sweep, at the beginning of time.
        now = datetime.now(UTC)
        op.bulk_insert(marks, [{"name": "due_soon", "through_at": now, "through_id": 0,
                                "updated_at": now}])
    op.drop_index("ix_clocks_open_due_soon_at", table_name="clocks")
    op.create_index("ix_clocks_open_due_soon_at", "clocks", ["due_soon_at", "id"], unique=False,
                    postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_clocks_open_due_soon_at", table_name="clocks")
    op.create_index("ix_clocks_open_due_soon_at", "clocks", ["due_soon_at"], unique=False,
                    postgresql_where=OPEN, sqlite_where=OPEN)
    op.drop_table("scan_marks")
