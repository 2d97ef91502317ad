"""No crafted input gives a 500: every route of the URL map, tried with crafted values.

The routes are read from the application's URL map, so a route added later is covered without
editing this file. Each URL variable gets crafted values (numbers of thousands of digits, ids
above what the database's integers hold, long, unicode and NUL strings) while the others keep a
real value; each route also gets crafted query strings (url_for's `_method`, `_external`,
`_anchor`, `_scheme`, huge or non-ASCII page numbers, the route's own variable names) and each
POST crafted form fields. A visitor, a teacher (admin of a school with a campaign: the panel)
and a student (in the middle of that campaign's test: the journey) try them; any answer ≥ 500,
or any exception, fails.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import IntegerConverter

from campaigns.accounts import users
from campaigns.journey import services as journey
from campaigns.shared.models import Invitation, Learner, Membership, MembershipRole
from config.db import utcnow
from engine.content import ChallengeType
from sso import registry as sso_registry
from tests.journey_helpers import STUDENT_PASSWORD, assessment_campaign, student
from tests.lti_platform import FakePlatform
from tests.orga_helpers import TEACHER_PASSWORD, sign_in, take_test, world
from tests.saml_idp import FakeIdp

HUGE = "9" * 5000  # int() refuses more than 4,300 digits
CRAFTED_NUMBERS = (HUGE, str(2**63), str(2**64), str(2**31))
CRAFTED_STRINGS = (HUGE, "é😀中\u202e", "a\x00b", "%00", "９", "..")

# Crafted query strings, in rounds where each name comes once: url_for's own keywords, numbers
# where pages and ids are read (huge, above the database's integers, non-ASCII digits), and NUL
# characters (refused as a whole, so in a round of their own).
CRAFTED_QUERIES = (
    (
        ("_method", "DELETE"),
        ("_external", "1"),
        ("_anchor", "x"),
        ("_scheme", "javascript"),
        ("page", HUGE),
        ("size", HUGE),
        ("id", HUGE),
        ("par_page", HUGE),
        ("final", HUGE),
        ("acquis", HUGE),
        ("lang", "x" * 3000),
        ("q", "é😀" * 1000),
        ("division", "x" * 3000),
        ("next", "//evil.example/"),
    ),
    (
        ("page", "９"),
        ("size", str(2**64)),
        ("id", str(2**63)),
        ("par_page", str(2**64)),
        ("_external", "0"),
        ("_scheme", "https"),
    ),
    (("q", "\x00"), ("division", "a\x00b")),
)

# Every field a form of the app reads (a name no form reads is harmless).
FORM_FIELDS = (
    "page",
    "size",
    "id",
    "code",
    "login",
    "password",
    "current_password",
    "new_password",
    "first_name",
    "last_name",
    "email",
    "cgu",
    "external_id",
    "challenge_id",
    "action",
    "answer",
    "category",
    "comment",
    "reset",
    "accept",
    "next",
    "organization_id",
    "owner_id",
    "target_profile_id",
    "competence_id",
    "campaign_id",
    "participation_id",
    "learner_id",
    "membership_id",
    "invitation_id",
    "name",
    "type",
    "ask_external_id",
    "external_id_label",
    "title",
    "landing_text",
    "multiple_sendings",
    "role",
    "q",
    "division",
    "desactives",
    "par_page",
    "uai",
    "admin_email",
    "etat",
    "acteur",
    "objet",
    "objet_id",
    "SAMLResponse",
    "RelayState",
    "day",
    "month",
    "year",
    "t",
    "match_learners",
)
CRAFTED_FORMS = (HUGE, str(2**64), "９", "\x00")  # each form: every field holds this value
# Learner lists (sent with every form): a NUL character past the first 4 KB, huge values.
_LEARNERS = "Nom;Prénom;Date de naissance;Division;INE\n" + "".join(
    f"Nom{i};Léa;01/02/2011;3A;\n" for i in range(200)
)
CRAFTED_LEARNER_FILES = (
    f"{_LEARNERS}Nul\x00;Léa;01/02/2011;3A;\n".encode(),
    f"{_LEARNERS}{HUGE};{HUGE};01/02/2011;{HUGE};{HUGE}\n{HUGE};Léa;{HUGE};3A;\n".encode(),
)

_VARIABLE = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


@dataclass
class Walk:
    app: Flask
    client: FlaskClient
    real: dict[str, list[str]]  # a real value (or two) for each URL variable
    form: dict[str, str] = field(default_factory=dict)  # real values sent with crafted ones
    skip: tuple[str, ...] = ()  # endpoints (or their beginnings) this walk leaves to another
    only: tuple[str, ...] = ()  # when given, the endpoints (or their beginnings) walked
    failures: dict[tuple[str, str, str], list] = field(default_factory=dict)
    statuses: dict[str, set[int]] = field(default_factory=dict)
    requests: int = 0
    _endpoint: str = ""

    def rules(self) -> Iterator:
        for rule in sorted(self.app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
            if rule.endpoint.startswith(("static", *self.skip)):
                continue
            if self.only and not rule.endpoint.startswith(self.only):
                continue
            missing = set(rule.arguments) - set(self.real)
            assert not missing, f"{rule.rule}: add a real value for {missing} to this test"
            yield rule

    def open(self, method: str, path: str, query: Iterable[tuple[str, str]] = (), **kw) -> None:
        url = f"{path}?{urlencode(list(query))}" if query else path
        self.requests += 1
        try:
            response = self.client.open(url, method=method, **kw)
        except Exception as error:
            self._fail(method, url, f"{type(error).__name__}: {_short(str(error))[:160]}")
            return
        self.statuses.setdefault(self._endpoint, set()).add(response.status_code)
        if response.status_code >= 500:
            self._fail(method, url, str(response.status_code))

    def _fail(self, method: str, url: str, what: str) -> None:
        """One line per kind of failure and route, with the first request that showed it."""
        endpoint = self._endpoint
        key = (endpoint, method, what.split(":", 1)[0])
        if key in self.failures:
            self.failures[key][1] += 1
        else:
            self.failures[key] = [f"{method} {_short(url)[:200]} → {what}", 1]

    def run(self, methods: tuple[str, ...] = ("GET", "POST"), *, once: bool = False) -> None:
        """Every rule with each of `methods` (pages first, then actions), crafted in every way
        (or `once`: real path, crafted query string and form)."""
        rules = list(self.rules())
        for method in methods:
            for rule in rules:
                if method not in rule.methods:
                    continue
                if once:
                    self._endpoint = rule.endpoint
                    real = {name: self.real[name][0] for name in rule.arguments}
                    self._send(method, _path(rule, real), list(CRAFTED_QUERIES[0]), forms=1)
                else:
                    self._rule(rule, method)

    def _rule(self, rule, method: str) -> None:
        self._endpoint = rule.endpoint
        names = list(rule.arguments)
        real = {name: self.real[name][0] for name in names}
        for name in names:  # each variable crafted, the others real
            for value in CRAFTED_NUMBERS if _is_int(rule, name) else CRAFTED_STRINGS:
                self._send(method, _path(rule, {**real, name: value}), forms=1)
        # The route's own variable names in the query string too, as text and as numbers.
        queries = [
            [*CRAFTED_QUERIES[0], *((name, "x") for name in names)],
            [*CRAFTED_QUERIES[1], *((name, HUGE) for name in names)],
            list(CRAFTED_QUERIES[2]),
        ]
        path = _path(rule, real)
        self._send(method, path)
        for query in queries:
            self._send(method, path, query, forms=1)
        for name in names:  # the other real values (another campaign), crafted query included
            for other in self.real[name][1:]:
                self._send(method, _path(rule, {**real, name: other}), queries[0], forms=1)
        if method == "GET":  # url_for's keywords alone: each changes what the link would be
            for pair in CRAFTED_QUERIES[0][:4]:
                self._send(method, path, [pair])

    def _send(
        self, method: str, path: str, query: list[tuple[str, str]] | None = None, forms: int = 0
    ) -> None:
        if method == "GET":
            self.open("GET", path, query or ())
            return
        for n, crafted in enumerate(CRAFTED_FORMS[:forms] if forms else CRAFTED_FORMS):
            data: dict[str, object] = {name: crafted for name in FORM_FIELDS} | self.form
            data["answer"] = [crafted, crafted]  # a QCM sends one value per ticked box
            learners = CRAFTED_LEARNER_FILES[n % len(CRAFTED_LEARNER_FILES)]
            data["file"] = (io.BytesIO(learners), "eleves.csv")
            self.open("POST", path, query or (), data=data)


def _short(text: str) -> str:
    """Long runs of one character written as `9×5000`, so that messages stay readable."""
    return re.sub(r"(.)\1{15,}", lambda m: f"{m.group(1)}×{len(m.group(0))}", text)


def _is_int(rule, name: str) -> bool:
    return isinstance(rule._converters[name], IntegerConverter)


def _path(rule, values: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: quote(values[m.group(1)], safe=""), rule.rule)


@pytest.fixture
def scene(db_session):
    """A school (admin, member, campaigns, a learner, an invitation), a student half-way through
    the admin's campaign (on a multiple-choice question) and done with another one."""
    w = world(db_session)
    someone = student(db_session, 3)
    done = assessment_campaign(db_session, w.school, w.admin, key="tp-competence-1.1", name="Fini")
    take_test(db_session, done, someone, seed=1)
    participation = take_test(db_session, w.campaign, someone, answers=3, share=False)
    assessment = journey.open_assessment(db_session, participation)
    # The question on screen is a multiple-choice one, whose answer is a list of numbers.
    skills = journey.campaign_content(db_session, w.campaign).index.skills.values()
    current = next(
        c
        for skill in skills
        for c in skill.playable_challenges
        if c.type is ChallengeType.QCM and not journey.was_answered(db_session, assessment, c.id)
    )
    assessment.current_challenge_id, assessment.current_challenge_asked_at = current.id, None
    learner = Learner(
        organization_id=w.school.id, first_name="Zoé", last_name="Crafted", division="3E"
    )
    db_session.add(learner)
    membership = (
        db_session.query(Membership)
        .filter_by(organization_id=w.school.id, user_id=w.member.id)
        .one()
    )
    invitation = Invitation(
        organization_id=w.school.id,
        email="invite@example.org",
        role=MembershipRole.MEMBER,
        token_hash="1" * 64,
        expires_at=utcnow(),
    )
    db_session.add(invitation)
    platform = FakePlatform().register(db_session, w.school)
    idp = sso_registry.add_idp(
        db_session, slug="gar", metadata=FakeIdp().metadata(), organizations=[w.school]
    )
    db_session.commit()
    real = {
        "code": [w.campaign.code, done.code],
        "page": ["1"],
        "token": ["unknown-token"],
        "campaign_id": [str(w.campaign.id)],
        "participation_id": [str(participation.id)],
        "learner_id": [str(learner.id)],
        "membership_id": [str(membership.id)],
        "invitation_id": [str(invitation.id)],
        "organization_id": [str(w.school.id), str(w.other.id)],
        "item": ["1"],
        "filename": ["storage.js"],
        "platform_id": [str(platform.id)],
        "deployment_id": [str(platform.deployments[0].id)],
        "slug": ["gar", "inconnu"],
        "idp_id": [str(idp.id)],
    }
    form = {"challenge_id": current.id}
    return w, someone, real, form


@pytest.fixture(autouse=True)
def _no_rate_limits(monkeypatch):
    """The walk sends thousands of requests: rate limits would answer most of them 429 before
    any view reads its input. Lifted here (they have tests of their own)."""
    import campaigns.accounts.views
    import campaigns.journey.views
    import campaigns.orga.team_views
    import sso.views
    from config.ratelimit import Limit

    modules = (
        campaigns.accounts.views,
        campaigns.journey.views,
        campaigns.orga.team_views,
        sso.views,
    )
    for module in modules:
        for name, value in list(vars(module).items()):
            if isinstance(value, Limit):
                monkeypatch.setattr(module, name, Limit(value.name, 10**9, value.window))


def _report(walk: Walk, *, at_least: int = 200) -> None:
    assert walk.requests > at_least, "the walk tried too little"
    limited = sorted(e for e, seen in walk.statuses.items() if seen == {429})
    assert not limited, f"routes that only answered 429 (their views never ran): {limited}"
    lines = [
        f"{endpoint} ({count} requests), e.g. {example}"
        for (endpoint, _method, _kind), (example, count) in sorted(walk.failures.items())
    ]
    assert not lines, f"crafted requests that failed, out of {walk.requests}:\n" + "\n".join(lines)


def test_visitors_crafted_requests_never_fail(app, client, scene):
    _w, _someone, real, form = scene
    walk = Walk(app, client, real, form)
    walk.run(("POST",), once=True)  # with CSRF protection: refused before any view reads them
    app.config["WTF_CSRF_ENABLED"] = False
    walk.run()
    _report(walk)


def test_teachers_crafted_requests_never_fail(app, client, scene):
    w, _someone, real, form = scene
    sign_in(client, w.admin.email)
    app.config["WTF_CSRF_ENABLED"] = False
    # The journey is the student's walk; signing in, out or up the visitor's.
    walk = Walk(app, client, real, form, skip=("journey.", "campaigns.sign_"))
    walk.run()
    _report(walk)


def test_students_crafted_requests_never_fail(app, client, scene):
    _w, someone, real, form = scene
    sign_in(client, someone.email, STUDENT_PASSWORD)
    app.config["WTF_CSRF_ENABLED"] = False
    # The panel is the teacher's walk; signing in, out or up the visitor's, and the password
    # change the teacher's.
    skip = ("orga", "campaigns.sign_", "journey.sign_up", "campaigns.change_password")
    walk = Walk(app, client, real, form, skip=skip)
    walk.run()
    _report(walk)


def test_instance_admins_crafted_requests_never_fail(app, client, scene, db_session):
    from campaigns.shared.models import InstanceAdmin

    w, _someone, real, form = scene
    users.set_password(db_session, w.other_admin, TEACHER_PASSWORD)
    db_session.add(InstanceAdmin(user_id=w.other_admin.id, granted_at=utcnow()))
    db_session.commit()
    sign_in(client, w.other_admin.email)
    app.config["WTF_CSRF_ENABLED"] = False
    walk = Walk(app, client, real, form, only=("admin.", "lti_admin."))
    walk.run()
    assert 200 in walk.statuses["admin.journal"]  # an instance admin: the views ran
    _report(walk, at_least=150)


def test_the_language_link_keeps_the_query_string_as_a_query_string(client):
    """url_for's keywords in the query string stay mere query arguments of the same page."""
    query = "_external=1&_scheme=javascript&_anchor=x&_method=DELETE&next=/mon-compte&lang=fr"
    page = client.get(f"/connexion?{query}").get_data(as_text=True)
    links = re.findall(r'<a href="([^"]*)" hreflang="en"', page)
    assert links == [
        "/connexion?_external=1&amp;_scheme=javascript&amp;_anchor=x&amp;_method=DELETE"
        "&amp;next=/mon-compte&amp;lang=en"
    ]


def test_ids_beyond_the_databases_integers_are_not_found(app, client, scene):
    w, _someone, _real, _form = scene
    sign_in(client, w.admin.email)
    assert client.get(f"/orga/campagnes/{w.campaign.id}").status_code == 200
    for id_ in ("2147483648", "9" * 11, "0" * 10 + "1", "٣", "９"):
        assert client.get(f"/orga/campagnes/{id_}").status_code == 404, id_
