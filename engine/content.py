"""Learning content: the model (frozen dataclasses) and the strict loader of content packs.

The format is described in docs/content-format.md. `check_pack` returns every problem found,
each naming the file, the item and what is wrong; `load_pack` returns the content or raises
`ContentError` carrying those problems. `typography_problems` adds the house style of French text
(typographic apostrophes), which `parcours content check` enforces but loading does not: a release
imported before a style rule existed must stay readable by the campaigns that froze it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

TUBE_ID = re.compile(r"^@[A-Za-z][A-Za-z0-9]{0,46}$")
PACK_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,23}$")
KEYS = {
    "pack": {"id", "version", "locale", "title", "areas"},
    "area": {"id", "title", "competences"},
    "competence": {"id", "title"},
    "competence file": {"competence", "tubes"},
    "tube": {"id", "title", "description", "skills"},
    "skill": {"level", "description", "hint", "tutorials", "challenges"},
    "tutorial": {"id", "title", "format", "duration_minutes", "source", "text", "url"},
    "challenge": {
        "id",
        "type",
        "instruction",
        "explanation",
        "timer",
        "status",
        "tolerances",
        "proposals",
        "solution",
        "solutions",
        "label",
        "fields",
        "mode",
        "solution_groups",
    },
    "field": {"name", "label", "solutions"},
    "profile": {"id", "name", "description", "tubes", "competences"},
    "profile entry": {"id", "level"},
}
ITEM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TOLERANCES = ("t1", "t2", "t3")
TUTORIAL_FORMATS = ("article", "vidéo", "page", "jeu", "outil")
MAX_LEVEL = 8
BUNDLED_PACK = Path(__file__).parent / "packs" / "parcours-fr"


class ChallengeType(StrEnum):
    QCU = "QCU"
    QCM = "QCM"
    QROC = "QROC"
    QROCM = "QROCM"


FENCE = "```"


@dataclass(frozen=True)
class TextPart:
    """A piece of a content text: prose, or a code block kept exactly as written."""

    text: str
    is_code: bool = False


def text_parts(text: str) -> tuple[TextPart, ...]:
    """Split a text at its code fences. A line holding only ``` (spaces around it allowed) opens a
    code block and the next such line closes it; the lines between are the code, indentation and
    blank lines included. The fences' own line breaks belong to the block: the prose around it
    loses its blank edge lines. A block left open runs to the end of the text (an import refuses
    that: see `fence_problems` and `check_pack_files`)."""
    parts: list[TextPart] = []
    prose: list[str] = []
    code: list[str] | None = None

    def end_prose() -> None:
        joined = "\n".join(prose).strip("\n")
        if joined.strip():
            parts.append(TextPart(joined))
        prose.clear()

    for line in text.splitlines():
        if line.strip() != FENCE:
            (prose if code is None else code).append(line)
        elif code is None:
            end_prose()
            code = []
        else:
            parts.append(TextPart("\n".join(code), is_code=True))
            code = None
    if code is not None:
        parts.append(TextPart("\n".join(code), is_code=True))
    end_prose()
    return tuple(parts)


def fence_problems(text: str) -> list[str]:
    """What is wrong with the code fences of a text (empty when nothing is)."""
    problems: list[str] = []
    opened: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith(FENCE):
            if stripped != FENCE:  # "```python": taken as the fence it was meant to be
                problems.append(
                    f"a code fence is ``` alone on its line (line {number}: {stripped})"
                )
            if opened is None:
                opened = []
            else:
                if not "".join(opened).strip():
                    problems.append(f"empty code block (line {number})")
                opened = None
        elif opened is not None:
            opened.append(line)
    if opened is not None:
        problems.append("code block opened by ``` and never closed (add a line with ``` alone)")
    return problems


@dataclass(frozen=True)
class Tutorial:
    id: str
    title: str
    format: str
    duration_minutes: int
    source: str
    text: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    solutions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Challenge:
    id: str
    skill_id: str
    type: ChallengeType
    instruction: str
    explanation: str
    proposals: tuple[str, ...] = ()
    # QCU: one index; QCM: several (1-based, sorted).
    solution_indexes: tuple[int, ...] = ()
    # QROC: accepted answers.
    solutions: tuple[str, ...] = ()
    label: str = ""
    # QROCM: its fields; "dep" mode matches them against solution groups in any order.
    fields: tuple[Field, ...] = ()
    mode: str | None = None
    solution_groups: tuple[tuple[str, ...], ...] = ()
    tolerances: tuple[str, ...] = TOLERANCES
    timer: int | None = None
    status: str = "validated"

    @property
    def is_timed(self) -> bool:
        return self.timer is not None

    @property
    def is_playable(self) -> bool:
        return self.status == "validated"

    @property
    def instruction_has_code(self) -> bool:
        """The instruction holds a code block (shown as a block: see `text_parts`)."""
        return any(part.is_code for part in text_parts(self.instruction))


@dataclass(frozen=True)
class Skill:
    id: str
    tube_id: str
    competence_id: str
    level: int
    description: str
    hint: str
    pix_value: float
    challenges: tuple[Challenge, ...]
    tutorials: tuple[Tutorial, ...]

    @property
    def playable_challenges(self) -> tuple[Challenge, ...]:
        return tuple(c for c in self.challenges if c.is_playable)


@dataclass(frozen=True)
class Tube:
    id: str
    competence_id: str
    title: str
    description: str
    skills: tuple[Skill, ...]  # by level


@dataclass(frozen=True)
class Competence:
    id: str
    area_id: str
    title: str
    tubes: tuple[Tube, ...]

    @property
    def index(self) -> str:
        return self.id


@dataclass(frozen=True)
class Area:
    id: str
    title: str
    competences: tuple[Competence, ...]


@dataclass(frozen=True)
class TargetProfileSpec:
    id: str
    name: str
    description: str
    tube_levels: tuple[tuple[str, int], ...]  # (tube id, max level), competences expanded
    # The entries as the pack writes them, before competences are expanded into their tubes.
    competence_levels: tuple[tuple[str, int], ...] = ()  # (competence id, max level)
    named_tube_levels: tuple[tuple[str, int], ...] = ()  # (tube id, max level)

    @property
    def single_competence_id(self) -> str | None:
        """The competence this profile is made of, when it names exactly one competence and no
        tube (a "competence profile": what a teacher picks to test one competence); else None."""
        if len(self.competence_levels) == 1 and not self.named_tube_levels:
            return self.competence_levels[0][0]
        return None


@dataclass(frozen=True)
class ContentPack:
    id: str
    version: str
    locale: str
    title: str
    areas: tuple[Area, ...]
    target_profiles: tuple[TargetProfileSpec, ...] = ()

    @property
    def competences(self) -> tuple[Competence, ...]:
        return tuple(c for a in self.areas for c in a.competences)

    @property
    def tubes(self) -> tuple[Tube, ...]:
        return tuple(t for c in self.competences for t in c.tubes)

    @property
    def skills(self) -> tuple[Skill, ...]:
        return tuple(s for t in self.tubes for s in t.skills)

    @property
    def challenges(self) -> tuple[Challenge, ...]:
        return tuple(c for s in self.skills for c in s.challenges)

    @cached_property
    def skill_by_id(self) -> Mapping[str, Skill]:
        return {s.id: s for s in self.skills}

    @cached_property
    def tube_by_id(self) -> Mapping[str, Tube]:
        return {t.id: t for t in self.tubes}

    @cached_property
    def competence_by_id(self) -> Mapping[str, Competence]:
        return {c.id: c for c in self.competences}

    @cached_property
    def challenge_by_id(self) -> Mapping[str, Challenge]:
        return {c.id: c for c in self.challenges}

    @cached_property
    def target_profile_by_id(self) -> Mapping[str, TargetProfileSpec]:
        return {p.id: p for p in self.target_profiles}

    @cached_property
    def competence_profiles(self) -> Mapping[str, TargetProfileSpec]:
        """Competence id -> the profile that tests that competence alone, in the order of the
        competences. When several profiles are made of the same single competence, the one with
        the highest level cap wins (the first in the pack on a tie); the others stay ordinary
        profiles. A competence without such a profile is absent."""
        best: dict[str, tuple[int, TargetProfileSpec]] = {}
        for spec in self.target_profiles:
            cid = spec.single_competence_id
            if cid is None:
                continue
            level = spec.competence_levels[0][1]
            if cid not in best or level > best[cid][0]:
                best[cid] = (level, spec)
        return {c.id: best[c.id][1] for c in self.competences if c.id in best}

    def profile_skills(self, tube_levels: Iterable[tuple[str, int]]) -> tuple[Skill, ...]:
        """The skills of these tubes up to each cap (what a campaign freezes)."""
        chosen: list[Skill] = []
        for tube_id, cap in tube_levels:
            tube = self.tube_by_id.get(tube_id)
            if tube is not None:
                chosen.extend(s for s in tube.skills if s.level <= cap)
        return tuple(chosen)


@dataclass(frozen=True)
class Problem:
    file: str
    item: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.item}: {self.message}"


class ContentError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "invalid content pack"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


def pix_values(levels_by_competence: Mapping[str, Iterable[int]]) -> dict[tuple[str, int], float]:
    """Pix value of a skill: min(4, 8 / number of skills of its level in its competence)."""
    values: dict[tuple[str, int], float] = {}
    for competence_id, levels in levels_by_competence.items():
        for level, count in Counter(levels).items():
            values[(competence_id, level)] = min(4.0, 8.0 / count)
    return values


def load_pack(path: Path | str = BUNDLED_PACK) -> ContentPack:
    return load_pack_files(read_pack_files(path))


def check_pack(path: Path | str) -> list[Problem]:
    return check_pack_files(read_pack_files(path))


def load_pack_files(files: Mapping[str, Any]) -> ContentPack:
    """Load a pack from its files already read (relative path -> parsed JSON, or the text of a
    file that is not valid JSON), e.g. as stored in the database."""
    pack, problems = _Loader(files).load()
    if problems or pack is None:
        raise ContentError(problems)
    return pack


def check_pack_files(files: Mapping[str, Any]) -> list[Problem]:
    """What makes a pack unfit to import. Broken code fences are refused here, at import and by
    `parcours content check`, but not when loading: a release stored before fences existed keeps
    loading for the campaigns that froze it (an open block then runs to the end of its text)."""
    loader = _Loader(files)
    return loader.load()[1] + loader.fences


class Unreadable(str):
    """A file that could not be read as UTF-8 JSON; holds the reason."""


def read_pack_files(path: Path | str) -> dict[str, Any]:
    """Every JSON file of a pack folder, parsed: the one reading of the disk."""
    root = Path(path)
    files: dict[str, Any] = {}
    if not root.is_dir():
        return files
    for file in sorted(
        [root / "pack.json", root / "target_profiles.json", *root.glob("competences/*.json")]
    ):
        relative = file.relative_to(root).as_posix()
        try:
            files[relative] = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            files[relative] = Unreadable(f"not valid UTF-8 JSON: {error}")
    return files


# -- loading and validation ---------------------------------------------------------------------


class _Loader:
    def __init__(self, files: Mapping[str, Any]) -> None:
        self.files = files
        self.problems: list[Problem] = []
        self.fences: list[Problem] = []  # broken code fences: refused at import, not at load
        self.seen_ids: dict[str, str] = {}  # challenge/tutorial id -> file

    def problem(self, file: str, item: str, message: str) -> None:
        self.problems.append(Problem(file, item, message))

    def read(self, relative: str) -> Any:
        if relative not in self.files:
            self.problem(relative, "-", "file not found")
            return None
        data = self.files[relative]
        if isinstance(data, Unreadable):
            self.problem(relative, "-", str(data))
            return None
        return data

    def load(self) -> tuple[ContentPack | None, list[Problem]]:
        if not self.files:
            self.problem("pack.json", "-", "no content pack here (is it the pack's folder?)")
            return None, self.problems
        manifest = self.read("pack.json")
        if not isinstance(manifest, dict):
            if manifest is not None:
                self.problem("pack.json", "-", "expected an object")
            return None, self.problems
        self.keys(manifest, "pack", "pack.json", "pack")
        meta = {k: self.text(manifest, k, "pack.json", "pack") for k in ("id", "version", "title")}
        locale = self.text(manifest, "locale", "pack.json", "pack")
        if meta["id"] and not PACK_ID.match(meta["id"]):
            self.problem(
                "pack.json", "pack", "'id' must be lower-case letters, digits or '-' (32 at most)"
            )
        if meta["version"] and not VERSION.match(meta["version"]):
            self.problem(
                "pack.json",
                "pack",
                "'version' must be letters, digits, '.', '+' or '-' (24 at most)",
            )

        raw_competences: list[tuple[str, str, str]] = []  # (area id, competence id, title)
        areas_meta: list[tuple[str, str, list[str]]] = []
        for area in self.items(manifest, "areas", "pack.json", "pack"):
            self.keys(area, "area", "pack.json", "area")
            area_id = self.text(area, "id", "pack.json", "area")
            title = self.text(area, "title", "pack.json", f"area {area_id}")
            ids: list[str] = []
            for competence in self.items(area, "competences", "pack.json", f"area {area_id}"):
                self.keys(competence, "competence", "pack.json", f"area {area_id}")
                cid = self.text(competence, "id", "pack.json", f"area {area_id}")
                ctitle = self.text(competence, "title", "pack.json", f"competence {cid}")
                if not cid.startswith(f"{area_id}."):
                    self.problem(
                        "pack.json", f"competence {cid}", f"not numbered in area {area_id}"
                    )
                raw_competences.append((area_id, cid, ctitle))
                ids.append(cid)
            areas_meta.append((area_id, title, ids))
        for cid, count in Counter(c for _, c, _ in raw_competences).items():
            if count > 1:
                self.problem("pack.json", f"competence {cid}", "declared twice")

        tubes_by_competence: dict[str, list[dict[str, Any]]] = {}
        for _, cid, _ in raw_competences:
            tubes_by_competence[cid] = self.read_competence(cid)
        for relative in sorted(self.files):
            stem = relative.removeprefix("competences/").removesuffix(".json")
            if relative.startswith("competences/") and stem not in tubes_by_competence:
                self.problem(relative, "-", "no such competence in pack.json")

        levels = {
            cid: [s["level"] for t in tubes for s in t["skills"]]
            for cid, tubes in tubes_by_competence.items()
        }
        pix = pix_values(levels)
        competences: dict[str, Competence] = {}
        for area_id, cid, ctitle in raw_competences:
            tubes = tuple(
                Tube(
                    id=t["id"],
                    competence_id=cid,
                    title=t["title"],
                    description=t["description"],
                    skills=tuple(
                        Skill(
                            id=s["id"],
                            tube_id=t["id"],
                            competence_id=cid,
                            level=s["level"],
                            description=s["description"],
                            hint=s["hint"],
                            pix_value=pix[(cid, s["level"])],
                            challenges=s["challenges"],
                            tutorials=s["tutorials"],
                        )
                        for s in t["skills"]
                    ),
                )
                for t in tubes_by_competence[cid]
            )
            competences[cid] = Competence(cid, area_id, ctitle, tubes)
        areas = tuple(
            Area(area_id, title, tuple(competences[c] for c in ids if c in competences))
            for area_id, title, ids in areas_meta
        )
        tube_ids = {t["id"] for tubes in tubes_by_competence.values() for t in tubes}
        profiles = self.read_profiles(tube_ids, tubes_by_competence)
        if self.problems:
            return None, self.problems
        pack = ContentPack(
            id=meta["id"],
            version=meta["version"],
            locale=locale,
            title=meta["title"],
            areas=areas,
            target_profiles=profiles,
        )
        return pack, self.problems

    # -- helpers -----------------------------------------------------------------------------

    def text(self, data: Any, key: str, file: str, item: str, *, required: bool = True) -> str:
        value = data.get(key) if isinstance(data, dict) else None
        if not required and (value is None or value == ""):
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(file, item, f"'{key}' must be a non-empty text")
            return ""
        return value.strip()

    def items(self, data: Any, key: str, file: str, item: str) -> Iterator[dict[str, Any]]:
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, list) or not value:
            self.problem(file, item, f"'{key}' must be a non-empty list")
            return
        for entry in value:
            if isinstance(entry, dict):
                yield entry
            else:
                self.problem(file, item, f"'{key}' entries must be objects")

    def integer(
        self, data: dict[str, Any], key: str, file: str, item: str, low: int, high: int
    ) -> int:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(file, item, f"'{key}' must be a whole number from {low} to {high}")
            return low
        return value

    def strings(self, data: dict[str, Any], key: str, file: str, item: str) -> tuple[str, ...]:
        value = data.get(key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            self.problem(file, item, f"'{key}' must be a non-empty list of non-empty texts")
            return ()
        cleaned = tuple(v.strip() for v in value)
        if len(set(cleaned)) != len(cleaned):
            self.problem(file, item, f"'{key}' has duplicates")
        return cleaned

    def keys(self, data: Any, kind: str, file: str, item: str) -> None:
        """Unknown keys are mistakes (a misspelt "tolerances" would silently drop a rule)."""
        if isinstance(data, dict):
            for key in sorted(set(data) - KEYS[kind]):
                self.problem(file, item, f"unknown key {key!r} in {kind}")

    def listed(self, data: dict[str, Any], key: str, file: str, item: str) -> list[Any]:
        """An optional list: missing is empty, anything but a list is a problem."""
        value = data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(file, item, f"'{key}' must be a list")
            return []
        return value

    def unique(self, kind: str, identifier: str, file: str) -> None:
        key = f"{kind}:{identifier}"
        if key in self.seen_ids:
            self.problem(file, identifier, f"{kind} id already used in {self.seen_ids[key]}")
        else:
            self.seen_ids[key] = file

    # -- competences -------------------------------------------------------------------------

    def read_competence(self, cid: str) -> list[dict[str, Any]]:
        file = f"competences/{cid}.json"
        data = self.read(file)
        if data is None:
            return []
        if not isinstance(data, dict) or data.get("competence") != cid:
            self.problem(file, "-", f'expected an object with "competence": "{cid}"')
            return []
        self.keys(data, "competence file", file, cid)
        tubes: list[dict[str, Any]] = []
        for tube in self.items(data, "tubes", file, cid):
            tube_id = tube.get("id")
            if not isinstance(tube_id, str) or not TUBE_ID.match(tube_id):
                self.problem(file, str(tube_id), "tube id must look like @camelCase (48 at most)")
                continue
            self.keys(tube, "tube", file, tube_id)
            self.unique("tube", tube_id, file)
            skills: list[dict[str, Any]] = []
            for skill in self.items(tube, "skills", file, tube_id):
                parsed_skill = self.read_skill(skill, tube_id, cid, file)
                if parsed_skill is not None:
                    skills.append(parsed_skill)
            skills.sort(key=lambda s: int(s["level"]))
            parsed: dict[str, Any] = {
                "id": tube_id,
                "title": self.text(tube, "title", file, tube_id),
                "description": self.text(tube, "description", file, tube_id),
                "skills": skills,
            }
            levels = [s["level"] for s in skills]
            for level, count in Counter(levels).items():
                if count > 1:
                    self.problem(file, f"{tube_id}{level}", "two skills share this level")
            if not any(s["tutorials"] for s in parsed["skills"]):
                self.problem(file, tube_id, "the tube has no tutorial")
            tubes.append(parsed)
        return tubes

    def read_skill(
        self, skill: dict[str, Any], tube_id: str, cid: str, file: str
    ) -> dict[str, Any] | None:
        level = self.integer(skill, "level", file, f"{tube_id}?", 1, MAX_LEVEL)
        skill_id = f"{tube_id}{level}"
        self.keys(skill, "skill", file, skill_id)
        challenges = tuple(
            c
            for c in (
                self.read_challenge(raw, skill_id, file)
                for raw in self.items(skill, "challenges", file, skill_id)
            )
            if c is not None
        )
        if challenges and not any(c.is_playable for c in challenges):
            self.problem(file, skill_id, "no challenge with status 'validated'")
        tutorials = tuple(
            t
            for t in (
                self.read_tutorial(raw, file)
                for raw in self.listed(skill, "tutorials", file, skill_id)
            )
            if t is not None
        )
        return {
            "id": skill_id,
            "level": level,
            "description": self.text(skill, "description", file, skill_id),
            "hint": self.text(skill, "hint", file, skill_id, required=False),
            "challenges": challenges,
            "tutorials": tutorials,
        }

    def read_tutorial(self, raw: Any, file: str) -> Tutorial | None:
        if not isinstance(raw, dict):
            self.problem(file, "tutorial", "expected an object")
            return None
        tid = raw.get("id")
        if not isinstance(tid, str) or not ITEM_ID.match(tid):
            self.problem(file, str(tid), "tutorial id must be letters, digits, '-', '_' or '.'")
            return None
        self.unique("tutorial", tid, file)
        self.keys(raw, "tutorial", file, tid)
        fmt = self.text(raw, "format", file, tid)
        if fmt and fmt not in TUTORIAL_FORMATS:
            self.problem(file, tid, f"format must be one of {', '.join(TUTORIAL_FORMATS)}")
        text = raw.get("text")
        url = raw.get("url")
        if (text is None) == (url is None):
            self.problem(file, tid, "give either 'text' or 'url'")
        if url is not None and (not isinstance(url, str) or not url.startswith("https://")):
            self.problem(file, tid, "'url' must start with https://")
        if text is not None and (not isinstance(text, str) or len(text.strip()) < 40):
            self.problem(file, tid, "'text' must be at least 40 characters")
        return Tutorial(
            id=tid,
            title=self.text(raw, "title", file, tid),
            format=fmt,
            duration_minutes=self.integer(raw, "duration_minutes", file, tid, 1, 120),
            source=self.text(raw, "source", file, tid),
            text=text.strip() if isinstance(text, str) else None,
            url=url if isinstance(url, str) else None,
        )

    def read_challenge(self, raw: dict[str, Any], skill_id: str, file: str) -> Challenge | None:
        cid = raw.get("id")
        if not isinstance(cid, str) or not ITEM_ID.match(cid):
            self.problem(
                file, f"{skill_id}/{cid}", "challenge id must be letters, digits, '-', '_' or '.'"
            )
            return None
        self.unique("challenge", cid, file)
        self.keys(raw, "challenge", file, cid)
        try:
            kind = ChallengeType(str(raw.get("type")))
        except ValueError:
            self.problem(file, cid, "type must be QCU, QCM, QROC or QROCM")
            return None
        common: dict[str, Any] = {
            "id": cid,
            "skill_id": skill_id,
            "type": kind,
            "instruction": self.text(raw, "instruction", file, cid),
            "explanation": self.text(raw, "explanation", file, cid),
        }
        for message in fence_problems(common["instruction"]):
            self.fences.append(Problem(file, cid, f"'instruction': {message}"))
        timer = raw.get("timer")
        if timer is not None:
            common["timer"] = self.integer(raw, "timer", file, cid, 10, 600)
        status = raw.get("status", "validated")
        if status not in ("validated", "draft", "archived"):
            self.problem(file, cid, "status must be validated, draft or archived")
        common["status"] = status
        if "tolerances" in raw:
            tolerances = raw["tolerances"]
            if (
                not isinstance(tolerances, list)
                or not tolerances
                or any(t not in TOLERANCES for t in tolerances)
            ):
                self.problem(file, cid, "tolerances must be a list of t1, t2, t3")
            else:
                common["tolerances"] = tuple(sorted(set(tolerances)))

        if kind in (ChallengeType.QCU, ChallengeType.QCM):
            if "tolerances" in raw:
                self.problem(file, cid, "tolerances apply to typed answers only")
            low, high = (2, 6) if kind is ChallengeType.QCU else (3, 8)
            proposals = self.strings(raw, "proposals", file, cid)
            if proposals and not low <= len(proposals) <= high:
                self.problem(file, cid, f"{kind} needs {low} to {high} proposals")
            if kind is ChallengeType.QCU:
                indexes: tuple[int, ...] = (
                    self.integer(raw, "solution", file, cid, 1, max(len(proposals), 1)),
                )
            else:
                chosen = raw.get("solutions")
                valid = (
                    isinstance(chosen, list)
                    and len(chosen) >= 2
                    and all(
                        isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= len(proposals)
                        for i in chosen
                    )
                    and len(set(chosen)) == len(chosen)
                    and len(chosen) < len(proposals)
                )
                if not valid:
                    self.problem(
                        file,
                        cid,
                        "QCM 'solutions' must list at least 2 distinct proposal numbers, not all",
                    )
                    return None
                indexes = tuple(sorted(chosen))  # type: ignore[arg-type]
            return Challenge(**common, proposals=proposals, solution_indexes=indexes)

        if kind is ChallengeType.QROC:
            return Challenge(
                **common,
                label=self.text(raw, "label", file, cid),
                solutions=self.strings(raw, "solutions", file, cid),
            )

        mode = raw.get("mode")
        if mode not in ("ind", "dep"):
            self.problem(file, cid, 'QROCM needs "mode": "ind" or "dep"')
            return None
        fields: list[Field] = []
        for entry in self.items(raw, "fields", file, cid):
            self.keys(entry, "field", file, cid)
            name = entry.get("name")
            if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,31}$", name):
                self.problem(file, cid, "field names must be lower-case letters, digits or _")
                continue
            solutions = (
                self.strings(entry, "solutions", file, f"{cid}.{name}") if mode == "ind" else ()
            )
            if mode == "dep" and "solutions" in entry:
                self.problem(file, f"{cid}.{name}", "in 'dep' mode, answers go in solution_groups")
            fields.append(Field(name, self.text(entry, "label", file, f"{cid}.{name}"), solutions))
        if len({f.name for f in fields}) != len(fields):
            self.problem(file, cid, "two fields share a name")
        if len(fields) < 2:
            self.problem(file, cid, "QROCM needs at least 2 fields")
        groups: tuple[tuple[str, ...], ...] = ()
        if mode == "dep":
            raw_groups = raw.get("solution_groups")
            if not isinstance(raw_groups, list) or not all(
                isinstance(g, list) and g and all(isinstance(s, str) and s.strip() for s in g)
                for g in raw_groups
            ):
                self.problem(file, cid, "'solution_groups' must be a list of lists of texts")
            else:
                groups = tuple(tuple(s.strip() for s in g) for g in raw_groups)
                if len(groups) < len(fields):
                    self.problem(file, cid, "fewer solution groups than fields")
        return Challenge(**common, fields=tuple(fields), mode=mode, solution_groups=groups)

    # -- target profiles ---------------------------------------------------------------------

    def read_profiles(
        self, tube_ids: set[str], tubes_by_competence: dict[str, list[dict[str, Any]]]
    ) -> tuple[TargetProfileSpec, ...]:
        file = "target_profiles.json"
        data = self.read(file)
        if data is None:
            return ()
        if not isinstance(data, list) or not data:
            self.problem(file, "-", "expected a non-empty list of profiles")
            return ()
        profiles: list[TargetProfileSpec] = []
        for raw in data:
            pid = raw.get("id") if isinstance(raw, dict) else None
            if not isinstance(pid, str) or not ITEM_ID.match(pid):
                self.problem(file, str(pid), "profile id must be letters, digits, '-', '_' or '.'")
                continue
            self.unique("profile", pid, file)
            self.keys(raw, "profile", file, pid)
            levels: dict[str, int] = {}
            competence_levels: dict[str, int] = {}
            named_tube_levels: dict[str, int] = {}
            for entry in self.listed(raw, "competences", file, pid):
                self.keys(entry, "profile entry", file, pid)
                cid = entry.get("id") if isinstance(entry, dict) else None
                if cid not in tubes_by_competence:
                    self.problem(file, pid, f"unknown competence {cid!r}")
                    continue
                cap = self.integer(entry, "level", file, pid, 1, MAX_LEVEL)
                competence_levels[cid] = cap
                for tube in tubes_by_competence[cid]:
                    levels[tube["id"]] = cap
            for entry in self.listed(raw, "tubes", file, pid):
                self.keys(entry, "profile entry", file, pid)
                tid = entry.get("id") if isinstance(entry, dict) else None
                if tid not in tube_ids:
                    self.problem(file, pid, f"unknown tube {tid!r}")
                    continue
                levels[tid] = named_tube_levels[tid] = self.integer(
                    entry, "level", file, pid, 1, MAX_LEVEL
                )
            if not levels:
                self.problem(file, pid, "the profile names no tube or competence")
            profiles.append(
                TargetProfileSpec(
                    id=pid,
                    name=self.text(raw, "name", file, pid),
                    description=self.text(raw, "description", file, pid, required=False),
                    tube_levels=tuple(sorted(levels.items())),
                    competence_levels=tuple(competence_levels.items()),
                    named_tube_levels=tuple(named_tube_levels.items()),
                )
            )
        return tuple(profiles)


# -- house style --------------------------------------------------------------------------------

STRAIGHT_APOSTROPHE = "'"
TYPOGRAPHIC_APOSTROPHE = "\u2019"
URL = re.compile(r"https?://\S+")
# The texts people read, by kind of item. Not here: ids, URLs, formats, and the accepted answers
# ("solutions", "solution_groups"), where a straight quote may be what is expected (answers.py
# compares ' and ’ alike, so the student may type either).
READ_TEXTS = {
    "pack": ("title",),
    "area": ("title",),
    "competence": ("title",),
    "tube": ("title", "description"),
    "skill": ("description", "hint"),
    "tutorial": ("title", "source", "text"),
    "challenge": ("instruction", "explanation", "label", "proposals"),
    "field": ("label",),
    "profile": ("name", "description"),
}


def style_problems(files: Mapping[str, Any]) -> list[Problem]:
    """The house style of a pack's texts, which `parcours content check` enforces on top of
    `check_pack_files` (loading does not: see the module's docstring).

    - In a French pack, the apostrophe is the typographic one (’), never the straight one ('),
      except in code blocks and URLs.
    - Code blocks (```) are shown as code in instructions only; elsewhere the fences would show.
    """
    manifest = files.get("pack.json")
    if not isinstance(manifest, dict):
        return []
    french = str(manifest.get("locale", "")).lower().split("-")[0].split("_")[0] == "fr"
    problems: list[Problem] = []

    def check(file: str, item: str, data: Any, kind: str) -> None:
        if not isinstance(data, dict):
            return
        for key in READ_TEXTS[kind]:
            value = data.get(key)
            texts = value if isinstance(value, list) else [value]
            for number, text in enumerate(texts, 1):
                if not isinstance(text, str):
                    continue
                where = f"'{key}' {number}" if isinstance(value, list) else f"'{key}'"
                parts = text_parts(text) if key == "instruction" else (TextPart(text),)
                if key != "instruction" and any(
                    line.strip().startswith(FENCE) for line in text.splitlines()
                ):
                    problems.append(
                        Problem(file, item, f"{where}: code blocks (```) are for instructions only")
                    )
                if french:
                    prose = [URL.sub("", p.text) for p in parts if not p.is_code]
                    count = sum(t.count(STRAIGHT_APOSTROPHE) for t in prose)
                    if count:
                        problems.append(
                            Problem(file, item, _apostrophe_message(where, prose, count))
                        )

    def entries(data: Any, key: str) -> list[dict[str, Any]]:
        value = data.get(key) if isinstance(data, dict) else None
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

    check("pack.json", "pack", manifest, "pack")
    for area in entries(manifest, "areas"):
        check("pack.json", f"area {area.get('id')}", area, "area")
        for competence in entries(area, "competences"):
            check("pack.json", f"competence {competence.get('id')}", competence, "competence")
    for file in sorted(f for f in files if f.startswith("competences/")):
        for tube in entries(files[file], "tubes"):
            tube_id = str(tube.get("id"))
            check(file, tube_id, tube, "tube")
            for skill in entries(tube, "skills"):
                check(file, f"{tube_id}{skill.get('level')}", skill, "skill")
                for tutorial in entries(skill, "tutorials"):
                    check(file, str(tutorial.get("id")), tutorial, "tutorial")
                for challenge in entries(skill, "challenges"):
                    cid = str(challenge.get("id"))
                    check(file, cid, challenge, "challenge")
                    for field in entries(challenge, "fields"):
                        check(file, f"{cid}.{field.get('name')}", field, "field")
    profiles = files.get("target_profiles.json")
    for profile in profiles if isinstance(profiles, list) else []:
        if isinstance(profile, dict):
            check("target_profiles.json", str(profile.get("id")), profile, "profile")
    return problems


def _apostrophe_message(where: str, prose: list[str], count: int) -> str:
    text = next(t for t in prose if STRAIGHT_APOSTROPHE in t)
    at = text.index(STRAIGHT_APOSTROPHE)
    before = re.search(r"(?:\S+\s+){0,3}\S*$", text[:at])  # whole words around it
    after = re.match(r"\S*(?:\s+\S+){0,2}", text[at:])
    excerpt = " ".join(
        f"{before.group() if before else ''}{after.group() if after else ''}".split()
    )
    plural = "s" if count > 1 else ""
    return (
        f"{where}: {count} straight apostrophe{plural} (write {TYPOGRAPHIC_APOSTROPHE} in French "
        f"text), first in “{excerpt}”"
    )


def describe_counts(pack_root: Path, competence_ids: Iterable[str]) -> list[str]:
    """Per competence file: tubes, skills, challenges by type, timed, tutorials (for authors)."""
    lines = []
    files = read_pack_files(pack_root)
    for cid in competence_ids:
        loader = _Loader(files)
        tubes = loader.read_competence(cid)
        skills = [s for t in tubes for s in t["skills"]]
        challenges = [c for s in skills for c in s["challenges"]]
        kinds = Counter(
            f"{c.type}-{c.mode}" if c.type is ChallengeType.QROCM else str(c.type)
            for c in challenges
        )
        lines.append(
            f"{cid}: {len(tubes)} tubes, {len(skills)} skills, {len(challenges)} challenges "
            f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
            f"{sum(c.is_timed for c in challenges)} timed, "
            f"{sum(len(s['tutorials']) for s in skills)} tutorials"
        )
        lines += [f"  problem: {p}" for p in loader.problems]
    return lines


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else BUNDLED_PACK
    print("\n".join(describe_counts(root, sys.argv[2:])))
