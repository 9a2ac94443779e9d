"""API keys with scopes: `--keys FILE` (and `--api-key KEY`, one admin key named 'api-key').

The keys file is JSON, a list of objects:

    [{"name": "alice", "key": "a-long-random-string", "scope": "admin"},
     {"name": "reader", "key": "another-long-random-string", "scope": "read"}]

`read` asks and searches; `admin` also creates and deletes knowledge bases and uploads and deletes
files. A request's key is compared with every key in constant time (hmac.compare_digest, no early
exit), so the time taken says nothing about which key came close. A key is never logged, echoed
or put in an error: errors name the key's `name` only.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

SCOPES = ("read", "admin")
MIN_KEY_CHARS = 16
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: bytes = field(repr=False)  # never in a repr, a log line or an error
    scope: str

    def allows(self, scope: str) -> bool:
        return self.scope == "admin" or scope == "read"


def read_keys_file(path: str | Path) -> list[ApiKey]:
    """The keys of a keys file; UsageError (exit 2) naming the entry and what is wrong, never the key."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no keys file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"the keys file {path} is not readable JSON ({type(e).__name__})") from None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"the keys file {path} must hold a non-empty JSON list of {{name, key, scope}} objects")
    keys: list[ApiKey] = []
    for i, e in enumerate(entries, 1):
        where = f"entry {i} of the keys file {path}"
        if not isinstance(e, dict) or set(e) - {"name", "key", "scope"}:
            raise UsageError(f"{where} must be an object with only 'name', 'key' and 'scope'")
        name, key, scope = e.get("name"), e.get("key"), e.get("scope")
        if not isinstance(name, str) or not _NAME.match(name):
            raise UsageError(f"{where}: 'name' must be 1-64 letters, digits or '_.@-'")
        if scope not in SCOPES:
            raise UsageError(f"{where} ('{name}'): 'scope' must be 'read' or 'admin'")
        if not isinstance(key, str) or len(key) < MIN_KEY_CHARS or not key.isprintable() or " " in key:
            raise UsageError(f"{where} ('{name}'): 'key' must be a string of at least {MIN_KEY_CHARS} printable "
                             "characters without spaces")
        if any(k.name == name for k in keys):
            raise UsageError(f"{where}: the name '{name}' is used twice")
        if any(hmac.compare_digest(k.key, key.encode()) for k in keys):
            raise UsageError(f"{where} ('{name}'): the same key is given twice")
        keys.append(ApiKey(name, key.encode(), scope))
    return keys


def all_keys(api_key: str | None, keys_file: str | Path | None) -> list[ApiKey]:
    """--api-key (one admin key named 'api-key') plus the keys file's keys."""
    keys = [ApiKey("api-key", api_key.encode(), "admin")] if api_key else []
    if keys_file:
        keys += read_keys_file(keys_file)
    return keys


def match_key(given: str, keys: list[ApiKey]) -> ApiKey | None:
    """The key equal to `given`, comparing with every key in constant time."""
    raw = given.encode("utf-8", "replace")
    found = None
    for k in keys:
        if hmac.compare_digest(raw, k.key):
            found = k
    return found


def scope_needed(method: str, path: str) -> str:
    """'admin' for what changes knowledge bases (create, upload, delete), else 'read'."""
    if path.startswith("/v1/vector_stores") and method in ("POST", "DELETE", "PUT", "PATCH"):
        return "admin"
    return "read"
