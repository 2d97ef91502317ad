"""A person's data, exported and erased on request (RGPD; the GAR asks it of every resource):
`export_user` gathers everything Parcours holds about one account, `erase_user` deletes it.

Erasing deletes the account, its sign-in methods, sessions, memberships, participations,
answers, knowledge and the comments of its challenge reports (the database cascades or the
code deletes); the school's learner list keeps its line (the school's own data), unlinked, and
the audit log keeps the copy of an administrator's name it is made to keep. Refused while the
account owns or created campaigns (their ownership must be handed over first; a campaign keeps
its creator) or is the last administrator of an organization.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from campaigns.shared.errors import ServiceError
from campaigns.shared.models import (
    Answer,
    Assessment,
    AuthenticationMethod,
    Campaign,
    ChallengeReport,
    KnowledgeElement,
    Learner,
    Membership,
    MembershipRole,
    Organization,
    Participation,
    User,
)
from config.db import execute_dml


def _when(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_user(session: Session, user: User) -> dict[str, Any]:
    """Everything Parcours holds about `user`, as plain JSON-ready data."""
    methods = session.scalars(
        select(AuthenticationMethod).where(AuthenticationMethod.user_id == user.id)
    )
    memberships = session.execute(
        select(Membership, Organization)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.user_id == user.id)
    )
    learners = session.execute(
        select(Learner, Organization)
        .join(Organization, Organization.id == Learner.organization_id)
        .where(Learner.user_id == user.id)
    )
    participations = session.execute(
        select(Participation, Campaign)
        .join(Campaign, Campaign.id == Participation.campaign_id)
        .where(Participation.user_id == user.id)
        .order_by(Participation.created_at)
    )
    answers = session.execute(
        select(Answer, Assessment.participation_id)
        .join(Assessment, Assessment.id == Answer.assessment_id)
        .where(Assessment.user_id == user.id)
        .order_by(Answer.created_at, Answer.id)
    )
    reports = session.scalars(
        select(ChallengeReport)
        .where(ChallengeReport.user_id == user.id)
        .order_by(ChallengeReport.created_at, ChallengeReport.id)
    )
    knowledge = session.scalars(
        select(KnowledgeElement)
        .where(KnowledgeElement.user_id == user.id)
        .order_by(KnowledgeElement.created_at, KnowledgeElement.id)
    )
    return {
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
        "account": {
            "id": user.id,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
            "email_verified_at": _when(user.email_verified_at),
            "username": user.username,
            "locale": user.locale,
            "terms_accepted_at": _when(user.cgu_accepted_at),
            "created_at": _when(user.created_at),
            "last_signed_in_at": _when(user.last_signed_in_at),
        },
        "sign_in_methods": [
            {
                "provider": m.provider.value,
                "issuer": m.issuer,
                "external_id": m.external_id,
                "attributes": m.attributes,
                "last_used_at": _when(m.last_used_at),
            }
            for m in methods
        ],
        "memberships": [
            {"organization": o.name, "uai": o.uai, "role": m.role.value} for m, o in memberships
        ],
        "learner_lists": [
            {
                "organization": o.name,
                "uai": o.uai,
                "first_name": learner.first_name,
                "last_name": learner.last_name,
                "birthdate": _when(learner.birthdate),
                "division": learner.division,
                "national_student_id": learner.national_student_id,
            }
            for learner, o in learners
        ],
        "participations": [
            {
                "id": p.id,
                "campaign": c.title or c.name,
                "code": c.code,
                "status": p.status.value,
                "created_at": _when(p.created_at),
                "shared_at": _when(p.shared_at),
                "mastery_rate": str(p.mastery_rate) if p.mastery_rate is not None else None,
                "pix_score": p.pix_score,
                "identifier": p.participant_external_id,
                "shared_results": p.shared_results,
                "deleted_at": _when(p.deleted_at),
            }
            for p, c in participations
        ],
        "answers": [
            {
                "participation_id": participation_id,
                "challenge_id": a.challenge_id,
                "value": a.value,
                "result": a.result.value,
                "answered_at": _when(a.created_at),
            }
            for a, participation_id in answers
        ],
        "knowledge": [
            {
                "skill_id": k.skill_id,
                "status": k.status.value,
                "source": k.source.value,
                "earned_pix": str(k.earned_pix),
                "at": _when(k.created_at),
            }
            for k in knowledge
        ],
        "challenge_reports": [
            {
                "challenge_id": r.challenge_id,
                "category": r.category,
                "comment": r.comment,
                "at": _when(r.created_at),
            }
            for r in reports
        ],
    }


def erase_user(session: Session, user: User) -> None:
    """Delete `user` and everything that is theirs (see the module docstring)."""
    owned = session.scalar(
        select(func.count())
        .select_from(Campaign)
        .where((Campaign.owner_id == user.id) | (Campaign.creator_id == user.id))
    )
    if owned:
        raise ServiceError(
            f"the account owns or created {owned} campaign(s): hand them over first",
            code="owns_campaigns",
        )
    admin_of = session.scalars(
        select(Membership.organization_id).where(
            Membership.user_id == user.id, Membership.role == MembershipRole.ADMIN
        )
    ).all()
    for organization_id in admin_of:
        admins = session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.organization_id == organization_id,
                Membership.role == MembershipRole.ADMIN,
            )
        )
        if admins == 1:
            raise ServiceError(
                "the account is the last administrator of an organization", code="last_admin"
            )
    execute_dml(session, delete(ChallengeReport).where(ChallengeReport.user_id == user.id))
    # The database's ON DELETE rules do the rest (cascade, learner lines unlinked).
    execute_dml(session, delete(User).where(User.id == user.id))
    session.expunge(user)
