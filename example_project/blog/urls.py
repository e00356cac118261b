from django.urls import path

from . import views

app_name = "blog"

urlpatterns = [
    path("", views.article_list, name="article_list"),
    path("articles/<int:pk>/", views.article_detail, name="article_detail"),
    path("authors/<int:pk>/", views.author_detail, name="author_detail"),
    path("categories/<slug:slug>/", views.category_detail, name="category_detail"),
    path("stats/", views.stats, name="stats"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
]
