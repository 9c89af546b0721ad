from django.db import transaction
from django.http import HttpRequest, JsonResponse

from tests.django.testapp.tasks import django_add


def signup(request: HttpRequest) -> JsonResponse:
    with transaction.atomic():
        result = django_add.enqueue(2, 3)
    return JsonResponse({"task": result.id})
