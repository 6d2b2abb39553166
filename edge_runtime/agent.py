"""The update agent of one model stage: poll the channel, fetch, verify, load, self-test,
swap atomically; remember what failed; survive restarts.

State folder (``<state_dir>/<model>/<stage>/``)::

    versions/<version>/      verified copies of the versions (the last ``keep`` good ones)
    state.json               {"current": version, "manifest_sha256": ..., "good": [newest first]}
    rejected.json            {version: {"manifest_sha256", "reason", "at"}}: never tried again
    pointer.json             the highest pointer accepted: {"sequence", "by_key": {key id:
                             highest sequence signed by it}, "version", "manifest_sha256",
                             "expires_at", "accepted_at"}

Rollback and freeze: a pointer is accepted only when its sequence is above the highest
one accepted before (``pointer.json``, written before anything is downloaded; the same
pointer again is not news). The floor counts only keys that are not revoked, so after a
leaked signing key is revoked the pipeline's new key can take over even if the thief
pushed the sequence up. A pointer past its ``expires_at`` installs nothing; the agent
keeps serving what it has and reports ``channel: stale``. A channel that had a pointer
and now has none is reported as ``lost-pointer`` (a failure), not as "no pointer yet".

Channel states (``/healthz``'s ``channel``): ``starting``, ``ok``, ``no-pointer`` (never
had one), ``stale`` (the accepted pointer expired), ``lost-pointer``, ``refused`` (the
channel answered with something refused: bad signature, rollback, oversized...),
``unreachable``.

Order of a swap: download into a hidden temporary folder beside ``versions/`` (the
channel client verifies sizes, sha256 and the Ed25519 signatures there and renames it
into place only when complete); load and self-test (a detector, a classifier or a
bundle, by the manifest's task: ``edge_runtime.serving``); publish it to the serving
slot (one reference assignment: a request in flight keeps the
reference it took and finishes on the old session); write ``state.json`` atomically;
only then delete versions beyond the last ``keep``. A ``kill -9`` at any point leaves
``state.json`` naming a complete, verified version that is still on disk. A download
that fills the state disk (ENOSPC) prunes the good versions other than the served one
and the previous good one, and is tried once more.

Failures never stop serving. Verification and channel errors are retried with
exponential backoff (a truncated download may be a transient fault); a version that
does not load or fails its self-test is rejected for good (``rejected.json``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import random
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_runtime.channel import ChannelClient, Pointer, VerificationError, parse_time, verify_folder
from edge_runtime.model import ModelRejected
from edge_runtime.serving import Served, load_served
from edge_runtime.storage import LocalStore, StorageError, atomic_write

log = logging.getLogger(__name__)

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)
UNSIGNED_KEY = "-"  # pointers of format 1 name no signing key


class RollbackRefused(VerificationError):
    """A validly signed pointer at or below the highest sequence accepted before."""


class ChannelLost(VerificationError):
    """The channel had a pointer for this stage and now has none."""


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``base * 2**failures`` capped at ``cap`` seconds."""

    base: float = 1.0
    cap: float = 300.0
    failures: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2**self.failures)
        self.failures += 1
        return float(delay * random.uniform(0.8, 1.0))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class AgentStatus:
    """What ``/healthz`` shows of one stage."""

    stage: str
    state: str = "starting"  # starting | serving | no-model
    channel: str = "starting"  # see the module docstring
    last_check: str | None = None
    last_ok: str | None = None
    channel_reachable: bool | None = None
    channel_version: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_check_in_s: float | None = None
    swaps: int = 0
    history: list[str] = field(default_factory=list)  # newest last, at most 20 events

    def event(self, text: str) -> None:
        self.history = [*self.history[-19:], f"{now_iso()} {text}"]


class StageAgent:
    """Keeps the newest good version of ``model``/``stage`` loaded in ``self.current``."""

    def __init__(
        self,
        client: ChannelClient,
        model: str,
        stage: str,
        state_dir: Path,
        variant: str = "float",
        keep: int = 3,
        poll_s: float = 30.0,
        backoff: Backoff | None = None,
        threads: int | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.client = client
        self.model = model
        self.stage = stage
        self.dir = Path(state_dir) / model / stage
        self.versions_dir = self.dir / "versions"
        self.variant = variant
        self.keep = keep
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.threads = threads
        self.current: Served | None = None
        self.status = AgentStatus(stage=stage)
        self._lock = threading.Lock()  # one check at a time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- state on disk ------------------------------------------------------------

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.dir / name
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.error("%s is unreadable (%s); starting from an empty %s", path, exc, name)
            return {}
        return doc if isinstance(doc, dict) else {}

    def _write_json(self, name: str, doc: dict[str, Any]) -> None:
        atomic_write(self.dir / name, json.dumps(doc, indent=2, sort_keys=True).encode())

    def rejected(self) -> dict[str, Any]:
        return self._read_json("rejected.json")

    def _reject(self, version: str, manifest_sha256: str, reason: str) -> None:
        doc = self.rejected()
        doc[version] = {"manifest_sha256": manifest_sha256, "reason": reason, "at": now_iso()}
        self._write_json("rejected.json", doc)
        shutil.rmtree(self.versions_dir / version, ignore_errors=True)

    def _is_rejected(self, pointer: Pointer) -> str | None:
        entry = self.rejected().get(pointer.version)
        if isinstance(entry, dict) and entry.get("manifest_sha256") == pointer.manifest_sha256:
            return str(entry.get("reason", "rejected"))
        return None

    def _record_good(self, loaded: Served) -> None:
        state = self._read_json("state.json")
        good = [v for v in state.get("good", []) if v != loaded.version_id]
        good = [loaded.version_id, *good][: self.keep]
        self._write_json(
            "state.json",
            {
                "current": loaded.version_id,
                "manifest_sha256": loaded.version.manifest_sha256,
                "good": good,
                "updated_at": now_iso(),
            },
        )
        self._prune(set(good))

    def _prune(self, keep: set[str]) -> None:
        if not self.versions_dir.is_dir():
            return
        for path in self.versions_dir.iterdir():
            if path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
                log.info(
                    "%s/%s: removed %s (keeping the last %d good versions)", *self._id(), path, self.keep
                )

    def _id(self) -> tuple[str, str]:
        return self.model, self.stage

    def accepted(self) -> dict[str, Any]:
        """The highest pointer accepted (``pointer.json``), {} before the first."""
        return self._read_json("pointer.json")

    def floor(self, record: dict[str, Any] | None = None) -> int:
        """The highest sequence accepted from a key that is not revoked."""
        record = self.accepted() if record is None else record
        revoked = self.client.keyring.revoked()
        by_key = record.get("by_key") or {}
        return max((int(v) for k, v in by_key.items() if k not in revoked), default=0)

    def _accept(self, pointer: Pointer) -> None:
        """Refuse a pointer at or below the floor (the same pointer again passes), else
        record it durably before anything it names is fetched."""
        record = self.accepted()
        floor = self.floor(record)
        same = (
            record.get("sequence") == pointer.sequence
            and record.get("version") == pointer.version
            and record.get("manifest_sha256") == pointer.manifest_sha256
            and record.get("expires_at") == pointer.expires_at
        )
        if record and pointer.sequence <= floor and not (same and pointer.sequence == floor):
            raise RollbackRefused(
                f"rollback refused: pointer sequence {pointer.sequence} (version {pointer.version}) is not "
                f"above the highest accepted, {floor} (version {record.get('version')})"
            )
        if same:
            return
        signer = pointer.signing_key_id or UNSIGNED_KEY
        by_key = dict(record.get("by_key") or {})
        by_key[signer] = max(int(by_key.get(signer, 0)), pointer.sequence)
        doc = {
            "sequence": pointer.sequence,
            "by_key": by_key,
            "version": pointer.version,
            "manifest_sha256": pointer.manifest_sha256,
            "expires_at": pointer.expires_at,
            "signing_key_id": pointer.signing_key_id,
            "accepted_at": now_iso(),
        }
        try:
            self._write_json("pointer.json", doc)
        except OSError as exc:
            if exc.errno not in FULL_DISK or not self._make_room():
                raise
            self._write_json("pointer.json", doc)

    def expired(self, record: dict[str, Any] | None = None) -> bool:
        record = self.accepted() if record is None else record
        try:
            expiry = parse_time(record.get("expires_at"))
        except VerificationError:
            return False
        return expiry is not None and datetime.now(UTC) >= expiry

    def channel_state(self) -> str:
        state = self.status.channel
        if state in ("starting", "ok", "unreachable", "stale") and self.expired():
            return "stale"
        return state

    def _make_room(self) -> bool:
        """Under a full state disk: delete the good versions other than the served one and
        the previous good one. True when something was deleted."""
        state = self._read_json("state.json")
        good = [str(v) for v in state.get("good", [])]
        keep = set(good[:2]) | ({self.current.version_id} if self.current else set())
        freed = False
        if self.versions_dir.is_dir():
            for path in self.versions_dir.iterdir():
                if path.name not in keep:
                    shutil.rmtree(path, ignore_errors=True)
                    freed = True
                    log.warning(
                        "%s/%s: state disk full: removed %s (keeping the served and previous good versions)",
                        *self._id(),
                        path,
                    )
        if freed and state:
            state["good"] = [v for v in good if v in keep]
            with contextlib.suppress(OSError):  # the versions are gone either way; restore skips them
                self._write_json("state.json", state)
        return freed

    # --- start-up -----------------------------------------------------------------

    def restore(self) -> Served | None:
        """Load the last good version from the state folder, before the channel is asked.

        Tries ``state.json``'s good versions newest first; each is verified again with
        ``verify_folder`` and self-tested. Debris of an interrupted download is removed."""
        if self.versions_dir.is_dir():
            for path in self.versions_dir.iterdir():
                if path.name.startswith("."):
                    shutil.rmtree(path, ignore_errors=True)
        state = self._read_json("state.json")
        for version in state.get("good", []):
            folder = self.versions_dir / version
            try:
                verified = verify_folder(folder, self.client.public_key, self.model, version)
                loaded = load_served(verified, self.variant, self.threads)
            except (VerificationError, ModelRejected, OSError) as exc:
                log.error("%s/%s: cannot restore version %s from %s: %s", *self._id(), version, folder, exc)
                self.status.event(f"restore of {version} failed: {exc}")
                continue
            self._publish(loaded, f"restored {version} from {folder}")
            self._prune(set(state.get("good", [])))  # a swap killed before its clean-up
            return loaded
        self.status.state = "no-model"
        return None

    # --- one check ----------------------------------------------------------------

    def _publish(self, loaded: Served, why: str) -> None:
        previous = self.current
        self.current = loaded  # the atomic swap: one reference assignment
        self.status.state = "serving"
        self.status.swaps += 1
        self.status.event(why)
        log.info(
            "%s/%s: serving version %s (%s)%s",
            *self._id(),
            loaded.version_id,
            loaded.variant,
            f", was {previous.version_id}" if previous else "",
        )

    def _fetch(self, pointer: Pointer) -> Any:
        dest = self.versions_dir / pointer.version
        if dest.exists():
            try:
                verified = verify_folder(dest, self.client.public_key, self.model, pointer.version)
                if verified.manifest_sha256 == pointer.manifest_sha256:
                    return verified
            except VerificationError as exc:
                log.warning("%s/%s: local copy %s is damaged (%s); fetching again", *self._id(), dest, exc)
            shutil.rmtree(dest, ignore_errors=True)
        log.info("%s/%s: fetching version %s", *self._id(), pointer.version)
        try:
            return self.client.fetch(self.model, pointer.version, dest, pointer.manifest_sha256)
        except OSError as exc:
            if exc.errno not in FULL_DISK or not self._make_room():
                raise
            self.status.event(f"state disk full fetching {pointer.version}: pruned old versions, retrying")
            return self.client.fetch(self.model, pointer.version, dest, pointer.manifest_sha256)

    def check_once(self) -> bool:
        """One poll of the channel. Returns True when the channel answered and whatever
        it names is served or deliberately refused; False on an error worth retrying."""
        with self._lock:
            self.status.last_check = now_iso()
            try:
                ok = self._check()
            except (StorageError, VerificationError, OSError) as exc:
                self.status.channel_reachable = not isinstance(exc, StorageError)
                if isinstance(exc, ChannelLost):
                    self.status.channel = "lost-pointer"
                elif isinstance(exc, VerificationError):
                    self.status.channel = "refused"
                elif isinstance(exc, StorageError):
                    self.status.channel = "unreachable"
                return self._failed(str(exc))
            except Exception as exc:  # never let the agent die: log it and retry later
                log.exception("%s/%s: unexpected error during a check", *self._id())
                return self._failed(f"unexpected {type(exc).__name__}: {exc}")
            if ok:
                self.status.consecutive_failures = 0
                self.status.last_ok = self.status.last_check
                self.backoff.reset()
            return ok

    def _failed(self, reason: str) -> bool:
        self.status.consecutive_failures += 1
        self.status.last_error = reason
        self.status.event(f"check failed: {reason}")
        serving = self.current.version_id if self.current else "nothing"
        log.error("%s/%s: %s; still serving %s", *self._id(), reason, serving)
        return False

    def _check(self) -> bool:
        store = self.client.store
        if isinstance(store, LocalStore) and not store.root.is_dir():
            raise StorageError(f"channel folder {store.root} is not there (unmounted or moved?)")
        note = self.client.refresh_keys()
        if note:
            self.status.event(note)
        pointer = self.client.pointer(self.model, self.stage)
        self.status.channel_reachable = True
        if pointer is None:
            self.status.channel_version = None
            record = self.accepted()
            if record:
                raise ChannelLost(
                    f"the channel lost its {self.stage} pointer for {self.model}: it had sequence "
                    f"{record.get('sequence')} (version {record.get('version')}) and now has none"
                )
            self.status.channel = "no-pointer"
            self.status.last_error = f"the channel has no {self.stage} pointer for {self.model} yet"
            return True
        self.status.channel_version = pointer.version
        self._accept(pointer)
        current = self.current
        if pointer.expired():
            self.status.channel = "stale"
            serving = current is not None and current.version_id == pointer.version
            self.status.last_error = (
                f"channel stale: the {self.stage} pointer (sequence {pointer.sequence}, version "
                f"{pointer.version}) expired at {pointer.expires_at}; nothing is installed from it"
                f"{'' if serving else f' (it names version {pointer.version})'}; still serving "
                f"{self._serving()}. Refresh it: python run.py channel refresh"
            )
            log.warning("%s/%s: %s", *self._id(), self.status.last_error)
            return True
        self.status.channel = "ok"
        if (
            current is not None
            and current.version_id == pointer.version
            and current.version.manifest_sha256 == pointer.manifest_sha256
        ):
            self.status.last_error = None
            return True
        reason = self._is_rejected(pointer)
        if reason is not None:
            self.status.last_error = f"version {pointer.version} was rejected before, not retried: {reason}"
            return True
        verified = self._fetch(pointer)
        try:
            loaded = load_served(verified, self.variant, self.threads)
        except ModelRejected as exc:
            self._reject(pointer.version, pointer.manifest_sha256, str(exc))
            self.status.last_error = f"rejected version {pointer.version}: {exc}"
            self.status.event(self.status.last_error)
            log.error("%s/%s: %s; rolled back, still serving %s", *self._id(), exc, self._serving())
            return True
        self._publish(loaded, f"swapped to {pointer.version}")
        self._record_good(loaded)
        self.status.last_error = None
        return True

    def _serving(self) -> str:
        return self.current.version_id if self.current else "nothing"

    # --- the background loop ------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"agent-{self.stage}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Check now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            ok = self.check_once()
            delay = self.poll_s if ok else self.backoff.next_delay()
            self.status.next_check_in_s = round(delay, 2)
            self._wake.wait(delay)
            self._wake.clear()

    def describe(self) -> dict[str, Any]:
        status = dict(self.status.__dict__)
        status["serving"] = self.current.version_id if self.current else None
        record = self.accepted()
        status["channel"] = self.channel_state()
        status["highest_sequence"] = self.floor(record) if record else None
        status["pointer_expires_at"] = record.get("expires_at")
        status["keys"] = self.client.keyring.describe()
        status["rejected"] = {v: e.get("reason") for v, e in self.rejected().items() if isinstance(e, dict)}
        return status
