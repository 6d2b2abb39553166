"""The model control plane: stages of ZenML model versions, mirrored as MLflow registry
aliases and as stage pointers in the model channel.

Every stage change goes the same way, whichever command or step asks for it: the
channel pointer first (a version is verified in the channel before a pointer names
it), then the ZenML stage (the version that held the stage is archived), then the
MLflow aliases, then the stage history (who, when, why) in the model version's
metadata, which is what ``rollback`` reads.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import Any

from zenml import log_metadata
from zenml.client import Client
from zenml.enums import ModelStages
from zenml.logger import get_logger
from zenml.models import ModelVersionResponse

from edge_runtime.storage import open_store
from visionloop.deploy.channel import DEFAULT_TTL_HOURS, ChannelPublisher, now_iso
from visionloop.deploy.signing import (
    SigningKey,
    SigningKeyError,
    from_environment,
    generate,
    parse_private_key,
)

logger = get_logger(__name__)

SECRET_KEY_FIELD = "private_key"
PRODUCTION, STAGING, ARCHIVED = "production", "staging", "archived"


class PromotionError(RuntimeError):
    """A stage change was refused; the message says why and what to do."""


def signing_key(secret_name: str, create: bool = False) -> SigningKey:
    """The channel's private key: ``$VISIONLOOP_SIGNING_KEY`` (or ``_FILE``), else the
    ZenML secret ``secret_name``. With ``create``, a missing key is generated and kept
    in that secret (the local stack's first run); otherwise it is an error."""
    key = from_environment()
    if key is not None:
        return key
    client = Client()
    try:
        secret = client.get_secret(secret_name, allow_partial_name_match=False, allow_partial_id_match=False)
    except KeyError:
        secret = None
    if secret is not None:
        value = secret.secret_values.get(SECRET_KEY_FIELD)
        if not value:
            raise SigningKeyError(f"ZenML secret {secret_name!r} has no {SECRET_KEY_FIELD!r} value")
        return parse_private_key(value, f"ZenML secret {secret_name}")
    if not create:
        raise SigningKeyError(
            f"no channel signing key: set $VISIONLOOP_SIGNING_KEY or create the ZenML secret "
            f"{secret_name!r} (`zenml secret create {secret_name} --{SECRET_KEY_FIELD}=@key.pem`)"
        )
    key = generate(f"ZenML secret {secret_name}")
    client.create_secret(secret_name, values={SECRET_KEY_FIELD: key.private_pem()})
    logger.info("Created channel signing key %s in the ZenML secret %s", key.key_id, secret_name)
    return key


def default_channel() -> str:
    """``$VISIONLOOP_CHANNEL``, else the active stack's channel (``stacks/<env>.yaml``)."""
    from stacks.bootstrap import stack_channel

    return os.environ.get("VISIONLOOP_CHANNEL") or stack_channel()


def publisher(
    channel: str, key: SigningKey, s3_endpoint: str | None = None, ttl_hours: float | None = None
) -> ChannelPublisher:
    """A publisher for ``channel``; its pointers expire ``ttl_hours`` after they are
    written (``deploy.pointer_ttl_hours``; None: the default, 168)."""
    return ChannelPublisher(open_store(channel, s3_endpoint), key, ttl_hours or DEFAULT_TTL_HOURS)


def ttl_of(settings: Any) -> float:
    """``deploy.pointer_ttl_hours`` of a DeploySettings (the default for settings objects
    written before the field existed, e.g. a cached step's)."""
    return float(getattr(settings, "pointer_ttl_hours", DEFAULT_TTL_HOURS))


def mlflow_client() -> Any:
    import mlflow

    tracker: Any = Client().active_stack.experiment_tracker
    uri = tracker.get_tracking_uri() if tracker is not None else None
    return mlflow.MlflowClient(tracking_uri=uri)


def model_version(name: str, version: str | ModelStages) -> ModelVersionResponse:
    try:
        return Client().get_model_version(name, version)
    except KeyError as exc:
        raise PromotionError(f"model {name!r} has no version {getattr(version, 'value', version)!r}") from exc


def version_in_stage(name: str, stage: str) -> ModelVersionResponse | None:
    try:
        return Client().get_model_version(name, ModelStages(stage))
    except KeyError:
        return None


def load_artifact(version: Any, name: str) -> Any:
    """Load the artifact ``name`` linked to a model version (a ``Model`` in a step
    context, or a ``ModelVersionResponse``)."""
    artifact = version.get_artifact(name)
    if artifact is None:
        raise PromotionError(
            f"model version {version.name} {version.version if hasattr(version, 'version') else ''} "
            f"has no {name!r} artifact"
        )
    return artifact.load()


def mlflow_version(name: str, version: ModelVersionResponse) -> str | None:
    """The MLflow registered version that mirrors a ZenML model version."""
    recorded = version.run_metadata.get("mlflow_model_version")
    if recorded:
        return str(recorded)
    try:
        found = mlflow_client().search_model_versions(
            f"name='{name}' and tags.zenml_model_version='{version.name}'"
        )
    except Exception:  # noqa: BLE001 - no registry is not an error of the control plane
        return None
    return str(found[0].version) if found else None


def history(version: ModelVersionResponse) -> list[dict[str, Any]]:
    value = version.run_metadata.get("stage_history")
    return list(value) if isinstance(value, list) else []


def _record(name: str, version: ModelVersionResponse, event: dict[str, Any]) -> None:
    log_metadata(
        metadata={"stage_history": [*history(version), event], "stage": event["stage"]},
        model_name=name,
        model_version=str(version.name),
    )


def _mirror_mlflow(
    name: str, version: ModelVersionResponse, stage: str, archived: ModelVersionResponse | None
) -> None:
    client = mlflow_client()
    registered = mlflow_version(name, version)
    if registered is None:
        logger.warning("Model %s version %s has no MLflow registered version to mirror", name, version.name)
        return
    client.set_registered_model_alias(name, stage, registered)
    client.set_model_version_tag(name, registered, "zenml_stage", stage)
    if stage == PRODUCTION:
        try:
            current_staging = client.get_model_version_by_alias(name, STAGING)
        except Exception:  # noqa: BLE001 - no staging alias
            current_staging = None
        if current_staging is not None and str(current_staging.version) == registered:
            client.delete_registered_model_alias(name, STAGING)
    if archived is not None:
        old = mlflow_version(name, archived)
        if old is not None and old != registered:
            client.set_model_version_tag(name, old, "zenml_stage", ARCHIVED)


@dataclass(frozen=True)
class StageChange:
    model: str
    version: str
    stage: str
    archived: str | None
    pointer_sequence: int
    channel: str


def set_stage(
    name: str,
    version: str,
    stage: str,
    channel: ChannelPublisher,
    who: str | None = None,
    why: str = "",
    run: str | None = None,
) -> StageChange:
    """Put ``version`` in ``stage`` (staging or production) everywhere, in the order of
    the module docstring. The version must be published in the channel."""
    if stage not in (STAGING, PRODUCTION):
        raise PromotionError(f"stage must be {STAGING} or {PRODUCTION}, not {stage!r}")
    target = model_version(name, version)
    holder = version_in_stage(name, stage)
    pointer = channel.set_pointer(name, stage, str(target.name), reason=why)
    target.set_stage(ModelStages(stage), force=True)
    archived = holder if holder is not None and holder.id != target.id else None
    _mirror_mlflow(name, target, stage, archived)
    who = who or getpass.getuser()
    event = {"stage": stage, "at": now_iso(), "by": who, "why": why, "run": run, "sequence": pointer.sequence}
    _record(name, model_version(name, version), event)
    if archived is not None:
        _record(
            name,
            model_version(name, str(archived.name)),
            {
                "stage": ARCHIVED,
                "at": event["at"],
                "by": who,
                "why": f"replaced by version {target.name} in {stage}",
            },
        )
    logger.info(
        "Model %s version %s is now in %s%s (channel %s)",
        name,
        target.name,
        stage,
        f"; version {archived.name} archived" if archived is not None else "",
        channel.store.uri,
    )
    return StageChange(
        name,
        str(target.name),
        stage,
        str(archived.name) if archived else None,
        pointer.sequence,
        channel.store.uri,
    )


def recorded_channel(name: str, version: str | None = None) -> str | None:
    """The channel a version was published to (the newest version's when ``version``
    is None), as the deployment pipeline recorded it."""
    try:
        mv = Client().get_model_version(name, version) if version else Client().get_model_version(name)
    except KeyError:
        return None
    value = mv.run_metadata.get("channel_root")
    return str(value) if value else None


def staging_passed(version: ModelVersionResponse) -> bool:
    return bool(version.run_metadata.get("staging_checks_passed"))


def promote(
    name: str,
    version: str,
    to: str,
    channel: ChannelPublisher,
    who: str | None,
    why: str,
    force: bool = False,
) -> StageChange:
    """What ``python run.py promote`` does: production only for a version that is
    published and passed its staging checks (``force`` skips the latter, and says so)."""
    target = model_version(name, version)
    if to == PRODUCTION and not staging_passed(target):
        if not force:
            raise PromotionError(
                f"{name} version {version} has not passed its staging checks; run the deployment "
                "pipeline on it first (or pass --force to promote it anyway)"
            )
        why = f"{why} [forced without staging checks]".strip()
    return set_stage(name, version, to, channel, who=who, why=why)


def all_versions(name: str) -> list[ModelVersionResponse]:
    """Every version of model ``name`` (none when there is no such model)."""
    client = Client()
    try:
        model_id = client.get_model(name).id
    except KeyError:
        return []
    return list(client.list_model_versions(model=model_id, size=1000, hydrate=True).items)


def previous_production(name: str) -> ModelVersionResponse | None:
    """The version that was in production most recently before the current one."""
    current = version_in_stage(name, PRODUCTION)
    best: tuple[str, ModelVersionResponse] | None = None
    for v in all_versions(name):
        if current is not None and v.id == current.id:
            continue
        times = [e["at"] for e in history(v) if e.get("stage") == PRODUCTION]
        if times and (best is None or max(times) > best[0]):
            best = (max(times), v)
    return best[1] if best else None


def rollback(name: str, channel: ChannelPublisher, who: str | None, why: str) -> StageChange:
    """Put the previous production version back in production (channel, ZenML, MLflow)."""
    previous = previous_production(name)
    if previous is None:
        raise PromotionError(f"{name} has no earlier production version to roll back to")
    current = version_in_stage(name, PRODUCTION)
    reason = why or f"rollback from version {current.name if current else 'none'}"
    return set_stage(name, str(previous.name), PRODUCTION, channel, who=who, why=reason)


def status(name: str, channel: ChannelPublisher | None = None) -> dict[str, Any]:
    """Stages of every version, and the channel's pointers."""
    versions = all_versions(name)
    out: dict[str, Any] = {
        "model": name,
        "versions": [
            {
                "version": str(v.name),
                "stage": str(getattr(v.stage, "value", v.stage) or "none"),
                "test_map50": v.run_metadata.get("test_map50"),
                "test_map50_95": v.run_metadata.get("test_map50_95"),
                "dataset_version_id": v.run_metadata.get("dataset_version_id"),
                "staging_checks_passed": v.run_metadata.get("staging_checks_passed"),
                "created": v.created.strftime("%Y-%m-%d %H:%M") if v.created else None,
                "last_change": history(v)[-1] if history(v) else None,
            }
            for v in sorted(versions, key=lambda v: v.number)
        ],
    }
    if channel is not None:
        out["channel"] = channel.store.uri
        out["pointers"] = {
            stage: (p.version if (p := channel.pointer(name, stage)) else None)
            for stage in (STAGING, PRODUCTION)
        }
    return out
