"""Field work: GPS check-in rules, on-duty dispatch (issue 3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 01:30:00

"""

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
