"""API keys: created by operators, stored only as hashes, checked in constant time.

A key reads `tq_<key id>_<secret>`. DynamoDB holds the key id, its tenant and a
SHA-256 of the secret (the secret is 256 random bits, so a slow hash adds nothing).
The key id finds the record; `hmac.compare_digest` compares the hashes. Checks are
cached per process for a short while (Lambda re-uses processes), so a revoked key
stops working within `cache_ttl_s`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskq.aws import ConditionFailed, call
from taskq.errors import InvalidRequest, Unauthorized
from taskq.text import parse_stored_time, stored_time

TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_TENANT_RE = re.compile(TENANT_PATTERN)
_KEY_RE = re.compile(r"^tq_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
KEY_MAX_CHARS = 128


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    tenant: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


class KeyStore:
    def __init__(self, table_name: str, dynamodb: Any, *, clock: Callable[[], float] = time.time):
        self.table = table_name
        self.db = dynamodb
        self.clock = clock

    def create(self, tenant: str, name: str) -> tuple[ApiKey, str]:
        """A new key for `tenant`. Returns the record and the key itself, shown only now."""
        if not _TENANT_RE.match(tenant):
            raise InvalidRequest("tenant must be 1-63 of a-z 0-9 - (starting a-z 0-9)")
        if not 1 <= len(name) <= 100 or not name.isprintable():
            raise InvalidRequest("name must be 1-100 printable characters")
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = self.clock()
        self._call(
            "put_item",
            TableName=self.table,
            Item={
                "key_id": {"S": key_id},
                "tenant": {"S": tenant},
                "name": {"S": name},
                "secret_sha256": {"S": _digest(secret)},
                "created_at": {"S": stored_time(now)},
            },
            ConditionExpression="attribute_not_exists(key_id)",  # never overwrite a key
        )
        return ApiKey(
            key_id, tenant, name, parse_stored_time(stored_time(now))
        ), f"tq_{key_id}_{secret}"

    def lookup(self, key_id: str) -> tuple[ApiKey, str] | None:
        item = self._call(
            "get_item", TableName=self.table, Key={"key_id": {"S": key_id}}, ConsistentRead=True
        ).get("Item")
        return (_record(item), item["secret_sha256"]["S"]) if item else None

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """All keys (a Scan: the key table is small and this is an operator command)."""
        args: dict[str, Any] = {"TableName": self.table}
        if tenant:
            args |= {
                "FilterExpression": "tenant = :t",
                "ExpressionAttributeValues": {":t": {"S": tenant}},
            }
        keys: list[ApiKey] = []
        while True:
            page = self._call("scan", **args)
            keys += [_record(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(keys, key=lambda k: (k.tenant, k.created_at))
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key; False if there is no such key or it was revoked already."""
        try:
            self._call(
                "update_item",
                TableName=self.table,
                Key={"key_id": {"S": key_id}},
                UpdateExpression="SET revoked_at = :now",
                ConditionExpression="attribute_exists(key_id) AND attribute_not_exists(revoked_at)",
                ExpressionAttributeValues={":now": {"S": stored_time(self.clock())}},
            )
        except ConditionFailed:
            return False
        return True

    def _call(self, operation: str, **kwargs: Any) -> Any:
        return call(self.db, "DynamoDB", operation, kwargs)


class Authenticator:
    """Turns a presented key into its tenant, or raises Unauthorized."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        cache_ttl_s: float = 30.0,
        cache_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.cache_ttl_s = cache_ttl_s
        self.cache_size = cache_size
        self.clock = clock
        # key id -> (tenant and secret hash, or None for unknown/revoked; expiry)
        self._cache: OrderedDict[str, tuple[tuple[str, str] | None, float]] = OrderedDict()

    def tenant_for(self, presented: str | None) -> str:
        if not presented:
            raise Unauthorized("an API key is required: Authorization: Bearer <key>")
        match = _KEY_RE.match(presented) if len(presented) <= KEY_MAX_CHARS else None
        if match is None:
            raise Unauthorized("invalid API key")
        key_id, secret = match.groups()
        known = self._known(key_id)
        # Compare even when the key is unknown, so timing says nothing about which part failed.
        expected = known[1] if known else _digest("")
        if not hmac.compare_digest(expected, _digest(secret)) or known is None:
            raise Unauthorized("invalid API key")
        return known[0]

    def _known(self, key_id: str) -> tuple[str, str] | None:
        now = self.clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(key_id)
            return cached[0]
        found = self.keys.lookup(key_id)
        entry = (found[0].tenant, found[1]) if found and found[0].revoked_at is None else None
        self._cache[key_id] = (entry, now + self.cache_ttl_s)
        self._cache.move_to_end(key_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry


def bearer_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-Api-Key: <key>`."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return x_api_key.strip() if x_api_key else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(item: dict[str, Any]) -> ApiKey:
    revoked = item.get("revoked_at", {}).get("S")
    return ApiKey(
        key_id=item["key_id"]["S"],
        tenant=item["tenant"]["S"],
        name=item["name"]["S"],
        created_at=parse_stored_time(item["created_at"]["S"]),
        revoked_at=parse_stored_time(revoked) if revoked else None,
    )
