"""The student journey: ways in, sign up, rules, questions, checkpoints, results, profile.

Views parse the request, call a journey service, commit, and render or redirect. Every page
works without JavaScript and inside an LMS iframe.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.accounts import links, users
from campaigns.accounts.auth import (
    anonymous_like_signed_in,
    current_user,
    is_signed_in,
    load_signed_in_with,
    login_required,
    over_limit,
    remember_pending,
    safe_next,
    sign_in,
    take_pending,
)
from campaigns.accounts.messages import weak_password
from campaigns.accounts.sessions import ReadSignedIn
from campaigns.journey import answering
from campaigns.journey import services as journey
from campaigns.shared import codes
from campaigns.shared.errors import AlreadyExists, InvalidInput
from campaigns.shared.events import ListenerFailed
from campaigns.shared.models import (
    NAME_MAX_LENGTH,
    AnswerResult,
    Assessment,
    AssessmentState,
    Campaign,
    CampaignType,
    Organization,
    Participation,
    ParticipationStatus,
    User,
)
from campaigns.shared.organizations import sign_in_entry
from config.db import end_read, get_session, read_connection, utcnow
from config.numbers import parse_int
from config.ratelimit import Limit, exceeded
from config.security import frameable
from engine.answers import Result, expected_answer
from engine.content import Challenge, ChallengeType
from engine.scoring import CHECKPOINT_EVERY, rounded_percent

blueprint = Blueprint("journey", __name__, template_folder="templates")
T = TypeVar("T")

# Unknown campaign codes: per address (a school is often one address: a higher ceiling) and,
# for a signed-in visitor, per account.
CODE_GUESSES = Limit("campaign-code:address", max_hits=100, window=dt.timedelta(minutes=10))
CODE_GUESSES_PER_USER = Limit("campaign-code:user", max_hits=30, window=dt.timedelta(minutes=10))
SIGN_UPS = Limit("sign-up:address", max_hits=30, window=dt.timedelta(hours=1))
KNOWN_ADDRESS_MAILS = Limit("sign-up:known-email", max_hits=3, window=dt.timedelta(hours=1))
REPORTS = Limit("report:user", max_hits=20, window=dt.timedelta(hours=1))
RULES = 4
REPORT_CATEGORIES = ("consigne", "reponse", "affichage", "autre")
PROPOSALS_MAX = 999  # numbers of a question's proposals read from answers: a few digits


# -- helpers --------------------------------------------------------------------------------------


@blueprint.errorhandler(journey.ServiceError)
def _refused(error: journey.ServiceError) -> tuple[str, int]:
    if isinstance(error, ListenerFailed):
        status = 503
        message = _(
            "Cette action n’a pas pu aboutir. Rien n’a été modifié : réessayez dans un instant."
        )
    elif isinstance(error, journey.ContentUnavailable):
        status, message = 503, _("Le contenu de ce parcours est momentanément indisponible.")
    elif isinstance(error, journey.NotAllowed) and error.code == "archived":
        status, message = 410, _("Ce parcours a été archivé par son organisateur.")
    elif isinstance(error, journey.NotAllowed) and error.code == "learner_taken":
        status = 409
        message = _(
            "Vous participez déjà à ce parcours avec un autre compte. "
            "Demandez à votre enseignant de vous aider."
        )
    elif isinstance(error, journey.NotFound):
        status, message = 404, _("Cette page n’existe pas.")
    else:
        status, message = 400, _("Cette action n’est pas possible ici.")
    get_session().rollback()
    return render_template("error.html", status=status, message=message), status


def _guess_limits() -> list[tuple[Limit, str]]:
    """The counters a code guess counts against: the address, and the account if signed in."""
    limits = [(CODE_GUESSES, request.remote_addr or "unknown")]
    user = current_user()
    if user is not None:
        limits.append((CODE_GUESSES_PER_USER, str(user.id)))
    return limits


def _out_of_guesses() -> bool:
    """Whether this visitor used up a guess allowance (a read: counts nothing)."""
    secret = current_app.config["SECRET_KEY"]
    return exceeded(get_session(), _guess_limits(), secret=secret)


def _count_miss() -> bool:
    """Count an unknown code (committed at once); True when an allowance is now used up."""
    over = [over_limit(limit, key) for limit, key in _guess_limits()]
    return any(over)


def _guarded(code: str, find: Callable[[str], T | None], *, reveals: bool = True) -> T:
    """What `find` gives for a code from the URL, counted as a guess when it gives nothing.

    Every route that takes a code goes through here, and every miss counts. Where the answer
    tells whether a code exists (`reveals`: landing page, start, rules…), a visitor out of
    guesses is refused before any lookup, so the answer tells nothing. The pages of a test
    under way find only the student's own participation (an unknown code and someone else's
    campaign both answer 404): they count misses but never refuse a student their own test,
    whatever others behind the same address guessed. A code that exists writes nothing."""
    if reveals and _out_of_guesses():
        abort(429)
    normalized = codes.normalize_code(code)
    found = find(normalized) if normalized else None
    if found is None:
        abort(429 if _count_miss() else 404)
    return found


def _find_code(code: str) -> Campaign:
    return _guarded(code, lambda normalized: journey.campaign_by_code(get_session(), normalized))


def _user() -> User:
    user = current_user()
    if user is None:
        abort(401)
    return user


def _place(code: str) -> journey.Place:
    """The campaign of this code with the signed-in user's live participation in it (404 when
    they have none: nobody reaches another student's test)."""
    user = _user()

    def mine(normalized: str) -> journey.Place | None:
        found = journey.place(get_session(), normalized, user)
        return found if found is not None and found.participation is not None else None

    return _guarded(code, mine, reveals=False)


def _load_spot(session: Session, token: str) -> ReadSignedIn | None:
    """The signed-in session of a test page, read with the page's campaign, participation and
    test in one statement (`answering.load_spot`; the spot is kept in `g`). A question or
    checkpoint page (GET) reads outside any transaction: most show what is stored."""
    code = codes.normalize_code(str((request.view_args or {}).get("code", ""))) or ""
    connection = read_connection() if request.method == "GET" else session.connection()
    found = answering.load_spot(session, connection, token, code)
    if found is None:
        return None
    g.spot = found[1]
    return found[0]


for _endpoint in ("journey.question", "journey.checkpoint"):
    load_signed_in_with(_endpoint, _load_spot)


def _spot() -> answering.Place:
    """The spot of this test page (`_load_spot`): the signed-in user's live participation in
    the campaign of the code, 404 when they have none (nobody reaches another student's test;
    a miss counts as a code guess, as `_guarded` does)."""
    if not is_signed_in():
        abort(401)
    place = answering.place_of(g.get("spot"))
    if place is None:
        end_read()
        abort(429 if _count_miss() else 404)
    return place


def _mine(code: str) -> tuple[Campaign, Participation]:
    found = _place(code)
    if found.participation is None:  # (never: _place checked it)
        abort(404)
    return found.campaign, found.participation


def _participation(campaign: Campaign) -> Participation:
    participation = journey.live_participation(get_session(), campaign, _user())
    if participation is None:
        abort(404)
    return participation


def _assessment(participation: Participation) -> Assessment | None:
    return (
        get_session()
        .scalars(
            select(Assessment)
            .where(Assessment.participation_id == participation.id)
            .order_by(Assessment.id.desc())
            .limit(1)
        )
        .first()
    )


def _title(campaign: Campaign | answering.CampaignRef) -> str:
    return campaign.title or _("Parcours")


# -- ways in -------------------------------------------------------------------------------------


@blueprint.route("/campagnes", methods=["GET", "POST"], endpoint="enter_code")
@frameable
def enter_code() -> str | Response | tuple[str, int]:
    if request.method == "GET":
        return render_template("journey/enter_code.html", code="")
    session = get_session()
    typed = request.form.get("code", "")[:32]
    too_many = _("Trop de codes essayés. Réessayez dans quelques minutes.")
    if _out_of_guesses():
        flash(too_many, "error")
        return render_template("journey/enter_code.html", code=typed), 429
    code = codes.normalize_code(typed)
    campaign = journey.campaign_by_code(session, code) if code else None
    if campaign is None:
        if _count_miss():
            flash(too_many, "error")
            return render_template("journey/enter_code.html", code=typed), 429
        flash(
            _("Ce code ne correspond à aucun parcours. Vérifiez-le auprès de votre enseignant."),
            "error",
        )
        return render_template("journey/enter_code.html", code=typed), 400
    return redirect(url_for("journey.landing", code=campaign.code))


@blueprint.get("/campagnes/<code>", endpoint="landing")
@frameable
def landing(code: str) -> str | Response | tuple[str, int]:
    campaign = _find_code(code)
    organization = get_session().get(Organization, campaign.organization_id)
    if campaign.archived_at is not None or organization is None or organization.archived_at:
        return render_template("journey/archived.html", campaign=campaign), 410
    user = current_user()
    if user is not None and take_pending(_start_action(campaign)):
        # Back from signing up or in after "Je commence": on into the campaign, no second press.
        return redirect(_entered(campaign, user))
    participation = journey.live_participation(get_session(), campaign, user) if user else None
    # A school served by the GAR: a visitor is pointed to their ENT first (no account to make).
    ent = (
        sign_in_entry(get_session(), organization, request.path)
        if organization.uses_gar and user is None
        else None
    )
    return render_template(
        "journey/landing.html",
        campaign=campaign,
        organization=organization,
        participation=participation,
        title=_title(campaign),
        ent=ent,
    )


@blueprint.post("/campagnes/<code>/commencer", endpoint="start")
@frameable
def start(code: str) -> Response:
    """ "Je commence". A visitor signs up (or in) first, then comes back to the landing page,
    which takes them on into the campaign (`remember_pending`)."""
    campaign = _find_code(code)
    journey.ensure_open(get_session(), campaign)
    user = current_user()
    if user is None:
        landing_page = url_for("journey.landing", code=campaign.code)
        remember_pending(_start_action(campaign), landing_page)
        return redirect(url_for("journey.sign_up", next=landing_page))
    take_pending(_start_action(campaign))  # done now
    return redirect(_entered(campaign, user))


def _start_action(campaign: Campaign) -> str:
    return f"start:{campaign.code}"


def _entered(campaign: Campaign, user: User) -> str:
    """Enter the campaign ("Je commence": join it if needed, committed); the page it leads to
    (an identifier to give, the rules, the current question, the results)."""
    session = get_session()
    _, page = journey.enter(session, campaign, user)
    session.commit()
    return page_url(campaign.code, page)


def page_url(code: str, page: journey.NextPage) -> str:
    """The address of the journey's `page` in the campaign of `code`."""
    if page is journey.NextPage.RULES:
        return url_for("journey.rules", code=code, page=1)
    return url_for(f"journey.{page.value}", code=code)


@blueprint.route("/campagnes/<code>/identifiant", methods=["GET", "POST"], endpoint="external_id")
@frameable
@login_required
def external_id(code: str) -> str | Response | tuple[str, int]:
    campaign = _find_code(code)
    if not campaign.external_id_label:
        return redirect(url_for("journey.landing", code=campaign.code))
    if request.method == "GET":
        return render_template("journey/external_id.html", campaign=campaign, value="")
    value = request.form.get("external_id", "").strip()[:255]
    if not value:
        flash(_("Ce champ est obligatoire."), "error")
        return render_template("journey/external_id.html", campaign=campaign, value=value), 400
    session = get_session()
    user = _user()
    first = not journey.has_participated(session, user)
    participation = journey.join(session, campaign, user, external_id=value)
    session.commit()
    return redirect(
        page_url(campaign.code, journey.next_step(campaign, participation, first=first))
    )


@blueprint.get("/campagnes/<code>/regles/<int:page>", endpoint="rules")
@frameable
@login_required
def rules(code: str, page: int) -> str:
    campaign = _find_code(code)
    if not 1 <= page <= RULES:
        abort(404)
    return render_template("journey/rules.html", campaign=campaign, page=page, pages=RULES)


# -- sign up ------------------------------------------------------------------------------------


@blueprint.route("/inscription", methods=["GET", "POST"], endpoint="sign_up")
@frameable
def sign_up() -> str | Response | tuple[str, int]:
    next_url = safe_next(request.values.get("next"), url_for("journey.my_campaigns"))
    form = {k: request.form.get(k, "").strip()[:320] for k in ("first_name", "last_name", "email")}
    if request.method == "GET":
        if current_user() is not None:
            return redirect(next_url)
        return render_template("journey/sign_up.html", next_url=next_url, form=form, errors={})
    if over_limit(SIGN_UPS, request.remote_addr or "unknown"):
        flash(_("Trop d’inscriptions depuis cette adresse. Réessayez plus tard."), "error")
        return render_template("journey/sign_up.html", next_url=next_url, form=form, errors={}), 429
    errors: dict[str, str] = {}
    for key in ("first_name", "last_name"):
        if len(form[key]) > NAME_MAX_LENGTH:
            errors[key] = _("255 caractères au plus.")
    if not form["first_name"]:
        errors["first_name"] = _("Votre prénom est obligatoire.")
    if not form["last_name"]:
        errors["last_name"] = _("Votre nom est obligatoire.")
    password = request.form.get("password", "")[:1024]
    try:
        users.normalize_email(form["email"])
    except InvalidInput:
        errors["email"] = _("Votre adresse e-mail n’est pas valide.")
    if users.password_faults(password):
        errors["password"] = weak_password(password)
    if request.form.get("cgu") != "on":
        errors["cgu"] = _("Vous devez accepter les conditions d’utilisation.")
    session = get_session()
    if errors:
        session.rollback()
        return render_template(
            "journey/sign_up.html", next_url=next_url, form=form, errors=errors
        ), 400
    return _signed_up(form, password, next_url)


def _signed_up(form: dict[str, str], password: str, next_url: str) -> Response:
    """Create the account, or tell the owner of an address that already has one by e-mail: the
    answer is the same either way (a redirect to `next_url` saying a link was mailed), so the
    form never tells whether an address has an account. A new account is signed in at once and
    can take campaigns; its address stays "à confirmer" until the mailed link is opened."""
    session = get_session()
    public_url = current_app.config["PARCOURS_SETTINGS"].public_url
    address = users.normalize_email(form["email"])
    existing = users.find_user_by_login(session, address)
    if existing is None:
        try:
            user = users.create_user(
                session,
                first_name=form["first_name"],
                last_name=form["last_name"],
                email=address,
                password=password,
            )
        except AlreadyExists:  # created meanwhile by a concurrent request
            session.rollback()
            existing = users.find_user_by_login(session, address)
        else:
            user.cgu_accepted_at = utcnow()
            links.send_confirmation(session, user, public_url)
            sign_in(user, then=next_url)
    if existing is not None:
        users.hash_password(password)  # the same work as a new account: same time
        if not over_limit(KNOWN_ADDRESS_MAILS, address):  # no mail bombing through this form
            links.send_already_registered(session, existing, public_url)
        anonymous_like_signed_in()  # the same cookie as a new account gets
    session.commit()
    flash(
        _(
            "Un e-mail a été envoyé à %(email)s : ouvrez le lien qu’il contient pour confirmer "
            "votre adresse.",
            email=address,
        ),
        "info",
    )
    return redirect(next_url)


# -- the test -----------------------------------------------------------------------------------


@blueprint.route("/campagnes/<code>/evaluation", methods=["GET", "POST"], endpoint="question")
@frameable
@login_required
def question(code: str) -> str | Response | tuple[str, int]:
    spot = _spot()
    campaign = spot.campaign
    session = get_session()
    if spot.participation_status is not ParticipationStatus.STARTED:
        if request.method == "POST" and journey.answered_last(
            session, spot.participation_id, request.form.get("challenge_id", "")[:64]
        ):
            # The answer that ended the test, sent again (a double click): where it led.
            return redirect(url_for("journey.checkpoint", code=campaign.code, final=1))
        return redirect(url_for("journey.results", code=campaign.code))
    test, fresh = spot.test, False
    if test is None:  # the first question of a test: open it
        end_read()
        participation = session.get(Participation, spot.participation_id)
        if participation is None:
            abort(404)
        assessment, fresh = journey.opened_assessment(session, participation)
        test = answering.Test.of(assessment)
    if request.method == "POST":
        if not campaign.is_open:
            raise journey.NotAllowed("this campaign is archived", code="archived")
        return _answer(campaign, test)
    pack = journey.campaign_content(session, campaign).pack
    challenge = pack.challenge_by_id.get(test.current_challenge_id or "")
    if challenge is None or (challenge.is_timed and test.asked_at is None):
        # A question to choose, or a clock to start: the one write a question page makes.
        end_read()
        challenge, test = answering.current_challenge(session, campaign, test, fresh=fresh)
        if challenge is not None:
            test = answering.start_clock(session, test, challenge)
        session.commit()
    if challenge is None:
        return redirect(url_for("journey.checkpoint", code=campaign.code, final=1))
    answered = spot.answer_count if spot.test is not None else 0
    remaining = None
    if challenge.timer is not None and test.asked_at is not None:
        deadline = test.asked_at + dt.timedelta(seconds=challenge.timer)
        remaining = max(0, math.ceil((deadline - utcnow()).total_seconds()))
    return render_template(
        "journey/question.html",
        campaign=campaign,
        title=_title(campaign),
        challenge=challenge,
        position=answered % CHECKPOINT_EVERY + 1,
        per_checkpoint=CHECKPOINT_EVERY,
        progress=test.progress,
        remaining=remaining,
        categories=REPORT_CATEGORIES,
        locale=pack.locale,
    )


def _answer(campaign: answering.CampaignRef, test: answering.Test) -> Response | tuple[str, int]:
    session = get_session()
    challenge_id = request.form.get("challenge_id", "")[:64]
    skipped = request.form.get("action") == "passer"
    challenge = journey.campaign_content(session, campaign).pack.challenge_by_id.get(challenge_id)
    if challenge is None:
        flash(
            _("Cette question n’est plus celle à laquelle répondre. Voici la question en cours."),
            "error",
        )
        return redirect(url_for("journey.question", code=campaign.code))
    value = "" if skipped else _form_value(challenge)
    if not skipped and not value:
        flash(_("Répondez à la question, ou choisissez « Je passe »."), "error")
        return redirect(url_for("journey.question", code=campaign.code))
    try:
        answered = answering.answer(
            session, campaign, test, challenge_id=challenge_id, value=value, skipped=skipped
        )
    except journey.NotCurrent:
        session.rollback()
        flash(
            _("Cette question n’est plus celle à laquelle répondre. Voici la question en cours."),
            "error",
        )
        return redirect(url_for("journey.question", code=campaign.code))
    session.commit()
    if answered.result is Result.TIMED_OUT:
        flash(_("Le temps imparti était écoulé : la réponse n’a pas été prise en compte."), "error")
    if answered.checkpoint:
        return redirect(
            url_for("journey.checkpoint", code=campaign.code, final=int(answered.finished))
        )
    return redirect(url_for("journey.question", code=campaign.code))


def _form_value(challenge: Challenge) -> str:
    if challenge.type is ChallengeType.QCM:
        answers = request.form.getlist("answer")
        ticked = (parse_int(v, None, low=0, high=PROPOSALS_MAX) for v in answers)
        return ",".join(str(number) for number in ticked if number is not None)
    if challenge.type is ChallengeType.QROCM:
        values = {f.name: request.form.get(f"field-{f.name}", "")[:500] for f in challenge.fields}
        return (
            json.dumps(values, ensure_ascii=False)
            if any(v.strip() for v in values.values())
            else ""
        )
    return request.form.get("answer", "")[:500].strip()


@blueprint.post("/campagnes/<code>/signalement", endpoint="report")
@frameable
@login_required
def report(code: str) -> Response:
    campaign, participation = _mine(code)
    assessment = _assessment(participation)
    if assessment is None:
        abort(404)
    challenge_id = request.form.get("challenge_id", "")
    if over_limit(REPORTS, str(_user().id)):
        abort(429)
    if challenge_id != assessment.current_challenge_id and not journey.was_answered(
        get_session(), assessment, challenge_id
    ):
        abort(400)
    category = request.form.get("category", "autre")
    if category not in REPORT_CATEGORIES:
        category = "autre"
    journey.report_problem(
        get_session(),
        assessment,
        _user(),
        challenge_id=challenge_id,
        category=category,
        comment=request.form.get("comment", ""),
    )
    get_session().commit()
    flash(_("Merci, votre signalement a été transmis à l’équipe."), "info")
    return redirect(url_for("journey.question", code=campaign.code))


@blueprint.get("/campagnes/<code>/checkpoint", endpoint="checkpoint")
@frameable
@login_required
def checkpoint(code: str) -> str:
    spot = _spot()
    campaign = spot.campaign
    latest = answering.latest_test(read_connection(), spot.participation_id)
    if latest is None:
        abort(404)
    pack = journey.campaign_content(get_session(), campaign).pack
    final = request.args.get("final") == "1" or latest.state is not AssessmentState.STARTED
    count = len(latest.answers)
    shown = latest.answers[-(count % CHECKPOINT_EVERY or CHECKPOINT_EVERY) :] if count else []
    items: list[dict[str, Any]] = []
    for answer in shown:
        challenge = pack.challenge_by_id.get(answer.challenge_id)
        if challenge is None:
            continue
        skill = pack.skill_by_id[challenge.skill_id]
        items.append(
            {
                "challenge": challenge,
                "answer": answer,
                "ok": answer.result is AnswerResult.OK,
                "verdict": _verdict(answer.result),
                "correct": _readable_answer(challenge),
                "given": _readable_value(challenge, answer.value),
                "tutorials": skill.tutorials,
                "hint": skill.hint,
            }
        )
    return render_template(
        "journey/checkpoint.html",
        campaign=campaign,
        title=_title(campaign),
        items=items,
        progress=100 if final else latest.progress,
        final=final,
        locale=pack.locale,
    )


def _verdict(result: AnswerResult) -> str:
    """How the checkpoint marks an answer: right, wrong, or passed (said in words: a skipped
    question is not a wrong answer)."""
    if result is AnswerResult.OK:
        return "ok"
    return "skipped" if result is AnswerResult.SKIPPED else "ko"


def _readable_answer(challenge: Challenge) -> str:
    if challenge.type in (ChallengeType.QCU, ChallengeType.QCM):
        return " ; ".join(challenge.proposals[i - 1] for i in challenge.solution_indexes)
    if challenge.type is ChallengeType.QROC:
        return challenge.solutions[0]
    values = json.loads(expected_answer(challenge))
    return " ; ".join(f"{f.label} : {values[f.name]}" for f in challenge.fields)


def _readable_value(challenge: Challenge, value: str) -> str:
    if not value:
        skipped: str = _("Vous avez passé cette question.")
        return skipped
    if challenge.type in (ChallengeType.QCU, ChallengeType.QCM):
        chosen = (parse_int(v.strip(), 0, high=PROPOSALS_MAX) for v in value.split(","))
        return " ; ".join(
            challenge.proposals[i - 1] for i in chosen if 1 <= i <= len(challenge.proposals)
        )
    if challenge.type is ChallengeType.QROCM:
        try:
            typed = json.loads(value)
        except json.JSONDecodeError:
            return value
        return " ; ".join(f"{f.label} : {typed.get(f.name, '')}" for f in challenge.fields)
    return value


# -- results ------------------------------------------------------------------------------------


@blueprint.get("/campagnes/<code>/resultats", endpoint="results")
@frameable
@login_required
def results(code: str) -> str | Response:
    campaign, participation = _mine(code)
    session = get_session()
    if campaign.type is CampaignType.PROFILES_COLLECTION:
        return redirect(url_for("journey.collection", code=campaign.code))
    if participation.status is ParticipationStatus.STARTED:
        return redirect(url_for("journey.question", code=campaign.code))
    pack = journey.campaign_content(session, campaign).pack
    if participation.status is ParticipationStatus.SHARED and participation.shared_results:
        # What the teacher received: the figures frozen when they were sent.
        frozen = participation.shared_results["competences"]
        parts = [(key, v["targeted"], v["validated"]) for key, v in sorted(frozen.items())]
        rate = float(participation.mastery_rate or 0)
    else:
        result, _profile = journey.participation_result(session, participation)
        parts = [(p.key, p.targeted, p.validated) for p in result.competences]
        rate = result.mastery_rate
    competences = [
        {
            "title": f"{key} {pack.competence_by_id[key].title}",
            "rate": rounded_percent(validated / targeted if targeted else 0),
            "validated": validated,
            "targeted": targeted,
        }
        for key, targeted, validated in parts
    ]
    return render_template(
        "journey/results.html",
        campaign=campaign,
        title=_title(campaign),
        participation=participation,
        rate=rounded_percent(rate),
        competences=competences,
        # Every question passed and nothing validated (knowledge from elsewhere may count).
        unmeasured=not any(validated for _, _, validated in parts)
        and journey.skipped_everything(session, participation),
        locale=pack.locale,
        can_improve=journey.can_improve(session, participation, campaign),
        can_retry=journey.can_retry(participation, campaign),
    )


@blueprint.post("/campagnes/<code>/envoi", endpoint="share")
@frameable
@login_required
def share(code: str) -> Response:
    campaign, participation = _mine(code)
    try:
        journey.share(get_session(), participation)
    except journey.NotAllowed as refused:
        if refused.code == "archived":
            raise
        return redirect(url_for("journey.question", code=campaign.code))
    get_session().commit()
    flash(_("Vos résultats ont été envoyés à l’organisateur du parcours."), "info")
    if campaign.type is CampaignType.PROFILES_COLLECTION:
        return redirect(url_for("journey.collection", code=campaign.code))
    return redirect(url_for("journey.results", code=campaign.code))


@blueprint.post("/campagnes/<code>/ameliorer", endpoint="improve")
@frameable
@login_required
def improve(code: str) -> Response:
    campaign, participation = _mine(code)
    journey.ensure_open(get_session(), campaign)
    try:
        journey.improve(get_session(), participation)
    except journey.NotAllowed:
        return redirect(url_for("journey.results", code=campaign.code))
    get_session().commit()
    return redirect(url_for("journey.question", code=campaign.code))


@blueprint.post("/campagnes/<code>/repasser", endpoint="retry")
@frameable
@login_required
def retry(code: str) -> Response:
    campaign, participation = _mine(code)
    try:
        new = journey.retry(
            get_session(), participation, campaign, reset=request.form.get("reset") == "1"
        )
    except journey.NotAllowed:
        flash(
            _("Vous pourrez repasser ce parcours 4 jours après l’envoi de vos résultats."), "error"
        )
        return redirect(url_for("journey.results", code=campaign.code))
    get_session().commit()
    return redirect(page_url(campaign.code, journey.next_step(campaign, new)))


# -- profile ------------------------------------------------------------------------------------


def _profile_cards(
    user: User, campaign: Campaign | None = None
) -> tuple[list[dict[str, Any]], int, int]:
    from campaigns.shared.content import active_pack
    from engine.scoring import profile

    session = get_session()
    pack = journey.campaign_content(session, campaign).pack if campaign else active_pack(session)
    scores = profile(pack, journey.user_knowledge(session, user.id))
    by_id = {c.competence_id: c for c in scores.competences}
    areas = [
        {
            "title": area.title,
            "competences": [
                {"id": c.id, "title": c.title, "level": by_id[c.id].level, "pix": by_id[c.id].pix}
                for c in area.competences
            ],
        }
        for area in pack.areas
    ]
    return areas, scores.pix, scores.max_pix


@blueprint.get("/mon-profil", endpoint="my_profile")
@frameable
@login_required
def my_profile() -> str:
    areas, pix, max_pix = _profile_cards(_user())
    return render_template("journey/profile.html", areas=areas, pix=pix, max_pix=max_pix)


@blueprint.get("/campagnes/<code>/profil", endpoint="collection")
@frameable
@login_required
def collection(code: str) -> str | Response:
    campaign = _find_code(code)
    if campaign.type is not CampaignType.PROFILES_COLLECTION:
        return redirect(url_for("journey.results", code=campaign.code))
    participation = _participation(campaign)
    areas, pix, max_pix = _profile_cards(_user(), campaign)
    return render_template(
        "journey/collection.html",
        campaign=campaign,
        title=_title(campaign),
        participation=participation,
        areas=areas,
        pix=pix,
        max_pix=max_pix,
    )


@blueprint.get("/mes-parcours", endpoint="my_campaigns")
@frameable
@login_required
def my_campaigns() -> str:
    found = get_session().execute(
        select(Participation, Campaign)
        .join(Campaign, Campaign.id == Participation.campaign_id)
        .where(
            Participation.user_id == _user().id,
            Participation.is_improved.is_(False),
            Participation.deleted_at.is_(None),
        )
        .order_by(Participation.created_at.desc())
    )
    rows = list(found)
    started = {campaign.id for _, campaign in rows}
    offered = [c for c in journey.school_campaigns(get_session(), _user()) if c.id not in started]
    return render_template("journey/my_campaigns.html", rows=rows, offered=offered, title_of=_title)
