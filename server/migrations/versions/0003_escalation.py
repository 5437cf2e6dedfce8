"""Deadlines and escalation: the working-day calendar, SLA rules, clocks, the exactly-once
guard, the supervisors' board and in-app notifications.

Seeds the calendar from the installed ``chinesecalendar`` package and the default rules
(both copied here, not imported from the application, so this migration stays what it was),
and gives tickets that are already open clocks matching their displayed deadlines.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 10:00:00

"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: (code, name, clock, urgency, amount, unit, repeat amount, repeat unit, top level)
DEFAULT_RULES = [
    (
        "default.sign.emergency",
        "特急：15分钟内签收（危及生命财产安全）",
        "sign",
        "emergency",
        15,
        "minutes",
        15,
        "minutes",
        "county",
    ),
    (
        "default.sign.urgent",
        "紧急：30分钟内签收（停水停电停气停暖）",
        "sign",
        "urgent",
        30,
        "minutes",
        30,
        "minutes",
        "county",
    ),
    (
        "default.sign",
        "1个工作日内签收",
        "sign",
        None,
        1,
        "working_days",
        1,
        "working_days",
        "county",
    ),
    (
        "default.check_in.emergency",
        "特急：签收后1小时内到场",
        "check_in",
        "emergency",
        1,
        "hours",
        1,
        "hours",
        None,
    ),
    (
        "default.check_in.urgent",
        "紧急：签收后2小时内到场",
        "check_in",
        "urgent",
        2,
        "hours",
        2,
        "hours",
        None,
    ),
    (
        "default.check_in",
        "签收后1个工作日内到场",
        "check_in",
        None,
        1,
        "working_days",
        1,
        "working_days",
        None,
    ),
    (
        "default.reply.emergency",
        "特急：24小时内办结反馈",
        "reply",
        "emergency",
        24,
        "hours",
        4,
        "hours",
        "county",
    ),
    (
        "default.reply",
        "5个工作日内办结反馈",
        "reply",
        None,
        5,
        "working_days",
        1,
        "working_days",
        "county",
    ),
    (
        "default.review",
        "1个工作日内审核",
        "review",
        None,
        1,
        "working_days",
        1,
        "working_days",
        "county",
    ),
]


def upgrade():
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("is_workday", sa.Boolean(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_calendar_days")),
    )
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_calendar_years")),
    )
    op.create_table(
        "escalation_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("calendar_version", sa.Integer(), nullable=False),
        sa.Column("calendar_token", sa.String(length=32), nullable=False),
        sa.Column("rules_token", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_state")),
    )
    op.create_table(
        "fired",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("clock", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fired")),
        sa.UniqueConstraint(
            "ticket_id",
            "clock",
            "cycle",
            "rung",
            "deadline",
            name=op.f("uq_fired_ticket_id_clock_cycle_rung_deadline"),
        ),
    )
    op.create_table(
        "sla_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("clock", sa.String(length=16), nullable=False),
        sa.Column("scope_unit_id", sa.Integer(), nullable=True),
        sa.Column("ticket_type", sa.String(length=16), nullable=True),
        sa.Column("category_prefix", sa.String(length=32), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("due_soon_percent", sa.Integer(), nullable=False),
        sa.Column("repeat_amount", sa.Integer(), nullable=False),
        sa.Column("repeat_unit", sa.String(length=16), nullable=False),
        sa.Column("top_level", sa.String(length=16), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["scope_unit_id"], ["units.id"], name=op.f("fk_sla_rules_scope_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_rules")),
        sa.UniqueConstraint("code", name=op.f("uq_sla_rules_code")),
    )
    with op.batch_alter_table("sla_rules", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sla_rules_scope_unit_id"), ["scope_unit_id"], unique=False
        )

    op.create_table(
        "clocks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("rule_code", sa.String(length=64), nullable=True),
        sa.Column("calendar_version", sa.Integer(), nullable=False),
        sa.Column("ticket_type", sa.String(length=16), nullable=False),
        sa.Column("category_code", sa.String(length=32), nullable=True),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("scope_path", sa.String(length=255), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("unit_path", sa.String(length=255), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_soon_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("extended_days", sa.Integer(), nullable=False),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suspended_seconds", sa.Integer(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.String(length=24), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("excused", sa.Boolean(), nullable=False),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["users.id"], name=op.f("fk_clocks_assignee_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_clocks_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_clocks_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clocks")),
        sa.UniqueConstraint(
            "ticket_id", "cycle", "kind", "seq", name=op.f("uq_clocks_ticket_id_cycle_kind_seq")
        ),
    )
    with op.batch_alter_table("clocks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_clocks_next_fire",
            ["next_fire_at"],
            unique=False,
            postgresql_where=sa.text("stopped_at IS NULL AND next_fire_at IS NOT NULL"),
            sqlite_where=sa.text("stopped_at IS NULL AND next_fire_at IS NOT NULL"),
        )
        batch_op.create_index(batch_op.f("ix_clocks_ticket_id"), ["ticket_id"], unique=False)

    op.create_table(
        "escalations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("clock_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("clock", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("rung", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rule_code", sa.String(length=64), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("from_unit_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.Column("urged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("urge_count", sa.Integer(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(
            ["acknowledged_by_id"],
            ["users.id"],
            name=op.f("fk_escalations_acknowledged_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["clock_id"], ["clocks.id"], name=op.f("fk_escalations_clock_id_clocks")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_escalations_event_id_events")
        ),
        sa.ForeignKeyConstraint(
            ["from_unit_id"], ["units.id"], name=op.f("fk_escalations_from_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_escalations_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_escalations_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalations")),
    )
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_escalations_clock_id"), ["clock_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalations_rule_code"), ["rule_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_escalations_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index("ix_escalations_unit_open", ["unit_id", "resolved_at"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "escalation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.String(length=500), nullable=False),
        sa.Column(
            "data",
            sa.JSON()
            .with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
            .with_variant(sqlite.JSON(), "sqlite"),
            nullable=False,
        ),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deliver_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dedupe_key", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["escalation_id"],
            ["escalations.id"],
            name=op.f("fk_notifications_escalation_id_escalations"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_notifications_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notifications_dedupe_key")),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notifications_pending", ["dispatched_at", "deliver_after"], unique=False
        )
        batch_op.create_index("ix_notifications_user_read", ["user_id", "read_at"], unique=False)

    _seed()
    _backfill()


def downgrade():
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_user_read")
        batch_op.drop_index("ix_notifications_pending")

    op.drop_table("notifications")
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_index("ix_escalations_unit_open")
        batch_op.drop_index(batch_op.f("ix_escalations_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_escalations_rule_code"))
        batch_op.drop_index(batch_op.f("ix_escalations_clock_id"))

    op.drop_table("escalations")
    with op.batch_alter_table("clocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_clocks_ticket_id"))
        batch_op.drop_index(
            "ix_clocks_next_fire",
            postgresql_where=sa.text("stopped_at IS NULL AND next_fire_at IS NOT NULL"),
            sqlite_where=sa.text("stopped_at IS NULL AND next_fire_at IS NOT NULL"),
        )

    op.drop_table("clocks")
    with op.batch_alter_table("sla_rules", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_rules_scope_unit_id"))

    op.drop_table("sla_rules")
    op.drop_table("fired")
    op.drop_table("escalation_state")
    op.drop_table("calendar_years")
    op.drop_table("calendar_days")


def _seed():
    from chinese_calendar import constants

    now = datetime.now(UTC)
    bind = op.get_bind()
    days = sa.table(
        "calendar_days",
        sa.column("day", sa.Date),
        sa.column("is_workday", sa.Boolean),
        sa.column("name", sa.String),
        sa.column("source", sa.String),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    years = sa.table(
        "calendar_years",
        sa.column("year", sa.Integer),
        sa.column("source", sa.String),
        sa.column("entered_at", sa.DateTime(timezone=True)),
    )
    rules = sa.table(
        "sla_rules",
        *(
            sa.column(n)
            for n in (
                "code",
                "name",
                "clock",
                "urgency",
                "amount",
                "unit",
                "repeat_amount",
                "repeat_unit",
                "top_level",
                "due_soon_percent",
                "enabled",
                "created_at",
                "updated_at",
            )
        ),
    )
    state = sa.table(
        "escalation_state",
        *(
            sa.column(n)
            for n in ("id", "calendar_version", "calendar_token", "rules_token", "updated_at")
        ),
    )
    exceptions = {}
    for day, name in constants.holidays.items():
        if day.weekday() < 5:
            exceptions[day] = (False, str(name))
    for day, name in constants.workdays.items():
        if day.weekday() >= 5:
            exceptions[day] = (True, str(name))
    if exceptions:
        bind.execute(
            days.insert(),
            [
                {"day": d, "is_workday": w, "name": n, "source": "package", "updated_at": now}
                for d, (w, n) in sorted(exceptions.items())
            ],
        )
    bind.execute(
        years.insert(),
        [
            {"year": y, "source": "package", "entered_at": now}
            for y in sorted({d.year for d in constants.holidays})
        ],
    )
    bind.execute(
        rules.insert(),
        [
            {
                "code": c,
                "name": n,
                "clock": k,
                "urgency": u,
                "amount": a,
                "unit": un,
                "repeat_amount": ra,
                "repeat_unit": ru,
                "top_level": top,
                "due_soon_percent": 80,
                "enabled": True,
                "created_at": now,
                "updated_at": now,
            }
            for c, n, k, u, a, un, ra, ru, top in DEFAULT_RULES
        ],
    )
    bind.execute(
        state.insert(),
        [
            {
                "id": 1,
                "calendar_version": 1,
                "calendar_token": uuid.uuid4().hex,
                "rules_token": uuid.uuid4().hex,
                "updated_at": now,
            }
        ],
    )


def _backfill():
    """Open tickets get sign and reply clocks with their displayed deadlines (the ladder
    starts at the deadline: no due-soon reminder for history)."""
    for kind, due, statuses, special in (
        ("sign", "response_due", "('accepted', 'assigned')", "('urgent', 'emergency')"),
        (
            "reply",
            "handling_due",
            "('accepted', 'assigned', 'in_progress', 'on_site')",
            "('emergency')",
        ),
    ):
        op.execute(f"""
        INSERT INTO clocks (ticket_id, cycle, kind, seq, rule_code, calendar_version,
            ticket_type, category_code, urgency, level, scope_path, unit_id, unit_path,
            assignee_id, started_at, due_at, due_soon_at, extended_days, suspended_seconds,
            excused, provisional, step, next_fire_at)
        SELECT t.id, t.reopen_count, '{kind}', 1,
            CASE WHEN t.urgency IN {special} THEN 'default.{kind}.' || t.urgency
                 ELSE 'default.{kind}' END,
            1, t.type, t.category_code, t.urgency, u.level, u.path, t.unit_id, u.path,
            t.assignee_id, t.accepted_at, t.{due}, NULL, 0, 0,
            {"false" if op.get_bind().dialect.name == "postgresql" else "0"},
            t.deadline_provisional, 1, t.{due}
        FROM tickets t JOIN units u ON u.id = t.unit_id
        WHERE t.status IN {statuses} AND t.{due} IS NOT NULL
        """)
