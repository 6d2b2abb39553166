"""Credentials of the steps: an environment variable first (a laptop, CI), else a field
of a ZenML secret (a shared server; stacks resolve it on every orchestrator)."""

from __future__ import annotations

import os

from zenml.client import Client


class SecretFieldMissing(KeyError):
    """The ZenML secret exists but lacks the field."""

    def __str__(self) -> str:
        return str(self.args[0])


def env_or_secret(env: str, secret_name: str, field: str) -> str | None:
    """``$env``, else the ``field`` of the ZenML secret ``secret_name``; ``None`` when
    neither exists. Raises ``SecretFieldMissing`` for a secret without the field."""
    if os.environ.get(env):
        return os.environ[env]
    try:
        secret = Client().get_secret(
            secret_name, allow_partial_name_match=False, allow_partial_id_match=False
        )
    except KeyError:
        return None
    value = secret.secret_values.get(field)
    if not value:
        raise SecretFieldMissing(f"ZenML secret {secret_name!r} has no {field!r} value")
    return str(value)
