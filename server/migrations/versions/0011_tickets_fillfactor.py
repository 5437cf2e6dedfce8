"""Tickets: leave a tenth of each heap page free (PostgreSQL ``fillfactor = 90``) (issue 5).

Every ticket action rewrites its ticket row (the version, the shown deadlines), and none of
those columns is indexed. With room on the page PostgreSQL makes such an update a
heap-only tuple: no new entry in any of the ten indexes of ``tickets``. On full pages every
version bump wrote ten index entries — for the deadline scan's 1,000 escalations, 24 MB of
WAL and 3,057 whole pages after a checkpoint instead of 7.6 MB and 1,000 (``EXPLAIN (ANALYZE,
WAL)`` of the same update on the bench database, before and after). Existing pages take the
setting as they are rewritten or vacuumed; new ones at once. SQLite has no such setting.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 18:40:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tickets SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE tickets RESET (fillfactor)")
