"""The card description renderer: Markdown in, only safe HTML out, whatever the input."""

from __future__ import annotations

import time
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from boards.markdown import ALLOWED_TAGS, render, safe_href

VOID = {"br", "hr"}


class Audit(HTMLParser):
    """Collects every tag and attribute and checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"misnested </{tag}>")

    def handle_comment(self, data: str) -> None:
        self.problems.append("comment")

    def handle_decl(self, decl: str) -> None:
        self.problems.append("declaration")

    def handle_pi(self, data: str) -> None:
        self.problems.append("processing instruction")


def audit(text: str) -> Audit:
    parser = Audit()
    parser.feed(render(text))
    parser.close()
    return parser


def assert_safe(text: str) -> None:
    result = audit(text)
    assert result.problems == [] and result.stack == [], (text, render(text), result.problems)
    assert set(result.tags) <= ALLOWED_TAGS, result.tags
    for tag, name, value in result.attrs:
        assert (tag, name) in {("a", "href"), ("a", "rel"), ("ol", "start")}, (tag, name)
        if name == "href":
            assert value is not None and safe_href(value) == value, value
            assert not value.lower().lstrip().startswith(("javascript:", "data:", "vbscript:")), value


def test_the_usual_markdown_becomes_html() -> None:
    text = "# Plan\nDo **this** and *that* with `code`.\nNext line.\n\n- one\n- two\n\n1. first\n2. second"
    assert render(text) == (
        "<h3>Plan</h3><p>Do <strong>this</strong> and <em>that</em> with <code>code</code>.<br>Next line.</p>"
        "<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol>"
    )
    quoted = render("> quoted\n\n```\nx < y\n```")
    assert quoted == "<blockquote><p>quoted</p></blockquote><pre><code>x &lt; y</code></pre>"
    assert render("[docs](https://example.org/a?b=1&c=2)") == (
        '<p><a href="https://example.org/a?b=1&amp;c=2" rel="nofollow noopener noreferrer">docs</a></p>'
    )
    assert render("see https://example.org/x.") == (
        '<p>see <a href="https://example.org/x" rel="nofollow noopener noreferrer">https://example.org/x</a>.</p>'
    )
    assert render("snake_case_name stays") == "<p>snake_case_name stays</p>"
    assert render("") == "" and render("  \n ") == ""


def test_tables_render_without_extra_attributes() -> None:
    # Tables come from the Markdown library; alignment (a style attribute), link titles and a code
    # fence's language class are dropped, since only href and start may appear.
    assert render('| a | b |\n|:--|--:|\n| 1 | [x](/y "t") |\n\n```py\nx\n```') == (
        "<table><thead><tr><th>a</th><th>b</th></tr></thead>"
        '<tbody><tr><td>1</td><td><a href="/y" rel="nofollow noopener noreferrer">x</a></td></tr></tbody></table>'
        "<pre><code>x</code></pre>"
    )
    assert_safe("| a |\n|---|\n| <script>alert(1)</script> [j](javascript:alert(1)) |")


def test_script_tags_and_raw_html_are_shown_as_text() -> None:
    html = render("<script>alert(1)</script>\n<b onclick=alert(1)>bold</b> <img src=x onerror=alert(1)>")
    assert "<script" not in html and "<b " not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert_safe("<iframe src=javascript:alert(1)></iframe><svg onload=alert(1)><!-- c --><?pi?><!DOCTYPE x>")


def test_dangerous_links_lose_their_address() -> None:
    for url in (
        "javascript:alert(1)",
        "JavaScript:alert`1`",
        "java%0ascript:x",
        "&#106;avascript:alert",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox",
        "//evil.example/x",
    ):
        html = render(f"[click]({url})")
        assert "href" not in html, (url, html)
        assert "click" in html
    assert safe_href("java\tscript:alert(1)") is None
    assert safe_href("\x01javascript:alert(1)") is None
    assert safe_href("/cards/4/") == "/cards/4/" and safe_href("#top") == "#top"
    assert safe_href("mailto:a@example.org") == "mailto:a@example.org"
    assert "href" not in render("<javascript:alert(1)>")


def test_links_that_browsers_read_as_protocol_relative_lose_their_address() -> None:
    # Browsers treat a backslash like a slash in http(s) addresses: each of these goes to evil.example.
    for url in ("/\\evil.example/x", "\\\\evil.example/x", "\\/evil.example"):
        html = render(f"[click]({url})")
        assert "href" not in html and "click" in html, (url, html)
        assert safe_href(url) is None
    assert safe_href("/cards/4/\\x") == "/cards/4/\\x"  # a backslash later in a path is harmless


def test_attributes_cannot_be_broken_out_of() -> None:
    html = render('[x](https://example.org/"onmouseover="alert(1))')
    assert_safe('[x](https://example.org/"onmouseover="alert(1))')
    assert 'onmouseover="' not in html
    assert_safe('https://example.org/"><script>alert(1)</script>')
    assert_safe("[a `b` **c**](/x) **`d`** __e *f*__ *g __h__* ~~i~~")


def test_long_hostile_input_renders_quickly() -> None:
    # Each takes milliseconds; a pattern that backtracked quadratically would take minutes at 50,000
    # characters, so the generous bound only catches that (the machine may be busy).
    for text in ("**a" * 20_000, "# " + " " * 49_990 + "x", "_" * 50_000, "[" * 50_000, "*a " * 16_000, "> " * 25_000):
        began = time.perf_counter()
        render(text)
        assert time.perf_counter() - began < 5.0, text[:20]
        assert_safe(text)


MARKDOWNISH = st.lists(
    st.sampled_from([*"ab <>\"'&=/:#*_~`[]()!-+>.1\n\t", "javascript:", "onerror=", "<script>", "http://", "\x00"]),
    max_size=120,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(MARKDOWNISH)
def test_any_input_gives_only_allowed_markup(text: str) -> None:
    assert_safe(text)
