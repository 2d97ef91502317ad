import pytest

from config.settings import DEFAULT_DATABASE_URL, ConfigError, Settings, parse_database_url

STRONG = "x" * 40
PG = "postgresql+psycopg2://parcours:s3cret-pw@db.internal:5432/parcours"


def test_defaults_run_the_embedded_demo():
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.env == "development"
    assert settings.public_url == "http://127.0.0.1:5000"
    assert settings.log_format == "text"


def test_values_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "DATABASE_URL": PG,
            "SECRET_KEY": STRONG,
            "PUBLIC_URL": "https://parcours.example.org/",
            "PARCOURS_ENV": "production",
            "TRUSTED_PROXIES": "1",
            "LOG_LEVEL": "warning",
        }
    )
    assert settings.is_production
    assert settings.public_url == "https://parcours.example.org"
    assert settings.trusted_proxies == 1
    assert settings.log_level == "WARNING"
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"PARCOURS_ENV": "production", "DATABASE_URL": PG}, "SECRET_KEY"),
        ({"PARCOURS_ENV": "production", "DATABASE_URL": PG, "SECRET_KEY": "short"}, "SECRET_KEY"),
        (
            {"PARCOURS_ENV": "production", "SECRET_KEY": STRONG, "PUBLIC_URL": "https://a.fr"},
            "DATABASE_URL",
        ),
        (
            {"PARCOURS_ENV": "production", "SECRET_KEY": STRONG, "DATABASE_URL": PG},
            "PUBLIC_URL",
        ),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://root@localhost/parcours"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+psycopg2://u@h:5432"}, "DATABASE_URL"),
        ({"PUBLIC_URL": "parcours.example.org"}, "PUBLIC_URL"),
        ({"PARCOURS_ENV": "staging"}, "PARCOURS_ENV"),
        ({"TRUSTED_PROXIES": "two"}, "TRUSTED_PROXIES"),
        ({"TRUSTED_PROXIES": "-1"}, "TRUSTED_PROXIES"),
        ({"PARCOURS_ALLOW_SQLITE": "maybe"}, "PARCOURS_ALLOW_SQLITE"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        # Forgetting PARCOURS_ENV on a real deployment must not sign sessions with a public key.
        ({"PUBLIC_URL": "https://parcours.example.org", "DATABASE_URL": PG}, "SECRET_KEY"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable(environ, variable):
    with pytest.raises(ConfigError) as error:
        Settings.from_env(environ)
    message = str(error.value)
    assert message.startswith(f"{variable}:")
    assert "\n" not in message


def test_production_accepts_sqlite_only_when_told():
    environ = {
        "PARCOURS_ENV": "production",
        "SECRET_KEY": STRONG,
        "PUBLIC_URL": "https://parcours.example.org",
        "PARCOURS_ALLOW_SQLITE": "1",
    }
    assert Settings.from_env(environ).is_sqlite


def test_errors_never_repeat_the_database_password():
    with pytest.raises(ConfigError) as error:
        parse_database_url("postgresql+psycopg2://u:hunter2@/")
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgresql_urls_use_psycopg2(scheme):
    url = parse_database_url(f"{scheme}://u@localhost/parcours")
    assert url.drivername == "postgresql+psycopg2"


def test_the_secret_key_never_shows_in_repr():
    assert STRONG not in repr(Settings(secret_key=STRONG))


def test_the_development_key_is_fine_on_this_machine():
    assert Settings.from_env({"PUBLIC_URL": "http://localhost:8000"}).env == "development"
