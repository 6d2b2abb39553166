"""Label Studio, through its HTTP API (the official SDK, ``label-studio-sdk`` 2.x).

Every call that fails (the server is down, a timeout, an HTTP error) raises
``LabelStudioError`` naming the server, what was being done and what came back. The
calls are idempotent where a re-run needs them to be: a project is found by title, the
image storage by path, and a task by the image's sha256 in its data, so a sync that
stopped half-way creates nothing twice when it runs again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from visionloop.labeling.label_config import config_class_names, labeling_config

T = TypeVar("T")
API_KEY_ENV = "LABEL_STUDIO_API_KEY"


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or refused a request."""


def _detail(exc: BaseException) -> str:
    if isinstance(exc, ApiError):
        body = exc.body
        if isinstance(body, dict):
            body = body.get("detail") or body.get("validation_errors") or body
        return f"HTTP {exc.status_code}: {str(body)[:300]}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


class Studio:
    """One Label Studio server. ``api_key``: a legacy token or a personal access token
    (default ``$LABEL_STUDIO_API_KEY``)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        key = api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise LabelStudioError(
                f"no API key for Label Studio at {self.url}: set ${API_KEY_ENV} (Account & Settings → "
                "Personal Access Token in Label Studio) or the ZenML secret named by label.api_key_secret"
            )
        try:
            self.client = LabelStudio(base_url=self.url, api_key=key, timeout=timeout)
        except Exception as exc:  # the SDK refreshes a personal access token at construction
            raise LabelStudioError(f"Label Studio at {self.url}: signing in failed: {_detail(exc)}") from exc

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except (ApiError, httpx.HTTPError) as exc:
            raise LabelStudioError(f"Label Studio at {self.url}: {what} failed: {_detail(exc)}") from exc

    def _list(self, what: str, pages: Callable[[], Iterable[T]]) -> list[T]:
        with self._call(what):
            return list(pages())

    def check(self) -> str:
        """The signed-in user's e-mail; raises when the server or the key does not work."""
        with self._call("signing in (GET /api/current-user/whoami)"):
            return str(self.client.users.whoami().email)

    def users(self) -> dict[int, str]:
        """User id -> e-mail address."""
        return {int(u.id): str(u.email) for u in self._list("listing users", self.client.users.list) if u.id}

    def project_url(self, project_id: int) -> str:
        return f"{self.url}/projects/{project_id}/data"

    def ensure_project(
        self, title: str, class_names: list[str], annotators_per_task: int, description: str = ""
    ) -> tuple[int, bool]:
        """The id of the project titled ``title`` (created when missing) and whether it
        was created. Its labeling configuration follows ``class_names``: new classes are
        added; Label Studio itself refuses to drop a class that annotations use."""
        config = labeling_config(class_names)
        projects: list[Any] = self._list("listing projects", lambda: self.client.projects.list(search=title))
        same = sorted((p for p in projects if p.title == title), key=lambda p: int(p.id or 0))
        if not same:
            with self._call(f"creating project {title!r}"):
                created = self.client.projects.create(
                    title=title,
                    description=description,
                    label_config=config,
                    maximum_annotations=annotators_per_task,
                    sampling="Sequential sampling",
                    show_collab_predictions=True,
                )
            return int(created.id or 0), True
        project = same[0]
        project_id = int(project.id or 0)
        changes: dict[str, Any] = {}
        if config_class_names(project.label_config or "") != class_names:
            changes["label_config"] = config
        if project.maximum_annotations != annotators_per_task:
            changes["maximum_annotations"] = annotators_per_task
        if changes:
            with self._call(f"updating project {project_id} ({', '.join(changes)})"):
                self.client.projects.update(id=project_id, **changes)
        return project_id, False

    def ensure_local_storage(self, project_id: int, path: str) -> str:
        """Connect the folder ``path`` as the project's local-files storage (what lets
        the labeling UI load ``/data/local-files/?d=...`` images from it)."""
        storages = self._list(
            "listing local storages", lambda: self.client.import_storage.local.list(project=project_id)
        )
        path = os.path.normpath(path)
        for s in storages:
            if os.path.normpath(str(s.path)) == path:
                return f"local-files storage {s.id} ({path})"
        with self._call(f"connecting local-files storage {path} to project {project_id}"):
            made = self.client.import_storage.local.create(
                project=project_id, path=path, title="visionloop raw images", use_blob_urls=True
            )
        return f"local-files storage {made.id} ({path})"

    def ensure_s3_storage(
        self, project_id: int, bucket: str, prefix: str, endpoint: str | None, region: str | None
    ) -> str:
        """Connect ``s3://bucket/prefix`` as the project's S3 storage, with presigned
        URLs (credentials from the standard AWS environment variables)."""
        storages = self._list(
            "listing S3 storages", lambda: self.client.import_storage.s3.list(project=project_id)
        )
        for s in storages:
            if s.bucket == bucket and (s.prefix or "") == prefix:
                return f"s3 storage {s.id} (s3://{bucket}/{prefix})"
        with self._call(f"connecting s3://{bucket}/{prefix} to project {project_id}"):
            made = self.client.import_storage.s3.create(
                project=project_id,
                bucket=bucket,
                prefix=prefix,
                presign=True,
                use_blob_urls=True,
                s3endpoint=endpoint,
                region_name=region,
                aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
                aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                title="visionloop raw images",
            )
        return f"s3 storage {made.id} (s3://{bucket}/{prefix})"

    def task_shas(self, project_id: int) -> dict[str, int]:
        """sha256 (from each task's data) -> task id, for every task of the project."""
        tasks: list[Any] = self._list(
            f"listing the tasks of project {project_id}",
            lambda: self.client.tasks.list(project=project_id, fields="task_only", page_size=500),
        )
        out: dict[str, int] = {}
        for t in tasks:
            sha = (t.data or {}).get("sha256")
            if sha and str(sha) not in out:
                out[str(sha)] = int(t.id or 0)
        return out

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> int:
        """Create ``tasks`` (with their predictions) in one request; returns how many."""
        if not tasks:
            return 0
        with self._call(f"importing {len(tasks)} tasks into project {project_id}"):
            result = self.client.projects.import_tasks(id=project_id, request=tasks)  # type: ignore[arg-type]
        return int(result.task_count or 0)

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations, as plain dicts."""
        tasks: list[Any] = self._list(
            f"reading the annotations of project {project_id}",
            lambda: self.client.tasks.list(project=project_id, fields="all", page_size=200),
        )
        return [t.model_dump(mode="json") for t in tasks]

    def cancel_annotation(self, annotation_id: int) -> None:
        """Mark an annotation cancelled: it stays in Label Studio, but no longer counts
        as finished, so its task is back in the labeling queue."""
        with self._call(f"sending annotation {annotation_id} back to the queue"):
            self.client.annotations.update(id=annotation_id, was_cancelled=True)
