"""How a text of the content pack is shown: prose spaced the French way, programs in code blocks."""

from markupsafe import Markup

from config.i18n import content_text

PROGRAM = (
    "Qu’affiche ce programme ?\n```\nif note >= 10 and nom != '<b>':\n    print('reçu : oui')\n"
    "```\nRépondez : oui ou non ?"
)


def test_a_code_block_is_a_pre_with_its_indentation_and_no_french_spacing():
    html = content_text(PROGRAM)
    assert isinstance(html, Markup)
    assert html == (
        "Qu’affiche ce programme\u202f?"
        '<pre tabindex="0"><code>if note &gt;= 10 and nom != &#39;&lt;b&gt;&#39;:\n'
        "    print(&#39;reçu : oui&#39;)</code></pre>"
        "Répondez\u202f: oui ou non\u202f?"
    )


def test_prose_is_escaped_and_keeps_its_line_breaks():
    assert content_text("Un <script> ?\nDeux & trois.") == (
        "Un &lt;script&gt;\u202f?\nDeux &amp; trois."
    )


def test_a_text_that_is_all_code_or_left_open_still_shows_as_code():
    assert content_text("```\n  x = 1\n```") == '<pre tabindex="0"><code>  x = 1</code></pre>'
    assert content_text("Voici :\n```\nx = 1") == (
        'Voici\u202f:<pre tabindex="0"><code>x = 1</code></pre>'
    )
