"""The phone: devices and their offline-queue reports (issue 4).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 01:30:00

"""

# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
