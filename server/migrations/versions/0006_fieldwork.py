"""Field work: GPS check-in rules, on-duty dispatch (issue 3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 01:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(sqlite.JSON(), "sqlite")


def upgrade() -> None:
    # Why a check-in was warned or refused (grids/checkin.py); the verdict column exists.
    with op.batch_alter_table("check_ins") as batch:
        batch.add_column(sa.Column("flags", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("check_ins") as batch:
        batch.drop_column("flags")
