from django.urls import path

from . import views

app_name = "monitor"

urlpatterns = [
    path("", views.hit_rate, name="hit_rate"),
    path("data.json", views.hit_rate_data, name="hit_rate_data"),
]
