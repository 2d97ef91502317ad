"""Importing content packs into the database, as `parcours content import` does."""

import json
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from campaigns.shared.content import active_pack, import_pack, pack_version
from campaigns.shared.errors import AlreadyExists, InvalidInput
from campaigns.shared.models import ContentRelease, TargetProfile
from config.cli import cli
from engine.content import BUNDLED_PACK


@pytest.fixture
def pack_copy(tmp_path):
    root = tmp_path / "pack"
    shutil.copytree(BUNDLED_PACK, root)
    return root


def set_version(root, version):
    manifest = json.loads((root / "pack.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    (root / "pack.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def test_import_creates_the_release_and_the_target_profiles(db_session):
    imported = import_pack(db_session, BUNDLED_PACK)
    assert imported.created and imported.profiles_created == len(imported.pack.target_profiles)
    cycle4 = db_session.scalars(
        select(TargetProfile).where(TargetProfile.content_key == "tp-cycle4")
    ).one()
    assert sum(t.level for t in cycle4.tubes) == 60
    assert active_pack(db_session).version == imported.pack.version


def test_importing_the_same_version_again_changes_nothing(db_session):
    import_pack(db_session, BUNDLED_PACK)
    again = import_pack(db_session, BUNDLED_PACK)
    assert not again.created
    assert (again.profiles_created, again.profiles_updated, again.profiles_archived) == (0, 0, 0)
    assert db_session.scalar(select(func.count()).select_from(ContentRelease)) == 1


def test_changed_content_needs_a_new_version(db_session, pack_copy):
    import_pack(db_session, BUNDLED_PACK)
    profiles = json.loads((pack_copy / "target_profiles.json").read_text(encoding="utf-8"))
    profiles[0]["name"] = "Cycle 4 (révisé)"
    (pack_copy / "target_profiles.json").write_text(
        json.dumps(profiles[:-1], ensure_ascii=False), encoding="utf-8"
    )
    with pytest.raises(AlreadyExists, match="new version"), db_session.begin_nested():
        import_pack(db_session, pack_copy)

    set_version(pack_copy, "2099.1.0")
    imported = import_pack(db_session, pack_copy)
    assert imported.created and imported.profiles_updated == 1 and imported.profiles_archived == 1
    assert active_pack(db_session).version == "2099.1.0"
    # The older release stays available to the campaigns that froze it.
    assert pack_version(
        db_session, "parcours-fr", json.loads((BUNDLED_PACK / "pack.json").read_text())["version"]
    )
    assert db_session.scalar(select(func.count()).where(ContentRelease.is_active)) == 1


def test_an_invalid_pack_is_refused_with_its_first_problem(db_session, pack_copy):
    (pack_copy / "competences/3.4.json").write_text("{", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"competences/3\.4\.json"):
        import_pack(db_session, pack_copy)
    assert db_session.scalar(select(func.count()).select_from(ContentRelease)) == 0


def test_without_any_import_the_bundled_pack_is_served(db_session):
    assert active_pack(db_session).id == "parcours-fr"


def test_content_check_command(pack_copy):
    runner = CliRunner()
    valid = runner.invoke(cli, ["content", "check", str(pack_copy)])
    assert valid.exit_code == 0 and "valid" in valid.stdout
    (pack_copy / "target_profiles.json").write_text(
        '[{"id": "tp", "name": "X", "tubes": [{"id": "@rien", "level": 2}]}]'
    )
    invalid = runner.invoke(cli, ["content", "check", str(pack_copy)])
    assert invalid.exit_code == 1
    assert "target_profiles.json: tp: unknown tube '@rien'" in invalid.stdout
    assert "problem(s) in" in invalid.stderr


def test_an_older_release_is_served_again_only_when_asked(db_session, pack_copy):
    import_pack(db_session, BUNDLED_PACK)
    set_version(pack_copy, "2099.1.0")
    import_pack(db_session, pack_copy)
    with pytest.raises(AlreadyExists, match="older release"), db_session.begin_nested():
        import_pack(db_session, BUNDLED_PACK)
    assert active_pack(db_session).version == "2099.1.0"
    import_pack(db_session, BUNDLED_PACK, activate=True)
    assert active_pack(db_session).version != "2099.1.0"


def test_the_bundled_version_is_reachable_before_any_import(db_session):
    bundled = active_pack(db_session)
    assert pack_version(db_session, bundled.id, bundled.version) is bundled


def test_content_check_reports_straight_apostrophes_but_not_in_code(pack_copy):
    programming = pack_copy / "competences/3.4.json"
    text = programming.read_text(encoding="utf-8")
    assert "print('Bonjour')" in text  # a code block's quotes are code, not French text
    programming.write_text(
        text.replace("Un robot est posé sur une case d’un", "Un robot est posé sur une case d'un"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["content", "check", str(pack_copy)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "competences/3.4.json: ch-progSequence-1-a: 'instruction': 1 straight apostrophe "
        "(write ’ in French text), first in “sur une case d'un quadrillage, tourné”"
    ]
    assert "1 problem(s) in" in result.stderr


def test_a_release_from_before_the_typography_rule_loads_and_is_upgraded(db_session, pack_copy):
    """Releases imported before the rule (straight apostrophes) keep loading for the campaigns that
    froze them, and the bundled pack imports over them as a new version."""
    for file in pack_copy.glob("**/*.json"):
        text = file.read_text(encoding="utf-8").replace("’", "'")
        file.write_text(text.replace("documents multimédia", "documents multimedia"), "utf-8")
    set_version(pack_copy, "2026.11.0")
    old = import_pack(db_session, pack_copy)
    assert old.pack.competence_by_id["1.1"].title.endswith("veille d'information")

    new = import_pack(db_session, BUNDLED_PACK)
    assert new.created and new.pack.version != "2026.11.0"
    assert new.profiles_updated >= 2 and new.profiles_created == 0  # renamed: 3.2, 4.3…
    assert new.pack.competence_by_id["1.1"].title.endswith("veille d’information")
    assert pack_version(db_session, "parcours-fr", "2026.11.0").competence_by_id["2.4"].title == (
        "S'insérer dans le monde numérique"
    )
    profile = db_session.scalars(
        select(TargetProfile).where(TargetProfile.content_key == "tp-competence-3.2")
    ).one()
    assert profile.name == "3.2 Développer des documents multimédia"
