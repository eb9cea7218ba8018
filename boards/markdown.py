"""A small, safe Markdown renderer for card descriptions.

Plain module, no Django imports. The input is never trusted: every character of it reaches the
output through `html.escape`, and the only markup in the output is what this module writes itself:
the tags in ALLOWED_TAGS, with one attribute (`href` on links, whose address must be http, https,
mailto or relative) plus a fixed `rel`. Raw HTML in the text is shown as text, so `<script>`, event
handler attributes and `javascript:` links cannot get through.

Supported: paragraphs (single line breaks kept), `#` headings (shifted down two levels to sit under
the drawer's own headings), `-`/`*`/`+` and numbered lists, `>` quotes, fenced code blocks, rules,
inline code, **strong**, *emphasis*, ~~strike~~, [links](https://...), <https://...> and bare
http(s) addresses. Everything else is text. All patterns use negated character classes, so the time
is linear in the input (descriptions may hold 50,000 characters).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

ALLOWED_TAGS = frozenset(
    {"p", "br", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code", "strong", "em", "del", "a", "hr"}
)
SAFE_SCHEMES = ("http", "https", "mailto")
LINK_REL = "nofollow noopener noreferrer"
MAX_QUOTE_DEPTH = 3

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})[ \t]+(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"^\s{0,3}[-*+][ \t]+(.*)$")
_NUMBERED = re.compile(r"^\s{0,3}(\d{1,9})[.)][ \t]+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>[ \t]?(.*)$")

_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\[\]\n]{1,500})\]\(([^()\s]{1,2000})\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^\s<>]{1,2000})>", re.IGNORECASE)
_BARE_URL = re.compile(r"\bhttps?://[^\s<>\"'`\x00]{1,2000}", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?)]}'\""
_EMPHASIS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\*\*([^*\n<\x00]+|\x00\d+\x00)\*\*"), "strong"),
    (re.compile(r"(?<![\w])__([^_\n<\x00]+|\x00\d+\x00)__(?![\w])"), "strong"),
    (re.compile(r"~~([^~\n<\x00]+|\x00\d+\x00)~~"), "del"),
    (re.compile(r"\*([^*\s<\x00](?:[^*\n<\x00]*[^*\s<\x00])?|\x00\d+\x00)\*"), "em"),
    (re.compile(r"(?<![\w])_([^_\s<\x00](?:[^_\n<\x00]*[^_\s<\x00])?|\x00\d+\x00)_(?![\w])"), "em"),
]
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


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
    elif cleaned.replace("\\", "/").startswith("//"):
        # Protocol-relative: another host; ask for the scheme to be written. Browsers read a
        # backslash as a slash here, so addresses starting with slash-backslash or two backslashes too.
        return None
    return cleaned


def _link(href: str, inner_html: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}" rel="{LINK_REL}">{inner_html}</a>'


def _emphasis(escaped: str) -> str:
    for pattern, tag in _EMPHASIS:
        escaped = pattern.sub(lambda match, tag=tag: f"<{tag}>{match.group(1)}</{tag}>", escaped)
    return escaped


def render_inline(text: str, *, links: bool = True) -> str:
    """One line (or a few) of inline Markdown as safe HTML."""
    text = text.replace("\x00", "")
    stash: list[str] = []

    def keep(fragment: str) -> str:
        stash.append(fragment)
        return f"\x00{len(stash) - 1}\x00"

    def replace(pattern: re.Pattern[str], make: Callable[[re.Match[str]], str]) -> None:
        nonlocal text
        text = pattern.sub(lambda match: keep(make(match)), text)

    replace(_CODE_SPAN, lambda match: f"<code>{html.escape(match.group(1))}</code>")
    if links:

        def markdown_link(match: re.Match[str]) -> str:
            # The label keeps the placeholders of code spans in it; they are filled in below.
            label = _emphasis(html.escape(match.group(1), quote=True))
            href = safe_href(match.group(2))
            return _link(href, label) if href else label

        def bare(match: re.Match[str]) -> str:
            url = match.group(0)
            trail = ""
            while url and url[-1] in _TRAILING_PUNCTUATION:
                trail = url[-1] + trail
                url = url[:-1]
            href = safe_href(url)
            shown = html.escape(url)
            return (_link(href, shown) if href else shown) + html.escape(trail)

        replace(_LINK, markdown_link)
        replace(_AUTOLINK, lambda match: _link(safe_href(match.group(1)) or "#", html.escape(match.group(1))))
        replace(_BARE_URL, bare)
    escaped = _emphasis(html.escape(text, quote=True))
    # Stashed fragments may themselves hold placeholders of earlier fragments (a code span in a link).
    for _ in range(3):
        if "\x00" not in escaped:
            break
        escaped = _PLACEHOLDER.sub(lambda match: stash[int(match.group(1))], escaped)
    return escaped.replace("\x00", "")


def _heading_text(text: str) -> str:
    """Drop a closing run of #, as Markdown does when a space stands before it."""
    text = text.rstrip()
    bare = text.rstrip("#")
    if bare != text and (not bare or bare[-1] in " \t"):
        return bare.rstrip()
    return text


def _paragraph(lines: list[str]) -> str:
    return "<p>" + "<br>".join(render_inline(line.strip()) for line in lines) + "</p>"


def _blocks(lines: list[str], depth: int) -> list[str]:
    out: list[str] = []
    paragraph: list[str] = []
    index = 0

    def flush() -> None:
        if paragraph:
            out.append(_paragraph(paragraph))
            paragraph.clear()

    while index < len(lines):
        line = lines[index]
        fence = _FENCE.match(line)
        if fence:
            flush()
            marker = fence.group(1)
            body: list[str] = []
            index += 1
            while index < len(lines) and not lines[index].lstrip().startswith(marker):
                body.append(lines[index])
                index += 1
            index += 1  # the closing fence (or the end of the text)
            out.append("<pre><code>" + html.escape("\n".join(body).replace("\x00", "")) + "</code></pre>")
            continue
        if not line.strip():
            flush()
            index += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level = min(len(heading.group(1)) + 2, 6)
            out.append(f"<h{level}>{render_inline(_heading_text(heading.group(2)))}</h{level}>")
            index += 1
            continue
        if _RULE.match(line):
            flush()
            out.append("<hr>")
            index += 1
            continue
        if _QUOTE.match(line) and depth < MAX_QUOTE_DEPTH:
            flush()
            quoted: list[str] = []
            while index < len(lines) and (match := _QUOTE.match(lines[index])):
                quoted.append(match.group(1))
                index += 1
            out.append("<blockquote>" + "".join(_blocks(quoted, depth + 1)) + "</blockquote>")
            continue
        for pattern, tag in ((_BULLET, "ul"), (_NUMBERED, "ol")):
            if pattern.match(line):
                flush()
                items: list[str] = []
                start = ""
                while index < len(lines) and (match := pattern.match(lines[index])):
                    if tag == "ol" and not items and match.group(1) != "1":
                        start = f' start="{int(match.group(1))}"'
                    items.append("<li>" + render_inline(match.group(match.lastindex or 1).strip()) + "</li>")
                    index += 1
                out.append(f"<{tag}{start}>" + "".join(items) + f"</{tag}>")
                break
        else:
            paragraph.append(line)
            index += 1
    flush()
    return out


def render(text: str) -> str:
    """Markdown text as safe HTML (empty for empty text)."""
    if not text or not text.strip():
        return ""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join(_blocks(lines, 0))
