"""Who may do what to a ticket: ``can_<verb>(user, ticket)``.

Rights inherit down the tree: a steering role in a unit acts on tickets anywhere in its
subtree. Handling is narrower: the assignee, or — when no one person holds the ticket —
staff of the unit that holds it. Review belongs to the unit *above* the one that handled
the ticket, so nobody approves their own work.
"""

from __future__ import annotations

from hierarchy.models import STEERING_ROLES, Role, Unit, User
from hierarchy.scoping import is_strict_ancestor

from .models import Ticket

INTAKE_ROLES = frozenset({Role.platform, Role.supervisor, Role.station, Role.contact})
HANDLING_ROLES = frozenset({Role.contact, Role.station, Role.supervisor, Role.platform})
FOLLOW_UP_ROLES = frozenset({Role.platform, Role.supervisor})
DISPATCHABLE_ROLES = frozenset({Role.grid_worker, Role.contact})


def can_accept(user: User, source: str) -> bool:
    """Hotline and platform staff take calls; grid workers report what they find on patrol."""
    if user.role == Role.grid_worker:
        return source == "patrol"
    return user.role in INTAKE_ROLES


def steers(user: User, ticket: Ticket) -> bool:
    return user.role in STEERING_ROLES and ticket.unit.is_within(user.unit)


def holds(user: User, ticket: Ticket) -> bool:
    """The assignee, or handling staff of the holding unit when no person holds it."""
    if ticket.assignee_id is not None:
        return ticket.assignee_id == user.id
    return user.role in HANDLING_ROLES and ticket.unit_id == user.unit_id


def reviews(user: User, ticket: Ticket) -> bool:
    """Steering staff above the unit that handled the ticket (the root reviews itself)."""
    if user.role not in STEERING_ROLES:
        return False
    if ticket.unit.parent_id is None:
        return ticket.unit_id == user.unit_id
    return is_strict_ancestor(user.unit, ticket.unit)


def can_dispatch(user: User, ticket: Ticket) -> bool:
    return steers(user, ticket)


def can_dispatch_to(user: User, unit: Unit) -> bool:
    return unit.is_within(user.unit)


def can_correct_location(user: User, ticket: Ticket) -> bool:
    """Steering staff above the ticket, or whoever holds it (the worker standing there)."""
    return steers(user, ticket) or holds(user, ticket)


def can_sign(user: User, ticket: Ticket) -> bool:
    return holds(user, ticket)


def can_return(user: User, ticket: Ticket) -> bool:
    return holds(user, ticket)


def can_check_in(user: User, ticket: Ticket) -> bool:
    return holds(user, ticket)


def can_reply(user: User, ticket: Ticket) -> bool:
    return holds(user, ticket)


def can_upload_photo(user: User, ticket: Ticket) -> bool:
    return holds(user, ticket) or ticket.created_by_id == user.id


def can_review(user: User, ticket: Ticket) -> bool:
    return reviews(user, ticket)


def can_request_extension(user: User, ticket: Ticket) -> bool:
    return holds(user, ticket)


def can_decide_extension(user: User, ticket: Ticket) -> bool:
    return reviews(user, ticket)


def can_urge(user: User, ticket: Ticket) -> bool:
    return user.role in STEERING_ROLES and is_strict_ancestor(user.unit, ticket.unit)


def can_follow_up(user: User, ticket: Ticket) -> bool:
    return user.role in FOLLOW_UP_ROLES and ticket.unit.is_within(user.unit)


def can_reopen(user: User, ticket: Ticket) -> bool:
    return user.role in FOLLOW_UP_ROLES and ticket.unit.is_within(user.unit)


def can_correct_category(user: User, ticket: Ticket) -> bool:
    """Steering staff (village contacts, stations, supervisors, platforms) over the ticket's
    holding unit; the hotline also over what it accepted (it labelled the call)."""
    return steers(user, ticket) or (
        user.role == Role.platform and ticket.accepting_unit.is_within(user.unit))


def can_decide_duplicate(user: User, ticket: Ticket) -> bool:
    return steers(user, ticket)


def can_hand_off(user: User, ticket: Ticket) -> bool:
    """The hotline (who has the caller on the line) and steering staff over the ticket."""
    return user.role == Role.platform or steers(user, ticket)


def can_see_reporter(user: User, ticket: Ticket) -> bool:
    """Unmasked reporter data: the hotline, and whoever must call the citizen back."""
    if user.role == Role.platform:
        return True
    if ticket.reporter_anonymous:
        return False
    return holds(user, ticket)
