"""CSV exports of a campaign's results, streamed row by row (see `campaigns.exports`)."""

from __future__ import annotations

from flask import Blueprint, Response, request, stream_with_context

from campaigns import exports
from campaigns.orga import current_workspace, member_required, organization_campaign
from config.db import get_session, utcnow

blueprint = Blueprint("orga_exports", __name__, template_folder="templates")


@blueprint.get("/orga/campagnes/<int:campaign_id>/export.csv", endpoint="campaign_csv")
@member_required
def campaign_csv(campaign_id: int) -> Response:
    """The campaign's results for Excel; `?acquis=1` adds one column per skill."""
    campaign = organization_campaign(campaign_id)
    chunks = exports.campaign_csv(
        get_session(),
        campaign,
        current_workspace().organization,
        with_skills=request.args.get("acquis") == "1",
    )
    filename = exports.export_filename(campaign, utcnow())
    return Response(
        stream_with_context(chunks),
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
