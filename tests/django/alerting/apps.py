from django.apps import AppConfig


class AlertingConfig(AppConfig):
    name = "tests.django.alerting"
    label = "alerting"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from tests.django.alerting import models, receivers

        post_save.connect(receivers.incident_saved, sender=models.Incident)
