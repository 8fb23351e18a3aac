"""The program's enums as GraphQL publishes them, each wrapped once here (scoring.model and
registry/vocabulary.py define them). The GraphQL names are the published schema's: a value is
only ever added, never renamed or removed."""

from enum import Enum

import strawberry

from registry.vocabulary import (
    AppealDecisionOutcome,
    InspectionSeverity,
    PermitKind,
    RepairDecisionOutcome,
    RepairOutcome,
)
from scoring.model import (
    AppealOutcome,
    ApplicationKind,
    DecisionKind,
    FindingStatus,
    Grade,
    NotEvaluatedWhy,
    ProjectType,
    Severity,
    Source,
    Verdict,
    WellRole,
)

DecisionEnum = strawberry.enum(DecisionKind, name="Decision")
GradeEnum = strawberry.enum(Grade, name="Grade")
ApplicationKindEnum = strawberry.enum(ApplicationKind, name="ApplicationKind")
SeverityEnum = strawberry.enum(Severity, name="Severity")
InspectionSeverityEnum = strawberry.enum(InspectionSeverity, name="InspectionSeverity")
VerdictEnum = strawberry.enum(Verdict, name="Verdict")
FindingSourceEnum = strawberry.enum(Source, name="FindingSource")
FindingStatusEnum = strawberry.enum(FindingStatus, name="FindingStatus")
AppealOutcomeEnum = strawberry.enum(AppealOutcome, name="AppealOutcome")
AppealDecisionOutcomeEnum = strawberry.enum(AppealDecisionOutcome, name="AppealDecisionOutcome")
RepairOutcomeEnum = strawberry.enum(RepairOutcome, name="RepairOutcome")
RepairDecisionOutcomeEnum = strawberry.enum(RepairDecisionOutcome, name="RepairDecisionOutcome")
ProjectTypeEnum = strawberry.enum(ProjectType, name="ProjectType")
WellRoleEnum = strawberry.enum(WellRole, name="WellRole")
PermitKindEnum = strawberry.enum(PermitKind, name="PermitKind")
NotEvaluatedWhyEnum = strawberry.enum(NotEvaluatedWhy, name="NotEvaluatedWhy")

PUBLISHED: dict[str, type[Enum]] = {
    "Decision": DecisionEnum,
    "Grade": GradeEnum,
    "ApplicationKind": ApplicationKindEnum,
    "Severity": SeverityEnum,
    "InspectionSeverity": InspectionSeverityEnum,
    "Verdict": VerdictEnum,
    "FindingSource": FindingSourceEnum,
    "FindingStatus": FindingStatusEnum,
    "AppealOutcome": AppealOutcomeEnum,
    "AppealDecisionOutcome": AppealDecisionOutcomeEnum,
    "RepairOutcome": RepairOutcomeEnum,
    "RepairDecisionOutcome": RepairDecisionOutcomeEnum,
    "ProjectType": ProjectTypeEnum,
    "WellRole": WellRoleEnum,
    "PermitKind": PermitKindEnum,
    "NotEvaluatedWhy": NotEvaluatedWhyEnum,
}
"""GraphQL name → the wrapped enum."""
