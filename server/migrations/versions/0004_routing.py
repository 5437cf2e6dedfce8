"""Smart routing: categories, urgency, duplicate links, models and corrections (issue 6).

Adds the ticket's routing columns (category confidence, source and explanation, the
"N other reports" counter, the ticket a duplicate was merged into, emergency services) and
the tables of trained models, staff corrections, duplicate links and emergency hand-offs.
The taxonomy itself is a data file shipped with the code (routing/data/taxonomy.csv).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:30:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = (
    sa.JSON()
    .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    .with_variant(sqlite.JSON(), "sqlite")
)


def upgrade() -> None:
    # Plain ADD COLUMN on both databases: a batch rebuild of ``tickets`` on SQLite would
    # drop and re-create the table every other table points at. SQLite gets no foreign key
    # on duplicate_of_id (it cannot add one without that rebuild); PostgreSQL does.
    op.add_column("tickets", sa.Column("category_confidence", sa.Float(), nullable=True))
    op.add_column("tickets", sa.Column("category_source", sa.String(length=16), nullable=True))
    op.add_column("tickets", sa.Column("category_explanation", JSON, nullable=True))
    op.add_column(
        "tickets", sa.Column("duplicate_count", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("tickets", sa.Column("duplicate_of_id", BIG, nullable=True))
    op.add_column("tickets", sa.Column("emergency_services", sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(
            op.f("fk_tickets_duplicate_of_id_tickets"), "tickets", "tickets", ["duplicate_of_id"], ["id"]
        )
    # Categories given before routing existed were given by operators.
    op.execute(
        "UPDATE tickets SET category_source = 'operator', category_confidence = 1.0 "
        "WHERE category_code IS NOT NULL"
    )

    op.create_table(
        "routing_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("n_train", sa.Integer(), nullable=False),
        sa.Column("n_corrections", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("decision", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_models")),
        sa.UniqueConstraint("version", name=op.f("uq_routing_models_version")),
    )
    op.create_table(
        "category_corrections",
        sa.Column("id", BIG, nullable=False),
        sa.Column("ticket_id", BIG, nullable=False),
        sa.Column("from_code", sa.String(length=32), nullable=True),
        sa.Column("to_code", sa.String(length=32), nullable=False),
        sa.Column("from_source", sa.String(length=16), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_category_corrections_actor_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_category_corrections_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_category_corrections")),
    )
    with op.batch_alter_table("category_corrections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_category_corrections_ticket_id"), ["ticket_id"], unique=False
        )

    op.create_table(
        "ticket_links",
        sa.Column("id", BIG, nullable=False),
        sa.Column("ticket_id", BIG, nullable=False),
        sa.Column("other_id", BIG, nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("text_score", sa.Float(), nullable=False),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["users.id"], name=op.f("fk_ticket_links_decided_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["other_id"], ["tickets.id"], name=op.f("fk_ticket_links_other_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_links_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_links")),
        sa.UniqueConstraint(
            "ticket_id", "other_id", name=op.f("uq_ticket_links_ticket_id_other_id")
        ),
    )
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_links_other_id"), ["other_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_links_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "emergency_handoffs",
        sa.Column("id", BIG, nullable=False),
        sa.Column("ticket_id", BIG, nullable=False),
        sa.Column("services", sa.String(length=32), nullable=False),
        sa.Column("signals", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detected", sa.Boolean(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handed_off_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["handed_off_by_id"],
            ["users.id"],
            name=op.f("fk_emergency_handoffs_handed_off_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_emergency_handoffs_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emergency_handoffs")),
    )
    with op.batch_alter_table("emergency_handoffs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_emergency_handoffs_ticket_id"), ["ticket_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("emergency_handoffs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_emergency_handoffs_ticket_id"))
    op.drop_table("emergency_handoffs")
    with op.batch_alter_table("ticket_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_links_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_links_other_id"))
    op.drop_table("ticket_links")
    with op.batch_alter_table("category_corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_category_corrections_ticket_id"))
    op.drop_table("category_corrections")
    op.drop_table("routing_models")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("fk_tickets_duplicate_of_id_tickets"), "tickets", type_="foreignkey")
    for column in (
        "emergency_services",
        "duplicate_of_id",
        "duplicate_count",
        "category_explanation",
        "category_source",
        "category_confidence",
    ):
        op.drop_column("tickets", column)
