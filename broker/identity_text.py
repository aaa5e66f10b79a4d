"""Names as the identity provider sent them, checked and passed on exactly (pure functions).

Preview apps key on the identity headers, so two different people must never reach an app
with the same header values.  Two rules get there:

* A name carrying a character nobody sees (format and bidi controls such as U+200B or U+202E,
  control characters, line separators, no-break and other non-ASCII spaces, default-ignorable
  fillers, private-use and unassigned code points) is refused at login: `hidden_character`
  names it, so the page can say which one.  Stripping it instead is what made "ada" + U+200B
  arrive as "ada".
* Every other name is passed on exactly, percent-encoded where it is not plain ASCII
  (`header_value`): full-width letters, combining marks and other scripts stay distinct from
  their look-alikes, and `urllib.parse.unquote` gives the IdP's exact text back.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# Categories that render as nothing, or as something other than themselves, in a name.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
# Default_Ignorable_Code_Point characters outside those categories (Unicode's DerivedCoreProperties):
# Hangul fillers, the combining grapheme joiner, Khmer inherent vowels, Mongolian free variation
# selectors and the variation selectors.  Fonts draw none of them.
_IGNORABLE = (
    (0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0), (0xE0100, 0xE01EF),
)
# Printable ASCII but '%' (the escape) and ',' (the groups header's separator); a space only
# inside a value: HTTP drops white space around a header value, so " ada" would read as "ada".
_PLAIN = re.compile(r"[!-$&-+\--~](?:[ !-$&-+\--~]*[!-$&-+\--~])?")
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "%,")


def hidden_character(text: str) -> str | None:
    """The first character of `text` that a reader cannot see, as "U+200B ZERO WIDTH SPACE"; else None."""
    if text.isascii():
        for ch in text:
            if not " " <= ch <= "~":
                return _describe(ch)
        return None
    for ch in text:
        if ch == " ":
            continue
        code = ord(ch)
        if unicodedata.category(ch) in _HIDDEN_CATEGORIES or any(lo <= code <= hi for lo, hi in _IGNORABLE):
            return _describe(ch)
    return None


def _describe(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    if unicodedata.category(ch) == "Co":
        return f"{code} (private use)"
    name = unicodedata.name(ch, "")
    return f"{code} {name}" if name else f"{code} ({unicodedata.category(ch)})"


def header_value(text: str) -> str:
    """`text` as a header value: unchanged when plain ASCII, else percent-encoded UTF-8.

    Injective ('%' itself is always encoded) and printable ASCII, with no comma and no
    surrounding space; `unquote(value)` is `text` again.
    """
    if _PLAIN.fullmatch(text):
        return text
    inner = quote(text, safe=_SAFE + " ", errors="surrogatepass")
    # Spaces stay readable inside a value, but not at either end.
    head = len(inner) - len(inner.lstrip(" "))
    tail = len(inner) - len(inner.rstrip(" "))
    if not inner.strip(" "):
        return "%20" * len(inner)
    return "%20" * head + inner.strip(" ") + "%20" * tail
