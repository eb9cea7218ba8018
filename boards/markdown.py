"""Card descriptions: Markdown in, only safe HTML out.

Plain module, no Django imports. markdown-it-py parses CommonMark plus tables, ~~strike~~ and bare
http(s) addresses (linkify-it-py); raw HTML in the text is not passed through but shown as text, and
images are not rendered. Links must pass `safe_href` (http, https, mailto or relative, and not
protocol-relative) or stay text. nh3 then cleans the HTML against ALLOWED_TAGS and ALLOWED_ATTRIBUTES
and puts LINK_REL on every link, so even a renderer bug cannot let `<script>`, event handler
attributes or `javascript:` links through.

Headings are shifted down two levels to sit under the drawer's own headings (`#` becomes h3), single
line breaks are kept, and blocks are joined without newlines between them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

import nh3
from markdown_it import MarkdownIt, rules_inline
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

ALLOWED_TAGS = frozenset(
    {
        *("p", "br", "hr", "h3", "h4", "h5", "h6", "blockquote", "pre", "code"),
        *("ul", "ol", "li", "strong", "em", "del", "a"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {"*": set(), "a": {"href"}, "ol": {"start"}}  # "*": not even title
SAFE_SCHEMES = ("http", "https", "mailto")
LINK_REL = "nofollow noopener noreferrer"
HEADING_SHIFT = 2

InlineRule = Callable[[StateInline, bool], bool]

_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_ESCAPED_SLASH_DESTINATION = re.compile(r"\(\s*<?\\/")


def safe_href(url: str) -> str | None:
    """The address if a browser would treat it as http(s), mailto or relative; None otherwise.

    Browsers drop tabs, newlines and other control characters inside a scheme ("java\\tscript:"), so
    they are removed before the scheme is read."""
    cleaned = _CONTROL.sub("", html.unescape(url))
    if not cleaned:
        return None
    head = re.split(r"[/?#]", cleaned, maxsplit=1)[0]
    if ":" in head:
        scheme = head.split(":", 1)[0].lower()
        if scheme not in SAFE_SCHEMES:
            return None
    elif cleaned.startswith("\\") or cleaned.replace("\\", "/").startswith("//"):
        # Protocol-relative: another host; ask for the scheme to be written. Browsers read a
        # backslash as a slash here, so addresses starting with slash-backslash or two backslashes
        # too, and any leading backslash (a Markdown escape turns two into one).
        return None
    return cleaned


def _link_is_safe(url: str) -> bool:
    """markdown-it's check of every link address (already percent-encoded): as written and decoded."""
    return safe_href(url) is not None and safe_href(unquote(url)) is not None


def _refusing_escaped_slash(link_rule: InlineRule) -> InlineRule:
    """The inline link rule, but `[x](\\/host)` stays text, with no link.

    CommonMark reads `\\/` as an escaped slash, so the address is the harmless "/host"; the earlier
    renderer kept the backslash, which browsers read as "//host", and its tests refuse such a link."""

    def rule(state: StateInline, silent: bool) -> bool:
        start = state.pos
        if not link_rule(state, True):
            return False
        state.pos = start
        label_end = state.md.helpers.parseLinkLabel(state, start, True)
        if _ESCAPED_SLASH_DESTINATION.match(state.src, label_end + 1):
            return False
        return link_rule(state, silent)

    return rule


def _retag(state: StateCore) -> None:
    """Headings two levels down; ~~strike~~ as <del>, as the board has always shown it."""
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1:]) + HEADING_SHIFT, 6)}"
        for child in token.children or ():
            if child.type in ("s_open", "s_close"):
                child.tag = "del"


class _CompactRenderer(RendererHTML):
    """markdown-it's HTML renderer without the newlines between blocks, and code without classes."""

    def renderToken(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return super().renderToken(tokens, idx, options, env).removesuffix("\n")

    def softbreak(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return "<br>"

    def hardbreak(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        return "<br>"

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        code = tokens[idx].content.removesuffix("\n")
        return f"<pre><code>{html.escape(code)}</code></pre>"

    code_block = fence


def _parser(*, links: bool) -> MarkdownIt:
    parser = MarkdownIt(
        "commonmark",
        {"html": False, "breaks": True, "linkify": True, "typographer": False},
        renderer_cls=_CompactRenderer,
    )
    parser.enable(["table", "strikethrough", "linkify"])
    parser.disable("image")
    if parser.linkify is None:
        raise RuntimeError("linkify-it-py is needed for bare addresses")
    # Bare addresses only with a web scheme: no "example.org", no e-mail guessing, no "//host" or ftp.
    parser.linkify.set({"fuzzy_link": False, "fuzzy_email": False})
    parser.linkify.add("ftp:", None).add("//", None)
    parser.validateLink = _link_is_safe  # type: ignore[method-assign]
    parser.inline.ruler.at("link", _refusing_escaped_slash(rules_inline.link))
    parser.core.ruler.push("retag", _retag)
    if not links:
        parser.disable(["link", "autolink", "linkify"])
    return parser


_PARSER = _parser(links=True)
_PARSER_WITHOUT_LINKS = _parser(links=False)
_CLEAN_OPTIONS: dict[str, Any] = {
    "tags": set(ALLOWED_TAGS),
    "attributes": ALLOWED_ATTRIBUTES,
    "url_schemes": set(SAFE_SCHEMES),
    "link_rel": LINK_REL,
    "strip_comments": True,
}


def render(text: str) -> str:
    """Markdown text as safe HTML (empty for empty text)."""
    if not text or not text.strip():
        return ""
    return nh3.clean(_PARSER.render(text), **_CLEAN_OPTIONS)


def render_inline(text: str, *, links: bool = True) -> str:
    """One line (or a few) of inline Markdown as safe HTML."""
    parser = _PARSER if links else _PARSER_WITHOUT_LINKS
    return nh3.clean(parser.renderInline(text), **_CLEAN_OPTIONS)
