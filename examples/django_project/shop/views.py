from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse

from shop.tasks import send_receipt


def checkout(request: HttpRequest) -> JsonResponse:
    """Enqueue a receipt inside the order's transaction: no order, no email."""
    order_id = int(request.GET.get("order", "1"))
    with transaction.atomic():
        # ... save the order here ...
        result = send_receipt.enqueue(order_id, request.GET.get("email", "ada@example.com"))
    # Non-database backends enqueue when the transaction commits: read the result again.
    result.refresh()
    return JsonResponse({"task": result.id, "status": str(result.status)})
