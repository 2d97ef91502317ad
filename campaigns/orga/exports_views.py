"""CSV exports of a campaign's results, streamed row by row (see `campaigns.orga.exports`)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from campaigns.orga import exports
from campaigns.orga.access import current_workspace, member_required, organization_campaign
from config.db import current_database, get_session, utcnow

blueprint = Blueprint("orga_exports", __name__, template_folder="templates")


@blueprint.get("/orga/campagnes/<int:campaign_id>/export.csv", endpoint="campaign_csv")
@member_required
def campaign_csv(campaign_id: int) -> Response:
    """The campaign's results for Excel; `?acquis=1` adds one column per skill.

    Authorization and the layout are settled here, on the request's session, so that errors
    happen before the response starts; its transaction then ends. The rows are read while the
    body streams, after the request is over, on a read-only session the body opens and closes
    itself: when the last chunk is written, or when the server closes the response (the client
    went away), even before the first chunk."""
    campaign = organization_campaign(campaign_id)
    session = get_session()
    layout = exports.export_layout(
        session,
        campaign,
        current_workspace().organization,
        with_skills=request.args.get("acquis") == "1",
    )
    filename = exports.export_filename(campaign, utcnow())
    session.commit()  # the request's transaction: no connection (nor SQLite lock) held from here
    body = exports.streamed_csv(current_database().read_only_session, campaign.id, layout)
    response = Response(
        body,
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
    # WSGI close() closes the body, read or not (HEAD, client gone), even if it was wrapped.
    response.call_on_close(body.close)
    return response
