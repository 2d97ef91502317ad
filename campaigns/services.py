"""The campaigns package's public API: functions taking the session first, flushing, never
committing. Callers (views, commands) own the transaction."""

from __future__ import annotations

import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaigns.models import (
    AuthenticationMethod,
    AuthenticationProvider,
    Campaign,
    CampaignSkill,
    CampaignType,
    Learner,
    Membership,
    MembershipRole,
    Organization,
    OrganizationType,
    TargetProfile,
    User,
)
from config.db import utcnow
from engine.selection import DEFAULT_SELECTOR, SELECTORS

UAI_PATTERN = re.compile(r"^\d{7}[A-Z]$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PASSWORD_MIN_LENGTH = 8
NAME_MAX_LENGTH = 255

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the login is unknown, so both cases take the same time.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


class ServiceError(Exception):
    """A request the domain refuses. The message is one line for operators (commands); `code`
    lets views show their own translated text."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class InvalidInput(ServiceError):
    pass


class AlreadyExists(ServiceError):
    pass


class EmailNotProven(ServiceError):
    """The account's e-mail address is not proven: it may not receive a role or a link."""

    def __init__(self) -> None:
        super().__init__("the account's e-mail address is not confirmed", code="unproven")


# -- people -------------------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    email = raw.strip().lower()
    if len(email) > 254 or len(email.split("@", 1)[0]) > 64 or not EMAIL_PATTERN.match(email):
        raise InvalidInput(f"invalid e-mail address: {raw.strip()!r}")
    return email


def check_password_strength(password: str) -> None:
    if (
        len(password) < PASSWORD_MIN_LENGTH
        or not re.search(r"[a-z]", password)
        or not re.search(r"[A-Z]", password)
        or not re.search(r"\d", password)
    ):
        raise InvalidInput(
            "the password needs at least 8 characters with a lower-case letter, "
            "an upper-case letter and a digit",
            code="weak",
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def generate_password() -> str:
    """A random password that satisfies `check_password_strength`."""
    while True:
        candidate = secrets.token_urlsafe(12)
        try:
            check_password_strength(candidate)
        except InvalidInput:
            continue
        return candidate


def find_user_by_login(session: Session, login: str) -> User | None:
    login = login.strip().lower()
    if not login:
        return None
    return session.scalars(
        select(User).where(or_(User.email == login, User.username == login))
    ).first()


def set_password(
    session: Session, user: User, password: str, *, must_change: bool = False
) -> AuthenticationMethod:
    method = _password_method(session, user)
    if method is None:
        method = AuthenticationMethod(user_id=user.id, provider=AuthenticationProvider.PASSWORD)
        session.add(method)
    method.password_hash = hash_password(password)
    method.must_change_password = must_change
    session.flush()
    return method


def create_user(
    session: Session,
    *,
    first_name: str,
    last_name: str,
    email: str | None = None,
    username: str | None = None,
    password: str | None = None,
) -> User:
    first_name, last_name = first_name.strip(), last_name.strip()
    if not first_name or not last_name:
        raise InvalidInput("first name and last name are required")
    if password is not None:
        check_password_strength(password)
    if len(first_name) > NAME_MAX_LENGTH or len(last_name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"names are limited to {NAME_MAX_LENGTH} characters")
    user = User(
        first_name=first_name,
        last_name=last_name,
        email=normalize_email(email) if email else None,
        username=username.strip().lower() if username else None,
    )
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise AlreadyExists("an account already uses this e-mail address or username") from None
    if password is not None:
        set_password(session, user, password)
    return user


def require_proven(user: User) -> None:
    """Refuse a role, a learner link or an external identity link to an account whose e-mail
    address its owner has not proven (`accounts`): someone may have signed up with an address
    that is not theirs. Accounts without an e-mail (an identifiant the school made) have
    nothing to prove."""
    if user.email is not None and user.email_verified_at is None:
        raise EmailNotProven()


def link_learner(session: Session, learner: Learner, user: User) -> None:
    """Attach `user` to the school's `learner` (one user per learner, one learner per user in a
    school: the database refuses a second one)."""
    require_proven(user)
    learner.user_id = user.id
    session.flush()


def _password_method(session: Session, user: User) -> AuthenticationMethod | None:
    return session.scalars(
        select(AuthenticationMethod).where(
            AuthenticationMethod.user_id == user.id,
            AuthenticationMethod.provider == AuthenticationProvider.PASSWORD,
        )
    ).one_or_none()


def must_change_password(session: Session, user: User) -> bool:
    method = _password_method(session, user)
    return method is not None and method.must_change_password


def change_password(session: Session, user: User, *, current: str, new: str) -> None:
    """Replace the user's password after checking the current one (the caller ends the user's
    other sessions: `accounts.revoke_sessions`)."""
    method = _password_method(session, user)
    if method is None or method.password_hash is None:
        raise InvalidInput("this account has no password", code="wrong_current")
    try:
        _hasher.verify(method.password_hash, current)
    except (VerificationError, InvalidHashError):
        raise InvalidInput("the current password is wrong", code="wrong_current") from None
    if new == current:
        raise InvalidInput("the new password equals the current one", code="unchanged")
    check_password_strength(new)
    set_password(session, user, new)


def authenticate(session: Session, login: str, password: str) -> User | None:
    """The user whose login and password match, or None (in the same time either way)."""
    user = find_user_by_login(session, login)
    method = _password_method(session, user) if user is not None else None
    stored = method.password_hash if method is not None and method.password_hash else None
    try:
        _hasher.verify(stored or _UNKNOWN_USER_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or method is None or stored is None:
        return None
    if _hasher.check_needs_rehash(stored):
        method.password_hash = hash_password(password)
    now = utcnow()
    method.last_used_at = now
    user.last_signed_in_at = now
    session.flush()
    return user


# -- organizations ------------------------------------------------------------------------------


def normalize_uai(raw: str) -> str:
    uai = raw.strip().upper()
    if not UAI_PATTERN.match(uai):
        raise InvalidInput(f"invalid UAI {raw.strip()!r}: expected 7 digits and a letter")
    return uai


def _organization_fields(
    session: Session,
    *,
    name: str,
    type: OrganizationType,
    uai: str | None,
    excluding: int | None = None,
) -> tuple[str, str | None]:
    """The organization's name and UAI as stored, checked against the rules (name required,
    UAI well formed and only for schools) and against the other organizations (a UAI, or the name
    of an organization without one, is taken once). `code` names the field at fault."""
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("the organization name is required", code="name")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(
            f"the organization name is limited to {NAME_MAX_LENGTH} characters", code="name"
        )
    if uai is not None and uai.strip():
        if type is not OrganizationType.SCO:
            raise InvalidInput("only schools (type SCO) have a UAI", code="uai_not_school")
        try:
            uai = normalize_uai(uai)
        except InvalidInput as error:
            raise InvalidInput(str(error), code="uai") from None
    else:
        uai = None

    duplicate = (
        select(Organization.id).where(Organization.uai == uai)
        if uai
        else select(Organization.id).where(Organization.uai.is_(None), Organization.name == name)
    )
    if excluding is not None:
        duplicate = duplicate.where(Organization.id != excluding)
    existing_id = session.scalar(duplicate)
    if existing_id is not None:
        what = f"UAI {uai}" if uai else f"name {name!r}"
        raise AlreadyExists(
            f"an organization with {what} already exists (id {existing_id})",
            code="duplicate_uai" if uai else "duplicate_name",
        )
    return name, uai


def create_organization(
    session: Session, *, name: str, type: OrganizationType, uai: str | None = None
) -> Organization:
    """Create an organization, with nobody in it: its first admin joins by accepting an
    invitation (`team.add_member`), as every member does."""
    name, uai = _organization_fields(session, name=name, type=type, uai=uai)
    organization = Organization(name=name, type=type, uai=uai)
    try:
        with session.begin_nested():
            session.add(organization)
    except IntegrityError:  # a concurrent creation won the race
        what = f"UAI {uai}" if uai else f"name {name!r}"
        raise AlreadyExists(
            f"an organization with {what} already exists",
            code="duplicate_uai" if uai else "duplicate_name",
        ) from None
    return organization


def update_organization(
    session: Session,
    organization: Organization,
    *,
    name: str,
    type: OrganizationType,
    uai: str | None,
) -> dict[str, list[str | None]]:
    """Change the organization's name, type and UAI under the rules of `create_organization`;
    what changed, as {field: [before, after]} (empty when nothing did)."""
    name, uai = _organization_fields(
        session, name=name, type=type, uai=uai, excluding=organization.id
    )
    before = {"name": organization.name, "type": organization.type.value, "uai": organization.uai}
    after = {"name": name, "type": type.value, "uai": uai}
    changes = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    if not changes:
        return {}
    try:
        with session.begin_nested():
            organization.name, organization.type, organization.uai = name, type, uai
            session.flush()
    except IntegrityError:  # a concurrent change took the UAI or the name meanwhile
        session.refresh(organization)
        raise AlreadyExists(
            "an organization with this UAI or name already exists",
            code="duplicate_uai" if uai else "duplicate_name",
        ) from None
    return changes


def organizations_of(session: Session, user: User) -> list[tuple[Organization, MembershipRole]]:
    rows = session.execute(
        select(Organization, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user.id, Organization.archived_at.is_(None))
        .order_by(Organization.name)
    )
    return [(organization, role) for organization, role in rows]


# -- campaigns ----------------------------------------------------------------------------------

CODE_LETTERS = "ABCDEFGHJKMNPQRSTUVWXYZ"  # no I, L, O: never mistaken for 1 or 0
CODE_DIGITS = "23456789"  # no 0, 1
LANDING_TEXT_MAX = 5000


def generate_code() -> str:
    """6 letters and 3 digits from an alphabet a student cannot misread."""
    letters = "".join(secrets.choice(CODE_LETTERS) for _ in range(6))
    return letters + "".join(secrets.choice(CODE_DIGITS) for _ in range(3))


def normalize_code(raw: str) -> str | None:
    """A typed code in canonical form, or None when it cannot be a campaign code."""
    code = "".join(raw.split()).upper()
    if len(code) != 9 or not all(c in CODE_LETTERS for c in code[:6]):
        return None
    if not all(c in CODE_DIGITS for c in code[6:]):
        return None
    return code


def create_campaign(
    session: Session,
    *,
    organization: Organization,
    creator: User,
    name: str,
    type: CampaignType,
    target_profile: TargetProfile | None = None,
    title: str | None = None,
    landing_text: str | None = None,
    external_id_label: str | None = None,
    multiple_sendings: bool = False,
    owner: User | None = None,
    selector: str = DEFAULT_SELECTOR,
) -> Campaign:
    """Create a campaign with a fresh code; an assessment campaign freezes its skills now."""
    from campaigns.content import active_pack  # content imports services: keep the cycle lazy

    name = " ".join(name.split())
    if not name:
        raise InvalidInput("the campaign name is required", code="name")
    if landing_text and len(landing_text) > LANDING_TEXT_MAX:
        raise InvalidInput("the landing text is limited to 5000 characters", code="landing_text")
    if (type is CampaignType.ASSESSMENT) != (target_profile is not None):
        raise InvalidInput(
            "an assessment campaign needs a target profile; a profiles collection has none",
            code="target_profile",
        )
    if selector not in SELECTORS:
        raise InvalidInput(f"unknown selector {selector!r}", code="selector")
    pack = active_pack(session)
    campaign = Campaign(
        organization_id=organization.id,
        type=type,
        name=name,
        title=(title or "").strip() or None,
        landing_text=(landing_text or "").strip() or None,
        external_id_label=(external_id_label or "").strip() or None,
        multiple_sendings=multiple_sendings,
        target_profile_id=target_profile.id if target_profile else None,
        owner_id=(owner or creator).id,
        creator_id=creator.id,
        content_version=f"{pack.id}@{pack.version}",
        selector=selector,
    )
    if target_profile is not None:
        skills = pack.profile_skills((t.tube_id, t.level) for t in target_profile.tubes)
        campaign.skills = [CampaignSkill(skill_id=s.id) for s in skills]
    for _ in range(20):
        campaign.code = generate_code()
        try:
            with session.begin_nested():
                session.add(campaign)
            return campaign
        except IntegrityError:  # the code was taken meanwhile: draw another
            if campaign in session:
                session.expunge(campaign)
            continue
    raise ServiceError("could not find a free campaign code")
