"""Deadlines and escalation: clock rules, the Chinese working-day calendar, due-soon and
overdue detection, the escalation ladder and notifications (jobs on RQ)."""
