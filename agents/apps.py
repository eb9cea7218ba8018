from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Connects every agents task to its hand-off in agents.dispatch, in web and worker processes alike.
        from agents import tasks  # noqa: F401
