"""A built-in test LMS for development (`/dev/lms`, never mounted in production): a newcomer
launches Parcours as a learner or an instructor, deep-links a campaign and watches the grade
arrive in its gradebook, without Moodle — through the same HTTP, signatures and worker as a real
platform (the tool fetches this LMS's keys and posts scores to it over HTTP).

It plays the platform's side only, with the least it takes: one course, three people, its own
RSA key and its state (activities, line items, scores, tokens) in a JSON file of the instance
folder. `parcours demo` registers it as a platform of the demo school.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Flask, abort, current_app, jsonify, redirect, render_template, request
from jwcrypto.jwk import JWK
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from campaigns.connectors import Organization
from config.security import csrf, frameable
from config.settings import Settings
from lti_tool import registry
from lti_tool.http import TimeoutSession
from lti_tool.models import LtiPlatform

log = logging.getLogger(__name__)

blueprint = Blueprint(
    "devlms",
    __name__,
    template_folder="templates",
    static_folder="devlms_static",
    static_url_path="/dev/lms/static",
)
csrf.exempt(blueprint)  # it plays another site, which posts to itself and to the tool

CLIENT_ID = "parcours-dev-lms"
DEPLOYMENT_ID = "1"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
PEOPLE = {
    "lea": {"given_name": "Léa", "family_name": "Martin", "role": "Learner"},
    "hugo": {"given_name": "Hugo", "family_name": "Bernard", "role": "Learner"},
    # On the demo school's learner list, as from the demo ENT: one user both ways once the
    # platform matches learners (/admin).
    "noah": {"given_name": "Noah", "family_name": "Lefèvre", "role": "Learner"},
    "durand": {"given_name": "Claire", "family_name": "Durand", "role": "Instructor"},
}
ROLE_URI = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
SCOPES = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)
_lock = threading.Lock()


def init_app(app: Flask) -> None:
    settings: Settings = app.config["PARCOURS_SETTINGS"]
    if not settings.is_production:
        app.register_blueprint(blueprint)


def issuer(public_url: str) -> str:
    return public_url.rstrip("/") + "/dev/lms"


def register_demo_platform(session: Session, organization: Organization, public_url: str) -> None:
    """Register the built-in LMS for the demo school (once)."""
    base = issuer(public_url)
    if registry.find_platform(session, base, CLIENT_ID) is not None:
        return
    registry.add_platform(
        session,
        organization=organization,
        deployment_id=DEPLOYMENT_ID,
        name="LMS de démonstration",
        issuer=base,
        client_id=CLIENT_ID,
        auth_login_url=f"{base}/auth",
        auth_token_url=f"{base}/token",
        key_set_url=f"{base}/jwks.json",
    )


# -- its state --------------------------------------------------------------------------------------


def _path() -> Path:
    return Path(current_app.instance_path) / "dev-lms.json"


def _load() -> dict[str, Any]:
    """The LMS's state (callers hold `_lock`), created with a new key on first use."""
    path = _path()
    if path.exists():
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    state = {
        "private_pem": pem,
        "kid": secrets.token_urlsafe(8),
        "links": [],
        "lineitems": [],
        "scores": [],
        "tokens": {},
    }
    _save(state)
    return state


def _save(state: dict[str, Any]) -> None:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, ensure_ascii=False, indent=1))
    temporary.replace(path)


def _public() -> str:
    settings: Settings = current_app.config["PARCOURS_SETTINGS"]
    return settings.public_url.rstrip("/")


def _platform() -> LtiPlatform | None:
    from config.db import get_session

    return registry.find_platform(get_session(), issuer(_public()), CLIENT_ID)


# -- the course page --------------------------------------------------------------------------------


@blueprint.get("/dev/lms", endpoint="home")
def home() -> str:
    with _lock:
        state = _load()
    gradebook = []
    for item in state["lineitems"]:
        latest: dict[str, dict[str, Any]] = {}
        for score in state["scores"]:
            if score["lineitem"] == item["id"]:
                latest[score["userId"]] = score
        learners = [key for key, person in PEOPLE.items() if person["role"] == "Learner"]
        gradebook.append((item, [(PEOPLE[p], latest.get(p)) for p in learners]))
    return render_template(
        "devlms/home.html",
        links=state["links"],
        gradebook=gradebook,
        people=PEOPLE,
        registered=_platform() is not None,
        tool_origin=_public(),
        storage=request.args.get("stockage") != "0",
    )


@blueprint.post("/dev/lms/lancer", endpoint="launch")
def launch() -> Response:
    """Third-party initiated login: the LMS sends the browser to the tool's login URL, offering
    its storage (the page that frames the tool) unless the launch said `storage=0`."""
    person = request.form.get("person", "")
    kind = request.form.get("kind", "resource")
    link = request.form.get("link", "")
    if person not in PEOPLE or kind not in ("resource", "deep_link"):
        abort(400)
    hint = json.dumps({"kind": kind, "link": link})
    query = {
        "iss": issuer(_public()),
        "client_id": CLIENT_ID,
        "lti_deployment_id": DEPLOYMENT_ID,
        "login_hint": person,
        "lti_message_hint": hint,
        "target_link_uri": f"{_public()}/lti/launch",
    }
    if request.form.get("storage") == "1":
        query["lti_storage_target"] = "_parent"
    return redirect(f"{_public()}/lti/login?{urlencode(query)}", 303)


@blueprint.get("/dev/lms/auth", endpoint="auth")
@frameable  # shown in the iframe the tool runs in, as a real LMS's
def auth() -> str:
    """The platform's authorization endpoint: an id_token for the person, posted to the tool."""
    args = request.args
    person = PEOPLE.get(args.get("login_hint", ""))
    if person is None or args.get("client_id") != CLIENT_ID:
        abort(400)
    if args.get("redirect_uri") != f"{_public()}/lti/launch":
        abort(400)
    try:
        hint = json.loads(args.get("lti_message_hint", "{}"))
    except ValueError:
        abort(400)
    with _lock:
        state = _load()
    base = issuer(_public())
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": base,
        "aud": CLIENT_ID,
        "sub": args["login_hint"],
        "iat": now,
        "exp": now + 300,
        "nonce": args.get("nonce", ""),
        "given_name": person["given_name"],
        "family_name": person["family_name"],
        "name": f"{person['given_name']} {person['family_name']}",
        LTI + "deployment_id": DEPLOYMENT_ID,
        LTI + "version": "1.3.0",
        LTI + "roles": [ROLE_URI + person["role"]],
        LTI + "context": {"id": "snt-2de-b", "label": "SNT", "title": "SNT — 2de B"},
        LTI + "tool_platform": {"guid": "dev-lms", "name": "LMS de démonstration"},
        "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice": {
            "context_memberships_url": f"{base}/memberships",
            "service_versions": ["2.0"],
        },
    }
    if hint.get("kind") == "deep_link":
        claims[LTI + "message_type"] = "LtiDeepLinkingRequest"
        claims[LTI + "target_link_uri"] = f"{_public()}/lti/launch"
        claims[DL + "deep_linking_settings"] = {
            "deep_link_return_url": f"{base}/retour",
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["iframe", "window"],
            "accept_multiple": False,
            "data": secrets.token_urlsafe(8),
        }
    else:
        link = next((k for k in state["links"] if k["id"] == hint.get("link")), None)
        if link is None:
            abort(404)
        claims[LTI + "message_type"] = "LtiResourceLinkRequest"
        claims[LTI + "target_link_uri"] = f"{_public()}/lti/launch"
        claims[LTI + "resource_link"] = {"id": link["id"], "title": link["title"]}
        claims[LTI + "custom"] = link.get("custom", {})
        claims["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"] = {
            "scope": list(SCOPES[:3]),
            "lineitems": f"{base}/lineitems",
            **(
                {"lineitem": f"{base}/lineitems/{link['lineitem']}"} if link.get("lineitem") else {}
            ),
        }
    token = jwt.encode(
        claims, state["private_pem"], algorithm="RS256", headers={"kid": state["kid"]}
    )
    return render_template(
        "devlms/post.html",
        action=args["redirect_uri"],
        fields={"id_token": token, "state": args.get("state", "")},
    )


@blueprint.get("/dev/lms/jwks.json", endpoint="jwks")
def jwks() -> Response:
    with _lock:
        state = _load()
    public = JWK.from_pem(state["private_pem"].encode()).export_public(as_dict=True)
    public.update(kid=state["kid"], alg="RS256", use="sig")
    return jsonify({"keys": [public]})


def _tool_key(token: str) -> Any:
    """The tool's public key for `token`, read from its JWKS over HTTP as a real LMS would."""
    from config.db import get_session

    get_session().commit()  # SQLite: free the database for the tool answering this call
    header = jwt.get_unverified_header(token)
    http = TimeoutSession()
    keys = http.get(f"{_public()}/lti/jwks.json").json()["keys"]
    found = next((k for k in keys if k.get("kid") == header.get("kid")), None)
    if found is None:
        abort(401)
    return JWK(**found).export_to_pem()


@blueprint.post("/dev/lms/retour", endpoint="deep_link_return")
@frameable
def deep_link_return() -> str:
    """The tool's deep linking response: a new activity in the course, with its line item."""
    token = request.form.get("JWT", "")
    try:
        claims = jwt.decode(
            token, _tool_key(token), algorithms=["RS256"], audience=issuer(_public())
        )
    except (jwt.InvalidTokenError, requests.RequestException, ValueError) as error:
        log.warning("test LMS: deep linking response refused: %s", error)
        abort(400)
    with _lock:
        state = _load()
        for item in claims.get(DL + "content_items", []):
            link_id = f"activite-{len(state['links']) + 1}"
            line = item.get("lineItem")
            lineitem_id = None
            if isinstance(line, dict):
                lineitem_id = len(state["lineitems"]) + 1
                state["lineitems"].append({"id": lineitem_id, "resourceLinkId": link_id, **line})
            state["links"].append(
                {
                    "id": link_id,
                    "title": item.get("title", "Parcours"),
                    "custom": item.get("custom", {}),
                    "lineitem": lineitem_id,
                }
            )
        _save(state)
    return render_template("devlms/added.html")


# -- services: token, line items, scores, members -------------------------------------------------


@blueprint.post("/dev/lms/token", endpoint="token")
def token() -> Response | tuple[Response, int]:
    assertion = request.form.get("client_assertion", "")
    try:
        jwt.decode(
            assertion,
            _tool_key(assertion),
            algorithms=["RS256"],
            audience=f"{issuer(_public())}/token",
        )
    except (jwt.InvalidTokenError, requests.RequestException, ValueError):
        return jsonify({"error": "invalid_client"}), 401
    access = secrets.token_urlsafe(24)
    with _lock:
        state = _load()
        state["tokens"][access] = time.time() + 3600
        _save(state)
    return jsonify(
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": request.form.get("scope", ""),
        }
    )


def _authorized(state: dict[str, Any]) -> None:
    header = request.headers.get("Authorization", "")
    access = header.removeprefix("Bearer ")
    if state["tokens"].get(access, 0) < time.time():
        abort(401)


@blueprint.route("/dev/lms/lineitems", methods=["GET", "POST"], endpoint="lineitems")
def lineitems() -> Response | tuple[Response, int]:
    base = issuer(_public())
    with _lock:
        state = _load()
        _authorized(state)
        if request.method == "POST":
            body = request.get_json(force=True, silent=True) or {}
            item = {"id": len(state["lineitems"]) + 1, **body}
            state["lineitems"].append(item)
            for link in state["links"]:
                if link["id"] == body.get("resourceLinkId"):
                    link["lineitem"] = item["id"]
            _save(state)
            return jsonify({**item, "id": f"{base}/lineitems/{item['id']}"}), 201
    wanted = request.args.get("resource_link_id")
    found = [
        {**i, "id": f"{base}/lineitems/{i['id']}"}
        for i in state["lineitems"]
        if wanted is None or i.get("resourceLinkId") == wanted
    ]
    return jsonify(found)


@blueprint.post("/dev/lms/lineitems/<int:item>/scores", endpoint="scores")
def scores(item: int) -> tuple[str, int]:
    with _lock:
        state = _load()
        _authorized(state)
        if not any(i["id"] == item for i in state["lineitems"]):
            abort(404)
        body = request.get_json(force=True, silent=True) or {}
        if body.get("userId") not in PEOPLE or not body.get("timestamp"):
            return "userId and timestamp are required", 400
        earlier = [
            s for s in state["scores"] if s["lineitem"] == item and s["userId"] == body["userId"]
        ]
        if earlier and body["timestamp"][:19] <= earlier[-1]["timestamp"][:19]:
            return "timestamp not newer than the stored one", 409  # as Moodle answers
        state["scores"].append({"lineitem": item, **body})
        _save(state)
    return "", 204


@blueprint.get("/dev/lms/memberships", endpoint="memberships")
def memberships() -> Response:
    with _lock:
        state = _load()
        _authorized(state)
    members = [
        {
            "user_id": key,
            "given_name": person["given_name"],
            "family_name": person["family_name"],
            "name": f"{person['given_name']} {person['family_name']}",
            "roles": [ROLE_URI + person["role"]],
            "status": "Active",
        }
        for key, person in PEOPLE.items()
    ]
    return jsonify({"id": f"{issuer(_public())}/memberships", "members": members})
