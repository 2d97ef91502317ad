"""What the pages that choose a password say when it is refused: the sign-up form (journey),
the password pages (accounts) and the team invitation (Orga) show the same words.

The field's help text lists the rules; the error names only the ones this password breaks."""

from __future__ import annotations

from babel.lists import format_list
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from campaigns.accounts.users import PASSWORD_MIN_LENGTH, password_faults

_MISSING = {
    "upper": _l("une majuscule"),
    "lower": _l("une minuscule"),
    "digit": _l("un chiffre"),
}


def weak_password(password: str) -> str:
    """What is wrong with `password`, in the visitor's language ("" when nothing is)."""
    if not password:
        empty: str = _("Saisissez un mot de passe.")
        return empty
    faults = password_faults(password)
    sentences: list[str] = []
    if "length" in faults:
        sentences.append(
            ngettext(
                "Ce mot de passe n’a que %(num)d caractère : il en faut au moins %(min)d.",
                "Ce mot de passe n’a que %(num)d caractères : il en faut au moins %(min)d.",
                len(password),
                min=PASSWORD_MIN_LENGTH,
            )
        )
    missing = [str(_MISSING[rule]) for rule in faults if rule in _MISSING]
    if missing:
        sentences.append(
            _(
                "Il manque à ce mot de passe %(missing)s.",
                missing=format_list(missing, locale=get_locale() or "fr"),
            )
        )
    return " ".join(sentences)
