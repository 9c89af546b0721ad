from django.contrib import admin
from django.urls import include, path

from tests.django.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("taskyard.contrib.django.urls")),
    path("signup", views.signup),
]
