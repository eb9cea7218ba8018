from django.apps import AppConfig


class SandboxesConfig(AppConfig):
    name = "sandboxes"
    verbose_name = "Sandboxes"

    def ready(self) -> None:
        from boards.signals import card_entered_review
        from sandboxes.receivers import verify_on_review

        card_entered_review.connect(verify_on_review, dispatch_uid="sandboxes.verify_on_review")
