"""The Label Studio client of the labeling steps, with its API key from the
environment or a ZenML secret."""

from __future__ import annotations

from steps.secrets import SecretFieldMissing, env_or_secret
from visionloop.config import LabelSettings
from visionloop.labeling.studio import API_KEY_ENV, LabelStudioError, Studio

SECRET_FIELD = "api_key"


def api_key(secret_name: str) -> str | None:
    """``$LABEL_STUDIO_API_KEY``, else the ``api_key`` of the ZenML secret ``secret_name``."""
    try:
        return env_or_secret(API_KEY_ENV, secret_name, SECRET_FIELD)
    except SecretFieldMissing as exc:
        raise LabelStudioError(str(exc)) from exc


def studio(settings: LabelSettings) -> Studio:
    key = api_key(settings.api_key_secret)
    if key is None:
        raise LabelStudioError(
            f"no API key for Label Studio at {settings.url}: set ${API_KEY_ENV}, or keep it in ZenML: "
            f"`zenml secret create {settings.api_key_secret} --{SECRET_FIELD}=<token>` (Label Studio: "
            "Account & Settings → Personal Access Token)"
        )
    return Studio(settings.url, key, timeout=settings.timeout_s)
