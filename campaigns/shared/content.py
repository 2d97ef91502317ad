"""Learning content in the database: importing content packs and serving the active one.

A pack is stored whole (its files as JSON) with a checksum. Importing the same version again is
a no-op; a version already imported with different content is refused (change the version).
The imported pack becomes the active one and its target profiles are created or updated.
Releases are never deleted: a campaign keeps the version it froze.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from campaigns.shared.errors import AlreadyExists, InvalidInput
from campaigns.shared.models import ContentRelease, TargetProfile, TargetProfileTube
from engine.content import (
    BUNDLED_PACK,
    ContentPack,
    check_pack_files,
    load_pack,
    load_pack_files,
    read_pack_files,
)


@dataclass(frozen=True)
class Imported:
    pack: ContentPack
    release: ContentRelease
    created: bool
    profiles_created: int
    profiles_updated: int
    profiles_archived: int


def checksum(files: dict[str, Any]) -> str:
    canonical = json.dumps(files, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def import_pack(session: Session, path: Path | str, *, activate: bool = False) -> Imported:
    """Store the pack at `path` and make it the active one. The active release imported again
    changes nothing; an older release becomes active again only when `activate` says so."""
    files = read_pack_files(path)
    problems = check_pack_files(files)
    if problems:
        more = (
            f" (and {len(problems) - 1} more: run `parcours content check`)"
            if len(problems) > 1
            else ""
        )
        raise InvalidInput(f"invalid content pack: {problems[0]}{more}")
    pack = load_pack_files(files)
    digest = checksum(files)
    release = session.scalars(
        select(ContentRelease).where(
            ContentRelease.pack_id == pack.id, ContentRelease.version == pack.version
        )
    ).one_or_none()
    created = release is None
    if release is not None and release.checksum != digest:
        raise AlreadyExists(
            f"{pack.id} {pack.version} was imported with other content; give this one a new version"
        )
    if release is not None and not release.is_active and not activate:
        raise AlreadyExists(
            f"{pack.id} {pack.version} is an older release; pass --activate to serve it again"
        )
    session.execute(update(ContentRelease).where(ContentRelease.is_active).values(is_active=False))
    if release is None:
        release = ContentRelease(
            pack_id=pack.id, version=pack.version, checksum=digest, files=files
        )
        session.add(release)
    session.flush()
    release.is_active = True
    session.flush()
    counts = _sync_target_profiles(session, pack)
    return Imported(pack, release, created, *counts)


def _sync_target_profiles(session: Session, pack: ContentPack) -> tuple[int, int, int]:
    existing = {
        p.content_key: p
        for p in session.scalars(
            select(TargetProfile).where(TargetProfile.content_key.is_not(None))
        )
    }
    created = updated = 0
    for spec in pack.target_profiles:
        profile = existing.pop(spec.id, None)
        tubes = dict(spec.tube_levels)
        if profile is None:
            profile = TargetProfile(
                content_key=spec.id, name=spec.name, description=spec.description
            )
            profile.tubes = [TargetProfileTube(tube_id=t, level=lv) for t, lv in tubes.items()]
            session.add(profile)
            created += 1
            continue
        current = {t.tube_id: t.level for t in profile.tubes}
        changed = (profile.name, profile.description, profile.is_archived, current) != (
            spec.name,
            spec.description,
            False,
            tubes,
        )
        if changed:
            profile.name, profile.description, profile.is_archived = (
                spec.name,
                spec.description,
                False,
            )
            profile.tubes = [TargetProfileTube(tube_id=t, level=lv) for t, lv in tubes.items()]
            updated += 1
    archived = 0
    for profile in existing.values():  # gone from the pack: kept for old campaigns, not offered
        if not profile.is_archived:
            profile.is_archived = True
            archived += 1
    session.flush()
    return created, updated, archived


_cache: dict[tuple[str, str, str], ContentPack] = {}
_cache_lock = threading.Lock()


def active_pack(session: Session) -> ContentPack:
    """The content every process serves now: the active release, else the bundled pack."""
    row = session.execute(
        select(
            ContentRelease.id,
            ContentRelease.pack_id,
            ContentRelease.version,
            ContentRelease.checksum,
        ).where(ContentRelease.is_active)
    ).one_or_none()
    if row is None:
        return _bundled()
    return _release_pack(session, row.id, (row.pack_id, row.version, row.checksum))


def pack_version(session: Session, pack_id: str, version: str) -> ContentPack | None:
    """A given release (the one a campaign froze), or None if it was never imported."""
    row = session.execute(
        select(ContentRelease.id, ContentRelease.checksum).where(
            ContentRelease.pack_id == pack_id, ContentRelease.version == version
        )
    ).one_or_none()
    if row is None:
        bundled = _bundled()  # served before any import: campaigns may have frozen it
        return bundled if (bundled.id, bundled.version) == (pack_id, version) else None
    return _release_pack(session, row.id, (pack_id, version, row.checksum))


def _release_pack(session: Session, release_id: int, key: tuple[str, str, str]) -> ContentPack:
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    files = session.scalars(
        select(ContentRelease.files).where(ContentRelease.id == release_id)
    ).one()
    pack = load_pack_files(files)
    with _cache_lock:
        _cache[key] = pack
    return pack


def _bundled() -> ContentPack:
    key = ("bundled", str(BUNDLED_PACK), "")
    with _cache_lock:
        cached = _cache.get(key)
    if cached is None:
        cached = load_pack()
        with _cache_lock:
            _cache[key] = cached
    return cached
