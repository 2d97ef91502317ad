"""French first, English available.

Message ids in the code and templates are the French texts; `translations/en` holds English.
The language is, in order: `?lang=` (remembered in the session), the signed-in user's choice,
the browser's `Accept-Language`, French. Message catalogs are compiled (`make install`) and
committed, so an installed copy speaks English without build tools.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from flask import Flask, current_app, has_request_context, request, session, url_for
from flask.sansio.app import App
from flask_babel import Babel, get_locale, get_translations
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from engine.content import text_parts

LOCALES = ("fr", "en")
DEFAULT_LOCALE = "fr"
TIMEZONE = "Europe/Paris"
TRANSLATIONS = Path(__file__).parent / "translations"

babel = Babel()


def select_locale() -> str:
    asked = request.args.get("lang")
    if asked in LOCALES:
        session["lang"] = asked
        return asked
    remembered = session.get("lang")
    if remembered in LOCALES:
        return str(remembered)
    user_locale: Callable[[], str | None] | None = current_app.extensions.get(
        "parcours.user_locale"
    )
    chosen = user_locale() if user_locale else None
    if chosen in LOCALES:
        return str(chosen)
    return request.accept_languages.best_match(LOCALES, default=DEFAULT_LOCALE) or DEFAULT_LOCALE


_BEFORE_HIGH_PUNCTUATION = re.compile(r" ([?!:;»])")
_AFTER_GUILLEMET = re.compile(r"« ")


def french_spacing(text: str) -> str:
    """Narrow no-break spaces where French typography wants them, so that a "?" or a "»" never
    starts a line on its own."""
    spaced = _AFTER_GUILLEMET.sub("«\u202f", _BEFORE_HIGH_PUNCTUATION.sub("\u202f\\1", text))
    # Translated template text is already escaped markup: the spaces added keep it safe.
    return Markup(spaced) if isinstance(text, Markup) else spaced  # noqa: S704 (already escaped)


def content_text(text: str) -> Markup:
    """A text of the content pack as HTML: its prose escaped and spaced the French way (line breaks
    are kept by the CSS, `white-space: pre-line`), its code blocks in `<pre><code>`, escaped and
    otherwise exactly as written (no French spacing: `x = a ? b : c` stays code). A block is
    focusable so that a keyboard can scroll it when a long line overflows a narrow screen."""
    html = [
        Markup('<pre tabindex="0"><code>{}</code></pre>').format(part.text)
        if part.is_code
        else escape(french_spacing(part.text))
        for part in text_parts(text)
    ]
    return Markup("").join(html)


# What Werkzeug leaves unencoded in the query strings it builds (`next=/mon-compte`).
_QUERY_SAFE = "!$'()*,/:;?@"


def url_in_language(lang: str) -> str:
    """The current page in another language (its query string kept).

    The query string is copied, never handed to `url_for`: there `_method`, `_external`,
    `_scheme` or `_anchor` would be taken as its keywords (an error, or a link to another
    scheme or host), and a name of the route's own variables would replace the path's value."""
    query = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    query.append(("lang", lang))
    encoded = urlencode(query, safe=_QUERY_SAFE)
    if request.endpoint is None:
        return f"?{encoded}"
    # The app's own url_for, which remembers the addresses it built (config/app.py).
    build = cast(Callable[..., str], current_app.jinja_env.globals.get("url_for", url_for))
    return f"{build(request.endpoint, **(request.view_args or {}))}?{encoded}"


def set_user_locale_source(app: App, source: Callable[[], str | None]) -> None:
    """Let the accounts package say which language the signed-in user chose."""
    app.extensions["parcours.user_locale"] = source


def _newstyle_gettext(translate: Callable[[str], str]) -> Callable[..., str]:
    """A template's gettext as Jinja's newstyle one behaves: escaped, then formatted."""

    constants: dict[tuple[str, bool], str] = {}  # texts without variables, as shown

    @pass_context
    def gettext(context: Context, string: str, **variables: Any) -> str:
        escaped = context.eval_ctx.autoescape
        if not variables:
            shown = constants.get((string, escaped))
            if shown is None:
                shown = constants[(string, escaped)] = _shown(translate(string), escaped, {})
            return shown
        return _shown(translate(string), escaped, variables)

    return gettext


def _shown(text: str, escaped: bool, variables: dict[str, Any]) -> str:
    if escaped:
        text = Markup(text)  # noqa: S704 - our catalog's text, as Jinja's own gettext
    return text % variables


def _newstyle_ngettext(translate: Callable[[str, str, int], str]) -> Callable[..., str]:
    @pass_context
    def ngettext(context: Context, singular: str, plural: str, num: int, **variables: Any) -> str:
        variables.setdefault("num", num)
        return _shown(translate(singular, plural, num), context.eval_ctx.autoescape, variables)

    return ngettext


_bound: dict[int, tuple[object, dict[str, Callable[..., str]]]] = {}


def _page_translations() -> dict[str, Callable[..., str]]:
    """The page's gettext and ngettext, bound to the request's catalog (one per language, loaded
    once): Flask-Babel's own look the catalog up again at each of a page's twenty-odd texts."""
    translations = get_translations()
    found = _bound.get(id(translations))
    if found is None or found[0] is not translations:
        found = (
            translations,
            {
                "gettext": _newstyle_gettext(translations.ugettext),
                "ngettext": _newstyle_ngettext(translations.ungettext),
            },
        )
        _bound[id(translations)] = found
    return found[1]


def init_i18n(app: Flask) -> None:
    app.config.update(
        BABEL_DEFAULT_LOCALE=DEFAULT_LOCALE,
        BABEL_DEFAULT_TIMEZONE=TIMEZONE,
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
    )
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals["get_locale"] = get_locale
    app.jinja_env.globals["url_in_language"] = url_in_language
    app.jinja_env.filters["french_spacing"] = french_spacing
    app.jinja_env.filters["content_text"] = content_text
    app.context_processor(_page_translations)


@contextmanager
def messages_outside_requests() -> Iterator[None]:
    """Translated texts and dates for a command (an e-mail queued by `parcours org create`):
    French, Paris time, as a request without preferences would get them."""
    if has_request_context():
        yield
        return
    app = Flask("parcours-messages")
    init_i18n(app)
    with app.test_request_context("/"):
        yield
