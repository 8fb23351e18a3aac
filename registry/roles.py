"""Who may do what: the one table of roles per action. GraphQL's root fields and the reviewer
console both ask it (`may`, `require`); neither has rules of its own."""

from collections.abc import Mapping
from enum import StrEnum

from registry.auth import Client
from registry.vocabulary import Role


class Action(StrEnum):
    READ_DECISIONS = "read_decisions"  # eligibility, batches, the change feed, node
    SCREEN_APPLICATION = "screen_application"
    READ_CREDIT_FILES = "read_credit_files"  # a credit file, lists of them, supervision
    RECORD_INSPECTION = "record_inspection"
    RECORD_RECTIFICATION = "record_rectification"
    RECORD_POST_EVALUATION = "record_post_evaluation"
    SUBMIT_MONTHLY_REPORT = "submit_monthly_report"
    OPEN_APPEAL = "open_appeal"
    DECIDE_APPEAL = "decide_appeal"
    REQUEST_REPAIR = "request_repair"
    DECIDE_REPAIR = "decide_repair"
    PLACE_LISTING = "place_listing"
    LIFT_LISTING = "lift_listing"
    REGISTER_PROJECT = "register_project"
    RECORD_PERMIT = "record_permit"
    SET_PROJECT_ZONES = "set_project_zones"


_STAFF = frozenset({Role.REVIEWER, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})

ALLOWED: Mapping[Action, frozenset[Role]] = {
    Action.READ_DECISIONS: frozenset({Role.APPROVAL_SYSTEM, Role.REVIEWER, Role.ADMIN}),
    Action.SCREEN_APPLICATION: frozenset({Role.APPROVAL_SYSTEM}),
    Action.READ_CREDIT_FILES: _STAFF,
    Action.RECORD_INSPECTION: _STAFF,
    Action.RECORD_RECTIFICATION: _STAFF,
    Action.RECORD_POST_EVALUATION: _STAFF,
    Action.SUBMIT_MONTHLY_REPORT: _STAFF,
    Action.OPEN_APPEAL: _STAFF,
    Action.DECIDE_APPEAL: _STAFF,
    Action.REQUEST_REPAIR: _STAFF,
    Action.DECIDE_REPAIR: _STAFF,
    Action.PLACE_LISTING: _ADMIN,
    Action.LIFT_LISTING: _ADMIN,
    Action.REGISTER_PROJECT: _ADMIN,
    Action.RECORD_PERMIT: _ADMIN,
    Action.SET_PROJECT_ZONES: _ADMIN,
}


class Forbidden(PermissionError):
    def __init__(self, role: Role, action: Action) -> None:
        allowed = ", ".join(sorted(ALLOWED[action]))
        super().__init__(f"role {role} may not {action} (allowed: {allowed})")
        self.role = role
        self.action = action
        self.allowed = ALLOWED[action]


def may(role: Role, action: Action) -> bool:
    return role in ALLOWED[action]


def require(client: Client, action: Action) -> None:
    if not may(client.role, action):
        raise Forbidden(client.role, action)
