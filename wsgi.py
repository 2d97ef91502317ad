"""The WSGI entry point: `granian --interface wsgi 'wsgi:app'` (or `gunicorn 'wsgi:app'`).

The only module that builds an app at import. Bad configuration or an unreachable database stops
start-up here with a one-line explanation and exit status 4: the server stops instead of
restarting workers forever (gunicorn's master reads 4 as "the application cannot load"; Granian
does not respawn a worker that failed unless told to).
"""

import sys

from config.app import create_app
from config.db import Database, check_connection
from config.logging import configure_logging
from config.settings import ConfigError, Settings

try:
    _settings = Settings.from_env()
    configure_logging(_settings)
    _database = Database(_settings)
    check_connection(_database)
except ConfigError as error:
    print(f"parcours: error: {error}", file=sys.stderr, flush=True)
    sys.exit(4)

app = create_app(_settings, database=_database)
