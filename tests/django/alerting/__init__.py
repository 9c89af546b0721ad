"""A small alerting app that behaves like the applications of issue 10.

Saving an ``Incident`` (``post_save``) enqueues ``check_incident``; the check looks the row up
and enqueues ``send_alert``, which sends an e-mail with ``django.core.mail``. Tasks are declared
with Django's own ``@task``; nothing here knows about taskyard except two tasks that carry
fullctl-style ``Setting`` qualifiers.
"""
