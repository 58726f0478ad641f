"""Hiding passwords: the one place that does it, for URLs and for any text llmgine prints.

`redact` takes a URL (a string, parseable or not, or a SQLAlchemy `URL`) or any
text that may hold one (an exception message, a traceback, a log line) and
hides:

- the password in a URL's userinfo (``scheme://user:secret@host``), up to the
  *last* ``@`` of the authority, so a password holding ``@`` or ``/`` is hidden whole;
- query parameters that carry secrets (``?password=``, ``&sslpassword=``...);
- mappings printed by ``repr`` (``{'password': 'secret'}``, a driver's keyword arguments);
- libpq key-value settings (``password=secret`` or ``password='s e c'``), as
  psycopg prints a connection string.

Hiding too much is preferred to hiding too little: the result is for people
and logs, never for connecting.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL

MASK = "***"

_SECRET_NAMES = r"(?:password|passwd|pwd|sslpassword|secret|token|api_key|apikey)"

# scheme://userinfo@ : the userinfo runs to the last '@' before whitespace or a quote.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*):[^\s'\"]*@")
# ?password=... or &password=... (also ';' as a separator), up to the next separator.
_QUERY = re.compile(rf"(?P<head>[?&;]{_SECRET_NAMES}=)[^&;#\s'\"]*", re.IGNORECASE)
# libpq conninfo and keyword arguments: password=secret, password = 'quoted', password="x"
_CONNINFO = re.compile(
    rf"(?P<head>(?<![?&;\w]){_SECRET_NAMES}\s*=\s*)"
    r"""(?:\\?'(?:\\.|[^'\\])*?\\?'|"(?:\\.|[^"\\])*?"|[^\s'",)]+)""",
    re.IGNORECASE,
)
# a mapping printed by repr: {'password': 'secret'} (driver keyword arguments in a traceback)
_MAPPING = re.compile(
    rf"(?P<head>(?P<q>['\"]){_SECRET_NAMES}(?P=q)\s*:\s*)(?P<v>['\"])(?:\\.|(?!(?P=v))[^\\])*(?P=v)",
    re.IGNORECASE,
)


def redact(value: str | URL | object) -> str:
    """``value`` as text with every password in it hidden (see the module docstring)."""
    text = value.render_as_string(hide_password=True) if isinstance(value, URL) else str(value)
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _MAPPING.sub(lambda m: f"{m['head']}'{MASK}'", text)
    return _CONNINFO.sub(lambda m: f"{m['head']}{MASK}", text)
