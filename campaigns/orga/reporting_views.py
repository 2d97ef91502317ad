"""A campaign's page: figures, activity, participants, a participant, collective results, analysis.

Every tab shares a header (`orga/campaign/_header.html`): name, type, code, direct link (hidden
for GAR schools: their students come through the ENT), participants and results received,
the tabs, "Modifier" (owner or admin) and the CSV export. The figures come from
`reporting`; charts are SVG drawn here on the server (`charts`), each with
the same figures in a table.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import format_date, format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from campaigns.orga import charts, reporting
from campaigns.orga.access import current_workspace, member_required, organization_campaign
from campaigns.shared.models import Campaign, CampaignType, ParticipationStatus
from config.db import get_session
from config.numbers import parse_int
from engine.scoring import rounded_percent

blueprint = Blueprint("orga_campaign", __name__, template_folder="templates")

STATUS_LABELS = {
    ParticipationStatus.STARTED: _l("En cours de test"),
    ParticipationStatus.TO_SHARE: _l("En attente d’envoi"),
    ParticipationStatus.SHARED: _l("Résultats reçus"),
}
TYPE_LABELS = {
    CampaignType.ASSESSMENT: _l("Évaluation"),
    CampaignType.PROFILES_COLLECTION: _l("Collecte de profils"),
}
RECOMMENDATION_LABELS = {
    "Très recommandé": _l("Très recommandé"),
    "Fortement recommandé": _l("Fortement recommandé"),
    "Recommandé": _l("Recommandé"),
    "Assez recommandé": _l("Assez recommandé"),
}


# Sections other packages add to a campaign's activity page (the LTI tool: the course members
# who have not started yet). Each returns HTML, or None when it has nothing to say.
CampaignSection = Callable[[Campaign], Markup | None]
_SECTIONS: list[CampaignSection] = []


def add_campaign_section(section: CampaignSection) -> None:
    if section not in _SECTIONS:
        _SECTIONS.append(section)


def _extra_sections(campaign: Campaign) -> list[Markup]:
    return [html for section in _SECTIONS if (html := section(campaign)) is not None]


def direct_link(campaign: Campaign) -> str:
    """The campaign's landing page on the public address (PUBLIC_URL), whatever host the
    teacher reached the panel by (an LMS iframe, an internal name…)."""
    public_url: str = current_app.config["PARCOURS_SETTINGS"].public_url
    return public_url.rstrip("/") + url_for("journey.landing", code=campaign.code)


def _page(template: str, campaign: Campaign, tab: str, **context: object) -> str:
    organization = current_workspace().organization
    return render_template(
        f"orga/campaign/{template}",
        section="campagnes",
        campaign=campaign,
        tab=tab,
        figures=context.pop("figures", None) or reporting.figures(get_session(), campaign),
        organization=organization,
        direct_link=None if organization.uses_gar else direct_link(campaign),
        type_label=TYPE_LABELS[campaign.type],
        status_labels=STATUS_LABELS,
        percent=lambda rate: rounded_percent(float(rate)),
        decimal=lambda value: format_decimal(value, format="#,##0.#"),
        is_collection=campaign.type is CampaignType.PROFILES_COLLECTION,
        **context,
    )


def _positive_int(name: str, default: int) -> int:
    return parse_int(request.args.get(name), default, high=999_999)


def _participants_text(count: float) -> str:
    return str(ngettext("%(num)s participant", "%(num)s participants", int(count)))


def _day_chart(days: list[reporting.Day]) -> Markup:
    """Participations started and results received per day: two series, side by side."""
    return charts.column_chart(
        [format_date(d.date, "dd/MM") for d in days],
        [
            charts.Series(
                _("Participations commencées"),
                [d.started for d in days],
                lambda n: ngettext(
                    "%(num)s participation commencée", "%(num)s participations commencées", int(n)
                ),
            ),
            charts.Series(
                _("Résultats reçus"),
                [d.shared for d in days],
                lambda n: ngettext("%(num)s résultat reçu", "%(num)s résultats reçus", int(n)),
            ),
        ],
        title=_("Participations commencées et résultats reçus par jour"),
        long_labels=[format_date(d.date, "long") for d in days],
        ident="chart-days",
    )


@blueprint.get("/orga/campagnes/<int:campaign_id>", endpoint="activity")
@member_required
def activity(campaign_id: int) -> str:
    campaign = organization_campaign(campaign_id)
    session = get_session()
    figures = reporting.figures(session, campaign)
    statuses = [
        (str(STATUS_LABELS[ParticipationStatus.STARTED]), figures.started),
        (str(STATUS_LABELS[ParticipationStatus.TO_SHARE]), figures.to_share),
        (str(STATUS_LABELS[ParticipationStatus.SHARED]), figures.shared),
    ]
    if campaign.type is CampaignType.PROFILES_COLLECTION:
        statuses = statuses[1:]  # nothing to test: participants start "to share"
    days = reporting.activity(session, campaign)
    return _page(
        "activity.html",
        campaign,
        "activity",
        figures=figures,
        statuses=statuses,
        status_chart=charts.bar_chart(
            statuses,
            title=_("Répartition des participants par statut"),
            value_text=_participants_text,
            ident="chart-statuses",
        ),
        days=days,
        day_chart=_day_chart(days) if days else None,
        extra_sections=_extra_sections(campaign),
    )


@blueprint.get("/orga/campagnes/<int:campaign_id>/participants", endpoint="participants")
@member_required
def participants(campaign_id: int) -> str:
    campaign = organization_campaign(campaign_id)
    session = get_session()
    classes = reporting.divisions(session, campaign)
    division = request.args.get("division") or None
    if division not in classes:
        division = None
    listing = reporting.participants_page(
        session,
        campaign,
        division=division,
        page=_positive_int("page", 1),
        per_page=_positive_int("par_page", reporting.DEFAULT_PER_PAGE),
    )
    return _page(
        "participants.html",
        campaign,
        "participants",
        listing=listing,
        divisions=classes,
        division=division,
        per_page_choices=reporting.PER_PAGE_CHOICES,
    )


@blueprint.get(
    "/orga/campagnes/<int:campaign_id>/participants/<int:participation_id>",
    endpoint="participant",
)
@member_required
def participant(campaign_id: int, participation_id: int) -> str:
    campaign = organization_campaign(campaign_id)
    detail = reporting.participant_detail(get_session(), campaign, participation_id)
    if detail is None:
        abort(404)
    return _page("participant.html", campaign, "participants", detail=detail)


@blueprint.get("/orga/campagnes/<int:campaign_id>/resultats", endpoint="results")
@member_required
def results(campaign_id: int) -> str:
    campaign = organization_campaign(campaign_id)
    collective = reporting.collective_results(get_session(), campaign)
    return _page(
        "results.html",
        campaign,
        "results",
        results=collective,
        bucket_chart=charts.bar_chart(
            collective.buckets,
            title=_("Participants par taux de maîtrise"),
            value_text=_participants_text,
            ident="chart-buckets",
        ),
    )


@blueprint.get("/orga/campagnes/<int:campaign_id>/analyse", endpoint="analysis")
@member_required
def analysis(campaign_id: int) -> str:
    campaign = organization_campaign(campaign_id)
    if campaign.type is not CampaignType.ASSESSMENT:
        abort(404)  # a profiles collection assesses nothing: there is nothing to analyse
    found = reporting.analysis(get_session(), campaign)
    return _page(
        "analysis.html",
        campaign,
        "analysis",
        analysis=found,
        recommendation_labels=RECOMMENDATION_LABELS,
    )
