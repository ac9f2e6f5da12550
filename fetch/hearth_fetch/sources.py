"""What to download for a source: the files, their addresses, published sizes and checksums.

Hugging Face through `huggingface_hub` (the Hub's own client: `HF_ENDPOINT`, tokens, its
pagination and errors): the repository's tree lists every file with its size and its LFS
SHA-256 (or git blob id), and `modelSource.files` picks which — a GGUF repository holds a dozen
quantisations of which one is wanted. A plain URL is one file, its size learnt from the answer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils._paths import filter_repo_objects  # public, but not re-exported for mypy

from hearth_api.weights_cache import Remote
from hearth_fetch.download import Wanted
from hearth_fetch.failures import FetchFailed, Why


def _hub_files(
    source: Remote, pattern: str | None, endpoint: str | None, token: str | None
) -> list[RepoFile]:
    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        tree = api.list_repo_tree(source.repo, revision=source.revision, recursive=True)
        files = [f for f in tree if isinstance(f, RepoFile)]
    except GatedRepoError as exc:
        raise FetchFailed(
            Why.UNAUTHORIZED, f"{source.repo} is gated: accept its terms and set a token"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise FetchFailed(
            Why.NOT_FOUND, f"no repository {source.repo} (or it is private and no token with access is set)"
        ) from exc
    except RevisionNotFoundError as exc:
        raise FetchFailed(Why.NOT_FOUND, f"{source.repo} has no revision {source.revision!r}") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        why = {401: Why.UNAUTHORIZED, 403: Why.UNAUTHORIZED, 404: Why.NOT_FOUND}.get(status, Why.UNREACHABLE)
        raise FetchFailed(why, f"listing {source.repo}: {exc}") from exc
    except OSError as exc:
        raise FetchFailed(Why.UNREACHABLE, f"listing {source.repo}: {exc}") from exc
    if source.file:
        picked = [f for f in files if f.path == source.file]
        if not picked:
            raise FetchFailed(Why.NOT_FOUND, f"{source.repo} has no file {source.file!r}")
        return picked
    picked = list(filter_repo_objects(files, allow_patterns=pattern, key=lambda f: f.path))
    if not picked:
        raise FetchFailed(Why.NOT_FOUND, f"no file of {source.repo} matches {pattern!r}")
    return picked


async def plan(
    source: Remote,
    cache: Path,
    *,
    pattern: str | None = None,
    sha256: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> list[Wanted]:
    if source.kind == "url":
        return [Wanted(url=source.url, path=cache / source.target, sha256=sha256)]
    files = await asyncio.to_thread(_hub_files, source, pattern, endpoint, token)
    folder = cache / source.folder
    return [
        Wanted(
            url=hf_hub_url(source.repo, f.path, revision=source.revision, endpoint=endpoint),
            path=folder / f.path,
            size=f.size,
            sha256=f.lfs.sha256 if f.lfs else None,
            git_blob_sha1=None if f.lfs else f.blob_id,
        )
        for f in files
    ]
