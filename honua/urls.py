from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # Browsers ask for /favicon.ico whatever the page says: answer it rather than log a 404 each time.
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("console/favicon.svg"))),
]
