"""``python run.py channel ...``: the operator's commands for the model channel's
freshness and keys (the design: ``edge_runtime/trust.py``; the procedures step by step:
docs/edge_runtime.md, *Keys*).

    python run.py channel refresh                       # re-sign every pointer with a fresh expiry
    python run.py channel keys generate --out root.pem  # an Ed25519 key file (keep the root offline)
    python run.py channel keys init --root-key-file root.pem
    python run.py channel keys rotate --root-key-file root.pem --new-key-file signing-2.pem
    python run.py channel keys revoke 34750f98bd59fcfc --root-key-file root.pem --add-key-file signing-2.pem
    python run.py channel keys show

The signing key is the pipeline's (``$VISIONLOOP_SIGNING_KEY`` or the ZenML secret
``deploy.signing_secret``); the root key is only ever read from the file given, on the
machine the operator keeps offline.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import click

from edge_runtime import ed25519
from edge_runtime.channel import VerificationError
from edge_runtime.storage import StorageError, Store, open_store
from edge_runtime.trust import KEYS_DOCUMENT, MAX_KEYS_BYTES
from visionloop.deploy import keys
from visionloop.deploy.channel import ChannelPublisher
from visionloop.deploy.signing import SigningKey, SigningKeyError, generate, parse_private_key

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "metal_tags.yaml"


def _config(config_path: Path) -> Any:
    from visionloop.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _store(config: Any, channel: str | None) -> Store:
    if channel is None:
        from pipelines.launch import resolve_channel

        channel = resolve_channel(config)
    return open_store(channel, config.deploy.s3_endpoint)


def _signing_key(config: Any) -> SigningKey:
    from steps.deployment import control_plane
    from visionloop.deploy.signing import from_environment

    if from_environment() is None:  # the ZenML secret: needs a stack
        from stacks.bootstrap import ensure_stack

        ensure_stack("local", activate=False)
    return control_plane.signing_key(config.deploy.signing_secret)


def _key_file(path: Path) -> SigningKey:
    try:
        return parse_private_key(path.read_text(), str(path))
    except OSError as exc:
        raise click.ClickException(f"cannot read the key file {path}: {exc}") from exc


def _public(path: Path) -> bytes:
    return _key_file(path).public_raw


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Use-case configuration (deploy section: channel, signing secret, pointer_ttl_hours).",
)
channel_option = click.option(
    "--channel", help="The model channel (folder or s3://...); default: the config's."
)
root_option = click.option(
    "--root-key-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="The offline root key (PEM or seed file).",
)


def _errors(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (keys.KeyDocumentError, SigningKeyError, VerificationError, StorageError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group()
def channel() -> None:
    """The model channel: pointer freshness and the keys devices trust."""


@channel.command()
@click.argument("model", required=False)
@click.option(
    "--resign", is_flag=True, help="Also re-sign manifests signed by another key (after a rotation)."
)
@click.option(
    "--ttl-hours", type=click.FloatRange(min=0, min_open=True), help="Default: deploy.pointer_ttl_hours."
)
@channel_option
@config_option
@_errors
def refresh(
    model: str | None, resign: bool, ttl_hours: float | None, channel: str | None, config_path: Path
) -> None:
    """Re-sign every stage pointer (of MODEL, or of all) with the next sequence and a
    fresh expiry. Run it on a schedule shorter than the TTL, like monitoring: a device
    whose pointer expired keeps serving and reports `channel: stale`."""
    from steps.deployment import control_plane

    config = _config(config_path)
    store = _store(config, channel)
    ttl = ttl_hours or control_plane.ttl_of(config.deploy)
    publisher = ChannelPublisher(store, _signing_key(config), ttl)
    done = publisher.refresh(model, resign=resign)
    for p in done:
        click.echo(f"{p.model}/{p.stage}: version {p.version}, sequence {p.sequence}, expires {p.expires_at}")
    if not done:
        click.echo(f"no pointers in {store.uri}")


@channel.group("keys")
def keys_group() -> None:
    """Root-signed key documents: which signing keys devices accept, which are revoked."""


@keys_group.command("generate")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
def keys_generate(out: Path) -> None:
    """Write a new Ed25519 private key (PEM, mode 0600) and its public key beside it."""
    if out.exists():
        raise click.ClickException(f"{out} exists; a key file is never overwritten")
    key = generate(str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.private_pem())
    public = out.with_name(out.name.removesuffix(".pem") + ".pub.pem")
    public.write_text(key.public_pem)
    click.echo(f"key {key.key_id}: private {out} (keep it secret), public {public}")


@keys_group.command("init")
@root_option
@channel_option
@config_option
@_errors
def keys_init(root_key_file: Path, channel: str | None, config_path: Path) -> None:
    """Write the first key document: the pipeline's signing key, signed by root."""
    config = _config(config_path)
    store = _store(config, channel)
    if store.get(KEYS_DOCUMENT, MAX_KEYS_BYTES) is not None:
        raise click.ClickException(f"{store.uri}/{KEYS_DOCUMENT} exists; use `keys rotate` or `keys revoke`")
    doc = keys.write(store, _key_file(root_key_file), add=[_signing_key(config).public_raw], reason="init")
    click.echo(
        f"key document version {doc.version} in {store.uri}: signing keys {', '.join(doc.signing_keys)}"
    )
    click.echo(f"give devices --root-key {keys.ROOT_PUBLIC} (root key {doc.root_key_id}), out of band")


@keys_group.command("rotate")
@root_option
@click.option("--new-key-file", type=click.Path(path_type=Path, exists=True, dir_okay=False), required=True)
@click.option("--keep-old", is_flag=True, help="Keep the old signing keys valid too (an overlap).")
@click.option("--reason", default="rotation")
@channel_option
@config_option
@_errors
def keys_rotate(
    root_key_file: Path,
    new_key_file: Path,
    keep_old: bool,
    reason: str,
    channel: str | None,
    config_path: Path,
) -> None:
    """Name a new signing key; the old ones are revoked unless --keep-old. Then make the
    new key the pipeline's and run `channel refresh --resign`."""
    config = _config(config_path)
    store = _store(config, channel)
    root = _key_file(root_key_file)
    current, _ = keys.current(store, root)
    new = _public(new_key_file)
    old = [k for k in (current.signing_keys if current else {}) if k != ed25519.key_id(new)]
    doc = keys.write(store, root, add=[new], revoke=[] if keep_old else old, reason=reason)
    click.echo(
        f"key document version {doc.version}: signing keys {', '.join(doc.signing_keys)}"
        + (f"; revoked {', '.join(sorted(doc.revoked))}" if doc.revoked else "")
    )


@keys_group.command("revoke")
@click.argument("key_id")
@root_option
@click.option("--add-key-file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--reason", default="revoked")
@channel_option
@config_option
@_errors
def keys_revoke(
    key_id: str,
    root_key_file: Path,
    add_key_file: Path | None,
    reason: str,
    channel: str | None,
    config_path: Path,
) -> None:
    """Revoke KEY_ID for good (a leaked key), optionally naming its successor."""
    config = _config(config_path)
    store = _store(config, channel)
    add = [_public(add_key_file)] if add_key_file else []
    doc = keys.write(store, _key_file(root_key_file), add=add, revoke=[key_id], reason=reason)
    click.echo(
        f"key document version {doc.version}: revoked {', '.join(sorted(doc.revoked))}; "
        f"signing keys {', '.join(doc.signing_keys)}"
    )


@keys_group.command("show")
@channel_option
@config_option
@_errors
def keys_show(channel: str | None, config_path: Path) -> None:
    """Print the channel's key document (as stored; devices verify it with the root)."""
    store = _store(_config(config_path), channel)
    data = store.get(KEYS_DOCUMENT, MAX_KEYS_BYTES)
    if data is None:
        click.echo(f"{store.uri} has no key document: devices trust the --public-key they were given")
        return
    doc = json.loads(data)
    doc.pop("signature", None)
    click.echo(json.dumps(doc, indent=2, sort_keys=True))
