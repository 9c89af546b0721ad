from django.contrib import admin
from django.urls import include, path

from shop import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("checkout", views.checkout),
    path("", include("taskyard.contrib.django.urls")),
]
