"""DRF's single never-expiring token per user is retired: its table is dropped, so no old key works
again (they were stored in clear and cannot become knox's hashed tokens). Clients request a new
token at POST /api/auth/token/; an old key is answered 401 `token_retired` saying so."""

from django.db import migrations
from django.db.migrations.recorder import MigrationRecorder

DRF_TOKEN_TABLE = "authtoken_token"  # noqa: S105 - a table name


def drop_drf_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if DRF_TOKEN_TABLE in connection.introspection.table_names():
        schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(DRF_TOKEN_TABLE)}")
    # Forget DRF's authtoken migrations, so that adding the app again would create its table anew.
    recorder = MigrationRecorder(connection)
    if recorder.has_table():
        recorder.migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [("orket_site", "0001_initial")]

    operations = [migrations.RunPython(drop_drf_tokens, migrations.RunPython.noop)]
