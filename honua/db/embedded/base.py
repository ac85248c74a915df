from pathlib import Path

from django.db.backends.postgresql import base

from honua import embedded_pg
from honua.database import EMBEDDED_DATABASE_NAME


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL backend, pointed at the embedded server (started here if it is not running)."""

    def get_connection_params(self):
        state = embedded_pg.ensure_running(Path(self.settings_dict["PGDATA"]), database=EMBEDDED_DATABASE_NAME)
        self.settings_dict["HOST"] = str(state.socket_dir)
        self.settings_dict["PORT"] = str(embedded_pg.SOCKET_PORT)
        return super().get_connection_params()
