from django.apps import AppConfig


class BoardsConfig(AppConfig):
    name = "boards"
    verbose_name = "Boards"

    def ready(self) -> None:
        from boards.receivers import connect_receivers

        connect_receivers()
