"""Campaigns of the organization: list, search and filters, creation, edit, archive."""

from __future__ import annotations

from itertools import groupby
from operator import attrgetter
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from campaigns.accounts.auth import safe_next
from campaigns.orga import campaign_admin
from campaigns.orga.access import (
    can_manage,
    current_workspace,
    member_required,
    organization_campaign,
)
from campaigns.orga.campaign_admin import CampaignForm
from campaigns.shared.models import Campaign, CampaignType, TargetProfile
from config.db import get_session
from config.numbers import parse_int

blueprint = Blueprint("orga_campaigns", __name__, template_folder="templates")

TYPE_LABELS = {
    CampaignType.ASSESSMENT: _l("Évaluation"),
    CampaignType.PROFILES_COLLECTION: _l("Collecte de profils"),
}

FIELD_ERRORS = {
    ("name", "required"): _l("Saisissez le nom de la campagne."),
    ("name", "too_long"): _l("Le nom de la campagne est limité à 255 caractères."),
    ("type", "required"): _l("Choisissez l’objectif de la campagne."),
    ("type", "invalid"): _l("Ce type de campagne n’existe pas."),
    # `target` is the group of the two fields below: a target profile or one competence.
    ("target", "required"): _l("Choisissez ce que la campagne doit tester."),
    ("target", "both"): _l(
        "Choisissez un profil cible ou une compétence, pas les deux : videz l’un des deux champs."
    ),
    ("target_profile_id", "forbidden"): _l(
        "Une collecte de profils ne teste pas de profil cible : laissez ce champ vide."
    ),
    ("target_profile_id", "unknown"): _l(
        "Ce profil cible n’existe pas ou n’est pas disponible pour votre organisation."
    ),
    ("competence_id", "forbidden"): _l(
        "Une collecte de profils ne teste pas de compétence : laissez ce champ vide."
    ),
    ("competence_id", "unknown"): _l(
        "Cette compétence n’existe pas ou ne peut pas être testée seule."
    ),
    ("ask_external_id", "invalid"): _l("Répondez par oui ou par non."),
    ("external_id_label", "required"): _l(
        "Saisissez le libellé de l’identifiant (par exemple « Numéro d’élève »)."
    ),
    ("external_id_label", "too_long"): _l("Le libellé est limité à 255 caractères."),
    ("title", "too_long"): _l("Le titre du parcours est limité à 255 caractères."),
    ("landing_text", "too_long"): _l("Le texte de la page d’accueil est limité à 5000 caractères."),
    ("multiple_sendings", "invalid"): _l("Répondez par oui ou par non."),
    ("multiple_sendings", "locked"): _l(
        "Des participants ont déjà rejoint la campagne : l’envoi multiple ne peut plus changer."
    ),
    ("owner_id", "unknown"): _l("Choisissez un membre de votre organisation."),
}


FIELD_ORDER = [name for name, _code in FIELD_ERRORS]


def campaign_page_url(campaign_id: int) -> str:
    """The campaign's page (built by `orga_campaign`)."""
    return url_for("orga_campaign.activity", campaign_id=campaign_id)


class _NotManager(Exception):
    pass


def _managed_campaign(campaign_id: int) -> Campaign:
    """A campaign of the current organization (404 otherwise) that the member may change: its
    owner or an admin (403 otherwise, with an explanation)."""
    campaign = organization_campaign(campaign_id)
    if not can_manage(campaign):
        raise _NotManager
    return campaign


@blueprint.errorhandler(_NotManager)
def _not_manager(_error: _NotManager) -> tuple[str, int]:
    return render_template(
        "orga/forbidden.html",
        section="campagnes",
        message=_(
            "Seuls le propriétaire de la campagne et les administrateurs de l’organisation "
            "peuvent la modifier ou l’archiver."
        ),
    ), 403


def _messages(form: CampaignForm) -> dict[str, str]:
    """The form's errors as messages, in the order of the fields on the page."""
    ordered = sorted(form.errors.items(), key=lambda item: FIELD_ORDER.index(item[0]))
    return {
        name: str(FIELD_ERRORS.get((name, code), _l("Valeur invalide."))) for name, code in ordered
    }


def _page_number(raw: str | None) -> int:
    return parse_int(raw, 1, high=999_999)


# -- the list -------------------------------------------------------------------------------------


@blueprint.get("/orga/campagnes", endpoint="index")
@member_required
def index() -> str:
    workspace = current_workspace()
    session = get_session()
    search = request.args.get("q", "")[: campaign_admin.SEARCH_MAX].strip()
    mine = request.args.get("owner") == "me"
    archived = request.args.get("status") == "archived"
    page = campaign_admin.list_campaigns(
        session,
        workspace.organization,
        user=workspace.user,
        search=search,
        mine=mine,
        archived=archived,
        page=_page_number(request.args.get("page")),
    )
    filters = {"q": search or None, "owner": "me" if mine else None}
    filters["status"] = "archived" if archived else None
    return render_template(
        "orga/campaigns/index.html",
        section="campagnes",
        page=page,
        search=search,
        mine=mine,
        archived=archived,
        filters=filters,
        any_campaign=page.total > 0
        or campaign_admin.has_campaigns(session, workspace.organization),
        type_labels=TYPE_LABELS,
        campaign_page_url=campaign_page_url,
    )


# -- creation -------------------------------------------------------------------------------------


def _render_form(
    template: str, form: CampaignForm, status: int = 200, **context: object
) -> tuple[str, int]:
    workspace = current_workspace()
    session = get_session()
    return render_template(
        template,
        section="campagnes",
        form=form,
        errors=_messages(form),
        members=campaign_admin.members(session, workspace.organization),
        landing_text_max=campaign_admin.LANDING_TEXT_MAX,
        type_labels=TYPE_LABELS,
        **context,
    ), status


@blueprint.route("/orga/campagnes/nouvelle", methods=["GET", "POST"], endpoint="new")
@member_required
def new() -> Response | tuple[str, int]:
    workspace = current_workspace()
    session = get_session()
    profiles = campaign_admin.usable_target_profiles(session, workspace.organization)
    competences = campaign_admin.assessable_competences(session)
    # (area title, its competences) in the pack's order, for the select's option groups
    areas = [(area, list(group)) for area, group in groupby(competences, attrgetter("area_title"))]
    choices: dict[str, Any] = {"profiles": profiles, "competence_areas": areas}
    if request.method == "GET":
        form = CampaignForm(owner_id=str(workspace.user.id))
        return _render_form("orga/campaigns/new.html", form, **choices)
    form = CampaignForm.from_data(request.form)
    try:
        campaign = campaign_admin.create_from_form(
            session, workspace.organization, workspace.user, form
        )
    except campaign_admin.FormInvalid as error:
        session.rollback()
        return _render_form("orga/campaigns/new.html", error.form, 400, **choices)
    session.commit()
    flash(_("La campagne « %(name)s » a été créée.", name=campaign.name), "info")
    return redirect(campaign_page_url(campaign.id))


# -- edit -----------------------------------------------------------------------------------------


def _edit_context(campaign: Campaign) -> dict[str, object]:
    session = get_session()
    profile = (
        session.get(TargetProfile, campaign.target_profile_id)
        if campaign.target_profile_id
        else None
    )
    return {
        "campaign": campaign,
        "participants": campaign_admin.live_participations_count(session, campaign),
        "campaign_url": campaign_page_url(campaign.id),
        "target_profile": profile,
        "competence": campaign_admin.assessed_competence(session, profile) if profile else None,
    }


@blueprint.route(
    "/orga/campagnes/<int:campaign_id>/modifier", methods=["GET", "POST"], endpoint="edit"
)
@member_required
def edit(campaign_id: int) -> Response | tuple[str, int]:
    campaign = _managed_campaign(campaign_id)
    session = get_session()
    if campaign.archived_at is not None:
        return render_template(
            "orga/campaigns/archived.html",
            section="campagnes",
            campaign=campaign,
            campaign_url=campaign_page_url(campaign.id),
        ), (200 if request.method == "GET" else 409)
    if request.method == "GET":
        return _render_form(
            "orga/campaigns/edit.html", CampaignForm.of(campaign), 200, **_edit_context(campaign)
        )
    form = CampaignForm.from_data(request.form)
    try:
        campaign_admin.update_from_form(session, current_workspace().organization, campaign, form)
    except campaign_admin.FormInvalid as error:
        session.rollback()
        campaign = organization_campaign(campaign_id)
        return _render_form("orga/campaigns/edit.html", error.form, 400, **_edit_context(campaign))
    session.commit()
    flash(_("Les modifications ont été enregistrées."), "info")
    return redirect(campaign_page_url(campaign.id))


# -- archive --------------------------------------------------------------------------------------


@blueprint.post("/orga/campagnes/<int:campaign_id>/archiver", endpoint="archive")
@member_required
def archive(campaign_id: int) -> Response:
    campaign = _managed_campaign(campaign_id)
    campaign_admin.archive(get_session(), campaign, current_workspace().user)
    get_session().commit()
    flash(
        _(
            "La campagne « %(name)s » est archivée : elle n’accepte plus de participants.",
            name=campaign.name,
        ),
        "info",
    )
    return redirect(safe_next(request.form.get("next"), campaign_page_url(campaign.id)))


@blueprint.post("/orga/campagnes/<int:campaign_id>/desarchiver", endpoint="unarchive")
@member_required
def unarchive(campaign_id: int) -> Response:
    campaign = _managed_campaign(campaign_id)
    campaign_admin.unarchive(get_session(), campaign)
    get_session().commit()
    flash(_("La campagne « %(name)s » est de nouveau active.", name=campaign.name), "info")
    return redirect(safe_next(request.form.get("next"), campaign_page_url(campaign.id)))
