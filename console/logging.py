"""Quiet permission refusals: Django logs every 403 from ``PermissionDenied`` at WARNING on ``django.request``
with the exception attached, so each refusal prints a full traceback. A refusal is expected behaviour, not an
error: one line (method, path, user) is enough. Other records of that logger (500s...) pass unchanged."""

import logging


class OneLinePermissionRefusal(logging.Filter):
    """Drop the traceback of a permission refusal and say who was refused what, on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) != 403:
            return True
        record.exc_info = None
        record.exc_text = None
        request = getattr(record, "request", None)
        user = getattr(request, "user", None)
        if request is not None:
            who = user.get_username() if user is not None and user.is_authenticated else "anonymous"
            record.msg = "permission refused: %s %s (user %s)"
            record.args = (request.method, request.path, who)
        return True
