"""The standard team's roles get the tools added with the agent loop (search_code, edit_file, git_diff,
finish_turn), so installations seeded before them can use them too. Roles people renamed or made
themselves are left alone."""

from django.db import migrations

NEW_TOOLS = {
    "architect": ["search_code", "finish_turn"],
    "coder": ["edit_file", "search_code", "git_diff", "finish_turn"],
    "integrity_guard": ["search_code", "git_diff", "finish_turn"],
}


def add_tools(apps, schema_editor):
    Role = apps.get_model("agents", "Role")
    for name, tools in NEW_TOOLS.items():
        role = Role.objects.filter(name=name).first()
        if role is None:
            continue
        missing = [tool for tool in tools if tool not in role.allowed_tools]
        if missing:
            role.allowed_tools = [*role.allowed_tools, *missing]
            role.save(update_fields=["allowed_tools"])


class Migration(migrations.Migration):
    dependencies = [("agents", "0008_turn_steps")]
    operations = [migrations.RunPython(add_tools, migrations.RunPython.noop)]
