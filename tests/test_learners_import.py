"""Importing a school's learner list: file formats, line-numbered errors, all or nothing, and
re-imports that update the list instead of duplicating it."""

import datetime as dt

import pytest
from sqlalchemy import event, func, select

from campaigns.orga import learners
from campaigns.orga.learners import LearnerFileError, import_learners, read_learner_file
from campaigns.shared.errors import InvalidInput
from campaigns.shared.models import Learner, OrganizationType
from tests.factories import organization_with_admin

HEADER = "Nom;Prénom;Date de naissance;Division;INE"


def csv_bytes(*lines: str, header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return "\r\n".join([header, *lines]).encode(encoding)


@pytest.fixture
def school(db_session):
    return organization_with_admin(
        db_session,
        name="Collège Import",
        type=OrganizationType.SCO,
        uai="0750999Z",
        admin_email="admin-import@example.org",
    ).organization


def school_learners(session, organization):
    return {
        (x.last_name, x.first_name): x
        for x in session.scalars(select(Learner).where(Learner.organization_id == organization.id))
    }


def errors_of(data: bytes) -> list[str]:
    with pytest.raises(LearnerFileError) as raised:
        read_learner_file(data)
    return [str(e) for e in raised.value.errors]


# -- reading ----------------------------------------------------------------------------------------


def test_a_siecle_like_file_is_read_with_its_columns_in_any_order_and_case():
    data = csv_bytes(
        "3E2;Martin;Léa;12/03/2010;x;1234567890A",
        "3E1;DURAND;Noé;2010-01-05;y;",
        header="DIVISION;NOM;PRENOM;Date Naissance;Autre colonne;Numéro INE",
    )
    rows = read_learner_file(data)
    assert [
        (r.last_name, r.first_name, r.birthdate, r.division, r.national_student_id) for r in rows
    ] == [
        ("Martin", "Léa", dt.date(2010, 3, 12), "3E2", "1234567890A"),
        ("DURAND", "Noé", dt.date(2010, 1, 5), "3E1", None),
    ]


@pytest.mark.parametrize(
    ("encoding", "header", "separator"),
    [
        ("utf-8", HEADER, ";"),
        ("utf-8-sig", HEADER, ";"),
        ("cp1252", HEADER, ";"),
        ("utf-8", HEADER.replace(";", ","), ","),
        ("cp1252", HEADER.replace(";", ","), ","),
    ],
)
def test_utf8_with_or_without_bom_windows_1252_and_both_separators(encoding, header, separator):
    line = separator.join(["Bénédicte", "Zoé-Anaïs", "01/02/2011", "5e B", "123456789AB"])
    rows = read_learner_file(csv_bytes(line, header=header, encoding=encoding))
    assert rows[0].last_name == "Bénédicte"
    assert rows[0].first_name == "Zoé-Anaïs"
    assert rows[0].division == "5e B"
    assert rows[0].national_student_id == "123456789AB"


def test_quoted_cells_and_blank_lines_are_handled():
    data = csv_bytes('"Martin; dit ""Léo""";Léo;01/02/2011;4A;', ";;;;", "", header=HEADER)
    rows = read_learner_file(data)
    assert len(rows) == 1 and rows[0].last_name == 'Martin; dit "Léo"'


def test_every_error_is_listed_with_its_line_number():
    data = csv_bytes(
        "Martin;Léa;12/03/2010;3A;1234567890A",  # line 2: fine
        ";Léo;12/03/2010;3A;",  # 3: no last name
        "Petit;;12/03/2010;3A;",  # 4: no first name
        "Durand;Noé;31/02/2010;3A;",  # 5: no such date
        "Roux;Ali;;3A;",  # 6: no date
        "Blanc;Eva;12/03/2010;3A;12345",  # 7: malformed INE
        "Noir;Lou;12/03/2010;3A;1234567890A",  # 8: INE of line 2
        "Martin;Léa;12/03/2010;3B;",  # 9: same learner as line 2
        "Vert;Max;2090-01-01;3A;",  # 10: future
    )
    assert errors_of(data) == [
        "Ligne 3 : nom manquant",
        "Ligne 4 : prénom manquant",
        "Ligne 5 : date de naissance invalide « 31/02/2010 »",
        "Ligne 6 : date de naissance manquante",
        "Ligne 7 : INE invalide « 12345 » (10 chiffres et 1 lettre, ou 9 chiffres et 2 lettres)",
        "Ligne 8 : INE « 1234567890A » déjà présent ligne 2",
        "Ligne 9 : élève déjà présent ligne 2 (même nom, prénom et date de naissance)",
        "Ligne 10 : date de naissance invalide « 2090-01-01 »",
    ]


def test_missing_columns_are_named():
    data = csv_bytes("Martin;12/03/2010", header="Nom;Date de naissance")
    assert errors_of(data) == ["Ligne 1 : colonne(s) manquante(s) : « prénom », « division »"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "Ligne 1 : le fichier est vide"),
        (HEADER.encode(), "Ligne 1 : le fichier ne contient aucun élève"),
        (b"\x00\x01PK\x03\x04", "Ligne 1 : le fichier n’est pas un fichier CSV (texte)"),
        (  # a NUL byte far in (no database column could hold it)
            csv_bytes(
                *[f"Nom{i};Léa;01/02/2011;3A;" for i in range(300)], "Nul\x00;Léa;1/2/2011;;"
            ),
            "Ligne 1 : le fichier n’est pas un fichier CSV (texte)",
        ),
    ],
)
def test_empty_and_binary_files_are_refused(data, expected):
    assert errors_of(data) == [expected]


def test_errors_are_capped_but_counted():
    data = csv_bytes(*[f"Nom{i};;01/01/2010;3A;" for i in range(80)])
    with pytest.raises(LearnerFileError) as raised:
        read_learner_file(data)
    assert len(raised.value.errors) == learners.MAX_ERRORS
    assert raised.value.total == 80
    message = str(raised.value)
    assert "\n" not in message and message.startswith("80 error(s)") and "(+77 more)" in message


def test_too_many_rows_are_refused():
    data = csv_bytes(*[f"Nom{i};P;01/01/2010;3A;" for i in range(learners.MAX_ROWS + 1)])
    assert errors_of(data) == [
        f"Ligne {learners.MAX_ROWS + 2} : le fichier dépasse 10000 élèves : importez-le en plusieurs fois"
    ]


# -- importing --------------------------------------------------------------------------------------


def test_first_import_creates_the_learners(db_session, school):
    report = import_learners(
        db_session,
        school,
        csv_bytes("Martin;Léa;12/03/2010;3A;1234567890A", "Durand;Noé;05/01/2010;3B;"),
    )
    assert report.as_dict() == {
        "rows": 2,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "disabled": 0,
        "reenabled": 0,
    }
    found = school_learners(db_session, school)
    assert found["Martin", "Léa"].national_student_id == "1234567890A"
    assert found["Durand", "Noé"].division == "3B"
    assert found["Durand", "Noé"].birthdate == dt.date(2010, 1, 5)


def test_one_bad_line_imports_nothing(db_session, school):
    import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;"))
    with pytest.raises(LearnerFileError):
        import_learners(
            db_session,
            school,
            csv_bytes("Martin;Léa;12/03/2010;4A;", "Nouveau;Tom;01/01/2010;4A;", "X;;1/1/2010;4A;"),
        )
    found = school_learners(db_session, school)
    assert list(found) == [("Martin", "Léa")]
    assert found["Martin", "Léa"].division == "3A"


def test_reimport_updates_matches_and_disables_instead_of_duplicating(db_session, school):
    import_learners(
        db_session,
        school,
        csv_bytes(
            "Martin;Léa;12/03/2010;3A;1234567890A",
            "Durand;Noé;05/01/2010;3B;",
            "Petit;Jade;07/07/2010;3B;",
            "Leroy;Sam;08/08/2010;3C;",
        ),
    )
    report = import_learners(
        db_session,
        school,
        csv_bytes(
            # same INE, name corrected and new class
            "Martin-Roux;Léa;12/03/2010;4A;1234567890A",
            # no INE: same person by name and birth date, written differently
            "DURAND;Noe;05/01/2010;4B;",
            # unchanged
            "Leroy;Sam;08/08/2010;3C;",
            # new
            "Nouveau;Tom;01/01/2010;4A;",
        ),
    )
    assert (report.created, report.updated, report.unchanged, report.disabled) == (1, 2, 1, 1)
    found = school_learners(db_session, school)
    assert len(found) == 5
    assert found["Martin-Roux", "Léa"].division == "4A"
    assert found["DURAND", "Noe"].division == "4B"
    assert found["Petit", "Jade"].is_disabled
    assert not found["Nouveau", "Tom"].is_disabled

    # Jade comes back: enabled again, nobody duplicated.
    again = import_learners(db_session, school, csv_bytes("Petit;Jade;07/07/2010;4B;"))
    assert (again.created, again.updated, again.reenabled, again.disabled) == (0, 1, 1, 4)
    found = school_learners(db_session, school)
    assert len(found) == 5
    assert not found["Petit", "Jade"].is_disabled
    assert found["Petit", "Jade"].division == "4B"


def test_an_ine_added_later_is_attached_to_the_learner_known_by_name(db_session, school):
    import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;"))
    report = import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;123456789AB"))
    assert (report.created, report.updated) == (0, 1)
    (learner,) = school_learners(db_session, school).values()
    assert learner.national_student_id == "123456789AB"


def test_a_different_ine_is_a_different_learner_even_with_the_same_name(db_session, school):
    import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;1234567890A"))
    report = import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;1234567890B"))
    assert (report.created, report.disabled) == (1, 1)


def test_two_rows_matching_one_learner_are_refused(db_session, school):
    import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;1234567890A"))
    with pytest.raises(LearnerFileError) as raised:
        import_learners(
            db_session,
            school,
            # line 2 is Léa by name and birth date, line 3 is Léa by INE (married name)
            csv_bytes("Martin;Léa;12/03/2010;3A;", "Martin-Roux;Léa;12/03/2010;3A;1234567890A"),
        )
    assert [str(e) for e in raised.value.errors] == ["Ligne 3 : même élève que ligne 2"]


def test_learners_of_other_schools_are_never_touched(db_session, school):
    other = organization_with_admin(
        db_session,
        name="Autre",
        type=OrganizationType.SCO,
        uai="0750998Y",
        admin_email="autre@example.org",
    ).organization
    import_learners(db_session, other, csv_bytes("Martin;Léa;12/03/2010;3A;1234567890A"))
    report = import_learners(db_session, school, csv_bytes("Martin;Léa;12/03/2010;3A;1234567890A"))
    assert report.created == 1
    (theirs,) = school_learners(db_session, other).values()
    assert not theirs.is_disabled


def test_only_schools_import_learners(db_session):
    company = organization_with_admin(
        db_session, name="Entreprise", type=OrganizationType.PRO, admin_email="pro@example.org"
    ).organization
    with pytest.raises(InvalidInput, match="SCO"):
        import_learners(db_session, company, csv_bytes("Martin;Léa;12/03/2010;3A;"))


def test_two_thousand_learners_import_and_reimport_in_a_few_queries(db_session, school):
    lines = [
        f"Nom{i};Prénom{i};{1 + i % 28:02d}/{1 + i % 12:02d}/2010;3{i % 9};{i:010d}A"
        for i in range(2000)
    ]
    statements = []
    connection = db_session.connection()

    def count(*_args, **_kwargs):
        statements.append(1)

    event.listen(connection, "before_cursor_execute", count)
    try:
        assert import_learners(db_session, school, csv_bytes(*lines)).created == 2000
        first = len(statements)
        lines[0] = "Nom0;Prénom0;01/01/2010;4Z;0000000000A"
        report = import_learners(db_session, school, csv_bytes(*lines))
        second = len(statements) - first
    finally:
        event.remove(connection, "before_cursor_execute", count)
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1999)
    count_ = db_session.scalar(
        select(func.count()).select_from(Learner).where(Learner.organization_id == school.id)
    )
    assert count_ == 2000
    # Bulk lookups and batched writes, not one query per row.
    assert first < 20 and second < 10, (first, second)


def test_a_title_line_before_the_header_is_skipped():
    data = "Export SIECLE du 01/09/2025\n\nNom,Prénom,Date de naissance,Division\nMartin,Léa,12/03/2010,3A\n"
    rows = read_learner_file(data.encode())
    assert [(r.line, r.last_name, r.division) for r in rows] == [(4, "Martin", "3A")]
