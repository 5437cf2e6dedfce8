"""Web Push: VAPID keys, subscriptions per device, delivery attempts (issue 4).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:30:00

"""

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
