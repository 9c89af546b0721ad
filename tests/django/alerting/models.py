from django.db import models


class Incident(models.Model):
    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=20, default="major")
    recipient = models.EmailField(default="oncall@example.com")

    def __str__(self) -> str:
        return self.title
