"""taskyard for Django: drop-in ``django.tasks`` backends, admin, commands and health views.

Add ``"taskyard.contrib.django"`` to ``INSTALLED_APPS`` and point ``settings.TASKS`` at
``taskyard.contrib.django.backends.<Name>Backend``. See ``docs/django.md``.
"""
