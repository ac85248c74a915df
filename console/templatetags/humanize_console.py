"""Formatting filters for the console's figures."""

from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    """0.953 -> '95.3%'; None -> '-'."""
    return "-" if value is None else f"{value:.1%}"


@register.filter
def num(value) -> str:
    """12345 -> '12,345'; None -> '-'."""
    return "-" if value is None else f"{value:,}"


@register.filter
def seconds(milliseconds) -> str:
    """A duration in milliseconds, as milliseconds (under a second: never "0.0 s" for a build that took some
    time), seconds or minutes; None -> '-'."""
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    s = milliseconds / 1000
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


@register.filter
def secs(value) -> str:
    """A duration in seconds, formatted as ``seconds`` does."""
    return "-" if value is None else seconds(value * 1000)


@register.filter
def sum_of(values) -> int:
    return sum(values)
