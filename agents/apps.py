from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # The Celery application first, so the shared tasks imported below bind to it.
        import orket_site.celery  # noqa: F401

        # Connects every agents task to its hand-off in agents.dispatch, in web and worker processes alike.
        from agents import tasks  # noqa: F401
