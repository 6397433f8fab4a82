"""Redaction of one collected file's bytes before it enters the support bundle.

Four rule sets run over the whole buffer, each one compiled bytes regex (files may not be UTF-8):
the known secret values of the deployment, PEM private keys, passwords inside URLs, and the values
of password-like keys and directives in config files, shell environments and command lines.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import zlib
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

from viocli.redact import MASK as _MASK_STR
from viocli.redact import MIN_SECRET_LENGTH

MASK = _MASK_STR.encode()
PRIVATE_KEY_MARKER = b"******** (private key removed by viocli getlogs)"
DEFAULT_MAX_DECOMPRESSED = 512 * 1024 * 1024

# Words that make a key's value a secret (matched inside key names, case-insensitive).
# ``_key``/``_pass``/``_auth`` only as the key's last word: ``memcache_secret_key``, ``encryption_key``,
# RabbitMQ's ``default_pass``, Galera's ``wsrep_sst_auth`` (user:password), but not ``max_active_keys``,
# ``ssl_key_file``, ``auth_type``, ``auth_url`` or ``keystone_*``.
_SECRET_WORDS = rb"pass(?:word|wd|phrase)|secret|token|credential|api[_-]?key|_(?:key|pass|auth)(?![a-z_])"

# A key that names a secret word but holds something about it, not it: lifetimes and expiry
# (``token_lifetime``, ``keystone_token_expiration``, ``password_expires_days``), counts and sizes
# (``max_token_size``, ``unique_last_password_count``), flags and role lists (``send_service_user_token``,
# ``service_token_roles_required``, ``change_password_upon_first_use``), providers, formats, locations
# (``password_file``, ``token_url``) and cache settings (``token_cache_time``).
# Matched against whole words of the key's last dotted part, so ``user_password`` ("user") is still masked.
# None of these ever holds a secret in OpenStack, RabbitMQ, MariaDB, HAProxy or shell configs.
_NOT_SECRET_WORDS = frozenset(
    b"""
    lifetime expiration expires expire expiry ttl timeout time age days duration interval
    count size length limit max min attempts
    roles role required require enabled enable send use allow
    provider format type algorithm algorithms cache caching regex policy methods method
    file path dir directory url uri endpoint
    """.split()
)

_KEYWORD = re.compile(_SECRET_WORDS)
_KEY_WORD_SPLIT = re.compile(rb"[_.\-]+")
_KEY_TAIL = re.compile(rb"[\w.-]*\Z")
_EMPTY_VALUES = frozenset({b"", b'""', b"''", b"<none>"})
_BLOCK_SCALAR = re.compile(rb"[|>][-+0-9]*")

_PRIVATE_KEY = re.compile(
    rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    rb"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
    # A truncated block (a log cut mid-key): its headers and everything base64-like after it.
    rb"|(?:[ \t]*(?:Proc-Type|DEK-Info|Comment):[^\r\n]*\r?\n)*[A-Za-z0-9+/=\s\\]*)",
    re.DOTALL,
)

# ``scheme://user:PASSWORD@host`` and each further ``,user:PASSWORD@host`` of a transport_url.
# The password may hold a raw ``@`` or ``/`` (SQLAlchemy accepts both): it runs to the ``@`` after
# which comes a host (and port) not followed by another ``@``.
_URL_CREDENTIALS = re.compile(rb"(?P<head>(?:://|,)[^\s:/?#@,\"'<>]*:)(?P<val>\S*?)(?P<tail>@[\w.:\[\]%~-]*+)(?!@)")

# The patterns below are matched against the lowercased buffer (bytes.lower keeps every offset):
# case-sensitive patterns keep the regex engine's fast literal-prefix search, which IGNORECASE loses.

# ``key = value`` (INI), ``key: value`` (YAML), ``KEY=value`` / ``export KEY="value"`` (shell) at the start
# of a line: the whole rest of the line is the value, or a YAML block scalar's indented lines.
_LINE_KEY = re.compile(
    rb"^(?P<indent>[ \t]*)(?P<head>(?:-[ \t]+)?(?:export[ \t]+)?(?P<q>[\"']?)"
    rb"(?P<key>[\w.-]*?(?:" + _SECRET_WORDS + rb")[\w.-]*)(?P=q)[ \t]*[=:][ \t]*)"
    rb"(?P<val>[|>][-+0-9]*[ \t]*(?P<block>(?:\r?\n(?:[ \t]*(?=\r?\n)|(?P=indent)[ \t]+[^\r\n]*))+)|[^\r\n]*)",
    re.MULTILINE,
)

# The same keys inside a line (logs, JSON bodies, ``--password=x``, ``{'token': 'x'}``): one token
# or quoted string. The match starts at the secret word; the key's start is found by looking back.
_INLINE_KEY = re.compile(
    rb"(?P<key>(?:" + _SECRET_WORDS + rb")[\w.-]*)[\"']?[ \t]*[=:][ \t]*"
    rb"(?P<val>\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'|[^\s\"'&]+)"
)

# Command-line options with the value as the next argument: ``--os-password x``.
_OPTION_KEY = re.compile(
    rb"-(?<![\w-]-)(?P<key>-?[\w-]*?(?:" + _SECRET_WORDS + rb")[\w-]*)[ \t]+"
    rb"(?P<val>\"(?:[^\"\\\r\n]|\\.)*\"|'[^'\r\n]*'|(?!-)[^\s\"']+)"
)

# Space-separated directives whose argument is a password: HAProxy's ``stats auth user:pass`` and
# userlist ``user x password|insecure-password y``, keepalived's ``auth_pass`` (which holds only the
# first 8 characters of the stored VRRP password, so the known values alone would not catch it),
# Redis's ``requirepass``/``masterauth``.
_DIRECTIVE = re.compile(
    rb"^[ \t]*(?:stats[ \t]+auth[ \t]+[^:\s]*:|(?:auth_pass|requirepass|masterauth)[ \t]+"
    rb"|user[ \t]+\S+[ \t]+(?:insecure-)?password[ \t]+)(?P<val>[^\r\n]*)",
    re.MULTILINE,
)

# SQL in MariaDB logs and dumps: ``IDENTIFIED BY 'x'``, ``IDENTIFIED BY PASSWORD '*hash'``,
# ``IDENTIFIED WITH plugin USING 'x'``, ``PASSWORD('x')``.
_SQL_PASSWORD = re.compile(
    rb"(?:identified[ \t]+(?:by|with[ \t]+\w+[ \t]+(?:by|using|as))[ \t]+(?:password[ \t]+)?"
    rb"|password[ \t]*\([ \t]*)(?P<val>'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\")"
)

# One edit: replace data[start:end] with the bytes given.
_Edit = tuple[int, int, bytes]
_Rule = Callable[[re.Match[bytes], bytes], "_Edit | None"]


def _is_secret_key(key: bytes) -> bool:
    """Whether a key's value is a secret: its last dotted part names a secret word and no non-secret word."""
    last = key.rsplit(b".", 1)[-1].lower()
    if not _KEYWORD.search(last):
        return False
    return not any(word in _NOT_SECRET_WORDS for word in _KEY_WORD_SPLIT.split(last))


def _value_edit(match: re.Match[bytes], data: bytes) -> _Edit | None:
    """Mask the ``val`` group (its quotes and trailing blanks kept), or None if it is empty or masked."""
    start, end = match.span("val")
    value = data[start:end].rstrip(b" \t")
    end = start + len(value)
    if value.lower() in _EMPTY_VALUES:
        return None
    quote_char = value[:1]
    if len(value) >= 2 and quote_char in (b'"', b"'") and value.endswith(quote_char):
        start, end, value = start + 1, end - 1, value[1:-1]
    if value in (MASK, PRIVATE_KEY_MARKER):
        return None
    return start, end, MASK


def _url_edit(match: re.Match[bytes], data: bytes) -> _Edit | None:
    if match["val"] in (b"", MASK):
        return None
    return match.start("val"), match.end("val"), MASK


def _line_key_edit(match: re.Match[bytes], data: bytes) -> _Edit | None:
    if not _is_secret_key(match["key"]):
        return None
    if match["block"] is not None:
        newline = b"\r\n" if match["block"].startswith(b"\r\n") else b"\n"
        return match.start("block"), match.end("block"), newline + match["indent"] + b"  " + MASK
    return _value_edit(match, data)


def _inline_key_edit(match: re.Match[bytes], data: bytes) -> _Edit | None:
    # The match starts at the secret word: the key's start lies before it (``memcache_`` of ``memcache_secret_key``).
    before = _KEY_TAIL.search(match.string, max(0, match.start() - 256), match.start())
    key = (before.group(0) if before else b"") + match["key"]
    if not _is_secret_key(key) or _BLOCK_SCALAR.fullmatch(match["val"]):
        return None
    return _value_edit(match, data)


def _option_key_edit(match: re.Match[bytes], data: bytes) -> _Edit | None:
    return _value_edit(match, data) if _is_secret_key(match["key"]) else None


def _apply(pattern: re.Pattern[bytes], rule: _Rule, data: bytes, haystack: bytes) -> tuple[bytes, int]:
    """Apply ``rule`` to each match of ``pattern`` in ``haystack`` (``data`` or its lowercase copy)."""
    parts: list[bytes] = []
    position = 0
    for match in pattern.finditer(haystack):
        edit = rule(match, data)
        if edit is None:
            continue
        start, end, new = edit
        parts += (data[position:start], new)
        position = end
    if not parts:
        return data, 0
    parts.append(data[position:])
    return b"".join(parts), len(parts) // 2


def _variants(value: str) -> set[str]:
    """The forms a secret takes in the files collected: as is, URL-quoted, JSON-escaped, oslo.config-escaped."""
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1]}
    if "$" in value:
        # oslo.config interpolates ``$name``: templates write a literal ``$`` as ``$$``.
        forms.add(value.replace("$", "$$"))
    return forms


_CASE_FOLDED_RULES: tuple[tuple[re.Pattern[bytes], _Rule], ...] = (
    (_LINE_KEY, _line_key_edit),
    (_DIRECTIVE, _value_edit),
    (_INLINE_KEY, _inline_key_edit),
    (_OPTION_KEY, _option_key_edit),
    (_SQL_PASSWORD, _value_edit),
)


class BundleRedactor:
    """Masks known secret values and secret-looking content in the bytes of collected files."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        secrets: set[bytes] = set()
        for value in values:
            if value is None or len(str(value)) < MIN_SECRET_LENGTH:
                continue
            secrets.update(form.encode("utf-8") for form in _variants(str(value)))
        self._secrets = tuple(sorted(secrets, key=lambda s: (-len(s), s)))

    def _mask_known(self, data: bytes) -> tuple[bytes, int]:
        """Mask every occurrence of every known value (overlapping ones merged into one mask).

        Masking the union of all occurrences covers a secret that contains another, and one that
        overlaps another, whole; ``bytes.find`` per value is far faster than one big alternation.
        """
        spans: list[tuple[int, int]] = []
        for value in self._secrets:
            found = data.find(value)
            while found != -1:
                spans.append((found, found + len(value)))
                found = data.find(value, found + 1)
        if not spans:
            return data, 0
        spans.sort()
        parts: list[bytes] = []
        position = 0
        start, end = spans[0]
        for next_start, next_end in spans[1:]:
            if next_start < end:
                end = max(end, next_end)
                continue
            parts += (data[position:start], MASK)
            position, start, end = end, next_start, next_end
        parts += (data[position:start], MASK, data[end:])
        return b"".join(parts), (len(parts) - 1) // 2

    def redact(self, data: bytes) -> tuple[bytes, int]:
        """Mask every secret in ``data``; returns the redacted bytes and the number of replacements."""
        data, total = self._mask_known(data)
        data, count = _PRIVATE_KEY.subn(PRIVATE_KEY_MARKER, data)
        total += count
        data, count = _apply(_URL_CREDENTIALS, _url_edit, data, data)
        total += count
        for pattern, rule in _CASE_FOLDED_RULES:
            data, count = _apply(pattern, rule, data, data.lower())
            total += count
        return data, total

    def redact_file(
        self, name: str, data: bytes, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED
    ) -> tuple[bytes, int]:
        """Redact one file; ``.gz``, ``.xz`` and ``.bz2`` files are redacted inside and compressed again.

        Data that does not start like its compression format is redacted as raw bytes. A compressed
        stream that breaks midway keeps its redacted readable part plus a marker line (the raw
        compressed bytes could hide a secret from every rule). A file that decompresses to more than
        ``max_decompressed`` bytes is replaced by a marker, counted as one replacement.
        """
        codec = next((c for c in _CODECS if name.endswith(c.suffix)), None)
        if codec is None or not data.startswith(codec.magic):
            return self.redact(data)
        plain, error = codec.read(data, max_decompressed + 1)
        if len(plain) > max_decompressed:
            marker = f"[viocli getlogs: {name} dropped: it decompresses to more than {max_decompressed} bytes]\n"
            return codec.compress(marker.encode()), 1
        redacted, count = self.redact(plain)
        if error is not None:
            redacted += f"\n[viocli getlogs: the rest of {name} dropped: {error}]\n".encode()
        return codec.compress(redacted), count


class _Codec:
    """One compression format: its file suffix, magic bytes, and a bounded reader."""

    def __init__(
        self,
        suffix: str,
        magic: bytes,
        opener: Callable[[io.BytesIO], io.BufferedIOBase],
        compress: Callable[[bytes], bytes],
    ) -> None:
        self.suffix = suffix
        self.magic = magic
        self._opener = opener
        self.compress = compress

    def read(self, data: bytes, limit: int) -> tuple[bytes, str | None]:
        """At most ``limit`` decompressed bytes, and why reading stopped early (None if the stream is whole)."""
        out = bytearray()
        try:
            with self._opener(io.BytesIO(data)) as stream:
                while len(out) < limit:
                    chunk = stream.read(min(1 << 16, limit - len(out)))
                    if not chunk:
                        break
                    out += chunk
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            return bytes(out), f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return bytes(out), None


_CODECS = (
    _Codec(
        ".gz",
        b"\x1f\x8b",
        lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
        lambda d: gzip.compress(d, compresslevel=6, mtime=0),
    ),
    _Codec(".xz", b"\xfd7zXZ\x00", lzma.LZMAFile, lzma.compress),
    _Codec(".bz2", b"BZh", bz2.BZ2File, bz2.compress),
)
